//! One message on DEAD as `fleetbus dead` reads it: fetched by sequence
//! with its payload (to replay it), or delivered headers only (to list
//! it). Either way what it says of itself is `fleetbus_wire::dead`'s
//! reading of its headers, so that the tools and the workers agree on what
//! a dead letter means.

use std::collections::BTreeMap;

use async_nats::jetstream;
use async_nats::jetstream::message::StreamMessage;
use async_nats::HeaderMap;
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use fleetbus_wire::dead::DeadInfo;
use fleetbus_wire::Envelope;
use serde::Serialize;

/// The header a headers-only delivery carries instead of the payload: its
/// length in bytes.
const MSG_SIZE: &str = "Nats-Msg-Size";

/// One message on DEAD.
#[derive(Clone, Debug)]
pub struct Letter {
    /// Its sequence in DEAD.
    pub sequence: u64,
    /// When DEAD stored it.
    pub stored: DateTime<Utc>,
    /// `dead.<raw|parsed>.<protocol>.<device>`.
    pub subject: String,
    pub headers: HeaderMap,
    /// Empty when read headers only.
    pub payload: Bytes,
    pub payload_len: usize,
}

/// A JetStream time as chrono's.
pub(super) fn utc(t: async_nats::datetime::DateTime) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_nanos(t.unix_timestamp_nanos() as i64)
}

impl Letter {
    /// A letter as fetched by sequence, payload included.
    pub fn from_stored(m: StreamMessage) -> Letter {
        Letter {
            sequence: m.sequence,
            stored: utc(m.time),
            subject: m.subject.to_string(),
            payload_len: m.payload.len(),
            headers: m.headers,
            payload: m.payload,
        }
    }

    /// A letter as a headers-only consumer delivered it.
    pub(super) fn from_delivered(
        m: &jetstream::Message,
        sequence: u64,
        stored: DateTime<Utc>,
    ) -> Letter {
        let mut headers = HeaderMap::new();
        let mut payload_len = m.payload.len();
        for (name, values) in m.headers.iter().flat_map(|h| h.iter()) {
            let n: &str = name.as_ref();
            if n == MSG_SIZE {
                // The server's stand-in for the payload, not a stored header.
                let size = values.first().and_then(|v| v.as_str().parse().ok());
                payload_len = size.unwrap_or(payload_len);
                continue;
            }
            for v in values {
                headers.append(n, v.as_str());
            }
        }
        Letter {
            sequence,
            stored,
            subject: m.subject.to_string(),
            headers,
            payload: m.payload.clone(),
            payload_len,
        }
    }

    pub(super) fn subject_tokens(&self) -> Vec<&str> {
        self.subject.splitn(4, '.').collect()
    }

    /// What its headers (else its subject) say.
    pub fn info(&self) -> DeadInfo {
        DeadInfo::read(self)
    }

    /// What `ls --json` prints.
    pub fn listed(&self) -> Listed {
        let info = self.info();
        let mut all = BTreeMap::new();
        for (name, values) in self.headers.iter() {
            if let Some(v) = values.first() {
                all.insert(name.to_string(), v.as_str().to_string());
            }
        }
        Listed {
            sequence: self.sequence,
            stored: self.stored.to_rfc3339_opts(SecondsFormat::Millis, true),
            subject: self.subject.clone(),
            info,
            payload_bytes: self.payload_len,
            headers: all,
        }
    }
}

impl Envelope for Letter {
    fn subject(&self) -> &str {
        &self.subject
    }
    fn headers(&self) -> Option<&HeaderMap> {
        Some(&self.headers)
    }
    fn payload(&self) -> &[u8] {
        &self.payload
    }
}

/// One dead letter as `fleetbus dead ls --json` shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Listed {
    /// Its sequence in DEAD (what `replay --seq` takes).
    pub sequence: u64,
    /// When DEAD stored it, RFC 3339 UTC.
    pub stored: String,
    /// Its DEAD subject.
    pub subject: String,
    /// What its headers say (`fleetbus_wire::dead::DeadInfo`): stage,
    /// kind, reason, protocol, device, where it came from, its ids.
    #[serde(flatten)]
    pub info: DeadInfo,
    pub payload_bytes: usize,
    /// Every header as stored.
    pub headers: BTreeMap<String, String>,
}
