//! Does the chain the server sent verify, against which roots, and does it name the host?

use std::path::Path;

use openssl::stack::Stack;
use openssl::x509::store::{X509Store, X509StoreBuilder};
use openssl::x509::{X509, X509StoreContext};
use serde::{Deserialize, Serialize};

use super::certinfo::name;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// What was checked against, e.g. `root file "/etc/ssl/pg/root.crt"` or `system store`.
    pub against: String,
    pub verified: bool,
    /// OpenSSL's reason when not verified.
    pub error: Option<String>,
    /// Subject of the trusted root the chain leads to.
    pub anchor: Option<String>,
}

/// Verify `chain` (leaf first, as sent) against `store`. The sent intermediates are offered as untrusted helpers.
pub fn verify(chain: &[X509], store: &X509Store, against: String) -> Verdict {
    let Some(leaf) = chain.first() else {
        return Verdict {
            against,
            verified: false,
            error: Some("the server sent no certificate".into()),
            anchor: None,
        };
    };
    let outcome = (|| -> Result<(bool, Option<String>, Option<String>), openssl::error::ErrorStack> {
        let mut untrusted = Stack::new()?;
        for c in chain.iter().skip(1) {
            untrusted.push(c.clone())?;
        }
        let mut ctx = X509StoreContext::new()?;
        ctx.init(store, leaf, &untrusted, |c| {
            let ok = c.verify_cert()?;
            let error = (!ok).then(|| c.error().error_string().to_string());
            let anchor = if ok {
                c.chain()
                    .and_then(|ch| ch.iter().last().map(|root| name(root.subject_name())))
            } else {
                None
            };
            Ok((ok, error, anchor))
        })
    })();
    match outcome {
        Ok((verified, error, anchor)) => Verdict {
            against,
            verified,
            error,
            anchor,
        },
        Err(e) => Verdict {
            against,
            verified: false,
            error: Some(e.to_string()),
            anchor: None,
        },
    }
}

pub fn bundle_store(certs: &[X509]) -> Result<X509Store, openssl::error::ErrorStack> {
    let mut builder = X509StoreBuilder::new()?;
    for c in certs {
        builder.add_cert(c.clone())?;
    }
    Ok(builder.build())
}

/// The system's trusted roots, loaded once per process and shared (see [`crate::conn::tls_context::system_store`]).
pub fn system_store() -> Option<std::sync::Arc<X509Store>> {
    crate::conn::tls_context::system_store()
}

/// Why a root file gave no certificates; one line naming the file.
#[derive(Debug, thiserror::Error)]
pub enum RootFileError {
    /// The file cannot be read.
    #[error("cannot read root file \"{}\": {source}", path.display())]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// The file is not PEM.
    #[error("root file \"{}\" is not PEM: {source}", path.display())]
    NotPem {
        path: std::path::PathBuf,
        source: openssl::error::ErrorStack,
    },
    /// The file holds no certificate.
    #[error("root file \"{}\" holds no certificate", path.display())]
    Empty { path: std::path::PathBuf },
}

pub fn read_bundle(path: &Path) -> Result<Vec<X509>, RootFileError> {
    let pem = std::fs::read(path).map_err(|source| RootFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let certs = X509::stack_from_pem(&pem).map_err(|source| RootFileError::NotPem {
        path: path.to_path_buf(),
        source,
    })?;
    if certs.is_empty() {
        return Err(RootFileError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// One certificate of the user's root bundle and what it is to the server's chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleEntry {
    pub subject: String,
    pub self_signed: bool,
    pub is_ca: bool,
    /// The root the server's chain leads to.
    pub anchors_server: bool,
    /// An intermediate or leaf that the server sends: trusting it directly is pinning, which breaks on rotation.
    pub pinned_from_chain: bool,
}

pub fn bundle_entries(
    bundle: &[X509],
    server_chain: &[X509],
    anchor: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<BundleEntry> {
    let chain_fingerprints: Vec<Vec<u8>> = server_chain
        .iter()
        .filter_map(|c| {
            c.digest(openssl::hash::MessageDigest::sha256())
                .ok()
                .map(|d| d.to_vec())
        })
        .collect();
    bundle
        .iter()
        .map(|c| {
            let info = super::certinfo::describe(c, now);
            let fp = c
                .digest(openssl::hash::MessageDigest::sha256())
                .map(|d| d.to_vec())
                .unwrap_or_default();
            let in_chain = chain_fingerprints.contains(&fp);
            BundleEntry {
                anchors_server: anchor == Some(info.subject.as_str()) && info.self_signed,
                pinned_from_chain: in_chain && !info.self_signed,
                subject: info.subject,
                self_signed: info.self_signed,
                is_ca: info.is_ca,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::certs::{CertSpec, issue};

    #[test]
    fn host_names_match_like_libpq() {
        let ca = issue(&CertSpec::ca("Names CA"), None).unwrap();
        let leaf = issue(
            &CertSpec::server("db.example.com", &["db.example.com", "*.pg.example.com"], &["10.0.0.5"]),
            Some(&ca),
        )
        .unwrap();
        let matches = |host: &str| crate::conn::tls::verify_host(&leaf.cert, host).is_ok();
        assert!(matches("DB.example.com"));
        assert!(matches("east.pg.example.com"));
        assert!(!matches("a.b.pg.example.com"), "a wildcard covers one label");
        assert!(!matches("pg.example.com"));
        assert!(matches("10.0.0.5"));
        assert!(!matches("10.0.0.6"));
        let e = crate::conn::tls::verify_host(&leaf.cert, "10.0.0.6").unwrap_err();
        assert!(
            matches!(e, crate::conn::tls::HostError::Mismatch { others: 2, .. }),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "server certificate for \"db.example.com\" (and 2 other names) does not match host name \"10.0.0.6\""
        );
    }

    #[test]
    fn verifies_against_a_bundle_and_names_the_anchor() {
        let root = issue(&CertSpec::ca("Right Root"), None).unwrap();
        let other = issue(&CertSpec::ca("Other Root"), None).unwrap();
        let leaf = issue(&CertSpec::server("db", &["db"], &[]), Some(&root)).unwrap();
        let chain = vec![leaf.cert.clone()];
        let store = bundle_store(&[other.cert.clone(), root.cert.clone()]).unwrap();
        let ok = verify(&chain, &store, "bundle".into());
        assert!(ok.verified, "{ok:?}");
        assert_eq!(ok.anchor.as_deref(), Some("O=pgtls lab, CN=Right Root"));
        let wrong = verify(
            &chain,
            &bundle_store(std::slice::from_ref(&other.cert)).unwrap(),
            "other".into(),
        );
        assert!(!wrong.verified);
        assert!(wrong.error.unwrap().contains("local issuer"));
        let entries = bundle_entries(
            &[other.cert, root.cert, leaf.cert.clone()],
            &chain,
            ok.anchor.as_deref(),
            chrono::Utc::now(),
        );
        assert_eq!(
            entries.iter().map(|e| e.anchors_server).collect::<Vec<_>>(),
            vec![false, true, false]
        );
        assert!(entries[2].pinned_from_chain, "the leaf in the bundle is pinning");
    }
}
