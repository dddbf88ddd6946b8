//! The What-if screen: which target is shown, how far it is scrolled, and which lingering session is selected once
//! the change is in force (the one `K`, `C` and Enter act on).

use chrono::{DateTime, Utc};

use super::Scroll;
use crate::analysis::after::Lingering;
use crate::analysis::whatif::Change;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WhatIfView {
    pub target: Change,
    pub scroll: Scroll,
    /// The lingering session picked with ↑/↓, by pid and start time: pids are reused, and the list is rebuilt on
    /// every poll, so neither an index nor a pid alone would keep pointing at the same session.
    picked: Option<(i32, DateTime<Utc>)>,
    /// The pick moved: the next draw scrolls it into view (once, so paging away from it is not undone).
    pub reveal: bool,
    /// The Sources note in full (Enter, when no lingering session is there to open), instead of one line each.
    pub sources_open: bool,
}

impl Default for WhatIfView {
    fn default() -> Self {
        WhatIfView {
            target: Change::MinTls13,
            scroll: Scroll::default(),
            picked: None,
            reveal: false,
            sources_open: false,
        }
    }
}

impl WhatIfView {
    /// `←`/`→`/`x`: the other target, from its top.
    pub fn next_target(&mut self) {
        self.target = match self.target {
            Change::MinTls13 => Change::TlsRequired,
            Change::TlsRequired => Change::MinTls13,
        };
        self.scroll = Scroll::default();
        self.picked = None;
    }

    /// Position of the selected session in `lingering`: the pick while it is still listed, else the first.
    pub fn selected_index(&self, lingering: &[Lingering]) -> Option<usize> {
        if lingering.is_empty() {
            return None;
        }
        let found = self
            .picked
            .and_then(|(pid, start)| lingering.iter().position(|l| l.pid == pid && l.backend_start == start));
        Some(found.unwrap_or(0))
    }

    pub fn selected<'a>(&self, lingering: &'a [Lingering]) -> Option<&'a Lingering> {
        self.selected_index(lingering).and_then(|i| lingering.get(i))
    }

    /// `↑`/`↓` over the lingering sessions; false when there are none (the keys then scroll the report).
    pub fn move_pick(&mut self, lingering: &[Lingering], delta: isize) -> bool {
        let Some(at) = self.selected_index(lingering) else {
            return false;
        };
        let next = at.saturating_add_signed(delta).min(lingering.len() - 1);
        self.picked = lingering.get(next).map(|l| (l.pid, l.backend_start));
        self.reveal = true;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ConnClass;

    fn lingering(pid: i32, start_secs: i64) -> Lingering {
        Lingering {
            pid,
            user: Some("app".into()),
            database: Some("db".into()),
            application: Some("job".into()),
            address: Some("10.0.0.1".into()),
            class: ConnClass::Tls12,
            tls_version: Some("TLSv1.2".into()),
            backend_start: DateTime::from_timestamp(start_secs, 0).unwrap(),
            replication: false,
        }
    }

    #[test]
    fn switching_targets_starts_at_the_top() {
        let mut w = WhatIfView::default();
        w.scroll.set_max(10);
        w.scroll.by(4);
        w.next_target();
        assert_eq!(w.target, Change::TlsRequired);
        assert_eq!(w.scroll.offset(), 0);
        assert_eq!(w.scroll.max(), None, "the other report has its own length");
        w.next_target();
        assert_eq!(w.target, Change::MinTls13);
    }

    #[test]
    fn the_pick_follows_its_session_not_its_position() {
        let mut w = WhatIfView::default();
        assert!(!w.move_pick(&[], 1), "nothing to pick: the keys scroll");
        let list = vec![lingering(10, 100), lingering(11, 100), lingering(12, 100)];
        assert_eq!(
            w.selected(&list).map(|l| l.pid),
            Some(10),
            "the first until one is picked"
        );
        assert!(w.move_pick(&list, 1));
        assert!(w.move_pick(&list, 5), "clamped at the end");
        assert_eq!(w.selected(&list).map(|l| l.pid), Some(12));
        // A poll later the list starts with a new session: the pick stays on pid 12.
        let later = vec![lingering(9, 50), lingering(10, 100), lingering(12, 100)];
        assert_eq!(w.selected(&later).map(|l| l.pid), Some(12));
        // Pid 12 reused by another backend: not the picked session, so the first is shown selected instead.
        let reused = vec![lingering(10, 100), lingering(12, 999)];
        assert_eq!(w.selected(&reused).map(|l| l.pid), Some(10));
        assert!(w.move_pick(&list, -10));
        assert_eq!(w.selected(&list).map(|l| l.pid), Some(10));
    }
}
