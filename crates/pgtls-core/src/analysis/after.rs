//! After the change: once a target holds (ssl_min_protocol_version = TLSv1.3, or TLS for every TCP client), who was
//! refused, who fell back to plain text, and who still lingers on the old way from before it.
//!
//! Pure: the ledger, the latest snapshot and pg_hba.conf in, a report out. The dashboard's What-if screen, its alerts
//! and `pgtls check` all read the same report.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::alerts::{Alert, Severity, default_severity};
use super::attribution::{self, Candidate, RuledOut};
use super::ledger::{ClientKey, FloorSince, Ledger, RefusalKind, SinceSource, floor_since};
use super::whatif::Change;
use crate::model::{ConnClass, Setting, Snapshot};
use crate::model::{HbaRule, HbaRules};

/// What the report is computed from.
pub struct Inputs<'a> {
    pub ledger: &'a Ledger,
    pub snapshot: &'a Snapshot,
    pub hba: &'a HbaRules,
    /// `--since`: used only when neither the log, the polls nor `pg_conf_load_time()` say when.
    pub user_since: Option<DateTime<Utc>>,
    /// Refused and downgraded clients count only when last seen at or after this (`--window`), besides `since`.
    pub window_from: Option<DateTime<Utc>>,
}

/// Whether the target holds on the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Standing {
    InForce(Box<AfterChange>),
    NotInForce {
        reason: String,
    },
    /// The setting is hidden (or pg_hba.conf unreadable) and nothing else tells: the what-if still applies.
    CannotTell {
        reason: String,
    },
}

impl Standing {
    pub fn report(&self) -> Option<&AfterChange> {
        match self {
            Standing::InForce(report) => Some(report),
            _ => None,
        }
    }
}

/// The after-change report for one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AfterChange {
    pub target: Change,
    pub since: DateTime<Utc>,
    pub since_source: SinceSource,
    /// How sure `since` is, in one sentence (a reload bound is only a bound).
    pub since_note: String,
    /// Refused and downgraded clients counted from here: the later of `since` and the window's start.
    pub counted_from: DateTime<Utc>,
    pub refused: Vec<RefusedClient>,
    pub downgraded: Vec<Downgraded>,
    pub lingering: Vec<Lingering>,
    /// Failed handshakes that came as scans (pgtls's probe, sslyze, testssl.sh), by address: not clients, never a
    /// reason for the verdict by themselves.
    #[serde(default)]
    pub scans: Vec<Scan>,
    /// Set when log_connections is off: refusals and short sessions never reach the log, so the lists miss them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_connections_off: Option<String>,
}

/// Attempts from one address turned away by the target, with the identities seen from that address before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedClient {
    pub address: String,
    /// The candidates' identities, best evidence first: only those seen from this address in a way the target
    /// refuses (narrowed by the users pg_hba.conf refusals named). See [`attribution`].
    pub identities: Vec<ClientKey>,
    pub labels: Vec<String>,
    pub more_identities: usize,
    /// More than one identity fits the address.
    pub ambiguous: bool,
    /// The same candidates with the evidence that ranks them ([`attribution::RANKING`]).
    #[serde(default)]
    pub candidates: Vec<Candidate>,
    /// Identities seen from this address that the target does not refuse: never candidates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ruled_out: Vec<RuledOut>,
    /// The attribution in a few words, as every output says it ("likely nightly-cron (...)").
    #[serde(default)]
    pub attribution: String,
    /// Refused attempts of the target's kind (failed handshakes, or plain-text pg_hba.conf refusals) from this
    /// address since `counted_from`, counted by the hour for the last week (see [`crate::analysis::ledger::HourCount`]).
    pub attempts: u64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// A standby or logical subscriber among them: high availability is at stake.
    pub replication: bool,
    /// The setting that refused them: `ssl_min_protocol_version`, pg_hba.conf, or a pooler's
    /// (`pooler 127.0.0.1:6432's client_tls_protocols`).
    pub refused_by: String,
    /// The pooler that refused them (read in its log), if a pooler did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pooler: Option<String>,
}

impl RefusedClient {
    /// The reason without the setting `refused_by` already names ("unsupported protocol", not "pooler X's
    /// client_tls_protocols: unsupported protocol").
    pub fn short_reason(&self) -> &str {
        self.reason
            .strip_prefix(self.refused_by.as_str())
            .and_then(|r| r.strip_prefix(": "))
            .unwrap_or(&self.reason)
    }
}

/// Failed handshakes from one address that came as a scan, counted from `counted_from`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scan {
    pub address: String,
    pub handshakes: u64,
    pub last_seen: DateTime<Utc>,
}

/// A pooler's client side under a target: whether its own setting applies it, and whom its log shows refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolerAfter {
    /// The pooler's address, as `--pgbouncer` names it.
    pub pooler: String,
    pub target: Change,
    /// `client_tls_protocols` or `client_tls_sslmode`, and its value as `SHOW CONFIG` gave it (`None`: unknown).
    pub setting: String,
    pub value: Option<String>,
    pub in_force: bool,
    /// Refused attempts read in the pooler's log, counted from `counted_from` (empty when not in force).
    pub refused: Vec<RefusedClient>,
    /// The start of the window, if any: PgBouncer does not log which setting a RELOAD changed, so refusals count
    /// over the window rather than since the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counted_from: Option<DateTime<Utc>>,
}

/// A sighting of one way of connecting: the sessions and when they were first and last seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sighting {
    pub class: ConnClass,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_version: Option<String>,
    pub sessions: u64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

/// A client that used TLS before the change and connects without it after: with sslmode=prefer (libpq's default)
/// a refused handshake is retried in plain text wherever pg_hba.conf still has a `host` line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Downgraded {
    pub client: ClientKey,
    pub label: String,
    pub tls_before: Sighting,
    pub plain_after: Sighting,
    /// The pg_hba.conf lines that let it in (the server's `connection authenticated` lines, 14+), described from
    /// pg_hba_file_rules when readable.
    pub hba_lines: Vec<String>,
    pub replication: bool,
}

/// A session still connected the old way, established before the change: it fails on its next reconnect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lingering {
    pub pid: i32,
    pub user: Option<String>,
    pub database: Option<String>,
    pub application: Option<String>,
    pub address: Option<String>,
    pub class: ConnClass,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_version: Option<String>,
    pub backend_start: DateTime<Utc>,
    pub replication: bool,
}

impl Lingering {
    pub fn label(&self) -> String {
        ClientKey {
            user: self.user.clone().unwrap_or_default(),
            database: self.database.clone().unwrap_or_default(),
            application: self.application.clone().unwrap_or_default(),
            address: self.address.clone().unwrap_or_default(),
            pooler: None,
        }
        .label()
    }

    pub fn how(&self) -> &str {
        self.tls_version.as_deref().unwrap_or(self.class.label())
    }
}

/// How candidates are ordered, said after a list of them.
pub const RANKING_IN_TEXT: &str = attribution::RANKING;

/// The headline of the after-change screen and of check: "Since TLSv1.3 took effect".
pub fn took_effect(target: Change) -> &'static str {
    match target {
        Change::MinTls13 => "Since TLSv1.3 took effect",
        Change::TlsRequired => "Since TLS became required",
    }
}

/// The same, inside a sentence: "since TLSv1.3 took effect".
pub fn since_phrase(target: Change) -> &'static str {
    match target {
        Change::MinTls13 => "since TLSv1.3 took effect",
        Change::TlsRequired => "since TLS became required",
    }
}

/// How `since` is known, in a few words.
pub fn since_source_label(how: SinceSource) -> &'static str {
    match how {
        SinceSource::Log => "from the server log",
        SinceSource::Polls => "seen by pgtls's polls",
        SinceSource::ReloadBound => "at or before: last configuration reload",
        SinceSource::User => "as given with --since",
    }
}

impl AfterChange {
    /// CRITICAL when anyone was refused or fell back to plain text, WARNING when only old sessions linger.
    pub fn severity(&self) -> Option<Severity> {
        if !self.refused.is_empty() || !self.downgraded.is_empty() {
            Some(Severity::Critical)
        } else if !self.lingering.is_empty() {
            Some(Severity::Warning)
        } else {
            None
        }
    }

    /// Failed handshakes that came as scans, all addresses together.
    pub fn scan_handshakes(&self) -> u64 {
        self.scans.iter().map(|s| s.handshakes).sum()
    }

    pub fn replication(&self) -> usize {
        self.refused.iter().filter(|r| r.replication).count()
            + self.downgraded.iter().filter(|d| d.replication).count()
            + self.lingering.iter().filter(|l| l.replication).count()
    }
}

/// Does the target hold, and if so since when and with what consequences?
pub fn evaluate(target: Change, inputs: &Inputs) -> Standing {
    let since = match since(target, inputs) {
        Ok(since) => since,
        Err(standing) => return standing,
    };
    Standing::InForce(Box::new(report(target, since, inputs)))
}

fn since(target: Change, inputs: &Inputs) -> Result<FloorSince, Standing> {
    let snap = inputs.snapshot;
    let load = snap.conf_load_time;
    match target {
        Change::MinTls13 => {
            let name = "ssl_min_protocol_version";
            let current = snap.setting(name).value();
            if let Some(v) = current
                && !v.eq_ignore_ascii_case("TLSv1.3")
            {
                return Err(Standing::NotInForce {
                    reason: format!("ssl_min_protocol_version is {v}"),
                });
            }
            floor_since(inputs.ledger, name, "TLSv1.3", current, load, inputs.user_since).ok_or_else(|| {
                Standing::CannotTell {
                    reason: match current {
                        None => "ssl_min_protocol_version is hidden from pgtls's role (GRANT pg_read_all_settings), \
                                 and neither the server log nor --since says it was raised"
                            .to_string(),
                        Some(_) => "TLSv1.3 is in force but pgtls cannot tell since when: give --since".to_string(),
                    },
                }
            })
        }
        Change::TlsRequired => {
            let rst = "require_secure_transport";
            if let Setting::Set(v) = snap.setting(rst)
                && v.eq_ignore_ascii_case("on")
            {
                return floor_since(inputs.ledger, rst, "on", Some(v), load, inputs.user_since).ok_or_else(|| {
                    Standing::CannotTell {
                        reason: "require_secure_transport is on but pgtls cannot tell since when: give --since"
                            .to_string(),
                    }
                });
            }
            match inputs.hba {
                Ok(rules) => {
                    let open: Vec<String> = rules
                        .iter()
                        .filter(|r| r.admits_plaintext())
                        .map(HbaRule::describe)
                        .collect();
                    if !open.is_empty() {
                        return Err(Standing::NotInForce {
                            reason: format!("pg_hba.conf admits plain text ({})", open.join("; ")),
                        });
                    }
                    // pg_hba.conf has no setting history: it is reloaded with the configuration, so the last reload
                    // bounds when its current rules took effect.
                    let bound = load.map(|at| FloorSince {
                        at,
                        how: SinceSource::ReloadBound,
                        not_before: None,
                        note:
                            "only a bound: pg_conf_load_time() is the last configuration reload, so the hostssl-only \
                               pg_hba.conf took effect then or earlier"
                                .to_string(),
                    });
                    bound
                        .or_else(|| user_since(inputs))
                        .ok_or_else(|| Standing::CannotTell {
                            reason: "pg_hba.conf admits no plain text, but pgtls cannot tell since when: give --since"
                                .to_string(),
                        })
                }
                Err(reason) => user_since(inputs).ok_or_else(|| Standing::CannotTell {
                    reason: format!("pgtls cannot read pg_hba.conf ({reason}) and --since was not given"),
                }),
            }
        }
    }
}

fn user_since(inputs: &Inputs) -> Option<FloorSince> {
    inputs.user_since.map(|at| FloorSince {
        at,
        how: SinceSource::User,
        not_before: None,
        note: "as given with --since".to_string(),
    })
}

fn report(target: Change, since: FloorSince, inputs: &Inputs) -> AfterChange {
    let ledger = inputs.ledger;
    let from = inputs.window_from.map_or(since.at, |w| w.max(since.at));
    let refused = refused_clients(ledger, target, from, Some(since.at), None);
    let scans = scans(ledger, from);

    // With polls only, the change lies after `not_before`: a plain session from then on already counts as after.
    let after_from = since.not_before.unwrap_or(since.at);
    let mut downgraded: Vec<Downgraded> = ledger
        .records()
        .filter_map(|r| {
            let tls_before = r
                .usage
                .iter()
                .filter(|u| u.tls_version.is_some() && u.first_seen < since.at)
                .max_by_key(|u| u.last_seen)?;
            let plain: Vec<_> = r.usage.iter().filter(|u| u.class == ConnClass::PlainTcp).collect();
            let first = plain.iter().map(|u| u.first_seen).min()?;
            let last = plain.iter().map(|u| u.last_seen).max()?;
            // Plain text before the change too: a client that mixes, not one the change pushed off TLS.
            if first < after_from || last < from {
                return None;
            }
            // The client's TLS sessions came in through a `hostssl` line too: name only the lines that admit plain
            // text, unless pg_hba_file_rules cannot say which those are.
            let hba_lines = r
                .hba_lines
                .iter()
                .filter_map(|n| {
                    let rule = inputs
                        .hba
                        .as_ref()
                        .ok()
                        .and_then(|rules| rules.iter().find(|h| i64::from(h.line_number) == i64::from(*n)));
                    match rule {
                        Some(rule) => rule.admits_plaintext().then(|| rule.describe()),
                        None => Some(format!("line {n}")),
                    }
                })
                .collect();
            Some(Downgraded {
                client: r.key.clone(),
                label: r.key.label(),
                tls_before: Sighting {
                    class: tls_before.class,
                    tls_version: tls_before.tls_version.as_deref().map(str::to_string),
                    sessions: tls_before.sessions,
                    first_seen: tls_before.first_seen,
                    last_seen: tls_before.last_seen,
                },
                plain_after: Sighting {
                    class: ConnClass::PlainTcp,
                    tls_version: None,
                    sessions: plain.iter().map(|u| u.sessions).sum(),
                    first_seen: first,
                    last_seen: last,
                },
                hba_lines,
                replication: r.replication > 0,
            })
        })
        .collect();
    downgraded.sort_by_key(|d| std::cmp::Reverse(d.plain_after.last_seen));

    let mut lingering: Vec<Lingering> = inputs
        .snapshot
        .clients()
        .filter(|s| target.refuses(s.class))
        .filter_map(|s| {
            let start = s.backend_start.filter(|b| *b < since.at)?;
            Some(Lingering {
                pid: s.pid,
                user: s.user.clone(),
                database: s.database.clone(),
                application: s.application_name.clone(),
                address: s.client_addr.clone(),
                class: s.class,
                tls_version: s.tls.as_ref().map(|t| t.version.clone()),
                backend_start: start,
                replication: s.backend_type.as_deref() == Some("walsender"),
            })
        })
        .collect();
    lingering.sort_by_key(|l| (l.backend_start, l.pid));

    AfterChange {
        target,
        since: since.at,
        since_source: since.how,
        since_note: since.note,
        counted_from: from,
        refused,
        downgraded,
        lingering,
        scans,
        log_connections_off: log_connections_gap(&inputs.snapshot.settings),
    }
}

/// Failed handshakes that came as scans (see [`super::ledger::SCAN_MIN_HANDSHAKES`]), by address, counted from
/// `from`: shown apart, never as refused clients.
fn scans(ledger: &Ledger, from: DateTime<Utc>) -> Vec<Scan> {
    ledger
        .refused()
        .into_iter()
        .filter(|v| v.record.pooler.is_none())
        .filter_map(|v| {
            let handshakes = v.record.scans_since(from);
            (handshakes > 0).then(|| Scan {
                address: v.record.address.clone(),
                handshakes,
                last_seen: v.record.last_scan.unwrap_or(v.record.last_seen),
            })
        })
        .collect()
}

/// Refused attempts of the target's kind counted from `from`: the server's (`pooler` = `None`) or one pooler's.
/// `since` is when the change took effect; a pooler's is not known, and its first refusal bounds it.
fn refused_clients(
    ledger: &Ledger,
    target: Change,
    from: DateTime<Utc>,
    since: Option<DateTime<Utc>>,
    pooler: Option<&str>,
) -> Vec<RefusedClient> {
    let replicating = |key: &ClientKey| ledger.records().any(|r| &r.key == key && r.replication > 0);
    let kind = match target {
        Change::MinTls13 => RefusalKind::Handshake,
        Change::TlsRequired => RefusalKind::Plain,
    };
    let refused_by = match pooler {
        Some(address) => super::pooler::refused_by_pooler(address, target),
        None => super::pooler::refused_by_server(target).to_string(),
    };
    ledger
        .refused()
        .into_iter()
        .filter(|v| v.record.pooler.as_deref() == pooler)
        .filter_map(|v| {
            let r = &v.record;
            let attempts = r.attempts_since(kind, from);
            if attempts == 0 || r.last_seen < from {
                return None;
            }
            let a = attribution::attribute(ledger, &v, kind, since.unwrap_or(r.first_seen), from);
            let identities: Vec<ClientKey> = a.candidates.iter().map(|c| c.client.clone()).collect();
            Some(RefusedClient {
                labels: a.candidates.iter().map(|c| c.label.clone()).collect(),
                replication: r.replication > 0 || identities.iter().any(replicating),
                address: r.address.clone(),
                more_identities: a.more,
                ambiguous: a.candidates.len() + a.more > 1,
                attribution: attribution::phrase(&a.candidates, a.more),
                candidates: a.candidates,
                ruled_out: a.ruled_out,
                attempts,
                first_seen: r.first_seen,
                last_seen: r.last_seen,
                reason: r.last_reason.clone(),
                hint: r.last_hint.clone(),
                identities,
                refused_by: refused_by.clone(),
                pooler: pooler.map(str::to_string),
            })
        })
        .collect()
}

/// Each pooler's client side under `target`: whether its own setting (as last polled) applies the target, and if
/// so the clients its log shows refused within the window.
pub fn evaluate_poolers(target: Change, inputs: &Inputs) -> Vec<PoolerAfter> {
    inputs
        .snapshot
        .poolers
        .iter()
        .map(|p| {
            let setting = super::pooler::client_setting(target);
            let value = p.setting(setting).map(str::to_string);
            let in_force = value.as_deref().is_some_and(|v| pooler_applies(target, v));
            let from = inputs.window_from.unwrap_or(DateTime::<Utc>::MIN_UTC);
            PoolerAfter {
                pooler: p.address.clone(),
                target,
                setting: setting.to_string(),
                value,
                in_force,
                refused: if in_force {
                    refused_clients(inputs.ledger, target, from, None, Some(&p.address))
                } else {
                    Vec::new()
                },
                counted_from: inputs.window_from,
            }
        })
        .collect()
}

/// Whether a pooler's client setting applies the target: `client_tls_protocols` admits TLS 1.3 alone (PgBouncer
/// takes a list separated by commas, colons or spaces), `client_tls_sslmode` requires TLS.
pub fn pooler_applies(target: Change, value: &str) -> bool {
    let value = value.trim().to_ascii_lowercase();
    match target {
        Change::MinTls13 => {
            let mut listed = value.split([',', ':', ' ']).filter(|p| !p.is_empty()).peekable();
            listed.peek().is_some() && listed.all(|p| p == "tlsv1.3")
        }
        Change::TlsRequired => matches!(value.as_str(), "require" | "verify-ca" | "verify-full"),
    }
}

/// The alert for clients a pooler's own setting refused, with the fix in words.
pub fn pooler_alerts(poolers: &[PoolerAfter]) -> Vec<Alert> {
    poolers
        .iter()
        .filter(|p| !p.refused.is_empty())
        .map(|p| {
            let anonymous = p
                .refused
                .iter()
                .filter(|r| r.address == super::ledger::UNKNOWN_ADDRESS)
                .map(|r| r.attempts)
                .sum::<u64>();
            let mut who: Vec<String> = p
                .refused
                .iter()
                .filter(|r| r.address != super::ledger::UNKNOWN_ADDRESS)
                .take(3)
                .map(|r| {
                    if r.candidates.is_empty() {
                        r.address.clone()
                    } else {
                        format!("{} ({})", r.address, r.attribution)
                    }
                })
                .collect();
            if anonymous > 0 {
                who.push(format!("{anonymous} handshake(s) PgBouncer logged without an address"));
            }
            let fix = match p.target {
                Change::MinTls13 => "upgrade these clients to TLS 1.3, or set client_tls_protocols back to secure",
                Change::TlsRequired => "set sslmode=require for these clients, or client_tls_sslmode back to allow",
            };
            Alert {
                key: "after_pooler_refused".into(),
                severity: default_severity("after_pooler_refused"),
                title: format!(
                    "{} client address(es) refused by {}",
                    p.refused.len(),
                    super::pooler::refused_by_pooler(&p.pooler, p.target)
                ),
                detail: format!("{}: {fix}", who.join(", ")),
                count: p.refused.len() as u64,
            }
        })
        .collect()
}

/// One alert per list, each with the fix in words, plus one for replication and one for an unlogged server.
pub fn alerts(report: &AfterChange) -> Vec<Alert> {
    let mut out = Vec::new();
    let names = |labels: Vec<String>| {
        let more = labels.len().saturating_sub(3);
        let mut text = labels.into_iter().take(3).collect::<Vec<_>>().join(", ");
        if more > 0 {
            text.push_str(&format!(" (+{more} more)"));
        }
        text
    };
    if !report.refused.is_empty() {
        let who = names(
            report
                .refused
                .iter()
                .map(|r| format!("{} ({})", r.address, r.attribution))
                .collect(),
        );
        let fix = match report.target {
            Change::MinTls13 => {
                "upgrade these clients to TLS 1.3 (OpenSSL 1.1.1 or later, a current driver), or set \
                 ssl_min_protocol_version back to TLSv1.2 until they can"
            }
            Change::TlsRequired => {
                "set sslmode=require (or verify-full) for these clients, or give them a `host` line again until \
                 they can"
            }
        };
        out.push(Alert {
            key: "after_refused".into(),
            severity: default_severity("after_refused"),
            title: format!("{} address(es) refused since the change", report.refused.len()),
            detail: format!("{who}: {fix}"),
            count: report.refused.len() as u64,
        });
    }
    if !report.downgraded.is_empty() {
        let lines: Vec<String> = report.downgraded.iter().flat_map(|d| d.hba_lines.clone()).collect();
        let remove = if lines.is_empty() {
            "remove the `host` lines".to_string()
        } else {
            format!(
                "remove the `host` lines of pg_hba.conf that let them in ({})",
                lines.join("; ")
            )
        };
        out.push(Alert {
            key: "after_downgraded".into(),
            severity: default_severity("after_downgraded"),
            title: format!("{} client(s) fell back to plain text", report.downgraded.len()),
            detail: format!(
                "{}: {remove}, or set sslmode=require for these clients",
                names(report.downgraded.iter().map(|d| d.label.clone()).collect())
            ),
            count: report.downgraded.len() as u64,
        });
    }
    if !report.lingering.is_empty() {
        out.push(Alert {
            key: "after_lingering".into(),
            severity: default_severity("after_lingering"),
            title: format!("{} session(s) linger from before the change", report.lingering.len()),
            detail: format!(
                "{}: they fail on their next reconnect; upgrade them, then restart them at a quiet time",
                names(
                    report
                        .lingering
                        .iter()
                        .map(|l| format!("pid {} {} ({})", l.pid, l.label(), l.how()))
                        .collect()
                )
            ),
            count: report.lingering.len() as u64,
        });
    }
    let replication = report.replication();
    if replication > 0 {
        let broken = report.refused.iter().any(|r| r.replication) || report.downgraded.iter().any(|d| d.replication);
        out.push(Alert {
            key: "after_replication".into(),
            severity: if broken {
                Severity::Critical
            } else {
                default_severity("after_replication")
            },
            title: format!("{replication} replication connection(s) affected by the change"),
            detail: "a standby or logical subscriber is refused, downgraded or lingering: high availability is at \
                     stake; set its primary_conninfo (or the subscription's connection) to sslmode=require with TLS \
                     1.3"
            .to_string(),
            count: replication as u64,
        });
    }
    if let Some(gap) = &report.log_connections_off {
        out.push(Alert {
            key: "after_log_connections_off".into(),
            severity: default_severity("after_log_connections_off"),
            title: "refusals are invisible: log_connections is off".into(),
            detail: gap.clone(),
            count: 1,
        });
    }
    out
}

/// What is invisible when `log_connections` is off (or, on 18, lacks `receipt`/`authorization`); `None` when
/// the setting is on or unknown.
pub fn log_connections_gap(settings: &std::collections::BTreeMap<String, crate::model::Setting>) -> Option<String> {
    let value = settings.get("log_connections")?.value()?.trim().to_ascii_lowercase();
    let aspects: Vec<&str> = value.split(',').map(str::trim).collect();
    let on = |a: &str| {
        aspects
            .iter()
            .any(|x| *x == a || matches!(*x, "on" | "true" | "yes" | "1" | "all"))
    };
    if on("receipt") && on("authorization") {
        return None;
    }
    Some(
        "log_connections is off (on 18: lacks receipt or authorization): refused attempts (failed TLS handshakes, \
         pg_hba.conf refusals) and sessions shorter than a poll are invisible; set log_connections = on \
         (ALTER SYSTEM SET log_connections = on; SELECT pg_reload_conf(); new sessions only)"
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::ledger::{Entry, KeyFields, SettingsSeen, Source};
    use crate::fixtures;
    use crate::logsource::{HbaRefusal, Refusal, RefusedAttempt, SettingChange};

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn session(ledger: &mut Ledger, when: &str, app: &str, class: ConnClass, hba_line: Option<u32>) {
        ledger.apply(&Entry::Session {
            at: at(when),
            key: ClientKey::new(
                KeyFields::default(),
                Some("legacy"),
                Some("shop"),
                Some(app),
                Some("10.0.0.7"),
            ),
            class,
            tls_version: (class == ConnClass::Tls12).then(|| "TLSv1.2".to_string()),
            cipher: None,
            source: Source::Log,
            address: Some("10.0.0.7".into()),
            replication: false,
            hba_line,
            pid: None,
        });
    }

    fn refused(ledger: &mut Ledger, when: &str, refusal: Refusal) {
        ledger.observe_refused(&RefusedAttempt {
            at: at(when),
            pid: 9,
            client_addr: Some("10.0.0.7".into()),
            client_port: Some(5000),
            local_socket: false,
            refusal,
            hint: None,
            detail: None,
        });
    }

    /// The lab story on paper: legacy-app on TLS 1.2, the reload at 10:00, then a refused handshake and the same
    /// client back in plain text; `old` has been connected since before.
    fn story() -> (Ledger, Snapshot) {
        let mut ledger = Ledger::new(KeyFields::default());
        session(
            &mut ledger,
            "2026-12-02T09:00:00Z",
            "legacy-app",
            ConnClass::Tls12,
            None,
        );
        session(&mut ledger, "2026-12-02T09:05:00Z", "old", ConnClass::Tls12, None);
        ledger.observe_setting_change(&SettingChange {
            at: at("2026-12-02T10:00:00Z"),
            name: "ssl_min_protocol_version".into(),
            value: Some("TLSv1.3".into()),
        });
        refused(
            &mut ledger,
            "2026-12-02T10:05:00Z",
            Refusal::Handshake {
                reason: "unsupported protocol".into(),
            },
        );
        session(
            &mut ledger,
            "2026-12-02T10:05:01Z",
            "legacy-app",
            ConnClass::PlainTcp,
            Some(3),
        );
        let mut snap = fixtures::snapshot();
        snap.settings
            .insert("ssl_min_protocol_version".into(), Setting::Set("TLSv1.3".into()));
        snap.settings
            .insert("log_connections".into(), Setting::Set("on".into()));
        for s in &mut snap.sessions {
            s.backend_start = Some(at("2026-12-02T09:05:00Z"));
        }
        (ledger, snap)
    }

    fn hba() -> HbaRules {
        Ok(vec![HbaRule {
            line_number: 3,
            kind: "host".into(),
            databases: vec!["all".into()],
            users: vec!["all".into()],
            address: Some("0.0.0.0".into()),
            auth_method: Some("scram-sha-256".into()),
        }])
    }

    fn inputs<'a>(ledger: &'a Ledger, snap: &'a Snapshot, hba: &'a HbaRules) -> Inputs<'a> {
        Inputs {
            ledger,
            snapshot: snap,
            hba,
            user_since: None,
            window_from: None,
        }
    }

    fn pooler_refusal(at_: &str, addr: Option<&str>, plain: bool) -> RefusedAttempt {
        RefusedAttempt {
            at: at(at_),
            pid: 0,
            client_addr: addr.map(str::to_string),
            client_port: addr.map(|_| 40_000),
            local_socket: false,
            refusal: Refusal::Pooler(crate::logsource::PoolerRefusal {
                pooler: "pool:6432".into(),
                setting: if plain {
                    "client_tls_sslmode"
                } else {
                    "client_tls_protocols"
                }
                .into(),
                reason: if plain { "SSL required" } else { "unsupported protocol" }.into(),
                plain,
            }),
            hint: None,
            detail: None,
        }
    }

    /// Refusals from a pooler's log belong to that pooler's client side, named by its setting, and never to the
    /// server's after-change lists; an address the log did not give is counted, not invented.
    #[test]
    fn a_poolers_refusals_stand_apart_named_by_its_setting() {
        let (mut ledger, mut snap) = story();
        ledger.observe_refused(&pooler_refusal("2026-12-02T10:06:00Z", None, false));
        ledger.observe_refused(&pooler_refusal("2026-12-02T10:07:00Z", None, false));
        // The server refused 10.0.0.7 too; the pooler saw the same address as a plain client.
        ledger.observe_refused(&pooler_refusal("2026-12-02T10:08:00Z", Some("10.0.0.7"), true));
        let mut pooler = crate::model::Pooler::failed("pool:6432".into(), String::new());
        pooler.error = None;
        pooler.settings.insert("client_tls_protocols".into(), "tlsv1.3".into());
        pooler.settings.insert("client_tls_sslmode".into(), "allow".into());
        snap.poolers = vec![pooler];
        let hba = hba();
        let inputs = inputs(&ledger, &snap, &hba);

        let server = evaluate(Change::MinTls13, &inputs);
        let r = server.report().unwrap();
        assert_eq!(r.refused.len(), 1, "only the server's own refusal: {:#?}", r.refused);
        assert_eq!(r.refused[0].refused_by, "ssl_min_protocol_version");
        assert_eq!(r.refused[0].pooler, None);

        let tls13 = evaluate_poolers(Change::MinTls13, &inputs);
        assert_eq!(tls13.len(), 1);
        let p = &tls13[0];
        assert!(p.in_force && p.value.as_deref() == Some("tlsv1.3"));
        assert_eq!(
            p.refused.len(),
            1,
            "the plain refusal is not the protocol floor's: {:#?}",
            p.refused
        );
        let anonymous = &p.refused[0];
        assert_eq!(anonymous.address, crate::analysis::ledger::UNKNOWN_ADDRESS);
        assert_eq!(anonymous.attempts, 2);
        assert!(
            anonymous.identities.is_empty(),
            "no identity guessed for an unknown address"
        );
        assert_eq!(anonymous.refused_by, "pooler pool:6432's client_tls_protocols");
        assert_eq!(anonymous.pooler.as_deref(), Some("pool:6432"));
        assert_eq!(anonymous.short_reason(), "unsupported protocol");

        // client_tls_sslmode = allow: TLS is not required there, so its refusals are not listed for that target.
        let required = evaluate_poolers(Change::TlsRequired, &inputs);
        assert!(!required[0].in_force && required[0].refused.is_empty());
        snap.poolers[0]
            .settings
            .insert("client_tls_sslmode".into(), "require".into());
        let inputs = super::tests::inputs(&ledger, &snap, &hba);
        let required = evaluate_poolers(Change::TlsRequired, &inputs);
        assert_eq!(required[0].refused.len(), 1);
        let plain = &required[0].refused[0];
        assert_eq!(plain.address, "10.0.0.7");
        assert_eq!(plain.refused_by, "pooler pool:6432's client_tls_sslmode");
        assert!(
            plain.identities.is_empty(),
            "the server's clients from 10.0.0.7 are not the pooler's: {:?}",
            plain.identities
        );
        let alerts = pooler_alerts(&tls13);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].key, "after_pooler_refused");
        assert!(
            alerts[0]
                .detail
                .contains("2 handshake(s) PgBouncer logged without an address"),
            "{}",
            alerts[0].detail
        );
    }

    #[test]
    fn pooler_settings_that_apply_a_target() {
        for (value, yes) in [
            ("tlsv1.3", true),
            ("TLSv1.3", true),
            ("secure", false),
            ("tlsv1.2,tlsv1.3", false),
            ("", false),
            ("all", false),
        ] {
            assert_eq!(pooler_applies(Change::MinTls13, value), yes, "{value}");
        }
        for (value, yes) in [
            ("require", true),
            ("verify-full", true),
            ("allow", false),
            ("prefer", false),
            ("disable", false),
        ] {
            assert_eq!(pooler_applies(Change::TlsRequired, value), yes, "{value}");
        }
    }

    #[test]
    fn refused_downgraded_and_lingering_after_tls13() {
        let (ledger, snap) = story();
        let hba = hba();
        let standing = evaluate(Change::MinTls13, &inputs(&ledger, &snap, &hba));
        let r = standing.report().expect("in force");
        assert_eq!(
            (r.since, r.since_source),
            (at("2026-12-02T10:00:00Z"), SinceSource::Log)
        );
        assert_eq!(r.refused.len(), 1);
        assert_eq!(r.refused[0].address, "10.0.0.7");
        assert_eq!(r.refused[0].attempts, 1);
        assert!(r.refused[0].ambiguous, "two identities from 10.0.0.7");
        assert_eq!(r.downgraded.len(), 1);
        let d = &r.downgraded[0];
        assert_eq!(d.client.application, "legacy-app");
        assert_eq!(d.tls_before.tls_version.as_deref(), Some("TLSv1.2"));
        assert_eq!(d.plain_after.first_seen, at("2026-12-02T10:05:01Z"));
        assert_eq!(d.hba_lines, vec!["line 3: host all all 0.0.0.0 scram-sha-256"]);
        // The fixture's TLS 1.2 sessions all started before the change.
        assert!(
            r.lingering
                .iter()
                .all(|l| l.class == ConnClass::Tls12 || l.class == ConnClass::TlsOlder)
        );
        assert!(!r.lingering.is_empty());
        assert_eq!(r.severity(), Some(Severity::Critical));
        assert_eq!(r.log_connections_off, None);
        let alerts = alerts(r);
        let downgrade = alerts.iter().find(|a| a.key == "after_downgraded").unwrap();
        assert!(downgrade.detail.contains("line 3: host"), "{}", downgrade.detail);
        assert!(downgrade.detail.contains("sslmode=require"));
        assert!(alerts.iter().any(|a| a.key == "after_refused"));
        assert!(
            alerts
                .iter()
                .any(|a| a.key == "after_lingering" && a.severity == Severity::Warning)
        );
    }

    #[test]
    fn the_window_drops_old_refusals_and_downgrades_but_not_lingering() {
        let (ledger, snap) = story();
        let hba = hba();
        let mut i = inputs(&ledger, &snap, &hba);
        i.window_from = Some(at("2026-12-02T11:00:00Z"));
        let r = evaluate(Change::MinTls13, &i).report().cloned().unwrap();
        assert!(r.refused.is_empty() && r.downgraded.is_empty());
        assert!(!r.lingering.is_empty());
        assert_eq!(r.severity(), Some(Severity::Warning));
    }

    #[test]
    fn refused_attempts_count_from_the_change_and_within_the_window() {
        let (mut ledger, snap) = story();
        let handshake = || Refusal::Handshake {
            reason: "unsupported protocol".into(),
        };
        // Before the change (a TLS 1.0 client was already refused), in the hour of the change, and later ones.
        for when in [
            "2026-12-02T09:30:00Z",
            "2026-12-02T09:59:59Z",
            "2026-12-02T10:40:00Z",
            "2026-12-02T12:10:00Z",
            "2026-12-02T12:20:00Z",
        ] {
            refused(&mut ledger, when, handshake());
        }
        let hba = hba();
        let r = evaluate(Change::MinTls13, &inputs(&ledger, &snap, &hba))
            .report()
            .cloned()
            .unwrap();
        assert_eq!(
            r.refused[0].attempts, 4,
            "10:05 (the story's), 10:40, 12:10, 12:20: not the two before 10:00"
        );
        let mut i = inputs(&ledger, &snap, &hba);
        i.window_from = Some(at("2026-12-02T12:15:00Z"));
        let r = evaluate(Change::MinTls13, &i).report().cloned().unwrap();
        assert_eq!(
            r.refused[0].attempts, 2,
            "12:10 shares the hour with 12:20, so the hour counts whole"
        );
        i.window_from = Some(at("2026-12-02T12:30:00Z"));
        let r = evaluate(Change::MinTls13, &i).report().cloned().unwrap();
        assert!(r.refused.is_empty(), "nothing after 12:30");
    }

    #[test]
    fn not_in_force_or_cannot_tell() {
        let (ledger, mut snap) = story();
        let hba = hba();
        snap.settings
            .insert("ssl_min_protocol_version".into(), Setting::Set("TLSv1.2".into()));
        assert!(matches!(
            evaluate(Change::MinTls13, &inputs(&ledger, &snap, &hba)),
            Standing::NotInForce { .. }
        ));
        // Hidden, no log line, no --since: cannot tell.
        snap.settings.insert("ssl_min_protocol_version".into(), Setting::Hidden);
        let empty = Ledger::new(KeyFields::default());
        assert!(matches!(
            evaluate(Change::MinTls13, &inputs(&empty, &snap, &hba)),
            Standing::CannotTell { .. }
        ));
        let mut i = inputs(&empty, &snap, &hba);
        i.user_since = Some(at("2026-12-02T10:00:00Z"));
        let r = evaluate(Change::MinTls13, &i);
        assert_eq!(r.report().unwrap().since_source, SinceSource::User);
        // TLS required: a `host` line means not in force; an unreadable pg_hba.conf without --since, cannot tell.
        assert!(matches!(
            evaluate(Change::TlsRequired, &inputs(&ledger, &snap, &hba)),
            Standing::NotInForce { .. }
        ));
        let unreadable = Err(crate::model::HbaUnreadable::NotPermitted);
        assert!(matches!(
            evaluate(Change::TlsRequired, &inputs(&ledger, &snap, &unreadable)),
            Standing::CannotTell { .. }
        ));
    }

    #[test]
    fn tls_required_counts_plain_refusals_from_the_reload_bound() {
        let mut ledger = Ledger::new(KeyFields::default());
        session(&mut ledger, "2026-12-02T09:00:00Z", "etl", ConnClass::PlainTcp, None);
        refused(
            &mut ledger,
            "2026-12-02T10:05:00Z",
            Refusal::Hba(HbaRefusal {
                rejected: false,
                replication: false,
                host: "10.0.0.7".into(),
                user: "legacy".into(),
                database: Some("shop".into()),
                encryption: "no encryption".into(),
            }),
        );
        // A failed handshake is not the tls-required kind of refusal.
        refused(
            &mut ledger,
            "2026-12-02T10:06:00Z",
            Refusal::Handshake {
                reason: "unsupported protocol".into(),
            },
        );
        ledger.apply(&Entry::Settings(SettingsSeen {
            at: at("2026-12-02T08:00:00Z"),
            settings: Default::default(),
        }));
        let mut snap = fixtures::snapshot();
        snap.conf_load_time = Some(at("2026-12-02T10:00:00Z"));
        let strict = Ok(vec![HbaRule {
            kind: "hostssl".into(),
            ..hba().unwrap()[0].clone()
        }]);
        let r = evaluate(Change::TlsRequired, &inputs(&ledger, &snap, &strict));
        let r = r.report().unwrap();
        assert_eq!(r.since_source, SinceSource::ReloadBound);
        assert_eq!(r.refused.len(), 1);
        assert_eq!(r.refused[0].attempts, 1);
        assert_eq!(r.refused[0].labels, vec!["etl (legacy@shop from 10.0.0.7)"]);
        assert!(r.downgraded.is_empty());
    }
}
