//! One simulated tracker: generates a record every interval into the
//! fleet's queue, and sends its oldest unacknowledged records until the
//! gateway acknowledges them — on this server or the next, resent as the
//! protocol's firmware resends ([`protocols::Behaviour`]).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use chrono::{TimeZone, Utc};
use fleetbus_codec::{AnyFramer, AnySession, Position, Protocol};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{sleep, sleep_until, timeout, Instant};
use xxhash_rust::xxh3::xxh3_64;

use super::protocols::{self, Behaviour};
use super::queue::{Queue, QueueError, QueuedFrame};
use super::{imei, Fleet};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Intervals a device may fall behind its schedule and still record every
/// one it missed; beyond that its clock was stopped, not its uplink slow.
const FAR_BEHIND: u32 = 10_000;

pub(crate) async fn run(fleet: Arc<Fleet>, index: usize, protocol: Protocol) -> anyhow::Result<()> {
    let cfg = &fleet.config;
    let imei = imei(cfg.fleet, index);
    // The id the gateway and parser see (the IMEI, or its last 12 digits
    // where the protocol's id is shorter): records carry it, the queue and
    // the report use it.
    let id = protocols::device_id(protocol, &imei);
    let state = fleet
        .queue
        .device(&id, protocol, Utc::now().timestamp())
        .await?;
    let addrs = fleet.resolved.gateways_of(protocol).to_vec();
    // Spread the fleet over the gateways; each device then walks the list.
    let mut server = index % addrs.len();
    let per_frame = protocols::per_frame(protocol, cfg.per_frame);
    let behaviour = protocols::behaviour(protocol, cfg.resend);
    // Whether the next frame sends records again after a lost ack.
    let mut resending = false;
    let mut next_seq = state.next_seq;
    // Real trackers are not synchronised: each runs its timer at its own
    // phase. Spreading the first records over one interval keeps the
    // fleet's load smooth instead of a burst of every device at once per
    // interval (which queues up in every stage and is what latency
    // figures would then measure).
    let phase = cfg
        .interval()
        .mul_f64(index as f64 / cfg.devices.max(1) as f64);
    let mut next_record = Instant::now() + phase;
    let mut conn: Option<Connection> = None;
    let mut backoff = BACKOFF_MIN;
    // The authentication code a JT808 terminal was handed when it
    // registered, kept for its later connections.
    let mut auth_code: Option<String> = None;

    loop {
        if fleet.stop_all.is_cancelled() {
            return Ok(());
        }
        let generating_at = |seq: u64| {
            !fleet.stop_generating.is_cancelled() && (cfg.records == 0 || seq < cfg.records)
        };
        // A tracker records on its own schedule, whatever its uplink does:
        // every record that fell due while this device waited for an ack,
        // a connection or a backoff is recorded now, and the backlog goes
        // out in frames of up to `per_frame` records.
        let now = Instant::now();
        if now > next_record + cfg.interval() * FAR_BEHIND {
            // Not a slow uplink but a stopped clock (the process was
            // suspended): resume the schedule from now.
            next_record = now;
        }
        while generating_at(next_seq) && now >= next_record {
            let p = record(&id, protocol, state.base_time, next_seq);
            fleet.queue.push(&id, next_seq, &p).await?;
            fleet.stats.generated.fetch_add(1, Ordering::Relaxed);
            next_seq += 1;
            next_record += cfg.interval();
        }
        let generating = generating_at(next_seq);
        let Some(frame) = fleet.queue.next_frame(&id, per_frame).await? else {
            if !generating {
                return Ok(()); // everything generated was acknowledged
            }
            tokio::select! {
                _ = sleep_until(next_record) => {}
                _ = fleet.stop_generating.cancelled() => {}
                _ = fleet.stop_all.cancelled() => {}
            }
            continue;
        };
        if conn.is_none() {
            let addr = addrs[server];
            match Connection::open(addr, protocol, &imei, cfg.ack_timeout(), &mut auth_code).await {
                Ok(c) => {
                    conn = Some(c);
                    backoff = BACKOFF_MIN;
                    fleet.stats.connected.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    tracing::debug!(device = %id, %addr, error = %e, "Cannot reach the gateway; trying the next.");
                    fleet.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                    server = (server + 1) % addrs.len();
                    pause(&fleet, &id, &mut backoff).await;
                    continue;
                }
            }
        }
        let c = conn.as_mut().expect("connected above");
        fleet
            .stats
            .sent
            .fetch_add(frame.positions.len() as u64, Ordering::Relaxed);
        fleet.stats.frames_sent.fetch_add(1, Ordering::Relaxed);
        if std::mem::take(&mut resending) {
            fleet.stats.resends.fetch_add(1, Ordering::Relaxed);
        }
        let sent_at = Utc::now();
        match c.deliver(&imei, &frame).await {
            Ok(()) => {
                fleet.report(&frame.positions, sent_at)?;
                fleet.queue.acked(&id, frame.frame).await?;
                fleet
                    .stats
                    .acked
                    .fetch_add(frame.positions.len() as u64, Ordering::Relaxed);
            }
            Err(e) => {
                // No ack: the records stay queued and go again, to the
                // next server, as this protocol's firmware resends them.
                tracing::debug!(device = %id, addr = %c.addr, error = %e, "No acknowledgement; reconnecting.");
                after_lost_ack(&fleet.queue, &id, &frame, behaviour).await?;
                resending = true;
                conn = None;
                fleet.stats.connected.fetch_sub(1, Ordering::Relaxed);
                fleet.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                server = (server + 1) % addrs.len();
                pause(&fleet, &id, &mut backoff).await;
            }
        }
    }
}

/// Prepares the queue for the resend of `frame`, whose ack did not come:
/// a re-encoding device counts the attempt (the resend gets a new serial,
/// flag or send time), a re-packing one forgets the grouping (the records
/// go out in a new frame with newer ones), and one that resends the same
/// bytes changes nothing. Either way the records stay until an ack.
pub(crate) async fn after_lost_ack(
    queue: &Queue,
    device: &str,
    frame: &QueuedFrame,
    behaviour: Behaviour,
) -> Result<(), QueueError> {
    match behaviour {
        Behaviour::Same => {}
        Behaviour::Reencode => {
            queue.retry(device, frame.frame).await?;
        }
        Behaviour::Repack => {
            queue.regroup(device, frame.frame).await?;
        }
    }
    Ok(())
}

/// Backoff with jitter (half to full), so a fleet that lost its gateway
/// does not come back in one wave.
async fn pause(fleet: &Fleet, id: &str, backoff: &mut Duration) {
    let seed = xxh3_64(format!("{id}{:?}", std::time::SystemTime::now()).as_bytes());
    let wait = backoff.mul_f64(0.5 + (seed % 1000) as f64 / 2000.0);
    tokio::select! {
        _ = sleep(wait) => {}
        _ = fleet.stop_all.cancelled() => {}
    }
    *backoff = (*backoff * 2).min(BACKOFF_MAX);
}

/// Record `seq` of a device: a plausible fix, deterministic from the device
/// and the sequence number, with values at the protocol's wire precision so
/// that what is sent is exactly what comes back. `device` is the id the
/// protocol carries ([`protocols::device_id`]).
pub fn record(device: &str, protocol: Protocol, base_time: i64, seq: u64) -> Position {
    let h = xxh3_64(format!("{device}/{seq}").as_bytes());
    let fix = Utc
        .timestamp_opt(base_time + seq as i64, 0)
        .single()
        .unwrap_or_else(Utc::now);
    let mut p = Position::new(device, protocol.name(), fix);
    p.valid = true;
    // Around Vilnius, 1e-5 degree steps (1.1 m).
    p.latitude = (5_460_000 + (h % 20_000) as i64) as f64 / 100_000.0;
    p.longitude = (2_520_000 + ((h >> 16) % 20_000) as i64) as f64 / 100_000.0;
    p.speed = ((h >> 32) % 120) as f64;
    p.course = ((h >> 40) % 360) as f64;
    p.satellites = Some(6 + ((h >> 50) % 6) as u32);
    // Ignition on for 20 records, off for 20: something for event logic.
    p.set("ignition", (seq / 20).is_multiple_of(2));
    protocols::quantize(protocol, &mut p);
    p
}

/// One TCP session with a gateway.
struct Connection {
    addr: SocketAddr,
    stream: TcpStream,
    protocol: Protocol,
    /// The protocol's own framer and session, as the gateway runs them for
    /// this connection, to know the exact reply each frame gets.
    framer: AnyFramer,
    session: AnySession,
    ack_timeout: Duration,
}

impl Connection {
    async fn open(
        addr: SocketAddr,
        protocol: Protocol,
        imei: &str,
        ack_timeout: Duration,
        auth_code: &mut Option<String>,
    ) -> anyhow::Result<Connection> {
        let stream = timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .context("connect timed out")??;
        stream.set_nodelay(true)?;
        let mut c = Connection {
            addr,
            stream,
            protocol,
            framer: protocol.framer(protocol.default_max_frame()),
            session: protocol.session(),
            ack_timeout,
        };
        // Login or identity frames, where the protocol has them.
        for hello in protocols::hello(protocol, imei)? {
            if protocol == Protocol::Jt808 {
                c.authenticate(&hello, auth_code).await?;
            } else {
                c.exchange(&[hello]).await.context("login")?;
            }
        }
        Ok(c)
    }

    /// JT808 as a terminal does it: the first time, register and keep the
    /// authentication code the platform answers with (the registry's, not
    /// known in advance); on every connection, authenticate with the kept
    /// code. A refused code is forgotten, so the next connection registers
    /// again.
    async fn authenticate(
        &mut self,
        register: &Bytes,
        kept: &mut Option<String>,
    ) -> anyhow::Result<()> {
        let terminal = |s: &AnySession| {
            fleetbus_codec::jt808::encode::Terminal::phone(s.device_id().unwrap_or_default())
        };
        if let Some(code) = kept.clone() {
            let id = fleetbus_codec::Protocol::Jt808
                .identify(register)
                .unwrap_or_default();
            let t = fleetbus_codec::jt808::encode::Terminal::phone(&id);
            let auth = fleetbus_codec::jt808::encode::auth(&t, 0, &code);
            let done = self.exchange(&[auth]).await.context("authentication");
            if done.is_err() {
                *kept = None;
            }
            return done;
        }
        // Keep the own session's serial numbers where the gateway's are.
        self.session
            .on_frame(register)
            .map_err(|e| anyhow::anyhow!("own frame refused by the codec: {e}"))?;
        self.stream.write_all(register).await?;
        let mut framer = self.protocol.framer(self.protocol.default_max_frame());
        let mut buf = bytes::BytesMut::new();
        let reply = timeout(self.ack_timeout, async {
            loop {
                if let Some(frame) = tokio_util::codec::Decoder::decode(&mut framer, &mut buf)? {
                    return anyhow::Ok(frame);
                }
                if self.stream.read_buf(&mut buf).await? == 0 {
                    bail!("the gateway closed the connection");
                }
            }
        })
        .await
        .context("no register response in time")??;
        let code = fleetbus_codec::jt808::register_code(&reply).with_context(|| {
            format!(
                "not a successful register response: {}",
                hex::encode(&reply)
            )
        })?;
        let auth = fleetbus_codec::jt808::encode::auth(&terminal(&self.session), 1, &code);
        self.exchange(&[auth]).await.context("authentication")?;
        *kept = Some(code);
        Ok(())
    }

    /// Sends one stored frame (and, for protocols that do not answer data,
    /// the answered frame right behind it) and waits for the answer that
    /// says it is stored. The bytes derive from what the queue stores (frame
    /// id, attempt, records) only, so a restarted simulator sends the same.
    async fn deliver(&mut self, imei: &str, frame: &QueuedFrame) -> anyhow::Result<()> {
        let frames = protocols::data(self.protocol, imei, frame)?;
        self.exchange(&frames).await
    }

    /// Writes `frames` and reads exactly the replies the protocol prescribes
    /// (the gateway answers in frame order).
    async fn exchange(&mut self, frames: &[Bytes]) -> anyhow::Result<()> {
        let wire: Vec<u8> = frames.iter().flat_map(|f| f.iter().copied()).collect();
        // What the gateway's session will see: the bytes as its framer cuts them.
        let mut expected = Vec::new();
        for frame in protocols::cut(&mut self.framer, &wire)? {
            let handled = self
                .session
                .on_frame(&frame)
                .map_err(|e| anyhow::anyhow!("own frame refused by the codec: {e}"))?;
            expected.extend_from_slice(&handled.reply.unwrap_or_default());
        }
        if expected.is_empty() {
            // Nothing would ever say the frame was stored.
            bail!("{} gives no answer to these frames", self.protocol);
        }
        self.stream.write_all(&wire).await?;
        let mut got = vec![0; expected.len()];
        timeout(self.ack_timeout, self.stream.read_exact(&mut got))
            .await
            .context("no acknowledgement in time")??;
        if !protocols::reply_matches(self.protocol, &got, &expected) {
            bail!(
                "unexpected reply {} (expected {})",
                hex::encode(&got),
                hex::encode(&expected)
            );
        }
        Ok(())
    }
}
