//! The LEZ dialect of [`NodeRpc`]: the chain through LEZ's sequencer methods only
//! (`sendTransaction`, `getTransaction`, `getAccount`, `getAccountsNonces`, `getLastBlockId`,
//! `getBlock`, `getBlockRange`), called by their LEZ names with positional parameters, as LEZ's
//! own wallet calls them. Their JSON shapes are `crate::lez`'s.
//!
//! What our node answers directly, this dialect computes:
//!
//! - **Head.** One `getAccount` of the clock account `CLOCK_01`: its data is the last completed
//!   block's id and timestamp, read atomically.
//! - **Views.** Vaults and streams are the program's PDAs read with `getAccount` and folded here
//!   at the head's time, through the same view code the node uses (`crate::views`). Reads are
//!   made consistent by reading the height before and after and retrying when a block landed in
//!   between (LEZ cannot pin a read to a height).
//! - **Submission.** Sign with the nonces of a consistent read, `sendTransaction`, then poll
//!   `getTransaction` until it answers `[tx, block_id]`. LEZ drops failed transactions without a
//!   trace, so a transaction is reported [`RpcError::Dropped`] once a signer's nonce moved past
//!   it without it, or [`LezSettings::drop_after_blocks`] blocks went by without it.
//! - **Receipts.** LEZ has none. A submitter knows the accounts its transaction read (the
//!   consistent read it signed on); when no other transaction of the blocks between that read
//!   and the inclusion named any of them, running the transaction through the real runtime on
//!   that read, at the time the including block's transactions saw (the previous block's
//!   timestamp), gives exactly the chain's post-state and the program's events. Otherwise the
//!   events are unknown, and [`Inclusion::events`] says why: no amount is ever guessed.
//! - **Events** for followers come from polled blocks ([`BlockFollower`], `follow`).

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
    time::{Duration, Instant},
};

use paystreams_lez_core::{
    Account, AccountId, ProgramId,
    clock::{CLOCK_01_ACCOUNT_ID, CLOCK_ACCOUNT_IDS, ClockAccountData},
    crypto::SecretKey,
    lez_block::LezBlock,
    lez_release::BuiltinIds,
};
use paystreams_program::{PaymentStreamsProgram, payment_streams_program_id};
use paystreams_runtime::{BlockContext, Message, Overlay, ReceiptEvent, Runtime, StateView, Transaction};
use tracing::{debug, warn};

pub mod follow;

use super::{NodeRpc, RECEIPT_POLL_MAX, RECEIPT_POLL_MIN, RpcError};
use crate::{HexHash, LezApiClient as _, ReceiptInfo, StreamView, TxStatus, VaultView, views};

/// Blocks that may pass after a submission without the transaction before it is reported
/// dropped (LEZ includes a valid transaction in the next block it produces unless the block is
/// full).
pub const DEFAULT_DROP_AFTER_BLOCKS: u64 = 10;

/// How often the block follower asks for new blocks.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Most blocks one `getBlockRange` call asks for.
pub const BLOCK_BATCH_MAX: u64 = 100;

/// Most blocks read between a submitter's read and its inclusion to derive the receipt; beyond
/// it the events are reported unknown.
pub const REPLAY_BLOCKS_MAX: u64 = 1000;

/// How many recent blocks listing vaults or streams scans by default (LEZ has no listing
/// method; see [`NodeRpc::lez_list_streams`]).
pub const DEFAULT_SCAN_BLOCKS: u64 = 10_000;

/// How many times a consistent read is tried before giving up.
const CONSISTENT_READ_ATTEMPTS: usize = 5;

/// Settings of the LEZ dialect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LezSettings {
    /// The payment-streams program's id on that chain (its PDAs are derived from it).
    pub program_id: ProgramId,
    /// See [`DEFAULT_DROP_AFTER_BLOCKS`].
    pub drop_after_blocks: u64,
    /// See [`DEFAULT_POLL_INTERVAL`].
    pub poll_interval: Duration,
    /// Blocks per `getBlockRange` call (at most [`BLOCK_BATCH_MAX`]).
    pub block_batch: u64,
    /// See [`DEFAULT_SCAN_BLOCKS`].
    pub scan_blocks: u64,
}

impl Default for LezSettings {
    fn default() -> Self {
        Self {
            program_id: payment_streams_program_id(),
            drop_after_blocks: DEFAULT_DROP_AFTER_BLOCKS,
            poll_interval: DEFAULT_POLL_INTERVAL,
            block_batch: BLOCK_BATCH_MAX,
            scan_blocks: DEFAULT_SCAN_BLOCKS,
        }
    }
}

/// The runtime a node of the default LEZ release runs, with the payment-streams program
/// installed at `program_id` too.
#[must_use]
pub fn runtime_for(program_id: ProgramId) -> Runtime {
    runtime_with(program_id, BuiltinIds::default())
}

/// The runtime a node runs with its builtins under `builtins` (learnt from the node with
/// [`NodeRpc::builtin_ids`]) and the payment-streams program installed at `program_id` too:
/// what pre-flight, receipt derivation and the block follower run transactions through.
#[must_use]
pub fn runtime_with(program_id: ProgramId, builtins: BuiltinIds) -> Runtime {
    Runtime::with_builtin_ids(builtins).with_program(Arc::new(PaymentStreamsProgram::new(program_id)))
}

/// Accounts as the chain held them after block `height` (read with no block landing in
/// between). Accounts never written are held as the default account.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccountsAt {
    pub height: u64,
    pub accounts: BTreeMap<AccountId, Account>,
}

impl StateView for AccountsAt {
    fn account(&self, id: &AccountId) -> Account {
        self.accounts.get(id).cloned().unwrap_or_default()
    }
}

/// Where a submitted transaction landed, and its events when they are known exactly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inclusion {
    pub hash: HexHash,
    pub block_id: u64,
    /// The program's events, derived by running the transaction on the accounts it was signed
    /// on; otherwise why they are not known (another transaction touched those accounts before
    /// it was included, or the blocks could not be read).
    pub events: Result<Vec<ReceiptEvent>, String>,
}

impl Inclusion {
    /// Whether the events are known.
    #[must_use]
    pub const fn events_exact(&self) -> bool {
        self.events.is_ok()
    }

    /// As a receipt (status included; no events when they are unknown).
    #[must_use]
    pub fn into_receipt(self) -> ReceiptInfo {
        ReceiptInfo {
            hash: self.hash,
            status: TxStatus::Included,
            block_id: Some(self.block_id),
            error: None,
            events: self.events.unwrap_or_default(),
        }
    }
}

/// The clock account's data: the last completed block's id and timestamp (ms).
fn clock_of(account: &Account) -> Result<ClockAccountData, String> {
    borsh::from_slice::<ClockAccountData>(&account.data)
        .map_err(|e| format!("the clock account {CLOCK_01_ACCOUNT_ID} does not hold clock data: {e}"))
}

impl NodeRpc {
    /// The ids the chain runs its builtins under, learnt once per connection and kept:
    /// authenticated transfer from `getProgramIds` (LEZ's method, answered in both dialects),
    /// the clock from the owner of the clock account `CLOCK_01` (`getProgramIds` has no clock),
    /// and our token program's own id.
    ///
    /// # Errors
    /// RPC failure, or a chain that names no authenticated-transfer program.
    pub async fn builtin_ids(&self) -> Result<BuiltinIds, RpcError> {
        if let Some(ids) = self.builtins.lock().ok().and_then(|cached| *cached) {
            return Ok(ids);
        }
        let programs = self.http.get_program_ids().await.map_err(self.error("getProgramIds"))?;
        let authenticated_transfer = programs.get("authenticated_transfer").ok_or_else(|| RpcError::Rpc {
            method: "getProgramIds",
            code: 0,
            message:
                "the chain names no authenticated_transfer program; is --rpc a LEZ sequencer or a paystreams node?"
                    .to_owned(),
        })?;
        let clock = self.lez_account(CLOCK_01_ACCOUNT_ID).await?.program_owner;
        let ids =
            BuiltinIds { authenticated_transfer: ProgramId(*authenticated_transfer), clock, ..BuiltinIds::default() };
        if let Ok(mut cached) = self.builtins.lock() {
            *cached = Some(ids);
        }
        Ok(ids)
    }

    /// `getLastBlockId`.
    ///
    /// # Errors
    /// RPC failure.
    pub async fn lez_last_block_id(&self) -> Result<u64, RpcError> {
        self.http.get_last_block_id().await.map_err(self.error("getLastBlockId"))
    }

    /// `getAccount` (the default account for an id never written).
    ///
    /// # Errors
    /// RPC failure.
    pub async fn lez_account(&self, id: AccountId) -> Result<Account, RpcError> {
        Ok(self.http.get_account(id).await.map_err(self.error("getAccount"))?.into())
    }

    /// `getAccountsNonces`, in order.
    ///
    /// # Errors
    /// RPC failure, or an answer of the wrong length.
    pub async fn lez_nonces(&self, ids: Vec<AccountId>) -> Result<Vec<u128>, RpcError> {
        let expected = ids.len();
        let nonces = self.http.get_accounts_nonces(ids).await.map_err(self.error("getAccountsNonces"))?;
        if nonces.len() != expected {
            return Err(RpcError::Rpc {
                method: "getAccountsNonces",
                code: 0,
                message: format!("asked for {expected} nonces, got {}", nonces.len()),
            });
        }
        Ok(nonces)
    }

    /// `getTransaction`: the including block's id, or `None` while (or if ever) not included.
    ///
    /// # Errors
    /// RPC failure.
    pub async fn lez_inclusion(&self, hash: HexHash) -> Result<Option<u64>, RpcError> {
        let answer = self.http.get_transaction(hash).await.map_err(self.error("getTransaction"))?;
        Ok(answer.map(|(_, block_id)| block_id))
    }

    /// `getBlockRange` over `start..=end`, in calls of at most [`LezSettings::block_batch`]
    /// blocks, each block decoded.
    ///
    /// # Errors
    /// RPC failure, a missing block, or an undecodable one.
    pub async fn lez_blocks(&self, start: u64, end: u64) -> Result<Vec<LezBlock>, RpcError> {
        let batch = self.lez.block_batch.clamp(1, BLOCK_BATCH_MAX);
        let mut blocks = Vec::new();
        let mut from = start;
        while from <= end {
            let to = from.saturating_add(batch - 1).min(end);
            let batch = self.http.get_block_range(from, to).await.map_err(self.error("getBlockRange"))?;
            blocks.extend(batch.into_iter().map(|block| block.0));
            if to == u64::MAX {
                break;
            }
            from = to + 1;
        }
        Ok(blocks)
    }

    /// The clock: the last completed block's id and its timestamp in ms (`CLOCK_01`).
    ///
    /// # Errors
    /// RPC failure, or a clock account without clock data.
    pub async fn lez_clock(&self) -> Result<ClockAccountData, RpcError> {
        let account = self.lez_account(CLOCK_01_ACCOUNT_ID).await?;
        clock_of(&account).map_err(|message| RpcError::Rpc { method: "getAccount", code: 0, message })
    }

    /// Reads `ids` (and the clock) with no block landing in between: the height is read before
    /// and after, and the reading repeated when it moved.
    ///
    /// # Errors
    /// RPC failure, or a block landing during every attempt.
    pub async fn lez_read(&self, ids: &BTreeSet<AccountId>) -> Result<AccountsAt, RpcError> {
        for _ in 0..CONSISTENT_READ_ATTEMPTS {
            let height = self.lez_last_block_id().await?;
            let mut accounts = BTreeMap::new();
            for id in ids.iter().chain(&CLOCK_ACCOUNT_IDS) {
                if !accounts.contains_key(id) {
                    accounts.insert(*id, self.lez_account(*id).await?);
                }
            }
            if self.lez_last_block_id().await? == height {
                return Ok(AccountsAt { height, accounts });
            }
        }
        Err(RpcError::Rpc {
            method: "getAccount",
            code: 0,
            message: format!(
                "the chain added a block while its accounts were being read, {CONSISTENT_READ_ATTEMPTS} times in a row"
            ),
        })
    }

    /// The vault, decoded from its config and holding accounts; `None` when it does not exist.
    ///
    /// # Errors
    /// RPC failure.
    pub async fn lez_vault(&self, owner: &AccountId, vault_id: u64) -> Result<Option<VaultView>, RpcError> {
        let program_id = self.lez.program_id;
        let config_id = paystreams_program::pda::vault_config_id(&program_id, owner, vault_id);
        // The token a vault holds never changes, so the holding's address can be taken from a
        // first read; the consistent read then covers both accounts.
        let Some(config) =
            views::read_vault_config(&self.lez_read(&BTreeSet::from([config_id])).await?, &program_id, owner, vault_id)
        else {
            return Ok(None);
        };
        let holding = paystreams_program::pda::vault_holding_id(&program_id, &config_id, &config.token_id);
        let state = self.lez_read(&BTreeSet::from([config_id, holding])).await?;
        Ok(views::vault_view(&state, &program_id, owner, vault_id))
    }

    /// The stream, decoded and folded at the head's time; `None` when it does not exist.
    ///
    /// # Errors
    /// RPC failure or an unreadable clock.
    pub async fn lez_stream(
        &self,
        owner: &AccountId,
        vault_id: u64,
        stream_id: u64,
    ) -> Result<Option<StreamView>, RpcError> {
        let program_id = self.lez.program_id;
        let config_id = paystreams_program::pda::vault_config_id(&program_id, owner, vault_id);
        let stream_config = paystreams_program::pda::stream_config_id(&program_id, &config_id, stream_id);
        let state = self.lez_read(&BTreeSet::from([config_id, stream_config])).await?;
        let clock = clock_of(&state.account(&CLOCK_01_ACCOUNT_ID)).map_err(|message| RpcError::Rpc {
            method: "getAccount",
            code: 0,
            message,
        })?;
        Ok(views::stream_view(&state, &program_id, owner, vault_id, stream_id, clock.timestamp_ms / 1000))
    }

    /// The payment-streams instructions of the last [`LezSettings::scan_blocks`] blocks, with
    /// the accounts each named, oldest first.
    async fn lez_scan(&self) -> Result<Vec<(paystreams_program::Instruction, Vec<AccountId>)>, RpcError> {
        let head = self.lez_last_block_id().await?;
        let start = head
            .saturating_sub(self.lez.scan_blocks.saturating_sub(1))
            .max(paystreams_lez_core::lez_block::GENESIS_BLOCK_ID);
        let mut found = Vec::new();
        if head < start {
            return Ok(found);
        }
        for block in self.lez_blocks(start, head).await? {
            for paystreams_lez_core::lee_transaction::LeeTransaction::Public(tx) in block.body.transactions {
                if tx.message.program_id != self.lez.program_id {
                    continue;
                }
                if let Ok(instruction) = paystreams_program::Instruction::from_words(&tx.message.instruction_data) {
                    found.push((instruction, tx.message.account_ids));
                }
            }
        }
        Ok(found)
    }

    /// The vaults of `owner` created in the last [`LezSettings::scan_blocks`] blocks (LEZ has
    /// no listing method: vaults created earlier are not found), as they are now.
    ///
    /// # Errors
    /// RPC failure.
    pub async fn lez_list_vaults(&self, owner: &AccountId) -> Result<Vec<VaultView>, RpcError> {
        let mut ids = BTreeSet::new();
        for (instruction, accounts) in self.lez_scan().await? {
            if let paystreams_program::Instruction::InitializeVault { vault_id, .. } = instruction
                && accounts.get(2) == Some(owner)
            {
                ids.insert(vault_id);
            }
        }
        let mut views = Vec::with_capacity(ids.len());
        for vault_id in ids {
            views.extend(self.lez_vault(owner, vault_id).await?);
        }
        Ok(views)
    }

    /// The streams matching `filter` created in the last [`LezSettings::scan_blocks`] blocks
    /// (LEZ has no listing method: streams created earlier are not found), folded now.
    ///
    /// # Errors
    /// RPC failure.
    pub async fn lez_list_streams(&self, filter: &crate::StreamFilter) -> Result<Vec<StreamView>, RpcError> {
        let mut keys = BTreeSet::new();
        for (instruction, accounts) in self.lez_scan().await? {
            if let paystreams_program::Instruction::CreateStream { vault_id, stream_id, provider, .. } = instruction
                && let Some(owner) = accounts.get(3)
                && filter.owner.is_none_or(|o| o == *owner)
                && filter.provider.is_none_or(|p| p == provider)
            {
                keys.insert((*owner, vault_id, stream_id));
            }
        }
        let mut views = Vec::with_capacity(keys.len());
        for (owner, vault_id, stream_id) in keys {
            views.extend(self.lez_stream(&owner, vault_id, stream_id).await?);
        }
        Ok(views)
    }

    /// Signs a call with the nonces of a consistent read of every account it reads, sends it and
    /// waits for its inclusion; the receipt's events are derived as the module says.
    ///
    /// # Errors
    /// RPC failure, a stateless refusal, [`RpcError::Dropped`] or [`RpcError::Timeout`].
    pub async fn lez_submit(
        &self,
        message: impl FnOnce(Vec<u128>) -> Message,
        account_ids: &[AccountId],
        signers: &[&SecretKey],
        waiting: impl Fn(Duration),
    ) -> Result<Inclusion, RpcError> {
        let signer_ids: Vec<AccountId> = signers.iter().map(|k| k.account_id()).collect();
        let ids: BTreeSet<AccountId> = account_ids.iter().chain(&signer_ids).copied().collect();
        let read = self.lez_read(&ids).await?;
        let nonces = signer_ids.iter().map(|id| read.account(id).nonce).collect();
        let tx = Transaction::sign(message(nonces), signers);
        self.lez_send_and_confirm(&tx, &read, waiting).await
    }

    /// Sends `tx`, signed on `read`, and waits for its inclusion; derives its events.
    ///
    /// # Errors
    /// As [`NodeRpc::lez_submit`].
    pub async fn lez_send_and_confirm(
        &self,
        tx: &Transaction,
        read: &AccountsAt,
        waiting: impl Fn(Duration),
    ) -> Result<Inclusion, RpcError> {
        let hash = self.send_transaction(tx).await?;
        self.lez_confirm(hash, tx, read, waiting).await
    }

    /// Waits for the inclusion of `tx` (sent as `hash`, signed on `read`) and derives its
    /// events.
    ///
    /// # Errors
    /// RPC failure, [`RpcError::Dropped`] or [`RpcError::Timeout`].
    pub async fn lez_confirm(
        &self,
        hash: HexHash,
        tx: &Transaction,
        read: &AccountsAt,
        waiting: impl Fn(Duration),
    ) -> Result<Inclusion, RpcError> {
        let block_id = self.lez_wait(hash, tx, read.height, waiting).await?;
        let events = self.lez_replay(tx, read, block_id).await.and_then(|events| {
            events.ok_or_else(|| {
                "another transaction touched the same accounts between the read it was signed on and its inclusion"
                    .to_owned()
            })
        });
        if let Err(why) = &events {
            warn!(%hash, %why, "the effects of an included transaction cannot be derived exactly");
        }
        Ok(Inclusion { hash, block_id, events })
    }

    /// Polls `getTransaction` until `hash` is included; reports it dropped once a signer's nonce
    /// moved past the one it carries, or [`LezSettings::drop_after_blocks`] blocks after
    /// `sent_after` went by without it; times out after the inclusion timeout.
    ///
    /// # Errors
    /// RPC failure, [`RpcError::Dropped`] or [`RpcError::Timeout`].
    pub async fn lez_wait(
        &self,
        hash: HexHash,
        tx: &Transaction,
        sent_after: u64,
        waiting: impl Fn(Duration),
    ) -> Result<u64, RpcError> {
        let start = Instant::now();
        let mut interval = RECEIPT_POLL_MIN;
        let signers = tx.signer_ids();
        loop {
            if let Some(block_id) = self.lez_inclusion(hash).await? {
                return Ok(block_id);
            }
            let height = self.lez_last_block_id().await?;
            let passed = height.saturating_sub(sent_after);
            let moved = if signers.is_empty() {
                false
            } else {
                let now = self.lez_nonces(signers.clone()).await?;
                now.iter().zip(&tx.message.nonces).any(|(now, sent)| now > sent)
            };
            if moved || passed >= self.lez.drop_after_blocks {
                // It may have been included between the two reads.
                if let Some(block_id) = self.lez_inclusion(hash).await? {
                    return Ok(block_id);
                }
                let reason = if moved {
                    "a signer's nonce moved past it: another transaction with the same nonce was included".to_owned()
                } else {
                    format!(
                        "{passed} blocks were produced without it: it failed when executed, or the sequencer did not \
                         take it"
                    )
                };
                return Err(RpcError::Dropped { hash, reason });
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

    /// The events of `tx`, included in block `block_id`, when they are known exactly: no other
    /// transaction of blocks `read.height + 1 ..= block_id` (before `tx` in its own block) named
    /// an account `read` holds, apart from the clock update. `tx` then ran on exactly `read`, at
    /// the time the previous block's clock update wrote.
    ///
    /// # Errors
    /// RPC failure; a run that fails although the chain included `tx` (the read was not the
    /// chain's).
    pub async fn lez_replay(
        &self,
        tx: &Transaction,
        read: &AccountsAt,
        block_id: u64,
    ) -> Result<Option<Vec<ReceiptEvent>>, String> {
        if block_id <= read.height || block_id - read.height > REPLAY_BLOCKS_MAX {
            return Ok(None);
        }
        let ours = tx.hash();
        let blocks = self.lez_blocks(read.height + 1, block_id).await.map_err(|e| e.to_string())?;
        let mut previous_timestamp = clock_of(&read.account(&CLOCK_01_ACCOUNT_ID))?.timestamp_ms;
        let watched: BTreeSet<&AccountId> = read.accounts.keys().filter(|id| !CLOCK_ACCOUNT_IDS.contains(id)).collect();
        for block in &blocks {
            for paystreams_lez_core::lee_transaction::LeeTransaction::Public(other) in &block.body.transactions {
                if block.header.block_id == block_id && other.hash() == ours {
                    let time = BlockContext { block_id: block_id - 1, timestamp_ms: previous_timestamp };
                    let builtins = self.builtin_ids().await.map_err(|e| e.to_string())?;
                    return run_on(&runtime_with(self.lez.program_id, builtins), read, tx, &time).map(Some);
                }
                let names_watched = other.message.account_ids.iter().any(|id| watched.contains(id))
                    || other
                        .witness_set
                        .signatures_and_public_keys
                        .iter()
                        .any(|(_, key)| watched.contains(&key.account_id()));
                if names_watched {
                    debug!(block = block.header.block_id, "another transaction touched the accounts read");
                    return Ok(None);
                }
            }
            if block.header.block_id < block_id {
                previous_timestamp = block.header.timestamp;
            }
        }
        Err(format!("block {block_id} does not hold the transaction getTransaction placed there"))
    }
}

/// Runs `tx` through `runtime` on `state` with the clock moved to `time` (the time the
/// including block's transactions read); its receipt's events.
fn run_on(
    runtime: &Runtime,
    state: &impl StateView,
    tx: &Transaction,
    time: &BlockContext,
) -> Result<Vec<ReceiptEvent>, String> {
    let mut overlay = Overlay::new(state);
    let clock = runtime.clock_update(&overlay, time).map_err(|e| format!("the clock cannot be moved: {e}"))?;
    overlay.apply_diff(&clock);
    let applied = runtime
        .apply(&overlay, tx, &BlockContext::default())
        .map_err(|e| format!("the chain included the transaction, but it fails on the accounts read: {e}"))?;
    Ok(applied.receipt.events)
}

#[cfg(test)]
mod tests {
    use paystreams_lez_core::transfer::authenticated_transfer_program_id;
    use paystreams_program::{
        Event, ExtensionSettings,
        client::{self as builders, VaultRef},
        state::VaultPrivacyTier,
    };
    use paystreams_runtime::testkit::LocalChain;

    use super::*;

    fn claimed(events: &[ReceiptEvent]) -> Vec<u128> {
        events
            .iter()
            .filter_map(|e| match e {
                ReceiptEvent::PaymentStreams { event: Event::Claimed { amount, .. } } => Some(*amount),
                _ => None,
            })
            .collect()
    }

    /// A claim signed on accounts read at 160 s and included in a block whose transactions read
    /// 170 s: running it on the read, at the including block's time, gives the chain's events to
    /// the unit; at the read's own time it would not.
    #[test]
    fn a_receipt_is_derived_exactly_from_the_read_at_the_including_blocks_time() {
        let program_id = payment_streams_program_id();
        let owner = SecretKey::from_bytes(&[7; 32]).expect("key");
        let provider = SecretKey::from_bytes(&[8; 32]).expect("key");
        let funded = [(owner.account_id(), 1_000_000), (provider.account_id(), 1)];
        let mut chain = LocalChain::new(&funded, 100).expect("genesis").with_runtime(runtime_for(program_id));
        let vault = VaultRef::native(program_id, owner.account_id(), 0);
        for call in [
            builders::initialize_vault(&vault, VaultPrivacyTier::Public),
            builders::deposit(&vault, 10_000, authenticated_transfer_program_id(), None),
            builders::create_stream(&vault, 0, provider.account_id(), 10, 1_000, ExtensionSettings::default()),
        ] {
            chain.submit(&call, &[&owner]).expect("applies");
        }
        chain.advance_to(160).expect("time");

        let call = builders::claim(&vault, 0, provider.account_id(), None, None);
        let ids: BTreeSet<AccountId> =
            call.account_ids.iter().copied().chain([provider.account_id()]).chain(CLOCK_ACCOUNT_IDS).collect();
        let read =
            AccountsAt { height: chain.height(), accounts: ids.iter().map(|id| (*id, chain.account(id))).collect() };
        let tx = chain.transaction(call.program_id, call.account_ids.clone(), call.instruction_data(), &[&provider]);

        chain.advance_to(170).expect("time");
        let included = chain.apply(&tx).expect("included");
        assert_eq!(claimed(&included.receipt.events), vec![700]);

        let runtime = runtime_for(program_id);
        let at_inclusion = BlockContext { block_id: chain.height(), timestamp_ms: 170_000 };
        let derived = run_on(&runtime, &read, &tx, &at_inclusion).expect("runs");
        assert_eq!(derived, included.receipt.events, "the derived receipt is the chain's");
        let at_read = BlockContext { block_id: read.height, timestamp_ms: 160_000 };
        assert_eq!(claimed(&run_on(&runtime, &read, &tx, &at_read).expect("runs")), vec![600]);
    }

    #[test]
    fn dialect_names_parse_and_others_are_refused_with_both_choices() {
        assert_eq!("lez".parse::<super::super::Dialect>(), Ok(super::super::Dialect::Lez));
        assert_eq!(" Paystreams ".parse::<super::super::Dialect>(), Ok(super::super::Dialect::Paystreams));
        let error = "nssa".parse::<super::super::Dialect>().expect_err("unknown");
        assert!(error.contains("`paystreams`") && error.contains("`lez`"), "{error}");
    }
}
