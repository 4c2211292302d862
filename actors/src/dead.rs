//! Dead-lettering: a copy of a message nobody can process, published to the
//! DEAD stream with the reason in headers (docs/streams.md). The worker
//! terminates the original only after DEAD acknowledged the copy; a DEAD
//! that refuses it is back-pressure like any other downstream.

use async_nats::jetstream;
use async_nats::HeaderMap;
use bytes::Bytes;
use fleetbus_codec::wire::{dead_subject, headers, origin, DeadStage};

use crate::outcome::{DeadReason, Downstream};

/// Everything about one message given up on.
pub struct DeadLetter<'a> {
    pub stage: DeadStage,
    pub protocol: &'a str,
    pub device: &'a str,
    /// The original payload, unchanged.
    pub payload: Bytes,
    /// The original headers (copied, except JetStream's own `Nats-*`; the
    /// original `Nats-Msg-Id` is kept as `Fleetbus-Dead-Msg-Id`).
    pub original: Option<&'a HeaderMap>,
    pub reason: &'a DeadReason,
    /// Where it came from.
    pub stream: &'a str,
    pub sequence: u64,
    pub subject: &'a str,
    /// How often it was delivered; 0 or less when nobody knows any more
    /// (the header is then left out).
    pub deliveries: i64,
    /// For one record of a PARSED message that carries a frame: its index
    /// (the payload is then that record alone) and its own id.
    pub record: Option<(usize, &'a str)>,
}

/// `hamster` or `monkey`, the `Fleetbus-Dead-Stage` header.
pub fn stage_name(stage: DeadStage) -> &'static str {
    match stage {
        DeadStage::Raw => "hamster",
        DeadStage::Parsed => "monkey",
    }
}

/// One line, as a header value must be.
pub fn one_line(text: &str) -> String {
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    line.chars().take(1000).collect()
}

impl DeadLetter<'_> {
    /// The `Nats-Msg-Id` of the dead letter: one per original message, so a
    /// redelivery stores it once.
    pub fn msg_id(&self) -> String {
        match self.record {
            None => format!("dead:{}:{}", self.stream, self.sequence),
            Some((i, _)) => format!("dead:{}:{}#{i}", self.stream, self.sequence),
        }
    }

    pub fn headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        let mut original_id = None;
        if let Some(original) = self.original {
            for (name, values) in original.iter() {
                let n: &str = name.as_ref();
                if n == headers::MSG_ID {
                    original_id = values.first().map(|v| v.as_str().to_string());
                }
                // A single record of a frame is not the frame.
                if n.starts_with("Nats-") || (self.record.is_some() && n == headers::RECORDS) {
                    continue;
                }
                for v in values {
                    h.append(n, v.as_str());
                }
            }
        }
        if let Some((_, id)) = self.record {
            original_id = Some(id.to_string());
        }
        h.insert(headers::MSG_ID, self.msg_id().as_str());
        if let Some(id) = original_id {
            h.insert(headers::DEAD_MSG_ID, id.as_str());
        }
        h.insert(headers::DEAD_REASON, one_line(&self.reason.detail).as_str());
        h.insert(headers::DEAD_KIND, self.reason.kind.as_str());
        h.insert(headers::DEAD_STAGE, stage_name(self.stage));
        h.insert(headers::DEAD_STREAM, self.stream);
        h.insert(headers::DEAD_SEQUENCE, self.sequence.to_string().as_str());
        h.insert(headers::DEAD_SUBJECT, self.subject);
        if self.deliveries > 0 {
            h.insert(
                headers::DEAD_DELIVERIES,
                self.deliveries.to_string().as_str(),
            );
        }
        if let Some((i, _)) = self.record {
            h.insert(headers::DEAD_RECORD, i.to_string().as_str());
        }
        h
    }

    /// Publishes it and waits for the PubAck.
    pub async fn publish(&self, js: &jetstream::Context) -> Result<(), Downstream> {
        let subject = dead_subject(self.stage, self.protocol, self.device);
        let ack = js
            .publish_with_headers(subject, self.headers(), self.payload.clone())
            .await
            .map_err(|e| Downstream::publish("DEAD", &e))?;
        ack.await.map_err(|e| Downstream::publish("DEAD", &e))?;
        tracing::warn!(
            stream = self.stream,
            sequence = self.sequence,
            subject = self.subject,
            kind = self.reason.kind.as_str(),
            "Moved a message to DEAD: {}.",
            self.reason
        );
        Ok(())
    }
}

/// Dead-letters a message a worker received (the worker terminates it).
pub async fn dead_letter(
    js: &jetstream::Context,
    stage: DeadStage,
    msg: &jetstream::Message,
    reason: &DeadReason,
) -> Result<(), Downstream> {
    publish_copy(js, stage, msg, msg.payload.clone(), None, reason).await
}

/// Dead-letters record `index` (its id `record_id`) of a PARSED message
/// that carries a frame, alone: its payload is that record. The message
/// itself is not terminated — its other records were processed, and it is
/// acknowledged as usual.
pub async fn dead_letter_record(
    js: &jetstream::Context,
    msg: &jetstream::Message,
    index: usize,
    record_id: &str,
    record: &fleetbus_codec::Record,
    reason: &DeadReason,
) -> Result<(), Downstream> {
    // A record that was deserialized serializes.
    let payload = serde_json::to_vec(record).unwrap_or_default();
    let stage = DeadStage::Parsed;
    publish_copy(
        js,
        stage,
        msg,
        payload.into(),
        Some((index, record_id)),
        reason,
    )
    .await
}

/// Publishes `payload` to DEAD with `msg`'s headers and whereabouts.
async fn publish_copy(
    js: &jetstream::Context,
    stage: DeadStage,
    msg: &jetstream::Message,
    payload: Bytes,
    record: Option<(usize, &str)>,
    reason: &DeadReason,
) -> Result<(), Downstream> {
    let (stream, sequence, deliveries) = msg
        .info()
        .map(|i| (i.stream.to_string(), i.stream_sequence, i.delivered))
        .unwrap_or_else(|_| ("?".into(), 0, 1));
    let h = msg.headers.as_ref();
    let get = |name| h.and_then(|h| h.get(name)).map(|v| v.as_str());
    let (protocol, device) = origin(
        msg.subject.as_str(),
        get(headers::PROTOCOL),
        get(headers::DEVICE),
    );
    DeadLetter {
        stage,
        protocol: &protocol,
        device: &device,
        payload,
        original: msg.headers.as_ref(),
        reason,
        stream: &stream,
        sequence,
        subject: msg.subject.as_str(),
        deliveries,
        record,
    }
    .publish(js)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::DeadKind;

    #[test]
    fn dead_letters_keep_the_original_headers_and_id_and_say_why() {
        let mut original = HeaderMap::new();
        original.insert(headers::MSG_ID, "teltonika:1:abc");
        original.insert(headers::PROTOCOL, "teltonika");
        original.insert(headers::GATEWAY, "gw-1");
        let reason = DeadReason::new(DeadKind::ParseError, "teltonika parse error:\nbad crc");
        let letter = DeadLetter {
            stage: DeadStage::Raw,
            protocol: "teltonika",
            device: "1",
            payload: Bytes::from_static(b"\x00"),
            original: Some(&original),
            reason: &reason,
            stream: "RAW",
            sequence: 42,
            subject: "raw.teltonika.1",
            deliveries: 2,
            record: None,
        };
        let h = letter.headers();
        let get = |n: &str| h.get(n).map(|v| v.as_str().to_string());
        assert_eq!(get(headers::MSG_ID).as_deref(), Some("dead:RAW:42"));
        assert_eq!(
            get(headers::DEAD_MSG_ID).as_deref(),
            Some("teltonika:1:abc")
        );
        assert_eq!(get(headers::GATEWAY).as_deref(), Some("gw-1"));
        assert_eq!(
            get(headers::DEAD_REASON).as_deref(),
            Some("teltonika parse error: bad crc"),
            "one line"
        );
        assert_eq!(get(headers::DEAD_KIND).as_deref(), Some("parse_error"));
        assert_eq!(get(headers::DEAD_STAGE).as_deref(), Some("hamster"));
        assert_eq!(get(headers::DEAD_SEQUENCE).as_deref(), Some("42"));
        assert_eq!(get(headers::DEAD_DELIVERIES).as_deref(), Some("2"));
        assert_eq!(
            get(headers::DEAD_SUBJECT).as_deref(),
            Some("raw.teltonika.1")
        );
        let record = DeadLetter {
            record: Some((3, "teltonika:1:2026-11-29T12:00:05.000Z:00ff")),
            stage: DeadStage::Parsed,
            ..letter
        };
        let h = record.headers();
        assert_eq!(h.get(headers::MSG_ID).unwrap().as_str(), "dead:RAW:42#3");
        assert_eq!(
            h.get(headers::DEAD_MSG_ID).unwrap().as_str(),
            "teltonika:1:2026-11-29T12:00:05.000Z:00ff",
            "a record's own id, not its frame's"
        );
        assert_eq!(h.get(headers::DEAD_RECORD).unwrap().as_str(), "3");
    }
}
