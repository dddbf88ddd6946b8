//! The sessions table's columns: titles, widths, which to drop first on narrow terminals, and sort keys.

use std::cmp::Ordering;

use crate::model::{ConnClass, Session};
use crate::output::safe::terminal;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Column {
    Pid,
    User,
    Database,
    Application,
    Client,
    Age,
    State,
    Tls,
    Cipher,
    Bits,
    ClientDn,
}

impl Column {
    /// Display order; also the order `s` cycles through.
    pub const ALL: [Column; 11] = [
        Column::Pid,
        Column::User,
        Column::Database,
        Column::Application,
        Column::Client,
        Column::Age,
        Column::State,
        Column::Tls,
        Column::Cipher,
        Column::Bits,
        Column::ClientDn,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Column::Pid => "PID",
            Column::User => "USER",
            Column::Database => "DATABASE",
            Column::Application => "APPLICATION",
            Column::Client => "CLIENT",
            Column::Age => "AGE",
            Column::State => "STATE",
            Column::Tls => "TLS",
            Column::Cipher => "CIPHER",
            Column::Bits => "BITS",
            Column::ClientDn => "CLIENT DN",
        }
    }

    /// Preferred width in cells (the last column takes what is left).
    pub fn width(self) -> u16 {
        match self {
            Column::Pid => 7,
            Column::User => 9,
            Column::Database => 8,
            Column::Application => 15,
            Column::Client => 17,
            Column::Age => 6,
            Column::State => 10,
            Column::Tls => 8,
            Column::Cipher => 27,
            Column::Bits => 4,
            Column::ClientDn => 18,
        }
    }

    /// Lower drops first when the terminal is narrow; the TLS facts never drop.
    pub fn priority(self) -> u8 {
        match self {
            Column::Pid | Column::Tls => 10,
            Column::Application | Column::User => 9,
            Column::Client => 8,
            Column::Cipher => 7,
            Column::Age => 5,
            Column::Database => 4,
            Column::State => 6,
            Column::ClientDn => 3,
            Column::Bits => 2,
        }
    }

    /// The text shown in a cell.
    pub fn text(self, s: &Session, now: chrono::DateTime<chrono::Utc>) -> String {
        let opt = |v: &Option<String>| terminal(v.as_deref().unwrap_or("")).into_owned();
        match self {
            Column::Pid => s.pid.to_string(),
            Column::User => opt(&s.user),
            Column::Database => opt(&s.database),
            Column::Application => crate::output::table::application(s),
            Column::Client => s.client_endpoint(),
            Column::Age => s.age_secs(now).map(crate::format::age).unwrap_or_default(),
            Column::State => opt(&s.state),
            Column::Tls => crate::output::table::short_label(s),
            Column::Cipher => s.tls.as_ref().map(|t| t.cipher.clone()).unwrap_or_default(),
            Column::Bits => s
                .tls
                .as_ref()
                .and_then(|t| t.bits)
                .map(|b| b.to_string())
                .unwrap_or_default(),
            Column::ClientDn => s.tls.as_ref().and_then(|t| t.client_dn.clone()).unwrap_or_default(),
        }
    }

    /// Ascending order for this column. Ties are left to the caller's stable sort (by pid).
    pub fn compare(self, a: &Session, b: &Session) -> Ordering {
        let text = |v: &Option<String>, w: &Option<String>| v.as_deref().unwrap_or("").cmp(w.as_deref().unwrap_or(""));
        match self {
            Column::Pid => a.pid.cmp(&b.pid),
            Column::User => text(&a.user, &b.user),
            Column::Database => text(&a.database, &b.database),
            Column::Application => text(&a.application_name, &b.application_name),
            Column::Client => a
                .client_addr
                .cmp(&b.client_addr)
                .then(a.client_port.cmp(&b.client_port)),
            // Ascending age means the youngest session (latest backend_start) first.
            Column::Age => b.backend_start.cmp(&a.backend_start),
            Column::State => text(&a.state, &b.state),
            Column::Tls => exposure_rank(a.class).cmp(&exposure_rank(b.class)),
            Column::Cipher => {
                let c = |s: &Session| s.tls.as_ref().map(|t| t.cipher.clone()).unwrap_or_default();
                c(a).cmp(&c(b))
            }
            Column::Bits => {
                let bits = |s: &Session| s.tls.as_ref().and_then(|t| t.bits);
                bits(a).cmp(&bits(b))
            }
            Column::ClientDn => {
                let dn = |s: &Session| s.tls.as_ref().and_then(|t| t.client_dn.clone());
                dn(a).cmp(&dn(b))
            }
        }
    }
}

/// Worst exposure first, so sorting by TLS puts plain-text and old-TLS sessions on top.
pub fn exposure_rank(class: ConnClass) -> u8 {
    match class {
        ConnClass::PlainTcp => 0,
        ConnClass::TlsOlder => 1,
        ConnClass::Tls12 => 2,
        ConnClass::Unknown => 3,
        ConnClass::Gss => 4,
        ConnClass::Tls13 => 5,
        ConnClass::Local => 6,
    }
}

/// The columns that fit in `width`, in display order: drop the lowest priority until they fit.
pub fn fitting(width: u16) -> Vec<Column> {
    let mut cols: Vec<Column> = Column::ALL.to_vec();
    // One cell for the marker, one space between columns.
    let needed = |cols: &[Column]| 2 + cols.iter().map(|c| c.width() + 1).sum::<u16>();
    while needed(&cols) > width && cols.len() > 2 {
        if let Some(pos) = cols
            .iter()
            .enumerate()
            .min_by_key(|(i, c)| (c.priority(), std::cmp::Reverse(*i)))
            .map(|(i, _)| i)
        {
            cols.remove(pos);
        }
    }
    cols
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_terminals_show_everything_and_narrow_ones_keep_tls_facts() {
        assert_eq!(fitting(200).len(), Column::ALL.len());
        let narrow = fitting(80);
        assert!(
            narrow.contains(&Column::Pid) && narrow.contains(&Column::Tls) && narrow.contains(&Column::Application)
        );
        assert!(!narrow.contains(&Column::Bits));
        let used: u16 = 2 + narrow.iter().map(|c| c.width() + 1).sum::<u16>();
        assert!(used <= 80, "{used}");
    }

    #[test]
    fn tls_sort_puts_exposure_first() {
        let plain = crate::fixtures::session(1, ConnClass::PlainTcp);
        let modern = crate::fixtures::session(2, ConnClass::Tls13);
        assert_eq!(Column::Tls.compare(&plain, &modern), Ordering::Less);
    }
}
