//! The router and the OpenAPI document describe the same API: every route the router serves
//! is in `docs/agent.openapi.json` with its method, and every documented route is served.

use std::{collections::BTreeSet, sync::Arc};

use paystreams_agent::{Agent, AgentConfig, Ledger, http};
use paystreams_lez_core::crypto::SecretKey;
use paystreams_rpc::chain_view::InMemoryChain;
use paystreams_store::provider::AdminGuard;
use paystreams_user::{UserConfig, UserStore};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const TOKEN: &str = "0123456789abcdef0123456789abcdef";

async fn call(addr: &str, method: &str, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connects");
    let request = format!(
        "{} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{{}}",
        method.to_uppercase()
    );
    stream.write_all(request.as_bytes()).await.expect("writes");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("reads");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("status");
    (status, text)
}

fn documented() -> BTreeSet<(String, String)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/agent.openapi.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("the OpenAPI document")).expect("JSON");
    let mut routes = BTreeSet::new();
    for (route, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            routes.insert((method.clone(), route.clone()));
        }
    }
    routes
}

#[tokio::test]
async fn every_served_route_is_documented_and_every_documented_route_is_served() {
    let served: BTreeSet<(String, String)> =
        http::ROUTES.iter().map(|(m, p)| ((*m).to_owned(), (*p).to_owned())).collect();
    assert_eq!(served, documented(), "docs/agent.openapi.json and http::ROUTES differ");

    let owner = SecretKey::generate();
    let chain = InMemoryChain::new(&[(owner.account_id(), 1_000)], 1_000).expect("chain");
    let config = AgentConfig {
        vault_id: 0,
        token_id: [0; 32],
        rate: 0,
        allocation: 0,
        top_up: None,
        spending_cap: None,
        user: UserConfig::default(),
    };
    let ledger = Ledger::memory(owner.account_id());
    let agent = Arc::new(Agent::open(owner, chain, config, UserStore::memory(), ledger).await.expect("agent opens"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let bound = listener.local_addr().expect("addr");
    let router = http::router(agent, Arc::new(AdminGuard::new(bound, TOKEN.to_owned())));
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    let addr = bound.to_string();
    // Every listed route reaches a handler (not the fallback, not "method not allowed").
    for (method, path) in &served {
        let concrete = path.replace("{id}", &"ab".repeat(32)).replace("/v1/identity", "/v1/identity?provider=x");
        let (status, text) = call(&addr, method, &concrete).await;
        assert!(status != 405 && !text.contains("no such route"), "{method} {path}: {text}");
    }
    // And a route that is not listed reaches the fallback.
    let (status, text) = call(&addr, "get", "/v1/nothing").await;
    assert_eq!(status, 404);
    assert!(text.contains("no such route"), "{text}");
    server.abort();
}
