//! Hamster: parses one RAW frame into records on PARSED.
//!
//! For each RAW frame ([`RawFrame`]): parse it with [`Protocol::parse`];
//! leave out the records that another frame of the device already carries
//! ([`Seen`]: a device that re-packed or re-encoded them after a lost ack);
//! publish the rest as PARSED messages ([`ParsedMeta::messages`]: one JSON
//! array for the frame — one replicated write, delivery and ack for the
//! frame instead of one per record); wait for the PubAcks; then report
//! [`Outcome::Done`], and the worker acknowledges the frame. A crash
//! anywhere before the ack (or a lost ack) redelivers the frame, and the
//! same ids and the same claims make the second round store nothing new.
//! Frames of one device that queued up behind each other go as a run
//! ([`Handler::handle_run`]): their claims in one write of the device's
//! memory, then each frame's messages as it would have published them.
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

/// A frame parsed, before its records are claimed and published.
struct Parsed {
    protocol: Protocol,
    raw: RawFrame,
    raw_id: String,
    records: Vec<Record>,
}

impl Parsed {
    fn identities(&self) -> Vec<Option<u64>> {
        self.records.iter().map(record_identity).collect()
    }

    fn meta(&self) -> ParsedMeta {
        ParsedMeta {
            protocol: self.protocol.name().to_string(),
            ..ParsedMeta::of_frame(&self.raw, &self.raw_id)
        }
    }
}

impl Hamster {
    /// Parses a frame; the outcome when there is nothing to publish (it
    /// cannot parse, or it is stored already).
    fn parse(&self, msg: &jetstream::Message) -> Result<Parsed, Outcome> {
        let raw = RawFrame::read(msg);
        let protocol: Protocol = raw
            .protocol
            .parse()
            .map_err(|e| Outcome::Dead(DeadReason::new(DeadKind::UnknownProtocol, e)))?;
        let ctx =
            ParseContext::new(&raw.device, received_at(msg, &raw)).with_model(raw.model.clone());
        if let Some(hook) = &self.before_parse {
            hook(msg);
        }
        let records = protocol.parse(&msg.payload, &ctx).map_err(|e| {
            Outcome::Dead(DeadReason::new(
                DeadKind::ParseError,
                format!("{protocol} parse error: {e}"),
            ))
        })?;
        let raw_id = raw_id_of(
            msg,
            msg.info().map(|i| i.stream_sequence).unwrap_or_default(),
        );
        let redelivered = msg.info().map(|i| i.delivered > 1).unwrap_or(false);
        if redelivered && self.published.contains(&raw_id) {
            // Stored in PARSED before; only its ack was lost.
            return Err(Outcome::Done);
        }
        Ok(Parsed {
            protocol,
            raw,
            raw_id,
            records,
        })
    }

    /// A frame's records are stored in PARSED.
    fn stored(&self, msg: &jetstream::Message, frame: &Parsed) {
        self.published.insert(&frame.raw_id);
        if let Some(hook) = &self.after_publish {
            hook(msg);
        }
    }
}

impl Handler for Hamster {
    async fn handle(&self, msg: &jetstream::Message) -> Outcome {
        let frame = match self.parse(msg) {
            Ok(frame) => frame,
            Err(outcome) => return outcome,
        };
        // The records this frame carries: all, but those another frame of
        // the device already carries.
        let carry = match &self.seen {
            None => vec![true; frame.records.len()],
            Some(seen) => match seen
                .claim(
                    frame.protocol.name(),
                    &frame.raw.device,
                    &frame.raw_id,
                    &frame.identities(),
                )
                .await
            {
                Ok((carry, counts)) => {
                    self.stats.duplicates(counts.duplicates as u64);
                    carry
                }
                Err(e) => return Outcome::BackPressure(e),
            },
        };
        let outcome = self.publish(&[(&frame, &carry[..])]).await;
        if matches!(outcome, Outcome::Done) {
            self.stored(msg, &frame);
        }
        outcome
    }

    /// Frames of one device that queued up behind each other: their claims
    /// in one write of the device's memory (instead of one per frame), then
    /// every frame's PARSED messages, as each would have been published
    /// alone. The run ends before the first frame that does not parse
    /// (which goes alone, to DEAD); a refusal sends them all one by one,
    /// where the claims already written make each carry the same records.
    async fn handle_run(&self, msgs: &[jetstream::Message]) -> usize {
        let mut frames = Vec::with_capacity(msgs.len());
        for msg in msgs {
            match self.parse(msg) {
                Ok(frame) => frames.push(frame),
                Err(_) => break,
            }
        }
        if frames.is_empty() {
            return 0;
        }
        let identities: Vec<Vec<Option<u64>>> = frames.iter().map(Parsed::identities).collect();
        let carry = match &self.seen {
            None => identities.iter().map(|i| vec![true; i.len()]).collect(),
            Some(seen) => {
                // One device: one subject is one protocol and device.
                let first = &frames[0];
                let claims: Vec<(&str, &[Option<u64>])> = frames
                    .iter()
                    .zip(&identities)
                    .map(|(f, i)| (f.raw_id.as_str(), &i[..]))
                    .collect();
                match seen
                    .claim_run(first.protocol.name(), &first.raw.device, &claims)
                    .await
                {
                    Ok((carry, counts)) => {
                        self.stats.duplicates(counts.duplicates as u64);
                        carry
                    }
                    Err(_) => return 0,
                }
            }
        };
        let run: Vec<(&Parsed, &[bool])> = frames
            .iter()
            .zip(&carry)
            .map(|(f, c)| (f, &c[..]))
            .collect();
        if !matches!(self.publish(&run).await, Outcome::Done) {
            return 0;
        }
        for (msg, frame) in msgs.iter().zip(&frames) {
            self.stored(msg, frame);
        }
        frames.len()
    }

    fn dead_letters(&self) -> (&jetstream::Context, DeadStage) {
        (&self.js, DeadStage::Raw)
    }
}

impl Hamster {
    /// Publishes the carried records of each frame (its PARSED messages:
    /// [`ParsedMeta::messages`]) and waits for every PubAck.
    async fn publish(&self, frames: &[(&Parsed, &[bool])]) -> Outcome {
        let mut acks = Vec::new();
        let mut published = 0;
        for (frame, carry) in frames {
            let carried: Vec<(usize, &Record)> = frame
                .records
                .iter()
                .enumerate()
                .filter(|(i, _)| carry[*i])
                .collect();
            published += carried.len();
            // None carried: a resend of records other frames carry, nothing new.
            let messages =
                frame
                    .meta()
                    .messages(frame.records.len(), &carried, FRAME_MESSAGE_MAX_BYTES);
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
        }
        for result in
            futures::future::join_all(acks.into_iter().map(std::future::IntoFuture::into_future))
                .await
        {
            if let Err(e) = result {
                return refused(&e);
            }
        }
        self.stats.published(published as u64);
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
