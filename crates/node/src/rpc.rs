//! The JSON-RPC server: [`PaystreamsApiServer`] over the [`Chain`].

use std::{collections::BTreeMap, sync::Arc};

use jsonrpsee::{
    PendingSubscriptionSink,
    core::{SubscriptionResult, async_trait},
    types::{ErrorObjectOwned, error::INVALID_PARAMS_CODE},
};
use paystreams_lez_core::AccountId;
use paystreams_rpc::{
    AccountInfo, Amount, BLOCK_RANGE_MAX, BlockInfo, EventFilter, HexHash, PaystreamsApiServer, ReceiptInfo, RpcResult,
    SEND_BATCH_MAX, StreamFilter, StreamView, SubmitError, SubmitOutcome, TransactionInfo, VaultView, codes,
};
use tokio::sync::broadcast::error::RecvError;

use crate::chain::{Chain, CommittedBlock, DEV_MINE_MAX, NodeError, block_info};

/// Most account ids one `getAccountsNonces` call may name.
pub const NONCES_MAX: usize = 1_000;

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
            NodeError::Duplicate(_) => error(codes::DUPLICATE_TRANSACTION, e.to_string()),
            NodeError::MempoolFull => error(codes::MEMPOOL_FULL, e.to_string()),
            NodeError::Storage(_) | NodeError::Production(_) => error(codes::STORAGE, e.to_string()),
            NodeError::InvalidArgument(_) => error(INVALID_PARAMS_CODE, e.to_string()),
            NodeError::BlockNotFound(_) => error(INVALID_PARAMS_CODE, e.to_string()),
            NodeError::DataDir(_) => error(codes::STORAGE, e.to_string()),
        }
    }
}

/// The server side of the API.
pub struct RpcServer {
    chain: Arc<Chain>,
    automine: bool,
    dev: bool,
}

impl RpcServer {
    pub const fn new(chain: Arc<Chain>, automine: bool, dev: bool) -> Self {
        Self { chain, automine, dev }
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
impl PaystreamsApiServer for RpcServer {
    async fn send_transaction(&self, transaction: String) -> RpcResult<HexHash> {
        let automine = self.automine;
        // Admission reads the receipts table (duplicates); automine also commits.
        let hash = self
            .blocking(move |chain| {
                let hash = chain.submit_encoded(&transaction)?;
                // Mine until this transaction is committed: every call mines at least its own
                // block, so concurrent senders never wait on each other for long.
                while automine && chain.is_pending(&hash) {
                    chain.produce_block(1, 0)?;
                }
                Ok(hash)
            })
            .await?;
        Ok(HexHash(hash))
    }

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

    async fn get_transaction(&self, hash: HexHash) -> RpcResult<Option<TransactionInfo>> {
        self.blocking(move |chain| chain.transaction(&hash.0)).await
    }

    async fn get_transaction_receipt(&self, hash: HexHash) -> RpcResult<Option<ReceiptInfo>> {
        self.blocking(move |chain| chain.receipt(&hash.0)).await
    }

    async fn get_account(&self, account_id: AccountId) -> RpcResult<AccountInfo> {
        Ok(self.chain.account(&account_id))
    }

    async fn get_accounts_nonces(&self, account_ids: Vec<AccountId>) -> RpcResult<Vec<Amount>> {
        if account_ids.len() > NONCES_MAX {
            return Err(error(INVALID_PARAMS_CODE, format!("at most {NONCES_MAX} account ids per call")));
        }
        Ok(account_ids.iter().map(|id| Amount(self.chain.account(id).nonce)).collect())
    }

    async fn get_block(&self, block_id: u64) -> RpcResult<Option<BlockInfo>> {
        self.blocking(move |chain| Ok(chain.block(block_id)?.as_ref().map(block_info))).await
    }

    async fn get_block_range(&self, start_block_id: u64, end_block_id: u64) -> RpcResult<Vec<BlockInfo>> {
        if end_block_id < start_block_id {
            return Err(error(INVALID_PARAMS_CODE, "end_block_id is before start_block_id"));
        }
        if end_block_id.saturating_sub(start_block_id) >= BLOCK_RANGE_MAX {
            return Err(error(INVALID_PARAMS_CODE, format!("at most {BLOCK_RANGE_MAX} blocks per call")));
        }
        let blocks = self
            .blocking(move |chain| {
                (start_block_id..=end_block_id)
                    .map(|height| Ok(chain.block(height)?.as_ref().map(block_info)))
                    .collect::<Result<Vec<Option<BlockInfo>>, NodeError>>()
            })
            .await?;
        (start_block_id..=end_block_id)
            .zip(blocks)
            .map(|(height, block)| {
                block.ok_or_else(|| error(codes::NOT_FOUND, format!("block {height} does not exist")))
            })
            .collect()
    }

    async fn get_last_block_id(&self) -> RpcResult<u64> {
        Ok(self.chain.head_height())
    }

    async fn get_program_ids(&self) -> RpcResult<BTreeMap<String, String>> {
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

    async fn subscribe_blocks(&self, pending: PendingSubscriptionSink) -> SubscriptionResult {
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
        self.require_dev("devAdvanceTime")?;
        if seconds > DEV_ADVANCE_MAX_SECS {
            return Err(error(INVALID_PARAMS_CODE, format!("advance at most {DEV_ADVANCE_MAX_SECS} seconds at once")));
        }
        let advance_ms = seconds.saturating_mul(1000);
        self.mine(1, advance_ms, block_capacity(self.automine)).await
    }

    async fn dev_mine(&self, blocks: Option<u32>) -> RpcResult<BlockInfo> {
        self.require_dev("devMine")?;
        let count = blocks.unwrap_or(1);
        if count == 0 || count > DEV_MINE_MAX {
            return Err(error(INVALID_PARAMS_CODE, format!("mine between 1 and {DEV_MINE_MAX} blocks")));
        }
        self.mine(count, 0, block_capacity(self.automine)).await
    }
}
