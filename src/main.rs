#![deny(clippy::unwrap_used, clippy::expect_used)]

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = pgtls::cli::Cli::parse();
    if let Err(e) = color_eyre::install() {
        eprintln!("pgtls: {e}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pgtls: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(pgtls::cmd::run(cli))
}
