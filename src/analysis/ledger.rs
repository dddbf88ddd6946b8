//! The client ledger: every client identity seen, with the TLS it used, across polls, log lines and restarts.
//!
//! A single poll cannot answer "who breaks if I raise the minimum?": a nightly job that connects
//! for two seconds never shows in it. The ledger keeps everything the poller and the connection
//! log have seen. It is rebuilt by replaying an append-only JSON-lines journal, so a crash loses
//! at most the last poll and a damaged line costs only that line.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::model::{ConnClass, Session, Snapshot};

/// Which fields identify a client. Pooled apps connect from many addresses: drop the address for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyFields {
    pub user: bool,
    pub database: bool,
    pub application: bool,
    pub address: bool,
}

impl Default for KeyFields {
    fn default() -> Self {
        KeyFields {
            user: true,
            database: true,
            application: true,
            address: true,
        }
    }
}

impl KeyFields {
    /// From names like `["user", "database", "application"]`.
    pub fn from_names(names: &[String]) -> Result<KeyFields, String> {
        // With no field every client would be one record: the holdouts list and every what-if would be empty lies.
        if names.is_empty() {
            return Err(
                "an empty key names no field; list at least one of user, database, application, address".into(),
            );
        }
        let mut k = KeyFields {
            user: false,
            database: false,
            application: false,
            address: false,
        };
        for n in names {
            match n.as_str() {
                "user" => k.user = true,
                "database" => k.database = true,
                "application" => k.application = true,
                "address" => k.address = true,
                other => {
                    return Err(format!(
                        "unknown ledger key field \"{other}\" (use user, database, application, address)"
                    ));
                }
            }
        }
        Ok(k)
    }
}

/// A client identity. Fields left out of the key are empty.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ClientKey {
    pub user: String,
    pub database: String,
    pub application: String,
    pub address: String,
}

impl ClientKey {
    pub fn new(
        fields: KeyFields,
        user: Option<&str>,
        database: Option<&str>,
        application: Option<&str>,
        address: Option<&str>,
    ) -> Self {
        let pick = |on: bool, v: Option<&str>| if on { v.unwrap_or("").to_string() } else { String::new() };
        ClientKey {
            user: pick(fields.user, user),
            database: pick(fields.database, database),
            application: pick(fields.application, application),
            address: pick(fields.address, address),
        }
    }

    /// "billing-batch (billing@shop from 10.0.0.7)"
    pub fn label(&self) -> String {
        let app = if self.application.is_empty() {
            "(no application_name)"
        } else {
            &self.application
        };
        let mut who = self.user.clone();
        if !self.database.is_empty() {
            who = format!("{who}@{}", self.database);
        }
        if !self.address.is_empty() {
            who = format!("{who} from {}", self.address);
        }
        if who.is_empty() {
            app.to_string()
        } else {
            format!("{app} ({who})")
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Poll,
    Log,
}

/// What the ledger knows about one client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRecord {
    pub key: ClientKey,
    /// Sessions per transport class.
    pub classes: BTreeMap<ConnClass, u64>,
    /// Sessions per TLS version (TLS sessions only).
    pub tls_versions: BTreeMap<String, u64>,
    pub ciphers: BTreeMap<String, u64>,
    pub sessions: u64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// Sessions connected at the latest poll.
    pub connected_now: u32,
    pub sources: BTreeSet<Source>,
}

impl ClientRecord {
    /// The weakest way this client was seen connecting.
    pub fn worst_class(&self) -> Option<ConnClass> {
        self.classes
            .keys()
            .min_by_key(|c| crate::tui::columns::exposure_rank(**c))
            .copied()
    }

    pub fn count(&self, class: ConnClass) -> u64 {
        self.classes.get(&class).copied().unwrap_or(0)
    }
}

/// One journal line: a session first seen, or a heartbeat that extends the observed window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Entry {
    Session {
        at: DateTime<Utc>,
        key: ClientKey,
        class: ConnClass,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tls_version: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cipher: Option<String>,
        source: Source,
    },
    /// pgtls was watching at `at` (written at most once a minute, and on each start).
    Watching { at: DateTime<Utc>, log_source: bool },
}

/// A session connected at the latest poll, by pid. Pids are reused, so the start time tells sessions apart.
#[derive(Debug, Clone)]
struct Live {
    start: Option<DateTime<Utc>>,
    key: ClientKey,
    /// Where its client's record is in `Ledger::records`, once there is one.
    record: Option<usize>,
}

/// Log lines and polls see the same session at slightly different times.
const SAME_SESSION_WITHIN: Duration = Duration::seconds(10);
const HEARTBEAT_EVERY: Duration = Duration::seconds(60);

#[derive(Debug, Clone, Default)]
pub struct Ledger {
    pub fields: KeyFields,
    /// Every client seen, in the order first seen; records are never removed, so positions are stable.
    records: Vec<ClientRecord>,
    /// Position in `records` by key, in key order.
    index: BTreeMap<ClientKey, usize>,
    /// Sessions connected at the latest poll, by pid.
    live: HashMap<i32, Live>,
    /// Sessions learned from the log, by pid, not yet seen in a poll: (authorized at, key).
    from_log: HashMap<i32, DateTime<Utc>>,
    /// First and last moment pgtls was watching, and whether a log source was on.
    pub observed_from: Option<DateTime<Utc>>,
    pub observed_to: Option<DateTime<Utc>>,
    pub log_source_seen: bool,
    last_heartbeat: Option<DateTime<Utc>>,
    pub polls: u64,
    /// pgtls's own backend, which is not a client worth tracking.
    monitor_pid: Option<i32>,
}

impl Ledger {
    pub fn new(fields: KeyFields) -> Ledger {
        Ledger {
            fields,
            ..Ledger::default()
        }
    }

    /// Every client, in key order.
    pub fn records(&self) -> impl Iterator<Item = &ClientRecord> {
        self.index.values().map(|i| &self.records[*i])
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn total_sessions(&self) -> u64 {
        self.records.iter().map(|r| r.sessions).sum()
    }

    pub fn observed(&self) -> Duration {
        match (self.observed_from, self.observed_to) {
            (Some(from), Some(to)) => to - from,
            _ => Duration::zero(),
        }
    }

    fn key_of(&self, s: &Session) -> ClientKey {
        ClientKey::new(
            self.fields,
            s.user.as_deref(),
            s.database.as_deref(),
            s.application_name.as_deref(),
            s.client_addr.as_deref(),
        )
    }

    /// Count sessions that are new since the last poll; returns journal entries to append.
    ///
    /// Runs after every poll, so a session that was connected at the previous poll and still has the same identity
    /// reuses its key instead of building a new one: in the steady state nothing is allocated per session.
    pub fn observe_snapshot(&mut self, snap: &Snapshot, log_source: bool) -> Vec<Entry> {
        let mut entries = Vec::new();
        let at = snap.taken_at;
        self.polls += 1;
        self.monitor_pid = Some(snap.monitor.pid);
        entries.extend(self.watching(at, log_source));
        for r in &mut self.records {
            r.connected_now = 0;
        }
        let mut previous = std::mem::take(&mut self.live);
        let mut live = HashMap::with_capacity(snap.sessions.len());
        // Live sessions whose client has no record yet (their identity changed): counted once the loop is done,
        // in case a later session of the same client creates the record.
        let mut unrecorded: Vec<i32> = Vec::new();
        for s in &snap.sessions {
            if s.pid == snap.monitor.pid {
                continue;
            }
            let before = previous.remove(&s.pid).filter(|l| l.start == s.backend_start);
            let was_live = before.is_some();
            let (key, record) = match before {
                Some(l) if self.same_client(&l.key, s) => (l.key, l.record),
                _ => (self.key_of(s), None),
            };
            if !was_live {
                let logged = self
                    .from_log
                    .get(&s.pid)
                    .is_some_and(|t| s.backend_start.is_none_or(|b| (*t - b).abs() <= SAME_SESSION_WITHIN));
                if logged {
                    // Counted already from its log line: only note that polls see it too.
                    self.from_log.remove(&s.pid);
                    if let Some(i) = self.index.get(&key) {
                        self.records[*i].sources.insert(Source::Poll);
                    }
                } else {
                    let entry = Entry::Session {
                        at,
                        key: key.clone(),
                        class: s.class,
                        tls_version: s.tls.as_ref().map(|t| t.version.clone()),
                        cipher: s.tls.as_ref().map(|t| t.cipher.clone()),
                        source: Source::Poll,
                    };
                    self.apply(&entry);
                    entries.push(entry);
                }
            }
            let record = record.or_else(|| self.index.get(&key).copied());
            match record {
                Some(i) => {
                    let r = &mut self.records[i];
                    r.last_seen = at;
                    r.connected_now += 1;
                }
                None => unrecorded.push(s.pid),
            }
            live.insert(
                s.pid,
                Live {
                    start: s.backend_start,
                    key,
                    record,
                },
            );
        }
        for pid in &unrecorded {
            if let Some(l) = live.get_mut(pid) {
                l.record = self.index.get(&l.key).copied();
                if let Some(i) = l.record {
                    self.records[i].connected_now += 1;
                }
            }
        }
        self.live = live;
        // Forget log sessions that no poll will ever match.
        self.from_log.retain(|_, t| at - *t <= SAME_SESSION_WITHIN * 6);
        entries
    }

    /// Whether `key` is still the identity of `s` (an application may change its name mid-session).
    fn same_client(&self, key: &ClientKey, s: &Session) -> bool {
        let f = self.fields;
        let same = |on: bool, have: &str, now: Option<&str>| have == if on { now.unwrap_or("") } else { "" };
        same(f.user, &key.user, s.user.as_deref())
            && same(f.database, &key.database, s.database.as_deref())
            && same(f.application, &key.application, s.application_name.as_deref())
            && same(f.address, &key.address, s.client_addr.as_deref())
    }

    /// A connection from the log source; `None` when a poll already counted it.
    pub fn observe_log(&mut self, ev: &crate::logsource::ConnectionEvent) -> Option<Entry> {
        self.log_source_seen = true;
        if Some(ev.pid) == self.monitor_pid {
            return None;
        }
        let polled = self
            .live
            .get(&ev.pid)
            .is_some_and(|l| l.start.is_none_or(|s| (s - ev.at).abs() <= SAME_SESSION_WITHIN));
        if polled {
            return None;
        }
        let class = match (&ev.tls, ev.local_socket, ev.gss_encrypted) {
            (Some(t), _, _) => ConnClass::from_tls_version(&t.version),
            (None, true, _) => ConnClass::Local,
            (None, false, true) => ConnClass::Gss,
            (None, false, false) => ConnClass::PlainTcp,
        };
        let entry = Entry::Session {
            at: ev.at,
            key: ClientKey::new(
                self.fields,
                Some(&ev.user),
                Some(&ev.database),
                ev.application_name.as_deref(),
                ev.client_addr.as_deref(),
            ),
            class,
            tls_version: ev.tls.as_ref().map(|t| t.version.clone()),
            cipher: ev.tls.as_ref().map(|t| t.cipher.clone()),
            source: Source::Log,
        };
        self.from_log.insert(ev.pid, ev.at);
        self.apply(&entry);
        Some(entry)
    }

    fn watching(&mut self, at: DateTime<Utc>, log_source: bool) -> Option<Entry> {
        let due = self.last_heartbeat.is_none_or(|last| at - last >= HEARTBEAT_EVERY);
        let entry = Entry::Watching { at, log_source };
        self.apply(&entry);
        due.then(|| {
            self.last_heartbeat = Some(at);
            entry
        })
    }

    /// Fold one journal entry into the records (also used when replaying the journal).
    pub fn apply(&mut self, entry: &Entry) {
        match entry {
            Entry::Watching { at, log_source } => {
                self.observed_from = Some(self.observed_from.map_or(*at, |f| f.min(*at)));
                self.observed_to = Some(self.observed_to.map_or(*at, |t| t.max(*at)));
                self.log_source_seen |= *log_source;
            }
            Entry::Session {
                at,
                key,
                class,
                tls_version,
                cipher,
                source,
            } => {
                let records = &mut self.records;
                let i = *self.index.entry(key.clone()).or_insert_with(|| {
                    records.push(ClientRecord {
                        key: key.clone(),
                        classes: BTreeMap::new(),
                        tls_versions: BTreeMap::new(),
                        ciphers: BTreeMap::new(),
                        sessions: 0,
                        first_seen: *at,
                        last_seen: *at,
                        connected_now: 0,
                        sources: BTreeSet::new(),
                    });
                    records.len() - 1
                });
                let r = &mut records[i];
                *r.classes.entry(*class).or_default() += 1;
                if let Some(v) = tls_version {
                    *r.tls_versions.entry(v.clone()).or_default() += 1;
                }
                if let Some(c) = cipher {
                    *r.ciphers.entry(c.clone()).or_default() += 1;
                }
                r.sessions += 1;
                r.first_seen = r.first_seen.min(*at);
                r.last_seen = r.last_seen.max(*at);
                r.sources.insert(*source);
                // A session seen in the log widens the evidence window too.
                self.observed_from = Some(self.observed_from.map_or(*at, |f| f.min(*at)));
                self.observed_to = Some(self.observed_to.map_or(*at, |t| t.max(*at)));
            }
        }
    }
}

/// The append-only file behind a ledger.
pub struct Journal {
    path: PathBuf,
    file: File,
}

/// What loading found, for a message on start-up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    pub entries: usize,
    /// Line numbers (1-based) that could not be read and were skipped.
    pub skipped: Vec<usize>,
}

impl LoadReport {
    pub fn message(&self, path: &Path) -> Option<String> {
        if self.skipped.is_empty() {
            return None;
        }
        let lines: Vec<String> = self.skipped.iter().take(5).map(|n| n.to_string()).collect();
        Some(format!(
            "ledger {}: skipped {} unreadable line(s) (line {}{}), kept {} entries",
            path.display(),
            self.skipped.len(),
            lines.join(", "),
            if self.skipped.len() > 5 { ", …" } else { "" },
            self.entries
        ))
    }
}

impl Journal {
    /// Open (creating) the journal and replay it into `ledger`.
    ///
    /// The file names users, hosts and applications, so it is created readable by its owner only (0600), and an
    /// existing one that others may read is tightened to that. A symlink at `path` is refused rather than
    /// followed (O_NOFOLLOW): someone who can write the directory must not make pgtls append to, or chmod,
    /// another file. Replay reads through the same descriptor that appends, so the file replayed is the file
    /// written.
    pub fn open(path: &Path, ledger: &mut Ledger) -> Result<(Journal, LoadReport), String> {
        let mut file = open_for_append(path)?;
        let report = replay(&mut file, path, ledger)?;
        // A crash mid-line leaves a fragment; start on a fresh line so the next entry stays readable.
        if !ends_with_newline(&mut file) {
            let _ = file.write_all(b"\n");
        }
        Ok((
            Journal {
                path: path.to_path_buf(),
                file,
            },
            report,
        ))
    }

    /// Replay a journal without opening it for writing (`pgtls ledger PATH`): not a byte of it changes, a torn
    /// last line included.
    pub fn replay_read_only(path: &Path, ledger: &mut Ledger) -> Result<LoadReport, String> {
        let mut file = File::open(path).map_err(|e| format!("cannot read ledger {}: {e}", path.display()))?;
        replay(&mut file, path, ledger)
    }

    /// Append entries, one line each, and flush: a crash loses at most this batch.
    pub fn append(&mut self, entries: &[Entry]) -> Result<(), String> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::new();
        for e in entries {
            serde_json::to_writer(&mut buf, e).map_err(|e| e.to_string())?;
            buf.push(b'\n');
        }
        self.file
            .write_all(&buf)
            .and_then(|()| self.file.flush())
            .map_err(|e| format!("writing ledger {}: {e}", self.path.display()))
    }
}

fn open_for_append(path: &Path) -> Result<File, String> {
    let cannot = |e: std::io::Error| format!("cannot open ledger {} for writing: {e}", path.display());
    let mut options = OpenOptions::new();
    options.read(true).append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600).custom_flags(nix::libc::O_NOFOLLOW);
        let file = options.open(path).map_err(|e| {
            // O_NOFOLLOW on a symlink fails with ELOOP, which reads as "too many levels of symbolic links".
            if e.raw_os_error() == Some(nix::libc::ELOOP) {
                format!(
                    "ledger {} is a symbolic link; refusing to follow it (give the real path)",
                    path.display()
                )
            } else {
                cannot(e)
            }
        })?;
        let meta = file.metadata().map_err(cannot)?;
        if !meta.is_file() {
            return Err(format!("ledger {} is not a regular file", path.display()));
        }
        if meta.permissions().mode() & 0o077 != 0 {
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(cannot)?;
        }
        Ok(file)
    }
    #[cfg(not(unix))]
    {
        options.open(path).map_err(cannot)
    }
}

/// Apply every readable line of `file` (from its start) to `ledger`; unreadable lines are skipped and named.
fn replay(file: &mut File, path: &Path, ledger: &mut Ledger) -> Result<LoadReport, String> {
    let mut report = LoadReport::default();
    for (i, line) in BufReader::new(file).split(b'\n').enumerate() {
        let line = line.map_err(|e| format!("reading ledger {}: {e}", path.display()))?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Entry>(&line) {
            Ok(entry) => {
                ledger.apply(&entry);
                report.entries += 1;
            }
            Err(_) => report.skipped.push(i + 1),
        }
    }
    Ok(report)
}

/// True for an empty file too: only a fragment after the last newline needs a fresh line.
fn ends_with_newline(file: &mut File) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let mut last = [0u8; 1];
    match file.seek(SeekFrom::End(-1)) {
        Ok(_) => file.read_exact(&mut last).is_err() || last[0] == b'\n',
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    #[test]
    fn sessions_are_counted_once_across_polls_and_connected_now_follows() {
        let mut ledger = Ledger::new(KeyFields::default());
        let snap = fixtures::snapshot();
        let first = ledger.observe_snapshot(&snap, false);
        // 11 sessions besides the monitor, plus one heartbeat.
        assert_eq!(first.len(), 12);
        let mut later = snap.clone();
        later.taken_at += Duration::seconds(2);
        assert!(
            ledger.observe_snapshot(&later, false).is_empty(),
            "no new sessions, no heartbeat yet"
        );
        let billing: Vec<&ClientRecord> = ledger
            .records()
            .filter(|r| r.key.application == "billing-batch")
            .collect();
        // Two billing sessions come from different addresses in the fixture: two identities.
        assert_eq!(billing.iter().map(|r| r.sessions).sum::<u64>(), 2);
        assert!(
            billing
                .iter()
                .all(|r| r.count(ConnClass::Tls12) == 1 && r.connected_now == 1)
        );
        later
            .sessions
            .retain(|s| s.application_name.as_deref() != Some("billing-batch"));
        ledger.observe_snapshot(&later, false);
        assert!(
            ledger
                .records()
                .filter(|r| r.key.application == "billing-batch")
                .all(|r| r.connected_now == 0)
        );
        assert_eq!(ledger.total_sessions(), 11);
    }

    #[test]
    fn a_session_that_changes_its_application_name_is_not_counted_again() {
        let mut ledger = Ledger::new(KeyFields::default());
        let snap = fixtures::snapshot();
        ledger.observe_snapshot(&snap, false);
        let sessions = ledger.total_sessions();
        let i = snap
            .sessions
            .iter()
            .position(|s| s.pid != snap.monitor.pid && s.application_name.is_some())
            .unwrap();
        let key = ledger.key_of(&snap.sessions[i]);
        let connected = |ledger: &Ledger| ledger.records().find(|r| r.key == key).unwrap().connected_now;
        let before = connected(&ledger);
        assert!(before >= 1);

        let mut renamed = snap.clone();
        renamed.taken_at += Duration::seconds(2);
        renamed.sessions[i].application_name = Some("renamed-app".into());
        assert!(ledger.observe_snapshot(&renamed, false).is_empty());
        assert_eq!(ledger.total_sessions(), sessions, "same session, not a new one");
        assert!(ledger.records().all(|r| r.key.application != "renamed-app"));
        assert_eq!(connected(&ledger), before - 1, "the old identity lost the session");

        let mut back = snap.clone();
        back.taken_at += Duration::seconds(4);
        assert!(ledger.observe_snapshot(&back, false).is_empty());
        assert_eq!(ledger.total_sessions(), sessions);
        assert_eq!(connected(&ledger), before, "back under its first name");
    }

    #[test]
    fn dropping_the_address_merges_pooled_connections() {
        let mut ledger = Ledger::new(KeyFields::from_names(&["user".into(), "application".into()]).unwrap());
        ledger.observe_snapshot(&fixtures::snapshot(), false);
        let billing = ledger.records().find(|r| r.key.application == "billing-batch").unwrap();
        assert_eq!((billing.sessions, billing.key.address.as_str()), (2, ""));
        assert!(KeyFields::from_names(&[]).unwrap_err().contains("empty key"));
        assert!(
            KeyFields::from_names(&["host".into()])
                .unwrap_err()
                .contains("unknown ledger key field")
        );
    }

    #[cfg(unix)]
    #[test]
    fn the_journal_is_private_and_never_follows_a_planted_symlink() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.jsonl");
        let mut ledger = Ledger::new(KeyFields::default());
        Journal::open(&path, &mut ledger).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "created {mode:o}");

        // An existing ledger others may read is tightened.
        let wide = dir.path().join("wide.jsonl");
        std::fs::write(&wide, "").unwrap();
        std::fs::set_permissions(&wide, std::fs::Permissions::from_mode(0o644)).unwrap();
        Journal::open(&wide, &mut ledger).unwrap();
        assert_eq!(std::fs::metadata(&wide).unwrap().permissions().mode() & 0o777, 0o600);

        // A symlink planted at the path: refused, and its target keeps every byte and its mode.
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
        let link = dir.path().join("link.jsonl");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let err = Journal::open(&link, &mut ledger).err().unwrap();
        assert!(err.contains("symbolic link"), "{err}");
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert_eq!(std::fs::metadata(&victim).unwrap().permissions().mode() & 0o777, 0o644);
    }

    #[test]
    fn a_read_only_replay_leaves_a_torn_file_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.jsonl");
        let mut ledger = Ledger::new(KeyFields::default());
        let (mut journal, _) = Journal::open(&path, &mut ledger).unwrap();
        journal
            .append(&ledger.observe_snapshot(&fixtures::snapshot(), false))
            .unwrap();
        drop(journal);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(b"{\"kind\":\"sess");
        std::fs::write(&path, &bytes).unwrap();
        let mut replayed = Ledger::new(KeyFields::default());
        let report = Journal::replay_read_only(&path, &mut replayed).unwrap();
        assert_eq!(report.skipped.len(), 1);
        assert_eq!(replayed.records().count(), ledger.records().count());
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "not a byte changed");
    }

    #[test]
    fn the_journal_replays_to_the_same_ledger_and_survives_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.jsonl");
        let mut ledger = Ledger::new(KeyFields::default());
        let (mut journal, report) = Journal::open(&path, &mut ledger).unwrap();
        assert_eq!(report, LoadReport::default());
        let entries = ledger.observe_snapshot(&fixtures::snapshot(), false);
        journal.append(&entries).unwrap();
        drop(journal);

        let mut reloaded = Ledger::new(KeyFields::default());
        Journal::open(&path, &mut reloaded).unwrap();
        let strip = |l: &Ledger| {
            l.records()
                .map(|r| ClientRecord {
                    connected_now: 0,
                    ..r.clone()
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(strip(&reloaded), strip(&ledger));
        assert_eq!(reloaded.observed_from, ledger.observed_from);

        // A crash mid-write and a scribbled line: both skipped, the rest kept, and appends go on.
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.insert_str(0, "not json at all\n");
        text.push_str("{\"kind\":\"session\",\"at\":\"2026-11-");
        std::fs::write(&path, text).unwrap();
        let mut damaged = Ledger::new(KeyFields::default());
        let (mut journal, report) = Journal::open(&path, &mut damaged).unwrap();
        assert_eq!(report.skipped, vec![1, 14]);
        assert_eq!(strip(&damaged), strip(&ledger));
        assert!(
            report
                .message(&path)
                .unwrap()
                .contains("skipped 2 unreadable line(s) (line 1, 14), kept 12 entries")
        );
        journal
            .append(&[Entry::Watching {
                at: fixtures::now(),
                log_source: true,
            }])
            .unwrap();
        let mut again = Ledger::new(KeyFields::default());
        let (_, report) = Journal::open(&path, &mut again).unwrap();
        assert_eq!(
            report.skipped.len(),
            2,
            "the fragment stays one bad line; the new entry is readable"
        );
        assert!(again.log_source_seen);
    }
}
