//! `pgtls report`: what a change ticket needs, gathered once ([`Report::build`], no I/O) and written as a
//! self-contained HTML page ([`html`]) or Markdown ([`markdown`]), chosen by the output file's extension.
//!
//! Everything in it that came from outside (role, database and application names, addresses, certificate names,
//! settings' values, a server's reasons) passes through the format's own function of [`crate::output::safe`] where
//! it is written, in the renderer; the model keeps the exact text.

pub mod html;
pub mod markdown;

use chrono::{DateTime, Utc};

use crate::analysis::after::{AfterChange, Standing};
use crate::analysis::ledger::{ClientRecord, Ledger, Trend, WEEK};
use crate::analysis::platform::steps::{ChangeStep, change_steps, log_steps};
use crate::analysis::whatif::{Change, WhatIf};
use crate::model::{Platform, Setting, Snapshot};
use crate::probe::ProbeReport;

/// The two formats, by the output file's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Html,
    Markdown,
}

impl ReportFormat {
    /// `.html`/`.htm` or `.md`/`.markdown` (any case); anything else is `None` (a usage error for the caller).
    pub fn from_path(path: &std::path::Path) -> Option<ReportFormat> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "html" | "htm" => Some(ReportFormat::Html),
            "md" | "markdown" => Some(ReportFormat::Markdown),
            _ => None,
        }
    }
}

/// The server's certificate as the probe read it, or why there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Certificate {
    Probed(Box<ProbeReport>),
    /// Not probed (a Unix socket, `--no-probe`) or the probe failed: the reason.
    Missing(String),
}

/// One target's verdict: in force or not, and if not, the what-if.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetVerdict {
    pub target: Change,
    pub whatif: WhatIf,
    pub standing: Standing,
}

impl TargetVerdict {
    /// "in force", "not in force", "cannot tell whether in force".
    pub fn in_force_label(&self) -> &'static str {
        match self.standing {
            Standing::InForce(_) => "in force",
            Standing::NotInForce { .. } => "not in force",
            Standing::CannotTell { .. } => "cannot tell whether in force",
        }
    }

    /// The one-word verdict a reader looks for first.
    pub fn headline(&self) -> String {
        match &self.standing {
            Standing::InForce(after) => {
                let refused = after.refused.len() + after.downgraded.len();
                if refused == 0 && after.lingering.is_empty() {
                    "in force: nobody refused".to_string()
                } else {
                    format!(
                        "in force: {} refused address(es), {} fell back to plain text, {} lingering",
                        after.refused.len(),
                        after.downgraded.len(),
                        after.lingering.len()
                    )
                }
            }
            _ => format!("{}: {}", self.whatif.verdict.label(), self.whatif.reason),
        }
    }
}

/// Everything the report shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The server's clock at the poll: every age in the report is measured from it.
    pub taken_at: DateTime<Utc>,
    pub server_host: String,
    pub server_port: u16,
    pub server_version: String,
    /// Which platform this is, with the marks that told it.
    pub platform: Platform,
    /// How to raise each target here (only this platform's steps), and how to get the connection log pgtls reads.
    pub change_steps: Vec<(Change, Vec<ChangeStep>)>,
    pub log_steps: Vec<ChangeStep>,
    /// The monitor's role and its privileges, which bound what the report can see.
    pub monitor_user: String,
    pub privileges: String,
    /// The TLS settings, by name, as `SHOW` gives them ("(hidden)" without pg_read_all_settings).
    pub settings: Vec<(String, String)>,
    pub certificate: Certificate,
    pub verdicts: Vec<TargetVerdict>,
    /// Every client either target would refuse (below TLS 1.3, or no TLS over TCP), worst first.
    pub holdouts: Vec<ClientRecord>,
    /// Clients seen in all, and sessions.
    pub clients_seen: usize,
    pub sessions_seen: u64,
    pub observed_from: Option<DateTime<Utc>>,
    pub observed_to: Option<DateTime<Utc>>,
    /// The week ending at the poll, hour by hour.
    pub trend: Trend,
    /// Which sources fed the ledger, and what each misses.
    pub sources: Vec<String>,
    /// The ledger file read, if any.
    pub ledger_file: Option<String>,
}

/// What [`Report::build`] reads.
pub struct Inputs<'a> {
    pub snapshot: &'a Snapshot,
    pub ledger: &'a Ledger,
    pub hba: &'a crate::model::HbaRules,
    pub certificate: Certificate,
    pub min_evidence: chrono::Duration,
    pub since: Option<DateTime<Utc>>,
    pub sources: Vec<String>,
    pub ledger_file: Option<String>,
}

fn setting_text(setting: &Setting) -> String {
    match setting {
        Setting::Set(v) if v.is_empty() => "(empty)".to_string(),
        Setting::Set(v) => v.clone(),
        Setting::Hidden => "(hidden: needs pg_read_all_settings)".to_string(),
        Setting::Absent => "(not on this version)".to_string(),
    }
}

impl Report {
    pub fn build(inputs: Inputs<'_>) -> Report {
        let Inputs {
            snapshot,
            ledger,
            hba,
            certificate,
            min_evidence,
            since,
            sources,
            ledger_file,
        } = inputs;
        let verdicts = [Change::MinTls13, Change::TlsRequired]
            .into_iter()
            .map(|target| {
                let whatif = crate::analysis::whatif::evaluate(ledger, target, hba, min_evidence);
                let standing = crate::analysis::after::evaluate(
                    target,
                    &crate::analysis::after::Inputs {
                        ledger,
                        snapshot,
                        hba,
                        user_since: since,
                        // A ticket reports everything since the change, as the dashboard does.
                        window_from: None,
                    },
                );
                TargetVerdict {
                    target,
                    whatif,
                    standing,
                }
            })
            .collect();
        let mut holdouts: Vec<ClientRecord> = ledger
            .records()
            .filter(|r| {
                r.classes
                    .keys()
                    .any(|c| Change::MinTls13.refuses(*c) || Change::TlsRequired.refuses(*c))
            })
            .cloned()
            .collect();
        holdouts.sort_by(|a, b| {
            let rank = |r: &ClientRecord| r.worst_class().map_or(u8::MAX, |c| c.exposure_rank());
            rank(a)
                .cmp(&rank(b))
                .then(b.last_seen.cmp(&a.last_seen))
                .then(a.key.cmp(&b.key))
        });
        let p = &snapshot.privileges;
        let privileges = [
            (p.superuser, "superuser"),
            (p.read_all_stats, "pg_read_all_stats"),
            (p.read_all_settings, "pg_read_all_settings"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, name)| *name)
        .collect::<Vec<_>>()
        .join(", ");
        Report {
            taken_at: snapshot.taken_at,
            server_host: snapshot.server.host.clone(),
            server_port: snapshot.server.port,
            server_version: snapshot.server.version.clone(),
            platform: snapshot.platform.clone(),
            change_steps: [Change::MinTls13, Change::TlsRequired]
                .into_iter()
                .map(|target| (target, change_steps(snapshot.platform.name, target)))
                .collect(),
            log_steps: log_steps(snapshot.platform.name),
            monitor_user: snapshot.monitor.user.clone(),
            privileges: if privileges.is_empty() {
                "none of superuser, pg_read_all_stats, pg_read_all_settings".to_string()
            } else {
                privileges
            },
            settings: snapshot
                .settings
                .iter()
                .map(|(name, setting)| (name.clone(), setting_text(setting)))
                .collect(),
            certificate,
            verdicts,
            holdouts,
            clients_seen: ledger.records().count(),
            sessions_seen: ledger.total_sessions(),
            observed_from: ledger.observed_from,
            observed_to: ledger.observed_to,
            trend: ledger.trend(snapshot.taken_at, WEEK),
            sources,
            ledger_file,
        }
    }

    /// The after-change reports of the targets in force.
    pub fn after_changes(&self) -> impl Iterator<Item = &AfterChange> {
        self.verdicts.iter().filter_map(|v| v.standing.report())
    }
}

/// An RFC 3339 time in UTC to the second, as every time in the report is written.
pub fn when(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// "TLSv1.2 ×12, no TLS (TCP) ×3": how a client connected, by sessions.
pub fn seen_as(r: &ClientRecord) -> String {
    let mut parts: Vec<(u64, String)> = r
        .classes
        .iter()
        .map(|(class, n)| (*n, format!("{} ×{n}", class.label())))
        .collect();
    parts.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    parts.into_iter().map(|(_, s)| s).collect::<Vec<_>>().join(", ")
}

/// The addresses a client came from, and how many more were only counted.
pub fn addresses(r: &ClientRecord) -> String {
    let mut list: Vec<&str> = r.addresses.iter().map(|a| &**a).collect();
    if list.is_empty() && !r.key.address.is_empty() {
        list.push(&r.key.address);
    }
    let mut text = list.join(", ");
    if r.addresses_not_kept > 0 {
        text.push_str(&format!(
            " (+{} session(s) from addresses not kept)",
            r.addresses_not_kept
        ));
    }
    if text.is_empty() {
        "(local socket or not known)".to_string()
    } else {
        text
    }
}

/// Sparkline characters, lowest to highest, for the Markdown trend.
const TICKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// A text sparkline of `values`, scaled to their maximum; a zero draws as a space so a gap reads as one.
pub fn text_sparkline(values: &[u64]) -> String {
    let max = values.iter().copied().max().unwrap_or(0);
    values
        .iter()
        .map(|v| {
            if *v == 0 || max == 0 {
                ' '
            } else {
                let i = ((*v * 8).div_ceil(max) as usize).clamp(1, 8) - 1;
                TICKS[i]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    const HOSTILE_APP: &str = "<script>alert(1)</script>|`x`\n# pwned <img src=x> \u{202e}evil\u{200b}";
    const HOSTILE_ROLE: &str = "role|with<b>pipes</b>\r\n| fake | row |";

    /// The hour after TLSv1.3 took effect (fixtures::ledger_after), with a client whose names are hostile.
    fn report() -> Report {
        let (mut ledger, mut snap) = fixtures::ledger_after();
        let mut hostile = fixtures::session(4400, crate::model::ConnClass::Tls12);
        hostile.user = Some(HOSTILE_ROLE.into());
        hostile.application_name = Some(HOSTILE_APP.into());
        hostile.client_addr = Some("10.9.9.9".into());
        snap.sessions.push(hostile);
        snap.taken_at += chrono::Duration::seconds(2);
        ledger.observe_snapshot(&snap, true);
        let hba = Ok(Vec::new());
        Report::build(Inputs {
            snapshot: &snap,
            ledger: &ledger,
            hba: &hba,
            certificate: Certificate::Probed(Box::new(fixtures::probe_report())),
            min_evidence: chrono::Duration::zero(),
            since: None,
            sources: vec!["poll: sees every session <b>connected</b>".into()],
            ledger_file: None,
        })
    }

    #[test]
    fn html_carries_every_section_and_hostile_names_only_as_text() {
        let r = report();
        assert!(r.holdouts.iter().any(|h| h.key.application == HOSTILE_APP));
        let page = html::render(&r);
        for needle in [
            "id=\"verdict-min-tls13\"",
            "id=\"verdict-tls-required\"",
            "id=\"holdouts\"",
            "<svg id=\"trend-chart\"",
            "id=\"steps\"",
            "id=\"after\"",
            "10.0.1.141",
            "&lt;script&gt;alert(1)&lt;/script&gt;",
            "\\u{202e}evil\\u{200b}",
        ] {
            assert!(page.contains(needle), "{needle}");
        }
        assert!(!page.contains("<script") && !page.contains("<img") && !page.contains("<b>"));
        assert!(!page.contains('\u{202e}') && !page.contains('\u{200b}') && !page.contains('\r'));
        assert!(
            !page.contains("http://") && !page.contains("https://") && !page.contains("url("),
            "no URL to fetch"
        );
        // The after-change results, once in force: the refused address and when the change took effect.
        let after = &page[page.find("id=\"after\"").unwrap()..];
        assert!(after.contains("ssl_min_protocol_version = TLSv1.3 since"), "{after}");
    }

    #[test]
    fn markdown_tables_keep_their_columns_whatever_the_names() {
        let r = report();
        let md = markdown::render(&r);
        assert!(!md.contains('\u{202e}') && !md.contains('\r'));
        // Outside the steps' code fences (our own commands, placeholders in <angle brackets>), every `<` is escaped.
        let mut fenced = false;
        for line in md.lines() {
            if line.starts_with("```") {
                fenced = !fenced;
                continue;
            }
            if !fenced {
                for (i, _) in line.match_indices('<') {
                    assert!(i > 0 && &line[i - 1..i] == "\\", "raw < in {line}");
                }
            }
        }
        // A cell separator is a `|` not escaped by a backslash: every row of a table has as many as its header.
        let separators = |line: &str| {
            let mut n = 0;
            let mut escaped = false;
            for c in line.chars() {
                match c {
                    '\\' if !escaped => escaped = true,
                    '|' if !escaped => n += 1,
                    _ => escaped = false,
                }
                if c != '\\' {
                    escaped = false;
                }
            }
            n
        };
        let mut header = None;
        let mut hostile_rows = 0;
        for line in md.lines() {
            if !line.starts_with('|') {
                header = None;
                continue;
            }
            let n = separators(line);
            match header {
                None => header = Some(n),
                Some(h) => assert_eq!(n, h, "{line}"),
            }
            hostile_rows += usize::from(line.contains("script"));
        }
        assert!(hostile_rows >= 1, "the hostile client is listed:\n{md}");
        // Headings are ours only.
        let headings: Vec<&str> = md.lines().filter(|l| l.starts_with('#')).collect();
        assert!(headings.iter().all(|h| !h.contains("pwned")), "{headings:?}");
        assert!(md.contains("## Trend: the last 7 days") && md.contains("## After the change"));
        assert!(
            md.contains("### ssl\\_min\\_protocol\\_version \\= TLSv1\\.3 since"),
            "{md}"
        );
    }

    #[test]
    fn the_format_follows_the_extension() {
        let f = |p: &str| ReportFormat::from_path(std::path::Path::new(p));
        assert_eq!(f("ticket.html"), Some(ReportFormat::Html));
        assert_eq!(f("T.HTM"), Some(ReportFormat::Html));
        assert_eq!(f("ticket.md"), Some(ReportFormat::Markdown));
        assert_eq!(f("ticket.markdown"), Some(ReportFormat::Markdown));
        assert_eq!(f("ticket.pdf"), None);
        assert_eq!(f("ticket"), None);
    }

    #[test]
    fn sparklines_scale_to_their_maximum_and_leave_gaps() {
        assert_eq!(text_sparkline(&[0, 1, 2, 4, 8]), " ▁▂▄█");
        assert_eq!(text_sparkline(&[0, 0]), "  ");
        assert_eq!(text_sparkline(&[]), "");
    }
}
