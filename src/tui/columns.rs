//! The sessions table's columns: titles, how wide each may be, which to drop first on narrow terminals, sort keys,
//! and the layout that turns content and terminal width into column widths.

use std::cmp::Ordering;

use chrono::{DateTime, Utc};
use unicode_width::UnicodeWidthStr;

use crate::model::Session;
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
    /// Behind a pooler: the client's own leg to it (only shown when `--pgbouncer` is given).
    ClientLeg,
    Cipher,
    Bits,
    ClientDn,
    /// How long the current query (or open transaction) has run, as pg_activity's TIME+.
    Time,
    /// The query text; it takes whatever width is left.
    Query,
}

/// The query gets at least this much room when shown, so toggling it always shows something.
const QUERY_FLOOR: u16 = 12;
/// Columns of this priority and above are the ones whose values should be whole; those below are extras.
const KEEP_WHOLE: u8 = 5;

impl Column {
    /// Display order; also the order `s` cycles through (among the columns shown).
    pub const ALL: [Column; 14] = [
        Column::Pid,
        Column::User,
        Column::Database,
        Column::Application,
        Column::Client,
        Column::Age,
        Column::State,
        Column::Tls,
        Column::ClientLeg,
        Column::Cipher,
        Column::Bits,
        Column::ClientDn,
        Column::Time,
        Column::Query,
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
            Column::ClientLeg => "CLIENT LEG",
            Column::Cipher => "CIPHER",
            Column::Bits => "BITS",
            Column::ClientDn => "CLIENT DN",
            Column::Time => "TIME+",
            Column::Query => "QUERY",
        }
    }

    /// The query columns, which `v` shows and hides together.
    pub fn is_query(self) -> bool {
        matches!(self, Column::Time | Column::Query)
    }

    /// Width a column keeps when room is short: longer values are cut to it before columns are dropped.
    fn base(self) -> u16 {
        match self {
            Column::Pid => 7,
            Column::User => 9,
            Column::Database => 8,
            Column::Application => 15,
            Column::Client => 17,
            Column::Age => 6,
            Column::State => 10,
            Column::Tls => 8,
            Column::ClientLeg => 12,
            Column::Cipher => 27,
            Column::Bits => 4,
            Column::ClientDn => 18,
            Column::Time => 7,
            Column::Query => QUERY_FLOOR,
        }
    }

    /// The most a column grows to fit its content, so one odd value cannot take the whole row. Names stop at
    /// PostgreSQL's 63 bytes, client DNs at the server's 63-byte cut, states at "idle in transaction (aborted)".
    fn cap(self) -> u16 {
        match self {
            Column::Pid => 7,
            Column::User | Column::Database | Column::Application | Column::ClientDn => 64,
            Column::Client => 47,
            Column::Age | Column::Time => 8,
            Column::State => 29,
            Column::Tls => 8,
            Column::ClientLeg => 24,
            Column::Cipher => 40,
            Column::Bits => 4,
            Column::Query => u16::MAX,
        }
    }

    /// Lower drops first when the terminal is narrow; the TLS facts never drop.
    pub fn priority(self) -> u8 {
        match self {
            Column::Pid | Column::Tls | Column::ClientLeg => 10,
            Column::Application | Column::User => 9,
            Column::Client => 8,
            Column::Cipher => 7,
            Column::State => 6,
            Column::Age => 5,
            Column::Database => 4,
            Column::ClientDn | Column::Time => 3,
            Column::Bits => 2,
            // Never dropped by priority: room for it is set aside first (see `layout`).
            Column::Query => 0,
        }
    }

    /// The text shown in a cell.
    pub fn text(self, s: &Session, now: DateTime<Utc>) -> String {
        let opt = |v: &Option<String>| terminal(v.as_deref().unwrap_or("")).into_owned();
        match self {
            Column::Pid => s.pid.to_string(),
            Column::User => opt(&s.user),
            Column::Database => opt(&s.database),
            Column::Application => crate::output::table::application(s),
            Column::Client => terminal(&s.client_endpoint()).into_owned(),
            Column::Age => s.age_secs(now).map(crate::format::age).unwrap_or_default(),
            Column::State => opt(&s.state),
            Column::Tls => crate::output::table::short_label(s),
            Column::ClientLeg => crate::output::table::client_leg(s),
            Column::Cipher => s
                .tls
                .as_ref()
                .map(|t| terminal(&t.cipher).into_owned())
                .unwrap_or_default(),
            Column::Bits => s
                .tls
                .as_ref()
                .and_then(|t| t.bits)
                .map(|b| b.to_string())
                .unwrap_or_default(),
            // Client certificates are the client's to write.
            Column::ClientDn => s
                .tls
                .as_ref()
                .and_then(|t| t.client_dn.as_deref())
                .map(|dn| terminal(dn).into_owned())
                .unwrap_or_default(),
            Column::Time => running_since(s)
                .map(|start| time_plus((now - start).num_milliseconds()))
                .unwrap_or_default(),
            // One line: a query's newlines and indentation would otherwise be cut at its first line.
            Column::Query => match s.state.as_deref() {
                Some(_) => terminal(
                    &s.query
                        .as_deref()
                        .unwrap_or("")
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" "),
                )
                .into_owned(),
                None => String::new(),
            },
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
            Column::Tls => a.client_class().exposure_rank().cmp(&b.client_class().exposure_rank()),
            Column::ClientLeg => {
                let rank = |s: &Session| (s.pooler.is_none(), s.client_class().exposure_rank());
                rank(a).cmp(&rank(b))
            }
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
            // Ascending time means the shortest-running first (latest start); sessions running nothing go last.
            Column::Time => match (running_since(a), running_since(b)) {
                (Some(x), Some(y)) => y.cmp(&x),
                (x, y) => x.is_none().cmp(&y.is_none()),
            },
            Column::Query => text(&a.query, &b.query),
        }
    }
}

/// Since when the session has been busy: its query while active, its transaction while idle in one.
fn running_since(s: &Session) -> Option<DateTime<Utc>> {
    match s.state.as_deref()? {
        "active" => s.query_start,
        state if state.starts_with("idle in transaction") => s.xact_start.or(s.state_change),
        _ => None,
    }
}

/// pg_activity's TIME+: tenths of a second while short, then the age format (`7m03s`, `3h12m`).
fn time_plus(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 60_000 {
        format!("{}.{}s", ms / 1000, (ms % 1000) / 100)
    } else {
        crate::format::age(ms / 1000)
    }
}

/// What the layout needs to know besides the terminal width.
#[derive(Clone, Copy)]
pub struct LayoutInput<'a> {
    /// The rows on screen: widths follow what is shown, so 50,000 sessions cost no more than a page of them.
    pub rows: &'a [&'a Session],
    pub now: DateTime<Utc>,
    /// The sorted column's title gets room for its arrow, so it never reads "DATAB… ▲".
    pub sorted: Column,
    pub show_query: bool,
    /// Poolers are watched (`--pgbouncer`): the CLIENT LEG column is shown.
    pub poolers: bool,
    /// The widths the table has held (see [`Widths`]): a column is never laid out narrower than these, so it does
    /// not jump as values come and go.
    pub held: Option<&'a Widths>,
}

/// The width of each column's widest value on screen, within its cap (titles not counted).
pub fn content_widths(input: &LayoutInput) -> Vec<(Column, u16)> {
    Column::ALL
        .iter()
        .filter(|c| !c.is_query())
        .map(|c| {
            let content = input
                .rows
                .iter()
                .map(|s| c.text(s, input.now).width())
                .max()
                .unwrap_or(0);
            (*c, u16::try_from(content).unwrap_or(u16::MAX).min(c.cap()))
        })
        .collect()
}

/// Column widths held across refreshes, so the eye can follow a column: a wider value widens its column at once,
/// a narrower content narrows it only after [`Widths::SHRINK_AFTER`] refreshes in a row have all been narrower
/// (hysteresis). Held in the state and settled before each draw; the view only reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Widths {
    held: std::collections::HashMap<Column, Held>,
    /// When the snapshot last settled was taken: a redraw of the same data (a key, a scroll) may widen but never
    /// counts towards narrowing.
    settled_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Held {
    width: u16,
    /// Refreshes in a row whose content was narrower than `width`, and the widest of them.
    narrower_for: u8,
    narrower_max: u16,
}

impl Widths {
    /// Refreshes of narrower content before a column gives the room back.
    pub const SHRINK_AFTER: u8 = 5;

    /// Take in the content widths of what is on screen now, from the snapshot taken at `taken_at`.
    pub fn settle(&mut self, content: &[(Column, u16)], taken_at: DateTime<Utc>) {
        let refresh = self.settled_at != Some(taken_at);
        self.settled_at = Some(taken_at);
        for (column, width) in content {
            let held = self.held.entry(*column).or_insert(Held {
                width: *width,
                narrower_for: 0,
                narrower_max: 0,
            });
            if *width >= held.width {
                *held = Held {
                    width: *width,
                    narrower_for: 0,
                    narrower_max: 0,
                };
            } else if refresh {
                held.narrower_max = if held.narrower_for == 0 {
                    *width
                } else {
                    held.narrower_max.max(*width)
                };
                held.narrower_for += 1;
                if held.narrower_for >= Self::SHRINK_AFTER {
                    *held = Held {
                        width: held.narrower_max,
                        narrower_for: 0,
                        narrower_max: 0,
                    };
                }
            }
        }
    }

    /// The width held for `column`, 0 when none is.
    pub fn get(&self, column: Column) -> u16 {
        self.held.get(&column).map_or(0, |h| h.width)
    }
}

/// The columns shown in a table `width` cells wide (marker cell and gaps included) and each one's width.
///
/// Each column wants the width of its widest value on screen (within its cap) and of its title. When all do not
/// fit, columns first shrink to their base width, then drop by priority; the extras (bits, client DN, TIME+,
/// database) also drop when that lets every other value show whole. Room then goes back to the columns, most
/// important first, up to what they want. The query, when shown, keeps 12 cells and takes whatever is left at
/// the end; without it the last column does.
pub fn layout(width: u16, input: &LayoutInput) -> Vec<(Column, u16)> {
    let title = |c: Column| {
        let arrow = if c == input.sorted { 2 } else { 0 };
        u16::try_from(c.title().width()).unwrap_or(u16::MAX) + arrow
    };
    let want = |c: Column| -> u16 {
        if c == Column::Query {
            return title(c).max(QUERY_FLOOR);
        }
        let content = input
            .rows
            .iter()
            .map(|s| c.text(s, input.now).width())
            .max()
            .unwrap_or(0);
        let held = input.held.map_or(0, |h| h.get(c));
        u16::try_from(content)
            .unwrap_or(u16::MAX)
            .min(c.cap())
            .max(held.min(c.cap()))
            .max(title(c))
    };
    let mut cols: Vec<(Column, u16, u16)> = Column::ALL
        .iter()
        .filter(|c| input.show_query || !c.is_query())
        .filter(|c| input.poolers || **c != Column::ClientLeg)
        .map(|c| {
            let want = want(*c);
            (*c, want.min(c.base()).max(title(*c)), want)
        })
        .collect();
    // One cell for the marker, one space before each column.
    let needed = |cols: &[(Column, u16, u16)]| 1 + cols.iter().map(|(_, floor, _)| floor + 1).sum::<u16>();
    while needed(&cols) > width && cols.iter().filter(|(c, ..)| *c != Column::Query).count() > 2 {
        let drop = cols
            .iter()
            .enumerate()
            .filter(|(_, (c, ..))| *c != Column::Query)
            .min_by_key(|(i, (c, ..))| (c.priority(), std::cmp::Reverse(*i)))
            .map(|(i, _)| i);
        match drop {
            Some(i) => {
                cols.remove(i);
            }
            None => break,
        }
    }
    // Extras give way to whole values: when dropping some of them (least important first) leaves room for every
    // other column to show all it wants, they go; when it would not, they stay, as cutting happens anyway.
    let short = |cols: &[(Column, u16, u16)]| {
        cols.iter()
            .filter(|(c, ..)| c.priority() >= KEEP_WHOLE)
            .map(|(_, floor, want)| want.saturating_sub(*floor))
            .sum::<u16>()
    };
    let mut extras: Vec<usize> = (0..cols.len())
        .filter(|i| cols[*i].0.priority() < KEEP_WHOLE && cols[*i].0 != Column::Query)
        .collect();
    extras.sort_by_key(|i| (cols[*i].0.priority(), std::cmp::Reverse(*i)));
    if short(&cols) > width.saturating_sub(needed(&cols)) {
        for k in 1..=extras.len() {
            let dropped = &extras[..k];
            let rest: Vec<(Column, u16, u16)> = cols
                .iter()
                .enumerate()
                .filter(|(i, _)| !dropped.contains(i))
                .map(|(_, c)| *c)
                .collect();
            if short(&rest) <= width.saturating_sub(needed(&rest)) {
                cols = rest;
                break;
            }
        }
    }
    let mut left = width.saturating_sub(needed(&cols));
    let mut by_priority: Vec<usize> = (0..cols.len()).collect();
    by_priority.sort_by_key(|i| std::cmp::Reverse(cols[*i].0.priority()));
    for i in by_priority {
        let (_, floor, want) = &mut cols[i];
        let more = want.saturating_sub(*floor).min(left);
        *floor += more;
        left -= more;
    }
    let rest = cols
        .iter()
        .position(|(c, ..)| *c == Column::Query)
        .or(cols.len().checked_sub(1));
    if let Some(i) = rest {
        cols[i].1 += left;
    }
    cols.into_iter().map(|(c, w, _)| (c, w)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ConnClass;

    fn laid_out(width: u16, show_query: bool) -> Vec<(Column, u16)> {
        let snap = crate::fixtures::snapshot();
        let rows: Vec<&Session> = snap.sessions.iter().collect();
        let input = LayoutInput {
            rows: &rows,
            now: snap.taken_at,
            sorted: Column::Database,
            show_query,
            poolers: false,
            held: None,
        };
        layout(width, &input)
    }

    #[test]
    fn widths_grow_at_once_and_shrink_only_after_several_narrower_refreshes() {
        let t0 = crate::fixtures::now();
        let at = |n: i64| t0 + chrono::Duration::seconds(n);
        let mut w = Widths::default();
        w.settle(&[(Column::Application, 10)], at(0));
        w.settle(&[(Column::Application, 20)], at(1));
        assert_eq!(w.get(Column::Application), 20, "grows at once");
        // Redraws of one snapshot (keys, scrolling) never narrow, however many.
        for _ in 0..20 {
            w.settle(&[(Column::Application, 8)], at(1));
        }
        assert_eq!(w.get(Column::Application), 20);
        for n in 2..(1 + i64::from(Widths::SHRINK_AFTER)) {
            w.settle(&[(Column::Application, if n % 2 == 0 { 8 } else { 12 })], at(n));
            assert_eq!(w.get(Column::Application), 20, "refresh {n}: still held");
        }
        // A value as wide as the held width resets the count.
        w.settle(&[(Column::Application, 20)], at(10));
        for n in 11..(11 + i64::from(Widths::SHRINK_AFTER) - 1) {
            w.settle(&[(Column::Application, 9)], at(n));
        }
        assert_eq!(w.get(Column::Application), 20);
        w.settle(&[(Column::Application, 9)], at(30));
        assert_eq!(
            w.get(Column::Application),
            9,
            "narrows to the widest of the narrower refreshes"
        );
    }

    #[test]
    fn a_held_width_keeps_the_column_wide() {
        let snap = crate::fixtures::snapshot();
        let rows: Vec<&Session> = snap.sessions.iter().collect();
        let mut held = Widths::default();
        held.settle(&[(Column::Application, 28)], snap.taken_at);
        let input = LayoutInput {
            rows: &rows,
            now: snap.taken_at,
            sorted: Column::Tls,
            show_query: false,
            poolers: false,
            held: Some(&held),
        };
        let with = layout(220, &input);
        let without = layout(220, &LayoutInput { held: None, ..input });
        let app = |l: &[(Column, u16)]| l.iter().find(|(c, _)| *c == Column::Application).map(|(_, w)| *w);
        assert!(app(&with) > app(&without), "{with:?} vs {without:?}");
        assert_eq!(app(&with), Some(28.min(Column::Application.cap())));
    }

    #[test]
    fn wide_terminals_show_everything_and_narrow_ones_keep_tls_facts() {
        for show_query in [false, true] {
            let wide = laid_out(220, show_query);
            assert_eq!(
                wide.len(),
                Column::ALL
                    .iter()
                    .filter(|c| (show_query || !c.is_query()) && **c != Column::ClientLeg)
                    .count()
            );
            for width in [80, 120, 200, 220] {
                let cols = laid_out(width, show_query);
                let used: u16 = 1 + cols.iter().map(|(_, w)| w + 1).sum::<u16>();
                assert_eq!(used, width, "every cell is used at {width}");
                for (c, w) in &cols {
                    let room = c.title().len() as u16 + if *c == Column::Database { 2 } else { 0 };
                    assert!(*w >= room, "{c:?} at {width}: {w} < {room}");
                }
                let shown: Vec<Column> = cols.iter().map(|(c, _)| *c).collect();
                assert!(shown.contains(&Column::Pid) && shown.contains(&Column::Tls));
                assert!(shown.contains(&Column::Application) && shown.contains(&Column::User));
                assert_eq!(shown.contains(&Column::Query), show_query, "at {width}");
            }
        }
        let narrow = laid_out(80, false);
        assert!(!narrow.iter().any(|(c, _)| *c == Column::Bits));
    }

    #[test]
    fn time_plus_reads_like_pg_activity() {
        assert_eq!(time_plus(4_250), "4.2s");
        assert_eq!(time_plus(423_000), "7m03s");
        let mut s = crate::fixtures::session(1, ConnClass::Tls13);
        let now = crate::fixtures::now();
        s.state = Some("idle".into());
        assert_eq!(Column::Time.text(&s, now), "");
        s.state = Some("active".into());
        s.query_start = Some(now - chrono::Duration::milliseconds(1_500));
        assert_eq!(Column::Time.text(&s, now), "1.5s");
        s.query = Some("SELECT\n    1,\n\t2".into());
        assert_eq!(Column::Query.text(&s, now), "SELECT 1, 2");
    }

    #[test]
    fn tls_sort_puts_exposure_first() {
        let plain = crate::fixtures::session(1, ConnClass::PlainTcp);
        let modern = crate::fixtures::session(2, ConnClass::Tls13);
        assert_eq!(Column::Tls.compare(&plain, &modern), Ordering::Less);
    }
}
