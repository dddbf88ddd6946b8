//! `pgtls serve`: plan the targets (arguments, `--targets`, the config's `[[target]]` tables), start one engine
//! each, serve HTTP, reload on SIGHUP, stop on SIGTERM or Ctrl-C.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};

use super::Failure;
use crate::analysis::ledger::KeyFields;
use crate::analysis::ledger::lock::StateDirLock;
use crate::cli::{ConnArgs, ServeArgs};
use crate::collect::engine::{self, EngineOptions};
use crate::collect::fleet::{Fleet, Planned};
use crate::config::Config;
use crate::conn::params::Environment;
use crate::serve::http::{self, AppState};
use crate::serve::webconfig::WebConfig;
use crate::targets::{self, TargetEntry};

/// How often the fleet checks that every target's task still runs.
const CHECK_EVERY: Duration = Duration::from_secs(5);

pub async fn run(args: ServeArgs) -> Result<ExitCode, Failure> {
    let interval = super::dashboard::interval(args.interval)?;
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
    let tls = http::acceptor(&web).map_err(Failure::usage)?;
    let plan = plan(&args.conn, args.targets.as_deref(), &config).map_err(Failure::usage)?;
    let state_dir_lock = match &args.state_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| Failure::usage(format!("--state-dir {}: {e}", dir.display())))?;
            Some(Arc::new(
                StateDirLock::take(dir).map_err(|e| Failure::usage(e.to_string()))?,
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
        .map_err(|e| Failure::usage(format!("--listen {listen}: {e}")))?;
    let fleet = Arc::new(Fleet::new(options));
    for note in fleet.apply(plan) {
        log(&note);
    }
    let api = AppState::new(Arc::clone(&fleet), web.clone(), listen, args.client_series);
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
        return Err(Failure::usage("cannot listen for signals"));
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
    let planned =
        Config::load(args.config.as_deref()).and_then(|(config, _)| plan(&args.conn, args.targets.as_deref(), &config));
    match planned {
        Ok(plan) => {
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

/// Every target, resolved and named, in order: the arguments', the targets file's, the config's. Shared by `serve`
/// and the dashboard over several servers.
pub fn plan(conn: &ConnArgs, targets_file: Option<&std::path::Path>, config: &Config) -> Result<Vec<Planned>, String> {
    let env = Environment::from_process();
    let mut planned = Vec::new();
    let from_file = match targets_file {
        Some(path) => targets::load_file(path)?,
        None => Vec::new(),
    };
    if conn.conninfo.len() <= 1 && from_file.is_empty() && config.targets.is_empty() {
        // One server: exactly as the dashboard resolves it, psql's flags included.
        let params = conn.resolve(&env)?;
        let entry = TargetEntry {
            conninfo: conn.conninfo.first().cloned().unwrap_or_default(),
            ..TargetEntry::default()
        };
        let name = engine::name_of(&entry, &params);
        planned.push(Planned { entry, params, name });
        return Ok(planned);
    }
    let entries = conn
        .conninfo
        .iter()
        .map(|conninfo| TargetEntry {
            conninfo: conninfo.clone(),
            ..TargetEntry::default()
        })
        .chain(from_file)
        .chain(config.targets.iter().cloned());
    let mut names = BTreeSet::new();
    for entry in entries {
        let params = engine::resolve_entry(&entry, &env).map_err(|e| {
            format!(
                "target {}: {e}",
                crate::conn::text::quoted(entry.name.as_deref().unwrap_or(&entry.conninfo))
            )
        })?;
        let name = engine::name_of(&entry, &params);
        for bundle in &entry.bundles {
            crate::probe::bundles::read_bundle(bundle)
                .map_err(|e| format!("target {}: {e}", crate::conn::text::quoted(&name)))?;
        }
        // The engine resolves them again when it starts; a mistake in the file is refused here, whole.
        crate::collect::pooler::Poolers::resolve(&entry.pgbouncer, &env)
            .and_then(|p| p.with_logs(&entry.pgbouncer_log))
            .map_err(|e| format!("target {}: {e}", crate::conn::text::quoted(&name)))?;
        if !names.insert(name.clone()) {
            return Err(format!(
                "two targets are named {}: give each a name in the targets file",
                crate::conn::text::quoted(&name)
            ));
        }
        planned.push(Planned { entry, params, name });
    }
    Ok(planned)
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
