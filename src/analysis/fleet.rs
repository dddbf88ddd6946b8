//! One row per watched server, for the Servers screen and `serve`'s JSON API: reachability, version, the floor,
//! sessions by TLS version, plain-text sessions, holdouts, the certificate's days left and the root it chains to.
//! Pure: built from what a target's poller last reported.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::sources::SourceState;
use crate::analysis::whatif::Target;
use crate::collect::poller::History;
use crate::model::{ClassCounts, Setting, Snapshot};
use crate::probe::ProbeReport;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerRow {
    pub name: String,
    pub up: bool,
    /// Why the last connect or poll failed (outside text: escape for the output).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssl_min_protocol_version: Option<String>,
    /// Client sessions by class, pgtls's own left out.
    pub sessions: ClassCounts,
    /// Clients of the ledger that a TLSv1.3 minimum would refuse.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holdouts: Option<usize>,
    /// The server certificate's days left, from the last probe.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_days_left: Option<i64>,
    /// The top of the chain the server presents (its issuer: the root it expects clients to trust).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chain_root: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_poll: Option<DateTime<Utc>>,
    /// The poll, then each pooler: up, last answer, rows, truncated.
    pub sources: Vec<SourceState>,
}

/// What a target last reported, as one row.
pub fn row(
    name: &str,
    up: bool,
    error: Option<&str>,
    snapshot: Option<&Snapshot>,
    history: Option<&History>,
    probe: Option<&ProbeReport>,
) -> ServerRow {
    ServerRow {
        name: name.to_string(),
        up,
        error: (!up).then(|| error.map(str::to_string)).flatten(),
        version: snapshot.map(|s| s.server.version.clone()),
        ssl_min_protocol_version: snapshot.and_then(|s| match s.setting("ssl_min_protocol_version") {
            Setting::Set(v) => Some(v.clone()),
            _ => None,
        }),
        sessions: snapshot.map(|s| ClassCounts::of(&s.sessions)).unwrap_or_default(),
        holdouts: history.and_then(|h| {
            h.whatif
                .iter()
                .find(|w| w.target == Target::MinTls13)
                .map(|w| w.refused.len())
        }),
        certificate_days_left: probe.and_then(|p| p.chain.first()).map(|c| c.days_left),
        chain_root: probe.and_then(|p| p.chain.last()).map(|c| c.issuer.clone()),
        last_poll: snapshot.map(|s| s.taken_at),
        sources: super::sources::of_target(up, error, snapshot),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    #[test]
    fn a_row_sums_the_clients_and_names_the_floor() {
        let snap = fixtures::snapshot_after();
        let history = fixtures::history_after();
        let probe = fixtures::probe_report();
        let r = row("orders", true, None, Some(&snap), Some(&history), Some(&probe));
        assert_eq!(r.sessions.total(), snap.clients().count());
        assert_eq!(r.ssl_min_protocol_version.as_deref(), Some("TLSv1.3"));
        assert_eq!(r.certificate_days_left, probe.chain.first().map(|c| c.days_left));
        assert!(r.holdouts.is_some());
        let down = row("b", false, Some("connection refused"), None, None, None);
        assert_eq!(down.error.as_deref(), Some("connection refused"));
        assert_eq!(down.sessions, ClassCounts::default());
    }
}
