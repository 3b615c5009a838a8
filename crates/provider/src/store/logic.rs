//! The session logic, written once over any [`Kv`]: every check-and-write of [`SessionStore`]
//! as one transaction.
//!
//! Storage backends are synchronous. The async methods reach a backend that blocks
//! ([`Kv::BLOCKS`]: a redb commit is an fsync, a PostgreSQL transaction a network round trip)
//! through [`tokio::task::spawn_blocking`], so none of that work runs on a tokio worker thread;
//! the in-memory backend only takes a lock and runs inline.

use std::{path::Path, sync::Arc};

use paystreams_program::receipt::DeliveryReceipt;

use super::{
    ATTEMPT_SWEEP, AcceptOutcome, BindOutcome, ClaimablePage, Kv, KvTxn, MAX_ATTEMPTS_KEPT, MemoryKv,
    REQUESTER_MAX_LEN, RedbKv, SESSIONS_PER_REQUESTER, SessionStore, StoreError, Table, decode_session, encode_session,
    migrate,
    record::{BoundEntry, decode_attempts, decode_ids, id_from, replay_key, stream_key_from},
};
use crate::session::{EndReason, Session, SessionId, SessionState, StreamKey, VaultKey};

/// The session logic over any [`Kv`].
#[derive(Debug, Default)]
pub struct KvStore<K: Kv> {
    /// Shared with the blocking tasks that run the backend's transactions.
    kv: Arc<K>,
}

impl<K: Kv> KvStore<K> {
    /// The store over an opened backend, brought to [`LAYOUT_VERSION`](super::LAYOUT_VERSION)
    /// first ([`migrate`](fn@migrate)). Synchronous like the backend: an async caller runs it
    /// through `spawn_blocking`.
    ///
    /// # Errors
    /// Storage failures, corrupt layout-1 data, or a store written by a newer version.
    pub fn with_kv(kv: K) -> Result<Self, StoreError> {
        migrate(&kv)?;
        Ok(Self { kv: Arc::new(kv) })
    }

    /// The backend.
    pub fn kv(&self) -> &K {
        &self.kv
    }
}

impl<K: Kv + 'static> KvStore<K> {
    /// Runs `op` on the backend: on tokio's blocking pool when the backend blocks
    /// ([`Kv::BLOCKS`]), inline otherwise. Needs a tokio runtime.
    async fn run<R: Send + 'static>(
        &self,
        op: impl FnOnce(&K) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        if !K::BLOCKS {
            return op(&self.kv);
        }
        let kv = Arc::clone(&self.kv);
        match tokio::task::spawn_blocking(move || op(&kv)).await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(StoreError::Database(format!(
                "session-store task cancelled ({e}): the runtime is shutting down; retry after restart"
            ))),
        }
    }
}

/// In-memory session store.
pub type MemoryStore = KvStore<MemoryKv>;
/// redb session store.
pub type RedbStore = KvStore<RedbKv>;

impl MemoryStore {
    #[must_use]
    pub fn new() -> Self {
        Self { kv: Arc::new(MemoryKv::default()) }
    }
}

impl RedbStore {
    /// Opens the file, converting a layout-1 store ([`migrate`](fn@migrate)). Blocks (file
    /// I/O and a commit): an async caller runs it through `spawn_blocking`.
    ///
    /// # Errors
    /// As [`RedbKv::open`] and [`KvStore::with_kv`].
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::with_kv(RedbKv::open(path)?)
    }
}

pub(super) fn get_bound(txn: &mut dyn KvTxn, stream: &StreamKey) -> Result<Option<BoundEntry>, StoreError> {
    txn.get(Table::Bound, &stream.to_key())?.map(|b| BoundEntry::decode(&b)).transpose()
}

pub(super) fn put_bound(txn: &mut dyn KvTxn, stream: &StreamKey, entry: BoundEntry) -> Result<(), StoreError> {
    match entry.encode() {
        Some(bytes) => txn.put(Table::Bound, &stream.to_key(), &bytes),
        None => txn.delete(Table::Bound, &stream.to_key()),
    }
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

/// Adds `id` as `requester`'s newest session, dropping the oldest beyond
/// [`SESSIONS_PER_REQUESTER`] (and its way back).
fn add_to_requester(txn: &mut dyn KvTxn, requester: &[u8], id: SessionId) -> Result<(), StoreError> {
    let mut ids = match txn.get(Table::Requesters, requester)? {
        Some(bytes) => decode_ids(&bytes)?,
        None => Vec::new(),
    };
    ids.retain(|other| *other != id);
    ids.push(id);
    let excess = ids.len().saturating_sub(SESSIONS_PER_REQUESTER);
    for dropped in ids.drain(..excess) {
        if txn.get(Table::RequesterOf, &dropped.0)?.as_deref() == Some(requester) {
            txn.delete(Table::RequesterOf, &dropped.0)?;
        }
    }
    txn.put(Table::Requesters, requester, &ids.iter().flat_map(|i| i.0).collect::<Vec<u8>>())?;
    txn.put(Table::RequesterOf, &id.0, requester)
}

/// Removes `id` from its requester's list (a purge).
fn remove_from_requester(txn: &mut dyn KvTxn, id: SessionId) -> Result<(), StoreError> {
    let Some(requester) = txn.get(Table::RequesterOf, &id.0)? else { return Ok(()) };
    txn.delete(Table::RequesterOf, &id.0)?;
    let Some(bytes) = txn.get(Table::Requesters, &requester)? else { return Ok(()) };
    let mut ids = decode_ids(&bytes)?;
    ids.retain(|other| *other != id);
    if ids.is_empty() {
        txn.delete(Table::Requesters, &requester)
    } else {
        txn.put(Table::Requesters, &requester, &ids.iter().flat_map(|i| i.0).collect::<Vec<u8>>())
    }
}

fn accept_sync(kv: &impl Kv, session: &Session, requester: &[u8], now: u64) -> Result<AcceptOutcome, StoreError> {
    if requester.is_empty() || requester.len() > REQUESTER_MAX_LEN {
        return Err(StoreError::Database(format!(
            "requester identity of {} bytes; 1 to {REQUESTER_MAX_LEN} are accepted",
            requester.len()
        )));
    }
    kv.transact(|txn| {
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
        txn.put(Table::Sessions, &session.id.0, &encode_session(session))?;
        txn.put(Table::Pending, &vault_key, &session.id.0)?;
        add_to_requester(txn, requester, session.id)?;
        Ok(AcceptOutcome::Accepted)
    })
}

fn bind_sync(kv: &impl Kv, id: SessionId, stream_id: u64) -> Result<BindOutcome, StoreError> {
    kv.transact(|txn| {
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
        put_bound(txn, &stream, BoundEntry { session: Some(id), claimable: Some(session.token_id) })?;
        session.state = SessionState::Bound { stream_id };
        put_session(txn, &session)?;
        Ok(BindOutcome::Bound)
    })
}

fn purge_sync(kv: &impl Kv, id: SessionId) -> Result<(), StoreError> {
    kv.transact(|txn| {
        let Some(session) = get_session(txn, id)? else { return Ok(()) };
        remove_from_requester(txn, id)?;
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

fn attempt_sync(kv: &impl Kv, vault: VaultKey, now: u64, window: u64) -> Result<u32, StoreError> {
    kv.transact(|txn| {
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

fn attempts_in_window(txn: &mut dyn KvTxn, vault: VaultKey, now: u64, window: u64) -> Result<u32, StoreError> {
    let count = match txn.get(Table::Attempts, &vault.to_key())? {
        Some(bytes) => decode_attempts(&bytes)?.iter().filter(|t| t.saturating_add(window) > now).count(),
        None => 0,
    };
    Ok(u32::try_from(count).unwrap_or(u32::MAX))
}

fn set_claimable_sync(kv: &impl Kv, stream: StreamKey, token: Option<[u8; 32]>) -> Result<(), StoreError> {
    kv.transact(|txn| {
        let entry = get_bound(txn, &stream)?.unwrap_or(BoundEntry { session: None, claimable: None });
        if token.is_none() {
            // Nothing left to claim: the receipt that would pay it goes too.
            txn.delete(Table::Receipts, &stream.to_key())?;
        }
        if entry.claimable == token {
            return Ok(());
        }
        put_bound(txn, &stream, BoundEntry { claimable: token, ..entry })
    })
}

fn get_receipt(txn: &mut dyn KvTxn, stream: &StreamKey) -> Result<Option<DeliveryReceipt>, StoreError> {
    txn.get(Table::Receipts, &stream.to_key())?
        .map(|bytes| borsh::from_slice(&bytes).map_err(|e| super::corrupt("delivery receipt", e)))
        .transpose()
}

fn put_receipt_sync(kv: &impl Kv, stream: StreamKey, receipt: &DeliveryReceipt) -> Result<bool, StoreError> {
    let bytes = borsh::to_vec(receipt).map_err(|e| StoreError::Database(format!("encoding a receipt: {e}")))?;
    kv.transact(|txn| {
        if get_receipt(txn, &stream)?
            .is_some_and(|kept| kept.body.acknowledged_total >= receipt.body.acknowledged_total)
        {
            return Ok(false);
        }
        txn.put(Table::Receipts, &stream.to_key(), &bytes)?;
        Ok(true)
    })
}

impl<K: Kv + 'static> SessionStore for KvStore<K> {
    async fn accept(&self, session: &Session, requester: &[u8], now: u64) -> Result<AcceptOutcome, StoreError> {
        let (session, requester) = (session.clone(), requester.to_vec());
        self.run(move |kv| accept_sync(kv, &session, &requester, now)).await
    }

    async fn session(&self, id: SessionId) -> Result<Option<Session>, StoreError> {
        self.run(move |kv| kv.read(|txn| get_session(txn, id))).await
    }

    async fn pending(&self, vault: VaultKey) -> Result<Option<Session>, StoreError> {
        self.run(move |kv| {
            kv.read(|txn| match txn.get(Table::Pending, &vault.to_key())? {
                Some(id) => get_session(txn, id_from(&id)?),
                None => Ok(None),
            })
        })
        .await
    }

    async fn requester_sessions(&self, requester: &[u8]) -> Result<Vec<Session>, StoreError> {
        if requester.is_empty() || requester.len() > REQUESTER_MAX_LEN {
            return Ok(Vec::new());
        }
        let requester = requester.to_vec();
        self.run(move |kv| {
            kv.read(|txn| {
                let Some(bytes) = txn.get(Table::Requesters, &requester)? else { return Ok(Vec::new()) };
                let mut out = Vec::new();
                for id in decode_ids(&bytes)? {
                    out.extend(get_session(txn, id)?);
                }
                Ok(out)
            })
        })
        .await
    }

    async fn bind_stream(&self, id: SessionId, stream_id: u64) -> Result<BindOutcome, StoreError> {
        self.run(move |kv| bind_sync(kv, id, stream_id)).await
    }

    async fn bound_session(&self, stream: StreamKey) -> Result<Option<SessionId>, StoreError> {
        self.run(move |kv| kv.read(|txn| Ok(get_bound(txn, &stream)?.and_then(|e| e.session)))).await
    }

    async fn seen_request(&self, id: SessionId, digest: [u8; 32]) -> Result<bool, StoreError> {
        self.run(move |kv| kv.read(|txn| Ok(txn.get(Table::Replay, &replay_key(id, &digest))?.is_some()))).await
    }

    async fn record_request(&self, id: SessionId, digest: [u8; 32]) -> Result<bool, StoreError> {
        self.run(move |kv| {
            kv.transact(|txn| {
                let key = replay_key(id, &digest);
                if txn.get(Table::Replay, &key)?.is_some() {
                    return Ok(false);
                }
                txn.put(Table::Replay, &key, &[])?;
                Ok(true)
            })
        })
        .await
    }

    async fn record_attempt(&self, vault: VaultKey, now: u64, window: u64) -> Result<u32, StoreError> {
        self.run(move |kv| attempt_sync(kv, vault, now, window)).await
    }

    async fn set_matching_stream(&self, id: SessionId, stream_id: u64, at: u64) -> Result<bool, StoreError> {
        self.run(move |kv| {
            kv.transact(|txn| {
                let Some(mut session) = get_session(txn, id)? else { return Ok(false) };
                if !session.is_pending() || session.matching_stream.is_some() {
                    return Ok(false);
                }
                session.matching_stream = Some((stream_id, at));
                put_session(txn, &session)?;
                Ok(true)
            })
        })
        .await
    }

    async fn update(&self, session: &Session) -> Result<(), StoreError> {
        let session = session.clone();
        self.run(move |kv| kv.transact(|txn| put_session(txn, &session))).await
    }

    async fn sessions(&self) -> Result<Vec<Session>, StoreError> {
        self.run(|kv| {
            kv.read(|txn| {
                txn.scan(Table::Sessions, &[], usize::MAX)?
                    .iter()
                    .map(|(k, v)| decode_session(id_from(k)?, v))
                    .collect()
            })
        })
        .await
    }

    async fn purge(&self, id: SessionId) -> Result<(), StoreError> {
        self.run(move |kv| purge_sync(kv, id)).await
    }

    async fn claimables(&self) -> Result<Vec<(StreamKey, [u8; 32])>, StoreError> {
        self.run(|kv| {
            kv.read(|txn| {
                let mut out = Vec::new();
                for (key, value) in txn.scan(Table::Bound, &[], usize::MAX)? {
                    if let Some(token) = BoundEntry::decode(&value)?.claimable {
                        out.push((stream_key_from(&key)?, token));
                    }
                }
                Ok(out)
            })
        })
        .await
    }

    async fn add_claimable(&self, stream: StreamKey, token_id: [u8; 32]) -> Result<(), StoreError> {
        self.run(move |kv| set_claimable_sync(kv, stream, Some(token_id))).await
    }

    async fn remove_claimable(&self, stream: StreamKey) -> Result<(), StoreError> {
        self.run(move |kv| set_claimable_sync(kv, stream, None)).await
    }

    async fn put_receipt(&self, stream: StreamKey, receipt: &DeliveryReceipt) -> Result<bool, StoreError> {
        let receipt = *receipt;
        self.run(move |kv| put_receipt_sync(kv, stream, &receipt)).await
    }

    async fn latest_receipt(&self, stream: StreamKey) -> Result<Option<DeliveryReceipt>, StoreError> {
        self.run(move |kv| kv.read(|txn| get_receipt(txn, &stream))).await
    }

    async fn attempts(&self, vault: VaultKey, now: u64, window: u64) -> Result<u32, StoreError> {
        self.run(move |kv| kv.read(|txn| attempts_in_window(txn, vault, now, window))).await
    }

    async fn sessions_after(&self, after: Option<SessionId>, limit: usize) -> Result<Vec<Session>, StoreError> {
        self.run(move |kv| {
            kv.read(|txn| {
                let entries = match after {
                    // The first key after `after`: `after` itself, skipped below.
                    Some(after) => txn.scan_from(Table::Sessions, &after.0, limit.saturating_add(1))?,
                    None => txn.scan_from(Table::Sessions, &[0; 32], limit)?,
                };
                entries
                    .iter()
                    .filter(|(k, _)| after.is_none_or(|a| k.as_slice() != a.0.as_slice()))
                    .take(limit)
                    .map(|(k, v)| decode_session(id_from(k)?, v))
                    .collect()
            })
        })
        .await
    }

    async fn claimables_after(&self, after: Option<StreamKey>, limit: usize) -> Result<ClaimablePage, StoreError> {
        self.run(move |kv| {
            kv.read(|txn| {
                let entries = match after {
                    Some(after) => txn.scan_from(Table::Bound, &after.to_key(), limit.saturating_add(1))?,
                    None => txn.scan_from(Table::Bound, &[0; 48], limit)?,
                };
                let after = after.map(|a| a.to_key());
                let mut streams = Vec::new();
                let mut examined = 0_usize;
                let mut last = None;
                for (key, value) in entries.iter().filter(|(k, _)| after.as_ref() != Some(k)).take(limit) {
                    examined = examined.saturating_add(1);
                    let stream = stream_key_from(key)?;
                    last = Some(stream);
                    if let Some(token) = BoundEntry::decode(value)?.claimable {
                        streams.push((stream, token));
                    }
                }
                Ok(ClaimablePage { streams, next: if examined < limit { None } else { last } })
            })
        })
        .await
    }

    async fn claimable(&self, stream: StreamKey) -> Result<Option<[u8; 32]>, StoreError> {
        self.run(move |kv| kv.read(|txn| Ok(get_bound(txn, &stream)?.and_then(|e| e.claimable)))).await
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::Mutex, thread::ThreadId};

    use super::*;
    use crate::store::suite::session;

    /// A backend that blocks the way an async database client does inside a `Kv` call
    /// (`Handle::block_on`, which panics on an async thread), recording the threads it ran on.
    #[derive(Default)]
    struct BlockingKv {
        inner: MemoryKv,
        threads: Mutex<Vec<ThreadId>>,
    }

    impl Kv for BlockingKv {
        fn transact<R: Send>(
            &self,
            f: impl Fn(&mut dyn KvTxn) -> Result<R, StoreError> + Sync,
        ) -> Result<R, StoreError> {
            self.threads.lock()?.push(std::thread::current().id());
            tokio::runtime::Handle::current().block_on(tokio::task::yield_now());
            self.inner.transact(f)
        }
    }

    #[tokio::test]
    async fn a_matching_stream_is_recorded_only_while_pending() {
        let store = MemoryStore::new();
        let a = session(10, 0, 100);
        assert_eq!(store.accept(&a, b"peer", 50).await.expect("accept"), AcceptOutcome::Accepted);
        assert!(store.set_matching_stream(a.id, 0, 60).await.expect("set"));
        assert!(!store.set_matching_stream(a.id, 1, 61).await.expect("set"), "the first matching stream stays");
        assert_eq!(store.session(a.id).await.expect("read").expect("kept").matching_stream, Some((0, 60)));
        // A session bound meanwhile is not written back as pending.
        let b = session(11, 1, 100);
        assert_eq!(store.accept(&b, b"peer", 50).await.expect("accept"), AcceptOutcome::Accepted);
        assert_eq!(store.bind_stream(b.id, 0).await.expect("bind"), BindOutcome::Bound);
        assert!(!store.set_matching_stream(b.id, 0, 60).await.expect("set"));
        let bound = store.session(b.id).await.expect("read").expect("kept");
        assert_eq!((bound.state, bound.matching_stream), (SessionState::Bound { stream_id: 0 }, None));
        assert!(!store.set_matching_stream(SessionId([99; 32]), 0, 60).await.expect("set"), "no such session");
    }

    #[tokio::test]
    async fn a_blocking_backend_runs_off_the_async_thread() {
        let store = tokio::task::spawn_blocking(|| KvStore::with_kv(BlockingKv::default()))
            .await
            .expect("open task")
            .expect("open");
        let s = session(10, 0, 100);
        assert_eq!(store.accept(&s, b"peer", 50).await.expect("accept"), AcceptOutcome::Accepted);
        assert!(store.record_request(s.id, [9; 32]).await.expect("record"));
        assert!(store.seen_request(s.id, [9; 32]).await.expect("seen"));
        assert_eq!(store.sessions().await.expect("sessions"), vec![s]);
        let threads = store.kv().threads.lock().expect("threads").clone();
        assert_eq!(threads.len(), 6, "migration (read, write), accept, record, seen, sessions");
        assert!(!threads.contains(&std::thread::current().id()), "a backend call ran on the async thread");
    }

    #[tokio::test]
    async fn requesters_keep_their_newest_sessions_and_lose_them_on_purge() {
        let store = MemoryStore::new();
        let peer = b"peer-a".as_slice();
        let mut ids = Vec::new();
        for i in 0..10_u8 {
            let s = session(100 + i, u64::from(i), 100);
            assert_eq!(store.accept(&s, peer, 0).await.expect("accept"), AcceptOutcome::Accepted);
            ids.push(s.id);
        }
        let kept: Vec<SessionId> = store.requester_sessions(peer).await.expect("read").iter().map(|s| s.id).collect();
        assert_eq!(kept, ids.get(2..).expect("ten").to_vec(), "the newest eight, newest last");
        assert!(store.requester_sessions(b"peer-b").await.expect("read").is_empty());
        assert_eq!(store.kv().len(Table::RequesterOf).expect("len"), SESSIONS_PER_REQUESTER);
        // Purging a session removes it from its requester; the last one removes the entry.
        for id in &ids {
            store.purge(*id).await.expect("purge");
        }
        assert!(store.requester_sessions(peer).await.expect("read").is_empty());
        assert_eq!(store.kv().len(Table::Requesters).expect("len"), 0);
        assert_eq!(store.kv().len(Table::RequesterOf).expect("len"), 0);
        // Requester identities are bounded; nothing is written for a refused one.
        let long = vec![1_u8; REQUESTER_MAX_LEN + 1];
        assert!(store.accept(&session(200, 50, 100), &long, 0).await.is_err());
        assert!(store.accept(&session(200, 50, 100), &[], 0).await.is_err());
        assert!(store.session(SessionId([200; 32])).await.expect("read").is_none());
        assert!(store.requester_sessions(&long).await.expect("read").is_empty());
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
}
