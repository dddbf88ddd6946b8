//! `pgtls serve`: the per-target engine ([`crate::collect::engine`], which the dashboard's Servers screen runs too),
//! run for many servers at once and exported for Prometheus. See [`crate::collect::fleet`] for the set, [`http`] and [`metrics`]
//! for what is served.

pub mod admission;
pub mod api;
pub mod auth;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod webconfig;
