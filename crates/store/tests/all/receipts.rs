//! Delivery receipts end to end over libp2p: a provider that requires receipts, a user whose
//! `PaidStore` acknowledges every served page on `/paystreams/receipt/1.0.0` and sends a final
//! receipt when it closes; the provider is paid exactly what the receipts acknowledge, and what
//! the user spent is what the provider earned. Also: a provider that takes no receipts refuses
//! a user-chosen receipt key at binding and is never left serving an unpayable stream.

use std::{sync::Arc, time::Duration};

use paystreams_client::Client;
use paystreams_lez_core::crypto::SecretKey;
use paystreams_node::NodeConfig;
use paystreams_program::state::StreamState;
use paystreams_rpc::remote::RpcChain;
use paystreams_store::{
    Archive, STORE_SERVICE_ID,
    archive::SqliteArchive,
    client::{PaidStore, StoreClient},
    provider::{ProviderConfig, SessionBackend, start},
};
use paystreams_user::{Terms, User, UserConfig};
use paystreams_wire::{ReceiptAck, ReceiptStatus, ReceiptTerms};

use crate::common::{messages, provider_config, query};

const DEPOSIT: u128 = 10_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_requiring_receipts_is_paid_what_they_acknowledge() {
    let node = paystreams_node::start(NodeConfig::ephemeral_dev()).await.expect("node");
    let client = Client::connect(&node.rpc_url()).expect("client");
    let (user_key, provider_key) = (node.dev_keys()[0].clone(), node.dev_keys()[1].clone());
    let (u, p) = (user_key.account_id(), provider_key.account_id());
    client.init_vault(&user_key, 0, None).await.expect("vault");
    client.deposit(&user_key, 0, DEPOSIT).await.expect("deposit");
    let provider_before = client.balance(p).await.expect("balance");

    let dir = tempfile::tempdir().expect("tempdir");
    let archive: Arc<dyn Archive> = Arc::new(SqliteArchive::open(&dir.path().join("archive.sqlite")).expect("archive"));
    archive.insert(&messages(23)).expect("seed");
    let mut config = ProviderConfig {
        sessions: SessionBackend::Redb(dir.path().join("sessions.redb")),
        claim_on_shutdown: false,
        ..provider_config(node.rpc_url(), provider_key.clone(), "/ip4/127.0.0.1/tcp/0")
    };
    config.policy.extensions.receipts = ReceiptTerms::Required;
    let provider = start(config, Arc::clone(&archive)).await.expect("provider");
    let address = provider.addrs()[0].to_string();

    let user = Arc::new(User::new(user_key.clone(), RpcChain::new(client.clone()), UserConfig::default()));
    let terms = Terms { vault_id: 0, token_id: [0; 32], service_id: STORE_SERVICE_ID.into(), rate: 0, allocation: 0 };
    let paid = PaidStore::connect(&address, Arc::clone(&user), terms).await.expect("connects");
    // Every page of the archive, with chain time moving between pages: each served page is
    // acknowledged with a cumulative receipt.
    let mut request = query();
    let mut pages = 0;
    loop {
        let page = paid.page(&request).await.expect("served");
        pages += 1;
        client.advance_time(7).await.expect("time moves");
        match page.response.pagination_cursor {
            Some(cursor) => request.pagination_cursor = Some(cursor),
            None => break,
        }
    }
    assert!(pages >= 5, "several pages: {pages}");
    let session = paid.session().expect("state").expect("a session");
    let stream_id = session.phase.stream_id().expect("a stream");
    let view = client.require_stream(u, 0, stream_id).await.expect("stream");
    let receipt_key = view.extensions.as_ref().and_then(|e| e.receipt_key.clone());
    let session_public = SecretKey::from_bytes(&session.session_key).expect("key").public_key().to_bytes();
    assert_eq!(receipt_key, Some(hex::encode(session_public)), "the session key signs receipts");
    assert!(session.receipts.deliveries >= 5, "a receipt per served page: {:?}", session.receipts);

    // A receipt that is not one is refused by the provider, over the same protocol.
    let ack = ReceiptAck::decode(&paid.client().send_receipt(vec![0x0a, 0x01, 0x00]).await.expect("answer"))
        .expect("ack decodes");
    assert_eq!(ack.code(), Some(ReceiptStatus::Malformed), "{ack:?}");

    // The user closes: the final receipt acknowledges what accrued up to the close.
    assert_eq!(paid.close().await.expect("close"), Some(stream_id));
    let head = client.last_block_id().await.expect("head");
    assert!(provider.wait_for_events_through(head, Duration::from_secs(30)).await, "provider caught up");
    // The final receipt may reach the provider after it handled the close: its next tick
    // claims the rest (a claim is a block: wait for it, not for a length of time).
    let view = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let view = client.require_stream(u, 0, stream_id).await.expect("stream");
            if view.accrued.0 == 0 {
                return view;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the provider claims what the final receipt acknowledges"));
    assert_eq!(view.state, StreamState::Closed);
    assert_eq!(view.accrued.0, 0, "everything that accrued was acknowledged and claimed: {view:?}");
    let paid_under_receipts = view.extensions.as_ref().map(|e| e.receipt_paid.0).expect("extensions");
    let earned = client.balance(p).await.expect("balance") - provider_before;
    let vault = client.vault(u, 0).await.expect("read").expect("vault");
    let spent = DEPOSIT - vault.balance.0;
    assert!(earned > 0);
    assert_eq!((earned, spent), (paid_under_receipts, paid_under_receipts), "paid through receipts, to the unit");
    provider.shutdown().await;
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_free_store_node_says_it_takes_no_receipts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let archive: Arc<dyn Archive> = Arc::new(SqliteArchive::open(&dir.path().join("archive.sqlite")).expect("archive"));
    let free = paystreams_store::service::FreeStoreService::new(archive, Arc::default());
    let node = paystreams_store::P2p::start(
        libp2p::identity::Keypair::generate_ed25519(),
        Some("/ip4/127.0.0.1/tcp/0".parse().expect("addr")),
        Some(Arc::new(free)),
    )
    .await
    .expect("listens");
    let store = StoreClient::connect(&node.listen_addrs()[0].to_string()).await.expect("client");
    let ack = ReceiptAck::decode(&store.send_receipt(vec![0x0a, 0x01, 0x00]).await.expect("answer")).expect("ack");
    assert_eq!(ack.code(), Some(ReceiptStatus::Unsupported), "{ack:?}");
    node.shutdown().await;
}
