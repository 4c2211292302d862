//! CPU time spent by processes, read from `/proc` (Linux): where a
//! benchmark's work went. Throughput on one shared machine is bounded by
//! the CPU each unit of work costs across every process involved, so the
//! system bench reports that cost per record, by kind of process, next to
//! the rates.

use std::collections::BTreeMap;
use std::time::Duration;

/// Clock ticks per second of the `/proc` counters.
fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// The fields of a `/proc/<pid>/stat` line after the command name, which
/// is in parentheses and may itself hold spaces and parentheses.
fn stat_fields(line: &str) -> Option<Vec<u64>> {
    let rest = &line[line.rfind(')')? + 1..];
    // Field 3 (state) is a letter: keep numbers only, in place.
    Some(
        rest.split_whitespace()
            .map(|f| f.parse::<i64>().map(|v| v.max(0) as u64).unwrap_or(0))
            .collect(),
    )
}

/// utime + stime (own threads) and cutime + cstime (children that were
/// waited for), in ticks, from a `/proc/<pid>/stat` line.
fn parse_stat(line: &str) -> Option<(u64, u64)> {
    let f = stat_fields(line)?;
    // After the name: state is index 0, utime 11, stime 12, cutime 13, cstime 14.
    Some((f.get(11)? + f.get(12)?, f.get(13)? + f.get(14)?))
}

/// CPU time process `pid` has used so far (all its threads), or `None`
/// once it is gone.
pub fn process(pid: u32) -> Option<Duration> {
    let line = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (own, _) = parse_stat(&line)?;
    Some(Duration::from_secs_f64(own as f64 / ticks_per_second()))
}

/// CPU time of this process's children that exited and were waited for:
/// the way to account a child process that ends during a measurement.
pub fn reaped_children() -> Option<Duration> {
    let line = std::fs::read_to_string("/proc/self/stat").ok()?;
    let (_, children) = parse_stat(&line)?;
    Some(Duration::from_secs_f64(
        children as f64 / ticks_per_second(),
    ))
}

/// Busy CPU time of the whole machine so far, summed over its cores
/// (user, nice, system, irq, softirq and steal of `/proc/stat`).
pub fn machine() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    machine_busy(&stat).map(|t| Duration::from_secs_f64(t as f64 / ticks_per_second()))
}

fn machine_busy(stat: &str) -> Option<u64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal
    Some(f.first()? + f.get(1)? + f.get(2)? + f.get(5)? + f.get(6)? + f.get(7).unwrap_or(&0))
}

/// What groups of processes have used, read at one moment. `kinds` names
/// each group's processes; a process that is gone counts nothing.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub by_kind: BTreeMap<String, Duration>,
    pub reaped_children: Duration,
    pub this_process: Duration,
    pub machine: Duration,
}

impl Snapshot {
    pub fn take(kinds: &[(&str, Vec<u32>)]) -> Snapshot {
        let by_kind = kinds
            .iter()
            .map(|(kind, pids)| {
                let total = pids.iter().filter_map(|&p| process(p)).sum();
                (kind.to_string(), total)
            })
            .collect();
        Snapshot {
            by_kind,
            reaped_children: reaped_children().unwrap_or_default(),
            this_process: process(std::process::id()).unwrap_or_default(),
            machine: machine().unwrap_or_default(),
        }
    }

    /// What each kind used between `earlier` and `self`.
    pub fn since(&self, earlier: &Snapshot) -> BTreeMap<String, Duration> {
        self.by_kind
            .iter()
            .map(|(k, v)| {
                let before = earlier.by_kind.get(k).copied().unwrap_or_default();
                (k.clone(), v.saturating_sub(before))
            })
            .collect()
    }

    /// What the children this process waited for in between used.
    pub fn reaped_children_since(&self, earlier: &Snapshot) -> Duration {
        self.reaped_children.saturating_sub(earlier.reaped_children)
    }

    /// What this process used in between.
    pub fn this_process_since(&self, earlier: &Snapshot) -> Duration {
        self.this_process.saturating_sub(earlier.this_process)
    }

    /// The whole machine's busy time between `earlier` and `self`.
    pub fn machine_since(&self, earlier: &Snapshot) -> Duration {
        self.machine.saturating_sub(earlier.machine)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_times_after_a_name_with_spaces_and_parentheses() {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt
        // majflt cmajflt utime stime cutime cstime ...
        let line = "4242 (odd (name) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                    150 50 30 12 20 0 4 0 1000 2000000 500";
        assert_eq!(parse_stat(line), Some((200, 42)));
    }

    #[test]
    fn machine_busy_leaves_out_idle_and_iowait() {
        let stat = "cpu  100 5 40 9000 300 7 8 2 0 0\ncpu0 50 2 20 4500 150 3 4 1 0 0\n";
        assert_eq!(machine_busy(stat), Some(100 + 5 + 40 + 7 + 8 + 2));
    }

    #[test]
    fn this_process_and_a_gone_one() {
        // Burn CPU until the counter moves: it counts in clock ticks.
        let start = std::time::Instant::now();
        let before = process(std::process::id()).expect("this process");
        let mut x = 0u64;
        while process(std::process::id()).expect("this process") <= before {
            for _ in 0..1_000_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "CPU time never moved"
            );
        }
        assert_eq!(process(u32::MAX), None);
        assert!(machine().is_some_and(|t| t > Duration::ZERO));
    }
}
