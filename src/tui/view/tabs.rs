//! The screen tabs, drawn on the bottom border of the main block of every screen. A click on a tab opens it:
//! [`at`] maps a column back to the tab drawn there.

use ratatui::text::{Line, Span};

use super::Ctx;
use super::text::width;
use crate::tui::state::Screen;

enum Piece {
    Space,
    Separator,
    Current(Screen),
    Other(Screen),
    Key(Screen),
    TabKey,
}

fn key(screen: Screen) -> &'static str {
    match screen {
        Screen::Sessions => "t",
        Screen::Holdouts => "h",
        Screen::WhatIf => "w",
        Screen::Certificates => "c",
    }
}

fn pieces(current: Screen) -> Vec<(String, Piece)> {
    let mut out = vec![(" ".to_string(), Piece::Space)];
    for (i, screen) in Screen::ALL.iter().enumerate() {
        if i > 0 {
            out.push((" · ".to_string(), Piece::Separator));
        }
        if *screen == current {
            out.push((format!("[{}]", screen.title()), Piece::Current(*screen)));
        } else {
            out.push((screen.title().to_string(), Piece::Other(*screen)));
            out.push((format!(" {}", key(*screen)), Piece::Key(*screen)));
        }
    }
    out.push(("  Tab ".to_string(), Piece::TabKey));
    out
}

/// `Sessions · Holdouts h · What-if w · Certificates c   Tab`: the current screen stands out.
pub fn line(cx: &Ctx) -> Line<'static> {
    let t = cx.theme;
    let spans = pieces(cx.state.screen).into_iter().map(|(text, piece)| {
        let style = match piece {
            Piece::Space => Default::default(),
            Piece::Separator | Piece::Other(_) => t.dim,
            Piece::Current(_) => t.title,
            Piece::Key(_) | Piece::TabKey => t.key,
        };
        Span::styled(text, style)
    });
    Line::from(spans.collect::<Vec<_>>())
}

/// The tab drawn `x` columns after the start of the line, if any.
pub fn at(current: Screen, x: u16) -> Option<Screen> {
    let mut start = 0usize;
    for (text, piece) in pieces(current) {
        let end = start + width(&text);
        if (start..end).contains(&usize::from(x)) {
            return match piece {
                Piece::Current(s) | Piece::Other(s) | Piece::Key(s) => Some(s),
                Piece::Space | Piece::Separator | Piece::TabKey => None,
            };
        }
        start = end;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_map_back_to_tabs() {
        // " [Sessions] · Holdouts h · What-if w · Certificates c  Tab "
        assert_eq!(at(Screen::Sessions, 0), None);
        assert_eq!(at(Screen::Sessions, 1), Some(Screen::Sessions));
        assert_eq!(at(Screen::Sessions, 14), Some(Screen::Holdouts));
        assert_eq!(at(Screen::Sessions, 12), None, "the separator");
        assert_eq!(at(Screen::Sessions, 500), None);
    }
}
