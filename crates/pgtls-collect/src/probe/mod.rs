//! Looking at the server's side of TLS with the openssl crate (native-tls exposes neither the chain
//! nor the version), as `openssl s_client -starttls postgres -showcerts` and sslyze do.

pub mod bundles;
pub mod certinfo;
pub mod on_disk;
pub mod scan;
pub mod starttls;
pub mod verify;

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use self::bundles::BundleVerdict;
use self::certinfo::CertInfo;
use self::scan::{Attempt, CipherResult, Scanner, TlsVersion, VersionResult};
use self::verify::{BundleEntry, Verdict};
use crate::analysis::alerts::Severity;
use crate::conn::params::{ConnParams, RootCert};

/// Where to probe and what to verify against.
#[derive(Debug, Clone)]
pub struct ProbeTarget {
    pub host: String,
    pub hostaddr: Option<std::net::IpAddr>,
    pub port: u16,
    /// The user's root bundle (sslrootcert or ~/.postgresql/root.crt), if any.
    pub root_bundle: Option<PathBuf>,
    pub timeout: Duration,
    /// Certificates expiring within this many days are a warning.
    pub warn_days: i64,
    /// List every accepted TLS 1.2 suite (one connection each) instead of one example per weak kind.
    pub full_cipher_scan: bool,
    /// Root bundles clients ship (`probe --bundle`, `bundles` in the config): judged against the chain sent.
    pub bundles: Vec<PathBuf>,
    /// A fleet's engine: read the chain from the monitor's own handshake as soon as it connects (no connection of
    /// its own), and leave the version and suite scan to the probe schedule.
    pub chain_at_connect: bool,
}

impl ProbeTarget {
    /// The probe goes where the connection goes (the first TCP host) and verifies against the same
    /// root file libpq would use; `None` when every host is a Unix socket (never TLS).
    pub fn from_params(params: &ConnParams, warn_days: i64, full_cipher_scan: bool) -> Option<ProbeTarget> {
        let target = params.targets.iter().find(|t| !t.is_unix_socket())?;
        let root_bundle = match &params.sslrootcert {
            Some(RootCert::File(path)) => Some(path.clone()),
            Some(RootCert::System) => None,
            None => params
                .default_rootcert
                .exists()
                .then(|| params.default_rootcert.clone()),
        };
        Some(ProbeTarget {
            host: target.host.clone(),
            hostaddr: target.hostaddr,
            port: target.port,
            root_bundle,
            timeout: params.connect_timeout.unwrap_or(Duration::from_secs(10)),
            warn_days,
            full_cipher_scan,
            bundles: Vec::new(),
            chain_at_connect: false,
        })
    }
}

/// One TCP connection the probe opened, as the server sees its client: the probe's local address and port.
/// The server logs a failed handshake of each; pgtls must not count those as refused clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeConnection {
    pub address: String,
    pub port: u16,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub severity: Severity,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Negotiated {
    pub version: String,
    pub cipher: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeReport {
    pub host: String,
    pub address: String,
    pub port: u16,
    pub probed_at: DateTime<Utc>,
    /// False when the server answered 'N' to SSLRequest (ssl=off).
    pub accepts_tls: bool,
    /// What a default modern client negotiates.
    pub negotiated: Option<Negotiated>,
    /// As the server sent it, leaf first.
    pub chain: Vec<CertInfo>,
    pub host_name_matches: Option<bool>,
    pub root_bundle: Option<String>,
    pub verify_bundle: Option<Verdict>,
    pub bundle: Vec<BundleEntry>,
    /// One verdict per bundle given with `--bundle` (or in the config), in the order given.
    #[serde(default)]
    pub bundles: Vec<BundleVerdict>,
    /// The dashboard's comparison of `ssl_cert_file` on disk with the chain presented (needs the SQL connection).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_disk: Option<on_disk::OnDisk>,
    pub verify_system: Option<Verdict>,
    pub versions: Vec<VersionResult>,
    /// The preferred TLS 1.2 suite and one example of each weak kind accepted, or every suite with a full scan.
    pub tls12_ciphers: Vec<CipherResult>,
    pub tls12_full_scan: bool,
    /// TCP connections the probe opened; each failed handshake among them logs a line on the server.
    pub connections: u32,
    pub findings: Vec<Finding>,
}

impl ProbeReport {
    /// The certificate as a fleet row shows it: the leaf's days left and the top of the chain (its issuer).
    pub fn certificate(&self) -> crate::analysis::fleet::ProbedCertificate<'_> {
        crate::analysis::fleet::ProbedCertificate {
            days_left: self.chain.first().map(|c| c.days_left),
            chain_root: self.chain.last().map(|c| c.issuer.as_str()),
        }
    }

    pub fn worst(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).min()
    }
}

/// Why a probe gave no report; one line.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The host name does not resolve.
    #[error("cannot resolve {host}: {source}")]
    Resolve { host: String, source: std::io::Error },
    /// A connection failed; `detail` is the socket error in words (see [`io_in_words`]).
    #[error("probe of {host}:{port} failed: {detail}")]
    Io {
        host: String,
        port: u16,
        detail: String,
        source: std::io::Error,
    },
    /// The root file's certificates do not make a store.
    #[error(transparent)]
    Store(openssl::error::ErrorStack),
}

/// Run the whole probe. Blocking: call it from `spawn_blocking`.
pub fn run(target: &ProbeTarget) -> Result<ProbeReport, ProbeError> {
    run_reporting(target, None)
}

/// [`run`], telling `report_to` of each connection before its handshake.
pub fn run_reporting(
    target: &ProbeTarget,
    report_to: Option<tokio::sync::mpsc::Sender<ProbeConnection>>,
) -> Result<ProbeReport, ProbeError> {
    run_with(target, report_to, None, true)
}

/// The chain and what it verifies against, without the version and suite scan: from `seen` (the monitor's own
/// handshake) with no connection at all, else from one handshake. A fleet's start costs each server at most this.
pub fn run_chain(
    target: &ProbeTarget,
    seen: Option<scan::Handshake>,
    report_to: Option<tokio::sync::mpsc::Sender<ProbeConnection>>,
) -> Result<ProbeReport, ProbeError> {
    run_with(target, report_to, seen, false)
}

fn run_with(
    target: &ProbeTarget,
    report_to: Option<tokio::sync::mpsc::Sender<ProbeConnection>>,
    seen: Option<scan::Handshake>,
    scan_all: bool,
) -> Result<ProbeReport, ProbeError> {
    let addr = starttls::resolve(&target.host, target.hostaddr, target.port).map_err(|source| ProbeError::Resolve {
        host: target.host.clone(),
        source,
    })?;
    let mut scanner = Scanner {
        addr,
        host: target.host.clone(),
        timeout: target.timeout,
        connections: 0,
        report_to,
    };
    let io = |e: std::io::Error| ProbeError::Io {
        host: target.host.clone(),
        port: target.port,
        detail: io_in_words(&e, target.timeout),
        source: e,
    };
    let now = Utc::now();
    let mut report = ProbeReport {
        host: target.host.clone(),
        address: addr.ip().to_string(),
        port: target.port,
        probed_at: now,
        accepts_tls: false,
        negotiated: None,
        chain: Vec::new(),
        host_name_matches: None,
        root_bundle: target.root_bundle.as_ref().map(|p| p.display().to_string()),
        verify_bundle: None,
        bundle: Vec::new(),
        bundles: Vec::new(),
        on_disk: None,
        verify_system: None,
        versions: Vec::new(),
        tls12_ciphers: Vec::new(),
        tls12_full_scan: target.full_cipher_scan,
        connections: 0,
        findings: Vec::new(),
    };
    let unjudged = |why: &str| -> Vec<BundleVerdict> {
        target
            .bundles
            .iter()
            .map(|p| BundleVerdict {
                explanation: vec![why.to_string()],
                ..BundleVerdict::undecided(p)
            })
            .collect()
    };
    let first = match seen {
        Some(handshake) => Attempt::Done(handshake),
        None => scanner.attempt(|_| Ok(())).map_err(io)?,
    };
    let chain = match first {
        Attempt::NoTls => {
            report.bundles = unjudged("the server refuses TLS: no client verifies it");
            report.connections = scanner.connections;
            report.findings.push(Finding {
                severity: Severity::Critical,
                message: "the server refuses TLS (answered 'N' to SSLRequest: ssl = off)".into(),
            });
            return Ok(report);
        }
        Attempt::NothingToOffer => {
            report.bundles = unjudged("no TLS handshake was possible, so no chain to verify");
            report.accepts_tls = true;
            report.findings.push(Finding {
                severity: Severity::Critical,
                message: "this OpenSSL offers no cipher suite with default settings: nothing was tried".into(),
            });
            return Ok(report);
        }
        Attempt::Refused(reason) => {
            report.bundles = unjudged("no TLS handshake succeeded, so no chain to verify");
            report.accepts_tls = true;
            report.connections = scanner.connections;
            report.findings.push(Finding {
                severity: Severity::Critical,
                message: format!("no TLS handshake with default settings succeeded: {reason}"),
            });
            return Ok(report);
        }
        Attempt::Done(h) => {
            report.accepts_tls = true;
            report.negotiated = Some(Negotiated {
                version: h.version,
                cipher: h.cipher,
            });
            h.chain
        }
    };
    report.chain = chain.iter().map(|c| certinfo::describe(c, now)).collect();
    if let Some(leaf) = chain.first() {
        // libpq's own rules (SAN kinds, CN fallback, one-label wildcards), as verify-full applies them.
        report.host_name_matches = Some(crate::conn::tls::verify_host(leaf, &target.host).is_ok());
    }
    if let Some(path) = &target.root_bundle {
        match verify::read_bundle(path) {
            Ok(bundle) => {
                let verdict = verify::bundle_store(&bundle)
                    .map(|store| verify::verify(&chain, &store, format!("root file \"{}\"", path.display())))
                    .map_err(ProbeError::Store)?;
                report.bundle = verify::bundle_entries(&bundle, &chain, verdict.anchor.as_deref(), now);
                report.verify_bundle = Some(verdict);
            }
            Err(e) => report.findings.push(Finding {
                severity: Severity::Critical,
                message: e.to_string(),
            }),
        }
    }
    report.bundles = target
        .bundles
        .iter()
        .map(|path| bundles::check(&target.host, target.port, path, &chain, now))
        .collect();
    report.verify_system = verify::system_store().map(|store| verify::verify(&chain, &store, "system store".into()));
    if !scan_all {
        report.connections = scanner.connections;
        report.findings.extend(findings(&report, target.warn_days));
        report.findings.sort_by_key(|f| f.severity);
        return Ok(report);
    }
    report.versions = scan::versions(&mut scanner).map_err(io)?;
    let tls12 = report
        .versions
        .iter()
        .any(|v| v.version == TlsVersion::Tls12 && v.accepted);
    if tls12 {
        report.tls12_ciphers = scan::tls12_ciphers(&mut scanner, target.full_cipher_scan).map_err(io)?;
    }
    report.connections = scanner.connections;
    report.findings.extend(findings(&report, target.warn_days));
    report.findings.sort_by_key(|f| f.severity);
    Ok(report)
}

/// A socket error as a sentence. A read timeout surfaces as `WouldBlock` on Unix ("Resource temporarily
/// unavailable (os error 11)"), which tells a user nothing about what happened.
pub fn io_in_words(e: &std::io::Error, timeout: Duration) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => {
            format!("the server did not answer within {} s", timeout.as_secs_f64())
        }
        ErrorKind::UnexpectedEof => "the server closed the connection without answering".to_string(),
        ErrorKind::ConnectionRefused => "connection refused (is the server running, on this port?)".to_string(),
        ErrorKind::ConnectionReset => "the server reset the connection".to_string(),
        _ => e.to_string(),
    }
}

/// The policy: what in a report deserves a warning or is critical.
pub fn findings(report: &ProbeReport, warn_days: i64) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut add = |severity, message: String| out.push(Finding { severity, message });
    for cert in &report.chain {
        if cert.days_left < 0 {
            add(
                Severity::Critical,
                format!(
                    "certificate \"{}\" expired on {}",
                    cert.subject,
                    cert.not_after.format("%Y-%m-%d")
                ),
            );
        } else if cert.days_left <= warn_days {
            add(
                Severity::Warning,
                format!(
                    "certificate \"{}\" expires in {} days ({})",
                    cert.subject,
                    cert.days_left,
                    cert.not_after.format("%Y-%m-%d")
                ),
            );
        }
    }
    if let Some(v) = &report.verify_bundle
        && !v.verified
    {
        add(
            Severity::Critical,
            format!(
                "the chain does not verify against {}: {}",
                v.against,
                v.error.clone().unwrap_or_default()
            ),
        );
    }
    for b in &report.bundles {
        let what = match (&b.error, b.verifies, b.verifies_ca) {
            (Some(e), _, _) => e.clone(),
            (None, true, _) => continue,
            (None, false, ca) => format!(
                "a client with sslrootcert=\"{}\" would fail verify-full{}: {}",
                b.path,
                if ca { "" } else { " and verify-ca" },
                b.explanation.join("; ")
            ),
        };
        add(Severity::Critical, what);
    }
    if report.host_name_matches == Some(false) {
        add(
            Severity::Warning,
            format!(
                "the certificate does not name \"{}\" (verify-full would fail)",
                report.host
            ),
        );
    }
    for entry in report.bundle.iter().filter(|e| e.pinned_from_chain) {
        add(
            Severity::Warning,
            format!(
                "the root file pins \"{}\", which the server sends: pinning breaks when it rotates",
                entry.subject
            ),
        );
    }
    let old: Vec<&str> = report
        .versions
        .iter()
        .filter(|v| v.accepted && matches!(v.version, TlsVersion::Tls10 | TlsVersion::Tls11))
        .map(|v| v.version.name())
        .collect();
    if !old.is_empty() {
        add(
            Severity::Warning,
            format!("the server accepts {} (deprecated by RFC 8996)", old.join(" and ")),
        );
    }
    let weak: Vec<String> = report
        .tls12_ciphers
        .iter()
        .filter(|c| c.weak())
        .map(|c| {
            let why = match (c.forward_secret, c.aead) {
                (false, false) => "no forward secrecy, not AEAD",
                (false, true) => "no forward secrecy",
                _ => "not AEAD",
            };
            format!("{} ({why})", c.name)
        })
        .collect();
    if !weak.is_empty() {
        add(
            Severity::Warning,
            format!("weak TLS 1.2 suites accepted: {}", weak.join(", ")),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_weak_suites_and_old_versions_become_findings() {
        let now = Utc::now();
        let ca = crate::lab::certs::issue(&crate::lab::certs::CertSpec::ca("Root"), None).unwrap();
        let mut spec = crate::lab::certs::CertSpec::server("db", &["db"], &[]);
        spec.not_after_days = 10;
        let soon = crate::lab::certs::issue(&spec, Some(&ca)).unwrap();
        let report = ProbeReport {
            host: "db".into(),
            address: "127.0.0.1".into(),
            port: 5432,
            probed_at: now,
            accepts_tls: true,
            negotiated: None,
            chain: vec![certinfo::describe(&soon.cert, now)],
            host_name_matches: Some(true),
            root_bundle: None,
            verify_bundle: None,
            bundle: Vec::new(),
            bundles: Vec::new(),
            on_disk: None,
            verify_system: None,
            versions: vec![VersionResult {
                version: TlsVersion::Tls11,
                accepted: true,
                reason: None,
            }],
            tls12_ciphers: vec![
                CipherResult::of("AES128-SHA"),
                CipherResult::of("ECDHE-RSA-AES128-GCM-SHA256"),
            ],
            tls12_full_scan: false,
            connections: 3,
            findings: Vec::new(),
        };
        let f = findings(&report, 30);
        let messages: Vec<&str> = f.iter().map(|f| f.message.as_str()).collect();
        assert!(
            messages[0].contains("expires in 9 days") || messages[0].contains("expires in 10 days"),
            "{messages:?}"
        );
        assert!(messages.iter().any(|m| m.contains("accepts TLSv1.1")));
        assert!(
            messages
                .iter()
                .any(|m| m.contains("AES128-SHA (no forward secrecy, not AEAD)"))
        );
        assert!(!messages.iter().any(|m| m.contains("ECDHE-RSA-AES128-GCM")));
        assert!(f.iter().all(|f| f.severity == Severity::Warning));
    }
}
