//! The backends this process holds on each server, so that no poll counts another of pgtls's own connections as a
//! client. A fleet often watches one server several times (different databases, roles or host names for one
//! host:port); each target's poll leaves out the others' monitor sessions in its SQL, so N targets on one server
//! cost N polls of its real sessions, not N², and none of them enters a ledger.
//!
//! A server is known by what it says of itself (its postmaster's start time and port), not by the name or address
//! a target used: two names for one server are the same server, and two servers never share a start time and port.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock, PoisonError};

/// One server, as it describes itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerKey {
    pub postmaster_start: String,
    pub port: String,
}

/// Where a backend is listed: under the address its connection reached at once (so a poll running while another
/// target's start-up queries are under way already leaves it out), and under the server's own identity once the
/// preflight has read it (so the same server reached through another address or name is covered too).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Peer(SocketAddr),
    Server(ServerKey),
}

fn registry() -> &'static Mutex<HashMap<Key, BTreeSet<i32>>> {
    static REGISTRY: OnceLock<Mutex<HashMap<Key, BTreeSet<i32>>>> = OnceLock::new();
    REGISTRY.get_or_init(Mutex::default)
}

fn with<T>(f: impl FnOnce(&mut HashMap<Key, BTreeSet<i32>>) -> T) -> T {
    // A panic elsewhere while holding the lock leaves sets that are still consistent.
    f(&mut registry().lock().unwrap_or_else(PoisonError::into_inner))
}

/// A backend of ours on a server, listed until dropped (when its connection closes).
#[derive(Debug)]
pub struct Registration {
    keys: Vec<Key>,
    pid: i32,
}

impl Registration {
    /// Listed as soon as the connection is made, under the address it reached (none for a Unix socket).
    pub fn connected(peer: Option<SocketAddr>, pid: i32) -> Registration {
        let keys: Vec<Key> = peer.map(Key::Peer).into_iter().collect();
        with(|all| {
            for key in &keys {
                all.entry(key.clone()).or_default().insert(pid);
            }
        });
        Registration { keys, pid }
    }

    /// The server has said who it is: listed under that too.
    pub fn identified(mut self, server: ServerKey) -> Registration {
        let key = Key::Server(server);
        with(|all| {
            all.entry(key.clone()).or_default().insert(self.pid);
        });
        self.keys.push(key);
        self
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Our other backends on this server: what this connection's poll leaves out.
    pub fn others(&self) -> Vec<i32> {
        with(|all| {
            let mut pids = BTreeSet::new();
            for key in &self.keys {
                pids.extend(all.get(key).into_iter().flatten().copied());
            }
            pids.remove(&self.pid);
            pids.into_iter().collect()
        })
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        with(|all| {
            for key in &self.keys {
                if let Some(pids) = all.get_mut(key) {
                    pids.remove(&self.pid);
                    if pids.is_empty() {
                        all.remove(key);
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_connection_leaves_out_the_others_on_its_server_only() {
        let key = |start: &str| ServerKey {
            postmaster_start: start.to_string(),
            port: "5432".to_string(),
        };
        let peer = |port: u16| Some(SocketAddr::from(([192, 0, 2, 1], port)));
        let a = Registration::connected(peer(15432), 10).identified(key("unit-test-1"));
        // Still in its start-up queries: already left out by a poll through the same address.
        let b = Registration::connected(peer(15432), 11);
        assert_eq!(a.others(), vec![11]);
        assert_eq!(b.others(), vec![10]);
        // The same server through another address, once it has said who it is.
        let c = Registration::connected(peer(25432), 12).identified(key("unit-test-1"));
        let elsewhere = Registration::connected(peer(35432), 13).identified(key("unit-test-2"));
        assert_eq!(a.others(), vec![11, 12]);
        assert_eq!(c.others(), vec![10]);
        assert!(
            elsewhere.others().is_empty(),
            "another server's pids are its own business"
        );
        drop(b);
        assert_eq!(a.others(), vec![12], "a closed connection is no longer left out");
    }
}
