//! Shared test setup: an in-process dev node writing its keys to a temporary keystore, a chain
//! with one vault and one running stream, the dashboard on port 0, and a tiny HTTP client.

use std::{path::PathBuf, sync::Arc, time::Duration};

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::{client::legacy::Client as HttpClient, rt::TokioExecutor};
use paystreams_client::Client;
use paystreams_dashboard::{DashboardConfig, DashboardHandle, SessionSource};
use paystreams_lez_core::{AccountId, crypto::SecretKey};
use paystreams_node::{NodeConfig, NodeHandle};
use paystreams_program::ExtensionSettings;

pub struct World {
    pub node: NodeHandle,
    pub client: Client,
    pub dashboard: DashboardHandle,
    /// Where the node wrote its dev keys; deleted when the world is dropped.
    _keystore: tempfile::TempDir,
    pub owner: SecretKey,
    pub provider: SecretKey,
}

impl World {
    pub fn owner_id(&self) -> AccountId {
        self.owner.account_id()
    }

    pub fn provider_id(&self) -> AccountId {
        self.provider.account_id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.dashboard.url())
    }

    pub async fn stop(self) {
        self.dashboard.shutdown().await;
        self.node.shutdown().await;
    }
}

/// Starts a node (`timed`: blocks every 300 ms; else automine), creates vault 0 of dev-0 with
/// 1,000,000 deposited and stream 0 to dev-1 at 7/s with 500,000 allocated, then the dashboard.
pub async fn world(timed: bool, sessions: Option<Arc<dyn SessionSource>>) -> World {
    let keystore = tempfile::tempdir().expect("tempdir");
    let mut config = NodeConfig::ephemeral_dev();
    config.dev_accounts = 4;
    if timed {
        config.automine = false;
        config.block_time = Duration::from_millis(300);
    }
    let node = paystreams_node::start(config).await.expect("node starts");
    paystreams_client::Keystore::open(keystore.path())
        .expect("keystore")
        .save_dev_keys(node.dev_keys())
        .expect("dev keys");
    let client = Client::connect(&node.rpc_url()).expect("client");
    let owner = node.dev_keys()[0].clone();
    let provider = node.dev_keys()[1].clone();
    client.init_vault(&owner, 0, None).await.expect("vault");
    client.deposit(&owner, 0, 1_000_000).await.expect("deposit");
    client
        .create_stream(&owner, 0, provider.account_id(), 7, 500_000, ExtensionSettings::default())
        .await
        .expect("stream");
    let dashboard = start_dashboard(&node, keystore.path().to_path_buf(), sessions).await;
    World { node, client, dashboard, _keystore: keystore, owner, provider }
}

pub async fn start_dashboard(
    node: &NodeHandle,
    keystore: PathBuf,
    sessions: Option<Arc<dyn SessionSource>>,
) -> DashboardHandle {
    let mut config = DashboardConfig::new(node.rpc_url(), keystore);
    config.listen = "127.0.0.1:0".parse().expect("addr");
    let dashboard = paystreams_dashboard::start(config, sessions).await.expect("dashboard starts");
    // Wait until it follows the node and has read the history.
    let hub = &dashboard.state().hub;
    for _ in 0..200 {
        if hub.status().0 && hub.history_from().is_some() {
            return dashboard;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the dashboard did not connect to the node: {}", hub.status().1);
}

/// A response: status and body text.
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub content_type: String,
}

fn http() -> HttpClient<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>> {
    HttpClient::builder(TokioExecutor::new()).build_http()
}

pub async fn request(method: &str, url: &str, headers: &[(&str, &str)], body: Option<String>) -> Reply {
    let mut builder = hyper::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let request = builder.body(Full::new(Bytes::from(body.unwrap_or_default()))).expect("request");
    let response = tokio::time::timeout(Duration::from_secs(60), http().request(request))
        .await
        .expect("in time")
        .expect("response");
    let status = response.status().as_u16();
    let content_type =
        response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    Reply { status, body: String::from_utf8_lossy(&bytes).into_owned(), content_type }
}

pub async fn get(url: &str) -> Reply {
    request("GET", url, &[], None).await
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            b' ' => "+".to_owned(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

pub async fn post_form(url: &str, fields: &[(&str, &str)]) -> Reply {
    let body = fields.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect::<Vec<_>>().join("&");
    request("POST", url, &[("content-type", "application/x-www-form-urlencoded")], Some(body)).await
}

/// The anti-forgery token embedded in a page.
pub fn csrf(page: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = page.find(marker).expect("page has a csrf field") + marker.len();
    page[start..].chars().take_while(|c| *c != '"').collect()
}
