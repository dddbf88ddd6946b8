//! A plain-text report that reads well in 100 columns: header lines, then one row per session.

use std::io::Write;

use crate::format::{age, truncate};
use crate::model::{ConnClass, Session, Setting, Snapshot};
use crate::output::safe::terminal;

/// Column widths; with the two-character marker and single spaces they add up to 100.
const COLUMNS: [(&str, usize); 8] = [
    ("PID", 6),
    ("USER", 10),
    ("DATABASE", 8),
    ("APPLICATION", 14),
    ("CLIENT", 17),
    ("AGE", 6),
    ("TLS", 8),
    ("CIPHER", 22),
];

/// Settings shown in the report, in order, with the label used there.
const SHOWN_SETTINGS: [&str; 7] = [
    "ssl",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "ssl_ciphers",
    "ssl_groups",
    "ssl_library",
    "require_secure_transport",
];

/// Every value that came from the server or its clients goes through [`terminal`]; the whole report then
/// passes through [`crate::output::safe::write_terminal`] as a backstop.
pub fn write(snapshot: &Snapshot, out: &mut dyn Write) -> std::io::Result<()> {
    crate::output::safe::write_terminal(out, |out| write_report(snapshot, out))
}

fn write_report(snapshot: &Snapshot, out: &mut dyn Write) -> std::io::Result<()> {
    let server = &snapshot.server;
    let server_line = vec![
        format!("{}:{}", terminal(&server.host), server.port),
        format!("PostgreSQL {}", terminal(&server.version)),
        format!("polled {}", crate::format::timestamp(snapshot.taken_at)),
        format!("in {:.1} ms", snapshot.poll_ms),
    ];
    write_wrapped(out, "Server", &server_line)?;
    let m = &snapshot.monitor;
    let tls = m.tls.as_ref().map_or("no TLS".to_string(), |t| {
        format!("{} {}", terminal(&t.version), terminal(&t.cipher))
    });
    let sslinfo = m.ssl_is_used.map_or(String::new(), |used| {
        format!("  ssl_is_used()={}", if used { "t" } else { "f" })
    });
    let monitor_line = vec![
        format!("pid {} as {}", m.pid, terminal(&m.user)),
        tls,
        format!("sslmode={}, {}{sslinfo}", m.sslmode, m.verification.label()),
    ];
    write_wrapped(out, "Monitor", &monitor_line)?;
    let mut settings = Vec::new();
    for name in SHOWN_SETTINGS {
        let name = if name == "ssl_groups" && snapshot.setting(name) == &Setting::Absent {
            "ssl_ecdh_curve"
        } else {
            name
        };
        let shown = match snapshot.setting(name) {
            Setting::Set(v) if v.is_empty() => "(none)".to_string(),
            Setting::Set(v) => terminal(v).into_owned(),
            Setting::Hidden => "hidden*".to_string(),
            Setting::Absent => continue,
        };
        settings.push(format!("{name}={shown}"));
    }
    write_wrapped(out, "Settings", &settings)?;
    let counts = snapshot.class_counts();
    // pgtls's own rows are listed below but counted nowhere.
    let mut summary = vec![format!("{} total:", counts.total())];
    summary.extend(
        ConnClass::ALL
            .iter()
            .map(|c| format!("{} {}", counts.get(*c), c.label())),
    );
    write_wrapped(out, "Sessions", &summary)?;
    for p in &snapshot.poolers {
        let mut items = vec![format!("pgbouncer {}", terminal(&p.address))];
        match &p.error {
            Some(e) => items.push(format!("not answering: {}", terminal(e))),
            None => {
                items.extend(p.settings.iter().map(|(k, v)| format!("{k}={}", terminal(v))));
                items.push(format!("{} client(s)", p.client_list().count()));
                if p.truncated {
                    items.push(format!(
                        "answer truncated at pgtls's cap after {} rows (the rest unread)",
                        p.rows
                    ));
                }
            }
        }
        write_wrapped(out, "Pooler", &items)?;
    }
    writeln!(out)?;

    let header: Vec<String> = COLUMNS.iter().map(|(name, w)| format!("{name:<w$}")).collect();
    writeln!(out, "  {}", header.join(" ").trim_end())?;
    for session in &snapshot.sessions {
        writeln!(out, "{}", row(session, snapshot))?;
    }

    if snapshot.settings.values().any(|s| s == &Setting::Hidden) {
        writeln!(
            out,
            "\n* hidden: {} may not read this setting; GRANT pg_read_all_settings TO {};",
            terminal(&m.user),
            terminal(&m.user)
        )?;
    }
    if counts.unknown > 0 {
        writeln!(
            out,
            "? {} session(s) unknown: {} may not see their TLS details; GRANT pg_read_all_stats TO {};",
            counts.unknown,
            terminal(&m.user),
            terminal(&m.user)
        )?;
    }
    Ok(())
}

/// `Label     item  item  item`, continued on indented lines so nothing passes 100 columns.
fn write_wrapped(out: &mut dyn Write, label: &str, items: &[String]) -> std::io::Result<()> {
    const WIDTH: usize = 100;
    const INDENT: usize = 10;
    let mut line = format!("{label:<INDENT$}");
    let mut first_on_line = true;
    for item in items {
        let item = truncate(item, WIDTH - INDENT);
        if !first_on_line && line.len() + 2 + item.len() > WIDTH {
            writeln!(out, "{}", line.trim_end())?;
            line = " ".repeat(INDENT);
            first_on_line = true;
        }
        if !first_on_line {
            line.push_str("  ");
        }
        line.push_str(&item);
        first_on_line = false;
    }
    writeln!(out, "{}", line.trim_end())
}

/// `!` plaintext on the network, `~` TLS below 1.3, `?` unknown: readable without colour.
pub fn marker(class: ConnClass) -> &'static str {
    match class {
        ConnClass::PlainTcp => "!",
        ConnClass::Tls12 | ConnClass::TlsOlder => "~",
        ConnClass::Unknown => "?",
        _ => " ",
    }
}

/// Short transport label for narrow columns.
pub fn short_label(session: &Session) -> String {
    match session.class {
        ConnClass::Tls13 | ConnClass::Tls12 | ConnClass::TlsOlder => session
            .tls
            .as_ref()
            .map_or("TLS?".to_string(), |t| terminal(&t.version).into_owned()),
        ConnClass::PlainTcp => "no TLS".to_string(),
        ConnClass::Gss => "GSS".to_string(),
        ConnClass::Local => "local".to_string(),
        ConnClass::Unknown => "unknown".to_string(),
    }
}

/// A pooled session's client leg (the dashboard's CLIENT LEG cell): the client's own TLS, or why it is not known;
/// empty for direct sessions, whose TLS column is their client's.
pub fn client_leg(s: &Session) -> String {
    use crate::model::{ClientLeg, PoolerJoin};
    let Some(p) = &s.pooler else {
        return String::new();
    };
    match (&p.client, p.join) {
        (Some(ClientLeg { tls: Some(t), .. }), _) => terminal(&t.version).into_owned(),
        (Some(c), _) if c.class == ConnClass::Local => "local".to_string(),
        (Some(_), _) => "no TLS".to_string(),
        (None, PoolerJoin::Idle) => "idle in pool".to_string(),
        (None, PoolerJoin::Transaction) => "per transaction".to_string(),
        (None, _) => "via pooler, unknown".to_string(),
    }
}

/// What names a session's application in tables: pgtls's own rows say so, whatever their application_name, so
/// a client that calls itself "pgtls" never reads like the monitor.
pub fn application(s: &Session) -> String {
    if s.monitor {
        OWN_LABEL.to_string()
    } else {
        terminal(s.application_name.as_deref().unwrap_or("")).into_owned()
    }
}

/// How pgtls's own connections are labelled wherever sessions are listed.
pub const OWN_LABEL: &str = "this pgtls";

fn row(s: &Session, snapshot: &Snapshot) -> String {
    let text = |v: &Option<String>| terminal(v.as_deref().unwrap_or("")).into_owned();
    let cells = [
        s.pid.to_string(),
        text(&s.user),
        text(&s.database),
        application(s),
        terminal(&s.client_endpoint()).into_owned(),
        s.age_secs(snapshot.taken_at).map(age).unwrap_or_default(),
        short_label(s),
        s.tls
            .as_ref()
            .map(|t| terminal(&t.cipher).into_owned())
            .unwrap_or_default(),
    ];
    let padded: Vec<String> = cells
        .iter()
        .zip(COLUMNS)
        .map(|(cell, (_, w))| {
            let cut = truncate(cell, w);
            let pad = w.saturating_sub(unicode_width::UnicodeWidthStr::width(cut.as_str()));
            format!("{cut}{}", " ".repeat(pad))
        })
        .collect();
    // Behind a pooler, TLS is the pooler's leg: the client's own follows, and the marker warns about it.
    let pooled = s.pooler.as_ref().map_or(String::new(), |p| {
        format!(" client leg {} via {}", client_leg(s), terminal(&p.address))
    });
    format!("{} {}{pooled}", marker(s.client_class()), padded.join(" "))
        .trim_end()
        .to_string()
}
