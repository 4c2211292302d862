//! Message ids (JT/T 808-2013/2019 and the vendor ones Traccar knows).

pub(crate) const TERMINAL_RESPONSE: u16 = 0x0001;
pub(crate) const HEARTBEAT: u16 = 0x0002;
pub(crate) const LOGOUT: u16 = 0x0003;
pub(crate) const REGISTER: u16 = 0x0100;
pub(crate) const AUTH: u16 = 0x0102;
pub(crate) const PARAMETERS: u16 = 0x0104;
pub(crate) const TERMINAL_ATTRIBUTES: u16 = 0x0107;
pub(crate) const TIME_SYNC: u16 = 0x0109;
pub(crate) const LOCATION: u16 = 0x0200;
pub(crate) const LOCATION_QUERY_RESPONSE: u16 = 0x0201;
pub(crate) const LOCATION_BATCH_2: u16 = 0x0210;
pub(crate) const HEARTBEAT_2: u16 = 0x0506;
pub(crate) const COMMAND_RESPONSE: u16 = 0x0701;
pub(crate) const DRIVER_IDENTITY: u16 = 0x0702;
pub(crate) const LOCATION_BATCH: u16 = 0x0704;
pub(crate) const TRANSPARENT: u16 = 0x0900;
pub(crate) const TIME_ZONE_SYNC: u16 = 0x1007;
pub(crate) const TEXT_RESPONSE: u16 = 0x1300;
pub(crate) const ACCELERATION: u16 = 0x2070;
pub(crate) const LOCATION_2: u16 = 0x5501;
pub(crate) const LOCATION_BLIND: u16 = 0x5502;
pub(crate) const REPORT_TEXT: u16 = 0x6006;
pub(crate) const PHOTO: u16 = 0x8888;

/// Server messages.
pub(crate) const GENERAL_RESPONSE: u16 = 0x8001;
pub(crate) const GENERAL_RESPONSE_2: u16 = 0x4401;
pub(crate) const REGISTER_RESPONSE: u16 = 0x8100;
pub(crate) const TIME_SYNC_RESPONSE: u16 = 0x8109;
