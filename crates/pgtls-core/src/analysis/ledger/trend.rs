//! The migration's trend: sessions and distinct clients by the hour, for a week, per way of connecting.
//!
//! A floor is raised once the holdouts are gone, and they go one application team at a time over days. Totals since
//! the first poll cannot show that; counts by clock hour can. Each client record keeps its own hours (what its
//! drill-down draws), the refused addresses theirs ([`super::HourCount`]), and the ledger-wide series is summed from
//! both when a view asks, so a distinct client is counted once per hour however many sessions it opened, and a
//! session read twice (a poll and its log line) was already counted once by the ledger.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{ClientRecord, Ledger, refused::HOURS_KEPT};
use crate::model::ConnClass;

/// Hours in the short view (the last day).
pub const DAY: usize = 24;
/// Hours in the long view and kept per client: a week, as for refusals.
pub const WEEK: usize = HOURS_KEPT;

/// Sessions of one client within one clock hour, by way of connecting. GSS-encrypted and local-socket sessions are
/// not counted here: no TLS floor refuses a Unix socket, and a series of them would only hide the ones that matter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ClientHour {
    /// Seconds since the epoch / 3600.
    pub hour: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub tls13: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub tls12: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub older: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub plain: u32,
    /// Lanes (bit 0 TLS 1.3, 1 TLS 1.2, 2 older, 3 plain) in which a session that began earlier was still connected
    /// during this hour: a pool connected on TLS 1.2 for days is a holdout every hour of them, though it opened no
    /// session since.
    #[serde(default, skip_serializing_if = "is_zero8")]
    pub present: u8,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_zero8(n: &u8) -> bool {
    *n == 0
}

fn lane_bit(lane: Lane) -> u8 {
    match lane {
        Lane::Tls13 => 1,
        Lane::Tls12 => 2,
        Lane::Older => 4,
        Lane::Plain => 8,
        Lane::Refused => 0,
        Lane::BelowTls13 => 2 | 4 | 8,
    }
}

/// The five lanes of the trend: how clients connected, and how many were turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Lanes {
    pub tls13: u64,
    pub tls12: u64,
    pub older: u64,
    pub plain: u64,
    /// Refused attempts before authorization (failed handshakes, plain text refused by pg_hba.conf); as distinct
    /// clients, the refused addresses (a refusal names an address, not a client).
    pub refused: u64,
    /// TLS 1.2, older and plain together: what raising the floor to TLSv1.3 would refuse. As distinct clients, each
    /// client once however many of those lanes it used in the hour.
    #[serde(default)]
    pub below_tls13: u64,
}

/// Which lane of [`Lanes`] a series is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lane {
    Tls13,
    Tls12,
    Older,
    Plain,
    Refused,
    /// TLS 1.2, older TLS and plain text together (not one of [`Lane::ALL`], which are disjoint).
    BelowTls13,
}

impl Lane {
    pub const ALL: [Lane; 5] = [Lane::Tls13, Lane::Tls12, Lane::Older, Lane::Plain, Lane::Refused];

    pub fn label(self) -> &'static str {
        match self {
            Lane::Tls13 => "TLSv1.3",
            Lane::Tls12 => "TLSv1.2",
            Lane::Older => "older TLS",
            Lane::Plain => "no TLS",
            Lane::Refused => "refused",
            Lane::BelowTls13 => "below TLSv1.3",
        }
    }

    /// The lane a session of `class` is counted in, if any.
    pub fn of(class: ConnClass) -> Option<Lane> {
        match class {
            ConnClass::Tls13 => Some(Lane::Tls13),
            ConnClass::Tls12 => Some(Lane::Tls12),
            ConnClass::TlsOlder => Some(Lane::Older),
            ConnClass::PlainTcp => Some(Lane::Plain),
            ConnClass::Gss | ConnClass::Local | ConnClass::Unknown => None,
        }
    }
}

impl Lanes {
    pub fn get(&self, lane: Lane) -> u64 {
        match lane {
            Lane::Tls13 => self.tls13,
            Lane::Tls12 => self.tls12,
            Lane::Older => self.older,
            Lane::Plain => self.plain,
            Lane::Refused => self.refused,
            Lane::BelowTls13 => self.below_tls13,
        }
    }

    fn add(&mut self, lane: Lane, n: u64) {
        let slot = match lane {
            Lane::Tls13 => &mut self.tls13,
            Lane::Tls12 => &mut self.tls12,
            Lane::Older => &mut self.older,
            Lane::Plain => &mut self.plain,
            Lane::Refused => &mut self.refused,
            Lane::BelowTls13 => &mut self.below_tls13,
        };
        *slot = slot.saturating_add(n);
    }
}

impl ClientHour {
    /// Whether the client was there in this hour and lane: it opened a session, or one was still connected.
    fn seen(&self, lane: Lane) -> bool {
        self.get(lane) > 0 || self.present & lane_bit(lane) != 0
    }

    fn get(&self, lane: Lane) -> u32 {
        match lane {
            Lane::Tls13 => self.tls13,
            Lane::Tls12 => self.tls12,
            Lane::Older => self.older,
            Lane::Plain => self.plain,
            Lane::Refused => 0,
            Lane::BelowTls13 => self.tls12.saturating_add(self.older).saturating_add(self.plain),
        }
    }

    fn add(&mut self, lane: Lane, n: u32) {
        let slot = match lane {
            Lane::Tls13 => &mut self.tls13,
            Lane::Tls12 => &mut self.tls12,
            Lane::Older => &mut self.older,
            Lane::Plain => &mut self.plain,
            Lane::Refused | Lane::BelowTls13 => return,
        };
        *slot = slot.saturating_add(n);
    }
}

/// One clock hour of a trend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrendHour {
    /// The hour's start.
    pub at: DateTime<Utc>,
    pub sessions: Lanes,
    pub clients: Lanes,
}

/// Every clock hour of a window, oldest first, hours without sessions included (as zeros), so a chart's x axis is
/// time and a gap reads as a gap.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Trend {
    pub hours: Vec<TrendHour>,
}

impl Trend {
    /// The last `n` hours of this trend (all when it has fewer).
    pub fn last(&self, n: usize) -> &[TrendHour] {
        &self.hours[self.hours.len().saturating_sub(n)..]
    }

    /// One lane's values over the last `n` hours, as a sparkline draws them.
    pub fn series(&self, n: usize, lane: Lane, clients: bool) -> Vec<u64> {
        self.last(n)
            .iter()
            .map(|h| {
                if clients {
                    h.clients.get(lane)
                } else {
                    h.sessions.get(lane)
                }
            })
            .collect()
    }

    /// One lane over the last `n` hours in at most `bars` bars: hours are grouped (2, 3, 4, 6, 8, 12 or 24 to a bar)
    /// until they fit. A bar of sessions is their sum; a bar of clients is its busiest hour, since the same client
    /// in two hours is one client, not two.
    pub fn bars(&self, n: usize, lane: Lane, clients: bool, bars: usize) -> (usize, Vec<u64>) {
        let series = self.series(n, lane, clients);
        let group = [1, 2, 3, 4, 6, 8, 12, 24]
            .into_iter()
            .find(|g| series.len().div_ceil(*g) <= bars.max(1))
            .unwrap_or(24);
        let values = series
            .rchunks(group)
            .rev()
            .map(|c| {
                if clients {
                    c.iter().copied().max().unwrap_or(0)
                } else {
                    c.iter().sum()
                }
            })
            .collect();
        (group, values)
    }

    /// Sessions and distinct client-hours over the last `n` hours, summed per lane.
    pub fn total(&self, n: usize) -> Lanes {
        let mut sum = Lanes::default();
        for h in self.last(n) {
            for lane in Lane::ALL {
                sum.add(lane, h.sessions.get(lane));
            }
        }
        sum
    }

    /// Whether the window saw anything at all.
    pub fn is_empty(&self) -> bool {
        self.hours
            .iter()
            .all(|h| Lane::ALL.iter().all(|l| h.sessions.get(*l) == 0))
    }
}

/// The clock hour of `at`.
pub fn hour_of(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(3600)
}

fn hour_start(hour: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(hour.saturating_mul(3600), 0).unwrap_or_default()
}

/// `n` empty hours ending with the hour of `now`.
fn empty_window(now: DateTime<Utc>, n: usize) -> (i64, Vec<TrendHour>) {
    let last = hour_of(now);
    let first = last - n as i64 + 1;
    let hours = (first..=last)
        .map(|h| TrendHour {
            at: hour_start(h),
            sessions: Lanes::default(),
            clients: Lanes::default(),
        })
        .collect();
    (first, hours)
}

fn add_client_hours(first: i64, hours: &mut [TrendHour], record: &ClientRecord) {
    for h in &record.hours {
        let Some(slot) = usize::try_from(h.hour - first).ok().and_then(|i| hours.get_mut(i)) else {
            continue;
        };
        for lane in Lane::ALL.into_iter().chain([Lane::BelowTls13]) {
            slot.sessions.add(lane, u64::from(h.get(lane)));
            if h.seen(lane) {
                slot.clients.add(lane, 1);
            }
        }
    }
}

impl ClientRecord {
    /// Count one session in its hour, and forget hours more than a week older than the newest one kept (a log read
    /// from its start brings old sessions after new ones: those beyond the week are not kept at all).
    pub(super) fn count_hour(&mut self, at: DateTime<Utc>, class: ConnClass, n: u32) {
        let Some(lane) = Lane::of(class) else {
            return;
        };
        self.with_hour(at, |h| h.add(lane, n));
        self.expire_hours();
    }

    /// Note that a session of `class` connected before was still there at `at`; true when this is news for the
    /// hour (then the ledger journals it, once per client, lane and hour).
    pub(super) fn mark_present(&mut self, at: DateTime<Utc>, class: ConnClass) -> bool {
        let Some(lane) = Lane::of(class) else {
            return false;
        };
        // The common case, every poll: the newest hour already knows.
        if let Some(last) = self.hours.last()
            && last.hour == hour_of(at)
            && last.seen(lane)
        {
            return false;
        }
        let news = self
            .with_hour(at, |h| {
                let news = !h.seen(lane);
                if news {
                    h.present |= lane_bit(lane);
                }
                news
            })
            .unwrap_or(false);
        self.expire_hours();
        news
    }

    /// Change the hour of `at` with `f`, inserted if new; `None` when it lies a week or more before the newest hour
    /// kept.
    fn with_hour<R>(&mut self, at: DateTime<Utc>, f: impl FnOnce(&mut ClientHour) -> R) -> Option<R> {
        self.hours.update(hour_of(at), f)
    }

    fn expire_hours(&mut self) {
        self.hours.expire();
    }

    /// Fold another record's hours in (a compacted record of the same client, or one moving to the others record).
    pub(super) fn merge_hours(&mut self, other: &ClientRecord) {
        for h in &other.hours {
            if h.present != 0 {
                self.with_hour(hour_start(h.hour), |mine| mine.present |= h.present);
            }
            for lane in Lane::ALL {
                let n = h.get(lane);
                if n > 0 {
                    let class = match lane {
                        Lane::Tls13 => ConnClass::Tls13,
                        Lane::Tls12 => ConnClass::Tls12,
                        Lane::Older => ConnClass::TlsOlder,
                        Lane::Plain | Lane::Refused | Lane::BelowTls13 => ConnClass::PlainTcp,
                    };
                    self.count_hour(hour_start(h.hour), class, n);
                }
            }
        }
    }

    /// This client's own series: the `n` hours ending with the hour of `now` (refused stays 0: refusals are counted
    /// by address, see [`Ledger::trend`]).
    pub fn trend(&self, now: DateTime<Utc>, n: usize) -> Trend {
        let (first, mut hours) = empty_window(now, n);
        add_client_hours(first, &mut hours, self);
        Trend { hours }
    }
}

impl Ledger {
    /// The ledger-wide series: the `n` hours ending with the hour of `now`. Distinct clients are the records with a
    /// session in that hour and lane (clients beyond the identity cap count as one, the others record), and for
    /// refusals the refused addresses.
    pub fn trend(&self, now: DateTime<Utc>, n: usize) -> Trend {
        let (first, mut hours) = empty_window(now, n);
        for record in self.records() {
            add_client_hours(first, &mut hours, record);
        }
        for refused in self.refused.values().chain(self.refused_others.as_ref()) {
            for h in &refused.hours {
                let Some(slot) = usize::try_from(h.hour - first).ok().and_then(|i| hours.get_mut(i)) else {
                    continue;
                };
                let attempts = u64::from(h.handshakes) + u64::from(h.plain);
                if attempts > 0 {
                    slot.sessions.add(Lane::Refused, attempts);
                    slot.clients.add(Lane::Refused, 1);
                }
            }
        }
        Trend { hours }
    }

    /// The week ending with the latest moment pgtls watched (a view's "now", which never reads the clock).
    pub fn week(&self) -> Trend {
        match self.observed_to {
            Some(to) => self.trend(to, WEEK),
            None => Trend::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::super::{ClientKey, Entry, KeyFields, Source};
    use super::*;

    fn at(h: i64, m: i64, s: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap()
            + Duration::hours(h)
            + Duration::minutes(m)
            + Duration::seconds(s)
    }

    fn session(at: DateTime<Utc>, app: &str, version: Option<&str>) -> Entry {
        Entry::Session {
            at,
            key: ClientKey {
                user: "u".into(),
                database: "d".into(),
                application: app.into(),
                address: "10.0.0.1".into(),
                pooler: None,
            },
            class: version.map_or(ConnClass::PlainTcp, ConnClass::from_tls_version),
            tls_version: version.map(str::to_string),
            cipher: None,
            source: Source::Log,
            address: Some("10.0.0.1".into()),
            replication: false,
            hba_line: None,
            pid: None,
        }
    }

    #[test]
    fn sessions_fall_into_their_clock_hour_at_the_boundaries() {
        let mut ledger = Ledger::new(KeyFields::default());
        ledger.apply(&session(at(0, 59, 59), "a", Some("TLSv1.2")));
        ledger.apply(&session(at(1, 0, 0), "a", Some("TLSv1.2")));
        ledger.apply(&session(at(1, 59, 59), "a", Some("TLSv1.2")));
        ledger.apply(&session(at(2, 0, 0), "a", Some("TLSv1.3")));
        let trend = ledger.trend(at(2, 30, 0), 3);
        let tls12: Vec<u64> = trend.series(3, Lane::Tls12, false);
        assert_eq!(tls12, vec![1, 2, 0]);
        assert_eq!(trend.series(3, Lane::Tls13, false), vec![0, 0, 1]);
        assert_eq!(trend.hours[0].at, at(0, 0, 0));
        assert_eq!(trend.hours[2].at, at(2, 0, 0));
        // The window ends with now's hour: a session after now is not in it, one before its start neither.
        assert_eq!(ledger.trend(at(1, 0, 0), 1).series(1, Lane::Tls12, false), vec![2]);
    }

    #[test]
    fn distinct_clients_count_once_per_hour_and_lane() {
        let mut ledger = Ledger::new(KeyFields::default());
        for m in 0..10 {
            ledger.apply(&session(at(5, m, 0), "busy", Some("TLSv1.2")));
        }
        ledger.apply(&session(at(5, 20, 0), "busy", Some("TLSv1.3")));
        ledger.apply(&session(at(5, 30, 0), "quiet", Some("TLSv1.2")));
        ledger.apply(&session(at(5, 40, 0), "cleartext", None));
        // A local-socket session is no lane's.
        let mut local = session(at(5, 41, 0), "local", None);
        if let Entry::Session { class, .. } = &mut local {
            *class = ConnClass::Local;
        }
        ledger.apply(&local);
        let h = ledger.trend(at(5, 59, 0), 1).hours[0];
        assert_eq!(
            (h.sessions.tls12, h.sessions.tls13, h.sessions.plain),
            (11, 1, 1),
            "sessions"
        );
        assert_eq!(
            (h.clients.tls12, h.clients.tls13, h.clients.plain, h.clients.older),
            (2, 1, 1, 0),
            "distinct clients"
        );
        // busy used TLS 1.2 and 1.3 in the hour: one client below TLS 1.3, with quiet and cleartext.
        assert_eq!((h.sessions.below_tls13, h.clients.below_tls13), (12, 3));
        let busy = ledger.records().find(|r| r.key.application == "busy").unwrap();
        let own = busy.trend(at(5, 59, 0), 1).hours[0];
        assert_eq!((own.sessions.tls12, own.clients.tls12, own.sessions.tls13), (10, 1, 1));
    }

    /// A session connected for hours is its client's presence every hour a poll saw it, journalled once per hour,
    /// though it counts as one session in the hour it began.
    #[test]
    fn a_long_lived_session_keeps_its_client_present_every_hour() {
        let mut ledger = Ledger::new(KeyFields::default());
        let mut snap = crate::fixtures::snapshot();
        snap.sessions
            .retain(|s| s.monitor || s.application_name.as_deref() == Some("billing-batch"));
        let start = snap.taken_at;
        let mut presence = 0;
        for minutes in (0..180).step_by(2) {
            snap.taken_at = start + Duration::minutes(minutes);
            let entries = ledger.observe_snapshot(&snap, false);
            presence += entries.iter().filter(|e| matches!(e, Entry::Present { .. })).count();
        }
        let first = hour_of(start);
        let hours_seen = (hour_of(snap.taken_at) - first + 1) as usize;
        let trend = ledger.trend(snap.taken_at, hours_seen);
        let tls12 = trend.series(hours_seen, Lane::Tls12, false);
        assert_eq!(
            tls12.iter().sum::<u64>(),
            2,
            "two sessions, counted when they began: {tls12:?}"
        );
        let clients = trend.series(hours_seen, Lane::Tls12, true);
        assert!(
            clients.iter().all(|n| *n == 2),
            "both billing identities every hour: {clients:?}"
        );
        assert_eq!(presence, 2 * (hours_seen - 1), "one entry per identity and later hour");
        // Replaying the journal's entries gives the same hours.
        let mut replayed = Ledger::new(KeyFields::default());
        let mut again = Ledger::new(KeyFields::default());
        for minutes in (0..180).step_by(2) {
            snap.taken_at = start + Duration::minutes(minutes);
            for e in again.observe_snapshot(&snap, false) {
                replayed.apply(&e);
            }
        }
        assert_eq!(replayed.trend(snap.taken_at, hours_seen), trend);
    }

    #[test]
    fn bars_group_hours_summing_sessions_and_taking_the_busiest_hour_of_clients() {
        let mut ledger = Ledger::new(KeyFields::default());
        for h in 0..6 {
            ledger.apply(&session(at(h, 0, 0), "a", Some("TLSv1.2")));
            ledger.apply(&session(at(h, 1, 0), "b", Some("TLSv1.2")));
        }
        let trend = ledger.trend(at(5, 0, 0), 6);
        assert_eq!(trend.bars(6, Lane::Tls12, false, 6), (1, vec![2; 6]));
        assert_eq!(trend.bars(6, Lane::Tls12, false, 3), (2, vec![4; 3]));
        assert_eq!(trend.bars(6, Lane::Tls12, true, 3), (2, vec![2; 3]));
        // The newest hour always ends the last bar; a short first bar takes what is left.
        assert_eq!(trend.bars(6, Lane::Tls12, false, 2), (3, vec![6, 6]));
        assert_eq!(trend.bars(6, Lane::Tls12, false, 1).1, vec![12]);
    }

    #[test]
    fn hours_older_than_a_week_expire_and_late_old_lines_are_not_kept() {
        let mut ledger = Ledger::new(KeyFields::default());
        ledger.apply(&session(at(0, 10, 0), "a", Some("TLSv1.2")));
        ledger.apply(&session(at(100, 0, 0), "a", Some("TLSv1.2")));
        let record = |l: &Ledger| l.records().next().unwrap().hours.clone();
        assert_eq!(record(&ledger).len(), 2);
        // Exactly a week after the first hour: that hour is the 169th, and goes.
        ledger.apply(&session(at(WEEK as i64, 0, 0), "a", Some("TLSv1.3")));
        let hours = record(&ledger);
        assert_eq!(
            hours.iter().map(|h| h.hour - hour_of(at(0, 0, 0))).collect::<Vec<_>>(),
            vec![100, 168]
        );
        // A log read from its start brings a line from before the week after newer ones: counted in the totals,
        // not in the hours.
        ledger.apply(&session(at(-5, 0, 0), "a", Some("TLSv1.2")));
        assert_eq!(record(&ledger).len(), 2);
        assert_eq!(ledger.records().next().unwrap().sessions, 4);
        // The ledger-wide week ends with the latest moment watched.
        assert_eq!(ledger.week().hours.len(), WEEK);
        assert_eq!(ledger.week().total(WEEK).tls12, 1);
    }

    #[test]
    fn refusals_count_by_address_and_hours_survive_the_compacted_file() {
        use crate::logsource::{Refusal, RefusedAttempt};
        let mut ledger = Ledger::new(KeyFields::default());
        ledger.apply(&session(at(3, 0, 0), "a", Some("TLSv1.2")));
        for (i, address) in ["10.0.0.7", "10.0.0.7", "10.0.0.8"].iter().enumerate() {
            let attempt = RefusedAttempt {
                at: at(3, 10 + i as i64, 0),
                pid: 100 + i as i32,
                client_addr: Some((*address).into()),
                client_port: Some(5000),
                local_socket: false,
                refusal: Refusal::Handshake {
                    reason: "unsupported protocol".into(),
                },
                hint: None,
                detail: None,
            };
            ledger.apply(&Entry::Refused(attempt));
        }
        let h = ledger.trend(at(3, 30, 0), 1).hours[0];
        assert_eq!((h.sessions.refused, h.clients.refused), (3, 2));

        let mut reread = Ledger::new(KeyFields::default());
        for e in ledger.compacted() {
            let line = serde_json::to_string(&e).unwrap();
            reread.apply(&serde_json::from_str(&line).unwrap());
        }
        assert_eq!(reread.trend(at(3, 30, 0), 1), ledger.trend(at(3, 30, 0), 1));
        // A client line written before the hours existed still reads, with no hours.
        let mut old: serde_json::Value =
            serde_json::to_value(ledger.compacted().find(|e| matches!(e, Entry::Client(_))).unwrap()).unwrap();
        old.as_object_mut().unwrap().remove("hours");
        let old: Entry = serde_json::from_value(old).unwrap();
        let Entry::Client(record) = old else {
            panic!("not a client")
        };
        assert!(record.hours.is_empty());
        assert_eq!(record.sessions, 1);
    }
}
