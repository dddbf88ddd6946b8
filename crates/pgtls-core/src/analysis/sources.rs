//! The state of each source of what pgtls knows about a target (the server's poll, each pooler's console; the
//! connection log and the ledger later), named alike in `/metrics` (`pgtls_source_up{target,source}`), the JSON
//! API and the dashboard. Pure: built from what the target's poller last reported.

use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};

use crate::model::Snapshot;

/// One source, as its `source` label spells it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    /// The server's poll (pg_stat_activity and pg_stat_ssl).
    Poll,
    /// The server's connection log.
    Log,
    /// The ledger file.
    Ledger,
    /// A PgBouncer admin console, by its address as given.
    Pooler(String),
}

impl Source {
    /// `poll`, `log`, `ledger`, `pooler:<address>` (outside text: a sink escapes it as it escapes any).
    pub fn label(&self) -> String {
        match self {
            Source::Poll => "poll".to_string(),
            Source::Log => "log".to_string(),
            Source::Ledger => "ledger".to_string(),
            Source::Pooler(address) => format!("pooler:{address}"),
        }
    }
}

impl Serialize for Source {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.label())
    }
}

/// Whether a source is on, one model for every output (the dashboard's sources line, `check`'s text, JSON and
/// perfdata, `/metrics` and the API): what is said about a source is said from this, never guessed from a flag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SourceStatus {
    /// Read as it should be.
    On,
    /// Read, but missing part of what it should give (the reason says what).
    Degraded { reason: String },
    /// Not read at all: what it alone shows is unknown, not zero.
    Off { reason: String },
}

impl SourceStatus {
    /// On or degraded: what it gives is there.
    pub fn is_on(&self) -> bool {
        !matches!(self, SourceStatus::Off { .. })
    }

    pub fn reason(&self) -> Option<&str> {
        match self {
            SourceStatus::On => None,
            SourceStatus::Degraded { reason } | SourceStatus::Off { reason } => Some(reason),
        }
    }

    /// "on", "degraded: REASON", "off: REASON" (outside text inside: escape for the sink).
    pub fn describe(&self) -> String {
        match self {
            SourceStatus::On => "on".to_string(),
            SourceStatus::Degraded { reason } => format!("degraded: {reason}"),
            SourceStatus::Off { reason } => format!("off: {reason}"),
        }
    }
}

/// The connection log's and the ledger file's status beside the poll's and the poolers' (see [`of_target`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryStatus {
    /// `None` before the history service has said anything.
    pub log: Option<SourceStatus>,
    /// `None` when the target keeps no ledger file.
    pub ledger: Option<SourceStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceState {
    pub source: Source,
    /// Its last attempt answered.
    pub up: bool,
    /// When it last answered, whether or not it answers now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_answer: Option<DateTime<Utc>>,
    /// Rows in its last answer (sessions for the poll, every SHOW together for a pooler).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// Its last answer passed a cap and was cut there.
    pub truncated: bool,
    /// Why it is not up (outside text: escape for the output).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What it says is current: false while the target is down, when a pooler's last answer is from before.
    pub current: bool,
}

/// Why a pooler's state is not known while the server is down: its consoles are polled with the server.
pub const NOT_POLLED: &str = "not polled while the server's poll fails";

/// The poll first, then each pooler in the order given. While the target is down its poolers are listed with
/// their last answer's time only.
pub fn of_target(up: bool, error: Option<&str>, snapshot: Option<&Snapshot>) -> Vec<SourceState> {
    of_target_with(up, error, snapshot, &HistoryStatus::default())
}

/// [`of_target`], then the connection log and the ledger file as the history service last said. The log is read
/// with the server's poll (through SQL, or a file whose lines only mean something for a polled server), so while
/// the target is down it is listed as not current, like a pooler.
pub fn of_target_with(
    up: bool,
    error: Option<&str>,
    snapshot: Option<&Snapshot>,
    history: &HistoryStatus,
) -> Vec<SourceState> {
    let mut states = poll_and_poolers(up, error, snapshot);
    let of = |source: Source, status: &SourceStatus, current: bool| SourceState {
        source,
        up: status.is_on() && current,
        last_answer: None,
        rows: None,
        truncated: false,
        error: if current {
            status.reason().map(str::to_string)
        } else {
            Some(NOT_POLLED.to_string())
        },
        current,
    };
    if let Some(log) = &history.log {
        states.push(of(Source::Log, log, up));
    }
    // The ledger file is written whether or not the server answers.
    if let Some(ledger) = &history.ledger {
        states.push(of(Source::Ledger, ledger, true));
    }
    states
}

fn poll_and_poolers(up: bool, error: Option<&str>, snapshot: Option<&Snapshot>) -> Vec<SourceState> {
    let mut states = vec![SourceState {
        source: Source::Poll,
        up,
        last_answer: snapshot.map(|s| s.taken_at),
        rows: snapshot.filter(|_| up).map(|s| s.sessions.len() as u64),
        truncated: false,
        error: (!up).then(|| error.map(str::to_string)).flatten(),
        current: true,
    }];
    for pooler in snapshot.map(|s| s.poolers.as_slice()).unwrap_or_default() {
        let source = Source::Pooler(pooler.address.clone());
        states.push(if up {
            SourceState {
                source,
                up: pooler.is_up(),
                last_answer: pooler.answered_at,
                rows: pooler.is_up().then_some(pooler.rows),
                truncated: pooler.is_up() && pooler.truncated,
                error: pooler.error.clone(),
                current: true,
            }
        } else {
            SourceState {
                source,
                up: false,
                last_answer: pooler.answered_at,
                rows: None,
                truncated: false,
                error: Some(NOT_POLLED.to_string()),
                current: false,
            }
        });
    }
    states
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    #[test]
    fn the_log_and_the_ledger_follow_the_poll_and_the_poolers() {
        let snap = fixtures::snapshot_pooled();
        let history = HistoryStatus {
            log: Some(SourceStatus::Off {
                reason: "permission denied for function pg_read_binary_file".into(),
            }),
            ledger: Some(SourceStatus::Off {
                reason: "No space left on device".into(),
            }),
        };
        let states = of_target_with(true, None, Some(&snap), &history);
        let labels: Vec<String> = states.iter().map(|s| s.source.label()).collect();
        assert_eq!(labels, ["poll", "pooler:pool.example.internal:6432", "log", "ledger"]);
        assert!(!states[2].up && states[2].current);
        assert_eq!(
            states[2].error.as_deref(),
            Some("permission denied for function pg_read_binary_file")
        );
        assert!(!states[3].up);
        assert!(
            SourceStatus::Degraded { reason: "x".into() }.is_on(),
            "degraded is still read"
        );
        let json = serde_json::to_value(&history.log).unwrap();
        assert_eq!(json["state"], "off");
        assert_eq!(SourceStatus::On.describe(), "on");
        let down = of_target_with(false, Some("refused"), Some(&snap), &history);
        assert!(!down[2].current && !down[2].up);
        assert!(down[3].current, "the ledger is written while the server is down");
    }

    #[test]
    fn the_poll_then_each_pooler_and_nothing_current_of_a_pooler_while_down() {
        let mut snap = fixtures::snapshot_pooled();
        snap.poolers[0].answered_at = Some(snap.taken_at);
        snap.poolers[0].rows = 12;
        snap.poolers[0].truncated = true;
        let up = of_target(true, None, Some(&snap));
        assert_eq!(up.len(), 2);
        assert_eq!(up[0].source.label(), "poll");
        assert_eq!(up[0].rows, Some(snap.sessions.len() as u64));
        assert_eq!(up[1].source.label(), "pooler:pool.example.internal:6432");
        assert!(up[1].up && up[1].truncated && up[1].current);
        assert_eq!(up[1].rows, Some(12));

        let down = of_target(false, Some("connection refused"), Some(&snap));
        assert!(!down[0].up);
        assert_eq!(down[0].error.as_deref(), Some("connection refused"));
        assert_eq!(
            down[0].last_answer,
            Some(snap.taken_at),
            "the last poll's time is a fact"
        );
        assert!(!down[1].up && !down[1].current && !down[1].truncated);
        assert_eq!(down[1].rows, None);
        assert_eq!(down[1].last_answer, Some(snap.taken_at));
        assert_eq!(
            serde_json::to_value(&down[1]).unwrap()["source"],
            "pooler:pool.example.internal:6432"
        );
    }
}

/// One line of a "Sources" note: a source (or what one misses) in words, and how it stands, so that a view marks
/// it without reading the words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceNote {
    pub state: NoteState,
    pub text: String,
}

/// How a [`SourceNote`]'s source stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoteState {
    /// Working (its text may still say what it cannot see).
    On,
    /// Working, with something to look at (forged-looking log lines).
    Alert,
    /// Stopped or unreadable: the history lacks what it would have told.
    Off,
}

impl SourceNote {
    pub fn on(text: impl Into<String>) -> SourceNote {
        SourceNote {
            state: NoteState::On,
            text: text.into(),
        }
    }

    pub fn alert(text: impl Into<String>) -> SourceNote {
        SourceNote {
            state: NoteState::Alert,
            text: text.into(),
        }
    }

    pub fn off(text: impl Into<String>) -> SourceNote {
        SourceNote {
            state: NoteState::Off,
            text: text.into(),
        }
    }
}

impl std::fmt::Display for SourceNote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}
