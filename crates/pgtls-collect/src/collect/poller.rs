//! The poller: a snapshot collector task and a history service task (see [`super::history`]), each watched.
//! The collector owns the connection, polls on an interval and reconnects with backoff; it sends each snapshot to
//! the dashboard first and to the history service second. It only sends events; the UI never waits on the network.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::act::{SignalOutcome, SignalRequest};
use super::history::{self, HistoryInput};
pub use super::history::{History, HistorySetup, history_of};
use super::{CollectError, Collector};
use crate::conn::params::ConnParams;
use crate::model::Snapshot;
use crate::probe::{ProbeReport, ProbeTarget};

/// What the poller sends after a successful poll: one event, so the dashboard updates and draws once.
pub fn event_after_poll(snapshot: Arc<Snapshot>, history: Option<Box<History>>) -> PollerEvent {
    PollerEvent::Polled { snapshot, history }
}

/// Snapshots queued for the history service at most; beyond that the collector waits for it (it reads one bounded
/// budget of log per snapshot, so the wait is bounded too).
const HISTORY_QUEUE: usize = 4;

#[derive(Debug, Clone)]
pub enum PollerEvent {
    /// A connection was made; warnings are non-fatal notes (e.g. .pgpass ignored).
    Connected {
        warnings: Vec<String>,
    },
    /// Shared with the history service (and, in `serve`, the target's state): one copy of each poll, not one per
    /// reader.
    Snapshot(Arc<Snapshot>),
    History(Box<History>),
    /// A poll's snapshot with, while the dashboard asks for it ([`PollerCommand::SendHistory`]), the history:
    /// the same as `Snapshot` then `History`, in one event.
    Polled {
        snapshot: Arc<Snapshot>,
        history: Option<Box<History>>,
    },
    /// The connection log held lines that read like connections but were refused as forged (sent when the
    /// count grows, before the poll's own event).
    ForgedLogLines {
        total: u64,
        latest: Box<crate::logsource::SuspectLine>,
    },
    /// The certificate probe finished (or could not run). Shared: events are cloned and an I/O error is not.
    Probe(Result<Box<ProbeReport>, Arc<crate::probe::ProbeError>>),
    /// One of the poller's tasks stopped (a panic or an unexpected end): the dashboard must say so, not go blind.
    TaskFailed {
        task: &'static str,
        error: String,
    },
    /// What became of a [`PollerCommand::Signal`].
    Signalled {
        request: SignalRequest,
        outcome: SignalOutcome,
    },
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
    /// How much each history carries (a fleet keeps [`history::Detail::Fleet`] until a dashboard opens the target).
    HistoryDetail(history::Detail),
    /// Cancel or terminate one backend (only if it still has the start time shown); answered by
    /// [`PollerEvent::Signalled`].
    Signal(SignalRequest),
}

pub const MIN_BACKOFF: Duration = Duration::from_millis(500);
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);

pub struct PollerHandle {
    pub commands: mpsc::UnboundedSender<PollerCommand>,
    /// Straight to the history service, for what is asked once rather than sent after every poll.
    pub history: mpsc::Sender<HistoryInput>,
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
    setup: HistorySetup,
    events: mpsc::Sender<PollerEvent>,
) -> PollerHandle {
    spawn_inner(params, connected, None, interval, Duration::ZERO, setup, events)
}

/// [`spawn`] for a poller that connects by itself (a fleet's engine): `poolers` go to its first connection, as a
/// start-up collector's own would. The second poll comes `phase` later than the interval says, once: targets
/// started together (every fleet start and SIGHUP) then poll spread over the interval instead of all at once, so
/// neither the process's memory (each poll's rows in flight) nor its CPU has a peak every interval.
pub fn spawn_with_poolers(
    params: ConnParams,
    poolers: super::pooler::Poolers,
    interval: Duration,
    phase: Duration,
    setup: HistorySetup,
    events: mpsc::Sender<PollerEvent>,
) -> PollerHandle {
    spawn_inner(params, None, Some(poolers), interval, phase, setup, events)
}

fn spawn_inner(
    params: ConnParams,
    connected: Option<Collector>,
    initial_poolers: Option<super::pooler::Poolers>,
    interval: Duration,
    phase: Duration,
    mut setup: HistorySetup,
    events: mpsc::Sender<PollerEvent>,
) -> PollerHandle {
    let (commands, rx) = mpsc::unbounded_channel();
    let (history_tx, history_rx) = mpsc::channel(HISTORY_QUEUE);
    let (probe_tx, probe_rx) = mpsc::channel(history::PROBE_QUEUE);
    let probe = setup.probe.take();
    let chosen_timeout = setup.poll_timeout;
    let history = AbortOnDrop(tokio::spawn(history::run(setup, history_rx, probe_rx, events.clone())));
    let collector = Links {
        events: events.clone(),
        history: history_tx.clone(),
        probe,
        probe_connections: probe_tx,
        chosen_timeout,
    };
    let collector = AbortOnDrop(tokio::spawn(run(
        params,
        connected,
        initial_poolers,
        (interval, phase),
        collector,
        rx,
    )));
    let task = tokio::spawn(supervise(collector, history, events));
    PollerHandle {
        commands,
        history: history_tx,
        task,
    }
}

/// Task names, as [`PollerEvent::TaskFailed`] reports them.
pub const COLLECTOR_TASK: &str = "snapshot collector";
pub const HISTORY_TASK: &str = "history service";

/// A task ended with its owner: the supervisor's children go when it is aborted.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Wait on both tasks; a panic or an early end of either is sent as [`PollerEvent::TaskFailed`], never lost.
async fn supervise(mut collector: AbortOnDrop, mut history: AbortOnDrop, events: mpsc::Sender<PollerEvent>) {
    let (task, ended) = tokio::select! {
        ended = &mut collector.0 => (COLLECTOR_TASK, ended),
        ended = &mut history.0 => (HISTORY_TASK, ended),
    };
    // Both end on their own only when the dashboard is gone, which closes `events`.
    if events.is_closed() {
        return;
    }
    let error = match ended {
        Ok(()) => "it stopped unexpectedly".to_string(),
        Err(e) if e.is_panic() => {
            let payload = e.into_panic();
            let text = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".to_string());
            format!("it panicked: {text}")
        }
        Err(e) => format!("it was cancelled: {e}"),
    };
    let _ = events.send(PollerEvent::TaskFailed { task, error }).await;
    // The other task goes on if it can: snapshots without history still beat a blind dashboard.
    if task == HISTORY_TASK {
        let _ = (&mut collector.0).await;
    }
}

/// Where the collector sends what it learns.
struct Links {
    events: mpsc::Sender<PollerEvent>,
    history: mpsc::Sender<HistoryInput>,
    probe: Option<ProbeTarget>,
    /// Where the probe notes each connection it opens, for the history service (see [`history::PROBE_QUEUE`]).
    probe_connections: mpsc::Sender<crate::probe::ProbeConnection>,
    /// The user's poll timeout; `None` follows the interval.
    chosen_timeout: Option<Duration>,
}

/// Runs one probe at a time: a probe already under way is not doubled. The task is owned by the collector's
/// schedule, so it ends with the collector instead of sending into a dashboard that has gone.
/// With the collector's connection at hand, the certificate file on disk is compared with the chain presented.
/// Certificate probes running at once in this process. A probe is about ten TLS handshakes on a blocking thread;
/// a fleet's probes all at once would mean a thread and a malloc arena each and a burst of CPU (measured with
/// `benches/fleet.rs`), where taking turns costs only wall time. With one server it changes nothing.
const PROBES_AT_ONCE: usize = 2;
static PROBE_SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(PROBES_AT_ONCE);

/// A whole probe, or only the chain (from the monitor's own handshake when it has one).
enum ProbeKind {
    Full,
    Chain(Option<crate::probe::scan::Handshake>),
}

fn start_probe(
    running: &mut Option<AbortOnDrop>,
    links: &Links,
    client: Option<std::sync::Arc<tokio_postgres::Client>>,
    limit: Duration,
    kind: ProbeKind,
) {
    if running.as_ref().is_some_and(|task| !task.0.is_finished()) {
        return;
    }
    let events = links.events.clone();
    let target = links.probe.clone();
    let report_to = links.probe_connections.clone();
    *running = Some(AbortOnDrop(tokio::spawn(async move {
        let mut result = match target {
            None => Err(Arc::new(crate::probe::ProbeError::NoTcpHost)),
            Some(mut target) => {
                // Offer no TLS version the server's settings already refuse: each would be a failed handshake in
                // its log, seen by every reader of that log (another pgtls included) as a refused client.
                if let Some(client) = &client {
                    target.range = crate::probe::range::read(client, limit).await;
                }
                // A blocking thread each; with many servers at once they take turns (see PROBES_AT_ONCE).
                let _slot = PROBE_SLOTS.acquire().await;
                let probe = move || match kind {
                    ProbeKind::Full => crate::probe::run_reporting(&target, Some(report_to)),
                    ProbeKind::Chain(seen) => crate::probe::run_chain(&target, seen, Some(report_to)),
                };
                match tokio::task::spawn_blocking(probe).await {
                    Ok(result) => result.map(Box::new).map_err(Arc::new),
                    Err(e) => Err(Arc::new(crate::probe::ProbeError::Task(e.to_string()))),
                }
            }
        };
        if let (Ok(report), Some(client)) = (&mut result, client)
            && !report.chain.is_empty()
        {
            let (path, bytes) = super::cert_file::read(&client, limit).await;
            let path = path.unwrap_or_else(|| "ssl_cert_file".to_string());
            let on_disk = match bytes {
                Ok(bytes) => crate::probe::on_disk::compare(&path, &bytes, &report.chain, chrono::Utc::now()),
                Err(reason) => crate::probe::on_disk::OnDisk {
                    path,
                    verdict: crate::probe::on_disk::OnDiskVerdict::NotCompared {
                        reason: reason.to_string(),
                    },
                },
            };
            crate::probe::on_disk::attach(report, on_disk);
        }
        let _ = events.send(PollerEvent::Probe(result)).await;
    })));
}

/// At the first connection of a fleet's target, the certificate chain from the handshake the monitor just made (no
/// connection of the probe's own), so a fleet's start costs each server one connection, not a probe's ten; the full
/// probe follows on its own schedule.
fn read_chain(schedule: &mut Schedule, links: &Links, collector: &Collector) {
    let Some(target) = links.probe.as_ref().filter(|t| t.chain_at_connect) else {
        return;
    };
    if std::mem::replace(&mut schedule.chain_read, true) {
        return;
    }
    // The monitor reached the host the probe goes to (with several hosts it may have reached another).
    let report = &collector.connected.report;
    let same_host = report.host == target.host && report.port == target.port;
    let seen = collector.handshake().filter(|_| same_host);
    let limit = super::poll_timeout(schedule.interval, links.chosen_timeout);
    start_probe(
        &mut schedule.probe,
        links,
        Some(collector.shared_client()),
        limit,
        ProbeKind::Chain(seen),
    );
}

struct Schedule {
    interval: Duration,
    paused: bool,
    probe: Option<AbortOnDrop>,
    /// The chain was read at a first connection (see [`crate::probe::ProbeTarget::chain_at_connect`]).
    chain_read: bool,
    /// Signals under way; each is bounded by the poll timeout, and they end with the collector.
    signals: Vec<AbortOnDrop>,
    /// Added once to the wait after the first poll (see [`spawn_with_poolers`]).
    phase: Duration,
}

async fn run(
    params: ConnParams,
    mut connected: Option<Collector>,
    initial_poolers: Option<super::pooler::Poolers>,
    (interval, phase): (Duration, Duration),
    links: Links,
    mut commands: mpsc::UnboundedReceiver<PollerCommand>,
) {
    let mut schedule = Schedule {
        interval,
        phase,
        paused: false,
        probe: None,
        chain_read: false,
        signals: Vec::new(),
    };
    let mut backoff = MIN_BACKOFF;
    let mut pending: Option<PendingConnect> = None;
    // The start-up connection says which other backends are ours; every reconnection keeps marking them.
    let helpers = connected.as_ref().and_then(|c| c.helpers().cloned());
    // The poolers (and their admin console connections) are polled on a task of their own for the poller's
    // life, so a console that does not answer never holds up the server's poll, and they outlive reconnections.
    let poolers = match connected.as_mut() {
        Some(collector) => collector.take_poolers(),
        None => initial_poolers.unwrap_or_default(),
    };
    let feed = (!poolers.is_empty()).then(|| super::pooler::feed::PoolerFeed::start(poolers));
    loop {
        let limit = super::poll_timeout(schedule.interval, links.chosen_timeout);
        let attempt = match connected.take() {
            Some(collector) => Ok(collector),
            None => Box::pin(reconnect(&params, limit, &mut pending))
                .await
                .map(|c| c.with_helpers(helpers.clone())),
        };
        let error = match attempt {
            Ok(mut collector) => {
                backoff = MIN_BACKOFF;
                let warnings = collector.warnings();
                if links.events.send(PollerEvent::Connected { warnings }).await.is_err() {
                    return;
                }
                read_chain(&mut schedule, &links, &collector);
                let hba = Box::pin(collector.hba_rules()).await;
                // A history service that is gone was reported by the supervisor; polls go on without it.
                let _ = links
                    .history
                    .send(HistoryInput::Connected {
                        client: collector.shared_client(),
                        hba,
                        own: collector.own_backends().as_ref().map(std::sync::Arc::downgrade),
                        server: collector.server_addr(),
                    })
                    .await;
                let ended = poll_loop(&mut collector, &mut schedule, &links, feed.as_ref(), &mut commands).await;
                match ended {
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
        if links.events.send(failed).await.is_err() {
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
                    Some(other) => apply(&mut schedule, other, &links, None).await,
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
            joined.unwrap_or_else(|e| Err(CollectError::poll(format!("the connection task failed: {e}"))))
        }
        Err(_) => Err(CollectError::Stalled {
            phase: super::Phase::ConnectionAttempt,
            after: wait,
        }),
    }
}

/// A command that does not change the flow of the loop it arrives in. `client` is the collector's connection,
/// `None` while there is none.
async fn apply(
    schedule: &mut Schedule,
    cmd: PollerCommand,
    links: &Links,
    client: Option<&std::sync::Arc<tokio_postgres::Client>>,
) {
    match cmd {
        PollerCommand::Signal(request) => start_signal(schedule, request, links, client).await,
        PollerCommand::RefreshNow => {}
        PollerCommand::Probe => {
            let limit = super::poll_timeout(schedule.interval, links.chosen_timeout);
            start_probe(&mut schedule.probe, links, client.cloned(), limit, ProbeKind::Full);
        }
        PollerCommand::SendHistory(on) => {
            let _ = links.history.send(HistoryInput::SendHistory(on)).await;
        }
        PollerCommand::HistoryDetail(detail) => {
            let _ = links.history.send(HistoryInput::Detail(detail)).await;
        }
        PollerCommand::SetInterval(interval) => schedule.interval = interval,
        PollerCommand::SetPaused(paused) => schedule.paused = paused,
    }
}

/// Signal a backend on its own task, so a slow answer never holds up polls or keys; the result comes back as
/// an event.
async fn start_signal(
    schedule: &mut Schedule,
    request: SignalRequest,
    links: &Links,
    client: Option<&std::sync::Arc<tokio_postgres::Client>>,
) {
    let Some(client) = client.cloned() else {
        let outcome = SignalOutcome::Failed("not connected to the server; try again once reconnected".to_string());
        let _ = links.events.send(PollerEvent::Signalled { request, outcome }).await;
        return;
    };
    schedule.signals.retain(|task| !task.0.is_finished());
    let limit = super::poll_timeout(schedule.interval, links.chosen_timeout);
    let events = links.events.clone();
    schedule.signals.push(AbortOnDrop(tokio::spawn(async move {
        let outcome = super::act::signal(&client, request, limit).await;
        let _ = events.send(PollerEvent::Signalled { request, outcome }).await;
    })));
}

/// Poll until the connection fails (returns the error) or the receiver is gone (returns None).
async fn poll_loop(
    collector: &mut Collector,
    schedule: &mut Schedule,
    links: &Links,
    poolers: Option<&super::pooler::feed::PoolerFeed>,
    commands: &mut mpsc::UnboundedReceiver<PollerCommand>,
) -> Option<CollectError> {
    // `r` polls once even while paused.
    let mut refresh = false;
    // Signals run on the same connection, next to the poll (tokio-postgres pipelines them).
    let client = collector.shared_client();
    loop {
        if !schedule.paused || std::mem::take(&mut refresh) {
            let limit = super::poll_timeout(schedule.interval, links.chosen_timeout);
            collector.set_poll_timeout(limit);
            if let Some(feed) = poolers {
                feed.request(limit);
            }
            // Commands still count while a poll is pending: `r` gives up on a slow poll and reconnects now.
            let polled = {
                let mut poll = Box::pin(collector.poll());
                loop {
                    tokio::select! {
                        result = &mut poll => break Some(result),
                        cmd = commands.recv() => match cmd {
                            None => return None,
                            Some(PollerCommand::RefreshNow) => break None,
                            Some(other) => apply(schedule, other, links, Some(&client)).await,
                        },
                    }
                }
            };
            let Some(polled) = polled else {
                collector.abandon();
                return Some(CollectError::poll(
                    "the pending poll was given up on request; reconnecting",
                ));
            };
            match polled {
                Ok(mut snapshot) => {
                    if let Some(feed) = poolers {
                        feed.attach(&mut snapshot);
                    }
                    // The dashboard first: log reading never delays a frame.
                    let snapshot = Arc::new(snapshot);
                    let for_history = Arc::clone(&snapshot);
                    if links.events.send(event_after_poll(snapshot, None)).await.is_err() {
                        return None;
                    }
                    let _ = links.history.send(HistoryInput::Snapshot(for_history)).await;
                }
                Err(error) => return Some(error),
            }
        }
        let deadline = Instant::now() + schedule.interval + std::mem::take(&mut schedule.phase);
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
                    Some(PollerCommand::SetPaused(false)) if schedule.paused => {
                        schedule.paused = false;
                        break;
                    }
                    Some(other) => apply(schedule, other, links, Some(&client)).await,
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

    /// A fleet holds each target's tasks for its whole life, so their futures' size is memory per target: the
    /// state of a connect or a poll, which lasts milliseconds, is boxed while it runs instead of held for good.
    #[test]
    fn task_futures_are_small() {
        let env = Environment::new(HashMap::new(), None, "tester");
        let params = resolve(Some("host=127.0.0.1 port=1 user=x"), &env).expect("conninfo resolves");
        let (events, _events_rx) = mpsc::channel(1);
        let (history, history_rx) = mpsc::channel(1);
        let (probe_tx, probe_rx) = mpsc::channel(1);
        let (_commands, commands_rx) = mpsc::unbounded_channel();
        let links = Links {
            events: events.clone(),
            history,
            probe: None,
            probe_connections: probe_tx,
            chosen_timeout: None,
        };
        let collector = run(
            params,
            None,
            None,
            (Duration::from_secs(5), Duration::ZERO),
            links,
            commands_rx,
        );
        let service = history::run(HistorySetup::none(), history_rx, probe_rx, events);
        // Before the large awaits inside were boxed: 9.0 and 11.7 kB (debug build); each is held per target.
        const LIMIT: usize = 10 * 1024;
        assert!(
            std::mem::size_of_val(&collector) <= LIMIT,
            "{}",
            std::mem::size_of_val(&collector)
        );
        assert!(
            std::mem::size_of_val(&service) <= LIMIT,
            "{}",
            std::mem::size_of_val(&service)
        );
    }

    /// One snapshot event per poll, sent before the history service reads anything; the history only while asked
    /// for, and at once when asked.
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
        assert!(matches!(
            next(&mut events).await,
            PollerEvent::Polled { history: None, .. }
        ));
        match next(&mut events).await {
            PollerEvent::History(history) => assert_eq!(history.whatif.len(), 2),
            other => panic!("expected the history after the poll, got {other:?}"),
        }
        send(PollerCommand::SendHistory(false));
        send(PollerCommand::RefreshNow);
        assert!(matches!(
            next(&mut events).await,
            PollerEvent::Polled { history: None, .. }
        ));
        assert!(
            tokio::time::timeout(Duration::from_millis(500), events.recv())
                .await
                .is_err(),
            "no history once turned off"
        );
    }

    /// A panic in the history service is reported as an event; the snapshot collector goes on.
    #[tokio::test]
    async fn a_panicking_history_service_is_reported_and_snapshots_go_on() {
        let (tx, mut events) = mpsc::channel(16);
        let (history_tx, _history_rx) = mpsc::channel::<HistoryInput>(1);
        let collector = AbortOnDrop(tokio::spawn(async move {
            let _keep = history_tx;
            std::future::pending::<()>().await;
        }));
        let history = AbortOnDrop(tokio::spawn(async { panic!("boom in the ledger") }));
        let supervisor = tokio::spawn(supervise(collector, history, tx));
        match next(&mut events).await {
            PollerEvent::TaskFailed { task, error } => {
                assert_eq!(task, HISTORY_TASK);
                assert!(error.contains("boom in the ledger"), "{error}");
            }
            other => panic!("expected TaskFailed, got {other:?}"),
        }
        assert!(!supervisor.is_finished(), "the collector is still watched");
        supervisor.abort();

        let (tx, mut events) = mpsc::channel(16);
        let collector = AbortOnDrop(tokio::spawn(async { panic!("boom in the poll") }));
        let history = AbortOnDrop(tokio::spawn(std::future::pending::<()>()));
        tokio::spawn(supervise(collector, history, tx));
        assert!(matches!(
            next(&mut events).await,
            PollerEvent::TaskFailed {
                task: COLLECTOR_TASK,
                ..
            }
        ));
    }

    /// A log far longer than one budget: the first snapshot goes out before any of it is read, the first history
    /// holds only the first budget's clients, snapshots keep flowing, and the rest is caught up to the last line.
    #[tokio::test]
    async fn a_long_log_is_applied_in_budgets_while_snapshots_flow() {
        let lab = Lab::start(LabOptions::default()).await.expect("lab starts");
        let home = tempfile::tempdir().expect("temp dir");
        let env = Environment::new(HashMap::new(), Some(home.path().to_path_buf()), "tester");
        let params = resolve(Some(&lab.conninfo(SUPERUSER)), &env).expect("conninfo resolves");
        let log = home.path().join("big.log");
        const CLIENTS: usize = 2000;
        let mut text = String::new();
        for i in 0..CLIENTS {
            let pid = 100_000 + i;
            text += &format!(
                "2026-11-27 17:42:50.000 UTC [{pid}] LOG:  connection received: host=10.9.{}.{} port=5\n\
                 2026-11-27 17:42:50.001 UTC [{pid}] LOG:  connection authorized: user=bulk{i} database=d \
                 SSL enabled (protocol=TLSv1.2, cipher=AES128-SHA, bits=128)\n",
                i / 256,
                i % 256
            );
        }
        std::fs::write(&log, &text).expect("log written");
        let setup = HistorySetup {
            server_log: Some(log),
            // About 60 connections per budget: the log takes more than 30 budgets.
            log_budget: Some(16 << 10),
            ..HistorySetup::none()
        };
        let (tx, mut events) = mpsc::channel(16);
        let poller = spawn(params, None, Duration::from_millis(200), setup, tx);
        poller
            .commands
            .send(PollerCommand::SendHistory(true))
            .expect("poller runs");
        let bulk = |h: &History| h.clients.iter().filter(|c| c.key.user.starts_with("bulk")).count();
        let mut polls_before_history = 0;
        let mut polls = 0;
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while seen.last() != Some(&CLIENTS) && Instant::now() < deadline {
            match next(&mut events).await {
                PollerEvent::Polled { .. } => {
                    polls += 1;
                    if seen.is_empty() {
                        polls_before_history += 1;
                    }
                }
                PollerEvent::History(h) => seen.push(bulk(&h)),
                _ => {}
            }
        }
        assert!(polls_before_history >= 1, "the snapshot goes out first");
        let first = seen.first().copied().unwrap_or_default();
        assert!(
            first > 0 && first < CLIENTS / 10,
            "first history after one budget: {seen:?}"
        );
        assert_eq!(seen.last(), Some(&CLIENTS), "caught up: {seen:?}");
        assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
        // Snapshots keep coming once caught up.
        let more = loop {
            if let PollerEvent::Polled { .. } = next(&mut events).await {
                break polls + 1;
            }
        };
        assert!(more >= 2);
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

    /// `P` pressed twice while a probe runs starts one probe, not two (issue 14, item 1; the dashboard guards it
    /// too, this holds for any caller).
    #[tokio::test]
    async fn a_probe_under_way_is_not_doubled() {
        let lab = Lab::start(LabOptions::default()).await.expect("lab starts");
        let home = tempfile::tempdir().expect("temp dir");
        let env = Environment::new(HashMap::new(), Some(home.path().to_path_buf()), "tester");
        let params = resolve(Some(&lab.conninfo(SUPERUSER)), &env).expect("conninfo resolves");
        let (tx, mut events) = mpsc::channel(16);
        let mut setup = HistorySetup::none();
        setup.probe = ProbeTarget::from_params(&params, 30, false);
        let poller = spawn(params, None, Duration::from_secs(3600), setup, tx);
        assert!(matches!(next(&mut events).await, PollerEvent::Connected { .. }));
        assert!(matches!(next(&mut events).await, PollerEvent::Polled { .. }));
        poller.commands.send(PollerCommand::Probe).expect("poller runs");
        poller.commands.send(PollerCommand::Probe).expect("poller runs");
        let mut probes = 0;
        while let Ok(Some(event)) = tokio::time::timeout(Duration::from_secs(8), events.recv()).await {
            if let PollerEvent::Probe(result) = event {
                assert!(result.is_ok(), "the lab answers a probe: {:?}", result.err());
                probes += 1;
            }
        }
        assert_eq!(probes, 1);
    }
}
