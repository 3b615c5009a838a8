//! Bounded RPC load against a node on 127.0.0.1: a fixed number of requests over a fixed number
//! of HTTP connections, a read-heavy mix with transaction submissions, timed blocks. Reports
//! throughput, latency percentiles, errors by kind and the process's resident memory before,
//! during and after; exits non-zero if any request failed (nothing here exceeds the node's
//! configured limits, so no request may fail).
//!
//! `cargo bench -p paystreams-node --bench rpc_load [-- REQUESTS CONNECTIONS]` (default 10000 64)

#![allow(clippy::unwrap_used, reason = "a benchmark binary: fail loudly")]

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use base64::Engine as _;
use jsonrpsee::http_client::HttpClientBuilder;
use paystreams_lez_core::{crypto::SecretKey, transfer::authenticated_transfer_program_id};
use paystreams_node::{NodeConfig, start};
use paystreams_rpc::{LezApiClient as _, PaystreamsApiClient as _, StreamFilter};
use paystreams_runtime::{Message, Transaction};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn transfer(from: &SecretKey, to: paystreams_lez_core::AccountId, nonce: u128) -> String {
    let message = Message {
        program_id: authenticated_transfer_program_id(),
        account_ids: vec![from.account_id(), to],
        nonces: vec![nonce],
        instruction_data: paystreams_lez_core::transfer::transfer_instruction(1),
    };
    base64::engine::general_purpose::STANDARD.encode(Transaction::sign(message, &[from]).envelope_bytes())
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() { Duration::ZERO } else { sorted[(sorted.len() - 1) * p / 100] }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let requests = args.first().copied().unwrap_or(10_000);
    let connections = args.get(1).copied().unwrap_or(64);
    let config = NodeConfig { block_time: Duration::from_millis(100), automine: false, ..NodeConfig::ephemeral_dev() };
    let node = start(config).await.unwrap();
    let url = node.rpc_url();
    let keys: Vec<SecretKey> = node.dev_keys().to_vec();
    let rss_start = rss_kib();
    let errors: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let latencies: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(rss_start));
    let started = Instant::now();
    let per_connection = requests / connections;
    let mut tasks = Vec::new();
    for c in 0..connections {
        let client = HttpClientBuilder::default().build(&url).unwrap();
        let (errors, latencies, peak) = (Arc::clone(&errors), Arc::clone(&latencies), Arc::clone(&peak));
        // One sender key per connection that submits (keys are reused across connections only
        // for reads), so nonces never race.
        let sender = (c < keys.len()).then(|| keys[c].clone());
        let receiver = keys[(c + 1) % keys.len()].account_id();
        tasks.push(tokio::spawn(async move {
            let mut nonce: u128 = 0;
            let mut local = Vec::with_capacity(per_connection);
            for i in 0..per_connection {
                let t = Instant::now();
                let result = match (i % 10, &sender) {
                    (0, Some(key)) => {
                        let r = client.send_transaction(transfer(key, receiver, nonce)).await.map(|_| ());
                        nonce += 1;
                        r
                    }
                    (1 | 2, _) => client.get_last_block_id().await.map(|_| ()),
                    (3 | 4, _) => client.get_account(receiver).await.map(|_| ()),
                    (5, _) => {
                        client.list_streams(StreamFilter { owner: Some(receiver), provider: None }).await.map(|_| ())
                    }
                    (6, _) => client.get_accounts_nonces(vec![receiver]).await.map(|_| ()),
                    _ => client.get_block_info(paystreams_lez_core::lez_block::GENESIS_BLOCK_ID).await.map(|_| ()),
                };
                local.push(t.elapsed());
                if let Err(e) = result {
                    let kind = e.to_string().chars().take(80).collect::<String>();
                    *errors.lock().unwrap().entry(kind).or_default() += 1;
                }
                if i % 100 == 0 {
                    peak.fetch_max(rss_kib(), std::sync::atomic::Ordering::Relaxed);
                }
            }
            latencies.lock().unwrap().extend(local);
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed();
    // Let the last submitted transactions commit, then read memory at rest.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_end = rss_kib();
    let mut all = latencies.lock().unwrap().clone();
    all.sort();
    let total = all.len();
    let errors = errors.lock().unwrap().clone();
    let failed: u64 = errors.values().sum();
    println!(
        "RPC load: {total} requests over {connections} HTTP connections (10% sendTransaction, 90% reads), 100 ms blocks"
    );
    println!(
        "  {:.0} requests/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        total as f64 / elapsed.as_secs_f64(),
        percentile(&all, 50).as_secs_f64() * 1e3,
        percentile(&all, 99).as_secs_f64() * 1e3,
        all.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    println!(
        "  resident memory (node and load generator): start {} MiB, peak {} MiB, end {} MiB",
        rss_start / 1024,
        peak.load(std::sync::atomic::Ordering::Relaxed) / 1024,
        rss_end / 1024
    );
    println!("  errors: {failed} {errors:?}");
    println!("  head height {}", HttpClientBuilder::default().build(&url).unwrap().get_last_block_id().await.unwrap());
    node.shutdown().await;
    if failed > 0 {
        std::process::exit(1);
    }
}
