//! What `pgtls demo` tells the user and lets its monitor see, against the real lab: the psql commands it prints
//! connect (the TLS one verified), and its monitor role reads pg_hba.conf, so What-if names the downgrade lines.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers fail by panicking")]

use crate::common;

use pgtls::lab::SessionKind;
use pgtls::lab::demo::{JoinInfo, MONITOR_ROLE, grant_monitor, monitor_conninfo};

/// Run a printed command line through sh, as a user pasting it would, with a clean environment and HOME.
fn sh(command: &str, home: &std::path::Path) -> std::process::Output {
    let mut cmd = std::process::Command::new("sh");
    for (key, _) in std::env::vars() {
        if key.starts_with("PG") {
            cmd.env_remove(key);
        }
    }
    cmd.env("HOME", home).arg("-c").arg(command).output().unwrap()
}

#[tokio::test]
async fn the_printed_psql_commands_join_the_demo_server() {
    common::require_tool("psql", "postgresql-client");
    let lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    let join = JoinInfo::new(&lab);
    let lines = join.lines();
    assert!(lines[0].contains(&format!("port {}", lab.port)), "{lines:?}");
    assert!(lines[0].contains(&lab.socket_dir.display().to_string()), "{lines:?}");
    assert!(join.psql_tls.contains("sslmode=verify-full") && join.psql_tls.contains("sslrootcert="));

    let query = "SELECT ssl || ' ' || version FROM pg_stat_ssl WHERE pid = pg_backend_pid()";
    let out = sh(&format!("{} -XAtc \"{query}\"", join.psql_tls), home.path());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}: {}",
        join.psql_tls,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(text.trim(), "true TLSv1.3", "verified TLS");

    let out = sh(
        &format!("{} -XAtc 'SELECT current_user'", join.psql_socket),
        home.path(),
    );
    assert!(
        out.status.success(),
        "{}: {}",
        join.psql_socket,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "postgres");
}

#[tokio::test]
async fn the_demo_monitor_reads_pg_hba_and_whatif_names_the_downgrade_lines() {
    let lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    grant_monitor(&lab).await.unwrap();
    let _holdout = lab.open(SessionKind::Tls12, "billing", "billing-batch").await.unwrap();

    let params = common::params(&monitor_conninfo(&lab), home.path());
    let collector = pgtls::collect::Collector::connect(&params).await.unwrap();
    assert_eq!(collector.preflight().monitor_user, MONITOR_ROLE);
    let rules = collector
        .hba_rules()
        .await
        .expect("the demo monitor may read pg_hba_file_rules");
    assert!(rules.iter().any(|r| r.admits_plaintext()), "{rules:?}");

    let out = common::pgtls(&["check", &monitor_conninfo(&lab), "--format", "json"], home.path());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let billing = json["whatif"]["refused"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["client"]["application"] == "billing-batch")
        .unwrap_or_else(|| panic!("{json}"));
    assert_eq!(billing["downgrade"]["state"], "possible", "{billing}");
    let named = billing["downgrade"]["rules"][0].as_str().unwrap();
    assert!(named.contains(": host all all 127.0.0.1"), "{named}");
}
