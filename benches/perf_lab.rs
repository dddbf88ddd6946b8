//! Not a benchmark: the lab server for `scripts/perf-compare.sh`, holding N idle client sessions until stopped.
//!
//! `cargo bench --bench perf_lab -- hold N ENV_FILE` starts the lab with `max_connections` = N + 100 and
//! pg_stat_statements loaded, creates the monitor roles `perf_psql`, `perf_pgtls` and `perf_pga` (members of
//! pg_monitor, the grant the README recommends), opens N sessions in the mix of `common::kind_of` (6/10 TLS 1.3,
//! 2/10 TLS 1.2, 1/10 plain TCP, 1/10 Unix socket), each left `idle in transaction` so that pg_activity (which hides
//! `idle` sessions) lists them too, writes shell variables to ENV_FILE and waits for SIGTERM or SIGINT; then it stops the server and removes its directory. Run without `hold` (as `cargo bench` does)
//! it does nothing.

mod common;

use std::fmt::Write as _;

use color_eyre::eyre::{Result, WrapErr, bail};
use pgtls::lab::{LAB_PASSWORD, Lab, LabOptions};
use tokio::signal::unix::{SignalKind, signal};

pub const MONITOR_ROLES: [&str; 3] = ["perf_psql", "perf_pgtls", "perf_pga"];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let [cmd, n, env_file] = args.as_slice() else {
        println!("perf_lab: the lab for scripts/perf-compare.sh (perf_lab hold N ENV_FILE); nothing to benchmark");
        return Ok(());
    };
    if cmd != "hold" {
        bail!("perf_lab: unknown command {cmd:?} (use: hold N ENV_FILE)");
    }
    let n: usize = n.parse().wrap_err("N must be a number of sessions")?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(hold(n, env_file))
}

async fn hold(n: usize, env_file: &str) -> Result<()> {
    let lab = Lab::start(LabOptions {
        max_connections: u32::try_from(n)? + 100,
        settings: vec![
            ("shared_preload_libraries".into(), "pg_stat_statements".into()),
            // The lab logs every connection; the monitors' own statements are not logged.
            ("log_min_duration_statement".into(), "-1".into()),
        ],
        ..LabOptions::default()
    })
    .await?;
    let admin = lab.admin().await?;
    admin
        .batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements SCHEMA public")
        .await
        .wrap_err("pg_stat_statements (postgresql-contrib) is needed to count statements")?;
    let roles: Vec<String> = MONITOR_ROLES.iter().map(|r| r.to_string()).collect();
    common::create_roles(&lab, &roles, Some("pg_monitor")).await?;
    let started = std::time::Instant::now();
    let sessions = common::open_sessions(&lab, n, true).await?;
    eprintln!(
        "perf_lab: {} sessions open in {:.1} s",
        sessions.len(),
        started.elapsed().as_secs_f64()
    );
    let version: String = admin.query_one("SHOW server_version", &[]).await?.get(0);
    let mut env = String::new();
    writeln!(env, "LAB_HOST={}", lab.host)?;
    writeln!(env, "LAB_PORT={}", lab.port)?;
    writeln!(env, "LAB_SOCKET_DIR='{}'", lab.socket_dir.display())?;
    writeln!(env, "LAB_PASSWORD='{LAB_PASSWORD}'")?;
    writeln!(env, "LAB_SESSIONS={}", sessions.len())?;
    writeln!(env, "LAB_VERSION='{}'", version.replace('\'', ""))?;
    writeln!(env, "LAB_CA='{}'", lab.certs.ca_cert.display())?;
    let tmp = format!("{env_file}.tmp");
    std::fs::write(&tmp, env)?;
    std::fs::rename(&tmp, env_file)?;

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    drop(sessions);
    drop(admin);
    drop(lab);
    Ok(())
}
