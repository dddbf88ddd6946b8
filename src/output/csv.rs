//! One row per session, a header row first; RFC 4180 quoting so spreadsheets open it as is.

use std::io::Write;

use crate::model::{Snapshot, TlsInfo};

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

pub fn write(snapshot: &Snapshot, out: &mut dyn Write) -> std::io::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(HEADER)?;
    let taken = snapshot.taken_at.to_rfc3339();
    for s in &snapshot.sessions {
        let tls = s.tls.as_ref();
        let tls_field = |f: fn(&TlsInfo) -> Option<String>| tls.and_then(f).unwrap_or_default();
        let opt = |v: &Option<String>| v.clone().unwrap_or_default();
        w.write_record([
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
        ])?;
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
