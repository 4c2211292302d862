//! What a simulated device of each protocol says, and how it learns that the
//! gateway stored a frame.
//!
//! Every frame is built from what the queue stores — the frame id, the
//! attempt number and the records — never from the clock or an in-memory
//! counter, so a simulator restarted from its queue sends the bytes it
//! would have sent anyway.
//!
//! Both facts below are the codec's, each in its protocol module's `Spec`
//! ([`Protocol::firmware_resend`], [`Protocol::ack`]); this module turns
//! them into bytes.
//!
//! How a device resends records whose ack it did not get ([`Resend`],
//! [`Protocol::firmware_resend`]): real firmware rarely sends the same bytes again. It
//! re-packs the pending records with newer ones into a new frame
//! ([`Behaviour::Repack`], the queue regroups them), or sends the same
//! records with the packaging a resend changes — a new serial number, flag
//! byte, send time ([`Behaviour::Reencode`], the attempt number) — or,
//! where the protocol has nothing that could change, the same bytes
//! ([`Behaviour::Same`]).
//!
//! How a device knows that a data frame was stored ([`Ack`]):
//!
//! - **Reply**: the protocol answers the data frame itself after the gateway
//!   stored it (Teltonika, GT06, H02 `V1`, GPS103 with the heartbeat glued in
//!   front, JT808, Ruptela, Meitrack `CCC`, Wialon IPS `#AD#1`).
//! - **Barrier**: the protocol does not answer data (TK103 `BR00`, Queclink
//!   `+RESP:GTFRI`, watch `UD`), so the device sends a frame that is answered
//!   but not stored (TK103 handshake `BP00`, Queclink heartbeat
//!   `+ACK:GTHBD`, watch link keep `LK`) right after it. The gateway
//!   answers a connection's frames strictly in order and gives no answer to
//!   anything after a frame it could not store
//!   (services/src/gateway/conn.rs), so that answer proves the data frame
//!   before it is stored.
//! - **None**: Suntech answers nothing at all, so a device can never know;
//!   the simulator does not speak it (it could only delete on write, at most
//!   once, and then "acknowledged" would mean nothing).

use anyhow::{bail, Context};
use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use fleetbus_codec::{
    gl200, gps103, gt06, h02, jt808, meitrack, ruptela, teltonika, tk103, watch, wialon,
};
use fleetbus_codec::{AnyFramer, Position, Protocol};
use tokio_util::codec::Decoder;

use super::queue::QueuedFrame;

/// How a device learns that a data frame was stored: the protocol's own
/// fact (`Spec::ACK` in its codec module).
pub use fleetbus_codec::Ack;

/// Whether the simulator can speak `p`: every protocol with a way to learn
/// that a frame was stored (see the module documentation).
const fn speaks(p: Protocol) -> bool {
    !matches!(p.ack(), Ack::None)
}

const SPOKEN: usize = {
    let mut n = 0;
    let mut i = 0;
    while i < Protocol::ALL.len() {
        if speaks(Protocol::ALL[i]) {
            n += 1;
        }
        i += 1;
    }
    n
};

/// Protocols the simulator can speak: those whose [`Protocol::ack`] is not
/// [`Ack::None`], in [`Protocol::ALL`] order. An array, computed at compile
/// time from the codec's facts, so no list here can miss a protocol.
pub const SUPPORTED: [Protocol; SPOKEN] = {
    let mut out = [Protocol::ALL[0]; SPOKEN];
    let (mut i, mut n) = (0, 0);
    while i < Protocol::ALL.len() {
        if speaks(Protocol::ALL[i]) {
            out[n] = Protocol::ALL[i];
            n += 1;
        }
        i += 1;
    }
    out
};

/// Why a protocol is not in [`SUPPORTED`], for error messages.
pub fn unsupported_reason(p: Protocol) -> Option<&'static str> {
    match p.ack() {
        Ack::None => Some(
            "its devices get no answer to anything, so a simulated device could never know that a record was stored",
        ),
        Ack::Reply | Ack::Barrier => None,
    }
}

/// How devices resend records whose ack they did not get (`--resend`).
/// The variants' comments are the CLI's help, hence plain text; what each
/// does is [`Behaviour`], and [`behaviour`] maps one to the other.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Resend {
    /// Each protocol as its real devices: teltonika, ruptela, meitrack
    /// re-pack; gt06, jt808, gl200 re-encode; h02, gps103, tk103, watch,
    /// wialon send the same bytes.
    #[default]
    Firmware,
    /// The same bytes again.
    Same,
    /// A new frame: the pending records first, then those recorded
    /// meanwhile (re-encoded where a frame carries one record).
    Repack,
    /// The same records with a new serial number, flag byte or send time,
    /// where the protocol has one.
    Reencode,
}

impl std::fmt::Display for Resend {
    /// As `--resend` spells it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let value = clap::ValueEnum::to_possible_value(self).expect("no variant is skipped");
        f.write_str(value.get_name())
    }
}

/// What one device does after a lost ack (no answer, a cut connection):
/// the codec's [`Resend`](fleetbus_codec::Resend), named apart from the
/// `--resend` mode above. In the queue: [`Behaviour::Same`] sends the frame
/// again; [`Behaviour::Repack`] forgets how the pending records were
/// grouped, so the next frame is a new one, the pending records first, then
/// whatever was recorded meanwhile, up to the records per frame;
/// [`Behaviour::Reencode`] keeps the grouping and raises the frame's attempt
/// number, which the encoders turn into what the protocol changes.
pub use fleetbus_codec::Resend as Behaviour;

/// What a device of `protocol` does under `--resend mode`. Re-packing a
/// protocol that carries one record per frame would only re-encode it
/// (a new frame of the same record), so it is re-encoding.
pub fn behaviour(protocol: Protocol, mode: Resend) -> Behaviour {
    match mode {
        Resend::Firmware => protocol.firmware_resend(),
        Resend::Same => Behaviour::Same,
        Resend::Reencode => Behaviour::Reencode,
        Resend::Repack if per_frame(protocol, usize::MAX) == 1 => Behaviour::Reencode,
        Resend::Repack => Behaviour::Repack,
    }
}

/// 1 knot in km/h, as the codec converts.
const KNOTS_TO_KMH: f64 = 1.852;

/// The Queclink protocol version the simulated devices announce (the one
/// the codec's round-trip tests use).
const GL200_VERSION: &str = "DE0114";

/// The vendor code simulated watches send (`3G`, the most common).
const WATCH_VENDOR: &str = "3G";

/// What a simulated watch reports besides the fix: full signal and battery,
/// no steps, no alarm.
const WATCH_STATUS: watch::encode::Status = watch::encode::Status {
    rssi: 100,
    battery: 100,
    steps: 0,
    flags: 0,
};

/// The device id the gateway and the parser will see for a device with
/// `imei`: the IMEI, except where the protocol's id is shorter — TK103 ids
/// and JT808 terminal phone numbers are 12 digits, the IMEI's last 12
/// (`<fleet:2 last digits><index:10>`). Watches send their IMEI (most
/// send 10 digits of it, which would not tell fleets apart).
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
        // Registers, as a terminal does, and then authenticates with the
        // code the answer carries (`Connection::open`).
        Protocol::Jt808 => vec![jt808::encode::register(
            &jt808::encode::Terminal::phone(&id),
            0,
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
        // A bare link keep: answered, not stored.
        Protocol::Watch => vec![watch::encode::link(WATCH_VENDOR, imei, None)],
        // A 2.0 login, so every packet after it carries its checksum.
        Protocol::Wialon => vec![wialon::encode::login(
            imei,
            None,
            wialon::encode::Version::V2,
        )],
        other => bail!("the simulator does not speak {other}"),
    })
}

/// The frames that deliver stored frame `frame`: the data frame, then, for
/// [`Ack::Barrier`] protocols, the answered frame that proves it stored.
/// Deterministic in the frame's id, attempt number and records. The first
/// attempt's bytes are those of simulators before resends were re-encoded,
/// so a queue file they left behind resends what they sent.
pub fn data(protocol: Protocol, imei: &str, frame: &QueuedFrame) -> anyhow::Result<Vec<Bytes>> {
    let positions = &frame.positions;
    let Some(first) = positions.first() else {
        bail!("frame {} has no records", frame.frame);
    };
    let id = device_id(protocol, imei);
    let serial = serial(frame.frame, frame.attempt);
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
        // Event 35: "track by time interval".
        Protocol::Meitrack => vec![meitrack::encode::ccc(
            meitrack_flag(frame.frame, frame.attempt),
            imei,
            positions,
            35,
        )],
        Protocol::Gl200 => {
            let sent = gl200_send_time(first, frame.attempt);
            let report = gl200::encode::fixed_report(GL200_VERSION, imei, first, sent, serial);
            let report = if frame.attempt == 0 {
                report
            } else {
                buffered(&report)
            };
            vec![
                report,
                gl200::encode::heartbeat(GL200_VERSION, imei, sent, serial),
            ]
        }
        // `UD` has no answer; the bare `LK` after it is answered once the
        // position before it is stored.
        Protocol::Watch => vec![
            watch::encode::position(WATCH_VENDOR, imei, None, "UD", first, WATCH_STATUS),
            watch::encode::link(WATCH_VENDOR, imei, None),
        ],
        // One extended data packet, answered `#AD#1` once stored.
        Protocol::Wialon => vec![wialon::encode::data(first, wialon::encode::Version::V2)],
        other => bail!("the simulator does not speak {other}"),
    })
}

/// The serial number (GT06, JT808) or count (Queclink) of attempt
/// `attempt` of frame `frame`: the frame id on the first attempt, another
/// on every resend — what a device's message counter gives it, without a
/// counter to store. Steps of an odd number run through all 65 536 values
/// before one comes again.
fn serial(frame: u64, attempt: u32) -> u16 {
    const STEP: u16 = 0x9E37;
    (frame as u16).wrapping_add((attempt as u16).wrapping_mul(STEP))
}

/// Meitrack's flag byte, `A`–`Z`: from the frame id, and the next letter on
/// every resend.
fn meitrack_flag(frame: u64, attempt: u32) -> u8 {
    b'A' + ((frame + u64::from(attempt)) % 26) as u8
}

/// A Queclink report's send time: the fix time on the first attempt (the
/// device reports at once), a second later for every resend — a later
/// send time, as a buffered report has, without the clock.
fn gl200_send_time(p: &Position, attempt: u32) -> DateTime<Utc> {
    p.fix_time + chrono::Duration::seconds(i64::from(attempt))
}

/// A Queclink report sent from the device's buffer: `+BUFF:` instead of
/// `+RESP:`, everything else as the live report.
fn buffered(report: &[u8]) -> Bytes {
    let rest = report
        .strip_prefix(b"+RESP:")
        .expect("a fixed report starts with +RESP:");
    let mut b = BytesMut::from(&b"+BUFF:"[..]);
    b.extend_from_slice(rest);
    b.freeze()
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
    use crate::simulate::device::{after_lost_ack, record};
    use crate::simulate::imei;
    use crate::simulate::queue::{Queue, MEMORY};
    use fleetbus_codec::identity::record_identity;
    use fleetbus_codec::{AnySession, ParseContext, Record};
    use std::collections::BTreeMap;
    use std::path::Path;

    const BASE: i64 = 1_764_400_000; // 2025-11-29

    /// The gateway's side of one connection: the protocol's framer and
    /// session, as the gateway runs them, after the device's hello.
    struct Gateway {
        protocol: Protocol,
        framer: AnyFramer,
        session: AnySession,
        id: String,
    }

    impl Gateway {
        fn connected(protocol: Protocol, imei: &str) -> Gateway {
            let mut g = Gateway {
                protocol,
                framer: protocol.framer(protocol.default_max_frame()),
                session: protocol.session(),
                id: device_id(protocol, imei),
            };
            for bytes in hello(protocol, imei).unwrap() {
                let framed = cut(&mut g.framer, &bytes).unwrap();
                assert_eq!(framed.len(), 1, "{protocol}: one hello frame");
                let h = g.session.on_frame(&framed[0]).unwrap();
                assert!(!h.store, "{protocol}: hello is not stored");
                assert!(h.reply.is_some(), "{protocol}: hello is answered");
            }
            g
        }

        /// Takes one delivery (what [`data`] made of a frame) as the gateway
        /// would and returns the frames it stores, checking what the device
        /// relies on: the framer cuts what was sent, the data frame is
        /// stored, and an answer (own or barrier) says so.
        fn take(&mut self, sent: &[Bytes]) -> Vec<Bytes> {
            let protocol = self.protocol;
            let wire: Vec<u8> = sent.iter().flat_map(|b| b.iter().copied()).collect();
            let frames = cut(&mut self.framer, &wire).unwrap();
            assert_eq!(
                frames.len(),
                sent.len(),
                "{protocol}: the framer cuts what was sent"
            );
            let mut stored = Vec::new();
            let mut answered = false;
            for (i, f) in frames.iter().enumerate() {
                let h = self.session.on_frame(f).unwrap();
                if i == 0 {
                    assert!(h.store, "{protocol}: the data frame is stored");
                    assert_eq!(
                        h.reply.is_some(),
                        protocol.ack() == Ack::Reply,
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
                self.session.device_id(),
                Some(self.id.as_str()),
                "{protocol}: identity"
            );
            stored
        }
    }

    /// The positions a hamster parses out of stored frames.
    fn parsed(protocol: Protocol, id: &str, stored: &[Bytes]) -> Vec<Position> {
        let ctx = ParseContext::new(id.to_string(), Utc::now());
        stored
            .iter()
            .flat_map(|f| protocol.parse(f, &ctx).unwrap())
            .filter_map(|r| match r {
                Record::Position(p) => Some(p),
                _ => None,
            })
            .collect()
    }

    fn identity(p: &Position) -> u64 {
        record_identity(&Record::Position(p.clone())).expect("a position has an identity")
    }

    fn fix_times(positions: &[Position]) -> Vec<i64> {
        positions.iter().map(|p| p.fix_time.timestamp()).collect()
    }

    /// For every supported protocol: the gateway's framer and session take
    /// the device's bytes, every data frame gets an answer (own or barrier),
    /// the stored frames parse back to the records with the values sent
    /// (within `fleetbus verify`'s tolerances, and tighter), and the bytes
    /// are fixed by the stored frame.
    #[test]
    fn every_protocol_round_trips_through_the_codec() {
        for (n, &protocol) in SUPPORTED.iter().enumerate() {
            let imei = imei(7, 1000 + n);
            let id = device_id(protocol, &imei);
            let per = per_frame(protocol, 3);
            let mut gateway = Gateway::connected(protocol, &imei);
            for frame in 0..45u64 {
                let queued = QueuedFrame {
                    frame,
                    attempt: 0,
                    positions: (0..per as u64)
                        .map(|i| record(&id, protocol, BASE, frame * per as u64 + i))
                        .collect(),
                };
                let sent = data(protocol, &imei, &queued).unwrap();
                assert_eq!(
                    sent,
                    data(protocol, &imei, &queued).unwrap(),
                    "{protocol}: the same stored frame, the same bytes"
                );
                let got = parsed(protocol, &id, &gateway.take(&sent));
                let records = &queued.positions;
                assert_eq!(got.len(), records.len(), "{protocol}: positions");
                for (got, want) in got.iter().zip(records) {
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

    /// What a device of `protocol` sends under `mode` when two acks in a
    /// row are lost: the first send and the two resends, each as the queue
    /// hands it out after [`after_lost_ack`] — the device's own path. The
    /// first frame holds two records (one where a frame carries one), and
    /// two newer ones are recorded before the resends.
    async fn first_send_and_resends(
        protocol: Protocol,
        imei: &str,
        mode: Resend,
    ) -> Vec<QueuedFrame> {
        let q = Queue::open(Path::new(MEMORY)).unwrap();
        let id = device_id(protocol, imei);
        q.device(&id, protocol, BASE).await.unwrap();
        let per = per_frame(protocol, 3);
        let push = |seqs: std::ops::Range<u64>| {
            let (q, id) = (&q, &id);
            async move {
                for seq in seqs {
                    q.push(id, seq, &record(id, protocol, BASE, seq))
                        .await
                        .unwrap();
                }
            }
        };
        let first = per.min(2) as u64;
        push(0..first).await;
        let mut frames = vec![q.next_frame(&id, per).await.unwrap().unwrap()];
        push(first..first + 2).await;
        for _ in 0..2 {
            let lost = frames.last().unwrap().clone();
            after_lost_ack(&q, &id, &lost, behaviour(protocol, mode))
                .await
                .unwrap();
            frames.push(q.next_frame(&id, per).await.unwrap().unwrap());
        }
        frames
    }

    /// The protocols whose messages carry something a resend changes: a
    /// serial number (GT06, JT808), a flag byte (Meitrack), a send time and
    /// count (Queclink). Written out here, not taken from the code under
    /// test.
    const REPACKAGED: [Protocol; 4] = [
        Protocol::Gt06,
        Protocol::Jt808,
        Protocol::Meitrack,
        Protocol::Gl200,
    ];

    /// Whether the bytes of a resend differ from the first send, and from
    /// the resend before it.
    fn expected_to_differ(protocol: Protocol, behaviour: Behaviour) -> (bool, bool) {
        let repackaged = REPACKAGED.contains(&protocol);
        match behaviour {
            Behaviour::Same => (false, false),
            Behaviour::Reencode => (repackaged, repackaged),
            // First with a newer record; then the same records again in
            // another new frame, which only Meitrack's flag (from the frame
            // id) tells apart.
            Behaviour::Repack => (true, protocol == Protocol::Meitrack),
        }
    }

    /// For every protocol and mode: each resend is taken by the gateway's
    /// framer and session as a first send is, parses back to records with
    /// the identities of their first send (so the hamsters see the same
    /// records), leads with the records whose ack was lost, and has other
    /// bytes exactly where the mode and the protocol change them.
    #[tokio::test]
    async fn resends_are_stored_as_the_same_records_in_the_bytes_each_mode_prescribes() {
        let modes = [
            Resend::Same,
            Resend::Reencode,
            Resend::Repack,
            Resend::Firmware,
        ];
        let mut differed: Vec<(Protocol, Behaviour, bool)> = Vec::new();
        for (n, &protocol) in SUPPORTED.iter().enumerate() {
            let imei = imei(7, 2000 + n);
            let id = device_id(protocol, &imei);
            for mode in modes {
                let b = behaviour(protocol, mode);
                let what = format!("{protocol} --resend {mode} ({b:?})");
                let frames = first_send_and_resends(protocol, &imei, mode).await;
                let bytes: Vec<Vec<Bytes>> = frames
                    .iter()
                    .map(|f| data(protocol, &imei, f).unwrap())
                    .collect();
                let deliveries: Vec<Vec<Position>> = bytes
                    .iter()
                    .map(|sent| {
                        // A resend comes after a reconnect: a new connection.
                        let stored = Gateway::connected(protocol, &imei).take(sent);
                        parsed(protocol, &id, &stored)
                    })
                    .collect();
                // The identities of every record's first send: the first
                // frame's, and for the records recorded later, a frame of
                // their own each.
                let mut first_identity: BTreeMap<i64, u64> = BTreeMap::new();
                let mut first_sends = vec![bytes[0].clone()];
                for later in frames.iter().flat_map(|f| &f.positions) {
                    if !frames[0].positions.contains(later) {
                        let own = QueuedFrame {
                            frame: 99,
                            attempt: 0,
                            positions: vec![later.clone()],
                        };
                        first_sends.push(data(protocol, &imei, &own).unwrap());
                    }
                }
                for sent in &first_sends {
                    let stored = Gateway::connected(protocol, &imei).take(sent);
                    for p in parsed(protocol, &id, &stored) {
                        first_identity.insert(p.fix_time.timestamp(), identity(&p));
                    }
                }
                for (i, got) in deliveries.iter().enumerate() {
                    assert_eq!(
                        fix_times(got),
                        fix_times(&frames[i].positions),
                        "{what}, send {i}: the records of the frame"
                    );
                    assert!(
                        fix_times(got).starts_with(&fix_times(&deliveries[0])),
                        "{what}, send {i}: the pending records lead"
                    );
                    for p in got {
                        assert_eq!(
                            Some(&identity(p)),
                            first_identity.get(&p.fix_time.timestamp()),
                            "{what}, send {i}: {p:?} is another record than its first send"
                        );
                    }
                }
                let (from_first, from_previous) = expected_to_differ(protocol, b);
                for i in 1..bytes.len() {
                    assert_eq!(
                        bytes[i] != bytes[0],
                        from_first,
                        "{what}, resend {i} vs the first send: {:?} vs {:?}",
                        bytes[i],
                        bytes[0]
                    );
                }
                assert_eq!(
                    bytes[2] != bytes[1],
                    from_previous,
                    "{what}: the two resends"
                );
                differed.push((protocol, b, from_first));
            }
        }
        // Every protocol ran each behaviour it can have, and the firmware
        // mode made exactly the protocols with something to change differ.
        for p in SUPPORTED {
            let firmware_differs = differed
                .iter()
                .filter(|(q, b, _)| *q == p && *b == p.firmware_resend())
                .all(|(.., d)| *d == (p.firmware_resend() != Behaviour::Same));
            assert!(firmware_differs, "{p}: {differed:?}");
        }
    }

    #[test]
    fn firmware_resends_as_the_real_devices_do() {
        use Behaviour::*;
        let real = [
            (Protocol::Teltonika, Repack),
            (Protocol::Gt06, Reencode),
            (Protocol::H02, Same),
            (Protocol::Gps103, Same),
            (Protocol::Tk103, Same),
            (Protocol::Jt808, Reencode),
            (Protocol::Ruptela, Repack),
            (Protocol::Meitrack, Repack),
            (Protocol::Gl200, Reencode),
            (Protocol::Watch, Same),
            (Protocol::Wialon, Same),
        ];
        assert_eq!(real.len(), SUPPORTED.len());
        for (p, b) in real {
            assert_eq!(p.firmware_resend(), b, "{p}");
            assert_eq!(behaviour(p, Resend::Firmware), b, "{p}");
            assert_eq!(behaviour(p, Resend::Same), Same, "{p}");
            assert_eq!(behaviour(p, Resend::Reencode), Reencode, "{p}");
        }
        assert_eq!(Resend::default(), Resend::Firmware);
        assert_eq!(Resend::Reencode.to_string(), "reencode");
    }

    #[test]
    fn repacking_where_a_frame_carries_one_record_re_encodes() {
        for p in SUPPORTED {
            let expected = if per_frame(p, 255) == 1 {
                Behaviour::Reencode
            } else {
                Behaviour::Repack
            };
            assert_eq!(behaviour(p, Resend::Repack), expected, "{p}");
        }
    }

    /// The first attempt sends what simulators sent before resends were
    /// re-encoded (a queue file of theirs resends the same bytes), and no
    /// resend of a frame has the serial of another attempt of it.
    #[test]
    fn serials_start_at_the_frame_id_and_never_repeat_within_a_frame() {
        assert_eq!(serial(5, 0), 5);
        assert_eq!(meitrack_flag(5, 0), b'F');
        let serials: std::collections::HashSet<u16> = (0..=u32::from(u16::MAX))
            .map(|a| serial(70_000, a))
            .collect();
        assert_eq!(serials.len(), 1 << 16);
        let flags: std::collections::HashSet<u8> = (0..26).map(|a| meitrack_flag(3, a)).collect();
        assert_eq!(flags.len(), 26);
        assert!(flags.iter().all(u8::is_ascii_uppercase));
    }

    /// A Queclink resend is a buffered report: `+BUFF:` with a later send
    /// time and another count; the first send is the live `+RESP:`.
    #[test]
    fn queclink_resends_buffered_reports() {
        let imei = imei(7, 1);
        let p = record(&imei, Protocol::Gl200, BASE, 0);
        let send = |attempt| {
            let f = QueuedFrame {
                frame: 3,
                attempt,
                positions: vec![p.clone()],
            };
            let report = data(Protocol::Gl200, &imei, &f).unwrap()[0].clone();
            let text = String::from_utf8(report.to_vec()).unwrap();
            let fields: Vec<String> = text
                .trim_end_matches('$')
                .split(',')
                .map(str::to_owned)
                .collect();
            let n = fields.len();
            (
                fields[0].clone(),
                fields[n - 2].clone(),
                fields[n - 1].clone(),
            )
        };
        let (live, live_sent, live_count) = send(0);
        assert_eq!(live, "+RESP:GTFRI");
        assert_eq!(live_sent, p.fix_time.format("%Y%m%d%H%M%S").to_string());
        assert_eq!(live_count, "0003");
        for attempt in [1, 2] {
            let (head, sent, count) = send(attempt);
            assert_eq!(head, "+BUFF:GTFRI", "attempt {attempt}");
            assert!(sent > live_sent, "attempt {attempt}: a later send time");
            assert_ne!(count, live_count, "attempt {attempt}: another count");
        }
    }

    #[test]
    fn full_frames_fit_the_default_maximum() {
        for &protocol in &SUPPORTED {
            let imei = imei(7, 1);
            let id = device_id(protocol, &imei);
            let per = per_frame(protocol, 255);
            let frame = QueuedFrame {
                frame: 0,
                attempt: 3,
                positions: (0..per as u64)
                    .map(|i| record(&id, protocol, BASE, i))
                    .collect(),
            };
            for f in data(protocol, &imei, &frame).unwrap() {
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
