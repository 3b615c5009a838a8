//! The JSON-RPC server over the [`Chain`]: LEZ's methods ([`LezApiServer`]) and ours
//! ([`PaystreamsApiServer`], all `paystreams_*`), or LEZ's alone ([`RpcMethods::Lez`]).

use std::{
    collections::BTreeMap,
    future::Future,
    sync::{Arc, OnceLock},
};

use jsonrpsee::{
    PendingSubscriptionSink, RpcModule,
    core::{SubscriptionResult, async_trait},
    types::{ErrorObjectOwned, error::INVALID_PARAMS_CODE},
};
use paystreams_lez_core::{AccountId, domain_prefix, sha256};
use paystreams_rpc::{
    AccountInfo, BLOCK_RANGE_MAX, BlockInfo, EVENTS_PAGE_MAX, EventFilter, HexHash, LezApiServer,
    PAYSTREAMS_METHOD_PREFIX, PaystreamsApiServer, ReceiptInfo, RpcResult, SEND_BATCH_MAX, StreamFilter, StreamView,
    SubmitError, SubmitOutcome, TransactionInfo, VaultView, codes,
    lez::Base64Wire as _,
    lez::{
        self, Commitment, DUMMY_COMMITMENT, DUMMY_COMMITMENT_HASH, LezAccount, LezBlockData, LezProgramIds,
        MembershipProof, ProofsAndRoot, TransactionInBlock,
    },
};
use tokio::sync::broadcast::error::RecvError;

use crate::{
    chain::{Chain, CommittedBlock, DEV_MINE_MAX, LEZ_BLOCK_RANGE_MAX, NodeError, block_info},
    front::FrontLimits,
    limits::RpcLimits,
};

/// What the blocks of one `getBlockRange` answer may take once encoded: the response limit less
/// room for the JSON-RPC envelope. Past it the answer stops being built and the call is refused,
/// naming how many blocks would have fit.
const RANGE_ANSWER_BYTES_MAX: usize = crate::MAX_RESPONSE_BODY_BYTES as usize - 4096;

/// Most account ids one `getAccountsNonces` call may name (ours; LEZ sets no bound).
pub const NONCES_MAX: usize = 1_000;

/// Most commitments one `getProofsAndRoot` call may name (ours; LEZ sets no bound).
pub const COMMITMENTS_MAX: usize = 1_000;

/// The methods whose call changes the chain (submits a transaction, moves dev time, mines):
/// sent as a JSON-RPC notification (no `id`), these are executed and their outcome is logged.
/// Every other method's only effect is its answer, which a notification never gets: such a
/// notification is refused, with a logged reason. See `docs/node.md` ("JSON-RPC by the letter").
pub const METHODS_WITH_EFFECTS: &[&str] =
    &["sendTransaction", "paystreams_sendTransactions", "paystreams_devAdvanceTime", "paystreams_devMine"];

/// Which methods the node serves (`paystream node --rpc-methods`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum RpcMethods {
    /// LEZ's methods and ours (`paystreams_*`).
    #[default]
    All,
    /// LEZ's methods only: a `paystreams_*` call answers -32601 saying so, as a LEZ sequencer
    /// would answer "method not found". For testing clients that must need nothing LEZ lacks.
    Lez,
}

impl std::str::FromStr for RpcMethods {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "all" => Ok(Self::All),
            "lez" => Ok(Self::Lez),
            other => {
                Err(format!("unknown method set {other:?}; use `all` (LEZ's and paystreams_*) or `lez` (LEZ's only)"))
            }
        }
    }
}

impl std::fmt::Display for RpcMethods {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::All => "all",
            Self::Lez => "lez",
        })
    }
}

/// LEZ's builtin program names: a program of ours whose name is one of these but which is not
/// LEZ's program is listed by `getProgramIds` under `paystreams_<name>`, so a LEZ client never
/// mistakes it for LEZ's.
const LEZ_BUILTIN_NAMES: &[&str] = &["amm", "authenticated_transfer", "pinata", "privacy_preserving_circuit", "token"];

/// Our programs that are LEZ's own (same instructions and semantics), listed under LEZ's name.
const LEZ_PROGRAMS_WE_RUN: &[&str] = &["authenticated_transfer"];

/// The key `getProgramIds` lists a program under, or `None` for one LEZ does not list (the clock).
fn lez_program_key(name: &str) -> Option<String> {
    if name == "clock" {
        None
    } else if LEZ_PROGRAMS_WE_RUN.contains(&name) || !LEZ_BUILTIN_NAMES.contains(&name) {
        Some(name.to_owned())
    } else {
        Some(format!("{PAYSTREAMS_METHOD_PREFIX}{name}"))
    }
}

/// Domain prefix of this node's channel id.
const CHANNEL_ID_PREFIX: [u8; 32] = domain_prefix("/paystreams/v1/ChannelId/");

/// Dev time moves in whole seconds; a century is far beyond any test and keeps the
/// millisecond offset far from overflow.
const DEV_ADVANCE_MAX_SECS: u64 = 100 * 365 * 24 * 3600;

fn error(code: i32, message: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(code, message.into(), None::<()>)
}

impl From<NodeError> for ErrorObjectOwned {
    fn from(e: NodeError) -> Self {
        match &e {
            NodeError::Rejected(tx) => ErrorObjectOwned::owned(
                codes::TRANSACTION_REJECTED,
                e.to_string(),
                Some(serde_json::json!({ "code": tx.code(), "name": tx.name() })),
            ),
            NodeError::Refused(refusal) => ErrorObjectOwned::owned(
                codes::TRANSACTION_REJECTED,
                e.to_string(),
                Some(serde_json::json!({ "code": refusal.code(), "name": refusal.name() })),
            ),
            NodeError::Duplicate(_) => error(codes::DUPLICATE_TRANSACTION, e.to_string()),
            NodeError::MempoolFull => error(codes::MEMPOOL_FULL, e.to_string()),
            NodeError::Storage(_) | NodeError::Production(_) => error(codes::STORAGE, e.to_string()),
            NodeError::InvalidArgument(_) => error(INVALID_PARAMS_CODE, e.to_string()),
            NodeError::BlockNotFound(id) => error(codes::NOT_FOUND, lez::block_not_found_message(*id)),
            NodeError::DataDir(_) => error(codes::STORAGE, e.to_string()),
        }
    }
}

/// The server side of the API.
#[derive(Clone)]
pub struct RpcServer {
    chain: Arc<Chain>,
    automine: bool,
    dev: bool,
    channel_id: Arc<OnceLock<[u8; 32]>>,
    limits: Arc<RpcLimits>,
}

impl RpcServer {
    /// A server under the default limits ([`FrontLimits::DEFAULT`]).
    pub fn new(chain: Arc<Chain>, automine: bool, dev: bool) -> Self {
        let limits = Arc::new(RpcLimits::new(&FrontLimits::DEFAULT));
        Self { chain, automine, dev, channel_id: Arc::default(), limits }
    }

    /// The same server under `limits` (range reads and subscriptions in all).
    #[must_use]
    pub fn with_limits(mut self, limits: Arc<RpcLimits>) -> Self {
        self.limits = limits;
        self
    }

    /// The methods to serve: LEZ's, plus ours unless `methods` is [`RpcMethods::Lez`], in which
    /// case each of ours answers -32601 naming the mode.
    ///
    /// # Errors
    /// A method name registered twice (a bug).
    pub fn into_module(self, methods: RpcMethods) -> anyhow::Result<RpcModule<()>> {
        let mut module = RpcModule::new(());
        module.merge(LezApiServer::into_rpc(self.clone()))?;
        let ours = PaystreamsApiServer::into_rpc(self);
        match methods {
            RpcMethods::All => module.merge(ours)?,
            RpcMethods::Lez => {
                for name in ours.method_names() {
                    module.register_method(name, move |_, _, _| -> RpcResult<()> {
                        Err(error(
                            codes::METHOD_NOT_FOUND,
                            format!(
                                "{name} is not served: this node runs in LEZ-only mode (--rpc-methods lez) and \
                                 answers LEZ's methods only; restart it with --rpc-methods all for paystreams_* methods"
                            ),
                        ))
                    })?;
                }
            }
        }
        Ok(module)
    }

    fn require_dev(&self, method: &str) -> RpcResult<()> {
        if self.dev {
            Ok(())
        } else {
            Err(error(
                codes::DEV_METHOD_DISABLED,
                format!("{method} is a dev method; restart the node with --dev to use it"),
            ))
        }
    }

    /// Runs `work` on a blocking thread: every call that reads or writes the storage goes
    /// through here, so no redb read, commit or fsync runs on a tokio worker thread.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Chain) -> Result<T, NodeError> + Send + 'static,
    ) -> RpcResult<T> {
        let chain = Arc::clone(&self.chain);
        Ok(tokio::task::spawn_blocking(move || work(&chain))
            .await
            .map_err(|e| error(codes::STORAGE, format!("storage or block production task failed: {e}")))??)
    }

    /// Mines blocks on a blocking thread: `advance_ms` on the first, `count` in total.
    async fn mine(&self, count: u32, advance_ms: u64, max_txs: usize) -> RpcResult<BlockInfo> {
        let last = self
            .blocking(move |chain| {
                let mut last = None;
                let mut advance = advance_ms;
                for _ in 0..count {
                    last = Some(chain.produce_block(max_txs, advance)?);
                    advance = 0;
                }
                Ok(last)
            })
            .await?;
        Ok(last_or_head(&self.chain, last.as_deref()))
    }
}

fn last_or_head(chain: &Chain, last: Option<&CommittedBlock>) -> BlockInfo {
    last.map_or_else(|| chain.head_info(), |b| b.info.clone())
}

/// Automine blocks hold exactly one transaction (anvil's behaviour); interval blocks take up to
/// the block limit.
pub(crate) fn block_capacity(automine: bool) -> usize {
    if automine { 1 } else { crate::chain::MAX_TXS_PER_BLOCK }
}

#[async_trait]
impl LezApiServer for RpcServer {
    async fn send_transaction(&self, tx: String) -> RpcResult<HexHash> {
        if !self.automine {
            // Admission reads the receipts table (duplicates) on the blocking pool and, when no
            // mempool write is under way, writes there too; otherwise the call waits for the
            // write under way and the next, without holding a thread: one write carries every
            // call admitted meanwhile.
            let (hash, seq) = self
                .blocking(move |chain| {
                    let admitted = chain.admit_encoded(&tx)?;
                    chain.write_if_idle(admitted.1);
                    Ok(admitted)
                })
                .await?;
            self.chain.durable(seq).await?;
            return Ok(HexHash(hash));
        }
        let hash = self
            .blocking(move |chain| {
                let hash = chain.submit_encoded(&tx)?;
                // Mine until this transaction is committed: every call mines at least its own
                // block, so concurrent senders never wait on each other for long.
                while chain.is_pending(&hash) {
                    chain.produce_block(1, 0)?;
                }
                Ok(hash)
            })
            .await?;
        Ok(HexHash(hash))
    }

    async fn check_health(&self) -> RpcResult<()> {
        Ok(())
    }

    async fn get_block(&self, block_id: u64) -> RpcResult<Option<LezBlockData>> {
        Ok(self.blocking(move |chain| chain.lez_block(block_id)).await?.map(lez::Base64Borsh))
    }

    async fn get_block_range(&self, start_block_id: u64, end_block_id: u64) -> RpcResult<Vec<LezBlockData>> {
        let _turn = self.limits.range_read().await?;
        let blocks = self.blocking(move |chain| lez_block_range_bounded(chain, start_block_id, end_block_id)).await?;
        Ok(blocks.into_iter().map(lez::Base64Borsh).collect())
    }

    async fn get_last_block_id(&self) -> RpcResult<u64> {
        Ok(self.chain.head_height())
    }

    async fn get_account_balance(&self, account_id: AccountId) -> RpcResult<u128> {
        Ok(self.chain.account(&account_id).balance)
    }

    async fn get_transaction(&self, tx_hash: HexHash) -> RpcResult<Option<TransactionInBlock>> {
        // LEZ answers only transactions that took effect: pending, unknown and failed ones are
        // null.
        let found = self.blocking(move |chain| chain.lez_transaction(&tx_hash.0)).await?;
        Ok(found.map(|(tx, block_id)| (lez::Base64Borsh(tx), block_id)))
    }

    async fn get_accounts_nonces(&self, account_ids: Vec<AccountId>) -> RpcResult<Vec<u128>> {
        if account_ids.len() > NONCES_MAX {
            return Err(error(INVALID_PARAMS_CODE, format!("at most {NONCES_MAX} account ids per call")));
        }
        Ok(account_ids.iter().map(|id| self.chain.account(id).nonce).collect())
    }

    async fn get_proof_for_commitment(&self, commitment: Commitment) -> RpcResult<Option<MembershipProof>> {
        Ok(membership_proof(&commitment))
    }

    async fn get_proofs_and_root(&self, commitments: Vec<Commitment>) -> RpcResult<ProofsAndRoot> {
        if commitments.len() > COMMITMENTS_MAX {
            return Err(error(INVALID_PARAMS_CODE, format!("at most {COMMITMENTS_MAX} commitments per call")));
        }
        Ok((commitments.iter().map(membership_proof).collect(), DUMMY_COMMITMENT_HASH))
    }

    async fn get_account(&self, account_id: AccountId) -> RpcResult<LezAccount> {
        Ok(LezAccount::from(self.chain.account(&account_id)))
    }

    async fn get_program_ids(&self) -> RpcResult<LezProgramIds> {
        let runtime = self.chain.runtime();
        Ok(runtime
            .program_ids()
            .filter_map(|id| runtime.program(id).and_then(|p| lez_program_key(p.name())).map(|key| (key, id.0)))
            .collect())
    }

    async fn get_channel_id(&self) -> RpcResult<HexHash> {
        let id = self.channel_id.get_or_init(|| {
            // The genesis is fixed when the data dir is created, so the id is the same across
            // restarts and differs between chains.
            let genesis = borsh::to_vec(self.chain.genesis()).unwrap_or_default();
            sha256(&[&CHANNEL_ID_PREFIX, &genesis])
        });
        Ok(HexHash(*id))
    }
}

/// [`Chain::lez_block_range`], built block by block and refused as soon as the encoded blocks pass
/// [`RANGE_ANSWER_BYTES_MAX`], so an answer too large to send is never built whole.
fn lez_block_range_bounded(
    chain: &Chain,
    start: u64,
    end: u64,
) -> Result<Vec<paystreams_lez_core::lez_block::LezBlock>, NodeError> {
    if start > end || end.saturating_sub(start) >= LEZ_BLOCK_RANGE_MAX {
        // The chain's refusal, with its message; nothing is read.
        return chain.lez_block_range(start, end);
    }
    let head = chain.head_height();
    if start == 0 || end > head {
        // The first missing id, as the chain would find it after reading all the others.
        return Err(NodeError::BlockNotFound(if start == 0 { 0 } else { head.max(start - 1) + 1 }));
    }
    let mut blocks = Vec::new();
    let mut bytes = 0usize;
    for id in start..=end {
        let block = chain.lez_block(id)?.ok_or(NodeError::BlockNotFound(id))?;
        // Base64 of the Borsh bytes, quoted, and a comma.
        bytes = bytes.saturating_add(block.wire_bytes().len().div_ceil(3).saturating_mul(4).saturating_add(3));
        if bytes > RANGE_ANSWER_BYTES_MAX {
            return Err(NodeError::InvalidArgument(format!(
                "blocks {start}..={id} already take more than {RANGE_ANSWER_BYTES_MAX} bytes encoded, the most one \
                 answer may hold; ask for at most {} blocks from {start}",
                (id - start).max(1)
            )));
        }
        blocks.push(block);
    }
    Ok(blocks)
}

/// The commitment set of a chain without private transactions: LEZ's dummy commitment alone, at
/// index 0 of a one-leaf tree (empty authentication path).
fn membership_proof(commitment: &Commitment) -> Option<MembershipProof> {
    (*commitment == DUMMY_COMMITMENT).then(|| (0, Vec::new()))
}

/// Refuses a reversed range or one longer than [`BLOCK_RANGE_MAX`].
fn check_range(start_block_id: u64, end_block_id: u64) -> RpcResult<()> {
    if end_block_id < start_block_id {
        return Err(error(INVALID_PARAMS_CODE, "end_block_id is before start_block_id"));
    }
    if end_block_id.saturating_sub(start_block_id) >= BLOCK_RANGE_MAX {
        return Err(error(INVALID_PARAMS_CODE, format!("at most {BLOCK_RANGE_MAX} blocks per call")));
    }
    Ok(())
}

#[async_trait]
impl PaystreamsApiServer for RpcServer {
    async fn send_transactions(&self, transactions: Vec<String>) -> RpcResult<Vec<SubmitOutcome>> {
        let count = u64::try_from(transactions.len()).unwrap_or(u64::MAX);
        if count > SEND_BATCH_MAX {
            return Err(error(
                INVALID_PARAMS_CODE,
                format!("{count} transactions in one call; send at most {SEND_BATCH_MAX} per call"),
            ));
        }
        let results = self.blocking(move |chain| Ok(chain.submit_encoded_batch(&transactions))).await?;
        let outcomes: Vec<SubmitOutcome> = results
            .into_iter()
            .map(|result| match result {
                Ok(hash) => SubmitOutcome { hash: Some(HexHash(hash)), error: None },
                Err(e) => {
                    let object = ErrorObjectOwned::from(e);
                    SubmitOutcome {
                        hash: None,
                        error: Some(SubmitError { code: object.code(), message: object.message().to_owned() }),
                    }
                }
            })
            .collect();
        if self.automine {
            let pending: Vec<[u8; 32]> = outcomes.iter().filter_map(|o| o.hash.map(|h| h.0)).collect();
            self.blocking(move |chain| {
                while pending.iter().any(|hash| chain.is_pending(hash)) {
                    chain.produce_block(crate::chain::MAX_TXS_PER_BLOCK, 0)?;
                }
                Ok(())
            })
            .await?;
        }
        Ok(outcomes)
    }

    async fn get_transaction_info(&self, hash: HexHash) -> RpcResult<Option<TransactionInfo>> {
        self.blocking(move |chain| chain.transaction(&hash.0)).await
    }

    async fn get_transaction_receipt(&self, hash: HexHash) -> RpcResult<Option<ReceiptInfo>> {
        self.blocking(move |chain| chain.receipt(&hash.0)).await
    }

    async fn get_account_info(&self, account_id: AccountId) -> RpcResult<AccountInfo> {
        Ok(self.chain.account(&account_id))
    }

    async fn get_block_info(&self, block_id: u64) -> RpcResult<Option<BlockInfo>> {
        self.blocking(move |chain| Ok(chain.block(block_id)?.as_ref().map(block_info))).await
    }

    async fn get_block_range_info(&self, start_block_id: u64, end_block_id: u64) -> RpcResult<Vec<BlockInfo>> {
        check_range(start_block_id, end_block_id)?;
        let head = self.chain.head_height();
        if end_block_id > head {
            // The first missing height, answered without reading the blocks before it.
            let missing = head.max(start_block_id.saturating_sub(1)) + 1;
            return Err(error(codes::NOT_FOUND, lez::block_not_found_message(missing)));
        }
        let _turn = self.limits.range_read().await?;
        let blocks = self
            .blocking(move |chain| {
                (start_block_id..=end_block_id)
                    .map(|height| Ok(chain.block(height)?.as_ref().map(block_info)))
                    .collect::<Result<Vec<Option<BlockInfo>>, NodeError>>()
            })
            .await?;
        (start_block_id..=end_block_id)
            .zip(blocks)
            .map(|(height, block)| block.ok_or_else(|| error(codes::NOT_FOUND, lez::block_not_found_message(height))))
            .collect()
    }

    async fn get_program_ids_hex(&self) -> RpcResult<BTreeMap<String, String>> {
        let runtime = self.chain.runtime();
        Ok(runtime
            .program_ids()
            .filter_map(|id| runtime.program(id).map(|p| (p.name().to_owned(), id.to_string())))
            .collect())
    }

    async fn get_vault(&self, owner: AccountId, vault_id: u64) -> RpcResult<Option<VaultView>> {
        Ok(self.chain.vault(&owner, vault_id))
    }

    async fn list_vaults(&self, owner: AccountId) -> RpcResult<Vec<VaultView>> {
        Ok(self.chain.vaults(&owner))
    }

    async fn get_stream(&self, owner: AccountId, vault_id: u64, stream_id: u64) -> RpcResult<Option<StreamView>> {
        Ok(self.chain.stream(&owner, vault_id, stream_id))
    }

    async fn list_streams(&self, filter: StreamFilter) -> RpcResult<Vec<StreamView>> {
        Ok(self.chain.streams(filter.owner.as_ref(), filter.provider.as_ref())?)
    }

    async fn get_events(
        &self,
        filter: paystreams_rpc::EventFilter,
        after: Option<paystreams_rpc::EventCursor>,
        limit: Option<u32>,
    ) -> RpcResult<paystreams_rpc::EventPage> {
        if filter.owner.is_none() && (filter.vault_id.is_some() || filter.stream_id.is_some()) {
            return Err(error(
                INVALID_PARAMS_CODE,
                "a vault_id or stream_id names a vault of one owner: give its owner too (filter.owner)",
            ));
        }
        let limit = match limit {
            None => EVENTS_PAGE_MAX,
            Some(0) => {
                return Err(error(
                    INVALID_PARAMS_CODE,
                    format!("limit 0 reads nothing; give 1 to {EVENTS_PAGE_MAX}, or omit it for {EVENTS_PAGE_MAX}"),
                ));
            }
            Some(limit) => limit.min(EVENTS_PAGE_MAX),
        };
        self.blocking(move |chain| chain.events(&filter, after, limit)).await
    }

    async fn subscribe_blocks(&self, pending: PendingSubscriptionSink) -> SubscriptionResult {
        let _place = match self.limits.subscription() {
            Ok(place) => place,
            Err(e) => {
                pending.reject(e).await;
                return Ok(());
            }
        };
        let mut blocks = self.chain.subscribe();
        let sink = pending.accept().await?;
        loop {
            tokio::select! {
                () = sink.closed() => break,
                received = blocks.recv() => match received {
                    Ok(block) => {
                        sink.send(serde_json::value::to_raw_value(&block.info)?).await?;
                    }
                    Err(RecvError::Lagged(skipped)) => tracing::debug!(skipped, "block subscriber lagged"),
                    Err(RecvError::Closed) => break,
                },
            }
        }
        Ok(())
    }

    async fn subscribe_events(&self, pending: PendingSubscriptionSink, filter: EventFilter) -> SubscriptionResult {
        let _place = match self.limits.subscription() {
            Ok(place) => place,
            Err(e) => {
                pending.reject(e).await;
                return Ok(());
            }
        };
        let mut blocks = self.chain.subscribe();
        let sink = pending.accept().await?;
        loop {
            tokio::select! {
                () = sink.closed() => break,
                received = blocks.recv() => match received {
                    Ok(block) => {
                        for notification in block.events.iter().filter(|n| filter.matches(&n.event)) {
                            sink.send(serde_json::value::to_raw_value(notification)?).await?;
                        }
                    }
                    Err(RecvError::Lagged(skipped)) => tracing::debug!(skipped, "event subscriber lagged"),
                    Err(RecvError::Closed) => break,
                },
            }
        }
        Ok(())
    }

    async fn dev_advance_time(&self, seconds: u64) -> RpcResult<BlockInfo> {
        self.require_dev("paystreams_devAdvanceTime")?;
        if seconds > DEV_ADVANCE_MAX_SECS {
            return Err(error(INVALID_PARAMS_CODE, format!("advance at most {DEV_ADVANCE_MAX_SECS} seconds at once")));
        }
        let advance_ms = seconds.saturating_mul(1000);
        self.mine(1, advance_ms, block_capacity(self.automine)).await
    }

    async fn dev_mine(&self, blocks: Option<u32>) -> RpcResult<BlockInfo> {
        self.require_dev("paystreams_devMine")?;
        let count = blocks.unwrap_or(1);
        if count == 0 || count > DEV_MINE_MAX {
            return Err(error(INVALID_PARAMS_CODE, format!("mine between 1 and {DEV_MINE_MAX} blocks")));
        }
        self.mine(count, 0, block_capacity(self.automine)).await
    }
}

/// Runs JSON-RPC notifications per [`METHODS_WITH_EFFECTS`] (jsonrpsee itself drops them): a
/// notification of a method with effects is executed as a call whose answer is logged and
/// discarded; any other notification is refused with a logged reason. Over HTTP the front layer
/// (`http.rs`) has already turned notifications into calls, so this acts on WebSocket messages.
#[derive(Clone)]
pub struct Notifications<S> {
    service: S,
}

impl<S> Notifications<S> {
    pub const fn new(service: S) -> Self {
        Self { service }
    }
}

/// A notification as a call with an id of its own, or `None` (logged) when it is refused.
fn notification_as_call(
    n: &jsonrpsee::core::middleware::Notification<'_>,
) -> Option<jsonrpsee::types::Request<'static>> {
    if !METHODS_WITH_EFFECTS.contains(&n.method.as_ref()) {
        log_notification(&n.method, &Outcome::Refused(REFUSED_NO_EFFECT));
        return None;
    }
    let mut request = jsonrpsee::types::Request::owned(
        n.method.to_string(),
        n.params.as_ref().map(|p| p.clone().into_owned()),
        jsonrpsee::types::Id::Str("notification".into()),
    );
    request.extensions = n.extensions.clone();
    Some(request)
}

fn log_notification_outcome(method: &str, response: &jsonrpsee::MethodResponse) {
    let outcome =
        if response.is_error() { Outcome::Failed(response.to_json().get().to_owned()) } else { Outcome::Executed };
    log_notification(method, &outcome);
}

/// Why a notification of a method without effects is refused.
pub(crate) const REFUSED_NO_EFFECT: &str =
    "the method's only effect is its answer, and a notification gets none; send it with an id";

/// What became of a notification.
pub(crate) enum Outcome {
    /// Not executed, for this reason.
    Refused(&'static str),
    Executed,
    /// Executed and answered with this error (JSON text).
    Failed(String),
}

/// Most log lines about notifications per second; the rest are counted, and the count is logged
/// with the next line after the second ends, so a flood of notifications cannot flood the log.
pub const NOTIFICATION_LOG_LINES_PER_SECOND: u32 = 20;

/// Logs what became of a notification (refusals and successes at `info`, failures at `warn`),
/// within [`NOTIFICATION_LOG_LINES_PER_SECOND`].
pub(crate) fn log_notification(method: &str, outcome: &Outcome) {
    static WINDOW: std::sync::Mutex<(Option<std::time::Instant>, u32, u64)> = std::sync::Mutex::new((None, 0, 0));
    {
        let mut window = WINDOW.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = std::time::Instant::now();
        if window.0.is_none_or(|start| now.duration_since(start) >= std::time::Duration::from_secs(1)) {
            if window.2 > 0 {
                tracing::warn!(suppressed = window.2, "more notification outcomes than the log takes; not logged");
            }
            *window = (Some(now), 0, 0);
        }
        if window.1 >= NOTIFICATION_LOG_LINES_PER_SECOND {
            window.2 = window.2.saturating_add(1);
            return;
        }
        window.1 += 1;
    }
    match outcome {
        Outcome::Refused(reason) => tracing::info!(%method, "notification refused: {reason}"),
        Outcome::Executed => tracing::info!(%method, "notification executed"),
        Outcome::Failed(error) => tracing::warn!(%method, %error, "notification failed"),
    }
}

impl<S> jsonrpsee::server::middleware::rpc::RpcServiceT for Notifications<S>
where
    S: jsonrpsee::server::middleware::rpc::RpcServiceT<
            MethodResponse = jsonrpsee::MethodResponse,
            NotificationResponse = jsonrpsee::MethodResponse,
            BatchResponse = jsonrpsee::MethodResponse,
        > + Clone
        + Send
        + Sync
        + 'static,
{
    type MethodResponse = S::MethodResponse;
    type NotificationResponse = S::NotificationResponse;
    type BatchResponse = S::BatchResponse;

    fn call<'a>(
        &self,
        request: jsonrpsee::types::Request<'a>,
    ) -> impl Future<Output = Self::MethodResponse> + Send + 'a {
        self.service.call(request)
    }

    fn batch<'a>(
        &self,
        batch: jsonrpsee::core::middleware::Batch<'a>,
    ) -> impl Future<Output = Self::BatchResponse> + Send + 'a {
        let calls: Vec<_> = batch
            .iter()
            .filter_map(|entry| match entry {
                Ok(jsonrpsee::core::middleware::BatchEntry::Notification(n)) => notification_as_call(n),
                _ => None,
            })
            .collect();
        let service = self.service.clone();
        async move {
            for call in calls {
                let method = call.method.to_string();
                log_notification_outcome(&method, &service.call(call).await);
            }
            service.batch(batch).await
        }
    }

    fn notification<'a>(
        &self,
        n: jsonrpsee::core::middleware::Notification<'a>,
    ) -> impl Future<Output = Self::NotificationResponse> + Send + 'a {
        let call = notification_as_call(&n);
        let service = self.service.clone();
        async move {
            if let Some(call) = call {
                let method = call.method.to_string();
                log_notification_outcome(&method, &service.call(call).await);
            }
            jsonrpsee::MethodResponse::notification().with_extensions(n.extensions)
        }
    }
}
