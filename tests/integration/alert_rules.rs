//! The `[alerts]` configuration as a user writes it, applied to the fixture's sessions: thresholds, severity
//! overrides, `off`, mutes, and when the dashboard asks for the bell.
//!
//! The fixture has 2 plain-text sessions (nightly-etl as etl, grafana as grafana), 3 on TLS 1.2 (billing-batch as
//! billing twice, legacy-reports as reports) and 1 whose TLS is hidden (audit-agent as audit).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers fail by panicking")]

use std::path::Path;
use std::time::Duration;

use pgtls::analysis::alerts::{Alert, LinkHealth, Severity, evaluate_with};
use pgtls::collect::CollectError;
use pgtls::collect::poller::PollerEvent;
use pgtls::config::{Config, ConfigError};
use pgtls::fixtures;
use pgtls::model::{ConnClass, Snapshot};
use pgtls::tui::state::{AppState, Effect, Input};

fn config(toml: &str) -> Config {
    Config::parse(toml, Path::new("/etc/pgtls/config.toml")).unwrap_or_else(|e| panic!("{e}"))
}

fn alerts(toml: &str, snap: &Snapshot) -> Vec<Alert> {
    evaluate_with(Some(snap), &LinkHealth::Up, &config(toml).alerts)
}

fn shape(alerts: &[Alert]) -> Vec<(&str, Severity, u64)> {
    alerts.iter().map(|a| (a.key.as_str(), a.severity, a.count)).collect()
}

fn find<'a>(alerts: &'a [Alert], key: &str) -> Option<&'a Alert> {
    alerts.iter().find(|a| a.key == key)
}

#[test]
fn without_a_configuration_every_rule_fires_above_zero_at_its_own_severity() {
    let got = alerts("", &fixtures::snapshot());
    assert_eq!(
        shape(&got),
        vec![
            ("plaintext_sessions", Severity::Critical, 2),
            ("sessions_hidden", Severity::Warning, 1),
            ("tls12_sessions", Severity::Warning, 3),
        ]
    );
}

#[test]
fn a_rule_fires_only_when_its_count_is_above_the_threshold() {
    let snap = fixtures::snapshot();
    // The threshold holds alone and next to a severity line (the override's own path through the rule).
    for (severity_line, severity) in [
        ("", Severity::Warning),
        ("severity = \"critical\"\n", Severity::Critical),
    ] {
        let with = |threshold: u64| {
            alerts(
                &format!("[alerts.rules.tls12_sessions]\n{severity_line}threshold = {threshold}\n"),
                &snap,
            )
        };
        for (threshold, fires) in [(0, true), (2, true), (3, false), (10, false)] {
            let got = with(threshold);
            assert_eq!(
                find(&got, "tls12_sessions").map(|a| (a.count, a.severity)),
                fires.then_some((3, severity)),
                "threshold {threshold} {severity_line}"
            );
            // The threshold is the rule's own: the others still fire above zero.
            assert_eq!(find(&got, "plaintext_sessions").map(|a| a.count), Some(2));
        }
    }
}

#[test]
fn a_severity_override_changes_the_alert_and_its_place_in_the_list() {
    let snap = fixtures::snapshot();
    let got = alerts(
        "[alerts.rules.tls12_sessions]\nseverity = \"critical\"\n\
         [alerts.rules.plaintext_sessions]\nseverity = \"info\"\nthreshold = 1\n",
        &snap,
    );
    assert_eq!(
        shape(&got),
        vec![
            ("tls12_sessions", Severity::Critical, 3),
            ("sessions_hidden", Severity::Warning, 1),
            ("plaintext_sessions", Severity::Info, 2),
        ]
    );
    assert_eq!(got[0].title, "3 sessions on TLS 1.2");
}

#[test]
fn off_silences_one_rule_whatever_its_count() {
    let snap = fixtures::snapshot();
    let got = alerts("[alerts.rules.plaintext_sessions]\nseverity = \"off\"\n", &snap);
    assert_eq!(
        shape(&got),
        vec![
            ("sessions_hidden", Severity::Warning, 1),
            ("tls12_sessions", Severity::Warning, 3),
        ]
    );
    // Off also covers the lost link, which fires without any snapshot.
    let lost = LinkHealth::Lost {
        since: fixtures::now(),
        error: "connection refused".into(),
        retry_at: fixtures::now(),
    };
    let on = evaluate_with(None, &lost, &config("").alerts);
    assert_eq!(shape(&on), vec![("connection_lost", Severity::Critical, 1)]);
    let off = evaluate_with(
        None,
        &lost,
        &config("[alerts.rules.connection_lost]\nseverity = \"off\"\n").alerts,
    );
    assert!(off.is_empty(), "{off:?}");
}

#[test]
fn muted_applications_and_users_leave_the_session_counts() {
    let snap = fixtures::snapshot();
    let got = alerts("[alerts.mute]\napplications = [\"grafana\"]\n", &snap);
    let plain = find(&got, "plaintext_sessions").expect("etl is still plain text");
    assert_eq!(
        (plain.count, plain.title.as_str(), plain.detail.as_str()),
        (1, "1 plain-text TCP session", "nightly-etl as etl")
    );

    // A user mute takes every application of that user; both together clear the rule.
    let got = alerts(
        "[alerts.mute]\napplications = [\"grafana\"]\nusers = [\"etl\", \"billing\"]\n",
        &snap,
    );
    assert!(find(&got, "plaintext_sessions").is_none(), "{got:?}");
    let tls12 = find(&got, "tls12_sessions").expect("reports is not muted");
    assert_eq!(
        (tls12.count, tls12.detail.as_str()),
        (
            1,
            "refused if ssl_min_protocol_version becomes TLSv1.3: legacy-reports as reports"
        )
    );
    assert_eq!(find(&got, "sessions_hidden").map(|a| a.count), Some(1));

    // A mute names exactly: a prefix or another case is not the application.
    let got = alerts("[alerts.mute]\napplications = [\"graf\", \"Grafana\"]\n", &snap);
    assert_eq!(find(&got, "plaintext_sessions").map(|a| a.count), Some(2));
}

#[test]
fn mutes_and_thresholds_combine_on_the_count_left() {
    let snap = fixtures::snapshot();
    // 3 TLS 1.2 sessions, 2 of them billing's: muted, 1 is left, which is not above 1.
    let got = alerts(
        "[alerts.rules.tls12_sessions]\nthreshold = 1\n[alerts.mute]\nusers = [\"billing\"]\n",
        &snap,
    );
    assert!(find(&got, "tls12_sessions").is_none(), "{got:?}");
    let got = alerts(
        "[alerts.rules.tls12_sessions]\nthreshold = 0\n[alerts.mute]\nusers = [\"billing\"]\n",
        &snap,
    );
    assert_eq!(find(&got, "tls12_sessions").map(|a| a.count), Some(1));
}

#[test]
fn a_rule_that_does_not_exist_or_a_severity_that_is_not_one_is_refused() {
    let path = Path::new("/etc/pgtls/config.toml");
    let err = Config::parse("[alerts.rules.plaintext]\nthreshold = 1\n", path).unwrap_err();
    assert!(
        matches!(&err, ConfigError::UnknownRule { name, .. } if name == "plaintext"),
        "{err:?}"
    );
    let err = err.to_string();
    assert!(err.contains("alerts.rules.plaintext: unknown rule"), "{err}");
    let err = Config::parse("[alerts.rules.tls12_sessions]\nseverity = \"loud\"\n", path).unwrap_err();
    assert!(matches!(err, ConfigError::Syntax(_)), "{err:?}");
    let err = err.to_string();
    assert!(err.contains("line 2"), "{err}");
    assert!(err.contains("severity"), "{err}");
}

// ---- the bell: the decision the state hands the app loop as Effect::Bell ---------------------------------------

fn dashboard(toml: &str) -> AppState {
    let mut state = AppState::new("db:5432/postgres".into(), Duration::from_secs(2), fixtures::now());
    state.alerts.config = config(toml).alerts;
    state
}

fn poll(state: &mut AppState, snap: &Snapshot, seconds: i64) -> Vec<Effect> {
    let at = fixtures::now() + chrono::Duration::seconds(seconds);
    let mut snap = snap.clone();
    snap.taken_at = at;
    state.handle(Input::Poller {
        event: PollerEvent::Snapshot(std::sync::Arc::new(snap)),
        at,
    })
}

fn rings(effects: &[Effect]) -> bool {
    effects.contains(&Effect::Bell)
}

/// A snapshot whose only alert is critical: one plain-text session.
fn only_plaintext() -> Snapshot {
    let mut snap = fixtures::snapshot();
    snap.sessions
        .retain(|s| matches!(s.class, ConnClass::Tls13 | ConnClass::Local) || s.pid == 4157);
    snap
}

/// A snapshot that raises nothing.
fn all_tls13() -> Snapshot {
    let mut snap = fixtures::snapshot();
    snap.sessions.retain(|s| s.class == ConnClass::Tls13);
    snap
}

#[test]
fn the_bell_rings_when_a_critical_alert_begins_and_not_while_it_holds() {
    let mut state = dashboard("[alerts]\nbell = true\n");
    assert!(!rings(&poll(&mut state, &all_tls13(), 0)), "nothing to ring for");
    assert!(rings(&poll(&mut state, &only_plaintext(), 2)));
    assert!(!rings(&poll(&mut state, &only_plaintext(), 4)), "still the same alert");
    assert!(!rings(&poll(&mut state, &all_tls13(), 6)), "cleared");
    assert!(
        rings(&poll(&mut state, &only_plaintext(), 8)),
        "back again: a new alert"
    );
}

#[test]
fn the_bell_stays_quiet_unless_asked_and_for_warnings() {
    let mut quiet = dashboard("");
    assert!(
        !rings(&poll(&mut quiet, &only_plaintext(), 0)),
        "bell = false is the default"
    );

    let mut state = dashboard("[alerts]\nbell = true\n");
    let mut warnings_only = fixtures::snapshot();
    warnings_only.sessions.retain(|s| s.class != ConnClass::PlainTcp);
    assert!(
        !rings(&poll(&mut state, &warnings_only, 0)),
        "TLS 1.2 and hidden sessions are warnings"
    );

    // Lowered to a warning by the configuration, the plain-text session no longer rings; turned off, neither.
    for rule in ["severity = \"warning\"", "severity = \"off\"", "threshold = 1"] {
        let mut state = dashboard(&format!(
            "[alerts]\nbell = true\n[alerts.rules.plaintext_sessions]\n{rule}\n"
        ));
        assert!(!rings(&poll(&mut state, &only_plaintext(), 0)), "{rule}");
    }
    // Raised to critical, a TLS 1.2 session rings.
    let mut state = dashboard("[alerts]\nbell = true\n[alerts.rules.tls12_sessions]\nseverity = \"critical\"\n");
    assert!(rings(&poll(&mut state, &warnings_only, 0)));
}

#[test]
fn the_bell_rings_once_when_the_link_is_lost() {
    let mut state = dashboard("[alerts]\nbell = true\n");
    assert!(!rings(&poll(&mut state, &all_tls13(), 0)));
    let lost = |state: &mut AppState, seconds: i64| {
        let at = fixtures::now() + chrono::Duration::seconds(seconds);
        state.handle(Input::Poller {
            event: PollerEvent::Failed {
                error: CollectError::poll("connection to the server was lost"),
                at,
                retry_in: Duration::from_secs(1),
            },
            at,
        })
    };
    assert!(rings(&lost(&mut state, 2)));
    assert!(!rings(&lost(&mut state, 4)), "still the same outage");
}
