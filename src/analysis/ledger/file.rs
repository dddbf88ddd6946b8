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
    file: File,
    /// `PATH.lock` when no state directory's lock covers the file; released when dropped.
    _lock: Option<LedgerLock>,
    _claim: Claim,
    /// Bytes of the compacted part at the last rewrite, and bytes appended since.
    compacted: u64,
    appended: u64,
}

/// Why a journal could not be opened.
#[derive(Debug)]
pub enum OpenError {
    /// Another writer holds the file (here or in another process).
    Lock(LockError),
    /// The file cannot be opened, read or rewritten; the text says why.
    File(String),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Lock(e) => e.fmt(f),
            OpenError::File(text) => f.write_str(text),
        }
    }
}

impl std::error::Error for OpenError {}

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
    pub fn open(path: &Path, ledger: &mut Ledger) -> Result<(Journal, LoadReport), String> {
        Self::open_with(path, ledger, None).map_err(|e| e.to_string())
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
        let mut journal = Journal {
            path: path.to_path_buf(),
            file,
            _lock: lock,
            _claim: claim,
            compacted: 0,
            appended: 0,
        };
        journal.compact(ledger).map_err(OpenError::File)?;
        Ok((journal, report))
    }

    /// Replay a journal without opening it for writing (`pgtls ledger PATH`): not a byte of it changes, a torn
    /// last line included, and no lock is taken (a running writer's file is always whole up to its last line).
    pub fn replay_read_only(path: &Path, ledger: &mut Ledger) -> Result<LoadReport, String> {
        let mut file = File::open(path).map_err(|e| format!("cannot read ledger {}: {e}", path.display()))?;
        replay(&mut file, path, ledger)
    }

    /// Append entries, one line each, and flush: a crash loses at most this batch. When the appended part has
    /// outgrown the compacted one, `ledger` (which already holds the entries) is rewritten compacted.
    pub fn append(&mut self, entries: &[Entry], ledger: &Ledger) -> Result<(), String> {
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
            .map_err(|e| format!("writing ledger {}: {e}", self.path.display()))?;
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
    /// file, fsync the directory, then append to the new file.
    pub fn compact(&mut self, ledger: &Ledger) -> Result<(), String> {
        let failed = |what: &str, e: std::io::Error| format!("rewriting ledger {}: {what}: {e}", self.path.display());
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
            let mut line = serde_json::to_vec(&entry).map_err(|e| e.to_string())?;
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
        self.file = file;
        self.compacted = written;
        self.appended = 0;
        Ok(())
    }
}

/// `PATH.tmp`, next to the file so the rename stays on one filesystem.
fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Open with mode 0600 for a new file, never through a symlink, and tighten an existing file others may read.
pub(super) fn open_private(path: &Path, options: &mut OpenOptions) -> Result<File, String> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let cannot = |e: std::io::Error| format!("cannot open ledger {} for writing: {e}", path.display());
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

/// Apply every readable line of `file` (from its start) to `ledger`; unreadable lines are skipped and named.
fn replay(file: &mut File, path: &Path, ledger: &mut Ledger) -> Result<LoadReport, String> {
    let mut report = LoadReport {
        format: 1,
        ..LoadReport::default()
    };
    for (i, line) in BufReader::new(file).split(b'\n').enumerate() {
        let line = line.map_err(|e| format!("reading ledger {}: {e}", path.display()))?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Entry>(&line) {
            Ok(Entry::Header { format }) if format > FORMAT_VERSION => {
                return Err(format!(
                    "ledger {} is in format {format}, newer than this pgtls reads ({FORMAT_VERSION}); upgrade pgtls",
                    path.display()
                ));
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
