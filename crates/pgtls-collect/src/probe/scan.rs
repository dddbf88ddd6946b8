//! Handshakes with chosen protocol versions and cipher lists, counting every connection made.
//!
//! Every failed handshake leaves a line in the server log, so the scan makes as few as it can:
//! one per protocol version, and for TLS 1.2 one per accepted cipher suite plus one.

use std::net::SocketAddr;
use std::time::Duration;

use openssl::ssl::{Ssl, SslContextBuilder, SslVerifyMode, SslVersion};
use openssl::x509::X509;
use serde::{Deserialize, Serialize};

use super::starttls::{self, Answer};

/// One completed handshake.
#[derive(Debug, Clone)]
pub struct Handshake {
    pub version: String,
    pub cipher: String,
    pub chain: Vec<X509>,
}

pub enum Attempt {
    Done(Handshake),
    /// The server answered 'N' to SSLRequest.
    NoTls,
    /// The handshake failed (e.g. protocol version or no shared cipher).
    Refused(String),
    /// The linked OpenSSL has no cipher suite to offer with these settings (`3DES:RC4` under OpenSSL 3): no
    /// connection was made, since the handshake would fail on our side and leave a line in the server's log.
    NothingToOffer,
}

/// Talks to one endpoint and counts connections.
pub struct Scanner {
    pub addr: SocketAddr,
    pub host: String,
    pub timeout: Duration,
    pub connections: u32,
    /// Told of each connection before its handshake, so the history service can tell the server's log lines
    /// about the probe's failed handshakes from real clients' before it reads them.
    pub report_to: Option<tokio::sync::mpsc::Sender<super::ProbeConnection>>,
}

impl Scanner {
    pub fn attempt(
        &mut self,
        configure: impl FnOnce(&mut SslContextBuilder) -> Result<(), openssl::error::ErrorStack>,
    ) -> std::io::Result<Attempt> {
        // The SSL is made first: a cipher list this OpenSSL cannot use is found before any connection.
        // The context holds no trusted roots: these handshakes do not verify (the report verifies the chain).
        let mut ssl = (|| {
            let mut builder = crate::conn::tls_context::client_context_builder()?;
            builder.set_verify(SslVerifyMode::NONE);
            configure(&mut builder)?;
            Ssl::new(&builder.build())
        })()
        .map_err(std::io::Error::other)?;
        if !crate::conn::tls_context::offers_ciphers(&ssl) {
            return Ok(Attempt::NothingToOffer);
        }
        let sni = self.host.parse::<std::net::IpAddr>().is_err() && !self.host.starts_with('/');
        if sni {
            ssl.set_hostname(&self.host).map_err(std::io::Error::other)?;
        }
        self.connections += 1;
        let stream = std::net::TcpStream::connect_timeout(&self.addr, self.timeout)?;
        if let (Some(to), Ok(local)) = (&self.report_to, stream.local_addr()) {
            // Never blocks the probe: a full queue (the history service gone or far behind) loses the note.
            let _ = to.try_send(super::ProbeConnection {
                address: local.ip().to_string(),
                port: local.port(),
                at: chrono::Utc::now(),
            });
        }
        let stream = match starttls::request_on(stream, self.timeout)? {
            Answer::NoTls => return Ok(Attempt::NoTls),
            Answer::Tls(stream) => stream,
        };
        match ssl.connect(stream) {
            Ok(mut tls) => {
                let ssl = tls.ssl();
                let handshake = Handshake {
                    version: ssl.version_str().to_string(),
                    cipher: ssl.current_cipher().map(|c| c.name().to_string()).unwrap_or_default(),
                    chain: ssl
                        .peer_cert_chain()
                        .map(|c| c.iter().map(|x| x.to_owned()).collect())
                        .unwrap_or_default(),
                };
                let _ = tls.shutdown();
                Ok(Attempt::Done(handshake))
            }
            Err(e) => Ok(Attempt::Refused(short_reason(&e.to_string()))),
        }
    }
}

/// "error:0A00042E:SSL routines:...:tlsv1 alert protocol version:..." -> "tlsv1 alert protocol version"
fn short_reason(error: &str) -> String {
    error
        .split(':')
        .find(|part| {
            part.contains("alert")
                || part.contains("no shared")
                || part.contains("no protocols")
                || part.contains("unsupported")
        })
        .map(|p| p.trim().to_string())
        .unwrap_or_else(|| error.lines().next().unwrap_or(error).to_string())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TlsVersion {
    #[serde(rename = "TLSv1")]
    Tls10,
    #[serde(rename = "TLSv1.1")]
    Tls11,
    #[serde(rename = "TLSv1.2")]
    Tls12,
    #[serde(rename = "TLSv1.3")]
    Tls13,
}

impl TlsVersion {
    pub const ALL: [TlsVersion; 4] = [
        TlsVersion::Tls10,
        TlsVersion::Tls11,
        TlsVersion::Tls12,
        TlsVersion::Tls13,
    ];

    pub fn name(self) -> &'static str {
        match self {
            TlsVersion::Tls10 => "TLSv1",
            TlsVersion::Tls11 => "TLSv1.1",
            TlsVersion::Tls12 => "TLSv1.2",
            TlsVersion::Tls13 => "TLSv1.3",
        }
    }

    fn ssl(self) -> SslVersion {
        match self {
            TlsVersion::Tls10 => SslVersion::TLS1,
            TlsVersion::Tls11 => SslVersion::TLS1_1,
            TlsVersion::Tls12 => SslVersion::TLS1_2,
            TlsVersion::Tls13 => SslVersion::TLS1_3,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionResult {
    pub version: TlsVersion,
    pub accepted: bool,
    /// Why the server refused, when it did.
    pub reason: Option<String>,
}

/// Try each version alone. Old versions need OpenSSL's security level 0 on our side or we would
/// refuse them ourselves and report the server wrongly.
pub fn versions(scanner: &mut Scanner) -> std::io::Result<Vec<VersionResult>> {
    let mut results = Vec::new();
    for version in TlsVersion::ALL {
        let attempt = scanner.attempt(|b| {
            b.set_min_proto_version(Some(version.ssl()))?;
            b.set_max_proto_version(Some(version.ssl()))?;
            if matches!(version, TlsVersion::Tls10 | TlsVersion::Tls11) {
                b.set_security_level(0);
                b.set_cipher_list("ALL:@SECLEVEL=0")?;
            }
            Ok(())
        })?;
        let (accepted, reason) = match attempt {
            Attempt::Done(h) => (h.version == version.name(), None),
            Attempt::Refused(reason) => (false, Some(reason)),
            Attempt::NoTls => (false, Some("server does not accept TLS".into())),
            Attempt::NothingToOffer => (
                false,
                Some(format!(
                    "not tried: this OpenSSL offers no cipher suite for {}",
                    version.name()
                )),
            ),
        };
        results.push(VersionResult {
            version,
            accepted,
            reason,
        });
    }
    Ok(results)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CipherResult {
    pub name: String,
    pub forward_secret: bool,
    pub aead: bool,
}

impl CipherResult {
    pub fn of(name: &str) -> CipherResult {
        CipherResult {
            name: name.to_string(),
            // ECDHE/DHE key exchange; TLS 1.3 names (TLS_*) always are.
            forward_secret: name.starts_with("TLS_")
                || name.contains("ECDHE")
                || name.starts_with("DHE")
                || name.contains("-DHE-"),
            aead: name.contains("GCM") || name.contains("CHACHA20") || name.contains("CCM"),
        }
    }

    pub fn weak(&self) -> bool {
        !self.forward_secret || !self.aead
    }
}

/// One handshake offering only `list` (TLS 1.2, our security level 0 so we never refuse first).
fn pick_tls12(scanner: &mut Scanner, list: &str) -> std::io::Result<Option<CipherResult>> {
    let attempt = scanner.attempt(|b| {
        b.set_min_proto_version(Some(SslVersion::TLS1_2))?;
        b.set_max_proto_version(Some(SslVersion::TLS1_2))?;
        b.set_security_level(0);
        b.set_cipher_list(list)
    });
    match attempt {
        Ok(Attempt::Done(h)) if !h.cipher.is_empty() => Ok(Some(CipherResult::of(&h.cipher))),
        // Nothing to offer (no RC4 in this OpenSSL build, say) made no connection: no such suite to report.
        Ok(_) => Ok(None),
        // A list OpenSSL refuses outright (none of its suites known to this build): nothing to offer either.
        Err(e) if e.kind() == std::io::ErrorKind::Other => Ok(None),
        Err(e) => Err(e),
    }
}

/// Weak kinds of TLS 1.2 suite, each probed with one connection offering only that kind.
pub const WEAK_CLASSES: [(&str, &str); 3] = [
    ("no forward secrecy", "kRSA:@SECLEVEL=0"),
    (
        "not AEAD (CBC)",
        "kECDHE:kDHE:!AESGCM:!CHACHA20:!AESCCM:!ARIAGCM:!3DES:!RC4:@SECLEVEL=0",
    ),
    ("3DES or RC4", "3DES:RC4:@SECLEVEL=0"),
];

/// TLS 1.2 suites: the server's preferred one and an example of each weak kind it accepts.
/// `full` instead lists every accepted suite by elimination (one connection per suite, plus one).
pub fn tls12_ciphers(scanner: &mut Scanner, full: bool) -> std::io::Result<Vec<CipherResult>> {
    const EVERYTHING: &str = "ALL:COMPLEMENTOFALL:@SECLEVEL=0";
    let mut accepted: Vec<CipherResult> = Vec::new();
    if full {
        for _ in 0..128 {
            let exclude: String = accepted.iter().map(|c| format!(":!{}", c.name)).collect();
            match pick_tls12(scanner, &format!("{EVERYTHING}{exclude}"))? {
                Some(c) if !accepted.iter().any(|a| a.name == c.name) => accepted.push(c),
                _ => break,
            }
        }
        return Ok(accepted);
    }
    if let Some(preferred) = pick_tls12(scanner, EVERYTHING)? {
        accepted.push(preferred);
    }
    for (_, list) in WEAK_CLASSES {
        if let Some(c) = pick_tls12(scanner, list)?
            && !accepted.iter().any(|a| a.name == c.name)
        {
            accepted.push(c);
        }
    }
    Ok(accepted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cipher_policy_flags() {
        let good = CipherResult::of("ECDHE-RSA-AES256-GCM-SHA384");
        assert!(good.forward_secret && good.aead && !good.weak());
        let no_fs = CipherResult::of("AES256-GCM-SHA384");
        assert!(!no_fs.forward_secret && no_fs.weak());
        let cbc = CipherResult::of("ECDHE-RSA-AES256-SHA384");
        assert!(cbc.forward_secret && !cbc.aead && cbc.weak());
        assert!(CipherResult::of("DHE-RSA-CHACHA20-POLY1305").forward_secret);
    }

    #[test]
    fn reasons_are_shortened() {
        let e = "error:0A00042E:SSL routines:ssl3_read_bytes:tlsv1 alert protocol version:../ssl/record/rec_layer_s3.c:1593:SSL alert number 70";
        assert_eq!(short_reason(e), "tlsv1 alert protocol version");
    }
}
