//! `pgtls man`, `pgtls completions SHELL` and `pgtls config --example`: documents generated from the clap definition
//! and the configuration's own defaults, so they cannot drift from what pgtls accepts.

use std::io::Write;
use std::process::ExitCode;

use clap::CommandFactory;

use super::Failure;
use crate::cli::Cli;

pub fn man() -> Result<ExitCode, Failure> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut page)
        .map_err(|e| Failure::error(format!("cannot render the man page: {e}")))?;
    write_out(&page)
}

pub fn completions(shell: clap_complete::Shell) -> Result<ExitCode, Failure> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "pgtls", &mut out);
    write_out(&out)
}

pub fn config_example() -> Result<ExitCode, Failure> {
    write_out(crate::config::EXAMPLE.as_bytes())
}

fn write_out(bytes: &[u8]) -> Result<ExitCode, Failure> {
    let mut stdout = std::io::stdout().lock();
    super::written(stdout.write_all(bytes).and_then(|()| stdout.flush()))
        .map_err(|e| Failure::error(format!("cannot write to stdout: {e}")))?;
    Ok(ExitCode::SUCCESS)
}
