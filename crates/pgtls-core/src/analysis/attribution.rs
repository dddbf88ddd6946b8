//! Who a refused address was: the identities seen from it that the change would refuse, ranked by evidence.
//!
//! A failed handshake (or a pg_hba.conf refusal of plain text) names only an address. From one address come many
//! clients: only those the change refuses can be the refused one (a raised floor refuses what used TLS below 1.3;
//! TLS required refuses what came in plain text). Among those, the best evidence is rhythm: a job that reconnected
//! every 10 s before the change and an address refused every 10 s after it are the same client. Then whether it
//! came and went at all (a session still connected since before the change lingers; it is not refused until it
//! reconnects), then how recently it was seen. Every output (dashboard, `check`, `/api`) reads what
//! [`attribute`] returns.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ledger::{ClientKey, ClientRecord, Ledger, RefusalKind, RefusedView};
use crate::model::ConnClass;

/// Two rhythms match when the longer gap is at most this many times the shorter. A job's period is fixed, but both
/// gaps are averages in whole seconds over first and last sightings (a log line, or a poll up to an interval late):
/// on the lab (`tests/integration/evidence.rs` prints it) a job every 2 s gave sessions every 2 s before the change
/// and refusals every 2 s after, while an app that stays connected has no rhythm at all. 1.5 admits a whole second
/// of rounding at a 2 s period (2 against 3) and tells a 5 s job from an 8 s one (the unit test shows where it
/// stops).
pub const CADENCE_RATIO: f64 = 1.5;
/// Candidates named per refused address; more are counted.
pub const MAX_CANDIDATES: usize = 8;

/// The ranking in words, as the outputs explain it.
pub const RANKING: &str = "ranked by evidence: first a client whose sessions came and went before the change at the \
     rhythm the refusals now come, then one that reconnects over one that stays connected (a session connected since \
     before the change lingers, it is not refused until it reconnects), then the most recently seen";

/// One identity that may be the refused client, with what speaks for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    pub client: ClientKey,
    pub label: String,
    pub evidence: Evidence,
    /// The evidence in one sentence.
    pub why: String,
}

/// What the ranking weighs, as measured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// Its sessions the change would refuse (TLS below 1.3, or plain text), started before the change.
    pub sessions_before: u64,
    /// The mean gap between those sessions, in seconds (two or more sessions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every_secs: Option<u64>,
    /// The mean gap between the address's refusals, in seconds (two or more refusals).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusals_every_secs: Option<u64>,
    /// The two gaps are within [`CADENCE_RATIO`] of each other.
    pub cadence_matches: bool,
    /// Its latest session of that kind started then.
    pub last_seen: DateTime<Utc>,
    /// Connected at the latest poll.
    pub connected_now: bool,
    /// It came and went (two or more sessions of that kind).
    pub reconnects: bool,
}

/// An identity seen from the address that the change does not refuse: never a candidate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuledOut {
    pub client: ClientKey,
    pub label: String,
    pub why: String,
}

/// The candidates of one refused address, best first, and the identities ruled out.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attribution {
    pub candidates: Vec<Candidate>,
    pub more: usize,
    pub ruled_out: Vec<RuledOut>,
}

/// Whether a session of `class` is one a refusal of `kind` turns away.
fn refused_kind(kind: RefusalKind, class: ConnClass) -> bool {
    match kind {
        RefusalKind::Handshake => class.below_tls13(),
        RefusalKind::Plain => class == ConnClass::PlainTcp,
    }
}

/// Rank the identities seen from `view`'s address for refusals of `kind` counted from `from`, the change having
/// taken effect at `since`.
pub fn attribute(
    ledger: &Ledger,
    view: &RefusedView,
    kind: RefusalKind,
    since: DateTime<Utc>,
    from: DateTime<Utc>,
) -> Attribution {
    let record = &view.record;
    let attempts = record.attempts_since(kind, from);
    let first = record.first_seen.max(from);
    let refusals_every = gap(first, record.last_seen, attempts);
    let mut candidates = Vec::new();
    let mut ruled_out = Vec::new();
    for key in &view.seen {
        let Some(r) = ledger.client(key) else { continue };
        match evidence(r, kind, refusals_every) {
            Some(evidence) => candidates.push(Candidate {
                client: key.clone(),
                label: key.label(),
                why: words(&evidence, kind, since),
                evidence,
            }),
            None => ruled_out.push(RuledOut {
                client: key.clone(),
                label: key.label(),
                why: ruled_out_why(r, kind),
            }),
        }
    }
    candidates.sort_by(|a, b| {
        let rank = |c: &Candidate| {
            let e = &c.evidence;
            (
                e.cadence_matches,
                // Not a session that only lingers.
                !e.connected_now || e.reconnects,
                e.reconnects,
                e.last_seen,
            )
        };
        rank(b).cmp(&rank(a)).then_with(|| a.label.cmp(&b.label))
    });
    let more = candidates.len().saturating_sub(MAX_CANDIDATES);
    candidates.truncate(MAX_CANDIDATES);
    Attribution {
        candidates,
        more,
        ruled_out,
    }
}

/// The mean gap of `n` events from `first` to `last`, in whole seconds (at least 1).
fn gap(first: DateTime<Utc>, last: DateTime<Utc>, n: u64) -> Option<u64> {
    let span = (last - first).num_milliseconds();
    (n >= 2 && span >= 0).then(|| (span as u64 / (n - 1) / 1000).max(1))
}

fn evidence(r: &ClientRecord, kind: RefusalKind, refusals_every: Option<u64>) -> Option<Evidence> {
    // Every such session started before the change (after it, the change refuses them). Not filtered by `since`:
    // a poll dates a session by when it first saw it, which for one connected across the change is after it.
    let rows: Vec<_> = r.usage.iter().filter(|u| refused_kind(kind, u.class)).collect();
    let sessions: u64 = rows.iter().map(|u| u.sessions).sum();
    if sessions == 0 {
        return None;
    }
    let first = rows.iter().map(|u| u.first_seen).min()?;
    let last = rows.iter().map(|u| u.last_seen).max()?;
    let every = gap(first, last, sessions);
    let cadence_matches = match (every, refusals_every) {
        (Some(a), Some(b)) => {
            let (lo, hi) = (a.min(b) as f64, a.max(b) as f64);
            hi <= lo * CADENCE_RATIO
        }
        _ => false,
    };
    Some(Evidence {
        sessions_before: sessions,
        every_secs: every,
        refusals_every_secs: refusals_every,
        cadence_matches,
        last_seen: last,
        connected_now: r.connected_now > 0,
        reconnects: sessions >= 2,
    })
}

fn kind_words(kind: RefusalKind) -> &'static str {
    match kind {
        RefusalKind::Handshake => "TLS below 1.3",
        RefusalKind::Plain => "plain text",
    }
}

/// "a gap of 5 s", "2 min", "3 h".
fn span(secs: u64) -> String {
    match secs {
        0..120 => format!("{secs} s"),
        120..7200 => format!("{} min", secs / 60),
        _ => format!("{} h", secs / 3600),
    }
}

fn words(e: &Evidence, kind: RefusalKind, since: DateTime<Utc>) -> String {
    let what = kind_words(kind);
    let mut parts = Vec::new();
    match (e.every_secs, e.refusals_every_secs) {
        (Some(a), Some(b)) if e.cadence_matches => parts.push(format!(
            "its sessions ({what}) came every ~{} before the change and the refusals come every ~{}",
            span(a),
            span(b)
        )),
        (Some(a), Some(b)) => parts.push(format!(
            "its sessions ({what}) came every ~{} before the change, the refusals every ~{} (another rhythm)",
            span(a),
            span(b)
        )),
        (Some(a), None) => parts.push(format!(
            "its {} sessions ({what}) came every ~{} before the change",
            e.sessions_before,
            span(a)
        )),
        (None, _) => parts.push(format!("one session ({what}) before the change")),
    }
    let before = (since - e.last_seen).num_seconds();
    parts.push(if before >= 1 {
        format!("last {} before the change", span(before.unsigned_abs()))
    } else {
        "last seen at the change".to_string()
    });
    if e.connected_now {
        parts.push(if e.reconnects {
            "connected now, and it reconnects".to_string()
        } else {
            "connected now since before the change: lingering, not refused unless it reconnects".to_string()
        });
    }
    parts.join("; ")
}

fn ruled_out_why(r: &ClientRecord, kind: RefusalKind) -> String {
    let mut seen: Vec<&str> = r
        .usage
        .iter()
        .map(|u| u.tls_version.as_deref().unwrap_or(u.class.label()))
        .collect();
    seen.sort_unstable();
    seen.dedup();
    format!(
        "seen only with {}, which the change does not refuse (no session with {})",
        seen.join(", "),
        kind_words(kind)
    )
}

/// What puts a candidate first, in a few words (for a line of the dashboard; [`Candidate::why`] says all).
pub fn headline(c: &Candidate) -> String {
    let e = &c.evidence;
    match (e.cadence_matches, e.every_secs) {
        (true, Some(every)) => format!("same rhythm as the refusals: every ~{} before the change", span(every)),
        _ if e.connected_now && !e.reconnects => "connected since before the change: lingering".to_string(),
        (_, Some(every)) => format!("reconnected every ~{} before the change", span(every)),
        (_, None) => "one session before the change".to_string(),
    }
}

/// The attribution in a few words, as every output says it: "likely A", "maybe A (or B, C)", "no client seen
/// from this address the change would refuse".
pub fn phrase(candidates: &[Candidate], more: usize) -> String {
    let Some(top) = candidates.first() else {
        return "no client seen from this address that the change would refuse".to_string();
    };
    let sure = top.evidence.cadence_matches || candidates.len() == 1;
    let mut text = format!("{} {}", if sure { "likely" } else { "maybe" }, top.label);
    let rest: Vec<&str> = candidates[1..].iter().map(|c| c.label.as_str()).collect();
    if !rest.is_empty() || more > 0 {
        text.push_str(&format!(
            " (or {}{})",
            rest.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::ledger::{Entry, KeyFields, Source};
    use crate::logsource::{Refusal, RefusedAttempt};

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-02T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn session(ledger: &mut Ledger, secs: i64, app: &str, class: ConnClass) {
        ledger.apply(&Entry::Session {
            at: t0() + chrono::Duration::seconds(secs),
            key: ClientKey::new(
                KeyFields::default(),
                Some("u"),
                Some("db"),
                Some(app),
                Some("127.0.0.1"),
            ),
            class,
            tls_version: match class {
                ConnClass::Tls12 => Some("TLSv1.2".into()),
                ConnClass::Tls13 => Some("TLSv1.3".into()),
                _ => None,
            },
            cipher: None,
            source: Source::Log,
            address: Some("127.0.0.1".into()),
            replication: false,
            hba_line: None,
            pid: None,
        });
    }

    fn refused(ledger: &mut Ledger, secs: i64) {
        ledger.observe_refused(&RefusedAttempt {
            at: t0() + chrono::Duration::seconds(secs),
            pid: 1,
            client_addr: Some("127.0.0.1".into()),
            client_port: Some(5000),
            local_socket: false,
            refusal: Refusal::Handshake {
                reason: "unsupported protocol".into(),
            },
            hint: None,
            detail: None,
        });
    }

    /// The scene on paper: from one address a TLS 1.2 app connected since long before, a TLS 1.2 job every
    /// 5 s, a TLS 1.3 app and a plain one; the floor goes to 1.3 at +60 s and the address is refused every 5 s.
    fn scene(job_every: i64) -> (Ledger, RefusedView) {
        let mut ledger = Ledger::new(KeyFields::default());
        session(&mut ledger, -3600, "billing-legacy", ConnClass::Tls12);
        session(&mut ledger, -3000, "storefront", ConnClass::Tls13);
        session(&mut ledger, -2000, "metrics-agent", ConnClass::PlainTcp);
        let mut at = 0;
        while at < 60 {
            session(&mut ledger, at, "nightly-cron", ConnClass::Tls12);
            at += job_every;
        }
        for s in (62..120).step_by(5) {
            refused(&mut ledger, s);
        }
        let view = ledger.refused().remove(0);
        (ledger, view)
    }

    #[test]
    fn only_clients_the_change_refuses_are_candidates_and_the_rhythm_ranks_them() {
        let (ledger, view) = scene(5);
        let since = t0() + chrono::Duration::seconds(60);
        let a = attribute(&ledger, &view, RefusalKind::Handshake, since, since);
        let names: Vec<&str> = a.candidates.iter().map(|c| c.client.application.as_str()).collect();
        assert_eq!(names, ["nightly-cron", "billing-legacy"]);
        let top = &a.candidates[0].evidence;
        assert!(top.cadence_matches && top.reconnects, "{top:?}");
        assert_eq!((top.every_secs, top.refusals_every_secs), (Some(5), Some(5)));
        assert!(a.candidates[0].why.contains("every ~5 s"), "{}", a.candidates[0].why);
        let ruled: Vec<&str> = a.ruled_out.iter().map(|r| r.client.application.as_str()).collect();
        assert_eq!(ruled, ["metrics-agent", "storefront"]);
        assert!(phrase(&a.candidates, a.more).starts_with("likely nightly-cron"));
        // TLS required: only the plain-text client.
        let plain = attribute(&ledger, &view, RefusalKind::Plain, since, since);
        let names: Vec<&str> = plain.candidates.iter().map(|c| c.client.application.as_str()).collect();
        assert_eq!(names, ["metrics-agent"]);
    }

    /// Where the rhythm stops matching: within CADENCE_RATIO it matches, beyond it the job is only recent.
    #[test]
    fn the_rhythm_matches_within_the_ratio_and_not_beyond() {
        let since = t0() + chrono::Duration::seconds(60);
        let (ledger, view) = scene(7);
        let a = attribute(&ledger, &view, RefusalKind::Handshake, since, since);
        assert!(a.candidates[0].evidence.cadence_matches, "7 s against 5 s");
        let (ledger, view) = scene(8);
        let a = attribute(&ledger, &view, RefusalKind::Handshake, since, since);
        let top = &a.candidates[0];
        assert!(!top.evidence.cadence_matches, "8 s against 5 s: {top:?}");
        assert_eq!(
            top.client.application, "nightly-cron",
            "it still reconnects, the other lingers"
        );
        assert!(phrase(&a.candidates, a.more).starts_with("maybe nightly-cron"));
    }
}
