//! The in-memory backend: one B-tree per table with fixed-size keys stored inline, one lock, an
//! undo log per transaction.

use std::{collections::BTreeMap, fmt, sync::Mutex};

use super::{Entries, Kv, KvTxn, StoreError, Table};

/// A value kept in an in-memory table.
trait MemValue: Sized + Send + Sync + fmt::Debug {
    fn from_bytes(bytes: &[u8]) -> Result<Self, StoreError>;
    fn bytes(&self) -> &[u8];
}

/// Fixed-size values are stored inline in the map's nodes (`[u8; 0]`: a set).
impl<const M: usize> MemValue for [u8; M] {
    fn from_bytes(bytes: &[u8]) -> Result<Self, StoreError> {
        bytes.try_into().map_err(|_| {
            StoreError::Database(format!("in-memory value of {} bytes where {M} are expected", bytes.len()))
        })
    }

    fn bytes(&self) -> &[u8] {
        self
    }
}

/// Variable-size values: one allocation, no spare capacity.
impl MemValue for Box<[u8]> {
    fn from_bytes(bytes: &[u8]) -> Result<Self, StoreError> {
        Ok(bytes.into())
    }

    fn bytes(&self) -> &[u8] {
        self
    }
}

/// One in-memory table. Writes return the previous value (for the undo log).
trait MemTable: Send + Sync + fmt::Debug {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    fn delete(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    fn scan(&self, prefix: &[u8], limit: usize) -> Result<Entries, StoreError>;
    fn scan_from(&self, start: &[u8], limit: usize) -> Result<Entries, StoreError>;
    fn len(&self) -> usize;
}

/// A table whose keys all have `N` bytes, stored inline (no allocation per key).
#[derive(Debug)]
struct FixedTable<const N: usize, V>(BTreeMap<[u8; N], V>);

impl<const N: usize, V> Default for FixedTable<N, V> {
    fn default() -> Self {
        Self(BTreeMap::new())
    }
}

fn fixed_key<const N: usize>(key: &[u8]) -> Result<[u8; N], StoreError> {
    key.try_into()
        .map_err(|_| StoreError::Database(format!("in-memory key of {} bytes where {N} are expected", key.len())))
}

impl<const N: usize, V: MemValue> MemTable for FixedTable<N, V> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.0.get(&fixed_key::<N>(key)?).map(|v| v.bytes().to_vec()))
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let (key, value) = (fixed_key::<N>(key)?, V::from_bytes(value)?);
        Ok(self.0.insert(key, value).map(|v| v.bytes().to_vec()))
    }

    fn delete(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.0.remove(&fixed_key::<N>(key)?).map(|v| v.bytes().to_vec()))
    }

    fn scan(&self, prefix: &[u8], limit: usize) -> Result<Entries, StoreError> {
        let mut start = [0_u8; N];
        let Some(head) = start.get_mut(..prefix.len()) else { return Ok(Vec::new()) };
        head.copy_from_slice(prefix);
        Ok(self
            .0
            .range(start..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(limit)
            .map(|(k, v)| (k.to_vec(), v.bytes().to_vec()))
            .collect())
    }

    fn scan_from(&self, start: &[u8], limit: usize) -> Result<Entries, StoreError> {
        Ok(self.0.range(fixed_key::<N>(start)?..).take(limit).map(|(k, v)| (k.to_vec(), v.bytes().to_vec())).collect())
    }

    fn len(&self) -> usize {
        self.0.len()
    }
}

/// A table with keys of any length (metadata, and layout-1 tables read by the migration).
#[derive(Debug, Default)]
struct VarTable(BTreeMap<Box<[u8]>, Box<[u8]>>);

impl MemTable for VarTable {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.0.get(key).map(|v| v.to_vec()))
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.0.insert(key.into(), value.into()).map(Vec::from))
    }

    fn delete(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.0.remove(key).map(Vec::from))
    }

    fn scan(&self, prefix: &[u8], limit: usize) -> Result<Entries, StoreError> {
        Ok(self
            .0
            .range::<[u8], _>((std::ops::Bound::Included(prefix), std::ops::Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(limit)
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect())
    }

    fn scan_from(&self, start: &[u8], limit: usize) -> Result<Entries, StoreError> {
        Ok(self
            .0
            .range::<[u8], _>((std::ops::Bound::Included(start), std::ops::Bound::Unbounded))
            .take(limit)
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect())
    }

    fn len(&self) -> usize {
        self.0.len()
    }
}

/// The in-memory tables, each with its own key size, so an entry costs its bytes and a share of
/// a B-tree node: no allocation for keys, for empty values or for fixed-size values.
#[derive(Debug, Default)]
struct MemoryTables {
    sessions: FixedTable<32, Box<[u8]>>,
    pending: FixedTable<40, [u8; 32]>,
    used: FixedTable<32, [u8; 0]>,
    index: FixedTable<40, [u8; 0]>,
    bound: FixedTable<48, Box<[u8]>>,
    replay: FixedTable<64, [u8; 0]>,
    attempts: FixedTable<40, Box<[u8]>>,
    claimable: VarTable,
    meta: VarTable,
    requesters: VarTable,
    requester_of: FixedTable<32, Box<[u8]>>,
    receipts: FixedTable<48, Box<[u8]>>,
}

impl MemoryTables {
    fn table(&mut self, table: Table) -> &mut dyn MemTable {
        match table {
            Table::Sessions => &mut self.sessions,
            Table::Pending => &mut self.pending,
            Table::Used => &mut self.used,
            Table::Index => &mut self.index,
            Table::Bound => &mut self.bound,
            Table::Replay => &mut self.replay,
            Table::Attempts => &mut self.attempts,
            Table::Claimable => &mut self.claimable,
            Table::Meta => &mut self.meta,
            Table::Requesters => &mut self.requesters,
            Table::RequesterOf => &mut self.requester_of,
            Table::Receipts => &mut self.receipts,
        }
    }
}

/// In-memory backend: one lock, undo log per transaction (tests and small deployments).
#[derive(Debug, Default)]
pub struct MemoryKv {
    data: Mutex<MemoryTables>,
}

impl MemoryKv {
    /// Entries in `table` (for tests and measurements).
    ///
    /// # Errors
    /// A poisoned lock.
    pub fn len(&self, table: Table) -> Result<usize, StoreError> {
        Ok(self.data.lock()?.table(table).len())
    }
}

/// A table, a key and the value it had before a write (`None`: absent).
type UndoEntry = (Table, Vec<u8>, Option<Vec<u8>>);

struct MemoryTxn<'a> {
    data: &'a mut MemoryTables,
    /// Previous values of every key written, in write order, to roll back on error (cheaper
    /// than copying the whole map per transaction, which made every request O(sessions)).
    undo: Vec<UndoEntry>,
}

impl KvTxn for MemoryTxn<'_> {
    fn get(&mut self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.data.table(table).get(key)
    }

    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let old = self.data.table(table).put(key, value)?;
        self.undo.push((table, key.to_vec(), old));
        Ok(())
    }

    fn delete(&mut self, table: Table, key: &[u8]) -> Result<(), StoreError> {
        let old = self.data.table(table).delete(key)?;
        self.undo.push((table, key.to_vec(), old));
        Ok(())
    }

    fn scan(&mut self, table: Table, prefix: &[u8], limit: usize) -> Result<Entries, StoreError> {
        self.data.table(table).scan(prefix, limit)
    }

    fn scan_from(&mut self, table: Table, start: &[u8], limit: usize) -> Result<Entries, StoreError> {
        self.data.table(table).scan_from(start, limit)
    }
}

impl Kv for MemoryKv {
    /// One lock held for a transaction over in-memory maps: nothing to wait for.
    const BLOCKS: bool = false;

    fn transact<R: Send>(&self, f: impl Fn(&mut dyn KvTxn) -> Result<R, StoreError> + Sync) -> Result<R, StoreError> {
        let mut data = self.data.lock()?;
        let mut txn = MemoryTxn { data: &mut data, undo: Vec::new() };
        let result = f(&mut txn);
        if result.is_err() {
            // Every key and value undone was accepted by its table before, so none is refused.
            for (table, key, old) in txn.undo.into_iter().rev() {
                match old {
                    Some(value) => txn.data.table(table).put(&key, &value)?,
                    None => txn.data.table(table).delete(&key)?,
                };
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_memory_transaction_changes_nothing() {
        let kv = MemoryKv::default();
        let (keep, new) = ([1_u8; 40], [2_u8; 40]);
        kv.transact(|t| t.put(Table::Attempts, &keep, b"1")).expect("commit");
        let failed: Result<(), StoreError> = kv.transact(|t| {
            t.put(Table::Attempts, &new, b"2")?;
            t.put(Table::Attempts, &keep, b"changed")?;
            t.delete(Table::Attempts, &keep)?;
            t.put(Table::Replay, &[3; 64], &[])?;
            Err(StoreError::Database("injected".into()))
        });
        assert!(failed.is_err());
        let (keep, new) =
            kv.transact(|t| Ok((t.get(Table::Attempts, &keep)?, t.get(Table::Attempts, &new)?))).expect("read");
        assert_eq!((keep.as_deref(), new), (Some(&b"1"[..]), None));
        assert_eq!(kv.len(Table::Replay).expect("len"), 0);
    }

    #[test]
    fn memory_tables_refuse_keys_and_values_of_the_wrong_size() {
        let kv = MemoryKv::default();
        for (table, key, value) in [
            (Table::Sessions, &[1_u8; 31][..], &b"v"[..]),
            (Table::Replay, &[1; 65][..], &[][..]),
            (Table::Pending, &[1; 40][..], &[1; 31][..]),
            (Table::Index, &[1; 40][..], &[1][..]),
        ] {
            let refused = kv.transact(|t| t.put(table, key, value)).expect_err("refused");
            assert!(refused.to_string().contains("expected"), "{refused}");
        }
        assert!(kv.transact(|t| t.get(Table::Bound, &[0; 47])).is_err());
        // A prefix longer than the table's keys matches nothing.
        assert!(kv.transact(|t| t.scan(Table::Used, &[0; 33], 10)).expect("scan").is_empty());
    }
}
