//! `K` and `C`: terminate or cancel a session after a confirmation. The component only decides and words; the
//! poller runs the statement (see [`crate::collect::act`]) and its answer comes back here as text.

use chrono::{DateTime, Utc};

use crate::collect::act::{SignalKind, SignalOutcome, SignalRequest};
use crate::model::Session;

/// Who a signal would reach, as the confirmation names them. Built from a [`Session`] here; any list that
/// knows a pid and its backend start (the lingering sessions) can build one too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalTarget {
    pub pid: i32,
    pub backend_start: Option<DateTime<Utc>>,
    pub user: String,
    pub application: String,
    pub address: String,
    /// pgtls's own connection (by pid, as the collector marks it): never signalled.
    pub monitor: bool,
}

impl SignalTarget {
    pub fn of(session: &Session) -> SignalTarget {
        SignalTarget {
            pid: session.pid,
            backend_start: session.backend_start,
            user: session.user.clone().unwrap_or_else(|| "?".to_string()),
            application: session.application_name.clone().unwrap_or_default(),
            address: session.client_endpoint(),
            monitor: session.monitor,
        }
    }
}

/// The question on screen: what would be done to whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirm {
    pub request: SignalRequest,
    pub target: SignalTarget,
}

/// The last word on an action, for the footer until the next key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Unsanitised (it may hold a server message); the views make it safe.
    pub text: String,
    pub failed: bool,
}

impl Status {
    pub fn ok(text: String) -> Status {
        Status { text, failed: false }
    }

    pub fn failed(text: String) -> Status {
        Status { text, failed: true }
    }
}

/// Why `kind` cannot be asked for on `target`, or the confirmation to show.
pub fn ask(kind: SignalKind, target: Option<SignalTarget>, read_only: bool) -> Result<Confirm, Status> {
    let verb = kind.verb();
    if read_only {
        return Err(Status::failed(format!(
            "read-only: pgtls does not {verb} sessions (--read-only or read_only = true in the config)"
        )));
    }
    let Some(target) = target else {
        return Err(Status::failed(format!("no session selected to {verb}")));
    };
    if target.monitor {
        return Err(Status::failed(format!(
            "pid {} is pgtls's own connection: it does not {verb} itself",
            target.pid
        )));
    }
    let Some(backend_start) = target.backend_start else {
        // Without the start time a reused pid could be hit instead.
        return Err(Status::failed(format!(
            "pid {}: its start time is not visible to this role, so pgtls cannot be sure it is the same session",
            target.pid
        )));
    };
    Ok(Confirm {
        request: SignalRequest {
            kind,
            pid: target.pid,
            backend_start,
        },
        target,
    })
}

/// The popup's question, one line.
pub fn question(confirm: &Confirm) -> String {
    let what = match confirm.request.kind {
        SignalKind::Terminate => "Terminate session",
        SignalKind::Cancel => "Cancel the query of session",
    };
    format!("{what} {}?", confirm.target.pid)
}

/// Said once the confirmation is given, until the answer arrives.
pub fn under_way(request: &SignalRequest) -> Status {
    let doing = match request.kind {
        SignalKind::Terminate => "terminating",
        SignalKind::Cancel => "cancelling the query of",
    };
    Status::ok(format!("{doing} pid {}…", request.pid))
}

/// The server's answer in words.
pub fn outcome(request: &SignalRequest, outcome: &SignalOutcome) -> Status {
    let pid = request.pid;
    match (outcome, request.kind) {
        (SignalOutcome::Sent, SignalKind::Terminate) => Status::ok(format!("pid {pid} terminated")),
        (SignalOutcome::Sent, SignalKind::Cancel) => Status::ok(format!("pid {pid}: query cancelled")),
        (SignalOutcome::Gone, _) => Status::failed(format!(
            "pid {pid} is no longer there (it ended, or the pid now belongs to another session): nothing done"
        )),
        (SignalOutcome::NotSent, kind) => Status::failed(format!(
            "pid {pid}: the server did not {} it (it had just ended)",
            kind.verb()
        )),
        (SignalOutcome::Refused(message), kind) => {
            Status::failed(format!("pid {pid}: the server refused to {}: {message}", kind.verb()))
        }
        (SignalOutcome::Failed(message), kind) => {
            Status::failed(format!("pid {pid}: could not {}: {message}", kind.verb()))
        }
    }
}
