//! Which dead letters a `fleetbus dead` command is about: by stage, kind,
//! reason, protocol, device and time. The conditions the subject carries
//! (stage, protocol, device) go to the server as a subject filter, so that
//! it sends only those; the rest are checked on each letter. The same
//! conditions are checked again on a letter fetched by sequence, which no
//! subject filter selected.
//!
//! The flags are `clap` arguments here, as `status::Thresholds` are: the
//! commands flatten them, and what they mean stays next to how they match.

use chrono::{DateTime, Utc};
use fleetbus_actors::DeadKind;
use fleetbus_wire::headers;
use fleetbus_wire::names::{self, subject_token};
use fleetbus_wire::{DeadStage, Envelope};

use super::letter::Letter;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dead::fixtures::letter;
    use fleetbus_wire::names::dead_subject;

    #[test]
    fn the_subject_filter_is_what_the_workers_write() {
        let of = |stage, protocol: Option<&str>, device: Option<&str>| Filter {
            stage,
            protocol: protocol.map(Into::into),
            device: device.map(Into::into),
            ..Filter::default()
        };
        let hamster = of(Some(Stage::Hamster), Some("teltonika"), Some("a.b"));
        let raw = dead_subject(DeadStage::Raw, "teltonika", "a.b");
        assert_eq!(hamster.subject(), raw);
        let monkey = of(Some(Stage::Monkey), Some("gt06"), Some("1"));
        let parsed = dead_subject(DeadStage::Parsed, "gt06", "1");
        assert_eq!(monkey.subject(), parsed);
        let device = of(None, None, Some("356307042441013"));
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
}
