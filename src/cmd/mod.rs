//! One runner per subcommand; `main` only parses and dispatches.

pub mod bundle;
pub mod check;
pub mod dashboard;
#[cfg(feature = "demo")]
pub mod demo;
pub mod docs;
pub mod exit;
pub mod exit_table;
pub mod ledger;
pub mod probe;
pub mod report;
pub mod serve;
mod shared;
pub mod snapshot;

use std::process::ExitCode;

use crate::cli::{Cli, Command};

/// What `pgtls demo` says in a build without the `demo` feature.
#[cfg(not(feature = "demo"))]
pub const NO_DEMO: &str = "demo: this build of pgtls has no demo (built with --no-default-features, for a server); \
                           a build with the default features has it";

pub async fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Some(Command::Snapshot(args)) => snapshot::run(args).await,
        Some(Command::Probe(args)) => probe::run(args).await,
        Some(Command::Check(args)) => check::run(args).await,
        Some(Command::Ledger(args)) => ledger::run(args),
        Some(Command::Report(args)) => report::run(args).await,
        Some(Command::Bundle(args)) => bundle::run(args),
        #[cfg(feature = "demo")]
        Some(Command::Demo(args)) => demo::run(args).await,
        // The subcommand stays in a server build, or `pgtls demo` would be read as a database name to connect to.
        #[cfg(not(feature = "demo"))]
        Some(Command::Demo(_)) => Err(Failure::usage(NO_DEMO)),
        Some(Command::Serve(args)) => serve::run(args).await,
        Some(Command::Man(args)) => docs::man(args.command.as_deref()),
        Some(Command::Completions(args)) => docs::completions(args.shell),
        Some(Command::Config(_)) => docs::config_example(),
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
    use std::io::Write;
    // A closed stderr must not turn a warning into a panic.
    let _ = writeln!(std::io::stderr(), "pgtls: {}", crate::output::safe::terminal(message));
}

/// The reader of our output went away (`pgtls snapshot | head -1`): like grep and psql, stop writing and end
/// quietly. Rust ignores SIGPIPE, so this arrives as an error from the write, possibly wrapped by the CSV writer.
pub fn is_broken_pipe(e: &std::io::Error) -> bool {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        return true;
    }
    let inner = e.get_ref().and_then(|inner| inner.downcast_ref::<csv::Error>());
    matches!(inner.map(csv::Error::kind), Some(csv::ErrorKind::Io(io)) if io.kind() == std::io::ErrorKind::BrokenPipe)
}

/// Output written, or not needed any more because its reader closed the pipe; any other write error is one.
pub fn written(result: std::io::Result<()>) -> Result<(), std::io::Error> {
    match result {
        Err(e) if is_broken_pipe(&e) => Ok(()),
        other => other,
    }
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
            code: exit::CONNECT_FAILED,
        }
    }

    /// The command line or the configuration is wrong; nothing was tried.
    pub fn usage(message: impl std::fmt::Display) -> Self {
        Failure {
            message: message.to_string(),
            code: exit::USAGE,
        }
    }

    /// Something failed while running.
    pub fn error(message: impl std::fmt::Display) -> Self {
        Failure {
            message: message.to_string(),
            code: exit::ERROR,
        }
    }
}
