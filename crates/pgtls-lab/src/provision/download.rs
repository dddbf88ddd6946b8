//! Fetching one pinned tarball over HTTPS into a file, hashing it on the way, with a progress bar on a terminal.
//!
//! ureq on native-tls: OpenSSL on Linux (the library pgtls already links), which reads the system trust store and
//! honours `SSL_CERT_FILE`/`SSL_CERT_DIR`; the platform's verifier on macOS. ureq's default configuration takes its
//! proxy from `HTTPS_PROXY`/`ALL_PROXY`/`HTTP_PROXY` (and `NO_PROXY`).

use std::io::{IsTerminal, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ureq::tls::{RootCerts, TlsConfig, TlsProvider};

use super::ProvisionError;
use super::integrity::Hasher;
use super::pinned::Pin;

/// The packages are about 23 MB; the cap keeps a wrong or hostile answer from filling the disk.
pub const MAX_DOWNLOAD: u64 = 256 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// A download that stalls this long is given up, however long it has run.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Whole-download bound: 23 MB in 30 minutes is 13 kB/s.
const TOTAL_TIMEOUT: Duration = Duration::from_secs(30 * 60);

static CANCELLED: AtomicBool = AtomicBool::new(false);

/// Stop a download in progress (the demo was interrupted): it ends with an error at its next read, so the process
/// does not wait for the rest of the file on its way out.
pub fn cancel() {
    CANCELLED.store(true, Ordering::Relaxed);
}

/// Download `pin` into `dest` and check its SHA-512. Returns the number of bytes. Errors are one line, without
/// the package name (the caller adds it).
pub fn fetch(pin: &Pin, dest: &Path) -> Result<u64, ProvisionError> {
    let config = ureq::Agent::config_builder()
        .tls_config(
            TlsConfig::builder()
                .provider(TlsProvider::NativeTls)
                .root_certs(RootCerts::PlatformVerifier)
                .build(),
        )
        .https_only(true)
        .timeout_resolve(Some(CONNECT_TIMEOUT))
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .timeout_per_read(Some(READ_TIMEOUT))
        .timeout_global(Some(TOTAL_TIMEOUT))
        .user_agent(concat!("pgtls/", env!("CARGO_PKG_VERSION")))
        .build();
    let agent = ureq::Agent::new_with_config(config);
    let mut response = agent.get(pin.url).call().map_err(|e| ProvisionError::Get {
        url: pin.url,
        source: Box::new(e),
    })?;
    let total = response.body().content_length();
    if total.is_some_and(|t| t > MAX_DOWNLOAD) {
        return Err(ProvisionError::TooBig {
            url: pin.url,
            total: total.unwrap_or_default(),
            cap_mib: MAX_DOWNLOAD >> 20,
        });
    }
    let mut body = response.body_mut().with_config().limit(MAX_DOWNLOAD).reader();
    let mut file = std::fs::File::create(dest).map_err(ProvisionError::io("cannot create", dest))?;
    let bar = progress_bar(pin, total);
    let mut hasher = Hasher::default();
    let mut buf = vec![0u8; 64 * 1024];
    let mut got: u64 = 0;
    loop {
        if CANCELLED.load(Ordering::Relaxed) {
            bar.abandon();
            return Err(ProvisionError::Interrupted);
        }
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                bar.abandon();
                return Err(ProvisionError::Read {
                    url: pin.url,
                    got,
                    source: e,
                });
            }
        };
        let chunk = buf.get(..n).unwrap_or_default();
        hasher.update(chunk);
        file.write_all(chunk)
            .map_err(ProvisionError::io("cannot write", dest))?;
        got += n as u64;
        bar.set_position(got);
    }
    bar.finish();
    if total.is_some_and(|t| t != got) {
        return Err(ProvisionError::Short {
            url: pin.url,
            got,
            total: total.unwrap_or_default(),
        });
    }
    file.sync_all().map_err(ProvisionError::io("cannot write", dest))?;
    hasher.check(pin.integrity)?;
    Ok(got)
}

/// Size, speed and time left on a terminal; nothing when stderr is not one (tests, CI logs, pipes).
fn progress_bar(pin: &Pin, total: Option<u64>) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::with_draw_target(total, indicatif::ProgressDrawTarget::stderr());
    let template = if total.is_some() {
        "{msg} {wide_bar} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} {eta}"
    } else {
        "{msg} {spinner} {binary_bytes} {binary_bytes_per_sec}"
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar.set_message(pin.package());
    bar
}
