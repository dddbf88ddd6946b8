//! `pgtls serve`: the per-target engine of the dashboard (collector + history service), run for many servers at
//! once, exported for Prometheus. See [`engine`] for one target, [`fleet`] for the set, [`http`] and [`metrics`]
//! for what is served.

pub mod api;
pub mod engine;
pub mod fleet;
pub mod http;
pub mod metrics;
pub mod webconfig;
