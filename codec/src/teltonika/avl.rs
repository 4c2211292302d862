//! AVL records of Codecs 8, 8 Extended and 16: each record is a timestamp, a
//! priority, a GPS element and IO elements grouped by value size.
//!
//! | codec | event id | IO counts | IO ids | extra |
//! | --- | --- | --- | --- | --- |
//! | 8   | 1 byte  | 1 byte  | 1 byte  | |
//! | 8E  | 2 bytes | 2 bytes | 2 bytes | variable-length (NX) group |
//! | 16  | 2 bytes | 1 byte  | 2 bytes | generation type byte after the event id |

use chrono::{DateTime, Utc};

use crate::{ParseError, Position, Record};

use super::codec::{CODEC_16, CODEC_8E};
use super::reader::Reader;
use super::{io, nx, NAME};

#[derive(Debug, Clone, Copy)]
struct Layout {
    wide_ids: bool,
    wide_counts: bool,
    generation_type: bool,
    variable_group: bool,
    /// A group of 16-byte values after the 8-byte group. Some firmware sends
    /// it (Traccar enables it with its `extended` option); it is detected
    /// here by the records not fitting the packet without it.
    sixteen_byte_group: bool,
}

impl Layout {
    fn of(codec: u8, sixteen_byte_group: bool) -> Self {
        Layout {
            wide_ids: matches!(codec, CODEC_8E | CODEC_16),
            wide_counts: codec == CODEC_8E,
            generation_type: codec == CODEC_16,
            variable_group: codec == CODEC_8E,
            sixteen_byte_group,
        }
    }

    fn count(self, r: &mut Reader, what: &str) -> Result<u16, ParseError> {
        if self.wide_counts {
            r.u16(what)
        } else {
            r.u8(what).map(u16::from)
        }
    }

    fn id(self, r: &mut Reader) -> Result<u16, ParseError> {
        if self.wide_ids {
            r.u16("IO id")
        } else {
            r.u8("IO id").map(u16::from)
        }
    }
}

/// Parses `count` records filling `body` (the data field between the two
/// record counts) exactly.
pub(crate) fn parse(
    codec: u8,
    count: u8,
    body: &[u8],
    device_id: &str,
) -> Result<Vec<Record>, ParseError> {
    records(Layout::of(codec, false), count, body, device_id).or_else(|first| {
        records(Layout::of(codec, true), count, body, device_id).map_err(|_| first)
    })
}

fn records(
    layout: Layout,
    count: u8,
    body: &[u8],
    device_id: &str,
) -> Result<Vec<Record>, ParseError> {
    let mut r = Reader::new(body);
    let mut out = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        out.push(Record::Position(record(&mut r, layout, device_id)?));
    }
    r.finish("AVL data after the last record")?;
    Ok(out)
}

pub(crate) fn time_from_millis(ms: u64) -> Result<DateTime<Utc>, ParseError> {
    i64::try_from(ms)
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .ok_or_else(|| ParseError::Invalid(format!("timestamp {ms} ms is out of range")))
}

fn record(r: &mut Reader, layout: Layout, device_id: &str) -> Result<Position, ParseError> {
    let fix_time = time_from_millis(r.u64("timestamp")?)?;
    let mut p = Position::new(device_id, NAME, fix_time);
    p.set("priority", r.u8("priority")?);
    p.longitude = f64::from(r.i32("longitude")?) / 1e7;
    p.latitude = f64::from(r.i32("latitude")?) / 1e7;
    p.altitude = f64::from(r.i16("altitude")?);
    p.course = f64::from(r.u16("angle")?);
    let satellites = r.u8("satellites")?;
    p.satellites = Some(u32::from(satellites));
    // Teltonika sends no validity flag; like Traccar, a fix without
    // satellites is the last known position repeated, so not valid.
    p.valid = satellites != 0;
    p.speed = f64::from(r.u16("speed")?);
    let event = layout.id(r)?;
    p.set("event", event);
    if layout.generation_type {
        r.u8("generation type")?;
    }
    // The total is redundant with the group counts (and firmware disagrees
    // on whether it includes the NX group), so it is not checked.
    layout.count(r, "total IO count")?;
    for width in [1, 2, 4, 8] {
        for _ in 0..layout.count(r, "IO count")? {
            let id = layout.id(r)?;
            let raw = r.uint(width, "IO value")?;
            io::apply(&mut p, id, raw, width);
        }
    }
    if layout.sixteen_byte_group {
        for _ in 0..layout.count(r, "16-byte IO count")? {
            let id = layout.id(r)?;
            nx::raw(&mut p, id, r.take(16, "16-byte IO value")?);
        }
    }
    if layout.variable_group {
        for _ in 0..r.u16("variable IO count")? {
            let id = r.u16("IO id")?;
            let len = r.u16("variable IO length")?;
            let value = r.take(usize::from(len), "variable IO value")?;
            nx::apply(&mut p, id, value);
        }
    }
    Ok(p)
}
