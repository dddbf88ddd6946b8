//! The live dashboard: a poller task feeds snapshots to a state that never does I/O; views draw the state.

pub mod app;
pub mod columns;
pub mod components;
pub mod keymap;
pub mod state;
pub mod view;
