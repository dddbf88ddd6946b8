//! `pgtls probe --format text`: the server's certificate chain, verification and accepted protocols.

use std::io::Write;

use crate::output::safe::terminal as t;
use crate::probe::ProbeReport;

/// Certificate names, the host, verification errors and findings quote what the server sent: each goes through
/// [`t`] (terminal), and the whole report through [`crate::output::safe::write_terminal`] as a backstop.
pub fn write(r: &ProbeReport, out: &mut dyn Write) -> std::io::Result<()> {
    crate::output::safe::write_terminal(out, |out| write_report(r, out))
}

fn write_report(r: &ProbeReport, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "Probe       {}:{} ({})  {} connection{} (each failed handshake logs a line on the server)",
        t(&r.host),
        r.port,
        t(&r.address),
        r.connections,
        if r.connections == 1 { "" } else { "s" }
    )?;
    if !r.accepts_tls {
        writeln!(
            out,
            "TLS         refused: the server answered 'N' to SSLRequest (ssl = off)"
        )?;
    }
    if let Some(n) = &r.negotiated {
        writeln!(out, "Negotiated  {} {}", t(&n.version), t(&n.cipher))?;
    }
    if !r.chain.is_empty() {
        writeln!(out, "Chain       as sent by the server, leaf first")?;
    }
    for (i, c) in r.chain.iter().enumerate() {
        writeln!(out, "  {i} {}", t(&c.subject))?;
        writeln!(out, "      issuer     {}", t(&c.issuer))?;
        writeln!(out, "      serial     {}", t(&c.serial))?;
        if !c.sans.is_empty() {
            let names: Vec<_> = c.sans.iter().map(|n| t(n)).collect();
            writeln!(out, "      names      {}", names.join(", "))?;
        }
        writeln!(
            out,
            "      key        {} {} bits, {}",
            t(&c.key_type),
            c.key_bits,
            t(&c.signature_algorithm)
        )?;
        writeln!(
            out,
            "      valid      {} to {} ({})",
            crate::format::timestamp(c.not_before),
            crate::format::timestamp(c.not_after),
            if c.days_left < 0 {
                format!("expired {} days ago", -c.days_left)
            } else {
                format!("{} days left", c.days_left)
            }
        )?;
        writeln!(out, "      sha256     {}", t(&c.sha256))?;
    }
    if let Some(m) = r.host_name_matches {
        let verdict = if m {
            "matches the certificate"
        } else {
            "is NOT named by the certificate"
        };
        writeln!(out, "Host name   {} {verdict}", t(&r.host))?;
    }
    for v in r.verify_bundle.iter().chain(r.verify_system.iter()) {
        let result = if v.verified {
            format!(
                "verified, anchored at \"{}\"",
                t(v.anchor.as_deref().unwrap_or_default())
            )
        } else {
            format!("NOT verified ({})", t(v.error.as_deref().unwrap_or_default()))
        };
        writeln!(out, "Verify      {}: {result}", t(&v.against))?;
    }
    if !r.bundle.is_empty() {
        writeln!(out, "Root file   {} certificate(s)", r.bundle.len())?;
        for b in &r.bundle {
            let role = match (b.anchors_server, b.pinned_from_chain, b.self_signed) {
                (true, _, _) => "root: anchors the server's chain",
                (_, true, _) => "PINNED: sent by the server itself",
                (_, _, true) => "root",
                _ => "not a root",
            };
            writeln!(out, "  - {} ({role})", t(&b.subject))?;
        }
    }
    write_bundles(r, out)?;
    if !r.versions.is_empty() {
        let list: Vec<String> = r
            .versions
            .iter()
            .map(|v| {
                format!(
                    "{} {}",
                    v.version.name(),
                    match (v.accepted, v.not_offered) {
                        (true, _) => "accepted",
                        (false, true) => "refused by configuration (not offered)",
                        (false, false) => "refused",
                    }
                )
            })
            .collect();
        writeln!(out, "Protocols   {}", list.join(", "))?;
        if !r.version_scan.is_empty() {
            writeln!(out, "            {}", t(&r.version_scan))?;
        }
    }
    if !r.tls12_ciphers.is_empty() {
        let what = if r.tls12_full_scan {
            "every accepted suite"
        } else {
            "preferred suite, then one example of each weak kind accepted (--full-cipher-scan lists all)"
        };
        writeln!(out, "TLS 1.2     {what}")?;
        for c in &r.tls12_ciphers {
            let mark = if c.weak() { "  ▲ weak" } else { "" };
            writeln!(out, "  {}{mark}", t(&c.name))?;
        }
    }
    if r.findings.is_empty() {
        writeln!(out, "Findings    none")?;
    } else {
        writeln!(out, "Findings")?;
        for f in &r.findings {
            writeln!(out, "  {} {}", f.severity.symbol(), t(&f.message))?;
        }
    }
    Ok(())
}

/// Per bundle: the two verdicts, each certificate with whether it alone anchors the chain, and why it fails.
fn write_bundles(r: &ProbeReport, out: &mut dyn Write) -> std::io::Result<()> {
    let yes_no = |ok: bool| if ok { "yes" } else { "NO" };
    for b in &r.bundles {
        writeln!(out, "Bundle      {}", t(&b.path))?;
        if let Some(e) = &b.error {
            writeln!(out, "  error      {}", t(e))?;
            continue;
        }
        writeln!(
            out,
            "  verify-full {}   verify-ca {}{}",
            yes_no(b.verifies),
            yes_no(b.verifies_ca),
            b.anchor
                .as_deref()
                .map(|a| format!("   anchored at \"{}\"", t(a)))
                .unwrap_or_default()
        )?;
        if !b.path_taken.is_empty() {
            let steps: Vec<String> = b
                .path_taken
                .iter()
                .map(|s| format!("\"{}\" ({})", t(&s.subject), t(&s.from)))
                .collect();
            writeln!(out, "  path       {}", steps.join(" -> "))?;
        }
        for root in &b.roots {
            // "anchors": this certificate alone, with what the server sends, is enough.
            let mut marks = vec![if root.anchors {
                "anchors alone"
            } else {
                "does not anchor alone"
            }];
            if root.expired {
                marks.push("EXPIRED");
            }
            if !root.self_signed {
                marks.push("not self-signed");
            }
            writeln!(
                out,
                "  - {}  ({}; until {})",
                t(&root.subject),
                marks.join(", "),
                root.not_after.format("%Y-%m-%d")
            )?;
            writeln!(out, "      sha256     {}", t(&root.sha256))?;
        }
        for why in &b.explanation {
            writeln!(out, "  why        {}", t(why))?;
        }
    }
    Ok(())
}
