//! The user's side: fetch a provider's policy over libp2p, and run paid Store queries with the
//! user engine (proposal on the first request, the matching stream created on chain, then a
//! stream proof on every page), reacting to every eligibility status and termination.
//!
//! One session serves many queries: [`PaidStore::connect`] dials the provider with the owner's
//! stable transport identity for that provider (kept in the user store, so the provider
//! recognises the requester across invocations and restarts) and reuses the open session and
//! its stream for as long as the stream can back requests.

use std::sync::Arc;

use libp2p::{Multiaddr, PeerId, identity::Keypair};
use paystreams_lez_core::sha256;
use paystreams_rpc::chain_view::{ChainView, ChainWriter};
use paystreams_user::{Reaction, Session, Terms, User, UserError};
use paystreams_wire::{ProviderAdvert, ReceiptAck, ReceiptStatus, StatusCode, WireError};
use rand_core::RngCore as _;
use tokio::{sync::broadcast::error::RecvError, task::JoinHandle};
use tracing::{info, warn};

use crate::{
    lightpush::{LIGHTPUSH_SERVICE_ID, LightpushRequest, LightpushResponse},
    net::{NetError, NoInbound, P2p, Proto, split_peer_addr},
    wire::{Eligibility, StoreQueryRequest, StoreQueryResponse, WakuMessage},
};

/// Most times one page is re-sent with a fresh request id after PROOF_INVALID (a lost race
/// or a replayed id), or proposed again after PARAMS_REJECTED.
pub const PAGE_RETRIES_MAX: u32 = 3;

/// Why a query could not finish.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error(transparent)]
    Net(#[from] NetError),
    #[error("the provider sent bytes that do not decode: {0}")]
    Wire(#[from] WireError),
    #[error(transparent)]
    User(#[from] UserError),
    #[error("the provider refused: {0}")]
    Refused(String),
    #[error("the provider does not offer {0}")]
    NotOffered(String),
    #[error("Store error {code}: {desc}")]
    Store { code: u32, desc: String },
    #[error("Lightpush error {code}: {desc}")]
    Lightpush { code: u32, desc: String },
    #[error("the provider paused service until chain time {0}; retry then")]
    Paused(u64),
    #[error("the provider ended the session (stream {stream:?} closed, its unaccrued funds are back in the vault)")]
    Terminated { stream: Option<u64> },
    #[error("the stream no longer backs requests: {0}")]
    StreamInactive(String),
}

/// A connection to one provider.
#[derive(Clone, Debug)]
pub struct StoreClient {
    p2p: P2p,
    peer: PeerId,
    addr: Multiaddr,
}

impl StoreClient {
    /// Starts a client node (fresh identity) for the provider at `provider` (a multiaddr ending
    /// in `/p2p/<peer id>`).
    ///
    /// # Errors
    /// A bad address or transport setup failure.
    pub async fn connect(provider: &str) -> Result<Self, NetError> {
        Self::connect_as(provider, Keypair::generate_ed25519()).await
    }

    /// As [`StoreClient::connect`], with the given transport identity (the user's stable
    /// identity towards this provider: [`User::transport_identity`]).
    ///
    /// # Errors
    /// A bad address or transport setup failure.
    pub async fn connect_as(provider: &str, identity: Keypair) -> Result<Self, NetError> {
        let (peer, addr) = split_peer_addr(provider)?;
        let p2p = P2p::start::<NoInbound>(identity, None, None).await?;
        Ok(Self { p2p, peer, addr })
    }

    /// This client's own peer id (what the provider sees as the requester).
    #[must_use]
    pub fn local_peer_id(&self) -> PeerId {
        self.p2p.peer_id()
    }

    /// A client for another process serving the same provider (e.g. sharing its PostgreSQL
    /// session store) on this client's node: the same transport identity, which the provider
    /// finds the user's sessions by.
    ///
    /// # Errors
    /// A bad address.
    pub fn also_to(&self, provider: &str) -> Result<Self, NetError> {
        let (peer, addr) = split_peer_addr(provider)?;
        Ok(Self { p2p: self.p2p.clone(), peer, addr })
    }

    #[must_use]
    pub const fn peer_id(&self) -> PeerId {
        self.peer
    }

    /// The provider's policy advertisement (`/paystreams/policy/1.0.0`).
    ///
    /// # Errors
    /// Network failures or an advert that does not decode.
    pub async fn advert(&self) -> Result<ProviderAdvert, QueryError> {
        let bytes = self.p2p.request(self.peer, Some(self.addr.clone()), Proto::Policy, Vec::new()).await?;
        Ok(ProviderAdvert::decode(&bytes)?)
    }

    /// Sends one Store query as is.
    ///
    /// # Errors
    /// Network failures or a response that does not decode.
    pub async fn send(&self, request: &StoreQueryRequest) -> Result<StoreQueryResponse, QueryError> {
        let bytes = self.p2p.request(self.peer, Some(self.addr.clone()), Proto::Store, request.encode()).await?;
        Ok(StoreQueryResponse::decode(&bytes)?)
    }

    /// Sends one Lightpush request as is (`/vac/waku/lightpush/3.0.0`).
    ///
    /// # Errors
    /// Network failures or a response that does not decode.
    pub async fn send_push(&self, request: &LightpushRequest) -> Result<LightpushResponse, QueryError> {
        let bytes = self.p2p.request(self.peer, Some(self.addr.clone()), Proto::Lightpush, request.encode()).await?;
        Ok(LightpushResponse::decode(&bytes)?)
    }

    /// Drops the connection (the next request dials again).
    pub async fn disconnect(&self) {
        self.p2p.disconnect(self.peer).await;
    }

    /// Standalone terminations pushed by providers over this client's connections
    /// (`/paystreams/termination/1.0.0`), as `(provider peer, message)`, from the moment of the
    /// call; each also rides in the session's next response.
    #[must_use]
    pub fn terminations(&self) -> tokio::sync::broadcast::Receiver<(PeerId, paystreams_wire::SessionTermination)> {
        // A client node is always a user node, which has the channel.
        self.p2p.terminations().unwrap_or_else(|| tokio::sync::broadcast::channel(1).1)
    }

    /// Sends one encoded `DeliveryReceipt` (`/paystreams/receipt/1.0.0`) and returns the
    /// provider's encoded acknowledgement.
    ///
    /// # Errors
    /// Network failures.
    pub async fn send_receipt(&self, receipt: Vec<u8>) -> Result<Vec<u8>, NetError> {
        self.p2p.request(self.peer, Some(self.addr.clone()), Proto::Receipt, receipt).await
    }
}

/// A fresh request id: 16 random bytes, hex.
#[must_use]
pub fn new_request_id() -> String {
    let mut bytes = [0u8; 16];
    rand_core::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// A paid request of some service: what the shared proposal/proof loop
/// ([`PaidStore::exchange`]) needs to know about it.
trait PaidRequest: Clone + Send + Sync {
    type Response: PaidResponse;
    type Canonical: paystreams_wire::RequestDigest + Send + Sync;
    /// The request id and the eligibility proof (field 30).
    fn id_and_proof(&mut self) -> (&mut String, &mut Option<Vec<u8>>);
    fn canonical(&self) -> Self::Canonical;
    fn send(&self, client: &StoreClient) -> impl Future<Output = Result<Self::Response, QueryError>> + Send;

    /// This request with a fresh id and no proof.
    fn fresh(&self, request_id: String) -> Self {
        let mut fresh = self.clone();
        let (id, proof) = fresh.id_and_proof();
        *id = request_id;
        *proof = None;
        fresh
    }
}

/// A paid service's response: its verdict at field 30 and its own status.
trait PaidResponse: Send {
    fn eligibility(&self) -> Option<&Eligibility>;
    fn is_success(&self) -> bool;
    fn encode(&self) -> Vec<u8>;
    /// The service's own status, for a response that was not served by a verdict's refusal.
    fn service_error(&self) -> QueryError;

    /// The error for a response that was not served: the verdict's reason when it refused.
    fn error(&self) -> QueryError {
        match self.eligibility() {
            Some(e) if e.status.code() != Some(StatusCode::Ok) => QueryError::Refused(e.status.status_desc.clone()),
            _ => self.service_error(),
        }
    }
}

impl PaidRequest for StoreQueryRequest {
    type Response = StoreQueryResponse;
    type Canonical = paystreams_wire::CanonicalStoreRequest;

    fn id_and_proof(&mut self) -> (&mut String, &mut Option<Vec<u8>>) {
        (&mut self.request_id, &mut self.eligibility_proof)
    }

    fn canonical(&self) -> Self::Canonical {
        Self::canonical(self)
    }

    async fn send(&self, client: &StoreClient) -> Result<StoreQueryResponse, QueryError> {
        client.send(self).await
    }
}

impl PaidResponse for StoreQueryResponse {
    fn eligibility(&self) -> Option<&Eligibility> {
        self.eligibility.as_ref()
    }

    fn is_success(&self) -> bool {
        Self::is_success(self)
    }

    fn encode(&self) -> Vec<u8> {
        Self::encode(self)
    }

    fn service_error(&self) -> QueryError {
        QueryError::Store { code: self.status_code.unwrap_or(0), desc: self.status_desc.clone().unwrap_or_default() }
    }
}

impl PaidRequest for LightpushRequest {
    type Response = LightpushResponse;
    type Canonical = crate::lightpush::CanonicalLightpushRequest;

    fn id_and_proof(&mut self) -> (&mut String, &mut Option<Vec<u8>>) {
        (&mut self.request_id, &mut self.eligibility_proof)
    }

    fn canonical(&self) -> Self::Canonical {
        Self::canonical(self)
    }

    async fn send(&self, client: &StoreClient) -> Result<LightpushResponse, QueryError> {
        client.send_push(self).await
    }
}

impl PaidResponse for LightpushResponse {
    fn eligibility(&self) -> Option<&Eligibility> {
        self.eligibility.as_ref()
    }

    fn is_success(&self) -> bool {
        Self::is_success(self)
    }

    fn encode(&self) -> Vec<u8> {
        Self::encode(self)
    }

    fn service_error(&self) -> QueryError {
        QueryError::Lightpush { code: self.status_code, desc: self.status_desc.clone().unwrap_or_default() }
    }
}

/// What happened on one page.
#[derive(Clone, Debug)]
pub struct PageOutcome {
    pub response: StoreQueryResponse,
    /// Set when this page's proposal led to a new stream.
    pub stream_created: Option<u64>,
    /// How many times the page was re-sent before it was served.
    pub retries: u32,
}

/// Paid Store queries to one provider through the user engine. While it lives, terminations
/// the provider pushes reach the user engine at once ([`User::on_termination`]): a PERMANENT
/// one closes the session's stream, a TEMPORARY one pauses it until `resume_after`. Where the
/// session's stream carries the delivery-receipt extension, every served page is acknowledged
/// with a cumulative receipt sent on `/paystreams/receipt/1.0.0`.
#[derive(Debug)]
pub struct PaidStore<C> {
    client: StoreClient,
    user: Arc<User<C>>,
    advert: ProviderAdvert,
    terms: Terms,
    /// Applies pushed terminations; stopped when the store is dropped.
    terminations: JoinHandle<()>,
    /// What the engine did on the last pushed termination, reported by the next
    /// [`PaidStore::page`] instead of silently opening a new session.
    pushed: Arc<std::sync::Mutex<Option<Reaction>>>,
}

impl<C> Drop for PaidStore<C> {
    fn drop(&mut self) {
        self.terminations.abort();
    }
}

/// Hands every termination `provider_peer` pushes to the user engine and keeps what it did in
/// `outcome`.
fn follow_terminations<C: ChainView + ChainWriter + 'static>(
    client: &StoreClient,
    user: &Arc<User<C>>,
    provider_id: [u8; 32],
    outcome: Arc<std::sync::Mutex<Option<Reaction>>>,
) -> JoinHandle<()> {
    let mut pushed = client.terminations();
    let (user, provider_peer) = (Arc::clone(user), client.peer_id());
    tokio::spawn(async move {
        loop {
            match pushed.recv().await {
                Ok((peer, message)) if peer == provider_peer => {
                    match user.on_termination(&provider_id, &message.session_id, message.termination).await {
                        Ok(Reaction::Ignored) => {}
                        Ok(reaction) => {
                            info!(?reaction, "the provider ended or paused a session");
                            if let Ok(mut last) = outcome.lock() {
                                *last = Some(reaction);
                            }
                        }
                        Err(e) => warn!(error = %e, "could not act on a pushed termination"),
                    }
                }
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => break,
            }
        }
    })
}

impl<C: ChainView + ChainWriter + 'static> PaidStore<C> {
    /// Fetches the provider's policy over `client`, checks it offers Store for
    /// `terms.token_id`, and picks up the user's session for this provider, vault and service
    /// when its stream can still back requests (see [`User::usable`]).
    ///
    /// # Errors
    /// Network failures or a provider that does not serve Store.
    pub async fn new(client: StoreClient, user: Arc<User<C>>, terms: Terms) -> Result<Self, QueryError> {
        let advert = client.advert().await?;
        if !advert.service_ids.contains(&terms.service_id) {
            return Err(QueryError::NotOffered(format!(
                "{} (it serves {}; a `store serve` provider offers Store and Lightpush)",
                terms.service_id,
                advert.service_ids.join(", ")
            )));
        }
        if user.select(&advert.provider_id, terms.vault_id, &terms.service_id).await? {
            user.usable(&advert.provider_id).await?;
        }
        let pushed = Arc::new(std::sync::Mutex::new(None));
        let terminations = follow_terminations(&client, &user, advert.provider_id, Arc::clone(&pushed));
        Ok(Self { client, user, advert, terms, terminations, pushed })
    }

    /// Connects to the provider at `provider` (a multiaddr ending in `/p2p/<peer id>`) as the
    /// user's stable identity for it: the policy is read over a throw-away connection (it
    /// names the provider account the identity belongs to), then the paid connection is made
    /// with that identity.
    ///
    /// # Errors
    /// A bad address, network failures, or a provider that does not serve Store.
    pub async fn connect(provider: &str, user: Arc<User<C>>, terms: Terms) -> Result<Self, QueryError> {
        let probe = StoreClient::connect(provider).await?;
        let advert = probe.advert().await?;
        probe.disconnect().await;
        let mut secret = user.transport_identity(&advert.provider_id).await?;
        let identity = Keypair::ed25519_from_bytes(&mut secret)
            .map_err(|e| QueryError::Refused(format!("the stored transport identity is unusable: {e}")))?;
        Self::new(StoreClient::connect_as(provider, identity).await?, user, terms).await
    }

    /// The user engine behind this store.
    #[must_use]
    pub const fn user(&self) -> &Arc<User<C>> {
        &self.user
    }

    #[must_use]
    pub const fn advert(&self) -> &ProviderAdvert {
        &self.advert
    }

    #[must_use]
    pub const fn client(&self) -> &StoreClient {
        &self.client
    }

    /// The stream backing this provider's session, once created.
    ///
    /// # Errors
    /// A poisoned engine lock.
    pub fn stream_id(&self) -> Result<Option<u64>, QueryError> {
        Ok(self.session()?.and_then(|s| s.phase.stream_id()))
    }

    /// The user's session with this provider for these terms' vault and service.
    ///
    /// # Errors
    /// A poisoned engine lock.
    pub fn session(&self) -> Result<Option<paystreams_user::Session>, QueryError> {
        Ok(self.user.find(&self.advert.provider_id, self.terms.vault_id, &self.terms.service_id)?)
    }

    /// Reacts to a termination the provider pushed for `session_id` (see
    /// [`User::on_termination`]): PERMANENT closes the stream and forgets the session,
    /// TEMPORARY pauses until `resume_after`, a session the user does not hold is ignored.
    ///
    /// # Errors
    /// Chain or store failures.
    pub async fn on_pushed_termination(
        &self,
        session_id: &[u8; 32],
        termination: paystreams_wire::ServiceTermination,
    ) -> Result<Reaction, QueryError> {
        Ok(self.user.on_termination(&self.advert.provider_id, session_id, termination).await?)
    }

    /// Sends the receipt acknowledging one more delivery (digest `delivered`) on `session`'s
    /// stream when it carries the receipt extension. A receipt that does not get through is
    /// not an error of the query: the next one acknowledges everything up to then (receipts
    /// are cumulative).
    async fn acknowledge(&self, session: &mut Session, delivered: &[u8; 32]) {
        let receipt = match self.user.receipt(session, delivered).await {
            Ok(Some(receipt)) => receipt,
            Ok(None) => return,
            Err(e) => {
                warn!(error = %e, "could not sign a delivery receipt");
                return;
            }
        };
        match self.client.send_receipt(receipt).await.map(|bytes| ReceiptAck::decode(&bytes)) {
            Ok(Ok(ack)) if matches!(ack.code(), Some(ReceiptStatus::Kept | ReceiptStatus::NotNewer)) => {}
            Ok(Ok(ack)) => warn!(status = ack.status, desc = %ack.desc, "the provider did not keep a receipt"),
            Ok(Err(e)) => warn!(error = %e, "the provider's receipt answer does not decode"),
            Err(e) => warn!(error = %e, "could not send a delivery receipt"),
        }
    }

    /// Closes this provider's session for these terms: its stream on chain (the unaccrued
    /// rest returns to the vault), then, on a receipt stream, a final receipt acknowledging
    /// what accrued up to the close, so the provider can claim it. Returns the closed stream.
    ///
    /// # Errors
    /// Chain or store failures.
    pub async fn close(&self) -> Result<Option<u64>, QueryError> {
        let Some(mut session) = self.session()? else { return Ok(None) };
        let closed = self.user.close_session(&session.session_id).await?;
        if closed.is_some() {
            self.acknowledge(&mut session, &sha256(&[b"closed".as_slice()])).await;
        }
        Ok(closed)
    }

    /// Fetches one page: proposes when there is no session yet (creating the stream after the
    /// provider accepts), otherwise signs a stream proof; re-sends with a fresh request id after
    /// PROOF_INVALID, proposes again (up to [`PAGE_RETRIES_MAX`]) after PARAMS_REJECTED.
    ///
    /// # Errors
    /// A refusal the user cannot fix by retrying, a termination, or a Store error.
    pub async fn page(&self, base: &StoreQueryRequest) -> Result<PageOutcome, QueryError> {
        let (response, stream_created, retries) = self.exchange(base).await?;
        Ok(PageOutcome { response, stream_created, retries })
    }

    /// One paid request of any service, on this provider's session for these terms: proposes
    /// when there is no session with a stream yet, otherwise signs a stream proof over the
    /// request's canonical digest; reacts to the verdict through the user engine.
    async fn exchange<R: PaidRequest>(&self, base: &R) -> Result<(R::Response, Option<u64>, u32), QueryError> {
        // A termination the provider pushed since the last request ends this one the way the
        // same termination in a response would.
        match self.pushed.lock().ok().and_then(|mut last| last.take()) {
            Some(Reaction::Closed { stream_id }) => return Err(QueryError::Terminated { stream: stream_id }),
            Some(Reaction::WaitUntil { resume_after }) => return Err(QueryError::Paused(resume_after)),
            _ => {}
        }
        let provider = self.advert.provider_id;
        let mut retries = 0u32;
        loop {
            let mut request = base.fresh(new_request_id());
            let session = self.session()?.filter(|s| s.phase.stream_id().is_some());
            let proposing = session.is_none();
            let proof = match &session {
                None => self.user.propose(&self.advert, &self.terms).await?,
                Some(session) => self.user.proof_for(session, &request.canonical()).await?,
            };
            *request.id_and_proof().1 = Some(proof);
            let response = request.send(&self.client).await?;
            let Some(eligibility) = response.eligibility().cloned() else {
                // No verdict: the request was malformed (nothing was charged).
                return Err(response.error());
            };
            let reaction = if proposing {
                self.user.on_proposal_status(&provider, &eligibility.status, eligibility.termination).await?
            } else {
                self.user.on_proof_status(&provider, &eligibility.status, eligibility.termination).await?
            };
            match reaction {
                Reaction::Served | Reaction::StreamCreated { .. } => {
                    if !response.is_success() {
                        return Err(response.error());
                    }
                    // Only a stream with a receipt key takes delivery receipts: re-encoding and
                    // hashing every response for a session without one was pure waste.
                    if let Some(mut session) = self.session()?
                        && session.extensions.receipt_key.is_some()
                    {
                        self.acknowledge(&mut session, &sha256(&[&response.encode()])).await;
                    }
                    let stream_created = match reaction {
                        Reaction::StreamCreated { stream_id } => Some(stream_id),
                        _ => None,
                    };
                    return Ok((response, stream_created, retries));
                }
                Reaction::Adjust { desc } | Reaction::ResendFresh { desc } => {
                    retries = retries.saturating_add(1);
                    if retries > PAGE_RETRIES_MAX {
                        return Err(QueryError::Refused(desc));
                    }
                }
                Reaction::Abandon { desc } => return Err(QueryError::Refused(desc)),
                Reaction::StreamInactive { desc, .. } => return Err(QueryError::StreamInactive(desc)),
                Reaction::WaitUntil { resume_after } => return Err(QueryError::Paused(resume_after)),
                Reaction::Closed { stream_id } => return Err(QueryError::Terminated { stream: stream_id }),
                Reaction::Ignored => return Err(QueryError::Refused("the response named no session".into())),
            }
        }
    }
}

/// What happened on one push.
#[derive(Clone, Debug)]
pub struct PushOutcome {
    pub response: LightpushResponse,
    /// The message's 14/WAKU2-MESSAGE hash (what a Store lookup by hash finds).
    pub message_hash: [u8; 32],
    /// Set when this push's proposal led to a new stream.
    pub stream_created: Option<u64>,
    /// How many times the push was re-sent before it was served.
    pub retries: u32,
}

impl PushOutcome {
    /// Whether the provider already had this message (paid, not stored twice).
    #[must_use]
    pub fn duplicate(&self) -> bool {
        self.response.status_desc.as_deref().is_some_and(|d| d.contains("already stored"))
    }
}

/// Paid Lightpush pushes to one provider through the user engine: the same connection, session
/// handling and termination following as [`PaidStore`], on the user's session for
/// (provider, vault, [`LIGHTPUSH_SERVICE_ID`]), separate from its Store session.
#[derive(Debug)]
pub struct PaidLightpush<C> {
    inner: PaidStore<C>,
}

impl<C: ChainView + ChainWriter + 'static> PaidLightpush<C> {
    /// Connects as [`PaidStore::connect`] does, for the Lightpush service (`terms.service_id`
    /// is set to [`LIGHTPUSH_SERVICE_ID`]).
    ///
    /// # Errors
    /// A bad address, network failures, or a provider that does not serve Lightpush.
    pub async fn connect(provider: &str, user: Arc<User<C>>, mut terms: Terms) -> Result<Self, QueryError> {
        LIGHTPUSH_SERVICE_ID.clone_into(&mut terms.service_id);
        Ok(Self { inner: PaidStore::connect(provider, user, terms).await? })
    }

    /// As [`PaidLightpush::connect`], over an existing client.
    ///
    /// # Errors
    /// Network failures or a provider that does not serve Lightpush.
    pub async fn new(client: StoreClient, user: Arc<User<C>>, mut terms: Terms) -> Result<Self, QueryError> {
        LIGHTPUSH_SERVICE_ID.clone_into(&mut terms.service_id);
        Ok(Self { inner: PaidStore::new(client, user, terms).await? })
    }

    /// The shared paid-connection state (client, engine, advert, session).
    #[must_use]
    pub const fn paid(&self) -> &PaidStore<C> {
        &self.inner
    }

    /// Pushes one message on `pubsub_topic`, paid like a Store page.
    ///
    /// # Errors
    /// A refusal the user cannot fix by retrying, a termination, or a Lightpush error (an
    /// invalid message is refused before any payment is looked at).
    pub async fn push(&self, pubsub_topic: &str, message: WakuMessage) -> Result<PushOutcome, QueryError> {
        let message_hash = message.hash(pubsub_topic);
        let base = LightpushRequest {
            request_id: String::new(),
            pubsub_topic: Some(pubsub_topic.to_owned()),
            message: Some(message),
            eligibility_proof: None,
        };
        let (response, stream_created, retries) = self.inner.exchange(&base).await?;
        Ok(PushOutcome { response, message_hash, stream_created, retries })
    }

    /// Closes the Lightpush session (see [`PaidStore::close`]).
    ///
    /// # Errors
    /// Chain or store failures.
    pub async fn close(&self) -> Result<Option<u64>, QueryError> {
        self.inner.close().await
    }
}
