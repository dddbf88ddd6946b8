//! One line: the filter being typed, the keys that work here (from the key table, so they cannot drift from
//! dispatch or help) and, on the right, the pause state.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Span;
use ratatui::widgets::Paragraph;

use super::Ctx;
use super::text::{fit, spans_width, split_line};
use crate::tui::keymap;

/// Kept when hints are dropped for width: without these a new user is stuck.
const ESSENTIAL: [&str; 2] = ["help", "quit"];

pub fn render(frame: &mut Frame, area: Rect, cx: &Ctx) {
    let t = cx.theme;
    let state = cx.state;
    let cols = usize::from(area.width);

    let mut right: Vec<Span<'static>> = Vec::new();
    if state.paused {
        right.push(Span::styled(" PAUSED ", t.paused));
    }

    let mut left: Vec<Span<'static>> = vec![Span::raw(" ")];
    if state.filter.editing {
        let (shown, _) = state.filter_counts();
        let typed = fit(&crate::output::safe::terminal(&state.filter.text), cols / 2);
        left.push(Span::styled("/", t.key));
        left.push(Span::styled(typed, t.input));
        left.push(Span::styled("▏", t.input));
        let noun = if shown == 1 { "match" } else { "matches" };
        left.push(Span::styled(format!(" ({shown} {noun})   "), t.dim));
    }

    if let Some(status) = &state.status {
        // Before the hints, which give way: the answer to what the user just did matters most.
        let style = if status.failed { t.critical } else { t.ok };
        let text = fit(&crate::output::safe::terminal(&status.text), cols.saturating_sub(12));
        left.push(Span::styled(text, style));
        left.push(Span::raw("   "));
    }

    let (essential, optional): (Vec<_>, Vec<_>) = keymap::hints_when(state.scope(), state.paused)
        .into_iter()
        .partition(|(_, hint)| ESSENTIAL.contains(hint));
    // Help before quit reads naturally at the end of the line.
    let essential: Vec<_> = essential.into_iter().rev().collect();
    let hint = |(keys, text): (&'static str, &'static str)| {
        vec![Span::styled(keys, t.key), Span::styled(format!(" {text}  "), t.dim)]
    };
    let room = cols.saturating_sub(spans_width(&left) + spans_width(&right) + 1);
    let essential_spans: Vec<Span<'static>> = essential.into_iter().flat_map(hint).collect();
    let mut budget = room.saturating_sub(spans_width(&essential_spans));
    for h in optional {
        let spans = hint(h);
        let w = spans_width(&spans);
        // A long hint that does not fit should not hide shorter ones after it.
        if w > budget {
            continue;
        }
        budget -= w;
        left.extend(spans);
    }
    left.extend(essential_spans);
    frame.render_widget(Paragraph::new(split_line(left, right, cols)), area);
}
