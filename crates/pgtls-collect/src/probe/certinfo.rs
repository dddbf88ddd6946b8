//! What a DBA wants to know about each certificate in the chain, as `openssl x509 -text` would say it.

use chrono::{DateTime, TimeZone, Utc};
use openssl::hash::MessageDigest;
use openssl::pkey::Id;
use openssl::x509::X509;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertInfo {
    /// `CN=..., O=...` in the certificate's order.
    pub subject: String,
    pub issuer: String,
    /// Hex, upper case, as openssl prints it.
    pub serial: String,
    /// DNS names and IP addresses from subjectAltName.
    pub sans: Vec<String>,
    pub key_type: String,
    pub key_bits: u32,
    pub signature_algorithm: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    /// Whole days from `now` to not_after; negative once expired.
    pub days_left: i64,
    /// SHA-256 of the DER encoding, colon-separated upper-case hex (openssl's -fingerprint form).
    pub sha256: String,
    pub is_ca: bool,
    pub self_signed: bool,
}

pub fn describe(cert: &X509, now: DateTime<Utc>) -> CertInfo {
    let not_before = asn1_to_utc(cert.not_before());
    let not_after = asn1_to_utc(cert.not_after());
    let (key_type, key_bits) = cert
        .public_key()
        .map(|k| {
            let kind = match k.id() {
                Id::RSA => "RSA".to_string(),
                Id::EC => "EC".to_string(),
                Id::ED25519 => "Ed25519".to_string(),
                Id::ED448 => "Ed448".to_string(),
                Id::DSA => "DSA".to_string(),
                other => format!("{other:?}"),
            };
            (kind, k.bits())
        })
        .unwrap_or_else(|_| ("unknown".to_string(), 0));
    let sha256 = cert
        .digest(MessageDigest::sha256())
        .map(|d| d.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":"))
        .unwrap_or_default();
    let serial = cert
        .serial_number()
        .to_bn()
        .ok()
        .and_then(|bn| bn.to_hex_str().ok().map(|s| s.to_string()))
        .unwrap_or_default();
    let self_signed = cert
        .subject_name()
        .try_cmp(cert.issuer_name())
        .map(|o| o.is_eq())
        .unwrap_or(false)
        && cert.public_key().and_then(|k| cert.verify(&k)).unwrap_or(false);
    CertInfo {
        subject: name(cert.subject_name()),
        issuer: name(cert.issuer_name()),
        serial,
        sans: crate::conn::tls::certificate_names(cert)
            .into_iter()
            .filter(|_| cert.subject_alt_names().is_some())
            .collect(),
        key_type,
        key_bits,
        signature_algorithm: cert
            .signature_algorithm()
            .object()
            .nid()
            .long_name()
            .unwrap_or("unknown")
            .to_string(),
        not_before,
        not_after,
        days_left: (not_after - now).num_days(),
        sha256,
        is_ca: is_ca(cert),
        self_signed,
    }
}

pub use crate::conn::tls::x509_name as name;

/// basicConstraints CA:TRUE, read from the text form because the crate exposes no accessor.
fn is_ca(cert: &X509) -> bool {
    cert.to_text()
        .map(|t| String::from_utf8_lossy(&t).contains("CA:TRUE"))
        .unwrap_or(false)
}

fn asn1_to_utc(t: &openssl::asn1::Asn1TimeRef) -> DateTime<Utc> {
    let epoch = openssl::asn1::Asn1Time::from_unix(0);
    let diff = epoch.and_then(|e| e.diff(t));
    match diff {
        Ok(d) => Utc
            .timestamp_opt(i64::from(d.days) * 86_400 + i64::from(d.secs), 0)
            .single()
            .unwrap_or_default(),
        Err(_) => DateTime::<Utc>::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::certs::{CertSpec, issue};

    #[test]
    fn describes_a_lab_server_certificate() {
        let ca = issue(&CertSpec::ca("Test Root"), None).unwrap();
        let server = issue(
            &CertSpec::server("db.example", &["db.example"], &["127.0.0.1"]),
            Some(&ca),
        )
        .unwrap();
        let info = describe(&server.cert, Utc::now());
        assert_eq!(info.subject, "O=pgtls lab, CN=db.example");
        assert_eq!(info.issuer, "O=pgtls lab, CN=Test Root");
        assert_eq!(info.sans, vec!["db.example", "127.0.0.1"]);
        assert_eq!((info.key_type.as_str(), info.key_bits), ("RSA", 2048));
        assert_eq!(info.signature_algorithm, "sha256WithRSAEncryption");
        assert!((364..=365).contains(&info.days_left), "{}", info.days_left);
        assert_eq!(info.sha256.len(), 32 * 3 - 1);
        assert!(!info.is_ca && !info.self_signed);
        let root = describe(&ca.cert, Utc::now());
        assert!(root.is_ca && root.self_signed);
        assert!(root.sans.is_empty());
    }
}
