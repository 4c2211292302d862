//! An in-process gateway's Prometheus metrics, read as a scrape would.

use std::collections::BTreeMap;
use std::time::Duration;

use fleetbus_e2e::wait_for;
use fleetbus_services::gateway::Gateway;

/// The value of the first series that starts with `line_start`; 0 where
/// there is none.
pub fn metric(gw: &Gateway, line_start: &str) -> u64 {
    let text = gw.metrics.render();
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map(|v| v as u64)
        .unwrap_or(0)
}

/// `fleetbus_gateway_<family>_total` of one protocol.
pub fn counter(gw: &Gateway, family: &str, protocol: &str) -> u64 {
    metric(
        gw,
        &format!("fleetbus_gateway_{family}_total{{protocol=\"{protocol}\"}}"),
    )
}

/// `fleetbus_gateway_errors_total` of one protocol, stage and error type.
pub fn error_metric(gw: &Gateway, protocol: &str, stage: &str, error_type: &str) -> u64 {
    metric(
        gw,
        &format!(
            "fleetbus_gateway_errors_total{{protocol=\"{protocol}\",stage=\"{stage}\",error_type=\"{error_type}\"}}"
        ),
    )
}

/// `fleetbus_gateway_<family>_total`, per protocol (summed over its other
/// labels).
pub fn per_protocol(gw: &Gateway, family: &str) -> BTreeMap<String, u64> {
    let start = format!("fleetbus_gateway_{family}_total{{");
    let mut out = BTreeMap::new();
    for line in gw.metrics.render().lines() {
        let Some(rest) = line.strip_prefix(start.as_str()) else {
            continue;
        };
        let Some((labels, value)) = rest.split_once("} ") else {
            continue;
        };
        let protocol = labels.split('"').nth(1).unwrap_or_default().to_string();
        *out.entry(protocol).or_default() += value.trim().parse::<u64>().unwrap_or(0);
    }
    out
}

/// Waits until `f` gives `value` (saying so when it went past it).
pub async fn wait_metric(what: &str, value: u64, f: impl Fn() -> u64) {
    wait_for(what, Duration::from_secs(20), || async {
        let now = f();
        anyhow::ensure!(now <= value, "{what}: {now}, more than {value}");
        Ok((now == value).then_some(()))
    })
    .await
    .unwrap();
}
