//! The confirmation popup of `K` and `C`: names the session (pid, user, application, address) so the user
//! knows exactly whom the signal reaches.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Padding, Paragraph};

use super::Ctx;
use super::text::{field, fit};
use crate::collect::act::SignalKind;
use crate::output::safe::terminal;
use crate::tui::components::act::{Confirm, question};

const MAX_WIDTH: u16 = 72;
const LABEL: usize = 13;

pub fn render(frame: &mut Frame, area: Rect, cx: &Ctx, confirm: &Confirm) {
    let t = cx.theme;
    let width = area.width.saturating_sub(2).min(MAX_WIDTH);
    // Border and padding take four columns.
    let cols = usize::from(width.saturating_sub(4));
    let value_cols = cols.saturating_sub(LABEL);
    let target = &confirm.target;
    let value = |text: &str| vec![Span::styled(fit(&terminal(text), value_cols), t.strong)];
    let effect = match confirm.request.kind {
        SignalKind::Terminate => "the session ends; the client must reconnect",
        SignalKind::Cancel => "the running query stops; the session stays",
    };
    let lines = vec![
        Line::from(Span::styled(fit(&question(confirm), cols), t.title)),
        Line::default(),
        field("pid", LABEL, t.dim, value(&target.pid.to_string())),
        field("user", LABEL, t.dim, value(&target.user)),
        field("application", LABEL, t.dim, value(&target.application)),
        field("address", LABEL, t.dim, value(&target.address)),
        Line::default(),
        Line::from(Span::styled(fit(effect, cols), t.dim)),
        Line::from(vec![
            Span::styled("y", t.key),
            Span::styled(" yes   ", t.dim),
            Span::styled("any other key", t.key),
            Span::styled(" no", t.dim),
        ]),
    ];
    let height = (u16::try_from(lines.len()).unwrap_or(u16::MAX) + 2).min(area.height);
    let popup = Rect {
        x: area.x + (area.width.saturating_sub(width)) / 2,
        y: area.y + (area.height.saturating_sub(height)) / 2,
        width,
        height,
    };
    let block = Block::bordered()
        .border_style(t.critical)
        .title(Span::styled(
            format!(" {} ", confirm.request.kind.verb().to_uppercase()),
            t.critical,
        ))
        .padding(Padding::horizontal(1));
    frame.render_widget(Clear, popup);
    frame.render_widget(Paragraph::new(lines).block(block), popup);
}
