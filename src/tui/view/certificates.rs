//! The Certificates screen: the chain the server sends, as a tree, with expiry, verification and
//! the TLS versions and suites it accepts.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Wrap};

use super::Ctx;
use crate::output::safe::terminal;
use crate::probe::ProbeReport;
use crate::probe::on_disk::OnDiskVerdict;

/// Outside text (certificate names, file paths, OpenSSL's and libpq's messages) made safe for the terminal.
fn s(text: &str) -> String {
    terminal(text).into_owned()
}
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
        Span::styled(format!("{}:{} ({})", s(&r.host), r.port, s(&r.address)), t.strong),
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
            Span::styled(format!("{} {}", s(&n.version), s(&n.cipher)), t.strong),
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
            Span::styled(s(&c.subject), t.strong),
            Span::raw("  "),
            expiry,
            Span::styled(format!(" (until {})", c.not_after.format("%Y-%m-%d")), t.dim),
        ]));
        let pad = format!("  {indent}   ");
        let issued = if c.self_signed {
            "self-signed".to_string()
        } else {
            format!("issued by {}", s(&c.issuer))
        };
        lines.push(Line::from(vec![
            Span::raw(pad.clone()),
            Span::styled(issued, t.strong),
            Span::styled(
                format!(" · {} {} · {}", s(&c.key_type), c.key_bits, s(&c.signature_algorithm)),
                t.dim,
            ),
        ]));
        for (issuer, bundle) in cross_signed(r, i) {
            lines.push(Line::styled(
                format!(
                    "{pad}cross-signed: also certified by {} (that copy is in {}, not sent)",
                    s(&issuer),
                    s(&bundle)
                ),
                t.warning,
            ));
        }
        if !c.sans.is_empty() {
            let names: Vec<String> = c.sans.iter().map(|n| s(n)).collect();
            lines.push(Line::styled(format!("{pad}names {}", names.join(", ")), t.dim));
        }
        lines.push(Line::styled(format!("{pad}serial {}", s(&c.serial)), t.dim));
        lines.push(Line::styled(format!("{pad}sha256 {}", s(&c.sha256)), t.dim));
    }
    if let Some(d) = &r.on_disk {
        let style = match d.verdict {
            OnDiskVerdict::Same => t.ok,
            OnDiskVerdict::Differs { .. } => t.warning,
            OnDiskVerdict::NotCompared { .. } => t.dim,
        };
        let mark = match d.verdict {
            OnDiskVerdict::Same => "✓ ",
            OnDiskVerdict::Differs { .. } => "✗ ",
            OnDiskVerdict::NotCompared { .. } => "",
        };
        lines.push(Line::from(vec![
            label("On disk"),
            Span::styled(format!("{mark}{}", s(&d.summary())), style),
        ]));
    }
    if let Some(m) = r.host_name_matches {
        lines.push(Line::from(vec![
            label("Host name"),
            if m {
                Span::styled(format!("{} ✓ named by the certificate", s(&r.host)), t.ok)
            } else {
                Span::styled(
                    format!("{} ✗ not named by the certificate (verify-full fails)", s(&r.host)),
                    t.critical,
                )
            },
        ]));
    }
    for v in r.verify_bundle.iter().chain(r.verify_system.iter()) {
        let verdict = if v.verified {
            Span::styled(
                format!("✓ verified, anchored at {}", s(v.anchor.as_deref().unwrap_or_default())),
                t.ok,
            )
        } else {
            Span::styled(format!("✗ {}", s(v.error.as_deref().unwrap_or_default())), t.warning)
        };
        lines.push(Line::from(vec![
            label("Verify"),
            Span::styled(format!("{}: ", s(&v.against)), t.dim),
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
            Span::styled(format!("   root file · {}  ", s(&b.subject)), t.dim),
            role,
        ]));
    }
    lines.extend(bundle_lines(r, cx));
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
            Span::raw(s(&f.message)),
        ]));
    }
    lines
}

/// Other copies of the intermediate sent at `index` (same subject, other certificate) that a bundle's path went
/// through: (its issuer, the bundle holding it). That is what makes a cross-signed intermediate visible.
fn cross_signed(r: &ProbeReport, index: usize) -> Vec<(String, String)> {
    let Some(sent) = r.chain.get(index).filter(|_| index > 0) else {
        return Vec::new();
    };
    let mut out: Vec<(String, String)> = Vec::new();
    for b in &r.bundles {
        for step in &b.path_taken {
            let other_copy = step.from == "bundle" && step.subject == sent.subject && step.sha256 != sent.sha256;
            if other_copy && !out.iter().any(|(issuer, _)| *issuer == step.issuer) {
                out.push((step.issuer.clone(), b.path.clone()));
            }
        }
    }
    out
}

/// Per bundle (`--bundle`, or `bundles` in the config): would a client with exactly `sslrootcert=FILE` connect,
/// which of its roots anchors the chain alone, and why it fails.
fn bundle_lines(r: &ProbeReport, cx: &Ctx) -> Vec<Line<'static>> {
    let t = cx.theme;
    let mut lines = Vec::new();
    if r.bundles.is_empty() {
        return lines;
    }
    lines.push(Line::from(vec![
        Span::styled(format!(" {:<12}", "Bundles"), t.dim),
        Span::styled("would a client with exactly sslrootcert=FILE connect?", t.dim),
    ]));
    let verdict = |name: &str, ok: bool| {
        if ok {
            Span::styled(format!("{name} ✓  "), t.ok)
        } else {
            Span::styled(format!("{name} ✗  "), t.critical)
        }
    };
    for b in &r.bundles {
        let mut head = vec![Span::styled(format!("   {}  ", s(&b.path)), t.strong)];
        if let Some(e) = &b.error {
            head.push(Span::styled(s(e), t.critical));
            lines.push(Line::from(head));
            continue;
        }
        head.push(verdict("verify-full", b.verifies));
        head.push(verdict("verify-ca", b.verifies_ca));
        if let Some(anchor) = &b.anchor {
            head.push(Span::styled(format!("anchored at {}", s(anchor)), t.dim));
        }
        lines.push(Line::from(head));
        if b.path_taken.len() > 1 {
            let steps: Vec<String> = b
                .path_taken
                .iter()
                .map(|p| format!("{} ({})", s(&p.subject), s(&p.from)))
                .collect();
            lines.push(Line::styled(format!("      path {}", steps.join(" → ")), t.dim));
        }
        for why in &b.explanation {
            lines.push(Line::styled(format!("      ✗ {}", s(why)), t.critical));
        }
        for root in &b.roots {
            let (word, style) = if root.anchors {
                ("anchors alone", t.ok)
            } else {
                ("does not anchor alone", t.dim)
            };
            let mut spans = vec![
                Span::styled(format!("      {} · ", s(&root.subject)), t.dim),
                Span::styled(word, style),
                Span::styled(format!(" · until {}", root.not_after.format("%Y-%m-%d")), t.dim),
            ];
            if root.expired {
                spans.push(Span::styled(" · EXPIRED", t.critical));
            }
            lines.push(Line::from(spans));
            lines.push(Line::styled(format!("         sha256 {}", s(&root.sha256)), t.dim));
        }
    }
    lines
}
