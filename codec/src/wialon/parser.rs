//! Wialon IPS packets to records.
//!
//! A data record is `date;time;lat;N|S;lon;E|W;speed;course;altitude;sats`
//! (short, `#SD#`), followed in the extended form (`#D#`, and black box
//! records of either form) by `hdop;inputs;outputs;adc;ibutton;params`.
//! Any field may be `NA` (or empty) for "no value". Date and time are UTC
//! (`ddmmyy`, `hhmmss[.fraction]`); `NA;NA` means "now", the receive time.
//! A record with coordinates is a position, valid with three satellites or
//! more (as Traccar judges it); one without is a status record with its
//! attributes — a position is never invented.
//!
//! Parameters are `name:type:value` (1 integer, 2 decimal, 3 text); names
//! are lowercased as Traccar does, `bat` and `temp` become `batteryLevel`
//! and `deviceTemp`, and `mcc`/`mnc`/`lac`/`cell_id` (with no suffix, then
//! 1, 2, … while complete) become `network.cellTowers`.

use serde_json::{Map, Value};

use crate::text::{self, int, number, signed_number};
use crate::{DeviceMessage, ParseContext, ParseError, Position, Record};

use super::message::{Packet, Version, FULL_FIELDS, SHORT_FIELDS};
use super::NAME;

pub(crate) fn parse(frame: &[u8], ctx: &ParseContext) -> Result<Vec<Record>, ParseError> {
    let packet = Packet::parse(frame, Version::Unknown).map_err(ParseError::Invalid)?;
    if let Some(c) = packet.checksum.filter(|c| !c.ok()) {
        return Err(ParseError::BadChecksum {
            received: c.received.into(),
            computed: c.computed.into(),
        });
    }
    match packet.kind {
        "L" => {
            packet.login().map_err(ParseError::Invalid)?;
            Ok(vec![Record::Login(DeviceMessage::new(ctx, NAME))])
        }
        "P" => Ok(vec![Record::Heartbeat(DeviceMessage::new(ctx, NAME))]),
        "SD" | "D" | "B" => {
            let archive = packet.kind == "B";
            let records = packet.records();
            if records.is_empty() {
                return Err(ParseError::Truncated(
                    "black box packet without records".into(),
                ));
            }
            records
                .iter()
                .map(|fields| record(fields, ctx, archive))
                .collect()
        }
        "M" => {
            let mut m = DeviceMessage::new(ctx, NAME);
            m.set("result", packet.body);
            Ok(vec![Record::Status(m)])
        }
        other => Err(ParseError::Unsupported(format!("packet type {other:?}"))),
    }
}

/// `NA` and empty fields hold no value.
fn value(s: &str) -> Option<&str> {
    (!s.is_empty() && s != "NA").then_some(s)
}

fn record(f: &[&str], ctx: &ParseContext, archive: bool) -> Result<Record, ParseError> {
    if f.len() != SHORT_FIELDS && f.len() != FULL_FIELDS {
        return Err(ParseError::Invalid(format!(
            "record of {} fields, expected {SHORT_FIELDS} or {FULL_FIELDS}",
            f.len()
        )));
    }
    let bad = |what: &str, v: &str| ParseError::Invalid(format!("bad {what} {v:?}"));
    let time = match (value(f[0]), value(f[1])) {
        (None, None) => ctx.received_at,
        (Some(d), Some(t)) => {
            let date = text::date_ddmmyy(d).ok_or_else(|| bad("date", d))?;
            let time = text::time_hhmmss(t).ok_or_else(|| bad("time", t))?;
            text::utc(date, time)
        }
        _ => return Err(bad("date and time", &format!("{};{}", f[0], f[1]))),
    };
    // Wialon IPS writes `DDMM.MM`: always with a point.
    let degrees = |v: &str, h: &str, max: f64| {
        Some(v)
            .filter(|v| v.contains('.') && !v.starts_with('-'))
            .and_then(|v| text::coordinate_as_written(v, h))
            .filter(|c| c.abs() <= max)
            .ok_or_else(|| bad("coordinate", &format!("{v};{h}")))
    };
    let fix = match f[2..6].iter().map(|s| value(s)).collect::<Vec<_>>()[..] {
        [None, None, None, None] => None,
        [Some(lat), Some(ns), Some(lon), Some(ew)] => {
            Some((degrees(lat, ns, 90.0)?, degrees(lon, ew, 180.0)?))
        }
        _ => return Err(bad("coordinates", &f[2..6].join(";"))),
    };
    let satellites = value(f[9])
        .and_then(int)
        .and_then(|s| u32::try_from(s).ok());
    let mut attributes = Map::new();
    if archive {
        attributes.insert("archive".into(), true.into());
    }
    if f.len() == FULL_FIELDS {
        extended(&f[SHORT_FIELDS..], &mut attributes);
    }
    let Some((latitude, longitude)) = fix else {
        let mut m = DeviceMessage::new(ctx, NAME);
        m.time = time;
        if let Some(s) = satellites {
            m.set("sat", s);
        }
        m.attributes.extend(attributes);
        return Ok(Record::Status(m));
    };
    let mut p = Position::new(&ctx.device_id, NAME, time);
    p.latitude = latitude;
    p.longitude = longitude;
    p.speed = value(f[6]).and_then(number).unwrap_or(0.0);
    p.course = value(f[7]).and_then(number).unwrap_or(0.0);
    p.altitude = value(f[8]).and_then(signed_number).unwrap_or(0.0);
    p.satellites = satellites;
    p.valid = satellites.is_some_and(|s| s >= 3);
    p.attributes = attributes;
    Ok(Record::Position(p))
}

/// `hdop;inputs;outputs;adc;ibutton;params`.
fn extended(f: &[&str], a: &mut Map<String, Value>) {
    if let Some(h) = value(f[0]).and_then(number) {
        a.insert("hdop".into(), h.into());
    }
    if let Some(v) = value(f[1]).and_then(int) {
        a.insert("input".into(), v.into());
    }
    if let Some(v) = value(f[2]).and_then(int) {
        a.insert("output".into(), v.into());
    }
    if let Some(adc) = value(f[3]) {
        for (i, v) in adc.split(',').enumerate() {
            let v = signed_number(v).map_or_else(|| Value::from(v), Value::from);
            a.insert(format!("adc{}", i + 1), v);
        }
    }
    if let Some(id) = value(f[4]) {
        a.insert("driverUniqueId".into(), id.into());
    }
    if let Some(params) = value(f[5]) {
        for param in params.split(',') {
            if let Some((name, v)) = parameter(param) {
                a.insert(name, v);
            }
        }
        rename_integer(a, "bat", "batteryLevel");
        rename_integer(a, "temp", "deviceTemp");
        cells(a);
    }
}

/// `name:type:value`: the name lowercased, the value by its type (a value
/// that does not read as its type is kept as text; text `true`/`false` is
/// a flag, as in Traccar).
fn parameter(param: &str) -> Option<(String, Value)> {
    let (name, rest) = param.split_once(':')?;
    let (kind, v) = rest.split_once(':')?;
    if name.is_empty() {
        return None;
    }
    let value = match kind {
        "1" => int(v).map_or_else(|| Value::from(v), Value::from),
        "2" => signed_number(v).map_or_else(|| Value::from(v), Value::from),
        "3" if v.eq_ignore_ascii_case("true") => Value::from(true),
        "3" if v.eq_ignore_ascii_case("false") => Value::from(false),
        "3" => Value::from(v),
        _ => return None,
    };
    Some((name.to_lowercase(), value))
}

/// A number as an integer (or a text holding one).
fn as_integer(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f.trunc() as i64)),
        Value::String(s) => int(s).or_else(|| signed_number(s).map(|f| f.trunc() as i64)),
        _ => None,
    }
}

fn rename_integer(a: &mut Map<String, Value>, from: &str, to: &str) {
    if let Some(v) = a.get(from).and_then(as_integer) {
        a.remove(from);
        a.insert(to.into(), v.into());
    }
}

/// `mcc`, `mnc`, `lac`, `cell_id`, then the same with suffixes 1 to 9 while
/// all four are there, into Traccar's `network` object.
fn cells(a: &mut Map<String, Value>) {
    let mut towers = Vec::new();
    for suffix in std::iter::once(String::new()).chain((1..=9).map(|i| i.to_string())) {
        let keys = ["mcc", "mnc", "lac", "cell_id"].map(|k| format!("{k}{suffix}"));
        let values: Vec<Option<i64>> = keys.iter().map(|k| a.get(k).and_then(as_integer)).collect();
        let [Some(mcc), Some(mnc), Some(lac), Some(cid)] = values[..] else {
            if suffix.is_empty() {
                continue;
            }
            break;
        };
        for k in &keys {
            a.remove(k);
        }
        towers.push(text::cell(mcc, mnc, lac, cid, None));
    }
    text::set_cells(a, towers);
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn ctx() -> ParseContext {
        ParseContext::new("2002", Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap())
    }

    fn one(frame: &str) -> Record {
        let mut records = parse(frame.as_bytes(), &ctx()).unwrap();
        assert_eq!(records.len(), 1);
        records.remove(0)
    }

    fn pos(frame: &str) -> Position {
        match one(frame) {
            Record::Position(p) => p,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn short_data() {
        let p = pos("#SD#270413;205601;5544.6025;N;03739.6834;E;1;2;3;4\r\n");
        assert_eq!(
            p.fix_time,
            Utc.with_ymd_and_hms(2013, 4, 27, 20, 56, 1).unwrap()
        );
        assert!(p.valid);
        assert!((p.latitude - 55.74338).abs() < 1e-5);
        assert!((p.longitude - 37.66139).abs() < 1e-5);
        assert_eq!(
            (p.speed, p.course, p.altitude, p.satellites),
            (1.0, 2.0, 3.0, Some(4))
        );
        let p = pos("#SD#021214;065947;2237.7552;N;11404.8851;E;0.000;;170.9;5");
        assert_eq!(p.course, 0.0);
        let p = pos("#SD#300924;154245;5554.350052;N;3644.670410;E;2.92;NA;NA;NA;7A01");
        assert!(!p.valid);
        assert_eq!(p.satellites, None);
    }

    #[test]
    fn extended_data() {
        let p = pos("#D#270413;205601;5544.6025;N;03739.6834;E;1;2;3;4;0.0;0;0;14.77,0.02,3.6;NA;count1:1:564,fuel:2:45.8,hw:3:V4.5");
        assert_eq!(p.attributes["adc1"], 14.77);
        assert_eq!(p.attributes["adc3"], 3.6);
        assert_eq!(p.attributes["count1"], 564);
        assert_eq!(p.attributes["fuel"], 45.8);
        assert_eq!(p.attributes["hw"], "V4.5");
        assert_eq!(p.attributes["input"], 0);
        let p = pos("#D#101118;061143;0756.0930;N;12338.6403;E;18.223;99.766;-4.000;10;0.800;NA;NA;NA;NA;101_521347:1:521249");
        assert_eq!(p.altitude, -4.0);
        assert_eq!(p.attributes["hdop"], 0.8);
        assert_eq!(p.attributes["101_521347"], 521249);
        match one("#D#NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;;NA;SOS:1:0,temp:3:18,bat:3:99") {
            Record::Status(m) => {
                assert_eq!(m.time, ctx().received_at);
                assert_eq!(m.attributes["sos"], 0);
                assert_eq!(m.attributes["deviceTemp"], 18);
                assert_eq!(m.attributes["batteryLevel"], 99);
                assert!(m.attributes.get("bat").is_none());
            }
            other => panic!("{other:?}"),
        }
        match one("#D#NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;;NA;mnc1:1:02,mcc1:1:250,lac1:1:5901,cell_id1:1:45542,mnc2:1:22,mcc2:1:222,lac2:1:2222,cell_id2:1:22222,mcc3:1:333") {
            Record::Status(m) => {
                let towers = &m.attributes["network"]["cellTowers"];
                assert_eq!(towers[0], text::cell(250, 2, 5901, 45542, None));
                assert_eq!(towers[1], text::cell(222, 22, 2222, 22222, None));
                assert_eq!(m.attributes["mcc3"], 333);
                assert!(m.attributes.get("mcc1").is_none());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn black_box() {
        let records = parse(b"#B#110315;045857;5364.0167;N;06127.8262;E;0;155;965;7|110315;045857;5364.0167;N;06127.8262;E;0;155;965;7;2.40;4;0;;NA;Uacc:2:3.4,GPS:3:Off\r\n", &ctx()).unwrap();
        assert_eq!(records.len(), 2);
        let p = records[1].as_position().unwrap();
        assert_eq!(p.attributes["archive"], true);
        assert_eq!(p.attributes["uacc"], 3.4);
        assert_eq!(p.attributes["gps"], "Off");
    }

    #[test]
    fn others() {
        assert!(matches!(one("#L#2002;NA"), Record::Login(_)));
        assert!(matches!(one("#P#\r\n"), Record::Heartbeat(_)));
        match one("#M#hello driver") {
            Record::Status(m) => assert_eq!(m.attributes["result"], "hello driver"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse(b"#L#2.0;42001300083;;CE45", &ctx()),
            Err(ParseError::BadChecksum { .. })
        ));
        assert!(parse(
            b"#SD#320413;205601;5544.6025;N;03739.6834;E;1;2;3;4",
            &ctx()
        )
        .is_err());
        assert!(parse(b"#SD#270413;205601;5544.6025;N;NA;E;1;2;3;4", &ctx()).is_err());
        assert!(parse(b"#SD#270413;205601;55446025;N;03739.6834;E;1;2;3;4", &ctx()).is_err());
        assert!(parse(
            b"#SD#270413;205601;9944.6025;N;03739.6834;E;1;2;3;4",
            &ctx()
        )
        .is_err());
        assert!(parse(
            b"#SD#270413;205601;5544.6025;X;03739.6834;E;1;2;3;4",
            &ctx()
        )
        .is_err());
        assert!(matches!(
            parse(b"#I#1;2", &ctx()),
            Err(ParseError::Unsupported(_))
        ));
    }
}
