//! Alert rules over one snapshot and the link state, and a log that remembers when each alert began.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub mod config;

use self::config::{AlertsConfig, Mute};
use crate::model::{ConnClass, PoolerClient, PoolerJoin, Session, Setting, Snapshot, Verification};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Critical,
    Warning,
    Info,
}

impl Severity {
    /// Symbols that carry the meaning without colour (NO_COLOR).
    pub fn symbol(self) -> &'static str {
        match self {
            Severity::Critical => "✖",
            Severity::Warning => "▲",
            Severity::Info => "ℹ",
        }
    }
}

/// One condition that holds now. `key` is stable across polls so the log can track it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    pub key: String,
    pub severity: Severity,
    pub title: String,
    pub detail: String,
    /// How many things the rule counted (sessions, settings); thresholds compare against it.
    pub count: u64,
}

/// The link to the server, as the alert rules need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkHealth {
    Up,
    Lost {
        since: DateTime<Utc>,
        error: String,
        retry_at: DateTime<Utc>,
    },
}

/// One alert rule as documented: its key (the name `[alerts.rules.KEY]` configures), the severity it raises
/// unless configured, and what it counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub key: &'static str,
    pub severity: Severity,
    pub about: &'static str,
}

/// Every rule, in the order the documentation lists them; each alert takes its default severity from here.
pub const RULES: [Rule; 22] = [
    Rule {
        key: "connection_lost",
        severity: Severity::Critical,
        about: "the link to the server is lost (pgtls retries by itself)",
    },
    Rule {
        key: "ssl_off",
        severity: Severity::Critical,
        about: "ssl = off: the server accepts no TLS at all",
    },
    Rule {
        key: "min_protocol_weak",
        severity: Severity::Warning,
        about: "ssl_min_protocol_version allows TLS 1.0 or 1.1",
    },
    Rule {
        key: "settings_hidden",
        severity: Severity::Info,
        about: "the monitoring role may not read some TLS settings",
    },
    Rule {
        key: "plaintext_sessions",
        severity: Severity::Critical,
        about: "client sessions over TCP without TLS",
    },
    Rule {
        key: "tls_older_sessions",
        severity: Severity::Critical,
        about: "client sessions on TLS 1.1 or older",
    },
    Rule {
        key: "tls12_sessions",
        severity: Severity::Warning,
        about: "client sessions on TLS 1.2",
    },
    Rule {
        key: "sessions_hidden",
        severity: Severity::Warning,
        about: "sessions whose TLS the monitoring role may not see",
    },
    Rule {
        key: "monitor_plaintext",
        severity: Severity::Warning,
        about: "pgtls's own connection has no TLS",
    },
    Rule {
        key: "monitor_unverified",
        severity: Severity::Warning,
        about: "pgtls's own connection does not verify the server's certificate",
    },
    Rule {
        key: "log_lines_forged",
        severity: Severity::Warning,
        about: "server log lines that read like connections but are not",
    },
    Rule {
        key: "after_refused",
        severity: Severity::Critical,
        about: "after the change: clients refused at the handshake",
    },
    Rule {
        key: "after_downgraded",
        severity: Severity::Critical,
        about: "after the change: sslmode=prefer clients back without TLS",
    },
    Rule {
        key: "after_lingering",
        severity: Severity::Warning,
        about: "after the change: sessions still on the old TLS, open since before it",
    },
    Rule {
        key: "after_replication",
        severity: Severity::Warning,
        about: "after the change: a replication connection affected (critical when refused or downgraded)",
    },
    Rule {
        key: "after_log_connections_off",
        severity: Severity::Warning,
        about: "after the change: log_connections is off, so refusals go unseen",
    },
    Rule {
        key: "after_pooler_refused",
        severity: Severity::Critical,
        about: "after the change: clients a PgBouncer refuses",
    },
    Rule {
        key: "pooler_unreachable",
        severity: Severity::Warning,
        about: "a PgBouncer admin console cannot be polled",
    },
    Rule {
        key: "pooler_plaintext_clients",
        severity: Severity::Critical,
        about: "PgBouncer clients without TLS on their own leg",
    },
    Rule {
        key: "pooler_tls12_clients",
        severity: Severity::Warning,
        about: "PgBouncer clients on TLS 1.2 on their own leg",
    },
    Rule {
        key: "pooler_server_leg_weak",
        severity: Severity::Warning,
        about: "PgBouncer's leg to the server is weaker than TLS 1.3",
    },
    Rule {
        key: "pooled_sessions_unknown",
        severity: Severity::Warning,
        about: "pooled server sessions whose client cannot be matched",
    },
];

/// Every rule's key; the configuration may set severity and threshold for each.
pub const RULE_KEYS: [&str; 22] = {
    let mut keys = [""; 22];
    let mut i = 0;
    while i < RULES.len() {
        keys[i] = RULES[i].key;
        i += 1;
    }
    keys
};

/// The severity a rule raises unless the configuration says otherwise.
pub fn default_severity(key: &str) -> Severity {
    RULES
        .iter()
        .find(|r| r.key == key)
        .map_or(Severity::Warning, |r| r.severity)
}

/// Every rule with the default configuration.
pub fn evaluate(snapshot: Option<&Snapshot>, link: &LinkHealth) -> Vec<Alert> {
    evaluate_with(snapshot, link, &AlertsConfig::default())
}

/// Every rule, evaluated against the latest snapshot (if any) and the link, then shaped by the
/// configuration: muted applications and users are left out of session counts, a rule fires only
/// above its threshold, and its severity may be changed or turned off.
pub fn evaluate_with(snapshot: Option<&Snapshot>, link: &LinkHealth, config: &AlertsConfig) -> Vec<Alert> {
    let mut alerts = evaluate_rules(snapshot, link, config);
    alerts.retain_mut(|a| configure(a, config));
    alerts.sort_by(|a, b| a.severity.cmp(&b.severity).then_with(|| a.key.cmp(&b.key)));
    alerts
}

/// Apply the rule's configured severity and threshold; false when the alert should not be raised.
pub fn configure(a: &mut Alert, config: &AlertsConfig) -> bool {
    match config.rules.get(&a.key) {
        Some(rule) => match rule.severity {
            Some(sev) => match sev.severity() {
                Some(severity) => {
                    a.severity = severity;
                    a.count > rule.threshold
                }
                None => false,
            },
            None => a.count > rule.threshold,
        },
        None => true,
    }
}

/// Connection lines in the server log that their own context contradicts: someone is writing lines that read
/// like connections (`RAISE LOG`), or a name carries line breaks. None of them entered the ledger.
pub fn forged_log_lines(count: u64, latest: &crate::logsource::SuspectLine, config: &AlertsConfig) -> Option<Alert> {
    let mut alert = Alert {
        key: "log_lines_forged".into(),
        severity: default_severity("log_lines_forged"),
        title: format!("{count} forged-looking connection line(s) in the server log"),
        detail: format!("kept out of the ledger and the what-if; latest: {}", latest.sentence()),
        count,
    };
    (count > 0 && configure(&mut alert, config)).then_some(alert)
}

fn evaluate_rules(snapshot: Option<&Snapshot>, link: &LinkHealth, config: &AlertsConfig) -> Vec<Alert> {
    let mut alerts = Vec::new();
    if let LinkHealth::Lost { error, .. } = link {
        alerts.push(Alert {
            key: "connection_lost".into(),
            severity: default_severity("connection_lost"),
            // Clock times stay out of the text: the view shows when it began, in local time.
            title: "Connection lost".to_string(),
            count: 1,
            detail: format!("{error}; retrying by itself (r retries now)"),
        });
    }
    let Some(snap) = snapshot else {
        return alerts;
    };
    settings_rules(snap, &mut alerts);
    session_rules(snap, &config.mute, &mut alerts);
    pooler_rules(snap, &config.mute, &mut alerts);
    monitor_rules(snap, &mut alerts);
    alerts
}

fn settings_rules(snap: &Snapshot, alerts: &mut Vec<Alert>) {
    if snap.setting("ssl").value() == Some("off") {
        alerts.push(Alert {
            key: "ssl_off".into(),
            severity: default_severity("ssl_off"),
            title: "ssl is off".into(),
            count: 1,
            detail: "The server accepts no TLS connections at all; every TCP client is plain text.".into(),
        });
    }
    if let Some(min @ ("TLSv1" | "TLSv1.1")) = snap.setting("ssl_min_protocol_version").value() {
        alerts.push(Alert {
            key: "min_protocol_weak".into(),
            severity: default_severity("min_protocol_weak"),
            title: format!("ssl_min_protocol_version = {min}"),
            count: 1,
            detail: "TLS 1.0 and 1.1 are deprecated (RFC 8996); raise the minimum to TLSv1.2 or TLSv1.3.".into(),
        });
    }
    let hidden: Vec<&str> = snap
        .settings
        .iter()
        .filter(|(_, v)| **v == Setting::Hidden)
        .map(|(k, _)| k.as_str())
        .collect();
    if !hidden.is_empty() {
        alerts.push(Alert {
            key: "settings_hidden".into(),
            severity: default_severity("settings_hidden"),
            title: format!("{} TLS settings hidden", hidden.len()),
            count: hidden.len() as u64,
            detail: format!(
                "{} may not read {}; GRANT pg_read_all_settings TO {};",
                snap.monitor.user,
                hidden.join(", "),
                snap.monitor.user
            ),
        });
    }
}

/// "orders-api (3), billing (1)": who, most sessions first.
pub fn who(sessions: &[&Session]) -> String {
    who_of(
        sessions
            .iter()
            .map(|s| (s.application_name.as_deref(), s.user.as_deref())),
    )
}

/// [`who`] over (application_name, user) pairs, so a pooler's clients are named the same way as sessions.
fn who_of<'a>(pairs: impl Iterator<Item = (Option<&'a str>, Option<&'a str>)>) -> String {
    // Counted by (application, user) without building a string per session; named once per pair.
    let mut by_pair: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for (app, user) in pairs {
        let app = app.filter(|a| !a.is_empty()).unwrap_or("(no application_name)");
        *by_pair.entry((app, user.unwrap_or("?"))).or_default() += 1;
    }
    let mut by_name: BTreeMap<String, usize> = BTreeMap::new();
    for ((app, user), n) in by_pair {
        *by_name.entry(format!("{app} as {user}")).or_default() += n;
    }
    let mut list: Vec<(String, usize)> = by_name.into_iter().collect();
    list.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    list.iter()
        .map(|(who, n)| if *n > 1 { format!("{who} ({n})") } else { who.clone() })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether the configuration mutes this application or user.
fn muted(mute: &Mute, application: Option<&String>, user: Option<&String>) -> bool {
    application.is_some_and(|a| mute.applications.contains(a)) || user.is_some_and(|u| mute.users.contains(u))
}

fn session_rules(snap: &Snapshot, mute: &Mute, alerts: &mut Vec<Alert>) {
    let muted = |s: &Session| muted(mute, s.application_name.as_ref(), s.user.as_ref());
    // A pooled session's TLS is the pooler's leg, not its client's: the pooler rules speak of those.
    let of = |class: ConnClass| -> Vec<&Session> {
        snap.clients()
            .filter(|s| s.class == class && s.pooler.is_none() && !muted(s))
            .collect()
    };
    let plain = of(ConnClass::PlainTcp);
    if !plain.is_empty() {
        alerts.push(Alert {
            key: "plaintext_sessions".into(),
            severity: default_severity("plaintext_sessions"),
            title: format!("{} plain-text TCP session{}", plain.len(), plural(plain.len())),
            count: plain.len() as u64,
            detail: who(&plain),
        });
    }
    let older = of(ConnClass::TlsOlder);
    if !older.is_empty() {
        alerts.push(Alert {
            key: "tls_older_sessions".into(),
            severity: default_severity("tls_older_sessions"),
            title: format!("{} session{} on TLS 1.1 or older", older.len(), plural(older.len())),
            count: older.len() as u64,
            detail: who(&older),
        });
    }
    let tls12 = of(ConnClass::Tls12);
    if !tls12.is_empty() {
        alerts.push(Alert {
            key: "tls12_sessions".into(),
            severity: default_severity("tls12_sessions"),
            title: format!("{} session{} on TLS 1.2", tls12.len(), plural(tls12.len())),
            count: tls12.len() as u64,
            detail: format!("refused if ssl_min_protocol_version becomes TLSv1.3: {}", who(&tls12)),
        });
    }
    let unknown = of(ConnClass::Unknown);
    if !unknown.is_empty() {
        alerts.push(Alert {
            key: "sessions_hidden".into(),
            severity: default_severity("sessions_hidden"),
            title: format!("{} session{} unknown", unknown.len(), plural(unknown.len())),
            count: unknown.len() as u64,
            detail: format!(
                "{} may not see their TLS details; GRANT pg_read_all_stats TO {};",
                snap.monitor.user, snap.monitor.user
            ),
        });
    }
}

/// Behind PgBouncer: each client's own leg (SHOW CLIENTS), the poolers' own legs to the server, and sessions
/// whose client pgtls could not name.
fn pooler_rules(snap: &Snapshot, mute: &Mute, alerts: &mut Vec<Alert>) {
    let muted = |c: &PoolerClient| muted(mute, c.application_name.as_ref(), c.user.as_ref());
    let down: Vec<String> = snap
        .poolers
        .iter()
        .filter_map(|p| p.error.as_ref().map(|e| format!("{}: {e}", p.address)))
        .collect();
    if !down.is_empty() {
        alerts.push(Alert {
            key: "pooler_unreachable".into(),
            severity: default_severity("pooler_unreachable"),
            title: format!("{} pooler{} not answering", down.len(), plural(down.len())),
            count: down.len() as u64,
            detail: format!(
                "{}; its sessions show as via pooler, client leg unknown",
                down.join("; ")
            ),
        });
    }
    let mut clients_rule = |key: &str, severity: Severity, class: ConnClass, what: &str, setting: &str| {
        let mut total = 0;
        let mut parts = Vec::new();
        for p in &snap.poolers {
            let hit: Vec<&PoolerClient> = p.client_list().filter(|c| c.class == class && !muted(c)).collect();
            if !hit.is_empty() {
                total += hit.len();
                parts.push(format!(
                    "pooler {} ({setting} = {}): {}",
                    p.address,
                    p.setting(setting).unwrap_or("?"),
                    who_of(hit.iter().map(|c| (c.application_name.as_deref(), c.user.as_deref())))
                ));
            }
        }
        if total > 0 {
            alerts.push(Alert {
                key: key.into(),
                severity,
                title: format!("{total} pooler client{} {what}", plural(total)),
                count: total as u64,
                detail: parts.join("; "),
            });
        }
    };
    clients_rule(
        "pooler_plaintext_clients",
        default_severity("pooler_plaintext_clients"),
        ConnClass::PlainTcp,
        "without TLS on their own leg (the server sees the pooler's TLS)",
        "client_tls_sslmode",
    );
    clients_rule(
        "pooler_tls12_clients",
        default_severity("pooler_tls12_clients"),
        ConnClass::Tls12,
        "on TLS 1.2, refused if the pooler's client_tls_protocols becomes tlsv1.3",
        "client_tls_protocols",
    );
    let pooled = |pred: &dyn Fn(&Session) -> bool| -> Vec<&Session> {
        snap.clients().filter(|s| s.pooler.is_some() && pred(s)).collect()
    };
    let weak = pooled(&|s| s.class.below_tls13() || s.class == ConnClass::PlainTcp);
    if !weak.is_empty() {
        let mut poolers: Vec<&str> = weak
            .iter()
            .filter_map(|s| s.pooler.as_ref().map(|p| p.address.as_str()))
            .collect();
        poolers.dedup();
        alerts.push(Alert {
            key: "pooler_server_leg_weak".into(),
            severity: default_severity("pooler_server_leg_weak"),
            title: format!(
                "{} pooler connection{} to the server below TLS 1.3",
                weak.len(),
                plural(weak.len())
            ),
            count: weak.len() as u64,
            detail: format!(
                "pooler {}: raising the server's minimum refuses the pooler itself, and with it every client behind \
                 it (check server_tls_sslmode and server_tls_protocols)",
                poolers.join(", ")
            ),
        });
    }
    let unknown = pooled(&|s| s.pooler.as_ref().is_some_and(|p| p.join == PoolerJoin::Unknown));
    if !unknown.is_empty() {
        alerts.push(Alert {
            key: "pooled_sessions_unknown".into(),
            severity: default_severity("pooled_sessions_unknown"),
            title: format!(
                "{} session{} via pooler, client leg unknown",
                unknown.len(),
                plural(unknown.len())
            ),
            count: unknown.len() as u64,
            detail: format!("their TLS is the pooler's, not their client's: {}", who(&unknown)),
        });
    }
}

fn monitor_rules(snap: &Snapshot, alerts: &mut Vec<Alert>) {
    let m = &snap.monitor;
    let local = snap.server.host.starts_with('/');
    match m.verification {
        Verification::NotTls if !local => alerts.push(Alert {
            key: "monitor_plaintext".into(),
            severity: default_severity("monitor_plaintext"),
            title: "pgtls itself is connected without TLS".into(),
            count: 1,
            detail: format!("sslmode={}; use sslmode=verify-full with sslrootcert", m.sslmode),
        }),
        Verification::None => alerts.push(Alert {
            key: "monitor_unverified".into(),
            severity: default_severity("monitor_unverified"),
            title: "pgtls does not verify the server certificate".into(),
            count: 1,
            detail: format!("sslmode={}; use sslmode=verify-full with sslrootcert", m.sslmode),
        }),
        _ => {}
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// An alert with its history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedAlert {
    pub alert: Alert,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// Still holds at the latest evaluation.
    pub active: bool,
}

/// Alerts over time: when each began, whether it still holds. New = began within [`AlertLog::NEW_FOR`].
#[derive(Debug, Clone, Default)]
pub struct AlertLog {
    entries: Vec<LoggedAlert>,
}

impl AlertLog {
    pub const NEW_FOR: chrono::Duration = chrono::Duration::seconds(60);

    /// Record the alerts that hold at `now`; returns the keys that just began.
    pub fn update(&mut self, current: Vec<Alert>, now: DateTime<Utc>) -> Vec<String> {
        let mut began = Vec::new();
        for entry in &mut self.entries {
            entry.active = false;
        }
        for alert in current {
            match self.entries.iter_mut().find(|e| e.alert.key == alert.key) {
                Some(entry) => {
                    entry.alert = alert;
                    entry.last_seen = now;
                    entry.active = true;
                }
                None => {
                    began.push(alert.key.clone());
                    self.entries.push(LoggedAlert {
                        alert,
                        first_seen: now,
                        last_seen: now,
                        active: true,
                    });
                }
            }
        }
        // Cleared alerts leave the log so a recurrence counts as new.
        self.entries.retain(|e| e.active);
        self.entries.sort_by(|a, b| {
            a.alert
                .severity
                .cmp(&b.alert.severity)
                .then(a.first_seen.cmp(&b.first_seen))
        });
        began
    }

    pub fn active(&self) -> impl Iterator<Item = &LoggedAlert> {
        self.entries.iter().filter(|e| e.active)
    }

    pub fn is_new(entry: &LoggedAlert, now: DateTime<Utc>) -> bool {
        now - entry.first_seen < Self::NEW_FOR
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    fn keys(alerts: &[Alert]) -> Vec<&str> {
        alerts.iter().map(|a| a.key.as_str()).collect()
    }

    #[test]
    fn every_rule_is_in_the_table_once() {
        let mut keys = RULE_KEYS.to_vec();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), RULES.len());
        // Each rule's alert takes its severity from the table: no key the code raises is missing from it.
        let source = [include_str!("alerts.rs"), include_str!("after.rs")].concat();
        for (at, _) in source.match_indices("default_severity(\"") {
            let key: String = source[at + 18..].chars().take_while(|c| *c != '"').collect();
            assert!(RULE_KEYS.contains(&key.as_str()), "{key} is raised but not in RULES");
        }
    }

    #[test]
    fn fixture_raises_plaintext_tls12_and_hidden_session_alerts() {
        let snap = fixtures::snapshot();
        let alerts = evaluate(Some(&snap), &LinkHealth::Up);
        assert_eq!(
            keys(&alerts),
            vec!["plaintext_sessions", "sessions_hidden", "tls12_sessions"]
        );
        let plain = &alerts[0];
        assert_eq!(plain.severity, Severity::Critical);
        assert_eq!(plain.title, "2 plain-text TCP sessions");
        assert_eq!(plain.detail, "grafana as grafana, nightly-etl as etl");
        assert!(
            alerts[2]
                .detail
                .contains("billing-batch as billing (2), legacy-reports as reports")
        );
    }

    #[test]
    fn server_and_monitor_rules() {
        let mut snap = fixtures::snapshot();
        snap.sessions.retain(|s| s.class == ConnClass::Tls13);
        snap.settings.insert("ssl".into(), Setting::Set("off".into()));
        snap.settings
            .insert("ssl_min_protocol_version".into(), Setting::Set("TLSv1".into()));
        snap.settings.insert("ssl_ciphers".into(), Setting::Hidden);
        snap.monitor.verification = Verification::None;
        let alerts = evaluate(Some(&snap), &LinkHealth::Up);
        assert_eq!(
            keys(&alerts),
            vec!["ssl_off", "min_protocol_weak", "monitor_unverified", "settings_hidden"]
        );
        assert!(alerts[3].detail.contains("GRANT pg_read_all_settings TO pgtls"));
        snap.monitor.verification = Verification::NotTls;
        assert!(keys(&evaluate(Some(&snap), &LinkHealth::Up)).contains(&"monitor_plaintext"));
    }

    #[test]
    fn lost_link_is_critical_even_without_data() {
        let now = fixtures::now();
        let link = LinkHealth::Lost {
            since: now,
            error: "connection refused".into(),
            retry_at: now,
        };
        let alerts = evaluate(None, &link);
        assert_eq!(keys(&alerts), vec!["connection_lost"]);
        assert!(alerts[0].detail.starts_with("connection refused"));
    }

    #[test]
    fn the_log_keeps_first_seen_and_marks_new() {
        let mut log = AlertLog::default();
        let snap = fixtures::snapshot();
        let t0 = fixtures::now();
        let began = log.update(evaluate(Some(&snap), &LinkHealth::Up), t0);
        assert_eq!(began.len(), 3);
        let t1 = t0 + chrono::Duration::seconds(90);
        assert!(log.update(evaluate(Some(&snap), &LinkHealth::Up), t1).is_empty());
        let first = log.active().next().unwrap();
        assert_eq!(first.first_seen, t0);
        assert_eq!(first.last_seen, t1);
        assert!(!AlertLog::is_new(first, t1));
        assert!(AlertLog::is_new(first, t0 + chrono::Duration::seconds(10)));
        // Cleared, then back: new again.
        log.update(Vec::new(), t1);
        assert!(log.is_empty());
        assert_eq!(log.update(evaluate(Some(&snap), &LinkHealth::Up), t1).len(), 3);
    }
}
