//! The dashboard reads its history from the node's event index: on a long chain it goes "live"
//! after about one `paystreams_getEvents` call per 1,000 events and no receipt calls at all,
//! counted by a proxy between it and the node. The transaction count is `PAYSTREAMS_HISTORY_TXS` (default
//! 20,000 in this debug-build test); `benches/history.rs` times 100,000.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use paystreams_node::NodeConfig;
use paystreams_rpc::{EVENTS_PAGE_MAX, EventFilter};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
};

use crate::history_chain;

/// JSON-RPC method names seen in requests over plain HTTP (WebSocket frames from a client are
/// masked, so subscriptions are not counted).
#[derive(Clone, Default)]
pub struct Calls(Arc<Mutex<BTreeMap<String, u64>>>);

impl Calls {
    fn count(&self, method: &str) -> u64 {
        self.0.lock().expect("calls").get(method).copied().unwrap_or_default()
    }

    /// Counts every complete `"method":"NAME"` in `pending` and drops what was read, keeping a
    /// trailing part that may continue in the next read.
    fn scan(&self, pending: &mut Vec<u8>) {
        const KEY: &[u8] = b"\"method\":\"";
        let mut map = self.0.lock().expect("calls");
        let mut done = 0;
        loop {
            let Some(at) = pending[done..].windows(KEY.len()).position(|w| w == KEY) else {
                // Keep what could be the start of a key cut by the read.
                done = done.max(pending.len().saturating_sub(KEY.len() - 1));
                break;
            };
            let name_start = done + at + KEY.len();
            let Some(len) = pending[name_start..].iter().position(|b| *b == b'"') else {
                done += at;
                break;
            };
            *map.entry(String::from_utf8_lossy(&pending[name_start..name_start + len]).into_owned()).or_default() += 1;
            done = name_start + len;
        }
        pending.drain(..done);
    }
}

/// A TCP proxy to `target` that counts the JSON-RPC methods of the requests passing through.
async fn counting_proxy(target: SocketAddr) -> (SocketAddr, Calls) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let calls = Calls::default();
    let counted = calls.clone();
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let calls = counted.clone();
            tokio::spawn(async move {
                let Ok(outbound) = TcpStream::connect(target).await else { return };
                let (mut in_read, mut in_write) = inbound.into_split();
                let (mut out_read, mut out_write) = outbound.into_split();
                let upstream = async move {
                    // A method name split across reads is joined before it is counted.
                    let mut pending: Vec<u8> = Vec::new();
                    let mut buf = vec![0_u8; 64 * 1024];
                    loop {
                        let n = match in_read.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        pending.extend_from_slice(&buf[..n]);
                        calls.scan(&mut pending);
                        if out_write.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = out_write.shutdown().await;
                };
                let downstream = async move {
                    let _ = tokio::io::copy(&mut out_read, &mut in_write).await;
                    let _ = in_write.shutdown().await;
                };
                tokio::join!(upstream, downstream);
            });
        }
    });
    (addr, calls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_reads_a_long_history_from_the_event_index_about_one_call_per_thousand_events() {
    let transactions: u64 = std::env::var("PAYSTREAMS_HISTORY_TXS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let node = paystreams_node::start(NodeConfig::ephemeral_dev()).await.expect("node");
    let chain = Arc::clone(node.chain());
    let built =
        tokio::task::spawn_blocking(move || history_chain::build(&chain, transactions)).await.expect("chain built");
    assert!(built.transactions >= transactions);
    let indexed = node.chain().events(&EventFilter::default(), None, EVENTS_PAGE_MAX).expect("first page");
    assert_eq!(indexed.events.len(), EVENTS_PAGE_MAX as usize);

    let node_addr: SocketAddr = node.rpc_url().trim_start_matches("http://").parse().expect("node address");
    let (proxy, calls) = counting_proxy(node_addr).await;
    let keystore = tempfile::tempdir().expect("keystore");
    let mut config = paystreams_dashboard::DashboardConfig::new(format!("http://{proxy}"), keystore.path());
    config.listen = "127.0.0.1:0".parse().expect("addr");
    let started = Instant::now();
    let dashboard = paystreams_dashboard::start(config, None).await.expect("dashboard");
    let hub = Arc::clone(&dashboard.state().hub);
    let deadline = Instant::now() + Duration::from_secs(120);
    while !(hub.status().0 && hub.history_from().is_some()) {
        assert!(Instant::now() < deadline, "not live in time: {}", hub.status().1);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let live_after = started.elapsed();
    eprintln!("{} transactions, {} events: live after {live_after:?} (debug build)", built.transactions, built.events);

    // Block ranges from the head backwards, each twice the one before: at most one partial page
    // per range beyond the pages the events fill.
    let pages = built.events.div_ceil(u64::from(EVENTS_PAGE_MAX));
    let ranges = u64::from(u64::BITS - node.chain().head_height().leading_zeros());
    let reads = calls.count("paystreams_getEvents");
    assert!(pages <= reads && reads <= pages + ranges, "{reads} event reads for {pages} pages: {:?}", calls.0);
    assert_eq!(hub.history_from(), Some(1), "fewer events than the log holds: all of them were read");
    assert_eq!(calls.count("paystreams_getTransactionReceipt"), 0, "no receipt calls: {:?}", calls.0);
    assert_eq!(calls.count("paystreams_getBlockRange"), 0, "no block reads: {:?}", calls.0);
    let total: u64 = calls.0.lock().expect("calls").values().sum();
    assert!(total <= pages + 5, "a handful of other calls at most: {:?}", calls.0);

    // The history it shows is the node's: the last stream's events, as the index has them.
    let owner = node.dev_keys().last().expect("keys").account_id();
    let client = paystreams_client::Client::connect(&node.rpc_url()).expect("client");
    let expected: Vec<_> =
        client.stream_history(owner, 0, 0).await.expect("history").into_iter().map(|e| e.notification).collect();
    assert!(!expected.is_empty());
    assert_eq!(hub.stream_events(owner, 0, 0), expected);

    dashboard.shutdown().await;
    node.shutdown().await;
}
