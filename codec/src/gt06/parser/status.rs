//! Heartbeats with layouts of their own: GK310's 0x23 and the 0x13 variant
//! with a temperature. The common 0x13 is in the location family (it shares
//! the terminal-status block).

use crate::ParseError;

use super::super::frame::Frame;

use super::fields::{self, SERIAL_AND_CRC};
use super::out::{Decoded, Kind};

/// 0x23: status bits, then battery voltage and signal when present.
pub(crate) fn heartbeat(f: &Frame) -> Result<Decoded, ParseError> {
    let mut r = fields::content(f);
    let mut out = Decoded::new(Kind::Heartbeat);
    let status = r.u8("status")?;
    out.set("armed", status & 0x01 != 0);
    out.set("ignition", status & 0x02 != 0);
    out.set("charge", status & 0x04 != 0);
    if r.remaining_before_last(SERIAL_AND_CRC) >= 2 {
        out.set("battery", f64::from(r.u16("battery")?) / 100.0);
    }
    if r.remaining_before_last(SERIAL_AND_CRC) >= 1 {
        out.set("rssi", r.u8("rssi")?);
    }
    Ok(out)
}

/// 0x13 with 16 content bytes: battery level and a temperature.
pub(crate) fn with_temperature(f: &Frame) -> Result<Decoded, ParseError> {
    let mut r = fields::content(f);
    let mut out = Decoded::new(Kind::Heartbeat);
    r.skip(
        1 + 2 + 1 + 1,
        "information content, satellites, alarm, language",
    )?; // information content, satellites, alarm, language
    out.set("batteryLevel", r.u8("batteryLevel")?);
    r.skip(
        1 + 2 + 1 + 2 + 2,
        "mode, voltage, reserved, working times, working time",
    )?; // mode, voltage, reserved, working times, working time
    let value = r.u16("value")?;
    let magnitude = f64::from(value & 0x7fff) / 10.0;
    // Bit 15 set means above zero on these devices.
    out.set(
        "temp1",
        if value & 0x8000 != 0 {
            magnitude
        } else {
            -magnitude
        },
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use crate::gt06::encode;
    use crate::gt06::parser::tests::decode_bytes;

    #[test]
    fn gk310_heartbeat() {
        let d = decode_bytes(&encode::frame(0x23, &[0x03, 0x01, 0x90, 0x04], 1));
        assert_eq!(d.attributes["ignition"], true);
        assert_eq!(d.attributes["armed"], true);
        assert_eq!(d.attributes["battery"], 4.0);
        assert_eq!(d.attributes["rssi"], 4);
    }

    #[test]
    fn temperature_heartbeat() {
        let mut content = [0u8; 16];
        content[5] = 80;
        content[14..16].copy_from_slice(&0x80fbu16.to_be_bytes());
        let d = decode_bytes(&encode::frame(0x13, &content, 1));
        assert_eq!(d.attributes["batteryLevel"], 80);
        assert_eq!(d.attributes["temp1"], 25.1);
    }
}
