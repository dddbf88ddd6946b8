//! The poller task: owns the connection, polls on an interval, reconnects with backoff.
//! It only sends events; the UI never waits on the network.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{CollectError, Collector};
use crate::conn::params::ConnParams;
use crate::model::Snapshot;

#[derive(Debug, Clone)]
pub enum PollerEvent {
    /// A connection was made; warnings are non-fatal notes (e.g. .pgpass ignored).
    Connected {
        warnings: Vec<String>,
    },
    Snapshot(Box<Snapshot>),
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
    events: mpsc::Sender<PollerEvent>,
) -> PollerHandle {
    let (commands, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(run(params, connected, interval, events, rx));
    PollerHandle { commands, task }
}

struct Schedule {
    interval: Duration,
    paused: bool,
}

async fn run(
    params: ConnParams,
    mut connected: Option<Collector>,
    interval: Duration,
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
                match poll_loop(&mut collector, &mut schedule, &events, &mut commands).await {
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
                    Some(other) => apply(&mut schedule, other),
                },
            }
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

fn apply(schedule: &mut Schedule, cmd: PollerCommand) {
    match cmd {
        PollerCommand::RefreshNow => {}
        PollerCommand::SetInterval(interval) => schedule.interval = interval,
        PollerCommand::SetPaused(paused) => schedule.paused = paused,
    }
}

/// Poll until the connection fails (returns the error) or the receiver is gone (returns None).
async fn poll_loop(
    collector: &mut Collector,
    schedule: &mut Schedule,
    events: &mpsc::Sender<PollerEvent>,
    commands: &mut mpsc::UnboundedReceiver<PollerCommand>,
) -> Option<CollectError> {
    loop {
        if !schedule.paused {
            match collector.poll().await {
                Ok(snapshot) => {
                    if events.send(PollerEvent::Snapshot(Box::new(snapshot))).await.is_err() {
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
