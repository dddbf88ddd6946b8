//! csvlog: one record per log event; quoted fields may hold newlines (multi-line statements).
//! Columns 0..=13 have kept their places from 9.0 through 18: log_time, user_name, database_name,
//! process_id, connection_from, session_id, session_line_num, command_tag, session_start_time,
//! virtual_transaction_id, transaction_id, error_severity, sql_state_code, message.

use std::borrow::Cow;

use super::LogLine;
use super::message::parse_message;
use super::provenance::{Record, structured_doubt};
use super::timestamp::parse_pg_timestamp;

const LOG_TIME: usize = 0;
const USER_NAME: usize = 1;
const DATABASE_NAME: usize = 2;
const PROCESS_ID: usize = 3;
const CONNECTION_FROM: usize = 4;
const ERROR_SEVERITY: usize = 11;
const MESSAGE: usize = 13;
const DETAIL: usize = 14;
const HINT: usize = 15;
/// Also unchanged from 9.0 to 18, and read to check that a connection line comes from a start-up.
const COMMAND_TAG: usize = 7;
const CONTEXT: usize = 18;
/// 13+; the last column read.
const BACKEND_TYPE: usize = 23;

/// Parse one complete csvlog record (embedded newlines included, trailing newline optional).
pub fn parse_csv_record(record: &str) -> Option<LogLine> {
    // Cheap rejection first: connection lines are LOGs (00000, or 08P01 for a failed handshake, or an errno's
    // class 08 code), pg_hba.conf refusals FATALs with 28000.
    if !(record.contains(",LOG,") || record.contains(",FATAL,28000,\""))
        || !(record.contains("connection") || record.contains("pg_hba.conf") || record.contains("parameter \"\""))
    {
        return None;
    }
    let fields = split_fields(record.trim_end_matches(['\n', '\r']), BACKEND_TYPE + 1)?;
    if fields.len() <= MESSAGE {
        return None;
    }
    let message = parse_message(&fields[MESSAGE])?;
    if fields[ERROR_SEVERITY] != message.severity() {
        return None;
    }
    let at = parse_pg_timestamp(&fields[LOG_TIME])?;
    let field = |i: usize| fields.get(i).map(|f| f.as_ref());
    let doubt = structured_doubt(
        &Record {
            user: field(USER_NAME),
            database: field(DATABASE_NAME),
            command_tag: field(COMMAND_TAG),
            context: field(CONTEXT),
            backend_type: field(BACKEND_TYPE),
        },
        &message,
    );
    let text = |i: usize| field(i).filter(|f| !f.is_empty()).map(str::to_string);
    Some(LogLine {
        at,
        pid: fields[PROCESS_ID].parse().ok(),
        remote_host: host_of_connection_from(&fields[CONNECTION_FROM]),
        remote_port: port_of_connection_from(&fields[CONNECTION_FROM]),
        hint: text(HINT),
        detail: text(DETAIL),
        database: Some(fields[DATABASE_NAME].to_string()).filter(|d| !d.is_empty()),
        writer: Some(fields[USER_NAME].to_string()).filter(|u| !u.is_empty()),
        doubt,
        message,
    })
}

/// `connection_from` is `host:port` for TCP (IPv6 hosts contain colons too) and `[local]` for sockets.
pub(super) fn host_of_connection_from(value: &str) -> Option<String> {
    if value.is_empty() {
        return None;
    }
    let host = match value.rsplit_once(':') {
        Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => value,
    };
    Some(host.to_string())
}

pub(super) fn port_of_connection_from(value: &str) -> Option<u16> {
    value.rsplit_once(':').and_then(|(_, port)| port.parse().ok())
}

/// The first `limit` fields of a CSV record, unquoted. `None` if a quoted field is left open.
fn split_fields(record: &str, limit: usize) -> Option<Vec<Cow<'_, str>>> {
    let mut fields = Vec::with_capacity(limit);
    let mut rest = record;
    loop {
        if fields.len() == limit {
            return Some(fields);
        }
        if let Some(quoted) = rest.strip_prefix('"') {
            let mut value: Option<String> = None;
            let mut start = 0;
            let mut i = 0;
            let bytes = quoted.as_bytes();
            loop {
                let close = i + quoted[i..].find('"')?;
                if bytes.get(close + 1) == Some(&b'"') {
                    value.get_or_insert_with(String::new).push_str(&quoted[start..=close]);
                    i = close + 2;
                    start = i;
                    continue;
                }
                let field = match value {
                    Some(mut owned) => {
                        owned.push_str(&quoted[start..close]);
                        Cow::Owned(owned)
                    }
                    None => Cow::Borrowed(&quoted[..close]),
                };
                fields.push(field);
                rest = &quoted[close + 1..];
                break;
            }
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            fields.push(Cow::Borrowed(&rest[..end]));
            rest = &rest[end..];
        }
        match rest.strip_prefix(',') {
            Some(next) => rest = next,
            None => return Some(fields),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::message::ConnectionMessage;
    use super::*;

    const RECEIVED: &str = "2026-11-27 17:42:50.077 UTC,,,22543,\"127.0.0.1:47062\",6b09c11a.580f,1,\"\",\
        2026-11-27 17:42:50 UTC,,0,LOG,00000,\"connection received: host=127.0.0.1 port=47062\",,,,,,,,,\"\",\
        \"not initialized\",,0";
    const AUTHORIZED: &str = "2026-11-27 17:42:50.084 UTC,\"postgres\",\"postgres\",22543,\"127.0.0.1:47062\",\
        6b09c11a.580f,2,\"authentication\",2026-11-27 17:42:50 UTC,3/1,0,LOG,00000,\"connection authorized: \
        user=postgres database=postgres application_name=tls13app SSL enabled (protocol=TLSv1.3, \
        cipher=TLS_AES_256_GCM_SHA384, bits=256)\",,,,,,,,,\"\",\"client backend\",,0";

    #[test]
    fn pg15_records_as_logged() {
        let line = parse_csv_record(RECEIVED).unwrap();
        assert_eq!(line.pid, Some(22543));
        assert_eq!(line.remote_host.as_deref(), Some("127.0.0.1"));
        assert!(matches!(line.message, ConnectionMessage::Received { .. }));
        let line = parse_csv_record(AUTHORIZED).unwrap();
        assert_eq!(line.database.as_deref(), Some("postgres"));
        let ConnectionMessage::Authorized(a) = line.message else {
            panic!("not authorized")
        };
        assert_eq!(a.application_name.as_deref(), Some("tls13app"));
        assert_eq!(a.tls.unwrap().cipher, "TLS_AES_256_GCM_SHA384");
    }

    #[test]
    fn statement_text_cannot_pose_as_a_connection() {
        let record = "2026-11-27 17:42:57.923 UTC,\"postgres\",\"postgres\",22576,\"[local]\",6b09c121.5830,3,\"SELECT\",\
            2026-11-27 17:42:57 UTC,3/16,0,ERROR,42P01,\"relation \"\"nosuch\"\" does not exist\",,,,,,\"select 1 as x,\n\
            \t'x,LOG,00000,\"\"connection authorized: user=evil database=x' as\n y from nosuch\",63,,\"psql\",\"client backend\",,0";
        assert_eq!(parse_csv_record(record), None);
    }

    #[test]
    fn quoting_and_hosts() {
        let fields = split_fields("a,\"b,\"\"c\"\"\nd\",,\"\"", 10).unwrap();
        assert_eq!(fields, vec!["a", "b,\"c\"\nd", "", ""]);
        assert_eq!(split_fields("\"open", 3), None);
        assert_eq!(host_of_connection_from("::1:5432").as_deref(), Some("::1"));
        assert_eq!(host_of_connection_from("[local]").as_deref(), Some("[local]"));
        assert_eq!(host_of_connection_from(""), None);
    }
}
