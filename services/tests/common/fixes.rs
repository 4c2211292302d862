//! Fixes and frames as devices send them, the headers a gateway puts on a
//! RAW frame, and those a hamster puts on a PARSED message of a frame.

use async_nats::HeaderMap;
use bytes::Bytes;
use chrono::{DateTime, TimeZone, Utc};
use fleetbus_codec::{teltonika, Position};
use fleetbus_wire::{headers, ids};

/// 2026-11-29 at 12:`minute`:00 UTC.
pub fn at_minute(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 29, 12, minute, 0).unwrap()
}

/// A valid fix in Vilnius at `at`, with 9 satellites, standing still.
pub fn position_at(device: &str, protocol: &str, at: DateTime<Utc>) -> Position {
    let mut p = Position::new(device, protocol, at);
    p.valid = true;
    p.latitude = 54.6872;
    p.longitude = 25.2797;
    p.satellites = Some(9);
    p
}

/// [`position_at`] 12:`minute`, driving at 42 km/h.
pub fn moving(device: &str, protocol: &str, minute: u32) -> Position {
    let mut p = position_at(device, protocol, at_minute(minute));
    p.speed = 42.0;
    p
}

/// A Teltonika Codec 8 frame of one fix, [`moving`] at 12:`minute`.
pub fn teltonika_frame(imei: &str, minute: u32) -> Bytes {
    teltonika::encode::codec8(&[moving(imei, "teltonika", minute)]).unwrap()
}

/// The headers a gateway puts on a RAW frame: its message id, protocol,
/// device and when it came.
pub fn gateway_headers(protocol: &str, device: &str, frame: &[u8], received_at: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        headers::MSG_ID,
        ids::raw_msg_id(protocol, device, frame).as_str(),
    );
    h.insert(headers::PROTOCOL, protocol);
    h.insert(headers::DEVICE, device);
    h.insert(headers::RECEIVED_AT, received_at);
    h
}

/// The headers a hamster puts on the PARSED message of the `records`
/// records of RAW frame `raw_id`: its message id, the RAW id, the record
/// count, protocol and device (no arrival time, gateway or model).
pub fn parsed_headers(protocol: &str, device: &str, raw_id: &str, records: usize) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        headers::MSG_ID,
        ids::parsed_frame_msg_id(raw_id, records).as_str(),
    );
    h.insert(headers::RAW_ID, raw_id);
    h.insert(headers::RECORDS, records.to_string().as_str());
    h.insert(headers::PROTOCOL, protocol);
    h.insert(headers::DEVICE, device);
    h
}
