//! `pgtls ledger PATH`: export a ledger file as CSV or JSON, one entry per client.

use std::io::Write;
use std::process::ExitCode;

use super::Failure;
use crate::analysis::ledger::{Journal, KeyFields, Ledger, Trend};
use crate::cli::{LedgerArgs, LedgerFormat};

pub fn run(args: LedgerArgs) -> Result<ExitCode, Failure> {
    if !args.path.exists() {
        return Err(Failure::usage(format!("ledger {} does not exist", args.path.display())));
    }
    crate::files::regular_if_exists(&args.path)
        .map_err(|e| Failure::usage(format!("ledger {}: {e}", args.path.display())))?;
    let mut ledger = Ledger::new(KeyFields::default());
    // An export reads: the file is opened read-only and stays byte for byte as it was, a torn last line included.
    let report = Journal::replay_read_only(&args.path, &mut ledger).map_err(Failure::error)?;
    if let Some(message) = report.message(&args.path) {
        super::warn(&message);
    }
    let mut out = std::io::stdout().lock();
    if args.trend {
        let written = write_trend(&ledger.week(), args.format, &mut out);
        super::written(written.and_then(|()| out.flush()))
            .map_err(|e| Failure::error(format!("writing output: {e}")))?;
        return Ok(ExitCode::SUCCESS);
    }
    let written = match args.format {
        LedgerFormat::Csv => crate::output::csv::write_ledger(
            &ledger,
            crate::output::csv::CsvFields::from_raw_flag(args.raw),
            &mut out,
        ),
        LedgerFormat::Json => {
            // Offline nothing is connected "now": the field would always read 0, which looks like a fact.
            let clients: Vec<serde_json::Value> = ledger
                .records()
                .map(|r| {
                    let mut client = serde_json::to_value(r).unwrap_or_default();
                    if let Some(fields) = client.as_object_mut() {
                        fields.remove("connected_now");
                    }
                    client
                })
                .collect();
            serde_json::to_writer_pretty(&mut out, &clients)
                .map_err(std::io::Error::from)
                .and_then(|()| writeln!(out))
        }
    };
    super::written(written.and_then(|()| out.flush())).map_err(|e| Failure::error(format!("writing output: {e}")))?;
    Ok(ExitCode::SUCCESS)
}

/// The week's trend: JSON as [`Trend`] serializes (`{"hours": [{at, sessions: {...}, clients: {...}}]}`), CSV one row
/// per hour (numbers and times only, so nothing to make safe).
fn write_trend(trend: &Trend, format: LedgerFormat, out: &mut impl Write) -> std::io::Result<()> {
    match format {
        LedgerFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, trend).map_err(std::io::Error::from)?;
            writeln!(out)
        }
        LedgerFormat::Csv => {
            let lanes = ["tls13", "tls12", "older", "plain", "refused", "below_tls13"];
            let header: Vec<String> = std::iter::once("hour".to_string())
                .chain(lanes.iter().map(|l| format!("sessions_{l}")))
                .chain(lanes.iter().map(|l| format!("clients_{l}")))
                .collect();
            writeln!(out, "{}", header.join(","))?;
            for h in &trend.hours {
                let row = |l: &crate::analysis::ledger::Lanes| {
                    [l.tls13, l.tls12, l.older, l.plain, l.refused, l.below_tls13]
                        .map(|n| n.to_string())
                        .join(",")
                };
                writeln!(
                    out,
                    "{},{},{}",
                    h.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    row(&h.sessions),
                    row(&h.clients)
                )?;
            }
            Ok(())
        }
    }
}
