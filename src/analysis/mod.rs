//! Pure functions over snapshots: alert rules and the what-if for ssl_min_protocol_version.

pub mod alerts;
pub mod ledger;
pub mod whatif;
