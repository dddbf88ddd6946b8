//! Pure functions over snapshots: alert rules, the what-if for ssl_min_protocol_version and what happened after it.

pub mod after;
pub mod alerts;
pub mod change;
pub mod fleet;
pub mod ledger;
pub mod platform;
pub mod pooler;
pub mod sources;
pub mod whatif;
