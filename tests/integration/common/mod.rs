//! Shared helpers for tests against the real lab server.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers fail by panicking")]
#![allow(dead_code)]

pub mod cargo;
pub mod crl;
pub mod tmux;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use pgtls::conn::params::{ConnParams, Environment, resolve};
use pgtls::lab::{Lab, LabOptions};
use pgtls::provision::Provisioner;

/// Poll `check` every 50 ms until it returns `Some`, for what the server does on its own time (log lines written by
/// backends, a reload taking effect); fails naming `what` and the last value seen once `timeout` has passed.
pub async fn wait_until<T, S: std::fmt::Debug>(
    what: &str,
    timeout: Duration,
    mut check: impl AsyncFnMut() -> Result<T, S>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match check().await {
            Ok(done) => return done,
            Err(seen) if Instant::now() >= deadline => panic!("{what}: still {seen:?} after {timeout:?}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

pub async fn lab() -> Lab {
    Lab::start(LabOptions::default())
        .await
        .unwrap_or_else(|e| fail(&format!("the lab cannot start: {e:#}")))
}

/// End the test with one line and no panic message or backtrace: for what is missing on the machine, where a
/// trace would only bury the line that says what to install. `resume_unwind` skips the panic hook; libtest still
/// counts the test as failed and shows the line.
pub fn fail(line: &str) -> ! {
    eprintln!("{line}");
    std::panic::resume_unwind(Box::new(line.to_string()))
}

/// `program` on PATH (or at that path), else the test fails with one line naming the package that brings it.
/// `scripts/test` installs them all.
pub fn require_tool(program: &str, package: &str) -> std::path::PathBuf {
    let found = if program.contains('/') {
        Some(std::path::PathBuf::from(program)).filter(|p| p.is_file())
    } else {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(program))
                .find(|p| p.is_file())
        })
    };
    found.unwrap_or_else(|| {
        fail(&format!(
            "{program} is not installed: install the {package} package (Debian/Ubuntu: apt-get install {package}), \
             or run scripts/test, which installs what the tests need"
        ))
    })
}

/// An environment with no PG* variables and a home without ~/.postgresql, so the developer's setup cannot leak in.
pub fn clean_env(home: &Path) -> Environment {
    Environment::new(
        HashMap::<String, String>::new(),
        Some(home.to_path_buf()),
        "tester".to_string(),
    )
}

pub fn params(conninfo: &str, home: &Path) -> ConnParams {
    resolve(Some(conninfo), &clean_env(home)).expect("conninfo resolves")
}

/// Run the real binary with a clean PG* environment and HOME. `PGTLS_TEST_BIN` runs another build instead
/// (e.g. an older commit's, to show a test fails there).
pub fn pgtls(args: &[&str], home: &Path) -> Output {
    let bin = std::env::var_os("PGTLS_TEST_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_pgtls").into());
    let mut cmd = Command::new(bin);
    for (key, _) in std::env::vars() {
        if key.starts_with("PG") {
            cmd.env_remove(key);
        }
    }
    cmd.env("HOME", home).args(args).output().expect("pgtls runs")
}

/// Where one PostgreSQL major version's server binaries were found, for tests/integration/versions.rs.
#[derive(Debug, Clone)]
pub struct VersionBinaries {
    pub major: u32,
    /// From `postgres --version`, e.g. "17.10".
    pub version: String,
    pub dir: std::path::PathBuf,
    /// How it was found, for the run's summary (e.g. "PGTLS_PG17_BINDIR", "pgtls's cache").
    pub found_by: String,
}

/// Why a version's binaries are not usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindirError {
    /// Not installed and not fetched (offline, or no pinned build for this platform).
    Missing(String),
    /// `$PGTLS_PG{major}_BINDIR` names a directory that is not that version or does not run, or the fetch failed:
    /// a mistake, not a skip.
    Broken(String),
}

/// Server binaries for `major`: `$PGTLS_PG{major}_BINDIR`, then Debian's `/usr/lib/postgresql/{major}/bin`, then
/// `pg_config --bindir` when it is that version, then the pinned build in pgtls's cache, fetched if missing
/// (`pgtls::provision`, the same the demo and the lab use).
pub fn version_bindir(major: u32) -> Result<VersionBinaries, BindirError> {
    let var = format!("PGTLS_PG{major}_BINDIR");
    let mut candidates: Vec<(std::path::PathBuf, String)> = Vec::new();
    if let Some(dir) = std::env::var_os(&var).filter(|d| !d.is_empty()) {
        // An explicit choice is not second-guessed by falling back to other places.
        return checked_bindir(major, dir.into(), var).map_err(BindirError::Broken);
    }
    candidates.push((
        format!("/usr/lib/postgresql/{major}/bin").into(),
        "/usr/lib/postgresql/*/bin".to_string(),
    ));
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
        candidates.push((dir.into(), "pg_config --bindir".to_string()));
    }
    let mut tried = Vec::new();
    for (dir, found_by) in candidates {
        if !dir.join("postgres").is_file() || !dir.join("initdb").is_file() {
            continue;
        }
        match server_version(&dir) {
            Ok((m, version)) if m == major => {
                return Ok(VersionBinaries {
                    major,
                    version,
                    dir,
                    found_by,
                });
            }
            Ok((m, _)) => tried.push(format!("{} ({found_by}): is PostgreSQL {m}", dir.display())),
            Err(e) => tried.push(format!("{} ({found_by}): {e}", dir.display())),
        }
    }
    let provisioner = Provisioner::from_env(false).map_err(|e| BindirError::Missing(e.to_string()))?;
    if let Err(e) = provisioner.pin(major) {
        return Err(BindirError::Missing(format!("{e}; set {var}")));
    }
    match provisioner.server_bindir(major) {
        Ok(dir) => checked_bindir(major, dir, "pgtls's cache".to_string()).map_err(BindirError::Broken),
        Err(e) if provisioner.offline => Err(BindirError::Missing(format!("{e}; set {var}"))),
        Err(e) => Err(BindirError::Broken(if tried.is_empty() {
            e.to_string()
        } else {
            format!("{e}; tried: {}", tried.join("; "))
        })),
    }
}

fn checked_bindir(major: u32, dir: std::path::PathBuf, found_by: String) -> Result<VersionBinaries, String> {
    match server_version(&dir) {
        Ok((m, version)) if m == major => Ok(VersionBinaries {
            major,
            version,
            dir,
            found_by,
        }),
        Ok((m, _)) => Err(format!("{found_by}={} is PostgreSQL {m}, not {major}", dir.display())),
        Err(e) => Err(format!("{found_by}={}: {e}", dir.display())),
    }
}

/// Major version and version number from `postgres --version`, or why it could not be run.
pub fn server_version(dir: &Path) -> Result<(u32, String), String> {
    let out = Command::new(dir.join("postgres"))
        .arg("--version")
        .output()
        .map_err(|e| format!("cannot run postgres --version: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "postgres --version failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    // "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
    let number = text.split_whitespace().nth(2).unwrap_or_default().to_string();
    let major = pgtls::lab::bindir::parse_major(&text).ok_or_else(|| format!("cannot read {:?}", text.trim()))?;
    Ok((major, number))
}
