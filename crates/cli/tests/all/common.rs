//! Helpers the CLI's integration tests share.

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use paystreams_client::Client;
use paystreams_node::{NodeConfig, NodeHandle};

/// How long [`wait_for`] waits before it fails the test.
const WAIT_FOR_DEADLINE: Duration = Duration::from_secs(10);
/// How often [`wait_for`] asks again.
const WAIT_FOR_POLL: Duration = Duration::from_millis(50);

/// The `paystream` binary under test.
pub fn paystream() -> Command {
    Command::new(env!("CARGO_BIN_EXE_paystream"))
}

/// An in-process dev node (in memory, port 0, automine, dev methods) and a client to it. With
/// `keystore`, the node writes its dev keys (`dev-0`, `dev-1`, ...) there.
pub async fn dev_node(keystore: Option<&Path>) -> (NodeHandle, Client) {
    let config = NodeConfig { keystore_dir: keystore.map(Path::to_path_buf), ..NodeConfig::ephemeral_dev() };
    let node = paystreams_node::start(config).await.expect("node starts");
    let client = Client::connect(&node.rpc_url()).expect("client");
    (node, client)
}

/// Asks `probe` until it answers `Some`; fails the test, naming `what`, after ten seconds.
pub async fn wait_for<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT_FOR_DEADLINE;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {WAIT_FOR_DEADLINE:?} waiting for {what}");
        tokio::time::sleep(WAIT_FOR_POLL).await;
    }
}
