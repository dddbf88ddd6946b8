//! A fleet keeps each target's history without a copy of its ledger's client records (memory per target: the
//! fleet issue's 500 targets), asks the ledger for them when a reader needs them, and sends them in full while a
//! dashboard is open on the target.

use std::time::Duration;

use pgtls::analysis::ledger::KeyFields;
use pgtls::collect::engine::EngineOptions;
use pgtls::collect::fleet::{Fleet, Planned};
use pgtls::collect::history::Detail;
use pgtls::collect::poller::PollerEvent;
use pgtls::conn::params::{Environment, resolve};
use pgtls::lab::{Lab, LabOptions, SUPERUSER, SessionKind};
use pgtls::targets::TargetEntry;

use crate::common::wait_until;

const WAIT: Duration = Duration::from_secs(60);

fn options() -> EngineOptions {
    EngineOptions {
        interval: Duration::from_millis(300),
        poll_timeout: None,
        state_dir: None,
        state_dir_lock: None,
        key_fields: KeyFields::default(),
        min_evidence: chrono::Duration::hours(24),
        expiry_warn_days: 30,
        probe_every: Duration::from_secs(3600),
        log_to_stderr: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_keeps_client_classes_and_asks_the_ledger_for_records() {
    let lab = Lab::start(LabOptions::default()).await.expect("lab");
    let mut open = Vec::new();
    for (kind, app) in [
        (SessionKind::Tls13, "modern-api"),
        (SessionKind::Tls12, "legacy-batch"),
        (SessionKind::PlainTcp, "plain-cron"),
    ] {
        open.push(lab.open(kind, SUPERUSER, app).await.expect("session"));
    }
    let home = tempfile::tempdir().expect("home");
    let env = Environment::new(Default::default(), Some(home.path().to_path_buf()), "tester");
    let conninfo = lab.conninfo(SUPERUSER);
    let params = resolve(Some(&conninfo), &env).expect("conninfo");
    let fleet = Fleet::new(options());
    fleet.apply(vec![Planned {
        entry: TargetEntry {
            conninfo,
            ..TargetEntry::default()
        },
        params,
        name: "alpha".to_string(),
    }]);
    let apps = |keys: Vec<String>| {
        ["legacy-batch", "modern-api", "plain-cron"]
            .iter()
            .all(|a| keys.iter().any(|k| k == a))
    };

    // At fleet detail: each client's class, no records, no trend.
    let history = wait_until("a fleet-detail history with the three clients", WAIT, async || {
        let state = fleet.state("alpha").ok_or("no target")?;
        let history = state.lock().history.clone().ok_or("no history yet")?;
        let keys: Vec<String> = history
            .client_classes
            .iter()
            .map(|c| c.key.application.clone())
            .collect();
        if apps(keys.clone()) {
            Ok(history)
        } else {
            Err(format!("clients so far: {keys:?}"))
        }
    })
    .await;
    assert_eq!(history.detail, Detail::Fleet);
    assert!(
        history.clients.is_empty(),
        "no copy of the records: {:?}",
        history.clients
    );
    assert!(history.trend.hours.is_empty(), "no trend at fleet detail");
    let class_of = |app: &str| {
        history
            .client_classes
            .iter()
            .find(|c| c.key.application == app)
            .map(|c| c.class)
    };
    assert_eq!(class_of("plain-cron"), Some(pgtls::model::ConnClass::PlainTcp));
    assert_eq!(class_of("modern-api"), Some(pgtls::model::ConnClass::Tls13));
    assert_eq!(class_of("legacy-batch"), Some(pgtls::model::ConnClass::Tls12));

    // Asked for, the records come from the ledger itself: the same clients, each with its sessions.
    let records = fleet.clients("alpha").expect("target").answer().await.expect("records");
    let keys: Vec<String> = records.iter().map(|r| r.key.application.clone()).collect();
    assert!(apps(keys.clone()), "{keys:?}");
    assert!(records.iter().all(|r| r.sessions >= 1), "{records:?}");
    assert!(fleet.clients("nope").is_none());

    // A dashboard opened on the target gets the full history, records and trend included, and the state keeps it.
    let (mut events, _commands) = fleet.subscribe("alpha").expect("subscribe");
    let full = wait_until(
        "a full history after subscribing",
        WAIT,
        async || match tokio::time::timeout(WAIT, events.recv()).await {
            Ok(Some(PollerEvent::History(h))) | Ok(Some(PollerEvent::Polled { history: Some(h), .. }))
                if h.detail == Detail::Full =>
            {
                Ok(h)
            }
            other => Err(format!("{other:?}")),
        },
    )
    .await;
    assert!(apps(full.clients.iter().map(|r| r.key.application.clone()).collect()));
    assert!(!full.trend.hours.is_empty(), "the trend comes with the full history");

    // Closed again, the fleet goes back to fleet detail.
    fleet.unsubscribe("alpha");
    wait_until("fleet detail again after the dashboard closed", WAIT, async || {
        let state = fleet.state("alpha").ok_or("no target")?;
        let detail = state.lock().history.as_ref().map(|h| h.detail);
        if detail == Some(Detail::Fleet) {
            Ok(())
        } else {
            Err(format!("{detail:?}"))
        }
    })
    .await;
    drop(open);
}
