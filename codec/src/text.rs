//! Small helpers shared by the protocols that carry text (H02, GPS103,
//! TK103, Suntech, Queclink's text and binary reports, Teltonika's command
//! encoder): field checks, NMEA-style coordinates, `ddmmyy`/`hhmmss` dates
//! and times, and Traccar's `network` object for cell towers. Everything takes device input and returns `None`
//! rather than panicking on anything malformed.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use serde_json::{json, Map, Value};

/// Whether `s` is non-empty and all ASCII digits.
pub(crate) fn digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Whether `s` is exactly `n` ASCII hex digits.
pub(crate) fn hex_of_len(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A decimal number as devices write it: digits with at most one `.`
/// (no sign, no exponent, surrounding spaces allowed).
pub(crate) fn number(s: &str) -> Option<f64> {
    let s = s.trim();
    let mut dots = 0;
    let ok = !s.is_empty()
        && s.bytes().all(|b| {
            if b == b'.' {
                dots += 1;
                true
            } else {
                b.is_ascii_digit()
            }
        })
        && dots <= 1
        && s != ".";
    if !ok {
        return None;
    }
    s.parse().ok().filter(|v: &f64| v.is_finite())
}

/// An integer of at most 18 digits, optionally negative.
pub(crate) fn int(s: &str) -> Option<i64> {
    let body = s.strip_prefix('-').unwrap_or(s);
    if !digits(body) || body.len() > 18 {
        return None;
    }
    s.parse().ok()
}

/// A coordinate in degrees from NMEA-style `DDDMM.MMMM` text (any number of
/// degree digits, possibly none: `38.6508` is 0° 38.6508'), from
/// `-DD-MM.MMMM`, or from `DDDMMmmmm` without a point (minutes with four
/// implied decimals); negative for `S` and `W`. `None` for anything else,
/// including minutes of 60 or more and a hemisphere that is not N/S/E/W.
pub(crate) fn coordinate(value: &str, hemisphere: &str) -> Option<f64> {
    coordinate_with(value, hemisphere, Minutes::BelowSixty)
}

/// [`coordinate`], with minutes of 60 and more added as written: some
/// firmware sends them (Wialon IPS: `5364.0167;N` in a real black box) and
/// Traccar takes them so.
pub(crate) fn coordinate_as_written(value: &str, hemisphere: &str) -> Option<f64> {
    coordinate_with(value, hemisphere, Minutes::AsWritten)
}

#[derive(PartialEq)]
enum Minutes {
    BelowSixty,
    AsWritten,
}

fn coordinate_with(value: &str, hemisphere: &str, rule: Minutes) -> Option<f64> {
    let sign = match hemisphere {
        "N" | "E" => 1.0,
        "S" | "W" => -1.0,
        _ => return None,
    };
    let value = value.trim();
    let (degrees, minutes) = if let Some(rest) = value.strip_prefix('-') {
        let (d, m) = rest.split_once('-')?;
        if !digits(d) {
            return None;
        }
        (d.parse::<f64>().ok()?, number(m)?)
    } else if let Some((int_part, frac)) = value.split_once('.') {
        if !digits(frac) || !value[..int_part.len()].bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let split = int_part.len().saturating_sub(2);
        let degrees = if split == 0 {
            0.0
        } else {
            int_part[..split].parse::<f64>().ok()?
        };
        (degrees, number(&value[split..])?)
    } else {
        if !digits(value) || value.len() < 7 {
            return None;
        }
        let split = value.len() - 6;
        let degrees = value[..split].parse::<f64>().ok()?;
        let minutes = value[split..].parse::<f64>().ok()? / 10_000.0;
        (degrees, minutes)
    };
    if (rule == Minutes::BelowSixty && minutes >= 60.0) || degrees > 180.0 {
        return None;
    }
    Some(sign * (degrees + minutes / 60.0))
}

/// `ddmmyy` (20yy).
pub(crate) fn date_ddmmyy(s: &str) -> Option<NaiveDate> {
    if s.len() != 6 || !digits(s) {
        return None;
    }
    let n = |i: usize| s[i..i + 2].parse::<u32>().ok();
    NaiveDate::from_ymd_opt(2000 + n(4)? as i32, n(2)?, n(0)?)
}

/// `yymmdd` (20yy).
pub(crate) fn date_yymmdd(s: &str) -> Option<NaiveDate> {
    if s.len() != 6 || !digits(s) {
        return None;
    }
    let n = |i: usize| s[i..i + 2].parse::<u32>().ok();
    NaiveDate::from_ymd_opt(2000 + n(0)? as i32, n(2)?, n(4)?)
}

/// `hhmmss`, optionally followed by a fraction (`hhmmss.sss`).
pub(crate) fn time_hhmmss(s: &str) -> Option<NaiveTime> {
    let (whole, frac) = match s.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (s, None),
    };
    if whole.len() != 6 || !digits(whole) {
        return None;
    }
    let n = |i: usize| whole[i..i + 2].parse::<u32>().ok();
    let millis = match frac {
        None => 0,
        Some(f) if digits(f) && f.len() <= 9 => {
            let padded = format!("{f:0<3}");
            padded[..3].parse::<u32>().ok()?
        }
        Some(_) => return None,
    };
    NaiveTime::from_hms_milli_opt(n(0)?, n(2)?, n(4)?, millis)
}

/// `hhmmss` read leniently as an offset from midnight, as Traccar's date
/// builder does: some firmwares send seconds of 60 and more (`160169` is
/// 16:02:09). Each part is two digits, so at most 99:99:99.
pub(crate) fn lenient_hhmmss(s: &str) -> Option<chrono::Duration> {
    if s.len() != 6 || !digits(s) {
        return None;
    }
    let n = |i: usize| s[i..i + 2].parse::<i64>().ok();
    Some(chrono::Duration::seconds(n(0)? * 3600 + n(2)? * 60 + n(4)?))
}

/// A date read leniently, as Traccar's date builder does (Java's lenient
/// calendar): a month above 12 carries into the year, a day past the month's
/// end into the next month, zero means the last of the previous one. `None`
/// only when the result is out of chrono's range.
pub(crate) fn lenient_date(year: i32, month: u32, day: u32) -> Option<NaiveDate> {
    let first = NaiveDate::from_ymd_opt(year, 1, 1)?;
    let months = i64::from(month) - 1;
    let shifted = if months >= 0 {
        first.checked_add_months(chrono::Months::new(months as u32))?
    } else {
        first.checked_sub_months(chrono::Months::new(months.unsigned_abs() as u32))?
    };
    shifted.checked_add_signed(chrono::Duration::days(i64::from(day) - 1))
}

/// Midnight UTC of `date` plus `offset`.
pub(crate) fn utc_at(date: NaiveDate, offset: chrono::Duration) -> DateTime<Utc> {
    utc(date, NaiveTime::MIN) + offset
}

/// UTC date and time.
pub(crate) fn utc(date: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    Utc.from_utc_datetime(&NaiveDateTime::new(date, time))
}

/// A signed decimal number (`-33.42317`).
pub(crate) fn signed_number(s: &str) -> Option<f64> {
    match s.strip_prefix('-') {
        Some(rest) => number(rest).map(|v| -v),
        None => number(s.strip_prefix('+').unwrap_or(s)),
    }
}

/// `value` as NMEA-style `D…DMM.mmmm…` with `width` degree digits and
/// `decimals` decimals of minutes, and its hemisphere letter. Rounded to the
/// wire's precision before splitting, so 59.99999' never prints as 60'.
pub(crate) fn nmea(
    value: f64,
    width: usize,
    decimals: u32,
    hemispheres: [char; 2],
) -> (String, char) {
    let hemisphere = if value < 0.0 {
        hemispheres[1]
    } else {
        hemispheres[0]
    };
    let scale = 10u64.pow(decimals);
    let total = (value.abs() * 60.0 * scale as f64).round() as u64;
    let (degrees, minutes) = (total / (60 * scale), total % (60 * scale));
    let text = format!(
        "{degrees:0width$}{:02}.{:0d$}",
        minutes / scale,
        minutes % scale,
        d = decimals as usize
    );
    (text, hemisphere)
}

/// Knots to km/h (text protocols report knots, fleetbus stores km/h).
pub(crate) const KNOTS_TO_KMH: f64 = 1.852;

/// One cell tower as in Traccar's `network` object.
pub(crate) fn cell(mcc: i64, mnc: i64, lac: i64, cid: i64, rssi: Option<i64>) -> Value {
    let mut v = json!({
        "mobileCountryCode": mcc,
        "mobileNetworkCode": mnc,
        "locationAreaCode": lac,
        "cellId": cid,
    });
    if let Some(rssi) = rssi {
        v["signalStrength"] = rssi.into();
    }
    v
}

/// Sets Traccar's `network` attribute (`{"cellTowers": [...]}`) when there are cells.
pub(crate) fn set_cells(attributes: &mut Map<String, Value>, cells: Vec<Value>) {
    if !cells.is_empty() {
        attributes.insert("network".to_owned(), json!({ "cellTowers": cells }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinates() {
        let close = |a: Option<f64>, b: f64| (a.unwrap() - b).abs() < 1e-5;
        assert!(close(coordinate("3542.2043", "N"), 35.70340));
        assert!(close(coordinate("38.6508", "W"), -0.64418));
        assert!(close(coordinate("2117.4683", "E"), 21.29114));
        assert!(close(coordinate("-23-35.3408", "S"), -23.58901));
        assert!(close(coordinate("0956.3869", "N"), 9.93978));
        assert!(close(coordinate("52311234", "N"), 52.0 + 31.1234 / 60.0));
        assert_eq!(coordinate("0.0000", "0"), None);
        assert_eq!(coordinate("", "N"), None);
        assert_eq!(coordinate("12a4.5", "N"), None);
        assert_eq!(coordinate("1261.0", "N"), None);
        assert_eq!(coordinate(".", "N"), None);
    }

    #[test]
    fn dates_and_times() {
        assert_eq!(date_ddmmyy("221025"), NaiveDate::from_ymd_opt(2025, 10, 22));
        assert_eq!(date_ddmmyy("320125"), None);
        assert_eq!(date_yymmdd("251022"), NaiveDate::from_ymd_opt(2025, 10, 22));
        assert_eq!(
            time_hhmmss("213945.123"),
            NaiveTime::from_hms_milli_opt(21, 39, 45, 123)
        );
        assert_eq!(time_hhmmss("250000"), None);
        assert_eq!(time_hhmmss("12345"), None);
    }

    #[test]
    fn lenient_dates() {
        assert_eq!(
            lenient_date(2006, 18, 30),
            NaiveDate::from_ymd_opt(2007, 6, 30)
        );
        assert_eq!(
            lenient_date(2000, 0, 7),
            NaiveDate::from_ymd_opt(1999, 12, 7)
        );
        assert_eq!(
            lenient_date(2015, 10, 24),
            NaiveDate::from_ymd_opt(2015, 10, 24)
        );
        assert_eq!(
            lenient_date(2015, 2, 30),
            NaiveDate::from_ymd_opt(2015, 3, 2)
        );
    }

    #[test]
    fn numbers() {
        assert_eq!(number("  3.34"), Some(3.34));
        assert_eq!(number("-1"), None);
        assert_eq!(number("1.2.3"), None);
        assert_eq!(int("-62"), Some(-62));
        assert_eq!(int("99999999999999999999"), None);
    }
}
