//! `fleetbus gateway`: the gateway (TCP, and UDP where devices use it) as a program. Connects to the
//! cluster, ensures RAW exists, listens for devices, serves /metrics,
//! /healthz and /readyz, registers as the NATS service `gateway`, and
//! drains on SIGTERM.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use figment::providers::Serialized;
use figment::Figment;
use tokio_util::sync::CancellationToken;

use crate::config::{Effective, ProgramArgs};
use crate::exit::Exit;
use crate::gateway::{Gateway, GatewayConfig};
use crate::nats::{NatsArgs, Role};
use crate::ops::{self, health::Health};
use crate::registry;
use crate::topology::{self, Settings};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub program: ProgramArgs,
    /// Gateway id (default: the host name).
    #[arg(long)]
    pub id: Option<String>,
    /// Address the device listeners bind.
    #[arg(long)]
    pub bind: Option<IpAddr>,
    /// Added to every protocol's port (several gateways on one host).
    #[arg(long)]
    pub port_offset: Option<u16>,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long)]
    pub http: Option<SocketAddr>,
}

impl Args {
    /// The flags that were given, as the last configuration layer.
    fn flags(&self) -> Figment {
        let mut f = Figment::new();
        if let Some(id) = &self.id {
            f = f.merge(Serialized::default("id", id));
        }
        if let Some(bind) = &self.bind {
            f = f.merge(Serialized::default("bind", bind));
        }
        if let Some(offset) = self.port_offset {
            f = f.merge(Serialized::default("port_offset", offset));
        }
        if let Some(http) = &self.http {
            f = f.merge(Serialized::default("http", http));
        }
        if self.program.cfg.log_json {
            f = f.merge(Serialized::default("log_json", true));
        }
        f
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let file = args.program.cfg.config.as_deref();
    let config = GatewayConfig::load(file, args.flags())?;
    let settings = Settings::load(file)?;
    let nats = args.program.nats.layered(file)?;
    if args.program.cfg.print_config {
        Effective::new()
            .table("gateway", &config)?
            .table("topology", &settings)?
            .table("nats", &nats.effective())?
            .print()?;
        return Ok(Exit::Ok.into());
    }
    ops::logging::init(config.log_json);
    let runtime = crate::cli::service_runtime()?;
    runtime.block_on(serve(nats, config, settings))
}

async fn serve(
    nats: NatsArgs,
    config: GatewayConfig,
    settings: Settings,
) -> anyhow::Result<ExitCode> {
    let health = Health::new();
    let stop_http = CancellationToken::new();
    let id = config.id.clone();
    let drain_delay = Duration::from_secs(config.drain_delay_secs);

    let files = ops::raise_open_files_limit().unwrap_or(0);
    let needed = (config.max_connections as u64).saturating_add(100);
    if files < needed {
        tracing::warn!(open_files = files, max_connections = config.max_connections,
            "The open-files limit is below max_connections: accepting will fail before the limit (raise the hard limit, e.g. LimitNOFILE in systemd).");
    }
    let nats = nats.config(Role::Gateway, format!("gateway-{id}"))?;
    let client = nats.connect().await?;
    let js = async_nats::jetstream::new(client.clone());
    topology::check(&js, &settings, Role::Gateway)
        .await
        .context("the streams and consumers the gateway uses are not all there")?;

    let gateway = Gateway::start(config.clone(), client.clone()).await?;
    let metrics = gateway.metrics.clone();
    let http = ops::http::serve(
        config.http,
        health.clone(),
        std::sync::Arc::new(move || metrics.render()),
        stop_http.clone(),
    )
    .await
    .with_context(|| format!("cannot serve /metrics on {}", config.http))?;
    tracing::info!(addr = %http, "Serving /metrics, /healthz and /readyz.");

    let listeners: Vec<String> = gateway
        .addrs
        .iter()
        .map(|(p, a)| format!("{p}={a}"))
        .chain(
            gateway
                .udp_addrs
                .iter()
                .map(|(p, a)| format!("{p}/udp={a}")),
        )
        .collect();
    let totals = gateway.metrics.clone();
    let service = registry::register(
        &client,
        registry::Spec {
            role: Role::Gateway,
            description: "fleetbus gateway: devices in over TCP and UDP, RAW out".into(),
            concurrency: config.max_connections,
            metadata: BTreeMap::from([
                ("gateway_id".to_string(), id.clone()),
                ("listeners".to_string(), listeners.join(",")),
            ]),
            stats: std::sync::Arc::new(move || {
                serde_json::to_value(totals.totals()).unwrap_or_default()
            }),
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("cannot register the gateway service: {e}"))?;

    // Ready while connected to NATS, RAW keeps what is stored (it has a
    // consumer) and the device registry has been read; a gateway that can
    // store nothing, or admit nobody, should not get new devices from a
    // load balancer.
    let watch = {
        let (health, client, kept) = (health.clone(), client.clone(), gateway.raw_interest());
        let admission = gateway.admission();
        tokio::spawn(async move {
            loop {
                let connected =
                    client.connection_state() == async_nats::connection::State::Connected;
                health.set_ready(connected && kept.is_kept() && admission.is_loaded());
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };
    tracing::info!(gateway = %id, "The gateway is up.");

    let signal = ops::signals::terminated().await?;
    tracing::info!(signal, "Stopping: readiness is now 503; draining.");
    health.start_draining();
    watch.abort();
    tokio::time::sleep(drain_delay).await;
    let left = gateway.shutdown().await;
    service.stop().await;
    client.flush().await.ok();
    stop_http.cancel();
    tracing::info!(connections_cut = left, "The gateway stopped.");
    Ok(if left == 0 { Exit::Ok } else { Exit::Unclean }.into())
}
