//! The "Protocols" box: sessions per transport class with a proportional bar, then the most used ciphers.

use std::borrow::Cow;

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Padding, Paragraph};

use super::text::{cell, clip, fit, spans_width, width};
use super::{Ctx, WAITING};
use crate::model::{ClassCounts, ConnClass};
use crate::output::safe::terminal;
use crate::tui::state::Totals;

pub fn render(frame: &mut Frame, area: Rect, cx: &Ctx) {
    let t = cx.theme;
    let mut title = vec![Span::styled(" Protocols ", t.title)];
    let mut block = Block::bordered().border_style(t.border).padding(Padding::horizontal(1));
    let inner = block.inner(area);
    let (cols, height) = (usize::from(inner.width), usize::from(inner.height));
    let lines = match cx.snapshot() {
        None => vec![Line::from(Span::styled(fit(WAITING, cols), t.dim))],
        Some(snap) if snap.clients().next().is_none() => {
            vec![Line::from(Span::styled(fit("no client sessions", cols), t.dim))]
        }
        Some(snap) => {
            let totals = match &cx.state.totals {
                Some(totals) => Cow::Borrowed(totals),
                None => Cow::Owned(Totals::of(snap)),
            };
            title.push(Span::styled(format!("· {} sessions ", totals.classes.total()), t.dim));
            let plan = Plan::new(&totals, height);
            if !plan.hidden_zero.is_empty() {
                let labels: Vec<&str> = plan.hidden_zero.iter().map(|c| c.short_label()).collect();
                let note = fit(&format!("none: {}", labels.join(", ")), cols.saturating_sub(2));
                block = block.title_bottom(Span::styled(format!(" {note} "), t.dim));
            }
            plan.lines(cx, cols)
        }
    };
    frame.render_widget(block.title(Line::from(title)), area);
    frame.render_widget(Paragraph::new(lines), inner);
}

/// What fits in the box: every class with sessions always; then ciphers; zero-count classes only when there is
/// room for them and at least two cipher lines, otherwise they are named in the bottom border.
struct Plan<'a> {
    counts: ClassCounts,
    classes: Vec<ConnClass>,
    hidden_zero: Vec<ConnClass>,
    ciphers: &'a [(String, usize)],
    /// Lines for the cipher section, heading included; 1 means a single summary line.
    cipher_lines: usize,
}

impl<'a> Plan<'a> {
    fn new(totals: &'a Totals, height: usize) -> Plan<'a> {
        let counts = totals.classes;
        let (nonzero, zero): (Vec<ConnClass>, Vec<ConnClass>) =
            ConnClass::ALL.iter().partition(|c| counts.get(**c) > 0);
        let ciphers = totals.ciphers.as_slice();
        let wanted = if ciphers.is_empty() { 0 } else { 1 + ciphers.len() };
        let (classes, hidden_zero) = if nonzero.len() + zero.len() + wanted.min(3) <= height {
            (ConnClass::ALL.to_vec(), Vec::new())
        } else {
            (nonzero, zero)
        };
        let cipher_lines = wanted.min(height.saturating_sub(classes.len()));
        Plan {
            counts,
            classes,
            hidden_zero,
            ciphers,
            cipher_lines,
        }
    }

    fn lines(&self, cx: &Ctx, cols: usize) -> Vec<Line<'static>> {
        let t = cx.theme;
        let total = self.counts.total();
        let label_cols = self.classes.iter().map(|c| width(c.label())).max().unwrap_or(0);
        let count_cols = digits(self.classes.iter().map(|c| self.counts.get(*c)).max().unwrap_or(0));
        // label, count, share and bar, one space apart; the share goes before the bar gets too short to read.
        let fixed = label_cols + 1 + count_cols + 1;
        let show_share = cols >= fixed + 5 + 6;
        let bar_cols = cols.saturating_sub(fixed + if show_share { 5 } else { 0 });

        let mut lines: Vec<Line<'static>> = self
            .classes
            .iter()
            .map(|class| {
                let n = self.counts.get(*class);
                let style = if n == 0 { t.dim } else { t.class(*class) };
                let mut spans = vec![
                    Span::styled(cell(class.label(), label_cols), if n == 0 { t.dim } else { t.strong }),
                    Span::raw(" "),
                    Span::styled(format!("{n:>count_cols$}"), style),
                ];
                if n > 0 {
                    if show_share {
                        spans.push(Span::styled(format!(" {:>4}", percent(n, total)), t.dim));
                    }
                    spans.push(Span::raw(" "));
                    spans.push(Span::styled(bar(n, total, bar_cols), style));
                }
                Line::from(clip(spans, cols))
            })
            .collect();

        match self.cipher_lines {
            0 => {}
            1 => {
                // Whole cipher names only: a cut name reads as a different cipher. The rest are counted.
                let mut spans = vec![Span::styled("ciphers ", t.dim)];
                for (i, (name, n)) in self.ciphers.iter().enumerate() {
                    let rest = self.ciphers.len() - i - 1;
                    let more = if rest > 0 { width(&format!(" +{rest}")) } else { 0 };
                    let sep = if i > 0 { 2 } else { 0 };
                    let item = format!("{} {n}", terminal(name));
                    if spans_width(&spans) + sep + width(&item) + more > cols {
                        spans.push(Span::styled(format!(" +{}", rest + 1), t.dim));
                        break;
                    }
                    if i > 0 {
                        spans.push(Span::styled(", ", t.dim));
                    }
                    spans.push(Span::styled(terminal(name).into_owned(), t.strong));
                    spans.push(Span::styled(format!(" {n}"), t.dim));
                }
                lines.push(Line::from(clip(spans, cols)));
            }
            n => {
                let shown = n - 1;
                let heading = if shown < self.ciphers.len() {
                    format!("─ ciphers, top {shown} of {} ", self.ciphers.len())
                } else {
                    "─ ciphers ".to_string()
                };
                let rule = "─".repeat(cols.saturating_sub(width(&heading)));
                lines.push(Line::from(Span::styled(fit(&format!("{heading}{rule}"), cols), t.dim)));
                let count_cols = digits(self.ciphers.first().map_or(0, |c| c.1));
                for (name, n) in self.ciphers.iter().take(shown) {
                    let spans = vec![
                        Span::styled(format!(" {n:>count_cols$} "), t.dim),
                        Span::styled(terminal(name).into_owned(), t.strong),
                    ];
                    lines.push(Line::from(clip(spans, cols)));
                }
            }
        }
        lines
    }
}

fn digits(n: usize) -> usize {
    n.to_string().len()
}

/// `42%`; a non-zero share never shows as `0%`.
fn percent(n: usize, total: usize) -> String {
    if total == 0 {
        return String::new();
    }
    let pct = (n * 100 + total / 2) / total;
    if pct == 0 && n > 0 {
        "<1%".to_string()
    } else {
        format!("{pct}%")
    }
}

/// `n/total` of `cols` cells in eighths, so small differences still show; a non-zero count is never invisible.
pub fn bar(n: usize, total: usize, cols: usize) -> String {
    const PARTIAL: [&str; 8] = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"];
    if total == 0 || cols == 0 {
        return String::new();
    }
    let eighths = ((n * cols * 8 + total / 2) / total).max(usize::from(n > 0));
    let mut out = "█".repeat(eighths / 8);
    out.push_str(PARTIAL[eighths % 8]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_proportional_and_never_vanish() {
        assert_eq!(bar(10, 10, 4), "████");
        assert_eq!(bar(5, 10, 4), "██");
        assert_eq!(bar(1, 1000, 4), "▏");
        assert_eq!(bar(0, 10, 4), "");
        assert_eq!(percent(1, 1000), "<1%");
        assert_eq!(percent(5, 12), "42%");
    }
}
