//! Paid versus unpaid Store queries over libp2p on loopback, same archive and query mix, in one
//! run: throughput ratio and p50/p99 latency ratios.
//!
//! The paid provider runs the whole eligibility path on every query (proof decode, session
//! lookup, BIP-340 verification, replay record, stream check against the chain view); the free
//! provider serves the same archive with no payment. Paid queries are measured twice: with the
//! user signing each request's stream proof inside the timed loop (in this process, so on the
//! same two cores as the provider), and with the round's proofs signed before the clock starts,
//! as a user on another machine would, which leaves the provider's own cost of payment. Rounds
//! alternate between the three so all see the same machine conditions.
//!
//! `cargo bench -p paystreams-store --bench paid_vs_free` (env `BENCH_REQUESTS`, default 4000
//! per mode; `BENCH_CONCURRENCY`, default 8 requests in flight; `BENCH_MODES`, a comma-separated
//! subset of `paid,presigned,free,client` to run only those, e.g. under `perf record`).
//!
//! Besides throughput and latency it prints the process's CPU time per query in each mode
//! (user + system, from `/proc/self/stat` on Linux): how much more work a paid query is, and,
//! against the elapsed time, whether the run was CPU-bound. And where a query's latency goes:
//! the provider's own stages (its `Metrics::stage_nanos`: decode, verdict, archive wait,
//! response) and the rest of the mean latency (the client, both swarms, the transport and the
//! task hops between them).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use futures::{StreamExt as _, stream};
use libp2p::identity::Keypair;
use paystreams_client::Client;
use paystreams_node::NodeConfig;
use paystreams_provider::{EngineLimits, ProviderPolicy};
use paystreams_rpc::remote::RpcChain;
use paystreams_store::{
    Archive as _, STORE_SERVICE_ID,
    archive::{SqliteArchive, StoredMessage},
    client::{PaidStore, StoreClient, new_request_id},
    net::P2p,
    provider::{ProviderConfig, ServiceOptions, SessionBackend, start},
    service::{FreeStoreService, Metrics, Stage},
    wire::{StoreQueryRequest, WakuMessage},
};
use paystreams_testkit::cpu::process_cpu;
use paystreams_user::{Terms, User, UserConfig};
use paystreams_wire::TokenStreamPolicy;

const PUBSUB: &str = "/waku/2/default-waku/proto";
const TOPICS: [&str; 4] = ["/bench/1/a/proto", "/bench/1/b/proto", "/bench/1/c/proto", "/bench/1/d/proto"];
const MESSAGES: u32 = 2_000;
const ROUNDS: usize = 10;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn request(i: usize) -> StoreQueryRequest {
    StoreQueryRequest {
        request_id: new_request_id(),
        include_data: true,
        pubsub_topic: Some(PUBSUB.into()),
        content_topics: vec![TOPICS[i % TOPICS.len()].into()],
        pagination_forward: i.is_multiple_of(2),
        pagination_limit: Some(20),
        ..StoreQueryRequest::default()
    }
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[(sorted.len() - 1) * p / 100]
}

/// What a round measures.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The user signs each request's stream proof inside the timed loop, in this process.
    Paid = 0,
    /// The round's proofs are signed before the clock starts.
    PaidPresigned = 1,
    /// The same queries to a provider that takes no payment.
    Free = 2,
    /// The whole user path a paying client runs per page ([`PaidStore::page`]): a fresh
    /// request id, the session lookup, the signature, the send, the verdict's handling and
    /// the delivery acknowledgement.
    Client = 3,
}

struct Run {
    elapsed: Duration,
    latencies: Vec<Duration>,
    /// Process CPU time (user + system) spent during the round, when the platform tells.
    cpu: Option<Duration>,
    /// Nanoseconds the provider spent in each stage during the round.
    stages: [u64; Stage::ALL.len()],
}

fn stages(metrics: &Metrics) -> [u64; Stage::ALL.len()] {
    Stage::ALL.map(|s| metrics.stage_nanos[s as usize].load(std::sync::atomic::Ordering::Relaxed))
}

fn selected(mode: Mode) -> bool {
    let name = match mode {
        Mode::Paid => "paid",
        Mode::PaidPresigned => "presigned",
        Mode::Free => "free",
        Mode::Client => "client",
    };
    std::env::var("BENCH_MODES").ok().is_none_or(|modes| modes.split(',').any(|m| m.trim() == name))
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(bench());
}

#[expect(clippy::too_many_lines, reason = "setup, measurement and report in one place")]
async fn bench() {
    let per_mode = env_usize("BENCH_REQUESTS", 4_000);
    let concurrency = env_usize("BENCH_CONCURRENCY", 8);
    let node = paystreams_node::start(NodeConfig::ephemeral_dev()).await.expect("node");
    let client = Client::connect(&node.rpc_url()).expect("client");
    let (user_key, provider_key) = (node.dev_keys()[0].clone(), node.dev_keys()[1].clone());
    client.init_vault(&user_key, 0, None).await.expect("vault");
    client.deposit(&user_key, 0, 1_000_000_000).await.expect("deposit");

    let archive = Arc::new(SqliteArchive::in_memory().expect("archive"));
    let messages: Vec<StoredMessage> = (0..MESSAGES)
        .map(|i| {
            let m = WakuMessage {
                payload: format!("benchmark message {i:05} with a payload of typical chat length").into_bytes(),
                content_topic: TOPICS[i as usize % TOPICS.len()].into(),
                timestamp: Some(1_700_000_000_000_000_000 + i64::from(i) * 1_000_000),
                ..WakuMessage::default()
            };
            StoredMessage::new(PUBSUB.into(), m).expect("valid")
        })
        .collect();
    archive.insert(&messages).expect("seed");

    let mut policy = ProviderPolicy::new(
        provider_key.account_id().0,
        vec![STORE_SERVICE_ID.into()],
        vec![TokenStreamPolicy { token_id: [0; 32], min_rate: 1, min_allocation: 1_000_000 }],
    );
    policy.first_response_cap = 1 << 20;
    let paid_provider = start(
        ProviderConfig {
            rpc_url: node.rpc_url(),
            provider_key: provider_key.clone(),
            listen: "/ip4/127.0.0.1/tcp/0".parse().expect("addr"),
            policy,
            limits: EngineLimits::default(),
            sessions: SessionBackend::Memory,
            admin: None,
            tick_interval: Duration::from_secs(1),
            claim_on_shutdown: false,
            // A benchmark measures the service, not the per-peer limit.
            service: ServiceOptions {
                peer_limit: paystreams_store::service::PeerLimit { per_sec: u32::MAX, burst: u32::MAX },
                ..ServiceOptions::default()
            },
        },
        archive.clone(),
    )
    .await
    .expect("paid provider");
    let free_metrics = Arc::new(Metrics::default());
    let free = Arc::new(FreeStoreService::new(archive.clone(), Arc::clone(&free_metrics)));
    let free_node =
        P2p::start(Keypair::generate_ed25519(), Some("/ip4/127.0.0.1/tcp/0".parse().expect("addr")), Some(free))
            .await
            .expect("free provider");

    let user = Arc::new(User::new(user_key, RpcChain::new(client.clone()), UserConfig::default()));
    let to_paid = StoreClient::connect(&paid_provider.addrs()[0].to_string()).await.expect("client");
    let to_free = StoreClient::connect(&free_node.listen_addrs()[0].to_string()).await.expect("client");
    let terms =
        Terms { vault_id: 0, token_id: [0; 32], service_id: STORE_SERVICE_ID.into(), rate: 1, allocation: 1_000_000 };
    let paid = PaidStore::new(to_paid.clone(), Arc::clone(&user), terms).await.expect("policy");
    paid.page(&request(0)).await.expect("proposal and stream creation");
    let provider_id = provider_key.account_id().0;

    // Warm both paths.
    for i in 0..50 {
        let r = request(i);
        assert_eq!(to_free.send(&r).await.expect("free").status_code, Some(200));
        let mut r = request(i);
        r.eligibility_proof = Some(user.proof(&provider_id, &r.canonical()).await.expect("proof"));
        assert_eq!(to_paid.send(&r).await.expect("paid").status_code, Some(200));
    }

    let per_round = per_mode / ROUNDS;
    let mut runs: [Vec<Run>; 4] = [Vec::new(), Vec::new(), Vec::new(), Vec::new()];
    let paid = &paid;
    for _ in 0..ROUNDS {
        for mode in [Mode::Paid, Mode::PaidPresigned, Mode::Free, Mode::Client].into_iter().filter(|m| selected(*m)) {
            // Presigned: the user signs the round's requests before the clock starts, as a user on
            // another machine would; the timed part is the provider's work and the transport.
            let mut presigned: Vec<Option<StoreQueryRequest>> = Vec::new();
            if mode == Mode::PaidPresigned {
                for i in 0..per_round {
                    let mut r = request(i);
                    r.eligibility_proof = Some(user.proof(&provider_id, &r.canonical()).await.expect("proof"));
                    presigned.push(Some(r));
                }
            }
            presigned.resize_with(per_round, || None);
            let metrics = if mode == Mode::Free { &*free_metrics } else { paid_provider.metrics() };
            let stages_before = stages(metrics);
            let (started, cpu_before) = (Instant::now(), process_cpu());
            let latencies: Vec<Duration> = stream::iter(presigned.into_iter().enumerate())
                .map(|(i, ready)| {
                    let (user, to_paid, to_free) = (Arc::clone(&user), to_paid.clone(), to_free.clone());
                    async move {
                        let t = Instant::now();
                        let response = match (mode, ready) {
                            (Mode::Free, _) => to_free.send(&request(i)).await.expect("free"),
                            (Mode::Client, _) => paid.page(&request(i)).await.expect("paid page").response,
                            (_, Some(r)) => to_paid.send(&r).await.expect("paid"),
                            (_, None) => {
                                let mut r = request(i);
                                r.eligibility_proof =
                                    Some(user.proof(&provider_id, &r.canonical()).await.expect("proof"));
                                to_paid.send(&r).await.expect("paid")
                            }
                        };
                        assert_eq!(response.status_code, Some(200), "{response:?}");
                        assert_eq!(response.messages.len(), 20);
                        t.elapsed()
                    }
                })
                .buffer_unordered(concurrency)
                .collect()
                .await;
            let elapsed = started.elapsed();
            let cpu = process_cpu().zip(cpu_before).map(|(after, before)| after.saturating_sub(before));
            let after = stages(metrics);
            let stages = std::array::from_fn(|i| after[i].saturating_sub(stages_before[i]));
            runs[mode as usize].push(Run { elapsed, latencies, cpu, stages });
        }
    }

    let summarize = |runs: &[Run]| {
        let total: usize = runs.iter().map(|r| r.latencies.len()).sum();
        let elapsed: Duration = runs.iter().map(|r| r.elapsed).sum();
        let mut all: Vec<Duration> = runs.iter().flat_map(|r| r.latencies.iter().copied()).collect();
        all.sort();
        let qps = if total == 0 { 0.0 } else { total as f64 / elapsed.as_secs_f64() };
        let cpu: Option<Duration> = runs.iter().map(|r| r.cpu).sum();
        // CPU µs per query, and cores kept busy (CPU time over elapsed time).
        let cpu = cpu.filter(|_| total > 0).map(|c| {
            (c.as_secs_f64() * 1e6 / total as f64, c.as_secs_f64() / elapsed.as_secs_f64().max(f64::MIN_POSITIVE))
        });
        (qps, percentile(&all, 50), percentile(&all, 99), total, cpu)
    };
    let [in_loop, presigned, free, client] =
        [Mode::Paid, Mode::PaidPresigned, Mode::Free, Mode::Client].map(|m| summarize(&runs[m as usize]));
    println!(
        "Store queries over libp2p on loopback, {concurrency} in flight, 20 messages per page, {MESSAGES} archived, {ROUNDS} alternating rounds"
    );
    for (name, (qps, p50, p99, n, cpu)) in [
        ("paid, user signs in the loop", in_loop),
        ("paid, proofs signed ahead", presigned),
        ("free", free),
        ("paid, whole client path", client),
    ] {
        let cpu = cpu.map_or_else(String::new, |(per_query, cores)| {
            format!(", CPU {per_query:.0} µs/query ({cores:.2} cores busy)")
        });
        println!(
            "  {name:<30} {n} queries, {qps:>6.0} q/s, p50 {:.3} ms, p99 {:.3} ms{cpu}",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3
        );
    }
    for (name, target, (qps, p50, p99, _, cpu)) in [
        ("user signs in the loop", 0.85, in_loop),
        ("proofs signed ahead", 0.95, presigned),
        ("whole client path", 0.85, client),
    ] {
        let cpu = match (cpu, free.4) {
            (Some((paid, _)), Some((free, _))) if free > 0.0 => format!(", CPU per query {:.2}", paid / free),
            _ => String::new(),
        };
        println!(
            "  paid/free, {name:<24} throughput {:.2} (target >= {target:.2}), latency p50 {:.2}, p99 {:.2}{cpu}",
            qps / free.0,
            p50.as_secs_f64() / free.1.as_secs_f64(),
            p99.as_secs_f64() / free.2.as_secs_f64()
        );
    }
    println!(
        "  where the latency goes (µs per query, mean): provider decode / verdict / archive wait / response, rest (client, swarms, transport, hops)"
    );
    for (name, mode) in [
        ("paid, user signs in the loop", Mode::Paid),
        ("paid, proofs signed ahead", Mode::PaidPresigned),
        ("free", Mode::Free),
        ("paid, whole client path", Mode::Client),
    ] {
        let runs = &runs[mode as usize];
        let n: usize = runs.iter().map(|r| r.latencies.len()).sum();
        if n == 0 {
            continue;
        }
        let per_query = |nanos: u64| nanos as f64 / 1e3 / n as f64;
        let mean =
            runs.iter().flat_map(|r| r.latencies.iter()).map(Duration::as_secs_f64).sum::<f64>() * 1e6 / n as f64;
        let stage: Vec<f64> =
            (0..Stage::ALL.len()).map(|i| per_query(runs.iter().map(|r| r.stages[i]).sum())).collect();
        let handler: f64 = stage.iter().sum();
        println!(
            "  {name:<30} mean {mean:>6.0}: {:.1} / {:.1} / {:.1} / {:.1}, rest {:.0}",
            stage[0],
            stage[1],
            stage[2],
            stage[3],
            mean - handler
        );
    }
    let m = paid_provider.metrics();
    println!(
        "  paid provider: {} archive reads beside the verdict, {} discarded",
        m.speculative_reads.load(std::sync::atomic::Ordering::Relaxed),
        m.speculative_reads_discarded.load(std::sync::atomic::Ordering::Relaxed)
    );
    paid_provider.shutdown().await;
    free_node.shutdown().await;
    node.shutdown().await;
}
