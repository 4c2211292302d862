//! The GPS / LBS / status family (0x10-0x12, 0x16, 0x19, 0x22, 0x26, 0x27,
//! 0x2D, 0x31, 0x32, 0x37, 0xA0, 0xA2-0xA7 and relatives): an optional GPS
//! block, an optional serving cell, an optional terminal-status block, then
//! per-type and per-variant extras.

use crate::ParseError;

use super::super::frame::Frame;
use super::super::msg::{self, Model, Variant};
use crate::read::Reader;

use super::fields::SERIAL_AND_CRC;
use super::fields::{self, GpsLayout};
use super::out::{Decoded, Kind};
use super::positions;

pub(crate) fn decode(
    f: &Frame,
    variant: Variant,
    model: Model,
) -> Result<Option<Decoded>, ParseError> {
    let kind = f.protocol;
    let content = f.content();
    if kind == msg::LBS_STATUS && variant == Variant::Space10x {
        return Ok(None); // a multi-cell layout Traccar does not decode either
    }
    if kind == msg::STATUS_2 && (model.vl || positions::looks_like_vl_status_2(content)) {
        return positions::vl_status_2(f).map(Some);
    }
    if kind == msg::FENCE_SINGLE
        && variant != Variant::Seeworld
        && f.length == 0x18
        && !fields::looks_like_date(content)
    {
        return status_3(f).map(Some);
    }
    if content.is_empty() {
        // An empty location (seen from devices without a fix) has nothing to
        // record; an empty heartbeat is still a heartbeat.
        return Ok((kind == msg::STATUS).then(|| Decoded::new(Kind::Heartbeat)));
    }

    let mut r = fields::content(f);
    let nt = matches!(kind, msg::GPS_LBS_2 | msg::GPS_LBS_DRIVER)
        && (model.nt || looks_like_nt(content));
    let mut out = Decoded::new(if kind == msg::STATUS {
        Kind::Heartbeat
    } else {
        Kind::Status
    });
    out.set("type", kind);

    if kind == msg::GPS_LBS_1 && (model.qh302r || imei_before_gps(content)) {
        r.skip(8, "the IMEI again")?;
    }
    if nt {
        r.skip(1 + 8, "location source, IMEI")?;
        out.time = Some(fields::date(&mut r)?); // device time; the fix time follows
    }

    if msg::has_gps(kind, variant) {
        fields::gps(&mut r, GpsLayout::default(), &mut out)?;
    }
    let has_status = msg::has_status(kind, variant, nt);
    if msg::has_lbs(kind, variant) && r.remaining_before_last(SERIAL_AND_CRC) > 0 {
        let has_length = has_status
            && !matches!(
                kind,
                msg::LBS_STATUS | msg::LBS_ALARM | msg::ALARM_MODULE | msg::WIFI_3
            )
            && !(kind == msg::GPS_LBS_STATUS_1 && variant == Variant::Vxt01);
        fields::lbs(&mut r, kind, variant, has_length, &mut out)?;
    }
    let mut driver_after_language = false;
    if has_status {
        driver_after_language = status_block(&mut r, kind, variant, model, nt, &mut out)?;
    }
    if matches!(
        kind,
        msg::STATUS_2 | msg::WIFI_3 | msg::GPS_LBS_STATUS_3 | msg::FENCE_MULTI | msg::ALARM_MODULE
    ) || nt
        || driver_after_language
    {
        r.skip(1, "language")?;
    }
    if driver_after_language {
        out.set("driverUniqueId", r.hex(8, "driverUniqueId")?);
    }
    if matches!(kind, msg::STATUS_2 | msg::ALARM_MODULE) {
        modules(&mut r, &mut out)?;
    }
    if kind == msg::WIFI_3 {
        out.set("odometer", r.u32("odometer")?);
        out.set("hours", u64::from(r.u32("hours")?) * 1000);
        r.skip(8, "terminal id")?;
        out.set("input", r.u16("input")?);
    }
    if kind == msg::GPS_LBS_1 {
        gps_lbs_1_extras(&mut r, variant, model, &mut out)?;
    }
    if kind == msg::GPS_LBS_2 && variant == Variant::Seeworld {
        out.set("ignition", r.u8("ignition")? > 0);
        r.skip(2, "reporting mode, supplementary transmission")?;
        out.set("odometer", r.u32("odometer")?);
        r.skip(4, "travel time")?;
        out.set(
            "temp1",
            f64::from(sign_magnitude_15(r.u16("temp1")?)) / 100.0,
        );
        out.set("humidity", f64::from(r.u16("humidity")?) / 100.0);
    }
    if kind == msg::GPS_LBS_STATUS_4 && variant == Variant::Sl4x {
        set_altitude(&mut out, r.i16("altitude")?);
    }
    if matches!(
        kind,
        msg::GPS_LBS_2 | msg::GPS_LBS_3 | msg::GPS_LBS_4 | msg::GPS_LBS_5
    ) && r.remaining_before_last(SERIAL_AND_CRC) >= 3
        && !nt
    {
        out.set("ignition", r.u8("ignition")? > 0);
        out.set("event", r.u8("event")?); // why the position was sent
        if r.u8("odometer flag")? > 0 {
            out.set("archive", true);
        }
        if variant == Variant::Sl4x {
            if r.remaining_before_last(SERIAL_AND_CRC) > 2 {
                out.set("odometer", r.u32("odometer")?);
            }
            set_altitude(&mut out, r.i16("altitude")?);
        }
    }
    if kind == msg::GPS_LBS_3 {
        let module = r.u16("module")?;
        let len = usize::from(r.u8("length")?);
        let mut m = Reader::new(r.bytes(len, "module")?);
        match module {
            0x0027 => out.set("power", f64::from(m.u16("power")?) / 100.0),
            0x002e => out.set("odometer", m.u32("odometer")?),
            0x003b => out.set("accuracy", f64::from(m.u16("accuracy")?) / 100.0),
            _ => {}
        }
    }
    if kind == msg::WIFI {
        // 0x17 in this family is GPS + LBS + RFID card (the WiFi scan is elsewhere).
        out.set("driverUniqueId", r.hex(8, "driverUniqueId")?);
        r.skip(1, "validity")?;
    }
    if nt {
        out.set("odometer", r.u24("odometer")?);
        out.set("hours", u64::from(r.u24("hours")?) * 60_000);
        if kind == msg::GPS_LBS_DRIVER {
            let len = usize::from(r.u8("length")?);
            if len > 0 {
                r.skip(1, "identifier type")?;
                out.set("driverUniqueId", r.hex(len - 1, "driverUniqueId")?);
            }
        }
    }
    if matches!(r.remaining_before_last(SERIAL_AND_CRC), 3 | 7) {
        out.set("ignition", r.u8("ignition")? > 0);
        r.skip(1, "upload mode")?;
        if r.u8("door flag")? > 0 {
            out.set("archive", true);
        }
    }
    if r.remaining_before_last(SERIAL_AND_CRC) == 4 {
        out.set("odometer", r.u32("odometer")?);
    }
    if matches!(kind, msg::GPS_LBS_STATUS_3 | msg::FENCE_MULTI) {
        out.set("geofence", r.u8("geofence")?);
    }
    Ok(Some(out))
}

/// Terminal status, battery, signal and alarm. Returns whether an 8-byte
/// driver id follows the language byte (VL103 family).
fn status_block(
    r: &mut Reader,
    kind: u8,
    variant: Variant,
    model: Model,
    nt: bool,
    out: &mut Decoded,
) -> Result<bool, ParseError> {
    if kind == msg::WIFI_3 {
        r.skip(1, "network indicator")?;
    }
    fields::terminal_status(r, variant, out)?;
    if variant == Variant::Obd6 {
        let signal = r.u16("signal")?;
        out.satellites = Some(u32::from((signal >> 10) & 0x1f) + u32::from((signal >> 5) & 0x1f));
        out.set("rssi", signal & 0x1f);
        out.add_alarm(fields::alarm(r.u8("alarm")?.into(), model));
        r.skip(1, "language")?;
        out.set("batteryLevel", r.u8("batteryLevel")?);
        let mode = r.u8("mode")?;
        out.set("power", f64::from(r.u16("power")?) / 100.0);
        r.skip(1 + 2, "reserved, working time")?;
        if mode == 4 {
            out.set("temp1", f64::from(r.i16("temp1")?) / 10.0);
        }
        return Ok(false);
    }
    if kind == msg::WIFI_3 || nt {
        out.set("power", f64::from(r.u16("power")?) / 100.0);
    }
    if kind == msg::STATUS && model.r11 {
        out.set("power", f64::from(r.u16("power")?) / 100.0);
    } else {
        let battery = r.u8("battery")?;
        if nt {
            out.set("battery", f64::from(battery) / 10.0);
        } else {
            fields::battery_level(battery, out);
        }
    }
    out.set("rssi", r.u8("rssi")?);
    if kind == msg::STATUS && model.lw {
        out.set("power", f64::from(r.u16("power")? & 0x0fff) / 10.0);
        return Ok(false);
    }
    let mut extension = u16::from(r.u8("extension")?);
    if matches!(
        kind,
        msg::GPS_LBS_STATUS_3 | msg::FENCE_MULTI | msg::ALARM_MODULE
    ) {
        // The language byte's high nibble extends the alarm code.
        extension += u16::from(r.peek_u8("language").unwrap_or(0) >> 4) << 8;
    }
    // VL103 and relatives end 0x16 with language and an 8-byte driver id.
    let driver_after_language =
        kind == msg::GPS_LBS_STATUS_1 && r.remaining_before_last(SERIAL_AND_CRC) == 1 + 8;
    let model = Model {
        vl: model.vl || driver_after_language,
        ..model
    };
    if model.vl {
        out.set("event", extension);
    }
    if kind == msg::STATUS && model.seeworld {
        out.set("power", f64::from(extension));
    } else if variant != Variant::Vxt01 {
        out.add_alarm(fields::alarm(extension, model));
    }
    Ok(driver_after_language)
}

/// Type / length / value modules (Jimi 4G status, alarm module).
fn modules(r: &mut Reader, out: &mut Decoded) -> Result<(), ParseError> {
    while r.remaining_before_last(SERIAL_AND_CRC) > 0 {
        let module = r.u16("module")?;
        let len = usize::from(r.u8("length")?);
        let mut m = Reader::new(r.bytes(len, "module")?);
        match module {
            0x0018 => out.set("battery", f64::from(m.u16("battery")?) / 100.0),
            0x0032 => out.set("startupStatus", m.u8("startupStatus")?),
            0x006a => out.set("batteryLevel", m.u8("batteryLevel")?),
            _ => {}
        }
    }
    Ok(())
}

/// Vendor extras of 0x12, told apart by length.
fn gps_lbs_1_extras(
    r: &mut Reader,
    variant: Variant,
    model: Model,
    out: &mut Decoded,
) -> Result<(), ParseError> {
    match variant {
        Variant::Gt06ECard => {
            out.set("odometer", r.u32("odometer")?);
            let len = usize::from(r.u8("length")?);
            let card = r.utf8_lossy(len, "card")?;
            r.skip(2, "alarm, swiped")?;
            out.set("card", card.trim());
        }
        Variant::Benway => {
            let mask = r.u16("mask")?;
            out.set("ignition", mask & 0x8000 != 0);
            out.set("in2", mask & 0x4000 != 0);
            if mask & 0x1000 != 0 {
                let value = i32::from(mask & 0x01ff);
                out.set("temp1", if mask & 0x0200 != 0 { -value } else { value });
            } else {
                let value = mask & 0x03ff;
                if mask & 0x2000 != 0 {
                    out.set("adc1", value);
                } else {
                    out.set("adc1", f64::from(value) / 10.0);
                }
            }
        }
        Variant::Vxt01 => {
            fields::terminal_status(r, variant, out)?;
            out.set("power", f64::from(r.u16("power")?) / 100.0);
            out.set("rssi", r.u8("rssi")?);
            r.skip(1, "alarm extension")?;
        }
        Variant::S5 => {
            fields::terminal_status(r, variant, out)?;
            out.set("power", f64::from(r.u16("power")?) / 100.0);
            out.set("rssi", r.u8("rssi")?);
            out.add_alarm(fields::alarm(r.u8("alarm")?.into(), model));
            out.set("oil", r.u16("oil")?);
            let t = r.u8("temperature")?;
            out.set(
                "temp1",
                if t & 0x80 != 0 {
                    -i32::from(t & 0x7f)
                } else {
                    i32::from(t)
                },
            );
            out.set("odometer", u64::from(r.u32("odometer")?) * 10);
        }
        Variant::Wetrust => {
            out.set("odometer", r.u32("odometer")?);
            let len = usize::from(r.u8("length")?);
            out.set("card", r.utf8_lossy(len, "card")?);
            if r.u8("card swiped")? > 0 {
                out.add_alarm(Some("general"));
            }
            out.set("cardStatus", r.u8("cardStatus")?);
            out.set("drivingTime", r.u16("drivingTime")?);
        }
        _ => {}
    }
    Ok(())
}

/// GL21L status (0xA3 with 19 content bytes, no GPS). Only the step counter
/// is decoded: the layout is inferred from a capture, not from a document.
fn status_3(f: &Frame) -> Result<Decoded, ParseError> {
    let mut r = fields::content(f);
    let mut out = Decoded::new(Kind::Status);
    out.set("type", f.protocol);
    r.skip(11, "reserved")?;
    out.set("steps", r.u16("steps")?);
    Ok(out)
}

/// NT20 / XT40 layout: location source, BCD IMEI, device time, then GPS.
fn looks_like_nt(content: &[u8]) -> bool {
    content.len() > 1 + 8 + 6 + 18
        && fields::looks_like_imei(&content[1..])
        && fields::looks_like_date(&content[9..])
        && fields::looks_like_date(&content[15..])
}

/// QH302R layout: BCD IMEI, then a GPS block (date, GPS-info byte 0xC_).
fn imei_before_gps(content: &[u8]) -> bool {
    content.len() >= 8 + 18
        && fields::looks_like_imei(content)
        && fields::looks_like_date(&content[8..])
        && content[14] >> 4 == 0x0c
}

/// A 15-bit magnitude with the sign in bit 15.
fn sign_magnitude_15(raw: u16) -> i32 {
    let value = i32::from(raw & 0x7fff);
    if raw & 0x8000 != 0 {
        -value
    } else {
        value
    }
}

fn set_altitude(out: &mut Decoded, altitude: i16) {
    if let Some(fix) = out.fix.as_mut() {
        fix.altitude = f64::from(altitude);
    } else {
        out.set("altitude", altitude);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gt06::parser::tests::decode_hex;
    use serde_json::json;

    #[test]
    fn location_0x12() {
        let d =
            decode_hex("78781f120f0a140e150bc505e51e780293a9e800540000f601006e0055da00035f240d0a");
        let fix = d.fix.as_ref().unwrap();
        assert!(fix.valid);
        assert!((fix.latitude - 54.94535).abs() < 1e-5);
        assert_eq!(d.cells[0].mcc, 246);
        assert_eq!(d.attributes["type"], 0x12);
    }

    #[test]
    fn alarm_in_status_bits_and_extension() {
        // 0x16 SEEWORLD layout, alarm byte 0x01 (SOS).
        let d = decode_hex("787826161709130f3a2dcc02c55f2a089f9af9005c210901360481fe066d9b03413e420102035f92fe0d0a");
        assert_eq!(d.attributes["alarm"], "sos");
        assert_eq!(d.attributes["batteryLevel"], 62);
        // 0x16 with the "removing" alarm in the terminal status bits.
        let d = decode_hex(
            "7878251613020c12141ac5027951430c2a16f60014000900000000001a00007c550300020002f1e70d0a",
        );
        assert_eq!(d.attributes["alarm"], "removing");
    }

    #[test]
    fn heartbeat_0x13() {
        let d = decode_hex("78780a130604ea04000006bc8a0d0a");
        assert_eq!(d.kind, Kind::Heartbeat);
        assert!(d.fix.is_none());
        assert_eq!(d.attributes["ignition"], true);
        assert_eq!(d.attributes["charge"], true);
        assert_eq!(d.attributes["batteryLevel"], 66);
        assert_eq!(d.attributes["alarm"], "geofenceEnter");
    }

    #[test]
    fn empty_messages() {
        let f = crate::gt06::encode::frame(0x12, &[], 1);
        let f = Frame::parse(&f).unwrap();
        assert!(decode(&f, Variant::Standard, Model::default())
            .unwrap()
            .is_none());
        let f = crate::gt06::encode::frame(0x13, &[], 1);
        let d = decode(
            &Frame::parse(&f).unwrap(),
            Variant::Standard,
            Model::default(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(d.kind, Kind::Heartbeat);
    }

    #[test]
    fn vl_driver_after_language() {
        let d = decode_hex("78782d16190c1d0f0b07cf026cc89c0c367cf00014000801cc0025ef40e88c460604ea01c3000001453f9201000c103a0d0a");
        assert_eq!(d.attributes["driverUniqueId"], "c3000001453f9201");
        assert_eq!(d.attributes["event"], 234);
    }

    #[test]
    fn nt_layout_is_recognised() {
        let d = decode_hex("78783c22010357789648774484180c06142038180c06142038cb03313ee4061fe98300185e090000000000000000460984284c000200000000017101d6f35d0d0a");
        assert_eq!(d.attributes["hours"], json!(22_140_000));
        assert_eq!(d.attributes["battery"], json!(4.0));
        assert!(d.fix.is_some());
    }
}
