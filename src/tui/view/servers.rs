//! The Servers screen: one row per target, worst things in colour (down, plain text, TLS 1.2, a certificate near
//! its end), the selection marked, the footer from the key table.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table};

use super::Theme;
use super::text::fit;
use crate::analysis::fleet::ServerRow;
use crate::output::safe::terminal;
use crate::tui::components::servers::{ServerColumn, Servers};
use crate::tui::keymap;

/// Rows of the table that fit in `area`, for paging.
pub fn page(area: Rect) -> usize {
    usize::from(area.height.saturating_sub(5))
}

pub fn draw(frame: &mut Frame, servers: &Servers, theme: &Theme) {
    let t = theme;
    let area = frame.area();
    if area.width < super::MIN_WIDTH || area.height < 8 {
        frame.render_widget(
            Paragraph::new(format!(
                "Terminal too small: {}x{}, pgtls needs at least {}x8",
                area.width,
                area.height,
                super::MIN_WIDTH
            )),
            area,
        );
        return;
    }
    let [header, body, footer] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(3), Constraint::Length(1)]).areas(area);
    let down = servers.rows.iter().filter(|r| !r.up).count();
    let plain: usize = servers.rows.iter().map(|r| r.sessions.plain_tcp).sum();
    let mut head = vec![
        Span::styled(" pgtls ", t.brand),
        Span::styled(format!(" {} servers", servers.rows.len()), t.strong),
    ];
    if down > 0 {
        head.push(Span::styled(format!("  {down} down"), t.critical));
    }
    if plain > 0 {
        head.push(Span::styled(format!("  {plain} plain-text sessions"), t.critical));
    }
    frame.render_widget(Paragraph::new(Line::from(head)), header);

    let columns = ServerColumn::ALL;
    let widths: Vec<Constraint> = columns
        .iter()
        .map(|c| match c {
            ServerColumn::Change => Constraint::Min(14),
            ServerColumn::Status => Constraint::Length(8),
            ServerColumn::Version => Constraint::Length(8),
            ServerColumn::Floor => Constraint::Length(9),
            ServerColumn::Root => Constraint::Min(12),
            ServerColumn::CertDays => Constraint::Length(11),
            ServerColumn::Holdouts => Constraint::Length(10),
            _ => Constraint::Length(8),
        })
        .collect();
    let header_row = Row::new(columns.iter().map(|c| {
        let title = if *c == servers.sort {
            format!("{} {}", c.title(), if servers.descending { "▼" } else { "▲" })
        } else {
            c.title().to_string()
        };
        Cell::from(title)
    }))
    .style(t.table_header);
    let usual_root = usual_root(&servers.rows);
    let inner_rows = usize::from(body.height.saturating_sub(3));
    let selected = servers.selected_index();
    let start = selected.map_or(0, |i| i.saturating_sub(inner_rows.saturating_sub(1)));
    let rows = servers
        .rows
        .iter()
        .enumerate()
        .skip(start)
        .take(inner_rows)
        .map(|(i, r)| {
            let row = Row::new(cells(r, t, usual_root.as_deref()));
            if Some(i) == selected {
                row.style(t.selected)
            } else {
                row
            }
        });
    let table = Table::new(rows, widths).header(header_row).block(
        Block::bordered()
            .border_style(t.border)
            .title(Span::styled(" Servers ", t.title)),
    );
    frame.render_widget(table, body);

    if servers.help {
        draw_help(frame, body, t);
    }
    let hints: Vec<Span> = match servers.note {
        Some(note) => vec![Span::styled(format!(" {note}"), t.warning)],
        None => keymap::servers_hints()
            .into_iter()
            .flat_map(|(k, what)| [Span::styled(format!(" {k}"), t.key), Span::raw(format!(" {what} "))])
            .collect(),
    };
    frame.render_widget(Paragraph::new(Line::from(hints)), footer);
}

/// The Servers screen's `?` help over its table: the keys that work here, from the key table, and where the
/// others go.
fn draw_help(frame: &mut Frame, area: Rect, t: &Theme) {
    let rows = keymap::servers_help();
    let keys_width = rows.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0);
    let mut lines: Vec<Line> = rows
        .into_iter()
        .map(|(keys, help)| {
            Line::from(vec![
                Span::styled(format!("{keys:keys_width$}  "), t.key),
                Span::raw(help),
            ])
        })
        .collect();
    lines.push(Line::default());
    lines.push(Line::from(Span::styled(
        "Sessions, Holdouts, What-if, Certificates, alerts, pause and the interval are one server's: Enter opens the \
         selected server's dashboard, with its own help; Esc there comes back here.",
        t.dim,
    )));
    let popup = area.inner(ratatui::layout::Margin::new(2, 1));
    frame.render_widget(ratatui::widgets::Clear, popup);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(ratatui::widgets::Wrap { trim: false })
            .block(
                Block::bordered()
                    .border_style(t.title)
                    .title(Span::styled(" Help: Servers ", t.title))
                    .title(Line::from(Span::styled(" Esc or ? closes ", t.dim)).right_aligned()),
            ),
        popup,
    );
}

/// The root most servers' chains name; a server on another one (a replica on a newer root than its primary, in the
/// middle of a rotation) is marked. `None` when they all agree or none is known.
fn usual_root(rows: &[ServerRow]) -> Option<String> {
    let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for root in rows.iter().filter_map(|r| r.chain_root.as_deref()) {
        *counts.entry(root).or_default() += 1;
    }
    if counts.len() < 2 {
        return None;
    }
    counts
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .map(|(root, _)| root.to_string())
}

fn cells(r: &ServerRow, t: &Theme, usual_root: Option<&str>) -> Vec<Cell<'static>> {
    let count = |n: usize, bad: ratatui::style::Style| {
        if n == 0 {
            Cell::from(Span::styled("0", t.dim))
        } else {
            Cell::from(Span::styled(n.to_string(), bad))
        }
    };
    let (status, status_style) = if r.up { ("up", t.ok) } else { ("DOWN", t.critical) };
    let days = match r.certificate_days_left {
        Some(d) if d < 0 => Cell::from(Span::styled("expired", t.critical)),
        Some(d) if d < 30 => Cell::from(Span::styled(d.to_string(), t.warning)),
        Some(d) => Cell::from(d.to_string()),
        None => Cell::from(Span::styled("–", t.dim)),
    };
    let version = r
        .version
        .as_deref()
        .map(|v| v.split_whitespace().next().unwrap_or(v).to_string())
        .unwrap_or_else(|| "–".into());
    let floor = r.ssl_min_protocol_version.clone().unwrap_or_else(|| "?".into());
    vec![
        Cell::from(fit(&terminal(&r.name), 40)),
        Cell::from(Span::styled(status, status_style)),
        Cell::from(terminal(&version).into_owned()),
        Cell::from(terminal(&floor).into_owned()),
        Cell::from(r.sessions.tls13.to_string()),
        count(r.sessions.tls12, t.tls_older),
        count(r.sessions.tls_older, t.critical),
        count(r.sessions.plain_tcp, t.plain_tcp),
        match r.holdouts {
            Some(n) => count(n, t.warning),
            None => Cell::from(Span::styled("…", t.dim)),
        },
        days,
        match (&r.chain_root, &r.error) {
            (Some(root), _) if usual_root.is_some_and(|u| u != root) => {
                Cell::from(Span::styled(format!("≠ {}", fit(&terminal(root), 58)), t.warning))
            }
            (Some(root), _) => Cell::from(fit(&terminal(root), 60)),
            (None, Some(e)) if !r.up => Cell::from(Span::styled(fit(&terminal(e), 60), t.critical)),
            _ => Cell::from("–"),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::fleet::row;

    fn with_root(name: &str, root: Option<&str>) -> ServerRow {
        let mut r = row(name, true, None, None, None, None);
        r.chain_root = root.map(str::to_string);
        r
    }

    #[test]
    fn a_server_on_another_root_stands_out() {
        let rows = vec![
            with_root("primary", Some("CN=Old Root")),
            with_root("replica-a", Some("CN=Old Root")),
            with_root("replica-b", Some("CN=New Root")),
            with_root("down", None),
        ];
        assert_eq!(usual_root(&rows).as_deref(), Some("CN=Old Root"));
        assert_eq!(usual_root(&rows[..2]), None, "all agree: nothing to mark");
        let backend = ratatui::backend::TestBackend::new(140, 12);
        let mut terminal = ratatui::Terminal::new(backend).unwrap();
        let mut servers = Servers::default();
        servers.set_rows(rows);
        terminal.draw(|f| draw(f, &servers, &Theme::color())).unwrap();
        let screen: String = terminal
            .backend()
            .buffer()
            .content()
            .iter()
            .map(|c| c.symbol())
            .collect();
        assert!(screen.contains("≠ CN=New Root"), "{screen}");
        assert!(!screen.contains("≠ CN=Old Root"));
    }
}
