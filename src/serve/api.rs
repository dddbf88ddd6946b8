//! The JSON API for tooling: `/api/v1/targets` (one row per target, as the Servers screen shows them) and
//! `/api/v1/targets/{name}/ledger` (a target's clients) and `/api/v1/targets/{name}/after` (the after-change
//! report the dashboard and `check` show: refused addresses with their ranked candidates, scans apart). Both name users, hosts and applications, so they answer
//! only on a loopback listener or behind basic authentication (see [`super::http::ServeState::api_allowed`]).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::http::ServeState;
use crate::analysis::fleet::ServerRow;

const REFUSED: &str = "the JSON API names users, hosts and applications: it answers on a loopback --listen address, \
                       or with basic_auth_users in --web-config\n";

pub async fn targets(State(state): State<ServeState>) -> Response {
    if !state.api_allowed {
        return (StatusCode::FORBIDDEN, REFUSED).into_response();
    }
    let rows: Vec<ServerRow> = state.fleet.rows();
    Json(rows).into_response()
}

pub async fn ledger(State(state): State<ServeState>, Path(name): Path<String>) -> Response {
    if !state.api_allowed {
        return (StatusCode::FORBIDDEN, REFUSED).into_response();
    }
    let (Some(request), Some(shared)) = (state.fleet.clients(&name), state.fleet.state(&name)) else {
        return (StatusCode::NOT_FOUND, "no such target\n").into_response();
    };
    if shared.lock().history.is_none() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "no ledger yet: the target has not been polled\n",
        )
            .into_response();
    }
    // Asked of the target's ledger: the state keeps no copy of every client's record.
    match request.answer().await {
        Ok(clients) => Json(clients).into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response(),
    }
}

/// The target's after-change standing for each target change, and each pooler's, exactly as computed for the
/// dashboard and `check` ([`crate::analysis::after`]).
pub async fn after(State(state): State<ServeState>, Path(name): Path<String>) -> Response {
    if !state.api_allowed {
        return (StatusCode::FORBIDDEN, REFUSED).into_response();
    }
    let Some(shared) = state.fleet.state(&name) else {
        return (StatusCode::NOT_FOUND, "no such target\n").into_response();
    };
    let s = shared.lock();
    match &s.history {
        Some(history) => Json(serde_json::json!({
            "after": history.after,
            "pooler_after": history.pooler_after,
        }))
        .into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "no ledger yet: the target has not been polled\n",
        )
            .into_response(),
    }
}
