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
//! ([`Kv`]) with three backends: [`MemoryKv`] (tests), [`RedbKv`] (default; every
//! transaction committed with immediate durability, so a restart loses nothing) and [`PgKv`]
//! (PostgreSQL, shared by several provider processes).
//!
//! Backends are synchronous; the async [`SessionStore`] methods run a backend that blocks
//! (redb, PostgreSQL; see [`Kv::BLOCKS`]) through `tokio::task::spawn_blocking`, so no fsync,
//! redb commit or database round trip runs on a tokio worker thread. Opening a store
//! ([`KvStore::with_kv`], [`RedbStore::open`]) blocks too: async callers open it the same way.
//!
//! Layout ([`LAYOUT_VERSION`] 3, recorded in [`Table::Meta`]): a session record is its
//! [`Table::Sessions`] entry (keyed by id; the value, see [`encode_session`], omits the id),
//! its vault's [`Table::Pending`] entry while pending, its place in its requester's
//! [`Table::Requesters`] list with the way back in [`Table::RequesterOf`], its stream's
//! [`Table::Bound`] entry once bound (which also carries the claimable token) and one
//! [`Table::Replay`] entry per recorded request. [`Table::Used`] marks only purged proposals:
//! a proposal with a session record is used too. Older layouts are converted in one
//! transaction when a store is opened ([`migrate`](fn@migrate)): layout 1 (a borsh `Session`
//! with the provider id and a duplicated token id, a `Claimable` table, a used mark per
//! accepted proposal) and layout 2 (a per-stream-id candidate index, [`Table::Index`], which
//! layout 3 replaces by the requester lists; sessions from before have no requester).

mod kv;
mod logic;
mod memory;
mod migrate;
mod postgres;
mod record;
mod redb;
#[cfg(test)]
mod suite;

use std::{fmt, future::Future, sync::PoisonError};

pub use self::{
    kv::{Entries, Kv, KvTxn, Table},
    logic::{KvStore, MemoryStore, RedbStore},
    memory::MemoryKv,
    migrate::{LAYOUT_VERSION, migrate},
    postgres::{PG_CONNECTIONS_MAX, PG_SCHEMA_VERSION, PG_TRANSACTION_ATTEMPTS_MAX, PgKv, PgStore},
    record::{decode_session, encode_session},
    redb::RedbKv,
};
use paystreams_program::receipt::DeliveryReceipt;

use crate::session::{Session, SessionId, StreamKey, VaultKey};

/// Sessions remembered per requester (newest kept): a StreamProof is checked against the
/// requester's own sessions only, so this bounds what one request can cost.
pub const SESSIONS_PER_REQUESTER: usize = 8;
/// Longest requester identity accepted (a libp2p peer id is 38 bytes).
pub const REQUESTER_MAX_LEN: usize = 64;
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

/// Result of [`SessionStore::accept`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum AcceptOutcome {
    Accepted,
    /// A live pending session exists for this vault.
    PendingExists(SessionId),
    /// This proposal was accepted before.
    ProposalUsed,
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

/// One page of [`SessionStore::claimables_after`].
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct ClaimablePage {
    /// Streams with possibly unclaimed funds, with their token id.
    pub streams: Vec<(StreamKey, [u8; 32])>,
    /// The last stream examined when more may follow (pass it as `after`); `None` at the end.
    pub next: Option<StreamKey>,
}

/// The engine's durable state.
pub trait SessionStore: Send + Sync {
    /// Atomically: ends the vault's pending session if it expired at `now`, refuses when a live
    /// one remains or the proposal was used, else records the session (the proposal is then
    /// used) and adds it to `requester`'s sessions (the oldest beyond
    /// [`SESSIONS_PER_REQUESTER`] is dropped from them). `requester` has at most
    /// [`REQUESTER_MAX_LEN`] bytes (longer is an error, nothing written).
    fn accept(
        &self,
        session: &Session,
        requester: &[u8],
        now: u64,
    ) -> impl Future<Output = Result<AcceptOutcome, StoreError>> + Send;
    fn session(&self, id: SessionId) -> impl Future<Output = Result<Option<Session>, StoreError>> + Send;
    /// The vault's pending session, if any (expired or not).
    fn pending(&self, vault: VaultKey) -> impl Future<Output = Result<Option<Session>, StoreError>> + Send;
    /// The sessions `requester` proposed, newest last (at most [`SESSIONS_PER_REQUESTER`]);
    /// empty for an unknown requester. Read only.
    fn requester_sessions(&self, requester: &[u8]) -> impl Future<Output = Result<Vec<Session>, StoreError>> + Send;
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
    /// Atomically records a refused parameter attempt at `now` and returns the attempts within
    /// `window` secs.
    fn record_attempt(
        &self,
        vault: VaultKey,
        now: u64,
        window: u64,
    ) -> impl Future<Output = Result<u32, StoreError>> + Send;
    /// Atomically records `stream_id`, seen created at `at`, as the session's matching stream;
    /// `false` (nothing written) when the session is gone, no longer pending or has one already.
    fn set_matching_stream(
        &self,
        id: SessionId,
        stream_id: u64,
        at: u64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Replaces the session record (state changes); ending a session releases its pending slot.
    fn update(&self, session: &Session) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Every stored session (reports and tests; the engine's maintenance uses
    /// [`SessionStore::sessions_after`]).
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
    /// Removes the stream from the claimables, with its kept delivery receipt.
    fn remove_claimable(&self, stream: StreamKey) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Atomically keeps `receipt` as `stream`'s latest delivery receipt when it acknowledges
    /// more than the one kept (totals only grow); `false` (nothing written) otherwise. The
    /// caller has verified it.
    fn put_receipt(
        &self,
        stream: StreamKey,
        receipt: &DeliveryReceipt,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// The latest delivery receipt kept for `stream` (what a claim on it carries).
    fn latest_receipt(
        &self,
        stream: StreamKey,
    ) -> impl Future<Output = Result<Option<DeliveryReceipt>, StoreError>> + Send;
    /// The refused parameter attempts of `vault` within `window` secs of `now` (read only).
    fn attempts(&self, vault: VaultKey, now: u64, window: u64) -> impl Future<Output = Result<u32, StoreError>> + Send;
    /// At most `limit` sessions in id order, starting after `after` (from the first when
    /// `None`): the engine's bounded maintenance sweep.
    fn sessions_after(
        &self,
        after: Option<SessionId>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Session>, StoreError>> + Send;
    /// The claimable streams among at most `limit` stream entries in key order after `after`
    /// (from the first when `None`), and where the next page starts.
    fn claimables_after(
        &self,
        after: Option<StreamKey>,
        limit: usize,
    ) -> impl Future<Output = Result<ClaimablePage, StoreError>> + Send;
    /// The token of `stream` if it may hold unclaimed funds.
    fn claimable(&self, stream: StreamKey) -> impl Future<Output = Result<Option<[u8; 32]>, StoreError>> + Send;
}

fn corrupt(what: &'static str, detail: impl fmt::Display) -> StoreError {
    StoreError::Corrupt { what, detail: detail.to_string() }
}
