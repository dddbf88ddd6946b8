//! Is a connection line what it says? Any connected user can write a log line that reads like one
//! (`DO $$BEGIN RAISE LOG 'connection authorized: user=payroll ...'; END$$`), so a line is accepted only when
//! its own metadata agrees with a start-up.
//!
//! csvlog and jsonlog (checked here) carry structured fields the writer cannot choose. What PostgreSQL 15 wrote,
//! seen on this machine:
//!
//! | line | user / database | command tag (`ps`) | context | backend type |
//! |---|---|---|---|---|
//! | real `connection received` | empty | empty | empty | `not initialized` |
//! | real `connection authorized` | the user and database it names | `authentication` | empty | `client backend` / `walsender` |
//! | `RAISE LOG` in a DO block | the role that ran it | `DO` (or `SELECT`, ...) | `PL/pgSQL function inline_code_block line 1 at RAISE` | `client backend` |
//! | real `could not accept SSL connection` (13, 15, 18) | empty | empty | empty | `not initialized` |
//! | real pg_hba.conf refusal (FATAL) | the user and database it names (database empty for replication) | `authentication` | empty | `client backend` / `walsender` |
//! | real `connection authenticated` (14+) | the session's user | `authentication` | empty | `client backend` / `walsender` |
//! | real `parameter "..." changed to` | empty | empty | empty | `postmaster` |
//!
//! A FATAL cannot be written by `RAISE` (its levels stop at EXCEPTION, an ERROR), so a forged pg_hba refusal needs
//! C code; the checks are the same all the same.
//!
//! The stderr format has only what `log_line_prefix` prints and is checked in `stream` (prefix user and database,
//! the pid's `connection received` line, a following CONTEXT line). It cannot be made forgery-proof: the user and
//! database names of a failed login are printed raw in the prefix, line breaks included, so a crafted name can
//! print a whole line with a fake prefix at column 0.

use super::message::ConnectionMessage;

/// The metadata of a csvlog or jsonlog record, as far as the checks need it.
#[derive(Debug, Default, Clone, Copy)]
pub struct Record<'a> {
    pub user: Option<&'a str>,
    pub database: Option<&'a str>,
    /// csvlog `command_tag`, jsonlog `ps`.
    pub command_tag: Option<&'a str>,
    pub context: Option<&'a str>,
    /// Absent before PostgreSQL 13's csvlog.
    pub backend_type: Option<&'a str>,
}

/// Why a structured record is not the connection line it reads as; `None` when its metadata agrees.
pub fn structured_doubt(record: &Record, message: &ConnectionMessage) -> Option<String> {
    fn present(v: Option<&str>) -> Option<&str> {
        v.filter(|v| !v.is_empty())
    }
    if let Some(context) = present(record.context) {
        return Some(format!("written from running code, context \"{context}\""));
    }
    match message {
        ConnectionMessage::Received { .. } | ConnectionMessage::HandshakeFailed { .. } => {
            // Nothing is known about the client yet when the server writes this line.
            if let Some(user) = present(record.user) {
                return Some(format!(
                    "written by a session of role \"{user}\", before any client is known"
                ));
            }
            if let Some(tag) = present(record.command_tag) {
                return Some(format!("written while running \"{tag}\", not at a connection's start"));
            }
            // A backend is typed once it has a user; a handshake fails before that (seen on 13, 15 and 18).
            if matches!(message, ConnectionMessage::HandshakeFailed { .. })
                && let Some(kind) = present(record.backend_type)
                && kind != "not initialized"
            {
                return Some(format!("written by a \"{kind}\" process, before any start-up"));
            }
            None
        }
        ConnectionMessage::Authorized(a) => {
            if present(record.command_tag) != Some("authentication") {
                let tag = present(record.command_tag).unwrap_or("nothing");
                return Some(format!("written while running \"{tag}\", not during authentication"));
            }
            if record.user != Some(a.user.as_str()) {
                return Some(format!(
                    "written by role \"{}\", not by the user it names",
                    record.user.unwrap_or_default()
                ));
            }
            if let Some(claimed) = &a.database
                && record.database != Some(claimed.as_str())
            {
                return Some(format!(
                    "written in database \"{}\", not the one it names",
                    record.database.unwrap_or_default()
                ));
            }
            client_backend(record)
        }
        ConnectionMessage::HbaRefused(h) => {
            if present(record.command_tag) != Some("authentication") {
                let tag = present(record.command_tag).unwrap_or("nothing");
                return Some(format!("written while running \"{tag}\", not during authentication"));
            }
            if record.user != Some(h.user.as_str()) {
                return Some(format!(
                    "written by role \"{}\", not by the user it names",
                    record.user.unwrap_or_default()
                ));
            }
            if let Some(claimed) = &h.database
                && record.database != Some(claimed.as_str())
            {
                return Some(format!(
                    "written in database \"{}\", not the one it names",
                    record.database.unwrap_or_default()
                ));
            }
            client_backend(record)
        }
        ConnectionMessage::Authenticated { .. } => {
            if present(record.command_tag) != Some("authentication") {
                let tag = present(record.command_tag).unwrap_or("nothing");
                return Some(format!("written while running \"{tag}\", not during authentication"));
            }
            client_backend(record)
        }
        ConnectionMessage::ParameterChanged { .. } => {
            if let Some(user) = present(record.user) {
                return Some(format!("written by a session of role \"{user}\", not the postmaster"));
            }
            if let Some(kind) = present(record.backend_type)
                && kind != "postmaster"
            {
                return Some(format!("written by a \"{kind}\" process, not the postmaster"));
            }
            None
        }
    }
}

fn client_backend(record: &Record) -> Option<String> {
    match record.backend_type.filter(|v| !v.is_empty()) {
        Some(kind) if !matches!(kind, "client backend" | "walsender") => {
            Some(format!("written by a \"{kind}\" process, not a client backend"))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logsource::parse_message;

    fn msg(text: &str) -> ConnectionMessage {
        parse_message(text).unwrap()
    }

    const FORGED: &str = "connection authorized: user=payroll database=prod application_name=payroll-batch SSL enabled \
                          (protocol=TLSv1, cipher=AES256-SHA, bits=256)";

    #[test]
    fn a_real_start_up_passes() {
        let record = Record {
            user: Some("postgres"),
            database: Some("postgres"),
            command_tag: Some("authentication"),
            context: None,
            backend_type: Some("client backend"),
        };
        let m = msg("connection authorized: user=postgres database=postgres application_name=psql");
        assert_eq!(structured_doubt(&record, &m), None);
        let received = Record {
            backend_type: Some("not initialized"),
            ..Record::default()
        };
        assert_eq!(
            structured_doubt(&received, &msg("connection received: host=::1 port=1")),
            None
        );
    }

    #[test]
    fn raise_log_from_a_do_block_is_refused_on_every_field() {
        let raise = Record {
            user: Some("mallory"),
            database: Some("postgres"),
            command_tag: Some("DO"),
            context: Some("PL/pgSQL function inline_code_block line 1 at RAISE"),
            backend_type: Some("client backend"),
        };
        assert!(structured_doubt(&raise, &msg(FORGED)).unwrap().contains("context"));
        let no_context = Record { context: None, ..raise };
        assert!(structured_doubt(&no_context, &msg(FORGED)).unwrap().contains("\"DO\""));
        let in_authentication = Record {
            command_tag: Some("authentication"),
            ..no_context
        };
        assert!(
            structured_doubt(&in_authentication, &msg(FORGED))
                .unwrap()
                .contains("role \"mallory\"")
        );
        let right_user = Record {
            user: Some("payroll"),
            ..in_authentication
        };
        assert!(
            structured_doubt(&right_user, &msg(FORGED))
                .unwrap()
                .contains("database \"postgres\"")
        );
        let forged_received = Record {
            context: None,
            command_tag: Some("DO"),
            ..raise
        };
        assert!(structured_doubt(&forged_received, &msg("connection received: host=10.9.9.9 port=1")).is_some());
    }
}
