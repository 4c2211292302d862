//! Dead-lettering: a copy of a message nobody can process, published to the
//! DEAD stream with the reason in headers (docs/streams.md), acknowledged by
//! JetStream before the original is terminated.

use async_nats::jetstream::{self, AckKind};
use async_nats::HeaderMap;
use bytes::Bytes;
use fleetbus_codec::wire::{dead_subject, headers, DeadStage};

/// Everything about one message given up on.
pub struct DeadLetter<'a> {
    pub stage: DeadStage,
    pub protocol: &'a str,
    pub device: &'a str,
    /// The original payload, unchanged.
    pub payload: Bytes,
    /// The original headers (copied, except JetStream's own `Nats-*`).
    pub original: Option<&'a HeaderMap>,
    pub reason: &'a str,
    /// Where it came from.
    pub stream: &'a str,
    pub sequence: u64,
    pub subject: &'a str,
    pub deliveries: i64,
    /// For one record of a PARSED message that carries a frame: its index
    /// (the payload is then that record alone).
    pub record: Option<usize>,
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
    /// worker and the max-deliveries mover, or a redelivery, store it once.
    pub fn msg_id(&self) -> String {
        match self.record {
            None => format!("dead:{}:{}", self.stream, self.sequence),
            Some(i) => format!("dead:{}:{}#{i}", self.stream, self.sequence),
        }
    }

    pub fn headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(original) = self.original {
            for (name, values) in original.iter() {
                let n: &str = name.as_ref();
                // A single record of a frame is not the frame.
                if n.starts_with("Nats-") || (self.record.is_some() && n == headers::RECORDS) {
                    continue;
                }
                for v in values {
                    h.append(n, v.as_str());
                }
            }
        }
        h.insert(headers::MSG_ID, self.msg_id().as_str());
        h.insert(headers::DEAD_REASON, one_line(self.reason).as_str());
        h.insert(headers::DEAD_STAGE, stage_name(self.stage));
        h.insert(headers::DEAD_STREAM, self.stream);
        h.insert(headers::DEAD_SEQUENCE, self.sequence.to_string().as_str());
        h.insert(headers::DEAD_SUBJECT, self.subject);
        h.insert(
            headers::DEAD_DELIVERIES,
            self.deliveries.to_string().as_str(),
        );
        if let Some(i) = self.record {
            h.insert(headers::DEAD_RECORD, i.to_string().as_str());
        }
        h
    }

    /// Publishes it and waits for the PubAck.
    pub async fn publish(&self, js: &jetstream::Context) -> Result<(), String> {
        let subject = dead_subject(self.stage, self.protocol, self.device);
        let ack = js
            .publish_with_headers(subject, self.headers(), self.payload.clone())
            .await
            .map_err(|e| format!("publish to DEAD: {e}"))?;
        ack.await.map_err(|e| format!("DEAD PubAck: {e}"))?;
        tracing::warn!(
            stream = self.stream,
            sequence = self.sequence,
            subject = self.subject,
            reason = self.reason,
            "moved to DEAD"
        );
        Ok(())
    }
}

/// Dead-letters a message a worker received: protocol and device from its
/// headers (else its subject `<stream>.<protocol>.<device>`), then
/// terminates it once DEAD has it.
pub async fn dead_letter(
    js: &jetstream::Context,
    stage: DeadStage,
    msg: &jetstream::Message,
    reason: &str,
) -> Result<(), String> {
    publish_copy(js, stage, msg, msg.payload.clone(), None, reason).await?;
    msg.double_ack_with(AckKind::Term)
        .await
        .map_err(|e| format!("term: {e}"))
}

/// Dead-letters record `index` of a PARSED message that carries a frame,
/// alone: its payload is that record. The message itself is not
/// terminated — its other records were processed, and it is acknowledged
/// as usual.
pub async fn dead_letter_record(
    js: &jetstream::Context,
    msg: &jetstream::Message,
    index: usize,
    record: &fleetbus_codec::Record,
    reason: &str,
) -> Result<(), String> {
    let payload = serde_json::to_vec(record).map_err(|e| format!("record {index}: {e}"))?;
    let stage = DeadStage::Parsed;
    publish_copy(js, stage, msg, payload.into(), Some(index), reason).await
}

/// Publishes `payload` to DEAD with `msg`'s headers and whereabouts:
/// protocol and device from its headers, else its subject
/// `<stream>.<protocol>.<device>`.
async fn publish_copy(
    js: &jetstream::Context,
    stage: DeadStage,
    msg: &jetstream::Message,
    payload: Bytes,
    record: Option<usize>,
    reason: &str,
) -> Result<(), String> {
    let info = msg
        .info()
        .map_err(|e| format!("not a JetStream message: {e}"))?;
    let mut tokens = msg.subject.as_str().splitn(3, '.').skip(1);
    let (sp, sd) = (tokens.next().unwrap_or("_"), tokens.next().unwrap_or("_"));
    let get = |name: &str, default: &str| {
        msg.headers
            .as_ref()
            .and_then(|h| h.get(name))
            .map(|v| v.as_str().to_string())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| default.to_string())
    };
    let protocol = get(headers::PROTOCOL, sp);
    let device = get(headers::DEVICE, sd);
    DeadLetter {
        stage,
        protocol: &protocol,
        device: &device,
        payload,
        original: msg.headers.as_ref(),
        reason,
        stream: info.stream,
        sequence: info.stream_sequence,
        subject: msg.subject.as_str(),
        deliveries: info.delivered,
        record,
    }
    .publish(js)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letters_keep_the_original_headers_and_say_why() {
        let mut original = HeaderMap::new();
        original.insert(headers::MSG_ID, "teltonika:1:abc");
        original.insert(headers::PROTOCOL, "teltonika");
        original.insert(headers::GATEWAY, "gw-1");
        let letter = DeadLetter {
            stage: DeadStage::Raw,
            protocol: "teltonika",
            device: "1",
            payload: Bytes::from_static(b"\x00"),
            original: Some(&original),
            reason: "teltonika parse error:\nbad crc",
            stream: "RAW",
            sequence: 42,
            subject: "raw.teltonika.1",
            deliveries: 2,
            record: None,
        };
        let h = letter.headers();
        let get = |n: &str| h.get(n).map(|v| v.as_str().to_string());
        assert_eq!(get(headers::MSG_ID).as_deref(), Some("dead:RAW:42"));
        assert_eq!(get(headers::GATEWAY).as_deref(), Some("gw-1"));
        assert_eq!(
            get(headers::DEAD_REASON).as_deref(),
            Some("teltonika parse error: bad crc"),
            "one line"
        );
        assert_eq!(get(headers::DEAD_STAGE).as_deref(), Some("hamster"));
        assert_eq!(get(headers::DEAD_SEQUENCE).as_deref(), Some("42"));
        assert_eq!(get(headers::DEAD_DELIVERIES).as_deref(), Some("2"));
        assert_eq!(
            get(headers::DEAD_SUBJECT).as_deref(),
            Some("raw.teltonika.1")
        );
    }
}
