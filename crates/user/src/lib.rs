//! LIP-155 stream-backed eligibility, user side: proposals that never promise more than the
//! vault can back, one fresh session key per proposal, stream creation before the deadline,
//! reactions to every status and termination, and stream monitoring.
//!
//! Durable: sessions (with their keys), the promise ledger and the attempt history live in a
//! [`UserStore`] (one redb file per owner key), written before any of it is shown to a
//! provider or the chain, so a process killed at any point loses no promise and never
//! double-promises a vault; [`User::open`] continues the sessions a previous process left.
//!
//! Sessions are keyed by (provider, vault id, service id). Methods that take only a provider
//! act on that provider's *current* session: the one last proposed or [`User::select`]ed.
//!
//! Transport-agnostic: [`User::propose`] and [`User::proof`] return `EligibilityProof` bytes to
//! put in a request; the caller hands each response's status (and termination, if any) back to
//! [`User::on_proposal_status`] / [`User::on_proof_status`] and follows the returned
//! [`Reaction`].

#![deny(clippy::arithmetic_side_effects, clippy::indexing_slicing)]

pub mod ledger;
pub mod receipts;
pub mod store;

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, MutexGuard},
};

use paystreams_lez_core::{AccountId, crypto::SecretKey};
use paystreams_program::{
    client::{self, Call, VaultRef},
    payment_streams_program_id,
    state::StreamState,
};
use paystreams_rpc::chain_view::{ChainError, ChainView, ChainWriter, SubmitOutcome};
use paystreams_wire::{
    EligibilityProof, EligibilityStatus, ProviderAdvert, RequestDigest, ServiceTermination, Signer, StatusCode,
    StreamParams, TerminationType, VaultOwnerAuthBody, WireError,
    recommended::{PARAMS_ATTEMPT_WINDOW_SECS, PARAMS_ATTEMPTS_MAX},
    sign_proposal, sign_stream_proof, sign_stream_proof_with,
};
use tracing::{info, warn};

pub use ledger::{Overpromise, Promise, PromiseLedger};
pub use receipts::{ReceiptBook, extensions_for, sign_receipt};
pub use store::{Phase, SessionRecord, Snapshot, StoreError, UserStore};

/// Why the user engine refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error(
        "a proposal to this provider from this vault is pending until chain time {0}; a new one can be sent after that"
    )]
    ProposalPending(u64),
    #[error(
        "retry cap reached: {PARAMS_ATTEMPTS_MAX} attempts in {PARAMS_ATTEMPT_WINDOW_SECS} s; retry after chain time {0}"
    )]
    RetryCap(u64),
    #[error("the provider does not accept this token")]
    TokenNotAccepted,
    #[error("the provider does not serve this service id")]
    ServiceNotServed,
    #[error("no such vault")]
    NoVault,
    #[error("cannot promise: {0}")]
    Overpromise(#[from] Overpromise),
    #[error("no session with this provider")]
    NoSession,
    #[error("no stream yet for this session")]
    NoStream,
    #[error("service paused until chain time {0}")]
    Paused(u64),
    #[error("create_stream_deadline {0} passed before the stream could be created")]
    DeadlineMissed(u64),
    #[error("engine lock poisoned")]
    Poisoned,
    #[error("a session with this provider for this vault and service is open on stream {0}; use it or close it first")]
    SessionOpen(u64),
    #[error("a stored session key is not a valid secp256k1 key")]
    BadSessionKey,
}

/// What the proposal wants; the engine raises rate and allocation to the provider's minimums.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Terms {
    pub vault_id: u64,
    pub token_id: [u8; 32],
    pub service_id: String,
    pub rate: u64,
    pub allocation: u64,
}

/// Automatic top-up: when an ACTIVE stream has at most `when_remaining_secs` left, add `amount`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct AutoTopUp {
    pub when_remaining_secs: u64,
    pub amount: u128,
}

/// Options.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct UserConfig {
    /// Deadline offset the user proposes (capped by the provider's delay). Short enough to be
    /// honest, long enough to get the create-stream transaction in.
    pub deadline_delay_secs: u64,
    /// Warn when a stream has this little time left.
    pub warn_before_secs: u64,
    pub auto_top_up: Option<AutoTopUp>,
    /// Close a depleted stream (recovering nothing is lost: accrued stays claimable).
    pub auto_close_depleted: bool,
    /// Pause the stream on chain on a TEMPORARY termination (and resume it after).
    pub pause_on_temporary: bool,
    /// Create streams with delivery receipts where the provider accepts them (always where it
    /// requires them); the caller then sends [`User::receipt`] after each response.
    pub prefer_receipts: bool,
}

impl Default for UserConfig {
    fn default() -> Self {
        Self {
            deadline_delay_secs: 120,
            warn_before_secs: 300,
            auto_top_up: None,
            auto_close_depleted: false,
            pause_on_temporary: true,
            prefer_receipts: false,
        }
    }
}

/// What the caller should do next.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Reaction {
    /// Served.
    Served,
    /// Proposal accepted and the matching stream created on chain.
    StreamCreated { stream_id: u64 },
    /// PARAMS_REJECTED: adjust (the description says how) and propose again within the cap.
    Adjust { desc: String },
    /// PROOF_INVALID on a proposal: the proposal is unusable as built (wrong vault/key/token).
    Abandon { desc: String },
    /// PROOF_INVALID on a proof: resend with a fresh request (new request id).
    ResendFresh { desc: String },
    /// STREAM_NOT_ACTIVE: the stream is not ACTIVE; resume or top it up, or retry later.
    StreamInactive { state: Option<StreamState>, desc: String },
    /// TEMPORARY termination: wait (the stream was paused if configured).
    WaitUntil { resume_after: u64 },
    /// PERMANENT termination (or session ended): the stream was closed and funds recovered.
    Closed { stream_id: Option<u64> },
    /// A pushed termination for a session this engine does not know: nothing to do.
    Ignored,
}

/// A monitoring notice.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Notice {
    DepletionSoon { provider: [u8; 32], stream_id: u64, at: u64 },
    ToppedUp { provider: [u8; 32], stream_id: u64, amount: u128 },
    Closed { provider: [u8; 32], stream_id: u64 },
}

/// A session as the engine and the CLI show it.
pub type Session = SessionRecord;

fn attempts_of(snapshot: &mut Snapshot, key: store::AttemptKey) -> &mut Vec<u64> {
    let index = match snapshot.attempts.iter().position(|(k, _)| *k == key) {
        Some(i) => i,
        None => {
            snapshot.attempts.push((key, Vec::new()));
            snapshot.attempts.len().saturating_sub(1)
        }
    };
    #[expect(clippy::indexing_slicing, reason = "index found or pushed just above")]
    &mut snapshot.attempts[index].1
}

/// The promise ledger implied by the sessions that still hold a promise.
fn ledger_of(owner: [u8; 32], snapshot: &Snapshot, now: u64) -> PromiseLedger {
    let mut ledger = PromiseLedger::default();
    for s in snapshot.sessions.iter().filter(|s| s.phase.holds_promise()) {
        let promise = Promise { allocation: u128::from(s.allocation), deadline: s.deadline };
        // Recorded promises fitted when made: `u128::MAX` only skips the check while rebuilding.
        let _fits = ledger.promise((owner, s.vault_id), s.provider, promise, u128::MAX, now);
    }
    ledger
}

/// The user engine for one owner key.
pub struct User<C> {
    owner: SecretKey,
    chain: C,
    config: UserConfig,
    store: UserStore,
    state: Mutex<Snapshot>,
    /// Session signers derived once per session (by session id).
    signers: Mutex<BTreeMap<[u8; 32], Arc<Signer>>>,
    /// Serialises state changes: build, commit, then publish.
    writer: tokio::sync::Mutex<()>,
    /// Serialises the engine's own transactions (signed with the owner key, each waited for
    /// until it is included): concurrent paths, such as a pushed termination and the next
    /// request's, would otherwise sign the same nonce, and the node would refuse the second as
    /// already pending.
    submitting: tokio::sync::Mutex<()>,
}

impl<C> std::fmt::Debug for User<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("owner", &self.owner.account_id())
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl<C: ChainView + ChainWriter> User<C> {
    /// An engine whose state lives in memory only (tests, one-shot tools).
    #[must_use]
    pub fn new(owner: SecretKey, chain: C, config: UserConfig) -> Self {
        Self::with_snapshot(owner, chain, config, UserStore::memory(), Snapshot::default())
    }

    fn with_snapshot(owner: SecretKey, chain: C, config: UserConfig, store: UserStore, snapshot: Snapshot) -> Self {
        Self {
            owner,
            chain,
            config,
            store,
            state: Mutex::new(snapshot),
            signers: Mutex::new(BTreeMap::new()),
            writer: tokio::sync::Mutex::new(()),
            submitting: tokio::sync::Mutex::new(()),
        }
    }

    /// An engine over `store`: loads what a previous process left and reconciles it against
    /// the chain ([`User::reconcile`]).
    ///
    /// # Errors
    /// Store or chain failures.
    pub async fn open(owner: SecretKey, chain: C, config: UserConfig, store: UserStore) -> Result<Self, UserError> {
        let loader = store.clone();
        let snapshot =
            tokio::task::spawn_blocking(move || loader.load()).await.map_err(|e| StoreError::Task(e.to_string()))??;
        let user = Self::with_snapshot(owner, chain, config, store, snapshot);
        user.reconcile().await?;
        Ok(user)
    }

    fn state(&self) -> Result<MutexGuard<'_, Snapshot>, UserError> {
        self.state.lock().map_err(|_| UserError::Poisoned)
    }

    fn snapshot(&self) -> Result<Snapshot, UserError> {
        Ok(self.state()?.clone())
    }

    /// Applies `change` to a copy of the state, commits it durably, then publishes it. A
    /// failing `change` or commit leaves the state as it was.
    async fn update<T>(&self, change: impl FnOnce(&mut Snapshot) -> Result<T, UserError>) -> Result<T, UserError> {
        let _writer = self.writer.lock().await;
        let mut next = self.snapshot()?;
        let out = change(&mut next)?;
        self.store.save_async(next.clone()).await?;
        *self.state()? = next;
        Ok(out)
    }

    fn owner_id(&self) -> AccountId {
        self.owner.account_id()
    }

    /// The store behind this engine.
    #[must_use]
    pub const fn store(&self) -> &UserStore {
        &self.store
    }

    fn vault_ref(&self, vault_id: u64, token_id: [u8; 32]) -> VaultRef {
        VaultRef { program_id: payment_streams_program_id(), owner: self.owner_id(), vault_id, token_id }
    }

    /// Every session, in stored order.
    ///
    /// # Errors
    /// A poisoned lock.
    pub fn sessions(&self) -> Result<Vec<Session>, UserError> {
        Ok(self.state()?.sessions.clone())
    }

    /// The current session with `provider` (last proposed or selected).
    ///
    /// # Errors
    /// A poisoned lock.
    pub fn current(&self, provider: &[u8; 32]) -> Result<Option<Session>, UserError> {
        Ok(self.state()?.sessions.iter().filter(|s| s.provider == *provider).max_by_key(|s| s.last_used).cloned())
    }

    /// The session with `provider` for `vault_id` and `service_id`, if any.
    ///
    /// # Errors
    /// A poisoned lock.
    pub fn find(&self, provider: &[u8; 32], vault_id: u64, service_id: &str) -> Result<Option<Session>, UserError> {
        Ok(self
            .state()?
            .sessions
            .iter()
            .filter(|s| s.provider == *provider && s.vault_id == vault_id && s.service_id == service_id)
            .max_by_key(|s| s.last_used)
            .cloned())
    }

    /// Makes the session with `provider` for `vault_id` and `service_id` the provider's
    /// current one; `false` when there is none.
    ///
    /// # Errors
    /// Store failures.
    pub async fn select(&self, provider: &[u8; 32], vault_id: u64, service_id: &str) -> Result<bool, UserError> {
        let matches =
            |s: &SessionRecord| s.provider == *provider && s.vault_id == vault_id && s.service_id == service_id;
        if !self.state()?.sessions.iter().any(matches) {
            return Ok(false);
        }
        self.update(|snap| {
            snap.clock = snap.clock.saturating_add(1);
            let clock = snap.clock;
            for s in snap.sessions.iter_mut().filter(|s| matches(s)) {
                s.last_used = clock;
            }
            Ok(true)
        })
        .await
    }

    /// The stream of the current session with `provider`, if it exists.
    ///
    /// # Errors
    /// A poisoned lock.
    pub fn stream_of(&self, provider: &[u8; 32]) -> Result<Option<u64>, UserError> {
        Ok(self.current(provider)?.and_then(|s| s.phase.stream_id()))
    }

    /// The libp2p ed25519 secret this owner uses towards `provider`: generated on first use,
    /// kept in the store, never shared with another provider (so providers cannot link the
    /// user across each other, and each recognises it across restarts).
    ///
    /// # Errors
    /// Store failures.
    pub async fn transport_identity(&self, provider: &[u8; 32]) -> Result<[u8; 32], UserError> {
        if let Some((_, secret)) = self.state()?.identities.iter().find(|(p, _)| p == provider) {
            return Ok(*secret);
        }
        let fresh = SecretKey::generate().to_bytes();
        self.update(|snap| {
            if let Some((_, secret)) = snap.identities.iter().find(|(p, _)| p == provider) {
                return Ok(*secret);
            }
            snap.identities.push((*provider, fresh));
            Ok(fresh)
        })
        .await
    }

    /// Settles what a previous process left half-done: a session recorded as creating stream
    /// N becomes streaming when stream N exists and names the provider (the transaction got
    /// in), is created now when the deadline allows and N is still the vault's next id, and is
    /// dropped (its promise released) once the deadline passed without it; lapsed proposals
    /// are dropped; sessions whose stream is closed on chain are forgotten.
    ///
    /// # Errors
    /// Chain or store failures.
    pub async fn reconcile(&self) -> Result<(), UserError> {
        let now = self.chain.head().await?.time_secs;
        let owner = self.owner_id();
        for s in self.sessions()? {
            match s.phase {
                Phase::Proposed if now > s.deadline => self.drop_session(&s.session_id).await?,
                Phase::Proposed => {}
                Phase::Creating { stream_id } => {
                    let view = self.chain.stream_fresh(&owner, s.vault_id, stream_id).await?;
                    match view {
                        Some(v) if v.provider.0 == s.provider && v.state != StreamState::Closed => {
                            self.set_phase(&s.session_id, Phase::Streaming { stream_id }).await?;
                        }
                        Some(_) => self.drop_session(&s.session_id).await?,
                        None if now > s.deadline => self.drop_session(&s.session_id).await?,
                        None => {
                            let next = self.chain.vault(&owner, s.vault_id).await?.map(|v| v.next_stream_id);
                            if next == Some(stream_id) && self.submit(&self.create_call(&s, stream_id)).await? {
                                self.set_phase(&s.session_id, Phase::Streaming { stream_id }).await?;
                            } else {
                                self.drop_session(&s.session_id).await?;
                            }
                        }
                    }
                }
                Phase::Streaming { stream_id } | Phase::Paused { stream_id, .. } => {
                    let view = self.chain.stream_fresh(&owner, s.vault_id, stream_id).await?;
                    if view.is_none_or(|v| v.state == StreamState::Closed) {
                        self.drop_session(&s.session_id).await?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Whether the current session with `provider` can back a request now: its stream is
    /// ACTIVE (or paused by a TEMPORARY termination, resumed on the next proof). Applies the
    /// auto top-up rule first; resumes a stream paused on chain that still has funds (the
    /// caller is about to ask for service); forgets a session whose stream is closed; closes
    /// (and forgets) one whose stream is spent when no top-up applies, so the caller proposes
    /// anew.
    ///
    /// # Errors
    /// Chain or store failures.
    pub async fn usable(&self, provider: &[u8; 32]) -> Result<bool, UserError> {
        let Some(s) = self.current(provider)? else { return Ok(false) };
        let Some(stream_id) = s.phase.stream_id() else { return Ok(false) };
        let owner = self.owner_id();
        let Some(mut view) = self.chain.stream_fresh(&owner, s.vault_id, stream_id).await? else {
            self.drop_session(&s.session_id).await?;
            return Ok(false);
        };
        if view.state == StreamState::Closed {
            self.drop_session(&s.session_id).await?;
            return Ok(false);
        }
        let now = self.chain.head().await?.time_secs;
        let vault_ref = self.vault_ref(s.vault_id, s.token_id);
        if let Some(rule) = self.config.auto_top_up {
            let remaining = view.planned_stop.map_or(0, |stop| stop.saturating_sub(now));
            let low = view.unaccrued.0 == 0 || remaining <= rule.when_remaining_secs;
            if low && self.submit(&client::top_up_stream(&vault_ref, stream_id, rule.amount)).await? {
                info!(stream_id, amount = rule.amount, "stream topped up");
                if let Some(v) = self.chain.stream_fresh(&owner, s.vault_id, stream_id).await? {
                    view = v;
                }
            }
        }
        let paused_by_us = matches!(s.phase, Phase::Paused { .. });
        if view.state == StreamState::Paused && !paused_by_us {
            if view.unaccrued.0 > 0 && self.submit(&client::resume_stream(&vault_ref, stream_id)).await? {
                return Ok(true);
            }
            // Depleted (or paused and not resumable): nothing more to stream on it.
            self.close_session(&s.session_id).await?;
            return Ok(false);
        }
        Ok(true)
    }

    async fn set_phase(&self, session_id: &[u8; 32], phase: Phase) -> Result<(), UserError> {
        self.update(|snap| {
            if let Some(s) = snap.sessions.iter_mut().find(|s| s.session_id == *session_id) {
                s.phase = phase;
            }
            Ok(())
        })
        .await
    }

    /// Forgets a session (and its key and promise) without touching the chain.
    async fn drop_session(&self, session_id: &[u8; 32]) -> Result<(), UserError> {
        self.update(|snap| {
            snap.sessions.retain(|s| s.session_id != *session_id);
            Ok(())
        })
        .await?;
        self.signers.lock().map_err(|_| UserError::Poisoned)?.remove(session_id);
        Ok(())
    }

    fn create_call(&self, s: &SessionRecord, stream_id: u64) -> Call {
        client::create_stream(
            &self.vault_ref(s.vault_id, s.token_id),
            stream_id,
            AccountId(s.provider),
            s.rate,
            u128::from(s.allocation),
            s.extensions,
        )
    }

    /// Builds a signed proposal to `advert`'s provider: `EligibilityProof` bytes for the first
    /// request. Raises rate and allocation to the provider's minimums, proposes a deadline inside
    /// its band, refuses while a proposal from this vault to it is pending, past the retry cap
    /// (refused proposals only), while a session for the same vault and service is streaming,
    /// or when the vault cannot back the allocation on top of its other outstanding promises.
    /// The session (phase Proposed), its key and its promise are committed in one transaction
    /// before the bytes are returned.
    ///
    /// # Errors
    /// A [`UserError`]; nothing is promised then.
    pub async fn propose(&self, advert: &ProviderAdvert, terms: &Terms) -> Result<Vec<u8>, UserError> {
        let provider = advert.provider_id;
        let now = self.chain.head().await?.time_secs;
        let token = advert.policy.token(&terms.token_id).ok_or(UserError::TokenNotAccepted)?;
        if !advert.service_ids.contains(&terms.service_id) {
            return Err(UserError::ServiceNotServed);
        }
        let vault = self.chain.vault(&self.owner_id(), terms.vault_id).await?.ok_or(UserError::NoVault)?;
        let mut adjusted = terms.clone();
        adjusted.rate = terms.rate.max(token.min_rate);
        adjusted.allocation = terms.allocation.max(token.min_allocation);
        let delay = self.config.deadline_delay_secs.min(advert.policy.max_create_stream_deadline_delay);
        let deadline = now.saturating_add(delay);
        let session_key = SecretKey::generate();
        let params = StreamParams {
            service_id: adjusted.service_id.as_bytes().to_vec(),
            stream_rate: adjusted.rate,
            allocation: adjusted.allocation,
            create_stream_deadline: deadline,
        };
        let proposal = sign_proposal(
            &self.owner,
            terms.vault_id,
            provider,
            terms.token_id,
            params,
            session_key.public_key().to_bytes(),
            None,
        )?;
        let session_id = VaultOwnerAuthBody::from_proposal(&proposal)?.digest();
        let extensions =
            receipts::extensions_for(advert, &session_key.public_key().to_bytes(), self.config.prefer_receipts);
        let owner = self.owner_id().0;
        self.update(|snap| {
            // A lapsed proposal for this vault and provider never got its stream: drop it.
            snap.sessions.retain(|s| {
                !(s.provider == provider
                    && s.vault_id == terms.vault_id
                    && s.phase == Phase::Proposed
                    && now > s.deadline)
            });
            if let Some(s) = snap.sessions.iter().find(|s| {
                s.provider == provider && s.vault_id == terms.vault_id && s.phase.holds_promise() && s.deadline >= now
            }) {
                return Err(UserError::ProposalPending(s.deadline));
            }
            if let Some(stream_id) = snap
                .sessions
                .iter()
                .find(|s| s.provider == provider && s.vault_id == terms.vault_id && s.service_id == terms.service_id)
                .and_then(|s| s.phase.stream_id())
            {
                return Err(UserError::SessionOpen(stream_id));
            }
            let attempts = attempts_of(snap, (terms.vault_id, provider));
            attempts.retain(|t| t.saturating_add(PARAMS_ATTEMPT_WINDOW_SECS) > now);
            if attempts.len() >= usize::try_from(PARAMS_ATTEMPTS_MAX).unwrap_or(usize::MAX) {
                let retry_after = attempts.first().map_or(now, |t| t.saturating_add(PARAMS_ATTEMPT_WINDOW_SECS));
                return Err(UserError::RetryCap(retry_after));
            }
            snap.attempts.retain(|(_, times)| !times.is_empty());
            let mut ledger = ledger_of(owner, snap, now);
            ledger.promise(
                (owner, terms.vault_id),
                provider,
                Promise { allocation: u128::from(adjusted.allocation), deadline },
                vault.unallocated.0,
                now,
            )?;
            snap.clock = snap.clock.saturating_add(1);
            snap.sessions.push(SessionRecord {
                provider,
                vault_id: terms.vault_id,
                token_id: terms.token_id,
                service_id: adjusted.service_id.clone(),
                rate: adjusted.rate,
                allocation: adjusted.allocation,
                session_id,
                session_key: session_key.to_bytes(),
                deadline,
                phase: Phase::Proposed,
                last_used: snap.clock,
                extensions,
                receipts: ReceiptBook::default(),
            });
            Ok(())
        })
        .await?;
        Ok(EligibilityProof::Proposal(proposal).encode())
    }

    async fn record_refusal(&self, s: &SessionRecord) -> Result<(), UserError> {
        let now = self.chain.head().await?.time_secs;
        self.update(|snap| {
            snap.sessions.retain(|x| x.session_id != s.session_id);
            let attempts = attempts_of(snap, (s.vault_id, s.provider));
            attempts.retain(|t| t.saturating_add(PARAMS_ATTEMPT_WINDOW_SECS) > now);
            attempts.push(now);
            Ok(())
        })
        .await
    }

    async fn submit(&self, call: &Call) -> Result<bool, UserError> {
        let _turn = self.submitting.lock().await;
        self.submit_in_turn(call).await
    }

    /// [`User::submit`] for a caller that holds the `submitting` turn.
    async fn submit_in_turn(&self, call: &Call) -> Result<bool, UserError> {
        match self.chain.submit(call, &[&self.owner]).await? {
            SubmitOutcome::Included { .. } => Ok(true),
            SubmitOutcome::Failed { code, name } => {
                warn!(code, name, "transaction refused");
                Ok(false)
            }
        }
    }

    fn proposed(&self, provider: &[u8; 32]) -> Result<SessionRecord, UserError> {
        self.current(provider)?.filter(|s| s.phase == Phase::Proposed).ok_or(UserError::NoSession)
    }

    /// Reacts to the response to a proposal. On OK records "creating stream N", then creates
    /// the matching stream (before the deadline), which releases the promise. A refused
    /// proposal (PARAMS_REJECTED) counts towards the attempt cap; nothing else does.
    ///
    /// # Errors
    /// Chain or store failures, or a deadline already passed.
    pub async fn on_proposal_status(
        &self,
        provider: &[u8; 32],
        status: &EligibilityStatus,
        termination: Option<ServiceTermination>,
    ) -> Result<Reaction, UserError> {
        let session = self.proposed(provider)?;
        let desc = status.status_desc.clone();
        match status.code() {
            Some(StatusCode::Ok) => {}
            Some(StatusCode::ParamsRejected) => {
                if let Some(t) = termination.filter(|t| t.termination_type == TerminationType::Temporary) {
                    self.drop_session(&session.session_id).await?;
                    return Ok(Reaction::WaitUntil { resume_after: t.resume_after });
                }
                self.record_refusal(&session).await?;
                return Ok(Reaction::Adjust { desc });
            }
            Some(StatusCode::StreamNotActive) => {
                self.drop_session(&session.session_id).await?;
                return Ok(match termination {
                    Some(t) if t.termination_type == TerminationType::Temporary => {
                        Reaction::WaitUntil { resume_after: t.resume_after }
                    }
                    _ => Reaction::StreamInactive { state: None, desc },
                });
            }
            Some(StatusCode::ProofInvalid) | None => {
                self.drop_session(&session.session_id).await?;
                return Ok(Reaction::Abandon { desc });
            }
        }
        let now = self.chain.head().await?.time_secs;
        if now > session.deadline {
            self.drop_session(&session.session_id).await?;
            return Err(UserError::DeadlineMissed(session.deadline));
        }
        let vault = self.chain.vault(&self.owner_id(), session.vault_id).await?.ok_or(UserError::NoVault)?;
        let stream_id = vault.next_stream_id;
        // Recorded before the transaction: a process killed now finds the stream (or not) on
        // open and settles the session either way.
        self.set_phase(&session.session_id, Phase::Creating { stream_id }).await?;
        if !self.submit(&self.create_call(&session, stream_id)).await? {
            self.drop_session(&session.session_id).await?;
            return Ok(Reaction::Abandon { desc: "creating the stream failed".into() });
        }
        info!(stream_id, "stream created for accepted proposal");
        self.set_phase(&session.session_id, Phase::Streaming { stream_id }).await?;
        Ok(Reaction::StreamCreated { stream_id })
    }

    fn signer(&self, s: &SessionRecord) -> Result<Option<Arc<Signer>>, UserError> {
        let mut signers = self.signers.lock().map_err(|_| UserError::Poisoned)?;
        if let Some(signer) = signers.get(&s.session_id) {
            return Ok(Some(Arc::clone(signer)));
        }
        let Some(signer) = Signer::from_secret_bytes(&s.session_key).map(Arc::new) else { return Ok(None) };
        signers.insert(s.session_id, Arc::clone(&signer));
        Ok(Some(signer))
    }

    /// `EligibilityProof` bytes for a request to `provider`: the current session's stream and
    /// a signature over the request's digest with the session key.
    ///
    /// # Errors
    /// No session or stream, a paused session, or store failures.
    pub async fn proof(&self, provider: &[u8; 32], request: &impl RequestDigest) -> Result<Vec<u8>, UserError> {
        let session = self.current(provider)?.ok_or(UserError::NoSession)?;
        self.proof_for(&session, request).await
    }

    /// As [`User::proof`], for the given session (e.g. from [`User::find`]).
    ///
    /// # Errors
    /// No stream yet, a paused session, or store failures.
    pub async fn proof_for(&self, session: &Session, request: &impl RequestDigest) -> Result<Vec<u8>, UserError> {
        let session = session.clone();
        let stream_id = match session.phase {
            Phase::Proposed | Phase::Creating { .. } => return Err(UserError::NoStream),
            Phase::Streaming { stream_id } => stream_id,
            Phase::Paused { stream_id, until, paused_on_chain } => {
                let now = self.chain.head().await?.time_secs;
                if now < until {
                    return Err(UserError::Paused(until));
                }
                if paused_on_chain {
                    let call = client::resume_stream(&self.vault_ref(session.vault_id, session.token_id), stream_id);
                    self.submit(&call).await?;
                }
                self.set_phase(&session.session_id, Phase::Streaming { stream_id }).await?;
                stream_id
            }
        };
        let proof = match self.signer(&session)? {
            Some(signer) => sign_stream_proof_with(&signer, stream_id, &request.digest()),
            None => {
                let key = SecretKey::from_bytes(&session.session_key).map_err(|_| UserError::BadSessionKey)?;
                sign_stream_proof(&key, stream_id, &request.digest())
            }
        };
        Ok(EligibilityProof::Proof(proof).encode())
    }

    /// The encoded `DeliveryReceipt` to send to the provider after a response of `session`
    /// whose digest is `response_digest`, when the session's stream has a receipt key (see
    /// [`receipts::sign_receipt`]); `None` otherwise. `session.receipts` advances, and so does
    /// the stored session's book in the same durable write, so a restarted user never signs a
    /// lower total. A session closed meanwhile (the caller kept its record) can still sign its
    /// final receipt: what accrued before the close stays claimable with it.
    ///
    /// # Errors
    /// No stream yet, chain or store failures.
    pub async fn receipt(
        &self,
        session: &mut Session,
        response_digest: &[u8; 32],
    ) -> Result<Option<Vec<u8>>, UserError> {
        if session.extensions.receipt_key.is_none() {
            return Ok(None);
        }
        let id = session.session_id;
        let stored = self.state()?.sessions.iter().find(|s| s.session_id == id).map(|s| s.receipts);
        let mut book = session.receipts;
        if let Some(stored) = stored
            && stored.acknowledged_total > book.acknowledged_total
        {
            book = stored;
        }
        let stream_id = session.phase.stream_id().ok_or(UserError::NoStream)?;
        let key = SecretKey::from_bytes(&session.session_key).map_err(|_| UserError::BadSessionKey)?;
        let vault = self.vault_ref(session.vault_id, session.token_id);
        let Some(receipt) = sign_receipt(&self.chain, &vault, stream_id, &key, &mut book, response_digest).await?
        else {
            return Ok(None);
        };
        session.receipts = book;
        if stored.is_some() {
            self.update(|snap| {
                if let Some(s) = snap.sessions.iter_mut().find(|s| s.session_id == id) {
                    s.receipts = book;
                }
                Ok(())
            })
            .await?;
        }
        Ok(Some(receipt.encode()))
    }

    /// Closes the current session with `provider`: its stream on chain (the unaccrued rest
    /// returns to the vault; what accrued stays claimable by the provider), then forgets it.
    ///
    /// # Errors
    /// Chain or store failures.
    pub async fn close(&self, provider: &[u8; 32]) -> Result<Option<u64>, UserError> {
        match self.current(provider)? {
            Some(s) => self.close_session(&s.session_id).await,
            None => Ok(None),
        }
    }

    /// Closes the session `session_id` (see [`User::close`]); the stream id when this call
    /// closed it on chain.
    ///
    /// # Errors
    /// Chain or store failures; the session is kept when the close could not be submitted.
    pub async fn close_session(&self, session_id: &[u8; 32]) -> Result<Option<u64>, UserError> {
        // Looked up in the turn: a close that ran meanwhile (a pushed termination and the same
        // termination in a response) has already forgotten the session.
        let _turn = self.submitting.lock().await;
        let Some(s) = self.state()?.sessions.iter().find(|s| s.session_id == *session_id).cloned() else {
            return Ok(None);
        };
        let mut closed = None;
        if let Some(stream_id) = s.phase.stream_id() {
            let call = client::close_stream_by_owner(&self.vault_ref(s.vault_id, s.token_id), stream_id);
            if self.submit_in_turn(&call).await? {
                closed = Some(stream_id);
            }
        }
        self.drop_session(session_id).await?;
        Ok(closed)
    }

    /// Reacts to the response to a stream-proof-backed request.
    ///
    /// # Errors
    /// Chain or store failures.
    pub async fn on_proof_status(
        &self,
        provider: &[u8; 32],
        status: &EligibilityStatus,
        termination: Option<ServiceTermination>,
    ) -> Result<Reaction, UserError> {
        if let Some(t) = termination {
            return match self.current(provider)? {
                Some(session) => self.react_to_termination(&session, &t).await,
                // Already acted on: the same termination was pushed and handled meanwhile.
                None => Ok(match t.termination_type {
                    TerminationType::Permanent => Reaction::Closed { stream_id: None },
                    TerminationType::Temporary => Reaction::WaitUntil { resume_after: t.resume_after },
                }),
            };
        }
        let desc = status.status_desc.clone();
        Ok(match status.code() {
            Some(StatusCode::Ok) => Reaction::Served,
            Some(StatusCode::ProofInvalid) | None => Reaction::ResendFresh { desc },
            Some(StatusCode::StreamNotActive) => {
                let session = self.current(provider)?.ok_or(UserError::NoSession)?;
                let state = match session.phase.stream_id() {
                    Some(stream_id) => {
                        self.chain.stream(&self.owner_id(), session.vault_id, stream_id).await?.map(|v| v.state)
                    }
                    None => None,
                };
                Reaction::StreamInactive { state, desc }
            }
            Some(StatusCode::ParamsRejected) => {
                // The provider no longer honours the session (deadline missed, stream changed):
                // recover the funds.
                let stream_id = self.close(provider).await?;
                Reaction::Closed { stream_id }
            }
        })
    }

    /// A termination the provider pushed for `session_id` (the proposal's VaultOwnerAuth
    /// digest): PERMANENT closes the stream and forgets the session; TEMPORARY pauses (on
    /// chain when configured) until `resume_after`, after which the next request resumes; a
    /// session this engine does not know (or that belongs to another provider) is ignored.
    ///
    /// # Errors
    /// Chain or store failures.
    pub async fn on_termination(
        &self,
        provider: &[u8; 32],
        session_id: &[u8; 32],
        termination: ServiceTermination,
    ) -> Result<Reaction, UserError> {
        let known =
            self.state()?.sessions.iter().find(|s| s.session_id == *session_id && s.provider == *provider).cloned();
        match known {
            Some(session) => self.react_to_termination(&session, &termination).await,
            None => Ok(Reaction::Ignored),
        }
    }

    async fn react_to_termination(
        &self,
        session: &SessionRecord,
        termination: &ServiceTermination,
    ) -> Result<Reaction, UserError> {
        match termination.termination_type {
            TerminationType::Permanent => {
                let stream_id = self.close_session(&session.session_id).await?;
                Ok(Reaction::Closed { stream_id })
            }
            TerminationType::Temporary => self.pause_until(session, termination.resume_after).await,
        }
    }

    async fn pause_until(&self, session: &SessionRecord, resume_after: u64) -> Result<Reaction, UserError> {
        match session.phase {
            Phase::Streaming { stream_id } => {
                let mut paused_on_chain = false;
                if self.config.pause_on_temporary {
                    let call = client::pause_stream(&self.vault_ref(session.vault_id, session.token_id), stream_id);
                    paused_on_chain = self.submit(&call).await?;
                }
                self.set_phase(&session.session_id, Phase::Paused { stream_id, until: resume_after, paused_on_chain })
                    .await?;
            }
            Phase::Paused { stream_id, paused_on_chain, .. } => {
                self.set_phase(&session.session_id, Phase::Paused { stream_id, until: resume_after, paused_on_chain })
                    .await?;
            }
            Phase::Proposed | Phase::Creating { .. } => {}
        }
        Ok(Reaction::WaitUntil { resume_after })
    }

    /// Checks every streaming session: warns before depletion, applies auto top-up and
    /// auto-close rules.
    ///
    /// # Errors
    /// Chain or store failures.
    pub async fn monitor(&self) -> Result<Vec<Notice>, UserError> {
        let now = self.chain.head().await?.time_secs;
        let mut notices = Vec::new();
        for session in self.sessions()? {
            let provider = session.provider;
            let Phase::Streaming { stream_id } = session.phase else { continue };
            let Some(view) = self.chain.stream(&self.owner_id(), session.vault_id, stream_id).await? else {
                continue;
            };
            let vault_ref = self.vault_ref(session.vault_id, session.token_id);
            if view.state == StreamState::Paused && view.unaccrued.0 == 0 && self.config.auto_close_depleted {
                if self.close_session(&session.session_id).await?.is_some() {
                    notices.push(Notice::Closed { provider, stream_id });
                }
                continue;
            }
            let Some(stop) = view.planned_stop else { continue };
            let remaining = stop.saturating_sub(now);
            if let Some(rule) = self.config.auto_top_up
                && remaining <= rule.when_remaining_secs
                && self.submit(&client::top_up_stream(&vault_ref, stream_id, rule.amount)).await?
            {
                notices.push(Notice::ToppedUp { provider, stream_id, amount: rule.amount });
                continue;
            }
            if remaining <= self.config.warn_before_secs {
                warn!(stream_id, at = stop, "stream depletes soon");
                notices.push(Notice::DepletionSoon { provider, stream_id, at: stop });
            }
        }
        Ok(notices)
    }
}
