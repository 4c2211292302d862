//! `just bench`, connection scale: how many idle devices one gateway process
//! holds, and the resident memory each costs. See docs/performance.md.
//!
//! Starts a three-node cluster (the e2e harness) and one `fleetbus gateway`
//! process with only its Teltonika listener, then opens N device
//! connections to it, each a real session (IMEI login sent, its 0x01 answer
//! read), and keeps them idle. The client side is spread over the source
//! addresses 127.0.0.2, 127.0.0.3, … so the ephemeral ports of one address
//! never run out. Measured: every connection held (the gateway's
//! `fleetbus_gateway_connections_open` and each client socket), the
//! gateway's VmRSS before, at N/2 and at N, the bytes per connection, and a
//! fresh device's data frame acknowledged while the N are open.
//!
//! Both processes need N file descriptors and then some: the bench raises
//! its soft `RLIMIT_NOFILE` to the hard limit before it starts anything, so
//! the gateway (a child) inherits the raised limit.
//!
//! For a measured run the `fleetbus` binary is built first with the bench's
//! own profile and target directory (`cargo build --bin fleetbus`, a no-op
//! when it is up to date), so the figures are always those of the current
//! code; the smoke run uses the one `cargo test --workspace` built.
//! `FLEETBUS_BIN` overrides both.
//!
//! Options: `--connections N` (or `FLEETBUS_BENCH_CONNECTIONS`; default
//! 19,000), `--per-source N` (connections per source address; 5,000).
//! `cargo test --all-targets` runs this in test mode (no `--bench`
//! argument): 200 connections over two source addresses, checking the same
//! things without the figures, so the benchmark cannot rot.

use fleetbus_wire::names;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use fleetbus_codec::{teltonika, Position, Protocol};
use fleetbus_e2e::bench::Argv;
use fleetbus_e2e::{http, wait_for, Cluster, Proc, Role, Spec};
use fleetbus_services::topology::{self, Scope, Settings};
use futures::StreamExt;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// The target: 100,000 connections in under 1.6 GiB.
const TARGET_BYTES: f64 = 16.0 * 1024.0;
/// Logins in flight at once while connecting (below the listener's backlog).
const CONCURRENCY: usize = 256;
/// File descriptors each process needs besides the N sockets (listeners,
/// the NATS connection, logs, the runtime).
const FD_MARGIN: libc::rlim_t = 200;
/// How long one connect + login may take.
const LOGIN_WAIT: Duration = Duration::from_secs(30);

struct Args {
    full: bool,
    connections: usize,
    per_source: usize,
}

fn args() -> anyhow::Result<Args> {
    let argv = Argv::from_env();
    let full = argv.full();
    let from_env = match std::env::var("FLEETBUS_BENCH_CONNECTIONS") {
        Ok(v) => Some(
            v.parse()
                .with_context(|| format!("FLEETBUS_BENCH_CONNECTIONS={v}: not a number"))?,
        ),
        Err(_) => None,
    };
    let connections = argv
        .value("--connections")?
        .or(from_env)
        .unwrap_or(if full { 19_000 } else { 200 });
    let per_source = argv
        .value("--per-source")?
        .unwrap_or(if full { 5_000 } else { 100 });
    ensure!(connections > 0, "--connections must be > 0");
    ensure!(
        (1..=20_000).contains(&per_source),
        "--per-source must be 1..=20000 (ephemeral ports of one address)"
    );
    Ok(Args {
        full,
        connections,
        per_source,
    })
}

/// The `fleetbus` binary of this profile, built first if needed.
fn fleetbus_binary() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("FLEETBUS_BIN") {
        return Ok(PathBuf::from(p));
    }
    // This bench runs as <target>/<profile dir>/deps/connections-<hash>.
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .context("unexpected bench executable path")?;
    let target_dir = profile_dir.parent().context("no target directory")?;
    let profile = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .context("no profile directory")?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.args([
        "build",
        "--quiet",
        "--locked",
        "-p",
        "fleetbus-services",
        "--bin",
        "fleetbus",
    ]);
    match profile {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    let status = cmd
        .env("CARGO_TARGET_DIR", target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .context("cannot run cargo to build fleetbus")?;
    ensure!(status.success(), "cargo build --bin fleetbus failed");
    let bin = profile_dir.join("fleetbus");
    ensure!(bin.is_file(), "{} was not built", bin.display());
    Ok(bin)
}

/// VmRSS of `pid`, in bytes.
fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS in /proc/<pid>/status")?;
    Ok(kib * 1024)
}

/// The fields of every JSON log line of `proc` whose message is `message`.
fn log_fields(proc: &Proc, message: &str) -> Vec<Value> {
    proc.log()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["fields"]["message"] == message)
        .map(|v| v["fields"].clone())
        .collect()
}

/// A gateway process serving only Teltonika.
struct Gateway {
    proc: Proc,
    pid: u32,
    teltonika: SocketAddr,
    http_port: u16,
}

impl Gateway {
    async fn start(
        bin: &Path,
        cluster: &Cluster,
        dir: &Path,
        max_connections: usize,
    ) -> anyhow::Result<Self> {
        // Thousands of logged-in, silent connections per source address:
        // what the per-source limits and the data timeout exist to refuse
        // from a real host, and what this bench measures the memory of.
        // Every device admitted (`open`): the memory measured is per
        // connection; a registry costs per registered device
        // (docs/gateway.md, "Admission"), connected or not.
        let mut toml = format!(
            "[gateway]\nid = \"gw-bench\"\nbind = \"127.0.0.1\"\nhttp = \"127.0.0.1:0\"\n\
             max_connections = {max_connections}\nidle_timeout_secs = 86400\n\
             max_connections_per_source = 0\naccept_rate_per_source = 0\ndata_timeout_secs = 0\n\
             admission = \"open\"\n"
        );
        for p in Protocol::ALL {
            let enabled = *p == Protocol::Teltonika;
            toml.push_str(&format!(
                "[gateway.protocols.{}]\nenabled = {enabled}\nport = 0\n",
                p.name()
            ));
        }
        let conf = dir.join("gateway.toml");
        std::fs::write(&conf, toml)?;
        let spec = Spec::new("gateway", bin)
            .args(["gateway", "--log-json", "--config"])
            .arg(conf.to_string_lossy().to_string())
            .env("RUST_LOG", "warn,fleetbus_services=info")
            .envs(cluster.service_env(Role::Gateway));
        let proc = Proc::start(spec, dir)?;
        let pid = proc.pid().context("gateway did not start")?;
        let http_port: u16 = wait_for(
            "the gateway's operations endpoint",
            Duration::from_secs(60),
            || async {
                Ok(log_fields(&proc, "Serving /metrics, /healthz and /readyz.")
                    .first()
                    .and_then(|f| f["addr"].as_str()?.rsplit(':').next()?.parse().ok()))
            },
        )
        .await
        .with_context(|| proc.log_tail(20))?;
        let teltonika: SocketAddr = log_fields(&proc, "Listening for devices.")
            .into_iter()
            .find(|f| f["protocol"] == "teltonika")
            .and_then(|f| f["addr"].as_str()?.parse().ok())
            .context("no teltonika listener in the gateway's log")?;
        wait_for("the gateway ready", Duration::from_secs(30), || async {
            Ok((http::get(http_port, "/readyz").await?.0 == 200).then_some(()))
        })
        .await?;
        Ok(Gateway {
            proc,
            pid,
            teltonika,
            http_port,
        })
    }

    /// `fleetbus_gateway_connections_open{protocol="teltonika"}`.
    async fn open(&self) -> anyhow::Result<u64> {
        let (code, body) = http::get(self.http_port, "/metrics").await?;
        ensure!(code == 200, "/metrics answered {code}");
        let value = body
            .lines()
            .find_map(|l| {
                l.strip_prefix("fleetbus_gateway_connections_open{protocol=\"teltonika\"} ")
            })
            .map(|v| v.trim().parse::<f64>())
            .transpose()?
            .unwrap_or(0.0);
        Ok(value as u64)
    }

    /// Waits until the gateway counts exactly `n` open connections.
    async fn wait_open(&self, n: usize) -> anyhow::Result<()> {
        wait_for(
            &format!("{n} connections open at the gateway"),
            Duration::from_secs(120),
            || async {
                let open = self.open().await?;
                if open == n as u64 {
                    Ok(Some(()))
                } else {
                    bail!("{open} open")
                }
            },
        )
        .await
    }

    /// VmRSS once the process has settled.
    async fn rss(&self) -> anyhow::Result<u64> {
        tokio::time::sleep(Duration::from_secs(1)).await;
        rss_bytes(self.pid)
    }
}

/// A 15-digit IMEI per connection number.
fn imei(i: usize) -> String {
    format!("35630704{:07}", i % 10_000_000)
}

/// Connects from `source` and logs in as device `i`: a real session.
async fn login(
    target: SocketAddr,
    source: Option<Ipv4Addr>,
    i: usize,
) -> anyhow::Result<TcpStream> {
    let session = async {
        let mut stream = match source {
            Some(ip) => {
                let socket = TcpSocket::new_v4()?;
                socket.bind(SocketAddr::from((ip, 0)))?;
                socket.connect(target).await?
            }
            None => TcpStream::connect(target).await?,
        };
        stream
            .write_all(&teltonika::encode::login(&imei(i)))
            .await?;
        let mut answer = [0u8; 1];
        stream.read_exact(&mut answer).await?;
        ensure!(answer == [1], "login of device {i} answered {answer:?}");
        anyhow::Ok(stream)
    };
    tokio::time::timeout(LOGIN_WAIT, session)
        .await
        .with_context(|| format!("login of device {i} timed out"))?
        .with_context(|| format!("device {i} from {source:?}"))
}

/// The source address of connection `i`: 127.0.0.2, 127.0.0.3, …
fn source(i: usize, per_source: usize) -> anyhow::Result<Ipv4Addr> {
    let k = i / per_source;
    let n = 2 + k;
    ensure!(n < 65_536 * 255, "too many source addresses");
    Ok(Ipv4Addr::new(127, (n >> 16) as u8, (n >> 8) as u8, n as u8))
}

/// Opens the connections numbered `range`, [`CONCURRENCY`] at a time, into
/// `held`.
async fn open_range(
    target: SocketAddr,
    range: std::ops::Range<usize>,
    per_source: usize,
    held: &mut Vec<TcpStream>,
    progress: bool,
) -> anyhow::Result<()> {
    let mut logins = futures::stream::iter(range)
        .map(|i| async move { login(target, Some(source(i, per_source)?), i).await })
        .buffer_unordered(CONCURRENCY);
    while let Some(stream) = logins.next().await {
        held.push(stream?);
        if progress && held.len().is_multiple_of(5_000) {
            eprintln!("  {} connections open", held.len());
        }
    }
    Ok(())
}

/// How many client sockets the gateway closed (read 0 or errored).
fn closed_by_gateway(held: &[TcpStream]) -> usize {
    let mut buf = [0u8; 16];
    held.iter()
        .filter(|s| match s.try_read(&mut buf) {
            Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
            Ok(_) => true, // EOF, or bytes nobody asked for
        })
        .count()
}

/// A new device sends one data frame and waits for its ack (the frame goes
/// through RAW's quorum); returns how long the ack took.
async fn fresh_device(target: SocketAddr) -> anyhow::Result<Duration> {
    let i = 9_999_999;
    let mut device = login(target, None, i).await?;
    let mut p = Position::new(&imei(i), "teltonika", chrono::Utc::now());
    p.valid = true;
    let frame = teltonika::encode::codec8(&[p])?;
    let start = Instant::now();
    device.write_all(&frame).await?;
    let mut ack = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(30), device.read_exact(&mut ack))
        .await
        .context("no ack within 30 s")??;
    let took = start.elapsed();
    ensure!(ack == teltonika::encode::ack(1), "ack {ack:?}");
    Ok(took)
}

fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / (1024.0 * 1024.0))
}

fn row(what: &str, value: String, note: &str) {
    println!("| {what:<44} | {value:>12} | {note}");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    let nofile = fleetbus_services::ops::raise_open_files_limit()?;
    let need = a.connections as libc::rlim_t + FD_MARGIN;
    ensure!(
        need <= nofile,
        "{} connections need about {need} open files in this process and in the \
         gateway, but the limit is {nofile} (raise the hard limit, or pass a smaller \
         --connections)",
        a.connections
    );
    // The smoke run uses the binary `cargo test --workspace` just built; a
    // measured run builds it first so the figures are the current code's.
    let bin = if a.full {
        fleetbus_binary()?
    } else {
        fleetbus_e2e::fleetbus_bin()?
    };
    let cluster = Cluster::start().await?;
    let js = async_nats::jetstream::new(cluster.connect(Role::Admin).await?);
    topology::provision(
        &js,
        &Settings::default(),
        &Scope::all(),
        Duration::from_secs(60),
    )
    .await?;
    cluster.wait_stream_ready(names::RAW).await?;
    let dir = tempfile::tempdir()?;
    let gw = Gateway::start(&bin, &cluster, dir.path(), a.connections + 1_000).await?;

    // Warm up every path once (a session, a stored frame, /metrics), so
    // "before" includes what any first connection allocates for good.
    fresh_device(gw.teltonika).await?;
    gw.wait_open(0).await?;
    let before = gw.rss().await?;

    let n = a.connections;
    let half = n / 2;
    let sources = n.div_ceil(a.per_source);
    if a.full {
        eprintln!(
            "opening {n} Teltonika sessions from {sources} source addresses to {}",
            gw.teltonika
        );
    }
    let mut held = Vec::with_capacity(n);
    let start = Instant::now();
    open_range(gw.teltonika, 0..half, a.per_source, &mut held, a.full).await?;
    let first_half = start.elapsed();
    gw.wait_open(half).await?;
    let at_half = gw.rss().await?;
    let start = Instant::now();
    open_range(gw.teltonika, half..n, a.per_source, &mut held, a.full).await?;
    let opening = first_half + start.elapsed();
    gw.wait_open(n).await?;
    let after = gw.rss().await?;

    // While all N are open: a fresh device is still served.
    let ack = fresh_device(gw.teltonika).await?;
    gw.wait_open(n).await?;
    let closed = closed_by_gateway(&held);
    let open = gw.open().await?;
    ensure!(
        closed == 0 && open == n as u64,
        "not every connection was held: gateway counts {open} of {n}, {closed} closed"
    );

    let per_conn = after.saturating_sub(before) as f64 / n as f64;
    // n - half >= 1 for any n >= 1.
    let slope = after.saturating_sub(at_half) as f64 / (n - half) as f64;
    if !a.full {
        ensure!(
            !gw.proc.log().contains("\"level\":\"ERROR\""),
            "{}",
            gw.proc.log_tail(20)
        );
        println!(
            "connections bench smoke run ok: {n} sessions held, fresh device acked \
             (run `just bench` for figures)"
        );
        return Ok(());
    }

    println!();
    println!(
        "connection-scale benchmark: one gateway process, {n} idle Teltonika sessions \
         from {sources} source addresses"
    );
    println!("| {:<44} | {:>12} | note", "measure", "value");
    row(
        "connections held (gateway, clients)",
        format!("{open}"),
        "all logged in, none closed",
    );
    row(
        "sessions opened per second",
        format!("{:.0}", n as f64 / opening.as_secs_f64()),
        &format!("connect + login + answer, {CONCURRENCY} at once"),
    );
    row(
        "gateway VmRSS before (MiB)",
        mib(before),
        "after one warm-up session",
    );
    row(&format!("gateway VmRSS at {half} (MiB)"), mib(at_half), "");
    row(&format!("gateway VmRSS at {n} (MiB)"), mib(after), "");
    row(
        "RSS per connection (bytes)",
        format!("{per_conn:.0}"),
        "(after - before) / N",
    );
    row(
        "RSS per connection, N/2 → N (bytes)",
        format!("{slope:.0}"),
        "marginal cost",
    );
    row(
        "fresh device's ack with N open (ms)",
        format!("{:.1}", ack.as_secs_f64() * 1000.0),
        "data frame stored in RAW (R3)",
    );
    row(
        "100,000 connections would take (MiB)",
        format!("{:.0}", per_conn * 100_000.0 / (1024.0 * 1024.0)),
        "at the per-connection figure",
    );
    println!(
        "per connection = {:.1} KiB, {:.2} of the 16 KiB target ({})",
        per_conn / 1024.0,
        per_conn / TARGET_BYTES,
        if per_conn < TARGET_BYTES {
            "met"
        } else {
            "NOT met"
        }
    );
    drop(held);
    Ok(())
}
