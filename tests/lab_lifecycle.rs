//! The lab over a server's life: a port taken before start-up.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers fail by panicking")]

mod common;

use pgtls::lab::{Lab, LabOptions};

/// PostgreSQL cannot be given port 0, so the lab picks a free port and then starts the server on it; another process
/// may bind it in between. Held here on purpose, the lab must come up on another port.
#[tokio::test]
async fn a_taken_port_moves_the_lab_to_another() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let held = holder.local_addr().unwrap().port();
    let lab = Lab::start(LabOptions {
        port: Some(held),
        ..LabOptions::default()
    })
    .await
    .unwrap_or_else(|e| common::fail(&format!("the lab cannot start: {e:#}")));
    assert_ne!(lab.port, held);
    let admin = lab.admin().await.unwrap();
    let listening: String = admin
        .query_one("SELECT current_setting('port')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(listening, lab.port.to_string());
    let log = std::fs::read_to_string(&lab.log_file).unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains("could not bind") && l.contains("Address already in use")),
        "the first start-up met the held port: {log}"
    );
    drop(holder);
}
