//! Below 80x24, down to [`COMPACT_WIDTH`] x [`COMPACT_HEIGHT`]: one line of counts (and the worst alert when it fits),
//! then the sessions with PID, application and TLS, the facts a small pane must still answer. The other screens need
//! the full size; the last line says so.

use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table};

use super::text::fit;
use super::{Ctx, MIN_HEIGHT, MIN_WIDTH, WAITING};
use crate::output::safe::terminal;
use crate::tui::columns::Column;

pub const COMPACT_WIDTH: u16 = 40;
pub const COMPACT_HEIGHT: u16 = 10;

/// Whether the compact view fits (and the full one does not).
pub fn applies(area: Rect) -> bool {
    area.width >= COMPACT_WIDTH && area.height >= COMPACT_HEIGHT && (area.width < MIN_WIDTH || area.height < MIN_HEIGHT)
}

/// Session rows shown: all but the counts line, the column titles and the last line.
pub fn page(area: Rect) -> usize {
    usize::from(area.height.saturating_sub(3))
}

const PID: u16 = 7;
const TLS: u16 = 8;

pub(crate) fn render(frame: &mut Frame, area: Rect, cx: &Ctx) {
    let t = cx.theme;
    let state = cx.state;
    let counts = Rect::new(area.x, area.y, area.width, 1);
    super::collapsed::render(frame, counts, cx);
    let table = Rect::new(area.x, area.y + 1, area.width, area.height - 2);
    let footer = Rect::new(area.x, area.bottom() - 1, area.width, 1);
    let app = area.width.saturating_sub(1 + PID + 1 + TLS + 1);
    let widths = [1, PID, app, TLS];
    let header = Row::new([
        Cell::from(""),
        Cell::from(Line::from("PID").alignment(Alignment::Right)),
        Cell::from("APPLICATION"),
        Cell::from("TLS"),
    ])
    .style(t.table_header);
    let rows: Vec<Row> = match cx.snapshot() {
        None => vec![Row::new([Cell::from(""), Cell::from(""), Cell::from(WAITING)])],
        Some(snap) => {
            let visible = page(area);
            let start = state.sessions.offset.min(state.sessions.rows.len());
            let end = (start + visible).min(state.sessions.rows.len());
            let selected = state.selected_index();
            (start..end)
                .map(|i| {
                    let s = &snap.sessions[state.sessions.rows[i]];
                    let (marker, marker_style) = t.marker(s.client_class());
                    let text = |c: Column, w: u16| fit(&terminal(&c.text(s, snap.taken_at)), usize::from(w));
                    let row = Row::new([
                        Cell::from(Span::styled(marker, marker_style)),
                        Cell::from(Line::from(text(Column::Pid, PID)).alignment(Alignment::Right)),
                        Cell::from(text(Column::Application, app)),
                        Cell::from(Span::styled(text(Column::Tls, TLS), t.class(s.class))),
                    ]);
                    if selected == Some(i) {
                        row.style(t.selected)
                    } else {
                        row
                    }
                })
                .collect()
        }
    };
    frame.render_widget(
        Table::new(rows, widths.map(Constraint::Length))
            .header(header)
            .column_spacing(1),
        table,
    );
    let note = fit(
        &format!(
            "compact: {}x{}, {MIN_WIDTH}x{MIN_HEIGHT} shows everything · q quit",
            area.width, area.height
        ),
        usize::from(area.width.saturating_sub(1)),
    );
    frame.render_widget(
        Paragraph::new(Line::from(Span::styled(format!(" {note}"), t.dim))),
        footer,
    );
}
