//! What the ledger remembers so that a restart counts nothing twice: how far each log source was applied, the
//! sessions connected at the latest poll (pid + backend_start), the poolers' clients connected at the latest answer
//! (the pooler's address, its `ptr` + connect time), and the log sessions a poll may still see.
//!
//! A restarted pgtls reads a log from where it stopped ([`LogPosition`]) instead of from its start, and a session
//! still connected is the same session it counted before ([`Entry::Live`]), so three runs of `check` or many
//! restarts of `serve` give the same counts as one long run.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Client, ClientKey, Entry, Ledger, Live};

/// How far one log source has been applied to the ledger.
///
/// The file is recognised by its identity (device and inode) and by the hash of its first line, so a file renamed
/// away (rotation) or truncated and refilled (`copytruncate`) is not read on from an offset into other text. The
/// hash of the last applied line proves the offset still falls where it did: a file rewritten to the same length
/// is caught too. The last applied line's time is the guard when the file is not recognised: nothing older than
/// it is applied again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogPosition {
    /// The source as configured: `file:<path given>` or `sql` (the server's current log file through SQL).
    pub source: String,
    /// The file read at that moment (for `sql`, as the server names it; for a file, its path).
    pub file: String,
    #[serde(default)]
    pub dev: u64,
    #[serde(default)]
    pub ino: u64,
    /// [`line_hash`] of the file's first line; `None` while the file had no whole line yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_hash: Option<u64>,
    /// Bytes applied: the end of the last whole record read.
    pub offset: u64,
    /// [`line_hash`] of the line ending at `offset` (its newline excluded); `None` at offset 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_line_hash: Option<u64>,
    /// The time of the latest line applied from this source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_at: Option<DateTime<Utc>>,
}

/// FNV-1a, 64 bits: stable across builds and releases (std's hasher is not promised to be), and only ever
/// compared with itself on the same bytes.
pub fn line_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Bytes of a line hashed at most: a longer line is known by its last this-many bytes, the same on both sides.
pub const HASHED_LINE_MAX: usize = 8192;

/// The hash of the last line of `before` (the bytes just before a record boundary, ending in its newline), as
/// [`LogPosition::last_line_hash`] holds it: at most [`HASHED_LINE_MAX`] bytes, newline excluded.
pub fn last_line_hash(before: &[u8]) -> Option<u64> {
    let body = before.strip_suffix(b"\n").unwrap_or(before);
    if before.is_empty() {
        return None;
    }
    let start = body.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let line = &body[start..];
    let line = &line[line.len().saturating_sub(HASHED_LINE_MAX)..];
    Some(line_hash(line))
}

/// The hash of the first whole line of `head` (the file's first bytes), if it holds one.
pub fn head_hash(head: &[u8]) -> Option<u64> {
    let end = head.iter().position(|b| *b == b'\n')?;
    let line = &head[..end];
    Some(line_hash(&line[..line.len().min(HASHED_LINE_MAX)]))
}

impl Ledger {
    /// Where `source` was last applied up to, if this ledger ever read it.
    pub fn log_position(&self, source: &str) -> Option<&LogPosition> {
        self.log_positions.get(source)
    }

    /// Note how far a log source has been applied; the entry to journal when it moved.
    pub fn note_log_position(&mut self, position: LogPosition) -> Option<Entry> {
        if self.log_positions.get(&position.source) == Some(&position) {
            return None;
        }
        let entry = Entry::LogPosition(position);
        self.apply(&entry);
        Some(entry)
    }

    pub(super) fn apply_live(&mut self, pid: i32, start: Option<DateTime<Utc>>, key: &ClientKey) {
        let client = match self.index.get(&self.records, key) {
            Some(i) => Client::Record(i),
            None => Client::Key(Box::new(key.clone())),
        };
        self.live.insert(pid, Live { start, client });
    }

    pub(super) fn apply_ended(&mut self, pid: i32, start: Option<DateTime<Utc>>) {
        if self.live.get(&pid).is_some_and(|l| l.start == start) {
            self.live.remove(&pid);
        }
    }

    /// A pooler's client as [`Entry::PooledLive`] journalled it. PgBouncer's `ptr` is the address of its client
    /// object, reused after a disconnect, so the connect time (and the key) must match too (see
    /// `observe_pooler_clients`).
    pub(super) fn apply_pooled_live(&mut self, pooler: &str, ptr: &str, start: Option<DateTime<Utc>>, key: &ClientKey) {
        let client = match self.index.get(&self.records, key) {
            Some(i) => Client::Record(i),
            None => Client::Key(Box::new(key.clone())),
        };
        self.live_pooled
            .insert((pooler.to_string(), ptr.to_string()), Live { start, client });
    }

    pub(super) fn apply_pooled_ended(&mut self, pooler: &str, ptr: &str, start: Option<DateTime<Utc>>) {
        let id = (pooler.to_string(), ptr.to_string());
        if self.live_pooled.get(&id).is_some_and(|l| l.start == start) {
            self.live_pooled.remove(&id);
        }
    }

    /// The resumable part of the compacted state: positions, live sessions and pooled clients, pending log
    /// sessions.
    pub(super) fn compacted_resume(&self) -> impl Iterator<Item = Entry> + '_ {
        let mut live: Vec<_> = self.live.iter().collect();
        live.sort_by_key(|(pid, _)| **pid);
        let mut pooled: Vec<_> = self.live_pooled.iter().collect();
        pooled.sort_by(|a, b| a.0.cmp(b.0));
        self.log_positions
            .values()
            .cloned()
            .map(Entry::LogPosition)
            .chain(live.into_iter().map(|(pid, l)| Entry::Live {
                pid: *pid,
                start: l.start,
                key: l.client.key(&self.records).clone(),
            }))
            .chain(pooled.into_iter().map(|((pooler, ptr), l)| Entry::PooledLive {
                pooler: pooler.clone(),
                ptr: ptr.clone(),
                start: l.start,
                key: l.client.key(&self.records).clone(),
            }))
            .chain(
                self.from_log
                    .iter()
                    .map(|(pid, at)| Entry::LogPending { pid: *pid, at: *at }),
            )
    }
}

/// The pooled clients of the previous answer that the latest no longer listed (what is left of `previous` once
/// each listed client took its own), as journal lines in a stable order.
pub(super) fn pooled_ended(previous: HashMap<(String, String), Live>) -> Vec<Entry> {
    let mut ended: Vec<_> = previous
        .into_iter()
        .map(|((pooler, ptr), l)| Entry::PooledEnded {
            pooler,
            ptr,
            start: l.start,
        })
        .collect();
    ended.sort_by(|a, b| match (a, b) {
        (Entry::PooledEnded { pooler: p, ptr: q, .. }, Entry::PooledEnded { pooler: r, ptr: t, .. }) => {
            (p, q).cmp(&(r, t))
        }
        _ => std::cmp::Ordering::Equal,
    });
    ended
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::analysis::ledger::KeyFields;
    use crate::fixtures;

    fn replayed(ledger: &Ledger) -> Ledger {
        let mut again = Ledger::new(ledger.fields);
        for e in ledger.compacted() {
            again.apply(&e);
        }
        again
    }

    /// A restart (the compacted state replayed into a fresh ledger) sees the sessions still connected as the ones
    /// it counted: the next poll adds nothing; a session that ended before the restart and a new one are told apart.
    #[test]
    fn sessions_connected_across_a_restart_are_counted_once() {
        let mut ledger = Ledger::new(KeyFields::default());
        let snap = fixtures::snapshot();
        ledger.observe_snapshot(&snap, false);
        let counted = ledger.total_sessions();
        for round in 1..=5 {
            let mut again = replayed(&ledger);
            let mut later = snap.clone();
            later.taken_at += Duration::seconds(10 * round);
            let entries = again.observe_snapshot(&later, false);
            assert!(
                !entries.iter().any(|e| matches!(e, Entry::Session { .. })),
                "round {round}: {entries:?}"
            );
            assert_eq!(again.total_sessions(), counted);
            assert!(again.records().any(|r| r.connected_now > 0));
            ledger = again;
        }
        // One session ends; a new backend reuses another's pid: counted as new, once.
        let mut next = snap.clone();
        next.taken_at += Duration::minutes(5);
        let i = next.sessions.iter().position(|s| !s.monitor).unwrap();
        next.sessions[i].backend_start = next.sessions[i].backend_start.map(|t| t + Duration::minutes(4));
        let reused = next.sessions[i].pid;
        let j = next.sessions.iter().rposition(|s| !s.monitor).unwrap();
        let gone = next.sessions.remove(j).pid;
        let entries = ledger.observe_snapshot(&next, false);
        assert!(
            entries
                .iter()
                .any(|e| matches!(e, Entry::Ended { pid, .. } if *pid == gone))
        );
        assert!(
            entries
                .iter()
                .any(|e| matches!(e, Entry::Live { pid, .. } if *pid == reused))
        );
        assert_eq!(ledger.total_sessions(), counted + 1);
        let mut again = replayed(&ledger);
        next.taken_at += Duration::seconds(2);
        again.observe_snapshot(&next, false);
        assert_eq!(again.total_sessions(), counted + 1);
    }

    /// A pooler's clients connected across a restart are the clients counted before (the pooler's `ptr` and
    /// connect time, from the compacted state or from the journal); one that left and a new client on its reused
    /// `ptr` are told apart, after a restart too.
    #[test]
    fn pooled_clients_connected_across_a_restart_are_counted_once() {
        let mut ledger = Ledger::new(KeyFields::default());
        let snap = fixtures::snapshot_pooled();
        let mut journal = ledger.observe_snapshot(&snap, false);
        let pooled = journal.iter().filter(|e| matches!(e, Entry::PooledLive { .. })).count();
        assert_eq!(pooled, 3, "{journal:?}");
        let counted = ledger.total_sessions();
        let from_journal = |journal: &[Entry]| {
            let mut again = Ledger::new(KeyFields::default());
            for e in journal {
                again.apply(e);
            }
            again
        };
        for round in 1..=3 {
            let mut later = snap.clone();
            later.taken_at += Duration::seconds(10 * round);
            for mut again in [replayed(&ledger), from_journal(&journal)] {
                let entries = again.observe_snapshot(&later, false);
                assert!(
                    !entries.iter().any(|e| matches!(e, Entry::Session { .. })),
                    "round {round}: {entries:?}"
                );
                assert_eq!(again.total_sessions(), counted, "round {round}");
            }
            journal.extend(ledger.observe_snapshot(&later, false));
            ledger = replayed(&ledger);
        }
        // The pooler gives one client's `ptr` to a new client, and another client leaves.
        let mut next = snap.clone();
        next.taken_at += Duration::minutes(5);
        let pooler = &mut next.poolers[0];
        pooler.clients[0].connect_time = pooler.clients[0].connect_time.map(|t| t + Duration::minutes(4));
        let gone = pooler.clients.remove(2).ptr;
        let entries = ledger.observe_snapshot(&next, false);
        assert!(
            entries
                .iter()
                .any(|e| matches!(e, Entry::PooledEnded { ptr, .. } if *ptr == gone)),
            "{entries:?}"
        );
        journal.extend(entries);
        assert_eq!(ledger.total_sessions(), counted + 1);
        next.taken_at += Duration::seconds(2);
        for mut again in [replayed(&ledger), from_journal(&journal)] {
            again.observe_snapshot(&next, false);
            assert_eq!(again.total_sessions(), counted + 1);
        }
    }

    /// A session counted from its log line before any poll saw it is not counted again by the first poll after a
    /// restart.
    #[test]
    fn a_log_session_a_poll_has_not_seen_yet_survives_a_restart() {
        let mut ledger = Ledger::new(KeyFields::default());
        let snap = fixtures::snapshot();
        ledger.observe_snapshot(&snap, true);
        let mut s = fixtures::session(4400, crate::model::ConnClass::Tls12);
        s.backend_start = Some(snap.taken_at + Duration::seconds(1));
        let event = crate::logsource::ConnectionEvent {
            client_port: None,
            at: snap.taken_at + Duration::seconds(1),
            pid: 4400,
            user: s.user.clone().unwrap_or_default(),
            database: s.database.clone().unwrap_or_default(),
            application_name: s.application_name.clone(),
            client_addr: s.client_addr.clone(),
            local_socket: false,
            tls: None,
            gss_encrypted: false,
            replication: false,
            hba_line: None,
        };
        let entry = ledger.observe_log(&event).unwrap();
        assert!(matches!(entry, Entry::Session { pid: Some(4400), .. }), "{entry:?}");
        let counted = ledger.total_sessions();
        let mut again = replayed(&ledger);
        let mut later = snap.clone();
        later.taken_at += Duration::seconds(3);
        later.sessions.push(s);
        again.observe_snapshot(&later, true);
        assert_eq!(again.total_sessions(), counted);
    }

    #[test]
    fn positions_are_kept_and_only_a_move_is_journalled() {
        let mut ledger = Ledger::new(KeyFields::default());
        let at = fixtures::now();
        let position = LogPosition {
            source: "file:/var/log/pg.log".into(),
            file: "/var/log/pg.log".into(),
            dev: 1,
            ino: 2,
            head_hash: head_hash(b"first line\nsecond"),
            offset: 11,
            last_line_hash: last_line_hash(b"first line\n"),
            last_at: Some(at),
        };
        assert!(ledger.note_log_position(position.clone()).is_some());
        assert!(ledger.note_log_position(position.clone()).is_none(), "unchanged");
        assert_eq!(replayed(&ledger).log_position("file:/var/log/pg.log"), Some(&position));
        assert_eq!(position.head_hash, position.last_line_hash);
        assert_eq!(last_line_hash(b""), None);
        assert_eq!(last_line_hash(b"a\nbc\n"), Some(line_hash(b"bc")));
    }
}
