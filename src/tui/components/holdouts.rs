//! The Holdouts table: the ledger's clients, filtered and sorted worst exposure first, with its own selection.

use crate::collect::poller::History;
use crate::tui::columns::exposure_rank;

#[derive(Debug, Clone, Default)]
pub struct Holdouts {
    /// Indices into `history.clients`, filtered and sorted.
    pub rows: Vec<usize>,
    pub selected: usize,
    pub offset: usize,
    pub sort_desc: bool,
}

impl Holdouts {
    /// The ledger's clients: worst exposure first, then most recently seen; the filter applies here too.
    pub fn rebuild(&mut self, history: Option<&History>, filter: &str, page: usize) {
        let Some(history) = history else {
            self.rows.clear();
            return;
        };
        let needle = filter.to_lowercase();
        let mut rows: Vec<usize> = history
            .clients
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                needle.is_empty()
                    || [&c.key.user, &c.key.database, &c.key.application, &c.key.address]
                        .iter()
                        .any(|f| f.to_lowercase().contains(&needle))
                    || c.tls_versions.keys().any(|v| v.to_lowercase().contains(&needle))
                    || c.worst_class()
                        .is_some_and(|w| w.label().to_lowercase().contains(&needle))
            })
            .map(|(i, _)| i)
            .collect();
        let rank = |i: &usize| {
            let c = &history.clients[*i];
            (
                c.worst_class().map_or(u8::MAX, exposure_rank),
                std::cmp::Reverse(c.last_seen),
            )
        };
        rows.sort_by_key(rank);
        if self.sort_desc {
            rows.reverse();
        }
        self.rows = rows;
        self.selected = self.selected.min(self.rows.len().saturating_sub(1));
        self.clamp_offset(page);
    }

    pub fn move_by(&mut self, delta: isize, page: usize) {
        let last = self.rows.len().saturating_sub(1) as isize;
        self.selected = (self.selected as isize).saturating_add(delta).clamp(0, last) as usize;
        self.clamp_offset(page);
    }

    /// A click on the n-th visible row.
    pub fn click_row(&mut self, n: usize, page: usize) {
        if self.offset + n < self.rows.len() {
            self.selected = self.offset + n;
            self.clamp_offset(page);
        }
    }

    fn clamp_offset(&mut self, page: usize) {
        let page = page.max(1);
        if self.selected < self.offset {
            self.offset = self.selected;
        } else if self.selected >= self.offset + page {
            self.offset = self.selected + 1 - page;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    #[test]
    fn moves_and_clicks_stay_on_rows() {
        let history = fixtures::history();
        let mut h = Holdouts::default();
        h.rebuild(Some(&history), "", 2);
        let n = h.rows.len();
        assert!(n >= 3, "fixture has several clients");
        h.move_by(isize::MAX / 2, 2);
        assert_eq!(h.selected, n - 1);
        assert_eq!(h.offset, n - 2, "the selection stays on the page");
        h.click_row(1, 2);
        assert_eq!(h.selected, n - 1);
        h.click_row(5, 2);
        assert_eq!(h.selected, n - 1, "a click below the rows does nothing");
        h.move_by(isize::MIN / 2, 2);
        assert_eq!((h.selected, h.offset), (0, 0));
    }
}
