//! `pgtls check`: a monitoring plugin. One summary line first (as Nagios plugins print), perfdata,
//! and exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (cannot connect or cannot see).

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use super::Failure;
use crate::analysis::after;
use crate::analysis::alerts::{LinkHealth, configure, evaluate_with};
use crate::analysis::ledger::{Journal, KeyFields, Ledger};
use crate::analysis::whatif;
use crate::cli::{CheckArgs, CheckFormat};
use crate::collect::Collector;
use crate::config::{Config, parse_duration};
use crate::conn::params::Environment;
use crate::model::Snapshot;
use crate::output::safe;
use crate::sources::LogSources;

pub use crate::output::check::{CheckReport, Status, assess, write_text};

fn unknown(message: impl std::fmt::Display) -> Failure {
    Failure {
        message: format!("PGTLS UNKNOWN - {message}"),
        code: Status::Unknown.code(),
    }
}

/// Monitoring systems read stdout: even UNKNOWN is reported there, as one line.
pub async fn run(args: CheckArgs) -> Result<ExitCode, Failure> {
    match run_checked(args).await {
        Ok(code) => Ok(code),
        Err(failure) => {
            // The message may quote the server (an ErrorResponse, a certificate name): one safe line. A closed
            // stdout leaves the exit status as the only answer, which is still the right one.
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", safe::nagios(&failure.message)).and_then(|()| out.flush());
            Ok(ExitCode::from(failure.code))
        }
    }
}

async fn run_checked(args: CheckArgs) -> Result<ExitCode, Failure> {
    let (config, _) = Config::load(args.config.as_deref()).map_err(unknown)?;
    crate::files::check_growing("--ledger", args.ledger.as_deref()).map_err(unknown)?;
    crate::files::check_growing("--server-log", args.server_log.as_deref()).map_err(unknown)?;
    let watch = match &args.watch {
        Some(w) => parse_duration(w).map_err(|e| unknown(format!("--watch: {e}")))?,
        None => chrono::Duration::zero(),
    };
    let min_evidence = parse_duration(&args.min_evidence).map_err(|e| unknown(format!("--min-evidence: {e}")))?;
    let window = parse_duration(&args.window).map_err(|e| unknown(format!("--window: {e}")))?;
    let params = args.conn.resolve(&Environment::from_process()).map_err(unknown)?;
    let mut poolers = args.poolers.resolve(&Environment::from_process()).map_err(unknown)?;
    // One server: a config with one `[[target]]` lends it its poolers, as the dashboard does.
    if let [only] = config.targets.as_slice() {
        poolers.append(
            crate::collect::pooler::Poolers::resolve(&only.pgbouncer, &Environment::from_process())
                .and_then(|p| p.with_logs(&only.pgbouncer_log))
                .map_err(unknown)?,
        );
    }
    // Checked before connecting (a missing file is a usage error), opened once the ledger says where to resume.
    crate::pooler_logs::PoolerLogs::open(poolers.logs(), false).map_err(unknown)?;
    let pooler_log_files = poolers.logs().to_vec();
    let mut collector = Collector::connect(&params)
        .await
        .map_err(|e| unknown(format!("cannot connect: {e}")))?
        .with_poolers(poolers);
    // As libpq prints its warnings (a deprecated variable, a client certificate file that is not there): once, on
    // stderr, which a monitoring system keeps apart from the one status line.
    for warning in collector.warnings() {
        super::warn(&warning);
    }
    let fields = KeyFields::from_names(&config.ledger.key).map_err(unknown)?;
    let mut ledger = Ledger::new(fields);
    let mut journal = match &args.ledger {
        Some(path) => {
            let (journal, report) = Journal::open(path, &mut ledger).map_err(unknown)?;
            if let Some(message) = report.message(path) {
                super::warn(&message);
            }
            Some(journal)
        }
        None => None,
    };
    let mut pooler_logs =
        crate::pooler_logs::PoolerLogs::open_resuming(&pooler_log_files, true, &ledger).map_err(unknown)?;
    let mut logs = LogSources::open(collector.client(), args.server_log.as_deref(), true, &ledger)
        .await
        .map_err(unknown)?;

    let deadline = tokio::time::Instant::now() + watch.to_std().unwrap_or_default();
    let mut snapshot: Snapshot;
    loop {
        snapshot = collector.poll().await.map_err(unknown)?;
        let entries = ledger.observe_snapshot(&snapshot, logs.is_active());
        if let Some(journal) = &mut journal {
            journal.append(&entries, &ledger).map_err(unknown)?;
        }
        // The log is read one budget at a time, each applied and journalled before the next is read, so a log
        // of millions of lines costs the memory of its distinct clients, not of its lines.
        loop {
            let mut entries: Vec<_> = logs
                .poll(collector.client())
                .await
                .iter()
                .filter_map(|event| ledger.observe_log(event))
                .collect();
            // Refused attempts and reloads, as the dashboard's history service takes them (check runs no probe, so
            // no failed handshake in the log is its own).
            let news = logs.take_news();
            entries.extend(news.refused.iter().filter_map(|r| ledger.observe_refused(r)));
            entries.extend(news.changes.iter().filter_map(|c| ledger.observe_setting_change(c)));
            // The poolers' logs: clients turned away before the server ever saw them.
            entries.extend(pooler_logs.poll().iter().filter_map(|r| ledger.observe_refused(r)));
            // Journalled with what it covers, so the next run reads on from here (only with a ledger to keep it).
            if journal.is_some() {
                if let Some(position) = logs.position(collector.client()).await {
                    entries.extend(ledger.note_log_position(position));
                }
                for position in pooler_logs.positions() {
                    entries.extend(ledger.note_log_position(position));
                }
            }
            if let Some(journal) = &mut journal {
                journal.append(&entries, &ledger).map_err(unknown)?;
            }
            if !logs.is_behind() && !pooler_logs.is_behind() {
                break;
            }
        }
        if tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1).min(deadline - tokio::time::Instant::now())).await;
    }
    let hba = collector.hba_rules().await;
    let mut alerts = evaluate_with(Some(&snapshot), &LinkHealth::Up, &config.alerts);
    alerts.extend(logs.forgery_alert(&config.alerts));
    let target = whatif::Change::from(args.target);
    let whatif = whatif::evaluate(&ledger, target, &hba, min_evidence);
    let inputs = after::Inputs {
        ledger: &ledger,
        snapshot: &snapshot,
        hba: &hba,
        user_since: args.since,
        window_from: Some(snapshot.taken_at - window),
    };
    let standing = after::evaluate(target, &inputs);
    let pooler_after = if pooler_logs.is_empty() {
        Vec::new()
    } else {
        after::evaluate_poolers(target, &inputs)
    };
    alerts.extend(
        after::pooler_alerts(&pooler_after)
            .into_iter()
            .filter_map(|mut a| configure(&mut a, &config.alerts).then_some(a)),
    );
    if let Some(report) = standing.report() {
        alerts.extend(
            after::alerts(report)
                .into_iter()
                .filter_map(|mut a| configure(&mut a, &config.alerts).then_some(a)),
        );
    }
    alerts.sort_by_key(|a| a.severity);
    // check's text and JSON list the sources' words; its status reads the log's state from `logs.status()`.
    let sources = logs
        .describe()
        .into_iter()
        .chain(pooler_logs.describe())
        .map(|note| note.text)
        .collect();
    let mut report = assess(&snapshot, alerts, whatif, standing, sources);
    report.with_pooler_after(pooler_after);
    report.with_log(logs.status());

    let mut out = std::io::stdout().lock();
    let written = match args.format {
        CheckFormat::Text => write_text(&report, &mut out),
        CheckFormat::Json => serde_json::to_writer_pretty(&mut out, &report)
            .map_err(std::io::Error::from)
            .and_then(|()| writeln!(out)),
    };
    super::written(written.and_then(|()| out.flush())).map_err(unknown)?;
    Ok(ExitCode::from(report.status.code()))
}
