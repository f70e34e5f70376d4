//! Timestamps: milliseconds since the Unix epoch, UTC, and the parsers importers share.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

/// Milliseconds since 1970-01-01T00:00:00Z.
///
/// **One rule for numbers, everywhere** (JSON numbers, digit strings in files and query
/// parameters): an integer below 1e11 in magnitude is seconds, at or above it milliseconds
/// (1e11 s is the year 5138; 1e11 ms is 1973-03-03). Text may also be RFC 3339 or
/// `YYYY-MM-DD[ HH:MM[:SS]]`. As JSON a timestamp is written as milliseconds, except the
/// instants whose milliseconds would read as seconds (1966-10-31 to 1973-03-03), which are
/// written as RFC 3339 text, so every written value reads back unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.abs() < SECONDS_LIMIT { s.collect_str(&self.to_rfc3339()) } else { s.serialize_i64(self.0) }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Timestamp;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("Unix seconds or milliseconds (below 1e11: seconds), or RFC 3339 text")
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Timestamp, E> {
                Ok(Timestamp::from_unix_number(n))
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Timestamp, E> {
                i64::try_from(n).map(Timestamp::from_unix_number).map_err(|_| E::custom(format!("{n} is out of range")))
            }
            fn visit_f64<E: serde::de::Error>(self, f: f64) -> Result<Timestamp, E> {
                if !f.is_finite() || f.abs() > 1e17 {
                    return Err(E::custom(format!("{f} is out of range")));
                }
                // Fractions are truncated to the millisecond (floor), so a time just below
                // a bound never rounds up across it.
                Ok(Timestamp(if f.abs() < SECONDS_LIMIT as f64 { (f * 1000.0).floor() } else { f.floor() } as i64))
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Timestamp, E> {
                Timestamp::parse_auto(s).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// Latest accepted instant (2200-01-01T00:00:00Z); later values are typos or unit mix-ups.
pub const MAX_MILLIS: i64 = 7_258_118_400_000;

/// Earliest accepted instant (1800-01-01T00:00:00Z): release dates and birthdays can be old.
/// Events are further restricted to 1970 and later by `Event::validate`.
pub const MIN_MILLIS: i64 = -5_364_662_400_000;

/// Integers below this are read as seconds, at or above as milliseconds (1e11 s is year 5138).
const SECONDS_LIMIT: i64 = 100_000_000_000;

impl Timestamp {
    /// From whole seconds.
    pub fn from_secs(secs: i64) -> Self {
        Self(secs.saturating_mul(1000))
    }

    /// Whole seconds (floor).
    pub fn secs(self) -> i64 {
        self.0.div_euclid(1000)
    }

    /// Milliseconds since the Unix epoch (UTC).
    pub fn millis(self) -> i64 {
        self.0
    }

    /// A Unix time given as a bare integer: seconds below 1e11 in magnitude, milliseconds
    /// from there (the rule of [`Timestamp`]).
    pub fn from_unix_number(n: i64) -> Self {
        if n.abs() < SECONDS_LIMIT { Self(n.saturating_mul(1000)) } else { Self(n) }
    }

    /// The reference "now" of data whose latest event is at `latest`: that time, but never
    /// later than the wall clock (a future-dated row cannot move it).
    pub fn reference(latest: Timestamp) -> Self {
        latest.min(Self::now())
    }

    /// The current time.
    pub fn now() -> Self {
        Self(Utc::now().timestamp_millis())
    }

    /// Days (fractional) from `self` to `later`.
    pub fn days_until(self, later: Timestamp) -> f64 {
        (later.0 - self.0) as f64 / 86_400_000.0
    }

    /// RFC 3339 text, e.g. `2011-12-01T08:26:00Z` (milliseconds shown only when non-zero).
    pub fn to_rfc3339(self) -> String {
        match DateTime::<Utc>::from_timestamp_millis(self.0) {
            Some(dt) if self.0 % 1000 == 0 => dt.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            Some(dt) => dt.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            None => self.0.to_string(),
        }
    }

    /// Hour of day (0..24) in UTC.
    pub fn hour(self) -> u32 {
        (self.0.div_euclid(3_600_000).rem_euclid(24)) as u32
    }

    /// Calendar year and month (1..=12) in UTC.
    pub fn year_month(self) -> (i64, u32) {
        let (y, m, _) = civil_from_days(self.0.div_euclid(86_400_000));
        (y, m)
    }

    /// Day of week, Monday = 0.
    pub fn weekday(self) -> u32 {
        // 1970-01-01 was a Thursday (index 3).
        ((self.0.div_euclid(86_400_000) + 3).rem_euclid(7)) as u32
    }

    /// Parses the forms importers meet without a declared format: Unix seconds or
    /// milliseconds (integers below 1e11 are seconds), fractional seconds, RFC 3339,
    /// `YYYY-MM-DD HH:MM[:SS[.fff]]` and `YYYY-MM-DD` (both read as UTC).
    pub fn parse_auto(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("empty timestamp".into());
        }
        let b = s.as_bytes();
        let ms = if b.iter().all(u8::is_ascii_digit)
            || (b[0] == b'-' && b.len() > 1 && b[1..].iter().all(u8::is_ascii_digit))
        {
            let n: i64 = s.parse().map_err(|_| format!("{s:?} is out of range"))?;
            Self::from_unix_number(n).0
        } else if let Some(ms) = parse_iso_fast(b) {
            ms
        } else if let Ok(f) = s.parse::<f64>() {
            if !f.is_finite() || f.abs() > 1e17 {
                return Err(format!("{s:?} is not a finite number in range"));
            }
            // The rule of whole numbers: below 1e11 seconds, from there milliseconds.
            if f.abs() < SECONDS_LIMIT as f64 { (f * 1000.0).floor() as i64 } else { f.floor() as i64 }
        } else if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
            dt.timestamp_millis()
        } else {
            return Err(format!(
                "{s:?} is not a timestamp (expected Unix seconds or milliseconds, RFC 3339, or YYYY-MM-DD[ HH:MM:SS]; use --ts-format for others)"
            ));
        };
        Self::checked(ms, s)
    }

    /// Parses with a strftime format (chrono syntax); without a zone the time is UTC.
    pub fn parse_with_format(s: &str, format: &str) -> Result<Self, String> {
        let s = s.trim();
        let ms = if let Ok(dt) = DateTime::parse_from_str(s, format) {
            dt.timestamp_millis()
        } else if let Ok(dt) = NaiveDateTime::parse_from_str(s, format) {
            dt.and_utc().timestamp_millis()
        } else if let Ok(d) = NaiveDate::parse_from_str(s, format) {
            d.and_hms_opt(0, 0, 0).map(|dt| dt.and_utc().timestamp_millis()).unwrap_or(0)
        } else {
            return Err(format!("{s:?} does not match the format {format:?}"));
        };
        Self::checked(ms, s)
    }

    fn checked(ms: i64, s: &str) -> Result<Self, String> {
        if !(MIN_MILLIS..MAX_MILLIS).contains(&ms) {
            return Err(format!("{s:?} is outside 1800-01-01..2200-01-01"));
        }
        Ok(Self(ms))
    }
}

fn digits(b: &[u8]) -> Option<i64> {
    let mut n = 0i64;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n * 10 + i64::from(c - b'0');
    }
    Some(n)
}

/// The proleptic Gregorian date of a day number since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// `YYYY-MM-DD`, optionally followed by ` ` or `T` and `HH:MM[:SS[.fff]]` and an optional `Z`.
/// Anything else (offsets, other layouts) is left to chrono.
fn parse_iso_fast(b: &[u8]) -> Option<i64> {
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, m, d) = (digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?);
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return None;
    }
    let mut ms = days_from_civil(y, m, d) * 86_400_000;
    let mut rest = &b[10..];
    if rest.is_empty() {
        return Some(ms);
    }
    if !(rest[0] == b' ' || rest[0] == b'T') || rest.len() < 6 || rest[3] != b':' {
        return None;
    }
    let (hh, mm) = (digits(&rest[1..3])?, digits(&rest[4..6])?);
    if hh > 23 || mm > 59 {
        return None;
    }
    ms += (hh * 3600 + mm * 60) * 1000;
    rest = &rest[6..];
    if rest.len() >= 3 && rest[0] == b':' {
        let ss = digits(&rest[1..3])?;
        if ss > 60 {
            return None;
        }
        ms += ss * 1000;
        rest = &rest[3..];
        if rest.first() == Some(&b'.') {
            let frac_len = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
            if frac_len == 0 {
                return None;
            }
            let frac = &rest[1..1 + frac_len];
            let mut f = 0i64;
            for i in 0..3 {
                f = f * 10 + frac.get(i).map_or(0, |c| i64::from(c - b'0'));
            }
            ms += f;
            rest = &rest[1 + frac_len..];
        }
    }
    match rest {
        [] | [b'Z'] => Some(ms),
        _ => None,
    }
}

/// A span of time such as `90s`, `15m`, `1h`, `7d`, `2w` (a bare number is seconds), in
/// milliseconds; used for windows, half-lives and schedules in flags and configuration.
pub fn parse_duration_millis(s: &str) -> Result<i64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let not_duration = || format!("{s:?} is not a duration (e.g. 90s, 15m, 1h, 7d)");
    if num.is_empty() {
        return Err(not_duration());
    }
    let unit_ms: f64 = match unit.trim() {
        "" | "s" | "sec" | "secs" => 1e3,
        "ms" => 1.0,
        "m" | "min" | "mins" => 60e3,
        "h" | "hour" | "hours" => 3_600e3,
        "d" | "day" | "days" => 86_400e3,
        "w" | "week" | "weeks" => 604_800e3,
        other => return Err(format!("unknown unit {other:?} in duration {s:?} (expected ms, s, m, h, d or w)")),
    };
    let v: f64 = num.parse().map_err(|_| not_duration())?;
    let ms = v * unit_ms;
    if !ms.is_finite() || ms > MAX_MILLIS as f64 {
        return Err(format!("duration {s:?} is too long"));
    }
    Ok(ms.round() as i64)
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        let t = |s| Timestamp::parse_auto(s).map(|t| t.0);
        assert_eq!(t("874965758"), Ok(874_965_758_000));
        assert_eq!(t("874965758123"), Ok(874_965_758_123));
        assert_eq!(t("2010-12-01 08:26:00"), Ok(1_291_191_960_000));
        assert_eq!(t("2010-12-01T08:26:00Z"), Ok(1_291_191_960_000));
        assert_eq!(t("2010-12-01T09:26:00+01:00"), Ok(1_291_191_960_000));
        assert_eq!(t("2010-12-01 08:26"), Ok(1_291_191_960_000));
        assert_eq!(t("2010-12-01"), Ok(1_291_161_600_000));
        assert_eq!(t("2024-02-29T00:00:00.25Z"), Ok(1_709_164_800_250));
        assert_eq!(t("1.5"), Ok(1500));
        assert!(t("2011-02-30").is_err());
        assert!(t("yesterday").is_err());
        assert_eq!(t("-5"), Ok(-5000));
        assert_eq!(t("1937-01-01"), Ok(-1_041_379_200_000));
        assert!(t("1799-12-31").is_err());
        assert!(t("").is_err());
        assert!(t("NaN").is_err());
    }

    #[test]
    fn year_month_matches_chrono() {
        for ms in
            [0i64, -1, 951_782_400_000, 951_868_799_999, 1_709_164_800_000, -62_135_596_800_000, 4_102_444_800_000]
        {
            let dt = DateTime::<Utc>::from_timestamp_millis(ms).unwrap();
            use chrono::Datelike;
            assert_eq!(Timestamp(ms).year_month(), (i64::from(dt.year()), dt.month()), "{ms}");
        }
        for day in (-800_000i64..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, i64::from(m), i64::from(d)), day);
        }
    }

    #[test]
    fn fast_path_matches_chrono() {
        for s in ["1999-12-31 23:59:59", "2000-02-29 12:00:00", "2011-12-09 12:50:00", "1970-01-01 00:00:00"] {
            let fast = Timestamp::parse_auto(s).map(|t| t.0);
            let slow = Timestamp::parse_with_format(s, "%Y-%m-%d %H:%M:%S").map(|t| t.0);
            assert_eq!(fast, slow, "{s}");
        }
    }

    #[test]
    fn numbers_and_text_follow_one_rule() {
        let j = |s: &str| serde_json::from_str::<Timestamp>(s).map(|t| t.0).map_err(|e| e.to_string());
        // Regression: issue #18 (a number was milliseconds, the same digits as text seconds).
        assert_eq!(j("1796157968"), Ok(1_796_157_968_000));
        assert_eq!(j("\"1796157968\""), Ok(1_796_157_968_000));
        assert_eq!(j("1796157968123"), Ok(1_796_157_968_123));
        assert_eq!(j("1796157968.5"), Ok(1_796_157_968_500));
        assert_eq!(j("\"2026-12-01T10:00:00Z\""), Ok(1_796_119_200_000));
        assert!(j("\"soon\"").is_err());
        assert!(j("1e300").is_err());
        // Every written value reads back, also where milliseconds would read as seconds.
        for ms in [0, 86_400_000, 99_999_999_999, 100_000_000_000, 1_796_157_968_123, -5_000, -200_000_000_000] {
            let text = serde_json::to_string(&Timestamp(ms)).expect("json");
            assert_eq!(j(&text), Ok(ms), "{text}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_millis("90"), Ok(90_000));
        assert_eq!(parse_duration_millis("1.5h"), Ok(5_400_000));
        assert_eq!(parse_duration_millis("7d"), Ok(604_800_000));
        assert_eq!(parse_duration_millis(" 2w "), Ok(1_209_600_000));
        assert_eq!(parse_duration_millis("250ms"), Ok(250));
        assert!(parse_duration_millis("7y").unwrap_err().contains("unknown unit"));
        assert!(parse_duration_millis("d").is_err());
        assert!(parse_duration_millis("-1h").is_err());
        assert!(parse_duration_millis("1e400d").is_err());
    }

    #[test]
    fn custom_format_and_calendar() {
        let t = Timestamp::parse_with_format("12/1/2010 8:26", "%m/%d/%Y %H:%M").map(|t| t.0);
        assert_eq!(t, Ok(1_291_191_960_000));
        assert!(Timestamp::parse_with_format("x", "%Y").is_err());
        let ts = Timestamp(1_291_191_960_000);
        assert_eq!(ts.hour(), 8);
        assert_eq!(ts.weekday(), 2); // 2010-12-01 was a Wednesday
        assert_eq!(ts.to_rfc3339(), "2010-12-01T08:26:00Z");
    }
}
