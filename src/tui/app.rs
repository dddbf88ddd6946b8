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

use super::components::servers::Servers;
use super::keymap::{self, Action, Scope};
use super::state::{AppState, Effect, Input};
use super::view;
use crate::collect::Collector;
use crate::collect::fleet::Fleet;
use crate::collect::poller::{self, HistorySetup, PollerEvent, PollerHandle};
use crate::config::Config;
use crate::conn::params::ConnParams;

/// Open the dashboard on an already connected collector (start-up errors were reported before
/// the terminal was touched); returns when the user quits.
/// What the front-end tells the dashboard before the first poll.
#[derive(Debug, Default)]
pub struct StartNotes {
    /// Said once at start (a ledger that needed repair, ...).
    pub warnings: Vec<String>,
    /// The demo's psql connection lines, for `J`.
    pub join: Vec<String>,
}

pub async fn run(
    params: ConnParams,
    collector: Collector,
    interval: Duration,
    target: String,
    history: HistorySetup,
    config: Config,
    notes: StartNotes,
) -> Result<()> {
    view::theme::set_theme(view::theme::Theme::from_env());
    view::set_utc_offset(*chrono::Local::now().offset());
    let (events_tx, events_rx) = mpsc::channel(16);
    let mut poller = poller::spawn(params, Some(collector), interval, history, events_tx);
    let mut state = AppState::new(target, interval, Utc::now());
    state.alerts.config = config.alerts;
    state.read_only = config.read_only;
    state.startup_warnings = notes.warnings;
    state.join = notes.join;

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
                Effect::Bell => bell(),
                // Only a dashboard opened from the Servers screen leaves; this one has nowhere to go.
                Effect::Leave => {}
            }
        }
    }
}

fn bell() {
    use std::io::Write;
    let _ = stdout().write_all(b"\x07").and_then(|()| stdout().flush());
}

/// The dashboard over several servers: the Servers screen first; Enter opens one server's dashboard (the same
/// screens as with one server), Esc comes back. Every target keeps being polled by its engine meanwhile.
pub async fn run_fleet(fleet: std::sync::Arc<Fleet>, interval: Duration, config: Config) -> Result<()> {
    view::theme::set_theme(view::theme::Theme::from_env());
    view::set_utc_offset(*chrono::Local::now().offset());
    let mut terminal = ratatui::try_init().wrap_err("cannot open the terminal (is this an interactive terminal?)")?;
    install_mouse_restoring_panic_hook();
    let _ = crossterm::execute!(stdout(), EnableMouseCapture);
    let result = fleet_loop(&mut terminal, &fleet, interval, &config).await;
    let _ = crossterm::execute!(stdout(), DisableMouseCapture);
    ratatui::restore();
    result
}

/// One server's dashboard, opened from the Servers screen.
struct Opened {
    name: String,
    state: AppState,
    events: mpsc::Receiver<PollerEvent>,
    commands: mpsc::UnboundedSender<crate::collect::poller::PollerCommand>,
}

/// How often the Servers screen reads the targets' latest state.
const SERVERS_REFRESH: Duration = Duration::from_millis(500);

async fn fleet_loop(terminal: &mut DefaultTerminal, fleet: &Fleet, interval: Duration, config: &Config) -> Result<()> {
    use crate::collect::poller::PollerCommand;
    let mut input_events = EventStream::new();
    let mut quit_signals = QuitSignals::new()?;
    let mut servers = Servers::default();
    let mut opened: Option<Opened> = None;
    let mut tick = tokio::time::interval(SERVERS_REFRESH);
    let mut dirty = true;
    loop {
        if dirty {
            match &mut opened {
                Some(o) => draw(terminal, &mut o.state)?,
                None => {
                    servers.set_rows(fleet.rows());
                    servers.page = view::servers::page(terminal.size()?.into());
                    terminal.draw(|frame| view::servers::draw(frame, &servers, view::theme::current()))?;
                }
            }
        }
        dirty = true;
        let input = tokio::select! {
            event = input_events.next() => match event {
                Some(Ok(event)) => match &opened {
                    Some(o) => match to_input(event, terminal.size()?.into(), &o.state) {
                        Translated::Input(input) => input,
                        _ => continue,
                    },
                    None => {
                        if let Event::Key(key) = event && key.kind == KeyEventKind::Press {
                            servers.note = None;
                            let scope = if servers.help { Scope::Help } else { Scope::Servers };
                            match keymap::lookup(scope, &key) {
                                Some(Action::Quit) => return Ok(()),
                                Some(Action::Help) => servers.help = !servers.help,
                                Some(Action::Back) if servers.help => servers.help = false,
                                Some(_) if servers.help => {}
                                Some(Action::Open) => opened = open(fleet, &servers, interval, config),
                                Some(Action::Refresh) => fleet.broadcast(PollerCommand::RefreshNow),
                                Some(action) => servers_action(&mut servers, action),
                                None => {}
                            }
                        }
                        continue;
                    }
                },
                Some(Err(e)) => return Err(e).wrap_err("reading terminal input"),
                None => return Ok(()),
            },
            Some(event) = async {
                match &mut opened {
                    Some(o) => o.events.recv().await,
                    None => std::future::pending().await,
                }
            } => Input::Poller { event, at: Utc::now() },
            _ = tick.tick() => {
                // A target whose engine ended is restarted; an open dashboard redraws on its own events only.
                let _ = fleet.check_tasks().await;
                dirty = opened.is_none();
                continue;
            }
            () = quit_signals.recv() => return Ok(()),
        };
        let Some(o) = &mut opened else { continue };
        for effect in o.state.handle(input) {
            match effect {
                Effect::Quit => return Ok(()),
                // The Servers screen needs every target's history all the time: the engine keeps sending it.
                Effect::Poller(PollerCommand::SendHistory(_)) => {}
                Effect::Poller(cmd) => {
                    let _ = o.commands.send(cmd);
                }
                Effect::Bell => bell(),
                Effect::Leave => {
                    fleet.unsubscribe(&o.name);
                    // Pausing or a new interval was for this dashboard; the fleet goes on as it was.
                    let _ = o.commands.send(PollerCommand::SetPaused(false));
                    let _ = o.commands.send(PollerCommand::SetInterval(interval));
                    opened = None;
                    break;
                }
            }
        }
    }
}

fn servers_action(servers: &mut Servers, action: Action) {
    let page = servers.page.max(1) as isize;
    match action {
        Action::Up => servers.move_by(-1),
        Action::Down => servers.move_by(1),
        Action::PageUp => servers.move_by(-page),
        Action::PageDown => servers.move_by(page),
        Action::Top => servers.move_by(isize::MIN / 2),
        Action::Bottom => servers.move_by(isize::MAX / 2),
        Action::SortNext => servers.cycle_sort(1),
        Action::SortPrev => servers.cycle_sort(-1),
        Action::SortReverse => servers.reverse(),
        // Screens, panes, pausing and the interval are one server's: say so rather than ignore the key.
        _ => servers.note = Some(keymap::SERVERS_ONLY_IN_DASHBOARD),
    }
}

/// Enter on the Servers screen: that server's dashboard, showing at once what its engine already has.
fn open(fleet: &Fleet, servers: &Servers, interval: Duration, config: &Config) -> Option<Opened> {
    let name = servers.selected_row()?.name.clone();
    let (events, commands) = fleet.subscribe(&name)?;
    let mut state = AppState::new(name.clone(), interval, Utc::now());
    state.alerts.config = config.alerts.clone();
    state.read_only = config.read_only;
    state.from_servers = true;
    if let Some(shared) = fleet.state(&name) {
        let (snapshot, history) = {
            let s = shared.lock();
            // A fleet's history lacks the client records and the trend; the full one follows the subscription.
            let full = s
                .history
                .as_ref()
                .filter(|h| h.detail == crate::collect::history::Detail::Full);
            (s.snapshot.clone(), full.cloned())
        };
        if let Some(snapshot) = snapshot {
            state.handle(Input::Poller {
                event: PollerEvent::Polled { snapshot, history },
                at: Utc::now(),
            });
        }
    }
    Some(Opened {
        name,
        state,
        events,
        commands,
    })
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
    // The frame's area is the size ratatui has just read to resize its buffers: asking the terminal again here
    // would be one more open of /dev/tty and ioctl per frame.
    terminal.draw(|frame| {
        view::prepare(state, frame.area());
        view::draw(frame, state);
    })?;
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
