//! Durable chain storage behind the [`Storage`] trait: redb on disk ([`RedbStorage`]) and a map in
//! memory ([`MemStorage`]) for ephemeral chains and tests.
//!
//! One call to [`Storage::commit_block`] writes the block, its receipts (which double as the
//! transaction index: hash → block and position), its failed transactions, the account changes,
//! the stream-index entries and the new head in one redb write transaction with
//! [`redb::Durability::Immediate`], so after a crash either all of a block is on disk or none of
//! it is. The block's events (the event index) are derived from it and written behind it, in a
//! file of their own (`events.rs`).
//!
//! Failed transactions are kept in a bounded table: at most [`FAILED_RETAINED`] (or the bound
//! the storage was opened with), the oldest dropped first, with their receipts, in the same write
//! transaction that adds the new ones. Blocks hold only the transactions that succeeded, so
//! stored blocks grow only with transactions that changed state.
//!
//! Files: `redb.rs` (tables, opening, writes, reads), `load.rs` (the parallel account loader),
//! `index.rs` (the stored stream index: marker and key codecs), `events.rs` (the stored event
//! index: its file, its writer thread, marker, catch-up from stored blocks), `migrate.rs` (the format version; older
//! and newer data dirs are refused), `mempool.rs` (the durable mempool: admitted transactions not
//! yet in a block), `memory.rs`.

mod events;
mod index;
mod load;
mod memory;
mod mempool;
mod migrate;
mod redb;

use borsh::BorshDeserialize;
use paystreams_lez_core::{Account, AccountId};
use paystreams_runtime::{State, StateDiff};

pub use self::{
    load::LOAD_THREADS_MAX, memory::MemStorage, mempool::PendingTransaction, migrate::FORMAT_VERSION, redb::RedbStorage,
};
use crate::{
    block::{FailedTransaction, GenesisSpec, StoredBlock, StoredReceipt},
    index::StreamIndex,
};

/// Most failed transactions (with their receipts) a storage keeps by default; beyond it the
/// oldest are dropped when a block commits. At ~1 KB each (transaction, receipt, keys) this is
/// ~100 MB at most, and at the block limit of 5,000 transactions it still holds the last 20
/// blocks' worth of failures; a client reads a failure's receipt within seconds of its block.
pub const FAILED_RETAINED: u64 = 100_000;

/// The key of a failed transaction in the bounded table: block id then position among the
/// block's failed transactions, both big-endian, so the oldest sorts first.
pub(crate) fn failed_key(block_id: u64, index: u32) -> [u8; 12] {
    let mut key = [0_u8; 12];
    key[..8].copy_from_slice(&block_id.to_be_bytes());
    key[8..].copy_from_slice(&index.to_be_bytes());
    key
}

/// A storage failure. The node stops producing blocks rather than diverge from its disk.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("database error: {0}")]
    Database(#[from] ::redb::Error),
    #[error(
        "the database at {path} is already open in another process; stop the other node or pass a different --data-dir"
    )]
    AlreadyOpen { path: String },
    #[error(
        "corrupt database record {what}: {detail}; move the data dir away (or pass --ephemeral) to start a new chain"
    )]
    Corrupt { what: String, detail: String },
    #[error(
        "the database at {path} has format version {found}, newer than version {supported} which this node reads; run a newer paystream, or move the data dir away (or pass --ephemeral) to start a new chain"
    )]
    NewerFormat { path: String, found: u32, supported: u32 },
    #[error(
        "the database at {path} has format version {found}, older than version {supported} which this node reads (its stored blocks, transactions or receipts are laid out differently); an older dev chain is not converted: move the data dir away (or pass another --data-dir, or --ephemeral) to start a new chain"
    )]
    OlderFormat { path: String, found: u32, supported: u32 },
    #[error("cannot load the accounts on {threads} threads; use 1 to {LOAD_THREADS_MAX}")]
    LoadThreads { threads: usize },
    /// The durable mempool's write of an accepted transaction failed (another submitter's write,
    /// shared with this one, carried the error).
    #[error(
        "the transaction could not be written to disk ({detail}), so it was not kept unless a block had already \
         taken it; look it up by hash before sending it again, and free disk space if the disk is full"
    )]
    PendingNotSaved { detail: String },
    #[error("this node's storage keeps no event index")]
    NoEventIndex,
}

impl StorageError {
    pub(crate) fn corrupt(what: impl Into<String>, detail: impl ToString) -> Self {
        Self::Corrupt { what: what.into(), detail: detail.to_string() }
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StorageError {
            fn from(e: $t) -> Self {
                Self::Database(e.into())
            }
        }
    )*};
}
from_redb!(
    ::redb::TransactionError,
    ::redb::TableError,
    ::redb::StorageError,
    ::redb::CommitError,
    ::redb::SetDurabilityError
);

/// Decodes a stored Borsh record, naming `what` when it is corrupt.
fn decode<T: BorshDeserialize>(what: &str, bytes: &[u8]) -> Result<T, StorageError> {
    T::try_from_slice(bytes).map_err(|e| StorageError::corrupt(what, e))
}

/// What a restart loads: every stored account, their state-root leaves in id order
/// (`State::state_root`), and the root over them.
pub type LoadedState = (State, Vec<[u8; 32]>, [u8; 32]);

/// Where blocks, receipts and accounts live.
pub trait Storage: Send + Sync + 'static {
    /// The stored genesis, `None` for a fresh store.
    ///
    /// # Errors
    /// Storage failure or corrupt record.
    fn genesis(&self) -> Result<Option<GenesisSpec>, StorageError>;

    /// Height of the last committed block, `None` for a fresh store.
    ///
    /// # Errors
    /// Storage failure.
    fn load_head(&self) -> Result<Option<u64>, StorageError>;

    /// Writes the genesis, its block (block 1) and the genesis state atomically.
    ///
    /// # Errors
    /// Storage failure.
    fn init(&self, genesis: &GenesisSpec, block: &StoredBlock, state: &State) -> Result<(), StorageError>;

    /// Commits a block, the receipts of its transactions, its failed transactions (added to the
    /// bounded table, whose oldest entries beyond its bound are dropped with their receipts), its
    /// state changes and the stream-index entries it adds (`added`, from its events) atomically,
    /// removes the block's transactions (one receipt each) from the durable mempool, and moves
    /// the head. A stored index that was current at the parent block becomes current
    /// at this one; any other stored index stays stale. A storage that keeps no index ignores
    /// `added`.
    ///
    /// # Errors
    /// Storage failure; nothing of the block is then stored.
    fn commit_block(
        &self,
        block: &StoredBlock,
        receipts: &[StoredReceipt],
        failed: &[FailedTransaction],
        diff: &StateDiff,
        added: &StreamIndex,
    ) -> Result<(), StorageError>;

    /// [`Storage::commit_block`] by admission numbers: every admitted transaction numbered
    /// below `pending_below` is in this block or an earlier one (blocks take the mempool in
    /// admission order), so the durable mempool drops that range instead of looking up each
    /// transaction. `None` (no numbered transaction in the block): by the receipts, as
    /// `commit_block`. The default is `commit_block`.
    ///
    /// # Errors
    /// As [`Storage::commit_block`].
    fn commit_block_pending(
        &self,
        block: &StoredBlock,
        receipts: &[StoredReceipt],
        failed: &[FailedTransaction],
        diff: &StateDiff,
        added: &StreamIndex,
        pending_below: Option<u64>,
    ) -> Result<(), StorageError> {
        let _ = pending_below;
        self.commit_block(block, receipts, failed, diff, added)
    }

    /// A failed transaction still kept, by its receipt's block id and index.
    ///
    /// # Errors
    /// Storage failure or corrupt record.
    fn failed_transaction(&self, block_id: u64, index: u32) -> Result<Option<FailedTransaction>, StorageError>;

    /// How many failed transactions are kept.
    ///
    /// # Errors
    /// Storage failure.
    fn failed_len(&self) -> Result<u64, StorageError>;

    /// A block by height.
    ///
    /// # Errors
    /// Storage failure or corrupt record.
    fn block(&self, height: u64) -> Result<Option<StoredBlock>, StorageError>;

    /// The receipt of an included transaction.
    ///
    /// # Errors
    /// Storage failure or corrupt record.
    fn receipt(&self, tx_hash: &[u8; 32]) -> Result<Option<StoredReceipt>, StorageError>;

    /// Whether each transaction has a receipt (was included or failed in a block), in order:
    /// admission's duplicate check for a whole batch, in one read.
    ///
    /// # Errors
    /// Storage failure.
    fn receipts_exist(&self, tx_hashes: &[[u8; 32]]) -> Result<Vec<bool>, StorageError> {
        tx_hashes.iter().map(|hash| self.receipt(hash).map(|r| r.is_some())).collect()
    }

    /// One stored account (`None` when default).
    ///
    /// # Errors
    /// Storage failure or corrupt record.
    fn account(&self, id: &AccountId) -> Result<Option<Account>, StorageError>;

    /// Every stored account.
    ///
    /// # Errors
    /// Storage failure or corrupt record.
    fn load_state(&self) -> Result<State, StorageError>;

    /// Every stored account, their state-root leaves in id order and the root over them
    /// (`State::state_root`), which callers check against the head block. The default loads,
    /// then hashes.
    ///
    /// # Errors
    /// Storage failure or corrupt record.
    fn load_state_with_leaves(&self) -> Result<LoadedState, StorageError> {
        Ok(load::with_leaves_and_root(self.load_state()?))
    }

    /// The stored stream index if it is current at `head` (written for that very block), else
    /// `None` (none stored, an older format, or blocks committed without it since).
    ///
    /// The default stores no index.
    ///
    /// # Errors
    /// Storage failure or corrupt record.
    fn stream_index(&self, head: &StoredBlock) -> Result<Option<StreamIndex>, StorageError> {
        let _ = head;
        Ok(None)
    }

    /// Replaces the stored stream index with `index`, current at `head`.
    ///
    /// The default stores no index.
    ///
    /// # Errors
    /// Storage failure; the previous index (current or stale) is then kept.
    fn save_stream_index(&self, head: &StoredBlock, index: &StreamIndex) -> Result<(), StorageError> {
        let _ = (head, index);
        Ok(())
    }

    /// Makes admitted transactions durable, keyed by their hashes, in one write with immediate
    /// durability; a transaction whose receipt is already stored (a block included or failed it
    /// meanwhile) is skipped, so no record outlives its block.
    ///
    /// The default keeps no durable mempool (a storage for tests that do not need one).
    ///
    /// # Errors
    /// Storage failure; nothing of `entries` is then stored.
    fn add_pending(&self, entries: &[([u8; 32], PendingTransaction)]) -> Result<(), StorageError> {
        let _ = entries;
        Ok(())
    }

    /// Removes pending transactions by hash (those a restart found stale), in one write.
    ///
    /// # Errors
    /// Storage failure.
    fn remove_pending(&self, hashes: &[[u8; 32]]) -> Result<(), StorageError> {
        let _ = hashes;
        Ok(())
    }

    /// The lowest admission number the durable mempool still writes: numbers below it are
    /// taken to be in committed blocks. A reopened chain numbers new admissions from here on.
    ///
    /// # Errors
    /// Storage failure.
    fn pending_seq_floor(&self) -> Result<u64, StorageError> {
        Ok(0)
    }

    /// Every pending transaction, in admission order.
    ///
    /// # Errors
    /// Storage failure or corrupt record.
    fn pending_transactions(&self) -> Result<Vec<PendingTransaction>, StorageError> {
        Ok(vec![])
    }

    /// One page of the event index: events matching `filter` strictly after `after`, at most
    /// `limit`, oldest first, as of one consistent view (see [`crate::index::read_page`]). The
    /// index holds every payment-streams event of every committed block; a storage that writes
    /// it behind the blocks answers once it has reached the head block of the moment it was
    /// asked (or says, in the page, the last block it reached).
    ///
    /// The default keeps no event index.
    ///
    /// # Errors
    /// [`StorageError::NoEventIndex`] for a storage without one; storage failure.
    fn events(
        &self,
        filter: &paystreams_rpc::EventFilter,
        after: Option<paystreams_rpc::EventCursor>,
        limit: u32,
    ) -> Result<paystreams_rpc::EventPage, StorageError> {
        let _ = (filter, after, limit);
        Err(StorageError::NoEventIndex)
    }

    /// The last block the stored event index holds, `None` without a valid one.
    ///
    /// The default keeps no event index.
    ///
    /// # Errors
    /// Storage failure.
    fn events_indexed_through(&self) -> Result<Option<u64>, StorageError> {
        Ok(None)
    }

    /// Indexes the events of stored blocks the event index lacks (all of them for a data dir
    /// written before it), from their receipts; returns how many blocks it indexed.
    ///
    /// The default keeps no event index.
    ///
    /// # Errors
    /// Storage failure or a corrupt record; what was indexed before it stays.
    fn index_missing_events(&self) -> Result<u64, StorageError> {
        Ok(0)
    }
}
