//! The TCP connections this process holds, by their two ends, from the moment the TCP connection is made until it
//! closes. A server lists a backend (pg_stat_activity, with our local address as its client address and port) before
//! the start-up has told us its pid, so a monitor watching the same server from another connection of this process
//! can only tell it is ours by its address: this is where it asks.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};

/// (our local address, the server's address) -> how many connections hold that pair (1 but for an odd kernel).
static HELD: Mutex<BTreeMap<(SocketAddr, SocketAddr), usize>> = Mutex::new(BTreeMap::new());

/// One connection's place in the list; dropped with the connection.
#[derive(Debug)]
pub struct Held {
    ends: (SocketAddr, SocketAddr),
}

impl Held {
    pub fn new(local: SocketAddr, peer: SocketAddr) -> Held {
        let ends = (local, peer);
        *HELD
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(ends)
            .or_default() += 1;
        Held { ends }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut held = HELD.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = held.get_mut(&self.ends) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.ends);
            }
        }
    }
}

/// Does this process hold a connection from `client` (as the server saw it) to `server`? The pair, not the port
/// alone: the kernel may give one local port to connections to different servers.
pub fn is_ours(client: SocketAddr, server: SocketAddr) -> bool {
    HELD.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .contains_key(&(client, server))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pair_is_ours_while_held_and_only_that_pair() {
        let local: SocketAddr = "127.0.0.1:40001".parse().unwrap();
        let server: SocketAddr = "127.0.0.1:5432".parse().unwrap();
        let other: SocketAddr = "127.0.0.1:5433".parse().unwrap();
        assert!(!is_ours(local, server));
        let held = Held::new(local, server);
        assert!(is_ours(local, server));
        assert!(
            !is_ours(local, other),
            "the same local port to another server is not this connection"
        );
        drop(held);
        assert!(!is_ours(local, server));
    }
}
