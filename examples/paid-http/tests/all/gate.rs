//! A JSON API paid through the gate: the node, the gate (engine, follower, claims, redb
//! sessions, loopback API), the example service and the users run as separate tasks and talk
//! only through sockets.
//!
//! Covers: an unpaid request (402 with the reason), two users' first requests at once (each a
//! proposal, served within the first-response cap, then the stream created), a first response
//! over the cap refused with a PERMANENT termination, later requests on stream proofs, a
//! replayed and a forged proof refused, the gate restarting (sessions survive in redb), the
//! API's token and Host checks, a termination listed for the service and delivered in the
//! next answer, a second session in a row, the provider's claims, and balances
//! that add up to the unit.

use std::{net::SocketAddr, path::Path, sync::Arc, time::Duration};

use paystreams_client::Client;
use paystreams_example_paid_http::{
    SERVICE_ID, STATUS_HEADER, TERMINATION_HEADER,
    client::{PaidHttp, PaidHttpError, request_id},
    service::{GateClient, router},
};
use paystreams_gate::{GateConfig, GateHandle};
use paystreams_lez_core::crypto::SecretKey;
use paystreams_node::NodeConfig;
use paystreams_process::{AdminToken, ProcessConfig, SessionBackend};
use paystreams_provider::{EngineLimits, PeerLimit, ProviderPolicy};
use paystreams_rpc::remote::RpcChain;
use paystreams_user::{Terms, User, UserConfig};
use paystreams_wire::TokenStreamPolicy;

pub const DEPOSIT: u128 = 5_000;
const MIN_RATE: u64 = 2;
const MIN_ALLOCATION: u64 = 1_000;
/// Two quotes fit, fifty do not.
const FIRST_CAP: u64 = 400;

pub fn gate_config(rpc_url: String, key: SecretKey, sessions: &Path, addr: SocketAddr) -> GateConfig {
    let mut policy = ProviderPolicy::new(
        key.account_id().0,
        vec![SERVICE_ID.into()],
        vec![TokenStreamPolicy { token_id: [0; 32], min_rate: MIN_RATE, min_allocation: MIN_ALLOCATION }],
    );
    policy.first_response_cap = FIRST_CAP;
    GateConfig {
        process: ProcessConfig {
            rpc_url,
            chain: paystreams_rpc::remote::ChainAccess::default(),
            provider_key: key,
            policy,
            limits: EngineLimits { staleness_bound_ms: 5_000, recheck_lead_secs: 5, ..EngineLimits::default() },
            sessions: SessionBackend::Redb(sessions.to_path_buf()),
            admin: Some(addr),
            admin_token: AdminToken::Ephemeral,
            tick_interval: Duration::from_millis(200),
            claim_on_shutdown: true,
        },
        peer_limit: PeerLimit::default(),
    }
}

/// The example service in front of `gate`, on a port of its own.
pub async fn start_service(gate: &GateHandle) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = router(GateClient::new(&format!("http://{}", gate.addr()), gate.token()));
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), task)
}

pub fn terms() -> Terms {
    Terms { vault_id: 0, token_id: [0; 32], service_id: SERVICE_ID.into(), rate: 0, allocation: 0 }
}

pub fn quotes(body: &[u8]) -> usize {
    let json: serde_json::Value = serde_json::from_slice(body).expect("json body");
    json["quotes"].as_array().expect("quotes").len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[expect(clippy::too_many_lines, reason = "one end-to-end flow, step by step")]
async fn paid_http_through_the_gate() {
    let node = paystreams_node::start(NodeConfig::ephemeral_dev()).await.expect("node");
    let client = Client::connect(&node.rpc_url()).expect("client");
    let keys = node.dev_keys().to_vec();
    let provider_key = keys[1].clone();
    let p = provider_key.account_id();
    let user_keys = [keys[0].clone(), keys[2].clone(), keys[3].clone()];
    let provider_start = client.balance(p).await.expect("balance");
    let mut supply_before = provider_start;
    for key in &user_keys {
        supply_before += client.balance(key.account_id()).await.expect("balance");
        client.init_vault(key, 0, None).await.expect("vault");
        client.deposit(key, 0, DEPOSIT).await.expect("deposit");
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let sessions = dir.path().join("sessions.redb");
    let config = gate_config(node.rpc_url(), provider_key.clone(), &sessions, "127.0.0.1:0".parse().expect("addr"));
    let gate = paystreams_gate::start(config).await.expect("gate starts");
    let gate_addr = gate.addr();
    let (base, service) = start_service(&gate).await;

    let user = |key: &SecretKey| Arc::new(User::new(key.clone(), RpcChain::new(client.clone()), UserConfig::default()));
    let (ua, ub, uc) = (user(&user_keys[0]), user(&user_keys[1]), user(&user_keys[2]));
    let a = PaidHttp::connect(&base, Arc::clone(&ua), terms()).await.expect("policy");
    let b = PaidHttp::connect(&base, Arc::clone(&ub), terms()).await.expect("policy");
    let c = PaidHttp::connect(&base, Arc::clone(&uc), terms()).await.expect("policy");
    assert_eq!(a.advert().provider_id, p.0);
    assert_ne!(a.requester(), b.requester(), "each user has its own requester id");

    // Unpaid: 402 with the reason in words, the status in a header.
    let unpaid = a
        .raw_get(
            "/v1/quotes?n=2",
            &[("x-paystreams-requester", a.requester().to_owned()), ("x-paystreams-request-id", request_id())],
        )
        .await
        .expect("answer");
    assert_eq!(unpaid.status, 402);
    let error = unpaid.json()["error"].as_str().expect("error").to_owned();
    assert!(error.starts_with("PROOF_INVALID: no eligibility proof: send a StreamProposal first"), "{error}");
    assert_eq!(unpaid.header(STATUS_HEADER), Some("2 PROOF_INVALID"));

    // Two users' first requests at once: proposals, served within the cap, streams created.
    let (first_a, first_b) = tokio::join!(a.get("/v1/quotes?n=2"), b.get("/v1/quotes?n=2"));
    let (first_a, first_b) = (first_a.expect("a served"), first_b.expect("b served"));
    assert_eq!((quotes(&first_a.body), quotes(&first_b.body)), (2, 2));
    assert!(first_a.body.len() as u64 <= FIRST_CAP);
    let stream_a = first_a.stream_created.expect("a's stream created");
    let stream_b = first_b.stream_created.expect("b's stream created");

    // A first response over the cap: refused, the session ended (PERMANENT), nothing served.
    let proposal = uc.propose(c.advert(), &terms()).await.expect("proposal");
    let over = c.raw_get("/v1/quotes?n=50", &c.headers(&request_id(), &proposal)).await.expect("answer");
    assert_eq!(over.status, 402);
    assert_eq!(over.json()["status"]["name"], "PARAMS_REJECTED");
    assert!(
        over.json()["error"].as_str().is_some_and(|e| e.contains("over the first-response cap")),
        "{:?}",
        over.json()
    );
    assert_eq!(over.header(TERMINATION_HEADER), Some("PERMANENT 0"));

    // Later requests ride on stream proofs.
    for n in [1_usize, 5, 9] {
        let path = format!("/v1/quotes?n={n}");
        let (pa, pb) = tokio::join!(a.get(&path), b.get(&path));
        let (pa, pb) = (pa.expect("a paid"), pb.expect("b paid"));
        assert_eq!((quotes(&pa.body), quotes(&pb.body)), (n, n));
        assert!(pa.stream_created.is_none() && pb.stream_created.is_none());
    }

    // A replayed proof is refused; a proof for another request (forged for this one) too; and
    // a's proof sent under b's requester id finds none of b's sessions.
    let id = request_id();
    let headers = a.proof_headers("/v1/quotes?n=3", &id).await.expect("proof");
    assert_eq!(a.raw_get("/v1/quotes?n=3", &headers).await.expect("answer").status, 200);
    let replay = a.raw_get("/v1/quotes?n=3", &headers).await.expect("answer");
    assert_eq!((replay.status, replay.header(STATUS_HEADER)), (402, Some("2 PROOF_INVALID")));
    let forged =
        a.raw_get("/v1/quotes?n=4", &a.proof_headers("/v1/quotes?n=3", &request_id()).await.expect("proof")).await;
    let forged = forged.expect("answer");
    assert_eq!((forged.status, forged.header(STATUS_HEADER)), (402, Some("2 PROOF_INVALID")));
    let mut stolen = a.proof_headers("/v1/quotes?n=3", &request_id()).await.expect("proof");
    stolen[0].1 = b.requester().to_owned();
    let stolen = a.raw_get("/v1/quotes?n=3", &stolen).await.expect("answer");
    assert_eq!(stolen.status, 402);

    // The API: no token, a foreign Host or a bad body get clear 4xx answers.
    let http = paystreams_example_paid_http::http::Http::default();
    let gate_url = format!("http://{gate_addr}");
    let no_token = http.get_authorized(&format!("{gate_url}/v1/policy"), "wrong").await.expect("answer");
    assert_eq!(no_token.status, 401);
    let foreign = http
        .send(
            hyper::Method::GET,
            &format!("{gate_url}/v1/policy"),
            &[("host", "evil.example".into()), ("authorization", format!("Bearer {}", gate.token()))],
            Vec::new(),
        )
        .await
        .expect("answer");
    assert_eq!(foreign.status, 403);
    let bad = http
        .post_json(&format!("{gate_url}/v1/check"), gate.token(), &serde_json::json!({ "requester": "x" }))
        .await
        .expect("answer");
    assert_eq!(bad.status, 400);
    assert!(bad.json()["error"].as_str().is_some_and(|e| e.contains("request_digest")), "{:?}", bad.json());
    let unknown = http
        .post_json(&format!("{gate_url}/v1/served"), gate.token(), &serde_json::json!({ "ticket": "00", "bytes": 1 }))
        .await
        .expect("answer");
    assert_eq!(unknown.status, 404);
    // Receipts: bytes that are no receipt get the engine's MALFORMED ack (this provider's streams
    // carry none); bad base64 is the caller's 400.
    let receipt = |text: &str| serde_json::json!({ "requester": a.requester(), "receipt": text });
    let malformed =
        http.post_json(&format!("{gate_url}/v1/receipt"), gate.token(), &receipt("AAEC")).await.expect("answer");
    assert_eq!((malformed.status, malformed.json()["status"]["name"].as_str()), (200, Some("MALFORMED")));
    let not_base64 =
        http.post_json(&format!("{gate_url}/v1/receipt"), gate.token(), &receipt("%%")).await.expect("answer");
    assert_eq!(not_base64.status, 400);

    // The gate restarts on the same address and session file: the same sessions serve on.
    service.abort();
    gate.shutdown().await;
    let gate = paystreams_gate::start(gate_config(node.rpc_url(), provider_key.clone(), &sessions, gate_addr))
        .await
        .expect("gate restarts");
    let (base, service) = start_service(&gate).await;
    let a = PaidHttp::connect(&base, Arc::clone(&ua), terms()).await.expect("policy");
    let b = PaidHttp::connect(&base, Arc::clone(&ub), terms()).await.expect("policy");
    let (pa, pb) = tokio::join!(a.get("/v1/quotes?n=3"), b.get("/v1/quotes?n=3"));
    let (pa, pb) = (pa.expect("a after restart"), pb.expect("b after restart"));
    assert!(pa.stream_created.is_none() && pb.stream_created.is_none(), "the same sessions");
    let sessions_report =
        http.get_authorized(&format!("http://{}/sessions", gate.addr()), gate.token()).await.expect("report");
    let report: paystreams_provider::ProviderReport =
        serde_json::from_slice(&sessions_report.body).expect("report json");
    assert_eq!(report.bound, 2);

    let gate_url = format!("http://{}", gate.addr());
    let metrics = http.get_authorized(&format!("{gate_url}/metrics"), gate.token()).await.expect("metrics");
    assert!(String::from_utf8_lossy(&metrics.body).contains("paystreams_gate_paid_total 2\n"));

    // Service accrues. The provider ends b's session: the service finds the termination in the
    // list, and b's next request gets it, on which b's engine closes the stream.
    client.advance_time(30).await.expect("time");
    let session_b = hex::encode(b.session().expect("store").expect("b's session").session_id);
    let ended = http
        .post_json(&format!("{gate_url}/sessions/{session_b}/terminate"), gate.token(), &serde_json::json!({}))
        .await
        .expect("answer");
    assert_eq!(ended.status, 200, "{:?}", ended.json());
    let mut listed = None;
    for _ in 0..200 {
        let page =
            http.get_authorized(&format!("{gate_url}/v1/terminations?since=0"), gate.token()).await.expect("list");
        let json = page.json();
        if let Some(entry) = json["terminations"].as_array().and_then(|l| l.iter().find(|e| e["session"] == session_b))
        {
            listed = Some(entry.clone());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let listed = listed.expect("the termination is listed for the service");
    assert_eq!(listed["termination"]["type"], "PERMANENT");
    match b.get("/v1/quotes?n=1").await {
        Err(PaidHttpError::Terminated { stream }) => assert_eq!(stream, Some(stream_b)),
        other => panic!("b's session is over: {other:?}"),
    }

    // a closes; a second session in a row follows; the gate stops and claims what accrued.
    assert_eq!(a.close().await.expect("close a"), Some(stream_a));

    // A second session in a row: a's next request proposes again and gets a new stream.
    let again = a.get("/v1/quotes?n=2").await.expect("a's second session");
    let stream_a2 = again.stream_created.expect("a new stream");
    assert_ne!(stream_a2, stream_a);
    assert_eq!(quotes(&again.body), 2);
    assert_eq!(quotes(&a.get("/v1/quotes?n=4").await.expect("paid on the new stream").body), 4);
    client.advance_time(10).await.expect("time");
    assert_eq!(a.close().await.expect("close a again"), Some(stream_a2));
    service.abort();
    gate.shutdown().await;

    // Exact balances: every deposit is either earned by the provider or still in a vault, and
    // nothing accrued is left unclaimed.
    let mut in_vaults = 0_u128;
    let mut unclaimed = 0_u128;
    let streams: [(&SecretKey, &[u64]); 3] =
        [(&user_keys[0], &[stream_a, stream_a2]), (&user_keys[1], &[stream_b]), (&user_keys[2], &[])];
    for (key, ids) in streams {
        let u = key.account_id();
        in_vaults += client.vault(u, 0).await.expect("vault").expect("exists").balance.0;
        for id in ids {
            let stream = client.require_stream(u, 0, *id).await.expect("stream");
            assert_eq!(stream.state, paystreams_program::state::StreamState::Closed);
            unclaimed += stream.accrued.0;
        }
    }
    let earned = client.balance(p).await.expect("balance") - provider_start;
    assert!(earned >= (2 * 30 + 10) * u128::from(MIN_RATE), "thirty seconds of two streams, ten of a third: {earned}");
    assert_eq!(unclaimed, 0, "the provider claimed everything on shutdown");
    assert_eq!(earned + in_vaults + unclaimed, 3 * DEPOSIT, "deposits = earned + vaults + unclaimed, to the unit");
    let mut supply_after = client.balance(p).await.expect("balance");
    for key in &user_keys {
        supply_after += client.balance(key.account_id()).await.expect("balance");
    }
    assert_eq!(supply_after + in_vaults, supply_before);
    node.shutdown().await;
}
