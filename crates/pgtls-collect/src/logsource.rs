//! Connections found in PostgreSQL's own log: the parsing is `pgtls_core::logsource` (re-exported here under its
//! old path); reading is this crate's: [`LogFollower`] follows a file on this machine, [`SqlLogReader`] reads the
//! server's current log file through SQL.

pub use pgtls_core::logsource::*;

mod follow;
mod sql;

pub use self::follow::{LogFollower, Resumed};
pub use self::sql::{LogSqlError, SQL_SOURCE, SqlLogReader};
