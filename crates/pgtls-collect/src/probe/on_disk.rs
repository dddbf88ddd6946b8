//! The server's certificate file (`ssl_cert_file`, read through `pg_read_binary_file` when the role may) against
//! the chain the server presents: after a certificate is replaced on disk the server goes on presenting the old
//! one until `pg_reload_conf()` (or a reload that failed to load the new one). Pure: the caller reads the file.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::certinfo::{self, CertInfo};
use super::{Finding, ProbeReport};
use crate::analysis::alerts::Severity;

/// At most this much of the file is read: a certificate chain is a few kB.
pub const MAX_CERT_FILE: i64 = 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnDisk {
    /// `ssl_cert_file` as the server reports it (relative paths are under the data directory).
    pub path: String,
    #[serde(flatten)]
    pub verdict: OnDiskVerdict,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum OnDiskVerdict {
    /// The file holds the certificates presented.
    Same,
    /// The file holds other certificates: installed, not (successfully) reloaded.
    Differs {
        /// The leaf itself differs, not only the intermediates after it.
        leaf_differs: bool,
        disk_subject: String,
        disk_sha256: String,
        disk_not_after: DateTime<Utc>,
    },
    /// The role may not read it, or the file is not a PEM chain.
    NotCompared { reason: String },
}

/// Compare the file's certificates with the first as many presented (a server may append certificates from its
/// CA file when the chain file holds only the leaf).
pub fn compare(path: &str, disk: &[u8], presented: &[CertInfo], now: DateTime<Utc>) -> OnDisk {
    let verdict = match super::bundles::parse_bundle(disk) {
        Err(e) => OnDiskVerdict::NotCompared {
            reason: format!("the file is not a PEM certificate chain: {e}"),
        },
        Ok(certs) => {
            let disk: Vec<CertInfo> = certs.iter().map(|c| certinfo::describe(c, now)).collect();
            let same = disk.len() <= presented.len() && disk.iter().zip(presented).all(|(d, p)| d.sha256 == p.sha256);
            match (same, disk.first()) {
                (true, _) => OnDiskVerdict::Same,
                (false, Some(leaf)) => OnDiskVerdict::Differs {
                    leaf_differs: presented.first().is_none_or(|p| p.sha256 != leaf.sha256),
                    disk_subject: leaf.subject.clone(),
                    disk_sha256: leaf.sha256.clone(),
                    disk_not_after: leaf.not_after,
                },
                (false, None) => OnDiskVerdict::NotCompared {
                    reason: "the file holds no certificate".to_string(),
                },
            }
        }
    };
    OnDisk {
        path: path.to_string(),
        verdict,
    }
}

impl OnDisk {
    /// The sentence the screen and the finding use.
    pub fn summary(&self) -> String {
        match &self.verdict {
            OnDiskVerdict::Same => format!("the certificate on disk ({}) is the one presented", self.path),
            OnDiskVerdict::Differs {
                leaf_differs: true,
                disk_subject,
                disk_not_after,
                ..
            } => format!(
                "new certificate installed, server not reloaded: {} holds \"{disk_subject}\" (until {}), the server \
                 still presents the old one (SELECT pg_reload_conf(), or see the server log if a reload failed)",
                self.path,
                disk_not_after.format("%Y-%m-%d")
            ),
            OnDiskVerdict::Differs { .. } => format!(
                "new certificate chain installed, server not reloaded: {} holds other intermediates than the server \
                 presents (SELECT pg_reload_conf())",
                self.path
            ),
            OnDiskVerdict::NotCompared { reason } => format!("the certificate on disk was not compared: {reason}"),
        }
    }
}

/// Add the comparison to a finished report, with a warning when the file differs.
pub fn attach(report: &mut ProbeReport, on_disk: OnDisk) {
    if matches!(on_disk.verdict, OnDiskVerdict::Differs { .. }) {
        report.findings.push(Finding {
            severity: Severity::Warning,
            message: on_disk.summary(),
        });
        report.findings.sort_by_key(|f| f.severity);
    }
    report.on_disk = Some(on_disk);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::certs::{CertSpec, issue};

    #[test]
    fn a_replaced_leaf_or_chain_is_told_apart_from_the_one_presented() {
        let now = Utc::now();
        let ca = issue(&CertSpec::ca("Disk Root"), None).unwrap();
        let old = issue(&CertSpec::server("db", &["db"], &[]), Some(&ca)).unwrap();
        let new = issue(&CertSpec::server("db", &["db"], &[]), Some(&ca)).unwrap();
        let presented = vec![certinfo::describe(&old.cert, now), certinfo::describe(&ca.cert, now)];
        let pem =
            |certs: &[&openssl::x509::X509]| -> Vec<u8> { certs.iter().flat_map(|c| c.to_pem().unwrap()).collect() };
        assert_eq!(
            compare("server.crt", &pem(&[&old.cert]), &presented, now).verdict,
            OnDiskVerdict::Same
        );
        let differs = compare("server.crt", &pem(&[&new.cert]), &presented, now);
        assert!(matches!(
            differs.verdict,
            OnDiskVerdict::Differs { leaf_differs: true, .. }
        ));
        assert!(
            differs
                .summary()
                .starts_with("new certificate installed, server not reloaded")
        );
        let other_chain = compare("server.crt", &pem(&[&old.cert, &old.cert]), &presented, now);
        assert!(matches!(
            other_chain.verdict,
            OnDiskVerdict::Differs {
                leaf_differs: false,
                ..
            }
        ));
        assert!(matches!(
            compare("server.crt", b"garbage", &presented, now).verdict,
            OnDiskVerdict::NotCompared { .. }
        ));
    }
}
