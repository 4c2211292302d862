//! What the unit tests of the dead files start from: a letter of either
//! stage from device `1` of `teltonika`, with the headers and payload a
//! test gives it.

use async_nats::HeaderMap;
use bytes::Bytes;
use chrono::Utc;
use fleetbus_wire::names::dead_subject;
use fleetbus_wire::DeadStage;

use super::letter::Letter;

pub(super) fn letter(stage: DeadStage, headers: &[(&str, &str)], payload: &[u8]) -> Letter {
    let mut h = HeaderMap::new();
    for (n, v) in headers {
        h.insert(*n, *v);
    }
    Letter {
        sequence: 9,
        stored: Utc::now(),
        subject: dead_subject(stage, "teltonika", "1"),
        headers: h,
        payload: Bytes::copy_from_slice(payload),
        payload_len: payload.len(),
    }
}
