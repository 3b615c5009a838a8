//! Durable chain storage behind the [`Storage`] trait: redb on disk ([`RedbStorage`]) and a map in
//! memory ([`MemStorage`]) for ephemeral chains and tests.
//!
//! One call to [`Storage::commit_block`] writes the block, its receipts (which double as the
//! transaction index: hash → block and position), the account changes and the new head in one
//! redb write transaction with [`redb::Durability::Immediate`], so after a crash either all of a
//! block is on disk or none of it is.

use std::{
    collections::BTreeMap,
    path::Path,
    sync::{Mutex, PoisonError},
};

use borsh::{BorshDeserialize, BorshSerialize};
use paystreams_lez_core::{Account, AccountId, sha256};
use paystreams_rpc::TxErrorInfo;
use paystreams_runtime::{ReceiptEvent, State, StateDiff, Transaction};
use redb::{ReadableDatabase as _, ReadableTable as _, ReadableTableMetadata as _, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::{
    index::{StreamIndex, StreamKey},
    root,
};

/// A storage failure. The node stops producing blocks rather than diverge from its disk.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("database error: {0}")]
    Database(#[from] redb::Error),
    #[error(
        "the database at {path} is already open in another process; stop the other node or pass a different --data-dir"
    )]
    AlreadyOpen { path: String },
    #[error(
        "corrupt database record {what}: {detail}; move the data dir away (or pass --ephemeral) to start a new chain"
    )]
    Corrupt { what: String, detail: String },
}

impl StorageError {
    fn corrupt(what: impl Into<String>, detail: impl ToString) -> Self {
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
from_redb!(redb::TransactionError, redb::TableError, redb::StorageError, redb::CommitError, redb::SetDurabilityError);

/// The block header, as hashed: `hash = SHA-256(borsh(header))`.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct Header {
    pub height: u64,
    pub parent_hash: [u8; 32],
    pub timestamp_ms: u64,
    pub state_root: [u8; 32],
    pub transactions_root: [u8; 32],
}

impl Header {
    /// `SHA-256(borsh(header))`.
    #[must_use]
    pub fn hash(&self) -> [u8; 32] {
        // Writing Borsh into a Vec cannot fail.
        sha256(&[&borsh::to_vec(self).unwrap_or_default()])
    }
}

/// Domain prefix of the transactions root.
const TX_ROOT_PREFIX: [u8; 32] = paystreams_lez_core::domain_prefix("/paystreams/v1/TxRoot/");

/// `SHA-256(prefix || hash_1 || ... || hash_n)` over the block's transaction hashes in order.
#[must_use]
pub fn transactions_root(hashes: &[[u8; 32]]) -> [u8; 32] {
    let mut parts: Vec<&[u8]> = Vec::with_capacity(hashes.len().saturating_add(1));
    parts.push(&TX_ROOT_PREFIX);
    parts.extend(hashes.iter().map(<[u8; 32]>::as_slice));
    sha256(&parts)
}

/// A committed block: header, its hash, the transactions in execution order (successful and
/// failed), and the dev time offset in force (node-local, not hashed) so a restart keeps it.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct StoredBlock {
    pub header: Header,
    pub hash: [u8; 32],
    pub transactions: Vec<Transaction>,
    pub time_offset_ms: u64,
}

/// The outcome of one included transaction.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct StoredReceipt {
    #[serde(with = "hex32")]
    pub tx_hash: [u8; 32],
    pub block_id: u64,
    /// Position in the block.
    pub index: u32,
    /// `None` when the transaction succeeded.
    pub error: Option<TxErrorInfo>,
    pub events: Vec<ReceiptEvent>,
}

/// The genesis: dev keys, their balances and the genesis time. Stored so that restarts and
/// replays rebuild the same chain.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct GenesisSpec {
    pub timestamp_ms: u64,
    pub accounts: Vec<GenesisAccount>,
}

/// One funded dev account (the secret key is kept: these are dev keys, printed at startup).
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct GenesisAccount {
    pub secret_key: [u8; 32],
    pub balance: u128,
}

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

    /// Writes the genesis, block 0 and the genesis state atomically.
    ///
    /// # Errors
    /// Storage failure.
    fn init(&self, genesis: &GenesisSpec, block: &StoredBlock, state: &State) -> Result<(), StorageError>;

    /// Commits a block, its receipts and its state changes atomically, and moves the head.
    ///
    /// # Errors
    /// Storage failure; nothing of the block is then stored.
    fn commit_block(
        &self,
        block: &StoredBlock,
        receipts: &[StoredReceipt],
        diff: &StateDiff,
    ) -> Result<(), StorageError>;

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

    /// Every stored account and, in id order, their state-root leaves (`State::state_root`),
    /// from which callers compute the root they check against the head block. The default
    /// loads, then hashes.
    ///
    /// # Errors
    /// Storage failure or corrupt record.
    fn load_state_with_leaves(&self) -> Result<(State, Vec<[u8; 32]>), StorageError> {
        let state = self.load_state()?;
        let leaves = root::Leaves::of(&state).into_inner();
        Ok((state, leaves))
    }

    /// [`Storage::commit_block`], and in the same atomic write the stream-index entries the
    /// block adds (`added`, from its events). A stored index that was current at the parent block
    /// becomes current at this one; any other stored index stays stale.
    ///
    /// The default stores no index: it calls [`Storage::commit_block`].
    ///
    /// # Errors
    /// Storage failure; nothing of the block is then stored.
    fn commit_block_indexed(
        &self,
        block: &StoredBlock,
        receipts: &[StoredReceipt],
        diff: &StateDiff,
        added: &StreamIndex,
    ) -> Result<(), StorageError> {
        let _ = added;
        self.commit_block(block, receipts, diff)
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
}

fn encode<T: BorshSerialize>(value: &T) -> Vec<u8> {
    // Writing Borsh into a Vec cannot fail.
    borsh::to_vec(value).unwrap_or_default()
}

fn decode<T: BorshDeserialize>(what: &str, bytes: &[u8]) -> Result<T, StorageError> {
    T::try_from_slice(bytes).map_err(|e| StorageError::corrupt(what, e))
}

fn encode_receipt(receipt: &StoredReceipt) -> Result<Vec<u8>, StorageError> {
    serde_json::to_vec(receipt).map_err(|e| StorageError::corrupt("receipt", e))
}

fn decode_receipt(bytes: &[u8]) -> Result<StoredReceipt, StorageError> {
    serde_json::from_slice(bytes).map_err(|e| StorageError::corrupt("receipt", e))
}

// ---------------------------------------------------------------------------------------------
// In memory
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct MemInner {
    genesis: Option<GenesisSpec>,
    head: Option<u64>,
    blocks: BTreeMap<u64, StoredBlock>,
    receipts: BTreeMap<[u8; 32], StoredReceipt>,
    state: State,
}

/// Storage in memory: gone when the node stops.
#[derive(Default)]
pub struct MemStorage {
    inner: Mutex<MemInner>,
}

impl MemStorage {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Storage for MemStorage {
    fn genesis(&self) -> Result<Option<GenesisSpec>, StorageError> {
        Ok(self.lock().genesis.clone())
    }

    fn load_head(&self) -> Result<Option<u64>, StorageError> {
        Ok(self.lock().head)
    }

    fn init(&self, genesis: &GenesisSpec, block: &StoredBlock, state: &State) -> Result<(), StorageError> {
        let mut inner = self.lock();
        inner.genesis = Some(genesis.clone());
        inner.blocks.insert(block.header.height, block.clone());
        inner.head = Some(block.header.height);
        inner.state = state.clone();
        Ok(())
    }

    fn commit_block(
        &self,
        block: &StoredBlock,
        receipts: &[StoredReceipt],
        diff: &StateDiff,
    ) -> Result<(), StorageError> {
        let mut inner = self.lock();
        inner.blocks.insert(block.header.height, block.clone());
        for receipt in receipts {
            inner.receipts.insert(receipt.tx_hash, receipt.clone());
        }
        inner.state.apply_diff(diff);
        inner.head = Some(block.header.height);
        Ok(())
    }

    fn block(&self, height: u64) -> Result<Option<StoredBlock>, StorageError> {
        Ok(self.lock().blocks.get(&height).cloned())
    }

    fn receipt(&self, tx_hash: &[u8; 32]) -> Result<Option<StoredReceipt>, StorageError> {
        Ok(self.lock().receipts.get(tx_hash).cloned())
    }

    fn account(&self, id: &AccountId) -> Result<Option<Account>, StorageError> {
        Ok(self.lock().state.get(id).cloned())
    }

    fn load_state(&self) -> Result<State, StorageError> {
        Ok(self.lock().state.clone())
    }
}

// ---------------------------------------------------------------------------------------------
// redb
// ---------------------------------------------------------------------------------------------

/// `"genesis"` → borsh [`GenesisSpec`], `"head"` → u64 LE.
const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");
/// height → borsh [`StoredBlock`].
const BLOCKS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("blocks");
/// tx hash → JSON [`StoredReceipt`] (also the transaction index).
const RECEIPTS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("receipts");
/// account id → borsh account; default accounts are removed.
const ACCOUNTS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("accounts");
/// Stream index, owner (32 bytes) ‖ vault id (u64 BE) → nothing.
const INDEX_VAULTS: TableDefinition<'_, &[u8], ()> = TableDefinition::new("index_vaults");
/// Stream index, provider ‖ owner (32 bytes each) ‖ vault id ‖ stream id (u64 BE) → nothing.
const INDEX_STREAMS: TableDefinition<'_, &[u8], ()> = TableDefinition::new("index_streams");

/// `meta` key of the [`IndexMarker`].
const INDEX_MARKER_KEY: &str = "stream_index";
/// Format of the stored stream index; a marker of another version is stale.
const INDEX_VERSION: u32 = 1;

/// Which block the stored stream index is current at. Written with the index tables in one
/// transaction; a data dir without it (older nodes) or with an older block has a stale index.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
struct IndexMarker {
    version: u32,
    height: u64,
    block_hash: [u8; 32],
}

impl IndexMarker {
    const fn at(height: u64, block_hash: [u8; 32]) -> Self {
        Self { version: INDEX_VERSION, height, block_hash }
    }
}

fn vault_key(owner: &AccountId, vault_id: u64) -> [u8; 40] {
    let mut key = [0; 40];
    key[..32].copy_from_slice(&owner.0);
    key[32..].copy_from_slice(&vault_id.to_be_bytes());
    key
}

fn stream_key(provider: &AccountId, (owner, vault_id, stream_id): &StreamKey) -> [u8; 80] {
    let mut key = [0; 80];
    key[..32].copy_from_slice(&provider.0);
    key[32..64].copy_from_slice(&owner.0);
    key[64..72].copy_from_slice(&vault_id.to_be_bytes());
    key[72..].copy_from_slice(&stream_id.to_be_bytes());
    key
}

fn split_id(bytes: &[u8]) -> Option<(AccountId, &[u8])> {
    let (id, rest) = bytes.split_first_chunk::<32>()?;
    Some((AccountId(*id), rest))
}

fn split_u64(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let (n, rest) = bytes.split_first_chunk::<8>()?;
    Some((u64::from_be_bytes(*n), rest))
}

fn parse_vault_key(bytes: &[u8]) -> Option<(AccountId, u64)> {
    let (owner, rest) = split_id(bytes)?;
    let (vault_id, rest) = split_u64(rest)?;
    rest.is_empty().then_some((owner, vault_id))
}

fn parse_stream_key(bytes: &[u8]) -> Option<(AccountId, StreamKey)> {
    let (provider, rest) = split_id(bytes)?;
    let (owner, rest) = split_id(rest)?;
    let (vault_id, rest) = split_u64(rest)?;
    let (stream_id, rest) = split_u64(rest)?;
    rest.is_empty().then_some((provider, (owner, vault_id, stream_id)))
}

/// Inserts the entries of `index` into the index tables.
fn write_index(txn: &redb::WriteTransaction, index: &StreamIndex) -> Result<(), StorageError> {
    let mut vaults = txn.open_table(INDEX_VAULTS)?;
    for (owner, vault_id) in index.vault_entries() {
        vaults.insert(vault_key(owner, vault_id).as_slice(), ())?;
    }
    let mut streams = txn.open_table(INDEX_STREAMS)?;
    for (provider, key) in index.stream_entries() {
        streams.insert(stream_key(provider, key).as_slice(), ())?;
    }
    Ok(())
}

fn read_marker(
    table: &impl redb::ReadableTable<&'static str, &'static [u8]>,
) -> Result<Option<IndexMarker>, StorageError> {
    // An undecodable marker (another format) is a stale index, not a corrupt database.
    Ok(table.get(INDEX_MARKER_KEY)?.and_then(|v| IndexMarker::try_from_slice(v.value()).ok()))
}

/// Storage in a redb file (`chain.redb` in the data dir).
pub struct RedbStorage {
    db: redb::Database,
}

impl RedbStorage {
    /// Opens (creating if needed) the database file `path`.
    ///
    /// # Errors
    /// [`StorageError::AlreadyOpen`] when another process holds it; other failures as
    /// [`StorageError::Database`].
    pub fn open(path: &Path) -> Result<Self, StorageError> {
        let db = redb::Database::create(path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StorageError::AlreadyOpen { path: path.display().to_string() },
            other => StorageError::Database(other.into()),
        })?;
        let txn = db.begin_write()?;
        {
            txn.open_table(META)?;
            txn.open_table(BLOCKS)?;
            txn.open_table(RECEIPTS)?;
            txn.open_table(ACCOUNTS)?;
            txn.open_table(INDEX_VAULTS)?;
            txn.open_table(INDEX_STREAMS)?;
        }
        txn.commit()?;
        Ok(Self { db })
    }

    fn write(&self) -> Result<redb::WriteTransaction, StorageError> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(redb::Durability::Immediate)?;
        Ok(txn)
    }

    /// [`Storage::load_state_with_leaves`] over `threads` key ranges (the result does not
    /// depend on it).
    ///
    /// # Errors
    /// Storage failure or corrupt record.
    pub fn load_split(&self, threads: usize) -> Result<(State, Vec<[u8; 32]>), StorageError> {
        let threads = threads.clamp(1, 256);
        let txn = self.db.begin_read()?;
        let table = txn.open_table(ACCOUNTS)?;
        let total = usize::try_from(table.len()?).unwrap_or(0);
        // Ids are hashes, so ranges by first byte hold about as many accounts each.
        let bounds: Vec<[u8; 1]> =
            (1..threads).map(|i| [u8::try_from(i.saturating_mul(256) / threads).unwrap_or(u8::MAX)]).collect();
        let mut ranges = Vec::with_capacity(threads);
        for i in 0..threads {
            let lower = i.checked_sub(1).and_then(|j| bounds.get(j));
            let upper = bounds.get(i);
            let range = match (lower, upper) {
                (None, None) => table.range::<&[u8]>(..)?,
                (None, Some(hi)) => table.range::<&[u8]>(..hi.as_slice())?,
                (Some(lo), None) => table.range::<&[u8]>(lo.as_slice()..)?,
                (Some(lo), Some(hi)) => table.range::<&[u8]>(lo.as_slice()..hi.as_slice())?,
            };
            ranges.push(range);
        }
        // The loaders send their accounts in chunks; this thread inserts them meanwhile (the
        // map is built by one thread; the order of inserts does not change it).
        let (sender, receiver) = std::sync::mpsc::sync_channel::<Vec<(AccountId, Account)>>(64);
        let mut state = State::new();
        let parts: Vec<std::thread::Result<Result<Vec<[u8; 32]>, StorageError>>> = std::thread::scope(|scope| {
            let workers: Vec<_> = ranges
                .into_iter()
                .map(|range| {
                    let sender = sender.clone();
                    // Room for an eighth more than a fair share: one allocation, mostly.
                    let capacity = total / threads + total / threads / 8 + 16;
                    scope.spawn(move || load_range(range, &sender, capacity))
                })
                .collect();
            drop(sender);
            for chunk in receiver {
                for (id, account) in chunk {
                    state.insert(id, account);
                }
            }
            workers.into_iter().map(|worker| worker.join()).collect()
        });
        let mut leaves = Vec::with_capacity(total);
        for part in parts {
            let Ok(part) = part else {
                // A loading thread failed (not the data): load again on this thread alone.
                drop(state);
                let state = self.load_state()?;
                let leaves = root::Leaves::of(&state).into_inner();
                return Ok((state, leaves));
            };
            leaves.extend(part?);
        }
        Ok((state, leaves))
    }

    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(META)?;
        Ok(table.get(key)?.map(|v| v.value().to_vec()))
    }
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

/// Accounts sent per chunk by a loading thread.
const LOAD_CHUNK: usize = 4_096;

/// Reads and decodes one key range, sending its accounts in chunks; returns their state-root
/// leaves in id order.
fn load_range(
    range: redb::Range<'static, &'static [u8], &'static [u8]>,
    sender: &std::sync::mpsc::SyncSender<Vec<(AccountId, Account)>>,
    capacity: usize,
) -> Result<Vec<[u8; 32]>, StorageError> {
    let mut leaves = Vec::with_capacity(capacity);
    let mut chunk = Vec::with_capacity(LOAD_CHUNK);
    for entry in range {
        let (key, value) = entry?;
        let id: [u8; 32] = key.value().try_into().map_err(|_| StorageError::corrupt("account id", "not 32 bytes"))?;
        let bytes = value.value();
        let account: Account = decode("account", bytes)?;
        // The state holds no default account, and its root has no leaf for one.
        if account.is_default() {
            continue;
        }
        // Borsh is canonical: the stored bytes are `borsh(account)`, which the leaf hashes.
        leaves.push(root::leaf(&AccountId(id), bytes));
        chunk.push((AccountId(id), account));
        if chunk.len() == LOAD_CHUNK {
            let full = std::mem::replace(&mut chunk, Vec::with_capacity(LOAD_CHUNK));
            sender.send(full).map_err(|_| StorageError::corrupt("accounts", "the loading thread stopped"))?;
        }
    }
    if !chunk.is_empty() {
        sender.send(chunk).map_err(|_| StorageError::corrupt("accounts", "the loading thread stopped"))?;
    }
    Ok(leaves)
}

/// The block, its receipts, its account changes and the new head.
fn write_block(
    txn: &redb::WriteTransaction,
    block: &StoredBlock,
    receipts: &[StoredReceipt],
    diff: &StateDiff,
) -> Result<(), StorageError> {
    txn.open_table(BLOCKS)?.insert(block.header.height, encode(block).as_slice())?;
    let mut table = txn.open_table(RECEIPTS)?;
    for receipt in receipts {
        table.insert(receipt.tx_hash.as_slice(), encode_receipt(receipt)?.as_slice())?;
    }
    drop(table);
    write_accounts(txn, diff.accounts.iter())?;
    txn.open_table(META)?.insert("head", encode(&block.header.height).as_slice())?;
    Ok(())
}

impl Storage for RedbStorage {
    fn genesis(&self) -> Result<Option<GenesisSpec>, StorageError> {
        self.meta("genesis")?.map(|bytes| decode("genesis", &bytes)).transpose()
    }

    fn load_head(&self) -> Result<Option<u64>, StorageError> {
        self.meta("head")?.map(|bytes| decode("head", &bytes)).transpose()
    }

    fn init(&self, genesis: &GenesisSpec, block: &StoredBlock, state: &State) -> Result<(), StorageError> {
        let txn = self.write()?;
        {
            let mut meta = txn.open_table(META)?;
            meta.insert("genesis", encode(genesis).as_slice())?;
            meta.insert("head", encode(&block.header.height).as_slice())?;
            txn.open_table(BLOCKS)?.insert(block.header.height, encode(block).as_slice())?;
            write_accounts(&txn, state.iter())?;
        }
        txn.commit()?;
        Ok(())
    }

    fn commit_block(
        &self,
        block: &StoredBlock,
        receipts: &[StoredReceipt],
        diff: &StateDiff,
    ) -> Result<(), StorageError> {
        let txn = self.write()?;
        write_block(&txn, block, receipts, diff)?;
        txn.commit()?;
        Ok(())
    }

    fn commit_block_indexed(
        &self,
        block: &StoredBlock,
        receipts: &[StoredReceipt],
        diff: &StateDiff,
        added: &StreamIndex,
    ) -> Result<(), StorageError> {
        let txn = self.write()?;
        write_block(&txn, block, receipts, diff)?;
        {
            let mut meta = txn.open_table(META)?;
            let marker = read_marker(&meta)?;
            let current_at_parent = block
                .header
                .height
                .checked_sub(1)
                .is_some_and(|parent| marker == Some(IndexMarker::at(parent, block.header.parent_hash)));
            if current_at_parent {
                write_index(&txn, added)?;
                meta.insert(INDEX_MARKER_KEY, encode(&IndexMarker::at(block.header.height, block.hash)).as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// The accounts table split by id into one key range per core, each read, decoded and
    /// leaf-hashed from its stored bytes (`borsh(account)`, what the leaf hashes) on its own
    /// thread, in one read transaction.
    fn load_state_with_leaves(&self) -> Result<(State, Vec<[u8; 32]>), StorageError> {
        let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        self.load_split(threads)
    }

    fn stream_index(&self, head: &StoredBlock) -> Result<Option<StreamIndex>, StorageError> {
        let txn = self.db.begin_read()?;
        if read_marker(&txn.open_table(META)?)? != Some(IndexMarker::at(head.header.height, head.hash)) {
            return Ok(None);
        }
        let mut index = StreamIndex::default();
        for entry in txn.open_table(INDEX_VAULTS)?.iter()? {
            let (key, _) = entry?;
            let (owner, vault_id) = parse_vault_key(key.value())
                .ok_or_else(|| StorageError::corrupt("stream index", "vault key of wrong length"))?;
            index.vaults.entry(owner).or_default().insert(vault_id);
        }
        // Keys are sorted by provider, then by stream: each provider's set is built in one pass.
        let mut group: Vec<StreamKey> = Vec::new();
        let mut current: Option<AccountId> = None;
        for entry in txn.open_table(INDEX_STREAMS)?.iter()? {
            let (key, _) = entry?;
            let (provider, stream) = parse_stream_key(key.value())
                .ok_or_else(|| StorageError::corrupt("stream index", "stream key of wrong length"))?;
            if current != Some(provider)
                && let Some(done) = current.replace(provider)
            {
                index.provider_streams.insert(done, group.drain(..).collect());
            }
            group.push(stream);
        }
        if let Some(done) = current {
            index.provider_streams.insert(done, group.into_iter().collect());
        }
        Ok(Some(index))
    }

    fn save_stream_index(&self, head: &StoredBlock, index: &StreamIndex) -> Result<(), StorageError> {
        let txn = self.write()?;
        txn.delete_table(INDEX_VAULTS)?;
        txn.delete_table(INDEX_STREAMS)?;
        write_index(&txn, index)?;
        txn.open_table(META)?
            .insert(INDEX_MARKER_KEY, encode(&IndexMarker::at(head.header.height, head.hash)).as_slice())?;
        txn.commit()?;
        Ok(())
    }

    fn block(&self, height: u64) -> Result<Option<StoredBlock>, StorageError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(BLOCKS)?;
        table.get(height)?.map(|v| decode(&format!("block {height}"), v.value())).transpose()
    }

    fn receipt(&self, tx_hash: &[u8; 32]) -> Result<Option<StoredReceipt>, StorageError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(RECEIPTS)?;
        table.get(tx_hash.as_slice())?.map(|v| decode_receipt(v.value())).transpose()
    }

    fn account(&self, id: &AccountId) -> Result<Option<Account>, StorageError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(ACCOUNTS)?;
        table.get(id.0.as_slice())?.map(|v| decode("account", v.value())).transpose()
    }

    fn load_state(&self) -> Result<State, StorageError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(ACCOUNTS)?;
        let mut state = State::new();
        for entry in table.iter()? {
            let (key, value) = entry?;
            let id: [u8; 32] =
                key.value().try_into().map_err(|_| StorageError::corrupt("account id", "not 32 bytes"))?;
            state.insert(AccountId(id), decode("account", value.value())?);
        }
        Ok(state)
    }
}

mod hex32 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(value: &[u8; 32], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(value))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<[u8; 32], D::Error> {
        let text = <String as Deserialize>::deserialize(deserializer)?;
        let bytes = hex::decode(&text).map_err(serde::de::Error::custom)?;
        bytes.try_into().map_err(|_| serde::de::Error::custom("expected 32 hex bytes"))
    }
}

#[cfg(test)]
mod tests {
    use paystreams_lez_core::ProgramId;

    use super::*;

    /// `count` accounts with ids spread over the whole key space and at the split points, of
    /// varied balances, data and nonces.
    fn random_state(count: u64) -> State {
        let mut state = State::new();
        for i in 0..count {
            let mut id = sha256(&[&i.to_le_bytes()]);
            if i < 8 {
                // First bytes at and around the range boundaries.
                id[0] = [0x00, 0x55, 0x56, 0x7f, 0x80, 0xaa, 0xab, 0xff][usize::try_from(i).unwrap_or(0)];
            }
            let data_len = usize::try_from(i % 97).unwrap_or(0);
            state.insert(
                AccountId(id),
                Account {
                    program_owner: ProgramId([u32::try_from(i % 3).unwrap_or(0); 8]),
                    balance: u128::from(i).wrapping_mul(1_000_003),
                    data: vec![u8::try_from(i % 251).unwrap_or(0); data_len],
                    nonce: u128::from(i % 5),
                },
            );
        }
        state
    }

    #[test]
    fn split_load_equals_load_state_and_its_root_for_any_split() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = RedbStorage::open(&dir.path().join("chain.redb")).expect("open");
        let empty = storage.load_split(3).expect("load empty");
        assert_eq!(empty, (State::new(), vec![]));
        let state = random_state(3_000);
        let genesis = GenesisSpec { timestamp_ms: 0, accounts: vec![] };
        storage.init(&genesis, &crate::chain::genesis_block(&genesis, &state), &state).expect("init");
        let loaded = storage.load_state().expect("load");
        assert_eq!(loaded, state);
        let leaves = root::Leaves::of(&state).into_inner();
        for threads in [1, 2, 3, 7, 64] {
            let (loaded, loaded_leaves) = storage.load_split(threads).expect("load");
            assert_eq!(loaded, state, "{threads} ranges");
            assert_eq!(loaded_leaves, leaves, "{threads} ranges");
            assert_eq!(root::merkle_root(loaded_leaves), Some(state.state_root()), "{threads} ranges");
        }
    }
}
