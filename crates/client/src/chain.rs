//! The engines' chain access over a node's JSON-RPC: [`RpcChain`] implements
//! [`ChainView`] and [`ChainWriter`] over a [`Client`], [`RpcClaimer`] is the provider's claim
//! submitter over it, and [`WsEvents`] feeds the provider's event follower from the node's
//! `subscribeEvents` WebSocket subscription ([`follow_events`] wires them together).

use std::future::Future;

use jsonrpsee::{
    core::client::Subscription,
    ws_client::{WsClient, WsClientBuilder},
};
use paystreams_lez_core::{AccountId, crypto::SecretKey};
use paystreams_program::client::Call;
use paystreams_provider::{
    ChainClaimer, ClaimSubmitter, EventSource, EventSubscription, FollowerConfig, FollowerStats, Liveness, Provider,
    SessionStore, run_follower,
};
use paystreams_rpc::{
    EventFilter, EventNotification, PaystreamsApiClient as _, StreamView, VaultView,
    chain_view::{ChainError, ChainHead, ChainView, ChainWriter, SubmitOutcome},
};
use tracing::warn;

use crate::{Client, client::stream_events, error::ClientError};

fn unavailable(error: &ClientError) -> ChainError {
    ChainError::Unavailable(error.to_string())
}

/// [`ChainView`] and [`ChainWriter`] over a node's JSON-RPC.
///
/// The head is the latest block (`getLastBlockId` + `getBlock`): its height, its timestamp in
/// seconds, and as `observed_at_ms` the wall-clock time this process fetched it — capped, when a
/// [`Liveness`] is attached, by the last time the event follower knew its subscription to be
/// open, so the provider engine fails closed while it may be missing events.
#[derive(Clone, Debug)]
pub struct RpcChain {
    client: Client,
    liveness: Option<Liveness>,
    head_cache: Option<HeadCache>,
    stream_cache: Option<StreamCache>,
}

/// Stream views read at one chain height, shared by clones. A view folded at a given block is
/// the same whoever asks, so every request at that height after the first is answered
/// locally; the map is emptied when the head moves to another height.
#[derive(Clone, Debug, Default)]
struct StreamCache {
    inner: std::sync::Arc<std::sync::Mutex<StreamCacheInner>>,
}

#[derive(Debug, Default)]
struct StreamCacheInner {
    height: u64,
    views: std::collections::HashMap<(AccountId, u64, u64), Option<StreamView>>,
}

/// Most stream views kept for one height; beyond it the map starts over.
const STREAM_CACHE_MAX: usize = 100_000;

/// The last head read and when (wall-clock ms), shared by clones.
#[derive(Clone, Debug)]
struct HeadCache {
    ttl_ms: u64,
    last: std::sync::Arc<std::sync::Mutex<Option<(u64, u64, u64)>>>,
}

impl RpcChain {
    #[must_use]
    pub const fn new(client: Client) -> Self {
        Self { client, liveness: None, head_cache: None, stream_cache: None }
    }

    /// Answers [`ChainView::stream`] from views already read at the current head's height
    /// (see [`RpcChain::with_head_cache`] for how current the head is). Saves the `getStream`
    /// round trip for every request after the first on a stream within one block.
    #[must_use]
    pub fn with_stream_cache(mut self) -> Self {
        self.stream_cache = Some(StreamCache::default());
        self
    }

    /// Reuses a head read within the last `ttl` instead of two round trips per call. Chain time
    /// moves in whole blocks, so a head up to `ttl` old differs from a fresh one by at most the
    /// blocks produced meanwhile; `observed_at_ms` stays the time of the actual read, so the
    /// staleness bound still holds. A provider answering many requests per second uses it.
    /// When the node cannot be reached, the last head is reported with its read time, so an
    /// engine's staleness bound fails closed with a TEMPORARY termination rather than an
    /// opaque error.
    #[must_use]
    pub fn with_head_cache(mut self, ttl: std::time::Duration) -> Self {
        self.head_cache = Some(HeadCache {
            ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
            last: std::sync::Arc::default(),
        });
        self
    }

    /// Caps `observed_at_ms` by the follower's liveness (share it with [`FollowerConfig`]).
    #[must_use]
    pub fn with_liveness(mut self, liveness: Liveness) -> Self {
        self.liveness = Some(liveness);
        self
    }

    #[must_use]
    pub const fn client(&self) -> &Client {
        &self.client
    }
}

impl RpcChain {
    /// Reads the stream from the node and keeps it for readers at `height`.
    async fn read_and_cache(
        &self,
        cache: &StreamCache,
        height: u64,
        owner: &AccountId,
        vault_id: u64,
        stream_id: u64,
    ) -> Result<Option<StreamView>, ChainError> {
        let view = self.client.stream(*owner, vault_id, stream_id).await.map_err(|e| unavailable(&e))?;
        // The node answered at its latest height, at or above `height`: at least as fresh as
        // what this height's readers expect, so it may serve them.
        if let Ok(mut inner) = cache.inner.lock() {
            if inner.height != height || inner.views.len() >= STREAM_CACHE_MAX {
                inner.height = height;
                inner.views.clear();
            }
            inner.views.insert((*owner, vault_id, stream_id), view.clone());
        }
        Ok(view)
    }
}

impl ChainView for RpcChain {
    async fn head(&self) -> Result<ChainHead, ChainError> {
        let now = paystreams_provider::follow::wall_clock_ms();
        let cached = self.head_cache.as_ref().and_then(|cache| {
            let last = *cache.last.lock().ok()?;
            last.filter(|(_, _, fetched_at)| now.saturating_sub(*fetched_at) < cache.ttl_ms)
        });
        if let Some((height, time_secs, fetched_at)) = cached {
            let observed_at_ms = self.liveness.as_ref().map_or(fetched_at, |l| fetched_at.min(l.last_alive_ms()));
            return Ok(ChainHead { height, time_secs, observed_at_ms });
        }
        let fetched = async {
            let height = self.client.last_block_id().await.map_err(|e| unavailable(&e))?;
            let block = self
                .client
                .block(height)
                .await
                .map_err(|e| unavailable(&e))?
                .ok_or_else(|| ChainError::Unavailable(format!("block {height} is missing")))?;
            Ok::<_, ChainError>((height, block.header.timestamp_ms / 1000))
        }
        .await;
        let (height, time_secs, fetched_at) = match (fetched, &self.head_cache) {
            (Ok((height, time_secs)), cache) => {
                let fetched_at = paystreams_provider::follow::wall_clock_ms();
                if let Some(cache) = cache
                    && let Ok(mut last) = cache.last.lock()
                {
                    *last = Some((height, time_secs, fetched_at));
                }
                (height, time_secs, fetched_at)
            }
            // The node is unreachable: report the last head with the time it was read, so the
            // engine's staleness bound turns this into a TEMPORARY termination once exceeded.
            (Err(e), Some(cache)) => match cache.last.lock().ok().and_then(|last| *last) {
                Some(last) => last,
                None => return Err(e),
            },
            (Err(e), None) => return Err(e),
        };
        let observed_at_ms = self.liveness.as_ref().map_or(fetched_at, |l| fetched_at.min(l.last_alive_ms()));
        Ok(ChainHead { height, time_secs, observed_at_ms })
    }

    async fn vault(&self, owner: &AccountId, vault_id: u64) -> Result<Option<VaultView>, ChainError> {
        self.client.vault(*owner, vault_id).await.map_err(|e| unavailable(&e))
    }

    async fn stream(&self, owner: &AccountId, vault_id: u64, stream_id: u64) -> Result<Option<StreamView>, ChainError> {
        let Some(cache) = &self.stream_cache else {
            return self.client.stream(*owner, vault_id, stream_id).await.map_err(|e| unavailable(&e));
        };
        let height = self.head().await?.height;
        let key = (*owner, vault_id, stream_id);
        if let Ok(inner) = cache.inner.lock()
            && inner.height == height
            && let Some(view) = inner.views.get(&key)
        {
            return Ok(view.clone());
        }
        self.read_and_cache(cache, height, owner, vault_id, stream_id).await
    }

    async fn stream_fresh(
        &self,
        owner: &AccountId,
        vault_id: u64,
        stream_id: u64,
    ) -> Result<Option<StreamView>, ChainError> {
        let Some(cache) = &self.stream_cache else {
            return self.client.stream(*owner, vault_id, stream_id).await.map_err(|e| unavailable(&e));
        };
        let height = self.head().await?.height;
        self.read_and_cache(cache, height, owner, vault_id, stream_id).await
    }

    fn forget_stream(&self, owner: &AccountId, vault_id: u64, stream_id: u64) {
        if let Some(cache) = &self.stream_cache
            && let Ok(mut inner) = cache.inner.lock()
        {
            inner.views.remove(&(*owner, vault_id, stream_id));
        }
    }
}

impl ChainWriter for RpcChain {
    /// Signs with current nonces, sends, and waits for inclusion ([`Client::submit`], no
    /// pre-flight): a failed receipt is [`SubmitOutcome::Failed`] with its code and name; RPC
    /// failures and inclusion timeouts are [`ChainError::Unavailable`].
    async fn submit(&self, call: &Call, signers: &[&SecretKey]) -> Result<SubmitOutcome, ChainError> {
        match self.client.submit(call, signers).await {
            Ok(receipt) => Ok(SubmitOutcome::Included {
                tx_hash: receipt.hash,
                block_id: receipt.block_id.unwrap_or_default(),
                events: stream_events(&receipt).cloned().collect(),
            }),
            Err(ClientError::Transaction(failure)) => {
                Ok(SubmitOutcome::Failed { code: failure.code, name: failure.name })
            }
            Err(e) => Err(unavailable(&e)),
        }
    }
}

/// The provider's claim submitter over RPC: `Claim` signed by the provider key (token vaults
/// pay into `payout_holding`).
#[derive(Debug)]
pub struct RpcClaimer(ChainClaimer<RpcChain>);

impl RpcClaimer {
    #[must_use]
    pub fn new(chain: RpcChain, provider_key: SecretKey, payout_holding: Option<AccountId>) -> Self {
        let program_id = chain.client().program_id();
        Self(ChainClaimer::new(chain, provider_key, program_id, payout_holding))
    }
}

impl ClaimSubmitter for RpcClaimer {
    fn claim(
        &self,
        stream: paystreams_provider::StreamKey,
        token_id: [u8; 32],
    ) -> impl Future<Output = Result<bool, ChainError>> + Send {
        self.0.claim(stream, token_id)
    }
}

/// Opens `subscribeEvents` subscriptions on a node's WebSocket endpoint.
#[derive(Clone, Debug)]
pub struct WsEvents {
    ws_url: String,
    filter: EventFilter,
}

impl WsEvents {
    /// Events matching `filter` from the node `client` talks to (same port, `ws://`).
    #[must_use]
    pub fn new(client: &Client, filter: EventFilter) -> Self {
        Self { ws_url: client.ws_url(), filter }
    }

    /// Every event naming `provider`.
    #[must_use]
    pub fn for_provider(client: &Client, provider: AccountId) -> Self {
        Self::new(client, EventFilter { provider: Some(provider), ..EventFilter::default() })
    }
}

/// An open subscription; owns its WebSocket connection (dropping it closes both).
#[derive(Debug)]
pub struct WsSubscription {
    subscription: Subscription<EventNotification>,
    _ws: WsClient,
}

impl EventSubscription for WsSubscription {
    async fn next_event(&mut self) -> Option<EventNotification> {
        loop {
            match self.subscription.next().await? {
                Ok(notification) => return Some(notification),
                Err(e) => warn!(error = %e, "undecodable event notification skipped"),
            }
        }
    }
}

impl EventSource for WsEvents {
    type Subscription = WsSubscription;

    async fn subscribe(&self) -> Result<WsSubscription, String> {
        let ws = WsClientBuilder::default()
            .build(&self.ws_url)
            .await
            .map_err(|e| ClientError::Connection { url: self.ws_url.clone(), detail: e.to_string() }.to_string())?;
        let subscription = ws
            .subscribe_events(self.filter.clone())
            .await
            .map_err(|e| ClientError::from_rpc(&self.ws_url, "subscribeEvents", e).to_string())?;
        Ok(WsSubscription { subscription, _ws: ws })
    }
}

/// Follows the node `client` talks to for `provider` until `shutdown` completes: events naming
/// the provider's id go to [`Provider::on_event`], [`Provider::tick`] runs on
/// `config.tick_interval`, and a lost subscription is reopened with backoff. Attach the same
/// [`Liveness`] to the engine's [`RpcChain`] and to `config.liveness` to fail closed while
/// disconnected.
pub async fn follow_events<C, S, K>(
    provider: &Provider<C, S, K>,
    client: &Client,
    config: FollowerConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> FollowerStats
where
    C: ChainView,
    S: SessionStore,
    K: ClaimSubmitter,
{
    let source = WsEvents::for_provider(client, AccountId(provider.policy().provider_id));
    run_follower(provider, &source, config, shutdown).await
}
