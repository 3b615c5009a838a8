//! The js-waku example (`examples/waku-paid-store/app.mjs`) pays for Store queries through
//! `paystream agent`: a js-waku light node dialling with the agent's identity, its own Store v3
//! query with the agent's proof as field 30, the verdict reported back, every page read. Run
//! against `paystream node` (in process), `paystream store serve` and `paystream agent`; ends
//! with the exact balance: deposit = vault + what the provider earned, and the agent's
//! spending report says the same.

use std::time::Duration;

use serde_json::Value;

use crate::{
    agent_api::start_agent,
    common::{chain, run_js, serve_archive, wait_for},
    store_cli::{PUBSUB, TOPIC},
};

/// One js-waku run: start, dial, three paid pages, stop, with room for a slow machine.
const JS_TIMEOUT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(has_node),
    ignore = "needs Node.js and `npm ci` at the repo root (PAYSTREAMS_REQUIRE_NODE=1 makes it an error)"
)]
async fn the_js_waku_example_pays_through_the_agent_and_gets_every_message() {
    let chain = chain().await;
    let rpc = chain.node.rpc_url();
    let work = tempfile::tempdir().expect("tempdir");
    let archive = chain.seeded_archive(work.path(), 12);
    let provider = serve_archive(&chain, work.path(), &archive, &["--min-allocation", "500"]);
    let ws = provider.ws_address.clone().expect("store serve listens on WebSocket by default");
    let owner = chain.node.dev_keys()[0].account_id();
    let provider_account = chain.node.dev_keys()[1].account_id();
    let provider_before = chain.client.balance(provider_account).await.expect("balance");
    let token_file = work.path().join("agent.token");
    let agent = start_agent(&rpc, &chain.keystore, work.path(), &token_file);

    let agent_url = format!("http://{}", agent.addr);
    let token_path = token_file.display().to_string();
    let env = [
        ("AGENT_URL", agent_url.as_str()),
        ("AGENT_TOKEN_FILE", token_path.as_str()),
        ("PROVIDER", provider.address.as_str()),
        ("PROVIDER_WS", ws.as_str()),
        ("PUBSUB_TOPIC", PUBSUB),
        ("CONTENT_TOPIC", TOPIC),
        ("PAGE_SIZE", "5"),
    ];
    let run = run_js("../examples/waku-paid-store/app.mjs", &env, JS_TIMEOUT).await;
    let seen = run.verdict();
    assert_eq!(seen["ok"], true, "{seen}\n{}", run.stderr);
    let texts: Vec<&str> = seen["messages"].as_array().expect("messages").iter().filter_map(Value::as_str).collect();
    let expected: Vec<String> = (0..12).map(|i| format!("line {i:02}")).collect();
    assert_eq!(texts, expected, "{seen}");
    let pages = seen["pages"].as_array().expect("pages");
    assert_eq!(pages.len(), 3, "{seen}");
    assert_eq!((&pages[0]["kind"], &pages[0]["reaction"]), (&Value::from("proposal"), &Value::from("stream_created")));
    for page in &pages[1..] {
        assert_eq!(
            (&page["kind"], &page["reaction"]),
            (&Value::from("stream_proof"), &Value::from("served")),
            "{seen}"
        );
    }

    // The stream accrues for a while, then the user closes the session through the agent.
    chain.client.advance_time(30).await.expect("advance");
    let listed = agent.ok("GET", "/v1/sessions", None).await;
    let session = listed["sessions"][0]["id"].as_str().expect("the example's session").to_owned();
    let closed = agent.ok("POST", &format!("/v1/sessions/{session}/close"), None).await;
    let stream_id = closed["closed_stream"].as_u64().expect("a stream was closed");
    wait_for("the provider's claim after the close", async || {
        (chain.client.require_stream(owner, 0, stream_id).await.expect("stream").accrued.0 == 0).then_some(())
    })
    .await;

    let earned = chain.client.balance(provider_account).await.expect("balance") - provider_before;
    assert!(earned > 0, "the provider was paid");
    let vault = chain.client.require_vault(owner, 0).await.expect("vault").0;
    assert_eq!(vault.total_allocated.0, 0, "no stream holds anything");
    assert_eq!(vault.balance.0 + earned, 50_000, "deposit = vault + provider's earnings, to the unit");
    let spending = agent.ok("GET", "/v1/spending", None).await;
    let amount = |v: &Value| v.as_str().expect("decimal string").parse::<u128>().expect("u128");
    assert_eq!(amount(&spending["total"]["spent"]), earned);
    assert_eq!(
        amount(&spending["total"]["allocated"]),
        amount(&spending["total"]["spent"]) + amount(&spending["total"]["refunded"])
    );
    drop(agent);
    drop(provider);
}
