//! Events from polled blocks: LEZ has no subscriptions, so [`BlockEvents`] asks
//! `getLastBlockId` every [`LezSettings::poll_interval`](super::LezSettings), reads the new
//! blocks with `getBlockRange` (at most [`LezSettings::block_batch`](super::LezSettings) per
//! call), and turns every included payment-streams transaction into the events the engines use.
//!
//! How a transaction's events are found, never guessed:
//!
//! 1. **Replayed.** The follower keeps a mirror of the accounts it is interested in (those named
//!    by transactions whose events matched its filter, and the filter's accounts), read at the
//!    height it has processed. Every later transaction naming a mirrored account is run through
//!    the real runtime on the mirror, at the time its block's transactions read (the previous
//!    block's timestamp); its events are then exactly the program's and its post-state updates
//!    the mirror. A transaction that names an account the mirror lacks drops the accounts it
//!    names from the mirror; they are read again once the follower has caught up with the head
//!    (a read is kept only when no block landed during it).
//! 2. **From the instruction.** Otherwise the events whose every field the instruction words,
//!    the accounts' addresses and the block give exactly: `VaultInitialized`, `Deposited`,
//!    `Withdrawn`, `StreamCreated` (`at` = the time the block's transactions read), and
//!    `StreamPaused`/`StreamResumed` (the stream's provider, which never changes, read from its
//!    account). Events whose amounts depend on the state the transaction ran on (top-up, close,
//!    claim, and side effects such as auto-pause or an activation fee) are then left out, with a
//!    warning: their amounts are not known.
//!
//! A subscription that ends (an RPC failure) is opened again by the caller; the source keeps
//! its cursor, so the next subscription continues after the last processed block instead of
//! skipping the gap.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, VecDeque},
    sync::{Arc, Mutex},
};

use paystreams_lez_core::{
    Account, AccountId,
    clock::{CLOCK_ACCOUNT_IDS, is_clock_account},
    lee_transaction::{LeePublicTransaction, LeeTransaction},
    lez_block::LezBlock,
};
use paystreams_program::{
    Event, Instruction,
    event::StreamRef,
    state::{StreamConfig, decode, token_label},
};
use paystreams_runtime::{BlockContext, Overlay, ReceiptEvent, Runtime, StateView};
use tracing::{debug, warn};

use super::{NodeRpc, RpcError, runtime_with};
use crate::{
    EventFilter, EventNotification, HexHash,
    events::{EventSource, EventSubscription},
};

/// Most accounts the follower mirrors; beyond it the mirror starts over (and refills from
/// the chain as transactions name the accounts again).
pub const MIRROR_MAX: usize = 4096;

/// Most stream providers remembered (a stream's provider never changes).
const PROVIDERS_MAX: usize = 65_536;

/// Where the next subscription continues: the next block to read and the timestamp (ms) of the
/// block before it.
#[derive(Clone, Copy, Debug)]
struct Cursor {
    next: u64,
    previous_timestamp_ms: u64,
}

/// The [`EventSource`] over a LEZ sequencer's blocks.
#[derive(Clone, Debug)]
pub struct BlockEvents {
    node: NodeRpc,
    filter: EventFilter,
    cursor: Arc<Mutex<Option<Cursor>>>,
}

impl BlockEvents {
    /// Events matching `filter` from the blocks of the chain `node` talks to, from the block
    /// after the head at the first subscription on.
    #[must_use]
    pub fn new(node: &NodeRpc, filter: EventFilter) -> Self {
        Self { node: node.clone(), filter, cursor: Arc::default() }
    }
}

impl EventSource for BlockEvents {
    type Subscription = BlockSubscription;

    async fn subscribe(&self) -> Result<BlockSubscription, String> {
        let saved = self.cursor.lock().ok().and_then(|c| *c);
        let cursor = match saved {
            Some(cursor) => cursor,
            None => {
                let clock = self.node.lez_clock().await.map_err(|e| e.to_string())?;
                Cursor { next: clock.block_id.saturating_add(1), previous_timestamp_ms: clock.timestamp_ms }
            }
        };
        let mut interest = BTreeSet::from(CLOCK_ACCOUNT_IDS);
        interest.extend(self.filter.owner);
        interest.extend(self.filter.provider);
        Ok(BlockSubscription {
            node: self.node.clone(),
            filter: self.filter.clone(),
            runtime: runtime_with(self.node.lez.program_id, self.node.builtin_ids().await.map_err(|e| e.to_string())?),
            cursor,
            shared: Arc::clone(&self.cursor),
            pending: VecDeque::new(),
            mirror: Mirror { accounts: BTreeMap::new(), interest },
            providers: HashMap::new(),
        })
    }
}

/// An open block-polling subscription.
pub struct BlockSubscription {
    node: NodeRpc,
    filter: EventFilter,
    runtime: Runtime,
    cursor: Cursor,
    shared: Arc<Mutex<Option<Cursor>>>,
    pending: VecDeque<EventNotification>,
    mirror: Mirror,
    providers: HashMap<AccountId, AccountId>,
}

impl std::fmt::Debug for BlockSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockSubscription").field("next_block", &self.cursor.next).finish_non_exhaustive()
    }
}

impl EventSubscription for BlockSubscription {
    async fn next_event(&mut self) -> Option<EventNotification> {
        loop {
            if let Some(notification) = self.pending.pop_front() {
                return Some(notification);
            }
            match self.poll().await {
                Ok(true) => {}
                Ok(false) => tokio::time::sleep(self.node.lez.poll_interval).await,
                Err(e) => {
                    warn!(error = %e, "following blocks failed; the subscription ends");
                    return None;
                }
            }
        }
    }
}

impl BlockSubscription {
    /// Reads and processes the next blocks up to the head; `false` when there were none.
    async fn poll(&mut self) -> Result<bool, RpcError> {
        let head = self.node.lez_last_block_id().await?;
        if head < self.cursor.next {
            self.refresh_mirror(head).await?;
            return Ok(false);
        }
        let batch = self.node.lez.block_batch.clamp(1, super::BLOCK_BATCH_MAX);
        let end = head.min(self.cursor.next.saturating_add(batch - 1));
        let blocks = self.node.lez_blocks(self.cursor.next, end).await?;
        for (expected, block) in (self.cursor.next..).zip(&blocks) {
            if block.header.block_id != expected {
                return Err(RpcError::Rpc {
                    method: "getBlockRange",
                    code: 0,
                    message: format!("asked for block {expected}, got block {}", block.header.block_id),
                });
            }
            self.process(block).await?;
            self.cursor = Cursor { next: expected.saturating_add(1), previous_timestamp_ms: block.header.timestamp };
            if let Ok(mut shared) = self.shared.lock() {
                *shared = Some(self.cursor);
            }
        }
        if end == head {
            self.refresh_mirror(head).await?;
        }
        Ok(true)
    }

    /// Queues the events of every payment-streams transaction of `block` that match the filter.
    async fn process(&mut self, block: &LezBlock) -> Result<(), RpcError> {
        let time = BlockContext {
            block_id: block.header.block_id.saturating_sub(1),
            timestamp_ms: self.cursor.previous_timestamp_ms,
        };
        let program_id = self.node.lez.program_id;
        for LeeTransaction::Public(tx) in &block.body.transactions {
            if tx.message.account_ids.iter().all(is_clock_account) {
                // The clock update: the time is set explicitly for every replay.
                continue;
            }
            let replayed = self.mirror.replay(&self.runtime, tx, &time);
            if tx.message.program_id != program_id {
                continue;
            }
            let events = match replayed {
                Some(events) => events,
                None => self.instruction_events(tx, time.timestamp_ms / 1000).await?,
            };
            let tx_hash = HexHash(tx.hash());
            let mut matched = false;
            for event in events {
                if self.filter.matches(&event) {
                    matched = true;
                    self.pending.push_back(EventNotification {
                        block_id: block.header.block_id,
                        timestamp_ms: block.header.timestamp,
                        tx_hash,
                        event,
                    });
                }
            }
            if matched {
                self.mirror.interest.extend(reads_of(tx));
            }
        }
        Ok(())
    }

    /// The events of a payment-streams transaction that its instruction gives exactly (see the
    /// module documentation); `at` is the time its block's transactions read, in seconds.
    async fn instruction_events(&mut self, tx: &LeePublicTransaction, at: u64) -> Result<Vec<Event>, RpcError> {
        let hash = HexHash(tx.hash());
        let instruction = match Instruction::from_words(&tx.message.instruction_data) {
            Ok(instruction) => instruction,
            Err(e) => {
                warn!(%hash, error = %e, "an included payment-streams transaction does not decode; skipped");
                return Ok(Vec::new());
            }
        };
        let ids = &tx.message.account_ids;
        let at_index = |i: usize| ids.get(i).copied();
        let event = match instruction {
            Instruction::InitializeVault { vault_id, token_id, .. } => {
                at_index(0).zip(at_index(2)).map(|(vault_config, owner)| Event::VaultInitialized {
                    owner,
                    vault_id,
                    vault_config,
                    token_id: token_label(&token_id),
                })
            }
            Instruction::Deposit { vault_id, amount, .. } => {
                at_index(2).map(|owner| Event::Deposited { owner, vault_id, amount })
            }
            Instruction::Withdraw { vault_id, amount } => {
                at_index(2).zip(at_index(3)).map(|(owner, to)| Event::Withdrawn { owner, vault_id, to, amount })
            }
            Instruction::WithdrawToOwner { vault_id, amount } => {
                at_index(2).map(|owner| Event::Withdrawn { owner, vault_id, to: owner, amount })
            }
            Instruction::CreateStream { vault_id, stream_id, provider, rate, allocation, .. } => {
                at_index(2).zip(at_index(3)).map(|(stream_config, owner)| Event::StreamCreated {
                    stream: StreamRef { owner, vault_id, stream_id, provider, stream_config },
                    rate,
                    allocation,
                    at,
                })
            }
            Instruction::PauseStream { vault_id, stream_id } | Instruction::ResumeStream { vault_id, stream_id } => {
                let paused = matches!(instruction, Instruction::PauseStream { .. });
                match at_index(2).zip(at_index(3)) {
                    Some((stream_config, owner)) => self.provider_of(stream_config).await?.map(|provider| {
                        let stream = StreamRef { owner, vault_id, stream_id, provider, stream_config };
                        if paused { Event::StreamPaused { stream, at } } else { Event::StreamResumed { stream, at } }
                    }),
                    None => None,
                }
            }
            other => {
                warn!(
                    %hash,
                    instruction = other.name(),
                    "the amounts of this transaction's events are not known (the state it ran on was not mirrored); \
                     its events are left out"
                );
                None
            }
        };
        Ok(event.into_iter().collect())
    }

    /// The provider a stream pays (its account, read once: it never changes).
    async fn provider_of(&mut self, stream_config: AccountId) -> Result<Option<AccountId>, RpcError> {
        if let Some(provider) = self.providers.get(&stream_config) {
            return Ok(Some(*provider));
        }
        let account = match self.mirror.accounts.get(&stream_config) {
            Some(account) => account.clone(),
            None => self.node.lez_account(stream_config).await?,
        };
        let Ok(stored) = decode::<StreamConfig>(&account.data) else {
            debug!(%stream_config, "not a stream account");
            return Ok(None);
        };
        if self.providers.len() >= PROVIDERS_MAX {
            self.providers.clear();
        }
        self.providers.insert(stream_config, stored.provider);
        Ok(Some(stored.provider))
    }

    /// Reads the accounts of interest the mirror lacks, keeping them only when no block landed
    /// while they were read (they then hold at `height`, the last block processed).
    async fn refresh_mirror(&mut self, height: u64) -> Result<(), RpcError> {
        if self.mirror.interest.len() > MIRROR_MAX {
            debug!("mirror full; starting over");
            self.mirror.interest = BTreeSet::from(CLOCK_ACCOUNT_IDS);
            self.mirror.accounts.clear();
            self.mirror.interest.extend(self.filter.owner);
            self.mirror.interest.extend(self.filter.provider);
        }
        let missing: Vec<AccountId> =
            self.mirror.interest.iter().filter(|id| !self.mirror.accounts.contains_key(id)).copied().collect();
        if missing.is_empty() || self.node.lez_last_block_id().await? != height {
            return Ok(());
        }
        let mut read = Vec::with_capacity(missing.len());
        for id in missing {
            read.push((id, self.node.lez_account(id).await?));
        }
        if self.node.lez_last_block_id().await? == height {
            self.mirror.accounts.extend(read);
        }
        Ok(())
    }
}

/// Every account a transaction reads, apart from the clock: its accounts and its signers.
fn reads_of(tx: &LeePublicTransaction) -> BTreeSet<AccountId> {
    tx.message
        .account_ids
        .iter()
        .copied()
        .chain(tx.witness_set.signatures_and_public_keys.iter().map(|(_, key)| key.account_id()))
        .filter(|id| !is_clock_account(id))
        .collect()
}

/// The accounts the follower holds exactly as of the last block it processed, and the clock
/// accounts (as last read: every replay moves them to its own time first, and their
/// post-states are not kept).
#[derive(Debug, Default)]
struct Mirror {
    accounts: BTreeMap<AccountId, Account>,
    interest: BTreeSet<AccountId>,
}

/// The mirror as the runtime's state.
struct MirrorView<'a> {
    accounts: &'a BTreeMap<AccountId, Account>,
}

impl StateView for MirrorView<'_> {
    fn account(&self, id: &AccountId) -> Account {
        self.accounts.get(id).cloned().unwrap_or_default()
    }
}

impl Mirror {
    /// Runs `tx` on the mirror when it holds every account `tx` reads: its payment-streams
    /// events, and the mirror moved to its post-state. Otherwise (or when the run fails, which
    /// means the mirror is not the chain's state) the accounts `tx` names leave the mirror.
    fn replay(&mut self, runtime: &Runtime, tx: &LeePublicTransaction, time: &BlockContext) -> Option<Vec<Event>> {
        let reads = reads_of(tx);
        if !reads.iter().any(|id| self.accounts.contains_key(id)) {
            return None;
        }
        if !reads.iter().chain(&CLOCK_ACCOUNT_IDS).all(|id| self.accounts.contains_key(id)) {
            self.forget(&reads);
            return None;
        }
        let view = MirrorView { accounts: &self.accounts };
        let mut overlay = Overlay::new(&view);
        let outcome = runtime.clock_update(&overlay, time).and_then(|clock| {
            overlay.apply_diff(&clock);
            runtime.apply(&overlay, tx, &BlockContext::default())
        });
        match outcome {
            Ok(applied) => {
                for (id, account) in applied.diff.accounts {
                    if !CLOCK_ACCOUNT_IDS.contains(&id) && self.accounts.contains_key(&id) {
                        self.accounts.insert(id, account);
                    }
                }
                Some(
                    applied
                        .receipt
                        .events
                        .into_iter()
                        .filter_map(|e| match e {
                            ReceiptEvent::PaymentStreams { event } => Some(event),
                            _ => None,
                        })
                        .collect(),
                )
            }
            Err(e) => {
                debug!(error = %e, "the mirror is not the chain's state for this transaction; forgetting its accounts");
                self.forget(&reads);
                None
            }
        }
    }

    fn forget(&mut self, ids: &BTreeSet<AccountId>) {
        for id in ids {
            self.accounts.remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use paystreams_lez_core::{
        crypto::SecretKey,
        transfer::{authenticated_transfer_program_id, transfer_instruction},
    };
    use paystreams_program::{
        ExtensionSettings,
        client::{self as builders, VaultRef},
        payment_streams_program_id,
        state::VaultPrivacyTier,
    };
    use paystreams_runtime::testkit::LocalChain;

    use super::{super::runtime_for, *};

    fn stranger() -> AccountId {
        SecretKey::from_bytes(&[5; 32]).expect("key").account_id()
    }

    /// A chain with a stream (rate 10, allocation 1000) created at 100 s, and a mirror of every
    /// account a claim on it reads, as the chain holds them then.
    fn setup() -> (LocalChain, Mirror, VaultRef, SecretKey, SecretKey) {
        let program_id = payment_streams_program_id();
        let owner = SecretKey::from_bytes(&[3; 32]).expect("key");
        let provider = SecretKey::from_bytes(&[4; 32]).expect("key");
        let funded = [(owner.account_id(), 1_000_000), (provider.account_id(), 1), (stranger(), 1)];
        let mut chain = LocalChain::new(&funded, 100).expect("genesis").with_runtime(runtime_for(program_id));
        let vault = VaultRef::native(program_id, owner.account_id(), 0);
        for call in [
            builders::initialize_vault(&vault, VaultPrivacyTier::Public),
            builders::deposit(&vault, 10_000, authenticated_transfer_program_id(), None),
            builders::create_stream(&vault, 0, provider.account_id(), 10, 1_000, ExtensionSettings::default()),
        ] {
            chain.submit(&call, &[&owner]).expect("applies");
        }
        let claim = builders::claim(&vault, 0, provider.account_id(), None, None);
        let interest: BTreeSet<AccountId> =
            claim.account_ids.iter().copied().chain([provider.account_id()]).chain(CLOCK_ACCOUNT_IDS).collect();
        let accounts = interest.iter().map(|id| (*id, chain.account(id))).collect();
        (chain, Mirror { accounts, interest }, vault, owner, provider)
    }

    #[test]
    fn a_mirrored_transaction_replays_to_the_chains_events_and_post_state() {
        let (mut chain, mut mirror, vault, _, provider) = setup();
        chain.advance_to(130).expect("time");
        let claim = builders::claim(&vault, 0, provider.account_id(), None, None);
        let tx = chain.transaction(claim.program_id, claim.account_ids.clone(), claim.instruction_data(), &[&provider]);
        let included = chain.apply(&tx).expect("included");
        let chain_events: Vec<Event> = included
            .receipt
            .events
            .iter()
            .filter_map(|e| match e {
                ReceiptEvent::PaymentStreams { event } => Some(event.clone()),
                _ => None,
            })
            .collect();
        assert!(matches!(chain_events.as_slice(), [Event::Claimed { amount: 300, .. }]), "{chain_events:?}");

        let runtime = runtime_for(payment_streams_program_id());
        let replayed = mirror.replay(&runtime, &tx, &BlockContext { block_id: chain.height(), timestamp_ms: 130_000 });
        assert_eq!(replayed, Some(chain_events));
        for (id, account) in mirror.accounts.iter().filter(|(id, _)| !is_clock_account(id)) {
            assert_eq!(*account, chain.account(id), "the mirror follows the chain for {id}");
        }
    }

    #[test]
    fn a_transaction_naming_an_unmirrored_account_makes_the_mirror_forget_its_accounts() {
        let (mut chain, mut mirror, _, owner, _) = setup();
        let tx = chain.transaction(
            authenticated_transfer_program_id(),
            vec![owner.account_id(), stranger()],
            transfer_instruction(5),
            &[&owner],
        );
        chain.apply(&tx).expect("included");
        let runtime = runtime_for(payment_streams_program_id());
        assert_eq!(
            mirror.replay(&runtime, &tx, &BlockContext { block_id: chain.height(), timestamp_ms: 100_000 }),
            None
        );
        assert!(!mirror.accounts.contains_key(&owner.account_id()), "the owner's balance is no longer known");
        assert!(mirror.interest.contains(&owner.account_id()), "it is read again once the follower catches up");
    }
}
