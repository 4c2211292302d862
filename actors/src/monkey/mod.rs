//! Monkey: processes PARSED records with a list of [`Processor`]s.
//!
//! A message of PARSED is a JSON array of [`Record`]s (docs/position.md),
//! the records of one frame ([`ParsedMessage`]). A monkey hands
//! the records to every processor in order — a frame's together, through
//! [`Processor::process_run`] — and when all succeeded the worker
//! acknowledges the message. Each record has its own [`Meta::msg_id`], its
//! identity: the same whichever frame carried it. A processor that asks for
//! a retry (what it depends on is down) holds the message: back-pressure,
//! tried again until it works, never a dead letter; one that says the
//! record is invalid sends it to DEAD (`dead.parsed.…`) — an invalid record
//! of a frame alone, while its other records go on. Every processor runs
//! again on a redelivery, so each must be idempotent.
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
use chrono::{DateTime, Utc};
use fleetbus_codec::Record;
use fleetbus_wire::ids::stored_msg_id;
use fleetbus_wire::parsed::ParsedMessage;
use fleetbus_wire::DeadStage;

use crate::dead::dead_letter_record;
use crate::outcome::{DeadKind, DeadReason, Downstream, Outcome};
use crate::stats::Stats;
use crate::worker::Handler;

/// What a processor knows about the message besides the record.
#[derive(Clone, Debug, PartialEq)]
pub struct Meta {
    /// `parsed.<protocol>.<device>`.
    pub subject: String,
    /// The record's id: its identity (`<protocol>:<device>:<fix time>:<hash>`,
    /// the same whichever frame carried it and however often the device
    /// sent it), or for a record without one `<raw id>#<index>` (or the
    /// message's id, `PARSED:<sequence>` without one). Stable across
    /// redeliveries and resends: use it to make side effects idempotent.
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
    /// Something it depends on refused or is down (a database, a publish):
    /// the monkey keeps the record and tries again until it works
    /// (back-pressure); it never gives up on it for this.
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

/// The records of a PARSED message, each with its metadata; a record's
/// `msg_id` is its id (`fleetbus_wire::parsed`: its identity, the same
/// however often and in whatever frame the device sent it, else where it
/// is in its frame).
pub fn records_of(msg: &jetstream::Message) -> Result<Vec<(Record, Meta)>, DeadReason> {
    let (stream, sequence, delivered) = msg
        .info()
        .map(|i| (i.stream.to_string(), i.stream_sequence, i.delivered))
        .unwrap_or_default();
    let read = ParsedMessage::read(msg, &stored_msg_id(&stream, sequence))
        .map_err(|e| DeadReason::new(DeadKind::NotARecord, e.to_string()))?;
    let meta = Meta {
        subject: msg.subject.to_string(),
        msg_id: read.msg_id,
        raw_id: read.meta.raw_id,
        protocol: read.meta.protocol,
        device_id: read.meta.device,
        received_at: read.meta.received_at,
        stream,
        stream_sequence: sequence,
        delivered,
    };
    Ok(read
        .records
        .into_iter()
        .map(|(record, id)| {
            let mut m = meta.clone();
            m.msg_id = id;
            (record, m)
        })
        .collect())
}

/// What a processor's error means for the message.
enum Failed {
    /// Something it depends on refused: back-pressure.
    Downstream(Downstream),
    /// The record can never be processed.
    Invalid(DeadReason),
}

fn failed(p: &dyn DynProcessor, e: ProcessError) -> Failed {
    match e {
        ProcessError::Retry(why) => Failed::Downstream(Downstream::other(p.name(), why)),
        ProcessError::Invalid(why) => Failed::Invalid(DeadReason::new(
            DeadKind::Invalid,
            format!("{}: {why}", p.name()),
        )),
    }
}

impl Handler for Monkey {
    /// The records of the messages up to the first that does not decode,
    /// through every processor's `process_run`; returns how many messages
    /// are done.
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
                    "A run failed; processing its records one by one: {e}."
                );
                return 0;
            }
        }
        whole
    }

    async fn handle(&self, msg: &jetstream::Message) -> Outcome {
        let records = match records_of(msg) {
            Ok(r) => r,
            Err(reason) => return Outcome::Dead(reason),
        };
        self.handle_frame(msg, &records).await
    }

    fn dead_letters(&self) -> (&jetstream::Context, DeadStage) {
        (&self.js, DeadStage::Parsed)
    }
}

impl Monkey {
    /// A frame's records: together through each processor's `process_run`;
    /// if one fails, record by record, where a record a processor calls
    /// invalid goes to DEAD alone (the later processors do not see it) and
    /// the others go on. Back-pressure holds the whole message, which the
    /// processors' idempotence makes safe to process again.
    async fn handle_frame(&self, msg: &jetstream::Message, records: &[(Record, Meta)]) -> Outcome {
        // One record goes straight to `process`: a run of one would only
        // do the same work twice when a processor refuses it.
        let mut together = records.len() > 1;
        for p in self.processors.iter().filter(|_| together) {
            if let Err(e) = p.process_run_boxed(records).await {
                tracing::debug!(
                    processor = p.name(),
                    records = records.len(),
                    "A frame failed; processing its records one by one: {e}."
                );
                together = false;
                break;
            }
        }
        if together {
            return Outcome::Done;
        }
        for (i, (record, meta)) in records.iter().enumerate() {
            for p in &self.processors {
                match p
                    .process_boxed(record, meta)
                    .await
                    .map_err(|e| failed(p.as_ref(), e))
                {
                    Ok(()) => {}
                    Err(Failed::Invalid(why)) => {
                        if let Err(d) =
                            dead_letter_record(&self.js, msg, i, &meta.msg_id, record, &why).await
                        {
                            return Outcome::BackPressure(d);
                        }
                        if let Some(stats) = &self.stats {
                            stats.dead();
                        }
                        break;
                    }
                    Err(Failed::Downstream(d)) => return Outcome::BackPressure(d),
                }
            }
        }
        Outcome::Done
    }
}
