//! The ledger's records in key order, by position: the keys themselves are the records' own.
//!
//! A map from key to position held a second copy of every key (four strings) and a B-tree node per few keys; this
//! holds one position per record and compares through the records, so it costs 8 bytes a client. Inserting moves
//! the positions after it, which a new identity (rare once a server's clients are known) can afford.

use super::{ClientKey, ClientRecord};

#[derive(Debug, Clone, Default)]
pub(super) struct Index {
    /// Positions in the ledger's records, sorted by their records' keys.
    order: Vec<usize>,
}

impl Index {
    fn find(&self, records: &[ClientRecord], key: &ClientKey) -> Result<usize, usize> {
        self.order.binary_search_by(|i| records[*i].key.cmp(key))
    }

    /// The position of `key`'s record.
    pub(super) fn get(&self, records: &[ClientRecord], key: &ClientKey) -> Option<usize> {
        self.find(records, key).ok().map(|at| self.order[at])
    }

    /// Index the record at `position` by its key, which no other indexed record has.
    pub(super) fn insert(&mut self, records: &[ClientRecord], position: usize) {
        if let Err(at) = self.find(records, &records[position].key) {
            self.order.insert(at, position);
        }
    }

    /// Forget `key`, while its record still holds it.
    pub(super) fn remove(&mut self, records: &[ClientRecord], key: &ClientKey) {
        if let Ok(at) = self.find(records, key) {
            self.order.remove(at);
        }
    }

    /// Positions, in key order.
    pub(super) fn positions(&self) -> impl Iterator<Item = usize> + '_ {
        self.order.iter().copied()
    }
}
