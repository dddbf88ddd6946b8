//! `pgtls [CONNINFO]`: connect (start-up errors end here, before the terminal is touched), then the dashboard.

use std::process::ExitCode;
use std::time::Duration;

use super::Failure;
use super::shared::{interval, plan, poll_timeout};
use crate::analysis::ledger::{Journal, KeyFields, Ledger};
use crate::cli::{DashboardArgs, HistoryArgs};
use crate::collect::Collector;
use crate::collect::own::OwnPids;
use crate::collect::poller::HistorySetup;
use crate::config::Config;
use crate::conn::params::{ConnParams, Environment};
use crate::probe::ProbeTarget;

pub async fn run(args: DashboardArgs) -> Result<ExitCode, Failure> {
    let interval = interval(args.interval)?;
    if args.is_fleet() {
        return run_fleet(args, interval).await;
    }
    let params = args
        .conn
        .resolve(&Environment::from_process())
        .map_err(Failure::connect)?;
    let poolers = args
        .history
        .poolers
        .resolve(&Environment::from_process())
        .map_err(Failure::usage)?;
    let front = Front {
        read_only: args.read_only,
        poolers,
        bundles: args.bundles.clone(),
        ..Front::default()
    };
    open(params, interval, &args.history, front).await
}

/// What the front-end (the dashboard command or the demo) adds to the configuration.
#[derive(Default)]
pub struct Front {
    /// The demo's own backends, shown as pgtls's own like the monitor's.
    pub helpers: Option<OwnPids>,
    /// Added to the header's target (the demo's socket directory, which the connection itself does not show).
    pub place: Option<String>,
    /// `--read-only`: on top of the config's `read_only`, never instead of it.
    pub read_only: bool,
    /// PgBouncer admin consoles in front of the server (`--pgbouncer`), resolved by the front-end.
    pub poolers: crate::collect::pooler::Poolers,
    /// `--bundle`: root bundles judged on the Certificates screen.
    pub bundles: Vec<std::path::PathBuf>,
    /// The demo's psql connection lines, shown on `J`.
    pub join: Vec<String>,
}

/// Shared with the demo: load config and ledger, connect once, then hand over to the dashboard.
pub async fn open(
    params: ConnParams,
    interval: Duration,
    history: &HistoryArgs,
    front: Front,
) -> Result<ExitCode, Failure> {
    let Front {
        helpers,
        place,
        read_only,
        mut poolers,
        mut bundles,
        join,
    } = front;
    let (mut config, _) = Config::load(history.config.as_deref()).map_err(Failure::usage)?;
    config.read_only |= read_only;
    // One server for now: a config with one `[[target]]` lends it its bundles (the fleet maps each entry's).
    if let [only] = config.targets.as_slice() {
        bundles.extend(only.bundles.iter().cloned());
        // And its poolers (`pgbouncer = [...]`), after those of --pgbouncer.
        poolers.append(
            crate::collect::pooler::Poolers::resolve(&only.pgbouncer, &Environment::from_process())
                .and_then(|p| p.with_logs(&only.pgbouncer_log))
                .map_err(Failure::usage)?,
        );
    }
    for path in &bundles {
        crate::probe::bundles::read_bundle(path).map_err(Failure::usage)?;
    }
    crate::files::check_growing("--ledger", history.ledger.as_deref()).map_err(Failure::usage)?;
    crate::files::check_growing("--server-log", history.server_log.as_deref()).map_err(Failure::usage)?;
    let fields = KeyFields::from_names(&config.ledger.key).map_err(Failure::usage)?;
    let mut ledger = Ledger::new(fields);
    let mut warnings = Vec::new();
    let journal = match &history.ledger {
        Some(path) => {
            let (journal, report) = Journal::open(path, &mut ledger).map_err(Failure::usage)?;
            warnings.extend(report.message(path));
            Some(journal)
        }
        None => None,
    };
    let chosen_timeout = history.poll_timeout.map(poll_timeout).transpose()?;
    let pooler_logs = poolers.logs().to_vec();
    let collector = Collector::connect_with(&params, crate::collect::poll_timeout(interval, chosen_timeout))
        .await
        .map_err(Failure::connect)?
        .with_helpers(helpers)
        .with_poolers(poolers);
    let pre = collector.preflight();
    let mut target = format!(
        "{}@{}:{}/{}",
        pre.monitor_user, pre.server.host, pre.server.port, pre.monitor_database
    );
    if let Some(place) = place {
        target = format!("{target} · {place}");
    }
    let setup = HistorySetup {
        ledger,
        journal,
        ledger_file: history.ledger.as_ref().map(|p| p.display().to_string()),
        server_log: history.server_log.clone(),
        pooler_logs,
        log_from_start: !history.log_from_now,
        min_evidence: config.min_evidence(),
        probe: ProbeTarget::from_params(&params, config.alerts.expiry_warn_days, false).map(|mut t| {
            t.bundles = bundles;
            t
        }),
        poll_timeout: chosen_timeout,
        log_budget: None,
        since: history.since,
        ledger_off: None,
    };
    crate::tui::app::run(
        params,
        collector,
        interval,
        target,
        setup,
        config,
        crate::tui::app::StartNotes { warnings, join },
    )
    .await
    .map_err(|e| Failure::error(format!("{e:#}")))?;
    Ok(ExitCode::SUCCESS)
}

/// Several servers: plan them as `serve` does (a bad connection string or file is an error before the terminal is
/// touched; a server that does not answer is only shown as down), start one engine each, open the Servers screen.
async fn run_fleet(args: DashboardArgs, interval: Duration) -> Result<ExitCode, Failure> {
    // Per-server options name one server; with several they would be silently ignored, so they are refused.
    let h = &args.history;
    let one_server_only = [
        (h.ledger.is_some(), "--ledger (ledger = in each [[target]])"),
        (h.server_log.is_some(), "--server-log (server_log = in each [[target]])"),
        (
            !h.poolers.pgbouncer.is_empty(),
            "--pgbouncer (pgbouncer = in each [[target]])",
        ),
        (
            !h.poolers.pgbouncer_log.is_empty(),
            "--pgbouncer-log (pgbouncer_log = in each [[target]])",
        ),
        (!args.bundles.is_empty(), "--bundle (bundles = in each [[target]])"),
        (h.since.is_some(), "--since"),
        (h.log_from_now, "--log-from-now"),
    ];
    if let Some((_, flag)) = one_server_only.iter().find(|(given, _)| *given) {
        return Err(Failure::usage(format!(
            "{flag} applies to one server, but several are named: put it in a targets file entry instead"
        )));
    }
    let (mut config, _) = Config::load(args.history.config.as_deref()).map_err(Failure::usage)?;
    config.read_only |= args.read_only;
    let plan = plan(&args.conn, args.targets.as_deref(), &config).map_err(Failure::usage)?;
    let options = crate::collect::engine::EngineOptions {
        interval,
        poll_timeout: args.history.poll_timeout.map(poll_timeout).transpose()?,
        state_dir: None,
        state_dir_lock: None,
        key_fields: KeyFields::from_names(&config.ledger.key).map_err(Failure::usage)?,
        min_evidence: config.min_evidence(),
        expiry_warn_days: config.alerts.expiry_warn_days,
        probe_every: Duration::from_secs(3600),
        log_to_stderr: false,
    };
    let fleet = std::sync::Arc::new(crate::collect::fleet::Fleet::new(options));
    fleet.apply(plan);
    crate::tui::app::run_fleet(fleet, interval, config)
        .await
        .map_err(|e| Failure::error(format!("{e:#}")))?;
    Ok(ExitCode::SUCCESS)
}
