//! Who does what: every fleetbus login acts as one [`Role`], and what a
//! role may do on the cluster is derived from what it reads and writes
//! ([`Role::uses`]) — the NATS permissions in `nats-conf/accounts.conf`
//! ([`permissions_conf`], kept equal by a test) and the streams and
//! consumers a service ensures at start ([`Role::streams`],
//! [`Role::durables`]) both come from that one list.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::names::{DeadStage, Durable, Stream};

/// A login's role; each has a user in `nats-conf/accounts.conf`.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Provisioning, status, inspection: everything in the FLEETBUS account.
    Admin,
    /// Publishes raw frames into RAW.
    Gateway,
    /// Consumes RAW (durables `hamsters-<partition>`), publishes into
    /// PARSED and DEAD.
    Hamster,
    /// Consumes PARSED (durables `monkeys-<partition>`), publishes into
    /// EVENTS and DEAD.
    Monkey,
    /// Sweeps RAW and PARSED below every reader's floor (`fleetbus
    /// janitor`): the one role that may purge them, kept off the worker
    /// hosts.
    Janitor,
}

/// One thing a role does with the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Use {
    /// Publishes into a stream, on these subjects.
    Publish(Stream, String),
    /// Pulls from the durables of a stage (one per partition), acknowledges
    /// what it pulled, and lets go of the partitions it owns when it stops.
    Consume(Durable),
    /// Reads keys of a bucket (direct gets) and writes them.
    Bucket(Stream),
    /// Reads a whole bucket and follows its changes (a key-value watch:
    /// an ordered consumer of the bucket's stream), writes nothing.
    Watch(Stream),
    /// Purges a stream below the floor of all its readers: lists them,
    /// reads each one's ack floor and asks the stream where its next
    /// message is (actors/src/janitor.rs).
    Sweep(Stream),
}

impl Use {
    fn stream(&self) -> Stream {
        match self {
            Use::Publish(s, _) | Use::Bucket(s) | Use::Watch(s) | Use::Sweep(s) => *s,
            Use::Consume(d) => d.stream(),
        }
    }
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Admin,
        Role::Gateway,
        Role::Hamster,
        Role::Monkey,
        Role::Janitor,
    ];

    /// The role's name: its user name, its micro-service name.
    pub const fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Gateway => "gateway",
            Role::Hamster => "hamster",
            Role::Monkey => "monkey",
            Role::Janitor => "janitor",
        }
    }

    /// What the role reads and writes; admin does everything (`None`).
    pub fn uses(self) -> Option<Vec<Use>> {
        let publish = |s: Stream| Use::Publish(s, s.publish_subjects());
        let dead = |stage: DeadStage| Use::Publish(Stream::Dead, stage.subjects());
        Some(match self {
            Role::Admin => return None,
            Role::Gateway => vec![
                publish(Stream::Raw),
                Use::Watch(Stream::Registry),
                Use::Bucket(Stream::Pending),
            ],
            Role::Hamster => vec![
                Use::Consume(Durable::Hamsters),
                publish(Stream::Parsed),
                dead(DeadStage::Raw),
                Use::Bucket(Stream::Seen),
            ],
            Role::Monkey => vec![
                Use::Consume(Durable::Monkeys),
                dead(DeadStage::Parsed),
                publish(Stream::Events),
                Use::Bucket(Stream::Devices),
            ],
            Role::Janitor => vec![Use::Sweep(Stream::Raw), Use::Sweep(Stream::Parsed)],
        })
    }

    /// The streams a service of this role ensures at start: those it
    /// reads or writes (all for admin).
    pub fn streams(self) -> Vec<Stream> {
        let Some(uses) = self.uses() else {
            return Stream::ALL.to_vec();
        };
        Stream::ALL
            .into_iter()
            .filter(|s| uses.iter().any(|u| u.stream() == *s))
            .collect()
    }

    /// The durables a service of this role ensures at start: those it
    /// consumes, and those of the staged streams it publishes into, so
    /// that what it stores has a stage to read it from the first publish.
    pub fn durables(self) -> Vec<Durable> {
        let Some(uses) = self.uses() else {
            return Durable::ALL.to_vec();
        };
        Durable::ALL
            .into_iter()
            .filter(|d| {
                uses.iter().any(|u| match u {
                    Use::Consume(c) => c == d,
                    Use::Publish(s, _) => *s == d.stream() && s.is_staged(),
                    Use::Bucket(_) | Use::Watch(_) | Use::Sweep(_) => false,
                })
            })
            .collect()
    }

    /// `_INBOX.<role>`: the only inboxes the role may subscribe to (admin: any).
    pub fn inbox_prefix(self) -> Option<String> {
        match self {
            Role::Admin => None,
            other => Some(format!("_INBOX.{}", other.name())),
        }
    }

    /// The environment variable nats-server reads this role's password from.
    pub fn password_var(self) -> String {
        format!("FLEETBUS_{}_PASSWORD", self.name().to_ascii_uppercase())
    }

    /// The subjects it may publish and subscribe to (`None`: any).
    pub fn permissions(self) -> Option<Permissions> {
        let uses = self.uses()?;
        let mut publish = Vec::new();
        for u in &uses {
            match u {
                Use::Publish(_, subjects) => publish.push(subjects.clone()),
                // The partition durables are `<stage>-<p>`, and a subject
                // wildcard is a whole token: any consumer of the stage's
                // stream (whose every consumer is the stage's).
                Use::Consume(d) => {
                    let s = d.stream().name();
                    publish.push(format!("$JS.API.CONSUMER.MSG.NEXT.{s}.*"));
                    publish.push(format!("$JS.API.CONSUMER.UNPIN.{s}.*"));
                    publish.push(format!("$JS.ACK.{s}.*.>"));
                    // Counting its peers, to own an even share.
                    publish.push(format!("$SRV.PING.{}", self.name()));
                }
                Use::Bucket(s) => {
                    publish.push(s.subjects());
                    publish.push(format!("$JS.API.DIRECT.GET.{}", s.name()));
                    publish.push(format!("$JS.API.DIRECT.GET.{}.>", s.name()));
                }
                // An ordered consumer: created (by name and filter, or
                // not), fed by flow control.
                Use::Watch(s) => {
                    publish.push(format!("$JS.API.CONSUMER.CREATE.{}", s.name()));
                    publish.push(format!("$JS.API.CONSUMER.CREATE.{}.>", s.name()));
                    publish.push(format!("$JS.FC.{}.>", s.name()));
                }
                // The readers are any consumers of the stream (a sink's, a
                // tap), so their names are one wildcard token.
                Use::Sweep(s) => {
                    let s = s.name();
                    publish.push(format!("$JS.API.CONSUMER.NAMES.{s}"));
                    publish.push(format!("$JS.API.CONSUMER.INFO.{s}.*"));
                    publish.push(format!("$JS.API.STREAM.MSG.GET.{s}"));
                    publish.push(format!("$JS.API.STREAM.PURGE.{s}"));
                }
            }
        }
        // Checking at start that what it uses exists: look up only. A
        // service may not create or update a stream or a durable (its
        // login could shorten RAW's max_age or empty a durable's filter);
        // the operator provisions (admin, `fleetbus provision`).
        for s in self.streams() {
            publish.push(format!("$JS.API.STREAM.INFO.{}", s.name()));
        }
        for d in self.durables() {
            publish.push(format!("$JS.API.CONSUMER.INFO.{}.*", d.stream().name()));
        }
        let name = self.name();
        // Its inbox, and the micro-service requests every fleetbus program
        // answers (`$SRV.INFO`, `$SRV.STATS.<role>`, …).
        let subscribe = vec![
            format!("_INBOX.{name}.>"),
            "$SRV.*".to_string(),
            format!("$SRV.*.{name}"),
            format!("$SRV.*.{name}.>"),
        ];
        Some(Permissions { publish, subscribe })
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What one role may publish and subscribe to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Permissions {
    pub publish: Vec<String>,
    pub subscribe: Vec<String>,
}

/// A list of subjects as nats-server's configuration writes one.
fn quoted(subjects: &[String]) -> String {
    subjects
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `<ROLE>_PERMISSIONS = { … }` blocks of `nats-conf/accounts.conf`,
/// one per role but admin (whose block allows everything and is written
/// by hand).
pub fn permissions_conf() -> String {
    let mut out = String::new();
    for role in Role::ALL {
        let Some(p) = role.permissions() else {
            continue;
        };
        let uses = role.uses().unwrap_or_default();
        out.push_str(&format!("# {role}:"));
        for u in &uses {
            out.push_str(&match u {
                Use::Publish(s, subjects) => format!(" publishes {subjects} ({});", s.name()),
                Use::Consume(d) => format!(
                    " consumes {} ({});",
                    d.stream().name(),
                    d.partition_pattern()
                ),
                Use::Bucket(s) => format!(" keeps bucket {};", s.bucket().unwrap_or("?")),
                Use::Watch(s) => format!(" watches bucket {};", s.bucket().unwrap_or("?")),
                Use::Sweep(s) => format!(" sweeps {};", s.name()),
            });
        }
        out.pop();
        out.push('.');
        out.push('\n');
        out.push_str(&format!(
            "{}_PERMISSIONS = {{\n  publish: {{\n    allow: [\n",
            role.name().to_ascii_uppercase()
        ));
        for line in p.publish.chunks(3) {
            out.push_str(&format!("      {}\n", quoted(line)));
        }
        out.push_str(&format!(
            "    ]\n  }}\n  subscribe: {{ allow: [{}] }}\n  allow_responses: true\n}}\n\n",
            quoted(&p.subscribe)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_ensures_what_it_touches() {
        let streams = |r: Role| r.streams().iter().map(|s| s.name()).collect::<Vec<_>>();
        let durables = |r: Role| r.durables().iter().map(|d| d.name()).collect::<Vec<_>>();
        assert_eq!(streams(Role::Gateway), ["RAW", "KV_registry", "KV_pending"]);
        assert_eq!(durables(Role::Gateway), ["hamsters"]);
        assert_eq!(streams(Role::Hamster), ["RAW", "PARSED", "DEAD", "KV_seen"]);
        assert_eq!(durables(Role::Hamster), ["hamsters", "monkeys"]);
        assert_eq!(
            streams(Role::Monkey),
            ["PARSED", "DEAD", "EVENTS", "KV_devices"]
        );
        assert_eq!(durables(Role::Monkey), ["monkeys"]);
        assert_eq!(streams(Role::Janitor), ["RAW", "PARSED"]);
        assert!(durables(Role::Janitor).is_empty());
        assert_eq!(Role::Admin.streams(), Stream::ALL);
        assert_eq!(Role::Admin.permissions(), None);
    }

    #[test]
    fn no_worker_may_delete_purge_or_touch_another_stage() {
        for role in [Role::Gateway, Role::Hamster, Role::Monkey] {
            let p = role.permissions().unwrap();
            for s in &p.publish {
                assert!(
                    !s.contains("DELETE") && !s.contains("ROLLUP"),
                    "{role}: {s}"
                );
                // Never a stream or durable created or changed: only the
                // gateway's watch of the registry creates a consumer (an
                // ephemeral one, on a bucket it only reads).
                assert!(
                    !s.contains("STREAM.CREATE") && !s.contains("STREAM.UPDATE"),
                    "{role}: {s}"
                );
                assert!(
                    !s.contains("CONSUMER.CREATE") || s.contains("KV_registry"),
                    "{role}: {s}"
                );
                // No worker host may purge: the janitor sweeps.
                assert!(!s.contains("PURGE"), "{role}: {s}");
                assert_ne!(s, ">", "{role}");
            }
            assert_eq!(p.subscribe[0], format!("_INBOX.{role}.>"));
        }
        // The janitor purges RAW and PARSED, reads what it needs to place
        // each reader's floor, and may publish nothing else.
        let janitor = Role::Janitor.permissions().unwrap().publish;
        assert!(janitor.contains(&"$JS.API.STREAM.PURGE.RAW".to_string()));
        assert!(janitor.contains(&"$JS.API.STREAM.PURGE.PARSED".to_string()));
        assert!(janitor
            .iter()
            .all(|s| s.starts_with("$JS.API.") || s.starts_with("$SRV.")));
        assert!(!janitor
            .iter()
            .any(|s| s.contains("DELETE") || s.contains("CREATE")));
        let hamster = Role::Hamster.permissions().unwrap().publish;
        assert!(hamster.contains(&"dead.raw.>".to_string()));
        assert!(!hamster
            .iter()
            .any(|s| s.starts_with("events.") || s.contains("KV_devices")));
        let gateway = Role::Gateway.permissions().unwrap().publish;
        assert!(!gateway
            .iter()
            .any(|s| s.contains("MSG.NEXT") || s.starts_with("parsed")));
    }
}
