//! The location block (message 0x0200 and the location in 0x0201, 0x0704,
//! 0x0210): alarm word, status word, coordinates, altitude, speed, course,
//! BCD time, then type-length-value extensions. The standard ones (0x01
//! odometer, 0x02 fuel, 0x25 inputs, 0x30 signal, 0x31 satellites) and the
//! vendor ones real devices send are read with Traccar's attribute names;
//! unknown ones are skipped.

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Map, Value};

use crate::read::Reader;
use crate::text;
use crate::{ParseContext, ParseError, Position};

use super::NAME;

/// Hours east of UTC of the times JT/T 808 devices send (China Standard
/// Time, as the standard specifies and as Traccar assumes).
pub(crate) const TIME_ZONE_HOURS: i64 = 8;

const PADLOCK_MODELS: &[&str] = &["G-360P", "G-508P"];
const AOVX_MODELS: &[&str] = &["AL300", "GL100"];
const JC_MODELS: &[&str] = &["JC371", "JC181", "JC182", "JC450", "JC451"];

fn is(model: Option<&str>, list: &[&str]) -> bool {
    model.is_some_and(|m| list.contains(&m))
}

/// Adds an alarm; several are joined with commas, each once.
pub(crate) fn add_alarm(attributes: &mut Map<String, Value>, alarm: &str) {
    let joined = match attributes.get("alarm").and_then(Value::as_str) {
        Some(previous) if previous.split(',').any(|a| a == alarm) => return,
        Some(previous) => format!("{previous},{alarm}"),
        None => alarm.to_owned(),
    };
    attributes.insert("alarm".into(), joined.into());
}

fn bcd(b: u8) -> u32 {
    u32::from(b >> 4) * 10 + u32::from(b & 0x0f)
}

/// `yy mm dd hh mm ss` in BCD, in the device's time zone (`offset_hours`).
pub(crate) fn read_date(r: &mut Reader, offset_hours: i64) -> Result<DateTime<Utc>, ParseError> {
    let b = r.bytes(6, "time")?;
    let date = text::lenient_date(2000 + bcd(b[0]) as i32, bcd(b[1]), bcd(b[2]))
        .ok_or_else(|| ParseError::Invalid(format!("bad date {}", hex::encode(b))))?;
    let seconds = i64::from(bcd(b[3])) * 3600 + i64::from(bcd(b[4])) * 60 + i64::from(bcd(b[5]));
    Ok(text::utc_at(
        date,
        Duration::seconds(seconds - offset_hours * 3600),
    ))
}

fn alarms_from_word(a: &mut Map<String, Value>, model: Option<&str>, value: u32) {
    let bit = |n: u32| value & (1 << n) != 0;
    if is(model, PADLOCK_MODELS) {
        if bit(0) || bit(4) {
            add_alarm(a, "removing");
        }
        if bit(1) {
            add_alarm(a, "tampering");
        }
        return;
    }
    if is(model, AOVX_MODELS) {
        if bit(16) {
            add_alarm(a, "movement");
        }
        return;
    }
    let table: &[(&[u32], &str)] = &[
        (&[0], "sos"),
        (&[1], "overspeed"),
        (&[2], "fatigueDriving"),
        (&[5, 6], "gpsAntennaCut"),
        (&[4, 9, 10, 11], "fault"),
        (&[7, 18], "lowBattery"),
        (&[8], "powerOff"),
        (&[15], "vibration"),
        (&[16, 17], "tampering"),
        (&[19], "parking"),
        (&[20], "geofence"),
        (&[26], "general"),
        (&[28], "movement"),
    ];
    for (bits, alarm) in table {
        if bits.iter().any(|&n| bit(n)) {
            add_alarm(a, alarm);
        }
    }
    if (bit(29) || bit(30)) && model != Some("VL300") {
        add_alarm(a, "accident");
    }
}

/// Status word and coordinates (also used by transparent messages).
pub(crate) fn coordinates(
    r: &mut Reader,
    p: &mut Position,
    model: Option<&str>,
) -> Result<(), ParseError> {
    let status = r.u32("status")?;
    let bit = |n: u32| status & (1 << n) != 0;
    p.set("ignition", bit(0));
    if model == Some("G1C Pro") {
        p.set("motion", bit(4));
    }
    p.set("blocked", bit(10));
    if matches!(model, Some("MV810G" | "MV710G")) {
        p.set("door", bit(16));
    }
    p.set("charge", bit(26));
    p.valid = bit(1);
    let lat = f64::from(r.u32("latitude")?) / 1_000_000.0;
    let lon = f64::from(r.u32("longitude")?) / 1_000_000.0;
    p.latitude = if bit(2) { -lat } else { lat };
    p.longitude = if bit(3) { -lon } else { lon };
    Ok(())
}

/// One location block from `r` (which may hold a 2-byte trailer, as
/// Traccar's reader does: extensions are read while more than 2 bytes are left).
pub(crate) fn location(
    r: &mut Reader,
    ctx: &ParseContext,
    model: Option<&str>,
) -> Result<Position, ParseError> {
    let mut p = Position::new(&ctx.device_id, NAME, ctx.received_at);
    let alarm = r.u32("alarm")?;
    alarms_from_word(&mut p.attributes, model, alarm);
    coordinates(r, &mut p, model)?;
    p.altitude = f64::from(r.i16("altitude")?);
    p.speed = f64::from(r.u16("speed")?) / 10.0;
    p.course = f64::from(r.u16("course")?);
    p.fix_time = read_date(r, TIME_ZONE_HOURS)?;

    if r.remaining() == 20 {
        // A fixed block some devices send instead of extensions.
        r.skip(4, "battery and mileage")?;
        p.set("odometer", u64::from(r.u32("odometer")?) * 1000);
        p.set("battery", f64::from(r.u16("battery")?) / 10.0);
        r.skip(4, "area")?;
        p.set("rssi", r.u8("rssi")?);
        return Ok(p);
    }

    let mut cells = Vec::new();
    let mut wifi = Vec::new();
    while r.remaining() > 2 {
        let kind = r.u8("extension id")?;
        let len = usize::from(r.u8("extension length")?);
        let end = r.pos() + len;
        if end > r.pos() + r.remaining() {
            break;
        }
        // A value shorter than its reading is skipped, not fatal.
        let mut x = r.clone();
        let _ = extension(&mut x, kind, len, end, &mut p, model, &mut cells, &mut wifi);
        if kind == 0x80 {
            // Its OBD values run to the end of the message.
            r.seek((r.pos() + r.remaining()).saturating_sub(2));
        } else {
            r.seek(end);
        }
    }
    let mut network = Map::new();
    if !cells.is_empty() {
        network.insert("cellTowers".into(), cells.into());
    }
    if !wifi.is_empty() {
        network.insert("wifiAccessPoints".into(), wifi.into());
    }
    if !network.is_empty() {
        p.attributes.insert("network".into(), network.into());
    }
    Ok(p)
}

fn hex_of(r: &mut Reader, n: usize, what: &str) -> Result<String, ParseError> {
    Ok(hex::encode(r.bytes(n, what)?))
}

fn printable(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .all(|&b| (0x20..0x7f).contains(&b) || matches!(b, b'\r' | b'\n' | b'\t'))
}

#[allow(clippy::too_many_arguments)]
fn extension(
    r: &mut Reader,
    kind: u8,
    len: usize,
    end: usize,
    p: &mut Position,
    model: Option<&str>,
    cells: &mut Vec<Value>,
    wifi: &mut Vec<Value>,
) -> Result<(), ParseError> {
    let aovx = is(model, AOVX_MODELS);
    match kind {
        0x01 => p.set("odometer", u64::from(r.u32("odometer")?) * 100),
        0x02 => {
            let fuel = r.u16("fuel")?;
            if fuel & 0x8000 != 0 {
                p.set("fuel", fuel & 0x7fff);
            } else {
                p.set("fuel", f64::from(fuel) / 10.0);
            }
        }
        0x06 => p.set("batteryLevel", r.u8("battery level")?),
        0x0b => {
            p.set("lockCommand", r.u8("lock command")?);
            if (5..=6).contains(&len) {
                p.set("lockCard", r.u32("lock card")?);
            } else if len >= 7 {
                p.set("lockPassword", r.ascii(6, "lock password")?);
            }
            if len.is_multiple_of(2) {
                p.set("unlockResult", r.u8("unlock result")?);
            }
        }
        0x14 => p.set("videoAlarm", r.u32("video alarm")?),
        0x25 => p.set("input", r.u32("inputs")?),
        0x2b | 0xa7 => {
            p.set("adc1", f64::from(r.u16("adc1")?) / 100.0);
            p.set("adc2", f64::from(r.u16("adc2")?) / 100.0);
        }
        0x30 => p.set("rssi", r.u8("rssi")?),
        0x31 => {
            let sat = r.u8("satellites")?;
            p.set("sat", sat);
            p.satellites = Some(sat.into());
        }
        0x33 => {
            if len == 1 {
                p.set("mode", r.u8("mode")?);
            } else {
                let s = r.ascii(len, "lock status")?;
                if s.starts_with("*M00") {
                    if let Some(v) = s.get(10..13).and_then(|v| v.parse::<u32>().ok()) {
                        p.set("battery", f64::from(v) / 100.0);
                    }
                }
            }
        }
        0x51 if len == 2 || len == 16 => {
            for i in 1..=len / 2 {
                let v = r.u16("temperature")?;
                if v != 0xffff {
                    let t = f64::from(v & 0x7fff) / 10.0;
                    p.set(&format!("temp{i}"), if v & 0x8000 != 0 { -t } else { t });
                }
            }
        }
        0x56 => {
            p.set("batteryLevel", u32::from(r.u8("battery level")?) * 10);
        }
        0x57 => {
            let a = r.u16("alarms")?;
            for (n, alarm) in [
                (8, "hardAcceleration"),
                (9, "hardBraking"),
                (10, "hardCornering"),
            ] {
                if a & (1 << n) != 0 {
                    add_alarm(&mut p.attributes, alarm);
                }
            }
            r.skip(2, "switches")?;
            let a = r.u32("alarms")?;
            if matches!(model, Some("MV810G" | "MV710G")) && a & (1 << 16) != 0 {
                add_alarm(&mut p.attributes, "door");
            }
        }
        0x60 => {
            let event = r.u16("event")?;
            p.set("event", event);
            if (0x61..=0x66).contains(&event) {
                r.skip(6, "lock id")?;
                p.set("driverUniqueId", r.ascii(8, "driver")?);
            }
        }
        0x63 => {
            for i in 1..=len / 11 {
                p.set(&format!("lock{i}Id"), hex_of(r, 6, "lock id")?);
                p.set(
                    &format!("lock{i}Battery"),
                    f64::from(r.u16("lock battery")?) / 1000.0,
                );
                p.set(&format!("lock{i}Seal"), r.u8("seal")? == 0x31);
                r.skip(2, "lock state")?;
            }
        }
        0x64 | 0x65 => {
            r.skip(5, "alarm serial and status")?;
            let key = if kind == 0x64 {
                "adasAlarm"
            } else {
                "dmsAlarm"
            };
            p.set(key, r.u8("alarm type")?);
            if len >= 47 {
                r.seek(end - 16);
                p.set("alarmLabel", hex_of(r, 16, "alarm label")?);
            }
        }
        0x67 => p.set("password", r.ascii(8, "password")?),
        0x68 => p.set("batteryLevel", f64::from(r.u16("battery level")?) / 100.0),
        0x69 => p.set("battery", f64::from(r.u16("battery")?) / 100.0),
        0x70 => {
            r.skip(5, "alarm serial and status")?;
            let alarm = match r.u8("alarm type")? {
                0x01 => Some("hardAcceleration"),
                0x02 => Some("hardBraking"),
                0x03 => Some("hardCornering"),
                0x16 => Some("accident"),
                _ => None,
            };
            if let Some(alarm) = alarm {
                add_alarm(&mut p.attributes, alarm);
            }
        }
        0x77 => {
            while r.pos() < end {
                let tire = r.u8("tire")?;
                p.set(&format!("tire{tire}SensorId"), hex_of(r, 3, "tire sensor")?);
                p.set(
                    &format!("tire{tire}Pressure"),
                    f64::from(r.u16("pressure")? & 0x3ff) / 40.0,
                );
                p.set(
                    &format!("tire{tire}Temp"),
                    i32::from(r.u8("tire temperature")?) - 50,
                );
                p.set(&format!("tire{tire}Status"), r.u8("tire status")?);
            }
        }
        0x80 => {
            r.skip(1, "content")?;
            let stop = r.pos() + r.remaining().saturating_sub(2);
            obd_extension(r, stop, p)?;
        }
        0x82 => p.set("power", f64::from(r.u16("power")?) / 10.0),
        0x91 => {
            p.set("battery", f64::from(r.u16("battery")?) / 10.0);
            p.set("rpm", r.u16("rpm")?);
            p.set("obdSpeed", r.u8("obd speed")?);
            p.set("throttle", u32::from(r.u8("throttle")?) * 100 / 255);
            p.set("engineLoad", u32::from(r.u8("engine load")?) * 100 / 255);
            p.set("coolantTemp", i32::from(r.u8("coolant")?) - 40);
            r.skip(2, "reserved")?;
            p.set(
                "fuelConsumption",
                f64::from(r.u16("fuel consumption")?) / 100.0,
            );
            r.skip(8, "reserved")?;
            p.set("fuelUsed", f64::from(r.u16("fuel used")?) / 100.0);
        }
        0x94 if len > 0 => p.set("vin", r.ascii(len, "vin")?),
        0xac => p.set("odometer", r.u32("odometer")?),
        0xbc => p.set(
            "driver",
            r.ascii(len, "driver")?
                .trim_matches(|c: char| c <= ' ')
                .to_owned(),
        ),
        0xbd => p.set("driverUniqueId", r.ascii(len, "driver id")?),
        0xd0 => {
            let user_status = r.u32("user status")?;
            if user_status & (1 << 3) != 0 {
                add_alarm(&mut p.attributes, "vibration");
            }
        }
        0xd3 => p.set("power", f64::from(r.u16("power")?) / 10.0),
        0xd4 | 0xe1 | 0xe9 => {
            if len == 1 {
                let level = r.u8("battery level")?;
                if level == 0xff {
                    p.set("charge", true);
                } else {
                    p.set("batteryLevel", level);
                }
            } else if kind == 0xe1 && len >= 12 && (len - 4).is_multiple_of(8) {
                let mcc = r.u16("mcc")?;
                let mnc = r.u16("mnc")?;
                while r.pos() < end {
                    let lac = r.u24("lac")?;
                    let cid = r.u32("cid")?;
                    let rssi = r.u8("rssi")?;
                    if lac > 0 && lac <= 0xffff && cid <= 0x0fff_ffff {
                        cells.push(text::cell(
                            mcc.into(),
                            mnc.into(),
                            lac.into(),
                            cid.into(),
                            Some(rssi.into()),
                        ));
                    }
                }
            } else if kind == 0xe1 && len == 2 {
                p.set("power", f64::from(r.u16("power")?) / 10.0);
            } else {
                p.set("driverUniqueId", r.u32("driver id")?.to_string());
            }
        }
        0xd5 => {
            if len == 2 {
                p.set("battery", f64::from(r.u16("battery")?) / 100.0);
            } else {
                let count = r.u8("lock count")?;
                for i in 1..=count {
                    p.set(&format!("lock{i}Id"), hex_of(r, 5, "lock id")?);
                    p.set(&format!("lock{i}Card"), hex_of(r, 5, "lock card")?);
                    p.set(&format!("lock{i}Battery"), r.u8("lock battery")?);
                    let status = r.u16("lock status")?;
                    p.set(&format!("lock{i}Locked"), status & (1 << 5) == 0);
                }
            }
        }
        0xda => {
            r.skip(2, "string cuts")?;
            let s = r.u8("device status")?;
            p.set("string", s & 1 != 0);
            p.set("motion", s & 4 != 0);
            p.set("cover", s & 8 != 0);
        }
        0xe2 if model != Some("DT800") => p.set("fuel", f64::from(r.u32("fuel")?) / 10.0),
        0xe3 => {
            r.skip(1, "reserved")?;
            p.set("batteryLevel", r.u8("battery level")?);
            p.set("battery", f64::from(r.u16("battery")?) / 100.0);
        }
        0xe4 => {
            if r.u8("charge")? == 0 {
                p.set("charge", true);
            }
            p.set("batteryLevel", r.u8("battery level")?);
        }
        0xe5 if len == 1 => p.set("motion", r.u8("motion")? == 1),
        0xe6 => {
            let head = r.clone().bytes(len.min(7), "data")?.to_vec();
            if len >= 7 && head == b"$OBD-RT" {
                let data = r.ascii(len, "obd")?;
                obd_rt(p, &data);
            } else if len >= 11 && len.is_multiple_of(11) {
                while r.pos() < end {
                    let sensor = r.u8("sensor")?;
                    r.skip(6, "mac")?;
                    p.set(&format!("temp{sensor}"), custom_double(r)?);
                    p.set(&format!("humidity{sensor}"), custom_double(r)?);
                }
            }
        }
        0xe7 if len == 8 => {
            let a = r.u16("alarms")?;
            if a & 1 != 0 {
                add_alarm(&mut p.attributes, "vibration");
            }
            if (a >> 1) & 0x7 != 0 {
                add_alarm(&mut p.attributes, "sos");
            }
        }
        0xe8 => {
            if is(model, JC_MODELS) {
                jc_extension(r, end, p)?;
            } else {
                p.set("lockStatus", r.u24("lock status")?);
            }
        }
        0xea if len > 2 => {
            r.skip(1, "type")?;
            while r.pos() + 2 <= end {
                let t = r.u8("sensor type")?;
                let l = usize::from(r.u8("sensor length")?);
                if r.pos() + l > end {
                    break;
                }
                let sub_end = r.pos() + l;
                match t {
                    0x11 => {
                        p.set("externalAlarms", r.u16("alarms")?);
                        p.set("alarmThresholdType", r.u8("threshold")?);
                    }
                    0x13 => p.set("externalIlluminance", r.u16("illuminance")?),
                    0x14 => p.set("externalAirPressure", r.u16("pressure")?),
                    0x15 => p.set("externalHumidity", f64::from(r.u16("humidity")?) / 10.0),
                    0x16 => p.set(
                        "externalTemp",
                        f64::from(r.u16("temperature")?) / 10.0 - 50.0,
                    ),
                    _ => {}
                }
                r.seek(sub_end);
            }
        }
        0xeb => eb_extension(r, len, end, p, cells, wifi)?,
        0xed => p.set(
            "card",
            r.ascii(len, "card")?
                .trim_matches(|c: char| c <= ' ')
                .to_owned(),
        ),
        0xee if len == 6 => {
            p.set("rssi", r.u8("rssi")?);
            p.set("power", f64::from(r.u16("power")?) / 1000.0);
            p.set("battery", f64::from(r.u16("battery")?) / 1000.0);
            let sat = r.u8("satellites")?;
            p.set("sat", sat);
            p.satellites = Some(sat.into());
        }
        0xf0 => {
            while r.pos() < end {
                let mcc = r.u16("mcc")?;
                let mnc = r.u16("mnc")?;
                let cid = r.u32("cid")?;
                let lac = r.u32("lac")?;
                let rssi = r.u8("rssi")?;
                cells.push(text::cell(
                    mcc.into(),
                    mnc.into(),
                    lac.into(),
                    cid.into(),
                    Some(rssi.into()),
                ));
            }
        }
        0xf1 => p.set("power", f64::from(r.u32("power")?) / 1000.0),
        0xf2 => p.set("versionFw", r.ascii(len, "firmware")?),
        0xf3 if !aovx => f3_obd(r, end, p)?,
        0xec | 0xf4 => {
            while r.pos() < end {
                let mac = r.bytes(6, "mac")?;
                let mac: Vec<String> = mac.iter().map(|b| format!("{b:02x}")).collect();
                let rssi = r.i8("rssi")?;
                wifi.push(json!({ "macAddress": mac.join(":"), "signalStrength": rssi }));
            }
        }
        0xf5 if len == 2 => p.set("illuminance", r.u16("illuminance")?),
        0xf6 => {
            if !aovx && len == 2 {
                p.set("airPressure", r.u16("air pressure")?);
            } else if !aovx && len == 8 {
                p.set("imei", hex_of(r, 8, "imei")?[1..].to_owned());
            } else {
                let event = r.u8("event")?;
                p.set("event", event);
                if event == 2 {
                    p.set("motion", true);
                }
                let mask = r.u8("mask")?;
                if mask & 1 != 0 {
                    p.set("lightSensor", r.u16("light")?);
                }
                if mask & 2 != 0 {
                    p.set("temp1", f64::from(r.i16("temperature")?) / 10.0);
                }
                if mask & 4 != 0 {
                    p.set("humidity", f64::from(r.i16("humidity")?) / 10.0);
                }
                if mask & 8 != 0 {
                    let (x, y, z) = (r.i16("x")?, r.i16("y")?, r.i16("z")?);
                    p.set("gSensor", format!("[{x},{y},{z}]"));
                }
                if mask & 16 != 0 {
                    r.skip(10, "thresholds")?;
                }
                if mask & 32 != 0 {
                    p.set("airPressure", r.u16("air pressure")?);
                }
            }
        }
        0xf7 => {
            if len == 2 {
                p.set("humidity", f64::from(r.u16("humidity")?) / 10.0);
            } else {
                p.set("battery", f64::from(r.u32("battery")?) / 1000.0);
                if len >= 5 && matches!(r.u8("battery status")?, 2 | 3) {
                    p.set("charge", true);
                }
                if len >= 6 {
                    p.set("batteryLevel", r.u8("battery level")?);
                }
            }
        }
        0xf8 => {
            if aovx {
                r.skip(9, "mode and imei")?;
                p.set("iccid", hex_of(r, 10, "iccid")?);
            } else if matches!(model, Some("C5" | "C5L")) {
                p.set("steps", r.u16("steps")?);
            } else {
                p.set("temp2", f64::from(r.u16("temperature")?) / 10.0 - 50.0);
            }
        }
        0xf9 => {
            let mask = r.u16("mask")?;
            if mask & 1 != 0 {
                r.skip(4, "gnss age")?;
            }
            if mask & 2 != 0 {
                r.skip(4, "acc on time")?;
            }
            if mask & 4 != 0 {
                p.set("hdop", f64::from(r.u16("hdop")?) / 10.0);
            }
            if mask & 8 != 0 {
                r.skip(6, "gnss time")?;
            }
            if mask & 32 != 0 {
                r.skip(8, "intervals")?;
            }
            if mask & 64 != 0 {
                p.set("temp3", f64::from(r.i16("temperature")?) / 10.0);
            }
        }
        0xfb => p.set("container", r.ascii(len, "container")?),
        0xfc => p.set("geofence", r.u8("geofence")?),
        0xfe => match len {
            1 => p.set("batteryLevel", r.u8("battery level")?),
            2 => p.set("power", f64::from(r.u16("power")?) / 10.0),
            4 => p.set("odometer", r.u32("odometer")?),
            _ => {
                if r.u8("mark")? == 0x7c {
                    while r.pos() < end {
                        let t = r.u8("type")?;
                        let l = usize::from(r.u8("length")?);
                        if t == 0x01 {
                            let a = r.u32("alarms")?;
                            for (n, alarm) in [
                                (0, "hardAcceleration"),
                                (1, "hardBraking"),
                                (2, "hardCornering"),
                                (3, "accident"),
                                (4, "tampering"),
                            ] {
                                if a & (1 << n) != 0 {
                                    add_alarm(&mut p.attributes, alarm);
                                }
                            }
                        } else {
                            r.skip(l, "value")?;
                        }
                    }
                }
                p.set("batteryLevel", r.u8("battery level")?);
            }
        },
        _ => {}
    }
    Ok(())
}

/// Traccar's two-byte decimal: a signed integer part and 1/255 fractions.
fn custom_double(r: &mut Reader) -> Result<f64, ParseError> {
    let whole = r.i8("integer part")?;
    let fraction = f64::from(r.u8("fraction")?) / 255.0;
    let sign = if whole < 0 { -1.0 } else { 1.0 };
    Ok(sign * (f64::from(whole).abs() + fraction))
}

/// Extension 0x80: nested OBD values.
fn obd_extension(r: &mut Reader, stop: usize, p: &mut Position) -> Result<(), ParseError> {
    while r.pos() < stop {
        let kind = r.u8("obd id")?;
        let len = usize::from(r.u8("obd length")?);
        match kind {
            0x01 => p.set("odometer", u64::from(r.u32("odometer")?) * 100),
            0x02 => p.set("fuel", f64::from(r.u16("fuel")?) / 10.0),
            0x03 => p.set("obdSpeed", f64::from(r.u16("obd speed")?) / 10.0),
            0x56 => {
                r.skip(1, "power level")?;
                p.set("batteryLevel", r.u8("battery level")?);
            }
            0x61 => p.set("power", f64::from(r.u16("power")?) / 100.0),
            0x69 => p.set("battery", f64::from(r.u16("battery")?) / 100.0),
            0x80 => p.set("obdSpeed", r.u8("obd speed")?),
            0x81 => p.set("rpm", r.u16("rpm")?),
            0x82 => p.set("power", f64::from(r.u16("power")?) / 10.0),
            0x83 => p.set("engineLoad", r.u8("engine load")?),
            0x84 => p.set("coolantTemp", i32::from(r.u8("coolant")?) - 40),
            0x85 => p.set("fuelConsumption", r.u16("fuel consumption")?),
            0x86 => p.set("intakeTemp", i32::from(r.u8("intake temperature")?) - 40),
            0x87 => p.set("intakeFlow", r.u16("intake flow")?),
            0x88 => p.set("intakePressure", r.u8("intake pressure")?),
            0x89 => p.set("throttle", r.u8("throttle")?),
            0x8b => p.set("vin", r.ascii(17, "vin")?),
            0x8c => p.set("obdOdometer", u64::from(r.u32("obd odometer")?) * 100),
            0x8d => p.set("tripOdometer", u64::from(r.u16("trip odometer")?) * 1000),
            0x8e => p.set("fuel", r.u8("fuel")?),
            0xa0 => p.set("dtcs", r.ascii(len, "dtcs")?.replace(',', " ")),
            0xcc => p.set("iccid", r.ascii(20, "iccid")?),
            _ => r.skip(len, "obd value")?,
        }
    }
    Ok(())
}

/// Extension 0xE8 of Jimi JC cameras.
fn jc_extension(r: &mut Reader, end: usize, p: &mut Position) -> Result<(), ParseError> {
    let kind = r.u16("jc type")?;
    match kind {
        0x2002 => {
            r.skip(1, "length")?;
            p.set("uploadMode", r.u8("upload mode")?);
            p.set("buffered", r.u8("buffered")? == 1);
        }
        0x2003 => {
            r.skip(1, "length")?;
            p.set("charge", r.u8("charge")? == 1);
            let level = r.u8("battery status")?;
            if (1..=6).contains(&level) {
                p.set("batteryLevel", u32::from(level) * 100 / 6);
            }
            p.set("battery", f64::from(r.u16("battery")?) / 100.0);
            p.set("rssi", r.u8("rssi")?);
            p.set("power", f64::from(r.u16("power")?) / 100.0);
        }
        0x2005 => {
            r.skip(1, "length")?;
            while r.pos() < end {
                let id = r.u16("status id")?;
                let l = usize::from(r.u8("status length")?);
                let sub_end = r.pos() + l;
                match id {
                    0x0001 => p.set("battery", f64::from(r.u16("battery")?) / 100.0),
                    0x0002 => p.set("dataUsage", r.u32("data usage")?),
                    0x0003 => p.set("batteryLevel", r.u8("battery level")?),
                    0x0004 => p.set("charge", r.u8("charge")? == 0),
                    0x0005 => p.set("iccid", hex_of(r, 10, "iccid")?[..19].to_owned()),
                    0x0007 => p.set("hdop", f64::from(r.u16("hdop")?) / 10.0),
                    0x2001 => p.set("power", f64::from(r.u16("power")?) / 10.0),
                    _ => {}
                }
                r.seek(sub_end);
            }
        }
        _ => {
            let alarm = match kind {
                0x0001 => Some("fault"),
                0x0400 | 0x0412 => Some("hardAcceleration"),
                0x0401 | 0x0413 => Some("hardBraking"),
                0x0402 | 0x0414 => Some("hardCornering"),
                0x0403 => Some("overspeed"),
                0x0405 | 0x0416 | 0x0417 => Some("accident"),
                0x0406 => Some("vibration"),
                0x0407 => Some("tow"),
                0x0408 => Some("geofenceEnter"),
                0x0409 => Some("geofenceExit"),
                0x040c => Some("door"),
                0x0415 => Some("laneChange"),
                0x0c01 => Some("sos"),
                0x0c02 => Some("lowPower"),
                0x0c05 => Some("general"),
                0x0c0e => Some("powerCut"),
                0x0c0f => Some("lowBattery"),
                0x0c10 => Some("powerOff"),
                0x0c12 => Some("tampering"),
                _ => None,
            };
            if let Some(alarm) = alarm {
                add_alarm(&mut p.attributes, alarm);
            }
            match kind {
                0x0c03 => p.set("ignition", true),
                0x0c04 => p.set("ignition", false),
                _ => {}
            }
        }
    }
    Ok(())
}

/// Extension 0xEB: cell towers, a time zone text, or nested values.
fn eb_extension(
    r: &mut Reader,
    len: usize,
    end: usize,
    p: &mut Position,
    cells: &mut Vec<Value>,
    wifi: &mut Vec<Value>,
) -> Result<(), ParseError> {
    let peek = r.clone().u16("mcc").unwrap_or(0);
    if peek > 200 && len >= 3 && (len - 3).is_multiple_of(5) {
        let mcc = r.u16("mcc")?;
        let mnc = r.u8("mnc")?;
        while r.pos() < end {
            let lac = r.u16("lac")?;
            let cid = r.u16("cid")?;
            let rssi = r.u8("rssi")?;
            cells.push(text::cell(
                mcc.into(),
                mnc.into(),
                lac.into(),
                cid.into(),
                Some(rssi.into()),
            ));
        }
        return Ok(());
    }
    if printable(r.clone().bytes(len, "text")?) {
        p.set("timezone", r.ascii(len, "time zone")?);
        return Ok(());
    }
    while r.pos() < end {
        let l = usize::from(r.u16("length")?);
        let sub_end = r.pos() + l;
        let kind = r.u16("type")?;
        match kind {
            0x0001 => p.set("fuel1", f64::from(r.u16("fuel")?) / 10.0),
            0x0023 => {
                if let Ok(v) = r.ascii(6, "fuel")?.trim().parse::<f64>() {
                    p.set("fuel2", v);
                }
            }
            0x002d => {
                if l == 6 {
                    p.set("power", f64::from(r.u32("power")?) / 1000.0);
                } else {
                    p.set("battery", f64::from(r.u16("battery")?) / 1000.0);
                }
            }
            0x0089 => {
                let a = r.u32("alarms")?;
                if a & 1 == 0 {
                    add_alarm(&mut p.attributes, "powerOff");
                }
                if a & (1 << 12) == 0 {
                    add_alarm(&mut p.attributes, "removing");
                }
            }
            0x00b2 => {
                let iccid = hex_of(r, 10, "iccid")?;
                p.set("iccid", iccid.trim_end_matches('f').to_owned());
            }
            0x00b9 => {
                r.skip(1, "count")?;
                let list = r.ascii(l.saturating_sub(3), "wifi")?;
                let parts: Vec<&str> = list.split(',').collect();
                for pair in parts.chunks_exact(2) {
                    if let Ok(rssi) = pair[1].trim().parse::<i64>() {
                        wifi.push(json!({ "macAddress": pair[0], "signalStrength": rssi }));
                    }
                }
            }
            0x00c5 => {
                let a = r.u32("alarms")?;
                if a & (1 << 6) == 0 {
                    add_alarm(&mut p.attributes, "vibration");
                }
                match (a >> 23) & 0x3 {
                    0 => p.set("motion", true),
                    1 => p.set("motion", false),
                    _ => {}
                }
            }
            0x00c6 => {
                let alarm = r.u8("battery alarm")?;
                if matches!(alarm, 3 | 4) {
                    p.set("alarm", "lowBattery");
                }
                p.set("batteryAlarm", alarm);
            }
            0x00ce => p.set("power", f64::from(r.u16("power")?) / 100.0),
            0x00d8 => {
                let mcc = r.u16("mcc")?;
                let mnc = r.u8("mnc")?;
                let lac = r.u16("lac")?;
                let cid = r.u32("cid")?;
                cells.push(text::cell(
                    mcc.into(),
                    mnc.into(),
                    lac.into(),
                    cid.into(),
                    None,
                ));
            }
            0x00a8 | 0x00e1 => p.set("batteryLevel", r.u8("battery level")?),
            _ => {}
        }
        r.seek(sub_end);
    }
    Ok(())
}

/// Extension 0xF3: nested OBD values (16-bit ids).
fn f3_obd(r: &mut Reader, end: usize, p: &mut Position) -> Result<(), ParseError> {
    while r.pos() < end {
        let kind = r.u16("obd id")?;
        let len = usize::from(r.u8("obd length")?);
        match kind {
            0x0002 => p.set("obdSpeed", f64::from(r.u16("obd speed")?) / 10.0),
            0x0003 => p.set("rpm", r.u16("rpm")?),
            0x0004 => p.set("power", f64::from(r.u16("power")?) / 1000.0),
            0x0005 => p.set("obdOdometer", u64::from(r.u32("obd odometer")?) * 100),
            0x0007 => p.set(
                "fuelConsumption",
                f64::from(r.u16("fuel consumption")?) / 10.0,
            ),
            0x0008 => p.set("engineLoad", f64::from(r.u16("engine load")?) / 10.0),
            0x0009 => p.set("coolantTemp", i32::from(r.u16("coolant")?) - 40),
            0x000b => p.set("intakePressure", r.u16("intake pressure")?),
            0x000c => p.set("intakeTemp", i32::from(r.u16("intake temperature")?) - 40),
            0x000d => p.set("intakeFlow", r.u16("intake flow")?),
            0x000e => p.set("throttle", u32::from(r.u16("throttle")?) * 100 / 255),
            0x0050 => p.set("vin", r.ascii(17, "vin")?.trim_end_matches('\0').to_owned()),
            0x0051 if len > 0 => p.set("cvn", hex_of(r, len, "cvn")?),
            0x0052 if len > 0 => p.set(
                "calid",
                r.ascii(len, "calid")?.trim_end_matches('\0').to_owned(),
            ),
            0x0100 => p.set("tripOdometer", f64::from(r.u16("trip odometer")?) / 10.0),
            0x0102 => p.set("tripFuel", f64::from(r.u16("trip fuel")?) / 10.0),
            0x0112 => p.set("hardAccelerationCount", r.u16("count")?),
            0x0113 => p.set("hardDecelerationCount", r.u16("count")?),
            0x0114 => p.set("hardCorneringCount", r.u16("count")?),
            _ => r.skip(len, "obd value")?,
        }
    }
    Ok(())
}

/// `$OBD-RT,power,rpm,speed,throttle,load,coolant,instant,average,trip,
/// odometer,trip fuel,fuel used`.
pub(crate) fn obd_rt(p: &mut Position, data: &str) {
    let values: Vec<&str> = data.split(',').collect();
    let keys = [
        "power",
        "rpm",
        "obdSpeed",
        "throttle",
        "engineLoad",
        "coolantTemp",
        "fuelConsumption",
        "fuelConsumption",
        "tripOdometer",
        "obdOdometer",
        "tripFuelUsed",
        "fuelUsed",
    ];
    for (i, key) in keys.iter().enumerate() {
        let Some(v) = values.get(i + 1).map(|v| v.trim()) else {
            break;
        };
        if v.is_empty() {
            continue;
        }
        if *key == "coolantTemp" {
            if let Ok(t) = v.parse::<i64>() {
                p.set(key, t);
            }
        } else if let Some(x) = text::signed_number(v) {
            p.set(key, x);
        }
    }
}
