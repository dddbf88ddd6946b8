//! The sessions table. Only the visible page is turned into widgets, so 50,000 sessions draw as fast as 20.

use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table};

use super::text::{fit, width};
use super::{Ctx, WAITING};
use crate::output::safe::terminal;
use crate::tui::columns::{self, Column};
use crate::tui::state::QuickView;

pub fn render(frame: &mut Frame, area: Rect, cx: &Ctx) {
    let t = cx.theme;
    let state = cx.state;
    let block = Block::bordered()
        .border_style(t.border)
        .title_bottom(super::tabs::line(cx));
    let inner = block.inner(area);
    let columns = columns::fitting(inner.width);
    let widths = widths(&columns, inner.width);
    let visible = usize::from(inner.height.saturating_sub(1));
    let start = state.sessions.offset.min(state.sessions.rows.len());
    let end = (start + visible).min(state.sessions.rows.len());

    let mut block = block.title(title(cx, &columns));
    if state.sessions.rows.len() > visible && visible > 0 && end > start {
        let position = format!(" {}–{} of {} ", start + 1, end, state.sessions.rows.len());
        block = block.title(Line::from(Span::styled(position, t.dim)).right_aligned());
    }
    frame.render_widget(block, area);

    let header = Row::new(
        std::iter::once(Cell::from("")).chain(columns.iter().zip(widths.iter().skip(1)).map(|(c, w)| {
            let title = if state.sessions.sort.column == *c {
                // The arrow must survive a narrow column; the space, then the title give way instead.
                let arrow = if state.sessions.sort.descending { "▼" } else { "▲" };
                let w = usize::from(*w);
                match width(c.title()) {
                    tw if tw + 2 <= w => format!("{} {arrow}", c.title()),
                    tw if tw < w => format!("{}{arrow}", c.title()),
                    _ => format!("{} {arrow}", fit(c.title(), w.saturating_sub(2))),
                }
            } else {
                c.title().to_string()
            };
            aligned(Line::from(title), *c)
        })),
    )
    .style(t.table_header);

    let Some(snap) = cx.snapshot() else {
        empty(frame, inner, header, &widths, cx, WAITING);
        return;
    };
    if state.sessions.rows.is_empty() {
        let message = if snap.sessions.is_empty() {
            "no client sessions"
        } else if state.filter.text.is_empty() && state.sessions.quick_view == QuickView::All {
            "no sessions"
        } else {
            "no sessions match — Esc shows all"
        };
        empty(frame, inner, header, &widths, cx, message);
        return;
    }

    let now = snap.taken_at;
    let selected = state.selected_index();
    let rows = (start..end).map(|i| {
        let session = &snap.sessions[state.sessions.rows[i]];
        let (marker, marker_style) = t.marker(session.class);
        let cells = std::iter::once(Cell::from(Span::styled(marker, marker_style))).chain(
            columns.iter().zip(widths.iter().skip(1)).map(|(c, w)| {
                // Client-controlled text (DNs, names) must not smuggle control characters to the terminal.
                let text = fit(&terminal(&c.text(session, now)), usize::from(*w));
                let line = match c {
                    Column::Tls => Line::from(Span::styled(text, t.class(session.class))),
                    Column::Application if session.monitor => Line::from(Span::styled(text, t.dim)),
                    _ => Line::from(text),
                };
                aligned(line, *c)
            }),
        );
        let row = Row::new(cells);
        if selected == Some(i) {
            row.style(t.selected)
        } else {
            row
        }
    });
    let table = Table::new(rows, widths.iter().map(|w| Constraint::Length(*w)))
        .header(header)
        .column_spacing(1);
    frame.render_widget(table, inner);
}

/// Numbers read best right-aligned.
fn aligned(line: Line<'static>, column: Column) -> Cell<'static> {
    match column {
        Column::Pid | Column::Age | Column::Bits => Cell::from(line.alignment(Alignment::Right)),
        _ => Cell::from(line),
    }
}

/// Marker, then each column at its preferred width; the last column takes what is left over.
/// The column whose header is drawn `x` columns into the table's inner width (marker cell and gaps excluded).
pub fn column_at(inner_width: u16, x: u16) -> Option<Column> {
    let columns = columns::fitting(inner_width);
    let widths = widths(&columns, inner_width);
    let mut start = 0u16;
    for (i, w) in widths.iter().enumerate() {
        if x >= start && x < start + w {
            return i.checked_sub(1).and_then(|c| columns.get(c).copied());
        }
        start += w + 1;
    }
    None
}

fn widths(columns: &[Column], cols: u16) -> Vec<u16> {
    let mut widths: Vec<u16> = std::iter::once(1).chain(columns.iter().map(|c| c.width())).collect();
    let used: u16 = widths.iter().sum::<u16>() + u16::try_from(columns.len()).unwrap_or(u16::MAX);
    if let Some(last) = widths.last_mut() {
        *last += cols.saturating_sub(used);
    }
    widths
}

/// `Sessions 12`, or `Sessions 3 of 12 · filter "bill" · view TLS < 1.3`; names the sort when its column is
/// hidden at this width.
fn title(cx: &Ctx, columns: &[Column]) -> Line<'static> {
    let t = cx.theme;
    let state = cx.state;
    let mut spans = vec![Span::styled(" Sessions ", t.title)];
    if cx.snapshot().is_none() {
        return Line::from(spans);
    }
    let narrowed = !state.filter.text.is_empty() || state.sessions.quick_view != QuickView::All;
    if narrowed {
        let (shown, total) = state.filter_counts();
        spans.push(Span::styled(format!("{shown}"), t.strong));
        spans.push(Span::styled(format!(" of {total}"), t.dim));
    } else {
        let clients = state.totals.as_ref().map_or(0, |t| t.classes.total());
        spans.push(Span::styled(clients.to_string(), t.strong));
    }
    if !state.filter.text.is_empty() {
        spans.push(Span::styled(" · filter ", t.dim));
        spans.push(Span::styled(format!("\"{}\"", terminal(&state.filter.text)), t.input));
    }
    if state.sessions.quick_view != QuickView::All {
        spans.push(Span::styled(" · view ", t.dim));
        spans.push(Span::styled(state.sessions.quick_view.label(), t.input));
    }
    if !columns.contains(&state.sessions.sort.column) {
        let arrow = if state.sessions.sort.descending { "▼" } else { "▲" };
        spans.push(Span::styled(
            format!(" · sorted by {} {arrow}", state.sessions.sort.column.title()),
            t.dim,
        ));
    }
    spans.push(Span::raw(" "));
    Line::from(spans)
}

/// Header row, then a centred message where the rows would be.
fn empty(frame: &mut Frame, inner: Rect, header: Row<'static>, widths: &[u16], cx: &Ctx, message: &str) {
    let table = Table::new(Vec::<Row>::new(), widths.iter().map(|w| Constraint::Length(*w)))
        .header(header)
        .column_spacing(1);
    frame.render_widget(table, inner);
    if inner.height < 3 {
        return;
    }
    let rest = Rect::new(inner.x, inner.y + 1, inner.width, inner.height - 1);
    let y = rest.y + rest.height.saturating_sub(1) / 2;
    let cols = usize::from(inner.width);
    let text = fit(message, cols);
    let pad = cols.saturating_sub(width(&text)) / 2;
    let line = Line::from(vec![Span::raw(" ".repeat(pad)), Span::styled(text, cx.theme.dim)]);
    frame.render_widget(Paragraph::new(line), Rect::new(rest.x, y, rest.width, 1));
}
