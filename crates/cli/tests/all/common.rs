//! Helpers the CLI's integration tests share.

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use paystreams_client::{Client, Keystore};
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
/// `keystore`, its dev keys are saved there (`dev-0`, `dev-1`, ...), as `paystream node --dev`
/// does.
pub async fn dev_node(keystore: Option<&Path>) -> (NodeHandle, Client) {
    let node = paystreams_node::start(NodeConfig::ephemeral_dev()).await.expect("node starts");
    if let Some(dir) = keystore {
        Keystore::open(dir).expect("keystore").save_dev_keys(node.dev_keys()).expect("dev keys");
    }
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
