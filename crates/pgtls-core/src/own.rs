//! Backends this process opened for itself besides the monitor's own (the demo's set-up connections), so the
//! collector can mark them as pgtls's own by pid when it builds a snapshot.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Shared between whoever opens helper connections (the lab) and the collector that marks them.
#[derive(Debug, Clone, Default)]
pub struct OwnPids(Arc<Mutex<BTreeMap<i32, Helper>>>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Helper {
    Open,
    /// Closed by us, but the server may list the backend for a moment longer: kept until a poll no longer sees
    /// it, so a lingering set-up session is never counted as a client, and its pid, once free, is not ours.
    Closing,
}

impl OwnPids {
    pub fn opened(&self, pid: i32) {
        self.with(|pids| {
            pids.insert(pid, Helper::Open);
        });
    }

    pub fn closed(&self, pid: i32) {
        self.with(|pids| {
            if let Some(state) = pids.get_mut(&pid) {
                *state = Helper::Closing;
            }
        });
    }

    /// The helper pids to mark in a snapshot whose rows `listed` tells; closed helpers no longer listed are
    /// forgotten.
    pub fn current(&self, listed: impl Fn(i32) -> bool) -> Vec<i32> {
        self.with(|pids| {
            pids.retain(|pid, state| *state == Helper::Open || listed(*pid));
            pids.keys().copied().collect()
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut BTreeMap<i32, Helper>) -> T) -> T {
        // A panic elsewhere while holding the lock leaves a map that is still consistent.
        let mut guard = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut guard)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_helper_stays_own_while_the_server_still_lists_it() {
        let own = OwnPids::default();
        own.opened(10);
        own.opened(11);
        own.closed(10);
        let listing = |pids: &'static [i32]| move |pid| pids.contains(&pid);
        assert_eq!(own.current(listing(&[10, 11, 12])), vec![10, 11]);
        assert_eq!(
            own.current(listing(&[11, 12])),
            vec![11],
            "gone from the server: forgotten"
        );
        assert_eq!(
            own.current(listing(&[10, 11])),
            vec![11],
            "a new backend with the old pid is not ours"
        );
    }
}
