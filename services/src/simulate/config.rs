//! What to simulate: the `[simulate]` table, as `--config`,
//! `FLEETBUS_SIMULATE__…` variables and `fleetbus simulate`'s flags give it
//! (`crate::cli::simulate` layers them). The simulator runs from this one
//! struct; [`Config::check`] turns its names and addresses into what the
//! devices use, and reports every problem at once.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use fleetbus_codec::Protocol;
use serde::{Deserialize, Serialize};

use super::protocols::{self, Resend, SUPPORTED};
use crate::config::ConfigError;

/// The `[simulate]` table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub devices: usize,
    /// Protocols, assigned to devices in turn.
    pub protocols: Vec<String>,
    /// Distinguishes fleets: part of every IMEI.
    pub fleet: u32,
    /// A new record per device every `interval_ms`.
    pub interval_ms: u64,
    /// Records per device; 0 = until stopped.
    pub records: u64,
    /// Stop generating after this long (records already generated are
    /// still delivered); none = no limit.
    pub duration_secs: Option<u64>,
    /// Records per frame, where the protocol allows several.
    pub per_frame: usize,
    /// How devices resend records whose ack they did not get.
    pub resend: Resend,
    /// `PROTOCOL=ADDR[,ADDR…]`: a protocol's gateways, in the order a
    /// device tries them.
    pub gateways: Vec<String>,
    /// Protocols without a `gateways` entry: every host, at the protocol's
    /// default port plus each offset.
    pub hosts: Vec<String>,
    pub port_offsets: Vec<u16>,
    pub queue: PathBuf,
    pub report: Option<PathBuf>,
    /// Wait for an acknowledgement this long before reconnecting.
    pub ack_timeout_secs: u64,
    /// A progress line this often (0: quiet).
    pub progress_secs: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            devices: 10,
            protocols: vec!["teltonika".into(), "gt06".into()],
            fleet: 1,
            interval_ms: 1000,
            records: 0,
            duration_secs: None,
            per_frame: 1,
            resend: Resend::Firmware,
            gateways: Vec::new(),
            hosts: vec!["127.0.0.1".into()],
            port_offsets: vec![0, 100, 200],
            queue: "fleetbus-simulator.db".into(),
            report: None,
            ack_timeout_secs: 45,
            progress_secs: 2,
        }
    }
}

/// What [`Config::check`] resolved: the protocols and, for each, the
/// gateway addresses.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub protocols: Vec<Protocol>,
    pub gateways: Vec<(Protocol, Vec<SocketAddr>)>,
}

impl Resolved {
    /// The gateways of `protocol`, in the order a device tries them.
    pub fn gateways_of(&self, protocol: Protocol) -> &[SocketAddr] {
        self.gateways
            .iter()
            .find(|(p, _)| *p == protocol)
            .map(|(_, a)| a.as_slice())
            .unwrap_or_default()
    }
}

/// `PROTOCOL=ADDR[,ADDR…]`, the form of a `gateways` entry.
pub fn gateway_spec(protocol: Protocol, addrs: &[SocketAddr]) -> String {
    let addrs: Vec<String> = addrs.iter().map(ToString::to_string).collect();
    format!("{protocol}={}", addrs.join(","))
}

impl Config {
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms)
    }

    pub fn duration(&self) -> Option<Duration> {
        self.duration_secs.map(Duration::from_secs)
    }

    pub fn ack_timeout(&self) -> Duration {
        Duration::from_secs(self.ack_timeout_secs.max(1))
    }

    pub fn progress(&self) -> Option<Duration> {
        (self.progress_secs > 0).then(|| Duration::from_secs(self.progress_secs))
    }

    /// The protocols and gateway addresses; every problem at once.
    pub fn check(&self) -> Result<Resolved, ConfigError> {
        let mut problems = Vec::new();
        if self.devices == 0 {
            problems.push("--devices must be > 0".to_string());
        }
        if self.interval_ms == 0 {
            problems.push("--interval-ms must be > 0".to_string());
        }
        if self.per_frame == 0 || self.per_frame > 255 {
            problems.push("--per-frame must be 1..=255".to_string());
        }
        let speak = self.speak(&mut problems);
        let mut gateways: Vec<(Protocol, Vec<SocketAddr>)> = Vec::new();
        for spec in &self.gateways {
            match parse_gateway(spec) {
                Ok(g) => gateways.push(g),
                Err(e) => problems.push(format!("--gateway {spec}: {e:#}")),
            }
        }
        for p in &speak {
            if gateways.iter().any(|(q, _)| q == p) {
                continue;
            }
            let mut addrs = Vec::new();
            for host in &self.hosts {
                for off in &self.port_offsets {
                    let port = p.default_port().checked_add(*off);
                    match port.map(|port| resolve(&format!("{host}:{port}"))) {
                        Some(Ok(a)) => addrs.push(a),
                        Some(Err(e)) => problems.push(format!("{host}: {e:#}")),
                        None => problems.push(format!("port offset {off} is too large")),
                    }
                }
            }
            if addrs.is_empty() {
                problems.push(format!("no gateway address for {p}"));
            }
            gateways.push((*p, addrs));
        }
        if !problems.is_empty() {
            return Err(ConfigError(problems));
        }
        Ok(Resolved {
            protocols: speak,
            gateways,
        })
    }
}

impl Config {
    /// The protocols it names, assigned to devices in turn; what is wrong
    /// with them goes to `problems`.
    fn speak(&self, problems: &mut Vec<String>) -> Vec<Protocol> {
        let mut speak = Vec::new();
        for name in &self.protocols {
            match name.parse::<Protocol>() {
                Ok(p) => speak.push(p),
                Err(e) => problems.push(format!("protocols: {e}")),
            }
        }
        if speak.is_empty() && problems.is_empty() {
            problems.push("no protocol to simulate".to_string());
        }
        for p in &speak {
            if let Some(why) = protocols::unsupported_reason(*p) {
                problems.push(format!(
                    "the simulator cannot speak {p}: {why} (it speaks {})",
                    SUPPORTED.map(|p| p.name()).join(", ")
                ));
            }
        }
        speak
    }

    /// The fleet's devices, in index order: the id each one sends and its
    /// protocol ([`super::devices`]). Checks only what decides them (the
    /// device count and the protocols), and resolves no address, so it
    /// needs no network (`fleetbus simulate --print-devices`).
    pub fn fleet_devices(&self) -> Result<Vec<(String, Protocol)>, ConfigError> {
        let mut problems = Vec::new();
        if self.devices == 0 {
            problems.push("--devices must be > 0".to_string());
        }
        let speak = self.speak(&mut problems);
        if !problems.is_empty() {
            return Err(ConfigError(problems));
        }
        Ok(super::devices(self.fleet, self.devices, &speak))
    }
}

fn resolve(addr: &str) -> anyhow::Result<SocketAddr> {
    addr.to_socket_addrs()?
        .next()
        .with_context(|| format!("{addr} resolves to nothing"))
}

fn parse_gateway(spec: &str) -> anyhow::Result<(Protocol, Vec<SocketAddr>)> {
    let (proto, addrs) = spec
        .split_once('=')
        .context("expected PROTOCOL=ADDR[,ADDR…]")?;
    let protocol: Protocol = proto.parse()?;
    let addrs = addrs
        .split(',')
        .filter(|a| !a.trim().is_empty())
        .map(|a| resolve(a.trim()))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if addrs.is_empty() {
        bail!("no address");
    }
    Ok((protocol, addrs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_is_reported_at_once() {
        let config = Config {
            devices: 0,
            per_frame: 0,
            protocols: vec!["teltonika".into(), "nope".into(), "suntech".into()],
            gateways: vec!["gt06".into()],
            ..Config::default()
        };
        let problems = config.check().unwrap_err().0;
        assert_eq!(problems.len(), 5, "{problems:#?}");
        assert!(problems[0].contains("--devices"), "{problems:#?}");
        assert!(
            problems[3].contains("cannot speak suntech"),
            "{problems:#?}"
        );
        assert!(problems[4].starts_with("--gateway gt06"), "{problems:#?}");
    }

    #[test]
    fn the_fleet_devices_take_the_protocols_in_turn_and_need_no_gateway() {
        let config = Config {
            devices: 3,
            protocols: vec!["jt808".into(), "gt06".into()],
            fleet: 7,
            // Nothing resolves this: the devices do not depend on it.
            hosts: vec!["no-such-host.invalid".into()],
            ..Config::default()
        };
        assert_eq!(
            config.fleet_devices().unwrap(),
            [
                ("070000000000".to_string(), Protocol::Jt808),
                ("350070000000001".to_string(), Protocol::Gt06),
                ("070000000002".to_string(), Protocol::Jt808),
            ]
        );
        let wrong = Config {
            devices: 0,
            protocols: vec!["suntech".into()],
            ..Config::default()
        };
        let problems = wrong.fleet_devices().unwrap_err().0;
        assert_eq!(problems.len(), 2, "{problems:#?}");
    }

    #[test]
    fn a_gateway_spec_reads_back_as_the_addresses_it_names() {
        let addrs: Vec<SocketAddr> = vec![
            "127.0.0.1:5027".parse().unwrap(),
            "[::1]:6000".parse().unwrap(),
        ];
        let config = Config {
            protocols: vec!["teltonika".into(), "gt06".into()],
            gateways: vec![gateway_spec(Protocol::Teltonika, &addrs)],
            port_offsets: vec![0, 100],
            ..Config::default()
        };
        let resolved = config.check().unwrap();
        assert_eq!(resolved.protocols, [Protocol::Teltonika, Protocol::Gt06]);
        assert_eq!(resolved.gateways_of(Protocol::Teltonika), addrs.as_slice());
        let gt06 = Protocol::Gt06.default_port();
        let defaults: Vec<SocketAddr> = [gt06, gt06 + 100]
            .map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
            .to_vec();
        assert_eq!(resolved.gateways_of(Protocol::Gt06), defaults.as_slice());
    }
}
