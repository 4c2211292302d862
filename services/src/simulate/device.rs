//! One simulated tracker: generates a record every interval into the
//! fleet's queue, and sends its oldest unacknowledged frame until the
//! gateway acknowledges it — on this server or the next.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use chrono::{TimeZone, Utc};
use fleetbus_codec::{gt06, teltonika, AnySession, Position, Protocol};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{sleep, sleep_until, timeout, Instant};
use xxhash_rust::xxh3::xxh3_64;

use super::queue::QueuedFrame;
use super::{imei, Fleet};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

pub(crate) async fn run(fleet: Arc<Fleet>, index: usize, protocol: Protocol) -> anyhow::Result<()> {
    let cfg = &fleet.config;
    let id = imei(cfg.fleet, index);
    let state = fleet.queue.device(&id, protocol, Utc::now().timestamp())?;
    let addrs: Vec<SocketAddr> = cfg
        .gateways
        .iter()
        .find(|(p, _)| *p == protocol)
        .map(|(_, a)| a.clone())
        .unwrap_or_default();
    // Spread the fleet over the gateways; each device then walks the list.
    let mut server = index % addrs.len();
    let per_frame = if protocol == Protocol::Teltonika {
        cfg.per_frame.max(1)
    } else {
        1
    };
    let mut next_seq = state.next_seq;
    let mut next_record = Instant::now();
    let mut conn: Option<Connection> = None;
    let mut backoff = BACKOFF_MIN;

    loop {
        if fleet.stop_all.is_cancelled() {
            return Ok(());
        }
        let generating =
            !fleet.stop_generating.is_cancelled() && (cfg.records == 0 || next_seq < cfg.records);
        if generating && Instant::now() >= next_record {
            let p = record(&id, protocol, state.base_time, next_seq);
            fleet.queue.push(&id, next_seq, &p)?;
            fleet.stats.generated.fetch_add(1, Ordering::Relaxed);
            next_seq += 1;
            next_record += cfg.interval;
            if next_record + cfg.interval < Instant::now() {
                // Far behind (a long outage): keep the interval from now
                // rather than bursting to catch up.
                next_record = Instant::now() + cfg.interval;
            }
        }
        let Some(frame) = fleet.queue.next_frame(&id, per_frame)? else {
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
            match Connection::open(addr, protocol, &id, cfg.ack_timeout).await {
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
        let sent_at = Utc::now();
        match c.deliver(&frame).await {
            Ok(()) => {
                fleet.report(&frame.positions, sent_at)?;
                fleet.queue.acked(&id, frame.frame)?;
                fleet
                    .stats
                    .acked
                    .fetch_add(frame.positions.len() as u64, Ordering::Relaxed);
            }
            Err(e) => {
                // No ack: the records stay queued and this very frame goes
                // again, to the next server.
                tracing::debug!(device = %id, addr = %c.addr, error = %e, "No acknowledgement; reconnecting.");
                conn = None;
                fleet.stats.connected.fetch_sub(1, Ordering::Relaxed);
                fleet.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                server = (server + 1) % addrs.len();
                pause(&fleet, &id, &mut backoff).await;
            }
        }
    }
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
/// and the sequence number, with values at the protocols' wire precision so
/// that what is sent is exactly what comes back.
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
    p
}

/// One TCP session with a gateway.
struct Connection {
    addr: SocketAddr,
    stream: TcpStream,
    protocol: Protocol,
    /// The protocol's own session, to know the exact reply each frame gets.
    session: AnySession,
    ack_timeout: Duration,
}

impl Connection {
    async fn open(
        addr: SocketAddr,
        protocol: Protocol,
        id: &str,
        ack_timeout: Duration,
    ) -> anyhow::Result<Connection> {
        let stream = timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .context("connect timed out")??;
        stream.set_nodelay(true)?;
        let mut c = Connection {
            addr,
            stream,
            protocol,
            session: protocol.session(),
            ack_timeout,
        };
        let login = match protocol {
            Protocol::Teltonika => teltonika::encode::login(id),
            Protocol::Gt06 => gt06::encode::login(id, 0),
            other => bail!("the simulator cannot log in with {other}"),
        };
        c.exchange(&login).await.context("login")?;
        Ok(c)
    }

    fn encode(&self, frame: &QueuedFrame) -> anyhow::Result<Bytes> {
        Ok(match self.protocol {
            Protocol::Teltonika => teltonika::encode::codec8(&frame.positions)?,
            // The frame id is the GT06 serial number: same frame, same bytes.
            Protocol::Gt06 => gt06::encode::location(&frame.positions[0], frame.frame as u16),
            other => bail!("the simulator cannot encode {other}"),
        })
    }

    /// Sends one data frame and waits for its acknowledgement.
    async fn deliver(&mut self, frame: &QueuedFrame) -> anyhow::Result<()> {
        let bytes = self.encode(frame)?;
        self.exchange(&bytes).await
    }

    /// Writes `frame` and reads exactly the reply the protocol prescribes.
    async fn exchange(&mut self, frame: &[u8]) -> anyhow::Result<()> {
        let expected = self
            .session
            .on_frame(frame)
            .map_err(|e| anyhow::anyhow!("own frame refused by the codec: {e}"))?
            .reply
            .unwrap_or_default();
        self.stream.write_all(frame).await?;
        if expected.is_empty() {
            return Ok(());
        }
        let mut got = vec![0; expected.len()];
        timeout(self.ack_timeout, self.stream.read_exact(&mut got))
            .await
            .context("no acknowledgement in time")??;
        if got != expected[..] {
            bail!(
                "unexpected reply {} (expected {})",
                hex::encode(&got),
                hex::encode(&expected)
            );
        }
        Ok(())
    }
}
