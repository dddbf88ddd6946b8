//! `pgtls check`'s report: the status decided from the snapshot, the alerts, the what-if and the after-change
//! standing ([`assess`]), and its text: one summary line first (as Nagios plugins print), perfdata, then the details.
//! Beside [`super::pooler_after`], whose lines it shares with `snapshot`.

use std::io::Write;

use serde::Serialize;

use super::safe;
pub use super::status::Status;
use crate::analysis::after::{self, AfterChange, Standing};
use crate::analysis::alerts::{Alert, Severity};
use crate::analysis::platform::{ChangeStep, change_steps, log_steps};
use crate::analysis::sources::SourceStatus;
use crate::analysis::whatif::{self, Verdict, WhatIf};
use crate::model::{ClassCounts, Platform, Snapshot};

#[derive(Debug, Serialize)]
pub struct CheckReport {
    pub status: Status,
    pub summary: String,
    pub counts: ClassCounts,
    pub alerts: Vec<Alert>,
    pub whatif: WhatIf,
    /// Whether the target is in force: `yes`, `no` or `cannot tell` (then the what-if decides the status).
    pub target_in_force: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_in_force_reason: Option<String>,
    /// Once the target is in force: who was refused, fell back to plain text, or lingers since it took effect. It
    /// replaces the what-if in the status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after_change: Option<AfterChange>,
    /// Each pooler's client side under the target (`--pgbouncer`): whether its own setting applies it, and whom
    /// its log (`--pgbouncer-log`) shows refused within the window.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pooler_after_change: Vec<after::PoolerAfter>,
    pub sources: Vec<String>,
    /// The connection log's state: refusals are seen only there.
    pub log: SourceStatus,
    /// Addresses refused since the target took effect (0 before it does); `null` when the log is off, since no
    /// other source sees a refusal: unknown, not zero.
    pub refused: Option<usize>,
    /// Why `refused` is unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused_unknown_reason: Option<String>,
    pub perfdata: String,
    /// Where the server runs, and the marks that told it.
    pub platform: Platform,
    /// How to make the target's change on that platform, and only that platform's way.
    pub change_steps: Vec<ChangeStep>,
    /// How to get the connection log pgtls needs there (`log_connections`, and the log to `--server-log`).
    pub log_steps: Vec<ChangeStep>,
}

/// Decide the status: unseen sessions make the answer UNKNOWN; refused clients or critical alerts
/// are CRITICAL; warnings and thin evidence are WARNING.
pub fn assess(
    snapshot: &Snapshot,
    alerts: Vec<Alert>,
    whatif: WhatIf,
    standing: Standing,
    sources: Vec<String>,
) -> CheckReport {
    let counts = snapshot.class_counts();
    let whatif_target = whatif.target;
    let worst = alerts.iter().map(|a| a.severity).min();
    let (target_in_force, target_in_force_reason, after_change) = match standing {
        Standing::InForce(report) => ("yes", None, Some(*report)),
        Standing::NotInForce { reason } => ("no", Some(reason), None),
        Standing::CannotTell { reason } => ("cannot tell", Some(reason), None),
    };
    let (status, summary) = if counts.unknown > 0 {
        (
            Status::Unknown,
            format!(
                "cannot see {} session(s): GRANT pg_read_all_stats TO {}",
                counts.unknown, snapshot.monitor.user
            ),
        )
    } else if let Some(pooled) = after_change.as_ref().and(pooled_refusals(&whatif)) {
        // In force on the server, but a pooler in front of it still lets these clients in: the target is not
        // met for them, and raising the pooler's setting would refuse them.
        (Status::Critical, pooled)
    } else if let Some(a) = &after_change {
        // The verdict after the change, unless an alert of its own is worse.
        let verdict = a.severity();
        let status = match [verdict, worst].into_iter().flatten().min() {
            Some(Severity::Critical) => Status::Critical,
            Some(Severity::Warning) => Status::Warning,
            _ => Status::Ok,
        };
        let summary = match (verdict, worst) {
            (v, Some(w)) if w < Severity::Info && v.is_none_or(|v| w < v) => first_title(&alerts, w),
            _ => after_summary(a),
        };
        (status, summary)
    } else if whatif.verdict == Verdict::NotSafe {
        let who: Vec<&str> = whatif.refused.iter().take(5).map(|r| r.label.as_str()).collect();
        // Behind a pooler the target is applied in more than one place: name each setting that refuses someone.
        let mut by: Vec<&str> = whatif.refused.iter().map(|r| r.refused_by.as_str()).collect();
        by.sort_unstable();
        by.dedup();
        let by = if by.iter().any(|b| b.starts_with("pooler ")) {
            by.join(", ")
        } else {
            whatif.target.label().to_string()
        };
        (
            Status::Critical,
            format!(
                "{} client(s) would be refused by {by}: {}{}",
                whatif.refused.len(),
                who.join(", "),
                if whatif.refused.len() > 5 { ", …" } else { "" }
            ),
        )
    } else if worst == Some(Severity::Critical) {
        (Status::Critical, first_title(&alerts, Severity::Critical))
    } else if worst == Some(Severity::Warning) {
        (Status::Warning, first_title(&alerts, Severity::Warning))
    } else if whatif.verdict == Verdict::NotEnoughEvidence {
        (Status::Warning, format!("not enough evidence: {}", whatif.reason))
    } else {
        (
            Status::Ok,
            format!(
                "no client would be refused by {}; {}",
                whatif.target.label(),
                whatif.evidence.sentence()
            ),
        )
    };
    let (refused, downgraded, lingering, scans) = after_change.as_ref().map_or((0, 0, 0, 0), |a| {
        (
            a.refused.len(),
            a.downgraded.len(),
            a.lingering.len(),
            a.scan_handshakes(),
        )
    });
    let perfdata = format!(
        "tls13={} tls12={} tls_older={} plain_tcp={} gss={} local={} unknown={} refused_clients={} sessions_seen={} \
         refused={refused} downgraded={downgraded} lingering={lingering} scans={scans} poll_time={:.1}ms",
        counts.tls13,
        counts.tls12,
        counts.tls_older,
        counts.plain_tcp,
        counts.gss,
        counts.local,
        counts.unknown,
        whatif.refused.len(),
        whatif.evidence.sessions,
        snapshot.poll_ms
    );
    CheckReport {
        status,
        summary,
        counts,
        alerts,
        whatif,
        target_in_force,
        target_in_force_reason,
        refused: Some(refused),
        after_change,
        pooler_after_change: Vec::new(),
        sources,
        log: SourceStatus::On,
        refused_unknown_reason: None,
        perfdata,
        platform: snapshot.platform.clone(),
        change_steps: change_steps(snapshot.platform.name, whatif_target),
        log_steps: log_steps(snapshot.platform.name),
    }
}

impl CheckReport {
    /// The connection log's state. Off, the number refused is unknown: `refused` is null with the reason, no
    /// `refused=` perfdata, the text says "unknown (no log)", and once the target is in force an answer that
    /// would be OK is UNKNOWN instead: pgtls cannot say nobody was refused when it could not see refusals. A
    /// WARNING or CRITICAL from what it did see stands (it is true whatever the log holds).
    pub fn with_log(&mut self, log: SourceStatus) {
        if let SourceStatus::Off { reason } = &log {
            self.refused = None;
            self.refused_unknown_reason = Some(format!("no log: {reason}"));
            self.perfdata = self
                .perfdata
                .split(' ')
                .filter(|p| !p.starts_with("refused="))
                .collect::<Vec<_>>()
                .join(" ");
            self.whatif.evidence.log_source = false;
            if self.after_change.is_some() && self.status != Status::Unknown {
                if self.status == Status::Ok {
                    self.status = Status::Unknown;
                }
                self.summary = format!("refusals UNKNOWN (no log: {reason}); {}", self.summary);
            }
        }
        self.log = log;
    }

    /// Clients a pooler's own setting refused (its log) are refused clients of the target: CRITICAL, named in the
    /// summary unless an unseen session already makes the answer UNKNOWN.
    pub fn with_pooler_after(&mut self, poolers: Vec<after::PoolerAfter>) {
        // Without a pooler log there is nothing to count: the perfdata stays as it was.
        if poolers.is_empty() {
            return;
        }
        let refused: usize = poolers.iter().map(|p| p.refused.len()).sum();
        self.perfdata.push_str(&format!(" pooler_refused={refused}"));
        if let Some(summary) = pooler_refused_summary(&poolers)
            && self.status != Status::Unknown
        {
            // The summary may already be this refusal's own alert title: say it once, with the names.
            let own_alert = self
                .alerts
                .iter()
                .any(|a| a.key == "after_pooler_refused" && self.summary.starts_with(&a.title));
            if self.status == Status::Critical && !own_alert {
                self.summary = format!("{summary}; {}", self.summary);
            } else {
                self.summary = summary;
            }
            self.status = Status::Critical;
        }
        self.pooler_after_change = poolers;
    }
}

/// "1 address(es) refused by pooler 127.0.0.1:6432's client_tls_protocols (from its log): (unknown address) x2".
fn pooler_refused_summary(poolers: &[after::PoolerAfter]) -> Option<String> {
    let parts: Vec<String> = poolers
        .iter()
        .filter(|p| !p.refused.is_empty())
        .map(|p| {
            let who: Vec<String> = p
                .refused
                .iter()
                .take(5)
                .map(|r| {
                    let name = match r.labels.as_slice() {
                        [] => r.address.clone(),
                        [one, ..] => format!("{} ({one})", r.address),
                    };
                    format!("{name} x{}", r.attempts)
                })
                .collect();
            format!(
                "{} address(es) refused by {} (from its log): {}{}",
                p.refused.len(),
                crate::analysis::pooler::refused_by_pooler(&p.pooler, p.target),
                who.join(", "),
                if p.refused.len() > 5 { ", …" } else { "" }
            )
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// Once the server applies the target, the clients a pooler's own client setting would still refuse:
/// "2 client(s) would be refused by pooler 127.0.0.1:6432's client_tls_protocols: ...".
fn pooled_refusals(whatif: &WhatIf) -> Option<String> {
    let pooled: Vec<&whatif::Refused> = whatif
        .refused
        .iter()
        .filter(|r| {
            r.client
                .pooler
                .as_ref()
                .is_some_and(|p| p.side == crate::analysis::ledger::Side::Client)
        })
        .collect();
    let first = pooled.first()?;
    let who: Vec<&str> = pooled.iter().take(5).map(|r| r.label.as_str()).collect();
    Some(format!(
        "{} pooler client(s) would be refused by {}: {}{}",
        pooled.len(),
        first.refused_by,
        who.join(", "),
        if pooled.len() > 5 { ", …" } else { "" }
    ))
}

/// "since TLSv1.3 took effect (2026-12-02 10:00:00 UTC, from the server log): 1 refused, 1 fell back to plain text
/// within 24 h; 2 lingering"
fn after_summary(a: &AfterChange) -> String {
    let replication = match a.replication() {
        0 => String::new(),
        n => format!(" ({n} replication)"),
    };
    let scans = match a.scan_handshakes() {
        0 => String::new(),
        n => format!("; scans: {n} (not clients)"),
    };
    format!(
        "{} ({}, {}): {} address(es) refused, {} client(s) fell back to plain text since {}; {} session(s) lingering{replication}{scans}",
        after::since_phrase(a.target),
        crate::format::timestamp(a.since),
        after::since_source_label(a.since_source),
        a.refused.len(),
        a.downgraded.len(),
        crate::format::timestamp(a.counted_from),
        a.lingering.len()
    )
}

fn first_title(alerts: &[Alert], severity: Severity) -> String {
    let matching: Vec<&Alert> = alerts.iter().filter(|a| a.severity == severity).collect();
    let mut text = matching.first().map(|a| a.title.clone()).unwrap_or_default();
    if matching.len() > 1 {
        text.push_str(&format!(" (+{} more)", matching.len() - 1));
    }
    text
}

/// The summary names clients, roles and alerts that outside text shaped: [`safe::nagios`] keeps it one line with
/// its perfdata after the only `|`. Detail lines quote names too: each through [`safe::terminal`], and the whole
/// text through [`safe::write_terminal`].
pub fn write_text(r: &CheckReport, out: &mut dyn Write) -> std::io::Result<()> {
    safe::write_terminal(out, |out| write_lines(r, out))
}

fn write_lines(r: &CheckReport, out: &mut dyn Write) -> std::io::Result<()> {
    use safe::terminal as t;
    writeln!(
        out,
        "PGTLS {} - {} | {}",
        r.status.word(),
        safe::nagios(&r.summary),
        r.perfdata
    )?;
    for a in &r.alerts {
        writeln!(out, "{} {}: {}", a.severity.symbol(), t(&a.title), t(&a.detail))?;
    }
    if let Some(a) = &r.after_change {
        write_after(a, out)?;
        if r.refused.is_none() {
            writeln!(out, "  refused: unknown (no log)")?;
        }
    } else if let Some(reason) = &r.target_in_force_reason
        && r.target_in_force == "cannot tell"
    {
        writeln!(out, "In force: cannot tell — {}; the what-if below stands", t(reason))?;
    }
    for p in &r.pooler_after_change {
        crate::output::pooler_after::write_lines(p, out)?;
    }
    writeln!(
        out,
        "What-if {}: {} — {}",
        r.whatif.target.label(),
        r.whatif.verdict.label(),
        t(&r.whatif.reason)
    )?;
    for refused in &r.whatif.refused {
        let seen_as: Vec<_> = refused.seen_as.iter().map(|s| t(s)).collect();
        writeln!(
            out,
            "  refused: {}{} — by {}; seen {}, last {}{}",
            t(&refused.label),
            if refused.replication { " [replication]" } else { "" },
            t(&refused.refused_by),
            seen_as.join(", "),
            crate::format::timestamp(refused.last_seen),
            match &refused.downgrade {
                whatif::Downgrade::Possible { rules } => format!(
                    "; with sslmode=prefer/allow it may silently reconnect WITHOUT TLS ({})",
                    rules.iter().map(|r| t(r)).collect::<Vec<_>>().join("; ")
                ),
                whatif::Downgrade::Unknown { reason } => format!("; downgrade risk unknown: {}", t(reason)),
                whatif::Downgrade::NotPossible => String::new(),
            }
        )?;
    }
    writeln!(out, "Evidence: {}", t(&r.whatif.evidence.sentence()))?;
    if let Some(reason) = &r.refused_unknown_reason {
        writeln!(out, "Refused: unknown ({})", t(reason))?;
    }
    for s in &r.sources {
        writeln!(out, "Source: {}", t(s))?;
    }
    write_platform(r, out)
}

/// The platform, the marks that told it, then the numbered steps: the change, and the connection log.
fn write_platform(r: &CheckReport, out: &mut dyn Write) -> std::io::Result<()> {
    use safe::terminal as t;
    writeln!(out, "Platform: {}", r.platform.name.label())?;
    for e in &r.platform.evidence {
        writeln!(out, "  evidence: {}", t(e))?;
    }
    writeln!(out, "Change steps ({}):", r.whatif.target.label())?;
    write_steps(&r.change_steps, out)?;
    writeln!(out, "Connection log steps:")?;
    write_steps(&r.log_steps, out)
}

fn write_steps(steps: &[ChangeStep], out: &mut dyn Write) -> std::io::Result<()> {
    for (i, step) in steps.iter().enumerate() {
        for (j, line) in step.lines().iter().enumerate() {
            if j == 0 {
                writeln!(out, "  {}. {}", i + 1, safe::terminal(line))?;
            } else {
                writeln!(out, "    {}", safe::terminal(line))?;
            }
        }
    }
    Ok(())
}

fn write_after(a: &AfterChange, out: &mut dyn Write) -> std::io::Result<()> {
    use safe::terminal as t;
    let repl = |on: bool| if on { " [replication]" } else { "" };
    writeln!(
        out,
        "{} {} ({}: {})",
        after::took_effect(a.target),
        crate::format::timestamp(a.since),
        after::since_source_label(a.since_source),
        t(&a.since_note)
    )?;
    if let Some(gap) = &a.log_connections_off {
        writeln!(out, "  ▲ {}", t(gap))?;
    }
    for f in &a.refused {
        writeln!(
            out,
            "  refused: {} — {} attempt(s), last {}, {}; {}{}",
            t(&f.address),
            f.attempts,
            crate::format::timestamp(f.last_seen),
            t(&f.reason),
            t(&f.attribution),
            repl(f.replication)
        )?;
        for (i, c) in f.candidates.iter().enumerate() {
            writeln!(out, "    {}. {} — {}", i + 1, t(&c.label), t(&c.why))?;
        }
        for r in &f.ruled_out {
            writeln!(out, "    ruled out: {} — {}", t(&r.label), t(&r.why))?;
        }
    }
    if a.refused.iter().any(|f| f.candidates.len() > 1) {
        writeln!(out, "  (candidates {})", after::RANKING_IN_TEXT)?;
    }
    for s in &a.scans {
        writeln!(
            out,
            "  scan: {} — {} failed handshake(s) in bursts, last {}: a scanner (pgtls probe, sslyze, testssl.sh), \
             not a client",
            t(&s.address),
            s.handshakes,
            crate::format::timestamp(s.last_seen)
        )?;
    }
    for d in &a.downgraded {
        writeln!(
            out,
            "  downgraded: {} — {} last {}, plain text since {}{}{}",
            t(&d.label),
            t(d.tls_before.tls_version.as_deref().unwrap_or("TLS")),
            crate::format::timestamp(d.tls_before.last_seen),
            crate::format::timestamp(d.plain_after.first_seen),
            if d.hba_lines.is_empty() {
                String::new()
            } else {
                format!(
                    " via pg_hba.conf {}",
                    d.hba_lines
                        .iter()
                        .map(|l| t(l).into_owned())
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            },
            repl(d.replication)
        )?;
    }
    for l in &a.lingering {
        writeln!(
            out,
            "  lingering: pid {} {} — {} since {}{}",
            l.pid,
            t(&l.label()),
            t(l.how()),
            crate::format::timestamp(l.backend_start),
            repl(l.replication)
        )?;
    }
    Ok(())
}

/// The class test for `check`: every unsafe character in every name keeps the summary one line with its
/// perfdata after the only `|`, and reaches no line of the text.
#[cfg(test)]
mod class_tests {
    use super::*;
    use crate::output::safe::{every_unsafe_char, first_unsafe};

    fn text_for(name: &str) -> Vec<u8> {
        let mut snapshot = crate::fixtures::snapshot();
        // Sessions nobody may see make the answer UNKNOWN; the refused clients' names are what is tested.
        snapshot
            .sessions
            .retain(|s| s.class != crate::model::ConnClass::Unknown);
        snapshot.monitor.user = name.to_string();
        let mut whatif = crate::fixtures::history().whatif[0].clone();
        for r in &mut whatif.refused {
            r.label = format!("{name} | fake=1");
            r.seen_as = vec![name.to_string()];
        }
        whatif.verdict = Verdict::NotSafe;
        whatif.reason = name.to_string();
        let alerts = vec![Alert {
            key: "k".into(),
            severity: Severity::Warning,
            title: name.to_string(),
            detail: name.to_string(),
            count: 1,
        }];
        // After the change too: every name the after-change lines quote.
        let mut after = crate::fixtures::history_after().after[0]
            .report()
            .cloned()
            .unwrap_or_else(|| panic!("the fixture's TLSv1.3 is in force"));
        after.since_note = name.to_string();
        for r in &mut after.refused {
            r.address = name.to_string();
            r.labels = vec![name.to_string(), name.to_string()];
            r.attribution = name.to_string();
            for c in &mut r.candidates {
                c.label = name.to_string();
                c.why = name.to_string();
            }
            r.ruled_out = r
                .candidates
                .iter()
                .map(|c| crate::analysis::attribution::RuledOut {
                    client: c.client.clone(),
                    label: name.to_string(),
                    why: name.to_string(),
                })
                .collect();
            r.reason = name.to_string();
        }
        for d in &mut after.downgraded {
            d.label = name.to_string();
            d.tls_before.tls_version = Some(name.to_string());
            d.hba_lines = vec![name.to_string()];
        }
        for l in &mut after.lingering {
            l.user = Some(name.to_string());
            l.application = Some(name.to_string());
            l.tls_version = Some(name.to_string());
        }
        after.log_connections_off = Some(name.to_string());
        after.scans = vec![crate::analysis::after::Scan {
            address: name.to_string(),
            handshakes: 3,
            last_seen: after.since,
        }];
        let standing = Standing::InForce(Box::new(after));
        let report = assess(&snapshot, alerts, whatif, standing, vec![name.to_string()]);
        let mut out = Vec::new();
        write_text(&report, &mut out).unwrap();
        out
    }

    #[test]
    fn every_unsafe_character_in_every_name() {
        let lines = |b: &[u8]| b.split(|b| *b == b'\n').count();
        let plain = lines(&text_for("ab"));
        for c in every_unsafe_char() {
            let out = text_for(&format!("a{c}b"));
            assert_eq!(first_unsafe(&out), None, "{c:?}");
            assert_eq!(lines(&out), plain, "{c:?}");
            let text = String::from_utf8(out).unwrap();
            let first = text.lines().next().unwrap();
            assert!(first.starts_with("PGTLS CRITICAL - "), "{first}");
            assert_eq!(first.matches('|').count(), 1, "{c:?}: {first}");
            assert!(
                first.split('|').nth(1).unwrap().trim_start().starts_with("tls13="),
                "{first}"
            );
        }
    }

    /// In force and clean as far as the polls see: OK with the log on; without it the refusals are unknown, so
    /// UNKNOWN, `refused` null with the reason, and no `refused=` perfdata.
    #[test]
    fn without_the_log_a_clean_after_change_is_unknown_not_ok() {
        let report = |log: SourceStatus| {
            let mut snapshot = crate::fixtures::snapshot();
            snapshot.sessions.retain(|s| s.class == crate::model::ConnClass::Tls13);
            let mut after = crate::fixtures::history_after().after[0].report().cloned().unwrap();
            after.refused.clear();
            after.downgraded.clear();
            after.lingering.clear();
            after.log_connections_off = None;
            let whatif = crate::fixtures::history().whatif[0].clone();
            let mut r = assess(
                &snapshot,
                Vec::new(),
                whatif,
                Standing::InForce(Box::new(after)),
                Vec::new(),
            );
            r.with_log(log);
            r
        };
        let on = report(SourceStatus::On);
        assert_eq!((on.status, on.refused), (Status::Ok, Some(0)));
        assert!(on.perfdata.contains(" refused=0 "), "{}", on.perfdata);
        let off = report(SourceStatus::Off {
            reason: "permission denied for function pg_current_logfile".into(),
        });
        assert_eq!((off.status, off.refused), (Status::Unknown, None));
        assert!(
            off.summary.starts_with("refusals UNKNOWN (no log: permission denied"),
            "{}",
            off.summary
        );
        assert!(
            !off.perfdata.split(' ').any(|p| p.starts_with("refused=")),
            "{}",
            off.perfdata
        );
        let json = serde_json::to_value(&off).unwrap();
        assert!(json["refused"].is_null());
        assert_eq!(json["log"]["state"], "off");
        let mut out = Vec::new();
        write_text(&off, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("  refused: unknown (no log)"), "{text}");
        assert!(!text.contains("log source on"), "{text}");
    }
}
