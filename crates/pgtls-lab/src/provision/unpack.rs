//! Unpacking a fetched package: the gzip'd tar, the library symlinks npm's install step would have made, and
//! permissions that let the lab's server account read and run everything.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use super::ProvisionError;

/// Unpacked size cap: the packages unpack to about 60 MB; a stream much larger than that is not one of them.
pub const MAX_UNPACKED: u64 = 1 << 30;
/// Cap on `native/pg-symlinks.json` (a few kB in the real packages).
const MAX_LINKS_FILE: u64 = 1 << 20;

/// Unpack the `.tgz` at `archive` into the empty directory `into`. The tar crate refuses entries that would land
/// outside it (absolute paths, `..`).
pub fn unpack(archive: &Path, into: &Path) -> Result<(), ProvisionError> {
    let file = std::fs::File::open(archive).map_err(ProvisionError::io("cannot open", archive))?;
    let mut limited = flate2::read::GzDecoder::new(std::io::BufReader::new(file)).take(MAX_UNPACKED);
    let result = {
        let mut tar = tar::Archive::new(&mut limited);
        tar.set_preserve_permissions(true);
        tar.set_overwrite(false);
        tar.unpack(into)
    };
    if limited.limit() == 0 {
        return Err(ProvisionError::TooLarge {
            mib: MAX_UNPACKED >> 20,
        });
    }
    result.map_err(ProvisionError::Unpack)
}

#[derive(serde::Deserialize)]
struct Link {
    source: String,
    target: String,
}

/// Create the symlinks listed in `native/pg-symlinks.json` (e.g. `libicuuc.so.60 -> libicuuc.so.60.2`), which the
/// package's postinstall script would make: the server cannot load its libraries without them. Both ends are paths
/// relative to the package root and must stay inside it. Links already there are left alone. Returns how many were
/// made; a package without the file needs none.
pub fn restore_symlinks(package: &Path) -> Result<usize, ProvisionError> {
    let list = package.join("native/pg-symlinks.json");
    let Ok(file) = std::fs::File::open(&list) else {
        return Ok(0);
    };
    let mut text = String::new();
    file.take(MAX_LINKS_FILE)
        .read_to_string(&mut text)
        .map_err(ProvisionError::io("cannot read", &list))?;
    let links: Vec<Link> = serde_json::from_str(&text).map_err(|source| ProvisionError::NotLinks {
        list: list.clone(),
        source,
    })?;
    let mut made = 0;
    for link in links {
        let source = inside(&link.source)?;
        let target = inside(&link.target)?;
        let at = package.join(&target);
        if at.symlink_metadata().is_ok() {
            continue;
        }
        let pointing = relative_from(target.parent().unwrap_or(Path::new("")), &source);
        std::os::unix::fs::symlink(&pointing, &at).map_err(|source| ProvisionError::Link {
            at: at.clone(),
            pointing: pointing.clone(),
            source,
        })?;
        made += 1;
    }
    Ok(made)
}

/// A relative path of plain names only: nothing absolute, no `..`, so a link cannot be placed or point outside.
fn inside(path: &str) -> Result<PathBuf, ProvisionError> {
    let p = Path::new(path);
    if path.is_empty()
        || !p
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(ProvisionError::LeavesPackage { path: path.to_string() });
    }
    Ok(p.components().filter(|c| matches!(c, Component::Normal(_))).collect())
}

/// The path from directory `from` to `to`, both relative to the same root.
fn relative_from(from: &Path, to: &Path) -> PathBuf {
    let from: Vec<_> = from.components().collect();
    let to_parts: Vec<_> = to.components().collect();
    let common = from.iter().zip(&to_parts).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..from.len() {
        out.push("..");
    }
    for part in &to_parts[common..] {
        out.push(part);
    }
    out
}

/// Directories 755, files readable by all and executable by all where executable by the owner, nothing
/// group/other-writable: the server may run as another account, and our umask must not decide what it can read.
pub fn open_permissions(root: &Path) -> Result<(), ProvisionError> {
    let meta = root
        .symlink_metadata()
        .map_err(ProvisionError::io("cannot stat", root))?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    let mode = meta.permissions().mode();
    let new = if meta.is_dir() || mode & 0o100 != 0 {
        0o755
    } else {
        0o644
    };
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(new))
        .map_err(ProvisionError::io("cannot chmod", root))?;
    if meta.is_dir() {
        let entries = std::fs::read_dir(root).map_err(ProvisionError::io("cannot list", root))?;
        for entry in entries {
            let entry = entry.map_err(ProvisionError::io("cannot list", root))?;
            open_permissions(&entry.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A package shaped like the real ones (`package/native/...`), built here.
    fn package_tgz(dir: &Path, links_json: &str) -> PathBuf {
        let path = dir.join("pkg.tgz");
        let gz = flate2::write::GzEncoder::new(std::fs::File::create(&path).unwrap(), flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        let mut add = |name: &str, body: &[u8], mode: u32| {
            let mut header = tar::Header::new_gnu();
            header.set_size(body.len() as u64);
            header.set_mode(mode);
            header.set_cksum();
            tar.append_data(&mut header, name, body).unwrap();
        };
        add("package/native/bin/postgres", b"#!/bin/false\n", 0o700);
        add("package/native/lib/libicuuc.so.60.2", b"lib", 0o600);
        add("package/native/pg-symlinks.json", links_json.as_bytes(), 0o600);
        tar.into_inner().unwrap().finish().unwrap();
        path
    }

    #[test]
    fn unpacks_restores_links_and_opens_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let links = r#"[{"source":"native/lib/libicuuc.so.60.2","target":"native/lib/libicuuc.so.60"},
                        {"source":"native/lib/libicuuc.so.60.2","target":"native/bin/libicuuc.so"}]"#;
        let tgz = package_tgz(dir.path(), links);
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        unpack(&tgz, &out).unwrap();
        let package = out.join("package");
        assert_eq!(restore_symlinks(&package).unwrap(), 2);
        let lib = package.join("native/lib");
        assert_eq!(
            std::fs::read_link(lib.join("libicuuc.so.60")).unwrap(),
            PathBuf::from("libicuuc.so.60.2")
        );
        assert_eq!(
            std::fs::read_link(package.join("native/bin/libicuuc.so")).unwrap(),
            PathBuf::from("../lib/libicuuc.so.60.2")
        );
        assert_eq!(std::fs::read(lib.join("libicuuc.so.60")).unwrap(), b"lib");
        // Run twice (a retried install): links already there are kept.
        assert_eq!(restore_symlinks(&package).unwrap(), 0);

        open_permissions(&package).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&package.join("native/bin/postgres")), 0o755);
        assert_eq!(mode(&lib.join("libicuuc.so.60.2")), 0o644);
        assert_eq!(mode(&lib), 0o755);
    }

    #[test]
    fn links_leaving_the_package_are_refused() {
        for (source, target) in [
            ("native/lib/x", "../../etc/evil"),
            ("/etc/passwd", "native/lib/x"),
            ("native/../../x", "native/lib/x"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            std::fs::create_dir_all(dir.path().join("native/lib")).unwrap();
            std::fs::write(
                dir.path().join("native/pg-symlinks.json"),
                format!(r#"[{{"source":"{source}","target":"{target}"}}]"#),
            )
            .unwrap();
            let err = restore_symlinks(dir.path()).unwrap_err().to_string();
            assert!(err.contains("leaves the package"), "{err}");
        }
    }

    #[test]
    fn a_corrupt_archive_is_an_error_not_a_partial_success() {
        let dir = tempfile::tempdir().unwrap();
        let tgz = package_tgz(dir.path(), "[]");
        let mut bytes = std::fs::read(&tgz).unwrap();
        bytes.truncate(bytes.len() / 2);
        std::fs::write(&tgz, bytes).unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let err = unpack(&tgz, &out).unwrap_err().to_string();
        assert!(err.starts_with("cannot unpack"), "{err}");
    }
}
