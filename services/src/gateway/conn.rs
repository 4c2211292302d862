//! One device connection: frame, let the protocol session judge each frame,
//! store data frames in RAW, and answer the device in frame order — a stored
//! frame's answer only after its PubAck.
//!
//! Three clocks close a connection that holds a slot without being worth
//! it: `idle_timeout_secs` without a complete frame, `identify_timeout_secs`
//! without the device saying who it is, `data_timeout_secs` without a data
//! message (logins and heartbeats alone do not move it).
//!
//! Backpressure: at most `pipeline` frames wait for their PubAck; while the
//! pipeline is full the socket is not read, so a fast device is slowed by
//! TCP itself instead of by gateway memory.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use fleetbus_codec::{FrameKind, Handled, Protocol};
use fleetbus_wire::raw::RawFrame;
use futures::future::BoxFuture;
use futures::stream::FuturesOrdered;
use futures::{FutureExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::{sleep_until, timeout, Instant};
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use super::metrics::{ProtocolLabel, Stage};
use super::publish::{store, StoreError};
use super::{Shared, Via};

/// One listener's settings, shared by its connections.
#[derive(Debug)]
pub struct ListenerSpec {
    pub protocol: Protocol,
    pub max_frame: usize,
    pub model: Option<String>,
    /// The listener's certificate, when devices speak TLS to it.
    pub tls: Option<Arc<super::tls::DeviceTls>>,
}

/// Initial capacity of a connection's read buffer. `FramedRead::new` starts
/// every connection with 8 KiB, resident for as long as the device stays
/// connected, though a login is a few dozen bytes and most devices are idle
/// between small frames. The buffer still grows as needed (the framers
/// reserve a whole frame once its header is read; a full buffer grows
/// before the next read), so only the number of reads can differ, never
/// the frames. See docs/performance.md, "Connection scale".
const READ_BUFFER_INITIAL: usize = 256;

/// The answer owed to the device for one frame, once it is due.
pub(super) type Pending = BoxFuture<'static, Result<Option<Bytes>, StoreError>>;

/// Why a connection ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// The device closed it.
    Eof,
    /// The gateway is shutting down.
    Shutdown,
    /// Refused input or a failure; already counted and logged.
    Refused,
}

/// Serves one device until it disconnects, misbehaves, or the gateway stops.
/// `stop` asks it to read no more frames, finish what is in flight, and close.
/// The two halves of a connection come apart: a plain socket splits
/// without a lock, a TLS stream through `tokio::io::split`.
pub async fn serve<R, W>(
    (reader, mut writer): (R, W),
    peer: SocketAddr,
    spec: Arc<ListenerSpec>,
    shared: Arc<Shared>,
    stop: CancellationToken,
) where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    let protocol = spec.protocol;
    let name = protocol.name();
    let label = ProtocolLabel { protocol: name };
    let mut frames =
        FramedRead::with_capacity(reader, protocol.framer(spec.max_frame), READ_BUFFER_INITIAL);
    let mut session = protocol.session();
    let mut pending: FuturesOrdered<Pending> = FuturesOrdered::new();
    let idle = shared.config.idle_timeout();
    let write_timeout = Duration::from_secs(shared.config.write_timeout_secs);
    let pipeline = shared.config.pipeline;
    let mut idle_deadline = Instant::now() + idle;
    let identify_timeout = Duration::from_secs(shared.config.identify_timeout_secs);
    let identify_deadline = Instant::now() + identify_timeout;
    // Moved on by data messages only: logins and heartbeats do not count.
    let data_timeout = Duration::from_secs(shared.config.data_timeout_secs);
    let mut data_deadline = (!data_timeout.is_zero()).then(|| Instant::now() + data_timeout);
    // Once set, no more frames are read; what is in flight still completes.
    let mut closing: Option<End> = None;
    // The model its frames are stored with, once the registry admitted
    // the device.
    let mut admitted: Option<Option<String>> = None;
    // Cancelled when a newer connection of the same device is admitted;
    // the claim lets go of the device when this connection ends.
    let replaced = CancellationToken::new();
    let mut _claim: Option<super::claims::Claim> = None;

    loop {
        if closing.is_some() && pending.is_empty() {
            break;
        }
        tokio::select! {
            biased;
            // Answers first: they free pipeline slots.
            Some(answer) = pending.next(), if !pending.is_empty() => match answer {
                Ok(None) => {}
                Ok(Some(reply)) => {
                    match timeout(write_timeout, write_flushed(&mut writer, &reply)).await {
                        Ok(Ok(())) => {
                            shared.metrics.acks_sent.get_or_create(&label).inc();
                        }
                        Ok(Err(_)) | Err(_) => {
                            shared.refuse(Via::Tcp, name, Stage::connection, "write_failed", &peer,
                                "could not write an acknowledgement to the device");
                            break;
                        }
                    }
                }
                Err(err) => {
                    // Not stored: no ack for this frame or any later one.
                    // The device still has the data and sends it again.
                    shared.refuse(Via::Tcp, name, Stage::publish, err.error_type(), &peer, &err.to_string());
                    break;
                }
            },
            _ = stop.cancelled(), if closing.is_none() => {
                closing = Some(End::Shutdown);
            }
            _ = sleep_until(idle_deadline), if closing.is_none() && pending.is_empty() => {
                shared.refuse(Via::Tcp, name, Stage::connection, "idle_timeout", &peer,
                    &format!("no complete frame for {} s", idle.as_secs()));
                closing = Some(End::Refused);
            }
            _ = replaced.cancelled(), if closing.is_none() => {
                shared.refuse(Via::Tcp, name, Stage::connection, "replaced", &peer,
                    &format!("a newer connection of device {} took over", session.device_id().unwrap_or("-")));
                closing = Some(End::Refused);
            }
            _ = sleep_until(identify_deadline), if closing.is_none() && session.device_id().is_none() => {
                shared.refuse(Via::Tcp, name, Stage::session, "identify_timeout", &peer,
                    &format!("the device did not identify itself within {} s", identify_timeout.as_secs()));
                closing = Some(End::Refused);
            }
            // (The deadline is evaluated even when the branch is off.)
            _ = sleep_until(data_deadline.unwrap_or(idle_deadline)),
                if closing.is_none() && data_deadline.is_some() && pending.is_empty() => {
                shared.refuse(Via::Tcp, name, Stage::connection, "data_timeout", &peer,
                    &format!("no data message for {} s, only logins or heartbeats", data_timeout.as_secs()));
                closing = Some(End::Refused);
            }
            next = frames.next(), if closing.is_none() && pending.len() < pipeline => {
                match next {
                    None => closing = Some(End::Eof),
                    Some(Err(err)) => {
                        let kind = err.reason();
                        if kind == "io" {
                            // Reset by peer and the like: the device left.
                            closing = Some(End::Eof);
                        } else {
                            shared.refuse(Via::Tcp, name, Stage::frame, kind, &peer, &err.to_string());
                            closing = Some(End::Refused);
                        }
                    }
                    Some(Ok(frame)) => {
                        idle_deadline = Instant::now() + idle;
                        shared.metrics.frames_received.get_or_create(&label).inc();
                        shared.metrics.bytes_received.get_or_create(&label).inc_by(frame.len() as u64);
                        match session.on_frame(&frame) {
                            Err(err) => {
                                shared.refuse(Via::Tcp, name, Stage::session, err.reason(), &peer, &err.to_string());
                                closing = Some(End::Refused);
                            }
                            Ok(mut handled) => {
                                if handled.kind == FrameKind::Data && data_deadline.is_some() {
                                    data_deadline = Some(Instant::now() + data_timeout);
                                }
                                // Judged once, when the device first names
                                // itself: before its frame is stored or
                                // answered, so a refused device keeps it.
                                if let (None, Some(device)) = (&admitted, session.device_id()) {
                                    let device = device.to_string();
                                    match shared.admit_device(&spec, &mut session, &peer) {
                                        Ok(admit) => {
                                            admitted = Some(admit.model);
                                            if admit.reply.is_some() {
                                                handled.reply = admit.reply;
                                            }
                                            _claim = Some(shared.claims.claim(&device, replaced.clone()).0);
                                        }
                                        Err(refused) => {
                                            shared.refuse(Via::Tcp, name, Stage::session, refused.reason, &peer,
                                                &refused.detail);
                                            closing = Some(End::Refused);
                                            continue;
                                        }
                                    }
                                }
                                let model = admitted.clone().flatten();
                                match answer_for(handled, frame, &session, &spec, &shared, peer, model) {
                                    Ok(answer) => pending.push_back(answer),
                                    Err(reason) => {
                                        shared.refuse(Via::Tcp, name, Stage::session, reason, &peer,
                                            "a data frame came before the device identified itself");
                                        closing = Some(End::Refused);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    let _ = writer.shutdown().await;
    tracing::debug!(protocol = name, %peer, device = session.device_id().unwrap_or("-"),
        reason = ?closing, "Device connection closed.");
}

/// The future that yields the device's answer to one frame: at once for
/// frames that are not stored, after the PubAck for those that are. Shared
/// by TCP connections and UDP datagrams (`udp.rs`), so both store a frame
/// with the same subject, headers and message id.
pub(super) fn answer_for(
    handled: Handled,
    frame: Bytes,
    session: &fleetbus_codec::AnySession,
    spec: &ListenerSpec,
    shared: &Arc<Shared>,
    peer: SocketAddr,
    model: Option<String>,
) -> Result<Pending, &'static str> {
    if !handled.store {
        return Ok(futures::future::ready(Ok(handled.reply)).boxed());
    }
    let device = session.device_id().ok_or("not_identified")?.to_string();
    let protocol = spec.protocol.name();
    let raw = RawFrame {
        model,
        received_at: Some(Utc::now()),
        gateway: Some(shared.config.id.clone()),
        peer: Some(peer.to_string()),
        ..RawFrame::new(protocol, device)
    };
    let hdrs = raw.headers(&frame);
    let subject = raw.subject();
    let shared = shared.clone();
    let reply = handled.reply;
    Ok(async move {
        if !shared.raw_kept.is_kept() {
            return Err(StoreError::NoInterest);
        }
        let stored = store(
            &shared.js,
            subject,
            hdrs,
            frame,
            shared.retry,
            &shared.metrics,
            protocol,
        )
        .await?;
        let label = ProtocolLabel { protocol };
        shared.metrics.frames_stored.get_or_create(&label).inc();
        if stored.duplicate {
            shared.metrics.frames_duplicate.get_or_create(&label).inc();
        }
        Ok(reply)
    }
    .boxed())
}

/// Writes `reply` and flushes it: a TLS stream holds what is written until
/// flushed (a plain socket's flush does nothing).
async fn write_flushed<W: AsyncWrite + Unpin>(writer: &mut W, reply: &[u8]) -> std::io::Result<()> {
    writer.write_all(reply).await?;
    writer.flush().await
}
