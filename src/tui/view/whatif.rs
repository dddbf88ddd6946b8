//! The What-if screen: who would be refused by the chosen change, with the evidence behind it.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Wrap};

use super::Ctx;
use crate::analysis::whatif::{Downgrade, Target, Verdict};
use crate::output::safe::terminal;

fn block(cx: &Ctx) -> Block<'static> {
    let t = cx.theme;
    Block::bordered()
        .border_style(t.border)
        .title(Span::styled(" What-if ", t.title))
        .title_bottom(super::tabs::line(cx))
}

pub fn render(frame: &mut Frame, area: Rect, cx: &Ctx) {
    let block = block(cx);
    match content(cx) {
        Content::Report(lines) => frame.render_widget(
            Paragraph::new(lines)
                .block(block)
                .wrap(Wrap { trim: false })
                .scroll((cx.state.whatif.scroll.offset(), 0)),
            area,
        ),
        Content::Waiting(lines) => frame.render_widget(Paragraph::new(lines).block(block), area),
    }
}

/// The largest useful scroll offset in `area`: the report's last line at the bottom.
pub fn max_scroll(area: Rect, cx: &Ctx) -> u16 {
    match content(cx) {
        Content::Report(lines) => super::text::max_scroll(lines, block(cx).inner(area)),
        Content::Waiting(_) => 0,
    }
}

enum Content {
    /// Not there yet: drawn as it is, without scrolling.
    Waiting(Vec<Line<'static>>),
    Report(Vec<Line<'static>>),
}

fn content(cx: &Ctx) -> Content {
    let t = cx.theme;
    let state = cx.state;
    let mut lines: Vec<Line> = Vec::new();
    let mut targets = vec![Span::styled(" Target  ", t.dim)];
    for target in [Target::MinTls13, Target::TlsRequired] {
        let label = format!(" {} ", target.label());
        targets.push(if target == state.whatif.target {
            Span::styled(format!("[{label}]"), t.title)
        } else {
            Span::styled(label, t.dim)
        });
        targets.push(Span::raw(" "));
    }
    targets.push(Span::styled("  ←/→ switch", t.key));
    lines.push(Line::from(targets));
    lines.push(Line::raw(""));
    let Some(history) = &state.history else {
        lines.push(Line::styled("  waiting for the first poll…", t.dim));
        return Content::Waiting(lines);
    };
    let Some(w) = history.whatif.iter().find(|w| w.target == state.whatif.target) else {
        return Content::Waiting(lines);
    };
    let (verdict, style) = match w.verdict {
        Verdict::Safe => ("SAFE", t.ok),
        Verdict::NotSafe => ("NOT SAFE", t.critical),
        Verdict::NotEnoughEvidence => ("NOT ENOUGH EVIDENCE", t.warning),
    };
    lines.push(Line::from(vec![
        Span::styled(" Verdict ", t.dim),
        Span::styled(verdict, style),
        Span::styled(format!(" — {}", w.reason), t.strong),
    ]));
    lines.push(Line::from(vec![
        Span::styled(" Evidence ", t.dim),
        Span::raw(w.evidence.sentence()),
    ]));
    lines.push(Line::raw(""));
    if w.refused.is_empty() {
        lines.push(Line::styled("  No client seen so far would be refused.", t.ok));
    } else {
        lines.push(Line::styled(
            format!(" Would be refused ({})", w.refused.len()),
            t.title,
        ));
    }
    for r in &w.refused {
        let now = if r.connected_now > 0 {
            format!(", {} connected now", r.connected_now)
        } else {
            String::new()
        };
        lines.push(Line::from(vec![
            Span::styled("  ✖ ", t.critical),
            Span::styled(terminal(&r.label).into_owned(), t.strong),
            Span::styled(
                format!("  seen {}, last {}{now}", r.seen_as.join(", "), cx.clock(r.last_seen)),
                t.dim,
            ),
        ]));
        match &r.downgrade {
            Downgrade::Possible { rules } => lines.push(Line::from(vec![
                Span::styled("      ▲ may silently downgrade: ", t.warning),
                Span::raw(format!(
                    "with sslmode=prefer or allow it reconnects WITHOUT TLS, because pg_hba.conf admits plain text ({})",
                    rules.join("; ")
                )),
            ])),
            Downgrade::Unknown { reason } => lines.push(Line::styled(format!("      ? downgrade risk unknown: {reason}"), t.dim)),
            Downgrade::NotPossible => {}
        }
    }
    if !w.unknown.is_empty() {
        lines.push(Line::raw(""));
        lines.push(Line::styled(
            format!(
                " Not visible ({}): grant pg_read_all_stats to see how they connect",
                w.unknown.len()
            ),
            t.warning,
        ));
        for u in &w.unknown {
            lines.push(Line::styled(format!("  ? {}", terminal(u)), t.unknown));
        }
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled(" Sources", t.title));
    for s in &history.sources {
        lines.push(Line::styled(format!("  · {}", terminal(s)), t.dim));
    }
    if let Some(file) = &history.ledger_file {
        lines.push(Line::styled(format!("  · ledger kept in {file}"), t.dim));
    } else {
        lines.push(Line::styled(
            "  · ledger in memory only (--ledger PATH keeps it across restarts)",
            t.dim,
        ));
    }
    Content::Report(lines)
}
