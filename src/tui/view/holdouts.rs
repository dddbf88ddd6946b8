//! The Holdouts screen: every client identity the ledger has seen, worst exposure first.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table};

use super::Ctx;
use super::text::fit;
use crate::analysis::ledger::{ClientRecord, Source};
use crate::output::safe::terminal;

const HEADERS: [&str; 10] = [
    "APPLICATION",
    "USER",
    "DATABASE",
    "ADDRESS",
    "WORST",
    "SEEN AS",
    "SESS",
    "NOW",
    "LAST SEEN",
    "SOURCES",
];
const WIDTHS: [u16; 10] = [16, 10, 9, 15, 12, 18, 5, 4, 9, 8];
/// Dropped first on narrow terminals: address, sources, database.
const NARROW_DROPS: [usize; 3] = [3, 9, 2];

/// Which columns fit in `width` (marker and spacing included).
fn visible_columns(width: u16) -> Vec<usize> {
    let mut cols: Vec<usize> = (0..HEADERS.len()).collect();
    let need = |cols: &[usize]| 2 + cols.iter().map(|c| WIDTHS[*c] + 1).sum::<u16>();
    for drop in NARROW_DROPS {
        if need(&cols) <= width {
            break;
        }
        cols.retain(|c| *c != drop);
    }
    cols
}

pub fn render(frame: &mut Frame, area: Rect, cx: &Ctx) {
    let t = cx.theme;
    let state = cx.state;
    let mut block = Block::bordered()
        .border_style(t.border)
        .title_bottom(super::tabs::line(cx));
    let Some(history) = &state.history else {
        frame.render_widget(
            Paragraph::new(Line::styled("  waiting for the first poll…", t.dim))
                .block(block.title(Span::styled(" Holdouts ", t.title))),
            area,
        );
        return;
    };
    let whatif = history.whatif.first();
    let mut title = vec![
        Span::styled(" Holdouts ", t.title),
        Span::styled(format!("{} clients", history.clients.len()), t.strong),
    ];
    if !state.filter.text.is_empty() {
        title.push(Span::styled(
            format!(
                " · {} match \"{}\"",
                state.holdouts.rows.len(),
                terminal(&state.filter.text)
            ),
            t.input,
        ));
    }
    if let Some(w) = whatif {
        title.push(Span::styled(format!(" · {} ", w.evidence.sentence()), t.dim));
    }
    block = block.title(Line::from(title));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if inner.height < 2 {
        return;
    }
    let cols = visible_columns(inner.width);
    let header = Row::new(std::iter::once(Cell::from(" ")).chain(cols.iter().map(|c| Cell::from(HEADERS[*c]))))
        .style(t.table_header);
    let page = usize::from(inner.height.saturating_sub(1));
    let rows: Vec<Row> = state
        .holdouts
        .rows
        .iter()
        .enumerate()
        .skip(state.holdouts.offset)
        .take(page)
        .map(|(i, idx)| {
            let row = record_row(&history.clients[*idx], cx, &cols);
            if i == state.holdouts.selected {
                row.style(t.selected)
            } else {
                row
            }
        })
        .collect();
    let widths = std::iter::once(Constraint::Length(1)).chain(cols.iter().map(|c| Constraint::Length(WIDTHS[*c])));
    if rows.is_empty() {
        let message = if history.clients.is_empty() {
            "no clients seen yet"
        } else {
            "no clients match the filter"
        };
        frame.render_widget(
            Table::new(Vec::<Row>::new(), widths).header(header).column_spacing(1),
            inner,
        );
        if inner.height > 2 {
            let y = inner.y + inner.height / 2;
            frame.render_widget(
                Paragraph::new(Line::styled(message, t.dim).centered()),
                Rect::new(inner.x, y, inner.width, 1),
            );
        }
        return;
    }
    frame.render_widget(Table::new(rows, widths).header(header).column_spacing(1), inner);
}

fn record_row(r: &ClientRecord, cx: &Ctx, cols: &[usize]) -> Row<'static> {
    let t = cx.theme;
    let worst = r.worst_class();
    let (marker, marker_style) = worst.map_or((" ", t.dim), |w| t.marker(w));
    let mut seen: Vec<String> = r.tls_versions.iter().map(|(v, n)| format!("{n}×{v}")).collect();
    for (class, n) in &r.classes {
        if !matches!(
            class,
            crate::model::ConnClass::Tls13 | crate::model::ConnClass::Tls12 | crate::model::ConnClass::TlsOlder
        ) {
            seen.push(format!("{n}×{}", class.label()));
        }
    }
    let sources: Vec<&str> = r
        .sources
        .iter()
        .map(|s| if *s == Source::Poll { "poll" } else { "log" })
        .collect();
    let text = |s: &str, w: u16| fit(&terminal(s), usize::from(w));
    let cells = vec![
        Cell::from(text(
            if r.key.application.is_empty() {
                "—"
            } else {
                &r.key.application
            },
            WIDTHS[0],
        )),
        Cell::from(text(&r.key.user, WIDTHS[1])),
        Cell::from(text(&r.key.database, WIDTHS[2])),
        Cell::from(text(&r.key.address, WIDTHS[3])),
        Cell::from(Span::styled(
            text(worst.map_or("", |w| w.label()), WIDTHS[4]),
            worst.map_or(t.dim, |w| t.class(w)),
        )),
        Cell::from(text(&seen.join(" "), WIDTHS[5])),
        Cell::from(format!("{:>5}", r.sessions)),
        Cell::from(Span::styled(
            format!("{:>4}", r.connected_now),
            if r.connected_now > 0 { t.strong } else { t.dim },
        )),
        Cell::from(cx.clock(r.last_seen)),
        Cell::from(Span::styled(sources.join("+"), t.dim)),
    ];
    let mut row = vec![Cell::from(Span::styled(marker, marker_style))];
    row.extend(
        cells
            .into_iter()
            .enumerate()
            .filter(|(i, _)| cols.contains(i))
            .map(|(_, c)| c),
    );
    Row::new(row)
}
