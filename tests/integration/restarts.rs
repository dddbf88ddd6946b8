//! Restarts count nothing twice (issue 27, item 3): `check` run again on the same ledger and log, a collector
//! restarted on its ledger, and a log rotated or truncated between runs all give the counts of one long run.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers fail by panicking")]

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use pgtls::lab::{Lab, SUPERUSER, SessionKind};
use serde_json::Value;

fn conninfo(lab: &Lab) -> String {
    format!(
        "{} sslmode=verify-full sslrootcert={}",
        lab.conninfo(SUPERUSER)
            .replace("host=127.0.0.1", "host=localhost hostaddr=127.0.0.1"),
        lab.certs.ca_cert.display()
    )
}

/// Sessions per application in the ledger at `path`, as `pgtls ledger --format json` exports them.
fn counts(path: &Path, home: &Path) -> BTreeMap<String, u64> {
    let out = common::pgtls(&["ledger", &path.display().to_string(), "--format", "json"], home);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let clients: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut by_app = BTreeMap::new();
    for c in clients.as_array().unwrap() {
        let app = c["key"]["application"].as_str().unwrap_or_default().to_string();
        *by_app.entry(app).or_default() += c["sessions"].as_u64().unwrap();
    }
    by_app
}

/// The sources of one application's record, as the Holdouts screen writes them.
fn sources_of(path: &Path, home: &Path, app: &str) -> String {
    let out = common::pgtls(&["ledger", &path.display().to_string(), "--format", "json"], home);
    let clients: Value = serde_json::from_slice(&out.stdout).unwrap();
    let sources: Vec<&str> = clients
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["key"]["application"] == app)
        .flat_map(|c| c["sources"].as_array().unwrap().iter().filter_map(Value::as_str))
        .collect();
    match (sources.contains(&"poll"), sources.contains(&"log")) {
        (true, true) => "poll+log",
        (true, false) => "poll",
        (false, true) => "log",
        _ => "",
    }
    .to_string()
}

fn check(lab: &Lab, ledger: &Path, log: &Path, home: &Path) -> Value {
    let out = common::pgtls(
        &[
            "check",
            &conninfo(lab),
            "--server-log",
            &log.display().to_string(),
            "--ledger",
            &ledger.display().to_string(),
            "--format",
            "json",
        ],
        home,
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Wait until the lab's log names `app` `n` times in "connection authorized" lines.
async fn logged(lab: &Lab, app: &str, n: usize) {
    let needle = format!("application_name={app}");
    common::wait_until(
        &format!("{n} log lines of {app}"),
        Duration::from_secs(30),
        async || {
            let text = std::fs::read_to_string(&lab.log_file).unwrap_or_default();
            let seen = text.lines().filter(|l| l.contains(&needle)).count();
            if seen >= n { Ok(()) } else { Err(seen) }
        },
    )
    .await;
}

/// Three runs of `check --ledger L --server-log F` with nothing new in between report the same sessions: a
/// long-lived session is one session across runs, and log lines applied once are not applied again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_run_three_times_counts_the_same_sessions() {
    let lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    let handle = lab.clone_for_clients();
    let _long = handle.open(SessionKind::Tls12, "app", "billing-legacy").await.unwrap();
    for _ in 0..3 {
        drop(
            handle
                .open(SessionKind::Tls12, "reports", "nightly-cron")
                .await
                .unwrap(),
        );
    }
    logged(&lab, "nightly-cron", 3).await;
    let ledger = home.path().join("ledger.jsonl");
    let mut seen = Vec::new();
    for run in 0..3 {
        let json = check(&lab, &ledger, &lab.log_file, home.path());
        let sessions = json["whatif"]["evidence"]["sessions"].as_u64().unwrap();
        seen.push((sessions, counts(&ledger, home.path())));
        if run == 0 {
            let by_app = &seen[0].1;
            assert_eq!(by_app.get("billing-legacy"), Some(&1), "{by_app:?}");
            assert_eq!(by_app.get("nightly-cron"), Some(&3), "{by_app:?}");
        }
    }
    assert_eq!(seen[0], seen[1], "second run");
    assert_eq!(seen[0], seen[2], "third run");

    // A session connected since is counted once, by the next run and not again by the one after.
    let _new = handle.open(SessionKind::Tls13, "app", "storefront").await.unwrap();
    logged(&lab, "storefront", 1).await;
    check(&lab, &ledger, &lab.log_file, home.path());
    let after = counts(&ledger, home.path());
    check(&lab, &ledger, &lab.log_file, home.path());
    assert_eq!(counts(&ledger, home.path()), after);
    assert_eq!(after.get("storefront"), Some(&1), "{after:?}");
    assert_eq!(after.get("billing-legacy"), Some(&1), "{after:?}");
}

/// The same through SQL (no `--server-log`: `pg_current_logfile()` and `pg_read_binary_file()` as a superuser):
/// the ledger remembers the server's file and offset, and a run after a rotation (`pg_rotate_logfile()`)
/// finishes the old file before the new one, counting each session once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_through_sql_resumes_and_follows_a_rotation() {
    let lab = Lab::start(pgtls::lab::LabOptions {
        settings: vec![("logging_collector".into(), "on".into())],
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| common::fail(&format!("the lab cannot start: {e:#}")));
    let home = tempfile::tempdir().unwrap();
    let handle = lab.clone_for_clients();
    let run = |ledger: &Path| {
        let out = common::pgtls(
            &[
                "check",
                &conninfo(&lab),
                "--ledger",
                &ledger.display().to_string(),
                "--format",
                "json",
            ],
            home.path(),
        );
        let json: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json["log"]["state"], "on", "{json:#}");
        counts(ledger, home.path())
    };
    for _ in 0..3 {
        drop(handle.open(SessionKind::Tls12, "reports", "sql-cron").await.unwrap());
    }
    let ledger = home.path().join("sql.jsonl");
    // The log is written by the collector on its own time: wait until a run sees all three.
    common::wait_until("three sessions through SQL", Duration::from_secs(30), async || {
        let fresh = home.path().join("probe.jsonl");
        let _ = std::fs::remove_file(&fresh);
        let seen = run(&fresh).get("sql-cron").copied();
        if seen == Some(3) { Ok(()) } else { Err(seen) }
    })
    .await;
    let first = run(&ledger);
    assert_eq!(first.get("sql-cron"), Some(&3), "{first:?}");
    assert_eq!(run(&ledger), first, "second run");
    assert_eq!(run(&ledger), first, "third run");

    // Two more sessions, then the server switches to a new file: the next run finishes the old one and counts
    // the two, once.
    for _ in 0..2 {
        drop(handle.open(SessionKind::Tls12, "reports", "sql-cron").await.unwrap());
    }
    lab.admin()
        .await
        .unwrap()
        .batch_execute("SELECT pg_catalog.pg_rotate_logfile()")
        .await
        .unwrap();
    drop(handle.open(SessionKind::Tls12, "reports", "sql-after").await.unwrap());
    common::wait_until("the sessions after the rotation", Duration::from_secs(30), async || {
        let now = run(&ledger);
        if now.get("sql-after") == Some(&1) {
            Ok(now)
        } else {
            Err(now)
        }
    })
    .await;
    let after = run(&ledger);
    assert_eq!(after.get("sql-cron"), Some(&5), "{after:?}");
    assert_eq!(after.get("sql-after"), Some(&1), "{after:?}");
}

/// A log rotated (renamed away, a new file at the path) or truncated in place between two runs: the second run
/// reads the new text from its start and nothing it applied before; the counts equal one run over all of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_or_truncated_log_resumes_without_counting_twice() {
    let lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    let handle = lab.clone_for_clients();
    for _ in 0..2 {
        drop(handle.open(SessionKind::Tls12, "reports", "first-batch").await.unwrap());
    }
    logged(&lab, "first-batch", 2).await;
    let first = std::fs::read(&lab.log_file).unwrap();
    for _ in 0..3 {
        drop(
            handle
                .open(SessionKind::Tls12, "reports", "second-batch")
                .await
                .unwrap(),
        );
    }
    logged(&lab, "second-batch", 3).await;
    let all = std::fs::read(&lab.log_file).unwrap();
    let second = &all[first.len()..];

    // One run over the whole text: what the resumed runs must end with.
    let whole = home.path().join("whole.log");
    std::fs::write(&whole, &all).unwrap();
    let reference = home.path().join("reference.jsonl");
    check(&lab, &reference, &whole, home.path());
    let expected = counts(&reference, home.path());
    assert_eq!(expected.get("second-batch"), Some(&3), "{expected:?}");

    for how in ["rotated", "truncated"] {
        let log = home.path().join(format!("{how}.log"));
        let ledger = home.path().join(format!("{how}.jsonl"));
        std::fs::write(&log, &first).unwrap();
        check(&lab, &ledger, &log, home.path());
        let between = counts(&ledger, home.path());
        assert_eq!(between.get("first-batch"), Some(&2), "{how}: {between:?}");
        assert_eq!(between.get("second-batch"), None, "{how}: {between:?}");
        match how {
            "rotated" => {
                std::fs::rename(&log, home.path().join("rotated.log.1")).unwrap();
                std::fs::write(&log, second).unwrap();
            }
            _ => {
                let file = std::fs::OpenOptions::new().write(true).open(&log).unwrap();
                file.set_len(0).unwrap();
                drop(file);
                std::fs::write(&log, second).unwrap();
            }
        }
        check(&lab, &ledger, &log, home.path());
        assert_eq!(counts(&ledger, home.path()), expected, "{how}");
        // And once more: nothing new, nothing added.
        check(&lab, &ledger, &log, home.path());
        assert_eq!(counts(&ledger, home.path()), expected, "{how}, run again");
    }
}

/// How many times `serve` is restarted on one ledger: the issue saw `tls13: 25` after 24 restarts, so 24 here (about
/// a second each).
const SERVE_RESTARTS: usize = 24;

/// `serve` stopped and started again on the same ledger and log, many times: a client connected once is one
/// session, and `pgtls_connections_refused_total` does not grow without new refusals in the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_restarted_many_times_counts_the_same() {
    use crate::serve::{Serve, samples};
    let lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    let handle = lab.clone_for_clients();
    let _long = handle.open(SessionKind::Tls13, "app", "storefront").await.unwrap();
    let _old = handle.open(SessionKind::Tls12, "app", "billing-legacy").await.unwrap();
    lab.set_config("ssl_min_protocol_version", "TLSv1.3").await.unwrap();
    common::wait_until("the floor in force", Duration::from_secs(10), async || {
        match handle.open(SessionKind::Tls12, "reports", "nightly-cron").await {
            Ok(s) => Err(s.pid),
            Err(_) => Ok(()),
        }
    })
    .await;
    let ledger = home.path().join("orders.jsonl");
    let targets = home.path().join("targets.toml");
    std::fs::write(
        &targets,
        format!(
            "[[target]]\nname = \"orders\"\nconninfo = \"{} application_name=pgtls-serve-monitor\"\n\
             server_log = \"{}\"\nledger = \"{}\"\n",
            lab.conninfo(SUPERUSER),
            lab.log_file.display(),
            ledger.display()
        ),
    )
    .unwrap();
    let targets_arg = targets.display().to_string();
    let mut seen: Option<(BTreeMap<String, u64>, BTreeMap<String, f64>)> = None;
    for round in 0..=SERVE_RESTARTS {
        // No probe during the test: its refused handshakes would be new log lines between rounds.
        let serve = Serve::start(
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
        // Up, with its history in (the history follows the journal's write of the poll and the log read).
        let refused = common::wait_until("serve's history", Duration::from_secs(60), async || {
            let text = serve.get("/metrics").map(|r| r.1).unwrap_or_default();
            let refused = samples(&text, "pgtls_connections_refused_total");
            let clients = samples(&text, "pgtls_clients");
            if !refused.is_empty() && !clients.is_empty() {
                Ok(refused)
            } else {
                Err(text)
            }
        })
        .await;
        let pid = nix::unistd::Pid::from_raw(serve.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let mut serve = serve;
        serve.child.wait().unwrap();
        let now = (counts(&ledger, home.path()), refused);
        assert_eq!(now.0.get("storefront"), Some(&1), "round {round}: {:?}", now.0);
        assert_eq!(now.0.get("billing-legacy"), Some(&1), "round {round}: {:?}", now.0);
        // Seen by both sources, and still so after a restart (not one session per source, nor "poll" alone).
        assert_eq!(
            sources_of(&ledger, home.path(), "billing-legacy"),
            "poll+log",
            "round {round}"
        );
        match &seen {
            None => seen = Some(now),
            Some(first) => assert_eq!(&now, first, "after {round} restart(s)"),
        }
    }
}
