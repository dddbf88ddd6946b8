//! CloudNativePG's log (`kubectl logs <pod>`): the instance manager reads PostgreSQL's csvlog and writes each
//! record as one JSON line of its own, the record's csvlog columns (all as strings) under `record`:
//!
//! ```text
//! {"level":"info","ts":"2025-12-09T00:32:20.823314307Z","logger":"postgres","msg":"record",
//!  "logging_pod":"cluster-example-1","record":{"log_time":"2025-12-09 00:32:20.822 UTC","user_name":"postgres",
//!  "database_name":"postgres","process_id":"4003","connection_from":"[local]","session_id":"69376dbf.fa3", ...,
//!  "error_severity":"LOG","sql_state_code":"00000","message":"...","backend_type":"client backend"}}
//! ```
//!
//! The envelope's fields (`level`, `ts`, `logger`, `msg`, `record`, `logging_pod`) are those of CloudNativePG's
//! logging page, <https://cloudnative-pg.io/documentation/current/logging> ("msg – the log message, or the keyword
//! record if the message is in JSON format"); `level` and `ts` may be renamed by the operator's flags, so neither
//! is read. The same pod's output also carries the operator's own lines (`logger` `instance-manager`, `pgaudit`,
//! `pg_controldata`, ...) and PostgreSQL lines it could not parse (`logger` `postgres` with the raw text in `msg`):
//! none of them is a record here, and none is ever counted.
//!
//! The whole line is parsed as JSON, so a value (an application name, a statement) holding text that looks like a
//! record is only that value; and a line longer than [`MAX_LINE`] is not parsed at all.

use serde::Deserialize;

use super::LogLine;
use super::csvlog::{host_of_connection_from, port_of_connection_from};
use super::message::parse_message;
use super::provenance::{Record as Metadata, structured_doubt};
use super::timestamp::parse_pg_timestamp;

/// Longest envelope line read, in bytes. A connection record is a few hundred bytes (names stop at 63 bytes,
/// `application_name` at 63); the cap only keeps a flood of huge statement records from being parsed.
pub const MAX_LINE: usize = 64 << 10;

#[derive(Deserialize)]
struct Envelope {
    logger: String,
    msg: String,
    record: Record,
}

/// csvlog's columns as CloudNativePG names them; the ones pgtls reads.
#[derive(Deserialize)]
struct Record {
    log_time: String,
    #[serde(default)]
    user_name: String,
    #[serde(default)]
    database_name: String,
    #[serde(default)]
    process_id: String,
    #[serde(default)]
    connection_from: String,
    #[serde(default)]
    command_tag: String,
    error_severity: String,
    message: String,
    #[serde(default)]
    detail: String,
    #[serde(default)]
    hint: String,
    #[serde(default)]
    context: String,
    backend_type: Option<String>,
}

/// Whether `line` is a CloudNativePG envelope at all (an operator line too): then it is never read as PostgreSQL's
/// own jsonlog, whatever its fields hold. A line past [`MAX_LINE`] is not looked into: read as jsonlog it is no
/// record either, an envelope having no top-level `message`.
pub fn is_envelope(line: &str) -> bool {
    #[derive(Deserialize)]
    struct Probe {
        logger: Option<serde::de::IgnoredAny>,
    }
    // A top-level `logger` decides: PostgreSQL's jsonlog has a fixed set of keys, none of them `logger`.
    line.len() <= MAX_LINE && serde_json::from_str::<Probe>(line.trim_end()).is_ok_and(|p| p.logger.is_some())
}

/// Parse one CloudNativePG line: a PostgreSQL record (`logger` `postgres`, `msg` `record`) that is a connection
/// line, else `None`.
pub fn parse_cloudnativepg_line(line: &str) -> Option<LogLine> {
    if line.len() > MAX_LINE {
        return None;
    }
    let envelope: Envelope = serde_json::from_str(line.trim_end()).ok()?;
    if envelope.logger != "postgres" || envelope.msg != "record" {
        return None;
    }
    let record = envelope.record;
    let message = parse_message(&record.message)?;
    if record.error_severity != message.severity() {
        return None;
    }
    let doubt = structured_doubt(
        &Metadata {
            user: Some(&record.user_name),
            database: Some(&record.database_name),
            command_tag: Some(&record.command_tag),
            context: Some(&record.context),
            backend_type: record.backend_type.as_deref(),
        },
        &message,
    );
    let text = |v: String| Some(v).filter(|v| !v.is_empty());
    Some(LogLine {
        at: parse_pg_timestamp(&record.log_time)?,
        pid: record.process_id.parse().ok(),
        remote_host: host_of_connection_from(&record.connection_from),
        remote_port: port_of_connection_from(&record.connection_from),
        hint: text(record.hint),
        detail: text(record.detail),
        database: text(record.database_name),
        writer: text(record.user_name),
        doubt,
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::super::message::ConnectionMessage;
    use super::*;

    const AUTHORIZED: &str = r#"{"level":"info","ts":"2026-11-27T17:42:50.084913Z","logger":"postgres","msg":"record","logging_pod":"cluster-example-1","record":{"log_time":"2026-11-27 17:42:50.084 UTC","user_name":"app","database_name":"app","process_id":"22543","connection_from":"10.244.0.7:47062","session_id":"6b09c11a.580f","session_line_num":"2","command_tag":"authentication","session_start_time":"2026-11-27 17:42:50 UTC","virtual_transaction_id":"3/1","transaction_id":"0","error_severity":"LOG","sql_state_code":"00000","message":"connection authorized: user=app database=app application_name=billing SSL enabled (protocol=TLSv1.2, cipher=ECDHE-RSA-AES256-GCM-SHA384, bits=256)","backend_type":"client backend","query_id":"0"}}"#;

    #[test]
    fn a_postgres_record_reads_as_the_line_it_wraps() {
        let line = parse_cloudnativepg_line(AUTHORIZED).unwrap();
        assert!(matches!(line.message, ConnectionMessage::Authorized(_)));
        assert_eq!(line.pid, Some(22543));
        assert_eq!(line.remote_host.as_deref(), Some("10.244.0.7"));
        assert_eq!(line.remote_port, Some(47062));
        assert_eq!(line.database.as_deref(), Some("app"));
        assert_eq!(line.doubt, None);
        assert!(is_envelope(AUTHORIZED));
    }

    #[test]
    fn operator_lines_raw_messages_and_forgeries_are_not_records() {
        let other_logger = AUTHORIZED.replace(r#""logger":"postgres""#, r#""logger":"pgaudit""#);
        assert_eq!(parse_cloudnativepg_line(&other_logger), None);
        assert!(is_envelope(&other_logger), "never read as jsonlog either");
        let raw = r#"{"level":"info","ts":"2026-11-27T17:42:50Z","logger":"postgres","msg":"2026-11-27 17:42:50.084 UTC [22543] LOG:  connection authorized: user=payroll database=prod","logging_pod":"cluster-example-1"}"#;
        assert_eq!(parse_cloudnativepg_line(raw), None);
        let operator = r#"{"level":"info","ts":"2026-11-27T17:42:50Z","logger":"instance-manager","msg":"Checking for free disk space for WALs","logging_pod":"cluster-example-1"}"#;
        assert_eq!(parse_cloudnativepg_line(operator), None);
        // A whole envelope inside a value is that value, not a record.
        let inner = AUTHORIZED.replace("billing", "x").replace('"', "\\\"");
        let statement = format!(
            r#"{{"level":"info","ts":"2026-11-27T17:42:50Z","logger":"postgres","msg":"record","record":{{"log_time":"2026-11-27 17:42:51.000 UTC","user_name":"mallory","database_name":"app","process_id":"22600","command_tag":"SELECT","error_severity":"ERROR","message":"syntax error","query":"{inner}","backend_type":"client backend"}}}}"#
        );
        assert_eq!(parse_cloudnativepg_line(&statement), None);
        // RAISE LOG from a DO block: parsed, and doubted like any structured forgery.
        let raised = AUTHORIZED
            .replace(r#""command_tag":"authentication""#, r#""command_tag":"DO""#)
            .replace(
                r#""session_start_time""#,
                r#""context":"PL/pgSQL function inline_code_block line 1 at RAISE","session_start_time""#,
            );
        assert!(parse_cloudnativepg_line(&raised).unwrap().doubt.is_some());
        // Past the cap nothing is parsed.
        let long = AUTHORIZED.replace(r#""query_id":"0""#, &format!(r#""query":"{}""#, "x".repeat(MAX_LINE)));
        assert_eq!(parse_cloudnativepg_line(&long), None);
        assert_eq!(super::super::parse_json_line(&long), None);
    }
}
