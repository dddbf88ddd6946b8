//! Outside text (host names, keywords, file names, server messages) quoted for one-line error messages.
//!
//! Every string in a connection error came from a user, a file or a server. It must neither break the
//! line nor drive the terminal, so controls and bidirectional overrides are shown as escapes.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` must not reach a terminal (or a spreadsheet cell) as it is: C0 controls, DEL, C1 controls,
/// the bidi embedding, override and isolate controls and marks, which reorder what follows them on screen
/// (CVE-2021-42574, "Trojan Source"), and the Unicode line and paragraph separators. The one definition:
/// pgtls's outputs use it too.
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}'
        )
}

/// `text` with each character `escape_here` picks shown as an escape (`\n`, `\x1b`, `\u{202e}`); text
/// with none is borrowed unchanged.
pub fn escape_with(text: &str, escape_here: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !text.chars().any(&escape_here) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !escape_here(c) {
            out.push(c);
            continue;
        }
        let _ = match c {
            '\n' => write!(out, "\\n"),
            '\r' => write!(out, "\\r"),
            '\t' => write!(out, "\\t"),
            c if u32::from(c) < 0x80 => write!(out, "\\x{:02x}", u32::from(c)),
            c => write!(out, "\\u{{{:x}}}", u32::from(c)),
        };
    }
    Cow::Owned(out)
}

/// `text` with every unsafe character escaped; safe text is unchanged.
pub fn escaped(text: &str) -> String {
    escape_with(text, is_unsafe_char).into_owned()
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
