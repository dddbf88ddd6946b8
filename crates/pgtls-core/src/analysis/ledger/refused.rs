//! Attempts the server turned away before authorization, by address, and when a setting took effect.
//!
//! A failed TLS handshake is logged before the client says who it is: the log has only its address (from the pid's
//! `connection received` line). The ledger counts refusals per address and, when asked, names the identities it has
//! seen connect from that address before; several identities from one address (a NAT, an app server running many
//! clients) are all named, and the view says the attribution is ambiguous. A pg_hba.conf refusal names user and
//! database, which narrow the candidates.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::compact::{VecMap, VecSet, grow_by_one};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{ClientKey, Entry, Ledger};
use crate::logsource::{Refusal, RefusedAttempt, SettingChange};
use crate::model::Setting;

/// The address refused attempts are counted under when the log did not say (no `connection received` line).
pub const UNKNOWN_ADDRESS: &str = "(unknown address)";
/// The record that counts refusals from addresses beyond [`super::Caps::refused_addresses`].
pub const OTHER_ADDRESSES: &str = "(other addresses, beyond the ledger's cap)";
/// Distinct reasons and user@database names kept per address; more are counted under `(other)`.
const MAX_REASONS: usize = 16;
const MAX_NAMED: usize = 16;
/// Identities named per refused address in a view; more are counted.
const MAX_CANDIDATES: usize = 8;
/// Hours of attempts kept per address for counting within a window (`check --window`): a week. The worst case,
/// every one of [`super::Caps::refused_addresses`] addresses refused every hour for a week, is 4096 x 168 x 24
/// bytes, about 16 MB; older attempts count only in the totals.
pub const HOURS_KEPT: usize = 168;
/// A scan, not a client: at least [`SCAN_MIN_HANDSHAKES`] failed handshakes from one address within
/// [`SCAN_WINDOW_MS`]. Measured on the lab (PostgreSQL 15 on loopback, a debug build on a loaded 2-core machine;
/// `tests/integration/evidence.rs` prints it): `pgtls probe --full-scan` against a TLSv1.3-only server logs 3 failed
/// handshakes (TLS 1.0, 1.1, 1.2) within 182-282 ms (two runs), one after the other; sslyze and testssl.sh make
/// dozens the same way. A client refused by a floor makes one failed handshake per attempt (libpq's `prefer` retries in plain text,
/// not with another handshake), so even a job retrying every second stays below three within a second, and a
/// second leaves room for a scan over a slower link than loopback. What it gives up: three clients on one host
/// refused within the same second are shown as a scan (still counted, apart), and the tests space such clients.
pub const SCAN_MIN_HANDSHAKES: usize = 3;
pub const SCAN_WINDOW_MS: i64 = 1000;

/// Attempts from one address within one clock hour, by kind, and the seconds into the hour of the first and the
/// last, so a window that starts inside the hour counts only what lies after its start (unless attempts on both
/// sides share the hour; then the hour counts whole, which can only over-count by that hour's attempts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HourCount {
    /// Seconds since the epoch / 3600.
    pub hour: i64,
    pub handshakes: u32,
    pub plain: u32,
    pub first_sec: u16,
    pub last_sec: u16,
    /// Failed handshakes in this hour that were part of a scan (see [`SCAN_MIN_HANDSHAKES`]); not in `handshakes`.
    #[serde(default, skip_serializing_if = "is_zero32")]
    pub scans: u32,
}

fn is_zero32(n: &u32) -> bool {
    *n == 0
}

/// A recent failed handshake from one address, kept while it may still turn out to be part of a scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecentHandshake {
    pub at: DateTime<Utc>,
    pub scan: bool,
}

/// Which refusals a count is about: failed TLS handshakes (a raised minimum) or plain-text clients turned away by
/// pg_hba.conf (TLS required).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    Handshake,
    Plain,
}

/// Refused attempts from one client address. Its maps and sets are sorted vectors (a ledger keeps up to
/// [`super::Caps::refused_addresses`] of these, each naming a reason or two), written as `BTreeMap`s and `BTreeSet`s.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedRecord {
    pub address: String,
    pub attempts: u64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// Attempts per reason ([`Refusal::reason`]).
    pub reasons: VecMap<String, u64>,
    /// The latest attempt's reason and server HINT (for a protocol version, the range the server accepts).
    pub last_reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_hint: Option<String>,
    /// Failed TLS handshakes among the attempts.
    #[serde(default)]
    pub handshakes: u64,
    /// pg_hba.conf refusals of clients that came without encryption (`hostssl` only, or `hostnossl ... reject`).
    #[serde(default)]
    pub plain: u64,
    /// Replication connections among the pg_hba.conf refusals.
    #[serde(default)]
    pub replication: u64,
    /// `user@database` named by pg_hba.conf refusals (a handshake failure names nobody).
    #[serde(default, skip_serializing_if = "VecSet::is_empty")]
    pub named: VecSet<String>,
    /// Attempts by clock hour, oldest first, at most `HOURS_KEPT` hours.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hours: Vec<HourCount>,
    /// The pooler that refused these attempts (its own log, `--pgbouncer-log`), as `--pgbouncer` names it; `None`
    /// for the server. The address is then the client's as the pooler saw it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pooler: Option<String>,
    /// Failed handshakes that were part of a scan ([`SCAN_MIN_HANDSHAKES`] within [`SCAN_WINDOW_MS`]): counted
    /// here, not in `attempts` or `handshakes`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub scans: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scan: Option<DateTime<Utc>>,
    /// The scans' handshakes by reason: moved here from `reasons` when a burst turns out to be a scan, so that
    /// `reasons` + `scan_reasons` (every refused attempt, which the refused-attempts counter exports) never falls.
    #[serde(default, skip_serializing_if = "VecMap::is_empty")]
    pub scan_reasons: VecMap<String, u64>,
    /// The failed handshakes of the last [`SCAN_WINDOW_MS`], so one arriving later can tell a scan.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent_handshakes: Vec<RecentHandshake>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The ledger's key for a record: the server's refusals by address, a pooler's apart from them.
fn record_key(address: &str, pooler: Option<&str>) -> String {
    match pooler {
        None => address.to_string(),
        Some(pooler) => format!("{address} via pooler {pooler}"),
    }
}

impl RefusedRecord {
    fn new(address: &str, pooler: Option<&str>, at: DateTime<Utc>) -> RefusedRecord {
        RefusedRecord {
            pooler: pooler.map(str::to_string),
            address: address.to_string(),
            attempts: 0,
            first_seen: at,
            last_seen: at,
            reasons: VecMap::new(),
            last_reason: String::new(),
            last_hint: None,
            handshakes: 0,
            plain: 0,
            replication: 0,
            named: VecSet::new(),
            hours: Vec::new(),
            scans: 0,
            last_scan: None,
            scan_reasons: VecMap::new(),
            recent_handshakes: Vec::new(),
        }
    }

    /// Scans at or after `from`, as far as the kept hours reach.
    pub fn scans_since(&self, from: DateTime<Utc>) -> u64 {
        let from_hour = from.timestamp().div_euclid(3600);
        let from_sec = from.timestamp().rem_euclid(3600);
        self.hours
            .iter()
            .filter(|h| h.hour > from_hour || (h.hour == from_hour && i64::from(h.last_sec) >= from_sec))
            .map(|h| u64::from(h.scans))
            .sum()
    }

    /// Count a failed handshake (`add` counted the attempt and its reason), or a scan once this one makes
    /// [`SCAN_MIN_HANDSHAKES`] within [`SCAN_WINDOW_MS`]: then the earlier ones of the burst, counted as refusals
    /// when they came, move to the scans. Only the last few are kept: if the latest `SCAN_MIN_HANDSHAKES - 1` are
    /// not all within the window of this one, older ones are not either.
    fn add_handshake(&mut self, at: DateTime<Utc>, reason: &str) {
        // The records of many addresses at once tell nothing about one address's rhythm.
        if self.address == OTHER_ADDRESSES || self.address == UNKNOWN_ADDRESS {
            self.handshakes += 1;
            self.count_hour(at, 1, 0);
            return;
        }
        let window = chrono::Duration::milliseconds(SCAN_WINDOW_MS);
        self.recent_handshakes.retain(|h| (at - h.at).abs() < window);
        if self.recent_handshakes.len() + 1 < SCAN_MIN_HANDSHAKES {
            self.handshakes += 1;
            self.count_hour(at, 1, 0);
            self.recent_handshakes.push(RecentHandshake { at, scan: false });
            return;
        }
        let earlier: Vec<DateTime<Utc>> = self
            .recent_handshakes
            .iter_mut()
            .filter(|h| !h.scan)
            .map(|h| {
                h.scan = true;
                h.at
            })
            .collect();
        for when in earlier {
            self.handshakes = self.handshakes.saturating_sub(1);
            self.attempts = self.attempts.saturating_sub(1);
            let hour = when.timestamp().div_euclid(3600);
            if let Ok(i) = self.hours.binary_search_by_key(&hour, |h| h.hour) {
                self.hours[i].handshakes = self.hours[i].handshakes.saturating_sub(1);
            }
            self.count_scan(when, reason);
        }
        self.attempts = self.attempts.saturating_sub(1);
        self.count_scan(at, reason);
        self.recent_handshakes.push(RecentHandshake { at, scan: true });
        let keep = SCAN_MIN_HANDSHAKES - 1;
        if self.recent_handshakes.len() > keep {
            self.recent_handshakes.drain(..self.recent_handshakes.len() - keep);
        }
    }

    /// One scan handshake: out of the refusals' reasons too (the refused-attempts counters read them).
    fn count_scan(&mut self, at: DateTime<Utc>, reason: &str) {
        if let Some(n) = self.reasons.get_mut(reason) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.reasons.remove(reason);
            }
        }
        *self.scan_reasons.or_default_with(reason, || reason.to_string()) += 1;
        self.scans += 1;
        self.last_scan = Some(self.last_scan.map_or(at, |l| l.max(at)));
        self.count_hour(at, 0, 0);
        let hour = at.timestamp().div_euclid(3600);
        if let Ok(i) = self.hours.binary_search_by_key(&hour, |h| h.hour) {
            self.hours[i].scans = self.hours[i].scans.saturating_add(1);
        }
    }

    /// Every refused attempt by reason, scans' handshakes included: what the server refused, which only grows
    /// as lines arrive (a burst reclassified as a scan moves between the two maps, never out of both).
    pub fn all_attempts_by_reason(&self) -> BTreeMap<&str, u64> {
        let mut all: BTreeMap<&str, u64> = BTreeMap::new();
        for (reason, n) in self.reasons.iter().chain(&self.scan_reasons) {
            *all.entry(reason.as_str()).or_default() += n;
        }
        all
    }

    /// Attempts of `kind` at or after `from`, as far as the kept hours reach (see [`HourCount`]).
    pub fn attempts_since(&self, kind: RefusalKind, from: DateTime<Utc>) -> u64 {
        let from_hour = from.timestamp().div_euclid(3600);
        let from_sec = from.timestamp().rem_euclid(3600);
        self.hours
            .iter()
            .filter(|h| h.hour > from_hour || (h.hour == from_hour && i64::from(h.last_sec) >= from_sec))
            .map(|h| {
                u64::from(match kind {
                    RefusalKind::Handshake => h.handshakes,
                    RefusalKind::Plain => h.plain,
                })
            })
            .sum()
    }

    fn count_hour(&mut self, at: DateTime<Utc>, handshakes: u32, plain: u32) {
        let hour = at.timestamp().div_euclid(3600);
        let sec = u16::try_from(at.timestamp().rem_euclid(3600)).unwrap_or(0);
        match self.hours.binary_search_by_key(&hour, |h| h.hour) {
            Ok(i) => {
                let h = &mut self.hours[i];
                h.handshakes = h.handshakes.saturating_add(handshakes);
                h.plain = h.plain.saturating_add(plain);
                h.first_sec = h.first_sec.min(sec);
                h.last_sec = h.last_sec.max(sec);
            }
            Err(i) => {
                grow_by_one(&mut self.hours);
                self.hours.insert(
                    i,
                    HourCount {
                        hour,
                        handshakes,
                        plain,
                        first_sec: sec,
                        last_sec: sec,
                        scans: 0,
                    },
                );
                if self.hours.len() > HOURS_KEPT {
                    self.hours.remove(0);
                }
            }
        }
    }

    fn add(&mut self, attempt: &RefusedAttempt) {
        let reason = attempt.refusal.reason();
        count_capped(&mut self.reasons, &reason, 1, MAX_REASONS);
        self.attempts += 1;
        self.first_seen = self.first_seen.min(attempt.at);
        if attempt.at >= self.last_seen || self.attempts == 1 {
            self.last_seen = attempt.at;
            self.last_reason = reason.clone();
            self.last_hint = attempt.hint.clone();
        }
        match &attempt.refusal {
            Refusal::Handshake { .. } => self.add_handshake(attempt.at, &reason),
            Refusal::Hba(h) => {
                self.plain += u64::from(h.plain());
                if h.plain() {
                    self.count_hour(attempt.at, 0, 1);
                }
                self.replication += u64::from(h.replication);
                let name = format!("{}@{}", h.user, h.database.as_deref().unwrap_or("[replication]"));
                if self.named.len() < MAX_NAMED || self.named.contains(&name) {
                    self.named.insert(name);
                }
            }
            Refusal::Pooler(p) if p.plain => {
                self.plain += 1;
                self.count_hour(attempt.at, 0, 1);
            }
            Refusal::Pooler(_) => self.add_handshake(attempt.at, &reason),
        }
    }

    fn merge(&mut self, other: &RefusedRecord) {
        for (reason, n) in &other.reasons {
            count_capped(&mut self.reasons, reason, *n, MAX_REASONS);
        }
        if other.last_seen >= self.last_seen || self.attempts == 0 {
            self.last_reason = other.last_reason.clone();
            self.last_hint = other.last_hint.clone();
        }
        self.first_seen = self.first_seen.min(other.first_seen);
        self.last_seen = self.last_seen.max(other.last_seen);
        self.attempts += other.attempts;
        self.handshakes += other.handshakes;
        self.plain += other.plain;
        self.replication += other.replication;
        for name in &other.named {
            if self.named.len() < MAX_NAMED {
                self.named.insert(name.clone());
            }
        }
        for h in &other.hours {
            self.count_hour(hour_start(h.hour, h.first_sec), h.handshakes, h.plain);
            self.count_hour(hour_start(h.hour, h.last_sec), 0, 0);
            if let Ok(i) = self.hours.binary_search_by_key(&h.hour, |x| x.hour) {
                self.hours[i].scans = self.hours[i].scans.saturating_add(h.scans);
            }
        }
        self.scans += other.scans;
        for (reason, n) in &other.scan_reasons {
            *self.scan_reasons.or_default_with(reason.as_str(), || reason.clone()) += n;
        }
        self.last_scan = self.last_scan.max(other.last_scan);
        // A burst straddling a compaction goes on from the handshakes the compacted record kept.
        for h in &other.recent_handshakes {
            if !self.recent_handshakes.contains(h) {
                self.recent_handshakes.push(*h);
            }
        }
        self.recent_handshakes.sort_by_key(|h| h.at);
        let keep = SCAN_MIN_HANDSHAKES - 1;
        if self.recent_handshakes.len() > keep {
            self.recent_handshakes.drain(..self.recent_handshakes.len() - keep);
        }
    }
}

fn hour_start(hour: i64, sec: u16) -> DateTime<Utc> {
    DateTime::from_timestamp(hour.saturating_mul(3600).saturating_add(i64::from(sec)), 0).unwrap_or_default()
}

fn count_capped(map: &mut VecMap<String, u64>, name: &str, n: u64, cap: usize) {
    let name = if map.len() < cap || map.contains_key(name) {
        name
    } else {
        super::OTHER
    };
    *map.or_default_with(name, || name.to_string()) += n;
}

/// A refused address with the identities the ledger has seen connect from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedView {
    pub record: RefusedRecord,
    /// Identities seen from this address (narrowed to the users a pg_hba.conf refusal named, when any match), at
    /// most a handful.
    pub identities: Vec<ClientKey>,
    /// Candidates beyond those listed.
    pub more_identities: usize,
    /// More than one identity fits: the refusal may be any of them.
    pub ambiguous: bool,
    /// Every identity seen from this address (narrowed as `identities` is), uncapped: what attribution ranks.
    #[serde(skip)]
    pub seen: Vec<ClientKey>,
}

/// How pgtls knows since when a setting holds its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SinceSource {
    /// The postmaster's `parameter "..." changed to "..."` line: the moment of the reload.
    Log,
    /// Two of pgtls's own polls saw the old and the new value: the change happened between them.
    Polls,
    /// `pg_conf_load_time()`: the last reload of any setting, so the change happened then or before.
    ReloadBound,
    /// The user said so (`--since`).
    User,
}

/// Since when a floor is in force, and how that is known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FloorSince {
    pub at: DateTime<Utc>,
    pub how: SinceSource,
    /// The latest moment the old value was still seen (polls only): the change lies in `(not_before, at]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<DateTime<Utc>>,
    /// One sentence on how sure this is.
    pub note: String,
}

/// Since when `name` has been `value` (e.g. `ssl_min_protocol_version` = `TLSv1.3`), and how pgtls knows: the
/// postmaster's log line, else the settings pgtls's polls journalled, else `pg_conf_load_time()` (only a bound,
/// since any reload moves it), else the user's `--since`. `current` is the value as read now (`None` when hidden
/// from pgtls's role); a known different value means the floor is not in force and the answer is `None`.
pub fn floor_since(
    ledger: &Ledger,
    name: &str,
    value: &str,
    current: Option<&str>,
    conf_load_time: Option<DateTime<Utc>>,
    user: Option<DateTime<Utc>>,
) -> Option<FloorSince> {
    if current.is_some_and(|c| !c.eq_ignore_ascii_case(value)) {
        return None;
    }
    let same = |v: Option<&str>| v.is_some_and(|v| v.eq_ignore_ascii_case(value));
    // The latest logged change of this setting decides, if it is the value asked about.
    if let Some(change) = ledger.logged_settings.iter().rev().find(|c| c.name == name)
        && same(change.value.as_deref())
    {
        return Some(FloorSince {
            at: change.at,
            how: SinceSource::Log,
            not_before: None,
            note: format!("the server logged the reload that set {name} to {value}"),
        });
    }
    // Walk the polled states back from the latest while they hold the value; the state before is the old one.
    let states: Vec<_> = ledger.settings_history().collect();
    let holds = |i: usize| same(states[i].settings.get(name).and_then(Setting::value));
    if let Some(last) = states.len().checked_sub(1)
        && holds(last)
    {
        let mut first = last;
        while first > 0 && holds(first - 1) {
            first -= 1;
        }
        if first > 0 {
            return Some(FloorSince {
                at: states[first].at,
                how: SinceSource::Polls,
                not_before: Some(states[first - 1].at),
                note: format!(
                    "pgtls's polls saw {name} change to {value} between {} and {}",
                    crate::format::timestamp(states[first - 1].at),
                    crate::format::timestamp(states[first].at)
                ),
            });
        }
    }
    if let Some(at) = conf_load_time
        && (current.is_some() || states.last().is_some_and(|_| holds(states.len() - 1)))
    {
        return Some(FloorSince {
            at,
            how: SinceSource::ReloadBound,
            not_before: None,
            note: "only a bound: pg_conf_load_time() is the last reload of any setting, so the change happened then \
                   or earlier"
                .to_string(),
        });
    }
    user.map(|at| FloorSince {
        at,
        how: SinceSource::User,
        not_before: None,
        note: "as given with --since".to_string(),
    })
}

impl Ledger {
    /// A refused attempt from the log; `None` for one pgtls does not count (a Unix socket never does TLS).
    pub fn observe_refused(&mut self, attempt: &RefusedAttempt) -> Option<Entry> {
        self.log_source_seen = true;
        let entry = Entry::Refused(attempt.clone());
        self.apply(&entry);
        Some(entry)
    }

    /// A setting change logged by the postmaster.
    pub fn observe_setting_change(&mut self, change: &SettingChange) -> Option<Entry> {
        if self.logged_settings.iter().any(|c| c == change) {
            return None;
        }
        let entry = Entry::LogSetting(change.clone());
        self.apply(&entry);
        Some(entry)
    }

    /// The record of one identity.
    pub fn client(&self, key: &ClientKey) -> Option<&super::ClientRecord> {
        self.index.get(&self.records, key).map(|i| &self.records[i])
    }

    /// Setting changes read in the log, oldest first.
    pub fn logged_settings(&self) -> impl Iterator<Item = &SettingChange> {
        self.logged_settings.iter()
    }

    pub(super) fn apply_refused(&mut self, attempt: &RefusedAttempt) {
        let address = match (&attempt.client_addr, attempt.local_socket) {
            (_, true) => "[local]",
            (Some(a), false) => a.as_str(),
            (None, false) => UNKNOWN_ADDRESS,
        };
        self.refused_record_for(address, attempt.refusal.pooler(), attempt.at)
            .add(attempt);
    }

    pub(super) fn apply_refused_record(&mut self, record: &RefusedRecord) {
        self.refused_record_for(&record.address, record.pooler.as_deref(), record.first_seen)
            .merge(record);
    }

    fn refused_record_for(&mut self, address: &str, pooler: Option<&str>, at: DateTime<Utc>) -> &mut RefusedRecord {
        let room = self.refused.len() < self.caps.refused_addresses.max(1);
        let key = record_key(address, pooler);
        if address != OTHER_ADDRESSES && (room || self.refused.contains_key(&key)) {
            return self
                .refused
                .entry(key)
                .or_insert_with(|| RefusedRecord::new(address, pooler, at));
        }
        self.refused_others
            .get_or_insert_with(|| RefusedRecord::new(OTHER_ADDRESSES, None, at))
    }

    /// Refused addresses, most recent first, each with the identities seen from it.
    pub fn refused(&self) -> Vec<RefusedView> {
        let mut by_address: HashMap<&str, Vec<&ClientKey>> = HashMap::new();
        for r in self.records() {
            let addresses = r.addresses.iter().map(|a| &**a).chain(Some(r.key.address.as_str()));
            for a in addresses.filter(|a| !a.is_empty()) {
                let keys = by_address.entry(a).or_default();
                if keys.last() != Some(&&r.key) {
                    keys.push(&r.key);
                }
            }
        }
        let mut views: Vec<RefusedView> = self
            .refused
            .values()
            .chain(self.refused_others.as_ref())
            .map(|record| {
                let mut seen = by_address.get(record.address.as_str()).cloned().unwrap_or_default();
                // A pooler saw the client's own address: only that pooler's clients (SHOW CLIENTS) can be it.
                if let Some(pooler) = &record.pooler {
                    seen.retain(|k| {
                        k.pooler
                            .as_ref()
                            .is_some_and(|p| &p.address == pooler && p.side == super::Side::Client)
                    });
                }
                let users: BTreeSet<&str> = record.named.iter().filter_map(|n| n.split('@').next()).collect();
                let named: Vec<&ClientKey> = seen
                    .iter()
                    .copied()
                    .filter(|k| users.contains(k.user.as_str()))
                    .collect();
                let candidates = if named.is_empty() { seen } else { named };
                RefusedView {
                    record: record.clone(),
                    identities: candidates.iter().take(MAX_CANDIDATES).map(|k| (*k).clone()).collect(),
                    more_identities: candidates.len().saturating_sub(MAX_CANDIDATES),
                    ambiguous: candidates.len() > 1,
                    seen: candidates.iter().map(|k| (*k).clone()).collect(),
                }
            })
            .collect();
        views.sort_by_key(|v| std::cmp::Reverse(v.record.last_seen));
        views
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::ledger::KeyFields;
    use crate::logsource::HbaRefusal;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn handshake(addr: &str, when: &str) -> RefusedAttempt {
        RefusedAttempt {
            at: at(when),
            pid: 7,
            client_addr: Some(addr.into()),
            client_port: Some(5000),
            local_socket: false,
            refusal: Refusal::Handshake {
                reason: "unsupported protocol".into(),
            },
            hint: Some("This may indicate that the client does not support any SSL protocol version between TLSv1.3 and TLSv1.3.".into()),
            detail: None,
        }
    }

    #[test]
    fn hours_are_kept_for_a_week_and_count_from_a_moment() {
        let mut r = RefusedRecord::new("10.0.0.7", None, at("2026-12-01T00:00:00Z"));
        let start = at("2026-12-01T00:10:00Z");
        for h in 0..(HOURS_KEPT as i64 + 10) {
            let mut attempt = handshake("10.0.0.7", "2026-12-01T00:00:00Z");
            attempt.at = start + chrono::Duration::hours(h);
            r.add(&attempt);
            attempt.at += chrono::Duration::minutes(30);
            r.add(&attempt);
        }
        assert_eq!(r.hours.len(), HOURS_KEPT, "bounded");
        assert_eq!(r.handshakes, 2 * (HOURS_KEPT as u64 + 10), "the totals keep everything");
        let last = start + chrono::Duration::hours(HOURS_KEPT as i64 + 9);
        assert_eq!(r.attempts_since(RefusalKind::Handshake, last), 2);
        assert_eq!(
            r.attempts_since(RefusalKind::Handshake, last + chrono::Duration::minutes(25)),
            2,
            "same hour"
        );
        assert_eq!(
            r.attempts_since(RefusalKind::Handshake, last + chrono::Duration::minutes(41)),
            0
        );
        assert_eq!(r.attempts_since(RefusalKind::Plain, start), 0, "no plain-text refusal");
        assert_eq!(
            r.attempts_since(RefusalKind::Handshake, start),
            2 * HOURS_KEPT as u64,
            "only what the kept week holds"
        );
        let json = serde_json::to_string(&r).unwrap();
        let back: RefusedRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r, "the ledger file keeps the hours");
        let mut older = RefusedRecord::new("10.0.0.7", None, start);
        older.merge(&r);
        assert_eq!(
            older.attempts_since(RefusalKind::Handshake, last),
            2,
            "a merge keeps the hours"
        );
    }

    fn session(ledger: &mut Ledger, user: &str, addr: &str) {
        ledger.apply(&Entry::Session {
            at: at("2026-12-01T10:00:00Z"),
            key: ClientKey::new(KeyFields::default(), Some(user), Some("shop"), Some("app"), Some(addr)),
            class: crate::model::ConnClass::Tls12,
            tls_version: Some("TLSv1.2".into()),
            cipher: None,
            source: super::super::Source::Poll,
            address: Some(addr.into()),
            replication: false,
            hba_line: None,
            pid: None,
        });
    }

    #[test]
    fn refusals_are_counted_by_address_and_attributed() {
        let mut ledger = Ledger::new(KeyFields::default());
        session(&mut ledger, "billing", "10.0.0.7");
        session(&mut ledger, "alice", "10.0.0.8");
        session(&mut ledger, "bob", "10.0.0.8");
        for when in ["2026-12-02T10:00:00Z", "2026-12-02T11:00:00Z"] {
            ledger.observe_refused(&handshake("10.0.0.7", when));
        }
        ledger.observe_refused(&handshake("10.0.0.8", "2026-12-02T09:00:00Z"));
        ledger.observe_refused(&handshake("10.9.9.9", "2026-12-02T08:00:00Z"));
        let views = ledger.refused();
        assert_eq!(views.len(), 3);
        let one = &views[0];
        assert_eq!((one.record.address.as_str(), one.record.attempts), ("10.0.0.7", 2));
        assert_eq!(one.record.first_seen, at("2026-12-02T10:00:00Z"));
        assert_eq!(one.record.last_seen, at("2026-12-02T11:00:00Z"));
        assert_eq!(one.identities.len(), 1);
        assert!(!one.ambiguous);
        assert_eq!(one.record.reasons.get("TLS handshake: unsupported protocol"), Some(&2));
        assert!(one.record.last_hint.as_deref().unwrap().contains("TLSv1.3"));
        assert!(views[1].ambiguous, "two users came from 10.0.0.8");
        assert_eq!(views[1].identities.len(), 2);
        assert!(views[2].identities.is_empty());

        // A pg_hba refusal names its user, which narrows the candidates.
        ledger.observe_refused(&RefusedAttempt {
            refusal: Refusal::Hba(HbaRefusal {
                rejected: true,
                replication: false,
                host: "10.0.0.8".into(),
                user: "bob".into(),
                database: Some("shop".into()),
                encryption: "no encryption".into(),
            }),
            ..handshake("10.0.0.8", "2026-12-02T12:00:00Z")
        });
        let view = ledger
            .refused()
            .into_iter()
            .find(|v| v.record.address == "10.0.0.8")
            .unwrap();
        assert_eq!(view.identities.len(), 1);
        assert_eq!(view.identities[0].user, "bob");
        assert_eq!((view.record.plain, view.record.handshakes), (1, 1));
    }

    #[test]
    fn refused_addresses_are_capped_and_compact_round_trips() {
        let mut ledger = Ledger::new(KeyFields::default());
        ledger.caps.refused_addresses = 3;
        for i in 0..10 {
            ledger.observe_refused(&handshake(&format!("10.1.0.{i}"), "2026-12-02T10:00:00Z"));
        }
        let views = ledger.refused();
        assert_eq!(views.len(), 4);
        let others = views.iter().find(|v| v.record.address == OTHER_ADDRESSES).unwrap();
        assert_eq!(others.record.attempts, 7);
        let mut again = Ledger::new(KeyFields::default());
        again.caps.refused_addresses = 3;
        for e in ledger.compacted() {
            again.apply(&e);
        }
        assert_eq!(again.refused(), views);
    }

    /// The same address refused by the server and by a pooler is two records, and both survive compaction (the
    /// ledger file) with the pooler still named.
    #[test]
    fn a_poolers_refusals_are_kept_apart_from_the_servers() {
        let mut ledger = Ledger::new(KeyFields::default());
        ledger.observe_refused(&handshake("10.0.0.7", "2026-12-02T10:00:00Z"));
        let mut pooled = handshake("10.0.0.7", "2026-12-02T10:01:00Z");
        pooled.refusal = Refusal::Pooler(crate::logsource::PoolerRefusal {
            pooler: "pool:6432".into(),
            setting: "client_tls_sslmode".into(),
            reason: "SSL required".into(),
            plain: true,
        });
        ledger.observe_refused(&pooled);
        let views = ledger.refused();
        assert_eq!(views.len(), 2);
        let pool = views.iter().find(|v| v.record.pooler.is_some()).unwrap();
        assert_eq!(pool.record.address, "10.0.0.7");
        assert_eq!((pool.record.plain, pool.record.handshakes), (1, 0));
        assert_eq!(
            pool.record.last_reason,
            "pooler pool:6432's client_tls_sslmode: SSL required"
        );
        let mut again = Ledger::new(KeyFields::default());
        for e in ledger.compacted() {
            again.apply(&e);
        }
        assert_eq!(again.refused(), views);
    }

    #[test]
    fn since_prefers_the_log_then_polls_then_reload_then_user() {
        let mut ledger = Ledger::new(KeyFields::default());
        let load = Some(at("2026-12-02T09:00:00Z"));
        let user = Some(at("2026-12-01T00:00:00Z"));
        let name = "ssl_min_protocol_version";
        assert_eq!(
            floor_since(&ledger, name, "TLSv1.3", None, None, user).unwrap().how,
            SinceSource::User
        );
        assert_eq!(floor_since(&ledger, name, "TLSv1.3", None, None, None), None);
        assert_eq!(
            floor_since(&ledger, name, "TLSv1.3", Some("TLSv1.3"), load, user)
                .unwrap()
                .how,
            SinceSource::ReloadBound
        );
        assert_eq!(floor_since(&ledger, name, "TLSv1.3", Some("TLSv1.2"), load, user), None);
        let polled = |value: &str, when: &str| {
            Entry::Settings(super::super::SettingsSeen {
                at: at(when),
                settings: [(name.to_string(), Setting::Set(value.into()))].into_iter().collect(),
            })
        };
        ledger.apply(&polled("TLSv1.2", "2026-12-02T08:00:00Z"));
        ledger.apply(&polled("TLSv1.3", "2026-12-02T10:00:00Z"));
        let since = floor_since(&ledger, name, "TLSv1.3", Some("TLSv1.3"), load, user).unwrap();
        assert_eq!((since.how, since.at), (SinceSource::Polls, at("2026-12-02T10:00:00Z")));
        assert_eq!(since.not_before, Some(at("2026-12-02T08:00:00Z")));
        ledger.observe_setting_change(&SettingChange {
            at: at("2026-12-02T09:30:00Z"),
            name: name.into(),
            value: Some("TLSv1.3".into()),
        });
        let since = floor_since(&ledger, name, "TLSv1.3", None, load, user).unwrap();
        assert_eq!((since.how, since.at), (SinceSource::Log, at("2026-12-02T09:30:00Z")));
        // Reading the same log again adds nothing.
        let first = ledger.logged_settings().next().unwrap().clone();
        assert!(ledger.observe_setting_change(&first).is_none());
    }
}

#[cfg(test)]
mod scan_tests {
    use super::*;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-02T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
            + chrono::Duration::milliseconds(ms)
    }

    fn handshake(ms: i64) -> RefusedAttempt {
        RefusedAttempt {
            at: at(ms),
            pid: 7,
            client_addr: Some("127.0.0.1".into()),
            client_port: Some(5000),
            local_socket: false,
            refusal: Refusal::Handshake {
                reason: "unsupported protocol".into(),
            },
            hint: None,
            detail: None,
        }
    }

    fn record(times: &[i64]) -> RefusedRecord {
        let mut r = RefusedRecord::new("127.0.0.1", None, at(0));
        for ms in times {
            r.add(&handshake(*ms));
        }
        r
    }

    /// The refused-attempts counter (reasons and scans' reasons together) never falls, handshake by handshake,
    /// when a burst turns out to be a scan; and it survives a merge (compaction).
    #[test]
    fn every_refused_attempt_is_counted_once_and_the_count_never_falls() {
        let times = [0, 2000, 4000, 4010, 4020, 4030, 6000];
        let mut r = RefusedRecord::new("127.0.0.1", None, at(0));
        let mut last = 0;
        for (n, ms) in times.iter().enumerate() {
            r.add(&handshake(*ms));
            let total: u64 = r.all_attempts_by_reason().values().sum();
            assert!(total >= last, "fell from {last} to {total} at handshake {n}");
            assert_eq!(total, n as u64 + 1, "each handshake once");
            last = total;
        }
        assert_eq!(r.scans, 4);
        let by_reason = r.all_attempts_by_reason();
        assert_eq!(by_reason.len(), 1, "one reason, whether scan or not: {by_reason:?}");
        assert_eq!(by_reason.values().sum::<u64>(), 7);
        let mut merged = RefusedRecord::new("127.0.0.1", None, at(0));
        merged.merge(&r);
        assert_eq!(merged.all_attempts_by_reason(), r.all_attempts_by_reason());
    }

    /// Where a scan starts: SCAN_MIN_HANDSHAKES within SCAN_WINDOW_MS; one fewer, or the same spread wider, are
    /// refusals.
    #[test]
    fn three_failed_handshakes_within_a_second_are_a_scan_and_no_fewer_or_slower() {
        let two = record(&[0, 10]);
        assert_eq!((two.handshakes, two.scans, two.attempts), (2, 0, 2));
        let three = record(&[0, 10, 20]);
        assert_eq!((three.handshakes, three.scans, three.attempts), (0, 3, 0));
        assert_eq!(three.attempts_since(RefusalKind::Handshake, at(0)), 0);
        assert_eq!(three.scans_since(at(0)), 3);
        assert!(three.reasons.is_empty(), "{:?}", three.reasons);
        let slow = record(&[0, 600, 1200]);
        assert_eq!(
            (slow.handshakes, slow.scans),
            (3, 0),
            "gaps of 600 ms: never 3 within 1 s"
        );
        let edge = record(&[0, 500, 999]);
        assert_eq!(edge.scans, 3, "999 ms apart is within the second");
        // A job refused every 2 s before and after a scan: only the scan's handshakes move.
        let mixed = record(&[0, 2000, 4000, 4010, 4020, 6000]);
        assert_eq!((mixed.handshakes, mixed.scans, mixed.attempts), (3, 3, 3));
        // A long scan counts every handshake once.
        let long: Vec<i64> = (0..40).map(|i| 5000 + i * 10).collect();
        let r = record(&long);
        assert_eq!((r.handshakes, r.scans), (0, 40));
        assert!(r.recent_handshakes.len() < SCAN_MIN_HANDSHAKES);
        // The ledger file keeps it (a compacted record merged into a fresh one).
        let mut again = RefusedRecord::new("127.0.0.1", None, at(0));
        again.merge(&mixed);
        assert_eq!(again.scans_since(at(0)), 3);
        assert_eq!(again.attempts_since(RefusalKind::Handshake, at(0)), 3);
    }
}
