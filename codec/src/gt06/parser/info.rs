//! Information messages 0x94: external voltage in standard frames; in
//! extended frames a sub-type byte selects voltage, alarm states, door, SIM
//! card ids, network type, a fuel sensor, a serial device or a
//! temperature/humidity sensor.

use crate::ParseError;

use super::super::frame::Frame;

use super::fields;
use super::fields::SERIAL_AND_CRC;
use super::out::{Decoded, Kind};

/// 0x94 in a standard frame: external voltage.
pub(crate) fn power(f: &Frame) -> Result<Decoded, ParseError> {
    let mut r = fields::content(f);
    let mut out = Decoded::new(Kind::Status);
    out.set("power", f64::from(r.i16("power")?) / 100.0);
    Ok(out)
}

/// 0x94 in an extended frame. `None` for a fuel report that does not parse
/// (Traccar drops those too).
pub(crate) fn decode(f: &Frame) -> Result<Option<Decoded>, ParseError> {
    let mut r = fields::content(f);
    let mut out = Decoded::new(Kind::Status);
    let sub = r.u8("sub")?;
    match sub {
        0x00 => out.set("adc1", f64::from(r.u16("adc1")?) / 100.0),
        0x04 => states(
            &String::from_utf8_lossy(r.rest_before_last(SERIAL_AND_CRC)),
            &mut out,
        ),
        0x05 => {
            // A time before the flags byte when there is room for one.
            if r.remaining_before_last(SERIAL_AND_CRC) > 6 {
                out.time = Some(fields::date(&mut r)?);
            }
            let flags = r.u8("flags")?;
            out.set("door", flags & 0x01 != 0);
            out.set("io1", flags & 0x04 != 0);
        }
        0x0a => {
            r.skip(8 + 8, "IMEI, IMSI")?;
            let iccid = r.hex(10, "iccid")?;
            out.set("iccid", iccid.trim_end_matches('f'));
        }
        0x0b => match f.length.saturating_sub(6) {
            1 => out.set(
                "networkTechnology",
                if r.i8("networkTechnology")? > 0 {
                    "4G"
                } else {
                    "2G"
                },
            ),
            2 => out.set("power", f64::from(r.u16("power")?) / 100.0),
            _ => {}
        },
        0x0d => {
            if r.peek_u8("fuel sensor data")? != b'!' {
                r.skip(6, "time")?;
            }
            let Some((temperature, fuel)) =
                fuel_sensor(&String::from_utf8_lossy(r.rest_before_last(SERIAL_AND_CRC)))
            else {
                return Ok(None);
            };
            out.set("temp1", temperature);
            out.set("fuel", fuel);
        }
        0x1b => {
            if r.peek_u8("peripheral data")?.is_ascii_alphabetic() {
                out.set(
                    "serial",
                    String::from_utf8_lossy(r.rest_before_last(SERIAL_AND_CRC)).trim(),
                );
            } else {
                r.skip(2, "header, type")?;
                out.set("driverUniqueId", r.hex(4, "driverUniqueId")?);
                r.skip(2, "checksum, footer")?;
            }
        }
        0x1e => {
            out.set("temp1", f64::from(r.i32("temp1")?) / 10.0);
            out.set("humidity", f64::from(r.i32("humidity")?) / 10.0);
        }
        other => {
            return Err(ParseError::Unsupported(format!(
                "information sub-type {other:#04x}"
            )))
        }
    }
    Ok(Some(out))
}

/// `ALM1=C5;ALM2=CC;STA1=C0;DYD=01;…`: alarm and status registers in hex.
fn states(text: &str, out: &mut Decoded) {
    for pair in text.split(';') {
        let Some((key, value)) = pair.split_once('=') else {
            continue;
        };
        let Ok(value) = u32::from_str_radix(value, 16) else {
            continue;
        };
        match key {
            "ALM1" | "ALM2" | "ALM3" | "ALM4" => {
                out.set(&format!("alarm{}Status", &key[3..]), value)
            }
            "STA1" => out.set("otherStatus", value),
            "DYD" => out.set("engineStatus", value),
            _ => {}
        }
    }
}

/// `!AIOIL,<addr>,<output>,<temperature>,<version>,<wave><sw><hw>,<measured>,<moving>,<times>,<xx>`
/// from an ultrasonic fuel sensor: temperature and measured level.
fn fuel_sensor(text: &str) -> Option<(f64, f64)> {
    let fields: Vec<&str> = text.strip_prefix("!AIOIL,")?.split(',').collect();
    let [address, output, temperature, version, codes, measured, moving, times, checksum] =
        fields[..]
    else {
        return None;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let decimal = |s: &str| {
        s.split_once('.')
            .is_some_and(|(a, b)| digits(a) && digits(b))
    };
    let ok = digits(address)
        && decimal(output)
        && decimal(temperature)
        && !version.is_empty()
        && codes.len() == 4
        && digits(codes)
        && decimal(measured)
        && matches!(moving, "0" | "1")
        && digits(times)
        && checksum.len() == 2
        && checksum.bytes().all(|b| b.is_ascii_hexdigit());
    if !ok {
        return None;
    }
    Some((temperature.parse().ok()?, measured.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gt06::parser::tests::decode_hex;

    #[test]
    fn fuel_sensor_text() {
        let (t, fuel) = fuel_sensor("!AIOIL,02,008.290,029.600,519J,0400,008.430,0,00,AB").unwrap();
        assert_eq!((t, fuel), (29.6, 8.43));
        assert!(fuel_sensor("!AIOIL,02,008.290").is_none());
        assert!(fuel_sensor("nonsense").is_none());
    }

    #[test]
    fn sub_types() {
        assert_eq!(
            decode_hex("79790008940b02e3048614200d0a").attributes["power"],
            7.39
        );
        assert_eq!(
            decode_hex("7979000e941e000000d5000002ee00f59b850d0a").attributes["humidity"],
            75.0
        );
        assert_eq!(
            decode_hex("7979000d940516090908081c030defbd2d0d0a").attributes["door"],
            true
        );
        let d = decode_hex(
            "79790020940a035985708236675805200502187214018966051912408052452f000355560d0a",
        );
        assert_eq!(d.attributes["iccid"], "8966051912408052452");
    }

    #[test]
    fn alarm_states() {
        let mut out = Decoded::new(Kind::Status);
        states("ALM1=C5;ALM2=CC;STA1=C0;DYD=01;SOS=0132,,;X", &mut out);
        assert_eq!(out.attributes["alarm1Status"], 0xc5);
        assert_eq!(out.attributes["otherStatus"], 0xc0);
        assert_eq!(out.attributes["engineStatus"], 1);
    }
}
