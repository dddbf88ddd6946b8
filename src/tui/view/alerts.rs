//! Active alerts, most severe first, and the connection warnings (e.g. .pgpass ignored) as notes after them.
//! A pane in the band on wide terminals, a two-row strip above the table on narrow ones, a headline in the one row
//! left when the panes are hidden, and every alert full screen (`a`) in place of the screen's body.

use chrono::{DateTime, Utc};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Padding, Paragraph};

use super::text::{fit, spans_width, split_line, width, wrap};
use super::{Ctx, WAITING};
use crate::analysis::alerts::{AlertLog, Severity};
use crate::tui::state::Link;

struct Entry {
    severity: Severity,
    symbol: &'static str,
    style: Style,
    title: String,
    detail: String,
    /// Alerts have a start; connection warnings are facts of this connection and have none.
    since: Option<DateTime<Utc>>,
    new: bool,
}

fn entries(cx: &Ctx, cols: usize) -> Vec<Entry> {
    let t = cx.theme;
    let mut out: Vec<Entry> = cx
        .state
        .alerts
        .log
        .active()
        .map(|e| Entry {
            severity: e.alert.severity,
            symbol: e.alert.severity.symbol(),
            style: t.severity(e.alert.severity),
            title: crate::output::safe::terminal(&e.alert.title).into_owned(),
            detail: crate::output::safe::terminal(&e.alert.detail).into_owned(),
            since: Some(e.first_seen),
            new: AlertLog::is_new(e, cx.state.now),
        })
        .collect();
    for warning in &cx.state.warnings {
        // libpq-style warnings are long sentences: the first line of them is the title, the rest the detail.
        let text = crate::output::safe::terminal(warning.trim_start_matches("WARNING: "));
        let mut lines = wrap(&text, cols.saturating_sub(2)).into_iter();
        let title = lines.next().unwrap_or_default();
        out.push(Entry {
            severity: Severity::Info,
            symbol: Severity::Info.symbol(),
            style: t.info,
            title,
            detail: lines.collect::<Vec<_>>().join(" "),
            since: None,
            new: false,
        });
    }
    out
}

/// What to say when there is nothing to list.
fn quiet_line(cx: &Ctx, cols: usize) -> Line<'static> {
    let t = cx.theme;
    if cx.snapshot().is_none() && !matches!(cx.state.link, Link::Lost { .. }) {
        Line::from(Span::styled(fit(WAITING, cols), t.dim))
    } else {
        Line::from(Span::styled(fit("no alerts ✓", cols), t.ok))
    }
}

/// How much of `NEW since 09:30` a title line carries, from most to least.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stamp {
    Long,
    Short,
    Badge,
    Nothing,
}

fn stamp(entry: &Entry, cx: &Ctx, form: Stamp) -> Vec<Span<'static>> {
    let t = cx.theme;
    let mut spans = Vec::new();
    if entry.new && form != Stamp::Nothing {
        spans.push(Span::styled("NEW", t.new_badge));
    }
    if let Some(since) = entry.since {
        let text = match form {
            Stamp::Long => format!("since {}", cx.clock_hm(since)),
            Stamp::Short => cx.clock_hm(since),
            Stamp::Badge | Stamp::Nothing => String::new(),
        };
        if !text.is_empty() {
            if !spans.is_empty() {
                spans.push(Span::raw(" "));
            }
            spans.push(Span::styled(text, t.dim));
        }
    }
    spans
}

fn fits(entry: &Entry, cx: &Ctx, cols: usize, extra: usize, form: Stamp) -> bool {
    2 + width(&entry.title) + 2 + spans_width(&stamp(entry, cx, form)) + extra <= cols
}

/// The fullest stamp every entry can carry, so the times line up in one form down the pane.
fn common_stamp(entries: &[Entry], cx: &Ctx, cols: usize) -> Stamp {
    if entries.iter().all(|e| fits(e, cx, cols, 0, Stamp::Long)) {
        Stamp::Long
    } else {
        Stamp::Short
    }
}

/// Symbol and title, the stamp on the right. A title that does not fit sheds the stamp before it is cut.
fn title_line(entry: &Entry, cx: &Ctx, cols: usize, extra: Vec<Span<'static>>, preferred: Stamp) -> Line<'static> {
    let extra_w = spans_width(&extra);
    let form = [Stamp::Long, Stamp::Short, Stamp::Badge, Stamp::Nothing]
        .into_iter()
        .filter(|f| *f >= preferred)
        .find(|f| fits(entry, cx, cols, extra_w, *f))
        .unwrap_or(Stamp::Nothing);
    let left = vec![
        Span::styled(format!("{} ", entry.symbol), entry.style),
        Span::styled(entry.title.clone(), entry.style),
    ];
    let mut right = stamp(entry, cx, form);
    right.extend(extra);
    split_line(left, right, cols)
}

fn detail_line(entry: &Entry, cx: &Ctx, cols: usize) -> Line<'static> {
    Line::from(vec![
        Span::raw("  "),
        Span::styled(fit(&entry.detail, cols.saturating_sub(2)), cx.theme.dim),
    ])
}

pub fn render(frame: &mut Frame, area: Rect, cx: &Ctx) {
    let t = cx.theme;
    let mut block = Block::bordered().border_style(t.border).padding(Padding::horizontal(1));
    let inner = block.inner(area);
    let (cols, height) = (usize::from(inner.width), usize::from(inner.height));
    let entries = entries(cx, cols);
    let alerts = cx.state.alerts.log.active().count();
    let mut title = vec![Span::styled(" Alerts ", t.title)];
    if alerts > 0 {
        title.push(Span::styled(format!("{alerts} "), t.dim));
    }
    if alerts < entries.len() {
        let notes = entries.len() - alerts;
        title.push(Span::styled(
            format!("· {notes} note{} ", if notes == 1 { "" } else { "s" }),
            t.dim,
        ));
    }
    block = block.title(Line::from(title));
    frame.render_widget(block, area);

    if entries.is_empty() {
        frame.render_widget(Paragraph::new(quiet_line(cx, cols)), inner);
        return;
    }
    // One line per entry first, then details for as many as fit, most severe first; a last line counts the rest.
    let shown = if entries.len() <= height {
        entries.len()
    } else {
        height.saturating_sub(1)
    };
    let form = common_stamp(&entries[..shown], cx, cols);
    let mut with_detail = height.saturating_sub(shown + usize::from(shown < entries.len()));
    let mut lines = Vec::new();
    for entry in entries.iter().take(shown) {
        lines.push(title_line(entry, cx, cols, Vec::new(), form));
        if with_detail > 0 && !entry.detail.is_empty() {
            lines.push(detail_line(entry, cx, cols));
            with_detail -= 1;
        }
    }
    if shown < entries.len() {
        lines.push(Line::from(Span::styled(
            fit(&format!("+{} more · a shows all", entries.len() - shown), cols),
            t.dim,
        )));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

/// Two rows: the most severe alert with how many more there are, then its detail.
pub fn render_strip(frame: &mut Frame, area: Rect, cx: &Ctx) {
    let cols = usize::from(area.width);
    let entries = entries(cx, cols.saturating_sub(2));
    let Some(first) = entries.first() else {
        let line = quiet_line(cx, cols.saturating_sub(1));
        frame.render_widget(
            Paragraph::new(Line::from([vec![Span::raw(" ")], line.spans].concat())),
            area,
        );
        return;
    };
    let more = if entries.len() > 1 {
        vec![Span::styled(format!("  +{} more (a)", entries.len() - 1), cx.theme.dim)]
    } else {
        Vec::new()
    };
    let inner_cols = cols.saturating_sub(2);
    let mut title = title_line(first, cx, inner_cols, more, Stamp::Long);
    title.spans.insert(0, Span::raw(" "));
    let mut lines = vec![title];
    if !first.detail.is_empty() {
        let mut detail = detail_line(first, cx, inner_cols);
        detail.spans.insert(0, Span::raw(" "));
        lines.push(detail);
    }
    frame.render_widget(Paragraph::new(lines), area);
}

/// The most severe alert's symbol and title, cut to `cols`, and how many more (`a` shows them).
pub fn headline(cx: &Ctx, cols: usize) -> Vec<Span<'static>> {
    let entries = entries(cx, cols);
    let Some(first) = entries.first() else {
        return quiet_line(cx, cols).spans;
    };
    let more = if entries.len() > 1 {
        format!("  +{} more (a)", entries.len() - 1)
    } else {
        String::new()
    };
    let title = fit(&first.title, cols.saturating_sub(2 + width(&more)));
    vec![
        Span::styled(format!("{} {title}", first.symbol), first.style),
        Span::styled(more, cx.theme.dim),
    ]
}

/// `✖ 1  ▲ 2  ℹ 1 (a)`: alerts and notes by severity, for when the headline does not fit.
pub fn counts(cx: &Ctx) -> Vec<Span<'static>> {
    let entries = entries(cx, usize::MAX / 4);
    if entries.is_empty() {
        return quiet_line(cx, 40).spans;
    }
    let mut spans = Vec::new();
    for severity in [Severity::Critical, Severity::Warning, Severity::Info] {
        let n = entries.iter().filter(|e| e.severity == severity).count();
        if n > 0 {
            spans.push(Span::styled(
                format!("{} {n}  ", severity.symbol()),
                cx.theme.severity(severity),
            ));
        }
    }
    spans.push(Span::styled("(a)", cx.theme.dim));
    spans
}

/// Every alert and note with its whole detail, wrapped: what `a` opens when the pane cannot hold them all.
fn full_lines(cx: &Ctx, cols: usize) -> Vec<Line<'static>> {
    let entries = entries(cx, cols);
    if entries.is_empty() {
        return vec![quiet_line(cx, cols)];
    }
    let form = common_stamp(&entries, cx, cols);
    let mut lines = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        if i > 0 {
            lines.push(Line::default());
        }
        lines.push(title_line(entry, cx, cols, Vec::new(), form));
        for line in wrap(&entry.detail, cols.saturating_sub(2)) {
            if !line.is_empty() {
                lines.push(Line::from(vec![Span::raw("  "), Span::styled(line, cx.theme.dim)]));
            }
        }
    }
    lines
}

fn full_block(cx: &Ctx) -> Block<'static> {
    let t = cx.theme;
    let alerts = cx.state.alerts.log.active().count();
    Block::bordered()
        .border_style(t.border)
        .padding(Padding::horizontal(1))
        .title(Line::from(vec![
            Span::styled(" All alerts ", t.title),
            Span::styled(format!("{alerts} "), t.dim),
        ]))
        .title(Line::from(Span::styled(" Esc back ", t.dim)).right_aligned())
}

pub fn render_full(frame: &mut Frame, area: Rect, cx: &Ctx) {
    let t = cx.theme;
    let Some(scroll) = cx.state.alerts.full else {
        return;
    };
    let mut block = full_block(cx);
    let inner = block.inner(area);
    let lines = full_lines(cx, usize::from(inner.width));
    let visible = usize::from(inner.height);
    let max_scroll = lines.len().saturating_sub(visible);
    let offset = usize::from(scroll.offset()).min(max_scroll);
    if max_scroll > 0 {
        let end = (offset + visible).min(lines.len());
        let position = format!(" ↑↓ scroll · lines {}–{} of {} ", offset + 1, end, lines.len());
        block = block.title_bottom(Line::from(Span::styled(position, t.dim)).right_aligned());
    }
    frame.render_widget(block, area);
    let shown: Vec<Line> = lines.into_iter().skip(offset).take(visible).collect();
    frame.render_widget(Paragraph::new(shown), inner);
}

/// The largest useful scroll offset of the full list in `area`.
pub fn max_scroll_full(area: Rect, cx: &Ctx) -> u16 {
    let inner = full_block(cx).inner(area);
    let lines = full_lines(cx, usize::from(inner.width)).len();
    u16::try_from(lines.saturating_sub(usize::from(inner.height))).unwrap_or(u16::MAX)
}
