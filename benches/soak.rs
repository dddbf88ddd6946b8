//! Not a benchmark: the memory soak of issue 12. The dashboard watches N client sessions that keep
//! disconnecting and reconnecting with the same identities, with its ledger and the server log on; RSS is
//! reported every minute. Flat means: the highest RSS from the sixth of the run on is at most 1.1 x the RSS
//! at that point (for an hour: minutes 10 to 60 against minute 10).
//!
//! `cargo build --release && cargo bench --bench soak -- run MINUTES N` (PGTLS_BIN overrides
//! target/release/pgtls). Without `run` (as `cargo bench` does) it does nothing. Needs tmux.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use color_eyre::eyre::{Result, WrapErr, bail};
use pgtls::lab::{LAB_PASSWORD, Lab, LabOptions, SUPERUSER};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let [cmd, minutes, n] = args.as_slice() else {
        println!("soak: the dashboard's memory under churn (soak run MINUTES N); nothing to benchmark");
        return Ok(());
    };
    if cmd != "run" {
        bail!("soak: unknown command {cmd:?} (use: run MINUTES N)");
    }
    let minutes: u64 = minutes.parse().wrap_err("MINUTES must be a number")?;
    let n: usize = n.parse().wrap_err("N must be a number of sessions")?;
    tokio::runtime::Runtime::new()?.block_on(run(minutes, n))
}

fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

async fn run(minutes: u64, n: usize) -> Result<()> {
    let lab = Lab::start(LabOptions {
        max_connections: u32::try_from(n)? + 100,
        ..LabOptions::default()
    })
    .await?;
    let users: Vec<String> = (0..n.min(8)).map(common::user_of).collect();
    common::create_roles(&lab, &users, None).await?;
    let dir = tempfile::tempdir()?;
    let ledger = dir.path().join("ledger.jsonl");
    let bin = std::env::var("PGTLS_BIN").unwrap_or_else(|_| "target/release/pgtls".to_string());
    let conninfo = format!(
        "host={} port={} user={SUPERUSER} password={LAB_PASSWORD} dbname=postgres sslmode=require",
        lab.host, lab.port
    );
    let socket = format!("pgtls-soak-{}", std::process::id());
    let command = format!(
        "{bin} '{conninfo}' --interval 1 --ledger {} --server-log {}",
        ledger.display(),
        lab.log_file.display()
    );
    let status = Command::new("tmux")
        .args(["-L", &socket, "new-session", "-d", "-x", "120", "-y", "36", &command])
        .env("HOME", dir.path())
        .status()?;
    if !status.success() {
        bail!("tmux could not start the dashboard");
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pane = Command::new("tmux")
        .args(["-L", &socket, "list-panes", "-F", "#{pane_pid}"])
        .output()?;
    let pid: u32 = String::from_utf8_lossy(&pane.stdout)
        .trim()
        .parse()
        .wrap_err("the dashboard's pid")?;

    let (tls13, tls12) = common::connectors(&lab)?;
    let handle = lab.clone_for_clients();
    let connects = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    for i in 0..n {
        let (lab, tls13, tls12, connects) = (handle.clone(), tls13.clone(), tls12.clone(), connects.clone());
        tokio::spawn(async move {
            loop {
                if let Ok(session) = common::open_one(&lab, i, tls13.clone(), tls12.clone()).await {
                    connects.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    // Hold 0.5 to 3 s, different per session and round, then reconnect as the same identity.
                    let hold = 500 + (i as u64 * 7919 + connects.load(std::sync::atomic::Ordering::Relaxed)) % 2500;
                    tokio::time::sleep(Duration::from_millis(hold)).await;
                    drop(session);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
    }

    let started = Instant::now();
    let mut samples: Vec<u64> = Vec::new();
    println!("minute  rss_kb  connections");
    for minute in 1..=minutes {
        tokio::time::sleep_until((started + Duration::from_secs(60 * minute)).into()).await;
        let Some(rss) = rss_kb(pid) else {
            bail!("the dashboard is gone at minute {minute}");
        };
        samples.push(rss);
        println!(
            "{minute:>6}  {rss:>6}  {}",
            connects.load(std::sync::atomic::Ordering::Relaxed)
        );
    }
    let _ = Command::new("tmux").args(["-L", &socket, "kill-server"]).status();
    let from = (minutes as usize / 6).max(1);
    let base = samples[from - 1];
    let peak = samples[from - 1..].iter().copied().max().unwrap_or(base);
    let ratio = peak as f64 / base as f64;
    println!(
        "soak: {n} sessions, {minutes} min, {} connections; RSS at minute {from}: {base} kB, highest after: {peak} kB ({ratio:.3}x): {}",
        connects.load(std::sync::atomic::Ordering::Relaxed),
        if ratio <= 1.1 { "flat" } else { "GROWING" }
    );
    Ok(())
}
