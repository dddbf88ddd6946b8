//! The drill-down of one Holdouts client: who it is, every way it connected (TLS version, cipher, source) with
//! counts and first/last seen, the addresses it came from and the latest sessions the ledger keeps. All of it is
//! the ledger's record as the history sent it; the view scrolls with `drill.scroll`.

use chrono::{DateTime, Utc};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Padding, Paragraph};

use super::Ctx;
use super::text::{cell, clip, field, wrap};
use crate::analysis::ledger::{ClientRecord, Source};
use crate::model::ConnClass;
use crate::output::safe::terminal;

const LABEL_COLS: usize = 12;
/// How a time is written in the tables: the time of day when it is today, else the date too.
const WHEN_COLS: usize = 16;
/// Wide enough for the longest cipher names PostgreSQL reports (`ECDHE-ECDSA-CHACHA20-POLY1305`, 29); wider
/// only spreads the table.
const CIPHER_COLS: usize = 30;

/// Rows of the trend strip at the drill-down's foot (borders included), drawn when the screen has room for it.
const TREND_ROWS: u16 = 5;

/// The record's part and the trend strip's, if there is room for both.
fn split(area: Rect) -> (Rect, Option<Rect>) {
    if area.height < 3 * TREND_ROWS {
        return (area, None);
    }
    let main = Rect::new(area.x, area.y, area.width, area.height - TREND_ROWS);
    (main, Some(Rect::new(area.x, main.bottom(), area.width, TREND_ROWS)))
}

/// The client's own week, on the same hours as the screens' trend (ending with the latest moment watched).
fn client_trend(r: &ClientRecord, cx: &Ctx) -> crate::analysis::ledger::Trend {
    let end = cx
        .state
        .history
        .as_ref()
        .and_then(|h| h.trend.hours.last())
        .map_or(r.last_seen, |h| h.at);
    r.trend(end, crate::analysis::ledger::WEEK)
}

pub fn render(frame: &mut Frame, area: Rect, cx: &Ctx) {
    let Some(drill) = &cx.state.holdouts.drill else {
        return;
    };
    let (area, strip) = split(area);
    if let Some(strip) = strip {
        super::trend::render_strip(frame, strip, cx, &client_trend(&drill.record, cx));
    }
    let t = cx.theme;
    let r = &drill.record;
    let mut title = vec![Span::styled(" Client ", t.title)];
    title.push(Span::styled(terminal(&name(r)).into_owned(), t.strong));
    if let Some(worst) = r.worst_class() {
        title.push(Span::styled(" · worst ", t.dim));
        title.push(Span::styled(worst.label(), t.class(worst)));
    }
    title.push(Span::raw(" "));
    let mut block = Block::bordered()
        .border_style(t.border)
        .padding(Padding::horizontal(1))
        .title(Line::from(title))
        .title(Line::from(Span::styled(" Esc back ", t.dim)).right_aligned());
    let inner = block.inner(area);
    let lines = lines(r, cx, usize::from(inner.width));
    let visible = usize::from(inner.height);
    let max_scroll = lines.len().saturating_sub(visible);
    let scroll = usize::from(drill.scroll.offset()).min(max_scroll);
    if max_scroll > 0 {
        let end = (scroll + visible).min(lines.len());
        let position = format!(" ↑↓ scroll · lines {}–{} of {} ", scroll + 1, end, lines.len());
        block = block.title_bottom(Line::from(Span::styled(position, t.dim)).right_aligned());
    }
    frame.render_widget(block, area);
    let shown: Vec<Line> = lines.into_iter().skip(scroll).take(visible).collect();
    frame.render_widget(Paragraph::new(shown), inner);
}

/// The largest useful scroll offset in `area`: the oldest recent session at the bottom.
pub fn max_scroll(area: Rect, cx: &Ctx) -> u16 {
    let Some(drill) = &cx.state.holdouts.drill else {
        return 0;
    };
    let (area, _) = split(area);
    let inner = Block::bordered().padding(Padding::horizontal(1)).inner(area);
    let lines = lines(&drill.record, cx, usize::from(inner.width)).len();
    u16::try_from(lines.saturating_sub(usize::from(inner.height))).unwrap_or(u16::MAX)
}

fn name(r: &ClientRecord) -> String {
    if r.key.application.is_empty() {
        "(no application_name)".to_string()
    } else {
        r.key.application.clone()
    }
}

fn source_name(source: Source) -> &'static str {
    match source {
        Source::Poll => "poll",
        Source::Log => "log",
    }
}

/// The TLS version for TLS sessions, else how it connected (`no TLS`, `local`, ...).
fn way(class: ConnClass, tls_version: Option<&str>) -> String {
    match tls_version {
        Some(v) => v.to_string(),
        None => class.short_label().to_string(),
    }
}

fn lines(r: &ClientRecord, cx: &Ctx, cols: usize) -> Vec<Line<'static>> {
    let t = cx.theme;
    let now = cx.snapshot().map_or(cx.state.now, |s| s.taken_at);
    let today = now.with_timezone(&cx.utc_offset).date_naive();
    let when = |at: DateTime<Utc>| {
        let local = at.with_timezone(&cx.utc_offset);
        if local.date_naive() == today {
            local.format("%H:%M:%S").to_string()
        } else {
            local.format("%Y-%m-%d %H:%M").to_string()
        }
    };
    let strong = |s: String| vec![Span::styled(s, t.strong)];
    let text = |s: &str| {
        if s.is_empty() {
            vec![Span::styled("—", t.dim)]
        } else {
            strong(terminal(s).into_owned())
        }
    };
    let ago = |at: DateTime<Utc>| {
        vec![
            Span::styled(cx.date_time(at), t.strong),
            Span::styled(format!("  {} ago", crate::format::age((now - at).num_seconds())), t.dim),
        ]
    };
    let room = cols.saturating_sub(LABEL_COLS + 3);
    let row = |label: &str, value: Vec<Span<'static>>| {
        let mut line = field(label, LABEL_COLS, t.dim, clip(value, room));
        line.spans.insert(0, Span::raw("  "));
        line
    };
    let heading = |s: &str| Line::from(Span::styled(s.to_string(), t.title));
    let counts = |map: &crate::analysis::ledger::VecMap<std::sync::Arc<str>, u64>| {
        let mut by_count: Vec<(&std::sync::Arc<str>, &u64)> = map.iter().collect();
        by_count.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let text: Vec<String> = by_count
            .iter()
            .map(|(name, n)| format!("{} ×{n}", terminal(name)))
            .collect();
        if text.is_empty() {
            vec![Span::styled("—", t.dim)]
        } else {
            strong(text.join(", "))
        }
    };

    let mut out = vec![heading("Client")];
    out.push(row("application", text(&r.key.application)));
    out.push(row("user", text(&r.key.user)));
    out.push(row("database", text(&r.key.database)));
    out.push(row("address", text(&r.key.address)));
    let worst = r.worst_class().map_or_else(
        || vec![Span::styled("—", t.dim)],
        |w| vec![Span::styled(w.label(), t.class(w))],
    );
    out.push(row("worst", worst));
    out.push(row(
        "sessions",
        vec![
            Span::styled(r.sessions.to_string(), t.strong),
            Span::styled(format!("  {} connected now", r.connected_now), t.dim),
        ],
    ));
    out.push(row("first seen", ago(r.first_seen)));
    out.push(row("last seen", ago(r.last_seen)));
    out.push(row("sources", strong(r.sources_label().to_string())));
    out.push(row("TLS versions", counts(&r.tls_versions)));
    out.push(row("ciphers", counts(&r.ciphers)));
    let mut addresses: Vec<String> = r.addresses.iter().map(|a| terminal(a).into_owned()).collect();
    if r.addresses_not_kept > 0 {
        addresses.push(format!("+{} sessions from addresses not kept", r.addresses_not_kept));
    }
    let addresses = wrap(&addresses.join(", "), room.max(1));
    for (i, line) in addresses.into_iter().enumerate() {
        let value = if line.is_empty() {
            vec![Span::styled("—", t.dim)]
        } else {
            strong(line)
        };
        out.push(row(if i == 0 { "addresses" } else { "" }, value));
    }

    // Every (way, cipher, source) with its own first and last seen: what changed around a settings change.
    let fixed = 2 + 9 + 1 + 4 + 1 + 6 + 1 + WHEN_COLS + 1 + WHEN_COLS + 1;
    let cipher_cols = cols.saturating_sub(fixed).clamp(8, CIPHER_COLS);
    let header = |cells: &[(&str, usize)]| {
        let mut spans = vec![Span::raw("  ")];
        for (title, w) in cells {
            spans.push(Span::styled(format!("{} ", cell(title, *w)), t.table_header));
        }
        Line::from(spans)
    };
    out.push(Line::default());
    out.push(heading("How it connected"));
    out.push(header(&[
        ("WAY", 9),
        ("CIPHER", cipher_cols),
        ("FROM", 4),
        ("  SESS", 6),
        ("FIRST SEEN", WHEN_COLS),
        ("LAST SEEN", WHEN_COLS),
    ]));
    let mut usage: Vec<_> = r.usage.iter().collect();
    usage.sort_by(|a, b| b.last_seen.cmp(&a.last_seen).then(b.sessions.cmp(&a.sessions)));
    for u in usage {
        out.push(Line::from(vec![
            Span::raw("  "),
            Span::styled(
                format!("{} ", cell(&way(u.class, u.tls_version.as_deref()), 9)),
                t.class(u.class),
            ),
            Span::raw(format!(
                "{} {} {:>6} {} {}",
                cell(&terminal(u.cipher.as_deref().unwrap_or("—")), cipher_cols),
                cell(source_name(u.source), 4),
                u.sessions,
                cell(&when(u.first_seen), WHEN_COLS),
                cell(&when(u.last_seen), WHEN_COLS),
            )),
        ]));
    }

    let address_cols = 15;
    let recent_cipher = cols
        .saturating_sub(2 + WHEN_COLS + 1 + 9 + 1 + 1 + address_cols + 1 + 4)
        .clamp(8, CIPHER_COLS);
    out.push(Line::default());
    out.push(heading(&format!(
        "Latest sessions ({} kept, newest first)",
        r.recent.len()
    )));
    out.push(header(&[
        ("AT", WHEN_COLS),
        ("WAY", 9),
        ("CIPHER", recent_cipher),
        ("ADDRESS", address_cols),
        ("FROM", 4),
    ]));
    for s in r.recent.iter().rev() {
        out.push(Line::from(vec![
            Span::raw(format!("  {} ", cell(&when(s.at), WHEN_COLS))),
            Span::styled(
                format!("{} ", cell(&way(s.class, s.tls_version.as_deref()), 9)),
                t.class(s.class),
            ),
            Span::raw(format!(
                "{} {} {}",
                cell(&terminal(s.cipher.as_deref().unwrap_or("—")), recent_cipher),
                cell(&terminal(s.address.as_deref().unwrap_or("—")), address_cols),
                cell(source_name(s.source), 4),
            )),
        ]));
    }
    if r.recent.is_empty() {
        out.push(Line::from(Span::styled("  none kept", t.dim)));
    }
    out
}
