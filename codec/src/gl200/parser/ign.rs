//! Ignition events (`IGN`, `IGF`, `VGN`, `VGF`).

use chrono::{DateTime, Utc};

use crate::text::number;
use crate::{ParseContext, ParseError, Record};

use super::attrs::hours;
use super::block::{block, record};
use super::Attrs;

/// `IGN`/`IGF`/`VGN`/`VGF`: duration, a location block, hour meter, odometer.
pub(super) fn ign(
    v: &[String],
    ty: &str,
    model: &str,
    sent: Option<DateTime<Utc>>,
    ctx: &ParseContext,
) -> Result<Record, ParseError> {
    let mut i = 4;
    if model == "CV200" {
        i += 2;
    }
    i += 1; // duration
    let (b, next) = block(v, i, Some(model))?;
    let mut a = Attrs::new();
    a.insert("ignition".into(), ty.contains("GN").into());
    if let Some(h) = v.get(next).and_then(|s| hours(s)) {
        a.insert("hours".into(), h.into());
    }
    if let Some(km) = v.get(next + 1).and_then(|s| number(s)) {
        a.insert("odometer".into(), (km * 1000.0).into());
    }
    Ok(record(Some(b), a, sent, ctx))
}
