//! The "Server TLS" box: what the server allows, with weak settings marked `⚠` so they read without colour.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Padding, Paragraph};

use super::text::{field, fit, width};
use super::{Ctx, WAITING};
use crate::model::{Setting, Snapshot};

const LABEL_COLS: usize = 12;

pub fn render(frame: &mut Frame, area: Rect, cx: &Ctx) {
    let t = cx.theme;
    let block = Block::bordered()
        .border_style(t.border)
        .padding(Padding::horizontal(1))
        .title(Span::styled(" Server TLS ", t.title));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let lines = match cx.snapshot() {
        Some(snap) => lines(snap, cx, usize::from(inner.width), usize::from(inner.height)),
        None => vec![Line::from(Span::styled(fit(WAITING, usize::from(inner.width)), t.dim))],
    };
    frame.render_widget(Paragraph::new(lines), inner);
}

/// How a value is judged.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Fine,
    Weak(&'static str),
    Critical(&'static str),
}

struct Row {
    label: &'static str,
    setting: Setting,
    /// Shown for an empty value.
    empty: &'static str,
    verdict: Verdict,
    /// Lower goes first when the box is short.
    keep: u8,
}

fn rows(snap: &Snapshot, cx: &Ctx) -> Vec<Row> {
    let get = |name: &str| snap.setting(name).clone();
    let row = |label, setting: Setting, empty, keep| Row {
        label,
        verdict: Verdict::Fine,
        setting,
        empty,
        keep,
    };

    let mut ssl = row("ssl", get("ssl"), "(empty)", 10);
    if ssl.setting.value() == Some("off") {
        ssl.verdict = Verdict::Critical("no TLS at all");
    }
    let mut min = row("min protocol", get("ssl_min_protocol_version"), "(none)", 9);
    if matches!(min.setting.value(), Some("TLSv1" | "TLSv1.1")) {
        min.verdict = Verdict::Weak("deprecated");
    }
    let mut max = row("max protocol", get("ssl_max_protocol_version"), "(none)", 8);
    if matches!(max.setting.value(), Some("TLSv1" | "TLSv1.1" | "TLSv1.2")) {
        max.verdict = Verdict::Weak("blocks TLS 1.3");
    }
    let mut rows = vec![ssl, min, max, row("ciphers", get("ssl_ciphers"), "(empty)", 7)];
    let tls13 = get("ssl_tls13_ciphers");
    if tls13 != Setting::Absent {
        rows.push(row("1.3 ciphers", tls13, "(default)", 6));
    }
    // PostgreSQL 18 renamed ssl_ecdh_curve to ssl_groups (a list).
    let groups = get("ssl_groups");
    if snap.server.major() >= 18 && groups != Setting::Absent {
        rows.push(row("groups", groups, "(default)", 5));
    } else {
        rows.push(row("ecdh curve", get("ssl_ecdh_curve"), "(default)", 5));
    }
    let secure = get("require_secure_transport");
    if secure != Setting::Absent {
        rows.push(row("secure only", secure, "(empty)", 4));
    }
    rows.push(row("library", get("ssl_library"), "(unknown)", 3));
    // Whether client certificates can be checked at all, and revoked ones refused: shown when there is room.
    rows.push(row("client CA", get("ssl_ca_file"), "(none)", 2));
    let crl = match (get("ssl_crl_file"), get("ssl_crl_dir")) {
        (Setting::Set(file), _) if !file.is_empty() => Setting::Set(file),
        (_, dir) => dir,
    };
    rows.push(row("CRL", crl, "(none)", 1));
    // Each pooler's legs, beside the server's own settings: what its clients and its server connections may use.
    // One that does not answer, or whose answer was cut at pgtls's cap, says so in its label, and its value
    // starts with what the box has room for: when it last answered, or how many rows were read.
    for p in &snap.poolers {
        let pooler = if p.error.is_some() {
            let since = match p.answered_at {
                Some(at) => format!("last {} {}", cx.clock(at), p.address),
                None => format!("never answered {}", p.address),
            };
            Row {
                verdict: Verdict::Weak("not answering"),
                ..row("pooler down", Setting::Set(since), "(empty)", 9)
            }
        } else if p.truncated {
            Row {
                verdict: Verdict::Weak("answer cut at pgtls's cap"),
                ..row(
                    "pooler cut",
                    Setting::Set(format!("{} rows {}", p.rows, p.address)),
                    "(empty)",
                    9,
                )
            }
        } else {
            let mut pooler = row("pgbouncer", Setting::Set(pooler_summary(p)), "(empty)", 9);
            if matches!(p.setting("client_tls_sslmode"), Some("disable" | "allow" | "prefer")) {
                pooler.verdict = Verdict::Weak("clients may skip TLS");
            }
            pooler
        };
        rows.push(pooler);
    }
    rows
}

/// "127.0.0.1:6432 clients allow/secure, server require/secure, session"
fn pooler_summary(p: &crate::model::Pooler) -> String {
    let get = |name: &str| p.setting(name).unwrap_or("?");
    format!(
        "{} clients {}/{}, server {}/{}, {}",
        p.address,
        get("client_tls_sslmode"),
        get("client_tls_protocols"),
        get("server_tls_sslmode"),
        get("server_tls_protocols"),
        get("pool_mode")
    )
}

fn lines(snap: &Snapshot, cx: &Ctx, cols: usize, height: usize) -> Vec<Line<'static>> {
    let t = cx.theme;
    let mut rows = rows(snap, cx);
    while rows.len() > height {
        match rows.iter().enumerate().min_by_key(|(_, r)| r.keep).map(|(i, _)| i) {
            Some(pos) => rows.remove(pos),
            None => break,
        };
    }
    let room = cols.saturating_sub(LABEL_COLS + 1);
    rows.iter()
        .map(|row| {
            let value: Vec<Span<'static>> = match &row.setting {
                Setting::Set(v) if v.is_empty() => vec![Span::styled(row.empty, t.dim)],
                Setting::Set(v) => judged(&crate::output::safe::terminal(v), row.verdict, room, cx),
                Setting::Hidden => {
                    // The longest explanation that fits; the Alerts pane has the GRANT to run.
                    let text = [
                        "hidden (needs pg_read_all_settings)",
                        "hidden (pg_read_all_settings)",
                        "hidden",
                    ]
                    .into_iter()
                    .find(|s| width(s) <= room)
                    .unwrap_or("hidden");
                    vec![Span::styled(fit(text, room), t.dim)]
                }
                Setting::Absent => vec![Span::styled("n/a in this version", t.dim)],
            };
            field(row.label, LABEL_COLS, t.dim, value)
        })
        .collect()
}

fn judged(value: &str, verdict: Verdict, room: usize, cx: &Ctx) -> Vec<Span<'static>> {
    let t = cx.theme;
    let (style, reason): (Style, Option<&str>) = match verdict {
        Verdict::Fine => (t.strong, None),
        Verdict::Weak(why) => (t.warning, Some(why)),
        Verdict::Critical(why) => (t.critical, Some(why)),
    };
    let Some(reason) = reason else {
        return vec![Span::styled(fit(value, room), style)];
    };
    let value = fit(value, room.saturating_sub(2).max(1));
    let mut spans = vec![Span::styled(value.clone(), style), Span::styled(" ⚠", style)];
    if width(&value) + 3 + width(reason) <= room {
        spans.push(Span::styled(format!(" {reason}"), t.dim));
    }
    spans
}
