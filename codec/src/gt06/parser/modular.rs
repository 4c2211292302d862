//! Messages made of typed modules: the modular location 0x70 (Jimi 4G) and
//! the device status / peripheral reports 0xF1 / 0xF2.

use chrono::{DateTime, Utc};

use crate::ParseError;

use super::super::frame::Frame;
use super::super::msg;
use crate::read::Reader;

use super::fields;
use super::fields::SERIAL_AND_CRC;
use super::out::{Cell, Decoded, Kind};

/// 0x70: modules of (type u16, length u16, value). Each value is read from
/// its own slice, so a module shorter or longer than expected cannot shift
/// the ones after it.
pub(crate) fn gps_modular(f: &Frame) -> Result<Decoded, ParseError> {
    let mut r = fields::content(f);
    let mut out = Decoded::new(Kind::Status);
    while r.remaining_before_last(SERIAL_AND_CRC) > 0 {
        let module = r.u16("module")?;
        let len = usize::from(r.u16("length")?);
        let mut m = Reader::new(r.bytes(len, "module")?);
        match module {
            0x03 => out.set("iccid", m.hex(10, "iccid")?),
            0x09 => out.satellites = Some(m.u8("satellites")?.into()),
            0x0a => out.set("satVisible", m.u8("satVisible")?),
            0x11 => {
                let (mcc, mnc, lac) = (m.u16("mcc")?, m.u16("mnc")?, m.u16("lac")?);
                let cid = m.u24("cid")?;
                let rssi = m.u8("rssi")?;
                if cid > 0 {
                    out.cells.push(Cell {
                        mcc,
                        mnc,
                        lac: lac.into(),
                        cid: cid.into(),
                        rssi: Some(rssi.into()),
                    });
                }
            }
            0x18 => out.set("battery", f64::from(m.u16("battery")?) / 100.0),
            0x28 => out.set("hdop", f64::from(m.u8("hdop")?) / 10.0),
            0x29 => out.set("index", m.u32("index")?),
            0x2a => {
                let input = m.u8("input")?;
                out.set("door", input & 0x0f > 0);
                out.set("tamper", input >> 4 > 0);
            }
            0x2b => {
                let event = m.u8("event")?;
                out.add_alarm(match event {
                    0x11 => Some("lowBattery"),
                    0x12 => Some("lowPower"),
                    0x13 => Some("powerCut"),
                    0x14 => Some("removing"),
                    _ => None,
                });
                out.set("event", event);
            }
            0x2e => out.set("odometer", m.u32_le("odometer")?),
            0x33 => {
                let seconds = m.u32("seconds")?;
                out.satellites = Some(m.u8("satellites")?.into());
                let altitude = m.i16("altitude")?;
                let latitude = f64::from(m.u32("latitude")?) / 1_800_000.0;
                let longitude = f64::from(m.u32("longitude")?) / 1_800_000.0;
                let speed = f64::from(m.u8("speed")?);
                let flags = m.u16("flags")?;
                // Time 0: no fix yet (the rest is zeros too).
                if seconds != 0 {
                    let mut fix =
                        fields::fix_from_flags(epoch(seconds)?, latitude, longitude, speed, flags);
                    fix.altitude = f64::from(altitude);
                    out.fix = Some(fix);
                }
            }
            0x34 => {
                let event = m.u8("event")?;
                out.add_alarm(match event {
                    0x10 => Some("door"),
                    0x12 => Some("removing"),
                    0x14 => Some("geofenceEnter"),
                    0x15 => Some("geofenceExit"),
                    0x16 => Some("temperature"),
                    0x1a => Some("lowBattery"),
                    0x1b => Some("overspeed"),
                    0x1c => Some("powerOn"),
                    0x1d => Some("powerOff"),
                    0x20 => Some("vibration"),
                    0x21 => Some("powerCut"),
                    0x23 => Some("tampering"),
                    _ => None,
                });
                out.set("event", event);
            }
            0x7f => {
                out.set("tag1Id", m.hex(6, "tag1Id")?);
                out.set("tag1Battery", f64::from(m.u16("tag1Battery")?) / 1000.0);
                out.set("tag1BatteryLevel", m.u8("tag1BatteryLevel")?);
                out.set("tag1Temp", f64::from(m.i16("tag1Temp")?) / 10.0);
                out.set("tag1Humidity", m.i16("tag1Humidity")?);
                out.set("tag1Status", m.u8("tag1Status")?);
            }
            _ => {}
        }
    }
    Ok(out)
}

/// 0xF1 (device status) and 0xF2 (peripherals): a Unix time, then items.
pub(crate) fn device_status(f: &Frame) -> Result<Decoded, ParseError> {
    let mut r = fields::content(f);
    let mut out = Decoded::new(Kind::Status);
    out.time = Some(epoch(r.u32("time")?)?);
    while r.remaining_before_last(SERIAL_AND_CRC) > 0 {
        let id = r.u16("id")?;
        if f.protocol == msg::PERIPHERAL {
            peripheral(&mut r, id, &mut out)?;
            continue;
        }
        let len = usize::from(r.u8("length")?);
        let mut m = Reader::new(r.bytes(len, "module")?);
        match id {
            0x0001 => {
                let motion = m.u8("motion")?;
                out.set("motion", motion == 0x02 || motion == 0x04);
            }
            0x0002 => out.set("armed", m.u8("armed")? > 0),
            0x0004 => out.set("ignition", m.u8("ignition")? > 0),
            0x0005 => out.set("power", f64::from(m.u16("power")?) / 100.0),
            0x0007 => out.set("charge", m.u8("charge")? > 0),
            0x000a => out.set("chargeVoltage", m.u16("chargeVoltage")?),
            0x000b => out.set("batteryTemp", f64::from(m.u16("batteryTemp")?) / 10.0),
            _ => {}
        }
    }
    Ok(out)
}

fn peripheral(r: &mut Reader, id: u16, out: &mut Decoded) -> Result<(), ParseError> {
    match id {
        0x000a => {
            let len = usize::from(r.u16("length")?);
            let details = len.checked_sub(10).ok_or_else(|| {
                ParseError::Invalid(format!("peripheral item of {len} bytes is too short"))
            })?;
            r.skip(1, "MAC address type")?;
            out.set("mac", r.hex(6, "mac")?);
            let event = r.u8("event")?;
            out.set("event", event);
            let data = r.u8("data")?;
            if event > 0 {
                out.set("eventData", data);
            }
            out.set("dataType", r.u8("dataType")?);
            out.set("dataDetails", r.hex(details, "dataDetails")?);
        }
        0x000c => {
            r.skip(1, "length")?;
            out.set("externalBatteryLevel", r.u8("externalBatteryLevel")?);
            if r.u8("external battery charge")? > 0 {
                out.set("externalBatteryCharge", true);
            }
            out.set("externalBatteryCycles", r.u16("externalBatteryCycles")?);
            r.skip(6, "reserved")?;
        }
        _ => {
            let len = match r.u8("length")? {
                0 => r.u8("extended length")?,
                n => n,
            };
            r.skip(len.into(), "peripheral data")?;
        }
    }
    Ok(())
}

pub(crate) fn epoch(seconds: u32) -> Result<DateTime<Utc>, ParseError> {
    DateTime::from_timestamp(i64::from(seconds), 0)
        .ok_or_else(|| ParseError::Invalid(format!("time {seconds} out of range")))
}

#[cfg(test)]
mod tests {
    use crate::gt06::parser::tests::decode_hex;

    #[test]
    fn device_status_power() {
        let d = decode_hex("79790026f16318c0000001010100020101000301000004010100050201950006010010000100008021af0d0a");
        assert_eq!(d.attributes["power"], 4.05);
        assert_eq!(d.attributes["ignition"], true);
        assert_eq!(d.attributes["armed"], true);
    }

    #[test]
    fn modular_alarm() {
        let d = decode_hex("797900a87000000001020035000101003300125d7e3a180600d504b598f708814b3a001d1500340006125d7e39dc000011000a012e02620000000000000001000803537601000129800002000803102608593397620003000a89012608522933976266001800020172002b000114002c00045d7df3c70009000106000a000109002800010d002e00040000f25d002a000111002900040000017e0030000a000100b4000a00b402d0000591250d0a");
        assert_eq!(d.attributes["alarm"], "removing");
        assert!(d.fix.is_some());
    }
}
