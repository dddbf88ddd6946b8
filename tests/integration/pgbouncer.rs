//! Behind PgBouncer (issue 16): a real pooler from the distribution in front of the lab server, with a TLS 1.3, a
//! TLS 1.2 and a plain-text client through it, in session and in transaction pooling. pgtls must show and judge
//! each client's own leg, never the pooler's.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers fail by panicking")]

use crate::common;

use std::time::Duration;

use pgtls::collect::pooler::PoolerError;
use pgtls::lab::pgbouncer::{LabPooler, PoolerOptions, find_binary};
use pgtls::lab::{Lab, LabSession, SUPERUSER, SessionKind};
use serde_json::Value;

/// The role pgtls's admin console connection uses.
const MONITOR: &str = "pgtls_pool_mon";
const APP: &str = "pooled_app";

/// The pooler tests need the pgbouncer binary; CI installs it (.ci/run) and fails here if it is missing.
fn binary_present() -> bool {
    if find_binary().is_some() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "pgbouncer is not installed, but CI must run the pooler tests (scripts/test installs the pgbouncer package)"
    );
    eprintln!("skipped: pgbouncer is not installed (apt-get install pgbouncer)");
    false
}

fn options(pool_mode: &str) -> PoolerOptions {
    PoolerOptions {
        pool_mode: pool_mode.to_string(),
        users: vec![APP.to_string()],
        admin_users: vec![MONITOR.to_string()],
        ..PoolerOptions::default()
    }
}

/// The three pooled clients of the issue: TLS 1.3, TLS 1.2 and plain text on their own leg.
async fn three_clients(pooler: &LabPooler) -> Vec<LabSession> {
    let mut sessions = Vec::new();
    for (kind, app) in [
        (SessionKind::Tls13, "pooled-tls13"),
        (SessionKind::Tls12, "pooled-tls12"),
        (SessionKind::PlainTcp, "pooled-plain"),
    ] {
        sessions.push(pooler.open(kind, APP, app).await.expect("pooled client connects"));
    }
    sessions
}

fn monitor_conninfo(lab: &Lab) -> String {
    format!("{} sslmode=require", lab.conninfo(SUPERUSER))
}

fn snapshot_json(lab: &Lab, pooler: &LabPooler, home: &std::path::Path) -> Value {
    let admin = pooler.admin_conninfo(MONITOR);
    let out = common::pgtls(
        &[
            "snapshot",
            &monitor_conninfo(lab),
            "--pgbouncer",
            &admin,
            "--format",
            "json",
        ],
        home,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("snapshot JSON")
}

fn by_app<'a>(list: &'a Value, app: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|v| v["application_name"] == app)
        .unwrap_or_else(|| panic!("{app} not in {list:#}"))
}

#[tokio::test]
async fn session_pooling_shows_each_clients_own_leg() {
    if !binary_present() {
        return;
    }
    let lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    let pooler = LabPooler::start(&lab, &options("session"))
        .await
        .expect("pgbouncer starts");
    let clients = three_clients(&pooler).await;
    let json = snapshot_json(&lab, &pooler, home.path());

    let poolers = json["poolers"].as_array().expect("poolers array");
    assert_eq!(poolers.len(), 1);
    let p = &poolers[0];
    assert_eq!(p["address"], pooler.address());
    assert!(p.get("error").is_none(), "{p:#}");
    assert_eq!(p["settings"]["client_tls_sslmode"], "allow");
    assert_eq!(p["settings"]["server_tls_sslmode"], "require");
    assert_eq!(p["settings"]["pool_mode"], "session");
    let pc = &p["clients"];
    assert_eq!(by_app(pc, "pooled-tls13")["tls"]["version"], "TLSv1.3");
    assert_eq!(by_app(pc, "pooled-tls12")["tls"]["version"], "TLSv1.2");
    assert!(
        by_app(pc, "pooled-tls12")["tls"]["cipher"]
            .as_str()
            .unwrap()
            .contains("ECDHE")
    );
    assert_eq!(by_app(pc, "pooled-plain")["tls"], Value::Null);
    assert_eq!(by_app(pc, "pooled-plain")["user"], APP);
    assert_eq!(by_app(pc, "pooled-plain")["database"], "postgres");
    assert_eq!(by_app(pc, "pooled-plain")["address"], "127.0.0.1");
    assert!(by_app(pc, "pooled-plain")["port"].as_i64().unwrap() > 0);
    assert!(
        pc.as_array()
            .unwrap()
            .iter()
            .all(|c| c["monitor"] != true || c["database"] == "pgbouncer"),
        "only pgtls's own console connection is its own"
    );

    // Each server session carries both legs: its own (the pooler's, TLS 1.3) and its client's.
    let sessions = &json["sessions"];
    for (client, app, version) in [
        (&clients[0], "pooled-tls13", Some("TLSv1.3")),
        (&clients[1], "pooled-tls12", Some("TLSv1.2")),
        (&clients[2], "pooled-plain", None),
    ] {
        let s = sessions
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["pid"] == client.pid)
            .unwrap_or_else(|| panic!("pid {} of {app} not among the sessions", client.pid));
        assert_eq!(s["application_name"], app);
        assert_eq!(s["tls"]["version"], "TLSv1.3", "the pooler's own leg: {s:#}");
        let leg = &s["pooler"];
        assert_eq!(leg["address"], pooler.address(), "{s:#}");
        assert_eq!(leg["join"], "client");
        assert_eq!(leg["client"]["address"], "127.0.0.1");
        match version {
            Some(v) => assert_eq!(leg["client"]["tls"]["version"], v, "{s:#}"),
            None => assert_eq!(leg["client"]["tls"], Value::Null, "{s:#}"),
        }
    }
    // The table says it too: the plain client's row carries its own leg after the pooler's TLS.
    let out = common::pgtls(
        &[
            "snapshot",
            &monitor_conninfo(&lab),
            "--pgbouncer",
            &pooler.admin_conninfo(MONITOR),
        ],
        home.path(),
    );
    let table = String::from_utf8_lossy(&out.stdout);
    let plain = table.lines().find(|l| l.contains("pooled-plain")).unwrap_or_default();
    assert!(plain.starts_with('!'), "{table}");
    assert!(
        plain.contains(&format!("client leg no TLS via {}", pooler.address())),
        "{table}"
    );
    assert!(table.contains("client_tls_sslmode=allow"), "{table}");
    drop(clients);
}

/// `check` judges the pooled clients by their own leg and names the pooler setting that would refuse them.
#[tokio::test]
async fn check_names_the_pooled_client_each_target_refuses() {
    if !binary_present() {
        return;
    }
    let lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    let pooler = LabPooler::start(&lab, &options("session"))
        .await
        .expect("pgbouncer starts");
    let _clients = three_clients(&pooler).await;
    let admin = pooler.admin_conninfo(MONITOR);
    let check = |target: &str, format: &str| {
        common::pgtls(
            &[
                "check",
                &monitor_conninfo(&lab),
                "--pgbouncer",
                &admin,
                "--target",
                target,
                "--format",
                format,
            ],
            home.path(),
        )
    };
    let via = format!("via pooler {}", pooler.address());

    let out = check("TLSv1.3", "text");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    let first = text.lines().next().unwrap();
    assert!(
        first.starts_with("PGTLS CRITICAL - 1 client(s) would be refused by pooler "),
        "{first}"
    );
    assert!(first.contains("client_tls_protocols"), "{first}");
    assert!(
        first.contains(&format!("pooled-tls12 ({APP}@postgres from 127.0.0.1 {via})")),
        "{first}"
    );
    assert!(
        !first.contains("pooled-plain") && !first.contains("pooled-tls13"),
        "{first}"
    );
    assert!(
        text.contains("client_tls_sslmode = allow"),
        "a prefer client could fall back: {text}"
    );

    let out = check("TLSv1.3", "json");
    assert_eq!(out.status.code(), Some(2));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let refused = json["whatif"]["refused"].as_array().unwrap();
    assert_eq!(refused.len(), 1, "{refused:#?}");
    assert_eq!(refused[0]["client"]["application"], "pooled-tls12");
    assert_eq!(refused[0]["client"]["pooler"]["side"], "client");
    assert_eq!(
        refused[0]["refused_by"],
        format!("pooler {}'s client_tls_protocols", pooler.address())
    );

    let out = check("tls-required", "text");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    let first = text.lines().next().unwrap();
    assert!(first.contains("client_tls_sslmode"), "{first}");
    assert!(
        first.contains(&format!("pooled-plain ({APP}@postgres from 127.0.0.1 {via})")),
        "{first}"
    );
    assert!(
        !first.contains("pooled-tls12") && !first.contains("pooled-tls13"),
        "{first}"
    );
}

/// Sessions of the pooled clients (their own leg) per application, as `pgtls ledger --format json` exports them.
fn pooled_counts(ledger: &std::path::Path, home: &std::path::Path) -> std::collections::BTreeMap<String, u64> {
    let out = common::pgtls(&["ledger", &ledger.display().to_string(), "--format", "json"], home);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let clients: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut by_app = std::collections::BTreeMap::new();
    for c in clients.as_array().unwrap() {
        if c["key"]["pooler"]["side"] == "client" {
            let app = c["key"]["application"].as_str().unwrap_or_default().to_string();
            *by_app.entry(app).or_default() += c["sessions"].as_u64().unwrap();
        }
    }
    by_app
}

/// A pooled client held open across runs of `check --ledger` is counted once (the ledger keeps the pooler's
/// `ptr` and connect time of each client it counted); a new client of the same application is counted again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pooled_client_connected_across_restarts_is_counted_once() {
    if !binary_present() {
        return;
    }
    let lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    let pooler = LabPooler::start(&lab, &options("session"))
        .await
        .expect("pgbouncer starts");
    let _held = pooler
        .open(SessionKind::Tls12, APP, "pooled-held")
        .await
        .expect("pooled client connects");
    let admin = pooler.admin_conninfo(MONITOR);
    let ledger = home.path().join("ledger.jsonl");
    let check = || {
        let out = common::pgtls(
            &[
                "check",
                &monitor_conninfo(&lab),
                "--pgbouncer",
                &admin,
                "--ledger",
                &ledger.display().to_string(),
                "--format",
                "json",
            ],
            home.path(),
        );
        assert!(
            out.status.code().is_some_and(|c| c <= 2),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    for run in 1..=3 {
        check();
        let counts = pooled_counts(&ledger, home.path());
        assert_eq!(counts.get("pooled-held"), Some(&1), "run {run}: {counts:?}");
    }
    // A second client of the same application is a new session, counted once too.
    let _second = pooler
        .open(SessionKind::Tls12, APP, "pooled-held")
        .await
        .expect("pooled client connects");
    for run in 4..=5 {
        check();
        let counts = pooled_counts(&ledger, home.path());
        assert_eq!(counts.get("pooled-held"), Some(&2), "run {run}: {counts:?}");
    }
}

#[tokio::test]
async fn transaction_pooling_lists_the_clients_on_their_own() {
    if !binary_present() {
        return;
    }
    let lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    // stats_users is enough: pgtls only reads.
    let read_only = PoolerOptions {
        admin_users: Vec::new(),
        stats_users: vec![MONITOR.to_string()],
        ..options("transaction")
    };
    let pooler = LabPooler::start(&lab, &read_only).await.expect("pgbouncer starts");
    let clients = three_clients(&pooler).await;
    // An open transaction holds a server connection for its client while the snapshot runs.
    clients[2].execute("BEGIN; SELECT 1").await.unwrap();
    let json = snapshot_json(&lab, &pooler, home.path());
    let p = &json["poolers"][0];
    assert!(p.get("error").is_none(), "{p:#}");
    assert_eq!(p["settings"]["pool_mode"], "transaction");
    assert_eq!(by_app(&p["clients"], "pooled-plain")["tls"], Value::Null);
    assert_eq!(by_app(&p["clients"], "pooled-tls12")["tls"]["version"], "TLSv1.2");
    let pooled: Vec<&Value> = json["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| !s["pooler"].is_null())
        .collect();
    assert!(!pooled.is_empty(), "{json:#}");
    for s in pooled {
        assert_eq!(s["pooler"]["join"], "transaction", "{s:#}");
        assert_eq!(s["pooler"]["client"], Value::Null, "{s:#}");
    }
    // The pooler's clients are judged on their own: check still names the TLS 1.2 one.
    let out = common::pgtls(
        &[
            "check",
            &monitor_conninfo(&lab),
            "--pgbouncer",
            &pooler.admin_conninfo(MONITOR),
        ],
        home.path(),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.lines().next().unwrap().contains("pooled-tls12"), "{text}");
    clients[2].execute("COMMIT").await.unwrap();
}

#[tokio::test]
async fn a_role_outside_admin_users_and_stats_users_is_told_so() {
    if !binary_present() {
        return;
    }
    let lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    let pooler = LabPooler::start(&lab, &options("session"))
        .await
        .expect("pgbouncer starts");
    // APP may log in through the pooler but is in neither list.
    let out = common::pgtls(
        &[
            "snapshot",
            &monitor_conninfo(&lab),
            "--pgbouncer",
            &pooler.admin_conninfo(APP),
            "--format",
            "json",
        ],
        home.path(),
    );
    assert!(
        out.status.success(),
        "a pooler that refuses pgtls does not fail the snapshot"
    );
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let error = json["poolers"][0]["error"].as_str().unwrap();
    assert!(error.contains("neither admin_users nor stats_users"), "{error}");
    assert!(error.contains(APP), "{error}");
}

/// The role refused by a real PgBouncer is told apart by its variant (PgBouncer's own SQLSTATE with its fixed
/// reason), not by searching the message; a role it lets in is not that variant.
#[tokio::test]
async fn a_role_outside_both_lists_is_classified_by_its_variant() {
    if !binary_present() {
        return;
    }
    let lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    let pooler = LabPooler::start(&lab, &options("session"))
        .await
        .expect("pgbouncer starts");
    let env = common::clean_env(home.path());
    let mut refused = pgtls::collect::pooler::Poolers::resolve(&[pooler.admin_conninfo(APP)], &env).unwrap();
    let answered = refused.poll(Duration::from_secs(20)).await;
    let error = refused.last_errors()[0].cloned();
    match &error {
        Some(PoolerError::NotAllowed { source, user }) => {
            assert_eq!(user, APP);
            let Some(pgtls::conn::Cause::Server { code, message }) = source.cause() else {
                panic!("{source:?}")
            };
            assert_eq!((code.as_str(), message.as_str()), ("08P01", "not allowed"));
        }
        other => panic!("not classified as not allowed: {other:?}"),
    }
    assert_eq!(answered[0].error, error.map(|e| e.to_string()));
    let mut admitted = pgtls::collect::pooler::Poolers::resolve(&[pooler.admin_conninfo(MONITOR)], &env).unwrap();
    let answered = admitted.poll(Duration::from_secs(20)).await;
    assert_eq!(answered[0].error, None);
    assert_eq!(admitted.last_errors(), vec![None]);
}

/// A port found free can be taken before PgBouncer binds it (the same race as the lab server's): the pooler then
/// starts on another port, and a listener that merely answers on the taken port is never taken for the pooler.
#[tokio::test]
async fn a_taken_port_moves_the_pooler_to_another() {
    if !binary_present() {
        return;
    }
    let lab = common::lab().await;
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = squatter.local_addr().unwrap().port();
    let pooler = LabPooler::start(
        &lab,
        &PoolerOptions {
            port: Some(taken),
            ..options("session")
        },
    )
    .await
    .expect("pgbouncer starts on another port");
    assert_ne!(pooler.port, taken);
    let (client, connection) = tokio_postgres::connect(&pooler.admin_conninfo(MONITOR), tokio_postgres::NoTls)
        .await
        .expect("the admin console answers on the new port");
    tokio::spawn(connection);
    let rows = client.simple_query("SHOW VERSION").await.unwrap();
    assert!(
        rows.iter()
            .any(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(r)
            if r.get(0).is_some_and(|v| v.contains("PgBouncer")))),
        "SHOW VERSION names PgBouncer"
    );
    let first_log = lab.root().join(format!("pgbouncer-{taken}")).join("pgbouncer.log");
    let first = std::fs::read_to_string(&first_log).unwrap();
    assert!(first.contains("Address already in use"), "{first}");
    drop(squatter);
}

/// The dashboard in tmux: each pooled session's CLIENT LEG column shows its client's own TLS (the TLS column
/// keeps the pooler's), the drill-down shows both legs, and the pooler's settings sit beside the server's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_each_pooled_clients_own_leg() {
    if !binary_present() {
        return;
    }
    let lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    let pooler = LabPooler::start(&lab, &options("session"))
        .await
        .expect("pgbouncer starts");
    let _clients = three_clients(&pooler).await;
    let conninfo = monitor_conninfo(&lab);
    let admin = pooler.admin_conninfo(MONITOR);
    let tmux = common::tmux::Tmux::start(
        &[&conninfo, "--pgbouncer", &admin, "--interval", "0.5"],
        home.path(),
        160,
        40,
    );
    let wait = Duration::from_secs(20);
    let row = |screen: &str, app: &str| {
        screen
            .lines()
            .find(|l| l.contains(app) && l.contains("127.0.0.1:"))
            .unwrap_or("")
            .to_string()
    };
    let screen = tmux.wait_for("the three pooled rows with their client legs", wait, |s| {
        s.contains("CLIENT LEG")
            && row(s, "pooled-plain").contains("no TLS")
            && row(s, "pooled-tls12").contains("TLSv1.2")
            && row(s, "pooled-tls13").matches("TLSv1.3").count() == 2
    });
    // Each pooled row: the pooler's own leg (TLS 1.3) and the client's.
    for app in ["pooled-plain", "pooled-tls12"] {
        assert!(row(&screen, app).contains("TLSv1.3"), "{app}: {screen}");
    }
    assert!(
        row(&screen, "pooled-plain").starts_with("│!"),
        "the marker warns about the plain client: {screen}"
    );
    assert!(
        screen
            .lines()
            .any(|l| l.contains("pgbouncer") && l.contains(&pooler.address())),
        "the pooler's settings beside the server's: {screen}"
    );
    assert!(screen.contains("Protocols · 3 sessions"), "{screen}");
    assert!(
        screen.lines().any(|l| l.contains("no TLS") && l.contains("33%")),
        "the summary counts the plain client's own leg: {screen}"
    );

    // Quick view 2 (no TLS) keeps the plain pooled client, whose own leg has none.
    tmux.keys(&["2"]);
    let only_plain = tmux.wait_for("no-TLS quick view", wait, |s| {
        !row(s, "pooled-plain").is_empty() && row(s, "pooled-tls13").is_empty()
    });
    assert!(row(&only_plain, "pooled-tls12").is_empty(), "{only_plain}");
    tmux.keys(&["Enter"]);
    let detail = tmux.wait_for("the drill-down of the plain pooled client", wait, |s| {
        s.contains("Behind PgBouncer")
    });
    assert!(detail.contains("client no TLS"), "{detail}");
    assert!(detail.contains("pooler leg TLSv1.3"), "{detail}");
    assert!(
        detail.contains(&format!("Behind pooler {}", pooler.address())),
        "{detail}"
    );
    assert!(detail.contains("client_tls_sslmode"), "{detail}");
    tmux.keys(&["Escape"]);
    // Esc and q sent together read as Alt-q (ESC is the Alt prefix): let the Esc land first.
    tmux.wait_for("the table again", wait, |s| !s.contains("Behind PgBouncer"));
    tmux.keys(&["q"]);
    assert_eq!(tmux.exit_status(wait), Some(0), "pgtls exits 0 on q");
}

/// A pooler that accepts but never answers costs a poll at most its timeout: the server's snapshot still comes,
/// with the pooler's error, and nothing is joined (no pgbouncer binary needed).
#[tokio::test]
async fn a_silent_pooler_never_holds_up_the_servers_poll() {
    let lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let env = common::clean_env(home.path());
    let poolers = pgtls::collect::pooler::Poolers::resolve(
        &[format!(
            "host=127.0.0.1 port={port} user=x dbname=pgbouncer sslmode=disable"
        )],
        &env,
    )
    .unwrap();
    let params = common::params(&monitor_conninfo(&lab), home.path());
    let limit = Duration::from_secs(2);
    let mut collector = pgtls::collect::Collector::connect_with(&params, limit)
        .await
        .unwrap()
        .with_poolers(poolers);
    for _ in 0..2 {
        // The pooler never answers, so a poll that comes back at all was not held up by it: the proof is the
        // snapshot arriving with the pooler's error. The outer deadline only turns a hang into a failure.
        let snapshot = tokio::time::timeout(limit * 15, collector.poll())
            .await
            .expect("a silent pooler held up the server's poll")
            .expect("the server's poll succeeds");
        let pooler = &snapshot.poolers[0];
        assert!(pooler.error.is_some(), "{pooler:?}");
        assert!(snapshot.sessions.iter().all(|s| s.pooler.is_none()));
    }
    drop(listener);
}

/// The pooler's own log (`--pgbouncer-log`): after its client_tls_protocols is raised to tlsv1.3 and RELOADed, a
/// TLS 1.2 client is refused by the pooler, which the server never sees; after client_tls_sslmode = require, a
/// plain one. `check` and `snapshot` name each refusal with the pooler's setting, and PgBouncer 1.18's handshake
/// line, which carries no client address, is counted as an anonymous attempt at that pooler.
#[tokio::test]
async fn the_poolers_log_shows_whom_its_raised_settings_refused() {
    if !binary_present() {
        return;
    }
    let lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    let pooler = LabPooler::start(&lab, &options("session"))
        .await
        .expect("pgbouncer starts");
    let refused_by = |setting: &str| format!("pooler {}'s {setting}", pooler.address());
    let log = pooler.log_file.display().to_string();
    let deadline = || std::time::Instant::now() + Duration::from_secs(20);

    // TLS 1.2 is welcome before the change.
    drop(
        pooler
            .open(SessionKind::Tls12, APP, "legacy")
            .await
            .expect("TLS 1.2 before"),
    );
    pooler
        .reload_with(MONITOR, "client_tls_protocols", "tlsv1.3")
        .await
        .expect("raised and reloaded");
    let until = deadline();
    while pooler.open(SessionKind::Tls12, APP, "legacy").await.is_ok() {
        assert!(std::time::Instant::now() < until, "the pooler never refused TLS 1.2");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The line PgBouncer writes for it, as read by the parser (PgBouncer writes it before closing the socket).
    let line = wait_for_line(&pooler.log_file, "TLS handshake error", until);
    let parsed = pgtls::logsource::pgbouncer::parse_line(&line).unwrap_or_else(|| panic!("not parsed: {line}"));
    assert_eq!(
        parsed.client, None,
        "1.18 logs no client address on a failed handshake: {line}"
    );
    assert_eq!(parsed.reason, "unsupported protocol", "{line}");
    assert!(
        line.contains(" WARNING TLS handshake error: handshake failed: error:"),
        "{line}"
    );

    let admin = pooler.admin_conninfo(MONITOR);
    let check = |admin: &str, target: &str, format: &str| {
        common::pgtls(
            &[
                "check",
                &monitor_conninfo(&lab),
                "--pgbouncer",
                admin,
                "--pgbouncer-log",
                &log,
                "--target",
                target,
                "--format",
                format,
            ],
            home.path(),
        )
    };
    let out = check(&admin, "TLSv1.3", "json");
    let json: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(out.status.code(), Some(2), "{json:#}");
    let p = &json["pooler_after_change"][0];
    assert_eq!(p["pooler"], pooler.address(), "{json:#}");
    assert_eq!(
        (&p["setting"], &p["value"], &p["in_force"]),
        (&"client_tls_protocols".into(), &"tlsv1.3".into(), &true.into())
    );
    let anonymous = p["refused"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["address"] == pgtls::analysis::ledger::UNKNOWN_ADDRESS)
        .unwrap_or_else(|| panic!("an anonymous refused handshake: {p:#}"));
    assert!(anonymous["attempts"].as_u64().unwrap() >= 1, "{anonymous:#}");
    assert_eq!(anonymous["refused_by"], refused_by("client_tls_protocols"));
    assert_eq!(anonymous["pooler"], pooler.address());
    assert!(
        anonymous["identities"].as_array().unwrap().is_empty(),
        "no client invented: {anonymous:#}"
    );
    assert!(
        anonymous["reason"]
            .as_str()
            .unwrap()
            .ends_with("client_tls_protocols: unsupported protocol"),
        "{anonymous:#}"
    );
    assert!(
        json["perfdata"].as_str().unwrap().contains("pooler_refused=1"),
        "{json:#}"
    );
    let out = check(&admin, "TLSv1.3", "text");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    let first = text.lines().next().unwrap();
    assert!(
        first.contains(&format!(
            "refused by {} (from its log)",
            refused_by("client_tls_protocols")
        )),
        "{first}"
    );
    assert_eq!(first.matches("refused by pooler").count(), 1, "said once: {first}");
    assert!(
        text.contains("PgBouncer logs no address for a failed handshake"),
        "{text}"
    );

    // snapshot: the same refusal beside the pooler's settings.
    let out = common::pgtls(
        &[
            "snapshot",
            &monitor_conninfo(&lab),
            "--pgbouncer",
            &admin,
            "--pgbouncer-log",
            &log,
            "--format",
            "json",
        ],
        home.path(),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let snap: Value = serde_json::from_slice(&out.stdout).unwrap();
    let tls13 = snap["pooler_after_change"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["setting"] == "client_tls_protocols")
        .unwrap_or_else(|| panic!("{snap:#}"));
    assert_eq!(tls13["refused"][0]["refused_by"], refused_by("client_tls_protocols"));
    assert_eq!(snap["poolers"][0]["settings"]["client_tls_protocols"], "tlsv1.3");

    // TLS required on the pooler's client side: a plain client is turned away, and this time the log names it.
    pooler
        .reload_with(MONITOR, "client_tls_sslmode", "require")
        .await
        .expect("require reloaded");
    let until = deadline();
    while pooler.open(SessionKind::PlainTcp, APP, "plain").await.is_ok() {
        assert!(std::time::Instant::now() < until, "the pooler never refused plain text");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let line = wait_for_line(&pooler.log_file, "pooler error: SSL required", until);
    assert!(line.contains(" WARNING C-0x") && line.contains("@127.0.0.1:"), "{line}");
    // pgtls's own console connection now needs TLS too.
    let admin_tls = admin.replace("sslmode=disable", "sslmode=require");
    let out = check(&admin_tls, "tls-required", "json");
    let json: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(out.status.code(), Some(2), "{json:#}");
    let p = &json["pooler_after_change"][0];
    assert!(p.get("error").is_none() && p["in_force"] == true, "{json:#}");
    assert_eq!(p["value"], "require");
    let local = p["refused"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["address"] == "127.0.0.1")
        .unwrap_or_else(|| panic!("the plain client's address: {p:#}"));
    assert_eq!(local["refused_by"], refused_by("client_tls_sslmode"));
    assert!(
        local["reason"]
            .as_str()
            .unwrap()
            .ends_with("client_tls_sslmode: SSL required"),
        "{local:#}"
    );
    assert!(
        p["refused"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["refused_by"] == refused_by("client_tls_sslmode")),
        "under tls-required only plain-text refusals count: {p:#}"
    );
    assert!(
        json["summary"]
            .as_str()
            .unwrap()
            .contains(&refused_by("client_tls_sslmode")),
        "{json:#}"
    );
}

/// The first line of `path` containing `needle`, polled until `until`.
fn wait_for_line(path: &std::path::Path, needle: &str, until: std::time::Instant) -> String {
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        // Only a whole line: pgtls reads a line once its newline is written.
        if let Some(line) = text
            .split_inclusive('\n')
            .find(|l| l.ends_with('\n') && l.contains(needle))
            .map(str::trim_end)
        {
            // Shown with --nocapture: the real line this PgBouncer wrote.
            eprintln!("captured: {line}");
            return line.to_string();
        }
        assert!(std::time::Instant::now() < until, "{needle:?} never logged: {text}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `--pgbouncer-log` belongs to a `--pgbouncer` by position: with a count that does not match, one clear line.
#[test]
fn pgbouncer_logs_pair_with_poolers_by_position() {
    let home = tempfile::tempdir().unwrap();
    let out = common::pgtls(
        &[
            "check",
            "host=127.0.0.1 port=1 user=x",
            "--pgbouncer",
            "host=127.0.0.1 port=2 dbname=pgbouncer",
            "--pgbouncer",
            "host=127.0.0.1 port=3 dbname=pgbouncer",
            "--pgbouncer-log",
            "/var/log/postgresql/pgbouncer.log",
        ],
        home.path(),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert_eq!(
        text.trim(),
        "PGTLS UNKNOWN - --pgbouncer-log: give one per --pgbouncer, in the same order (2 --pgbouncer, 1 --pgbouncer-log)"
    );
    let out = common::pgtls(
        &[
            "snapshot",
            "host=127.0.0.1 port=1 user=x",
            "--pgbouncer-log",
            "/var/log/postgresql/pgbouncer.log",
        ],
        home.path(),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("--pgbouncer-log: give one per --pgbouncer, in the same order (0 --pgbouncer, 1 --pgbouncer-log)"),
        "{err}"
    );
}

/// The dashboard's history service follows the pooler's log too: its history names the plain client that
/// `client_tls_sslmode = require` turned away, under the pooler's setting, as the What-if screen shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboards_history_reads_the_poolers_log() {
    use pgtls::analysis::whatif::Change;
    use pgtls::collect::poller::{self, HistorySetup, PollerCommand, PollerEvent};
    if !binary_present() {
        return;
    }
    let lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    let strict = PoolerOptions {
        client_tls_sslmode: "require".to_string(),
        ..options("session")
    };
    let pooler = LabPooler::start(&lab, &strict).await.expect("pgbouncer starts");
    assert!(
        pooler.open(SessionKind::PlainTcp, APP, "plain").await.is_err(),
        "a plain client is refused"
    );
    let admin = pooler
        .admin_conninfo(MONITOR)
        .replace("sslmode=disable", "sslmode=require");
    let poolers = pgtls::collect::pooler::Poolers::resolve(&[admin], &common::clean_env(home.path()))
        .unwrap()
        .with_logs(std::slice::from_ref(&pooler.log_file))
        .unwrap();
    let setup = HistorySetup {
        pooler_logs: poolers.logs().to_vec(),
        ..HistorySetup::none()
    };
    let (tx, mut events) = tokio::sync::mpsc::channel(16);
    let handle = poller::spawn_with_poolers(
        common::params(&monitor_conninfo(&lab), home.path()),
        poolers,
        Duration::from_millis(300),
        Duration::ZERO,
        setup,
        tx,
    );
    handle.commands.send(PollerCommand::SendHistory(true)).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let found = loop {
        assert!(std::time::Instant::now() < deadline, "no pooler refusal in the history");
        let history = match tokio::time::timeout(Duration::from_secs(10), events.recv()).await {
            Ok(Some(PollerEvent::History(history))) => history,
            Ok(Some(PollerEvent::Polled {
                history: Some(history), ..
            })) => history,
            Ok(Some(_)) | Err(_) => continue,
            Ok(None) => panic!("the poller ended"),
        };
        let refused = history
            .pooler_after
            .iter()
            .filter(|p| p.target == Change::TlsRequired && p.in_force)
            .flat_map(|p| p.refused.clone())
            .find(|r| r.address == "127.0.0.1");
        if let Some(refused) = refused {
            assert!(
                history.sources.iter().any(|s| s
                    .text
                    .starts_with(&format!("pooler {}: log source: file", pooler.address()))),
                "{:#?}",
                history.sources
            );
            break refused;
        }
    };
    assert_eq!(
        found.refused_by,
        format!("pooler {}'s client_tls_sslmode", pooler.address())
    );
    assert!(found.attempts >= 1);
}

/// What a fake admin console does once asked its first SHOW.
#[derive(Clone, Copy)]
enum Console {
    /// Accepts, starts the session, never answers a query.
    Silent,
    /// Answers with rows of this many bytes, forever.
    Rows(usize),
}

/// A hostile PgBouncer admin console on a free port, speaking the simple-query protocol (no TLS, no password):
/// its task ends with the bytes of rows it sent once the client closes the connection.
async fn fake_console(behaviour: Console) -> (u16, tokio::task::JoinHandle<u64>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        // SSLRequest (refused with 'N') or the start-up message.
        loop {
            let len = socket.read_u32().await.unwrap() as usize;
            let mut body = vec![0; len - 4];
            socket.read_exact(&mut body).await.unwrap();
            if body[..4] == 80_877_103u32.to_be_bytes() {
                socket.write_all(b"N").await.unwrap();
                continue;
            }
            break;
        }
        let mut hello = Vec::new();
        hello.extend_from_slice(b"R\0\0\0\x08\0\0\0\0");
        hello.extend_from_slice(b"K\0\0\0\x0c\0\0\x30\x39\0\0\0\x01");
        hello.extend_from_slice(b"Z\0\0\0\x05I");
        socket.write_all(&hello).await.unwrap();
        // The first query ('Q'); the others pipelined behind it are never read.
        let kind = socket.read_u8().await.unwrap();
        assert_eq!(kind, b'Q');
        let len = socket.read_u32().await.unwrap() as usize;
        let mut query = vec![0; len - 4];
        socket.read_exact(&mut query).await.unwrap();
        let row_bytes = match behaviour {
            Console::Silent => {
                // Until the client goes: reading returns 0 or an error then.
                let mut rest = Vec::new();
                let _ = socket.read_to_end(&mut rest).await;
                return 0;
            }
            Console::Rows(n) => n,
        };
        let name = b"application_name\0";
        let mut description = vec![b'T'];
        description.extend_from_slice(&((4 + 2 + name.len() + 18) as u32).to_be_bytes());
        description.extend_from_slice(&1u16.to_be_bytes());
        description.extend_from_slice(name);
        description.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 25, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0]);
        socket.write_all(&description).await.unwrap();
        let mut row = vec![b'D'];
        row.extend_from_slice(&((4 + 2 + 4 + row_bytes) as u32).to_be_bytes());
        row.extend_from_slice(&1u16.to_be_bytes());
        row.extend_from_slice(&(row_bytes as u32).to_be_bytes());
        row.extend(std::iter::repeat_n(b'a', row_bytes));
        let mut sent = 0u64;
        // Batches of rows, so loopback's speed is the limit, until the client closes the connection.
        let batch: Vec<u8> = row
            .iter()
            .copied()
            .cycle()
            .take(row.len() * (64 * 1024 / row.len()).max(1))
            .collect();
        while socket.write_all(&batch).await.is_ok() {
            sent += batch.len() as u64;
        }
        sent
    });
    (port, task)
}

fn console_poolers(port: u16, home: &std::path::Path) -> pgtls::collect::pooler::Poolers {
    pgtls::collect::pooler::Poolers::resolve(
        &[format!(
            "host=127.0.0.1 port={port} user=x dbname=pgbouncer sslmode=disable"
        )],
        &common::clean_env(home),
    )
    .unwrap()
}

/// A console that streams 60 KB rows forever (issue 25: it took serve from 18 MB to 2.4 GB): the reply is read
/// row by row, cut at the byte cap, the console connection closed and the pooler marked truncated, with the rows
/// read before the cap. What the console managed to send is bounded by the cap plus what the sockets hold.
#[tokio::test]
async fn a_console_streaming_huge_rows_is_cut_at_the_byte_cap_and_closed() {
    let home = tempfile::tempdir().unwrap();
    let (port, console) = fake_console(Console::Rows(60_000)).await;
    let mut poolers = console_poolers(port, home.path());
    let answered = poolers.poll(Duration::from_secs(20)).await;
    let pooler = &answered[0];
    assert_eq!(pooler.error, None, "{:?}", pooler.error);
    assert!(pooler.truncated, "the answer is marked truncated");
    let cap = pgtls::collect::pooler::read::MAX_BYTES;
    assert!(
        pooler.rows > 0 && pooler.rows <= cap / 60_000 + 1,
        "{} rows",
        pooler.rows
    );
    // What is kept of each 60 KB value is its start.
    let cut = pgtls::collect::pooler::rows::MAX_VALUE_CHARS;
    assert!(
        pooler
            .clients
            .iter()
            .all(|c| c.application_name.as_deref().map(|a| a.chars().count()) == Some(cut)),
        "{:?}",
        pooler.clients.first()
    );
    let sent = tokio::time::timeout(Duration::from_secs(10), console)
        .await
        .expect("the console connection was closed")
        .unwrap();
    // Loopback socket buffers hold a few MB each way; nothing near the gigabytes of a reply read whole.
    assert!(sent < cap + (32 << 20), "the console sent {sent} bytes");
}

/// A console that streams small rows forever is cut at the row cap instead.
#[tokio::test]
async fn a_console_streaming_rows_forever_is_cut_at_the_row_cap() {
    let home = tempfile::tempdir().unwrap();
    let (port, console) = fake_console(Console::Rows(8)).await;
    let mut poolers = console_poolers(port, home.path());
    let pooler = poolers.poll(Duration::from_secs(20)).await.remove(0);
    assert_eq!(pooler.error, None, "{:?}", pooler.error);
    assert!(pooler.truncated);
    assert_eq!(pooler.rows, pgtls::collect::pooler::read::MAX_ROWS as u64);
    assert_eq!(pooler.clients.len(), pgtls::collect::pooler::read::MAX_ROWS);
    tokio::time::timeout(Duration::from_secs(10), console)
        .await
        .expect("the console connection was closed")
        .unwrap();
}

/// A console that accepts and never answers, beside a real server polled every 0.5 s: the server's polls keep
/// their interval (before, each waited for the console up to the 5 s poll timeout), and each snapshot says the
/// pooler is not answering. The bound on the gap between polls is the requirement itself; it has a wide margin
/// (the interval is 0.5 s, the bound 2.5 s, the console's timeout 5 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_console_never_delays_the_servers_polls() {
    use pgtls::collect::poller::{self, HistorySetup, PollerEvent};
    let lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    let (port, _console) = fake_console(Console::Silent).await;
    let (tx, mut events) = tokio::sync::mpsc::channel(16);
    let _handle = poller::spawn_with_poolers(
        common::params(&monitor_conninfo(&lab), home.path()),
        console_poolers(port, home.path()),
        Duration::from_millis(500),
        Duration::ZERO,
        HistorySetup::none(),
        tx,
    );
    let mut last = None;
    let mut gaps = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(8);
    while std::time::Instant::now() < deadline {
        let event = tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .expect("an event within 10 s")
            .expect("the poller runs");
        match event {
            PollerEvent::Connected { .. } => last = Some(std::time::Instant::now()),
            PollerEvent::Polled { snapshot, .. } => {
                let now = std::time::Instant::now();
                gaps.push(now - last.expect("connected first"));
                last = Some(now);
                assert_eq!(snapshot.poolers.len(), 1);
                assert!(!snapshot.poolers[0].is_up(), "{:?}", snapshot.poolers[0]);
            }
            PollerEvent::Failed { error, .. } => panic!("the server's poll failed: {error}"),
            _ => {}
        }
    }
    let longest = gaps.iter().max().copied().unwrap_or_default();
    assert!(gaps.len() >= 8, "{} polls in 8 s: {gaps:?}", gaps.len());
    assert!(
        longest < Duration::from_millis(2500),
        "a poll waited {longest:?}: {gaps:?}"
    );
}

/// A console whose single row is longer than any console row has reason to be (1 MiB) is refused at that row's
/// header, below tokio-postgres, before it reserves room for it: the pooler is reported with the limit, and the
/// connection closed.
#[tokio::test]
async fn a_console_row_over_the_message_limit_is_refused_before_it_is_buffered() {
    let home = tempfile::tempdir().unwrap();
    let (port, console) = fake_console(Console::Rows(1 << 20)).await;
    let mut poolers = console_poolers(port, home.path());
    let pooler = poolers.poll(Duration::from_secs(20)).await.remove(0);
    let error = pooler.error.expect("the pooler is reported");
    let limit = pgtls::collect::pooler::read::MESSAGE_LIMIT;
    assert!(error.contains(&limit.to_string()), "{error}");
    assert_eq!(pooler.rows, 0);
    let sent = tokio::time::timeout(Duration::from_secs(10), console)
        .await
        .expect("the console connection was closed")
        .unwrap();
    assert!(sent < 64 << 20, "the console sent {sent} bytes");
}
