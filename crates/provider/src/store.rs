//! Durable session state behind a trait.
//!
//! [`SessionStore`] is what the engine needs, with every check-and-write that must not race
//! as one method: accepting a session (pending guard + used-proposal guard + insert),
//! binding a stream (first binding wins, one stream backs one session), recording a request
//! digest (replay check + insert), counting parameter attempts. A shared implementation
//! (several provider processes, e.g. PostgreSQL) implements the same methods as single
//! transactions.
//!
//! [`KvStore`] implements the logic once over a small transactional key-value interface
//! ([`Kv`]) with two backends: [`MemoryKv`] (tests) and [`RedbKv`] (default; every
//! transaction committed with immediate durability, so a restart loses nothing).
//!
//! Layout ([`LAYOUT_VERSION`] 2, recorded in [`Table::Meta`]): a session record is its
//! [`Table::Sessions`] entry (keyed by id; the value, see [`encode_session`], omits the id),
//! its vault's [`Table::Pending`] entry while pending, its [`Table::Index`] entries, its
//! stream's [`Table::Bound`] entry once bound (which also carries the claimable token) and one
//! [`Table::Replay`] entry per recorded request. [`Table::Used`] marks only purged proposals:
//! a proposal with a session record is used too. Layout 1 (a borsh `Session` with the
//! provider id and a duplicated token id, a `Claimable` table, a used mark per accepted
//! proposal) is converted in one transaction when a store is opened ([`migrate`]).

use std::{
    collections::BTreeMap,
    fmt,
    future::Future,
    path::Path,
    sync::{Mutex, PoisonError},
};

use borsh::BorshDeserialize;
use redb::{ReadableDatabase as _, ReadableTable, TableDefinition};

use crate::session::{AcceptedParams, EndReason, PinnedPolicy, Session, SessionId, SessionState, StreamKey, VaultKey};

/// Most sessions one `stream_id` may index. A stream proof names only a per-vault `u64`
/// (stream 0 exists in every vault), so a proof from a requester the engine has not seen tries
/// each candidate's session key; this bounds the signature checks such a proof can cost. Known
/// requesters are checked against their own sessions first (`Provider::handle_from`).
pub const MAX_CANDIDATES_PER_STREAM_ID: usize = 4_096;
/// Most attempt timestamps kept per vault (far above any sensible attempt cap).
pub const MAX_ATTEMPTS_KEPT: usize = 64;
/// Other vaults' attempt records each `record_attempt` examines, deleting those outside the
/// window. Sampling the records after the caller's (vault keys are spread by their owner's
/// hash) keeps the stale records at about as many as the live ones.
pub const ATTEMPT_SWEEP: usize = 2;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("session database: {0}")]
    Database(String),
    #[error("corrupt {what}: {detail}")]
    Corrupt { what: &'static str, detail: String },
    #[error("store lock poisoned")]
    Poisoned,
}

impl<T> From<PoisonError<T>> for StoreError {
    fn from(_: PoisonError<T>) -> Self {
        Self::Poisoned
    }
}

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

/// Result of [`SessionStore::accept`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum AcceptOutcome {
    Accepted,
    /// A live pending session exists for this vault.
    PendingExists(SessionId),
    /// This proposal was accepted before.
    ProposalUsed,
    /// The predicted stream id already indexes [`MAX_CANDIDATES_PER_STREAM_ID`] sessions.
    CandidatesFull,
}

/// Result of [`SessionStore::bind_stream`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BindOutcome {
    /// Bound now.
    Bound,
    /// Already bound (to this or another stream).
    AlreadyBound(u64),
    /// The stream backs another session.
    StreamTaken(SessionId),
    /// The session ended or does not exist.
    NotBindable,
}

/// The storage layout this code writes (see the module documentation).
pub const LAYOUT_VERSION: u32 = 2;
/// The [`Table::Meta`] key of the layout version (`u32`, big-endian).
const LAYOUT_KEY: &[u8] = b"layout";
/// First byte of a layout-2 session value.
const SESSION_RECORD_V2: u8 = 2;

/// The engine's durable state.
pub trait SessionStore: Send + Sync {
    /// Atomically: ends the vault's pending session if it expired at `now`, refuses when a live
    /// one remains or the proposal was used, else records the session, marks the proposal used,
    /// and indexes it under its predicted stream id.
    fn accept(&self, session: &Session, now: u64) -> impl Future<Output = Result<AcceptOutcome, StoreError>> + Send;
    fn session(&self, id: SessionId) -> impl Future<Output = Result<Option<Session>, StoreError>> + Send;
    /// The vault's pending session, if any (expired or not).
    fn pending(&self, vault: VaultKey) -> impl Future<Output = Result<Option<Session>, StoreError>> + Send;
    /// Sessions indexed under `stream_id` (at most [`MAX_CANDIDATES_PER_STREAM_ID`]).
    fn candidates(&self, stream_id: u64) -> impl Future<Output = Result<Vec<Session>, StoreError>> + Send;
    /// Adds `id` under `stream_id`; `false` when the bucket is full.
    fn index(&self, id: SessionId, stream_id: u64) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Atomically binds a pending session to a stream no other session holds.
    fn bind_stream(
        &self,
        id: SessionId,
        stream_id: u64,
    ) -> impl Future<Output = Result<BindOutcome, StoreError>> + Send;
    /// The session bound to `stream`, if any.
    fn bound_session(&self, stream: StreamKey) -> impl Future<Output = Result<Option<SessionId>, StoreError>> + Send;
    /// Whether `digest` was already recorded for the session (read-only, for early refusal).
    fn seen_request(&self, id: SessionId, digest: [u8; 32]) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Atomically records `digest`; `false` when it was already recorded (a replay).
    fn record_request(&self, id: SessionId, digest: [u8; 32]) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Atomically records an attempt at `now` and returns the attempts within `window` secs.
    fn record_attempt(
        &self,
        vault: VaultKey,
        now: u64,
        window: u64,
    ) -> impl Future<Output = Result<u32, StoreError>> + Send;
    /// Replaces the session record (state changes); ending a session releases its pending slot.
    fn update(&self, session: &Session) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Every stored session.
    fn sessions(&self) -> impl Future<Output = Result<Vec<Session>, StoreError>> + Send;
    /// Deletes a session with its index entries and replay records (the used mark stays).
    fn purge(&self, id: SessionId) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Streams with possibly unclaimed funds, with their token id.
    fn claimables(&self) -> impl Future<Output = Result<Vec<(StreamKey, [u8; 32])>, StoreError>> + Send;
    fn add_claimable(
        &self,
        stream: StreamKey,
        token_id: [u8; 32],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn remove_claimable(&self, stream: StreamKey) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The tables.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Table {
    /// Session id (32 bytes) to the session record ([`encode_session`]).
    Sessions,
    /// Vault key (40 bytes) to the id of its pending session.
    Pending,
    /// Ids (32 bytes) of purged proposals; empty values.
    Used,
    /// Stream id (8 bytes, big-endian) then session id: candidates; empty values.
    Index,
    /// Stream key (48 bytes) to its session id, its claimable token, or both (see [`BoundEntry`]).
    Bound,
    /// Session id then request digest (64 bytes); empty values.
    Replay,
    /// Vault key (40 bytes) to its recent attempt times (borsh `Vec<u64>`). Records whose
    /// every attempt is outside the window are deleted as [`ATTEMPT_SWEEP`] describes.
    Attempts,
    /// Layout 1 only: stream key to token id. Emptied into [`Table::Bound`] by [`migrate`].
    Claimable,
    /// Store metadata: the layout version.
    Meta,
}

impl Table {
    const ALL: [Self; 9] = [
        Self::Sessions,
        Self::Pending,
        Self::Used,
        Self::Index,
        Self::Bound,
        Self::Replay,
        Self::Attempts,
        Self::Claimable,
        Self::Meta,
    ];

    /// Stable numeric code (the PostgreSQL backend's table column). Append-only.
    #[must_use]
    pub const fn code(self) -> i16 {
        match self {
            Self::Sessions => 1,
            Self::Pending => 2,
            Self::Used => 3,
            Self::Index => 4,
            Self::Bound => 5,
            Self::Replay => 6,
            Self::Attempts => 7,
            Self::Claimable => 8,
            Self::Meta => 9,
        }
    }

    const fn name(self) -> &'static str {
        match self {
            Self::Sessions => "sessions",
            Self::Pending => "pending",
            Self::Used => "used",
            Self::Index => "index",
            Self::Bound => "bound",
            Self::Replay => "replay",
            Self::Attempts => "attempts",
            Self::Claimable => "claimable",
            Self::Meta => "meta",
        }
    }
}

/// Key-value entries, in key order.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Operations inside one transaction.
pub trait KvTxn {
    /// # Errors
    /// Storage failures.
    fn get(&mut self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// # Errors
    /// Storage failures.
    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> Result<(), StoreError>;
    /// # Errors
    /// Storage failures.
    fn delete(&mut self, table: Table, key: &[u8]) -> Result<(), StoreError>;
    /// Entries whose key starts with `prefix`, in key order, at most `limit`.
    ///
    /// # Errors
    /// Storage failures.
    fn scan(&mut self, table: Table, prefix: &[u8], limit: usize) -> Result<Entries, StoreError>;
    /// Entries whose key is at least `start`, in key order, at most `limit`.
    ///
    /// # Errors
    /// Storage failures.
    fn scan_from(&mut self, table: Table, start: &[u8], limit: usize) -> Result<Entries, StoreError>;
}

/// A transactional key-value store: `transact` runs `f` atomically, committing only on `Ok`.
/// `f` may run more than once (a shared backend retries a transaction that lost a race), so it
/// must not have effects outside the transaction.
pub trait Kv: Send + Sync {
    /// # Errors
    /// `f`'s error (nothing is committed) or a storage failure.
    fn transact<R: Send>(&self, f: impl Fn(&mut dyn KvTxn) -> Result<R, StoreError> + Sync) -> Result<R, StoreError>;

    /// Runs `f`, which only reads, on a consistent snapshot. Backends with a cheaper read path
    /// than a write transaction override it (redb reads without a commit or an fsync).
    ///
    /// # Errors
    /// `f`'s error or a storage failure (a write inside `f` may be refused).
    fn read<R: Send>(&self, f: impl Fn(&mut dyn KvTxn) -> Result<R, StoreError> + Sync) -> Result<R, StoreError> {
        self.transact(f)
    }
}

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
        let db = redb::Database::create(path)?;
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

/// The session logic over any [`Kv`].
#[derive(Debug, Default)]
pub struct KvStore<K: Kv> {
    kv: K,
}

impl<K: Kv> KvStore<K> {
    /// The store over an opened backend, brought to [`LAYOUT_VERSION`] first ([`migrate`]).
    ///
    /// # Errors
    /// Storage failures, corrupt layout-1 data, or a store written by a newer version.
    pub fn with_kv(kv: K) -> Result<Self, StoreError> {
        migrate(&kv)?;
        Ok(Self { kv })
    }

    /// The backend.
    pub const fn kv(&self) -> &K {
        &self.kv
    }
}

/// In-memory session store.
pub type MemoryStore = KvStore<MemoryKv>;
/// redb session store.
pub type RedbStore = KvStore<RedbKv>;

impl MemoryStore {
    #[must_use]
    pub fn new() -> Self {
        Self { kv: MemoryKv::default() }
    }
}

impl RedbStore {
    /// Opens the file, converting a layout-1 store ([`migrate`]).
    ///
    /// # Errors
    /// As [`RedbKv::open`] and [`KvStore::with_kv`].
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::with_kv(RedbKv::open(path)?)
    }
}

fn corrupt(what: &'static str, detail: impl fmt::Display) -> StoreError {
    StoreError::Corrupt { what, detail: detail.to_string() }
}

/// A session's [`Table::Sessions`] value: [`SESSION_RECORD_V2`], then the fields of
/// [`Session`] after its id (the key), in declaration order: byte arrays as they are, integers
/// as LEB128 varints (most are small: rates, stream ids, times), the service id as a varint
/// length and UTF-8, `bool` and enum tags as one byte, an `Option` as a 0/1 byte then the value.
#[must_use]
pub fn encode_session(session: &Session) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(224));
    w.0.push(SESSION_RECORD_V2);
    w.bytes(&session.vault.owner);
    w.varint(session.vault.vault_id);
    w.bytes(&session.owner_public_key);
    w.bytes(&session.token_id);
    let params = &session.params;
    w.varint(u64::try_from(params.service_id.len()).unwrap_or(u64::MAX));
    w.bytes(params.service_id.as_bytes());
    for v in [params.rate, params.allocation, params.create_stream_deadline] {
        w.varint(v);
    }
    let policy = &session.policy;
    for v in
        [policy.max_create_stream_deadline_delay, policy.first_response_cap, policy.min_rate, policy.min_allocation]
    {
        w.varint(v);
    }
    w.0.push(u8::from(policy.deferred_first_proof));
    w.bytes(&session.session_key);
    w.varint(session.accepted_at);
    w.varint(session.predicted_stream_id);
    match session.state {
        SessionState::Pending => w.0.push(0),
        SessionState::Bound { stream_id } => {
            w.0.push(1);
            w.varint(stream_id);
        }
        SessionState::Ended { reason, at } => {
            w.0.push(2);
            w.0.push(match reason {
                EndReason::DeadlineMissed => 0,
                EndReason::VaultDrained => 1,
                EndReason::StreamClosed => 2,
                EndReason::FirstResponseTooLarge => 3,
                EndReason::Abuse => 4,
            });
            w.varint(at);
        }
    }
    match session.matching_stream {
        None => w.0.push(0),
        Some((stream_id, at)) => {
            w.0.push(1);
            w.varint(stream_id);
            w.varint(at);
        }
    }
    w.varint(session.suspended_until);
    w.0
}

/// Decodes a [`Table::Sessions`] value stored under `id` ([`encode_session`]); every byte
/// must be used and every varint be in its shortest form.
///
/// # Errors
/// [`StoreError::Corrupt`] for an unknown version, a malformed field or trailing bytes.
pub fn decode_session(id: SessionId, bytes: &[u8]) -> Result<Session, StoreError> {
    let mut r = Reader(bytes);
    let version = r.byte()?;
    if version != SESSION_RECORD_V2 {
        return Err(corrupt("session", format!("record version {version}, expected {SESSION_RECORD_V2}")));
    }
    let vault = VaultKey { owner: r.array()?, vault_id: r.varint()? };
    let owner_public_key = r.array()?;
    let token_id = r.array()?;
    let service_id = r.string()?;
    let params =
        AcceptedParams { service_id, rate: r.varint()?, allocation: r.varint()?, create_stream_deadline: r.varint()? };
    let policy = PinnedPolicy {
        max_create_stream_deadline_delay: r.varint()?,
        first_response_cap: r.varint()?,
        min_rate: r.varint()?,
        min_allocation: r.varint()?,
        deferred_first_proof: r.bool()?,
    };
    let session_key = r.array()?;
    let accepted_at = r.varint()?;
    let predicted_stream_id = r.varint()?;
    let state = match r.byte()? {
        0 => SessionState::Pending,
        1 => SessionState::Bound { stream_id: r.varint()? },
        2 => {
            let reason = match r.byte()? {
                0 => EndReason::DeadlineMissed,
                1 => EndReason::VaultDrained,
                2 => EndReason::StreamClosed,
                3 => EndReason::FirstResponseTooLarge,
                4 => EndReason::Abuse,
                other => return Err(corrupt("session", format!("end reason {other}"))),
            };
            SessionState::Ended { reason, at: r.varint()? }
        }
        other => return Err(corrupt("session", format!("state tag {other}"))),
    };
    let matching_stream = match r.byte()? {
        0 => None,
        1 => Some((r.varint()?, r.varint()?)),
        other => return Err(corrupt("session", format!("option tag {other}"))),
    };
    let suspended_until = r.varint()?;
    if !r.0.is_empty() {
        return Err(corrupt("session", format!("{} trailing bytes", r.0.len())));
    }
    Ok(Session {
        id,
        vault,
        owner_public_key,
        token_id,
        params,
        policy,
        session_key,
        accepted_at,
        predicted_stream_id,
        state,
        matching_stream,
        suspended_until,
    })
}

struct Writer(Vec<u8>);

impl Writer {
    fn bytes(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }

    /// LEB128: seven bits per byte, least significant first, the high bit set on all but the last.
    fn varint(&mut self, mut value: u64) {
        loop {
            let low = u8::try_from(value & 0x7f).unwrap_or_default();
            value = value.checked_shr(7).unwrap_or_default();
            if value == 0 {
                self.0.push(low);
                return;
            }
            self.0.push(low | 0x80);
        }
    }
}

/// Reads a session record; every error is [`StoreError::Corrupt`].
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], StoreError> {
        if n > self.0.len() {
            return Err(corrupt("session", format!("truncated: {n} bytes wanted, {} left", self.0.len())));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, StoreError> {
        Ok(self.take(1)?.first().copied().unwrap_or_default())
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], StoreError> {
        let bytes = self.take(N)?;
        bytes.try_into().map_err(|_| corrupt("session", "array"))
    }

    fn bool(&mut self) -> Result<bool, StoreError> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(corrupt("session", format!("bool byte {other}"))),
        }
    }

    /// A shortest-form LEB128 `u64`.
    fn varint(&mut self) -> Result<u64, StoreError> {
        let mut value: u64 = 0;
        for shift in (0_u32..64).step_by(7) {
            let byte = self.byte()?;
            let low = u64::from(byte & 0x7f);
            if shift == 63 && low > 1 {
                return Err(corrupt("session", "varint above u64::MAX"));
            }
            value |= low.checked_shl(shift).unwrap_or_default();
            if byte & 0x80 == 0 {
                if byte == 0 && shift > 0 {
                    return Err(corrupt("session", "varint not in its shortest form"));
                }
                return Ok(value);
            }
        }
        Err(corrupt("session", "varint longer than ten bytes"))
    }

    fn string(&mut self) -> Result<String, StoreError> {
        let len = usize::try_from(self.varint()?).map_err(|_| corrupt("session", "string length"))?;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|e| corrupt("session", e))
    }
}

/// A [`Table::Bound`] value: the session bound to the stream and the token of funds that may
/// be unclaimed. Stored as the id (32 bytes; layout 1's value), the id and the token (64), or a
/// zero byte and the token (33: the session was purged, the stream may still owe funds).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct BoundEntry {
    session: Option<SessionId>,
    claimable: Option<[u8; 32]>,
}

impl BoundEntry {
    fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let array = |b: Option<&[u8]>| b.and_then(|b| <[u8; 32]>::try_from(b).ok());
        let entry = match bytes.len() {
            32 => Self { session: array(Some(bytes)).map(SessionId), claimable: None },
            64 => Self { session: array(bytes.get(..32)).map(SessionId), claimable: array(bytes.get(32..)) },
            33 if bytes.first() == Some(&0) => Self { session: None, claimable: array(bytes.get(1..)) },
            n => return Err(corrupt("stream binding", format!("{n} bytes"))),
        };
        Ok(entry)
    }

    /// The bytes, or `None` when nothing is left to keep.
    fn encode(self) -> Option<Vec<u8>> {
        match (self.session, self.claimable) {
            (Some(id), None) => Some(id.0.to_vec()),
            (Some(id), Some(token)) => Some([id.0, token].concat()),
            (None, Some(token)) => Some([&[0_u8][..], &token].concat()),
            (None, None) => None,
        }
    }
}

fn get_bound(txn: &mut dyn KvTxn, stream: &StreamKey) -> Result<Option<BoundEntry>, StoreError> {
    txn.get(Table::Bound, &stream.to_key())?.map(|b| BoundEntry::decode(&b)).transpose()
}

fn put_bound(txn: &mut dyn KvTxn, stream: &StreamKey, entry: BoundEntry) -> Result<(), StoreError> {
    match entry.encode() {
        Some(bytes) => txn.put(Table::Bound, &stream.to_key(), &bytes),
        None => txn.delete(Table::Bound, &stream.to_key()),
    }
}

fn id_from(bytes: &[u8]) -> Result<SessionId, StoreError> {
    let array: [u8; 32] = bytes.try_into().map_err(|_| corrupt("session id", format!("{} bytes", bytes.len())))?;
    Ok(SessionId(array))
}

fn index_key(stream_id: u64, id: SessionId) -> Vec<u8> {
    let mut key = stream_id.to_be_bytes().to_vec();
    key.extend(id.0);
    key
}

fn replay_key(id: SessionId, digest: &[u8; 32]) -> Vec<u8> {
    let mut key = id.0.to_vec();
    key.extend(digest);
    key
}

fn get_session(txn: &mut dyn KvTxn, id: SessionId) -> Result<Option<Session>, StoreError> {
    txn.get(Table::Sessions, &id.0)?.map(|b| decode_session(id, &b)).transpose()
}

fn put_session(txn: &mut dyn KvTxn, session: &Session) -> Result<(), StoreError> {
    txn.put(Table::Sessions, &session.id.0, &encode_session(session))?;
    if !session.is_pending() {
        let key = session.vault.to_key();
        if txn.get(Table::Pending, &key)?.as_deref() == Some(session.id.0.as_slice()) {
            txn.delete(Table::Pending, &key)?;
        }
    }
    Ok(())
}

fn bucket_len(txn: &mut dyn KvTxn, stream_id: u64) -> Result<usize, StoreError> {
    Ok(txn.scan(Table::Index, &stream_id.to_be_bytes(), MAX_CANDIDATES_PER_STREAM_ID.saturating_add(1))?.len())
}

/// Layout 1's `Session` value: the borsh `Session` with the provider id, and a pinned policy
/// repeating the token id.
#[derive(BorshDeserialize)]
struct SessionV1 {
    id: SessionId,
    vault: VaultKey,
    owner_public_key: [u8; 32],
    _provider_id: [u8; 32],
    token_id: [u8; 32],
    params: AcceptedParams,
    policy: PinnedPolicyV1,
    session_key: [u8; 32],
    accepted_at: u64,
    predicted_stream_id: u64,
    state: SessionState,
    matching_stream: Option<(u64, u64)>,
    suspended_until: u64,
}

#[derive(BorshDeserialize)]
struct PinnedPolicyV1 {
    max_create_stream_deadline_delay: u64,
    first_response_cap: u64,
    _token_id: [u8; 32],
    min_rate: u64,
    min_allocation: u64,
    deferred_first_proof: bool,
}

fn decode_session_v1(key: &[u8], bytes: &[u8]) -> Result<Session, StoreError> {
    let v1 = SessionV1::try_from_slice(bytes).map_err(|e| corrupt("layout-1 session", e))?;
    if v1.id.0.as_slice() != key {
        return Err(corrupt("layout-1 session", "the record's id differs from its key"));
    }
    let p = v1.policy;
    Ok(Session {
        id: v1.id,
        vault: v1.vault,
        owner_public_key: v1.owner_public_key,
        token_id: v1.token_id,
        params: v1.params,
        policy: PinnedPolicy {
            max_create_stream_deadline_delay: p.max_create_stream_deadline_delay,
            first_response_cap: p.first_response_cap,
            min_rate: p.min_rate,
            min_allocation: p.min_allocation,
            deferred_first_proof: p.deferred_first_proof,
        },
        session_key: v1.session_key,
        accepted_at: v1.accepted_at,
        predicted_stream_id: v1.predicted_stream_id,
        state: v1.state,
        matching_stream: v1.matching_stream,
        suspended_until: v1.suspended_until,
    })
}

/// The layout version recorded in `kv`: `None` for a fresh store, 1 for a store written before
/// versions were recorded.
fn stored_layout(txn: &mut dyn KvTxn) -> Result<Option<u32>, StoreError> {
    if let Some(bytes) = txn.get(Table::Meta, LAYOUT_KEY)? {
        let array: [u8; 4] =
            bytes.as_slice().try_into().map_err(|_| corrupt("layout version", format!("{} bytes", bytes.len())))?;
        return Ok(Some(u32::from_be_bytes(array)));
    }
    for table in Table::ALL {
        if table != Table::Meta && !txn.scan(table, &[], 1)?.is_empty() {
            return Ok(Some(1));
        }
    }
    Ok(None)
}

/// Brings the store to [`LAYOUT_VERSION`] in one transaction (all or nothing; a store opened
/// by several processes at once is converted once). From layout 1: every session re-encoded,
/// the used marks of proposals that still have a session dropped, every `Claimable` entry
/// moved into the stream's [`Table::Bound`] entry.
///
/// # Errors
/// Storage failures, corrupt layout-1 data (nothing is changed), or a newer layout.
pub fn migrate(kv: &impl Kv) -> Result<(), StoreError> {
    let current = kv.read(stored_layout)?;
    if current == Some(LAYOUT_VERSION) {
        return Ok(());
    }
    kv.transact(|txn| {
        match stored_layout(txn)? {
            None => {}
            Some(1) => {
                for (key, value) in txn.scan(Table::Sessions, &[], usize::MAX)? {
                    let session = decode_session_v1(&key, &value)?;
                    txn.put(Table::Sessions, &key, &encode_session(&session))?;
                    if txn.get(Table::Used, &key)?.is_some() {
                        txn.delete(Table::Used, &key)?;
                    }
                }
                for (key, token) in txn.scan(Table::Claimable, &[], usize::MAX)? {
                    let stream = stream_key_from(&key)?;
                    let token: [u8; 32] = token.as_slice().try_into().map_err(|_| corrupt("claimable token", format!("{} bytes", token.len())))?;
                    let mut entry = get_bound(txn, &stream)?.unwrap_or(BoundEntry { session: None, claimable: None });
                    entry.claimable = Some(token);
                    put_bound(txn, &stream, entry)?;
                    txn.delete(Table::Claimable, &key)?;
                }
            }
            Some(LAYOUT_VERSION) => return Ok(()),
            Some(v) => {
                return Err(StoreError::Database(format!(
                    "the session store has layout {v}, newer than this paystreams ({LAYOUT_VERSION}); upgrade paystreams"
                )));
            }
        }
        txn.put(Table::Meta, LAYOUT_KEY, &LAYOUT_VERSION.to_be_bytes())
    })
}

impl<K: Kv> KvStore<K> {
    fn accept_sync(&self, session: &Session, now: u64) -> Result<AcceptOutcome, StoreError> {
        self.kv.transact(|txn| {
            let vault_key = session.vault.to_key();
            if let Some(pending_id) = txn.get(Table::Pending, &vault_key)? {
                let pending_id = id_from(&pending_id)?;
                match get_session(txn, pending_id)? {
                    Some(mut pending) if pending.is_pending() => {
                        if !pending.pending_expired(now) {
                            return Ok(AcceptOutcome::PendingExists(pending_id));
                        }
                        pending.state = SessionState::Ended { reason: EndReason::DeadlineMissed, at: now };
                        put_session(txn, &pending)?;
                    }
                    _ => txn.delete(Table::Pending, &vault_key)?,
                }
            }
            // Used: a session record exists, or was purged (its used mark).
            if txn.get(Table::Sessions, &session.id.0)?.is_some() || txn.get(Table::Used, &session.id.0)?.is_some() {
                return Ok(AcceptOutcome::ProposalUsed);
            }
            if bucket_len(txn, session.predicted_stream_id)? >= MAX_CANDIDATES_PER_STREAM_ID {
                return Ok(AcceptOutcome::CandidatesFull);
            }
            txn.put(Table::Sessions, &session.id.0, &encode_session(session))?;
            txn.put(Table::Pending, &vault_key, &session.id.0)?;
            txn.put(Table::Index, &index_key(session.predicted_stream_id, session.id), &[])?;
            Ok(AcceptOutcome::Accepted)
        })
    }

    fn bind_sync(&self, id: SessionId, stream_id: u64) -> Result<BindOutcome, StoreError> {
        self.kv.transact(|txn| {
            let Some(mut session) = get_session(txn, id)? else { return Ok(BindOutcome::NotBindable) };
            match session.state {
                SessionState::Bound { stream_id: bound } => return Ok(BindOutcome::AlreadyBound(bound)),
                SessionState::Ended { .. } => return Ok(BindOutcome::NotBindable),
                SessionState::Pending => {}
            }
            let stream = StreamKey { vault: session.vault, stream_id };
            if let Some(BoundEntry { session: Some(other), .. }) = get_bound(txn, &stream)? {
                return Ok(BindOutcome::StreamTaken(other));
            }
            // Drop the other index entries (the prediction, a non-matching stream seen created).
            for other in
                [Some(session.predicted_stream_id), session.matching_stream.map(|(s, _)| s)].into_iter().flatten()
            {
                if other != stream_id {
                    txn.delete(Table::Index, &index_key(other, id))?;
                }
            }
            txn.put(Table::Index, &index_key(stream_id, id), &[])?;
            put_bound(txn, &stream, BoundEntry { session: Some(id), claimable: Some(session.token_id) })?;
            session.state = SessionState::Bound { stream_id };
            put_session(txn, &session)?;
            Ok(BindOutcome::Bound)
        })
    }

    fn purge_sync(&self, id: SessionId) -> Result<(), StoreError> {
        self.kv.transact(|txn| {
            let Some(session) = get_session(txn, id)? else { return Ok(()) };
            let streams =
                [Some(session.predicted_stream_id), session.matching_stream.map(|(s, _)| s), session.bound_stream()];
            for stream_id in streams.into_iter().flatten() {
                txn.delete(Table::Index, &index_key(stream_id, id))?;
            }
            // The binding goes with the session (what may still be claimed stays): a later
            // session may bind the stream only after a fresh accepted proposal, and only if the
            // stream is still ACTIVE and matching.
            if let Some(stream) = session.stream_key()
                && let Some(entry) = get_bound(txn, &stream)?
                && entry.session == Some(id)
            {
                put_bound(txn, &stream, BoundEntry { session: None, ..entry })?;
            }
            for (key, _) in txn.scan(Table::Replay, &id.0, usize::MAX)? {
                txn.delete(Table::Replay, &key)?;
            }
            if txn.get(Table::Pending, &session.vault.to_key())?.as_deref() == Some(id.0.as_slice()) {
                txn.delete(Table::Pending, &session.vault.to_key())?;
            }
            txn.put(Table::Used, &id.0, &[])?;
            txn.delete(Table::Sessions, &id.0)
        })
    }

    fn attempt_sync(&self, vault: VaultKey, now: u64, window: u64) -> Result<u32, StoreError> {
        self.kv.transact(|txn| {
            let key = vault.to_key();
            let mut times: Vec<u64> = match txn.get(Table::Attempts, &key)? {
                Some(bytes) => decode_attempts(&bytes)?,
                None => Vec::new(),
            };
            times.retain(|t| t.saturating_add(window) > now);
            times.push(now);
            let excess = times.len().saturating_sub(MAX_ATTEMPTS_KEPT);
            times.drain(..excess);
            // Forget the vaults after this one (in key order) whose every attempt is outside
            // the window: without a timer, the entries of vaults that never come back go away,
            // and the table stays near the vaults active within a window.
            for (other, bytes) in txn.scan_from(Table::Attempts, &key, ATTEMPT_SWEEP.saturating_add(1))? {
                if other != key && decode_attempts(&bytes)?.iter().all(|t| t.saturating_add(window) <= now) {
                    txn.delete(Table::Attempts, &other)?;
                }
            }
            txn.put(Table::Attempts, &key, &borsh::to_vec(&times).unwrap_or_default())?;
            Ok(u32::try_from(times.len()).unwrap_or(u32::MAX))
        })
    }

    fn set_claimable(&self, stream: StreamKey, token: Option<[u8; 32]>) -> Result<(), StoreError> {
        self.kv.transact(|txn| {
            let entry = get_bound(txn, &stream)?.unwrap_or(BoundEntry { session: None, claimable: None });
            if entry.claimable == token {
                return Ok(());
            }
            put_bound(txn, &stream, BoundEntry { claimable: token, ..entry })
        })
    }
}

fn decode_attempts(bytes: &[u8]) -> Result<Vec<u64>, StoreError> {
    Vec::<u64>::try_from_slice(bytes).map_err(|e| corrupt("attempts", e))
}

fn stream_key_from(bytes: &[u8]) -> Result<StreamKey, StoreError> {
    let corrupt = || corrupt("stream key", format!("{} bytes", bytes.len()));
    if bytes.len() != 48 {
        return Err(corrupt());
    }
    let owner: [u8; 32] = bytes.get(..32).and_then(|b| b.try_into().ok()).ok_or_else(corrupt)?;
    let vault_id = bytes.get(32..40).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes).ok_or_else(corrupt)?;
    let stream_id = bytes.get(40..48).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes).ok_or_else(corrupt)?;
    Ok(StreamKey { vault: VaultKey { owner, vault_id }, stream_id })
}

impl<K: Kv> SessionStore for KvStore<K> {
    async fn accept(&self, session: &Session, now: u64) -> Result<AcceptOutcome, StoreError> {
        self.accept_sync(session, now)
    }

    async fn session(&self, id: SessionId) -> Result<Option<Session>, StoreError> {
        self.kv.read(|txn| get_session(txn, id))
    }

    async fn pending(&self, vault: VaultKey) -> Result<Option<Session>, StoreError> {
        self.kv.read(|txn| match txn.get(Table::Pending, &vault.to_key())? {
            Some(id) => get_session(txn, id_from(&id)?),
            None => Ok(None),
        })
    }

    async fn candidates(&self, stream_id: u64) -> Result<Vec<Session>, StoreError> {
        self.kv.read(|txn| {
            let entries = txn.scan(Table::Index, &stream_id.to_be_bytes(), MAX_CANDIDATES_PER_STREAM_ID)?;
            let mut out = Vec::with_capacity(entries.len());
            for (key, _) in entries {
                let id = id_from(key.get(8..).unwrap_or_default())?;
                out.extend(get_session(txn, id)?);
            }
            Ok(out)
        })
    }

    async fn index(&self, id: SessionId, stream_id: u64) -> Result<bool, StoreError> {
        self.kv.transact(|txn| {
            let key = index_key(stream_id, id);
            if txn.get(Table::Index, &key)?.is_some() {
                return Ok(true);
            }
            if bucket_len(txn, stream_id)? >= MAX_CANDIDATES_PER_STREAM_ID {
                return Ok(false);
            }
            txn.put(Table::Index, &key, &[])?;
            Ok(true)
        })
    }

    async fn bind_stream(&self, id: SessionId, stream_id: u64) -> Result<BindOutcome, StoreError> {
        self.bind_sync(id, stream_id)
    }

    async fn bound_session(&self, stream: StreamKey) -> Result<Option<SessionId>, StoreError> {
        self.kv.read(|txn| Ok(get_bound(txn, &stream)?.and_then(|e| e.session)))
    }

    async fn seen_request(&self, id: SessionId, digest: [u8; 32]) -> Result<bool, StoreError> {
        self.kv.read(|txn| Ok(txn.get(Table::Replay, &replay_key(id, &digest))?.is_some()))
    }

    async fn record_request(&self, id: SessionId, digest: [u8; 32]) -> Result<bool, StoreError> {
        self.kv.transact(|txn| {
            let key = replay_key(id, &digest);
            if txn.get(Table::Replay, &key)?.is_some() {
                return Ok(false);
            }
            txn.put(Table::Replay, &key, &[])?;
            Ok(true)
        })
    }

    async fn record_attempt(&self, vault: VaultKey, now: u64, window: u64) -> Result<u32, StoreError> {
        self.attempt_sync(vault, now, window)
    }

    async fn update(&self, session: &Session) -> Result<(), StoreError> {
        self.kv.transact(|txn| put_session(txn, session))
    }

    async fn sessions(&self) -> Result<Vec<Session>, StoreError> {
        self.kv.read(|txn| {
            txn.scan(Table::Sessions, &[], usize::MAX)?.iter().map(|(k, v)| decode_session(id_from(k)?, v)).collect()
        })
    }

    async fn purge(&self, id: SessionId) -> Result<(), StoreError> {
        self.purge_sync(id)
    }

    async fn claimables(&self) -> Result<Vec<(StreamKey, [u8; 32])>, StoreError> {
        self.kv.read(|txn| {
            let mut out = Vec::new();
            for (key, value) in txn.scan(Table::Bound, &[], usize::MAX)? {
                if let Some(token) = BoundEntry::decode(&value)?.claimable {
                    out.push((stream_key_from(&key)?, token));
                }
            }
            Ok(out)
        })
    }

    async fn add_claimable(&self, stream: StreamKey, token_id: [u8; 32]) -> Result<(), StoreError> {
        self.set_claimable(stream, Some(token_id))
    }

    async fn remove_claimable(&self, stream: StreamKey) -> Result<(), StoreError> {
        self.set_claimable(stream, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(byte: u8, vault_id: u64, deadline: u64) -> Session {
        Session {
            id: SessionId([byte; 32]),
            vault: VaultKey { owner: [1; 32], vault_id },
            owner_public_key: [2; 32],
            token_id: [0; 32],
            params: AcceptedParams {
                service_id: "s".into(),
                rate: 1,
                allocation: 10,
                create_stream_deadline: deadline,
            },
            policy: PinnedPolicy {
                max_create_stream_deadline_delay: 300,
                first_response_cap: 10,
                min_rate: 1,
                min_allocation: 1,
                deferred_first_proof: false,
            },
            session_key: [4; 32],
            accepted_at: 0,
            predicted_stream_id: 0,
            state: SessionState::Pending,
            matching_stream: None,
            suspended_until: 0,
        }
    }

    async fn exercise(store: &impl SessionStore) {
        let a = session(10, 0, 100);
        assert_eq!(store.accept(&a, 50).await.expect("accept"), AcceptOutcome::Accepted);
        // One pending session per vault; a used proposal stays used.
        assert_eq!(store.accept(&session(11, 0, 100), 50).await.expect("accept"), AcceptOutcome::PendingExists(a.id));
        assert_eq!(store.accept(&a, 50).await.expect("accept"), AcceptOutcome::PendingExists(a.id));
        // Another vault is independent, and may race for the same stream id 0.
        let b = session(12, 1, 100);
        assert_eq!(store.accept(&b, 50).await.expect("accept"), AcceptOutcome::Accepted);
        assert_eq!(store.candidates(0).await.expect("candidates").len(), 2);
        // First binding wins; a second bind names the bound stream.
        assert_eq!(store.bind_stream(a.id, 0).await.expect("bind"), BindOutcome::Bound);
        assert_eq!(store.bind_stream(a.id, 1).await.expect("bind"), BindOutcome::AlreadyBound(0));
        assert!(store.pending(a.vault).await.expect("pending").is_none());
        // A stream backs one session only.
        let c = session(13, 0, 100);
        assert_eq!(store.accept(&c, 50).await.expect("accept"), AcceptOutcome::Accepted);
        assert_eq!(store.bind_stream(c.id, 0).await.expect("bind"), BindOutcome::StreamTaken(a.id));
        // Replay: check and insert are one step.
        assert!(store.record_request(a.id, [9; 32]).await.expect("record"));
        assert!(!store.record_request(a.id, [9; 32]).await.expect("record"));
        assert!(store.seen_request(a.id, [9; 32]).await.expect("seen"));
        assert!(!store.seen_request(b.id, [9; 32]).await.expect("seen"));
        // Attempts inside the window.
        for expected in 1..=3 {
            assert_eq!(store.record_attempt(a.vault, 100, 600).await.expect("attempt"), expected);
        }
        assert_eq!(store.record_attempt(a.vault, 700, 600).await.expect("attempt"), 1);
        // An expired pending session gives way.
        assert_eq!(store.accept(&session(14, 0, 200), 101).await.expect("accept"), AcceptOutcome::Accepted);
        let ended = store.session(c.id).await.expect("read").expect("kept");
        assert!(matches!(ended.state, SessionState::Ended { reason: EndReason::DeadlineMissed, .. }));
        assert_eq!(store.claimables().await.expect("claimables").len(), 1);
        store.purge(a.id).await.expect("purge");
        assert!(store.session(a.id).await.expect("read").is_none());
        assert!(!store.seen_request(a.id, [9; 32]).await.expect("seen"));
        assert_eq!(store.accept(&a, 500).await.expect("accept"), AcceptOutcome::ProposalUsed);
    }

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

    #[tokio::test]
    async fn memory_store_rules() {
        exercise(&MemoryStore::new()).await;
    }

    #[tokio::test]
    async fn redb_store_rules_and_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.redb");
        exercise(&RedbStore::open(&path).expect("open")).await;
        let reopened = RedbStore::open(&path).expect("reopen");
        assert_eq!(reopened.sessions().await.expect("sessions").len(), 3);
        assert_eq!(reopened.accept(&session(10, 0, 100), 1).await.expect("accept"), AcceptOutcome::ProposalUsed);
    }

    #[tokio::test]
    async fn candidate_buckets_are_bounded() {
        let store = MemoryStore::new();
        for i in 0..MAX_CANDIDATES_PER_STREAM_ID {
            let s = session(20, u64::try_from(i).expect("small"), 100);
            let mut s = s;
            let mut id = [7_u8; 32];
            id[..8].copy_from_slice(&u64::try_from(i).expect("small").to_be_bytes());
            s.id = SessionId(id);
            assert_eq!(store.accept(&s, 0).await.expect("accept"), AcceptOutcome::Accepted);
        }
        let mut extra = session(200, 1_000_000, 100);
        extra.id = SessionId([0xee; 32]);
        assert_eq!(store.accept(&extra, 0).await.expect("accept"), AcceptOutcome::CandidatesFull);
        assert_eq!(store.candidates(0).await.expect("candidates").len(), MAX_CANDIDATES_PER_STREAM_ID);
        assert!(!store.index(extra.id, 0).await.expect("index"));
    }

    /// Layout-1 bytes of a session (the borsh `Session` of that layout: the provider id after
    /// the owner's key, the token id repeated inside the pinned policy), built field by field.
    fn layout1_session(s: &Session) -> Vec<u8> {
        let p = &s.policy;
        let policy = (
            p.max_create_stream_deadline_delay,
            p.first_response_cap,
            s.token_id,
            p.min_rate,
            p.min_allocation,
            p.deferred_first_proof,
        );
        let head = (s.id, s.vault, s.owner_public_key, [3_u8; 32], s.token_id, &s.params, policy);
        let tail = (s.session_key, s.accepted_at, s.predicted_stream_id, s.state, s.matching_stream, s.suspended_until);
        [borsh::to_vec(&head).expect("head"), borsh::to_vec(&tail).expect("tail")].concat()
    }

    /// What the same history leaves in both layouts: `a` bound to (vault 0, stream 0) with a
    /// recorded request; `b` pending on vault 1; `c` bound to (vault 2, stream 1), ended and
    /// purged (its stream still claimable and still bound); `d` ended without a stream;
    /// attempts on vault 0.
    fn history() -> [Session; 4] {
        let mut a = session(10, 0, 100);
        a.state = SessionState::Bound { stream_id: 0 };
        a.matching_stream = Some((0, 60));
        let b = session(11, 1, 100);
        let mut c = session(12, 2, 100);
        c.predicted_stream_id = 1;
        c.state = SessionState::Ended { reason: EndReason::StreamClosed, at: 90 };
        c.token_id = [6; 32];
        let mut d = session(13, 3, 80);
        d.predicted_stream_id = 2;
        d.state = SessionState::Ended { reason: EndReason::DeadlineMissed, at: 81 };
        d.policy.deferred_first_proof = true;
        d.suspended_until = 7;
        [a, b, c, d]
    }

    /// The history through the current code.
    async fn replay_history(store: &impl SessionStore) {
        let [a, b, c, d] = history();
        assert_eq!(store.record_attempt(a.vault, 40, 600).await.expect("attempt"), 1);
        for s in [&a, &b, &c, &d] {
            let mut pending = s.clone();
            pending.state = SessionState::Pending;
            pending.matching_stream = None;
            assert_eq!(store.accept(&pending, 50).await.expect("accept"), AcceptOutcome::Accepted);
        }
        assert_eq!(store.bind_stream(a.id, 0).await.expect("bind"), BindOutcome::Bound);
        assert_eq!(store.bind_stream(c.id, 1).await.expect("bind"), BindOutcome::Bound);
        for s in [&a, &c, &d] {
            store.update(s).await.expect("update");
        }
        assert!(store.record_request(a.id, [9; 32]).await.expect("record"));
        store.purge(c.id).await.expect("purge");
    }

    /// The history as layout 1 stored it, written entry by entry.
    fn write_layout1(kv: &impl Kv) {
        let [a, b, c, d] = history();
        let stream = |s: &Session, id: u64| StreamKey { vault: s.vault, stream_id: id }.to_key();
        kv.transact(|t| {
            for s in [&a, &b, &d] {
                t.put(Table::Sessions, &s.id.0, &layout1_session(s))?;
            }
            t.put(Table::Pending, &b.vault.to_key(), &b.id.0)?;
            for s in [&a, &b, &c, &d] {
                t.put(Table::Used, &s.id.0, &[])?;
            }
            for (stream_id, s) in [(0, &a), (0, &b), (2, &d)] {
                t.put(Table::Index, &index_key(stream_id, s.id), &[])?;
            }
            t.put(Table::Bound, &stream(&a, 0), &a.id.0)?;
            // Purging an ended session keeps its binding (the state no longer names the stream).
            t.put(Table::Bound, &stream(&c, 1), &c.id.0)?;
            t.put(Table::Claimable, &stream(&a, 0), &a.token_id)?;
            t.put(Table::Claimable, &stream(&c, 1), &c.token_id)?;
            t.put(Table::Replay, &replay_key(a.id, &[9; 32]), &[])?;
            t.put(Table::Attempts, &a.vault.to_key(), &borsh::to_vec(&vec![40_u64]).expect("attempts"))
        })
        .expect("write layout 1");
    }

    /// Every answer the store gives about the history, then the outcomes of further calls.
    async fn observe(store: &impl SessionStore) -> Vec<String> {
        let [a, b, c, d] = history();
        let mut out = Vec::new();
        let mut sessions = store.sessions().await.expect("sessions");
        sessions.sort_by_key(|s| s.id);
        out.push(format!("{sessions:?}"));
        let mut claimables = store.claimables().await.expect("claimables");
        claimables.sort();
        out.push(format!("{claimables:?}"));
        for s in [&a, &b, &c, &d] {
            out.push(format!("{:?}", store.session(s.id).await.expect("session")));
            out.push(format!("{:?}", store.pending(s.vault).await.expect("pending")));
            for stream_id in 0..3 {
                out.push(format!(
                    "{:?}",
                    store.bound_session(StreamKey { vault: s.vault, stream_id }).await.expect("bound")
                ));
            }
            out.push(format!("{}", store.seen_request(s.id, [9; 32]).await.expect("seen")));
        }
        for stream_id in 0..4 {
            let ids: Vec<SessionId> =
                store.candidates(stream_id).await.expect("candidates").iter().map(|s| s.id).collect();
            out.push(format!("{ids:?}"));
        }
        // Behaviour from here on.
        for s in [&a, &b, &c, &d] {
            let mut again = s.clone();
            again.state = SessionState::Pending;
            out.push(format!("{:?}", store.accept(&again, 60).await.expect("accept")));
        }
        out.push(format!("{:?}", store.accept(&session(14, 1, 100), 60).await.expect("accept")));
        out.push(format!("{:?}", store.record_attempt(a.vault, 100, 600).await.expect("attempt")));
        out.push(format!("{:?}", store.record_request(a.id, [9; 32]).await.expect("record")));
        out.push(format!("{:?}", store.bind_stream(b.id, 0).await.expect("bind")));
        let c_stream = StreamKey { vault: c.vault, stream_id: 1 };
        out.push(format!("{:?}", store.bind_stream(session(15, 2, 100).id, 1).await.expect("bind")));
        let mut e = session(15, 2, 100);
        e.predicted_stream_id = 1;
        out.push(format!("{:?}", store.accept(&e, 60).await.expect("accept")));
        out.push(format!("{:?}", store.bind_stream(e.id, 1).await.expect("bind")));
        out.push(format!("{:?}", store.bound_session(c_stream).await.expect("bound")));
        store.remove_claimable(c_stream).await.expect("remove");
        store.remove_claimable(StreamKey { vault: a.vault, stream_id: 0 }).await.expect("remove");
        store.add_claimable(StreamKey { vault: d.vault, stream_id: 5 }, [8; 32]).await.expect("add");
        let mut claimables = store.claimables().await.expect("claimables");
        claimables.sort();
        out.push(format!("{claimables:?}"));
        store.purge(a.id).await.expect("purge");
        out.push(format!(
            "{:?}",
            store.bound_session(StreamKey { vault: a.vault, stream_id: 0 }).await.expect("bound")
        ));
        out.push(format!("{:?}", store.accept(&a, 60).await.expect("accept")));
        out.push(format!("{}", store.seen_request(a.id, [9; 32]).await.expect("seen")));
        out
    }

    #[tokio::test]
    async fn a_layout_1_memory_store_is_converted_and_behaves_the_same() {
        let expected = MemoryStore::new();
        replay_history(&expected).await;
        let expected = observe(&expected).await;

        let kv = MemoryKv::default();
        write_layout1(&kv);
        let store = KvStore::with_kv(kv).expect("migrate");
        // Used marks remain only for purged proposals; the claimable table is empty.
        assert_eq!(store.kv().len(Table::Used).expect("len"), 1);
        assert_eq!(store.kv().len(Table::Claimable).expect("len"), 0);
        assert_eq!(observe(&store).await, expected);
    }

    #[tokio::test]
    async fn a_layout_1_redb_file_is_converted_once_and_behaves_the_same() {
        let expected = MemoryStore::new();
        replay_history(&expected).await;
        let expected = observe(&expected).await;

        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("old.redb");
        write_layout1(&RedbKv::open(&path).expect("open raw"));
        drop(RedbStore::open(&path).expect("migrate"));
        let store = RedbStore::open(&path).expect("reopen");
        assert_eq!(observe(&store).await, expected);
    }

    #[test]
    fn corrupt_layout_1_data_is_refused_and_left_untouched() {
        let kv = MemoryKv::default();
        write_layout1(&kv);
        let [a, ..] = history();
        let mut bytes = layout1_session(&a);
        bytes.truncate(bytes.len() - 3);
        kv.transact(|t| t.put(Table::Sessions, &a.id.0, &bytes)).expect("corrupt");
        let refused = KvStore::with_kv(kv).expect_err("refused");
        assert!(matches!(refused, StoreError::Corrupt { what: "layout-1 session", .. }), "{refused}");

        // Nothing changed: the failed conversion left layout 1 in place.
        let kv = MemoryKv::default();
        write_layout1(&kv);
        kv.transact(|t| t.put(Table::Claimable, &[1; 47], &[0; 32])).expect("corrupt");
        assert!(matches!(migrate(&kv), Err(StoreError::Corrupt { what: "stream key", .. })));
        assert_eq!(kv.len(Table::Used).expect("len"), 4);
        assert_eq!(kv.len(Table::Claimable).expect("len"), 3);
        assert_eq!(kv.len(Table::Meta).expect("len"), 0);
        let stored = kv.transact(|t| t.get(Table::Sessions, &a.id.0)).expect("read").expect("kept");
        assert_eq!(stored, layout1_session(&a));
    }

    #[test]
    fn a_newer_layout_is_refused() {
        let kv = MemoryKv::default();
        kv.transact(|t| t.put(Table::Meta, LAYOUT_KEY, &(LAYOUT_VERSION + 1).to_be_bytes())).expect("write");
        assert!(KvStore::with_kv(kv).expect_err("refused").to_string().contains("newer than this paystreams"));
    }

    #[test]
    fn session_records_round_trip_at_the_extremes() {
        let reasons = [
            EndReason::DeadlineMissed,
            EndReason::VaultDrained,
            EndReason::StreamClosed,
            EndReason::FirstResponseTooLarge,
            EndReason::Abuse,
        ];
        let states = [SessionState::Pending, SessionState::Bound { stream_id: u64::MAX }]
            .into_iter()
            .chain(reasons.map(|reason| SessionState::Ended { reason, at: 1 << 63 }));
        for (i, state) in states.enumerate() {
            let mut s = session(u8::try_from(i).expect("small"), u64::MAX, u64::MAX);
            s.state = state;
            s.params.service_id = "/vac/waku/store-query/3.0.0 é".repeat(i);
            s.params.rate = 127;
            s.params.allocation = 128;
            s.policy.first_response_cap = u64::MAX - 1;
            s.policy.deferred_first_proof = i % 2 == 0;
            s.accepted_at = 1_800_000_000;
            s.matching_stream = (i % 2 == 1).then_some((0, u64::MAX));
            s.suspended_until = 16_384;
            assert_eq!(decode_session(s.id, &encode_session(&s)).expect("decode"), s);
        }
    }

    #[tokio::test]
    async fn attempts_of_other_vaults_outside_the_window_are_forgotten() {
        let store = MemoryStore::new();
        let vault = |vault_id| VaultKey { owner: [1; 32], vault_id };
        for vault_id in 0..50 {
            assert_eq!(store.record_attempt(vault(vault_id), 100, 600).await.expect("attempt"), 1);
        }
        assert_eq!(store.kv().len(Table::Attempts).expect("len"), 50);
        // Inside the window nothing is forgotten, and each vault keeps its own count.
        assert_eq!(store.record_attempt(vault(10), 699, 600).await.expect("attempt"), 2);
        assert_eq!(store.kv().len(Table::Attempts).expect("len"), 50);
        // Outside it, each attempt forgets the stale records after its own.
        assert_eq!(store.record_attempt(vault(20), 701, 600).await.expect("attempt"), 1);
        assert_eq!(store.kv().len(Table::Attempts).expect("len"), 48);
        assert!(store.kv().transact(|t| t.get(Table::Attempts, &vault(21).to_key())).expect("read").is_none());
        // Vault 10's attempt at 699 is still inside the window at 701: kept when sampled.
        assert_eq!(store.record_attempt(vault(9), 701, 600).await.expect("attempt"), 1);
        assert_eq!(store.kv().len(Table::Attempts).expect("len"), 47);
        assert_eq!(store.record_attempt(vault(10), 701, 600).await.expect("attempt"), 2);
        for vault_id in (0..50).rev() {
            store.record_attempt(vault(vault_id), 2_000, 600).await.expect("attempt");
        }
        // Every record now is a fresh one.
        assert_eq!(store.kv().len(Table::Attempts).expect("len"), 50);
        assert_eq!(store.record_attempt(vault(49), 2_000, 600).await.expect("attempt"), 2);
    }

    #[test]
    fn corrupt_records_give_errors() {
        let s = session(10, 0, 100);
        let good = encode_session(&s);
        assert_eq!(decode_session(s.id, &good).expect("decode"), s);
        let mut trailing = good.clone();
        trailing.push(0);
        let mut version = good.clone();
        *version.first_mut().expect("version") = 1;
        let mut state = good.clone();
        // The state's tag: after the version, the vault (owner, id 0), the two keys, the token,
        // the params ("s", 1, 10, 100), the policy (300, 10, 1, 1, false), the session key and
        // two times (0, 0).
        let tag = 1 + 33 + 32 + 32 + (2 + 3) + (2 + 1 + 1 + 1 + 1) + 32 + 2;
        assert_eq!(state.get(tag), Some(&0), "the pending state's tag");
        *state.get_mut(tag).expect("state tag") = 9;
        // A varint in a longer form than needed (suspended_until, the last field: 0 as 0x80 0x00).
        let mut overlong = good.clone();
        overlong.pop();
        overlong.extend([0x80, 0x00]);
        // Invalid UTF-8 in the service id.
        let mut utf8 = good.clone();
        *utf8.get_mut(1 + 33 + 32 + 32 + 1).expect("service id") = 0xff;
        let truncated = good.split_last().expect("bytes").1;
        for bad in [&[][..], truncated, &trailing, &version, &state, &overlong, &utf8] {
            assert!(matches!(decode_session(s.id, bad), Err(StoreError::Corrupt { what: "session", .. })), "{bad:?}");
        }
        for len in [0, 31, 33, 63, 65] {
            assert!(BoundEntry::decode(&vec![1; len]).is_err(), "{len}");
        }
        let entry = BoundEntry { session: Some(s.id), claimable: Some([5; 32]) };
        assert_eq!(entry.encode().map(|b| BoundEntry::decode(&b).expect("decode")), Some(entry));
        let purged = BoundEntry { session: None, claimable: Some([5; 32]) };
        assert_eq!(purged.encode().map(|b| BoundEntry::decode(&b).expect("decode")), Some(purged));
    }

    /// A fresh database on the server `PAYSTREAMS_TEST_POSTGRES` names, dropped at the end.
    /// Skips (returns `None`) without a server unless `PAYSTREAMS_REQUIRE_POSTGRES=1`.
    struct PgTestDb {
        admin_url: String,
        name: String,
        url: String,
    }

    impl PgTestDb {
        fn create(tag: &str) -> Option<Self> {
            let Ok(admin_url) = std::env::var("PAYSTREAMS_TEST_POSTGRES") else {
                assert!(
                    std::env::var("PAYSTREAMS_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                    "PAYSTREAMS_REQUIRE_POSTGRES=1 but PAYSTREAMS_TEST_POSTGRES is not set"
                );
                eprintln!(
                    "skipped: set PAYSTREAMS_TEST_POSTGRES=postgres://USER@HOST:PORT/DB to run the PostgreSQL session-store tests"
                );
                return None;
            };
            let stamp =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
            let name = format!("paystreams_sessions_{tag}_{}_{stamp:x}", std::process::id());
            let admin = admin_url.clone();
            let create = format!("CREATE DATABASE {name}");
            std::thread::spawn(move || {
                let mut client =
                    postgres::Client::connect(&admin, postgres::NoTls).expect("connect to the test server");
                client.batch_execute(&create).expect("create database");
            })
            .join()
            .expect("create thread");
            let base = admin_url.split('?').next().unwrap_or(&admin_url).to_owned();
            let url = match base.rfind('/') {
                Some(i) if i > "postgres://".len() => format!("{}/{name}", base.get(..i).unwrap_or_default()),
                _ => format!("{base}/{name}"),
            };
            Some(Self { admin_url, name, url })
        }
    }

    impl Drop for PgTestDb {
        fn drop(&mut self) {
            let (admin, name) = (self.admin_url.clone(), self.name.clone());
            let _ = std::thread::spawn(move || {
                if let Ok(mut client) = postgres::Client::connect(&admin, postgres::NoTls) {
                    let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
                }
            })
            .join();
        }
    }

    #[tokio::test]
    async fn postgres_store_rules_and_reconnect() {
        let Some(db) = PgTestDb::create("rules") else { return };
        let store = crate::PgStore::connect(&db.url).expect("connect");
        exercise(&store).await;
        drop(store);
        let reopened = crate::PgStore::connect(&db.url).expect("reconnect");
        assert_eq!(reopened.sessions().await.expect("sessions").len(), 3);
        assert_eq!(reopened.accept(&session(10, 0, 100), 1).await.expect("accept"), AcceptOutcome::ProposalUsed);
        assert!(
            crate::PgStore::connect("postgres://nobody@127.0.0.1:1/none")
                .expect_err("refused")
                .to_string()
                .contains("is the server running")
        );
    }

    #[tokio::test]
    async fn a_layout_1_postgres_database_is_converted_and_behaves_the_same() {
        let Some(db) = PgTestDb::create("layout1") else { return };
        let expected = MemoryStore::new();
        replay_history(&expected).await;
        let expected = observe(&expected).await;
        let kv = crate::PgKv::connect(&db.url).expect("connect raw");
        write_layout1(&kv);
        drop(kv);
        // As a database written by the previous version: schema version 1.
        let schema_version = |sql: &'static str| {
            let url = db.url.clone();
            std::thread::spawn(move || {
                let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
                client.batch_execute(sql).expect("statement");
                client
                    .query_one("SELECT max(version) FROM paystreams_sessions_schema", &[])
                    .expect("version")
                    .get::<_, i32>(0)
            })
            .join()
            .expect("thread")
        };
        assert_eq!(schema_version("UPDATE paystreams_sessions_schema SET version = 1"), 1);
        drop(crate::PgStore::connect(&db.url).expect("migrate"));
        assert_eq!(schema_version("SELECT 1"), crate::pg_store::PG_SCHEMA_VERSION);
        let store = crate::PgStore::connect(&db.url).expect("reconnect");
        assert_eq!(observe(&store).await, expected);
    }

    /// Two stores on one database (two provider processes) racing from many threads, each
    /// thread with its own runtime: every check-and-write succeeds exactly once.
    #[test]
    fn postgres_races_between_processes_have_one_winner() {
        let Some(db) = PgTestDb::create("races") else { return };
        let (store_a, store_b) =
            (crate::PgStore::connect(&db.url).expect("a"), crate::PgStore::connect(&db.url).expect("b"));
        let race = |op: &(dyn Fn(&crate::PgStore, usize) -> bool + Sync)| -> usize {
            std::thread::scope(|s| {
                let handles: Vec<_> = (0..8)
                    .map(|i| {
                        let store = if i % 2 == 0 { &store_a } else { &store_b };
                        s.spawn(move || op(store, i))
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().expect("thread")).filter(|won| *won).count()
            })
        };
        let run = |f: std::pin::Pin<Box<dyn Future<Output = bool> + Send + '_>>| {
            tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(f)
        };
        // The same request digest recorded by eight racers: one records it.
        let a = session(30, 7, 100);
        run(Box::pin(async { store_a.accept(&a, 1).await.expect("accept") == AcceptOutcome::Accepted }));
        assert_eq!(
            race(&|store, _| run(Box::pin(async move { store.record_request(a.id, [5; 32]).await.expect("record") }))),
            1
        );
        // Eight different proposals for one vault: one is accepted (one pending per vault).
        let accepted = race(&|store, i| {
            let mut s = session(40, 8, 100);
            s.id = SessionId([40 + u8::try_from(i).expect("small"); 32]);
            run(Box::pin(async move { store.accept(&s, 1).await.expect("accept") == AcceptOutcome::Accepted }))
        });
        assert_eq!(accepted, 1);
        // One pending session bound by eight racers (to two different stream ids): one binds.
        let b = session(50, 9, 100);
        run(Box::pin(async { store_b.accept(&b, 1).await.expect("accept") == AcceptOutcome::Accepted }));
        let bound = race(&|store, i| {
            let stream_id = 5 + u64::try_from(i % 2).expect("small");
            run(Box::pin(async move { store.bind_stream(b.id, stream_id).await.expect("bind") == BindOutcome::Bound }))
        });
        assert_eq!(bound, 1, "a session binds once");
    }
}
