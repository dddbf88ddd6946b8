//! The report as Markdown for a ticket: headings, tables and text sparklines. Every outside string goes through
//! [`safe::markdown`] (one line, ASCII punctuation backslash-escaped), so a name can neither break a table nor make
//! a heading, a link, an image, code, HTML or a mention.

use std::fmt::Write;

use super::{Certificate, Report, addresses, seen_as, text_sparkline, when};
use crate::analysis::ledger::{DAY, Lane, Trend};
use crate::analysis::platform::steps::ChangeStep;
use crate::output::safe;

pub fn render(report: &Report) -> String {
    let m = safe::markdown;
    let mut out = String::new();
    let server = format!("{}:{}", report.server_host, report.server_port);
    let _ = writeln!(out, "# TLS report for {}\n", m(&server));
    let _ = writeln!(
        out,
        "Written by pgtls {} at {} (the server's clock).\n",
        env!("CARGO_PKG_VERSION"),
        when(report.taken_at)
    );

    let _ = writeln!(out, "## Server\n\n| | |\n|---|---|");
    let _ = writeln!(out, "| server | {} |", m(&server));
    let _ = writeln!(out, "| version | {} |", m(&report.server_version));
    let _ = writeln!(out, "| platform | {} |", m(report.platform.name.label()));
    let _ = writeln!(
        out,
        "| platform evidence | {} |",
        m(&report.platform.evidence.join("; "))
    );
    let _ = writeln!(
        out,
        "| monitor role | {} ({}) |",
        m(&report.monitor_user),
        m(&report.privileges)
    );
    let _ = writeln!(out, "\n### TLS settings\n\n| setting | value |\n|---|---|");
    for (name, value) in &report.settings {
        let _ = writeln!(out, "| {} | {} |", m(name), m(value));
    }
    let _ = writeln!(out, "\n### Certificate\n");
    match &report.certificate {
        Certificate::Missing(why) => {
            let _ = writeln!(out, "Not read: {}", m(why));
        }
        Certificate::Probed(probe) => {
            let _ = writeln!(out, "| | |\n|---|---|");
            if let Some(leaf) = probe.chain.first() {
                let _ = writeln!(out, "| subject | {} |", m(&leaf.subject));
                let _ = writeln!(out, "| issuer | {} |", m(&leaf.issuer));
                let _ = writeln!(out, "| names | {} |", m(&leaf.sans.join(", ")));
                let _ = writeln!(
                    out,
                    "| valid | {} to {} ({} days left) |",
                    m(&when(leaf.not_before)),
                    m(&when(leaf.not_after)),
                    leaf.days_left
                );
                let _ = writeln!(out, "| SHA\\-256 | {} |", m(&leaf.sha256));
            }
            let versions: Vec<String> = probe
                .versions
                .iter()
                .map(|v| {
                    format!(
                        "{}: {}",
                        v.version.name(),
                        if v.accepted { "accepted" } else { "refused" }
                    )
                })
                .collect();
            let _ = writeln!(out, "| versions | {} |", m(&versions.join(", ")));
            for f in &probe.findings {
                let _ = writeln!(out, "\n- {}", m(&f.message));
            }
        }
    }

    let _ = writeln!(
        out,
        "\n## Verdicts\n\n| target | in force | verdict | evidence |\n|---|---|---|---|"
    );
    for v in &report.verdicts {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            m(v.target.label()),
            m(v.in_force_label()),
            m(&v.headline()),
            m(&v.whatif.evidence.sentence())
        );
    }

    let _ = writeln!(
        out,
        "\n## Holdouts ({})\n\nEvery client either target would refuse, out of {} clients and {} sessions seen.\n",
        report.holdouts.len(),
        report.clients_seen,
        report.sessions_seen
    );
    if report.holdouts.is_empty() {
        let _ = writeln!(out, "None.");
    } else {
        let _ = writeln!(
            out,
            "| application | user | database | worst | seen as | sessions | first seen | last seen | addresses | sources |\n\
             |---|---|---|---|---|---:|---|---|---|---|"
        );
        for h in &report.holdouts {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                m(if h.key.application.is_empty() {
                    "(no application_name)"
                } else {
                    &h.key.application
                }),
                m(&h.key.user),
                m(&h.key.database),
                m(h.worst_class().map_or("", |c| c.label())),
                m(&seen_as(h)),
                h.sessions,
                m(&when(h.first_seen)),
                m(&when(h.last_seen)),
                m(&addresses(h)),
                m(h.sources_label())
            );
        }
    }

    trend_section(&mut out, &report.trend);
    steps_section(&mut out, report);

    let _ = writeln!(out, "\n## After the change\n");
    let mut any = false;
    for a in report.after_changes() {
        any = true;
        let _ = writeln!(
            out,
            "### {} since {}\n\n{}\n",
            m(a.target.label()),
            m(&when(a.since)),
            m(&a.since_note)
        );
        let _ = writeln!(
            out,
            "| refused address | likely clients | attempts | last | reason |\n|---|---|---:|---|---|"
        );
        for c in &a.refused {
            let _ = writeln!(
                out,
                "| {} | {}{} | {} | {} | {} |",
                m(&c.address),
                m(&c.labels.join("; ")),
                if c.ambiguous { " \\(ambiguous\\)" } else { "" },
                c.attempts,
                m(&when(c.last_seen)),
                m(&c.reason)
            );
        }
        for d in &a.downgraded {
            let _ = writeln!(out, "\n- fell back to plain text: {}", m(&d.label));
        }
        for l in &a.lingering {
            let _ = writeln!(
                out,
                "\n- still connected the old way: {} \\({}\\)",
                m(&l.label()),
                m(l.how())
            );
        }
    }
    if !any {
        let _ = writeln!(
            out,
            "Neither target is in force yet: this section fills in once one is."
        );
    }
    let _ = writeln!(out, "\n## Sources\n");
    for s in &report.sources {
        let _ = writeln!(out, "- {}", m(s));
    }
    out
}

/// The steps: commands in fenced blocks (a fence longer than any run of backticks in them, so none can close it),
/// restart and undo as text.
fn steps_section(out: &mut String, r: &Report) {
    let m = safe::markdown;
    let _ = writeln!(
        out,
        "\n## How to raise it here \\({}\\)\n\nPlaceholders in \\<angle brackets\\> are what pgtls cannot know.",
        m(r.platform.name.label())
    );
    let list = |out: &mut String, steps: &[ChangeStep]| {
        for (i, step) in steps.iter().enumerate() {
            let _ = writeln!(out, "\n{}\\. {}", i + 1, m(&step.title));
            if !step.commands.is_empty() {
                let fence = fence_for(&step.commands);
                let _ = writeln!(out, "\n{fence}sh");
                for c in &step.commands {
                    // A command is one line of code: control characters shown escaped, as on the terminal.
                    let _ = writeln!(out, "{}", safe::terminal(c));
                }
                let _ = writeln!(out, "{fence}");
            }
            let _ = writeln!(out, "\n{}; undo: {}", m(step.restart.label()), m(&step.undo));
            if let Some(note) = &step.note {
                let _ = writeln!(out, "\n{}", m(note));
            }
        }
    };
    for (target, steps) in &r.change_steps {
        let _ = writeln!(out, "\n### {}", m(target.label()));
        list(out, steps);
    }
    let _ = writeln!(out, "\n### The connection log pgtls reads");
    list(out, &r.log_steps);
}

/// Backticks enough to fence `lines`: one more than the longest run in them, at least three.
fn fence_for(lines: &[String]) -> String {
    let longest = lines
        .iter()
        .flat_map(|l| l.split(|c| c != '`'))
        .map(str::len)
        .max()
        .unwrap_or(0);
    "`".repeat((longest + 1).max(3))
}

/// Distinct clients per hour as text sparklines: the last 24 hours hour by hour, the week by 4-hour bars (each its
/// busiest hour), one row per lane, with the totals of sessions.
fn trend_section(out: &mut String, trend: &Trend) {
    let _ = writeln!(
        out,
        "\n## Trend: the last 7 days\n\nDistinct clients per clock hour \\(UTC\\); refused: distinct addresses. \
         24 h: one bar per hour; 7 d: one bar per 4 hours \\(its busiest hour\\).\n"
    );
    let _ = writeln!(
        out,
        "| | last 24 h | last 7 d | sessions 24 h | sessions 7 d |\n|---|---|---|---:|---:|"
    );
    let week = trend.hours.len();
    for lane in [Lane::Tls13, Lane::Tls12, Lane::Older, Lane::Plain, Lane::Refused] {
        let day = text_sparkline(&trend.bars(DAY, lane, true, DAY).1);
        let seven = text_sparkline(&trend.bars(week, lane, true, 42).1);
        let _ = writeln!(
            out,
            "| {} | `{day}` | `{seven}` | {} | {} |",
            safe::markdown(lane.label()),
            trend.total(DAY).get(lane),
            trend.total(week).get(lane)
        );
    }
}
