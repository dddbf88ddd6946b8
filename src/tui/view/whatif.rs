//! The What-if screen: who would be refused by the chosen change, with the evidence behind it; once the change is in
//! force, who was refused, who fell back to plain text and who lingers since it took effect.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};

use super::{Ctx, hanging};
use crate::analysis::after::{AfterChange, Standing, since_source_label, took_effect};
use crate::analysis::alerts::Severity;
use crate::analysis::sources::{NoteState, SourceNote};
use crate::analysis::whatif::{Change, Downgrade, Verdict};
use crate::output::safe::terminal;

fn block(cx: &Ctx) -> Block<'static> {
    let t = cx.theme;
    Block::bordered()
        .border_style(t.border)
        .title(Span::styled(" What-if ", t.title))
        .title_bottom(super::tabs::line(cx))
}

/// Every line is wrapped here, not by ratatui: a list item that does not fit goes on under its own text
/// ([`hanging`](super::hanging)), and scrolling counts the same rows as are drawn.
pub fn render(frame: &mut Frame, area: Rect, cx: &Ctx) {
    let block = block(cx);
    let inner = block.inner(area);
    match content(cx) {
        Content::Report(lines, _) => frame.render_widget(
            Paragraph::new(hanging::wrap(lines, inner.width).lines)
                .block(block)
                .scroll((cx.state.whatif.scroll.offset(), 0)),
            area,
        ),
        Content::Waiting(lines) => frame.render_widget(
            Paragraph::new(hanging::wrap(lines, inner.width).lines).block(block),
            area,
        ),
    }
}

/// The largest useful scroll offset in `area`: the report's last line at the bottom.
pub fn max_scroll(area: Rect, cx: &Ctx) -> u16 {
    match content(cx) {
        Content::Report(lines, _) => {
            let inner = block(cx).inner(area);
            let rows = hanging::wrap(lines, inner.width).lines.len();
            u16::try_from(rows.saturating_sub(usize::from(inner.height))).unwrap_or(u16::MAX)
        }
        Content::Waiting(_) => 0,
    }
}

/// Where the selected lingering session is drawn in `area`: its first wrapped row in the report and the pane's
/// height, so the state can scroll it into view after ↑/↓.
pub fn pick_row(area: Rect, cx: &Ctx) -> Option<(u16, u16)> {
    let Content::Report(lines, Some(at)) = content(cx) else {
        return None;
    };
    let inner = block(cx).inner(area);
    let above = hanging::wrap(lines, inner.width).starts.get(at).copied()?;
    Some((u16::try_from(above).unwrap_or(u16::MAX), inner.height))
}

enum Content {
    /// Not there yet: drawn as it is, without scrolling.
    Waiting(Vec<Line<'static>>),
    /// The report, and which of its lines is the selected lingering session.
    Report(Vec<Line<'static>>, Option<usize>),
}

fn content(cx: &Ctx) -> Content {
    let t = cx.theme;
    let state = cx.state;
    let mut lines: Vec<Line> = Vec::new();
    let mut targets = vec![Span::styled(" Target  ", t.dim)];
    for target in [Change::MinTls13, Change::TlsRequired] {
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
    lines.extend(pooler_lines(cx, &history.pooler_after));
    let standing = [Change::MinTls13, Change::TlsRequired]
        .iter()
        .position(|t| *t == state.whatif.target)
        .and_then(|i| history.after.get(i));
    match standing {
        Some(Standing::InForce(report)) => {
            let (after, picked) = after_lines(cx, report);
            let picked = picked.map(|i| i + lines.len());
            lines.extend(after);
            lines.extend(source_lines(cx));
            return Content::Report(lines, picked);
        }
        Some(Standing::CannotTell { reason }) => {
            lines.push(Line::from(vec![
                Span::styled(" In force? ", t.dim),
                Span::styled("cannot tell", t.warning),
                Span::raw(format!(" — {}; showing the what-if", terminal(reason))),
            ]));
        }
        Some(Standing::NotInForce { .. }) | None => {}
    }
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
        Span::styled(format!(" — {}", terminal(&w.reason)), t.strong),
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
        // Behind a pooler the setting that refuses is the pooler's, not the server's: say which.
        if r.refused_by.starts_with("pooler ") {
            lines.push(Line::styled(
                format!("      refused by {}", terminal(&r.refused_by)),
                t.warning,
            ));
        }
        if r.replication {
            lines.push(Line::styled(
                "      ⚠ replication connection: a standby or subscriber would stop streaming (HA at stake)",
                t.critical,
            ));
        }
        match &r.downgrade {
            Downgrade::Possible { rules } => lines.push(Line::from(vec![
                Span::styled("      ▲ may silently downgrade: ", t.warning),
                Span::raw(format!(
                    "with sslmode=prefer or allow it reconnects WITHOUT TLS, because {} admits plain text ({})",
                    if r.refused_by.starts_with("pooler ") {
                        "the pooler"
                    } else {
                        "pg_hba.conf"
                    },
                    terminal(&rules.join("; "))
                )),
            ])),
            Downgrade::Unknown { reason } => {
                lines.push(Line::styled(format!("      ? downgrade risk unknown: {reason}"), t.dim))
            }
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
    // What the verdict rests on comes right under it; what to do about it after.
    lines.extend(source_lines(cx));
    lines.extend(step_lines(cx, w.target));
    Content::Report(lines, None)
}

/// How to make the change on the platform the server showed (and only that platform's way), then how to get the
/// connection log there.
fn step_lines(cx: &Ctx, target: Change) -> Vec<Line<'static>> {
    use crate::analysis::platform::{ChangeStep, change_steps, log_steps};
    let t = cx.theme;
    let Some(snap) = cx.snapshot() else {
        return Vec::new();
    };
    let platform = &snap.platform;
    let mut lines = vec![
        Line::raw(""),
        Line::from(vec![
            Span::styled(" How to raise it here ", t.title),
            Span::styled(format!("({})", platform.name.label()), t.strong),
        ]),
    ];
    for e in &platform.evidence {
        lines.push(Line::styled(format!("  · {}", terminal(e)), t.dim));
    }
    let numbered = |steps: Vec<ChangeStep>, lines: &mut Vec<Line<'static>>| {
        for (i, step) in steps.iter().enumerate() {
            lines.push(Line::from(vec![
                Span::styled(format!("  {}. ", i + 1), t.dim),
                Span::raw(terminal(&step.title).into_owned()),
            ]));
            for command in &step.commands {
                lines.push(Line::styled(format!("       {}", terminal(command)), t.strong));
            }
            lines.push(Line::styled(
                format!("     {} · undo: {}", step.restart.label(), terminal(&step.undo)),
                t.dim,
            ));
            if let Some(note) = &step.note {
                lines.push(Line::styled(format!("     {}", terminal(note)), t.dim));
            }
        }
    };
    numbered(change_steps(platform.name, target), &mut lines);
    lines.push(Line::styled(" Connection log (log_connections, for refusals)", t.title));
    numbered(log_steps(platform.name), &mut lines);
    lines
}

/// Clients a pooler's own setting refused under the selected target, as its log (`--pgbouncer-log`) shows them:
/// the server never saw them, so they stand apart from the server's after-change lists.
fn pooler_lines(cx: &Ctx, poolers: &[crate::analysis::after::PoolerAfter]) -> Vec<Line<'static>> {
    let t = cx.theme;
    let mut lines = Vec::new();
    for p in poolers
        .iter()
        .filter(|p| p.target == cx.state.whatif.target && p.in_force)
    {
        lines.push(Line::styled(
            format!(
                " Refused by {} ({}, from the pooler's log)",
                terminal(&crate::analysis::pooler::refused_by_pooler(&p.pooler, p.target)),
                p.refused.len()
            ),
            t.title,
        ));
        if p.refused.is_empty() {
            lines.push(Line::styled("  No client refused in the pooler's log so far.", t.ok));
        }
        for r in &p.refused {
            let who = match r.labels.as_slice() {
                [] if r.address == crate::analysis::ledger::UNKNOWN_ADDRESS => {
                    "no address in PgBouncer's log".to_string()
                }
                [] => "no client seen from this address".to_string(),
                labels => terminal(&labels.join(", ")).into_owned(),
            };
            lines.push(Line::from(vec![
                Span::styled("  ✖ ", t.critical),
                Span::styled(terminal(&r.address).into_owned(), t.strong),
                Span::styled(
                    format!(
                        "  {} attempt(s), last {}: {} ({who})",
                        r.attempts,
                        cx.clock(r.last_seen),
                        terminal(r.short_reason())
                    ),
                    t.dim,
                ),
            ]));
        }
        lines.push(Line::raw(""));
    }
    lines
}

fn source_lines(cx: &Ctx) -> Vec<Line<'static>> {
    let t = cx.theme;
    let mut lines = Vec::new();
    let Some(history) = &cx.state.history else {
        return lines;
    };
    let open = cx.state.whatif.sources_open;
    lines.push(Line::raw(""));
    lines.push(Line::from(vec![
        Span::styled(" Sources", t.title),
        Span::styled(
            if open {
                "  Enter: one line each"
            } else {
                "  Enter: details"
            },
            t.dim,
        ),
    ]));
    let ledger = SourceNote::on(match &history.ledger_file {
        Some(file) => format!("ledger kept in {file}"),
        None => "ledger in memory only (--ledger PATH keeps it across restarts)".to_string(),
    });
    for s in history.sources.iter().chain(std::iter::once(&ledger)) {
        let text = terminal(&s.text);
        if open {
            lines.push(Line::styled(format!("  · {text}"), t.dim));
        } else {
            let (mark, style) = match s.state {
                NoteState::On => ("✓", t.ok),
                NoteState::Alert => ("▲", t.warning),
                NoteState::Off => ("✖", t.critical),
            };
            lines.push(Line::from(vec![
                Span::styled(format!("  {mark} "), style),
                Span::styled(source_headline(&text).to_string(), t.dim),
            ]));
        }
    }
    lines
}

/// A source's first clause: what it is and whether it is on; what it may miss is for the details.
fn source_headline(text: &str) -> &str {
    let head = text.split("; ").next().unwrap_or(text);
    head.split(", which ").next().unwrap_or(head)
}

/// "Since TLSv1.3 took effect": refused, fell back to plain text, lingering, each with what to do; and the index of
/// the selected lingering session's line.
fn after_lines(cx: &Ctx, r: &AfterChange) -> (Vec<Line<'static>>, Option<usize>) {
    let t = cx.theme;
    let mut lines = vec![Line::from(vec![
        Span::styled(format!(" {} ", took_effect(r.target)), t.title),
        Span::styled(cx.date_time(r.since), t.strong),
        Span::styled(format!(" ({})", since_source_label(r.since_source)), t.dim),
    ])];
    let (word, style) = match r.severity() {
        Some(Severity::Critical) => ("CLIENTS BROKEN", t.critical),
        Some(_) => ("OLD SESSIONS LINGER", t.warning),
        None => ("CLEAN", t.ok),
    };
    lines.push(Line::from(vec![
        Span::styled(" Verdict ", t.dim),
        Span::styled(word, style),
        Span::styled(
            format!(
                " — {} refused, {} fell back to plain text, {} lingering",
                r.refused.len(),
                r.downgraded.len(),
                r.lingering.len()
            ),
            t.strong,
        ),
    ]));
    let replication = r.replication();
    if replication > 0 {
        lines.push(Line::styled(
            format!(" ⚠ {replication} replication connection(s) among them: a standby or subscriber is at stake (HA)"),
            t.critical,
        ));
    }
    if let Some(gap) = &r.log_connections_off {
        lines.push(Line::styled(format!(" ▲ {}", terminal(gap)), t.warning));
    }
    let repl = |on: bool| if on { "  [replication]" } else { "" };

    lines.push(Line::raw(""));
    if r.refused.is_empty() {
        lines.push(Line::styled("  Nobody refused since the change.", t.ok));
    } else {
        lines.push(Line::styled(
            format!(" Refused ({}) — the log names only the address", r.refused.len()),
            t.title,
        ));
    }
    for f in &r.refused {
        lines.push(Line::from(vec![
            Span::styled("  ✖ ", t.critical),
            Span::styled(terminal(&f.address).into_owned(), t.strong),
            Span::styled(
                format!(
                    "  {} attempt(s), last {} — {}{}",
                    f.attempts,
                    cx.date_time(f.last_seen),
                    terminal(&f.reason),
                    repl(f.replication)
                ),
                t.dim,
            ),
        ]));
        lines.push(Line::styled(format!("      {}", terminal(&f.attribution)), t.dim));
        // What puts the top candidate first, short enough for one line (`check` says all of each candidate's).
        if let Some(top) = f.candidates.first() {
            lines.push(Line::styled(
                format!("        {}", crate::analysis::attribution::headline(top)),
                t.dim,
            ));
        }
        if !f.ruled_out.is_empty() {
            lines.push(Line::styled(
                format!(
                    "      ruled out: {} (the change does not refuse them)",
                    f.ruled_out
                        .iter()
                        .map(|r| terminal(&r.label).into_owned())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                t.dim,
            ));
        }
    }
    if !r.scans.is_empty() {
        lines.push(Line::styled(
            format!(
                " Scans: {} failed handshake(s) in bursts from {} — a scanner (pgtls probe, sslyze), not clients",
                r.scan_handshakes(),
                r.scans
                    .iter()
                    .map(|s| terminal(&s.address).into_owned())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            t.dim,
        ));
    }

    lines.push(Line::raw(""));
    if r.downgraded.is_empty() {
        lines.push(Line::styled("  Nobody fell back to plain text.", t.ok));
    } else {
        lines.push(Line::styled(
            format!(
                " Fell back to plain text ({}) — TLS before, none after",
                r.downgraded.len()
            ),
            t.title,
        ));
    }
    for d in &r.downgraded {
        lines.push(Line::from(vec![
            Span::styled("  ✖ ", t.critical),
            Span::styled(terminal(&d.label).into_owned(), t.strong),
            Span::styled(
                format!(
                    "  {} last {}, plain text since {}{}",
                    terminal(d.tls_before.tls_version.as_deref().unwrap_or("TLS")),
                    cx.date_time(d.tls_before.last_seen),
                    cx.date_time(d.plain_after.first_seen),
                    repl(d.replication)
                ),
                t.dim,
            ),
        ]));
        let via = if d.hba_lines.is_empty() {
            "remove the `host` lines".to_string()
        } else {
            format!(
                "remove pg_hba.conf {}",
                d.hba_lines
                    .iter()
                    .map(|l| terminal(l).into_owned())
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        };
        lines.push(Line::from(vec![
            Span::styled("      fix: ", t.warning),
            Span::raw(format!("{via}, or set sslmode=require for this client")),
        ]));
    }

    lines.push(Line::raw(""));
    if r.lingering.is_empty() {
        lines.push(Line::styled("  No session from before the change lingers.", t.ok));
    } else {
        lines.push(Line::styled(
            format!(
                " Lingering ({}) — connected before the change; they fail on their next reconnect",
                r.lingering.len()
            ),
            t.title,
        ));
        lines.push(Line::styled(
            "  ↑/↓ pick one · Enter details · K terminate · C cancel its query",
            t.key,
        ));
    }
    let selected = cx.state.whatif.selected_index(&r.lingering);
    let mut picked = None;
    for (i, l) in r.lingering.iter().enumerate() {
        let marker = if Some(i) == selected {
            picked = Some(lines.len());
            Span::styled("▶ ▲ ", t.selected)
        } else {
            Span::styled("  ▲ ", t.warning)
        };
        lines.push(Line::from(vec![
            marker,
            Span::styled(format!("pid {} ", l.pid), t.dim),
            Span::styled(terminal(&l.label()).into_owned(), t.strong),
            Span::styled(
                format!(
                    "  {} since {}{}",
                    terminal(l.how()),
                    cx.date_time(l.backend_start),
                    repl(l.replication)
                ),
                t.dim,
            ),
        ]));
    }
    (lines, picked)
}
