//! The blocks many GT06 messages share: date, GPS, serving cell (LBS),
//! terminal status, and the alarm code table.

use chrono::{DateTime, NaiveDate, Utc};

use crate::ParseError;

use crate::read::Reader;

use super::super::frame::{Frame, STOP, TRAILER_LEN};
use super::super::msg::{self, Model, Variant};
use super::out::{Cell, Decoded, Fix};

/// The serial number and CRC after a frame's content.
pub(crate) const SERIAL_AND_CRC: usize = TRAILER_LEN - STOP.len();

/// A reader over `frame` from `start`, without the stop bytes. Reads may run
/// into the serial and CRC, as they do in Traccar for clones that send
/// neither; the content left is `remaining_before_last(SERIAL_AND_CRC)`
/// (Traccar's `readableBytes() - 6`).
pub(crate) fn frame_reader(frame: &[u8], start: usize) -> Reader<'_> {
    let mut r = Reader::new(&frame[..frame.len().saturating_sub(STOP.len())]);
    r.seek(start);
    r
}

/// A reader over a frame's content (see [`frame_reader`]).
pub(crate) fn content<'a>(f: &Frame<'a>) -> Reader<'a> {
    frame_reader(f.bytes, f.content_start())
}

/// A date and time as six binary bytes (year - 2000, month, day, hour,
/// minute, second), UTC.
pub(crate) fn date(r: &mut Reader) -> Result<DateTime<Utc>, ParseError> {
    let [y, mo, d, h, mi, s] = six(r)?;
    make_date([y, mo, d, h, mi, s])
}

/// A date and time as six BCD bytes (`24 05 01 12 30 05`), UTC.
pub(crate) fn bcd_date(r: &mut Reader) -> Result<DateTime<Utc>, ParseError> {
    let raw = six(r)?;
    let mut out = [0u8; 6];
    for (o, b) in out.iter_mut().zip(raw) {
        if b >> 4 > 9 || b & 0x0f > 9 {
            return Err(ParseError::Invalid(format!(
                "BCD time {} is not decimal",
                hex::encode(raw)
            )));
        }
        *o = (b >> 4) * 10 + (b & 0x0f);
    }
    make_date(out)
}

fn six(r: &mut Reader) -> Result<[u8; 6], ParseError> {
    let b = r.bytes(6, "date")?;
    Ok([b[0], b[1], b[2], b[3], b[4], b[5]])
}

/// Whether six bytes at the start of `bytes` are a plausible binary date (used to
/// recognise layouts of devices that do not say which layout they use).
pub(crate) fn looks_like_date(bytes: &[u8]) -> bool {
    bytes
        .get(..6)
        .is_some_and(|b| make_date([b[0], b[1], b[2], b[3], b[4], b[5]]).is_ok())
}

fn make_date([y, mo, d, h, mi, s]: [u8; 6]) -> Result<DateTime<Utc>, ParseError> {
    NaiveDate::from_ymd_opt(2000 + i32::from(y), u32::from(mo), u32::from(d))
        .and_then(|date| date.and_hms_opt(u32::from(h), u32::from(mi), u32::from(s)))
        .map(|t| t.and_utc())
        .ok_or_else(|| ParseError::Invalid(format!("invalid date {:02x?}", [y, mo, d, h, mi, s])))
}

/// How a GPS block is laid out (most messages use the defaults).
#[derive(Debug, Clone, Copy)]
pub(crate) struct GpsLayout {
    /// A length byte after the date; 0 means no fix follows.
    pub has_length: bool,
    pub has_satellites: bool,
    pub has_speed: bool,
    /// Speed as two bytes.
    pub long_speed: bool,
    /// Course/status word before the speed.
    pub flags_first: bool,
}

impl Default for GpsLayout {
    fn default() -> Self {
        GpsLayout {
            has_length: false,
            has_satellites: true,
            has_speed: true,
            long_speed: false,
            flags_first: false,
        }
    }
}

/// Decodes a GPS block into `out.fix`: date, satellites (low nibble of the
/// GPS-info byte), latitude and longitude (raw / 1 800 000 degrees), speed in
/// km/h, course and the status bits in the course word. Returns the block's
/// time; `out.fix` stays `None` when a length byte says there is no fix.
pub(crate) fn gps(
    r: &mut Reader,
    layout: GpsLayout,
    out: &mut Decoded,
) -> Result<DateTime<Utc>, ParseError> {
    let time = date(r)?;
    if layout.has_length && r.u8("GPS length")? == 0 {
        return Ok(time);
    }
    if layout.has_satellites {
        out.satellites = Some(u32::from(r.u8("satellites")? & 0x0f));
    }
    let latitude = f64::from(r.u32("latitude")?) / 1_800_000.0;
    let longitude = f64::from(r.u32("longitude")?) / 1_800_000.0;
    let mut flags = if layout.flags_first {
        r.u16("flags")?
    } else {
        0
    };
    let speed = match (layout.has_speed, layout.long_speed) {
        (false, _) => 0.0,
        (true, true) => f64::from(r.u16("speed")?),
        (true, false) => f64::from(r.u8("speed")?),
    };
    if !layout.flags_first {
        flags = r.u16("course and flags")?;
    }
    out.fix = Some(fix_from_flags(time, latitude, longitude, speed, flags));
    if flags & 0x4000 != 0 {
        out.set("ignition", flags & 0x8000 != 0);
    }
    Ok(time)
}

/// Applies the course/status word: course in bits 0-9, north when bit 10 is
/// set, west when bit 11 is set, positioned when bit 12 is set.
pub(crate) fn fix_from_flags(
    time: DateTime<Utc>,
    latitude: f64,
    longitude: f64,
    speed: f64,
    flags: u16,
) -> Fix {
    Fix {
        time,
        valid: flags & 0x1000 != 0,
        // `+ 0.0` turns a negated zero into 0 (no `-0.0` in the JSON).
        latitude: if flags & 0x0400 != 0 {
            latitude
        } else {
            -latitude + 0.0
        },
        longitude: if flags & 0x0800 != 0 {
            -longitude + 0.0
        } else {
            longitude
        },
        speed,
        course: f64::from(flags & 0x03ff),
        altitude: 0.0,
    }
}

/// Decodes a serving-cell block into `out.cells`. Cell id and area code
/// widths depend on the message type (2G/3G vs 4G). Returns false when a
/// length byte says there is no cell.
pub(crate) fn lbs(
    r: &mut Reader,
    kind: u8,
    variant: Variant,
    has_length: bool,
    out: &mut Decoded,
) -> Result<bool, ParseError> {
    let mut length = 0;
    if has_length {
        length = usize::from(r.u8("LBS length")?);
        if length == 0 {
            skip_zeroed_cells(r)?;
            return Ok(false);
        }
    }
    let cell_type = if kind == msg::GPS_LBS_8 || kind == msg::ALARM_MODULE {
        r.u8("cell type")?
    } else {
        0
    };
    let sl4x = variant == Variant::Sl4x;
    let mcc = r.u16("mcc")?;
    let mnc = if mcc & 0x8000 != 0 || kind == msg::GPS_LBS_6 || sl4x {
        r.u16("mnc")?
    } else {
        u16::from(r.u8("mnc")?)
    };
    let four_g = cell_type >= 3 || matches!(kind, msg::LBS_ALARM | msg::GPS_LBS_7 | msg::WIFI_3);
    let lac = if four_g {
        i64::from(r.i32("lac")?)
    } else {
        i64::from(r.u16("lac")?)
    };
    let cid = if four_g || sl4x {
        r.i64("cell id")?
    } else if matches!(kind, msg::GPS_LBS_6 | msg::IBUTTON | msg::GPS_LBS_DRIVER)
        || variant == Variant::Seeworld
    {
        i64::from(r.u32("cell id")?)
    } else {
        i64::from(r.u24("cell id")?)
    };
    if cell_type >= 3 {
        r.skip(2, "signal strength")?;
    } else if kind == msg::GPS_LBS_8 || kind == msg::ALARM_MODULE {
        r.skip(1, "signal strength")?;
    }
    out.cells.push(Cell {
        mcc: mcc & 0x7fff,
        mnc,
        lac,
        cid,
        rssi: None,
    });
    // The length counts itself: anything past the 2G layout is skipped.
    if length > 9 {
        r.skip(length - 9, "LBS extension")?;
    }
    Ok(true)
}

/// Some devices send an LBS length of 0 followed by the zeroed space where
/// the cells would be; skip it when it is all zeros (as Traccar does).
fn skip_zeroed_cells(r: &mut Reader) -> Result<(), ParseError> {
    let ahead = r.remaining();
    let window = ahead.min(45);
    let mut probe = r.clone();
    let zeroed = probe
        .bytes(window, "zeroed cells")?
        .iter()
        .skip(9)
        .all(|&b| b == 0);
    if zeroed {
        r.skip(window, "zeroed cells")?;
    }
    Ok(())
}

/// Decodes the terminal-information byte: ignition, charging, relay
/// (blocked) and the alarm in bits 3-5.
pub(crate) fn terminal_status(
    r: &mut Reader,
    variant: Variant,
    out: &mut Decoded,
) -> Result<(), ParseError> {
    let status = r.u8("status")?;
    out.set("status", status);
    out.set("ignition", status & 0x02 != 0);
    out.set("charge", status & 0x04 != 0);
    out.set("blocked", status & 0x80 != 0);
    out.add_alarm(match (status >> 3) & 0x07 {
        1 => Some("vibration"),
        2 => Some("powerCut"),
        3 => Some("lowBattery"),
        4 => Some("sos"),
        6 => Some("geofence"),
        7 if variant == Variant::Vxt01 => Some("overspeed"),
        7 => Some("removing"),
        _ => None,
    });
    Ok(())
}

/// The alarm byte of status blocks (Concox's alarm codes plus vendors'
/// additions; some models give codes other meanings).
pub(crate) fn alarm(code: u16, model: Model) -> Option<&'static str> {
    let Model {
        lw, seeworld, vl, ..
    } = model;
    Some(match code {
        0x01 => "sos",
        0x02 => "powerCut",
        0x03 => "vibration",
        0x04 => "geofenceEnter",
        0x05 => "geofenceExit",
        0x06 => "overspeed",
        0x09 if vl => "tow",
        0x09 => "vibration",
        0x0e | 0x0f => "lowBattery",
        0x11 => "powerOff",
        0x0c | 0x13 | 0x25 | 0x32 => "tampering",
        0x14 => "door",
        0x18 if lw => "accident",
        0x18 => "removing",
        0x19 if lw => "hardAcceleration",
        0x19 => "lowBattery",
        0x1a | 0x27 => "hardBraking",
        0x1b | 0x2a | 0x2b | 0x2e => "hardCornering",
        0x23 => "fallDown",
        0x26 => "hardAcceleration",
        0x28 if seeworld => "hardCornering",
        0x28 if vl => "powerOff",
        0x28 => "hardBraking",
        0x29 if seeworld => "accident",
        0x29 => "hardAcceleration",
        0x2c => "accident",
        0x30 if vl => "hardBraking",
        0x30 => "jamming",
        0x33 => "lock",
        0x34 => "unlock",
        0x53 => "fuelLeak",
        0x5b | 0x5c => "temperature",
        0xc9 => "idle",
        0x0107 | 0x010b => "jamming",
        _ => return None,
    })
}

/// Battery as a 0-6 level or a percentage, as GT06 devices send either.
pub(crate) fn battery_level(raw: u8, out: &mut Decoded) {
    if raw <= 6 {
        out.set("batteryLevel", u32::from(raw) * 100 / 6);
    } else if raw <= 100 {
        out.set("batteryLevel", raw);
    }
}

/// A BCD IMEI (16 digits with a leading 0) at the start of `bytes`, as some
/// devices repeat it inside location messages.
pub(crate) fn looks_like_imei(bytes: &[u8]) -> bool {
    bytes
        .get(..8)
        .is_some_and(|b| b[0] >> 4 == 0 && b.iter().all(|&x| x >> 4 <= 9 && x & 0x0f <= 9))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn frame(content: &str) -> Vec<u8> {
        let mut f = hex::decode(format!("787800ff{content}")).unwrap();
        f.extend_from_slice(&[0, 1, 0, 0, 0x0d, 0x0a]);
        f
    }

    #[test]
    fn gps_block() {
        let f = frame("0f0a140e150bc505e51e780293a9e8005400");
        let mut r = frame_reader(&f, 4);
        let mut out = Decoded::new(super::super::out::Kind::Status);
        gps(&mut r, GpsLayout::default(), &mut out).unwrap();
        let fix = out.fix.unwrap();
        assert_eq!(
            fix.time,
            Utc.with_ymd_and_hms(2015, 10, 20, 14, 21, 11).unwrap()
        );
        assert!(fix.valid);
        assert!((fix.latitude - 54.94535).abs() < 1e-5, "{}", fix.latitude);
        assert!((fix.longitude - 24.01762).abs() < 1e-5, "{}", fix.longitude);
        assert_eq!(out.satellites, Some(5));
        assert_eq!(out.attributes["ignition"], false);
    }

    #[test]
    fn hemispheres() {
        let t = Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap();
        let f = fix_from_flags(t, 10.0, 20.0, 0.0, 0x0800 | 45);
        assert_eq!(
            (f.latitude, f.longitude, f.course, f.valid),
            (-10.0, -20.0, 45.0, false)
        );
    }

    #[test]
    fn dates() {
        let f = frame("180b0d031406");
        assert_eq!(
            date(&mut frame_reader(&f, 4)).unwrap(),
            Utc.with_ymd_and_hms(2024, 11, 13, 3, 20, 6).unwrap()
        );
        let f = frame("190119105436");
        assert_eq!(
            bcd_date(&mut frame_reader(&f, 4)).unwrap(),
            Utc.with_ymd_and_hms(2019, 1, 19, 10, 54, 36).unwrap()
        );
        let f = frame("180d0d031406");
        assert!(date(&mut frame_reader(&f, 4)).is_err());
        assert!(looks_like_date(&[24, 2, 29, 23, 59, 59]));
        assert!(!looks_like_date(&[23, 2, 29, 0, 0, 0]));
    }

    #[test]
    fn alarm_codes_depend_on_the_model() {
        let lw = Model {
            lw: true,
            ..Model::default()
        };
        assert_eq!(alarm(0x19, Model::default()), Some("lowBattery"));
        assert_eq!(alarm(0x19, lw), Some("hardAcceleration"));
        assert_eq!(alarm(0x00, lw), None);
    }
}
