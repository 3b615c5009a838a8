//! `paystream store` through the real binary: import, serve (separate provider processes) and a
//! paid query; and two provider processes sharing one PostgreSQL database serving one user's
//! session alternately, with a request replayed to the other process refused.

use std::{path::Path, process::Stdio, sync::Arc, time::Duration};

use paystreams_client::RpcChain;
use paystreams_program::state::StreamState;
use paystreams_store::{
    STORE_SERVICE_ID,
    client::{PaidStore, StoreClient, new_request_id},
    wire::StoreQueryRequest,
};
use paystreams_testkit::postgres::TestDatabase;
use paystreams_user::{Reaction, Terms, User, UserConfig};
use paystreams_wire::StatusCode;

use crate::common::{chain, import, paystream, serve, serve_archive, wait_for};

pub(crate) const TOPIC: &str = "/cli/1/chat/proto";
pub(crate) const PUBSUB: &str = "/waku/2/default-waku/proto";

/// `n` messages on [`TOPIC`] under [`PUBSUB`] as `store import` reads them.
pub(crate) fn write_messages(path: &Path, n: u32) {
    crate::common::write_messages(path, PUBSUB, TOPIC, n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_serve_and_query_through_the_binary() {
    let chain = chain().await;
    let rpc = chain.node.rpc_url();
    let work = tempfile::tempdir().expect("tempdir");
    let archive = work.path().join("archive.sqlite").display().to_string();

    // A bad line fails the whole import and writes nothing.
    let bad = work.path().join("bad.jsonl");
    std::fs::write(&bad, format!("{{\"pubsub_topic\":\"{PUBSUB}\",\"content_topic\":\"{TOPIC}\",\"text\":\"ok\",\"timestamp\":1700000000000000000}}\n{{\"pubsub_topic\":\"{PUBSUB}\"}}\n")).expect("write");
    let out = import(&rpc, &chain.keystore, &bad, &archive);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 2"), "{}", String::from_utf8_lossy(&out.stderr));

    let good = work.path().join("messages.jsonl");
    write_messages(&good, 12);
    let out = import(&rpc, &chain.keystore, &good, &archive);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("imported 12 messages (0 already stored)"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let provider = serve_archive(&chain, work.path(), &archive, &["--min-allocation", "500"]);
    let provider_account = chain.node.dev_keys()[1].account_id();
    let provider_before = chain.client.balance(provider_account).await.expect("balance");
    let query = tokio::task::spawn_blocking({
        let (rpc, keystore, address) = (rpc.clone(), chain.keystore.clone(), provider.address.clone());
        let home = work.path().to_owned();
        move || {
            paystream()
                .args(["store", "--rpc", &rpc, "--keystore"])
                .arg(&keystore)
                .args([
                    "--json",
                    "query",
                    "--provider",
                    &address,
                    "--from",
                    "dev-0",
                    "--content-topic",
                    TOPIC,
                    "--page-size",
                    "5",
                    "--close",
                ])
                .env("PAYSTREAMS_HOME", &home)
                .output()
                .expect("runs")
        }
    })
    .await
    .expect("query task");
    let stdout = String::from_utf8_lossy(&query.stdout);
    assert!(query.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&query.stderr));
    let lines: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).expect("JSON lines")).collect();
    let texts: Vec<&str> = lines.iter().filter_map(|l| l["text"].as_str()).collect();
    let expected: Vec<String> = (0..12).map(|i| format!("line {i:02}")).collect();
    assert_eq!(texts, expected);
    let summary = &lines.last().expect("summary")["summary"];
    assert_eq!(summary["pages"], 3);
    assert_eq!(summary["closed_now"], true);
    let stream_id = summary["stream_id"].as_u64().expect("stream id");
    let user = chain.node.dev_keys()[0].account_id();
    let view = chain.client.require_stream(user, 0, stream_id).await.expect("stream");
    assert_eq!(view.state, StreamState::Closed);
    assert_eq!(view.allocation.0, view.accrued.0, "a closed stream keeps only what accrued");
    // The provider claims on the close event: once the stream is empty, the provider received
    // exactly what the query reported as its cost.
    wait_for("the provider's claim after the close", async || {
        (chain.client.require_stream(user, 0, stream_id).await.expect("stream").accrued.0 == 0).then_some(())
    })
    .await;
    let earned = chain.client.balance(provider_account).await.expect("balance") - provider_before;
    assert_eq!(summary["cost"], earned.to_string());

    // A query to an address without a provider fails clearly.
    let dead = paystream()
        .args(["store", "--rpc", &rpc, "--keystore"])
        .arg(&chain.keystore)
        .args(["query", "--provider", "/ip4/127.0.0.1/tcp/9", "--from", "dev-0"])
        .env("PAYSTREAMS_HOME", work.path())
        .output()
        .expect("runs");
    assert_eq!(dead.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&dead.stderr).contains("/p2p/"), "{}", String::from_utf8_lossy(&dead.stderr));
    drop(provider);
    chain.node.shutdown().await;
}

/// Runs `paystream ARGS --json` as `dev-0` would (its own home) and parses the JSON lines of
/// its stdout; fails the test, showing stderr, when the command fails.
fn run_json(rpc: &str, keystore: &Path, home: &Path, args: &[&str]) -> Vec<serde_json::Value> {
    let (command, rest) = args.split_first().expect("a command");
    let out = paystream()
        .args([command, "--rpc", rpc, "--keystore"])
        .arg(keystore)
        .arg("--json")
        .args(rest)
        .env("PAYSTREAMS_HOME", home)
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{args:?}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::Deserializer::from_str(&stdout).into_iter::<serde_json::Value>().map(|v| v.expect("JSON")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_queries_in_a_minute_reuse_one_session_until_it_is_closed() {
    let chain = chain().await;
    let rpc = chain.node.rpc_url();
    let work = tempfile::tempdir().expect("tempdir");
    let (provider_home, user_home) = (work.path().join("provider"), work.path().join("user"));
    let archive = chain.seeded_archive(work.path(), 20);
    let provider = serve(&rpc, &chain.keystore, &provider_home, &["--archive", &archive, "--min-allocation", "5000"]);
    let user = chain.node.dev_keys()[0].account_id();
    let started = std::time::Instant::now();
    let mut streams = Vec::new();
    for i in 0..20 {
        // Every answer fits in the first (and only) page.
        let lines = tokio::task::spawn_blocking({
            let (rpc, keystore, home, address) =
                (rpc.clone(), chain.keystore.clone(), user_home.clone(), provider.address.clone());
            move || {
                run_json(
                    &rpc,
                    &keystore,
                    &home,
                    &["store", "query", "--provider", &address, "--from", "dev-0", "--content-topic", TOPIC],
                )
            }
        })
        .await
        .expect("query task");
        let texts = lines.iter().filter(|l| l["text"].is_string()).count();
        assert_eq!(texts, 20, "query {i}: every message");
        let summary = &lines.last().expect("summary")["summary"];
        assert_eq!(summary["pages"], 1, "query {i}");
        assert_eq!(summary["reused"], i > 0, "query {i}: {summary}");
        assert_eq!(summary["closed_now"], false, "query {i}");
        streams.push(summary["stream_id"].as_u64().expect("stream id"));
    }
    assert!(started.elapsed() < Duration::from_secs(60), "twenty queries took {:?}", started.elapsed());
    assert!(streams.iter().all(|s| *s == streams[0]), "one stream for all: {streams:?}");
    let vault = chain.client.vault(user, 0).await.expect("read").expect("vault");
    assert_eq!(vault.next_stream_id, streams[0] + 1, "no second stream was created");

    let keystore = chain.keystore.clone();
    let list = run_json(&rpc, &keystore, &user_home, &["session", "list", "--from", "dev-0"]);
    let sessions = list[0]["sessions"].as_array().expect("sessions").clone();
    assert_eq!(sessions.len(), 1, "{list:?}");
    assert_eq!(sessions[0]["stream_id"], streams[0]);
    assert_eq!(sessions[0]["state"], "active");
    let id = sessions[0]["id"].as_str().expect("id").to_owned();
    let shown = run_json(&rpc, &keystore, &user_home, &["session", "show", &id[..12], "--from", "dev-0"]);
    assert_eq!(shown[0]["id"], id.as_str());

    let unallocated_before = vault.unallocated.0;
    let closed = run_json(&rpc, &keystore, &user_home, &["session", "close", "--all", "--from", "dev-0"]);
    let closed = &closed[0]["closed"][0];
    assert_eq!(closed["stream_id"], streams[0]);
    let view = chain.client.require_stream(user, 0, streams[0]).await.expect("stream");
    assert_eq!(view.state, StreamState::Closed);
    let vault = chain.client.vault(user, 0).await.expect("read").expect("vault");
    assert_eq!(
        closed["returned_to_vault"].as_str().expect("amount"),
        (vault.unallocated.0 - unallocated_before).to_string(),
        "what came back is what the vault gained"
    );
    let list = run_json(&rpc, &keystore, &user_home, &["session", "list", "--from", "dev-0"]);
    assert_eq!(list[0]["sessions"].as_array().map(Vec::len), Some(0));
    drop(provider);
    chain.node.shutdown().await;
}

/// `store query` processes SIGKILLed at random moments (seed printed): after each kill, the
/// next command that opens the owner's store settles what the killed one left, the owner never
/// holds more than one session with the provider, and no stream of the vault that is still open
/// on chain is unknown to the store (nothing promised or paid for is lost). Afterwards a query
/// succeeds and closing the session leaves every stream closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_queries_lose_no_session_and_never_open_a_second() {
    let chain = chain().await;
    let rpc = chain.node.rpc_url();
    let work = tempfile::tempdir().expect("tempdir");
    let (provider_home, user_home) = (work.path().join("provider"), work.path().join("user"));
    let archive = chain.seeded_archive(work.path(), 30);
    let provider = serve(&rpc, &chain.keystore, &provider_home, &["--archive", &archive, "--min-allocation", "500"]);
    let user = chain.node.dev_keys()[0].account_id();
    let mut rng = paystreams_testkit::rng::Rng::from_env_or_clock("store query kills");
    let query = |kill_after: Option<Duration>| {
        let (rpc, keystore, home, address) =
            (rpc.clone(), chain.keystore.clone(), user_home.clone(), provider.address.clone());
        tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let mut child = paystream()
                .args(["store", "--rpc", &rpc, "--keystore"])
                .arg(&keystore)
                .args(["--json", "query", "--provider", &address, "--from", "dev-0"])
                .args(["--content-topic", TOPIC, "--page-size", "5"])
                .env("PAYSTREAMS_HOME", &home)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawns");
            if let Some(delay) = kill_after {
                // Where the kill lands is random; what is checked holds wherever it lands.
                std::thread::sleep(delay);
                let _ = child.kill();
            }
            let status = child.wait().expect("wait");
            (status, started.elapsed())
        })
    };
    // One whole query, timed: kills land uniformly within that span.
    let (status, span) = query(None).await.expect("query task");
    assert!(status.success(), "the untimed query");
    let span_ms = u64::try_from(span.as_millis()).unwrap_or(u64::MAX).max(1);
    let reset = async || {
        let closed = tokio::task::spawn_blocking({
            let (rpc, keystore, home) = (rpc.clone(), chain.keystore.clone(), user_home.clone());
            move || run_json(&rpc, &keystore, &home, &["session", "close", "--all", "--from", "dev-0"])
        })
        .await
        .expect("close task");
        assert!(closed[0]["closed"].is_array(), "{closed:?}");
        chain.client.advance_time(130).await.expect("advance");
        // The provider reuses a head it read for at most HEAD_CACHE_TTL: past that bound it
        // judges the next proposal's deadline against the advanced time, as the user does.
        tokio::time::sleep(paystreams_store::provider::HEAD_CACHE_TTL * 2).await;
    };
    reset().await;
    for round in 0..4 {
        query(Some(Duration::from_millis(rng.below(span_ms)))).await.expect("query task");
        let list = tokio::task::spawn_blocking({
            let (rpc, keystore, home) = (rpc.clone(), chain.keystore.clone(), user_home.clone());
            move || run_json(&rpc, &keystore, &home, &["session", "list", "--from", "dev-0"])
        })
        .await
        .expect("list task");
        let sessions = list[0]["sessions"].as_array().expect("sessions").clone();
        assert!(sessions.len() <= 1, "round {round}: {sessions:?}");
        eprintln!("round {round}: {:?}", sessions.iter().map(|s| (&s["phase"], &s["stream_id"])).collect::<Vec<_>>());
        let vault = chain.client.vault(user, 0).await.expect("read").expect("vault");
        for stream_id in 0..vault.next_stream_id {
            let view = chain.client.require_stream(user, 0, stream_id).await.expect("stream");
            if view.state != StreamState::Closed {
                assert!(
                    sessions.iter().any(|s| s["stream_id"] == stream_id),
                    "round {round}: open stream {stream_id} unknown to the store: {sessions:?}"
                );
            }
        }
        // Start the next round from scratch (so every kill lands in a first query): close
        // what is open, and let chain time pass the deadline of a proposal the kill cut short
        // (its promise holds until then, on both sides).
        reset().await;
    }
    let lines = tokio::task::spawn_blocking({
        let (rpc, keystore, home, address) =
            (rpc.clone(), chain.keystore.clone(), user_home.clone(), provider.address.clone());
        move || {
            run_json(
                &rpc,
                &keystore,
                &home,
                &["store", "query", "--provider", &address, "--from", "dev-0", "--content-topic", TOPIC, "--close"],
            )
        }
    })
    .await
    .expect("query task");
    assert_eq!(lines.iter().filter(|l| l["text"].is_string()).count(), 30, "every message");
    let closed = run_json(&rpc, &chain.keystore, &user_home, &["session", "close", "--all", "--from", "dev-0"]);
    assert!(closed[0]["closed"].is_array(), "{closed:?}");
    let vault = chain.client.vault(user, 0).await.expect("read").expect("vault");
    for stream_id in 0..vault.next_stream_id {
        let view = chain.client.require_stream(user, 0, stream_id).await.expect("stream");
        assert_eq!(view.state, StreamState::Closed, "stream {stream_id}");
    }
    drop(provider);
    chain.node.shutdown().await;
}

fn request() -> StoreQueryRequest {
    StoreQueryRequest {
        request_id: new_request_id(),
        include_data: true,
        pubsub_topic: Some(PUBSUB.into()),
        content_topics: vec![TOPIC.into()],
        pagination_forward: true,
        pagination_limit: Some(3),
        ..StoreQueryRequest::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(has_postgres), ignore = "needs PostgreSQL: apt-get install postgresql")]
async fn two_provider_processes_share_one_postgres_database() {
    let db = TestDatabase::create().expect("a test database");
    let chain = chain().await;
    let rpc = chain.node.rpc_url();
    let work = tempfile::tempdir().expect("tempdir");
    let file = work.path().join("messages.jsonl");
    write_messages(&file, 9);
    let out = import(&rpc, &chain.keystore, &file, db.url());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // Two processes, one provider id, one database (archive and sessions).
    let a = serve(&rpc, &chain.keystore, work.path(), &["--archive", db.url(), "--min-allocation", "500"]);
    let b = serve(&rpc, &chain.keystore, work.path(), &["--archive", db.url(), "--min-allocation", "500"]);
    assert_ne!(a.address, b.address);

    let user_key = chain.node.dev_keys()[0].clone();
    let provider_id = chain.node.dev_keys()[1].account_id().0;
    let user = Arc::new(User::new(user_key, RpcChain::new(chain.client.clone()), UserConfig::default()));
    let to_a = StoreClient::connect(&a.address).await.expect("client a");
    // The same transport identity to both: the provider finds sessions by requester.
    let to_b = to_a.also_to(&b.address).expect("client b");
    let terms = Terms { vault_id: 0, token_id: [0; 32], service_id: STORE_SERVICE_ID.into(), rate: 0, allocation: 0 };

    // The proposal goes to A; the session lives in the shared database.
    let paid = PaidStore::new(to_a.clone(), Arc::clone(&user), terms).await.expect("policy");
    let first = paid.page(&request()).await.expect("first page from A");
    assert!(first.stream_created.is_some());

    // Stream-proof-backed requests alternate between the processes; each is served once.
    for (i, client) in [&to_b, &to_a, &to_b, &to_a].into_iter().enumerate() {
        let mut r = request();
        r.eligibility_proof = Some(user.proof(&provider_id, &r.canonical()).await.expect("proof"));
        let response = client.send(&r).await.expect("answer");
        assert_eq!(response.status_code, Some(200), "request {i}: {response:?}");
        let status = response.eligibility.expect("status").status;
        assert_eq!(user.on_proof_status(&provider_id, &status, None).await.expect("react"), Reaction::Served);
        assert_eq!(response.messages.len(), 3);

        // The same request replayed to the other process is refused: one shared replay record.
        let other = if std::ptr::eq(client, &to_a) { &to_b } else { &to_a };
        let replay = other.send(&r).await.expect("answer");
        assert_eq!(replay.status_code, Some(400), "replay {i}");
        assert!(replay.messages.is_empty());
        assert_eq!(replay.eligibility.expect("status").status.code(), Some(StatusCode::ProofInvalid));
    }
    drop((a, b));
    drop(db);
    chain.node.shutdown().await;
}
