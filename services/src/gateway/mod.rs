//! The gateway: devices in, RAW out. One TCP listener per protocol, and a
//! UDP socket for the protocols devices commonly speak over UDP; every
//! data frame is stored in RAW (a quorum of the replicated stream) before
//! the device gets its acknowledgement. See docs/gateway.md.

pub mod admission;
mod claims;
pub mod config;
mod conn;
pub mod metrics;
mod publish;
pub mod raw_interest;
mod registry_copy;
mod sources;
pub mod tls;
mod udp;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use fleetbus_codec::Protocol;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::{ConfigError, GatewayConfig, Listener};
pub use metrics::Metrics;
pub use publish::RetryPolicy;

use crate::ops::ratelog::RateLimited;
use conn::ListenerSpec;
use metrics::{ProtocolLabel, Stage};

/// What every connection of a gateway shares.
pub struct Shared {
    pub config: GatewayConfig,
    pub js: jetstream::Context,
    pub metrics: Metrics,
    pub retry: RetryPolicy,
    /// Whether RAW has a consumer to keep frames (`raw_interest`).
    pub raw_kept: raw_interest::RawInterest,
    /// Which devices are admitted, and the gateway's copy of the registry.
    pub admission: Arc<admission::Admission>,
    /// Which connection holds each device (the newer wins).
    claims: claims::Claims,
    /// Connections held per source address.
    sources: sources::SourceConnections,
    /// New connections per source address.
    accept_rate: sources::SourceRate,
    /// UDP messages handled per source address.
    udp_rate: sources::SourceRate,
    log: RateLimited,
}

/// A device the registry admitted: the model its frames are stored with,
/// and the reply that replaces the identifying frame's, if any.
pub(crate) struct Admitted {
    pub model: Option<String>,
    pub reply: Option<bytes::Bytes>,
}

/// Why a device was not admitted (counted under `reason`).
pub(crate) struct Refused {
    pub reason: &'static str,
    pub detail: String,
}

/// How a device reached the gateway, for [`Shared::refuse`]'s log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Via {
    Tcp,
    Udp,
}

impl Shared {
    /// The registry's verdict on `device` (the first id a connection or
    /// datagram names): the model to store its frames with when admitted.
    /// An unknown device is held for an operator under `register`.
    fn admit_device(
        &self,
        spec: &conn::ListenerSpec,
        session: &mut fleetbus_codec::AnySession,
        peer: &SocketAddr,
    ) -> Result<Admitted, Refused> {
        let protocol = spec.protocol.name();
        let device = session.device_id().unwrap_or_default().to_string();
        match self.admission.check(&device, protocol) {
            admission::Verdict::Admit { model, auth_code } => {
                // The session checks the device's credential from here on,
                // and judges the frame that identified it again.
                let reply = session
                    .admitted(auth_code.as_deref())
                    .map_err(|e| Refused {
                        reason: e.reason(),
                        detail: format!("device {device}: {e}"),
                    })?;
                Ok(Admitted {
                    model: model.or_else(|| spec.model.clone()),
                    reply,
                })
            }
            verdict => {
                if verdict == admission::Verdict::Unknown {
                    self.admission
                        .hold(&device, protocol, &self.config.id, &peer.to_string());
                }
                Err(Refused {
                    reason: verdict.reason(),
                    detail: format!("device {device} is not admitted ({})", verdict.reason()),
                })
            }
        }
    }

    /// Counts a refusal or failure and logs it, at most once a second per
    /// reason (a flood of garbage must not flood the logs). A TCP device
    /// loses its connection; a UDP device gets no reply to the datagram.
    fn refuse(
        &self,
        via: Via,
        protocol: &'static str,
        stage: Stage,
        error_type: &'static str,
        peer: &SocketAddr,
        detail: &str,
    ) {
        self.metrics.error(protocol, stage, error_type);
        let Some(suppressed) = self.log.allow(error_type) else {
            return;
        };
        match via {
            Via::Tcp => tracing::warn!(protocol, %peer, ?stage, error_type, suppressed,
                "Closing a device connection without acknowledgement: {detail}."),
            Via::Udp => tracing::warn!(protocol, transport = "udp", %peer, ?stage, error_type,
                suppressed, "Not acknowledging a device datagram: {detail}."),
        }
    }
}

/// A running gateway.
pub struct Gateway {
    /// The bound address of each protocol's listener.
    pub addrs: BTreeMap<Protocol, SocketAddr>,
    /// The bound address of each protocol's UDP socket, where UDP is on.
    pub udp_addrs: BTreeMap<Protocol, SocketAddr>,
    /// The bound address of each protocol's TLS listener, where TLS is on.
    pub tls_addrs: BTreeMap<Protocol, SocketAddr>,
    pub metrics: Metrics,
    stop_accepting: CancellationToken,
    stop_connections: CancellationToken,
    tracker: TaskTracker,
    /// The UDP receive loops: joined on shutdown before the tracker is
    /// waited on, so no datagram task starts after the wait.
    udp_loops: Vec<JoinHandle<()>>,
    raw_watch: JoinHandle<()>,
    raw_kept: raw_interest::RawInterest,
    admission: Arc<admission::Admission>,
    /// Keeps the copy of the registry current (none under `open`).
    registry_follow: Option<JoinHandle<()>>,
    /// Reads the TLS listeners' files again when they change.
    tls_watch: Option<JoinHandle<()>>,
    drain_timeout: Duration,
}

impl Gateway {
    /// Binds every enabled listener and starts accepting. `client` should
    /// know every node of the cluster so that it survives any one dying.
    pub async fn start(
        config: GatewayConfig,
        client: async_nats::Client,
    ) -> anyhow::Result<Gateway> {
        config.validate()?;
        let js = jetstream::ContextBuilder::new()
            .timeout(Duration::from_millis(config.publish_timeout_ms))
            // One slot per frame that may wait at once: the connections'
            // pipelines and UDP's own budget bound it.
            .max_ack_inflight(
                config
                    .max_connections
                    .saturating_mul(config.pipeline)
                    .saturating_add(config.udp_inflight)
                    .max(1),
            )
            .backpressure_on_inflight(true)
            .build(client);
        let retry = RetryPolicy {
            retry_for: Duration::from_secs(config.retry_for_secs),
            first_backoff: Duration::from_millis(config.retry_backoff_ms),
            max_backoff: Duration::from_millis(config.retry_max_backoff_ms),
        };
        let metrics = Metrics::new();
        let drain_timeout = Duration::from_secs(config.drain_timeout_secs);
        let limit = Arc::new(Semaphore::new(config.max_connections));
        let mut bound = Vec::new();
        for (protocol, port, max_frame, model) in config.listeners() {
            let addr = SocketAddr::new(config.bind, port);
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen for {protocol} on {addr}: {e}"))?;
            bound.push((
                listener,
                ListenerSpec {
                    protocol,
                    max_frame,
                    model,
                    tls: None,
                },
            ));
        }
        let mut device_tls = Vec::new();
        for l in config.tls_listeners() {
            let loaded = tls::DeviceTls::load(&l.cert, &l.key).map_err(|e| {
                anyhow::anyhow!("cannot load the TLS certificate for {}: {e}", l.protocol)
            })?;
            let addr = SocketAddr::new(config.bind, l.port);
            let listener = TcpListener::bind(addr).await.map_err(|e| {
                anyhow::anyhow!("cannot listen for {} over TLS on {addr}: {e}", l.protocol)
            })?;
            device_tls.push((l.protocol, loaded.clone()));
            bound.push((
                listener,
                ListenerSpec {
                    protocol: l.protocol,
                    max_frame: l.max_frame,
                    model: l.model,
                    tls: Some(loaded),
                },
            ));
        }
        let mut bound_udp = Vec::new();
        for (protocol, port, max_frame, model) in config.udp_listeners() {
            let addr = SocketAddr::new(config.bind, port);
            let socket = UdpSocket::bind(addr).await.map_err(|e| {
                anyhow::anyhow!("cannot listen for {protocol} over UDP on {addr}: {e}")
            })?;
            bound_udp.push((
                socket,
                ListenerSpec {
                    protocol,
                    max_frame,
                    model,
                    tls: None,
                },
            ));
        }
        let udp_limit = Arc::new(Semaphore::new(config.udp_inflight));
        for (protocol, t) in &device_tls {
            note_expiry(&metrics, *protocol, t);
        }
        let tls_watch = (!device_tls.is_empty()).then(|| {
            tokio::spawn(watch_certificates(
                device_tls,
                Duration::from_secs(config.tls_reload_secs),
                metrics.clone(),
            ))
        });
        let (admission, registry_follow) =
            admission_for(&js, config.admission, metrics.registry_devices.clone()).await?;
        let raw_kept = raw_interest::RawInterest::default();
        let raw_watch = tokio::spawn(raw_interest::watch(
            js.clone(),
            raw_kept.clone(),
            metrics.clone(),
            Duration::from_millis(config.raw_check_ms),
        ));
        let shared = Arc::new(Shared {
            admission: admission.clone(),
            claims: claims::Claims::default(),
            sources: sources::SourceConnections::new(config.max_connections_per_source),
            accept_rate: sources::SourceRate::new(config.accept_rate_per_source, 10),
            udp_rate: sources::SourceRate::new(config.udp_rate_per_source, 2),
            config,
            js,
            metrics: metrics.clone(),
            retry,
            raw_kept: raw_kept.clone(),
            log: RateLimited::new(Duration::from_secs(1)),
        });
        let stop_accepting = CancellationToken::new();
        let stop_connections = CancellationToken::new();
        let tracker = TaskTracker::new();
        let mut addrs = BTreeMap::new();
        let mut tls_addrs = BTreeMap::new();
        for (listener, spec) in bound {
            let local = listener.local_addr()?;
            match &spec.tls {
                None => {
                    tracing::info!(protocol = spec.protocol.name(), addr = %local, "Listening for devices.");
                    addrs.insert(spec.protocol, local);
                }
                Some(t) => {
                    tracing::info!(protocol = spec.protocol.name(), addr = %local,
                        cert = %t.cert_path().display(), "Listening for devices over TLS.");
                    tls_addrs.insert(spec.protocol, local);
                }
            }
            tokio::spawn(accept_loop(
                listener,
                Arc::new(spec),
                shared.clone(),
                limit.clone(),
                stop_accepting.clone(),
                stop_connections.clone(),
                tracker.clone(),
            ));
        }
        let mut udp_addrs = BTreeMap::new();
        let mut udp_loops = Vec::new();
        for (socket, spec) in bound_udp {
            let local = socket.local_addr()?;
            tracing::info!(protocol = spec.protocol.name(), addr = %local, "Listening for devices over UDP.");
            udp_addrs.insert(spec.protocol, local);
            udp_loops.push(tokio::spawn(udp::receive_loop(
                Arc::new(socket),
                Arc::new(spec),
                shared.clone(),
                udp_limit.clone(),
                stop_accepting.clone(),
                tracker.clone(),
            )));
        }
        Ok(Gateway {
            admission,
            registry_follow,
            tls_watch,
            addrs,
            udp_addrs,
            tls_addrs,
            metrics,
            stop_accepting,
            stop_connections,
            tracker,
            udp_loops,
            raw_watch,
            raw_kept,
            drain_timeout,
        })
    }

    /// Whether RAW has a consumer that keeps what is stored (checked every
    /// `raw_check_ms`). While it has none, no frame is stored or
    /// acknowledged, and the gateway should not be ready.
    pub fn raw_is_kept(&self) -> bool {
        self.raw_kept.is_kept()
    }

    /// Which devices it admits and its copy of the registry (for
    /// readiness: nobody is admitted before the registry is read).
    pub fn admission(&self) -> Arc<admission::Admission> {
        self.admission.clone()
    }

    /// The flag behind [`Gateway::raw_is_kept`], for a readiness watch.
    pub fn raw_interest(&self) -> raw_interest::RawInterest {
        self.raw_kept.clone()
    }

    /// The listener of `protocol`.
    pub fn addr(&self, protocol: Protocol) -> Option<SocketAddr> {
        self.addrs.get(&protocol).copied()
    }

    /// The TLS listener of `protocol`, if it serves TLS.
    pub fn tls_addr(&self, protocol: Protocol) -> Option<SocketAddr> {
        self.tls_addrs.get(&protocol).copied()
    }

    /// The UDP socket of `protocol`, if it serves UDP.
    pub fn udp_addr(&self, protocol: Protocol) -> Option<SocketAddr> {
        self.udp_addrs.get(&protocol).copied()
    }

    /// Connections currently open, and UDP datagrams being stored and answered.
    pub fn open_connections(&self) -> usize {
        self.tracker.len()
    }

    /// Stops accepting (and receiving datagrams), lets every connection and
    /// datagram finish what it has in flight (publishes and their acks),
    /// then closes them. Gives up after the drain timeout; returns how many
    /// connections (and datagrams) were still busy then.
    pub async fn shutdown(self) -> usize {
        self.raw_watch.abort();
        if let Some(follow) = &self.registry_follow {
            follow.abort();
        }
        if let Some(watch) = &self.tls_watch {
            watch.abort();
        }
        self.stop_accepting.cancel();
        self.stop_connections.cancel();
        let tracker = self.tracker.clone();
        let drained = async move {
            // The receive loops stop at once; after them no datagram task
            // can start.
            for receive in self.udp_loops {
                let _ = receive.await;
            }
            tracker.close();
            tracker.wait().await;
        };
        if tokio::time::timeout(self.drain_timeout, drained)
            .await
            .is_err()
        {
            let left = self.tracker.len();
            tracing::warn!(connections = left,
                "The drain timeout passed with connections still open; closing them without their acks.");
            return left;
        }
        0
    }
}

async fn accept_loop(
    listener: TcpListener,
    spec: Arc<ListenerSpec>,
    shared: Arc<Shared>,
    limit: Arc<Semaphore>,
    stop_accepting: CancellationToken,
    stop_connections: CancellationToken,
    tracker: TaskTracker,
) {
    let name = spec.protocol.name();
    let label = ProtocolLabel { protocol: name };
    let mut backoff = ACCEPT_BACKOFF_MIN;
    loop {
        let accepted = tokio::select! {
            _ = stop_accepting.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => match admit(&shared, name, &peer) {
                None => drop(stream),
                Some(held) => match limit.clone().try_acquire_owned() {
                    Ok(permit) => {
                        backoff = ACCEPT_BACKOFF_MIN;
                        shared
                            .metrics
                            .connections_accepted
                            .get_or_create(&label)
                            .inc();
                        let open = shared
                            .metrics
                            .connections_open
                            .get_or_create(&label)
                            .clone();
                        open.inc();
                        let (spec, shared, stop) =
                            (spec.clone(), shared.clone(), stop_connections.child_token());
                        let acceptor = spec.tls.as_ref().map(|t| t.acceptor());
                        tracker.spawn(async move {
                            let _ = stream.set_nodelay(true);
                            match acceptor {
                                None => {
                                    let halves = stream.into_split();
                                    conn::serve(halves, peer, spec, shared, stop).await;
                                }
                                Some(acceptor) => {
                                    if let Some(stream) =
                                        handshake(&acceptor, stream, &peer, &spec, &shared).await
                                    {
                                        let halves = tokio::io::split(stream);
                                        conn::serve(halves, peer, spec, shared, stop).await;
                                    }
                                }
                            }
                            open.dec();
                            drop((permit, held));
                        });
                    }
                    Err(_) => {
                        // Full: close at once, and accept more slowly for a
                        // while so a connection storm costs little.
                        drop(stream);
                        shared.refuse(
                            Via::Tcp,
                            name,
                            Stage::accept,
                            "connection_limit",
                            &peer,
                            &format!(
                                "{} connections are open, the limit",
                                shared.config.max_connections
                            ),
                        );
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                    }
                },
            },
            Err(err) => {
                // Typically out of file descriptors: wait for some to close.
                shared.metrics.error(name, Stage::accept, "accept_failed");
                if let Some(suppressed) = shared.log.allow("accept_failed") {
                    tracing::warn!(protocol = name, error = %err, suppressed,
                        "Accepting a device connection failed; backing off.");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
            }
        }
    }
}

/// A device's TLS handshake, bounded by `identify_timeout_secs` (a client
/// that opens a socket and never completes the handshake holds a slot as
/// one that never says who it is would). A failure is refused and counted
/// as `tls_handshake`.
async fn handshake(
    acceptor: &tokio_rustls::TlsAcceptor,
    stream: tokio::net::TcpStream,
    peer: &SocketAddr,
    spec: &ListenerSpec,
    shared: &Shared,
) -> Option<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
    let bound = Duration::from_secs(shared.config.identify_timeout_secs);
    let detail = match tokio::time::timeout(bound, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => return Some(stream),
        Ok(Err(e)) => format!("the TLS handshake failed: {e}"),
        Err(_) => format!("no TLS handshake within {} s", bound.as_secs()),
    };
    let name = spec.protocol.name();
    shared.refuse(
        Via::Tcp,
        name,
        Stage::accept,
        "tls_handshake",
        peer,
        &detail,
    );
    None
}

/// Sets `tls_certificate_not_after_seconds` of `protocol`'s listener, and
/// says in the log when its certificate expires (a warning within 30 days:
/// a lapsed certificate takes every TLS device of the listener offline).
fn note_expiry(metrics: &Metrics, protocol: Protocol, device_tls: &tls::DeviceTls) {
    let protocol = protocol.name();
    let Some(at) = device_tls.expires_at() else {
        tracing::warn!(protocol, "Cannot read when the TLS certificate expires.");
        return;
    };
    metrics
        .tls_not_after
        .get_or_create(&ProtocolLabel { protocol })
        .set(at);
    let days = (at - chrono::Utc::now().timestamp()) / 86_400;
    if days < 30 {
        tracing::warn!(
            protocol,
            days,
            "The TLS certificate expires within 30 days; renew it."
        );
    } else {
        tracing::info!(
            protocol,
            days,
            "The TLS certificate is valid for {days} more days."
        );
    }
}

/// Checks every TLS listener's files each `every` and loads a changed
/// pair; a failure is logged and counted, and the previous pair stays.
async fn watch_certificates(
    listeners: Vec<(Protocol, Arc<tls::DeviceTls>)>,
    every: Duration,
    metrics: Metrics,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        for (listener, device_tls) in &listeners {
            let protocol = listener.name();
            let cert = device_tls.cert_path().display().to_string();
            let result = match device_tls.reload_if_changed() {
                Ok(false) => continue,
                Ok(true) => {
                    tracing::info!(
                        protocol,
                        cert,
                        "Loaded a changed TLS certificate; new connections use it."
                    );
                    note_expiry(&metrics, *listener, device_tls);
                    "loaded"
                }
                Err(e) => {
                    tracing::warn!(protocol, cert, error = %e,
                        "A TLS certificate changed but cannot be loaded; still serving the previous one.");
                    "failed"
                }
            };
            metrics
                .tls_reloads
                .get_or_create(&metrics::ReloadLabels { protocol, result })
                .inc();
        }
    }
}

/// The admission of `policy`, with the registry it follows (and the task
/// following it) and the pending bucket it holds unknown devices in.
async fn admission_for(
    js: &jetstream::Context,
    policy: admission::Policy,
    devices: prometheus_client::metrics::gauge::Gauge,
) -> anyhow::Result<(Arc<admission::Admission>, Option<JoinHandle<()>>)> {
    use fleetbus_wire::registry::{PENDING_BUCKET, REGISTRY_BUCKET};
    if policy == admission::Policy::Open {
        return Ok((
            Arc::new(admission::Admission::new(policy, None, devices)),
            None,
        ));
    }
    let bucket = |name: &'static str| async move {
        js.get_key_value(name).await.map_err(|e| {
            anyhow::anyhow!(
                "admission = \"{}\" needs the {name} bucket, which cannot be opened ({e}); \
                 run `fleetbus provision`",
                serde_json::to_value(policy)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default()
            )
        })
    };
    let registry = bucket(REGISTRY_BUCKET).await?;
    let pending = match policy {
        admission::Policy::Register => Some(bucket(PENDING_BUCKET).await?),
        _ => None,
    };
    let admission = Arc::new(admission::Admission::new(policy, pending, devices));
    let follow = tokio::spawn(registry_copy::follow(registry, admission.clone()));
    Ok((admission, Some(follow)))
}

/// Whether `peer`'s address may open one more connection: within its
/// accept rate and under its connection limit. A refusal is counted and
/// logged; the caller closes the connection. Accepting does not slow down
/// for it, as for a full gateway: one address's flood must not delay the
/// others' connections.
fn admit(shared: &Shared, protocol: &'static str, peer: &SocketAddr) -> Option<sources::Held> {
    if !shared.accept_rate.allow(peer.ip(), 1) {
        let detail = format!(
            "{} opens connections faster than accept_rate_per_source ({}/s)",
            peer.ip(),
            shared.config.accept_rate_per_source
        );
        shared.refuse(
            Via::Tcp,
            protocol,
            Stage::accept,
            "accept_rate",
            peer,
            &detail,
        );
        return None;
    }
    let held = shared.sources.hold(peer.ip());
    if held.is_none() {
        let detail = format!(
            "{} holds max_connections_per_source ({}) connections already",
            peer.ip(),
            shared.config.max_connections_per_source
        );
        shared.refuse(
            Via::Tcp,
            protocol,
            Stage::accept,
            "source_connection_limit",
            peer,
            &detail,
        );
    }
    held
}

const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
