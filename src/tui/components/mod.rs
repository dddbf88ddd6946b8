//! One component per screen or pane: its own state, its own key handling and its own unit tests.
//! [`crate::tui::state::AppState`] owns one of each and routes inputs and poller events to them; the views in
//! `tui::view` draw them. Components never do I/O and never read the clock.

pub mod act;
pub mod alerts;
pub mod certificates;
pub mod detail;
pub mod filter;
pub mod help;
pub mod holdouts;
pub mod scroll;
pub mod servers;
pub mod sessions;
pub mod whatif;

pub use scroll::Scroll;
