//! When a check reports a problem: the [`Thresholds`] and their defaults,
//! each with why it is what it is. They are `fleetbus status` flags and also
//! part of the report (the JSON keeps the thresholds its checks used), so
//! they live with the report and the command line only flattens them in.

use serde::{Deserialize, Serialize};

/// Default of `--dead-window-secs`: 15 min, long enough for a cron or a
/// scrape every few minutes to see every dead letter at least once.
pub const DEFAULT_DEAD_WINDOW_SECS: u64 = 900;
/// Default of `--full-ratio`: a stream that discards new messages refuses
/// writes at its limit; 80 % leaves time to act before it does.
pub const DEFAULT_FULL_RATIO: f64 = 0.8;
/// Default of `--max-lag-secs`: a healthy stage acknowledges within
/// milliseconds; a minute is a stage that is stopped, failing or far behind.
pub const DEFAULT_MAX_LAG_SECS: u64 = 60;
/// Default of `--max-blocked-secs`: an election refuses writes for a few
/// seconds (docs/cluster.md); longer is a stream that stays full or a store
/// that stays down.
pub const DEFAULT_MAX_BLOCKED_SECS: u64 = 30;
/// A follower this many messages behind its stream's leader is reported; a
/// few behind is the normal pipelining of a busy stream.
pub const DEFAULT_MAX_REPLICA_LAG: u64 = 1_000;
/// More than two of nats-server's interest sweeps (2 min + up to 30 s).
pub const DEFAULT_STRANDED_AFTER_SECS: u64 = 300;

/// When a check reports a problem.
#[derive(clap::Args, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// Report dead letters DEAD received within this many seconds.
    #[arg(long, default_value_t = DEFAULT_DEAD_WINDOW_SECS)]
    pub dead_window_secs: u64,
    /// Report a stream filled above this share of its max_bytes or
    /// max_msgs (0 < ratio <= 1).
    #[arg(long, default_value_t = DEFAULT_FULL_RATIO, value_parser = parse_ratio)]
    pub full_ratio: f64,
    /// Report a consumer whose oldest unacknowledged message is older than
    /// this many seconds.
    #[arg(long, default_value_t = DEFAULT_MAX_LAG_SECS)]
    pub max_lag_secs: u64,
    /// Report a worker process blocked by back-pressure for longer than
    /// this many seconds.
    #[arg(long, default_value_t = DEFAULT_MAX_BLOCKED_SECS)]
    pub max_blocked_secs: u64,
    /// Report a stream replica more than this many messages behind its
    /// leader (an offline one always).
    #[arg(long, default_value_t = DEFAULT_MAX_REPLICA_LAG)]
    #[serde(default = "default_max_replica_lag")]
    pub max_replica_lag: u64,
    /// Report messages an interest stream keeps past every consumer's
    /// floor only once the oldest is this many seconds old. nats-server
    /// removes such messages lazily when the acks of two consumers were
    /// led from different nodes (its periodic interest sweep, about every
    /// two minutes), so a younger one may just be waiting for that sweep.
    #[arg(long, default_value_t = DEFAULT_STRANDED_AFTER_SECS)]
    #[serde(default = "default_stranded_after_secs")]
    pub stranded_after_secs: u64,
}

fn default_stranded_after_secs() -> u64 {
    DEFAULT_STRANDED_AFTER_SECS
}

fn default_max_replica_lag() -> u64 {
    DEFAULT_MAX_REPLICA_LAG
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            dead_window_secs: DEFAULT_DEAD_WINDOW_SECS,
            full_ratio: DEFAULT_FULL_RATIO,
            max_lag_secs: DEFAULT_MAX_LAG_SECS,
            max_blocked_secs: DEFAULT_MAX_BLOCKED_SECS,
            max_replica_lag: DEFAULT_MAX_REPLICA_LAG,
            stranded_after_secs: DEFAULT_STRANDED_AFTER_SECS,
        }
    }
}

fn parse_ratio(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if v > 0.0 && v <= 1.0 {
        Ok(v)
    } else {
        Err(format!("{v} is not in (0, 1]"))
    }
}
