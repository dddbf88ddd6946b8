//! Formatting shared by the dashboard and the headless outputs: ages, truncation, labels.

use unicode_width::UnicodeWidthChar;

/// Compact age as pg_activity and top show it: `42s`, `7m03s`, `3h12m`, `5d04h`.
pub fn age(secs: i64) -> String {
    let secs = secs.max(0);
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3_600 => format!("{}m{:02}s", s / 60, s % 60),
        s if s < 86_400 => format!("{}h{:02}m", s / 3_600, (s % 3_600) / 60),
        s => format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3_600),
    }
}

/// A timestamp as every headless output writes it (JSON, CSV, the snapshot table): RFC 3339 in UTC with `Z` and
/// as many fractional digits as it has (0, 3, 6 or 9), which is exactly how the JSON (chrono's serde) spells it.
pub fn timestamp(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// Cut `text` to at most `width` terminal columns, marking the cut with `…`.
pub fn truncate(text: &str, width: usize) -> String {
    if unicode_width::UnicodeWidthStr::width(text) <= width {
        return text.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut out = String::new();
    let mut used = 0;
    for ch in text.chars() {
        let w = ch.width().unwrap_or(0);
        if used + w + 1 > width {
            break;
        }
        out.push(ch);
        used += w;
    }
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_spelled_as_the_json_spells_them() {
        use chrono::TimeZone;
        let base = chrono::Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 5).unwrap();
        for nanos in [0, 120_000_000, 123_456_000, 123_456_789] {
            let at = base + chrono::Duration::nanoseconds(nanos);
            let json = serde_json::to_value(at).unwrap();
            assert_eq!(json.as_str(), Some(timestamp(at).as_str()));
        }
        assert_eq!(timestamp(base), "2026-11-27T10:00:05Z");
    }

    #[test]
    fn ages_are_compact() {
        assert_eq!(age(-3), "0s");
        assert_eq!(age(42), "42s");
        assert_eq!(age(423), "7m03s");
        assert_eq!(age(3 * 3600 + 12 * 60 + 5), "3h12m");
        assert_eq!(age(5 * 86_400 + 4 * 3600), "5d04h");
    }

    #[test]
    fn truncation_marks_the_cut_and_respects_width() {
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("exactly10!", 10), "exactly10!");
        assert_eq!(truncate("much-too-long", 8), "much-to…");
        assert_eq!(truncate("日本語テキスト", 7), "日本語…");
        assert_eq!(truncate("x", 0), "");
    }
}
