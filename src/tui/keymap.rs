//! The one key table: dispatch, the footer hints and the help overlay all read it, so they cannot drift apart.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// Where a binding applies. Global bindings apply everywhere except while typing a filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    Global,
    /// The main screen with the sessions table.
    Table,
    /// The drill-down of one session.
    Detail,
    /// The drill-down of one client from the Holdouts table: a client is not a session, so K and C are not offered.
    ClientDetail,
    /// Typing a filter: printable keys are text, so only these bindings apply.
    FilterInput,
    Help,
    /// The client ledger table.
    Holdouts,
    /// The what-if report.
    WhatIf,
    /// The certificate probe's report.
    Certificates,
    /// Every alert, full screen.
    Alerts,
    /// The popup asking to confirm a cancel or terminate: `y` confirms, any other key cancels.
    Confirm,
    /// The Servers screen of a dashboard over several servers.
    Servers,
}

impl Scope {
    /// Scopes where keys mean something of their own, so global bindings (other than the ones listed for the scope)
    /// do not apply: typing a filter, answering a confirmation.
    pub fn is_modal(self) -> bool {
        matches!(self, Scope::FilterInput | Scope::Confirm)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Quit,
    Help,
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    SortNext,
    SortPrev,
    SortReverse,
    ToggleQuery,
    StartFilter,
    ClearFilter,
    ApplyFilter,
    DeleteChar,
    ViewAll,
    ViewNoTls,
    ViewBelowTls13,
    Open,
    Back,
    Pause,
    Faster,
    Slower,
    Refresh,
    NextScreen,
    PrevScreen,
    ShowSessions,
    ShowHoldouts,
    ShowWhatIf,
    ShowCertificates,
    NextTarget,
    Probe,
    ShowAlerts,
    TogglePanes,
    /// `K`: terminate the selected session (after a confirmation).
    Terminate,
    /// `C`: cancel the selected session's query (after a confirmation).
    CancelQuery,
    /// `y` in the confirmation popup.
    Confirm,
    /// `J`: the demo's psql connection lines.
    ShowJoin,
}

/// A key as written in help and footer, and how to match it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub code: KeyCode,
    pub modifiers: KeyModifiers,
}

const fn key(c: char) -> Key {
    Key {
        code: KeyCode::Char(c),
        modifiers: KeyModifiers::NONE,
    }
}

const fn special(code: KeyCode) -> Key {
    Key {
        code,
        modifiers: KeyModifiers::NONE,
    }
}

const fn ctrl(c: char) -> Key {
    Key {
        code: KeyCode::Char(c),
        modifiers: KeyModifiers::CONTROL,
    }
}

pub struct Binding {
    pub keys: &'static [Key],
    pub action: Action,
    pub scopes: &'static [Scope],
    /// Footer hint as (keys, text); one hint may stand for a group of bindings ("1/2/3").
    /// `None` keeps the binding out of the footer.
    pub hint: Option<(&'static str, &'static str)>,
    pub help: &'static str,
}

use Scope::{
    Alerts, Certificates, ClientDetail, Confirm, Detail, FilterInput, Global, Help as HelpScope, Holdouts, Servers,
    Table, WhatIf,
};

#[rustfmt::skip]
pub const BINDINGS: &[Binding] = &[
    Binding { keys: &[key('q')], action: Action::Quit, scopes: &[Global], hint: Some(("q", "quit")), help: "Quit" },
    Binding { keys: &[ctrl('c')], action: Action::Quit, scopes: &[Global, FilterInput, Confirm], hint: None, help: "Quit from anywhere, even while typing a filter" },
    Binding { keys: &[key('?'), special(KeyCode::F(1))], action: Action::Help, scopes: &[Global], hint: Some(("?", "help")), help: "Show or hide this help" },
    Binding { keys: &[special(KeyCode::Up), key('k')], action: Action::Up, scopes: &[Table, Detail, ClientDetail, Holdouts, WhatIf, Certificates, Alerts, HelpScope, Servers], hint: None, help: "Move up (scroll in reports; on What-if after the change, pick a lingering session)" },
    Binding { keys: &[special(KeyCode::Down), key('j')], action: Action::Down, scopes: &[Table, Detail, ClientDetail, Holdouts, WhatIf, Certificates, Alerts, HelpScope, Servers], hint: Some(("↓/j", "move")), help: "Move down (scroll in reports; on What-if after the change, pick a lingering session)" },
    Binding { keys: &[special(KeyCode::PageUp), ctrl('b')], action: Action::PageUp, scopes: &[Table, Detail, ClientDetail, Holdouts, WhatIf, Certificates, Alerts, HelpScope, Servers], hint: None, help: "Page up" },
    Binding { keys: &[special(KeyCode::PageDown), ctrl('f')], action: Action::PageDown, scopes: &[Table, Detail, ClientDetail, Holdouts, WhatIf, Certificates, Alerts, HelpScope, Servers], hint: None, help: "Page down" },
    Binding { keys: &[special(KeyCode::Home), key('g')], action: Action::Top, scopes: &[Table, Detail, ClientDetail, Holdouts, WhatIf, Certificates, Alerts, HelpScope, Servers], hint: None, help: "First row" },
    Binding { keys: &[special(KeyCode::End), key('G')], action: Action::Bottom, scopes: &[Table, Detail, ClientDetail, Holdouts, WhatIf, Certificates, Alerts, HelpScope, Servers], hint: None, help: "Last row" },
    Binding { keys: &[key('s'), key('>')], action: Action::SortNext, scopes: &[Table, Holdouts, Servers], hint: Some(("s/>", "sort")), help: "Sort by the next column" },
    Binding { keys: &[key('S'), key('<')], action: Action::SortPrev, scopes: &[Table, Holdouts, Servers], hint: None, help: "Sort by the previous column" },
    Binding { keys: &[key('i')], action: Action::SortReverse, scopes: &[Table, Holdouts, Servers], hint: Some(("i", "reverse")), help: "Reverse the sort order (▲ ascending, ▼ descending)" },
    Binding { keys: &[key('v')], action: Action::ToggleQuery, scopes: &[Table], hint: Some(("v", "query")), help: "Show or hide the TIME+ and QUERY columns (the query takes the width left)" },
    Binding { keys: &[key('/')], action: Action::StartFilter, scopes: &[Table, Holdouts], hint: Some(("/", "filter")), help: "Filter rows: text matched in every column, case-insensitive" },
    Binding { keys: &[special(KeyCode::Esc)], action: Action::ClearFilter, scopes: &[FilterInput], hint: Some(("Esc", "clear")), help: "Clear the filter and stop typing" },
    Binding { keys: &[special(KeyCode::Enter)], action: Action::ApplyFilter, scopes: &[FilterInput], hint: Some(("Enter", "keep")), help: "Keep the filter and go back to the table" },
    Binding { keys: &[special(KeyCode::Backspace)], action: Action::DeleteChar, scopes: &[FilterInput], hint: None, help: "Delete the last character of the filter" },
    Binding { keys: &[key('1')], action: Action::ViewAll, scopes: &[Table], hint: None, help: "Quick view: all sessions" },
    Binding { keys: &[key('2')], action: Action::ViewNoTls, scopes: &[Table], hint: None, help: "Quick view: no TLS over TCP only" },
    Binding { keys: &[key('3')], action: Action::ViewBelowTls13, scopes: &[Table], hint: Some(("1/2/3", "all/no TLS/<1.3")), help: "Quick view: TLS below 1.3 only" },
    Binding { keys: &[special(KeyCode::Enter)], action: Action::Open, scopes: &[Table, Holdouts, WhatIf, Servers], hint: Some(("Enter", "details")), help: "Open the selected row: the session; on Holdouts every session, version and cipher of the client; on What-if after the change, the selected lingering session, else the Sources in full; on Servers that server's dashboard (Esc comes back)" },
    Binding { keys: &[special(KeyCode::Esc), special(KeyCode::Backspace)], action: Action::Back, scopes: &[Detail, ClientDetail, HelpScope, Table, Holdouts, WhatIf, Certificates, Alerts], hint: Some(("Esc", "back")), help: "Back (in the table: clear the filter)" },
    Binding { keys: &[key('p'), key(' ')], action: Action::Pause, scopes: &[Global], hint: Some(("p", "pause")), help: "Pause or resume refreshing" },
    Binding { keys: &[key('+'), key('=')], action: Action::Slower, scopes: &[Global], hint: None, help: "Refresh less often (longer interval)" },
    Binding { keys: &[key('-')], action: Action::Faster, scopes: &[Global], hint: Some(("+/-", "interval")), help: "Refresh more often (shorter interval)" },
    Binding { keys: &[special(KeyCode::Tab)], action: Action::NextScreen, scopes: &[Global], hint: Some(("Tab", "screens")), help: "Next screen: Sessions, Holdouts, What-if, Certificates" },
    Binding { keys: &[special(KeyCode::BackTab)], action: Action::PrevScreen, scopes: &[Global], hint: None, help: "Previous screen" },
    Binding { keys: &[key('t')], action: Action::ShowSessions, scopes: &[Global], hint: None, help: "Sessions table" },
    Binding { keys: &[key('h')], action: Action::ShowHoldouts, scopes: &[Global], hint: None, help: "Holdouts: every client seen, with the TLS it used (the ledger)" },
    Binding { keys: &[key('w')], action: Action::ShowWhatIf, scopes: &[Global], hint: None, help: "What-if: who breaks if the minimum is raised or TLS is required" },
    Binding { keys: &[key('c')], action: Action::ShowCertificates, scopes: &[Global], hint: None, help: "Certificates: the server's chain, expiry and accepted TLS versions" },
    Binding { keys: &[special(KeyCode::Left), special(KeyCode::Right), key('x')], action: Action::NextTarget, scopes: &[WhatIf], hint: Some(("←/→", "target")), help: "Switch the what-if target (TLSv1.3 minimum / TLS required)" },
    Binding { keys: &[key('P')], action: Action::Probe, scopes: &[Certificates], hint: Some(("P", "probe again")), help: "Probe the server again (each probe opens about ten connections)" },
    Binding { keys: &[key('a')], action: Action::ShowAlerts, scopes: &[Global], hint: None, help: "Every alert, full screen (the pane shows \"+N more\" when some do not fit); again or Esc: back" },
    Binding { keys: &[key('z')], action: Action::TogglePanes, scopes: &[Global], hint: Some(("z", "panes")), help: "Hide or show the top panes (server TLS, protocols, alerts): the table gets their rows" },
    Binding { keys: &[key('K')], action: Action::Terminate, scopes: &[Table, Detail, WhatIf], hint: Some(("K/C", "terminate/cancel")), help: "Terminate the selected session (pg_terminate_backend; on What-if the selected lingering one), after a confirmation; not with --read-only" },
    Binding { keys: &[key('C')], action: Action::CancelQuery, scopes: &[Table, Detail, WhatIf], hint: None, help: "Cancel the selected session's query (pg_cancel_backend), after a confirmation; not with --read-only" },
    Binding { keys: &[key('y')], action: Action::Confirm, scopes: &[Confirm], hint: Some(("y", "yes · any other key: no")), help: "Confirm: send the signal (any other key cancels)" },
    Binding { keys: &[key('J')], action: Action::ShowJoin, scopes: &[Global], hint: None, help: "The demo: how to reach its server with psql (the lines are also in the file the header names); again or Esc: back" },
    Binding { keys: &[key('r')], action: Action::Refresh, scopes: &[Global], hint: Some(("r", "refresh")), help: "Refresh now (or reconnect now)" },
];

/// The action bound to `event` in `scope`. Scope bindings win over global ones; while typing a
/// filter only the filter's own bindings (and quit) apply.
pub fn lookup(scope: Scope, event: &KeyEvent) -> Option<Action> {
    let matches = |b: &&Binding, s: Scope| {
        b.scopes.contains(&s) && b.keys.iter().any(|k| k.code == event.code && modifiers_match(k, event))
    };
    BINDINGS
        .iter()
        .find(|b| matches(b, scope))
        .or_else(|| {
            (!scope.is_modal())
                .then(|| BINDINGS.iter().find(|b| matches(b, Scope::Global)))
                .flatten()
        })
        .map(|b| b.action)
}

/// Shift is part of the character for letters and symbols ('G', '?', '+'), so only Ctrl/Alt must match.
fn modifiers_match(key: &Key, event: &KeyEvent) -> bool {
    let relevant = KeyModifiers::CONTROL | KeyModifiers::ALT;
    (event.modifiers & relevant) == (key.modifiers & relevant)
}

/// Footer hints for a scope: its own bindings first, then global ones.
pub fn hints(scope: Scope) -> Vec<(&'static str, &'static str)> {
    let own = BINDINGS.iter().filter(|b| b.scopes.contains(&scope));
    let global = BINDINGS
        .iter()
        .filter(|b| !scope.is_modal() && b.scopes.contains(&Scope::Global) && !b.scopes.contains(&scope));
    own.chain(global).filter_map(|b| b.hint).collect()
}

/// The global actions the Servers screen carries out itself; the others (screens, panes, pause) belong to one
/// server's dashboard.
pub fn works_on_servers(action: Action) -> bool {
    matches!(action, Action::Refresh | Action::Quit | Action::Help)
}

/// What the Servers screen says when a key of one server's dashboard is pressed there.
pub const SERVERS_ONLY_IN_DASHBOARD: &str = "that key acts on one server's dashboard: Enter opens the selected server";

/// The Servers screen's footer: its own bindings and the few global ones that work there.
pub fn servers_hints() -> Vec<(&'static str, &'static str)> {
    servers_bindings().filter_map(|b| b.hint).collect()
}

fn servers_bindings() -> impl Iterator<Item = &'static Binding> {
    BINDINGS.iter().filter(|b| {
        b.scopes.contains(&Scope::Servers) || (b.scopes.contains(&Scope::Global) && works_on_servers(b.action))
    })
}

/// The Servers screen's `?` help, from the key table: every key that works there, with its text.
pub fn servers_help() -> Vec<(String, &'static str)> {
    servers_bindings().map(|b| (keys_label(b), b.help)).collect()
}

/// The footer hints as they read now: while paused, `p` resumes.
pub fn hints_when(scope: Scope, paused: bool) -> Vec<(&'static str, &'static str)> {
    let mut hints = hints(scope);
    if paused {
        let pause = BINDINGS.iter().find(|b| b.action == Action::Pause).and_then(|b| b.hint);
        for hint in hints.iter_mut().filter(|h| Some(**h) == pause) {
            hint.1 = "resume";
        }
    }
    hints
}

/// Help lines grouped by scope, for the `?` overlay: each binding's keys as written (`PgUp/Ctrl-b`) and its text.
/// The keys are written from the bindings themselves, so help lists every key dispatch knows.
pub fn help_sections() -> Vec<(&'static str, Vec<(String, &'static str)>)> {
    let section = |title: &'static str, scope: Scope| {
        let rows = BINDINGS
            .iter()
            .filter(|b| b.scopes.contains(&scope))
            .map(|b| (keys_label(b), b.help))
            .collect();
        (title, rows)
    };
    vec![
        section("Everywhere", Scope::Global),
        section("Sessions table", Scope::Table),
        section("Filter input", Scope::FilterInput),
        section("Session details", Scope::Detail),
        section("Client details (Holdouts)", Scope::ClientDetail),
        section("Holdouts", Scope::Holdouts),
        section("What-if", Scope::WhatIf),
        section("Certificates", Scope::Certificates),
        section("All alerts", Scope::Alerts),
        section("Confirming a terminate or cancel", Scope::Confirm),
        section("Servers (several servers)", Scope::Servers),
        section("This help", Scope::Help),
    ]
}

/// A binding's keys as help writes them: `↑/k`, `PgUp/Ctrl-b`, `Esc/Backspace`.
pub fn keys_label(binding: &Binding) -> String {
    binding.keys.iter().map(key_name).collect::<Vec<_>>().join("/")
}

/// How a key is written in docs: `↑`, `k`, `Ctrl-c`, `Shift-Tab`, `Space`.
pub fn key_name(key: &Key) -> String {
    let base = match key.code {
        KeyCode::Up => "↑".to_string(),
        KeyCode::Down => "↓".to_string(),
        KeyCode::Left => "←".to_string(),
        KeyCode::Right => "→".to_string(),
        KeyCode::PageUp => "PgUp".to_string(),
        KeyCode::PageDown => "PgDn".to_string(),
        KeyCode::Home => "Home".to_string(),
        KeyCode::End => "End".to_string(),
        KeyCode::Enter => "Enter".to_string(),
        KeyCode::Esc => "Esc".to_string(),
        KeyCode::Tab => "Tab".to_string(),
        KeyCode::BackTab => "Shift-Tab".to_string(),
        KeyCode::Backspace => "Backspace".to_string(),
        KeyCode::F(n) => format!("F{n}"),
        KeyCode::Char(' ') => "Space".to_string(),
        KeyCode::Char(c) => c.to_string(),
        other => format!("{other:?}"),
    };
    if key.modifiers.contains(KeyModifiers::CONTROL) {
        format!("Ctrl-{base}")
    } else {
        base
    }
}

/// The key table as rows of (keys, action, where), from [`BINDINGS`]: the README's table and the man page's KEYS
/// section are made from it, so neither can drift from what dispatch does.
pub fn table_rows() -> Vec<(Vec<String>, &'static str, Vec<&'static str>)> {
    let scope_name = |s: &Scope| match s {
        Scope::Global => "everywhere",
        Scope::Table => "sessions",
        Scope::Detail => "details",
        Scope::ClientDetail => "client details",
        Scope::FilterInput => "typing a filter",
        Scope::Help => "help",
        Scope::Holdouts => "holdouts",
        Scope::WhatIf => "what-if",
        Scope::Certificates => "certificates",
        Scope::Alerts => "all alerts",
        Scope::Confirm => "confirming",
        Scope::Servers => "servers",
    };
    BINDINGS
        .iter()
        .map(|b| {
            (
                b.keys.iter().map(key_name).collect(),
                b.help,
                b.scopes.iter().map(scope_name).collect(),
            )
        })
        .collect()
}

/// The README's key table, generated from [`BINDINGS`] so the two cannot drift apart.
pub fn markdown_table() -> String {
    let mut out = String::from("| keys | action | where |\n|---|---|---|\n");
    for (keys, help, scopes) in table_rows() {
        let keys: Vec<String> = keys.iter().map(|k| format!("`{k}`")).collect();
        out.push_str(&format!("| {} | {} | {} |\n", keys.join(" "), help, scopes.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCOPES: [Scope; 12] = [
        Scope::Global,
        Scope::Table,
        Scope::Detail,
        Scope::ClientDetail,
        Scope::FilterInput,
        Scope::Help,
        Scope::Holdouts,
        Scope::WhatIf,
        Scope::Certificates,
        Scope::Alerts,
        Scope::Confirm,
        Scope::Servers,
    ];

    #[test]
    fn no_key_is_bound_twice_in_a_scope() {
        for scope in SCOPES {
            let mut seen: Vec<(Key, Action)> = Vec::new();
            for b in BINDINGS.iter().filter(|b| b.scopes.contains(&scope)) {
                for k in b.keys {
                    if let Some((_, other)) = seen.iter().find(|(s, _)| s == k) {
                        panic!("{k:?} is bound to {other:?} and {:?} in {scope:?}", b.action);
                    }
                    seen.push((*k, b.action));
                }
            }
        }
    }

    #[test]
    fn scope_keys_do_not_shadow_global_ones_by_accident() {
        // Only these deliberate overrides exist: none today. A scope key equal to a global key would hide it.
        for b in BINDINGS.iter().filter(|b| !b.scopes.contains(&Scope::Global)) {
            for g in BINDINGS.iter().filter(|g| g.scopes.contains(&Scope::Global)) {
                for k in b.keys {
                    let shared_scope = b.scopes.iter().any(|s| !s.is_modal());
                    assert!(
                        !(shared_scope && g.keys.contains(k)),
                        "{k:?} of {:?} shadows global {:?}",
                        b.action,
                        g.action
                    );
                }
            }
        }
    }

    #[test]
    fn lookup_respects_scopes() {
        let ev = |c| KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE);
        assert_eq!(lookup(Scope::Table, &ev('j')), Some(Action::Down));
        assert_eq!(lookup(Scope::Table, &ev('q')), Some(Action::Quit));
        assert_eq!(
            lookup(Scope::FilterInput, &ev('q')),
            None,
            "q is text while typing a filter"
        );
        assert_eq!(
            lookup(
                Scope::FilterInput,
                &KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)
            ),
            Some(Action::Quit)
        );
        assert_eq!(
            lookup(Scope::Table, &KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE)),
            Some(Action::Open)
        );
        assert_eq!(
            lookup(Scope::FilterInput, &KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE)),
            Some(Action::ApplyFilter)
        );
        assert_eq!(
            lookup(Scope::Table, &KeyEvent::new(KeyCode::Char('G'), KeyModifiers::SHIFT)),
            Some(Action::Bottom)
        );
        assert_eq!(lookup(Scope::Detail, &ev('s')), None);
    }

    #[test]
    fn every_key_of_the_table_reaches_its_action_where_it_is_bound() {
        // Dispatch reads this table only, so a key it handles is a key help and the README list; this checks the
        // converse: no binding is unreachable because another one takes its key first.
        for b in BINDINGS {
            for scope in b.scopes {
                for k in b.keys {
                    let event = KeyEvent::new(k.code, k.modifiers);
                    assert_eq!(lookup(*scope, &event), Some(b.action), "{} in {scope:?}", key_name(k));
                }
            }
        }
    }

    #[test]
    fn screens_offer_no_key_that_cannot_act_there() {
        // A Holdouts client is not one session: K and C there could only answer "no session selected".
        let offered: Vec<&str> = hints(Scope::ClientDetail).iter().map(|(k, _)| *k).collect();
        assert!(!offered.contains(&"K/C"), "{offered:?}");
        assert!(hints(Scope::Detail).iter().any(|(k, _)| *k == "K/C"));
        // The Servers screen offers help, and every global key it offers is one it carries out.
        let servers: Vec<&str> = servers_hints().iter().map(|(k, _)| *k).collect();
        assert!(servers.contains(&"?"), "{servers:?}");
        for b in BINDINGS.iter().filter(|b| b.scopes.contains(&Scope::Global)) {
            let shown = servers_help().iter().any(|(_, help)| *help == b.help);
            assert_eq!(shown, works_on_servers(b.action), "{:?}", b.action);
        }
    }

    #[test]
    fn every_action_is_documented_in_help() {
        let sections = help_sections();
        for b in BINDINGS {
            assert!(
                sections
                    .iter()
                    .any(|(_, rows)| rows.iter().any(|(k, h)| *h == b.help && *k == keys_label(b))),
                "{:?}",
                b.action
            );
        }
    }
}
