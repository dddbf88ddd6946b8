//! Which connections `serve` keeps when there are too many: idle or slow clients must not starve scrapes.
//!
//! Two caps: [`Limits::per_address`] connections from one address, and [`Limits::total`] over all. A new
//! connection that would pass a cap closes another (of that address for the address cap), in this order:
//!
//! 1. the oldest one that has sent nothing (or whose client has gone),
//! 2. the longest-idle keep-alive one (it has been answered; its client reconnects when it needs to),
//! 3. the oldest one that has started, but not finished, sending its first request.
//!
//! One that has sent a complete request is never closed; only when every connection it could close has, is the
//! new one refused. What a connection has sent is asked of its socket at that moment, not only of its task,
//! which may not have run yet: a scrape whose request already waits in the socket's buffer counts as sent,
//! however fast others connect. A client that connects and sends its request at once (a scrape) is then never
//! the one closed, and holding slots open costs an attacker as much as the slots it takes.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::oneshot;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub total: usize,
    pub per_address: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Accepted; its task has seen nothing from it yet.
    Fresh,
    /// Its first byte arrived (a request or a TLS ClientHello); no complete request head yet.
    Started,
    /// A request is being answered.
    Busy,
    /// Between requests on a kept-alive connection.
    Idle,
}

struct Entry {
    peer: IpAddr,
    phase: Phase,
    /// When it was accepted: of those that have not sent a request, the oldest is closed first.
    opened: Instant,
    /// When its phase began: of the idle ones, the longest idle is closed first.
    since: Instant,
    /// Dropped to close the connection.
    close: Option<oneshot::Sender<()>>,
    /// A second handle on the socket, to ask whether anything arrived that the task has not read yet.
    socket: Option<std::net::TcpStream>,
}

/// What waits in a connection's socket, unread by its task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Waiting {
    /// Nothing (or its client has gone, or there is no handle on the socket to ask).
    Nothing,
    /// The start of something: part of a request head, or TLS records (which cannot be read from outside).
    Part,
    /// A whole request head, up to its blank line.
    RequestHead,
}

/// How much of a socket's waiting bytes is looked at for the end of a request head; a scrape's head is far shorter.
const HEAD_PEEK: usize = 4096;

impl Entry {
    fn waiting(&self) -> Waiting {
        let Some(socket) = &self.socket else {
            return Waiting::Nothing;
        };
        let mut bytes = [0u8; HEAD_PEEK];
        match socket.peek(&mut bytes) {
            Ok(0) | Err(_) => Waiting::Nothing,
            Ok(n) if bytes[..n].windows(4).any(|w| w == b"\r\n\r\n") => Waiting::RequestHead,
            Ok(_) => Waiting::Part,
        }
    }
}

#[derive(Default)]
struct Table {
    next: u64,
    entries: HashMap<u64, Entry>,
}

impl Table {
    /// The connection to close to make room among those `within` picks, in the order of the module's list. Only
    /// connections whose task has not seen a request are asked of their socket.
    fn victim(&self, within: impl Fn(&Entry) -> bool) -> Option<u64> {
        let mut candidates: Vec<(u64, &Entry)> = self
            .entries
            .iter()
            .filter(|(_, e)| e.close.is_some() && within(e))
            .map(|(id, e)| (*id, e))
            .collect();
        candidates.sort_by_key(|(id, e)| (e.opened, *id));
        let unanswered = |e: &Entry| matches!(e.phase, Phase::Fresh | Phase::Started);
        let silent = || {
            candidates
                .iter()
                .find(|(_, e)| e.phase == Phase::Fresh && e.waiting() == Waiting::Nothing)
        };
        let idle = || {
            candidates
                .iter()
                .filter(|(_, e)| e.phase == Phase::Idle)
                .min_by_key(|(id, e)| (e.since, *id))
        };
        let started = || {
            candidates
                .iter()
                .find(|(_, e)| unanswered(e) && e.waiting() != Waiting::RequestHead)
        };
        silent().or_else(idle).or_else(started).map(|(id, _)| *id)
    }

    /// Close a connection: its task sees the sender dropped and ends, dropping the socket. The caps count it no
    /// more from now on (its entry goes when the task ends), so the one that made room for itself can take it.
    fn close(&mut self, id: u64) {
        if let Some(e) = self.entries.get_mut(&id) {
            e.close = None;
            e.socket = None;
        }
    }

    fn open(&self, within: impl Fn(&Entry) -> bool) -> usize {
        self.entries.values().filter(|e| within(e)).count()
    }
}

/// The connections `serve` holds, shared by the accept loop and every connection's task.
#[derive(Clone)]
pub struct Admission {
    limits: Limits,
    table: Arc<Mutex<Table>>,
}

/// Why a new connection was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Every connection of its address, or every connection, is in the middle of a request.
    Full,
}

/// One admitted connection: its phase is reported through it, and dropping it frees the slot.
pub struct Ticket {
    id: u64,
    table: Arc<Mutex<Table>>,
    closed: Option<oneshot::Receiver<()>>,
}

impl Admission {
    pub fn new(limits: Limits) -> Admission {
        Admission {
            limits,
            table: Arc::default(),
        }
    }

    /// Take a new connection from `peer`, closing another to make room if needed. `socket`: a second handle on
    /// its socket (a duplicate file descriptor), through which the admission sees whether it has sent anything.
    pub fn admit(&self, peer: IpAddr, socket: Option<std::net::TcpStream>) -> Result<Ticket, Refused> {
        self.admit_at(peer, socket, Instant::now())
    }

    fn admit_at(&self, peer: IpAddr, socket: Option<std::net::TcpStream>, now: Instant) -> Result<Ticket, Refused> {
        // A peek that blocked would stall every admission; a socket it cannot make non-blocking is not asked.
        let socket = socket.filter(|s| s.set_nonblocking(true).is_ok());
        self.admit_checked(peer, socket, now)
    }

    fn admit_checked(
        &self,
        peer: IpAddr,
        socket: Option<std::net::TcpStream>,
        now: Instant,
    ) -> Result<Ticket, Refused> {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let live = |e: &Entry| e.close.is_some();
        let same = |e: &Entry| e.close.is_some() && e.peer == peer;
        if table.open(same) >= self.limits.per_address {
            let id = table.victim(|e| e.peer == peer).ok_or(Refused::Full)?;
            table.close(id);
        }
        if table.open(live) >= self.limits.total {
            let id = table.victim(|_| true).ok_or(Refused::Full)?;
            table.close(id);
        }
        let (close, closed) = oneshot::channel();
        let id = table.next;
        table.next += 1;
        table.entries.insert(
            id,
            Entry {
                peer,
                phase: Phase::Fresh,
                opened: now,
                since: now,
                close: Some(close),
                socket,
            },
        );
        Ok(Ticket {
            id,
            table: Arc::clone(&self.table),
            closed: Some(closed),
        })
    }

    /// Connections held, closed ones whose tasks have not ended included.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.table.lock().unwrap_or_else(|e| e.into_inner()).entries.len()
    }
}

impl Ticket {
    pub fn set_phase(&self, phase: Phase) {
        self.set_phase_at(phase, Instant::now());
    }

    fn set_phase_at(&self, phase: Phase, now: Instant) {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = table.entries.get_mut(&self.id) {
            e.phase = phase;
            e.since = now;
        }
    }

    pub fn phase(&self) -> Option<Phase> {
        let table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        table.entries.get(&self.id).map(|e| e.phase)
    }

    /// Resolves when the admission closes this connection to make room for another.
    pub fn closed(&mut self) -> oneshot::Receiver<()> {
        self.closed.take().unwrap_or_else(|| oneshot::channel().1)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        table.entries.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1));

    /// `n` ticks after a fixed start, so the order of events is the test's, not the clock's.
    fn at(n: u64) -> Instant {
        static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        *START.get_or_init(Instant::now) + std::time::Duration::from_millis(10 * n)
    }

    fn closed(t: &mut Ticket) -> bool {
        let mut rx = t.closed();
        let gone = matches!(rx.try_recv(), Err(oneshot::error::TryRecvError::Closed));
        t.closed = Some(rx);
        gone
    }

    #[test]
    fn an_address_at_its_cap_closes_its_own_oldest_fresh_connection() {
        let admission = Admission::new(Limits {
            total: 10,
            per_address: 3,
        });
        let mut a: Vec<Ticket> = (0..3).map(|i| admission.admit_at(A, None, at(i)).unwrap()).collect();
        a[0].set_phase_at(Phase::Busy, at(3));
        let b = admission.admit_at(B, None, at(4)).unwrap();
        let a4 = admission.admit_at(A, None, at(5)).unwrap();
        // The busy one stays; the oldest fresh of A goes; B is not touched.
        assert!(!closed(&mut a[0]) && closed(&mut a[1]) && !closed(&mut a[2]));
        assert_eq!(b.phase(), Some(Phase::Fresh));
        // Every connection of A busy: the next one from A is refused, and B can still connect.
        for t in [&a[0], &a[2], &a4] {
            t.set_phase(Phase::Busy);
        }
        assert_eq!(admission.admit(A, None).err(), Some(Refused::Full));
        assert!(admission.admit(B, None).is_ok());
    }

    #[test]
    fn when_every_slot_is_taken_the_oldest_fresh_then_the_longest_idle_goes() {
        let admission = Admission::new(Limits {
            total: 3,
            per_address: 3,
        });
        let mut t: Vec<Ticket> = [A, B, B]
            .iter()
            .zip(0..)
            .map(|(peer, i)| admission.admit_at(*peer, None, at(i)).unwrap())
            .collect();
        t[0].set_phase_at(Phase::Idle, at(3));
        t[1].set_phase_at(Phase::Busy, at(3));
        let new = admission.admit(A, None).unwrap();
        assert!(closed(&mut t[2]), "the only fresh one");
        assert!(!closed(&mut t[0]) && !closed(&mut t[1]));
        drop(t.remove(2));
        new.set_phase(Phase::Busy);
        let newer = admission.admit(A, None).unwrap();
        assert!(closed(&mut t[0]), "then the idle one");
        drop(t.remove(0));
        newer.set_phase(Phase::Busy);
        assert_eq!(admission.admit(B, None).err(), Some(Refused::Full), "all busy");
        assert_eq!(admission.held(), 3);
    }

    /// A connection whose bytes wait in its socket is not taken for a silent one, even before its task has looked:
    /// the silent one goes though it is younger.
    #[test]
    fn a_connection_that_has_sent_something_outranks_a_silent_younger_one() {
        use std::io::Write as _;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let connect = || {
            let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (server, _) = listener.accept().unwrap();
            (client, server)
        };
        let admission = Admission::new(Limits {
            total: 10,
            per_address: 2,
        });
        let (mut talking, talking_server) = connect();
        let (_silent, silent_server) = connect();
        let mut first = admission.admit_at(B, Some(talking_server), at(0)).unwrap();
        let mut second = admission.admit_at(B, Some(silent_server), at(1)).unwrap();
        talking.write_all(b"GET /metrics HTTP/1.1\r\n").unwrap();
        // Loopback delivers at once, but wait for the byte rather than assume it.
        let table = admission.table.lock().unwrap();
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        while table.entries[&first.id].waiting() == Waiting::Nothing {
            assert!(Instant::now() < deadline, "the byte never arrived");
            std::thread::yield_now();
        }
        drop(table);
        let _third = admission.admit_at(B, None, at(2)).unwrap();
        assert!(!closed(&mut first) && closed(&mut second));
    }

    /// A connection whose whole request head waits in its socket has sent a complete request: it is not closed,
    /// though older than one that has sent only part of its head, and when only such are left the new one is
    /// refused.
    #[test]
    fn a_complete_request_waiting_in_the_socket_is_never_closed() {
        use std::io::Write as _;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let connect = || {
            let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (server, _) = listener.accept().unwrap();
            (client, server)
        };
        let admission = Admission::new(Limits {
            total: 10,
            per_address: 2,
        });
        let (mut whole, whole_server) = connect();
        let (mut part, part_server) = connect();
        let mut older = admission.admit_at(B, Some(whole_server), at(0)).unwrap();
        let mut younger = admission.admit_at(B, Some(part_server), at(1)).unwrap();
        whole.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        part.write_all(b"GET /metrics HTTP/1.1\r\nHo").unwrap();
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let table = admission.table.lock().unwrap();
            let seen = [older.id, younger.id].map(|id| table.entries[&id].waiting());
            if seen == [Waiting::RequestHead, Waiting::Part] {
                break;
            }
            assert!(Instant::now() < deadline, "the bytes never arrived: {seen:?}");
            drop(table);
            std::thread::yield_now();
        }
        let newest = admission.admit_at(B, None, at(2)).unwrap();
        assert!(!closed(&mut older) && closed(&mut younger));
        newest.set_phase(Phase::Busy);
        assert_eq!(admission.admit_at(B, None, at(3)).err(), Some(Refused::Full));
    }
}
