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
//! Layout ([`LAYOUT_VERSION`] 2, recorded in [`Table::Meta`]): a session record is its
//! [`Table::Sessions`] entry (keyed by id; the value, see [`encode_session`], omits the id),
//! its vault's [`Table::Pending`] entry while pending, its [`Table::Index`] entries, its
//! stream's [`Table::Bound`] entry once bound (which also carries the claimable token) and one
//! [`Table::Replay`] entry per recorded request. [`Table::Used`] marks only purged proposals:
//! a proposal with a session record is used too. Layout 1 (a borsh `Session` with the
//! provider id and a duplicated token id, a `Claimable` table, a used mark per accepted
//! proposal) is converted in one transaction when a store is opened ([`migrate`](fn@migrate)).

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
}

fn corrupt(what: &'static str, detail: impl fmt::Display) -> StoreError {
    StoreError::Corrupt { what, detail: detail.to_string() }
}
