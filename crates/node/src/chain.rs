//! The chain: committed state in memory, the mempool, block production and the indexes the RPC
//! reads. Synchronous; the service runs block production on blocking threads.

use std::{
    borrow::Cow,
    collections::{BTreeSet, HashMap, HashSet, VecDeque},
    sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard},
    time::{Duration, Instant},
};

use paystreams_lez_core::{
    AccountId, ProgramId,
    crypto::{PublicKey, SecretKey},
    lee_transaction::LeeTransaction,
    lez_block::{GENESIS_BLOCK_ID, LezBlock},
    lez_release::LezRelease,
    risc0_words::from_words,
    transfer::TransferInstruction,
};
use paystreams_program::payment_streams_program_id;
use paystreams_rpc::{
    BlockHeader, BlockInfo, EventNotification, HexHash, ReceiptInfo, StreamView, TransactionInfo, TxErrorInfo,
    TxStatus, VaultView, clock::wall_clock_ms, views,
};
use paystreams_runtime::{
    BlockContext, KeyCache, Overlay, ReceiptEvent, Runtime, State, StateDiff, StateView, Transaction,
    TransactionChecks as _, TxError,
};
use tokio::sync::broadcast;

use crate::{
    block::{BlockParts, FailedTransaction, GenesisAccount, GenesisSpec, StoredBlock, StoredReceipt, envelope},
    index::StreamIndex,
    metrics::Metrics,
    root::Leaves,
    storage::{PendingTransaction, Storage, StorageError},
};

/// Most transactions waiting in the mempool. At the runtime's ~tens of thousands of tx/s this is
/// several seconds of work; beyond it `sendTransaction` answers -32002 so clients back off
/// instead of the node growing without bound.
pub const MEMPOOL_MAX: usize = 50_000;

/// Most transactions one signer may have waiting in the mempool. Its nonces must follow one
/// another, so more than this cannot be included in the next few blocks anyway; beyond it
/// admission answers [`Refusal::TooManyPending`].
pub const PENDING_PER_SIGNER_MAX: usize = 1_000;

/// Most user transactions in one block. Bounds the time the chain lock is held (and the size of
/// one redb write) to well under a block interval; the rest waits for the next block.
pub const MAX_TXS_PER_BLOCK: usize = 5_000;

/// Most blocks one `paystreams_devMine` call may produce, so a single request cannot stall the node.
pub const DEV_MINE_MAX: u32 = 1_000;

/// Most streams or vaults one list call returns.
pub const LIST_MAX: usize = 10_000;

/// Most blocks one [`Chain::lez_block_range`] call returns (LEZ's `getBlockRange` has no bound of
/// its own; this one keeps a reply within the response size limit).
pub const LEZ_BLOCK_RANGE_MAX: u64 = 1_000;

/// Capacity of the committed-block broadcast; a subscriber further behind skips blocks.
const BROADCAST_CAPACITY: usize = 1_024;

/// Why admission refused a transaction that passed the stateless checks: against the committed
/// state and the mempool, it cannot succeed. Codes 1101-1105 (the runtime's refusals are
/// 1001-1099); nothing of a refused transaction is kept.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum Refusal {
    #[error(
        "nonce {given} of signer {signer} is stale: the account's next nonce is {next}; re-sign with current nonces \
         (getAccountsNonces)"
    )]
    StaleNonce { signer: AccountId, given: u128, next: u128 },
    #[error(
        "nonce {given} of signer {signer} is already used by a pending transaction: the account's next nonce is \
         {next}; re-sign with nonce {next}, or wait for the pending one's receipt"
    )]
    NoncePending { signer: AccountId, given: u128, next: u128 },
    #[error(
        "nonce {given} of signer {signer} leaves a gap: the account's next nonce is {next} (current nonce plus its \
         pending transactions); send the missing nonces first, or re-sign with nonce {next}"
    )]
    NonceGap { signer: AccountId, given: u128, next: u128 },
    #[error(
        "signer {signer} already has {pending} transactions pending, the most one signer may have; wait for their \
         receipts, then send more"
    )]
    TooManyPending { signer: AccountId, pending: usize },
    #[error(
        "sender {sender} cannot cover a transfer of {amount}: its balance is {balance}, of which {pending} is already \
         moved by its pending transfers; lower the amount, or fund the sender first"
    )]
    InsufficientBalance { sender: AccountId, amount: u128, balance: u128, pending: u128 },
}

impl Refusal {
    /// Every code [`Refusal::code`] gives.
    pub const CODES: std::ops::RangeInclusive<u32> = 1101..=1105;

    /// The code in the JSON-RPC error's `data`.
    #[must_use]
    pub const fn code(&self) -> u32 {
        match self {
            Self::StaleNonce { .. } => 1101,
            Self::NoncePending { .. } => 1102,
            Self::NonceGap { .. } => 1103,
            Self::TooManyPending { .. } => 1104,
            Self::InsufficientBalance { .. } => 1105,
        }
    }

    /// The name in the JSON-RPC error's `data`.
    #[must_use]
    pub const fn name(&self) -> &'static str {
        match self {
            Self::StaleNonce { .. } => "StaleNonce",
            Self::NoncePending { .. } => "NoncePending",
            Self::NonceGap { .. } => "NonceGap",
            Self::TooManyPending { .. } => "TooManyPending",
            Self::InsufficientBalance { .. } => "InsufficientBalance",
        }
    }
}

/// Why the node refused a request or failed to produce a block.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("transaction rejected: {0}")]
    Rejected(TxError),
    /// Refused at admission: cannot succeed against the committed state and the mempool.
    #[error("transaction rejected: {0}")]
    Refused(Refusal),
    #[error("transaction {0} was already submitted")]
    Duplicate(HexHash),
    #[error("the mempool is full ({MEMPOOL_MAX} transactions); retry in a few blocks")]
    MempoolFull,
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error("block production failed: {0}")]
    Production(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("block with id {0} not found")]
    BlockNotFound(u64),
    /// The data dir cannot be opened with the given settings (another LEZ release, another
    /// sequencer key); the message says what to do.
    #[error("{0}")]
    DataDir(String),
}

/// How a chain is created, or checked when it is reopened.
#[derive(Clone, Debug)]
pub struct ChainConfig {
    /// The LEZ release whose builtin ids the chain runs (fixed at genesis).
    pub release: LezRelease,
    /// The key that signs every block (fixed at genesis).
    pub sequencer: SecretKey,
    /// Dev accounts funded at genesis (first start only).
    pub dev_accounts: u32,
    pub dev_balance: u128,
}

impl ChainConfig {
    /// The default release, a fresh sequencer key, and `dev_accounts` accounts of `dev_balance`.
    #[must_use]
    pub fn dev(dev_accounts: u32, dev_balance: u128) -> Self {
        Self { release: LezRelease::DEFAULT, sequencer: SecretKey::generate(), dev_accounts, dev_balance }
    }
}

/// A block as it was committed, with its payment-streams events, for subscribers.
#[derive(Clone, Debug)]
pub struct CommittedBlock {
    pub info: BlockInfo,
    pub events: Vec<EventNotification>,
}

/// Everything guarded by the chain lock.
struct Inner {
    state: State,
    /// The state-root leaves of `state`, so a block hashes only the accounts it changed.
    leaves: Leaves,
    head: Arc<StoredBlock>,
    time_offset_ms: u64,
    index: StreamIndex,
}

/// Transactions admitted but not yet committed. A hash stays in `pending` until its block is
/// committed, so a resubmission during block production is still seen as a duplicate.
#[derive(Default)]
struct Mempool {
    queue: VecDeque<[u8; 32]>,
    /// Each pending transaction with its admission number.
    pending: HashMap<[u8; 32], (Transaction, u64)>,
    /// What the pending transactions hold per account: signers' nonces, senders' transfers.
    accounts: HashMap<AccountId, PendingOfAccount>,
    /// The admission number of the next admitted transaction (the durable mempool's order).
    next_seq: u64,
    /// Admitted transactions not yet handed to storage, in admission order.
    unsaved: Vec<([u8; 32], PendingTransaction)>,
}

/// The durable side of the mempool, one writer at a time (group commit): a submitter whose
/// transaction is not yet written becomes the writer when no write is under way and writes
/// every admitted transaction not yet written, its own and those admitted meanwhile, in one
/// storage commit, without holding this state's lock; the others wait on [`Chain::saved`] and
/// are all woken when a write ends, so a submitter that write carried returns at once instead
/// of queueing behind later writes.
#[derive(Default)]
struct Saving {
    /// Every transaction admitted with a lower number has been written, committed in a block,
    /// or had its write fail (recorded in `failed`).
    below: u64,
    /// Admission numbers whose write failed, with the error; each is taken by its submitter.
    failed: HashMap<u64, String>,
    /// A submitter is writing (it has released the lock for the write).
    writing: bool,
}

/// A submitter's turn to write the mempool, taken by setting [`Saving::writing`]. Dropping it
/// ends the write however the writer leaves (a panic, or a blocking task dropped unrun
/// included) and wakes every waiting submitter, blocking and async alike.
struct WriteTurn<C: std::ops::Deref<Target = Chain>> {
    chain: C,
}

impl<C: std::ops::Deref<Target = Chain>> WriteTurn<C> {
    /// Writes every admitted transaction not yet written in one storage commit, then ends the
    /// turn.
    fn write(self) {
        let chain = &*self.chain;
        let (entries, below) = {
            let mut mempool = lock(&chain.mempool);
            let unsaved = std::mem::take(&mut mempool.unsaved);
            // Those no longer pending are in a committed block: durable with it.
            let entries: Vec<([u8; 32], PendingTransaction)> =
                unsaved.into_iter().filter(|(hash, _)| mempool.pending.contains_key(hash)).collect();
            (entries, mempool.next_seq)
        };
        let failure = if entries.is_empty() { None } else { chain.storage.add_pending(&entries).err() };
        if let Some(e) = &failure {
            tracing::error!(error = %e, count = entries.len(), "writing accepted transactions failed; they are taken out of the mempool");
            chain.forget(&entries);
        }
        let mut saving = lock(&chain.saving);
        if let Some(e) = failure {
            let detail = e.to_string();
            for (_, entry) in &entries {
                saving.failed.insert(entry.seq, detail.clone());
            }
        }
        saving.below = saving.below.max(below);
    }
}

impl<C: std::ops::Deref<Target = Chain>> Drop for WriteTurn<C> {
    fn drop(&mut self) {
        let below = {
            let mut saving = lock(&self.chain.saving);
            saving.writing = false;
            saving.below
        };
        self.chain.saved.notify_all();
        self.chain.saved_below.send_replace(below);
    }
}

/// What the pending transactions hold of one account.
#[derive(Default)]
struct PendingOfAccount {
    /// Nonces of its pending transactions as a signer.
    nonces: BTreeSet<u128>,
    /// Sum of the authenticated transfers its pending transactions send from it.
    outgoing: u128,
}

impl PendingOfAccount {
    /// The nonce a new transaction of this signer must carry, given its committed nonce.
    fn next_nonce(&self, committed: u128) -> u128 {
        self.nonces.last().map_or(committed, |last| last.saturating_add(1).max(committed))
    }
}

impl Mempool {
    /// Records what a newly pending transaction holds.
    fn hold(&mut self, tx: &Transaction, transfer: Option<(AccountId, u128)>) {
        for (signer, nonce) in tx.signer_ids().into_iter().zip(&tx.message.nonces) {
            self.accounts.entry(signer).or_default().nonces.insert(*nonce);
        }
        if let Some((sender, amount)) = transfer {
            let entry = self.accounts.entry(sender).or_default();
            entry.outgoing = entry.outgoing.saturating_add(amount);
        }
    }

    /// Releases what a transaction no longer pending held.
    fn release(&mut self, tx: &Transaction, transfer: Option<(AccountId, u128)>) {
        let mut touched: Vec<AccountId> = Vec::new();
        for (signer, nonce) in tx.signer_ids().into_iter().zip(&tx.message.nonces) {
            if let Some(entry) = self.accounts.get_mut(&signer) {
                entry.nonces.remove(nonce);
                touched.push(signer);
            }
        }
        if let Some((sender, amount)) = transfer
            && let Some(entry) = self.accounts.get_mut(&sender)
        {
            entry.outgoing = entry.outgoing.saturating_sub(amount);
            touched.push(sender);
        }
        for id in touched {
            if self.accounts.get(&id).is_some_and(|e| e.nonces.is_empty() && e.outgoing == 0) {
                self.accounts.remove(&id);
            }
        }
    }
}

/// Most blocks executed and not yet applied, the one being written included: the next block
/// executes while the previous one is written, and waits for the one before that.
const PIPELINE_DEPTH: usize = 2;

/// A block executed and sealed, not yet written and applied.
struct Executed {
    /// The pipeline's epoch when it executed: a failed write since discards it.
    epoch: u64,
    block: Arc<StoredBlock>,
    receipts: Vec<StoredReceipt>,
    failed_txs: Vec<FailedTransaction>,
    /// Its changes to the state after the block before it.
    diff: StateDiff,
    /// The state-root leaves once it is applied.
    leaves: Leaves,
    added: StreamIndex,
    /// Its transactions, in order (to release from the mempool, or to requeue).
    hashes: Vec<[u8; 32]>,
    failures: Vec<u32>,
    time_offset_ms: u64,
    /// One past the highest admission number among its transactions (`None` without any).
    pending_below: Option<u64>,
    /// Where a waiting [`Chain::produce_block`] learns the outcome.
    reply: Mutex<Option<std::sync::mpsc::Sender<Outcome>>>,
}

impl Executed {
    fn reply(&self, outcome: Outcome) {
        if let Some(reply) = lock(&self.reply).take() {
            // A waiter that went away is not an error.
            let _ = reply.send(outcome);
        }
    }
}

/// A written and applied block, or why it was not.
type Outcome = Result<Arc<CommittedBlock>, String>;

/// A batch transaction after the parallel checks: the transaction, its hash, and whether its
/// duplicate check (against the stored receipts) is done.
type Checked = Result<(Transaction, [u8; 32], bool), NodeError>;

/// Blocks between execution and application.
#[derive(Default)]
struct Pipeline {
    /// Executed blocks not yet applied, oldest first; the first is being written.
    unapplied: VecDeque<Arc<Executed>>,
    /// Blocks discarded by a failed write whose transactions are not yet back in the queue.
    discarded: Vec<Arc<Executed>>,
    /// Bumped by every failed write.
    epoch: u64,
    /// The committer thread's queue, while it runs.
    committer: Option<std::sync::mpsc::Sender<Arc<Executed>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// What [`Chain::produce`] did with the block.
enum Produced {
    Committed(Arc<CommittedBlock>),
    /// Handed to the committer; the outcome arrives here when asked for.
    Handed(std::sync::mpsc::Receiver<Outcome>),
}

/// The chain.
pub struct Chain {
    runtime: Runtime,
    release: LezRelease,
    sequencer: SecretKey,
    program_id: ProgramId,
    storage: Arc<dyn Storage>,
    genesis: GenesisSpec,
    dev_keys: Vec<SecretKey>,
    /// Read by admission, the RPC's reads and a block's execution alike; written only by the
    /// block producer when it applies a committed block.
    inner: RwLock<Inner>,
    mempool: Mutex<Mempool>,
    /// Never held during a storage write, nor taken while `inner` or `mempool` is held.
    saving: Mutex<Saving>,
    /// Signalled when a mempool write ends, for blocking submitters.
    saved: Condvar,
    /// [`Saving::below`] after each mempool write, for async submitters.
    saved_below: tokio::sync::watch::Sender<u64>,
    /// Held by the one block producer at a time, across execution and the durable commit
    /// (during which `inner` is released). Taken before `inner`.
    producing: Mutex<()>,
    /// Executed blocks on their way to storage. Lock order: `producing`, `inner`, `pipeline`,
    /// `mempool`.
    pipeline: Mutex<Pipeline>,
    /// Signalled when a block is applied or discarded.
    applied: Condvar,
    /// Set while a block executes (holding `inner` for reading for that long): the committer
    /// then waits for the lock without queueing for it, so admission is not held up behind it.
    executing: std::sync::atomic::AtomicBool,
    blocks: broadcast::Sender<Arc<CommittedBlock>>,
    /// Signer keys parsed at admission, kept for the same signers' next transactions.
    signer_keys: KeyCache,
    verifiers: Verifiers,
    pub(crate) metrics: Metrics,
}

/// Bounds how many of the batch submissions' checking threads run at once to the machine's
/// cores. Each batch call checks on a thread per core, so unbounded, eight calls ran sixteen
/// checking threads, and the block producer and writer got one thread's share of the cores
/// among them: blocks fell behind admission and the mempool's queue grew. Bounded, they keep a
/// fair share while batches are checked. A single submission checks its one transaction on the
/// thread its call already runs on, without a place: waiting for one there cost that
/// latency-bound path throughput and CPU (see `docs/benchmarks.md`).
struct Verifiers {
    running: Mutex<usize>,
    freed: Condvar,
    max: usize,
}

impl Verifiers {
    fn new() -> Self {
        Self::at_most(std::thread::available_parallelism().map_or(1, std::num::NonZero::get))
    }

    fn at_most(max: usize) -> Self {
        Self { running: Mutex::new(0), freed: Condvar::new(), max: max.max(1) }
    }

    /// Runs `checks` once fewer than `max` others run (blocking the calling thread meanwhile).
    fn run<T>(&self, checks: impl FnOnce() -> T) -> T {
        /// Frees the place however `checks` ends, a panic included.
        struct Release<'a>(&'a Verifiers);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                let mut running = lock(&self.0.running);
                *running = running.saturating_sub(1);
                drop(running);
                self.0.freed.notify_one();
            }
        }
        let mut running = lock(&self.running);
        while *running >= self.max {
            running = self.freed.wait(running).unwrap_or_else(PoisonError::into_inner);
        }
        *running = running.saturating_add(1);
        drop(running);
        let _release = Release(self);
        checks()
    }
}

/// How many transactions of a batch one checking thread takes per turn of [`Verifiers::run`].
const CHECKS_PER_TURN: usize = 32;

/// How many signer keys admission keeps parsed (~100 bytes each): a key lifts to a curve point
/// with a field square root, ~10% of verifying a signature, and the same users sign
/// transaction after transaction.
const SIGNER_KEYS_KEPT: usize = 65_536;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

/// The genesis state of a spec, as LEZ builds it, then its clock invocation: the dev accounts
/// funded directly (owned by authenticated transfer; LEZ funds through its faucet and vault
/// programs, which this implementation does not run), the clock accounts created at
/// `{block_id: 0, timestamp: 0}`, then the clock program run with timestamp 0, leaving
/// CLOCK_01 = `{1, 0}`.
///
/// # Errors
/// [`NodeError::Production`] when the clock invocation fails (it cannot on a fresh state).
pub fn genesis_state(spec: &GenesisSpec, runtime: &Runtime) -> Result<State, NodeError> {
    let funded: Vec<(AccountId, u128)> = spec
        .accounts
        .iter()
        .filter_map(|a| SecretKey::from_bytes(&a.secret_key).ok().map(|k| (k.account_id(), a.balance)))
        .collect();
    let mut state = paystreams_runtime::genesis_with(runtime.builtin_ids(), &funded, 0);
    let ctx = BlockContext { block_id: GENESIS_BLOCK_ID, timestamp_ms: 0 };
    let clock = runtime
        .clock_update(&state, &ctx)
        .map_err(|e| NodeError::Production(format!("genesis clock invocation failed: {e}")))?;
    state.apply_diff(&clock);
    Ok(state)
}

/// What block 1 is made of: LEZ's genesis shape (id 1, zero parent, timestamp 0), no user
/// transactions (its body is the clock invocation alone), the genesis state's root.
#[must_use]
pub fn genesis_parts(state: &State) -> BlockParts {
    BlockParts {
        block_id: GENESIS_BLOCK_ID,
        prev_block_hash: [0; 32],
        timestamp_ms: 0,
        transactions: vec![],
        failed: vec![],
        state_root: state.state_root(),
        time_offset_ms: 0,
    }
}

/// The block view the RPC serves.
#[must_use]
pub fn block_info(block: &StoredBlock) -> BlockInfo {
    block_info_listing(block, block.transactions.iter().map(|tx| HexHash(tx.hash())).collect())
}

/// [`block_info`] with the hashes of the block's transactions already known.
fn block_info_listing(block: &StoredBlock, transactions: Vec<HexHash>) -> BlockInfo {
    BlockInfo {
        header: BlockHeader {
            height: block.height(),
            parent_hash: HexHash(block.parent_hash()),
            timestamp_ms: block.timestamp_ms(),
            state_root: HexHash(block.state_root),
            transactions_root: HexHash(block.transactions_root),
            hash: HexHash(block.hash()),
        },
        transactions,
    }
}

/// Decodes a transaction sent as base64 of LEZ's `LeeTransaction` envelope (tag 0 `Public`, then
/// the Borsh public transaction), refusing oversized text before decoding it, and runs the
/// stateless checks (structure and every signature, each key lifted once:
/// `TransactionChecks::decode_and_verify`). Envelopes of other kinds are refused by name
/// (`UnsupportedTransaction`). Returns the transaction and its hash.
fn checked_base64_transaction(encoded: &str, keys: &KeyCache) -> Result<(Transaction, [u8; 32]), NodeError> {
    use base64::Engine as _;
    // Base64 is 4 characters per 3 bytes; refuse longer text before decoding it.
    let max_chars = paystreams_runtime::MAX_TRANSACTION_BYTES.saturating_div(3).saturating_add(1).saturating_mul(4);
    if encoded.len() > max_chars {
        return Err(NodeError::Rejected(TxError::TransactionTooLarge {
            size: encoded.len().saturating_div(4).saturating_mul(3),
            max: paystreams_runtime::MAX_TRANSACTION_BYTES,
        }));
    }
    let bytes = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).map_err(|e| {
        NodeError::Rejected(TxError::MalformedTransaction {
            detail: format!("not base64 ({e}); send base64 of the LEZ transaction envelope bytes"),
        })
    })?;
    let tx = Transaction::decode_and_verify(&bytes, keys).map_err(NodeError::Rejected)?;
    // Borsh gives a value one encoding and decoding refused trailing bytes, so the bytes after
    // the envelope's tag are the ones `Transaction::hash` would encode again.
    let hash = paystreams_lez_core::sha256(&[bytes.get(1..).unwrap_or_default()]);
    debug_assert_eq!(hash, tx.hash(), "the hash of the received bytes is the transaction's");
    Ok((tx, hash))
}

/// Refuses to reopen a chain under another release or sequencer key, saying what to do.
fn check_reopen(genesis: &GenesisSpec, config: &ChainConfig) -> Result<(), NodeError> {
    if genesis.release != config.release {
        return Err(NodeError::DataDir(format!(
            "this chain was created for LEZ release {stored} and cannot run under {asked}: its program ids and \
             addresses are {stored}'s; pass --lez-release {stored}, or move the data dir away (or pass --ephemeral) \
             to start a new chain under {asked}",
            stored = genesis.release,
            asked = config.release,
        )));
    }
    if genesis.sequencer != config.sequencer.public_key() {
        return Err(NodeError::DataDir(format!(
            "the sequencer key given is not the one this chain's blocks are signed with ({}); restore the data \
             dir's sequencer.key, or move the data dir away (or pass --ephemeral) to start a new chain",
            genesis.sequencer
        )));
    }
    Ok(())
}

impl Chain {
    /// Opens the chain in `storage`: resumes from its head, or writes a new genesis (block 1)
    /// with `config.dev_accounts` fresh keys of `config.dev_balance` each, signed by
    /// `config.sequencer`, under `config.release`'s builtin ids. A chain whose head is its
    /// genesis gets block 2 at once, so no user transaction runs at the genesis time (0).
    ///
    /// # Errors
    /// Storage failures, a stored state that does not match its head block's state root, or a
    /// stored chain of another release or sequencer key ([`NodeError::DataDir`]).
    pub fn open(storage: Arc<dyn Storage>, config: &ChainConfig) -> Result<Self, NodeError> {
        let runtime = Runtime::for_release(config.release);
        let program_id = payment_streams_program_id();
        let (genesis, state, leaves, head, index) = if let Some(genesis) = storage.genesis()? {
            check_reopen(&genesis, config)?;
            let height = storage.load_head()?.ok_or_else(|| StorageError::Corrupt {
                what: "head".into(),
                detail: "genesis present but no head".into(),
            })?;
            let head = storage.block(height)?.ok_or_else(|| StorageError::Corrupt {
                what: format!("block {height}"),
                detail: "head block missing".into(),
            })?;
            let (state, leaves, index) = Self::load(storage.as_ref(), &head, &program_id)?;
            (genesis, state, leaves, head, index)
        } else {
            let accounts = (0..config.dev_accounts)
                .map(|_| GenesisAccount { secret_key: SecretKey::generate().to_bytes(), balance: config.dev_balance })
                .collect();
            let genesis = GenesisSpec { release: config.release, sequencer: config.sequencer.public_key(), accounts };
            let state = genesis_state(&genesis, &runtime)?;
            let head = StoredBlock::seal(genesis_parts(&state), &config.sequencer, runtime.builtin_ids().clock);
            storage.init(&genesis, &head, &state)?;
            let index = StreamIndex::rebuild(&state, &program_id);
            storage.save_stream_index(&head, &index)?;
            let leaves = Leaves::of(&state);
            (genesis, state, leaves, head, index)
        };
        let started = Instant::now();
        let indexed = storage.index_missing_events()?;
        if indexed > 0 {
            tracing::info!(
                blocks = indexed,
                ms = started.elapsed().as_millis(),
                "event index caught up from stored blocks"
            );
        }
        let dev_keys = genesis.accounts.iter().filter_map(|a| SecretKey::from_bytes(&a.secret_key).ok()).collect();
        let metrics = Metrics::default();
        metrics.set_height(head.height());
        let (blocks, _) = broadcast::channel(BROADCAST_CAPACITY);
        let at_genesis = head.height() == GENESIS_BLOCK_ID;
        let chain = Self {
            runtime,
            release: config.release,
            sequencer: config.sequencer.clone(),
            program_id,
            storage,
            dev_keys,
            inner: RwLock::new(Inner {
                state,
                leaves,
                time_offset_ms: head.time_offset_ms,
                head: Arc::new(head),
                index,
            }),
            genesis,
            mempool: Mutex::new(Mempool::default()),
            saving: Mutex::new(Saving::default()),
            saved: Condvar::new(),
            saved_below: tokio::sync::watch::Sender::new(0),
            producing: Mutex::new(()),
            pipeline: Mutex::new(Pipeline::default()),
            applied: Condvar::new(),
            executing: std::sync::atomic::AtomicBool::new(false),
            blocks,
            signer_keys: KeyCache::new(SIGNER_KEYS_KEPT),
            verifiers: Verifiers::new(),
            metrics,
        };
        if at_genesis {
            chain.produce_block(0, 0)?;
        }
        chain.restore_pending()?;
        Ok(chain)
    }

    /// Re-admits the transactions the storage kept pending (admitted before the node stopped,
    /// not yet in a block), in their admission order, through the checks of a new submission
    /// (signatures, duplicates, nonces and balances against the committed state and the ones
    /// re-admitted before them). Those that no longer pass are dropped from storage and logged.
    /// New admissions are numbered after every stored one.
    fn restore_pending(&self) -> Result<(), NodeError> {
        // New admissions are numbered from where the durable mempool's numbers end, so the
        // storage writes them (it skips numbers of committed blocks).
        let floor = self.storage.pending_seq_floor()?;
        {
            let mut mempool = lock(&self.mempool);
            mempool.next_seq = mempool.next_seq.max(floor);
        }
        {
            let mut saving = lock(&self.saving);
            saving.below = saving.below.max(floor);
        }
        let stored = self.storage.pending_transactions()?;
        if stored.is_empty() {
            return Ok(());
        }
        let total = stored.len();
        let next = stored.iter().map(|entry| entry.seq.saturating_add(1)).max().unwrap_or(0).max(floor);
        let mut dropped = Vec::new();
        for PendingTransaction { seq, transaction } in stored {
            let hash = transaction.hash();
            if let Err(e) = Self::check(transaction).and_then(|tx| self.admit(tx, Some(seq))) {
                tracing::warn!(tx = %HexHash(hash), reason = %e, "a pending transaction no longer passes admission; dropped");
                dropped.push(hash);
            }
        }
        {
            let mut mempool = lock(&self.mempool);
            mempool.next_seq = mempool.next_seq.max(next);
        }
        lock(&self.saving).below = next;
        if !dropped.is_empty() {
            self.storage.remove_pending(&dropped)?;
        }
        tracing::info!(
            restored = total.saturating_sub(dropped.len()),
            dropped = dropped.len(),
            "pending transactions restored to the mempool"
        );
        Ok(())
    }

    /// The committed state, checked against the head block's state root, and the stream index:
    /// the stored one when it is current at `head` (read while the accounts load), else rebuilt
    /// from the state and stored for the next start.
    fn load(
        storage: &dyn Storage,
        head: &StoredBlock,
        program_id: &ProgramId,
    ) -> Result<(State, Leaves, StreamIndex), NodeError> {
        let height = head.height();
        let started = Instant::now();
        // The stored index is read while the accounts load (and their leaves are hashed).
        let (loaded, stored, index_read) = std::thread::scope(|scope| {
            let stored_index = scope.spawn(|| {
                let started = Instant::now();
                let index = storage.stream_index(head);
                (index, started.elapsed())
            });
            let loaded = storage.load_state_with_leaves();
            let (stored, index_read) = stored_index.join().unwrap_or_else(|_| (Ok(None), Duration::ZERO));
            (loaded, stored, index_read)
        });
        // The root over the loaded leaves, hashed by the storage while it built the state.
        let (state, leaves, root) = loaded?;
        let leaves = Leaves::loaded(&state, leaves);
        let load_state = started.elapsed();
        if root != head.state_root {
            return Err(StorageError::Corrupt {
                what: "accounts".into(),
                detail: format!("state root does not match block {height}'s header"),
            }
            .into());
        }
        let stored = stored.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "stored stream index unreadable; rebuilding it");
            None
        });
        let rebuilt_at = Instant::now();
        let (index, rebuilt) = match stored {
            Some(index) => (index, false),
            None => {
                let index = StreamIndex::rebuild(&state, program_id);
                storage.save_stream_index(head, &index)?;
                (index, true)
            }
        };
        tracing::info!(
            height,
            accounts = state.len(),
            load_and_root_ms = load_state.as_millis(),
            index_read_ms = index_read.as_millis(),
            index_rebuilt = rebuilt,
            index_rebuild_and_save_ms = rebuilt_at.elapsed().as_millis(),
            total_ms = started.elapsed().as_millis(),
            "chain state loaded"
        );
        Ok((state, leaves, index))
    }

    #[must_use]
    pub fn dev_keys(&self) -> &[SecretKey] {
        &self.dev_keys
    }

    #[must_use]
    pub fn genesis(&self) -> &GenesisSpec {
        &self.genesis
    }

    #[must_use]
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// New committed blocks.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<CommittedBlock>> {
        self.blocks.subscribe()
    }

    #[must_use]
    pub fn mempool_len(&self) -> usize {
        lock(&self.mempool).queue.len()
    }

    /// Stateless checks, duplicate and capacity checks, then admission to the mempool, durable
    /// (written to storage) when this returns.
    ///
    /// # Errors
    /// [`NodeError::Rejected`] naming the failed check, [`NodeError::Duplicate`],
    /// [`NodeError::MempoolFull`], or a storage failure.
    pub fn submit(&self, tx: Transaction) -> Result<[u8; 32], NodeError> {
        let tx = Self::check(tx)?;
        let hash = tx.hash();
        self.submit_checked(tx, hash)
    }

    /// [`Chain::submit`] of a transaction that passed [`Chain::check`], with its hash.
    fn submit_checked(&self, tx: Transaction, hash: [u8; 32]) -> Result<[u8; 32], NodeError> {
        let (hash, seq) = self.admit_hashed(tx, hash, None)?;
        self.save(&[seq]).pop().unwrap_or(Ok(()))?;
        Ok(hash)
    }

    /// Writes the admitted transactions numbered `seqs` to storage, together with every other
    /// one admitted and not yet written (one commit), unless a write since their admission
    /// already carried them. One result per number, in order: an error when the write that
    /// carried it failed. A transaction whose write failed is taken out of the mempool again
    /// unless a block being produced has already taken it.
    fn save(&self, seqs: &[u64]) -> Vec<Result<(), NodeError>> {
        let Some(last) = seqs.iter().max() else {
            return vec![];
        };
        let mut saving = lock(&self.saving);
        while saving.below <= *last {
            if saving.writing {
                // Another submitter's write is under way; it may carry these transactions.
                saving = self.saved.wait(saving).unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            saving.writing = true;
            drop(saving);
            WriteTurn { chain: self }.write();
            saving = lock(&self.saving);
        }
        seqs.iter().map(|seq| Self::saved_outcome(&mut saving, *seq)).collect()
    }

    /// The outcome of the write that carried admission number `seq` (known to be behind
    /// [`Saving::below`]).
    fn saved_outcome(saving: &mut Saving, seq: u64) -> Result<(), NodeError> {
        match saving.failed.remove(&seq) {
            Some(detail) => Err(NodeError::Storage(StorageError::PendingNotSaved { detail })),
            None => Ok(()),
        }
    }

    /// Writes the admitted transaction numbered `seq` now, with everything admitted meanwhile,
    /// when no write is under way; otherwise returns at once, leaving it to
    /// [`Chain::durable`]. Called by a submitter already on a blocking thread, so the common
    /// case costs no further hand-off.
    pub fn write_if_idle(&self, seq: u64) {
        let mut saving = lock(&self.saving);
        if saving.below > seq || std::mem::replace(&mut saving.writing, true) {
            return;
        }
        drop(saving);
        WriteTurn { chain: self }.write();
    }

    /// [`Chain::save`] for one admitted transaction, waiting without holding a thread: the
    /// caller whose transaction is not yet written, with no write under way, writes it and
    /// everything admitted meanwhile on the blocking pool; the others wait for that write.
    ///
    /// # Errors
    /// [`StorageError::PendingNotSaved`]: the write that carried it failed (the transaction is
    /// then no longer pending), or no write could run (the node is shutting down).
    pub async fn durable(self: &Arc<Self>, seq: u64) -> Result<(), NodeError> {
        let mut written = self.saved_below.subscribe();
        loop {
            let write = {
                let mut saving = lock(&self.saving);
                if saving.below > seq {
                    return Self::saved_outcome(&mut saving, seq);
                }
                !std::mem::replace(&mut saving.writing, true)
            };
            if write {
                let turn = WriteTurn { chain: Arc::clone(self) };
                tokio::task::spawn_blocking(move || turn.write())
                    .await
                    .map_err(|e| StorageError::PendingNotSaved { detail: format!("the write did not run: {e}") })?;
            } else if written.changed().await.is_err() {
                return Err(StorageError::PendingNotSaved { detail: "the node is shutting down".into() }.into());
            }
        }
    }

    /// Takes transactions whose write failed out of the mempool, those still queued (a block
    /// being produced may hold the others).
    fn forget(&self, entries: &[([u8; 32], PendingTransaction)]) {
        let hashes: HashSet<[u8; 32]> = entries.iter().map(|(hash, _)| *hash).collect();
        let mut mempool = lock(&self.mempool);
        let mut removed = Vec::new();
        mempool.queue.retain(|hash| {
            let keep = !hashes.contains(hash);
            if !keep {
                removed.push(*hash);
            }
            keep
        });
        for hash in removed {
            if let Some((tx, _)) = mempool.pending.remove(&hash) {
                let transfer = self.transfer_of(&tx);
                mempool.release(&tx, transfer);
            }
        }
        self.metrics.set_mempool(mempool.queue.len());
    }

    /// The stateless checks: structure and every signature. Needs no lock, so callers run it in
    /// parallel.
    fn check(tx: Transaction) -> Result<Transaction, NodeError> {
        tx.check_structure().map_err(NodeError::Rejected)?;
        tx.verify_signatures().map_err(NodeError::Rejected)?;
        Ok(tx)
    }

    /// The sender and amount of an authenticated transfer (`Transfer { amount }` on
    /// `[sender, recipient]`), `None` for any other transaction.
    fn transfer_of(&self, tx: &Transaction) -> Option<(AccountId, u128)> {
        if tx.message.program_id != self.runtime.builtin_ids().authenticated_transfer {
            return None;
        }
        match (from_words::<TransferInstruction>(&tx.message.instruction_data), tx.message.account_ids.as_slice()) {
            (Ok(TransferInstruction::Transfer { amount }), [sender, _]) => Some((*sender, amount)),
            _ => None,
        }
    }

    /// Duplicate and capacity checks, the checks against the committed state and the mempool
    /// (each signer's nonce is its next one, its pending count within
    /// [`PENDING_PER_SIGNER_MAX`], a transfer's sender covers it), then admission of a checked
    /// transaction. Holds the chain lock while it reads the state and admits, so a block
    /// committed meanwhile cannot make the view inconsistent (lock order: chain, then mempool).
    ///
    /// A new transaction (`restored` is `None`) gets the next admission number and waits in
    /// `unsaved` for [`Chain::save`]; a restored one keeps its stored number and is not written
    /// again. Returns the hash and the admission number.
    fn admit(&self, tx: Transaction, restored: Option<u64>) -> Result<([u8; 32], u64), NodeError> {
        let hash = tx.hash();
        self.admit_hashed(tx, hash, restored)
    }

    /// [`Chain::admit`] of a transaction whose hash the caller knows.
    fn admit_hashed(
        &self,
        tx: Transaction,
        hash: [u8; 32],
        restored: Option<u64>,
    ) -> Result<([u8; 32], u64), NodeError> {
        if self.storage.receipt(&hash)?.is_some() {
            return Err(NodeError::Duplicate(HexHash(hash)));
        }
        self.admit_new(tx, hash, restored)
    }

    /// [`Chain::admit`] of a transaction whose hash has no receipt (checked by the caller).
    fn admit_new(&self, tx: Transaction, hash: [u8; 32], restored: Option<u64>) -> Result<([u8; 32], u64), NodeError> {
        let transfer = self.transfer_of(&tx);
        let inner = read(&self.inner);
        let mut mempool = lock(&self.mempool);
        if mempool.pending.contains_key(&hash) {
            return Err(NodeError::Duplicate(HexHash(hash)));
        }
        if mempool.queue.len() >= MEMPOOL_MAX {
            return Err(NodeError::MempoolFull);
        }
        for (signer, given) in tx.signer_ids().into_iter().zip(&tx.message.nonces) {
            let committed = inner.state.account(&signer).nonce;
            let held = mempool.accounts.get(&signer);
            let next = held.map_or(committed, |h| h.next_nonce(committed));
            let pending = held.map_or(0, |h| h.nonces.len());
            let given = *given;
            if given < committed {
                return Err(NodeError::Refused(Refusal::StaleNonce { signer, given, next }));
            }
            if given > next {
                return Err(NodeError::Refused(Refusal::NonceGap { signer, given, next }));
            }
            if held.is_some_and(|h| h.nonces.contains(&given)) {
                return Err(NodeError::Refused(Refusal::NoncePending { signer, given, next }));
            }
            if pending >= PENDING_PER_SIGNER_MAX {
                return Err(NodeError::Refused(Refusal::TooManyPending { signer, pending }));
            }
        }
        if let Some((sender, amount)) = transfer {
            let balance = inner.state.account(&sender).balance;
            let pending = mempool.accounts.get(&sender).map_or(0, |h| h.outgoing);
            if balance.saturating_sub(pending) < amount {
                return Err(NodeError::Refused(Refusal::InsufficientBalance { sender, amount, balance, pending }));
            }
        }
        drop(inner);
        let seq = match restored {
            Some(seq) => {
                mempool.next_seq = mempool.next_seq.max(seq.saturating_add(1));
                seq
            }
            None => {
                let seq = mempool.next_seq;
                mempool.next_seq = seq.saturating_add(1);
                mempool.unsaved.push((hash, PendingTransaction { seq, transaction: tx.clone() }));
                seq
            }
        };
        mempool.hold(&tx, transfer);
        mempool.queue.push_back(hash);
        mempool.pending.insert(hash, (tx, seq));
        self.metrics.set_mempool(mempool.queue.len());
        Ok((hash, seq))
    }

    /// Decodes base64 Borsh, checks and admits, leaving the durable write to
    /// [`Chain::durable`]. Returns the hash and the admission number.
    ///
    /// # Errors
    /// As [`Chain::submit`] before its write, plus undecodable input.
    pub fn admit_encoded(&self, encoded: &str) -> Result<([u8; 32], u64), NodeError> {
        let (tx, hash) = checked_base64_transaction(encoded, &self.signer_keys)?;
        self.admit_hashed(tx, hash, None)
    }

    /// Decodes base64 Borsh and submits.
    ///
    /// # Errors
    /// As [`Chain::submit`], plus undecodable input.
    pub fn submit_encoded(&self, encoded: &str) -> Result<[u8; 32], NodeError> {
        let (tx, hash) = checked_base64_transaction(encoded, &self.signer_keys)?;
        self.submit_checked(tx, hash)
    }

    /// Submits a batch of base64 Borsh transactions: decodes and verifies them on every core in
    /// parallel, then admits the ones that passed in the given order and writes them to storage
    /// in one commit. One result per input, in order; a refusal does not stop the rest. Blocks
    /// the calling thread while verifying and writing.
    pub fn submit_encoded_batch(&self, encoded: &[String]) -> Vec<Result<[u8; 32], NodeError>> {
        let threads =
            std::thread::available_parallelism().map_or(1, std::num::NonZero::get).clamp(1, encoded.len().max(1));
        let per_thread = encoded.len().div_ceil(threads).max(1);
        let checked: Vec<Checked> = std::thread::scope(|scope| {
            let workers: Vec<_> = encoded
                .chunks(per_thread)
                .map(|part| {
                    let handle = scope.spawn(move || {
                        let checked: Vec<Result<(Transaction, [u8; 32]), NodeError>> = part
                            .chunks(CHECKS_PER_TURN)
                            .flat_map(|turn| {
                                self.verifiers.run(|| {
                                    turn.iter()
                                        .map(|text| checked_base64_transaction(text, &self.signer_keys))
                                        .collect::<Vec<_>>()
                                })
                            })
                            .collect();
                        // The duplicate check of the part in one read; should it fail, each
                        // transaction is checked on its own at admission.
                        let hashes: Vec<[u8; 32]> =
                            checked.iter().filter_map(|r| r.as_ref().ok().map(|(_, hash)| *hash)).collect();
                        let mut known = self.storage.receipts_exist(&hashes).ok().map(Vec::into_iter);
                        checked
                            .into_iter()
                            .map(|r| {
                                r.and_then(|(tx, hash)| match known.as_mut().map(|k| k.next().unwrap_or(false)) {
                                    Some(true) => Err(NodeError::Duplicate(HexHash(hash))),
                                    Some(false) => Ok((tx, hash, true)),
                                    None => Ok((tx, hash, false)),
                                })
                            })
                            .collect::<Vec<_>>()
                    });
                    (part.len(), handle)
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|(len, handle)| {
                    handle.join().unwrap_or_else(|_| {
                        (0..len)
                            .map(|_| {
                                Err(NodeError::Production("signature verification worker failed; resubmit".into()))
                            })
                            .collect()
                    })
                })
                .collect()
        });
        let admitted: Vec<Result<([u8; 32], u64), NodeError>> =
            checked
                .into_iter()
                .map(|tx| {
                    tx.and_then(|(tx, hash, checked)| {
                        if checked { self.admit_new(tx, hash, None) } else { self.admit_hashed(tx, hash, None) }
                    })
                })
                .collect();
        let seqs: Vec<u64> = admitted.iter().filter_map(|result| result.as_ref().ok().map(|(_, seq)| *seq)).collect();
        let mut saved = self.save(&seqs).into_iter();
        admitted
            .into_iter()
            .map(|result| result.and_then(|(hash, _)| saved.next().unwrap_or(Ok(())).map(|()| hash)))
            .collect()
    }

    /// True while the transaction is admitted but not committed.
    #[must_use]
    pub fn is_pending(&self, hash: &[u8; 32]) -> bool {
        lock(&self.mempool).pending.contains_key(hash)
    }

    /// Produces one block from the head of the mempool (at most `max_txs` transactions), after
    /// moving the dev clock forward by `advance_ms`. Commits it durably before returning.
    ///
    /// # Errors
    /// Storage failure (the block is then discarded, its transactions, and those of any block
    /// executed on top of it, go back to the mempool in order and the dev clock is not moved)
    /// or a failing clock update.
    ///
    /// The chain lock is only read while the block executes and released while the block is
    /// written, so admission (with its signature checks), the durable mempool's writes and the
    /// RPC's reads go on during both; it is taken for writing only to apply the written block.
    /// Until then the block's transactions stay pending and admission checks against the
    /// previous state plus the mempool that still holds them, which gives the same answers as
    /// after the block. Readers see the block's state, its receipts as included and its
    /// broadcast together, once all of it is applied. With a committer running
    /// ([`Chain::start_committer`]) the block is written by it, after the blocks executed
    /// before it; this call waits for the outcome.
    pub fn produce_block(&self, max_txs: usize, advance_ms: u64) -> Result<Arc<CommittedBlock>, NodeError> {
        match self.produce(max_txs, advance_ms, true)? {
            Produced::Committed(block) => Ok(block),
            Produced::Handed(outcome) => outcome
                .recv()
                .unwrap_or_else(|_| Err("the committer stopped before writing the block".into()))
                .map_err(NodeError::Production),
        }
    }

    /// Executes the next block and hands it to the committer without waiting for its write, so
    /// the next block executes while this one is written. Waits first while a block executed
    /// earlier is still unwritten beyond the one being written ([`PIPELINE_DEPTH`]). Without a
    /// committer it is [`Chain::produce_block`]. A failed write is logged by the committer; its
    /// transactions and those of the blocks executed on top go back to the mempool, in order,
    /// before the next block executes.
    ///
    /// # Errors
    /// As [`Chain::produce_block`] for what fails before the hand-off.
    pub fn produce_block_pipelined(&self, max_txs: usize, advance_ms: u64) -> Result<(), NodeError> {
        self.produce(max_txs, advance_ms, false).map(|_| ())
    }

    /// Starts the committer thread: blocks produced afterwards are written and applied by it,
    /// in order, while the next block executes. It holds the chain weakly and ends with it, or
    /// at [`Chain::stop_committer`].
    pub fn start_committer(self: &Arc<Self>) {
        let (sender, receiver) = std::sync::mpsc::channel::<Arc<Executed>>();
        let chain = Arc::downgrade(self);
        let spawned = std::thread::Builder::new().name("block-committer".into()).spawn(move || {
            while let Ok(executed) = receiver.recv() {
                let Some(chain) = chain.upgrade() else { return };
                let outcome = chain.commit_executed(&executed);
                if let Err(e) = &outcome {
                    tracing::error!(height = executed.block.height(), error = %e, "block not committed");
                }
                executed.reply(outcome.map_err(|e| e.to_string()));
            }
        });
        match spawned {
            Ok(handle) => {
                let mut pipeline = lock(&self.pipeline);
                pipeline.committer = Some(sender);
                pipeline.thread = Some(handle);
            }
            Err(e) => tracing::warn!(error = %e, "cannot start the block committer; blocks are written as produced"),
        }
    }

    /// Waits until every block handed to the committer is written and applied (or discarded),
    /// then stops it. Later blocks are written as they are produced.
    pub fn stop_committer(&self) {
        let thread = {
            let mut pipeline = lock(&self.pipeline);
            pipeline.committer = None;
            pipeline.thread.take()
        };
        if let Some(thread) = thread
            && thread.thread().id() != std::thread::current().id()
        {
            let _ = thread.join();
        }
    }

    /// Execution, then the write inline (no committer) or the hand-off; `wait` returns the
    /// committer's outcome channel instead of waiting for the pipeline depth only.
    fn produce(&self, max_txs: usize, advance_ms: u64, wait: bool) -> Result<Produced, NodeError> {
        let producing = loop {
            let producing = lock(&self.producing);
            let pipeline = lock(&self.pipeline);
            // Written inline, a block must be the only one in flight; handed off, it may
            // execute while the one before it is written.
            let room = if pipeline.committer.is_some() { PIPELINE_DEPTH } else { 1 };
            if pipeline.unapplied.len() < room {
                break producing;
            }
            drop(producing);
            // Woken when the committer applies or discards a block.
            drop(self.applied.wait(pipeline).unwrap_or_else(PoisonError::into_inner));
        };
        let executed = Arc::new(self.execute_block(max_txs, advance_ms)?);
        let mut pipeline = lock(&self.pipeline);
        if executed.epoch != pipeline.epoch {
            // The block it was executed on failed to be written meanwhile: its transactions go
            // back after those of the discarded blocks.
            drop(pipeline);
            self.requeue(&executed.hashes);
            self.requeue_discarded();
            return Err(NodeError::Production(format!(
                "block {} was executed on a block whose write failed; its transactions are back in the mempool",
                executed.block.height()
            )));
        }
        pipeline.unapplied.push_back(Arc::clone(&executed));
        let Some(committer) = pipeline.committer.clone() else {
            return self.commit_inline(&executed, pipeline, producing);
        };
        let (reply, outcome) = std::sync::mpsc::channel();
        if wait {
            *lock(&executed.reply) = Some(reply);
        }
        if committer.send(Arc::clone(&executed)).is_err() {
            // The committer ended: write it here.
            pipeline.committer = None;
            return self.commit_inline(&executed, pipeline, producing);
        }
        drop((pipeline, producing));
        Ok(Produced::Handed(outcome))
    }

    /// Writes `executed` on this thread (no committer, or it ended): the pipeline's lock is
    /// released first, the producer's after the write; a failed write puts the block's
    /// transactions back at the front of the mempool.
    fn commit_inline(
        &self,
        executed: &Arc<Executed>,
        pipeline: MutexGuard<'_, Pipeline>,
        producing: MutexGuard<'_, ()>,
    ) -> Result<Produced, NodeError> {
        drop(pipeline);
        let outcome = self.commit_executed(executed);
        if outcome.is_err() {
            self.requeue_discarded();
        }
        drop(producing);
        outcome.map(Produced::Committed)
    }

    /// Executes the next block on the committed state, or on the block executed before it
    /// while that one is still being written.
    fn execute_block(&self, max_txs: usize, advance_ms: u64) -> Result<Executed, NodeError> {
        /// Clears `executing` however execution ends.
        struct Executing<'a>(&'a std::sync::atomic::AtomicBool);
        impl Drop for Executing<'_> {
            fn drop(&mut self) {
                self.0.store(false, std::sync::atomic::Ordering::Release);
            }
        }
        self.executing.store(true, std::sync::atomic::Ordering::Release);
        let _executing = Executing(&self.executing);
        let inner = read(&self.inner);
        let (epoch, previous, discarded) = {
            let mut pipeline = lock(&self.pipeline);
            // Blocks still unapplied follow the applied head (the committer applies and
            // removes a block under the chain's write lock). Blocks discarded by a failed
            // write go back to the queue first, in the same view: a write failing later
            // changes the epoch, and this block is then discarded too.
            (pipeline.epoch, pipeline.unapplied.back().cloned(), std::mem::take(&mut pipeline.discarded))
        };
        for block in discarded.iter().rev() {
            self.requeue(&block.hashes);
        }
        // The batch, and the end of its admission numbers (the mempool is in admission order).
        let (batch, pending_below): (Vec<([u8; 32], Transaction)>, Option<u64>) = {
            let mut mempool = lock(&self.mempool);
            let take = max_txs.min(mempool.queue.len());
            let hashes: Vec<[u8; 32]> = mempool.queue.drain(..take).collect();
            let mut end = None;
            let batch = hashes
                .into_iter()
                .filter_map(|h| {
                    mempool.pending.get(&h).map(|(tx, seq)| {
                        end = end.max(Some(seq.saturating_add(1)));
                        (h, tx.clone())
                    })
                })
                .collect();
            (batch, end)
        };
        let hashes: Vec<[u8; 32]> = batch.iter().map(|(h, _)| *h).collect();
        let (parent_height, parent_hash, parent_time, parent_offset) = match &previous {
            Some(p) => (p.block.height(), p.block.hash(), p.block.timestamp_ms(), p.time_offset_ms),
            None => (inner.head.height(), inner.head.hash(), inner.head.timestamp_ms(), inner.time_offset_ms),
        };
        let Some(height) = parent_height.checked_add(1) else {
            drop(inner);
            self.requeue(&hashes);
            return Err(NodeError::Production("height overflow".into()));
        };
        let time_offset_ms = parent_offset.saturating_add(advance_ms);
        let timestamp_ms = wall_clock_ms().saturating_add(time_offset_ms).max(parent_time);
        let ctx = BlockContext { block_id: height, timestamp_ms };

        // The state this block executes on: the committed one, plus the previous block's
        // changes while that block is being written.
        let mut base = Overlay::new(&inner.state);
        if let Some(previous) = &previous {
            base.apply_diff(&previous.diff);
        }
        let mut receipts = Vec::with_capacity(batch.len());
        let mut failures: Vec<u32> = Vec::new();
        let mut failed: Vec<u32> = Vec::new();
        let mut failed_txs: Vec<FailedTransaction> = Vec::new();
        let diff = {
            let mut overlay = Overlay::new(&base);
            for (position, (hash, tx)) in batch.iter().enumerate() {
                let position = u32::try_from(position).unwrap_or(u32::MAX);
                // A receipt's index: its place in the block's body, or among its failed ones.
                let (index, error, events) = match self.runtime.apply_verified(&overlay, tx, &ctx) {
                    Ok(applied) => {
                        overlay.apply_diff(&applied.diff);
                        let index = u32::try_from(receipts.len().saturating_sub(failed.len())).unwrap_or(u32::MAX);
                        (index, None, applied.receipt.events)
                    }
                    Err(e) => {
                        failures.push(e.code());
                        let index = u32::try_from(failed.len()).unwrap_or(u32::MAX);
                        failed.push(position);
                        (index, Some(TxErrorInfo::from(&e)), vec![])
                    }
                };
                let receipt = StoredReceipt { tx_hash: *hash, block_id: height, index, error, events };
                if receipt.error.is_some() {
                    failed_txs.push(FailedTransaction { receipt: receipt.clone(), transaction: tx.clone() });
                }
                receipts.push(receipt);
            }
            let clock = self.runtime.clock_update(&overlay, &ctx).map_err(|e| {
                let message = format!("clock update of block {height} failed: {e}");
                tracing::error!("{message}");
                NodeError::Production(message)
            });
            match clock {
                Ok(clock) => overlay.apply_diff(&clock),
                Err(e) => {
                    drop(overlay);
                    drop(base);
                    drop(inner);
                    self.requeue(&hashes);
                    return Err(e);
                }
            }
            overlay.into_diff()
        };
        // The new leaves and root from the committed state and every change since (the
        // previous block's, then this one's); the state itself is changed only once the block
        // is durable.
        let since_committed = match &previous {
            Some(_) => {
                let mut both = base.into_diff();
                both.accounts.extend(diff.accounts.iter().map(|(id, account)| (*id, account.clone())));
                Cow::Owned(both)
            }
            None => Cow::Borrowed(&diff),
        };
        let leaves = inner.leaves.updated(&inner.state, &since_committed);
        let state_root = match leaves.root() {
            Some(root) => root,
            None => {
                let mut after = inner.state.clone();
                after.apply_diff(&since_committed);
                after.state_root()
            }
        };
        drop(since_committed);
        let parts = BlockParts {
            block_id: height,
            prev_block_hash: parent_hash,
            timestamp_ms,
            transactions: batch.into_iter().map(|(_, tx)| tx).collect(),
            failed,
            state_root,
            time_offset_ms,
        };
        drop(inner);
        let block = Arc::new(StoredBlock::seal_hashed(
            parts,
            hashes.clone(),
            &self.sequencer,
            self.runtime.builtin_ids().clock,
        ));
        let mut added = StreamIndex::default();
        for receipt in &receipts {
            for event in &receipt.events {
                if let ReceiptEvent::PaymentStreams { event } = event {
                    added.record(event);
                }
            }
        }
        Ok(Executed {
            epoch,
            block,
            receipts,
            failed_txs,
            diff,
            leaves,
            added,
            hashes,
            failures,
            time_offset_ms,
            pending_below,
            reply: Mutex::new(None),
        })
    }

    /// Writes an executed block (the oldest unapplied one) and applies it. On a failed write
    /// the block and every block executed on top of it are discarded (their transactions are
    /// requeued by the next production, in order).
    fn commit_executed(&self, executed: &Arc<Executed>) -> Result<Arc<CommittedBlock>, NodeError> {
        let height = executed.block.height();
        if lock(&self.pipeline).epoch != executed.epoch {
            return Err(NodeError::Production(format!(
                "block {height} was discarded: the block before it was not written"
            )));
        }
        // Durable first, without the chain lock: nothing else changes `inner.state` or the head
        // meanwhile (blocks are written in order, by one writer), and the batch is still pending.
        if let Err(e) = self.storage.commit_block_pending(
            &executed.block,
            &executed.receipts,
            &executed.failed_txs,
            &executed.diff,
            &executed.added,
            executed.pending_below,
        ) {
            let mut pipeline = lock(&self.pipeline);
            pipeline.epoch = pipeline.epoch.wrapping_add(1);
            let discarded: Vec<Arc<Executed>> = pipeline.unapplied.drain(..).collect();
            for later in discarded.iter().filter(|later| !Arc::ptr_eq(later, executed)) {
                later.reply(Err(format!(
                    "block {} was discarded: block {height} was not written",
                    later.block.height()
                )));
            }
            pipeline.discarded.extend(discarded);
            drop(pipeline);
            self.applied.notify_all();
            tracing::error!(height, error = %e, "block commit failed; its transactions return to the mempool");
            return Err(e.into());
        }
        let mut inner = self.write_between_blocks();
        inner.state.apply_diff(&executed.diff);
        debug_assert_eq!(executed.block.state_root, inner.state.state_root(), "kept leaves give the state root");
        inner.index.extend(&executed.added);
        inner.leaves = executed.leaves.clone();
        // The hashes of the transactions that succeeded, known from the receipts.
        let included =
            executed.receipts.iter().filter(|receipt| receipt.error.is_none()).map(|receipt| HexHash(receipt.tx_hash));
        let info = block_info_listing(&executed.block, included.collect());
        inner.head = Arc::clone(&executed.block);
        inner.time_offset_ms = executed.time_offset_ms;
        {
            // Still under the chain lock: admission sees the new state and the mempool without
            // this batch together.
            let mut mempool = lock(&self.mempool);
            for hash in &executed.hashes {
                if let Some((tx, _)) = mempool.pending.remove(hash) {
                    let transfer = self.transfer_of(&tx);
                    mempool.release(&tx, transfer);
                }
            }
            self.metrics.set_mempool(mempool.queue.len());
        }
        {
            let mut pipeline = lock(&self.pipeline);
            if pipeline.unapplied.front().is_some_and(|front| Arc::ptr_eq(front, executed)) {
                pipeline.unapplied.pop_front();
            }
        }
        drop(inner);
        self.applied.notify_all();
        let timestamp_ms = executed.block.timestamp_ms();
        self.metrics.record_block(height, executed.hashes.len(), &executed.failures);
        tracing::info!(
            height,
            txs = executed.hashes.len(),
            failed = executed.failures.len(),
            timestamp_ms,
            hash = %info.header.hash,
            "block committed"
        );
        // What the event index got in the commit, in its order.
        let notifications = crate::index::block_events(height, timestamp_ms, &executed.receipts)
            .into_iter()
            .map(|indexed| indexed.notification)
            .collect();
        let committed = Arc::new(CommittedBlock { info, events: notifications });
        // No subscriber is not an error.
        let _ = self.blocks.send(Arc::clone(&committed));
        Ok(committed)
    }

    /// The chain lock for writing, for applying a written block. While the next block executes
    /// (a long read) this polls instead of queueing: a queued writer would hold up every
    /// admission until the execution ends.
    fn write_between_blocks(&self) -> RwLockWriteGuard<'_, Inner> {
        loop {
            match self.inner.try_write() {
                Ok(guard) => return guard,
                Err(std::sync::TryLockError::Poisoned(poisoned)) => return poisoned.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => {}
            }
            if !self.executing.load(std::sync::atomic::Ordering::Acquire) {
                // Only short readers (admission, RPC reads): wait in line.
                return write(&self.inner);
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Puts the transactions of blocks discarded after a failed write back at the front of the
    /// queue, oldest block first. Called by the one producer (under `producing`).
    fn requeue_discarded(&self) {
        let discarded = std::mem::take(&mut lock(&self.pipeline).discarded);
        for block in discarded.iter().rev() {
            self.requeue(&block.hashes);
        }
    }

    /// Puts a discarded batch back at the front of the queue, in order.
    fn requeue(&self, hashes: &[[u8; 32]]) {
        let mut mempool = lock(&self.mempool);
        for hash in hashes.iter().rev() {
            mempool.queue.push_front(*hash);
        }
        self.metrics.set_mempool(mempool.queue.len());
    }

    // --- reads -----------------------------------------------------------------------------

    /// One page of the event index (see [`Storage::events`]): events matching `filter`
    /// strictly after `after`, at most `limit`.
    ///
    /// # Errors
    /// Storage failure.
    pub fn events(
        &self,
        filter: &paystreams_rpc::EventFilter,
        after: Option<paystreams_rpc::EventCursor>,
        limit: u32,
    ) -> Result<paystreams_rpc::EventPage, NodeError> {
        Ok(self.storage.events(filter, after, limit)?)
    }

    #[must_use]
    pub fn head_height(&self) -> u64 {
        read(&self.inner).head.height()
    }

    #[must_use]
    pub fn head_info(&self) -> BlockInfo {
        block_info(&read(&self.inner).head)
    }

    /// Latest block time in seconds (stream time).
    #[must_use]
    pub fn now_secs(&self) -> u64 {
        read(&self.inner).head.timestamp_ms().saturating_div(1000)
    }

    #[must_use]
    pub fn state_root(&self) -> [u8; 32] {
        read(&self.inner).state.state_root()
    }

    #[must_use]
    pub fn account(&self, id: &AccountId) -> paystreams_lez_core::Account {
        read(&self.inner).state.account(id)
    }

    /// Sum of every native balance.
    #[must_use]
    pub fn native_supply(&self) -> u128 {
        read(&self.inner).state.iter().fold(0_u128, |sum, (_, a)| sum.saturating_add(a.balance))
    }

    /// A block by height.
    ///
    /// # Errors
    /// Storage failure.
    pub fn block(&self, height: u64) -> Result<Option<StoredBlock>, NodeError> {
        Ok(self.storage.block(height)?)
    }

    /// The LEZ release whose builtin ids the chain runs.
    #[must_use]
    pub const fn lez_release(&self) -> LezRelease {
        self.release
    }

    /// The sequencer's public key: every block's signature verifies under it
    /// (`LezBlock::is_signed_by`).
    #[must_use]
    pub fn sequencer_public_key(&self) -> PublicKey {
        self.sequencer.public_key()
    }

    /// A block as LEZ encodes it (`getBlock`): LEZ's header over the transactions that
    /// succeeded and the clock invocation last. `None` beyond the head and for id 0.
    ///
    /// # Errors
    /// Storage failure.
    pub fn lez_block(&self, block_id: u64) -> Result<Option<LezBlock>, NodeError> {
        let clock = self.runtime.builtin_ids().clock;
        Ok(self.storage.block(block_id)?.map(|block| block.lez_block(clock)))
    }

    /// Blocks `start..=end` as LEZ encodes them (`getBlockRange`), at most
    /// [`LEZ_BLOCK_RANGE_MAX`].
    ///
    /// # Errors
    /// [`NodeError::InvalidArgument`] when `start > end` or the range is longer than
    /// [`LEZ_BLOCK_RANGE_MAX`]; [`NodeError::BlockNotFound`] naming the first id with no block
    /// (as LEZ's "Block with id {id} not found"); storage failure.
    pub fn lez_block_range(&self, start: u64, end: u64) -> Result<Vec<LezBlock>, NodeError> {
        if start > end {
            return Err(NodeError::InvalidArgument(format!(
                "the range starts at {start}, after its end {end}; pass start <= end"
            )));
        }
        if end.saturating_sub(start) >= LEZ_BLOCK_RANGE_MAX {
            return Err(NodeError::InvalidArgument(format!(
                "at most {LEZ_BLOCK_RANGE_MAX} blocks per range; split {start}..={end}"
            )));
        }
        (start..=end).map(|id| self.lez_block(id)?.ok_or(NodeError::BlockNotFound(id))).collect()
    }

    /// A transaction that succeeded, in LEZ's envelope, with the id of its block (LEZ's
    /// `getTransaction`): `None` while pending, for unknown hashes and for transactions that
    /// failed (LEZ drops those; [`Chain::receipt`] still reports them).
    ///
    /// # Errors
    /// Storage failure.
    pub fn lez_transaction(&self, hash: &[u8; 32]) -> Result<Option<(LeeTransaction, u64)>, NodeError> {
        // Pending until its block is applied, though the block may already be on disk.
        if self.is_pending(hash) {
            return Ok(None);
        }
        let Some(receipt) = self.storage.receipt(hash)? else {
            return Ok(None);
        };
        if receipt.error.is_some() {
            return Ok(None);
        }
        let block = self.storage.block(receipt.block_id)?;
        let tx =
            block.and_then(|b| b.transactions.into_iter().nth(usize::try_from(receipt.index).unwrap_or(usize::MAX)));
        Ok(tx.map(|tx| (envelope(&tx), receipt.block_id)))
    }

    /// The receipt view of a transaction.
    ///
    /// # Errors
    /// Storage failure.
    pub fn receipt(&self, hash: &[u8; 32]) -> Result<Option<ReceiptInfo>, NodeError> {
        if self.is_pending(hash) {
            return Ok(Some(ReceiptInfo {
                hash: HexHash(*hash),
                status: TxStatus::Pending,
                block_id: None,
                error: None,
                events: vec![],
            }));
        }
        Ok(self.storage.receipt(hash)?.map(|r| ReceiptInfo {
            hash: HexHash(r.tx_hash),
            status: if r.error.is_some() { TxStatus::Failed } else { TxStatus::Included },
            block_id: Some(r.block_id),
            error: r.error,
            events: r.events,
        }))
    }

    /// The transaction and where it was included.
    ///
    /// # Errors
    /// Storage failure.
    pub fn transaction(&self, hash: &[u8; 32]) -> Result<Option<TransactionInfo>, NodeError> {
        use base64::Engine as _;
        let encode = |tx: &Transaction| base64::engine::general_purpose::STANDARD.encode(tx.envelope_bytes());
        if let Some((tx, _)) = lock(&self.mempool).pending.get(hash) {
            return Ok(Some(TransactionInfo { hash: HexHash(*hash), transaction: encode(tx), block_id: None }));
        }
        let Some(receipt) = self.storage.receipt(hash)? else {
            return Ok(None);
        };
        let tx = if receipt.error.is_some() {
            self.storage.failed_transaction(receipt.block_id, receipt.index)?.map(|f| f.transaction)
        } else {
            let block = self.storage.block(receipt.block_id)?;
            block.and_then(|b| b.transactions.into_iter().nth(usize::try_from(receipt.index).unwrap_or(usize::MAX)))
        };
        Ok(tx.map(|tx| TransactionInfo {
            hash: HexHash(*hash),
            transaction: encode(&tx),
            block_id: Some(receipt.block_id),
        }))
    }

    #[must_use]
    pub fn vault(&self, owner: &AccountId, vault_id: u64) -> Option<VaultView> {
        views::vault_view(&read(&self.inner).state, &self.program_id, owner, vault_id)
    }

    #[must_use]
    pub fn vaults(&self, owner: &AccountId) -> Vec<VaultView> {
        let inner = read(&self.inner);
        let ids = inner.index.vaults.get(owner).cloned().unwrap_or_default();
        ids.into_iter()
            .filter_map(|id| views::vault_view(&inner.state, &self.program_id, owner, id))
            .take(LIST_MAX)
            .collect()
    }

    #[must_use]
    pub fn stream(&self, owner: &AccountId, vault_id: u64, stream_id: u64) -> Option<StreamView> {
        let inner = read(&self.inner);
        let now = inner.head.timestamp_ms().saturating_div(1000);
        views::stream_view(&inner.state, &self.program_id, owner, vault_id, stream_id, now)
    }

    /// Streams of an owner and/or a provider.
    ///
    /// # Errors
    /// [`NodeError::InvalidArgument`] when neither is given.
    pub fn streams(
        &self,
        owner: Option<&AccountId>,
        provider: Option<&AccountId>,
    ) -> Result<Vec<StreamView>, NodeError> {
        let inner = read(&self.inner);
        let now = inner.head.timestamp_ms().saturating_div(1000);
        let view = |o: &AccountId, v: u64, s: u64| views::stream_view(&inner.state, &self.program_id, o, v, s, now);
        let keys: Vec<(AccountId, u64, u64)> = match (owner, provider) {
            (_, Some(provider)) => inner
                .index
                .provider_streams
                .get(provider)
                .map(|set| set.iter().filter(|(o, _, _)| owner.is_none_or(|w| w == o)).copied().collect())
                .unwrap_or_default(),
            (Some(owner), None) => {
                let mut keys = Vec::new();
                for vault_id in inner.index.vaults.get(owner).into_iter().flatten() {
                    if let Some(config) = views::read_vault_config(&inner.state, &self.program_id, owner, *vault_id) {
                        keys.extend((0..config.next_stream_id).map(|s| (*owner, *vault_id, s)));
                    }
                }
                keys
            }
            (None, None) => {
                return Err(NodeError::InvalidArgument("give an owner, a provider or both".into()));
            }
        };
        Ok(keys.into_iter().filter_map(|(o, v, s)| view(&o, v, s)).take(LIST_MAX).collect())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Many threads checking at once never have more than `max` inside, and every place is
    /// freed again, also by checks that panic.
    #[test]
    fn verifiers_bound_how_many_check_at_once() {
        let verifiers = Verifiers::at_most(2);
        let (inside, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    for _ in 0..2_000 {
                        verifiers.run(|| {
                            let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                            most.fetch_max(now, Ordering::SeqCst);
                            std::hint::black_box((0..50_u64).sum::<u64>());
                            inside.fetch_sub(1, Ordering::SeqCst);
                        });
                    }
                });
            }
        });
        let most = most.load(Ordering::SeqCst);
        assert!((1..=2).contains(&most), "{most} checked at once");
        let panicked =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| verifiers.run(|| panic!("a check panics"))));
        assert!(panicked.is_err());
        assert_eq!(*lock(&verifiers.running), 0, "a place stayed taken");
        assert_eq!(verifiers.run(|| 7), 7);
    }
}
