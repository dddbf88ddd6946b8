//! The migration's trend in the ledger's export, and `pgtls report` against the real lab: the HTML rendered by a
//! real browser (headless Chromium from Debian's packages, which scripts/test installs), checked in its DOM for the
//! holdouts, the verdicts and the chart, with hostile role and application names arriving as text; the Markdown
//! checked for tables that keep their columns.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers fail by panicking")]

use crate::common;

use std::path::Path;
use std::process::Command;

use pgtls::lab::{Lab, SUPERUSER, SessionKind};
use serde_json::Value;

/// A role and an application_name that try markup, a table cell's end, a line break with a heading, a code span,
/// a bidi override and a zero-width space (each under the server's 63 bytes).
const HOSTILE_ROLE: &str = "<i>rep</i>|`r`\n#\u{202e}\u{200b}";
const HOSTILE_APP: &str = "<script>alert(1)</script>|x\n# h\u{202e}\u{200b}";

async fn create_role(lab: &Lab, name: &str) {
    let admin = lab.admin().await.unwrap();
    let sql: String = admin
        .query_one(
            "SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', $1::text, $2::text)",
            &[&name, &pgtls::lab::LAB_PASSWORD],
        )
        .await
        .unwrap()
        .get(0);
    // Another test of this binary may have made it already: the lab is shared.
    let _ = admin.batch_execute(&sql).await;
}

fn conninfo(lab: &Lab) -> String {
    format!("{} sslmode=require", lab.conninfo(SUPERUSER))
}

/// `check --ledger` polls once and writes what it saw: the ledger a report and an export read.
fn fill_ledger(lab: &Lab, ledger: &Path, home: &Path) {
    let out = common::pgtls(
        &["check", &conninfo(lab), "--ledger", &ledger.display().to_string()],
        home,
    );
    assert!(
        matches!(out.status.code(), Some(0..=2)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn ledger_json_exports_each_clients_hours_and_the_weeks_trend() {
    let lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    let _modern = lab.open(SessionKind::Tls13, SUPERUSER, "trend-modern").await.unwrap();
    let _holdout = lab.open(SessionKind::Tls12, SUPERUSER, "trend-holdout").await.unwrap();
    let _plain = lab.open(SessionKind::PlainTcp, SUPERUSER, "trend-plain").await.unwrap();
    let ledger = home.path().join("ledger.jsonl");
    fill_ledger(&lab, &ledger, home.path());

    let out = common::pgtls(
        &["ledger", &ledger.display().to_string(), "--format", "json"],
        home.path(),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let clients: Value = serde_json::from_slice(&out.stdout).unwrap();
    let hours_of = |app: &str| {
        clients
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["key"]["application"] == app)
            .unwrap_or_else(|| panic!("{app} in {clients}"))["hours"]
            .clone()
    };
    for (app, lane) in [
        ("trend-modern", "tls13"),
        ("trend-holdout", "tls12"),
        ("trend-plain", "plain"),
    ] {
        let hours = hours_of(app);
        let hours = hours.as_array().unwrap();
        assert_eq!(hours.len(), 1, "{app}: one hour so far: {hours:?}");
        assert_eq!(hours[0][lane], 1, "{app}: one session on {lane}: {hours:?}");
    }

    let out = common::pgtls(
        &["ledger", &ledger.display().to_string(), "--format", "json", "--trend"],
        home.path(),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let trend: Value = serde_json::from_slice(&out.stdout).unwrap();
    let hours = trend["hours"].as_array().unwrap();
    assert_eq!(hours.len(), 168, "a week of hours, empty ones included");
    let last = hours.last().unwrap();
    for lane in ["tls13", "tls12", "plain"] {
        assert!(last["clients"][lane].as_u64().unwrap() >= 1, "{lane}: {last}");
        assert!(last["sessions"][lane].as_u64().unwrap() >= 1, "{lane}: {last}");
    }
    assert!(last["clients"]["below_tls13"].as_u64().unwrap() >= 2, "{last}");
    assert!(
        hours[..167].iter().all(|h| h["sessions"]["tls12"] == 0),
        "nothing before pgtls watched"
    );

    let out = common::pgtls(&["ledger", &ledger.display().to_string(), "--trend"], home.path());
    let csv = String::from_utf8(out.stdout).unwrap();
    assert!(csv.starts_with("hour,sessions_tls13,sessions_tls12,"), "{csv}");
    assert_eq!(csv.lines().count(), 169, "a header and 168 hours");
}

/// The DOM headless Chromium builds from `file`, as it serialises it.
fn dump_dom(file: &Path) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            &format!("--user-data-dir={}", profile.path().display()),
            "--dump-dom",
            &format!("file://{}", file.display()),
        ])
        .output()
        .unwrap_or_else(|e| panic!("chromium: {e} (Debian's chromium package; scripts/test installs it)"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn the_html_report_renders_in_chromium_and_markdown_keeps_its_tables() {
    let lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    create_role(&lab, HOSTILE_ROLE).await;
    let _modern = lab.open(SessionKind::Tls13, SUPERUSER, "report-modern").await.unwrap();
    let _holdout = lab.open(SessionKind::Tls12, HOSTILE_ROLE, HOSTILE_APP).await.unwrap();
    let _plain = lab
        .open(SessionKind::PlainTcp, SUPERUSER, "report-plain")
        .await
        .unwrap();
    let ledger = home.path().join("ledger.jsonl");
    fill_ledger(&lab, &ledger, home.path());
    let ledger_before = std::fs::read(&ledger).unwrap();

    let page = home.path().join("ticket.html");
    let out = common::pgtls(
        &[
            "report",
            &conninfo(&lab),
            "--ledger",
            &ledger.display().to_string(),
            "-o",
            &page.display().to_string(),
        ],
        home.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        std::fs::read(&ledger).unwrap(),
        ledger_before,
        "a report only reads the ledger"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&page).unwrap().permissions().mode() & 0o777, 0o600);
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        !html.contains("http:") && !html.contains("https:") && !html.contains("<script"),
        "self-contained"
    );

    let dom = dump_dom(&page);
    // The verdicts: TLSv1.3 would refuse the TLS 1.2 client, TLS required the plain one.
    let row = |id: &str| {
        let at = dom
            .find(&format!("id=\"{id}\""))
            .unwrap_or_else(|| panic!("{id}:\n{dom}"));
        dom[at..at + dom[at..].find("</tr>").unwrap()].to_string()
    };
    assert!(
        row("verdict-min-tls13").contains("not safe"),
        "{}",
        row("verdict-min-tls13")
    );
    assert!(
        row("verdict-tls-required").contains("not safe"),
        "{}",
        row("verdict-tls-required")
    );
    // The holdouts with their evidence, the chart as SVG with bars, the certificate the probe read.
    let holdouts = &dom[dom.find("id=\"holdouts\"").expect("holdouts table")..];
    assert!(
        holdouts.contains("report-plain") && holdouts.contains("127.0.0.1"),
        "{holdouts}"
    );
    // The ledger's one session each, not counted again by the report's own poll.
    let plain_row = &holdouts[holdouts.find("report-plain").unwrap()..];
    assert!(
        plain_row[..plain_row.find("</tr>").unwrap()].contains("<td class=\"n\">1</td>"),
        "{plain_row}"
    );
    let chart = &dom[dom.find("<svg id=\"trend-chart\"").expect("an svg chart")..];
    assert!(
        chart[..chart.find("</svg>").unwrap()].contains("<rect"),
        "bars for the hour watched"
    );
    assert!(dom.contains("id=\"certificate\"") && dom.contains("days left"));
    assert!(dom.contains("id=\"steps\""), "the change steps");
    // Hostile names arrive as text: no element from them, every invisible character shown escaped.
    // (The server itself turns an application_name's non-ASCII characters and line break into `?`; a role name
    // keeps them.)
    assert!(
        dom.contains("&lt;script&gt;alert(1)&lt;/script&gt;|x?# h"),
        "{holdouts}"
    );
    assert!(
        dom.contains("&lt;i&gt;rep&lt;/i&gt;|`r`\\n#\\u{202e}\\u{200b}"),
        "{holdouts}"
    );
    assert!(!dom.contains("<script") && !dom.contains("<i>"), "markup from a name");
    assert!(!dom.contains('\u{202e}') && !dom.contains('\u{200b}'));

    let md_path = home.path().join("ticket.md");
    let out = common::pgtls(
        &[
            "report",
            &conninfo(&lab),
            "--ledger",
            &ledger.display().to_string(),
            "--no-probe",
            "-o",
            &md_path.display().to_string(),
        ],
        home.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let md = std::fs::read_to_string(&md_path).unwrap();
    let holdout_rows: Vec<&str> = md
        .lines()
        .skip_while(|l| !l.starts_with("## Holdouts"))
        .skip(1)
        .take_while(|l| !l.starts_with("## "))
        .filter(|l| l.starts_with('|'))
        .collect();
    let unescaped_pipes = |l: &str| l.split("\\|").map(|part| part.matches('|').count()).sum::<usize>();
    assert!(holdout_rows.len() >= 4, "header, rule and rows: {holdout_rows:?}");
    assert!(
        holdout_rows.iter().all(|r| unescaped_pipes(r) == 11),
        "10 cells a row, whatever the names: {holdout_rows:#?}"
    );
    assert!(
        holdout_rows.iter().any(|r| r.contains("\\<script\\>alert")),
        "{holdout_rows:#?}"
    );
    assert!(md.contains("Not read: not probed \\(\\-\\-no\\-probe\\)"));
    assert!(!md.contains('\u{202e}') && md.contains("## Trend: the last 7 days"));

    // The format is the extension's: anything else is a usage error, said before connecting.
    let out = common::pgtls(
        &[
            "report",
            &conninfo(&lab),
            "-o",
            &home.path().join("ticket.pdf").display().to_string(),
        ],
        home.path(),
    );
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains(".html or .md"));
}
