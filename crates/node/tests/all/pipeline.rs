//! The node's overlapped block production gives what serial execution gives: random
//! payment-stream and transfer transactions (many of which fail in execution: streams that do
//! not exist, nothing to claim, amounts beyond the vault) are submitted one by one and in
//! batches while another thread produces blocks of random sizes with random clock advances, on
//! redb storage (admission, signature checks and the durable mempool's writes run while blocks
//! execute and commit). Blocks go to the committer thread (the next block executes on top of
//! the one being written), mostly without waiting for the write, sometimes waiting; some block
//! writes fail (injected), which discards the blocks executed on top of them and returns their
//! transactions to the mempool in order. Then the admitted transactions, in their admission
//! order, are applied serially by the runtime (`Runtime::apply`, signatures included) in the
//! blocks the node wrote, at their timestamps: every transaction's outcome and error code,
//! every block's state root and the final state match. `PAYSTREAMS_SEED` replays the random
//! choices (their outcomes depend on when blocks land).

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use paystreams_lez_core::{Account, AccountId, crypto::SecretKey};
use paystreams_node::{
    Chain, ChainConfig, NodeError, RedbStorage, Storage, StorageError,
    block::{FailedTransaction, GenesisSpec, StoredBlock, StoredReceipt},
    chain::{Refusal, genesis_state},
    index::StreamIndex,
    storage::PendingTransaction,
};
use paystreams_program::{client, instruction::ExtensionSettings};
use paystreams_rpc::TxStatus;
use paystreams_runtime::{BlockContext, Overlay, Runtime, State, StateDiff, StateView as _, Transaction};
use paystreams_testkit::rng::Rng;

use crate::common::*;

const OWNERS: usize = 4;
const BALANCE: u128 = 1_000_000_000;
/// Transactions drawn (some are refused at admission: a signer whose transaction failed in a
/// block has a gap until the draw after it sees the block).
const DRAWS: usize = 700;

/// redb storage whose block writes fail, while `flaky` is set, on every `FAIL_EVERY`th call.
struct FlakyDisk {
    inner: RedbStorage,
    flaky: AtomicBool,
    calls: AtomicU64,
    failed: AtomicU64,
}

const FAIL_EVERY: u64 = 7;

impl Storage for FlakyDisk {
    fn genesis(&self) -> Result<Option<GenesisSpec>, StorageError> {
        self.inner.genesis()
    }

    fn load_head(&self) -> Result<Option<u64>, StorageError> {
        self.inner.load_head()
    }

    fn init(&self, genesis: &GenesisSpec, block: &StoredBlock, state: &State) -> Result<(), StorageError> {
        self.inner.init(genesis, block, state)
    }

    fn commit_block(
        &self,
        block: &StoredBlock,
        receipts: &[StoredReceipt],
        failed: &[FailedTransaction],
        diff: &StateDiff,
        added: &StreamIndex,
    ) -> Result<(), StorageError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        if self.flaky.load(Ordering::SeqCst) && call % FAIL_EVERY == FAIL_EVERY - 1 {
            self.failed.fetch_add(1, Ordering::SeqCst);
            let io = std::io::Error::other("injected write failure");
            return Err(StorageError::Database(redb::Error::Io(io)));
        }
        self.inner.commit_block(block, receipts, failed, diff, added)
    }

    fn failed_transaction(&self, block_id: u64, index: u32) -> Result<Option<FailedTransaction>, StorageError> {
        self.inner.failed_transaction(block_id, index)
    }

    fn failed_len(&self) -> Result<u64, StorageError> {
        self.inner.failed_len()
    }

    fn block(&self, height: u64) -> Result<Option<StoredBlock>, StorageError> {
        self.inner.block(height)
    }

    fn receipt(&self, tx_hash: &[u8; 32]) -> Result<Option<StoredReceipt>, StorageError> {
        self.inner.receipt(tx_hash)
    }

    fn account(&self, id: &AccountId) -> Result<Option<Account>, StorageError> {
        self.inner.account(id)
    }

    fn load_state(&self) -> Result<State, StorageError> {
        self.inner.load_state()
    }

    fn load_state_with_leaves(&self) -> Result<(State, Vec<[u8; 32]>, [u8; 32]), StorageError> {
        self.inner.load_state_with_leaves()
    }

    fn stream_index(&self, head: &StoredBlock) -> Result<Option<StreamIndex>, StorageError> {
        self.inner.stream_index(head)
    }

    fn save_stream_index(&self, head: &StoredBlock, index: &StreamIndex) -> Result<(), StorageError> {
        self.inner.save_stream_index(head, index)
    }

    fn add_pending(&self, entries: &[([u8; 32], PendingTransaction)]) -> Result<(), StorageError> {
        self.inner.add_pending(entries)
    }

    fn remove_pending(&self, hashes: &[[u8; 32]]) -> Result<(), StorageError> {
        self.inner.remove_pending(hashes)
    }

    fn pending_transactions(&self) -> Result<Vec<PendingTransaction>, StorageError> {
        self.inner.pending_transactions()
    }

    fn events(
        &self,
        filter: &paystreams_rpc::EventFilter,
        after: Option<paystreams_rpc::EventCursor>,
        limit: u32,
    ) -> Result<paystreams_rpc::EventPage, StorageError> {
        self.inner.events(filter, after, limit)
    }

    fn events_indexed_through(&self) -> Result<Option<u64>, StorageError> {
        self.inner.events_indexed_through()
    }

    fn index_missing_events(&self) -> Result<u64, StorageError> {
        self.inner.index_missing_events()
    }
}

/// Draws the next transactions of one step for random signers, with the nonce each signer
/// needs now: its committed nonce plus its pending transactions plus those drawn before it in
/// this step. `pending` holds each signer's submitted hashes still pending.
fn draw(
    rng: &mut Rng,
    chain: &Chain,
    keys: &[SecretKey],
    pending: &mut [Vec<[u8; 32]>],
    count: usize,
) -> Vec<Transaction> {
    let (owners, providers) = keys.split_at(OWNERS);
    let mut extra = vec![0_u128; keys.len()];
    let mut txs = Vec::with_capacity(count);
    for _ in 0..count {
        let owner = usize::try_from(rng.below(OWNERS as u64)).expect("small");
        let (key, provider) = (&owners[owner], &providers[owner]);
        let v = vault(key, 1);
        let next_stream = chain.vault(&key.account_id(), 1).map_or(0, |view| view.next_stream_id);
        // A stream id that exists most of the time, sometimes one beyond.
        let stream = rng.below(next_stream + 1);
        let provider_turn = rng.chance(35);
        let (signer, index) = if provider_turn { (provider, OWNERS + owner) } else { (key, owner) };
        pending[index].retain(|hash| chain.is_pending(hash));
        let nonce = chain.account(&signer.account_id()).nonce
            + u128::try_from(pending[index].len()).expect("small")
            + extra[index];
        extra[index] += 1;
        let call = if provider_turn {
            if rng.chance(85) {
                client::claim(&v, stream, provider.account_id(), None, None)
            } else {
                client::close_stream_by_provider(&v, stream, provider.account_id(), None, None)
            }
        } else {
            match rng.below(10) {
                0 => client::deposit(
                    &v,
                    u128::from(rng.below(50_000)),
                    paystreams_lez_core::transfer::authenticated_transfer_program_id(),
                    None,
                ),
                1 | 2 => {
                    // Sometimes an id out of order, sometimes an allocation beyond the vault.
                    let id = if rng.chance(90) { next_stream } else { next_stream + 1 };
                    let allocation = if rng.chance(90) { u128::from(rng.below(20_000)) + 1 } else { 10_000_000 };
                    client::create_stream(
                        &v,
                        id,
                        provider.account_id(),
                        rng.below(5) + 1,
                        allocation,
                        ExtensionSettings::default(),
                    )
                }
                3 => client::top_up_stream(&v, stream, u128::from(rng.below(5_000))),
                4 => client::pause_stream(&v, stream),
                5 => client::resume_stream(&v, stream),
                6 => client::close_stream_by_owner(&v, stream),
                7 => client::withdraw(&v, u128::from(rng.below(10_000)), None),
                _ => {
                    // Another account (a transfer lists the sender and the recipient once each).
                    let other =
                        (owner + 1 + usize::try_from(rng.below(keys.len() as u64 - 1)).expect("small")) % keys.len();
                    let to = keys[other].account_id();
                    txs.push(transfer(key, to, u128::from(rng.below(1_000)), nonce));
                    continue;
                }
            }
        };
        txs.push(sign(&call, &[signer], vec![nonce]));
    }
    txs
}

/// Keeps an admitted transaction; a refusal must be about nonces (a block moved a signer's
/// nonce, or failed its transaction, between the draw and the admission).
fn record(
    result: Result<[u8; 32], NodeError>,
    tx: &Transaction,
    admitted: &mut Vec<Transaction>,
    pending: &mut [Vec<[u8; 32]>],
    keys: &[SecretKey],
) {
    match result {
        Ok(hash) => {
            assert_eq!(hash, tx.hash());
            let signer = tx.signer_ids()[0];
            let index = keys.iter().position(|k| k.account_id() == signer).expect("a known signer");
            pending[index].push(hash);
            admitted.push(tx.clone());
        }
        Err(NodeError::Refused(
            Refusal::NonceGap { .. } | Refusal::StaleNonce { .. } | Refusal::NoncePending { .. },
        )) => {}
        Err(e) => panic!("unexpected refusal: {e}"),
    }
}

#[test]
fn overlapped_production_matches_serial_execution() {
    let mut rng = Rng::from_env_or_clock("pipeline differential");
    let dir = tempfile::tempdir().expect("tempdir");
    let disk = Arc::new(FlakyDisk {
        inner: RedbStorage::open(&dir.path().join("chain")).expect("open"),
        flaky: AtomicBool::new(false),
        calls: AtomicU64::new(0),
        failed: AtomicU64::new(0),
    });
    let config = ChainConfig::dev(u32::try_from(OWNERS * 2).expect("small"), BALANCE);
    let chain = Arc::new(Chain::open(Arc::clone(&disk) as Arc<dyn Storage>, &config).expect("chain opens"));
    chain.start_committer();
    disk.flaky.store(true, Ordering::SeqCst);
    let keys = chain.dev_keys().to_vec();
    let first_height = chain.head_height();
    // (most transactions, clock advance, wait for the write)
    let blocks: Vec<(usize, u64, bool)> = (0..100_000)
        .map(|_| {
            (
                usize::try_from(rng.below(60) + 1).expect("small"),
                if rng.chance(30) { rng.below(3_000) } else { 0 },
                rng.chance(20),
            )
        })
        .collect();

    let mut admitted: Vec<Transaction> = Vec::new();
    let mut pending: Vec<Vec<[u8; 32]>> = vec![Vec::new(); keys.len()];
    for owner in &keys[..OWNERS] {
        for tx in [init_vault(owner, 1, 0), deposit(owner, 1, 1_000_000, 1)] {
            record(chain.submit(tx.clone()), &tx, &mut admitted, &mut pending, &keys);
        }
    }
    assert_eq!(admitted.len(), 2 * OWNERS);

    let done = Arc::new(AtomicBool::new(false));
    let producer = {
        let (chain, done) = (Arc::clone(&chain), Arc::clone(&done));
        std::thread::spawn(move || {
            for (max_txs, advance_ms, wait) in blocks {
                if done.load(Ordering::SeqCst) {
                    return;
                }
                // Injected write failures surface here (waiting) or in the committer.
                let produced = if wait {
                    chain.produce_block(max_txs, advance_ms).map(|_| ())
                } else {
                    chain.produce_block_pipelined(max_txs, advance_ms)
                };
                match produced {
                    Ok(()) | Err(NodeError::Storage(_) | NodeError::Production(_)) => {}
                    Err(e) => panic!("block production failed: {e}"),
                }
            }
            panic!("the producer ran out of planned blocks");
        })
    };
    let mut drawn = 0;
    while drawn < DRAWS {
        let count = usize::try_from(rng.below(30) + 1).expect("small");
        let txs = draw(&mut rng, &chain, &keys, &mut pending, count);
        drawn += count;
        if rng.chance(50) {
            let encoded: Vec<String> = txs.iter().map(b64).collect();
            for (tx, result) in txs.iter().zip(chain.submit_encoded_batch(&encoded)) {
                record(result, tx, &mut admitted, &mut pending, &keys);
            }
        } else {
            for tx in &txs {
                record(chain.submit(tx.clone()), tx, &mut admitted, &mut pending, &keys);
            }
        }
    }
    let txs = admitted;
    assert!(txs.len() > DRAWS / 4, "too few drawn transactions were admitted ({} of {DRAWS})", txs.len());
    done.store(true, Ordering::SeqCst);
    producer.join().expect("producer");
    // Writes succeed again; what is in flight is written, then the rest is mined inline.
    disk.flaky.store(false, Ordering::SeqCst);
    chain.stop_committer();
    for _ in 0..1_000 {
        if txs.iter().all(|tx| !chain.is_pending(&tx.hash())) {
            break;
        }
        chain.produce_block(60, 0).expect("block");
    }
    assert!(disk.failed.load(Ordering::SeqCst) > 0, "some block writes failed");

    // One submitter and a first-in, first-out mempool: blocks hold the transactions in
    // submission order. Group them by the block their receipt names.
    let mut by_block: BTreeMap<u64, Vec<(&Transaction, Option<u32>)>> = BTreeMap::new();
    let mut last_block = 0;
    for tx in &txs {
        let receipt = chain.receipt(&tx.hash()).expect("read").expect("receipt");
        let block = receipt.block_id.expect("included");
        assert!(block >= last_block, "blocks follow submission order");
        last_block = block;
        assert_eq!(receipt.status == TxStatus::Failed, receipt.error.is_some());
        by_block.entry(block).or_default().push((tx, receipt.error.map(|e| e.code)));
    }
    let failed: usize = by_block.values().flatten().filter(|(_, code)| code.is_some()).count();
    assert!(
        failed > 0 && failed < txs.len(),
        "the set mixes successes ({}) and failures ({failed})",
        txs.len() - failed
    );

    eprintln!(
        "pipeline differential: {} admitted of {DRAWS} drawn, {failed} failed in execution, {} blocks, {} block \
         writes failed",
        txs.len(),
        chain.head_height() - first_height,
        disk.failed.load(Ordering::SeqCst)
    );

    // Serially: the genesis state, then every block the node made, at its time.
    let runtime = Runtime::for_release(chain.lez_release());
    let mut state = genesis_state(chain.genesis(), &runtime).expect("genesis");
    let head = chain.head_height();
    assert!(head > first_height + 1, "several blocks were produced");
    for height in 2..=head {
        let block = chain.block(height).expect("read").expect("block");
        let ctx = BlockContext { block_id: height, timestamp_ms: block.timestamp_ms() };
        let diff = {
            let mut overlay = Overlay::new(&state);
            for (tx, code) in by_block.get(&height).into_iter().flatten() {
                let serial = runtime.apply(&overlay, tx, &ctx);
                assert_eq!(
                    serial.as_ref().err().map(paystreams_runtime::TxError::code),
                    *code,
                    "transaction {} of block {height}: serial outcome differs",
                    paystreams_rpc::HexHash(tx.hash())
                );
                if let Ok(applied) = serial {
                    overlay.apply_diff(&applied.diff);
                }
            }
            let clock = runtime.clock_update(&overlay, &ctx).expect("clock");
            overlay.apply_diff(&clock);
            overlay.into_diff()
        };
        state.apply_diff(&diff);
        assert_eq!(state.state_root(), block.state_root, "state root of block {height}");
    }
    assert_eq!(state.state_root(), chain.state_root());
    for key in &keys {
        assert_eq!(state.account(&key.account_id()), chain.account(&key.account_id()));
    }
    assert_eq!(chain.mempool_len(), 0);
}

/// Blocks remove the durable mempool's records by admission number; a chain reopened after its
/// blocks emptied the mempool numbers new admissions after them, so they are written (and
/// found again by the next restart) and the next blocks remove only their own.
#[test]
fn admissions_after_a_reopen_stay_durable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("chain");
    let config = ChainConfig::dev(2, BALANCE);
    let open = || {
        let storage: Arc<dyn Storage> = Arc::new(RedbStorage::open(&path).expect("open"));
        Chain::open(storage, &config).expect("chain opens")
    };
    let chain = open();
    let (a, b) = (chain.dev_keys()[0].clone(), chain.dev_keys()[1].account_id());
    for nonce in 0..3 {
        chain.submit(transfer(&a, b, 1, nonce)).expect("admitted");
    }
    chain.produce_block(10, 0).expect("block");
    assert_eq!(chain.mempool_len(), 0);
    drop(chain);

    let chain = open();
    let kept = [transfer(&a, b, 2, 3), transfer(&a, b, 3, 4)];
    for tx in &kept {
        chain.submit(tx.clone()).expect("admitted");
    }
    drop(chain);

    let chain = open();
    assert_eq!(chain.mempool_len(), 2, "both admissions were written before their answers");
    chain.produce_block(1, 0).expect("block");
    drop(chain);
    let chain = open();
    assert_eq!(chain.mempool_len(), 1, "the block removed its own record only");
    assert!(chain.is_pending(&kept[1].hash()));
    chain.produce_block(10, 0).expect("block");
    assert_eq!(chain.account(&b).balance, BALANCE + 3 + 2 + 3);
}
