//! Idempotent provisioning: create what is missing, update in place what
//! differs and JetStream lets change, report clearly what it refuses.
//!
//! Only the settings fleetbus manages are compared and set, each listed once
//! in [`STREAM_SETTINGS`] or [`CONSUMER_SETTINGS`]; anything else an
//! operator set by hand is kept.
//!
//! JetStream is called through async-nats' typed API, not hand-built
//! requests: the request bodies (a stream's config; a consumer's
//! `stream_name`, `config` and `action`) and the answers' types are then
//! async-nats' own, and the error kinds it gives say "not found" and
//! "already exists" without parsing JSON here. Each call publishes to one
//! subject a service login may use (`nats-conf/accounts.conf`, derived from
//! wire/src/roles.rs):
//!
//! | call | subject |
//! | --- | --- |
//! | `Context::get_stream` | `$JS.API.STREAM.INFO.<stream>` |
//! | `Context::create_stream` | `$JS.API.STREAM.CREATE.<stream>` |
//! | `Context::update_stream` | `$JS.API.STREAM.UPDATE.<stream>` |
//! | `Stream::consumer_info` (handle from `get_stream_no_info`, no request) | `$JS.API.CONSUMER.INFO.<stream>.<durable>` |
//! | `Context::create_consumer_strict_on_stream` (action `create`) | `$JS.API.CONSUMER.CREATE.<stream>.<durable>` |
//! | `Context::update_consumer_on_stream` (action `update`) | `$JS.API.CONSUMER.CREATE.<stream>.<durable>` |
//!
//! async-nats appends a consumer's `filter_subject` to the create subject;
//! the durables here have none (a test keeps it so), so no call leaves
//! that list. Nothing is hand-built: what async-nats does not do itself -
//! retrying while the cluster elects, telling the race with another creator
//! from a refusal - is done here on its typed errors (`Failure`).

use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant};

use async_nats::jetstream::context::{
    ConsumerInfoError, ConsumerInfoErrorKind, CreateStreamError, CreateStreamErrorKind,
    GetStreamError, GetStreamErrorKind,
};
use async_nats::jetstream::stream::{
    ConsumerCreateStrictError, ConsumerCreateStrictErrorKind, ConsumerUpdateError,
    ConsumerUpdateErrorKind,
};
use async_nats::jetstream::{self, consumer, stream, ErrorCode};
use serde::Serialize;

use super::{Scope, Settings, SettingsError};
use crate::nats::Role;
use fleetbus_wire::names::Durable;

/// One setting that differs between the cluster and the code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    pub field: &'static str,
    pub current: String,
    pub desired: String,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} -> {}", self.field, self.current, self.desired)
    }
}

/// What provisioning did to one stream or consumer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Created,
    Unchanged,
    /// Updated in place.
    Updated {
        changes: Vec<Change>,
    },
    /// No longer part of the layout, drained, and deleted.
    Removed,
    /// Differs, and JetStream refused the update: the old settings stay.
    Rejected {
        changes: Vec<Change>,
        error: String,
    },
    /// Checked by a service, which may not change it: differs from the
    /// service's settings (the settings in force stay).
    Differs {
        changes: Vec<Change>,
    },
}

/// One stream or consumer and its outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Item {
    /// `stream` or `consumer`.
    pub kind: &'static str,
    /// `RAW` or `RAW/hamsters`.
    pub name: String,
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// The outcome of a provisioning run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub items: Vec<Item>,
}

impl Report {
    /// Everything is as the code says (nothing rejected).
    pub fn is_ok(&self) -> bool {
        !self.items.iter().any(|i| {
            matches!(
                i.outcome,
                Outcome::Rejected { .. } | Outcome::Differs { .. }
            )
        })
    }

    /// Whether anything was created or updated.
    pub fn changed(&self) -> bool {
        self.items.iter().any(|i| {
            matches!(
                i.outcome,
                Outcome::Created | Outcome::Updated { .. } | Outcome::Removed
            )
        })
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for item in &self.items {
            let head = format!("{:<8} {:<16}", item.kind, item.name);
            match &item.outcome {
                Outcome::Created => writeln!(f, "{head} created")?,
                Outcome::Unchanged => writeln!(f, "{head} unchanged")?,
                Outcome::Removed => writeln!(f, "{head} removed (not in the layout any more)")?,
                Outcome::Updated { changes } => {
                    writeln!(f, "{head} updated in place")?;
                    for c in changes {
                        writeln!(f, "{:26}{c}", "")?;
                    }
                }
                Outcome::Rejected { changes, error } => {
                    writeln!(f, "{head} NOT UPDATED, JetStream refused: {error}")?;
                    for c in changes {
                        writeln!(f, "{:26}{c}", "")?;
                    }
                    writeln!(
                        f,
                        "{:26}the old settings stay in force; to apply these, recreate it (docs/streams.md, \"Changing settings\")",
                        ""
                    )?;
                }
                Outcome::Differs { changes } => {
                    writeln!(
                        f,
                        "{head} differs (left as it is: `fleetbus provision` applies it)"
                    )?;
                    for c in changes {
                        writeln!(f, "{:26}{c}", "")?;
                    }
                }
            }
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error(
        "JetStream did not answer $JS.API.{subject} within {waited:?} (last: {last}); is the cluster up with a \
         meta leader, and may this user call that API?"
    )]
    Unavailable {
        subject: String,
        waited: Duration,
        last: String,
    },
    #[error("JetStream refused $JS.API.{subject}: {error}")]
    Refused { subject: String, error: String },
    #[error(
        "the {kind} {name} does not exist; this program may not create it: an operator runs \
         `fleetbus provision` (docs/streams.md)"
    )]
    Missing { kind: &'static str, name: String },
    #[error(transparent)]
    Settings(#[from] SettingsError),
}

/// Errors worth retrying: elections and a cluster still forming.
fn transient(e: &jetstream::Error) -> bool {
    e.code() == 503
        || [
            ErrorCode::CLUSTER_NOT_AVAILABLE,
            ErrorCode::CLUSTER_NOT_ACTIVE,
            ErrorCode::CLUSTER_INCOMPLETE,
            ErrorCode::CLUSTER_NOT_LEADER,
            ErrorCode::CLUSTER_NO_PEERS,
        ]
        .contains(&e.error_code())
}

/// A typed call's error as provisioning reads it.
#[derive(Debug, PartialEq)]
struct Failure {
    /// JetStream's error code, when it answered with an error (also where
    /// async-nats turned the code into an error kind of its own).
    code: Option<ErrorCode>,
    /// No answer (timed out, no responders, request failed) or an
    /// election under way: worth another try.
    retry: bool,
    /// JetStream's own text where it gave one (as `Display` of
    /// [`jetstream::Error`]), async-nats' otherwise.
    text: String,
}

/// `From<typed error> for Failure`, one row per error type: its kind, the
/// kinds that mean no answer, and the kinds async-nats made of a JetStream
/// error code (so that the code is not lost).
macro_rules! failures {
    ($($error:ident($kind:ident) { no_answer: $($none:ident)|+; codes: $($coded:ident => $code:ident),* })*) => {$(
        impl From<$error> for Failure {
            fn from(e: $error) -> Failure {
                let (code, retry, text) = match e.kind() {
                    $kind::JetStream(j) => (Some(j.error_code()), transient(&j), j.to_string()),
                    $($kind::$none)|+ => (None, true, e.to_string()),
                    $($kind::$coded => (Some(ErrorCode::$code), false, e.to_string()),)*
                    _ => (None, false, e.to_string()),
                };
                Failure { code, retry, text }
            }
        }
    )*};
}

failures! {
    GetStreamError(GetStreamErrorKind) { no_answer: Request; codes: }
    CreateStreamError(CreateStreamErrorKind) {
        no_answer: JetStreamUnavailable | TimedOut | Response;
        codes: NotFound => STREAM_NOT_FOUND
    }
    ConsumerInfoError(ConsumerInfoErrorKind) {
        no_answer: Request | TimedOut | NoResponders;
        codes: NotFound => CONSUMER_NOT_FOUND, StreamNotFound => STREAM_NOT_FOUND,
            Offline => CONSUMER_OFFLINE
    }
    ConsumerCreateStrictError(ConsumerCreateStrictErrorKind) {
        no_answer: Request | TimedOut;
        codes: AlreadyExists => CONSUMER_ALREADY_EXISTS
    }
    ConsumerUpdateError(ConsumerUpdateErrorKind) {
        no_answer: Request | TimedOut;
        codes: DoesNotExist => CONSUMER_DOES_NOT_EXIST
    }
}

impl Failure {
    fn refused(self, subject: String) -> ProvisionError {
        ProvisionError::Refused {
            subject,
            error: self.text,
        }
    }
}

/// One typed JetStream call, retried for up to `wait` while the cluster
/// cannot answer. `subject` is the one the call publishes to (without
/// `$JS.API.`), named in errors. The outer error is "no answer"; the inner
/// one is JetStream's own.
async fn retrying<T, F: Future<Output = Result<T, Failure>>>(
    wait: Duration,
    subject: &str,
    call: impl Fn() -> F,
) -> Result<Result<T, Failure>, ProvisionError> {
    let deadline = Instant::now() + wait;
    let mut pause = Duration::from_millis(100);
    loop {
        let last = match call().await {
            Ok(value) => return Ok(Ok(value)),
            Err(failure) if !failure.retry => return Ok(Err(failure)),
            Err(failure) => failure.text,
        };
        if Instant::now() + pause > deadline {
            return Err(ProvisionError::Unavailable {
                subject: subject.into(),
                waited: wait,
                last,
            });
        }
        tracing::debug!(subject, error = %last, "JetStream is not ready; trying again.");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

/// Ensures every resource of `scope`, streams first. `wait` bounds each API
/// call's retries while the cluster is electing leaders.
pub async fn provision(
    js: &jetstream::Context,
    settings: &Settings,
    scope: &Scope,
    wait: Duration,
) -> Result<Report, ProvisionError> {
    walk(js, settings, scope, wait, Mode::Ensure).await
}

/// What a walk over the resources does with each.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Create what is missing, update what differs (the operator).
    Ensure,
    /// Look only: missing is an error, a difference is reported (services).
    Check,
}

async fn walk(
    js: &jetstream::Context,
    settings: &Settings,
    scope: &Scope,
    wait: Duration,
    mode: Mode,
) -> Result<Report, ProvisionError> {
    settings.validate()?;
    let mut report = Report::default();
    for desired in settings
        .streams()
        .into_iter()
        .filter(|s| scope.streams.contains(&s.name.as_str()))
    {
        let spec = StreamSpec {
            js,
            config: &desired,
        };
        let outcome = ensure_one(&spec, wait, mode).await?;
        report.items.push(Item {
            kind: "stream",
            name: desired.name.clone(),
            outcome,
        });
    }
    for (stage, desired) in settings.consumers() {
        if !scope.stages.contains(&stage) {
            continue;
        }
        let stream = stage.stream().name();
        let spec = ConsumerSpec {
            js,
            stream,
            config: &desired,
        };
        let outcome = ensure_one(&spec, wait, mode).await?;
        report.items.push(Item {
            kind: "consumer",
            name: format!("{stream}/{}", spec.name()),
            outcome,
        });
    }
    if scope.tidy && mode == Mode::Ensure {
        for stage in &scope.stages {
            tidy(js, settings, *stage, wait, &mut report).await?;
        }
    }
    Ok(report)
}

/// Removes the durables of `stage` the layout no longer has - the one
/// shared durable of the layout before partitions (`hamsters`), and those
/// of partitions past `partitions` - once nothing is pending on them: on an
/// interest stream a durable nobody pulls from keeps every new message
/// forever. One still holding messages is reported, not removed: drain it
/// first (docs/workers.md, "Changing the partitions").
async fn tidy(
    js: &jetstream::Context,
    settings: &Settings,
    stage: Durable,
    wait: Duration,
    report: &mut Report,
) -> Result<(), ProvisionError> {
    let stream = stage.stream().name();
    let subject = format!("CONSUMER.NAMES.{stream}");
    let names = match retrying(wait, &subject, || consumer_names(js, stream)).await? {
        Ok(names) => names,
        Err(e) if e.code == Some(ErrorCode::STREAM_NOT_FOUND) => return Ok(()),
        Err(e) => return Err(e.refused(subject)),
    };
    let stray = names.into_iter().filter(|name| {
        name == stage.name()
            || stage
                .partition_of(name)
                .is_some_and(|p| p >= settings.partitions)
    });
    for name in stray {
        let info = format!("CONSUMER.INFO.{stream}.{name}");
        let state = retrying(wait, &info, || async {
            let s = js.get_stream_no_info(stream).await?;
            Ok::<_, Failure>(s.consumer_info(&name).await?)
        })
        .await?;
        let outcome = match state {
            Err(e) if e.code == Some(ErrorCode::CONSUMER_NOT_FOUND) => continue,
            Err(e) => return Err(e.refused(info)),
            Ok(c) if c.num_pending > 0 || c.num_ack_pending > 0 => Outcome::Rejected {
                changes: vec![Change {
                    field: "layout",
                    current: name.clone(),
                    desired: format!("{} partitions", settings.partitions),
                }],
                error: format!(
                    "it still has {} messages to deliver and {} unacknowledged; it is removed once \
                     its workers drained it (docs/workers.md, \"Changing the partitions\")",
                    c.num_pending, c.num_ack_pending
                ),
            },
            Ok(_) => {
                let delete = format!("CONSUMER.DELETE.{stream}.{name}");
                match retrying(wait, &delete, || async {
                    let s = js.get_stream_no_info(stream).await?;
                    s.delete_consumer(&name)
                        .await
                        .map(|_| ())
                        .map_err(|e| Failure {
                            code: None,
                            retry: false,
                            text: e.to_string(),
                        })
                })
                .await?
                {
                    Ok(()) => Outcome::Removed,
                    Err(e) => return Err(e.refused(delete)),
                }
            }
        };
        report.items.push(Item {
            kind: "consumer",
            name: format!("{stream}/{name}"),
            outcome,
        });
    }
    Ok(())
}

/// The names of every consumer of `stream`.
async fn consumer_names(js: &jetstream::Context, stream: &str) -> Result<Vec<String>, Failure> {
    use futures::TryStreamExt;
    let s = js.get_stream_no_info(stream).await?;
    s.consumer_names().try_collect().await.map_err(|e| Failure {
        code: None,
        retry: true,
        text: e.to_string(),
    })
}

/// What a service of `role` runs at start: checks that the streams and
/// consumers it uses exist (waiting up to a minute for the cluster), and
/// logs the outcome. It changes nothing — a service login may not create
/// or update them (docs/security.md); `fleetbus provision`, the operator's,
/// does. A missing one is an error ([`ProvisionError::Missing`]: the
/// service refuses to run); one that differs from the service's settings is
/// logged as a warning and the settings in force stay.
pub async fn check(
    js: &jetstream::Context,
    settings: &Settings,
    role: Role,
) -> Result<Report, ProvisionError> {
    let report = walk(
        js,
        settings,
        &Scope::for_role(role),
        Duration::from_secs(60),
        Mode::Check,
    )
    .await?;
    for item in &report.items {
        match &item.outcome {
            Outcome::Created => {
                tracing::info!(kind = item.kind, name = %item.name, "Provisioned: created.")
            }
            Outcome::Unchanged => {
                tracing::debug!(kind = item.kind, name = %item.name, "Provisioned: unchanged.")
            }
            Outcome::Removed => {
                tracing::info!(kind = item.kind, name = %item.name, "Provisioned: removed, not in the layout any more.")
            }
            Outcome::Updated { changes } => {
                let changes: Vec<String> = changes.iter().map(Change::to_string).collect();
                tracing::info!(kind = item.kind, name = %item.name, ?changes, "Provisioned: updated in place.")
            }
            Outcome::Rejected { changes, error } => {
                let changes: Vec<String> = changes.iter().map(Change::to_string).collect();
                tracing::error!(kind = item.kind, name = %item.name, ?changes, %error,
                    "JetStream refused to update it; the old settings stay in force.")
            }
            Outcome::Differs { changes } => {
                let changes: Vec<String> = changes.iter().map(Change::to_string).collect();
                tracing::warn!(kind = item.kind, name = %item.name, ?changes,
                    "It differs from this program's settings; the settings in force stay (an operator applies new ones with `fleetbus provision`).")
            }
        }
    }
    Ok(report)
}

/// The three calls provisioning makes on a resource.
#[derive(Clone, Copy)]
enum Call {
    Info,
    Create,
    Update,
}

/// A stream or durable consumer as provisioning handles it: its desired
/// configuration and managed settings, the typed calls that look it up,
/// create and update it, and the error codes that mean "it does not
/// exist" and "another creator was first".
trait Resource {
    type Config: Clone + 'static;
    const SETTINGS: Managed<Self::Config>;
    const MISSING: ErrorCode;
    const TAKEN: &'static [ErrorCode];
    fn desired(&self) -> &Self::Config;
    /// `stream` or `consumer`, and its name (`RAW`, `RAW/hamsters-0`).
    fn label(&self) -> (&'static str, String);
    /// The subject `call` publishes to (without `$JS.API.`), for errors.
    fn subject(&self, call: Call) -> String;
    async fn look(&self) -> Result<Self::Config, Failure>;
    async fn create(&self) -> Result<(), Failure>;
    async fn update(&self, merged: &Self::Config) -> Result<Self::Config, Failure>;
}

async fn ensure_one<R: Resource>(
    it: &R,
    wait: Duration,
    mode: Mode,
) -> Result<Outcome, ProvisionError> {
    let (desired, settings) = (it.desired(), R::SETTINGS);
    // A few rounds: another service may create it between our look and our create.
    for _ in 0..5 {
        let info = it.subject(Call::Info);
        let current = match retrying(wait, &info, || it.look()).await? {
            Ok(current) => current,
            Err(e) if e.code == Some(R::MISSING) && mode == Mode::Check => {
                let (kind, name) = it.label();
                return Err(ProvisionError::Missing { kind, name });
            }
            Err(e) if e.code == Some(R::MISSING) => {
                let create = it.subject(Call::Create);
                match retrying(wait, &create, || it.create()).await? {
                    Ok(()) => return Ok(Outcome::Created),
                    Err(e) if e.code.is_some_and(|c| R::TAKEN.contains(&c)) => continue,
                    Err(e) => return Err(e.refused(create)),
                }
            }
            Err(e) => return Err(e.refused(info)),
        };
        let changes = settings.diff(&current, desired);
        if changes.is_empty() {
            return Ok(Outcome::Unchanged);
        }
        if mode == Mode::Check {
            return Ok(Outcome::Differs { changes });
        }
        let merged = settings.merge(&current, desired);
        let update = it.subject(Call::Update);
        return Ok(
            match retrying(wait, &update, || it.update(&merged)).await? {
                Ok(updated) => match settings.diff(&updated, desired) {
                    left if left.is_empty() => Outcome::Updated { changes },
                    left => Outcome::Rejected {
                        changes: left,
                        error: "the server kept its values".into(),
                    },
                },
                Err(e) => Outcome::Rejected {
                    changes,
                    error: e.text,
                },
            },
        );
    }
    Err(ProvisionError::Refused {
        subject: it.subject(Call::Create),
        error: "raced with another creator".into(),
    })
}

/// A stream, by its desired configuration.
struct StreamSpec<'a> {
    js: &'a jetstream::Context,
    config: &'a stream::Config,
}

impl Resource for StreamSpec<'_> {
    type Config = stream::Config;
    const SETTINGS: Managed<stream::Config> = STREAM_SETTINGS;
    const MISSING: ErrorCode = ErrorCode::STREAM_NOT_FOUND;
    const TAKEN: &'static [ErrorCode] = &[ErrorCode::STREAM_NAME_EXIST];

    fn desired(&self) -> &stream::Config {
        self.config
    }

    fn label(&self) -> (&'static str, String) {
        ("stream", self.config.name.clone())
    }

    fn subject(&self, call: Call) -> String {
        let op = match call {
            Call::Info => "INFO",
            Call::Create => "CREATE",
            Call::Update => "UPDATE",
        };
        format!("STREAM.{op}.{}", self.config.name)
    }

    async fn look(&self) -> Result<stream::Config, Failure> {
        let stream = self.js.get_stream(&self.config.name).await?;
        Ok(stream.cached_info().config.clone())
    }

    async fn create(&self) -> Result<(), Failure> {
        self.js.create_stream(self.config).await?;
        Ok(())
    }

    async fn update(&self, merged: &stream::Config) -> Result<stream::Config, Failure> {
        let info = self
            .js
            .get_stream(&merged.name)
            .await?
            .cached_info()
            .clone();
        // A new partition count moves devices to other partitions: with
        // frames still waiting, a device's old and new frames would be in
        // two partitions, owned by two workers, out of order.
        if info.config.subject_transform != merged.subject_transform && info.state.messages > 0 {
            return Err(Failure {
                code: None,
                retry: false,
                text: format!(
                    "{} holds {} messages: its partitions change only while it is empty \
                     (docs/workers.md, \"Changing the partitions\")",
                    merged.name, info.state.messages
                ),
            });
        }
        Ok(self.js.update_stream(merged).await?.config)
    }
}

/// A durable consumer of `stream`, by its desired configuration.
struct ConsumerSpec<'a> {
    js: &'a jetstream::Context,
    stream: &'a str,
    config: &'a consumer::Config,
}

impl ConsumerSpec<'_> {
    fn name(&self) -> &str {
        self.config.durable_name.as_deref().unwrap_or_default()
    }
}

impl Resource for ConsumerSpec<'_> {
    type Config = consumer::Config;
    const SETTINGS: Managed<consumer::Config> = CONSUMER_SETTINGS;
    const MISSING: ErrorCode = ErrorCode::CONSUMER_NOT_FOUND;
    const TAKEN: &'static [ErrorCode] = &[
        ErrorCode::CONSUMER_ALREADY_EXISTS,
        ErrorCode::CONSUMER_NAME_EXIST,
    ];

    fn desired(&self) -> &consumer::Config {
        self.config
    }

    fn label(&self) -> (&'static str, String) {
        ("consumer", format!("{}/{}", self.stream, self.name()))
    }

    fn subject(&self, call: Call) -> String {
        // Creating and updating publish to the same subject; the request's
        // `action` tells them apart.
        let op = match call {
            Call::Info => "INFO",
            Call::Create | Call::Update => "CREATE",
        };
        format!("CONSUMER.{op}.{}.{}", self.stream, self.name())
    }

    async fn look(&self) -> Result<consumer::Config, Failure> {
        // A handle without a request (`get_stream` would call STREAM.INFO
        // first, for nothing).
        let stream = self.js.get_stream_no_info(self.stream).await?;
        Ok(stream.consumer_info(self.name()).await?.config)
    }

    async fn create(&self) -> Result<(), Failure> {
        // Strict: action `create`, so that an existing consumer with other
        // settings is reported (and compared), never overwritten here.
        self.js
            .create_consumer_strict_on_stream(self.config.clone(), self.stream)
            .await?;
        Ok(())
    }

    async fn update(&self, merged: &consumer::Config) -> Result<consumer::Config, Failure> {
        let updated = self
            .js
            .update_consumer_on_stream(merged.clone(), self.stream)
            .await?;
        Ok(updated.cached_info().config.clone())
    }
}

/// A duration as people write it: `10s`, `15m`, `7d`, `250ms`, `0`.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    if d.is_zero() {
        "0".into()
    } else if d.subsec_nanos() != 0 {
        format!("{}ms", d.as_millis())
    } else if s.is_multiple_of(86_400) {
        format!("{}d", s / 86_400)
    } else if s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

fn lower<T: fmt::Debug>(v: &T) -> String {
    format!("{v:?}").to_lowercase()
}

fn text(v: &Option<String>) -> String {
    v.clone().unwrap_or_default()
}

/// A list in a stable order: the server may keep another.
fn sorted(list: &[String]) -> String {
    let mut list = list.to_vec();
    list.sort();
    list.join(",")
}

/// One managed setting: its name in a diff, how its value reads there, and
/// how a merge takes it from the desired configuration.
pub struct Field<C: 'static> {
    pub name: &'static str,
    show: fn(&C) -> String,
    take: fn(&mut C, &C),
}

/// The managed settings of one kind of resource: what is compared and
/// what is set, from one list.
pub struct Managed<C: 'static>(pub &'static [Field<C>]);

impl<C: Clone> Managed<C> {
    /// The managed settings that differ, in the table's order.
    pub fn diff(&self, current: &C, desired: &C) -> Vec<Change> {
        self.0
            .iter()
            .filter_map(|f| {
                let (current, desired) = ((f.show)(current), (f.show)(desired));
                (current != desired).then_some(Change {
                    field: f.name,
                    current,
                    desired,
                })
            })
            .collect()
    }

    /// `current` with every managed setting taken from `desired`.
    pub fn merge(&self, current: &C, desired: &C) -> C {
        let mut merged = current.clone();
        for f in self.0 {
            (f.take)(&mut merged, desired);
        }
        merged
    }
}

/// A table of managed settings, one row each: `"name" => members: how it
/// reads`. Diffing compares what the row reads, merging copies its members
/// from the desired configuration: one row makes both, so no setting is
/// compared and not set, or set and not compared.
macro_rules! managed {
    ($($name:literal => $($member:ident),+ : $show:expr;)*) => {
        Managed(&[$(Field {
            name: $name,
            show: $show,
            take: |merged, desired| { $(merged.$member = Clone::clone(&desired.$member);)+ },
        }),*])
    };
}

/// The managed stream settings. The name is not one: it is what the
/// stream is looked up by.
pub const STREAM_SETTINGS: Managed<stream::Config> = managed! {
    "subjects" => subjects: |c| sorted(&c.subjects);
    "retention" => retention: |c| lower(&c.retention);
    "storage" => storage: |c| lower(&c.storage);
    "replicas" => num_replicas: |c| c.num_replicas.to_string();
    "discard" => discard: |c| lower(&c.discard);
    "max_bytes" => max_bytes: |c| c.max_bytes.to_string();
    "max_age" => max_age: |c| human(c.max_age);
    "max_msgs" => max_messages: |c| c.max_messages.to_string();
    "max_msgs_per_subject" => max_messages_per_subject: |c| c.max_messages_per_subject.to_string();
    "max_consumers" => max_consumers: |c| c.max_consumers.to_string();
    "duplicate_window" => duplicate_window: |c| human(c.duplicate_window);
    "subject_transform" => subject_transform: |c| c
        .subject_transform
        .as_ref()
        .map(|t| format!("{} as {}", t.source, t.destination))
        .unwrap_or_default();
    "description" => description: |c| text(&c.description);
    "allow_rollup" => allow_rollup: |c| c.allow_rollup.to_string();
};

/// The managed consumer settings. `name` is not one: it is what the
/// durable is looked up by, and the server keeps it equal to the durable
/// name; a merge keeps the server's.
pub const CONSUMER_SETTINGS: Managed<consumer::Config> = managed! {
    "durable_name" => durable_name: |c| text(&c.durable_name);
    "deliver_subject" => deliver_subject: |c| text(&c.deliver_subject);
    "deliver_policy" => deliver_policy: |c| lower(&c.deliver_policy);
    "ack_policy" => ack_policy: |c| lower(&c.ack_policy);
    "ack_wait" => ack_wait: |c| human(c.ack_wait);
    "backoff" => backoff: |c| c.backoff.iter().map(|d| human(*d)).collect::<Vec<_>>().join(",");
    "max_deliver" => max_deliver: |c| c.max_deliver.to_string();
    "max_ack_pending" => max_ack_pending: |c| c.max_ack_pending.to_string();
    "replay_policy" => replay_policy: |c| lower(&c.replay_policy);
    "replicas" => num_replicas: |c| c.num_replicas.to_string();
    "inactive_threshold" => inactive_threshold: |c| human(c.inactive_threshold);
    "filter_subjects" => filter_subject, filter_subjects: |c| {
        let single = (!c.filter_subject.is_empty()).then(|| c.filter_subject.clone());
        sorted(&[c.filter_subjects.clone(), single.into_iter().collect()].concat())
    };
    "priority_policy" => priority_policy: |c| lower(&c.priority_policy);
    "priority_groups" => priority_groups: |c| sorted(&c.priority_groups);
    "pinned_ttl" => priority_timeout: |c| human(c.priority_timeout);
    "description" => description: |c| text(&c.description);
};

#[cfg(test)]
mod tests {
    use super::*;
    use async_nats::jetstream::stream::RetentionPolicy;

    #[test]
    fn every_managed_setting_is_both_compared_and_set() {
        // From defaults, a merge takes every setting the diff compares (and
        // keeps the name the resource is looked up by).
        let s = Settings::default();
        for desired in s.streams() {
            let current = stream::Config {
                name: desired.name.clone(),
                ..Default::default()
            };
            assert!(!STREAM_SETTINGS.diff(&current, &desired).is_empty());
            let merged = STREAM_SETTINGS.merge(&current, &desired);
            assert_eq!(STREAM_SETTINGS.diff(&merged, &desired), vec![]);
            assert_eq!(merged.name, desired.name);
        }
        for (_, desired) in s.consumers() {
            let current = consumer::Config {
                name: desired.name.clone(),
                ..Default::default()
            };
            let merged = CONSUMER_SETTINGS.merge(&current, &desired);
            assert_eq!(CONSUMER_SETTINGS.diff(&merged, &desired), vec![]);
            assert_eq!(
                merged, desired,
                "consumer() sets a setting CONSUMER_SETTINGS does not manage"
            );
        }
        let names = |t: &[&str]| {
            let mut sorted = t.to_vec();
            sorted.sort();
            sorted.dedup();
            sorted.len() == t.len()
        };
        assert!(names(
            &STREAM_SETTINGS.0.iter().map(|f| f.name).collect::<Vec<_>>()
        ));
        assert!(names(
            &CONSUMER_SETTINGS
                .0
                .iter()
                .map(|f| f.name)
                .collect::<Vec<_>>()
        ));
    }

    #[test]
    fn consumers_are_created_on_the_subjects_the_roles_may_use() {
        // async-nats names the consumer by `name` (else the durable name)
        // in CONSUMER.CREATE.<stream>.<name> and appends the filter
        // subject: the permissions allow `CONSUMER.CREATE.<stream>.*.>`.
        // (The e2e cluster test provisions each role with its own login.)
        for (stage, c) in Settings::default().consumers() {
            assert!(c.durable_name.is_some(), "{stage:?}");
            assert_eq!(c.name, c.durable_name, "{stage:?}");
            let p = stage.partition_of(c.name.as_deref().unwrap()).unwrap();
            assert_eq!(c.filter_subject, stage.filter(p));
            assert!(c.filter_subjects.is_empty());
        }
    }

    #[test]
    fn typed_errors_read_as_provisioning_needs() {
        let js = |code: usize, err_code: u64, description: &str| -> jetstream::Error {
            serde_json::from_value(serde_json::json!({
                "code": code, "err_code": err_code, "description": description
            }))
            .unwrap()
        };
        // An election: JetStream's text, retried.
        let f = Failure::from(GetStreamError::new(GetStreamErrorKind::JetStream(js(
            503,
            10008,
            "JetStream system temporarily unavailable",
        ))));
        assert!(f.retry);
        assert_eq!(
            f.text,
            "JetStream system temporarily unavailable (code 503, error code 10008)"
        );
        // Not found, told by the code.
        let f = Failure::from(GetStreamError::new(GetStreamErrorKind::JetStream(js(
            404,
            10059,
            "stream not found",
        ))));
        assert_eq!(
            (f.code, f.retry),
            (Some(ErrorCode::STREAM_NOT_FOUND), false)
        );
        // Kinds async-nats made of a code keep it.
        let f = Failure::from(ConsumerInfoError::new(ConsumerInfoErrorKind::NotFound));
        assert_eq!(f.code, Some(ErrorCode::CONSUMER_NOT_FOUND));
        let f = Failure::from(ConsumerCreateStrictError::new(
            ConsumerCreateStrictErrorKind::AlreadyExists,
        ));
        assert!(ConsumerSpec::TAKEN.contains(&f.code.unwrap()));
        // No answer: retried.
        for f in [
            Failure::from(ConsumerInfoError::new(ConsumerInfoErrorKind::TimedOut)),
            Failure::from(CreateStreamError::new(
                CreateStreamErrorKind::JetStreamUnavailable,
            )),
            Failure::from(ConsumerUpdateError::new(ConsumerUpdateErrorKind::Request)),
        ] {
            assert_eq!((f.code, f.retry), (None, true), "{f:?}");
        }
        // A refusal: neither retried nor mistaken for a race.
        let f = Failure::from(CreateStreamError::new(CreateStreamErrorKind::JetStream(
            js(
                400,
                10052,
                "stream configuration update can not change storage type",
            ),
        )));
        assert!(!f.retry && !StreamSpec::TAKEN.contains(&f.code.unwrap()));
    }

    #[test]
    fn identical_configs_have_no_diff() {
        let s = Settings::default();
        for stream in s.streams() {
            assert!(STREAM_SETTINGS.diff(&stream, &stream).is_empty());
        }
        for (_, c) in s.consumers() {
            assert!(CONSUMER_SETTINGS.diff(&c, &c).is_empty());
        }
    }

    #[test]
    fn diff_names_fields_with_readable_values() {
        let s = Settings::default();
        let desired = s.streams()[0].clone();
        let mut current = desired.clone();
        current.max_bytes = 10;
        current.duplicate_window = Duration::from_secs(120);
        current.retention = RetentionPolicy::WorkQueue;
        let d = STREAM_SETTINGS.diff(&current, &desired);
        let text: Vec<String> = d.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            vec![
                "retention workqueue -> limits",
                "max_bytes 10 -> 1073741824",
                "duplicate_window 2m -> 15m"
            ]
        );
    }

    #[test]
    fn merge_keeps_unmanaged_settings() {
        let s = Settings::default();
        let desired = s.streams()[0].clone();
        let mut current = desired.clone();
        current.allow_direct = true;
        current.max_bytes = 1;
        let merged = STREAM_SETTINGS.merge(&current, &desired);
        assert!(merged.allow_direct);
        assert!(STREAM_SETTINGS.diff(&merged, &desired).is_empty());

        let (_, desired) = s.consumers().remove(0);
        let mut current = desired.clone();
        current.max_waiting = 77;
        current.max_ack_pending = 3;
        let merged = CONSUMER_SETTINGS.merge(&current, &desired);
        assert_eq!(merged.max_waiting, 77);
        assert!(CONSUMER_SETTINGS.diff(&merged, &desired).is_empty());
    }

    #[test]
    fn report_reads_well() {
        let report = Report {
            items: vec![
                Item {
                    kind: "stream",
                    name: "RAW".into(),
                    outcome: Outcome::Created,
                },
                Item {
                    kind: "consumer",
                    name: "RAW/hamsters".into(),
                    outcome: Outcome::Updated {
                        changes: vec![Change {
                            field: "max_ack_pending",
                            current: "512".into(),
                            desired: "1024".into(),
                        }],
                    },
                },
                Item {
                    kind: "stream",
                    name: "PARSED".into(),
                    outcome: Outcome::Rejected {
                        changes: vec![Change {
                            field: "storage",
                            current: "memory".into(),
                            desired: "file".into(),
                        }],
                        error: "can not change storage type".into(),
                    },
                },
            ],
        };
        let text = report.to_string();
        assert!(text.contains("RAW              created"), "{text}");
        assert!(text.contains("max_ack_pending 512 -> 1024"), "{text}");
        assert!(
            text.contains("NOT UPDATED, JetStream refused: can not change storage type"),
            "{text}"
        );
        assert!(!report.is_ok());
        assert!(report.changed());
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["items"][0]["outcome"], "created");
        assert_eq!(json["items"][2]["changes"][0]["field"], "storage");
    }

    #[test]
    fn durations_read_like_config() {
        assert_eq!(human(Duration::from_secs(900)), "15m");
        assert_eq!(human(Duration::from_secs(7 * 86400)), "7d");
        assert_eq!(human(Duration::from_secs(90)), "90s");
        assert_eq!(human(Duration::from_millis(1500)), "1500ms");
        assert_eq!(human(Duration::ZERO), "0");
    }
}
