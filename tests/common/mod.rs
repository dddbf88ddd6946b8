//! Shared helpers for tests against the real lab server.
#![allow(dead_code)]

pub mod crl;
pub mod tmux;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};

use pgtls::conn::params::{ConnParams, Environment, resolve};
use pgtls::lab::{Lab, LabOptions};

pub async fn lab() -> Lab {
    Lab::start(LabOptions::default()).await.expect("lab starts")
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

/// Where one PostgreSQL major version's server binaries were found, for tests/versions.rs.
#[derive(Debug, Clone)]
pub struct VersionBinaries {
    pub major: u32,
    /// From `postgres --version`, e.g. "17.10".
    pub version: String,
    pub dir: std::path::PathBuf,
    /// How it was found, for the run's summary (e.g. "PGTLS_PG17_BINDIR", "/opt/pgtls-pg/versions.env").
    pub found_by: String,
}

/// The index `scripts/pg-matrix.sh` writes: `$PGTLS_PG_INDEX`, else `$PGTLS_PG_ROOT/versions.env`, else its default root.
pub fn version_index_path() -> std::path::PathBuf {
    if let Some(path) = std::env::var_os("PGTLS_PG_INDEX").filter(|p| !p.is_empty()) {
        return path.into();
    }
    let root = std::env::var_os("PGTLS_PG_ROOT")
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/opt/pgtls-pg".into());
    Path::new(&root).join("versions.env")
}

/// `KEY=VALUE` lines of the index; a missing or unreadable file is an empty index.
pub fn read_version_index(path: &Path) -> HashMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches(['"', '\'']).to_string()))
        .collect()
}

/// Why a version's binaries are not usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindirError {
    /// Nothing found anywhere: the version is not installed here.
    Missing(String),
    /// `$PGTLS_PG{major}_BINDIR` names a directory that is not that version or does not run: a mistake, not a skip.
    Broken(String),
}

/// Server binaries for `major`: `$PGTLS_PG{major}_BINDIR`, then the matrix index, then Debian's
/// `/usr/lib/postgresql/{major}/bin`, then `pg_config --bindir` when it is that version.
pub fn version_bindir(major: u32) -> Result<VersionBinaries, BindirError> {
    let var = format!("PGTLS_PG{major}_BINDIR");
    let index_path = version_index_path();
    let mut candidates: Vec<(std::path::PathBuf, String)> = Vec::new();
    if let Some(dir) = std::env::var_os(&var).filter(|d| !d.is_empty()) {
        // An explicit choice is not second-guessed by falling back to other places.
        return checked_bindir(major, dir.into(), var).map_err(BindirError::Broken);
    }
    if let Some(dir) = read_version_index(&index_path).get(&var) {
        candidates.push((dir.into(), index_path.display().to_string()));
    }
    candidates.push((
        format!("/usr/lib/postgresql/{major}/bin").into(),
        "/usr/lib/postgresql/*/bin".to_string(),
    ));
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        if out.status.success() {
            let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
            candidates.push((dir.into(), "pg_config --bindir".to_string()));
        }
    }
    let mut tried = Vec::new();
    for (dir, found_by) in candidates {
        if !dir.join("postgres").is_file() || !dir.join("initdb").is_file() {
            tried.push(format!("{} ({found_by}): no initdb/postgres", dir.display()));
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
    Err(BindirError::Missing(format!(
        "no binaries: set {var} or run scripts/pg-matrix.sh (index {}); tried: {}",
        index_path.display(),
        tried.join("; ")
    )))
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
