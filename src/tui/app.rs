//! The event loop: terminal input, poller events and signals in; state updates, effects and draws out.

use std::io::stdout;
use std::time::Duration;

use chrono::Utc;
use color_eyre::eyre::{Result, WrapErr};
use crossterm::event::{
    DisableMouseCapture, EnableMouseCapture, Event, EventStream, KeyEventKind, MouseButton, MouseEventKind,
};
use futures_util::StreamExt;
use ratatui::DefaultTerminal;
use ratatui::layout::Rect;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use super::state::{AppState, Effect, Input};
use super::view;
use crate::collect::Collector;
use crate::collect::poller::{self, HistorySetup, PollerEvent, PollerHandle};
use crate::config::Config;
use crate::conn::params::ConnParams;

/// Open the dashboard on an already connected collector (start-up errors were reported before
/// the terminal was touched); returns when the user quits.
pub async fn run(
    params: ConnParams,
    collector: Collector,
    interval: Duration,
    target: String,
    history: HistorySetup,
    config: Config,
    warnings: Vec<String>,
) -> Result<()> {
    view::theme::set_theme(view::theme::Theme::from_env());
    view::set_utc_offset(*chrono::Local::now().offset());
    let (events_tx, events_rx) = mpsc::channel(16);
    let mut poller = poller::spawn(params, Some(collector), interval, history, events_tx);
    let mut state = AppState::new(target, interval, Utc::now());
    state.alerts.config = config.alerts;
    state.read_only = config.read_only;
    state.startup_warnings = warnings;

    let mut terminal = ratatui::try_init().wrap_err("cannot open the terminal (is this an interactive terminal?)")?;
    install_mouse_restoring_panic_hook();
    let _ = crossterm::execute!(stdout(), EnableMouseCapture);
    let result = event_loop(&mut terminal, &mut state, events_rx, &mut poller).await;
    let _ = crossterm::execute!(stdout(), DisableMouseCapture);
    ratatui::restore();
    result
}

/// ratatui's hook restores raw mode and the alternate screen; mouse capture must be undone too,
/// or the user's shell receives escape codes for every mouse move after a crash.
fn install_mouse_restoring_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let _ = crossterm::execute!(stdout(), DisableMouseCapture);
        previous(info);
    }));
}

async fn event_loop(
    terminal: &mut DefaultTerminal,
    state: &mut AppState,
    mut poller_events: mpsc::Receiver<PollerEvent>,
    poller: &mut PollerHandle,
) -> Result<()> {
    let mut input_events = EventStream::new();
    // A closed terminal (SIGHUP), `kill` (SIGTERM, SIGINT, SIGQUIT) end the program like `q` does: the terminal is
    // restored (their default action would leave it in the alternate screen with echo off) and the demo still
    // removes its server and temp dir. In raw mode Ctrl-C and Ctrl-\ arrive as keys, so these come from `kill`.
    let mut quit_signals = QuitSignals::new()?;
    let mut dirty = true;
    loop {
        if dirty {
            draw(terminal, state)?;
            dirty = false;
        }
        let input = tokio::select! {
            event = input_events.next() => match event {
                Some(Ok(event)) => match to_input(event, terminal.size()?.into(), state) {
                    Translated::Input(input) => input,
                    Translated::Redraw => {
                        dirty = true;
                        continue;
                    }
                    Translated::Ignore => continue,
                },
                Some(Err(e)) => return Err(e).wrap_err("reading terminal input"),
                // stdin closed: nobody is left to press q.
                None => return Ok(()),
            },
            event = next_poller_event(&mut poller_events, &mut poller.task) => Input::Poller { event: event?, at: Utc::now() },
            () = quit_signals.recv() => return Ok(()),
        };
        dirty = true;
        for effect in state.handle(input) {
            match effect {
                Effect::Quit => return Ok(()),
                Effect::Poller(cmd) => {
                    let _ = poller.commands.send(cmd);
                }
                Effect::Bell => {
                    use std::io::Write;
                    let _ = stdout().write_all(b"\x07").and_then(|()| stdout().flush());
                }
            }
        }
    }
}

/// The signals that end the dashboard the way `q` does.
struct QuitSignals([tokio::signal::unix::Signal; 4]);

impl QuitSignals {
    fn new() -> Result<Self> {
        Ok(QuitSignals([
            signal(SignalKind::terminate())?,
            signal(SignalKind::hangup())?,
            signal(SignalKind::interrupt())?,
            signal(SignalKind::quit())?,
        ]))
    }

    async fn recv(&mut self) {
        let [a, b, c, d] = &mut self.0;
        tokio::select! {
            _ = a.recv() => {}
            _ = b.recv() => {}
            _ = c.recv() => {}
            _ = d.recv() => {}
        }
    }
}

/// The poller's next event. The poller only stops when nobody listens, which cannot happen while we do, so its
/// channel closing means the task failed: report how (a panic's message included) instead of quitting as if the
/// user had pressed `q`, so the dashboard ends with a non-zero status.
async fn next_poller_event(
    events: &mut mpsc::Receiver<PollerEvent>,
    task: &mut tokio::task::JoinHandle<()>,
) -> Result<PollerEvent> {
    if let Some(event) = events.recv().await {
        return Ok(event);
    }
    Err(match task.await {
        Err(e) if e.is_panic() => {
            color_eyre::eyre::eyre!("the poller task panicked: {}", panic_message(e.into_panic()))
        }
        Err(e) => color_eyre::eyre::eyre!("the poller task ended: {e}"),
        Ok(()) => color_eyre::eyre::eyre!("the poller task ended unexpectedly"),
    })
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(text) => *text,
        Err(payload) => payload
            .downcast_ref::<&str>()
            .map_or_else(|| "(no message)".to_string(), |text| (*text).to_string()),
    }
}

fn draw(terminal: &mut DefaultTerminal, state: &mut AppState) -> Result<()> {
    let size = terminal.size()?;
    view::prepare(state, Rect::new(0, 0, size.width, size.height));
    terminal.draw(|frame| view::draw(frame, state))?;
    Ok(())
}

enum Translated {
    Input(Input),
    Redraw,
    Ignore,
}

fn to_input(event: Event, area: Rect, state: &AppState) -> Translated {
    match event {
        // Release and repeat events arrive on terminals with the kitty protocol; act on presses only.
        Event::Key(key) if key.kind == KeyEventKind::Press => Translated::Input(Input::Key(key)),
        Event::Resize(..) => Translated::Redraw,
        Event::Mouse(mouse) => match mouse.kind {
            MouseEventKind::ScrollUp => Translated::Input(Input::ScrollUp),
            MouseEventKind::ScrollDown => Translated::Input(Input::ScrollDown),
            MouseEventKind::Down(MouseButton::Left) => match view::click(area, state, mouse.column, mouse.row) {
                Some(input) => Translated::Input(input),
                None => Translated::Ignore,
            },
            _ => Translated::Ignore,
        },
        _ => Translated::Ignore,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_poller_is_an_error_with_its_message() {
        let (tx, mut rx) = mpsc::channel::<PollerEvent>(1);
        let mut task = tokio::spawn(async move {
            let _keep_the_channel_open_until_the_panic = tx;
            panic!("boom in the poller");
        });
        let error = next_poller_event(&mut rx, &mut task).await.unwrap_err();
        assert_eq!(error.to_string(), "the poller task panicked: boom in the poller");
    }

    #[tokio::test]
    async fn a_poller_that_just_stops_is_an_error_too() {
        let (tx, mut rx) = mpsc::channel::<PollerEvent>(1);
        let mut task = tokio::spawn(async move { drop(tx) });
        let error = next_poller_event(&mut rx, &mut task).await.unwrap_err();
        assert_eq!(error.to_string(), "the poller task ended unexpectedly");
    }
}
