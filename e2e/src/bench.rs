//! The command line of the benchmarks (`cargo bench -p fleetbus-e2e --bench
//! <name> -- <options>`): one reader for all of them, so that a mistyped
//! value is an error and never silently the default.

use std::str::FromStr;

use std::time::{Duration, Instant};

use anyhow::Context;
use async_nats::jetstream::consumer::PullConsumer;

/// The benchmark's arguments.
pub struct Argv(Vec<String>);

impl Argv {
    pub fn from_env() -> Argv {
        Argv(std::env::args().collect())
    }

    /// `cargo bench` passes `--bench`; `cargo test --all-targets` does not,
    /// and a benchmark then makes a small smoke run.
    pub fn full(&self) -> bool {
        self.flag("--bench")
    }

    pub fn flag(&self, name: &str) -> bool {
        self.0.iter().any(|a| a == name)
    }

    /// The value after `name`, if given; numbers may be written `40_000`
    /// or `40,000`.
    pub fn value<T: FromStr>(&self, name: &str) -> anyhow::Result<Option<T>> {
        let Some(i) = self.0.iter().position(|a| a == name) else {
            return Ok(None);
        };
        let v = self
            .0
            .get(i + 1)
            .with_context(|| format!("{name} needs a value"))?;
        let parsed = v.replace(['_', ','], "").parse().ok();
        parsed
            .map(Some)
            .with_context(|| format!("{name} {v}: not a value it takes"))
    }
}

/// Waits until a new consumer has a leader (at most a minute): a young
/// cluster answers the first pulls of one without a leader with "no
/// responders".
pub async fn consumer_leader(c: &mut PullConsumer, name: &str) -> anyhow::Result<()> {
    let ready = Instant::now() + Duration::from_secs(60);
    loop {
        let leader = c
            .info()
            .await
            .ok()
            .and_then(|i| i.cluster.clone())
            .and_then(|cl| cl.leader);
        if leader.is_some() {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < ready,
            "consumer {name} has no leader after 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(args: &[&str]) -> Argv {
        Argv(args.iter().map(|a| a.to_string()).collect())
    }

    #[test]
    fn values_flags_and_mistakes() {
        let a = argv(&[
            "bench",
            "--bench",
            "--records",
            "40_000",
            "--rate",
            "x",
            "--last",
        ]);
        assert!(a.full() && a.flag("--last") && !a.flag("--trace"));
        assert_eq!(a.value::<usize>("--records").unwrap(), Some(40_000));
        assert_eq!(a.value::<usize>("--batch").unwrap(), None);
        assert!(a.value::<usize>("--rate").is_err(), "not a number");
        assert!(a.value::<usize>("--last").is_err(), "no value");
        assert!(!argv(&["bench"]).full());
    }
}
