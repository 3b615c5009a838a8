//! Text for people: amounts with digit grouping, chain times in UTC, durations, short ids.
//! Integer arithmetic only; money is never a float.

use paystreams_lez_core::AccountId;

/// `1234567` → `1,234,567`.
#[must_use]
pub fn amount(value: u128) -> String {
    group_digits(&value.to_string())
}

/// Groups a string of decimal digits by thousands with `,`.
#[must_use]
pub fn group_digits(digits: &str) -> String {
    let len = digits.len();
    let mut out = String::with_capacity(len.saturating_add(len / 3));
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (len.saturating_sub(i)) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days.saturating_add(719_468);
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = if m <= 2 { y + 1 } else { y };
    (year, u32::try_from(m).unwrap_or(1), u32::try_from(d).unwrap_or(1))
}

/// Chain seconds → `2026-05-01 12:00:03 UTC`.
#[must_use]
pub fn time(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC", rem / 3600, (rem % 3600) / 60, rem % 60)
}

/// Chain seconds → `12:00:03` (time of day, UTC).
#[must_use]
pub fn time_of_day(secs: u64) -> String {
    let rem = secs % 86_400;
    format!("{:02}:{:02}:{:02}", rem / 3600, (rem % 3600) / 60, rem % 60)
}

/// Two most significant units: `3725` → `1h 2m`, `125` → `2m 5s`, `0` → `0s`.
#[must_use]
pub fn duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, (secs % 86_400) / 3600, (secs % 3600) / 60, secs % 60);
    let mut parts = Vec::new();
    if d > 0 {
        parts.push(format!("{d}d"));
    }
    if h > 0 {
        parts.push(format!("{h}h"));
    }
    if m > 0 && d == 0 {
        parts.push(format!("{m}m"));
    }
    if (s > 0 || parts.is_empty()) && d == 0 && h == 0 {
        parts.push(format!("{s}s"));
    }
    parts.join(" ")
}

/// First 6 and last 4 characters of a base58 id.
#[must_use]
pub fn short_id(id: &AccountId) -> String {
    let text = id.to_string();
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= 12 {
        return text;
    }
    let head: String = chars.iter().take(6).collect();
    let tail: String = chars.iter().skip(chars.len().saturating_sub(4)).collect();
    format!("{head}…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_grouped() {
        assert_eq!(amount(0), "0");
        assert_eq!(amount(999), "999");
        assert_eq!(amount(1000), "1,000");
        assert_eq!(amount(1_234_567), "1,234,567");
        assert_eq!(amount(u128::MAX), "340,282,366,920,938,463,463,374,607,431,768,211,455");
    }

    #[test]
    fn times_are_utc() {
        assert_eq!(time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(time(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(time(1_777_636_803), "2026-05-01 12:00:03 UTC");
        assert_eq!(time_of_day(3725), "01:02:05");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(0), "0s");
        assert_eq!(duration(59), "59s");
        assert_eq!(duration(3725), "1h 2m");
        assert_eq!(duration(125), "2m 5s");
        assert_eq!(duration(90_000), "1d 1h");
    }
}
