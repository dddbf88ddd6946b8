//! The Servers screen of a multi-server dashboard: one row per target, sortable, with a selection kept on its
//! target's name (rows are rebuilt on every refresh and re-sorted).

use std::cmp::Ordering;

use crate::analysis::fleet::ServerRow;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerColumn {
    Change,
    Status,
    Version,
    Floor,
    Tls13,
    Tls12,
    Older,
    Plain,
    Holdouts,
    CertDays,
    Root,
}

impl ServerColumn {
    pub const ALL: [ServerColumn; 11] = [
        ServerColumn::Change,
        ServerColumn::Status,
        ServerColumn::Version,
        ServerColumn::Floor,
        ServerColumn::Tls13,
        ServerColumn::Tls12,
        ServerColumn::Older,
        ServerColumn::Plain,
        ServerColumn::Holdouts,
        ServerColumn::CertDays,
        ServerColumn::Root,
    ];

    pub fn title(self) -> &'static str {
        match self {
            ServerColumn::Change => "TARGET",
            ServerColumn::Status => "STATUS",
            ServerColumn::Version => "VERSION",
            ServerColumn::Floor => "MIN TLS",
            ServerColumn::Tls13 => "TLS1.3",
            ServerColumn::Tls12 => "TLS1.2",
            ServerColumn::Older => "OLDER",
            ServerColumn::Plain => "PLAIN",
            ServerColumn::Holdouts => "HOLDOUTS",
            ServerColumn::CertDays => "CERT DAYS",
            ServerColumn::Root => "CHAIN ROOT",
        }
    }

    /// Counts sort largest first, so `s` onto PLAIN puts the worst server on top.
    fn descending_first(self) -> bool {
        matches!(
            self,
            ServerColumn::Tls12
                | ServerColumn::Older
                | ServerColumn::Plain
                | ServerColumn::Holdouts
                | ServerColumn::Status
        )
    }

    fn compare(self, a: &ServerRow, b: &ServerRow) -> Ordering {
        match self {
            ServerColumn::Change => a.name.cmp(&b.name),
            // Down sorts above up when descending (the default for this column).
            ServerColumn::Status => (!a.up).cmp(&!b.up),
            ServerColumn::Version => a.version.cmp(&b.version),
            ServerColumn::Floor => a.ssl_min_protocol_version.cmp(&b.ssl_min_protocol_version),
            ServerColumn::Tls13 => a.sessions.tls13.cmp(&b.sessions.tls13),
            ServerColumn::Tls12 => a.sessions.tls12.cmp(&b.sessions.tls12),
            ServerColumn::Older => a.sessions.tls_older.cmp(&b.sessions.tls_older),
            ServerColumn::Plain => a.sessions.plain_tcp.cmp(&b.sessions.plain_tcp),
            ServerColumn::Holdouts => a.holdouts.cmp(&b.holdouts),
            ServerColumn::CertDays => a.certificate_days_left.cmp(&b.certificate_days_left),
            ServerColumn::Root => a.chain_root.cmp(&b.chain_root),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Servers {
    /// In display order.
    pub rows: Vec<ServerRow>,
    pub sort: ServerColumn,
    pub descending: bool,
    /// The selected target's name.
    pub selected: Option<String>,
    /// Rows that fit on one page, from the last draw.
    pub page: usize,
    /// The `?` help is open over the table.
    pub help: bool,
    /// Why the last key did nothing here, shown in the footer until the next key.
    pub note: Option<&'static str>,
}

impl Default for Servers {
    fn default() -> Self {
        Servers {
            rows: Vec::new(),
            sort: ServerColumn::Change,
            descending: false,
            selected: None,
            page: 10,
            help: false,
            note: None,
        }
    }
}

impl Servers {
    pub fn set_rows(&mut self, rows: Vec<ServerRow>) {
        self.rows = rows;
        self.resort();
        if self.selected_index().is_none() {
            self.selected = self.rows.first().map(|r| r.name.clone());
        }
    }

    fn resort(&mut self) {
        let (column, descending) = (self.sort, self.descending);
        // Stable, with the name as the tie-break, so equal rows keep one order from refresh to refresh.
        self.rows.sort_by(|a, b| {
            let primary = column.compare(a, b);
            let primary = if descending { primary.reverse() } else { primary };
            primary.then_with(|| a.name.cmp(&b.name))
        });
    }

    pub fn selected_index(&self) -> Option<usize> {
        let name = self.selected.as_ref()?;
        self.rows.iter().position(|r| &r.name == name)
    }

    pub fn selected_row(&self) -> Option<&ServerRow> {
        self.selected_index().and_then(|i| self.rows.get(i))
    }

    pub fn move_by(&mut self, delta: isize) {
        if self.rows.is_empty() {
            return;
        }
        let at = self.selected_index().unwrap_or(0);
        let next = at.saturating_add_signed(delta).min(self.rows.len() - 1);
        self.selected = Some(self.rows[next].name.clone());
    }

    /// `s`/`S`: the next or previous column, in its natural direction.
    pub fn cycle_sort(&mut self, step: isize) {
        let n = ServerColumn::ALL.len() as isize;
        let at = ServerColumn::ALL.iter().position(|c| *c == self.sort).unwrap_or(0) as isize;
        self.sort = ServerColumn::ALL[((at + step).rem_euclid(n)) as usize];
        self.descending = self.sort.descending_first();
        self.resort();
    }

    pub fn sort_by(&mut self, column: ServerColumn) {
        if self.sort == column {
            self.descending = !self.descending;
        } else {
            self.sort = column;
            self.descending = column.descending_first();
        }
        self.resort();
    }

    pub fn reverse(&mut self) {
        self.descending = !self.descending;
        self.resort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::fleet::row;
    use crate::fixtures;

    fn rows() -> Vec<ServerRow> {
        let snap = fixtures::snapshot();
        let mut clean = fixtures::snapshot();
        clean
            .sessions
            .retain(|s| s.monitor || s.class == crate::model::ConnClass::Tls13);
        vec![
            row("b-replica", true, None, Some(&clean), None, None),
            row("a-primary", true, None, Some(&snap), None, None),
            row("c-down", false, Some("connection refused"), None, None, None),
        ]
    }

    #[test]
    fn sorting_keeps_the_selection_on_its_server() {
        let mut s = Servers::default();
        s.set_rows(rows());
        fn names(s: &Servers) -> Vec<&str> {
            s.rows.iter().map(|r| r.name.as_str()).collect()
        }
        assert_eq!(names(&s), ["a-primary", "b-replica", "c-down"]);
        assert_eq!(s.selected.as_deref(), Some("a-primary"));
        s.move_by(1);
        assert_eq!(s.selected.as_deref(), Some("b-replica"));
        s.sort_by(ServerColumn::Status);
        assert_eq!(names(&s)[0], "c-down", "down servers first");
        assert_eq!(s.selected_row().map(|r| r.name.as_str()), Some("b-replica"));
        s.sort_by(ServerColumn::Plain);
        assert_eq!(names(&s)[0], "a-primary", "the one with plain-text sessions first");
        s.reverse();
        assert_eq!(names(&s)[2], "a-primary");
        s.move_by(100);
        assert_eq!(s.selected_index(), Some(2), "clamped");
        s.set_rows(rows());
        assert_eq!(s.selected.as_deref(), Some("a-primary"), "kept across refreshes");
    }
}
