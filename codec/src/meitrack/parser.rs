//! Meitrack messages to records.
//!
//! `AAA` data is comma-separated text: `event, latitude, longitude,
//! yymmddhhmmss, A|V, satellites, GSM signal, speed (km/h), course, HDOP,
//! altitude (m), odometer (m), runtime (s), mcc|mnc|lac|cell (lac and cell
//! hex), IO state (input and output, two hex digits each), analog values`,
//! then optionally `event data, customised data, protocol version, fuel,
//! temperature probes, …`. Analog values are either decimal volts
//! (`battery|power|rtc|mcu|gps`) or hex (`adc1|adc2|adc3|battery|power`,
//! whose scale depends on the model, as in Traccar).

use chrono::NaiveDate;

use crate::text::{self, cell, int, number, set_cells, signed_number};
use crate::{DeviceMessage, ParseContext, ParseError, Position, Record};

use super::binary;
use super::message::Message;
use super::NAME;

pub(crate) fn parse(frame: &[u8], ctx: &ParseContext) -> Result<Vec<Record>, ParseError> {
    let m = Message::parse(frame).map_err(ParseError::Invalid)?;
    match m.command {
        "AAA" => {
            let data = std::str::from_utf8(m.data)
                .map_err(|_| ParseError::Invalid("AAA data is not text".into()))?;
            Ok(vec![Record::Position(aaa(data, ctx)?)])
        }
        "CCC" => binary::ccc(m.data, ctx),
        "CCE" => binary::cce(m.data, ctx),
        "AAC" => Ok(vec![Record::Heartbeat(DeviceMessage::new(ctx, NAME))]),
        "D00" => Ok(vec![Record::Status(photo_part(m.data, ctx)?)]),
        command => {
            let data = std::str::from_utf8(m.data)
                .map_err(|_| ParseError::Unsupported(format!("{command} with binary data")))?;
            let mut r = DeviceMessage::new(ctx, NAME);
            let result = if data.is_empty() {
                command.to_owned()
            } else {
                format!("{command},{data}")
            };
            r.set("result", result);
            Ok(vec![Record::CommandReply(r)])
        }
    }
}

/// The alarm an event code stands for.
pub(crate) fn alarm(event: u32) -> Option<&'static str> {
    Some(match event {
        1 => "sos",
        17 => "lowBattery",
        18 => "lowPower",
        19 => "overspeed",
        20 => "geofenceEnter",
        21 => "geofenceExit",
        22 => "powerRestored",
        23 => "powerCut",
        36 => "tow",
        44 => "jamming",
        78 => "accident",
        90 | 91 => "cornering",
        129 => "hardBraking",
        130 => "hardAcceleration",
        135 => "fatigueDriving",
        _ => return None,
    })
}

/// `D00,<file>,<parts>,<part>,<bytes>`: one part of a photo.
fn photo_part(data: &[u8], ctx: &ParseContext) -> Result<DeviceMessage, ParseError> {
    let mut parts = data.splitn(4, |&b| b == b',');
    let mut field = |what: &str| {
        parts
            .next()
            .and_then(|f| std::str::from_utf8(f).ok())
            .ok_or_else(|| ParseError::Truncated(format!("photo part: no {what}")))
    };
    let file = field("file name")?.to_owned();
    let total =
        int(field("part count")?).ok_or_else(|| ParseError::Invalid("photo part count".into()))?;
    let current = int(field("part number")?)
        .ok_or_else(|| ParseError::Invalid("photo part number".into()))?;
    let mut m = DeviceMessage::new(ctx, NAME);
    m.set("photoFile", file);
    m.set("photoParts", total);
    m.set("photoPart", current);
    Ok(m)
}

fn invalid(what: &str, value: &str) -> ParseError {
    let shown: String = value.chars().take(40).collect();
    ParseError::Invalid(format!("bad {what} {shown:?}"))
}

fn hex(s: &str) -> Option<i64> {
    (!s.is_empty() && s.len() <= 8 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| i64::from_str_radix(s, 16).ok())
        .flatten()
}

fn aaa(data: &str, ctx: &ParseContext) -> Result<Position, ParseError> {
    let f: Vec<&str> = data.split(',').collect();
    if f.len() < 16 {
        return Err(ParseError::Truncated(format!(
            "AAA has {} field(s), at least 16 expected",
            f.len()
        )));
    }
    let event = int(f[0])
        .filter(|e| (0..=0xffff).contains(e))
        .ok_or_else(|| invalid("event", f[0]))?;
    let latitude = signed_number(f[1])
        .filter(|v| v.abs() <= 90.0)
        .ok_or_else(|| invalid("latitude", f[1]))?;
    let longitude = signed_number(f[2])
        .filter(|v| v.abs() <= 180.0)
        .ok_or_else(|| invalid("longitude", f[2]))?;
    let dt = f[3];
    let date = (dt.len() == 12)
        .then(|| text::date_yymmdd(&dt[..6]))
        .flatten()
        .and_then(|d: NaiveDate| Some(text::utc(d, text::time_hhmmss(&dt[6..])?)))
        .ok_or_else(|| invalid("date and time", dt))?;
    let mut p = Position::new(&ctx.device_id, NAME, date);
    p.set("event", event);
    if let Some(alarm) = alarm(event as u32) {
        p.set("alarm", alarm);
    }
    p.latitude = latitude;
    p.longitude = longitude;
    p.valid = match f[4] {
        "A" => true,
        "V" => false,
        other => return Err(invalid("validity", other)),
    };
    p.satellites = int(f[5]).and_then(|s| u32::try_from(s).ok());
    let rssi = int(f[6]);
    p.speed = number(f[7]).ok_or_else(|| invalid("speed", f[7]))?;
    p.course = number(f[8]).ok_or_else(|| invalid("course", f[8]))?;
    if let Some(hdop) = number(f[9]) {
        p.set("hdop", hdop);
    }
    p.altitude = signed_number(f[10]).ok_or_else(|| invalid("altitude", f[10]))?;
    if let Some(odometer) = int(f[11]) {
        p.set("odometer", odometer);
    }
    if !f[12].is_empty() {
        p.set("runtime", f[12]);
    }
    let cellparts: Vec<&str> = f[13].split('|').collect();
    if let [mcc, mnc, lac, cid] = cellparts[..] {
        let (mcc, mnc) = (int(mcc).unwrap_or(0), int(mnc).unwrap_or(0));
        if mcc != 0 && mnc != 0 {
            let (lac, cid) = (hex(lac).unwrap_or(0), hex(cid).unwrap_or(0));
            set_cells(&mut p.attributes, vec![cell(mcc, mnc, lac, cid, rssi)]);
        }
    }
    let io = f[14];
    if io.len() == 4 {
        if let (Some(input), Some(output)) = (hex(&io[..2]), hex(&io[2..])) {
            p.set("input", input);
            p.set("output", output);
        }
    }
    analog(&mut p, f[15], ctx.model.as_deref());
    tail(&mut p, event, &f[16..]);
    Ok(p)
}

fn analog(p: &mut Position, field: &str, model: Option<&str>) {
    let parts: Vec<&str> = field.split('|').collect();
    if parts.len() >= 2 && parts[..2].iter().all(|s| s.contains('.')) {
        if let (Some(battery), Some(power)) = (number(parts[0]), number(parts[1])) {
            p.set("battery", battery);
            p.set("power", power);
        }
        return;
    }
    for (i, adc) in parts.iter().take(3).enumerate() {
        if let Some(v) = hex(adc) {
            p.set(&format!("adc{}", i + 1), v);
        }
    }
    let battery = parts.get(3).and_then(|s| hex(s));
    let power = parts.get(4).and_then(|s| hex(s)).unwrap_or(0) as f64;
    let model = model.unwrap_or("").to_ascii_uppercase();
    let (battery_scale, power) = match model.as_str() {
        "MVT340" | "MVT380" => (3.0 * 2.0 / 1024.0, power * 3.0 * 16.0 / 1024.0),
        "MT90" => (3.3 * 2.0 / 4096.0, power),
        "T1" | "T3" | "MVT100" | "MVT600" | "MVT800" | "TC68" | "TC68S" => {
            (3.3 * 2.0 / 4096.0, power * 3.3 * 16.0 / 4096.0)
        }
        _ => (0.01, power / 100.0),
    };
    if let Some(b) = battery {
        p.set("battery", b as f64 * battery_scale);
    }
    p.set("power", power);
}

fn tail(p: &mut Position, event: i64, tail: &[&str]) {
    if let Some(data) = tail.first().filter(|s| !s.is_empty()) {
        if event == 37 {
            p.set("driverUniqueId", *data);
        } else {
            p.set("eventData", *data);
        }
    }
    let protocol = tail.get(2).and_then(|s| int(s)).unwrap_or(0);
    if let Some(fuel) = tail.get(3).filter(|s| s.len() == 4) {
        if let (Some(whole), Some(hundredths)) = (hex(&fuel[..2]), hex(&fuel[2..])) {
            p.set("fuel", whole as f64 + hundredths as f64 * 0.01);
        }
    }
    if let Some(temps) = tail.get(4).filter(|s| !s.is_empty()) {
        for t in temps.split('|') {
            if t.len() != 6 {
                continue;
            }
            let (Some(index), Some(hi), Some(lo), Some(word)) =
                (hex(&t[..2]), hex(&t[2..4]), hex(&t[4..]), hex(&t[2..]))
            else {
                continue;
            };
            let value = if protocol >= 3 {
                f64::from(word as u16 as i16) * 0.01
            } else {
                let whole = f64::from(hi as u8 as i8);
                whole + if whole < 0.0 { -0.01 } else { 0.01 } * lo as f64
            };
            p.set(&format!("temp{index}"), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn ctx() -> ParseContext {
        ParseContext::new(
            "863071013799553",
            Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
        )
    }

    fn one(frame: &[u8]) -> Record {
        let mut r = parse(frame, &ctx()).unwrap();
        assert_eq!(r.len(), 1);
        r.remove(0)
    }

    #[test]
    fn aaa_report() {
        let r = one(b"$$E141,863071013799553,AAA,35,-1.264521,36.801128,150307132846,A,11,20,0.2,0,5,1767,84045888,36496633,639|02|100E|844,1234,0018|||025D|00CB,*17\r\n");
        let Record::Position(p) = r else {
            panic!("{r:?}")
        };
        assert_eq!(
            p.fix_time,
            Utc.with_ymd_and_hms(2015, 3, 7, 13, 28, 46).unwrap()
        );
        assert!(p.valid);
        assert_eq!((p.latitude, p.longitude), (-1.264521, 36.801128));
        assert_eq!((p.speed, p.course, p.altitude), (0.2, 0.0, 1767.0));
        assert_eq!(p.satellites, Some(11));
        assert_eq!(p.attributes["odometer"], 84045888);
        assert_eq!(p.attributes["input"], 0x12);
        assert_eq!(p.attributes["output"], 0x34);
        assert_eq!(p.attributes["adc1"], 0x18);
        assert_eq!(p.attributes["battery"], 0x25d as f64 * 0.01);
        assert_eq!(p.attributes["network"]["cellTowers"][0]["cellId"], 0x844);
    }

    #[test]
    fn aaa_decimal_volts_and_tail() {
        let r = one(b"$$F160,861412043027965,AAA,22,45.499458,-82.493581,220718171428,V,0,0,0,0,0.0,0,227940,119812,302|220|D8D6|086E1B2B,0000,0000|0000|0000|0191|0573,,,3,,002134,0,0*FE");
        assert_eq!(r.attributes()["power"], 13.95);
        assert_eq!(r.attributes()["alarm"], "powerRestored");
        assert_eq!(r.attributes()["temp0"], 85.0);
        let r = one(b"$$D149,867047043162018,AAA,35,-1.264865,36.800705,211001105240,A,9,20,41.0,323,1,1697,1,0,000|00||,0000,4.33|12.96|1.92|2.72|2.69,0.000000|0|0.000000,*E1");
        assert_eq!(r.attributes()["battery"], 4.33);
        assert_eq!(r.attributes()["power"], 12.96);
        assert!(r.attributes().get("network").is_none());
    }

    #[test]
    fn replies_and_refusals() {
        let r = one(b"$$u28,864606044993987,D82,0*D6");
        assert!(matches!(&r, Record::CommandReply(m) if m.attributes["result"] == "D82,0"));
        assert!(matches!(
            one(b"$$z27,861451040910625,AAC,1*D3\r\n"),
            Record::Heartbeat(_)
        ));
        assert!(parse(b"$$E20,1,AAA,35,1,2*00", &ctx()).is_err());
        assert!(parse(b"$$E141,863071013799553,AAA,35,-1.264521,36.801128,151307132846,A,11,20,0.2,0,5,1767,84045888,36496633,639|02|100E|844,1234,0018|||025D|00CB,*17", &ctx()).is_err());
    }
}
