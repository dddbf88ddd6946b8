//! `pgtls report [CONNINFO] [--ledger PATH] -o FILE`: one poll, the ledger read as it is, the certificate probed,
//! and the report written as HTML or Markdown (see [`crate::output::report`]).

use std::io::Write;
use std::process::ExitCode;

use super::Failure;
use crate::analysis::ledger::{Journal, KeyFields, Ledger};
use crate::cli::ReportArgs;
use crate::collect::Collector;
use crate::config::{Config, parse_duration};
use crate::conn::params::Environment;
use crate::output::report::{Certificate, Inputs, Report, ReportFormat, html, markdown};
use crate::probe::ProbeTarget;

pub async fn run(args: ReportArgs) -> Result<ExitCode, Failure> {
    // Everything a usage error can be is said before a connection is made.
    let format = ReportFormat::from_path(&args.output).ok_or_else(|| {
        Failure::usage(format!(
            "-o {}: the extension says the format; use .html or .md",
            args.output.display()
        ))
    })?;
    let (config, _) = Config::load(args.config.as_deref()).map_err(Failure::usage)?;
    let min_evidence =
        parse_duration(&args.min_evidence).map_err(|e| Failure::usage(format!("--min-evidence: {e}")))?;
    let fields = KeyFields::from_names(&config.ledger.key).map_err(Failure::usage)?;
    let mut ledger = Ledger::new(fields);
    let mut sources = vec![crate::sources::POLL_LIMITATION.to_string()];
    if let Some(path) = &args.ledger {
        if !path.exists() {
            return Err(Failure::usage(format!("--ledger {} does not exist", path.display())));
        }
        crate::files::regular_if_exists(path)
            .map_err(|e| Failure::usage(format!("--ledger {}: {e}", path.display())))?;
        // A report reads: a dashboard or `serve` may be writing the file, and it stays theirs byte for byte.
        let loaded = Journal::replay_read_only(path, &mut ledger).map_err(Failure::error)?;
        if let Some(message) = loaded.message(path) {
            super::warn(&message);
        }
        sources.push(format!(
            "ledger {} ({} clients; log source {})",
            path.display(),
            ledger.len(),
            if ledger.log_source_seen { "seen" } else { "never on" }
        ));
    } else {
        sources.push("no ledger (--ledger): the holdouts and the trend are this one poll's".to_string());
    }
    let params = args
        .conn
        .resolve(&Environment::from_process())
        .map_err(Failure::connect)?;
    let mut collector = Collector::connect(&params).await.map_err(Failure::connect)?;
    for warning in collector.warnings() {
        super::warn(&warning);
    }
    let snapshot = collector.poll().await.map_err(Failure::connect)?;
    // With a ledger, the ledger is the evidence: this process never saw which of the connected sessions its writer
    // already counted (that is known by pid only while a writer runs), so folding the poll in would count them
    // again. The poll still gives the settings, the platform and the sessions still connected after a change.
    if args.ledger.is_none() {
        ledger.observe_snapshot(&snapshot, false);
    }
    let hba = collector.hba_rules().await;
    let certificate = if args.no_probe {
        Certificate::Missing("not probed (--no-probe)".to_string())
    } else {
        match ProbeTarget::from_params(&params, 30, false) {
            None => Certificate::Missing("connected over a Unix socket, which never uses TLS".to_string()),
            Some(target) => match tokio::task::spawn_blocking(move || crate::probe::run(&target)).await {
                Ok(Ok(report)) => Certificate::Probed(Box::new(report)),
                Ok(Err(e)) => Certificate::Missing(format!("the probe failed: {e}")),
                Err(e) => Certificate::Missing(format!("the probe failed: {e}")),
            },
        }
    };
    let report = Report::build(Inputs {
        snapshot: &snapshot,
        ledger: &ledger,
        hba: &hba,
        certificate,
        min_evidence,
        since: args.since,
        sources,
        ledger_file: args.ledger.as_ref().map(|p| p.display().to_string()),
    });
    let text = match format {
        ReportFormat::Html => html::render(&report),
        ReportFormat::Markdown => markdown::render(&report),
    };
    write_private(&args.output, text.as_bytes())
        .map_err(|e| Failure::error(format!("writing {}: {e}", args.output.display())))?;
    Ok(ExitCode::SUCCESS)
}

/// The report names users, hosts and applications, as the ledger does: created readable by its owner only.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}
