//! `paystream agent` over real sockets: a node, `store serve` and the agent as separate
//! processes, and an "app" that only speaks HTTP to the agent and Store v3 to the provider
//! (with the identity the agent hands out). Proposal → outcome → stream → stream proofs →
//! served, twice; an agent restart keeps the session; two apps at once; refusals of the API;
//! and the exact balance at the end.

use std::{
    path::{Path, PathBuf},
    process::Child,
    time::Duration,
};

use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use libp2p::identity::Keypair;
use paystreams_store::{
    client::{StoreClient, new_request_id},
    wire::StoreQueryRequest,
};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::{
    common::{chain, paystream, serve_archive, spawn_and_read, wait_for},
    store_cli::{PUBSUB, TOPIC},
};

/// A running `paystream agent`, killed when dropped.
pub(crate) struct AgentProcess {
    child: Child,
    pub(crate) addr: String,
    token: String,
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn start_agent(rpc: &str, keystore: &Path, home: &Path, token_file: &Path) -> AgentProcess {
    start_agent_with(rpc, keystore, home, token_file, &[])
}

/// As [`start_agent`], with `extra` flags.
pub(crate) fn start_agent_with(
    rpc: &str,
    keystore: &Path,
    home: &Path,
    token_file: &Path,
    extra: &[&str],
) -> AgentProcess {
    let mut command = paystream();
    command
        .args(["agent", "--rpc", rpc, "--keystore"])
        .arg(keystore)
        .args(["--from", "dev-0", "--listen", "127.0.0.1:0", "--token-file"])
        .arg(token_file)
        .args(extra)
        .env("PAYSTREAMS_HOME", home);
    let (child, addrs) = spawn_and_read(&mut command, "agent listening on http://", Duration::from_secs(60));
    let addr = addrs[0].clone();
    let token = std::fs::read_to_string(token_file).expect("token file").trim().to_owned();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(token_file).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the token file is private");
    }
    AgentProcess { child, addr, token }
}

/// One HTTP/1.1 exchange with full control of the headers: `(status, JSON body)`.
async fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> (u16, Value) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connects");
    let mut request = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    let body = body.unwrap_or_default();
    request.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len()));
    stream.write_all(request.as_bytes()).await.expect("writes");
    stream.write_all(body).await.expect("writes body");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("reads");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").expect("an HTTP response");
    let status: u16 = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("a status");
    let value = serde_json::from_str(rest.trim()).unwrap_or(Value::String(rest.to_owned()));
    (status, value)
}

impl AgentProcess {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let auth = format!("Bearer {}", self.token);
        let bytes = body.map(|b| b.to_string().into_bytes());
        http(&self.addr, method, path, &[("Host", &self.addr), ("Authorization", &auth)], bytes.as_deref()).await
    }

    pub(crate) async fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, value) = self.call(method, path, body).await;
        assert_eq!(status, 200, "{method} {path}: {value}");
        value
    }
}

/// The app: dials the provider with the identity the agent gives it.
pub(crate) async fn app(agent: &AgentProcess, provider: &str) -> StoreClient {
    let identity = agent.ok("GET", &format!("/v1/identity?provider={provider}"), None).await;
    let key = B64.decode(identity["private_key"].as_str().expect("key")).expect("base64");
    let keypair = Keypair::from_protobuf_encoding(&key).expect("a libp2p key");
    assert_eq!(keypair.public().to_peer_id().to_string(), identity["requester_peer_id"]);
    StoreClient::connect_as(provider, keypair).await.expect("app connects")
}

/// One page through the agent: proof, the app's own request with field 30, the outcome.
/// Returns the proof kind, the outcome's answer and the response.
async fn page(
    agent: &AgentProcess,
    client: &StoreClient,
    provider: &str,
    cursor: Option<[u8; 32]>,
) -> (String, Value, paystreams_store::StoreQueryResponse) {
    let mut request = StoreQueryRequest {
        request_id: new_request_id(),
        include_data: true,
        pubsub_topic: Some(PUBSUB.into()),
        content_topics: vec![TOPIC.into()],
        pagination_cursor: cursor,
        pagination_forward: true,
        pagination_limit: Some(5),
        ..StoreQueryRequest::default()
    };
    let proof = agent
        .ok("POST", "/v1/proof", Some(json!({ "provider": provider, "store_request": B64.encode(request.encode()) })))
        .await;
    request.eligibility_proof = Some(B64.decode(proof["eligibility_proof"].as_str().expect("proof")).expect("b64"));
    let response = client.send(&request).await.expect("the provider answers");
    let eligibility = response.eligibility.as_ref().expect("field 30").encode();
    let outcome = agent
        .ok("POST", "/v1/outcome", Some(json!({ "session": proof["session"], "eligibility": B64.encode(eligibility) })))
        .await;
    (proof["kind"].as_str().expect("kind").to_owned(), outcome, response)
}

/// Reads every page of the topic; the first page's proof kind must be `first_kind`.
pub(crate) async fn read_all(
    agent: &AgentProcess,
    client: &StoreClient,
    provider: &str,
    first_kind: &str,
) -> Vec<String> {
    let mut texts = Vec::new();
    let mut cursor = None;
    for n in 0.. {
        let (kind, outcome, response) = page(agent, client, provider, cursor).await;
        assert!(response.is_success(), "{response:?}");
        if n == 0 {
            assert_eq!(kind, first_kind);
            let expected = if first_kind == "proposal" { "stream_created" } else { "served" };
            assert_eq!(outcome["reaction"], expected, "{outcome}");
        } else {
            assert_eq!(kind, "stream_proof");
            assert_eq!(outcome["reaction"], "served", "{outcome}");
        }
        for m in &response.messages {
            let (message, _) = m.message.as_ref().expect("data");
            texts.push(String::from_utf8(message.payload.clone()).expect("utf-8"));
        }
        match response.pagination_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    texts
}

pub(crate) fn expected_texts() -> Vec<String> {
    (0..12).map(|i| format!("line {i:02}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_pays_through_the_agent_and_the_money_adds_up() {
    let chain = chain().await;
    let rpc = chain.node.rpc_url();
    let work = tempfile::tempdir().expect("tempdir");
    let archive = chain.seeded_archive(work.path(), 12);
    let provider = serve_archive(&chain, work.path(), &archive, &["--min-allocation", "500"]);
    let addr = provider.address.clone();
    let provider_account = chain.node.dev_keys()[1].account_id();
    let owner = chain.node.dev_keys()[0].account_id();
    let provider_before = chain.client.balance(provider_account).await.expect("balance");
    let token_file: PathBuf = work.path().join("agent.token");
    let agent = start_agent(&rpc, &chain.keystore, work.path(), &token_file);

    // The API's guard: token, Host, Origin; bad bodies get JSON errors.
    let (status, body) = http(&agent.addr, "GET", "/v1/sessions", &[("Host", &agent.addr)], None).await;
    assert_eq!(status, 401, "{body}");
    assert!(body["error"].as_str().expect("error").contains("agent.token"), "{body}");
    let auth = format!("Bearer {}", agent.token);
    let (status, _) =
        http(&agent.addr, "GET", "/v1/sessions", &[("Host", "evil.example"), ("Authorization", &auth)], None).await;
    assert_eq!(status, 403);
    let (status, _) = http(
        &agent.addr,
        "GET",
        "/v1/sessions",
        &[("Host", &agent.addr), ("Authorization", &auth), ("Origin", "http://evil.example")],
        None,
    )
    .await;
    assert_eq!(status, 403);
    for (body, what) in [
        (json!({ "provider": addr }), "exactly one of"),
        (json!({ "provider": addr, "request_digest": "zz" }), "64 hex"),
        (json!({ "provider": addr, "store_request": "%%%" }), "base64"),
        (json!({ "provider": "nowhere", "request_digest": hex::encode([1u8; 32]) }), "multiaddr"),
        (json!({ "provider": addr, "request_digest": hex::encode([1u8; 32]), "extra": 1 }), "unknown field"),
    ] {
        let (status, answer) = agent.call("POST", "/v1/proof", Some(body)).await;
        assert_eq!(status, 400, "{answer}");
        assert!(answer["error"].as_str().expect("error").contains(what), "{answer} should mention {what}");
    }
    let huge = vec![b'x'; 300 * 1024];
    let (status, answer) =
        http(&agent.addr, "POST", "/v1/proof", &[("Host", &agent.addr), ("Authorization", &auth)], Some(&huge)).await;
    assert_eq!(status, 413, "{answer}");
    let (status, answer) =
        agent.call("POST", "/v1/outcome", Some(json!({ "session": hex::encode([7u8; 32]), "status": "OK" }))).await;
    assert_eq!(status, 404, "{answer}");
    let (status, answer) = agent.call("POST", "/v1/outcome", Some(json!({ "session": hex::encode([7u8; 32]) }))).await;
    assert_eq!(status, 400, "{answer}");

    // First session: proposal, stream created, stream proofs for every later page.
    let client = app(&agent, &addr).await;
    assert_eq!(read_all(&agent, &client, &addr, "proposal").await, expected_texts());
    let listed = agent.ok("GET", "/v1/sessions", None).await;
    let session = listed["sessions"][0]["id"].as_str().expect("a session").to_owned();
    assert_eq!(listed["sessions"][0]["phase"], "streaming");
    // Chain time passes: the stream accrues.
    chain.client.advance_time(20).await.expect("advance");

    // A repeated outcome changes nothing.
    let (_, outcome, _) = page(&agent, &client, &addr, None).await;
    assert_eq!(outcome["reaction"], "served");
    let (status, repeat) = agent.call("POST", "/v1/outcome", Some(json!({ "session": session, "status": "OK" }))).await;
    assert_eq!((status, &repeat["reaction"]), (200, &json!("served")), "{repeat}");

    // While the agent holds the owner's user state, the CLI for that owner is told who holds it.
    let busy = tokio::task::spawn_blocking({
        let (rpc, keystore, home) = (rpc.clone(), chain.keystore.clone(), work.path().to_owned());
        move || {
            paystream()
                .args(["session", "--rpc", &rpc, "--keystore"])
                .arg(&keystore)
                .args(["list", "--from", "dev-0"])
                .env("PAYSTREAMS_HOME", &home)
                .output()
                .expect("runs")
        }
    })
    .await
    .expect("session list");
    let stderr = String::from_utf8_lossy(&busy.stderr);
    assert!(!busy.status.success(), "{stderr}");
    assert!(stderr.contains("in use by another paystream process") && stderr.contains(" agent"), "{stderr}");

    // Restart: the session and its stream are picked up again.
    drop(agent);
    let agent = start_agent(&rpc, &chain.keystore, work.path(), &token_file);
    let listed = agent.ok("GET", "/v1/sessions", None).await;
    assert_eq!(listed["sessions"][0]["id"], session.as_str());
    let client = app(&agent, &addr).await;
    assert_eq!(read_all(&agent, &client, &addr, "stream_proof").await, expected_texts());

    // Two apps at once, on the same session.
    let second = app(&agent, &addr).await;
    let (a, b) = tokio::join!(page(&agent, &client, &addr, None), page(&agent, &second, &addr, None));
    for (kind, outcome, response) in [a, b] {
        assert_eq!(kind, "stream_proof");
        assert_eq!(outcome["reaction"], "served", "{outcome}");
        assert_eq!(response.messages.len(), 5);
    }

    // Close; a duplicate outcome for the closed session answers what it answered first.
    let closed = agent.ok("POST", &format!("/v1/sessions/{session}/close"), None).await;
    let first_stream = closed["closed_stream"].as_u64().expect("closed a stream");
    let (status, repeat) = agent.call("POST", "/v1/outcome", Some(json!({ "session": session, "status": "OK" }))).await;
    assert_eq!(status, 200, "{repeat}");
    assert_eq!(repeat["duplicate"], true);

    // Second session, in a row: a new proposal and a new stream.
    assert_eq!(read_all(&agent, &client, &addr, "proposal").await, expected_texts());
    let listed = agent.ok("GET", "/v1/sessions", None).await;
    let second_session = listed["sessions"][0]["id"].as_str().expect("a session").to_owned();
    assert_ne!(second_session, session);
    chain.client.advance_time(7).await.expect("advance");
    let closed = agent.ok("POST", &format!("/v1/sessions/{second_session}/close"), None).await;
    let second_stream = closed["closed_stream"].as_u64().expect("closed a stream");
    assert_ne!(first_stream, second_stream);

    // Exact balance: once the provider has claimed both closed streams, what the agent reports
    // as spent is what the provider earned, and the vault holds the deposit minus that.
    for stream_id in [first_stream, second_stream] {
        wait_for("the provider's claim after the close", async || {
            (chain.client.require_stream(owner, 0, stream_id).await.expect("stream").accrued.0 == 0).then_some(())
        })
        .await;
    }
    let spending = agent.ok("GET", "/v1/spending", None).await;
    let total = &spending["total"];
    let amount = |v: &Value| v.as_str().expect("decimal string").parse::<u128>().expect("u128");
    assert_eq!(total["streams"], 2);
    assert_eq!(amount(&total["unaccrued"]), 0);
    assert_eq!(amount(&total["allocated"]), amount(&total["spent"]) + amount(&total["refunded"]));
    let earned = chain.client.balance(provider_account).await.expect("balance") - provider_before;
    assert!(earned > 0, "the provider was paid");
    assert_eq!(amount(&total["spent"]), earned);
    let vault = chain.client.require_vault(owner, 0).await.expect("vault").0;
    assert_eq!(vault.balance.0 + earned, 50_000, "deposit = vault + provider's earnings, to the unit");
    assert_eq!(vault.total_allocated.0, 0, "no stream holds anything");

    // A spending cap below what the ledger already counts refuses a new session, says why, and
    // warns.
    drop(agent);
    let capped = start_agent_with(&rpc, &chain.keystore, work.path(), &token_file, &["--spending-cap", "600"]);
    let (status, refusal) = capped
        .call("POST", "/v1/proof", Some(json!({ "provider": addr, "request_digest": hex::encode([3u8; 32]) })))
        .await;
    assert_eq!(status, 409, "{refusal}");
    assert!(refusal["error"].as_str().expect("error").contains("spending cap"), "{refusal}");
    let warnings = capped.ok("GET", "/v1/warnings", None).await;
    let kinds: Vec<&str> =
        warnings["warnings"].as_array().expect("warnings").iter().filter_map(|w| w["kind"].as_str()).collect();
    assert!(kinds.contains(&"spending_cap"), "{warnings}");
    assert_eq!(capped.ok("GET", "/v1/spending", None).await["total"], *total, "the ledger survived the restart");
    drop(provider);
}
