//! `pgtls demo`: a throwaway TLS-enabled PostgreSQL, a realistic mix of clients, and the dashboard on it.

use std::collections::HashMap;
use std::process::ExitCode;

use super::Failure;
use crate::cli::{DemoArgs, HistoryArgs};
use crate::conn::conninfo::quote_value;
use crate::conn::params::{Environment, resolve};
use crate::lab::{LAB_PASSWORD, Lab, LabOptions, demo};

/// The demo's monitoring role: a member of pg_monitor, as production monitoring should be.
pub const MONITOR_ROLE: &str = "pgtls_monitor";

pub async fn run(args: DemoArgs) -> Result<ExitCode, Failure> {
    let interval = super::dashboard::interval(args.interval)?;
    eprintln!("pgtls demo: starting a throwaway PostgreSQL with TLS and a mix of clients…");
    // Ctrl-C, a closed terminal or `kill` during start-up must still remove the server and its
    // temp dir: with handlers installed the default "terminate at once" no longer applies, and
    // the lab is dropped on the way out.
    let interrupted = interrupted().map_err(|e| Failure::usage(format!("demo: {e}")))?;
    tokio::pin!(interrupted);
    let options = LabOptions {
        bindir: args.pg_bindir,
        ..LabOptions::default()
    };
    let lab = tokio::select! {
        lab = Lab::start(options) => lab.map_err(|e| Failure::usage(format!("demo: {e:#}")))?,
        () = &mut interrupted => return Err(Failure::usage("demo: interrupted")),
    };
    let setup = async {
        lab.ensure_role(MONITOR_ROLE).await?;
        lab.admin()
            .await?
            .batch_execute(&format!("GRANT pg_monitor TO {MONITOR_ROLE}"))
            .await?;
        demo::start(&lab).await
    };
    let clients = tokio::select! {
        clients = setup => clients.map_err(|e| Failure::usage(format!("demo: {e:#}")))?,
        () = &mut interrupted => return Err(Failure::usage("demo: interrupted")),
    };
    // verify-full against the lab's own CA, as a careful DBA would connect.
    let conninfo = format!(
        "host=localhost hostaddr=127.0.0.1 port={} user={MONITOR_ROLE} password={} dbname=postgres \
         sslmode=verify-full sslrootcert={} application_name=pgtls",
        lab.port,
        quote_value(LAB_PASSWORD),
        quote_value(&lab.certs.ca_cert.display().to_string()),
    );
    // The user's PG* variables and ~/.postgresql must not redirect the demo's own connection.
    let env = Environment::new(HashMap::new(), Some(lab.root().to_path_buf()), MONITOR_ROLE);
    let params = resolve(Some(&conninfo), &env).map_err(Failure::usage)?;
    // The demo reads its server's log, so short-lived clients show up in Holdouts and What-if.
    let history = HistoryArgs {
        ledger: None,
        server_log: Some(lab.log_file.clone()),
        config: None,
        // The lab's own set-up connections are not part of the story.
        log_from_now: true,
        poll_timeout: None,
    };
    let result = super::dashboard::open(params, interval, &history, Some(lab.own_pids())).await;
    drop(clients);
    drop(lab);
    result
}

/// Resolves on SIGINT, SIGQUIT, SIGTERM or SIGHUP (the same set that ends the dashboard).
fn interrupted() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut quit = signal(SignalKind::quit())?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = quit.recv() => {}
            _ = term.recv() => {}
            _ = hup.recv() => {}
        }
    })
}
