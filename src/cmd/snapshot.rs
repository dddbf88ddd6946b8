//! `pgtls snapshot`: one poll, printed, for scripts.

use std::io::Write;
use std::process::ExitCode;

use super::Failure;
use crate::cli::SnapshotArgs;
use crate::collect::Collector;
use crate::conn::params::Environment;

pub async fn run(args: SnapshotArgs) -> Result<ExitCode, Failure> {
    let params = args
        .conn
        .resolve(&Environment::from_process())
        .map_err(Failure::connect)?;
    let poolers = args
        .poolers
        .resolve(&Environment::from_process())
        .map_err(Failure::usage)?;
    let mut collector = Collector::connect(&params)
        .await
        .map_err(Failure::connect)?
        .with_poolers(poolers);
    for warning in collector.warnings() {
        super::warn(warning);
    }
    let snapshot = collector.poll().await.map_err(Failure::connect)?;
    let mut out = std::io::stdout().lock();
    let result = crate::output::write(
        &snapshot,
        args.format,
        crate::output::csv::CsvFields::from_raw_flag(args.raw),
        &mut out,
    )
    .and_then(|()| out.flush());
    super::written(result).map_err(|e| Failure::usage(format!("writing output: {e}")))?;
    Ok(ExitCode::SUCCESS)
}
