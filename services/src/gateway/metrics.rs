//! The gateway's Prometheus metrics. Names are stable (dashboards and alerts
//! depend on them) and labels are bounded: protocol, reason, stage, outcome
//! — never a device id.

use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProtocolLabel {
    pub protocol: &'static str,
}

/// Where in a connection's life input was refused.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Stage {
    /// Accepting the connection (limit reached, accept failed).
    accept,
    /// Cutting bytes into frames (oversize, checksum, garbage).
    frame,
    /// The protocol session (data before login, bad identity).
    session,
    /// Storing in RAW (gave up after retries).
    publish,
    /// Talking to the device (idle, write failed).
    connection,
}

/// A TLS listener's certificate check: `loaded` (a new pair in use) or
/// `failed` (the files changed but do not load; the old pair stays).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    pub protocol: &'static str,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub protocol: &'static str,
    pub stage: Stage,
    pub error_type: &'static str,
}

/// Every gateway metric; cheap to clone (all handles are `Arc`s inside).
#[derive(Clone)]
pub struct Metrics {
    pub connections_accepted: Family<ProtocolLabel, Counter>,
    pub connections_open: Family<ProtocolLabel, Gauge>,
    pub frames_received: Family<ProtocolLabel, Counter>,
    pub bytes_received: Family<ProtocolLabel, Counter>,
    pub frames_stored: Family<ProtocolLabel, Counter>,
    pub frames_duplicate: Family<ProtocolLabel, Counter>,
    pub acks_sent: Family<ProtocolLabel, Counter>,
    pub publish_retries: Family<ProtocolLabel, Counter>,
    pub publish_duration: Family<ProtocolLabel, Histogram>,
    pub errors: Family<ErrorLabels, Counter>,
    /// Certificate reloads of the TLS listeners.
    pub tls_reloads: Family<ReloadLabels, Counter>,
    /// When each TLS listener's certificate in use expires, Unix seconds.
    pub tls_not_after: Family<ProtocolLabel, Gauge>,
    /// Consumers of RAW at the last check (0: nothing is acknowledged).
    pub raw_consumers: Gauge,
    /// Devices in the gateway's copy of the registry (-1 until it is
    /// read, and under `admission = "open"`).
    pub registry_devices: Gauge,
    registry: Arc<Registry>,
}

/// A new metric of kind `M`, registered under `name` (after the prefix).
fn registered<M>(registry: &mut Registry, name: &str, help: &str) -> M
where
    M: prometheus_client::registry::Metric + Default + Clone,
{
    let metric = M::default();
    registry.register(name, help, metric.clone());
    metric
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut r = Registry::with_prefix("fleetbus_gateway");
        let publish_duration = Family::<ProtocolLabel, Histogram>::new_with_constructor(|| {
            // 0.5 ms .. ~33 s: a healthy quorum write takes a few ms, a
            // leader election several seconds.
            Histogram::new(exponential_buckets(0.0005, 2.0, 17))
        });
        r.register(
            "publish_duration_seconds",
            "From a frame's first publish attempt to its PubAck",
            publish_duration.clone(),
        );
        Metrics {
            connections_accepted: registered(
                &mut r,
                "connections_accepted",
                "Device connections accepted",
            ),
            connections_open: registered(&mut r, "connections_open", "Device connections open now"),
            frames_received: registered(
                &mut r,
                "frames_received",
                "Complete frames read from devices",
            ),
            bytes_received: registered(
                &mut r,
                "bytes_received",
                "Bytes of complete frames read from devices",
            ),
            frames_stored: registered(
                &mut r,
                "frames_stored",
                "Frames stored in RAW (PubAck received), duplicates included",
            ),
            frames_duplicate: registered(
                &mut r,
                "frames_duplicate",
                "Stored frames JetStream recognised as resends (same Nats-Msg-Id)",
            ),
            acks_sent: registered(&mut r, "acks_sent", "Replies written to devices"),
            publish_retries: registered(
                &mut r,
                "publish_retries",
                "Publishes tried again after an error or a missing PubAck",
            ),
            publish_duration,
            errors: registered(
                &mut r,
                "errors",
                "Refused input and failures, by stage and error type",
            ),
            tls_reloads: registered(
                &mut r,
                "tls_reloads",
                "Certificate changes of the TLS listeners, loaded or failed (the old pair kept)",
            ),
            tls_not_after: registered(
                &mut r,
                "tls_certificate_not_after_seconds",
                "When the TLS listener's certificate in use expires (notAfter, Unix time): alert well before",
            ),
            raw_consumers: registered(
                &mut r,
                "raw_consumers",
                "Consumers of RAW at the last check; while 0 no frame is stored or acknowledged",
            ),
            registry_devices: {
                let g: Gauge = registered(
                    &mut r,
                    "registry_devices",
                    "Devices in this gateway's copy of the device registry (-1: not read yet, or admission open)",
                );
                g.set(-1);
                g
            },
            registry: Arc::new(r),
        }
    }

    /// Counts one refusal or failure.
    pub fn error(&self, protocol: &'static str, stage: Stage, error_type: &'static str) {
        self.errors
            .get_or_create(&ErrorLabels {
                protocol,
                stage,
                error_type,
            })
            .inc();
    }

    /// The headline counters summed over protocols (and error kinds), as
    /// `fleetbus status` shows them: connections open and accepted, frames
    /// stored and duplicate, acks sent, errors.
    pub fn totals(&self) -> BTreeMap<&'static str, u64> {
        const SHOWN: [(&str, &str); 6] = [
            ("fleetbus_gateway_connections_open", "connections_open"),
            (
                "fleetbus_gateway_connections_accepted_total",
                "connections_accepted",
            ),
            ("fleetbus_gateway_frames_stored_total", "frames_stored"),
            (
                "fleetbus_gateway_frames_duplicate_total",
                "frames_duplicate",
            ),
            ("fleetbus_gateway_acks_sent_total", "acks_sent"),
            ("fleetbus_gateway_errors_total", "errors"),
        ];
        let mut out: BTreeMap<&'static str, u64> = SHOWN.iter().map(|(_, k)| (*k, 0)).collect();
        // Summed from the exposition: a Family has no iterator over its
        // label sets, and this runs only when someone asks.
        for line in self.render().lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            let value = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok());
            if let (Some((_, key)), Some(v)) = (SHOWN.iter().find(|(n, _)| *n == name), value) {
                *out.entry(key).or_default() += v.max(0.0) as u64;
            }
        }
        out
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable() {
        let m = Metrics::new();
        let p = ProtocolLabel {
            protocol: "teltonika",
        };
        m.frames_received.get_or_create(&p).inc();
        m.error("gt06", Stage::frame, "bad_checksum");
        m.publish_duration.get_or_create(&p).observe(0.003);
        let text = m.render();
        for needle in [
            "fleetbus_gateway_frames_received_total{protocol=\"teltonika\"} 1",
            "fleetbus_gateway_errors_total{protocol=\"gt06\",stage=\"frame\",error_type=\"bad_checksum\"} 1",
            "fleetbus_gateway_publish_duration_seconds_count{protocol=\"teltonika\"} 1",
        ] {
            assert!(text.contains(needle), "{needle} missing in\n{text}");
        }
    }
}
