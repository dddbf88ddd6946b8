//! Word-wrapping with a hanging indent: a list item that does not fit its pane goes on under its own text, not at
//! column 0. An item is a line's leading spaces and its marks (`✖`, `▲`, `·`, `1.`, ...): short words without a
//! letter, each followed by a space. ratatui's own wrapping starts every continuation at the left edge.

use ratatui::style::Style;
use ratatui::text::{Line, Span};
use unicode_width::UnicodeWidthChar;

/// Longest mark, in columns ("12." or "▶").
const MARK_COLS: usize = 3;

/// `lines` wrapped to `cols` columns, and the row each of them starts at.
pub struct Wrapped {
    pub lines: Vec<Line<'static>>,
    pub starts: Vec<usize>,
}

pub fn wrap(lines: Vec<Line<'static>>, cols: u16) -> Wrapped {
    let cols = usize::from(cols).max(1);
    let mut out = Wrapped {
        lines: Vec::with_capacity(lines.len()),
        starts: Vec::with_capacity(lines.len()),
    };
    for line in lines {
        out.starts.push(out.lines.len());
        out.lines.extend(wrap_line(line, cols));
    }
    out
}

/// The columns a continuation row of `text` is indented by: its leading spaces and marks, at most half the pane
/// so that some text always fits beside it.
pub fn indent_of(text: &str, cols: usize) -> usize {
    let mut at = text.len() - text.trim_start_matches(' ').len();
    loop {
        let rest = &text[at..];
        let Some(end) = rest.find(' ') else { break };
        let word = &rest[..end];
        let mark = !word.is_empty() && columns(word) <= MARK_COLS && !word.chars().any(char::is_alphanumeric)
            || word
                .strip_suffix('.')
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if !mark {
            break;
        }
        let after = &rest[end..];
        at += end + (after.len() - after.trim_start_matches(' ').len());
    }
    let indent = columns(&text[..at]);
    if indent * 2 > cols { 0 } else { indent }
}

fn columns(text: &str) -> usize {
    text.chars().map(|c| c.width().unwrap_or(0)).sum()
}

/// One styled character.
type Cell = (char, Style);

fn wrap_line(line: Line<'static>, cols: usize) -> Vec<Line<'static>> {
    let cells: Vec<Cell> = line
        .spans
        .iter()
        .flat_map(|s| s.content.chars().map(move |c| (c, s.style)))
        .collect();
    let total: usize = cells.iter().map(|(c, _)| c.width().unwrap_or(0)).sum();
    if total <= cols {
        return vec![line];
    }
    let text: String = cells.iter().map(|(c, _)| *c).collect();
    let indent = indent_of(&text, cols);
    let (style, alignment) = (line.style, line.alignment);
    let mut rows = Rows {
        done: Vec::new(),
        row: Vec::new(),
        used: 0,
        first: true,
        indent,
    };
    // Words and the spaces between them, in turn; a row's first words are its leading spaces and marks.
    for word in words(&cells) {
        let w: usize = word.iter().map(|(c, _)| c.width().unwrap_or(0)).sum();
        let space = word.first().is_some_and(|(c, _)| *c == ' ');
        if rows.used + w <= cols {
            // A continuation row starts with its indent, never with the spaces where it broke.
            if !(space && !rows.first && !rows.has_text()) {
                rows.row.extend_from_slice(word);
                rows.used += w;
            }
            continue;
        }
        if space {
            // Spaces at a break are the break.
            rows.break_row();
            continue;
        }
        if rows.has_text() {
            rows.break_row();
        }
        for cell in word {
            let cw = cell.0.width().unwrap_or(0);
            if rows.used + cw > cols && rows.used > indent {
                rows.break_row();
            }
            rows.row.push(*cell);
            rows.used += cw;
        }
    }
    // Spaces that ended the line at a break leave an empty row: not drawn.
    if rows.has_text() || rows.done.is_empty() {
        rows.break_row();
    }
    rows.done
        .into_iter()
        .map(|row| {
            let mut l = Line::from(spans(row)).style(style);
            l.alignment = alignment;
            l
        })
        .collect()
}

/// The rows of one line as they are filled.
struct Rows {
    done: Vec<Vec<Cell>>,
    row: Vec<Cell>,
    /// Columns of `row`.
    used: usize,
    /// Whether `row` is the line's first.
    first: bool,
    indent: usize,
}

impl Rows {
    /// Whether the row holds more than its leading spaces (the line's own, or the indent).
    fn has_text(&self) -> bool {
        let own = if self.first { 0 } else { self.indent };
        self.row.iter().skip(own).any(|(c, _)| *c != ' ')
    }

    /// Finish the row (its trailing spaces dropped) and start the next one at the indent.
    fn break_row(&mut self) {
        while self.row.last().is_some_and(|(c, _)| *c == ' ') {
            self.row.pop();
        }
        let next = vec![(' ', Style::default()); self.indent];
        self.done.push(std::mem::replace(&mut self.row, next));
        self.used = self.indent;
        self.first = false;
    }
}

/// Runs of spaces and runs of anything else.
fn words(cells: &[Cell]) -> impl Iterator<Item = &[Cell]> {
    let mut rest = cells;
    std::iter::from_fn(move || {
        let first = rest.first()?;
        let space = first.0 == ' ';
        let end = rest
            .iter()
            .position(|(c, _)| (*c == ' ') != space)
            .unwrap_or(rest.len());
        let (word, tail) = rest.split_at(end);
        rest = tail;
        Some(word)
    })
}

/// Cells as spans, one per run of one style.
fn spans(row: Vec<Cell>) -> Vec<Span<'static>> {
    let mut out: Vec<Span<'static>> = Vec::new();
    let mut text = String::new();
    let mut style = None;
    for (c, s) in row {
        if style.is_some_and(|st| st != s) {
            out.push(Span::styled(std::mem::take(&mut text), style.unwrap_or_default()));
        }
        style = Some(s);
        text.push(c);
    }
    if let Some(s) = style {
        out.push(Span::styled(text, s));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(text: &str, cols: u16) -> Vec<String> {
        wrap(vec![Line::raw(text.to_string())], cols)
            .lines
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn continuation_rows_hang_under_the_items_text() {
        assert_eq!(
            rows("  1. Set the floor and reload the configuration", 24),
            vec!["  1. Set the floor and", "     reload the", "     configuration"]
        );
        assert_eq!(
            rows("  ✖ billing (app@db) seen TLSv1.2", 20),
            vec!["  ✖ billing (app@db)", "    seen TLSv1.2"]
        );
        assert_eq!(
            rows("▶ ▲ pid 7 billing-batch", 12),
            vec!["▶ ▲ pid 7", "    billing-", "    batch"]
        );
        assert_eq!(
            rows("       aws rds modify --x", 16),
            vec!["       aws rds", "       modify", "       --x"]
        );
        assert_eq!(rows("  · abc def      ", 9), vec!["  · abc", "    def"]);
        // Leading spaces alone never make a row of their own.
        assert_eq!(rows("   abcdefghij", 8), vec!["   abcde", "   fghij"]);
        // A line that fits is left as it is.
        assert_eq!(rows("  · short", 40), vec!["  · short"]);
    }

    #[test]
    fn words_longer_than_a_row_are_split_and_nothing_is_lost() {
        let text = "  · https://docs.example.com/a/very/long/path and more";
        let got = rows(text, 16);
        assert!(got.iter().all(|r| columns(r) <= 16), "{got:?}");
        assert!(got[1..].iter().all(|r| r.starts_with("    ")), "{got:?}");
        let joined: String = got.concat().chars().filter(|c| *c != ' ').collect();
        assert_eq!(joined, text.replace(' ', ""));
    }

    #[test]
    fn styles_and_starts_are_kept() {
        let bold = Style::default().add_modifier(ratatui::style::Modifier::BOLD);
        let lines = vec![
            Line::raw("head"),
            Line::from(vec![Span::raw("  ✖ "), Span::styled("a long label here", bold)]),
            Line::raw("tail"),
        ];
        let w = wrap(lines, 12);
        assert_eq!(w.starts, vec![0, 1, 4]);
        assert_eq!(w.lines[2].spans.last().unwrap().style, bold);
        assert_eq!(w.lines[2].to_string(), "    label");
    }

    #[test]
    fn a_deep_indent_in_a_narrow_pane_falls_back_to_the_edge() {
        assert_eq!(indent_of("            x y", 20), 0);
        assert_eq!(indent_of("  Verdict SAFE", 40), 2);
    }
}
