//! The screen tabs, drawn on the bottom border of the main block of every screen.

use ratatui::text::{Line, Span};

use super::Ctx;
use crate::tui::state::Screen;

/// `Sessions · Holdouts h · What-if w · Certificates c   Tab`: the current screen stands out.
pub fn line(cx: &Ctx) -> Line<'static> {
    let t = cx.theme;
    let mut spans = vec![Span::raw(" ")];
    for (i, screen) in Screen::ALL.iter().enumerate() {
        if i > 0 {
            spans.push(Span::styled(" · ", t.dim));
        }
        let key = match screen {
            Screen::Sessions => "t",
            Screen::Holdouts => "h",
            Screen::WhatIf => "w",
            Screen::Certificates => "c",
        };
        if *screen == cx.state.screen {
            spans.push(Span::styled(format!("[{}]", screen.title()), t.title));
        } else {
            spans.push(Span::styled(screen.title().to_string(), t.dim));
            spans.push(Span::styled(format!(" {key}"), t.key));
        }
    }
    spans.push(Span::styled("  Tab ", t.key));
    Line::from(spans)
}
