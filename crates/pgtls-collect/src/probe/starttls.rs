//! PostgreSQL's STARTTLS: send SSLRequest, read exactly one byte ('S' or 'N'), then hand the socket to TLS.
//!
//! Exactly one byte: anything the server sent after it would be plaintext injected before the
//! handshake (CVE-2021-23222), so nothing more is read and nothing is sent before the answer.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use openssl::ssl::{Ssl, SslVerifyMode};
use openssl::x509::X509;

pub use crate::conn::tls::SSL_REQUEST;

#[derive(Debug)]
pub enum Answer {
    /// The server agreed ('S'); the stream is ready for a TLS handshake.
    Tls(TcpStream),
    /// The server does not do TLS ('N').
    NoTls,
}

pub fn resolve(host: &str, hostaddr: Option<std::net::IpAddr>, port: u16) -> io::Result<SocketAddr> {
    if let Some(ip) = hostaddr {
        return Ok(SocketAddr::new(ip, port));
    }
    (host, port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no address for {host}")))
}

pub fn request(addr: SocketAddr, timeout: Duration) -> io::Result<Answer> {
    request_on(TcpStream::connect_timeout(&addr, timeout)?, timeout)
}

/// SSLRequest on a stream already connected (so the caller could note its local address first).
pub fn request_on(mut stream: TcpStream, timeout: Duration) -> io::Result<Answer> {
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(&SSL_REQUEST)?;
    let mut answer = [0u8; 1];
    stream.read_exact(&mut answer)?;
    match answer[0] {
        b'S' => Ok(Answer::Tls(stream)),
        b'N' => Ok(Answer::NoTls),
        other => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected answer {other:#04x} to SSLRequest"),
        )),
    }
}

/// The chain the server sends, leaf first, without verifying it (for error messages and the probe).
pub fn peer_chain(host: &str, addr: SocketAddr, timeout: Duration) -> io::Result<Option<Vec<X509>>> {
    let Answer::Tls(stream) = request(addr, timeout)? else {
        return Ok(None);
    };
    // No trusted roots: nothing is verified here, so the system store is not loaded.
    let mut builder = crate::conn::tls_context::client_context_builder().map_err(io::Error::other)?;
    builder.set_verify(SslVerifyMode::NONE);
    let mut ssl = Ssl::new(&builder.build()).map_err(io::Error::other)?;
    if host.parse::<std::net::IpAddr>().is_err() && !host.is_empty() {
        ssl.set_hostname(host).map_err(io::Error::other)?;
    }
    let mut tls = ssl.connect(stream).map_err(|e| io::Error::other(e.to_string()))?;
    let chain = tls
        .ssl()
        .peer_cert_chain()
        .map(|c| c.iter().map(|x| x.to_owned()).collect())
        .unwrap_or_default();
    // A clean close_notify keeps the server log free of "could not receive data" noise.
    let _ = tls.shutdown();
    Ok(Some(chain))
}
