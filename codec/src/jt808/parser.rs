//! JT/T 808 messages to records (see `location` and `transparent` for the
//! large ones).

use chrono::Duration;

use crate::read::Reader;
use crate::text;
use crate::{DeviceMessage, ParseContext, ParseError, Position, Record};

use super::frame::Frame;
use super::location::{location, read_date, TIME_ZONE_HOURS};
use super::msg;
use super::transparent::transparent;
use super::NAME;

pub(crate) fn parse(bytes: &[u8], ctx: &ParseContext) -> Result<Vec<Record>, ParseError> {
    if bytes.first() == Some(&b'(') {
        return Ok(text_message(bytes, ctx));
    }
    let f = Frame::parse(bytes).map_err(ParseError::Invalid)?;
    let model = ctx.model.as_deref();
    let message = || DeviceMessage::new(ctx, NAME);
    Ok(match f.id {
        msg::REGISTER | msg::AUTH => vec![Record::Login(message())],
        msg::HEARTBEAT => {
            let mut m = message();
            if let [level, rssi, status, ..] = *f.body {
                m.set("batteryLevel", level);
                m.set("rssi", rssi);
                m.set("status", status);
            }
            vec![Record::Heartbeat(m)]
        }
        msg::LOCATION => {
            let mut r = Reader::new(f.body_and_trailer);
            vec![Record::Position(location(&mut r, ctx, model)?)]
        }
        msg::LOCATION_QUERY_RESPONSE => {
            let mut r = Reader::new(f.body_and_trailer);
            r.skip(2, "response serial")?;
            vec![Record::Position(location(&mut r, ctx, model)?)]
        }
        msg::LOCATION_BATCH => batch(f.body_and_trailer, ctx, model, false)?,
        msg::LOCATION_BATCH_2 if f.body.len() == 7 => {
            let mut r = Reader::new(f.body);
            let mut m = message();
            m.set("batteryLevel", r.u8("battery level")?);
            m.time = read_date(&mut r, TIME_ZONE_HOURS)?;
            vec![Record::Status(m)]
        }
        msg::LOCATION_BATCH_2 => batch(f.body_and_trailer, ctx, model, true)?,
        msg::LOCATION_2 | msg::LOCATION_BLIND => {
            vec![Record::Position(location_2(f.body, f.id, ctx)?)]
        }
        msg::TRANSPARENT => transparent(f.body, ctx, model)?,
        msg::COMMAND_RESPONSE => {
            let mut r = Reader::new(f.body);
            let len = r.u32("length")? as usize;
            let mut m = message();
            m.set("result", r.ascii(len, "result")?);
            vec![Record::CommandReply(m)]
        }
        msg::REPORT_TEXT => {
            let mut r = Reader::new(f.body);
            r.skip(1, "encoding")?;
            let mut m = message();
            m.set("result", r.ascii(r.remaining(), "text")?);
            vec![Record::CommandReply(m)]
        }
        msg::TEXT_RESPONSE => {
            let mut r = Reader::new(f.body);
            r.skip(2, "response serial")?;
            let units: Vec<u16> = r
                .rest()
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            let mut m = message();
            m.set(
                "result",
                String::from_utf16_lossy(&units)
                    .trim_matches(|c: char| c <= ' ')
                    .to_owned(),
            );
            vec![Record::CommandReply(m)]
        }
        msg::TERMINAL_ATTRIBUTES => {
            let mut r = Reader::new(f.body);
            r.skip(2 + 5 + 20 + 7, "terminal type, maker, model and id")?;
            let mut m = message();
            m.set("iccid", hex::encode(r.bytes(10, "iccid")?));
            vec![Record::Status(m)]
        }
        msg::DRIVER_IDENTITY => {
            let mut r = Reader::new(f.body);
            let mut m = message();
            m.set("cardStatus", r.u8("card status")?);
            m.time = read_date(&mut r, TIME_ZONE_HOURS)?;
            m.set("cardResult", r.u8("card result")?);
            let n = usize::from(r.u8("driver length")?);
            m.set("driver", r.ascii(n, "driver")?);
            m.set(
                "cardCode",
                r.ascii(20, "card code")?
                    .trim_matches(|c: char| c <= ' ')
                    .to_owned(),
            );
            let n = usize::from(r.u8("agency length")?);
            m.set("cardAgency", r.ascii(n, "card agency")?);
            m.set("cardValidity", hex::encode(r.bytes(4, "card validity")?));
            vec![Record::Status(m)]
        }
        msg::PARAMETERS => vec![Record::Status(parameters(f.body, ctx)?)],
        msg::ACCELERATION => {
            let mut r = Reader::new(f.body);
            let mut samples = Vec::new();
            while r.remaining() >= 12 {
                r.skip(6, "time")?;
                let mut axis = || -> Result<i32, ParseError> {
                    let v = r.u16("axis")?;
                    let magnitude = i32::from(v & 0x7fff);
                    Ok(if v & 0x8000 != 0 {
                        -magnitude
                    } else {
                        magnitude
                    })
                };
                samples.push(format!("[{},{},{}]", axis()?, axis()?, axis()?));
            }
            let mut m = message();
            m.set("gSensor", format!("[{}]", samples.join(",")));
            vec![Record::Status(m)]
        }
        msg::LOGOUT
        | msg::TIME_SYNC
        | msg::TERMINAL_RESPONSE
        | msg::TIME_ZONE_SYNC
        | msg::HEARTBEAT_2
        | msg::PHOTO => vec![],
        other => {
            return Err(ParseError::Unsupported(format!(
                "JT808 message {other:#06x}"
            )))
        }
    })
}

/// `(id,…)` text: a lock's answer to a command. `BASE,2` asks for the time
/// (answered by the session) and carries nothing.
fn text_message(bytes: &[u8], ctx: &ParseContext) -> Vec<Record> {
    let sentence: String = bytes.iter().map(|&b| char::from(b)).collect();
    let mut m = DeviceMessage::new(ctx, NAME);
    if sentence.contains("BASE,2") {
        return vec![Record::Heartbeat(m)];
    }
    m.set("result", sentence);
    vec![Record::CommandReply(m)]
}

/// 0x0704 (count, type, then u16-length locations) and 0x0210 (u8-length
/// locations).
fn batch(
    body: &[u8],
    ctx: &ParseContext,
    model: Option<&str>,
    short_lengths: bool,
) -> Result<Vec<Record>, ParseError> {
    let mut r = Reader::new(body);
    let mut archive = false;
    if !short_lengths {
        r.skip(2, "count")?;
        archive = r.u8("location type")? > 0;
    }
    let mut records = Vec::new();
    while r.remaining() > 2 {
        let len = if short_lengths {
            usize::from(r.u8("length")?)
        } else {
            usize::from(r.u16("length")?)
        };
        let mut fragment = Reader::new(r.bytes(len, "location")?);
        let mut p = location(&mut fragment, ctx, model)?;
        if archive {
            p.set("archive", true);
        }
        records.push(Record::Position(p));
    }
    Ok(records)
}

/// 0x5501/0x5502: a compact location (BCD `ddmmyyhhmmss`, UTC; coordinates
/// as BCD `DDMMmmmm`/`DDDMMmmmm` with hemisphere flags; speed BCD km/h;
/// course in 2° steps), signal, satellites, odometer, battery, cell, status.
fn location_2(body: &[u8], id: u16, ctx: &ParseContext) -> Result<Position, ParseError> {
    let mut r = Reader::new(body);
    let b = r.bytes(6, "time")?;
    let bcd = |x: u8| u32::from(x >> 4) * 10 + u32::from(x & 0x0f);
    let date = text::lenient_date(2000 + bcd(b[2]) as i32, bcd(b[1]), bcd(b[0]))
        .ok_or_else(|| ParseError::Invalid("bad date".into()))?;
    let seconds = i64::from(bcd(b[3]) * 3600 + bcd(b[4]) * 60 + bcd(b[5]));
    let mut p = Position::new(
        &ctx.device_id,
        NAME,
        text::utc_at(date, Duration::seconds(seconds)),
    );
    let c = r.bytes(9, "coordinates")?;
    let digit = |i: usize| {
        u32::from(if i.is_multiple_of(2) {
            c[i / 2] >> 4
        } else {
            c[i / 2] & 0x0f
        })
    };
    let number = |from: usize, to: usize| (from..to).fold(0u32, |a, i| a * 10 + digit(i));
    let convert =
        |raw: u32| f64::from(raw / 1_000_000) + f64::from(raw % 1_000_000) / 10_000.0 / 60.0;
    let lat = convert(number(0, 8));
    let lon = convert(number(8, 17));
    let flags = c[8];
    p.valid = id != msg::LOCATION_BLIND && flags & 0x1 != 0;
    p.latitude = if flags & 0x2 == 0 { -lat } else { lat };
    p.longitude = if flags & 0x4 == 0 { -lon } else { lon };
    p.speed = f64::from(bcd(r.u8("speed")?));
    p.course = f64::from(r.u8("course")?) * 2.0;
    p.set("rssi", r.u8("rssi")?);
    let sat = r.u8("satellites")?;
    p.set("sat", sat);
    p.satellites = Some(sat.into());
    p.set("odometer", u64::from(r.u32("odometer")?) * 1000);
    let battery = r.u8("battery")?;
    if battery <= 100 {
        p.set("batteryLevel", battery);
    } else if matches!(battery, 0xaa | 0xab) {
        p.set("charge", true);
    }
    r.skip(6, "cell")?;
    let product = r.u8("product")?;
    let status = r.u16("status")?;
    let alarm = r.u16("alarm")?;
    let bit = |n: u32| alarm & (1 << n) != 0;
    let mut alarms = Vec::new();
    if matches!(product, 1 | 2) && bit(0) {
        alarms.push("lowPower");
    } else if product == 3 {
        p.set("blocked", status & (1 << 5) != 0);
        for (n, a) in [
            (0, "overspeed"),
            (1, "lowPower"),
            (2, "vibration"),
            (3, "lowBattery"),
            (5, "geofenceEnter"),
            (6, "geofenceExit"),
        ] {
            if bit(n) {
                alarms.push(a);
            }
        }
    }
    if !alarms.is_empty() {
        p.set("alarm", alarms.join(","));
    }
    p.set("status", status);
    while r.remaining() > 2 {
        let kind = r.u8("extension id")?;
        let len = usize::from(r.u8("extension length")?);
        let end = r.pos() + len;
        match kind {
            0x02 if len >= 2 => p.altitude = f64::from(r.i16("altitude")?),
            0x10 if len >= 1 => p.set("wakeSource", r.u8("wake source")?),
            0xfc if len >= 1 => p.set("geofence", r.u8("geofence")?),
            _ => {}
        }
        r.seek(end);
    }
    Ok(p)
}

/// 0x0104: the answer to a parameter query.
fn parameters(body: &[u8], ctx: &ParseContext) -> Result<DeviceMessage, ParseError> {
    let mut r = Reader::new(body);
    r.skip(3, "response serial and count")?;
    let mut m = DeviceMessage::new(ctx, NAME);
    while r.remaining() >= 5 {
        let id = r.u32("parameter id")?;
        let len = usize::from(r.u8("parameter length")?);
        if len > r.remaining() {
            break;
        }
        let end = r.pos() + len;
        let _ = parameter(&mut r.clone(), id, len, &mut m);
        r.seek(end);
    }
    Ok(m)
}

fn parameter(v: &mut Reader, id: u32, len: usize, m: &mut DeviceMessage) -> Result<(), ParseError> {
    match id {
        0x0001 => m.set("heartbeatInterval", v.u32("value")?),
        0x0010 => m.set("apn", v.ascii(len, "apn")?),
        0x0013 => m.set("server", v.ascii(len, "server")?),
        0x0018 => m.set("port", v.u32("value")?),
        0x0027 => m.set("sleepReportInterval", v.u32("value")?),
        0x0028 => m.set("emergencyReportInterval", v.u32("value")?),
        0x0029 => m.set("defaultReportInterval", v.u32("value")?),
        0x0055 => m.set("overspeedThreshold", v.u32("value")?),
        0x0056 => m.set("speedLimitDuration", v.u32("value")?),
        0x0080 => m.set("odometer", u64::from(v.u32("value")?) * 100),
        0x0083 => m.set(
            "plateNumber",
            v.ascii(len, "plate")?
                .trim_matches(|c: char| c <= ' ')
                .to_owned(),
        ),
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn ctx() -> ParseContext {
        ParseContext::new(
            "013511221122",
            Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
        )
    }

    fn records(hex_str: &str) -> Vec<Record> {
        parse(&hex::decode(hex_str).unwrap(), &ctx()).unwrap()
    }

    #[test]
    fn location_report() {
        let r = records("7e02000032013511221122000700000000000c000301578cc006ca3a5c00470000000014072317201501040000000030011631010bd07e");
        let Record::Position(p) = &r[0] else {
            panic!("{r:?}")
        };
        // 2014-07-23 17:20:15 China time is 09:20:15 UTC.
        assert_eq!(
            p.fix_time,
            Utc.with_ymd_and_hms(2014, 7, 23, 9, 20, 15).unwrap()
        );
        assert!(p.valid);
        assert!((p.latitude - 22.514880).abs() < 1e-6);
        assert!((p.longitude - 113.916508).abs() < 1e-6);
        assert_eq!(p.altitude, 71.0);
        assert_eq!(p.attributes["rssi"], 22);
        assert_eq!(p.satellites, Some(11));
        assert_eq!(p.attributes["ignition"], true);
    }

    #[test]
    fn login_and_heartbeat() {
        assert!(matches!(
            records("7e0102000e013511221122000661757468656e7469636174696f6e3f7e")[..],
            [Record::Login(_)]
        ));
        assert!(matches!(
            records("7e0002000004304832546500b7ca7e")[..],
            [Record::Heartbeat(_)]
        ));
        assert!(matches!(
            records("7e010200100940278494700084323031313131303831313333323139369f7e")[..],
            [Record::Login(_)]
        ));
    }

    #[test]
    fn command_answers() {
        match &records("7e070100150120764632790008000000114d442c53455420434f4e464947204f4b21187e")[..]
        {
            [Record::CommandReply(m)] => assert_eq!(m.attributes["result"], "MD,SET CONFIG OK!"),
            other => panic!("{other:?}"),
        }
        match &records("283734303139303331313138352c312c3030312c454c4f434b2c332c35323934333929")[..]
        {
            [Record::CommandReply(m)] => assert_eq!(
                m.attributes["result"],
                "(740190311185,1,001,ELOCK,3,529439)"
            ),
            other => panic!("{other:?}"),
        }
    }
}
