//! PostgreSQL's log timestamps: `%m`/`%t`/`%s`, csvlog's `log_time` and jsonlog's `timestamp` all print
//! `YYYY-MM-DD HH:MM:SS[.mmm] ZONE`, where ZONE is the tz database's abbreviation for `log_timezone`.
//! `%n` prints seconds since the epoch with milliseconds.

use chrono::{DateTime, Local, NaiveDateTime, TimeZone, Utc};

/// Parse `2026-11-27 17:42:50.077 UTC`. Abbreviations that map to one offset are converted; an unknown or
/// ambiguous one (CST is both Chicago and Shanghai, IST both India and Ireland) is read as this machine's
/// local time, which is right when pgtls runs beside the server and shares its time zone.
pub fn parse_pg_timestamp(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    let (clock, zone) = match text.rsplit_once(' ') {
        // The date and the time are separated by a space too, so a zone exists only if two spaces do.
        Some((clock, zone)) if clock.contains(' ') => (clock, Some(zone)),
        _ => (text, None),
    };
    let naive = NaiveDateTime::parse_from_str(clock, "%Y-%m-%d %H:%M:%S%.f").ok()?;
    match zone.map(zone_offset_seconds) {
        Some(Some(offset)) => Some(naive.and_utc() - chrono::Duration::seconds(i64::from(offset))),
        _ => Local
            .from_local_datetime(&naive)
            .earliest()
            .map(|local| local.with_timezone(&Utc)),
    }
}

/// Parse `%n`: `1764265370.077`.
pub fn parse_epoch(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    let secs: i64 = secs.parse().ok()?;
    let mut millis = 0u32;
    let mut scale = 100u32;
    for c in frac.chars().take(3) {
        millis += c.to_digit(10)? * scale;
        scale /= 10;
    }
    DateTime::from_timestamp(secs, millis * 1_000_000)
}

fn zone_offset_seconds(zone: &str) -> Option<i32> {
    if let Some(sign) = zone.chars().next().filter(|c| *c == '+' || *c == '-') {
        // The tz database writes zones without a name as +03, -0330 or +0545.
        let digits: String = zone[1..].chars().filter(|c| *c != ':').collect();
        if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let (hours, minutes) = digits.split_at(digits.len().min(2));
        let hours: i32 = hours.parse().ok()?;
        let minutes: i32 = if minutes.is_empty() { 0 } else { minutes.parse().ok()? };
        let total = hours * 3600 + minutes * 60;
        return Some(if sign == '-' { -total } else { total });
    }
    let hours_x2 = match zone {
        "UTC" | "GMT" | "UCT" | "Z" | "WET" => 0,
        "BST" | "CET" | "MET" | "WEST" | "WAT" => 2,
        "CEST" | "MEST" | "EET" | "SAST" | "CAT" => 4,
        "EEST" | "MSK" | "EAT" | "IDT" => 6,
        "PKT" => 10,
        "WIB" => 14,
        "HKT" | "AWST" | "WITA" => 16,
        "JST" | "KST" | "WIT" => 18,
        "ACST" => 19,
        "AEST" | "ChST" => 20,
        "ACDT" => 21,
        "AEDT" => 22,
        "NZST" => 24,
        "NZDT" => 26,
        "NDT" => -5,
        "NST" => -7,
        "ADT" => -6,
        "AST" | "EDT" => -8,
        "EST" | "CDT" => -10,
        "MDT" => -12,
        "MST" | "PDT" => -14,
        "PST" | "AKDT" => -16,
        "AKST" | "HDT" => -18,
        "HST" => -20,
        _ => return None,
    };
    Some(hours_x2 * 1800)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn named_and_numeric_zones() {
        assert_eq!(
            parse_pg_timestamp("2026-11-27 17:42:50.077 UTC"),
            Some(utc("2026-11-27T17:42:50.077Z"))
        );
        assert_eq!(
            parse_pg_timestamp("2026-11-27 17:42:50 CET"),
            Some(utc("2026-11-27T16:42:50Z"))
        );
        assert_eq!(
            parse_pg_timestamp("2026-07-01 10:00:00.5 +0530"),
            Some(utc("2026-07-01T04:30:00.5Z"))
        );
        assert_eq!(
            parse_pg_timestamp("2026-07-01 10:00:00 -03"),
            Some(utc("2026-07-01T13:00:00Z"))
        );
        assert_eq!(
            parse_pg_timestamp("2026-07-01 10:00:00 NST"),
            Some(utc("2026-07-01T13:30:00Z"))
        );
    }

    #[test]
    fn unknown_zone_is_local_time_and_garbage_is_none() {
        let local = parse_pg_timestamp("2026-07-01 10:00:00 XYZT").unwrap();
        let expected = Local
            .from_local_datetime(&NaiveDateTime::parse_from_str("2026-07-01 10:00:00", "%Y-%m-%d %H:%M:%S").unwrap())
            .earliest()
            .unwrap();
        assert_eq!(local, expected.with_timezone(&Utc));
        assert_eq!(parse_pg_timestamp("yesterday"), None);
        assert_eq!(parse_pg_timestamp(""), None);
    }

    #[test]
    fn epoch_with_millis() {
        assert_eq!(parse_epoch("1795801474.536"), Some(utc("2026-11-27T17:44:34.536Z")));
        assert_eq!(parse_epoch("1795801474"), Some(utc("2026-11-27T17:44:34Z")));
        assert_eq!(parse_epoch("x.1"), None);
    }
}
