//! The ledger's file: JSON lines, a compacted state followed by the entries appended since.
//!
//! ```text
//! {"kind":"header","format":2}
//! {"kind":"observed","from":"…","to":"…","log_source":true}
//! {"kind":"settings","at":"…","settings":{…}}              one per change of the server's TLS settings
//! {"kind":"client","key":{…},"usage":[…],"addresses":[…],"recent":[…],…}   one per identity (capped)
//! {"kind":"others",…}                                        sessions beyond the identity cap
//! {"kind":"session",…} {"kind":"watching",…} {"kind":"settings",…}          appended after each poll
//! ```
//!
//! Appends are flushed after every poll, so a crash loses at most that poll. When the appended part outgrows the
//! compacted one, the whole state is rewritten to a temporary file in the same directory, synced and renamed over
//! the file: a reader or a crash sees the old file or the new one, never a mix. A version-1 file (appended entries
//! only, no header) reads the same way and is rewritten as version 2 when a writer opens it.
//!
//! One writer at a time (see [`super::lock`]): `PATH.lock`, or the state directory's lock when the file is in it, and
//! a claim on the file within this process, all held for as long as the journal is open.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use super::lock::{Claim, LedgerLock, LockError, StateDirLock, lock_ledger};
use super::{Entry, Ledger};

/// The format this pgtls writes.
pub const FORMAT_VERSION: u32 = 2;

/// The appended part may grow to this much before a rewrite, or to the compacted part's size if that is larger:
/// a rewrite then costs at most about as much as what was appended since the last one.
const COMPACT_AFTER: u64 = 1 << 20;

/// The file behind a ledger, open for appending, with its lock held.
pub struct Journal {
    path: PathBuf,
    /// The file written (device and inode), opened again for each append and closed after it: a fleet of ledgers
    /// must not hold a descriptor each between writes. A file put in its place by someone else is refused.
    identity: (u64, u64),
    /// `PATH.lock` when no state directory's lock covers the file; released when dropped.
    _lock: Option<LedgerLock>,
    _claim: Claim,
    /// Bytes of the compacted part at the last rewrite, and bytes appended since.
    compacted: u64,
    appended: u64,
    /// A write failed (a full disk): the file may end in a torn line or lack entries, so the next write rewrites it
    /// whole from the ledger in memory, which still holds everything.
    needs_rewrite: bool,
    /// The rewrite on opening failed; the caller says so once ([`Journal::take_open_error`]).
    open_error: Option<JournalError>,
}

/// Why a journal could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Another writer holds the file (here or in another process).
    #[error(transparent)]
    Lock(LockError),
    /// The file cannot be opened, read or rewritten.
    #[error(transparent)]
    File(JournalError),
}

/// What went wrong with a ledger's file; every variant names it.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// O_NOFOLLOW met a symlink (ELOOP): refused rather than followed.
    #[error("ledger {} is a symbolic link; refusing to follow it (give the real path)", path.display())]
    Symlink { path: PathBuf },
    #[error("cannot open ledger {} for writing: {source}", path.display())]
    OpenForWriting { path: PathBuf, source: std::io::Error },
    #[error("ledger {} is not a regular file", path.display())]
    NotRegularFile { path: PathBuf },
    /// Opening for a read-only replay.
    #[error("cannot read ledger {}: {source}", path.display())]
    OpenForReading { path: PathBuf, source: std::io::Error },
    #[error("reading ledger {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    /// Written by a newer pgtls: its lines may mean what this one cannot tell.
    #[error(
        "ledger {} is in format {format}, newer than this pgtls reads ({FORMAT_VERSION}); upgrade pgtls",
        path.display()
    )]
    NewerFormat { path: PathBuf, format: u32 },
    #[error("writing ledger {}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
    /// A step of the compacting rewrite (removing the old temporary file, writing, syncing, renaming).
    #[error("rewriting ledger {}: {step}: {source}", path.display())]
    Rewrite {
        path: PathBuf,
        step: &'static str,
        source: std::io::Error,
    },
    #[error(transparent)]
    Encode(#[from] serde_json::Error),
}

/// What loading found, for a message on start-up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    pub entries: usize,
    /// Line numbers (1-based) that could not be read and were skipped.
    pub skipped: Vec<usize>,
    /// The format the file was in (1 for a file without a header, including an empty one).
    pub format: u32,
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
    /// Lock, open (creating) and replay the file into `ledger`, then rewrite it compacted (which upgrades a
    /// version-1 file).
    ///
    /// The file names users, hosts and applications, so it is created readable by its owner only (0600), and an
    /// existing one that others may read is tightened to that. A symlink at `path` (or at `PATH.lock`) is refused
    /// rather than followed (O_NOFOLLOW): someone who can write the directory must not make pgtls append to, or
    /// chmod, another file. Replay reads through the same descriptor that appends, so the file replayed is the file
    /// written.
    pub fn open(path: &Path, ledger: &mut Ledger) -> Result<(Journal, LoadReport), OpenError> {
        Self::open_with(path, ledger, None)
    }

    /// [`Journal::open`], under `state_dir`'s lock when it covers the file (no `PATH.lock` then: one descriptor
    /// per ledger instead of two). A [`OpenError::Lock`] may pass: the caller may wait and try again.
    pub fn open_with(
        path: &Path,
        ledger: &mut Ledger,
        state_dir: Option<&StateDirLock>,
    ) -> Result<(Journal, LoadReport), OpenError> {
        let lock = match state_dir {
            Some(dir) if dir.covers(path) => None,
            _ => Some(lock_ledger(path).map_err(OpenError::Lock)?),
        };
        let claim = Claim::take(path).map_err(OpenError::Lock)?;
        let mut file =
            open_private(path, OpenOptions::new().read(true).append(true).create(true)).map_err(OpenError::File)?;
        let report = replay(&mut file, path, ledger).map_err(OpenError::File)?;
        let identity = identity_of(&file).map_err(|source| {
            OpenError::File(JournalError::Read {
                path: path.to_path_buf(),
                source,
            })
        })?;
        drop(file);
        let mut journal = Journal {
            path: path.to_path_buf(),
            identity,
            _lock: lock,
            _claim: claim,
            compacted: 0,
            appended: 0,
            needs_rewrite: false,
            open_error: None,
        };
        // A disk too full for the rewrite still leaves a readable file: it was replayed, and the rewrite is tried
        // again at every write until there is room.
        if let Err(e) = journal.compact(ledger) {
            journal.open_error = Some(e);
        }
        Ok((journal, report))
    }

    /// Why the rewrite on opening failed, once: the journal is open and retries at every write.
    pub fn take_open_error(&mut self) -> Option<JournalError> {
        self.open_error.take()
    }

    /// The last write failed and the next one rewrites the file whole.
    pub fn is_failing(&self) -> bool {
        self.needs_rewrite
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Replay a journal without opening it for writing (`pgtls ledger PATH`): not a byte of it changes, a torn
    /// last line included, and no lock is taken (a running writer's file is always whole up to its last line).
    pub fn replay_read_only(path: &Path, ledger: &mut Ledger) -> Result<LoadReport, JournalError> {
        let mut file = File::open(path).map_err(|source| JournalError::OpenForReading {
            path: path.to_path_buf(),
            source,
        })?;
        replay(&mut file, path, ledger)
    }

    /// Append entries, one line each, and flush: a crash loses at most this batch. When the appended part has
    /// outgrown the compacted one, `ledger` (which already holds the entries) is rewritten compacted.
    ///
    /// After a failed write every call (even with no entries) tries to rewrite the file whole from `ledger` instead,
    /// so nothing memory holds is lost and no torn line stays in the file once there is room again.
    pub fn append(&mut self, entries: &[Entry], ledger: &Ledger) -> Result<(), JournalError> {
        if self.needs_rewrite {
            return self.compact(ledger);
        }
        if entries.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::new();
        for e in entries {
            serde_json::to_writer(&mut buf, e)?;
            buf.push(b'\n');
        }
        let write_failed = |source| JournalError::Write {
            path: self.path.clone(),
            source,
        };
        let mut file = open_private(&self.path, OpenOptions::new().append(true))?;
        if identity_of(&file).map_err(write_failed)? != self.identity {
            return Err(write_failed(std::io::Error::other(
                "another file was put in its place since pgtls wrote it",
            )));
        }
        if let Err(source) = file.write_all(&buf).and_then(|()| file.flush()) {
            // Part of the batch may be in the file, cut mid-line: only a whole rewrite makes it right again.
            self.needs_rewrite = true;
            return Err(write_failed(source));
        }
        drop(file);
        self.appended += buf.len() as u64;
        if self.appended > COMPACT_AFTER.max(self.compacted) {
            self.compact(ledger)?;
        }
        Ok(())
    }

    /// Bytes of the file as of now: the compacted part plus what was appended since.
    pub fn len(&self) -> u64 {
        self.compacted + self.appended
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Rewrite the file as `ledger`'s compacted state: temporary file in the same directory, fsync, rename over the
    /// file, fsync the directory, then append to the new file. A failed rewrite removes its temporary file (on a
    /// full disk it would hold the space the retry needs) and leaves the next write to try again.
    pub fn compact(&mut self, ledger: &Ledger) -> Result<(), JournalError> {
        let result = self.rewrite(ledger);
        if result.is_err() {
            let _ = std::fs::remove_file(temp_path(&self.path));
        }
        self.needs_rewrite = result.is_err();
        result
    }

    fn rewrite(&mut self, ledger: &Ledger) -> Result<(), JournalError> {
        let failed = |step: &'static str, source: std::io::Error| JournalError::Rewrite {
            path: self.path.clone(),
            step,
            source,
        };
        let tmp = temp_path(&self.path);
        // A leftover from a crash mid-rewrite; remove_file takes a symlink itself away, never its target.
        match std::fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(failed("removing the old temporary file", e)),
        }
        let file = open_private(&tmp, OpenOptions::new().read(true).append(true).create_new(true))?;
        let mut out = std::io::BufWriter::new(file);
        let mut written = 0u64;
        let header = std::iter::once(Entry::Header { format: FORMAT_VERSION });
        for entry in header.chain(ledger.compacted()) {
            let mut line = serde_json::to_vec(&entry)?;
            line.push(b'\n');
            written += line.len() as u64;
            out.write_all(&line).map_err(|e| failed("writing", e))?;
        }
        let file = out.into_inner().map_err(|e| failed("writing", e.into_error()))?;
        file.sync_all().map_err(|e| failed("syncing", e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| failed("renaming", e))?;
        if let Some(dir) = self.path.parent() {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            // The rename is durable once the directory is; a failure here costs at most the rewrite, not data.
            let _ = File::open(dir).and_then(|d| d.sync_all());
        }
        self.identity = identity_of(&file).map_err(|e| failed("reading back", e))?;
        drop(file);
        self.compacted = written;
        self.appended = 0;
        Ok(())
    }
}

/// Device and inode of an open file.
fn identity_of(file: &File) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = file.metadata()?;
    Ok((meta.dev(), meta.ino()))
}

/// `PATH.tmp`, next to the file so the rename stays on one filesystem.
fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Open with mode 0600 for a new file, never through a symlink, and tighten an existing file others may read.
pub(super) fn open_private(path: &Path, options: &mut OpenOptions) -> Result<File, JournalError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let cannot = |source: std::io::Error| JournalError::OpenForWriting {
        path: path.to_path_buf(),
        source,
    };
    options.mode(0o600).custom_flags(nix::libc::O_NOFOLLOW);
    let file = options.open(path).map_err(|e| {
        // O_NOFOLLOW on a symlink fails with ELOOP, which reads as "too many levels of symbolic links".
        if e.raw_os_error() == Some(nix::libc::ELOOP) {
            JournalError::Symlink {
                path: path.to_path_buf(),
            }
        } else {
            cannot(e)
        }
    })?;
    let meta = file.metadata().map_err(cannot)?;
    if !meta.is_file() {
        return Err(JournalError::NotRegularFile {
            path: path.to_path_buf(),
        });
    }
    if meta.permissions().mode() & 0o077 != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(cannot)?;
    }
    Ok(file)
}

/// Apply every readable line of `file` (from its start) to `ledger`; unreadable lines are skipped and named.
fn replay(file: &mut File, path: &Path, ledger: &mut Ledger) -> Result<LoadReport, JournalError> {
    let mut report = LoadReport {
        format: 1,
        ..LoadReport::default()
    };
    for (i, line) in BufReader::new(file).split(b'\n').enumerate() {
        let line = line.map_err(|source| JournalError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Entry>(&line) {
            Ok(Entry::Header { format }) if format > FORMAT_VERSION => {
                return Err(JournalError::NewerFormat {
                    path: path.to_path_buf(),
                    format,
                });
            }
            Ok(entry) => {
                if let Entry::Header { format } = entry {
                    report.format = format;
                }
                ledger.apply(&entry);
                report.entries += 1;
            }
            Err(_) => report.skipped.push(i + 1),
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Duration, Utc};

    use super::*;
    use crate::analysis::ledger::{ClientRecord, KeyFields};
    use crate::fixtures;
    use crate::model::{ConnClass, Setting};

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
        assert!(matches!(err, OpenError::File(JournalError::Symlink { .. })), "{err:?}");
        let err = err.to_string();
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
        let entries = ledger.observe_snapshot(&fixtures::snapshot(), false);
        journal.append(&entries, &ledger).unwrap();
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

    fn strip(l: &Ledger) -> Vec<ClientRecord> {
        l.records()
            .map(|r| ClientRecord {
                connected_now: 0,
                ..r.clone()
            })
            .collect()
    }

    #[test]
    fn the_journal_replays_to_the_same_ledger_and_survives_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.jsonl");
        let mut ledger = Ledger::new(KeyFields::default());
        let (mut journal, report) = Journal::open(&path, &mut ledger).unwrap();
        assert_eq!((report.entries, report.skipped.len()), (0, 0));
        let entries = ledger.observe_snapshot(&fixtures::snapshot(), false);
        journal.append(&entries, &ledger).unwrap();
        drop(journal);

        let mut reloaded = Ledger::new(KeyFields::default());
        Journal::open(&path, &mut reloaded).unwrap();
        assert_eq!(strip(&reloaded), strip(&ledger));
        assert_eq!(reloaded.observed_from, ledger.observed_from);
        assert_eq!(reloaded.settings_history().count(), 1);

        // A crash mid-write and a scribbled line: both skipped, the rest kept, and the rewrite drops them.
        let mut text = std::fs::read_to_string(&path).unwrap();
        let lines = text.lines().count();
        text.insert_str(0, "not json at all\n");
        text.push_str("{\"kind\":\"session\",\"at\":\"2026-11-");
        std::fs::write(&path, text).unwrap();
        let mut damaged = Ledger::new(KeyFields::default());
        let (mut journal, report) = Journal::open(&path, &mut damaged).unwrap();
        assert_eq!(report.skipped, vec![1, lines + 2]);
        assert_eq!(strip(&damaged), strip(&ledger));
        assert!(report.message(&path).unwrap().contains(&format!(
            "skipped 2 unreadable line(s) (line 1, {}), kept {lines} entries",
            lines + 2
        )));
        let watching = [Entry::Watching {
            at: fixtures::now(),
            log_source: true,
        }];
        damaged.apply(&watching[0]);
        journal.append(&watching, &damaged).unwrap();
        drop(journal);
        let mut again = Ledger::new(KeyFields::default());
        let (_, report) = Journal::open(&path, &mut again).unwrap();
        assert!(report.skipped.is_empty(), "the rewrite left only readable lines");
        assert!(again.log_source_seen);
    }

    /// A version-1 file (one line per session, no header) is read as it is and rewritten as version 2 with the
    /// same clients.
    #[test]
    fn a_version_1_file_is_read_and_upgraded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.jsonl");
        let v1 = concat!(
            r#"{"kind":"watching","at":"2026-11-27T10:00:00Z","log_source":false}"#,
            "\n",
            r#"{"kind":"session","at":"2026-11-27T10:00:00Z","key":{"user":"app","database":"shop","application":"billing","address":"10.0.0.7"},"class":"tls12","tls_version":"TLSv1.2","cipher":"AES128-SHA","source":"poll"}"#,
            "\n",
            r#"{"kind":"session","at":"2026-11-27T11:00:00Z","key":{"user":"app","database":"shop","application":"billing","address":"10.0.0.7"},"class":"tls13","tls_version":"TLSv1.3","cipher":"TLS_AES_256_GCM_SHA384","source":"log"}"#,
            "\n",
            r#"{"kind":"session","at":"2026-11-27T11:30:00Z","key":{"user":"etl","database":"shop","application":"","address":""},"class":"plain_tcp","source":"log"}"#,
            "\n",
        );
        std::fs::write(&path, v1).unwrap();
        let mut ledger = Ledger::new(KeyFields::default());
        let (journal, report) = Journal::open(&path, &mut ledger).unwrap();
        assert_eq!((report.format, report.entries, report.skipped.len()), (1, 4, 0));
        drop(journal);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(r#"{"kind":"header","format":2}"#), "{text}");
        let mut upgraded = Ledger::new(KeyFields::default());
        let report = Journal::replay_read_only(&path, &mut upgraded).unwrap();
        assert_eq!(report.format, 2);
        assert_eq!(strip(&upgraded), strip(&ledger));
        let billing = upgraded.records().find(|r| r.key.application == "billing").unwrap();
        assert_eq!((billing.sessions, billing.count(ConnClass::Tls12)), (2, 1));
        assert_eq!(billing.usage.len(), 2, "{:?}", billing.usage);
        assert_eq!(billing.recent.len(), 2);
        assert_eq!(upgraded.observed(), Duration::minutes(90));
    }

    /// Thousands of sessions of a few clients: the file stays the size of the clients, and no count is lost.
    #[test]
    fn compaction_keeps_the_file_the_size_of_the_clients() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.jsonl");
        let mut ledger = Ledger::new(KeyFields::default());
        let (mut journal, _) = Journal::open(&path, &mut ledger).unwrap();
        let start = fixtures::now();
        let mut largest = 0;
        for i in 0..20_000i64 {
            let entry = session(
                start + Duration::seconds(i),
                &format!("app{}", i % 3),
                "10.0.0.1",
                "TLSv1.2",
            );
            ledger.apply(&entry);
            journal.append(&[entry], &ledger).unwrap();
            largest = largest.max(std::fs::metadata(&path).unwrap().len());
        }
        // One line per session would be about 5 MB.
        assert!(largest <= (1 << 20) + (16 << 10), "the file reached {largest} bytes");
        assert_eq!(journal.len(), std::fs::metadata(&path).unwrap().len());
        drop(journal);
        let mut reloaded = Ledger::new(KeyFields::default());
        Journal::open(&path, &mut reloaded).unwrap();
        assert_eq!(reloaded.total_sessions(), 20_000);
        assert_eq!(strip(&reloaded), strip(&ledger));
        assert!(std::fs::metadata(&path).unwrap().len() < 16 << 10, "compacted on open");
    }

    fn session(at: DateTime<Utc>, app: &str, address: &str, version: &str) -> Entry {
        pgtls_core::fixtures::log_session(at, app, address, version)
    }

    /// The settings history: one state per change, kept through a rewrite, with what clients used around it.
    #[test]
    fn settings_changes_are_kept_with_their_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.jsonl");
        let mut ledger = Ledger::new(KeyFields::default());
        let (mut journal, _) = Journal::open(&path, &mut ledger).unwrap();
        let mut snap = fixtures::snapshot();
        let entries = ledger.observe_snapshot(&snap, false);
        journal.append(&entries, &ledger).unwrap();
        snap.taken_at += Duration::seconds(2);
        assert!(
            ledger.observe_snapshot(&snap, false).is_empty(),
            "unchanged settings write nothing"
        );
        snap.taken_at += Duration::seconds(2);
        snap.settings
            .insert("ssl_min_protocol_version".into(), Setting::Set("TLSv1.3".into()));
        let entries = ledger.observe_snapshot(&snap, false);
        assert!(entries.iter().any(|e| matches!(e, Entry::Settings(_))));
        journal.append(&entries, &ledger).unwrap();
        journal.compact(&ledger).unwrap();
        drop(journal);
        let mut reloaded = Ledger::new(KeyFields::default());
        Journal::replay_read_only(&path, &mut reloaded).unwrap();
        let history: Vec<_> = reloaded.settings_history().collect();
        assert_eq!(history.len(), 2);
        assert_eq!(history[1].at, snap.taken_at);
        assert_eq!(
            history[1].settings.get("ssl_min_protocol_version"),
            Some(&Setting::Set("TLSv1.3".into()))
        );
        // Every usage row says when it was last used, so before/after a change is a comparison of times.
        assert!(
            reloaded
                .records()
                .all(|r| r.usage.iter().all(|u| u.last_seen < history[1].at))
        );
    }

    /// One writer at a time, through `PATH.lock`; a leftover temporary file from a crash mid-rewrite is harmless.
    #[test]
    fn a_second_writer_is_refused_in_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.jsonl");
        let mut ledger = Ledger::new(KeyFields::default());
        let (journal, _) = Journal::open(&path, &mut ledger).unwrap();
        let err = Journal::open(&path, &mut Ledger::default()).err().unwrap();
        assert!(matches!(err, OpenError::Lock(_)), "{err:?}");
        let err = err.to_string();
        assert!(
            err.contains("in use by another pgtls") && err.contains("ledger.jsonl.lock"),
            "{err}"
        );
        assert!(!err.contains('\n'));
        // Still locked after a rewrite (the lock is not on the renamed file).
        let mut journal = journal;
        journal.compact(&ledger).unwrap();
        assert!(Journal::open(&path, &mut Ledger::default()).is_err());
        drop(journal);
        std::fs::write(dir.path().join("ledger.jsonl.tmp"), "half a rewrite").unwrap();
        Journal::open(&path, &mut Ledger::default()).unwrap();
        assert!(!dir.path().join("ledger.jsonl.tmp").exists());
    }
}
