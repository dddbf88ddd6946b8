//! The one row left when the top panes are hidden (`z`): sessions per protocol on the left, the most severe alert
//! (or the alerts by severity, when its title does not fit) on the right, so hiding the panes never hides that
//! something is wrong.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Span;
use ratatui::widgets::Paragraph;

use super::Ctx;
use super::text::{spans_width, split_line};
use crate::model::ConnClass;

pub fn render(frame: &mut Frame, area: Rect, cx: &Ctx) {
    let t = cx.theme;
    let cols = usize::from(area.width);
    let mut left = vec![Span::raw(" ")];
    if let Some(totals) = &cx.state.totals {
        // Worst exposure first, as in the table, and only what is there.
        let mut classes: Vec<ConnClass> = ConnClass::ALL
            .into_iter()
            .filter(|c| totals.classes.get(*c) > 0)
            .collect();
        classes.sort_by_key(|c| c.exposure_rank());
        for (i, class) in classes.into_iter().enumerate() {
            if i > 0 {
                left.push(Span::styled(" · ", t.dim));
            }
            left.push(Span::styled(class.short_label(), t.class(class)));
            left.push(Span::styled(format!(" {}", totals.classes.get(class)), t.strong));
        }
    }
    // The most severe alert's title when it fits beside the counts, else how many alerts of each severity.
    let mut right = super::alerts::headline(cx, cols / 2);
    if spans_width(&left) + spans_width(&right) + 3 > cols {
        right = super::alerts::counts(cx);
    }
    right.push(Span::raw(" "));
    frame.render_widget(Paragraph::new(split_line(left, right, cols)), area);
}
