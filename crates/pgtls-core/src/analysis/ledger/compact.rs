//! Small sorted containers for the ledger's per-client fields, and the names its records share.
//!
//! A client record holds a handful of one-or-two-entry maps and sets (its classes, TLS versions, ciphers, sources,
//! addresses, pg_hba.conf lines). As `BTreeMap`s each was a B-tree node of up to 400 bytes however few its entries;
//! `serve` keeps one ledger per target, so 500 targets of 50 clients held 64 MB in them (issue 28). These keep their
//! entries sorted in a vector of exactly their length, iterate in the same order, and read and write the same JSON
//! (a map as an object, a set as an array); duplicates in a file resolve as `BTreeMap` and `BTreeSet` resolve them.

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Source;

/// Room for one more entry, and no more: these hold a few entries for a long time, so growth by doubling would
/// mostly hold empty slots.
pub(super) fn grow_by_one<T>(v: &mut Vec<T>) {
    if v.len() == v.capacity() {
        v.reserve_exact(1);
    }
}

/// A map as a vector sorted by key.
#[derive(Clone, PartialEq, Eq)]
pub struct VecMap<K, V> {
    entries: Vec<(K, V)>,
}

impl<K, V> Default for VecMap<K, V> {
    fn default() -> Self {
        VecMap { entries: Vec::new() }
    }
}

impl<K: Ord, V> VecMap<K, V> {
    pub fn new() -> Self {
        VecMap::default()
    }

    fn find<Q>(&self, key: &Q) -> Result<usize, usize>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.entries.binary_search_by(|(k, _)| k.borrow().cmp(key))
    }

    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.find(key).ok().map(|i| &self.entries[i].1)
    }

    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.find(key).is_ok()
    }

    /// The value of `key`, inserted as the default when absent; `make` builds the key only then.
    pub fn or_default_with<Q>(&mut self, key: &Q, make: impl FnOnce() -> K) -> &mut V
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
        V: Default,
    {
        let i = match self.find(key) {
            Ok(i) => i,
            Err(i) => {
                grow_by_one(&mut self.entries);
                self.entries.insert(i, (make(), V::default()));
                i
            }
        };
        &mut self.entries[i].1
    }

    /// The value of `key`, inserted as the default when absent.
    pub fn or_default(&mut self, key: K) -> &mut V
    where
        K: Copy,
        V: Default,
    {
        self.or_default_with(&key, || key)
    }

    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.find(key).ok().map(|i| &mut self.entries[i].1)
    }

    /// Take `key` out; the value it had, if any.
    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.find(key).ok().map(|i| self.entries.remove(i).1)
    }

    /// Set `key` to `value`; the value it had, if any.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        match self.find(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.entries[i].1, value)),
            Err(i) => {
                grow_by_one(&mut self.entries);
                self.entries.insert(i, (key, value));
                None
            }
        }
    }
}

impl<K, V> VecMap<K, V> {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries in key order.
    pub fn iter(&self) -> Iter<'_, K, V> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &K> + ExactSizeIterator {
        self.entries.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl DoubleEndedIterator<Item = &V> + ExactSizeIterator {
        self.entries.iter().map(|(_, v)| v)
    }
}

/// The entries of a [`VecMap`], in key order.
pub type Iter<'a, K, V> = std::iter::Map<std::slice::Iter<'a, (K, V)>, fn(&'a (K, V)) -> (&'a K, &'a V)>;

impl<'a, K, V> IntoIterator for &'a VecMap<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = Iter<'a, K, V>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<K: Ord, V> From<BTreeMap<K, V>> for VecMap<K, V> {
    fn from(map: BTreeMap<K, V>) -> Self {
        // Exact: the B-tree's iterator knows its length.
        VecMap {
            entries: map.into_iter().collect(),
        }
    }
}

impl<K: Ord, V> FromIterator<(K, V)> for VecMap<K, V> {
    /// As `BTreeMap` collects: the last of equal keys wins.
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        VecMap::from(iter.into_iter().collect::<BTreeMap<K, V>>())
    }
}

impl<K: std::fmt::Debug, V: std::fmt::Debug> std::fmt::Debug for VecMap<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<K: Serialize, V: Serialize> Serialize for VecMap<K, V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'de, K: Deserialize<'de> + Ord, V: Deserialize<'de>> Deserialize<'de> for VecMap<K, V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        BTreeMap::deserialize(deserializer).map(VecMap::from)
    }
}

/// A set as a sorted vector.
#[derive(Clone, PartialEq, Eq)]
pub struct VecSet<T> {
    items: Vec<T>,
}

impl<T> Default for VecSet<T> {
    fn default() -> Self {
        VecSet { items: Vec::new() }
    }
}

impl<T: Ord> VecSet<T> {
    pub fn new() -> Self {
        VecSet::default()
    }

    pub fn contains<Q>(&self, item: &Q) -> bool
    where
        T: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.items.binary_search_by(|t| t.borrow().cmp(item)).is_ok()
    }

    /// Add `item`; whether it was new.
    pub fn insert(&mut self, item: T) -> bool {
        match self.items.binary_search(&item) {
            Ok(_) => false,
            Err(i) => {
                grow_by_one(&mut self.items);
                self.items.insert(i, item);
                true
            }
        }
    }
}

impl<T> VecSet<T> {
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Items in order.
    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        self.items.iter()
    }
}

impl<'a, T> IntoIterator for &'a VecSet<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<T: Ord> Extend<T> for VecSet<T> {
    fn extend<I: IntoIterator<Item = T>>(&mut self, iter: I) {
        for item in iter {
            self.insert(item);
        }
    }
}

impl<T: Ord> From<BTreeSet<T>> for VecSet<T> {
    fn from(set: BTreeSet<T>) -> Self {
        VecSet {
            items: set.into_iter().collect(),
        }
    }
}

impl<T: Ord> FromIterator<T> for VecSet<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        VecSet::from(iter.into_iter().collect::<BTreeSet<T>>())
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for VecSet<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl<T: Serialize> Serialize for VecSet<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de, T: Deserialize<'de> + Ord> Deserialize<'de> for VecSet<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        BTreeSet::deserialize(deserializer).map(VecSet::from)
    }
}

/// The sources that saw a client, a bit each (a set of one or two held a heap block of its own), read and written
/// as the sorted array of a `BTreeSet<Source>`.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Sources(u8);

impl Sources {
    /// In `Source`'s order, as a `BTreeSet` iterates.
    const ALL: [Source; 2] = [Source::Poll, Source::Log];

    fn bit(source: Source) -> u8 {
        match source {
            Source::Poll => 1,
            Source::Log => 2,
        }
    }

    pub fn new() -> Self {
        Sources::default()
    }

    pub fn contains(&self, source: &Source) -> bool {
        self.0 & Sources::bit(*source) != 0
    }

    /// Add `source`; whether it was new.
    pub fn insert(&mut self, source: Source) -> bool {
        let new = !self.contains(&source);
        self.0 |= Sources::bit(source);
        new
    }

    pub fn len(&self) -> usize {
        self.0.count_ones() as usize
    }

    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }

    /// The sources, in order.
    pub fn iter(&self) -> impl Iterator<Item = Source> + '_ {
        Sources::ALL.into_iter().filter(|s| self.contains(s))
    }
}

impl Extend<Source> for Sources {
    fn extend<I: IntoIterator<Item = Source>>(&mut self, iter: I) {
        for source in iter {
            self.insert(source);
        }
    }
}

impl FromIterator<Source> for Sources {
    fn from_iter<I: IntoIterator<Item = Source>>(iter: I) -> Self {
        let mut sources = Sources::new();
        sources.extend(iter);
        sources
    }
}

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl Serialize for Sources {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Sources {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        BTreeSet::<Source>::deserialize(deserializer).map(|set| set.into_iter().collect())
    }
}

/// The TLS versions, ciphers and addresses a ledger's records name, each held once: every client of a server
/// names the same one or two versions and ciphers, and its address once per session it keeps.
///
/// A name no record holds any more is dropped when the table has doubled since it was last swept, so names a
/// scanner or a forged log made up cost memory only while records still hold them.
#[derive(Debug, Clone, Default)]
pub struct Names {
    names: HashSet<Arc<str>>,
    /// The table's length after the last sweep.
    swept: usize,
}

impl Names {
    /// The shared copy of `name`.
    pub fn get(&mut self, name: &str) -> Arc<str> {
        if let Some(shared) = self.names.get(name) {
            return Arc::clone(shared);
        }
        let shared: Arc<str> = Arc::from(name);
        self.names.insert(Arc::clone(&shared));
        if self.names.len() >= (2 * self.swept).max(64) {
            self.sweep();
        }
        shared
    }

    fn sweep(&mut self) {
        self.names.retain(|n| Arc::strong_count(n) > 1);
        self.swept = self.names.len();
    }

    /// Names held, for tests.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.names.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_and_sets_read_and_write_as_btree_ones_do() {
        let json = r#"{"b":2,"a":1,"c":3,"a":4}"#;
        let ours: VecMap<String, u64> = serde_json::from_str(json).unwrap();
        let theirs: BTreeMap<String, u64> = serde_json::from_str(json).unwrap();
        assert_eq!(
            serde_json::to_string(&ours).unwrap(),
            serde_json::to_string(&theirs).unwrap()
        );
        assert_eq!(format!("{ours:?}"), format!("{theirs:?}"));
        assert_eq!(ours.get("a"), Some(&4));
        assert_eq!(ours.keys().collect::<Vec<_>>(), theirs.keys().collect::<Vec<_>>());

        let json = "[3,1,2,1]";
        let ours: VecSet<u32> = serde_json::from_str(json).unwrap();
        let theirs: BTreeSet<u32> = serde_json::from_str(json).unwrap();
        assert_eq!(
            serde_json::to_string(&ours).unwrap(),
            serde_json::to_string(&theirs).unwrap()
        );
        assert_eq!(format!("{ours:?}"), format!("{theirs:?}"));
    }

    #[test]
    fn inserts_keep_order_and_hold_no_spare_room() {
        let mut map: VecMap<u8, u64> = VecMap::new();
        for k in [5, 1, 3, 1, 5, 9] {
            *map.or_default(k) += 1;
        }
        assert_eq!(
            map.iter().map(|(k, v)| (*k, *v)).collect::<Vec<_>>(),
            [(1, 2), (3, 1), (5, 2), (9, 1)]
        );
        assert_eq!(map.entries.capacity(), 4);
        assert_eq!(map.insert(3, 7), Some(1));
        assert_eq!((map.remove(&5), map.remove(&5), map.len()), (Some(2), None, 3));
        *map.get_mut(&9).unwrap() += 1;
        assert_eq!(map.get(&9), Some(&2));

        let mut set = VecSet::new();
        assert!(set.insert("b".to_string()) && set.insert("a".to_string()) && !set.insert("b".to_string()));
        assert!(set.contains("a"));
        assert_eq!(set.iter().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(set.items.capacity(), 2);
    }

    #[test]
    fn sources_read_and_write_as_a_btree_set_does() {
        for json in ["[]", r#"["poll"]"#, r#"["log"]"#, r#"["log","poll","log"]"#] {
            let ours: Sources = serde_json::from_str(json).unwrap();
            let theirs: BTreeSet<Source> = serde_json::from_str(json).unwrap();
            assert_eq!(
                serde_json::to_string(&ours).unwrap(),
                serde_json::to_string(&theirs).unwrap()
            );
            assert_eq!(format!("{ours:?}"), format!("{theirs:?}"));
            assert_eq!(ours.len(), theirs.len());
            assert!(theirs.iter().all(|s| ours.contains(s)));
        }
        let mut sources = Sources::new();
        assert!(sources.insert(Source::Log) && !sources.insert(Source::Log) && sources.insert(Source::Poll));
        assert_eq!(sources.iter().collect::<Vec<_>>(), [Source::Poll, Source::Log]);
    }

    #[test]
    fn names_are_shared_and_unheld_ones_are_dropped() {
        let mut names = Names::default();
        let a = names.get("TLSv1.3");
        let b = names.get("TLSv1.3");
        assert!(Arc::ptr_eq(&a, &b));
        for i in 0..1_000 {
            drop(names.get(&format!("FORGED-{i}")));
        }
        assert!(names.len() < 130, "{} names kept", names.len());
        assert!(Arc::ptr_eq(&a, &names.get("TLSv1.3")), "a held name stays");
    }
}
