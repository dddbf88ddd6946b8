//! The sessions table. Only the visible page is turned into widgets, so 50,000 sessions draw as fast as 20.

use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table};

use super::text::{fit, width};
use super::{Ctx, WAITING};
use crate::model::Session;
use crate::output::safe::terminal;
use crate::tui::columns::{self, Column, LayoutInput};
use crate::tui::state::{AppState, QuickView};

pub fn render(frame: &mut Frame, area: Rect, cx: &Ctx) {
    let t = cx.theme;
    let state = cx.state;
    let block = Block::bordered()
        .border_style(t.border)
        .title_bottom(super::tabs::line(cx));
    let inner = block.inner(area);
    let visible = usize::from(inner.height.saturating_sub(1));
    let start = state.sessions.offset.min(state.sessions.rows.len());
    let end = (start + visible).min(state.sessions.rows.len());
    let laid_out = column_layout(state, inner.width, visible);
    let columns: Vec<Column> = laid_out.iter().map(|(c, _)| *c).collect();
    // The marker cell first.
    let widths: Vec<u16> = std::iter::once(1).chain(laid_out.iter().map(|(_, w)| *w)).collect();

    let mut block = block.title(title(cx, &columns));
    if state.sessions.rows.len() > visible && visible > 0 && end > start {
        let position = format!(" {}–{} of {} ", start + 1, end, state.sessions.rows.len());
        block = block.title(Line::from(Span::styled(position, t.dim)).right_aligned());
    }
    frame.render_widget(block, area);

    let header = Row::new(
        std::iter::once(Cell::from("")).chain(columns.iter().zip(widths.iter().skip(1)).map(|(c, w)| {
            let title = if state.sessions.sort.column == *c {
                // The layout leaves room for the arrow; should a column ever be narrower, the arrow survives.
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
        // The marker warns about the client's own leg: behind a pooler, that is not the session's TLS.
        let client_class = session.client_class();
        let (marker, marker_style) = t.marker(client_class);
        let cells = std::iter::once(Cell::from(Span::styled(marker, marker_style))).chain(
            columns.iter().zip(widths.iter().skip(1)).map(|(c, w)| {
                // Client-controlled text (DNs, names) must not smuggle control characters to the terminal.
                let text = fit(&terminal(&c.text(session, now)), usize::from(*w));
                let line = match c {
                    Column::Tls => Line::from(Span::styled(text, t.class(session.class))),
                    Column::ClientLeg if session.pooler.as_ref().is_some_and(|p| p.client.is_some()) => {
                        Line::from(Span::styled(text, t.class(client_class)))
                    }
                    Column::ClientLeg => Line::from(Span::styled(text, t.dim)),
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
        Column::Pid | Column::Age | Column::Bits | Column::Time => Cell::from(line.alignment(Alignment::Right)),
        _ => Cell::from(line),
    }
}

/// The columns and their widths for a table `inner_width` wide showing `page` rows from the state's offset: what
/// is drawn, what `s` cycles through and where a header click lands all come from here.
pub fn column_layout(state: &AppState, inner_width: u16, page: usize) -> Vec<(Column, u16)> {
    layout_page(state, page, |input| {
        columns::layout(
            inner_width,
            &LayoutInput {
                held: Some(&state.sessions.widths),
                ..*input
            },
        )
    })
}

/// The content widths of the page on screen, which the app settles into the state's held widths before drawing.
pub fn page_content_widths(state: &AppState, page: usize) -> Vec<(Column, u16)> {
    layout_page(state, page, columns::content_widths)
}

/// `f` over the layout input of the `page` rows from the state's offset.
fn layout_page<T>(state: &AppState, page: usize, f: impl FnOnce(&LayoutInput) -> T) -> T {
    let snap = state.snapshot.as_ref();
    let table = &state.sessions;
    let rows: Vec<&Session> = snap.map_or_else(Vec::new, |snap| {
        table
            .rows
            .iter()
            .skip(table.offset)
            .take(page)
            .filter_map(|i| snap.sessions.get(*i))
            .collect()
    });
    let input = LayoutInput {
        rows: &rows,
        now: snap.map_or(state.now, |s| s.taken_at),
        sorted: table.sort.column,
        show_query: table.show_query,
        poolers: snap.is_some_and(|s| !s.poolers.is_empty()),
        held: None,
    };
    f(&input)
}

/// The column whose header is drawn `x` columns into the table's inner width.
pub fn column_at(state: &AppState, inner_width: u16, page: usize, x: u16) -> Option<Column> {
    // The marker cell and its gap come first.
    let mut start = 2u16;
    for (c, w) in column_layout(state, inner_width, page) {
        if x >= start && x < start + w {
            return Some(c);
        }
        start += w + 1;
    }
    None
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
