//! Self-registration: every long-running fleetbus process (gateway, hamster,
//! monkey) registers as a NATS micro service named after its role, so that
//! `fleetbus status`, `nats micro ls` and the standard `$SRV.PING`,
//! `$SRV.INFO` and `$SRV.STATS` requests find every live instance on every
//! host, with no central list to edit.
//!
//! * **Info metadata** (fixed at start): `host`, `pid`, `concurrency`,
//!   `started` (RFC 3339), plus what the program adds (a monkey's
//!   processors, …).
//! * **Live stats**: the service has one endpoint, `stats`, on
//!   `$SRV.FLEETBUS.<role>.<id>` (inside the `$SRV.*.<role>.>` subjects each
//!   role may subscribe to). A request to it answers the current counters as
//!   JSON, and `$SRV.STATS` carries the same object as that endpoint's
//!   `data`, e.g. `{"processed":1234,"errors":0,"restarts":1,"dead":2,…}`.
//! * [`Registration::stop`] deregisters (graceful shutdown); a process that
//!   dies simply stops answering.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_nats::service::{Service, ServiceExt};
use futures::StreamExt;

use crate::nats::Role;

/// Produces the live stats object (cheap; called per request).
pub type StatsFn = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

/// The version every fleetbus service registers with.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What to register.
pub struct Spec {
    pub role: Role,
    pub description: String,
    /// Workers (or connections, …) this process runs in parallel.
    pub concurrency: usize,
    /// More metadata (`processors`, `protocols`, …).
    pub metadata: BTreeMap<String, String>,
    pub stats: StatsFn,
}

/// A live registration.
pub struct Registration {
    service: Service,
    id: String,
    endpoint: tokio::task::JoinHandle<()>,
}

/// The subject of a service instance's `stats` endpoint.
pub fn stats_subject(role: Role, id: &str) -> String {
    format!("$SRV.FLEETBUS.{}.{id}", role.name())
}

/// The metadata every registration carries.
pub fn base_metadata(concurrency: usize) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("host".to_string(), crate::ops::hostname()),
        ("pid".to_string(), std::process::id().to_string()),
        ("concurrency".to_string(), concurrency.to_string()),
        (
            "started".to_string(),
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        ),
    ])
}

/// Registers `spec` as micro service `<role>` on `client`.
pub async fn register(
    client: &async_nats::Client,
    spec: Spec,
) -> Result<Registration, async_nats::Error> {
    let mut metadata = base_metadata(spec.concurrency);
    metadata.extend(spec.metadata);
    let handler_stats = spec.stats.clone();
    let service = client
        .service_builder()
        .description(spec.description)
        .metadata(metadata.into_iter().collect::<HashMap<_, _>>())
        .stats_handler(move |_endpoint, _| handler_stats())
        .start(spec.role.name(), VERSION)
        .await?;
    let id = service.info().await.id;
    let mut endpoint = service
        .endpoint_builder()
        .name("stats")
        .add(stats_subject(spec.role, &id))
        .await?;
    let stats = spec.stats;
    let task = tokio::spawn(async move {
        while let Some(request) = endpoint.next().await {
            let body = serde_json::to_vec(&stats()).unwrap_or_default();
            let _ = request.respond(Ok(body.into())).await;
        }
    });
    tracing::info!(service = spec.role.name(), %id, "Registered as a NATS micro service.");
    Ok(Registration {
        service,
        id,
        endpoint: task,
    })
}

impl Registration {
    /// This instance's service id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Deregisters: stops answering `$SRV.*` and the stats endpoint.
    pub async fn stop(self) {
        let _ = self.service.stop().await;
        self.endpoint.abort();
        tracing::info!(id = %self.id, "Deregistered.");
    }
}
