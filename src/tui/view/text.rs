//! Measuring, cutting and wrapping text in terminal columns (not bytes, not chars), shared by the regions.

use ratatui::style::Style;
use ratatui::text::{Line, Span};
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use crate::format::truncate;

pub fn width(text: &str) -> usize {
    UnicodeWidthStr::width(text)
}

pub fn spans_width(spans: &[Span]) -> usize {
    spans.iter().map(Span::width).sum()
}

/// At most `cols` columns, cut with `…`; no space is left dangling before the `…`.
pub fn fit(text: &str, cols: usize) -> String {
    let cut = truncate(text, cols);
    match cut.strip_suffix('…') {
        Some(kept) if kept.ends_with(char::is_whitespace) => format!("{}…", kept.trim_end()),
        _ => cut,
    }
}

/// Exactly `cols` columns: cut with `…` or padded with spaces, so columns of text line up.
pub fn cell(text: &str, cols: usize) -> String {
    let mut out = fit(text, cols);
    let used = width(&out);
    out.extend(std::iter::repeat_n(' ', cols.saturating_sub(used)));
    out
}

/// Spaces to fill `cols` columns.
pub fn gap(cols: usize) -> Span<'static> {
    Span::raw(" ".repeat(cols))
}

/// Word-wrap to `cols` columns, keeping the text's own line breaks. Words longer than a line are split,
/// so nothing is ever lost off the right edge.
pub fn wrap(text: &str, cols: usize) -> Vec<String> {
    let cols = cols.max(1);
    let mut lines = Vec::new();
    for paragraph in text.lines() {
        let mut line = String::new();
        let mut used = 0;
        for word in paragraph.split_whitespace() {
            let w = width(word);
            if used > 0 && used + 1 + w <= cols {
                line.push(' ');
                line.push_str(word);
                used += 1 + w;
                continue;
            }
            if used > 0 {
                lines.push(std::mem::take(&mut line));
                used = 0;
            }
            if w <= cols {
                line.push_str(word);
                used = w;
                continue;
            }
            for ch in word.chars() {
                let cw = ch.width().unwrap_or(0);
                if used + cw > cols {
                    lines.push(std::mem::take(&mut line));
                    used = 0;
                }
                line.push(ch);
                used += cw;
            }
        }
        lines.push(line);
    }
    if lines.is_empty() {
        lines.push(String::new());
    }
    lines
}

/// A line of left-aligned spans and right-aligned spans in `cols` columns, at least two spaces apart. The right
/// side wins: the left is cut with `…` to make room, because the right side holds the short, time-critical facts.
pub fn split_line(left: Vec<Span<'static>>, right: Vec<Span<'static>>, cols: usize) -> Line<'static> {
    let right_w = spans_width(&right);
    let room = cols.saturating_sub(right_w + if right_w > 0 { 2 } else { 0 });
    let mut spans = clip(left, room);
    let used = spans_width(&spans);
    spans.push(gap(cols.saturating_sub(used + right_w)));
    spans.extend(right);
    Line::from(spans)
}

/// Cut a run of spans to `cols` columns, marking the cut with `…` in the style of the span that was cut.
pub fn clip(spans: Vec<Span<'static>>, cols: usize) -> Vec<Span<'static>> {
    if spans_width(&spans) <= cols {
        return spans;
    }
    let mut out = Vec::new();
    let mut used = 0;
    for span in spans {
        let w = span.width();
        if used + w < cols {
            used += w;
            out.push(span);
            continue;
        }
        let room = cols - used;
        if room > 0 {
            out.push(Span::styled(fit(&span.content, room), span.style));
        }
        break;
    }
    out
}

/// One `label value` pair with the label padded to `label_cols`.
pub fn field(label: &str, label_cols: usize, label_style: Style, value: Vec<Span<'static>>) -> Line<'static> {
    let mut spans = vec![Span::styled(cell(label, label_cols), label_style), Span::raw(" ")];
    spans.extend(value);
    Line::from(spans)
}

/// How far `lines`, wrapped to `inner`'s width, can scroll before blank space shows below the last line.
pub fn max_scroll(lines: Vec<ratatui::text::Line<'static>>, inner: ratatui::layout::Rect) -> u16 {
    let total = ratatui::widgets::Paragraph::new(lines)
        .wrap(ratatui::widgets::Wrap { trim: false })
        .line_count(inner.width);
    u16::try_from(total.saturating_sub(usize::from(inner.height))).unwrap_or(u16::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_respects_width_and_breaks() {
        assert_eq!(wrap("a bb ccc dddd", 6), vec!["a bb", "ccc", "dddd"]);
        assert_eq!(wrap("one\ntwo", 10), vec!["one", "two"]);
        assert_eq!(wrap("abcdefgh", 3), vec!["abc", "def", "gh"]);
        assert_eq!(wrap("", 5), vec![""]);
    }

    #[test]
    fn cells_are_exact_width() {
        assert_eq!(cell("abc", 5), "abc  ");
        assert_eq!(cell("abcdef", 4), "abc…");
    }

    #[test]
    fn split_line_keeps_the_right_side() {
        let line = split_line(vec![Span::raw("left side text")], vec![Span::raw("RIGHT")], 12);
        assert_eq!(line.to_string(), "left…  RIGHT");
        assert_eq!(line.width(), 12);
    }
}
