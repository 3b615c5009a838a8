//! Load suite: many concurrent users, each with its own vault, session and stream, querying one
//! Store provider over libp2p for a fixed time, with forged requests mixed in. Passes (exit 0)
//! only with zero lost sessions (every valid paid request served) and zero service granted
//! without a valid proof.
//!
//! `cargo bench -p paystreams-store --bench load_users [-- USERS SECONDS]` (default 1000 60)

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use futures::{StreamExt as _, stream};
use paystreams_client::Client;
use paystreams_lez_core::crypto::SecretKey;
use paystreams_node::NodeConfig;
use paystreams_provider::{EngineLimits, ProviderPolicy};
use paystreams_rpc::remote::RpcChain;
use paystreams_store::{
    Archive as _, STORE_SERVICE_ID,
    archive::{SqliteArchive, StoredMessage},
    client::{PaidStore, StoreClient, new_request_id},
    provider::{ProviderConfig, ServiceOptions, SessionBackend, start},
    wire::{StoreQueryRequest, WakuMessage},
};
use paystreams_user::{Terms, User, UserConfig};
use paystreams_wire::TokenStreamPolicy;

const PUBSUB: &str = "/waku/2/default-waku/proto";
const TOPIC: &str = "/load/1/chat/proto";
/// Concurrent setup transactions (funding, vaults, streams).
const SETUP_CONCURRENCY: usize = 32;

fn request() -> StoreQueryRequest {
    StoreQueryRequest {
        request_id: new_request_id(),
        include_data: true,
        pubsub_topic: Some(PUBSUB.into()),
        content_topics: vec![TOPIC.into()],
        pagination_forward: true,
        pagination_limit: Some(10),
        ..StoreQueryRequest::default()
    }
}

#[derive(Default)]
struct Counts {
    served: AtomicU64,
    valid_refused: AtomicU64,
    forged_refused: AtomicU64,
    forged_served: AtomicU64,
    transport_errors: AtomicU64,
    /// 429 answers (the provider's inbound bound): the same request is retried after a pause.
    busy_retries: AtomicU64,
    /// Why valid requests were refused: (status, description) → count.
    refusals: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let ok = runtime.block_on(run());
    std::process::exit(i32::from(!ok));
}

#[expect(clippy::too_many_lines, reason = "setup, load and report in one place")]
async fn run() -> bool {
    let args: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let users = usize::try_from(args.first().copied().unwrap_or(1_000)).unwrap_or(1_000);
    let seconds = args.get(1).copied().unwrap_or(60);
    let node = paystreams_node::start(NodeConfig::ephemeral_dev()).await.expect("node");
    let client = Client::connect(&node.rpc_url()).expect("client");
    let funder = node.dev_keys()[0].clone();
    let provider_key = node.dev_keys()[1].clone();

    let archive = Arc::new(SqliteArchive::in_memory().expect("archive"));
    let messages: Vec<StoredMessage> = (0..200)
        .map(|i| {
            let m = WakuMessage {
                payload: format!("load message {i}").into_bytes(),
                content_topic: TOPIC.into(),
                timestamp: Some(i64::from(i)),
                ..WakuMessage::default()
            };
            StoredMessage::new(PUBSUB.into(), m).expect("valid")
        })
        .collect();
    archive.insert(&messages).expect("seed");
    let mut policy = ProviderPolicy::new(
        provider_key.account_id().0,
        vec![STORE_SERVICE_ID.into()],
        vec![TokenStreamPolicy { token_id: [0; 32], min_rate: 1, min_allocation: 10_000 }],
    );
    policy.first_response_cap = 1 << 20;
    let provider = start(
        ProviderConfig {
            rpc_url: node.rpc_url(),
            provider_key: provider_key.clone(),
            listen: "/ip4/127.0.0.1/tcp/0".parse().expect("addr"),
            policy,
            limits: EngineLimits::default(),
            sessions: SessionBackend::Memory,
            admin: None,
            tick_interval: Duration::from_secs(2),
            claim_on_shutdown: false,
            // A benchmark measures the service, not the per-peer limit.
            service: ServiceOptions {
                peer_limit: paystreams_store::service::PeerLimit { per_sec: u32::MAX, burst: u32::MAX },
                ..ServiceOptions::default()
            },
        },
        archive,
    )
    .await
    .expect("provider");
    let address = provider.addrs()[0].to_string();

    // Setup: fund each user from the dev account (in order, one sender), then each user opens a
    // vault, deposits, and proposes (the first page creates its stream).
    let setup = Instant::now();
    let keys: Vec<SecretKey> = (0..users).map(|_| SecretKey::generate()).collect();
    for key in &keys {
        client.transfer(&funder, key.account_id(), 1_000_000, Some(key)).await.expect("fund");
    }
    let sessions: Vec<_> = stream::iter(keys)
        .map(|key| {
            let (client, address) = (client.clone(), address.clone());
            async move {
                client.init_vault(&key, 0, None).await.expect("vault");
                client.deposit(&key, 0, 500_000).await.expect("deposit");
                let user = Arc::new(User::new(key, RpcChain::new(client.clone()), UserConfig::default()));
                let store = StoreClient::connect(&address).await.expect("client");
                let terms = Terms {
                    vault_id: 0,
                    token_id: [0; 32],
                    service_id: STORE_SERVICE_ID.into(),
                    rate: 0,
                    allocation: 0,
                };
                let paid = PaidStore::new(store.clone(), Arc::clone(&user), terms).await.expect("policy");
                let first = paid.page(&request()).await.expect("first page");
                assert!(first.stream_created.is_some(), "stream created");
                (user, store)
            }
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .collect()
        .await;
    let setup_secs = setup.elapsed().as_secs_f64();
    println!("setup: {users} users funded, vaults, sessions and streams in {setup_secs:.1} s");

    // Load: every user loops for the duration; every fifth request is forged (a proof signed
    // over a different request, or no proof at all) and must not be served.
    let counts = Arc::new(Counts::default());
    let provider_id = provider_key.account_id().0;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let tasks: Vec<_> = sessions
        .into_iter()
        .map(|(user, store)| {
            let counts = Arc::clone(&counts);
            tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    n += 1;
                    let mut r = request();
                    let forged = n.is_multiple_of(5);
                    if forged {
                        if n.is_multiple_of(10) {
                            let other = request();
                            r.eligibility_proof =
                                Some(user.proof(&provider_id, &other.canonical()).await.expect("proof"));
                        }
                    } else {
                        r.eligibility_proof = Some(user.proof(&provider_id, &r.canonical()).await.expect("proof"));
                    }
                    let mut answer = store.send(&r).await;
                    while let Ok(response) = &answer
                        && response.status_code == Some(429)
                    {
                        counts.busy_retries.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        answer = store.send(&r).await;
                    }
                    match answer {
                        Ok(response) => {
                            let served = response.status_code == Some(200) && !response.messages.is_empty();
                            if !forged && !served {
                                let why = response.eligibility.as_ref().map_or_else(
                                    || format!("status {:?} {:?}", response.status_code, response.status_desc),
                                    |e| format!("status {:?}: {}", response.status_code, e.status.status_desc),
                                );
                                if let Ok(mut refusals) = counts.refusals.lock() {
                                    *refusals.entry(why).or_default() += 1;
                                }
                            }
                            let counter = match (forged, served) {
                                (false, true) => &counts.served,
                                (false, false) => &counts.valid_refused,
                                (true, false) => &counts.forged_refused,
                                (true, true) => &counts.forged_served,
                            };
                            counter.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => {
                            counts.transport_errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("user task");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let report = provider.metrics().render();
    let busy = report.lines().find(|l| l.starts_with("paystreams_store_busy_total")).unwrap_or_default().to_owned();
    println!("load: {users} users for {seconds} s against one provider over libp2p");
    println!(
        "  valid paid requests served {} ({:.0}/s), valid refused {}, forged refused {}, forged served {}, transport errors {}",
        get(&counts.served),
        get(&counts.served) as f64 / elapsed,
        get(&counts.valid_refused),
        get(&counts.forged_refused),
        get(&counts.forged_served),
        get(&counts.transport_errors)
    );
    println!("  {busy} (each answered 429 and retried by the user: {})", get(&counts.busy_retries));
    if let Ok(refusals) = counts.refusals.lock() {
        for (why, count) in refusals.iter() {
            println!("  valid request refused x{count}: {why}");
        }
    }
    let ok = get(&counts.valid_refused) == 0
        && get(&counts.forged_served) == 0
        && get(&counts.transport_errors) == 0
        && get(&counts.served) > 0;
    println!("  {}", if ok { "PASS: zero lost sessions, zero service without a valid proof" } else { "FAIL" });
    provider.shutdown().await;
    node.shutdown().await;
    ok
}
