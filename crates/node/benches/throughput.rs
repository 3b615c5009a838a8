//! Sustained throughput of the durable node versus the bare runtime.
//!
//! `cargo bench -p paystreams-node --bench throughput [-- OWNERS ROUNDS]`
//!
//! Both sides run the same pre-signed transactions: per owner and round, create a stream, top
//! it up, pause it, resume it, and a claim signed by the stream's provider. The node receives
//! them over JSON-RPC (HTTP, several concurrent clients, one owner's transactions in order),
//! checks signatures at admission, produces 100 ms blocks and commits each to redb with
//! immediate durability in a temporary directory; the time runs until the last receipt is
//! committed. The runtime applies them in memory (`Runtime::apply`, signatures included) in
//! blocks of the same size limit with the clock update after each block.

#![allow(clippy::unwrap_used, reason = "a benchmark binary: fail loudly")]

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use base64::Engine as _;
use jsonrpsee::http_client::HttpClientBuilder;
use paystreams_lez_core::{crypto::SecretKey, transfer::authenticated_transfer_program_id};
use paystreams_node::{NodeConfig, chain::MAX_TXS_PER_BLOCK, start};
use paystreams_program::{
    client::{self, Call, VaultRef},
    instruction::ExtensionSettings,
    payment_streams_program_id,
    state::VaultPrivacyTier,
};
use paystreams_rpc::{HexHash, LezApiClient as _, PaystreamsApiClient as _, TxStatus};
use paystreams_runtime::{BlockContext, Message, Overlay, Runtime, StateView as _, Transaction};

/// Concurrent RPC clients submitting.
const CLIENTS: usize = 8;

fn sign(call: &Call, key: &SecretKey, nonce: u128) -> Transaction {
    let message = Message {
        program_id: call.program_id,
        account_ids: call.account_ids.clone(),
        nonces: vec![nonce],
        instruction_data: call.instruction_data(),
    };
    Transaction::sign(message, &[key])
}

/// (setup, workload) per owner, in order.
fn transactions(owner: &SecretKey, provider: &SecretKey, rounds: u64) -> (Vec<Transaction>, Vec<Transaction>) {
    let vault = VaultRef::native(payment_streams_program_id(), owner.account_id(), 1);
    let setup = vec![
        sign(&client::initialize_vault(&vault, VaultPrivacyTier::Public), owner, 0),
        sign(&client::deposit(&vault, 10_000_000, authenticated_transfer_program_id(), None), owner, 1),
    ];
    let mut work = vec![];
    let (mut nonce, mut provider_nonce) = (2_u128, 0_u128);
    let mut owner_tx = |call: Call, work: &mut Vec<Transaction>| {
        work.push(sign(&call, owner, nonce));
        nonce += 1;
    };
    for stream in 0..rounds {
        owner_tx(
            client::create_stream(&vault, stream, provider.account_id(), 1, 1_000, ExtensionSettings::default()),
            &mut work,
        );
        owner_tx(client::top_up_stream(&vault, stream, 100), &mut work);
        owner_tx(client::pause_stream(&vault, stream), &mut work);
        owner_tx(client::resume_stream(&vault, stream), &mut work);
        let claim = client::claim(&vault, stream, provider.account_id(), None, None);
        work.push(sign(&claim, provider, provider_nonce));
        provider_nonce += 1;
    }
    (setup, work)
}

fn b64(tx: &Transaction) -> String {
    base64::engine::general_purpose::STANDARD.encode(tx.envelope_bytes())
}

/// How the node receives the transactions.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Submit {
    /// One `sendTransaction` per transaction from `CLIENTS` concurrent clients.
    One,
    /// `paystreams_sendTransactions` with up to `BATCH` transactions per call from `CLIENTS` clients.
    Batch,
}

/// Transactions per `paystreams_sendTransactions` call.
const BATCH: usize = 500;

/// Submits each owner's list in order, `CLIENTS` clients at a time, and returns when the last
/// transaction every client sent is committed: (elapsed, hashes in submission order).
async fn run_on_node(url: &str, per_owner: Vec<Vec<Transaction>>, mode: Submit) -> (Duration, Vec<HexHash>) {
    let started = Instant::now();
    let queue = Arc::new(std::sync::Mutex::new(per_owner));
    let mut tasks = vec![];
    for _ in 0..CLIENTS {
        let (queue, url) = (Arc::clone(&queue), url.to_owned());
        tasks.push(tokio::spawn(async move {
            let rpc = HttpClientBuilder::default()
                .request_timeout(Duration::from_secs(60))
                .max_request_size(64 * 1024 * 1024)
                .build(url)
                .unwrap();
            let mut hashes: Vec<HexHash> = vec![];
            loop {
                // A batch takes whole owner lists (each in nonce order) up to BATCH transactions.
                let lists: Vec<Vec<Transaction>> = {
                    let mut queue = queue.lock().unwrap();
                    let mut taken = vec![];
                    let mut count = 0;
                    while let Some(list) = queue.last() {
                        if !taken.is_empty() && (mode == Submit::One || count + list.len() > BATCH) {
                            break;
                        }
                        count += list.len();
                        taken.push(queue.pop().unwrap());
                    }
                    taken
                };
                if lists.is_empty() {
                    break;
                }
                let txs: Vec<&Transaction> = lists.iter().flatten().collect();
                match mode {
                    Submit::One => {
                        for tx in txs {
                            loop {
                                match rpc.send_transaction(b64(tx)).await {
                                    Ok(hash) => {
                                        hashes.push(hash);
                                        break;
                                    }
                                    // Mempool full: back off and retry.
                                    Err(jsonrpsee::core::ClientError::Call(e))
                                        if e.code() == paystreams_rpc::codes::MEMPOOL_FULL =>
                                    {
                                        tokio::time::sleep(Duration::from_millis(20)).await;
                                    }
                                    // Refused for good: a claim that failed in a block leaves the
                                    // provider's later claims gapped (failed transactions move no
                                    // nonce) when a block lands between two of them.
                                    Err(_) => break,
                                }
                            }
                        }
                    }
                    Submit::Batch => {
                        let encoded: Vec<String> = txs.iter().map(|tx| b64(tx)).collect();
                        let outcomes = rpc.send_transactions(encoded).await.unwrap();
                        // A refusal is a claim gapped behind a failed one (see above).
                        hashes.extend(outcomes.into_iter().filter_map(|outcome| outcome.hash));
                    }
                }
            }
            // The mempool is first in, first out: once this client's last transaction is
            // committed, so are all of its earlier ones.
            if let Some(last) = hashes.last() {
                loop {
                    let receipt = rpc.get_transaction_receipt(*last).await.unwrap().unwrap();
                    if receipt.status == TxStatus::Pending {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    } else {
                        break;
                    }
                }
            }
            hashes
        }));
    }
    let mut hashes = vec![];
    for task in tasks {
        hashes.extend(task.await.unwrap());
    }
    (started.elapsed(), hashes)
}

/// Failed receipts among `hashes` (read after the timing; every one must be committed).
async fn failed_receipts(url: &str, hashes: &[HexHash]) -> usize {
    let rpc = HttpClientBuilder::default().build(url).unwrap();
    let mut failed = 0;
    for hash in hashes {
        let receipt = rpc.get_transaction_receipt(*hash).await.unwrap().unwrap();
        match receipt.status {
            TxStatus::Failed => failed += 1,
            TxStatus::Included => {}
            TxStatus::Pending => panic!("transaction {hash} still pending after the timing ended"),
        }
    }
    failed
}

/// One node run: a fresh durable node, the setup (not timed), then the timed workload.
/// Returns (keys, setup, work, elapsed, failed receipts, blocks).
#[allow(clippy::type_complexity, reason = "a benchmark's one internal result")]
fn measure_node(
    runtime: &tokio::runtime::Runtime,
    owners: usize,
    rounds: u64,
    mode: Submit,
) -> (Vec<SecretKey>, Vec<Vec<Transaction>>, Vec<Vec<Transaction>>, Duration, usize, u64) {
    let dir = tempfile::tempdir().unwrap();
    let config = NodeConfig {
        data_dir: Some(dir.path().join("chain")),
        automine: false,
        block_time: Duration::from_millis(100),
        dev_accounts: u32::try_from(owners * 2).unwrap(),
        ..NodeConfig::ephemeral_dev()
    };
    let node = runtime.block_on(start(config)).unwrap();
    let keys = node.dev_keys().to_vec();
    let (owner_keys, provider_keys) = keys.split_at(owners);
    let (mut setup, mut work): (Vec<Vec<Transaction>>, Vec<Vec<Transaction>>) = (vec![], vec![]);
    for (owner, provider) in owner_keys.iter().zip(provider_keys) {
        let (s, w) = transactions(owner, provider, rounds);
        setup.push(s);
        work.push(w);
    }
    let url = node.rpc_url();
    let (_, setup_hashes) = runtime.block_on(run_on_node(&url, setup.clone(), Submit::Batch));
    assert_eq!(runtime.block_on(failed_receipts(&url, &setup_hashes)), 0);
    let start_height = node.chain().head_height();
    let (elapsed, hashes) = runtime.block_on(run_on_node(&url, work.clone(), mode));
    let height = node.chain().head_height() - start_height;
    let failed = runtime.block_on(failed_receipts(&url, &hashes));
    runtime.block_on(node.shutdown());
    (keys, setup, work, elapsed, failed, height)
}

/// Applies blocks of transactions on an in-memory state. Returns (elapsed, failed).
fn run_on_runtime(
    runtime: &Runtime,
    state: &mut paystreams_runtime::State,
    txs: &[Transaction],
    block: &mut u64,
) -> (Duration, usize) {
    let started = Instant::now();
    let mut failed = 0;
    for chunk in txs.chunks(MAX_TXS_PER_BLOCK) {
        *block += 1;
        let ctx = BlockContext { block_id: *block, timestamp_ms: 1_700_000_000_000 + *block * 100 };
        let diff = {
            let mut overlay = Overlay::new(&*state);
            for tx in chunk {
                match runtime.apply(&overlay, tx, &ctx) {
                    Ok(applied) => overlay.apply_diff(&applied.diff),
                    Err(_) => failed += 1,
                }
            }
            let clock = runtime.clock_update(&overlay, &ctx).unwrap();
            overlay.apply_diff(&clock);
            overlay.into_diff()
        };
        state.apply_diff(&diff);
        // The node computes the state root for every block header; so does the baseline.
        let _ = state.state_root();
    }
    (started.elapsed(), failed)
}

fn rate(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

fn main() {
    let args: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let owners = usize::try_from(args.first().copied().unwrap_or(200)).unwrap();
    let rounds = args.get(1).copied().unwrap_or(5);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();

    let (_, _, _, one_elapsed, one_failed, one_blocks) = measure_node(&runtime, owners, rounds, Submit::One);
    let (keys, setup, work, batch_elapsed, batch_failed, batch_blocks) =
        measure_node(&runtime, owners, rounds, Submit::Batch);
    let total: usize = work.iter().map(Vec::len).sum();
    let owner_keys = &keys[..owners];

    // Runtime: the same genesis balances, the same transactions as the batch run.
    let rt = Runtime::new();
    let funded: Vec<_> = keys.iter().map(|k| (k.account_id(), paystreams_node::DEFAULT_DEV_BALANCE)).collect();
    let mut state = paystreams_runtime::genesis(&funded, 1_700_000_000_000);
    let mut block = 0;
    let setup_flat: Vec<Transaction> = setup.into_iter().flatten().collect();
    let (_, failed) = run_on_runtime(&rt, &mut state, &setup_flat, &mut block);
    assert_eq!(failed, 0);
    // Round-major order, as concurrent clients interleave owners.
    let work_flat: Vec<Transaction> = (0..work.iter().map(Vec::len).max().unwrap_or(0))
        .flat_map(|i| work.iter().filter_map(move |list| list.get(i).cloned()))
        .collect();
    let (rt_elapsed, rt_failed) = run_on_runtime(&rt, &mut state, &work_flat, &mut block);
    assert!(state.account(&owner_keys[0].account_id()).nonce > 0);

    let one_rate = rate(total, one_elapsed);
    let batch_rate = rate(total, batch_elapsed);
    let rt_rate = rate(total, rt_elapsed);
    println!(
        "workload: {owners} owners x {rounds} rounds x (create, top-up, pause, resume, claim) = {total} transactions"
    );
    println!(
        "node, sendTransaction x{CLIENTS} clients:      {one_rate:>10.0} tx/s  ({one_elapsed:.2?}, {one_failed} failed receipts, {one_blocks} blocks)"
    );
    println!(
        "node, sendTransactions ({BATCH}/call):      {batch_rate:>10.0} tx/s  ({batch_elapsed:.2?}, {batch_failed} failed receipts, {batch_blocks} blocks)"
    );
    println!(
        "runtime (in memory, one thread, same blocks): {rt_rate:>10.0} tx/s  ({rt_elapsed:.2?}, {rt_failed} failed)"
    );
    println!(
        "node/runtime ratio: {:.3} (sendTransactions), {:.3} (sendTransaction)",
        batch_rate / rt_rate,
        one_rate / rt_rate
    );
}
