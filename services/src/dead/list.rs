//! What `fleetbus dead ls` finds and how it shows it: every matching
//! letter is counted (per kind too) while only the oldest `limit` are
//! kept, so that a summary tells how much there is without printing it
//! all; the table fits the terminal by cutting the reason, the one column
//! that can be long.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use async_nats::jetstream;
use chrono::SecondsFormat;
use fleetbus_wire::{headers, Envelope};

use super::filter::Filter;
use super::letter::{Letter, Listed};
use super::read::{open_dead, DeadError, DeadReader};
use crate::ops::table::table;

/// What a listing found: the first `limit` letters and a count of all.
#[derive(Debug, Default)]
pub struct Listing {
    pub shown: Vec<Letter>,
    pub total: usize,
    /// Matching letters per kind (`-` for letters without one).
    pub by_kind: BTreeMap<String, usize>,
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
pub fn terminal_width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(160)
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
    table(&mut out, &header, &rows, Some(width));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dead::fixtures::letter;
    use fleetbus_wire::DeadStage;

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
