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
