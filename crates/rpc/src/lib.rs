//! The paystreams JSON-RPC API, in two parts.
//!
//! - [`LezApi`]: LEZ's sequencer methods under LEZ's names with LEZ's parameter and result
//!   shapes (v0.2.4, plus v0.2.0's `getProofForCommitment`), so LEZ's own wallet and clients
//!   talk to this node unchanged. Wire types in [`lez`].
//! - [`PaystreamsApi`]: our richer answers under names of our own, all prefixed `paystreams_`:
//!   receipts (LEZ drops failed transactions silently; we keep them), batch submission, decoded
//!   vault and stream views folded at the latest block time, blocks and accounts in our JSON
//!   form, subscriptions, and dev-only time control. A node started with `--rpc-methods lez`
//!   serves only [`LezApi`].
//!
//! Conventions of [`PaystreamsApi`]: account ids base58, hashes hex, `u128` amounts decimal
//! strings, transactions base64 of their Borsh bytes (LEZ's encoding), chain time in
//! milliseconds, stream time in seconds.
//!
//! This crate is also the seam between the off-chain engines and the chain: [`chain_view`] and
//! [`events`] are what the engines are generic over. Two features pick a side of the API: the
//! node enables `server` (the [`LezApiServer`] and [`PaystreamsApiServer`] traits), everyone else
//! `client` (the generated [`LezApiClient`] and [`PaystreamsApiClient`], and [`remote`], the
//! chain view and event source over a node's endpoints). Types, views and the seam traits
//! compile without either.

pub mod chain_view;
pub mod clock;
pub mod events;
pub mod lez;
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
    /// The transaction failed stateless checks (decoding, limits, signatures): LEZ's code for a
    /// refused `sendTransaction` (JSON-RPC's "invalid params"). The error's data carries the
    /// runtime's `{code, name}`.
    pub const TRANSACTION_REJECTED: i32 = -32602;
    /// The mempool is full; retry later (ours: LEZ's sequencer waits instead).
    pub const MEMPOOL_FULL: i32 = -32002;
    /// A dev-only method was called on a node started without `--dev`.
    pub const DEV_METHOD_DISABLED: i32 = -32003;
    /// The transaction was already submitted (ours).
    pub const DUPLICATE_TRANSACTION: i32 = -32004;
    /// Something requested does not exist (a block in a range): LEZ's `NOT_FOUND_ERROR_CODE`.
    pub const NOT_FOUND: i32 = -31999;
    /// A storage failure inside the node.
    pub const STORAGE: i32 = -32010;
    /// JSON-RPC's "method not found": also what a `paystreams_*` method answers on a node that
    /// serves only LEZ's methods.
    pub const METHOD_NOT_FOUND: i32 = -32601;
}

/// Result of every method.
pub type RpcResult<T> = Result<T, ErrorObjectOwned>;

/// Prefix of every method of [`PaystreamsApi`].
pub const PAYSTREAMS_METHOD_PREFIX: &str = "paystreams_";

/// LEZ's sequencer API (v0.2.4 signatures; the `server` and `client` features generate its two
/// sides). Parameters are accepted as a positional array (what LEZ's clients send) or as an
/// object keyed by the parameter names below in snake_case or lowerCamelCase (what LEZ's
/// jsonrpsee server also accepts).
#[cfg(any(feature = "client", feature = "server"))]
#[cfg_attr(all(feature = "server", feature = "client"), rpc(server, client))]
#[cfg_attr(all(feature = "server", not(feature = "client")), rpc(server))]
#[cfg_attr(all(feature = "client", not(feature = "server")), rpc(client))]
pub trait LezApi {
    /// Submits a signed transaction: base64 of its `LeeTransaction` Borsh. Stateless checks run
    /// now (refusal: error -32602 with the runtime's `{code, name}` as data); the hash (hex) is
    /// returned before execution. Poll `getTransaction`: it stays null until the transaction is
    /// included, and forever if it failed.
    #[method(name = "sendTransaction")]
    async fn send_transaction(&self, tx: String) -> RpcResult<HexHash>;

    /// Null while the node answers.
    #[method(name = "checkHealth")]
    async fn check_health(&self) -> RpcResult<()>;

    /// A block (base64 of LEZ's `Block` Borsh), or null.
    #[method(name = "getBlock")]
    async fn get_block(&self, block_id: u64) -> RpcResult<Option<lez::LezBlockData>>;

    /// Blocks `start_block_id..=end_block_id` (at most `BLOCK_RANGE_MAX`); error -31999
    /// "Block with id {id} not found" if any is missing.
    #[method(name = "getBlockRange")]
    async fn get_block_range(&self, start_block_id: u64, end_block_id: u64) -> RpcResult<Vec<lez::LezBlockData>>;

    /// Id of the latest block.
    #[method(name = "getLastBlockId")]
    async fn get_last_block_id(&self) -> RpcResult<u64>;

    /// The account's balance (0 for an unknown account), a JSON number.
    #[method(name = "getAccountBalance")]
    async fn get_account_balance(&self, account_id: AccountId) -> RpcResult<u128>;

    /// `[transaction base64, block id]` once included; null while pending, for an unknown
    /// hash, and for a transaction that failed (LEZ drops those).
    #[method(name = "getTransaction")]
    async fn get_transaction(&self, tx_hash: HexHash) -> RpcResult<Option<lez::TransactionInBlock>>;

    /// Current nonces (JSON numbers), in the order asked.
    #[method(name = "getAccountsNonces")]
    async fn get_accounts_nonces(&self, account_ids: Vec<AccountId>) -> RpcResult<Vec<u128>>;

    /// LEZ v0.2.0's membership proof of a private-account commitment.
    #[method(name = "getProofForCommitment")]
    async fn get_proof_for_commitment(&self, commitment: lez::Commitment) -> RpcResult<Option<lez::MembershipProof>>;

    /// LEZ v0.2.1+'s membership proofs (null where absent) and the commitment-set root.
    #[method(name = "getProofsAndRoot")]
    async fn get_proofs_and_root(&self, commitments: Vec<lez::Commitment>) -> RpcResult<lez::ProofsAndRoot>;

    /// The account in LEZ's JSON (the default account for an unknown id, never null).
    #[method(name = "getAccount")]
    async fn get_account(&self, account_id: AccountId) -> RpcResult<lez::LezAccount>;

    /// Ids (`[u32; 8]`) of the programs this node runs, by name.
    #[method(name = "getProgramIds")]
    async fn get_program_ids(&self) -> RpcResult<lez::LezProgramIds>;

    /// The node's channel id (hex).
    #[method(name = "getChannelId")]
    async fn get_channel_id(&self) -> RpcResult<HexHash>;
}

/// Our own methods, all `paystreams_*` (the `server` and `client` features generate its two
/// sides). Rust method names differ from [`LezApi`]'s so both client traits can be in scope.
#[cfg(any(feature = "client", feature = "server"))]
#[cfg_attr(all(feature = "server", feature = "client"), rpc(server, client))]
#[cfg_attr(all(feature = "server", not(feature = "client")), rpc(server))]
#[cfg_attr(all(feature = "client", not(feature = "server")), rpc(client))]
pub trait PaystreamsApi {
    /// Submits up to `SEND_BATCH_MAX` signed transactions (each base64 of its `LeeTransaction`
    /// Borsh) at once. Their signatures are verified in parallel, then they are admitted in
    /// the order given, so one signer's transactions keep their nonce order. Each entry of the
    /// answer is the hash or the error `sendTransaction` would have given for that transaction;
    /// one refusal does not stop the others.
    #[method(name = "paystreams_sendTransactions")]
    async fn send_transactions(&self, transactions: Vec<String>) -> RpcResult<Vec<SubmitOutcome>>;

    /// The transaction with this hash and where it was included (pending and failed ones too),
    /// or null while unknown.
    #[method(name = "paystreams_getTransaction")]
    async fn get_transaction_info(&self, hash: HexHash) -> RpcResult<Option<TransactionInfo>>;

    /// Included, failed (with the program error) or pending; null for an unknown hash.
    #[method(name = "paystreams_getTransactionReceipt")]
    async fn get_transaction_receipt(&self, hash: HexHash) -> RpcResult<Option<ReceiptInfo>>;

    /// The account with hex data and decimal-string amounts (the default account for an
    /// unknown id).
    #[method(name = "paystreams_getAccount")]
    async fn get_account_info(&self, account_id: AccountId) -> RpcResult<AccountInfo>;

    /// A block in our JSON form (header with state and transactions roots, and the hashes of
    /// every included transaction, failed ones too), or null.
    #[method(name = "paystreams_getBlock")]
    async fn get_block_info(&self, block_id: u64) -> RpcResult<Option<BlockInfo>>;

    /// Blocks `start..=end` in our JSON form (at most `BLOCK_RANGE_MAX`); error -31999 if any
    /// is missing.
    #[method(name = "paystreams_getBlockRange")]
    async fn get_block_range_info(&self, start_block_id: u64, end_block_id: u64) -> RpcResult<Vec<BlockInfo>>;

    /// Program ids (hex) of every installed program by name, builtins such as the clock
    /// included.
    #[method(name = "paystreams_getProgramIds")]
    async fn get_program_ids_hex(&self) -> RpcResult<std::collections::BTreeMap<String, String>>;

    /// A vault by owner and vault id, decoded.
    #[method(name = "paystreams_getVault")]
    async fn get_vault(&self, owner: AccountId, vault_id: u64) -> RpcResult<Option<VaultView>>;

    /// The vaults of an owner.
    #[method(name = "paystreams_listVaults")]
    async fn list_vaults(&self, owner: AccountId) -> RpcResult<Vec<VaultView>>;

    /// A stream, decoded, with effective state folded at the latest block time.
    #[method(name = "paystreams_getStream")]
    async fn get_stream(&self, owner: AccountId, vault_id: u64, stream_id: u64) -> RpcResult<Option<StreamView>>;

    /// Streams by owner and/or provider (at least one), folded at the latest block time.
    #[method(name = "paystreams_listStreams")]
    async fn list_streams(&self, filter: StreamFilter) -> RpcResult<Vec<StreamView>>;

    /// Payment-stream events of committed blocks from the node's event index, oldest first:
    /// those matching `filter` strictly after `after` (from the first event if omitted), at most
    /// `limit` (default and maximum `EVENTS_PAGE_MAX`). A `vault_id` or `stream_id` needs its
    /// `owner` (error -32602 otherwise). Read on by passing the page's `next` as `after` until
    /// it is null.
    #[method(name = "paystreams_getEvents")]
    async fn get_events(
        &self,
        filter: EventFilter,
        after: Option<EventCursor>,
        limit: Option<u32>,
    ) -> RpcResult<EventPage>;

    /// New blocks as they commit (our JSON form).
    #[subscription(
        name = "paystreams_subscribeBlocks" => "paystreams_block",
        unsubscribe = "paystreams_unsubscribeBlocks",
        item = BlockInfo
    )]
    async fn subscribe_blocks(&self) -> SubscriptionResult;

    /// Payment-stream events of committed blocks matching the filter.
    #[subscription(
        name = "paystreams_subscribeEvents" => "paystreams_event",
        unsubscribe = "paystreams_unsubscribeEvents",
        item = EventNotification
    )]
    async fn subscribe_events(&self, filter: EventFilter) -> SubscriptionResult;

    /// Dev only: moves the chain clock forward by `seconds` and mines a block.
    #[method(name = "paystreams_devAdvanceTime")]
    async fn dev_advance_time(&self, seconds: u64) -> RpcResult<BlockInfo>;

    /// Dev only: mines `blocks` blocks now (1 if omitted).
    #[method(name = "paystreams_devMine")]
    async fn dev_mine(&self, blocks: Option<u32>) -> RpcResult<BlockInfo>;
}
