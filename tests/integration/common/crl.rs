//! Certificate revocation lists for tests, signed by a CA whose key we hold (the lab's, or one made in the test).
//!
//! The openssl crate (0.10) has no CRL builder, so this drives the `openssl` command line tool the way a small CA
//! would: an `index.txt` database, `openssl ca -revoke` for each revoked certificate, then `openssl ca -gencrl`.
//! `.ci/run` installs the tool (Debian package `openssl`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Write a PEM CRL to `out`, issued by `ca_cert`/`ca_key`, listing `revoked` (PEM certificates issued by that CA;
/// empty for a CRL that revokes nothing). Valid from now for 30 days.
pub fn write_crl(ca_cert: &Path, ca_key: &Path, revoked: &[&Path], out: &Path) {
    let work = tempfile::tempdir().expect("temp dir for the CRL database");
    let w = work.path();
    std::fs::write(w.join("index.txt"), "").unwrap();
    std::fs::write(w.join("crlnumber"), "01\n").unwrap();
    let config = w.join("ca.cnf");
    std::fs::write(
        &config,
        format!(
            "[ca]\ndefault_ca = lab\n[lab]\ndatabase = {}\ncrlnumber = {}\ncertificate = {}\nprivate_key = {}\n\
             default_md = sha256\ndefault_crl_days = 30\n",
            w.join("index.txt").display(),
            w.join("crlnumber").display(),
            ca_cert.display(),
            ca_key.display()
        ),
    )
    .unwrap();
    for cert in revoked {
        openssl(&["ca", "-config", path(&config), "-revoke", path(cert)]);
    }
    openssl(&["ca", "-config", path(&config), "-gencrl", "-out", path(out)]);
}

/// The file name OpenSSL's hashed-directory lookup (libpq's `sslcrldir`) expects for this CRL: `<issuer hash>.r0`.
pub fn hashed_name(crl: &Path) -> String {
    let hash = openssl(&["crl", "-hash", "-noout", "-in", path(crl)]);
    format!("{}.r0", hash.trim())
}

/// A directory for `sslcrldir` holding `crl` under its hashed name.
pub fn write_crl_dir(crl: &Path, dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::copy(crl, dir.join(hashed_name(crl))).unwrap();
    dir.to_path_buf()
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

fn openssl(args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("the openssl command line tool is needed to make CRLs (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
