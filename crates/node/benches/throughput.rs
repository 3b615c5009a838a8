//! Sustained throughput of the durable node versus the bare runtime, on a workload where every
//! transaction succeeds.
//!
//! `cargo bench -p paystreams-node --bench throughput [-- OWNERS ROUNDS]`
//!
//! Setup (not timed), per owner: a native vault, a deposit, and `OLD_PER_ROUND` streams per
//! round to a provider of its own; then the clock moves forward an hour (the node's dev clock,
//! the runtime's block timestamps) so those streams have something to claim. Timed, per owner
//! and round, 20 pre-signed transactions: 13 claims (the provider, each on another old
//! stream), and from the owner a deposit, a new stream, 2 top-ups (of claimed streams), a pause
//! and a resume (of one stream), a close (of another). Operations of the owner and of the
//! provider never touch the same stream in an order-dependent way, so each succeeds in any
//! interleaving of clients; the benchmark asserts zero failed receipts on both sides. The node
//! receives them over JSON-RPC (HTTP, several concurrent clients, one owner's transactions in
//! order), checks signatures at admission, produces 100 ms blocks and commits each to redb
//! with immediate durability in a temporary directory; the time runs until the last receipt is
//! committed. Inclusion latency: from sending a transaction (its call) to its block being
//! applied (the chain's block broadcast). The runtime applies the same transactions in memory
//! (`Runtime::apply`, signatures included) in blocks of the same size limit with the clock
//! update and a state root after each block.

#![allow(clippy::unwrap_used, reason = "a benchmark binary: fail loudly")]

use std::{
    collections::HashMap,
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
use paystreams_testkit::cpu::process_cpu;

/// Concurrent RPC clients submitting.
const CLIENTS: usize = 8;
/// Concurrent clients of the second one-per-call run: many users, each waiting for its answer.
const MANY_CLIENTS: usize = 64;

fn sign(call: &Call, key: &SecretKey, nonce: u128) -> Transaction {
    let message = Message {
        program_id: call.program_id,
        account_ids: call.account_ids.clone(),
        nonces: vec![nonce],
        instruction_data: call.instruction_data(),
    };
    Transaction::sign(message, &[key])
}

/// Old streams per owner and round: 13 claimed (2 of them also topped up), 1 paused and
/// resumed, 1 closed.
const OLD_PER_ROUND: u64 = 15;
/// Claims per owner and round.
const CLAIMS_PER_ROUND: u64 = 13;
/// Timed transactions per owner and round.
const PER_ROUND: usize = 20;
/// How far the clock moves between the setup and the timed workload.
const ADVANCE_SECS: u64 = 3_600;
/// Each stream's rate (per second) and allocation: an hour accrues 3,600 of 100,000.
const RATE: u64 = 1;
const ALLOCATION: u128 = 100_000;

/// (setup, workload) per owner, in order (the owner's nonces then the provider's).
fn transactions(owner: &SecretKey, provider: &SecretKey, rounds: u64) -> (Vec<Transaction>, Vec<Transaction>) {
    let vault = VaultRef::native(payment_streams_program_id(), owner.account_id(), 1);
    let old = OLD_PER_ROUND * rounds;
    let mut setup = vec![
        sign(&client::initialize_vault(&vault, VaultPrivacyTier::Public), owner, 0),
        sign(&client::deposit(&vault, 20_000_000, authenticated_transfer_program_id(), None), owner, 1),
    ];
    let mut nonce = 2_u128;
    for stream in 0..old {
        let call = client::create_stream(
            &vault,
            stream,
            provider.account_id(),
            RATE,
            ALLOCATION,
            ExtensionSettings::default(),
        );
        setup.push(sign(&call, owner, nonce));
        nonce += 1;
    }
    let mut work = vec![];
    let mut provider_nonce = 0_u128;
    let mut owner_tx = |call: Call, work: &mut Vec<Transaction>| {
        work.push(sign(&call, owner, nonce));
        nonce += 1;
    };
    for round in 0..rounds {
        let base = round * OLD_PER_ROUND;
        let (claimed, paused, closed) = (base, base + CLAIMS_PER_ROUND, base + CLAIMS_PER_ROUND + 1);
        owner_tx(client::deposit(&vault, 1_000, authenticated_transfer_program_id(), None), &mut work);
        let new_stream = old + round;
        owner_tx(
            client::create_stream(
                &vault,
                new_stream,
                provider.account_id(),
                RATE,
                ALLOCATION,
                ExtensionSettings::default(),
            ),
            &mut work,
        );
        owner_tx(client::top_up_stream(&vault, claimed, 100), &mut work);
        owner_tx(client::top_up_stream(&vault, claimed + 1, 100), &mut work);
        owner_tx(client::pause_stream(&vault, paused), &mut work);
        owner_tx(client::resume_stream(&vault, paused), &mut work);
        owner_tx(client::close_stream_by_owner(&vault, closed), &mut work);
        for stream in claimed..claimed + CLAIMS_PER_ROUND {
            let claim = client::claim(&vault, stream, provider.account_id(), None, None);
            work.push(sign(&claim, provider, provider_nonce));
            provider_nonce += 1;
        }
    }
    debug_assert_eq!(work.len(), PER_ROUND * usize::try_from(rounds).unwrap());
    (setup, work)
}

fn b64(tx: &Transaction) -> String {
    base64::engine::general_purpose::STANDARD.encode(tx.envelope_bytes())
}

/// How the node receives the transactions.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Submit {
    /// One `sendTransaction` per transaction from this many concurrent clients.
    One(usize),
    /// `paystreams_sendTransactions` with up to `BATCH` transactions per call from `CLIENTS` clients.
    Batch,
}

/// Transactions per `paystreams_sendTransactions` call.
const BATCH: usize = 500;

/// Back-offs of the clients for a full mempool (printed: admission outran block production).
static BACKOFFS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Submits each owner's list in order, `CLIENTS` clients at a time, and returns when the last
/// transaction every client sent is committed: (elapsed, hashes in submission order with the
/// instant each was sent).
async fn run_on_node(url: &str, per_owner: Vec<Vec<Transaction>>, mode: Submit) -> (Duration, Vec<(HexHash, Instant)>) {
    // Clients hold their signed envelopes ready, as the runtime side holds its transactions.
    let per_owner: Vec<Vec<String>> = per_owner.iter().map(|list| list.iter().map(b64).collect()).collect();
    let started = Instant::now();
    let queue = Arc::new(std::sync::Mutex::new(per_owner));
    let mut tasks = vec![];
    let clients = match mode {
        Submit::One(clients) => clients,
        Submit::Batch => CLIENTS,
    };
    for _ in 0..clients {
        let (queue, url) = (Arc::clone(&queue), url.to_owned());
        tasks.push(tokio::spawn(async move {
            let rpc = HttpClientBuilder::default()
                .request_timeout(Duration::from_secs(60))
                .max_request_size(64 * 1024 * 1024)
                .build(url)
                .unwrap();
            let mut hashes: Vec<(HexHash, Instant)> = vec![];
            loop {
                // A batch takes whole owner lists (each in nonce order) up to BATCH transactions.
                let lists: Vec<Vec<String>> = {
                    let mut queue = queue.lock().unwrap();
                    let mut taken = vec![];
                    let mut count = 0;
                    while let Some(list) = queue.last() {
                        if !taken.is_empty() && (matches!(mode, Submit::One(_)) || count + list.len() > BATCH) {
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
                let txs: Vec<&String> = lists.iter().flatten().collect();
                match mode {
                    Submit::One(_) => {
                        for tx in txs {
                            let sent = Instant::now();
                            loop {
                                match rpc.send_transaction(tx.clone()).await {
                                    Ok(hash) => {
                                        hashes.push((hash, sent));
                                        break;
                                    }
                                    // Mempool full: back off and retry.
                                    Err(jsonrpsee::core::ClientError::Call(e))
                                        if e.code() == paystreams_rpc::codes::MEMPOOL_FULL =>
                                    {
                                        BACKOFFS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                        tokio::time::sleep(Duration::from_millis(20)).await;
                                    }
                                    // Every transaction of the workload is admitted.
                                    Err(e) => panic!("refused: {e}"),
                                }
                            }
                        }
                    }
                    Submit::Batch => {
                        let mut unsent: Vec<String> = txs.into_iter().cloned().collect();
                        while !unsent.is_empty() {
                            let sent = Instant::now();
                            let outcomes = rpc.send_transactions(unsent.clone()).await.unwrap();
                            // Every transaction of the workload is admitted, once the mempool
                            // has room: after a refusal for a full mempool, the rest of the call
                            // may be refused too (the same owner's next nonces then skip one),
                            // and those refused go again, in order, after a back-off.
                            let mut full = false;
                            let mut again = vec![];
                            for (tx, outcome) in unsent.iter().zip(outcomes) {
                                match (outcome.hash, outcome.error) {
                                    (Some(hash), None) => hashes.push((hash, sent)),
                                    (_, Some(e)) if e.code == paystreams_rpc::codes::MEMPOOL_FULL || full => {
                                        full = true;
                                        again.push(tx.clone());
                                    }
                                    (_, error) => panic!("refused: {error:?}"),
                                }
                            }
                            if !again.is_empty() {
                                BACKOFFS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                            unsent = again;
                        }
                    }
                }
            }
            // The mempool is first in, first out: once this client's last transaction is
            // committed, so are all of its earlier ones.
            if let Some((last, _)) = hashes.last() {
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
async fn failed_receipts(url: &str, hashes: &[(HexHash, Instant)]) -> usize {
    let rpc = HttpClientBuilder::default().build(url).unwrap();
    let mut failed = 0;
    for (hash, _) in hashes {
        let receipt = rpc.get_transaction_receipt(*hash).await.unwrap().unwrap();
        match receipt.status {
            TxStatus::Failed => failed += 1,
            TxStatus::Included => {}
            TxStatus::Pending => panic!("transaction {hash} still pending after the timing ended"),
        }
    }
    failed
}

/// What one node run measured.
struct NodeRun {
    elapsed: Duration,
    failed: usize,
    blocks: u64,
    /// Inclusion latency percentiles (p50, p99).
    latency: (Duration, Duration),
    /// CPU time of the whole process (node and clients) over the timed part.
    cpu: Option<Duration>,
}

/// The `percent` percentile of sorted durations.
fn percentile(sorted: &[Duration], percent: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[(sorted.len() - 1) * percent / 100]
}

/// One node run: a fresh durable node, the setup and the clock advance (not timed), then the
/// timed workload.
/// Returns the genesis keys, the setup and workload per owner, and the figures.
#[expect(clippy::type_complexity, reason = "a benchmark's one internal result")]
fn measure_node(
    runtime: &tokio::runtime::Runtime,
    owners: usize,
    rounds: u64,
    mode: Submit,
) -> (Vec<SecretKey>, Vec<Vec<Transaction>>, Vec<Vec<Transaction>>, NodeRun) {
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
    assert_eq!(runtime.block_on(failed_receipts(&url, &setup_hashes)), 0, "setup transactions failed");
    let rpc = HttpClientBuilder::default().build(&url).unwrap();
    runtime.block_on(rpc.dev_advance_time(ADVANCE_SECS)).unwrap();
    let start_height = node.chain().head_height();
    // When each block was applied, from the chain's broadcast.
    let mut blocks = node.chain().subscribe();
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let applied = runtime.spawn(async move {
        let mut applied: HashMap<HexHash, Instant> = HashMap::new();
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                block = blocks.recv() => match block {
                    Ok(block) => {
                        let now = Instant::now();
                        applied.extend(block.info.transactions.iter().map(|h| (*h, now)));
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                },
            }
        }
        applied
    });
    // For profilers attached by time (see `BENCH_MODES`).
    eprintln!("timed part starts: {mode:?}");
    let cpu_before = process_cpu();
    let (elapsed, hashes) = runtime.block_on(run_on_node(&url, work.clone(), mode));
    let cpu = process_cpu().zip(cpu_before).map(|(after, before)| after.saturating_sub(before));
    eprintln!("timed part ends");
    let height = node.chain().head_height() - start_height;
    stop.send(()).unwrap();
    let applied = runtime.block_on(applied).unwrap();
    let mut latencies: Vec<Duration> = hashes
        .iter()
        .filter_map(|(hash, sent)| applied.get(hash).map(|at| at.saturating_duration_since(*sent)))
        .collect();
    latencies.sort();
    let failed = runtime.block_on(failed_receipts(&url, &hashes));
    runtime.block_on(node.shutdown());
    let run = NodeRun {
        elapsed,
        failed,
        blocks: height,
        latency: (percentile(&latencies, 50), percentile(&latencies, 99)),
        cpu,
    };
    (keys, setup, work, run)
}

/// Applies blocks of transactions on an in-memory state, 100 ms apart after `offset_ms`.
/// Returns (elapsed, failed).
fn run_on_runtime(
    runtime: &Runtime,
    state: &mut paystreams_runtime::State,
    txs: &[Transaction],
    block: &mut u64,
    offset_ms: u64,
) -> (Duration, usize) {
    let started = Instant::now();
    let mut failed = 0;
    for chunk in txs.chunks(MAX_TXS_PER_BLOCK) {
        *block += 1;
        let ctx = BlockContext { block_id: *block, timestamp_ms: 1_700_000_000_000 + offset_ms + *block * 100 };
        let diff = {
            let mut overlay = Overlay::new(&*state);
            for tx in chunk {
                match runtime.apply(&overlay, tx, &ctx) {
                    Ok(applied) => overlay.apply_diff(&applied.diff),
                    Err(e) => {
                        if failed == 0 {
                            eprintln!("runtime: first failure in block {block}: {e}");
                        }
                        failed += 1;
                    }
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

    // `BENCH_MODES` (comma-separated: one, many, batch; all by default) runs only those node
    // modes, for profiling one at a time; the runtime baseline always runs.
    let wanted =
        |name: &str| std::env::var("BENCH_MODES").ok().is_none_or(|modes| modes.split(',').any(|m| m.trim() == name));
    let run = |mode: Submit, name: &str| {
        if wanted(name) { Some(measure_node(&runtime, owners, rounds, mode)) } else { None }
    };
    let one = run(Submit::One(CLIENTS), "one").map(|r| r.3);
    let many = run(Submit::One(MANY_CLIENTS), "many").map(|r| r.3);
    let (keys, setup, work, batch) = match run(Submit::Batch, "batch") {
        Some((keys, setup, work, batch)) => (keys, setup, work, Some(batch)),
        None => {
            let keys: Vec<SecretKey> = (0..owners * 2).map(|_| SecretKey::generate()).collect();
            let (owner_keys, provider_keys) = keys.split_at(owners);
            let (setup, work) = owner_keys.iter().zip(provider_keys).map(|(o, p)| transactions(o, p, rounds)).unzip();
            (keys, setup, work, None)
        }
    };
    let total: usize = work.iter().map(Vec::len).sum();
    let owner_keys = &keys[..owners];

    // Runtime: the same genesis balances, the same transactions as the batch run, the same
    // clock advance between the setup and the workload.
    let rt = Runtime::new();
    let funded: Vec<_> = keys.iter().map(|k| (k.account_id(), paystreams_node::DEFAULT_DEV_BALANCE)).collect();
    let mut state = paystreams_runtime::genesis(&funded, 1_700_000_000_000);
    let mut block = 0;
    let setup_flat: Vec<Transaction> = setup.into_iter().flatten().collect();
    let (_, failed) = run_on_runtime(&rt, &mut state, &setup_flat, &mut block, 0);
    assert_eq!(failed, 0, "setup transactions failed in the runtime");
    // The clock moves in a block of its own, as the node's `paystreams_devAdvanceTime` does.
    block += 1;
    let ctx = BlockContext { block_id: block, timestamp_ms: 1_700_000_000_000 + ADVANCE_SECS * 1000 + block * 100 };
    let clock = rt.clock_update(&state, &ctx).unwrap();
    state.apply_diff(&clock);
    // Round-major order, as concurrent clients interleave owners.
    let work_flat: Vec<Transaction> = (0..work.iter().map(Vec::len).max().unwrap_or(0))
        .flat_map(|i| work.iter().filter_map(move |list| list.get(i).cloned()))
        .collect();
    let (rt_elapsed, rt_failed) = run_on_runtime(&rt, &mut state, &work_flat, &mut block, ADVANCE_SECS * 1000);
    assert!(state.account(&owner_keys[0].account_id()).nonce > 0);

    let rt_rate = rate(total, rt_elapsed);
    println!(
        "workload: {owners} owners x {rounds} rounds x 20 (13 claims, deposit, create, 2 top-ups, pause, resume, \
         close) = {total} transactions"
    );
    // The node modes run (`BENCH_MODES`), each with its ratio to the runtime.
    let modes = [
        (format!("sendTransaction x{CLIENTS} clients"), one),
        (format!("sendTransaction x{MANY_CLIENTS} clients"), many),
        (format!("sendTransactions ({BATCH}/call)"), batch),
    ];
    let mut ratios = vec![];
    for (name, run) in modes.iter().filter_map(|(name, run)| run.as_ref().map(|run| (name, run))) {
        let node_rate = rate(total, run.elapsed);
        // CPU per transaction moves less with other load than throughput does.
        let cpu = run.cpu.map_or_else(
            || "CPU unknown".to_string(),
            |cpu| {
                format!(
                    "CPU {:.0} µs/tx, {:.2} cores busy",
                    cpu.as_secs_f64() * 1e6 / total as f64,
                    cpu.as_secs_f64() / run.elapsed.as_secs_f64()
                )
            },
        );
        println!(
            "{:<46}{node_rate:>8.0} tx/s  ({:.2?}, {} failed receipts, {} blocks, inclusion p50 {:.0?} p99 {:.0?}, {cpu})",
            format!("node, {name}:"),
            run.elapsed,
            run.failed,
            run.blocks,
            run.latency.0,
            run.latency.1
        );
        ratios.push(format!("{:.3} ({name})", node_rate / rt_rate));
    }
    println!(
        "{:<46}{rt_rate:>8.0} tx/s  ({rt_elapsed:.2?}, {rt_failed} failed)",
        "runtime (in memory, one thread, same blocks):"
    );
    println!("node/runtime ratio: {}", ratios.join(", "));
    println!(
        "client back-offs for a full mempool (admission ahead of block production): {}",
        BACKOFFS.load(std::sync::atomic::Ordering::Relaxed)
    );
    let node_failed = modes.iter().filter_map(|(_, run)| run.as_ref()).any(|run| run.failed > 0);
    assert!(!node_failed && rt_failed == 0, "every transaction of the workload succeeds");
}
