//! The provider engine: one call per request, transport-agnostic.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Mutex, MutexGuard},
};

use paystreams_lez_core::{AccountId, crypto::PublicKey};
use paystreams_program::{
    Event,
    client::VaultRef,
    payment_streams_program_id,
    receipt::{DeliveryReceipt as ChainReceipt, ReceiptBody},
    state::StreamState,
};
use paystreams_rpc::{
    EventNotification, StreamView,
    chain_view::{ChainError, ChainHead, ChainView},
    views::token_label,
};
use paystreams_wire::{
    DeliveryReceipt as WireReceipt, EligibilityProof, EligibilityStatus, ReceiptAck, ReceiptStatus, ServiceTermination,
    StatusCode, StreamProof, StreamProposal, TerminationType, VaultOwnerAuthBody,
};
use tracing::{debug, info, warn};

use crate::{
    claims::{Claim, ClaimSubmitter},
    keys::KeyCache,
    policy::{EngineLimits, PolicyError, ProviderPolicy},
    session::{AcceptedParams, EndReason, PinnedPolicy, Session, SessionId, SessionState, StreamKey, VaultKey},
    store::{AcceptOutcome, BindOutcome, REQUESTER_MAX_LEN, SessionStore, StoreError},
};

/// A failure inside the engine (chain or storage). Request handling turns it into a
/// fail-closed verdict; maintenance calls return it.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error("engine lock poisoned")]
    Poisoned,
    #[error("invalid policy: {0}")]
    Policy(#[from] PolicyError),
}

/// What the service may do for this request.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum GrantKind {
    /// The proposal-backed first response, at most this many bytes.
    First { max_response_bytes: u64 },
    /// A stream-proof-backed response.
    Stream { stream: StreamKey },
}

/// Permission to serve one request; pass it to [`Provider::finish_response`] before sending.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Grant {
    pub session: SessionId,
    pub kind: GrantKind,
}

/// The engine's answer to one request.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Verdict {
    /// Goes into `ServiceResponse.eligibility_status`.
    pub status: EligibilityStatus,
    pub session: Option<SessionId>,
    /// Sent with the response when set.
    pub termination: Option<ServiceTermination>,
    /// Set exactly when the status is OK.
    pub grant: Option<Grant>,
}

impl Verdict {
    fn refuse(code: StatusCode, desc: impl Into<String>) -> Self {
        Self { status: status(code, desc), session: None, termination: None, grant: None }
    }

    fn with_session(mut self, session: SessionId) -> Self {
        self.session = Some(session);
        self
    }

    fn with_termination(mut self, termination: ServiceTermination) -> Self {
        self.termination = Some(termination);
        self
    }

    fn granted(grant: Grant) -> Self {
        Self { status: EligibilityStatus::ok(), session: Some(grant.session), termination: None, grant: Some(grant) }
    }

    /// Whether the request may be served.
    #[must_use]
    pub const fn is_granted(&self) -> bool {
        self.grant.is_some()
    }

    /// The status code as an enum.
    #[must_use]
    pub const fn code(&self) -> Option<StatusCode> {
        self.status.code()
    }
}

fn status(code: StatusCode, desc: impl Into<String>) -> EligibilityStatus {
    let mut desc: String = desc.into();
    if desc.len() > paystreams_wire::STATUS_DESC_MAX_LEN {
        let mut end = paystreams_wire::STATUS_DESC_MAX_LEN;
        while !desc.is_char_boundary(end) {
            end = end.saturating_sub(1);
        }
        desc.truncate(end);
    }
    EligibilityStatus::new(code, desc)
}

const fn permanent() -> ServiceTermination {
    ServiceTermination { termination_type: TerminationType::Permanent, resume_after: 0 }
}

const fn temporary(resume_after: u64) -> ServiceTermination {
    ServiceTermination { termination_type: TerminationType::Temporary, resume_after }
}

/// Requests and bytes served for one stream in the current load window.
#[derive(Clone, Copy, Debug)]
struct LoadWindow {
    start: u64,
    requests: u64,
    bytes: u64,
}

/// Per-process state: load windows, depletion re-checks, terminations to deliver.
#[derive(Debug, Default)]
struct Local {
    load: HashMap<StreamKey, LoadWindow>,
    /// (chain time, session) re-checks, earliest first.
    rechecks: BTreeSet<(u64, SessionId)>,
    outbox: Vec<(SessionId, ServiceTermination)>,
    /// Maintenance: refuse everything with TEMPORARY until this chain time.
    maintenance_until: Option<u64>,
    /// Where the next tick's session sweep resumes (the last session visited). In memory: a
    /// restart only starts the sweep over, and a durable cursor would cost a write per tick
    /// (and be shared, wrongly, by several processes on one PostgreSQL store).
    session_cursor: Option<SessionId>,
    /// Where the next tick's sweep of claimable streams resumes (in memory, as above).
    claim_cursor: Option<StreamKey>,
}

/// Streams past a pending session's predicted id searched for its matching stream (binding a
/// session whose creation event this process missed; before ending it for a drained vault).
const MATCHING_STREAM_LOOKAHEAD: u64 = 16;

/// The provider engine, generic over chain access, session storage and claim submission.
pub struct Provider<C, S, K> {
    policy: ProviderPolicy,
    limits: EngineLimits,
    chain: C,
    store: S,
    claims: K,
    local: Mutex<Local>,
    keys: KeyCache,
}

impl<C, S, K> std::fmt::Debug for Provider<C, S, K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider").field("policy", &self.policy).field("limits", &self.limits).finish_non_exhaustive()
    }
}

/// Outcome of the cheap-first steps that end a request early.
type Step<T> = Result<Result<T, Verdict>, EngineError>;

impl<C: ChainView, S: SessionStore, K: ClaimSubmitter> Provider<C, S, K> {
    /// # Errors
    /// An invalid policy.
    pub fn new(
        policy: ProviderPolicy,
        limits: EngineLimits,
        chain: C,
        store: S,
        claims: K,
    ) -> Result<Self, EngineError> {
        policy.validate()?;
        Ok(Self {
            policy,
            limits,
            chain,
            store,
            claims,
            local: Mutex::new(Local::default()),
            keys: KeyCache::default(),
        })
    }

    #[must_use]
    pub const fn policy(&self) -> &ProviderPolicy {
        &self.policy
    }

    #[must_use]
    pub const fn store(&self) -> &S {
        &self.store
    }

    fn local(&self) -> Result<MutexGuard<'_, Local>, EngineError> {
        self.local.lock().map_err(|_| EngineError::Poisoned)
    }

    fn provider_account(&self) -> AccountId {
        AccountId(self.policy.provider_id)
    }

    /// Judges one request. `requester` is the transport identity the request came from (the
    /// libp2p peer id bytes; at most [`REQUESTER_MAX_LEN`]): a StreamProof is checked only
    /// against the sessions this requester proposed. `request_digest` is the service's
    /// canonical request digest ([`paystreams_wire::RequestDigest::digest`]);
    /// `eligibility_proof` the raw `EligibilityProof` bytes; `now_ms` this process's wall clock
    /// (Unix ms), used only to bound the staleness of the chain view — every rule is judged in
    /// chain time.
    pub async fn handle(
        &self,
        requester: &[u8],
        request_digest: &[u8; 32],
        eligibility_proof: Option<&[u8]>,
        now_ms: u64,
    ) -> Verdict {
        self.handle_for(requester, None, request_digest, eligibility_proof, now_ms).await
    }

    /// As [`Provider::handle`] for a request to the service `service_id` (its protocol id, as
    /// proposals name it): a proposal naming another service is refused PARAMS_REJECTED before
    /// anything else is checked, and a stream proof is granted only under a session proposed
    /// for this service (one stream pays for one service; a Store session cannot pay for
    /// Lightpush or the other way round). `None` checks no service (one-service providers).
    pub async fn handle_for(
        &self,
        requester: &[u8],
        service_id: Option<&[u8]>,
        request_digest: &[u8; 32],
        eligibility_proof: Option<&[u8]>,
        now_ms: u64,
    ) -> Verdict {
        let Some(bytes) = eligibility_proof else {
            return Verdict::refuse(
                StatusCode::ProofInvalid,
                "no eligibility proof: send a StreamProposal first, then a StreamProof with each request",
            );
        };
        let decoded = match EligibilityProof::decode(bytes) {
            Ok(decoded) => decoded,
            Err(e) => return Verdict::refuse(StatusCode::ProofInvalid, format!("malformed EligibilityProof: {e}")),
        };
        // An identity that cannot be stored is an unknown requester.
        let requester = (!requester.is_empty() && requester.len() <= REQUESTER_MAX_LEN).then_some(requester);
        let result = match &decoded {
            EligibilityProof::Proposal(proposal) => {
                if let Some(service) = service_id
                    && proposal.stream_params.service_id.as_slice() != service
                {
                    return Verdict::refuse(
                        StatusCode::ParamsRejected,
                        format!(
                            "this request is for service {}; propose with that service_id (the proposal names {})",
                            String::from_utf8_lossy(service),
                            String::from_utf8_lossy(&proposal.stream_params.service_id)
                        ),
                    );
                }
                self.handle_proposal(requester, proposal, now_ms).await
            }
            EligibilityProof::Proof(proof) => {
                self.handle_proof(requester, service_id, request_digest, proof, now_ms).await
            }
        };
        result.unwrap_or_else(|e| {
            warn!(error = %e, "failing closed");
            let code = match decoded {
                EligibilityProof::Proposal(_) => StatusCode::ParamsRejected,
                EligibilityProof::Proof(_) => StatusCode::StreamNotActive,
            };
            // Fail closed without a termination: the failure says nothing about the session.
            Verdict::refuse(code, "provider cannot verify eligibility right now (internal failure); retry shortly")
        })
    }

    /// Signature checks made so far (stream proofs and proposals): what requests cost.
    #[must_use]
    pub fn signature_checks(&self) -> u64 {
        self.keys.checks()
    }

    /// A fresh head, or the fail-closed verdict when the view is stale or maintenance is on.
    async fn head(&self, now_ms: u64, code: StatusCode) -> Step<ChainHead> {
        let head = self.chain.head().await?;
        let age = now_ms.saturating_sub(head.observed_at_ms);
        if age > self.limits.staleness_bound_ms {
            let resume = head.time_secs.saturating_add(self.limits.stale_backoff_secs);
            warn!(age_ms = age, "chain view stale; failing closed");
            return Ok(Err(Verdict::refuse(
                code,
                format!(
                    "provider's chain view is {age} ms old (bound {} ms); retry after chain time {resume}",
                    self.limits.staleness_bound_ms
                ),
            )
            .with_termination(temporary(resume))));
        }
        if let Some(until) = self.local()?.maintenance_until
            && until > head.time_secs
        {
            return Ok(Err(Verdict::refuse(
                code,
                format!("provider under maintenance until chain time {until}; retry then"),
            )
            .with_termination(temporary(until))));
        }
        Ok(Ok(head))
    }

    /// A refusal of an authentic proposal for a parameter reason: recorded as one attempt
    /// toward the vault's cap.
    async fn refuse_params(&self, vault: VaultKey, t: u64, desc: String) -> Result<Verdict, EngineError> {
        self.store.record_attempt(vault, t, self.limits.attempt_window_secs).await?;
        Ok(Verdict::refuse(StatusCode::ParamsRejected, desc))
    }

    #[expect(clippy::too_many_lines, reason = "the proposal checks read best in the spec's order, in one place")]
    async fn handle_proposal(
        &self,
        requester: Option<&[u8]>,
        proposal: &StreamProposal,
        now_ms: u64,
    ) -> Result<Verdict, EngineError> {
        let vp = &proposal.vault_proof;
        let params = &proposal.stream_params;
        if vp.provider_id != self.policy.provider_id {
            return Ok(Verdict::refuse(
                StatusCode::ProofInvalid,
                format!("VaultProof.provider_id names another provider; this provider is {}", self.provider_account()),
            ));
        }
        if PublicKey::from_bytes(vp.owner_public_key).is_err() {
            return Ok(Verdict::refuse(StatusCode::ProofInvalid, "owner_public_key is not a valid x-only public key"));
        }
        if proposal.session_key().is_err() {
            return Ok(Verdict::refuse(
                StatusCode::ProofInvalid,
                "session public_key is not a valid x-only public key",
            ));
        }
        let Some(requester) = requester else {
            return Ok(Verdict::refuse(
                StatusCode::ProofInvalid,
                format!(
                    "the request carries no usable transport identity (1 to {REQUESTER_MAX_LEN} bytes); send it over a connection with a peer id"
                ),
            ));
        };
        // Signature first: a forged proposal costs one check and no chain read or store write.
        if let Err(e) = self.keys.verify_proposal(proposal) {
            return Ok(Verdict::refuse(StatusCode::ProofInvalid, format!("owner_signature invalid: {e}")));
        }
        // The vault PDA is derived from the owner's account (from the key) and vault_id.
        let owner = AccountId::from_public_key(&vp.owner_public_key);
        let vault_key = VaultKey { owner: owner.0, vault_id: vp.vault_id };
        let head = match self.head(now_ms, StatusCode::ParamsRejected).await? {
            Ok(head) => head,
            Err(verdict) => return Ok(verdict),
        };
        let t = head.time_secs;
        // The cap counts refused proposals only; a refusal because of the cap is not one more.
        let refused = self.store.attempts(vault_key, t, self.limits.attempt_window_secs).await?;
        if refused >= self.limits.attempt_cap {
            return Ok(Verdict::refuse(
                StatusCode::ParamsRejected,
                format!(
                    "{refused} refused parameter attempts for this vault within {} s (the cap is {}); wait before proposing again",
                    self.limits.attempt_window_secs, self.limits.attempt_cap
                ),
            ));
        }
        if !self.policy.accepts_service(&params.service_id) {
            return self
                .refuse_params(
                    vault_key,
                    t,
                    format!("service_id not served; accepted service ids: {}", self.policy.service_ids.join(", ")),
                )
                .await;
        }
        let Some(vault) = self.chain.vault(&owner, vp.vault_id).await? else {
            return Ok(Verdict::refuse(
                StatusCode::ProofInvalid,
                format!(
                    "no vault {} owned by {owner} (the owner_public_key's account); check vault_id and owner key",
                    vp.vault_id
                ),
            ));
        };
        if token_label(&vp.token_id) != vault.token_id {
            return Ok(Verdict::refuse(
                StatusCode::ProofInvalid,
                format!("VaultProof.token_id does not match the vault's token ({})", vault.token_id),
            ));
        }
        if vault.owner != owner {
            return Ok(Verdict::refuse(StatusCode::ProofInvalid, "owner_public_key does not bind to the vault owner"));
        }
        let wire = self.policy.wire();
        let Some(token) = wire.token(&vp.token_id) else {
            let accepted: Vec<String> = wire.accepted_tokens.iter().map(|t| token_label(&t.token_id)).collect();
            return self
                .refuse_params(
                    vault_key,
                    t,
                    format!("vault token {} not accepted; accepted tokens: {}", vault.token_id, accepted.join(", ")),
                )
                .await;
        };
        if params.stream_rate < token.min_rate {
            return self
                .refuse_params(
                    vault_key,
                    t,
                    format!(
                        "stream_rate {} below the minimum {}; propose at least {}",
                        params.stream_rate, token.min_rate, token.min_rate
                    ),
                )
                .await;
        }
        if params.allocation < token.min_allocation {
            return self
                .refuse_params(
                    vault_key,
                    t,
                    format!(
                        "allocation {} below the minimum {}; propose at least {}",
                        params.allocation, token.min_allocation, token.min_allocation
                    ),
                )
                .await;
        }
        let latest = t.saturating_add(self.policy.max_create_stream_deadline_delay);
        let deadline = params.create_stream_deadline;
        if deadline < t || deadline > latest {
            return self
                .refuse_params(
                    vault_key,
                    t,
                    format!(
                        "create_stream_deadline {deadline} outside [{t}, {latest}] (chain seconds); propose a deadline in that band"
                    ),
                )
                .await;
        }
        if vault.unallocated.0 < u128::from(params.allocation) {
            return self
                .refuse_params(
                    vault_key,
                    t,
                    format!(
                        "allocation {} exceeds the vault's unallocated {}; deposit more or propose at most {}",
                        params.allocation, vault.unallocated.0, vault.unallocated.0
                    ),
                )
                .await;
        }
        if let Some(pending) = self.store.pending(vault_key).await?
            && pending.is_pending()
            && !pending.pending_expired(t)
        {
            // Its stream may exist already (created, even closed again) in a block whose event
            // this process has not handled yet: settle the pending session from the chain
            // before refusing, so no answer depends on how far behind the event feed is.
            self.recheck_pending(pending, t).await?;
        }
        if let Some(pending) = self.store.pending(vault_key).await?
            && pending.is_pending()
            && !pending.pending_expired(t)
        {
            return self
                .refuse_params(
                    vault_key,
                    t,
                    format!(
                        "a proposal for this vault is pending until chain time {}; create its stream or wait for the deadline",
                        pending.params.create_stream_deadline
                    ),
                )
                .await;
        }
        let service_id = match params.service_id_str() {
            Ok(s) => s.to_owned(),
            Err(_) => return Ok(Verdict::refuse(StatusCode::ProofInvalid, "service_id is not UTF-8")),
        };
        let id = match VaultOwnerAuthBody::from_proposal(proposal) {
            Ok(body) => SessionId(body.digest()),
            Err(e) => return Ok(Verdict::refuse(StatusCode::ProofInvalid, format!("proposal unusable: {e}"))),
        };
        let session = Session {
            id,
            vault: vault_key,
            owner_public_key: vp.owner_public_key,
            token_id: vp.token_id,
            params: AcceptedParams {
                service_id,
                rate: params.stream_rate,
                allocation: params.allocation,
                create_stream_deadline: deadline,
            },
            policy: PinnedPolicy {
                max_create_stream_deadline_delay: self.policy.max_create_stream_deadline_delay,
                first_response_cap: self.policy.first_response_cap,
                min_rate: token.min_rate,
                min_allocation: token.min_allocation,
                deferred_first_proof: self.policy.deferred_first_proof,
            },
            session_key: proposal.public_key,
            accepted_at: t,
            predicted_stream_id: vault.next_stream_id,
            state: SessionState::Pending,
            matching_stream: None,
            suspended_until: 0,
        };
        Ok(match self.store.accept(&session, requester, t).await? {
            AcceptOutcome::Accepted => {
                info!(session = ?id, vault = vp.vault_id, "proposal accepted");
                Verdict::granted(Grant {
                    session: id,
                    kind: GrantKind::First { max_response_bytes: self.policy.first_response_cap },
                })
            }
            AcceptOutcome::PendingExists(_) => {
                return self
                    .refuse_params(
                        vault_key,
                        t,
                        "a proposal for this vault is pending; create its stream or wait for its deadline".into(),
                    )
                    .await;
            }
            AcceptOutcome::ProposalUsed => Verdict::refuse(
                StatusCode::ParamsRejected,
                "this proposal was already accepted once; sign a new proposal with a fresh session key",
            ),
        })
    }

    /// The session whose key signed `digest`, among `requester`'s own sessions only: first
    /// its live sessions that can back `proof.stream_id` (bound to it, or pending), newest
    /// first; only when it has none, its newest ended session (to say precisely why it ended).
    /// In the usual case of one live session per stream this is one signature check; never a
    /// chain read.
    fn find_session(&self, sessions: &[Session], digest: &[u8; 32], proof: &StreamProof) -> Option<Session> {
        let live: Vec<&Session> =
            sessions.iter().rev().filter(|s| s.is_pending() || s.bound_stream() == Some(proof.stream_id)).collect();
        let tried: Vec<&Session> = if live.is_empty() {
            sessions.iter().rev().filter(|s| s.ended().is_some()).take(1).collect()
        } else {
            live
        };
        tried.into_iter().find(|s| self.keys.verify(&s.session_key, digest, proof)).cloned()
    }

    fn ended_verdict(session: &Session, reason: EndReason) -> Verdict {
        let code = match reason {
            EndReason::StreamClosed => StatusCode::StreamNotActive,
            _ => StatusCode::ParamsRejected,
        };
        let verdict = Verdict::refuse(code, format!("session ended: {}; send a new proposal", reason.describe()))
            .with_session(session.id);
        if reason.is_termination() { verdict.with_termination(permanent()) } else { verdict }
    }

    async fn end_session(&self, mut session: Session, reason: EndReason, at: u64) -> Result<Session, EngineError> {
        info!(session = ?session.id, ?reason, "session ended");
        session.state = SessionState::Ended { reason, at };
        self.store.update(&session).await?;
        if reason.is_termination() {
            self.local()?.outbox.push((session.id, permanent()));
        }
        Ok(session)
    }

    #[expect(clippy::too_many_lines, reason = "the proof checks read best in the spec's order, in one place")]
    async fn handle_proof(
        &self,
        requester: Option<&[u8]>,
        service_id: Option<&[u8]>,
        digest: &[u8; 32],
        proof: &StreamProof,
        now_ms: u64,
    ) -> Result<Verdict, EngineError> {
        let unknown = "this peer has no session with this provider: send the StreamProof from the peer (transport identity) that sent the accepted proposal, or propose again";
        let Some(requester) = requester else { return Ok(Verdict::refuse(StatusCode::ProofInvalid, unknown)) };
        let sessions = self.store.requester_sessions(requester).await?;
        if sessions.is_empty() {
            return Ok(Verdict::refuse(StatusCode::ProofInvalid, unknown));
        }
        let Some(session) = self.find_session(&sessions, digest, proof) else {
            return Ok(Verdict::refuse(
                StatusCode::ProofInvalid,
                format!(
                    "signature does not verify under the session key of this peer's sessions for stream {}; sign the request digest with your session key, or propose again",
                    proof.stream_id
                ),
            ));
        };
        let id = session.id;
        if let Some(service) = service_id
            && session.params.service_id.as_bytes() != service
        {
            return Ok(Verdict::refuse(
                StatusCode::ProofInvalid,
                format!(
                    "this session pays for service {}, not {}; propose a session for service_id {}",
                    session.params.service_id,
                    String::from_utf8_lossy(service),
                    String::from_utf8_lossy(service)
                ),
            ));
        }
        if let Some(reason) = session.ended() {
            return Ok(Self::ended_verdict(&session, reason));
        }
        if let Some(bound) = session.bound_stream()
            && bound != proof.stream_id
        {
            return Ok(Verdict::refuse(
                StatusCode::ProofInvalid,
                format!("this session is bound to stream {bound}; name it in StreamProof"),
            )
            .with_session(id));
        }
        let head = match self.head(now_ms, StatusCode::StreamNotActive).await? {
            Ok(head) => head,
            Err(verdict) => return Ok(verdict.with_session(id)),
        };
        let t = head.time_secs;
        if session.pending_expired(t) {
            let deadline = session.params.create_stream_deadline;
            self.end_session(session, EndReason::DeadlineMissed, t).await?;
            return Ok(Verdict::refuse(
                StatusCode::ParamsRejected,
                format!("first stream proof arrived at chain time {t}, after create_stream_deadline {deadline}; the session ended; send a new proposal"),
            )
            .with_session(id));
        }
        if session.suspended_until > t {
            return Ok(Verdict::refuse(
                StatusCode::StreamNotActive,
                format!("service paused until chain time {} (temporary termination)", session.suspended_until),
            )
            .with_session(id)
            .with_termination(temporary(session.suspended_until)));
        }
        if self.store.seen_request(id, *digest).await? {
            return Ok(Self::replay_verdict(id));
        }
        let owner = session.vault.owner_id();
        let Some(stream) = self.chain.stream(&owner, session.vault.vault_id, proof.stream_id).await? else {
            return Ok(Verdict::refuse(
                StatusCode::StreamNotActive,
                format!(
                    "no stream {} in the session's vault {}; create it first",
                    proof.stream_id, session.vault.vault_id
                ),
            )
            .with_session(id));
        };
        let pending = session.is_pending();
        match stream.state {
            StreamState::Active => {}
            StreamState::Closed if !pending => {
                self.end_session(session, EndReason::StreamClosed, t).await?;
                return Ok(Verdict::refuse(
                    StatusCode::StreamNotActive,
                    "stream is closed; the session ended; send a new proposal",
                )
                .with_session(id)
                .with_termination(permanent()));
            }
            state => {
                let hint = if stream.unaccrued.0 == 0 { "depleted: top it up" } else { "paused: resume it" };
                return Ok(Verdict::refuse(
                    StatusCode::StreamNotActive,
                    format!("stream {} is {state:?}, {hint}", proof.stream_id),
                )
                .with_session(id));
            }
        }
        if stream.provider != self.provider_account() {
            return Ok(Verdict::refuse(
                StatusCode::ParamsRejected,
                "stream names another provider; create a stream to this provider",
            )
            .with_session(id));
        }
        let min_rate = session.params.rate.max(session.policy.min_rate);
        if stream.rate < min_rate {
            return Ok(Verdict::refuse(
                StatusCode::ParamsRejected,
                format!("stream rate {} below the accepted rate {min_rate}", stream.rate),
            )
            .with_session(id));
        }
        if pending {
            if let Some(v) = self.bind_first(&session, &stream, proof.stream_id, t).await? {
                return Ok(v.with_session(id));
            }
            self.schedule_recheck(id, &stream)?;
        }
        let key = StreamKey { vault: session.vault, stream_id: proof.stream_id };
        if let Some(cap) = self.policy.load_cap {
            let mut local = self.local()?;
            let window = local.load.entry(key).or_insert(LoadWindow { start: t, requests: 0, bytes: 0 });
            if t >= window.start.saturating_add(cap.window_secs) {
                *window = LoadWindow { start: t, requests: 0, bytes: 0 };
            }
            if window.requests >= cap.max_requests || window.bytes >= cap.max_bytes {
                let resume = window.start.saturating_add(cap.window_secs);
                return Ok(Verdict::refuse(
                    StatusCode::StreamNotActive,
                    format!(
                        "load cap of {} requests / {} bytes per {} s reached for this stream; retry after chain time {resume} or open another stream",
                        cap.max_requests, cap.max_bytes, cap.window_secs
                    ),
                )
                .with_session(id)
                .with_termination(temporary(resume)));
            }
        }
        if !self.store.record_request(id, *digest).await? {
            return Ok(Self::replay_verdict(id));
        }
        if self.policy.load_cap.is_some()
            && let Some(window) = self.local()?.load.get_mut(&key)
        {
            window.requests = window.requests.saturating_add(1);
        }
        debug!(session = ?id, stream = proof.stream_id, "stream proof accepted");
        Ok(Verdict::granted(Grant { session: id, kind: GrantKind::Stream { stream: key } }))
    }

    fn replay_verdict(id: SessionId) -> Verdict {
        Verdict::refuse(
            StatusCode::ProofInvalid,
            "request already served in this session (replayed StreamProof); send a fresh request (e.g. a new request_id)",
        )
        .with_session(id)
    }

    /// First-proof binding; `Some(verdict)` refuses.
    async fn bind_first(
        &self,
        session: &Session,
        stream: &StreamView,
        stream_id: u64,
        t: u64,
    ) -> Result<Option<Verdict>, EngineError> {
        if let Err(why) = self.policy.check_extensions(stream.extensions.as_ref()) {
            return Ok(Some(Verdict::refuse(
                StatusCode::ParamsRejected,
                format!("the stream does not match the accepted terms: {why}"),
            )));
        }
        if stream.allocation.0 < u128::from(session.params.allocation) {
            return Ok(Some(Verdict::refuse(
                StatusCode::ParamsRejected,
                format!(
                    "stream allocation {} below the accepted allocation {}",
                    stream.allocation.0, session.params.allocation
                ),
            )));
        }
        if t > session.params.create_stream_deadline {
            // Only reachable under the deferred extension: the stream must have been seen
            // created by the deadline.
            let in_time = session
                .matching_stream
                .is_some_and(|(s, at)| s == stream_id && at <= session.params.create_stream_deadline);
            if !in_time {
                return Ok(Some(Verdict::refuse(
                    StatusCode::ParamsRejected,
                    "cannot confirm this stream was created by create_stream_deadline; send a new proposal",
                )));
            }
        }
        Ok(match self.store.bind_stream(session.id, stream_id).await? {
            BindOutcome::Bound => {
                info!(session = ?session.id, stream_id, "stream bound");
                None
            }
            BindOutcome::AlreadyBound(bound) if bound == stream_id => None,
            BindOutcome::AlreadyBound(bound) => Some(Verdict::refuse(
                StatusCode::ProofInvalid,
                format!("this session is bound to stream {bound}; name it in StreamProof"),
            )),
            BindOutcome::StreamTaken(_) => Some(Verdict::refuse(
                StatusCode::ParamsRejected,
                "this stream already backs another session; create a new stream for this session",
            )),
            BindOutcome::NotBindable => {
                Some(Verdict::refuse(StatusCode::ParamsRejected, "session ended; send a new proposal"))
            }
        })
    }

    fn schedule_recheck(&self, id: SessionId, stream: &StreamView) -> Result<(), EngineError> {
        if let Some(stop) = stream.planned_stop {
            let at = stop.saturating_sub(self.limits.recheck_lead_secs);
            self.local()?.rechecks.insert((at, id));
        }
        Ok(())
    }

    /// Enforces the response limits before the service sends a granted response of
    /// `response_len` bytes: the first-response cap (the session is released when exceeded)
    /// and the load cap's byte budget. `Err` carries the verdict to send instead.
    ///
    /// # Errors
    /// Engine failures (the caller must then not serve).
    pub async fn finish_response(&self, grant: &Grant, response_len: u64) -> Result<Result<(), Verdict>, EngineError> {
        match grant.kind {
            GrantKind::First { max_response_bytes } => {
                if response_len <= max_response_bytes {
                    return Ok(Ok(()));
                }
                if let Some(session) = self.store.session(grant.session).await? {
                    let at = session.accepted_at;
                    self.end_session(session, EndReason::FirstResponseTooLarge, at).await?;
                    // This refusal is the termination's delivery (the user is waiting for it);
                    // a standalone copy could overtake it.
                    self.local()?.outbox.retain(|(id, _)| *id != grant.session);
                }
                Ok(Err(Verdict::refuse(
                    StatusCode::ParamsRejected,
                    format!(
                        "the response would be {response_len} bytes, over the first-response cap of {max_response_bytes}; narrow the request (e.g. a lower pagination_limit) and send a new proposal"
                    ),
                )
                .with_session(grant.session)
                .with_termination(permanent())))
            }
            GrantKind::Stream { stream } => {
                let Some(cap) = self.policy.load_cap else { return Ok(Ok(())) };
                let mut local = self.local()?;
                let Some(window) = local.load.get_mut(&stream) else { return Ok(Ok(())) };
                let total = window.bytes.saturating_add(response_len);
                if total > cap.max_bytes {
                    let resume = window.start.saturating_add(cap.window_secs);
                    return Ok(Err(Verdict::refuse(
                        StatusCode::StreamNotActive,
                        format!(
                            "response would exceed the load cap of {} bytes per {} s; retry after chain time {resume}",
                            cap.max_bytes, cap.window_secs
                        ),
                    )
                    .with_session(grant.session)
                    .with_termination(temporary(resume))));
                }
                window.bytes = total;
                Ok(Ok(()))
            }
        }
    }

    /// Pauses one session (overload): its requests get TEMPORARY until `resume_after`.
    ///
    /// # Errors
    /// Engine failures.
    pub async fn suspend_session(
        &self,
        id: SessionId,
        resume_after: u64,
    ) -> Result<Option<ServiceTermination>, EngineError> {
        let Some(mut session) = self.store.session(id).await? else { return Ok(None) };
        session.suspended_until = resume_after;
        self.store.update(&session).await?;
        let termination = temporary(resume_after);
        self.local()?.outbox.push((id, termination));
        Ok(Some(termination))
    }

    /// Ends a session for abuse (PERMANENT).
    ///
    /// # Errors
    /// Engine failures.
    pub async fn terminate_for_abuse(&self, id: SessionId) -> Result<Option<ServiceTermination>, EngineError> {
        let Some(session) = self.store.session(id).await? else { return Ok(None) };
        let at = self.chain.head().await?.time_secs;
        self.end_session(session, EndReason::Abuse, at).await?;
        Ok(Some(permanent()))
    }

    /// Maintenance: every request gets TEMPORARY until `until` (chain time); `None` ends it.
    ///
    /// # Errors
    /// A poisoned lock.
    pub fn set_maintenance(&self, until: Option<u64>) -> Result<(), EngineError> {
        self.local()?.maintenance_until = until;
        Ok(())
    }

    /// Starts maintenance for `secs` of chain time from the chain's current time (0 ends it) and
    /// returns the TEMPORARY termination it means, for the process to push to connected users
    /// (every request meanwhile carries it too).
    ///
    /// # Errors
    /// Chain failures or a poisoned lock.
    pub async fn start_maintenance(&self, secs: u64) -> Result<Option<ServiceTermination>, EngineError> {
        if secs == 0 {
            self.set_maintenance(None)?;
            return Ok(None);
        }
        let until = self.chain.head().await?.time_secs.saturating_add(secs);
        self.set_maintenance(Some(until))?;
        info!(until, "maintenance started");
        Ok(Some(temporary(until)))
    }

    /// Of `ids`, the sessions still being served (pending or bound, not ended): those a
    /// process-wide TEMPORARY termination (maintenance, a restart) concerns.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn open_sessions(&self, ids: &[SessionId]) -> Result<Vec<SessionId>, EngineError> {
        let mut open = Vec::new();
        for id in ids {
            if let Some(session) = self.store.session(*id).await?
                && session.ended().is_none()
            {
                open.push(*id);
            }
        }
        Ok(open)
    }

    /// Before a restart: pauses each of `ids` for `secs` of chain time (durably, so requests
    /// to the restarted process before then get the same TEMPORARY termination) and returns
    /// the terminations to push. Sessions already ended are skipped.
    ///
    /// # Errors
    /// Chain or storage failures.
    pub async fn suspend_for_restart(
        &self,
        ids: &[SessionId],
        secs: u64,
    ) -> Result<Vec<(SessionId, ServiceTermination)>, EngineError> {
        let resume_after = self.chain.head().await?.time_secs.saturating_add(secs);
        let mut suspended = Vec::new();
        for id in self.open_sessions(ids).await? {
            if let Some(termination) = self.suspend_session(id, resume_after).await? {
                suspended.push((id, termination));
            }
        }
        Ok(suspended)
    }

    /// Terminations to deliver standalone (each session's next response carries it too).
    ///
    /// # Errors
    /// A poisoned lock.
    pub fn take_terminations(&self) -> Result<Vec<(SessionId, ServiceTermination)>, EngineError> {
        Ok(std::mem::take(&mut self.local()?.outbox))
    }

    /// Follows one `subscribeEvents` notification.
    ///
    /// # Errors
    /// Engine failures.
    pub async fn on_event(&self, notification: &EventNotification) -> Result<(), EngineError> {
        let ours = self.provider_account();
        let (owner, vault_id) = notification.event.vault();
        let vault = VaultKey { owner: owner.0, vault_id };
        if let Some(stream) = notification.event.stream() {
            self.chain.forget_stream(&owner, vault_id, stream.stream_id);
        }
        match &notification.event {
            Event::StreamCreated { stream, rate, allocation, at } if stream.provider == ours => {
                if let Some(session) = self.store.pending(vault).await?
                    && session.is_pending()
                    && *at <= session.params.create_stream_deadline
                    && *rate >= session.params.rate.max(session.policy.min_rate)
                    && *allocation >= u128::from(session.params.allocation)
                {
                    // The matching stream, created by the deadline: bound now, so it is claimed
                    // even if no StreamProof ever comes (the whole answer fitted the first
                    // response). A stream created later is not bound: the session ends
                    // silently at its deadline.
                    let head = self.chain.head().await?;
                    self.bind_observed(session, stream.stream_id, head.time_secs).await?;
                }
            }
            Event::StreamClosed { stream, at, .. } if stream.provider == ours => {
                let key = StreamKey { vault, stream_id: stream.stream_id };
                if let Some(id) = self.store.bound_session(key).await?
                    && let Some(session) = self.store.session(id).await?
                    && session.ended().is_none()
                {
                    self.end_session(session, EndReason::StreamClosed, *at).await?;
                }
                self.claim_stream(key, None, 1).await?;
            }
            Event::StreamToppedUp { stream, .. } | Event::StreamResumed { stream, .. } if stream.provider == ours => {
                let key = StreamKey { vault, stream_id: stream.stream_id };
                if let Some(id) = self.store.bound_session(key).await?
                    && let Some(view) = self.chain.stream_fresh(&owner, vault_id, stream.stream_id).await?
                {
                    self.schedule_recheck(id, &view)?;
                }
            }
            _ => {}
        }
        if let Some(session) = self.store.pending(vault).await? {
            let t = self.chain.head().await?.time_secs;
            self.recheck_pending(session, t).await?;
        }
        Ok(())
    }

    /// Binds a pending session to a stream this provider observed on chain (its creation event,
    /// or the tick's look at the vault's streams); the stream must name this provider and carry
    /// at least the accepted rate and allocation. A bound stream is claimable; a stream already
    /// closed or paused is claimed right away. `Ok(false)` when nothing was bound.
    async fn bind_observed(&self, session: Session, stream_id: u64, t: u64) -> Result<bool, EngineError> {
        let vault = session.vault;
        let Some(view) = self.chain.stream_fresh(&vault.owner_id(), vault.vault_id, stream_id).await? else {
            return Ok(false);
        };
        // A stream whose extensions the policy does not accept is never bound (as in
        // `bind_first`); its first proof is then refused with the reason.
        if !self.stream_matches(&session, &view) || self.policy.check_extensions(view.extensions.as_ref()).is_err() {
            return Ok(false);
        }
        if self.store.bind_stream(session.id, stream_id).await? != BindOutcome::Bound {
            return Ok(false);
        }
        info!(session = ?session.id, stream_id, "stream bound from the chain");
        let mut planned = Vec::new();
        self.recheck_bound(session.id, t, &mut planned).await?;
        self.submit_claims(planned).await?;
        Ok(true)
    }

    /// Whether `view` is the stream the pending `session` asked for. Closing returns the
    /// unaccrued rest to the vault, so a closed stream's allocation is what accrued before the
    /// close and cannot be compared with the accepted one: a closed stream to this provider at
    /// the accepted rate is bound anyway, which only lets the provider claim what it served.
    fn stream_matches(&self, session: &Session, view: &StreamView) -> bool {
        view.provider == self.provider_account()
            && view.rate >= session.params.rate.max(session.policy.min_rate)
            && (view.state == StreamState::Closed || view.allocation.0 >= u128::from(session.params.allocation))
    }

    /// A pending session at chain time `t`: ended silently past its deadline; else bound to
    /// its matching stream if one exists on chain (searched from the predicted id, at most
    /// [`MATCHING_STREAM_LOOKAHEAD`] streams: this finds a stream whose event this process
    /// missed); else, while the vault must keep `unallocated >= allocation` and does not,
    /// ended with PERMANENT.
    async fn recheck_pending(&self, session: Session, t: u64) -> Result<(), EngineError> {
        if !session.is_pending() {
            return Ok(());
        }
        if session.pending_expired(t) {
            self.end_session(session, EndReason::DeadlineMissed, t).await?;
            return Ok(());
        }
        let vault = session.vault;
        let vault_view = self.chain.vault(&vault.owner_id(), vault.vault_id).await?;
        let next = vault_view.as_ref().map_or(0, |v| v.next_stream_id);
        let first = session.predicted_stream_id.min(next);
        for stream_id in first..next.min(first.saturating_add(MATCHING_STREAM_LOOKAHEAD)) {
            let key = StreamKey { vault, stream_id };
            if self.store.bound_session(key).await?.is_none()
                && self.bind_observed(session.clone(), stream_id, t).await?
            {
                return Ok(());
            }
        }
        let unallocated = vault_view.as_ref().map_or(0, |v| v.unallocated.0);
        if session.matching_stream.is_none() && unallocated < u128::from(session.params.allocation) {
            warn!(session = ?session.id, unallocated, "vault drained while pending");
            self.end_session(session, EndReason::VaultDrained, t).await?;
        }
        Ok(())
    }

    /// Periodic maintenance (call every few seconds), bounded by
    /// [`EngineLimits::tick_sessions_max`] (`max`): visits the next `max` sessions after the
    /// last tick's (pending ones are bound to their stream, ended for their deadline or a
    /// drained vault; ended ones purged after the retention), runs at most `max` due depletion
    /// re-checks, examines the next `max` claimable streams, then submits every claim due as
    /// one batch. Every session is visited within `ceil(sessions / max)` ticks. Does nothing on
    /// a stale view (requests already fail closed).
    ///
    /// # Errors
    /// Engine failures.
    pub async fn tick(&self, now_ms: u64) -> Result<TickStats, EngineError> {
        let head = self.chain.head().await?;
        if now_ms.saturating_sub(head.observed_at_ms) > self.limits.staleness_bound_ms {
            warn!("chain view stale; maintenance skipped");
            return Ok(TickStats::default());
        }
        let t = head.time_secs;
        let max = self.limits.tick_sessions_max.max(1);
        let mut stats = TickStats::default();
        for session in self.next_sessions(max).await? {
            stats.sessions = stats.sessions.saturating_add(1);
            match session.state {
                SessionState::Pending => self.recheck_pending(session, t).await?,
                SessionState::Ended { at, .. } if t > at.saturating_add(self.limits.ended_retention_secs) => {
                    self.store.purge(session.id).await?;
                }
                _ => {}
            }
        }
        let due: Vec<SessionId> = {
            let mut local = self.local()?;
            let mut due = Vec::new();
            while due.len() < max
                && let Some(&(at, id)) = local.rechecks.first()
                && at <= t
            {
                local.rechecks.pop_first();
                due.push(id);
            }
            due
        };
        let mut planned = Vec::new();
        for id in due {
            stats.rechecks = stats.rechecks.saturating_add(1);
            self.recheck_bound(id, t, &mut planned).await?;
        }
        let after = self.local()?.claim_cursor;
        let page = self.store.claimables_after(after, max).await?;
        self.local()?.claim_cursor = page.next;
        for (key, token) in page.streams {
            stats.streams = stats.streams.saturating_add(1);
            if let Some(claim) = self.plan_claim(key, token, self.limits.claim_threshold.max(1), t).await? {
                planned.push(claim);
            }
        }
        stats.claims = self.submit_claims(planned).await?;
        Ok(stats)
    }

    /// The next sessions of the maintenance sweep: at most `max`, in id order after the cursor,
    /// wrapping around to the first ones (never one twice).
    async fn next_sessions(&self, max: usize) -> Result<Vec<Session>, EngineError> {
        let start = self.local()?.session_cursor;
        let mut batch = self.store.sessions_after(start, max).await?;
        if batch.len() < max
            && let Some(start) = start
        {
            let wrapped = self.store.sessions_after(None, max.saturating_sub(batch.len())).await?;
            batch.extend(wrapped.into_iter().take_while(|s| s.id < start));
        }
        self.local()?.session_cursor = if batch.len() < max { None } else { batch.last().map(|s| s.id) };
        Ok(batch)
    }

    /// A bound session's depletion re-check: a closed stream ends the session; a closed or
    /// paused (depleted) stream gets claimed; an active one is re-checked before it stops.
    async fn recheck_bound(&self, id: SessionId, t: u64, planned: &mut Vec<PlannedClaim>) -> Result<(), EngineError> {
        let Some(session) = self.store.session(id).await? else { return Ok(()) };
        let Some(key) = session.stream_key() else { return Ok(()) };
        if session.ended().is_some() {
            return Ok(());
        }
        let Some(view) = self.chain.stream_fresh(&key.vault.owner_id(), key.vault.vault_id, key.stream_id).await?
        else {
            return Ok(());
        };
        match view.state {
            StreamState::Closed => {
                let token = session.token_id;
                self.end_session(session, EndReason::StreamClosed, t).await?;
                planned.extend(self.plan_from_view(key, token, 1, &view).await?);
            }
            // Depleted or paused: collect what accrued; the session survives a resume.
            StreamState::Paused => planned.extend(self.plan_from_view(key, session.token_id, 1, &view).await?),
            StreamState::Active => self.schedule_recheck(id, &view)?,
        }
        Ok(())
    }

    /// The claim due on `key`, if any: at least `min` accrued, or anything accrued on a stream
    /// that stopped (closed or paused). A closed stream also ends its live session (its close
    /// event may have been missed).
    async fn plan_claim(
        &self,
        key: StreamKey,
        token: [u8; 32],
        min: u128,
        t: u64,
    ) -> Result<Option<PlannedClaim>, EngineError> {
        let Some(view) = self.chain.stream_fresh(&key.vault.owner_id(), key.vault.vault_id, key.stream_id).await?
        else {
            self.store.remove_claimable(key).await?;
            return Ok(None);
        };
        if view.state == StreamState::Closed
            && let Some(id) = self.store.bound_session(key).await?
            && let Some(session) = self.store.session(id).await?
            && session.ended().is_none()
        {
            self.end_session(session, EndReason::StreamClosed, t).await?;
        }
        let min = if view.state == StreamState::Active { min } else { 1 };
        self.plan_from_view(key, token, min, &view).await
    }

    async fn plan_from_view(
        &self,
        key: StreamKey,
        token: [u8; 32],
        min: u128,
        view: &StreamView,
    ) -> Result<Option<PlannedClaim>, EngineError> {
        let closed = view.state == StreamState::Closed;
        // Nothing more accrues on a closed stream: what is there is claimed, however little.
        let min = if closed { 1 } else { min };
        if view.accrued.0 == 0 || view.accrued.0 < min {
            if closed && view.accrued.0 == 0 {
                self.store.remove_claimable(key).await?;
            }
            return Ok(None);
        }
        let receipt_paid = view.extensions.as_ref().filter(|e| e.receipt_key.is_some()).map(|e| e.receipt_paid.0);
        let (receipt, payout) = match receipt_paid {
            // A receipt stream pays only what a receipt acknowledges beyond what it paid.
            Some(paid) => match self.store.latest_receipt(key).await? {
                Some(r) if r.body.acknowledged_total > paid => {
                    let payout = r.body.acknowledged_total.saturating_sub(paid).min(view.accrued.0);
                    (Some(r), payout)
                }
                _ => return Ok(None),
            },
            None => (None, view.accrued.0),
        };
        let claim = Claim { stream: key, token_id: token, receipt };
        // A closed stream is forgotten once a claim empties it; one that a receipt pays only in
        // part stays claimable for the receipt acknowledging the rest.
        let emptied = closed && payout == view.accrued.0;
        Ok(Some(PlannedClaim { claim, amount: payout, closed: emptied }))
    }

    /// Submits the planned claims as one batch; forgets closed streams that were claimed.
    async fn submit_claims(&self, planned: Vec<PlannedClaim>) -> Result<u32, EngineError> {
        if planned.is_empty() {
            return Ok(0);
        }
        let claims: Vec<Claim> = planned.iter().map(|p| p.claim.clone()).collect();
        let included = self.claims.claim_batch(&claims).await?;
        let mut count: u32 = 0;
        for (p, ok) in planned.iter().zip(included) {
            if !ok {
                continue;
            }
            count = count.saturating_add(1);
            info!(stream = ?p.claim.stream, amount = p.amount, "claimed");
            if p.closed {
                self.store.remove_claimable(p.claim.stream).await?;
            }
        }
        Ok(count)
    }

    /// Claims `stream` if at least `min` accrued. Forgets streams that are closed and empty.
    async fn claim_stream(&self, key: StreamKey, token: Option<[u8; 32]>, min: u128) -> Result<bool, EngineError> {
        let token = match token {
            Some(token) => token,
            None => match self.store.claimable(key).await? {
                Some(token) => token,
                None => return Ok(false),
            },
        };
        let Some(view) = self.chain.stream_fresh(&key.vault.owner_id(), key.vault.vault_id, key.stream_id).await?
        else {
            self.store.remove_claimable(key).await?;
            return Ok(false);
        };
        let planned = self.plan_from_view(key, token, min, &view).await?;
        Ok(self.submit_claims(planned.into_iter().collect()).await? > 0)
    }

    /// Claims everything claimable now (every page, one batch per page); returns how many
    /// claims were included.
    ///
    /// # Errors
    /// Engine failures.
    pub async fn claim_all(&self) -> Result<u32, EngineError> {
        let max = self.limits.tick_sessions_max.max(1);
        let t = self.chain.head().await?.time_secs;
        let mut after = None;
        let mut count: u32 = 0;
        loop {
            let page = self.store.claimables_after(after, max).await?;
            let mut planned = Vec::new();
            for (key, token) in page.streams {
                planned.extend(self.plan_claim(key, token, 1, t).await?);
            }
            count = count.saturating_add(self.submit_claims(planned).await?);
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(count),
            }
        }
    }

    /// On shutdown: claims everything claimable. Sessions and records are already durable.
    ///
    /// # Errors
    /// Engine failures.
    pub async fn shutdown(&self) -> Result<u32, EngineError> {
        self.claim_all().await
    }

    /// Handles a `DeliveryReceipt` (`/paystreams/receipt/1.0.0`) from `requester` (its
    /// transport identity, as for [`Provider::handle`]): keeps it as the stream's latest
    /// receipt, which the stream's claims then carry, when the stream is bound to a session of
    /// that requester, the receipt names this program, that stream account and stream id,
    /// its signature verifies under the stream's receipt key, and it acknowledges more than
    /// the receipt kept so far. A receipt from a requester with no such session costs no
    /// signature check and no chain read. The answer is a `ReceiptAck` to send back.
    pub async fn on_receipt(&self, requester: Option<&[u8]>, bytes: &[u8]) -> ReceiptAck {
        let receipt = match WireReceipt::decode(bytes) {
            Ok(receipt) => receipt,
            Err(e) => return ReceiptAck::new(ReceiptStatus::Malformed, format!("malformed DeliveryReceipt: {e}"), 0),
        };
        match self.receipt_verdict(requester, &receipt).await {
            Ok(ack) => ack,
            Err(e) => {
                warn!(error = %e, "receipt not checked");
                ReceiptAck::new(
                    ReceiptStatus::Unavailable,
                    "provider cannot check receipts right now; retry shortly",
                    0,
                )
            }
        }
    }

    async fn receipt_verdict(&self, requester: Option<&[u8]>, wire: &WireReceipt) -> Result<ReceiptAck, EngineError> {
        let unknown = || {
            ReceiptAck::new(
                ReceiptStatus::UnknownStream,
                format!(
                    "stream {} backs no session of this peer; send receipts from the peer that proposed and proved for it",
                    wire.stream_id
                ),
                0,
            )
        };
        let Some(requester) = requester else { return Ok(unknown()) };
        let mut found = None;
        for session in self.store.requester_sessions(requester).await?.into_iter().rev() {
            let id = session.id;
            let key = StreamKey { vault: session.vault, stream_id: wire.stream_id };
            // A session that ended (its stream closed) keeps its binding until purged, so a
            // final receipt after the close still counts.
            if session.bound_stream() == Some(wire.stream_id)
                || (session.ended().is_some() && self.store.bound_session(key).await? == Some(id))
            {
                found = Some(session);
                break;
            }
        }
        let Some(session) = found else { return Ok(unknown()) };
        let program_id = payment_streams_program_id();
        let vault = VaultRef {
            program_id,
            owner: session.vault.owner_id(),
            vault_id: session.vault.vault_id,
            token_id: session.token_id,
        };
        if wire.program_id != program_id.to_bytes() || wire.stream_config != vault.stream(wire.stream_id).0 {
            return Ok(ReceiptAck::new(
                ReceiptStatus::Invalid,
                format!(
                    "the receipt names another program or stream account; sign program {program_id}, stream account {} and stream id {}",
                    vault.stream(wire.stream_id),
                    wire.stream_id
                ),
                0,
            ));
        }
        let key = StreamKey { vault: session.vault, stream_id: wire.stream_id };
        let kept_total = |kept: Option<ChainReceipt>| kept.map_or(0, |r| r.body.acknowledged_total);
        // Read fresh: whether the stream is closed decides whether it must be made claimable
        // again (a cached view from before the close would say no).
        let Some(view) = self.chain.stream_fresh(&vault.owner, vault.vault_id, wire.stream_id).await? else {
            return Ok(unknown());
        };
        let Some(receipt_key) = view
            .extensions
            .as_ref()
            .and_then(|e| e.receipt_key.as_deref())
            .and_then(|k| hex::decode(k).ok())
            .and_then(|k| <[u8; 32]>::try_from(k).ok())
        else {
            return Ok(ReceiptAck::new(
                ReceiptStatus::UnknownStream,
                format!("stream {} has no delivery-receipt key: its claims need no receipts", wire.stream_id),
                0,
            ));
        };
        let receipt = ChainReceipt {
            body: ReceiptBody {
                program_id,
                stream_config: AccountId(wire.stream_config),
                stream_id: wire.stream_id,
                acknowledged_total: wire.acknowledged_total,
                deliveries_digest: wire.deliveries_digest,
            },
            signature: wire.signature,
        };
        if !receipt.verify(&receipt_key) {
            return Ok(ReceiptAck::new(
                ReceiptStatus::Invalid,
                "the receipt's signature does not verify under the stream's receipt key; sign the receipt digest with that key",
                kept_total(self.store.latest_receipt(key).await?),
            ));
        }
        let paid = view.extensions.as_ref().map_or(0, |e| e.receipt_paid.0);
        if wire.acknowledged_total <= paid {
            return Ok(ReceiptAck::new(
                ReceiptStatus::NotNewer,
                format!("the stream has already paid {paid} under receipts; acknowledged totals only grow"),
                kept_total(self.store.latest_receipt(key).await?),
            ));
        }
        if self.store.put_receipt(key, &receipt).await? {
            debug!(?key, total = wire.acknowledged_total, "receipt kept");
            if view.state == StreamState::Closed {
                // A closed stream may have been claimed and forgotten before this receipt
                // acknowledged the rest: claimable again (the next tick claims it; a closed
                // stream is claimed whatever the amount, nothing more accrues on it).
                self.store.add_claimable(key, session.token_id).await?;
            }
            return Ok(ReceiptAck::new(ReceiptStatus::Kept, "receipt kept", wire.acknowledged_total));
        }
        let kept = kept_total(self.store.latest_receipt(key).await?);
        Ok(ReceiptAck::new(
            ReceiptStatus::NotNewer,
            format!("a receipt acknowledging {kept} is already kept; acknowledged totals only grow"),
            kept,
        ))
    }
}

/// A claim about to be submitted.
#[derive(Clone, Debug)]
struct PlannedClaim {
    claim: Claim,
    amount: u128,
    /// The stream is closed and this claim empties it: forgotten once the claim is included.
    closed: bool,
}

/// What one [`Provider::tick`] touched.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct TickStats {
    /// Sessions visited by the sweep.
    pub sessions: usize,
    /// Depletion re-checks run.
    pub rechecks: usize,
    /// Claimable streams examined.
    pub streams: usize,
    /// Claims included.
    pub claims: u32,
}
