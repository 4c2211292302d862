//! Messages that locate by radio instead of GPS: cell lists (0x18, 0x24,
//! 0x28, 0x2C, 0x2E, 0x33, 0x34 on SL4X, 0xA1, 0xA2, 0xA9), WiFi scans
//! (0x17, 0x69, 0xF3) and Bluetooth tags (0xB2). They become status records
//! carrying Traccar's `network` object; turning them into a position needs a
//! geolocation service, which is not the parser's job.

use crate::ParseError;

use super::super::frame::Frame;
use super::super::msg::{self, Model, Variant};
use super::fields;
use super::out::{Cell, Decoded, Kind};

/// A time, the serving network, up to seven cells and maybe access points.
pub(crate) fn cells(f: &Frame, variant: Variant, model: Model) -> Result<Decoded, ParseError> {
    let kind = f.protocol;
    let mut r = fields::content(f);
    let mut out = Decoded::new(Kind::Status);
    out.time = Some(fields::date(&mut r)?);

    let ta_first = matches!(variant, Variant::WanwayS20 | Variant::Sl4x);
    if ta_first {
        r.skip(1, "timing advance")?;
    }
    let mcc = r.u16("mcc")?;
    let mnc = if mcc & 0x8000 != 0 || variant == Variant::Sl4x {
        r.u16("mnc")?
    } else {
        u16::from(r.u8("mnc")?)
    };
    let four_g = kind == msg::WIFI_ALARM && r.u8("four g")? > 0;
    let count = if variant == Variant::WanwayS20 || kind == msg::WIFI_ALARM {
        r.u8("cell count")?
    } else if kind == msg::WIFI_5 {
        6
    } else {
        7
    };
    for _ in 0..count {
        let (lac, cid) = if matches!(kind, msg::LBS_2 | msg::WIFI_3) || four_g {
            (i64::from(r.i32("lac")?), r.i64("cell id")?)
        } else if matches!(kind, msg::WIFI_5 | msg::X1_GPS) {
            (i64::from(r.u16("lac")?), i64::from(r.u32("cell id")?))
        } else {
            (i64::from(r.u16("lac")?), i64::from(r.u24("cell id")?))
        };
        let rssi = -i32::from(r.u8("rssi")?);
        if lac > 0 {
            out.cells.push(Cell {
                mcc: mcc & 0x7fff,
                mnc,
                lac,
                cid,
                rssi: Some(rssi),
            });
        }
    }
    if !ta_first {
        r.skip(1, "timing advance")?;
    }
    let cells_only = matches!(
        kind,
        msg::LBS_MULTIPLE_1 | msg::LBS_MULTIPLE_2 | msg::LBS_MULTIPLE_3 | msg::LBS_2 | msg::X1_GPS
    );
    if !cells_only {
        let count = r.u8("count")?;
        for _ in 0..count {
            let mac = mac(r.bytes(6, "mac")?);
            out.wifi.push((mac, Some(i32::from(r.u8("wifi rssi")?))));
        }
    }
    if kind == msg::WIFI_ALARM {
        let code = r.u8("code")?;
        let language = r.u8("language")?;
        out.add_alarm(fields::alarm(
            u16::from(language >> 4) << 8 | u16::from(code),
            model,
        ));
    }
    Ok(out)
}

/// A WiFi scan. In 0x17 and 0x69 the time is BCD and the frame's length
/// byte is the access point count; 0xF3 has a binary time, counts the access
/// points itself and has no cells.
pub(crate) fn wifi_scan(f: &Frame) -> Result<Decoded, ParseError> {
    let kind = f.protocol;
    let mut r = fields::content(f);
    let mut out = Decoded::new(Kind::Status);
    out.time = Some(if kind == msg::WIFI_4 {
        fields::date(&mut r)?
    } else {
        fields::bcd_date(&mut r)?
    });
    let count = if kind == msg::WIFI_4 {
        r.u8("wifi count")?
    } else {
        f.bytes.get(2).copied().unwrap_or(0)
    };
    for _ in 0..count {
        if kind == msg::WIFI_4 {
            r.skip(2, "wifi entry header")?;
        }
        let mac = mac(r.bytes(6, "mac")?);
        let rssi = if kind == msg::WIFI_4 {
            None
        } else {
            Some(i32::from(r.u8("wifi rssi")?))
        };
        out.wifi.push((mac, rssi));
    }
    if kind != msg::WIFI_4 {
        let count = r.u8("count")?;
        let mcc = r.u16("mcc")?;
        let mnc = u16::from(r.u8("mnc")?);
        for _ in 0..count {
            let lac = i64::from(r.u16("lac")?);
            let cid = i64::from(r.u16("cid")?);
            let rssi = i32::from(r.u8("rssi")?);
            out.cells.push(Cell {
                mcc,
                mnc,
                lac,
                cid,
                rssi: Some(rssi),
            });
        }
    }
    Ok(out)
}

/// A Bluetooth tag heard by the device (attendance clock).
pub(crate) fn bluetooth_clock(f: &Frame) -> Result<Decoded, ParseError> {
    let mut r = fields::content(f);
    let mut out = Decoded::new(Kind::Status);
    out.time = Some(fields::date(&mut r)?);
    out.set("rssi", r.i8("rssi")?);
    out.set("tagMac", r.hex(6, "tagMac")?);
    out.set("tagUuid", r.hex(16, "tagUuid")?);
    out.set("tagMajor", r.u16("tagMajor")?);
    out.set("tagMinor", r.u16("tagMinor")?);
    out.set("tagBattery", f64::from(r.u16("tagBattery")?) / 100.0);
    out.set("clock", (r.u8("clock")? >> 2) & 0x0f);
    Ok(out)
}

fn mac(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use crate::gt06::parser::tests::decode_hex;

    #[test]
    fn wifi_scan_without_crc() {
        let d = decode_hex("7878001719011910543607028f0100bc2e695a00bcb3635a00bc27c56400bc447b6400bc46c96400bc33ce6400bc64ca640d0a");
        assert_eq!(d.cells.len(), 7);
        assert!(d.wifi.is_empty());
        assert_eq!(d.time.unwrap().to_string(), "2019-01-19 10:54:36 UTC");
    }

    #[test]
    fn wifi_scan_with_access_points() {
        let d = decode_hex("787808171709281135331491827b75594dc8d719a9708452cad719a9708550cad719a97086521491827b75574cac9e17b308085dc8d71939633947cad71939633a480700cc0400d37a3d5a00d37a3d5a00d37a3d5a00d37a3d5a00d37a3d5a00d37a3d5a00d37a3d5a0d0a");
        assert_eq!(d.wifi.len(), 8);
        assert_eq!(d.wifi[0].0, "14:91:82:7b:75:59");
        assert_eq!(d.cells.len(), 7);
    }

    #[test]
    fn wifi_4_has_a_binary_time() {
        let d = decode_hex("787844f3140c0b0a262a070000dc9fdb1c1d760000c83a3569a37100008825937287000000ec41180c8209000088c39749553700003891d5604d6300003891d5604d68002ec4230d0a");
        assert_eq!(d.time.unwrap().to_string(), "2020-12-11 10:38:42 UTC");
        assert_eq!(d.wifi.len(), 7);
        assert_eq!(d.wifi[0], ("dc:9f:db:1c:1d:76".to_owned(), None));
    }

    #[test]
    fn cell_list() {
        let d = decode_hex("78783b2810010d02020201cc00287d001f713e287d001f7231287d001e232d287d001f4018000000000000000000000000000000000000ff00020005b14b0d0a");
        assert_eq!(d.cells.len(), 4);
        assert_eq!(d.cells[0].rssi, Some(-0x3e));
    }
}
