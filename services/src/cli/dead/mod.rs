//! `fleetbus dead`: DEAD is not a grave.
//!
//! * `fleetbus dead ls` lists what the workers gave up on and why;
//! * `fleetbus dead replay` puts dead letters back where they came from
//!   (after a parser was fixed, a full stream was given room), under their
//!   original message id, and only after the target stored them deletes
//!   them from DEAD;
//! * `fleetbus dead rescue` moves messages that ran out of deliveries under
//!   an older, finite `max_deliver` out of RAW and PARSED into DEAD
//!   ([`rescue`]).
//!
//! Both read DEAD without changing it: an ordered consumer (ephemeral, no
//! acknowledgements, headers only) filtered by subject, read up to the
//! stream's last sequence at the start, so that a listing ends even while
//! workers keep adding letters.
//!
//! Exit status: `ls` 0 (also when nothing matches), 2 when the cluster
//! cannot be reached. `replay` 0 when every selected letter was stored (or
//! already was), 1 when some failed, 2 when the cluster cannot be reached
//! or nothing says which letters to replay.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use async_nats::jetstream::context::GetStreamErrorKind;
use async_nats::jetstream::message::{PublishMessage, StreamMessage};
use async_nats::jetstream::stream::{LastRawMessageErrorKind, Stream};
use async_nats::jetstream::{self, publish::PublishAck};
use async_nats::HeaderMap;
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use fleetbus_actors::{DeadKind, Downstream, DownstreamKind};
use fleetbus_wire::dead::{replay_headers, DeadInfo, NoReplayTarget};
use fleetbus_wire::headers;
use fleetbus_wire::names::subject_token;
use fleetbus_wire::{names, DeadStage, Envelope};
use futures::StreamExt;
use serde::Serialize;

use crate::config::ProgramArgs;
use crate::exit::Exit;
use crate::nats::Role;

pub mod rescue;

/// The header a headers-only delivery carries instead of the payload: its
/// length in bytes.
const MSG_SIZE: &str = "Nats-Msg-Size";
/// How long DEAD may stay silent while a listing still expects letters.
const READ_IDLE: Duration = Duration::from_secs(30);
/// How long to wait for DEAD through an election before giving up (exit 2).
const OPEN_WAIT: Duration = Duration::from_secs(30);

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// List dead letters, oldest first: sequence, time, stage, kind, device, reason.
    Ls(LsArgs),
    /// Put dead letters back where they came from, then delete them from DEAD.
    Replay(ReplayArgs),
    /// Move messages no consumer will deliver again (they ran out of
    /// deliveries under an older max_deliver) from RAW and PARSED into DEAD.
    Rescue(rescue::RescueArgs),
}

#[derive(clap::Args, Debug)]
pub struct LsArgs {
    #[command(flatten)]
    pub program: ProgramArgs,
    #[command(flatten)]
    pub filter: Filter,
    /// Show at most this many letters, oldest first (0: all); the summary
    /// counts every match.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Print one JSON array (every header, the payload's length) instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub program: ProgramArgs,
    #[command(flatten)]
    pub filter: Filter,
    /// Replay these DEAD sequences (repeat, or separate with commas); the
    /// filters still apply.
    #[arg(long = "seq", value_delimiter = ',')]
    pub seq: Vec<u64>,
    /// Replay every letter in DEAD: required when no filter and no --seq is given.
    #[arg(long)]
    pub all: bool,
    /// Replay at most this many letters, oldest first (0: all).
    #[arg(long, default_value_t = 0)]
    pub limit: usize,
    /// Print what would be published; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Leave the letters in DEAD after they were stored.
    #[arg(long)]
    pub keep: bool,
    /// How long to keep trying one letter while its target does not answer
    /// (elections, timeouts), in seconds.
    #[arg(long, default_value_t = 30)]
    pub retry_secs: u64,
}

/// Which stage gave up on a letter.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// A RAW frame no parser accepted (`dead.raw.…`).
    Hamster,
    /// A PARSED message or record no processor could handle (`dead.parsed.…`).
    Monkey,
}

impl Stage {
    fn dead_stage(self) -> DeadStage {
        match self {
            Stage::Hamster => DeadStage::Raw,
            Stage::Monkey => DeadStage::Parsed,
        }
    }
}

/// Which letters: every given condition must hold.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct Filter {
    /// Only letters of this stage.
    #[arg(long, value_enum)]
    pub stage: Option<Stage>,
    /// Only letters of this kind (`Fleetbus-Dead-Kind`).
    #[arg(long, value_parser = kind_parser())]
    pub kind: Option<String>,
    /// Only letters whose reason contains this text (case-insensitive).
    #[arg(long)]
    pub reason: Option<String>,
    /// Only letters of this protocol.
    #[arg(long)]
    pub protocol: Option<String>,
    /// Only letters of this device.
    #[arg(long)]
    pub device: Option<String>,
    /// Only letters stored at or after WHEN: RFC 3339, or a duration ago
    /// (`90s`, `30m`, `2h`, `7d`, `1w`).
    #[arg(long, value_parser = parse_when, value_name = "WHEN")]
    pub since: Option<DateTime<Utc>>,
    /// Only letters stored at or before WHEN (as --since).
    #[arg(long, value_parser = parse_when, value_name = "WHEN")]
    pub until: Option<DateTime<Utc>>,
}

fn kind_parser() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(DeadKind::ALL.map(DeadKind::as_str))
}

/// `WHEN`: an RFC 3339 time, or a duration before now.
pub fn parse_when(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let ago = parse_ago(text).ok_or_else(|| {
        format!("{text:?} is neither an RFC 3339 time nor a duration like 30m, 2h, 7d")
    })?;
    Ok(Utc::now() - ago)
}

/// `90s`, `30m`, `2h`, `7d`, `1w`.
fn parse_ago(text: &str) -> Option<chrono::Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let n: i64 = number.parse().ok()?;
    match unit {
        "s" => chrono::Duration::try_seconds(n),
        "m" => chrono::Duration::try_minutes(n),
        "h" => chrono::Duration::try_hours(n),
        "d" => chrono::Duration::try_days(n),
        "w" => chrono::Duration::try_weeks(n),
        _ => None,
    }
}

impl Filter {
    /// No condition at all: everything in DEAD.
    pub fn is_empty(&self) -> bool {
        let Filter {
            stage,
            kind,
            reason,
            protocol,
            device,
            since,
            until,
        } = self;
        stage.is_none()
            && kind.is_none()
            && reason.is_none()
            && protocol.is_none()
            && device.is_none()
            && since.is_none()
            && until.is_none()
    }

    /// The subject filter that lets the server select by stage, protocol
    /// and device: `dead.<raw|parsed|*>.<protocol|*>.<device|*>`.
    pub fn subject(&self) -> String {
        let stage = self.stage.map_or("*", |s| s.dead_stage().token());
        let token = |v: &Option<String>| v.as_deref().map_or("*".into(), subject_token);
        format!(
            "{}.{stage}.{}.{}",
            names::Stream::Dead.root(),
            token(&self.protocol),
            token(&self.device)
        )
    }

    /// Whether `letter` meets every condition (the subject's ones too, for
    /// letters fetched by sequence).
    pub fn matches(&self, letter: &Letter) -> bool {
        let tokens = letter.subject_tokens();
        let token_is = |i: usize, want: &str| tokens.get(i).is_some_and(|t| *t == want);
        self.stage
            .is_none_or(|s| token_is(1, s.dead_stage().token()))
            && self
                .protocol
                .as_ref()
                .is_none_or(|p| token_is(2, &subject_token(p)))
            && self
                .device
                .as_ref()
                .is_none_or(|d| token_is(3, &subject_token(d)))
            && self
                .kind
                .as_ref()
                .is_none_or(|k| letter.header(headers::DEAD_KIND) == Some(k.as_str()))
            && self.reason.as_ref().is_none_or(|r| {
                letter
                    .header(headers::DEAD_REASON)
                    .is_some_and(|reason| reason.to_lowercase().contains(&r.to_lowercase()))
            })
            && self.since.is_none_or(|t| letter.stored >= t)
            && self.until.is_none_or(|t| letter.stored <= t)
    }
}

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
fn utc(t: async_nats::datetime::DateTime) -> DateTime<Utc> {
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
    fn from_delivered(m: &jetstream::Message, sequence: u64, stored: DateTime<Utc>) -> Letter {
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

    fn subject_tokens(&self) -> Vec<&str> {
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

/// Why DEAD could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DeadError {
    #[error("stream DEAD does not exist (run `fleetbus provision`)")]
    Missing,
    #[error("stream DEAD is not answering: {0}")]
    Unavailable(String),
    #[error("reading DEAD stalled for {READ_IDLE:?} with letters still pending: {0}")]
    Stalled(String),
}

/// DEAD, waiting through an election for up to [`OPEN_WAIT`].
async fn open_dead(js: &jetstream::Context) -> Result<Stream, DeadError> {
    let deadline = Instant::now() + OPEN_WAIT;
    loop {
        let error = match js.get_stream(names::DEAD).await {
            Ok(stream) => return Ok(stream),
            Err(e) => e,
        };
        if let GetStreamErrorKind::JetStream(j) = error.kind() {
            if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND {
                return Err(DeadError::Missing);
            }
        }
        if Instant::now() > deadline {
            return Err(DeadError::Unavailable(error.to_string()));
        }
        tracing::debug!(error = %error, "DEAD is not answering yet; trying again.");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Reads the letters matching a filter's subject, oldest first, headers
/// only, up to the last sequence DEAD had when it was opened.
struct DeadReader {
    messages: Option<pull::Ordered>,
    end: u64,
}

impl DeadReader {
    async fn open(dead: &mut Stream, filter: &Filter) -> Result<DeadReader, DeadError> {
        let unavailable = |e: &dyn std::fmt::Display| DeadError::Unavailable(e.to_string());
        let end = dead
            .info()
            .await
            .map_err(|e| unavailable(&e))?
            .state
            .last_sequence;
        let config = pull::OrderedConfig {
            description: Some("fleetbus dead: reading, changing nothing".into()),
            filter_subject: filter.subject(),
            deliver_policy: deliver_policy(filter.since),
            headers_only: true,
            ..Default::default()
        };
        let consumer = dead
            .create_consumer(config)
            .await
            .map_err(|e| unavailable(&e))?;
        if end == 0 || consumer.cached_info().num_pending == 0 {
            return Ok(DeadReader {
                messages: None,
                end,
            });
        }
        let messages = consumer.messages().await.map_err(|e| unavailable(&e))?;
        Ok(DeadReader {
            messages: Some(messages),
            end,
        })
    }

    /// The next letter, `None` at the end.
    async fn next(&mut self) -> Result<Option<Letter>, DeadError> {
        let Some(messages) = self.messages.as_mut() else {
            return Ok(None);
        };
        let deadline = tokio::time::Instant::now() + READ_IDLE;
        let mut last_error = String::from("no message");
        let msg = loop {
            match tokio::time::timeout_at(deadline, messages.next()).await {
                Err(_) => return Err(DeadError::Stalled(last_error)),
                Ok(None) => {
                    self.messages = None;
                    return Ok(None);
                }
                // The ordered consumer recreates itself after a gap or a
                // lost leader; what it reports meanwhile is only news.
                Ok(Some(Err(e))) => last_error = e.to_string(),
                Ok(Some(Ok(m))) => break m,
            }
        };
        let (sequence, stored, pending) = match msg.info() {
            Ok(i) => (i.stream_sequence, utc(i.published), i.pending),
            Err(e) => return Err(DeadError::Unavailable(e.to_string())),
        };
        if sequence > self.end {
            self.messages = None;
            return Ok(None);
        }
        if pending == 0 || sequence == self.end {
            self.messages = None;
        }
        Ok(Some(Letter::from_delivered(&msg, sequence, stored)))
    }
}

/// Everything from `since` on, on the server's side.
fn deliver_policy(since: Option<DateTime<Utc>>) -> DeliverPolicy {
    let start = since
        .and_then(|t| t.timestamp_nanos_opt())
        .and_then(|n| async_nats::datetime::from_nanos(i128::from(n)).ok());
    match start {
        Some(start_time) => DeliverPolicy::ByStartTime { start_time },
        None => DeliverPolicy::All,
    }
}

/// Connects as admin; the exit status (the reason on stderr) when it
/// cannot, or `Ok` when `--print-config` printed the options instead.
async fn connect(
    program: &ProgramArgs,
    name: &str,
) -> anyhow::Result<Result<jetstream::Context, Exit>> {
    let Some(nats) = program.admin_nats()? else {
        return Ok(Err(Exit::Ok));
    };
    let config = nats.config(Role::Admin, name)?;
    match config.connect().await {
        Ok(client) => Ok(Ok(jetstream::new(client))),
        Err(e) => {
            eprintln!("fleetbus dead: {e}");
            Ok(Err(Exit::Unreachable))
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Ls(args) => crate::cli::tool_runtime()?.block_on(ls(args)),
        Command::Replay(args) => crate::cli::tool_runtime()?.block_on(replay(args)),
        Command::Rescue(args) => crate::cli::tool_runtime()?.block_on(rescue::rescue(args)),
    }
}

// ---- ls ---------------------------------------------------------------------

/// What a listing found: the first `limit` letters and a count of all.
#[derive(Debug, Default)]
pub struct Listing {
    pub shown: Vec<Letter>,
    pub total: usize,
    /// Matching letters per kind (`-` for letters without one).
    pub by_kind: BTreeMap<String, usize>,
}

async fn ls(args: LsArgs) -> anyhow::Result<ExitCode> {
    let js = match connect(&args.program, "fleetbus-dead-ls").await? {
        Ok(js) => js,
        Err(code) => return Ok(code.into()),
    };
    let listing = match list(&js, &args.filter, args.limit).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("fleetbus dead ls: {e}");
            return Ok(Exit::Unreachable.into());
        }
    };
    if args.json {
        let rows: Vec<Listed> = listing.shown.iter().map(Letter::listed).collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", render_listing(&listing, terminal_width()));
    }
    Ok(Exit::Ok.into())
}

/// Reads every matching letter, keeps the first `limit` (0: all).
pub async fn list(
    js: &jetstream::Context,
    filter: &Filter,
    limit: usize,
) -> Result<Listing, DeadError> {
    let mut dead = open_dead(js).await?;
    let mut reader = DeadReader::open(&mut dead, filter).await?;
    let mut listing = Listing::default();
    while let Some(letter) = reader.next().await? {
        if !filter.matches(&letter) {
            continue;
        }
        listing.total += 1;
        let kind = letter.header(headers::DEAD_KIND).unwrap_or("-");
        *listing.by_kind.entry(kind.to_string()).or_default() += 1;
        if limit == 0 || listing.shown.len() < limit {
            listing.shown.push(letter);
        }
    }
    Ok(listing)
}

/// `$COLUMNS` when the shell exports it, else a wide terminal's.
fn terminal_width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(160)
}

/// At most `width` characters, `…` marking a cut.
fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// The table and the summary line.
pub fn render_listing(listing: &Listing, width: usize) -> String {
    let mut out = String::new();
    if listing.total == 0 {
        out.push_str("No dead letters match.\n");
        return out;
    }
    let rows: Vec<Vec<String>> = listing
        .shown
        .iter()
        .map(|letter| {
            let Listed {
                sequence, info: l, ..
            } = letter.listed();
            vec![
                sequence.to_string(),
                letter.stored.to_rfc3339_opts(SecondsFormat::Secs, true),
                l.stage,
                l.kind.unwrap_or_else(|| "-".into()),
                l.protocol,
                l.device,
                l.deliveries.map_or("-".into(), |d| d.to_string()),
                l.reason.unwrap_or_default(),
            ]
        })
        .collect();
    let header = [
        "SEQ",
        "STORED",
        "STAGE",
        "KIND",
        "PROTOCOL",
        "DEVICE",
        "DELIVERIES",
        "REASON",
    ];
    table(&mut out, &header, &rows, width);
    let kinds: Vec<String> = listing
        .by_kind
        .iter()
        .map(|(kind, n)| format!("{n} {kind}"))
        .collect();
    let _ = write!(
        out,
        "\n{} dead letter{} match: {}",
        listing.total,
        if listing.total == 1 { "" } else { "s" },
        kinds.join(", ")
    );
    if listing.shown.len() < listing.total {
        let _ = write!(
            out,
            " (showing the oldest {}: --limit, --since)",
            listing.shown.len()
        );
    }
    out.push('\n');
    out
}

/// Aligned columns, two spaces apart; the last one cut to fit `width`.
fn table(out: &mut String, header: &[&str], rows: &[Vec<String>], width: usize) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let used: usize = widths[..widths.len() - 1].iter().map(|w| w + 2).sum();
    let last = width.saturating_sub(used).max(20);
    let mut line = |cells: &[String]| {
        let mut l = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(&truncate(cell, last));
            } else {
                let _ = write!(l, "{cell:<w$}  ", w = widths[i]);
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&header.iter().map(|h| h.to_string()).collect::<Vec<_>>());
    for row in rows {
        line(row);
    }
}

// ---- replay -----------------------------------------------------------------

/// What a replay publishes for one letter.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Its DEAD sequence.
    pub sequence: u64,
    /// `Fleetbus-Dead-Subject`: where it came from.
    pub subject: String,
    /// The `Nats-Msg-Id` it is published under.
    pub msg_id: String,
    /// The original headers, `Nats-Msg-Id` the original id.
    pub headers: HeaderMap,
    pub payload: Bytes,
}

/// Why one letter was not replayed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    #[error("not in DEAD (replayed already, or expired)")]
    Missing,
    #[error(transparent)]
    Target(#[from] NoReplayTarget),
    #[error("it does not match the filters")]
    NotSelected,
    #[error("refused: {0}")]
    Refused(String),
    #[error("not stored within {waited:?}: {last}")]
    GaveUp { waited: Duration, last: String },
    #[error(
        "not stored: {stream} saw id {id} within its duplicate window, and the message \
         (#{sequence}) is no longer there; try again once the window has passed"
    )]
    Forgotten {
        stream: String,
        sequence: u64,
        id: String,
    },
    #[error("{0}")]
    Read(String),
}

/// What happened to one letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replayed {
    /// Published and stored as `sequence` of `stream`.
    Stored { stream: String, sequence: u64 },
    /// The target already holds it (an earlier replay).
    AlreadyStored { stream: String, sequence: u64 },
    /// `--dry-run`.
    Planned,
}

/// One line of a replay's report.
#[derive(Debug)]
pub struct Line {
    pub sequence: u64,
    pub plan: Option<(String, String)>,
    pub result: Result<Replayed, ReplayError>,
    /// Whether (and how) it was deleted from DEAD, when it was to be.
    pub deleted: Option<Result<(), String>>,
}

impl Line {
    /// Stored (or already stored) and, unless kept, gone from DEAD.
    pub fn ok(&self) -> bool {
        self.result.is_ok() && !matches!(self.deleted, Some(Err(_)))
    }
}

/// What to publish for `letter`: its payload, where it came from, under
/// its original id (`fleetbus_wire::dead`).
pub fn plan(letter: &Letter) -> Result<Plan, ReplayError> {
    let info = letter.info();
    let subject = info.replay_subject()?.to_string();
    let msg_id = info.replay_msg_id(&letter.payload, letter.sequence);
    Ok(Plan {
        sequence: letter.sequence,
        subject,
        headers: replay_headers(Some(&letter.headers), &msg_id),
        msg_id,
        payload: letter.payload.clone(),
    })
}

/// How a replay behaves.
#[derive(Clone, Copy, Debug)]
pub struct ReplayOptions {
    pub dry_run: bool,
    pub keep: bool,
    pub retry_for: Duration,
}

async fn replay(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    if args.filter.is_empty() && args.seq.is_empty() && !args.all {
        eprintln!(
            "fleetbus dead replay: say which letters: a filter (--stage, --kind, --reason, \
             --protocol, --device, --since, --until), --seq N, or --all for every letter in DEAD"
        );
        return Ok(Exit::Usage.into());
    }
    let js = match connect(&args.program, "fleetbus-dead-replay").await? {
        Ok(js) => js,
        Err(code) => return Ok(code.into()),
    };
    let dead = match open_dead(&js).await {
        Ok(d) => d,
        Err(e) => {
            eprintln!("fleetbus dead replay: {e}");
            return Ok(Exit::Unreachable.into());
        }
    };
    let selected = match select(dead.clone(), &args).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fleetbus dead replay: {e}");
            return Ok(Exit::Unreachable.into());
        }
    };
    if selected.is_empty() {
        println!("No dead letters match: nothing replayed.");
        return Ok(Exit::Ok.into());
    }
    let options = ReplayOptions {
        dry_run: args.dry_run,
        keep: args.keep,
        retry_for: Duration::from_secs(args.retry_secs),
    };
    let mut lines = Vec::new();
    for sequence in selected {
        let line = replay_letter(&js, &dead, sequence, &args.filter, options).await;
        // Printed as it goes: a long replay shows its progress.
        println!("{}", render_line(&line, options));
        lines.push(line);
    }
    println!("{}", summary(&lines, options));
    Ok(Exit::problems_unless(lines.iter().all(Line::ok)).into())
}

/// The DEAD sequences to replay, oldest first: the given ones, else every
/// letter the filter matches.
async fn select(mut dead: Stream, args: &ReplayArgs) -> Result<Vec<u64>, DeadError> {
    let mut out = if args.seq.is_empty() {
        let mut reader = DeadReader::open(&mut dead, &args.filter).await?;
        let mut out = Vec::new();
        while let Some(letter) = reader.next().await? {
            if args.filter.matches(&letter) {
                out.push(letter.sequence);
            }
        }
        out
    } else {
        args.seq.clone()
    };
    out.sort_unstable();
    out.dedup();
    if args.limit > 0 {
        out.truncate(args.limit);
    }
    Ok(out)
}

/// Fetches, publishes and (unless kept) deletes one letter.
pub async fn replay_letter(
    js: &jetstream::Context,
    dead: &Stream,
    sequence: u64,
    filter: &Filter,
    options: ReplayOptions,
) -> Line {
    let mut line = Line {
        sequence,
        plan: None,
        result: Err(ReplayError::Missing),
        deleted: None,
    };
    let letter = match fetch(dead, sequence, options.retry_for).await {
        Ok(Some(letter)) => letter,
        Ok(None) => return line,
        Err(e) => {
            line.result = Err(e);
            return line;
        }
    };
    if !filter.matches(&letter) {
        line.result = Err(ReplayError::NotSelected);
        return line;
    }
    let plan = match plan(&letter) {
        Ok(p) => p,
        Err(e) => {
            line.result = Err(e);
            return line;
        }
    };
    line.plan = Some((plan.subject.clone(), plan.msg_id.clone()));
    if options.dry_run {
        line.result = Ok(Replayed::Planned);
        return line;
    }
    line.result = store(js, &plan, options.retry_for).await;
    if line.result.is_ok() && !options.keep {
        line.deleted = Some(delete(dead, sequence, options.retry_for).await);
    }
    line
}

/// Letter `sequence` of DEAD with its payload, `None` when it is not there.
async fn fetch(
    dead: &Stream,
    sequence: u64,
    retry_for: Duration,
) -> Result<Option<Letter>, ReplayError> {
    let started = Instant::now();
    loop {
        let e = match dead.get_raw_message(sequence).await {
            Ok(m) => return Ok(Some(Letter::from_stored(m))),
            Err(e) => e,
        };
        if missing_message(&e) {
            return Ok(None);
        }
        if started.elapsed() >= retry_for {
            return Err(ReplayError::Read(format!(
                "cannot read DEAD #{sequence}: {e}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn missing_message(e: &async_nats::jetstream::stream::RawMessageError) -> bool {
    match e.kind() {
        LastRawMessageErrorKind::NoMessageFound => true,
        LastRawMessageErrorKind::JetStream(j) => {
            j.error_code() == jetstream::ErrorCode::NO_MESSAGE_FOUND
        }
        _ => false,
    }
}

/// Publishes `plan` and waits for the PubAck, trying again while the
/// target does not answer (an election answers "no responders" for a few
/// seconds; a lost connection times out) for up to `retry_for`, as the
/// gateway does: with the same message id a retry never stores twice. A
/// refusal (a full stream, a payload too large) is not retried: it needs
/// an operator, and the letter stays in DEAD.
async fn store(
    js: &jetstream::Context,
    plan: &Plan,
    retry_for: Duration,
) -> Result<Replayed, ReplayError> {
    let started = Instant::now();
    let mut backoff = Duration::from_millis(100);
    loop {
        let publish = PublishMessage::build()
            .payload(plan.payload.clone())
            .headers(plan.headers.clone());
        let result = match js.send_publish(plan.subject.clone(), publish).await {
            Ok(ack) => ack.await,
            Err(e) => Err(e),
        };
        let error = match result {
            Ok(ack) if ack.duplicate => return already_stored(js, &ack, &plan.msg_id).await,
            Ok(ack) => {
                return Ok(Replayed::Stored {
                    stream: ack.stream,
                    sequence: ack.sequence,
                })
            }
            Err(e) => Downstream::publish(plan.subject.as_str(), &e),
        };
        let transient = matches!(
            error.kind,
            DownstreamKind::Unavailable | DownstreamKind::Timeout
        );
        if !transient {
            return Err(ReplayError::Refused(error.detail));
        }
        if started.elapsed() + backoff >= retry_for {
            return Err(ReplayError::GaveUp {
                waited: started.elapsed(),
                last: error.detail,
            });
        }
        tracing::debug!(subject = %plan.subject, error = %error.detail,
            "Replaying a dead letter failed; trying again with the same message id.");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// A duplicate PubAck names the message that holds the id. That is an
/// earlier replay when the target still holds it; when it is gone, it was
/// the original (consumed, then given up on, within the duplicate window)
/// and this replay stored nothing: the letter must stay.
async fn already_stored(
    js: &jetstream::Context,
    ack: &PublishAck,
    msg_id: &str,
) -> Result<Replayed, ReplayError> {
    let read_error = |e: &dyn std::fmt::Display| {
        ReplayError::Read(format!(
            "{} says duplicate of #{}, which cannot be read: {e}",
            ack.stream, ack.sequence
        ))
    };
    let stream = js
        .get_stream_no_info(&ack.stream)
        .await
        .map_err(|e| read_error(&e))?;
    let held = match stream.get_raw_message(ack.sequence).await {
        Ok(m) => m.headers.get(headers::MSG_ID).map(|v| v.as_str()) == Some(msg_id),
        Err(e) if missing_message(&e) => false,
        Err(e) => return Err(read_error(&e)),
    };
    if held {
        Ok(Replayed::AlreadyStored {
            stream: ack.stream.clone(),
            sequence: ack.sequence,
        })
    } else {
        Err(ReplayError::Forgotten {
            stream: ack.stream.clone(),
            sequence: ack.sequence,
            id: msg_id.to_string(),
        })
    }
}

/// Deletes letter `sequence` from DEAD (already gone counts as deleted).
async fn delete(dead: &Stream, sequence: u64, retry_for: Duration) -> Result<(), String> {
    let started = Instant::now();
    loop {
        let e = match dead.delete_message(sequence).await {
            Ok(_) => return Ok(()),
            Err(e) => e,
        };
        if e.to_string().to_ascii_lowercase().contains("not found") {
            return Ok(());
        }
        if started.elapsed() >= retry_for {
            return Err(e.to_string());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `DEAD #7 -> raw.teltonika.1  id teltonika:1:…  stored as RAW #12, deleted from DEAD`.
pub fn render_line(line: &Line, options: ReplayOptions) -> String {
    let mut out = format!("{} #{}", names::DEAD, line.sequence);
    if let Some((subject, id)) = &line.plan {
        let _ = write!(out, " -> {subject}  id {id}");
    }
    let _ = match &line.result {
        Ok(Replayed::Stored { stream, sequence }) => {
            write!(out, "  stored as {stream} #{sequence}")
        }
        Ok(Replayed::AlreadyStored { stream, sequence }) => {
            write!(out, "  already stored as {stream} #{sequence} (duplicate)")
        }
        Ok(Replayed::Planned) if options.keep => write!(out, "  would be published"),
        Ok(Replayed::Planned) => write!(out, "  would be published, then deleted from DEAD"),
        Err(e @ ReplayError::Missing) => write!(out, "  FAILED: {e}"),
        Err(e) => write!(out, "  FAILED: {e}; it stays in DEAD"),
    };
    let _ = match &line.deleted {
        Some(Ok(())) => write!(out, ", deleted from DEAD"),
        Some(Err(e)) => write!(out, ", but NOT deleted from DEAD: {e}"),
        None => Ok(()),
    };
    out
}

/// `3 letters: 2 stored, 1 already stored, 0 failed; 3 deleted from DEAD`.
pub fn summary(lines: &[Line], options: ReplayOptions) -> String {
    let count = |f: &dyn Fn(&Line) -> bool| lines.iter().filter(|l| f(l)).count();
    let total = lines.len();
    let letters = if total == 1 { "letter" } else { "letters" };
    if options.dry_run {
        let planned = count(&|l| l.result.is_ok());
        return format!(
            "{total} {letters}: {planned} would be replayed, {} could not be (dry run, nothing changed)",
            total - planned
        );
    }
    let stored = count(&|l| matches!(l.result, Ok(Replayed::Stored { .. })));
    let already = count(&|l| matches!(l.result, Ok(Replayed::AlreadyStored { .. })));
    let failed = count(&|l| !l.ok());
    let deleted = count(&|l| matches!(l.deleted, Some(Ok(()))));
    let mut out =
        format!("{total} {letters}: {stored} stored, {already} already stored, {failed} failed");
    if !options.keep {
        let _ = write!(out, "; {deleted} deleted from {}", names::DEAD);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetbus_wire::names::dead_subject;

    fn letter(stage: DeadStage, headers: &[(&str, &str)], payload: &[u8]) -> Letter {
        let mut h = HeaderMap::new();
        for (n, v) in headers {
            h.insert(*n, *v);
        }
        Letter {
            sequence: 9,
            stored: Utc::now(),
            subject: dead_subject(stage, "teltonika", "1"),
            headers: h,
            payload: Bytes::copy_from_slice(payload),
            payload_len: payload.len(),
        }
    }

    #[test]
    fn the_subject_filter_is_what_the_workers_write() {
        let filter = Filter {
            stage: Some(Stage::Hamster),
            protocol: Some("teltonika".into()),
            device: Some("a.b".into()),
            ..Filter::default()
        };
        assert_eq!(
            filter.subject(),
            dead_subject(DeadStage::Raw, "teltonika", "a.b")
        );
        let monkey = Filter {
            stage: Some(Stage::Monkey),
            protocol: Some("gt06".into()),
            device: Some("1".into()),
            ..Filter::default()
        };
        assert_eq!(
            monkey.subject(),
            dead_subject(DeadStage::Parsed, "gt06", "1")
        );
        let device = Filter {
            device: Some("356307042441013".into()),
            ..Filter::default()
        };
        assert_eq!(device.subject(), "dead.*.*.356307042441013");
        assert_eq!(Filter::default().subject(), "dead.*.*.*");
        assert!(Filter::default().is_empty());
        assert!(!device.is_empty());
    }

    #[test]
    fn when_is_a_time_or_a_duration_ago() {
        let t = parse_when("2026-11-29T12:00:05+02:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-29T10:00:05+00:00");
        let ago = Utc::now() - parse_when("2h").unwrap();
        assert!((ago.num_seconds() - 7200).abs() < 5, "{ago}");
        assert_eq!(parse_ago("7d"), chrono::Duration::try_days(7));
        assert_eq!(parse_ago("30m"), chrono::Duration::try_minutes(30));
        for bad in ["", "h", "2x", "yesterday", "-1h"] {
            assert!(parse_when(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn filters_select_by_kind_reason_device_and_time() {
        let l = letter(
            DeadStage::Raw,
            &[
                (headers::DEAD_KIND, "parse_error"),
                (headers::DEAD_REASON, "teltonika parse error: bad CRC"),
            ],
            b"x",
        );
        let f = |f: Filter| f.matches(&l);
        assert!(f(Filter::default()));
        assert!(f(Filter {
            reason: Some("crc".into()),
            kind: Some("parse_error".into()),
            stage: Some(Stage::Hamster),
            device: Some("1".into()),
            ..Filter::default()
        }));
        assert!(!f(Filter {
            kind: Some("invalid".into()),
            ..Filter::default()
        }));
        assert!(!f(Filter {
            stage: Some(Stage::Monkey),
            ..Filter::default()
        }));
        assert!(!f(Filter {
            device: Some("2".into()),
            ..Filter::default()
        }));
        assert!(!f(Filter {
            since: Some(Utc::now() + chrono::Duration::hours(1)),
            ..Filter::default()
        }));
        assert!(!f(Filter {
            until: Some(Utc::now() - chrono::Duration::hours(1)),
            ..Filter::default()
        }));
    }

    #[test]
    fn a_replay_uses_the_original_id_and_headers() {
        let l = letter(
            DeadStage::Raw,
            &[
                (headers::MSG_ID, "dead:RAW:42"),
                (headers::DEAD_MSG_ID, "teltonika:1:abc"),
                (headers::DEAD_SUBJECT, "raw.teltonika.1"),
                (headers::DEAD_REASON, "bad"),
                (headers::PROTOCOL, "teltonika"),
                (headers::GATEWAY, "gw-1"),
            ],
            b"frame",
        );
        let p = plan(&l).unwrap();
        assert_eq!(p.subject, "raw.teltonika.1");
        assert_eq!(p.msg_id, "teltonika:1:abc");
        let get = |n: &str| p.headers.get(n).map(|v| v.as_str().to_string());
        assert_eq!(get(headers::MSG_ID).as_deref(), Some("teltonika:1:abc"));
        assert_eq!(get(headers::GATEWAY).as_deref(), Some("gw-1"));
        assert_eq!(get(headers::DEAD_REASON), None);
        assert_eq!(get(headers::DEAD_SUBJECT), None);
        assert_eq!(get(headers::DEAD_MSG_ID), None);
    }

    #[test]
    fn a_letter_without_a_target_is_not_planned() {
        // How ids are derived is fleetbus_wire::dead's; the plan uses it.
        let raw = letter(
            DeadStage::Raw,
            &[(headers::DEAD_SUBJECT, "raw.teltonika.1")],
            b"frame",
        );
        let p = plan(&raw).unwrap();
        assert_eq!(
            p.msg_id,
            fleetbus_wire::ids::raw_msg_id("teltonika", "1", b"frame")
        );
        let bare = letter(DeadStage::Parsed, &[], b"{}");
        let dead_target = letter(
            DeadStage::Raw,
            &[(headers::DEAD_SUBJECT, "dead.raw.teltonika.1")],
            b"x",
        );
        assert!(matches!(
            plan(&dead_target),
            Err(ReplayError::Target(NoReplayTarget::IntoDead(_)))
        ));
        assert_eq!(
            plan(&bare),
            Err(ReplayError::Target(NoReplayTarget::NoTarget))
        );
    }

    #[test]
    fn a_listing_says_how_many_of_each_kind_and_when_nothing_matches() {
        let l = letter(
            DeadStage::Raw,
            &[
                (headers::DEAD_KIND, "parse_error"),
                (headers::DEAD_REASON, &"x".repeat(300)),
                (headers::DEAD_DELIVERIES, "2"),
            ],
            b"x",
        );
        let listing = Listing {
            shown: vec![l.clone()],
            total: 3,
            by_kind: [("parse_error".to_string(), 2), ("invalid".to_string(), 1)].into(),
        };
        let text = render_listing(&listing, 100);
        assert!(text.starts_with("SEQ"), "{text}");
        assert!(text.lines().all(|l| l.chars().count() <= 100), "{text}");
        assert!(
            text.contains("3 dead letters match: 1 invalid, 2 parse_error (showing the oldest 1"),
            "{text}"
        );
        assert_eq!(
            render_listing(&Listing::default(), 100),
            "No dead letters match.\n"
        );
        assert_eq!(l.listed().info.stage, "hamster");
        assert_eq!(l.listed().info.deliveries, Some(2));
        assert_eq!(l.listed().info.device, "1");
    }
}
