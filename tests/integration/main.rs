//! The integration tests, one binary (as ripgrep does): each area a module, one `common` for the lab, tmux and the
//! waits. One binary links once where 33 did, which was most of the test build's time.
//!
//! Run one area with its module path: `cargo test --test integration render::`, `cargo test --test integration
//! versions:: -- --nocapture`.

mod common;

mod act;
mod alert_rules;
mod bundle_cli;
mod check;
mod cli_contract;
mod cloudnativepg;
mod collector;
mod connect_guards;
mod dashboard_e2e;
mod demo;
mod demo_raise;
mod docs_cli;
mod evidence;
mod fleet_detail;
mod full_disk;
mod hostile;
mod lab_lifecycle;
mod layers;
mod log_off;
mod log_parsers_prop;
mod logsource;
mod msrv;
mod odd_rows;
mod pgbouncer;
mod planted;
mod platform;
mod probe;
mod psql_parity;
mod readme;
mod refusals;
mod render;
mod report;
mod restarts;
mod rotation;
mod screenshots;
mod serve;
mod serve_abuse;
mod serve_split;
mod servers_screen;
mod snapshot_cli;
mod stall;
mod test_script;
mod typed_errors;
mod versions;
