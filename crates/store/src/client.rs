//! The user's side: fetch a provider's policy over libp2p, and run paid Store queries with the
//! user engine (proposal on the first request, the matching stream created on chain, then a
//! stream proof on every page), reacting to every eligibility status and termination.

use std::sync::Arc;

use libp2p::{Multiaddr, PeerId, identity::Keypair};
use paystreams_rpc::chain_view::{ChainView, ChainWriter};
use paystreams_user::{KeyStore, Reaction, Terms, User, UserError};
use paystreams_wire::{ProviderAdvert, StatusCode, WireError};
use rand_core::RngCore as _;

use crate::{
    net::{NetError, NoInbound, P2p, Proto, split_peer_addr},
    wire::{StoreQueryRequest, StoreQueryResponse},
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
    #[error("the provider does not offer Store ({0})")]
    NotOffered(String),
    #[error("Store error {code}: {desc}")]
    Store { code: u32, desc: String },
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
        let (peer, addr) = split_peer_addr(provider)?;
        let p2p = P2p::start::<NoInbound>(Keypair::generate_ed25519(), None, None).await?;
        Ok(Self { p2p, peer, addr })
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

/// What happened on one page.
#[derive(Clone, Debug)]
pub struct PageOutcome {
    pub response: StoreQueryResponse,
    /// Set when this page's proposal led to a new stream.
    pub stream_created: Option<u64>,
    /// How many times the page was re-sent before it was served.
    pub retries: u32,
}

/// Paid Store queries to one provider through the user engine.
#[derive(Debug)]
pub struct PaidStore<C, K> {
    client: StoreClient,
    user: Arc<User<C, K>>,
    advert: ProviderAdvert,
    terms: Terms,
}

impl<C: ChainView + ChainWriter, K: KeyStore> PaidStore<C, K> {
    /// Fetches the provider's policy and checks it offers Store for `terms.token_id`.
    ///
    /// # Errors
    /// Network failures or a provider that does not serve Store.
    pub async fn new(client: StoreClient, user: Arc<User<C, K>>, terms: Terms) -> Result<Self, QueryError> {
        let advert = client.advert().await?;
        if !advert.service_ids.contains(&terms.service_id) {
            return Err(QueryError::NotOffered(format!("it serves {:?}", advert.service_ids)));
        }
        Ok(Self { client, user, advert, terms })
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
        Ok(self.user.stream_of(&self.advert.provider_id)?)
    }

    /// Fetches one page: proposes when there is no session yet (creating the stream after the
    /// provider accepts), otherwise signs a stream proof; re-sends with a fresh request id after
    /// PROOF_INVALID, proposes again (up to [`PAGE_RETRIES_MAX`]) after PARAMS_REJECTED.
    ///
    /// # Errors
    /// A refusal the user cannot fix by retrying, a termination, or a Store error.
    pub async fn page(&self, base: &StoreQueryRequest) -> Result<PageOutcome, QueryError> {
        let provider = self.advert.provider_id;
        let mut retries = 0u32;
        loop {
            let mut request = base.clone();
            request.request_id = new_request_id();
            request.eligibility_proof = None;
            let proposing = self.user.stream_of(&provider)?.is_none();
            let proof = if proposing {
                self.user.propose(&self.advert, &self.terms).await?
            } else {
                self.user.proof(&provider, &request.canonical()).await?
            };
            request.eligibility_proof = Some(proof);
            let response = self.client.send(&request).await?;
            let Some(eligibility) = response.eligibility.clone() else {
                // No verdict: the query was malformed (nothing was charged).
                return Err(store_error(&response));
            };
            let reaction = if proposing {
                self.user.on_proposal_status(&provider, &eligibility.status, eligibility.termination).await?
            } else {
                self.user.on_proof_status(&provider, &eligibility.status, eligibility.termination).await?
            };
            match reaction {
                Reaction::Served | Reaction::StreamCreated { .. } => {
                    if !response.is_success() {
                        return Err(store_error(&response));
                    }
                    let stream_created = match reaction {
                        Reaction::StreamCreated { stream_id } => Some(stream_id),
                        _ => None,
                    };
                    return Ok(PageOutcome { response, stream_created, retries });
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
            }
        }
    }
}

fn store_error(response: &StoreQueryResponse) -> QueryError {
    let desc = response.status_desc.clone().unwrap_or_default();
    match &response.eligibility {
        Some(e) if e.status.code() != Some(StatusCode::Ok) => QueryError::Refused(e.status.status_desc.clone()),
        _ => QueryError::Store { code: response.status_code.unwrap_or(0), desc },
    }
}
