//! Everything the dashboard shows, and how inputs change it. No I/O and no clock: times arrive with events.

use std::time::Duration;

use chrono::{DateTime, Utc};
use crossterm::event::KeyEvent;

use super::columns::Column;
use super::components::act::{self, Confirm, SignalTarget, Status};
use super::components::alerts::{Alerts, Inputs as AlertInputs};
use super::components::certificates::Certificates;
use super::components::filter::FilterEditor;
use super::components::help::Help;
use super::components::holdouts::{HoldoutColumn, Holdouts};
use super::components::sessions::SessionsTable;
use super::components::whatif::WhatIfView;
use super::keymap::{self, Action, Scope};
use crate::analysis::after::{Lingering, Standing};
use crate::analysis::alerts::LinkHealth;
use crate::collect::act::SignalKind;
use crate::collect::poller::{History, PollerCommand, PollerEvent};
use crate::model::{ClassCounts, Session, Snapshot};

pub use super::components::alerts::probe_alerts;
pub use super::components::certificates::ProbeView;
pub use super::components::detail::Detail;
pub use super::components::sessions::{QuickView, Sort};

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
    /// A click on the n-th visible row of the table shown (0 = first row under the header).
    ClickRow(usize),
    /// A click on a column header of the sessions table: sort by it (again: reverse).
    ClickHeader(Column),
    /// The same on the Holdouts table.
    ClickHoldoutHeader(HoldoutColumn),
    /// A click on a tab.
    ClickTab(Screen),
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
    /// Back to the Servers screen: Esc with nothing left to close, in a dashboard opened from it.
    Leave,
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

#[derive(Debug, Clone)]
pub struct AppState {
    /// Where we are connected, for the header (never contains a password).
    pub target: String,
    pub link: Link,
    pub snapshot: Option<std::sync::Arc<Snapshot>>,
    /// Local time the latest snapshot arrived.
    pub updated_at: Option<DateTime<Utc>>,
    /// Local time of the latest event; alerts are stamped with it.
    pub now: DateTime<Utc>,
    pub interval: Duration,
    pub paused: bool,
    pub warnings: Vec<String>,
    /// Notes from start-up (a damaged ledger, an ignored .pgpass) that stay on screen.
    pub startup_warnings: Vec<String>,
    pub screen: Screen,
    /// The ledger and what-if, from the poller.
    pub history: Option<History>,
    /// Counts over the latest snapshot, made once when it arrives rather than on every frame.
    pub totals: Option<Totals>,
    // One component per screen or pane; each owns its state and handles its keys.
    pub filter: FilterEditor,
    pub sessions: SessionsTable,
    pub holdouts: Holdouts,
    pub whatif: WhatIfView,
    pub certificates: Certificates,
    /// The drill-down of one session, over the screens.
    pub detail: Option<Detail>,
    pub help: Help,
    pub alerts: Alerts,
    /// `z`: the top panes (server TLS, protocols, alerts) are hidden so the table gets their rows; kept across
    /// screens until pressed again.
    pub panes_hidden: bool,
    /// `--read-only` or `read_only = true`: `K` and `C` only say they are off.
    pub read_only: bool,
    /// The demo's psql connection lines, shown on `J`; empty for a server the user named.
    pub join: Vec<String>,
    /// The connection lines are on screen.
    pub join_open: bool,
    /// Opened from the Servers screen: Esc with nothing left to close goes back there.
    pub from_servers: bool,
    /// The confirmation asked for by `K` or `C`, over everything until answered.
    pub confirm: Option<Confirm>,
    /// The last word on an action (refusals included), in the footer until the next key.
    pub status: Option<Status>,
}

/// How far each pane on screen can scroll, measured by the views before a draw (`None`: not shown).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScrollLimits {
    pub help: Option<u16>,
    pub detail: Option<u16>,
    pub whatif: Option<u16>,
    /// The What-if's selected lingering row (its first wrapped line) and the report's visible height.
    pub whatif_pick: Option<(u16, u16)>,
    pub certificates: Option<u16>,
    /// The drill-down of a Holdouts client.
    pub client: Option<u16>,
    /// Every alert, full screen.
    pub alerts: Option<u16>,
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
        for tls in snapshot.clients().filter_map(|s| s.tls.as_ref()) {
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
            warnings: Vec::new(),
            startup_warnings: Vec::new(),
            screen: Screen::Sessions,
            history: None,
            totals: None,
            filter: FilterEditor::default(),
            sessions: SessionsTable::default(),
            holdouts: Holdouts::default(),
            whatif: WhatIfView::default(),
            certificates: Certificates::default(),
            detail: None,
            help: Help::default(),
            alerts: Alerts::default(),
            panes_hidden: false,
            read_only: false,
            join: Vec::new(),
            join_open: false,
            from_servers: false,
            confirm: None,
            status: None,
        }
    }

    /// Which key bindings apply now.
    pub fn scope(&self) -> Scope {
        if self.confirm.is_some() {
            Scope::Confirm
        } else if self.help.open || self.join_open {
            Scope::Help
        } else if self.filter.editing {
            Scope::FilterInput
        } else if self.alerts.full.is_some() {
            Scope::Alerts
        } else if self.detail.is_some() {
            Scope::Detail
        } else if self.client_drill_open() {
            Scope::ClientDetail
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
            // The confirmation waits for a key; the wheel moves nothing behind it.
            Input::ScrollUp | Input::ScrollDown if self.confirm.is_some() => Vec::new(),
            Input::ScrollUp => self.on_action(Action::Up),
            Input::ScrollDown => self.on_action(Action::Down),
            // Clicks act on the screen shown only, never on one hidden behind it.
            Input::ClickRow(_) | Input::ClickHeader(_) | Input::ClickHoldoutHeader(_) | Input::ClickTab(_)
                if self.covered() =>
            {
                Vec::new()
            }
            Input::ClickRow(n) => {
                match self.screen {
                    Screen::Sessions => self.sessions.click_row(self.snapshot.as_deref(), n),
                    Screen::Holdouts => self.holdouts.click_row(self.history.as_ref(), n, self.sessions.page),
                    Screen::WhatIf | Screen::Certificates => {}
                }
                Vec::new()
            }
            Input::ClickHeader(column) => {
                if self.screen == Screen::Sessions {
                    self.sessions.sort_by(column);
                    self.rebuild_rows();
                }
                Vec::new()
            }
            Input::ClickHoldoutHeader(column) => {
                if self.screen == Screen::Holdouts {
                    self.holdouts.sort_by(column);
                    self.rebuild_holdouts();
                }
                Vec::new()
            }
            Input::ClickTab(screen) => {
                let wanted = self.wants_history();
                let mut effects = self.show(screen);
                if self.wants_history() != wanted {
                    effects.push(Effect::Poller(PollerCommand::SendHistory(self.wants_history())));
                }
                effects
            }
            Input::Poller { event, at } => {
                self.now = at;
                self.on_poller(event)
            }
        }
    }

    fn on_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        let scope = self.scope();
        // A word on the last action stays until the user does something else.
        self.status = None;
        match keymap::lookup(scope, &key) {
            Some(action) => self.on_action(action),
            // Anything but `y` answers no: a stray key must never terminate a session.
            None if scope == Scope::Confirm => {
                if let Some(confirm) = self.confirm.take() {
                    self.status = Some(Status::ok(format!("pid {}: nothing done", confirm.request.pid)));
                }
                Vec::new()
            }
            None => {
                if scope == Scope::FilterInput && self.filter.type_key(&key) {
                    self.filter_changed();
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

    /// The Holdouts client drill-down is on screen.
    pub fn client_drill_open(&self) -> bool {
        self.screen == Screen::Holdouts && self.holdouts.drill.is_some()
    }

    /// Something over the screen's table (help, a drill-down, every alert): clicks must not reach the table.
    fn covered(&self) -> bool {
        self.confirm.is_some()
            || self.help.open
            || self.detail.is_some()
            || self.alerts.full.is_some()
            || self.client_drill_open()
    }

    /// Where a movement goes: the topmost pane that scrolls, else the current screen.
    fn move_by(&mut self, delta: isize) {
        if self.help.open {
            self.help.scroll.by(delta);
            return;
        }
        if let Some(scroll) = &mut self.alerts.full {
            scroll.by(delta);
            return;
        }
        if let Some(detail) = &mut self.detail {
            detail.scroll.by(delta);
            return;
        }
        if self.screen == Screen::Holdouts
            && let Some(drill) = &mut self.holdouts.drill
        {
            drill.scroll.by(delta);
            return;
        }
        match self.screen {
            Screen::Sessions => self.sessions.move_by(self.snapshot.as_deref(), delta),
            Screen::Holdouts => self.holdouts.move_by(self.history.as_ref(), delta, self.sessions.page),
            Screen::WhatIf => self.whatif.scroll.by(delta),
            Screen::Certificates => self.certificates.scroll.by(delta),
        }
    }

    fn act(&mut self, action: Action) -> Vec<Effect> {
        let page = self.sessions.page.max(1) as isize;
        if self.scope() == Scope::Holdouts
            && self
                .holdouts
                .act(action, self.history.as_ref(), &self.filter.text, self.sessions.page)
        {
            return Vec::new();
        }
        if self.scope() == Scope::WhatIf && matches!(action, Action::Up | Action::Down) {
            let mut view = self.whatif;
            if view.move_pick(self.lingering(), if action == Action::Up { -1 } else { 1 }) {
                self.whatif = view;
                return Vec::new();
            }
        }
        match action {
            Action::Quit => return vec![Effect::Quit],
            Action::Help => self.help.toggle(),
            Action::ShowJoin if self.join.is_empty() => {
                self.status = Some(Status::failed(
                    "J shows how to reach the demo's server; this dashboard watches a server you named".to_string(),
                ));
            }
            Action::ShowJoin => self.join_open = !self.join_open,
            Action::Up => self.move_by(-1),
            Action::Down => self.move_by(1),
            Action::PageUp => self.move_by(-page),
            Action::PageDown => self.move_by(page),
            Action::Top => self.move_by(isize::MIN / 2),
            Action::Bottom => self.move_by(isize::MAX / 2),
            Action::SortNext => {
                self.sessions.cycle_sort(1);
                self.rebuild_rows();
            }
            Action::SortPrev => {
                self.sessions.cycle_sort(-1);
                self.rebuild_rows();
            }
            Action::ToggleQuery => self.sessions.toggle_query(),
            Action::SortReverse => {
                self.sessions.reverse();
                self.rebuild_rows();
            }
            Action::StartFilter => self.filter.start(),
            Action::ClearFilter => {
                self.filter.clear();
                self.filter_changed();
            }
            Action::ApplyFilter => self.filter.apply(),
            Action::DeleteChar => {
                if self.filter.delete_char() {
                    self.filter_changed();
                }
            }
            Action::ViewAll => self.set_quick_view(QuickView::All),
            Action::ViewNoTls => self.set_quick_view(QuickView::NoTls),
            Action::ViewBelowTls13 => self.set_quick_view(QuickView::BelowTls13),
            Action::Open => {
                let session = if self.screen == Screen::WhatIf {
                    self.lingering_session()
                } else {
                    self.sessions.selected_session(self.snapshot.as_deref())
                };
                match session {
                    Some(session) => self.detail = Some(Detail::open(session)),
                    // No lingering session to open: Enter shows or hides the sources' details.
                    None if self.screen == Screen::WhatIf => {
                        self.whatif.sources_open = !self.whatif.sources_open;
                    }
                    None => {}
                }
            }
            Action::Back => return self.back(),
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
            Action::NextTarget => self.whatif.next_target(),
            Action::Probe => {
                if self.certificates.request(false) {
                    return vec![Effect::Poller(PollerCommand::Probe)];
                }
            }
            Action::ShowAlerts => self.alerts.toggle_full(),
            Action::TogglePanes => self.panes_hidden = !self.panes_hidden,
            Action::Terminate => self.ask_signal(SignalKind::Terminate, self.signal_target()),
            Action::CancelQuery => self.ask_signal(SignalKind::Cancel, self.signal_target()),
            Action::Confirm => {
                if let Some(confirm) = self.confirm.take() {
                    self.status = Some(act::under_way(&confirm.request));
                    return vec![Effect::Poller(PollerCommand::Signal(confirm.request))];
                }
            }
        }
        Vec::new()
    }

    /// The session `K` and `C` act on: the one in the detail view, else the table's selection. A Holdouts client
    /// is not one session, so there is none there.
    fn signal_target(&self) -> Option<SignalTarget> {
        match &self.detail {
            Some(detail) if detail.ended_at.is_none() => Some(SignalTarget::of(&detail.session)),
            Some(_) => None,
            None if self.screen == Screen::Sessions => self.selected_session().map(SignalTarget::of),
            None if self.screen == Screen::WhatIf => self.lingering_session().map(SignalTarget::of),
            None => None,
        }
    }

    /// The lingering sessions of the after-change report shown on the What-if screen; empty before the change is
    /// in force.
    pub fn lingering(&self) -> &[Lingering] {
        let target = self.whatif.target;
        self.history
            .as_ref()
            .and_then(|h| h.after.iter().filter_map(Standing::report).find(|r| r.target == target))
            .map_or(&[], |r| r.lingering.as_slice())
    }

    /// The snapshot's session behind the selected lingering entry: the same pid and start time, so a reused pid
    /// is never taken for it.
    fn lingering_session(&self) -> Option<&Session> {
        let picked = self.whatif.selected(self.lingering())?;
        self.snapshot
            .as_ref()?
            .sessions
            .iter()
            .find(|s| s.pid == picked.pid && s.backend_start == Some(picked.backend_start))
    }

    /// Ask to confirm `kind` on `target`, or say why not. Any list of sessions (the lingering ones too) calls this
    /// with its own selection.
    pub fn ask_signal(&mut self, kind: SignalKind, target: Option<SignalTarget>) {
        match act::ask(kind, target, self.read_only) {
            Ok(confirm) => self.confirm = Some(confirm),
            Err(status) => self.status = Some(status),
        }
    }

    /// Esc: close the topmost thing, else undo the narrowing, else go back to the sessions, else (opened from the
    /// Servers screen) back there.
    fn back(&mut self) -> Vec<Effect> {
        if self.join_open {
            self.join_open = false;
        } else if self.help.open {
            self.help.close();
        } else if self.alerts.full.is_some() {
            self.alerts.full = None;
        } else if self.detail.is_some() {
            self.detail = None;
        } else if self.client_drill_open() {
            // The table comes back with the same client selected.
            self.holdouts.drill = None;
        } else if self.screen != Screen::Sessions && !self.filter.is_empty() {
            self.filter.clear();
            self.filter_changed();
        } else if self.screen != Screen::Sessions {
            self.screen = Screen::Sessions;
        } else if !self.filter.is_empty() || self.sessions.quick_view != QuickView::All {
            self.filter.clear();
            self.sessions.quick_view = QuickView::All;
            self.rebuild_rows();
        } else if self.from_servers {
            return vec![Effect::Leave];
        }
        Vec::new()
    }

    fn filter_changed(&mut self) {
        self.rebuild_rows();
        self.rebuild_holdouts();
    }

    fn on_poller(&mut self, event: PollerEvent) -> Vec<Effect> {
        match event {
            PollerEvent::Polled { snapshot, history } => {
                let mut effects = self.on_poller(PollerEvent::Snapshot(snapshot));
                if let Some(history) = history {
                    effects.extend(self.on_poller(PollerEvent::History(history)));
                    effects.dedup();
                }
                return effects;
            }
            PollerEvent::History(history) => {
                self.history = Some(*history);
                self.rebuild_holdouts();
                // Once a target is in force, its refused, downgraded and lingering clients are alerts: evaluated
                // with this history, not a poll later.
            }
            PollerEvent::ForgedLogLines { total, latest } => {
                self.alerts.forged_log_lines = Some((total, *latest));
            }
            PollerEvent::Probe(result) => self.certificates.finished(result),
            PollerEvent::Signalled { request, outcome } => {
                self.status = Some(act::outcome(&request, &outcome));
                return Vec::new();
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
                self.snapshot = Some(snapshot);
                self.rebuild_rows();
                if let (Some(detail), Some(snap)) = (&mut self.detail, &self.snapshot) {
                    detail.refresh(snap);
                }
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
        let link = match &self.link {
            Link::Lost { since, error, retry_at } => LinkHealth::Lost {
                since: *since,
                error: error.clone(),
                retry_at: *retry_at,
            },
            _ => LinkHealth::Up,
        };
        let probe = match &self.certificates.probe {
            ProbeView::Done(report) => Some(report.as_ref()),
            _ => None,
        };
        let bell = self.alerts.update(AlertInputs {
            snapshot: self.snapshot.as_deref(),
            link,
            probe,
            after: self.history.as_ref().map_or(&[], |h| h.after.as_slice()),
            pooler_after: self.history.as_ref().map_or(&[], |h| h.pooler_after.as_slice()),
            now: self.now,
        });
        if bell { vec![Effect::Bell] } else { Vec::new() }
    }

    /// Switch screens; the certificate probe runs the first time its screen opens.
    fn show(&mut self, screen: Screen) -> Vec<Effect> {
        self.detail = None;
        self.holdouts.drill = None;
        self.alerts.full = None;
        self.screen = screen;
        self.whatif.scroll.reset();
        self.certificates.scroll.reset();
        if screen == Screen::Certificates && self.certificates.request(true) {
            return vec![Effect::Poller(PollerCommand::Probe)];
        }
        Vec::new()
    }

    fn set_quick_view(&mut self, view: QuickView) {
        self.sessions.quick_view = view;
        self.rebuild_rows();
    }

    /// The ledger's clients in the Holdouts table, with the filter.
    pub fn rebuild_holdouts(&mut self) {
        self.holdouts
            .rebuild(self.history.as_ref(), &self.filter.text, self.sessions.page);
    }

    /// Filter, quick view and sort applied to the latest snapshot; keeps the selection on its pid.
    pub fn rebuild_rows(&mut self) {
        self.sessions.rebuild(self.snapshot.as_deref(), &self.filter.text);
    }

    /// Position of the selection among the visible rows.
    pub fn selected_index(&self) -> Option<usize> {
        self.sessions.selected_index(self.snapshot.as_deref())
    }

    pub fn selected_session(&self) -> Option<&Session> {
        self.sessions.selected_session(self.snapshot.as_deref())
    }

    /// The sessions in table order.
    pub fn visible_sessions(&self) -> impl Iterator<Item = &Session> {
        self.sessions.visible(self.snapshot.as_deref())
    }

    /// The app calls this before drawing (see `view::prepare`): scroll offsets stay within the content.
    pub fn set_scroll_limits(&mut self, limits: ScrollLimits) {
        if let Some(max) = limits.help {
            self.help.scroll.set_max(max);
        }
        if let (Some(max), Some(detail)) = (limits.detail, &mut self.detail) {
            detail.scroll.set_max(max);
        }
        if let Some(max) = limits.whatif {
            self.whatif.scroll.set_max(max);
        }
        if let Some((row, height)) = limits.whatif_pick.filter(|_| self.whatif.reveal) {
            self.whatif.scroll.reveal(row, height);
            self.whatif.reveal = false;
        }
        if let Some(max) = limits.certificates {
            self.certificates.scroll.set_max(max);
        }
        if let (Some(max), Some(drill)) = (limits.client, &mut self.holdouts.drill) {
            drill.scroll.set_max(max);
        }
        if let (Some(max), Some(scroll)) = (limits.alerts, &mut self.alerts.full) {
            scroll.set_max(max);
        }
    }

    /// The app calls this with the table's visible height before drawing.
    pub fn set_page(&mut self, rows: usize) {
        self.sessions.set_page(self.snapshot.as_deref(), rows);
    }

    /// Matches among the rows of the table shown (after the quick view), for the "3 of 12" count; pgtls's own
    /// session rows are listed but not counted, as everywhere else.
    pub fn filter_counts(&self) -> (usize, usize) {
        if self.screen == Screen::Holdouts {
            let total = self.history.as_ref().map_or(0, |h| h.clients.len());
            return (self.holdouts.rows.len(), total);
        }
        let total = self.totals.as_ref().map_or(0, |t| t.classes.total());
        let shown = self.visible_sessions().filter(|s| !s.monitor).count();
        (shown, total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::act::SignalKind;
    use crate::fixtures;
    use crate::tui::columns::Column;
    use crossterm::event::{KeyCode, KeyModifiers};

    fn state_with(snapshot: Snapshot) -> AppState {
        let mut st = AppState::new("db:5432".into(), Duration::from_secs(2), fixtures::now());
        st.handle(Input::Poller {
            event: PollerEvent::Snapshot(std::sync::Arc::new(snapshot)),
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
        assert_eq!(st.sessions.selected_pid, Some(4150));
    }

    #[test]
    fn sorting_cycles_columns_and_reverses() {
        let mut st = state_with(fixtures::snapshot());
        press(&mut st, KeyCode::Char('s'));
        assert_eq!(st.sessions.sort.column, Column::Cipher);
        for _ in 0..8 {
            press(&mut st, KeyCode::Char('S'));
        }
        assert_eq!(st.sessions.sort.column, Column::Pid);
        let ascending = pids(&st);
        assert!(ascending.windows(2).all(|w| w[0] < w[1]));
        press(&mut st, KeyCode::Char('i'));
        assert!(st.sessions.sort.descending);
        let descending = pids(&st);
        assert_eq!(descending, ascending.iter().rev().copied().collect::<Vec<_>>());
        // Sorting by application keeps pid order among equal names (stable).
        for _ in 0..3 {
            press(&mut st, KeyCode::Char('s'));
        }
        press(&mut st, KeyCode::Char('i'));
        assert_eq!(
            st.sessions.sort,
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
        let chosen = st.sessions.selected_pid.unwrap();
        assert_eq!(chosen, 4131);
        press(&mut st, KeyCode::Char('i'));
        assert_eq!(st.sessions.selected_pid, Some(chosen), "reverse keeps the selection");
        assert_ne!(st.selected_index(), Some(2));
        // A refresh where another session disappears keeps the pid.
        let mut next = fixtures::snapshot();
        next.sessions.retain(|s| s.pid != 4150);
        st.handle(Input::Poller {
            event: PollerEvent::Snapshot(std::sync::Arc::new(next)),
            at: fixtures::now(),
        });
        assert_eq!(st.sessions.selected_pid, Some(chosen));
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
        assert_eq!(st.filter_counts(), (2, 11), "pgtls's own row is not counted");
        press(&mut st, KeyCode::Char('q'));
        assert_eq!(st.filter.text, "BILLq", "q is text while typing");
        press(&mut st, KeyCode::Backspace);
        press(&mut st, KeyCode::Enter);
        assert_eq!(st.scope(), Scope::Table);
        assert_eq!(st.filter.text, "BILL");
        press(&mut st, KeyCode::Esc);
        assert!(st.filter.text.is_empty());
        assert_eq!(st.sessions.rows.len(), 12);
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
        assert_eq!(st.sessions.rows.len(), 12);
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
            event: PollerEvent::Snapshot(std::sync::Arc::new(next.clone())),
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
        assert_eq!(st.sessions.offset, 1);
        press(&mut st, KeyCode::End);
        assert_eq!(st.selected_index(), Some(99));
        assert_eq!(st.sessions.offset, 90);
        st.handle(Input::ClickRow(3));
        assert_eq!(st.selected_index(), Some(93));
        press(&mut st, KeyCode::Home);
        assert_eq!((st.selected_index(), st.sessions.offset), (Some(0), 0));
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
                snapshot: std::sync::Arc::new(fixtures::snapshot()),
                history: Some(Box::new(fixtures::history())),
            },
            at: fixtures::now(),
        });
        assert!(st.history.is_some());
        assert_eq!(st.sessions.rows.len(), 12);
        assert_eq!(
            st.holdouts.rows.len(),
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
                    error: crate::collect::CollectError::poll("connection to the server was lost"),
                    at: t0 + chrono::Duration::seconds(*secs),
                    retry_in: Duration::from_secs(1 << i),
                },
                at: t0 + chrono::Duration::seconds(*secs),
            });
        }
        assert!(matches!(st.link, Link::Lost { since, .. } if since == t0));
        assert!(st.alerts.log.active().any(|a| a.alert.key == "connection_lost"));
        assert!(st.snapshot.is_some(), "last data stays on screen");
    }

    fn select_pid(st: &mut AppState, pid: i32) {
        press(st, KeyCode::Home);
        while st.sessions.selected_pid != Some(pid) {
            press(st, KeyCode::Down);
            assert!(
                st.selected_index().is_some_and(|i| i < 20),
                "pid {pid} not in the table"
            );
        }
    }

    fn signal(kind: SignalKind, pid: i32) -> PollerCommand {
        let start = fixtures::snapshot()
            .sessions
            .iter()
            .find(|s| s.pid == pid)
            .and_then(|s| s.backend_start)
            .unwrap();
        PollerCommand::Signal(crate::collect::act::SignalRequest {
            kind,
            pid,
            backend_start: start,
        })
    }

    #[test]
    fn k_then_y_terminates_the_selected_session_by_pid_and_start_time() {
        let mut st = state_with(fixtures::snapshot());
        select_pid(&mut st, 4131);
        assert!(
            press(&mut st, KeyCode::Char('K')).is_empty(),
            "nothing is sent before the answer"
        );
        let confirm = st.confirm.as_ref().unwrap();
        assert_eq!(st.scope(), Scope::Confirm);
        assert_eq!((confirm.target.pid, confirm.target.user.as_str()), (4131, "billing"));
        assert_eq!(
            press(&mut st, KeyCode::Char('y')),
            vec![Effect::Poller(signal(SignalKind::Terminate, 4131))]
        );
        assert!(st.confirm.is_none());
        assert!(st.status.as_ref().unwrap().text.contains("terminating pid 4131"));
        // The answer comes back as an event and is said in the footer.
        st.handle(Input::Poller {
            event: PollerEvent::Signalled {
                request: crate::collect::act::SignalRequest {
                    kind: SignalKind::Terminate,
                    pid: 4131,
                    backend_start: fixtures::now(),
                },
                outcome: crate::collect::act::SignalOutcome::Refused("permission denied to terminate process".into()),
            },
            at: fixtures::now(),
        });
        let status = st.status.as_ref().unwrap();
        assert!(status.failed && status.text.contains("permission denied"), "{status:?}");
    }

    #[test]
    fn c_in_the_detail_view_cancels_that_session() {
        let mut st = state_with(fixtures::snapshot());
        select_pid(&mut st, 4157);
        press(&mut st, KeyCode::Enter);
        assert_eq!(st.scope(), Scope::Detail);
        press(&mut st, KeyCode::Char('C'));
        assert_eq!(
            press(&mut st, KeyCode::Char('y')),
            vec![Effect::Poller(signal(SignalKind::Cancel, 4157))]
        );
        assert_eq!(st.scope(), Scope::Detail, "the detail view stays");
    }

    #[test]
    fn any_key_but_y_answers_no() {
        for key in [
            KeyCode::Char('n'),
            KeyCode::Esc,
            KeyCode::Enter,
            KeyCode::Char('q'),
            KeyCode::Char('Y'),
        ] {
            let mut st = state_with(fixtures::snapshot());
            press(&mut st, KeyCode::Char('K'));
            assert!(st.confirm.is_some());
            assert!(
                press(&mut st, key).is_empty(),
                "{key:?} sends nothing and does not quit"
            );
            assert!(st.confirm.is_none(), "{key:?}");
            assert!(st.status.as_ref().unwrap().text.contains("nothing done"));
            assert_eq!(st.scope(), Scope::Table);
        }
    }

    #[test]
    fn pgtls_never_signals_its_own_connection() {
        let mut st = state_with(fixtures::snapshot());
        select_pid(&mut st, 4101);
        assert!(st.selected_session().unwrap().monitor);
        for key in ['K', 'C'] {
            assert!(press(&mut st, KeyCode::Char(key)).is_empty());
            assert!(st.confirm.is_none());
            assert!(st.status.as_ref().unwrap().text.contains("pgtls's own connection"));
        }
    }

    #[test]
    fn read_only_refuses_with_a_message() {
        let mut st = state_with(fixtures::snapshot());
        st.read_only = true;
        for key in ['K', 'C'] {
            assert!(press(&mut st, KeyCode::Char(key)).is_empty());
            assert!(st.confirm.is_none());
            let status = st.status.as_ref().unwrap();
            assert!(status.failed && status.text.contains("read-only"), "{status:?}");
        }
        // The message goes with the next key.
        press(&mut st, KeyCode::Down);
        assert!(st.status.is_none());
    }

    #[test]
    fn the_lingering_list_picks_opens_and_signals_by_pid_and_start_time() {
        let mut st = state_with(fixtures::snapshot_after());
        st.handle(Input::Poller {
            event: PollerEvent::History(Box::new(fixtures::history_after())),
            at: fixtures::now(),
        });
        press(&mut st, KeyCode::Char('w'));
        assert_eq!(st.scope(), Scope::WhatIf);
        let lingering: Vec<(i32, DateTime<Utc>)> = st.lingering().iter().map(|l| (l.pid, l.backend_start)).collect();
        assert!(lingering.len() >= 2, "{lingering:?}");
        assert_eq!(st.whatif.selected(st.lingering()).map(|l| l.pid), Some(lingering[0].0));
        press(&mut st, KeyCode::Down);
        let (pid, start) = lingering[1];
        assert_eq!(st.whatif.selected(st.lingering()).map(|l| l.pid), Some(pid));
        assert!(st.whatif.reveal, "the next draw scrolls the pick into view");

        press(&mut st, KeyCode::Char('K'));
        let confirm = st.confirm.as_ref().expect("asks first");
        assert_eq!((confirm.target.pid, confirm.target.backend_start), (pid, Some(start)));
        assert_eq!(
            press(&mut st, KeyCode::Char('y')),
            vec![Effect::Poller(PollerCommand::Signal(
                crate::collect::act::SignalRequest {
                    kind: SignalKind::Terminate,
                    pid,
                    backend_start: start,
                }
            ))]
        );

        press(&mut st, KeyCode::Enter);
        assert_eq!(
            st.detail.as_ref().map(|d| d.session.pid),
            Some(pid),
            "Enter opens the picked session"
        );
        press(&mut st, KeyCode::Esc);

        st.read_only = true;
        press(&mut st, KeyCode::Char('C'));
        assert!(st.confirm.is_none());
        assert!(
            st.status
                .as_ref()
                .is_some_and(|s| s.failed && s.text.contains("read-only"))
        );
    }
}
