//! The migration's trend as sparklines (ratatui's own [`Sparkline`]): the last 24 hours and the last 7 days, hour by
//! hour, of clients below TLS 1.3, refused attempts, TLS 1.3 and plain-text clients. On the Holdouts and What-if
//! screens it takes the place of the Protocols box (live counts matter less there than days of history); the client
//! drill-down draws its own client's series in a strip at its foot.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Padding, Paragraph, Sparkline};

use super::Ctx;
use super::text::fit;
use crate::analysis::ledger::{DAY, Lane, Trend, WEEK};

/// Columns of a row's label ("below 1.3 24h ") and of the value after its bars (" 12").
const LABEL_COLS: u16 = 14;
const VALUE_COLS: u16 = 5;

/// One sparkline row: what it counts, over which window.
struct Row {
    label: &'static str,
    lane: Lane,
    hours: usize,
}

/// The rows in the order they are dropped last to first when the box is short: the holdouts first, since they are
/// what the migration waits for.
fn rows(with_refused: bool) -> Vec<Row> {
    let mut rows = vec![
        Row {
            label: "below 1.3 24h",
            lane: Lane::BelowTls13,
            hours: DAY,
        },
        Row {
            label: "below 1.3  7d",
            lane: Lane::BelowTls13,
            hours: WEEK,
        },
    ];
    if with_refused {
        rows.push(Row {
            label: "refused   24h",
            lane: Lane::Refused,
            hours: DAY,
        });
        rows.push(Row {
            label: "refused    7d",
            lane: Lane::Refused,
            hours: WEEK,
        });
    }
    rows.extend([
        Row {
            label: "TLSv1.3   24h",
            lane: Lane::Tls13,
            hours: DAY,
        },
        Row {
            label: "TLSv1.3    7d",
            lane: Lane::Tls13,
            hours: WEEK,
        },
        Row {
            label: "no TLS     7d",
            lane: Lane::Plain,
            hours: WEEK,
        },
    ]);
    rows
}

fn lane_style(cx: &Ctx, lane: Lane) -> Style {
    let t = cx.theme;
    match lane {
        Lane::Tls13 => t.tls13,
        Lane::Tls12 | Lane::BelowTls13 => t.tls12,
        Lane::Older => t.tls_older,
        Lane::Plain => t.plain_tcp,
        Lane::Refused => t.critical,
    }
}

/// The box on the Holdouts and What-if screens: the ledger-wide trend, distinct clients per hour (refused: distinct
/// addresses).
pub fn render_pane(frame: &mut Frame, area: Rect, cx: &Ctx) {
    let t = cx.theme;
    let block = Block::bordered()
        .border_style(t.border)
        .padding(Padding::horizontal(1))
        .title(Line::from(vec![
            Span::styled(" Trend ", t.title),
            Span::styled("· clients per hour ", t.dim),
        ]));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let Some(history) = &cx.state.history else {
        frame.render_widget(Paragraph::new(Line::styled(super::WAITING, t.dim)), inner);
        return;
    };
    draw_rows(frame, inner, cx, &history.trend, &rows(true));
}

/// The drill-down's strip: one client's own series (refusals are counted by address, so not here).
pub fn render_strip(frame: &mut Frame, area: Rect, cx: &Ctx, trend: &Trend) {
    let t = cx.theme;
    let block = Block::bordered()
        .border_style(t.border)
        .padding(Padding::horizontal(1))
        .title(Line::from(vec![
            Span::styled(" Trend ", t.title),
            Span::styled("· this client's sessions per hour ", t.dim),
        ]));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let rows = [
        Row {
            label: "below 1.3 24h",
            lane: Lane::BelowTls13,
            hours: DAY,
        },
        Row {
            label: "below 1.3  7d",
            lane: Lane::BelowTls13,
            hours: WEEK,
        },
        Row {
            label: "TLSv1.3    7d",
            lane: Lane::Tls13,
            hours: WEEK,
        },
    ];
    draw_sessions(frame, inner, cx, trend, &rows);
}

fn draw_rows(frame: &mut Frame, inner: Rect, cx: &Ctx, trend: &Trend, rows: &[Row]) {
    draw(frame, inner, cx, trend, rows, true);
}

fn draw_sessions(frame: &mut Frame, inner: Rect, cx: &Ctx, trend: &Trend, rows: &[Row]) {
    draw(frame, inner, cx, trend, rows, false);
}

/// Each row: its label, its bars (hours grouped until they fit, see [`Trend::bars`]), and the latest hour's value.
fn draw(frame: &mut Frame, inner: Rect, cx: &Ctx, trend: &Trend, rows: &[Row], clients: bool) {
    let t = cx.theme;
    if trend.hours.is_empty() {
        frame.render_widget(Paragraph::new(Line::styled("nothing seen yet", t.dim)), inner);
        return;
    }
    let bars_cols = inner.width.saturating_sub(LABEL_COLS + VALUE_COLS);
    for (i, row) in rows.iter().take(usize::from(inner.height)).enumerate() {
        let y = inner.y + i as u16;
        let label = Rect::new(inner.x, y, LABEL_COLS.min(inner.width), 1);
        frame.render_widget(
            Paragraph::new(Span::styled(fit(row.label, usize::from(label.width)), t.dim)),
            label,
        );
        if bars_cols == 0 {
            continue;
        }
        let (_, values) = trend.bars(row.hours, row.lane, clients, usize::from(bars_cols));
        // One scale per row: a quiet lane still shows its shape; the value after the bars gives the size.
        let max = values.iter().copied().max().unwrap_or(0).max(1);
        // Right-aligned, so the newest hour is always beside its value, whatever the window's length.
        let shown = values.len().min(usize::from(bars_cols)) as u16;
        let spark = Rect::new(label.right() + bars_cols - shown, y, shown, 1);
        frame.render_widget(
            Sparkline::default()
                .data(values.iter().copied())
                .max(max)
                .style(lane_style(cx, row.lane)),
            spark,
        );
        let latest = trend.series(row.hours, row.lane, clients).last().copied().unwrap_or(0);
        let value = Rect::new(
            label.right() + bars_cols,
            y,
            VALUE_COLS.min(inner.right() - label.right() - bars_cols),
            1,
        );
        frame.render_widget(
            Paragraph::new(Span::styled(
                format!("{latest:>w$}", w = usize::from(value.width)),
                t.strong,
            )),
            value,
        );
    }
}
