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

/// What pgtls has seen over time, as the views need it: sent after every poll.
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
        }
    }
}

struct Tracker {
    setup: HistorySetup,
    logs: Option<LogSources>,
    hba: Result<Vec<HbaRule>, String>,
    /// A journal write failure is shown once, then the journal is dropped.
    journal_error: Option<String>,
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

    async fn on_snapshot(&mut self, collector: &Collector, snapshot: &Snapshot) -> History {
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
        let whatif = [Target::MinTls13, Target::TlsRequired]
            .into_iter()
            .map(|t| whatif::evaluate(&self.setup.ledger, t, &self.hba, self.setup.min_evidence))
            .collect();
        let mut sources = self.logs.as_ref().map(LogSources::describe).unwrap_or_default();
        if let Err(e) = &self.hba {
            sources.push(format!(
                "pg_hba.conf: {e}; the downgrade risk of prefer clients is unknown"
            ));
        }
        if let Some(e) = &self.journal_error {
            sources.push(format!("ledger not saved: {e}"));
        }
        History {
            clients: self.setup.ledger.records().cloned().collect(),
            whatif,
            sources,
            ledger_file: self.setup.ledger_file.clone(),
        }
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
    };
    let mut backoff = MIN_BACKOFF;
    loop {
        let attempt = match connected.take() {
            Some(collector) => Ok(collector),
            None => Collector::connect(&params).await,
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
                    Some(other) => apply(&mut schedule, other),
                },
            }
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

fn apply(schedule: &mut Schedule, cmd: PollerCommand) {
    match cmd {
        PollerCommand::RefreshNow | PollerCommand::Probe => {}
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
    loop {
        if !schedule.paused {
            match collector.poll().await {
                Ok(snapshot) => {
                    let history = tracker.on_snapshot(collector, &snapshot).await;
                    if events.send(PollerEvent::Snapshot(Box::new(snapshot))).await.is_err() {
                        return None;
                    }
                    if events.send(PollerEvent::History(Box::new(history))).await.is_err() {
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
                    Some(PollerCommand::RefreshNow) => break,
                    Some(PollerCommand::Probe) => start_probe(tracker.setup.probe.as_ref(), events),
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
