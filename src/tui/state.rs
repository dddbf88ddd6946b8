//! Everything the dashboard shows, and how inputs change it. No I/O and no clock: times arrive with events.

use std::time::Duration;

use chrono::{DateTime, Utc};
use crossterm::event::KeyEvent;

use super::columns::Column;
use super::keymap::{self, Action, Scope};
use crate::analysis::alerts::{AlertLog, LinkHealth, evaluate};
use crate::collect::poller::{PollerCommand, PollerEvent};
use crate::model::{ConnClass, Session, Snapshot};

/// Refresh intervals offered by `+` and `-`.
pub const INTERVALS: [Duration; 8] = [
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(5),
    Duration::from_secs(10),
    Duration::from_secs(30),
    Duration::from_secs(60),
    Duration::from_secs(300),
];

/// What reaches the state: keys, mouse gestures already mapped to rows, poller events with the local time.
#[derive(Debug, Clone)]
pub enum Input {
    Key(KeyEvent),
    ScrollUp,
    ScrollDown,
    /// A click on the n-th visible table row (0 = first row under the header).
    ClickRow(usize),
    Poller {
        event: PollerEvent,
        at: DateTime<Utc>,
    },
}

/// What the state asks the app loop to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Quit,
    Poller(PollerCommand),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// Connected, waiting for the first snapshot.
    Connecting,
    Up,
    Lost {
        since: DateTime<Utc>,
        error: String,
        retry_at: DateTime<Utc>,
    },
}

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

/// The drill-down of one session; keeps the last values when the session ends.
#[derive(Debug, Clone, PartialEq)]
pub struct Detail {
    pub pid: i32,
    pub session: Session,
    /// Server time of the first snapshot without this session.
    pub ended_at: Option<DateTime<Utc>>,
    pub scroll: u16,
}

#[derive(Debug, Clone)]
pub struct AppState {
    /// Where we are connected, for the header (never contains a password).
    pub target: String,
    pub link: Link,
    pub snapshot: Option<Snapshot>,
    /// Local time the latest snapshot arrived.
    pub updated_at: Option<DateTime<Utc>>,
    /// Local time of the latest event; alerts are stamped with it.
    pub now: DateTime<Utc>,
    pub interval: Duration,
    pub paused: bool,
    pub sort: Sort,
    pub filter: String,
    pub filter_editing: bool,
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
    pub detail: Option<Detail>,
    pub help: bool,
    pub alerts: AlertLog,
    pub warnings: Vec<String>,
}

impl AppState {
    pub fn new(target: String, interval: Duration, now: DateTime<Utc>) -> Self {
        AppState {
            target,
            link: Link::Connecting,
            snapshot: None,
            updated_at: None,
            now,
            interval,
            paused: false,
            sort: Sort {
                column: Column::Tls,
                descending: false,
            },
            filter: String::new(),
            filter_editing: false,
            quick_view: QuickView::All,
            rows: Vec::new(),
            selected_pid: None,
            selected_pos: 0,
            offset: 0,
            page: 20,
            detail: None,
            help: false,
            alerts: AlertLog::default(),
            warnings: Vec::new(),
        }
    }

    /// Which key bindings apply now.
    pub fn scope(&self) -> Scope {
        if self.help {
            Scope::Help
        } else if self.filter_editing {
            Scope::FilterInput
        } else if self.detail.is_some() {
            Scope::Detail
        } else {
            Scope::Table
        }
    }

    pub fn handle(&mut self, input: Input) -> Vec<Effect> {
        match input {
            Input::Key(key) => self.on_key(key),
            Input::ScrollUp => self.on_action(Action::Up),
            Input::ScrollDown => self.on_action(Action::Down),
            Input::ClickRow(n) => {
                if self.detail.is_none() && !self.help {
                    self.select_index(self.offset + n);
                }
                Vec::new()
            }
            Input::Poller { event, at } => {
                self.now = at;
                self.on_poller(event);
                Vec::new()
            }
        }
    }

    fn on_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        let scope = self.scope();
        match keymap::lookup(scope, &key) {
            Some(action) => self.on_action(action),
            None => {
                if scope == Scope::FilterInput
                    && let crossterm::event::KeyCode::Char(c) = key.code
                {
                    self.filter.push(c);
                    self.rebuild_rows();
                }
                Vec::new()
            }
        }
    }

    pub fn on_action(&mut self, action: Action) -> Vec<Effect> {
        match action {
            Action::Quit => return vec![Effect::Quit],
            Action::Help => self.help = !self.help,
            Action::Up => self.move_by(-1),
            Action::Down => self.move_by(1),
            Action::PageUp => self.move_by(-(self.page.max(1) as isize)),
            Action::PageDown => self.move_by(self.page.max(1) as isize),
            Action::Top => self.move_by(isize::MIN / 2),
            Action::Bottom => self.move_by(isize::MAX / 2),
            Action::SortNext => self.cycle_sort(1),
            Action::SortPrev => self.cycle_sort(-1),
            Action::SortReverse => {
                self.sort.descending = !self.sort.descending;
                self.rebuild_rows();
            }
            Action::StartFilter => self.filter_editing = true,
            Action::ClearFilter => {
                self.filter.clear();
                self.filter_editing = false;
                self.rebuild_rows();
            }
            Action::ApplyFilter => self.filter_editing = false,
            Action::DeleteChar => {
                self.filter.pop();
                self.rebuild_rows();
            }
            Action::ViewAll => self.set_quick_view(QuickView::All),
            Action::ViewNoTls => self.set_quick_view(QuickView::NoTls),
            Action::ViewBelowTls13 => self.set_quick_view(QuickView::BelowTls13),
            Action::Open => self.open_detail(),
            Action::Back => {
                if self.help {
                    self.help = false;
                } else if self.detail.is_some() {
                    self.detail = None;
                } else if !self.filter.is_empty() || self.quick_view != QuickView::All {
                    self.filter.clear();
                    self.quick_view = QuickView::All;
                    self.rebuild_rows();
                }
            }
            Action::Pause => {
                self.paused = !self.paused;
                return vec![Effect::Poller(PollerCommand::SetPaused(self.paused))];
            }
            Action::Faster | Action::Slower => {
                let pos = INTERVALS
                    .iter()
                    .position(|i| *i >= self.interval)
                    .unwrap_or(INTERVALS.len() - 1);
                let next = if action == Action::Faster {
                    pos.saturating_sub(1)
                } else {
                    (pos + 1).min(INTERVALS.len() - 1)
                };
                self.interval = INTERVALS[next];
                return vec![Effect::Poller(PollerCommand::SetInterval(self.interval))];
            }
            Action::Refresh => return vec![Effect::Poller(PollerCommand::RefreshNow)],
        }
        Vec::new()
    }

    fn on_poller(&mut self, event: PollerEvent) {
        match event {
            PollerEvent::Connected { warnings } => {
                self.warnings = warnings;
                if self.snapshot.is_none() {
                    self.link = Link::Connecting;
                }
            }
            PollerEvent::Snapshot(snapshot) => {
                self.link = Link::Up;
                self.updated_at = Some(self.now);
                self.snapshot = Some(*snapshot);
                self.rebuild_rows();
                self.refresh_detail();
            }
            PollerEvent::Failed { error, at, retry_in } => {
                let since = match &self.link {
                    Link::Lost { since, .. } => *since,
                    _ => at,
                };
                let retry_at = at + chrono::Duration::from_std(retry_in).unwrap_or_default();
                self.link = Link::Lost {
                    since,
                    error: error.to_string(),
                    retry_at,
                };
            }
        }
        let health = match &self.link {
            Link::Lost { since, error, retry_at } => LinkHealth::Lost {
                since: *since,
                error: error.clone(),
                retry_at: *retry_at,
            },
            _ => LinkHealth::Up,
        };
        self.alerts.update(evaluate(self.snapshot.as_ref(), &health), self.now);
    }

    fn set_quick_view(&mut self, view: QuickView) {
        self.quick_view = view;
        self.rebuild_rows();
    }

    fn cycle_sort(&mut self, step: isize) {
        let n = Column::ALL.len() as isize;
        let pos = Column::ALL.iter().position(|c| *c == self.sort.column).unwrap_or(0) as isize;
        self.sort.column = Column::ALL[((pos + step).rem_euclid(n)) as usize];
        self.rebuild_rows();
    }

    /// Filter, quick view and sort applied to the latest snapshot; keeps the selection on its pid.
    pub fn rebuild_rows(&mut self) {
        let Some(snap) = &self.snapshot else {
            self.rows.clear();
            return;
        };
        let needle = self.filter.to_lowercase();
        let mut rows: Vec<usize> = snap
            .sessions
            .iter()
            .enumerate()
            .filter(|(_, s)| self.quick_view.admits(s.class))
            .filter(|(_, s)| needle.is_empty() || matches_filter(s, &needle, snap.taken_at))
            .map(|(i, _)| i)
            .collect();
        let sort = self.sort;
        // Stable: equal keys keep pid order, so rows do not jump between refreshes.
        rows.sort_by(|a, b| {
            let ord = sort.column.compare(&snap.sessions[*a], &snap.sessions[*b]);
            if sort.descending { ord.reverse() } else { ord }
        });
        self.rows = rows;
        match self.selected_pid.and_then(|pid| self.index_of(pid)) {
            Some(i) => self.select_index(i),
            // The selected session went away or was filtered out: stay at the same height.
            None => self.select_index(self.selected_pos),
        }
    }

    fn index_of(&self, pid: i32) -> Option<usize> {
        let snap = self.snapshot.as_ref()?;
        self.rows.iter().position(|i| snap.sessions[*i].pid == pid)
    }

    /// Position of the selection among the visible rows.
    pub fn selected_index(&self) -> Option<usize> {
        self.selected_pid.and_then(|pid| self.index_of(pid))
    }

    pub fn selected_session(&self) -> Option<&Session> {
        let snap = self.snapshot.as_ref()?;
        let idx = self.selected_index()?;
        Some(&snap.sessions[self.rows[idx]])
    }

    /// The sessions in table order.
    pub fn visible_sessions(&self) -> impl Iterator<Item = &Session> {
        let sessions = self.snapshot.as_ref().map(|s| s.sessions.as_slice()).unwrap_or(&[]);
        self.rows.iter().map(move |i| &sessions[*i])
    }

    fn select_index(&mut self, index: usize) {
        if self.rows.is_empty() {
            self.selected_pid = None;
            self.offset = 0;
            return;
        }
        let index = index.min(self.rows.len() - 1);
        self.selected_pos = index;
        self.selected_pid = self.snapshot.as_ref().map(|s| s.sessions[self.rows[index]].pid);
        let page = self.page.max(1);
        if index < self.offset {
            self.offset = index;
        } else if index >= self.offset + page {
            self.offset = index + 1 - page;
        }
        self.offset = self.offset.min(self.rows.len().saturating_sub(page));
    }

    fn move_by(&mut self, delta: isize) {
        if let Some(detail) = &mut self.detail {
            let scroll = i64::from(detail.scroll) + delta.clamp(-1000, 1000) as i64;
            detail.scroll = scroll.clamp(0, 1000) as u16;
            return;
        }
        let current = self.selected_index().unwrap_or(0) as isize;
        let target = current.saturating_add(delta).max(0) as usize;
        self.select_index(target);
    }

    /// The app calls this with the table's visible height before drawing.
    pub fn set_page(&mut self, rows: usize) {
        if rows != self.page {
            self.page = rows;
            if let Some(i) = self.selected_index() {
                self.select_index(i);
            }
        }
    }

    fn open_detail(&mut self) {
        if let Some(session) = self.selected_session() {
            self.detail = Some(Detail {
                pid: session.pid,
                session: session.clone(),
                ended_at: None,
                scroll: 0,
            });
        }
    }

    fn refresh_detail(&mut self) {
        let (Some(detail), Some(snap)) = (&mut self.detail, &self.snapshot) else {
            return;
        };
        match snap.sessions.iter().find(|s| s.pid == detail.pid) {
            Some(s) => {
                detail.session = s.clone();
                detail.ended_at = None;
            }
            None => {
                detail.ended_at.get_or_insert(snap.taken_at);
            }
        }
    }

    /// Matches among the rows after the quick view, for the "3 of 12" count.
    pub fn filter_counts(&self) -> (usize, usize) {
        let total = self.snapshot.as_ref().map_or(0, |s| s.sessions.len());
        (self.rows.len(), total)
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
    use crossterm::event::{KeyCode, KeyModifiers};

    fn state_with(snapshot: Snapshot) -> AppState {
        let mut st = AppState::new("db:5432".into(), Duration::from_secs(2), fixtures::now());
        st.handle(Input::Poller {
            event: PollerEvent::Snapshot(Box::new(snapshot)),
            at: fixtures::now(),
        });
        st
    }

    fn press(st: &mut AppState, code: KeyCode) -> Vec<Effect> {
        st.handle(Input::Key(KeyEvent::new(code, KeyModifiers::NONE)))
    }

    fn pids(st: &AppState) -> Vec<i32> {
        st.visible_sessions().map(|s| s.pid).collect()
    }

    #[test]
    fn default_sort_puts_plaintext_then_old_tls_first_and_is_stable() {
        let st = state_with(fixtures::snapshot());
        let p = pids(&st);
        assert_eq!(&p[..2], &[4150, 4157], "plain text first, pid order within");
        assert_eq!(&p[2..5], &[4131, 4138, 4144], "then TLS 1.2");
        assert_eq!(st.selected_pid, Some(4150));
    }

    #[test]
    fn sorting_cycles_columns_and_reverses() {
        let mut st = state_with(fixtures::snapshot());
        press(&mut st, KeyCode::Char('s'));
        assert_eq!(st.sort.column, Column::Cipher);
        for _ in 0..8 {
            press(&mut st, KeyCode::Char('S'));
        }
        assert_eq!(st.sort.column, Column::Pid);
        let ascending = pids(&st);
        assert!(ascending.windows(2).all(|w| w[0] < w[1]));
        press(&mut st, KeyCode::Char('i'));
        assert!(st.sort.descending);
        let descending = pids(&st);
        assert_eq!(descending, ascending.iter().rev().copied().collect::<Vec<_>>());
        // Sorting by application keeps pid order among equal names (stable).
        for _ in 0..3 {
            press(&mut st, KeyCode::Char('s'));
        }
        press(&mut st, KeyCode::Char('i'));
        assert_eq!(
            st.sort,
            Sort {
                column: Column::Application,
                descending: false
            }
        );
        let apps: Vec<i32> = st
            .visible_sessions()
            .filter(|s| s.application_name.as_deref() == Some("orders-api"))
            .map(|s| s.pid)
            .collect();
        assert_eq!(apps, vec![4107, 4112]);
    }

    #[test]
    fn selection_follows_the_pid_across_resorts_and_refreshes() {
        let mut st = state_with(fixtures::snapshot());
        press(&mut st, KeyCode::Down);
        press(&mut st, KeyCode::Down);
        let chosen = st.selected_pid.unwrap();
        assert_eq!(chosen, 4131);
        press(&mut st, KeyCode::Char('i'));
        assert_eq!(st.selected_pid, Some(chosen), "reverse keeps the selection");
        assert_ne!(st.selected_index(), Some(2));
        // A refresh where another session disappears keeps the pid.
        let mut next = fixtures::snapshot();
        next.sessions.retain(|s| s.pid != 4150);
        st.handle(Input::Poller {
            event: PollerEvent::Snapshot(Box::new(next)),
            at: fixtures::now(),
        });
        assert_eq!(st.selected_pid, Some(chosen));
    }

    #[test]
    fn filter_matches_any_column_and_counts() {
        let mut st = state_with(fixtures::snapshot());
        press(&mut st, KeyCode::Char('/'));
        assert_eq!(st.scope(), Scope::FilterInput);
        for c in "BILL".chars() {
            press(&mut st, KeyCode::Char(c));
        }
        assert_eq!(pids(&st), vec![4131, 4138]);
        assert_eq!(st.filter_counts(), (2, 12));
        press(&mut st, KeyCode::Char('q'));
        assert_eq!(st.filter, "BILLq", "q is text while typing");
        press(&mut st, KeyCode::Backspace);
        press(&mut st, KeyCode::Enter);
        assert_eq!(st.scope(), Scope::Table);
        assert_eq!(st.filter, "BILL");
        press(&mut st, KeyCode::Esc);
        assert!(st.filter.is_empty());
        assert_eq!(st.rows.len(), 12);
        // Filtering by TLS version text works too.
        press(&mut st, KeyCode::Char('/'));
        for c in "no tls".chars() {
            press(&mut st, KeyCode::Char(c));
        }
        assert_eq!(pids(&st), vec![4150, 4157]);
    }

    #[test]
    fn quick_views() {
        let mut st = state_with(fixtures::snapshot());
        press(&mut st, KeyCode::Char('2'));
        assert_eq!(pids(&st), vec![4150, 4157]);
        press(&mut st, KeyCode::Char('3'));
        assert_eq!(pids(&st), vec![4131, 4138, 4144]);
        press(&mut st, KeyCode::Char('1'));
        assert_eq!(st.rows.len(), 12);
    }

    #[test]
    fn detail_opens_on_enter_survives_the_session_ending_and_esc_returns() {
        let mut st = state_with(fixtures::snapshot());
        press(&mut st, KeyCode::Down);
        press(&mut st, KeyCode::Enter);
        assert_eq!(st.scope(), Scope::Detail);
        let pid = st.detail.as_ref().unwrap().pid;
        assert_eq!(pid, 4157);
        let mut next = fixtures::snapshot();
        next.taken_at += chrono::Duration::seconds(2);
        next.sessions.retain(|s| s.pid != pid);
        st.handle(Input::Poller {
            event: PollerEvent::Snapshot(Box::new(next.clone())),
            at: fixtures::now(),
        });
        let detail = st.detail.as_ref().unwrap();
        assert_eq!(detail.ended_at, Some(next.taken_at));
        assert_eq!(
            detail.session.application_name.as_deref(),
            Some("grafana"),
            "last values kept"
        );
        press(&mut st, KeyCode::Esc);
        assert_eq!(st.scope(), Scope::Table);
        assert_eq!(st.selected_index(), Some(1), "table position kept");
    }

    #[test]
    fn pause_interval_refresh_and_quit_become_effects() {
        let mut st = state_with(fixtures::snapshot());
        assert_eq!(
            press(&mut st, KeyCode::Char('p')),
            vec![Effect::Poller(PollerCommand::SetPaused(true))]
        );
        assert!(st.paused);
        assert_eq!(
            press(&mut st, KeyCode::Char('+')),
            vec![Effect::Poller(PollerCommand::SetInterval(Duration::from_secs(5)))]
        );
        assert_eq!(
            press(&mut st, KeyCode::Char('-')),
            vec![Effect::Poller(PollerCommand::SetInterval(Duration::from_secs(2)))]
        );
        assert_eq!(
            press(&mut st, KeyCode::Char('r')),
            vec![Effect::Poller(PollerCommand::RefreshNow)]
        );
        assert_eq!(press(&mut st, KeyCode::Char('q')), vec![Effect::Quit]);
    }

    #[test]
    fn paging_and_clicks_keep_the_selection_visible() {
        let mut st = state_with(fixtures::generated(100));
        st.set_page(10);
        press(&mut st, KeyCode::PageDown);
        assert_eq!(st.selected_index(), Some(10));
        assert_eq!(st.offset, 1);
        press(&mut st, KeyCode::End);
        assert_eq!(st.selected_index(), Some(99));
        assert_eq!(st.offset, 90);
        st.handle(Input::ClickRow(3));
        assert_eq!(st.selected_index(), Some(93));
        press(&mut st, KeyCode::Home);
        assert_eq!((st.selected_index(), st.offset), (Some(0), 0));
    }

    #[test]
    fn a_lost_connection_is_kept_since_its_first_failure() {
        let mut st = state_with(fixtures::snapshot());
        let t0 = fixtures::now();
        for (i, secs) in [0, 3].iter().enumerate() {
            st.handle(Input::Poller {
                event: PollerEvent::Failed {
                    error: crate::collect::CollectError::Poll("connection to the server was lost".into()),
                    at: t0 + chrono::Duration::seconds(*secs),
                    retry_in: Duration::from_secs(1 << i),
                },
                at: t0 + chrono::Duration::seconds(*secs),
            });
        }
        assert!(matches!(st.link, Link::Lost { since, .. } if since == t0));
        assert!(st.alerts.active().any(|a| a.alert.key == "connection_lost"));
        assert!(st.snapshot.is_some(), "last data stays on screen");
    }
}
