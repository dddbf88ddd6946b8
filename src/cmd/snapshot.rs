//! `pgtls snapshot`: one poll, printed, for scripts.

use std::io::Write;
use std::process::ExitCode;

use super::Failure;
use crate::analysis::after::PoolerAfter;
use crate::analysis::alerts::{Alert, LinkHealth, evaluate_with};
use crate::analysis::ledger::Ledger;
use crate::cli::SnapshotArgs;
use crate::collect::Collector;
use crate::conn::params::Environment;
use crate::model::Snapshot;
use crate::output::{Format, safe};
use crate::pooler_logs::PoolerLogs;

pub async fn run(args: SnapshotArgs) -> Result<ExitCode, Failure> {
    // Read before connecting, as the dashboard does: a broken configuration is a usage error, whatever the server.
    let (config, _) = crate::config::Config::load(args.config.as_deref()).map_err(Failure::usage)?;
    let params = args
        .conn
        .resolve(&Environment::from_process())
        .map_err(Failure::connect)?;
    let poolers = args
        .poolers
        .resolve(&Environment::from_process())
        .map_err(Failure::usage)?;
    if !poolers.logs().is_empty() && args.format == Format::Csv {
        return Err(Failure::usage(
            "--pgbouncer-log adds the pooler's refused clients to the table and JSON formats; CSV lists sessions only",
        ));
    }
    let mut logs = PoolerLogs::open(poolers.logs(), true).map_err(Failure::usage)?;
    let mut collector = Collector::connect(&params)
        .await
        .map_err(Failure::connect)?
        .with_poolers(poolers);
    for warning in collector.warnings() {
        super::warn(&warning);
    }
    let snapshot = collector.poll().await.map_err(Failure::connect)?;
    let pooler_after = (!logs.is_empty()).then(|| refused_at_poolers(&mut logs, &snapshot));
    let alerts = evaluate_with(Some(&snapshot), &LinkHealth::Up, &config.alerts);
    let mut out = std::io::stdout().lock();
    let result = match args.format {
        // JSON gains keys; the table gains blocks after it; CSV lists sessions only.
        Format::Json => write_json(&snapshot, pooler_after.as_deref(), &alerts, &mut out),
        Format::Csv => crate::output::write(
            &snapshot,
            args.format,
            crate::output::csv::CsvFields::from_raw_flag(args.raw),
            &mut out,
        ),
        Format::Table => crate::output::write(
            &snapshot,
            args.format,
            crate::output::csv::CsvFields::from_raw_flag(args.raw),
            &mut out,
        )
        .and_then(|()| match &pooler_after {
            Some(p) => safe::write_terminal(&mut out, |out| write_text(p, &logs, out)),
            None => Ok(()),
        })
        .and_then(|()| safe::write_terminal(&mut out, |out| write_alerts(&alerts, out))),
    }
    .and_then(|()| out.flush());
    super::written(result).map_err(|e| Failure::error(format!("writing output: {e}")))?;
    Ok(ExitCode::SUCCESS)
}

/// Read each pooler's log from its start, one bounded budget at a time into a ledger (which keeps counts per
/// address, not lines), and judge each pooler's client side under both targets.
fn refused_at_poolers(logs: &mut PoolerLogs, snapshot: &Snapshot) -> Vec<PoolerAfter> {
    let mut ledger = Ledger::default();
    loop {
        for refused in logs.poll() {
            ledger.observe_refused(&refused);
        }
        if !logs.is_behind() {
            break;
        }
    }
    crate::collect::history::pooler_after_of(&ledger, snapshot)
}

/// The snapshot's JSON with `alerts` (as the configuration shapes them), and `pooler_after_change` beside
/// `poolers` when pooler logs were read.
fn write_json(
    snapshot: &Snapshot,
    pooler_after: Option<&[PoolerAfter]>,
    alerts: &[Alert],
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let mut value = serde_json::to_value(snapshot)?;
    if let Some(object) = value.as_object_mut() {
        object.insert("alerts".to_string(), serde_json::to_value(alerts)?);
        if let Some(pooler_after) = pooler_after {
            object.insert("pooler_after_change".to_string(), serde_json::to_value(pooler_after)?);
        }
    }
    serde_json::to_writer_pretty(&mut *out, &value)?;
    writeln!(out)
}

/// The alerts the dashboard would show for this one poll, most severe first; nothing when none holds.
fn write_alerts(alerts: &[Alert], out: &mut dyn Write) -> std::io::Result<()> {
    if alerts.is_empty() {
        return Ok(());
    }
    writeln!(out, "\nAlerts:")?;
    for a in alerts {
        // Titles and details name applications and users: escaped one field at a time, so a name cannot add a line.
        writeln!(
            out,
            "  {} {} [{}]",
            a.severity.symbol(),
            safe::terminal(&a.title),
            a.key
        )?;
        for line in wrap(&safe::terminal(&a.detail), ALERT_WIDTH - 4) {
            writeln!(out, "    {line}")?;
        }
    }
    Ok(())
}

/// The table's other lines stay within 100 columns; so do the alerts'.
const ALERT_WIDTH: usize = 100;

/// `text` cut at spaces into lines of at most `width` columns (a wide character may overrun by one).
fn wrap(text: &str, width: usize) -> Vec<String> {
    use unicode_width::UnicodeWidthStr;
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    // A word wider than a line (a long path) is cut into pieces that fit.
    let pieces = text.split(' ').filter(|w| !w.is_empty()).flat_map(|word| {
        let mut parts = vec![String::new()];
        for c in word.chars() {
            let last = parts.last_mut().filter(|p| p.width() < width);
            match last {
                Some(part) => part.push(c),
                None => parts.push(c.to_string()),
            }
        }
        parts
    });
    for word in pieces {
        if !line.is_empty() && line.width() + 1 + word.width() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

fn write_text(pooler_after: &[PoolerAfter], logs: &PoolerLogs, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out)?;
    for p in pooler_after {
        write!(out, "Target {}: ", p.target.label())?;
        crate::output::pooler_after::write_lines(p, out)?;
    }
    for line in logs.describe() {
        writeln!(out, "Source: {}", safe::terminal(&line.text))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::wrap;

    #[test]
    fn wrap_keeps_lines_within_the_width_and_every_word() {
        let text = format!("one two three {} four", "x".repeat(25));
        let lines = wrap(&text, 10);
        assert!(lines.iter().all(|l| l.chars().count() <= 10), "{lines:?}");
        assert_eq!(lines.concat().replace(' ', ""), text.replace(' ', ""));
        assert_eq!(lines[0], "one two");
    }
}
