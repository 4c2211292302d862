//! The gateway's settings: defaults, then the `[gateway]` table of the
//! config file, then `FLEETBUS_GATEWAY__…` variables, then command-line
//! flags. Validation reports every problem at once.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use fleetbus_codec::{Protocol, Udp};
use serde::{Deserialize, Serialize};

/// One protocol's listener: TCP, and UDP where the protocol is used over UDP.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Listener {
    /// Serve this protocol at all.
    pub enabled: bool,
    /// TCP port (the gateway's `port_offset` is added). 0 picks a free port.
    pub port: u16,
    /// Also serve the protocol over UDP, on the same port number as TCP
    /// (with `port = 0`, a free UDP port of its own). Only for protocols
    /// whose framer and session work per datagram ([`Protocol::udp`]: not
    /// [`Udp::No`]); on by default where it is [`Udp::ByDefault`] (gl200,
    /// h02 and gps103).
    pub udp: bool,
    /// Largest frame accepted, in bytes; checked before a body is buffered.
    /// 0 means the protocol's own default.
    pub max_frame: usize,
    /// Device model for protocols whose frames do not say it (GT06 variants);
    /// passed to the parsers in the `Fleetbus-Model` header.
    pub model: Option<String>,
    /// Plain TCP on `port` (default true). False, with `tls_port`, serves
    /// the protocol over TLS only.
    pub plain: bool,
    /// Also serve the protocol over TLS on this TCP port (`port_offset` is
    /// added; 0 picks a free port), with `tls_cert` and `tls_key`: for
    /// trackers that speak TLS (Teltonika's FMB/FMC/FMM series do). The
    /// files are read again when they change (`tls_reload_secs`).
    pub tls_port: Option<u16>,
    /// PEM certificate chain of the TLS port, the device-facing one first.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert` (PKCS#8, PKCS#1 or SEC1).
    pub tls_key: Option<PathBuf>,
}

impl Default for Listener {
    fn default() -> Self {
        Listener {
            enabled: true,
            port: 0,
            udp: false,
            max_frame: 0,
            model: None,
            plain: true,
            tls_port: None,
            tls_cert: None,
            tls_key: None,
        }
    }
}

/// A TLS listener, as [`GatewayConfig::tls_listeners`] gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsListener {
    pub protocol: Protocol,
    /// Effective port (0: any free one).
    pub port: u16,
    pub max_frame: usize,
    pub model: Option<String>,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Every tunable of the gateway.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// This gateway's id, in the `Fleetbus-Gateway` header, in logs and in
    /// its service registration. Defaults to the host name.
    pub id: String,
    /// Which devices are admitted: `known` (only those in the registry),
    /// `register` (and unknown ones are held for an operator), `open`
    /// (every device; for trials). See `admission.rs`.
    pub admission: super::admission::Policy,
    /// Address the device listeners bind.
    pub bind: IpAddr,
    /// Added to every listener's port: lets several gateways share a host
    /// (`just up` runs node 2's with 100, node 3's with 200).
    pub port_offset: u16,
    /// `/metrics`, `/healthz` and `/readyz`.
    pub http: SocketAddr,
    /// Open device connections, all protocols together. Above it new
    /// connections are closed at once and accepting backs off.
    pub max_connections: usize,
    /// Open connections one source address may hold (0: no limit). Devices
    /// behind a carrier's NAT share an address: raise it for such fleets.
    pub max_connections_per_source: usize,
    /// New connections per second one source address may open, on average,
    /// in bursts of up to ten seconds' worth (0: no limit). The excess is
    /// closed at once.
    pub accept_rate_per_source: u32,
    /// A connection whose device has not identified itself (a login, or a
    /// first message naming it) within this long is closed.
    pub identify_timeout_secs: u64,
    /// A connection that carries no data message (positions, status,
    /// replies: no login or heartbeat counts) for this long is closed, so
    /// keep-alives alone cannot hold a slot for ever (0: no limit).
    pub data_timeout_secs: u64,
    /// Frames of one connection waiting for their PubAck at once. The
    /// gateway stops reading that socket while the pipeline is full.
    pub pipeline: usize,
    /// A connection that sends no complete frame for this long (and has
    /// nothing in flight) is closed: half-open and idle sockets.
    pub idle_timeout_secs: u64,
    /// Bound on writing an acknowledgement to a device.
    pub write_timeout_secs: u64,
    /// Wait for one PubAck before trying again, milliseconds.
    pub publish_timeout_ms: u64,
    /// Keep retrying a publish (same `Nats-Msg-Id`) this long before giving
    /// up and closing the connection without an ack. Longer than a leader
    /// election (measured 4–7 s).
    pub retry_for_secs: u64,
    /// First pause between publish retries, milliseconds; doubles up to
    /// `retry_max_backoff_ms`.
    pub retry_backoff_ms: u64,
    pub retry_max_backoff_ms: u64,
    /// On SIGTERM: readiness turns 503 and the gateway keeps serving this
    /// long, so load balancers stop sending new devices, before it stops
    /// accepting.
    pub drain_delay_secs: u64,
    /// Then in-flight publishes and acks get this long to finish.
    pub drain_timeout_secs: u64,
    /// UDP messages being stored and answered at once, all UDP listeners
    /// together: UDP's own budget, so a flood of datagrams cannot take the
    /// publishes TCP devices wait on. A datagram whose messages do not fit
    /// is dropped without an answer (counted as `overload`); the device
    /// sends it again.
    pub udp_inflight: usize,
    /// Messages one UDP datagram may hold. A datagram with more is refused
    /// whole (`too_many_messages`), so one datagram draws at most this many
    /// replies, whatever address it claims to come from.
    pub udp_max_messages: usize,
    /// UDP messages per second handled for one source address, on average,
    /// in bursts of up to two seconds' worth (0: no limit). The excess is
    /// dropped unanswered (`rate_limited`): with spoofed senders, this bounds
    /// the replies one victim can be sent.
    pub udp_rate_per_source: u32,
    /// How often to check that RAW has a consumer, milliseconds. With none,
    /// nobody would ever parse a stored frame, so the gateway acknowledges
    /// no device (and `/readyz` fails) until RAW has one again.
    pub raw_check_ms: u64,
    /// How often the TLS listeners' certificate and key files are checked
    /// for a change (a renewal) and read again, seconds.
    pub tls_reload_secs: u64,
    /// Log JSON lines instead of text.
    pub log_json: bool,
    /// One listener per protocol, by protocol name.
    pub protocols: BTreeMap<String, Listener>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            id: crate::ops::hostname(),
            admission: super::admission::Policy::Known,
            bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port_offset: 0,
            http: SocketAddr::from(([127, 0, 0, 1], 9100)),
            max_connections: 10_000,
            max_connections_per_source: 1_000,
            accept_rate_per_source: 100,
            identify_timeout_secs: 10,
            data_timeout_secs: 3_600,
            pipeline: 16,
            idle_timeout_secs: 600,
            write_timeout_secs: 10,
            publish_timeout_ms: 2_000,
            retry_for_secs: 30,
            retry_backoff_ms: 100,
            retry_max_backoff_ms: 2_000,
            drain_delay_secs: 2,
            drain_timeout_secs: 15,
            udp_inflight: 4_096,
            udp_max_messages: 16,
            udp_rate_per_source: 1_000,
            raw_check_ms: 2_000,
            tls_reload_secs: 60,
            log_json: false,
            protocols: Protocol::ALL
                .iter()
                .map(|p| {
                    (
                        p.name().to_string(),
                        Listener {
                            port: p.default_port(),
                            udp: p.udp() == Udp::ByDefault,
                            ..Listener::default()
                        },
                    )
                })
                .collect(),
        }
    }
}

pub use crate::config::ConfigError;

impl GatewayConfig {
    /// Defaults → `[gateway]` of `file` → `FLEETBUS_GATEWAY__…` → `flags`
    /// (only the keys set), validated.
    pub fn load(file: Option<&Path>, flags: Figment) -> Result<GatewayConfig, ConfigError> {
        let config: GatewayConfig = crate::config::table(file, "gateway", flags)?;
        config.validate()?;
        Ok(config)
    }

    /// Every rule, every violation.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if self.id.trim().is_empty() || self.id.contains(char::is_whitespace) {
            problems.push(format!(
                "id must be non-empty without spaces, not {:?}",
                self.id
            ));
        }
        let positive = [
            ("max_connections", self.max_connections as u64),
            ("pipeline", self.pipeline as u64),
            ("idle_timeout_secs", self.idle_timeout_secs),
            ("write_timeout_secs", self.write_timeout_secs),
            ("publish_timeout_ms", self.publish_timeout_ms),
            ("retry_backoff_ms", self.retry_backoff_ms),
            ("drain_timeout_secs", self.drain_timeout_secs),
            ("udp_inflight", self.udp_inflight as u64),
            ("udp_max_messages", self.udp_max_messages as u64),
            ("identify_timeout_secs", self.identify_timeout_secs),
            ("raw_check_ms", self.raw_check_ms),
            ("tls_reload_secs", self.tls_reload_secs),
        ];
        for (name, value) in positive {
            if value == 0 {
                problems.push(format!("{name} must be > 0"));
            }
        }
        if self.retry_max_backoff_ms < self.retry_backoff_ms {
            problems.push(format!(
                "retry_max_backoff_ms ({}) must be >= retry_backoff_ms ({})",
                self.retry_max_backoff_ms, self.retry_backoff_ms
            ));
        }
        if self.retry_for_secs * 1000 < self.publish_timeout_ms {
            problems.push(format!(
                "retry_for_secs ({} s) must allow at least one publish_timeout_ms ({} ms)",
                self.retry_for_secs, self.publish_timeout_ms
            ));
        }
        if self.udp_max_messages > self.udp_inflight {
            problems.push(format!(
                "udp_max_messages ({}) must be <= udp_inflight ({}): a datagram's messages are in flight together",
                self.udp_max_messages, self.udp_inflight
            ));
        }
        let mut ports: BTreeMap<u16, &str> = BTreeMap::new();
        let mut enabled = 0;
        for (name, listener) in &self.protocols {
            let Ok(protocol) = name.parse::<Protocol>() else {
                problems.push(format!(
                    "protocols.{name}: unknown protocol (supported: {})",
                    Protocol::names().join(", ")
                ));
                continue;
            };
            if listener.udp && !protocol.udp().served() {
                problems.push(format!(
                    "protocols.{name}: udp is not supported for {name} (UDP: {})",
                    Protocol::ALL
                        .iter()
                        .filter(|p| p.udp().served())
                        .map(|p| p.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            let tls_files = (&listener.tls_cert, &listener.tls_key);
            match (listener.tls_port, tls_files) {
                (Some(_), (Some(cert), Some(key))) => {
                    for (what, path) in [("tls_cert", cert), ("tls_key", key)] {
                        if let Err(e) = std::fs::metadata(path) {
                            problems
                                .push(format!("protocols.{name}: {what} {}: {e}", path.display()));
                        }
                    }
                }
                (Some(_), _) => problems.push(format!(
                    "protocols.{name}: tls_port needs both tls_cert and tls_key"
                )),
                (None, (None, None)) => {}
                (None, _) => problems.push(format!(
                    "protocols.{name}: tls_cert and tls_key are used only with tls_port"
                )),
            }
            if !listener.plain && listener.tls_port.is_none() {
                problems.push(format!(
                    "protocols.{name}: plain = false serves nothing without tls_port \
                     (use enabled = false to turn the protocol off)"
                ));
            }
            if !listener.enabled {
                continue;
            }
            enabled += 1;
            let tcp_ports = [
                (listener.plain, listener.port),
                (true, listener.tls_port.unwrap_or(0)),
            ];
            for (_, wanted) in tcp_ports.into_iter().filter(|(on, p)| *on && *p != 0) {
                match wanted.checked_add(self.port_offset) {
                    None => problems.push(format!(
                        "protocols.{name}: port {} + port_offset {} exceeds 65535",
                        wanted, self.port_offset
                    )),
                    Some(port) => {
                        if let Some(other) = ports.insert(port, protocol.name()) {
                            problems.push(format!(
                                "protocols.{name}: port {port} is also used by {other}"
                            ));
                        }
                    }
                }
            }
            if listener.max_frame > MAX_FRAME_CEILING {
                problems.push(format!(
                    "protocols.{name}: max_frame {} exceeds {MAX_FRAME_CEILING} bytes (NATS max_payload)",
                    listener.max_frame
                ));
            }
        }
        if enabled == 0 {
            problems.push("no protocol is enabled".into());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError(problems))
        }
    }

    /// The enabled plain TCP listeners with their effective port and
    /// frame limit.
    pub fn listeners(&self) -> Vec<(Protocol, u16, usize, Option<String>)> {
        self.effective(|l| l.plain)
    }

    /// The enabled TLS listeners.
    pub fn tls_listeners(&self) -> Vec<TlsListener> {
        self.protocols
            .iter()
            .filter(|(_, l)| l.enabled)
            .filter_map(|(name, l)| {
                let (Some(port), Some(cert), Some(key)) = (l.tls_port, &l.tls_cert, &l.tls_key)
                else {
                    return None;
                };
                let (protocol, _, max_frame, model) = self.resolve(name, l)?;
                Some(TlsListener {
                    protocol,
                    port: self.offset(port),
                    max_frame,
                    model,
                    cert: cert.clone(),
                    key: key.clone(),
                })
            })
            .collect()
    }

    /// The enabled listeners that also serve UDP, with the same effective
    /// port (0: any free port) and frame limit as their TCP side.
    pub fn udp_listeners(&self) -> Vec<(Protocol, u16, usize, Option<String>)> {
        self.effective(|l| l.udp)
    }

    fn effective(
        &self,
        keep: impl Fn(&Listener) -> bool,
    ) -> Vec<(Protocol, u16, usize, Option<String>)> {
        self.protocols
            .iter()
            .filter(|(_, l)| l.enabled && keep(l))
            .filter_map(|(name, l)| self.resolve(name, l))
            .collect()
    }

    /// A listener's protocol, effective port, frame limit and model.
    fn resolve(&self, name: &str, l: &Listener) -> Option<(Protocol, u16, usize, Option<String>)> {
        let p = name.parse::<Protocol>().ok()?;
        let max = if l.max_frame == 0 {
            p.default_max_frame()
        } else {
            l.max_frame
        };
        Some((p, self.offset(l.port), max, l.model.clone()))
    }

    /// `port` with `port_offset` added (0 stays 0: any free port).
    fn offset(&self, port: u16) -> u16 {
        if port == 0 {
            0
        } else {
            port + self.port_offset
        }
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }
}

/// A frame is one NATS message; the server's default max_payload is 1 MiB.
pub const MAX_FRAME_CEILING: usize = 1 << 20;

#[cfg(test)]
mod tests {
    use super::*;
    use figment::providers::Serialized;

    fn flags(pairs: &[(&str, &str)]) -> Figment {
        let mut f = Figment::new();
        for (k, v) in pairs {
            f = f.merge((*k, *v));
        }
        f
    }

    #[test]
    fn defaults_follow_traccar_ports_and_validate() {
        let c = GatewayConfig::default();
        c.validate().unwrap();
        assert_eq!(c.protocols["teltonika"].port, 5027);
        assert_eq!(c.protocols["gt06"].port, 5023);
        assert_eq!(c.protocols.len(), Protocol::ALL.len());
        // UDP on the TCP port numbers, for the protocols commonly used over
        // UDP (in name order).
        let udp: Vec<(Protocol, u16)> = c.udp_listeners().iter().map(|l| (l.0, l.1)).collect();
        assert_eq!(
            udp,
            [
                (Protocol::Gl200, 5004),
                (Protocol::Gps103, 5001),
                (Protocol::H02, 5013)
            ]
        );
    }

    #[test]
    fn tls_listeners_need_their_files_and_a_port_of_their_own() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&cert, "x").unwrap();
        std::fs::write(&key, "x").unwrap();
        let mut c = GatewayConfig {
            port_offset: 100,
            ..GatewayConfig::default()
        };
        let t = c.protocols.get_mut("teltonika").unwrap();
        t.tls_port = Some(5028);
        t.tls_cert = Some(cert.clone());
        t.tls_key = Some(key.clone());
        c.validate().unwrap();
        let tls = c.tls_listeners();
        assert_eq!(tls.len(), 1);
        assert_eq!((tls[0].protocol, tls[0].port), (Protocol::Teltonika, 5128));
        assert!(c
            .listeners()
            .iter()
            .any(|l| l.0 == Protocol::Teltonika && l.1 == 5127));
        // TLS only: the plain port is not bound.
        c.protocols.get_mut("teltonika").unwrap().plain = false;
        c.validate().unwrap();
        assert!(!c.listeners().iter().any(|l| l.0 == Protocol::Teltonika));

        let mut bad = GatewayConfig::default();
        let gt06 = bad.protocols.get_mut("gt06").unwrap();
        gt06.tls_port = Some(5027); // teltonika's
        gt06.tls_cert = Some(dir.path().join("missing.pem"));
        gt06.tls_key = Some(key.clone());
        bad.protocols.get_mut("h02").unwrap().tls_port = Some(5999);
        bad.protocols.get_mut("gps103").unwrap().tls_cert = Some(cert.clone());
        bad.protocols.get_mut("tk103").unwrap().plain = false;
        let text = bad.validate().unwrap_err().to_string();
        for needle in [
            "protocols.gt06: tls_cert",
            "missing.pem",
            "port 5027 is also used by",
            "protocols.h02: tls_port needs both tls_cert and tls_key",
            "protocols.gps103: tls_cert and tls_key are used only with tls_port",
            "protocols.tk103: plain = false serves nothing without tls_port",
        ] {
            assert!(text.contains(needle), "{needle} missing in {text}");
        }
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let mut c = GatewayConfig {
            pipeline: 0,
            max_connections: 0,
            retry_max_backoff_ms: 1,
            udp_inflight: 0,
            udp_max_messages: 0,
            ..GatewayConfig::default()
        };
        c.protocols.get_mut("gt06").unwrap().port = 5027;
        c.protocols.get_mut("jt808").unwrap().udp = true;
        c.protocols.insert("nope".into(), Listener::default());
        let err = c.validate().unwrap_err();
        let text = err.to_string();
        assert_eq!(err.0.len(), 8, "{text}");
        for needle in [
            "pipeline",
            "max_connections",
            "retry_max_backoff_ms",
            "port 5027",
            "nope",
            "udp_inflight",
            "udp_max_messages",
            "protocols.jt808: udp is not supported",
        ] {
            assert!(text.contains(needle), "{needle} missing in {text}");
        }
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API
    fn file_then_environment_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fleetbus.toml");
        std::fs::write(
            &path,
            "[gateway]\nid = \"from-file\"\npipeline = 4\n[gateway.protocols.gt06]\nport = 6023\nmodel = \"TR02\"\n",
        )
        .unwrap();
        figment::Jail::expect_with(|jail| {
            jail.set_env("FLEETBUS_GATEWAY__PIPELINE", "8");
            jail.set_env("FLEETBUS_GATEWAY__PROTOCOLS__TELTONIKA__ENABLED", "false");
            jail.set_env("FLEETBUS_GATEWAY__PROTOCOLS__H02__UDP", "false");
            let offset = Figment::from(Serialized::default("port_offset", 100));
            let c = GatewayConfig::load(Some(&path), offset).unwrap();
            assert_eq!(c.id, "from-file");
            assert_eq!(c.pipeline, 8, "environment beats the file");
            assert_eq!(c.port_offset, 100);
            let listeners = c.listeners();
            assert!(!listeners.iter().any(|l| l.0 == Protocol::Teltonika));
            let gt06 = listeners.iter().find(|l| l.0 == Protocol::Gt06).unwrap();
            assert_eq!(gt06.1, 6123);
            assert_eq!(gt06.3.as_deref(), Some("TR02"));
            // UDP: h02 turned off by the environment; the file's and the
            // defaults' other settings kept, with the port offset.
            let udp: Vec<(Protocol, u16)> = c.udp_listeners().iter().map(|l| (l.0, l.1)).collect();
            assert_eq!(udp, [(Protocol::Gl200, 5104), (Protocol::Gps103, 5101)]);
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn unknown_keys_and_bad_types_are_errors() {
        // In a jail: the environment is process-wide, and another test sets it.
        figment::Jail::expect_with(|jail| {
            jail.create_file("typo.toml", "[gateway]\npipelin = 4\n")?;
            let err =
                GatewayConfig::load(Some(Path::new("typo.toml")), Figment::new()).unwrap_err();
            assert!(err.to_string().contains("pipelin"), "{err}");
            let err = GatewayConfig::load(None, flags(&[("pipeline", "many")])).unwrap_err();
            assert!(err.to_string().contains("pipeline"), "{err}");
            let err =
                GatewayConfig::load(Some(Path::new("missing.toml")), Figment::new()).unwrap_err();
            assert!(err.to_string().contains("does not exist"), "{err}");
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn printed_config_loads_back_unchanged() {
        figment::Jail::expect_with(|jail| {
            let c = GatewayConfig::default();
            // What --print-config prints (crate::config::Effective).
            let printed = crate::config::Effective::new()
                .table("gateway", &c)
                .unwrap()
                .render()
                .unwrap();
            jail.create_file("printed.toml", &printed)?;
            let back =
                GatewayConfig::load(Some(Path::new("printed.toml")), Figment::new()).unwrap();
            assert_eq!(back, c);
            Ok(())
        });
    }
}
