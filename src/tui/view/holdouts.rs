//! The Holdouts screen: every client identity the ledger has seen, worst exposure first or sorted by any column
//! (the sorted one marked ▲/▼); Enter opens client.rs.

use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table};

use super::Ctx;
use super::text::{fit, width};
use crate::analysis::ledger::{ClientRecord, Side};
use crate::output::safe::terminal;
use crate::tui::components::holdouts::{HoldoutColumn, seen_as};

/// Cells per column: each fits its title and the sort arrow after it.
fn column_width(column: HoldoutColumn) -> u16 {
    match column {
        HoldoutColumn::Application => 16,
        HoldoutColumn::User => 10,
        HoldoutColumn::Database => 9,
        HoldoutColumn::Address => 15,
        HoldoutColumn::Worst => 12,
        HoldoutColumn::SeenAs => 17,
        HoldoutColumn::Sessions => 5,
        HoldoutColumn::Now => 4,
        HoldoutColumn::LastSeen => 10,
        HoldoutColumn::Sources => 8,
    }
}

/// Dropped first on narrow terminals: address, sources, database.
const NARROW_DROPS: [HoldoutColumn; 3] = [HoldoutColumn::Address, HoldoutColumn::Sources, HoldoutColumn::Database];

/// Which columns fit in `width` (marker and spacing included), in display order, with their widths.
fn fitted(width: u16) -> Vec<(HoldoutColumn, u16)> {
    let mut cols: Vec<(HoldoutColumn, u16)> = HoldoutColumn::ALL.iter().map(|c| (*c, column_width(*c))).collect();
    let need = |cols: &[(HoldoutColumn, u16)]| 2 + cols.iter().map(|(_, w)| w + 1).sum::<u16>();
    for drop in NARROW_DROPS {
        if need(&cols) <= width {
            break;
        }
        cols.retain(|(c, _)| *c != drop);
    }
    // Still too wide (80 columns): names and the seen-as list give up a few cells rather than ratatui squeezing
    // every column alike.
    for (column, min) in [
        (HoldoutColumn::User, 8),
        (HoldoutColumn::SeenAs, 14),
        (HoldoutColumn::Application, 12),
    ] {
        let over = need(&cols).saturating_sub(width);
        if let Some((_, w)) = cols.iter_mut().find(|(c, _)| *c == column) {
            *w -= over.min(w.saturating_sub(min));
        }
    }
    cols
}

/// The columns shown at this inner width, in display order: what `s` cycles through.
pub fn visible_columns(width: u16) -> Vec<HoldoutColumn> {
    fitted(width).into_iter().map(|(c, _)| c).collect()
}

/// The column whose header covers `x` (from the inner left edge), laid out as [`render`] lays it out.
pub fn column_at(inner_width: u16, x: u16) -> Option<HoldoutColumn> {
    // The marker cell and its gap come first.
    let mut start = 2u16;
    for (c, w) in fitted(inner_width) {
        if x >= start && x < start + w {
            return Some(c);
        }
        start += w + 1;
    }
    None
}

fn numeric(column: HoldoutColumn) -> bool {
    matches!(column, HoldoutColumn::Sessions | HoldoutColumn::Now)
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
    let sort = state.holdouts.sort;
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
    let cols = fitted(block.inner(area).width);
    if !cols.iter().any(|(c, _)| *c == sort.column) {
        let arrow = if sort.descending { "▼" } else { "▲" };
        title.push(Span::styled(
            format!(" · sorted by {} {arrow}", sort.column.title()),
            t.dim,
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
    let header = Row::new(std::iter::once(Cell::from(" ")).chain(cols.iter().map(|(c, w)| {
        let mut title = c.title().to_string();
        if *c == sort.column {
            title.push(if sort.descending { '▼' } else { '▲' });
            if width(&title) < usize::from(*w) {
                title.insert(c.title().len(), ' ');
            }
        }
        let line = Line::from(title);
        Cell::from(if numeric(*c) {
            line.alignment(Alignment::Right)
        } else {
            line
        })
    })))
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
    let widths = std::iter::once(Constraint::Length(1)).chain(cols.iter().map(|(_, w)| Constraint::Length(*w)));
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

fn record_row(r: &ClientRecord, cx: &Ctx, cols: &[(HoldoutColumn, u16)]) -> Row<'static> {
    let t = cx.theme;
    let worst = r.worst_class();
    let (marker, marker_style) = worst.map_or((" ", t.dim), |w| t.marker(w));
    let cell = |column: HoldoutColumn, w: u16| {
        let w = usize::from(w);
        // Client-controlled names must not smuggle control characters to the terminal.
        let text = |s: &str| fit(&terminal(s), w);
        match column {
            // Behind a pooler: its own connections are the pooler's identity, its clients come through it.
            HoldoutColumn::Application => Cell::from(match &r.key.pooler {
                Some(p) if p.side == Side::Server => text(&format!("(pooler {})", p.address)),
                _ if r.key.application.is_empty() => text("—"),
                _ => text(&r.key.application),
            }),
            HoldoutColumn::User => Cell::from(text(&r.key.user)),
            HoldoutColumn::Database => Cell::from(text(&r.key.database)),
            HoldoutColumn::Address => Cell::from(match &r.key.pooler {
                Some(p) if p.side == Side::Client => {
                    text(format!("{} via pooler {}", r.key.address, p.address).trim_start())
                }
                _ => text(&r.key.address),
            }),
            HoldoutColumn::Worst => Cell::from(Span::styled(
                text(worst.map_or("", |w| w.label())),
                worst.map_or(t.dim, |w| t.class(w)),
            )),
            HoldoutColumn::SeenAs => Cell::from(text(&seen_as(r))),
            HoldoutColumn::Sessions => Cell::from(format!("{:>w$}", r.sessions)),
            HoldoutColumn::Now => Cell::from(Span::styled(
                format!("{:>w$}", r.connected_now),
                if r.connected_now > 0 { t.strong } else { t.dim },
            )),
            HoldoutColumn::LastSeen => Cell::from(cx.clock(r.last_seen)),
            HoldoutColumn::Sources => Cell::from(Span::styled(r.sources_label(), t.dim)),
        }
    };
    let mut row = vec![Cell::from(Span::styled(marker, marker_style))];
    row.extend(cols.iter().map(|(c, w)| cell(*c, *w)));
    Row::new(row)
}
