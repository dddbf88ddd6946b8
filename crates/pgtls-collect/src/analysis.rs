//! The analysis is `pgtls_core::analysis` (pure: alert rules, the what-if, the after-change, the ledger's logic,
//! pooler verdicts, fleet rows), re-exported here under its old path; only the ledger's file, which locks and
//! writes, is this crate's ([`ledger::Journal`]).

pub use pgtls_core::analysis::*;

pub mod ledger;
