//! README screenshots, drawn from fixtures and rasterised offline, so they cannot go stale.
//!
//! `UPDATE_SCREENSHOTS=1 cargo test --test integration screenshots::` rewrites `screenshots/*.png`;
//! otherwise the test fails when a committed image's pixels differ from what the code draws now (decoded pixels are
//! compared, not PNG bytes, so re-encoding or optimising the files is not a failure).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers fail by panicking")]

use std::path::PathBuf;
use std::time::Duration;

use chrono::{Offset as _, Utc};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use pgtls::collect::poller::PollerEvent;
use pgtls::tui::state::{AppState, Input};
use pgtls::tui::view::{self, Theme};
use pgtls::{fixtures, screenshot};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;

const W: u16 = 120;
const H: u16 = 36;

fn state() -> AppState {
    let mut state = AppState::new(
        "pgtls@db.example.internal:5432/postgres".to_string(),
        Duration::from_secs(2),
        fixtures::now(),
    );
    state.set_page(view::table_page(Rect::new(0, 0, W, H)));
    state.handle(Input::Poller {
        event: PollerEvent::Snapshot(std::sync::Arc::new(fixtures::snapshot())),
        at: fixtures::now(),
    });
    state
}

fn press(state: &mut AppState, code: KeyCode) {
    state.handle(Input::Key(KeyEvent::new(code, KeyModifiers::NONE)));
}

fn drawn(state: &AppState) -> Buffer {
    let mut terminal = Terminal::new(TestBackend::new(W, H)).expect("test terminal");
    terminal
        .draw(|f| view::draw_with(f, state, &Theme::color(), Utc.fix()))
        .expect("draw");
    terminal.backend().buffer().clone()
}

fn check(name: &str, drawn: Buffer) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("screenshots")
        .join(format!("{name}.png"));
    if std::env::var_os("UPDATE_SCREENSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, screenshot::png_bytes(&drawn).expect("png")).unwrap();
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    if let Some(difference) = screenshot::pixel_difference(&committed, &screenshot::render_png(&drawn)) {
        panic!(
            "{} is stale: {difference}; regenerate with UPDATE_SCREENSHOTS=1 cargo test --test integration screenshots::",
            path.display()
        );
    }
}

#[test]
fn dashboard() {
    check("dashboard", drawn(&state()));
}

#[test]
fn detail_of_a_tls12_holdout() {
    let mut s = state();
    // Third row: the first TLS 1.2 session under the default worst-first sort.
    press(&mut s, KeyCode::Down);
    press(&mut s, KeyCode::Down);
    press(&mut s, KeyCode::Enter);
    assert_eq!(
        s.detail.as_ref().map(|d| d.session.class),
        Some(pgtls::model::ConnClass::Tls12)
    );
    check("detail", drawn(&s));
}

#[test]
fn help() {
    let mut s = state();
    press(&mut s, KeyCode::Char('?'));
    check("help", drawn(&s));
}

#[test]
fn holdouts_client_drill_down() {
    let mut s = state();
    s.handle(Input::Poller {
        event: PollerEvent::History(Box::new(fixtures::history())),
        at: fixtures::now(),
    });
    press(&mut s, KeyCode::Char('h'));
    // Third row under the default worst-first sort: the TLS 1.2 batch job.
    press(&mut s, KeyCode::Down);
    press(&mut s, KeyCode::Down);
    press(&mut s, KeyCode::Enter);
    assert!(s.holdouts.drill.is_some());
    check("holdouts_client", drawn(&s));
}
