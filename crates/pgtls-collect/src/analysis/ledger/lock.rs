//! Who may write a ledger file: one writer at a time, across processes and within this one.
//!
//! Across processes, either the state directory's lock (`DIR/pgtls.lock`, held by `serve` for as long as it runs,
//! one descriptor for every ledger in the directory) or, for a ledger given by its own path, `PATH.lock`. The lock
//! sits on a file of its own because a lock on the data file would stay with the old inode at each rename.
//!
//! Within this process, a registry of the ledger files open for writing: the state directory's lock does not keep
//! two engines of this process apart, and a target restarted with a new connection string must find its ledger
//! released by the engine it replaces before it opens it.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Why a ledger (or the state directory) cannot be written now.
#[derive(Debug)]
pub enum LockError {
    /// Another process holds the lock file.
    Busy { held: Held, lock_file: PathBuf },
    /// This process already writes the ledger (a target being replaced, or two targets naming one file).
    InUseHere { ledger: PathBuf },
    /// The lock file cannot be opened or locked; the text says why, in the user's terms.
    Open(String),
}

/// What a lock file guards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Held {
    Ledger,
    StateDir,
    /// This ledger, in a state directory a `serve` holds.
    StateDirLedger(PathBuf),
}

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::Busy {
                held: Held::Ledger,
                lock_file,
            } => {
                let ledger = lock_file.with_extension("");
                write!(
                    f,
                    "ledger {} is in use by another pgtls (it holds {}); one writer at a time",
                    ledger.display(),
                    lock_file.display()
                )
            }
            LockError::Busy {
                held: Held::StateDir,
                lock_file,
            } => write!(
                f,
                "--state-dir {} is in use by another pgtls serve (it holds {}); one per directory",
                lock_file.parent().unwrap_or(Path::new("")).display(),
                lock_file.display()
            ),
            LockError::Busy {
                held: Held::StateDirLedger(ledger),
                lock_file,
            } => write!(
                f,
                "ledger {} is in use by another pgtls (a serve holds {}); one writer at a time",
                ledger.display(),
                lock_file.display()
            ),
            LockError::InUseHere { ledger } => write!(
                f,
                "ledger {} is still being written by this pgtls (the target's previous engine, or another \
                 target naming the same file)",
                ledger.display()
            ),
            LockError::Open(text) => f.write_str(text),
        }
    }
}

impl std::error::Error for LockError {}

/// `DIR/pgtls.lock`, held for as long as this value lives: every ledger in DIR is this process's to write.
pub struct StateDirLock {
    dir: PathBuf,
    _lock: nix::fcntl::Flock<File>,
}

impl std::fmt::Debug for StateDirLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateDirLock").field("dir", &self.dir).finish()
    }
}

pub const STATE_DIR_LOCK: &str = "pgtls.lock";

impl StateDirLock {
    pub fn take(dir: &Path) -> Result<StateDirLock, LockError> {
        let lock_file = dir.join(STATE_DIR_LOCK);
        let lock = flock(&lock_file, Held::StateDir)?;
        Ok(StateDirLock {
            dir: canonical(&lock_file)
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| dir.to_path_buf()),
            _lock: lock,
        })
    }

    /// Whether `ledger` sits directly in the locked directory.
    pub fn covers(&self, ledger: &Path) -> bool {
        canonical(ledger).parent() == Some(self.dir.as_path())
    }
}

/// The locks of a ledger given by its path, held for as long as this value lives.
#[derive(Debug)]
pub struct LedgerLock {
    _own: nix::fcntl::Flock<File>,
    /// Shared, when the ledger sits in a `serve` state directory: `serve` holds it exclusively while it runs, so
    /// neither can write a ledger there while the other does.
    _state_dir: Option<nix::fcntl::Flock<File>>,
}

/// `PATH.lock` for the ledger at `path`, and a shared lock on its directory's `pgtls.lock` if there is one.
pub fn lock_ledger(path: &Path) -> Result<LedgerLock, LockError> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    let own = flock(&path.with_file_name(name), Held::Ledger)?;
    let dir_lock = path.with_file_name(STATE_DIR_LOCK);
    let state_dir = match super::file::open_private(&dir_lock, OpenOptions::new().read(true)) {
        Ok(file) => Some(
            nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockSharedNonblock).map_err(|(_, errno)| {
                if errno == nix::errno::Errno::EWOULDBLOCK {
                    LockError::Busy {
                        held: Held::StateDirLedger(path.to_path_buf()),
                        lock_file: dir_lock.clone(),
                    }
                } else {
                    LockError::Open(format!("cannot lock {}: {errno}", dir_lock.display()))
                }
            })?,
        ),
        Err(_) if !dir_lock.exists() => None,
        Err(e) => return Err(LockError::Open(e.to_string())),
    };
    Ok(LedgerLock {
        _own: own,
        _state_dir: state_dir,
    })
}

fn flock(lock_file: &Path, held: Held) -> Result<nix::fcntl::Flock<File>, LockError> {
    let file = super::file::open_private(lock_file, OpenOptions::new().read(true).write(true).create(true))
        .map_err(|e| LockError::Open(e.to_string()))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| {
        if errno == nix::errno::Errno::EWOULDBLOCK {
            LockError::Busy {
                held,
                lock_file: lock_file.to_path_buf(),
            }
        } else {
            LockError::Open(format!("cannot lock {}: {errno}", lock_file.display()))
        }
    })
}

/// The ledger files this process has open for writing, by canonical path.
static OPEN: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

/// This process writes the ledger at `path` until the claim is dropped.
#[derive(Debug)]
pub struct Claim {
    path: PathBuf,
}

impl Claim {
    pub fn take(ledger: &Path) -> Result<Claim, LockError> {
        let path = canonical(ledger);
        let mut open = OPEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !open.insert(path.clone()) {
            return Err(LockError::InUseHere {
                ledger: ledger.to_path_buf(),
            });
        }
        Ok(Claim { path })
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        OPEN.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.path);
    }
}

/// The file's directory resolved (it exists; the file may not yet), so two spellings of one path are one claim.
fn canonical(path: &Path) -> PathBuf {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    match (std::fs::canonicalize(parent), path.file_name()) {
        (Ok(dir), Some(name)) => dir.join(name),
        _ => path.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_claim_per_file_whatever_its_spelling_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("x.ledger");
        let b = dir.path().join(".").join("x.ledger");
        let claim = Claim::take(&a).unwrap();
        assert!(matches!(Claim::take(&b), Err(LockError::InUseHere { .. })));
        drop(claim);
        Claim::take(&b).unwrap();
    }

    #[test]
    fn a_second_state_dir_lock_is_refused_in_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let held = StateDirLock::take(dir.path()).unwrap();
        let err = StateDirLock::take(dir.path()).unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(
                err,
                LockError::Busy {
                    held: Held::StateDir,
                    ..
                }
            ),
            "{text}"
        );
        assert!(
            text.contains("in use by another pgtls serve") && !text.contains('\n'),
            "{text}"
        );
        assert!(held.covers(&dir.path().join("a.ledger")));
        // A writer of one ledger there, by its path (a dashboard's --ledger), is kept off while serve holds it...
        let err = lock_ledger(&dir.path().join("a.ledger")).unwrap_err();
        assert!(err.to_string().contains("a serve holds"), "{err}");
        assert!(!held.covers(&dir.path().join("sub").join("a.ledger")));
        drop(held);
        // ...and keeps serve off while it writes.
        let writer = lock_ledger(&dir.path().join("a.ledger")).unwrap();
        assert!(matches!(StateDirLock::take(dir.path()), Err(LockError::Busy { .. })));
        drop(writer);
        StateDirLock::take(dir.path()).unwrap();
    }
}
