//! `/metrics`: what every target reported, in the Prometheus text format (OpenMetrics), encoded by the official
//! client library. Series are per target and per small closed sets (transport, version, setting, change, kind,
//! certificate depth): never per session or pid. Per-client series exist only under a cap.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::analysis::after::Standing;
use crate::analysis::sources::SourceStatus;
use crate::analysis::whatif::Change;
use crate::collect::engine::SharedState;
#[cfg(test)]
use crate::collect::engine::TargetState;
use crate::collect::sql::KNOWN_SETTINGS;
use crate::model::{ConnClass, Setting};

/// The content type of what [`render`] returns.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Longest label value: names, subjects and settings come from outside and a label is no place for a novel.
const MAX_LABEL_CHARS: usize = 200;

/// A label value from outside: controls and bidi characters escaped (the text format escapes only `\`, `"` and
/// newline), and bounded.
pub fn label(text: &str) -> String {
    let escaped = crate::conn::text::escaped(text);
    if escaped.chars().count() <= MAX_LABEL_CHARS {
        return escaped;
    }
    let mut cut: String = escaped.chars().take(MAX_LABEL_CHARS - 1).collect();
    cut.push('…');
    cut
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabel {
    target: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    target: String,
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SessionLabels {
    target: String,
    transport: String,
    version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SettingLabels {
    target: String,
    name: String,
    value: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChangeLabels {
    target: String,
    change: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    target: String,
    version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CertLabels {
    target: String,
    depth: String,
    subject: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CertInfoLabels {
    target: String,
    depth: String,
    subject: String,
    issuer: String,
    sha256: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BundleLabels {
    target: String,
    bundle: String,
    sslmode: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    target: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PlatformLabels {
    target: String,
    platform: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AfterLabels {
    target: String,
    change: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClientLabels {
    target: String,
    user: String,
    database: String,
    application: String,
    version: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// `transport` and `version` labels of a session class: version only for TLS.
pub fn transport(class: ConnClass, tls_version: Option<&str>) -> (&'static str, String) {
    match class {
        ConnClass::Tls13 => ("tls", "TLSv1.3".to_string()),
        ConnClass::Tls12 => ("tls", "TLSv1.2".to_string()),
        ConnClass::TlsOlder => ("tls", label(tls_version.unwrap_or("older"))),
        ConnClass::PlainTcp => ("plain", String::new()),
        ConnClass::Gss => ("gss", String::new()),
        ConnClass::Local => ("local", String::new()),
        ConnClass::Unknown => ("unknown", String::new()),
    }
}

/// The ledger's `version` label for a client: the weakest way it was seen connecting.
fn client_version(class: ConnClass) -> &'static str {
    match class {
        ConnClass::Tls13 => "TLSv1.3",
        ConnClass::Tls12 => "TLSv1.2",
        ConnClass::TlsOlder => "older",
        ConnClass::PlainTcp => "plain",
        ConnClass::Gss => "gss",
        ConnClass::Local => "local",
        ConnClass::Unknown => "unknown",
    }
}

fn change_label(target: Change) -> &'static str {
    match target {
        Change::MinTls13 => "min_tls13",
        Change::TlsRequired => "tls_required",
    }
}

/// Encode every target's state. `client_cap` bounds the per-client series over all targets (0: none).
pub fn render(states: &[SharedState], client_cap: usize) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    let up = Family::<TargetLabel, Gauge>::default();
    let sessions = Family::<SessionLabels, Gauge>::default();
    let settings = Family::<SettingLabels, Gauge>::default();
    let whatif = Family::<ChangeLabels, Gauge>::default();
    let clients = Family::<VersionLabels, Gauge>::default();
    let not_after = Family::<CertLabels, Gauge>::default();
    let cert_info = Family::<CertInfoLabels, Gauge>::default();
    let bundles = Family::<BundleLabels, Gauge>::default();
    let refused = Family::<ReasonLabels, Counter>::default();
    let poll = Family::<TargetLabel, FloatGauge>::default();
    let last_poll = Family::<TargetLabel, Gauge>::default();
    let failures = Family::<TargetLabel, Counter>::default();
    let after = Family::<AfterLabels, Gauge>::default();
    let client_series = Family::<ClientLabels, Gauge>::default();
    let clients_not_listed = Family::<TargetLabel, Gauge>::default();
    let source_up = Family::<SourceLabels, Gauge>::default();
    let ledger_errors = Family::<TargetLabel, Counter>::default();
    let source_last = Family::<SourceLabels, Gauge>::default();
    let source_rows = Family::<SourceLabels, Gauge>::default();
    let source_truncated = Family::<SourceLabels, Gauge>::default();
    let platforms = Family::<PlatformLabels, Gauge>::default();
    let mut client_budget = client_cap;

    for shared in states {
        // Each target's lock is held only while its own series are built.
        let s = shared.lock();
        let target = label(&s.name);
        let t = || TargetLabel { target: target.clone() };
        up.get_or_create(&t()).set(i64::from(s.up));
        failures.get_or_create(&t()).inc_by(s.failures);
        if let Some(snap) = &s.snapshot {
            last_poll.get_or_create(&t()).set(snap.taken_at.timestamp());
        }
        for source in s.sources() {
            let labels = SourceLabels {
                target: target.clone(),
                source: label(&source.source.label()),
            };
            // When it last answered is a fact, kept while the target is down; the rest is dropped then (it would
            // be stale: a gauge that keeps its last value keeps every rule on it firing).
            if let Some(at) = source.last_answer {
                source_last.get_or_create(&labels).set(at.timestamp());
            }
            if !source.current {
                continue;
            }
            source_up.get_or_create(&labels).set(i64::from(source.up));
            if !source.up {
                continue;
            }
            source_truncated.get_or_create(&labels).set(i64::from(source.truncated));
            if let Some(rows) = source.rows {
                source_rows
                    .get_or_create(&labels)
                    .set(i64::try_from(rows).unwrap_or(i64::MAX));
            }
        }
        // Counters keep their count while the target is down: it is still true, and their rates fall to zero.
        if let Some(history) = &s.history {
            if history.status.ledger.is_some() {
                ledger_errors.get_or_create(&t()).inc_by(history.ledger_write_errors);
            }
            let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
            for r in &history.refused {
                // Scans' handshakes included: a counter must never fall when a burst turns out to be a scan.
                for (reason, n) in r.record.all_attempts_by_reason() {
                    *reasons.entry(label(reason)).or_default() += n;
                }
            }
            for (reason, n) in reasons {
                refused
                    .get_or_create(&ReasonLabels {
                        target: target.clone(),
                        reason,
                    })
                    .inc_by(n);
            }
        }
        if !s.up {
            continue;
        }
        if let Some(snap) = &s.snapshot {
            poll.get_or_create(&t()).set(snap.poll_ms / 1000.0);
            let mut counts: BTreeMap<(&'static str, String), i64> = BTreeMap::new();
            for session in snap.clients() {
                let key = transport(session.class, session.tls.as_ref().map(|t| t.version.as_str()));
                *counts.entry(key).or_default() += 1;
            }
            // Zero series for the usual kinds, so a sum over them never lacks a series when nobody connects so.
            for key in [
                ("tls", "TLSv1.3"),
                ("tls", "TLSv1.2"),
                ("plain", ""),
                ("local", ""),
                ("gss", ""),
                ("unknown", ""),
            ] {
                counts.entry((key.0, key.1.to_string())).or_default();
            }
            for ((transport, version), n) in counts {
                sessions
                    .get_or_create(&SessionLabels {
                        target: target.clone(),
                        transport: transport.to_string(),
                        version,
                    })
                    .set(n);
            }
            platforms
                .get_or_create(&PlatformLabels {
                    target: target.clone(),
                    platform: snap.platform.name.key().to_string(),
                })
                .set(1);
            for known in KNOWN_SETTINGS {
                let name = known.name;
                let value = match snap.settings.get(name) {
                    Some(Setting::Set(v)) => label(v),
                    Some(Setting::Hidden) => "(hidden)".to_string(),
                    _ => continue,
                };
                settings
                    .get_or_create(&SettingLabels {
                        target: target.clone(),
                        name: name.to_string(),
                        value,
                    })
                    .set(1);
            }
        }
        if let Some(history) = &s.history {
            for w in &history.whatif {
                whatif
                    .get_or_create(&ChangeLabels {
                        target: target.clone(),
                        change: change_label(w.target).to_string(),
                    })
                    .set(i64::try_from(w.refused.len()).unwrap_or(i64::MAX));
            }
            let mut by_version: BTreeMap<&'static str, i64> = BTreeMap::new();
            let mut unlisted = 0i64;
            for client in &history.client_classes {
                let class = client.class;
                *by_version.entry(client_version(class)).or_default() += 1;
                if client_budget > 0 {
                    client_budget -= 1;
                    client_series
                        .get_or_create(&ClientLabels {
                            target: target.clone(),
                            user: label(&client.key.user),
                            database: label(&client.key.database),
                            application: label(&client.key.application),
                            version: client_version(class).to_string(),
                        })
                        .set(1);
                } else {
                    unlisted += 1;
                }
            }
            if client_cap > 0 {
                clients_not_listed.get_or_create(&t()).set(unlisted);
            }
            for (version, n) in by_version {
                clients
                    .get_or_create(&VersionLabels {
                        target: target.clone(),
                        version: version.to_string(),
                    })
                    .set(n);
            }
            // Refusals are seen only in the log: without it their number is unknown, so no series, not a 0.
            let log_on = history.status.log.as_ref().is_some_and(SourceStatus::is_on);
            for standing in &history.after {
                let Standing::InForce(report) = standing else { continue };
                for (kind, n) in [
                    ("refused", report.refused.len()),
                    ("downgraded", report.downgraded.len()),
                    ("lingering", report.lingering.len()),
                ] {
                    if kind == "refused" && !log_on {
                        continue;
                    }
                    after
                        .get_or_create(&AfterLabels {
                            target: target.clone(),
                            change: change_label(report.target).to_string(),
                            kind: kind.to_string(),
                        })
                        .set(i64::try_from(n).unwrap_or(i64::MAX));
                }
            }
        }
        if let Some(probe) = &s.probe {
            for verdict in &probe.bundles {
                for (sslmode, ok) in [("verify-full", verdict.verifies), ("verify-ca", verdict.verifies_ca)] {
                    bundles
                        .get_or_create(&BundleLabels {
                            target: target.clone(),
                            bundle: label(&verdict.path),
                            sslmode: sslmode.to_string(),
                        })
                        .set(i64::from(ok));
                }
            }
            for (depth, cert) in probe.chain.iter().enumerate() {
                let subject = label(&cert.subject);
                not_after
                    .get_or_create(&CertLabels {
                        target: target.clone(),
                        depth: depth.to_string(),
                        subject: subject.clone(),
                    })
                    .set(cert.not_after.timestamp());
                cert_info
                    .get_or_create(&CertInfoLabels {
                        target: target.clone(),
                        depth: depth.to_string(),
                        subject,
                        issuer: label(&cert.issuer),
                        sha256: label(&cert.sha256),
                    })
                    .set(1);
            }
        }
    }

    registry.register(
        "pgtls_up",
        "Whether the last poll of the target succeeded (1) or not (0)",
        up,
    );
    registry.register(
        "pgtls_sessions",
        "Client sessions by transport (tls, plain, local, gss, unknown) and TLS version, pgtls's own left out",
        sessions,
    );
    registry.register(
        "pgtls_server_setting_info",
        "The server's TLS settings (value label); 1 per setting",
        settings,
    );
    registry.register(
        "pgtls_target_platform_info",
        "Where the target runs, from the marks it shows (azure_flexible_server, rds, aurora, cloud_sql, alloydb, \
         cloudnativepg, self_hosted, unknown); 1 per target",
        platforms,
    );
    registry.register(
        "pgtls_whatif_refused_clients",
        "Clients seen that the change (min_tls13, tls_required) would refuse",
        whatif,
    );
    registry.register(
        "pgtls_clients",
        "Clients in the ledger by the weakest way each was seen connecting",
        clients,
    );
    registry.register(
        "pgtls_certificate_not_after_timestamp_seconds",
        "Expiry of each certificate the server presents (depth 0 is the server's own)",
        not_after,
    );
    registry.register(
        "pgtls_certificate_info",
        "Each certificate the server presents: subject, issuer and SHA-256 fingerprint; 1 per certificate",
        cert_info,
    );
    registry.register(
        "pgtls_bundle_verifies",
        "Whether a client with this root bundle as sslrootcert would connect (1) or not (0), by sslmode",
        bundles,
    );
    registry.register(
        "pgtls_connections_refused",
        "Connection attempts the server refused before authorization, by reason, from its log",
        refused,
    );
    registry.register(
        "pgtls_poll_duration_seconds",
        "How long the last poll of the target took",
        poll,
    );
    registry.register(
        "pgtls_last_poll_timestamp_seconds",
        "When the last successful poll ran (the server's clock)",
        last_poll,
    );
    registry.register(
        "pgtls_poll_failures",
        "Failed connects and polls since pgtls started",
        failures,
    );
    registry.register(
        "pgtls_source_up",
        "Whether each source of a target answered its last attempt (1) or not (0): source is poll, log, ledger \
         or pooler:<address>; a pooler's is absent while the target is down",
        source_up,
    );
    registry.register(
        "pgtls_ledger_write_errors",
        "Failed writes of the target's ledger file (each retry counts); memory keeps everything and the file is \
         rewritten whole once a write succeeds",
        ledger_errors,
    );
    registry.register(
        "pgtls_source_last_answer_timestamp_seconds",
        "When each source last answered (kept while it is down)",
        source_last,
    );
    registry.register(
        "pgtls_source_rows",
        "Rows in each source's last answer (sessions for the poll; every SHOW together for a pooler)",
        source_rows,
    );
    registry.register(
        "pgtls_source_truncated",
        "Whether each source's last answer passed pgtls's row or byte cap and was cut there (1) or not (0)",
        source_truncated,
    );
    registry.register(
        "pgtls_after_change_clients",
        "Once a change is in force: clients refused, downgraded to plain text, or lingering on an older version",
        after,
    );
    if client_cap > 0 {
        registry.register(
            "pgtls_client",
            "One series per ledger client (user, database, application, weakest version), up to --client-series",
            client_series,
        );
        registry.register(
            "pgtls_clients_not_listed",
            "Ledger clients beyond the --client-series cap, so without a pgtls_client series",
            clients_not_listed,
        );
    }
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    fn state(name: &str) -> SharedState {
        SharedState::from(TargetState {
            name: name.into(),
            up: true,
            snapshot: Some(std::sync::Arc::new(fixtures::snapshot())),
            history: Some(Box::new(fixtures::history_after())),
            probe: Some(Box::new(fixtures::probe_report())),
            ..TargetState::default()
        })
    }

    #[test]
    fn every_documented_metric_is_there_with_escaped_labels() {
        let hostile = "evil\"} pgtls_up 1\n# \u{1b}[2J\u{202e}";
        let text = render(&[state("orders-primary"), state(hostile)], 0).unwrap();
        for name in [
            "pgtls_up",
            "pgtls_sessions",
            "pgtls_server_setting_info",
            "pgtls_target_platform_info",
            "pgtls_whatif_refused_clients",
            "pgtls_clients",
            "pgtls_certificate_not_after_timestamp_seconds",
            "pgtls_connections_refused_total",
            "pgtls_poll_duration_seconds",
            "pgtls_after_change_clients",
            "pgtls_source_up",
            "pgtls_source_last_answer_timestamp_seconds",
            "pgtls_source_rows",
            "pgtls_source_truncated",
        ] {
            assert!(text.contains(&format!("\n{name}{{")), "{name} missing:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
        // One line per sample: the hostile name stays inside its label value.
        for line in text.lines() {
            assert!(
                line.starts_with('#') || line.starts_with("pgtls_"),
                "a label broke out of its line: {line:?}"
            );
            assert!(!line.contains('\u{1b}') && !line.contains('\u{202e}'), "{line:?}");
        }
        // pgtls escapes the controls to visible text; the text format then escapes its backslashes and the quote.
        assert!(
            text.contains(r#"target="evil\"} pgtls_up 1\\n# \\x1b[2J\\u{202e}""#),
            "{text}"
        );
        assert!(!text.contains("pgtls_client{"), "no per-client series unless asked");
        // The fixture's server is self-hosted.
        assert!(
            text.contains("pgtls_target_platform_info{target=\"orders-primary\",platform=\"self_hosted\"} 1\n"),
            "{text}"
        );
    }

    #[test]
    fn sessions_by_transport_count_clients_only() {
        let text = render(&[state("a")], 0).unwrap();
        let snap = fixtures::snapshot();
        let plain = snap.clients().filter(|s| s.class == ConnClass::PlainTcp).count();
        assert!(
            text.contains(&format!(
                "pgtls_sessions{{target=\"a\",transport=\"plain\",version=\"\"}} {plain}\n"
            )),
            "{text}"
        );
        let tls12 = snap.clients().filter(|s| s.class == ConnClass::Tls12).count();
        assert!(text.contains(&format!(
            "pgtls_sessions{{target=\"a\",transport=\"tls\",version=\"TLSv1.2\"}} {tls12}\n"
        )));
        let total: usize = text
            .lines()
            .filter(|l| l.starts_with("pgtls_sessions{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<usize>().ok())
            .sum();
        assert_eq!(
            total,
            snap.clients().count(),
            "every client session once, the monitor not at all"
        );
    }

    #[test]
    fn per_client_series_stop_at_the_cap() {
        let history = fixtures::history_after();
        let n = history.client_classes.len();
        assert!(n > 3);
        let text = render(&[state("a")], 3).unwrap();
        assert_eq!(text.lines().filter(|l| l.starts_with("pgtls_client{")).count(), 3);
        assert!(
            text.contains(&format!("pgtls_clients_not_listed{{target=\"a\"}} {}\n", n - 3)),
            "{text}"
        );
    }

    /// Names of the samples `render` writes (counters with their `_total`).
    fn exported() -> std::collections::BTreeSet<String> {
        render(&[state("a")], 10)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split(['{', ' ']).next().map(str::to_string))
            .collect()
    }

    fn used_in(text: &str) -> std::collections::BTreeSet<String> {
        let mut used = std::collections::BTreeSet::new();
        let mut rest = text;
        while let Some(at) = rest.find("pgtls_") {
            let tail = &rest[at..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            used.insert(tail[..end].to_string());
            rest = &tail[end..];
        }
        used
    }

    /// The serve page's list of metrics (docs/serve.md) names every one serve exports.
    #[test]
    fn the_readme_lists_every_exported_metric() {
        let readme = include_str!("../../docs/serve.md");
        let missing: Vec<_> = exported()
            .into_iter()
            .filter(|name| !readme.contains(&format!("`{name}`")))
            .collect();
        assert!(missing.is_empty(), "not in docs/serve.md's metrics table: {missing:?}");
    }

    #[test]
    fn the_grafana_dashboard_and_the_rules_use_only_exported_metrics() {
        let exported = exported();
        let dashboard = include_str!("../../assets/grafana/pgtls-fleet.json");
        let rules = include_str!("../../assets/prometheus/rules.yml");
        for (file, text) in [("dashboard", dashboard), ("rules", rules)] {
            let used = used_in(text);
            assert!(used.len() >= 5, "{file} uses {used:?}");
            let unknown: Vec<_> = used.difference(&exported).collect();
            assert!(
                unknown.is_empty(),
                "{file} uses metrics pgtls does not export: {unknown:?} (exported: {exported:?})"
            );
        }
    }

    /// A target that was polled, then went down: `pgtls_up 0`, when it was last polled, its counters; no gauge that
    /// would go on saying what it said (fact 30: a gauge kept at its last value keeps every rule on it firing).
    #[test]
    fn a_target_that_is_down_says_so_and_nothing_else_stale() {
        let mut snapshot = fixtures::snapshot_pooled();
        snapshot.poolers[0].answered_at = Some(snapshot.taken_at);
        let down = SharedState::from(TargetState {
            name: "b".into(),
            up: false,
            failures: 3,
            last_error: Some("connection refused".into()),
            snapshot: Some(std::sync::Arc::new(snapshot.clone())),
            history: Some(Box::new(fixtures::history_after())),
            probe: Some(Box::new(fixtures::probe_report())),
            ..TargetState::default()
        });
        let text = render(&[down], 10).unwrap();
        let names: std::collections::BTreeSet<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split(['{', ' ']).next())
            .collect();
        let mut expected = std::collections::BTreeSet::from([
            "pgtls_up",
            "pgtls_last_poll_timestamp_seconds",
            "pgtls_source_up",
            "pgtls_source_last_answer_timestamp_seconds",
            "pgtls_poll_failures_total",
        ]);
        if text.contains("pgtls_connections_refused_total{") {
            expected.insert("pgtls_connections_refused_total");
        }
        assert_eq!(names, expected, "{text}");
        assert!(text.contains("pgtls_up{target=\"b\"} 0\n"), "{text}");
        assert!(
            text.contains("pgtls_source_up{target=\"b\",source=\"poll\"} 0\n"),
            "{text}"
        );
        assert!(
            !text.contains("pgtls_source_up{target=\"b\",source=\"pooler:"),
            "a pooler's state is not known while the server is down: {text}"
        );
        let at = snapshot.taken_at.timestamp();
        assert!(
            text.contains(&format!("pgtls_last_poll_timestamp_seconds{{target=\"b\"}} {at}\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "pgtls_source_last_answer_timestamp_seconds{{target=\"b\",source=\"pooler:pool.example.internal:6432\"}} {at}\n"
            )),
            "{text}"
        );

        let never = SharedState::from(TargetState {
            name: "c".into(),
            ..TargetState::default()
        });
        let text = render(&[never], 0).unwrap();
        assert!(text.contains("pgtls_up{target=\"c\"} 0\n"));
        assert!(!text.contains("pgtls_sessions{"));
        assert!(!text.contains("pgtls_last_poll_timestamp_seconds{"));
    }

    /// Each pooler's state beside the poll's, in one family whose `source` label names it.
    #[test]
    fn each_poolers_state_is_a_source() {
        let mut snapshot = fixtures::snapshot_pooled();
        snapshot.poolers[0].answered_at = Some(snapshot.taken_at);
        snapshot.poolers[0].rows = 7;
        snapshot.poolers[0].truncated = true;
        let mut silent = crate::model::Pooler::failed("10.0.0.5:6432".into(), "did not answer".into());
        silent.answered_at = None;
        snapshot.poolers.push(silent);
        let up = SharedState::from(TargetState {
            name: "a".into(),
            up: true,
            snapshot: Some(std::sync::Arc::new(snapshot.clone())),
            ..TargetState::default()
        });
        let text = render(&[up], 0).unwrap();
        let pooler = "target=\"a\",source=\"pooler:pool.example.internal:6432\"";
        for line in [
            "pgtls_source_up{target=\"a\",source=\"poll\"} 1".to_string(),
            format!("pgtls_source_up{{{pooler}}} 1"),
            format!("pgtls_source_rows{{{pooler}}} 7"),
            format!("pgtls_source_truncated{{{pooler}}} 1"),
            format!(
                "pgtls_source_last_answer_timestamp_seconds{{{pooler}}} {}",
                snapshot.taken_at.timestamp()
            ),
            "pgtls_source_up{target=\"a\",source=\"pooler:10.0.0.5:6432\"} 0".to_string(),
        ] {
            assert!(text.contains(&format!("{line}\n")), "{line} missing:\n{text}");
        }
        for family in ["pgtls_source_rows", "pgtls_source_truncated"] {
            assert!(
                !text.contains(&format!("{family}{{target=\"a\",source=\"pooler:10.0.0.5:6432\"}}")),
                "a console that did not answer has no answer to count: {text}"
            );
        }
    }
}
