//! LIP-155 stream-backed eligibility, user side: proposals that never promise more than the
//! vault can back, one fresh session key per proposal, stream creation before the deadline,
//! reactions to every status and termination, and stream monitoring.
//!
//! Transport-agnostic: [`User::propose`] and [`User::proof`] return `EligibilityProof` bytes to
//! put in a request; the caller hands each response's status (and termination, if any) back to
//! [`User::on_proposal_status`] / [`User::on_proof_status`] and follows the returned
//! [`Reaction`].

#![deny(clippy::arithmetic_side_effects, clippy::indexing_slicing)]

pub mod keys;
pub mod ledger;
pub mod receipts;

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, MutexGuard},
};

use paystreams_lez_core::{AccountId, crypto::SecretKey};
use paystreams_program::{
    ExtensionSettings,
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

pub use keys::{FileKeyStore, KeyStore, KeyStoreError, MemoryKeyStore};
pub use ledger::{Overpromise, Promise, PromiseLedger};
pub use receipts::{ReceiptBook, extensions_for, sign_receipt};

/// Why the user engine refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error(transparent)]
    Keys(#[from] KeyStoreError),
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("a proposal to this provider is pending until chain time {0}")]
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
}

/// A monitoring notice.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Notice {
    DepletionSoon { provider: [u8; 32], stream_id: u64, at: u64 },
    ToppedUp { provider: [u8; 32], stream_id: u64, amount: u128 },
    Closed { provider: [u8; 32], stream_id: u64 },
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Proposed,
    Streaming { stream_id: u64 },
    Paused { stream_id: u64, until: u64, paused_on_chain: bool },
}

#[derive(Clone, Debug)]
struct UserSession {
    terms: Terms,
    label: String,
    /// The session key derived once for per-request signing (`None` only if libsecp256k1 refused
    /// a key k256 accepted; proofs then sign from the key store).
    signer: Option<Arc<Signer>>,
    deadline: u64,
    phase: Phase,
    /// The stream extensions chosen from the provider's advert (receipt key: the session key).
    extensions: ExtensionSettings,
}

#[derive(Debug, Default)]
struct State {
    ledger: PromiseLedger,
    sessions: BTreeMap<[u8; 32], UserSession>,
    /// Attempt times per (vault id, provider).
    attempts: BTreeMap<(u64, [u8; 32]), Vec<u64>>,
}

/// The user engine for one owner key.
pub struct User<C, K> {
    owner: SecretKey,
    chain: C,
    keys: K,
    config: UserConfig,
    state: Mutex<State>,
}

impl<C, K> std::fmt::Debug for User<C, K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User").field("owner", &self.owner.account_id()).finish_non_exhaustive()
    }
}

impl<C: ChainView + ChainWriter, K: KeyStore> User<C, K> {
    #[must_use]
    pub fn new(owner: SecretKey, chain: C, keys: K, config: UserConfig) -> Self {
        Self { owner, chain, keys, config, state: Mutex::new(State::default()) }
    }

    fn state(&self) -> Result<MutexGuard<'_, State>, UserError> {
        self.state.lock().map_err(|_| UserError::Poisoned)
    }

    fn owner_id(&self) -> AccountId {
        self.owner.account_id()
    }

    fn vault_ref(&self, vault_id: u64, token_id: [u8; 32]) -> VaultRef {
        VaultRef { program_id: payment_streams_program_id(), owner: self.owner_id(), vault_id, token_id }
    }

    /// The stream of the session with `provider`, if any.
    ///
    /// # Errors
    /// A poisoned lock.
    pub fn stream_of(&self, provider: &[u8; 32]) -> Result<Option<u64>, UserError> {
        Ok(self.state()?.sessions.get(provider).and_then(|s| match s.phase {
            Phase::Streaming { stream_id } | Phase::Paused { stream_id, .. } => Some(stream_id),
            Phase::Proposed => None,
        }))
    }

    /// Builds a signed proposal to `advert`'s provider: `EligibilityProof` bytes for the first
    /// request. Raises rate and allocation to the provider's minimums, proposes a deadline inside
    /// its band, refuses while a proposal to it is pending, past the retry cap, or when the
    /// vault cannot back the allocation on top of its other outstanding promises.
    ///
    /// # Errors
    /// A [`UserError`]; nothing is promised then.
    pub async fn propose(&self, advert: &ProviderAdvert, terms: &Terms) -> Result<Vec<u8>, UserError> {
        let provider = advert.provider_id;
        let now = self.chain.head().await?.time_secs;
        if let Some(s) = self.state()?.sessions.get(&provider)
            && s.phase == Phase::Proposed
            && s.deadline >= now
        {
            return Err(UserError::ProposalPending(s.deadline));
        }
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
        let label = hex::encode(VaultOwnerAuthBody::from_proposal(&proposal)?.digest());
        {
            let mut state = self.state()?;
            let attempts = state.attempts.entry((terms.vault_id, provider)).or_default();
            attempts.retain(|t| t.saturating_add(PARAMS_ATTEMPT_WINDOW_SECS) > now);
            if attempts.len() >= usize::try_from(PARAMS_ATTEMPTS_MAX).unwrap_or(usize::MAX) {
                let retry_after = attempts.first().map_or(now, |t| t.saturating_add(PARAMS_ATTEMPT_WINDOW_SECS));
                return Err(UserError::RetryCap(retry_after));
            }
            let vault_key = (self.owner_id().0, terms.vault_id);
            state.ledger.promise(
                vault_key,
                provider,
                Promise { allocation: u128::from(adjusted.allocation), deadline },
                vault.unallocated.0,
                now,
            )?;
            if let Some(attempts) = state.attempts.get_mut(&(terms.vault_id, provider)) {
                attempts.push(now);
            }
            state.sessions.insert(
                provider,
                UserSession {
                    terms: adjusted,
                    label: label.clone(),
                    signer: Signer::from_secret_bytes(&session_key.to_bytes()).map(Arc::new),
                    deadline,
                    phase: Phase::Proposed,
                    extensions: receipts::extensions_for(
                        advert,
                        &session_key.public_key().to_bytes(),
                        self.config.prefer_receipts,
                    ),
                },
            );
        }
        self.keys.put(&label, &session_key)?;
        Ok(EligibilityProof::Proposal(proposal).encode())
    }

    fn forget(&self, provider: &[u8; 32]) -> Result<(), UserError> {
        let removed = {
            let mut state = self.state()?;
            let removed = state.sessions.remove(provider);
            if let Some(s) = &removed {
                state.ledger.release((self.owner_id().0, s.terms.vault_id), provider);
            }
            removed
        };
        if let Some(s) = removed {
            self.keys.remove(&s.label)?;
        }
        Ok(())
    }

    async fn submit(&self, call: &Call) -> Result<bool, UserError> {
        match self.chain.submit(call, &[&self.owner]).await? {
            SubmitOutcome::Included { .. } => Ok(true),
            SubmitOutcome::Failed { code, name } => {
                warn!(code, name, "transaction refused");
                Ok(false)
            }
        }
    }

    /// Reacts to the response to a proposal. On OK creates the matching stream (before the
    /// deadline) and releases the promise.
    ///
    /// # Errors
    /// Chain or key-store failures, or a deadline already passed.
    pub async fn on_proposal_status(
        &self,
        provider: &[u8; 32],
        status: &EligibilityStatus,
        termination: Option<ServiceTermination>,
    ) -> Result<Reaction, UserError> {
        let session = self.state()?.sessions.get(provider).cloned().ok_or(UserError::NoSession)?;
        let desc = status.status_desc.clone();
        match status.code() {
            Some(StatusCode::Ok) => {}
            Some(StatusCode::ParamsRejected) => {
                self.forget(provider)?;
                if let Some(t) = termination.filter(|t| t.termination_type == TerminationType::Temporary) {
                    return Ok(Reaction::WaitUntil { resume_after: t.resume_after });
                }
                return Ok(Reaction::Adjust { desc });
            }
            Some(StatusCode::StreamNotActive) => {
                self.forget(provider)?;
                return Ok(match termination {
                    Some(t) if t.termination_type == TerminationType::Temporary => {
                        Reaction::WaitUntil { resume_after: t.resume_after }
                    }
                    _ => Reaction::StreamInactive { state: None, desc },
                });
            }
            Some(StatusCode::ProofInvalid) | None => {
                self.forget(provider)?;
                return Ok(Reaction::Abandon { desc });
            }
        }
        let now = self.chain.head().await?.time_secs;
        if now > session.deadline {
            self.forget(provider)?;
            return Err(UserError::DeadlineMissed(session.deadline));
        }
        let terms = &session.terms;
        let vault = self.chain.vault(&self.owner_id(), terms.vault_id).await?.ok_or(UserError::NoVault)?;
        let stream_id = vault.next_stream_id;
        let call = client::create_stream(
            &self.vault_ref(terms.vault_id, terms.token_id),
            stream_id,
            AccountId(*provider),
            terms.rate,
            u128::from(terms.allocation),
            session.extensions,
        );
        if !self.submit(&call).await? {
            self.forget(provider)?;
            return Ok(Reaction::Abandon { desc: "creating the stream failed".into() });
        }
        info!(stream_id, "stream created for accepted proposal");
        let mut state = self.state()?;
        state.ledger.release((self.owner_id().0, terms.vault_id), provider);
        if let Some(s) = state.sessions.get_mut(provider) {
            s.phase = Phase::Streaming { stream_id };
        }
        Ok(Reaction::StreamCreated { stream_id })
    }

    /// `EligibilityProof` bytes for a request to `provider`: the session's stream and a
    /// signature over the request's digest with the session key.
    ///
    /// # Errors
    /// No session or stream, a paused session, or key-store failures.
    pub async fn proof(&self, provider: &[u8; 32], request: &impl RequestDigest) -> Result<Vec<u8>, UserError> {
        let session = self.state()?.sessions.get(provider).cloned().ok_or(UserError::NoSession)?;
        let stream_id = match session.phase {
            Phase::Proposed => return Err(UserError::NoStream),
            Phase::Streaming { stream_id } => stream_id,
            Phase::Paused { stream_id, until, paused_on_chain } => {
                let now = self.chain.head().await?.time_secs;
                if now < until {
                    return Err(UserError::Paused(until));
                }
                if paused_on_chain {
                    let call = client::resume_stream(
                        &self.vault_ref(session.terms.vault_id, session.terms.token_id),
                        stream_id,
                    );
                    self.submit(&call).await?;
                }
                if let Some(s) = self.state()?.sessions.get_mut(provider) {
                    s.phase = Phase::Streaming { stream_id };
                }
                stream_id
            }
        };
        let proof = match &session.signer {
            Some(signer) => sign_stream_proof_with(signer, stream_id, &request.digest()),
            None => {
                let key = self.keys.get(&session.label)?.ok_or(UserError::NoSession)?;
                sign_stream_proof(&key, stream_id, &request.digest())
            }
        };
        Ok(EligibilityProof::Proof(proof).encode())
    }

    /// The encoded `DeliveryReceipt` to send to `provider` after a response whose digest is
    /// `response_digest`, when the session's stream has a receipt key (see
    /// [`receipts::sign_receipt`]); `None` otherwise. `book` is the session's receipt book, to
    /// be kept with the session.
    ///
    /// # Errors
    /// No session or stream, chain or key-store failures.
    pub async fn receipt(
        &self,
        provider: &[u8; 32],
        book: &mut ReceiptBook,
        response_digest: &[u8; 32],
    ) -> Result<Option<Vec<u8>>, UserError> {
        let session = self.state()?.sessions.get(provider).cloned().ok_or(UserError::NoSession)?;
        if session.extensions.receipt_key.is_none() {
            return Ok(None);
        }
        let (Phase::Streaming { stream_id } | Phase::Paused { stream_id, .. }) = session.phase else {
            return Err(UserError::NoStream);
        };
        let key = self.keys.get(&session.label)?.ok_or(UserError::NoSession)?;
        let vault = self.vault_ref(session.terms.vault_id, session.terms.token_id);
        let receipt = sign_receipt(&self.chain, &vault, stream_id, &key, book, response_digest).await?;
        Ok(receipt.map(|r| r.encode()))
    }

    async fn close(&self, provider: &[u8; 32]) -> Result<Option<u64>, UserError> {
        let session = self.state()?.sessions.get(provider).cloned();
        let mut closed = None;
        if let Some(s) = session
            && let Phase::Streaming { stream_id } | Phase::Paused { stream_id, .. } = s.phase
        {
            let call = client::close_stream_by_owner(&self.vault_ref(s.terms.vault_id, s.terms.token_id), stream_id);
            if self.submit(&call).await? {
                closed = Some(stream_id);
            }
        }
        self.forget(provider)?;
        Ok(closed)
    }

    /// Reacts to the response to a stream-proof-backed request.
    ///
    /// # Errors
    /// Chain or key-store failures.
    pub async fn on_proof_status(
        &self,
        provider: &[u8; 32],
        status: &EligibilityStatus,
        termination: Option<ServiceTermination>,
    ) -> Result<Reaction, UserError> {
        if let Some(t) = termination {
            match t.termination_type {
                TerminationType::Permanent => {
                    let stream_id = self.close(provider).await?;
                    return Ok(Reaction::Closed { stream_id });
                }
                TerminationType::Temporary => return self.pause_until(provider, t.resume_after).await,
            }
        }
        let desc = status.status_desc.clone();
        Ok(match status.code() {
            Some(StatusCode::Ok) => Reaction::Served,
            Some(StatusCode::ProofInvalid) | None => Reaction::ResendFresh { desc },
            Some(StatusCode::StreamNotActive) => {
                let session = self.state()?.sessions.get(provider).cloned().ok_or(UserError::NoSession)?;
                let state = match session.phase {
                    Phase::Streaming { stream_id } | Phase::Paused { stream_id, .. } => {
                        self.chain.stream(&self.owner_id(), session.terms.vault_id, stream_id).await?.map(|v| v.state)
                    }
                    Phase::Proposed => None,
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

    async fn pause_until(&self, provider: &[u8; 32], resume_after: u64) -> Result<Reaction, UserError> {
        let session = self.state()?.sessions.get(provider).cloned().ok_or(UserError::NoSession)?;
        if let Phase::Streaming { stream_id } = session.phase {
            let mut paused_on_chain = false;
            if self.config.pause_on_temporary {
                let call =
                    client::pause_stream(&self.vault_ref(session.terms.vault_id, session.terms.token_id), stream_id);
                paused_on_chain = self.submit(&call).await?;
            }
            if let Some(s) = self.state()?.sessions.get_mut(provider) {
                s.phase = Phase::Paused { stream_id, until: resume_after, paused_on_chain };
            }
        }
        Ok(Reaction::WaitUntil { resume_after })
    }

    /// Checks every streaming session: warns before depletion, applies auto top-up and
    /// auto-close rules.
    ///
    /// # Errors
    /// Chain or key-store failures.
    pub async fn monitor(&self) -> Result<Vec<Notice>, UserError> {
        let now = self.chain.head().await?.time_secs;
        let sessions: Vec<([u8; 32], UserSession)> =
            self.state()?.sessions.iter().map(|(p, s)| (*p, s.clone())).collect();
        let mut notices = Vec::new();
        for (provider, session) in sessions {
            let Phase::Streaming { stream_id } = session.phase else { continue };
            let Some(view) = self.chain.stream(&self.owner_id(), session.terms.vault_id, stream_id).await? else {
                continue;
            };
            let vault_ref = self.vault_ref(session.terms.vault_id, session.terms.token_id);
            if view.state == StreamState::Paused && view.unaccrued.0 == 0 && self.config.auto_close_depleted {
                if self.close(&provider).await?.is_some() {
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
