//! Public root certificates pgtls ships: the three Azure names for its 2026 CA rotation (DigiCert Global Root CA,
//! DigiCert Global Root G2, Microsoft RSA Root Certificate Authority 2017). Embedded, each checked against the
//! SHA-256 fingerprint its owner publishes, so a bundle written from them needs no network and does not depend on
//! the system store, which is dropping DigiCert Global Root CA for web use.

use chrono::{DateTime, Utc};
use openssl::error::ErrorStack;
use openssl::stack::Stack;
use openssl::x509::store::X509Store;
use openssl::x509::{X509, X509StoreContext};
use serde::Serialize;

use crate::probe::certinfo;

/// A root as shipped: its name, the PEM from Debian's ca-certificates (Mozilla's list) and the published pin.
#[derive(Debug, Clone, Copy)]
pub struct PinnedRoot {
    pub name: &'static str,
    pub pem: &'static str,
    /// Colon-separated upper-case hex, as `openssl x509 -fingerprint -sha256` and Microsoft's table print it.
    pub sha256: &'static str,
}

/// The order Azure's guidance lists them in.
pub const AZURE: [PinnedRoot; 3] = [
    PinnedRoot {
        name: "DigiCert Global Root CA",
        pem: include_str!("../../../assets/roots/DigiCert_Global_Root_CA.pem"),
        sha256: "43:48:A0:E9:44:4C:78:CB:26:5E:05:8D:5E:89:44:B4:D8:4F:96:62:BD:26:DB:25:7F:89:34:A4:43:C7:01:61",
    },
    PinnedRoot {
        name: "DigiCert Global Root G2",
        pem: include_str!("../../../assets/roots/DigiCert_Global_Root_G2.pem"),
        sha256: "CB:3C:CB:B7:60:31:E5:E0:13:8F:8D:D3:9A:23:F9:DE:47:FF:C3:5E:43:C1:14:4C:EA:27:D4:6A:5A:B1:CB:5F",
    },
    PinnedRoot {
        name: "Microsoft RSA Root Certificate Authority 2017",
        pem: include_str!("../../../assets/roots/Microsoft_RSA_Root_Certificate_Authority_2017.pem"),
        sha256: "C7:41:F7:0F:4B:2A:8D:88:BF:2E:71:C1:41:22:EF:53:EF:10:EB:A0:CF:A5:E6:4C:FA:20:F4:18:85:30:73:E0",
    },
];

/// An embedded root that cannot be used; `name` is the root's.
#[derive(Debug, thiserror::Error)]
pub enum RootError {
    /// The embedded PEM does not parse.
    #[error("{name}: embedded PEM: {source}")]
    Pem { name: &'static str, source: ErrorStack },
    /// The embedded certificate is not the pinned one.
    #[error("{name}: embedded certificate has SHA-256 {actual}, not the published {published}")]
    Fingerprint {
        name: &'static str,
        actual: String,
        published: &'static str,
    },
    /// The certificate could not be written as PEM.
    #[error("{name}: {source}")]
    Encode { name: &'static str, source: ErrorStack },
}

impl PinnedRoot {
    /// The certificate, refused unless its fingerprint is the pinned one.
    pub fn certificate(&self) -> Result<X509, RootError> {
        let cert = X509::from_pem(self.pem.as_bytes()).map_err(|source| RootError::Pem {
            name: self.name,
            source,
        })?;
        let actual = sha256(&cert);
        if actual != self.sha256 {
            return Err(RootError::Fingerprint {
                name: self.name,
                actual,
                published: self.sha256,
            });
        }
        Ok(cert)
    }
}

pub fn sha256(cert: &X509) -> String {
    certinfo::describe(cert, Utc::now()).sha256
}

/// The three roots in one PEM, each after a comment line naming it (OpenSSL and libpq skip text outside blocks).
pub fn azure_bundle() -> Result<String, RootError> {
    let mut out = String::from(
        "# Root CAs for Azure Database for PostgreSQL (ICA rotation 2026), written by pgtls bundle --azure\n",
    );
    for root in &AZURE {
        let cert = root.certificate()?;
        let pem = cert.to_pem().map_err(|source| RootError::Encode {
            name: root.name,
            source,
        })?;
        out.push_str(&format!("# {} (SHA-256 {})\n", root.name, root.sha256));
        out.push_str(&String::from_utf8_lossy(&pem));
    }
    Ok(out)
}

/// What a bundle holds of the three.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RootPresence {
    pub name: &'static str,
    pub sha256: &'static str,
    /// present, missing, or expired.
    pub state: &'static str,
    pub not_after: DateTime<Utc>,
    /// The bundle holds a certificate with this root's name and key but other bytes (a re-encoding or re-issue):
    /// OpenSSL treats it as the same anchor.
    pub other_certificate: Option<String>,
    /// The system store trusts this root (only a cross-check: stores drop roots for web use that Azure still needs).
    pub in_system_store: Option<bool>,
}

/// For each of the three: in `bundle` (by name and key, as OpenSSL matches an anchor), expired at `now`, and in the
/// system store when one is given.
pub fn check_azure(
    bundle: &[X509],
    now: DateTime<Utc>,
    system: Option<&X509Store>,
) -> Result<Vec<RootPresence>, RootError> {
    AZURE
        .iter()
        .map(|root| {
            let cert = root.certificate()?;
            let info = certinfo::describe(&cert, now);
            let same_anchor = bundle.iter().find(|c| same_name_and_key(c, &cert));
            let state = match same_anchor {
                None => "missing",
                Some(_) if info.not_after < now => "expired",
                Some(_) => "present",
            };
            Ok(RootPresence {
                name: root.name,
                sha256: root.sha256,
                state,
                not_after: info.not_after,
                other_certificate: same_anchor.map(sha256).filter(|fp| fp != root.sha256),
                in_system_store: system.map(|store| trusted_by(store, &cert)),
            })
        })
        .collect()
}

fn same_name_and_key(a: &X509, b: &X509) -> bool {
    let names = a
        .subject_name()
        .try_cmp(b.subject_name())
        .map(|o| o.is_eq())
        .unwrap_or(false);
    let keys = match (a.public_key(), b.public_key()) {
        (Ok(x), Ok(y)) => x.public_eq(&y),
        _ => false,
    };
    names && keys
}

/// The system's trusted roots, loaded once per process and shared with the probe's verification.
pub fn system_store() -> Option<std::sync::Arc<X509Store>> {
    crate::conn::tls_context::system_store()
}

/// A self-signed root verifies against a store exactly when the store holds it as an anchor.
fn trusted_by(store: &X509Store, root: &X509) -> bool {
    let Ok(mut ctx) = X509StoreContext::new() else {
        return false;
    };
    let Ok(empty) = Stack::new() else {
        return false;
    };
    ctx.init(store, root, &empty, |c| c.verify_cert()).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::x509::store::X509StoreBuilder;

    #[test]
    fn the_embedded_roots_match_their_published_fingerprints() {
        for root in &AZURE {
            let cert = root.certificate().unwrap();
            assert_eq!(sha256(&cert), root.sha256, "{}", root.name);
            let info = certinfo::describe(&cert, Utc::now());
            assert!(info.subject.ends_with(&format!("CN={}", root.name)), "{}", info.subject);
            assert!(info.self_signed && info.is_ca);
        }
    }

    #[test]
    fn a_tampered_pem_is_refused() {
        let wrong = PinnedRoot {
            sha256: AZURE[1].sha256,
            ..AZURE[0]
        };
        assert!(
            wrong
                .certificate()
                .unwrap_err()
                .to_string()
                .contains("not the published")
        );
    }

    #[test]
    fn a_root_absent_from_the_system_store_is_said_not_held_against_the_bundle() {
        let bundle = crate::probe::bundles::parse_bundle(azure_bundle().unwrap().as_bytes()).unwrap();
        let empty = X509StoreBuilder::new().unwrap().build();
        let checked = check_azure(&bundle, Utc::now(), Some(&empty)).unwrap();
        assert!(
            checked
                .iter()
                .all(|r| r.state == "present" && r.in_system_store == Some(false))
        );
        let holding_g2 = {
            let mut b = X509StoreBuilder::new().unwrap();
            b.add_cert(bundle[1].clone()).unwrap();
            b.build()
        };
        let checked = check_azure(&bundle, Utc::now(), Some(&holding_g2)).unwrap();
        assert_eq!(
            checked.iter().map(|r| r.in_system_store).collect::<Vec<_>>(),
            vec![Some(false), Some(true), Some(false)]
        );
    }

    #[test]
    fn check_names_what_is_missing() {
        let bundle = crate::probe::bundles::parse_bundle(azure_bundle().unwrap().as_bytes()).unwrap();
        assert_eq!(bundle.len(), 3);
        let all = check_azure(&bundle, Utc::now(), None).unwrap();
        assert!(
            all.iter()
                .all(|r| r.state == "present" && r.other_certificate.is_none())
        );
        let two = check_azure(&bundle[1..], Utc::now(), None).unwrap();
        assert_eq!(
            two.iter().map(|r| r.state).collect::<Vec<_>>(),
            vec!["missing", "present", "present"]
        );
        let later = "2032-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(check_azure(&bundle, later, None).unwrap()[0].state, "expired");
    }
}
