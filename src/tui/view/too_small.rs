//! Below the compact view's size a squeezed dashboard would mislead (cut labels, missing columns), so say so instead.

use ratatui::Frame;
use ratatui::layout::{Alignment, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use super::Ctx;
use super::compact::{COMPACT_HEIGHT, COMPACT_WIDTH};

pub fn render(frame: &mut Frame, area: Rect, cx: &Ctx) {
    let t = cx.theme;
    let size = Span::styled(format!("terminal too small: {}x{}", area.width, area.height), t.warning);
    let need = Span::styled(
        format!("pgtls needs at least {COMPACT_WIDTH}x{COMPACT_HEIGHT}"),
        t.strong,
    );
    let what = Span::styled("enlarge the window or press q", t.dim);
    let sentence = size.width() + 2 + need.width() + 3 + what.width();
    let lines = if usize::from(area.width) >= sentence {
        vec![Line::from(vec![size, Span::raw(", "), need, Span::raw(" — "), what])]
    } else {
        vec![Line::from(size), Line::from(need), Line::from(what)]
    };
    // Centre vertically; on very small screens start at the top and let the text wrap.
    let height = u16::try_from(lines.len()).unwrap_or(u16::MAX).min(area.height);
    let y = area.y + (area.height - height) / 2;
    let paragraph = Paragraph::new(lines)
        .alignment(Alignment::Center)
        .wrap(Wrap { trim: true });
    frame.render_widget(paragraph, Rect::new(area.x, y, area.width, area.height - (y - area.y)));
}
