//! Time for the dashboard to show "live" on a long chain: a node with `PAYSTREAMS_HISTORY_TXS`
//! transactions (default 100,000; three in four emit a payment-streams event), then the
//! dashboard started against it, timed until it has read its history from the node's event
//! index and follows the head. Run: `cargo bench -p paystreams-dashboard --bench history`
//! (`--profile dev` for a figure without an optimised build of the workspace's own crates).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use paystreams_node::NodeConfig;

#[path = "../tests/all/history_chain.rs"]
mod history_chain;

fn main() {
    let transactions: u64 =
        std::env::var("PAYSTREAMS_HISTORY_TXS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let node = paystreams_node::start(NodeConfig::ephemeral_dev()).await.expect("node");
        let chain = Arc::clone(node.chain());
        let building = Instant::now();
        let built =
            tokio::task::spawn_blocking(move || history_chain::build(&chain, transactions)).await.expect("chain built");
        println!(
            "chain: {} transactions, {} events, {} blocks, built in {:.1?}",
            built.transactions,
            built.events,
            node.chain().head_height(),
            building.elapsed()
        );
        let keystore = tempfile::tempdir().expect("keystore");
        for run in 1..=3 {
            let mut config = paystreams_dashboard::DashboardConfig::new(node.rpc_url(), keystore.path());
            config.listen = "127.0.0.1:0".parse().expect("addr");
            let started = Instant::now();
            let dashboard = paystreams_dashboard::start(config, None).await.expect("dashboard");
            let hub = Arc::clone(&dashboard.state().hub);
            let deadline = Instant::now() + Duration::from_secs(300);
            while !(hub.status().0 && hub.history_from().is_some()) {
                assert!(Instant::now() < deadline, "not live in time: {}", hub.status().1);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let live_after = started.elapsed();
            let from = hub.history_from().expect("history read");
            println!("run {run}: live after {} ms, history from block {from}", live_after.as_millis());
            dashboard.shutdown().await;
        }
        node.shutdown().await;
    });
}
