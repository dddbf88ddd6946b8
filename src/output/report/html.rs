//! The report as one self-contained HTML page: inline CSS, an inline SVG chart, no script, no font, no image and
//! no URL to fetch, so it opens the same from a ticket's attachment on a machine with no network. A
//! Content-Security-Policy that allows nothing but the inline style makes that hold even if a name slipped through
//! unescaped; every outside string goes through [`safe::html`] where it is written.

use std::fmt::Write;

use super::{Certificate, Report, TargetVerdict, addresses, seen_as, when};
use crate::analysis::after::{AfterChange, Standing};
use crate::analysis::ledger::{Lane, Trend};
use crate::analysis::platform::steps::ChangeStep;
use crate::output::safe;

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.25em;border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;margin:.5em 0;width:100%}th,td{border:1px solid #ddd;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.n{text-align:right}.meta{color:#666}.ok{color:#17692b;font-weight:600}
.bad{color:#a4161a;font-weight:600}.warn{color:#8a5a00;font-weight:600}
.key{display:inline-block;width:.9em;height:.9em;margin:0 .3em 0 1em;vertical-align:middle}
code{background:#f3f3f3;padding:0 .2em}pre{background:#f3f3f3;padding:.5em;overflow-x:auto}svg{display:block;margin:.5em 0}";

/// The colour of each lane in the chart and its legend.
fn colour(lane: Lane) -> &'static str {
    match lane {
        Lane::Tls13 => "#2e8540",
        Lane::Tls12 => "#e0a100",
        Lane::Older => "#d9480f",
        Lane::Plain => "#a4161a",
        Lane::Refused => "#6f42c1",
        Lane::BelowTls13 => "#e0a100",
    }
}

pub fn render(report: &Report) -> String {
    let e = safe::html;
    let mut out = String::new();
    let server = format!("{}:{}", report.server_host, report.server_port);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n\
         <title>pgtls report: {}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        e(&server)
    );
    let _ = writeln!(
        out,
        "<h1>TLS report for {}</h1>\n<p class=\"meta\">Written by pgtls {} at {} (the server's clock).</p>",
        e(&server),
        env!("CARGO_PKG_VERSION"),
        when(report.taken_at)
    );
    server_section(&mut out, report);
    verdicts_section(&mut out, report);
    holdouts_section(&mut out, report);
    trend_section(&mut out, &report.trend);
    steps_section(&mut out, report);
    after_section(&mut out, report);
    let _ = writeln!(out, "<h2 id=\"sources\">Sources</h2>\n<ul>");
    for source in &report.sources {
        let _ = writeln!(out, "<li>{}</li>", e(source));
    }
    let _ = writeln!(out, "</ul>\n</body>\n</html>");
    out
}

fn server_section(out: &mut String, r: &Report) {
    let e = safe::html;
    let _ = writeln!(out, "<h2 id=\"server\">Server</h2>\n<table>");
    let row = |out: &mut String, k: &str, v: &str| {
        let _ = writeln!(out, "<tr><th>{k}</th><td>{}</td></tr>", e(v));
    };
    row(out, "server", &format!("{}:{}", r.server_host, r.server_port));
    row(out, "version", &r.server_version);
    row(out, "platform", r.platform.name.label());
    row(out, "platform evidence", &r.platform.evidence.join("; "));
    row(out, "monitor role", &format!("{} ({})", r.monitor_user, r.privileges));
    let _ = writeln!(out, "</table>\n<h3>TLS settings</h3>\n<table id=\"settings\">");
    for (name, value) in &r.settings {
        let _ = writeln!(out, "<tr><th><code>{}</code></th><td>{}</td></tr>", e(name), e(value));
    }
    let _ = writeln!(out, "</table>\n<h3>Certificate</h3>");
    match &r.certificate {
        Certificate::Missing(why) => {
            let _ = writeln!(out, "<p class=\"meta\">Not read: {}</p>", e(why));
        }
        Certificate::Probed(probe) => {
            let _ = writeln!(out, "<table id=\"certificate\">");
            match probe.chain.first() {
                Some(leaf) => {
                    row(out, "subject", &leaf.subject);
                    row(out, "issuer", &leaf.issuer);
                    row(out, "names", &leaf.sans.join(", "));
                    row(
                        out,
                        "key",
                        &format!("{} {} bits, {}", leaf.key_type, leaf.key_bits, leaf.signature_algorithm),
                    );
                    row(
                        out,
                        "valid",
                        &format!(
                            "{} to {} ({} days left)",
                            when(leaf.not_before),
                            when(leaf.not_after),
                            leaf.days_left
                        ),
                    );
                    row(out, "SHA-256", &leaf.sha256);
                }
                None => row(out, "chain", "the server sent none (TLS off?)"),
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
            row(out, "versions", &versions.join(", "));
            let _ = writeln!(out, "</table>");
            if !probe.findings.is_empty() {
                let _ = writeln!(out, "<ul>");
                for f in &probe.findings {
                    let _ = writeln!(out, "<li>{}</li>", e(&f.message));
                }
                let _ = writeln!(out, "</ul>");
            }
        }
    }
}

fn verdict_class(v: &TargetVerdict) -> &'static str {
    use crate::analysis::whatif::Verdict;
    match &v.standing {
        Standing::InForce(a) if a.refused.is_empty() && a.downgraded.is_empty() => "ok",
        Standing::InForce(_) => "bad",
        _ => match v.whatif.verdict {
            Verdict::Safe => "ok",
            Verdict::NotSafe => "bad",
            Verdict::NotEnoughEvidence => "warn",
        },
    }
}

fn verdicts_section(out: &mut String, r: &Report) {
    let e = safe::html;
    let _ = writeln!(
        out,
        "<h2 id=\"verdicts\">Verdicts</h2>\n<table>\n<tr><th>target</th><th>in force</th><th>verdict</th><th>evidence</th></tr>"
    );
    for v in &r.verdicts {
        let id = match v.target {
            crate::analysis::whatif::Change::MinTls13 => "verdict-min-tls13",
            crate::analysis::whatif::Change::TlsRequired => "verdict-tls-required",
        };
        let _ = writeln!(
            out,
            "<tr id=\"{id}\"><th>{}</th><td>{}</td><td class=\"{}\">{}</td><td>{}</td></tr>",
            e(v.target.label()),
            v.in_force_label(),
            verdict_class(v),
            e(&v.headline()),
            e(&v.whatif.evidence.sentence())
        );
    }
    let _ = writeln!(out, "</table>");
    for v in &r.verdicts {
        if v.whatif.refused.is_empty() || v.standing.report().is_some() {
            continue;
        }
        let _ = writeln!(
            out,
            "<p>Would be refused by <code>{}</code>: {}</p>",
            e(v.target.label()),
            e(&v.whatif
                .refused
                .iter()
                .map(|c| c.label.as_str())
                .collect::<Vec<_>>()
                .join("; "))
        );
    }
}

fn holdouts_section(out: &mut String, r: &Report) {
    let e = safe::html;
    let _ = writeln!(
        out,
        "<h2 id=\"holdouts-heading\">Holdouts ({})</h2>\n<p class=\"meta\">Every client either target would refuse, \
         out of {} clients and {} sessions seen{}.</p>",
        r.holdouts.len(),
        r.clients_seen,
        r.sessions_seen,
        match (r.observed_from, r.observed_to) {
            (Some(from), Some(to)) => format!(" from {} to {}", when(from), when(to)),
            _ => String::new(),
        }
    );
    if r.holdouts.is_empty() {
        let _ = writeln!(out, "<p class=\"ok\">None.</p>");
        return;
    }
    let _ = writeln!(
        out,
        "<table id=\"holdouts\">\n<tr><th>application</th><th>user</th><th>database</th><th>worst</th><th>seen as</th>\
         <th>sessions</th><th>first seen</th><th>last seen</th><th>addresses</th><th>sources</th></tr>"
    );
    for h in &r.holdouts {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td></tr>",
            e(if h.key.application.is_empty() {
                "(no application_name)"
            } else {
                &h.key.application
            }),
            e(&h.key.user),
            e(&h.key.database),
            h.worst_class().map_or("", |c| c.label()),
            e(&seen_as(h)),
            h.sessions,
            when(h.first_seen),
            when(h.last_seen),
            e(&addresses(h)),
            h.sources_label()
        );
    }
    let _ = writeln!(out, "</table>");
}

/// Bar width and chart height in pixels; 168 hours make 840 px.
const BAR: u32 = 5;
const CHART_H: u32 = 160;
const AXIS_H: u32 = 20;
const LEFT: u32 = 36;

fn trend_section(out: &mut String, trend: &Trend) {
    let _ = writeln!(
        out,
        "<h2 id=\"trend\">Trend: the last 7 days</h2>\n<p class=\"meta\">Distinct clients per clock hour (UTC) by how \
         they connected; refused: distinct addresses turned away.</p>"
    );
    let lanes = [Lane::Tls13, Lane::Tls12, Lane::Older, Lane::Plain, Lane::Refused];
    let max = trend
        .hours
        .iter()
        .map(|h| lanes.iter().map(|l| h.clients.get(*l)).sum::<u64>())
        .max()
        .unwrap_or(0)
        .max(1);
    // Room on the right for the last day's date under its first hour.
    let width = LEFT + BAR * trend.hours.len() as u32 + 40;
    let _ = writeln!(
        out,
        "<svg id=\"trend-chart\" width=\"{width}\" height=\"{}\" \
         viewBox=\"0 0 {width} {}\" role=\"img\" aria-label=\"clients per hour over 7 days\">",
        CHART_H + AXIS_H,
        CHART_H + AXIS_H
    );
    let _ = writeln!(
        out,
        "<line x1=\"{LEFT}\" y1=\"{CHART_H}\" x2=\"{width}\" y2=\"{CHART_H}\" stroke=\"#999\"/>\
         <text x=\"{}\" y=\"12\" font-size=\"11\" text-anchor=\"end\">{max}</text>\
         <text x=\"{}\" y=\"{CHART_H}\" font-size=\"11\" text-anchor=\"end\">0</text>",
        LEFT - 4,
        LEFT - 4
    );
    for (i, h) in trend.hours.iter().enumerate() {
        let x = LEFT + BAR * i as u32;
        if h.at.format("%H").to_string() == "00" {
            let _ = writeln!(
                out,
                "<line x1=\"{x}\" y1=\"0\" x2=\"{x}\" y2=\"{CHART_H}\" stroke=\"#eee\"/>\
                 <text x=\"{x}\" y=\"{}\" font-size=\"11\">{}</text>",
                CHART_H + 14,
                h.at.format("%m-%d")
            );
        }
        let mut y = CHART_H;
        for lane in lanes {
            let n = h.clients.get(lane);
            if n == 0 {
                continue;
            }
            let height = ((n * u64::from(CHART_H)) / max).max(1) as u32;
            y = y.saturating_sub(height);
            let _ = writeln!(
                out,
                "<rect x=\"{x}\" y=\"{y}\" width=\"{}\" height=\"{height}\" fill=\"{}\"><title>{} {}: {n}</title></rect>",
                BAR - 1,
                colour(lane),
                h.at.format("%Y-%m-%d %H:00"),
                lane.label()
            );
        }
    }
    let _ = writeln!(out, "</svg>\n<p>");
    for lane in lanes {
        let _ = write!(
            out,
            "<span class=\"key\" style=\"background:{}\"></span>{}",
            colour(lane),
            lane.label()
        );
    }
    let day = trend.total(24);
    let week = trend.total(trend.hours.len());
    let _ = writeln!(
        out,
        "</p>\n<table id=\"trend-totals\"><tr><th>sessions</th><th>TLSv1.3</th><th>TLSv1.2</th><th>older TLS</th>\
         <th>no TLS</th><th>refused</th></tr>\n<tr><td>last 24 h</td>{}</tr>\n<tr><td>last 7 d</td>{}</tr></table>",
        cells(&day),
        cells(&week)
    );
}

fn cells(l: &crate::analysis::ledger::Lanes) -> String {
    [l.tls13, l.tls12, l.older, l.plain, l.refused]
        .iter()
        .map(|n| format!("<td class=\"n\">{n}</td>"))
        .collect()
}

/// The steps, each with its commands in a block to copy, whether a restart is needed and how to undo it.
fn steps_section(out: &mut String, r: &Report) {
    let e = safe::html;
    let _ = writeln!(
        out,
        "<h2 id=\"steps\">How to raise it here ({})</h2>\n<p class=\"meta\">Placeholders in &lt;angle brackets&gt; are \
         what pgtls cannot know.</p>",
        e(r.platform.name.label())
    );
    let list = |out: &mut String, steps: &[ChangeStep]| {
        let _ = writeln!(out, "<ol>");
        for step in steps {
            let _ = write!(out, "<li><p>{}</p>", e(&step.title));
            if !step.commands.is_empty() {
                let _ = write!(out, "<pre><code>");
                for c in &step.commands {
                    let _ = writeln!(out, "{}", e(c));
                }
                let _ = write!(out, "</code></pre>");
            }
            let _ = write!(
                out,
                "<p class=\"meta\">{}; undo: {}</p>",
                e(step.restart.label()),
                e(&step.undo)
            );
            if let Some(note) = &step.note {
                let _ = write!(out, "<p class=\"meta\">{}</p>", e(note));
            }
            let _ = writeln!(out, "</li>");
        }
        let _ = writeln!(out, "</ol>");
    };
    for (target, steps) in &r.change_steps {
        let _ = writeln!(out, "<h3>{}</h3>", e(target.label()));
        list(out, steps);
    }
    let _ = writeln!(out, "<h3>The connection log pgtls reads</h3>");
    list(out, &r.log_steps);
}

fn after_section(out: &mut String, r: &Report) {
    let e = safe::html;
    let afters: Vec<&AfterChange> = r.after_changes().collect();
    let _ = writeln!(out, "<h2 id=\"after\">After the change</h2>");
    if afters.is_empty() {
        let _ = writeln!(
            out,
            "<p class=\"meta\">Neither target is in force yet: this section fills in once one is.</p>"
        );
        return;
    }
    for a in afters {
        let _ = writeln!(
            out,
            "<h3>{} since {} ({})</h3>\n<p class=\"meta\">{}</p>",
            e(a.target.label()),
            when(a.since),
            e(crate::analysis::after::since_source_label(a.since_source)),
            e(&a.since_note)
        );
        if let Some(off) = &a.log_connections_off {
            let _ = writeln!(out, "<p class=\"warn\">{}</p>", e(off));
        }
        let _ = writeln!(
            out,
            "<table>\n<tr><th>refused address</th><th>likely clients</th><th>attempts</th><th>first</th><th>last</th>\
             <th>reason</th></tr>"
        );
        for c in &a.refused {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                e(&c.address),
                e(&c.labels.join("; ")),
                if c.ambiguous { " (ambiguous)" } else { "" },
                c.attempts,
                when(c.first_seen),
                when(c.last_seen),
                e(&c.reason)
            );
        }
        if a.refused.is_empty() {
            let _ = writeln!(out, "<tr><td colspan=\"6\">none</td></tr>");
        }
        let _ = writeln!(out, "</table>");
        if !a.downgraded.is_empty() {
            let _ = writeln!(out, "<p class=\"bad\">Fell back to plain text:</p>\n<ul>");
            for d in &a.downgraded {
                let _ = writeln!(out, "<li>{}</li>", e(&d.label));
            }
            let _ = writeln!(out, "</ul>");
        }
        if !a.lingering.is_empty() {
            let _ = writeln!(
                out,
                "<p class=\"warn\">Still connected the old way (fail on reconnect):</p>\n<ul>"
            );
            for l in &a.lingering {
                let _ = writeln!(out, "<li>{} ({}, pid {})</li>", e(&l.label()), e(l.how()), l.pid);
            }
            let _ = writeln!(out, "</ul>");
        }
    }
}
