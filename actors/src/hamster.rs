//! Hamster: parses one RAW frame into records on PARSED.
//!
//! For each RAW frame ([`RawFrame`]): parse it with [`Protocol::parse`];
//! leave out the records that another frame of the device already carries
//! ([`Seen`]: a device that re-packed or re-encoded them after a lost ack);
//! publish the rest as PARSED messages ([`ParsedMeta::messages`]: one JSON
//! array for the frame — one replicated write, delivery and ack for the
//! frame instead of one per record); wait for the PubAcks; then report
//! [`Outcome::Done`], and the worker acknowledges the frame. A crash anywhere before the ack (or a
//! lost ack) redelivers the frame, and the same ids and the same claims
//! make the second round store nothing new.
//!
//! A frame that can never parse (unknown protocol, a parse error) is
//! [`Outcome::Dead`]; PARSED, the `seen` bucket or anything else refusing a
//! write is [`Outcome::BackPressure`].

use std::sync::Arc;

use async_nats::jetstream;
use async_nats::jetstream::context::PublishErrorKind;
use chrono::{DateTime, Utc};
use fleetbus_codec::identity::record_identity;
use fleetbus_codec::{ParseContext, Protocol, Record};
use fleetbus_wire::names::PARSED;
use fleetbus_wire::parsed::{ParsedMeta, FRAME_MESSAGE_MAX_BYTES};
use fleetbus_wire::raw::{raw_id_of, RawFrame};
use fleetbus_wire::DeadStage;

use crate::outcome::{DeadKind, DeadReason, Downstream, Outcome};
use crate::published::Published;
use crate::seen::Seen;
use crate::stats::Stats;
use crate::worker::Handler;

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

/// When the frame arrived: the gateway's header, else when RAW stored it
/// (stable across redeliveries, so a re-parse gives the same records).
fn received_at(msg: &jetstream::Message, raw: &RawFrame) -> DateTime<Utc> {
    let stored = msg
        .info()
        .ok()
        .map(|i| DateTime::<Utc>::from_timestamp_nanos(i.published.unix_timestamp_nanos() as i64));
    raw.received_at.or(stored).unwrap_or_else(Utc::now)
}

impl Handler for Hamster {
    async fn handle(&self, msg: &jetstream::Message) -> Outcome {
        let raw = RawFrame::read(msg);
        let device = raw.device.as_str();
        let protocol: Protocol = match raw.protocol.parse() {
            Ok(p) => p,
            Err(e) => return Outcome::Dead(DeadReason::new(DeadKind::UnknownProtocol, e)),
        };
        let ctx = ParseContext::new(device, received_at(msg, &raw)).with_model(raw.model.clone());
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
        let raw_id = raw_id_of(
            msg,
            msg.info().map(|i| i.stream_sequence).unwrap_or_default(),
        );
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
                    .claim(protocol.name(), device, &raw_id, &identities)
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
        let meta = ParsedMeta {
            protocol: protocol.name().to_string(),
            ..ParsedMeta::of_frame(&raw, &raw_id)
        };
        let outcome = self.publish(&meta, &records, &carry).await;
        if matches!(outcome, Outcome::Done) {
            self.published.insert(&raw_id);
            if let Some(hook) = &self.after_publish {
                hook(msg);
            }
        }
        outcome
    }

    fn dead_letters(&self) -> (&jetstream::Context, DeadStage) {
        (&self.js, DeadStage::Raw)
    }
}

impl Hamster {
    /// Publishes the carried records of a frame and waits for every PubAck.
    async fn publish(&self, meta: &ParsedMeta, records: &[Record], carry: &[bool]) -> Outcome {
        let carried: Vec<(usize, &Record)> = records
            .iter()
            .enumerate()
            .filter(|(i, _)| carry[*i])
            .collect();
        // None carried: a resend of records other frames carry, nothing new.
        let messages = meta.messages(records.len(), &carried, FRAME_MESSAGE_MAX_BYTES);
        let mut acks = Vec::with_capacity(messages.len());
        for out in messages {
            match self
                .js
                .publish_with_headers(out.subject, out.headers, out.payload)
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
        Outcome::BackPressure(Downstream::publish(PARSED, e))
    }
}
