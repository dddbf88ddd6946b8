//! The one place that makes outside text safe for each output.
//!
//! Nearly every string pgtls prints was written by someone else: role and database names (a quoted
//! identifier may hold any byte), application_name, query text, client host names, certificate subjects and
//! names, a server's error messages, server log lines. Printed raw, such text can move the cursor, retitle
//! the window, rewrite earlier lines (CR, ESC sequences), ring the bell, reorder what is shown (bidi
//! overrides), add lines to a one-line Nagios summary, or run as a formula in a spreadsheet.
//!
//! One function per output kind:
//! * [`terminal`]: a value shown on a terminal (dashboard cells, text reports, stderr). One line; every
//!   control character, bidi control and invisible format character is shown escaped (`\x1b`, `\n`,
//!   `\u{202e}`, `\u{200b}`), so a look-alike name cannot pass for the real one.
//! * [`nagios`]: a value inside the summary line of `pgtls check`, which must stay one line with its
//!   perfdata after the first `|`: as [`terminal`], plus `|` escaped.
//! * [`csv_field`]: a CSV field for spreadsheets: formula-shaped fields are prefixed with `'` (OWASP "CSV
//!   injection"), controls escaped as for the terminal. `--raw` skips it for scripts that need exact bytes.
//!
//! * [`html`]: text inside an HTML element or a quoted attribute (`pgtls report -o FILE.html`): as [`terminal`]
//!   (so a bidi override or a zero-width space shows as `\u{202e}`, not as a look-alike), then `& < > " '` as
//!   character references: a name arrives as text, never as markup.
//! * [`markdown`]: text in a Markdown report, table cells included (`pgtls report -o FILE.md`): as [`terminal`]
//!   (one line: a newline cannot end a table row), then every ASCII punctuation character backslash-escaped, as
//!   CommonMark allows for any of them: `|` cannot split a cell, `` ` `` open code, `#` make a heading, `<` open
//!   HTML, `[`/`!` make a link or an image that a viewer would fetch, `@` mention someone, `http://` or `www.`
//!   become an autolink.
//!
//! JSON needs nothing here: serde_json escapes every control character (`\u001b`) and stays exact.
//!
//! The text renderers also pass their whole output through [`write_terminal`], which escapes whatever
//! control characters remain apart from the renderer's own line breaks. A field that a renderer forgot to
//! pass through [`terminal`] can then at worst add a line break, never an escape sequence.

use std::borrow::Cow;
use std::io::{self, Write};

/// Characters that must never reach a terminal (or a spreadsheet cell) as themselves; defined once, in
/// [`crate::text`], for the connection layer's errors too.
pub use crate::text::is_unsafe_char as is_unsafe;

/// Whether `text` holds any character [`is_unsafe`] rejects; used to flag names that carry them.
pub fn has_unsafe(text: &str) -> bool {
    text.chars().any(is_unsafe)
}

/// A value for the terminal: one line, each unsafe character escaped.
pub fn terminal(text: &str) -> Cow<'_, str> {
    escape(text, is_unsafe)
}

/// A value inside the `pgtls check` summary line: as [`terminal`], and `|` (which starts the perfdata for
/// Nagios, Icinga and friends) escaped too, so a name cannot end the summary or fake perfdata.
pub fn nagios(text: &str) -> Cow<'_, str> {
    escape(text, |c| c == '|' || is_unsafe(c))
}

/// A whole text rendered by pgtls itself: its own line breaks stay, every other unsafe character is escaped.
/// A backstop behind [`terminal`], not a replacement: it cannot tell a value's line break from the report's.
pub fn terminal_block(text: &str) -> Cow<'_, str> {
    escape(text, |c| c != '\n' && is_unsafe(c))
}

/// Render a text report into memory, then write it with [`terminal_block`]. Text renderers write through this,
/// so no escape sequence reaches the terminal even from a field they forgot to escape.
pub fn write_terminal(out: &mut dyn Write, render: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> io::Result<()> {
    let mut buf = Vec::new();
    render(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    out.write_all(terminal_block(&text).as_bytes())
}

/// Text for HTML: element content or a quoted attribute value (see the module's list).
pub fn html(text: &str) -> String {
    let visible = terminal(text);
    let mut out = String::with_capacity(visible.len());
    for c in visible.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Text for Markdown, in a paragraph or a table cell (see the module's list).
pub fn markdown(text: &str) -> String {
    let visible = terminal(text);
    let mut out = String::with_capacity(visible.len() + 8);
    for c in visible.chars() {
        if c.is_ascii_punctuation() {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Characters that make a spreadsheet read a cell as a formula when they start it (OWASP, "CSV Injection"):
/// `=`, `+`, `-`, `@`, tab and carriage return.
const FORMULA_START: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// A CSV field that a spreadsheet shows as text: a field starting with a formula character gets a leading
/// `'` unless it is entirely a number (such as the `-1` port of a Unix socket); controls are escaped as for
/// the terminal, so a CSV printed to a terminal is safe too. The csv writer quotes the result as needed.
pub fn csv_field(text: &str) -> Cow<'_, str> {
    let escaped = terminal(text);
    let formula = text.starts_with(FORMULA_START) && !is_number(text);
    if formula {
        Cow::Owned(format!("'{escaped}"))
    } else {
        escaped
    }
}

/// `-1`, `+3`, `42`, `-0.5`: a sign, digits, and at most one decimal point between digits.
fn is_number(text: &str) -> bool {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    let (int, frac) = match digits.split_once('.') {
        Some((int, frac)) => (int, Some(frac)),
        None => (digits, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    all_digits(int) && frac.is_none_or(all_digits)
}

fn escape(text: &str, unsafe_here: impl Fn(char) -> bool) -> Cow<'_, str> {
    crate::text::escape_with(text, unsafe_here)
}

#[cfg(any(test, feature = "test-support"))]
pub fn every_unsafe_char() -> Vec<char> {
    let all: Vec<char> = (0u32..=u32::from(char::MAX))
        .filter_map(char::from_u32)
        .filter(|c| is_unsafe(*c))
        .collect();
    // C0, DEL, C1; bidi embeddings and overrides, isolates; line and paragraph separators; then the invisible
    // format characters: U+00AD, U+061C, U+180E, U+200B-U+200F, U+2060-U+2064, U+206A-U+206F, U+FEFF,
    // U+FFF9-U+FFFB, U+E0000-U+E007F.
    assert_eq!(
        all.len(),
        32 + 1 + 32 + 5 + 4 + 2 + (1 + 1 + 1 + 5 + 5 + 6 + 1 + 3 + 128)
    );
    all
}

/// For class tests: the first unsafe character in `bytes` other than the line breaks a renderer writes itself.
#[cfg(any(test, feature = "test-support"))]
pub fn first_unsafe(bytes: &[u8]) -> Option<char> {
    String::from_utf8_lossy(bytes)
        .chars()
        .find(|c| *c != '\n' && is_unsafe(*c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_and_markdown_keep_hostile_names_text() {
        let name = "<script>alert(1)</script>|`x`\n# h \u{202e}evil\u{200b}&\"'";
        let h = html(name);
        assert_eq!(
            h,
            "&lt;script&gt;alert(1)&lt;/script&gt;|`x`\\n# h \\u{202e}evil\\u{200b}&amp;&quot;&#39;"
        );
        assert!(!h.contains('<') && !h.contains('\n') && !h.contains('\u{202e}'));
        let m = markdown(name);
        assert!(
            !m.contains('\n') && !m.contains('\u{202e}') && !m.contains('\u{200b}'),
            "{m}"
        );
        // Every `|`, backtick, `#` and `<` is escaped, so none opens a cell, code, heading or tag.
        for (i, c) in m.char_indices() {
            if "|`#<>[]!".contains(c) {
                assert_eq!(&m[i - 1..i], "\\", "{c} at {i} in {m}");
            }
        }
        assert_eq!(markdown("www.example.com"), "www\\.example\\.com");
        assert_eq!(markdown("@team"), "\\@team");
        assert_eq!(markdown("billing-batch"), "billing\\-batch");
    }

    #[test]
    fn every_unsafe_char_is_escaped_in_every_kind() {
        for c in every_unsafe_char() {
            let text = format!("a{c}b");
            for (kind, out) in [
                ("terminal", terminal(&text)),
                ("nagios", nagios(&text)),
                ("csv", csv_field(&text)),
            ] {
                assert!(!out.chars().any(is_unsafe), "{kind} let {:?} through: {out:?}", c);
                assert!(
                    out.starts_with('a') && out.ends_with('b') && out.len() > 3,
                    "{kind}: {out:?}"
                );
            }
            let block = terminal_block(&text);
            assert_eq!(block.contains(c), c == '\n', "block: {:?}", c);
        }
    }

    #[test]
    fn escapes_read_as_in_c_and_rust() {
        assert_eq!(terminal("x\x1b[31my"), "x\\x1b[31my");
        assert_eq!(terminal("a\nb\rc\td\x07\x7f"), "a\\nb\\rc\\td\\x07\\x7f");
        assert_eq!(terminal("\u{9b}31m \u{202e}evil"), "\\u{9b}31m \\u{202e}evil");
        assert_eq!(terminal("plain é 日本"), "plain é 日本");
        assert!(matches!(terminal("plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn nagios_keeps_one_line_and_its_perfdata_separator() {
        assert_eq!(nagios("app | fake=1\nPGTLS OK"), "app \\x7c fake=1\\nPGTLS OK");
    }

    #[test]
    fn csv_prefixes_formulas_but_not_numbers() {
        for formula in [
            "=1+2",
            "+cmd",
            "-2+3",
            "@SUM(A1)",
            "\tx",
            "\rx",
            "-",
            "=HYPERLINK(\"http://x\")",
        ] {
            assert!(
                csv_field(formula).starts_with('\''),
                "{formula:?} -> {:?}",
                csv_field(formula)
            );
        }
        assert_eq!(csv_field("\tx"), "'\\tx");
        for number in ["-1", "42", "+3", "-0.5", "2026-01-01"] {
            assert_eq!(csv_field(number), number);
        }
        assert_eq!(csv_field("-1e5"), "'-1e5");
        assert_eq!(csv_field("/CN=a"), "/CN=a");
        assert_eq!(csv_field(""), "");
    }

    #[test]
    fn write_terminal_escapes_what_a_renderer_forgot() {
        let mut out = Vec::new();
        let name = "\x1b]0;pwned\x07";
        write_terminal(&mut out, |w| writeln!(w, "name {name}")).unwrap();
        assert_eq!(out, b"name \\x1b]0;pwned\\x07\n");
    }
}
