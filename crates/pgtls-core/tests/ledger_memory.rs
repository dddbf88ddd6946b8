//! What one client costs the ledger in memory, filled the way `pgtls serve` fills a target's ledger: 50 clients
//! (TLS 1.3, TLS 1.2 and plain text), polled for hours, each reconnecting now and then. `serve` keeps one ledger per
//! target, so with 500 targets every byte here counts 25,000 times (issue 28).
//!
//! Run: `cargo test -p pgtls-core --test ledger_memory` (prints the figures; fails past the budget below).
//! Its own test binary without the test harness: the counting allocator sees this thread's allocations only.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use chrono::Duration;
use pgtls_core::analysis::ledger::{KeyFields, Ledger};
use pgtls_core::fixtures;
use pgtls_core::model::{ConnClass, Session, Snapshot};

/// Live heap as requested, and as glibc's malloc holds it (8 bytes of header, 16-byte steps, 32 bytes at least).
static REQUESTED: AtomicIsize = AtomicIsize::new(0);
static HELD: AtomicIsize = AtomicIsize::new(0);
static BLOCKS: AtomicIsize = AtomicIsize::new(0);

struct Counting;

fn held(size: usize) -> isize {
    isize::try_from(((size + 8 + 15) & !15).max(32)).unwrap_or(isize::MAX)
}

fn count(layout: Layout, sign: isize) {
    REQUESTED.fetch_add(
        sign * isize::try_from(layout.size()).unwrap_or(isize::MAX),
        Ordering::Relaxed,
    );
    HELD.fetch_add(sign * held(layout.size()), Ordering::Relaxed);
    BLOCKS.fetch_add(sign, Ordering::Relaxed);
}

#[allow(
    unsafe_code,
    reason = "a global allocator is an unsafe trait; this one forwards to the system's"
)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout, 1);
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(layout, -1);
        // SAFETY: `ptr` came from `System.alloc` with this layout (every allocation goes through `alloc` above).
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[derive(Clone, Copy)]
struct Heap {
    requested: isize,
    held: isize,
    blocks: isize,
}

fn heap() -> Heap {
    Heap {
        requested: REQUESTED.load(Ordering::Relaxed),
        held: HELD.load(Ordering::Relaxed),
        blocks: BLOCKS.load(Ordering::Relaxed),
    }
}

const CLIENTS: usize = 50;

/// Client `i`'s session, as its `n`-th connection: one identity per client, a third each on TLS 1.3, TLS 1.2 and
/// plain text.
fn session(i: usize, n: usize, poll: &Snapshot) -> Session {
    let class = [ConnClass::Tls13, ConnClass::Tls12, ConnClass::PlainTcp][i % 3];
    let pid = i32::try_from(20_000 + n * CLIENTS + i).unwrap_or(i32::MAX);
    let mut s = fixtures::session(pid, class);
    s.user = Some(format!("app_user_{}", i % 7));
    s.database = Some(format!("db{}", i % 3));
    s.application_name = Some(format!("service-{i}"));
    s.client_addr = Some(format!("10.0.{}.{}", i / 200, 10 + i % 200));
    s.backend_start = Some(poll.taken_at);
    s
}

/// A ledger after `polls` polls `every` apart; with `reconnect`, each poll one client reconnects (a new backend), so
/// each client opens a session every `CLIENTS` polls, and the ledger counts them all.
fn fill(polls: usize, every: Duration, reconnect: bool) -> Ledger {
    let mut ledger = Ledger::new(KeyFields::default());
    let mut snap = fixtures::snapshot();
    snap.sessions.retain(|s| s.pid == snap.monitor.pid);
    let monitor = snap.sessions.clone();
    let mut generation = vec![0usize; CLIENTS];
    let mut sessions: Vec<Session> = (0..CLIENTS).map(|i| session(i, 0, &snap)).collect();
    for poll in 0..polls {
        if reconnect {
            let i = poll % CLIENTS;
            generation[i] += 1;
            sessions[i] = session(i, generation[i], &snap);
        }
        snap.sessions = monitor.iter().chain(&sessions).cloned().collect();
        snap.mark_own(&[]);
        drop(ledger.observe_snapshot(&snap, false));
        snap.taken_at += every;
    }
    drop(snap);
    ledger
}

/// The heap one ledger holds once filled, per client.
fn measure(name: &str, polls: usize, every: Duration, reconnect: bool) -> Heap {
    let before = heap();
    let ledger = fill(polls, every, reconnect);
    let after = heap();
    assert_eq!(ledger.len(), CLIENTS);
    let per_client = |a: isize, b: isize| (a - b) / CLIENTS as isize;
    let h = Heap {
        requested: per_client(after.requested, before.requested),
        held: per_client(after.held, before.held),
        blocks: per_client(after.blocks, before.blocks),
    };
    println!(
        "{name}: {} bytes per client held by malloc ({} requested, {} blocks), {} clients, {} sessions",
        h.held,
        h.requested,
        h.blocks,
        CLIENTS,
        ledger.total_sessions()
    );
    drop(ledger);
    h
}

fn main() {
    // The fleet bench's lab: 50 sessions connected throughout, polled every 5 s for 10 minutes.
    let steady = measure("steady sessions, 10 min at 5 s", 120, Duration::seconds(5), false);
    // An hour of 5 s polls (serve's default interval): every client reconnected 14 times.
    let hour = measure("reconnecting, an hour at 5 s", 720, Duration::seconds(5), true);
    // A week at one poll every 5 minutes: each client's hours are full (168 of them).
    let week = measure("reconnecting, a week at 5 min", 2016, Duration::minutes(5), true);
    // The budget: the whole ledger of a 50-client target (its records, index, live sessions and settings), per
    // client. Measured before issue 28's compaction: 3,426, 5,049 and 13,113 bytes; after it 1,040, 1,520 and 6,864
    // (a week was mostly its 168 hours of 32 bytes); with the hours packed (a few bytes each) 1,041, 1,489 and 1,857.
    assert!(steady.held <= 1_200, "{} bytes per client, steady", steady.held);
    assert!(hour.held <= 1_700, "{} bytes per client after an hour", hour.held);
    assert!(week.held <= 2_100, "{} bytes per client after a week", week.held);
}
