#![no_main]

mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    common::fuzz_protocol(fleetbus_codec::Protocol::Wialon, data);
});
