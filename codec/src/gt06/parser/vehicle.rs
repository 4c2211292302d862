//! Vehicle data: OBD readings (0x8C, FM08ABC) and battery management
//! system reports (0x40, WD-209 e-bikes).

use crate::ParseError;

use super::super::frame::Frame;

use super::fields;
use super::fields::SERIAL_AND_CRC;
use super::modular::epoch;
use super::out::{Decoded, Kind};

/// 0x8C: time, ignition, then `PID=hex` pairs separated by commas; 12 bytes
/// of trailing data the format does not describe.
pub(crate) fn obd(f: &Frame) -> Result<Decoded, ParseError> {
    let mut r = fields::content(f);
    let mut out = Decoded::new(Kind::Status);
    out.time = Some(fields::date(&mut r)?);
    out.set("ignition", r.u8("ignition")? > 0);
    let len = r
        .remaining_before_last(SERIAL_AND_CRC)
        .checked_sub(12)
        .ok_or_else(|| {
            ParseError::Truncated("OBD message too short for its trailing data".into())
        })?;
    let text = r.utf8_lossy(len, "text")?;
    for pair in text.split(',') {
        let Some((pid, value)) = pair.split_once('=') else {
            continue;
        };
        let Some(pid) = pid.get(..2).and_then(|p| u8::from_str_radix(p, 16).ok()) else {
            continue;
        };
        if pid == 0x4a {
            if !value.is_empty() {
                out.set("vin", value); // text, not hex
            }
            continue;
        }
        let Ok(value) = i64::from_str_radix(value, 16) else {
            continue;
        };
        let scaled = value as f64 / 100.0;
        match pid {
            0x28 => out.set("odometer", scaled),
            0x2b => out.set("fuel", scaled),
            0x2d => out.set("coolantTemp", scaled),
            0x35 => out.set("obdSpeed", scaled),
            0x36 => out.set("rpm", scaled),
            0x47 => out.set("fuelUsed", scaled),
            0x49 => out.set("hours", scaled),
            _ => {}
        }
    }
    Ok(out)
}

/// 0x40: battery pack state.
pub(crate) fn bms(f: &Frame) -> Result<Decoded, ParseError> {
    let mut r = fields::content(f);
    let mut out = Decoded::new(Kind::Status);
    r.skip(8, "serial number")?;
    out.time = Some(epoch(r.u32("time")?)?);
    out.set("relativeCapacity", r.u8("relativeCapacity")?);
    out.set("remainingCapacity", r.u16("remainingCapacity")?);
    out.set("absoluteCapacity", r.u8("absoluteCapacity")?);
    out.set("fullCapacity", r.u16("fullCapacity")?);
    out.set("batteryHealth", r.u8("batteryHealth")?);
    out.set(
        "batteryTemp",
        f64::from(r.u16("batteryTemp")?) / 10.0 - 273.1,
    );
    out.set("current", r.u16("current")?);
    out.set("battery", f64::from(r.u16("battery")?) / 1000.0);
    out.set("cycleIndex", r.u16("cycleIndex")?);
    for i in 1..=14 {
        out.set(
            &format!("batteryCell{i}"),
            f64::from(r.u16("batteryCell")?) / 1000.0,
        );
    }
    out.set("currentChargeInterval", r.u16("currentChargeInterval")?);
    out.set("maxChargeInterval", r.u16("maxChargeInterval")?);
    out.set("barcode", trimmed(&r.utf8_lossy(16, "barcode")?));
    out.set("batteryVersion", r.u16("batteryVersion")?);
    out.set("manufacturer", trimmed(&r.utf8_lossy(16, "manufacturer")?));
    out.set("batteryStatus", r.u32("batteryStatus")?);
    out.set("controllerStatus", r.u32("controllerStatus")?);
    out.set("controllerFault", r.u32("controllerFault")?);
    Ok(out)
}

/// Trims spaces and the NUL padding of fixed-width text fields.
fn trimmed(text: &str) -> String {
    text.trim_matches(|c: char| c <= ' ').to_owned()
}

#[cfg(test)]
mod tests {
    use crate::gt06::parser::tests::decode_hex;

    #[test]
    fn obd_pairs() {
        let d = decode_hex("797900de8c120b1502121b013137333d302c3232333d312c3238333d30303030303030302c3436333d30303030303035362c3437333d30303030303030662c3438333d30303030303031312c3242333d30303030303030302c3244333d30303030313839632c3335333d30303030313661382c3336333d30303032386163382c3339333d30303030303230612c3330333d30303030303561612c3439333d30303030303030302c3441333d4b4e4146323431434d4b353031343235352c3341333d30303030303338352c3530333d30303030c0041df0940f89c06700000000c800910d0a");
        assert_eq!(d.attributes["ignition"], true);
        assert_eq!(d.attributes["coolantTemp"], 63.0);
        assert_eq!(d.attributes["vin"], "KNAF241CMK5014255");
    }
}
