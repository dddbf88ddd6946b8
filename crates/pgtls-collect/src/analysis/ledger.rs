//! `pgtls_core::analysis::ledger` (the ledger's logic) plus its file, the [`Journal`], which takes a lock and does
//! I/O and so stays out of the pure layer.

pub use pgtls_core::analysis::ledger::*;

mod file;
pub mod lock;

pub use self::file::{FORMAT_VERSION, Journal, JournalError, LoadReport, OpenError};
