//! The history service: the ledger, its journal and the connection log, fed by the collector's snapshots over a
//! channel. It runs as its own task so that reading a long log never holds up a snapshot: the collector sends each
//! snapshot to the dashboard first and to this service second, and this service reads the log one bounded budget at
//! a time, catching up across polls (and between them) while memory stays that of the distinct clients.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_postgres::Client;

use super::poller::PollerEvent;
use crate::analysis::after::{self, Standing};
use crate::analysis::ledger::{ClientRecord, Journal, Ledger};
use crate::analysis::whatif::{self, Change, WhatIf};
use crate::model::HbaRule;
use crate::model::Snapshot;
use crate::probe::{ProbeConnection, ProbeTarget};
use crate::sources::LogSources;

/// What pgtls has seen over time, as the views need it: sent after every poll while the dashboard asks for it
/// ([`super::poller::PollerCommand::SendHistory`]).
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    pub clients: Vec<ClientRecord>,
    /// One what-if per [`Change`], in `Change` order.
    pub whatif: Vec<WhatIf>,
    /// Which sources are on and what each can miss.
    pub sources: Vec<String>,
    /// Where the ledger is kept, if anywhere.
    pub ledger_file: Option<String>,
    /// Addresses refused before authorization (failed TLS handshakes, pg_hba.conf), most recent first, each with
    /// the identities seen from it; pgtls's own probe connections are left out.
    pub refused: Vec<crate::analysis::ledger::RefusedView>,
    /// TLS setting changes the postmaster logged on reload, oldest first (see [`crate::analysis::ledger::floor_since`]).
    pub logged_settings: Vec<crate::logsource::SettingChange>,
    /// Whether each [`Change`] is in force, in `Change` order, and if so the after-change report (refused,
    /// downgraded, lingering); empty before the first poll.
    pub after: Vec<Standing>,
    /// Each pooler's client side under each [`Change`] (in `Change` order, then pooler order), with the clients its
    /// log showed refused; empty unless a pooler's log is read (`--pgbouncer-log`).
    pub pooler_after: Vec<after::PoolerAfter>,
}

/// The history side: the ledger, its journal, the connection log and the probe target.
pub struct HistorySetup {
    pub ledger: Ledger,
    pub journal: Option<Journal>,
    pub ledger_file: Option<String>,
    pub server_log: Option<std::path::PathBuf>,
    /// Each pooler's own log file (`--pgbouncer-log`), by the pooler's address.
    pub pooler_logs: Vec<(String, std::path::PathBuf)>,
    /// Read the log from its start (history) or only what is written from now on.
    pub log_from_start: bool,
    pub min_evidence: chrono::Duration,
    /// Where the certificate probe connects; it runs only when asked (each probe leaves server log lines).
    pub probe: Option<ProbeTarget>,
    /// Bytes of log read at most per step; `None` for the sources' own default.
    pub log_budget: Option<u64>,
    /// The user's poll timeout; `None` follows the interval (see [`super::poll_timeout`]).
    pub poll_timeout: Option<std::time::Duration>,
    /// `--since`: when the change took effect, if nothing else can tell.
    pub since: Option<chrono::DateTime<chrono::Utc>>,
}

impl HistorySetup {
    pub fn none() -> HistorySetup {
        HistorySetup {
            ledger: Ledger::default(),
            journal: None,
            ledger_file: None,
            server_log: None,
            pooler_logs: Vec::new(),
            log_from_start: true,
            min_evidence: chrono::Duration::hours(24),
            probe: None,
            log_budget: None,
            poll_timeout: None,
            since: None,
        }
    }
}

/// Probe connections noted but not yet read by the history service: a probe makes a few dozen.
pub const PROBE_QUEUE: usize = 1024;
/// Probe connections remembered, and for how long: a log line about one is read within a poll or two of it, or,
/// reading a backlog, within the time it takes to catch up.
const PROBE_KEEP: usize = 4096;
const PROBE_KEEP_FOR: chrono::Duration = chrono::Duration::hours(6);
/// A refused attempt matches a probe connection with the same address and port within this much of it (the
/// server's clock and this machine's may differ a little; a port is not reused that fast on one address).
const PROBE_MATCH_WITHIN: chrono::Duration = chrono::Duration::minutes(5);

/// What the collector tells the history service.
pub enum HistoryInput {
    /// A new connection: the client to read the log through, and pg_hba.conf as read on it.
    Connected {
        client: Arc<Client>,
        hba: Result<Vec<HbaRule>, String>,
        /// This connection's place among the process's own backends on the server: log lines of the others are
        /// pgtls's own connections, never clients. Weak: the listing ends with the connection, not with this service.
        own: Option<std::sync::Weak<super::own_backends::Registration>>,
    },
    /// A poll's snapshot, already sent to the dashboard.
    Snapshot(Box<Snapshot>),
    /// Send the history after each snapshot (and at once when turned on).
    SendHistory(bool),
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
        whatif: [Change::MinTls13, Change::TlsRequired]
            .into_iter()
            .map(|t| whatif::evaluate(ledger, t, hba, min_evidence))
            .collect(),
        sources,
        ledger_file,
        refused: ledger.refused(),
        logged_settings: ledger.logged_settings().cloned().collect(),
        after: Vec::new(),
        pooler_after: Vec::new(),
    }
}

/// Whether each target is in force and what followed, from the ledger and the latest poll: no I/O. The dashboard
/// has no window: it shows everything since the change.
pub fn after_of(
    ledger: &Ledger,
    snapshot: &Snapshot,
    hba: &Result<Vec<HbaRule>, String>,
    since: Option<chrono::DateTime<chrono::Utc>>,
) -> Vec<Standing> {
    let inputs = after::Inputs {
        ledger,
        snapshot,
        hba,
        user_since: since,
        window_from: None,
    };
    [Change::MinTls13, Change::TlsRequired]
        .into_iter()
        .map(|t| after::evaluate(t, &inputs))
        .collect()
}

/// Each pooler's client side under each target, from the ledger's pooler refusals and the latest poll: no I/O.
pub fn pooler_after_of(ledger: &Ledger, snapshot: &Snapshot) -> Vec<after::PoolerAfter> {
    // A pooler's client side has no pg_hba.conf: the evaluation reads none.
    let hba = Err(String::new());
    let inputs = after::Inputs {
        ledger,
        snapshot,
        hba: &hba,
        user_since: None,
        window_from: None,
    };
    [Change::MinTls13, Change::TlsRequired]
        .into_iter()
        .flat_map(|t| after::evaluate_poolers(t, &inputs))
        .collect()
}

struct Service {
    setup: HistorySetup,
    client: Option<Arc<Client>>,
    /// See [`HistoryInput::Connected`].
    own: Option<std::sync::Weak<super::own_backends::Registration>>,
    logs: Option<LogSources>,
    /// The poolers' own logs, read whether or not the server is connected.
    pooler_logs: crate::pooler_logs::PoolerLogs,
    hba: Result<Vec<HbaRule>, String>,
    /// A journal write failure is shown once, then the journal is dropped.
    journal_error: Option<crate::analysis::ledger::JournalError>,
    /// The latest poll, folded into the ledger (before it there is no history to show).
    latest: Option<Box<Snapshot>>,
    /// Why a pooler log could not be opened.
    pooler_log_error: Option<String>,
    /// Forged log lines already reported to the dashboard.
    forged_reported: u64,
    /// pgtls's own probe connections (local address, port, time), noted before each handshake.
    probe_rx: mpsc::Receiver<ProbeConnection>,
    probe_connections: std::collections::VecDeque<ProbeConnection>,
    /// Log lines about the probe's own failed handshakes, not counted as refusals.
    probe_lines_ignored: u64,
    history_wanted: bool,
    events: mpsc::Sender<PollerEvent>,
}

/// Fold snapshots and the connection log into the ledger until the collector hangs up or the dashboard is gone.
pub async fn run(
    setup: HistorySetup,
    mut inputs: mpsc::Receiver<HistoryInput>,
    probe_rx: mpsc::Receiver<ProbeConnection>,
    events: mpsc::Sender<PollerEvent>,
) {
    let mut pooler_log_error = None;
    let pooler_logs = match crate::pooler_logs::PoolerLogs::open(&setup.pooler_logs, setup.log_from_start) {
        Ok(mut logs) => {
            if let Some(budget) = setup.log_budget {
                logs.set_budget(budget);
            }
            logs
        }
        // Checked before the dashboard started; a file gone since is shown, not fatal.
        Err(e) => {
            pooler_log_error = Some(e.to_string());
            crate::pooler_logs::PoolerLogs::default()
        }
    };
    let mut service = Service {
        setup,
        client: None,
        own: None,
        logs: None,
        pooler_logs,
        pooler_log_error,
        hba: Err("not read yet".to_string()),
        journal_error: None,
        latest: None,
        forged_reported: 0,
        probe_rx,
        probe_connections: std::collections::VecDeque::new(),
        probe_lines_ignored: 0,
        history_wanted: false,
        events,
    };
    loop {
        let behind = (service.logs.as_ref().is_some_and(LogSources::is_behind) && service.client.is_some())
            || service.pooler_logs.is_behind();
        // Inputs first: a snapshot is never kept waiting by a backlog of log. While behind and idle, read on.
        let input = tokio::select! {
            biased;
            input = inputs.recv() => match input {
                Some(input) => input,
                None => return,
            },
            () = std::future::ready(()), if behind => {
                service.read_log().await;
                let still_behind =
                    service.logs.as_ref().is_some_and(LogSources::is_behind) || service.pooler_logs.is_behind();
                if !still_behind && service.send_history().await.is_err() {
                    return;
                }
                tokio::task::yield_now().await;
                continue;
            }
        };
        let sent = match input {
            HistoryInput::Connected { client, hba, own } => {
                service.own = own;
                service.on_connect(client, hba).await;
                Ok(())
            }
            HistoryInput::Snapshot(snapshot) => service.on_snapshot(snapshot).await,
            HistoryInput::SendHistory(on) => {
                let was_on = std::mem::replace(&mut service.history_wanted, on);
                if on && !was_on {
                    service.send_history().await
                } else {
                    Ok(())
                }
            }
        };
        if sent.is_err() {
            return;
        }
    }
}

impl Service {
    async fn on_connect(&mut self, client: Arc<Client>, hba: Result<Vec<HbaRule>, String>) {
        self.hba = hba;
        // The file follower survives reconnects; the SQL reader starts over on the new connection.
        if self.logs.is_none() || self.setup.server_log.is_none() {
            let mut logs =
                match LogSources::open(&client, self.setup.server_log.as_deref(), self.setup.log_from_start).await {
                    Ok(logs) => logs,
                    Err(e) => LogSources::none(&e.to_string()),
                };
            if let Some(budget) = self.setup.log_budget {
                logs.set_budget(budget);
            }
            self.logs = Some(logs);
        }
        self.client = Some(client);
    }

    /// Fold a poll into the ledger, read one budget of the connection log, append to the journal.
    async fn on_snapshot(&mut self, snapshot: Box<Snapshot>) -> Result<(), ()> {
        let log_on = self.logs.as_ref().is_some_and(LogSources::is_active);
        let entries = self.setup.ledger.observe_snapshot(&snapshot, log_on);
        self.latest = Some(snapshot);
        self.journal(&entries);
        self.read_log().await;
        self.send_history().await
    }

    /// One budget of the connection log, applied and journalled before anything more is read.
    async fn read_log(&mut self) {
        let refused = self.pooler_logs.poll();
        let entries: Vec<_> = refused
            .iter()
            .filter_map(|r| self.setup.ledger.observe_refused(r))
            .collect();
        self.journal(&entries);
        let (Some(logs), Some(client)) = (&mut self.logs, &self.client) else {
            return;
        };
        let events = logs.poll(client).await;
        let news = logs.take_news();
        // Asked now, not at the last poll: a target that connected since is already listed.
        let ours = self
            .own
            .as_ref()
            .and_then(std::sync::Weak::upgrade)
            .map(|own| own.others())
            .unwrap_or_default();
        let mut entries: Vec<_> = events
            .iter()
            .filter(|e| !ours.contains(&e.pid))
            .filter_map(|e| self.setup.ledger.observe_log(e))
            .collect();
        drop(events);
        // The probe notes each connection before its handshake, so every note about a line just read is queued.
        while let Ok(connection) = self.probe_rx.try_recv() {
            if self.probe_connections.len() >= PROBE_KEEP {
                self.probe_connections.pop_front();
            }
            self.probe_connections.push_back(connection);
        }
        let (probe, refused) = split_probe_lines(news.refused, &self.probe_connections);
        self.probe_lines_ignored += probe as u64;
        entries.extend(refused.iter().filter_map(|r| self.setup.ledger.observe_refused(r)));
        entries.extend(
            news.changes
                .iter()
                .filter_map(|c| self.setup.ledger.observe_setting_change(c)),
        );
        if let Some(latest) = self.probe_connections.back().map(|c| c.at) {
            self.probe_connections.retain(|c| latest - c.at <= PROBE_KEEP_FOR);
        }
        self.journal(&entries);
    }

    fn journal(&mut self, entries: &[crate::analysis::ledger::Entry]) {
        if let Some(journal) = &mut self.setup.journal
            && let Err(e) = journal.append(entries, &self.setup.ledger)
        {
            self.journal_error = Some(e);
            self.setup.journal = None;
        }
    }

    /// Forged-line news, then the history if the dashboard asks for it. `Err` once the dashboard is gone.
    async fn send_history(&mut self) -> Result<(), ()> {
        if let Some(news) = self.forged_news() {
            self.events.send(news).await.map_err(drop)?;
        }
        if self.history_wanted
            && let Some(history) = self.history()
        {
            self.events
                .send(PollerEvent::History(Box::new(history)))
                .await
                .map_err(drop)?;
        }
        Ok(())
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
        let latest = self.latest.as_deref()?;
        let mut sources = self.logs.as_ref().map(LogSources::describe).unwrap_or_default();
        if let Some(gap) = self
            .setup
            .ledger
            .settings_history()
            .last()
            .and_then(|seen| crate::analysis::after::log_connections_gap(&seen.settings))
        {
            sources.push(gap);
        }
        if let Err(e) = &self.hba {
            sources.push(format!(
                "pg_hba.conf: {e}; the downgrade risk of prefer clients is unknown"
            ));
        }
        sources.extend(self.pooler_logs.describe());
        if let Some(e) = &self.pooler_log_error {
            sources.push(e.clone());
        }
        if let Some(e) = &self.journal_error {
            sources.push(format!("ledger not saved: {e}"));
        }
        if self.probe_lines_ignored > 0 {
            sources.push(format!(
                "{} failed handshake(s) in the log were pgtls's own probe, not counted as refusals",
                self.probe_lines_ignored
            ));
        }
        let mut history = history_of(
            &self.setup.ledger,
            &self.hba,
            self.setup.min_evidence,
            sources,
            self.setup.ledger_file.clone(),
        );
        history.after = after_of(&self.setup.ledger, latest, &self.hba, self.setup.since);
        if !self.setup.pooler_logs.is_empty() {
            history.pooler_after = pooler_after_of(&self.setup.ledger, latest);
        }
        Some(history)
    }
}

/// `(how many were the probe's, the others)`: a refused attempt from the address and port of one of pgtls's own probe
/// connections, near its time, is the probe's.
pub fn split_probe_lines(
    refused: Vec<crate::logsource::RefusedAttempt>,
    probe: &std::collections::VecDeque<ProbeConnection>,
) -> (usize, Vec<crate::logsource::RefusedAttempt>) {
    let before = refused.len();
    let kept: Vec<_> = refused
        .into_iter()
        .filter(|r| {
            !probe.iter().any(|p| {
                r.client_port == Some(p.port)
                    && r.client_addr.as_deref() == Some(p.address.as_str())
                    && (r.at - p.at).abs() <= PROBE_MATCH_WITHIN
            })
        })
        .collect();
    (before - kept.len(), kept)
}
