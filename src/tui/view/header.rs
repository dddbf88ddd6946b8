//! Two lines: what we watch and how fresh the data is; then how pgtls itself is connected, or why it is not.

use std::time::Duration;

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::Ctx;
use super::text::{fit, spans_width, split_line, width};
use crate::model::{ConnClass, Verification};
use crate::output::safe::terminal;
use crate::tui::state::Link;

pub fn render(frame: &mut Frame, area: Rect, cx: &Ctx) {
    let cols = usize::from(area.width);
    let lines = vec![identity_line(cx, cols), connection_line(cx, cols)];
    frame.render_widget(Paragraph::new(lines), area);
}

/// `every 2s`, `every 500ms`, `every 5m`.
pub fn interval(d: Duration) -> String {
    let ms = d.as_millis();
    match ms {
        ms if ms < 1_000 => format!("{ms}ms"),
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms if ms % 1_000 == 0 => format!("{}s", ms / 1_000),
        ms => format!("{:.1}s", ms as f64 / 1_000.0),
    }
}

/// What is shown on the right of the identity line, from the fullest line to the barest.
#[derive(Clone, Copy)]
struct Fit {
    /// `PostgreSQL 15.18` rather than `PG 15.18`.
    long_version: bool,
    interval: bool,
    poll: bool,
    /// `on Amazon RDS` after the version.
    platform: bool,
}

const FITS: [Fit; 4] = [
    Fit {
        long_version: true,
        interval: true,
        poll: true,
        platform: true,
    },
    Fit {
        long_version: true,
        interval: true,
        poll: false,
        platform: true,
    },
    Fit {
        long_version: false,
        interval: true,
        poll: false,
        platform: true,
    },
    Fit {
        long_version: false,
        interval: false,
        poll: false,
        platform: false,
    },
];

fn identity_line(cx: &Ctx, cols: usize) -> Line<'static> {
    let t = cx.theme;
    let state = cx.state;
    let snap = cx.snapshot();
    let target = terminal(&state.target).into_owned();
    // "18.1 (Debian 18.1-1.pgdg13+2)": the build note is for bug reports, not for this line.
    let version = snap.map(|s| terminal(s.server.version.split_whitespace().next().unwrap_or_default()).into_owned());

    let build = |fit: Fit, target: &str| {
        let mut facts: Vec<Vec<Span<'static>>> = Vec::new();
        if fit.interval {
            facts.push(vec![
                Span::styled("every ", t.dim),
                Span::styled(interval(state.interval), t.strong),
            ]);
        }
        if let Some(at) = state.updated_at {
            let mut fact = vec![Span::styled("updated ", t.dim), Span::styled(cx.clock(at), t.strong)];
            // Data kept on screen after the link is lost says how old it is, so it is never taken for live.
            if matches!(state.link, crate::tui::state::Link::Lost { .. }) {
                let stale = (state.now - at).num_seconds().max(0);
                fact.push(Span::styled(
                    format!(" (stale {})", crate::format::age(stale)),
                    t.warning,
                ));
            }
            facts.push(fact);
        }
        if let (true, Some(snap)) = (fit.poll, snap) {
            facts.push(vec![
                Span::styled("poll ", t.dim),
                Span::styled(format!("{:.1} ms", snap.poll_ms), t.strong),
            ]);
        }
        let mut right: Vec<Span<'static>> = Vec::new();
        for fact in facts {
            if !right.is_empty() {
                right.push(Span::styled(" · ", t.dim));
            }
            right.extend(fact);
        }
        if state.paused {
            right.push(Span::raw("  "));
            right.push(Span::styled(" PAUSED ", t.paused));
        }
        right.push(Span::raw(" "));
        let mut left = vec![
            Span::styled(" pgtls", t.brand),
            Span::raw("  "),
            Span::styled(target.to_string(), t.strong),
        ];
        if let Some(version) = &version {
            left.push(Span::raw("  "));
            left.push(Span::styled(
                if fit.long_version { "PostgreSQL " } else { "PG " },
                t.dim,
            ));
            left.push(Span::styled(version.clone(), t.strong));
        }
        if let (true, Some(snap)) = (fit.platform, snap) {
            left.push(Span::styled(" on ", t.dim));
            left.push(Span::styled(snap.platform.name.short_label(), t.strong));
        }
        (left, right)
    };
    let width_of =
        |(left, right): &(Vec<Span<'static>>, Vec<Span<'static>>)| spans_width(left) + 2 + spans_width(right);
    let barest = FITS[FITS.len() - 1];
    let (left, right) = FITS
        .iter()
        .map(|fit| build(*fit, &target))
        .find(|line| width_of(line) <= cols)
        .unwrap_or_else(|| {
            // Still too wide: cut the target, which the user typed and knows, rather than the freshness.
            let over = width_of(&build(barest, &target)).saturating_sub(cols);
            build(barest, &fit(&target, width(&target).saturating_sub(over)))
        });
    split_line(left, right, cols)
}

fn connection_line(cx: &Ctx, cols: usize) -> Line<'static> {
    let t = cx.theme;
    if let Link::Lost { since, error, retry_at } = &cx.state.link {
        let head = format!(" DISCONNECTED since {} — ", cx.clock(*since));
        let tail = format!(" — retrying at {} ", cx.clock(*retry_at));
        let room = cols.saturating_sub(width(&head) + width(&tail));
        let text = format!("{head}{}{tail}", fit(&terminal(error), room));
        let pad = cols.saturating_sub(width(&text));
        return Line::from(Span::styled(format!("{text}{}", " ".repeat(pad)), t.lost));
    }
    let Some(snap) = cx.snapshot() else {
        return Line::from(Span::styled(" connecting…", t.dim));
    };
    let m = &snap.monitor;
    let local = snap.server.host.starts_with('/');

    // Pieces in display order with how readily they go when space is short (lower goes first). The cipher
    // belongs to the version before it, so it joins without a separator.
    let mut pieces: Vec<(u8, bool, Vec<Span<'static>>)> = Vec::new();
    match &m.tls {
        Some(tls) => {
            let class = ConnClass::from_tls_version(&tls.version);
            pieces.push((
                9,
                false,
                vec![Span::styled(terminal(&tls.version).into_owned(), t.class(class))],
            ));
            pieces.push((2, true, vec![Span::styled(terminal(&tls.cipher).into_owned(), t.dim)]));
        }
        None if local => pieces.push((9, false, vec![Span::styled("local socket, no TLS", t.local)])),
        None => pieces.push((9, false, vec![Span::styled("no TLS", t.critical)])),
    }
    if let Some(used) = m.ssl_is_used {
        let text = format!("ssl_is_used()={}", if used { 't' } else { 'f' });
        pieces.push((3, false, vec![Span::styled(text, t.dim)]));
    }
    let (mark, style) = match m.verification {
        Verification::ChainAndHost => ("✓", t.ok),
        Verification::Chain => ("✓", t.warning),
        Verification::None => ("⚠", t.warning),
        Verification::NotTls if local => ("✗", t.dim),
        Verification::NotTls => ("✗", t.critical),
    };
    pieces.push((
        8,
        false,
        vec![
            Span::styled("sslmode=", t.dim),
            Span::styled(terminal(&m.sslmode).into_owned(), t.strong),
            Span::styled(format!(" {mark} {}", m.verification.label()), style),
        ],
    ));

    let prefix = Span::styled(" monitor: ", t.dim);
    let joined = |pieces: &[(u8, bool, Vec<Span<'static>>)]| {
        let mut spans = vec![prefix.clone()];
        for (i, (_, attached, piece)) in pieces.iter().enumerate() {
            if i > 0 {
                spans.push(if *attached {
                    Span::raw(" ")
                } else {
                    Span::styled(" · ", t.dim)
                });
            }
            spans.extend(piece.iter().cloned());
        }
        spans
    };
    while spans_width(&joined(&pieces)) > cols && pieces.len() > 1 {
        if let Some(pos) = pieces
            .iter()
            .enumerate()
            .min_by_key(|(_, (p, _, _))| *p)
            .map(|(i, _)| i)
        {
            pieces.remove(pos);
        }
    }
    Line::from(super::text::clip(joined(&pieces), cols))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_read_naturally() {
        assert_eq!(interval(Duration::from_millis(500)), "500ms");
        assert_eq!(interval(Duration::from_secs(2)), "2s");
        assert_eq!(interval(Duration::from_secs(300)), "5m");
        assert_eq!(interval(Duration::from_millis(1500)), "1.5s");
    }
}
