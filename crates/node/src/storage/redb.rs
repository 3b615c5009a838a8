//! Storage in redb files (`chain.redb` in the data dir, the durable mempool's
//! `chain.mempool.redb` beside it, see `mempool.rs`, and the event index's `chain.events.redb`,
//! see `events.rs`): the tables, opening (with the format check), the block write and the reads.

use std::{path::Path, sync::Arc};

use borsh::BorshDeserialize as _;
use paystreams_lez_core::{Account, AccountId};
use paystreams_runtime::{State, StateDiff};
use redb::{ReadableDatabase as _, ReadableTable as _, ReadableTableMetadata as _, TableDefinition};

use super::{
    FAILED_RETAINED, FORMAT_VERSION, PendingTransaction, Storage, StorageError, decode, events, failed_key, index,
    mempool, migrate,
};
use crate::{
    block::{FailedTransaction, GenesisSpec, StoredBlock, StoredReceipt, encode},
    index::StreamIndex,
};

/// `"format"` → borsh u32 (see `migrate.rs`), `"genesis"` → borsh [`GenesisSpec`], `"head"` →
/// borsh u64, `"stream_index"` → the stream-index marker (see `index.rs`).
pub(super) const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");
/// height → borsh [`StoredBlock`].
pub(super) const BLOCKS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("blocks");
/// tx hash → borsh [`StoredReceipt`] (also the transaction index).
pub(super) const RECEIPTS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("receipts");
/// account id → borsh account; default accounts are removed.
pub(super) const ACCOUNTS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("accounts");
/// [`failed_key`] (block id, index, big-endian) → borsh [`FailedTransaction`]; bounded, the
/// oldest dropped first with its receipt.
pub(super) const FAILED: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("failed");

/// redb's page cache (read cache and write buffer). The chain holds every account in memory
/// and reads blocks and receipts by key, so a cache of the whole file (redb's default is 1 GiB)
/// only duplicates the accounts loaded at start: at 1,000,000 streams it held ~420 MiB of the
/// opened chain's resident memory and cost ~0.2 s of page faults per restart, with no change
/// in block times (`crates/node/benches/scale.rs`, `docs/benchmarks.md` "Scale").
const REDB_CACHE_BYTES: usize = 128 * 1024 * 1024;

/// Storage in a redb file (`chain.redb` in the data dir) and the durable mempool's file beside
/// it ([`RedbStorage::mempool_path`]).
pub struct RedbStorage {
    pub(super) db: Arc<redb::Database>,
    /// The durable mempool (`mempool.rs`): its own file, so its writes never wait for a block's.
    pool: redb::Database,
    failed_retained: u64,
    /// The event index (`events.rs`): its own file, written behind the blocks by its own thread.
    events: events::EventIndex,
}

/// Opens (creating if needed) one redb file with a page cache of `cache` bytes.
///
/// # Errors
/// [`StorageError::AlreadyOpen`] when another process holds it; other failures as
/// [`StorageError::Database`].
pub(super) fn open_file(path: &Path, cache: usize) -> Result<redb::Database, StorageError> {
    redb::Database::builder().set_cache_size(cache).create(path).map_err(|e| match e {
        redb::DatabaseError::DatabaseAlreadyOpen => StorageError::AlreadyOpen { path: path.display().to_string() },
        other => StorageError::Database(other.into()),
    })
}

/// The mempool file's page cache: it holds the pending transactions only (at most
/// `MEMPOOL_MAX` of them, a few MiB).
const POOL_CACHE_BYTES: usize = 16 * 1024 * 1024;

/// A write transaction that is durable once committed.
pub(super) fn begin_write(db: &redb::Database) -> Result<redb::WriteTransaction, StorageError> {
    let mut txn = db.begin_write()?;
    txn.set_durability(redb::Durability::Immediate)?;
    Ok(txn)
}

impl RedbStorage {
    /// Opens (creating if needed) the database file `path`.
    ///
    /// # Errors
    /// [`StorageError::AlreadyOpen`] when another process holds it,
    /// [`StorageError::NewerFormat`] or [`StorageError::OlderFormat`] for a file of another
    /// format (left untouched); other failures as [`StorageError::Database`].
    pub fn open(path: &Path) -> Result<Self, StorageError> {
        let db = open_file(path, REDB_CACHE_BYTES)?;
        let version = migrate::stored_version(&db)?;
        if let Some(found) = version {
            let path = path.display().to_string();
            if found > FORMAT_VERSION {
                return Err(StorageError::NewerFormat { path, found, supported: FORMAT_VERSION });
            }
            if found < FORMAT_VERSION && !migrate::UPGRADES_FROM.contains(&found) {
                return Err(StorageError::OlderFormat { path, found, supported: FORMAT_VERSION });
            }
        }
        let pool = open_file(&Self::mempool_path(path), POOL_CACHE_BYTES)?;
        let txn = begin_write(&db)?;
        {
            txn.open_table(META)?;
            txn.open_table(BLOCKS)?;
            txn.open_table(RECEIPTS)?;
            txn.open_table(ACCOUNTS)?;
            txn.open_table(FAILED)?;
            txn.open_table(index::INDEX_VAULTS)?;
            txn.open_table(index::INDEX_STREAMS)?;
            // The event index lives in its own file (`events.rs`).
            events::drop_from_chain_file(&txn)?;
        }
        match version {
            // A new chain: whatever a mempool file left here belonged to another one.
            None => {
                let pool_txn = begin_write(&pool)?;
                mempool::clear(&pool_txn)?;
                pool_txn.commit()?;
            }
            // An older format kept the records in the chain file. The mempool file is written
            // first: a crash before the chain file's write leaves them in both, and the next
            // open moves them again (the same keys).
            Some(found) if found < FORMAT_VERSION => {
                let moved = mempool::take_from_chain_file(&txn)?;
                let pool_txn = begin_write(&pool)?;
                mempool::put(&pool_txn, &moved)?;
                pool_txn.commit()?;
            }
            Some(_) => {}
        }
        migrate::upgrade(&txn, version)?;
        txn.commit()?;
        let db = Arc::new(db);
        let events = events::EventIndex::open(path, Arc::clone(&db))?;
        Ok(Self { db, pool, failed_retained: FAILED_RETAINED, events })
    }

    /// The durable mempool's file beside the chain file `path` (`chain.mempool.redb` beside
    /// `chain.redb`).
    #[must_use]
    pub fn mempool_path(path: &Path) -> std::path::PathBuf {
        path.with_extension("mempool.redb")
    }

    /// The event index's file beside the chain file `path` (`chain.events.redb` beside
    /// `chain.redb`).
    #[must_use]
    pub fn events_path(path: &Path) -> std::path::PathBuf {
        events::index_path(path)
    }

    /// Keeps at most `bound` failed transactions instead of [`FAILED_RETAINED`].
    #[must_use]
    pub const fn with_failed_retained(mut self, bound: u64) -> Self {
        self.failed_retained = bound;
        self
    }

    /// Lets at most `events` events wait in memory for the event indexer instead of its default
    /// (100,000); beyond it, the indexer reads the blocks it missed back from the chain file.
    #[must_use]
    pub fn with_event_queue(self, events: usize) -> Self {
        self.events.set_queue_limit(events);
        self
    }

    /// Bytes of the file in use: allocated pages (records, metadata and fragmentation), as
    /// opposed to the file's length, which redb grows in large steps. For measurements.
    ///
    /// # Errors
    /// Storage failure.
    pub fn allocated_bytes(&self) -> Result<u64, StorageError> {
        let txn = self.db.begin_write()?;
        let stats = txn.stats()?;
        txn.abort()?;
        let page = u64::try_from(stats.page_size()).unwrap_or(u64::MAX);
        Ok(stats.allocated_pages().saturating_mul(page))
    }

    fn write(&self) -> Result<redb::WriteTransaction, StorageError> {
        begin_write(&self.db)
    }

    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(META)?;
        Ok(table.get(key)?.map(|v| v.value().to_vec()))
    }
}

/// The head block's height as `txn` sees the chain file; `None` before genesis.
///
/// # Errors
/// Storage failure or corrupt record.
pub(super) fn read_head(txn: &redb::ReadTransaction) -> Result<Option<u64>, StorageError> {
    txn.open_table(META)?.get("head")?.map(|v| decode("head", v.value())).transpose()
}

fn write_accounts<'a>(
    txn: &redb::WriteTransaction,
    accounts: impl Iterator<Item = (&'a AccountId, &'a Account)>,
) -> Result<(), StorageError> {
    let mut table = txn.open_table(ACCOUNTS)?;
    for (id, account) in accounts {
        if account.is_default() {
            table.remove(id.0.as_slice())?;
        } else {
            table.insert(id.0.as_slice(), encode(account).as_slice())?;
        }
    }
    Ok(())
}

/// The block, its receipts, its failed transactions (dropping the oldest beyond `retained`,
/// with their receipts), its account changes and the new head.
fn write_block(
    txn: &redb::WriteTransaction,
    block: &StoredBlock,
    receipts: &[StoredReceipt],
    failed: &[FailedTransaction],
    retained: u64,
    diff: &StateDiff,
) -> Result<(), StorageError> {
    txn.open_table(BLOCKS)?.insert(block.height(), encode(block).as_slice())?;
    let mut table = txn.open_table(RECEIPTS)?;
    for receipt in receipts {
        table.insert(receipt.tx_hash.as_slice(), encode(receipt).as_slice())?;
    }
    let mut kept = txn.open_table(FAILED)?;
    for entry in failed {
        let key = failed_key(entry.receipt.block_id, entry.receipt.index);
        kept.insert(key.as_slice(), encode(entry).as_slice())?;
    }
    while kept.len()? > retained {
        let Some((_, oldest)) = kept.pop_first()? else { break };
        // The receipt comes first in the record: decode only that.
        let receipt = StoredReceipt::deserialize(&mut oldest.value())
            .map_err(|e| StorageError::corrupt("failed transaction", e))?;
        drop(oldest);
        table.remove(receipt.tx_hash.as_slice())?;
    }
    drop((table, kept));
    write_accounts(txn, diff.accounts.iter())?;
    txn.open_table(META)?.insert("head", encode(&block.height()).as_slice())?;
    Ok(())
}

impl Storage for RedbStorage {
    fn genesis(&self) -> Result<Option<GenesisSpec>, StorageError> {
        self.meta("genesis")?.map(|bytes| decode("genesis", &bytes)).transpose()
    }

    fn load_head(&self) -> Result<Option<u64>, StorageError> {
        read_head(&self.db.begin_read()?)
    }

    fn init(&self, genesis: &GenesisSpec, block: &StoredBlock, state: &State) -> Result<(), StorageError> {
        let txn = self.write()?;
        {
            let mut meta = txn.open_table(META)?;
            meta.insert("genesis", encode(genesis).as_slice())?;
            meta.insert("head", encode(&block.height()).as_slice())?;
            txn.open_table(BLOCKS)?.insert(block.height(), encode(block).as_slice())?;
            write_accounts(&txn, state.iter())?;
        }
        txn.commit()?;
        self.events.catch_up_later();
        Ok(())
    }

    fn commit_block(
        &self,
        block: &StoredBlock,
        receipts: &[StoredReceipt],
        failed: &[FailedTransaction],
        diff: &StateDiff,
        added: &StreamIndex,
    ) -> Result<(), StorageError> {
        self.commit_block_pending(block, receipts, failed, diff, added, None)
    }

    fn commit_block_pending(
        &self,
        block: &StoredBlock,
        receipts: &[StoredReceipt],
        failed: &[FailedTransaction],
        diff: &StateDiff,
        added: &StreamIndex,
        pending_below: Option<u64>,
    ) -> Result<(), StorageError> {
        // Without the block's admission numbers, its records are found by hash.
        let below = match pending_below {
            Some(end) => Some(end),
            None => mempool::highest_of(&self.pool, receipts.iter().map(|r| &r.tx_hash))?.map(|h| h.saturating_add(1)),
        };
        let txn = self.write()?;
        write_block(&txn, block, receipts, failed, self.failed_retained, diff)?;
        index::extend_for_block(&txn, block, added)?;
        if let Some(end) = below {
            mempool::raise_below(&txn, end)?;
        }
        txn.commit()?;
        self.events.block_written(block, receipts);
        // The block is durable, and with it the end of what is pending: the records below it
        // are never read again, so their removal needs no fsync of its own (the next durable
        // write of the mempool file carries it). Nor is a failed removal the block's failure:
        // the block is written, and the next removal, or the next open, drops those records.
        if let Some(end) = below {
            let remove = || -> Result<(), StorageError> {
                let mut txn = self.pool.begin_write()?;
                txn.set_durability(redb::Durability::None)?;
                mempool::remove_below(&txn, end)?;
                txn.commit()?;
                Ok(())
            };
            if let Err(e) = remove() {
                tracing::warn!(error = %e, "the mempool file still holds records of a written block; the next block's write removes them");
            }
        }
        Ok(())
    }

    /// The accounts table read, decoded and leaf-hashed from its stored bytes (`borsh(account)`,
    /// what the leaf hashes) on every core (at most [`super::LOAD_THREADS_MAX`]), in one read
    /// transaction; the root's inner nodes are hashed while the state is built
    /// (`storage/load.rs`).
    fn load_state_with_leaves(&self) -> Result<super::LoadedState, StorageError> {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        self.load_split(cores.min(super::LOAD_THREADS_MAX))
    }

    fn stream_index(&self, head: &StoredBlock) -> Result<Option<StreamIndex>, StorageError> {
        index::read(&self.db.begin_read()?, head)
    }

    fn save_stream_index(&self, head: &StoredBlock, index: &StreamIndex) -> Result<(), StorageError> {
        let txn = self.write()?;
        index::replace(&txn, head, index)?;
        txn.commit()?;
        Ok(())
    }

    fn add_pending(&self, entries: &[([u8; 32], PendingTransaction)]) -> Result<(), StorageError> {
        let chain = self.db.begin_read()?;
        let txn = begin_write(&self.pool)?;
        mempool::add(&txn, &chain, entries)?;
        txn.commit()?;
        Ok(())
    }

    fn remove_pending(&self, hashes: &[[u8; 32]]) -> Result<(), StorageError> {
        let txn = begin_write(&self.pool)?;
        mempool::remove(&txn, hashes.iter())?;
        txn.commit()?;
        Ok(())
    }

    fn pending_transactions(&self) -> Result<Vec<PendingTransaction>, StorageError> {
        mempool::read_all(&self.pool, mempool::floor(&self.db)?)
    }

    fn pending_seq_floor(&self) -> Result<u64, StorageError> {
        mempool::floor(&self.db)
    }

    fn events(
        &self,
        filter: &paystreams_rpc::EventFilter,
        after: Option<paystreams_rpc::EventCursor>,
        limit: u32,
    ) -> Result<paystreams_rpc::EventPage, StorageError> {
        self.events.page(filter, after, limit)
    }

    fn events_indexed_through(&self) -> Result<Option<u64>, StorageError> {
        self.events.indexed_through()
    }

    fn index_missing_events(&self) -> Result<u64, StorageError> {
        self.events.catch_up()
    }

    fn block(&self, height: u64) -> Result<Option<StoredBlock>, StorageError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(BLOCKS)?;
        table.get(height)?.map(|v| decode(&format!("block {height}"), v.value())).transpose()
    }

    fn receipt(&self, tx_hash: &[u8; 32]) -> Result<Option<StoredReceipt>, StorageError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(RECEIPTS)?;
        table.get(tx_hash.as_slice())?.map(|v| decode("receipt", v.value())).transpose()
    }

    fn receipts_exist(&self, tx_hashes: &[[u8; 32]]) -> Result<Vec<bool>, StorageError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(RECEIPTS)?;
        tx_hashes.iter().map(|hash| Ok(table.get(hash.as_slice())?.is_some())).collect()
    }

    fn failed_transaction(&self, block_id: u64, index: u32) -> Result<Option<FailedTransaction>, StorageError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(FAILED)?;
        let key = failed_key(block_id, index);
        table.get(key.as_slice())?.map(|v| decode("failed transaction", v.value())).transpose()
    }

    fn failed_len(&self) -> Result<u64, StorageError> {
        Ok(self.db.begin_read()?.open_table(FAILED)?.len()?)
    }

    fn account(&self, id: &AccountId) -> Result<Option<Account>, StorageError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(ACCOUNTS)?;
        table.get(id.0.as_slice())?.map(|v| decode("account", v.value())).transpose()
    }

    fn load_state(&self) -> Result<State, StorageError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(ACCOUNTS)?;
        let mut accounts = Vec::with_capacity(usize::try_from(table.len()?).unwrap_or(0));
        for entry in table.iter()? {
            let (key, value) = entry?;
            let id: [u8; 32] =
                key.value().try_into().map_err(|_| StorageError::corrupt("account id", "not 32 bytes"))?;
            accounts.push((AccountId(id), decode("account", value.value())?));
        }
        // Keys come in ascending order: the state is built in one pass.
        State::from_sorted(accounts).map_err(|e| StorageError::corrupt("accounts", e))
    }
}
