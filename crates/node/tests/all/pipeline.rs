//! The node's overlapped block production gives what serial execution gives: random
//! payment-stream and transfer transactions (many of which fail in execution: streams that do
//! not exist, nothing to claim, amounts beyond the vault) are submitted one by one and in
//! batches while another thread produces blocks of random sizes with random clock advances, on
//! redb storage (admission, signature checks and the durable mempool's writes run while blocks
//! commit). Then the same transactions, in the order they were admitted, are applied serially
//! by the runtime (`Runtime::apply`, signatures included) in the blocks the node made, at their
//! timestamps: every transaction's outcome and error code, every block's state root and the
//! final state match. `PAYSTREAMS_SEED` replays a failing run.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use paystreams_lez_core::crypto::SecretKey;
use paystreams_node::{Chain, ChainConfig, RedbStorage, Storage, chain::genesis_state};
use paystreams_program::client;
use paystreams_rpc::TxStatus;
use paystreams_runtime::{BlockContext, Overlay, Runtime, StateView as _, Transaction};
use paystreams_testkit::rng::Rng;

use crate::common::*;

const OWNERS: usize = 4;
const BALANCE: u128 = 1_000_000_000;

/// Random transactions of `OWNERS` owners (one vault each) and their providers, each signer's
/// nonces in order, so admission takes every one.
fn random_transactions(rng: &mut Rng, keys: &[SecretKey], count: usize) -> Vec<Transaction> {
    let (owners, providers) = keys.split_at(OWNERS);
    let mut nonces = vec![0_u128; keys.len()];
    // Streams created so far per owner (by the transactions drawn, whether or not they succeed).
    let mut streams = [0_u64; OWNERS];
    let mut txs = Vec::with_capacity(count);
    for owner in 0..OWNERS {
        txs.push(init_vault(&owners[owner], 1, 0));
        txs.push(deposit(&owners[owner], 1, 1_000_000, 1));
        nonces[owner] = 2;
    }
    while txs.len() < count {
        let owner = usize::try_from(rng.below(OWNERS as u64)).expect("small");
        let key = &owners[owner];
        let provider = &providers[owner];
        let v = vault(key, 1);
        // A stream id that exists most of the time, sometimes one beyond.
        let stream = rng.below(streams[owner] + 1);
        let provider_turn = rng.chance(35);
        let (signer, index) = if provider_turn { (provider, OWNERS + owner) } else { (key, owner) };
        let nonce = nonces[index];
        let call = if provider_turn {
            if rng.chance(85) {
                client::claim(&v, stream, provider.account_id(), None, None)
            } else {
                client::close_stream_by_provider(&v, stream, provider.account_id(), None, None)
            }
        } else {
            match rng.below(10) {
                0 => {
                    let amount = u128::from(rng.below(50_000));
                    client::deposit(
                        &v,
                        amount,
                        paystreams_lez_core::transfer::authenticated_transfer_program_id(),
                        None,
                    )
                }
                1 | 2 => {
                    // Sometimes an id out of order, sometimes an allocation beyond the vault.
                    let id = if rng.chance(90) { streams[owner] } else { streams[owner] + 1 };
                    streams[owner] += 1;
                    let allocation = if rng.chance(90) { u128::from(rng.below(20_000)) + 1 } else { 10_000_000 };
                    client::create_stream(
                        &v,
                        id,
                        provider.account_id(),
                        rng.below(5) + 1,
                        allocation,
                        paystreams_program::instruction::ExtensionSettings::default(),
                    )
                }
                3 => client::top_up_stream(&v, stream, u128::from(rng.below(5_000))),
                4 => client::pause_stream(&v, stream),
                5 => client::resume_stream(&v, stream),
                6 => client::close_stream_by_owner(&v, stream),
                7 => client::withdraw(&v, u128::from(rng.below(10_000)), None),
                _ => {
                    let to = keys[usize::try_from(rng.below(keys.len() as u64)).expect("small")].account_id();
                    nonces[index] += 1;
                    txs.push(transfer(key, to, u128::from(rng.below(1_000)), nonce));
                    continue;
                }
            }
        };
        nonces[index] += 1;
        txs.push(sign(&call, &[signer], vec![nonce]));
    }
    txs
}

#[test]
fn overlapped_production_matches_serial_execution() {
    let mut rng = Rng::from_env_or_clock("pipeline differential");
    let dir = tempfile::tempdir().expect("tempdir");
    let storage: Arc<dyn Storage> = Arc::new(RedbStorage::open(&dir.path().join("chain")).expect("open"));
    let config = ChainConfig::dev(u32::try_from(OWNERS * 2).expect("small"), BALANCE);
    let chain = Arc::new(Chain::open(storage, &config).expect("chain opens"));
    let keys = chain.dev_keys().to_vec();
    let first_height = chain.head_height();
    let txs = random_transactions(&mut rng, &keys, 600);

    // The submission plan: runs of single submissions and batches, drawn before the threads.
    let mut plan: Vec<(bool, usize)> = Vec::new();
    let mut planned = 0;
    while planned < txs.len() {
        let len = usize::try_from(rng.below(40) + 1).expect("small").min(txs.len() - planned);
        plan.push((rng.chance(50), len));
        planned += len;
    }
    let blocks: Vec<(usize, u64)> = (0..10_000)
        .map(|_| {
            (usize::try_from(rng.below(60) + 1).expect("small"), if rng.chance(30) { rng.below(3_000) } else { 0 })
        })
        .collect();

    let done = Arc::new(AtomicBool::new(false));
    let producer = {
        let (chain, done) = (Arc::clone(&chain), Arc::clone(&done));
        std::thread::spawn(move || {
            for (max_txs, advance_ms) in blocks {
                if done.load(Ordering::SeqCst) && chain.mempool_len() == 0 {
                    return;
                }
                chain.produce_block(max_txs, advance_ms).expect("block");
            }
            panic!("the producer ran out of planned blocks before the mempool emptied");
        })
    };
    let mut at = 0;
    for (batch, len) in plan {
        let part = &txs[at..at + len];
        if batch {
            let encoded: Vec<String> = part.iter().map(b64).collect();
            for (tx, result) in part.iter().zip(chain.submit_encoded_batch(&encoded)) {
                assert_eq!(result.expect("admitted"), tx.hash());
            }
        } else {
            for tx in part {
                assert_eq!(chain.submit(tx.clone()).expect("admitted"), tx.hash());
            }
        }
        at += len;
    }
    done.store(true, Ordering::SeqCst);
    producer.join().expect("producer");

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
