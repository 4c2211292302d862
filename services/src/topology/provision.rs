//! Idempotent provisioning: create what is missing, update in place what
//! differs and JetStream lets change, report clearly what it refuses.
//!
//! Only the settings fleetbus manages are compared (see [`diff_stream`] and
//! [`diff_consumer`]); anything else an operator set by hand is kept.

use std::fmt;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, response::Response, stream, ErrorCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;

use super::{Scope, Settings, SettingsError};
use crate::nats::Role;

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
    /// Differs, and JetStream refused the update: the old settings stay.
    Rejected {
        changes: Vec<Change>,
        error: String,
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
        !self
            .items
            .iter()
            .any(|i| matches!(i.outcome, Outcome::Rejected { .. }))
    }

    /// Whether anything was created or updated.
    pub fn changed(&self) -> bool {
        self.items
            .iter()
            .any(|i| matches!(i.outcome, Outcome::Created | Outcome::Updated { .. }))
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for item in &self.items {
            let head = format!("{:<8} {:<16}", item.kind, item.name);
            match &item.outcome {
                Outcome::Created => writeln!(f, "{head} created")?,
                Outcome::Unchanged => writeln!(f, "{head} unchanged")?,
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

struct Api<'a> {
    js: &'a jetstream::Context,
    wait: Duration,
}

impl Api<'_> {
    /// One JetStream API call, retried while the cluster cannot answer.
    /// The outer error is "no answer"; the inner one is JetStream's own.
    async fn call<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        subject: &str,
        body: &B,
    ) -> Result<Result<T, jetstream::Error>, ProvisionError> {
        let deadline = Instant::now() + self.wait;
        let mut pause = Duration::from_millis(100);
        loop {
            let last = match self
                .js
                .request::<_, _, Response<T>>(subject.to_string(), body)
                .await
            {
                Ok(Response::Ok(value)) => return Ok(Ok(value)),
                Ok(Response::Err { error }) if !transient(&error) => return Ok(Err(error)),
                Ok(Response::Err { error }) => error.to_string(),
                Err(e) => e.to_string(),
            };
            if Instant::now() + pause > deadline {
                return Err(ProvisionError::Unavailable {
                    subject: subject.into(),
                    waited: self.wait,
                    last,
                });
            }
            tracing::debug!(subject, error = %last, "JetStream not ready, retrying");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
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
    settings.validate()?;
    let api = Api { js, wait };
    let mut report = Report::default();
    for desired in settings
        .streams()
        .into_iter()
        .filter(|s| scope.streams.contains(&s.name.as_str()))
    {
        let outcome = ensure_stream(&api, &desired).await?;
        report.items.push(Item {
            kind: "stream",
            name: desired.name.clone(),
            outcome,
        });
    }
    for (stream, desired) in settings.consumers() {
        let name = desired.durable_name.clone().unwrap_or_default();
        if !scope
            .consumers
            .iter()
            .any(|(s, c)| *s == stream && *c == name)
        {
            continue;
        }
        let outcome = ensure_consumer(&api, stream, &desired).await?;
        report.items.push(Item {
            kind: "consumer",
            name: format!("{stream}/{name}"),
            outcome,
        });
    }
    Ok(report)
}

/// What a service of `role` runs at start: provisions its scope (waiting up
/// to a minute for the cluster) and logs the outcome. Settings JetStream
/// refuses to change are logged as errors; the service goes on with the
/// settings in force.
pub async fn ensure(
    js: &jetstream::Context,
    settings: &Settings,
    role: Role,
) -> Result<Report, ProvisionError> {
    let report = provision(
        js,
        settings,
        &Scope::for_role(role),
        Duration::from_secs(60),
    )
    .await?;
    for item in &report.items {
        match &item.outcome {
            Outcome::Created => {
                tracing::info!(kind = item.kind, name = %item.name, "provisioned: created")
            }
            Outcome::Unchanged => {
                tracing::debug!(kind = item.kind, name = %item.name, "provisioned: unchanged")
            }
            Outcome::Updated { changes } => {
                let changes: Vec<String> = changes.iter().map(Change::to_string).collect();
                tracing::info!(kind = item.kind, name = %item.name, ?changes, "provisioned: updated in place")
            }
            Outcome::Rejected { changes, error } => {
                let changes: Vec<String> = changes.iter().map(Change::to_string).collect();
                tracing::error!(kind = item.kind, name = %item.name, ?changes, %error,
                    "provisioning: JetStream refused to update; the old settings stay in force")
            }
        }
    }
    Ok(report)
}

async fn ensure_stream(api: &Api<'_>, desired: &stream::Config) -> Result<Outcome, ProvisionError> {
    let name = &desired.name;
    // A few rounds: another service may create it between our look and our create.
    for _ in 0..5 {
        let info_subject = format!("STREAM.INFO.{name}");
        let current = match api
            .call::<stream::Info, _>(&info_subject, &json!({}))
            .await?
        {
            Ok(info) => info.config,
            Err(e) if e.error_code() == ErrorCode::STREAM_NOT_FOUND => {
                let subject = format!("STREAM.CREATE.{name}");
                match api.call::<stream::Info, _>(&subject, desired).await? {
                    Ok(_) => return Ok(Outcome::Created),
                    Err(e) if e.error_code() == ErrorCode::STREAM_NAME_EXIST => continue,
                    Err(e) => {
                        return Err(ProvisionError::Refused {
                            subject,
                            error: e.to_string(),
                        })
                    }
                }
            }
            Err(e) => {
                return Err(ProvisionError::Refused {
                    subject: info_subject,
                    error: e.to_string(),
                })
            }
        };
        let changes = diff_stream(&current, desired);
        if changes.is_empty() {
            return Ok(Outcome::Unchanged);
        }
        let merged = merge_stream(&current, desired);
        let subject = format!("STREAM.UPDATE.{name}");
        return Ok(
            match api.call::<stream::Info, _>(&subject, &merged).await? {
                Ok(updated) => match diff_stream(&updated.config, desired) {
                    left if left.is_empty() => Outcome::Updated { changes },
                    left => Outcome::Rejected {
                        changes: left,
                        error: "the server kept its values".into(),
                    },
                },
                Err(e) => Outcome::Rejected {
                    changes,
                    error: e.to_string(),
                },
            },
        );
    }
    Err(ProvisionError::Refused {
        subject: format!("STREAM.CREATE.{name}"),
        error: "raced with another creator".into(),
    })
}

async fn ensure_consumer(
    api: &Api<'_>,
    stream: &str,
    desired: &consumer::Config,
) -> Result<Outcome, ProvisionError> {
    let name = desired.durable_name.clone().unwrap_or_default();
    let create_subject = format!("CONSUMER.CREATE.{stream}.{name}");
    for _ in 0..5 {
        let info_subject = format!("CONSUMER.INFO.{stream}.{name}");
        let current = match api
            .call::<consumer::Info, _>(&info_subject, &json!({}))
            .await?
        {
            Ok(info) => info.config,
            Err(e) if e.error_code() == ErrorCode::CONSUMER_NOT_FOUND => {
                let body = json!({ "stream_name": stream, "config": desired, "action": "create" });
                match api
                    .call::<consumer::Info, _>(&create_subject, &body)
                    .await?
                {
                    Ok(_) => return Ok(Outcome::Created),
                    Err(e)
                        if e.error_code() == ErrorCode::CONSUMER_ALREADY_EXISTS
                            || e.error_code() == ErrorCode::CONSUMER_NAME_EXIST =>
                    {
                        continue
                    }
                    Err(e) => {
                        return Err(ProvisionError::Refused {
                            subject: create_subject,
                            error: e.to_string(),
                        })
                    }
                }
            }
            Err(e) => {
                return Err(ProvisionError::Refused {
                    subject: info_subject,
                    error: e.to_string(),
                })
            }
        };
        let changes = diff_consumer(&current, desired);
        if changes.is_empty() {
            return Ok(Outcome::Unchanged);
        }
        let merged = merge_consumer(&current, desired);
        let body = json!({ "stream_name": stream, "config": merged, "action": "update" });
        return Ok(
            match api
                .call::<consumer::Info, _>(&create_subject, &body)
                .await?
            {
                Ok(updated) => match diff_consumer(&updated.config, desired) {
                    left if left.is_empty() => Outcome::Updated { changes },
                    left => Outcome::Rejected {
                        changes: left,
                        error: "the server kept its values".into(),
                    },
                },
                Err(e) => Outcome::Rejected {
                    changes,
                    error: e.to_string(),
                },
            },
        );
    }
    Err(ProvisionError::Refused {
        subject: create_subject,
        error: "raced with another creator".into(),
    })
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

fn changes(fields: Vec<(&'static str, String, String)>) -> Vec<Change> {
    fields
        .into_iter()
        .filter(|(_, current, desired)| current != desired)
        .map(|(field, current, desired)| Change {
            field,
            current,
            desired,
        })
        .collect()
}

/// The managed stream settings that differ.
pub fn diff_stream(current: &stream::Config, desired: &stream::Config) -> Vec<Change> {
    let subjects = |c: &stream::Config| {
        let mut s = c.subjects.clone();
        s.sort();
        s.join(",")
    };
    let (c, d) = (current, desired);
    changes(vec![
        ("subjects", subjects(c), subjects(d)),
        ("retention", lower(&c.retention), lower(&d.retention)),
        ("storage", lower(&c.storage), lower(&d.storage)),
        (
            "replicas",
            c.num_replicas.to_string(),
            d.num_replicas.to_string(),
        ),
        ("discard", lower(&c.discard), lower(&d.discard)),
        (
            "max_bytes",
            c.max_bytes.to_string(),
            d.max_bytes.to_string(),
        ),
        ("max_age", human(c.max_age), human(d.max_age)),
        (
            "max_msgs",
            c.max_messages.to_string(),
            d.max_messages.to_string(),
        ),
        (
            "max_msgs_per_subject",
            c.max_messages_per_subject.to_string(),
            d.max_messages_per_subject.to_string(),
        ),
        (
            "max_consumers",
            c.max_consumers.to_string(),
            d.max_consumers.to_string(),
        ),
        (
            "duplicate_window",
            human(c.duplicate_window),
            human(d.duplicate_window),
        ),
        (
            "description",
            c.description.clone().unwrap_or_default(),
            d.description.clone().unwrap_or_default(),
        ),
    ])
}

/// `current` with every managed setting taken from `desired`.
pub fn merge_stream(current: &stream::Config, desired: &stream::Config) -> stream::Config {
    stream::Config {
        subjects: desired.subjects.clone(),
        retention: desired.retention,
        storage: desired.storage,
        num_replicas: desired.num_replicas,
        discard: desired.discard,
        max_bytes: desired.max_bytes,
        max_age: desired.max_age,
        max_messages: desired.max_messages,
        max_messages_per_subject: desired.max_messages_per_subject,
        max_consumers: desired.max_consumers,
        duplicate_window: desired.duplicate_window,
        description: desired.description.clone(),
        ..current.clone()
    }
}

/// The managed consumer settings that differ.
pub fn diff_consumer(current: &consumer::Config, desired: &consumer::Config) -> Vec<Change> {
    let backoff = |c: &consumer::Config| {
        c.backoff
            .iter()
            .map(|d| human(*d))
            .collect::<Vec<_>>()
            .join(",")
    };
    let filters = |c: &consumer::Config| {
        let mut f = c.filter_subjects.clone();
        if !c.filter_subject.is_empty() {
            f.push(c.filter_subject.clone());
        }
        f.sort();
        f.join(",")
    };
    let (c, d) = (current, desired);
    changes(vec![
        (
            "durable_name",
            c.durable_name.clone().unwrap_or_default(),
            d.durable_name.clone().unwrap_or_default(),
        ),
        (
            "deliver_subject",
            c.deliver_subject.clone().unwrap_or_default(),
            d.deliver_subject.clone().unwrap_or_default(),
        ),
        (
            "deliver_policy",
            lower(&c.deliver_policy),
            lower(&d.deliver_policy),
        ),
        ("ack_policy", lower(&c.ack_policy), lower(&d.ack_policy)),
        ("ack_wait", human(c.ack_wait), human(d.ack_wait)),
        ("backoff", backoff(c), backoff(d)),
        (
            "max_deliver",
            c.max_deliver.to_string(),
            d.max_deliver.to_string(),
        ),
        (
            "max_ack_pending",
            c.max_ack_pending.to_string(),
            d.max_ack_pending.to_string(),
        ),
        (
            "replay_policy",
            lower(&c.replay_policy),
            lower(&d.replay_policy),
        ),
        (
            "replicas",
            c.num_replicas.to_string(),
            d.num_replicas.to_string(),
        ),
        (
            "inactive_threshold",
            human(c.inactive_threshold),
            human(d.inactive_threshold),
        ),
        ("filter_subjects", filters(c), filters(d)),
        (
            "description",
            c.description.clone().unwrap_or_default(),
            d.description.clone().unwrap_or_default(),
        ),
    ])
}

/// `current` with every managed setting taken from `desired`.
pub fn merge_consumer(current: &consumer::Config, desired: &consumer::Config) -> consumer::Config {
    consumer::Config {
        durable_name: desired.durable_name.clone(),
        name: desired.name.clone().or_else(|| current.name.clone()),
        deliver_subject: desired.deliver_subject.clone(),
        deliver_policy: desired.deliver_policy,
        ack_policy: desired.ack_policy,
        ack_wait: desired.ack_wait,
        backoff: desired.backoff.clone(),
        max_deliver: desired.max_deliver,
        max_ack_pending: desired.max_ack_pending,
        replay_policy: desired.replay_policy,
        num_replicas: desired.num_replicas,
        inactive_threshold: desired.inactive_threshold,
        filter_subject: desired.filter_subject.clone(),
        filter_subjects: desired.filter_subjects.clone(),
        description: desired.description.clone(),
        ..current.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_nats::jetstream::stream::RetentionPolicy;

    #[test]
    fn identical_configs_have_no_diff() {
        let s = Settings::default();
        for stream in s.streams() {
            assert!(diff_stream(&stream, &stream).is_empty());
        }
        for (_, c) in s.consumers() {
            assert!(diff_consumer(&c, &c).is_empty());
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
        let d = diff_stream(&current, &desired);
        let text: Vec<String> = d.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            vec![
                "retention workqueue -> interest",
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
        let merged = merge_stream(&current, &desired);
        assert!(merged.allow_direct);
        assert!(diff_stream(&merged, &desired).is_empty());

        let (_, desired) = s.consumers().remove(0);
        let mut current = desired.clone();
        current.max_waiting = 77;
        current.max_ack_pending = 3;
        let merged = merge_consumer(&current, &desired);
        assert_eq!(merged.max_waiting, 77);
        assert!(diff_consumer(&merged, &desired).is_empty());
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
