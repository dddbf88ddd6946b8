//! The Certificates screen: the chain the server sends, as a tree, with expiry, verification and
//! the TLS versions and suites it accepts.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Wrap};

use super::Ctx;
use crate::probe::ProbeReport;
use crate::tui::state::ProbeView;

fn block(cx: &Ctx) -> Block<'static> {
    let t = cx.theme;
    Block::bordered()
        .border_style(t.border)
        .title(Span::styled(" Certificates ", t.title))
        .title_bottom(super::tabs::line(cx))
}

pub fn render(frame: &mut Frame, area: Rect, cx: &Ctx) {
    frame.render_widget(
        Paragraph::new(lines(cx))
            .block(block(cx))
            .wrap(Wrap { trim: false })
            .scroll((cx.state.certificates.scroll.offset(), 0)),
        area,
    );
}

/// The largest useful scroll offset in `area`: the report's last line at the bottom.
pub fn max_scroll(area: Rect, cx: &Ctx) -> u16 {
    super::text::max_scroll(lines(cx), block(cx).inner(area))
}

fn lines(cx: &Ctx) -> Vec<Line<'static>> {
    let t = cx.theme;
    match &cx.state.certificates.probe {
        ProbeView::NotRun => vec![Line::styled(
            "  Press P to probe the server: about ten connections, each failed handshake leaves a line in its log.",
            t.dim,
        )],
        ProbeView::Running => vec![Line::styled(
            "  probing the server's certificate chain and TLS versions…",
            t.dim,
        )],
        ProbeView::Failed(e) => vec![Line::styled(format!("  probe failed: {e}"), t.critical)],
        ProbeView::Done(report) => report_lines(report, cx),
    }
}

fn report_lines(r: &ProbeReport, cx: &Ctx) -> Vec<Line<'static>> {
    let t = cx.theme;
    let mut lines = Vec::new();
    let label = |s: &str| Span::styled(format!(" {s:<12}"), t.dim);
    lines.push(Line::from(vec![
        label("Endpoint"),
        Span::styled(format!("{}:{} ({})", r.host, r.port, r.address), t.strong),
        Span::styled(
            format!("  probed {} · {} connections", cx.clock(r.probed_at), r.connections),
            t.dim,
        ),
    ]));
    if !r.accepts_tls {
        lines.push(Line::from(vec![
            label("TLS"),
            Span::styled("refused: the server answered 'N' (ssl = off)", t.critical),
        ]));
    }
    if let Some(n) = &r.negotiated {
        lines.push(Line::from(vec![
            label("Negotiated"),
            Span::styled(format!("{} {}", n.version, n.cipher), t.strong),
        ]));
    }
    if !r.chain.is_empty() {
        lines.push(Line::from(vec![
            label("Chain"),
            Span::styled("as sent, leaf first", t.dim),
        ]));
    }
    for (i, c) in r.chain.iter().enumerate() {
        let indent = "   ".repeat(i);
        let expiry = if c.days_left < 0 {
            Span::styled(format!("EXPIRED {} days ago", -c.days_left), t.critical)
        } else if c.days_left <= 30 {
            Span::styled(format!("{} days left", c.days_left), t.warning)
        } else {
            Span::styled(format!("{} days left", c.days_left), t.ok)
        };
        lines.push(Line::from(vec![
            Span::raw(format!("  {indent}└─ ")),
            Span::styled(c.subject.clone(), t.strong),
            Span::raw("  "),
            expiry,
            Span::styled(format!(" (until {})", c.not_after.format("%Y-%m-%d")), t.dim),
        ]));
        let pad = format!("  {indent}   ");
        lines.push(Line::styled(
            format!(
                "{pad}issuer {} · {} {} · {}",
                c.issuer, c.key_type, c.key_bits, c.signature_algorithm
            ),
            t.dim,
        ));
        if !c.sans.is_empty() {
            lines.push(Line::styled(format!("{pad}names {}", c.sans.join(", ")), t.dim));
        }
        lines.push(Line::styled(format!("{pad}serial {}", c.serial), t.dim));
        lines.push(Line::styled(format!("{pad}sha256 {}", c.sha256), t.dim));
    }
    if let Some(m) = r.host_name_matches {
        lines.push(Line::from(vec![
            label("Host name"),
            if m {
                Span::styled(format!("{} ✓ named by the certificate", r.host), t.ok)
            } else {
                Span::styled(
                    format!("{} ✗ not named by the certificate (verify-full fails)", r.host),
                    t.critical,
                )
            },
        ]));
    }
    for v in r.verify_bundle.iter().chain(r.verify_system.iter()) {
        let verdict = if v.verified {
            Span::styled(
                format!("✓ verified, anchored at {}", v.anchor.clone().unwrap_or_default()),
                t.ok,
            )
        } else {
            Span::styled(format!("✗ {}", v.error.clone().unwrap_or_default()), t.warning)
        };
        lines.push(Line::from(vec![
            label("Verify"),
            Span::styled(format!("{}: ", v.against), t.dim),
            verdict,
        ]));
    }
    for b in &r.bundle {
        let role = if b.anchors_server {
            Span::styled("anchors the server's chain", t.ok)
        } else if b.pinned_from_chain {
            Span::styled("PINNED: the server sends it itself; breaks on rotation", t.warning)
        } else {
            Span::styled(if b.self_signed { "root" } else { "not a root" }, t.dim)
        };
        lines.push(Line::from(vec![
            Span::styled(format!("   root file · {}  ", b.subject), t.dim),
            role,
        ]));
    }
    if !r.versions.is_empty() {
        let mut spans = vec![label("Protocols")];
        for v in &r.versions {
            let (mark, style) = match (v.accepted, v.version) {
                (true, crate::probe::scan::TlsVersion::Tls10 | crate::probe::scan::TlsVersion::Tls11) => {
                    ("✓", t.critical)
                }
                (true, _) => ("✓", t.ok),
                (false, _) => ("✗", t.dim),
            };
            spans.push(Span::styled(format!("{} {mark}   ", v.version.name()), style));
        }
        lines.push(Line::from(spans));
    }
    if !r.tls12_ciphers.is_empty() {
        let mut spans = vec![label("TLS 1.2")];
        for c in &r.tls12_ciphers {
            let style = if c.weak() { t.warning } else { t.ok };
            spans.push(Span::styled(
                format!("{}{}  ", c.name, if c.weak() { " ▲" } else { "" }),
                style,
            ));
        }
        lines.push(Line::from(spans));
    }
    lines.push(Line::raw(""));
    if r.findings.is_empty() {
        lines.push(Line::styled("  no findings ✓", t.ok));
    }
    for f in &r.findings {
        lines.push(Line::from(vec![
            Span::styled(format!("  {} ", f.severity.symbol()), t.severity(f.severity)),
            Span::raw(f.message.clone()),
        ]));
    }
    lines
}
