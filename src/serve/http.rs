//! The HTTP side of `pgtls serve`: `/metrics`, `/healthz` and a small JSON API, on hyper (through axum's router),
//! with TLS (OpenSSL, as everywhere else in pgtls) and basic authentication from the web config.
//!
//! Bounded: at most [`MAX_CONNECTIONS`] connections at once, a TLS handshake and a request's headers must arrive
//! within [`HANDSHAKE_TIMEOUT`], and every answer is built from memory (a scrape never waits on a server).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use openssl::ssl::{Ssl, SslAcceptor, SslFiletype, SslMethod};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::api;
use super::webconfig::WebConfig;
use crate::collect::fleet::Fleet;

pub const MAX_CONNECTIONS: usize = 64;
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Successful logins remembered, so a scrape every few seconds does not pay bcrypt's cost each time.
const AUTH_CACHE: usize = 64;

/// (user, SHA-256 of hash and password) of logins that verified.
type AuthCache = HashSet<(String, [u8; 32])>;

#[derive(Clone)]
pub struct AppState {
    pub fleet: Arc<Fleet>,
    pub web: Arc<WebConfig>,
    /// The JSON API names users, hosts and applications: only on loopback, unless logins are required.
    pub api_allowed: bool,
    pub client_series: usize,
    auth_cache: Arc<Mutex<AuthCache>>,
}

impl AppState {
    pub fn new(fleet: Arc<Fleet>, web: WebConfig, listen: SocketAddr, client_series: usize) -> AppState {
        let api_allowed = listen.ip().is_loopback() || web.auth_required();
        AppState {
            fleet,
            web: Arc::new(web),
            api_allowed,
            client_series,
            auth_cache: Arc::default(),
        }
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/api/v1/targets", get(api::targets))
        .route("/api/v1/targets/{name}/ledger", get(api::ledger))
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

async fn metrics(State(state): State<AppState>) -> Response {
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
async fn authenticate(State(state): State<AppState>, request: axum::extract::Request, next: Next) -> Response {
    if state.web.auth_required() && !authorized(&state, request.headers()).await {
        let mut response = (StatusCode::UNAUTHORIZED, "login required\n").into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"pgtls\""),
        );
        return response;
    }
    next.run(request).await
}

async fn authorized(state: &AppState, headers: &HeaderMap) -> bool {
    let Some((user, password)) = basic_credentials(headers) else {
        return false;
    };
    let Some(hash) = state.web.users.get(&user).cloned() else {
        return false;
    };
    let digest: [u8; 32] = openssl::sha::sha256(format!("{hash}\0{password}").as_bytes());
    let key = (user, digest);
    if state
        .auth_cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(&key)
    {
        return true;
    }
    // bcrypt is slow on purpose (tens of ms at the usual cost): on a blocking thread and without the cache's lock,
    // so a flood of wrong passwords cannot stall the runtime that polls every target.
    let ok = tokio::task::spawn_blocking(move || bcrypt::verify(&password, &hash).unwrap_or(false))
        .await
        .unwrap_or(false);
    if ok {
        let mut cache = state.auth_cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= AUTH_CACHE {
            cache.clear();
        }
        cache.insert(key);
    }
    ok
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    use base64::Engine as _;
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") || encoded.len() > 4096 {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// The TLS side of the web config, checked at start so a bad file is a start-up error, not a silent plain listener.
pub fn acceptor(web: &WebConfig) -> Result<Option<Arc<SslAcceptor>>, String> {
    let Some(tls) = &web.tls else {
        return Ok(None);
    };
    let mut builder = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).map_err(|e| e.to_string())?;
    builder
        .set_certificate_chain_file(&tls.cert_file)
        .map_err(|e| format!("web config: cert_file {}: {e}", tls.cert_file.display()))?;
    builder
        .set_private_key_file(&tls.key_file, SslFiletype::PEM)
        .map_err(|e| format!("web config: key_file {}: {e}", tls.key_file.display()))?;
    builder
        .check_private_key()
        .map_err(|e| format!("web config: the key does not match the certificate: {e}"))?;
    Ok(Some(Arc::new(builder.build())))
}

/// Accept connections until `shutdown` resolves; each connection is served on its own task.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<SslAcceptor>>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
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
        let Ok((stream, _peer)) = accepted else {
            // EMFILE and friends: wait a little instead of spinning.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let app = app.clone();
        let tls = tls.clone();
        connections.spawn(async move {
            let _slot = slot;
            let service = TowerToHyperService::new(app);
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new()).header_read_timeout(HANDSHAKE_TIMEOUT);
            match tls {
                None => {
                    let _ = http.serve_connection(TokioIo::new(stream), service).await;
                }
                Some(acceptor) => {
                    let Ok(ssl) = Ssl::new(acceptor.context()) else { return };
                    let Ok(mut stream) = tokio_openssl::SslStream::new(ssl, stream) else {
                        return;
                    };
                    let handshake = std::pin::Pin::new(&mut stream).accept();
                    if !matches!(tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await, Ok(Ok(()))) {
                        return;
                    }
                    let _ = http.serve_connection(TokioIo::new(stream), service).await;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_read_strictly() {
        use base64::Engine as _;
        let mut h = HeaderMap::new();
        let encoded = base64::engine::general_purpose::STANDARD.encode("prom:se:cret");
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {encoded}")).unwrap(),
        );
        assert_eq!(basic_credentials(&h), Some(("prom".into(), "se:cret".into())));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer abc"));
        assert_eq!(basic_credentials(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic !!!"));
        assert_eq!(basic_credentials(&h), None);
    }
}
