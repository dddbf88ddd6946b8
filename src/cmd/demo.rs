//! `pgtls demo`: a throwaway TLS-enabled PostgreSQL, a realistic mix of clients, and the dashboard on it.

use std::collections::HashMap;
use std::process::ExitCode;

use super::Failure;
use crate::cli::{DemoArgs, HistoryArgs};
use crate::conn::params::{Environment, resolve};
use crate::lab::{Lab, LabOptions, demo};

pub use crate::lab::demo::MONITOR_ROLE;

pub async fn run(args: DemoArgs) -> Result<ExitCode, Failure> {
    let interval = super::shared::interval(args.interval)?;
    let raise_after = args.raise_after.map(raise_after).transpose()?;
    // A broken configuration is said before a server is started for nothing (the dashboard reads it again).
    crate::config::Config::load(args.config.as_deref()).map_err(Failure::usage)?;
    // Ctrl-C, a closed terminal or `kill` during start-up must still remove the server and its
    // temp dir: with handlers installed the default "terminate at once" no longer applies, and
    // the lab is dropped on the way out. Installed before the first word is printed, so a signal sent
    // on seeing it is never the default one (that race once killed the demo with SIGQUIT's core dump).
    let interrupted = interrupted().map_err(|e| Failure::error(format!("demo: {e}")))?;
    eprintln!("pgtls demo: starting a throwaway PostgreSQL with TLS and a mix of clients…");
    tokio::pin!(interrupted);
    let options = LabOptions {
        bindir: args.pg_bindir,
        offline: args.offline,
        ..LabOptions::default()
    };
    let lab = tokio::select! {
        lab = Lab::start(options) => lab.map_err(|e| Failure::error(format!("demo: {e:#}")))?,
        () = &mut interrupted => {
            crate::provision::download::cancel();
            return Err(Failure::error("demo: interrupted"));
        }
    };
    let setup = async {
        demo::grant_monitor(&lab).await?;
        demo::start(&lab).await
    };
    let clients = tokio::select! {
        clients = setup => clients.map_err(|e| Failure::error(format!("demo: {e:#}")))?,
        () = &mut interrupted => return Err(Failure::error("demo: interrupted")),
    };
    // A PgBouncer in front of the server when the binary is installed: a pooled client in plain text that the
    // server alone shows as TLS 1.3. The demo goes on without it when it cannot start.
    let pooled = tokio::select! {
        pooled = demo::DemoPooler::start(&lab) => pooled.unwrap_or_else(|e| {
            eprintln!("pgtls demo: pgbouncer did not start, going on without it: {e:#}");
            None
        }),
        () = &mut interrupted => return Err(Failure::error("demo: interrupted")),
    };
    let join = demo::JoinInfo::new(&lab);
    let join_lines: Vec<String> = join
        .lines()
        .into_iter()
        .chain(pooled.as_ref().map(demo::DemoPooler::join_line))
        .collect();
    // The dashboard's alternate screen hides what is printed before it, so the lines also go to a file the header
    // names (removed with the server) and behind `J`.
    let join_file = lab.root().join("connect.txt");
    std::fs::write(&join_file, join_lines.join("\n") + "\n")
        .map_err(|e| Failure::error(format!("demo: writing {}: {e}", join_file.display())))?;
    // Shown before the dashboard takes the screen, so it is there again when the dashboard ends.
    for line in &join_lines {
        eprintln!("pgtls demo: {line}");
    }
    eprintln!(
        "pgtls demo: while it runs, J shows these lines and {} holds them",
        join_file.display()
    );
    let conninfo = demo::monitor_conninfo(&lab);
    // The user's PG* variables and ~/.postgresql must not redirect the demo's own connection.
    let env = Environment::new(HashMap::new(), Some(lab.root().to_path_buf()), MONITOR_ROLE);
    let params = resolve(Some(&conninfo), &env).map_err(Failure::error)?;
    // The demo reads its server's log, so short-lived clients show up in Holdouts and What-if.
    let history = HistoryArgs {
        ledger: None,
        server_log: Some(lab.log_file.clone()),
        config: args.config.clone(),
        // The lab's own set-up connections are not part of the story.
        log_from_now: true,
        poll_timeout: None,
        since: None,
        poolers: crate::cli::PoolerArgs::default(),
    };
    let mut place = format!(
        "J or {}: psql lines · socket {}",
        join_file.display(),
        join.socket_dir.display()
    );
    // The change runs on its own task while the dashboard watches; the header says when (before the long socket
    // path, which is cut first), so the refusals that follow are not a surprise.
    let raise = match raise_after {
        Some(after) => {
            let at = chrono::Local::now() + chrono::Duration::from_std(after).unwrap_or_default();
            place = format!("TLSv1.3 minimum from {} · {place}", at.format("%H:%M:%S"));
            let task = demo::raise_after(&lab, after)
                .await
                .map_err(|e| Failure::error(format!("demo: {e:#}")))?;
            Some(task)
        }
        None => None,
    };
    let front = super::dashboard::Front {
        helpers: Some(lab.own_pids()),
        place: Some(place),
        read_only: false,
        poolers: match &pooled {
            // With its log, so clients the pooler turns away (after raising its client_tls_protocols or
            // client_tls_sslmode and RELOAD) reach What-if as the server's refusals do.
            Some(p) => crate::collect::pooler::Poolers::resolve(&[p.admin_conninfo(&lab)], &env)
                .and_then(|poolers| poolers.with_logs(std::slice::from_ref(&p.pooler.log_file)))
                .map_err(Failure::error)?,
            None => crate::collect::pooler::Poolers::default(),
        },
        bundles: Vec::new(),
        join: join_lines,
    };
    let result = super::dashboard::open(params, interval, &history, front).await;
    if let Some(raise) = raise {
        // Said after the dashboard has given the terminal back.
        if raise.is_finished() {
            match raise.await {
                Ok(Ok(())) => eprintln!("pgtls demo: ssl_min_protocol_version was raised to TLSv1.3"),
                Ok(Err(e)) => eprintln!("pgtls demo: could not raise ssl_min_protocol_version: {e:#}"),
                Err(e) => eprintln!("pgtls demo: the task raising ssl_min_protocol_version failed: {e}"),
            }
        } else {
            raise.abort();
            eprintln!("pgtls demo: quit before --raise-after was due; the minimum was not raised");
        }
    }
    drop(clients);
    drop(pooled);
    drop(lab);
    eprintln!(
        "pgtls demo: the server on port {} and {} are removed",
        join.port,
        join.socket_dir.display()
    );
    result
}

fn raise_after(seconds: f64) -> Result<std::time::Duration, Failure> {
    if seconds.is_finite() && (0.0..=86_400.0).contains(&seconds) {
        Ok(std::time::Duration::from_secs_f64(seconds))
    } else {
        Err(Failure::usage(format!(
            "--raise-after must be between 0 and 86400 seconds, not {seconds}"
        )))
    }
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
