//! Faults around a running Store provider: the chain goes away (the provider fails closed with a
//! TEMPORARY termination, never serving unverified) and comes back on the same address (the
//! provider's follower reconnects and the same session is served again).

use std::{net::SocketAddr, sync::Arc, time::Duration};

use paystreams_client::{Client, RpcChain};
use paystreams_node::NodeConfig;
use paystreams_provider::{EngineLimits, ProviderPolicy};
use paystreams_store::{
    Archive, STORE_SERVICE_ID,
    archive::{SqliteArchive, StoredMessage},
    client::{PaidStore, StoreClient, new_request_id},
    provider::{ProviderConfig, SessionBackend, start},
    wire::{StoreQueryRequest, StoreQueryResponse, WakuMessage},
};
use paystreams_user::{MemoryKeyStore, Terms, User, UserConfig};
use paystreams_wire::{StatusCode, TerminationType, TokenStreamPolicy};

const PUBSUB: &str = "/waku/2/default-waku/proto";
const TOPIC: &str = "/faults/1/chat/proto";

fn node_config(dir: &std::path::Path, addr: SocketAddr) -> NodeConfig {
    NodeConfig { data_dir: Some(dir.to_path_buf()), rpc_addr: addr, dev_accounts: 2, ..NodeConfig::ephemeral_dev() }
}

fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr")
}

fn request() -> StoreQueryRequest {
    StoreQueryRequest {
        request_id: new_request_id(),
        include_data: true,
        pubsub_topic: Some(PUBSUB.into()),
        content_topics: vec![TOPIC.into()],
        pagination_forward: true,
        pagination_limit: Some(5),
        ..StoreQueryRequest::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_fails_closed_while_the_chain_is_away_and_recovers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = free_port();
    let node = paystreams_node::start(node_config(&dir.path().join("chain"), addr)).await.expect("node");
    let client = Client::connect(&node.rpc_url()).expect("client");
    let (user_key, provider_key) = (node.dev_keys()[0].clone(), node.dev_keys()[1].clone());
    client.init_vault(&user_key, 0, None).await.expect("vault");
    client.deposit(&user_key, 0, 100_000).await.expect("deposit");

    let archive: Arc<dyn Archive> = Arc::new(SqliteArchive::in_memory().expect("archive"));
    let messages: Vec<StoredMessage> = (0..10)
        .map(|i| {
            let m = WakuMessage {
                payload: vec![i],
                content_topic: TOPIC.into(),
                timestamp: Some(i64::from(i)),
                ..WakuMessage::default()
            };
            StoredMessage::new(PUBSUB.into(), m).expect("valid")
        })
        .collect();
    archive.insert(&messages).expect("seed");
    let policy = ProviderPolicy::new(
        provider_key.account_id().0,
        vec![STORE_SERVICE_ID.into()],
        vec![TokenStreamPolicy { token_id: [0; 32], min_rate: 1, min_allocation: 1_000 }],
    );
    let provider = start(
        ProviderConfig {
            rpc_url: node.rpc_url(),
            provider_key: provider_key.clone(),
            listen: "/ip4/127.0.0.1/tcp/0".parse().expect("addr"),
            policy,
            limits: EngineLimits { staleness_bound_ms: 1_000, ..EngineLimits::default() },
            sessions: SessionBackend::Memory,
            admin: None,
            tick_interval: Duration::from_millis(200),
            claim_on_shutdown: false,
        },
        archive,
    )
    .await
    .expect("provider");

    let user =
        Arc::new(User::new(user_key, RpcChain::new(client.clone()), MemoryKeyStore::default(), UserConfig::default()));
    let store = StoreClient::connect(&provider.addrs()[0].to_string()).await.expect("client");
    let terms = Terms { vault_id: 0, token_id: [0; 32], service_id: STORE_SERVICE_ID.into(), rate: 0, allocation: 0 };
    let paid = PaidStore::new(store.clone(), Arc::clone(&user), terms).await.expect("policy");
    assert!(paid.page(&request()).await.expect("first page").stream_created.is_some());
    let provider_id = provider_key.account_id().0;
    let send = async |user: &User<RpcChain, MemoryKeyStore>| -> StoreQueryResponse {
        let mut r = request();
        r.eligibility_proof = Some(user.proof(&provider_id, &r.canonical()).await.expect("proof"));
        store.send(&r).await.expect("answer")
    };
    assert_eq!(send(&user).await.status_code, Some(200));

    // The chain goes away. The provider may still answer from its view while that view is
    // younger than the staleness bound (1 s here); once it is older, every request gets
    // STREAM_NOT_ACTIVE with a TEMPORARY termination and nothing is served.
    node.shutdown().await;
    let gone = std::time::Instant::now();
    let mut temporary = None;
    for _ in 0..60 {
        let answer = send(&user).await;
        if answer.status_code == Some(200) {
            assert!(gone.elapsed() < Duration::from_millis(1_500), "served on a view older than the bound: {answer:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        assert_eq!(answer.status_code, Some(400), "{answer:?}");
        assert!(answer.messages.is_empty());
        let eligibility = answer.eligibility.expect("status");
        assert_eq!(eligibility.status.code(), Some(StatusCode::StreamNotActive));
        if let Some(t) = eligibility.termination {
            temporary = Some(t);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let termination = temporary.expect("a TEMPORARY termination once the view went stale");
    assert_eq!(termination.termination_type, TerminationType::Temporary);

    // The chain comes back on the same address with the same data: service resumes for the
    // same session without a new proposal.
    let node = paystreams_node::start(node_config(&dir.path().join("chain"), addr)).await.expect("node restarts");
    let mut served = false;
    for _ in 0..150 {
        if send(&user).await.status_code == Some(200) {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served, "the provider serves again after the chain is back");
    provider.shutdown().await;
    node.shutdown().await;
}
