//! The Holdouts table: the ledger's clients, filtered and sorted (worst exposure first until `s` picks another
//! column), with a selection that follows the client across refreshes, and the drill-down into one client.

use std::cmp::Ordering;

use super::Scroll;
use crate::analysis::ledger::{ClientKey, ClientRecord};
use crate::collect::poller::History;
use crate::model::ConnClass;
use crate::tui::keymap::Action;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HoldoutColumn {
    Application,
    User,
    Database,
    Address,
    Worst,
    SeenAs,
    Sessions,
    Now,
    LastSeen,
    Sources,
}

impl HoldoutColumn {
    /// Display order; also the order `s` cycles through.
    pub const ALL: [HoldoutColumn; 10] = [
        HoldoutColumn::Application,
        HoldoutColumn::User,
        HoldoutColumn::Database,
        HoldoutColumn::Address,
        HoldoutColumn::Worst,
        HoldoutColumn::SeenAs,
        HoldoutColumn::Sessions,
        HoldoutColumn::Now,
        HoldoutColumn::LastSeen,
        HoldoutColumn::Sources,
    ];

    pub fn title(self) -> &'static str {
        match self {
            HoldoutColumn::Application => "APPLICATION",
            HoldoutColumn::User => "USER",
            HoldoutColumn::Database => "DATABASE",
            HoldoutColumn::Address => "ADDRESS",
            HoldoutColumn::Worst => "WORST",
            HoldoutColumn::SeenAs => "SEEN AS",
            HoldoutColumn::Sessions => "SESS",
            HoldoutColumn::Now => "NOW",
            HoldoutColumn::LastSeen => "LAST SEEN",
            HoldoutColumn::Sources => "SOURCES",
        }
    }

    /// Ascending order by this column alone; [`Holdouts::rebuild`] breaks ties.
    pub fn compare(self, a: &ClientRecord, b: &ClientRecord) -> Ordering {
        match self {
            HoldoutColumn::Application => a.key.application.cmp(&b.key.application),
            HoldoutColumn::User => a.key.user.cmp(&b.key.user),
            HoldoutColumn::Database => a.key.database.cmp(&b.key.database),
            HoldoutColumn::Address => a.key.address.cmp(&b.key.address),
            HoldoutColumn::Worst => worst_rank(a).cmp(&worst_rank(b)),
            HoldoutColumn::SeenAs => seen_as(a).cmp(&seen_as(b)),
            HoldoutColumn::Sessions => a.sessions.cmp(&b.sessions),
            HoldoutColumn::Now => a.connected_now.cmp(&b.connected_now),
            HoldoutColumn::LastSeen => a.last_seen.cmp(&b.last_seen),
            HoldoutColumn::Sources => a.sources_label().cmp(b.sources_label()),
        }
    }
}

fn worst_rank(r: &ClientRecord) -> u8 {
    r.worst_class().map_or(u8::MAX, ConnClass::exposure_rank)
}

/// `2×TLSv1.2 1×no TLS (TCP)`: sessions per TLS version, then per other way of connecting.
pub fn seen_as(r: &ClientRecord) -> String {
    let mut seen: Vec<String> = r.tls_versions.iter().map(|(v, n)| format!("{n}×{v}")).collect();
    for (class, n) in &r.classes {
        // TLS sessions are already counted by version above.
        if !matches!(class, ConnClass::Tls13 | ConnClass::Tls12 | ConnClass::TlsOlder) {
            seen.push(format!("{n}×{}", class.label()));
        }
    }
    seen.join(" ")
}

fn matches_filter(r: &ClientRecord, needle_lower: &str) -> bool {
    let key = &r.key;
    [&key.user, &key.database, &key.application, &key.address]
        .iter()
        .any(|f| f.to_lowercase().contains(needle_lower))
        || r.worst_class()
            .is_some_and(|w| w.label().to_lowercase().contains(needle_lower))
        || seen_as(r).to_lowercase().contains(needle_lower)
        || r.ciphers.keys().any(|c| c.to_lowercase().contains(needle_lower))
        || r.sources_label().contains(needle_lower)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoldoutSort {
    pub column: HoldoutColumn,
    pub descending: bool,
}

/// The drill-down of one client: a copy of its record, refreshed with each history, so it stays readable if the
/// ledger drops the identity.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientDrill {
    pub record: ClientRecord,
    pub scroll: Scroll,
}

#[derive(Debug, Clone)]
pub struct Holdouts {
    /// Indices into `history.clients`, filtered and sorted.
    pub rows: Vec<usize>,
    /// Position of the selection among `rows`.
    pub selected: usize,
    /// The selected client, so the selection follows it across re-sorts, filters and refreshes.
    selected_key: Option<ClientKey>,
    pub offset: usize,
    pub sort: HoldoutSort,
    /// Columns shown at the terminal's width, set before drawing: `s` cycles through these only.
    shown: Vec<HoldoutColumn>,
    pub drill: Option<ClientDrill>,
}

impl Default for Holdouts {
    fn default() -> Self {
        Holdouts {
            rows: Vec::new(),
            selected: 0,
            selected_key: None,
            offset: 0,
            sort: HoldoutSort {
                column: HoldoutColumn::Worst,
                descending: false,
            },
            shown: Vec::new(),
            drill: None,
        }
    }
}

impl Holdouts {
    /// The keys this table handles itself (sort, reverse, open); false for any other action.
    pub fn act(&mut self, action: Action, history: Option<&History>, filter: &str, page: usize) -> bool {
        match action {
            Action::SortNext => self.cycle_sort(1),
            Action::SortPrev => self.cycle_sort(-1),
            Action::SortReverse => self.sort.descending = !self.sort.descending,
            Action::Open => {
                self.open(history);
                return true;
            }
            _ => return false,
        }
        self.rebuild(history, filter, page);
        true
    }

    /// Enter: the selected client's drill-down.
    fn open(&mut self, history: Option<&History>) {
        let record = history.and_then(|h| self.rows.get(self.selected).and_then(|i| h.clients.get(*i)));
        if let Some(record) = record {
            self.drill = Some(ClientDrill {
                record: record.clone(),
                scroll: Scroll::default(),
            });
        }
    }

    /// The selected client's record.
    pub fn selected_record<'a>(&self, history: Option<&'a History>) -> Option<&'a ClientRecord> {
        history?.clients.get(*self.rows.get(self.selected)?)
    }

    /// The view tells which columns fit; the sort keeps its column even when it is not among them.
    pub fn set_shown(&mut self, columns: Vec<HoldoutColumn>) {
        self.shown = columns;
    }

    /// A click on a header: sort by that column, or reverse when it is the sort column already.
    pub fn sort_by(&mut self, column: HoldoutColumn) {
        if self.sort.column == column {
            self.sort.descending = !self.sort.descending;
        } else {
            self.sort = HoldoutSort {
                column,
                descending: false,
            };
        }
    }

    fn cycle_sort(&mut self, step: isize) {
        let columns: &[HoldoutColumn] = if self.shown.is_empty() {
            &HoldoutColumn::ALL
        } else {
            &self.shown
        };
        let n = columns.len() as isize;
        let next = match columns.iter().position(|c| *c == self.sort.column) {
            Some(pos) => columns[(pos as isize + step).rem_euclid(n) as usize],
            None if step > 0 => columns[0],
            None => columns[columns.len() - 1],
        };
        self.sort = HoldoutSort {
            column: next,
            descending: false,
        };
    }

    /// The ledger's clients with the filter and sort; the selection stays on its client when it is still shown.
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
            .filter(|(_, c)| needle.is_empty() || matches_filter(c, &needle))
            .map(|(i, _)| i)
            .collect();
        let sort = self.sort;
        rows.sort_by(|a, b| {
            let (a, b) = (&history.clients[*a], &history.clients[*b]);
            let ord = sort.column.compare(a, b);
            let ord = if sort.descending { ord.reverse() } else { ord };
            // Ties, in either direction: worst exposure first, then the most recent, then by identity, so equal
            // rows never swap between refreshes.
            ord.then(worst_rank(a).cmp(&worst_rank(b)))
                .then(b.last_seen.cmp(&a.last_seen))
                .then(a.key.cmp(&b.key))
        });
        self.rows = rows;
        let kept = self
            .selected_key
            .as_ref()
            .and_then(|key| self.rows.iter().position(|i| history.clients[*i].key == *key));
        self.select(history, kept.unwrap_or(self.selected), page);
        if let Some(drill) = &mut self.drill
            && let Some(record) = history.clients.iter().find(|c| c.key == drill.record.key)
        {
            drill.record = record.clone();
        }
    }

    fn select(&mut self, history: &History, index: usize, page: usize) {
        self.selected = index.min(self.rows.len().saturating_sub(1));
        self.selected_key = self
            .rows
            .get(self.selected)
            .and_then(|i| history.clients.get(*i))
            .map(|c| c.key.clone());
        self.clamp_offset(page);
    }

    pub fn move_by(&mut self, history: Option<&History>, delta: isize, page: usize) {
        let Some(history) = history else {
            return;
        };
        let last = self.rows.len().saturating_sub(1) as isize;
        let target = (self.selected as isize).saturating_add(delta).clamp(0, last) as usize;
        self.select(history, target, page);
    }

    /// A click on the n-th visible row.
    pub fn click_row(&mut self, history: Option<&History>, n: usize, page: usize) {
        if let Some(history) = history
            && self.offset + n < self.rows.len()
        {
            self.select(history, self.offset + n, page);
        }
    }

    fn clamp_offset(&mut self, page: usize) {
        let page = page.max(1);
        if self.selected < self.offset {
            self.offset = self.selected;
        } else if self.selected >= self.offset + page {
            self.offset = self.selected + 1 - page;
        }
        self.offset = self.offset.min(self.rows.len().saturating_sub(page));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    fn table(history: &History) -> Holdouts {
        let mut h = Holdouts::default();
        h.rebuild(Some(history), "", 2);
        h
    }

    fn column_of(h: &Holdouts, history: &History, column: HoldoutColumn) -> Vec<String> {
        h.rows
            .iter()
            .map(|i| {
                let c = &history.clients[*i];
                match column {
                    HoldoutColumn::Application => c.key.application.clone(),
                    HoldoutColumn::Sessions => format!("{:05}", c.sessions),
                    _ => c.key.user.clone(),
                }
            })
            .collect()
    }

    #[test]
    fn moves_and_clicks_stay_on_rows() {
        let history = fixtures::history();
        let mut h = table(&history);
        let n = h.rows.len();
        assert!(n >= 3, "fixture has several clients");
        h.move_by(Some(&history), isize::MAX / 2, 2);
        assert_eq!(h.selected, n - 1);
        assert_eq!(h.offset, n - 2, "the selection stays on the page");
        h.click_row(Some(&history), 1, 2);
        assert_eq!(h.selected, n - 1);
        h.click_row(Some(&history), 5, 2);
        assert_eq!(h.selected, n - 1, "a click below the rows does nothing");
        h.move_by(Some(&history), isize::MIN / 2, 2);
        assert_eq!((h.selected, h.offset), (0, 0));
    }

    #[test]
    fn every_column_sorts_and_i_reverses_it() {
        let history = fixtures::history();
        let mut h = table(&history);
        for column in HoldoutColumn::ALL {
            h.sort = HoldoutSort {
                column,
                descending: false,
            };
            h.rebuild(Some(&history), "", 2);
            let up: Vec<usize> = h.rows.clone();
            assert!(
                up.windows(2)
                    .all(|w| column.compare(&history.clients[w[0]], &history.clients[w[1]]) != Ordering::Greater),
                "{column:?} ascending"
            );
            assert!(h.act(Action::SortReverse, Some(&history), "", 2));
            assert!(
                h.rows
                    .windows(2)
                    .all(|w| column.compare(&history.clients[w[0]], &history.clients[w[1]]) != Ordering::Less),
                "{column:?} descending"
            );
            let mut same = h.rows.clone();
            same.sort();
            let mut before = up.clone();
            before.sort();
            assert_eq!(same, before, "{column:?}: the same rows");
        }
        // By application, as `s` would reach it: names in order.
        h.sort = HoldoutSort {
            column: HoldoutColumn::Application,
            descending: false,
        };
        h.rebuild(Some(&history), "", 2);
        let apps = column_of(&h, &history, HoldoutColumn::Application);
        let mut sorted = apps.clone();
        sorted.sort();
        assert_eq!(apps, sorted);
    }

    #[test]
    fn s_cycles_through_the_shown_columns_and_starts_ascending() {
        let history = fixtures::history();
        let mut h = table(&history);
        h.set_shown(vec![
            HoldoutColumn::Application,
            HoldoutColumn::Worst,
            HoldoutColumn::Sessions,
        ]);
        h.act(Action::SortReverse, Some(&history), "", 2);
        h.act(Action::SortNext, Some(&history), "", 2);
        assert_eq!(
            h.sort,
            HoldoutSort {
                column: HoldoutColumn::Sessions,
                descending: false
            }
        );
        let sessions = column_of(&h, &history, HoldoutColumn::Sessions);
        assert!(sessions.windows(2).all(|w| w[0] <= w[1]), "{sessions:?}");
        h.act(Action::SortNext, Some(&history), "", 2);
        assert_eq!(h.sort.column, HoldoutColumn::Application, "wraps around");
        h.act(Action::SortPrev, Some(&history), "", 2);
        assert_eq!(h.sort.column, HoldoutColumn::Sessions);
        assert!(!h.act(Action::Refresh, Some(&history), "", 2), "not a Holdouts key");
    }

    #[test]
    fn the_selection_follows_its_client_across_sorts_and_filters() {
        let history = fixtures::history();
        let mut h = table(&history);
        h.move_by(Some(&history), 2, 2);
        let chosen = h.selected_record(Some(&history)).map(|r| r.key.clone());
        h.act(Action::SortReverse, Some(&history), "", 2);
        assert_eq!(h.selected_record(Some(&history)).map(|r| r.key.clone()), chosen);
        h.act(Action::SortNext, Some(&history), "", 2);
        assert_eq!(h.selected_record(Some(&history)).map(|r| r.key.clone()), chosen);
        let user = chosen.as_ref().map(|k| k.user.clone()).unwrap_or_default();
        h.rebuild(Some(&history), &user, 2);
        assert_eq!(h.selected_record(Some(&history)).map(|r| r.key.clone()), chosen);
    }

    #[test]
    fn the_filter_matches_every_column() {
        let history = fixtures::history();
        let mut h = table(&history);
        let all = h.rows.len();
        h.rebuild(Some(&history), "BILLING", 2);
        assert_eq!(h.rows.len(), 1, "application, case-insensitive");
        h.rebuild(Some(&history), "no tls", 2);
        assert_eq!(h.rows.len(), 2, "the way it connected");
        h.rebuild(Some(&history), "poll", 2);
        assert_eq!(h.rows.len(), all, "the source");
        h.rebuild(Some(&history), "ECDHE", 2);
        assert!(!h.rows.is_empty() && h.rows.len() < all, "a cipher");
    }

    #[test]
    fn enter_opens_the_selected_client_and_a_refresh_keeps_it_current() {
        let history = fixtures::history();
        let mut h = table(&history);
        assert!(h.act(Action::Open, Some(&history), "", 2));
        let drill = h.drill.as_ref().expect("open");
        assert_eq!(Some(&drill.record), h.selected_record(Some(&history)));
        let mut later = history.clone();
        let key = drill.record.key.clone();
        for c in &mut later.clients {
            if c.key == key {
                c.sessions += 5;
            }
        }
        h.rebuild(Some(&later), "", 2);
        let drill = h.drill.as_ref().expect("still open");
        assert_eq!(
            drill.record.sessions,
            h.selected_record(Some(&later)).map_or(0, |r| r.sessions)
        );
        later.clients.retain(|c| c.key != key);
        h.rebuild(Some(&later), "", 2);
        assert_eq!(
            h.drill.as_ref().map(|d| &d.record.key),
            Some(&key),
            "kept when it leaves the ledger"
        );
    }
}
