//! One busy client stays within the node's share per client address: a provider's chain view
//! answering thousands of users at once sends its reads through one `NodeRpc`, which keeps at most
//! `MAX_CONCURRENT_REQUESTS` in flight, so the node never has to close one of that client's
//! connections with a request on it (which the client would see as "cannot reach the node").

use paystreams_node::{FrontLimits, NodeConfig, start};
use paystreams_rpc::{
    chain_view::ChainView as _,
    remote::{MAX_CONCURRENT_REQUESTS, NodeRpc, RpcChain},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_concurrent_reads_from_one_client_all_succeed() {
    const READS: usize = 3_000;
    // A node that keeps 48 connections per address, so the test needs no thousands of sockets.
    let limits = FrontLimits { max_connections_per_address: 48, ..FrontLimits::DEFAULT };
    assert!(
        u32::try_from(MAX_CONCURRENT_REQUESTS).expect("small") < limits.max_connections_per_address,
        "a client's requests in flight stay below the node's share per address"
    );
    let node = start(NodeConfig { limits, ..NodeConfig::ephemeral_dev() }).await.expect("node");
    let owner = node.dev_keys()[0].account_id();
    let chain = RpcChain::new(NodeRpc::connect(&node.rpc_url()).expect("client"));
    let reads: Vec<_> = (0..READS)
        .map(|i| {
            let chain = chain.clone();
            tokio::spawn(async move { chain.vault(&owner, u64::try_from(i).expect("small")).await })
        })
        .collect();
    let mut failed = Vec::new();
    for read in reads {
        if let Err(e) = read.await.expect("task") {
            failed.push(e.to_string());
        }
    }
    assert!(failed.is_empty(), "{} of {READS} reads failed, first: {:?}", failed.len(), failed.first());
    node.shutdown().await;
}
