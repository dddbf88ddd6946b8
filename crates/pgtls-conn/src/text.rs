//! Outside text (host names, keywords, file names, server messages) quoted for one-line error messages.
//!
//! Every string in a connection error came from a user, a file or a server. It must neither break the
//! line nor drive the terminal, so controls and bidirectional overrides are shown as escapes.

/// Whether `c` must not reach a terminal as it is: C0/C1 controls and the bidi formatting characters
/// that can make text display in another order than it is stored (CVE-2021-42574, "Trojan Source").
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        )
}

/// `text` with every unsafe character escaped (`\n`, `\x1b`, `\u{202e}`); safe text is unchanged.
pub fn escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if !is_unsafe_char(c) {
            out.push(c);
            continue;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x100 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push_str(&format!("\\u{{{:04x}}}", c as u32)),
        }
    }
    out
}

/// `text` in double quotes, escaped as [`escaped`] does, for an error message.
pub fn quoted(text: &str) -> String {
    format!("\"{}\"", escaped(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_control_and_bidi_character_is_escaped() {
        let hostile: String = (0u32..0x20)
            .chain(0x7f..0xa0)
            .chain([0x061c, 0x200e, 0x200f, 0x202a, 0x202e, 0x2066, 0x2069])
            .filter_map(char::from_u32)
            .collect();
        let shown = escaped(&hostile);
        assert!(shown.chars().all(|c| !is_unsafe_char(c)), "{shown:?}");
        assert!(shown.contains("\\x1b") && shown.contains("\\n") && shown.contains("\\u{202e}"));
    }

    #[test]
    fn ordinary_text_is_unchanged() {
        assert_eq!(quoted("db.example.com ünïcode"), "\"db.example.com ünïcode\"");
    }
}
