//! Sources say what they are (issue 27, item 4): with a pg_monitor role that may not read the server's log, the
//! log is off with its reason in every output, refusals are unknown (not zero), and `check` does not say OK
//! about refusals it could not see.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers fail by panicking")]

use crate::common;

use std::time::Duration;

use pgtls::lab::{Lab, LabOptions, SessionKind};
use serde_json::Value;

const ROLE: &str = "pgtls_nolog";

/// A pg_monitor member: it sees every session and setting, and may not run pg_read_binary_file.
async fn monitor_without_log(lab: &Lab) -> String {
    lab.ensure_role(ROLE).await.unwrap();
    lab.admin()
        .await
        .unwrap()
        .batch_execute(&format!("GRANT pg_monitor TO {ROLE}"))
        .await
        .unwrap();
    // Verified, so that no warning about the connection itself decides the status.
    format!(
        "{} sslmode=verify-full sslrootcert={}",
        lab.conninfo(ROLE)
            .replace("host=127.0.0.1", "host=localhost hostaddr=127.0.0.1"),
        lab.certs.ca_cert.display()
    )
}

/// The logging collector writes files, so only the role's privileges keep it from the log.
async fn collector_lab() -> Lab {
    Lab::start(LabOptions {
        settings: vec![("logging_collector".into(), "on".into())],
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| common::fail(&format!("the lab cannot start: {e:#}")))
}

async fn raise_floor(lab: &Lab) {
    lab.set_config("ssl_min_protocol_version", "TLSv1.3").await.unwrap();
    let handle = lab.clone_for_clients();
    common::wait_until("the floor in force", Duration::from_secs(10), async || {
        match handle.open(SessionKind::Tls12, "reports", "nightly-cron").await {
            Ok(s) => Err(s.pid),
            Err(_) => Ok(()),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_without_the_log_says_refusals_are_unknown_never_ok() {
    let lab = collector_lab().await;
    let home = tempfile::tempdir().unwrap();
    let conninfo = monitor_without_log(&lab).await;
    raise_floor(&lab).await;
    let since = "--since=2000-01-01T00:00:00Z";

    let out = common::pgtls(&["check", &conninfo, since, "--format", "json"], home.path());
    let json: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(json["target_in_force"], "yes", "{json:#}");
    assert_eq!(json["log"]["state"], "off", "{json:#}");
    assert!(json["refused"].is_null(), "{json:#}");
    let reason = json["refused_unknown_reason"].as_str().unwrap();
    assert!(
        reason.starts_with("no log: ") && reason.contains("permission denied"),
        "{reason}"
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "not OK about refusals it could not see: {json:#}"
    );
    assert!(
        json["summary"].as_str().unwrap().contains("refusals UNKNOWN"),
        "{json:#}"
    );
    let perfdata = json["perfdata"].as_str().unwrap();
    assert!(!perfdata.split(' ').any(|p| p.starts_with("refused=")), "{perfdata}");
    assert!(perfdata.contains("downgraded="), "{perfdata}");
    assert_eq!(json["whatif"]["evidence"]["log_source"], false, "{json:#}");

    // The text: said off once, never on.
    let out = common::pgtls(&["check", &conninfo, since], home.path());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(text.starts_with("PGTLS UNKNOWN - refusals UNKNOWN (no log: "), "{text}");
    assert!(text.contains("refused: unknown (no log)"), "{text}");
    assert!(text.contains("Source: log source off: "), "{text}");
    assert!(!text.contains("log source on"), "{text}");
    assert!(!text.contains("log source: "), "no line calls it on: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_without_the_log_exports_the_log_source_down_and_no_refused_count() {
    use crate::serve::{Serve, samples};
    let lab = collector_lab().await;
    let home = tempfile::tempdir().unwrap();
    let conninfo = monitor_without_log(&lab).await;
    raise_floor(&lab).await;
    let targets = home.path().join("targets.toml");
    std::fs::write(
        &targets,
        format!("[[target]]\nname = \"nolog\"\nconninfo = \"{conninfo}\"\n"),
    )
    .unwrap();
    let targets_arg = targets.display().to_string();
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
    let text = common::wait_until("the log source's state", Duration::from_secs(60), async || {
        let text = serve.get("/metrics").map(|r| r.1).unwrap_or_default();
        let up = samples(&text, "pgtls_source_up");
        match up.get("target=\"nolog\",source=\"log\"") {
            Some(v) if up.contains_key("target=\"nolog\",source=\"poll\"") => Ok((*v, text)),
            _ => Err(text),
        }
    })
    .await;
    assert_eq!(text.0, 0.0, "{}", text.1);
    assert_eq!(
        samples(&text.1, "pgtls_source_up").get("target=\"nolog\",source=\"poll\""),
        Some(&1.0)
    );
    let after = samples(&text.1, "pgtls_after_change_clients");
    assert!(after.keys().any(|k| k.contains("kind=\"lingering\"")), "{}", text.1);
    assert!(!after.keys().any(|k| k.contains("kind=\"refused\"")), "{}", text.1);
    let (status, body) = serve.get("/api/v1/targets").unwrap();
    assert_eq!(status, 200);
    let rows: Value = serde_json::from_str(&body).unwrap();
    let log = rows[0]["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["source"] == "log")
        .unwrap_or_else(|| panic!("{body}"));
    assert_eq!(log["up"], false, "{body}");
    assert!(log["error"].as_str().unwrap().contains("permission denied"), "{body}");
    // The one reason, the same in /metrics' source and the API, never "on".
    drop(serve);
}
