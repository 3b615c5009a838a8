//! The typed client: reads, transaction building and signing, submission with inclusion wait,
//! and failures explained from chain state.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    sync::Arc,
    time::Duration,
};

use jsonrpsee::http_client::HttpClient;
use paystreams_lez_core::{
    Account, AccountId, ProgramId,
    crypto::SecretKey,
    token::{TokenInstruction, token_program_id},
    transfer::{initialize_instruction, transfer_instruction},
};
use paystreams_program::{
    Event, ExtensionSettings,
    client::{self as builders, Call, VaultRef},
    payment_streams_program_id,
    receipt::DeliveryReceipt,
    state::VaultPrivacyTier,
};
use paystreams_rpc::{
    BlockInfo, EventCursor, EventFilter, EventPage, HexHash, IndexedEvent, LezApiClient as _, PaystreamsApiClient as _,
    ReceiptInfo, StreamFilter, StreamView, TxErrorInfo, TxStatus, VaultView,
    remote::{
        ChainAccess, Dialect, NodeRpc, RpcError,
        lez::{AccountsAt, LezSettings},
    },
};
pub use paystreams_rpc::{remote::DEFAULT_INCLUSION_TIMEOUT, stream_events};
use paystreams_runtime::{Message, Transaction};

use crate::{
    error::{ClientError, Result, TxFailure},
    explain::{Audience, Facts, Operation, explain, root_cause, token_balance},
    holding::holding_key,
    preflight::{Snapshot, Verdict, preflight},
};

/// How often a pre-flight snapshot is read again when a block lands while it is being read.
const SNAPSHOT_ATTEMPTS: usize = 3;

/// The default node address.
pub const DEFAULT_RPC_URL: &str = "http://127.0.0.1:3040";

/// What a submission is doing, for progress displays.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Reading chain state for the pre-flight checks.
    Checking,
    /// Fetching nonces, signing and sending.
    Sending,
    /// Sent: the node accepted the transaction under this hash (reported once, before waiting).
    Sent { hash: HexHash },
    /// Sent; waiting for a block to include it.
    Waiting { hash: HexHash, elapsed: Duration },
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Checking => f.write_str("checking chain state"),
            Self::Sending => f.write_str("signing and sending"),
            Self::Sent { hash } => write!(f, "sent transaction {hash}; waiting for inclusion"),
            Self::Waiting { hash, elapsed } => {
                write!(f, "waiting for inclusion of {}… ({} s)", &hash.to_string()[..12], elapsed.as_secs())
            }
        }
    }
}

/// A progress callback.
pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// Who receives tokens: a user key (its derived holding is used, and signs when it is new) or an
/// existing holding account.
#[derive(Clone, Copy, Debug)]
pub enum TokenRecipient<'a> {
    User(&'a SecretKey),
    Holding(AccountId),
}

/// A client of one node.
#[derive(Clone)]
pub struct Client {
    node: NodeRpc,
    program_id: ProgramId,
    names: BTreeMap<AccountId, String>,
    audience: Audience,
    preflight: bool,
    progress: Option<ProgressFn>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.node.url())
            .field("program_id", &self.program_id)
            .finish_non_exhaustive()
    }
}

/// Parses a vault's token label ("native" or a base58 definition id).
fn token_id_of(view: &VaultView) -> Result<[u8; 32]> {
    if view.token_id == "native" {
        return Ok([0; 32]);
    }
    view.token_id
        .parse::<AccountId>()
        .map(|id| id.0)
        .map_err(|e| ClientError::Invalid(format!("the node returned an unreadable token id {:?}: {e}", view.token_id)))
}

/// What a receipt paid out to providers (sum of its `Claimed` events).
#[must_use]
pub fn claimed_amount(receipt: &ReceiptInfo) -> u128 {
    stream_events(receipt)
        .filter_map(|e| match e {
            Event::Claimed { amount, .. } => Some(*amount),
            _ => None,
        })
        .fold(0_u128, u128::saturating_add)
}

/// The node connection under a client (so `RpcChain::new(client)` reads through it).
impl From<Client> for NodeRpc {
    fn from(client: Client) -> Self {
        client.node
    }
}

impl Client {
    /// A client of the node at `url` (`http://` or `https://`). Nothing is sent yet.
    ///
    /// # Errors
    /// When the URL is not usable.
    pub fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, Dialect::Paystreams)
    }

    /// A client of the chain at `url`, spoken to as `access` says ([`Dialect::Lez`]: a LEZ
    /// sequencer, LEZ's methods only). Nothing is sent yet.
    ///
    /// # Errors
    /// When the URL is not usable.
    pub fn connect_via(url: &str, access: &ChainAccess) -> Result<Self> {
        let mut client = Self::connect_with(url, access.dialect)?;
        client.set_lez_settings(access.lez.clone());
        Ok(client)
    }

    /// A client of the chain at `url`, spoken to in `dialect` with the default settings.
    ///
    /// # Errors
    /// When the URL is not usable.
    pub fn connect_with(url: &str, dialect: Dialect) -> Result<Self> {
        Ok(Self {
            node: NodeRpc::connect_with(url, dialect)?,
            program_id: payment_streams_program_id(),
            names: BTreeMap::new(),
            audience: Audience::CommandLine,
            preflight: true,
            progress: None,
        })
    }

    #[must_use]
    pub fn url(&self) -> &str {
        self.node.url()
    }

    /// The WebSocket URL on the same port (`ws://` for `http://`).
    #[must_use]
    pub fn ws_url(&self) -> String {
        self.node.ws_url()
    }

    /// The raw JSON-RPC client (implements `LezApiClient` and `PaystreamsApiClient`).
    #[must_use]
    pub const fn rpc(&self) -> &HttpClient {
        self.node.http()
    }

    /// The node connection this client builds on (what `RpcChain` reads and writes through).
    #[must_use]
    pub const fn node(&self) -> &NodeRpc {
        &self.node
    }

    #[must_use]
    pub const fn program_id(&self) -> ProgramId {
        self.program_id
    }

    /// Uses another payment-streams program id.
    #[must_use]
    pub fn with_program_id(mut self, program_id: ProgramId) -> Self {
        self.program_id = program_id;
        let settings = LezSettings { program_id, ..self.node.lez_settings().clone() };
        self.node.set_lez_settings(settings);
        self
    }

    /// The LEZ dialect's settings (drop detection, block polling); the program id stays this
    /// client's.
    pub fn set_lez_settings(&mut self, settings: LezSettings) {
        self.node.set_lez_settings(LezSettings { program_id: self.program_id, ..settings });
    }

    /// Local names for accounts (e.g. keystore names), used in error explanations.
    pub fn set_names(&mut self, names: BTreeMap<AccountId, String>) {
        self.names = names;
    }

    /// Who reads this client's error explanations: the command line (default) or a web form.
    pub const fn set_audience(&mut self, audience: Audience) {
        self.audience = audience;
    }

    /// Turns the pre-flight checks on (default) or off (then every failure comes from a receipt).
    pub const fn set_preflight(&mut self, enabled: bool) {
        self.preflight = enabled;
    }

    pub const fn set_inclusion_timeout(&mut self, timeout: Duration) {
        self.node.set_inclusion_timeout(timeout);
    }

    /// Called as a submission progresses.
    pub fn set_progress(&mut self, progress: Option<ProgressFn>) {
        self.progress = progress;
    }

    fn report(&self, progress: &Progress) {
        if let Some(callback) = &self.progress {
            callback(progress);
        }
    }

    fn rpc_err(&self, method: &'static str) -> impl FnOnce(jsonrpsee::core::ClientError) -> ClientError + '_ {
        move |e| ClientError::Node(self.node.error(method)(e))
    }

    /// A vault ref for this client's program.
    #[must_use]
    pub const fn vault_ref(&self, owner: AccountId, vault_id: u64, token_id: [u8; 32]) -> VaultRef {
        VaultRef { program_id: self.program_id, owner, vault_id, token_id }
    }

    /// The id of the chain's authenticated-transfer program (deposits and native transfers
    /// call it), learnt from the chain once (`NodeRpc::builtin_ids`): nodes of different LEZ
    /// releases run it under different ids.
    ///
    /// # Errors
    /// RPC failure.
    pub async fn authenticated_transfer_id(&self) -> Result<ProgramId> {
        Ok(self.node.builtin_ids().await?.authenticated_transfer)
    }

    /// The runtime the chain runs (its builtins under the chain's ids), with this client's
    /// payment-streams program: what pre-flight runs transactions through.
    async fn runtime(&self) -> Result<paystreams_runtime::Runtime> {
        Ok(paystreams_rpc::remote::lez::runtime_with(self.program_id(), self.node.builtin_ids().await?))
    }

    /// Whether this client speaks to a LEZ sequencer (LEZ's methods only).
    #[must_use]
    pub fn is_lez(&self) -> bool {
        self.node.dialect() == Dialect::Lez
    }

    // ----- Reads -----

    /// # Errors
    /// RPC failure.
    pub async fn account(&self, id: AccountId) -> Result<Account> {
        let account = self.node.http().get_account(id).await.map_err(self.rpc_err("getAccount"))?;
        Ok(account.into())
    }

    /// # Errors
    /// RPC failure.
    pub async fn nonces(&self, ids: Vec<AccountId>) -> Result<Vec<u128>> {
        self.node.http().get_accounts_nonces(ids).await.map_err(self.rpc_err("getAccountsNonces"))
    }

    /// The native balance of an account.
    ///
    /// # Errors
    /// RPC failure.
    pub async fn balance(&self, id: AccountId) -> Result<u128> {
        Ok(self.account(id).await?.balance)
    }

    /// The token balance of a holding account (0 when it does not exist yet).
    ///
    /// # Errors
    /// RPC failure, or an account that exists but is not a token holding.
    pub async fn token_balance(&self, holding: AccountId) -> Result<u128> {
        let account = self.account(holding).await?;
        if account.is_default() {
            return Ok(0);
        }
        token_balance(&account).ok_or_else(|| ClientError::Invalid(format!("account {holding} is not a token holding")))
    }

    /// # Errors
    /// RPC failure.
    pub async fn vault(&self, owner: AccountId, vault_id: u64) -> Result<Option<VaultView>> {
        if self.is_lez() {
            return Ok(self.node.lez_vault(&owner, vault_id).await?);
        }
        self.node.http().get_vault(owner, vault_id).await.map_err(self.rpc_err("paystreams_getVault"))
    }

    /// The vault, or an error telling how to create it.
    ///
    /// # Errors
    /// RPC failure, or no such vault.
    pub async fn require_vault(&self, owner: AccountId, vault_id: u64) -> Result<(VaultView, VaultRef)> {
        let view = self.vault(owner, vault_id).await?.ok_or_else(|| {
            let name = self.names.get(&owner).map_or_else(|| owner.to_string(), |n| format!("{n} ({owner})"));
            let how = match self.audience {
                Audience::CommandLine => format!("`paystream vault init --owner KEY --vault-id {vault_id}`"),
                Audience::WebForm => format!("\"Create a vault\" (vault id {vault_id})"),
            };
            ClientError::NotFound(format!("vault {vault_id} of {name} does not exist: create it with {how}"))
        })?;
        let vault = self.vault_ref(owner, vault_id, token_id_of(&view)?);
        Ok((view, vault))
    }

    /// The owner's vaults. With a LEZ sequencer (no listing method): the vaults created in the
    /// last `LezSettings::scan_blocks` blocks, found by scanning them.
    ///
    /// # Errors
    /// RPC failure.
    pub async fn list_vaults(&self, owner: AccountId) -> Result<Vec<VaultView>> {
        if self.is_lez() {
            return Ok(self.node.lez_list_vaults(&owner).await?);
        }
        self.node.http().list_vaults(owner).await.map_err(self.rpc_err("paystreams_listVaults"))
    }

    /// # Errors
    /// RPC failure.
    pub async fn stream(&self, owner: AccountId, vault_id: u64, stream_id: u64) -> Result<Option<StreamView>> {
        if self.is_lez() {
            return Ok(self.node.lez_stream(&owner, vault_id, stream_id).await?);
        }
        self.node.http().get_stream(owner, vault_id, stream_id).await.map_err(self.rpc_err("paystreams_getStream"))
    }

    /// The stream, or an error naming what exists.
    ///
    /// # Errors
    /// RPC failure, or no such stream.
    pub async fn require_stream(&self, owner: AccountId, vault_id: u64, stream_id: u64) -> Result<StreamView> {
        if let Some(stream) = self.stream(owner, vault_id, stream_id).await? {
            return Ok(stream);
        }
        let (view, _) = self.require_vault(owner, vault_id).await?;
        let how = match self.audience {
            Audience::CommandLine => format!("list them with `paystream stream list --owner {owner}`"),
            Audience::WebForm => "the overview lists them".to_owned(),
        };
        Err(ClientError::NotFound(format!(
            "vault {vault_id} has no stream {stream_id} (it has {} streams, ids 0..{}): {how}",
            view.next_stream_id, view.next_stream_id
        )))
    }

    /// Streams by owner and/or provider. With a LEZ sequencer (no listing method): the
    /// matching streams created in the last `LezSettings::scan_blocks` blocks, found by scanning
    /// them.
    ///
    /// # Errors
    /// RPC failure.
    pub async fn list_streams(&self, filter: StreamFilter) -> Result<Vec<StreamView>> {
        if self.is_lez() {
            return Ok(self.node.lez_list_streams(&filter).await?);
        }
        self.node.http().list_streams(filter).await.map_err(self.rpc_err("paystreams_listStreams"))
    }

    /// # Errors
    /// RPC failure.
    pub async fn last_block_id(&self) -> Result<u64> {
        if self.is_lez() {
            return Ok(self.node.lez_last_block_id().await?);
        }
        self.node.http().get_last_block_id().await.map_err(self.rpc_err("getLastBlockId"))
    }

    /// # Errors
    /// RPC failure.
    pub async fn block(&self, block_id: u64) -> Result<Option<BlockInfo>> {
        self.node.require_paystreams(
            "reading a block as paystreams JSON",
            "paystreams_getBlock",
            "LEZ's getBlock answers the base64 block (`NodeRpc::lez_blocks`)",
        )?;
        self.node.http().get_block_info(block_id).await.map_err(self.rpc_err("paystreams_getBlock"))
    }

    /// The latest block's time in seconds.
    ///
    /// # Errors
    /// RPC failure.
    pub async fn chain_time(&self) -> Result<u64> {
        if self.is_lez() {
            return Ok(self.node.lez_clock().await?.timestamp_ms / 1000);
        }
        let height = self.last_block_id().await?;
        let block =
            self.block(height).await?.ok_or_else(|| ClientError::NotFound(format!("block {height} is missing")))?;
        Ok(block.header.timestamp_ms / 1000)
    }

    /// # Errors
    /// RPC failure.
    pub async fn program_ids(&self) -> Result<BTreeMap<String, String>> {
        self.node.require_paystreams(
            "listing program ids as paystreams JSON",
            "paystreams_getProgramIds",
            "LEZ's getProgramIds answers each id as eight numbers",
        )?;
        self.node.http().get_program_ids_hex().await.map_err(self.rpc_err("paystreams_getProgramIds"))
    }

    /// Dev only: moves the chain clock forward and mines a block.
    ///
    /// # Errors
    /// RPC failure or a node without `--dev`.
    pub async fn advance_time(&self, seconds: u64) -> Result<BlockInfo> {
        self.node.require_paystreams(
            "moving the chain clock",
            "the dev method paystreams_devAdvanceTime",
            "a LEZ sequencer's clock follows the wall clock: wait instead",
        )?;
        self.node.http().dev_advance_time(seconds).await.map_err(self.rpc_err("paystreams_devAdvanceTime"))
    }

    /// Dev only: mines blocks.
    ///
    /// # Errors
    /// RPC failure or a node without `--dev`.
    pub async fn mine(&self, blocks: Option<u32>) -> Result<BlockInfo> {
        self.node.require_paystreams(
            "mining blocks on demand",
            "the dev method paystreams_devMine",
            "a LEZ sequencer produces blocks on its own schedule: wait instead",
        )?;
        self.node.http().dev_mine(blocks).await.map_err(self.rpc_err("paystreams_devMine"))
    }

    /// # Errors
    /// RPC failure.
    pub async fn receipt(&self, hash: HexHash) -> Result<Option<ReceiptInfo>> {
        self.node.require_paystreams(
            "reading a transaction receipt",
            "paystreams_getTransactionReceipt",
            "LEZ keeps no receipts: getTransaction tells whether and where a transaction was included",
        )?;
        self.node.http().get_transaction_receipt(hash).await.map_err(self.rpc_err("paystreams_getTransactionReceipt"))
    }

    /// One page of the node's event index (`paystreams_getEvents`): events matching `filter`
    /// strictly after `after` (from the first if `None`), at most `limit` (the node's maximum,
    /// `EVENTS_PAGE_MAX`, if `None`), oldest first. Read on with the page's `next`.
    ///
    /// # Errors
    /// RPC failure; a `vault_id` or `stream_id` without `owner` is refused by the node.
    pub async fn events(
        &self,
        filter: EventFilter,
        after: Option<EventCursor>,
        limit: Option<u32>,
    ) -> Result<EventPage> {
        self.node.require_paystreams(
            "reading the chain's event history",
            "paystreams_getEvents",
            "LEZ keeps no event index: read blocks with getBlockRange and decode their transactions",
        )?;
        self.node.http().get_events(filter, after, limit).await.map_err(self.rpc_err("paystreams_getEvents"))
    }

    /// Every event of one stream, oldest first, read page by page from the node's event index.
    ///
    /// # Errors
    /// RPC failure, or a node whose pages do not move forward.
    pub async fn stream_history(&self, owner: AccountId, vault_id: u64, stream_id: u64) -> Result<Vec<IndexedEvent>> {
        let filter =
            EventFilter { owner: Some(owner), vault_id: Some(vault_id), stream_id: Some(stream_id), provider: None };
        let mut events = Vec::new();
        let mut after = None;
        loop {
            let page = self.events(filter.clone(), after, None).await?;
            events.extend(page.events);
            match page.next {
                None => return Ok(events),
                Some(next) if after.is_none_or(|a| next > a) => after = Some(next),
                Some(next) => {
                    return Err(ClientError::Invalid(format!(
                        "the node's event pages do not move forward (next {next:?} after {after:?}); is it a paystreams node?"
                    )));
                }
            }
        }
    }

    /// The chain state that explains a failure of `op`.
    ///
    /// # Errors
    /// RPC failure.
    pub async fn facts(&self, op: &Operation) -> Result<Facts> {
        let mut facts = Facts { names: self.names.clone(), audience: self.audience, ..Facts::default() };
        if let Some(vault) = op.vault() {
            facts.vault = self.vault(vault.owner, vault.vault_id).await?;
            if let (Some(stream_id), false) = (op.stream_id(), matches!(op, Operation::CreateStream { .. })) {
                facts.stream = self.stream(vault.owner, vault.vault_id, stream_id).await?;
            }
        }
        for id in op.accounts() {
            let account = self.account(id).await?;
            facts.accounts.insert(id, account);
        }
        Ok(facts)
    }

    /// [`Client::facts`], or only the local names when the chain cannot be read.
    pub(crate) async fn facts_or_names(&self, op: &Operation) -> Facts {
        match self.facts(op).await {
            Ok(facts) => facts,
            Err(_) => Facts { names: self.names.clone(), audience: self.audience, ..Facts::default() },
        }
    }

    // ----- Submission -----

    /// Signs `call` with `signers` (current nonces), sends it and waits for inclusion.
    ///
    /// # Errors
    /// RPC failure, timeout, or [`ClientError::Transaction`] for a failed receipt.
    pub async fn submit(&self, call: &Call, signers: &[&SecretKey]) -> Result<ReceiptInfo> {
        self.execute(&Operation::Other, call.program_id, call.account_ids.clone(), call.instruction_data(), signers)
            .await
    }

    /// Like [`Client::submit`], with the operation it performs: pre-flight checks run first and
    /// failures are explained.
    ///
    /// # Errors
    /// As [`Client::submit`], plus pre-flight refusals (a [`TxFailure`] without hash).
    pub async fn submit_op(&self, op: &Operation, call: &Call, signers: &[&SecretKey]) -> Result<ReceiptInfo> {
        self.execute(op, call.program_id, call.account_ids.clone(), call.instruction_data(), signers).await
    }

    /// Any program, any accounts, any instruction words.
    ///
    /// # Errors
    /// As [`Client::submit_op`].
    pub async fn execute(
        &self,
        op: &Operation,
        program_id: ProgramId,
        account_ids: Vec<AccountId>,
        instruction_data: Vec<u32>,
        signers: &[&SecretKey],
    ) -> Result<ReceiptInfo> {
        if self.is_lez() {
            return self.execute_lez(op, program_id, account_ids, instruction_data, signers).await;
        }
        let hash = if self.preflight && *op != Operation::Other {
            self.report(&Progress::Checking);
            match self.check(op, program_id, &account_ids, &instruction_data, signers).await {
                Checked::Refused(failure) => return Err(ClientError::Transaction(failure)),
                Checked::Send(tx) => {
                    self.report(&Progress::Sending);
                    self.send_transaction(&tx).await?
                }
                Checked::Unchecked => self.send(program_id, account_ids, instruction_data, signers).await?,
            }
        } else {
            self.send(program_id, account_ids, instruction_data, signers).await?
        };
        self.report(&Progress::Sent { hash });
        let receipt = self.wait(hash).await.map_err(|e| e.after_sending(hash))?;
        if receipt.status == TxStatus::Included {
            return Ok(receipt);
        }
        let (code, name, message) =
            receipt.error.as_ref().map_or((0, "Unknown".to_owned(), "failed without an error".to_owned()), |e| {
                (e.code, e.name.clone(), e.message.clone())
            });
        let facts = self.facts_or_names(op).await;
        Err(ClientError::Transaction(Box::new(TxFailure {
            code,
            name,
            explanation: explain(op, code, &message, &facts),
            message,
            hash: Some(hash),
            block_id: receipt.block_id,
        })))
    }

    /// Fetches the signers' nonces, signs and sends; returns the hash without waiting.
    ///
    /// # Errors
    /// RPC failure or a stateless refusal by the node.
    pub async fn send(
        &self,
        program_id: ProgramId,
        account_ids: Vec<AccountId>,
        instruction_data: Vec<u32>,
        signers: &[&SecretKey],
    ) -> Result<HexHash> {
        self.report(&Progress::Sending);
        Ok(self.node.send_signed(program_id, account_ids, instruction_data, signers).await?)
    }

    /// Sends a signed transaction; returns its hash without waiting.
    ///
    /// # Errors
    /// RPC failure or a stateless refusal by the node.
    pub async fn send_transaction(&self, tx: &Transaction) -> Result<HexHash> {
        Ok(self.node.send_transaction(tx).await?)
    }

    /// Waits until `hash` is included or failed, up to the inclusion timeout.
    ///
    /// # Errors
    /// RPC failure or timeout.
    pub async fn wait(&self, hash: HexHash) -> Result<ReceiptInfo> {
        Ok(self.node.wait_receipt(hash, |elapsed| self.report(&Progress::Waiting { hash, elapsed })).await?)
    }

    // ----- Native accounts -----

    /// Initialises a fresh account under authenticated transfer (so payouts can reach it).
    ///
    /// # Errors
    /// As [`Client::submit_op`].
    pub async fn init_account(&self, key: &SecretKey) -> Result<ReceiptInfo> {
        let account = key.account_id();
        self.execute(
            &Operation::InitAccount { account },
            self.authenticated_transfer_id().await?,
            vec![account],
            initialize_instruction(),
            &[key],
        )
        .await
    }

    /// Moves native balance. A fresh recipient must co-sign: pass its key as `to_key`.
    ///
    /// # Errors
    /// As [`Client::submit_op`]; `to_key` not matching `to`.
    pub async fn transfer(
        &self,
        from: &SecretKey,
        to: AccountId,
        amount: u128,
        to_key: Option<&SecretKey>,
    ) -> Result<ReceiptInfo> {
        let mut signers = vec![from];
        if let Some(key) = to_key {
            if key.account_id() != to {
                return Err(ClientError::Invalid(format!("the recipient key is for {}, not {to}", key.account_id())));
            }
            signers.push(key);
        }
        let op = Operation::NativeTransfer { from: from.account_id(), to, amount };
        self.execute(
            &op,
            self.authenticated_transfer_id().await?,
            vec![from.account_id(), to],
            transfer_instruction(amount),
            &signers,
        )
        .await
    }

    // ----- Tokens -----

    /// Creates a token: `definition` is the new definition's key; the whole supply goes to
    /// `holder`'s derived holding. Returns the receipt and the holding id.
    ///
    /// # Errors
    /// As [`Client::submit_op`].
    pub async fn token_create(
        &self,
        definition: &SecretKey,
        holder: &SecretKey,
        name: &str,
        supply: u128,
    ) -> Result<(ReceiptInfo, AccountId)> {
        let definition_id = definition.account_id();
        let holding = holding_key(holder, &definition_id);
        let holding_id = holding.account_id();
        let op = Operation::TokenCreate { definition: definition_id, holding: holding_id, supply };
        let data = TokenInstruction::NewFungibleDefinition { name: name.to_owned(), total_supply: supply }.to_words();
        let receipt = self
            .execute(&op, token_program_id(), vec![definition_id, holding_id], data, &[definition, &holding])
            .await?;
        Ok((receipt, holding_id))
    }

    async fn recipient_holding(
        &self,
        definition: &AccountId,
        to: TokenRecipient<'_>,
    ) -> Result<(AccountId, Option<SecretKey>)> {
        match to {
            TokenRecipient::Holding(id) => Ok((id, None)),
            TokenRecipient::User(user) => {
                let key = holding_key(user, definition);
                let id = key.account_id();
                let fresh = self.account(id).await?.is_default();
                Ok((id, fresh.then_some(key)))
            }
        }
    }

    /// Mints `amount` to a recipient (signed by the definition key).
    ///
    /// # Errors
    /// As [`Client::submit_op`].
    pub async fn token_mint(
        &self,
        definition: &SecretKey,
        to: TokenRecipient<'_>,
        amount: u128,
    ) -> Result<ReceiptInfo> {
        let definition_id = definition.account_id();
        let (holding, holding_signer) = self.recipient_holding(&definition_id, to).await?;
        let mut signers = vec![definition];
        signers.extend(holding_signer.as_ref());
        let op = Operation::TokenMint { definition: definition_id, to: holding, amount };
        self.execute(
            &op,
            token_program_id(),
            vec![definition_id, holding],
            TokenInstruction::Mint { amount }.to_words(),
            &signers,
        )
        .await
    }

    /// Transfers tokens from `from`'s derived holding.
    ///
    /// # Errors
    /// As [`Client::submit_op`].
    pub async fn token_transfer(
        &self,
        from: &SecretKey,
        definition: AccountId,
        to: TokenRecipient<'_>,
        amount: u128,
    ) -> Result<ReceiptInfo> {
        let source = holding_key(from, &definition);
        let (destination, destination_signer) = self.recipient_holding(&definition, to).await?;
        let mut signers = vec![&source];
        signers.extend(destination_signer.as_ref());
        let op = Operation::TokenTransfer { from: source.account_id(), to: destination, amount };
        self.execute(
            &op,
            token_program_id(),
            vec![source.account_id(), destination],
            TokenInstruction::Transfer { amount }.to_words(),
            &signers,
        )
        .await
    }

    // ----- Vaults -----

    /// Creates vault `vault_id` of `owner` for the native token or a token definition.
    ///
    /// # Errors
    /// As [`Client::submit_op`].
    pub async fn init_vault(&self, owner: &SecretKey, vault_id: u64, token: Option<AccountId>) -> Result<ReceiptInfo> {
        let vault = self.vault_ref(owner.account_id(), vault_id, token.map_or([0; 32], |t| t.0));
        let call = builders::initialize_vault(&vault, VaultPrivacyTier::Public);
        self.submit_op(&Operation::InitVault { vault }, &call, &[owner]).await
    }

    /// Deposits from the owner (native) or the owner's derived token holding.
    ///
    /// # Errors
    /// As [`Client::submit_op`]; no such vault.
    pub async fn deposit(&self, owner: &SecretKey, vault_id: u64, amount: u128) -> Result<ReceiptInfo> {
        let (_, vault) = self.require_vault(owner.account_id(), vault_id).await?;
        if vault.is_native() {
            let call = builders::deposit(&vault, amount, self.authenticated_transfer_id().await?, None);
            let op = Operation::Deposit { vault, amount, source: owner.account_id() };
            return self.submit_op(&op, &call, &[owner]).await;
        }
        let source = holding_key(owner, &AccountId(vault.token_id));
        let call =
            builders::deposit(&vault, amount, self.authenticated_transfer_id().await?, Some(source.account_id()));
        let op = Operation::Deposit { vault, amount, source: source.account_id() };
        self.submit_op(&op, &call, &[owner, &source]).await
    }

    /// Withdraws unallocated funds: native vaults to the owner (or `to`); token vaults to the
    /// owner's derived holding (or the holding `to`).
    ///
    /// # Errors
    /// As [`Client::submit_op`]; no such vault.
    pub async fn withdraw(
        &self,
        owner: &SecretKey,
        vault_id: u64,
        amount: u128,
        to: Option<AccountId>,
    ) -> Result<ReceiptInfo> {
        let (_, vault) = self.require_vault(owner.account_id(), vault_id).await?;
        if vault.is_native() {
            let call = builders::withdraw(&vault, amount, to);
            let op = Operation::Withdraw { vault, amount, to: to.unwrap_or(vault.owner) };
            return self.submit_op(&op, &call, &[owner]).await;
        }
        let own = holding_key(owner, &AccountId(vault.token_id));
        let destination = to.unwrap_or_else(|| own.account_id());
        let mut signers = vec![owner];
        if destination == own.account_id() && self.account(destination).await?.is_default() {
            signers.push(&own);
        }
        let call = builders::withdraw(&vault, amount, Some(destination));
        let op = Operation::Withdraw { vault, amount, to: destination };
        self.submit_op(&op, &call, &signers).await
    }

    // ----- Streams -----

    /// Creates a stream with the vault's next stream id; returns that id and the receipt.
    ///
    /// # Errors
    /// As [`Client::submit_op`]; no such vault.
    pub async fn create_stream(
        &self,
        owner: &SecretKey,
        vault_id: u64,
        provider: AccountId,
        rate: u64,
        allocation: u128,
        extensions: ExtensionSettings,
    ) -> Result<(u64, ReceiptInfo)> {
        let (view, vault) = self.require_vault(owner.account_id(), vault_id).await?;
        let stream_id = view.next_stream_id;
        let call = builders::create_stream(&vault, stream_id, provider, rate, allocation, extensions);
        let op = Operation::CreateStream { vault, stream_id, provider, rate, allocation, extensions };
        let receipt = self.submit_op(&op, &call, &[owner]).await?;
        Ok((stream_id, receipt))
    }

    async fn owner_op(
        &self,
        owner: &SecretKey,
        vault_id: u64,
        stream_id: u64,
        build: impl FnOnce(&VaultRef) -> (Call, Operation),
    ) -> Result<ReceiptInfo> {
        let (_, vault) = self.require_vault(owner.account_id(), vault_id).await?;
        self.require_stream(vault.owner, vault_id, stream_id).await?;
        let (call, op) = build(&vault);
        self.submit_op(&op, &call, &[owner]).await
    }

    /// # Errors
    /// As [`Client::submit_op`]; no such vault or stream.
    pub async fn pause(&self, owner: &SecretKey, vault_id: u64, stream_id: u64) -> Result<ReceiptInfo> {
        self.owner_op(owner, vault_id, stream_id, |v| {
            (builders::pause_stream(v, stream_id), Operation::Pause { vault: *v, stream_id })
        })
        .await
    }

    /// # Errors
    /// As [`Client::submit_op`]; no such vault or stream.
    pub async fn resume(&self, owner: &SecretKey, vault_id: u64, stream_id: u64) -> Result<ReceiptInfo> {
        self.owner_op(owner, vault_id, stream_id, |v| {
            (builders::resume_stream(v, stream_id), Operation::Resume { vault: *v, stream_id })
        })
        .await
    }

    /// # Errors
    /// As [`Client::submit_op`]; no such vault or stream.
    pub async fn top_up(&self, owner: &SecretKey, vault_id: u64, stream_id: u64, amount: u128) -> Result<ReceiptInfo> {
        self.owner_op(owner, vault_id, stream_id, |v| {
            (builders::top_up_stream(v, stream_id, amount), Operation::TopUp { vault: *v, stream_id, amount })
        })
        .await
    }

    /// # Errors
    /// As [`Client::submit_op`]; no such vault or stream.
    pub async fn close_by_owner(&self, owner: &SecretKey, vault_id: u64, stream_id: u64) -> Result<ReceiptInfo> {
        self.owner_op(owner, vault_id, stream_id, |v| {
            (builders::close_stream_by_owner(v, stream_id), Operation::CloseByOwner { vault: *v, stream_id })
        })
        .await
    }

    async fn payout_holding(
        &self,
        vault: &VaultRef,
        provider: &SecretKey,
    ) -> Result<(Option<AccountId>, Option<SecretKey>)> {
        if vault.is_native() {
            return Ok((None, None));
        }
        let key = holding_key(provider, &AccountId(vault.token_id));
        let id = key.account_id();
        let fresh = self.account(id).await?.is_default();
        Ok((Some(id), fresh.then_some(key)))
    }

    /// The provider claims what has accrued (token vaults pay into the provider's derived
    /// holding). With delivery receipts, pass the user's signed receipt.
    ///
    /// # Errors
    /// As [`Client::submit_op`]; no such vault or stream.
    pub async fn claim(
        &self,
        provider: &SecretKey,
        owner: AccountId,
        vault_id: u64,
        stream_id: u64,
        receipt: Option<DeliveryReceipt>,
    ) -> Result<ReceiptInfo> {
        let (_, vault) = self.require_vault(owner, vault_id).await?;
        self.require_stream(owner, vault_id, stream_id).await?;
        let (payout, payout_signer) = self.payout_holding(&vault, provider).await?;
        let call = builders::claim(&vault, stream_id, provider.account_id(), payout, receipt);
        let mut signers = vec![provider];
        signers.extend(payout_signer.as_ref());
        let op = Operation::Claim {
            vault,
            stream_id,
            signer: provider.account_id(),
            destination: payout.unwrap_or_else(|| provider.account_id()),
            with_receipt: receipt.is_some(),
        };
        self.submit_op(&op, &call, &signers).await
    }

    /// The provider closes a stream (with auto-claim, also paid out).
    ///
    /// # Errors
    /// As [`Client::submit_op`]; no such vault or stream.
    pub async fn close_by_provider(
        &self,
        provider: &SecretKey,
        owner: AccountId,
        vault_id: u64,
        stream_id: u64,
        receipt: Option<DeliveryReceipt>,
    ) -> Result<ReceiptInfo> {
        let (_, vault) = self.require_vault(owner, vault_id).await?;
        let stream = self.require_stream(owner, vault_id, stream_id).await?;
        let auto_claim = stream.extensions.as_ref().is_some_and(|e| e.auto_claim_on_provider_close);
        let (payout, payout_signer) =
            if auto_claim { self.payout_holding(&vault, provider).await? } else { (None, None) };
        let call = builders::close_stream_by_provider(&vault, stream_id, provider.account_id(), payout, receipt);
        let mut signers = vec![provider];
        signers.extend(payout_signer.as_ref());
        let op = Operation::CloseByProvider {
            vault,
            stream_id,
            signer: provider.account_id(),
            destination: payout.unwrap_or_else(|| provider.account_id()),
        };
        self.submit_op(&op, &call, &signers).await
    }
}

impl Client {
    /// A pre-flight refusal, explained from the chain state (not sent: no hash).
    async fn refusal(&self, op: &Operation, error: &paystreams_runtime::TxError) -> TxFailure {
        let info = TxErrorInfo::from(error);
        let facts = self.facts_or_names(op).await;
        let (code, name) = root_cause(info.code, &facts)
            .map_or((info.code, info.name), |cause| (cause.code(), cause.name().to_owned()));
        TxFailure {
            code,
            explanation: explain(op, code, &info.message, &facts),
            name,
            message: info.message,
            hash: None,
            block_id: None,
        }
    }

    /// Reads every account the transaction reads with no block landing in between (LEZ cannot
    /// pin a read to a height), signs with those nonces, runs pre-flight on that read, sends,
    /// polls `getTransaction`, and derives the receipt by running the transaction on the read
    /// (`NodeRpc::lez_confirm`). A dropped transaction is explained by running pre-flight again
    /// on the state after it.
    async fn execute_lez(
        &self,
        op: &Operation,
        program_id: ProgramId,
        account_ids: Vec<AccountId>,
        instruction_data: Vec<u32>,
        signers: &[&SecretKey],
    ) -> Result<ReceiptInfo> {
        let checked = self.preflight && *op != Operation::Other;
        if checked {
            self.report(&Progress::Checking);
        }
        let signer_ids: Vec<AccountId> = signers.iter().map(|key| key.account_id()).collect();
        let ids = Snapshot::ids_read(&account_ids, &signer_ids);
        let read: AccountsAt = self.node.lez_read(&ids).await?;
        let snapshot: Snapshot = read.accounts.clone().into_iter().collect();
        let nonces = signer_ids.iter().map(|id| snapshot.account(id).map_or(0, |a| a.nonce)).collect();
        let message = Message {
            program_id,
            account_ids: account_ids.clone(),
            nonces,
            instruction_data: instruction_data.clone(),
        };
        let tx = Transaction::sign(message, signers);
        if checked && let Verdict::Refused(error) = preflight(&self.runtime().await?, &snapshot, &tx) {
            return Err(ClientError::Transaction(Box::new(self.refusal(op, &error).await)));
        }
        self.report(&Progress::Sending);
        let hash = self.send_transaction(&tx).await?;
        self.report(&Progress::Sent { hash });
        match self.node.lez_confirm(hash, &tx, &read, |elapsed| self.report(&Progress::Waiting { hash, elapsed })).await
        {
            Ok(inclusion) => match inclusion.events {
                Ok(_) => Ok(inclusion.into_receipt()),
                Err(reason) => Err(ClientError::EffectsUnknown { hash, block_id: inclusion.block_id, reason }),
            },
            Err(RpcError::Dropped { hash, reason }) => {
                // Why it failed: the same call checked on the chain as it is now.
                if *op != Operation::Other
                    && let Checked::Refused(failure) =
                        self.check(op, program_id, &account_ids, &instruction_data, signers).await
                {
                    return Err(ClientError::Transaction(Box::new(TxFailure {
                        hash: Some(hash),
                        message: format!("dropped by the sequencer ({reason}); checked again: {}", failure.message),
                        ..*failure
                    })));
                }
                Err(RpcError::Dropped { hash, reason }.into())
            }
            Err(e) => Err(ClientError::from(e).after_sending(hash)),
        }
    }
}

/// The outcome of [`Client::check`].
pub(crate) enum Checked {
    /// Refused before sending: the failure, explained.
    Refused(Box<TxFailure>),
    /// Not refused: the transaction, signed with the nonces of the state it was checked on.
    Send(Transaction),
    /// The chain state could not be read consistently: sign and send as without pre-flight.
    Unchecked,
}

impl Client {
    /// Reads `ids` at one block height: the height is read before and after, and the reading is
    /// repeated when a block landed in between.
    ///
    /// # Errors
    /// RPC failure, or a block landing during every attempt.
    pub async fn snapshot(&self, ids: &BTreeSet<AccountId>) -> Result<Snapshot> {
        for _ in 0..SNAPSHOT_ATTEMPTS {
            let height = self.last_block_id().await?;
            let mut accounts = BTreeMap::new();
            for id in ids {
                accounts.insert(*id, self.account(*id).await?);
            }
            if self.last_block_id().await? == height {
                return Ok(accounts.into_iter().collect());
            }
        }
        Err(ClientError::Invalid(format!(
            "the chain added a block while its accounts were being read, {SNAPSHOT_ATTEMPTS} times in a row"
        )))
    }

    /// Signs the call with the nonces of a fresh snapshot and runs it through the runtime there;
    /// a refusal comes back explained from the chain state.
    pub(crate) async fn check(
        &self,
        op: &Operation,
        program_id: ProgramId,
        account_ids: &[AccountId],
        instruction_data: &[u32],
        signers: &[&SecretKey],
    ) -> Checked {
        let signer_ids: Vec<AccountId> = signers.iter().map(|key| key.account_id()).collect();
        let snapshot = match self.snapshot(&Snapshot::ids_read(account_ids, &signer_ids)).await {
            Ok(snapshot) => snapshot,
            Err(e) => {
                tracing::debug!(error = %e, "pre-flight skipped: the accounts could not be read");
                return Checked::Unchecked;
            }
        };
        let Some(nonces) = snapshot.nonces(&signer_ids) else { return Checked::Unchecked };
        let message = Message {
            program_id,
            account_ids: account_ids.to_vec(),
            nonces,
            instruction_data: instruction_data.to_vec(),
        };
        let tx = Transaction::sign(message, signers);
        let runtime = match self.runtime().await {
            Ok(runtime) => runtime,
            Err(e) => {
                tracing::debug!(error = %e, "pre-flight skipped: the chain's builtin ids could not be read");
                return Checked::Unchecked;
            }
        };
        match preflight(&runtime, &snapshot, &tx) {
            Verdict::Refused(error) => Checked::Refused(Box::new(self.refusal(op, &error).await)),
            Verdict::Passes => Checked::Send(tx),
            Verdict::Undecided(why) => {
                tracing::debug!(%why, "pre-flight leaves the transaction to the chain");
                Checked::Send(tx)
            }
        }
    }
}
