//! What one refresh costs pgtls on the client, without the network: from generated sessions (`fixtures::generated`)
//! through the state update (sort, filter, alerts), the ledger and what-if, to a full frame drawn into a `TestBackend`.
//!
//! `cargo bench --bench refresh` (all groups), `cargo bench --bench refresh -- refresh/` (one group).
//! Sizes: 100, 1,000, 10,000 and 50,000 sessions. The terminal is 160x48, a common full-screen size.

use std::hint::black_box;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Offset as _, Utc};
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use pgtls::analysis::alerts::config::AlertsConfig;
use pgtls::analysis::alerts::{LinkHealth, evaluate_with};
use pgtls::analysis::ledger::Ledger;
use pgtls::collect::poller::{self, PollerEvent};
use pgtls::fixtures;
use pgtls::model::Snapshot;
use pgtls::tui::state::{AppState, Input};
use pgtls::tui::view::{self, Theme};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::layout::Rect;

const SIZES: [usize; 4] = [100, 1_000, 10_000, 50_000];
const WIDTH: u16 = 160;
const HEIGHT: u16 = 48;

fn utc() -> FixedOffset {
    Utc.fix()
}

/// The n-th poll of the same sessions, one second after the previous one.
fn poll(base: &Snapshot, n: i64) -> Snapshot {
    let mut snap = base.clone();
    snap.taken_at += chrono::Duration::seconds(n);
    snap
}

fn at(n: i64) -> DateTime<Utc> {
    fixtures::now() + chrono::Duration::seconds(n)
}

fn terminal() -> Terminal<TestBackend> {
    match Terminal::new(TestBackend::new(WIDTH, HEIGHT)) {
        Ok(t) => t,
        Err(e) => match e {},
    }
}

fn draw(terminal: &mut Terminal<TestBackend>, state: &AppState) {
    let theme = Theme::color();
    match terminal.draw(|f| view::draw_with(f, state, &theme, utc())) {
        Ok(frame) => {
            black_box(frame.area);
        }
        Err(e) => match e {},
    }
}

/// A dashboard that has seen one poll of `base` and drawn it, as after start-up, on the Sessions or Holdouts screen.
fn warmed(base: &Snapshot, holdouts: bool) -> (AppState, Ledger, Terminal<TestBackend>) {
    let mut state = AppState::new("bench@db:5432/postgres".into(), Duration::from_secs(1), fixtures::now());
    state.set_page(view::table_page(Rect::new(0, 0, WIDTH, HEIGHT)));
    if holdouts {
        state.handle(Input::Key(KeyEvent::new(KeyCode::Char('h'), KeyModifiers::NONE)));
    }
    let mut ledger = Ledger::default();
    let mut terminal = terminal();
    let event = poller_event(&mut ledger, poll(base, 0), state.wants_history());
    state.handle(Input::Poller { event, at: at(0) });
    draw(&mut terminal, &state);
    (state, ledger, terminal)
}

/// What the poller task does after each poll, without the round trip: the ledger, the history when the screen
/// shows it, the event.
fn poller_event(ledger: &mut Ledger, snap: Snapshot, with_history: bool) -> PollerEvent {
    ledger.observe_snapshot(&snap, false);
    let history = with_history.then(|| {
        Box::new(poller::history_of(
            ledger,
            &Err(pgtls::model::HbaUnreadable::NotReadYet),
            chrono::Duration::hours(24),
            Vec::new(),
            None,
            pgtls::collect::history::Detail::Full,
        ))
    });
    poller::event_after_poll(std::sync::Arc::new(snap), history)
}

/// One whole refresh as the app loop runs it: poller work, then the state update and a frame; on the Sessions
/// screen (`refresh`) and on the Holdouts screen, which also needs the history (`refresh_holdouts`).
fn bench_refresh(c: &mut Criterion) {
    for (name, holdouts) in [("refresh", false), ("refresh_holdouts", true)] {
        let mut group = c.benchmark_group(name);
        group.sample_size(20).measurement_time(Duration::from_secs(4));
        for n in SIZES {
            let base = fixtures::generated(n);
            let (mut state, mut ledger, mut terminal) = warmed(&base, holdouts);
            let mut k = 0;
            group.throughput(Throughput::Elements(n as u64));
            group.bench_function(BenchmarkId::from_parameter(n), |b| {
                b.iter_batched(
                    || {
                        k += 1;
                        poll(&base, k)
                    },
                    |snap| {
                        let when = snap.taken_at;
                        let event = poller_event(&mut ledger, snap, state.wants_history());
                        state.handle(Input::Poller { event, at: when });
                        draw(&mut terminal, &state);
                    },
                    BatchSize::LargeInput,
                );
            });
        }
        group.finish();
    }
}

/// The pieces of a refresh, to see where the time goes.
fn bench_pieces(c: &mut Criterion) {
    let mut group = c.benchmark_group("pieces");
    group.sample_size(20).measurement_time(Duration::from_secs(3));
    for n in SIZES {
        let base = fixtures::generated(n);
        let (mut state, mut ledger, mut terminal) = warmed(&base, false);
        group.throughput(Throughput::Elements(n as u64));

        // State update for a snapshot: rows rebuilt (quick view, sort), detail, alerts and the alert log.
        group.bench_function(BenchmarkId::new("state_snapshot", n), |b| {
            b.iter_batched(
                || std::sync::Arc::new(poll(&base, 1)),
                |snap| {
                    state.handle(Input::Poller {
                        event: PollerEvent::Snapshot(snap),
                        at: at(1),
                    })
                },
                BatchSize::LargeInput,
            );
        });

        // The same with a filter typed (every column's text is matched).
        let mut filtered = state.clone();
        for key in ['/', 's', 'e', 'r', 'v', 'i', 'c', 'e', '-', '1', '2'] {
            filtered.handle(Input::Key(KeyEvent::new(KeyCode::Char(key), KeyModifiers::NONE)));
        }
        group.bench_function(BenchmarkId::new("state_snapshot_filtered", n), |b| {
            b.iter_batched(
                || std::sync::Arc::new(poll(&base, 1)),
                |snap| {
                    filtered.handle(Input::Poller {
                        event: PollerEvent::Snapshot(snap),
                        at: at(1),
                    })
                },
                BatchSize::LargeInput,
            );
        });

        let snap = poll(&base, 1);
        let config = AlertsConfig::default();
        group.bench_function(BenchmarkId::new("alerts", n), |b| {
            b.iter(|| evaluate_with(Some(black_box(&snap)), &LinkHealth::Up, &config));
        });

        let mut k = 0;
        group.bench_function(BenchmarkId::new("ledger_observe", n), |b| {
            b.iter_batched(
                || {
                    k += 1;
                    poll(&base, k)
                },
                |snap| ledger.observe_snapshot(&snap, false),
                BatchSize::LargeInput,
            );
        });

        group.bench_function(BenchmarkId::new("history", n), |b| {
            b.iter(|| {
                poller::history_of(
                    &ledger,
                    &Err(pgtls::model::HbaUnreadable::NotReadYet),
                    chrono::Duration::hours(24),
                    Vec::new(),
                    None,
                    pgtls::collect::history::Detail::Full,
                )
            });
        });

        // A full frame of the sessions screen. Successive frames differ (the selection moves), as on a refresh.
        group.bench_function(BenchmarkId::new("frame", n), |b| {
            let mut down = true;
            b.iter(|| {
                let code = if down { KeyCode::Down } else { KeyCode::Up };
                down = !down;
                state.handle(Input::Key(KeyEvent::new(code, KeyModifiers::NONE)));
                draw(&mut terminal, &state);
            });
        });
    }
    group.finish();
}

/// Scrolling a big table: a key, then a frame, as the app loop does for each key press.
fn bench_scroll(c: &mut Criterion) {
    let mut group = c.benchmark_group("scroll");
    group.sample_size(20).measurement_time(Duration::from_secs(3));
    for n in [10_000, 50_000] {
        let base = fixtures::generated(n);
        let (mut state, _ledger, mut terminal) = warmed(&base, false);
        for (name, keys) in [
            ("page_down_up", [KeyCode::PageDown, KeyCode::PageUp]),
            ("end_home", [KeyCode::End, KeyCode::Home]),
        ] {
            let mut i = 0;
            group.bench_function(BenchmarkId::new(name, n), |b| {
                b.iter(|| {
                    i += 1;
                    state.handle(Input::Key(KeyEvent::new(keys[i % 2], KeyModifiers::NONE)));
                    draw(&mut terminal, &state);
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_refresh, bench_pieces, bench_scroll);
criterion_main!(benches);
