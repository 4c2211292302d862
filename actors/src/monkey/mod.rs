//! Monkey: processes PARSED records with a list of [`Processor`]s.
//!
//! A message of PARSED is one [`Record`] (JSON, docs/position.md), or all
//! records of one frame as a JSON array ([`ParsedBody`]). A monkey hands
//! the records to every processor in order — a frame's together, through
//! [`Processor::process_run`] — and when all succeeded it acknowledges the
//! message. Each record of a frame has its own [`Meta::msg_id`], the same
//! whichever way the frame was published. A processor that asks for a
//! retry gets the message again (retried in place for a while, then handed
//! back with the consumer's backoff); one that says the record is invalid,
//! or still fails at the last delivery, sends it to DEAD (`dead.parsed.…`)
//! — an invalid record of a frame alone, while its other records go on.
//! Every processor runs again on a redelivery, so each must be idempotent.
//!
//! Built-ins: [`devices::Devices`] (latest position per device in the
//! `devices` key-value bucket, and device events to the `EVENTS` stream)
//! and [`file::FileSink`] (rotating JSON-lines files).
//!
//! Your own processor is a few lines:
//!
//! ```
//! use fleetbus_actors::monkey::{Meta, ProcessError, Processor};
//! use fleetbus_codec::Record;
//!
//! struct PrintSpeeding;
//!
//! impl Processor for PrintSpeeding {
//!     fn name(&self) -> &str {
//!         "print-speeding"
//!     }
//!     async fn process(&self, record: &Record, meta: &Meta) -> Result<(), ProcessError> {
//!         if let Some(p) = record.as_position().filter(|p| p.speed > 130.0) {
//!             println!("{} at {} km/h ({})", p.device_id, p.speed, meta.msg_id);
//!         }
//!         Ok(())
//!     }
//! }
//! ```

pub mod devices;
pub mod file;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_nats::jetstream;
use async_nats::HeaderMap;
use chrono::{DateTime, Utc};
use fleetbus_codec::wire::{headers, parsed_msg_id, DeadStage, ParsedBody};
use fleetbus_codec::Record;

use crate::dead::{dead_letter, dead_letter_record};
use crate::stats::Stats;
use crate::worker::{HandleError, Handler};

/// What a processor knows about the message besides the record.
#[derive(Clone, Debug, PartialEq)]
pub struct Meta {
    /// `parsed.<protocol>.<device>`.
    pub subject: String,
    /// The message's `Nats-Msg-Id` (`<raw id>#<index>`), or `PARSED:<sequence>`
    /// when it has none: stable across redeliveries, so use it to make
    /// side effects idempotent.
    pub msg_id: String,
    /// The RAW frame's id (`Fleetbus-Raw-Id`), when given.
    pub raw_id: Option<String>,
    pub protocol: String,
    pub device_id: String,
    /// When the gateway received the frame, when given.
    pub received_at: Option<DateTime<Utc>>,
    /// Where the message is in its stream.
    pub stream: String,
    pub stream_sequence: u64,
    /// 1 on the first delivery.
    pub delivered: i64,
}

/// Why a processor did not finish.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// Try again later (a database or a publish failed).
    #[error("{0}")]
    Retry(String),
    /// This record can never be processed: to DEAD.
    #[error("{0}")]
    Invalid(String),
}

/// User logic run on every record of PARSED. Must be idempotent: after a
/// crash the same record (same [`Meta::msg_id`]) comes again.
pub trait Processor: Send + Sync + 'static {
    /// A short name for logs.
    fn name(&self) -> &str;
    fn process(
        &self,
        record: &Record,
        meta: &Meta,
    ) -> impl Future<Output = Result<(), ProcessError>> + Send;

    /// Processes consecutive records of one subject (device), in stream
    /// order, as if by `process` one after the other: a processor may merge
    /// their side effects (the `devices` one writes a device's entry once).
    /// On an error the monkey processes each record again with `process`,
    /// so a partly done run is fine. By default, `process` for each.
    fn process_run(
        &self,
        run: &[(Record, Meta)],
    ) -> impl Future<Output = Result<(), ProcessError>> + Send {
        async move {
            for (record, meta) in run {
                self.process(record, meta).await?;
            }
            Ok(())
        }
    }
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Object-safe form of [`Processor`], so a monkey can run a list of them.
pub trait DynProcessor: Send + Sync + 'static {
    fn name(&self) -> &str;
    fn process_boxed<'a>(
        &'a self,
        record: &'a Record,
        meta: &'a Meta,
    ) -> BoxFuture<'a, Result<(), ProcessError>>;
    fn process_run_boxed<'a>(
        &'a self,
        run: &'a [(Record, Meta)],
    ) -> BoxFuture<'a, Result<(), ProcessError>>;
}

impl<P: Processor> DynProcessor for P {
    fn name(&self) -> &str {
        Processor::name(self)
    }
    fn process_boxed<'a>(
        &'a self,
        record: &'a Record,
        meta: &'a Meta,
    ) -> BoxFuture<'a, Result<(), ProcessError>> {
        Box::pin(self.process(record, meta))
    }
    fn process_run_boxed<'a>(
        &'a self,
        run: &'a [(Record, Meta)],
    ) -> BoxFuture<'a, Result<(), ProcessError>> {
        Box::pin(self.process_run(run))
    }
}

/// The monkey handler: decodes the record and runs the processors.
pub struct Monkey {
    js: jetstream::Context,
    processors: Vec<Arc<dyn DynProcessor>>,
    /// Where records of a frame sent to DEAD alone are counted (whole
    /// messages are counted by the worker).
    stats: Option<Arc<Stats>>,
}

impl Monkey {
    pub fn new(js: jetstream::Context, processors: Vec<Arc<dyn DynProcessor>>) -> Monkey {
        Monkey {
            js,
            processors,
            stats: None,
        }
    }

    /// Counts the records of a frame it sends to DEAD alone in `stats`.
    pub fn with_stats(mut self, stats: Arc<Stats>) -> Monkey {
        self.stats = Some(stats);
        self
    }

    pub fn processor_names(&self) -> Vec<String> {
        self.processors
            .iter()
            .map(|p| p.name().to_string())
            .collect()
    }
}

fn header<'a>(h: Option<&'a HeaderMap>, name: &str) -> Option<&'a str> {
    h.and_then(|h| h.get(name))
        .map(|v| v.as_str())
        .filter(|v| !v.is_empty())
}

/// The metadata of a PARSED message.
pub fn meta_of(msg: &jetstream::Message) -> Meta {
    let (stream, sequence, delivered) = msg
        .info()
        .map(|i| (i.stream.to_string(), i.stream_sequence, i.delivered))
        .unwrap_or_default();
    let h = msg.headers.as_ref();
    let mut tokens = msg.subject.as_str().splitn(3, '.').skip(1);
    let (sp, sd) = (tokens.next().unwrap_or("_"), tokens.next().unwrap_or("_"));
    Meta {
        subject: msg.subject.to_string(),
        msg_id: header(h, headers::MSG_ID)
            .map(str::to_string)
            .unwrap_or_else(|| format!("{stream}:{sequence}")),
        raw_id: header(h, headers::RAW_ID).map(str::to_string),
        protocol: header(h, headers::PROTOCOL).unwrap_or(sp).to_string(),
        device_id: header(h, headers::DEVICE).unwrap_or(sd).to_string(),
        received_at: header(h, headers::RECEIVED_AT)
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc)),
        stream,
        stream_sequence: sequence,
        delivered,
    }
}

/// The records of a PARSED message, each with its metadata: for a frame,
/// record `i` is known as `<raw id>#i` (or `<message id>#i` without a RAW
/// id), as it would be had the frame been published record by record.
fn records_of(msg: &jetstream::Message) -> Result<Vec<(Record, Meta)>, HandleError> {
    let body = ParsedBody::from_json(&msg.payload)
        .map_err(|e| HandleError::Dead(format!("not a fleetbus record: {e}")))?;
    let meta = meta_of(msg);
    Ok(match body {
        ParsedBody::One(record) => vec![(record, meta)],
        ParsedBody::Frame(records) => {
            if records.is_empty() {
                return Err(HandleError::Dead("a frame of no records".into()));
            }
            let base = meta.raw_id.clone().unwrap_or_else(|| meta.msg_id.clone());
            records
                .into_iter()
                .enumerate()
                .map(|(i, r)| {
                    let mut m = meta.clone();
                    m.msg_id = parsed_msg_id(&base, i);
                    (r, m)
                })
                .collect()
        }
    })
}

fn failed(p: &dyn DynProcessor, e: ProcessError) -> HandleError {
    match e {
        ProcessError::Retry(why) => HandleError::Retry(format!("{}: {why}", p.name())),
        ProcessError::Invalid(why) => HandleError::Dead(format!("{}: {why}", p.name())),
    }
}

impl Handler for Monkey {
    /// The records of the messages up to the first that does not decode,
    /// through every processor's `process_run`; then those messages
    /// acknowledged.
    async fn handle_run(&self, msgs: &[jetstream::Message]) -> usize {
        let mut run: Vec<(Record, Meta)> = Vec::new();
        let mut whole = 0;
        for m in msgs {
            let Ok(records) = records_of(m) else { break };
            run.extend(records);
            whole += 1;
        }
        if run.is_empty() {
            return 0;
        }
        for p in &self.processors {
            if let Err(e) = p.process_run_boxed(&run).await {
                tracing::debug!(
                    processor = p.name(),
                    records = run.len(),
                    "a run failed, processing its records one by one: {e}"
                );
                return 0;
            }
        }
        let mut acked = 0;
        for msg in &msgs[..whole] {
            if msg.ack().await.is_err() {
                break;
            }
            acked += 1;
        }
        acked
    }

    async fn handle(&self, msg: &jetstream::Message) -> Result<(), HandleError> {
        let records = records_of(msg)?;
        if let [(record, meta)] = &records[..] {
            for p in &self.processors {
                p.process_boxed(record, meta)
                    .await
                    .map_err(|e| failed(p.as_ref(), e))?;
            }
        } else {
            self.handle_frame(msg, &records).await?;
        }
        msg.ack()
            .await
            .map_err(|e| HandleError::Retry(format!("ack: {e}")))
    }

    async fn dead_letter(&self, msg: &jetstream::Message, reason: &str) -> Result<(), String> {
        dead_letter(&self.js, DeadStage::Parsed, msg, reason).await
    }
}

impl Monkey {
    /// A frame's records: together through each processor's `process_run`;
    /// if one fails, record by record, where a record a processor calls
    /// invalid goes to DEAD alone (the later processors do not see it) and
    /// the others go on. A retry is the whole message again, which the
    /// processors' idempotence makes safe.
    async fn handle_frame(
        &self,
        msg: &jetstream::Message,
        records: &[(Record, Meta)],
    ) -> Result<(), HandleError> {
        let mut together = true;
        for p in &self.processors {
            if let Err(e) = p.process_run_boxed(records).await {
                tracing::debug!(
                    processor = p.name(),
                    records = records.len(),
                    "a frame failed, processing its records one by one: {e}"
                );
                together = false;
                break;
            }
        }
        if together {
            return Ok(());
        }
        for (i, (record, meta)) in records.iter().enumerate() {
            for p in &self.processors {
                match p
                    .process_boxed(record, meta)
                    .await
                    .map_err(|e| failed(p.as_ref(), e))
                {
                    Ok(()) => {}
                    Err(HandleError::Dead(why)) => {
                        dead_letter_record(&self.js, msg, i, record, &why)
                            .await
                            .map_err(HandleError::Retry)?;
                        if let Some(stats) = &self.stats {
                            stats.dead();
                        }
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }
}
