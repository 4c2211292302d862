//! Location messages with layouts of their own: X1 (0x34), iButton (0x61),
//! 0x38, SR411 mini (0x24), AZ735 (extended 0x32 / 0x33) and the VL103
//! family's 0x36.

use crate::ParseError;

use super::super::frame::Frame;
use super::super::msg::{self, Variant};
use crate::read::Reader;

use super::fields::SERIAL_AND_CRC;
use super::fields::{self, GpsLayout};
use super::out::{Cell, Decoded, Kind};

fn start<'a>(f: &Frame<'a>) -> (Reader<'a>, Decoded) {
    (fields::content(f), Decoded::new(Kind::Status))
}

/// X1 location: GPS, odometer, cell, driver, voltages, inputs and outputs.
pub(crate) fn x1(f: &Frame) -> Result<Decoded, ParseError> {
    let (mut r, mut out) = start(f);
    r.skip(4, "data and alarm flags")?;
    fields::gps(&mut r, GpsLayout::default(), &mut out)?;
    r.skip(2, "terminal information")?;
    out.set("odometer", r.u32("odometer")?);
    let mcc = r.u16("mcc")?;
    let mnc = u16::from(r.u8("mnc")?);
    let lac = i64::from(r.u16("lac")?);
    let cid = i64::from(r.u32("cid")?);
    out.cells.push(Cell {
        mcc,
        mnc,
        lac,
        cid,
        rssi: None,
    });
    let driver = r.u32("driver")?;
    if driver > 0 {
        out.set("driverUniqueId", driver.to_string());
    }
    out.set("battery", f64::from(r.u16("battery")?) / 100.0);
    out.set("power", f64::from(r.u16("power")?) / 100.0);
    let ports = r.u32("ports")?;
    out.set("input", r.u8("input")?);
    out.set("output", r.u8("output")?);
    for i in 1..=(ports >> 20) & 0x0f {
        out.set(&format!("adc{i}"), f64::from(r.u16("adc")?) / 100.0);
    }
    Ok(out)
}

/// iButton: IMEI, GPS, cell, then the key's id.
pub(crate) fn ibutton(f: &Frame, variant: Variant) -> Result<Decoded, ParseError> {
    let (mut r, mut out) = start(f);
    r.skip(8, "IMEI")?;
    fields::gps(&mut r, GpsLayout::default(), &mut out)?;
    fields::lbs(&mut r, f.protocol, variant, false, &mut out)?;
    let id = (u64::from(r.u32("id")?) << 16) | u64::from(r.u16("id")?);
    out.set("driverUniqueId", id.to_string());
    Ok(out)
}

/// 0x38: GPS, upload mode, then a cell with its radio type.
pub(crate) fn gps_lbs_8(f: &Frame, variant: Variant) -> Result<Decoded, ParseError> {
    let (mut r, mut out) = start(f);
    fields::gps(&mut r, GpsLayout::default(), &mut out)?;
    r.skip(2, "data upload mode, re-upload")?;
    fields::lbs(&mut r, f.protocol, variant, false, &mut out)?;
    Ok(out)
}

/// SR411 mini's 0x24: GPS, cell, ignition and voltages.
pub(crate) fn sr411(f: &Frame, variant: Variant) -> Result<Decoded, ParseError> {
    let (mut r, mut out) = start(f);
    fields::gps(&mut r, GpsLayout::default(), &mut out)?;
    fields::lbs(&mut r, f.protocol, variant, false, &mut out)?;
    out.set("ignition", r.u8("ignition")? > 0);
    out.set("power", f64::from(r.u16("power")?) / 100.0);
    out.set("battery", f64::from(r.u16("battery")?) / 100.0);
    Ok(out)
}

/// AZ735 location (0x32) and alarm (0x33) in extended frames: GPS and cell
/// blocks with length bytes, skipped neighbour cells and WiFi, a status byte.
pub(crate) fn az735(f: &Frame, variant: Variant) -> Result<Decoded, ParseError> {
    let (mut r, mut out) = start(f);
    let layout = GpsLayout {
        has_length: true,
        ..GpsLayout::default()
    };
    let time = fields::gps(&mut r, layout, &mut out)?;
    if out.fix.is_none() {
        out.time = Some(time);
    }
    if fields::lbs(&mut r, f.protocol, variant, true, &mut out)? {
        out.set("rssi", r.u8("rssi")?);
    }
    let cells = usize::from(r.u8("cells")?);
    r.skip(cells, "cells")?;
    let wifi = usize::from(r.u8("wifi")?);
    r.skip(wifi, "wifi")?;
    let status = r.u8("status")?;
    out.set("status", status);
    if f.protocol == msg::WIFI_5 {
        match status {
            0xa0 => out.set("armed", true),
            0xa1 => out.set("armed", false),
            0xa2 | 0xa3 => out.add_alarm(Some("lowBattery")),
            0xa4 => out.add_alarm(Some("general")),
            0xa5 => out.add_alarm(Some("door")),
            _ => {}
        }
    }
    let reserved = usize::from(r.u8("reserved")?);
    r.skip(reserved, "reserved")?;
    Ok(out)
}

/// VL103 family's 0x36 starts with a GPS block (other devices' 0x36 starts
/// with a status byte): a valid date followed by Concox's GPS-info byte `0xC_`.
pub(crate) fn looks_like_vl_status_2(content: &[u8]) -> bool {
    content.len() >= 18 + 9 && fields::looks_like_date(content) && content[6] >> 4 == 0x0c
}

/// VL103 family's 0x36: GPS, a 4G-style cell (4-byte cell id) and, at the
/// end, the 8-byte driver id also sent in its 0x16. The bytes in between are
/// not documented to us and are left alone.
pub(crate) fn vl_status_2(f: &Frame) -> Result<Decoded, ParseError> {
    let (mut r, mut out) = start(f);
    out.set("type", f.protocol);
    fields::gps(&mut r, GpsLayout::default(), &mut out)?;
    let mcc = r.u16("mcc")?;
    let mnc = if mcc & 0x8000 != 0 {
        r.u16("mnc")?
    } else {
        u16::from(r.u8("mnc")?)
    };
    let lac = i64::from(r.u16("lac")?);
    let cid = i64::from(r.u32("cid")?);
    out.cells.push(Cell {
        mcc: mcc & 0x7fff,
        mnc,
        lac,
        cid,
        rssi: None,
    });
    let rest = r.rest_before_last(SERIAL_AND_CRC);
    if rest.len() >= 8 {
        out.set("driverUniqueId", hex::encode(&rest[rest.len() - 8..]));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use crate::gt06::parser::tests::decode_hex;

    #[test]
    fn x1_location() {
        let d = decode_hex("78783c340000000011061809130c0903107d2408488a5800144c00000000000001940b00b1000047ff000000000500018f42210000000100050003010b69450d0a");
        assert!(d.fix.is_some());
        assert_eq!(d.cells.len(), 1);
    }

    #[test]
    fn az735_without_fix() {
        let d = decode_hex(
            "79790014331107060902 0b00000000a0030046000109e4610d0a"
                .replace(' ', "")
                .as_str(),
        );
        assert!(d.fix.is_none());
        assert_eq!(d.attributes["armed"], true);
    }

    #[test]
    fn vl_status_2_driver() {
        let d = decode_hex("78783536190c1d0f1724cf026cc9140c367d4000940001cc0025ef0540e88c01000000000064051428000006c3000001453f9201003477560d0a");
        assert!(d.fix.is_some());
        assert_eq!(d.attributes["driverUniqueId"], "c3000001453f9201");
    }
}
