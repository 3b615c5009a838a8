//! The paystreams JSON-RPC API.
//!
//! Methods LEZ's sequencer has keep LEZ's names and meaning (`sendTransaction`, `getTransaction`,
//! `getAccount`, `getAccountsNonces`, `getBlock`, `getBlockRange`, `getLastBlockId`); the rest
//! are ours: receipts (LEZ drops failed transactions silently; we keep them), decoded vault and
//! stream views folded at the latest block time, subscriptions, and dev-only time control.
//!
//! Conventions: account ids base58, hashes hex, `u128` amounts decimal strings, transactions
//! base64 of their Borsh bytes (LEZ's encoding), chain time in milliseconds, stream time in
//! seconds.
//!
//! This crate is also the seam between the off-chain engines and the chain: [`chain_view`] and
//! [`events`] are what the engines are generic over. Two features pick a side of the API: the
//! node enables `server` (the [`PaystreamsApiServer`] trait), everyone else `client` (the
//! generated [`PaystreamsApiClient`] and [`remote`], the chain view and event source over a
//! node's endpoints). Types, views and the seam traits compile without either.

pub mod chain_view;
pub mod clock;
pub mod events;
#[cfg(feature = "client")]
pub mod remote;
pub mod types;
pub mod views;

#[cfg(feature = "server")]
use jsonrpsee::core::SubscriptionResult;
#[cfg(any(feature = "client", feature = "server"))]
use jsonrpsee::proc_macros::rpc;
use jsonrpsee::types::ErrorObjectOwned;
#[cfg(any(feature = "client", feature = "server"))]
use paystreams_lez_core::AccountId;

pub use types::*;

/// JSON-RPC error codes of this API (jsonrpsee's standard codes cover malformed requests).
pub mod codes {
    /// The transaction failed stateless checks (decoding, limits, signatures).
    pub const TRANSACTION_REJECTED: i32 = -32001;
    /// The mempool is full; retry later.
    pub const MEMPOOL_FULL: i32 = -32002;
    /// A dev-only method was called on a node started without `--dev`.
    pub const DEV_METHOD_DISABLED: i32 = -32003;
    /// The transaction was already submitted.
    pub const DUPLICATE_TRANSACTION: i32 = -32004;
    /// Something requested does not exist (e.g. a block in a range).
    pub const NOT_FOUND: i32 = -31999;
    /// A storage failure inside the node.
    pub const STORAGE: i32 = -32010;
}

/// Result of every method.
pub type RpcResult<T> = Result<T, ErrorObjectOwned>;

/// The node's API (the `server` and `client` features generate its two sides).
#[cfg(any(feature = "client", feature = "server"))]
#[cfg_attr(all(feature = "server", feature = "client"), rpc(server, client))]
#[cfg_attr(all(feature = "server", not(feature = "client")), rpc(server))]
#[cfg_attr(all(feature = "client", not(feature = "server")), rpc(client))]
pub trait PaystreamsApi {
    /// Submits a signed transaction (base64 Borsh). Stateless checks run now; the hash is
    /// returned before execution. Poll `getTransactionReceipt` or subscribe to blocks.
    #[method(name = "sendTransaction")]
    async fn send_transaction(&self, transaction: String) -> RpcResult<HexHash>;

    /// Submits up to `SEND_BATCH_MAX` signed transactions at once (ours; LEZ has only
    /// `sendTransaction`). Their signatures are verified in parallel, then they are admitted in
    /// the order given, so one signer's transactions keep their nonce order. Each entry of the
    /// answer is the hash or the error `sendTransaction` would have given for that transaction;
    /// one refusal does not stop the others.
    #[method(name = "sendTransactions")]
    async fn send_transactions(&self, transactions: Vec<String>) -> RpcResult<Vec<SubmitOutcome>>;

    /// The transaction with this hash and where it was included, or null while unknown.
    #[method(name = "getTransaction")]
    async fn get_transaction(&self, hash: HexHash) -> RpcResult<Option<TransactionInfo>>;

    /// Included, failed (with the program error) or pending; null for an unknown hash.
    #[method(name = "getTransactionReceipt")]
    async fn get_transaction_receipt(&self, hash: HexHash) -> RpcResult<Option<ReceiptInfo>>;

    /// The account (the default account for an unknown id).
    #[method(name = "getAccount")]
    async fn get_account(&self, account_id: AccountId) -> RpcResult<AccountInfo>;

    /// Current nonces, in order.
    #[method(name = "getAccountsNonces")]
    async fn get_accounts_nonces(&self, account_ids: Vec<AccountId>) -> RpcResult<Vec<Amount>>;

    /// A block by height, or null.
    #[method(name = "getBlock")]
    async fn get_block(&self, block_id: u64) -> RpcResult<Option<BlockInfo>>;

    /// Blocks `start..=end` (at most `BLOCK_RANGE_MAX`); error -31999 if any is missing.
    #[method(name = "getBlockRange")]
    async fn get_block_range(&self, start_block_id: u64, end_block_id: u64) -> RpcResult<Vec<BlockInfo>>;

    /// Height of the latest committed block.
    #[method(name = "getLastBlockId")]
    async fn get_last_block_id(&self) -> RpcResult<u64>;

    /// Program ids of the installed programs by name.
    #[method(name = "getProgramIds")]
    async fn get_program_ids(&self) -> RpcResult<std::collections::BTreeMap<String, String>>;

    /// A vault by owner and vault id, decoded.
    #[method(name = "getVault")]
    async fn get_vault(&self, owner: AccountId, vault_id: u64) -> RpcResult<Option<VaultView>>;

    /// The vaults of an owner.
    #[method(name = "listVaults")]
    async fn list_vaults(&self, owner: AccountId) -> RpcResult<Vec<VaultView>>;

    /// A stream, decoded, with effective state folded at the latest block time.
    #[method(name = "getStream")]
    async fn get_stream(&self, owner: AccountId, vault_id: u64, stream_id: u64) -> RpcResult<Option<StreamView>>;

    /// Streams by owner and/or provider (at least one), folded at the latest block time.
    #[method(name = "listStreams")]
    async fn list_streams(&self, filter: StreamFilter) -> RpcResult<Vec<StreamView>>;

    /// New blocks as they commit.
    #[subscription(name = "subscribeBlocks" => "block", unsubscribe = "unsubscribeBlocks", item = BlockInfo)]
    async fn subscribe_blocks(&self) -> SubscriptionResult;

    /// Payment-stream events of committed blocks matching the filter.
    #[subscription(name = "subscribeEvents" => "event", unsubscribe = "unsubscribeEvents", item = EventNotification)]
    async fn subscribe_events(&self, filter: EventFilter) -> SubscriptionResult;

    /// Dev only: moves the chain clock forward by `seconds` and mines a block.
    #[method(name = "devAdvanceTime")]
    async fn dev_advance_time(&self, seconds: u64) -> RpcResult<BlockInfo>;

    /// Dev only: mines `blocks` blocks now (1 if omitted).
    #[method(name = "devMine")]
    async fn dev_mine(&self, blocks: Option<u32>) -> RpcResult<BlockInfo>;
}
