//! The servers watched by `serve` or a dashboard over several servers: one [`Engine`] each, started, replaced and stopped as the targets file changes,
//! and restarted (with a line on stderr) if one's task ever ends.

use std::sync::Mutex;

use crate::collect::engine::{self, Engine, EngineOptions, SharedState};
use crate::conn::params::ConnParams;
use crate::targets::TargetEntry;

/// A target ready to start: its entry, its resolved connection and its name.
pub struct Planned {
    pub entry: TargetEntry,
    pub params: ConnParams,
    pub name: String,
}

pub struct Fleet {
    engines: Mutex<Vec<Engine>>,
    options: EngineOptions,
}

impl Fleet {
    pub fn new(options: EngineOptions) -> Fleet {
        Fleet {
            engines: Mutex::new(Vec::new()),
            options,
        }
    }

    fn engines(&self) -> std::sync::MutexGuard<'_, Vec<Engine>> {
        self.engines.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every target's state, in the targets file's order.
    pub fn states(&self) -> Vec<SharedState> {
        self.engines().iter().map(|e| e.state.clone()).collect()
    }

    /// One row per target, as the Servers screen and `/api/v1/targets` show them, in the targets file's order.
    pub fn rows(&self) -> Vec<crate::analysis::fleet::ServerRow> {
        self.states()
            .iter()
            .map(|shared| {
                let s = shared.lock();
                let mut row = crate::analysis::fleet::row(
                    &s.name,
                    s.up,
                    s.last_error.as_deref(),
                    s.snapshot.as_deref(),
                    s.history.as_deref().map(|h| h.whatif.as_slice()),
                    s.probe.as_deref().map(crate::probe::ProbeReport::certificate),
                );
                // The log and the ledger file beside the poll and the poolers, as /metrics lists them.
                row.sources = s.sources();
                row
            })
            .collect()
    }

    /// A request for `name`'s client records, answered by its ledger (`None`: no such target).
    pub fn clients(&self, name: &str) -> Option<engine::ClientsRequest> {
        self.engines()
            .iter()
            .find(|e| e.name == name)
            .map(Engine::clients_request)
    }

    pub fn state(&self, name: &str) -> Option<SharedState> {
        self.engines().iter().find(|e| e.name == name).map(|e| e.state.clone())
    }

    /// A dashboard opens on `name`: its events from now on, and where its commands go.
    pub fn subscribe(
        &self,
        name: &str,
    ) -> Option<(
        tokio::sync::mpsc::Receiver<crate::collect::poller::PollerEvent>,
        tokio::sync::mpsc::UnboundedSender<crate::collect::poller::PollerCommand>,
    )> {
        let engines = self.engines();
        let engine = engines.iter().find(|e| e.name == name)?;
        Some((engine.subscribe(), engine.commands.clone()))
    }

    pub fn unsubscribe(&self, name: &str) {
        if let Some(engine) = self.engines().iter().find(|e| e.name == name) {
            engine.unsubscribe();
        }
    }

    /// Send `command` to every target's poller (`r`: refresh all).
    pub fn broadcast(&self, command: crate::collect::poller::PollerCommand) {
        for engine in self.engines().iter() {
            let _ = engine.commands.send(command);
        }
    }

    pub fn names(&self) -> Vec<String> {
        self.engines().iter().map(|e| e.name.clone()).collect()
    }

    /// Make the running set equal to `plan`: unchanged targets keep running (and their history), changed ones are
    /// restarted, removed ones stopped. Returns one line per change. A target whose engine cannot start yet stays
    /// listed, down, with the reason (see [`engine::start_with`]).
    pub fn apply(&self, plan: Vec<Planned>) -> Vec<String> {
        let mut notes = Vec::new();
        let mut old: Vec<Engine> = std::mem::take(&mut *self.engines());
        let mut next = Vec::with_capacity(plan.len());
        for p in plan {
            if let Some(i) = old.iter().position(|e| e.name == p.name && e.entry == p.entry) {
                next.push(old.swap_remove(i));
                continue;
            }
            let changed = old.iter().any(|e| e.name == p.name);
            // Dropping the old engine stops its tasks; its successor waits for the ledger they release.
            old.retain(|e| e.name != p.name);
            let quoted = crate::conn::text::quoted(&p.name);
            notes.push(format!(
                "target {quoted} {}",
                if changed { "changed: restarted" } else { "added" }
            ));
            next.push(engine::start(p.entry, p.params, p.name, &self.options));
        }
        for gone in &old {
            notes.push(format!("target {} removed", crate::conn::text::quoted(&gone.name)));
        }
        drop(old);
        *self.engines() = next;
        notes
    }

    /// Engines whose task ended: one that could not start is tried again quietly (it said why once); any other
    /// (it never should end) is reported and started again from its entry. Each keeps its place and its state.
    pub async fn check_tasks(&self) -> Vec<String> {
        use futures_util::FutureExt;
        let mut notes = Vec::new();
        let mut engines = self.engines();
        for engine in engines.iter_mut() {
            if !engine.task.is_finished() {
                continue;
            }
            // Finished, so its outcome is there without waiting.
            let Some(outcome) = (&mut engine.task).now_or_never() else {
                continue;
            };
            let quoted = crate::conn::text::quoted(&engine.name);
            let start_failed = engine.state.lock().start_error.is_some();
            let why = match outcome {
                Ok(()) if start_failed => None,
                Ok(()) => Some("it stopped".to_string()),
                Err(e) if e.is_panic() => Some("it panicked".to_string()),
                Err(e) => Some(format!("it was cancelled: {e}")),
            };
            let env = crate::conn::params::Environment::from_process();
            match engine::resolve_entry(&engine.entry, &env) {
                Ok(params) => {
                    let restarted = engine::start_with(
                        engine.entry.clone(),
                        params,
                        engine.name.clone(),
                        &self.options,
                        engine.state.clone(),
                    );
                    *engine = restarted;
                    if let Some(why) = why {
                        notes.push(format!("target {quoted}: its task ended ({why}); restarted"));
                    }
                }
                Err(e) => {
                    // The state holds what the user reads (the Servers screen, /api/v1/targets).
                    let e = e.to_string();
                    let mut s = engine.state.lock();
                    if s.start_error.as_deref() != Some(e.as_str()) {
                        notes.push(format!("target {quoted}: its task ended; cannot restart: {e}"));
                    }
                    s.up = false;
                    s.last_error = Some(e.clone());
                    s.start_error = Some(e);
                    drop(s);
                    // A handle that has not yet been awaited, so the next check tries again.
                    engine.task = tokio::spawn(async {});
                }
            }
        }
        notes
    }
}
