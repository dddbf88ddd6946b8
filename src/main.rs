use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = pgtls::cli::hoist_global_flags(std::env::args_os().collect());
    let cli = match pgtls::cli::Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => {
            // clap would exit 2 for every command; `check` and `probe` are plugins, for which 2 is CRITICAL.
            // A closed stdout or stderr (`pgtls --help | head -1`) is no reason to panic: the print is best effort.
            let _ = e.print();
            return ExitCode::from(pgtls::cmd::exit::for_usage_error(&args, e.kind()));
        }
    };
    if let Err(message) = cli.check() {
        pgtls::cmd::warn(&message);
        return ExitCode::from(pgtls::cmd::exit::for_usage_error(
            &args,
            clap::error::ErrorKind::ArgumentConflict,
        ));
    }
    if let Err(e) = color_eyre::install() {
        pgtls::cmd::warn(&e.to_string());
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.runtime_workers())
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            pgtls::cmd::warn(&format!("cannot start the async runtime: {e}"));
            return ExitCode::from(pgtls::cmd::exit::ERROR);
        }
    };
    runtime.block_on(pgtls::cmd::run(cli))
}
