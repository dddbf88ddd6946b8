//! "What happens to this client if ssl_min_protocol_version is raised to TLSv1.3?"

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Defined below both the what-if and the pooler verdicts, which name it.
pub use crate::analysis::change::Change;
use crate::analysis::ledger::{ClientKey, Ledger, Side};
use crate::analysis::pooler;
use crate::model::{ConnClass, HbaRule, HbaRules, Session};

/// One plain sentence for the drill-down view.
pub fn min_tls13_sentence(session: &Session, monitor_user: &str) -> String {
    let version = session.tls.as_ref().map_or("TLS", |t| t.version.as_str());
    match session.class {
        ConnClass::Tls13 => "Unaffected: it already negotiates TLSv1.3.".to_string(),
        ConnClass::Tls12 | ConnClass::TlsOlder => format!(
            "Would be refused: it negotiated {version}, so its handshake fails once the server requires TLSv1.3. \
             If it connects with sslmode=prefer or allow and pg_hba.conf still has `host` lines, it may instead \
             reconnect silently without encryption."
        ),
        ConnClass::PlainTcp => "Not affected by the minimum protocol, because it does not use TLS at all; it is \
             refused only when TLS is enforced (hostssl-only pg_hba.conf or require_secure_transport=on)."
            .to_string(),
        ConnClass::Gss => "Unaffected: it is encrypted with GSSAPI, not TLS.".to_string(),
        ConnClass::Local => "Unaffected: Unix-socket connections never use TLS.".to_string(),
        ConnClass::Unknown => format!(
            "Unknown: the monitor may not see how this session is connected; GRANT pg_read_all_stats TO {monitor_user};"
        ),
    }
}

/// The drill-down's sentence for a session a pooler serves: its TLS is the pooler's leg, so the server's minimum
/// decides only whether the pooler itself gets in; the client's own leg is the pooler's to refuse.
pub fn pooled_sentence(session: &Session, leg: &crate::model::PoolerLeg) -> String {
    use crate::model::PoolerJoin;
    let address = &leg.address;
    let own = match session.class {
        ConnClass::Tls13 => "the pooler's own connection already negotiates TLSv1.3, so raising the server's \
                             minimum does not touch it"
            .to_string(),
        c if c.below_tls13() => format!(
            "the pooler's own connection negotiated {}: raising the server's minimum refuses the pooler itself, \
             and with it every client behind it (check its server_tls_protocols)",
            session.tls.as_ref().map_or("TLS below 1.3", |t| t.version.as_str())
        ),
        c => format!("the pooler's own connection is {}", c.label()),
    };
    let client = match (&leg.client, leg.join) {
        (Some(c), _) => {
            let how = c.tls.as_ref().map_or("no TLS".to_string(), |t| t.version.clone());
            let fate = match c.class {
                ConnClass::Tls13 => "unaffected by either target".to_string(),
                k if k.below_tls13() => format!(
                    "pooler {address}'s client_tls_protocols = tlsv1.3 would refuse it (with sslmode=prefer it \
                     may reconnect without TLS where client_tls_sslmode admits plain text)"
                ),
                ConnClass::PlainTcp => format!(
                    "readable on the wire between client and pooler; pooler {address}'s client_tls_sslmode = \
                     require would refuse it"
                ),
                _ => "not a TLS question".to_string(),
            };
            format!("Its client ({}) reaches the pooler with {how}: {fate}.", c.endpoint())
        }
        (None, PoolerJoin::Transaction) => "Transaction pooling: its client changes from one transaction to the \
             next, so the pooler's clients are judged on their own (alerts, Holdouts, What-if)."
            .to_string(),
        (None, PoolerJoin::Idle) => "No client holds it now: it waits in the pool.".to_string(),
        (None, _) => "Via pooler, client leg unknown: pgtls could not tie it to a client of the pooler, so its \
             TLS says nothing about the client's."
            .to_string(),
    };
    format!("Behind pooler {address}: {own}. {client}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::session;

    #[test]
    fn holdouts_are_refused_and_others_are_not() {
        assert!(min_tls13_sentence(&session(1, ConnClass::Tls12), "mon").starts_with("Would be refused"));
        assert!(min_tls13_sentence(&session(1, ConnClass::Tls12), "mon").contains("TLSv1.2"));
        assert!(min_tls13_sentence(&session(1, ConnClass::TlsOlder), "mon").contains("TLSv1.1"));
        assert!(min_tls13_sentence(&session(1, ConnClass::Tls13), "mon").starts_with("Unaffected"));
        assert!(min_tls13_sentence(&session(1, ConnClass::Local), "mon").starts_with("Unaffected"));
        assert!(min_tls13_sentence(&session(1, ConnClass::Unknown), "mon").contains("GRANT pg_read_all_stats TO mon"));
    }
}

/// Does this pg_hba.conf rule apply to the client (user and database; `+role` and `@file` are taken as matching)?
fn rule_covers(rule: &HbaRule, key: &ClientKey) -> bool {
    let any = |list: &[String], v: &str| {
        v.is_empty()
            || list
                .iter()
                .any(|x| x == "all" || x == v || x.starts_with('+') || x.starts_with('@'))
    };
    any(&rule.users, &key.user) && any(&rule.databases, &key.database)
        || (rule.databases.iter().any(|d| d == "sameuser" || d == "samerole") && any(&rule.users, &key.user))
}

/// Could a refused client quietly fall back to plain text instead of failing?
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Downgrade {
    /// pg_hba.conf has rules that admit these clients without TLS.
    Possible { rules: Vec<String> },
    /// No rule admits plain text: they fail loudly, which is at least visible.
    NotPossible,
    /// pg_hba_file_rules could not be read.
    Unknown { reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refused {
    pub client: ClientKey,
    pub label: String,
    /// The setting that would refuse it: the server's (`ssl_min_protocol_version`, pg_hba.conf) for direct clients
    /// and poolers' own connections, or a pooler's client setting (`pooler X's client_tls_protocols`) for its
    /// clients.
    #[serde(default)]
    pub refused_by: String,
    /// Sessions seen in a refused class, e.g. 12 on TLSv1.2.
    pub sessions: u64,
    pub seen_as: Vec<String>,
    pub last_seen: DateTime<Utc>,
    pub connected_now: u32,
    pub downgrade: Downgrade,
    /// A standby or logical subscriber: refusing it breaks replication, not just an application.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replication: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Safe,
    NotSafe,
    NotEnoughEvidence,
}

impl Verdict {
    /// The verdict in words, as the dashboard and `pgtls check` show it (never the Rust variant name).
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Safe => "safe",
            Verdict::NotSafe => "not safe",
            Verdict::NotEnoughEvidence => "not enough evidence",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    pub observed_secs: i64,
    pub sessions: u64,
    pub clients: usize,
    pub log_source: bool,
}

impl Evidence {
    /// "observed 3 h 12 min, 1,204 sessions, log source on"
    pub fn sentence(&self) -> String {
        let secs = self.observed_secs.max(0);
        let window = match secs {
            s if s < 60 => format!("{s} s"),
            s if s < 3_600 => format!("{} min", s / 60),
            s if s < 86_400 => format!("{} h {} min", s / 3_600, (s % 3_600) / 60),
            s => format!("{} d {} h", s / 86_400, (s % 86_400) / 3_600),
        };
        format!(
            "observed {window}, {} sessions from {} clients, log source {}",
            thousands(self.sessions),
            self.clients,
            if self.log_source {
                "on"
            } else {
                "off (short-lived connections between polls are missed)"
            }
        )
    }
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhatIf {
    pub target: Change,
    pub verdict: Verdict,
    pub refused: Vec<Refused>,
    /// Clients the monitor could not see (needs pg_read_all_stats): they might be refused too.
    pub unknown: Vec<String>,
    pub evidence: Evidence,
    /// Why the verdict is what it is, in one sentence.
    pub reason: String,
}

/// Answer "who breaks?" from everything the ledger has seen.
pub fn evaluate(ledger: &Ledger, target: Change, hba: &HbaRules, min_evidence: chrono::Duration) -> WhatIf {
    let mut refused: Vec<Refused> = ledger
        .records()
        .filter_map(|r| {
            let bad: Vec<(ConnClass, u64)> = r
                .classes
                .iter()
                .filter(|(c, _)| target.refuses(**c))
                .map(|(c, n)| (*c, *n))
                .collect();
            if bad.is_empty() {
                return None;
            }
            let mut seen_as: Vec<String> = Vec::new();
            for &(class, n) in &bad {
                match class {
                    ConnClass::Tls12 | ConnClass::TlsOlder => {
                        for (v, count) in r
                            .tls_versions
                            .iter()
                            .filter(|(v, _)| ConnClass::from_tls_version(v) == class)
                        {
                            seen_as.push(format!("{count}× {v}"));
                        }
                    }
                    other => seen_as.push(format!("{n}× {}", other.label())),
                }
            }
            let pooled_client = r
                .key
                .pooler
                .as_ref()
                .filter(|p| p.side == Side::Client)
                .map(|p| p.address.as_str());
            let refused_by = match pooled_client {
                Some(address) => pooler::refused_by_pooler(address, target),
                None => pooler::refused_by_server(target).to_string(),
            };
            let downgrade = match (target, hba, pooled_client) {
                // Only a TLS client that is refused can fall back to plain text.
                (Change::TlsRequired, _, _) => Downgrade::NotPossible,
                // Behind a pooler, the pooler's own client_tls_sslmode decides whether plain text gets in.
                (Change::MinTls13, _, Some(address)) => match ledger.pooler_settings.get(address) {
                    None => Downgrade::Unknown {
                        reason: format!("the settings of pooler {address} were not read"),
                    },
                    Some(settings) => match pooler::client_downgrade_rule(address, settings) {
                        Some(rule) => Downgrade::Possible { rules: vec![rule] },
                        None => Downgrade::NotPossible,
                    },
                },
                (Change::MinTls13, Err(reason), None) => Downgrade::Unknown {
                    reason: reason.to_string(),
                },
                (Change::MinTls13, Ok(rules), None) => {
                    let open: Vec<String> = rules
                        .iter()
                        .filter(|h| h.admits_plaintext() && rule_covers(h, &r.key))
                        .map(HbaRule::describe)
                        .collect();
                    if open.is_empty() {
                        Downgrade::NotPossible
                    } else {
                        Downgrade::Possible { rules: open }
                    }
                }
            };
            Some(Refused {
                client: r.key.clone(),
                label: r.key.label(),
                refused_by,
                sessions: bad.iter().map(|(_, n)| n).sum(),
                seen_as,
                last_seen: r.last_seen,
                connected_now: r.connected_now,
                downgrade,
                replication: r.replication > 0,
            })
        })
        .collect();
    refused.sort_by(|a, b| b.last_seen.cmp(&a.last_seen).then_with(|| a.label.cmp(&b.label)));
    let unknown: Vec<String> = ledger
        .records()
        .filter(|r| r.count(ConnClass::Unknown) > 0)
        .map(|r| r.key.label())
        .collect();
    let evidence = Evidence {
        observed_secs: ledger.observed().num_seconds(),
        sessions: ledger.total_sessions(),
        clients: ledger.len(),
        log_source: ledger.log_source_seen,
    };
    let (verdict, reason) = if !refused.is_empty() {
        (
            Verdict::NotSafe,
            format!("{} client(s) would be refused", refused.len()),
        )
    } else if !unknown.is_empty() {
        (
            Verdict::NotEnoughEvidence,
            format!(
                "{} client(s) could not be seen (grant pg_read_all_stats)",
                unknown.len()
            ),
        )
    } else if ledger.observed() < min_evidence {
        (
            Verdict::NotEnoughEvidence,
            format!(
                "watched for less than the {} min asked for; nightly jobs may not have run",
                min_evidence.num_minutes()
            ),
        )
    } else {
        (Verdict::Safe, "no client seen would be refused".to_string())
    };
    WhatIf {
        target,
        verdict,
        refused,
        unknown,
        evidence,
        reason,
    }
}

#[cfg(test)]
mod ledger_tests {
    use super::*;
    use crate::analysis::ledger::{KeyFields, Ledger};
    use crate::fixtures;

    fn ledger() -> Ledger {
        let mut l =
            Ledger::new(KeyFields::from_names(&["user".into(), "database".into(), "application".into()]).unwrap());
        l.observe_snapshot(&fixtures::snapshot(), false);
        l
    }

    fn hba_with_host() -> HbaRules {
        Ok(vec![
            HbaRule {
                line_number: 1,
                kind: "local".into(),
                databases: vec!["all".into()],
                users: vec!["all".into()],
                address: None,
                auth_method: Some("peer".into()),
            },
            HbaRule {
                line_number: 2,
                kind: "hostssl".into(),
                databases: vec!["all".into()],
                users: vec!["all".into()],
                address: Some("0.0.0.0".into()),
                auth_method: Some("scram-sha-256".into()),
            },
            HbaRule {
                line_number: 3,
                kind: "host".into(),
                databases: vec!["all".into()],
                users: vec!["all".into()],
                address: Some("0.0.0.0".into()),
                auth_method: Some("scram-sha-256".into()),
            },
        ])
    }

    #[test]
    fn names_exactly_the_tls12_clients_and_flags_the_downgrade() {
        let w = evaluate(&ledger(), Change::MinTls13, &hba_with_host(), chrono::Duration::zero());
        assert_eq!(w.verdict, Verdict::NotSafe);
        let labels: Vec<&str> = w.refused.iter().map(|r| r.label.as_str()).collect();
        assert_eq!(labels.len(), 2);
        assert!(
            labels.contains(&"billing-batch (billing@shop)") && labels.contains(&"legacy-reports (reports@dwh)"),
            "{labels:?}"
        );
        let billing = w
            .refused
            .iter()
            .find(|r| r.client.application == "billing-batch")
            .unwrap();
        assert_eq!(billing.sessions, 2);
        assert_eq!(billing.seen_as, vec!["2× TLSv1.2"]);
        assert!(
            matches!(&billing.downgrade, Downgrade::Possible { rules } if rules[0].starts_with("line 3: host all all"))
        );
        assert_eq!(w.unknown, vec!["audit-agent (audit@shop)"]);
    }

    #[test]
    fn tls_required_names_the_plaintext_clients_and_hostssl_only_means_no_downgrade() {
        let w = evaluate(
            &ledger(),
            Change::TlsRequired,
            &hba_with_host(),
            chrono::Duration::zero(),
        );
        let mut labels: Vec<&str> = w.refused.iter().map(|r| r.label.as_str()).collect();
        labels.sort();
        assert_eq!(labels, vec!["grafana (grafana@postgres)", "nightly-etl (etl@dwh)"]);
        let strict = Ok(hba_with_host()
            .unwrap()
            .into_iter()
            .filter(|r| r.kind != "host")
            .collect());
        let w = evaluate(&ledger(), Change::MinTls13, &strict, chrono::Duration::zero());
        assert!(w.refused.iter().all(|r| r.downgrade == Downgrade::NotPossible));
        let w = evaluate(
            &ledger(),
            Change::MinTls13,
            &Err(crate::model::HbaUnreadable::NotPermitted),
            chrono::Duration::zero(),
        );
        assert!(
            w.refused
                .iter()
                .all(|r| matches!(r.downgrade, Downgrade::Unknown { .. }))
        );
    }

    #[test]
    fn a_standby_on_tls12_is_singled_out() {
        let mut l = Ledger::new(KeyFields::default());
        l.observe_snapshot(&fixtures::snapshot_after(), false);
        let w = evaluate(&l, Change::MinTls13, &hba_with_host(), chrono::Duration::zero());
        let standby = w.refused.iter().find(|r| r.client.application == "standby-b").unwrap();
        assert!(standby.replication);
        assert!(w.refused.iter().filter(|r| r.replication).count() == 1);
    }

    #[test]
    fn verdicts_need_evidence() {
        let mut snap = fixtures::snapshot();
        snap.sessions
            .retain(|s| s.class == ConnClass::Tls13 || s.class == ConnClass::Local);
        let mut l = Ledger::new(KeyFields::default());
        l.observe_snapshot(&snap, false);
        let w = evaluate(&l, Change::MinTls13, &hba_with_host(), chrono::Duration::hours(1));
        assert_eq!(w.verdict, Verdict::NotEnoughEvidence);
        snap.taken_at += chrono::Duration::hours(2);
        l.observe_snapshot(&snap, true);
        let w = evaluate(&l, Change::MinTls13, &hba_with_host(), chrono::Duration::hours(1));
        assert_eq!(w.verdict, Verdict::Safe);
        assert!(
            w.evidence
                .sentence()
                .starts_with("observed 2 h 0 min, 5 sessions from 5 clients, log source on"),
            "{}",
            w.evidence.sentence()
        );
    }
}
