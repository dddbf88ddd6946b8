//! Root bundles that clients ship (`sslrootcert=FILE`), judged against the chain the server presents: would a
//! libpq client with exactly that file connect with verify-full, with verify-ca, and which of its roots anchors a
//! path. The decision is pgtls-conn's [`Judge`], the same trust store and OpenSSL call a real connection makes;
//! this module reads the files (they come from outside) and puts the failures into words.

use std::collections::HashMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use openssl::x509::X509;
use serde::{Deserialize, Serialize};

use super::certinfo::{self, CertInfo};
use crate::conn::chain::{ChainFailure, ChainVerdict, Judge, codes};
use crate::conn::params::Environment;
use crate::conn::text::quoted;

/// More certificates than any real bundle (the system store has about 150) means a mistake or an attack.
pub const MAX_BUNDLE_CERTS: usize = 1000;

/// One bundle's verdict, as `probe --format json` writes it under `bundles`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleVerdict {
    pub path: String,
    /// A libpq client with `sslrootcert=path sslmode=verify-full` would connect.
    pub verifies: bool,
    /// ... with `sslmode=verify-ca`.
    pub verifies_ca: bool,
    /// Every certificate in the file, in its order.
    pub roots: Vec<BundleRoot>,
    /// The root the path ends at, when there is one.
    pub anchor: Option<String>,
    pub anchor_sha256: Option<String>,
    /// The path OpenSSL built, leaf to root, each step marked with where it came from: a bundle that holds the
    /// cross-signed copy of an intermediate verifies through its own copy, not the one the server sends.
    #[serde(default)]
    pub path_taken: Vec<PathStep>,
    /// Why verify-ca or verify-full would fail, in words; empty when both succeed.
    pub explanation: Vec<String>,
    /// The file could not be read or loaded (then nothing else is known).
    pub error: Option<String>,
}

impl BundleVerdict {
    /// Nothing decided yet for the bundle at `path`: it verifies nothing until a chain says otherwise.
    pub fn undecided(path: &Path) -> BundleVerdict {
        BundleVerdict {
            path: path.display().to_string(),
            verifies: false,
            verifies_ca: false,
            roots: Vec::new(),
            anchor: None,
            anchor_sha256: None,
            path_taken: Vec::new(),
            explanation: Vec::new(),
            error: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathStep {
    pub subject: String,
    pub issuer: String,
    pub sha256: String,
    /// `server` (sent in the handshake) or `bundle`.
    pub from: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleRoot {
    pub subject: String,
    pub sha256: String,
    pub not_after: DateTime<Utc>,
    /// Verification succeeds with a store holding only this certificate plus what the server sent.
    pub anchors: bool,
    pub self_signed: bool,
    pub expired: bool,
}

/// A bundle file that is not a usable root bundle: the file, and why. One line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bundle {}: {problem}", quoted(&path.display().to_string()))]
pub struct BundleError {
    pub path: std::path::PathBuf,
    pub problem: BundleProblem,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleProblem {
    /// Missing, unreadable, not a regular file or too large.
    #[error(transparent)]
    File(#[from] crate::conn::files::FileError),
    #[error(transparent)]
    Pem(#[from] PemError),
}

/// Why bytes are not a PEM bundle of certificates.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PemError {
    #[error("not PEM text (a DER certificate needs `openssl x509 -inform der -out FILE.pem` first)")]
    NotText,
    /// `line` is 1-based.
    #[error("the block that starts on line {line} never ends")]
    Unterminated { line: usize },
    #[error("more than {MAX_BUNDLE_CERTS} certificates")]
    TooMany,
    #[error("the certificate on line {line} is not a valid certificate")]
    InvalidCertificate { line: usize },
    #[error("holds no PEM certificate")]
    NoPem,
    /// Only other blocks (keys, CRLs): their labels, quoted, at most four.
    #[error("holds no certificate, only {}", .kinds.join(", "))]
    OnlyOtherBlocks { kinds: Vec<String> },
}

/// The certificates of a PEM bundle, read as outside input: a regular file of bounded size, text, every
/// CERTIFICATE block a certificate, at most [`MAX_BUNDLE_CERTS`]. Errors are one line naming the file.
pub fn read_bundle(path: &Path) -> Result<Vec<X509>, BundleError> {
    let fail = |problem: BundleProblem| BundleError {
        path: path.to_path_buf(),
        problem,
    };
    let bytes = crate::conn::files::read_small(path).map_err(|e| fail(e.into()))?;
    parse_bundle(&bytes).map_err(|e| fail(e.into()))
}

pub fn parse_bundle(bytes: &[u8]) -> Result<Vec<X509>, PemError> {
    let text = std::str::from_utf8(bytes).map_err(|_| PemError::NotText)?;
    let mut certs = Vec::new();
    // Kinds, not every block: a hostile file may hold thousands, and the error must stay one short line.
    let mut other_blocks: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    let mut lines = text.lines().enumerate();
    while let Some((number, line)) = lines.next() {
        let Some(label) = line
            .trim()
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        else {
            continue;
        };
        let end = format!("-----END {label}-----");
        let mut block = format!("{}\n", line.trim());
        let mut closed = false;
        for (_, inner) in lines.by_ref() {
            block.push_str(inner.trim());
            block.push('\n');
            if inner.trim() == end {
                closed = true;
                break;
            }
        }
        if !closed {
            return Err(PemError::Unterminated { line: number + 1 });
        }
        // OpenSSL's X509 reader takes these two; anything else (keys, CRLs, TRUSTED CERTIFICATE) is not listed.
        if label != "CERTIFICATE" && label != "X509 CERTIFICATE" {
            if other_blocks.len() < 4 {
                other_blocks.insert(quoted(&label.chars().take(40).collect::<String>()));
            }
            continue;
        }
        if certs.len() == MAX_BUNDLE_CERTS {
            return Err(PemError::TooMany);
        }
        let cert = X509::from_pem(block.as_bytes()).map_err(|_| PemError::InvalidCertificate { line: number + 1 })?;
        certs.push(cert);
    }
    if certs.is_empty() {
        return Err(if other_blocks.is_empty() {
            PemError::NoPem
        } else {
            PemError::OnlyOtherBlocks {
                kinds: other_blocks.into_iter().collect(),
            }
        });
    }
    Ok(certs)
}

/// Why no judge could be built for a bundle file.
#[derive(Debug, thiserror::Error)]
pub enum JudgeForError {
    /// The connection string naming the bundle did not resolve.
    #[error(transparent)]
    Params(#[from] crate::conn::error::ConnInfoError),
    /// The bundle cannot serve as `sslrootcert`: the reason, without libpq's "could not read root certificate
    /// file " prefix (the message names the file already).
    #[error(
        "bundle {}: {}",
        quoted(path),
        source.to_string().trim_start_matches("could not read root certificate file ")
    )]
    Bundle {
        path: String,
        source: Box<crate::conn::error::ConnectError>,
    },
}

/// The judge a libpq client with exactly `sslrootcert=path sslmode=verify-full` would be, connecting to `host`:
/// its parameters are resolved from that connection string alone (no PG* variables, no home directory), so
/// neither our ~/.postgresql/root.crl nor a client certificate creeps in.
pub fn judge_for(host: &str, port: u16, path: &Path) -> Result<Judge, JudgeForError> {
    let value = |v: &str| format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"));
    let conninfo = format!(
        "host={} port={port} sslmode=verify-full sslrootcert={}",
        value(host),
        value(&path.display().to_string())
    );
    let env = Environment::new(HashMap::new(), None, "pgtls");
    let params = crate::conn::resolve(Some(&conninfo), &env)?;
    Judge::new(&params).map_err(|source| JudgeForError::Bundle {
        path: path.display().to_string(),
        source: Box::new(source),
    })
}

/// The verdict for one bundle file against `chain` (leaf first, as the server sent it).
pub fn check(host: &str, port: u16, path: &Path, chain: &[X509], now: DateTime<Utc>) -> BundleVerdict {
    let mut verdict = BundleVerdict::undecided(path);
    let certs = match read_bundle(path) {
        Ok(certs) => certs,
        Err(e) => {
            verdict.error = Some(e.to_string());
            return verdict;
        }
    };
    let judge = match judge_for(host, port, path) {
        Ok(judge) => judge,
        Err(e) => {
            verdict.error = Some(e.to_string());
            return verdict;
        }
    };
    let decided = judge.judge(chain);
    verdict.verifies_ca = decided.verify_ca();
    verdict.verifies = decided.verify_full();
    if let Ok(path) = &decided.chain {
        let sent: Vec<String> = chain.iter().map(|c| certinfo::describe(c, now).sha256).collect();
        verdict.path_taken = path
            .iter()
            .map(|c| {
                let info = certinfo::describe(c, now);
                PathStep {
                    from: if sent.contains(&info.sha256) {
                        "server"
                    } else {
                        "bundle"
                    }
                    .to_string(),
                    subject: info.subject,
                    issuer: info.issuer,
                    sha256: info.sha256,
                }
            })
            .collect();
        if let Some(root) = verdict.path_taken.last() {
            verdict.anchor = Some(root.subject.clone());
            verdict.anchor_sha256 = Some(root.sha256.clone());
        }
    }
    verdict.roots = certs
        .iter()
        .map(|c| {
            let info = certinfo::describe(c, now);
            BundleRoot {
                anchors: judge.anchors(c, chain).is_ok(),
                expired: info.days_left < 0 || info.not_after < now,
                subject: info.subject,
                sha256: info.sha256,
                not_after: info.not_after,
                self_signed: info.self_signed,
            }
        })
        .collect();
    verdict.explanation = explain(&decided, chain, &certs, now);
    verdict
}

/// Why a verdict fails, in a DBA's words: which certificate the server sends, who signed it, and what the
/// bundle would need.
pub fn explain(decided: &ChainVerdict, chain: &[X509], bundle: &[X509], now: DateTime<Utc>) -> Vec<String> {
    let mut out = Vec::new();
    if let Err(failure) = &decided.chain {
        out.push(explain_chain(failure, chain, bundle, now));
    }
    if decided.chain.is_ok()
        && let Err(host) = &decided.host
    {
        out.push(format!("{host} (verify-ca succeeds)"));
    }
    out
}

fn explain_chain(failure: &ChainFailure, chain: &[X509], bundle: &[X509], now: DateTime<Utc>) -> String {
    let info = |c: &X509| certinfo::describe(c, now);
    let sent: Vec<CertInfo> = chain.iter().map(info).collect();
    let roots: Vec<CertInfo> = bundle.iter().map(info).collect();
    let holds = || {
        let names: Vec<String> = roots.iter().map(|r| quoted(&r.subject)).collect();
        match names.len() {
            0 => "nothing".to_string(),
            1 => format!("only {}", names[0]),
            _ => names.join(", "),
        }
    };
    let about = failure.cert.as_ref().map(info);
    match failure.code {
        codes::UNABLE_TO_GET_ISSUER_CERT_LOCALLY
        | codes::UNABLE_TO_GET_ISSUER_CERT
        | codes::UNABLE_TO_VERIFY_LEAF_SIGNATURE
        | codes::SELF_SIGNED_CERT_IN_CHAIN
        | codes::DEPTH_ZERO_SELF_SIGNED_CERT => {
            // The last certificate the server sent that a path could use: the one whose issuer is missing.
            let top = about.or_else(|| sent.last().cloned());
            let Some(top) = top else {
                return format!("no path: {}", failure.reason);
            };
            let is_intermediate = sent.len() > 1 && sent.iter().skip(1).any(|c| c.sha256 == top.sha256);
            let same_key_elsewhere = roots
                .iter()
                .filter(|r| r.subject == top.subject && r.sha256 != top.sha256)
                .map(|r| quoted(&r.issuer))
                .collect::<Vec<_>>();
            let what = if top.self_signed {
                format!("the server sends the self-signed {}", quoted(&top.subject))
            } else if is_intermediate {
                format!(
                    "the server sends the intermediate {} signed by {}",
                    quoted(&top.subject),
                    quoted(&top.issuer)
                )
            } else if sent.len() == 1 {
                format!(
                    "the server sends only its certificate {}, issued by {}, and no intermediate",
                    quoted(&top.subject),
                    quoted(&top.issuer)
                )
            } else {
                format!(
                    "the server sends {} issued by {}",
                    quoted(&top.subject),
                    quoted(&top.issuer)
                )
            };
            let mut text = format!(
                "{what}; this bundle has {}, so no path (OpenSSL: {})",
                holds(),
                failure.reason
            );
            if !top.self_signed {
                text.push_str(&format!("; it needs {}", quoted(&top.issuer)));
            }
            if !same_key_elsewhere.is_empty() {
                text.push_str(&format!(
                    " (the bundle holds {} as signed by {}: a cross-signed copy the server does not send)",
                    quoted(&top.subject),
                    same_key_elsewhere.join(", ")
                ));
            }
            text
        }
        codes::CERT_HAS_EXPIRED => match about {
            Some(c) => format!("{} expired on {}", quoted(&c.subject), c.not_after.format("%Y-%m-%d")),
            None => format!("a certificate expired: {}", failure.reason),
        },
        codes::CERT_NOT_YET_VALID => match about {
            Some(c) => format!(
                "{} is not valid before {}",
                quoted(&c.subject),
                c.not_before.format("%Y-%m-%d")
            ),
            None => format!("a certificate is not yet valid: {}", failure.reason),
        },
        _ => match about {
            Some(c) => format!(
                "{} (at {}, depth {})",
                failure.reason,
                quoted(&c.subject),
                failure.depth
            ),
            None => failure.reason.clone(),
        },
    }
}

/// What a fleet view needs per target (issue 18, item 4): the chain as presented, by fingerprint, and the root
/// each bundle anchors at, so a replica on a newer chain than its primary stands out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresentedChain {
    /// SHA-256 of each certificate the server sent, leaf first.
    pub chain_sha256: Vec<String>,
    /// Issuer of the topmost certificate sent: the root the server's chain expects.
    pub expects_root: Option<String>,
    /// (bundle path, anchoring root subject, its SHA-256) for every bundle that verifies.
    pub anchored_by: Vec<(String, String, String)>,
}

pub fn presented_chain(report: &super::ProbeReport) -> PresentedChain {
    PresentedChain {
        chain_sha256: report.chain.iter().map(|c| c.sha256.clone()).collect(),
        expects_root: report.chain.last().map(|c| c.issuer.clone()),
        anchored_by: report
            .bundles
            .iter()
            .filter_map(|b| Some((b.path.clone(), b.anchor.clone()?, b.anchor_sha256.clone()?)))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::certs::{CertSpec, issue};

    #[test]
    fn the_fleet_reads_chain_fingerprints_and_each_bundles_anchor() {
        let report = crate::fixtures::probe_report();
        let presented = presented_chain(&report);
        assert_eq!(presented.chain_sha256.len(), report.chain.len());
        assert_eq!(presented.expects_root.as_deref(), Some("O=Example, CN=Example Root CA"));
        let anchors: Vec<&str> = presented.anchored_by.iter().map(|(_, root, _)| root.as_str()).collect();
        assert_eq!(
            anchors,
            vec!["O=Example, CN=Example Root CA", "O=Example, CN=Example Root G2"],
            "the failing bundle anchors nothing"
        );
    }

    #[test]
    fn a_bundle_path_with_quotes_and_spaces_reaches_the_judge_whole() {
        let dir = tempfile::tempdir().unwrap();
        let root = issue(&CertSpec::ca("Quoted Root"), None).unwrap();
        let leaf = issue(&CertSpec::server("db", &["db"], &[]), Some(&root)).unwrap();
        let path = dir.path().join("it's a \\ bundle.pem");
        std::fs::write(&path, root.cert.to_pem().unwrap()).unwrap();
        let verdict = check("db", 5432, &path, &[leaf.cert], Utc::now());
        assert_eq!(verdict.error, None);
        assert!(verdict.verifies && verdict.verifies_ca, "{verdict:?}");
        assert_eq!(verdict.anchor.as_deref(), Some("O=pgtls lab, CN=Quoted Root"));
    }

    #[test]
    fn hostile_bundles_are_one_line_errors() {
        let root = issue(&CertSpec::ca("Bundle Root"), None).unwrap();
        let pem = String::from_utf8(root.cert.to_pem().unwrap()).unwrap();
        // The variant, then the words the user reads.
        let refused = |bytes: &[u8], expected: PemError, words: &str| {
            let e = parse_bundle(bytes).unwrap_err();
            assert_eq!(e, expected);
            assert!(e.to_string().starts_with(words), "{e}");
        };
        refused(b"", PemError::NoPem, "holds no PEM certificate");
        refused(
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            PemError::OnlyOtherBlocks {
                kinds: vec!["\"PRIVATE KEY\"".into()],
            },
            "holds no certificate, only \"PRIVATE KEY\"",
        );
        refused(&[0xff, 0xfe, 0x00], PemError::NotText, "not PEM text");
        refused(
            b"junk\n-----BEGIN CERTIFICATE-----\nAAAA\n",
            PemError::Unterminated { line: 2 },
            "the block that starts on line 2 never ends",
        );
        refused(
            b"-----BEGIN CERTIFICATE-----\nnot base64 !!\n-----END CERTIFICATE-----\n",
            PemError::InvalidCertificate { line: 1 },
            "the certificate on line 1 is not a valid certificate",
        );
        let mixed = format!("# comment\n{pem}garbage between\n{pem}");
        assert_eq!(parse_bundle(mixed.as_bytes()).unwrap().len(), 2);
        let many = pem.repeat(MAX_BUNDLE_CERTS + 1);
        refused(
            many.as_bytes(),
            PemError::TooMany,
            &format!("more than {MAX_BUNDLE_CERTS} certificates"),
        );
        let e = read_bundle(Path::new("/dev/zero")).unwrap_err();
        assert_eq!(
            e.problem,
            BundleProblem::File(crate::conn::files::FileError::NotRegularFile)
        );
        assert_eq!(e.to_string(), "bundle \"/dev/zero\": not a regular file");
    }
}
