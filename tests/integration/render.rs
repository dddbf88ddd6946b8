//! Whole-screen render snapshots: fixture states driven through `AppState::handle`, drawn on a `TestBackend`.
//!
//! Accept changes with `INSTA_UPDATE=always cargo test --test integration render::`, then read the `.snap` files: they are the
//! screens a user sees. CI runs with `INSTA_UPDATE=no`.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers fail by panicking")]

use std::collections::HashMap;
use std::time::Duration;

use chrono::{FixedOffset, Offset as _, Utc};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use pgtls::collect::CollectError;
use pgtls::collect::poller::PollerEvent;
use pgtls::conn::error::ConnectError;
use pgtls::conn::params::{Environment, resolve};
use pgtls::fixtures;
use pgtls::model::{ConnClass, Setting, Snapshot, Verification};
use pgtls::tui::state::{AppState, Input, Screen};
use pgtls::tui::view::{self, Theme};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier};

const TARGET: &str = "pgtls@db.example.internal:5432/postgres";
const SIZES: [(u16, u16); 2] = [(120, 36), (80, 24)];

fn new_state(w: u16, h: u16) -> AppState {
    let mut state = AppState::new(TARGET.to_string(), Duration::from_secs(2), fixtures::now());
    // As the app does: the page is known before any key moves the selection.
    state.set_page(view::table_page(Rect::new(0, 0, w, h)));
    state
}

fn feed(state: &mut AppState, snapshot: Snapshot) {
    state.handle(Input::Poller {
        event: PollerEvent::Snapshot(std::sync::Arc::new(snapshot)),
        at: fixtures::now(),
    });
}

fn connected(w: u16, h: u16) -> AppState {
    let mut state = new_state(w, h);
    feed(&mut state, fixtures::snapshot());
    state
}

fn press(state: &mut AppState, code: KeyCode) {
    state.handle(Input::Key(KeyEvent::new(code, KeyModifiers::NONE)));
}

fn type_text(state: &mut AppState, text: &str) {
    for c in text.chars() {
        press(state, KeyCode::Char(c));
    }
}

fn draw(state: &mut AppState, w: u16, h: u16) -> Terminal<TestBackend> {
    view::prepare(state, Rect::new(0, 0, w, h));
    let mut terminal = Terminal::new(TestBackend::new(w, h)).expect("test terminal");
    terminal.draw(|f| view::draw(f, state)).expect("draw");
    terminal
}

fn draw_mono(state: &mut AppState, w: u16, h: u16) -> Terminal<TestBackend> {
    view::prepare(state, Rect::new(0, 0, w, h));
    let mut terminal = Terminal::new(TestBackend::new(w, h)).expect("test terminal");
    terminal
        .draw(|f| view::draw_with(f, state, &Theme::mono(), Utc.fix()))
        .expect("draw");
    terminal
}

fn lines(buffer: &Buffer) -> Vec<String> {
    let area = buffer.area;
    (area.top()..area.bottom())
        .map(|y| {
            (area.left()..area.right())
                .map(|x| buffer[(x, y)].symbol())
                .collect::<String>()
        })
        .collect()
}

/// The lines of the table's data rows, borders included.
fn table_rows(terminal: &Terminal<TestBackend>) -> Vec<String> {
    let buffer = terminal.backend().buffer();
    let rows = view::table_rows_area(buffer.area).expect("fits");
    lines(buffer)[usize::from(rows.y)..usize::from(rows.bottom())].to_vec()
}

fn screen(terminal: &Terminal<TestBackend>) -> String {
    lines(terminal.backend().buffer()).join("\n")
}

/// Every state at both sizes, under one name per state.
fn snapshot_both(name: &str, build: impl Fn(u16, u16) -> AppState) {
    for (w, h) in SIZES {
        let mut state = build(w, h);
        let terminal = draw(&mut state, w, h);
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), terminal.backend());
    }
}

fn lost(state: &mut AppState) {
    let at = fixtures::now() + chrono::Duration::seconds(62);
    state.handle(Input::Poller {
        event: PollerEvent::Failed {
            error: CollectError::Connect(ConnectError::Host {
                endpoint: "server at \"db.example.internal\", port 5432".to_string(),
                cause: pgtls::conn::Cause::Refused,
            }),
            at,
            retry_in: Duration::from_secs(4),
        },
        at,
    });
}

/// A PostgreSQL 18 server with weak and hidden settings, a TLS 1.1 client and an unverified monitor.
fn weak_server() -> Snapshot {
    let mut snap = fixtures::snapshot();
    snap.server.version_num = 180_001;
    snap.server.version = "18.1 (Debian 18.1-1.pgdg13+2)".to_string();
    let set = |v: &str| Setting::Set(v.to_string());
    snap.settings.insert("ssl_min_protocol_version".into(), set("TLSv1.1"));
    snap.settings.insert("ssl_max_protocol_version".into(), set("TLSv1.2"));
    snap.settings.insert("ssl_groups".into(), set("X25519:prime256v1"));
    snap.settings.insert("ssl_tls13_ciphers".into(), Setting::Hidden);
    snap.settings.insert("ssl_ciphers".into(), Setting::Hidden);
    snap.settings.insert("require_secure_transport".into(), set("off"));
    snap.monitor.sslmode = "require".to_string();
    snap.monitor.verification = Verification::None;
    let mut old = fixtures::session(4180, ConnClass::TlsOlder);
    old.user = Some("erp".into());
    old.database = Some("erp".into());
    old.application_name = Some("erp-classic".into());
    snap.sessions.push(old);
    snap
}

// ---- snapshots ------------------------------------------------------------------------------------------------

#[test]
fn loading() {
    snapshot_both("loading", new_state);
}

#[test]
fn connected_view() {
    snapshot_both("connected", connected);
}

/// Behind PgBouncer: the CLIENT LEG column, the plain-text pooled client first (its own leg is the worst), the
/// pooler's settings in the Server TLS box, and the drill-down with both legs.
#[test]
fn behind_pgbouncer() {
    snapshot_both("pooled", |w, h| {
        let mut state = new_state(w, h);
        feed(&mut state, fixtures::snapshot_pooled());
        state
    });
    snapshot_both("pooled_detail", |w, h| {
        let mut state = new_state(w, h);
        feed(&mut state, fixtures::snapshot_pooled());
        // The plain-text rows first: the pooled one after the two direct ones.
        press(&mut state, KeyCode::Down);
        press(&mut state, KeyCode::Down);
        press(&mut state, KeyCode::Enter);
        let detail = state.detail.as_ref().map(|d| d.session.application_name.clone());
        assert_eq!(detail, Some(Some("pos-terminal".to_string())));
        state
    });
}

#[test]
fn disconnected() {
    snapshot_both("disconnected", |w, h| {
        let mut state = connected(w, h);
        lost(&mut state);
        state
    });
}

#[test]
fn disconnected_before_any_data() {
    snapshot_both("disconnected_no_data", |w, h| {
        let mut state = new_state(w, h);
        lost(&mut state);
        state
    });
}

#[test]
fn empty() {
    snapshot_both("empty", |w, h| {
        let mut state = new_state(w, h);
        let mut snap = fixtures::snapshot();
        snap.sessions.clear();
        feed(&mut state, snap);
        state
    });
}

#[test]
fn filtered() {
    snapshot_both("filtered", |w, h| {
        let mut state = connected(w, h);
        press(&mut state, KeyCode::Char('/'));
        type_text(&mut state, "bill");
        state
    });
}

#[test]
fn filter_without_matches() {
    snapshot_both("filtered_none", |w, h| {
        let mut state = connected(w, h);
        press(&mut state, KeyCode::Char('/'));
        type_text(&mut state, "nobody");
        press(&mut state, KeyCode::Enter);
        state
    });
}

#[test]
fn sorted() {
    snapshot_both("sorted_application_desc", |w, h| {
        let mut state = connected(w, h);
        // Back from TLS through STATE, AGE and CLIENT to APPLICATION, then reverse.
        for _ in 0..4 {
            press(&mut state, KeyCode::Char('S'));
        }
        press(&mut state, KeyCode::Char('i'));
        state
    });
}

#[test]
fn the_sort_column_is_always_marked() {
    for (w, h) in SIZES {
        let mut state = connected(w, h);
        let rows_y = usize::from(view::table_rows_area(Rect::new(0, 0, w, h)).expect("fits").y);
        for _ in 0..pgtls::tui::columns::Column::ALL.len() {
            press(&mut state, KeyCode::Char('s'));
            let screen_lines = lines(draw(&mut state, w, h).backend().buffer());
            let (title_line, header_row) = (&screen_lines[rows_y - 2], &screen_lines[rows_y - 1]);
            let title = state.sessions.sort.column.title();
            // In the header row, or named in the table's title when the column does not fit this width.
            assert!(
                header_row.contains('▲') || title_line.contains(&format!("sorted by {title} ▲")),
                "{title} at {w}x{h}:\n{title_line}\n{header_row}"
            );
        }
    }
}

#[test]
fn quick_view_no_tls() {
    snapshot_both("quick_view_no_tls", |w, h| {
        let mut state = connected(w, h);
        press(&mut state, KeyCode::Char('2'));
        state
    });
}

fn detail_of_tls12(w: u16, h: u16) -> AppState {
    let mut state = connected(w, h);
    press(&mut state, KeyCode::Down);
    press(&mut state, KeyCode::Down);
    press(&mut state, KeyCode::Enter);
    state
}

#[test]
fn detail() {
    snapshot_both("detail_tls12", |w, h| {
        let state = detail_of_tls12(w, h);
        assert_eq!(state.detail.as_ref().map(|d| d.session.class), Some(ConnClass::Tls12));
        state
    });
}

#[test]
fn detail_scrolled_to_the_end() {
    snapshot_both("detail_scrolled", |w, h| {
        let mut state = detail_of_tls12(w, h);
        press(&mut state, KeyCode::End);
        state
    });
}

#[test]
fn detail_of_an_ended_session() {
    snapshot_both("detail_ended", |w, h| {
        let mut state = detail_of_tls12(w, h);
        let mut next = fixtures::snapshot();
        next.taken_at += chrono::Duration::seconds(2);
        next.sessions.retain(|s| s.pid != 4131);
        feed(&mut state, next);
        assert!(state.detail.as_ref().is_some_and(|d| d.ended_at.is_some()));
        state
    });
}

#[test]
fn help() {
    snapshot_both("help", |w, h| {
        let mut state = connected(w, h);
        press(&mut state, KeyCode::Char('?'));
        state
    });
}

#[test]
fn paused_with_connection_warnings() {
    snapshot_both("paused_warnings", |w, h| {
        let mut state = new_state(w, h);
        state.handle(Input::Poller {
            event: PollerEvent::Connected {
                warnings: vec![
                    "WARNING: password file \"/home/dba/.pgpass\" has group or world access; permissions should be \
                     u=rw (0600) or less"
                        .to_string(),
                ],
            },
            at: fixtures::now(),
        });
        feed(&mut state, fixtures::snapshot());
        press(&mut state, KeyCode::Char('p'));
        state
    });
}

#[test]
fn weak_server_settings() {
    snapshot_both("weak_server", |w, h| {
        let mut state = new_state(w, h);
        feed(&mut state, weak_server());
        state
    });
}

#[test]
fn too_small() {
    let mut state = connected(39, 9);
    let terminal = draw(&mut state, 39, 9);
    insta::assert_snapshot!("too_small_39x9", terminal.backend());
    assert!(screen(&terminal).contains("too small"));
    assert!(screen(&terminal).contains("39x9"));
}

/// Below 80x24 and down to 40x10 the sessions still show: a line of counts, then PID, application and TLS.
#[test]
fn compact_view_below_the_full_size() {
    for (w, h) in [(60, 20), (79, 30), (120, 12), (40, 10)] {
        let mut state = connected(w, h);
        let terminal = draw(&mut state, w, h);
        let text = screen(&terminal);
        assert!(!text.contains("too small"), "{w}x{h}:\n{text}");
        for needle in ["PID", "APPLICATION", "TLS", "4101"] {
            assert!(text.contains(needle), "{w}x{h}: {needle}\n{text}");
        }
        // The selection moves over the rows shown, as on the full screen.
        assert_eq!(state.sessions.page, usize::from(h) - 3, "{w}x{h}");
    }
    let mut state = connected(60, 20);
    let terminal = draw(&mut state, 60, 20);
    insta::assert_snapshot!("compact_60x20", terminal.backend());
    let mut state = connected(40, 10);
    let terminal = draw(&mut state, 40, 10);
    insta::assert_snapshot!("compact_40x10", terminal.backend());
}

/// Column widths do not jitter: a long value widens its column, and the column stays wide over the next refreshes
/// after the value is gone; only after several narrower refreshes does it give the room back.
#[test]
fn columns_keep_their_width_when_a_long_value_goes() {
    let (w, h) = (200, 36);
    let header = |state: &mut AppState| -> String {
        let text = screen(&draw(state, w, h));
        text.lines()
            .find(|l| l.contains("APPLICATION"))
            .unwrap_or_default()
            .to_string()
    };
    let mut state = connected(w, h);
    let narrow = header(&mut state);
    let mut long = fixtures::snapshot();
    let shown = long
        .sessions
        .iter_mut()
        .find(|s| s.pid == 4107)
        .expect("a client session");
    shown.application_name = Some("a-rather-long-application-name".into());
    feed(&mut state, long);
    let wide = header(&mut state);
    assert_ne!(wide, narrow, "the long name widens its column");
    for n in 1..pgtls::tui::columns::Widths::SHRINK_AFTER {
        let mut later = fixtures::snapshot();
        later.taken_at += chrono::Duration::seconds(i64::from(n));
        feed(&mut state, later);
        assert_eq!(header(&mut state), wide, "refresh {n} after the long name went");
    }
    let mut later = fixtures::snapshot();
    later.taken_at += chrono::Duration::seconds(60);
    feed(&mut state, later);
    assert_eq!(
        header(&mut state),
        narrow,
        "the room goes back after several narrower refreshes"
    );
}

/// What-if's Sources: one line per source with its state; Enter shows what each can miss.
#[test]
fn whatif_sources_are_one_line_each_and_details_on_enter() {
    use pgtls::analysis::sources::SourceNote;
    use pgtls::logsource::{LogFormat, LogSource, limitations};
    let (w, h) = (120, 60);
    let mut history = fixtures::history();
    // The mark comes from each note's state, never its words: the stopped file's text says "on" to prove it.
    history.sources = vec![
        SourceNote::on(pgtls::sources::POLL_LIMITATION),
        SourceNote::on(limitations(&LogSource::File {
            path: "/var/log/postgresql/main.log".into(),
            format: LogFormat::Stderr {
                prefix: "%m [%p] ".into(),
            },
            from_start: false,
        })),
        SourceNote::off(
            "log file /var/log/postgresql/old.log (was on) stopped: permission denied; pass --server-log PATH to read \
             the log file directly",
        ),
        SourceNote::alert("ALERT: 2 forged-looking connection line(s) refused"),
    ];
    let mut state = connected(w, h);
    state.handle(Input::Poller {
        event: PollerEvent::History(Box::new(history)),
        at: fixtures::now(),
    });
    press(&mut state, KeyCode::Char('w'));
    let text = screen(&draw(&mut state, w, h));
    let lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.contains("Sources"))
        .expect("a Sources note");
    let note: Vec<&str> = lines[at + 1..].iter().take(5).copied().collect();
    assert!(note[0].contains("✓ poll: sees every session"), "{note:#?}");
    assert!(
        note[1].contains("✓ log source: file /var/log/postgresql/main.log"),
        "{note:#?}"
    );
    assert!(
        note[2].contains("✖ log file /var/log/postgresql/old.log (was on) stopped"),
        "{note:#?}"
    );
    assert!(note[3].contains("▲ ALERT: 2 forged-looking"), "{note:#?}");
    assert!(note[4].contains("✓ ledger kept in"), "{note:#?}");
    assert!(!text.contains("misses"), "details stay behind Enter:\n{text}");
    press(&mut state, KeyCode::Enter);
    let text = screen(&draw(&mut state, w, h));
    assert!(text.contains("misses connections shorter than the interval"), "{text}");
    press(&mut state, KeyCode::Enter);
    assert!(!screen(&draw(&mut state, w, h)).contains("misses"));
}

/// The demo's psql lines on `J`; elsewhere `J` says why it shows nothing.
#[test]
fn j_shows_the_demos_connection_lines() {
    let (w, h) = (120, 36);
    let mut state = connected(w, h);
    press(&mut state, KeyCode::Char('J'));
    let text = screen(&draw(&mut state, w, h));
    assert!(text.contains("J shows how to reach the demo's server"), "{text}");
    state.join = vec![
        "demo server on 127.0.0.1 port 54321, socket directory /tmp/lab/sock".to_string(),
        "join it over TLS (verified): psql 'host=127.0.0.1 port=54321 sslmode=verify-full'".to_string(),
    ];
    press(&mut state, KeyCode::Char('J'));
    let text = screen(&draw(&mut state, w, h));
    assert!(text.contains("Connect to the demo server"), "{text}");
    assert!(
        text.contains("psql 'host=127.0.0.1 port=54321 sslmode=verify-full'"),
        "{text}"
    );
    press(&mut state, KeyCode::Esc);
    assert!(!screen(&draw(&mut state, w, h)).contains("Connect to the demo server"));
}

#[test]
fn no_color() {
    let mut state = connected(120, 36);
    let terminal = draw_mono(&mut state, 120, 36);
    insta::assert_snapshot!("connected_mono_120x36", terminal.backend());
    let buffer = terminal.backend().buffer();
    for cell in buffer.content() {
        assert_eq!(
            (cell.fg, cell.bg),
            (Color::Reset, Color::Reset),
            "a colour at {:?}",
            cell.symbol()
        );
    }
    // Without colour the selection still shows.
    let rows = view::table_rows_area(buffer.area).expect("fits");
    let selected = state.selected_index().expect("a selection") - state.sessions.offset;
    let y = rows.y + u16::try_from(selected).expect("small");
    assert!(buffer[(rows.x + 3, y)].modifier.contains(Modifier::REVERSED));
}

// ---- behaviour ------------------------------------------------------------------------------------------------

#[test]
fn the_table_shows_every_kind_of_transport() {
    for (w, h) in SIZES {
        let mut state = connected(w, h);
        let text = screen(&draw(&mut state, w, h));
        for needle in ["TLSv1.3", "TLSv1.2", "no TLS", "local", "unknown"] {
            assert!(text.contains(needle), "{needle} missing at {w}x{h}:\n{text}");
        }
        // Markers read without colour: plain text `!`, TLS 1.2 `~`, unknown `?`.
        let rows = table_rows(&draw(&mut state, w, h));
        let marker_of = |needle: &str| rows.iter().find(|l| l.contains(needle)).and_then(|l| l.chars().nth(1));
        assert_eq!(marker_of("grafana"), Some('!'));
        assert_eq!(marker_of("legacy-reports"), Some('~'));
        assert_eq!(marker_of("audit"), Some('?'));
        assert_eq!(marker_of("orders-api"), Some(' '));
    }
}

#[test]
fn class_colours_follow_the_transport() {
    let mut state = connected(120, 36);
    let terminal = draw(&mut state, 120, 36);
    let buffer = terminal.backend().buffer();
    let text = lines(buffer);
    let first_row = usize::from(view::table_rows_area(buffer.area).expect("fits").y);
    let fg_of = |needle: &str, cell_text: &str| {
        let y = first_row + text[first_row..].iter().position(|l| l.contains(needle)).expect("row");
        let x = text[y].find(cell_text).expect("cell");
        // `find` gives bytes; the border and marker before it are multi-byte, so count columns instead.
        let col = text[y][..x].chars().count();
        buffer[(u16::try_from(col).expect("narrow"), u16::try_from(y).expect("short"))].fg
    };
    assert_eq!(fg_of("orders-api", "TLSv1.3"), Color::Green);
    assert_eq!(fg_of("legacy-reports", "TLSv1.2"), Color::Yellow);
    assert_eq!(fg_of("grafana", "no TLS"), Color::LightRed);
}

#[test]
fn client_controlled_text_cannot_reach_the_terminal_raw() {
    // application_name, queries and DNs come from clients: escape sequences must not pass through.
    let mut snap = fixtures::snapshot();
    let evil = &mut snap.sessions[5];
    evil.application_name = Some("evil\x1b]0;pwned\x07\nname".into());
    evil.query = Some("SELECT 1;\x1b[2J\x1b[H -- clear screen\r\n\tFROM t".into());
    if let Some(tls) = evil.tls.as_mut() {
        tls.client_dn = Some("/CN=\x1b[31mred".into());
    }
    let pid = evil.pid;
    for (w, h) in SIZES {
        let mut state = new_state(w, h);
        state.warnings.push("note with a bell\x07 and escape \x1b[5m".into());
        feed(&mut state, snap.clone());
        while state.selected_session().map(|s| s.pid) != Some(pid) {
            press(&mut state, KeyCode::Down);
        }
        let table = screen(&draw(&mut state, w, h));
        press(&mut state, KeyCode::Enter);
        let detail = screen(&draw(&mut state, w, h));
        for text in [table, detail] {
            assert!(text.contains("evil"), "{text}");
            assert!(
                !text.chars().any(|c| c.is_control() && c != '\n'),
                "control character drawn:\n{text}"
            );
        }
    }
}

/// A look-alike of a real role name (a zero-width space inside) is shown with the escape, in the table and in the
/// detail pane, as is every invisible format character in a client-controlled certificate name; drawn raw, a
/// terminal would show `monitor`.
#[test]
fn invisible_format_characters_are_drawn_visibly() {
    let mut snap = fixtures::snapshot();
    let lookalike = &mut snap.sessions[5];
    lookalike.user = Some("moni\u{200b}tor".into());
    lookalike.application_name = Some("app\u{feff}\u{e0041}".into());
    if let Some(tls) = lookalike.tls.as_mut() {
        tls.client_dn = Some("/CN=ad\u{ad}min\u{2060}".into());
    }
    let pid = lookalike.pid;
    let (w, h) = (200, 40);
    let mut state = new_state(w, h);
    feed(&mut state, snap);
    while state.selected_session().map(|s| s.pid) != Some(pid) {
        press(&mut state, KeyCode::Down);
    }
    let table = screen(&draw(&mut state, w, h));
    press(&mut state, KeyCode::Enter);
    let detail = screen(&draw(&mut state, w, h));
    for (what, text) in [("table", &table), ("detail", &detail)] {
        assert!(text.contains("moni\\u{200b}tor"), "{what}:\n{text}");
        assert!(
            !text.chars().any(|c| c != '\n' && pgtls::output::safe::is_unsafe(c)),
            "{what}: an invisible character drawn:\n{text}"
        );
    }
    assert!(table.contains("app\\u{feff}\\u{e0041}"), "{table}");
    // A terminal (and ratatui) would draw the raw DN as `/CN=admin`.
    for text in [&table, &detail] {
        assert!(text.contains("/CN=ad\\u{ad}min\\u{2060}"), "{text}");
    }
}

/// The detail pane's what-if sentence quotes the monitor's own role (for a session it cannot see): a look-alike
/// shows its escape there too.
#[test]
fn the_whatif_sentence_shows_invisible_characters_of_the_monitor_role() {
    let mut snap = fixtures::snapshot();
    snap.monitor.user = "moni\u{200b}tor".into();
    let unknown = snap
        .sessions
        .iter()
        .find(|s| s.class == ConnClass::Unknown)
        .map(|s| s.pid)
        .expect("the fixture has a session the monitor cannot see");
    let (w, h) = (200, 40);
    let mut state = new_state(w, h);
    feed(&mut state, snap);
    while state.selected_session().map(|s| s.pid) != Some(unknown) {
        press(&mut state, KeyCode::Down);
    }
    press(&mut state, KeyCode::Enter);
    let detail = screen(&draw(&mut state, w, h));
    assert!(
        detail.contains("GRANT pg_read_all_stats TO moni\\u{200b}tor;"),
        "{detail}"
    );
    assert!(
        !detail.chars().any(|c| c != '\n' && pgtls::output::safe::is_unsafe(c)),
        "an invisible character drawn:\n{detail}"
    );
}

/// The What-if screen's verdict line quotes a reason built from outside text (a pooler's address): shown escaped.
#[test]
fn the_whatif_verdict_reason_shows_invisible_characters() {
    let (w, h) = (160, 40);
    let mut state = connected(w, h);
    let mut history = fixtures::history();
    history.whatif[0].reason = "the settings of pooler pg\u{200b}bouncer:6432 were not read".into();
    state.handle(Input::Poller {
        event: PollerEvent::History(Box::new(history)),
        at: fixtures::now(),
    });
    press(&mut state, KeyCode::Char('w'));
    let text = screen(&draw(&mut state, w, h));
    assert!(text.contains("pooler pg\\u{200b}bouncer:6432"), "{text}");
}

/// The lab's password goes in through every input the dashboard turns into text: the connection string (a URI,
/// as users paste them) resolved by the real resolver, the name a dashboard opened from the Servers screen gets
/// from it, the resolver's warnings, and a real connection failure made with those parameters. No screen or
/// overlay may then show it.
#[test]
fn the_password_of_the_lab_never_shows() {
    let secret = pgtls::lab::LAB_PASSWORD;
    let home = tempfile::tempdir().expect("home");
    // Nothing listens there once the listener is gone: the connection attempt fails at once, with real text.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a port")
        .port();
    let uri = format!(
        "postgresql://pgtls:{secret}@127.0.0.1:{closed}/postgres?sslmode=require&application_name=pgtls&connect_timeout=2&\
         sslpassword={secret}&sslcert=/nonexistent/client.crt"
    );
    let env = Environment::new(
        HashMap::from([("PGPASSWORD".to_string(), secret.to_string())]),
        Some(home.path().to_path_buf()),
        "tester".to_string(),
    );
    let params = resolve(Some(&uri), &env).expect("the URI resolves");
    assert_eq!(
        params.password.as_deref(),
        Some(secret),
        "the secret is in the parameters"
    );
    assert_eq!(
        params.sslpassword.as_deref(),
        Some(secret),
        "and so is the key's passphrase"
    );
    // The missing client certificate gives the resolver something to warn about, so that text is on screen too.
    assert!(!params.warnings.is_empty());
    let failure = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(pgtls::collect::Collector::connect(&params))
        .err()
        .expect("nothing listens on the closed port");
    for (w, h) in SIZES {
        let mut state = AppState::new(
            pgtls::targets::default_name(&params),
            Duration::from_secs(2),
            fixtures::now(),
        );
        state.set_page(view::table_page(Rect::new(0, 0, w, h)));
        // As the poller reports a connection: its warnings are the resolver's (and .pgpass's).
        state.handle(Input::Poller {
            event: PollerEvent::Connected {
                warnings: params.warnings.clone(),
            },
            at: fixtures::now(),
        });
        let mut snap = fixtures::snapshot();
        snap.monitor.user = params.user.clone();
        feed(&mut state, snap);
        let at = fixtures::now() + chrono::Duration::seconds(62);
        state.handle(Input::Poller {
            event: PollerEvent::Failed {
                error: failure.clone(),
                at,
                retry_in: Duration::from_secs(4),
            },
            at,
        });
        let mut screens = Vec::new();
        for tab in Screen::ALL {
            state.handle(Input::ClickTab(tab));
            screens.push((format!("{tab:?}"), screen(&draw(&mut state, w, h))));
        }
        state.handle(Input::ClickTab(Screen::Sessions));
        press(&mut state, KeyCode::Enter);
        screens.push(("detail".into(), screen(&draw(&mut state, w, h))));
        press(&mut state, KeyCode::Esc);
        for (name, key) in [("help", '?'), ("alerts", 'a')] {
            press(&mut state, KeyCode::Char(key));
            screens.push((name.into(), screen(&draw(&mut state, w, h))));
            press(&mut state, KeyCode::Char(key));
        }
        for (name, text) in &screens {
            assert!(!text.contains(secret), "{name} at {w}x{h} shows the password:\n{text}");
        }
        // The warning and the failure did reach the screen, so the check above looked at the text that carried
        // the inputs.
        assert!(
            screens.iter().any(|(_, text)| text.contains("client certificate file")),
            "the resolver's warning is not on any screen"
        );
        let failure_text = failure.to_string();
        let shown: String = failure_text.chars().take(20).collect();
        assert!(
            screens.iter().any(|(_, text)| text.contains(&shown)),
            "the connection failure is not on any screen: {failure_text}"
        );
    }
}

#[test]
fn layout_is_a_pure_function_of_the_size_and_matches_the_drawing() {
    assert!(view::layout(Rect::new(0, 0, 79, 40)).is_none());
    assert!(view::layout(Rect::new(0, 0, 200, 23)).is_none());
    assert_eq!(view::table_page(Rect::new(0, 0, 60, 20)), 0);
    for (w, h) in [(80, 24), (99, 30), (100, 24), (120, 36), (200, 60)] {
        let area = Rect::new(0, 0, w, h);
        let areas = view::layout(area).expect("fits");
        for r in [
            areas.header,
            areas.posture,
            areas.summary,
            areas.alerts,
            areas.table,
            areas.footer,
        ] {
            assert!(area.contains(r.as_position()) && r.right() <= area.right() && r.bottom() <= area.bottom());
        }
        assert_eq!(areas.footer.bottom(), h);
        assert_eq!(areas.table.bottom(), areas.footer.y);
        assert!(view::table_page(area) >= 7, "{w}x{h}");

        // The first data row sits where `table_rows_area` says, so clicks land on the row the user sees.
        let mut state = new_state(w, h);
        feed(&mut state, fixtures::generated(500));
        press(&mut state, KeyCode::PageDown);
        let terminal = draw(&mut state, w, h);
        let rows = view::table_rows_area(area).expect("fits");
        let screen_rows = lines(terminal.backend().buffer());
        let first_pid = state
            .visible_sessions()
            .nth(state.sessions.offset)
            .expect("row")
            .pid
            .to_string();
        assert!(
            screen_rows[usize::from(rows.y)].contains(&first_pid),
            "{}",
            screen_rows[usize::from(rows.y)]
        );
        let last = state.sessions.offset + usize::from(rows.height) - 1;
        let last_pid = state.visible_sessions().nth(last).expect("row").pid.to_string();
        assert!(screen_rows[usize::from(rows.bottom() - 1)].contains(&last_pid));
    }
}

/// What a frame of 50,000 sessions costs is measured by `cargo bench --bench refresh -- 'pieces/frame/50000'`
/// (and `scroll/end_home/50000` for this jump to the end), not here: a test build on a shared machine has no
/// meaningful clock. This checks what those frames must show.
#[test]
fn fifty_thousand_sessions_draw_the_last_page() {
    let mut state = new_state(120, 36);
    feed(&mut state, fixtures::generated(50_000));
    press(&mut state, KeyCode::End);
    let terminal = draw(&mut state, 120, 36);
    let text = screen(&terminal);
    assert!(text.contains("of 50000"), "{text}");
    assert!(text.contains("50000 sessions"), "{text}");
    let last = state.visible_sessions().last().expect("rows").pid.to_string();
    assert!(
        table_rows(&terminal).iter().any(|row| row.contains(&last)),
        "the last session ({last}) is on screen:\n{text}"
    );
}

#[test]
fn times_follow_the_chosen_time_zone() {
    let state = connected(120, 36);
    let mut terminal = Terminal::new(TestBackend::new(120, 36)).expect("test terminal");
    let berlin = FixedOffset::east_opt(3600).expect("valid offset");
    terminal
        .draw(|f| view::draw_with(f, &state, &Theme::color(), berlin))
        .expect("draw");
    assert!(screen(&terminal).contains("updated 10:30:00"));
}

fn with_history(w: u16, h: u16) -> AppState {
    let mut state = connected(w, h);
    state.handle(Input::Poller {
        event: PollerEvent::History(Box::new(fixtures::history())),
        at: fixtures::now(),
    });
    state
}

#[test]
fn holdouts_screen() {
    snapshot_both("holdouts", |w, h| {
        let mut state = with_history(w, h);
        press(&mut state, KeyCode::Char('h'));
        state
    });
}

#[test]
fn whatif_screens_for_both_targets() {
    snapshot_both("whatif_tls13", |w, h| {
        let mut state = with_history(w, h);
        press(&mut state, KeyCode::Char('w'));
        state
    });
    snapshot_both("whatif_tls_required", |w, h| {
        let mut state = with_history(w, h);
        press(&mut state, KeyCode::Char('w'));
        press(&mut state, KeyCode::Right);
        state
    });
}

/// The What-if screen ends with the detected platform's own steps: on RDS the parameter group, never ALTER SYSTEM.
#[test]
fn whatif_gives_the_detected_platforms_steps() {
    let mut state = new_state(120, 36);
    let mut snap = fixtures::snapshot();
    snap.platform = pgtls::model::Platform {
        name: pgtls::model::PlatformName::Rds,
        evidence: vec!["role rds_superuser exists".into()],
    };
    feed(&mut state, snap);
    state.handle(Input::Poller {
        event: PollerEvent::History(Box::new(fixtures::history())),
        at: fixtures::now(),
    });
    press(&mut state, KeyCode::Char('w'));
    press(&mut state, KeyCode::Char('z'));
    press(&mut state, KeyCode::End);
    let terminal = draw(&mut state, 120, 36);
    let text = screen(&terminal);
    assert!(text.contains("on Amazon RDS"), "{text}");
    assert!(
        text.contains("Set ssl_min_protocol_version in the instance's DB parameter group"),
        "{text}"
    );
    assert!(text.contains("ApplyMethod=immediate"), "{text}");
    assert!(
        !text.contains("ALTER SYSTEM SET") && !text.contains("az postgres"),
        "{text}"
    );
    insta::assert_snapshot!("whatif_rds_steps_120x36", terminal.backend());
}

/// At the narrowest size a step, a command or a note too long for the pane goes on under its own text (a hanging
/// indent), never at the pane's left edge; so does every other list on the screen.
#[test]
fn whatif_wrapped_lines_hang_under_their_own_text_at_80_columns() {
    let mut state = new_state(80, 50);
    let mut snap = fixtures::snapshot();
    snap.platform = pgtls::model::Platform {
        name: pgtls::model::PlatformName::Rds,
        evidence: vec!["role rds_superuser exists".into()],
    };
    feed(&mut state, snap);
    state.handle(Input::Poller {
        event: PollerEvent::History(Box::new(fixtures::history())),
        at: fixtures::now(),
    });
    press(&mut state, KeyCode::Char('w'));
    // The What-if pane alone, as tall as the screen.
    press(&mut state, KeyCode::Char('z'));
    let mut pages = Vec::new();
    for key in [KeyCode::Home, KeyCode::End] {
        press(&mut state, key);
        let terminal = draw(&mut state, 80, 50);
        pages.push(lines(terminal.backend().buffer()));
        insta::assert_snapshot!(
            if key == KeyCode::Home {
                "whatif_hanging_top_80x50"
            } else {
                "whatif_hanging_end_80x50"
            },
            terminal.backend()
        );
    }
    let text = pages.concat().join("\n");
    assert!(text.contains("DB parameter group"), "the steps are on screen: {text}");
    // Inside the pane every row starts with a space: items, headings and continuations alike.
    for row in pages.iter().flatten().filter(|r| r.starts_with('│')) {
        let inside: String = row.chars().skip(1).collect();
        assert!(
            inside.starts_with(' ') || inside.starts_with('▶'),
            "a row at the pane's edge: {row:?}\n{text}"
        );
    }
    // A wrapped step goes on under its title, a wrapped command under the command.
    let end = &pages[1];
    let step = end
        .iter()
        .position(|r| r.contains("1. Only if the instance uses a default DB parameter"))
        .expect("the first step");
    assert!(
        end[step + 1].starts_with("│     ") && !end[step + 1].starts_with("│      "),
        "{text}"
    );
    let command = end
        .iter()
        .position(|r| r.contains("aws rds create-db-parameter-group"))
        .expect("the first command");
    assert!(
        end[command + 1].starts_with("│       ") && !end[command + 1].starts_with("│        "),
        "{text}"
    );
}

/// An hour after TLSv1.3 took effect: the What-if screen reports what followed, and the alerts say what to do.
fn after_the_change(w: u16, h: u16) -> AppState {
    let mut state = new_state(w, h);
    feed(&mut state, fixtures::snapshot_after());
    state.handle(Input::Poller {
        event: PollerEvent::History(Box::new(fixtures::history_after())),
        at: fixtures::now(),
    });
    state
}

#[test]
fn whatif_becomes_the_after_change_report_once_in_force() {
    snapshot_both("after_tls13", |w, h| {
        let mut state = after_the_change(w, h);
        press(&mut state, KeyCode::Char('w'));
        state
    });
    let mut state = after_the_change(120, 36);
    press(&mut state, KeyCode::Char('w'));
    let text = screen(&draw(&mut state, 120, 36));
    assert!(text.contains("Since TLSv1.3 took effect"), "{text}");
    for key in [
        "after_refused",
        "after_downgraded",
        "after_lingering",
        "after_replication",
    ] {
        assert!(
            state.alerts.log.active().any(|a| a.alert.key == key),
            "{key} alert raised"
        );
    }
    let downgrade = state
        .alerts
        .log
        .active()
        .find(|a| a.alert.key == "after_downgraded")
        .expect("downgrade alert");
    assert!(downgrade.alert.detail.contains("line 91"), "{}", downgrade.alert.detail);
    // TLS required is not in force (pg_hba.conf line 91 is `host`): its what-if stays.
    press(&mut state, KeyCode::Right);
    let text = screen(&draw(&mut state, 120, 36));
    assert!(text.contains("Verdict"), "{text}");
    assert!(!text.contains("Since TLS became required"), "{text}");
}

/// Issue 18: each bundle's verdicts, which root anchors alone, why one fails, and the cross-signed intermediate
/// (the bundle's copy the path went through) marked in the chain.
#[test]
fn certificates_screen_shows_bundle_verdicts() {
    let (w, h) = (120, 36);
    let mut state = with_history(w, h);
    press(&mut state, KeyCode::Char('c'));
    state.handle(Input::Poller {
        event: PollerEvent::Probe(Ok(Box::new(fixtures::probe_report()))),
        at: fixtures::now(),
    });
    press(&mut state, KeyCode::Char('z'));
    let top = screen(&draw(&mut state, w, h));
    assert!(
        top.contains("cross-signed: also certified by O=Example, CN=Example Root G2"),
        "{top}"
    );
    assert!(top.contains("new certificate installed, server not reloaded"), "{top}");
    press(&mut state, KeyCode::End);
    let terminal = draw(&mut state, w, h);
    let text = screen(&terminal);
    assert!(
        text.contains("/etc/app/new-root.pem  verify-full ✗  verify-ca ✗"),
        "{text}"
    );
    assert!(text.contains("anchors alone"), "{text}");
    insta::assert_snapshot!("certificates_bundles_120x36", terminal.backend());
}

#[test]
fn certificates_screen_before_and_after_the_probe() {
    snapshot_both("certificates_probing", |w, h| {
        let mut state = with_history(w, h);
        press(&mut state, KeyCode::Char('c'));
        assert_eq!(
            state.certificates.probe,
            pgtls::tui::state::ProbeView::Running,
            "opening the screen starts the probe"
        );
        state
    });
    snapshot_both("certificates", |w, h| {
        let mut state = with_history(w, h);
        press(&mut state, KeyCode::Char('c'));
        state.handle(Input::Poller {
            event: PollerEvent::Probe(Ok(Box::new(fixtures::probe_report()))),
            at: fixtures::now(),
        });
        // Probe findings join the alerts: the leaf expires in 21 days, the bundle pins an intermediate.
        assert!(
            state
                .alerts
                .log
                .active()
                .any(|a| a.alert.detail.contains("expires in 21 days"))
        );
        state
    });
}

#[test]
fn holdouts_filter_and_screen_keys() {
    let mut state = with_history(120, 36);
    press(&mut state, KeyCode::Tab);
    assert_eq!(state.screen, pgtls::tui::state::Screen::Holdouts);
    let history = state.history.as_ref().unwrap();
    let worst: Vec<_> = state
        .holdouts
        .rows
        .iter()
        .map(|i| history.clients[*i].worst_class().unwrap())
        .collect();
    assert_eq!(
        &worst[..4],
        &[
            ConnClass::PlainTcp,
            ConnClass::PlainTcp,
            ConnClass::Tls12,
            ConnClass::Tls12
        ],
        "plain text first, then TLS 1.2 holdouts"
    );
    press(&mut state, KeyCode::Char('/'));
    type_text(&mut state, "billing");
    assert_eq!(state.holdouts.rows.len(), 1);
    press(&mut state, KeyCode::Esc);
    press(&mut state, KeyCode::Esc);
    assert_eq!(
        state.screen,
        pgtls::tui::state::Screen::Sessions,
        "Esc goes back to the sessions"
    );
}

/// A session kept despite a column pgtls could not decode says which, in its drill-down.
#[test]
fn detail_names_undecodable_columns() {
    let mut state = new_state(120, 40);
    let mut snapshot = fixtures::snapshot();
    for s in &mut snapshot.sessions {
        s.undecoded = vec!["backend_start".to_string()];
        s.backend_start = None;
    }
    feed(&mut state, snapshot);
    press(&mut state, KeyCode::Enter);
    let terminal = draw_mono(&mut state, 120, 40);
    let screen = lines(terminal.backend().buffer()).join("\n");
    assert!(screen.contains("Could not decode: backend_start"), "{screen}");
}

// Issue 14, item 1: keys do what they say, at once.

/// Draw, press End, draw, then k: the pane ends on its last line and k moves up from there, not from
/// somewhere past the end.
fn end_then_up(state: &mut AppState, w: u16, h: u16, offset: impl Fn(&AppState) -> (u16, Option<u16>)) -> String {
    draw(state, w, h);
    press(state, KeyCode::End);
    let terminal = draw(state, w, h);
    let (at_end, max) = offset(state);
    assert_eq!(Some(at_end), max, "End stops at the last line ({w}x{h})");
    press(state, KeyCode::Char('j'));
    draw(state, w, h);
    assert_eq!(offset(state).0, at_end, "j past the end does nothing ({w}x{h})");
    press(state, KeyCode::Char('k'));
    draw(state, w, h);
    assert_eq!(offset(state).0, at_end.saturating_sub(1), "k moves at once ({w}x{h})");
    screen(&terminal)
}

const WIDTHS: [(u16, u16); 3] = [(80, 24), (120, 36), (200, 50)];

#[test]
fn scrolling_stops_at_the_end_of_every_pane() {
    for (w, h) in WIDTHS {
        let mut state = with_history(w, h);
        press(&mut state, KeyCode::Char('w'));
        let shown = end_then_up(&mut state, w, h, |s| (s.whatif.scroll.offset(), s.whatif.scroll.max()));
        // The screen ends with the platform's log steps (self-hosted in the fixture): their undo line is last.
        assert!(
            shown.contains("ALTER SYSTEM RESET log_connections"),
            "the last line of What-if is on screen at {w}x{h}:\n{shown}"
        );

        let mut state = detail_of_tls12(w, h);
        let shown = end_then_up(&mut state, w, h, |s| {
            let d = s.detail.as_ref().expect("detail open");
            (d.scroll.offset(), d.scroll.max())
        });
        assert!(shown.contains("Query"), "the query is on screen at {w}x{h}");

        let mut state = with_history(w, h);
        press(&mut state, KeyCode::Char('c'));
        state.handle(Input::Poller {
            event: PollerEvent::Probe(Ok(Box::new(fixtures::probe_report()))),
            at: fixtures::now(),
        });
        end_then_up(&mut state, w, h, |s| {
            (s.certificates.scroll.offset(), s.certificates.scroll.max())
        });
    }
}

#[test]
fn help_at_80x24_scrolls_to_its_last_line() {
    let mut state = connected(80, 24);
    press(&mut state, KeyCode::Char('?'));
    let shown = end_then_up(&mut state, 80, 24, |s| (s.help.scroll.offset(), s.help.scroll.max()));
    let last = shown
        .lines()
        .rev()
        .find(|l| l.contains("lines "))
        .expect("position on the border");
    let of = last
        .split(" of ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("total");
    assert!(
        last.contains(&format!("–{of} of {of}")),
        "the last line is shown: {last}"
    );
    assert!(shown.contains("info"), "the legend's last line is on screen");
}

#[test]
fn the_paused_footer_says_how_to_resume() {
    let mut state = connected(200, 50);
    press(&mut state, KeyCode::Char('p'));
    let footer = screen(&draw(&mut state, 200, 50))
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    assert!(footer.contains("p resume") && footer.contains("PAUSED"), "{footer}");
    press(&mut state, KeyCode::Char('p'));
    let footer = screen(&draw(&mut state, 200, 50))
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    assert!(footer.contains("p pause") && !footer.contains("PAUSED"), "{footer}");
}

#[test]
fn refresh_and_interval_keys_reach_the_poller_even_while_paused() {
    use pgtls::collect::poller::PollerCommand;
    use pgtls::tui::state::Effect;
    let mut state = connected(120, 36);
    press(&mut state, KeyCode::Char('p'));
    let key = |c| Input::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
    assert_eq!(state.handle(key('r')), vec![Effect::Poller(PollerCommand::RefreshNow)]);
    assert_eq!(
        state.handle(key('-')),
        vec![Effect::Poller(PollerCommand::SetInterval(Duration::from_secs(1)))]
    );
    let header = screen(&draw(&mut state, 120, 36));
    assert!(header.contains("every 1s"), "the header shows the new interval at once");
}

#[test]
fn a_second_probe_does_not_start_while_one_runs() {
    use pgtls::collect::poller::PollerCommand;
    use pgtls::tui::state::Effect;
    let mut state = connected(120, 36);
    let key = |c| Input::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
    assert_eq!(state.handle(key('c')), vec![Effect::Poller(PollerCommand::Probe)]);
    assert_eq!(state.handle(key('P')), Vec::new(), "P while probing");
    state.handle(Input::Poller {
        event: PollerEvent::Probe(Err(std::sync::Arc::new(pgtls::probe::ProbeError::NoTcpHost))),
        at: fixtures::now(),
    });
    assert_eq!(state.handle(key('P')), vec![Effect::Poller(PollerCommand::Probe)]);
}

#[test]
fn typing_a_filter_ignores_ctrl_and_alt_chords() {
    let mut state = connected(120, 36);
    press(&mut state, KeyCode::Char('/'));
    type_text(&mut state, "bill");
    state.handle(Input::Key(KeyEvent::new(KeyCode::Char('w'), KeyModifiers::CONTROL)));
    state.handle(Input::Key(KeyEvent::new(KeyCode::Char('x'), KeyModifiers::ALT)));
    assert_eq!(state.filter.text, "bill");
    let footer = screen(&draw(&mut state, 120, 36))
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    assert!(footer.contains("/bill▏"), "{footer}");
}

#[test]
fn clicks_act_on_the_screen_shown_headers_sort_and_tabs_switch() {
    use pgtls::tui::columns::Column;
    use pgtls::tui::state::Screen;
    for (w, h) in WIDTHS {
        let mut state = with_history(w, h);
        let area = Rect::new(0, 0, w, h);
        draw(&mut state, w, h);
        let selected = state.sessions.selected_pid;
        // A click on the Holdouts table moves the Holdouts selection only.
        press(&mut state, KeyCode::Char('h'));
        draw(&mut state, w, h);
        let rows = view::table_rows_area(area).expect("fits");
        let click = view::click(area, &state, rows.x + 2, rows.y + 2).expect("a row");
        state.handle(click);
        assert_eq!(state.holdouts.selected, 2);
        assert_eq!(
            state.sessions.selected_pid, selected,
            "the sessions table did not move ({w}x{h})"
        );
        // A click on the Sessions tab, found on the screen as drawn.
        let terminal = draw(&mut state, w, h);
        let tabs_y = view::layout(area).expect("fits").table.bottom() - 1;
        let tabs_line = &lines(terminal.backend().buffer())[usize::from(tabs_y)];
        let x = tabs_line
            .find("Sessions")
            .map(|b| tabs_line[..b].chars().count())
            .expect("tab drawn");
        let click = view::click(area, &state, x as u16, tabs_y).expect("a tab");
        state.handle(click);
        assert_eq!(state.screen, Screen::Sessions);
        // A click on the PID header sorts by pid; again reverses.
        let terminal = draw(&mut state, w, h);
        let header_y = view::layout(area).expect("fits").table.y + 1;
        let header = &lines(terminal.backend().buffer())[usize::from(header_y)];
        let x = header
            .find("PID")
            .map(|b| header[..b].chars().count())
            .expect("PID header") as u16;
        state.handle(view::click(area, &state, x, header_y).expect("a header"));
        assert_eq!(state.sessions.sort.column, Column::Pid, "{w}x{h}");
        assert!(!state.sessions.sort.descending);
        state.handle(view::click(area, &state, x + 1, header_y).expect("a header"));
        assert!(state.sessions.sort.descending);
        // With the detail open, clicks do nothing to the table under it.
        press(&mut state, KeyCode::Enter);
        assert!(view::click(area, &state, x, header_y).is_none());
    }
}

/// Holdouts headers sort too, by the column drawn under the click, at every width.
#[test]
fn a_click_on_a_holdouts_header_sorts_by_it() {
    use pgtls::tui::components::holdouts::HoldoutColumn;
    for (w, h) in WIDTHS {
        let mut state = with_history(w, h);
        let area = Rect::new(0, 0, w, h);
        press(&mut state, KeyCode::Char('h'));
        let terminal = draw(&mut state, w, h);
        let header_y = view::layout(area).expect("fits").table.y + 1;
        let header = &lines(terminal.backend().buffer())[usize::from(header_y)];
        let x = header
            .find("USER")
            .map(|b| header[..b].chars().count())
            .expect("USER header") as u16;
        state.handle(view::click(area, &state, x, header_y).expect("a header"));
        assert_eq!(state.holdouts.sort.column, HoldoutColumn::User, "{w}x{h}");
        assert!(!state.holdouts.sort.descending);
        state.handle(view::click(area, &state, x + 2, header_y).expect("a header"));
        assert!(state.holdouts.sort.descending, "{w}x{h}");
        let terminal = draw(&mut state, w, h);
        let header = &lines(terminal.backend().buffer())[usize::from(header_y)];
        assert!(header.contains("USER ▼"), "{header}");
    }
}

// Issue 14, item 3: every screen is a full citizen.

fn holdouts(w: u16, h: u16) -> AppState {
    let mut state = with_history(w, h);
    press(&mut state, KeyCode::Char('h'));
    state
}

fn selected_client(state: &AppState) -> Option<pgtls::analysis::ledger::ClientKey> {
    state
        .holdouts
        .selected_record(state.history.as_ref())
        .map(|r| r.key.clone())
}

#[test]
fn holdouts_sort_by_each_column_and_reverse() {
    use pgtls::tui::components::holdouts::HoldoutColumn;
    let (w, h) = (120, 36);
    let mut state = holdouts(w, h);
    let header_y = view::layout(Rect::new(0, 0, w, h)).expect("fits").table.y + 1;
    let header = |state: &mut AppState| lines(draw(state, w, h).backend().buffer())[usize::from(header_y)].clone();
    assert!(
        header(&mut state).contains("WORST ▲"),
        "worst exposure first by default"
    );
    let order = |state: &AppState| state.holdouts.rows.clone();
    // `s` from WORST reaches every column shown at 120 columns, then wraps around to WORST.
    for _ in HoldoutColumn::ALL {
        press(&mut state, KeyCode::Char('s'));
        let column = state.holdouts.sort.column;
        let shown = header(&mut state);
        assert!(
            shown.contains(&format!("{}▲", column.title())) || shown.contains(&format!("{} ▲", column.title())),
            "{column:?}: {shown}"
        );
        let history = state.history.clone().expect("history");
        let up = order(&state);
        assert!(
            up.windows(2)
                .all(|p| column.compare(&history.clients[p[0]], &history.clients[p[1]]).is_le()),
            "{column:?} ascending"
        );
        press(&mut state, KeyCode::Char('i'));
        assert!(header(&mut state).contains('▼'), "{column:?} descending");
        let down = order(&state);
        assert!(
            down.windows(2)
                .all(|p| column.compare(&history.clients[p[0]], &history.clients[p[1]]).is_ge()),
            "{column:?} descending"
        );
        if up
            .windows(2)
            .all(|p| column.compare(&history.clients[p[0]], &history.clients[p[1]]).is_ne())
        {
            assert_eq!(down, up.into_iter().rev().collect::<Vec<_>>(), "{column:?} reversed");
        }
        press(&mut state, KeyCode::Char('i'));
    }
    assert_eq!(state.holdouts.sort.column, HoldoutColumn::Worst, "s wrapped around");
    press(&mut state, KeyCode::Char('S'));
    assert_eq!(state.holdouts.sort.column, HoldoutColumn::Address, "S goes back");
    // A snapshot of one sort: by sessions, most first.
    snapshot_both("holdouts_sorted_sessions_desc", |w, h| {
        let mut state = holdouts(w, h);
        draw(&mut state, w, h);
        while state.holdouts.sort.column != HoldoutColumn::Sessions {
            press(&mut state, KeyCode::Char('s'));
        }
        press(&mut state, KeyCode::Char('i'));
        state
    });
}

#[test]
fn holdouts_filter_narrows_the_table() {
    snapshot_both("holdouts_filtered", |w, h| {
        let mut state = holdouts(w, h);
        press(&mut state, KeyCode::Char('/'));
        type_text(&mut state, "tlsv1.2");
        let footer = screen(&draw(&mut state, w, h))
            .lines()
            .last()
            .unwrap_or_default()
            .to_string();
        assert!(footer.contains("(2 matches)"), "the footer counts clients: {footer}");
        press(&mut state, KeyCode::Enter);
        assert_eq!(state.holdouts.rows.len(), 2, "billing-batch and legacy-reports");
        state
    });
}

#[test]
fn holdouts_drill_down_shows_a_clients_sessions_versions_and_ciphers() {
    snapshot_both("holdouts_client", |w, h| {
        let mut state = holdouts(w, h);
        press(&mut state, KeyCode::Char('/'));
        type_text(&mut state, "billing");
        press(&mut state, KeyCode::Enter);
        press(&mut state, KeyCode::Enter);
        assert!(state.holdouts.drill.is_some());
        state
    });
    let (w, h) = (120, 36);
    let mut state = holdouts(w, h);
    press(&mut state, KeyCode::Down);
    press(&mut state, KeyCode::Down);
    let chosen = selected_client(&state);
    assert_eq!(chosen.as_ref().map(|k| k.application.as_str()), Some("billing-batch"));
    press(&mut state, KeyCode::Enter);
    assert_eq!(state.scope(), pgtls::tui::keymap::Scope::ClientDetail);
    let shown = screen(&draw(&mut state, w, h));
    // A client is not one session: the footer offers no terminate or cancel here.
    let footer = shown.lines().last().unwrap_or_default();
    assert!(!footer.contains("terminate"), "{footer}");
    for needle in [
        "Client billing-batch",
        "TLSv1.2 ×2",
        "ECDHE-RSA-AES256-GCM-SHA384 ×2",
        "How it connected",
        "Latest sessions (2 kept",
        "first seen",
        "last seen",
        "sources",
        "poll",
    ] {
        assert!(shown.contains(needle), "{needle}:\n{shown}");
    }
    // Keys move the drill-down, not the table under it.
    press(&mut state, KeyCode::End);
    press(&mut state, KeyCode::Esc);
    assert_eq!(
        state.scope(),
        pgtls::tui::keymap::Scope::Holdouts,
        "Esc returns to the table"
    );
    assert_eq!(selected_client(&state), chosen, "with the same client selected");
    assert!(screen(&draw(&mut state, w, h)).contains("SEEN AS"));
}

#[test]
fn a_opens_every_alert_when_the_pane_cannot_hold_them() {
    for (w, h) in SIZES {
        let mut state = new_state(w, h);
        state.handle(Input::Poller {
            event: PollerEvent::Connected {
                warnings: vec![
                    "WARNING: password file \"/home/dba/.pgpass\" has group or world access".to_string(),
                    "WARNING: sslrootcert holds an expired certificate".to_string(),
                ],
            },
            at: fixtures::now(),
        });
        feed(&mut state, weak_server());
        let before = screen(&draw(&mut state, w, h));
        assert!(
            before.contains("more"),
            "the pane says some do not fit ({w}x{h}):\n{before}"
        );
        press(&mut state, KeyCode::Char('a'));
        assert_eq!(state.scope(), pgtls::tui::keymap::Scope::Alerts);
        let mut all = screen(&draw(&mut state, w, h));
        insta::assert_snapshot!(format!("alerts_all_{w}x{h}"), all.clone());
        // Scrolled to its end, every alert's title has been on screen.
        press(&mut state, KeyCode::End);
        all.push_str(&screen(&draw(&mut state, w, h)));
        for entry in state.alerts.log.active() {
            let title = &entry.alert.title;
            assert!(all.contains(title.as_str()), "{title} ({w}x{h})");
        }
        assert!(all.contains(".pgpass"), "connection notes too");
        press(&mut state, KeyCode::Esc);
        assert!(state.alerts.full.is_none());
        assert!(
            screen(&draw(&mut state, w, h)).contains("Sessions"),
            "back to the table"
        );
    }
}

#[test]
fn hiding_the_top_panes_at_80x24_gives_the_table_their_rows() {
    let (w, h) = (80, 24);
    let mut state = connected(w, h);
    draw(&mut state, w, h);
    let before = state.sessions.page;
    press(&mut state, KeyCode::Char('z'));
    let terminal = draw(&mut state, w, h);
    assert!(state.panes_hidden);
    assert!(
        state.sessions.page >= before + 9,
        "{} rows, {before} before",
        state.sessions.page
    );
    let shown = screen(&terminal);
    assert!(!shown.contains("Server TLS") && !shown.contains("Protocols"), "{shown}");
    let line = shown.lines().nth(2).unwrap_or_default();
    assert!(
        line.contains("no TLS 2") && line.contains("✖ 1") && line.contains("(a)"),
        "the counts and the alerts stay in sight: {line}"
    );
    insta::assert_snapshot!("panes_hidden_80x24", terminal.backend());
    // Every session fits now, and clicks land on the rows as drawn.
    assert_eq!(table_rows_hidden(&terminal).len(), state.sessions.page);
    let area = Rect::new(0, 0, w, h);
    let rows = view::table_rows_area_with(area, view::Panes::Hidden).expect("fits");
    state.handle(view::click(area, &state, rows.x + 2, rows.y + 4).expect("a row"));
    assert_eq!(state.selected_index(), Some(4));
    // The state remembers it across screens, until pressed again.
    press(&mut state, KeyCode::Char('h'));
    press(&mut state, KeyCode::Char('t'));
    assert!(state.panes_hidden);
    press(&mut state, KeyCode::Char('z'));
    draw(&mut state, w, h);
    assert_eq!(state.sessions.page, before);
}

fn table_rows_hidden(terminal: &Terminal<TestBackend>) -> Vec<String> {
    let buffer = terminal.backend().buffer();
    let rows = view::table_rows_area_with(buffer.area, view::Panes::Hidden).expect("fits");
    lines(buffer)[usize::from(rows.y)..usize::from(rows.bottom())].to_vec()
}

#[test]
fn help_lists_every_binding_of_the_key_table() {
    let (w, h) = (80, 24);
    let mut state = connected(w, h);
    press(&mut state, KeyCode::Char('?'));
    // Page through the popup to its end, keeping the text inside its border.
    let mut text = String::new();
    loop {
        let terminal = draw(&mut state, w, h);
        for line in lines(terminal.backend().buffer()) {
            let inner: String = line.chars().skip(2).take(usize::from(w) - 4).collect();
            text.push_str(&inner);
            text.push('\n');
        }
        if Some(state.help.scroll.offset()) == state.help.scroll.max() {
            break;
        }
        press(&mut state, KeyCode::PageDown);
    }
    let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let flowing = words(&text);
    for b in pgtls::tui::keymap::BINDINGS {
        let label = pgtls::tui::keymap::keys_label(b);
        assert!(text.contains(&label), "{label} ({:?}) is not in help", b.action);
        assert!(
            flowing.contains(&words(b.help)),
            "{:?}: \"{}\" is not in help",
            b.action,
            b.help
        );
    }
    for key in ["F1", "Ctrl-b", "Ctrl-f", "Space", "=", "Backspace", "x", "a", "z", "v"] {
        assert!(text.contains(key), "{key}");
    }
}

/// The fixture with values as long as real ones get: a long application name and role, a long-running query.
fn long_names() -> Snapshot {
    let mut snap = fixtures::snapshot();
    for s in &mut snap.sessions {
        match s.pid {
            4144 => {
                s.application_name = Some("nightly-warehouse-export-to-s3-and-glacier".into());
                s.user = Some("reporting_readonly_service".into());
                s.state = Some("idle in transaction".into());
                s.xact_start = Some(fixtures::now() - chrono::Duration::seconds(754));
                s.query = Some("SELECT region, sum(amount)\n  FROM orders\n GROUP BY region".into());
            }
            4150 => {
                s.query_start = Some(fixtures::now() - chrono::Duration::milliseconds(4_250));
                s.query = Some("COPY staging.events FROM STDIN".into());
            }
            _ => {}
        }
    }
    snap
}

fn header_row(state: &mut AppState, w: u16, h: u16) -> String {
    let rows_y = usize::from(view::table_rows_area(Rect::new(0, 0, w, h)).expect("fits").y);
    lines(draw(state, w, h).backend().buffer())[rows_y - 1].clone()
}

#[test]
fn columns_use_the_room_there_is_at_80_120_and_200() {
    const H: u16 = 36;
    for w in [80, 120, 200] {
        let mut state = new_state(w, H);
        feed(&mut state, long_names());
        let terminal = draw(&mut state, w, H);
        insta::assert_snapshot!(format!("columns_{w}x{H}"), terminal.backend());
        let text = screen(&terminal);
        let header = header_row(&mut state, w, H);
        assert!(
            header.contains("QUERY"),
            "the query column is on by default at {w}:\n{header}"
        );
        let rows = table_rows(&terminal);
        if w == 200 {
            for whole in [
                "nightly-warehouse-export-to-s3-and-glacier",
                "reporting_readonly_service",
                "idle in transaction",
                "ECDHE-RSA-AES256-GCM-SHA384",
                "GRANT pg_read_all_stats TO pgtls;",
            ] {
                assert!(text.contains(whole), "{whole} is cut at 200:\n{text}");
            }
            assert!(header.contains("TIME+") && header.contains("DATABASE") && header.contains("CLIENT DN"));
            // The query takes what is left, on one line.
            assert!(text.contains("SELECT region,"), "{text}");
            let export = rows.iter().find(|r| r.contains("4144")).expect("row");
            assert!(export.contains("12m34s"), "TIME+ of the open transaction: {export}");
            let copy = rows.iter().find(|r| r.contains("4150")).expect("row");
            assert!(copy.contains("4.2s"), "TIME+ of the running query: {copy}");
        }
        // `v` hides the query columns and gives their room back; again shows them.
        press(&mut state, KeyCode::Char('v'));
        let hidden = header_row(&mut state, w, H);
        assert!(!hidden.contains("QUERY") && !hidden.contains("TIME+"), "{hidden}");
        if w == 120 {
            assert!(hidden.contains("DATABASE"), "room for another column at 120: {hidden}");
        }
        press(&mut state, KeyCode::Char('v'));
        assert!(header_row(&mut state, w, H).contains("QUERY"));
    }
}

/// `s` and `S` go through the columns on screen only, and a sorted header is never cut to `DATAB… ▲`.
#[test]
fn sorting_cycles_through_visible_columns_and_keeps_the_header_whole() {
    use pgtls::tui::columns::Column;
    const H: u16 = 36;
    for w in [80, 120, 200] {
        for query in [true, false] {
            let mut state = new_state(w, H);
            feed(&mut state, long_names());
            if !query {
                press(&mut state, KeyCode::Char('v'));
            }
            let start = state.sessions.sort.column;
            let mut seen = Vec::new();
            for _ in 0..Column::ALL.len() {
                let header = header_row(&mut state, w, H);
                let sorted = state.sessions.sort.column;
                assert!(
                    header.contains(&format!("{} ▲", sorted.title())),
                    "{sorted:?} at {w} (query {query}):\n{header}"
                );
                seen.push(sorted);
                press(&mut state, KeyCode::Char('s'));
                if state.sessions.sort.column == start {
                    break;
                }
            }
            assert_eq!(state.sessions.sort.column, start, "a full cycle comes back at {w}");
            let header = header_row(&mut state, w, H);
            for c in Column::ALL {
                let on_screen = header.contains(c.title());
                assert_eq!(seen.contains(&c), on_screen, "{c:?} at {w} (query {query}): {header}");
            }
            if !query {
                assert!(!seen.contains(&Column::Query) && !seen.contains(&Column::Time));
            }
            if w == 80 {
                assert!(!seen.contains(&Column::Database), "not shown at 80, so not sorted by");
            }
            // Backwards too: S from the first shown column wraps to the last shown.
            press(&mut state, KeyCode::Char('S'));
            assert_eq!(Some(&state.sessions.sort.column), seen.last(), "at {w}");
        }
    }
}

/// pgtls's own connection is listed and marked, and counted nowhere: not in the Protocols box, the table's
/// title or the alerts.
#[test]
fn the_own_connection_is_marked_and_not_counted() {
    let mut state = new_state(120, 36);
    let mut snap = fixtures::snapshot();
    // A client named like the monitor, on plain TCP: counted and alerted on, unlike the monitor.
    let mut impostor = fixtures::session(4190, ConnClass::PlainTcp);
    impostor.user = Some("intruder".into());
    impostor.application_name = Some("pgtls".into());
    snap.sessions.push(impostor);
    snap.mark_own(&[]);
    feed(&mut state, snap);
    let terminal = draw(&mut state, 120, 36);
    let text = screen(&terminal);
    assert!(text.contains("Protocols · 12 sessions"), "{text}");
    assert!(text.contains("Sessions 12 "), "{text}");
    assert!(text.contains("3 plain-text TCP sessions"), "{text}");
    let rows = table_rows(&terminal);
    let own = rows.iter().find(|r| r.contains("4101")).expect("own row listed");
    assert!(own.contains("this pgtls"), "{own}");
    let impostor = rows.iter().find(|r| r.contains("4190")).expect("impostor listed");
    assert!(
        impostor.contains("pgtls") && !impostor.contains("this pgtls"),
        "{impostor}"
    );
    // The drill-down says so too.
    state.sessions.selected_pid = Some(4101);
    state.rebuild_rows();
    press(&mut state, KeyCode::Enter);
    let detail = screen(&draw(&mut state, 120, 36));
    assert!(detail.contains("Session 4101 pgtls · this pgtls"), "{detail}");
    assert!(detail.contains("pgtls's own connection"), "{detail}");
}

/// `K` on a session: the popup names pid, user, application and address; a hostile server message in the
/// answer reaches the footer escaped.
#[test]
fn terminate_confirmation_names_the_session_and_the_answer_is_safe() {
    let (w, h) = (120, 36);
    let mut state = connected(w, h);
    while state.selected_session().map(|s| s.pid) != Some(4131) {
        press(&mut state, KeyCode::Down);
    }
    press(&mut state, KeyCode::Char('K'));
    let shown = screen(&draw(&mut state, w, h));
    for needle in [
        "Terminate session 4131?",
        "billing",
        "billing-batch",
        "10.0.1.",
        "y yes",
        "any other key no",
    ] {
        assert!(shown.contains(needle), "{needle} missing:\n{shown}");
    }
    press(&mut state, KeyCode::Char('y'));
    let request = match state.confirm {
        None => pgtls::collect::act::SignalRequest {
            kind: pgtls::collect::act::SignalKind::Terminate,
            pid: 4131,
            backend_start: fixtures::now(),
        },
        Some(_) => panic!("y closes the popup"),
    };
    state.handle(Input::Poller {
        event: PollerEvent::Signalled {
            request,
            outcome: pgtls::collect::act::SignalOutcome::Refused(
                "permission denied to terminate process\x1b[2J\x07".into(),
            ),
        },
        at: fixtures::now(),
    });
    let shown = screen(&draw(&mut state, w, h));
    let footer = shown.lines().last().unwrap_or_default();
    assert!(footer.contains("refused to terminate: permission denied"), "{footer}");
    assert!(!shown.contains('\x1b') && !shown.contains('\x07'), "{footer}");

    // Read-only: the key says so and opens nothing.
    let mut state = connected(w, h);
    state.read_only = true;
    press(&mut state, KeyCode::Char('C'));
    let shown = screen(&draw(&mut state, w, h));
    assert!(!shown.contains("Cancel the query of session"), "{shown}");
    assert!(
        shown.lines().last().unwrap_or_default().contains("read-only"),
        "{shown}"
    );
}

/// Clients a pooler's raised setting refused (its own log, `--pgbouncer-log`) show on the What-if screen under
/// that pooler's setting, and raise their alert; the pooler's text there is escaped.
#[test]
fn whatif_lists_the_clients_a_poolers_log_shows_refused() {
    use pgtls::analysis::ledger::{KeyFields, Ledger};
    use pgtls::logsource::{PoolerRefusal, Refusal, RefusedAttempt};
    let mut snap = fixtures::snapshot_pooled();
    snap.poolers[0]
        .settings
        .insert("client_tls_protocols".into(), "tlsv1.3".into());
    let pooler = snap.poolers[0].address.clone();
    let mut ledger = Ledger::new(KeyFields::default());
    for (addr, reason) in [
        (None, "unsupported protocol"),
        (Some("10.0.4.22"), "evil\u{1b}[2J\u{202e}"),
    ] {
        ledger.observe_refused(&RefusedAttempt {
            at: fixtures::now() - chrono::Duration::minutes(5),
            pid: 0,
            client_addr: addr.map(str::to_string),
            client_port: addr.map(|_| 52002),
            local_socket: false,
            refusal: Refusal::Pooler(PoolerRefusal {
                pooler: pooler.clone(),
                setting: "client_tls_protocols".into(),
                reason: reason.into(),
                plain: false,
            }),
            hint: None,
            detail: None,
        });
    }
    let mut history = fixtures::history();
    history.pooler_after = pgtls::collect::history::pooler_after_of(&ledger, &snap);
    let mut state = new_state(120, 36);
    feed(&mut state, snap);
    state.handle(Input::Poller {
        event: PollerEvent::History(Box::new(history)),
        at: fixtures::now(),
    });
    press(&mut state, KeyCode::Char('w'));
    let text = screen(&draw(&mut state, 120, 36));
    assert!(
        text.contains(&format!(
            "Refused by pooler {pooler}'s client_tls_protocols (2, from the pooler's log)"
        )),
        "{text}"
    );
    assert!(
        text.contains("(unknown address)") && text.contains("unsupported protocol (no address in PgBouncer's log)"),
        "{text}"
    );
    assert!(
        text.contains("\\x1b[2J\\u{202e}"),
        "the pooler's reason is escaped: {text}"
    );
    assert!(!text.contains('\u{1b}') && !text.contains('\u{202e}'));
    assert!(
        state.alerts.log.active().any(|a| a.alert.key == "after_pooler_refused"),
        "alert raised"
    );
}

/// Each pooler's state in the Server TLS box: one whose answer was cut at pgtls's cap (rows read, `⚠ answer
/// truncated`), one that stopped answering (the time of its last answer, `⚠ not answering`).
#[test]
fn pooler_states() {
    snapshot_both("pooler_states", |w, h| {
        let mut state = new_state(w, h);
        let mut snap = fixtures::snapshot_pooled();
        snap.poolers[0].truncated = true;
        snap.poolers[0].rows = 100_000;
        snap.poolers[0].answered_at = Some(snap.taken_at);
        let mut silent = pgtls::model::Pooler::failed(
            "10.0.0.5:6432".to_string(),
            "the admin console did not answer within 5 s".to_string(),
        );
        silent.answered_at = Some(snap.taken_at - chrono::Duration::minutes(3));
        snap.poolers.push(silent);
        feed(&mut state, snap);
        state
    });
}

/// A week of migration (fixtures::history_trend): the Holdouts and What-if screens draw it as sparklines in place
/// of the Protocols box, and a client's drill-down its own.
fn with_trend(w: u16, h: u16) -> AppState {
    let mut state = connected(w, h);
    state.handle(Input::Poller {
        event: PollerEvent::History(Box::new(fixtures::history_trend())),
        at: fixtures::now(),
    });
    state
}

#[test]
fn the_trend_draws_as_sparklines_on_holdouts_whatif_and_the_drill_down() {
    snapshot_both("trend_holdouts", |w, h| {
        let mut state = with_trend(w, h);
        press(&mut state, KeyCode::Char('h'));
        state
    });
    snapshot_both("trend_whatif", |w, h| {
        let mut state = with_trend(w, h);
        press(&mut state, KeyCode::Char('w'));
        state
    });
    snapshot_both("trend_client", |w, h| {
        let mut state = with_trend(w, h);
        press(&mut state, KeyCode::Char('h'));
        press(&mut state, KeyCode::Char('/'));
        type_text(&mut state, "billing-batch");
        press(&mut state, KeyCode::Enter);
        press(&mut state, KeyCode::Enter);
        assert!(state.holdouts.drill.is_some());
        state
    });
    let (w, h) = (120, 36);
    let mut state = with_trend(w, h);
    press(&mut state, KeyCode::Char('h'));
    let shown = screen(&draw(&mut state, w, h));
    for needle in ["Trend", "below 1.3 24h", "below 1.3  7d", "refused   24h"] {
        assert!(shown.contains(needle), "{needle}:\n{shown}");
    }
    assert!(
        !shown.contains(" Protocols "),
        "the trend takes the Protocols box's place:\n{shown}"
    );
    // The week's holdouts fade: billing-batch left TLS 1.2 two days ago and legacy-reports plain text four days
    // ago, so the 7-day row has tall bars on its left and none on its right; the 24-hour row has none at all.
    let line = |label: &str| {
        shown
            .lines()
            .find(|l| l.contains(label))
            .map(|l| l.split(label).nth(1).unwrap_or("").to_string())
            .unwrap_or_default()
    };
    let week = line("below 1.3  7d");
    let bars: Vec<char> = week.chars().filter(|c| ('▁'..='█').contains(c) || *c == ' ').collect();
    assert!(week.contains('█'), "{week}");
    // In the last day only the live poll's hour has clients below TLS 1.3: one bar, the last.
    let day = line("below 1.3 24h");
    let day_bars: String = day.chars().filter(|c| ('▁'..='█').contains(c) || *c == ' ').collect();
    assert_eq!(day_bars.trim().chars().count(), 1, "{day}");
    assert!(!bars.is_empty());
    let history = fixtures::history_trend();
    let total = history.trend.total(168);
    assert!(total.tls12 > 0 && total.plain > 0 && total.refused == 4, "{total:?}");
    // Only the live poll's TLS 1.2 sessions in the last day (billing-batch's two): its week's were before.
    assert_eq!(history.trend.total(24).tls12, 3);
}
