//! The redb backend (the default): one redb table per [`Table`], every write transaction
//! committed with immediate durability.

use std::path::Path;

use redb::{ReadableDatabase as _, ReadableTable, TableDefinition};

use super::{Entries, Kv, KvTxn, StoreError, Table};

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                Self::Database(e.to_string())
            }
        }
    )*};
}
from_redb!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

/// How long [`RedbKv::open`] waits for a file this process is still closing.
const REOPEN_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(5);
/// How often it looks again meanwhile.
const REOPEN_RETRY: std::time::Duration = std::time::Duration::from_millis(20);

/// redb backend (the default).
pub struct RedbKv {
    db: redb::Database,
}

impl std::fmt::Debug for RedbKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedbKv")
    }
}

const fn table_def(table: Table) -> TableDefinition<'static, &'static [u8], &'static [u8]> {
    TableDefinition::new(table.name())
}

impl RedbKv {
    /// Opens (creating if needed) the session database at `path`.
    ///
    /// # Errors
    /// Storage failures, including another process holding the file.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        // A store this process just closed may still be held for a moment by a storage call
        // finishing on the blocking pool (those cannot be cancelled): wait for it, bounded.
        // Another process holding the file keeps it past the bound and is reported.
        let waited_since = std::time::Instant::now();
        let db = loop {
            match redb::Database::create(path) {
                Err(redb::DatabaseError::DatabaseAlreadyOpen) if waited_since.elapsed() < REOPEN_WAIT_MAX => {
                    std::thread::sleep(REOPEN_RETRY);
                }
                other => break other?,
            }
        };
        let txn = db.begin_write()?;
        for table in Table::ALL {
            txn.open_table(table_def(table))?;
        }
        txn.commit()?;
        Ok(Self { db })
    }
}

/// The value at `key` in an open table (of a read or a write transaction).
fn get_value(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    key: &[u8],
) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(table.get(key)?.map(|v| v.value().to_vec()))
}

/// Entries whose key starts with `prefix`, in key order, at most `limit`.
fn scan_table(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    prefix: &[u8],
    limit: usize,
) -> Result<Entries, StoreError> {
    let mut out = Vec::new();
    for entry in table.range::<&[u8]>(prefix..)? {
        let (k, v) = entry?;
        if !k.value().starts_with(prefix) || out.len() >= limit {
            break;
        }
        out.push((k.value().to_vec(), v.value().to_vec()));
    }
    Ok(out)
}

/// Entries whose key is at least `start`, in key order, at most `limit`.
fn scan_table_from(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    start: &[u8],
    limit: usize,
) -> Result<Entries, StoreError> {
    let mut out = Vec::new();
    for entry in table.range::<&[u8]>(start..)?.take(limit) {
        let (k, v) = entry?;
        out.push((k.value().to_vec(), v.value().to_vec()));
    }
    Ok(out)
}

struct RedbTxn<'a> {
    txn: &'a redb::WriteTransaction,
}

impl KvTxn for RedbTxn<'_> {
    fn get(&mut self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        get_value(&self.txn.open_table(table_def(table))?, key)
    }

    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.txn.open_table(table_def(table))?.insert(key, value)?;
        Ok(())
    }

    fn delete(&mut self, table: Table, key: &[u8]) -> Result<(), StoreError> {
        self.txn.open_table(table_def(table))?.remove(key)?;
        Ok(())
    }

    fn scan(&mut self, table: Table, prefix: &[u8], limit: usize) -> Result<Entries, StoreError> {
        scan_table(&self.txn.open_table(table_def(table))?, prefix, limit)
    }

    fn scan_from(&mut self, table: Table, start: &[u8], limit: usize) -> Result<Entries, StoreError> {
        scan_table_from(&self.txn.open_table(table_def(table))?, start, limit)
    }
}

/// A redb read transaction: a snapshot; writes are refused.
struct RedbReadTxn<'a> {
    txn: &'a redb::ReadTransaction,
}

impl KvTxn for RedbReadTxn<'_> {
    fn get(&mut self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        get_value(&self.txn.open_table(table_def(table))?, key)
    }

    fn put(&mut self, _table: Table, _key: &[u8], _value: &[u8]) -> Result<(), StoreError> {
        Err(StoreError::Database("write inside a read-only session-store transaction".into()))
    }

    fn delete(&mut self, _table: Table, _key: &[u8]) -> Result<(), StoreError> {
        Err(StoreError::Database("delete inside a read-only session-store transaction".into()))
    }

    fn scan(&mut self, table: Table, prefix: &[u8], limit: usize) -> Result<Entries, StoreError> {
        scan_table(&self.txn.open_table(table_def(table))?, prefix, limit)
    }

    fn scan_from(&mut self, table: Table, start: &[u8], limit: usize) -> Result<Entries, StoreError> {
        scan_table_from(&self.txn.open_table(table_def(table))?, start, limit)
    }
}

impl Kv for RedbKv {
    fn read<R: Send>(&self, f: impl Fn(&mut dyn KvTxn) -> Result<R, StoreError> + Sync) -> Result<R, StoreError> {
        let txn = self.db.begin_read()?;
        f(&mut RedbReadTxn { txn: &txn })
    }

    fn transact<R: Send>(&self, f: impl Fn(&mut dyn KvTxn) -> Result<R, StoreError> + Sync) -> Result<R, StoreError> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(redb::Durability::Immediate)?;
        match f(&mut RedbTxn { txn: &txn }) {
            Ok(result) => {
                txn.commit()?;
                Ok(result)
            }
            Err(e) => {
                txn.abort()?;
                Err(e)
            }
        }
    }
}
