//! `pgtls serve`: plan the targets (arguments, `--targets`, the config's `[[target]]` tables), start one engine
//! each, serve HTTP, reload on SIGHUP, stop on SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};

use super::Failure;
use super::shared::plan;
use crate::analysis::ledger::KeyFields;
use crate::analysis::ledger::lock::StateDirLock;
use crate::cli::ServeArgs;
use crate::collect::engine::EngineOptions;
use crate::collect::fleet::{Fleet, Planned};
use crate::config::Config;
use crate::serve::http::{self, ServeState};
use crate::serve::limits;
use crate::serve::webconfig::WebConfig;

/// How often the fleet checks that every target's task still runs.
const CHECK_EVERY: Duration = Duration::from_secs(5);

pub async fn run(args: ServeArgs) -> Result<ExitCode, Failure> {
    // First, before any descriptor is opened for a target.
    let open_files = limits::raise_open_files();
    let interval = super::shared::interval(args.interval)?;
    let probe_every = positive_seconds("--probe-interval", args.probe_interval)?;
    let listen: SocketAddr = args.listen.parse().map_err(|_| {
        Failure::usage(format!(
            "--listen {}: not an address and port like 127.0.0.1:19187",
            args.listen
        ))
    })?;
    let (config, _) = Config::load(args.config.as_deref()).map_err(Failure::usage)?;
    let web = match &args.web_config {
        Some(path) => WebConfig::load(path).map_err(Failure::usage)?,
        None => WebConfig::default(),
    };
    if args.client_series > 0 && !http::names_allowed(listen, &web) {
        // The JSON API's own rule: a 403 there, a refusal here, since a metric cannot be refused per request.
        return Err(Failure::usage(format!(
            "--client-series puts user, database and application names in labels: it needs a loopback --listen \
             address (not {listen}) or basic_auth_users in --web-config"
        )));
    }
    let tls = http::acceptor(&web).map_err(Failure::usage)?;
    let plan = plan(&args.conn, args.targets.as_deref(), &config).map_err(Failure::usage)?;
    let state_dir_lock = match &args.state_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| Failure::error(format!("--state-dir {}: {e}", dir.display())))?;
            Some(Arc::new(
                StateDirLock::take(dir).map_err(|e| Failure::error(e.to_string()))?,
            ))
        }
        None => None,
    };
    let options = EngineOptions {
        interval,
        poll_timeout: None,
        state_dir: args.state_dir.clone(),
        state_dir_lock,
        key_fields: KeyFields::from_names(&config.ledger.key).map_err(Failure::usage)?,
        min_evidence: config.min_evidence(),
        expiry_warn_days: config.alerts.expiry_warn_days,
        probe_every,
        log_to_stderr: true,
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| Failure::error(format!("--listen {listen}: {e}")))?;
    let fleet = Arc::new(Fleet::new(options));
    check_open_files(open_files, &plan);
    for note in fleet.apply(plan) {
        log(&note);
    }
    let api = ServeState::new(Arc::clone(&fleet), web.clone(), listen, args.client_series).map_err(Failure::usage)?;
    if !api.api_allowed {
        log("the JSON API is off: it answers on a loopback --listen address or behind basic_auth_users");
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    log(&format!(
        "listening on {scheme}://{listen}/metrics ({} target(s), every {:.1} s)",
        fleet.names().len(),
        interval.as_secs_f64()
    ));

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(http::serve(listener, http::router(api), tls, async {
        let _ = stop_rx.await;
    }));
    let outcome = supervise(&args, &fleet).await;
    let _ = stop_tx.send(());
    let _ = server.await;
    log("stopped");
    outcome
}

/// Until SIGTERM or SIGINT: reload on SIGHUP, restart any target whose task ended.
async fn supervise(args: &ServeArgs, fleet: &Fleet) -> Result<ExitCode, Failure> {
    let signals = (
        signal(SignalKind::hangup()),
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    let (Ok(mut hup), Ok(mut term), Ok(mut int)) = signals else {
        return Err(Failure::error("cannot listen for signals"));
    };
    let mut check = tokio::time::interval(CHECK_EVERY);
    loop {
        tokio::select! {
            _ = term.recv() => return Ok(ExitCode::SUCCESS),
            _ = int.recv() => return Ok(ExitCode::SUCCESS),
            _ = hup.recv() => reload(args, fleet),
            _ = check.tick() => {
                for note in fleet.check_tasks().await {
                    log(&note);
                }
            }
        }
    }
}

/// SIGHUP: read the config and the targets file again. A file with an error changes nothing (the targets keep
/// running as they were), as a daemon's reload should.
fn reload(args: &ServeArgs, fleet: &Fleet) {
    log("SIGHUP: reloading the targets");
    let planned = Config::load(args.config.as_deref())
        .map_err(|e| e.to_string())
        .and_then(|(config, _)| plan(&args.conn, args.targets.as_deref(), &config));
    match planned {
        Ok(plan) => {
            check_open_files(limits::raise_open_files(), &plan);
            let notes = fleet.apply(plan);
            for line in &notes {
                log(line);
            }
            if notes.is_empty() {
                log("no change");
            }
        }
        Err(e) => log(&format!("reload failed, targets unchanged: {e}")),
    }
}

/// One line when the open-files limit is too low for the targets: each holds its connection, plus one for each
/// pooler console and followed log file it names.
fn check_open_files(limit: Option<(u64, u64)>, plan: &[Planned]) {
    let Some((soft, hard)) = limit else {
        return;
    };
    let per_target = |p: &Planned| {
        1 + p.entry.pgbouncer.len() as u64
            + p.entry.pgbouncer_log.len() as u64
            + u64::from(p.entry.server_log.is_some())
    };
    let needed = limits::FIXED + plan.iter().map(per_target).sum::<u64>();
    if let Some(line) = limits::shortage(needed, soft, hard, plan.len()) {
        log(&line);
    }
}

fn positive_seconds(flag: &str, seconds: f64) -> Result<Duration, Failure> {
    if seconds.is_finite() && (1.0..=7.0 * 86_400.0).contains(&seconds) {
        Ok(Duration::from_secs_f64(seconds))
    } else {
        Err(Failure::usage(format!(
            "{flag} must be between 1 second and 7 days, not {seconds}"
        )))
    }
}

/// One line on stderr, as a daemon under systemd logs (journald adds the time).
fn log(line: &str) {
    super::warn(&format!("serve: {line}"));
}
