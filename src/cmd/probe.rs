//! `pgtls probe`: read the server's certificate chain and which TLS versions and suites it accepts.

use std::io::Write;
use std::process::ExitCode;

use super::Failure;
use super::exit::Status;
use crate::analysis::alerts::Severity;
use crate::cli::{ProbeArgs, ProbeFormat};
use crate::conn::params::Environment;
use crate::probe::ProbeTarget;

/// The plugin status of the worst finding.
pub fn status(worst: Option<Severity>) -> Status {
    match worst {
        None | Some(Severity::Info) => Status::Ok,
        Some(Severity::Warning) => Status::Warning,
        Some(Severity::Critical) => Status::Critical,
    }
}

pub async fn run(args: ProbeArgs) -> Result<ExitCode, Failure> {
    let unknown = |m: String| Failure {
        message: m,
        code: Status::Unknown.code(),
    };
    let params = args.conn.resolve(&Environment::from_process()).map_err(unknown)?;
    for warning in &params.warnings {
        super::warn(warning);
    }
    let mut target = ProbeTarget::from_params(&params, args.warn_days, args.full_cipher_scan)
        .ok_or_else(|| unknown("probe needs a TCP host (Unix sockets never use TLS)".into()))?;
    // A bundle that cannot be read is a usage error, said before any connection is made.
    for path in &args.bundles {
        crate::probe::bundles::read_bundle(path).map_err(|e| unknown(e.to_string()))?;
    }
    target.bundles = args.bundles.clone();
    target.full_scan = args.full_scan;
    // The range is read over SQL on this runtime, from the probe's blocking thread, once the server has shown
    // that it speaks TLS.
    let runtime = tokio::runtime::Handle::current();
    let report = tokio::task::spawn_blocking(move || {
        crate::probe::run_with_range(&target, None, &|| runtime.block_on(configured_range(&params)))
    })
    .await
    .map_err(|e| unknown(e.to_string()))?
    .map_err(|e| unknown(e.to_string()))?;
    let mut out = std::io::stdout().lock();
    let written = match args.format {
        ProbeFormat::Text => crate::output::probe::write(&report, &mut out),
        ProbeFormat::Json => serde_json::to_writer_pretty(&mut out, &report)
            .map_err(std::io::Error::from)
            .and_then(|()| writeln!(out)),
    };
    super::written(written.and_then(|()| out.flush())).map_err(|e| unknown(format!("writing output: {e}")))?;
    Ok(status(report.worst()).exit())
}

/// The server's configured TLS versions, over SQL; `None` when pgtls cannot log in or read them (the probe then
/// offers every version, and says so). The login is one more connection (two where sslmode=prefer retries
/// without TLS), not among the probe's counted handshakes.
async fn configured_range(params: &crate::conn::params::ConnParams) -> Option<crate::probe::VersionRange> {
    let connected = crate::collect::Connected::open_server(params).await.ok()?;
    let limit = params
        .connect_timeout
        .unwrap_or(crate::conn::connect::DEFAULT_CONNECT_TIMEOUT);
    crate::probe::range::read(&connected.client, limit).await
}
