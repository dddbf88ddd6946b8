//! The drill-down of one session: the what-if answer on top (the question pgtls exists for), then every field,
//! then the query. Fields and query scroll with `detail.scroll`; the answer stays in view.

use chrono::{DateTime, Utc};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Padding, Paragraph};

use super::Ctx;
use super::text::{field, fit, gap, width, wrap};
use crate::analysis::whatif;
use crate::model::{ConnClass, Session};

const LABEL_COLS: usize = 13;
/// From this inner width on, fields go in two columns.
const TWO_COLUMNS: u16 = 96;

pub fn render(frame: &mut Frame, area: Rect, cx: &Ctx) {
    let Some(detail) = &cx.state.detail else {
        return;
    };
    let t = cx.theme;
    let s = &detail.session;
    let mut title = vec![Span::styled(format!(" Session {} ", s.pid), t.title)];
    if let Some(app) = s.application_name.as_deref().filter(|a| !a.is_empty()) {
        title.push(Span::styled(crate::output::safe::terminal(app).into_owned(), t.strong));
        title.push(Span::styled(" · ", t.dim));
    }
    if s.monitor {
        title.push(Span::styled(crate::output::table::OWN_LABEL, t.input));
        title.push(Span::styled(" · ", t.dim));
    }
    match &s.pooler {
        // Behind a pooler the session's own TLS is the pooler's: the client's leg leads.
        Some(leg) => {
            match &leg.client {
                Some(c) => title.push(Span::styled(format!("client {}", c.class.label()), t.class(c.class))),
                None => title.push(Span::styled(leg.join.label(), t.dim)),
            }
            title.push(Span::styled(" · pooler leg ", t.dim));
            title.push(Span::styled(s.class.label(), t.class(s.class)));
        }
        None => title.push(Span::styled(s.class.label(), t.class(s.class))),
    }
    title.push(Span::raw(" "));
    let block = Block::bordered()
        .border_style(t.border)
        .padding(Padding::horizontal(1))
        .title(Line::from(title))
        .title(Line::from(Span::styled(" Esc back ", t.dim)).right_aligned());
    let parts = parts(area, cx, detail);
    let inner = parts.inner;
    if let Some(banner) = parts.banner {
        frame.render_widget(Paragraph::new(banner), Rect::new(inner.x, inner.y, inner.width, 1));
    }
    let style = match s.client_class() {
        ConnClass::Tls12 | ConnClass::TlsOlder => t.warning,
        ConnClass::PlainTcp => t.critical,
        ConnClass::Unknown => t.dim,
        ConnClass::Tls13 | ConnClass::Gss | ConnClass::Local => t.ok,
    };
    let whatif_box = Block::bordered()
        .border_style(style)
        .title(Span::styled(
            if s.pooler.is_some() {
                " If the minimum is raised or TLS is required "
            } else {
                " If ssl_min_protocol_version = TLSv1.3 "
            },
            style,
        ))
        .padding(Padding::horizontal(1));
    let lines: Vec<Line> = parts.sentence.into_iter().map(Line::from).collect();
    frame.render_widget(Paragraph::new(lines).block(whatif_box), parts.whatif);

    // The state's offset is clamped to the content before drawing; stop at the end here too, in case.
    let body = parts.body;
    let lines = body_lines(s, cx, inner.width);
    let visible = usize::from(body.height);
    let max_scroll = lines.len().saturating_sub(visible);
    let scroll = usize::from(detail.scroll.offset()).min(max_scroll);
    let block = if max_scroll > 0 {
        let end = (scroll + visible).min(lines.len());
        let position = format!(" ↑↓ scroll · lines {}–{} of {} ", scroll + 1, end, lines.len());
        block.title_bottom(Line::from(Span::styled(position, t.dim)).right_aligned())
    } else {
        block
    };
    frame.render_widget(block, area);
    let shown: Vec<Line> = lines.into_iter().skip(scroll).take(visible).collect();
    frame.render_widget(Paragraph::new(shown), body);
}

fn outer_block(cx: &Ctx) -> Block<'static> {
    Block::bordered()
        .padding(Padding::horizontal(1))
        .border_style(cx.theme.border)
}

/// Where the banner, the what-if box and the scrolling fields go.
struct Parts {
    inner: Rect,
    banner: Option<Span<'static>>,
    sentence: Vec<String>,
    whatif: Rect,
    body: Rect,
}

fn parts(area: Rect, cx: &Ctx, detail: &crate::tui::state::Detail) -> Parts {
    let t = cx.theme;
    let s = &detail.session;
    let inner = outer_block(cx).inner(area);
    let cols = usize::from(inner.width);
    let mut top = inner.y;
    let bottom = inner.bottom();
    let banner = detail.ended_at.map(|ended| {
        let text = fit(
            &format!(
                " session ended (gone since {}) — showing its last values",
                cx.clock(ended)
            ),
            cols,
        );
        let pad = " ".repeat(cols.saturating_sub(width(&text)));
        Span::styled(format!("{text}{pad}"), t.ended)
    });
    if banner.is_some() {
        top += 1;
    }
    // The what-if box: as tall as its sentence, but never more than half of what is left.
    let monitor_user = cx
        .snapshot()
        .map_or("the monitor role", |snap| snap.monitor.user.as_str());
    let mut sentence = match &s.pooler {
        Some(leg) => whatif::pooled_sentence(s, leg),
        None => whatif::min_tls13_sentence(s, monitor_user),
    };
    if s.monitor {
        sentence
            .push_str(" This is pgtls's own connection: listed, but not counted in the totals, alerts or Holdouts.");
    }
    // The sentence quotes outside text (the monitor's role, a pooler's address, a client's endpoint).
    let sentence = wrap(&crate::output::safe::terminal(&sentence), cols.saturating_sub(4));
    let left = bottom.saturating_sub(top);
    let box_h = u16::try_from(sentence.len() + 2)
        .unwrap_or(u16::MAX)
        .min((left / 2).max(3))
        .min(left);
    let whatif = Rect::new(inner.x, top, inner.width, box_h);
    top += box_h;
    Parts {
        inner,
        banner,
        sentence,
        whatif,
        body: Rect::new(inner.x, top, inner.width, bottom.saturating_sub(top)),
    }
}

/// The largest useful scroll offset of the fields in `area`: the query's last line at the bottom.
pub fn max_scroll(area: Rect, cx: &Ctx) -> u16 {
    let Some(detail) = &cx.state.detail else {
        return 0;
    };
    let parts = parts(area, cx, detail);
    let lines = body_lines(&detail.session, cx, parts.inner.width).len();
    u16::try_from(lines.saturating_sub(usize::from(parts.body.height))).unwrap_or(u16::MAX)
}

/// A heading and its `label value` rows.
#[derive(Clone)]
struct Section {
    heading: &'static str,
    rows: Vec<(&'static str, Vec<Span<'static>>)>,
}

fn body_lines(s: &Session, cx: &Ctx, inner_width: u16) -> Vec<Line<'static>> {
    let cols = usize::from(inner_width);
    let sections = sections(s, cx);
    let mut lines = Vec::new();
    if inner_width >= TWO_COLUMNS {
        let col = (cols - 3) / 2;
        let render_all = |secs: &[Section]| -> Vec<Line<'static>> {
            let mut out = Vec::new();
            for (i, sec) in secs.iter().enumerate() {
                if i > 0 {
                    out.push(Line::default());
                }
                out.extend(section_lines(sec, cx, col));
            }
            out
        };
        // Who and how on the left, the TLS facts and times on the right: about the same height. A pooled session's
        // pooler section comes first, on the left.
        let shift = usize::from(s.pooler.is_some());
        let pick = |idx: &[usize]| -> Vec<Section> { idx.iter().filter_map(|i| sections.get(*i).cloned()).collect() };
        let left: Vec<usize> = (0..shift).chain([shift, shift + 2]).collect();
        let left = render_all(&pick(&left));
        let right = render_all(&pick(&[shift + 1, shift + 3, shift + 4]));
        for i in 0..left.len().max(right.len()) {
            let mut spans = left.get(i).map(|l| l.spans.clone()).unwrap_or_default();
            let used: usize = spans.iter().map(Span::width).sum();
            spans.push(gap(col + 3 - used.min(col)));
            spans.extend(right.get(i).map(|l| l.spans.clone()).unwrap_or_default());
            lines.push(Line::from(spans));
        }
    } else {
        for (i, sec) in sections.iter().enumerate() {
            if i > 0 {
                lines.push(Line::default());
            }
            lines.extend(section_lines(sec, cx, cols));
        }
    }
    if !s.undecoded.is_empty() {
        // The row was kept though the server sent these in a form pgtls cannot read: say so, not just "—".
        lines.push(Line::default());
        lines.push(Line::from(Span::styled(
            format!("Could not decode: {}", s.undecoded.join(", ")),
            cx.theme.warning,
        )));
    }
    lines.push(Line::default());
    lines.push(Line::from(Span::styled("Query", cx.theme.title)));
    match s.query.as_deref() {
        Some(q) if !q.trim().is_empty() => {
            // Keep the query's own line breaks but no control characters: clients write this text.
            // A tab is layout in a query, not content: spaces keep it readable where an escaped \t would not.
            let clean: Vec<String> = q
                .lines()
                .map(|l| crate::output::safe::terminal(&l.replace('\t', "    ")).into_owned())
                .collect();
            let wrapped = wrap(&clean.join("\n"), cols.saturating_sub(2));
            lines.extend(wrapped.into_iter().map(|l| Line::from(format!("  {l}"))));
        }
        _ => lines.push(Line::from(Span::styled("  —", cx.theme.dim))),
    }
    lines
}

fn section_lines(sec: &Section, cx: &Ctx, cols: usize) -> Vec<Line<'static>> {
    let t = cx.theme;
    let room = cols.saturating_sub(LABEL_COLS + 3);
    let mut out = vec![Line::from(Span::styled(sec.heading, t.title))];
    for (label, value) in &sec.rows {
        let value = super::text::clip(value.clone(), room);
        let mut line = field(label, LABEL_COLS, t.dim, value);
        line.spans.insert(0, Span::raw("  "));
        out.push(line);
    }
    out
}

fn sections(s: &Session, cx: &Ctx) -> Vec<Section> {
    let t = cx.theme;
    let none = || vec![Span::styled("—", t.dim)];
    let text = |v: &Option<String>| match v.as_deref() {
        Some(v) if !v.is_empty() => vec![Span::styled(crate::output::safe::terminal(v).into_owned(), t.strong)],
        _ => none(),
    };
    let num = |v: Option<String>| {
        v.map_or_else(none, |v| {
            vec![Span::styled(crate::output::safe::terminal(&v).into_owned(), t.strong)]
        })
    };
    let yes_no = |v: Option<bool>| num(v.map(|b| if b { "yes" } else { "no" }.to_string()));
    let now = cx.snapshot().map_or(cx.state.now, |snap| snap.taken_at);
    let time = |v: Option<DateTime<Utc>>| match v {
        Some(at) => vec![
            Span::styled(at.format("%Y-%m-%d %H:%M:%S").to_string(), t.strong),
            Span::styled(format!("  {} ago", crate::format::age((now - at).num_seconds())), t.dim),
        ],
        None => none(),
    };
    let (marker, marker_style) = t.marker(s.class);
    let transport = vec![
        Span::styled(s.class.label(), t.class(s.class)),
        Span::styled(
            if marker == " " {
                String::new()
            } else {
                format!("  {marker}")
            },
            marker_style,
        ),
    ];
    let port = match s.client_port {
        Some(-1) => vec![Span::styled("Unix socket", t.strong)],
        other => num(other.map(|p| p.to_string())),
    };
    let tls = s.tls.as_ref();
    let gss = s.gss.as_ref();
    let mut sections = Vec::new();
    if let Some(leg) = &s.pooler {
        let mut rows = vec![
            ("pooler", num(Some(leg.address.clone()))),
            ("join", vec![Span::styled(leg.join.label(), t.strong)]),
        ];
        if let Some(c) = &leg.client {
            let mut transport = vec![Span::styled(c.class.label(), t.class(c.class))];
            if let Some(tls) = &c.tls {
                transport.push(Span::styled(
                    format!("  {}", crate::output::safe::terminal(&tls.cipher)),
                    t.dim,
                ));
            }
            rows.push(("client leg", transport));
            rows.push(("client", num(Some(c.endpoint()))));
            rows.push(("client app", text(&c.application_name)));
            rows.push(("client user", text(&c.user)));
        }
        sections.push(Section {
            heading: "Behind PgBouncer",
            rows,
        });
    }
    let pooled = s.pooler.is_some();
    sections.extend([
        Section {
            heading: if pooled {
                "Server side (the pooler's connection)"
            } else {
                "Client"
            },
            rows: vec![
                ("transport", transport),
                ("address", text(&s.client_addr)),
                ("hostname", text(&s.client_hostname)),
                ("port", port),
            ],
        },
        Section {
            heading: if pooled { "TLS (pooler's leg)" } else { "TLS" },
            rows: vec![
                ("version", num(tls.map(|t| t.version.clone()))),
                ("cipher", num(tls.map(|t| t.cipher.clone()))),
                ("bits", num(tls.and_then(|t| t.bits).map(|b| b.to_string()))),
                ("client DN", text(&tls.and_then(|t| t.client_dn.clone()))),
                ("client serial", text(&tls.and_then(|t| t.client_serial.clone()))),
                ("issuer DN", text(&tls.and_then(|t| t.issuer_dn.clone()))),
            ],
        },
        Section {
            heading: "Session",
            rows: vec![
                ("pid", num(Some(s.pid.to_string()))),
                ("leader pid", num(s.leader_pid.map(|p| p.to_string()))),
                ("backend type", text(&s.backend_type)),
                ("user", text(&s.user)),
                ("database", text(&s.database)),
                ("application", text(&s.application_name)),
                ("state", text(&s.state)),
                ("wait type", text(&s.wait_event_type)),
                ("wait event", text(&s.wait_event)),
                ("query id", num(s.query_id.map(|q| q.to_string()))),
            ],
        },
        Section {
            heading: "Times (UTC)",
            rows: vec![
                ("backend start", time(s.backend_start)),
                ("xact start", time(s.xact_start)),
                ("query start", time(s.query_start)),
                ("state change", time(s.state_change)),
            ],
        },
        Section {
            heading: "GSSAPI",
            rows: vec![
                ("authenticated", yes_no(gss.map(|g| g.authenticated))),
                ("principal", text(&gss.and_then(|g| g.principal.clone()))),
                ("encrypted", yes_no(gss.map(|g| g.encrypted))),
                ("delegated", yes_no(gss.and_then(|g| g.credentials_delegated))),
            ],
        },
    ]);
    sections
}
