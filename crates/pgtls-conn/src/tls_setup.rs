//! OpenSSL set up as libpq's `initialize_SSL` does it: protocol bounds, the root file (every certificate
//! in it) or the system store, CRLs beside a root file, the client certificate unless sslcertmode=disable,
//! SNI, ALPN and the key log. The handshake records what it saw, so errors can name the certificate and
//! the report can say what was negotiated; verify-full's host check runs after the handshake, as in libpq.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::ffi::{c_int, c_void};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use openssl::ex_data::Index;
use openssl::pkey::PKey;
use openssl::ssl::{Ssl, SslContext, SslContextBuilder, SslRef, SslVerifyMode, SslVersion};
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
use crate::tls_context::{OpensslStream, client_context_builder};
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

/// The SSL context for one `connect`, shared by every connect with the same settings and files (see
/// [`SetupKey`]): building one reads the root file, CRLs and key, which costs far more than the handshake.
pub struct TlsSetup {
    built: Option<Arc<Built>>,
}

/// A context and what it was built from, for reports and error messages.
struct Built {
    context: SslContext,
    /// A root file (or the system store) was loaded: SSL_VERIFY_PEER.
    verify_peer: bool,
    crl_checked: bool,
    trust: String,
    crl: String,
}

/// Contexts kept at most; beyond that the cache starts again (a fleet has a handful of distinct settings).
const CACHED_CONTEXTS: usize = 256;

fn cache() -> &'static Mutex<HashMap<SetupKey, Arc<Built>>> {
    static CACHE: OnceLock<Mutex<HashMap<SetupKey, Arc<Built>>>> = OnceLock::new();
    CACHE.get_or_init(Mutex::default)
}

/// Everything a context depends on: the settings as text, and each file it reads as it stands on disk, so a
/// replaced root file, CRL or key (or a key whose permissions changed) makes a new context, as libpq reads
/// them on every connection.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SetupKey {
    settings: Vec<Option<String>>,
    files: Vec<Option<FileStamp>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FileStamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
    mode: u32,
    uid: u32,
}

impl FileStamp {
    fn of(path: Option<&Path>) -> Option<FileStamp> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path?).ok()?;
        Some(FileStamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: meta.mtime(),
            mtime_nsec: meta.mtime_nsec(),
            mode: meta.mode(),
            uid: meta.uid(),
        })
    }
}

impl SetupKey {
    fn of(params: &ConnParams) -> SetupKey {
        let path = |p: Option<&Path>| p.map(|p| p.display().to_string());
        let (crl_file, crl_dir) = crl_locations(params);
        let key_file = key_path(params);
        let root = match &params.sslrootcert {
            Some(RootCert::System) => Some("system".to_string()),
            _ => path(root_file(params)),
        };
        SetupKey {
            settings: vec![
                Some(format!("{:?}", params.sslmode)),
                root,
                params.ssl_min_protocol_version.clone(),
                params.ssl_max_protocol_version.clone(),
                Some((params.rules.sslcertmode != SslCertMode::Disable).to_string()),
                path(params.sslcert.as_deref()),
                path(Some(key_file.as_path())),
                params.sslpassword.clone(),
                path(params.rules.sslkeylogfile.as_deref()),
                path(crl_file.as_deref()),
                path(crl_dir),
            ],
            files: vec![
                FileStamp::of(root_file(params)),
                FileStamp::of(crl_file.as_deref()),
                FileStamp::of(crl_dir),
                FileStamp::of(params.sslcert.as_deref()),
                FileStamp::of(Some(key_file.as_path())),
            ],
        }
    }
}

impl TlsSetup {
    /// Reads every file up front (or finds them unchanged since a context was built from them), so a missing root
    /// file or key fails before any connection, as in libpq.
    pub fn new(params: &ConnParams) -> Result<TlsSetup, ConnectError> {
        let needs_tls = params.sslmode != SslMode::Disable && params.targets.iter().any(|t| !t.is_unix_socket());
        if !needs_tls {
            return Ok(TlsSetup { built: None });
        }
        let key = SetupKey::of(params);
        if let Some(built) = cache().lock().unwrap_or_else(PoisonError::into_inner).get(&key) {
            return Ok(TlsSetup {
                built: Some(Arc::clone(built)),
            });
        }
        // Built outside the lock: two connects racing build twice, and neither waits on the other's file reads.
        let built = Arc::new(build(params)?);
        let mut cached = cache().lock().unwrap_or_else(PoisonError::into_inner);
        if cached.len() >= CACHED_CONTEXTS {
            cached.clear();
        }
        cached.insert(key, Arc::clone(&built));
        Ok(TlsSetup { built: Some(built) })
    }

    /// The SSL_CTX every handshake of this connect starts from (trusted roots, CRL flags, security level);
    /// `None` when no connection would use TLS.
    pub fn context(&self) -> Option<&openssl::ssl::SslContextRef> {
        self.built.as_ref().map(|b| &*b.context)
    }

    /// Whether handshakes verify the server's chain (a root file or the system store is in force).
    pub fn verifies_peer(&self) -> bool {
        self.built.as_ref().is_some_and(|b| b.verify_peer)
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
        let built = self
            .built
            .as_ref()
            .ok_or_else(|| Cause::Tls("TLS was not set up".to_string()))?;
        let mut config = Ssl::new(&built.context).map_err(tls_error)?;
        let name = target.tls_name();
        // libpq: SNI unless sslsni=0 or the host is all digits and dots or contains ':'.
        let ip_like = name.chars().all(|c| c.is_ascii_digit() || c == '.') || name.contains(':');
        if params.rules.sslsni && !name.is_empty() && !ip_like {
            config.set_hostname(name).map_err(tls_error)?;
        }
        let verification = if built.verify_peer {
            verification_for(params)
        } else {
            Verification::None
        };
        {
            let mut c = capture.lock().unwrap_or_else(PoisonError::into_inner);
            c.verification = Some(verification);
            c.crl_checked = built.crl_checked;
            c.trust.clone_from(&built.trust);
            c.crl.clone_from(&built.crl);
        }
        let mode = if built.verify_peer {
            SslVerifyMode::PEER
        } else {
            SslVerifyMode::NONE
        };
        let seen = capture.clone();
        let enforce = built.verify_peer;
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
            ssl: config,
            host_check,
            capture,
            policy,
            observed,
        })
    }
}

/// A context for `params`: protocol bounds, ALPN, the trusted roots, CRLs, the client certificate and key log.
fn build(params: &ConnParams) -> Result<Built, ConnectError> {
    let setup_error = |what: &str, e: &dyn std::fmt::Display| ConnectError::Setup(format!("{what}: {e}"));
    // No trusted roots until a root file or sslrootcert=system names them (SslConnector would load the
    // system store into every context); libpq's ciphers, not SslConnector's narrower list.
    let mut builder = client_context_builder().map_err(|e| setup_error("cannot set up TLS", &e))?;
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
    Ok(Built {
        context: builder.build(),
        verify_peer,
        crl_checked,
        trust,
        crl,
    })
}

/// The CRL file and directory libpq would read: those named, else ~/.postgresql/root.crl.
fn crl_locations(params: &ConnParams) -> (Option<PathBuf>, Option<&Path>) {
    let default_crl =
        (!params.default_rootcert.as_os_str().is_empty()).then(|| params.default_rootcert.with_file_name("root.crl"));
    let file: Option<PathBuf> = match (&params.rules.sslcrl, &params.rules.sslcrldir) {
        (None, None) => default_crl,
        (file, _) => file.clone(),
    };
    (file, params.rules.sslcrldir.as_deref())
}

/// The client key libpq reads: sslkey, else postgresql.key beside its default root file.
fn key_path(params: &ConnParams) -> PathBuf {
    params
        .sslkey
        .clone()
        .unwrap_or_else(|| params.default_rootcert.with_file_name("postgresql.key"))
}

/// libpq: a CRL file or directory beside the root file, with CRL_CHECK | CRL_CHECK_ALL when it loads;
/// when none is named, ~/.postgresql/root.crl; a file that does not load is silently ignored.
fn load_crls(builder: &mut SslContextBuilder, params: &ConnParams) -> (bool, String) {
    let (file, dir) = crl_locations(params);
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
fn load_client_certificate(builder: &mut SslContextBuilder, params: &ConnParams) -> Result<(), ConnectError> {
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
    let key_path = key_path(params);
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
fn watch_certificate_request(config: &mut SslRef, flags: Arc<CertFlags>) -> Result<(), openssl::error::ErrorStack> {
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

/// One attempt's SSL (from the shared context) plus libpq's post-handshake checks and the message inspector.
pub struct Tls {
    ssl: Ssl,
    host_check: Option<String>,
    capture: Arc<Mutex<TlsCapture>>,
    policy: Arc<AuthPolicy>,
    observed: SharedObserved,
}

impl<S> TlsConnect<S> for Tls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = Inspector<OpensslStream<S>>;
    type Error = Box<dyn StdError + Send + Sync>;
    type Future = Pin<Box<dyn std::future::Future<Output = Result<Self::Stream, Self::Error>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let Tls {
                ssl,
                host_check,
                capture,
                policy,
                observed,
            } = self;
            let handshake = handshake(ssl, stream).await;
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

/// Why a handshake failed, as postgres-openssl words it: OpenSSL's error, then the verification result if any.
#[derive(Debug, thiserror::Error)]
enum HandshakeError {
    #[error("{0}")]
    Setup(openssl::error::ErrorStack),
    #[error("{error}")]
    Failed { error: openssl::ssl::Error },
    #[error("{error}: {verify}")]
    Unverified {
        error: openssl::ssl::Error,
        verify: X509VerifyResult,
    },
}

/// The handshake on `stream`, buffered as postgres-openssl buffers it.
async fn handshake<S>(ssl: Ssl, stream: S) -> Result<OpensslStream<S>, HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let stream = tokio::io::BufReader::with_capacity(8192, stream);
    let mut stream = tokio_openssl::SslStream::new(ssl, stream).map_err(HandshakeError::Setup)?;
    match Pin::new(&mut stream).connect().await {
        Ok(()) => Ok(OpensslStream(stream)),
        Err(error) => match stream.ssl().verify_result() {
            X509VerifyResult::OK => Err(HandshakeError::Failed { error }),
            verify => Err(HandshakeError::Unverified { error, verify }),
        },
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

#[cfg(test)]
mod tests {
    use super::*;

    fn params(conninfo: &str, home: &Path) -> ConnParams {
        let env = crate::params::Environment::new(Default::default(), Some(home.to_path_buf()), "x");
        crate::params::resolve(Some(conninfo), &env).expect("conninfo resolves")
    }

    fn context_of(setup: &TlsSetup) -> *const openssl::ssl::SslContextRef {
        setup.context().expect("a TLS context") as *const _
    }

    /// A fleet of connections with the same settings builds one context between them, without the system store
    /// (each context once held 144 certificates, loaded for a connection that then threw them away).
    #[test]
    fn connections_with_the_same_settings_share_one_context_without_the_system_store() {
        let home = tempfile::tempdir().unwrap();
        let require = params("host=db.example port=5432 sslmode=require", home.path());
        let first = TlsSetup::new(&require).unwrap();
        let second = TlsSetup::new(&require).unwrap();
        assert_eq!(context_of(&first), context_of(&second));
        assert_eq!(first.context().unwrap().cert_store().all_certificates().len(), 0);
        assert!(!first.verifies_peer());
        let other = TlsSetup::new(&params(
            "host=db.example port=5432 sslmode=require ssl_min_protocol_version=TLSv1.3",
            home.path(),
        ))
        .unwrap();
        assert_ne!(
            context_of(&first),
            context_of(&other),
            "other settings, another context"
        );
    }

    /// A root file replaced on disk is read again, as libpq reads it on every connection.
    #[test]
    fn a_replaced_root_file_makes_a_new_context() {
        let home = tempfile::tempdir().unwrap();
        let root = home.path().join("root.crt");
        let issue = |cn: &str| {
            let key = openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
            let mut name = openssl::x509::X509NameBuilder::new().unwrap();
            name.append_entry_by_text("CN", cn).unwrap();
            let name = name.build();
            let mut b = openssl::x509::X509::builder().unwrap();
            b.set_version(2).unwrap();
            b.set_subject_name(&name).unwrap();
            b.set_issuer_name(&name).unwrap();
            b.set_pubkey(&key).unwrap();
            b.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap())
                .unwrap();
            b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(30).unwrap())
                .unwrap();
            b.sign(&key, openssl::hash::MessageDigest::sha256()).unwrap();
            b.build().to_pem().unwrap()
        };
        std::fs::write(&root, issue("First Root")).unwrap();
        let conninfo = format!("host=db.example sslmode=verify-ca sslrootcert={}", root.display());
        let first = TlsSetup::new(&params(&conninfo, home.path())).unwrap();
        assert!(first.verifies_peer());
        let subjects = |s: &TlsSetup| -> Vec<String> {
            s.context()
                .unwrap()
                .cert_store()
                .all_certificates()
                .iter()
                .map(|c| crate::tls::x509_name(c.subject_name()))
                .collect()
        };
        assert_eq!(subjects(&first), vec!["CN=First Root".to_string()]);
        // A new file (a new inode) in its place, as a rotation writes it.
        let next = home.path().join("root.crt.new");
        std::fs::write(&next, issue("Second Root")).unwrap();
        std::fs::rename(&next, &root).unwrap();
        let second = TlsSetup::new(&params(&conninfo, home.path())).unwrap();
        assert_eq!(subjects(&second), vec!["CN=Second Root".to_string()]);
    }
}
