//! The HTTP side of `pgtls serve`: `/metrics`, `/healthz` and a small JSON API, on hyper (through axum's router),
//! with TLS (OpenSSL, as everywhere else in pgtls) and basic authentication from the web config.
//!
//! Bounded, so idle, slow or abusive clients cannot starve scrapes: at most [`MAX_CONNECTIONS`] connections, at
//! most [`PER_ADDRESS`] from one address, and past either cap a new connection closes an older one that has not
//! sent a request (see [`super::admission`]). A connection must send its first byte within [`FIRST_BYTE_TIMEOUT`]
//! and complete its first request head (TLS handshake included) within [`REQUEST_HEAD_TIMEOUT`]; later requests
//! on a kept-alive connection have that long too. Every answer is built from memory (a scrape never waits on a
//! server), and logins are checked as [`super::auth`] says.

use std::net::SocketAddr;
use std::os::fd::AsFd as _;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper::service::Service as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use openssl::error::ErrorStack;
use openssl::ssl::{Ssl, SslAcceptor, SslFiletype, SslMethod};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use super::admission::{Admission, Limits, Phase, Ticket};
use super::api;
use super::auth::{Logins, LoginsError, Verdict};
use super::webconfig::WebConfig;
use crate::collect::fleet::Fleet;

pub const MAX_CONNECTIONS: usize = 64;
/// A quarter of the connections: one address (a scanner, a client gone wrong) leaves room for Prometheus.
pub const PER_ADDRESS: usize = 16;
/// A client that connects says something at once: a scraper's request, a TLS ClientHello.
pub const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(2);
pub const REQUEST_HEAD_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct ServeState {
    pub fleet: Arc<Fleet>,
    pub web: Arc<WebConfig>,
    /// The JSON API names users, hosts and applications: only on loopback, unless logins are required.
    pub api_allowed: bool,
    pub client_series: usize,
    logins: Arc<Logins>,
}

impl ServeState {
    pub fn new(
        fleet: Arc<Fleet>,
        web: WebConfig,
        listen: SocketAddr,
        client_series: usize,
    ) -> Result<ServeState, LoginsError> {
        let api_allowed = names_allowed(listen, &web);
        let logins = Arc::new(Logins::new(&web.users)?);
        Ok(ServeState {
            fleet,
            web: Arc::new(web),
            api_allowed,
            client_series,
            logins,
        })
    }
}

/// Whether answers may name users, databases, hosts and applications (the JSON API, `--client-series`): on a
/// loopback listener, or behind basic authentication.
pub fn names_allowed(listen: SocketAddr, web: &WebConfig) -> bool {
    listen.ip().is_loopback() || web.auth_required()
}

pub fn router(state: ServeState) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/api/v1/targets", get(api::targets))
        .route("/api/v1/targets/{name}/ledger", get(api::ledger))
        .route("/api/v1/targets/{name}/after", get(api::after))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .with_state(state)
}

async fn index() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "pgtls serve\n\n/metrics                     Prometheus metrics\n/healthz                     liveness\n\
         /api/v1/targets              targets as JSON\n/api/v1/targets/NAME/ledger  a target's client ledger as JSON\n",
    )
}

async fn metrics(State(state): State<ServeState>) -> Response {
    let states = state.fleet.states();
    match super::metrics::render(&states, state.client_series) {
        Ok(text) => ([(header::CONTENT_TYPE, super::metrics::CONTENT_TYPE)], text).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "metrics could not be encoded\n").into_response(),
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// Basic authentication when the web config lists users; every endpoint is behind it, `/healthz` included, as in
/// exporter-toolkit.
async fn authenticate(State(state): State<ServeState>, request: axum::extract::Request, next: Next) -> Response {
    if !state.logins.required() {
        return next.run(request).await;
    }
    match state.logins.check(request.headers()).await {
        Verdict::Allowed => next.run(request).await,
        Verdict::Denied => {
            let mut response = (StatusCode::UNAUTHORIZED, "login required\n").into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"pgtls\""),
            );
            response
        }
        Verdict::Busy => {
            let mut response = (StatusCode::TOO_MANY_REQUESTS, "too many logins at once, try again\n").into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
    }
}

/// Why the web config's TLS side cannot serve; one line.
#[derive(Debug, thiserror::Error)]
pub enum AcceptorError {
    /// OpenSSL could not set up a TLS server.
    #[error(transparent)]
    Setup(ErrorStack),
    /// The certificate chain file does not load.
    #[error("web config: cert_file {}: {source}", path.display())]
    CertFile {
        path: std::path::PathBuf,
        source: ErrorStack,
    },
    /// The private key file does not load.
    #[error("web config: key_file {}: {source}", path.display())]
    KeyFile {
        path: std::path::PathBuf,
        source: ErrorStack,
    },
    /// The key is not the certificate's.
    #[error("web config: the key does not match the certificate: {0}")]
    KeyMismatch(ErrorStack),
}

/// The TLS side of the web config, checked at start so a bad file is a start-up error, not a silent plain listener.
pub fn acceptor(web: &WebConfig) -> Result<Option<Arc<SslAcceptor>>, AcceptorError> {
    let Some(tls) = &web.tls else {
        return Ok(None);
    };
    let mut builder = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).map_err(AcceptorError::Setup)?;
    builder
        .set_certificate_chain_file(&tls.cert_file)
        .map_err(|source| AcceptorError::CertFile {
            path: tls.cert_file.clone(),
            source,
        })?;
    builder
        .set_private_key_file(&tls.key_file, SslFiletype::PEM)
        .map_err(|source| AcceptorError::KeyFile {
            path: tls.key_file.clone(),
            source,
        })?;
    builder.check_private_key().map_err(AcceptorError::KeyMismatch)?;
    Ok(Some(Arc::new(builder.build())))
}

/// Accept connections until `shutdown` resolves; each connection is served on its own task.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<SslAcceptor>>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let admission = Admission::new(Limits {
        total: MAX_CONNECTIONS,
        per_address: PER_ADDRESS,
    });
    // Connection tasks are owned here: reaped as they end (a panic is said, not lost) and aborted on shutdown.
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => return,
            Some(ended) = connections.join_next() => {
                if let Err(e) = ended && e.is_panic() {
                    crate::cmd::warn("serve: an HTTP connection's task panicked");
                }
                continue;
            }
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, peer)) = accepted else {
            // EMFILE and friends: wait a little instead of spinning.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        // A duplicate of the socket's descriptor: without one (out of descriptors) the connection is only judged
        // by what its task has seen.
        let socket = stream.as_fd().try_clone_to_owned().ok().map(std::net::TcpStream::from);
        let Ok(ticket) = admission.admit(peer.ip(), socket) else {
            // Every connection it could close is answering a request. Dropping the stream closes it.
            continue;
        };
        connections.spawn(connection(stream, ticket, app.clone(), tls.clone()));
    }
}

/// One connection, until it ends, is closed to make room for another, or has sent no complete request within
/// [`REQUEST_HEAD_TIMEOUT`] of being accepted.
async fn connection(stream: TcpStream, mut ticket: Ticket, app: Router, tls: Option<Arc<SslAcceptor>>) {
    let closed = ticket.closed();
    let ticket = Arc::new(ticket);
    let due = Instant::now() + REQUEST_HEAD_TIMEOUT;
    let first_request_late = async {
        tokio::time::sleep_until(due).await;
        if !matches!(ticket.phase(), Some(Phase::Fresh | Phase::Started)) {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        _ = closed => {}
        () = first_request_late => {}
        () = serve_connection(stream, Arc::clone(&ticket), app, tls) => {}
    }
}

async fn serve_connection(stream: TcpStream, ticket: Arc<Ticket>, app: Router, tls: Option<Arc<SslAcceptor>>) {
    let mut first = [0u8; 1];
    if !matches!(
        tokio::time::timeout(FIRST_BYTE_TIMEOUT, stream.peek(&mut first)).await,
        Ok(Ok(1..))
    ) {
        return;
    }
    ticket.set_phase(Phase::Started);
    let inner = TowerToHyperService::new(app);
    // The phases the admission needs: busy (never closed) while a request is answered, idle (closed after the
    // silent ones) once it has been.
    let service = hyper::service::service_fn(move |request| {
        ticket.set_phase(Phase::Busy);
        let answer = inner.call(request);
        let ticket = Arc::clone(&ticket);
        async move {
            let response = answer.await;
            ticket.set_phase(Phase::Idle);
            response
        }
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(REQUEST_HEAD_TIMEOUT);
    match tls {
        None => {
            let _ = http.serve_connection(TokioIo::new(stream), service).await;
        }
        Some(acceptor) => {
            let Ok(ssl) = Ssl::new(acceptor.context()) else { return };
            let Ok(mut stream) = tokio_openssl::SslStream::new(ssl, stream) else {
                return;
            };
            if std::pin::Pin::new(&mut stream).accept().await.is_err() {
                return;
            }
            let _ = http.serve_connection(TokioIo::new(stream), service).await;
        }
    }
}
