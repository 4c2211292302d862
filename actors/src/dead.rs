//! Dead-lettering: a copy of a message nobody can process, published to the
//! DEAD stream with the reason in headers (`fleetbus_wire::dead` describes
//! the letter). The worker terminates the original only after DEAD
//! acknowledged the copy; a DEAD that refuses it is back-pressure like any
//! other downstream.

use async_nats::jetstream;
use bytes::Bytes;
use fleetbus_wire::dead::{record_payload, DeadLetter};
use fleetbus_wire::names::DEAD;
use fleetbus_wire::{DeadStage, Envelope};

use crate::outcome::{DeadReason, Downstream};

/// Publishes `letter` with `payload` and waits for the PubAck.
pub async fn publish(
    js: &jetstream::Context,
    letter: &DeadLetter<'_>,
    payload: Bytes,
) -> Result<(), Downstream> {
    let refused = |e| Downstream::publish(DEAD, &e);
    let ack = js
        .publish_with_headers(letter.subject(), letter.headers(), payload)
        .await
        .map_err(refused)?;
    ack.await.map_err(refused)?;
    tracing::warn!(
        stream = letter.stream,
        sequence = letter.sequence,
        subject = letter.subject,
        kind = letter.kind,
        "Moved a message to DEAD: {}.",
        letter.reason
    );
    Ok(())
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
/// that carries a frame, alone: its payload is that record's array. The
/// message itself is not terminated — its other records were processed,
/// and it is acknowledged as usual.
pub async fn dead_letter_record(
    js: &jetstream::Context,
    msg: &jetstream::Message,
    index: usize,
    record_id: &str,
    record: &fleetbus_codec::Record,
    reason: &DeadReason,
) -> Result<(), Downstream> {
    let payload = record_payload(record).into();
    let record = Some((index, record_id));
    publish_copy(js, DeadStage::Parsed, msg, payload, record, reason).await
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
    let (protocol, device) = msg.origin();
    let letter = DeadLetter {
        stage,
        protocol: &protocol,
        device: &device,
        original: msg.headers.as_ref(),
        kind: reason.kind.as_str(),
        reason: &reason.detail,
        stream: &stream,
        sequence,
        subject: msg.subject.as_str(),
        deliveries,
        record,
    };
    publish(js, &letter, payload).await
}
