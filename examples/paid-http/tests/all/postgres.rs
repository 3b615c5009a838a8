//! Two gates serving one provider from one PostgreSQL session store: a user's session opened
//! through one is served by the other, and a request paid through one is a replay to the other.

use std::{sync::Arc, time::Duration};

use paystreams_client::Client;
use paystreams_example_paid_http::{
    STATUS_HEADER,
    client::{PaidHttp, request_id},
};
use paystreams_node::NodeConfig;
use paystreams_process::SessionBackend;
use paystreams_rpc::remote::RpcChain;
use paystreams_testkit::postgres::TestDatabase;
use paystreams_user::{User, UserConfig};

use crate::gate::{DEPOSIT, gate_config, quotes, start_service, terms};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(has_postgres), ignore = "needs PostgreSQL: apt-get install postgresql")]
async fn two_gates_share_one_postgres_session_store() {
    let db = TestDatabase::create().expect("a test database");
    let node = paystreams_node::start(NodeConfig::ephemeral_dev()).await.expect("node");
    let client = Client::connect(&node.rpc_url()).expect("client");
    let (user_key, provider_key) = (node.dev_keys()[0].clone(), node.dev_keys()[1].clone());
    client.init_vault(&user_key, 0, None).await.expect("vault");
    client.deposit(&user_key, 0, DEPOSIT).await.expect("deposit");

    let dir = tempfile::tempdir().expect("tempdir");
    let config = || {
        let mut c = gate_config(
            node.rpc_url(),
            provider_key.clone(),
            &dir.path().join("unused"),
            "127.0.0.1:0".parse().expect("addr"),
        );
        c.process.sessions = SessionBackend::Postgres(db.url().to_owned());
        c.process.tick_interval = Duration::from_millis(200);
        c
    };
    let gate_a = paystreams_gate::start(config()).await.expect("gate a");
    let gate_b = paystreams_gate::start(config()).await.expect("gate b");
    let (base_a, service_a) = start_service(&gate_a).await;
    let (base_b, service_b) = start_service(&gate_b).await;

    let user = Arc::new(User::new(user_key, RpcChain::new(client.clone()), UserConfig::default()));
    let via_a = PaidHttp::connect(&base_a, Arc::clone(&user), terms()).await.expect("policy a");
    let via_b = PaidHttp::connect(&base_b, Arc::clone(&user), terms()).await.expect("policy b");
    assert_eq!(via_a.requester(), via_b.requester(), "one provider, one requester id");

    let first = via_a.get("/v1/quotes?n=1").await.expect("first through a");
    assert!(first.stream_created.is_some());
    for (i, (through, other)) in [(&via_b, &via_a), (&via_a, &via_b), (&via_b, &via_a)].into_iter().enumerate() {
        let id = request_id();
        let headers = through.proof_headers("/v1/quotes?n=3", &id).await.expect("proof");
        let served = through.raw_get("/v1/quotes?n=3", &headers).await.expect("answer");
        assert_eq!(served.status, 200, "request {i}: {:?}", served.json());
        assert_eq!(quotes(&served.body), 3);
        let replay = other.raw_get("/v1/quotes?n=3", &headers).await.expect("answer");
        assert_eq!((replay.status, replay.header(STATUS_HEADER)), (402, Some("2 PROOF_INVALID")), "replay {i}");
    }
    assert!(via_b.get("/v1/quotes?n=2").await.expect("paid through b").stream_created.is_none());
    via_a.close().await.expect("close");
    service_a.abort();
    service_b.abort();
    gate_a.shutdown().await;
    gate_b.shutdown().await;
    drop(db);
    node.shutdown().await;
}
