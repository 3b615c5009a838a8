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

use std::{
    collections::BTreeMap,
    future::Future,
    path::Path,
    sync::{Mutex, PoisonError},
};

use borsh::BorshDeserialize;
use redb::{ReadableDatabase as _, ReadableTable, TableDefinition};

use crate::session::{EndReason, Session, SessionId, SessionState, StreamKey, VaultKey};

/// Most sessions one `stream_id` may index. A stream proof names only a per-vault `u64`
/// (stream 0 exists in every vault), so a proof from a requester the engine has not seen tries
/// each candidate's session key; this bounds the signature checks such a proof can cost. Known
/// requesters are checked against their own sessions first (`Provider::handle_from`).
pub const MAX_CANDIDATES_PER_STREAM_ID: usize = 4_096;
/// Most attempt timestamps kept per vault (far above any sensible attempt cap).
pub const MAX_ATTEMPTS_KEPT: usize = 64;

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
    fn bind_stream(&self, id: SessionId, stream_id: u64) -> impl Future<Output = Result<BindOutcome, StoreError>> + Send;
    /// The session bound to `stream`, if any.
    fn bound_session(&self, stream: StreamKey) -> impl Future<Output = Result<Option<SessionId>, StoreError>> + Send;
    /// Whether `digest` was already recorded for the session (read-only, for early refusal).
    fn seen_request(&self, id: SessionId, digest: [u8; 32]) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Atomically records `digest`; `false` when it was already recorded (a replay).
    fn record_request(&self, id: SessionId, digest: [u8; 32]) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Atomically records an attempt at `now` and returns the attempts within `window` secs.
    fn record_attempt(&self, vault: VaultKey, now: u64, window: u64) -> impl Future<Output = Result<u32, StoreError>> + Send;
    /// Replaces the session record (state changes); ending a session releases its pending slot.
    fn update(&self, session: &Session) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Every stored session.
    fn sessions(&self) -> impl Future<Output = Result<Vec<Session>, StoreError>> + Send;
    /// Deletes a session with its index entries and replay records (the used mark stays).
    fn purge(&self, id: SessionId) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Streams with possibly unclaimed funds, with their token id.
    fn claimables(&self) -> impl Future<Output = Result<Vec<(StreamKey, [u8; 32])>, StoreError>> + Send;
    fn add_claimable(&self, stream: StreamKey, token_id: [u8; 32]) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn remove_claimable(&self, stream: StreamKey) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The tables.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Table {
    Sessions,
    Pending,
    Used,
    Index,
    Bound,
    Replay,
    Attempts,
    Claimable,
}

impl Table {
    const ALL: [Self; 8] =
        [Self::Sessions, Self::Pending, Self::Used, Self::Index, Self::Bound, Self::Replay, Self::Attempts, Self::Claimable];

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
        }
    }
}

/// Key-value entries, in key order.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;
/// The in-memory map: (table, key) to value.
type MemoryMap = BTreeMap<(Table, Vec<u8>), Vec<u8>>;

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

/// In-memory backend: one lock, copy-on-write per transaction (tests and small deployments).
#[derive(Debug, Default)]
pub struct MemoryKv {
    data: Mutex<MemoryMap>,
}

/// A key and the value it had before a write (`None`: absent).
type UndoEntry = ((Table, Vec<u8>), Option<Vec<u8>>);

struct MemoryTxn<'a> {
    data: &'a mut MemoryMap,
    /// Previous values of every key written, in write order, to roll back on error (cheaper
    /// than copying the whole map per transaction, which made every request O(sessions)).
    undo: Vec<UndoEntry>,
}

impl KvTxn for MemoryTxn<'_> {
    fn get(&mut self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.data.get(&(table, key.to_vec())).cloned())
    }

    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let k = (table, key.to_vec());
        let old = self.data.insert(k.clone(), value.to_vec());
        self.undo.push((k, old));
        Ok(())
    }

    fn delete(&mut self, table: Table, key: &[u8]) -> Result<(), StoreError> {
        let k = (table, key.to_vec());
        let old = self.data.remove(&k);
        self.undo.push((k, old));
        Ok(())
    }

    fn scan(&mut self, table: Table, prefix: &[u8], limit: usize) -> Result<Entries, StoreError> {
        Ok(self
            .data
            .range((table, prefix.to_vec())..)
            .take_while(|((t, k), _)| *t == table && k.starts_with(prefix))
            .take(limit)
            .map(|((_, k), v)| (k.clone(), v.clone()))
            .collect())
    }
}

impl Kv for MemoryKv {
    fn transact<R: Send>(&self, f: impl Fn(&mut dyn KvTxn) -> Result<R, StoreError> + Sync) -> Result<R, StoreError> {
        let mut data = self.data.lock()?;
        let mut txn = MemoryTxn { data: &mut data, undo: Vec::new() };
        let result = f(&mut txn);
        if result.is_err() {
            for (key, old) in txn.undo.into_iter().rev() {
                match old {
                    Some(value) => txn.data.insert(key, value),
                    None => txn.data.remove(&key),
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
fn get_value(table: &impl ReadableTable<&'static [u8], &'static [u8]>, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
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
    /// The store over an opened backend.
    pub const fn with_kv(kv: K) -> Self {
        Self { kv }
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
    /// # Errors
    /// As [`RedbKv::open`].
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Ok(Self { kv: RedbKv::open(path)? })
    }
}

fn decode_session(bytes: &[u8]) -> Result<Session, StoreError> {
    Session::try_from_slice(bytes).map_err(|e| StoreError::Corrupt { what: "session", detail: e.to_string() })
}

fn id_from(bytes: &[u8]) -> Result<SessionId, StoreError> {
    let array: [u8; 32] =
        bytes.try_into().map_err(|_| StoreError::Corrupt { what: "session id", detail: format!("{} bytes", bytes.len()) })?;
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
    txn.get(Table::Sessions, &id.0)?.map(|b| decode_session(&b)).transpose()
}

fn put_session(txn: &mut dyn KvTxn, session: &Session) -> Result<(), StoreError> {
    txn.put(Table::Sessions, &session.id.0, &session.to_bytes())?;
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
            if txn.get(Table::Used, &session.id.0)?.is_some() {
                return Ok(AcceptOutcome::ProposalUsed);
            }
            if bucket_len(txn, session.predicted_stream_id)? >= MAX_CANDIDATES_PER_STREAM_ID {
                return Ok(AcceptOutcome::CandidatesFull);
            }
            txn.put(Table::Sessions, &session.id.0, &session.to_bytes())?;
            txn.put(Table::Pending, &vault_key, &session.id.0)?;
            txn.put(Table::Used, &session.id.0, &[])?;
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
            if let Some(other) = txn.get(Table::Bound, &stream.to_key())? {
                return Ok(BindOutcome::StreamTaken(id_from(&other)?));
            }
            // Drop the other index entries (the prediction, a non-matching stream seen created).
            for other in [Some(session.predicted_stream_id), session.matching_stream.map(|(s, _)| s)].into_iter().flatten() {
                if other != stream_id {
                    txn.delete(Table::Index, &index_key(other, id))?;
                }
            }
            txn.put(Table::Index, &index_key(stream_id, id), &[])?;
            txn.put(Table::Bound, &stream.to_key(), &id.0)?;
            txn.put(Table::Claimable, &stream.to_key(), &session.token_id)?;
            session.state = SessionState::Bound { stream_id };
            put_session(txn, &session)?;
            Ok(BindOutcome::Bound)
        })
    }

    fn purge_sync(&self, id: SessionId) -> Result<(), StoreError> {
        self.kv.transact(|txn| {
            let Some(session) = get_session(txn, id)? else { return Ok(()) };
            let streams = [Some(session.predicted_stream_id), session.matching_stream.map(|(s, _)| s), session.bound_stream()];
            for stream_id in streams.into_iter().flatten() {
                txn.delete(Table::Index, &index_key(stream_id, id))?;
            }
            if let Some(stream) = session.stream_key()
                && txn.get(Table::Bound, &stream.to_key())?.as_deref() == Some(id.0.as_slice())
            {
                txn.delete(Table::Bound, &stream.to_key())?;
            }
            // The binding goes with the session: a later session may bind the stream only after
            // a fresh accepted proposal, and only if the stream is still ACTIVE and matching.
            for (key, _) in txn.scan(Table::Replay, &id.0, usize::MAX)? {
                txn.delete(Table::Replay, &key)?;
            }
            if txn.get(Table::Pending, &session.vault.to_key())?.as_deref() == Some(id.0.as_slice()) {
                txn.delete(Table::Pending, &session.vault.to_key())?;
            }
            txn.delete(Table::Sessions, &id.0)
        })
    }

    fn attempt_sync(&self, vault: VaultKey, now: u64, window: u64) -> Result<u32, StoreError> {
        self.kv.transact(|txn| {
            let key = vault.to_key();
            let mut times: Vec<u64> = match txn.get(Table::Attempts, &key)? {
                Some(bytes) => Vec::<u64>::try_from_slice(&bytes)
                    .map_err(|e| StoreError::Corrupt { what: "attempts", detail: e.to_string() })?,
                None => Vec::new(),
            };
            times.retain(|t| t.saturating_add(window) > now);
            times.push(now);
            let excess = times.len().saturating_sub(MAX_ATTEMPTS_KEPT);
            times.drain(..excess);
            txn.put(Table::Attempts, &key, &borsh::to_vec(&times).unwrap_or_default())?;
            Ok(u32::try_from(times.len()).unwrap_or(u32::MAX))
        })
    }
}

fn stream_key_from(bytes: &[u8]) -> Result<StreamKey, StoreError> {
    let corrupt = || StoreError::Corrupt { what: "stream key", detail: format!("{} bytes", bytes.len()) };
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
        self.kv.read(|txn| txn.get(Table::Bound, &stream.to_key())?.map(|b| id_from(&b)).transpose())
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
        self.kv.read(|txn| txn.scan(Table::Sessions, &[], usize::MAX)?.iter().map(|(_, v)| decode_session(v)).collect())
    }

    async fn purge(&self, id: SessionId) -> Result<(), StoreError> {
        self.purge_sync(id)
    }

    async fn claimables(&self) -> Result<Vec<(StreamKey, [u8; 32])>, StoreError> {
        self.kv.read(|txn| {
            txn.scan(Table::Claimable, &[], usize::MAX)?
                .iter()
                .map(|(k, v)| {
                    let token: [u8; 32] = v
                        .as_slice()
                        .try_into()
                        .map_err(|_| StoreError::Corrupt { what: "claimable token", detail: format!("{} bytes", v.len()) })?;
                    Ok((stream_key_from(k)?, token))
                })
                .collect()
        })
    }

    async fn add_claimable(&self, stream: StreamKey, token_id: [u8; 32]) -> Result<(), StoreError> {
        self.kv.transact(|txn| txn.put(Table::Claimable, &stream.to_key(), &token_id))
    }

    async fn remove_claimable(&self, stream: StreamKey) -> Result<(), StoreError> {
        self.kv.transact(|txn| txn.delete(Table::Claimable, &stream.to_key()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{AcceptedParams, PinnedPolicy};

    fn session(byte: u8, vault_id: u64, deadline: u64) -> Session {
        Session {
            id: SessionId([byte; 32]),
            vault: VaultKey { owner: [1; 32], vault_id },
            owner_public_key: [2; 32],
            provider_id: [3; 32],
            token_id: [0; 32],
            params: AcceptedParams { service_id: "s".into(), rate: 1, allocation: 10, create_stream_deadline: deadline },
            policy: PinnedPolicy {
                max_create_stream_deadline_delay: 300,
                first_response_cap: 10,
                token_id: [0; 32],
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
        kv.transact(|t| t.put(Table::Used, b"keep", b"1")).expect("commit");
        let failed: Result<(), StoreError> = kv.transact(|t| {
            t.put(Table::Used, b"new", b"2")?;
            t.put(Table::Used, b"keep", b"changed")?;
            t.delete(Table::Used, b"keep")?;
            Err(StoreError::Database("injected".into()))
        });
        assert!(failed.is_err());
        let (keep, new) = kv.transact(|t| Ok((t.get(Table::Used, b"keep")?, t.get(Table::Used, b"new")?))).expect("read");
        assert_eq!((keep.as_deref(), new), (Some(&b"1"[..]), None));
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
                eprintln!("skipped: set PAYSTREAMS_TEST_POSTGRES=postgres://USER@HOST:PORT/DB to run the PostgreSQL session-store tests");
                return None;
            };
            let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
            let name = format!("paystreams_sessions_{tag}_{}_{stamp:x}", std::process::id());
            let admin = admin_url.clone();
            let create = format!("CREATE DATABASE {name}");
            std::thread::spawn(move || {
                let mut client = postgres::Client::connect(&admin, postgres::NoTls).expect("connect to the test server");
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
        assert!(crate::PgStore::connect("postgres://nobody@127.0.0.1:1/none").expect_err("refused").to_string().contains("is the server running"));
    }

    /// Two stores on one database (two provider processes) racing from many threads, each
    /// thread with its own runtime: every check-and-write succeeds exactly once.
    #[test]
    fn postgres_races_between_processes_have_one_winner() {
        let Some(db) = PgTestDb::create("races") else { return };
        let (store_a, store_b) = (crate::PgStore::connect(&db.url).expect("a"), crate::PgStore::connect(&db.url).expect("b"));
        let race = |op: &(dyn Fn(&crate::PgStore, usize) -> bool + Sync)| -> usize {
            std::thread::scope(|s| {
                let handles: Vec<_> = (0..8).map(|i| {
                    let store = if i % 2 == 0 { &store_a } else { &store_b };
                    s.spawn(move || op(store, i))
                }).collect();
                handles.into_iter().map(|h| h.join().expect("thread")).filter(|won| *won).count()
            })
        };
        let run = |f: std::pin::Pin<Box<dyn Future<Output = bool> + Send + '_>>| {
            tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(f)
        };
        // The same request digest recorded by eight racers: one records it.
        let a = session(30, 7, 100);
        run(Box::pin(async { store_a.accept(&a, 1).await.expect("accept") == AcceptOutcome::Accepted }));
        assert_eq!(race(&|store, _| run(Box::pin(async move { store.record_request(a.id, [5; 32]).await.expect("record") }))), 1);
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
