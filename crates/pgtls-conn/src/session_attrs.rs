//! target_session_attrs: libpq's checks on a fresh connection, with its wording when a server does not fit.

use tokio_postgres::{Client, SimpleQueryMessage};

use crate::error::Cause;
use crate::rules::TargetSessionAttrs;

/// One text value from a simple query; simple queries work on every server and pooler console.
async fn one_value(client: &Client, sql: &str) -> Result<String, Cause> {
    let failed = || Cause::SessionAttrs(format!("\"{sql}\" failed"));
    let messages = client.simple_query(sql).await.map_err(|_| failed())?;
    messages
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
            _ => None,
        })
        .ok_or_else(failed)
}

/// Ok when the server suits `wanted`; otherwise libpq's reason, and the caller moves to the next host.
pub async fn check(client: &Client, wanted: TargetSessionAttrs) -> Result<(), Cause> {
    let reason = match wanted {
        TargetSessionAttrs::Any | TargetSessionAttrs::PreferStandby => return Ok(()),
        TargetSessionAttrs::ReadWrite | TargetSessionAttrs::ReadOnly => {
            let read_only = one_value(client, "SHOW transaction_read_only").await? == "on";
            match (wanted, read_only) {
                (TargetSessionAttrs::ReadWrite, true) => "session is read-only",
                (TargetSessionAttrs::ReadOnly, false) => "session is not read-only",
                _ => return Ok(()),
            }
        }
        TargetSessionAttrs::Primary | TargetSessionAttrs::Standby => {
            let in_recovery = one_value(client, "SELECT pg_catalog.pg_is_in_recovery()").await? == "t";
            match (wanted, in_recovery) {
                (TargetSessionAttrs::Primary, true) => "server is in hot standby mode",
                (TargetSessionAttrs::Standby, false) => "server is not in hot standby mode",
                _ => return Ok(()),
            }
        }
    };
    Err(Cause::SessionAttrs(reason.to_string()))
}
