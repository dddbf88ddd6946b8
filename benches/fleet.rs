//! Not a criterion benchmark: what `pgtls serve` costs per target. For each N it serves N targets (a targets file
//! pointing at one lab server under N names) at a 5 s interval: start-up (connections, the first certificate probes)
//! for WARMUP s, then the steady state for SECONDS s. It reports the CPU seconds the serve process used in each part
//! (user + system, every thread, from /proc/PID/stat), its RSS at the end (VmRSS) and its peak (VmHWM), then the
//! per-target cost and a straight-line extrapolation to 500 targets from the first and last N. It also counts the
//! connections that reached the server in each part ("connection received" lines of the lab's log, which runs with
//! log_connections = on): what a fleet's start costs the servers it watches.
//!
//! `cargo build --release && cargo bench --bench fleet -- run SECONDS N...` (e.g. `run 60 10 50 100`; WARMUP
//! defaults to 30; PGTLS_BIN overrides target/release/pgtls). Without `run` (as `cargo bench` does) it does nothing.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use color_eyre::eyre::{Result, WrapErr, bail};
use pgtls::lab::{Lab, LabOptions, SUPERUSER};

/// Sessions the lab holds, in `common::kind_of`'s mix, so each poll returns real rows.
const SESSIONS: usize = 50;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let Some((cmd, rest)) = args.split_first() else {
        println!("fleet: pgtls serve's cost per target (fleet run SECONDS N...); nothing to benchmark");
        return Ok(());
    };
    if cmd != "run" || rest.len() < 2 {
        bail!("fleet: use run SECONDS N...");
    }
    let seconds: u64 = rest[0].parse().wrap_err("SECONDS must be a number")?;
    let sizes: Vec<usize> = rest[1..]
        .iter()
        .map(|n| n.parse().wrap_err("N must be a number of targets"))
        .collect::<Result<_>>()?;
    tokio::runtime::Runtime::new()?.block_on(run(seconds, &sizes))
}

struct Measured {
    targets: usize,
    /// Steady state, per minute.
    cpu_per_minute: f64,
    rss_kb: u64,
}

async fn run(seconds: u64, sizes: &[usize]) -> Result<()> {
    let largest = sizes.iter().copied().max().unwrap_or(0);
    let lab = Lab::start(LabOptions {
        max_connections: u32::try_from(largest + SESSIONS + 50)?,
        ..LabOptions::default()
    })
    .await?;
    let handle = lab.clone_for_clients();
    let _sessions = common::open_sessions(&handle, SESSIONS, false).await?;
    let bin = std::env::var("PGTLS_BIN").unwrap_or_else(|_| "target/release/pgtls".to_string());
    let work = tempfile::tempdir()?;
    let mut results = Vec::new();
    for &n in sizes {
        let targets = work.path().join(format!("targets-{n}.toml"));
        let mut text = String::new();
        for i in 0..n {
            text.push_str(&format!(
                "[[target]]\nname = \"t{i:04}\"\nconninfo = \"{} sslmode=require\"\n\n",
                lab.conninfo(SUPERUSER)
            ));
        }
        std::fs::write(&targets, text)?;
        let port = pgtls::lab::server::free_port()?;
        let warmup: u64 = std::env::var("WARMUP").ok().and_then(|w| w.parse().ok()).unwrap_or(30);
        let server_log = lab.root().join("server.log");
        let log_at_start = log_len(&server_log);
        let started = Instant::now();
        let mut child = Command::new(&bin)
            .args(["serve", "--interval", "5", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--targets")
            .arg(&targets)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .wrap_err_with(|| format!("cannot run {bin} (cargo build --release first)"))?;
        let pid = child.id();
        tokio::time::sleep(Duration::from_secs(warmup)).await;
        let cpu_warm = cpu_seconds(pid)?;
        let log_at_warm = log_len(&server_log);
        let steady_from = Instant::now();
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        let up = scrape_up(port);
        let cpu_end = cpu_seconds(pid)?;
        let log_at_end = log_len(&server_log);
        let steady = steady_from.elapsed().as_secs_f64();
        let (rss_kb, peak_rss_kb) = (status_kb(pid, "VmRSS:")?, status_kb(pid, "VmHWM:")?);
        let _ = child.kill();
        let _ = child.wait();
        let cpu_per_minute = (cpu_end - cpu_warm) * 60.0 / steady;
        let start_connections = connections_received(&server_log, log_at_start, log_at_warm);
        let steady_connections = connections_received(&server_log, log_at_warm, log_at_end) as f64 * 60.0 / steady;
        println!(
            "fleet: {n} targets: start-up {cpu_warm:.2} s CPU and {start_connections} connections ({:.1} per target) \
             in {warmup} s; steady {:.2} s CPU and {steady_connections:.0} connections per minute over {steady:.0} s; \
             RSS {:.1} MB (peak {:.1} MB); {up} of {n} up; {:.0} s in all",
            start_connections as f64 / n as f64,
            cpu_per_minute,
            rss_kb as f64 / 1024.0,
            peak_rss_kb as f64 / 1024.0,
            started.elapsed().as_secs_f64()
        );
        results.push(Measured {
            targets: n,
            cpu_per_minute,
            rss_kb,
        });
    }
    if let (Some(first), Some(last)) = (results.first(), results.last())
        && last.targets > first.targets
    {
        let dn = (last.targets - first.targets) as f64;
        let cpu_slope = (last.cpu_per_minute - first.cpu_per_minute) / dn;
        let rss_slope = (last.rss_kb as f64 - first.rss_kb as f64) / dn;
        let at = |slope: f64, base: f64, n: usize| base + slope * (n as f64 - first.targets as f64);
        println!(
            "fleet: per target {:.3} s CPU per minute and {:.0} kB RSS; 500 targets (extrapolated): {:.1} s CPU per minute, {:.0} MB",
            cpu_slope,
            rss_slope,
            at(cpu_slope, first.cpu_per_minute, 500),
            at(rss_slope, first.rss_kb as f64, 500) / 1024.0
        );
    }
    Ok(())
}

/// Targets `/metrics` reports up.
fn scrape_up(port: u16) -> usize {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return 0;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = write!(stream, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    text.lines()
        .filter(|l| l.starts_with("pgtls_up{") && l.ends_with(" 1"))
        .count()
}

fn log_len(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// "connection received" lines the server logged between two offsets of its log (every TCP connection, the
/// probes' included, whether or not it went on to authenticate).
fn connections_received(path: &std::path::Path, from: u64, to: u64) -> usize {
    let Ok(bytes) = std::fs::read(path) else {
        return 0;
    };
    let end = usize::try_from(to).unwrap_or(usize::MAX).min(bytes.len());
    let start = usize::try_from(from).unwrap_or(0).min(end);
    String::from_utf8_lossy(&bytes[start..end])
        .matches("connection received:")
        .count()
}

/// utime + stime of the process (all its threads, exited ones included), in seconds.
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces; fields after it are space-separated.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name.
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    Ok((ticks(11) + ticks(12)) / hz)
}

fn status_kb(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    Ok(status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0))
}
