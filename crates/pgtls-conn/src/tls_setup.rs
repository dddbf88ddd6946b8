//! OpenSSL set up as libpq's `initialize_SSL` does it: protocol bounds, the root file (every certificate
//! in it) or the system store, CRLs beside a root file, the client certificate unless sslcertmode=disable,
//! SNI, ALPN and the key log. The handshake records what it saw, so errors can name the certificate and
//! the report can say what was negotiated; verify-full's host check runs after the handshake, as in libpq.

use std::error::Error as StdError;
use std::ffi::{c_int, c_void};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use openssl::ex_data::Index;
use openssl::pkey::PKey;
use openssl::ssl::{Ssl, SslConnector, SslMethod, SslVerifyMode, SslVersion};
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::verify::X509VerifyFlags;
use openssl::x509::{X509, X509StoreContext, X509StoreContextRef, X509VerifyResult};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_postgres::tls::TlsConnect;

use crate::error::{Cause, ConnectError, quoted_path};
use crate::inspect::{AuthPolicy, CertFlags, Inspector, Layer, SharedObserved};
use crate::params::{ConnParams, HostTarget, RootCert, SslMode};
use crate::rules::SslCertMode;
use crate::text::escaped;
use crate::tls::{ssl_version, verify_host, x509_name};
use crate::{TlsReport, Verification};

/// The root certificate file in force: the explicit one, else ~/.postgresql/root.crt.
pub fn root_file(params: &ConnParams) -> Option<&Path> {
    match &params.sslrootcert {
        Some(RootCert::File(path)) => Some(path.as_path()),
        Some(RootCert::System) => None,
        None => Some(params.default_rootcert.as_path()).filter(|p| !p.as_os_str().is_empty()),
    }
}

/// What libpq checks for a mode: verify-* as named; weaker modes check the chain when a root file exists.
pub fn verification_for(params: &ConnParams) -> Verification {
    match params.sslmode {
        SslMode::VerifyFull => Verification::ChainAndHost,
        SslMode::VerifyCa => Verification::Chain,
        _ if root_file(params).is_some_and(Path::exists) => Verification::Chain,
        _ => Verification::None,
    }
}

/// What one handshake showed, filled in by OpenSSL's callbacks.
#[derive(Debug, Default)]
pub struct TlsCapture {
    pub version: Option<String>,
    pub cipher: Option<String>,
    pub bits: Option<i32>,
    /// As the server sent it, leaf first.
    pub chain: Vec<X509>,
    /// The first verification error: code, and the certificate it was about.
    pub verify_error: Option<(X509VerifyResult, Option<X509>)>,
    /// Set when the TLS layer refused the connection.
    pub failure: Option<Cause>,
    pub verification: Option<Verification>,
    pub crl_checked: bool,
    /// Where trusted roots came from and which CRL was loaded, for error messages.
    pub trust: String,
    pub crl: String,
}

impl TlsCapture {
    pub fn report(&self) -> Option<TlsReport> {
        Some(TlsReport {
            version: self.version.clone()?,
            cipher: self.cipher.clone().unwrap_or_default(),
            bits: self.bits.unwrap_or_default(),
            verification: self.verification.unwrap_or(Verification::None),
            crl_checked: self.crl_checked,
            server_chain: self.chain.iter().map(|c| x509_name(c.subject_name())).collect(),
        })
    }
}

/// The connector for one `connect`, built once and configured per attempt.
pub struct TlsSetup {
    connector: Option<SslConnector>,
    /// A root file (or the system store) was loaded: SSL_VERIFY_PEER.
    verify_peer: bool,
    crl_checked: bool,
    trust: String,
    crl: String,
}

impl TlsSetup {
    /// Reads every file up front, so a missing root file or key fails before any connection, as in libpq.
    pub fn new(params: &ConnParams) -> Result<TlsSetup, ConnectError> {
        let needs_tls = params.sslmode != SslMode::Disable && params.targets.iter().any(|t| !t.is_unix_socket());
        if !needs_tls {
            return Ok(TlsSetup {
                connector: None,
                verify_peer: false,
                crl_checked: false,
                trust: String::new(),
                crl: String::new(),
            });
        }
        let setup_error = |what: &str, e: &dyn std::fmt::Display| ConnectError::Setup(format!("{what}: {e}"));
        let mut builder =
            SslConnector::builder(SslMethod::tls_client()).map_err(|e| setup_error("cannot set up TLS", &e))?;
        // SslConnector trusts the system store and narrows ciphers by default; libpq does neither.
        builder.set_cert_store(
            X509StoreBuilder::new()
                .map_err(|e| setup_error("cannot set up TLS", &e))?
                .build(),
        );
        builder
            .set_cipher_list("DEFAULT")
            .map_err(|e| setup_error("cannot set up TLS", &e))?;
        let min = params
            .ssl_min_protocol_version
            .as_deref()
            .and_then(ssl_version)
            .unwrap_or(SslVersion::TLS1_2);
        builder
            .set_min_proto_version(Some(min))
            .map_err(|e| setup_error("cannot set the minimum TLS version", &e))?;
        if let Some(max) = params.ssl_max_protocol_version.as_deref().and_then(ssl_version) {
            builder
                .set_max_proto_version(Some(max))
                .map_err(|e| setup_error("cannot set the maximum TLS version", &e))?;
        }
        // libpq 17+ always offers ALPN "postgresql"; direct TLS needs it.
        builder
            .set_alpn_protos(b"\x0apostgresql")
            .map_err(|e| setup_error("cannot set ALPN", &e))?;

        let mut verify_peer = false;
        let mut crl_checked = false;
        let mut trust = String::new();
        let mut crl = String::new();
        match &params.sslrootcert {
            Some(RootCert::System) => {
                builder
                    .set_default_verify_paths()
                    .map_err(|e| setup_error("could not load the system's trusted roots", &e))?;
                verify_peer = true;
                trust = "the system's trusted roots".to_string();
            }
            _ => match root_file(params).filter(|p| p.exists()) {
                Some(path) => {
                    // OpenSSL reads the file to its end: refuse /dev/zero and the like first.
                    crate::files::check_small(path).map_err(|e| {
                        ConnectError::Setup(format!(
                            "could not read root certificate file {}: {e}",
                            quoted_path(path)
                        ))
                    })?;
                    builder.load_verify_locations(Some(path), None).map_err(|e| {
                        ConnectError::Setup(format!(
                            "could not read root certificate file {}: {}",
                            quoted_path(path),
                            first_reason(&e)
                        ))
                    })?;
                    (crl_checked, crl) = load_crls(&mut builder, params);
                    verify_peer = true;
                    trust = format!("root file {}", quoted_path(path));
                }
                None if matches!(params.sslmode, SslMode::VerifyCa | SslMode::VerifyFull) => {
                    let shown = root_file(params).map(quoted_path).unwrap_or_else(|| "\"\"".to_string());
                    return Err(ConnectError::Setup(format!(
                        "root certificate file {shown} does not exist (provide it, use sslrootcert=system, or use an sslmode that does not verify the server)"
                    )));
                }
                None => {}
            },
        }
        if params.rules.sslcertmode != SslCertMode::Disable {
            load_client_certificate(&mut builder, params)?;
        }
        if let Some(path) = &params.rules.sslkeylogfile {
            let path = path.clone();
            builder.set_keylog_callback(move |_, line| append_key_log(&path, line));
        }
        Ok(TlsSetup {
            connector: Some(builder.build()),
            verify_peer,
            crl_checked,
            trust,
            crl,
        })
    }

    /// The SSL_CTX every handshake of this connect starts from (trusted roots, CRL flags, security level);
    /// `None` when no connection would use TLS.
    pub fn context(&self) -> Option<&openssl::ssl::SslContextRef> {
        self.connector.as_ref().map(SslConnector::context)
    }

    /// Whether handshakes verify the server's chain (a root file or the system store is in force).
    pub fn verifies_peer(&self) -> bool {
        self.verify_peer
    }

    /// A tokio-postgres TLS connector for one attempt at `target`.
    pub fn connector(
        &self,
        params: &ConnParams,
        target: &HostTarget,
        capture: Arc<Mutex<TlsCapture>>,
        cert_flags: Arc<CertFlags>,
        policy: Arc<AuthPolicy>,
        observed: SharedObserved,
    ) -> Result<Tls, Cause> {
        let tls_error = |e: openssl::error::ErrorStack| Cause::Tls(escaped(&first_reason(&e)));
        let connector = self
            .connector
            .as_ref()
            .ok_or_else(|| Cause::Tls("TLS was not set up".to_string()))?;
        let mut config = connector.configure().map_err(tls_error)?;
        config.set_verify_hostname(false);
        config.set_use_server_name_indication(false);
        let name = target.tls_name();
        // libpq: SNI unless sslsni=0 or the host is all digits and dots or contains ':'.
        let ip_like = name.chars().all(|c| c.is_ascii_digit() || c == '.') || name.contains(':');
        if params.rules.sslsni && !name.is_empty() && !ip_like {
            config.set_hostname(name).map_err(tls_error)?;
        }
        let verification = if self.verify_peer {
            verification_for(params)
        } else {
            Verification::None
        };
        {
            let mut c = capture.lock().unwrap_or_else(PoisonError::into_inner);
            c.verification = Some(verification);
            c.crl_checked = self.crl_checked;
            c.trust.clone_from(&self.trust);
            c.crl.clone_from(&self.crl);
        }
        let mode = if self.verify_peer {
            SslVerifyMode::PEER
        } else {
            SslVerifyMode::NONE
        };
        let seen = capture.clone();
        let enforce = self.verify_peer;
        config.set_verify_callback(mode, move |preverify_ok, ctx| {
            // Without a root file libpq does not verify: no error counts, and going on lets the walk reach
            // the leaf, which the report names.
            let ok = preverify_ok || !enforce;
            record_verification(&seen, ok, ctx);
            ok
        });
        watch_certificate_request(&mut config, cert_flags).map_err(tls_error)?;
        let host_check = (params.sslmode == SslMode::VerifyFull).then(|| name.to_string());
        Ok(Tls {
            inner: postgres_openssl::TlsConnector::new(config, name),
            host_check,
            capture,
            policy,
            observed,
        })
    }
}

/// libpq: a CRL file or directory beside the root file, with CRL_CHECK | CRL_CHECK_ALL when it loads;
/// when none is named, ~/.postgresql/root.crl; a file that does not load is silently ignored.
fn load_crls(builder: &mut openssl::ssl::SslConnectorBuilder, params: &ConnParams) -> (bool, String) {
    let default_crl =
        (!params.default_rootcert.as_os_str().is_empty()).then(|| params.default_rootcert.with_file_name("root.crl"));
    let file: Option<PathBuf> = match (&params.rules.sslcrl, &params.rules.sslcrldir) {
        (None, None) => default_crl,
        (file, _) => file.clone(),
    };
    let dir = params.rules.sslcrldir.as_deref();
    if file.is_none() && dir.is_none() {
        return (false, String::new());
    }
    // A CRL file OpenSSL would read without end counts as one that does not load.
    if file
        .as_deref()
        .is_some_and(|f| f.exists() && crate::files::check_small(f).is_err())
    {
        return (false, String::new());
    }
    if builder.load_verify_locations(file.as_deref(), dir).is_err() {
        return (false, String::new());
    }
    let shown = match (&file, dir) {
        (Some(f), _) => quoted_path(f),
        (None, Some(d)) => format!("directory {}", quoted_path(d)),
        (None, None) => String::new(),
    };
    let checked = builder
        .cert_store_mut()
        .set_flags(X509VerifyFlags::CRL_CHECK | X509VerifyFlags::CRL_CHECK_ALL)
        .is_ok();
    (checked, shown)
}

/// The client certificate and key, as libpq loads them: a certificate file that does not exist means no
/// certificate (the server decides whether that is enough); a key that is missing or readable by group
/// or others is an error.
fn load_client_certificate(
    builder: &mut openssl::ssl::SslConnectorBuilder,
    params: &ConnParams,
) -> Result<(), ConnectError> {
    let Some(cert_path) = &params.sslcert else {
        return Ok(());
    };
    match std::fs::metadata(cert_path) {
        Ok(_) => {}
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(());
        }
        Err(e) => {
            return Err(ConnectError::Setup(format!(
                "could not open certificate file {}: {}",
                quoted_path(cert_path),
                escaped(&e.to_string())
            )));
        }
    }
    crate::files::check_small(cert_path).map_err(|e| {
        ConnectError::Setup(format!(
            "could not read certificate file {}: {e}",
            quoted_path(cert_path)
        ))
    })?;
    builder.set_certificate_chain_file(cert_path).map_err(|e| {
        ConnectError::Setup(format!(
            "could not read certificate file {}: {}",
            quoted_path(cert_path),
            first_reason(&e)
        ))
    })?;
    // libpq's default key sits beside its default root file: ~/.postgresql/postgresql.key.
    let key_path = params
        .sslkey
        .clone()
        .unwrap_or_else(|| params.default_rootcert.with_file_name("postgresql.key"));
    check_key_permissions(&key_path)?;
    let key_pem = crate::files::read_small(&key_path).map_err(|e| {
        ConnectError::Setup(format!(
            "could not read private key file {}: {e}",
            quoted_path(&key_path)
        ))
    })?;
    let key = match &params.sslpassword {
        Some(pass) => PKey::private_key_from_pem_passphrase(&key_pem, pass.as_bytes()),
        None => PKey::private_key_from_pem(&key_pem),
    }
    .or_else(|_| PKey::private_key_from_der(&key_pem))
    .map_err(|_| {
        ConnectError::Setup(format!(
            "could not load private key file {} (not a PEM or DER key, or wrong sslpassword)",
            quoted_path(&key_path)
        ))
    })?;
    builder.set_private_key(&key).map_err(|e| {
        ConnectError::Setup(format!(
            "could not load private key file {}: {}",
            quoted_path(&key_path),
            first_reason(&e)
        ))
    })?;
    builder.check_private_key().map_err(|_| {
        ConnectError::Setup(format!(
            "certificate does not match private key file {} (certificate {})",
            quoted_path(&key_path),
            quoted_path(cert_path)
        ))
    })
}

/// libpq refuses a key others can read: 0600 or less if ours, 0640 or less if owned by root.
fn check_key_permissions(path: &Path) -> Result<(), ConnectError> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).map_err(|_| {
        ConnectError::Setup(format!(
            "certificate present, but not private key file {}",
            quoted_path(path)
        ))
    })?;
    if !meta.is_file() {
        return Err(ConnectError::Setup(format!(
            "private key file {} is not a regular file",
            quoted_path(path)
        )));
    }
    let euid = nix::unistd::Uid::effective().as_raw();
    let mode = meta.mode();
    let too_open = (meta.uid() == euid && mode & 0o077 != 0) || (meta.uid() == 0 && mode & 0o037 != 0);
    if too_open {
        return Err(ConnectError::Setup(format!(
            "private key file {} has group or world access; file must have permissions u=rw (0600) or less \
             if owned by the current user, or permissions u=rw,g=r (0640) or less if owned by root",
            quoted_path(path)
        )));
    }
    Ok(())
}

/// libpq opens the key log for each line (append, 0600); a failure is a warning on stderr, never fatal.
fn append_key_log(path: &Path, line: &str) {
    use std::os::unix::fs::OpenOptionsExt;
    let written = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| writeln!(f, "{line}"));
    if let Err(e) = written {
        eprintln!(
            "WARNING: could not write to SSL key logging file {}: {}",
            quoted_path(path),
            escaped(&e.to_string())
        );
    }
}

fn record_verification(capture: &Mutex<TlsCapture>, preverify_ok: bool, ctx: &mut X509StoreContextRef) {
    let mut c = capture.lock().unwrap_or_else(PoisonError::into_inner);
    if !preverify_ok && c.verify_error.is_none() {
        c.verify_error = Some((ctx.error(), ctx.current_cert().map(|x| x.to_owned())));
    }
    if ctx.error_depth() != 0 || c.version.is_some() {
        return;
    }
    let Ok(index) = X509StoreContext::ssl_idx() else {
        return;
    };
    if let Some(ssl) = ctx.ex_data(index) {
        c.version = Some(ssl.version_str().to_string());
        if let Some(cipher) = ssl.current_cipher() {
            c.cipher = Some(cipher.name().to_string());
            c.bits = Some(cipher.bits().secret);
        }
        if let Some(chain) = ssl.peer_cert_chain() {
            c.chain = chain.iter().map(|x| x.to_owned()).collect();
        }
    }
    if c.chain.is_empty() {
        c.chain.extend(ctx.current_cert().map(|x| x.to_owned()));
    }
}

fn cert_flags_index() -> Option<Index<Ssl, Arc<CertFlags>>> {
    static INDEX: OnceLock<Option<Index<Ssl, Arc<CertFlags>>>> = OnceLock::new();
    *INDEX.get_or_init(|| Ssl::new_ex_index().ok())
}

#[allow(
    unsafe_code,
    reason = "FFI to SSL_set_cert_cb, which the openssl crate does not wrap"
)]
unsafe extern "C" {
    // In libssl since 1.0.2; the openssl crate does not wrap it.
    fn SSL_set_cert_cb(
        ssl: *mut openssl_sys::SSL,
        cb: Option<unsafe extern "C" fn(*mut openssl_sys::SSL, *mut c_void) -> c_int>,
        arg: *mut c_void,
    );
}

/// Called by OpenSSL when the server sends CertificateRequest, before the client picks its certificate.
#[allow(unsafe_code, reason = "a callback OpenSSL calls with raw pointers")]
unsafe extern "C" fn on_certificate_request(ssl: *mut openssl_sys::SSL, arg: *mut c_void) -> c_int {
    // SAFETY: `arg` points into the Arc<CertFlags> that this SSL's ex_data owns (see
    // watch_certificate_request), so it lives as long as the SSL that calls us.
    let flags = unsafe { &*(arg as *const CertFlags) };
    flags.requested.store(true, Ordering::SeqCst);
    // SAFETY: `ssl` is the live SSL object OpenSSL passes to its own callback.
    let has_certificate = unsafe { !openssl_sys::SSL_get_certificate(ssl).is_null() };
    flags.sent.store(has_certificate, Ordering::SeqCst);
    1
}

/// libpq's cert_cb, for sslcertmode=require: did the server ask for a certificate, and was one sent?
#[allow(unsafe_code, reason = "registers the callback above through FFI")]
fn watch_certificate_request(
    config: &mut openssl::ssl::ConnectConfiguration,
    flags: Arc<CertFlags>,
) -> Result<(), openssl::error::ErrorStack> {
    use foreign_types::ForeignTypeRef;
    let Some(index) = cert_flags_index() else {
        return Err(openssl::error::ErrorStack::get());
    };
    let arg = Arc::as_ptr(&flags) as *mut c_void;
    // The SSL owns a clone from here on, which keeps `arg` valid for every callback it makes.
    config.set_ex_data(index, flags);
    // SAFETY: the SSL pointer is valid for the call; `arg` outlives the SSL (see above).
    unsafe { SSL_set_cert_cb(config.as_ptr(), Some(on_certificate_request), arg) };
    Ok(())
}

/// OpenSSL's reason for the first error in a stack, without the library's internal codes.
fn first_reason(e: &openssl::error::ErrorStack) -> String {
    e.errors()
        .first()
        .and_then(|err| err.reason().map(str::to_string))
        .unwrap_or_else(|| e.to_string())
}

/// postgres-openssl's connector plus libpq's post-handshake checks and the message inspector.
pub struct Tls {
    inner: postgres_openssl::TlsConnector,
    host_check: Option<String>,
    capture: Arc<Mutex<TlsCapture>>,
    policy: Arc<AuthPolicy>,
    observed: SharedObserved,
}

impl<S> TlsConnect<S> for Tls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = Inspector<postgres_openssl::TlsStream<S>>;
    type Error = Box<dyn StdError + Send + Sync>;
    type Future = Pin<Box<dyn std::future::Future<Output = Result<Self::Stream, Self::Error>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let Tls {
                inner,
                host_check,
                capture,
                policy,
                observed,
            } = self;
            let handshake = TlsConnect::connect(inner, stream).await;
            let mut c = capture.lock().unwrap_or_else(PoisonError::into_inner);
            let stream = match handshake {
                Ok(stream) => stream,
                Err(e) => {
                    let cause = handshake_failure(&c, &e.to_string());
                    c.failure = Some(cause.clone());
                    return Err(Box::new(HandshakeFailed(cause.to_string())) as Self::Error);
                }
            };
            if let Some(host) = host_check {
                let outcome = match c.chain.first() {
                    Some(leaf) => verify_host(leaf, &host),
                    None => Err(crate::tls::HostError::NoCertificate),
                };
                if let Err(e) = outcome {
                    let cause = Cause::HostMismatch(e.to_string());
                    c.failure = Some(cause.clone());
                    return Err(Box::new(HandshakeFailed(cause.to_string())) as Self::Error);
                }
            }
            drop(c);
            Ok(Inspector::new(stream, Layer::InsideTls, policy, observed))
        })
    }
}

#[derive(Debug)]
struct HandshakeFailed(String);

impl std::fmt::Display for HandshakeFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for HandshakeFailed {}

/// Names the certificate a failed verification was about; otherwise OpenSSL's reason.
fn handshake_failure(c: &TlsCapture, error: &str) -> Cause {
    let Some((result, cert)) = &c.verify_error else {
        return Cause::Tls(escaped(&openssl_reason(error)));
    };
    let leaf = c.chain.first();
    let about = cert.as_ref().or(leaf);
    let subject = about
        .map(|x| format!("\"{}\"", escaped(&x509_name(x.subject_name()))))
        .unwrap_or_default();
    match result.as_raw() {
        openssl_sys::X509_V_ERR_CERT_HAS_EXPIRED => Cause::Expired {
            subject,
            not_after: about.map(|x| x.not_after().to_string()).unwrap_or_default(),
        },
        openssl_sys::X509_V_ERR_CERT_REVOKED => Cause::Revoked {
            subject,
            crl: c.crl.clone(),
        },
        _ => Cause::Untrusted {
            subject: leaf
                .map(|x| format!("\"{}\"", escaped(&x509_name(x.subject_name()))))
                .unwrap_or_default(),
            issuer: leaf
                .map(|x| format!("\"{}\"", escaped(&x509_name(x.issuer_name()))))
                .unwrap_or_default(),
            trust: c.trust.clone(),
            reason: escaped(result.error_string()),
        },
    }
}

/// "error:0A000086:SSL routines:...:certificate verify failed:..." -> "certificate verify failed".
fn openssl_reason(error: &str) -> String {
    error
        .split(':')
        .map(str::trim)
        .find(|part| part.len() > 6 && part.contains(' ') && !part.contains(".c") && !part.starts_with("error"))
        .map_or_else(|| error.to_string(), str::to_string)
}
