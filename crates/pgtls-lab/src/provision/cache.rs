//! Where fetched builds live, and whether the lab's server account can reach them.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Environment variable naming the cache directory.
pub const CACHE_ENV: &str = "PGTLS_CACHE_DIR";

/// Where root's cache goes: root's home is mode 700, and the server runs as another account that must be able to
/// execute what is cached.
pub const ROOT_CACHE: &str = "/var/cache/pgtls";

/// `$PGTLS_CACHE_DIR`, else `/var/cache/pgtls` as root, else the user's cache dir: `$XDG_CACHE_HOME/pgtls` or
/// `~/.cache/pgtls` on Linux, `~/Library/Caches/pgtls` on macOS.
pub fn root() -> Result<PathBuf, super::ProvisionError> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = var(CACHE_ENV) {
        return Ok(dir);
    }
    if nix::unistd::Uid::effective().is_root() {
        return Ok(PathBuf::from(ROOT_CACHE));
    }
    let home = var("HOME").filter(|h| h.is_absolute());
    if cfg!(target_os = "macos") {
        if let Some(home) = home {
            return Ok(home.join("Library/Caches/pgtls"));
        }
    } else if let Some(xdg) = var("XDG_CACHE_HOME").filter(|d| d.is_absolute()) {
        // The XDG spec says a relative value is invalid and to be ignored.
        return Ok(xdg.join("pgtls"));
    } else if let Some(home) = home {
        return Ok(home.join(".cache/pgtls"));
    }
    Err(super::ProvisionError::NoCacheDir)
}

/// The directory of fetched PostgreSQL builds inside the cache.
pub fn builds(root: &Path) -> PathBuf {
    root.join("postgresql")
}

/// Create `dir` and its missing parents as mode 755, so another account may search them.
pub fn create_open(dir: &Path) -> std::io::Result<()> {
    let mut missing = Vec::new();
    let mut cur = Some(dir);
    while let Some(d) = cur {
        if d.exists() {
            break;
        }
        missing.push(d);
        cur = d.parent();
    }
    std::fs::create_dir_all(dir)?;
    for d in missing {
        // The umask may have taken bits away.
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

/// The first ancestor of `path` (from the top) that the account `uid`/`gid` may not search, with its mode and
/// owner, e.g. `/root (mode 700, uid 0)`. Supplementary groups are not considered, so this can name a directory
/// the account could in fact search through one; the lab then fails later with the server's own message.
pub fn blocked_ancestor(path: &Path, uid: u32, gid: u32) -> Option<String> {
    let mut cur = PathBuf::new();
    for part in path.components() {
        cur.push(part);
        let Ok(meta) = std::fs::metadata(&cur) else {
            return Some(format!("{} (cannot stat)", cur.display()));
        };
        let mode = meta.mode();
        let searchable = if uid == 0 {
            true
        } else if meta.uid() == uid {
            mode & 0o100 != 0
        } else if meta.gid() == gid {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        };
        if !searchable {
            return Some(format!(
                "{} (mode {:o}, uid {})",
                cur.display(),
                mode & 0o7777,
                meta.uid()
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_directory_on_the_way_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let closed = dir.path().join("closed");
        let inner = closed.join("inner");
        create_open(&inner).unwrap();
        assert_eq!(
            std::fs::metadata(&closed).unwrap().mode() & 0o777,
            0o755,
            "created open whatever the umask"
        );
        // An account that owns nothing here: only the "other" bits count for it.
        let (uid, gid) = (65_000, 65_000);
        assert_eq!(blocked_ancestor(&inner, uid, gid), None);
        std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).unwrap();
        let blocked = blocked_ancestor(&inner, uid, gid).unwrap();
        assert!(
            blocked.starts_with(&format!("{} (mode 700", closed.display())),
            "{blocked}"
        );
        std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}
