//! Ruptela packets to records.
//!
//! A records packet (`1`) is `records_left:u8 count:u8` and `count` records of
//! `time:u32 time_ext:u8 priority:u8 lon:i32 lat:i32 (1e-7°) alt:u16 (dm)
//! course:u16 (1/100°) satellites:u8 speed:u16 (km/h) hdop:u8 (1/10)
//! event:u8`, then four groups of I/O values (1, 2, 4 and 8 bytes wide), each
//! a count and `id:u8 value` pairs. Extended records (`68`) add a record
//! extension byte after `time_ext` (how many records are merged into one,
//! and which one this is) and widen event and I/O ids to 16 bits.
//! Coordinates of `0x80000000` mean "no fix": such a record is a status
//! record, not a position.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::read::Reader;
use crate::{DeviceMessage, ParseContext, ParseError, Position, Record};

use super::frame::{self, Packet};
use super::NAME;

pub(crate) fn parse(bytes: &[u8], ctx: &ParseContext) -> Result<Vec<Record>, ParseError> {
    let p = Packet::parse(bytes).map_err(ParseError::Truncated)?;
    if !p.crc_ok() {
        return Err(ParseError::BadChecksum {
            received: u32::from(p.received_crc),
            computed: u32::from(p.computed_crc),
        });
    }
    let mut r = Reader::new(p.payload);
    match p.command {
        frame::RECORDS => records(&mut r, false, ctx),
        frame::EXTENDED_RECORDS => records(&mut r, true, ctx),
        frame::DTCS => dtcs(&mut r, ctx),
        frame::HEARTBEAT => Ok(vec![Record::Heartbeat(DeviceMessage::new(ctx, NAME))]),
        frame::IDENTIFICATION => {
            let mut m = DeviceMessage::new(ctx, NAME);
            m.set("type", frame::IDENTIFICATION);
            m.set("raw", hex::encode(p.payload));
            Ok(vec![Record::Login(m)])
        }
        frame::FILES => {
            let mut m = DeviceMessage::new(ctx, NAME);
            m.set("type", frame::FILES);
            let subtype = r.u8("file subtype")?;
            m.set("subtype", subtype);
            m.set("source", r.u8("file source")?);
            if subtype == 2 {
                let name = r.bytes(8, "file name")?;
                m.set(
                    "fileName",
                    String::from_utf8_lossy(name)
                        .trim_end_matches('\0')
                        .to_owned(),
                );
                m.set("fileParts", r.u16("file part count")?);
                m.set("filePart", r.u16("file part")?);
            }
            Ok(vec![Record::Status(m)])
        }
        frame::DEVICE_CONFIGURATION
        | frame::DEVICE_VERSION
        | frame::FIRMWARE_UPDATE
        | frame::SMS_VIA_GPRS_RESPONSE => {
            let mut m = DeviceMessage::new(ctx, NAME);
            m.set("type", p.command);
            m.set(
                "result",
                String::from_utf8_lossy(p.payload).trim().to_owned(),
            );
            Ok(vec![Record::CommandReply(m)])
        }
        frame::SET_IO => {
            let mut m = DeviceMessage::new(ctx, NAME);
            m.set("type", p.command);
            m.set("result", r.u8("set I/O result")?.to_string());
            Ok(vec![Record::CommandReply(m)])
        }
        other => Err(ParseError::Unsupported(format!("command {other}"))),
    }
}

fn time(secs: u32) -> DateTime<Utc> {
    // Any u32 of seconds is within chrono's range.
    DateTime::from_timestamp(i64::from(secs), 0).unwrap_or_default()
}

/// A decoded record before it becomes a position or a status record.
struct Item {
    time: DateTime<Utc>,
    fix: Option<Fix>,
    attributes: Map<String, Value>,
}

struct Fix {
    latitude: f64,
    longitude: f64,
    altitude: f64,
    course: f64,
    speed: f64,
    satellites: u32,
}

fn records(r: &mut Reader, extended: bool, ctx: &ParseContext) -> Result<Vec<Record>, ParseError> {
    let _records_left = r.u8("records left")?;
    let count = r.u8("record count")?;
    let mut items: Vec<Item> = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let time = time(r.u32("timestamp")?);
        r.u8("timestamp extension")?;
        // Extended records may split one record's I/O over several: the
        // high nibble says how many, the low nibble which one this is.
        let mut merge = false;
        if extended {
            let ext = r.u8("record extension")?;
            let (total, current) = (ext >> 4, ext & 0x0f);
            merge = current > 0 && current <= total && !items.is_empty();
        }
        r.u8("priority")?;
        let longitude = r.i32("longitude")?;
        let latitude = r.i32("latitude")?;
        let altitude = r.u16("altitude")?;
        let course = r.u16("course")?;
        let satellites = r.u8("satellites")?;
        let speed = r.u16("speed")?;
        let hdop = r.u8("hdop")?;
        let mut attributes = Map::new();
        let fix = (longitude != i32::MIN && latitude != i32::MIN).then(|| {
            attributes.insert("hdop".into(), (f64::from(hdop) / 10.0).into());
            Fix {
                latitude: f64::from(latitude) / 1e7,
                longitude: f64::from(longitude) / 1e7,
                altitude: f64::from(altitude) / 10.0,
                course: f64::from(course) / 100.0,
                speed: f64::from(speed),
                satellites: u32::from(satellites),
            }
        });
        let event = if extended {
            r.u16("event")?
        } else {
            u16::from(r.u8("event")?)
        };
        attributes.insert("event".into(), event.into());
        for width in [1usize, 2, 4, 8] {
            let n = r.u8("I/O count")?;
            for _ in 0..n {
                let id = if extended {
                    r.u16("I/O id")?
                } else {
                    u16::from(r.u8("I/O id")?)
                };
                let raw = r.uint(width, "I/O value")?;
                io(&mut attributes, id, width, raw);
            }
        }
        let item = Item {
            time,
            fix,
            attributes,
        };
        match items.last_mut() {
            Some(previous) if merge => {
                previous.attributes.extend(item.attributes);
                if previous.fix.is_none() {
                    previous.fix = item.fix;
                }
            }
            _ => items.push(item),
        }
    }
    Ok(items
        .into_iter()
        .map(|mut item| {
            combine(&mut item.attributes);
            to_record(item, ctx)
        })
        .collect())
}

fn to_record(item: Item, ctx: &ParseContext) -> Record {
    match item.fix {
        Some(f) => {
            let mut p = Position::new(&ctx.device_id, NAME, item.time);
            p.valid = true;
            p.latitude = f.latitude;
            p.longitude = f.longitude;
            p.altitude = f.altitude;
            p.course = f.course;
            p.speed = f.speed;
            p.satellites = Some(f.satellites);
            p.attributes = item.attributes;
            Record::Position(p)
        }
        None => {
            let mut m = DeviceMessage::new(ctx, NAME);
            m.time = item.time;
            m.attributes = item.attributes;
            Record::Status(m)
        }
    }
}

/// Adds an alarm; several are joined with commas, each once.
fn add_alarm(a: &mut Map<String, Value>, alarm: &str) {
    let joined = match a.get("alarm").and_then(Value::as_str) {
        Some(previous) if previous.split(',').any(|x| x == alarm) => return,
        Some(previous) => format!("{previous},{alarm}"),
        None => alarm.to_owned(),
    };
    a.insert("alarm".into(), joined.into());
}

/// The value as a signed number of `width` bytes.
fn signed(raw: u64, width: usize) -> i64 {
    let bits = (width * 8) as u32;
    if bits >= 64 {
        raw as i64
    } else {
        let shift = 64 - bits;
        ((raw << shift) as i64) >> shift
    }
}

/// One I/O value under Traccar's attribute name for it.
fn io(a: &mut Map<String, Value>, id: u16, width: usize, raw: u64) {
    let mut set = |key: &str, v: Value| {
        a.insert(key.to_owned(), v);
    };
    let u = raw as f64;
    match id {
        2..=5 => set(&format!("in{}", id - 1), raw.into()),
        13 | 173 => set("motion", (raw > 0).into()),
        20 => set("adc3", raw.into()),
        21 => set("adc4", raw.into()),
        22 => set("adc1", raw.into()),
        23 => set("adc2", raw.into()),
        29 => set("power", (u * 0.001).into()),
        30 => set("battery", (u * 0.001).into()),
        32 => set("deviceTemp", signed(raw, width).into()),
        34 => {
            let bytes = raw.to_be_bytes();
            set("driverUniqueId", hex::encode(&bytes[8 - width..]).into())
        }
        39 => set("engineLoad", raw.into()),
        65 => set("odometer", raw.into()),
        74 => set("temp3", (signed(raw, width) as f64 * 0.1).into()),
        78..=80 => set(
            &format!("temp{}", id - 78),
            (signed(raw, width) as f64 * 0.1).into(),
        ),
        88 if raw > 0 => add_alarm(a, "jamming"),
        94 => set("rpm", (u * 0.25).into()),
        95 => set("obdSpeed", raw.into()),
        98 => set("fuel", (u * 100.0 / 255.0).into()),
        100 => set("fuelConsumption", (u / 20.0).into()),
        134 if raw > 0 => add_alarm(a, "hardBraking"),
        136 if raw > 0 => add_alarm(a, "hardAcceleration"),
        150 => set("operator", raw.into()),
        163 => set("odometer", raw.saturating_mul(5).into()),
        164 => set("tripOdometer", raw.saturating_mul(5).into()),
        165 => set("obdSpeed", (u / 256.0).into()),
        166 | 197 => set("rpm", (u * 0.125).into()),
        170 => set("charge", (raw > 0).into()),
        205 => set("fuel", raw.into()),
        207 => set("fuel", (u * 0.4).into()),
        208 => set("fuelUsed", (u * 0.5).into()),
        251 | 409 => set("ignition", (raw > 0).into()),
        410 if raw > 0 => add_alarm(a, "tow"),
        411 if raw > 0 => add_alarm(a, "accident"),
        415 if raw == 0 => add_alarm(a, "gpsAntennaCut"),
        645 => set("obdOdometer", raw.saturating_mul(1000).into()),
        758 if raw == 1 => add_alarm(a, "tampering"),
        88 | 134 | 136 | 410 | 411 | 415 | 758 => {}
        _ => set(&format!("io{id}"), raw.into()),
    }
}

/// Driver ids sent as two 8-byte halves of ASCII (CAN `io126`+`io127`,
/// tachograph `io155`+`io156`) and RFID tags (`io760`+`io761`).
fn combine(a: &mut Map<String, Value>) {
    for (first, second) in [("io126", "io127"), ("io155", "io156")] {
        let (Some(x), Some(y)) = (
            a.get(first).and_then(Value::as_u64),
            a.get(second).and_then(Value::as_u64),
        ) else {
            continue;
        };
        a.remove(first);
        a.remove(second);
        let bytes = [x.to_be_bytes(), y.to_be_bytes()].concat();
        a.insert(
            "driverUniqueId".into(),
            String::from_utf8_lossy(&bytes).into_owned().into(),
        );
    }
    if let (Some(x), Some(y)) = (
        a.get("io760").and_then(Value::as_u64),
        a.get("io761").and_then(Value::as_u64),
    ) {
        a.remove("io760");
        a.remove("io761");
        a.insert("tagId".into(), format!("{x:x}{y:x}").into());
    }
}

fn dtcs(r: &mut Reader, ctx: &ParseContext) -> Result<Vec<Record>, ParseError> {
    let count = r.u8("DTC count")?;
    let mut out = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        r.u8("reserved")?;
        let time = time(r.u32("timestamp")?);
        let longitude = r.i32("longitude")?;
        let latitude = r.i32("latitude")?;
        let archive = r.u8("archive flag")? == 2;
        let code = String::from_utf8_lossy(r.bytes(5, "DTC")?).into_owned();
        let mut attributes = Map::new();
        if archive {
            attributes.insert("archive".into(), true.into());
        }
        attributes.insert("dtcs".into(), code.into());
        let fix = (longitude != i32::MIN && latitude != i32::MIN).then(|| Fix {
            latitude: f64::from(latitude) / 1e7,
            longitude: f64::from(longitude) / 1e7,
            altitude: 0.0,
            course: 0.0,
            speed: 0.0,
            satellites: 0,
        });
        let mut record = to_record(
            Item {
                time,
                fix,
                attributes,
            },
            ctx,
        );
        if let Record::Position(p) = &mut record {
            p.satellites = None;
        }
        out.push(record);
    }
    let _ = r.rest();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn ctx() -> ParseContext {
        ParseContext::new(
            "863591024076709",
            Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
        )
    }

    fn run(h: &str) -> Vec<Record> {
        parse(&hex::decode(h).unwrap(), &ctx()).unwrap()
    }

    #[test]
    fn one_record() {
        let records = run("00560003116e7438a7a50100015565cbb9000020fd21300f113f4600005f000600090d090805011b13cf00020003001c012029ad00041d31dd1e0ebd160000c50000047200000000d0000000004100016a2a960000a5a300c9ee");
        assert_eq!(records.len(), 1);
        let Record::Position(p) = &records[0] else {
            panic!("{records:?}")
        };
        assert_eq!(p.fix_time, Utc.timestamp_opt(0x5565cbb9, 0).unwrap());
        assert!((p.longitude - 0x20fd2130 as f64 / 1e7).abs() < 1e-9);
        assert!((p.latitude - 0x0f113f46 as f64 / 1e7).abs() < 1e-9);
        assert_eq!(p.satellites, Some(6));
        assert_eq!(p.speed, 9.0);
        assert_eq!(p.course, 0x5f00 as f64 / 100.0);
        assert_eq!(p.attributes["hdop"], 1.3);
        assert_eq!(p.attributes["event"], 9);
    }

    #[test]
    fn extended_records_with_driver() {
        let records = run("01460003115c885fa8c6440003674f43df002000fb7291ce13fc9230040e400618003d0500080f00ce0001990100823d008600008700008800000201000300000400019500019601001b1e00ad0000b03d01a201070083000000890000008b00030016009d0017009f001d33d6001e1038020041000a6b3f00960000ebf201002201d042f31d000030674f43df002100fb7291ce13fc9230040e400618003d0500080803a000005f3c00607600613c00622000630400650000670009023000000399003d039c0009039806c6005e1b180064004600660000006b066a0282000901039a00005a67030068555531444a46303000693537303637383230006a3500000000000000674f43df002200fb7291ce13fc9230040e400618003d0500080302d2ff047cff047eff04019700f60198000302d3ffff03b6000002028500005a6702f2000068a800092b");
        // Three parts of one record, merged.
        assert_eq!(records.len(), 1);
        assert_eq!(
            records[0].attributes()["driverUniqueId"],
            "01d042f31d000030"
        );
        assert_eq!(records[0].attributes()["ignition"], true);
    }

    #[test]
    fn without_fix_is_status() {
        let records = run("007900000b1a2a5585c30100024e9c036900000f101733208ff45e07b31b570a001009090605011b1a020003001c01ad01021d338e16000002960000601a41014bc16d004e9c038400000f104fdf20900d20075103b00a001308090605011b1a020003001c01ad01021d33b116000002960000601a41014bc1ea0028f9");
        assert_eq!(records.len(), 2);
        assert!(records.iter().all(|r| r.as_position().is_some()));
        let mut packet = encode::records(1, &[], 7).unwrap().to_vec();
        assert!(parse(&packet, &ctx()).unwrap().is_empty());
        // A record with 0x80000000 coordinates.
        packet = hex::decode(
            "00240000000000000001010001386d438b000080000000800000008000ffffffffffff0700000000",
        )
        .unwrap();
        let crc = super::frame::crc(&packet[2..]);
        packet.extend_from_slice(&crc.to_be_bytes());
        let records = parse(&packet, &ctx()).unwrap();
        assert!(matches!(&records[0], Record::Status(m) if m.attributes["event"] == 7));
    }

    #[test]
    fn command_replies() {
        let records =
            run("0011000315a07f440b1d07534554494f20636f6e66696775726174696f6e2064617461206f6b341c");
        assert!(
            matches!(&records[0], Record::CommandReply(m) if m.attributes["result"] == "SETIO configuration data ok")
        );
        let mut bad = hex::decode(
            "0011000315a07f440b1d07534554494f20636f6e66696775726174696f6e2064617461206f6b341c",
        )
        .unwrap();
        bad[20] ^= 1;
        assert!(matches!(
            parse(&bad, &ctx()),
            Err(ParseError::BadChecksum { .. })
        ));
    }

    #[test]
    fn truncated_records() {
        let good = hex::decode("00560003116e7438a7a50100015565cbb9000020fd21300f113f4600005f000600090d090805011b13cf00020003001c012029ad00041d31dd1e0ebd160000c50000047200000000d0000000004100016a2a960000a5a300c9ee").unwrap();
        let mut cut = good[..40].to_vec();
        let crc = super::frame::crc(&cut[2..]);
        cut.extend_from_slice(&crc.to_be_bytes());
        assert!(matches!(parse(&cut, &ctx()), Err(ParseError::Truncated(_))));
    }

    use super::super::encode;
}
