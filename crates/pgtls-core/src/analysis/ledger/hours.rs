//! A client's hours, packed: the same entries as a `Vec<ClientHour>`, a few bytes each instead of 32.
//!
//! A record keeps up to a week of hours for as long as it lives, and `serve` keeps a record per client per target:
//! 500 targets of 50 clients held about 170 MB of 32-byte hours (issue 28). Most hours say "present" or count one to
//! three sessions, so each entry is a flags byte (which counts are non-zero, and the `present` bits), the hour as a
//! delta from the entry before, and the non-zero counts, the last two as varints: two to four bytes. Appending and
//! updating the newest hour (what every poll and session does) touch only the tail; an hour in the middle (a late
//! log line) unpacks and repacks them all. The JSON is a `Vec<ClientHour>`'s, entry for entry, in the order held.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::trend::{ClientHour, WEEK};

/// The entries of [`ClientHour`], packed in order (oldest first, as the ledger keeps them).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Hours {
    bytes: Vec<u8>,
    /// The newest entry's hour and where it starts: every poll asks for it.
    last_hour: i64,
    last_at: u32,
    len: u32,
}

/// Flag bits of an entry's first byte: bits 0-3 say which of tls13, tls12, older and plain follow (non-zero), bits
/// 4-7 are `present`'s bits 0-3. The `present` bits 4-7 (which only a hand-edited file sets) follow the counts as
/// one more byte, flagged by the low bit of the hour's varint.
const COUNTS: u8 = 0x0f;

fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

fn unzigzag(n: u64) -> i64 {
    ((n >> 1) as i64) ^ -((n & 1) as i64)
}

/// One packed entry: a flags byte, the hour's varint (19 bytes at most for 129 bits), four counts (5 bytes at most
/// each) and the high `present` bits.
struct Packed {
    buf: [u8; 48],
    len: usize,
}

impl Packed {
    fn push(&mut self, b: u8) {
        self.buf[self.len] = b;
        self.len += 1;
    }

    fn varint(&mut self, mut n: u128) {
        while n >= 0x80 {
            self.push((n as u8) | 0x80);
            n >>= 7;
        }
        self.push(n as u8);
    }

    fn as_slice(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// A varint at `*at`, moving `*at` past it; only what [`Packed::varint`] wrote is read.
fn varint(bytes: &[u8], at: &mut usize) -> u128 {
    let mut n = 0u128;
    let mut shift = 0;
    while let Some(&b) = bytes.get(*at) {
        *at += 1;
        n |= u128::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    n
}

fn counts(h: &ClientHour) -> [u32; 4] {
    [h.tls13, h.tls12, h.older, h.plain]
}

/// `h` packed, its hour as a delta from `prev` (wrapping: hours read from a file may be anything).
fn encode(prev: i64, h: &ClientHour) -> Packed {
    let mut out = Packed { buf: [0; 48], len: 0 };
    let counts = counts(h);
    let mut flags = (h.present & 0x0f) << 4;
    for (i, n) in counts.iter().enumerate() {
        if *n != 0 {
            flags |= 1 << i;
        }
    }
    out.push(flags);
    let high = h.present >> 4;
    out.varint((u128::from(zigzag(h.hour.wrapping_sub(prev))) << 1) | u128::from(high != 0));
    for n in counts.into_iter().filter(|n| *n != 0) {
        out.varint(u128::from(n));
    }
    if high != 0 {
        out.push(high);
    }
    out
}

/// The entry at `*at`, whose predecessor's hour is `prev`, moving `*at` past it.
fn decode(bytes: &[u8], at: &mut usize, prev: i64) -> ClientHour {
    let flags = bytes.get(*at).copied().unwrap_or(0);
    *at += 1;
    let head = varint(bytes, at);
    let delta = unzigzag((head >> 1) as u64);
    let mut counts = [0u32; 4];
    for (i, n) in counts.iter_mut().enumerate() {
        if flags & COUNTS & (1 << i) != 0 {
            *n = u32::try_from(varint(bytes, at)).unwrap_or(u32::MAX);
        }
    }
    let mut present = flags >> 4;
    if head & 1 != 0 {
        present |= bytes.get(*at).copied().unwrap_or(0) << 4;
        *at += 1;
    }
    let [tls13, tls12, older, plain] = counts;
    ClientHour {
        hour: prev.wrapping_add(delta),
        tls13,
        tls12,
        older,
        plain,
        present,
    }
}

/// The capacity for `n` bytes that a malloc block of 16-byte steps (8 of them its header) holds anyway.
fn block_for(n: usize) -> usize {
    (((n + 8 + 15) & !15) - 8).max(24)
}

impl Hours {
    pub fn new() -> Hours {
        Hours::default()
    }

    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The entries, oldest first, unpacked one at a time.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            bytes: &self.bytes,
            at: 0,
            prev: 0,
        }
    }

    pub fn last(&self) -> Option<ClientHour> {
        if self.is_empty() {
            return None;
        }
        let mut at = self.last_at as usize;
        let mut h = decode(&self.bytes, &mut at, 0);
        h.hour = self.last_hour;
        Some(h)
    }

    /// Room for `more` bytes, in malloc's steps rather than doubling: a record keeps its hours for as long as it
    /// lives.
    fn reserve(&mut self, more: usize) {
        let need = self.bytes.len() + more;
        if need > self.bytes.capacity() {
            self.bytes.reserve_exact(block_for(need) - self.bytes.len());
        }
    }

    fn push(&mut self, h: &ClientHour) {
        let prev = if self.is_empty() { 0 } else { self.last_hour };
        let entry = encode(prev, h);
        self.reserve(entry.len);
        self.last_at = u32::try_from(self.bytes.len()).unwrap_or(u32::MAX);
        self.bytes.extend_from_slice(entry.as_slice());
        self.last_hour = h.hour;
        self.len += 1;
    }

    /// Replace the newest entry with `h` (same hour).
    fn set_last(&mut self, h: &ClientHour) {
        // Past the flags byte: the hour's delta, which stays.
        let mut at = self.last_at as usize + 1;
        let delta = unzigzag((varint(&self.bytes, &mut at) >> 1) as u64);
        let entry = encode(self.last_hour.wrapping_sub(delta), h);
        self.bytes.truncate(self.last_at as usize);
        self.reserve(entry.len);
        self.bytes.extend_from_slice(entry.as_slice());
    }

    /// Packed afresh from `entries`, with a tight capacity.
    fn from_entries(entries: &[ClientHour]) -> Hours {
        let mut hours = Hours::new();
        let mut bytes = Vec::new();
        let mut prev = 0;
        for h in entries {
            hours.last_at = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
            bytes.extend_from_slice(encode(prev, h).as_slice());
            prev = h.hour;
        }
        bytes.shrink_to_fit();
        hours.bytes = bytes;
        hours.last_hour = prev;
        hours.len = u32::try_from(entries.len()).unwrap_or(u32::MAX);
        hours
    }

    /// Change the entry of `hour` with `f`, inserting a zero entry when it is new (sorted by hour, as the ledger
    /// keeps them); `None`, and nothing kept, when it lies a week or more before the newest entry.
    pub fn update<R>(&mut self, hour: i64, f: impl FnOnce(&mut ClientHour) -> R) -> Option<R> {
        if self.is_empty() || hour > self.last_hour {
            let mut h = ClientHour {
                hour,
                ..ClientHour::default()
            };
            let r = f(&mut h);
            self.push(&h);
            return Some(r);
        }
        if hour <= self.last_hour.saturating_sub(WEEK as i64) {
            return None;
        }
        if hour == self.last_hour {
            let mut h = self.last().unwrap_or_default();
            let r = f(&mut h);
            self.set_last(&h);
            return Some(r);
        }
        // A late line for an older hour: rare enough to unpack them all.
        let mut entries: Vec<ClientHour> = self.iter().collect();
        let i = match entries.binary_search_by_key(&hour, |h| h.hour) {
            Ok(i) => i,
            Err(i) => {
                entries.insert(
                    i,
                    ClientHour {
                        hour,
                        ..ClientHour::default()
                    },
                );
                i
            }
        };
        let r = f(&mut entries[i]);
        *self = Hours::from_entries(&entries);
        Some(r)
    }

    /// Forget the entries a week or more older than the newest one.
    pub fn expire(&mut self) {
        if self.is_empty() {
            return;
        }
        let oldest_kept = self.last_hour.saturating_sub(WEEK as i64);
        let mut at = 0;
        let mut prev = 0;
        let mut expired = 0;
        while expired < self.len {
            let mut next = at;
            let h = decode(&self.bytes, &mut next, prev);
            if h.hour > oldest_kept {
                break;
            }
            at = next;
            prev = h.hour;
            expired += 1;
        }
        if expired == 0 {
            return;
        }
        if expired == self.len {
            *self = Hours::new();
            return;
        }
        // The first entry kept is re-packed as a delta from 0; the ones after it are unchanged.
        let mut rest = at;
        let first = decode(&self.bytes, &mut rest, prev);
        let first = encode(0, &first);
        self.bytes.splice(..rest, first.as_slice().iter().copied());
        let last_at = self.last_at as usize;
        self.last_at = if last_at < rest {
            0
        } else {
            u32::try_from(last_at - rest + first.len).unwrap_or(u32::MAX)
        };
        self.len -= expired;
        // The same block as long as it is about the size: an hour expires as each new one comes.
        if self.bytes.capacity() > block_for(self.bytes.len()) + 32 {
            self.bytes.shrink_to(block_for(self.bytes.len()));
        }
    }
}

/// The entries of [`Hours`], oldest first.
pub struct Iter<'a> {
    bytes: &'a [u8],
    at: usize,
    prev: i64,
}

impl Iterator for Iter<'_> {
    type Item = ClientHour;

    fn next(&mut self) -> Option<ClientHour> {
        if self.at >= self.bytes.len() {
            return None;
        }
        let h = decode(self.bytes, &mut self.at, self.prev);
        self.prev = h.hour;
        Some(h)
    }
}

impl<'a> IntoIterator for &'a Hours {
    type Item = ClientHour;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl FromIterator<ClientHour> for Hours {
    fn from_iter<I: IntoIterator<Item = ClientHour>>(entries: I) -> Hours {
        Hours::from_entries(&entries.into_iter().collect::<Vec<_>>())
    }
}

impl fmt::Debug for Hours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Serialize for Hours {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Hours {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Hours, D::Error> {
        Vec::<ClientHour>::deserialize(deserializer).map(|v| Hours::from_entries(&v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The entries as the ledger kept them before they were packed: a sorted `Vec<ClientHour>` and its operations.
    #[derive(Default)]
    struct Model(Vec<ClientHour>);

    impl Model {
        fn update<R>(&mut self, hour: i64, f: impl FnOnce(&mut ClientHour) -> R) -> Option<R> {
            if self
                .0
                .last()
                .is_some_and(|newest| hour <= newest.hour.saturating_sub(WEEK as i64))
            {
                return None;
            }
            let i = match self.0.binary_search_by_key(&hour, |h| h.hour) {
                Ok(i) => i,
                Err(i) => {
                    self.0.insert(
                        i,
                        ClientHour {
                            hour,
                            ..ClientHour::default()
                        },
                    );
                    i
                }
            };
            Some(f(&mut self.0[i]))
        }

        fn expire(&mut self) {
            let Some(newest) = self.0.last().map(|h| h.hour) else {
                return;
            };
            let expired = self.0.partition_point(|h| h.hour <= newest.saturating_sub(WEEK as i64));
            self.0.drain(..expired);
        }
    }

    /// splitmix64: the same sequence on every run, no dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn assert_same(hours: &Hours, model: &Model, what: &str) {
        assert_eq!(hours.iter().collect::<Vec<_>>(), model.0, "{what}: entries");
        assert_eq!(hours.len(), model.0.len(), "{what}: len");
        assert_eq!(hours.is_empty(), model.0.is_empty(), "{what}: is_empty");
        assert_eq!(hours.last(), model.0.last().copied(), "{what}: last");
        assert_eq!(
            serde_json::to_string(hours).unwrap(),
            serde_json::to_string(&model.0).unwrap(),
            "{what}: JSON"
        );
        // Packed the same whichever way it was built: the tail offset and newest hour kept in step.
        assert_eq!(*hours, model.0.iter().copied().collect::<Hours>(), "{what}: packing");
    }

    /// One lane's count raised by some amount, or some `present` bits set.
    #[derive(Clone, Copy)]
    struct Change {
        lane: u64,
        n: u32,
        bits: u8,
    }

    impl Change {
        fn random(rng: &mut Rng) -> Change {
            Change {
                lane: rng.below(5),
                n: [1, 2, 3, 127, 128, 300, 16_384, u32::MAX - 1, u32::MAX][rng.below(9) as usize],
                bits: [1, 2, 4, 8, 0x10, 0x80, 0xff][rng.below(7) as usize],
            }
        }

        fn apply(self, h: &mut ClientHour) -> u8 {
            match self.lane {
                0 => h.tls13 = h.tls13.saturating_add(self.n),
                1 => h.tls12 = h.tls12.saturating_add(self.n),
                2 => h.older = h.older.saturating_add(self.n),
                3 => h.plain = h.plain.saturating_add(self.n),
                _ => h.present |= self.bits,
            }
            h.present
        }
    }

    #[test]
    fn updates_and_expiry_match_a_plain_vector() {
        let mut rng = Rng(28);
        for start in [0, -1, 491_000, -491_000, 1 << 40, -(1 << 50)] {
            for round in 0..20 {
                let mut hours = Hours::new();
                let mut model = Model::default();
                let mut newest = start;
                for step in 0..400 {
                    let hour = match rng.below(20) {
                        // The newest hour again, or the next ones: every poll and session.
                        0..=9 => newest,
                        10..=14 => newest + 1 + rng.below(3) as i64,
                        // A late line: within the week, at its edge, or beyond it.
                        15..=17 => newest - rng.below(200) as i64,
                        18 => newest - WEEK as i64 + rng.below(3) as i64 - 1,
                        _ => newest + rng.below(1_000) as i64,
                    };
                    newest = newest.max(hour);
                    let c = Change::random(&mut rng);
                    assert_eq!(
                        hours.update(hour, |h| c.apply(h)),
                        model.update(hour, |h| c.apply(h)),
                        "start {start}, round {round}, step {step}: update"
                    );
                    if rng.below(4) != 0 {
                        hours.expire();
                        model.expire();
                    }
                    assert_same(&hours, &model, &format!("start {start}, round {round}, step {step}"));
                }
            }
        }
    }

    #[test]
    fn entries_read_from_a_file_write_back_unchanged() {
        let h = |hour, counts: [u32; 4], present| ClientHour {
            hour,
            tls13: counts[0],
            tls12: counts[1],
            older: counts[2],
            plain: counts[3],
            present,
        };
        let tables: [Vec<ClientHour>; 7] = [
            vec![],
            vec![h(0, [0; 4], 0)],
            vec![
                h(-5, [1, 0, 0, 0], 0),
                h(-1, [0; 4], 8),
                h(0, [0, 0, 0, 1], 0),
                h(3, [0; 4], 0),
            ],
            vec![
                h(i64::MIN, [u32::MAX; 4], 0xff),
                h(i64::MAX, [0; 4], 0xf0),
                h(i64::MIN, [0; 4], 1),
            ],
            vec![
                h(491_000, [u32::MAX, 0, u32::MAX, 0], 0x10),
                h(491_168, [0, 128, 0, 0], 0x81),
            ],
            // Out of order and repeated: not what pgtls writes, kept as read.
            vec![
                h(10, [1; 4], 0),
                h(2, [0; 4], 4),
                h(2, [5, 0, 0, 0], 0),
                h(-1 << 40, [0; 4], 2),
            ],
            (0..WEEK as i64)
                .map(|i| h(491_000 + i, [(i % 3) as u32, 0, 0, 0], 1))
                .collect(),
        ];
        for entries in tables {
            let json = serde_json::to_string(&entries).unwrap();
            let hours: Hours = serde_json::from_str(&json).unwrap();
            assert_eq!(hours.iter().collect::<Vec<_>>(), entries);
            assert_eq!(hours.len(), entries.len());
            assert_eq!(hours.last(), entries.last().copied());
            assert_eq!(serde_json::to_string(&hours).unwrap(), json);
        }
    }

    #[test]
    fn a_week_of_typical_hours_takes_a_few_bytes_each_in_a_tight_block() {
        let mut hours = Hours::new();
        let start = 491_000;
        for hour in start..start + 3 * WEEK as i64 {
            hours.update(hour, |h| h.present |= 2);
            if hour % 5 == 0 {
                hours.update(hour, |h| h.tls12 += 1);
            }
            hours.expire();
        }
        assert_eq!(hours.len(), WEEK);
        assert!(hours.bytes.len() <= 3 * WEEK, "{} bytes", hours.bytes.len());
        assert!(
            hours.bytes.capacity() <= block_for(hours.bytes.len()) + 32,
            "{} bytes held for {}",
            hours.bytes.capacity(),
            hours.bytes.len()
        );
        assert_eq!(hours.iter().next().map(|h| h.hour), Some(start + 2 * WEEK as i64));
    }
}
