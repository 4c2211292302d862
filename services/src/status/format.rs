//! Numbers for people: durations, byte counts, percentages and plurals. The
//! problem lines and the tables share them, so that a value reads the same
//! wherever it appears.

/// `1 message`, `211 messages`.
pub(super) fn plural(n: u64, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// A duration for people, to the second: `12s`, `3m12s`, `2h05m`, `3d04h`.
pub fn duration(secs: f64) -> String {
    let s = secs.max(0.0).floor() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60).replace("m00s", "m"),
        3600..=86_399 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// A byte count for people: `0 B`, `12.3 KiB`, `1.0 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Whole percent, rounded down (a stream at 99.7 % is not full yet).
pub(super) fn percent(ratio: f64) -> u64 {
    (ratio * 100.0 + 1e-9).floor().max(0.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_percentages_for_people() {
        assert_eq!(duration(0.4), "0s");
        assert_eq!(duration(12.9), "12s");
        assert_eq!(duration(192.0), "3m12s");
        assert_eq!(duration(900.0), "15m");
        assert_eq!(duration(3600.0 + 5.0 * 60.0), "1h05m");
        assert_eq!(duration(3.0 * 86_400.0 + 4.0 * 3600.0), "3d04h");
        assert_eq!(percent(0.29), 29);
        assert_eq!(percent(0.999), 99);
        assert_eq!(percent(1.0), 100);
    }

    #[test]
    fn byte_counts() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(1 << 30), "1.0 GiB");
    }
}
