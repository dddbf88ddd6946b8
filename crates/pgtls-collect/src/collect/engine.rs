//! One watched server, for `serve` and the dashboard's Servers screen alike: the poller (collector + history
//! service) with its own connection, ledger, log source and probe schedule, and a task that keeps the latest of
//! everything it reports. Targets never wait on each other: each has its own tasks, and readers only read memory.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::analysis::ledger::lock::StateDirLock;
use crate::analysis::ledger::{Journal, KeyFields, Ledger, OpenError};
use crate::collect::history::Detail;
use crate::collect::poller::{self, History, HistorySetup, PollerCommand, PollerEvent};
use crate::conn::params::{ConnParams, Environment, resolve};
use crate::model::Snapshot;
use crate::probe::{ProbeReport, ProbeTarget};
use crate::targets::{TargetEntry, default_name, file_stem};

/// What every target's engine shares.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    pub interval: Duration,
    pub poll_timeout: Option<Duration>,
    /// Where ledgers go when a target names none: `<dir>/<file stem of the name>.ledger`.
    pub state_dir: Option<PathBuf>,
    /// The state directory's lock, held by the process for as long as it runs: it covers every ledger in it.
    pub state_dir_lock: Option<Arc<StateDirLock>>,
    pub key_fields: KeyFields,
    pub min_evidence: chrono::Duration,
    pub expiry_warn_days: i64,
    /// How often the certificate probe runs (it opens about ten connections, each failed one logged).
    pub probe_every: Duration,
    /// Say what happens to each target on stderr (`serve`, a daemon); a dashboard shows it on screen instead.
    pub log_to_stderr: bool,
}

/// The latest of what one target reported; read by `/metrics` and the JSON API.
#[derive(Debug, Clone, Default)]
pub struct TargetState {
    pub name: String,
    /// The connection string with the password masked.
    pub conninfo: String,
    pub up: bool,
    /// Why the last connect or poll failed (server text: escape before showing).
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    pub last_poll: Option<DateTime<Utc>>,
    /// The poll's snapshot, shared with the history service (one copy per target).
    pub snapshot: Option<Arc<Snapshot>>,
    pub history: Option<Box<History>>,
    pub probe: Option<Box<ProbeReport>>,
    pub probe_error: Option<String>,
    pub polls: u64,
    pub failures: u64,
    pub ledger_file: Option<PathBuf>,
    /// Why the engine could not start (it is tried again); `None` once it runs.
    pub start_error: Option<String>,
    /// The ledger file is not being written (said once on stderr when it starts and when it ends).
    pub ledger_failing: bool,
}

impl TargetState {
    /// Every source of this target and its state: the poll, each pooler, the connection log, the ledger file.
    pub fn sources(&self) -> Vec<crate::analysis::sources::SourceState> {
        let history = self.history.as_deref().map(|h| h.status.clone()).unwrap_or_default();
        crate::analysis::sources::of_target_with(
            self.up,
            self.last_error.as_deref(),
            self.snapshot.as_deref(),
            &history,
        )
    }
}

/// Shared with the endpoints. A poisoned lock (a panic while updating) still holds the last good data.
#[derive(Debug, Clone, Default)]
pub struct SharedState(Arc<Mutex<TargetState>>);

impl From<TargetState> for SharedState {
    fn from(state: TargetState) -> Self {
        SharedState(Arc::new(Mutex::new(state)))
    }
}

impl SharedState {
    pub fn lock(&self) -> MutexGuard<'_, TargetState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running target. Dropping it stops its tasks.
pub struct Engine {
    pub entry: TargetEntry,
    pub name: String,
    pub state: SharedState,
    /// The task that applies the poller's events to `state`; it owns the poller. Checked by the fleet.
    pub task: JoinHandle<()>,
    /// Commands for the poller (refresh, probe, signal), from a dashboard opened on this target.
    pub commands: mpsc::UnboundedSender<PollerCommand>,
    /// Requests for every client's record (the state keeps the history without them: [`Detail::Fleet`]).
    clients: mpsc::UnboundedSender<ClientsReply>,
    subscriber: Subscriber,
}

type ClientsReply = tokio::sync::oneshot::Sender<Vec<crate::analysis::ledger::ClientRecord>>;

/// Why a target's client records could not be had.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClientsError {
    #[error("the target is not running (it could not start, or it is restarting)")]
    NotRunning,
    #[error("the target's history service is busy; try again")]
    Busy,
}

/// Where the poller's events also go while a dashboard is open on the target.
type Subscriber = Arc<Mutex<Option<mpsc::Sender<PollerEvent>>>>;

impl Engine {
    /// Every event from now on, as the single-server dashboard receives them, until [`Engine::unsubscribe`].
    pub fn subscribe(&self) -> mpsc::Receiver<PollerEvent> {
        let (tx, rx) = mpsc::channel(64);
        *self.subscriber.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
        // Its Holdouts and What-if screens show every client and the trend.
        let _ = self.commands.send(PollerCommand::HistoryDetail(Detail::Full));
        rx
    }

    pub fn unsubscribe(&self) {
        *self.subscriber.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let _ = self.commands.send(PollerCommand::HistoryDetail(Detail::Fleet));
    }

    /// Every client's record now, from the target's ledger (not kept in [`TargetState`]).
    pub fn clients_request(&self) -> ClientsRequest {
        ClientsRequest(self.clients.clone())
    }
}

/// A request for a target's client records, made without holding the fleet's lock while it is answered.
pub struct ClientsRequest(mpsc::UnboundedSender<ClientsReply>);

/// How long a reader waits for the ledger's answer: the history service answers between two bounded steps of work
/// (a poll's fold, one budget of log), so only a target still starting (waiting for its ledger file) takes longer.
const CLIENTS_WAIT: Duration = Duration::from_secs(10);

impl ClientsRequest {
    pub async fn answer(self) -> Result<Vec<crate::analysis::ledger::ClientRecord>, ClientsError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.0.send(reply).map_err(|_| ClientsError::NotRunning)?;
        match tokio::time::timeout(CLIENTS_WAIT, answer).await {
            Ok(Ok(records)) => Ok(records),
            Ok(Err(_)) | Err(_) => Err(ClientsError::Busy),
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The name a target goes by: its entry's, else `host:port/dbname` from its resolved connection string.
pub fn name_of(entry: &TargetEntry, params: &ConnParams) -> String {
    entry.name.clone().unwrap_or_else(|| default_name(params))
}

pub fn resolve_entry(entry: &TargetEntry, env: &Environment) -> Result<ConnParams, crate::conn::ConnInfoError> {
    resolve(Some(&entry.conninfo), env)
}

/// What keeps a target from starting; it is retried.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Its `pgbouncer`/`pgbouncer_log` lists (checked when planned: a file gone since).
    #[error(transparent)]
    Poolers(#[from] crate::collect::pooler::PoolerSetupError),
    /// Its ledger could not be opened (held past the ten seconds a successor waits, or the file is wrong).
    #[error(transparent)]
    Ledger(#[from] OpenError),
}

/// How long a target's engine waits for its ledger to be released by the engine it replaces (which stops within
/// milliseconds of being dropped), or by another process, before it reports the failure and is retried.
const LEDGER_WAIT: Duration = Duration::from_secs(10);
const LEDGER_RETRY: Duration = Duration::from_millis(50);

/// Start watching one target, with a fresh state.
pub fn start(entry: TargetEntry, params: ConnParams, name: String, options: &EngineOptions) -> Engine {
    start_with(entry, params, name, options, SharedState::default())
}

/// Start watching one target, reporting into `state` (a restart keeps its counters and its last error). Never
/// fails here: what keeps the target from starting (a ledger held elsewhere, a file gone) is in its state, with
/// `up` false, and [`crate::collect::fleet::Fleet::check_tasks`] tries again.
pub fn start_with(
    entry: TargetEntry,
    params: ConnParams,
    name: String,
    options: &EngineOptions,
    state: SharedState,
) -> Engine {
    {
        let mut s = state.lock();
        s.name = name.clone();
        s.conninfo = params.display_masked();
        s.up = false;
    }
    let (commands, commands_rx) = mpsc::unbounded_channel();
    let (clients, clients_rx) = mpsc::unbounded_channel();
    let subscriber = Subscriber::default();
    let log = Log {
        on: options.log_to_stderr,
        name: name.clone(),
    };
    let task = tokio::spawn(run(
        entry.clone(),
        params,
        options.clone(),
        state.clone(),
        Arc::clone(&subscriber),
        Requests {
            commands: commands_rx,
            clients: clients_rx,
        },
        log,
    ));
    Engine {
        entry,
        name,
        state,
        task,
        commands,
        clients,
        subscriber,
    }
}

/// Open the ledger (waiting for a predecessor to let go of it), start the poller and keep `state` up to date.
async fn run(
    entry: TargetEntry,
    params: ConnParams,
    options: EngineOptions,
    state: SharedState,
    subscriber: Subscriber,
    requests: Requests,
    log: Log,
) {
    let (setup, poolers) = match prepare(&entry, &params, &options, &state, &log).await {
        Ok(ready) => ready,
        Err(e) => {
            let reason = e.to_string();
            let mut s = state.lock();
            // Said once, not at every retry.
            if s.start_error.as_deref() != Some(reason.as_str()) {
                log.say(&format!("cannot start: {reason}; retrying"));
            }
            s.up = false;
            s.last_error = Some(reason.clone());
            s.last_error_at = Some(Utc::now());
            s.start_error = Some(reason);
            return;
        }
    };
    {
        let mut s = state.lock();
        if s.start_error.take().is_some() {
            log.say("started");
            s.last_error = None;
        }
    }
    let (events_tx, events) = mpsc::channel(16);
    let phase = phase_of(&log.name, options.interval);
    let handle = poller::spawn_with_poolers(params, poolers, options.interval, phase, setup, events_tx);
    // A dashboard may have opened the target before its poller started.
    let open = subscriber.lock().unwrap_or_else(|e| e.into_inner()).is_some();
    let detail = if open { Detail::Full } else { Detail::Fleet };
    let _ = handle.commands.send(PollerCommand::HistoryDetail(detail));
    let _ = handle.commands.send(PollerCommand::SendHistory(true));
    apply_events(handle, events, requests, state, subscriber, options.probe_every, log).await;
}

/// Where in the interval a target polls, from its name: the same at every start, spread over the interval across
/// targets (see [`poller::spawn_with_poolers`]).
fn phase_of(name: &str, interval: Duration) -> Duration {
    let spread = interval.as_millis().max(1);
    Duration::from_millis(u64::try_from(u128::from(crate::targets::stable_hash(name)) % spread).unwrap_or(0))
}

/// What readers of the engine ask its poller.
struct Requests {
    commands: mpsc::UnboundedReceiver<PollerCommand>,
    clients: mpsc::UnboundedReceiver<ClientsReply>,
}

/// The poolers and the history side of one target: what can keep it from starting.
async fn prepare(
    entry: &TargetEntry,
    params: &ConnParams,
    options: &EngineOptions,
    state: &SharedState,
    log: &Log,
) -> Result<(HistorySetup, crate::collect::pooler::Poolers), StartError> {
    // The poolers in front of this server (`pgbouncer = [...]`), polled with it; checked when planned, so an
    // error here is a file gone since.
    let poolers = crate::collect::pooler::Poolers::resolve(&entry.pgbouncer, &Environment::from_process())
        .and_then(|p| p.with_logs(&entry.pgbouncer_log))?;
    let mut ledger = Ledger::new(options.key_fields);
    let name = state.lock().name.clone();
    let ledger_file = entry.ledger.clone().or_else(|| {
        options
            .state_dir
            .as_ref()
            .map(|d| d.join(format!("{}.ledger", file_stem(&name))))
    });
    let mut ledger_off = None;
    let journal = match &ledger_file {
        Some(path) => match open_ledger(path, &mut ledger, options).await {
            Ok((journal, report)) => {
                if let Some(note) = report.message(path) {
                    log.say(&note);
                }
                Some(journal)
            }
            // Held by another writer: waited for and retried, as the file is someone's.
            Err(e @ OpenError::Lock(_)) => return Err(e.into()),
            // A file that cannot be opened or read here (a full disk, a directory, a newer format): this target
            // runs without a ledger and says so; the fleet's other targets are not held up by it.
            Err(OpenError::File(e)) => {
                log.say(&format!("{e}; running without a ledger"));
                ledger = Ledger::new(options.key_fields);
                ledger_off = Some(e.to_string());
                None
            }
        },
        None => None,
    };
    state.lock().ledger_file = ledger_file.clone();
    let setup = HistorySetup {
        ledger,
        journal,
        ledger_file: ledger_file.as_ref().map(|p| p.display().to_string()),
        server_log: entry.server_log.clone(),
        pooler_logs: poolers.logs().to_vec(),
        log_from_start: true,
        min_evidence: options.min_evidence,
        probe: ProbeTarget::from_params(params, options.expiry_warn_days, false).map(|mut t| {
            // Each target's own client bundles, judged against the chain it presents on every probe.
            t.bundles = entry.bundles.clone();
            t.chain_at_connect = true;
            t
        }),
        log_budget: None,
        poll_timeout: options.poll_timeout,
        since: None,
        ledger_off,
    };
    Ok((setup, poolers))
}

/// Open a target's journal; a ledger still held (by the engine this one replaces, whose tasks are ending, or by
/// another process) is waited for up to [`LEDGER_WAIT`].
async fn open_ledger(
    path: &std::path::Path,
    ledger: &mut Ledger,
    options: &EngineOptions,
) -> Result<(Journal, crate::analysis::ledger::LoadReport), OpenError> {
    let deadline = tokio::time::Instant::now() + LEDGER_WAIT;
    loop {
        let mut fresh = Ledger::new(options.key_fields);
        match Journal::open_with(path, &mut fresh, options.state_dir_lock.as_deref()) {
            Ok(opened) => {
                *ledger = fresh;
                return Ok(opened);
            }
            Err(OpenError::Lock(_)) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(LEDGER_RETRY).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Keep `state` up to date with the poller's events, and ask for a probe now and then. Owns the poller, so it
/// stops with this task.
async fn apply_events(
    handle: poller::PollerHandle,
    mut events: mpsc::Receiver<PollerEvent>,
    mut requests: Requests,
    state: SharedState,
    subscriber: Subscriber,
    probe_every: Duration,
    log: Log,
) {
    // The chain is read from the monitor's own handshake when it connects (see `poller::read_chain`); the full
    // probe (about ten TLS handshakes, each failed one a server log line) waits for the first polls, so a dead
    // server is not probed before it is reported, and targets started together spread their full probes over the
    // whole probe interval, so a fleet's start (every deploy, every SIGHUP) is not one burst for its servers.
    let jitter = phase_of(&log.name, probe_every);
    let mut probe_timer = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs(3) + jitter,
        probe_every,
    );
    probe_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { return };
                let open = subscriber.lock().unwrap_or_else(|e| e.into_inner()).clone();
                if let Some(dashboard) = open {
                    // The dashboard drains its channel between draws; a full one means it is gone or stuck, and
                    // the next poll brings a fresh snapshot anyway.
                    let _ = dashboard.try_send(event.clone());
                }
                apply(&state, event, &log);
            }
            _ = probe_timer.tick() => {
                let _ = handle.commands.send(PollerCommand::Probe);
            }
            // From a dashboard opened on this target; the engine outlives any poller start-up wait.
            Some(command) = requests.commands.recv() => {
                let _ = handle.commands.send(command);
            }
            // Never waits on a history service that is behind: the reader is told to try again instead.
            Some(reply) = requests.clients.recv() => {
                let _ = handle.history.try_send(crate::collect::history::HistoryInput::Clients(reply));
            }
        }
    }
}

fn apply(state: &SharedState, event: PollerEvent, log: &Log) {
    let mut s = state.lock();
    match event {
        PollerEvent::Connected { warnings } => {
            for w in warnings {
                log.say(&w);
            }
        }
        PollerEvent::Snapshot(snapshot) => take_snapshot(&mut s, snapshot, log),
        PollerEvent::History(history) => take_history(&mut s, history, log),
        PollerEvent::Polled { snapshot, history } => {
            take_snapshot(&mut s, snapshot, log);
            if let Some(history) = history {
                take_history(&mut s, history, log);
            }
        }
        PollerEvent::ForgedLogLines { total, .. } => {
            log.say(&format!("{total} forged connection line(s) in the server log refused"));
        }
        PollerEvent::Probe(Ok(report)) => {
            s.probe = Some(report);
            s.probe_error = None;
        }
        PollerEvent::Probe(Err(e)) => s.probe_error = Some(e.to_string()),
        PollerEvent::TaskFailed { task, error } => {
            log.say(&format!("the {task} stopped: {error}"));
            s.last_error = Some(format!("the {task} stopped: {error}"));
            s.last_error_at = Some(Utc::now());
        }
        PollerEvent::Signalled { .. } => {}
        PollerEvent::Failed { error, at, .. } => {
            let text = error.to_string();
            // Said once per outage, not on every retry.
            if s.up || s.last_error.as_deref() != Some(text.as_str()) {
                log.say(&text);
            }
            s.up = false;
            s.failures += 1;
            s.last_error = Some(text);
            s.last_error_at = Some(at);
        }
    }
}

/// Keep the history; say on stderr once when the ledger file stops being written, and once when it is again.
fn take_history(s: &mut TargetState, history: Box<History>, log: &Log) {
    use crate::analysis::sources::SourceStatus;
    // A ledger that could not be opened was said at the start; this is about writes that fail.
    let failing = match &history.status.ledger {
        Some(SourceStatus::Off { reason }) if history.ledger_write_errors > 0 => Some(reason.clone()),
        _ => None,
    };
    match (&failing, s.ledger_failing) {
        (Some(reason), false) => log.say(&format!("ledger not written: {reason}")),
        (None, true) => log.say("ledger written again, whole, from memory"),
        _ => {}
    }
    s.ledger_failing = failing.is_some();
    s.history = Some(history);
}

fn take_snapshot(s: &mut TargetState, snapshot: Arc<Snapshot>, log: &Log) {
    if !s.up && s.polls > 0 {
        log.say("back up");
    }
    s.up = true;
    s.polls += 1;
    s.last_poll = Some(snapshot.taken_at);
    s.snapshot = Some(snapshot);
}

/// What happens to a target, one line each on stderr when `on` (a daemon's log); the text is from outside
/// (server messages), so it is made safe for a terminal.
struct Log {
    on: bool,
    name: String,
}

impl Log {
    fn say(&self, text: &str) {
        if self.on {
            use std::io::Write;
            let line = format!("target {}: {text}", crate::conn::text::quoted(&self.name));
            let _ = writeln!(std::io::stderr(), "pgtls: serve: {}", pgtls_core::safe::terminal(&line));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 500 targets named as a targets file names them poll spread over the interval: no tenth of it holds more
    /// than twice its share, and a target keeps its place across restarts.
    #[test]
    fn targets_poll_spread_over_the_interval() {
        let interval = Duration::from_secs(5);
        let mut tenths = [0usize; 10];
        for i in 0..500 {
            let phase = phase_of(&format!("db-{i}.prod.example:5432/postgres"), interval);
            assert!(phase < interval);
            assert_eq!(phase, phase_of(&format!("db-{i}.prod.example:5432/postgres"), interval));
            tenths[usize::try_from(phase.as_millis() / 500).unwrap()] += 1;
        }
        assert!(tenths.iter().all(|&n| (25..=100).contains(&n)), "{tenths:?}");
    }
}
