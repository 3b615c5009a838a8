//! The chain seen through a node's JSON-RPC (the `client` feature): [`NodeRpc`] is one node's
//! HTTP endpoint with the submission primitives (sign with current nonces, send, wait for
//! inclusion), [`RpcChain`] implements [`ChainView`] and [`ChainWriter`] over it, and
//! [`WsEvents`] is the [`EventSource`] over the node's events.
//!
//! A [`NodeRpc`] speaks one [`Dialect`], chosen when it connects: [`Dialect::Paystreams`] uses
//! our node's richer methods (receipts, decoded views, `paystreams_subscribeEvents`); [`Dialect::Lez`] uses
//! only the methods a LEZ sequencer has ([`lez`]: submit and poll `getTransaction`, views folded
//! locally from `getAccount`, events from polled blocks). Everything above this seam (the typed
//! client, the engines, the CLI) is the same in both.
//!
//! The typed client (`paystreams-client`) builds its commands on [`NodeRpc`]; the provider's
//! follower and claimer are built on [`RpcChain`] and [`WsEvents`] by the service that runs
//! the provider.

pub mod lez;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use base64::Engine as _;
use jsonrpsee::{
    core::{ClientError as JsonRpcError, client::Subscription},
    http_client::{HttpClient, HttpClientBuilder},
    ws_client::{WsClient, WsClientBuilder},
};
use paystreams_lez_core::{AccountId, ProgramId, crypto::SecretKey};
use paystreams_program::client::Call;
use paystreams_runtime::{Message, Transaction};
use tracing::warn;

use crate::{
    EventFilter, EventNotification, HexHash, LezApiClient as _, PaystreamsApiClient as _, ReceiptInfo, SEND_BATCH_MAX,
    StreamView, TxStatus, VaultView,
    chain_view::{ChainError, ChainHead, ChainView, ChainWriter, SubmitOutcome},
    clock::wall_clock_ms,
    events::{EventSource, EventSubscription, Liveness},
    stream_events,
};

/// How long one HTTP request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Most requests one client has in flight to the node at once; more wait their turn. Below the
/// node's share per client address (128 connections by default, `paystream node
/// --max-connections-per-address`), so a busy client (a provider answering a thousand users)
/// never opens more connections than the node keeps for it, and the node never has to close
/// one of its connections with a request on it. Other clients on the same host keep room too.
pub const MAX_CONCURRENT_REQUESTS: usize = 32;

/// How long [`NodeRpc::wait_receipt`] waits for inclusion by default.
pub const DEFAULT_INCLUSION_TIMEOUT: Duration = Duration::from_secs(60);

/// First receipt poll interval; doubled after each poll up to [`RECEIPT_POLL_MAX`].
const RECEIPT_POLL_MIN: Duration = Duration::from_millis(25);
/// Longest interval between receipt polls.
const RECEIPT_POLL_MAX: Duration = Duration::from_millis(250);

/// A failure to talk to the node. Every variant's text names the cause and, where there is one,
/// the fix.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("cannot reach the node at {url}: {detail}. Is `paystream node` running there? Set --rpc or PAYSTREAMS_RPC")]
    Connection { url: String, detail: String },
    #[error("the node refused {method}: {message} (JSON-RPC error {code})")]
    Rpc { method: &'static str, code: i32, message: String },
    #[error(
        "transaction {hash} was not included within {} s; it may still be pending (query paystreams_getTransactionReceipt), \
         or the node is not producing blocks",
        waited.as_secs()
    )]
    Timeout { hash: HexHash, waited: Duration },
    /// LEZ keeps no record of a transaction it did not include: it is reported dropped once the
    /// signer's nonce moved past it or enough blocks went by without it.
    #[error(
        "transaction {hash} was dropped by the sequencer ({reason}); a LEZ sequencer keeps no record of failed \
         transactions. Run the command again with pre-flight on (the default): it runs the transaction locally \
         through the program and explains the failure"
    )]
    Dropped { hash: HexHash, reason: String },
    /// The operation needs a method a LEZ sequencer does not have.
    #[error("{what} needs {needs}, which a LEZ sequencer does not have (--chain lez); {instead}")]
    NotInLez { what: &'static str, needs: &'static str, instead: &'static str },
}

impl RpcError {
    /// The failure of `method` on the node at `url`: an error answer, or a transport failure.
    #[must_use]
    pub fn from_call(url: &str, method: &'static str, error: JsonRpcError) -> Self {
        match error {
            JsonRpcError::Call(object) => {
                let mut message = object.message().to_owned();
                if let Some(data) = object.data() {
                    message.push_str(": ");
                    message.push_str(data.get());
                }
                Self::Rpc { method, code: object.code(), message }
            }
            JsonRpcError::Transport(e) => Self::Connection { url: url.to_owned(), detail: e.to_string() },
            JsonRpcError::RestartNeeded(e) => Self::Connection { url: url.to_owned(), detail: e.to_string() },
            JsonRpcError::RequestTimeout => {
                Self::Connection { url: url.to_owned(), detail: "the request timed out".to_owned() }
            }
            other => Self::Rpc { method, code: 0, message: other.to_string() },
        }
    }
}

/// Which methods a chain endpoint has.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum Dialect {
    /// A paystreams node (`paystream node`): receipts, decoded vault and stream views, event
    /// subscriptions, dev methods.
    #[default]
    Paystreams,
    /// A LEZ sequencer (or `paystream node --rpc-methods lez`): LEZ's methods only.
    Lez,
}

impl Dialect {
    /// The name `--chain` takes.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Paystreams => "paystreams",
            Self::Lez => "lez",
        }
    }
}

impl std::fmt::Display for Dialect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Dialect {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "paystreams" => Ok(Self::Paystreams),
            "lez" => Ok(Self::Lez),
            other => Err(format!(
                "unknown chain {other:?}: use `paystreams` (a paystreams node) or `lez` (a LEZ sequencer, LEZ's methods \
                 only)"
            )),
        }
    }
}

/// How to speak to a chain endpoint: its dialect and the LEZ dialect's settings. What a
/// long-running process (provider, gate, agent) is configured with beside the URL.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChainAccess {
    pub dialect: Dialect,
    /// Used in [`Dialect::Lez`] only.
    pub lez: lez::LezSettings,
}

/// One node's JSON-RPC endpoint over HTTP, with its dialect and how long submissions wait for
/// inclusion.
#[derive(Clone, Debug)]
pub struct NodeRpc {
    url: String,
    http: HttpClient,
    inclusion_timeout: Duration,
    dialect: Dialect,
    lez: lez::LezSettings,
    /// The chain's builtin program ids, once learnt ([`NodeRpc::builtin_ids`]); shared by clones.
    builtins: Arc<Mutex<Option<paystreams_lez_core::lez_release::BuiltinIds>>>,
}

impl NodeRpc {
    /// The node at `url` (`http://` or `https://`). Nothing is sent yet.
    ///
    /// # Errors
    /// When the URL is not usable.
    pub fn connect(url: &str) -> Result<Self, RpcError> {
        Self::connect_with(url, Dialect::Paystreams)
    }

    /// The chain at `url`, spoken to in `dialect`. Nothing is sent yet.
    ///
    /// # Errors
    /// When the URL is not usable.
    pub fn connect_with(url: &str, dialect: Dialect) -> Result<Self, RpcError> {
        let http = HttpClientBuilder::default()
            .request_timeout(REQUEST_TIMEOUT)
            .max_concurrent_requests(MAX_CONCURRENT_REQUESTS)
            .build(url)
            .map_err(|e| RpcError::Connection { url: url.to_owned(), detail: e.to_string() })?;
        Ok(Self {
            url: url.to_owned(),
            http,
            inclusion_timeout: DEFAULT_INCLUSION_TIMEOUT,
            dialect,
            lez: lez::LezSettings::default(),
            builtins: Arc::default(),
        })
    }

    /// The chain at `url`, spoken to as `access` says. Nothing is sent yet.
    ///
    /// # Errors
    /// When the URL is not usable.
    pub fn connect_via(url: &str, access: &ChainAccess) -> Result<Self, RpcError> {
        let mut node = Self::connect_with(url, access.dialect)?;
        node.lez = access.lez.clone();
        Ok(node)
    }

    /// The methods this endpoint is spoken to with.
    #[must_use]
    pub const fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The LEZ dialect's settings (drop detection, block polling, the program id).
    #[must_use]
    pub const fn lez_settings(&self) -> &lez::LezSettings {
        &self.lez
    }

    /// Changes the LEZ dialect's settings.
    pub fn set_lez_settings(&mut self, settings: lez::LezSettings) {
        self.lez = settings;
    }

    /// Refuses, naming what is missing, when this endpoint is a LEZ sequencer.
    ///
    /// # Errors
    /// [`RpcError::NotInLez`] in the LEZ dialect.
    pub const fn require_paystreams(
        &self,
        what: &'static str,
        needs: &'static str,
        instead: &'static str,
    ) -> Result<(), RpcError> {
        match self.dialect {
            Dialect::Paystreams => Ok(()),
            Dialect::Lez => Err(RpcError::NotInLez { what, needs, instead }),
        }
    }

    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The WebSocket URL on the same port (`ws://` for `http://`).
    #[must_use]
    pub fn ws_url(&self) -> String {
        if let Some(rest) = self.url.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if let Some(rest) = self.url.strip_prefix("http://") {
            format!("ws://{rest}")
        } else {
            self.url.clone()
        }
    }

    /// The raw JSON-RPC client (implements `LezApiClient` and `PaystreamsApiClient`).
    #[must_use]
    pub const fn http(&self) -> &HttpClient {
        &self.http
    }

    /// How long [`NodeRpc::wait_receipt`] waits.
    pub const fn set_inclusion_timeout(&mut self, timeout: Duration) {
        self.inclusion_timeout = timeout;
    }

    /// Maps a failed call of `method` to an [`RpcError`] naming this node.
    pub fn error(&self, method: &'static str) -> impl FnOnce(JsonRpcError) -> RpcError + '_ {
        move |e| RpcError::from_call(&self.url, method, e)
    }

    /// Fetches the signers' current nonces, signs and sends; returns the hash without waiting.
    ///
    /// # Errors
    /// RPC failure or a stateless refusal by the node.
    pub async fn send_signed(
        &self,
        program_id: ProgramId,
        account_ids: Vec<AccountId>,
        instruction_data: Vec<u32>,
        signers: &[&SecretKey],
    ) -> Result<HexHash, RpcError> {
        let ids = signers.iter().map(|k| k.account_id()).collect();
        let nonces = self.nonces(ids).await?;
        let message = Message { program_id, account_ids, nonces, instruction_data };
        self.send_transaction(&Transaction::sign(message, signers)).await
    }

    /// The accounts' current nonces, in order.
    ///
    /// # Errors
    /// RPC failure.
    pub async fn nonces(&self, ids: Vec<AccountId>) -> Result<Vec<u128>, RpcError> {
        // `getAccountsNonces` has LEZ's shape on both kinds of chain.
        self.lez_nonces(ids).await
    }

    /// Sends a signed transaction; returns its hash without waiting for inclusion.
    ///
    /// # Errors
    /// RPC failure or a stateless refusal by the node.
    pub async fn send_transaction(&self, tx: &Transaction) -> Result<HexHash, RpcError> {
        let encoded = base64::engine::general_purpose::STANDARD.encode(tx.envelope_bytes());
        self.http.send_transaction(encoded).await.map_err(self.error("sendTransaction"))
    }

    /// Waits until `hash` is included or failed, up to the inclusion timeout; `waiting` is told
    /// how long it has waited before each pause.
    ///
    /// # Errors
    /// RPC failure or timeout.
    pub async fn wait_receipt(&self, hash: HexHash, waiting: impl Fn(Duration)) -> Result<ReceiptInfo, RpcError> {
        let start = Instant::now();
        let mut interval = RECEIPT_POLL_MIN;
        loop {
            if let Some(receipt) =
                self.http.get_transaction_receipt(hash).await.map_err(self.error("paystreams_getTransactionReceipt"))?
                && receipt.status != TxStatus::Pending
            {
                return Ok(receipt);
            }
            let elapsed = start.elapsed();
            if elapsed > self.inclusion_timeout {
                return Err(RpcError::Timeout { hash, waited: elapsed });
            }
            waiting(elapsed);
            tokio::time::sleep(interval).await;
            interval = interval.saturating_mul(2).min(RECEIPT_POLL_MAX);
        }
    }
}

fn unavailable(error: &RpcError) -> ChainError {
    ChainError::Unavailable(error.to_string())
}

/// [`ChainView`] and [`ChainWriter`] over a node's JSON-RPC.
///
/// The head is the latest block (`getLastBlockId` + `paystreams_getBlock`): its height, its timestamp in
/// seconds, and as `observed_at_ms` the wall-clock time this process fetched it — capped, when a
/// [`Liveness`] is attached, by the last time the event follower knew its subscription to be
/// open, so the provider engine fails closed while it may be missing events.
#[derive(Clone, Debug)]
pub struct RpcChain {
    node: NodeRpc,
    liveness: Option<Liveness>,
    head_cache: Option<HeadCache>,
    stream_cache: Option<StreamCache>,
}

/// Stream views read at one chain height, shared by clones. A view folded at a given block is
/// the same whoever asks, so every request at that height after the first is answered
/// locally; the map is emptied when the head moves to another height.
#[derive(Clone, Debug, Default)]
struct StreamCache {
    inner: Arc<Mutex<StreamCacheInner>>,
}

#[derive(Debug, Default)]
struct StreamCacheInner {
    height: u64,
    views: HashMap<(AccountId, u64, u64), Option<StreamView>>,
}

/// Most stream views kept for one height; beyond it the map starts over.
const STREAM_CACHE_MAX: usize = 100_000;

/// The last head read and when (wall-clock ms), shared by clones.
#[derive(Clone, Debug)]
struct HeadCache {
    ttl_ms: u64,
    last: Arc<Mutex<Option<(u64, u64, u64)>>>,
}

impl RpcChain {
    /// The chain of the node `node` talks to (a [`NodeRpc`], or anything that holds one, such
    /// as the typed client).
    #[must_use]
    pub fn new(node: impl Into<NodeRpc>) -> Self {
        Self { node: node.into(), liveness: None, head_cache: None, stream_cache: None }
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
    pub fn with_head_cache(mut self, ttl: Duration) -> Self {
        self.head_cache =
            Some(HeadCache { ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX), last: Arc::default() });
        self
    }

    /// Caps `observed_at_ms` by the follower's liveness (share it with the follower).
    #[must_use]
    pub fn with_liveness(mut self, liveness: Liveness) -> Self {
        self.liveness = Some(liveness);
        self
    }

    #[must_use]
    pub const fn node(&self) -> &NodeRpc {
        &self.node
    }

    async fn fetch_stream(
        &self,
        owner: &AccountId,
        vault_id: u64,
        stream_id: u64,
    ) -> Result<Option<StreamView>, ChainError> {
        if self.node.dialect == Dialect::Lez {
            return self.node.lez_stream(owner, vault_id, stream_id).await.map_err(|e| unavailable(&e));
        }
        self.node
            .http
            .get_stream(*owner, vault_id, stream_id)
            .await
            .map_err(|e| unavailable(&RpcError::from_call(&self.node.url, "paystreams_getStream", e)))
    }

    /// Reads the stream from the node and keeps it for readers at `height`.
    async fn read_and_cache(
        &self,
        cache: &StreamCache,
        height: u64,
        owner: &AccountId,
        vault_id: u64,
        stream_id: u64,
    ) -> Result<Option<StreamView>, ChainError> {
        let view = self.fetch_stream(owner, vault_id, stream_id).await?;
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
        let now = wall_clock_ms();
        let cached = self.head_cache.as_ref().and_then(|cache| {
            let last = *cache.last.lock().ok()?;
            last.filter(|(_, _, fetched_at)| now.saturating_sub(*fetched_at) < cache.ttl_ms)
        });
        if let Some((height, time_secs, fetched_at)) = cached {
            let observed_at_ms = self.liveness.as_ref().map_or(fetched_at, |l| fetched_at.min(l.last_alive_ms()));
            return Ok(ChainHead { height, time_secs, observed_at_ms });
        }
        let fetched = async {
            if self.node.dialect == Dialect::Lez {
                let clock = self.node.lez_clock().await.map_err(|e| unavailable(&e))?;
                return Ok::<_, ChainError>((clock.block_id, clock.timestamp_ms / 1000));
            }
            let http = &self.node.http;
            let height =
                http.get_last_block_id().await.map_err(|e| unavailable(&self.node.error("getLastBlockId")(e)))?;
            let block = http
                .get_block_info(height)
                .await
                .map_err(|e| unavailable(&self.node.error("paystreams_getBlock")(e)))?
                .ok_or_else(|| ChainError::Unavailable(format!("block {height} is missing")))?;
            Ok::<_, ChainError>((height, block.header.timestamp_ms / 1000))
        }
        .await;
        let (height, time_secs, fetched_at) = match (fetched, &self.head_cache) {
            (Ok((height, time_secs)), cache) => {
                let fetched_at = wall_clock_ms();
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
        if self.node.dialect == Dialect::Lez {
            return self.node.lez_vault(owner, vault_id).await.map_err(|e| unavailable(&e));
        }
        self.node
            .http
            .get_vault(*owner, vault_id)
            .await
            .map_err(|e| unavailable(&self.node.error("paystreams_getVault")(e)))
    }

    async fn stream(&self, owner: &AccountId, vault_id: u64, stream_id: u64) -> Result<Option<StreamView>, ChainError> {
        let Some(cache) = &self.stream_cache else {
            return self.fetch_stream(owner, vault_id, stream_id).await;
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
            return self.fetch_stream(owner, vault_id, stream_id).await;
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
    /// Signs with current nonces, sends, and waits for inclusion (no pre-flight): a failed
    /// receipt is [`SubmitOutcome::Failed`] with its code and name; RPC failures and inclusion
    /// timeouts are [`ChainError::Unavailable`].
    async fn submit(&self, call: &Call, signers: &[&SecretKey]) -> Result<SubmitOutcome, ChainError> {
        if self.node.dialect == Dialect::Lez {
            return self.lez_submit(call, signers).await;
        }
        let hash = self
            .node
            .send_signed(call.program_id, call.account_ids.clone(), call.instruction_data(), signers)
            .await
            .map_err(|e| unavailable(&e))?;
        let receipt = self.node.wait_receipt(hash, |_| {}).await.map_err(|e| unavailable(&e))?;
        Ok(outcome_of(receipt))
    }

    /// Fetches the signers' nonces once, signs call `i` with nonce + `i`, sends the calls in
    /// one `paystreams_sendTransactions` (in chunks of [`SEND_BATCH_MAX`]; the node admits them in order,
    /// so the nonces stay in order) and only then waits for the receipts. A transaction refused
    /// at admission is [`SubmitOutcome::Failed`] with code 0 (the ones after it are then refused
    /// at admission as a nonce gap, 1103, and are submitted again by the caller).
    async fn submit_batch(&self, calls: &[Call], signers: &[&SecretKey]) -> Result<Vec<SubmitOutcome>, ChainError> {
        if calls.is_empty() {
            return Ok(Vec::new());
        }
        if self.node.dialect == Dialect::Lez {
            // LEZ has no batch submission; one by one, each signed on a fresh read.
            let mut out = Vec::with_capacity(calls.len());
            for call in calls {
                out.push(self.lez_submit(call, signers).await?);
            }
            return Ok(out);
        }
        let ids = signers.iter().map(|k| k.account_id()).collect();
        let nonces: Vec<u128> = self.node.nonces(ids).await.map_err(|e| unavailable(&e))?;
        let mut encoded = Vec::with_capacity(calls.len());
        for (offset, call) in (0_u128..).zip(calls) {
            let nonces = nonces
                .iter()
                .map(|n| n.checked_add(offset))
                .collect::<Option<Vec<u128>>>()
                .ok_or_else(|| ChainError::Unavailable("signer nonce overflow".into()))?;
            let message = call.message(nonces);
            encoded.push(
                base64::engine::general_purpose::STANDARD.encode(Transaction::sign(message, signers).envelope_bytes()),
            );
        }
        // Each call's hash once admitted, or why the node refused it.
        let mut admitted: Vec<Result<HexHash, String>> = Vec::with_capacity(calls.len());
        let chunk = usize::try_from(SEND_BATCH_MAX).unwrap_or(usize::MAX).max(1);
        for part in encoded.chunks(chunk) {
            let answers = self
                .node
                .http
                .send_transactions(part.to_vec())
                .await
                .map_err(|e| unavailable(&self.node.error("paystreams_sendTransactions")(e)))?;
            admitted.extend(answers.into_iter().map(|answer| match (answer.hash, answer.error) {
                (Some(hash), _) => Ok(hash),
                (None, Some(e)) => Err(format!("{} ({})", e.message, e.code)),
                (None, None) => Err("no hash".to_owned()),
            }));
        }
        let mut out = Vec::with_capacity(admitted.len());
        for entry in admitted {
            match entry {
                Ok(hash) => {
                    let receipt = self.node.wait_receipt(hash, |_| {}).await.map_err(|e| unavailable(&e))?;
                    out.push(outcome_of(receipt));
                }
                Err(reason) => {
                    warn!(%reason, "batched transaction refused at admission");
                    out.push(SubmitOutcome::Failed { code: 0, name: format!("refused at admission: {reason}") });
                }
            }
        }
        Ok(out)
    }
}

impl RpcChain {
    /// [`ChainWriter::submit`] in the LEZ dialect: a dropped transaction is
    /// [`SubmitOutcome::Failed`] with code 0 and the reason (LEZ gives no error code); the events
    /// are the derived ones, empty when they are not known exactly.
    async fn lez_submit(&self, call: &Call, signers: &[&SecretKey]) -> Result<SubmitOutcome, ChainError> {
        let message = |nonces| Message {
            program_id: call.program_id,
            account_ids: call.account_ids.clone(),
            nonces,
            instruction_data: call.instruction_data(),
        };
        match self.node.lez_submit(message, &call.account_ids, signers, |_| {}).await {
            // Included: the events are empty when they cannot be derived (already warned).
            Ok(inclusion) => Ok(outcome_of(inclusion.into_receipt())),
            Err(RpcError::Dropped { hash, reason }) => {
                warn!(%hash, %reason, "transaction dropped by the sequencer");
                Ok(SubmitOutcome::Failed { code: 0, name: format!("dropped: {reason}") })
            }
            Err(e) => Err(unavailable(&e)),
        }
    }
}

/// A final receipt as a [`SubmitOutcome`].
fn outcome_of(receipt: ReceiptInfo) -> SubmitOutcome {
    if receipt.status == TxStatus::Included {
        return SubmitOutcome::Included {
            tx_hash: receipt.hash,
            block_id: receipt.block_id.unwrap_or_default(),
            events: stream_events(&receipt).cloned().collect(),
        };
    }
    let (code, name) = receipt.error.map_or((0, "Unknown".to_owned()), |e| (e.code, e.name));
    SubmitOutcome::Failed { code, name }
}

/// The node's events: `paystreams_subscribeEvents` subscriptions on a paystreams node's WebSocket
/// endpoint, or, in the LEZ dialect, polled blocks ([`lez::follow::BlockEvents`]).
#[derive(Clone, Debug)]
pub struct WsEvents {
    ws_url: String,
    filter: EventFilter,
    blocks: Option<lez::follow::BlockEvents>,
}

impl WsEvents {
    /// Events matching `filter` from the node `node` talks to (same port, `ws://`; polled
    /// blocks in the LEZ dialect).
    #[must_use]
    pub fn new(node: &NodeRpc, filter: EventFilter) -> Self {
        let blocks = (node.dialect == Dialect::Lez).then(|| lez::follow::BlockEvents::new(node, filter.clone()));
        Self { ws_url: node.ws_url(), filter, blocks }
    }

    /// Every event naming `provider`.
    #[must_use]
    pub fn for_provider(node: &NodeRpc, provider: AccountId) -> Self {
        Self::new(node, EventFilter { provider: Some(provider), ..EventFilter::default() })
    }
}

/// An open subscription; owns its WebSocket connection (dropping it closes both), or its
/// block-polling state.
#[derive(Debug)]
pub struct WsSubscription {
    inner: SubscriptionInner,
}

#[derive(Debug)]
enum SubscriptionInner {
    Ws { subscription: Subscription<EventNotification>, _ws: WsClient },
    Blocks(Box<lez::follow::BlockSubscription>),
}

impl EventSubscription for WsSubscription {
    async fn next_event(&mut self) -> Option<EventNotification> {
        match &mut self.inner {
            SubscriptionInner::Ws { subscription, .. } => loop {
                match subscription.next().await? {
                    Ok(notification) => return Some(notification),
                    Err(e) => warn!(error = %e, "undecodable event notification skipped"),
                }
            },
            SubscriptionInner::Blocks(blocks) => blocks.next_event().await,
        }
    }
}

impl EventSource for WsEvents {
    type Subscription = WsSubscription;

    async fn subscribe(&self) -> Result<WsSubscription, String> {
        if let Some(blocks) = &self.blocks {
            let subscription = blocks.subscribe().await?;
            return Ok(WsSubscription { inner: SubscriptionInner::Blocks(Box::new(subscription)) });
        }
        let ws = WsClientBuilder::default()
            .build(&self.ws_url)
            .await
            .map_err(|e| RpcError::Connection { url: self.ws_url.clone(), detail: e.to_string() }.to_string())?;
        let subscription = ws
            .subscribe_events(self.filter.clone())
            .await
            .map_err(|e| RpcError::from_call(&self.ws_url, "paystreams_subscribeEvents", e).to_string())?;
        Ok(WsSubscription { inner: SubscriptionInner::Ws { subscription, _ws: ws } })
    }
}
