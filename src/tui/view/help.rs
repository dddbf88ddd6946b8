//! The `?` popup: every binding from the key table with every key it has, grouped by where it applies, and a
//! legend of markers and colours. Bindings already listed in an earlier group are named, not repeated. Text is
//! wrapped, never cut: the popup scrolls when it is taller than the terminal.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Padding, Paragraph};

use super::Ctx;
use super::text::{cell, gap, spans_width, width, wrap};
use crate::analysis::alerts::Severity;
use crate::model::ConnClass;
use crate::tui::keymap;

const MAX_WIDTH: u16 = 112;
/// Two columns from this inner width on: narrower, a second column leaves too little room for the text.
const TWO_COLUMNS: usize = 100;

pub fn render(frame: &mut Frame, area: Rect, cx: &Ctx) {
    let t = cx.theme;
    let (popup, lines) = content(area, cx);
    let mut block = block(cx);
    let inner = block.inner(popup);
    let visible = usize::from(inner.height);
    let max_scroll = lines.len().saturating_sub(visible);
    let scroll = usize::from(cx.state.help.scroll.offset()).min(max_scroll);
    if max_scroll > 0 {
        let end = (scroll + visible).min(lines.len());
        let position = format!(" ↑↓ scroll · lines {}–{} of {} ", scroll + 1, end, lines.len());
        block = block.title_bottom(Line::from(Span::styled(position, t.dim)).right_aligned());
    }
    frame.render_widget(Clear, popup);
    frame.render_widget(block, popup);
    let shown: Vec<Line> = lines.into_iter().skip(scroll).take(visible).collect();
    frame.render_widget(Paragraph::new(shown), inner);
}

/// The largest useful scroll offset: the legend's last line at the bottom of the popup.
pub fn max_scroll(area: Rect, cx: &Ctx) -> u16 {
    let (popup, lines) = content(area, cx);
    let visible = usize::from(block(cx).inner(popup).height);
    u16::try_from(lines.len().saturating_sub(visible)).unwrap_or(u16::MAX)
}

fn block(cx: &Ctx) -> Block<'static> {
    let t = cx.theme;
    Block::bordered()
        .border_style(t.title)
        .title(Span::styled(" Help ", t.title))
        .title(Line::from(Span::styled(" Esc or ? closes ", t.dim)).right_aligned())
        .padding(Padding::horizontal(1))
}

/// Where the popup goes and every line it holds (more than fit when the terminal is short: it scrolls).
fn content(area: Rect, cx: &Ctx) -> (Rect, Vec<Line<'static>>) {
    let popup_w = area.width.saturating_sub(2).min(MAX_WIDTH);
    // Border and one column of padding on each side.
    let cols = usize::from(popup_w.saturating_sub(4));
    let columns = if cols >= TWO_COLUMNS { 2 } else { 1 };
    let col_cols = (cols - 2 * (columns - 1)) / columns;

    let legend = legend(cx, cols);
    let height = |packed: &[Vec<Line<'static>>]| packed.iter().map(Vec::len).max().unwrap_or(0) + 1 + legend.len();
    let packed = pack(&blocks(cx, col_cols), columns);
    let content_h = u16::try_from(height(&packed)).unwrap_or(u16::MAX);
    let popup_h = content_h.saturating_add(2).min(area.height);
    let popup = Rect::new(
        area.x + (area.width - popup_w) / 2,
        area.y + (area.height - popup_h) / 2,
        popup_w,
        popup_h,
    );
    let rows = packed.iter().map(Vec::len).max().unwrap_or(0);
    let mut lines = Vec::new();
    for row in 0..rows {
        let mut spans = Vec::new();
        for (c, column) in packed.iter().enumerate() {
            let line = column.get(row).cloned().unwrap_or_default();
            let used = spans_width(&line.spans);
            spans.extend(line.spans);
            if c + 1 < packed.len() {
                spans.push(gap(col_cols.saturating_sub(used) + 2));
            }
        }
        lines.push(Line::from(spans));
    }
    lines.push(Line::default());
    lines.extend(legend);
    (popup, lines)
}

/// Put each block into the shortest column so far, keeping the blocks' order within a column.
fn pack(blocks: &[Vec<Line<'static>>], columns: usize) -> Vec<Vec<Line<'static>>> {
    let mut packed: Vec<Vec<Line<'static>>> = vec![Vec::new(); columns];
    for block in blocks {
        if let Some(column) = packed.iter_mut().min_by_key(|c| c.len()) {
            if !column.is_empty() {
                column.push(Line::default());
            }
            column.extend(block.iter().cloned());
        }
    }
    packed
}

fn blocks(cx: &Ctx, cols: usize) -> Vec<Vec<Line<'static>>> {
    let t = cx.theme;
    let sections = keymap::help_sections();
    let key_cols = sections
        .iter()
        .flat_map(|(_, rows)| rows.iter().map(|(k, _)| width(k)))
        .max()
        .unwrap_or(0);
    let text_cols = cols.saturating_sub(key_cols + 2);

    let mut seen: Vec<(String, &str)> = Vec::new();
    let mut out = Vec::new();
    for (title, rows) in sections {
        let mut lines = vec![Line::from(Span::styled(title, t.title))];
        let fresh: Vec<(String, &str)> = rows.iter().filter(|r| !seen.contains(r)).cloned().collect();
        for (keys, help) in &fresh {
            for (i, text) in wrap(help, text_cols).into_iter().enumerate() {
                let key = if i == 0 {
                    cell(keys, key_cols)
                } else {
                    " ".repeat(key_cols)
                };
                lines.push(Line::from(vec![
                    Span::styled(key, t.key),
                    Span::raw("  "),
                    Span::raw(text),
                ]));
            }
        }
        // Keys explained in an earlier group: named, so every group says every key that works there.
        let repeated: Vec<&str> = rows
            .iter()
            .filter(|r| !fresh.contains(r))
            .map(|(k, _)| k.as_str())
            .collect();
        if !repeated.is_empty() {
            let lead = if fresh.is_empty() { "as above:" } else { "and as above:" };
            let text = format!("{lead} {}", repeated.join(", "));
            for line in wrap(&text, cols.saturating_sub(2)) {
                lines.push(Line::from(vec![Span::raw("  "), Span::styled(line, t.dim)]));
            }
        }
        seen.extend(fresh);
        out.push(lines);
    }
    out
}

/// Markers, class colours and severity symbols, flowed across the full width under the key columns.
fn legend(cx: &Ctx, cols: usize) -> Vec<Line<'static>> {
    let t = cx.theme;
    let mut markers = Vec::new();
    for (class, text) in [
        (ConnClass::PlainTcp, "no TLS over TCP"),
        (ConnClass::Tls12, "TLS 1.2 or older"),
        (ConnClass::Unknown, "unknown (pg_read_all_stats)"),
    ] {
        let (marker, style) = t.marker(class);
        markers.push(vec![Span::styled(marker, style), Span::raw(format!(" {text}"))]);
    }
    let classes = ConnClass::ALL
        .iter()
        .map(|c| vec![Span::styled(c.short_label(), t.class(*c))])
        .collect();
    let severities = [
        (Severity::Critical, "critical"),
        (Severity::Warning, "warning"),
        (Severity::Info, "info"),
    ]
    .into_iter()
    .map(|(severity, name)| {
        vec![Span::styled(
            format!("{} {name}", severity.symbol()),
            t.severity(severity),
        )]
    })
    .collect();
    let mut lines = vec![Line::from(Span::styled("Markers and colours", t.title))];
    lines.extend(flow(markers, cols));
    lines.extend(flow(classes, cols));
    lines.extend(flow(severities, cols));
    lines
}

/// Items left to right, two spaces apart, starting a new line when the next one would not fit.
fn flow(items: Vec<Vec<Span<'static>>>, cols: usize) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    let mut line: Vec<Span<'static>> = vec![Span::raw("  ")];
    for item in items {
        let w = spans_width(&item);
        if line.len() > 1 && spans_width(&line) + 2 + w > cols {
            lines.push(Line::from(std::mem::replace(&mut line, vec![Span::raw("  ")])));
        } else if line.len() > 1 {
            line.push(Span::raw("  "));
        }
        line.extend(item);
    }
    lines.push(Line::from(line));
    lines
}
