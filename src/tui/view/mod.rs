//! Drawing the state. One file per screen region, each a free `render(frame, area, cx)`. Views read the state
//! and mutate nothing; they never read the clock or do I/O, so the same state always draws the same screen.
//!
//! ```text
//! 120x36 (width >= 100)
//! ┌───────────────────────────────────────────────────────────────────────────────────────┐
//! │ header.rs   pgtls  target  PostgreSQL 15.18  every 2s · updated 09:30:00 · poll 1.4 ms │ 2 rows
//! │             monitor: TLSv1.3 … sslmode=verify-full ✓   (or the red DISCONNECTED banner) │
//! ├─ Server TLS ───────────┬─ Protocols ────────────┬─ Alerts ─────────────────────────────┤
//! │ posture.rs             │ summary.rs             │ alerts.rs (pane)                     │ band: 8..=12 rows,
//! │ ssl, min/max protocol, │ count, share and bar   │ ✖ title               NEW since 09:30│ 10 at 36 high
//! │ ciphers, groups, ...   │ per class, top ciphers │   detail, then connection warnings   │
//! ├─ Sessions 12 ──────────┴────────────────────────┴──────────────────────────────────────┤
//! │ sessions.rs: marker + columns::layout(width, page); only the visible page is built     │ the rest
//! ├────────────────────────────────────────────────────────────────────────────────────────┤
//! │ footer.rs   /filter▏ while typing, then keymap::hints(scope)                    PAUSED │ 1 row
//! └────────────────────────────────────────────────────────────────────────────────────────┘
//!
//! 80x24 (width < 100)
//! ┌──────────────────────────────────────────────────────┐
//! │ header (2 rows)                                      │
//! ├─ Server TLS ─────────────┬─ Protocols ───────────────┤ band: 8 rows
//! ├──────────────────────────┴───────────────────────────┤
//! │ ✖ most severe alert           NEW since 09:30 +2 more│ alerts.rs (strip): 2 rows
//! │   its detail                                         │
//! ├─ Sessions ───────────────────────────────────────────┤ the rest
//! │ footer                                               │
//! └──────────────────────────────────────────────────────┘
//!
//! With the top panes hidden (`z`, any width): header, one line (collapsed.rs: counts per protocol and the most
//! severe alert), then the table down to the footer.
//!
//! detail.rs (a session), client.rs (a Holdouts client) and alerts.rs's full list replace band + strip + table
//! (the "body"); help.rs is a popup over everything; below 80x24 compact.rs replaces everything (counts and the
//! sessions' PID, application and TLS), and below 40x10 too_small.rs does.
//! ```
//!
//! The layout depends on the terminal size and on whether the top panes are hidden ([`Panes`]), nothing else:
//! the app loop uses it too, to size the table page and to map mouse clicks to rows, and both must agree with
//! what is drawn.

mod alerts;
mod certificates;
mod client;
mod collapsed;
pub mod compact;
mod confirm;
mod detail;
mod footer;
mod hanging;
mod header;
mod help;
mod holdouts;
mod join;
mod posture;
pub mod servers;
mod sessions;
mod summary;
mod tabs;
mod text;
pub mod theme;
mod too_small;
mod trend;
mod whatif;

use std::sync::OnceLock;

use chrono::{DateTime, FixedOffset, Offset as _, Utc};
use ratatui::Frame;
use ratatui::layout::{Position, Rect};

use crate::model::Snapshot;
use crate::tui::state::{AppState, Input, Screen, ScrollLimits};
pub use theme::{Theme, set_theme};

pub const MIN_WIDTH: u16 = 80;
pub const MIN_HEIGHT: u16 = 24;
/// From this width on, alerts get a pane of their own in the band instead of a strip.
pub const WIDE: u16 = 100;

/// Where the alerts go at this width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertsShape {
    /// A bordered pane in the band, one or two lines per alert.
    Pane,
    /// Two unbordered rows between the band and the table: the most severe alert and a count of the rest.
    Strip,
    /// The panes are hidden: one row with the protocol counts and the most severe alert.
    Line,
}

/// Whether the top panes (server TLS, protocols, alerts) are drawn; `z` hides them so the table gets the rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Panes {
    Shown,
    Hidden,
}

impl Panes {
    pub fn of(state: &AppState) -> Panes {
        if state.panes_hidden {
            Panes::Hidden
        } else {
            Panes::Shown
        }
    }
}

/// Where each region goes: a pure function of the terminal size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Areas {
    pub header: Rect,
    /// Server TLS settings.
    pub posture: Rect,
    /// Protocol counts and ciphers.
    pub summary: Rect,
    pub alerts: Rect,
    pub alerts_shape: AlertsShape,
    /// The sessions table, borders included.
    pub table: Rect,
    pub footer: Rect,
    /// Everything between header and footer: the detail view takes it all.
    pub body: Rect,
}

/// Rows of the band at this height: 8 at 24 rows, one more every 6 rows, at most 12. The table gets the rest,
/// because on a busy server that is where the answers are.
fn band_height(height: u16) -> u16 {
    (8 + (height - MIN_HEIGHT) / 6).min(12)
}

/// `part` of `whole` columns, at most `cap`.
fn share(whole: u16, num: u32, den: u32, cap: u16) -> u16 {
    let cols = u32::from(whole) * num / den;
    u16::try_from(cols).unwrap_or(cap).min(cap)
}

/// The layout with the top panes shown; `None` when smaller than [`MIN_WIDTH`] x [`MIN_HEIGHT`].
pub fn layout(area: Rect) -> Option<Areas> {
    layout_with(area, Panes::Shown)
}

/// `None` when smaller than [`MIN_WIDTH`] x [`MIN_HEIGHT`].
pub fn layout_with(area: Rect, panes: Panes) -> Option<Areas> {
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        return None;
    }
    let Rect { x, y, width, height } = area;
    let header = Rect::new(x, y, width, 2);
    let footer = Rect::new(x, y + height - 1, width, 1);
    let body = Rect::new(x, header.bottom(), width, footer.y - header.bottom());
    if panes == Panes::Hidden {
        let line = Rect::new(x, body.y, width, 1);
        let empty = Rect::new(x, body.y, 0, 0);
        let table = Rect::new(x, line.bottom(), width, footer.y - line.bottom());
        return Some(Areas {
            header,
            posture: empty,
            summary: empty,
            alerts: line,
            alerts_shape: AlertsShape::Line,
            table,
            footer,
            body,
        });
    }
    let band = Rect::new(x, body.y, width, band_height(height));
    let (posture, summary, alerts, alerts_shape, table_top) = if width >= WIDE {
        // Server settings need ~40 columns to show common values (ssl_ciphers' default) whole, the protocol
        // counts fewer; alerts take the rest because their titles are the longest text in the band.
        let posture_w = share(width, 41, 120, 48);
        let summary_w = share(width, 35, 120, 52);
        let posture = Rect::new(x, band.y, posture_w, band.height);
        let summary = Rect::new(posture.right(), band.y, summary_w, band.height);
        let alerts = Rect::new(summary.right(), band.y, width - posture_w - summary_w, band.height);
        (posture, summary, alerts, AlertsShape::Pane, band.bottom())
    } else {
        let posture_w = share(width, 41, 80, 48);
        let posture = Rect::new(x, band.y, posture_w, band.height);
        let summary = Rect::new(posture.right(), band.y, width - posture_w, band.height);
        let alerts = Rect::new(x, band.bottom(), width, 2);
        (posture, summary, alerts, AlertsShape::Strip, alerts.bottom())
    };
    let table = Rect::new(x, table_top, width, footer.y - table_top);
    Some(Areas {
        header,
        posture,
        summary,
        alerts,
        alerts_shape,
        table,
        footer,
        body,
    })
}

/// Rows of session data visible in the table (excluding borders and header row) for this terminal size, with the
/// top panes shown.
pub fn table_page(area: Rect) -> usize {
    table_page_with(area, Panes::Shown)
}

pub fn table_page_with(area: Rect, panes: Panes) -> usize {
    table_rows_area_with(area, panes).map_or(0, |r| usize::from(r.height))
}

/// Where the table's data rows are drawn with the top panes shown.
pub fn table_rows_area(area: Rect) -> Option<Rect> {
    table_rows_area_with(area, Panes::Shown)
}

/// Where the table's data rows are drawn, for mapping mouse clicks to `Input::ClickRow(y - rect.y)`.
pub fn table_rows_area_with(area: Rect, panes: Panes) -> Option<Rect> {
    let table = layout_with(area, panes)?.table;
    // Inside the border, below the header row.
    Some(Rect::new(
        table.x + 1,
        table.y + 2,
        table.width.saturating_sub(2),
        table.height.saturating_sub(3),
    ))
}

/// What the app does before each draw: tell the state how many table rows fit and how far the panes on screen
/// can scroll, so that every key acts on what is shown (`End` shows the last line, `k` after it moves at once).
pub fn prepare(state: &mut AppState, area: Rect) {
    let panes = Panes::of(state);
    let page = if compact::applies(area) {
        compact::page(area)
    } else {
        table_page_with(area, panes)
    };
    state.set_page(page);
    let Some(areas) = layout_with(area, panes) else {
        return;
    };
    // `s` on Holdouts and on Sessions cycles through the columns the table shows at this width.
    state
        .holdouts
        .set_shown(holdouts::visible_columns(areas.table.width.saturating_sub(2)));
    if let Some(taken_at) = state.snapshot.as_ref().map(|s| s.taken_at) {
        let content = sessions::page_content_widths(state, page);
        state.sessions.widths.settle(&content, taken_at);
    }
    let shown = sessions::column_layout(state, areas.table.width.saturating_sub(2), page);
    state.sessions.set_shown(shown.into_iter().map(|(c, _)| c).collect());
    let limits = {
        let cx = Ctx {
            state,
            theme: theme::current(),
            utc_offset: utc_offset(),
        };
        let shown = |on: bool, max: &dyn Fn() -> u16| on.then(max);
        let uncovered = state.detail.is_none() && state.alerts.full.is_none();
        ScrollLimits {
            help: shown(state.help.open, &|| help::max_scroll(area, &cx)),
            detail: shown(state.detail.is_some(), &|| detail::max_scroll(areas.body, &cx)),
            whatif: shown(uncovered && state.screen == Screen::WhatIf, &|| {
                whatif::max_scroll(areas.table, &cx)
            }),
            whatif_pick: (uncovered && state.screen == Screen::WhatIf)
                .then(|| whatif::pick_row(areas.table, &cx))
                .flatten(),
            certificates: shown(uncovered && state.screen == Screen::Certificates, &|| {
                certificates::max_scroll(areas.table, &cx)
            }),
            client: shown(state.client_drill_open(), &|| client::max_scroll(areas.body, &cx)),
            alerts: shown(state.alerts.full.is_some(), &|| {
                alerts::max_scroll_full(areas.body, &cx)
            }),
        }
    };
    state.set_scroll_limits(limits);
}

/// What a left click at (`column`, `row`) means on the screen drawn for `state`: a row of the table shown, a
/// column header of the sessions table (sort by it), or a tab. Popups take clicks away from what is under them.
pub fn click(area: Rect, state: &AppState, column: u16, row: u16) -> Option<Input> {
    let panes = Panes::of(state);
    let areas = layout_with(area, panes)?;
    if state.help.open || state.detail.is_some() || state.alerts.full.is_some() || state.client_drill_open() {
        return None;
    }
    let pos = Position::new(column, row);
    let table = areas.table;
    if !table.contains(pos) {
        return None;
    }
    if row + 1 == table.bottom() {
        return tabs::at(state.screen, column.saturating_sub(table.x + 1)).map(Input::ClickTab);
    }
    let rows = table_rows_area_with(area, panes)?;
    if rows.contains(pos) {
        return Some(Input::ClickRow(usize::from(row - rows.y)));
    }
    if row == table.y + 1 && column > table.x {
        let inner_width = table.width.saturating_sub(2);
        let x = column - table.x - 1;
        return match state.screen {
            Screen::Sessions => sessions::column_at(state, inner_width, table_page(area), x).map(Input::ClickHeader),
            Screen::Holdouts => holdouts::column_at(inner_width, x).map(Input::ClickHoldoutHeader),
            Screen::WhatIf | Screen::Certificates => None,
        };
    }
    None
}

static UTC_OFFSET: OnceLock<FixedOffset> = OnceLock::new();

/// The local time zone for clock times on screen, chosen once at start-up by the app (views never ask the
/// system). Without it times show in UTC, which is also what the tests draw.
pub fn set_utc_offset(offset: FixedOffset) {
    // The first choice stands; a later call is a no-op like `set_theme`.
    let _ = UTC_OFFSET.set(offset);
}

fn utc_offset() -> FixedOffset {
    UTC_OFFSET.get().copied().unwrap_or_else(|| Utc.fix())
}

/// Draw the whole screen with the theme and time zone chosen at start-up.
pub fn draw(frame: &mut Frame, state: &AppState) {
    draw_with(frame, state, theme::current(), utc_offset());
}

/// Draw with an explicit theme and time zone: what tests and screenshots use, so they need no global setup.
pub fn draw_with(frame: &mut Frame, state: &AppState, theme: &Theme, utc_offset: FixedOffset) {
    let cx = Ctx {
        state,
        theme,
        utc_offset,
    };
    let area = frame.area();
    let Some(areas) = layout_with(area, Panes::of(state)) else {
        if compact::applies(area) {
            compact::render(frame, area, &cx);
        } else {
            too_small::render(frame, area, &cx);
        }
        return;
    };
    header::render(frame, areas.header, &cx);
    if state.alerts.full.is_some() {
        alerts::render_full(frame, areas.body, &cx);
    } else if state.detail.is_some() {
        detail::render(frame, areas.body, &cx);
    } else if state.client_drill_open() {
        client::render(frame, areas.body, &cx);
    } else {
        match areas.alerts_shape {
            AlertsShape::Pane => {
                posture::render(frame, areas.posture, &cx);
                summary_or_trend(frame, areas.summary, &cx);
                alerts::render(frame, areas.alerts, &cx);
            }
            AlertsShape::Strip => {
                posture::render(frame, areas.posture, &cx);
                summary_or_trend(frame, areas.summary, &cx);
                alerts::render_strip(frame, areas.alerts, &cx);
            }
            AlertsShape::Line => collapsed::render(frame, areas.alerts, &cx),
        }
        match state.screen {
            Screen::Sessions => sessions::render(frame, areas.table, &cx),
            Screen::Holdouts => holdouts::render(frame, areas.table, &cx),
            Screen::WhatIf => whatif::render(frame, areas.table, &cx),
            Screen::Certificates => certificates::render(frame, areas.table, &cx),
        }
    }
    footer::render(frame, areas.footer, &cx);
    if state.help.open {
        help::render(frame, area, &cx);
    }
    if state.join_open {
        join::render(frame, area, &cx);
    }
    if let Some(question) = &state.confirm {
        confirm::render(frame, area, &cx, question);
    }
}

/// The Protocols box counts what is connected now; on the screens about history it gives its place to the trend.
fn summary_or_trend(frame: &mut Frame, area: Rect, cx: &Ctx) {
    match cx.state.screen {
        Screen::Holdouts | Screen::WhatIf => trend::render_pane(frame, area, cx),
        Screen::Sessions | Screen::Certificates => summary::render(frame, area, cx),
    }
}

/// What every region draws from: the state and the display choices made once at start-up.
pub(crate) struct Ctx<'a> {
    pub state: &'a AppState,
    pub theme: &'a Theme,
    pub utc_offset: FixedOffset,
}

impl Ctx<'_> {
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.state.snapshot.as_deref()
    }

    /// Wall-clock time of day, `09:30:00`.
    pub fn clock(&self, t: DateTime<Utc>) -> String {
        t.with_timezone(&self.utc_offset).format("%H:%M:%S").to_string()
    }

    /// Date and time, `2026-03-14 09:30:00`: the ledger's times can be days apart.
    pub fn date_time(&self, t: DateTime<Utc>) -> String {
        t.with_timezone(&self.utc_offset)
            .format("%Y-%m-%d %H:%M:%S")
            .to_string()
    }

    /// Time of day to the minute, `09:30`.
    pub fn clock_hm(&self, t: DateTime<Utc>) -> String {
        t.with_timezone(&self.utc_offset).format("%H:%M").to_string()
    }
}

/// Shown in every pane until data arrives.
const WAITING: &str = "waiting for the first snapshot…";
