//! Headless renderers for `pgtls snapshot`: a readable table, stable JSON, spreadsheet CSV.

pub mod csv;
pub mod probe;
pub mod safe;
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
