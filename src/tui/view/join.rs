//! `J` in the demo: how to reach its server with psql, over the dashboard, so a second terminal can join while the
//! server runs (the lines printed before the dashboard started are under the alternate screen).

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Padding, Paragraph, Wrap};

use super::Ctx;
use crate::output::safe::terminal;

pub fn render(frame: &mut Frame, area: Rect, cx: &Ctx) {
    let t = cx.theme;
    let lines: Vec<Line> = cx
        .state
        .join
        .iter()
        .map(|l| Line::from(terminal(l).into_owned()))
        .collect();
    let width = area.width.saturating_sub(4);
    // Wrapped lines need more rows than there are lines: a rough count by width, capped by the screen.
    let inner_width = usize::from(width.saturating_sub(4)).max(1);
    let rows: usize = cx
        .state
        .join
        .iter()
        .map(|l| l.chars().count().div_ceil(inner_width).max(1))
        .sum();
    let height = u16::try_from(rows + 2).unwrap_or(u16::MAX).min(area.height);
    let popup = Rect::new(
        area.x + (area.width - width) / 2,
        area.y + (area.height - height) / 2,
        width,
        height,
    );
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: false }).block(
            Block::bordered()
                .border_style(t.title)
                .title(Span::styled(" Connect to the demo server ", t.title))
                .title(Line::from(Span::styled(" Esc or J closes ", t.dim)).right_aligned())
                .padding(Padding::horizontal(1)),
        ),
        popup,
    );
}
