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
                crate::analysis::fleet::row(
                    &s.name,
                    s.up,
                    s.last_error.as_deref(),
                    s.snapshot.as_deref(),
                    s.history.as_deref().map(|h| h.whatif.as_slice()),
                    s.probe.as_deref().map(crate::probe::ProbeReport::certificate),
                )
            })
            .collect()
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
    /// restarted, removed ones stopped. Returns one line per change, and errors for targets that could not start
    /// (the others run regardless).
    pub fn apply(&self, plan: Vec<Planned>) -> (Vec<String>, Vec<String>) {
        let mut notes = Vec::new();
        let mut errors = Vec::new();
        let mut old: Vec<Engine> = std::mem::take(&mut *self.engines());
        let mut next = Vec::with_capacity(plan.len());
        for p in plan {
            if let Some(i) = old.iter().position(|e| e.name == p.name && e.entry == p.entry) {
                next.push(old.swap_remove(i));
                continue;
            }
            let changed = old.iter().any(|e| e.name == p.name);
            // The old engine (and its ledger journal) must be gone before the new one opens the same ledger file.
            old.retain(|e| e.name != p.name);
            let quoted = crate::conn::text::quoted(&p.name);
            match engine::start(p.entry, p.params, p.name, &self.options) {
                Ok(engine) => {
                    notes.push(format!(
                        "target {quoted} {}",
                        if changed { "changed: restarted" } else { "added" }
                    ));
                    next.push(engine);
                }
                Err(e) => errors.push(e),
            }
        }
        for gone in &old {
            notes.push(format!("target {} removed", crate::conn::text::quoted(&gone.name)));
        }
        drop(old);
        *self.engines() = next;
        (notes, errors)
    }

    /// Engines whose task ended (it never should): each is reported and started again from its entry.
    pub async fn check_tasks(&self) -> Vec<String> {
        let mut ended = Vec::new();
        {
            let mut engines = self.engines();
            let mut i = 0;
            while i < engines.len() {
                if engines[i].task.is_finished() {
                    ended.push(engines.remove(i));
                } else {
                    i += 1;
                }
            }
        }
        let mut notes = Vec::new();
        for mut engine in ended {
            let why = match (&mut engine.task).await {
                Ok(()) => "it stopped".to_string(),
                Err(e) if e.is_panic() => "it panicked".to_string(),
                Err(e) => format!("it was cancelled: {e}"),
            };
            let quoted = crate::conn::text::quoted(&engine.name);
            let entry = engine.entry.clone();
            let name = engine.name.clone();
            drop(engine);
            let env = crate::conn::params::Environment::from_process();
            let restarted = engine::resolve_entry(&entry, &env)
                .and_then(|params| engine::start(entry, params, name, &self.options));
            match restarted {
                Ok(engine) => {
                    self.engines().push(engine);
                    notes.push(format!("target {quoted}: its task ended ({why}); restarted"));
                }
                Err(e) => notes.push(format!(
                    "target {quoted}: its task ended ({why}); could not restart: {e}"
                )),
            }
        }
        notes
    }
}
