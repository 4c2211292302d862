//! Hamster: parses one RAW frame into records on PARSED.
//!
//! For each frame (`raw.<protocol>.<device>`, protocol and device also in
//! headers): parse it with [`Protocol::parse`]; publish its records to
//! `parsed.<protocol>.<device>` — a frame of one record as that record's
//! JSON with `Nats-Msg-Id` = `<raw id>#0`, a frame of several as **one**
//! message, the JSON array of its records, with `<raw id>#0..<n>` and the
//! `Fleetbus-Records` header (one replicated write, delivery and ack for
//! the frame instead of one per record); wait for the PubAcks; then
//! acknowledge the frame. A crash anywhere before the ack (or a lost ack)
//! redelivers the frame, and the same ids make the second round store
//! nothing new.
//!
//! A frame that can never parse (unknown protocol, a parse error) goes to
//! DEAD (`dead.raw.…`, reason in headers) and is terminated; so do frames
//! that keep crashing workers or keep failing (the worker's [`Policy`]).
//!
//! [`Policy`]: crate::worker::Policy

use std::sync::Arc;

use async_nats::jetstream;
use async_nats::HeaderMap;
use chrono::{DateTime, Utc};
use fleetbus_codec::wire::{
    headers, parsed_frame_msg_id, parsed_msg_id, parsed_subject, DeadStage,
};
use fleetbus_codec::{ParseContext, Protocol, Record};

use crate::dead::dead_letter;
use crate::stats::Stats;
use crate::worker::{HandleError, Handler};

/// A frame's records go in one PARSED message up to this size of JSON;
/// a larger frame (rare: 255 Teltonika records with many IO elements) goes
/// record by record, well under any NATS payload limit.
pub const FRAME_MESSAGE_MAX_BYTES: usize = 256 * 1024;

/// A test hook called after the records are stored and before the frame is
/// acknowledged (fault injection: panic here to crash "mid-message").
pub type AfterPublish = Arc<dyn Fn(&jetstream::Message) + Send + Sync>;

pub struct Hamster {
    js: jetstream::Context,
    stats: Arc<Stats>,
    after_publish: Option<AfterPublish>,
}

impl Hamster {
    pub fn new(js: jetstream::Context, stats: Arc<Stats>) -> Hamster {
        Hamster {
            js,
            stats,
            after_publish: None,
        }
    }

    /// Installs a hook run between the PubAcks and the ack (tests).
    pub fn with_after_publish(mut self, hook: AfterPublish) -> Hamster {
        self.after_publish = Some(hook);
        self
    }
}

fn header<'a>(h: Option<&'a HeaderMap>, name: &str) -> Option<&'a str> {
    h.and_then(|h| h.get(name))
        .map(|v| v.as_str())
        .filter(|v| !v.is_empty())
}

/// Protocol and device from the headers, else from `raw.<protocol>.<device>`.
fn origin(msg: &jetstream::Message) -> (String, String) {
    let mut tokens = msg.subject.as_str().splitn(3, '.').skip(1);
    let (sp, sd) = (tokens.next().unwrap_or("_"), tokens.next().unwrap_or("_"));
    let h = msg.headers.as_ref();
    (
        header(h, headers::PROTOCOL).unwrap_or(sp).to_string(),
        header(h, headers::DEVICE).unwrap_or(sd).to_string(),
    )
}

/// When the frame arrived: the gateway's header, else when RAW stored it
/// (stable across redeliveries, so a re-parse gives the same records).
fn received_at(msg: &jetstream::Message, stored: Option<DateTime<Utc>>) -> DateTime<Utc> {
    header(msg.headers.as_ref(), headers::RECEIVED_AT)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .or(stored)
        .unwrap_or_else(Utc::now)
}

impl Handler for Hamster {
    async fn handle(&self, msg: &jetstream::Message) -> Result<(), HandleError> {
        let stored = msg
            .info()
            .map(|i| {
                DateTime::<Utc>::from_timestamp_nanos(i.published.unix_timestamp_nanos() as i64)
            })
            .ok();
        let (protocol, device) = origin(msg);
        self.parse_and_publish(msg, &protocol, &device, stored)
            .await?;
        // A lost ack only means a redelivery; the same ids store nothing new.
        msg.ack()
            .await
            .map_err(|e| HandleError::Retry(format!("ack: {e}")))
    }

    async fn dead_letter(&self, msg: &jetstream::Message, reason: &str) -> Result<(), String> {
        dead_letter(&self.js, DeadStage::Raw, msg, reason).await
    }
}

impl Hamster {
    async fn parse_and_publish(
        &self,
        msg: &jetstream::Message,
        protocol_name: &str,
        device: &str,
        stored: Option<DateTime<Utc>>,
    ) -> Result<(), HandleError> {
        let protocol: Protocol = protocol_name
            .parse()
            .map_err(|e| HandleError::Dead(format!("{e}")))?;
        let h = msg.headers.as_ref();
        let ctx = ParseContext::new(device, received_at(msg, stored))
            .with_model(header(h, headers::MODEL).map(str::to_string));
        let records = protocol
            .parse(&msg.payload, &ctx)
            .map_err(|e| HandleError::Dead(format!("{protocol} parse error: {e}")))?;
        let raw_id = match header(h, headers::MSG_ID) {
            Some(id) => id.to_string(),
            None => format!(
                "RAW:{}",
                msg.info().map(|i| i.stream_sequence).unwrap_or_default()
            ),
        };
        let subject = parsed_subject(protocol.name(), device);
        // What says what the message holds — one record's type, or how many
        // records a frame's array has — then what every PARSED message has.
        let headers_for = |msg_id: &str, holds: (&str, &str)| {
            let mut out = HeaderMap::new();
            out.insert(headers::MSG_ID, msg_id);
            out.insert(holds.0, holds.1);
            out.insert(headers::RAW_ID, raw_id.as_str());
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
        match frame_payload(&records)? {
            Some(payload) => {
                let id = parsed_frame_msg_id(&raw_id, records.len());
                let count = records.len().to_string();
                messages.push((headers_for(&id, (headers::RECORDS, &count)), payload));
            }
            None => {
                for (i, record) in records.iter().enumerate() {
                    let payload = serde_json::to_vec(record).map_err(|e| {
                        HandleError::Dead(format!("record {i} does not serialize: {e}"))
                    })?;
                    let id = parsed_msg_id(&raw_id, i);
                    let kind = (headers::RECORD_TYPE, record.kind());
                    messages.push((headers_for(&id, kind), payload));
                }
            }
        }
        let mut acks = Vec::with_capacity(messages.len());
        for (out, payload) in messages {
            let ack = self
                .js
                .publish_with_headers(subject.clone(), out, payload.into())
                .await
                .map_err(|e| HandleError::Retry(format!("publish to PARSED: {e}")))?;
            acks.push(ack);
        }
        for result in
            futures::future::join_all(acks.into_iter().map(std::future::IntoFuture::into_future))
                .await
        {
            result.map_err(|e| HandleError::Retry(format!("PARSED PubAck: {e}")))?;
        }
        self.stats.published(records.len() as u64);
        if let Some(hook) = &self.after_publish {
            hook(msg);
        }
        Ok(())
    }
}

/// The one PARSED payload of a frame of several records (their JSON array),
/// or `None` when the frame goes record by record: one record, or more
/// JSON than [`FRAME_MESSAGE_MAX_BYTES`].
fn frame_payload(records: &[Record]) -> Result<Option<Vec<u8>>, HandleError> {
    if records.len() < 2 {
        return Ok(None);
    }
    let payload = serde_json::to_vec(records)
        .map_err(|e| HandleError::Dead(format!("the records do not serialize: {e}")))?;
    Ok((payload.len() <= FRAME_MESSAGE_MAX_BYTES).then_some(payload))
}
