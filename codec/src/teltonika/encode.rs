//! What a Teltonika device sends, and what the server answers: for the
//! simulator, and for round-trip tests against the framer and parser.
//!
//! Positions are written with the wire format's precision: 1e-7 degrees,
//! whole metres, degrees and km/h (rounded; out-of-range values saturate).

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::Value;
use thiserror::Error;

use crate::checksum::crc16_ibm;
use crate::Position;

use super::codec::{CODEC_12, CODEC_16, CODEC_8, CODEC_8E};
use super::serial::{TYPE_COMMAND, TYPE_RESPONSE};

pub use super::envelope::PING;

/// Codec 16 generation type written by the encoder: periodical.
pub const GENERATION_PERIODICAL: u8 = 7;

/// Why records could not be encoded with the chosen codec.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum EncodeError {
    #[error("{0} records do not fit in one packet (at most 255)")]
    TooManyRecords(usize),
    #[error("{what} {value} does not fit the {codec} field")]
    DoesNotFit {
        what: &'static str,
        value: usize,
        codec: &'static str,
    },
    #[error("variable-length IO element {id} needs Codec 8 Extended")]
    VariableNeeds8E { id: u16 },
    #[error("fix time {0} is before 1970 and has no Teltonika timestamp")]
    BeforeEpoch(String),
    #[error("message of {0} bytes is too long")]
    TooLong(usize),
}

/// The codecs that carry AVL records, as the encoder writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AvlCodec {
    Codec8,
    Codec8E,
    Codec16,
}

impl AvlCodec {
    pub fn id(self) -> u8 {
        match self {
            AvlCodec::Codec8 => CODEC_8,
            AvlCodec::Codec8E => CODEC_8E,
            AvlCodec::Codec16 => CODEC_16,
        }
    }

    fn name(self) -> &'static str {
        match self {
            AvlCodec::Codec8 => "Codec 8",
            AvlCodec::Codec8E => "Codec 8 Extended",
            AvlCodec::Codec16 => "Codec 16",
        }
    }

    fn wide_ids(self) -> bool {
        self != AvlCodec::Codec8
    }

    fn wide_counts(self) -> bool {
        self == AvlCodec::Codec8E
    }
}

/// The value of one IO element; its variant decides its group on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IoValue {
    U8(u8),
    U16(u16),
    U32(u32),
    U64(u64),
    /// Variable length (Codec 8 Extended only).
    Bytes(Vec<u8>),
}

impl IoValue {
    /// The narrowest fixed-size value holding `v`.
    pub fn narrowest(v: u64) -> Self {
        if let Ok(v) = u8::try_from(v) {
            IoValue::U8(v)
        } else if let Ok(v) = u16::try_from(v) {
            IoValue::U16(v)
        } else if let Ok(v) = u32::try_from(v) {
            IoValue::U32(v)
        } else {
            IoValue::U64(v)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoElement {
    pub id: u16,
    pub value: IoValue,
}

impl IoElement {
    pub fn new(id: u16, value: IoValue) -> Self {
        IoElement { id, value }
    }
}

/// One AVL record to encode.
#[derive(Debug, Clone, PartialEq)]
pub struct AvlRecord<'a> {
    pub position: &'a Position,
    /// 0 low, 1 high, 2 panic.
    pub priority: u8,
    /// The IO id that triggered the record, 0 for periodic records.
    pub event_id: u16,
    pub io: Vec<IoElement>,
}

impl<'a> AvlRecord<'a> {
    /// A record whose priority, event and IO elements come from the
    /// position's attributes (see [`io_from_attributes`]).
    pub fn from_position(position: &'a Position) -> Self {
        let attr = |key| position.attributes.get(key).and_then(Value::as_u64);
        AvlRecord {
            position,
            priority: attr("priority")
                .and_then(|v| u8::try_from(v).ok())
                .unwrap_or(0),
            event_id: attr("event")
                .and_then(|v| u16::try_from(v).ok())
                .unwrap_or(0),
            io: io_from_attributes(position),
        }
    }
}

/// IO elements for the attributes the parser produces from them: the
/// inverse of the parser's mapping for `ignition`, `motion`, `in1`–`in4`,
/// `out1`/`out2`, `rssi`, `power`, `battery` (V), `pdop`, `hdop`,
/// `odometer`, `tripOdometer`, `operator`, and `io<N>` (number, or hex text
/// for a variable-length element). Other attributes are not sent.
pub fn io_from_attributes(p: &Position) -> Vec<IoElement> {
    let mut out = Vec::new();
    for (key, value) in &p.attributes {
        let flag = |id| {
            value
                .as_bool()
                .map(|b| IoElement::new(id, IoValue::U8(u8::from(b))))
        };
        let scaled = |id, factor: f64| {
            value
                .as_f64()
                .map(|v| IoElement::new(id, IoValue::U16((v * factor).round() as u16)))
        };
        let int = |id| {
            value
                .as_u64()
                .map(|v| IoElement::new(id, IoValue::narrowest(v)))
        };
        let element = match key.as_str() {
            "ignition" => flag(239),
            "motion" => flag(240),
            "in1" => flag(1),
            "in2" => flag(2),
            "in3" => flag(3),
            "in4" => flag(4),
            "out1" => flag(179),
            "out2" => flag(180),
            "power" => scaled(66, 1000.0),
            "battery" => scaled(67, 1000.0),
            "pdop" => scaled(181, 10.0),
            "hdop" => scaled(182, 10.0),
            "rssi" => int(21),
            "odometer" => value
                .as_u64()
                .map(|v| IoElement::new(16, IoValue::U32(v as u32))),
            "tripOdometer" => value
                .as_u64()
                .map(|v| IoElement::new(199, IoValue::U32(v as u32))),
            "operator" => value
                .as_u64()
                .map(|v| IoElement::new(241, IoValue::U32(v as u32))),
            other => other
                .strip_prefix("io")
                .and_then(|n| n.parse::<u16>().ok())
                .and_then(|id| match value {
                    Value::String(text) => hex::decode(text)
                        .ok()
                        .map(|b| IoElement::new(id, IoValue::Bytes(b))),
                    // Negative numbers are 8-byte values, which the parser reads as signed.
                    _ => value
                        .as_u64()
                        .map(IoValue::narrowest)
                        .or_else(|| value.as_i64().map(|v| IoValue::U64(v as u64)))
                        .map(|v| IoElement::new(id, v)),
                }),
        };
        out.extend(element);
    }
    out
}

/// The IMEI login a device opens its connection with.
pub fn login(imei: &str) -> Bytes {
    let imei = &imei.as_bytes()[..imei.len().min(usize::from(u16::MAX))];
    let mut b = BytesMut::with_capacity(2 + imei.len());
    b.put_u16(imei.len() as u16);
    b.put_slice(imei);
    b.freeze()
}

/// The server's answer to an AVL packet over TCP: the number of records it
/// accepted.
pub fn ack(count: u32) -> [u8; 4] {
    count.to_be_bytes()
}

/// The server's answer to an AVL packet over UDP.
pub fn udp_ack(packet_id: u16, avl_packet_id: u8, count: u8) -> [u8; 7] {
    let id = packet_id.to_be_bytes();
    [0x00, 0x05, id[0], id[1], 0x01, avl_packet_id, count]
}

/// Wraps a data field (codec id … second record count) in the TCP envelope:
/// preamble, length and CRC.
pub fn raw_frame(data: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(data.len() + 12);
    b.put_u32(0);
    b.put_u32(data.len() as u32);
    b.put_slice(data);
    b.put_u32(u32::from(crc16_ibm(data)));
    b.freeze()
}

/// The data field (codec id … second record count) of an AVL packet.
pub fn avl_data(codec: AvlCodec, records: &[AvlRecord]) -> Result<Vec<u8>, EncodeError> {
    let count =
        u8::try_from(records.len()).map_err(|_| EncodeError::TooManyRecords(records.len()))?;
    let mut b = vec![codec.id(), count];
    for record in records {
        write_record(&mut b, codec, record)?;
    }
    b.push(count);
    Ok(b)
}

/// A TCP AVL packet of `records`.
pub fn avl_frame(codec: AvlCodec, records: &[AvlRecord]) -> Result<Bytes, EncodeError> {
    Ok(raw_frame(&avl_data(codec, records)?))
}

/// A TCP AVL packet of `positions`, with IO elements from their attributes.
pub fn positions_frame(codec: AvlCodec, positions: &[Position]) -> Result<Bytes, EncodeError> {
    let records: Vec<AvlRecord> = positions.iter().map(AvlRecord::from_position).collect();
    avl_frame(codec, &records)
}

/// A Codec 8 packet of `positions` (see [`positions_frame`]).
pub fn codec8(positions: &[Position]) -> Result<Bytes, EncodeError> {
    positions_frame(AvlCodec::Codec8, positions)
}

/// A Codec 8 Extended packet of `positions` (see [`positions_frame`]).
pub fn codec8e(positions: &[Position]) -> Result<Bytes, EncodeError> {
    positions_frame(AvlCodec::Codec8E, positions)
}

/// A Codec 16 packet of `positions` (see [`positions_frame`]).
pub fn codec16(positions: &[Position]) -> Result<Bytes, EncodeError> {
    positions_frame(AvlCodec::Codec16, positions)
}

/// A UDP packet of `records` from device `imei`.
pub fn udp_packet(
    packet_id: u16,
    avl_packet_id: u8,
    imei: &str,
    codec: AvlCodec,
    records: &[AvlRecord],
) -> Result<Bytes, EncodeError> {
    let data = avl_data(codec, records)?;
    let body_len = 2 + 1 + 1 + 2 + imei.len() + data.len();
    let len = u16::try_from(body_len).map_err(|_| EncodeError::TooLong(body_len))?;
    let mut b = BytesMut::with_capacity(2 + body_len);
    b.put_u16(len);
    b.put_u16(packet_id);
    b.put_u8(0x01);
    b.put_u8(avl_packet_id);
    b.put_u16(imei.len() as u16);
    b.put_slice(imei.as_bytes());
    b.put_slice(&data);
    Ok(b.freeze())
}

/// A Codec 12 command from the server (e.g. `getinfo`).
pub fn command(text: &str) -> Result<Bytes, EncodeError> {
    codec12(TYPE_COMMAND, text.as_bytes())
}

/// A device's Codec 12 response to a command.
pub fn command_response(text: &str) -> Result<Bytes, EncodeError> {
    codec12(TYPE_RESPONSE, text.as_bytes())
}

fn codec12(kind: u8, payload: &[u8]) -> Result<Bytes, EncodeError> {
    let size = u32::try_from(payload.len()).map_err(|_| EncodeError::TooLong(payload.len()))?;
    let mut data = vec![CODEC_12, 1, kind];
    data.extend_from_slice(&size.to_be_bytes());
    data.extend_from_slice(payload);
    data.push(1);
    Ok(raw_frame(&data))
}

fn write_record(b: &mut Vec<u8>, codec: AvlCodec, r: &AvlRecord) -> Result<(), EncodeError> {
    let p = r.position;
    let ms = u64::try_from(p.fix_time.timestamp_millis())
        .map_err(|_| EncodeError::BeforeEpoch(p.fix_time.to_rfc3339()))?;
    b.extend_from_slice(&ms.to_be_bytes());
    b.push(r.priority);
    b.extend_from_slice(&((p.longitude * 1e7).round() as i32).to_be_bytes());
    b.extend_from_slice(&((p.latitude * 1e7).round() as i32).to_be_bytes());
    b.extend_from_slice(&(p.altitude.round() as i16).to_be_bytes());
    b.extend_from_slice(&(p.course.round() as u16).to_be_bytes());
    b.push(
        p.satellites
            .map_or(0, |s| u8::try_from(s).unwrap_or(u8::MAX)),
    );
    b.extend_from_slice(&(p.speed.round() as u16).to_be_bytes());
    write_id(b, codec, r.event_id, "event id")?;
    if codec == AvlCodec::Codec16 {
        b.push(GENERATION_PERIODICAL);
    }

    let group = |width: usize| -> Vec<&IoElement> {
        r.io.iter()
            .filter(|e| {
                matches!(
                    (&e.value, width),
                    (IoValue::U8(_), 1)
                        | (IoValue::U16(_), 2)
                        | (IoValue::U32(_), 4)
                        | (IoValue::U64(_), 8)
                        | (IoValue::Bytes(_), 0)
                )
            })
            .collect()
    };
    let variable = group(0);
    if let (Some(e), false) = (variable.first(), codec == AvlCodec::Codec8E) {
        return Err(EncodeError::VariableNeeds8E { id: e.id });
    }
    // Devices count the variable-length elements in the total too.
    write_count(b, codec, r.io.len(), "total IO count")?;
    for width in [1, 2, 4, 8] {
        let elements = group(width);
        write_count(b, codec, elements.len(), "IO count")?;
        for e in elements {
            write_id(b, codec, e.id, "IO id")?;
            match e.value {
                IoValue::U8(v) => b.push(v),
                IoValue::U16(v) => b.extend_from_slice(&v.to_be_bytes()),
                IoValue::U32(v) => b.extend_from_slice(&v.to_be_bytes()),
                IoValue::U64(v) => b.extend_from_slice(&v.to_be_bytes()),
                IoValue::Bytes(_) => {}
            }
        }
    }
    if codec == AvlCodec::Codec8E {
        write_count(b, codec, variable.len(), "variable IO count")?;
        for e in variable {
            if let IoValue::Bytes(v) = &e.value {
                let len = u16::try_from(v.len()).map_err(|_| EncodeError::TooLong(v.len()))?;
                b.extend_from_slice(&e.id.to_be_bytes());
                b.extend_from_slice(&len.to_be_bytes());
                b.extend_from_slice(v);
            }
        }
    }
    Ok(())
}

fn write_count(
    b: &mut Vec<u8>,
    codec: AvlCodec,
    n: usize,
    what: &'static str,
) -> Result<(), EncodeError> {
    let too_big = || EncodeError::DoesNotFit {
        what,
        value: n,
        codec: codec.name(),
    };
    if codec.wide_counts() {
        b.extend_from_slice(&u16::try_from(n).map_err(|_| too_big())?.to_be_bytes());
    } else {
        b.push(u8::try_from(n).map_err(|_| too_big())?);
    }
    Ok(())
}

fn write_id(
    b: &mut Vec<u8>,
    codec: AvlCodec,
    id: u16,
    what: &'static str,
) -> Result<(), EncodeError> {
    if codec.wide_ids() {
        b.extend_from_slice(&id.to_be_bytes());
    } else {
        let id = u8::try_from(id).map_err(|_| EncodeError::DoesNotFit {
            what,
            value: usize::from(id),
            codec: codec.name(),
        })?;
        b.push(id);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::teltonika::{parse, Framer, MAX_FRAME};
    use crate::{ParseContext, Record};
    use chrono::{TimeZone, Utc};
    use tokio_util::codec::Decoder;

    fn position() -> Position {
        let t = Utc.with_ymd_and_hms(2019, 6, 10, 10, 4, 46).unwrap();
        let mut p = Position::new("356307042441013", "teltonika", t);
        p.valid = true;
        p.latitude = 54.6991882;
        p.longitude = -25.4732167;
        p.altitude = 120.0;
        p.course = 90.0;
        p.speed = 42.0;
        p.satellites = Some(9);
        p.set("priority", 1);
        p.set("event", 239);
        p.set("ignition", true);
        p.set("power", 12.841);
        p.set("odometer", 183_420);
        p
    }

    #[test]
    fn login_and_acks() {
        assert_eq!(
            hex::encode(login("356307042441013")),
            "000f333536333037303432343431303133"
        );
        assert_eq!(ack(1), [0, 0, 0, 1]);
        assert_eq!(ack(0x0102), [0, 0, 1, 2]);
        assert_eq!(udp_ack(0xcafe, 5, 2), [0, 5, 0xca, 0xfe, 1, 5, 2]);
    }

    #[test]
    fn wiki_codec8_example_is_reproduced() {
        // Teltonika's first Codec 8 example: 2019-06-10T10:04:46Z, priority 1,
        // no fix, event 1, IO 21=3 1=1 66=24079 241=24602 78=0.
        let t = Utc.timestamp_millis_opt(0x0000_016b_40d8_ea30).unwrap();
        let p = Position::new("1", "teltonika", t);
        let io = vec![
            IoElement::new(21, IoValue::U8(3)),
            IoElement::new(1, IoValue::U8(1)),
            IoElement::new(66, IoValue::U16(0x5e0f)),
            IoElement::new(241, IoValue::U32(0x601a)),
            IoElement::new(78, IoValue::U64(0)),
        ];
        let rec = AvlRecord {
            position: &p,
            priority: 1,
            event_id: 1,
            io,
        };
        let frame = avl_frame(AvlCodec::Codec8, &[rec]).unwrap();
        assert_eq!(
            hex::encode(&frame),
            "000000000000003608010000016b40d8ea30010000000000000000000000000000000105021503010101425e0f01f10000601a014e0000000000000000010000c7cf"
        );
    }

    #[test]
    fn every_codec_round_trips_through_framer_and_parser() {
        let p = position();
        for codec in [AvlCodec::Codec8, AvlCodec::Codec8E, AvlCodec::Codec16] {
            let frame = positions_frame(codec, std::slice::from_ref(&p)).unwrap();
            let mut buf = BytesMut::from(&frame[..]);
            let cut = Framer::new(MAX_FRAME).decode(&mut buf).unwrap().unwrap();
            let ctx = ParseContext::new("356307042441013", Utc::now());
            let records = parse(&cut, &ctx).unwrap();
            assert_eq!(records, vec![Record::Position(p.clone())], "{codec:?}");
        }
    }

    #[test]
    fn variable_io_only_in_8e_and_ids_must_fit() {
        let p = Position::new("1", "teltonika", Utc::now());
        let rec = AvlRecord {
            position: &p,
            priority: 0,
            event_id: 0,
            io: vec![IoElement::new(385, IoValue::Bytes(vec![1]))],
        };
        assert_eq!(
            avl_frame(AvlCodec::Codec8, std::slice::from_ref(&rec)),
            Err(EncodeError::VariableNeeds8E { id: 385 })
        );
        assert!(avl_frame(AvlCodec::Codec8E, &[rec]).is_ok());
        let rec = AvlRecord {
            position: &p,
            priority: 0,
            event_id: 300,
            io: vec![],
        };
        assert!(matches!(
            avl_frame(AvlCodec::Codec8, &[rec]),
            Err(EncodeError::DoesNotFit { .. })
        ));
    }

    #[test]
    fn command_response_parses_as_a_command_reply() {
        let frame = command_response("Hello").unwrap();
        let ctx = ParseContext::new("1", Utc::now());
        let records = parse(&frame, &ctx).unwrap();
        assert!(
            matches!(&records[..], [Record::CommandReply(m)] if m.attributes["result"] == "Hello")
        );
        // The server's own command, as the Teltonika documentation shows it.
        assert_eq!(
            hex::encode(command("getinfo").unwrap()),
            "000000000000000f0c010500000007676574696e666f0100004312"
        );
    }
}
