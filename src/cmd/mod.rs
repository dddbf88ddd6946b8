//! One runner per subcommand; `main` only parses and dispatches.

pub mod check;
pub mod dashboard;
pub mod demo;
pub mod ledger;
pub mod probe;
pub mod snapshot;

use std::process::ExitCode;

use crate::cli::{Cli, Command};

/// Exit code for "could not connect or could not see", as monitoring plugins use 2/3.
pub const EXIT_CONNECT_FAILED: u8 = 2;

pub async fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Some(Command::Snapshot(args)) => snapshot::run(args).await,
        Some(Command::Probe(args)) => probe::run(args).await,
        Some(Command::Check(args)) => check::run(args).await,
        Some(Command::Ledger(args)) => ledger::run(args),
        Some(Command::Demo(args)) => demo::run(args).await,
        None => dashboard::run(cli.dashboard).await,
    };
    match result {
        Ok(code) => code,
        Err(failure) => {
            warn(&failure.message);
            ExitCode::from(failure.code)
        }
    }
}

/// One line on stderr. Errors and warnings quote outside text (a server's ErrorResponse, certificate names, host
/// names, file names), so every one goes through the terminal sanitiser here, at the edge, whatever produced it.
pub fn warn(message: &str) {
    eprintln!("pgtls: {}", crate::output::safe::terminal(message));
}

/// An error that ends the program with one line on stderr.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub code: u8,
}

impl Failure {
    pub fn connect(message: impl std::fmt::Display) -> Self {
        Failure {
            message: message.to_string(),
            code: EXIT_CONNECT_FAILED,
        }
    }

    pub fn usage(message: impl std::fmt::Display) -> Self {
        Failure {
            message: message.to_string(),
            code: 1,
        }
    }
}
