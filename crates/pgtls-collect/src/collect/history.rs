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
use crate::analysis::sources::{HistoryStatus, SourceNote, SourceStatus};
use crate::analysis::whatif::{self, Change, WhatIf};
use crate::model::HbaRules;
use crate::model::Snapshot;
use crate::probe::{ProbeConnection, ProbeTarget};
use crate::sources::LogSources;

/// What pgtls has seen over time, as the views need it: sent after every poll while the dashboard asks for it
/// ([`super::poller::PollerCommand::SendHistory`]).
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    /// Every client's record; empty at [`Detail::Fleet`] (see [`History::client_classes`]).
    pub clients: Vec<ClientRecord>,
    /// Each client's identity and the weakest way it was seen connecting (none yet: not listed), at every detail:
    /// what `/metrics` exports per client.
    pub client_classes: Vec<ClientClass>,
    /// What this history carries: a `Fleet` one has no client records and no trend.
    pub detail: Detail,
    /// One what-if per [`Change`], in `Change` order.
    pub whatif: Vec<WhatIf>,
    /// Which sources are on and what each can miss.
    pub sources: Vec<SourceNote>,
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
    /// Sessions and distinct clients by hour for the week ending with the latest moment watched (see
    /// [`crate::analysis::ledger::Trend`]): the Holdouts and What-if screens' sparklines.
    pub trend: crate::analysis::ledger::Trend,
    /// The connection log's and the ledger file's state, as every output says it.
    pub status: HistoryStatus,
    /// Writes of the ledger file that failed (each retry counts), for `pgtls_ledger_write_errors_total`.
    pub ledger_write_errors: u64,
}

/// A client's identity and the weakest transport it was seen on.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientClass {
    pub key: crate::analysis::ledger::ClientKey,
    pub class: crate::model::ConnClass,
}

/// [`History::client_classes`] of `ledger`.
pub fn client_classes(ledger: &Ledger) -> Vec<ClientClass> {
    ledger
        .records()
        .filter_map(|r| {
            r.worst_class().map(|class| ClientClass {
                key: r.key.clone(),
                class,
            })
        })
        .collect()
}

/// How much each history sent carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Detail {
    /// Everything the dashboard's screens show: every client's record and the week's trend.
    #[default]
    Full,
    /// What a fleet's exporter and Servers screen read, without the client records and the trend: those are a
    /// copy of the ledger, and a fleet of 500 targets would hold each target's ledger twice. The records are
    /// asked for when needed ([`HistoryInput::Clients`]); a dashboard opened on the target turns `Full` on.
    Fleet,
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
    /// A ledger file was asked for and could not be opened: why (the target runs without one, and says so).
    pub ledger_off: Option<String>,
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
            ledger_off: None,
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
        hba: HbaRules,
        /// This connection's place among the process's own backends on the server: log lines of the others are
        /// pgtls's own connections, never clients. Weak: the listing ends with the connection, not with this service.
        own: Option<std::sync::Weak<super::own_backends::Registration>>,
        /// The server's TCP address, to tell log lines about this process's other connections to it by their two
        /// ends before their pids are registered (see [`crate::conn::own_sockets`]).
        server: Option<std::net::SocketAddr>,
    },
    /// A poll's snapshot, already sent to the dashboard.
    Snapshot(Arc<Snapshot>),
    /// Send the history after each snapshot (and at once when turned on).
    SendHistory(bool),
    /// How much the history sent carries from now on (sent at once when it grows, if sending).
    Detail(Detail),
    /// Every client's record now, for one reader (the JSON API of a fleet kept at [`Detail::Fleet`]).
    Clients(tokio::sync::oneshot::Sender<Vec<ClientRecord>>),
}

/// The history as the views need it, from the ledger after a poll: no I/O, so benches measure the same code.
pub fn history_of(
    ledger: &Ledger,
    hba: &HbaRules,
    min_evidence: chrono::Duration,
    sources: Vec<SourceNote>,
    ledger_file: Option<String>,
    detail: Detail,
) -> History {
    let full = detail == Detail::Full;
    History {
        clients: if full {
            ledger.records().cloned().collect()
        } else {
            Vec::new()
        },
        client_classes: client_classes(ledger),
        detail,
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
        trend: if full {
            ledger.week()
        } else {
            crate::analysis::ledger::Trend::default()
        },
        status: HistoryStatus::default(),
        ledger_write_errors: 0,
    }
}

/// Whether each target is in force and what followed, from the ledger and the latest poll: no I/O. The dashboard
/// has no window: it shows everything since the change.
pub fn after_of(
    ledger: &Ledger,
    snapshot: &Snapshot,
    hba: &HbaRules,
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
    let hba = Err(crate::model::HbaUnreadable::NotApplicable);
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
    /// See [`HistoryInput::Connected`].
    server: Option<std::net::SocketAddr>,
    logs: Option<LogSources>,
    /// The poolers' own logs, read whether or not the server is connected.
    pooler_logs: crate::pooler_logs::PoolerLogs,
    hba: HbaRules,
    /// Why the ledger file is not up to date, while it is not: every write retries, rewriting it whole from the
    /// ledger in memory, and a success clears this.
    journal_error: Option<crate::analysis::ledger::JournalError>,
    /// Failed writes of the ledger file since the start.
    journal_errors: u64,
    /// Why this target keeps no ledger file although one was asked for (it could not be opened).
    journal_off: Option<String>,
    /// The latest poll, folded into the ledger (before it there is no history to show).
    latest: Option<Arc<Snapshot>>,
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
    detail: Detail,
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
    let pooler_logs =
        match crate::pooler_logs::PoolerLogs::open_resuming(&setup.pooler_logs, setup.log_from_start, &setup.ledger) {
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
    let mut setup = setup;
    // The rewrite on opening failed (a full disk): the file is open and retried at every write; say so now.
    let journal_error = setup.journal.as_mut().and_then(Journal::take_open_error);
    let journal_errors = u64::from(journal_error.is_some());
    let journal_off = setup.ledger_off.take();
    let mut service = Service {
        setup,
        journal_errors,
        journal_off,
        client: None,
        own: None,
        server: None,
        logs: None,
        pooler_logs,
        pooler_log_error,
        hba: Err(crate::model::HbaUnreadable::NotReadYet),
        journal_error,
        latest: None,
        forged_reported: 0,
        probe_rx,
        probe_connections: std::collections::VecDeque::new(),
        probe_lines_ignored: 0,
        history_wanted: false,
        detail: Detail::Full,
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
                Box::pin(service.read_log()).await;
                let still_behind =
                    service.logs.as_ref().is_some_and(LogSources::is_behind) || service.pooler_logs.is_behind();
                if !still_behind && Box::pin(service.send_history()).await.is_err() {
                    return;
                }
                tokio::task::yield_now().await;
                continue;
            }
        };
        let sent = match input {
            HistoryInput::Connected {
                client,
                hba,
                own,
                server,
            } => {
                service.own = own;
                service.server = server;
                Box::pin(service.on_connect(client, hba)).await;
                Ok(())
            }
            HistoryInput::Snapshot(snapshot) => Box::pin(service.on_snapshot(snapshot)).await,
            HistoryInput::SendHistory(on) => {
                let was_on = std::mem::replace(&mut service.history_wanted, on);
                if on && !was_on {
                    Box::pin(service.send_history()).await
                } else {
                    Ok(())
                }
            }
            HistoryInput::Detail(detail) => {
                let was = std::mem::replace(&mut service.detail, detail);
                if was == Detail::Fleet && detail == Detail::Full {
                    Box::pin(service.send_history()).await
                } else {
                    Ok(())
                }
            }
            HistoryInput::Clients(reply) => {
                // The reader may have given up; nothing to do then.
                let _ = reply.send(service.setup.ledger.records().cloned().collect());
                Ok(())
            }
        };
        if sent.is_err() {
            return;
        }
    }
}

impl Service {
    async fn on_connect(&mut self, client: Arc<Client>, hba: HbaRules) {
        self.hba = hba;
        // The file follower survives reconnects; the SQL reader starts over on the new connection.
        if self.logs.is_none() || self.setup.server_log.is_none() {
            let mut logs = match LogSources::open(
                &client,
                self.setup.server_log.as_deref(),
                self.setup.log_from_start,
                &self.setup.ledger,
            )
            .await
            {
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
    async fn on_snapshot(&mut self, mut snapshot: Arc<Snapshot>) -> Result<(), ()> {
        // Asked once more at the fold: a backend of ours that another target opened while this poll ran may be
        // listed only now (the poll itself asked before and after its statement).
        let ours = self
            .own
            .as_ref()
            .and_then(std::sync::Weak::upgrade)
            .map(|own| own.others())
            .unwrap_or_default();
        // Copied only in the rare case there is one to leave out; otherwise the dashboard's copy is this one.
        if snapshot.late_own(&ours).next().is_some() {
            Arc::make_mut(&mut snapshot).leave_out_own(ours);
        }
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
        let mut entries: Vec<_> = refused
            .iter()
            .filter_map(|r| self.setup.ledger.observe_refused(r))
            .collect();
        for position in self.pooler_logs.positions() {
            entries.extend(self.setup.ledger.note_log_position(position));
        }
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
        let server = self.server;
        let mut entries: Vec<_> = events
            .iter()
            .filter(|e| !ours.contains(&e.pid) && !own_connection(e, server))
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
        // In the same write as what it covers: a restart reads on from here, never applying a line twice.
        if let Some(position) = logs.position(client).await {
            entries.extend(self.setup.ledger.note_log_position(position));
        }
        self.journal(&entries);
    }

    /// Append to the ledger file; after a failure every call retries (see [`Journal::append`]).
    fn journal(&mut self, entries: &[crate::analysis::ledger::Entry]) {
        if let Some(journal) = &mut self.setup.journal {
            match journal.append(entries, &self.setup.ledger) {
                Ok(()) => self.journal_error = None,
                Err(e) => {
                    self.journal_errors += 1;
                    self.journal_error = Some(e);
                }
            }
        }
    }

    /// The log's and the ledger file's state now.
    fn status(&self) -> HistoryStatus {
        let log = match &self.logs {
            Some(logs) => logs.status(),
            None => SourceStatus::Off {
                reason: "not connected yet".to_string(),
            },
        };
        let ledger = if let Some(e) = &self.journal_error {
            Some(SourceStatus::Off {
                reason: format!("{e}; kept in memory, retried at every poll"),
            })
        } else if let Some(reason) = &self.journal_off {
            Some(SourceStatus::Off { reason: reason.clone() })
        } else {
            self.setup.journal.as_ref().map(|_| SourceStatus::On)
        };
        HistoryStatus { log: Some(log), ledger }
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
            sources.push(SourceNote::off(gap));
        }
        if let Err(e) = &self.hba {
            sources.push(SourceNote::off(format!(
                "pg_hba.conf: {e}; the downgrade risk of prefer clients is unknown"
            )));
        }
        sources.extend(self.pooler_logs.describe());
        if let Some(e) = &self.pooler_log_error {
            sources.push(SourceNote::off(e.clone()));
        }
        if let Some(e) = &self.journal_error {
            sources.push(SourceNote::off(format!(
                "ledger not saved: {e}; kept in memory and rewritten whole once it can be ({} failed write(s))",
                self.journal_errors
            )));
        }
        if let Some(reason) = &self.journal_off {
            sources.push(SourceNote::off(format!("ledger off: {reason}; running without one")));
        }
        if self.probe_lines_ignored > 0 {
            sources.push(SourceNote::on(format!(
                "{} failed handshake(s) in the log were pgtls's own probe, not counted as refusals",
                self.probe_lines_ignored
            )));
        }
        let mut history = history_of(
            &self.setup.ledger,
            &self.hba,
            self.setup.min_evidence,
            sources,
            self.setup.ledger_file.clone(),
            self.detail,
        );
        history.status = self.status();
        history.ledger_write_errors = self.journal_errors;
        // The evidence says whether the log is read now, as the sources line does, never the opposite of it.
        let log_on = history.status.log.as_ref().is_some_and(SourceStatus::is_on);
        for w in &mut history.whatif {
            w.evidence.log_source = log_on;
        }
        history.after = after_of(&self.setup.ledger, latest, &self.hba, self.setup.since);
        if !self.setup.pooler_logs.is_empty() {
            history.pooler_after = pooler_after_of(&self.setup.ledger, latest);
        }
        Some(history)
    }
}

/// A logged connection from a TCP connection this process holds to `server`: another target's monitor, whose
/// "authorized" line may be read before its pid is registered (the pid comes only at the end of its start-up).
fn own_connection(event: &crate::logsource::ConnectionEvent, server: Option<std::net::SocketAddr>) -> bool {
    server.is_some_and(|server| super::own_client(event.client_addr.as_deref(), event.client_port, server))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logsource::ConnectionEvent;

    fn logged(addr: Option<&str>, port: Option<u16>) -> ConnectionEvent {
        ConnectionEvent {
            at: chrono::Utc::now(),
            pid: 4242,
            user: "postgres".into(),
            database: "template1".into(),
            application_name: Some("pgtls-serve-monitor".into()),
            client_addr: addr.map(str::to_string),
            client_port: port,
            local_socket: false,
            tls: None,
            gss_encrypted: false,
            replication: false,
            hba_line: None,
        }
    }

    /// Another target's monitor connection, logged before its pid is registered, is told by its two ends while
    /// this process holds the connection; the same port to another server, or once closed, is a client's.
    #[test]
    fn a_logged_connection_of_ours_is_told_by_its_ends() {
        let server: std::net::SocketAddr = "127.0.0.1:55432".parse().unwrap();
        let other: std::net::SocketAddr = "127.0.0.1:55433".parse().unwrap();
        let local: std::net::SocketAddr = "127.0.0.1:40123".parse().unwrap();
        let held = crate::conn::own_sockets::Held::new(local, server);
        let event = logged(Some("127.0.0.1"), Some(40123));
        assert!(own_connection(&event, Some(server)));
        assert!(!own_connection(&event, Some(other)), "the pair, not the port alone");
        assert!(
            !own_connection(&event, None),
            "over a Unix socket there is no pair to match"
        );
        assert!(
            !own_connection(&logged(Some("db.example"), Some(40123)), Some(server)),
            "a host name"
        );
        assert!(
            !own_connection(&logged(Some("127.0.0.1"), None), Some(server)),
            "no port logged"
        );
        drop(held);
        assert!(
            !own_connection(&event, Some(server)),
            "closed: a client may have the port now"
        );
    }
}
