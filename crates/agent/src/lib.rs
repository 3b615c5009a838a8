//! `paystream agent`: the user side of LIP-155 as a local service. An app on any stack asks
//! the agent for the `EligibilityProof` to attach to its own request, sends the request
//! itself, and reports the provider's answer back; the agent runs the durable user engine
//! ([`paystreams_user::User`]) for one owner key: proposals that honour the promise ledger and
//! the refused-proposal history, the stream created after an accepted proposal, stream proofs
//! afterwards, top-ups within a spending cap, reactions to terminations.
//!
//! See `docs/agent.md` (and `docs/agent.openapi.json` for the HTTP API, [`http`]).

#![deny(clippy::arithmetic_side_effects, clippy::indexing_slicing)]

pub mod http;
pub mod ledger;

use std::{
    collections::{BTreeMap, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use libp2p::{PeerId, identity::Keypair};
use paystreams_lez_core::{AccountId, crypto::SecretKey};
use paystreams_program::{
    client::{self, VaultRef},
    payment_streams_program_id,
    state::StreamState,
};
use paystreams_rpc::{
    chain_view::{ChainError, ChainView, ChainWriter, SubmitOutcome},
    clock::wall_clock_ms,
};
use paystreams_store::{StoreClient, StoreQueryRequest, net::split_peer_addr};
use paystreams_user::{AutoTopUp, Notice, Phase, Reaction, Session, Terms, User, UserConfig, UserError};
use paystreams_wire::{EligibilityStatus, ProviderAdvert, RequestDigest, ServiceTermination, StatusCode};
use serde_json::{Value, json};
use tracing::{info, warn};

pub use ledger::{Ledger, Recorder, StreamSpend};

/// Most warnings kept (oldest dropped first).
pub const WARNINGS_MAX: usize = 200;
/// Most settled sessions remembered for duplicate outcomes.
pub const SETTLED_MAX: usize = 1_000;
/// Most providers whose policy is cached.
pub const PROVIDERS_MAX: usize = 256;
/// Longest provider address accepted.
pub const PROVIDER_ADDR_MAX: usize = 512;
/// Longest service id accepted (the spec's `service_id` is short; Store's is 27 bytes).
pub const SERVICE_ID_MAX: usize = 256;

/// Why the agent could not do what was asked. Each maps to one HTTP status (see [`http`]).
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The request itself is wrong (400).
    #[error("{0}")]
    BadRequest(String),
    /// Nothing by that name (404).
    #[error("{0}")]
    NotFound(String),
    /// The state does not allow it now; the message says what to do (409).
    #[error("{0}")]
    Conflict(String),
    /// Too many refused proposals to this provider for now (429).
    #[error("{0}")]
    RetryLater(String),
    /// The provider could not be reached or answered nonsense (502).
    #[error("{0}")]
    Provider(String),
    /// The chain or the local store failed (503).
    #[error("{0}")]
    Unavailable(String),
}

impl From<ChainError> for AgentError {
    fn from(e: ChainError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

impl From<UserError> for AgentError {
    fn from(e: UserError) -> Self {
        let text = e.to_string();
        match e {
            UserError::RetryCap(_) => Self::RetryLater(text),
            UserError::ProposalPending(_)
            | UserError::Overpromise(_)
            | UserError::NoVault
            | UserError::TokenNotAccepted
            | UserError::ServiceNotServed
            | UserError::SessionOpen(_)
            | UserError::Paused(_)
            | UserError::DeadlineMissed(_)
            | UserError::NoStream
            | UserError::NoSession => Self::Conflict(text),
            UserError::Chain(_)
            | UserError::Store(_)
            | UserError::Wire(_)
            | UserError::Poisoned
            | UserError::BadSessionKey => Self::Unavailable(text),
        }
    }
}

/// What the agent proposes and how it keeps streams going.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// The paying vault.
    pub vault_id: u64,
    /// The vault's token (`[0; 32]`: native).
    pub token_id: [u8; 32],
    /// Rate per second and allocation to offer (raised to the provider's minimums).
    pub rate: u64,
    pub allocation: u64,
    /// Top a stream up when it has at most `when_remaining_secs` left (or is spent), instead of
    /// opening a new session.
    pub top_up: Option<AutoTopUp>,
    /// Most the agent allocates in total (new streams and top-ups, since its ledger began).
    pub spending_cap: Option<u128>,
    /// The user engine's options (its own automatic top-up is not used: the agent tops up
    /// within the cap).
    pub user: UserConfig,
}

/// What a proof answer is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ProofKind {
    /// A signed `StreamProposal`: no session yet; report the answer with `/v1/outcome`.
    Proposal,
    /// A `StreamProof` over the request digest.
    StreamProof,
}

impl ProofKind {
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Proposal => "proposal",
            Self::StreamProof => "stream_proof",
        }
    }
}

/// The proof to attach, and what it belongs to.
#[derive(Clone, Debug)]
pub struct ProofAnswer {
    pub proof: Vec<u8>,
    pub kind: ProofKind,
    pub session: [u8; 32],
    pub stream_id: Option<u64>,
    pub provider: ProviderInfo,
    /// The peer id the request must come from (see [`Agent::identity`]).
    pub requester: PeerId,
}

/// A provider as the agent knows it: its address, peer id and advert.
#[derive(Clone, Debug)]
pub struct ProviderInfo {
    pub addr: String,
    pub peer_id: PeerId,
    pub advert: ProviderAdvert,
}

/// A request digest given as is (the app computed the service's canonical digest itself).
struct GivenDigest([u8; 32]);

impl RequestDigest for GivenDigest {
    fn domain_prefix(&self) -> [u8; 32] {
        [0; 32]
    }
    fn canonical_body(&self) -> Vec<u8> {
        Vec::new()
    }
    fn digest(&self) -> [u8; 32] {
        self.0
    }
}

/// The request a proof is for.
#[derive(Clone, Debug)]
pub enum RequestRef {
    /// The service's request digest (32 bytes).
    Digest([u8; 32]),
    /// An encoded Store v3 `StoreQueryRequest`; the agent computes its canonical digest.
    Store(Vec<u8>),
}

impl RequestRef {
    fn digest(&self) -> Result<[u8; 32], AgentError> {
        match self {
            Self::Digest(d) => Ok(*d),
            Self::Store(bytes) => {
                let request = StoreQueryRequest::decode(bytes).map_err(|e| {
                    AgentError::BadRequest(format!("store_request is not an encoded StoreQueryRequest: {e}"))
                })?;
                Ok(request.canonical().digest())
            }
        }
    }
}

/// A warning for the user (and the dashboard).
#[derive(Clone, PartialEq, Eq, Debug, serde::Serialize)]
pub struct Warning {
    /// `low_balance`, `stream_running_out`, `topped_up`, `stream_closed`, `proposal_refused`,
    /// `terminated`, `paused`, `spending_cap`.
    pub kind: String,
    /// Wall-clock Unix milliseconds when last seen.
    pub at_ms: u64,
    pub provider: Option<String>,
    pub session: Option<String>,
    pub stream_id: Option<u64>,
    pub message: String,
}

/// The agent for one owner key.
pub struct Agent<C> {
    owner: SecretKey,
    config: AgentConfig,
    chain: Recorder<C>,
    user: User<Recorder<C>>,
    ledger: Arc<Ledger>,
    /// Serialises every engine operation (proofs, outcomes, closes, monitoring).
    ops: tokio::sync::Mutex<()>,
    providers: Mutex<BTreeMap<String, ProviderInfo>>,
    warnings: Mutex<VecDeque<Warning>>,
    /// What the last outcome of a session that no longer exists answered (duplicates get it).
    settled: Mutex<VecDeque<([u8; 32], Value)>>,
}

impl<C> std::fmt::Debug for Agent<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent").field("owner", &self.owner.account_id()).finish_non_exhaustive()
    }
}

fn hex32(text: &str, what: &str) -> Result<[u8; 32], AgentError> {
    let bytes = hex::decode(text.trim().trim_start_matches("0x"))
        .map_err(|_| AgentError::BadRequest(format!("{what} must be 64 hex characters")))?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| AgentError::BadRequest(format!("{what} must be 32 bytes")))
}

/// Parses a session id (64 hex characters).
///
/// # Errors
/// Not 32 bytes of hex.
pub fn parse_session_id(text: &str) -> Result<[u8; 32], AgentError> {
    hex32(text, "session")
}

/// Parses a request digest (64 hex characters).
///
/// # Errors
/// Not 32 bytes of hex.
pub fn parse_digest(text: &str) -> Result<[u8; 32], AgentError> {
    hex32(text, "request_digest")
}

fn reaction_json(reaction: &Reaction) -> Value {
    match reaction {
        Reaction::Served => json!({ "reaction": "served" }),
        Reaction::StreamCreated { stream_id } => json!({ "reaction": "stream_created", "stream_id": stream_id }),
        Reaction::Adjust { desc } => json!({
            "reaction": "proposal_refused",
            "desc": desc,
            "next": "ask /v1/proof again: the agent proposes anew (within the provider's retry cap)",
        }),
        Reaction::Abandon { desc } => json!({
            "reaction": "abandoned",
            "desc": desc,
            "next": "the proposal cannot be used; check the agent's vault, token and terms",
        }),
        Reaction::ResendFresh { desc } => json!({
            "reaction": "resend_fresh",
            "desc": desc,
            "next": "send the request again with a fresh request id and a new proof from /v1/proof, from the agent's identity",
        }),
        Reaction::StreamInactive { state, desc } => json!({
            "reaction": "stream_inactive",
            "state": state.map(|s| format!("{s:?}").to_lowercase()),
            "desc": desc,
        }),
        Reaction::WaitUntil { resume_after } => json!({ "reaction": "paused", "resume_after": resume_after }),
        Reaction::Closed { stream_id } => json!({ "reaction": "closed", "stream_id": stream_id }),
        Reaction::Ignored => json!({ "reaction": "ignored" }),
    }
}

fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Proposed => "proposed",
        Phase::Creating { .. } => "creating",
        Phase::Streaming { .. } => "streaming",
        Phase::Paused { .. } => "paused",
    }
}

impl<C: ChainView + ChainWriter + Clone + 'static> Agent<C> {
    /// The agent over `store` (the owner's user store, reconciled against the chain on open)
    /// and `ledger`.
    ///
    /// # Errors
    /// Chain or store failures.
    pub async fn open(
        owner: SecretKey,
        chain: C,
        config: AgentConfig,
        store: paystreams_user::UserStore,
        ledger: Ledger,
    ) -> Result<Self, AgentError> {
        let ledger = Arc::new(ledger);
        let chain = Recorder::new(chain, Arc::clone(&ledger));
        let user_config = UserConfig { auto_top_up: None, ..config.user };
        let user = User::open(owner.clone(), chain.clone(), user_config, store).await?;
        Ok(Self {
            owner,
            config,
            chain,
            user,
            ledger,
            ops: tokio::sync::Mutex::new(()),
            providers: Mutex::new(BTreeMap::new()),
            warnings: Mutex::new(VecDeque::new()),
            settled: Mutex::new(VecDeque::new()),
        })
    }

    /// The owner account.
    #[must_use]
    pub fn owner(&self) -> AccountId {
        self.owner.account_id()
    }

    #[must_use]
    pub const fn config(&self) -> &AgentConfig {
        &self.config
    }

    #[must_use]
    pub const fn user(&self) -> &User<Recorder<C>> {
        &self.user
    }

    #[must_use]
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    fn warn(
        &self,
        kind: &str,
        provider: Option<[u8; 32]>,
        session: Option<[u8; 32]>,
        stream_id: Option<u64>,
        message: String,
    ) {
        let warning = Warning {
            kind: kind.to_owned(),
            at_ms: wall_clock_ms(),
            provider: provider.map(|p| AccountId(p).to_string()),
            session: session.map(hex::encode),
            stream_id,
            message,
        };
        if let Ok(mut warnings) = self.warnings.lock() {
            // One entry per condition: a repeated one moves to the end with its new time.
            warnings.retain(|w| {
                !(w.kind == warning.kind
                    && w.provider == warning.provider
                    && w.session == warning.session
                    && w.stream_id == warning.stream_id)
            });
            if warnings.len() >= WARNINGS_MAX {
                warnings.pop_front();
            }
            warnings.push_back(warning);
        }
    }

    /// Current warnings, oldest first.
    #[must_use]
    pub fn warnings(&self) -> Vec<Warning> {
        self.warnings.lock().map(|w| w.iter().cloned().collect()).unwrap_or_default()
    }

    /// The provider at `addr` (`/ip4/…/tcp/…/p2p/<peer id>`): its policy advert, fetched once
    /// over `/paystreams/policy/1.0.0` and cached.
    ///
    /// # Errors
    /// A bad address, or a provider that cannot be reached or sends no valid advert.
    pub async fn provider(&self, addr: &str) -> Result<ProviderInfo, AgentError> {
        let addr = addr.trim();
        if addr.is_empty() || addr.len() > PROVIDER_ADDR_MAX {
            return Err(AgentError::BadRequest(format!(
                "provider must be the provider's multiaddr (/ip4/HOST/tcp/PORT/p2p/PEER_ID), at most {PROVIDER_ADDR_MAX} characters"
            )));
        }
        let (peer_id, _) = split_peer_addr(addr).map_err(|e| {
            AgentError::BadRequest(format!(
                "provider {addr:?} is not usable ({e}); give the multiaddr the provider printed, ending in /p2p/PEER_ID"
            ))
        })?;
        if let Some(known) = self.providers.lock().ok().and_then(|p| p.get(addr).cloned()) {
            return Ok(known);
        }
        let unreachable = |e: &dyn std::fmt::Display| {
            AgentError::Provider(format!(
                "could not read the policy of the provider at {addr}: {e}; is it running there?"
            ))
        };
        let probe = StoreClient::connect(addr).await.map_err(|e| unreachable(&e))?;
        let advert = probe.advert().await;
        probe.disconnect().await;
        let advert = advert.map_err(|e| unreachable(&e))?;
        let info = ProviderInfo { addr: addr.to_owned(), peer_id, advert };
        if let Ok(mut providers) = self.providers.lock() {
            if providers.len() >= PROVIDERS_MAX {
                providers.clear();
            }
            providers.insert(addr.to_owned(), info.clone());
        }
        Ok(info)
    }

    fn known_peer(&self, provider: &[u8; 32]) -> Option<PeerId> {
        self.providers.lock().ok()?.values().find(|p| p.advert.provider_id == *provider).map(|p| p.peer_id)
    }

    /// The libp2p identity the owner uses towards `provider` (one per provider, kept in the user
    /// store). Requests carrying the agent's proofs must come from it: the provider finds the
    /// session of a stream proof by the requester that proposed it.
    ///
    /// # Errors
    /// Store failures or an unusable stored key.
    pub async fn identity(&self, provider: &ProviderInfo) -> Result<Keypair, AgentError> {
        let mut secret = self.user.transport_identity(&provider.advert.provider_id).await?;
        Keypair::ed25519_from_bytes(&mut secret)
            .map_err(|e| AgentError::Unavailable(format!("the stored transport identity is unusable: {e}")))
    }

    fn vault_ref(&self) -> VaultRef {
        VaultRef {
            program_id: payment_streams_program_id(),
            owner: self.owner(),
            vault_id: self.config.vault_id,
            token_id: self.config.token_id,
        }
    }

    fn cap_allows(&self, more: u128) -> Result<bool, AgentError> {
        let Some(cap) = self.config.spending_cap else { return Ok(true) };
        let spent = self
            .ledger
            .total_allocated()
            .ok_or_else(|| AgentError::Unavailable("the spending ledger overflows".into()))?;
        Ok(spent.checked_add(more).is_some_and(|total| total <= cap))
    }

    /// Tops the session's stream up when it runs low and the policy and the cap allow.
    async fn top_up_if_low(&self, session: &Session) -> Result<(), AgentError> {
        let Some(rule) = self.config.top_up else { return Ok(()) };
        let Some(stream_id) = session.phase.stream_id() else { return Ok(()) };
        let Some(view) = self.chain.stream_fresh(&self.owner(), session.vault_id, stream_id).await? else {
            return Ok(());
        };
        if view.state == StreamState::Closed {
            return Ok(());
        }
        let now = self.chain.head().await?.time_secs;
        let remaining = view.planned_stop.map_or(0, |stop| stop.saturating_sub(now));
        if view.unaccrued.0 != 0 && remaining > rule.when_remaining_secs {
            return Ok(());
        }
        if !self.cap_allows(rule.amount)? {
            self.warn(
                "spending_cap",
                Some(session.provider),
                Some(session.session_id),
                Some(stream_id),
                format!("a top-up of {} would pass the spending cap; the stream is left to run out", rule.amount),
            );
            return Ok(());
        }
        let call = client::top_up_stream(&self.vault_ref(), stream_id, rule.amount);
        match self.chain.submit(&call, &[&self.owner]).await? {
            SubmitOutcome::Included { .. } => {
                info!(stream_id, amount = rule.amount, "stream topped up");
                self.warn(
                    "topped_up",
                    Some(session.provider),
                    Some(session.session_id),
                    Some(stream_id),
                    format!("stream {stream_id} was topped up by {}", rule.amount),
                );
            }
            SubmitOutcome::Failed { name, .. } => self.warn(
                "low_balance",
                Some(session.provider),
                Some(session.session_id),
                Some(stream_id),
                format!("topping up stream {stream_id} failed ({name}): deposit into vault {}", session.vault_id),
            ),
        }
        Ok(())
    }

    /// The proof to attach to a request to `provider` for `service_id`: a stream proof over
    /// the request's digest when a session's stream can back it (topped up first when low),
    /// otherwise a new signed proposal (within the promise ledger, the refused-proposal history
    /// and the spending cap).
    ///
    /// # Errors
    /// [`AgentError`]: a proposal awaiting its outcome, the retry cap, a vault that cannot back
    /// the allocation, the spending cap, an unreachable provider.
    pub async fn proof(
        &self,
        provider: &str,
        service_id: &str,
        request: &RequestRef,
    ) -> Result<ProofAnswer, AgentError> {
        if service_id.is_empty() || service_id.len() > SERVICE_ID_MAX {
            return Err(AgentError::BadRequest(format!(
                "service_id must be 1 to {SERVICE_ID_MAX} bytes (Store: {})",
                paystreams_store::STORE_SERVICE_ID
            )));
        }
        let digest = request.digest()?;
        let info = self.provider(provider).await?;
        if !info.advert.service_ids.iter().any(|s| s == service_id) {
            return Err(AgentError::Conflict(format!(
                "the provider does not serve {service_id:?}; it serves {:?}",
                info.advert.service_ids
            )));
        }
        let provider_id = info.advert.provider_id;
        let requester = self.identity(&info).await?.public().to_peer_id();
        let _op = self.ops.lock().await;
        let vault_id = self.config.vault_id;
        if let Some(session) = self.user.find(&provider_id, vault_id, service_id)? {
            match session.phase {
                Phase::Proposed => {
                    let now = self.chain.head().await?.time_secs;
                    if now <= session.deadline {
                        return Err(AgentError::Conflict(format!(
                            "the proposal of session {} awaits its outcome: POST /v1/outcome with the provider's answer (or wait until chain time {} when it lapses)",
                            session.label(),
                            session.deadline
                        )));
                    }
                }
                Phase::Creating { stream_id } => {
                    return Err(AgentError::Conflict(format!(
                        "stream {stream_id} of session {} is being created; ask again in a moment",
                        session.label()
                    )));
                }
                Phase::Streaming { .. } | Phase::Paused { .. } => {
                    self.user.select(&provider_id, vault_id, service_id).await?;
                    self.top_up_if_low(&session).await?;
                    if self.user.usable(&provider_id).await? {
                        let current = self.user.find(&provider_id, vault_id, service_id)?.ok_or_else(|| {
                            AgentError::Unavailable("the session vanished while it was being used".into())
                        })?;
                        let proof = self.user.proof_for(&current, &GivenDigest(digest)).await?;
                        return Ok(ProofAnswer {
                            proof,
                            kind: ProofKind::StreamProof,
                            session: current.session_id,
                            stream_id: current.phase.stream_id(),
                            provider: info,
                            requester,
                        });
                    }
                    self.warn(
                        "stream_closed",
                        Some(provider_id),
                        Some(session.session_id),
                        session.phase.stream_id(),
                        "the session's stream was spent or closed; a new session is proposed".into(),
                    );
                }
            }
        }
        let terms = Terms {
            vault_id,
            token_id: self.config.token_id,
            service_id: service_id.to_owned(),
            rate: self.config.rate,
            allocation: self.config.allocation,
        };
        let allocation = info
            .advert
            .policy
            .token(&terms.token_id)
            .map_or(terms.allocation, |t| t.min_allocation.max(terms.allocation));
        if !self.cap_allows(u128::from(allocation))? {
            let message = format!(
                "a new session of {allocation} would pass the spending cap of {}; raise --spending-cap or close sessions",
                self.config.spending_cap.unwrap_or_default()
            );
            self.warn("spending_cap", Some(provider_id), None, None, message.clone());
            return Err(AgentError::Conflict(message));
        }
        let proof = self.user.propose(&info.advert, &terms).await.inspect_err(|e| {
            if matches!(e, UserError::Overpromise(_) | UserError::NoVault) {
                self.warn("low_balance", Some(provider_id), None, None, format!("{e}: deposit into vault {vault_id}"));
            }
        })?;
        let session = self
            .user
            .find(&provider_id, vault_id, service_id)?
            .ok_or_else(|| AgentError::Unavailable("the proposed session was not recorded".into()))?;
        Ok(ProofAnswer {
            proof,
            kind: ProofKind::Proposal,
            session: session.session_id,
            stream_id: None,
            provider: info,
            requester,
        })
    }

    fn settled(&self, id: &[u8; 32]) -> Option<Value> {
        self.settled.lock().ok()?.iter().rev().find(|(s, _)| s == id).map(|(_, v)| v.clone())
    }

    fn settle(&self, id: [u8; 32], answer: &Value) {
        if let Ok(mut settled) = self.settled.lock() {
            if settled.len() >= SETTLED_MAX {
                settled.pop_front();
            }
            settled.push_back((id, answer.clone()));
        }
    }

    /// Applies what the provider answered to a request that carried a proof of `session`:
    /// after an accepted proposal the matching stream is created (the user engine's path);
    /// refusals are recorded (they count towards the retry cap); terminations pause or close.
    /// Idempotent: a repeated outcome changes nothing more (a session already streaming
    /// takes a repeated OK as served; a settled session answers what it answered first).
    ///
    /// # Errors
    /// An unknown session, a stream being created, chain or store failures.
    pub async fn outcome(
        &self,
        session_id: &[u8; 32],
        status: &EligibilityStatus,
        termination: Option<ServiceTermination>,
    ) -> Result<Value, AgentError> {
        let _op = self.ops.lock().await;
        let Some(session) = self.user.sessions()?.into_iter().find(|s| s.session_id == *session_id) else {
            return match self.settled(session_id) {
                Some(mut first) => {
                    if let Some(o) = first.as_object_mut() {
                        o.insert("duplicate".into(), Value::Bool(true));
                    }
                    Ok(first)
                }
                None => Err(AgentError::NotFound(format!(
                    "no session {}: it was never proposed by this agent, or it ended before this agent started",
                    hex::encode(session_id)
                ))),
            };
        };
        let provider = session.provider;
        self.user.select(&provider, session.vault_id, &session.service_id).await?;
        let reaction = match session.phase {
            Phase::Proposed => self.user.on_proposal_status(&provider, status, termination).await?,
            Phase::Creating { stream_id } => {
                return Err(AgentError::Conflict(format!(
                    "stream {stream_id} of this session is being created; report again in a moment"
                )));
            }
            Phase::Streaming { .. } | Phase::Paused { .. } => {
                self.user.on_proof_status(&provider, status, termination).await?
            }
        };
        let stream = session.phase.stream_id();
        match &reaction {
            Reaction::StreamCreated { stream_id } => {
                self.ledger.set_service(session.vault_id, *stream_id, &session.service_id);
            }
            Reaction::Adjust { desc } | Reaction::Abandon { desc } => {
                self.warn("proposal_refused", Some(provider), Some(*session_id), None, desc.clone());
            }
            Reaction::Closed { stream_id } => self.warn(
                "terminated",
                Some(provider),
                Some(*session_id),
                stream_id.or(stream),
                "the provider ended the session; its stream was closed and the unaccrued rest returned to the vault"
                    .into(),
            ),
            Reaction::WaitUntil { resume_after } => self.warn(
                "paused",
                Some(provider),
                Some(*session_id),
                stream,
                format!("the provider paused service until chain time {resume_after}"),
            ),
            Reaction::StreamInactive { desc, .. } => {
                self.warn("stream_running_out", Some(provider), Some(*session_id), stream, desc.clone());
            }
            Reaction::Served | Reaction::ResendFresh { .. } | Reaction::Ignored => {}
        }
        let mut answer = reaction_json(&reaction);
        if let Some(o) = answer.as_object_mut() {
            o.insert("session".into(), Value::String(hex::encode(session_id)));
            o.insert("duplicate".into(), Value::Bool(false));
        }
        if !self.user.sessions()?.iter().any(|s| s.session_id == *session_id) {
            self.settle(*session_id, &answer);
        }
        Ok(answer)
    }

    /// Closes a session: its stream on chain (the unaccrued rest returns to the vault).
    ///
    /// # Errors
    /// An unknown session, chain or store failures.
    pub async fn close(&self, session_id: &[u8; 32]) -> Result<Value, AgentError> {
        let _op = self.ops.lock().await;
        let Some(session) = self.user.sessions()?.into_iter().find(|s| s.session_id == *session_id) else {
            return Err(AgentError::NotFound(format!(
                "no session {}; GET /v1/sessions lists them",
                hex::encode(session_id)
            )));
        };
        let closed = self.user.close_session(session_id).await?;
        let refunded = closed.and_then(|stream_id| {
            self.ledger
                .streams()
                .into_iter()
                .find(|s| s.vault_id == session.vault_id && s.stream_id == stream_id)
                .map(|s| s.refunded.to_string())
        });
        let answer = json!({ "session": hex::encode(session_id), "closed_stream": closed, "refunded": refunded });
        self.settle(
            *session_id,
            &json!({ "reaction": "closed", "stream_id": closed, "session": hex::encode(session_id) }),
        );
        Ok(answer)
    }

    /// Every session with its stream's state on chain.
    ///
    /// # Errors
    /// Chain failures.
    pub async fn sessions(&self) -> Result<Value, AgentError> {
        let owner = self.owner();
        let mut out = Vec::new();
        for s in self.user.sessions()? {
            let view = match s.phase.stream_id() {
                Some(stream_id) => self.chain.stream(&owner, s.vault_id, stream_id).await?,
                None => None,
            };
            out.push(json!({
                "id": s.label(),
                "provider": AccountId(s.provider).to_string(),
                "provider_peer_id": self.known_peer(&s.provider).map(|p| p.to_string()),
                "vault_id": s.vault_id,
                "service_id": s.service_id,
                "phase": phase_name(s.phase),
                "stream_id": s.phase.stream_id(),
                "create_stream_deadline": s.deadline,
                "state": view.as_ref().map(|v| format!("{:?}", v.state).to_lowercase()),
                "rate": view.as_ref().map_or(s.rate, |v| v.rate).to_string(),
                "allocation": view.as_ref().map_or(u128::from(s.allocation), |v| v.allocation.0).to_string(),
                "accrued": view.as_ref().map(|v| v.accrued.0.to_string()),
                "unaccrued": view.as_ref().map(|v| v.unaccrued.0.to_string()),
                "planned_stop": view.as_ref().and_then(|v| v.planned_stop),
                "paused_until": match s.phase { Phase::Paused { until, .. } => Some(until), _ => None },
            }));
        }
        Ok(json!({ "owner": owner.to_string(), "vault_id": self.config.vault_id, "sessions": out }))
    }

    /// What the owner's streams cost, per provider and service and in total: `allocated`
    /// (creations and top-ups), `spent` (accrued to the provider), `refunded` (returned to the
    /// vault on close) and `unaccrued` (still in open streams); `allocated = spent + refunded +
    /// unaccrued` for every row. Decimal strings.
    ///
    /// # Errors
    /// Chain failures, or a ledger that does not add up.
    pub async fn spending(&self) -> Result<Value, AgentError> {
        #[derive(Default)]
        struct Row {
            allocated: u128,
            spent: u128,
            refunded: u128,
            unaccrued: u128,
            streams: u64,
            open: u64,
        }
        let owner = self.owner();
        let inconsistent = || AgentError::Unavailable("the spending ledger does not add up".into());
        let mut rows: BTreeMap<(String, String), Row> = BTreeMap::new();
        let mut total = Row::default();
        for s in self.ledger.streams() {
            let unaccrued = if s.closed {
                0
            } else {
                match self.chain.stream(&owner, s.vault_id, s.stream_id).await? {
                    Some(v) if v.state != StreamState::Closed => v.unaccrued.0,
                    _ => 0,
                }
            };
            let spent =
                s.allocated.checked_sub(s.refunded).and_then(|x| x.checked_sub(unaccrued)).ok_or_else(inconsistent)?;
            let key = (s.provider.clone(), s.service_id.clone().unwrap_or_default());
            for row in [rows.entry(key).or_default(), &mut total] {
                row.allocated = row.allocated.checked_add(s.allocated).ok_or_else(inconsistent)?;
                row.spent = row.spent.checked_add(spent).ok_or_else(inconsistent)?;
                row.refunded = row.refunded.checked_add(s.refunded).ok_or_else(inconsistent)?;
                row.unaccrued = row.unaccrued.checked_add(unaccrued).ok_or_else(inconsistent)?;
                row.streams = row.streams.saturating_add(1);
                if !s.closed {
                    row.open = row.open.saturating_add(1);
                }
            }
        }
        let show = |r: &Row| {
            json!({
                "allocated": r.allocated.to_string(),
                "spent": r.spent.to_string(),
                "refunded": r.refunded.to_string(),
                "unaccrued": r.unaccrued.to_string(),
                "streams": r.streams,
                "open_streams": r.open,
            })
        };
        let by_provider: Vec<Value> = rows
            .iter()
            .map(|((provider, service), r)| {
                let mut v = show(r);
                if let Some(o) = v.as_object_mut() {
                    o.insert("provider".into(), Value::String(provider.clone()));
                    o.insert("service_id".into(), Value::String(service.clone()));
                }
                v
            })
            .collect();
        Ok(json!({
            "owner": owner.to_string(),
            "vault_id": self.config.vault_id,
            "spending_cap": self.config.spending_cap.map(|c| c.to_string()),
            "total": show(&total),
            "by_provider": by_provider,
        }))
    }

    /// One monitoring pass: streams running out (top-ups as the policy allows), the vault's
    /// balance, the user engine's notices. Call it every few seconds.
    ///
    /// # Errors
    /// Chain or store failures.
    pub async fn monitor(&self) -> Result<(), AgentError> {
        let _op = self.ops.lock().await;
        for session in self.user.sessions()? {
            if matches!(session.phase, Phase::Streaming { .. }) {
                self.top_up_if_low(&session).await?;
            }
        }
        for notice in self.user.monitor().await? {
            match notice {
                Notice::DepletionSoon { provider, stream_id, at } => self.warn(
                    "stream_running_out",
                    Some(provider),
                    None,
                    Some(stream_id),
                    format!("stream {stream_id} runs out at chain time {at}"),
                ),
                Notice::ToppedUp { provider, stream_id, amount } => self.warn(
                    "topped_up",
                    Some(provider),
                    None,
                    Some(stream_id),
                    format!("stream {stream_id} was topped up by {amount}"),
                ),
                Notice::Closed { provider, stream_id } => self.warn(
                    "stream_closed",
                    Some(provider),
                    None,
                    Some(stream_id),
                    format!("stream {stream_id} was spent and closed"),
                ),
            }
        }
        if let Some(vault) = self.chain.vault(&self.owner(), self.config.vault_id).await? {
            if vault.unallocated.0 < u128::from(self.config.allocation) {
                self.warn(
                    "low_balance",
                    None,
                    None,
                    None,
                    format!(
                        "vault {} has {} unallocated, less than one allocation ({}): deposit to open new sessions",
                        self.config.vault_id, vault.unallocated.0, self.config.allocation
                    ),
                );
            }
        } else {
            self.warn(
                "low_balance",
                None,
                None,
                None,
                format!("vault {} does not exist: create it and deposit", self.config.vault_id),
            );
        }
        Ok(())
    }

    /// Runs [`Agent::monitor`] every `every` until the returned task is aborted.
    pub fn spawn_monitor(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let agent = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = agent.monitor().await {
                    warn!(error = %e, "monitoring pass failed");
                }
            }
        })
    }
}

/// The JSON names of eligibility status codes, for outcome bodies that give a name.
#[must_use]
pub fn status_by_name(name: &str) -> Option<StatusCode> {
    [StatusCode::Ok, StatusCode::ParamsRejected, StatusCode::ProofInvalid, StatusCode::StreamNotActive]
        .into_iter()
        .find(|c| c.name().eq_ignore_ascii_case(name))
}
