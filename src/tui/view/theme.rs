//! Every colour and emphasis the dashboard uses, named by what it means rather than how it looks.
//!
//! Two themes: `color()` and `mono()` for NO_COLOR (<https://no-color.org>). The mono theme keeps bold, reverse,
//! italic and dim, because the meaning must survive without colour: markers (`!`, `~`, `?`) and severity symbols
//! carry it in text, emphasis only helps the eye.
//!
//! Colours stay within the 16 ANSI colours plus two greys of the 256-colour cube, so terminals remap them to the
//! user's palette and the screenshot renderer knows all of them.

use std::sync::OnceLock;

use ratatui::style::{Color, Modifier, Style};

use crate::analysis::alerts::Severity;
use crate::model::ConnClass;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Theme {
    /// "pgtls" in the header.
    pub brand: Style,
    /// Values that matter: target, server version, setting values.
    pub strong: Style,
    /// Secondary text: field labels, alert details, hint descriptions.
    pub dim: Style,
    pub border: Style,
    /// Block titles.
    pub title: Style,
    /// Key names in the footer and help.
    pub key: Style,
    pub ok: Style,
    pub warning: Style,
    pub critical: Style,
    pub info: Style,
    /// The PAUSED badge.
    pub paused: Style,
    /// The NEW badge on alerts that began within the last minute.
    pub new_badge: Style,
    /// The DISCONNECTED banner.
    pub lost: Style,
    /// "session ended" banner in the detail view.
    pub ended: Style,
    pub table_header: Style,
    /// The selected table row; patched over the cell styles.
    pub selected: Style,
    /// Text typed into the filter.
    pub input: Style,
    pub tls13: Style,
    pub tls12: Style,
    pub tls_older: Style,
    pub plain_tcp: Style,
    pub gss: Style,
    pub local: Style,
    pub unknown: Style,
}

/// Grey readable on dark and light backgrounds, for secondary text.
const GREY: Color = Color::Indexed(245);
/// Background of the selected row: visible but quieter than a reverse bar, so class colours stay legible.
const SELECTION: Color = Color::Indexed(237);

impl Theme {
    pub fn color() -> Theme {
        let plain = Style::new();
        Theme {
            brand: plain.fg(Color::Cyan).add_modifier(Modifier::BOLD),
            strong: plain.add_modifier(Modifier::BOLD),
            dim: plain.fg(GREY),
            border: plain.fg(Color::DarkGray),
            title: plain.add_modifier(Modifier::BOLD),
            key: plain.fg(Color::Cyan).add_modifier(Modifier::BOLD),
            ok: plain.fg(Color::Green),
            warning: plain.fg(Color::Yellow),
            critical: plain.fg(Color::LightRed).add_modifier(Modifier::BOLD),
            info: plain.fg(Color::LightBlue),
            paused: plain.fg(Color::Black).bg(Color::Yellow).add_modifier(Modifier::BOLD),
            new_badge: plain.fg(Color::Black).bg(Color::Yellow).add_modifier(Modifier::BOLD),
            lost: plain.fg(Color::White).bg(Color::Red).add_modifier(Modifier::BOLD),
            ended: plain.fg(Color::Black).bg(Color::Yellow).add_modifier(Modifier::BOLD),
            table_header: plain.add_modifier(Modifier::BOLD),
            selected: plain.bg(SELECTION).add_modifier(Modifier::BOLD),
            input: plain.fg(Color::Yellow).add_modifier(Modifier::BOLD),
            tls13: plain.fg(Color::Green),
            tls12: plain.fg(Color::Yellow),
            tls_older: plain.fg(Color::LightRed),
            plain_tcp: plain.fg(Color::LightRed).add_modifier(Modifier::BOLD),
            gss: plain.fg(Color::Cyan),
            local: plain.fg(Color::LightBlue),
            unknown: plain.fg(Color::Gray).add_modifier(Modifier::ITALIC),
        }
    }

    /// For NO_COLOR: emphasis only.
    pub fn mono() -> Theme {
        let plain = Style::new();
        let bold = plain.add_modifier(Modifier::BOLD);
        let reversed = plain.add_modifier(Modifier::REVERSED);
        Theme {
            brand: bold,
            strong: bold,
            dim: plain.add_modifier(Modifier::DIM),
            border: plain,
            title: bold,
            key: bold,
            ok: plain,
            warning: bold,
            critical: bold,
            info: plain,
            paused: reversed.add_modifier(Modifier::BOLD),
            new_badge: reversed,
            lost: reversed.add_modifier(Modifier::BOLD),
            ended: reversed,
            table_header: bold.add_modifier(Modifier::UNDERLINED),
            selected: reversed,
            input: bold,
            tls13: plain,
            tls12: bold,
            tls_older: bold,
            plain_tcp: bold,
            gss: plain,
            local: plain,
            unknown: plain.add_modifier(Modifier::ITALIC),
        }
    }

    /// Mono when NO_COLOR is set to anything non-empty, as the convention asks.
    pub fn from_env() -> Theme {
        match std::env::var_os("NO_COLOR") {
            Some(v) if !v.is_empty() => Theme::mono(),
            _ => Theme::color(),
        }
    }

    pub fn class(&self, class: ConnClass) -> Style {
        match class {
            ConnClass::Tls13 => self.tls13,
            ConnClass::Tls12 => self.tls12,
            ConnClass::TlsOlder => self.tls_older,
            ConnClass::PlainTcp => self.plain_tcp,
            ConnClass::Gss => self.gss,
            ConnClass::Local => self.local,
            ConnClass::Unknown => self.unknown,
        }
    }

    pub fn severity(&self, severity: Severity) -> Style {
        match severity {
            Severity::Critical => self.critical,
            Severity::Warning => self.warning,
            Severity::Info => self.info,
        }
    }

    /// The row marker that makes exposure readable without colour, and its style.
    pub fn marker(&self, class: ConnClass) -> (&'static str, Style) {
        match class {
            ConnClass::PlainTcp => ("!", self.critical),
            ConnClass::Tls12 | ConnClass::TlsOlder => ("~", self.warning),
            ConnClass::Unknown => ("?", self.unknown.add_modifier(Modifier::DIM)),
            _ => (" ", Style::new()),
        }
    }
}

static THEME: OnceLock<Theme> = OnceLock::new();
static DEFAULT: OnceLock<Theme> = OnceLock::new();

/// Choose the theme once, at start-up (usually `Theme::from_env()`). Later calls are ignored: the look must not
/// change under the user, and views stay free of configuration reads.
pub fn set_theme(theme: Theme) {
    // A second call losing the race is fine: the first choice stands.
    let _ = THEME.set(theme);
}

/// The theme chosen with [`set_theme`], or colour. Drawing before `set_theme` does not lock the choice in.
pub fn current() -> &'static Theme {
    THEME.get().unwrap_or_else(|| DEFAULT.get_or_init(Theme::color))
}
