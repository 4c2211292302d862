//! The catalogue of GT06 message types (protocol numbers), the device variants
//! that reuse them with other layouts, and which message carries what.
//!
//! Names and numbers follow Traccar's `Gt06ProtocolDecoder`, which collected
//! them from many vendors' documents; several numbers mean different things on
//! different devices (noted where they do).

use super::frame::{Frame, Start};

pub(crate) const LOGIN: u8 = 0x01;
pub(crate) const GPS: u8 = 0x10;
pub(crate) const GPS_LBS_6: u8 = 0x11;
pub(crate) const GPS_LBS_1: u8 = 0x12;
pub(crate) const STATUS: u8 = 0x13;
pub(crate) const STRING: u8 = 0x15;
pub(crate) const GPS_LBS_STATUS_1: u8 = 0x16;
/// WiFi on most devices, GPS + LBS + RFID card on some (told apart by length).
pub(crate) const WIFI: u8 = 0x17;
pub(crate) const LBS_EXTEND: u8 = 0x18;
pub(crate) const LBS_STATUS: u8 = 0x19;
pub(crate) const GPS_PHONE: u8 = 0x1A;
pub(crate) const GPS_LBS_EXTEND: u8 = 0x1E;
pub(crate) const STRING_INFO: u8 = 0x21;
pub(crate) const GPS_LBS_2: u8 = 0x22;
pub(crate) const HEARTBEAT: u8 = 0x23;
pub(crate) const LBS_MULTIPLE_3: u8 = 0x24;
/// GPS + LBS + driver (XT40).
pub(crate) const GPS_LBS_DRIVER: u8 = 0x25;
pub(crate) const GPS_LBS_STATUS_2: u8 = 0x26;
pub(crate) const GPS_LBS_STATUS_3: u8 = 0x27;
pub(crate) const LBS_MULTIPLE_1: u8 = 0x28;
pub(crate) const ADDRESS_REQUEST: u8 = 0x2A;
pub(crate) const LBS_WIFI: u8 = 0x2C;
pub(crate) const GPS_LBS_4: u8 = 0x2D;
pub(crate) const LBS_MULTIPLE_2: u8 = 0x2E;
pub(crate) const GPS_LBS_5: u8 = 0x31;
/// GPS + LBS + status in a standard frame; AZ735 GPS in an extended one.
pub(crate) const GPS_LBS_STATUS_4: u8 = 0x32;
/// WiFi + LBS in a standard frame; AZ735 alarm in an extended one.
pub(crate) const WIFI_5: u8 = 0x33;
/// X1 GPS on most devices, multi-LBS on SL4X.
pub(crate) const X1_GPS: u8 = 0x34;
pub(crate) const X1_PHOTO_INFO: u8 = 0x35;
/// Status with modules in a standard frame (Jimi 4G, VL GPS); photo data in an extended one.
pub(crate) const STATUS_2: u8 = 0x36;
pub(crate) const GPS_LBS_3: u8 = 0x37;
pub(crate) const GPS_LBS_8: u8 = 0x38;
pub(crate) const ALARM_MODULE: u8 = 0x39;
pub(crate) const BMS: u8 = 0x40;
pub(crate) const MULTIMEDIA: u8 = 0x41;
pub(crate) const IBUTTON: u8 = 0x61;
pub(crate) const WIFI_2: u8 = 0x69;
pub(crate) const GPS_MODULAR: u8 = 0x70;
pub(crate) const COMMAND_0: u8 = 0x80;
pub(crate) const COMMAND_1: u8 = 0x81;
pub(crate) const COMMAND_2: u8 = 0x82;
pub(crate) const TIME_REQUEST: u8 = 0x8A;
pub(crate) const OBD: u8 = 0x8C;
pub(crate) const INFO: u8 = 0x94;
pub(crate) const ALARM: u8 = 0x95;
pub(crate) const ADDRESS_RESPONSE: u8 = 0x97;
pub(crate) const SERIAL: u8 = 0x9B;
pub(crate) const GPS_LBS_7: u8 = 0xA0;
pub(crate) const LBS_2: u8 = 0xA1;
/// WiFi (GK310) or 4G GPS + LBS + status (LWxG, told apart by length).
pub(crate) const WIFI_3: u8 = 0xA2;
/// Single geofence (GK310) or status (SEEWORLD, GL21L).
pub(crate) const FENCE_SINGLE: u8 = 0xA3;
pub(crate) const FENCE_MULTI: u8 = 0xA4;
pub(crate) const LBS_ALARM: u8 = 0xA5;
pub(crate) const LBS_ADDRESS: u8 = 0xA7;
pub(crate) const WIFI_ALARM: u8 = 0xA9;
pub(crate) const BLUETOOTH_CLOCK: u8 = 0xB2;
pub(crate) const DEVICE_STATUS: u8 = 0xF1;
pub(crate) const PERIPHERAL: u8 = 0xF2;
pub(crate) const WIFI_4: u8 = 0xF3;

/// Device families that reuse a message type with another layout, recognised
/// (as Traccar does) by the message type and the length field alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Variant {
    Standard,
    Vxt01,
    WanwayS20,
    Sr411Mini,
    Gt06ECard,
    Benway,
    S5,
    Space10x,
    Obd6,
    Wetrust,
    Jc400,
    Sl4x,
    Seeworld,
    Rfid,
    Lw4g,
}

impl Variant {
    pub(crate) fn of(frame: &Frame) -> Variant {
        if frame.start != Start::Standard {
            return Variant::Standard;
        }
        let len = frame.length;
        match frame.protocol {
            GPS_LBS_1 if len == 0x24 => Variant::Vxt01,
            GPS_LBS_STATUS_1 if len == 0x24 => Variant::Vxt01,
            LBS_MULTIPLE_3 if len == 0x31 => Variant::WanwayS20,
            LBS_MULTIPLE_3 if len == 0x2e => Variant::Sr411Mini,
            GPS_LBS_1 if len >= 0x71 => Variant::Gt06ECard,
            GPS_LBS_1 if len == 0x21 => Variant::Benway,
            GPS_LBS_1 if len == 0x2b => Variant::S5,
            LBS_STATUS if len >= 0x17 => Variant::Space10x,
            STATUS if len == 0x13 => Variant::Obd6,
            GPS_LBS_1 if len == 0x29 => Variant::Wetrust,
            ALARM if frame.bytes.get(4..6) == Some(&[0xff, 0xff]) => Variant::Jc400,
            X1_GPS if len == 0x37 => Variant::Sl4x,
            GPS_LBS_5 if len == 0x2a => Variant::Sl4x,
            GPS_LBS_STATUS_4 if len == 0x27 || len == 0x29 => Variant::Sl4x,
            GPS_LBS_2 if len == 0x2f => Variant::Seeworld,
            GPS_LBS_STATUS_1 if len == 0x26 => Variant::Seeworld,
            FENCE_SINGLE if len == 0x0c => Variant::Seeworld,
            WIFI if len == 0x28 => Variant::Rfid,
            WIFI_3 if len == 0x40 => Variant::Lw4g,
            _ => Variant::Standard,
        }
    }
}

/// What the device model (when known) changes in the decoding. GT06 frames do
/// not say which model sent them, and a few models give the same bytes
/// another meaning; Traccar takes the model from its device settings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Model {
    /// LW4G and relatives: other alarm codes, voltage in the heartbeat.
    pub lw: bool,
    /// SEEWORLD: external voltage in the heartbeat's alarm byte.
    pub seeworld: bool,
    /// NT20, XT40 and relatives: location with source, IMEI and device time.
    pub nt: bool,
    /// VL103 and relatives: other alarm codes, driver id at the end.
    pub vl: bool,
    /// R11: external voltage in the heartbeat instead of the battery level.
    pub r11: bool,
    /// QH302R: the IMEI before the location.
    pub qh302r: bool,
}

impl Model {
    pub(crate) fn new(name: Option<&str>) -> Model {
        let Some(name) = name.map(str::to_ascii_uppercase) else {
            return Model::default();
        };
        const NT: &[&str] = &["NT11", "NT20", "NT26", "NT40", "NT46", "VL100", "XT40"];
        const VL: &[&str] = &["VL103", "LL303", "VL512", "G18"];
        Model {
            lw: name.starts_with("LW"),
            seeworld: name == "SEEWORLD",
            nt: NT.contains(&name.as_str()),
            vl: VL.contains(&name.as_str()),
            r11: name == "R11",
            qh302r: name == "QH302R",
        }
    }
}

/// Messages that start with a GPS block.
pub(crate) fn has_gps(kind: u8, variant: Variant) -> bool {
    match kind {
        GPS | GPS_LBS_1 | GPS_LBS_2 | GPS_LBS_DRIVER | GPS_LBS_3 | GPS_LBS_4 | GPS_LBS_5
        | GPS_LBS_6 | GPS_LBS_STATUS_1 | GPS_LBS_STATUS_2 | GPS_LBS_STATUS_3 | GPS_LBS_STATUS_4
        | WIFI_3 | GPS_PHONE | GPS_LBS_EXTEND | GPS_LBS_7 | WIFI | FENCE_MULTI | ALARM_MODULE => {
            true
        }
        FENCE_SINGLE => variant != Variant::Seeworld,
        _ => false,
    }
}

/// Messages with a serving-cell (LBS) block.
pub(crate) fn has_lbs(kind: u8, variant: Variant) -> bool {
    match kind {
        LBS_STATUS | GPS_LBS_1 | GPS_LBS_2 | GPS_LBS_DRIVER | GPS_LBS_3 | GPS_LBS_4 | GPS_LBS_5
        | GPS_LBS_6 | GPS_LBS_STATUS_1 | GPS_LBS_STATUS_2 | GPS_LBS_STATUS_3 | GPS_LBS_STATUS_4
        | WIFI_3 | GPS_LBS_7 | WIFI | FENCE_MULTI | ALARM_MODULE | LBS_ALARM | LBS_ADDRESS => true,
        FENCE_SINGLE => variant != Variant::Seeworld,
        _ => false,
    }
}

/// Messages with a terminal-status block (status byte, battery, signal, alarm).
pub(crate) fn has_status(kind: u8, variant: Variant, nt: bool) -> bool {
    match kind {
        STATUS | STATUS_2 | LBS_STATUS | GPS_LBS_STATUS_1 | GPS_LBS_STATUS_2 | GPS_LBS_STATUS_3
        | GPS_LBS_STATUS_4 | WIFI_3 | FENCE_MULTI | ALARM_MODULE | LBS_ALARM => true,
        GPS_LBS_2 | GPS_LBS_DRIVER => nt,
        FENCE_SINGLE => variant == Variant::Seeworld,
        _ => false,
    }
}

/// The GPS / LBS / status family, decoded by one routine.
pub(crate) fn is_location_family(kind: u8, variant: Variant) -> bool {
    // NT models only add a status block to types that have GPS anyway.
    has_gps(kind, variant) || has_lbs(kind, variant) || has_status(kind, variant, false)
}

/// Cell-list messages (several cells, maybe WiFi access points).
pub(crate) fn is_multi_lbs(kind: u8, variant: Variant, extended: bool) -> bool {
    match kind {
        LBS_MULTIPLE_1 | LBS_MULTIPLE_2 | LBS_EXTEND | LBS_WIFI | LBS_2 | WIFI_ALARM => true,
        LBS_MULTIPLE_3 => variant != Variant::Sr411Mini,
        X1_GPS => variant == Variant::Sl4x,
        WIFI_3 => variant != Variant::Lw4g,
        WIFI_5 => !extended,
        _ => false,
    }
}

/// WiFi scans with a BCD time (the length byte of 0x17 / 0x69 is the access point count).
pub(crate) fn is_wifi_scan(kind: u8, variant: Variant) -> bool {
    match kind {
        WIFI => variant != Variant::Rfid,
        WIFI_2 | WIFI_4 => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(hex_str: &str) -> Vec<u8> {
        hex::decode(hex_str).unwrap()
    }

    #[test]
    fn variants_from_length() {
        let b = frame("78782616170a080c0e24c0027c58ad0c2b8b0100454e0901cc0025030328e7a0005d4b13021ec373170d0a");
        assert_eq!(Variant::of(&Frame::parse(&b).unwrap()), Variant::Seeworld);
        let b = frame("787808134606020002044dc5050d0a");
        assert_eq!(Variant::of(&Frame::parse(&b).unwrap()), Variant::Standard);
        let b = frame("78780d010352887071911998000479d00d0a");
        assert_eq!(Variant::of(&Frame::parse(&b).unwrap()), Variant::Standard);
    }

    #[test]
    fn models() {
        assert!(Model::new(Some("lw4g-4b")).lw);
        assert!(Model::new(Some("XT40")).nt);
        assert!(Model::new(Some("G18")).vl);
        assert_eq!(Model::new(None), Model::default());
        assert_eq!(Model::new(Some("GT06N")), Model::default());
    }
}
