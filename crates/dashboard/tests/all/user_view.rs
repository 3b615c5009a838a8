//! The "User sessions" page fed by a real `paystream agent` API (the agent crate's router on a
//! loopback port, over the test node): warnings, spending and sessions as the agent reports
//! them, and the explained failures (no agent, wrong token, unusable URL).

use std::{sync::Arc, time::Duration};

use paystreams_agent::{Agent, AgentConfig, Ledger, http};
use paystreams_client::RpcChain;
use paystreams_dashboard::{DashboardConfig, HttpAgent};
use paystreams_store::provider::AdminGuard;
use paystreams_user::{UserConfig, UserStore};

use crate::common::{get, world};

const TOKEN: &str = "fedcba9876543210fedcba9876543210";

async fn dashboard_with(w: &crate::common::World, agent: Option<HttpAgent>) -> paystreams_dashboard::DashboardHandle {
    let keystore = tempfile::tempdir().expect("tempdir");
    let mut config = DashboardConfig::new(w.node.rpc_url(), keystore.path());
    config.listen = "127.0.0.1:0".parse().expect("addr");
    config.agent = agent;
    paystreams_dashboard::start(config, None).await.expect("dashboard starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_user_view_shows_the_agents_sessions_spending_and_warnings() {
    let w = world(false, None).await;

    // Without an agent, the page says how to connect one.
    let page = get(&w.url("/user")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    for needle in ["<h1>User sessions</h1>", "No agent is connected", "--agent http://127.0.0.1:8060"] {
        assert!(page.body.contains(needle), "the page lacks {needle:?}");
    }

    // A real agent for dev-0 (vault 0 holds 1,000,000 of which stream 0 allocates 500,000): it
    // asks for allocations of 600,000, so its monitoring warns that the vault is too low.
    let config = AgentConfig {
        vault_id: 0,
        token_id: [0; 32],
        rate: 1,
        allocation: 600_000,
        top_up: None,
        spending_cap: Some(2_000_000),
        user: UserConfig::default(),
    };
    let agent = Arc::new(
        Agent::open(
            w.owner.clone(),
            RpcChain::new(w.client.clone()),
            config,
            UserStore::memory(),
            Ledger::memory(w.owner_id()),
        )
        .await
        .expect("agent opens"),
    );
    agent.monitor().await.expect("monitoring pass");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let bound = listener.local_addr().expect("addr");
    let router = http::router(Arc::clone(&agent), Arc::new(AdminGuard::new(bound, TOKEN.to_owned())));
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    let url = format!("http://{bound}");

    let with_agent = dashboard_with(&w, Some(HttpAgent::new(&url).expect("url").with_token(TOKEN.to_owned()))).await;
    let page = get(&format!("{}/user", with_agent.url())).await;
    assert_eq!(page.status, 200, "{}", page.body);
    for needle in [
        "<h1>User sessions</h1>",
        &format!("From the agent at <code>{url}</code>"),
        &format!("for owner <code>{}</code>, vault 0", w.owner_id()),
        "<strong>low_balance</strong>",
        "vault 0 has 500000 unallocated",
        "cap <strong>2,000,000</strong>",
        "<strong>0</strong> allocated",
        "No sessions: the first proof",
        "aria-current=\"page\">User sessions",
    ] {
        assert!(page.body.contains(needle), "the user view lacks {needle:?}:\n{}", page.body);
    }
    let fragment = get(&format!("{}/fragments/agent", with_agent.url())).await;
    assert_eq!(fragment.status, 200);
    assert!(fragment.body.contains("data-fragment=\"/fragments/agent\""));
    assert!(!fragment.body.contains("<html"));
    with_agent.shutdown().await;

    // A wrong token is explained, not shown as an empty view.
    let wrong = dashboard_with(&w, Some(HttpAgent::new(&url).expect("url").with_token("nope".into()))).await;
    let page = get(&format!("{}/user", wrong.url())).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("refused the token: give --agent-token-file"), "{}", page.body);
    wrong.shutdown().await;

    // An agent that is not there is explained too.
    server.abort();
    let _ = server.await;
    let gone = dashboard_with(&w, Some(HttpAgent::new(&url).expect("url"))).await;
    let page =
        tokio::time::timeout(Duration::from_secs(30), get(&format!("{}/user", gone.url()))).await.expect("in time");
    assert!(page.body.contains("Is `paystream agent` running there?"), "{}", page.body);
    gone.shutdown().await;
    assert!(HttpAgent::new("ftp://x").expect_err("refused").contains("only plain http://"));
    w.stop().await;
}
