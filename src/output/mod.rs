//! Headless renderers for `pgtls snapshot`: a readable table, stable JSON, spreadsheet CSV.

pub mod check;
pub mod csv;
pub mod pooler_after;
pub mod probe;
pub mod report;
pub mod status;
/// Outside text made safe for each output: in the pure layer, whose log parsers use it too.
pub use pgtls_core::safe;
pub mod table;

use std::io::Write;

use crate::model::Snapshot;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

pub fn write(
    snapshot: &Snapshot,
    format: Format,
    csv_fields: csv::CsvFields,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    match format {
        Format::Table => table::write(snapshot, out),
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, snapshot)?;
            writeln!(out)
        }
        Format::Csv => csv::write(snapshot, csv_fields, out),
    }
}

/// The class test: every unsafe character, in every outside string, through every headless output.
#[cfg(test)]
mod class_tests {
    use super::safe::{every_unsafe_char, first_unsafe};
    use super::*;
    use crate::model::Setting;

    fn hostile_snapshot(text: &str) -> Snapshot {
        let mut snap = crate::fixtures::snapshot();
        snap.server.host = text.to_string();
        snap.server.version = text.to_string();
        snap.monitor.user = text.to_string();
        snap.settings
            .insert("ssl_ciphers".into(), Setting::Set(text.to_string()));
        for s in &mut snap.sessions {
            s.user = Some(text.to_string());
            s.database = Some(text.to_string());
            s.application_name = Some(text.to_string());
            s.client_addr = Some(text.to_string());
            if let Some(tls) = &mut s.tls {
                tls.cipher = text.to_string();
                tls.client_dn = Some(text.to_string());
            }
        }
        snap
    }

    fn render(snap: &Snapshot, format: Format, fields: csv::CsvFields) -> Vec<u8> {
        let mut out = Vec::new();
        write(snap, format, fields, &mut out).unwrap();
        out
    }

    fn lines(bytes: &[u8]) -> usize {
        bytes.split(|b| *b == b'\n').count()
    }

    #[test]
    fn no_unsafe_character_reaches_the_table_or_the_csv_and_none_adds_a_line() {
        let plain = hostile_snapshot("ab");
        let table_lines = lines(&render(&plain, Format::Table, Default::default()));
        let csv_lines = lines(&render(&plain, Format::Csv, Default::default()));
        for c in every_unsafe_char() {
            let snap = hostile_snapshot(&format!("a{c}b"));
            let table = render(&snap, Format::Table, Default::default());
            assert_eq!(first_unsafe(&table), None, "table, {c:?}");
            assert_eq!(lines(&table), table_lines, "table lines, {c:?}");
            let csv = render(&snap, Format::Csv, csv::CsvFields::Spreadsheet);
            assert_eq!(first_unsafe(&csv), None, "csv, {c:?}");
            assert_eq!(lines(&csv), csv_lines, "csv lines, {c:?}");
            // --raw keeps the character (quoted where CSV needs it): exact, for scripts.
            let raw = String::from_utf8(render(&snap, Format::Csv, csv::CsvFields::Raw)).unwrap();
            assert!(raw.contains(c), "raw csv, {c:?}");
            // JSON: valid and exact.
            let json = render(&snap, Format::Json, Default::default());
            assert!(!json.iter().any(|b| *b < 0x20 && *b != b'\n'), "json, {c:?}");
            let back: serde_json::Value = serde_json::from_slice(&json).unwrap();
            assert_eq!(back["monitor"]["user"], format!("a{c}b"));
        }
    }

    #[test]
    fn no_unsafe_character_reaches_the_probe_report() {
        let report = |text: &str| -> crate::probe::ProbeReport {
            serde_json::from_value(serde_json::json!({
                "host": text, "address": text, "port": 5432, "probed_at": "2026-01-01T00:00:00Z",
                "accepts_tls": true, "negotiated": {"version": text, "cipher": text}, "chain": [{
                    "subject": text, "issuer": text, "serial": text, "sans": [text, text], "key_type": text,
                    "key_bits": 2048, "signature_algorithm": text, "not_before": "2026-01-01T00:00:00Z",
                    "not_after": "2027-01-01T00:00:00Z", "days_left": 300, "sha256": text, "is_ca": false, "self_signed": false}],
                "host_name_matches": false, "root_bundle": text, "verify_bundle": null, "bundle": [],
                "verify_system": null, "versions": [], "tls12_ciphers": [], "tls12_full_scan": false,
                "connections": 1, "findings": [{"severity": "warning", "message": text}]
            }))
            .unwrap()
        };
        let text = |r: &crate::probe::ProbeReport| {
            let mut out = Vec::new();
            probe::write(r, &mut out).unwrap();
            out
        };
        let plain = lines(&text(&report("ab")));
        for c in every_unsafe_char() {
            let out = text(&report(&format!("a{c}b")));
            assert_eq!(first_unsafe(&out), None, "probe, {c:?}");
            assert_eq!(lines(&out), plain, "probe lines, {c:?}");
        }
    }
}
