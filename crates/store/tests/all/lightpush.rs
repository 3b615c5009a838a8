//! Paid Lightpush over real libp2p sockets against a real in-process node: several users push
//! at once (the first push with a proposal, then stream proofs), their messages land in the
//! archive and come back through a paid Store query; an unpaid push is refused with a readable
//! status and stores nothing; a forged proof and a proof from a Store session are refused; a
//! duplicate is not stored twice; and at the end every unit deposited is either earned by the
//! provider or back in the vaults.

use std::sync::Arc;

use paystreams_client::Client;
use paystreams_lez_core::crypto::SecretKey;
use paystreams_node::NodeConfig;
use paystreams_program::state::StreamState;
use paystreams_rpc::{StreamFilter, remote::RpcChain};
use paystreams_store::{
    Archive, LIGHTPUSH_SERVICE_ID, STORE_SERVICE_ID,
    archive::{ArchiveQuery, SqliteArchive},
    client::{PaidLightpush, PaidStore, StoreClient, new_request_id},
    lightpush::{LightpushRequest, status},
    provider::{ProviderConfig, SessionBackend, start},
    wire::WakuMessage,
};
use paystreams_user::{Terms, User, UserConfig};
use paystreams_wire::{EligibilityProof, RequestDigest as _, StatusCode, sign_stream_proof};

use crate::common::{FundedChain, PUBSUB, funded_chain, last_event_block, provider_config, query};

/// Users pushing at once.
const USERS: usize = 3;
/// Messages each user pushes.
const PUSHES: u32 = 4;
const DEPOSIT: u128 = 20_000;

fn topic(user: usize) -> String {
    format!("/push/1/user-{user}/proto")
}

fn message(user: usize, i: u32) -> WakuMessage {
    WakuMessage {
        payload: format!("pushed {user}-{i}").into_bytes(),
        content_topic: topic(user),
        timestamp: Some(2_000_000_000 + i64::from(i) * 1_000),
        ..WakuMessage::default()
    }
}

fn stored(archive: &Arc<dyn Archive>, content_topic: &str) -> usize {
    let query = ArchiveQuery {
        pubsub_topic: Some(PUBSUB.into()),
        content_topics: vec![content_topic.into()],
        forward: true,
        limit: 100,
        ..ArchiveQuery::default()
    };
    archive.query(&query).expect("archive").messages.len()
}

/// One user's whole flow; returns what its Store query read back.
async fn user_flow(rpc: String, owner: SecretKey, address: String, archive: Arc<dyn Archive>, i: usize) -> usize {
    let client = Client::connect(&rpc).expect("client");
    let user = Arc::new(User::new(owner.clone(), RpcChain::new(client.clone()), UserConfig::default()));
    let terms = Terms { vault_id: 0, token_id: [0; 32], service_id: String::new(), rate: 0, allocation: 0 };
    let paid = PaidLightpush::connect(&address, Arc::clone(&user), terms.clone()).await.expect("connects");
    let raw = paid.paid().client().clone();
    let provider = paid.paid().advert().provider_id;

    // An unpaid push: 400, the verdict in words and at field 30, nothing stored.
    let unpaid = LightpushRequest {
        request_id: new_request_id(),
        pubsub_topic: Some(PUBSUB.into()),
        message: Some(message(i, 99)),
        eligibility_proof: None,
    };
    let answer = raw.send_push(&unpaid).await.expect("answer");
    assert_eq!(answer.status_code, status::BAD_REQUEST);
    assert_eq!(answer.request_id, unpaid.request_id);
    let desc = answer.status_desc.clone().expect("status_desc");
    assert!(desc.starts_with("PROOF_INVALID: no eligibility proof: send a StreamProposal first"), "{desc}");
    assert_eq!(answer.eligibility.expect("field 30").status.code(), Some(StatusCode::ProofInvalid));
    assert_eq!(stored(&archive, &topic(i)), 0, "an unpaid push stores nothing");

    // A malformed push (no timestamp) is refused before payment, without a verdict.
    let mut undated = unpaid.clone();
    undated.message = Some(WakuMessage { timestamp: None, ..message(i, 98) });
    let answer = raw.send_push(&undated).await.expect("answer");
    assert_eq!(answer.status_code, status::INVALID_MESSAGE);
    assert!(answer.eligibility.is_none());

    // Paid pushes: the first with a proposal (the stream is created), then stream proofs.
    let mut hashes = Vec::new();
    for n in 0..PUSHES {
        let outcome = paid.push(PUBSUB, message(i, n)).await.unwrap_or_else(|e| panic!("user {i} push {n}: {e}"));
        assert_eq!(outcome.response.status_code, status::SUCCESS);
        assert_eq!(outcome.stream_created.is_some(), n == 0, "user {i} push {n}");
        assert!(!outcome.duplicate());
        hashes.push(outcome.message_hash);
    }
    assert_eq!(stored(&archive, &topic(i)), PUSHES as usize);
    let stream_id = paid.paid().stream_id().expect("session").expect("stream");

    // The same message again: paid, answered, not stored twice.
    let again = paid.push(PUBSUB, message(i, 0)).await.expect("duplicate push");
    assert!(again.response.is_success() && again.duplicate());
    assert_eq!(again.message_hash, hashes[0]);
    assert_eq!(stored(&archive, &topic(i)), PUSHES as usize);

    // A forged stream proof (another key) is refused and stores nothing.
    let mut forged = LightpushRequest {
        request_id: new_request_id(),
        pubsub_topic: Some(PUBSUB.into()),
        message: Some(message(i, 50)),
        eligibility_proof: None,
    };
    let stranger = SecretKey::from_bytes(&[7; 32]).expect("key");
    let proof = sign_stream_proof(&stranger, stream_id, &forged.canonical().digest());
    forged.eligibility_proof = Some(EligibilityProof::Proof(proof).encode());
    let answer = raw.send_push(&forged).await.expect("answer");
    assert_eq!(answer.status_code, status::BAD_REQUEST);
    assert_eq!(answer.eligibility.expect("field 30").status.code(), Some(StatusCode::ProofInvalid));
    assert_eq!(stored(&archive, &topic(i)), PUSHES as usize);

    // A paid Store query (its own session, its own stream) reads the pushed messages back.
    let store_terms = Terms { service_id: STORE_SERVICE_ID.into(), ..terms };
    let store = PaidStore::new(raw.clone(), Arc::clone(&user), store_terms).await.expect("store");
    let mut request = query();
    request.content_topics = vec![topic(i)];
    request.pagination_limit = Some(2);
    let mut read = Vec::new();
    loop {
        let page = store.page(&request).await.expect("paid page");
        read.extend(page.response.messages.iter().map(|m| m.message.as_ref().expect("data").0.payload.clone()));
        match page.response.pagination_cursor {
            Some(c) => request.pagination_cursor = Some(c),
            None => break,
        }
    }
    let expected: Vec<Vec<u8>> = (0..PUSHES).map(|n| message(i, n).payload).collect();
    assert_eq!(read, expected);

    // A stream proof of the Store session does not pay for a push.
    let store_session = store.session().expect("session").expect("store session");
    assert_ne!(store_session.phase.stream_id(), Some(stream_id));
    let mut cross = forged.clone();
    cross.request_id = new_request_id();
    cross.eligibility_proof = Some(user.proof_for(&store_session, &cross.canonical()).await.expect("proof"));
    let answer = raw.send_push(&cross).await.expect("answer");
    assert_eq!(answer.status_code, status::BAD_REQUEST);
    let desc = answer.status_desc.expect("desc");
    assert!(
        desc.starts_with(
            "PROOF_INVALID: this session pays for service /vac/waku/store-query/3.0.0, not /vac/waku/lightpush/3.0.0"
        ),
        "{desc}"
    );
    assert_eq!(stored(&archive, &topic(i)), PUSHES as usize);

    // Nor does a stream proof of the Lightpush session pay for a Store query.
    let push_session = paid.paid().session().expect("session").expect("lightpush session");
    let mut cross_query = query();
    cross_query.content_topics = vec![topic(i)];
    cross_query.eligibility_proof = Some(user.proof_for(&push_session, &cross_query.canonical()).await.expect("proof"));
    let answer = raw.send(&cross_query).await.expect("answer");
    assert_eq!(answer.status_code, Some(paystreams_store::wire::status::BAD_REQUEST));
    assert!(answer.messages.is_empty());
    let desc = answer.status_desc.expect("desc");
    assert!(
        desc.starts_with(
            "PROOF_INVALID: this session pays for service /vac/waku/lightpush/3.0.0, not /vac/waku/store-query/3.0.0"
        ),
        "{desc}"
    );

    // Close both sessions (Store's and Lightpush's).
    assert!(paid.close().await.expect("close").is_some());
    assert!(store.close().await.expect("close").is_some());
    let closed = client.require_stream(owner.account_id(), 0, stream_id).await.expect("stream");
    assert_eq!(closed.state, StreamState::Closed);
    let _ = provider;
    read.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paid_pushes_fill_the_archive_and_money_is_exact() {
    let FundedChain { node, client, provider_key, provider_account, provider_before, users } =
        funded_chain(USERS, DEPOSIT).await;

    let dir = tempfile::tempdir().expect("tempdir");
    let archive: Arc<dyn Archive> = Arc::new(SqliteArchive::open(&dir.path().join("archive.sqlite")).expect("archive"));
    let mut config = ProviderConfig {
        sessions: SessionBackend::Redb(dir.path().join("sessions.redb")),
        ..provider_config(node.rpc_url(), provider_key.clone(), "/ip4/127.0.0.1/tcp/0")
    };
    config.policy.service_ids.push(LIGHTPUSH_SERVICE_ID.into());
    let provider = start(config, Arc::clone(&archive)).await.expect("provider");
    let address = provider.addrs()[0].to_string();
    let advert = StoreClient::connect(&address).await.expect("client").advert().await.expect("advert");
    assert!(advert.service_ids.contains(&LIGHTPUSH_SERVICE_ID.to_owned()));

    let tasks: Vec<_> = users
        .iter()
        .enumerate()
        .map(|(i, owner)| {
            let (rpc, owner, address, archive) = (node.rpc_url(), owner.clone(), address.clone(), Arc::clone(&archive));
            tokio::spawn(async move { user_flow(rpc, owner, address, archive, i).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.expect("a user failed"), PUSHES as usize);
    }

    // The running provider handles every close (and claims) before it sees the next event.
    let last = last_event_block(&client, provider_account).await;
    assert!(provider.wait_for_events_through(last, std::time::Duration::from_secs(60)).await, "provider caught up");
    let streams =
        client.list_streams(StreamFilter { provider: Some(provider_account), owner: None }).await.expect("list");
    assert_eq!(streams.len(), 2 * USERS, "one Lightpush and one Store stream per user");
    for s in &streams {
        assert_eq!(s.state, StreamState::Closed);
        assert_eq!(s.accrued.0, 0, "stream {} of {}: the provider claimed what accrued", s.stream_id, s.owner);
        assert_eq!(s.allocation.0, 0);
    }
    let earned = client.balance(provider_account).await.expect("balance") - provider_before;
    let mut left = 0_u128;
    for owner in &users {
        let vault = client.vault(owner.account_id(), 0).await.expect("read").expect("vault");
        assert_eq!(vault.total_allocated.0, 0);
        left += vault.balance.0;
    }
    let deposited = DEPOSIT * USERS as u128;
    assert_eq!(earned + left, deposited, "provider earned {earned}, vaults hold {left}, users deposited {deposited}");
    let metrics = provider.metrics().render();
    let pushes_stored = format!("paystreams_lightpush_stored_total {}", USERS * (PUSHES as usize + 1));
    assert!(metrics.contains(&pushes_stored), "{metrics}");
    provider.shutdown().await;
    node.shutdown().await;
}

/// A provider that does not take Lightpush sessions is named as such, and the per-peer limit
/// (the same bucket as Store queries) answers pushes 429 with when to retry, before any proof
/// is looked at.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_only_providers_and_flooding_peers_are_told_so() {
    let node = paystreams_node::start(NodeConfig::ephemeral_dev()).await.expect("node");
    let client = Client::connect(&node.rpc_url()).expect("client");
    let (user_key, provider_key) = (node.dev_keys()[0].clone(), node.dev_keys()[1].clone());
    let dir = tempfile::tempdir().expect("tempdir");
    let archive: Arc<dyn Archive> = Arc::new(SqliteArchive::open(&dir.path().join("archive.sqlite")).expect("archive"));
    let mut config = provider_config(node.rpc_url(), provider_key, "/ip4/127.0.0.1/tcp/0");
    config.service.peer_limit = paystreams_store::service::PeerLimit { per_sec: 1, burst: 2 };
    let provider = start(config, Arc::clone(&archive)).await.expect("provider");
    let address = provider.addrs()[0].to_string();

    let user = Arc::new(User::new(user_key, RpcChain::new(client), UserConfig::default()));
    let terms = Terms { vault_id: 0, token_id: [0; 32], service_id: String::new(), rate: 0, allocation: 0 };
    match PaidLightpush::connect(&address, user, terms).await {
        Err(e @ paystreams_store::QueryError::NotOffered(_)) => {
            let text = e.to_string();
            assert!(text.contains(LIGHTPUSH_SERVICE_ID) && text.contains(STORE_SERVICE_ID), "{text}");
        }
        other => panic!("a Store-only provider offers no Lightpush: {other:?}"),
    }

    // Pushes from one peer past its burst: 429 with when to retry, nothing judged or stored.
    let raw = StoreClient::connect(&address).await.expect("client");
    let mut codes = Vec::new();
    for n in 0..6 {
        let push = LightpushRequest {
            request_id: new_request_id(),
            pubsub_topic: Some(PUBSUB.into()),
            message: Some(message(0, n)),
            eligibility_proof: None,
        };
        let answer = raw.send_push(&push).await.expect("answer");
        if answer.status_code == status::TOO_MANY_REQUESTS {
            let desc = answer.status_desc.clone().expect("desc");
            assert!(desc.starts_with("TOO_MANY_REQUESTS:") && desc.contains("retry in"), "{desc}");
            assert!(answer.eligibility.is_none(), "no verdict for a rate-limited push");
            assert_eq!(answer.request_id, push.request_id);
        }
        codes.push(answer.status_code);
    }
    assert_eq!(codes[..2], [status::BAD_REQUEST; 2], "the burst is judged (and refused: unpaid)");
    assert!(codes.contains(&status::TOO_MANY_REQUESTS), "{codes:?}");
    assert_eq!(stored(&archive, &topic(0)), 0);
    provider.shutdown().await;
    node.shutdown().await;
}
