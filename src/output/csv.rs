//! CSV for spreadsheets: one row per session (`snapshot`) or per client (`ledger`), a header row first, RFC 4180
//! quoting. Every field passes through [`CsvFields::field`]: formula-shaped text is shown as text unless the
//! user asked for `--raw`.

use std::borrow::Cow;
use std::io::Write;

use crate::analysis::ledger::{Ledger, Source};
use crate::model::{ConnClass, Snapshot, TlsInfo};
use crate::output::safe;

/// What a CSV field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CsvFields {
    /// For spreadsheets: [`safe::csv_field`] (formula-shaped text prefixed with `'`, controls escaped).
    #[default]
    Spreadsheet,
    /// Byte-exact, for scripts (`--raw`); only the CSV quoting is added.
    Raw,
}

impl CsvFields {
    /// From the `--raw` flag.
    pub fn from_raw_flag(raw: bool) -> CsvFields {
        if raw { CsvFields::Raw } else { CsvFields::Spreadsheet }
    }

    pub fn field(self, text: &str) -> Cow<'_, str> {
        match self {
            CsvFields::Spreadsheet => safe::csv_field(text),
            CsvFields::Raw => Cow::Borrowed(text),
        }
    }

    /// Write one record with every field made safe as chosen; the only way rows are written here.
    fn record<W: Write, S: AsRef<str>>(self, w: &mut csv::Writer<W>, fields: &[S]) -> csv::Result<()> {
        w.write_record(fields.iter().map(|f| self.field(f.as_ref()).into_owned()))
    }
}

pub const HEADER: [&str; 21] = [
    "pid",
    "class",
    "tls_version",
    "cipher",
    "bits",
    "user",
    "database",
    "application_name",
    "client_addr",
    "client_port",
    "client_hostname",
    "backend_type",
    "state",
    "backend_start",
    "age_seconds",
    "client_dn",
    "client_serial",
    "issuer_dn",
    "gss_encrypted",
    "gss_principal",
    "snapshot_time",
];

pub fn write(snapshot: &Snapshot, fields: CsvFields, out: &mut dyn Write) -> std::io::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(HEADER)?;
    let taken = snapshot.taken_at.to_rfc3339();
    for s in &snapshot.sessions {
        let tls = s.tls.as_ref();
        let tls_field = |f: fn(&TlsInfo) -> Option<String>| tls.and_then(f).unwrap_or_default();
        let opt = |v: &Option<String>| v.clone().unwrap_or_default();
        fields.record(
            &mut w,
            &[
                s.pid.to_string(),
                serde_plain(&s.class),
                tls_field(|t| Some(t.version.clone())),
                tls_field(|t| Some(t.cipher.clone())),
                tls_field(|t| t.bits.map(|b| b.to_string())),
                opt(&s.user),
                opt(&s.database),
                opt(&s.application_name),
                opt(&s.client_addr),
                s.client_port.map(|p| p.to_string()).unwrap_or_default(),
                opt(&s.client_hostname),
                opt(&s.backend_type),
                opt(&s.state),
                s.backend_start.map(|t| t.to_rfc3339()).unwrap_or_default(),
                s.age_secs(snapshot.taken_at).map(|a| a.to_string()).unwrap_or_default(),
                tls_field(|t| t.client_dn.clone()),
                tls_field(|t| t.client_serial.clone()),
                tls_field(|t| t.issuer_dn.clone()),
                s.gss.as_ref().map(|g| g.encrypted.to_string()).unwrap_or_default(),
                s.gss.as_ref().and_then(|g| g.principal.clone()).unwrap_or_default(),
                taken.clone(),
            ],
        )?;
    }
    w.flush()
}

pub const LEDGER_HEADER: [&str; 18] = [
    "user",
    "database",
    "application",
    "address",
    "worst",
    "sessions",
    "tls13",
    "tls12",
    "tls_older",
    "plain_tcp",
    "gss",
    "local",
    "unknown",
    "ciphers",
    "first_seen",
    "last_seen",
    "connected_now",
    "sources",
];

/// `pgtls ledger --format csv`: one row per client.
pub fn write_ledger(ledger: &Ledger, fields: CsvFields, out: &mut dyn Write) -> std::io::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(LEDGER_HEADER)?;
    for r in ledger.records() {
        let worst = r.worst_class().map(|c| c.label()).unwrap_or("");
        let count = |c| r.count(c).to_string();
        let ciphers: Vec<String> = r.ciphers.keys().cloned().collect();
        let sources: Vec<&str> = r
            .sources
            .iter()
            .map(|s| if *s == Source::Poll { "poll" } else { "log" })
            .collect();
        fields.record(
            &mut w,
            &[
                r.key.user.clone(),
                r.key.database.clone(),
                r.key.application.clone(),
                r.key.address.clone(),
                worst.to_string(),
                r.sessions.to_string(),
                count(ConnClass::Tls13),
                count(ConnClass::Tls12),
                count(ConnClass::TlsOlder),
                count(ConnClass::PlainTcp),
                count(ConnClass::Gss),
                count(ConnClass::Local),
                count(ConnClass::Unknown),
                ciphers.join(" "),
                r.first_seen.to_rfc3339(),
                r.last_seen.to_rfc3339(),
                r.connected_now.to_string(),
                sources.join(" "),
            ],
        )?;
    }
    w.flush()
}

/// The serde name of a unit enum variant (`tls13`, `plain_tcp`, ...), so CSV and JSON agree.
fn serde_plain<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}
