//! js-waku's Lightpush against `paystream store serve`: a js-waku light node (the npm package
//! pinned in the repo's `package-lock.json`) finds the provider as a bootstrap peer and pushes
//! through `node.lightPush.send` without paying: the provider refuses with its readable status,
//! which js-waku turns into `Remote peer rejected` and writes, code and description, to its
//! error log; nothing is stored and nothing moves. Then a paid push from JavaScript: the
//! request encoded with `@waku/proto`, the user engine's proposal appended as field 30, sent
//! on the js-waku node's own Lightpush stream; the provider accepts, the user creates the
//! stream, the message is in the archive and a paid Store query reads it back; at the end the
//! provider earned exactly what left the vault.

use std::{sync::Arc, time::Duration};

use paystreams_rpc::remote::RpcChain;
use paystreams_store::{
    Archive as _, LIGHTPUSH_SERVICE_ID, STORE_SERVICE_ID,
    archive::{ArchiveQuery, SqliteArchive},
    client::{PaidStore, StoreClient},
    lightpush::LightpushResponse,
    wire::StoreQueryRequest,
};
use paystreams_user::{Reaction, Terms, User, UserConfig};
use paystreams_wire::StatusCode;

use crate::common::{Chain, chain, run_js, serve_archive, wait_for};

const TOPIC: &str = "/paystreams/1/lightpush/proto";
/// One js-waku run: start, discovery, push and stop, with room for a slow machine.
const JS_TIMEOUT: Duration = Duration::from_secs(90);

async fn balances(chain: &Chain) -> (u128, u128) {
    let keys = chain.node.dev_keys();
    let vault = chain.client.vault(keys[0].account_id(), 0).await.expect("vault").expect("vault exists");
    (vault.balance.0, chain.client.balance(keys[1].account_id()).await.expect("balance"))
}

fn archived(path: &std::path::Path) -> Vec<Vec<u8>> {
    let archive = SqliteArchive::open(path).expect("archive");
    let query = ArchiveQuery { content_topics: vec![], forward: true, limit: 100, ..ArchiveQuery::default() };
    archive.query(&query).expect("read").messages.into_iter().map(|m| m.message.payload).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(has_node),
    ignore = "needs Node.js and `npm ci` at the repo root (PAYSTREAMS_REQUIRE_NODE=1 makes it an error)"
)]
async fn js_waku_pushes_are_refused_unpaid_and_stored_when_paid() {
    let chain = chain().await;
    let work = tempfile::tempdir().expect("tempdir");
    let archive_path = work.path().join("archive.sqlite");
    let archive = archive_path.display().to_string();
    let provider = serve_archive(&chain, work.path(), &archive, &[]);
    let ws = provider.ws_address.clone().expect("store serve listens on WebSocket by default");
    let before = balances(&chain).await;

    // Unpaid, through js-waku's own LightPush API.
    let env =
        [("PROVIDER_WS", ws.as_str()), ("CONTENT_TOPIC", TOPIC), ("PAYLOAD", "unpaid"), ("DEBUG", "waku:*:error")];
    let run = run_js("test/lightpush-refused.mjs", &env, JS_TIMEOUT).await;
    let seen = run.verdict();
    assert_eq!(seen["ok"], true, "{seen}\n{}", run.stderr);
    let protocols: Vec<&str> =
        seen["protocols"].as_array().expect("protocols").iter().filter_map(serde_json::Value::as_str).collect();
    assert!(protocols.contains(&LIGHTPUSH_SERVICE_ID), "identify did not announce Lightpush: {protocols:?}");
    assert_eq!(seen["successes"].as_array().map(Vec::len), Some(0), "{seen}");
    assert_eq!(seen["failures"][0]["error"], "Remote peer rejected", "{seen}");
    assert_eq!(seen["failures"][0]["peer"].as_str(), Some(provider.peer_id.as_str()));
    // What js-waku tells its user about why: its error log carries our status and its reason.
    assert!(
        run.stderr.contains("Remote peer rejected with v3 status code 400: PROOF_INVALID: no eligibility proof: send a StreamProposal first"),
        "{}",
        run.stderr
    );
    assert!(archived(&archive_path).is_empty(), "an unpaid push stores nothing");
    assert_eq!(balances(&chain).await, before, "an unpaid push costs nobody anything");

    // Paid, from JavaScript: the user engine's proposal for Lightpush at field 30.
    let user_key = chain.node.dev_keys()[0].clone();
    let user = Arc::new(User::new(user_key.clone(), RpcChain::new(chain.client.clone()), UserConfig::default()));
    let advert = StoreClient::connect(&provider.address).await.expect("client").advert().await.expect("advert");
    assert!(advert.service_ids.contains(&LIGHTPUSH_SERVICE_ID.to_owned()), "{:?}", advert.service_ids);
    let terms =
        Terms { vault_id: 0, token_id: [0; 32], service_id: LIGHTPUSH_SERVICE_ID.into(), rate: 0, allocation: 0 };
    let proposal = user.propose(&advert, &terms).await.expect("proposal");
    let proof_hex = hex::encode(&proposal);
    let env = [
        ("PROVIDER_WS", ws.as_str()),
        ("CONTENT_TOPIC", TOPIC),
        ("PAYLOAD", "paid from js"),
        ("PROOF_HEX", proof_hex.as_str()),
    ];
    let run = run_js("test/lightpush-paid.mjs", &env, JS_TIMEOUT).await;
    let seen = run.verdict();
    assert_eq!((seen["status_code"].as_u64(), seen["status_desc"].as_str()), (Some(200), Some("OK")), "{seen}");
    assert_eq!(seen["request_id_echoed"], true);
    let bytes = hex::decode(seen["response_hex"].as_str().expect("response bytes")).expect("hex");
    let response = LightpushResponse::decode(&bytes).expect("our decoder reads what js-waku received");
    let eligibility = response.eligibility.expect("the verdict at field 30");
    assert_eq!(eligibility.status.code(), Some(StatusCode::Ok));
    let reaction = user
        .on_proposal_status(&advert.provider_id, &eligibility.status, eligibility.termination)
        .await
        .expect("react");
    let Reaction::StreamCreated { stream_id } = reaction else {
        panic!("the accepted proposal creates the stream: {reaction:?}")
    };
    assert_eq!(archived(&archive_path), [b"paid from js".to_vec()]);

    // A paid Store query (the user's Store session) reads the pushed message back.
    let pubsub = seen["pubsub_topic"].as_str().expect("pubsub topic").to_owned();
    let store_terms = Terms { service_id: STORE_SERVICE_ID.into(), ..terms };
    let store = PaidStore::connect(&provider.address, Arc::clone(&user), store_terms).await.expect("store");
    let query = StoreQueryRequest {
        include_data: true,
        pubsub_topic: Some(pubsub),
        content_topics: vec![TOPIC.into()],
        pagination_forward: true,
        pagination_limit: Some(10),
        ..StoreQueryRequest::default()
    };
    let page = store.page(&query).await.expect("paid query");
    let payloads: Vec<&[u8]> =
        page.response.messages.iter().map(|m| m.message.as_ref().expect("data").0.payload.as_slice()).collect();
    assert_eq!(payloads, [b"paid from js".as_slice()]);
    let store_stream = page.stream_created.expect("the Store session's own stream");

    // Both streams run a while, then close; the provider claims; money is exact.
    chain.client.advance_time(5).await.expect("time moves");
    for session in user.sessions().expect("sessions") {
        user.close_session(&session.session_id).await.expect("close");
    }
    let owner = user_key.account_id();
    for id in [stream_id, store_stream] {
        wait_for("the provider's claim after the close", async || {
            (chain.client.require_stream(owner, 0, id).await.expect("stream").accrued.0 == 0).then_some(())
        })
        .await;
    }
    let after = balances(&chain).await;
    let earned = after.1 - before.1;
    assert!(earned >= 5, "five seconds of two streams at least: {earned}");
    assert_eq!(after.0 + earned, before.0, "the provider earned {earned}; the vault holds {}", after.0);
    drop(provider);
}

/// Paid pushes from a js-waku app through `paystream agent`: the app computes each request's
/// canonical Lightpush digest itself, the agent hands out the proof (a proposal first, then
/// stream proofs over that digest, which the provider verifies), the app attaches it as field 30
/// and reports each verdict back; every message lands in the archive once; the js-waku app of
/// `examples/waku-paid-store` reads them back with paid Store queries through the same agent;
/// after the agent closes both sessions the provider earned exactly what left the vault.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(has_node),
    ignore = "needs Node.js and `npm ci` at the repo root (PAYSTREAMS_REQUIRE_NODE=1 makes it an error)"
)]
async fn a_js_waku_app_pays_its_pushes_through_the_agent() {
    let chain = chain().await;
    let rpc = chain.node.rpc_url();
    let work = tempfile::tempdir().expect("tempdir");
    let archive_path = work.path().join("archive.sqlite");
    let archive = archive_path.display().to_string();
    let provider = serve_archive(&chain, work.path(), &archive, &[]);
    let ws = provider.ws_address.clone().expect("store serve listens on WebSocket by default");
    let token_file = work.path().join("agent-token");
    let agent = crate::agent_api::start_agent(&rpc, &chain.keystore, work.path(), &token_file);
    let before = balances(&chain).await;

    let url = format!("http://{}", agent.addr);
    let token_path = token_file.display().to_string();
    let env = [
        ("AGENT_URL", url.as_str()),
        ("AGENT_TOKEN_FILE", token_path.as_str()),
        ("PROVIDER", provider.address.as_str()),
        ("PROVIDER_WS", ws.as_str()),
        ("CONTENT_TOPIC", TOPIC),
        ("PAYLOADS", "first,second,third"),
    ];
    let run = run_js("test/lightpush-agent.mjs", &env, JS_TIMEOUT).await;
    let seen = run.verdict();
    assert_eq!(seen["ok"], true, "{seen}\n{}", run.stderr);
    let pushes = seen["pushes"].as_array().expect("pushes");
    let kinds: Vec<&str> = pushes.iter().filter_map(|p| p["kind"].as_str()).collect();
    assert_eq!(kinds, ["proposal", "stream_proof", "stream_proof"], "{seen}");
    assert!(pushes.iter().all(|p| p["status"] == 200 && p["status_desc"] == "OK"), "{seen}");
    assert_eq!(archived(&archive_path), [b"first".to_vec(), b"second".to_vec(), b"third".to_vec()]);

    // The js-waku app of examples/ reads them back with paid Store queries through the agent.
    let pubsub = seen["pubsub_topic"].as_str().expect("pubsub topic").to_owned();
    let env = [
        ("AGENT_URL", url.as_str()),
        ("AGENT_TOKEN_FILE", token_path.as_str()),
        ("PROVIDER", provider.address.as_str()),
        ("PROVIDER_WS", ws.as_str()),
        ("PUBSUB_TOPIC", pubsub.as_str()),
        ("CONTENT_TOPIC", TOPIC),
    ];
    let run = run_js("../examples/waku-paid-store/app.mjs", &env, JS_TIMEOUT).await;
    let read = run.verdict();
    assert_eq!(read["ok"], true, "{read}\n{}", run.stderr);
    assert_eq!(read["messages"], serde_json::json!(["first", "second", "third"]), "{read}");

    // The streams run a while; the agent closes both sessions (Lightpush's and Store's); the
    // provider claims; exact money.
    chain.client.advance_time(5).await.expect("time moves");
    let listed = agent.ok("GET", "/v1/sessions", None).await;
    let sessions: Vec<(String, u64)> = listed["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .filter_map(|s| Some((s["id"].as_str()?.to_owned(), s["stream_id"].as_u64()?)))
        .collect();
    assert_eq!(sessions.len(), 2, "one Lightpush and one Store session: {listed}");
    let owner = chain.node.dev_keys()[0].account_id();
    for (id, stream_id) in &sessions {
        agent.ok("POST", &format!("/v1/sessions/{id}/close"), None).await;
        wait_for("the provider's claim after the close", async || {
            let view = chain.client.require_stream(owner, 0, *stream_id).await.expect("stream");
            (view.state == paystreams_program::state::StreamState::Closed && view.accrued.0 == 0).then_some(())
        })
        .await;
    }
    let after = balances(&chain).await;
    let earned = after.1 - before.1;
    assert!(earned >= 5, "five seconds of the streams at least: {earned}");
    assert_eq!(after.0 + earned, before.0, "the provider earned {earned}; the vault holds {}", after.0);
    drop(agent);
    drop(provider);
}
