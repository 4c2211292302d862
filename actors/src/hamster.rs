//! Hamster: parses one RAW frame into records on PARSED.
//!
//! For each frame (`raw.<protocol>.<device>`, protocol and device also in
//! headers): parse it with [`Protocol::parse`]; leave out the records that
//! another frame of the device already carries ([`Seen`]: a device that
//! re-packed or re-encoded them after a lost ack); publish the rest to
//! `parsed.<protocol>.<device>` — a frame of one record as that record's
//! JSON with `Nats-Msg-Id` = `<raw id>#0`, a frame of several as **one**
//! message, the JSON array of the records it carries, with `<raw id>#0..<n>`
//! (n: the frame's records) and the `Fleetbus-Records` header (one
//! replicated write, delivery and ack for the frame instead of one per
//! record); wait for the PubAcks; then report [`Outcome::Done`], and the
//! worker acknowledges the frame. A crash anywhere before the ack (or a
//! lost ack) redelivers the frame, and the same ids and the same claims
//! make the second round store nothing new.
//!
//! A frame that can never parse (unknown protocol, a parse error) is
//! [`Outcome::Dead`]; PARSED, the `seen` bucket or anything else refusing a
//! write is [`Outcome::BackPressure`].

use std::sync::Arc;

use async_nats::jetstream;
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::HeaderMap;
use chrono::{DateTime, Utc};
use fleetbus_codec::identity::record_identity;
use fleetbus_codec::wire::{
    headers, origin, parsed_frame_msg_id, parsed_msg_id, parsed_subject, DeadStage,
};
use fleetbus_codec::{ParseContext, Protocol, Record};

use crate::dead::dead_letter;
use crate::outcome::{DeadKind, DeadReason, Downstream, Outcome};
use crate::published::Published;
use crate::seen::Seen;
use crate::stats::Stats;
use crate::worker::Handler;

/// A frame's records go in one PARSED message up to this size of JSON;
/// a larger frame (rare: 255 Teltonika records with many IO elements) goes
/// record by record, well under any NATS payload limit.
pub const FRAME_MESSAGE_MAX_BYTES: usize = 256 * 1024;

/// A test hook (fault injection: panic in it to crash a worker).
pub type Hook = Arc<dyn Fn(&jetstream::Message) + Send + Sync>;

pub struct Hamster {
    js: jetstream::Context,
    stats: Arc<Stats>,
    seen: Option<Seen>,
    published: Published,
    before_parse: Option<Hook>,
    after_publish: Option<Hook>,
}

impl Hamster {
    /// A hamster that deduplicates records with `seen` (`None`: frame by
    /// frame only, for tests of other things).
    pub fn new(js: jetstream::Context, stats: Arc<Stats>, seen: Option<Seen>) -> Hamster {
        Hamster {
            js,
            stats,
            seen,
            published: Published::default(),
            before_parse: None,
            after_publish: None,
        }
    }

    /// Installs a hook run before the frame is parsed, as a parser that
    /// panics on it would (tests).
    pub fn with_before_parse(mut self, hook: Hook) -> Hamster {
        self.before_parse = Some(hook);
        self
    }

    /// Installs a hook run between the PubAcks and the ack: a crash there
    /// is one "mid-message", after the records are stored (tests).
    pub fn with_after_publish(mut self, hook: Hook) -> Hamster {
        self.after_publish = Some(hook);
        self
    }
}

fn header<'a>(h: Option<&'a HeaderMap>, name: &str) -> Option<&'a str> {
    h.and_then(|h| h.get(name))
        .map(|v| v.as_str())
        .filter(|v| !v.is_empty())
}

/// When the frame arrived: the gateway's header, else when RAW stored it
/// (stable across redeliveries, so a re-parse gives the same records).
fn received_at(msg: &jetstream::Message) -> DateTime<Utc> {
    let stored = msg
        .info()
        .ok()
        .map(|i| DateTime::<Utc>::from_timestamp_nanos(i.published.unix_timestamp_nanos() as i64));
    header(msg.headers.as_ref(), headers::RECEIVED_AT)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .or(stored)
        .unwrap_or_else(Utc::now)
}

impl Handler for Hamster {
    async fn handle(&self, msg: &jetstream::Message) -> Outcome {
        let h = msg.headers.as_ref();
        let (protocol_name, device) = origin(
            msg.subject.as_str(),
            header(h, headers::PROTOCOL),
            header(h, headers::DEVICE),
        );
        let protocol: Protocol = match protocol_name.parse() {
            Ok(p) => p,
            Err(e) => return Outcome::Dead(DeadReason::new(DeadKind::UnknownProtocol, e)),
        };
        let ctx = ParseContext::new(&device, received_at(msg))
            .with_model(header(h, headers::MODEL).map(str::to_string));
        if let Some(hook) = &self.before_parse {
            hook(msg);
        }
        let records = match protocol.parse(&msg.payload, &ctx) {
            Ok(r) => r,
            Err(e) => {
                return Outcome::Dead(DeadReason::new(
                    DeadKind::ParseError,
                    format!("{protocol} parse error: {e}"),
                ))
            }
        };
        let raw_id = match header(h, headers::MSG_ID) {
            Some(id) => id.to_string(),
            None => format!(
                "RAW:{}",
                msg.info().map(|i| i.stream_sequence).unwrap_or_default()
            ),
        };
        let redelivered = msg.info().map(|i| i.delivered > 1).unwrap_or(false);
        if redelivered && self.published.contains(&raw_id) {
            // Stored in PARSED before; only its ack was lost.
            return Outcome::Done;
        }
        // The records this frame carries: all, but those another frame of
        // the device already carries.
        let carry = match &self.seen {
            None => vec![true; records.len()],
            Some(seen) => {
                let identities: Vec<Option<u64>> = records.iter().map(record_identity).collect();
                match seen
                    .claim(protocol.name(), &device, &raw_id, &identities)
                    .await
                {
                    Ok((carry, counts)) => {
                        self.stats.duplicates(counts.duplicates as u64);
                        carry
                    }
                    Err(e) => return Outcome::BackPressure(e),
                }
            }
        };
        let outcome = self
            .publish(msg, protocol, &device, &raw_id, &records, &carry)
            .await;
        if matches!(outcome, Outcome::Done) {
            self.published.insert(&raw_id);
            if let Some(hook) = &self.after_publish {
                hook(msg);
            }
        }
        outcome
    }

    async fn dead_letter(
        &self,
        msg: &jetstream::Message,
        reason: &DeadReason,
    ) -> Result<(), Downstream> {
        dead_letter(&self.js, DeadStage::Raw, msg, reason).await
    }
}

impl Hamster {
    /// Publishes the carried records of a frame and waits for every PubAck.
    async fn publish(
        &self,
        msg: &jetstream::Message,
        protocol: Protocol,
        device: &str,
        raw_id: &str,
        records: &[Record],
        carry: &[bool],
    ) -> Outcome {
        let h = msg.headers.as_ref();
        let carried: Vec<(usize, &Record)> = records
            .iter()
            .enumerate()
            .filter(|(i, _)| carry[*i])
            .collect();
        if carried.is_empty() {
            // A resend of records other frames carry: nothing new.
            return Outcome::Done;
        }
        let subject = parsed_subject(protocol.name(), device);
        // What says what the message holds — one record's type, or how many
        // records a frame's array has — then what every PARSED message has.
        let headers_for = |msg_id: &str, holds: (&str, &str)| {
            let mut out = HeaderMap::new();
            out.insert(headers::MSG_ID, msg_id);
            out.insert(holds.0, holds.1);
            out.insert(headers::RAW_ID, raw_id);
            out.insert(headers::PROTOCOL, protocol.name());
            out.insert(headers::DEVICE, device);
            for name in [headers::RECEIVED_AT, headers::GATEWAY, headers::MODEL] {
                if let Some(v) = header(h, name) {
                    out.insert(name, v);
                }
            }
            out
        };
        let mut messages = Vec::new();
        let frame = if records.len() > 1 {
            let list: Vec<&Record> = carried.iter().map(|(_, r)| *r).collect();
            // Records that were parsed serialize; the size decides the form.
            serde_json::to_vec(&list)
                .ok()
                .filter(|p| p.len() <= FRAME_MESSAGE_MAX_BYTES)
        } else {
            None
        };
        match frame {
            Some(payload) => {
                // The id names the frame (its n records), whichever of them
                // it carries: the claims make that the same set every time.
                let id = parsed_frame_msg_id(raw_id, records.len());
                let count = carried.len().to_string();
                messages.push((headers_for(&id, (headers::RECORDS, &count)), payload));
            }
            None => {
                for (i, record) in &carried {
                    let payload = serde_json::to_vec(record).unwrap_or_default();
                    let id = parsed_msg_id(raw_id, *i);
                    let kind = (headers::RECORD_TYPE, record.kind());
                    messages.push((headers_for(&id, kind), payload));
                }
            }
        }
        let mut acks = Vec::with_capacity(messages.len());
        for (out, payload) in messages {
            match self
                .js
                .publish_with_headers(subject.clone(), out, payload.into())
                .await
            {
                Ok(ack) => acks.push(ack),
                Err(e) => return refused(&e),
            }
        }
        for result in
            futures::future::join_all(acks.into_iter().map(std::future::IntoFuture::into_future))
                .await
        {
            if let Err(e) = result {
                return refused(&e);
            }
        }
        self.stats.published(carried.len() as u64);
        Outcome::Done
    }
}

/// A publish to PARSED that failed: too large for the server is the
/// frame's fault, anything else is back-pressure.
fn refused(e: &async_nats::jetstream::context::PublishError) -> Outcome {
    if e.kind() == PublishErrorKind::MaxPayloadExceeded {
        Outcome::Dead(DeadReason::new(
            DeadKind::TooLarge,
            format!("its records are too large to publish: {e}"),
        ))
    } else {
        Outcome::BackPressure(Downstream::publish("PARSED", e))
    }
}
