//! What a simulated device of each protocol says, and how it learns that the
//! gateway stored a frame.
//!
//! Every frame is built from the stored frame id and its records only — no
//! clock, no in-memory counter — so a resent frame has the same bytes and
//! RAW stores it once (same `Nats-Msg-Id`).
//!
//! How a device knows that a data frame was stored ([`Ack`]):
//!
//! - **Reply**: the protocol answers the data frame itself after the gateway
//!   stored it (Teltonika, GT06, H02 `V1`, GPS103 with the heartbeat glued in
//!   front, JT808, Ruptela, Meitrack `CCC`).
//! - **Barrier**: the protocol does not answer data (TK103 `BR00`, Queclink
//!   `+RESP:GTFRI`), so the device sends a frame that is answered but not
//!   stored (TK103 handshake `BP00`, Queclink heartbeat `+ACK:GTHBD`) right
//!   after it. The gateway answers a connection's frames strictly in order
//!   and gives no answer to anything after a frame it could not store
//!   (services/src/gateway/conn.rs), so that answer proves the data frame
//!   before it is stored.
//! - Suntech answers nothing at all, so a device can never know; the
//!   simulator does not speak it (it could only delete on write, at most
//!   once, and then "acknowledged" would mean nothing).

use anyhow::{bail, Context};
use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use fleetbus_codec::{gl200, gps103, gt06, h02, jt808, meitrack, ruptela, teltonika, tk103};
use fleetbus_codec::{AnyFramer, Position, Protocol};
use tokio_util::codec::Decoder;

/// Protocols the simulator can speak: every protocol with a way to learn
/// that a frame was stored (see the module documentation).
pub const SUPPORTED: [Protocol; 9] = [
    Protocol::Teltonika,
    Protocol::Gt06,
    Protocol::H02,
    Protocol::Gps103,
    Protocol::Tk103,
    Protocol::Jt808,
    Protocol::Ruptela,
    Protocol::Meitrack,
    Protocol::Gl200,
];

/// Why a protocol is not in [`SUPPORTED`], for error messages.
pub fn unsupported_reason(p: Protocol) -> Option<&'static str> {
    match p {
        Protocol::Suntech => Some(
            "suntech devices get no answer to anything, so a simulated device could never know that a record was stored",
        ),
        p if SUPPORTED.contains(&p) => None,
        _ => Some("not implemented in the simulator"),
    }
}

/// How a device learns that a data frame was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    /// The data frame's own answer.
    Reply,
    /// The answer to an unstored frame sent right after it.
    Barrier,
}

pub fn ack(p: Protocol) -> Ack {
    match p {
        Protocol::Tk103 | Protocol::Gl200 => Ack::Barrier,
        _ => Ack::Reply,
    }
}

/// 1 knot in km/h, as the codec converts.
const KNOTS_TO_KMH: f64 = 1.852;

/// The Queclink protocol version the simulated devices announce (the one
/// the codec's round-trip tests use).
const GL200_VERSION: &str = "DE0114";

/// The device id the gateway and the parser will see for a device with
/// `imei`: the IMEI, except where the protocol's id is shorter — TK103 ids
/// and JT808 terminal phone numbers are 12 digits, the IMEI's last 12
/// (`<fleet:2 last digits><index:10>`).
pub fn device_id(protocol: Protocol, imei: &str) -> String {
    match protocol {
        Protocol::Tk103 | Protocol::Jt808 => imei[imei.len().saturating_sub(12)..].to_string(),
        _ => imei.to_string(),
    }
}

/// Records per frame: `wanted` where the protocol carries several records in
/// one acknowledged frame (Teltonika, Ruptela, Meitrack `CCC`), capped so a
/// frame stays below the protocol's default maximum; 1 elsewhere.
pub fn per_frame(protocol: Protocol, wanted: usize) -> usize {
    let cap = match protocol {
        Protocol::Teltonika => 255,
        // ~35 bytes a record, 2 KiB frames.
        Protocol::Ruptela => 40,
        // 52 bytes a record, 4 KiB frames.
        Protocol::Meitrack => 64,
        _ => 1,
    };
    wanted.clamp(1, cap)
}

/// Brings generated values to what `protocol` carries, so what is sent is
/// exactly what comes back: H02 and GPS103 send speed in knots (two
/// decimals), so the speed is a whole number of knots in km/h.
pub fn quantize(protocol: Protocol, p: &mut Position) {
    if matches!(protocol, Protocol::H02 | Protocol::Gps103) {
        p.speed = (p.speed / KNOTS_TO_KMH).round() * KNOTS_TO_KMH;
    }
}

fn numeric_imei(imei: &str) -> anyhow::Result<u64> {
    imei.parse()
        .with_context(|| format!("IMEI {imei:?} is not a number"))
}

/// What a device sends when it connects, before any data frame (each is
/// answered; none is stored). Empty where the protocol has no login and
/// every data frame carries the id.
pub fn hello(protocol: Protocol, imei: &str) -> anyhow::Result<Vec<Bytes>> {
    let id = device_id(protocol, imei);
    Ok(match protocol {
        Protocol::Teltonika => vec![teltonika::encode::login(imei)],
        Protocol::Gt06 => vec![gt06::encode::login(imei, 0)],
        Protocol::Gps103 => vec![gps103::encode::login(imei)],
        Protocol::Tk103 => vec![tk103::encode::handshake(&id, imei)],
        Protocol::Jt808 => vec![jt808::encode::auth(
            &jt808::encode::Terminal::phone(&id),
            0,
            &id,
        )],
        Protocol::Ruptela => vec![ruptela::encode::heartbeat(numeric_imei(imei)?)],
        Protocol::Meitrack => vec![meitrack::encode::message(b'A', imei, "AAC", b"1")],
        Protocol::Gl200 => vec![gl200::encode::heartbeat(
            GL200_VERSION,
            imei,
            DateTime::<Utc>::UNIX_EPOCH,
            0,
        )],
        Protocol::H02 => Vec::new(),
        other => bail!("the simulator does not speak {other}"),
    })
}

/// The frames that deliver stored frame `frame` (its records `positions`):
/// the data frame, then, for [`Ack::Barrier`] protocols, the answered frame
/// that proves it stored. Deterministic in `frame` and `positions`.
pub fn data(
    protocol: Protocol,
    imei: &str,
    frame: u64,
    positions: &[Position],
) -> anyhow::Result<Vec<Bytes>> {
    let Some(first) = positions.first() else {
        bail!("frame {frame} has no records");
    };
    let id = device_id(protocol, imei);
    // Serial numbers and counters that the protocols carry: from the frame id.
    let serial = frame as u16;
    Ok(match protocol {
        Protocol::Teltonika => vec![teltonika::encode::codec8(positions)?],
        Protocol::Gt06 => vec![gt06::encode::location(first, serial)],
        // All status bits set: no alarm; bit 10 cleared without ignition.
        Protocol::H02 => {
            let ignition = first.attributes.get("ignition").and_then(|v| v.as_bool());
            let status = if ignition == Some(true) {
                0xFFFF_FFFF
            } else {
                !(1u32 << 10)
            };
            vec![h02::encode::position(&id, first, status)]
        }
        // `<imei>imei:…;`: a heartbeat glued to the data message, which the
        // server answers with `ON` once the message is stored.
        Protocol::Gps103 => {
            let mut b = BytesMut::from(imei.as_bytes());
            b.extend_from_slice(&gps103::encode::position(imei, "tracker", first));
            vec![b.freeze()]
        }
        Protocol::Tk103 => vec![
            tk103::encode::position(&id, first, 0),
            tk103::encode::handshake(&id, imei),
        ],
        Protocol::Jt808 => vec![jt808::encode::location(
            &jt808::encode::Terminal::phone(&id),
            serial,
            first,
            0,
            31,
        )],
        Protocol::Ruptela => vec![ruptela::encode::records(numeric_imei(imei)?, positions, 0)?],
        // Event 35: "track by time interval". The flag byte cycles A–Z.
        Protocol::Meitrack => {
            let flag = b'A' + (frame % 26) as u8;
            vec![meitrack::encode::ccc(flag, imei, positions, 35)]
        }
        Protocol::Gl200 => vec![
            gl200::encode::fixed_report(GL200_VERSION, imei, first, first.fix_time, serial),
            gl200::encode::heartbeat(GL200_VERSION, imei, first.fix_time, serial),
        ],
        other => bail!("the simulator does not speak {other}"),
    })
}

/// `wire` cut into frames by `framer` (the protocol's, one per connection,
/// as the gateway has): what the gateway's session sees. JT808's framer,
/// for one, takes the escaping out.
pub fn cut(framer: &mut AnyFramer, wire: &[u8]) -> anyhow::Result<Vec<Bytes>> {
    let mut buf = BytesMut::from(wire);
    let mut out = Vec::new();
    while let Some(f) = framer
        .decode(&mut buf)
        .map_err(|e| anyhow::anyhow!("own bytes refused by the framer: {e}"))?
    {
        out.push(f);
    }
    if !buf.is_empty() {
        bail!("{} bytes left over by the framer", buf.len());
    }
    Ok(out)
}

/// Whether `got` is the answer `expected` (as computed by the codec's own
/// session). Exact, except for H02's `V4` answer, which ends with the
/// server's clock (`…,<yyyyMMddHHmmss>#`).
pub fn reply_matches(protocol: Protocol, got: &[u8], expected: &[u8]) -> bool {
    if got == expected {
        return true;
    }
    const TIME: usize = 14 + 1; // yyyyMMddHHmmss#
    protocol == Protocol::H02
        && got.len() == expected.len()
        && expected.len() > TIME
        && got[..got.len() - TIME] == expected[..expected.len() - TIME]
        && expected[..expected.len() - TIME].ends_with(b",")
        && got[got.len() - TIME..got.len() - 1]
            .iter()
            .all(u8::is_ascii_digit)
        && got.ends_with(b"#")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::device::record;
    use crate::simulate::imei;
    use fleetbus_codec::{ParseContext, Record};

    /// For every supported protocol: the gateway's framer and session take
    /// the device's bytes, every data frame gets an answer (own or barrier),
    /// the stored frames parse back to the records with the values sent
    /// (within `fleetbus verify`'s tolerances, and tighter), and a resend is
    /// byte-identical.
    #[test]
    fn every_protocol_round_trips_through_the_codec() {
        let base = 1_764_400_000; // 2025-11-29
        for (n, &protocol) in SUPPORTED.iter().enumerate() {
            let imei = imei(7, 1000 + n);
            let id = device_id(protocol, &imei);
            let per = per_frame(protocol, 3);
            let mut session = protocol.session();
            let mut framer = protocol.framer(protocol.default_max_frame());
            for bytes in hello(protocol, &imei).unwrap() {
                let framed = cut(&mut framer, &bytes).unwrap();
                assert_eq!(framed.len(), 1, "{protocol}: one hello frame");
                let h = session.on_frame(&framed[0]).unwrap();
                assert!(!h.store, "{protocol}: hello is not stored");
                assert!(h.reply.is_some(), "{protocol}: hello is answered");
            }
            for frame in 0..45u64 {
                let records: Vec<Position> = (0..per as u64)
                    .map(|i| record(&id, protocol, base, frame * per as u64 + i))
                    .collect();
                let sent = data(protocol, &imei, frame, &records).unwrap();
                assert_eq!(
                    sent,
                    data(protocol, &imei, frame, &records).unwrap(),
                    "{protocol}: a resend has the same bytes"
                );
                let wire: Vec<u8> = sent.iter().flat_map(|b| b.iter().copied()).collect();
                let frames = cut(&mut framer, &wire).unwrap();
                assert_eq!(
                    frames.len(),
                    sent.len(),
                    "{protocol}: the framer cuts what was sent"
                );
                let mut stored = Vec::new();
                let mut answered = false;
                for (i, f) in frames.iter().enumerate() {
                    let h = session.on_frame(f).unwrap();
                    if i == 0 {
                        assert!(h.store, "{protocol}: the data frame is stored");
                        assert_eq!(
                            h.reply.is_some(),
                            ack(protocol) == Ack::Reply,
                            "{protocol}: data frame answer"
                        );
                    } else {
                        assert!(!h.store, "{protocol}: a barrier is not stored");
                    }
                    answered |= h.reply.is_some();
                    if h.store {
                        stored.push(f.clone());
                    }
                }
                assert!(answered, "{protocol}: no answer, no ack");
                assert_eq!(
                    session.device_id(),
                    Some(id.as_str()),
                    "{protocol}: identity"
                );
                let ctx = ParseContext::new(id.clone(), Utc::now());
                let parsed: Vec<Position> = stored
                    .iter()
                    .flat_map(|f| protocol.parse(f, &ctx).unwrap())
                    .filter_map(|r| match r {
                        Record::Position(p) => Some(p),
                        _ => None,
                    })
                    .collect();
                assert_eq!(parsed.len(), records.len(), "{protocol}: positions");
                for (got, want) in parsed.iter().zip(&records) {
                    let what = format!("{protocol} frame {frame}: {got:?} vs {want:?}");
                    assert_eq!(got.device_id, want.device_id, "{what}");
                    assert_eq!(got.protocol, want.protocol, "{what}");
                    assert_eq!(got.fix_time, want.fix_time, "{what}");
                    assert!((got.latitude - want.latitude).abs() < 1e-7, "{what}");
                    assert!((got.longitude - want.longitude).abs() < 1e-7, "{what}");
                    assert!((got.speed - want.speed).abs() < 1e-6, "{what}");
                    assert!((got.course - want.course).abs() < 1e-6, "{what}");
                }
            }
        }
    }

    #[test]
    fn full_frames_fit_the_default_maximum() {
        for &protocol in &SUPPORTED {
            let imei = imei(7, 1);
            let id = device_id(protocol, &imei);
            let per = per_frame(protocol, 255);
            let records: Vec<Position> = (0..per as u64)
                .map(|i| record(&id, protocol, 1_764_400_000, i))
                .collect();
            for f in data(protocol, &imei, 0, &records).unwrap() {
                assert!(
                    f.len() <= protocol.default_max_frame(),
                    "{protocol}: {} records make {} bytes",
                    per,
                    f.len()
                );
            }
        }
    }

    #[test]
    fn h02_answers_match_whatever_the_server_clock() {
        let expected = b"*HQ,355,V4,V1,20261129120000#";
        assert!(reply_matches(
            Protocol::H02,
            b"*HQ,355,V4,V1,20261129120513#",
            expected
        ));
        assert!(!reply_matches(
            Protocol::H02,
            b"*HQ,356,V4,V1,20261129120513#",
            expected
        ));
        assert!(!reply_matches(
            Protocol::H02,
            b"*HQ,355,V4,V1,2026112912051x#",
            expected
        ));
        assert!(!reply_matches(
            Protocol::Gt06,
            b"*HQ,355,V4,V1,20261129120513#",
            expected
        ));
    }

    #[test]
    fn suntech_is_refused_with_its_reason() {
        assert!(!SUPPORTED.contains(&Protocol::Suntech));
        assert!(unsupported_reason(Protocol::Suntech)
            .unwrap()
            .contains("no answer"));
        for p in SUPPORTED {
            assert_eq!(unsupported_reason(p), None);
        }
    }
}
