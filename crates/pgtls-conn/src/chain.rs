//! Would libpq accept this chain? The decision a handshake makes, taken offline on a chain already read, so one
//! probe can answer for many root files without a connection (and a server log line) each.
//!
//! Exact by construction: the trust store is the one `TlsSetup` builds for a real connection (the root file
//! loaded as `SSL_CTX_load_verify_locations` loads it, CRLs with CRL_CHECK | CRL_CHECK_ALL when they load, no
//! X509_V_FLAG_PARTIAL_CHAIN, which libpq never sets), and verification runs as OpenSSL's
//! `ssl_verify_cert_chain` runs it for a client: every certificate the server sent as untrusted, the context's
//! security level as the authentication level, the `ssl_server` purpose and trust. verify-full then applies
//! libpq's host-name rules ([`verify_host`]) to the leaf, as libpq does after the handshake.

use std::ffi::{c_char, c_int};

use foreign_types::ForeignTypeRef;
use openssl::stack::Stack;
use openssl::x509::store::{X509StoreBuilder, X509StoreRef};
use openssl::x509::{X509, X509StoreContext, X509StoreContextRef};

use crate::error::ConnectError;
use crate::params::{ConnParams, RootCert, SslMode};
use crate::tls::{verify_host, x509_name};
use crate::tls_setup::TlsSetup;

/// Why OpenSSL found no path, with the certificate it stopped at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainFailure {
    /// OpenSSL's X509_V_ERR_* code.
    pub code: i32,
    /// OpenSSL's words for it, e.g. "unable to get local issuer certificate".
    pub reason: String,
    /// Depth of the certificate it was about: 0 is the leaf.
    pub depth: u32,
    /// That certificate, when OpenSSL named one.
    pub cert: Option<X509>,
}

/// OpenSSL's codes the explanations tell apart (x509_vfy.h).
pub mod codes {
    pub const UNABLE_TO_GET_ISSUER_CERT: i32 = 2;
    pub const CERT_NOT_YET_VALID: i32 = 9;
    pub const CERT_HAS_EXPIRED: i32 = 10;
    pub const DEPTH_ZERO_SELF_SIGNED_CERT: i32 = 18;
    pub const SELF_SIGNED_CERT_IN_CHAIN: i32 = 19;
    pub const UNABLE_TO_GET_ISSUER_CERT_LOCALLY: i32 = 20;
    pub const UNABLE_TO_VERIFY_LEAF_SIGNATURE: i32 = 21;
}

/// One decision for one root file.
#[derive(Debug, Clone)]
pub struct ChainVerdict {
    /// verify-ca: the path OpenSSL built (leaf to trusted root), or why there is none.
    pub chain: Result<Vec<X509>, ChainFailure>,
    /// verify-full's extra step, libpq's message when the leaf does not name the host.
    pub host: Result<(), crate::tls::HostError>,
}

impl ChainVerdict {
    pub fn verify_ca(&self) -> bool {
        self.chain.is_ok()
    }

    pub fn verify_full(&self) -> bool {
        self.chain.is_ok() && self.host.is_ok()
    }
}

/// `params` as a client that says only `sslrootcert=root_file sslmode=verify-full` about TLS would have them:
/// no client certificate, no CRL (not even ~/.postgresql/root.crl), the same host.
pub fn client_with_root_file(params: &ConnParams, root_file: &std::path::Path) -> ConnParams {
    let mut p = params.clone();
    p.sslmode = SslMode::VerifyFull;
    p.sslmode_explicit = true;
    p.sslrootcert = Some(RootCert::File(root_file.to_path_buf()));
    p.default_rootcert = std::path::PathBuf::new();
    p.sslcert = None;
    p.sslkey = None;
    p.sslpassword = None;
    p.rules.sslcrl = None;
    p.rules.sslcrldir = None;
    p.rules.sslkeylogfile = None;
    p
}

/// Decides for one set of parameters (normally from [`client_with_root_file`]) against chains the server sent.
pub struct Judge {
    setup: TlsSetup,
    host: String,
}

impl Judge {
    /// Loads the root file (and CRLs) exactly as a connection with `params` would; a file libpq could not
    /// load fails here with libpq's kind of message.
    pub fn new(params: &ConnParams) -> Result<Judge, ConnectError> {
        let setup = TlsSetup::new(params)?;
        if setup.context().is_none() || !setup.verifies_peer() {
            return Err(ConnectError::Setup(
                "these parameters would not verify the server (no root file in force)".to_string(),
            ));
        }
        let host = params
            .targets
            .iter()
            .find(|t| !t.is_unix_socket())
            .map(|t| t.tls_name().to_string())
            .unwrap_or_default();
        Ok(Judge { setup, host })
    }

    /// The verdict for `chain` (leaf first, as sent).
    pub fn judge(&self, chain: &[X509]) -> ChainVerdict {
        let verified = match self.setup.context() {
            Some(ctx) => verify_with(ctx.cert_store(), ctx.security_level(), chain),
            None => Err(no_store()),
        };
        let host = match chain.first() {
            Some(leaf) => verify_host(leaf, &self.host),
            None => Err(crate::tls::HostError::NoCertificate),
        };
        ChainVerdict { chain: verified, host }
    }

    /// Whether `root` alone anchors `chain`: a store holding only it (plus what the server sent, untrusted),
    /// under the same security level and purpose.
    pub fn anchors(&self, root: &X509, chain: &[X509]) -> Result<Vec<X509>, ChainFailure> {
        let level = self.setup.context().map_or(0, |c| c.security_level());
        let store = X509StoreBuilder::new().and_then(|mut b| {
            b.add_cert(root.clone())?;
            Ok(b.build())
        });
        match store {
            Ok(store) => verify_with(&store, level, chain),
            Err(_) => Err(no_store()),
        }
    }
}

fn no_store() -> ChainFailure {
    ChainFailure {
        code: -1,
        reason: "could not set up a trust store".to_string(),
        depth: 0,
        cert: None,
    }
}

#[allow(
    unsafe_code,
    reason = "FFI to two libcrypto functions the openssl crate does not wrap"
)]
unsafe extern "C" {
    // In libcrypto since 1.1.0; the openssl crate does not wrap them.
    fn X509_STORE_CTX_set_default(ctx: *mut openssl_sys::X509_STORE_CTX, name: *const c_char) -> c_int;
    fn X509_STORE_CTX_get0_param(ctx: *mut openssl_sys::X509_STORE_CTX) -> *mut openssl_sys::X509_VERIFY_PARAM;
}

/// What `ssl_verify_cert_chain` does for a client before X509_verify_cert.
#[allow(unsafe_code, reason = "calls the FFI above on the context OpenSSL hands us")]
fn as_a_tls_client(ctx: &mut X509StoreContextRef, security_level: u32) {
    let level = c_int::try_from(security_level).unwrap_or(c_int::MAX);
    // SAFETY: `ctx` is an initialised X509_STORE_CTX (we are inside `init`'s closure); the param pointer it
    // returns belongs to it and is used before it can go; the name is a NUL-terminated static string.
    unsafe {
        let param = X509_STORE_CTX_get0_param(ctx.as_ptr());
        if !param.is_null() {
            openssl_sys::X509_VERIFY_PARAM_set_auth_level(param, level);
        }
        X509_STORE_CTX_set_default(ctx.as_ptr(), c"ssl_server".as_ptr());
    }
}

/// Verify `chain` against `store` as a TLS client would: the path from leaf to trusted root, or the failure.
pub fn verify_with(store: &X509StoreRef, security_level: u32, chain: &[X509]) -> Result<Vec<X509>, ChainFailure> {
    let Some(leaf) = chain.first() else {
        return Err(ChainFailure {
            code: -1,
            reason: "the server sent no certificate".to_string(),
            depth: 0,
            cert: None,
        });
    };
    let outcome = (|| {
        let mut untrusted = Stack::new()?;
        for c in chain {
            untrusted.push(c.clone())?;
        }
        let mut ctx = X509StoreContext::new()?;
        ctx.init(store, leaf, &untrusted, |c| {
            as_a_tls_client(c, security_level);
            if c.verify_cert()? {
                let path = c
                    .chain()
                    .map(|s| s.iter().map(|x| x.to_owned()).collect())
                    .unwrap_or_default();
                Ok(Ok(path))
            } else {
                Ok(Err(ChainFailure {
                    code: c.error().as_raw(),
                    reason: c.error().error_string().to_string(),
                    depth: c.error_depth(),
                    cert: c.current_cert().map(|x| x.to_owned()),
                }))
            }
        })
    })();
    outcome.unwrap_or_else(|e: openssl::error::ErrorStack| {
        Err(ChainFailure {
            code: -1,
            reason: e.to_string(),
            depth: 0,
            cert: None,
        })
    })
}

/// `CN=..., O=...` of a certificate's subject, for messages.
pub fn subject(cert: &X509) -> String {
    x509_name(cert.subject_name())
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::asn1::Asn1Time;
    use openssl::bn::BigNum;
    use openssl::hash::MessageDigest;
    use openssl::pkey::{PKey, Private};
    use openssl::rsa::Rsa;
    use openssl::x509::X509NameBuilder;
    use openssl::x509::extension::{BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName};

    fn key() -> PKey<Private> {
        PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap()
    }

    fn cert(
        cn: &str,
        key: &PKey<Private>,
        issuer: Option<(&X509, &PKey<Private>)>,
        ca: bool,
        eku_server: bool,
    ) -> X509 {
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", cn).unwrap();
        let name = name.build();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        let serial = BigNum::from_u32(rand_serial()).unwrap().to_asn1_integer().unwrap();
        b.set_serial_number(&serial).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(issuer.map_or(&name, |(c, _)| c.subject_name()))
            .unwrap();
        b.set_pubkey(key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap()).unwrap();
        b.set_not_after(&Asn1Time::days_from_now(30).unwrap()).unwrap();
        if ca {
            b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
                .unwrap();
            b.append_extension(KeyUsage::new().key_cert_sign().build().unwrap())
                .unwrap();
        } else {
            let mut eku = ExtendedKeyUsage::new();
            if eku_server {
                eku.server_auth();
            } else {
                eku.client_auth();
            }
            b.append_extension(eku.build().unwrap()).unwrap();
            let san = SubjectAlternativeName::new()
                .dns("db.example")
                .build(&b.x509v3_context(None, None))
                .unwrap();
            b.append_extension(san).unwrap();
        }
        b.sign(issuer.map_or(key, |(_, k)| k), MessageDigest::sha256()).unwrap();
        b.build()
    }

    fn rand_serial() -> u32 {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(1);
        N.fetch_add(1, Ordering::SeqCst)
    }

    fn params_for(dir: &std::path::Path, roots: &[&X509], host: &str) -> ConnParams {
        let path = dir.join(format!("roots-{}.pem", rand_serial()));
        let pem: Vec<u8> = roots.iter().flat_map(|r| r.to_pem().unwrap()).collect();
        std::fs::write(&path, pem).unwrap();
        let env = crate::params::Environment::new(Default::default(), None, "x");
        let base = crate::resolve(Some(&format!("host={host} port=5432 user=x dbname=x")), &env).unwrap();
        client_with_root_file(&base, &path)
    }

    #[test]
    fn cross_signed_intermediate_needs_the_root_that_signed_the_copy_sent() {
        let dir = tempfile::tempdir().unwrap();
        let (old_key, new_key, int_key, leaf_key) = (key(), key(), key(), key());
        let old = cert("Old Root", &old_key, None, true, false);
        let new = cert("New Root", &new_key, None, true, false);
        let int_old = cert("Intermediate", &int_key, Some((&old, &old_key)), true, false);
        let int_new = cert("Intermediate", &int_key, Some((&new, &new_key)), true, false);
        let leaf = cert("db.example", &leaf_key, Some((&int_old, &int_key)), false, true);
        let sent_old = vec![leaf.clone(), int_old.clone()];
        let sent_new = vec![leaf.clone(), int_new.clone()];

        let only_new = Judge::new(&params_for(dir.path(), &[&new], "db.example")).unwrap();
        let v = only_new.judge(&sent_old);
        assert!(!v.verify_ca());
        let failure = v.chain.unwrap_err();
        assert_eq!(failure.code, codes::UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
        assert_eq!(failure.depth, 1, "stopped at the intermediate");
        assert!(only_new.judge(&sent_new).verify_full());

        let both = Judge::new(&params_for(dir.path(), &[&old, &new], "db.example")).unwrap();
        assert!(both.judge(&sent_old).verify_full());
        assert!(both.anchors(&old, &sent_old).is_ok());
        assert!(both.anchors(&new, &sent_old).is_err());

        // No PARTIAL_CHAIN, as in libpq: trusting the intermediate alone is not enough.
        let only_int = Judge::new(&params_for(dir.path(), &[&int_new], "db.example")).unwrap();
        assert!(!only_int.judge(&sent_old).verify_ca());
        // But a bundle holding New Root and the intermediate it signed finds that path first.
        let new_and_int = Judge::new(&params_for(dir.path(), &[&new, &int_new], "db.example")).unwrap();
        assert!(new_and_int.judge(&sent_old).verify_ca());

        let wrong_host = Judge::new(&params_for(dir.path(), &[&old], "other.example")).unwrap();
        let v = wrong_host.judge(&sent_old);
        assert!(v.verify_ca() && !v.verify_full());
        let e = v.host.unwrap_err();
        assert!(
            matches!(&e, crate::tls::HostError::Mismatch { host, .. } if host == "other.example"),
            "{e:?}"
        );
        assert!(
            e.to_string().contains("does not match host name \"other.example\""),
            "{e}"
        );
    }

    #[test]
    fn the_ssl_server_purpose_applies() {
        let dir = tempfile::tempdir().unwrap();
        let (root_key, leaf_key) = (key(), key());
        let root = cert("Root", &root_key, None, true, false);
        let client_only = cert("db.example", &leaf_key, Some((&root, &root_key)), false, false);
        let judge = Judge::new(&params_for(dir.path(), &[&root], "db.example")).unwrap();
        let v = judge.judge(&[client_only]);
        assert!(!v.verify_ca(), "a clientAuth-only certificate is refused as a server's");
    }
}
