//! `pgtls bundle`: write the Azure rotation's three roots into one PEM, or check which of them a bundle holds.

use std::io::Write;
use std::process::ExitCode;

use super::Failure;
use super::exit::Status;
use crate::cli::{BundleArgs, ProbeFormat};
use crate::output::safe::terminal as t;
use crate::roots::{RootPresence, azure_bundle, check_azure, system_store};

pub fn run(args: BundleArgs) -> Result<ExitCode, Failure> {
    match &args.check {
        Some(path) => check(path, args.format),
        None => write_azure(args.output.as_deref()),
    }
}

fn write_azure(output: Option<&std::path::Path>) -> Result<ExitCode, Failure> {
    let pem = azure_bundle().map_err(Failure::error)?;
    match output {
        Some(path) => {
            std::fs::write(path, &pem).map_err(|e| Failure::error(format!("cannot write {}: {e}", path.display())))?
        }
        None => {
            let mut out = std::io::stdout().lock();
            super::written(out.write_all(pem.as_bytes()).and_then(|()| out.flush()))
                .map_err(|e| Failure::error(format!("writing output: {e}")))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn check(path: &std::path::Path, format: ProbeFormat) -> Result<ExitCode, Failure> {
    let unknown = |message: String| Failure {
        message,
        code: Status::Unknown.code(),
    };
    let certs = crate::probe::bundles::read_bundle(path).map_err(|e| unknown(e.to_string()))?;
    let store = system_store();
    let roots = check_azure(&certs, chrono::Utc::now(), store.as_deref()).map_err(|e| unknown(e.to_string()))?;
    let status = if roots.iter().all(|r| r.state == "present") {
        Status::Ok
    } else {
        Status::Critical
    };
    let mut out = std::io::stdout().lock();
    let written = match format {
        ProbeFormat::Json => serde_json::to_writer_pretty(
            &mut out,
            &serde_json::json!({
                "path": path.display().to_string(),
                "certificates": certs.len(),
                "status": status,
                "roots": roots,
            }),
        )
        .map_err(std::io::Error::from)
        .and_then(|()| writeln!(out)),
        ProbeFormat::Text => write_text(&mut out, path, certs.len(), &roots, status),
    };
    super::written(written.and_then(|()| out.flush())).map_err(|e| unknown(format!("writing output: {e}")))?;
    Ok(status.exit())
}

fn write_text(
    out: &mut dyn Write,
    path: &std::path::Path,
    count: usize,
    roots: &[RootPresence],
    status: Status,
) -> std::io::Result<()> {
    writeln!(
        out,
        "Bundle      {}: {count} certificate{}",
        t(&path.display().to_string()),
        if count == 1 { "" } else { "s" }
    )?;
    let width = roots.iter().map(|r| r.name.len()).max().unwrap_or(0);
    for r in roots {
        let state = match r.state {
            "present" => format!("present   until {}", r.not_after.format("%Y-%m-%d")),
            "expired" => format!("EXPIRED   on {}", r.not_after.format("%Y-%m-%d")),
            _ => "MISSING".to_string(),
        };
        let mut notes = Vec::new();
        if let Some(other) = &r.other_certificate {
            notes.push(format!(
                "as another certificate with its name and key, SHA-256 {}",
                t(other)
            ));
        }
        if r.in_system_store == Some(false) {
            notes.push("not in this system's trust store (no matter: the bundle is what clients use)".to_string());
        }
        let notes = if notes.is_empty() {
            String::new()
        } else {
            format!("   ({})", notes.join("; "))
        };
        writeln!(out, "  {:width$}  {state}{notes}", r.name)?;
    }
    let missing: Vec<&str> = roots.iter().filter(|r| r.state != "present").map(|r| r.name).collect();
    if missing.is_empty() {
        writeln!(out, "{}          all three Azure roots are present", status.word())
    } else {
        writeln!(
            out,
            "{}    {} not usable: a client with this bundle fails verify-ca/verify-full when the server's chain \
             leads there (pgtls bundle --azure writes all three)",
            status.word(),
            missing.join(", ")
        )
    }
}
