//! `fleetbus device`: the device registry, as operators keep it (the
//! buckets `registry` and `pending`, `fleetbus_wire::registry`).
//!
//! * `fleetbus device add <ID>... [--protocol P] [--model M] [--name N]
//!   [--auth-code C | --no-auth-code]` registers devices; an entry that
//!   exists is replaced (a field not given is cleared) and keeps the time it
//!   was first added. A device that was pending leaves `pending`. A device
//!   on jt808 keeps its authentication code or is issued one ([`AuthCode`]).
//! * `fleetbus device rm <ID>...` removes devices from the registry (an id
//!   that was not registered is only noted).
//! * `fleetbus device ls [--json]` lists the registered devices by id.
//! * `fleetbus device import <FILE|->` registers the devices of a CSV file
//!   (`-`: stdin), a line each: `id[,protocol[,model[,name]]]` (the name
//!   is the rest of the line, commas included; no quoting). Blank lines,
//!   `#` comments and a first line `id,…` are skipped; every bad line is
//!   reported at once and then nothing is written.
//!   `fleetbus simulate --print-devices … | fleetbus device import -`
//!   registers a simulated fleet.
//! * `fleetbus device pending [--json]` lists the unknown devices that
//!   gateways under `admission = "register"` held back.
//! * `fleetbus device accept <ID>... | --all` registers pending devices on
//!   the protocol they spoke (an entry that exists keeps its model, name
//!   and the time it was added) and removes them from `pending`.
//!
//! Exit status (`crate::exit`): 0 done (also when `rm` found an id not
//! registered); 1 when writing some device failed, or `accept` was given an
//! id that is neither pending nor registered; 2 when the cluster cannot be
//! reached, or a bucket does not exist (`fleetbus provision` creates them);
//! 64 for a wrong command line (an unknown protocol, a bad id, an import
//! file that cannot be read); 65 (`EX_DATAERR`) when an import file has bad
//! lines; 78 for a wrong configuration.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use async_nats::jetstream::context::GetStreamErrorKind;
use async_nats::jetstream::kv::Store;
use chrono::{DateTime, SecondsFormat, Utc};
use fleetbus_codec::Protocol;
use fleetbus_wire::names;
use fleetbus_wire::registry::{
    registry_key, KnownDevice, PendingDevice, PENDING_BUCKET, REGISTRY_BUCKET,
};
use futures::{StreamExt, TryStreamExt};
use serde::de::DeserializeOwned;

use crate::config::ProgramArgs;
use crate::exit::Exit;
use crate::nats::{NatsArgs, Role};
use crate::ops::table::table;

/// How long to wait for a bucket through an election before giving up (exit 2).
const OPEN_WAIT: Duration = Duration::from_secs(30);
/// How long reading a whole bucket may take.
const READ_WAIT: Duration = Duration::from_secs(120);
/// Requests to a bucket in flight at once.
const IN_FLIGHT: usize = 32;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Register devices, or replace their entries (the time they were
    /// first added is kept); a pending device leaves `pending`.
    Add(AddArgs),
    /// Remove devices from the registry.
    Rm(RmArgs),
    /// List the registered devices by id: id, protocol, model, name, added.
    Ls(ListArgs),
    /// Register the devices of a CSV file (`-`: stdin), a line each:
    /// id[,protocol[,model[,name]]].
    Import(ImportArgs),
    /// List the unknown devices gateways held back (admission = "register"):
    /// id, protocol, first and last seen, attempts, gateway, peer.
    Pending(ListArgs),
    /// Register pending devices on the protocol they spoke, and remove them
    /// from `pending`.
    Accept(AcceptArgs),
}

#[derive(clap::Args, Debug)]
pub struct AddArgs {
    #[command(flatten)]
    pub program: ProgramArgs,
    /// Device ids, as the gateway sees them: an IMEI, the 12-digit terminal
    /// number for JT808 and TK103 (letters, digits, `-`, `_`, `=`, `/`).
    #[arg(required = true, value_name = "ID", value_parser = parse_id)]
    pub ids: Vec<String>,
    /// Admit the devices on this protocol only (default: on any): teltonika,
    /// gt06, h02, gps103, tk103, jt808, ruptela, meitrack, suntech, gl200,
    /// wialon, watch.
    #[arg(long)]
    pub protocol: Option<Protocol>,
    /// The model, for protocols whose clones differ (GT06); overrides the
    /// listener's `model`.
    #[arg(long)]
    pub model: Option<String>,
    /// A name for people.
    #[arg(long)]
    pub name: Option<String>,
    /// The authentication code of a device provisioned with one (JT808).
    /// Default: a device on jt808 keeps the code it has, or gets a new one.
    #[arg(long, value_parser = parse_auth_code, conflicts_with = "no_auth_code")]
    pub auth_code: Option<String>,
    /// No authentication code: the device is not asked for one (JT808
    /// devices that never authenticate, such as text-only locks).
    #[arg(long)]
    pub no_auth_code: bool,
}

/// A code a JT808 device can carry: printable ASCII without spaces, at
/// most 64 bytes (2019's length byte; 2013 codes are shorter in practice).
fn parse_auth_code(code: &str) -> Result<String, String> {
    if code.is_empty() || code.len() > 64 || !code.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "authentication code {code:?}: 1 to 64 printable ASCII characters without spaces"
        ));
    }
    Ok(code.to_string())
}

#[derive(clap::Args, Debug)]
pub struct RmArgs {
    #[command(flatten)]
    pub program: ProgramArgs,
    /// Device ids.
    #[arg(required = true, value_name = "ID")]
    pub ids: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    pub program: ProgramArgs,
    /// Print one JSON array of the entries instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    #[command(flatten)]
    pub program: ProgramArgs,
    /// The CSV file, `-` for stdin.
    #[arg(value_name = "FILE|-")]
    pub file: PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct AcceptArgs {
    #[command(flatten)]
    pub program: ProgramArgs,
    /// The pending devices to register.
    #[arg(
        value_name = "ID",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    pub ids: Vec<String>,
    /// Register every pending device.
    #[arg(long)]
    pub all: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let runtime = crate::cli::tool_runtime()?;
    match args.command {
        Command::Add(args) => runtime.block_on(add(args)),
        Command::Rm(args) => runtime.block_on(rm(args)),
        Command::Ls(args) => runtime.block_on(ls(args)),
        Command::Import(args) => runtime.block_on(import(args)),
        Command::Pending(args) => runtime.block_on(pending(args)),
        Command::Accept(args) => runtime.block_on(accept(args)),
    }
}

// ---------------------------------------------------------------------------
// What the commands write, and what they print: pure, tested below.

/// A device id `add` and `import` accept: one its key in the buckets
/// ([`registry_key`]) holds unchanged, so that no two ids share an entry.
pub fn parse_id(id: &str) -> Result<String, String> {
    if id.is_empty() {
        return Err("a device id cannot be empty".into());
    }
    if registry_key(id) != id {
        return Err(format!(
            "device id {id:?}: only letters, digits, `-`, `_`, `=` and `/` are allowed"
        ));
    }
    Ok(id.to_string())
}

/// The canonical name of a protocol, or why the name is not one.
fn parse_protocol(name: &str) -> Result<String, String> {
    name.parse::<Protocol>()
        .map(|p| p.name().to_string())
        .map_err(|e| e.to_string())
}

/// One device to register, as `add` or a line of an import file gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub id: String,
    /// The protocol's canonical name.
    pub protocol: Option<String>,
    pub model: Option<String>,
    pub name: Option<String>,
    pub auth_code: AuthCode,
}

/// The authentication code an entry gets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum AuthCode {
    /// For a device registered on a protocol whose devices authenticate
    /// (JT808): the one it has (a device keeps the code it was handed), or a
    /// new one; none for other protocols.
    #[default]
    Issue,
    /// This one (a device provisioned with its code).
    Given(String),
    /// None: the device is not asked for one.
    Off,
}

/// Protocols whose devices authenticate with a code the registry issues.
pub const AUTHENTICATING: &[&str] = &["jt808"];

/// A new authentication code: 12 hex digits (48 random bits) from the
/// system's random source. It guards one device's identity against
/// someone who knows its terminal number; it is not a key.
pub fn issue_auth_code() -> std::io::Result<String> {
    let mut bytes = [0u8; 6];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(hex::encode(bytes))
}

/// The code an entry on `protocol` gets under `wanted`, given the `old`
/// entry and a `fresh` code to use if it needs a new one.
fn code_for(
    wanted: &AuthCode,
    protocol: Option<&str>,
    old: Option<&KnownDevice>,
    fresh: &str,
) -> Option<String> {
    match wanted {
        AuthCode::Given(code) => Some(code.clone()),
        AuthCode::Off => None,
        AuthCode::Issue => protocol.filter(|p| AUTHENTICATING.contains(p)).map(|_| {
            old.and_then(|o| o.auth_code.clone())
                .unwrap_or_else(|| fresh.to_string())
        }),
    }
}

impl Entry {
    /// The registry entry for it: what it gives and nothing else, added
    /// when `old` was (now, when there was none); its code as
    /// [`AuthCode`] says (`fresh` where a new one is issued).
    pub fn known(&self, old: Option<&KnownDevice>, now: DateTime<Utc>, fresh: &str) -> KnownDevice {
        KnownDevice {
            id: self.id.clone(),
            protocol: self.protocol.clone(),
            model: self.model.clone(),
            name: self.name.clone(),
            auth_code: code_for(&self.auth_code, self.protocol.as_deref(), old, fresh),
            added_at: old.map_or(now, |o| o.added_at),
        }
    }
}

/// The registry entry `accept` writes for a pending device: pinned to the
/// protocol it spoke; an entry that exists keeps its model, name and the
/// time it was added.
pub fn accepted(
    pending: &PendingDevice,
    old: Option<&KnownDevice>,
    now: DateTime<Utc>,
    fresh: &str,
) -> KnownDevice {
    KnownDevice {
        id: pending.id.clone(),
        protocol: Some(pending.protocol.clone()),
        model: old.and_then(|o| o.model.clone()),
        name: old.and_then(|o| o.name.clone()),
        auth_code: code_for(&AuthCode::Issue, Some(&pending.protocol), old, fresh),
        added_at: old.map_or(now, |o| o.added_at),
    }
}

/// A bad line of an import file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineError {
    /// From 1.
    pub line: usize,
    pub problem: String,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.problem)
    }
}

/// The devices of an import file, `id[,protocol[,model[,name]]]` a line
/// (fields trimmed, an empty one not given; the name is the rest of the
/// line), or every bad line. Blank lines and `#` comments are skipped, and
/// so is a first line whose first field is `id` (a header).
pub fn parse_csv(text: &str) -> Result<Vec<Entry>, Vec<LineError>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut entries = Vec::new();
    let mut errors = Vec::new();
    // Where each id was first given, for duplicates.
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut first = true;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let mut fields = trimmed.splitn(4, ',').map(str::trim);
        let id = fields.next().unwrap_or_default();
        if std::mem::take(&mut first) && id.eq_ignore_ascii_case("id") {
            continue;
        }
        let given = |f: Option<&str>| f.filter(|f| !f.is_empty()).map(str::to_string);
        let (protocol, model, name) = (fields.next(), given(fields.next()), given(fields.next()));
        let mut problems = Vec::new();
        if let Err(e) = parse_id(id) {
            problems.push(e);
        }
        let protocol = match given(protocol).map(|p| parse_protocol(&p)).transpose() {
            Ok(p) => p,
            Err(e) => {
                problems.push(e);
                None
            }
        };
        if let Some(before) = seen.get(id) {
            problems.push(format!("device {id} is already on line {before}"));
        }
        if !problems.is_empty() {
            errors.extend(
                problems
                    .into_iter()
                    .map(|problem| LineError { line, problem }),
            );
            continue;
        }
        seen.insert(id.to_string(), line);
        entries.push(Entry {
            id: id.to_string(),
            protocol,
            model,
            name,
            auth_code: AuthCode::Issue,
        });
    }
    if errors.is_empty() {
        Ok(entries)
    } else {
        Err(errors)
    }
}

fn or_dash(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "-".into())
}

fn time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `fleetbus device ls`: the devices (sorted by id) as a table, then how many.
pub fn render_registry(devices: &[KnownDevice]) -> String {
    let mut out = String::new();
    if devices.is_empty() {
        out.push_str("No devices registered.\n");
        return out;
    }
    let rows: Vec<Vec<String>> = devices
        .iter()
        .map(|d| {
            vec![
                d.id.clone(),
                or_dash(&d.protocol),
                or_dash(&d.model),
                or_dash(&d.name),
                time(&d.added_at),
            ]
        })
        .collect();
    table(
        &mut out,
        &["ID", "PROTOCOL", "MODEL", "NAME", "ADDED"],
        &rows,
        None,
    );
    let _ = writeln!(
        out,
        "\n{} registered",
        plural(devices.len(), "device", "devices")
    );
    out
}

/// `fleetbus device pending`: the devices (sorted by id) as a table, then
/// how many and how to accept them.
pub fn render_pending(devices: &[PendingDevice]) -> String {
    let mut out = String::new();
    if devices.is_empty() {
        out.push_str("No devices pending.\n");
        return out;
    }
    let rows: Vec<Vec<String>> = devices
        .iter()
        .map(|d| {
            vec![
                d.id.clone(),
                d.protocol.clone(),
                time(&d.first_seen),
                time(&d.last_seen),
                d.attempts.to_string(),
                d.gateway.clone(),
                d.peer.clone(),
            ]
        })
        .collect();
    table(
        &mut out,
        &[
            "ID",
            "PROTOCOL",
            "FIRST SEEN",
            "LAST SEEN",
            "ATTEMPTS",
            "GATEWAY",
            "PEER",
        ],
        &rows,
        None,
    );
    let _ = writeln!(
        out,
        "\n{} pending: `fleetbus device accept <ID>...` registers them (`--all`: every one)",
        plural(devices.len(), "device", "devices")
    );
    out
}

/// What an import did, for people.
fn import_summary(added: usize, updated: usize, unpended: usize, failed: usize) -> String {
    let mut s = format!(
        "imported {}: {added} added, {updated} updated",
        plural(added + updated, "device", "devices")
    );
    if unpended > 0 {
        let _ = write!(s, " ({unpended} no longer pending)");
    }
    if failed > 0 {
        let _ = write!(s, "; {} not written", plural(failed, "device", "devices"));
    }
    s
}

// ---------------------------------------------------------------------------
// The buckets.

/// Why a bucket cannot be used.
#[derive(Debug, thiserror::Error)]
enum BucketError {
    #[error("the {0} bucket does not exist: run `fleetbus provision`")]
    Missing(&'static str),
    #[error("the {0} bucket is not answering: {1}")]
    Unavailable(&'static str, String),
}

/// A bucket of the registry, waiting through an election for up to
/// `OPEN_WAIT` (30 s).
async fn open_bucket(
    js: &jetstream::Context,
    bucket: &'static str,
    stream: &'static str,
) -> Result<Store, BucketError> {
    let deadline = Instant::now() + OPEN_WAIT;
    loop {
        let error = match js.get_stream(stream).await {
            Ok(_) => match js.get_key_value(bucket).await {
                Ok(store) => return Ok(store),
                Err(e) => e.to_string(),
            },
            Err(e) => {
                if let GetStreamErrorKind::JetStream(j) = e.kind() {
                    if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND {
                        return Err(BucketError::Missing(bucket));
                    }
                }
                e.to_string()
            }
        };
        if Instant::now() > deadline {
            return Err(BucketError::Unavailable(bucket, error));
        }
        tracing::debug!(error = %error, bucket, "The bucket is not answering yet; trying again.");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn open_registry(js: &jetstream::Context) -> Result<Store, BucketError> {
    open_bucket(js, REGISTRY_BUCKET, names::REGISTRY).await
}

async fn open_pending(js: &jetstream::Context) -> Result<Store, BucketError> {
    open_bucket(js, PENDING_BUCKET, names::PENDING).await
}

/// The keys of a bucket.
async fn keys(store: &Store) -> anyhow::Result<HashSet<String>> {
    let read = async {
        let keys: HashSet<String> = store.keys().await?.try_collect().await?;
        anyhow::Ok(keys)
    };
    match tokio::time::timeout(READ_WAIT, read).await {
        Ok(keys) => keys,
        Err(_) => anyhow::bail!("reading the keys stalled for {READ_WAIT:?}"),
    }
}

/// The value under `key`, `None` where there is none or it is not a `T`
/// (said on stderr: the entry is then treated as absent).
async fn value<T: DeserializeOwned>(store: &Store, key: &str) -> anyhow::Result<Option<T>> {
    let Some(bytes) = store.get(key).await? else {
        return Ok(None);
    };
    match serde_json::from_slice(&bytes) {
        Ok(v) => Ok(Some(v)),
        Err(e) => {
            eprintln!(
                "fleetbus device: the value of {key} is not what it should be ({e}): ignored"
            );
            Ok(None)
        }
    }
}

/// Every value of a bucket, sorted by `id`.
async fn values<T: DeserializeOwned>(
    store: &Store,
    id: impl Fn(&T) -> &str,
) -> anyhow::Result<Vec<T>> {
    let keys = keys(store).await?;
    let read = futures::stream::iter(keys)
        .map(|key| async move { value::<T>(store, &key).await })
        .buffer_unordered(IN_FLIGHT)
        .try_collect::<Vec<Option<T>>>();
    let mut values: Vec<T> = match tokio::time::timeout(READ_WAIT, read).await {
        Ok(values) => values?.into_iter().flatten().collect(),
        Err(_) => anyhow::bail!("reading the values stalled for {READ_WAIT:?}"),
    };
    values.sort_by(|a, b| id(a).cmp(id(b)));
    Ok(values)
}

async fn put(store: &Store, device: &KnownDevice) -> anyhow::Result<()> {
    let json = serde_json::to_vec(device)?;
    store.put(registry_key(&device.id), json.into()).await?;
    Ok(())
}

/// How registering one device went.
#[derive(Debug)]
struct Registered {
    /// It had an entry before.
    updated: bool,
    /// It was pending, and is no more.
    unpended: bool,
}

/// Writes the entry `make` makes of the device's current one (`None`:
/// there is none), then deletes the device from `pending` when `pending`
/// says it is there.
async fn register(
    registry: &Store,
    pending: Option<(&Store, &HashSet<String>)>,
    id: &str,
    make: impl FnOnce(Option<&KnownDevice>) -> KnownDevice,
) -> anyhow::Result<Registered> {
    let key = registry_key(id);
    let old: Option<KnownDevice> = value(registry, &key).await?;
    put(registry, &make(old.as_ref())).await?;
    let mut unpended = false;
    if let Some((store, keys)) = pending {
        if keys.contains(&key) {
            store.delete(&key).await?;
            unpended = true;
        }
    }
    Ok(Registered {
        updated: old.is_some(),
        unpended,
    })
}

// ---------------------------------------------------------------------------
// The commands.

/// Connects as admin; the exit status (the reason on stderr) when it cannot.
async fn connect(nats: &NatsArgs, what: &str) -> anyhow::Result<Result<jetstream::Context, Exit>> {
    let config = nats.config(Role::Admin, format!("fleetbus-device-{what}"))?;
    match config.connect().await {
        Ok(client) => Ok(Ok(jetstream::new(client))),
        Err(e) => {
            eprintln!("fleetbus device {what}: {e}");
            Ok(Err(Exit::Unreachable))
        }
    }
}

/// Unwraps `Ok`, or returns the exit status of the `Err` from the function.
macro_rules! or_exit {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(code) => return Ok(code.into()),
        }
    };
}

/// The bucket, or (on stderr) why not and exit 2.
fn bucket_or_exit(what: &str, bucket: Result<Store, BucketError>) -> Result<Store, Exit> {
    bucket.map_err(|e| {
        eprintln!("fleetbus device {what}: {e}");
        Exit::Unreachable
    })
}

/// The cluster and the buckets `add`, `import` and `accept` write: the
/// registry, and `pending` with its keys (`None` when the bucket does not
/// exist and the registry is all that is asked for).
async fn open_for_writing(
    program: &ProgramArgs,
    what: &str,
    need_pending: bool,
) -> anyhow::Result<Result<(Store, Option<(Store, HashSet<String>)>), Exit>> {
    let Some(nats) = program.admin_nats()? else {
        return Ok(Err(Exit::Ok));
    };
    open_with(&nats, what, need_pending).await
}

async fn open_with(
    nats: &NatsArgs,
    what: &str,
    need_pending: bool,
) -> anyhow::Result<Result<(Store, Option<(Store, HashSet<String>)>), Exit>> {
    let js = match connect(nats, what).await? {
        Ok(js) => js,
        Err(code) => return Ok(Err(code)),
    };
    let registry = match bucket_or_exit(what, open_registry(&js).await) {
        Ok(store) => store,
        Err(code) => return Ok(Err(code)),
    };
    let pending = match open_pending(&js).await {
        Ok(store) => match keys(&store).await {
            Ok(keys) => Some((store, keys)),
            Err(e) => {
                eprintln!("fleetbus device {what}: the {PENDING_BUCKET} bucket: {e}");
                return Ok(Err(Exit::Unreachable));
            }
        },
        Err(BucketError::Missing(_)) if !need_pending => None,
        Err(e) => {
            eprintln!("fleetbus device {what}: {e}");
            return Ok(Err(Exit::Unreachable));
        }
    };
    Ok(Ok((registry, pending)))
}

async fn add(args: AddArgs) -> anyhow::Result<ExitCode> {
    let (registry, pending) = or_exit!(open_for_writing(&args.program, "add", false).await?);
    let pending = pending.as_ref().map(|(s, k)| (s, k));
    let now = Utc::now();
    let mut fine = true;
    for id in &args.ids {
        let entry = Entry {
            id: id.clone(),
            protocol: args.protocol.map(|p| p.name().to_string()),
            model: args.model.clone(),
            name: args.name.clone(),
            auth_code: match (&args.auth_code, args.no_auth_code) {
                (Some(code), _) => AuthCode::Given(code.clone()),
                (None, true) => AuthCode::Off,
                (None, false) => AuthCode::Issue,
            },
        };
        let fresh = issue_auth_code()?;
        match register(&registry, pending, id, |old| entry.known(old, now, &fresh)).await {
            Ok(r) => println!(
                "{} {id}{}",
                if r.updated { "updated" } else { "added" },
                if r.unpended {
                    " (it was pending: no longer)"
                } else {
                    ""
                }
            ),
            Err(e) => {
                eprintln!("fleetbus device add: {id}: {e:#}");
                fine = false;
            }
        }
    }
    Ok(Exit::problems_unless(fine).into())
}

async fn rm(args: RmArgs) -> anyhow::Result<ExitCode> {
    let Some(nats) = args.program.admin_nats()? else {
        return Ok(Exit::Ok.into());
    };
    let js = or_exit!(connect(&nats, "rm").await?);
    let registry = or_exit!(bucket_or_exit("rm", open_registry(&js).await));
    let mut fine = true;
    let mut absent = Vec::new();
    for id in &args.ids {
        let key = registry_key(id);
        let removed = async {
            // Only the entry of this very id (another id may share its key).
            let old: Option<KnownDevice> = value(&registry, &key).await?;
            if old.is_none_or(|o| o.id != *id) {
                return anyhow::Ok(false);
            }
            registry.delete(&key).await?;
            Ok(true)
        };
        match removed.await {
            Ok(true) => println!("removed {id}"),
            Ok(false) => absent.push(id.as_str()),
            Err(e) => {
                eprintln!("fleetbus device rm: {id}: {e:#}");
                fine = false;
            }
        }
    }
    if !absent.is_empty() {
        println!("not registered (nothing to remove): {}", absent.join(", "));
    }
    Ok(Exit::problems_unless(fine).into())
}

async fn ls(args: ListArgs) -> anyhow::Result<ExitCode> {
    let Some(nats) = args.program.admin_nats()? else {
        return Ok(Exit::Ok.into());
    };
    let js = or_exit!(connect(&nats, "ls").await?);
    let registry = or_exit!(bucket_or_exit("ls", open_registry(&js).await));
    let devices = match values(&registry, |d: &KnownDevice| &d.id).await {
        Ok(d) => d,
        Err(e) => {
            eprintln!("fleetbus device ls: the {REGISTRY_BUCKET} bucket: {e:#}");
            return Ok(Exit::Unreachable.into());
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&devices)?);
    } else {
        print!("{}", render_registry(&devices));
    }
    Ok(Exit::Ok.into())
}

/// The text of `FILE`, or of stdin for `-`.
fn read_input(file: &std::path::Path) -> std::io::Result<String> {
    let mut text = String::new();
    if file.as_os_str() == "-" {
        std::io::stdin().lock().read_to_string(&mut text)?;
    } else {
        text = std::fs::read_to_string(file)?;
    }
    Ok(text)
}

async fn import(args: ImportArgs) -> anyhow::Result<ExitCode> {
    let Some(nats) = args.program.admin_nats()? else {
        return Ok(Exit::Ok.into());
    };
    let source = if args.file.as_os_str() == "-" {
        "stdin".to_string()
    } else {
        args.file.display().to_string()
    };
    let text = match read_input(&args.file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            eprintln!("fleetbus device import: {source} is not UTF-8 text: nothing imported");
            return Ok(Exit::Data.into());
        }
        Err(e) => {
            eprintln!("fleetbus device import: cannot read {source}: {e}");
            return Ok(Exit::Usage.into());
        }
    };
    let entries = match parse_csv(&text) {
        Ok(e) => e,
        Err(errors) => {
            for e in &errors {
                eprintln!("{source}: {e}");
            }
            eprintln!(
                "fleetbus device import: {} in {source}: nothing imported",
                plural(errors.len(), "problem", "problems")
            );
            return Ok(Exit::Data.into());
        }
    };
    if entries.is_empty() {
        println!("{source} names no device: nothing imported");
        return Ok(Exit::Ok.into());
    }
    let (registry, pending) = or_exit!(open_with(&nats, "import", false).await?);
    let pending = pending.as_ref().map(|(s, k)| (s, k));
    let now = Utc::now();
    let results: Vec<(String, anyhow::Result<Registered>)> = futures::stream::iter(entries)
        .map(|entry| {
            let registry = &registry;
            async move {
                let id = entry.id.clone();
                let r = match issue_auth_code() {
                    Ok(fresh) => {
                        register(registry, pending, &id, |old| entry.known(old, now, &fresh)).await
                    }
                    Err(e) => Err(anyhow::anyhow!("no random source for its code: {e}")),
                };
                (id, r)
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    let (mut added, mut updated, mut unpended, mut failed) = (0, 0, 0, 0);
    for (id, r) in results {
        match r {
            Ok(r) => {
                if r.updated {
                    updated += 1;
                } else {
                    added += 1;
                }
                unpended += usize::from(r.unpended);
            }
            Err(e) => {
                eprintln!("fleetbus device import: {id}: {e:#}");
                failed += 1;
            }
        }
    }
    println!("{}", import_summary(added, updated, unpended, failed));
    Ok(Exit::problems_unless(failed == 0).into())
}

async fn pending(args: ListArgs) -> anyhow::Result<ExitCode> {
    let Some(nats) = args.program.admin_nats()? else {
        return Ok(Exit::Ok.into());
    };
    let js = or_exit!(connect(&nats, "pending").await?);
    let store = or_exit!(bucket_or_exit("pending", open_pending(&js).await));
    let devices = match values(&store, |d: &PendingDevice| &d.id).await {
        Ok(d) => d,
        Err(e) => {
            eprintln!("fleetbus device pending: the {PENDING_BUCKET} bucket: {e:#}");
            return Ok(Exit::Unreachable.into());
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&devices)?);
    } else {
        print!("{}", render_pending(&devices));
    }
    Ok(Exit::Ok.into())
}

async fn accept(args: AcceptArgs) -> anyhow::Result<ExitCode> {
    let (registry, pending) = or_exit!(open_for_writing(&args.program, "accept", true).await?);
    let Some((pending, _)) = pending else {
        unreachable!("open_for_writing returns the pending bucket when it is needed");
    };
    let mut fine = true;
    // The pending entries to accept; the ids asked for that are not pending.
    let mut chosen: Vec<PendingDevice> = Vec::new();
    let mut not_pending: Vec<&str> = Vec::new();
    if args.all {
        match values(&pending, |d: &PendingDevice| &d.id).await {
            Ok(all) => chosen = all,
            Err(e) => {
                eprintln!("fleetbus device accept: the {PENDING_BUCKET} bucket: {e:#}");
                return Ok(Exit::Unreachable.into());
            }
        }
        if chosen.is_empty() {
            println!("No devices pending: nothing accepted.");
            return Ok(Exit::Ok.into());
        }
    } else {
        let mut asked = HashSet::new();
        for id in args.ids.iter().filter(|id| asked.insert(id.as_str())) {
            match value::<PendingDevice>(&pending, &registry_key(id)).await {
                Ok(Some(d)) if d.id == *id => chosen.push(d),
                Ok(_) => not_pending.push(id),
                Err(e) => {
                    eprintln!("fleetbus device accept: {id}: {e:#}");
                    fine = false;
                }
            }
        }
    }
    let now = Utc::now();
    // Each accepted device leaves `pending`.
    let accepted_keys: HashSet<String> = chosen.iter().map(|d| registry_key(&d.id)).collect();
    let pending_ref = Some((&pending, &accepted_keys));
    for device in &chosen {
        let id = device.id.as_str();
        let fresh = issue_auth_code()?;
        match register(&registry, pending_ref, id, |old| {
            accepted(device, old, now, &fresh)
        })
        .await
        {
            Ok(r) => println!(
                "accepted {id} ({}){}",
                device.protocol,
                if r.updated {
                    ": its entry was updated"
                } else {
                    ""
                }
            ),
            Err(e) => {
                eprintln!("fleetbus device accept: {id}: {e:#}");
                fine = false;
            }
        }
    }
    for id in not_pending {
        match value::<KnownDevice>(&registry, &registry_key(id)).await {
            Ok(Some(d)) if d.id == id => println!("{id} is not pending: it is registered already"),
            Ok(_) => {
                eprintln!("fleetbus device accept: {id} is not pending (`fleetbus device pending` lists the pending devices)");
                fine = false;
            }
            Err(e) => {
                eprintln!("fleetbus device accept: {id}: {e:#}");
                fine = false;
            }
        }
    }
    Ok(Exit::problems_unless(fine).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn entry(id: &str, protocol: Option<&str>, model: Option<&str>, name: Option<&str>) -> Entry {
        Entry {
            id: id.into(),
            protocol: protocol.map(Into::into),
            model: model.map(Into::into),
            name: name.map(Into::into),
            auth_code: AuthCode::Issue,
        }
    }

    #[test]
    fn a_csv_file_reads_with_its_header_comments_and_optional_fields() {
        let text = "\u{feff}id,protocol,model,name\n\
                    # the depot\n\
                    \n\
                    356307042441013, GT06 ,TR02,Truck 7, north\r\n\
                    356307042441014\n\
                    356307042441015,,,Van\n\
                    123456789012,jt808\n";
        assert_eq!(
            parse_csv(text).unwrap(),
            [
                entry(
                    "356307042441013",
                    Some("gt06"),
                    Some("TR02"),
                    Some("Truck 7, north")
                ),
                entry("356307042441014", None, None, None),
                entry("356307042441015", None, None, Some("Van")),
                entry("123456789012", Some("jt808"), None, None),
            ]
        );
        // Only the first line may be a header; nothing at all is fine.
        assert_eq!(parse_csv("1\nid,protocol\n").unwrap_err()[0].line, 2);
        assert_eq!(parse_csv("# nothing\n\n").unwrap(), []);
    }

    #[test]
    fn every_bad_line_of_a_csv_file_is_reported_with_its_number() {
        let text = "356307042441013,gt06\n\
                    356307042441014,nope\n\
                    ,teltonika\n\
                    356307042441013\n\
                    35630.7042441016\n";
        let errors = parse_csv(text).unwrap_err();
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [2, 3, 4, 5], "{errors:#?}");
        assert!(
            errors[0]
                .to_string()
                .starts_with("line 2: unknown protocol \"nope\" (supported: teltonika, gt06"),
            "{}",
            errors[0]
        );
        assert_eq!(errors[1].to_string(), "line 3: a device id cannot be empty");
        assert_eq!(
            errors[2].to_string(),
            "line 4: device 356307042441013 is already on line 1"
        );
        assert!(
            errors[3].problem.contains("only letters, digits"),
            "{}",
            errors[3]
        );
    }

    #[test]
    fn ids_are_what_a_bucket_key_holds_unchanged() {
        assert_eq!(parse_id("356307042441013").unwrap(), "356307042441013");
        assert!(parse_id("AB-12_x=/y").is_ok());
        for bad in ["", "a b", "a.b", "a*", "a>"] {
            assert!(parse_id(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_protocol("GT06").unwrap(), "gt06");
        assert!(parse_protocol("gt07").unwrap_err().contains("supported: "));
    }

    #[test]
    fn an_entry_replaces_what_was_there_but_not_when_the_device_was_added() {
        let first = at("2026-12-01T08:00:00Z");
        let now = at("2026-12-03T12:00:00Z");
        let old = KnownDevice {
            id: "1".into(),
            protocol: Some("gt06".into()),
            model: Some("TR02".into()),
            name: Some("Truck".into()),
            auth_code: None,
            added_at: first,
        };
        let new = entry("1", None, None, Some("Van")).known(Some(&old), now, "c0de");
        assert_eq!(
            new,
            KnownDevice {
                id: "1".into(),
                protocol: None,
                model: None,
                name: Some("Van".into()),
                auth_code: None,
                added_at: first,
            }
        );
        assert_eq!(
            entry("2", None, None, None)
                .known(None, now, "c0de")
                .added_at,
            now
        );

        // Codes: issued on jt808 only, kept once issued, given, or off.
        let code = |e: &Entry, old: Option<&KnownDevice>| e.known(old, now, "c0de").auth_code;
        assert_eq!(code(&entry("3", Some("gt06"), None, None), None), None);
        assert_eq!(code(&entry("3", None, None, None), None), None);
        let jt = entry("3", Some("jt808"), None, None);
        assert_eq!(code(&jt, None).as_deref(), Some("c0de"));
        let issued = KnownDevice {
            auth_code: Some("kept".into()),
            ..jt.known(None, now, "kept")
        };
        assert_eq!(
            code(&jt, Some(&issued)).as_deref(),
            Some("kept"),
            "a device keeps its code"
        );
        let given = Entry {
            auth_code: AuthCode::Given("mine".into()),
            ..jt.clone()
        };
        assert_eq!(code(&given, Some(&issued)).as_deref(), Some("mine"));
        let off = Entry {
            auth_code: AuthCode::Off,
            ..jt.clone()
        };
        assert_eq!(code(&off, Some(&issued)), None);
        assert_eq!(issue_auth_code().unwrap().len(), 12);
        assert_ne!(issue_auth_code().unwrap(), issue_auth_code().unwrap());

        let pending = PendingDevice {
            id: "1".into(),
            protocol: "teltonika".into(),
            first_seen: now,
            last_seen: now,
            gateway: "gw-1".into(),
            peer: "10.0.0.7:40000".into(),
            attempts: 3,
        };
        let accepted_over_old = accepted(&pending, Some(&old), now, "c0de");
        assert_eq!(accepted_over_old.protocol.as_deref(), Some("teltonika"));
        assert_eq!(accepted_over_old.name.as_deref(), Some("Truck"));
        assert_eq!(accepted_over_old.added_at, first);
        let fresh = accepted(&pending, None, now, "c0de");
        assert_eq!((fresh.model, fresh.name, fresh.added_at), (None, None, now));
    }

    #[test]
    fn the_tables_align_their_columns_and_say_how_many() {
        let devices = [
            KnownDevice {
                id: "356307042441013".into(),
                protocol: Some("gt06".into()),
                model: Some("TR02".into()),
                name: Some("Truck 7".into()),
                auth_code: None,
                added_at: at("2026-12-03T12:00:00Z"),
            },
            KnownDevice {
                id: "123456789012".into(),
                protocol: None,
                model: None,
                name: None,
                auth_code: None,
                added_at: at("2026-12-03T12:30:00.250Z"),
            },
        ];
        assert_eq!(
            render_registry(&devices),
            "ID               PROTOCOL  MODEL  NAME     ADDED\n\
             356307042441013  gt06      TR02   Truck 7  2026-12-03T12:00:00Z\n\
             123456789012     -         -      -        2026-12-03T12:30:00Z\n\
             \n\
             2 devices registered\n"
        );
        assert_eq!(render_registry(&[]), "No devices registered.\n");

        let pending = [PendingDevice {
            id: "356307042441099".into(),
            protocol: "teltonika".into(),
            first_seen: at("2026-12-03T11:00:00Z"),
            last_seen: at("2026-12-03T11:05:00Z"),
            gateway: "gw-1".into(),
            peer: "10.0.0.7:40000".into(),
            attempts: 4,
        }];
        let text = render_pending(&pending);
        assert!(
            text.starts_with(
                "ID               PROTOCOL   FIRST SEEN            LAST SEEN             ATTEMPTS  GATEWAY  PEER\n\
                 356307042441099  teltonika  2026-12-03T11:00:00Z  2026-12-03T11:05:00Z  4         gw-1     10.0.0.7:40000\n"
            ),
            "{text}"
        );
        assert!(text.contains("1 device pending"), "{text}");
        assert_eq!(render_pending(&[]), "No devices pending.\n");
    }

    #[test]
    fn an_import_says_what_it_did() {
        assert_eq!(
            import_summary(2, 1, 0, 0),
            "imported 3 devices: 2 added, 1 updated"
        );
        assert_eq!(
            import_summary(1, 0, 1, 2),
            "imported 1 device: 1 added, 0 updated (1 no longer pending); 2 devices not written"
        );
    }
}
