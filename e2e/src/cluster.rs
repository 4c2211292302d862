//! A real three-node nats-server cluster in a temporary directory.

use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use async_nats::jetstream;
use async_nats::ServerAddr;
use serde_json::Value;
use tempfile::TempDir;

use crate::conf::{self, NodeConf};
use crate::creds::{Credentials, Login, Role};
use crate::{http, server, slots};

/// How a cluster is started.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// Number of nodes (3 unless a test needs otherwise).
    pub nodes: usize,
    /// How long [`Cluster::start`] and the other waits may take before
    /// failing. Leader elections on a loaded two-core machine are slow.
    pub ready_timeout: Duration,
    /// How long to wait for a free cluster slot (see `slots`).
    pub slot_timeout: Duration,
    /// `lame_duck_duration` of the nodes (nats-server's minimum is 30 s).
    pub lame_duck_duration: Duration,
    /// JetStream `sync_interval` of the nodes (`conf::SYNC_INTERVAL`, or
    /// `always` to fsync before every PubAck).
    pub sync_interval: String,
    /// Run node `i` inside host `i` of this network lab (bound to its
    /// cluster address) instead of on loopback: for partitions.
    pub lab: Option<std::sync::Arc<crate::Lab>>,
    /// TLS everywhere: a CA made for this cluster, certificates for every
    /// node (clients and routes, both verified), a login on routes, and a
    /// client certificate the fleetbus programs of the test use.
    pub tls: bool,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            nodes: 3,
            ready_timeout: Duration::from_secs(90),
            slot_timeout: Duration::from_secs(600),
            lame_duck_duration: Duration::from_secs(30),
            sync_interval: conf::SYNC_INTERVAL.into(),
            lab: None,
            tls: false,
        }
    }
}

/// The certificates of a TLS cluster ([`ClusterOptions::tls`]).
pub struct ClusterTls {
    /// The CA that signed every node's and client's certificate.
    pub ca: crate::pki::Ca,
    pub ca_file: PathBuf,
    /// The certificate every fleetbus program of the test shows.
    pub client: crate::pki::Files,
    /// The routes' login.
    pub route_user: String,
    pub route_password: String,
}

struct Node {
    conf: NodeConf,
    conf_path: PathBuf,
    log_path: PathBuf,
    child: Option<Child>,
    /// How the last process of this node ended, when it ended by itself.
    exit: Option<std::process::ExitStatus>,
}

/// A running cluster. Every node process is killed and the directory removed
/// when it is dropped, also when the test panics (the node logs are then
/// printed). Set `FLEETBUS_E2E_KEEP=1` to keep the directory.
pub struct Cluster {
    bin: PathBuf,
    dir: TempDir,
    creds: Credentials,
    nodes: Vec<Node>,
    tls: Option<ClusterTls>,
    opts: ClusterOptions,
    _slot: slots::Slot,
}

impl Cluster {
    /// Starts a three-node cluster and waits until it has a JetStream meta
    /// leader and every node reports healthy.
    pub async fn start() -> anyhow::Result<Cluster> {
        Cluster::start_with(ClusterOptions::default()).await
    }

    pub async fn start_with(opts: ClusterOptions) -> anyhow::Result<Cluster> {
        let bin = server::nats_server()?;
        let slot = slots::acquire(opts.slot_timeout).await?;
        let ports = slot.ports(opts.nodes * 3)?;
        let dir = tempfile::Builder::new().prefix("fleetbus-e2e-").tempdir()?;
        std::fs::write(dir.path().join("accounts.conf"), conf::ACCOUNTS_TEMPLATE)?;
        let route_ports: Vec<u16> = (0..opts.nodes).map(|i| ports[i * 3 + 1]).collect();
        let host = |i: usize| match &opts.lab {
            Some(lab) => lab.cluster_ip(i),
            None => "127.0.0.1".to_string(),
        };
        let route_hosts: Vec<String> = (0..opts.nodes).map(host).collect();
        let tls = if opts.tls {
            let ca = crate::pki::Ca::new("fleetbus test cluster CA")?;
            let ca_file = ca.write(&dir.path().join("ca.pem"))?;
            let client = ca
                .issue("fleetbus programs", &[])?
                .write(dir.path(), "client")?;
            Some(ClusterTls {
                ca,
                ca_file,
                client,
                route_user: "route".into(),
                route_password: crate::creds::random_password(),
            })
        } else {
            None
        };
        let mut nodes = Vec::new();
        for i in 0..opts.nodes {
            let name = format!("n{}", i + 1);
            let node_tls = match &tls {
                Some(t) => {
                    let files =
                        t.ca.issue(&name, &[&host(i), "localhost"])?
                            .write(dir.path(), &name)?;
                    Some(conf::NodeTls {
                        cert_file: files.cert.display().to_string(),
                        key_file: files.key.display().to_string(),
                        ca_file: t.ca_file.display().to_string(),
                        route_user: t.route_user.clone(),
                        route_password: t.route_password.clone(),
                    })
                }
                None => None,
            };
            let node = NodeConf {
                name: name.clone(),
                host: host(i),
                client_port: ports[i * 3],
                cluster_port: ports[i * 3 + 1],
                http_port: ports[i * 3 + 2],
                route_ports: route_ports.clone(),
                route_hosts: route_hosts.clone(),
                store_dir: dir.path().join(&name).display().to_string(),
                lame_duck_grace_period: "1s".into(),
                lame_duck_duration: format!("{}s", opts.lame_duck_duration.as_secs().max(30)),
                sync_interval: opts.sync_interval.clone(),
                comment: "Node {name} of a fleetbus test cluster (fleetbus_e2e).".into(),
                tls: node_tls,
            };
            let conf_path = dir.path().join(format!("{name}.conf"));
            std::fs::write(&conf_path, conf::render_node(&node))?;
            let log_path = dir.path().join(format!("{name}.log"));
            nodes.push(Node {
                conf: node,
                conf_path,
                log_path,
                child: None,
                exit: None,
            });
        }
        let mut cluster = Cluster {
            bin,
            dir,
            creds: Credentials::generate(),
            nodes,
            tls,
            opts,
            _slot: slot,
        };
        cluster.start_all()?;
        cluster.wait_ready().await?;
        Ok(cluster)
    }

    // ---- addresses and logins -------------------------------------------------

    /// `count` consecutive free ports from this cluster's own port range, for
    /// the processes a test runs beside it (gateways): no other harness
    /// cluster uses them. Ask while every node runs, so that no node's port
    /// looks free.
    pub fn spare_ports(&self, count: usize) -> anyhow::Result<Vec<u16>> {
        self._slot.ports(count)
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The temporary directory holding configurations, stores and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The nats-server binary in use.
    pub fn nats_server(&self) -> &Path {
        &self.bin
    }

    /// `server_name` of node `i` (`n1`, `n2`, …).
    pub fn node_name(&self, i: usize) -> &str {
        &self.nodes[i].conf.name
    }

    /// Index of the node called `name`.
    pub fn node_index(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.conf.name == name)
    }

    /// `nats://127.0.0.1:<port>` of every node.
    pub fn client_urls(&self) -> Vec<String> {
        (0..self.nodes.len()).map(|i| self.client_url(i)).collect()
    }

    pub fn client_url(&self, i: usize) -> String {
        let conf = &self.nodes[i].conf;
        let scheme = if self.tls.is_some() { "tls" } else { "nats" };
        format!("{scheme}://{}:{}", conf.host, conf.client_port)
    }

    /// The certificates, when the cluster runs TLS.
    pub fn tls(&self) -> Option<&ClusterTls> {
        self.tls.as_ref()
    }

    /// Node `i`'s configuration file.
    pub fn conf_path(&self, i: usize) -> &Path {
        &self.nodes[i].conf_path
    }

    /// `http://127.0.0.1:<port>` of node `i`'s monitoring endpoint.
    pub fn monitor_url(&self, i: usize) -> String {
        let conf = &self.nodes[i].conf;
        format!("http://{}:{}", conf.host, conf.http_port)
    }

    pub fn monitor_port(&self, i: usize) -> u16 {
        self.nodes[i].conf.http_port
    }

    /// The login of `role` (the permissions are those of nats-conf/accounts.conf).
    pub fn login(&self, role: Role) -> &Login {
        self.creds.login(role)
    }

    /// Environment for a fleetbus process of `role`: `FLEETBUS_NATS_URL`
    /// (every node), `FLEETBUS_NATS_USER`, `FLEETBUS_NATS_PASSWORD`.
    pub fn service_env(&self, role: Role) -> Vec<(String, String)> {
        let login = self.login(role);
        let mut env = vec![
            ("FLEETBUS_NATS_URL".into(), self.client_urls().join(",")),
            ("FLEETBUS_NATS_USER".into(), login.user.clone()),
            ("FLEETBUS_NATS_PASSWORD".into(), login.password.clone()),
        ];
        if let Some(tls) = &self.tls {
            let path = |p: &Path| p.display().to_string();
            env.push(("FLEETBUS_NATS_TLS_CA".into(), path(&tls.ca_file)));
            env.push(("FLEETBUS_NATS_TLS_CERT".into(), path(&tls.client.cert)));
            env.push(("FLEETBUS_NATS_TLS_KEY".into(), path(&tls.client.key)));
        }
        env
    }

    /// Connection options for `role`: its login and inbox prefix.
    pub fn connect_options(&self, role: Role) -> async_nats::ConnectOptions {
        let login = self.login(role);
        let mut opts = async_nats::ConnectOptions::with_user_and_password(
            login.user.clone(),
            login.password.clone(),
        )
        .name(format!("fleetbus-e2e-{role}"))
        .connection_timeout(Duration::from_secs(3));
        if let Some(prefix) = role.inbox_prefix() {
            opts = opts.custom_inbox_prefix(prefix);
        }
        if let Some(tls) = &self.tls {
            opts = opts
                .require_tls(true)
                .add_root_certificates(tls.ca_file.clone())
                .add_client_certificate(tls.client.cert.clone(), tls.client.key.clone());
        }
        opts
    }

    /// A client of `role` that knows every node (and fails over between them).
    pub async fn connect(&self, role: Role) -> anyhow::Result<async_nats::Client> {
        let addrs = self
            .client_urls()
            .iter()
            .map(|u| u.parse::<ServerAddr>())
            .collect::<Result<Vec<_>, _>>()?;
        self.connect_options(role)
            .connect(addrs)
            .await
            .with_context(|| format!("cannot connect as {role}"))
    }

    /// A client of `role` connected to node `i` first.
    pub async fn connect_to(&self, i: usize, role: Role) -> anyhow::Result<async_nats::Client> {
        let url = self.client_url(i);
        self.connect_options(role)
            .connect(url.as_str())
            .await
            .with_context(|| format!("cannot connect to {url}"))
    }

    // ---- processes --------------------------------------------------------------

    /// The process id of node `i`, while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.nodes[i].child.as_ref().map(Child::id)
    }

    /// Whether node `i`'s process is running.
    pub fn is_running(&mut self, i: usize) -> bool {
        let node = &mut self.nodes[i];
        match node.child.as_mut() {
            Some(child) => match child.try_wait() {
                Ok(None) => true,
                other => {
                    node.exit = other.ok().flatten();
                    node.child = None;
                    false
                }
            },
            None => false,
        }
    }

    /// Indices of the running nodes.
    pub fn running(&mut self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.is_running(i))
            .collect()
    }

    /// Starts node `i` (with its old ports and store) unless it runs. Does not
    /// wait: follow with [`Cluster::wait_ready`].
    pub fn start_node(&mut self, i: usize) -> anyhow::Result<()> {
        if self.is_running(i) {
            return Ok(());
        }
        let node = &self.nodes[i];
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log_path)?;
        let mut cmd = match &self.opts.lab {
            Some(lab) => lab.command(i, &self.bin),
            None => Command::new(&self.bin),
        };
        cmd.arg("-c")
            .arg(&node.conf_path)
            .current_dir(self.dir.path())
            .envs(self.creds.server_env())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // If the test process dies without running destructors (SIGKILL,
        // abort), the kernel kills the node too: no orphan nats-server.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", self.bin.display()))?;
        self.nodes[i].child = Some(child);
        self.nodes[i].exit = None;
        Ok(())
    }

    /// Starts every node that is not running.
    pub fn start_all(&mut self) -> anyhow::Result<()> {
        for i in 0..self.nodes.len() {
            self.start_node(i)?;
        }
        Ok(())
    }

    /// `kill -9` of node `i`; returns when the process is gone.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `kill -9` of every node.
    pub fn kill_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }

    fn signal(&mut self, i: usize, signal: libc::c_int) -> bool {
        if !self.is_running(i) {
            return false;
        }
        let pid = self.nodes[i]
            .child
            .as_ref()
            .map(|c| c.id())
            .expect("running");
        // SAFETY: plain kill(2) of our own child.
        unsafe { libc::kill(pid as libc::pid_t, signal) == 0 }
    }

    async fn wait_exit(&mut self, nodes: &[usize], timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if nodes.iter().all(|&i| !self.is_running(i)) {
                return;
            }
            if Instant::now() > deadline {
                for &i in nodes {
                    self.kill(i);
                }
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGSTOP of node `i`: paused, not dead — its connections stay open,
    /// its peers only notice by silence.
    pub fn pause(&mut self, i: usize) {
        self.signal(i, libc::SIGSTOP);
    }

    /// SIGCONT after [`Cluster::pause`].
    pub fn resume(&mut self, i: usize) {
        self.signal(i, libc::SIGCONT);
    }

    /// SIGTERM to node `i` (a graceful stop); returns when it has exited
    /// (after 30 s it is killed).
    pub async fn terminate(&mut self, i: usize) {
        if self.signal(i, libc::SIGTERM) {
            self.wait_exit(&[i], Duration::from_secs(30)).await;
        }
    }

    /// SIGTERM to every node at once; returns when all have exited.
    pub async fn terminate_all(&mut self) {
        let all: Vec<usize> = (0..self.nodes.len()).collect();
        for &i in &all {
            self.signal(i, libc::SIGTERM);
        }
        self.wait_exit(&all, Duration::from_secs(30)).await;
    }

    /// Lame-duck mode for node `i` (SIGUSR2): it hands over its leaderships,
    /// stops accepting clients, closes the existing ones over the lame-duck
    /// duration and exits. Returns once it has exited.
    pub async fn lame_duck(&mut self, i: usize) {
        if self.signal(i, libc::SIGUSR2) {
            let timeout = self.opts.lame_duck_duration + Duration::from_secs(30);
            self.wait_exit(&[i], timeout).await;
        }
    }

    /// Graceful stop of node `i` (if running), start, and wait until the
    /// cluster is ready again.
    pub async fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        self.terminate(i).await;
        self.start_node(i)?;
        self.wait_ready().await
    }

    /// Graceful stop of every node, start, and wait until ready.
    pub async fn restart_all(&mut self) -> anyhow::Result<()> {
        self.terminate_all().await;
        self.start_all()?;
        self.wait_ready().await
    }

    // ---- readiness ---------------------------------------------------------------

    /// The meta leader as node `i` sees it (`None` while there is none).
    pub async fn meta_leader_seen_by(&self, i: usize) -> anyhow::Result<Option<String>> {
        let (status, body) = http::get_at(
            &self.nodes[i].conf.host,
            self.nodes[i].conf.http_port,
            "/jsz",
        )
        .await?;
        if status != 200 {
            bail!("/jsz answered {status}");
        }
        let jsz: Value = serde_json::from_str(&body)?;
        Ok(jsz["meta_cluster"]["leader"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string))
    }

    /// Waits until every running node answers `/healthz` (JetStream enabled
    /// and current with the meta leader, its streams and consumers current)
    /// and all running nodes agree on a meta leader that is running.
    pub async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let timeout = self.opts.ready_timeout;
        let deadline = Instant::now() + timeout;
        loop {
            let last = match self.readiness().await {
                Ok(()) => return Ok(()),
                Err(e) => format!("{e:#}"),
            };
            if Instant::now() > deadline {
                bail!(
                    "cluster not ready after {timeout:?}: {last}\n{}",
                    self.log_tails(15)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn readiness(&mut self) -> anyhow::Result<()> {
        let running = self.running();
        if running.is_empty() {
            bail!("no node running");
        }
        for node in &self.nodes {
            if let Some(status) = node.exit {
                bail!("{} exited by itself ({status})", node.conf.name);
            }
        }
        let mut leaders = Vec::new();
        for &i in &running {
            let name = self.node_name(i).to_string();
            let (status, body) = http::get_at(
                &self.nodes[i].conf.host,
                self.nodes[i].conf.http_port,
                "/healthz",
            )
            .await
            .with_context(|| name.clone())?;
            if status != 200 {
                bail!("{name} /healthz {status}: {}", body.trim());
            }
            leaders.push(
                self.meta_leader_seen_by(i)
                    .await?
                    .ok_or_else(|| anyhow!("{name} sees no meta leader"))?,
            );
        }
        let leader = &leaders[0];
        if leaders.iter().any(|l| l != leader) {
            bail!("nodes disagree on the meta leader: {leaders:?}");
        }
        match self.node_index(leader) {
            Some(i) if running.contains(&i) => Ok(()),
            _ => bail!("meta leader {leader} is not running"),
        }
    }

    /// Waits until `stream` has a leader and every replica is current.
    /// Returns the stream's info.
    pub async fn wait_stream_ready(&self, stream: &str) -> anyhow::Result<jetstream::stream::Info> {
        self.wait_stream(stream, true).await
    }

    /// The name of the node leading `stream`, waiting for one if needed
    /// (followers may be down or behind).
    pub async fn stream_leader(&self, stream: &str) -> anyhow::Result<String> {
        let info = self.wait_stream(stream, false).await?;
        Ok(info
            .cluster
            .and_then(|c| c.leader)
            .expect("waited for a leader"))
    }

    async fn wait_stream(
        &self,
        stream: &str,
        all_current: bool,
    ) -> anyhow::Result<jetstream::stream::Info> {
        let timeout = self.opts.ready_timeout;
        let deadline = Instant::now() + timeout;
        let mut js = jetstream::new(self.connect(Role::Admin).await?);
        js.set_timeout(Duration::from_secs(2));
        loop {
            let last = match js.get_stream(stream).await {
                Ok(s) => match stream_ready(s.cached_info(), all_current) {
                    Ok(()) => return Ok(s.cached_info().clone()),
                    Err(e) => e,
                },
                Err(e) => e.to_string(),
            };
            if Instant::now() > deadline {
                bail!("stream {stream} not ready after {timeout:?}: {last}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// What the durables of `stage` still have to do ([`stage_backlog`]).
    pub async fn stage_backlog(
        &self,
        stage: fleetbus_wire::names::Durable,
    ) -> anyhow::Result<(u64, u64)> {
        let js = jetstream::new(self.connect(Role::Admin).await?);
        stage_backlog(&js, stage).await
    }

    /// Waits until the durables of `stage` have acknowledged everything
    /// their stream holds.
    pub async fn wait_stage_drained(
        &self,
        stage: fleetbus_wire::names::Durable,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        crate::wait_for(stage.name(), timeout, || async {
            let (pending, unacked) = self.stage_backlog(stage).await?;
            Ok((pending == 0 && unacked == 0).then_some(()))
        })
        .await
    }

    /// Every message stored in `stream`, in order (read as admin, one
    /// request per sequence number; meant for small test streams).
    ///
    /// A healed or restarted node may still call an election after the
    /// stream looked ready, and the leader then answers "temporarily
    /// unavailable" (503) for a moment: each read is retried for up to
    /// 30 s before it counts as an error.
    pub async fn stream_messages(
        &self,
        stream: &str,
    ) -> anyhow::Result<Vec<jetstream::message::StreamMessage>> {
        const WAIT: Duration = Duration::from_secs(30);
        let js = jetstream::new(self.connect(Role::Admin).await?);
        let s = until_available(WAIT, || js.get_stream(stream))
            .await
            .with_context(|| format!("{stream} info"))?;
        let state = s.cached_info().state.clone();
        let mut out = Vec::new();
        if state.messages == 0 {
            return Ok(out);
        }
        for seq in state.first_sequence..=state.last_sequence {
            match until_available(WAIT, || s.get_raw_message(seq)).await {
                Ok(m) => out.push(m),
                Err(e) if e.to_string().contains("not found") => {}
                Err(e) => return Err(e).with_context(|| format!("{stream} #{seq}")),
            }
        }
        Ok(out)
    }

    // ---- diagnostics -------------------------------------------------------------

    /// Node `i`'s log so far.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.nodes[i].log_path).unwrap_or_default()
    }

    /// The last `lines` lines of every node's log.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut out = String::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let log = self.log(i);
            let all: Vec<&str> = log.lines().collect();
            out.push_str(&format!(
                "--- {} ({}) ---\n",
                node.conf.name,
                node.log_path.display()
            ));
            for line in &all[all.len().saturating_sub(lines)..] {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

/// Calls `f` again while it fails with "temporarily unavailable" (503,
/// an election under way) or times out, for up to `wait`; any other
/// result, and the last error after `wait`, is returned as it is.
async fn until_available<
    T,
    E: std::fmt::Display,
    Fut: std::future::Future<Output = Result<T, E>>,
>(
    wait: Duration,
    mut f: impl FnMut() -> Fut,
) -> Result<T, E> {
    let deadline = Instant::now() + wait;
    loop {
        match f().await {
            Err(e) if Instant::now() < deadline && passing(&e.to_string()) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => return other,
        }
    }
}

/// Whether an error text names a state an election ends.
fn passing(error: &str) -> bool {
    [
        "code 503",
        "temporarily unavailable",
        "timed out",
        "no responders",
    ]
    .iter()
    .any(|m| error.contains(m))
}

/// What the durables of `stage` (every partition's, and a shared one of
/// the layout before partitions) still have to do: (messages not yet
/// delivered, delivered and not acknowledged), summed. `js` must see the
/// stream's consumers (admin).
pub async fn stage_backlog(
    js: &jetstream::Context,
    stage: fleetbus_wire::names::Durable,
) -> anyhow::Result<(u64, u64)> {
    use futures::TryStreamExt;
    let stream = js.get_stream_no_info(stage.stream().name()).await?;
    let infos: Vec<jetstream::consumer::Info> = stream.consumers().try_collect().await?;
    let mine: Vec<_> = infos
        .iter()
        .filter(|c| stage.partition_of(&c.name).is_some() || c.name == stage.name())
        .collect();
    anyhow::ensure!(
        !mine.is_empty(),
        "{} has no durables of {}",
        stage.stream().name(),
        stage.name()
    );
    Ok(mine.iter().fold((0, 0), |(p, u), c| {
        (p + c.num_pending, u + c.num_ack_pending as u64)
    }))
}

fn stream_ready(info: &jetstream::stream::Info, all_current: bool) -> Result<(), String> {
    let cluster = info.cluster.as_ref().ok_or("no cluster info")?;
    if cluster.leader.as_deref().unwrap_or("").is_empty() {
        return Err("no leader".into());
    }
    if !all_current {
        return Ok(());
    }
    let want = info.config.num_replicas.saturating_sub(1);
    if cluster.replicas.len() < want {
        return Err(format!(
            "{} of {want} followers known",
            cluster.replicas.len()
        ));
    }
    if let Some(p) = cluster.replicas.iter().find(|p| !p.current || p.offline) {
        return Err(format!(
            "replica {} not current (lag {:?}, offline {})",
            p.name, p.lag, p.offline
        ));
    }
    Ok(())
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        if panicking {
            eprintln!(
                "fleetbus-e2e: test failed; node logs:\n{}",
                self.log_tails(40)
            );
        }
        self.kill_all();
        if std::env::var_os("FLEETBUS_E2E_KEEP").is_some() {
            self.dir.disable_cleanup(true);
            eprintln!("fleetbus-e2e: kept {}", self.dir.path().display());
        }
    }
}
