//! What a handler says about a message, and the two kinds of failure.
//!
//! The distinction is the whole point: a message that is **itself bad**
//! (no parser accepts it, a processor calls it invalid, it crashed workers
//! again and again) goes to DEAD; a failure of **anything downstream** (a
//! full stream, an election, lost quorum, a timeout, a database that is
//! down) is back-pressure and never the message's fault: the worker keeps
//! the message, stops pulling more, and tries again until it works. Only
//! the worker acknowledges (`crate::worker`); handlers return one of these.

use std::fmt;

use async_nats::jetstream::context::{PublishError, PublishErrorKind};

/// A handler's verdict on one message.
#[derive(Debug)]
pub enum Outcome {
    /// Everything it produced is durable: acknowledge it.
    Done,
    /// A downstream write failed: keep the message and try again later.
    BackPressure(Downstream),
    /// The message can never be processed: to DEAD.
    Dead(DeadReason),
}

impl From<Result<(), Downstream>> for Outcome {
    fn from(r: Result<(), Downstream>) -> Outcome {
        match r {
            Ok(()) => Outcome::Done,
            Err(e) => Outcome::BackPressure(e),
        }
    }
}

/// How a downstream write failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownstreamKind {
    /// The stream or bucket is at a limit and refuses new messages.
    Full,
    /// Nobody answered: no responders (an election), no quorum, a lost
    /// connection.
    Unavailable,
    /// No answer in time.
    Timeout,
    /// Another writer kept winning a compare-and-set.
    Conflict,
    /// Anything else a store or a user processor reported.
    Failed,
}

impl DownstreamKind {
    /// A stable name, for logs and counters.
    pub fn as_str(self) -> &'static str {
        match self {
            DownstreamKind::Full => "full",
            DownstreamKind::Unavailable => "unavailable",
            DownstreamKind::Timeout => "timeout",
            DownstreamKind::Conflict => "conflict",
            DownstreamKind::Failed => "failed",
        }
    }
}

/// A downstream write that did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{target} {}: {detail}", kind.as_str())]
pub struct Downstream {
    /// What refused: `PARSED`, `DEAD`, `EVENTS`, `KV devices`, a processor's name.
    pub target: String,
    pub kind: DownstreamKind,
    pub detail: String,
}

impl Downstream {
    pub fn new(target: impl Into<String>, kind: DownstreamKind, detail: impl fmt::Display) -> Self {
        Downstream {
            target: target.into(),
            kind,
            detail: detail.to_string(),
        }
    }

    /// Classifies a JetStream publish (or PubAck) error.
    pub fn publish(target: impl Into<String>, e: &PublishError) -> Self {
        let kind = match e.kind() {
            PublishErrorKind::TimedOut => DownstreamKind::Timeout,
            PublishErrorKind::StreamNotFound | PublishErrorKind::BrokenPipe => {
                DownstreamKind::Unavailable
            }
            PublishErrorKind::MaxAckPending => DownstreamKind::Full,
            _ => kind_of_text(&e.to_string()),
        };
        Downstream::new(target, kind, e)
    }

    /// Classifies any other error by what the server said.
    pub fn other(target: impl Into<String>, e: impl fmt::Display) -> Self {
        let text = e.to_string();
        Downstream::new(target, kind_of_text(&text), text)
    }
}

/// The server's words for a refused write (nats-server `store.go`:
/// "maximum messages exceeded", "maximum bytes exceeded", "maximum
/// messages per subject exceeded"; "insufficient resources" when the node
/// is out of storage).
fn kind_of_text(text: &str) -> DownstreamKind {
    let t = text.to_ascii_lowercase();
    if (t.contains("maximum") && t.contains("exceeded")) || t.contains("insufficient resources") {
        DownstreamKind::Full
    } else if t.contains("timed out") || t.contains("timeout") {
        DownstreamKind::Timeout
    } else if t.contains("no responders") || t.contains("no stream") || t.contains("quorum") {
        DownstreamKind::Unavailable
    } else {
        DownstreamKind::Failed
    }
}

/// Why a message went to DEAD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadKind {
    /// The protocol named on the frame is not one fleetbus speaks.
    UnknownProtocol,
    /// The protocol's parser refused the frame.
    ParseError,
    /// A PARSED message that is not a fleetbus record.
    NotARecord,
    /// A processor said the record can never be processed.
    Invalid,
    /// Its records cannot be published at all (too large for the server).
    TooLarge,
    /// Handled alone after crashing workers, it panicked again.
    Crashed,
    /// Delivered so often that every delivery must have ended with its
    /// worker process dying or stalling; not handled again.
    Exhausted,
}

impl DeadKind {
    /// The `Fleetbus-Dead-Kind` header: stable, for `fleetbus dead ls --kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeadKind::UnknownProtocol => "unknown_protocol",
            DeadKind::ParseError => "parse_error",
            DeadKind::NotARecord => "not_a_record",
            DeadKind::Invalid => "invalid",
            DeadKind::TooLarge => "too_large",
            DeadKind::Crashed => "crashed",
            DeadKind::Exhausted => "exhausted",
        }
    }

    pub const ALL: [DeadKind; 7] = [
        DeadKind::UnknownProtocol,
        DeadKind::ParseError,
        DeadKind::NotARecord,
        DeadKind::Invalid,
        DeadKind::TooLarge,
        DeadKind::Crashed,
        DeadKind::Exhausted,
    ];
}

/// A dead letter's reason: its kind and one line for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct DeadReason {
    pub kind: DeadKind,
    pub detail: String,
}

impl DeadReason {
    pub fn new(kind: DeadKind, detail: impl fmt::Display) -> Self {
        DeadReason {
            kind,
            detail: detail.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_s_refusals_are_full_and_elections_are_unavailable() {
        for text in [
            "maximum messages exceeded",
            "nats: maximum bytes exceeded",
            "maximum messages per subject exceeded",
            "insufficient resources",
        ] {
            assert_eq!(kind_of_text(text), DownstreamKind::Full, "{text}");
        }
        assert_eq!(kind_of_text("no responders"), DownstreamKind::Unavailable);
        assert_eq!(kind_of_text("request timed out"), DownstreamKind::Timeout);
        assert_eq!(kind_of_text("database is on fire"), DownstreamKind::Failed);
        let d = Downstream::new("PARSED", DownstreamKind::Full, "maximum messages exceeded");
        assert_eq!(d.to_string(), "PARSED full: maximum messages exceeded");
    }

    #[test]
    fn dead_kinds_have_distinct_stable_names() {
        let names: std::collections::BTreeSet<_> =
            DeadKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(names.len(), DeadKind::ALL.len());
        assert_eq!(DeadKind::Crashed.as_str(), "crashed");
    }
}
