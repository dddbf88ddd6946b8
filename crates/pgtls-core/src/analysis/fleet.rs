//! One row per watched server, for the Servers screen and `serve`'s JSON API: reachability, version, the floor,
//! sessions by TLS version, plain-text sessions, holdouts, the certificate's days left and the root it chains to.
//! Pure: built from what a target's poller last reported (its what-if and its probe, reduced to what a row shows).

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::sources::SourceState;
use crate::analysis::whatif::{Change, WhatIf};
use crate::model::{ClassCounts, Setting, Snapshot};

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

/// What the last probe said of the server's certificate, as much as a row shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProbedCertificate<'a> {
    /// The leaf's days left.
    pub days_left: Option<i64>,
    /// The top of the chain the server presents (its issuer).
    pub chain_root: Option<&'a str>,
}

/// What a target last reported, as one row: `whatif` is its history's what-if (one per [`Change`]).
pub fn row(
    name: &str,
    up: bool,
    error: Option<&str>,
    snapshot: Option<&Snapshot>,
    whatif: Option<&[WhatIf]>,
    probe: Option<ProbedCertificate<'_>>,
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
        holdouts: whatif.and_then(|w| w.iter().find(|w| w.target == Change::MinTls13).map(|w| w.refused.len())),
        certificate_days_left: probe.and_then(|p| p.days_left),
        chain_root: probe.and_then(|p| p.chain_root).map(str::to_string),
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
        use crate::analysis::ledger::{KeyFields, Ledger};
        use crate::analysis::whatif::evaluate;
        let snap = fixtures::snapshot_after();
        let mut ledger = Ledger::new(KeyFields::default());
        ledger.observe_snapshot(&fixtures::snapshot(), true);
        let whatif: Vec<WhatIf> = [Change::MinTls13, Change::TlsRequired]
            .into_iter()
            .map(|t| evaluate(&ledger, t, &Ok(Vec::new()), chrono::Duration::hours(24)))
            .collect();
        let probe = ProbedCertificate {
            days_left: Some(41),
            chain_root: Some("CN=pgtls lab root"),
        };
        let r = row("orders", true, None, Some(&snap), Some(&whatif), Some(probe));
        assert_eq!(r.sessions.total(), snap.clients().count());
        assert_eq!(r.ssl_min_protocol_version.as_deref(), Some("TLSv1.3"));
        assert_eq!(r.certificate_days_left, Some(41));
        assert_eq!(r.chain_root.as_deref(), Some("CN=pgtls lab root"));
        assert_eq!(r.holdouts, Some(whatif[0].refused.len()));
        assert!(
            r.holdouts.is_some_and(|n| n > 0),
            "the fixture's TLS 1.2 clients are holdouts"
        );
        let down = row("b", false, Some("connection refused"), None, None, None);
        assert_eq!(down.error.as_deref(), Some("connection refused"));
        assert_eq!(down.sessions, ClassCounts::default());
    }
}
