//! Faults around a running Store provider: the chain goes away (the provider fails closed with a
//! TEMPORARY termination, never serving unverified) and comes back on the same address (the
//! provider's follower reconnects and the same session is served again).

use std::{net::SocketAddr, sync::Arc, time::Duration};

use paystreams_client::{Client, RpcChain};
use paystreams_node::NodeConfig;
use paystreams_provider::EngineLimits;
use paystreams_store::{
    Archive, STORE_SERVICE_ID,
    archive::SqliteArchive,
    client::{PaidStore, StoreClient},
    provider::{ProviderConfig, start},
    wire::StoreQueryResponse,
};
use paystreams_user::{Terms, User, UserConfig};
use paystreams_wire::{StatusCode, TerminationType};

use crate::common::{messages, provider_config, query};

/// A node keeping its chain in `dir`, serving RPC on `addr`.
fn node_config(dir: &std::path::Path, addr: SocketAddr) -> NodeConfig {
    NodeConfig { data_dir: Some(dir.to_path_buf()), rpc_addr: addr, dev_accounts: 2, ..NodeConfig::ephemeral_dev() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_fails_closed_while_the_chain_is_away_and_recovers() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The node binds port 0; it comes back below on the address it was given.
    let node = paystreams_node::start(node_config(&dir.path().join("chain"), SocketAddr::from(([127, 0, 0, 1], 0))))
        .await
        .expect("node");
    let addr = node.local_addr();
    let client = Client::connect(&node.rpc_url()).expect("client");
    let (user_key, provider_key) = (node.dev_keys()[0].clone(), node.dev_keys()[1].clone());
    client.init_vault(&user_key, 0, None).await.expect("vault");
    client.deposit(&user_key, 0, 100_000).await.expect("deposit");

    let archive: Arc<dyn Archive> = Arc::new(SqliteArchive::in_memory().expect("archive"));
    archive.insert(&messages(10)).expect("seed");
    let provider = start(
        ProviderConfig {
            limits: EngineLimits { staleness_bound_ms: 1_000, ..EngineLimits::default() },
            ..provider_config(node.rpc_url(), provider_key.clone(), "/ip4/127.0.0.1/tcp/0")
        },
        archive,
    )
    .await
    .expect("provider");

    let user = Arc::new(User::new(user_key, RpcChain::new(client.clone()), UserConfig::default()));
    let store = StoreClient::connect(&provider.addrs()[0].to_string()).await.expect("client");
    let terms = Terms { vault_id: 0, token_id: [0; 32], service_id: STORE_SERVICE_ID.into(), rate: 0, allocation: 0 };
    let paid = PaidStore::new(store.clone(), Arc::clone(&user), terms).await.expect("policy");
    assert!(paid.page(&query()).await.expect("first page").stream_created.is_some());
    let provider_id = provider_key.account_id().0;
    let send = async |user: &User<RpcChain>| -> StoreQueryResponse {
        let mut r = query();
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
    // same session without a new proposal. (The port is free again: the node held it from its
    // port-0 bind until its shutdown above; no probe released it earlier.)
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
