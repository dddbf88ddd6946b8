//! A stream wrapper under tokio-postgres that reads the backend's message headers as they pass.
//!
//! tokio-postgres decides authentication on its own, so the rules libpq enforces before it answers an
//! authentication request (`require_auth`, `channel_binding=require`) are enforced here, on the bytes,
//! before tokio-postgres sees the request: a disallowed request becomes a read error and no password is
//! sent. The same walk over headers bounds message sizes, since postgres-protocol reserves whatever
//! length a message announces.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, TlsStream};

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::rules::{AuthMethod, ChannelBindingMode, RequireAuth, SslCertMode};
use crate::tls::SSL_REQUEST;

/// Whether the server asked for a client certificate and whether one was sent (libpq's cert_cb).
#[derive(Debug, Default)]
pub struct CertFlags {
    pub requested: AtomicBool,
    pub sent: AtomicBool,
}

/// libpq refuses longer messages of the types that have no reason to be long (fe-protocol3.c).
pub const MAX_SHORT_MESSAGE: usize = 30_000;
/// Rows, row descriptions, errors and notices may be long; a few MiB is far above any poll's row.
pub const MAX_LONG_MESSAGE: usize = 16 * 1024 * 1024;

/// libpq's VALID_LONG_MESSAGE_TYPE, plus CopyData and FunctionCallResponse.
fn may_be_long(kind: u8) -> bool {
    matches!(kind, b'T' | b'D' | b'd' | b'V' | b'E' | b'N' | b'A')
}

/// What authentication the connection asked for; decided before connecting.
#[derive(Debug, Default)]
pub struct AuthPolicy {
    pub channel_binding: ChannelBindingMode,
    pub require_auth: Option<RequireAuth>,
    pub sslcertmode: SslCertMode,
    /// Filled in by the TLS handshake (never set on a plaintext connection).
    pub cert: Arc<CertFlags>,
    /// Longest long message accepted; `None` for [`MAX_LONG_MESSAGE`].
    pub message_limit: Option<usize>,
    /// Counts the message bytes read, for a caller that reads a reply as a stream and bounds it.
    pub received: Received,
}

/// What the connection has read from the server, as seen below tokio-postgres: the bytes of its messages (what a
/// caller reading a reply row by row compares with its byte cap: rows as tokio-postgres hands them over do not tell
/// their size), and the message pgtls refused, if it refused one (tokio-postgres then says only that the
/// connection closed).
#[derive(Debug, Clone, Default)]
pub struct Received {
    bytes: Arc<AtomicU64>,
    refusal: Arc<Mutex<Option<Refusal>>>,
}

impl Received {
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Why pgtls stopped reading this connection, once it did.
    pub fn refusal(&self) -> Option<Refusal> {
        self.refusal.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn add(&self, n: usize) {
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
    }

    fn refused(&self, refusal: &Refusal) {
        self.refusal
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert_with(|| refusal.clone());
    }
}

/// Where the inspector sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// On the socket: sees an SSLRequest and its answer, then messages or (after 'S') TLS bytes.
    Socket,
    /// On the socket of a direct TLS connection: everything is TLS.
    SocketDirectTls,
    /// Above TLS: sees the messages.
    InsideTls,
}

/// What the inspector saw, shared with the connect step for its report and its errors.
#[derive(Debug, Default, Clone)]
pub struct Observed {
    /// Authentication requests in the order the server sent them.
    pub auth_requests: Vec<AuthMethod>,
    /// SASL mechanisms the server offered.
    pub sasl_mechanisms: Vec<String>,
    /// The SCRAM exchange was bound to the TLS channel (SCRAM-SHA-256-PLUS).
    pub channel_bound: bool,
    /// Why the inspector stopped the connection, in libpq's words.
    pub refusal: Option<Refusal>,
    /// BackendKeyData: what a CancelRequest for this session must carry.
    pub cancel_key: Option<CancelKey>,
}

/// The backend's pid and secret, for a CancelRequest on a new connection. The secret is never shown.
#[derive(Clone, PartialEq, Eq)]
pub struct CancelKey {
    pub pid: i32,
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for CancelKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CancelKey")
            .field("pid", &self.pid)
            .field("secret", &"****")
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Authentication rules (`require_auth`, `channel_binding`).
    Auth(String),
    /// A message over its size limit or malformed.
    Protocol(String),
}

pub type SharedObserved = Arc<Mutex<Observed>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing written yet: an SSLRequest or a start-up message comes first.
    Start,
    /// SSLRequest sent; the next byte read is the one-byte answer.
    SslAnswer,
    /// TLS bytes: the inspector above the TLS stream sees the messages.
    Opaque,
    Messages,
}

/// AsyncRead/AsyncWrite wrapper; see the module docs.
pub struct Inspector<S> {
    inner: S,
    state: State,
    /// Inspecting the messages inside TLS (channel binding is possible).
    over_tls: bool,
    header: [u8; 5],
    header_len: usize,
    body_left: usize,
    /// The body of an authentication request or of BackendKeyData, kept until complete.
    body: Option<(u8, Vec<u8>)>,
    policy: Arc<AuthPolicy>,
    observed: SharedObserved,
}

impl<S> Inspector<S> {
    pub fn new(inner: S, layer: Layer, policy: Arc<AuthPolicy>, observed: SharedObserved) -> Self {
        Inspector {
            inner,
            state: match layer {
                Layer::Socket => State::Start,
                Layer::SocketDirectTls => State::Opaque,
                Layer::InsideTls => State::Messages,
            },
            over_tls: layer == Layer::InsideTls,
            header: [0; 5],
            header_len: 0,
            body_left: 0,
            body: None,
            policy,
            observed,
        }
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    fn refuse(&self, refusal: Refusal) -> io::Error {
        let text = match &refusal {
            Refusal::Auth(t) | Refusal::Protocol(t) => t.clone(),
        };
        self.policy.received.refused(&refusal);
        let mut observed = self.observed.lock().unwrap_or_else(PoisonError::into_inner);
        observed.refusal.get_or_insert(refusal);
        io::Error::new(io::ErrorKind::InvalidData, text)
    }

    /// Walks newly read bytes; an error means the bytes must not reach tokio-postgres.
    fn scan(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            match self.state {
                State::Opaque => return Ok(()),
                State::Start | State::SslAnswer => {
                    // The one-byte answer to SSLRequest: 'S' hands the socket to TLS.
                    self.state = if bytes[0] == b'S' {
                        State::Opaque
                    } else {
                        State::Messages
                    };
                    if self.state == State::Opaque {
                        return Ok(());
                    }
                    bytes = &bytes[1..];
                    if bytes.is_empty() {
                        return Ok(());
                    }
                    // 'N' is followed by messages (or an 'E' from an old server): fall through.
                    continue;
                }
                State::Messages => {}
            }
            if self.body_left == 0 && self.header_len < 5 {
                let take = (5 - self.header_len).min(bytes.len());
                self.policy.received.add(take);
                self.header[self.header_len..self.header_len + take].copy_from_slice(&bytes[..take]);
                self.header_len += take;
                bytes = &bytes[take..];
                if self.header_len == 5 {
                    self.start_message()?;
                }
                continue;
            }
            let take = self.body_left.min(bytes.len());
            self.policy.received.add(take);
            if let Some((_, body)) = self.body.as_mut() {
                body.extend_from_slice(&bytes[..take]);
            }
            self.body_left -= take;
            bytes = &bytes[take..];
            if self.body_left == 0 {
                self.end_message()?;
            }
        }
        Ok(())
    }

    fn start_message(&mut self) -> io::Result<()> {
        let kind = self.header[0];
        let announced = u32::from_be_bytes([self.header[1], self.header[2], self.header[3], self.header[4]]) as usize;
        let limit = if may_be_long(kind) {
            self.policy.message_limit.unwrap_or(MAX_LONG_MESSAGE)
        } else {
            MAX_SHORT_MESSAGE
        };
        if announced < 4 {
            return Err(self.refuse(Refusal::Protocol(format!(
                "invalid message length {announced} from the server (message type {})",
                kind_text(kind)
            ))));
        }
        if announced > limit {
            return Err(self.refuse(Refusal::Protocol(format!(
                "the server sent a message of {announced} bytes (type {}), over pgtls's limit of {limit} bytes",
                kind_text(kind)
            ))));
        }
        self.body_left = announced - 4;
        self.body = matches!(kind, b'R' | b'K').then(|| (kind, Vec::new()));
        if self.body_left == 0 {
            self.end_message()?;
        }
        Ok(())
    }

    fn end_message(&mut self) -> io::Result<()> {
        self.header_len = 0;
        match self.body.take() {
            Some((b'R', body)) => {
                if let Err(refusal) = self.on_auth_request(&body) {
                    return Err(self.refuse(refusal));
                }
            }
            Some((_, body)) if body.len() >= 8 => {
                let pid = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
                let mut observed = self.observed.lock().unwrap_or_else(PoisonError::into_inner);
                observed.cancel_key = Some(CancelKey {
                    pid,
                    secret: body[4..].to_vec(),
                });
            }
            _ => {}
        }
        Ok(())
    }

    /// libpq's check_expected_areq and the channel binding checks of pg_SASL_init, in its words.
    fn on_auth_request(&mut self, body: &[u8]) -> Result<(), Refusal> {
        let code = body
            .get(..4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| Refusal::Protocol("authentication request too short".to_string()))?;
        let method = AuthMethod::from_code(code);
        let mut observed = self.observed.lock().unwrap_or_else(PoisonError::into_inner);
        let first_request = observed.auth_requests.is_empty();
        if let Some(m) = method {
            observed.auth_requests.push(m);
        }
        let require_cb = self.policy.channel_binding == ChannelBindingMode::Require;
        match code {
            // AuthenticationOk
            0 => {
                if self.policy.sslcertmode == SslCertMode::Require {
                    if !self.policy.cert.requested.load(Ordering::SeqCst) {
                        return Err(Refusal::Auth("server did not request an SSL certificate".to_string()));
                    }
                    if !self.policy.cert.sent.load(Ordering::SeqCst) {
                        return Err(Refusal::Auth(
                            "server accepted connection without a valid SSL certificate".to_string(),
                        ));
                    }
                }
                if let Some(required) = &self.policy.require_auth
                    && first_request
                    && !required.allows_none()
                {
                    return Err(Refusal::Auth(
                        required.failure("server did not complete authentication"),
                    ));
                }
                if require_cb && !observed.channel_bound {
                    return Err(Refusal::Auth(
                        "channel binding required, but server authenticated client without channel binding".to_string(),
                    ));
                }
                Ok(())
            }
            // SASL continue / final
            11 | 12 => Ok(()),
            _ => {
                let Some(method) = method else {
                    return Err(Refusal::Protocol(format!("authentication method {code} not supported")));
                };
                if let Some(required) = &self.policy.require_auth
                    && !required.allows(method)
                {
                    return Err(Refusal::Auth(required.failure(method.requested())));
                }
                if method != AuthMethod::ScramSha256 {
                    if require_cb {
                        return Err(Refusal::Auth(
                            "channel binding required but not supported by server's authentication request".to_string(),
                        ));
                    }
                    return Ok(());
                }
                let mechanisms: Vec<String> = body[4..]
                    .split(|b| *b == 0)
                    .filter(|m| !m.is_empty())
                    .map(|m| String::from_utf8_lossy(m).into_owned())
                    .collect();
                let plus = mechanisms.iter().any(|m| m == "SCRAM-SHA-256-PLUS");
                observed.sasl_mechanisms = mechanisms;
                if require_cb && !self.over_tls {
                    return Err(Refusal::Auth(
                        "channel binding required, but SSL not in use".to_string(),
                    ));
                }
                if require_cb && !plus {
                    return Err(Refusal::Auth(
                        "channel binding is required, but server did not offer an authentication method that supports channel binding"
                            .to_string(),
                    ));
                }
                // tokio-postgres takes SCRAM-SHA-256-PLUS whenever it is offered over TLS, unless disabled.
                observed.channel_bound =
                    plus && self.over_tls && self.policy.channel_binding != ChannelBindingMode::Disable;
                Ok(())
            }
        }
    }
}

fn kind_text(kind: u8) -> String {
    if kind.is_ascii_graphic() {
        format!("'{}'", kind as char)
    } else {
        format!("0x{kind:02x}")
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Inspector<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => match this.scan(&buf.filled()[before..]) {
                Ok(()) => Poll::Ready(Ok(())),
                Err(e) => {
                    buf.set_filled(before);
                    Poll::Ready(Err(e))
                }
            },
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Inspector<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.state == State::Start {
            self.state = if buf.starts_with(&SSL_REQUEST) {
                State::SslAnswer
            } else {
                State::Messages
            };
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S: TlsStream + Unpin> TlsStream for Inspector<S> {
    fn channel_binding(&self) -> ChannelBinding {
        self.inner.channel_binding()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inspector(message_limit: Option<usize>) -> Inspector<()> {
        let policy = AuthPolicy {
            message_limit,
            ..AuthPolicy::default()
        };
        Inspector::new((), Layer::InsideTls, Arc::new(policy), SharedObserved::default())
    }

    fn data_row(announced: u32, body: usize) -> Vec<u8> {
        let mut row = vec![b'D'];
        row.extend_from_slice(&announced.to_be_bytes());
        row.extend(std::iter::repeat_n(0u8, body));
        row
    }

    /// A caller's own limit (a pooler's console) refuses a row the connection's default would take, and every
    /// byte of the messages read is counted, split across reads or not.
    #[test]
    fn a_row_over_the_callers_limit_is_refused_and_every_byte_is_counted() {
        let mut small = inspector(Some(100));
        let row = data_row(54, 50);
        small.scan(&row[..3]).unwrap();
        small.scan(&row[3..]).unwrap();
        assert_eq!(small.policy.received.bytes(), 55);
        assert_eq!(small.policy.received.refusal(), None);
        let err = small.scan(&data_row(105, 0)).unwrap_err();
        assert!(err.to_string().contains("over pgtls's limit of 100 bytes"), "{err}");
        assert!(
            matches!(small.policy.received.refusal(), Some(Refusal::Protocol(text)) if text == err.to_string()),
            "the refusal is kept for the caller, whom tokio-postgres tells only that the connection closed"
        );

        let mut default = inspector(None);
        default.scan(&data_row(105, 101)).unwrap();
        assert_eq!(default.policy.received.bytes(), 106);
    }
}
