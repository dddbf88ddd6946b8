//! libpq-compatible connection layer: parse what psql accepts, then connect with tokio-postgres + native-tls.

pub mod connect;
pub mod conninfo;
pub mod error;
pub mod params;
pub mod pgpass;
pub mod service;
