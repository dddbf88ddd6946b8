//! TLS helpers shared by the connection and the probe: the SSLRequest bytes, X.509 names, and libpq's
//! rules for matching a server certificate to the host name.

use std::net::IpAddr;

use openssl::nid::Nid;
use openssl::ssl::SslVersion;
use openssl::x509::{X509NameRef, X509Ref};

/// Length 8, request code 80877103: PostgreSQL's STARTTLS.
pub const SSL_REQUEST: [u8; 8] = [0x00, 0x00, 0x00, 0x08, 0x04, 0xD2, 0x16, 0x2F];

/// `CN=x, O=y` from an X.509 name (raw: escape before printing).
pub fn x509_name(name: &X509NameRef) -> String {
    name.entries()
        .filter_map(|e| {
            let key = e.object().nid().short_name().ok()?;
            let value = e.data().to_string().ok()?;
            Some(format!("{key}={value}"))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// DNS names and IP addresses in a certificate's subjectAltName, then its CN if there are none.
pub fn certificate_names(cert: &X509Ref) -> Vec<String> {
    let mut names: Vec<String> = cert
        .subject_alt_names()
        .map(|sans| {
            sans.iter()
                .filter_map(|n| {
                    n.dnsname()
                        .map(str::to_string)
                        .or_else(|| n.ipaddress().and_then(ip_text))
                })
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        names.extend(common_names(cert));
    }
    names
}

fn common_names(cert: &X509Ref) -> impl Iterator<Item = String> + '_ {
    cert.subject_name()
        .entries_by_nid(Nid::COMMONNAME)
        .filter_map(|e| e.data().to_string().ok())
}

fn ip_text(bytes: &[u8]) -> Option<String> {
    match bytes.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?).to_string()),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?).to_string()),
        _ => None,
    }
}

/// The OpenSSL version bound for a libpq protocol name (`TLSv1` .. `TLSv1.3`).
pub fn ssl_version(name: &str) -> Option<SslVersion> {
    match name {
        "TLSv1" => Some(SslVersion::TLS1),
        "TLSv1.1" => Some(SslVersion::TLS1_1),
        "TLSv1.2" => Some(SslVersion::TLS1_2),
        "TLSv1.3" => Some(SslVersion::TLS1_3),
        _ => None,
    }
}

/// libpq's `wildcard_certificate_match`: only a leading `*.`, matching exactly one label.
fn wildcard_matches(pattern: &str, host: &str) -> bool {
    let Some(suffix) = pattern.strip_prefix('*') else {
        return false;
    };
    if pattern.len() < 3 || !suffix.starts_with('.') || pattern.len() > host.len() {
        return false;
    }
    let start = host.len() - suffix.len();
    let Some(tail) = host.get(start..) else {
        return false;
    };
    // The first dot of the host must be the one the pattern's suffix begins with.
    tail.eq_ignore_ascii_case(suffix) && host.find('.').is_some_and(|dot| dot >= start)
}

/// Why verify-full's host-name check failed, in libpq's words. Outside text (names, the host) is escaped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("host name must be specified for a verified SSL connection")]
    NoHost,
    #[error("SSL certificate's name contains embedded null")]
    EmbeddedNull,
    #[error("certificate contains IP address with invalid length {0}")]
    BadIpLength(usize),
    /// The server sent no certificate to check.
    #[error("could not get server certificate")]
    NoCertificate,
    /// The certificate names nothing of the host's kind.
    #[error("could not get server's host name from server certificate")]
    NoName,
    /// `others` is how many names were examined besides the first.
    #[error(
        "server certificate for \"{first}\"{} does not match host name \"{host}\"",
        match .others { 0 => String::new(), 1 => " (and 1 other name)".to_string(), n => format!(" (and {n} other names)") }
    )]
    Mismatch { first: String, others: usize, host: String },
}

/// One name from the certificate against the host: 1 match, 0 no match, Err for a name libpq rejects.
fn name_matches(name: &[u8], host: &str) -> Result<bool, HostError> {
    if name.contains(&0) {
        return Err(HostError::EmbeddedNull);
    }
    let name = String::from_utf8_lossy(name);
    Ok(name.eq_ignore_ascii_case(host) || wildcard_matches(&name, host))
}

fn ip_matches(bytes: &[u8], host: &str) -> Result<bool, HostError> {
    match (bytes.len(), host.parse::<IpAddr>()) {
        (4 | 16, Ok(addr)) => Ok(ip_text(bytes).is_some_and(|t| t.parse::<IpAddr>().ok() == Some(addr))),
        (4 | 16, Err(_)) => Ok(false),
        (n, _) => Err(HostError::BadIpLength(n)),
    }
}

/// libpq's `pq_verify_peer_name_matches_certificate` for verify-full, with its wording on failure.
///
/// SAN entries of either kind are examined in order; the CN is consulted only when the certificate has
/// no SAN of the host's own kind (dNSName for a name, iPAddress for an IP literal).
pub fn verify_host(cert: &X509Ref, host: &str) -> Result<(), HostError> {
    if host.is_empty() {
        return Err(HostError::NoHost);
    }
    let host_is_ip = host.parse::<IpAddr>().is_ok();
    let mut examined = 0usize;
    let mut first_name: Option<String> = None;
    let mut check_cn = true;
    if let Some(sans) = cert.subject_alt_names() {
        for san in &sans {
            let (result, shown) = if let Some(dns) = san.dnsname() {
                check_cn &= host_is_ip;
                (name_matches(dns.as_bytes(), host), Some(dns.to_string()))
            } else if let Some(ip) = san.ipaddress() {
                check_cn &= !host_is_ip;
                (ip_matches(ip, host), ip_text(ip))
            } else {
                continue;
            };
            examined += 1;
            if first_name.is_none() {
                first_name = shown;
            }
            match result {
                Ok(false) => {}
                Ok(true) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }
    if check_cn && let Some(entry) = cert.subject_name().entries_by_nid(Nid::COMMONNAME).next() {
        examined += 1;
        let cn = entry.data().as_slice();
        if first_name.is_none() {
            first_name = Some(String::from_utf8_lossy(cn).into_owned());
        }
        if name_matches(cn, host)? {
            return Ok(());
        }
    }
    let first = crate::text::escaped(&first_name.unwrap_or_default());
    let host = crate::text::escaped(host);
    Err(match examined {
        0 => HostError::NoName,
        n => HostError::Mismatch {
            first,
            others: n - 1,
            host,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_one_label_only() {
        assert!(wildcard_matches("*.example.com", "db.example.com"));
        assert!(wildcard_matches("*.example.com", "DB.Example.COM"));
        assert!(!wildcard_matches("*.example.com", "a.b.example.com"));
        assert!(!wildcard_matches("*.example.com", "example.com"));
        assert!(!wildcard_matches("*.example.com", ".example.com"));
        assert!(!wildcard_matches("db*.example.com", "db1.example.com"));
        assert!(!wildcard_matches("*", "localhost"));
    }

    #[test]
    fn ip_literals_compare_as_addresses() {
        assert_eq!(ip_matches(&[127, 0, 0, 1], "127.0.0.1"), Ok(true));
        assert_eq!(ip_matches(&[127, 0, 0, 2], "127.0.0.1"), Ok(false));
        assert_eq!(ip_matches(&[127, 0, 0, 1], "localhost"), Ok(false));
        let mut v6 = [0u8; 16];
        v6[15] = 1;
        assert_eq!(ip_matches(&v6, "::1"), Ok(true));
        assert!(ip_matches(&[1, 2, 3], "::1").is_err());
    }
}
