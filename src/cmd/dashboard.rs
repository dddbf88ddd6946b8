//! `pgtls [CONNINFO]`: connect (start-up errors end here, before the terminal is touched), then the dashboard.

use std::process::ExitCode;
use std::time::Duration;

use super::Failure;
use crate::cli::DashboardArgs;
use crate::collect::Collector;
use crate::conn::params::{ConnParams, Environment, resolve};

pub async fn run(args: DashboardArgs) -> Result<ExitCode, Failure> {
    let interval = interval(args.interval)?;
    let params = resolve(args.conn.conninfo.as_deref(), &Environment::from_process()).map_err(Failure::connect)?;
    open(params, interval).await
}

/// Shared with the demo: connect once, then hand over to the dashboard.
pub async fn open(params: ConnParams, interval: Duration) -> Result<ExitCode, Failure> {
    let collector = Collector::connect(&params).await.map_err(Failure::connect)?;
    let pre = collector.preflight();
    let target = format!(
        "{}@{}:{}/{}",
        pre.monitor_user, pre.server.host, pre.server.port, pre.monitor_database
    );
    crate::tui::app::run(params, collector, interval, target)
        .await
        .map_err(|e| Failure::usage(format!("{e:#}")))?;
    Ok(ExitCode::SUCCESS)
}

pub fn interval(seconds: f64) -> Result<Duration, Failure> {
    if seconds.is_finite() && (0.1..=3600.0).contains(&seconds) {
        Ok(Duration::from_secs_f64(seconds))
    } else {
        Err(Failure::usage(format!(
            "--interval must be between 0.1 and 3600 seconds, not {seconds}"
        )))
    }
}
