//! Every provider-initiated end reaches the user over real sockets (node over HTTP/WS, the
//! provider process over libp2p, a `StoreClient`): pushed at once on
//! `/paystreams/termination/1.0.0` to a connected user, and carried by the session's next
//! response. Also: per-peer limits before eligibility, the admin endpoint's guards, and the
//! receipt protocol's answer from a provider without receipts.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use libp2p::PeerId;
use paystreams_client::Client;
use paystreams_lez_core::crypto::SecretKey;
use paystreams_node::{NodeConfig, NodeHandle};
use paystreams_program::ExtensionSettings;
use paystreams_store::{
    Archive, STORE_SERVICE_ID, StoreQueryResponse,
    archive::{SqliteArchive, StoredMessage},
    client::StoreClient,
    provider::{AdminToken, ProviderConfig, ProviderHandle, ServiceOptions, SessionBackend, start},
    service::PeerLimit,
    wire::{StoreQueryRequest, WakuMessage},
};
use paystreams_wire::{
    EligibilityProof, RequestDigest as _, ServiceTermination, SessionTermination, StatusCode, StreamParams,
    TerminationType, VaultOwnerAuthBody, sign_proposal, sign_stream_proof,
};
use tokio::sync::broadcast;

use crate::common::{MIN_ALLOCATION, MIN_RATE, PUBSUB, messages, provider_config, query};

const DEPOSIT: u128 = 5_000;
/// Generous bound on any one wait; only a broken delivery reaches it.
const WAIT: Duration = Duration::from_secs(20);

struct World {
    node: NodeHandle,
    client: Client,
    user: SecretKey,
    provider_key: SecretKey,
    dir: tempfile::TempDir,
    archive: Arc<dyn Archive>,
    /// Taken out only to stop and restart it.
    provider: Option<ProviderHandle>,
    store: StoreClient,
    pushed: broadcast::Receiver<(PeerId, SessionTermination)>,
}

/// A session the test signed itself: its id, its key, and (once created) its stream.
struct Signed {
    id: [u8; 32],
    key: SecretKey,
    proposal: Vec<u8>,
}

fn config_in(w_dir: &std::path::Path, node: &NodeHandle, key: SecretKey, listen: &str) -> ProviderConfig {
    ProviderConfig {
        sessions: SessionBackend::Redb(w_dir.join("sessions.redb")),
        admin: Some("127.0.0.1:0".parse().expect("addr")),
        service: ServiceOptions { restart_pause_secs: 600, ..ServiceOptions::default() },
        ..provider_config(node.rpc_url(), key, listen)
    }
}

impl World {
    async fn new() -> Self {
        Self::with(|_| {}).await
    }

    async fn with(adjust: impl FnOnce(&mut ProviderConfig)) -> Self {
        let node = paystreams_node::start(NodeConfig::ephemeral_dev()).await.expect("node");
        let client = Client::connect(&node.rpc_url()).expect("client");
        let (user, provider_key) = (node.dev_keys()[0].clone(), node.dev_keys()[1].clone());
        client.init_vault(&user, 0, None).await.expect("vault");
        client.deposit(&user, 0, DEPOSIT).await.expect("deposit");
        let dir = tempfile::tempdir().expect("tempdir");
        let archive: Arc<dyn Archive> =
            Arc::new(SqliteArchive::open(&dir.path().join("archive.sqlite")).expect("archive"));
        archive.insert(&messages(12)).expect("seed");
        let mut config = config_in(dir.path(), &node, provider_key.clone(), "/ip4/127.0.0.1/tcp/0");
        adjust(&mut config);
        let provider = start(config, Arc::clone(&archive)).await.expect("provider");
        let store = StoreClient::connect(&provider.addrs()[0].to_string()).await.expect("store client");
        let pushed = store.terminations();
        Self { node, client, user, provider_key, dir, archive, provider: Some(provider), store, pushed }
    }

    /// A signed proposal at the provider's minimum terms, deadline 120 s of chain time away.
    async fn sign(&self) -> Signed {
        let now = self.client.chain_time().await.expect("chain time");
        let key = SecretKey::generate();
        let params = StreamParams {
            service_id: STORE_SERVICE_ID.as_bytes().to_vec(),
            stream_rate: MIN_RATE,
            allocation: MIN_ALLOCATION,
            create_stream_deadline: now + 120,
        };
        let proposal = sign_proposal(
            &self.user,
            0,
            self.provider_key.account_id().0,
            [0; 32],
            params,
            key.public_key().to_bytes(),
            None,
        )
        .expect("sign");
        let id = VaultOwnerAuthBody::from_proposal(&proposal).expect("body").digest();
        Signed { id, key, proposal: EligibilityProof::Proposal(proposal).encode() }
    }

    async fn send(&self, mut request: StoreQueryRequest, proof: Vec<u8>) -> StoreQueryResponse {
        request.eligibility_proof = Some(proof);
        self.store.send(&request).await.expect("answer")
    }

    async fn propose(&self, session: &Signed) -> StoreQueryResponse {
        self.send(query(), session.proposal.clone()).await
    }

    /// A request on `session`'s `stream_id`, signed with its key.
    async fn prove(&self, session: &Signed, stream_id: u64) -> StoreQueryResponse {
        let request = query();
        let proof = sign_stream_proof(&session.key, stream_id, &request.canonical().digest());
        self.send(request, EligibilityProof::Proof(proof).encode()).await
    }

    /// An accepted proposal, its stream created and a first paid request served.
    async fn bound(&self) -> (Signed, u64) {
        let session = self.sign().await;
        assert_eq!(self.propose(&session).await.status_code, Some(200));
        let (stream_id, _) = self
            .client
            .create_stream(
                &self.user,
                0,
                self.provider_key.account_id(),
                MIN_RATE,
                u128::from(MIN_ALLOCATION),
                ExtensionSettings::default(),
            )
            .await
            .expect("stream");
        assert_eq!(self.prove(&session, stream_id).await.status_code, Some(200));
        (session, stream_id)
    }

    /// The next termination pushed to this user.
    async fn next_pushed(&mut self) -> (PeerId, SessionTermination) {
        tokio::time::timeout(WAIT, self.pushed.recv()).await.expect("a termination is pushed in time").expect("open")
    }

    fn provider(&self) -> &ProviderHandle {
        self.provider.as_ref().expect("running")
    }

    async fn admin(&self, method: &str, path: &str, headers: &[(&str, String)]) -> (u16, String) {
        admin_request(self.provider().admin_addr().expect("admin"), method, path, headers).await
    }

    fn token(&self) -> (&'static str, String) {
        ("Authorization", format!("Bearer {}", self.provider().admin_token().expect("token")))
    }

    fn host(&self) -> (&'static str, String) {
        ("Host", self.provider().admin_addr().expect("admin").to_string())
    }
}

/// One HTTP/1.1 request with exactly `headers`; the status and body.
async fn admin_request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, String)]) -> (u16, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect admin");
    let mut request = format!("{method} {path} HTTP/1.1\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("Content-Length: 0\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut text = String::new();
    stream.read_to_string(&mut text).await.expect("read");
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status line");
    (status, text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned())
}

fn termination_of(response: &StoreQueryResponse) -> Option<ServiceTermination> {
    response.eligibility.as_ref().and_then(|e| e.termination)
}

fn assert_pushed(
    pushed: &(PeerId, SessionTermination),
    provider: PeerId,
    session: &Signed,
    kind: TerminationType,
) -> ServiceTermination {
    assert_eq!(pushed.0, provider, "pushed by the provider");
    assert_eq!(pushed.1.session_id, session.id, "for the session");
    assert_eq!(pushed.1.termination.termination_type, kind);
    pushed.1.termination
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_terminate_is_pushed_and_in_the_next_response() {
    let mut w = World::new().await;
    let (session, stream_id) = w.bound().await;
    let path = format!("/sessions/{}/terminate", hex::encode(session.id));
    let (status, body) = w.admin("POST", &path, &[w.host(), w.token()]).await;
    assert_eq!(status, 200, "{body}");
    let pushed = w.next_pushed().await;
    let termination = assert_pushed(&pushed, w.store.peer_id(), &session, TerminationType::Permanent);
    assert_eq!(termination.resume_after, 0);
    let next = w.prove(&session, stream_id).await;
    assert_eq!(next.status_code, Some(400));
    assert_eq!(termination_of(&next), Some(termination));
    let desc = next.status_desc.clone().unwrap_or_default();
    assert!(desc.contains("PERMANENT termination"), "Store's own status_desc says it too: {desc}");
    assert!(w.provider().metrics().terminations_pushed.load(std::sync::atomic::Ordering::Relaxed) >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_is_pushed_and_in_the_next_response() {
    let mut w = World::new().await;
    let (session, stream_id) = w.bound().await;
    let (status, body) = w.admin("POST", "/maintenance?secs=300", &[w.host(), w.token()]).await;
    assert_eq!(status, 200, "{body}");
    let reply: serde_json::Value = serde_json::from_str(&body).expect("json");
    let until = reply["maintenance_until"].as_u64().expect("until");
    let termination = assert_pushed(&w.next_pushed().await, w.store.peer_id(), &session, TerminationType::Temporary);
    assert_eq!(termination.resume_after, until);
    let next = w.prove(&session, stream_id).await;
    assert_eq!(next.status_code, Some(400));
    assert_eq!(termination_of(&next), Some(termination));
    let desc = next.status_desc.clone().unwrap_or_default();
    assert!(
        desc.starts_with("STREAM_NOT_ACTIVE: ") && desc.contains(&format!("retry after chain time {until}")),
        "{desc}"
    );
    // Ending maintenance serves the same session again.
    let (status, _) = w.admin("POST", "/maintenance?secs=0", &[w.host(), w.token()]).await;
    assert_eq!(status, 200);
    assert_eq!(w.prove(&session, stream_id).await.status_code, Some(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_drained_while_pending_is_pushed_and_in_the_next_response() {
    let mut w = World::new().await;
    let session = w.sign().await;
    assert_eq!(w.propose(&session).await.status_code, Some(200));
    // No stream; the vault's unallocated funds fall below the accepted allocation.
    w.client.withdraw(&w.user, 0, DEPOSIT - u128::from(MIN_ALLOCATION) + 1, None).await.expect("withdraw");
    let termination = assert_pushed(&w.next_pushed().await, w.store.peer_id(), &session, TerminationType::Permanent);
    let next = w.prove(&session, 0).await;
    assert_eq!(next.status_code, Some(400));
    assert_eq!(termination_of(&next), Some(termination));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_response_over_the_cap_ends_with_a_permanent_termination() {
    let w = World::new().await;
    // One message larger than the first-response cap: the page cannot be trimmed under it.
    let big = StoredMessage::new(
        PUBSUB.into(),
        WakuMessage {
            payload: vec![b'x'; 600],
            content_topic: "/test/1/big/proto".into(),
            timestamp: Some(2_000_000_000),
            ..WakuMessage::default()
        },
    )
    .expect("valid");
    w.archive.insert(std::slice::from_ref(&big)).expect("insert");
    let session = w.sign().await;
    let request =
        StoreQueryRequest { message_hashes: vec![big.hash], content_topics: Vec::new(), pubsub_topic: None, ..query() };
    let refused = w.send(request, session.proposal.clone()).await;
    assert_eq!(refused.status_code, Some(400));
    assert!(refused.messages.is_empty());
    let eligibility = refused.eligibility.expect("verdict");
    assert_eq!(eligibility.status.code(), Some(StatusCode::ParamsRejected));
    assert_eq!(
        eligibility.termination.map(|t| (t.termination_type, t.resume_after)),
        Some((TerminationType::Permanent, 0))
    );
    // A request on the ended session gets the termination again; a new proposal is accepted.
    assert_eq!(
        termination_of(&w.prove(&session, 0).await).map(|t| t.termination_type),
        Some(TerminationType::Permanent)
    );
    let again = w.sign().await;
    assert_eq!(w.propose(&again).await.status_code, Some(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_pauses_connected_users_and_the_restarted_provider_says_so() {
    let mut w = World::new().await;
    let (session, stream_id) = w.bound().await;
    let address = w.provider().addrs()[0].to_string();
    let port = address.split("/tcp/").nth(1).and_then(|r| r.split('/').next()).expect("port").to_owned();
    let provider = w.provider.take().expect("running");
    let before = w.client.chain_time().await.expect("time");
    provider.shutdown().await;
    let termination = assert_pushed(&w.next_pushed().await, w.store.peer_id(), &session, TerminationType::Temporary);
    // 600 s of chain time from the provider's view of the head (reused for up to 250 ms).
    assert!((before + 599..=before + 610).contains(&termination.resume_after), "{termination:?} from {before}");
    // Restart on the same port and session file: the paused session is refused with the same
    // TEMPORARY termination until then.
    w.provider = Some(
        start(
            config_in(w.dir.path(), &w.node, w.provider_key.clone(), &format!("/ip4/127.0.0.1/tcp/{port}")),
            Arc::clone(&w.archive),
        )
        .await
        .expect("restart"),
    );
    let mut next = None;
    for _ in 0..50 {
        let mut request = query();
        let proof = sign_stream_proof(&session.key, stream_id, &request.canonical().digest());
        request.eligibility_proof = Some(EligibilityProof::Proof(proof).encode());
        match w.store.send(&request).await {
            Ok(response) => {
                next = Some(response);
                break;
            }
            // The old connection is gone; the next request dials again.
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let next = next.expect("the restarted provider answers");
    assert_eq!(next.status_code, Some(400));
    assert_eq!(termination_of(&next), Some(termination));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_peer_is_limited_while_another_is_served() {
    let w = World::with(|c| c.service.peer_limit = PeerLimit { per_sec: 1, burst: 3 }).await;
    let mut limited = 0;
    for _ in 0..20 {
        let answer = w.store.send(&query()).await.expect("answer");
        if answer.status_code == Some(429) {
            assert!(answer.status_desc.as_deref().is_some_and(|d| d.contains("retry in")), "{answer:?}");
            assert!(answer.eligibility.is_none(), "refused before eligibility");
            limited += 1;
        }
    }
    // At most the burst plus one refill per second of the loop was let through.
    assert!(limited >= 10, "{limited} of 20 limited");
    let other = StoreClient::connect(&w.provider().addrs()[0].to_string()).await.expect("second peer");
    let answer = other.send(&query()).await.expect("answer");
    assert_eq!(answer.status_code, Some(400), "judged, not limited: {answer:?}");
    assert_eq!(answer.eligibility.map(|e| e.status.code()), Some(Some(StatusCode::ProofInvalid)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoint_needs_token_host_and_no_foreign_origin() {
    let w = World::new().await;
    let addr = w.provider().admin_addr().expect("admin");
    let localhost = ("Host", format!("localhost:{}", addr.port()));
    // Health is open (still Host-checked); everything else needs the token.
    assert_eq!(w.admin("GET", "/health", &[w.host()]).await.0, 200);
    let (status, body) = w.admin("GET", "/sessions", &[w.host()]).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(w.admin("GET", "/sessions", &[w.host(), ("Authorization", "Bearer nope".into())]).await.0, 401);
    // DNS rebinding: a foreign Host, even with the token.
    let (status, body) = w.admin("GET", "/sessions", &[("Host", "evil.example:80".into()), w.token()]).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(w.admin("GET", "/health", &[]).await.0, 403, "no Host");
    // A cross-site request: a foreign Origin, even with the token.
    let evil = ("Origin", "http://evil.example".to_owned());
    let terminate = format!("/sessions/{}/terminate", hex::encode([1; 32]));
    assert_eq!(w.admin("POST", &terminate, &[w.host(), w.token(), evil]).await.0, 403);
    // The admin's own host and origin with the token.
    let own = ("Origin", format!("http://localhost:{}", addr.port()));
    assert_eq!(w.admin("GET", "/sessions", &[localhost.clone(), w.token(), own]).await.0, 200);
    assert_eq!(w.admin("GET", "/metrics", &[localhost, w.token()]).await.0, 200);
    assert_eq!(w.admin("POST", &terminate, &[w.host(), w.token()]).await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_token_files_and_loopback_only() {
    let node = paystreams_node::start(NodeConfig::ephemeral_dev()).await.expect("node");
    let dir = tempfile::tempdir().expect("tempdir");
    let archive: Arc<dyn Archive> = Arc::new(SqliteArchive::open(&dir.path().join("a.sqlite")).expect("archive"));
    let key = node.dev_keys()[1].clone();
    // A generated token is written for the owner only, and works.
    let path = dir.path().join("store").join("admin-token");
    let mut config = config_in(dir.path(), &node, key.clone(), "/ip4/127.0.0.1/tcp/0");
    config.service.admin_token = AdminToken::Generate(path.clone());
    let provider = start(config, Arc::clone(&archive)).await.expect("provider");
    let written = std::fs::read_to_string(&path).expect("token file");
    assert_eq!(written.trim(), provider.admin_token().expect("token"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777, 0o600);
    }
    let addr = provider.admin_addr().expect("admin");
    let auth = ("Authorization", format!("Bearer {}", written.trim()));
    assert_eq!(admin_request(addr, "GET", "/sessions", &[("Host", addr.to_string()), auth]).await.0, 200);
    provider.shutdown().await;
    // A given token file is used as is; a short one is refused.
    let given = dir.path().join("given");
    std::fs::write(&given, "0123456789abcdef0123\n").expect("write");
    let mut config = config_in(dir.path(), &node, key.clone(), "/ip4/127.0.0.1/tcp/0");
    config.service.admin_token = AdminToken::File(given.clone());
    let provider = start(config, Arc::clone(&archive)).await.expect("provider");
    assert_eq!(provider.admin_token(), Some("0123456789abcdef0123"));
    provider.shutdown().await;
    std::fs::write(&given, "short\n").expect("write");
    let mut config = config_in(dir.path(), &node, key.clone(), "/ip4/127.0.0.1/tcp/0");
    config.service.admin_token = AdminToken::File(given);
    let error = start(config, Arc::clone(&archive)).await.expect_err("short token");
    assert!(error.to_string().contains("shorter than"), "{error}");
    // Not loopback: refused before anything listens.
    let mut config = config_in(dir.path(), &node, key, "/ip4/127.0.0.1/tcp/0");
    config.admin = Some("0.0.0.0:0".parse().expect("addr"));
    let error = start(config, archive).await.expect_err("non-loopback admin");
    assert!(error.to_string().contains("loopback only"), "{error}");
}

/// The user engine acts on a pushed termination without sending a request: the provider ends
/// the session from its admin endpoint and the user's `PaidStore` closes the stream on chain
/// (its unaccrued rest back in the vault) and forgets the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_permanent_termination_makes_the_user_close_its_stream() {
    let w = World::new().await;
    let engine = Arc::new(paystreams_user::User::new(
        w.user.clone(),
        paystreams_rpc::remote::RpcChain::new(w.client.clone()),
        paystreams_user::UserConfig::default(),
    ));
    let terms = paystreams_user::Terms {
        vault_id: 0,
        token_id: [0; 32],
        service_id: STORE_SERVICE_ID.into(),
        rate: 0,
        allocation: 0,
    };
    let address = w.provider().addrs()[0].to_string();
    let paid = paystreams_store::PaidStore::connect(&address, Arc::clone(&engine), terms).await.expect("connects");
    let first = paid.page(&query()).await.expect("served");
    let stream_id = first.stream_created.expect("stream created");
    let session = paid.session().expect("state").expect("session");
    let path = format!("/sessions/{}/terminate", hex::encode(session.session_id));
    let (status, body) = w.admin("POST", &path, &[w.host(), w.token()]).await;
    assert_eq!(status, 200, "{body}");
    // No request is sent: the push alone makes the engine close the stream and forget the
    // session (it forgets only after the close is included).
    tokio::time::timeout(WAIT, async {
        while paid.session().expect("state").is_some() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the user acted on the push");
    let view = w.client.require_stream(w.user.account_id(), 0, stream_id).await.expect("stream");
    assert_eq!(view.state, paystreams_program::state::StreamState::Closed);
}
