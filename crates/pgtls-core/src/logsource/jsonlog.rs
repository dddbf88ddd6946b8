//! jsonlog (PostgreSQL 15+): one JSON object per line; newlines inside values are escaped, so a line is
//! always a whole record. Keys with empty values are left out by the server.

use serde::Deserialize;

use super::LogLine;
use super::message::parse_message;
use super::provenance::{Record as Metadata, structured_doubt};
use super::timestamp::parse_pg_timestamp;

#[derive(Deserialize)]
struct Record {
    timestamp: String,
    pid: Option<i32>,
    remote_host: Option<String>,
    remote_port: Option<u16>,
    user: Option<String>,
    dbname: Option<String>,
    error_severity: Option<String>,
    message: Option<String>,
    /// The command tag; `authentication` while a connection starts.
    ps: Option<String>,
    context: Option<String>,
    backend_type: Option<String>,
    hint: Option<String>,
    detail: Option<String>,
}

/// Parse one jsonlog line, or one line of CloudNativePG's log (its envelope around a csvlog record).
pub fn parse_json_line(line: &str) -> Option<LogLine> {
    if !(line.contains("connection") || line.contains("pg_hba.conf") || line.contains("parameter \\\""))
        || !(line.contains("\"LOG\"") || line.contains("\"FATAL\""))
    {
        return None;
    }
    if super::cloudnativepg::is_envelope(line) {
        return super::cloudnativepg::parse_cloudnativepg_line(line);
    }
    let record: Record = serde_json::from_str(line.trim_end()).ok()?;
    let message = parse_message(record.message.as_deref()?)?;
    if record.error_severity.as_deref() != Some(message.severity()) {
        return None;
    }
    let doubt = structured_doubt(
        &Metadata {
            user: record.user.as_deref(),
            database: record.dbname.as_deref(),
            command_tag: record.ps.as_deref(),
            context: record.context.as_deref(),
            backend_type: record.backend_type.as_deref(),
        },
        &message,
    );
    Some(LogLine {
        at: parse_pg_timestamp(&record.timestamp)?,
        pid: record.pid,
        remote_host: record.remote_host.filter(|h| !h.is_empty()),
        remote_port: record.remote_port,
        hint: record.hint.filter(|h| !h.is_empty()),
        detail: record.detail.filter(|d| !d.is_empty()),
        database: record.dbname.filter(|d| !d.is_empty()),
        writer: record.user.filter(|u| !u.is_empty()),
        doubt,
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::super::message::ConnectionMessage;
    use super::*;

    #[test]
    fn pg15_lines_as_logged() {
        let line = parse_json_line(
            r#"{"timestamp":"2026-11-27 17:42:50.077 UTC","pid":22543,"remote_host":"127.0.0.1","remote_port":47062,"session_id":"6b09c11a.580f","line_num":1,"ps":"","session_start":"2026-11-27 17:42:50 UTC","txid":0,"error_severity":"LOG","message":"connection received: host=127.0.0.1 port=47062","backend_type":"not initialized","query_id":0}"#,
        )
        .unwrap();
        assert_eq!(line.pid, Some(22543));
        assert_eq!(line.remote_host.as_deref(), Some("127.0.0.1"));
        let line = parse_json_line(
            r#"{"timestamp":"2026-11-27 17:42:50.084 UTC","user":"postgres","dbname":"postgres","pid":22543,"remote_host":"127.0.0.1","remote_port":47062,"session_id":"6b09c11a.580f","line_num":2,"ps":"authentication","session_start":"2026-11-27 17:42:50 UTC","vxid":"3/1","txid":0,"error_severity":"LOG","message":"connection authorized: user=postgres database=postgres application_name=tls13app SSL enabled (protocol=TLSv1.3, cipher=TLS_AES_256_GCM_SHA384, bits=256)","backend_type":"client backend","query_id":0}"#,
        )
        .unwrap();
        assert!(matches!(line.message, ConnectionMessage::Authorized(_)));
        assert_eq!(line.database.as_deref(), Some("postgres"));
    }

    #[test]
    fn statements_and_garbage_are_skipped() {
        let statement = r#"{"timestamp":"2026-11-27 17:42:57.923 UTC","pid":22576,"error_severity":"ERROR","message":"relation \"nosuch\" does not exist","statement":"select 'LOG', 'connection authorized: user=evil'\n"}"#;
        assert_eq!(parse_json_line(statement), None);
        assert_eq!(parse_json_line("{\"LOG\" connection "), None);
        assert_eq!(parse_json_line(""), None);
    }
}
