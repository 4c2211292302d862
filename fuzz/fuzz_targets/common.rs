// Shared body of every protocol's fuzz target: the bytes are treated as a TCP
// stream (framer → session → parser, as the gateway and the hamsters see it)
// and as one frame given straight to the parser (as a RAW message could be).

use bytes::BytesMut;
use chrono::{TimeZone, Utc};
use fleetbus_codec::{ParseContext, Protocol};
use tokio_util::codec::Decoder;

pub fn fuzz_protocol(protocol: Protocol, data: &[u8]) {
    let ctx = ParseContext::new("fuzz", Utc.timestamp_opt(1_700_000_000, 0).unwrap());
    let _ = protocol.parse(data, &ctx);
    let _ = protocol.identify(data);

    // A small maximum makes the size limit reachable by the fuzzer.
    let max = 512;
    let mut framer = protocol.framer(max);
    let mut session = protocol.session();
    let mut buf = BytesMut::from(data);
    loop {
        let before = buf.len();
        match framer.decode(&mut buf) {
            Ok(Some(frame)) => {
                assert!(frame.len() <= max, "framer yielded {} bytes, max {max}", frame.len());
                assert!(buf.len() < before, "a frame was yielded without consuming input");
                let _ = session.on_frame(&frame);
                let _ = protocol.parse(&frame, &ctx);
            }
            Ok(None) => break,
            Err(_) => break,
        }
    }
}
