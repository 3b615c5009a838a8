//! The transactional key-value interface the session logic runs on: the tables, a transaction's
//! operations ([`KvTxn`]) and a backend ([`Kv`]).

use super::StoreError;

/// The tables.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Table {
    /// Session id (32 bytes) to the session record ([`encode_session`](super::encode_session)).
    Sessions,
    /// Vault key (40 bytes) to the id of its pending session.
    Pending,
    /// Ids (32 bytes) of purged proposals; empty values.
    Used,
    /// Layout 2 and older only: stream id (8 bytes, big-endian) then session id, the per-stream-id
    /// candidates. Emptied by [`migrate`](fn@super::migrate): sessions are found through
    /// [`Table::Requesters`].
    Index,
    /// Stream key (48 bytes) to its session id, its claimable token, or both (see
    /// [`BoundEntry`](super::record::BoundEntry)).
    Bound,
    /// Session id then request digest (64 bytes); empty values.
    Replay,
    /// Vault key (40 bytes) to its recent attempt times (borsh `Vec<u64>`). Records whose
    /// every attempt is outside the window are deleted as [`ATTEMPT_SWEEP`](super::ATTEMPT_SWEEP)
    /// describes.
    Attempts,
    /// Layout 1 only: stream key to token id. Emptied into [`Table::Bound`] by [`migrate`](fn@super::migrate).
    Claimable,
    /// Store metadata: the layout version.
    Meta,
    /// Requester (a transport identity, at most [`REQUESTER_MAX_LEN`](super::REQUESTER_MAX_LEN)
    /// bytes) to the ids of its sessions, newest last (at most
    /// [`SESSIONS_PER_REQUESTER`](super::SESSIONS_PER_REQUESTER), 32 bytes each).
    Requesters,
    /// Session id (32 bytes) to the requester that proposed it: the way back from a session
    /// to its [`Table::Requesters`] entry when the session is purged.
    RequesterOf,
    /// Stream key (48 bytes) to the latest delivery receipt kept for it (Borsh
    /// `paystreams_program::receipt::DeliveryReceipt`, 184 bytes). A store written before this
    /// table existed has it empty: no receipts.
    Receipts,
}

impl Table {
    pub(super) const ALL: [Self; 12] = [
        Self::Sessions,
        Self::Pending,
        Self::Used,
        Self::Index,
        Self::Bound,
        Self::Replay,
        Self::Attempts,
        Self::Claimable,
        Self::Meta,
        Self::Requesters,
        Self::RequesterOf,
        Self::Receipts,
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
            Self::Requesters => 10,
            Self::RequesterOf => 11,
            Self::Receipts => 12,
        }
    }

    pub(super) const fn name(self) -> &'static str {
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
            Self::Requesters => "requesters",
            Self::RequesterOf => "requester_of",
            Self::Receipts => "receipts",
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
///
/// Backends are synchronous and free to block (file I/O, an fsync, a network round trip, or
/// `Handle::block_on` on an async client): [`KvStore`](super::KvStore) calls a backend whose
/// [`BLOCKS`](Kv::BLOCKS) is `true` from tokio's blocking pool, never from a worker thread.
pub trait Kv: Send + Sync {
    /// Whether `transact` and `read` may block the thread. Only a backend that never waits
    /// for anything but a short in-memory lock says `false`; the store then calls it inline.
    const BLOCKS: bool = true;

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
