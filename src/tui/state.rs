//! Everything the dashboard shows, and how inputs change it. No I/O and no clock: times arrive with events.

use std::time::Duration;

use chrono::{DateTime, Utc};
use crossterm::event::KeyEvent;

use super::columns::{Column, exposure_rank};
use super::keymap::{self, Action, Scope};
use crate::analysis::alerts::{Alert, AlertLog, LinkHealth, Severity, evaluate_with};
use crate::analysis::whatif::Target;
use crate::collect::poller::{History, PollerCommand, PollerEvent};
use crate::config::AlertsConfig;
use crate::model::{ClassCounts, ConnClass, Session, Snapshot};
use crate::probe::ProbeReport;

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
    /// Ring the terminal bell: a new critical alert (when the configuration asks for it).
    Bell,
}

/// The screens, in Tab order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    Sessions,
    Holdouts,
    WhatIf,
    Certificates,
}

impl Screen {
    pub const ALL: [Screen; 4] = [Screen::Sessions, Screen::Holdouts, Screen::WhatIf, Screen::Certificates];

    pub fn title(self) -> &'static str {
        match self {
            Screen::Sessions => "Sessions",
            Screen::Holdouts => "Holdouts",
            Screen::WhatIf => "What-if",
            Screen::Certificates => "Certificates",
        }
    }
}

/// The certificate probe, run on demand.
#[derive(Debug, Clone, PartialEq)]
pub enum ProbeView {
    NotRun,
    Running,
    Done(Box<ProbeReport>),
    Failed(String),
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
    pub alert_config: AlertsConfig,
    pub warnings: Vec<String>,
    /// Notes from start-up (a damaged ledger, an ignored .pgpass) that stay on screen.
    pub startup_warnings: Vec<String>,
    pub screen: Screen,
    /// The ledger and what-if, from the poller.
    pub history: Option<History>,
    pub whatif_target: Target,
    pub probe: ProbeView,
    /// Connection lines refused as forged in the server log: how many, and the latest.
    pub forged_log_lines: Option<(u64, crate::logsource::SuspectLine)>,
    /// Holdouts table: indices into `history.clients`, filtered and sorted worst first.
    pub holdout_rows: Vec<usize>,
    pub holdout_selected: usize,
    pub holdout_offset: usize,
    pub holdout_sort_desc: bool,
    /// Scroll position of the What-if and Certificates screens.
    pub scroll: u16,
    /// Counts over the latest snapshot, made once when it arrives rather than on every frame.
    pub totals: Option<Totals>,
}

/// What the Protocols box counts over all sessions of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Totals {
    pub classes: ClassCounts,
    /// Ciphers by sessions using them, most used first, ties by name.
    pub ciphers: Vec<(String, usize)>,
}

impl Totals {
    pub fn of(snapshot: &Snapshot) -> Totals {
        // A server negotiates a handful of ciphers: a short list searched in place beats hashing every session's.
        let mut by_name: Vec<(&str, usize)> = Vec::new();
        for tls in snapshot.sessions.iter().filter_map(|s| s.tls.as_ref()) {
            match by_name.iter_mut().find(|(name, _)| *name == tls.cipher) {
                Some((_, n)) => *n += 1,
                None => by_name.push((&tls.cipher, 1)),
            }
        }
        let mut ciphers: Vec<(String, usize)> = by_name.into_iter().map(|(c, n)| (c.to_string(), n)).collect();
        ciphers.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        Totals {
            classes: snapshot.class_counts(),
            ciphers,
        }
    }
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
            alert_config: AlertsConfig::default(),
            warnings: Vec::new(),
            startup_warnings: Vec::new(),
            screen: Screen::Sessions,
            history: None,
            whatif_target: Target::MinTls13,
            probe: ProbeView::NotRun,
            forged_log_lines: None,
            holdout_rows: Vec::new(),
            holdout_selected: 0,
            holdout_offset: 0,
            holdout_sort_desc: false,
            scroll: 0,
            totals: None,
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
            match self.screen {
                Screen::Sessions => Scope::Table,
                Screen::Holdouts => Scope::Holdouts,
                Screen::WhatIf => Scope::WhatIf,
                Screen::Certificates => Scope::Certificates,
            }
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
                self.on_poller(event)
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
                    self.rebuild_holdouts();
                }
                Vec::new()
            }
        }
    }

    pub fn on_action(&mut self, action: Action) -> Vec<Effect> {
        let wanted = self.wants_history();
        let mut effects = self.act(action);
        let wants = self.wants_history();
        if wants != wanted {
            effects.push(Effect::Poller(PollerCommand::SendHistory(wants)));
        }
        effects
    }

    /// Only the Holdouts and What-if screens show the history; the poller builds and sends it only for them.
    pub fn wants_history(&self) -> bool {
        matches!(self.screen, Screen::Holdouts | Screen::WhatIf)
    }

    fn act(&mut self, action: Action) -> Vec<Effect> {
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
            Action::SortReverse if self.screen == Screen::Holdouts => {
                self.holdout_sort_desc = !self.holdout_sort_desc;
                self.rebuild_holdouts();
            }
            Action::SortReverse => {
                self.sort.descending = !self.sort.descending;
                self.rebuild_rows();
            }
            Action::StartFilter => self.filter_editing = true,
            Action::ClearFilter => {
                self.filter.clear();
                self.filter_editing = false;
                self.rebuild_rows();
                self.rebuild_holdouts();
            }
            Action::ApplyFilter => self.filter_editing = false,
            Action::DeleteChar => {
                self.filter.pop();
                self.rebuild_rows();
                self.rebuild_holdouts();
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
                } else if self.screen != Screen::Sessions && !self.filter.is_empty() {
                    self.filter.clear();
                    self.rebuild_rows();
                    self.rebuild_holdouts();
                } else if self.screen != Screen::Sessions {
                    self.screen = Screen::Sessions;
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
            Action::NextScreen | Action::PrevScreen => {
                let n = Screen::ALL.len();
                let pos = Screen::ALL.iter().position(|s| *s == self.screen).unwrap_or(0);
                let next = if action == Action::NextScreen {
                    (pos + 1) % n
                } else {
                    (pos + n - 1) % n
                };
                return self.show(Screen::ALL[next]);
            }
            Action::ShowSessions => return self.show(Screen::Sessions),
            Action::ShowHoldouts => return self.show(Screen::Holdouts),
            Action::ShowWhatIf => return self.show(Screen::WhatIf),
            Action::ShowCertificates => return self.show(Screen::Certificates),
            Action::NextTarget => {
                self.whatif_target = match self.whatif_target {
                    Target::MinTls13 => Target::TlsRequired,
                    Target::TlsRequired => Target::MinTls13,
                };
                self.scroll = 0;
            }
            Action::Probe => {
                self.probe = ProbeView::Running;
                return vec![Effect::Poller(PollerCommand::Probe)];
            }
        }
        Vec::new()
    }

    fn on_poller(&mut self, event: PollerEvent) -> Vec<Effect> {
        match event {
            PollerEvent::Polled { snapshot, history } => {
                let effects = self.on_poller(PollerEvent::Snapshot(snapshot));
                if let Some(history) = history {
                    self.on_poller(PollerEvent::History(history));
                }
                return effects;
            }
            PollerEvent::History(history) => {
                self.history = Some(*history);
                self.rebuild_holdouts();
                return Vec::new();
            }
            PollerEvent::ForgedLogLines { total, latest } => {
                self.forged_log_lines = Some((total, *latest));
            }
            PollerEvent::Probe(result) => {
                self.probe = match result {
                    Ok(report) => ProbeView::Done(report),
                    Err(e) => ProbeView::Failed(e),
                };
            }
            PollerEvent::Connected { warnings } => {
                self.warnings = self.startup_warnings.iter().cloned().chain(warnings).collect();
                if self.snapshot.is_none() {
                    self.link = Link::Connecting;
                }
            }
            PollerEvent::Snapshot(snapshot) => {
                self.link = Link::Up;
                self.updated_at = Some(self.now);
                self.totals = Some(Totals::of(&snapshot));
                self.snapshot = Some(*snapshot);
                self.rebuild_rows();
                self.refresh_detail();
            }
            PollerEvent::TaskFailed { task, error } => {
                let message = format!("pgtls internal error: the {task} stopped ({error}); restart pgtls");
                if task == crate::collect::poller::COLLECTOR_TASK {
                    // A lost link, so the header never claims live data from a collector that is gone.
                    self.link = Link::Lost {
                        since: self.now,
                        error: message,
                        retry_at: self.now,
                    };
                } else {
                    // Snapshots still flow; the warning stays, as the history no longer grows.
                    self.startup_warnings.push(message.clone());
                    self.warnings.push(message);
                }
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
        let mut current = evaluate_with(self.snapshot.as_ref(), &health, &self.alert_config);
        if let ProbeView::Done(report) = &self.probe {
            current.extend(probe_alerts(report));
        }
        if let Some((total, latest)) = &self.forged_log_lines {
            current.extend(crate::analysis::alerts::forged_log_lines(
                *total,
                latest,
                &self.alert_config,
            ));
        }
        let began = self.alerts.update(current, self.now);
        let critical_began = self
            .alerts
            .active()
            .any(|e| e.alert.severity == Severity::Critical && began.contains(&e.alert.key));
        if critical_began && self.alert_config.bell {
            vec![Effect::Bell]
        } else {
            Vec::new()
        }
    }

    /// Switch screens; the certificate probe runs the first time its screen opens.
    fn show(&mut self, screen: Screen) -> Vec<Effect> {
        self.detail = None;
        self.screen = screen;
        self.scroll = 0;
        if screen == Screen::Certificates && self.probe == ProbeView::NotRun {
            self.probe = ProbeView::Running;
            return vec![Effect::Poller(PollerCommand::Probe)];
        }
        Vec::new()
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

    /// The ledger's clients in the Holdouts table: worst exposure first, then most recently seen;
    /// the filter applies here too.
    pub fn rebuild_holdouts(&mut self) {
        let Some(history) = &self.history else {
            self.holdout_rows.clear();
            return;
        };
        let needle = self.filter.to_lowercase();
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
                c.worst_class().map_or(u8::MAX, super::columns::exposure_rank),
                std::cmp::Reverse(c.last_seen),
            )
        };
        rows.sort_by_key(rank);
        if self.holdout_sort_desc {
            rows.reverse();
        }
        self.holdout_rows = rows;
        self.holdout_selected = self.holdout_selected.min(self.holdout_rows.len().saturating_sub(1));
        self.clamp_holdout_offset();
    }

    fn clamp_holdout_offset(&mut self) {
        let page = self.page.max(1);
        if self.holdout_selected < self.holdout_offset {
            self.holdout_offset = self.holdout_selected;
        } else if self.holdout_selected >= self.holdout_offset + page {
            self.holdout_offset = self.holdout_selected + 1 - page;
        }
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
        match (sort.column, sort.descending) {
            // The default order, on every refresh: rank each row once instead of on every comparison.
            (Column::Tls, false) => rows.sort_by_cached_key(|i| exposure_rank(snap.sessions[*i].class)),
            (Column::Tls, true) => {
                rows.sort_by_cached_key(|i| std::cmp::Reverse(exposure_rank(snap.sessions[*i].class)))
            }
            _ => rows.sort_by(|a, b| {
                let ord = sort.column.compare(&snap.sessions[*a], &snap.sessions[*b]);
                if sort.descending { ord.reverse() } else { ord }
            }),
        }
        self.rows = rows;
        match self.selected_pid.and_then(|pid| self.index_of(pid)) {
            Some(i) => self.select_index(i),
            // The selected session went away or was filtered out: stay at the same height.
            None => self.select_index(self.selected_pos),
        }
    }

    fn index_of(&self, pid: i32) -> Option<usize> {
        let snap = self.snapshot.as_ref()?;
        // Pids are unique in a snapshot, and the selection is usually where it was: look there before searching.
        if let Some(i) = self.rows.get(self.selected_pos)
            && snap.sessions[*i].pid == pid
        {
            return Some(self.selected_pos);
        }
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
        match self.screen {
            Screen::Sessions => {}
            Screen::Holdouts => {
                let last = self.holdout_rows.len().saturating_sub(1) as isize;
                self.holdout_selected = (self.holdout_selected as isize).saturating_add(delta).clamp(0, last) as usize;
                self.clamp_holdout_offset();
                return;
            }
            Screen::WhatIf | Screen::Certificates => {
                let scroll = i64::from(self.scroll) + delta.clamp(-1000, 1000) as i64;
                self.scroll = scroll.clamp(0, 1000) as u16;
                return;
            }
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

/// Probe findings as alerts, so certificate and protocol problems sit with the others.
pub fn probe_alerts(report: &ProbeReport) -> Vec<Alert> {
    report
        .findings
        .iter()
        .enumerate()
        .map(|(i, f)| Alert {
            key: format!("probe_{i}_{}", f.message.chars().take(24).collect::<String>()),
            severity: f.severity,
            title: f.message.split(':').next().unwrap_or(&f.message).to_string(),
            detail: f.message.clone(),
            count: 1,
        })
        .collect()
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
    fn the_history_is_asked_for_only_on_the_screens_that_show_it() {
        let mut st = state_with(fixtures::snapshot());
        let send = |on| vec![Effect::Poller(PollerCommand::SendHistory(on))];
        assert_eq!(press(&mut st, KeyCode::Char('h')), send(true));
        assert_eq!(press(&mut st, KeyCode::Char('w')), Vec::new(), "still a history screen");
        assert_eq!(press(&mut st, KeyCode::Char('t')), send(false));
        assert_eq!(press(&mut st, KeyCode::Tab), send(true));
        assert_eq!(
            press(&mut st, KeyCode::Esc),
            send(false),
            "Esc goes back to the sessions"
        );
        // A poll with history is a snapshot then the history, in one update.
        st.handle(Input::Poller {
            event: PollerEvent::Polled {
                snapshot: Box::new(fixtures::snapshot()),
                history: Some(Box::new(fixtures::history())),
            },
            at: fixtures::now(),
        });
        assert!(st.history.is_some());
        assert_eq!(st.rows.len(), 12);
        assert_eq!(
            st.holdout_rows.len(),
            st.history.as_ref().map_or(0, |h| h.clients.len())
        );
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
