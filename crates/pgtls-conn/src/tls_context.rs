//! Client SSL contexts built without the system trust store, and the TLS stream tokio-postgres reads through.
//!
//! `SslConnector::builder` loads the whole system store into every context it makes (144 certificates, 33-35 ms of
//! CPU under OpenSSL 3.0), and pgtls's connections mostly throw it away: the poll connection replaces it with its own
//! roots (or none), the probe's handshakes do not verify. So contexts start empty here, and the system store is
//! loaded only where a verification uses it (`sslrootcert=system`, the probe's system verdict), once per process.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::ssl::{SslContextBuilder, SslMethod, SslMode, SslOptions, SslRef};
use openssl::x509::store::{X509Store, X509StoreBuilder};
use tokio::io::{AsyncRead, AsyncWrite, BufReader, ReadBuf};
use tokio_openssl::SslStream;
use tokio_postgres::tls::{ChannelBinding, TlsStream};

/// A client context with `SslConnector::builder`'s options and modes but no trusted roots: whoever verifies
/// adds the roots it means.
pub fn client_context_builder() -> Result<SslContextBuilder, ErrorStack> {
    let mut ctx = SslContextBuilder::new(SslMethod::tls_client())?;
    let mut opts = SslOptions::ALL | SslOptions::NO_COMPRESSION | SslOptions::NO_SSLV2 | SslOptions::NO_SSLV3;
    opts &= !SslOptions::DONT_INSERT_EMPTY_FRAGMENTS;
    ctx.set_options(opts);
    // RELEASE_BUFFERS: an idle connection (a fleet holds one per target) gives back its 16 kB read and write
    // buffers between polls; a poll reallocates them, a cost measured as negligible next to the poll itself.
    ctx.set_mode(
        SslMode::AUTO_RETRY
            | SslMode::ACCEPT_MOVING_WRITE_BUFFER
            | SslMode::ENABLE_PARTIAL_WRITE
            | SslMode::RELEASE_BUFFERS,
    );
    Ok(ctx)
}

/// The system's trusted roots (OpenSSL's default file and directory, or `SSL_CERT_FILE`/`SSL_CERT_DIR`), loaded
/// once per process on first use and shared; `None` when they cannot be loaded.
pub fn system_store() -> Option<Arc<X509Store>> {
    static STORE: OnceLock<Option<Arc<X509Store>>> = OnceLock::new();
    STORE
        .get_or_init(|| {
            let mut builder = X509StoreBuilder::new().ok()?;
            builder.set_default_paths().ok()?;
            Some(Arc::new(builder.build()))
        })
        .clone()
}

/// Whether a handshake from `ssl` would offer any cipher suite. OpenSSL accepts a cipher list whose suites the
/// linked build cannot use (`3DES:RC4` under OpenSSL 3) and only fails when the handshake starts, after the
/// connection is open, which leaves an "EOF detected" line in the server's log: check before connecting.
#[allow(
    unsafe_code,
    reason = "FFI to SSL_get1_supported_ciphers, which the openssl crate does not wrap"
)]
pub fn offers_ciphers(ssl: &SslRef) -> bool {
    use foreign_types::ForeignTypeRef;
    unsafe extern "C" {
        // In libssl since 1.1.0: the suites a ClientHello from this SSL would carry, given its versions.
        fn SSL_get1_supported_ciphers(ssl: *mut openssl_sys::SSL) -> *mut openssl_sys::OPENSSL_STACK;
    }
    // SAFETY: the SSL pointer is valid for the call; the returned stack is ours to free (not its elements, which
    // the SSL_CTX owns), and a null stack means none.
    unsafe {
        let stack = SSL_get1_supported_ciphers(ssl.as_ptr());
        if stack.is_null() {
            return false;
        }
        let count = openssl_sys::OPENSSL_sk_num(stack);
        openssl_sys::OPENSSL_sk_free(stack);
        count > 0
    }
}

/// The TLS stream of one connection, as postgres-openssl's, with SCRAM's `tls-server-end-point` binding.
pub struct OpensslStream<S>(pub(crate) SslStream<BufReader<S>>);

impl<S> OpensslStream<S> {
    pub fn ssl(&self) -> &SslRef {
        self.0.ssl()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for OpensslStream<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for OpensslStream<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for OpensslStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        match tls_server_end_point(self.0.ssl()) {
            Some(hash) => ChannelBinding::tls_server_end_point(hash),
            None => ChannelBinding::none(),
        }
    }
}

/// RFC 5929: the leaf's hash with its signature's digest, SHA-256 in place of MD5 and SHA-1.
fn tls_server_end_point(ssl: &SslRef) -> Option<Vec<u8>> {
    let cert = ssl.peer_certificate()?;
    let algorithms = cert.signature_algorithm().object().nid().signature_algorithms()?;
    let md = match algorithms.digest {
        Nid::MD5 | Nid::SHA1 => MessageDigest::sha256(),
        nid => MessageDigest::from_nid(nid)?,
    };
    cert.digest(md).ok().map(|d| d.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::ssl::{Ssl, SslVersion};

    #[test]
    fn a_context_starts_with_no_trusted_roots() {
        let ctx = client_context_builder().unwrap().build();
        assert_eq!(ctx.cert_store().all_certificates().len(), 0);
    }

    fn tls12_only(list: &str, level: Option<u32>) -> Option<Ssl> {
        let mut builder = client_context_builder().unwrap();
        builder.set_min_proto_version(Some(SslVersion::TLS1_2)).unwrap();
        builder.set_max_proto_version(Some(SslVersion::TLS1_2)).unwrap();
        if let Some(level) = level {
            builder.set_security_level(level);
        }
        // A list OpenSSL refuses outright never gets as far as a connection either.
        builder.set_cipher_list(list).ok()?;
        Some(Ssl::new(&builder.build()).unwrap())
    }

    #[test]
    fn an_unusable_cipher_list_is_seen_before_any_connection() {
        let usable = tls12_only("ECDHE-RSA-AES128-GCM-SHA256", None).expect("a cipher every build has");
        assert!(offers_ciphers(&usable));
        // NULL-encryption suites are in the list, but security level 1 (the default) will not offer them.
        let unusable = tls12_only("eNULL", Some(1)).expect("OpenSSL lists the NULL suites");
        assert!(!offers_ciphers(&unusable));
        assert!(
            offers_ciphers(&tls12_only("eNULL", Some(0)).unwrap()),
            "level 0 offers them"
        );
    }
}
