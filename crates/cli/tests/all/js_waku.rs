//! A standard Waku client against `paystream store serve`: a js-waku light node (the npm
//! package pinned in the repo's `package-lock.json`, run by Debian's Node.js) made the usual way
//! finds the provider through its WebSocket address given as a bootstrap peer, learns from
//! identify that it serves Store, from metadata that it is on the content topic's shard, pings
//! it and queries it through js-waku's own Store API. The query carries no payment, so it must
//! fail with the provider's readable refusal, which proves the connection, the protocol
//! negotiation and the encoding both ways. Twice with fresh js-waku nodes (the address given as
//! a bootstrap peer, then as `store: { peers }`), then again after the provider restarts;
//! nothing is paid and nothing moves on chain.

use std::time::Duration;

use paystreams_store::net::{DEFAULT_CLUSTER_ID, DEFAULT_SHARD_COUNT, autoshard_pubsub_topic};
use serde_json::Value;

use crate::common::{Chain, Provider, chain, import, run_js, serve, write_messages};

const TOPIC: &str = "/paystreams/1/interop/proto";
/// One js-waku run: start, discovery, ping, query and stop, with room for a slow machine.
const JS_TIMEOUT: Duration = Duration::from_secs(90);

/// Runs `js/test/store-discovery.mjs` against `provider` and checks everything it saw.
/// `via`: how the js-waku node is given the address ("bootstrap" peer or "store-peers").
async fn js_waku_finds_and_queries(provider: &Provider, pubsub: &str, via: &str) {
    let ws = provider.ws_address.as_deref().expect("store serve listens on WebSocket by default");
    let env = [("PROVIDER_WS", ws), ("CONTENT_TOPIC", TOPIC), ("DISCOVERY", via)];
    let run = run_js("test/store-discovery.mjs", &env, JS_TIMEOUT).await;
    let seen = run.verdict();
    eprintln!("js-waku saw: {seen}");
    assert_eq!(seen["ok"], true, "{seen}\n{}", run.stderr);
    assert_eq!((seen["provider"].as_str(), seen["via"].as_str()), (Some(provider.peer_id.as_str()), Some(via)));
    // Identify: what js-waku recorded for the peer.
    let protocols: Vec<&str> =
        seen["protocols"].as_array().expect("protocols").iter().filter_map(Value::as_str).collect();
    for expected in ["/vac/waku/store-query/3.0.0", "/vac/waku/metadata/1.0.0", "/ipfs/ping/1.0.0", "/ipfs/id/1.0.0"] {
        assert!(protocols.contains(&expected), "identify did not announce {expected}: {protocols:?}");
    }
    assert!(seen["agent_version"].as_str().is_some_and(|a| a.starts_with("paystreams/")), "{seen}");
    // Metadata: js-waku kept the cluster and shards (and so did not drop the peer).
    assert_eq!(seen["shard_info"]["clusterId"], DEFAULT_CLUSTER_ID, "{seen}");
    let shards: Vec<u64> =
        seen["shard_info"]["shards"].as_array().expect("shards").iter().filter_map(Value::as_u64).collect();
    assert_eq!(shards, (0..u64::from(DEFAULT_SHARD_COUNT)).collect::<Vec<_>>());
    assert!(
        seen["connected"].as_array().is_some_and(|c| c.iter().any(|a| a.as_str().is_some_and(|a| a.contains("/ws"))))
    );
    // Ping answered.
    assert!(seen["ping_ms"].as_f64().is_some(), "{seen}");
    // The pubsub topic js-waku derived is the one the archive holds the messages under.
    assert_eq!(seen["pubsub_topic"], pubsub);
    // Store: js-waku's query reached the provider and decoded its refusal.
    let error = seen["query_error"].as_str().unwrap_or_else(|| panic!("an unpaid query must fail: {seen}"));
    assert!(
        error.contains("status code: 400")
            && error.contains("PROOF_INVALID: no eligibility proof: send a StreamProposal first"),
        "{error}"
    );
    assert_eq!(seen["messages"], 0);
}

async fn balances(chain: &Chain) -> (u128, u128) {
    let keys = chain.node.dev_keys();
    let vault = chain.client.vault(keys[0].account_id(), 0).await.expect("vault").expect("vault exists");
    (vault.balance.0, chain.client.balance(keys[1].account_id()).await.expect("balance"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(has_node),
    ignore = "needs Node.js and `npm ci` at the repo root (PAYSTREAMS_REQUIRE_NODE=1 makes it an error)"
)]
async fn a_default_js_waku_light_node_finds_and_queries_the_provider() {
    let chain = chain().await;
    let rpc = chain.node.rpc_url();
    let work = tempfile::tempdir().expect("tempdir");
    let archive = work.path().join("archive.sqlite").display().to_string();
    let sessions = work.path().join("sessions.redb").display().to_string();
    let pubsub = autoshard_pubsub_topic(TOPIC, DEFAULT_CLUSTER_ID, DEFAULT_SHARD_COUNT).expect("a Waku content topic");
    let messages = work.path().join("messages.jsonl");
    write_messages(&messages, &pubsub, TOPIC, 3);
    let out = import(&rpc, &chain.keystore, &messages, &archive);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let before = balances(&chain).await;

    let flags = ["--archive", archive.as_str(), "--sessions", sessions.as_str()];
    let provider = serve(&rpc, &chain.keystore, work.path(), &flags);
    js_waku_finds_and_queries(&provider, &pubsub, "bootstrap").await;
    js_waku_finds_and_queries(&provider, &pubsub, "store-peers").await;
    drop(provider);
    let restarted = serve(&rpc, &chain.keystore, work.path(), &flags);
    js_waku_finds_and_queries(&restarted, &pubsub, "bootstrap").await;
    drop(restarted);

    // Unpaid queries cost nobody anything: the user's vault and the provider's account are
    // exactly as before.
    assert_eq!(balances(&chain).await, before);
}
