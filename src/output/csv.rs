//! CSV for spreadsheets: one row per session (`snapshot`) or per client (`ledger`), a header row first, RFC 4180
//! quoting. Every field passes through [`CsvFields::field`]: formula-shaped text is shown as text unless the
//! user asked for `--raw`.

use std::borrow::Cow;
use std::io::Write;

use crate::analysis::ledger::Ledger;
use crate::model::{ConnClass, Snapshot};
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

/// The JSON session fields (`sessions[]` of `snapshot --format json`), in their JSON order, with `tls` and `gss`
/// flattened to `tls_version`, `gss_encrypted`, ...; a test keeps this list equal to the JSON.
pub const SESSION_COLUMNS: [&str; 34] = [
    "pid",
    "class",
    "leader_pid",
    "user",
    "database",
    "application_name",
    "client_addr",
    "client_hostname",
    "client_port",
    "backend_type",
    "state",
    "backend_start",
    "xact_start",
    "query_start",
    "state_change",
    "wait_event_type",
    "wait_event",
    "query",
    "query_id",
    "tls_version",
    "tls_cipher",
    "tls_bits",
    "tls_client_dn",
    "tls_client_serial",
    "tls_issuer_dn",
    "gss_authenticated",
    "gss_principal",
    "gss_encrypted",
    "gss_credentials_delegated",
    "undecoded",
    "monitor",
    "pooler_address",
    "pooler_join",
    "pooler_client",
];

/// After the session fields: the snapshot's `taken_at`, and the age measured from it, because a CSV row is read
/// on its own (a spreadsheet has no top-level object to look `taken_at` up in).
pub const SNAPSHOT_COLUMNS: [&str; 2] = ["taken_at", "age_seconds"];

/// One JSON value as a CSV field: null is empty, arrays are space-separated, strings as they are (timestamps are
/// already RFC 3339, exactly as in the JSON).
fn plain(value: &serde_json::Value) -> String {
    use serde_json::Value;
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(plain).collect::<Vec<_>>().join(" "),
        other => other.to_string(),
    }
}

/// A session's JSON object flattened one level: `{"tls": {"version": ..}}` becomes `tls_version`.
pub fn flatten(value: &serde_json::Value) -> Vec<(String, serde_json::Value)> {
    let mut out = Vec::new();
    if let Some(object) = value.as_object() {
        for (key, value) in object {
            match value.as_object() {
                Some(inner) => out.extend(inner.iter().map(|(k, v)| (format!("{key}_{k}"), v.clone()))),
                None => out.push((key.clone(), value.clone())),
            }
        }
    }
    out
}

pub fn write(snapshot: &Snapshot, fields: CsvFields, out: &mut dyn Write) -> std::io::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(SESSION_COLUMNS.iter().chain(SNAPSHOT_COLUMNS.iter()))?;
    let taken = crate::format::timestamp(snapshot.taken_at);
    for s in &snapshot.sessions {
        let json = serde_json::to_value(s).map_err(std::io::Error::from)?;
        let flat: std::collections::HashMap<String, serde_json::Value> = flatten(&json).into_iter().collect();
        let mut row: Vec<String> = SESSION_COLUMNS
            .iter()
            .map(|column| flat.get(*column).map(plain).unwrap_or_default())
            .collect();
        row.push(taken.clone());
        row.push(s.age_secs(snapshot.taken_at).map(|a| a.to_string()).unwrap_or_default());
        fields.record(&mut w, &row)?;
    }
    w.flush()
}

/// No `connected_now`: an export reads a file, offline, so nothing is connected "now" (the JSON export leaves it
/// out too).
pub const LEDGER_HEADER: [&str; 17] = [
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
    "sources",
];

/// `pgtls ledger --format csv`: one row per client.
pub fn write_ledger(ledger: &Ledger, fields: CsvFields, out: &mut dyn Write) -> std::io::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(LEDGER_HEADER)?;
    for r in ledger.records() {
        let worst = r.worst_class().map(|c| c.label()).unwrap_or("");
        let count = |c| r.count(c).to_string();
        let ciphers: Vec<String> = r.ciphers.keys().map(|c| c.to_string()).collect();
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
                crate::format::timestamp(r.first_seen),
                crate::format::timestamp(r.last_seen),
                r.sources_label().to_string(),
            ],
        )?;
    }
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::GssInfo;

    /// Every field set, so every JSON field appears (none is null or skipped).
    fn full_snapshot() -> Snapshot {
        let mut snap = crate::fixtures::snapshot();
        let at = snap.taken_at - chrono::Duration::microseconds(1_234_567);
        snap.conf_load_time = Some(at);
        for s in &mut snap.sessions {
            s.leader_pid = Some(s.pid - 1);
            s.client_hostname = Some("client.example".into());
            s.backend_start = Some(at);
            s.xact_start = Some(at);
            s.query_start = Some(at);
            s.state_change = Some(at);
            s.wait_event_type = Some("Client".into());
            s.wait_event = Some("ClientRead".into());
            s.query_id = Some(-42);
            s.gss = Some(GssInfo {
                authenticated: true,
                principal: Some("app@EXAMPLE".into()),
                encrypted: false,
                credentials_delegated: Some(false),
            });
            s.undecoded = vec!["client_addr".into(), "query".into()];
            s.pooler = Some(crate::model::PoolerLeg {
                address: "pool:6432".into(),
                join: crate::model::PoolerJoin::Client,
                client: Some(crate::model::ClientLeg {
                    address: Some("10.0.4.2".into()),
                    port: Some(50000),
                    tls: None,
                    class: ConnClass::PlainTcp,
                    application_name: Some("pos".into()),
                    user: Some("shop".into()),
                }),
            });
            if let Some(tls) = &mut s.tls {
                tls.client_dn = Some("/CN=app".into());
                tls.client_serial = Some("4660".into());
                tls.issuer_dn = Some("/CN=ca".into());
            }
        }
        snap
    }

    #[test]
    fn the_columns_are_the_json_session_fields_flattened() {
        let snap = full_snapshot();
        let session = snap.sessions.iter().find(|s| s.tls.is_some()).unwrap();
        let mut from_json: Vec<String> = flatten(&serde_json::to_value(session).unwrap())
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        from_json.sort();
        let mut columns: Vec<String> = SESSION_COLUMNS.iter().map(|c| c.to_string()).collect();
        columns.sort();
        assert_eq!(
            columns, from_json,
            "a session field was added or renamed: update SESSION_COLUMNS and docs/json.md"
        );
    }

    #[test]
    fn every_value_is_the_json_value_with_the_same_timestamps() {
        let snap = full_snapshot();
        let mut out = Vec::new();
        write(&snap, CsvFields::Raw, &mut out).unwrap();
        let mut reader = csv::Reader::from_reader(out.as_slice());
        let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_string).collect();
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        let json = serde_json::to_value(&snap).unwrap();
        assert_eq!(rows.len(), snap.sessions.len());
        for (session, row) in json["sessions"].as_array().unwrap().iter().zip(&rows) {
            for (key, value) in flatten(session) {
                match header.iter().position(|h| *h == key) {
                    Some(i) => assert_eq!(row[i], plain(&value), "{key}"),
                    // `"tls": null` as a whole: its flattened columns are empty.
                    None => {
                        assert!(value.is_null(), "{key}");
                        let prefix = format!("{key}_");
                        let mut cells = header.iter().zip(row.iter()).filter(|(h, _)| h.starts_with(&prefix));
                        assert!(cells.clone().count() > 0 && cells.all(|(_, c)| c.is_empty()), "{key}");
                    }
                }
            }
            let taken = header.iter().position(|h| h == "taken_at").unwrap();
            assert_eq!(Some(&row[taken]), json["taken_at"].as_str());
            let age = header.iter().position(|h| h == "age_seconds").unwrap();
            assert_eq!(&row[age], "1");
        }
        let undecoded = header.iter().position(|h| h == "undecoded").unwrap();
        assert_eq!(&rows[0][undecoded], "client_addr query");
    }

    #[test]
    fn the_ledger_export_says_poll_plus_log_and_nothing_about_now() {
        use crate::analysis::ledger::{ClientKey, Entry, Source};
        let mut ledger = Ledger::default();
        let at = crate::fixtures::snapshot().taken_at;
        for source in [Source::Log, Source::Poll] {
            ledger.apply(&Entry::Session {
                at,
                key: ClientKey {
                    user: "reports".into(),
                    database: "dwh".into(),
                    application: "cron-report".into(),
                    address: "10.0.2.9".into(),
                    pooler: None,
                },
                class: ConnClass::Tls12,
                tls_version: Some("TLSv1.2".into()),
                cipher: Some("ECDHE-RSA-AES256-GCM-SHA384".into()),
                source,
                address: Some("10.0.2.9".into()),
                replication: false,
                hba_line: None,
                pid: None,
            });
        }
        let mut out = Vec::new();
        write_ledger(&ledger, CsvFields::Spreadsheet, &mut out).unwrap();
        let mut reader = csv::Reader::from_reader(out.as_slice());
        let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_string).collect();
        assert!(!header.iter().any(|h| h == "connected_now"), "{header:?}");
        let row = reader.records().next().unwrap().unwrap();
        let cell = |name: &str| row[header.iter().position(|h| h == name).unwrap()].to_string();
        assert_eq!(cell("sources"), "poll+log");
        assert_eq!(cell("first_seen"), crate::format::timestamp(at));
    }
}
