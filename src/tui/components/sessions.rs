//! The sessions table: sort, quick view, the rows the filter lets through, and a selection that follows its pid
//! across refreshes and re-sorts. The snapshot itself belongs to the app state and is passed in.

use chrono::{DateTime, Utc};

use crate::model::{ConnClass, Session, Snapshot};
use crate::tui::columns::Column;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuickView {
    All,
    NoTls,
    BelowTls13,
}

impl QuickView {
    pub fn label(self) -> &'static str {
        match self {
            QuickView::All => "all",
            QuickView::NoTls => "no TLS",
            QuickView::BelowTls13 => "TLS < 1.3",
        }
    }

    fn admits(self, class: ConnClass) -> bool {
        match self {
            QuickView::All => true,
            QuickView::NoTls => class == ConnClass::PlainTcp,
            QuickView::BelowTls13 => class.below_tls13(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    pub column: Column,
    pub descending: bool,
}

#[derive(Debug, Clone)]
pub struct SessionsTable {
    pub sort: Sort,
    pub quick_view: QuickView,
    /// Indices into `snapshot.sessions`, filtered and sorted: what the table shows.
    pub rows: Vec<usize>,
    /// Selection follows the pid across refreshes and re-sorts.
    pub selected_pid: Option<i32>,
    /// Where the selection was, for when its session disappears.
    selected_pos: usize,
    /// First visible row.
    pub offset: usize,
    /// Visible table rows, set by the app from the layout before drawing.
    pub page: usize,
    /// Whether the TIME+ and QUERY columns are shown (`v`).
    pub show_query: bool,
    /// The columns drawn at the current width, set by the app before drawing: `s` cycles through these only.
    shown: Vec<Column>,
    /// Column widths held across refreshes so columns do not jitter, settled by the app before drawing.
    pub widths: crate::tui::columns::Widths,
}

impl Default for SessionsTable {
    fn default() -> Self {
        SessionsTable {
            sort: Sort {
                column: Column::Tls,
                descending: false,
            },
            quick_view: QuickView::All,
            rows: Vec::new(),
            selected_pid: None,
            selected_pos: 0,
            offset: 0,
            page: 20,
            show_query: true,
            shown: Vec::new(),
            widths: crate::tui::columns::Widths::default(),
        }
    }
}

impl SessionsTable {
    /// Filter, quick view and sort applied to `snap`; keeps the selection on its pid.
    pub fn rebuild(&mut self, snap: Option<&Snapshot>, filter: &str) {
        let Some(snap) = snap else {
            self.rows.clear();
            return;
        };
        let needle = filter.to_lowercase();
        let mut rows: Vec<usize> = snap
            .sessions
            .iter()
            .enumerate()
            // Behind a pooler the quick views follow the client's own leg, not the pooler's.
            .filter(|(_, s)| self.quick_view.admits(s.client_class()))
            .filter(|(_, s)| needle.is_empty() || matches_filter(s, &needle, snap.taken_at))
            .map(|(i, _)| i)
            .collect();
        let sort = self.sort;
        // Stable: equal keys keep pid order, so rows do not jump between refreshes.
        match (sort.column, sort.descending) {
            // The default order, on every refresh: rank each row once instead of on every comparison.
            // Worst exposure first, by the client's own leg: a plain-text client behind a pooler leads.
            (Column::Tls, false) => rows.sort_by_cached_key(|i| snap.sessions[*i].client_class().exposure_rank()),
            (Column::Tls, true) => {
                rows.sort_by_cached_key(|i| std::cmp::Reverse(snap.sessions[*i].client_class().exposure_rank()))
            }
            _ => rows.sort_by(|a, b| {
                let ord = sort.column.compare(&snap.sessions[*a], &snap.sessions[*b]);
                if sort.descending { ord.reverse() } else { ord }
            }),
        }
        self.rows = rows;
        match self.selected_pid.and_then(|pid| self.index_of(snap, pid)) {
            Some(i) => self.select_index(snap, i),
            // The selected session went away or was filtered out: stay at the same height.
            None => self.select_index(snap, self.selected_pos),
        }
    }

    fn index_of(&self, snap: &Snapshot, pid: i32) -> Option<usize> {
        // Pids are unique in a snapshot, and the selection is usually where it was: look there before searching.
        if let Some(i) = self.rows.get(self.selected_pos)
            && snap.sessions.get(*i).is_some_and(|s| s.pid == pid)
        {
            return Some(self.selected_pos);
        }
        self.rows
            .iter()
            .position(|i| snap.sessions.get(*i).is_some_and(|s| s.pid == pid))
    }

    /// Position of the selection among the visible rows.
    pub fn selected_index(&self, snap: Option<&Snapshot>) -> Option<usize> {
        let snap = snap?;
        self.selected_pid.and_then(|pid| self.index_of(snap, pid))
    }

    pub fn selected_session<'a>(&self, snap: Option<&'a Snapshot>) -> Option<&'a Session> {
        let idx = self.selected_index(snap)?;
        snap?.sessions.get(*self.rows.get(idx)?)
    }

    pub fn select_index(&mut self, snap: &Snapshot, index: usize) {
        if self.rows.is_empty() {
            self.selected_pid = None;
            self.offset = 0;
            return;
        }
        let index = index.min(self.rows.len() - 1);
        self.selected_pos = index;
        self.selected_pid = snap.sessions.get(self.rows[index]).map(|s| s.pid);
        let page = self.page.max(1);
        if index < self.offset {
            self.offset = index;
        } else if index >= self.offset + page {
            self.offset = index + 1 - page;
        }
        self.offset = self.offset.min(self.rows.len().saturating_sub(page));
    }

    pub fn move_by(&mut self, snap: Option<&Snapshot>, delta: isize) {
        let Some(snap) = snap else {
            return;
        };
        let current = self.selected_index(Some(snap)).unwrap_or(0) as isize;
        let target = current.saturating_add(delta).max(0) as usize;
        self.select_index(snap, target);
    }

    /// A click on the n-th visible row.
    pub fn click_row(&mut self, snap: Option<&Snapshot>, n: usize) {
        if let Some(snap) = snap
            && self.offset + n < self.rows.len()
        {
            self.select_index(snap, self.offset + n);
        }
    }

    /// The app sets the table's visible height before drawing.
    pub fn set_page(&mut self, snap: Option<&Snapshot>, rows: usize) {
        if rows != self.page {
            self.page = rows;
            if let Some(snap) = snap
                && let Some(i) = self.selected_index(Some(snap))
            {
                self.select_index(snap, i);
            }
        }
    }

    /// The app tells which columns the table draws at this width, before drawing.
    pub fn set_shown(&mut self, columns: Vec<Column>) {
        self.shown = columns;
    }

    /// `v`: show or hide the query columns.
    pub fn toggle_query(&mut self) {
        self.show_query = !self.show_query;
    }

    /// `s`/`S`: the next or previous column among those shown at this width (before the first draw: among the
    /// columns that may be shown).
    pub fn cycle_sort(&mut self, step: isize) {
        let enabled: Vec<Column>;
        let columns: &[Column] = if self.shown.is_empty() {
            // CLIENT LEG is shown only with poolers, which only the first draw knows of.
            enabled = Column::ALL
                .into_iter()
                .filter(|c| (self.show_query || !c.is_query()) && *c != Column::ClientLeg)
                .collect();
            &enabled
        } else {
            &self.shown
        };
        let n = columns.len() as isize;
        self.sort.column = match columns.iter().position(|c| *c == self.sort.column) {
            Some(pos) => columns[((pos as isize + step).rem_euclid(n)) as usize],
            // The sorted column is not shown (the terminal shrank): start from the first or last shown.
            None if step > 0 => columns[0],
            None => columns[columns.len() - 1],
        };
    }

    pub fn reverse(&mut self) {
        self.sort.descending = !self.sort.descending;
    }

    /// A click on a column header: sort by it, or reverse when it is already the sort column.
    pub fn sort_by(&mut self, column: Column) {
        if self.sort.column == column {
            self.reverse();
        } else {
            self.sort = Sort {
                column,
                descending: false,
            };
        }
    }

    /// The sessions in table order.
    pub fn visible<'a>(&'a self, snap: Option<&'a Snapshot>) -> impl Iterator<Item = &'a Session> {
        let sessions = snap.map(|s| s.sessions.as_slice()).unwrap_or(&[]);
        self.rows.iter().filter_map(move |i| sessions.get(*i))
    }
}

fn matches_filter(s: &Session, needle_lower: &str, now: DateTime<Utc>) -> bool {
    Column::ALL
        .iter()
        .any(|c| c.text(s, now).to_lowercase().contains(needle_lower))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    fn table(snap: &Snapshot) -> SessionsTable {
        let mut t = SessionsTable::default();
        t.rebuild(Some(snap), "");
        t
    }

    #[test]
    fn a_click_past_the_last_row_selects_nothing_new() {
        let snap = fixtures::snapshot();
        let mut t = table(&snap);
        t.set_page(Some(&snap), 30);
        t.click_row(Some(&snap), 3);
        assert_eq!(t.selected_index(Some(&snap)), Some(3));
        t.click_row(Some(&snap), 29);
        assert_eq!(t.selected_index(Some(&snap)), Some(3), "blank space below the rows");
    }

    #[test]
    fn sorting_cycles_through_the_shown_columns_only() {
        let snap = fixtures::snapshot();
        let mut t = table(&snap);
        t.set_shown(vec![Column::Tls, Column::Pid, Column::User]);
        t.cycle_sort(1);
        assert_eq!(t.sort.column, Column::Pid);
        t.cycle_sort(1);
        t.cycle_sort(1);
        assert_eq!(t.sort.column, Column::Tls, "wraps around");
        t.cycle_sort(-1);
        assert_eq!(t.sort.column, Column::User);
        // The terminal narrowed and the sort column went: the next press starts from the first shown.
        t.set_shown(vec![Column::Pid, Column::Tls]);
        t.cycle_sort(1);
        assert_eq!(t.sort.column, Column::Pid);
    }

    #[test]
    fn hidden_query_columns_are_skipped_before_the_first_draw() {
        let snap = fixtures::snapshot();
        let mut t = table(&snap);
        t.toggle_query();
        t.sort.column = Column::ClientDn;
        t.cycle_sort(1);
        assert_eq!(t.sort.column, Column::Pid, "TIME+ and QUERY are hidden");
        t.toggle_query();
        t.sort.column = Column::ClientDn;
        t.cycle_sort(1);
        assert_eq!(t.sort.column, Column::Time);
    }

    #[test]
    fn a_header_click_sorts_then_reverses() {
        let snap = fixtures::snapshot();
        let mut t = table(&snap);
        t.sort_by(Column::Pid);
        assert_eq!(
            t.sort,
            Sort {
                column: Column::Pid,
                descending: false
            }
        );
        t.sort_by(Column::Pid);
        assert!(t.sort.descending);
    }
}
