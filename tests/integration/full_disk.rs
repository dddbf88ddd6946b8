//! A full disk loses nothing memory holds (issue 27, item 5), on a real 64 KB tmpfs: a failed ledger write is
//! reported once (stderr, `pgtls_ledger_write_errors_total`, the ledger source down), retried at every poll, and
//! the file is rewritten whole from memory once there is room (no torn line, no `PATH.tmp` left); a target whose
//! ledger cannot be written or opened at start runs without it while the others run normally.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers fail by panicking")]

use crate::common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use pgtls::analysis::ledger::{Journal, KeyFields, Ledger};
use pgtls::lab::{Lab, SUPERUSER, SessionKind};

/// A 64 KB tmpfs, unmounted when dropped. Mounting needs root (the tests run as root, as the lab does); where it
/// is refused the test fails saying so rather than passing on a disk that never fills.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount() -> SmallDisk {
        std::fs::create_dir_all("/tmp/ledger").unwrap();
        let dir = tempfile::Builder::new()
            .prefix("disk")
            .tempdir_in("/tmp/ledger")
            .unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
            .arg(dir.path())
            .output()
            .unwrap();
        if !out.status.success() {
            common::fail(&format!(
                "cannot mount a 64 KB tmpfs (run as root): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        SmallDisk { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Write a filler file until the disk refuses another byte.
    fn fill(&self) {
        let mut filler = std::fs::File::create(self.path("filler")).unwrap();
        let block = [0u8; 1024];
        loop {
            match filler.write(&block) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(nix::libc::ENOSPC) => break,
                Err(e) => panic!("filling: {e}"),
            }
        }
        let single = [0u8; 1];
        while filler.write(&single).is_ok_and(|n| n == 1) {}
    }

    fn free(&self) {
        std::fs::remove_file(self.path("filler")).unwrap();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

fn tmp_of(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Replay the file read-only: its clients' sessions, and how many lines could not be read.
fn replay(path: &Path) -> (u64, usize) {
    let mut ledger = Ledger::new(KeyFields::default());
    let report = Journal::replay_read_only(path, &mut ledger).unwrap();
    (ledger.total_sessions(), report.skipped.len())
}

/// The journal alone: writes fail while the disk is full (each retry rewrites, and leaves no temporary file), and
/// the first write once there is room writes the whole ledger, readable to its last line.
#[test]
fn a_full_disk_loses_nothing_and_leaves_no_torn_line() {
    let disk = SmallDisk::mount();
    let path = disk.path("ledger.jsonl");
    let mut ledger = Ledger::new(KeyFields::default());
    let (mut journal, _) = Journal::open(&path, &mut ledger).unwrap();
    let snap = pgtls::fixtures::snapshot();
    let entries = ledger.observe_snapshot(&snap, false);
    journal.append(&entries, &ledger).unwrap();
    disk.fill();
    let mut failures = 0;
    for i in 0..40i64 {
        let mut later = snap.clone();
        later.taken_at += chrono::Duration::seconds(i + 1);
        for s in &mut later.sessions {
            if !s.monitor {
                s.backend_start = Some(later.taken_at);
            }
        }
        let entries = ledger.observe_snapshot(&later, false);
        if journal.append(&entries, &ledger).is_err() {
            failures += 1;
            assert!(journal.is_failing());
            assert!(!tmp_of(&path).exists(), "a failed rewrite leaves no temporary file");
        }
    }
    assert!(failures > 0, "the full disk refused no write");
    disk.free();
    journal.append(&[], &ledger).unwrap();
    assert!(!journal.is_failing());
    assert!(!tmp_of(&path).exists());
    assert_eq!(
        replay(&path),
        (ledger.total_sessions(), 0),
        "every session, no torn line"
    );
    // And appending goes on as before.
    let mut later = snap.clone();
    later.taken_at += chrono::Duration::minutes(5);
    later.sessions.retain(|s| s.monitor);
    let entries = ledger.observe_snapshot(&later, false);
    journal.append(&entries, &ledger).unwrap();
    drop(journal);
    assert_eq!(replay(&path), (ledger.total_sessions(), 0));
}

fn targets_toml(lab: &Lab, ledgers: &[(&str, &Path)]) -> String {
    ledgers
        .iter()
        .map(|(name, ledger)| {
            format!(
                "[[target]]\nname = \"{name}\"\nconninfo = \"{} application_name=pgtls-{name}\"\nledger = \"{}\"\n",
                lab.conninfo(SUPERUSER),
                ledger.display()
            )
        })
        .collect()
}

/// `serve` with three targets: `full` has its ledger on a full disk, `dir` names a directory as its ledger, `fine`
/// has a normal one. All three run; `full` says once that its ledger is not written, counts its failed writes,
/// and is written whole once the disk has room again; `dir` runs without a ledger, saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_runs_every_target_through_a_full_disk_and_catches_up() {
    use crate::serve::{Serve, samples};
    let lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    let disk = SmallDisk::mount();
    let full = disk.path("full.jsonl");
    let not_a_file = home.path().join("a-directory");
    std::fs::create_dir(&not_a_file).unwrap();
    let fine = home.path().join("fine.jsonl");
    disk.fill();
    let targets = home.path().join("targets.toml");
    std::fs::write(
        &targets,
        targets_toml(&lab, &[("full", &full), ("dir", &not_a_file), ("fine", &fine)]),
    )
    .unwrap();
    let targets_arg = targets.display().to_string();
    let mut serve = Serve::start(
        &[
            "--targets",
            &targets_arg,
            "--interval",
            "1",
            "--probe-interval",
            "86400",
        ],
        home.path(),
    );
    let metric = |text: &str, name: &str, labels: &str| samples(text, name).get(labels).copied();
    common::wait_until(
        "all three up, full's ledger down",
        Duration::from_secs(60),
        async || {
            let text = serve.get("/metrics").map(|r| r.1).unwrap_or_default();
            let ups: Vec<_> = ["full", "dir", "fine"]
                .iter()
                .map(|t| metric(&text, "pgtls_up", &format!("target=\"{t}\"")))
                .collect();
            let errors = metric(&text, "pgtls_ledger_write_errors_total", "target=\"full\"").unwrap_or(0.0);
            let ledger_up = metric(&text, "pgtls_source_up", "target=\"full\",source=\"ledger\"");
            // Each target's history in: its ledger source listed.
            let others_in = ["fine", "dir"]
                .iter()
                .all(|t| metric(&text, "pgtls_source_up", &format!("target=\"{t}\",source=\"ledger\"")).is_some());
            if ups.iter().all(|u| *u == Some(1.0)) && errors >= 1.0 && ledger_up == Some(0.0) && others_in {
                Ok(())
            } else {
                Err(text)
            }
        },
    )
    .await;
    assert!(serve.child.try_wait().unwrap().is_none(), "serve still runs");
    let text = serve.get("/metrics").unwrap().1;
    assert_eq!(
        metric(&text, "pgtls_ledger_write_errors_total", "target=\"fine\""),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "pgtls_source_up", "target=\"fine\",source=\"ledger\""),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "pgtls_source_up", "target=\"dir\",source=\"ledger\""),
        Some(0.0),
        "{text}"
    );

    // A client while the disk is full: in memory, and in the file once there is room.
    let _during = lab.open(SessionKind::Tls12, SUPERUSER, "while-full").await.unwrap();
    common::wait_until("the client in the API", Duration::from_secs(30), async || {
        let text = serve.get("/metrics").map(|r| r.1).unwrap_or_default();
        let errors = metric(&text, "pgtls_ledger_write_errors_total", "target=\"full\"").unwrap_or(0.0);
        // Retried at every poll: the count grows while the disk stays full.
        if errors >= 3.0 { Ok(()) } else { Err(text) }
    })
    .await;
    disk.free();
    common::wait_until("full's ledger written whole", Duration::from_secs(30), async || {
        let text = serve.get("/metrics").map(|r| r.1).unwrap_or_default();
        let up = metric(&text, "pgtls_source_up", "target=\"full\",source=\"ledger\"");
        let written = std::fs::read_to_string(&full).unwrap_or_default();
        if up == Some(1.0) && written.contains("while-full") {
            Ok(())
        } else {
            Err((up, written.len()))
        }
    })
    .await;
    assert!(!tmp_of(&full).exists(), "no temporary file left");
    let (sessions, skipped) = replay(&full);
    assert_eq!(skipped, 0, "no torn line");
    assert!(sessions >= 1);

    let pid = nix::unistd::Pid::from_raw(serve.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    serve.child.wait().unwrap();
    let mut stderr = String::new();
    serve.child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    let said = |needle: &str| stderr.lines().filter(|l| l.contains(needle)).count();
    assert_eq!(said("target \"full\": ledger not written:"), 1, "once:\n{stderr}");
    assert_eq!(said("target \"full\": ledger written again"), 1, "{stderr}");
    assert_eq!(said("target \"dir\": "), 1, "{stderr}");
    assert!(stderr.contains("running without a ledger"), "{stderr}");
    assert_eq!(said("target \"fine\": ledger"), 0, "{stderr}");
}
