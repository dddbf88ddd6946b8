//! Not a criterion benchmark: `pgtls serve` beside Debian's `prometheus-postgres-exporter` (0.11) on the same fleet.
//!
//! One lab server holds 50 client sessions (6/10 TLS 1.3, 2/10 TLS 1.2, 1/10 plain TCP, 1/10 Unix socket) and
//! listens on every loopback address. Target i is that server at its own address (127.0.0.1 to 127.0.0.250, then
//! 127.0.1.1 ...): postgres_exporter 0.11 labels its series with host:port only and answers HTTP 500 on duplicate
//! series, so N names for one host:port would break it. For each N and each tool it starts the tool on the N
//! targets (superuser, `sslmode=require`, a 5 s interval for pgtls), scrapes its `/metrics` every 5 s (a scrape
//! that takes longer is followed at once by the next), and after each minute samples:
//!
//! - the tool's CPU (utime + stime of every thread, exited ones included, from /proc/PID/stat),
//! - the server's CPU (the postmaster's own and reaped children's time, plus every live child's: all backends,
//!   those that came and went included; the idle server's own rate is printed once at the start),
//! - connections the server received (`connection received:` lines of its log; the lab has `log_connections`).
//!
//! At the end: peak RSS (VmHWM), the last `/metrics` size, how many targets it reported up, and the scrape times.
//! The peer runs with its default collectors off and one custom query giving the same per-version session counts
//! pgtls exports (`pg_tls_sessions{server, version}`).
//!
//! ```sh
//! cargo build --release
//! cargo bench --bench fleet_compare -- run MINUTES N...    # e.g. run 3 10 50 100 500
//! ```
//!
//! `TOOLS` picks the tools (default `pgtls exporter`), `PGTLS_BIN` another pgtls build (default
//! target/release/pgtls), `EXPORTER_BIN` another exporter (default prometheus-postgres-exporter on PATH).
//! Without `run` (as `cargo bench` does) it does nothing. Needs root for the lab and to read the server's /proc.

mod common;

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use color_eyre::eyre::{Result, WrapErr, bail};
use pgtls::lab::{LAB_PASSWORD, Lab, LabOptions, SUPERUSER};

/// Sessions the lab holds, so each poll returns real rows.
const SESSIONS: usize = 50;
const SCRAPE_EVERY: Duration = Duration::from_secs(5);

/// The peer's only query: client sessions per TLS version (`none` for plain TCP and Unix sockets).
const PEER_QUERIES: &str = r#"pg_tls:
  query: "SELECT coalesce(s.version, 'none') AS version, pg_catalog.count(*) AS sessions FROM pg_catalog.pg_stat_ssl s JOIN pg_catalog.pg_stat_activity a ON a.pid OPERATOR(pg_catalog.=) s.pid WHERE a.backend_type OPERATOR(pg_catalog.=) 'client backend' GROUP BY 1"
  metrics:
    - version:
        usage: "LABEL"
        description: "TLS version of the sessions, none for plain TCP and Unix sockets"
    - sessions:
        usage: "GAUGE"
        description: "Client sessions"
"#;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let Some((cmd, rest)) = args.split_first() else {
        println!(
            "fleet_compare: pgtls serve beside postgres_exporter (fleet_compare run MINUTES N...); nothing to benchmark"
        );
        return Ok(());
    };
    if cmd != "run" || rest.len() < 2 {
        bail!("fleet_compare: use run MINUTES N...");
    }
    let minutes: u64 = rest[0].parse().wrap_err("MINUTES must be a number")?;
    if minutes < 2 {
        bail!("fleet_compare: MINUTES must be at least 2 (the first minute and one after)");
    }
    let sizes: Vec<usize> = rest[1..]
        .iter()
        .map(|n| n.parse().wrap_err("N must be a number of targets"))
        .collect::<Result<_>>()?;
    let tools: Vec<Tool> = std::env::var("TOOLS")
        .unwrap_or_else(|_| "pgtls exporter".into())
        .split_whitespace()
        .map(|t| match t {
            "pgtls" => Ok(Tool::Pgtls),
            "exporter" => Ok(Tool::Exporter),
            other => bail!("fleet_compare: unknown tool {other:?} (pgtls, exporter)"),
        })
        .collect::<Result<_>>()?;
    tokio::runtime::Runtime::new()?.block_on(run(minutes, &sizes, &tools))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    Pgtls,
    Exporter,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::Pgtls => "pgtls serve",
            Tool::Exporter => "postgres_exporter",
        }
    }
}

/// One tool on one fleet size.
struct Measured {
    tool: Tool,
    targets: usize,
    first_cpu: f64,
    /// Per minute after the first.
    steady_cpu: f64,
    peak_rss_kb: u64,
    first_conns: usize,
    steady_conns: f64,
    first_server_cpu: f64,
    steady_server_cpu: f64,
    metrics_bytes: usize,
    up: usize,
    scrapes_ok: usize,
    scrapes_failed: usize,
    scrape_ms_max: u128,
}

/// Address of target `i`: its own loopback address, the same server behind each.
fn address(i: usize) -> String {
    format!("127.0.{}.{}", i / 250, i % 250 + 1)
}

async fn run(minutes: u64, sizes: &[usize], tools: &[Tool]) -> Result<()> {
    let largest = sizes.iter().copied().max().unwrap_or(0);
    let lab = Lab::start(LabOptions {
        // pgtls may hold a probe beside each target's poll connection.
        max_connections: u32::try_from(3 * largest + SESSIONS + 50)?,
        settings: vec![("listen_addresses".into(), "0.0.0.0".into())],
        ..LabOptions::default()
    })
    .await?;
    // Every loopback address may log in as the lab's own 127.0.0.1 does.
    let hba = lab.data_dir.join("pg_hba.conf");
    let mut rules = std::fs::read_to_string(&hba)?;
    rules.push_str("hostssl all  all  127.0.0.0/8  scram-sha-256\n");
    std::fs::write(&hba, rules)?;
    let admin = lab.admin().await?;
    admin.batch_execute("SELECT pg_catalog.pg_reload_conf()").await?;
    let version: String = admin.query_one("SHOW server_version", &[]).await?.get(0);
    drop(admin);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let handle = lab.clone_for_clients();
    let _sessions = common::open_sessions(&handle, SESSIONS, false).await?;
    let postmaster = postmaster_pid(&lab.data_dir)?;

    let idle_from = server_cpu(postmaster);
    tokio::time::sleep(Duration::from_secs(20)).await;
    let idle = (server_cpu(postmaster) - idle_from) * 3.0;
    println!(
        "fleet_compare: PostgreSQL {version}, {SESSIONS} sessions held; the idle server uses {idle:.2} s CPU per minute \
         (included in the server figures below); {} cores, {minutes} min per run",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );

    let work = tempfile::Builder::new().prefix("fleet-compare-").tempdir()?;
    let queries = work.path().join("queries.yaml");
    std::fs::write(&queries, PEER_QUERIES)?;
    let mut results = Vec::new();
    for &n in sizes {
        for &tool in tools {
            let measured = measure(&lab, tool, n, minutes, work.path(), &queries, postmaster).await?;
            print_row(&measured);
            results.push(measured);
            // The tool's backends end with it; let the server settle before the next.
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    }
    println!();
    println!(
        "| tool | targets | CPU s, minute 1 | CPU s/min after | peak RSS MB | conns, minute 1 | conns/min after | \
         server CPU s, minute 1 | server CPU s/min after | /metrics bytes | up | scrapes ok/failed | slowest scrape ms |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for m in &results {
        println!(
            "| {} | {} | {:.2} | {:.2} | {:.1} | {} | {:.0} | {:.2} | {:.2} | {} | {} | {}/{} | {} |",
            m.tool.name(),
            m.targets,
            m.first_cpu,
            m.steady_cpu,
            m.peak_rss_kb as f64 / 1024.0,
            m.first_conns,
            m.steady_conns,
            m.first_server_cpu,
            m.steady_server_cpu,
            m.metrics_bytes,
            m.up,
            m.scrapes_ok,
            m.scrapes_failed,
            m.scrape_ms_max
        );
    }
    println!();
    println!(
        "| tool | targets | CPU ms/min per target (steady) | peak RSS kB per target | server CPU ms/min per target |"
    );
    println!("|---|---:|---:|---:|---:|");
    for m in &results {
        let n = m.targets as f64;
        println!(
            "| {} | {} | {:.1} | {:.0} | {:.1} |",
            m.tool.name(),
            m.targets,
            m.steady_cpu * 1000.0 / n,
            m.peak_rss_kb as f64 / n,
            m.steady_server_cpu * 1000.0 / n
        );
    }
    for &tool in tools {
        let points: Vec<&Measured> = results.iter().filter(|m| m.tool == tool).collect();
        if let (Some((cpu_a, cpu_b)), Some((rss_a, rss_b))) = (
            fit(&points, |m| m.steady_cpu),
            fit(&points, |m| m.peak_rss_kb as f64 / 1024.0),
        ) {
            println!(
                "fleet_compare: {}: least-squares line over {} sizes: CPU {cpu_a:.2} + {:.2} ms/target s/min, peak RSS \
                 {rss_a:.1} MB + {:.0} kB/target; at 5,000 targets: {:.1} s CPU per minute ({:.0}% of a core), {:.0} MB",
                tool.name(),
                points.len(),
                cpu_b * 1000.0,
                rss_b * 1024.0,
                cpu_a + cpu_b * 5000.0,
                (cpu_a + cpu_b * 5000.0) / 60.0 * 100.0,
                rss_a + rss_b * 5000.0
            );
        }
    }
    Ok(())
}

/// Least-squares line `a + b * targets` through the points; `None` with fewer than two sizes.
fn fit(points: &[&Measured], y: impl Fn(&Measured) -> f64) -> Option<(f64, f64)> {
    if points.len() < 2 {
        return None;
    }
    let n = points.len() as f64;
    let mean_x = points.iter().map(|m| m.targets as f64).sum::<f64>() / n;
    let mean_y = points.iter().map(|m| y(m)).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|m| (m.targets as f64 - mean_x).powi(2)).sum();
    let sxy: f64 = points
        .iter()
        .map(|m| (m.targets as f64 - mean_x) * (y(m) - mean_y))
        .sum();
    if sxx == 0.0 {
        return None;
    }
    let b = sxy / sxx;
    Some((mean_y - b * mean_x, b))
}

fn print_row(m: &Measured) {
    println!(
        "fleet_compare: {} x{}: CPU {:.2} s in minute 1, {:.2} s/min after; peak RSS {:.1} MB; server: {} connections \
         and {:.2} s CPU in minute 1, {:.0} connections/min and {:.2} s CPU/min after; /metrics {} bytes, {} of {} up; \
         {} scrapes ok, {} failed, slowest {} ms",
        m.tool.name(),
        m.targets,
        m.first_cpu,
        m.steady_cpu,
        m.peak_rss_kb as f64 / 1024.0,
        m.first_conns,
        m.first_server_cpu,
        m.steady_conns,
        m.steady_server_cpu,
        m.metrics_bytes,
        m.up,
        m.targets,
        m.scrapes_ok,
        m.scrapes_failed,
        m.scrape_ms_max
    );
}

/// The peer's DSN (a URL) and pgtls's conninfo for target `i`, both superuser with `sslmode=require`.
fn dsn(port: u16, i: usize) -> String {
    format!(
        "postgresql://{SUPERUSER}:{LAB_PASSWORD}@{}:{port}/postgres?sslmode=require",
        address(i)
    )
}

fn conninfo(port: u16, i: usize) -> String {
    format!(
        "host={} port={port} user={SUPERUSER} password={LAB_PASSWORD} dbname=postgres sslmode=require",
        address(i)
    )
}

async fn measure(
    lab: &Lab,
    tool: Tool,
    n: usize,
    minutes: u64,
    work: &Path,
    queries: &Path,
    postmaster: u32,
) -> Result<Measured> {
    let port = pgtls::lab::server::free_port()?;
    let listen = format!("127.0.0.1:{port}");
    let home = work.join(format!("home-{n}-{tool:?}"));
    std::fs::create_dir_all(&home)?;
    let mut cmd = match tool {
        Tool::Pgtls => {
            let targets = work.join(format!("targets-{n}.toml"));
            let mut text = String::new();
            for i in 0..n {
                writeln!(
                    text,
                    "[[target]]\nname = \"t{i:04}\"\nconninfo = \"{}\"\n",
                    conninfo(lab.port, i)
                )?;
            }
            std::fs::write(&targets, text)?;
            let bin = std::env::var("PGTLS_BIN").unwrap_or_else(|_| "target/release/pgtls".to_string());
            let mut cmd = Command::new(bin);
            cmd.args(["serve", "--interval", "5", "--listen", &listen])
                .arg("--targets")
                .arg(&targets);
            cmd
        }
        Tool::Exporter => {
            let bin = std::env::var("EXPORTER_BIN").unwrap_or_else(|_| "prometheus-postgres-exporter".to_string());
            let dsns: Vec<String> = (0..n).map(|i| dsn(lab.port, i)).collect();
            let mut cmd = Command::new(bin);
            cmd.env("DATA_SOURCE_NAME", dsns.join(","))
                .arg(format!("--web.listen-address={listen}"))
                .args([
                    "--no-collector.database",
                    "--no-collector.bgwriter",
                    "--disable-default-metrics",
                    "--disable-settings-metrics",
                ])
                .arg(format!("--extend.query-path={}", queries.display()));
            cmd
        }
    };
    for (key, _) in std::env::vars() {
        if key.starts_with("PG") {
            cmd.env_remove(key);
        }
    }
    let log = std::fs::File::create(work.join(format!("{tool:?}-{n}.log")))?;
    let conns_from = log_size(&lab.log_file);
    let server_from = server_cpu(postmaster);
    let child = cmd
        .env("HOME", &home)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .wrap_err_with(|| {
            format!(
                "cannot run {} (cargo build --release; apt-get install prometheus-postgres-exporter)",
                tool.name()
            )
        })?;
    let child = KillOnDrop(child);
    let pid = child.0.id();
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let scraper = {
        let stop = stop.clone();
        std::thread::spawn(move || scrape_loop(port, &stop, &tx))
    };

    let mut cpu = vec![0.0];
    let mut server = vec![server_from];
    let mut conns = vec![conns_from];
    for minute in 1..=minutes {
        let at = Duration::from_secs(60 * minute);
        tokio::time::sleep(at.saturating_sub(started.elapsed())).await;
        cpu.push(process_cpu(pid)?);
        server.push(server_cpu(postmaster));
        conns.push(log_size(&lab.log_file));
    }
    let peak_rss_kb = status_kb(pid, "VmHWM:")?;
    stop.store(true, Ordering::Relaxed);
    let _ = scraper.join();
    drop(child);
    let scrapes: Vec<Scrape> = rx.try_iter().collect();
    let connections = count_connections(&lab.log_file, &conns)?;

    let steady_minutes = (minutes - 1) as f64;
    let last_ok = scrapes.iter().rev().find(|s| s.status == 200);
    let up = last_ok.map(|s| s.up).unwrap_or(0);
    Ok(Measured {
        tool,
        targets: n,
        first_cpu: cpu[1] - cpu[0],
        steady_cpu: (cpu[minutes as usize] - cpu[1]) / steady_minutes,
        peak_rss_kb,
        first_conns: connections[0],
        steady_conns: connections[1..].iter().sum::<usize>() as f64 / steady_minutes,
        first_server_cpu: server[1] - server[0],
        steady_server_cpu: (server[minutes as usize] - server[1]) / steady_minutes,
        metrics_bytes: last_ok.map(|s| s.bytes).unwrap_or(0),
        up,
        scrapes_ok: scrapes.iter().filter(|s| s.status == 200).count(),
        scrapes_failed: scrapes.iter().filter(|s| s.status != 200).count(),
        scrape_ms_max: scrapes.iter().map(|s| s.millis).max().unwrap_or(0),
    })
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Scrape {
    /// 0 when nothing answered.
    status: u16,
    bytes: usize,
    millis: u128,
    /// Targets the answer reports up.
    up: usize,
}

/// `GET /metrics` every 5 s until `stop`, as Prometheus would (the next at once when one takes longer).
fn scrape_loop(port: u16, stop: &AtomicBool, results: &mpsc::Sender<Scrape>) {
    let mut next = Instant::now() + SCRAPE_EVERY;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(
            next.saturating_duration_since(Instant::now())
                .min(Duration::from_millis(500)),
        );
        if Instant::now() < next {
            continue;
        }
        next += SCRAPE_EVERY;
        let began = Instant::now();
        let (status, body) = get_metrics(port).unwrap_or((0, String::new()));
        let millis = began.elapsed().as_millis();
        if Instant::now() > next {
            next = Instant::now();
        }
        let _ = results.send(Scrape {
            status,
            bytes: body.len(),
            millis,
            up: targets_up(&body),
        });
    }
}

fn get_metrics(port: u16) -> Option<(u16, String)> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(60))).ok()?;
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

/// pgtls: `pgtls_up{...} 1` lines; the peer: distinct `server` labels of its session counts.
fn targets_up(body: &str) -> usize {
    let pgtls = body
        .lines()
        .filter(|l| l.starts_with("pgtls_up{") && l.ends_with(" 1"))
        .count();
    let servers: std::collections::BTreeSet<&str> = body
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains("tls_sessions{"))
        .filter_map(|l| l.split("server=\"").nth(1)?.split('"').next())
        .collect();
    pgtls.max(servers.len())
}

fn postmaster_pid(data_dir: &Path) -> Result<u32> {
    let text = std::fs::read_to_string(data_dir.join("postmaster.pid"))?;
    Ok(text.lines().next().unwrap_or("").trim().parse()?)
}

fn ticks_per_second() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64
}

/// Fields of /proc/PID/stat after the command name (which may hold spaces): index 0 is field 3, `state`.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    Some(after.split_whitespace().map(str::to_string).collect())
}

fn field(fields: &[String], i: usize) -> f64 {
    fields.get(i).and_then(|f| f.parse().ok()).unwrap_or(0.0)
}

/// utime + stime of the process (all its threads, exited ones included), in seconds.
fn process_cpu(pid: u32) -> Result<f64> {
    let Some(fields) = stat_fields(pid) else {
        bail!("process {pid} is gone (see its log in the work directory)");
    };
    // utime and stime are fields 14 and 15.
    Ok((field(&fields, 11) + field(&fields, 12)) / ticks_per_second())
}

/// The server's CPU so far: the postmaster's own and its reaped children's (cutime, cstime: fields 16 and 17), plus
/// every live child's utime + stime. A backend is counted while it lives and, once reaped, in cutime.
fn server_cpu(postmaster: u32) -> f64 {
    let mut total = stat_fields(postmaster)
        .map(|f| field(&f, 11) + field(&f, 12) + field(&f, 13) + field(&f, 14))
        .unwrap_or(0.0);
    let parent = postmaster.to_string();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else {
                continue;
            };
            // ppid is field 4, index 1.
            if let Some(fields) = stat_fields(pid)
                && fields.get(1) == Some(&parent)
            {
                total += field(&fields, 11) + field(&fields, 12);
            }
        }
    }
    total / ticks_per_second()
}

fn log_size(log: &Path) -> u64 {
    std::fs::metadata(log).map(|m| m.len()).unwrap_or(0)
}

/// `connection received:` lines in the log between each pair of offsets.
fn count_connections(log: &PathBuf, offsets: &[u64]) -> Result<Vec<usize>> {
    let bytes = std::fs::read(log)?;
    Ok(offsets
        .windows(2)
        .map(|w| {
            let (from, to) = (w[0] as usize, (w[1] as usize).min(bytes.len()));
            let text = String::from_utf8_lossy(bytes.get(from..to).unwrap_or(&[]));
            text.matches("connection received:").count()
        })
        .collect())
}

fn status_kb(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    Ok(status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0))
}
