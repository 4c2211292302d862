//! UDP listeners, for the protocols whose framer and session work per
//! datagram (`Protocol::udp`, the protocols' `Spec::UDP`: Teltonika, H02,
//! GPS103, TK103, Suntech, Queclink @Track, Wialon IPS; on by default for
//! H02, GPS103 and Queclink, `Udp::ByDefault`). The promise is the TCP one,
//! per datagram: a reply goes back only after the PubAck of every stored
//! message it answers.
//!
//! A datagram stands alone:
//!
//! 1. it is cut completely by a fresh framer (`decode`, then `decode_eof` at
//!    its end); an oversize message, a bad checksum, garbage or an incomplete
//!    message at its end refuses the whole datagram — nothing of it is
//!    published or answered, and the device sends it again;
//! 2. a fresh session judges its messages, so identity comes from the
//!    messages themselves (every H02, GPS103, TK103, Suntech and Queclink
//!    text message carries the device id, every Teltonika UDP packet its
//!    IMEI, every Wialon IPS packet over UDP its `[2.0;]<imei>#` prefix).
//!    Nothing is remembered per peer: an address is no identity (NAT
//!    gateways reuse ports across devices), and per-peer state would be
//!    unbounded memory for spoofed sources. A
//!    datagram whose messages name two devices is refused, and so is one
//!    whose only messages carry no id (Queclink binary `+ACK`/`+HBD`/`+LGN`
//!    alone) — `not_identified`;
//! 3. only once every message is accepted, the stored ones are published
//!    exactly as over TCP (`conn::answer_for`: same subject, headers and
//!    `Nats-Msg-Id`, so a resent datagram is deduplicated), up to `pipeline`
//!    at once, and the replies go back to the sender, one datagram per
//!    reply, in message order, each after its own and all earlier PubAcks.
//!    If a publish gives up, no further reply of that datagram is sent.
//!
//! Bounds, so that no address, claimed or real, can turn a datagram into a
//! flood or take what other devices share:
//!
//! - a datagram of more than `udp_max_messages` messages is refused whole
//!   (`too_many_messages`), before any is judged: one datagram draws at
//!   most that many replies;
//! - each source address may have `udp_rate_per_source` messages a second
//!   handled (`sources.rs`); beyond it datagrams are dropped
//!   (`rate_limited`), which bounds what a spoofed address's victim is sent;
//! - at most `udp_inflight` messages are being stored and answered at once
//!   (all UDP listeners together), UDP's own budget beside the TCP
//!   connections'; the socket is still read meanwhile and what does not fit
//!   is dropped and counted (`overload`): the device got no reply and sends
//!   again.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use fleetbus_codec::FrameError;
use futures::stream::FuturesOrdered;
use futures::StreamExt;
use tokio::net::UdpSocket;
use tokio::sync::Semaphore;
use tokio::time::timeout;
use tokio_util::codec::Decoder;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::conn::{answer_for, ListenerSpec, Pending};
use super::metrics::{ProtocolLabel, Stage};
use super::{Shared, Via};
use tokio::sync::OwnedSemaphorePermit;

/// Larger than any UDP payload (at most 65,507 bytes over IPv4, 65,527 over
/// IPv6 without jumbograms), so a datagram is never silently truncated.
const RECEIVE_BUFFER: usize = 65_536;

/// Pause after a failed receive, so a persistent socket error cannot spin.
const RECEIVE_BACKOFF: Duration = Duration::from_millis(5);

/// Reads `socket` until `stop`, handing every datagram to its own task on
/// `tracker` while `limit` has a permit, dropping it (counted) otherwise.
pub(super) async fn receive_loop(
    socket: Arc<UdpSocket>,
    spec: Arc<ListenerSpec>,
    shared: Arc<Shared>,
    limit: Arc<Semaphore>,
    stop: CancellationToken,
    tracker: TaskTracker,
) {
    let name = spec.protocol.name();
    let mut buf = vec![0u8; RECEIVE_BUFFER];
    loop {
        let received = tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            received = socket.recv_from(&mut buf) => received,
        };
        let (len, peer) = match received {
            Ok(received) => received,
            Err(err) => {
                // Rare on an unconnected socket (ENOBUFS, or an ICMP error
                // for an earlier reply on some systems); the socket stays usable.
                shared
                    .metrics
                    .error(name, Stage::connection, "receive_failed");
                if let Some(suppressed) = shared.log.allow("receive_failed") {
                    tracing::warn!(protocol = name, transport = "udp", error = %err, suppressed,
                        "Receiving a device datagram failed.");
                }
                tokio::time::sleep(RECEIVE_BACKOFF).await;
                continue;
            }
        };
        match limit.clone().try_acquire_owned() {
            Ok(permit) => {
                let datagram = BytesMut::from(&buf[..len]);
                let (socket, spec, shared) = (socket.clone(), spec.clone(), shared.clone());
                let limit = limit.clone();
                tracker.spawn(async move {
                    let admitted = Admitted {
                        first: permit,
                        limit,
                    };
                    serve_datagram(datagram, peer, &socket, &spec, &shared, admitted).await;
                });
            }
            Err(_) => shared.refuse(
                Via::Udp,
                name,
                Stage::frame,
                "overload",
                &peer,
                &format!(
                    "{} UDP messages are being stored, the limit (udp_inflight)",
                    shared.config.udp_inflight
                ),
            ),
        }
    }
}

/// A datagram's share of the `udp_inflight` budget: one permit taken when
/// it was received, the rest once its messages are counted.
struct Admitted {
    first: OwnedSemaphorePermit,
    limit: Arc<Semaphore>,
}

impl Admitted {
    /// Permits for all `messages`, or `None` if the budget has not that many.
    fn for_messages(self, messages: usize) -> Option<(OwnedSemaphorePermit, OwnedSemaphorePermit)> {
        let more = u32::try_from(messages.saturating_sub(1)).ok()?;
        let rest = self.limit.try_acquire_many_owned(more).ok()?;
        Some((self.first, rest))
    }
}

/// Frames, judges, stores and answers one datagram.
async fn serve_datagram(
    datagram: BytesMut,
    peer: SocketAddr,
    socket: &UdpSocket,
    spec: &Arc<ListenerSpec>,
    shared: &Arc<Shared>,
    admitted: Admitted,
) {
    let protocol = spec.protocol;
    let name = protocol.name();
    let label = ProtocolLabel { protocol: name };
    let max_messages = shared.config.udp_max_messages;

    let frames = match cut(
        protocol.datagram_framer(spec.max_frame),
        datagram,
        max_messages,
    ) {
        Ok(frames) => frames,
        Err(Cut::TooMany) => {
            let detail = format!("more than udp_max_messages ({max_messages}) messages");
            shared.refuse(
                Via::Udp,
                name,
                Stage::frame,
                "too_many_messages",
                &peer,
                &detail,
            );
            return;
        }
        Err(Cut::Frame(err)) => {
            let (error_type, detail) = match &err {
                // The default `decode_eof` reports leftover bytes as I/O.
                FrameError::Io(_) => (
                    "malformed",
                    "an incomplete message at the end of the datagram".to_string(),
                ),
                other => (other.reason(), other.to_string()),
            };
            shared.refuse(Via::Udp, name, Stage::frame, error_type, &peer, &detail);
            return;
        }
    };
    if frames.is_empty() {
        shared.refuse(
            Via::Udp,
            name,
            Stage::frame,
            "malformed",
            &peer,
            "no message in the datagram",
        );
        return;
    }
    if !shared.udp_rate.allow(peer.ip(), frames.len()) {
        let detail = format!(
            "{} sends more than udp_rate_per_source ({}) messages a second",
            peer.ip(),
            shared.config.udp_rate_per_source
        );
        shared.refuse(Via::Udp, name, Stage::frame, "rate_limited", &peer, &detail);
        return;
    }
    let Some(_permits) = admitted.for_messages(frames.len()) else {
        let detail = format!(
            "its {} messages do not fit in udp_inflight ({}) beside those being stored",
            frames.len(),
            shared.config.udp_inflight
        );
        shared.refuse(Via::Udp, name, Stage::frame, "overload", &peer, &detail);
        return;
    };
    for frame in &frames {
        shared.metrics.frames_received.get_or_create(&label).inc();
        shared
            .metrics
            .bytes_received
            .get_or_create(&label)
            .inc_by(frame.len() as u64);
    }

    // Every message is judged before anything is published: a datagram is
    // refused whole, never half stored.
    let mut session = protocol.datagram_session();
    let mut answers: Vec<Pending> = Vec::with_capacity(frames.len());
    let mut admitted: Option<Option<String>> = None;
    for frame in frames {
        let mut handled = match session.on_frame(&frame) {
            Ok(handled) => handled,
            Err(err) => {
                shared.refuse(
                    Via::Udp,
                    name,
                    Stage::session,
                    err.reason(),
                    &peer,
                    &err.to_string(),
                );
                return;
            }
        };
        if let (None, Some(_)) = (&admitted, session.device_id()) {
            match shared.admit_device(spec, &mut session, &peer) {
                Ok(admit) => {
                    admitted = Some(admit.model);
                    if admit.reply.is_some() {
                        handled.reply = admit.reply;
                    }
                }
                Err(refused) => {
                    shared.refuse(
                        Via::Udp,
                        name,
                        Stage::session,
                        refused.reason,
                        &peer,
                        &refused.detail,
                    );
                    return;
                }
            }
        }
        let model = admitted.clone().flatten();
        match answer_for(handled, frame, &session, spec, shared, peer, model) {
            Ok(answer) => answers.push(answer),
            Err(reason) => {
                shared.refuse(
                    Via::Udp,
                    name,
                    Stage::session,
                    reason,
                    &peer,
                    "a data message without a device id, and no message of the datagram gave one",
                );
                return;
            }
        }
    }

    let write_timeout = Duration::from_secs(shared.config.write_timeout_secs);
    let pipeline = shared.config.pipeline;
    let mut queued = answers.into_iter();
    let mut pending: FuturesOrdered<Pending> = FuturesOrdered::new();
    loop {
        while pending.len() < pipeline {
            match queued.next() {
                Some(answer) => pending.push_back(answer),
                None => break,
            }
        }
        let Some(answer) = pending.next().await else {
            break;
        };
        match answer {
            Ok(None) => {}
            Ok(Some(reply)) => match timeout(write_timeout, socket.send_to(&reply, peer)).await {
                Ok(Ok(_)) => {
                    shared.metrics.acks_sent.get_or_create(&label).inc();
                }
                Ok(Err(_)) | Err(_) => {
                    shared.refuse(
                        Via::Udp,
                        name,
                        Stage::connection,
                        "write_failed",
                        &peer,
                        "could not send an acknowledgement to the device",
                    );
                    return;
                }
            },
            Err(err) => {
                // Not stored: no reply for this message or any later one
                // of the datagram. The device still has the data.
                shared.refuse(
                    Via::Udp,
                    name,
                    Stage::publish,
                    err.error_type(),
                    &peer,
                    &err.to_string(),
                );
                return;
            }
        }
    }
}

/// Why a datagram could not be cut into messages.
#[derive(Debug)]
enum Cut {
    Frame(FrameError),
    /// More than the allowed number of messages (cutting stopped there).
    TooMany,
}

impl From<FrameError> for Cut {
    fn from(err: FrameError) -> Cut {
        Cut::Frame(err)
    }
}

/// Every message of one datagram, at most `max` of them, or why it cannot
/// be cut: all of it must be whole messages (a last one without its
/// delimiter is taken where the protocol allows it, by `decode_eof`).
fn cut<D>(mut framer: D, mut src: BytesMut, max: usize) -> Result<Vec<Bytes>, Cut>
where
    D: Decoder<Item = Bytes, Error = FrameError>,
{
    let mut frames = Vec::new();
    let mut push = |frame| {
        frames.push(frame);
        if frames.len() > max {
            return Err(Cut::TooMany);
        }
        Ok(())
    };
    while let Some(frame) = framer.decode(&mut src)? {
        push(frame)?;
    }
    while let Some(frame) = framer.decode_eof(&mut src)? {
        push(frame)?;
    }
    if !src.is_empty() {
        return Err(Cut::Frame(FrameError::Malformed(format!(
            "{} bytes left over at the end of the datagram",
            src.len()
        ))));
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetbus_codec::Protocol;

    fn frames(protocol: Protocol, datagram: &[u8]) -> Result<Vec<Vec<u8>>, String> {
        cut(
            protocol.datagram_framer(protocol.default_max_frame()),
            BytesMut::from(datagram),
            16,
        )
        .map(|f| f.into_iter().map(|b| b.to_vec()).collect())
        .map_err(|e| match e {
            Cut::Frame(e) => e.reason().to_string(),
            Cut::TooMany => "too_many_messages".to_string(),
        })
    }

    #[test]
    fn a_datagram_is_cut_into_all_its_messages() {
        assert_eq!(
            frames(Protocol::H02, b"*HQ,1,V0#\r\n*HQ,1,HTBT,100#").unwrap(),
            [b"*HQ,1,V0#".to_vec(), b"*HQ,1,HTBT,100#".to_vec()]
        );
        // GPS103: the last message may come without its delimiter.
        assert_eq!(
            frames(Protocol::Gps103, b"1234;imei:1234,tracker,,,L,").unwrap(),
            [b"1234;".to_vec(), b"imei:1234,tracker,,,L,".to_vec()]
        );
        assert!(frames(Protocol::H02, b"").unwrap().is_empty());
    }

    #[test]
    fn a_datagram_of_more_messages_than_allowed_is_refused_without_cutting_it_all() {
        let sixteen = b"123456789012345;".repeat(16);
        assert_eq!(frames(Protocol::Gps103, &sixteen).unwrap().len(), 16);
        // A 64 KB datagram of heartbeats, each of which would draw an `ON`.
        let flood = b"123456789012345;".repeat(65_000 / 16);
        assert_eq!(
            frames(Protocol::Gps103, &flood).unwrap_err(),
            "too_many_messages"
        );
        // The seventeenth taken by `decode_eof` counts too.
        let seventeen = [sixteen.as_slice(), b"123456789012345"].concat();
        assert_eq!(
            frames(Protocol::Gps103, &seventeen).unwrap_err(),
            "too_many_messages"
        );
    }

    #[test]
    fn leftovers_and_garbage_refuse_the_datagram() {
        // An H02 text message without its '#': incomplete at the end.
        assert_eq!(
            frames(Protocol::H02, b"*HQ,1,V0#*HQ,1,HTBT").unwrap_err(),
            "io"
        );
        assert_eq!(frames(Protocol::H02, b"hello").unwrap_err(), "malformed");
        let long = [b"*HQ,1,V1,".as_slice(), &[b'0'; 2000]].concat();
        assert_eq!(frames(Protocol::H02, &long).unwrap_err(), "too_large");
    }
}
