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
            ServerColumn::Target => Constraint::Min(14),
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
            let row = Row::new(cells(r, t));
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

    let hints: Vec<Span> = keymap::servers_hints()
        .into_iter()
        .flat_map(|(k, what)| [Span::styled(format!(" {k}"), t.key), Span::raw(format!(" {what} "))])
        .collect();
    frame.render_widget(Paragraph::new(Line::from(hints)), footer);
}

fn cells(r: &ServerRow, t: &Theme) -> Vec<Cell<'static>> {
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
        Cell::from(match (&r.chain_root, &r.error) {
            (Some(root), _) => fit(&terminal(root), 60),
            (None, Some(e)) if !r.up => fit(&terminal(e), 60),
            _ => "–".to_string(),
        }),
    ]
}
