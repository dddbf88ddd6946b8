//! The poller task: owns the connection, polls on an interval, reconnects with backoff.
//! It only sends events; the UI never waits on the network.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{CollectError, Collector};
use crate::analysis::ledger::{ClientRecord, Journal, Ledger};
use crate::analysis::whatif::{self, HbaRule, Target, WhatIf};
use crate::conn::params::ConnParams;
use crate::model::Snapshot;
use crate::probe::{ProbeReport, ProbeTarget};
use crate::sources::LogSources;

/// What pgtls has seen over time, as the views need it: sent after every poll while the dashboard asks for it
/// ([`PollerCommand::SendHistory`]).
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    pub clients: Vec<ClientRecord>,
    /// One what-if per [`Target`], in `Target` order.
    pub whatif: Vec<WhatIf>,
    /// Which sources are on and what each can miss.
    pub sources: Vec<String>,
    /// Where the ledger is kept, if anywhere.
    pub ledger_file: Option<String>,
}

/// The history side of the poller: the ledger, its journal, the connection log and the probe.
pub struct HistorySetup {
    pub ledger: Ledger,
    pub journal: Option<Journal>,
    pub ledger_file: Option<String>,
    pub server_log: Option<std::path::PathBuf>,
    /// Read the log from its start (history) or only what is written from now on.
    pub log_from_start: bool,
    pub min_evidence: chrono::Duration,
    /// Where the certificate probe connects; it runs only when asked (each probe leaves server log lines).
    pub probe: Option<ProbeTarget>,
    /// The user's poll timeout; `None` follows the interval (see [`super::poll_timeout`]).
    pub poll_timeout: Option<Duration>,
}

impl HistorySetup {
    pub fn none() -> HistorySetup {
        HistorySetup {
            ledger: Ledger::default(),
            journal: None,
            ledger_file: None,
            server_log: None,
            log_from_start: true,
            min_evidence: chrono::Duration::hours(24),
            probe: None,
            poll_timeout: None,
        }
    }
}

struct Tracker {
    setup: HistorySetup,
    logs: Option<LogSources>,
    hba: Result<Vec<HbaRule>, String>,
    /// A journal write failure is shown once, then the journal is dropped.
    journal_error: Option<String>,
    /// A poll has been folded into the ledger (before that there is no history to show).
    polled: bool,
    /// Forged log lines already reported to the dashboard.
    forged_reported: u64,
}

impl Tracker {
    async fn on_connect(&mut self, collector: &Collector) {
        self.hba = collector.hba_rules().await;
        // The file follower survives reconnects; the SQL reader starts over on the new connection.
        if self.logs.is_none() || self.setup.server_log.is_none() {
            self.logs = Some(
                match LogSources::open(collector, self.setup.server_log.as_deref(), self.setup.log_from_start).await {
                    Ok(logs) => logs,
                    Err(e) => LogSources::none(&e),
                },
            );
        }
    }

    /// Fold a poll into the ledger, read the connection log, append to the journal.
    async fn on_snapshot(&mut self, collector: &Collector, snapshot: &Snapshot) {
        self.polled = true;
        let log_on = self.logs.as_ref().is_some_and(LogSources::is_active);
        let mut entries = self.setup.ledger.observe_snapshot(snapshot, log_on);
        if let Some(logs) = &mut self.logs {
            for event in logs.poll(collector).await {
                entries.extend(self.setup.ledger.observe_log(&event));
            }
        }
        if let Some(journal) = &mut self.setup.journal
            && let Err(e) = journal.append(&entries)
        {
            self.journal_error = Some(e);
            self.setup.journal = None;
        }
    }

    /// News of more forged log lines since the last call, for the dashboard's alerts.
    fn forged_news(&mut self) -> Option<PollerEvent> {
        let (kept, total) = self.logs.as_ref()?.suspects();
        let latest = kept.last()?;
        (total > self.forged_reported).then(|| {
            self.forged_reported = total;
            PollerEvent::ForgedLogLines {
                total,
                latest: Box::new(latest.clone()),
            }
        })
    }

    /// The history as of the latest poll; `None` before the first one.
    fn history(&self) -> Option<History> {
        if !self.polled {
            return None;
        }
        let mut sources = self.logs.as_ref().map(LogSources::describe).unwrap_or_default();
        if let Err(e) = &self.hba {
            sources.push(format!(
                "pg_hba.conf: {e}; the downgrade risk of prefer clients is unknown"
            ));
        }
        if let Some(e) = &self.journal_error {
            sources.push(format!("ledger not saved: {e}"));
        }
        Some(history_of(
            &self.setup.ledger,
            &self.hba,
            self.setup.min_evidence,
            sources,
            self.setup.ledger_file.clone(),
        ))
    }
}

/// What the poller sends after a successful poll: one event, so the dashboard updates and draws once.
pub fn event_after_poll(snapshot: Box<Snapshot>, history: Option<Box<History>>) -> PollerEvent {
    PollerEvent::Polled { snapshot, history }
}

/// The history as the views need it, from the ledger after a poll: no I/O, so benches measure the same code.
pub fn history_of(
    ledger: &Ledger,
    hba: &Result<Vec<HbaRule>, String>,
    min_evidence: chrono::Duration,
    sources: Vec<String>,
    ledger_file: Option<String>,
) -> History {
    History {
        clients: ledger.records().cloned().collect(),
        whatif: [Target::MinTls13, Target::TlsRequired]
            .into_iter()
            .map(|t| whatif::evaluate(ledger, t, hba, min_evidence))
            .collect(),
        sources,
        ledger_file,
    }
}

#[derive(Debug, Clone)]
pub enum PollerEvent {
    /// A connection was made; warnings are non-fatal notes (e.g. .pgpass ignored).
    Connected {
        warnings: Vec<String>,
    },
    Snapshot(Box<Snapshot>),
    History(Box<History>),
    /// A poll's snapshot with, while the dashboard asks for it ([`PollerCommand::SendHistory`]), the history:
    /// the same as `Snapshot` then `History`, in one event.
    Polled {
        snapshot: Box<Snapshot>,
        history: Option<Box<History>>,
    },
    /// The connection log held lines that read like connections but were refused as forged (sent when the
    /// count grows, before the poll's own event).
    ForgedLogLines {
        total: u64,
        latest: Box<crate::logsource::SuspectLine>,
    },
    /// The certificate probe finished (or could not run).
    Probe(Result<Box<ProbeReport>, String>),
    /// Connecting or polling failed; the poller retries after `retry_in`.
    Failed {
        error: CollectError,
        at: DateTime<Utc>,
        retry_in: Duration,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollerCommand {
    RefreshNow,
    SetInterval(Duration),
    /// While paused no polls run, so the server is not touched and the screen holds still.
    SetPaused(bool),
    /// Run the certificate probe (a handful of connections, each failed one logged by the server).
    Probe,
    /// Whether to send the history (ledger clients and what-if) after every poll; when turned on it is also sent at
    /// once. Only the Holdouts and What-if screens show it, and building it costs time in proportion to the ledger.
    SendHistory(bool),
}

pub const MIN_BACKOFF: Duration = Duration::from_millis(500);
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);

pub struct PollerHandle {
    pub commands: mpsc::UnboundedSender<PollerCommand>,
    pub task: JoinHandle<()>,
}

impl Drop for PollerHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Start polling every `interval`, beginning with `connected` if given (the start-up connection,
/// already checked), reconnecting with `params` after failures. Events arrive on `events` until it is closed.
pub fn spawn(
    params: ConnParams,
    connected: Option<Collector>,
    interval: Duration,
    history: HistorySetup,
    events: mpsc::Sender<PollerEvent>,
) -> PollerHandle {
    let (commands, rx) = mpsc::unbounded_channel();
    let tracker = Tracker {
        setup: history,
        logs: None,
        hba: Err("not read yet".to_string()),
        journal_error: None,
        polled: false,
        forged_reported: 0,
    };
    let task = tokio::spawn(run(params, connected, interval, tracker, events, rx));
    PollerHandle { commands, task }
}

fn start_probe(target: Option<&ProbeTarget>, events: &mpsc::Sender<PollerEvent>) {
    let events = events.clone();
    let target = target.cloned();
    tokio::spawn(async move {
        let result = match target {
            None => Err("no TCP host to probe (Unix-socket connections never use TLS)".to_string()),
            Some(target) => match tokio::task::spawn_blocking(move || crate::probe::run(&target)).await {
                Ok(result) => result.map(Box::new),
                Err(e) => Err(format!("probe failed: {e}")),
            },
        };
        let _ = events.send(PollerEvent::Probe(result)).await;
    });
}

struct Schedule {
    interval: Duration,
    paused: bool,
    /// Send the history after each poll.
    history: bool,
}

async fn run(
    params: ConnParams,
    mut connected: Option<Collector>,
    interval: Duration,
    mut tracker: Tracker,
    events: mpsc::Sender<PollerEvent>,
    mut commands: mpsc::UnboundedReceiver<PollerCommand>,
) {
    let mut schedule = Schedule {
        interval,
        paused: false,
        history: false,
    };
    let mut backoff = MIN_BACKOFF;
    let mut pending: Option<PendingConnect> = None;
    loop {
        let limit = super::poll_timeout(schedule.interval, tracker.setup.poll_timeout);
        let attempt = match connected.take() {
            Some(collector) => Ok(collector),
            None => reconnect(&params, limit, &mut pending).await,
        };
        let error = match attempt {
            Ok(mut collector) => {
                backoff = MIN_BACKOFF;
                let warnings = collector.warnings().to_vec();
                if events.send(PollerEvent::Connected { warnings }).await.is_err() {
                    return;
                }
                tracker.on_connect(&collector).await;
                match poll_loop(&mut collector, &mut schedule, &mut tracker, &events, &mut commands).await {
                    Some(error) => error,
                    None => return,
                }
            }
            Err(error) => error,
        };
        let failed = PollerEvent::Failed {
            error,
            at: Utc::now(),
            retry_in: backoff,
        };
        if events.send(failed).await.is_err() {
            return;
        }
        // A refresh request cuts the wait short: the user asked to try now.
        let deadline = Instant::now() + backoff;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break,
                cmd = commands.recv() => match cmd {
                    None => return,
                    Some(PollerCommand::RefreshNow) => break,
                    Some(PollerCommand::Probe) => start_probe(tracker.setup.probe.as_ref(), &events),
                    Some(PollerCommand::SendHistory(on)) => {
                        if send_history(&mut schedule, on, &tracker, &events).await.is_err() {
                            return;
                        }
                    }
                    Some(other) => apply(&mut schedule, other),
                },
            }
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// A connection attempt in flight, aborted when the poller ends.
struct PendingConnect(JoinHandle<Result<Collector, CollectError>>);

impl Drop for PendingConnect {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One connection attempt at a time: a server that accepts but never finishes the start-up (a lock on
/// pg_authid during VACUUM FULL) holds a backend for each attempt, so an attempt that outlives
/// connect_timeout is reported and then waited for again, never doubled. Only its answer starts another.
async fn reconnect(
    params: &ConnParams,
    poll_timeout: Duration,
    pending: &mut Option<PendingConnect>,
) -> Result<Collector, CollectError> {
    let wait = params
        .connect_timeout
        .unwrap_or(crate::conn::connect::DEFAULT_CONNECT_TIMEOUT);
    let attempt = pending.get_or_insert_with(|| {
        let mut patient = params.clone();
        // The poller bounds the wait; the attempt itself may take as long as the server needs.
        patient.connect_timeout = Some(Duration::from_secs(24 * 3600));
        PendingConnect(tokio::spawn(async move {
            Collector::connect_with(&patient, poll_timeout).await
        }))
    });
    match tokio::time::timeout(wait, &mut attempt.0).await {
        Ok(joined) => {
            *pending = None;
            joined.unwrap_or_else(|e| Err(CollectError::Poll(format!("the connection task failed: {e}"))))
        }
        Err(_) => Err(CollectError::Stalled {
            what: "connection attempt",
            after: wait,
        }),
    }
}

/// Turn history sending on or off; when turned on, send what the ledger holds now.
async fn send_history(
    schedule: &mut Schedule,
    on: bool,
    tracker: &Tracker,
    events: &mpsc::Sender<PollerEvent>,
) -> Result<(), mpsc::error::SendError<PollerEvent>> {
    let was_on = std::mem::replace(&mut schedule.history, on);
    if on
        && !was_on
        && let Some(history) = tracker.history()
    {
        events.send(PollerEvent::History(Box::new(history))).await?;
    }
    Ok(())
}

fn apply(schedule: &mut Schedule, cmd: PollerCommand) {
    match cmd {
        PollerCommand::RefreshNow | PollerCommand::Probe => {}
        PollerCommand::SendHistory(on) => schedule.history = on,
        PollerCommand::SetInterval(interval) => schedule.interval = interval,
        PollerCommand::SetPaused(paused) => schedule.paused = paused,
    }
}

/// Poll until the connection fails (returns the error) or the receiver is gone (returns None).
async fn poll_loop(
    collector: &mut Collector,
    schedule: &mut Schedule,
    tracker: &mut Tracker,
    events: &mpsc::Sender<PollerEvent>,
    commands: &mut mpsc::UnboundedReceiver<PollerCommand>,
) -> Option<CollectError> {
    // `r` polls once even while paused.
    let mut refresh = false;
    loop {
        if !schedule.paused || std::mem::take(&mut refresh) {
            collector.set_poll_timeout(super::poll_timeout(schedule.interval, tracker.setup.poll_timeout));
            // Commands still count while a poll is pending: `r` gives up on a slow poll and reconnects now.
            let polled = {
                let poll = collector.poll();
                tokio::pin!(poll);
                loop {
                    tokio::select! {
                        result = &mut poll => break Some(result),
                        cmd = commands.recv() => match cmd {
                            None => return None,
                            Some(PollerCommand::RefreshNow) => break None,
                            Some(PollerCommand::Probe) => start_probe(tracker.setup.probe.as_ref(), events),
                            Some(PollerCommand::SendHistory(on)) => {
                                if send_history(schedule, on, tracker, events).await.is_err() {
                                    return None;
                                }
                            }
                            Some(other) => apply(schedule, other),
                        },
                    }
                }
            };
            let Some(polled) = polled else {
                collector.abandon();
                return Some(CollectError::Poll(
                    "the pending poll was given up on request; reconnecting".to_string(),
                ));
            };
            match polled {
                Ok(snapshot) => {
                    tracker.on_snapshot(collector, &snapshot).await;
                    if let Some(news) = tracker.forged_news()
                        && events.send(news).await.is_err()
                    {
                        return None;
                    }
                    let history = if schedule.history {
                        tracker.history().map(Box::new)
                    } else {
                        None
                    };
                    if events
                        .send(event_after_poll(Box::new(snapshot), history))
                        .await
                        .is_err()
                    {
                        return None;
                    }
                }
                Err(error) => return Some(error),
            }
        }
        let deadline = Instant::now() + schedule.interval;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline), if !schedule.paused => break,
                cmd = commands.recv() => match cmd {
                    None => return None,
                    Some(PollerCommand::RefreshNow) => {
                        refresh = true;
                        break;
                    }
                    // A shorter interval applies now, not at the old deadline (up to 5 minutes away).
                    Some(PollerCommand::SetInterval(interval)) if Instant::now() + interval < deadline => {
                        schedule.interval = interval;
                        break;
                    }
                    Some(PollerCommand::Probe) => start_probe(tracker.setup.probe.as_ref(), events),
                    Some(PollerCommand::SendHistory(on)) => {
                        if send_history(schedule, on, tracker, events).await.is_err() {
                            return None;
                        }
                    }
                    Some(PollerCommand::SetPaused(false)) if schedule.paused => {
                        schedule.paused = false;
                        break;
                    }
                    Some(other) => apply(schedule, other),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::conn::params::{Environment, resolve};
    use crate::lab::{Lab, LabOptions, SUPERUSER};

    async fn next(events: &mut mpsc::Receiver<PollerEvent>) -> PollerEvent {
        match tokio::time::timeout(Duration::from_secs(10), events.recv()).await {
            Ok(Some(event)) => event,
            other => panic!("no poller event: {other:?}"),
        }
    }

    /// One event per poll; the history only while asked for, and at once when asked.
    #[tokio::test]
    async fn history_is_sent_only_while_asked_for() {
        let lab = Lab::start(LabOptions::default()).await.expect("lab starts");
        let home = tempfile::tempdir().expect("temp dir");
        let env = Environment::new(HashMap::new(), Some(home.path().to_path_buf()), "tester");
        let params = resolve(Some(&lab.conninfo(SUPERUSER)), &env).expect("conninfo resolves");
        let (tx, mut events) = mpsc::channel(16);
        // A long interval: after the first poll, polls run only on RefreshNow.
        let poller = spawn(params, None, Duration::from_secs(3600), HistorySetup::none(), tx);
        assert!(matches!(next(&mut events).await, PollerEvent::Connected { .. }));
        assert!(matches!(
            next(&mut events).await,
            PollerEvent::Polled { history: None, .. }
        ));

        let send = |cmd| poller.commands.send(cmd).expect("poller runs");
        send(PollerCommand::SendHistory(true));
        match next(&mut events).await {
            PollerEvent::History(history) => assert_eq!(history.whatif.len(), 2),
            other => panic!("expected the history at once, got {other:?}"),
        }
        send(PollerCommand::RefreshNow);
        match next(&mut events).await {
            PollerEvent::Polled {
                history: Some(history), ..
            } => assert_eq!(history.whatif.len(), 2),
            other => panic!("expected a poll with history, got {other:?}"),
        }
        send(PollerCommand::SendHistory(false));
        send(PollerCommand::RefreshNow);
        assert!(matches!(
            next(&mut events).await,
            PollerEvent::Polled { history: None, .. }
        ));
    }

    /// A shorter interval applies at once, and `r` polls while paused (issue 14, item 1).
    #[tokio::test]
    async fn a_shorter_interval_and_a_refresh_while_paused_poll_at_once() {
        let lab = Lab::start(LabOptions::default()).await.expect("lab starts");
        let home = tempfile::tempdir().expect("temp dir");
        let env = Environment::new(HashMap::new(), Some(home.path().to_path_buf()), "tester");
        let params = resolve(Some(&lab.conninfo(SUPERUSER)), &env).expect("conninfo resolves");
        let (tx, mut events) = mpsc::channel(16);
        let poller = spawn(params, None, Duration::from_secs(3600), HistorySetup::none(), tx);
        assert!(matches!(next(&mut events).await, PollerEvent::Connected { .. }));
        assert!(matches!(next(&mut events).await, PollerEvent::Polled { .. }));
        let send = |cmd| poller.commands.send(cmd).expect("poller runs");
        // `next` waits 10 s at most: far less than the hour left of the old interval.
        send(PollerCommand::SetInterval(Duration::from_millis(500)));
        assert!(matches!(next(&mut events).await, PollerEvent::Polled { .. }));
        send(PollerCommand::SetPaused(true));
        while let Ok(Some(_)) = tokio::time::timeout(Duration::from_secs(2), events.recv()).await {}
        send(PollerCommand::RefreshNow);
        assert!(matches!(next(&mut events).await, PollerEvent::Polled { .. }));
        assert!(
            tokio::time::timeout(Duration::from_secs(2), events.recv())
                .await
                .is_err(),
            "one poll, then paused again"
        );
    }
}
