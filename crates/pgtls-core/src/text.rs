//! Outside text (host names, keywords, file names, server messages) quoted for one-line error messages.
//!
//! Every string in a connection error came from a user, a file or a server. It must neither break the
//! line nor drive the terminal, so controls and bidirectional overrides are shown as escapes.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` must not reach a terminal (or a spreadsheet cell) as it is: C0 controls, DEL, C1 controls,
/// the bidi embedding, override and isolate controls, which reorder what follows them on screen
/// (CVE-2021-42574, "Trojan Source"), the Unicode line and paragraph separators, and the invisible format
/// characters of [`is_invisible_format_char`] (the bidi marks among them). The one definition: pgtls's outputs
/// use it too.
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || is_invisible_format_char(c)
        || matches!(
            c,
            '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}'
        )
}

/// Format characters (Unicode category Cf) a terminal draws as nothing, so `moni\u{200b}tor` looks like
/// `monitor`: a look-alike of a real role, database or host name. The standard library has no table of them,
/// hence this list: soft hyphen, Arabic letter mark, Mongolian vowel separator, zero-width space, non-joiner,
/// joiner and the two directional marks, word joiner and the invisible operators, the deprecated shaping and
/// digit controls, the byte order mark (zero-width no-break space), the interlinear annotation controls, and
/// the tag characters (which also spell hidden text after an emoji).
pub fn is_invisible_format_char(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2060}'..='\u{2064}'
            | '\u{206A}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{E0000}'..='\u{E007F}'
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

    /// The first and last code point of every range of invisible format characters, each shown as an escape a
    /// reader can see, and a look-alike role name that no longer reads as the real one.
    #[test]
    fn every_invisible_format_character_is_shown() {
        let ends: [(u32, u32); 9] = [
            (0x00ad, 0x00ad),
            (0x061c, 0x061c),
            (0x180e, 0x180e),
            (0x200b, 0x200f),
            (0x2060, 0x2064),
            (0x206a, 0x206f),
            (0xfeff, 0xfeff),
            (0xfff9, 0xfffb),
            (0xe0000, 0xe007f),
        ];
        for (first, last) in ends {
            for code in [first, last] {
                let c = char::from_u32(code).unwrap();
                assert!(is_unsafe_char(c), "U+{code:04X}");
                assert_eq!(escaped(&format!("a{c}b")), format!("a\\u{{{code:x}}}b"), "U+{code:04X}");
            }
            // The ranges end where they should: their neighbours are ordinary text (bar the bidi isolates).
            for code in [first - 1, last + 1] {
                let c = char::from_u32(code).unwrap();
                assert_eq!(is_unsafe_char(c), code == 0x2069, "U+{code:04X}");
            }
        }
        assert_eq!(quoted("moni\u{200b}tor"), "\"moni\\u{200b}tor\"");
    }

    #[test]
    fn ordinary_text_is_unchanged() {
        assert_eq!(quoted("db.example.com ünïcode"), "\"db.example.com ünïcode\"");
    }
}
