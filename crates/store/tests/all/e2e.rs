//! Store over real libp2p sockets on 127.0.0.1, paid by stream, against a real in-process
//! node: the node, the provider (libp2p service + engine + follower) and the user (engine +
//! libp2p client) run as separate tasks and talk only through sockets.
//!
//! Covers: policy discovery, proposal and a trimmed first response, stream creation, paid pages,
//! an unpaid query (400, PROOF_INVALID, no messages), a replayed request refused, the provider
//! restarting mid-session and still serving the same session, a PERMANENT termination making the
//! user close and recover funds, and final balances that conserve supply exactly.

use std::{sync::Arc, time::Duration};

use paystreams_client::Client;
use paystreams_node::NodeConfig;
use paystreams_program::state::StreamState;
use paystreams_provider::ProviderReport;
use paystreams_rpc::remote::RpcChain;
use paystreams_store::{
    Archive, QueryError, STORE_SERVICE_ID,
    archive::SqliteArchive,
    client::{PaidStore, StoreClient},
    provider::{ProviderConfig, ProviderHandle, ServiceOptions, SessionBackend, start},
};
use paystreams_user::{Reaction, Terms, User, UserConfig};
use paystreams_wire::{StatusCode, TerminationType};

use crate::common::{FIRST_CAP, MIN_ALLOCATION, MIN_RATE, messages, provider_config, query};

const DEPOSIT: u128 = 5_000;

/// The common provider, its sessions in `sessions`, its admin endpoint on a port of its choosing.
fn config(
    rpc_url: String,
    key: paystreams_lez_core::crypto::SecretKey,
    listen: &str,
    sessions: SessionBackend,
) -> ProviderConfig {
    ProviderConfig {
        sessions,
        admin: Some("127.0.0.1:0".parse().expect("addr")),
        // Restarting mid-session below serves on at once (no restart pause announced).
        service: ServiceOptions { restart_pause_secs: 0, ..ServiceOptions::default() },
        ..provider_config(rpc_url, key, listen)
    }
}

async fn admin_get(handle: &ProviderHandle, path: &str) -> String {
    admin_call(handle, "GET", path).await
}

/// A minimal HTTP/1.1 request to the provider's admin endpoint.
async fn admin_call(handle: &ProviderHandle, method: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let addr = handle.admin_addr().expect("admin");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect admin");
    let token = handle.admin_token().expect("token");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut body = String::new();
    stream.read_to_string(&mut body).await.expect("read");
    body.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[expect(clippy::too_many_lines, reason = "one end-to-end flow, step by step")]
async fn paid_store_queries_over_libp2p() {
    let node = paystreams_node::start(NodeConfig::ephemeral_dev()).await.expect("node");
    let client = Client::connect(&node.rpc_url()).expect("client");
    let (user_key, provider_key) = (node.dev_keys()[0].clone(), node.dev_keys()[1].clone());
    let (u, p) = (user_key.account_id(), provider_key.account_id());
    let provider_start = client.balance(p).await.expect("balance");
    let supply_before = client.balance(u).await.expect("balance") + provider_start;
    client.init_vault(&user_key, 0, None).await.expect("vault");
    client.deposit(&user_key, 0, DEPOSIT).await.expect("deposit");

    let dir = tempfile::tempdir().expect("tempdir");
    let archive: Arc<dyn Archive> = Arc::new(SqliteArchive::open(&dir.path().join("archive.sqlite")).expect("archive"));
    assert_eq!(archive.insert(&messages(23)).expect("seed"), 23);
    let sessions = SessionBackend::Redb(dir.path().join("sessions.redb"));
    let provider = start(
        config(node.rpc_url(), provider_key.clone(), "/ip4/127.0.0.1/tcp/0", sessions.clone()),
        Arc::clone(&archive),
    )
    .await
    .expect("provider starts");
    let address = provider.addrs()[0].to_string();

    // The user: engine on the chain, libp2p client to the provider.
    let user = Arc::new(User::new(user_key.clone(), RpcChain::new(client.clone()), UserConfig::default()));
    let store = StoreClient::connect(&address).await.expect("client");
    let terms = Terms { vault_id: 0, token_id: [0; 32], service_id: STORE_SERVICE_ID.into(), rate: 0, allocation: 0 };
    let paid = PaidStore::new(store.clone(), Arc::clone(&user), terms).await.expect("policy fetched");
    assert_eq!(paid.advert().provider_id, p.0);
    assert_eq!(paid.advert().policy.vault_proof_max_response_bytes, FIRST_CAP);

    // An unpaid query: 400, PROOF_INVALID, no messages.
    let unpaid = store.send(&query()).await.expect("answer");
    assert_eq!(unpaid.status_code, Some(400));
    assert!(unpaid.messages.is_empty());
    // A client that reads only Store's own fields still learns why, and what to do.
    let desc = unpaid.status_desc.clone().expect("status_desc");
    assert!(desc.starts_with("PROOF_INVALID: no eligibility proof: send a StreamProposal first"), "{desc}");
    let status = unpaid.eligibility.expect("eligibility at field 30").status;
    assert_eq!(status.code(), Some(StatusCode::ProofInvalid));

    // First page: proposal; trimmed to the first-response cap with a cursor; the stream is created.
    let first = paid.page(&query()).await.expect("first page");
    assert_eq!(first.response.status_code, Some(200));
    assert_eq!(
        first.response.eligibility.as_ref().map(|e| (e.status.status_code, e.status.status_desc.as_str())),
        Some((0, "ok"))
    );
    assert!(first.response.encode().len() as u64 <= FIRST_CAP);
    assert!(
        !first.response.messages.is_empty() && first.response.messages.len() < 5,
        "trimmed: {}",
        first.response.messages.len()
    );
    let stream_id = first.stream_created.expect("stream created");
    let view = client.require_stream(u, 0, stream_id).await.expect("stream");
    assert_eq!(
        (view.provider, view.rate, view.allocation.0, view.state),
        (p, MIN_RATE, u128::from(MIN_ALLOCATION), StreamState::Active)
    );

    // Paid pages until the archive is exhausted: every message exactly once, in order.
    let mut seen: Vec<Vec<u8>> =
        first.response.messages.iter().map(|m| m.message.as_ref().expect("data").0.payload.clone()).collect();
    let mut request = query();
    request.pagination_cursor = first.response.pagination_cursor;
    while request.pagination_cursor.is_some() {
        let page = paid.page(&request).await.expect("paid page");
        assert_eq!(page.response.status_code, Some(200));
        seen.extend(page.response.messages.iter().map(|m| m.message.as_ref().expect("data").0.payload.clone()));
        request.pagination_cursor = page.response.pagination_cursor;
    }
    let expected: Vec<Vec<u8>> = (0..23).map(|i| format!("message {i:03}").into_bytes()).collect();
    assert_eq!(seen, expected);

    // A replayed request (same bytes, same proof) is refused and serves nothing.
    let mut once = query();
    once.eligibility_proof = Some(user.proof(&p.0, &once.canonical()).await.expect("proof"));
    let served = store.send(&once).await.expect("answer");
    assert_eq!(served.status_code, Some(200));
    let replay = store.send(&once).await.expect("answer");
    assert_eq!(replay.status_code, Some(400));
    assert!(replay.messages.is_empty());
    assert_eq!(replay.eligibility.expect("status").status.code(), Some(StatusCode::ProofInvalid));

    // The admin endpoint shows the bound session.
    let report: ProviderReport = serde_json::from_str(&admin_get(&provider, "/sessions").await).expect("report json");
    assert_eq!((report.bound, report.pending), (1, 0));
    let session_id = report.sessions[0].id.clone();
    assert_eq!(report.sessions[0].stream_id, Some(stream_id));
    assert!(admin_get(&provider, "/metrics").await.contains("paystreams_store_served_total"));

    // The provider restarts (same key, same port, same session file): the same session serves on.
    let port = address.split("/tcp/").nth(1).and_then(|r| r.split('/').next()).expect("port").to_owned();
    provider.shutdown().await;
    let listen = format!("/ip4/127.0.0.1/tcp/{port}");
    let provider = start(config(node.rpc_url(), provider_key.clone(), &listen, sessions.clone()), Arc::clone(&archive))
        .await
        .expect("provider restarts");
    assert_eq!(provider.addrs()[0].to_string(), address, "same peer id and address after restart");
    let mut after_restart = None;
    for _ in 0..20 {
        match paid.page(&query()).await {
            Ok(page) => {
                after_restart = Some(page);
                break;
            }
            Err(QueryError::Net(_)) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => panic!("after restart: {e}"),
        }
    }
    let page = after_restart.expect("served after restart");
    assert_eq!(page.response.status_code, Some(200));
    assert!(page.stream_created.is_none(), "no new proposal: the same session");
    let report: ProviderReport = serde_json::from_str(&admin_get(&provider, "/sessions").await).expect("report json");
    assert_eq!(report.sessions.len(), 1);
    assert_eq!(report.sessions[0].id, session_id);

    // Service accrues; then the provider terminates the session (PERMANENT): the user's engine
    // closes the stream and the unaccrued funds return to the vault.
    client.advance_time(40).await.expect("time");
    let terminated = admin_call(&provider, "POST", &format!("/sessions/{session_id}/terminate")).await;
    assert!(terminated.contains("PERMANENT"), "{terminated}");
    let mut probe = query();
    probe.eligibility_proof = Some(user.proof(&p.0, &probe.canonical()).await.expect("proof"));
    let answer = store.send(&probe).await.expect("answer");
    assert_eq!(answer.status_code, Some(400));
    let eligibility = answer.eligibility.expect("status");
    let termination = eligibility.termination.expect("termination delivered in the status");
    assert_eq!(termination.termination_type, TerminationType::Permanent);
    let reaction = user.on_proof_status(&p.0, &eligibility.status, Some(termination)).await.expect("react");
    assert_eq!(reaction, Reaction::Closed { stream_id: Some(stream_id) });
    let closed = client.require_stream(u, 0, stream_id).await.expect("stream");
    assert_eq!(closed.state, StreamState::Closed);
    // Everything not accrued is back in the vault's unallocated funds; what accrued is either
    // still in the closed stream or already claimed by the provider's follower (the close event
    // triggers the claim, which may land before this read).
    let vault = client.vault(u, 0).await.expect("vault").expect("exists");
    let accrued = DEPOSIT - vault.unallocated.0;
    assert!(accrued >= 40 * u128::from(MIN_RATE), "forty seconds of service accrued: {accrued}");
    assert!(
        closed.accrued.0 == accrued || closed.accrued.0 == 0,
        "accrued {accrued}, in the stream {}",
        closed.accrued.0
    );

    // The provider's follower claims on the close event; the user withdraws; supply is
    // conserved exactly.
    let mut claimed = false;
    for _ in 0..100 {
        if client.require_stream(u, 0, stream_id).await.expect("stream").accrued.0 == 0 {
            claimed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(claimed, "the provider claimed what accrued after the close");
    client.withdraw(&user_key, 0, vault.unallocated.0, None).await.expect("withdraw");
    provider.shutdown().await;
    let user_end = client.balance(u).await.expect("balance");
    let provider_end = client.balance(p).await.expect("balance");
    assert_eq!(user_end + provider_end, supply_before);
    assert_eq!(provider_end - provider_start, accrued, "the provider earned exactly what accrued");
    assert_eq!(client.vault(u, 0).await.expect("vault").expect("exists").balance.0, 0);
    node.shutdown().await;
}
