//! The poolers' own log files (`--pgbouncer-log`): each followed as the server log is, through rotation and
//! truncation and one bounded budget per poll, and each refusal stamped with the pooler that wrote it.

use std::path::PathBuf;

use crate::analysis::ledger::{Ledger, LogPosition};
use crate::logsource::{self, LogFollower, LogFormat, Refusal, RefusedAttempt};

/// A pooler's log among the ledger's log positions: by the pooler's address, so a new file at its path is the same
/// source.
fn source_key(pooler: &str) -> String {
    format!("pooler:{pooler}")
}

struct PoolerLog {
    /// The pooler's address, as `--pgbouncer` names it.
    pooler: String,
    follower: LogFollower,
}

/// Every pooler log pgtls reads for one server.
#[derive(Default)]
pub struct PoolerLogs {
    logs: Vec<PoolerLog>,
    /// Why a log stopped being read, to show the user.
    stopped: Vec<String>,
}

impl PoolerLogs {
    /// Open each `(pooler address, file)`; with `from_start` false only what is written from now on is read.
    pub fn open(pairs: &[(String, PathBuf)], from_start: bool) -> Result<PoolerLogs, crate::files::FollowError> {
        Self::open_resuming(pairs, from_start, &Ledger::default())
    }

    /// [`PoolerLogs::open`], each log taken up where `ledger` says it was applied up to (see
    /// [`PoolerLogs::positions`]), so a restart counts no refusal twice.
    pub fn open_resuming(
        pairs: &[(String, PathBuf)],
        from_start: bool,
        ledger: &Ledger,
    ) -> Result<PoolerLogs, crate::files::FollowError> {
        let mut logs = Vec::with_capacity(pairs.len());
        for (pooler, path) in pairs {
            let position = ledger.log_position(&source_key(pooler));
            let (follower, _) = LogFollower::open_resuming(path.clone(), LogFormat::PgBouncer, from_start, position)
                .map_err(|source| crate::files::FollowError {
                    flag: "--pgbouncer-log",
                    path: path.clone(),
                    source,
                })?;
            logs.push(PoolerLog {
                pooler: pooler.clone(),
                follower,
            });
        }
        Ok(PoolerLogs {
            logs,
            stopped: Vec::new(),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.logs.is_empty()
    }

    /// How far each log has been applied, to journal with what was applied from it.
    pub fn positions(&self) -> Vec<LogPosition> {
        self.logs
            .iter()
            .filter_map(|l| l.follower.position(&source_key(&l.pooler)).ok().flatten())
            .collect()
    }

    /// Read at most about `budget` bytes of each log per poll.
    pub fn set_budget(&mut self, budget: u64) {
        for log in &mut self.logs {
            log.follower.set_budget(budget);
        }
    }

    /// The last poll stopped at its budget in some log: the next poll goes on.
    pub fn is_behind(&self) -> bool {
        self.logs.iter().any(|l| l.follower.is_behind())
    }

    /// The refusals written since the last call, from one budget of each log. A log that fails (deleted
    /// directory, permissions changed) is switched off with its reason; the others go on.
    pub fn poll(&mut self) -> Vec<RefusedAttempt> {
        let mut refused = Vec::new();
        let mut failed = Vec::new();
        for (i, log) in self.logs.iter_mut().enumerate() {
            if let Err(e) = log.follower.poll() {
                failed.push((
                    i,
                    format!(
                        "pooler {} log {} stopped: {e}",
                        log.pooler,
                        log.follower.path().display()
                    ),
                ));
                continue;
            }
            let news = log.follower.take_news();
            refused.extend(news.refused.into_iter().map(|mut r| {
                if let Refusal::Pooler(p) = &mut r.refusal {
                    p.pooler.clone_from(&log.pooler);
                }
                r
            }));
        }
        for (i, reason) in failed.into_iter().rev() {
            self.logs.remove(i);
            self.stopped.push(reason);
        }
        refused
    }

    /// One line per log: what it is and what it cannot tell.
    pub fn describe(&self) -> Vec<crate::analysis::sources::SourceNote> {
        use crate::analysis::sources::SourceNote;
        self.logs
            .iter()
            .map(|l| {
                SourceNote::on(format!(
                    "pooler {}: {}",
                    l.pooler,
                    logsource::limitations(&l.follower.source())
                ))
            })
            .chain(self.stopped.iter().cloned().map(SourceNote::off))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::fs::{self, File};
    use std::io::Write;

    use super::*;

    fn append(path: &std::path::Path, bytes: &[u8]) {
        File::options()
            .create(true)
            .append(true)
            .open(path)
            .unwrap()
            .write_all(bytes)
            .unwrap();
    }

    const PLAIN: &str = "2026-12-03 13:29:44.172 UTC [29888] WARNING C-0x5649663871c0: (nodb)/(nouser)@127.0.0.1:38770 pooler error: SSL required\n";
    const HANDSHAKE: &str = "2026-12-03 13:28:37.554 UTC [29888] WARNING TLS handshake error: handshake failed: error:0A000102:SSL routines::unsupported protocol\n";

    /// The follower's bytes pass the same hostile input as the server log's: invalid UTF-8, a megabyte line, a
    /// half-written line, rotation and truncation; each refusal is stamped with its pooler, none invented.
    #[test]
    fn a_hostile_rotated_log_gives_only_the_real_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pgbouncer.log");
        append(&path, b"2026-12-03 13:28:32.686 UTC [1] LOG process up\n");
        let mut logs = PoolerLogs::open(&[("127.0.0.1:6432".into(), path.clone())], true).unwrap();
        logs.set_budget(64 << 10);
        assert!(logs.poll().is_empty());

        append(&path, b"\xff\xfe invalid \xc3( utf-8 \x1b[2J\n");
        append(&path, &vec![b'A'; 1 << 20]);
        append(&path, format!("\n{PLAIN}").as_bytes());
        append(&path, &HANDSHAKE.as_bytes()[..40]);
        let mut refused = Vec::new();
        for _ in 0..40 {
            refused.extend(logs.poll());
            if !logs.is_behind() {
                break;
            }
        }
        assert_eq!(refused.len(), 1, "{refused:#?}");
        assert_eq!(refused[0].client_addr.as_deref(), Some("127.0.0.1"));
        assert_eq!(refused[0].refusal.pooler(), Some("127.0.0.1:6432"));

        // The half-written line completes; then the file is rotated away and a new one starts.
        append(&path, &HANDSHAKE.as_bytes()[40..]);
        fs::rename(&path, dir.path().join("pgbouncer.log.1")).unwrap();
        append(&path, PLAIN.replace("38770", "38782").as_bytes());
        let refused = logs.poll();
        assert_eq!(refused.len(), 2, "{refused:#?}");
        assert_eq!(refused[0].client_addr, None, "a handshake line names no client");
        assert!(matches!(&refused[0].refusal, Refusal::Pooler(p) if p.setting == "client_tls_protocols"));

        // Truncated in place and refilled: read again from its start.
        File::options().write(true).open(&path).unwrap().set_len(0).unwrap();
        append(&path, HANDSHAKE.as_bytes());
        assert_eq!(logs.poll().len(), 1);
        assert!(
            logs.describe()[0]
                .text
                .starts_with("pooler 127.0.0.1:6432: log source: file "),
            "{:?}",
            logs.describe()
        );
    }

    /// Reopened on a ledger that noted how far it read, a pooler's log gives only the refusals written since.
    #[test]
    fn a_reopened_log_resumes_where_the_ledger_says() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pgbouncer.log");
        append(&path, PLAIN.as_bytes());
        append(&path, HANDSHAKE.as_bytes());
        let pairs = [("127.0.0.1:6432".to_string(), path.clone())];
        let mut ledger = Ledger::default();
        let mut logs = PoolerLogs::open_resuming(&pairs, true, &ledger).unwrap();
        assert_eq!(logs.poll().len(), 2);
        for position in logs.positions() {
            assert!(ledger.note_log_position(position).is_some());
        }
        let mut again = PoolerLogs::open_resuming(&pairs, true, &ledger).unwrap();
        assert!(again.poll().is_empty(), "nothing read twice");
        append(&path, PLAIN.replace("38770", "38790").as_bytes());
        assert_eq!(again.poll().len(), 1);
        // Without the ledger's position the whole file is read again, as before.
        let mut fresh = PoolerLogs::open(&pairs, true).unwrap();
        assert_eq!(fresh.poll().len(), 3);
    }
}
