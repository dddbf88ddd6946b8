//! The collector against a real server: the cost of decoding one row of the poll into a `Session`, and of a whole
//! poll (one round trip, decode, snapshot) at 200 sessions.
//!
//! `cargo bench --bench decode`. Needs PostgreSQL's server binaries like the tests (`PGTLS_PG_BINDIR` or Debian's);
//! without them it says so and measures nothing.

mod common;

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use pgtls::collect::{Collector, rows, sql};
use pgtls::conn::params::{Environment, resolve};
use pgtls::lab::{Lab, LabOptions, LabSession, SessionKind};

const SESSIONS: usize = 200;

fn main() {
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("decode: no tokio runtime: {e}");
            return;
        }
    };
    let setup = rt.block_on(setup());
    let (lab, _sessions, _cert_sessions, mut collector, poll_rows) = match setup {
        Ok(s) => s,
        Err(e) => {
            eprintln!("decode: skipped, the lab server did not start: {e:#}");
            return;
        }
    };
    let sessions = poll_rows.len() - 1;
    eprintln!(
        "decode: {sessions} session rows from PostgreSQL {}",
        collector.preflight().server.version
    );

    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group("decode");
    group.sample_size(50).measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Elements(sessions as u64));
    // Per row: the figure criterion prints as "thrpt" is rows per second; time / rows is the cost of one row,
    // decoded and dropped again as each poll drops the previous one's.
    group.bench_function(format!("session_from_row/{sessions}"), |b| {
        b.iter(|| {
            let mut n = 0;
            for row in &poll_rows {
                if row.get::<_, i16>(sql::col::KIND) == 1 {
                    black_box(rows::session_from_row(black_box(row)));
                    n += 1;
                }
            }
            n
        });
    });
    group.finish();

    let mut group = c.benchmark_group("poll");
    group.sample_size(30).measurement_time(Duration::from_secs(4));
    group.throughput(Throughput::Elements(sessions as u64));
    group.bench_function(format!("round_trip_and_decode/{sessions}"), |b| {
        b.iter(|| rt.block_on(collector.poll()).map(|s| s.sessions.len()).ok());
    });
    group.finish();
    c.final_summary();
    drop(lab);
}

type Setup = (
    Lab,
    Vec<common::Idle>,
    Vec<LabSession>,
    Collector,
    Vec<tokio_postgres::Row>,
);

async fn setup() -> color_eyre::eyre::Result<Setup> {
    let lab = Lab::start(LabOptions {
        max_connections: SESSIONS as u32 + 50,
        ..LabOptions::default()
    })
    .await?;
    let sessions = common::open_sessions(&lab, SESSIONS - 2, false).await?;
    // Two with a client certificate, so the DN columns are decoded too.
    let cert = vec![
        lab.open(SessionKind::ClientCert, "", "cert-app").await?,
        lab.open(SessionKind::ClientCert, "", "cert-app").await?,
    ];
    common::create_roles(&lab, &["bench_monitor".to_string()], Some("pg_monitor")).await?;
    let home = tempfile::tempdir()?;
    let env = Environment::new(HashMap::new(), Some(home.path().to_path_buf()), "bench");
    let conninfo = format!("{} sslmode=require", lab.conninfo("bench_monitor"));
    let params = resolve(Some(&conninfo), &env)?;
    let collector = Collector::connect(&params).await?;
    let pre = collector.preflight();
    let shape = sql::PollShape {
        version_num: pre.server.version_num,
        sslinfo_schema: pre.sslinfo_schema.clone(),
    };
    let statement = collector.client().prepare(&sql::poll_statement(&shape)).await?;
    let poll_rows = collector.client().query(&statement, &[&Vec::<i32>::new()]).await?;
    Ok((lab, sessions, cert, collector, poll_rows))
}
