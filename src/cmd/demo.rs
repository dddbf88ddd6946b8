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
    let options = LabOptions {
        bindir: args.pg_bindir,
        ..LabOptions::default()
    };
    let lab = Lab::start(options)
        .await
        .map_err(|e| Failure::usage(format!("demo: {e:#}")))?;
    let setup = async {
        lab.ensure_role(MONITOR_ROLE).await?;
        lab.admin()
            .await?
            .batch_execute(&format!("GRANT pg_monitor TO {MONITOR_ROLE}"))
            .await?;
        demo::start(&lab).await
    };
    let clients = setup.await.map_err(|e| Failure::usage(format!("demo: {e:#}")))?;
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
    };
    let result = super::dashboard::open(params, interval, &history).await;
    drop(clients);
    drop(lab);
    result
}
