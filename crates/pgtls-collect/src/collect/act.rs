//! Acting on a session, as pg_activity does: cancel its query or terminate it. The collector's connection runs
//! the statement, so the dashboard never opens one of its own and the poll timeout bounds the wait.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_postgres::Client;

/// What to do to a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalKind {
    /// pg_cancel_backend: the running query stops, the session stays.
    Cancel,
    /// pg_terminate_backend: the session ends.
    Terminate,
}

impl SignalKind {
    pub fn verb(self) -> &'static str {
        match self {
            SignalKind::Cancel => "cancel",
            SignalKind::Terminate => "terminate",
        }
    }

    fn function(self) -> &'static str {
        match self {
            SignalKind::Cancel => "pg_cancel_backend",
            SignalKind::Terminate => "pg_terminate_backend",
        }
    }
}

/// One backend, named by pid and start time together: pids are reused, so a pid alone could hit a newer
/// session that took the number after the one on screen ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignalRequest {
    pub kind: SignalKind,
    pub pid: i32,
    pub backend_start: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignalOutcome {
    /// The server sent the signal.
    Sent,
    /// No backend has this pid with this start time any more (it ended, or the pid was reused).
    Gone,
    /// The backend was found but the server did not signal it (it ended in between; the server warns why).
    NotSent,
    /// The server refused: its own message (and detail), unsanitised; views make it safe.
    Refused(String),
    /// No answer: not connected, the statement timed out, or the connection broke.
    Failed(String),
}

/// Run the signal, bounded by `limit`. The collector's own backend is excluded in the statement too, not only by
/// the dashboard: pgtls never signals itself.
pub async fn signal(client: &Client, request: SignalRequest, limit: Duration) -> SignalOutcome {
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&request.pid, &request.backend_start];
    match tokio::time::timeout(
        limit,
        client.query_opt(&super::sql::signal(request.kind.function()), &params),
    )
    .await
    {
        Err(_) => SignalOutcome::Failed(format!("no answer within {} s", limit.as_secs())),
        Ok(Ok(None)) => SignalOutcome::Gone,
        Ok(Ok(Some(row))) => match row.try_get::<_, Option<bool>>(0) {
            Ok(Some(true)) => SignalOutcome::Sent,
            Ok(_) => SignalOutcome::NotSent,
            Err(e) => SignalOutcome::Failed(e.to_string()),
        },
        Ok(Err(e)) => match e.as_db_error() {
            Some(db) => SignalOutcome::Refused(match db.detail() {
                Some(detail) => format!("{} ({detail})", db.message()),
                None => db.message().to_string(),
            }),
            None => SignalOutcome::Failed(e.to_string()),
        },
    }
}
