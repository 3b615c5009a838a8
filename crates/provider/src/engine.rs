//! The provider engine: one call per request, transport-agnostic.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Mutex, MutexGuard},
};

use paystreams_lez_core::{AccountId, crypto::PublicKey};
use paystreams_program::{Event, state::StreamState};
use paystreams_rpc::{
    EventNotification, StreamView,
    chain_view::{ChainError, ChainHead, ChainView},
    views::token_label,
};
use paystreams_wire::{
    EligibilityProof, EligibilityStatus, ServiceTermination, StatusCode, StreamProof, StreamProposal, TerminationType,
    VaultOwnerAuthBody, verify_proposal,
};
use tracing::{debug, info, warn};

use crate::{
    claims::ClaimSubmitter,
    keys::KeyCache,
    policy::{EngineLimits, PolicyError, ProviderPolicy},
    session::{AcceptedParams, EndReason, PinnedPolicy, Session, SessionId, SessionState, StreamKey, VaultKey},
    store::{AcceptOutcome, BindOutcome, SessionStore, StoreError},
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
    /// Sessions each requester (a transport identity, e.g. a libp2p peer id) proposed or proved
    /// for, newest last: a StreamProof names only a per-vault stream id, which many sessions
    /// share, so the requester's own sessions are tried before any other.
    requesters: HashMap<Vec<u8>, Vec<SessionId>>,
}

/// Streams past a pending session's predicted id searched for its matching stream before the
/// session is ended for a drained vault.
const MATCHING_STREAM_LOOKAHEAD: u64 = 16;
/// Sessions remembered per requester.
const SESSIONS_PER_REQUESTER: usize = 8;
/// Requesters remembered; beyond it the map starts over (a hint only saves work).
const REQUESTERS_MAX: usize = 1_000_000;
/// Candidate lists at most this long are searched even for a requester whose own sessions did
/// not match (it may have proposed through another process sharing the session store); longer
/// ones only for requesters not seen before, so a forger cannot make every request cost one
/// signature check per session sharing its stream id.
const SCAN_ALWAYS_MAX: usize = 32;

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

    /// Judges one request. `request_digest` is the service's canonical request digest
    /// ([`paystreams_wire::RequestDigest::digest`]); `eligibility_proof` the raw
    /// `EligibilityProof` bytes; `now_ms` this process's wall clock (Unix ms), used only to
    /// bound the staleness of the chain view — every rule is judged in chain time.
    pub async fn handle(&self, request_digest: &[u8; 32], eligibility_proof: Option<&[u8]>, now_ms: u64) -> Verdict {
        self.handle_from(None, request_digest, eligibility_proof, now_ms).await
    }

    /// As [`Provider::handle`], naming the requester's transport identity (e.g. its libp2p peer
    /// id). The engine remembers which sessions each requester proposed or proved for and
    /// checks a StreamProof against those first, so verification costs one signature check
    /// however many sessions share the proof's stream id. A proof is only ever granted under
    /// its own session key; on a stream id shared by more than 32 sessions, a requester that
    /// already has sessions is held to them (a proof for none of them is refused without
    /// searching the others), so forged proofs stay cheap.
    pub async fn handle_from(
        &self,
        requester: Option<&[u8]>,
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
        let result = match &decoded {
            EligibilityProof::Proposal(proposal) => self.handle_proposal(proposal, now_ms).await,
            EligibilityProof::Proof(proof) => self.handle_proof(requester, request_digest, proof, now_ms).await,
        };
        if let (Some(requester), Ok(verdict)) = (requester, &result)
            && let Some(grant) = &verdict.grant
        {
            self.remember_requester(requester, grant.session);
        }
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

    async fn handle_proposal(&self, proposal: &StreamProposal, now_ms: u64) -> Result<Verdict, EngineError> {
        let vp = &proposal.vault_proof;
        let params = &proposal.stream_params;
        if vp.provider_id != self.policy.provider_id {
            return Ok(Verdict::refuse(
                StatusCode::ProofInvalid,
                format!("VaultProof.provider_id names another provider; this provider is {}", self.provider_account()),
            ));
        }
        if !self.policy.accepts_service(&params.service_id) {
            return Ok(Verdict::refuse(
                StatusCode::ParamsRejected,
                format!("service_id not served; accepted service ids: {}", self.policy.service_ids.join(", ")),
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
        // The vault PDA is derived from the owner's account (from the key) and vault_id.
        let owner = AccountId::from_public_key(&vp.owner_public_key);
        let vault_key = VaultKey { owner: owner.0, vault_id: vp.vault_id };
        let head = match self.head(now_ms, StatusCode::ParamsRejected).await? {
            Ok(head) => head,
            Err(verdict) => return Ok(verdict),
        };
        let t = head.time_secs;
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
        if let Err(e) = verify_proposal(proposal) {
            return Ok(Verdict::refuse(StatusCode::ProofInvalid, format!("owner_signature invalid: {e}")));
        }
        // Every authentic proposal reaching the parameter checks is one attempt.
        let attempts = self.store.record_attempt(vault_key, t, self.limits.attempt_window_secs).await?;
        let wire = self.policy.wire();
        let Some(token) = wire.token(&vp.token_id) else {
            let accepted: Vec<String> = wire.accepted_tokens.iter().map(|t| token_label(&t.token_id)).collect();
            return Ok(Verdict::refuse(
                StatusCode::ParamsRejected,
                format!("vault token {} not accepted; accepted tokens: {}", vault.token_id, accepted.join(", ")),
            ));
        };
        if params.stream_rate < token.min_rate {
            return Ok(Verdict::refuse(
                StatusCode::ParamsRejected,
                format!(
                    "stream_rate {} below the minimum {}; propose at least {}",
                    params.stream_rate, token.min_rate, token.min_rate
                ),
            ));
        }
        if params.allocation < token.min_allocation {
            return Ok(Verdict::refuse(
                StatusCode::ParamsRejected,
                format!(
                    "allocation {} below the minimum {}; propose at least {}",
                    params.allocation, token.min_allocation, token.min_allocation
                ),
            ));
        }
        let latest = t.saturating_add(self.policy.max_create_stream_deadline_delay);
        let deadline = params.create_stream_deadline;
        if deadline < t || deadline > latest {
            return Ok(Verdict::refuse(
                StatusCode::ParamsRejected,
                format!(
                    "create_stream_deadline {deadline} outside [{t}, {latest}] (chain seconds); propose a deadline in that band"
                ),
            ));
        }
        if vault.unallocated.0 < u128::from(params.allocation) {
            return Ok(Verdict::refuse(
                StatusCode::ParamsRejected,
                format!(
                    "allocation {} exceeds the vault's unallocated {}; deposit more or propose at most {}",
                    params.allocation, vault.unallocated.0, vault.unallocated.0
                ),
            ));
        }
        if let Some(pending) = self.store.pending(vault_key).await?
            && pending.is_pending()
            && !pending.pending_expired(t)
        {
            return Ok(Verdict::refuse(
                StatusCode::ParamsRejected,
                format!(
                    "a proposal for this vault is pending until chain time {}; create its stream or wait for the deadline",
                    pending.params.create_stream_deadline
                ),
            ));
        }
        if attempts > self.limits.attempt_cap {
            return Ok(Verdict::refuse(
                StatusCode::ParamsRejected,
                format!(
                    "more than {} parameter attempts for this vault within {} s; wait before proposing again",
                    self.limits.attempt_cap, self.limits.attempt_window_secs
                ),
            ));
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
        Ok(match self.store.accept(&session, t).await? {
            AcceptOutcome::Accepted => {
                info!(session = ?id, vault = vp.vault_id, "proposal accepted");
                Verdict::granted(Grant {
                    session: id,
                    kind: GrantKind::First { max_response_bytes: self.policy.first_response_cap },
                })
            }
            AcceptOutcome::PendingExists(_) => Verdict::refuse(
                StatusCode::ParamsRejected,
                "a proposal for this vault is pending; create its stream or wait for its deadline",
            ),
            AcceptOutcome::ProposalUsed => Verdict::refuse(
                StatusCode::ParamsRejected,
                "this proposal was already accepted once; sign a new proposal with a fresh session key",
            ),
            AcceptOutcome::CandidatesFull => Verdict::refuse(
                StatusCode::ParamsRejected,
                format!("too many sessions await stream id {}; retry later", vault.next_stream_id),
            ),
        })
    }

    fn remember_requester(&self, requester: &[u8], session: SessionId) {
        let Ok(mut local) = self.local() else { return };
        if local.requesters.len() >= REQUESTERS_MAX && !local.requesters.contains_key(requester) {
            local.requesters.clear();
        }
        let sessions = local.requesters.entry(requester.to_vec()).or_default();
        if sessions.last() != Some(&session) {
            sessions.retain(|s| *s != session);
            if sessions.len() >= SESSIONS_PER_REQUESTER {
                sessions.remove(0);
            }
            sessions.push(session);
        }
    }

    /// The session whose key signed `digest`: first among the requester's own sessions, then
    /// among those indexed under the proof's stream id (see [`SCAN_ALWAYS_MAX`]).
    async fn find_session(
        &self,
        requester: Option<&[u8]>,
        digest: &[u8; 32],
        proof: &StreamProof,
    ) -> Result<Option<Session>, EngineError> {
        let hinted: Vec<SessionId> = requester
            .and_then(|r| self.local().ok().and_then(|local| local.requesters.get(r).cloned()))
            .unwrap_or_default();
        for id in hinted.iter().rev() {
            if let Some(session) = self.store.session(*id).await?
                // A pending session may name any stream of its vault (the binding checks it).
                && session.bound_stream().is_none_or(|bound| bound == proof.stream_id)
                && self.keys.verify(&session.session_key, digest, proof)
            {
                return Ok(Some(session));
            }
        }
        let candidates = self.store.candidates(proof.stream_id).await?;
        if !hinted.is_empty() && candidates.len() > SCAN_ALWAYS_MAX {
            return Ok(None);
        }
        Ok(candidates.into_iter().find(|s| !hinted.contains(&s.id) && self.keys.verify(&s.session_key, digest, proof)))
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

    #[allow(clippy::too_many_lines, reason = "the proof checks read best in the spec's order, in one place")]
    async fn handle_proof(
        &self,
        requester: Option<&[u8]>,
        digest: &[u8; 32],
        proof: &StreamProof,
        now_ms: u64,
    ) -> Result<Verdict, EngineError> {
        let Some(session) = self.find_session(requester, digest, proof).await? else {
            return Ok(Verdict::refuse(
                StatusCode::ProofInvalid,
                format!(
                    "signature does not verify under the session key of any session for stream {}; sign the request digest with your session key",
                    proof.stream_id
                ),
            ));
        };
        let id = session.id;
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
                {
                    // Index it so the first proof finds the session even if the user's stream
                    // did not land on the predicted id; bucket overflow only costs that lookup.
                    if !self.store.index(session.id, stream.stream_id).await? {
                        warn!(stream_id = stream.stream_id, "candidate bucket full");
                    }
                    let matches = *rate >= session.params.rate && *allocation >= u128::from(session.params.allocation);
                    // One check-and-write: a proof may bind the session meanwhile.
                    if matches && session.matching_stream.is_none() {
                        self.store.set_matching_stream(session.id, stream.stream_id, *at).await?;
                    }
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
        self.recheck_pending_vault(vault).await
    }

    /// While a proposal is pending and no matching stream exists, the vault must keep
    /// `unallocated >= allocation`; otherwise PERMANENT.
    async fn recheck_pending_vault(&self, vault: VaultKey) -> Result<(), EngineError> {
        let Some(session) = self.store.pending(vault).await? else { return Ok(()) };
        if !session.is_pending() || session.matching_stream.is_some() {
            return Ok(());
        }
        let head = self.chain.head().await?;
        if session.pending_expired(head.time_secs) {
            return Ok(());
        }
        let vault_view = self.chain.vault(&vault.owner_id(), vault.vault_id).await?;
        let unallocated = vault_view.as_ref().map_or(0, |v| v.unallocated.0);
        if unallocated < u128::from(session.params.allocation) {
            // The allocation may have moved into the session's own stream, created in a block
            // whose event has not reached this process yet: look before ending the session.
            let next = vault_view.as_ref().map_or(0, |v| v.next_stream_id);
            let first = session.predicted_stream_id.min(next);
            for stream_id in first..next.min(first.saturating_add(MATCHING_STREAM_LOOKAHEAD)) {
                if let Some(stream) = self.chain.stream_fresh(&vault.owner_id(), vault.vault_id, stream_id).await?
                    && stream.provider == self.provider_account()
                    && stream.rate >= session.params.rate
                    && stream.allocation.0 >= u128::from(session.params.allocation)
                {
                    return Ok(());
                }
            }
            warn!(session = ?session.id, unallocated, "vault drained while pending");
            self.end_session(session, EndReason::VaultDrained, head.time_secs).await?;
        }
        Ok(())
    }

    /// Periodic maintenance (call every few seconds): drops expired pending sessions,
    /// re-checks pending vaults and bound streams due for their depletion re-check, claims
    /// streams whose accrued amount crossed the threshold, and purges old ended sessions.
    /// Does nothing on a stale view (requests already fail closed).
    ///
    /// # Errors
    /// Engine failures.
    pub async fn tick(&self, now_ms: u64) -> Result<(), EngineError> {
        let head = self.chain.head().await?;
        if now_ms.saturating_sub(head.observed_at_ms) > self.limits.staleness_bound_ms {
            warn!("chain view stale; maintenance skipped");
            return Ok(());
        }
        let t = head.time_secs;
        for session in self.store.sessions().await? {
            match session.state {
                SessionState::Pending if session.pending_expired(t) => {
                    self.end_session(session, EndReason::DeadlineMissed, t).await?;
                }
                SessionState::Pending => self.recheck_pending_vault(session.vault).await?,
                SessionState::Ended { at, .. } if t > at.saturating_add(self.limits.ended_retention_secs) => {
                    self.store.purge(session.id).await?;
                }
                _ => {}
            }
        }
        let due: Vec<(u64, SessionId)> = {
            let mut local = self.local()?;
            let later = local.rechecks.split_off(&(t.saturating_add(1), SessionId([0; 32])));
            std::mem::replace(&mut local.rechecks, later).into_iter().collect()
        };
        for (_, id) in due {
            self.recheck_bound(id, t).await?;
        }
        self.claim_over(self.limits.claim_threshold.max(1)).await?;
        Ok(())
    }

    async fn recheck_bound(&self, id: SessionId, t: u64) -> Result<(), EngineError> {
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
                self.claim_stream(key, Some(token), 1).await?;
            }
            StreamState::Paused => {
                // Depleted or paused: collect what accrued; the session survives a resume.
                self.claim_stream(key, Some(session.token_id), 1).await?;
            }
            StreamState::Active => self.schedule_recheck(id, &view)?,
        }
        Ok(())
    }

    /// Claims `stream` if at least `min` accrued. Forgets streams that are closed and empty.
    async fn claim_stream(&self, key: StreamKey, token: Option<[u8; 32]>, min: u128) -> Result<bool, EngineError> {
        let token = match token {
            Some(token) => token,
            None => match self.store.claimables().await?.into_iter().find(|(k, _)| *k == key) {
                Some((_, token)) => token,
                None => return Ok(false),
            },
        };
        let Some(view) = self.chain.stream_fresh(&key.vault.owner_id(), key.vault.vault_id, key.stream_id).await?
        else {
            self.store.remove_claimable(key).await?;
            return Ok(false);
        };
        let closed = view.state == StreamState::Closed;
        if view.accrued.0 == 0 || view.accrued.0 < min {
            if closed && view.accrued.0 == 0 {
                self.store.remove_claimable(key).await?;
            }
            return Ok(false);
        }
        let claimed = self.claims.claim(key, token).await?;
        if claimed {
            info!(?key, amount = view.accrued.0, "claimed");
            if closed {
                self.store.remove_claimable(key).await?;
            }
        }
        Ok(claimed)
    }

    async fn claim_over(&self, min: u128) -> Result<u32, EngineError> {
        let mut count: u32 = 0;
        for (key, token) in self.store.claimables().await? {
            if self.claim_stream(key, Some(token), min).await? {
                count = count.saturating_add(1);
            }
        }
        Ok(count)
    }

    /// Claims everything claimable now; returns how many claims were included.
    ///
    /// # Errors
    /// Engine failures.
    pub async fn claim_all(&self) -> Result<u32, EngineError> {
        self.claim_over(1).await
    }

    /// On shutdown: claims everything claimable. Sessions and records are already durable.
    ///
    /// # Errors
    /// Engine failures.
    pub async fn shutdown(&self) -> Result<u32, EngineError> {
        self.claim_all().await
    }
}
