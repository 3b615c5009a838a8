//! Hostile load: an attacker on the same machine (loopback, so the same client address as the
//! well-behaved client) holds idle WebSockets, trickles request bodies or headers, floods block
//! range batches, or floods subscriptions, while a well-behaved client keeps working: it asks for
//! the head (`getLastBlockId`), probes `/health`, and sends transfers that it follows to their
//! inclusion. Each attack must leave that client's p99 latency under [`P99_BOUND`], block
//! production going, and the node's live heap back within [`MEMORY_SLACK`] of its baseline once
//! the attack ends. Figures (printed with `--nocapture`) are in `docs/reliability.md`.
//!
//! The node runs on a runtime of its own whose threads are marked, and a counting allocator
//! counts the heap bytes those threads hold, so the figures are the node's, not the test's.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    cell::Cell,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use jsonrpsee::ws_client::WsClientBuilder;
use paystreams_lez_core::crypto::SecretKey;
use paystreams_node::{FrontLimits, NodeConfig, NodeHandle, ReadDeadlines, start};
use paystreams_rpc::{PaystreamsApiClient as _, ReceiptInfo, TxStatus};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::common::{b64, raw, transfer};

/// The well-behaved client's p99 latency bound under every attack, per call (a new connection,
/// one request, the whole answer). Generous enough to hold on two cores that are also running two
/// busy loops and the attacker itself; an unprotected node took 6–9 s to answer a health probe
/// under the range-batch flood and answered 429 under the connection floods.
const P99_BOUND: Duration = Duration::from_millis(1500);

/// How far above its baseline the node's live heap may stay once an attack has ended (the chain
/// itself grows a little meanwhile: a block every 200 ms, kept in memory).
const MEMORY_SLACK: i64 = 4 * 1024 * 1024;

/// Waits that only fail the test.
const PATIENCE: Duration = Duration::from_secs(20);

/// Connections (or WebSockets) the connection attacks open.
const ATTACK_CONNECTIONS: usize = 300;

/// How long a trickling attacker waits before opening a connection again once cut off. Without
/// a pause, 300 attackers over a 128-connection share turn into a flood of new connections (tens
/// of thousands a second) that overflows the listen backlog: that is a connection-rate flood,
/// which this suite does not cover (see docs/reliability.md).
const RECONNECT_PAUSE: Duration = Duration::from_millis(500);

/// The total subscription limit of the node under test (the default is larger; a smaller one
/// keeps the flood short).
const SUBSCRIPTIONS_MAX: u32 = 256;

// The counting allocator: heap bytes allocated and not yet freed by the node's threads.

struct Counting;

static NODE_LIVE_BYTES: AtomicI64 = AtomicI64::new(0);

thread_local! {
    static NODE_THREAD: Cell<bool> = const { Cell::new(false) };
}

fn node_thread() -> bool {
    NODE_THREAD.try_with(Cell::get).unwrap_or(false)
}

fn size_of(layout: Layout) -> i64 {
    i64::try_from(layout.size()).unwrap_or(i64::MAX)
}

#[expect(unsafe_code, reason = "a global allocator is an unsafe trait; this one forwards to the system's")]
// SAFETY: every method forwards to `System` with the caller's arguments unchanged; the counter is
// bookkeeping only.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as the caller guarantees for `alloc`.
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() && node_thread() {
            NODE_LIVE_BYTES.fetch_add(size_of(layout), Ordering::Relaxed);
        }
        pointer
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as the caller guarantees for `alloc_zeroed`.
        let pointer = unsafe { System.alloc_zeroed(layout) };
        if !pointer.is_null() && node_thread() {
            NODE_LIVE_BYTES.fetch_add(size_of(layout), Ordering::Relaxed);
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        if node_thread() {
            NODE_LIVE_BYTES.fetch_sub(size_of(layout), Ordering::Relaxed);
        }
        // SAFETY: as the caller guarantees for `dealloc`.
        unsafe { System.dealloc(pointer, layout) }
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as the caller guarantees for `realloc`.
        let moved = unsafe { System.realloc(pointer, layout, new_size) };
        if !moved.is_null() && node_thread() {
            NODE_LIVE_BYTES.fetch_add(i64::try_from(new_size).unwrap_or(i64::MAX) - size_of(layout), Ordering::Relaxed);
        }
        moved
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live_bytes() -> i64 {
    NODE_LIVE_BYTES.load(Ordering::Relaxed)
}

/// The process's resident set, for the figures only (the allocator may keep freed pages).
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|pages| pages.parse::<u64>().ok()))
        .map_or(0, |pages| pages * 4096)
}

fn mib(bytes: i64) -> f64 {
    #[expect(clippy::cast_precision_loss, reason = "a figure for people")]
    let bytes = bytes as f64;
    bytes / (1024.0 * 1024.0)
}

// The well-behaved client.

/// One call's latency, or what went wrong.
async fn timed_call(addr: SocketAddr, method: &str, path: &str, body: &str) -> Result<(Duration, String), String> {
    let started = Instant::now();
    let (status, text) = tokio::time::timeout(PATIENCE, raw(addr, method, path, body.as_bytes()))
        .await
        .map_err(|_| format!("{method} {path} {body}: no answer within {PATIENCE:?}"))?;
    if status != 200 {
        return Err(format!("{method} {path} {body}: HTTP {status}: {text}"));
    }
    Ok((started.elapsed(), text))
}

struct Probe {
    latencies: Vec<Duration>,
    height_before: u64,
    height_after: u64,
    elapsed: Duration,
    transfers: u128,
}

impl Probe {
    fn p99(&self) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let index = (sorted.len() * 99).div_ceil(100).saturating_sub(1);
        sorted.get(index).copied().unwrap_or_default()
    }
}

fn height_of(text: &str) -> u64 {
    let value: serde_json::Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    value["result"].as_u64().unwrap_or_else(|| panic!("no height in {text}"))
}

/// Calls for at least `rounds` rounds and until blocks have advanced by 3: `getLastBlockId` and
/// `/health` each round, and every 10th round a transfer of `amount` from `from` (its next nonce
/// in `nonce`) followed until it is included.
async fn probe(addr: SocketAddr, from: &SecretKey, to: &SecretKey, nonce: &mut u128, rounds: usize) -> Probe {
    let started = Instant::now();
    let mut latencies = Vec::new();
    let mut transfers = 0u128;
    let head = r#"{"jsonrpc":"2.0","id":1,"method":"getLastBlockId"}"#;
    let (_, text) = timed_call(addr, "POST", "/", head).await.expect("height");
    let height_before = height_of(&text);
    let mut height_after = height_before;
    let mut round = 0;
    while round < rounds || height_after < height_before + 3 {
        assert!(
            started.elapsed() < PATIENCE,
            "after {round} rounds in {PATIENCE:?}, the head went from {height_before} to {height_after}"
        );
        let (latency, text) = timed_call(addr, "POST", "/", head).await.expect("getLastBlockId");
        latencies.push(latency);
        height_after = height_of(&text);
        let (latency, text) = timed_call(addr, "GET", "/health", "").await.expect("health");
        assert!(text.contains(r#""status":"ok""#), "{text}");
        latencies.push(latency);
        if round % 10 == 0 {
            let amount = 7;
            let tx = transfer(from, to.account_id(), amount, *nonce);
            let body = format!(r#"{{"jsonrpc":"2.0","id":2,"method":"sendTransaction","params":["{}"]}}"#, b64(&tx));
            let (latency, text) = timed_call(addr, "POST", "/", &body).await.expect("sendTransaction");
            assert!(text.contains(&hex::encode(tx.hash())), "{text}");
            latencies.push(latency);
            *nonce += 1;
            transfers += amount;
            // Followed to its inclusion.
            let ask = format!(
                r#"{{"jsonrpc":"2.0","id":3,"method":"paystreams_getTransactionReceipt","params":["{}"]}}"#,
                hex::encode(tx.hash())
            );
            loop {
                assert!(started.elapsed() < PATIENCE, "a transfer was not included in {PATIENCE:?}");
                let (latency, text) = timed_call(addr, "POST", "/", &ask).await.expect("receipt");
                latencies.push(latency);
                let value: serde_json::Value = serde_json::from_str(&text).expect("JSON");
                let receipt: Option<ReceiptInfo> =
                    serde_json::from_value(value["result"].clone()).unwrap_or_else(|e| panic!("{e}: {text}"));
                match receipt.map(|r| r.status) {
                    Some(TxStatus::Included) => break,
                    Some(TxStatus::Pending) | None => {
                        // The next block is at most 200 ms away: wait for it (as a wallet polls).
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Some(other) => panic!("the transfer did not succeed: {other:?} {text}"),
                }
            }
        }
        round += 1;
    }
    Probe { latencies, height_before, height_after, elapsed: started.elapsed(), transfers }
}

// The attacks. Each runs until `stop` is set; `ready` counts the connections it has in place.

#[derive(Clone, Default)]
struct Attack {
    stop: Arc<AtomicBool>,
    ready: Arc<AtomicU64>,
    refused: Arc<AtomicU64>,
    /// The head when the attack started.
    head: Arc<AtomicU64>,
}

impl Attack {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Waits (polling) until `count` connections are in place.
    async fn in_place(&self, count: u64) {
        let started = Instant::now();
        while self.ready.load(Ordering::Relaxed) < count {
            assert!(started.elapsed() < PATIENCE, "the attack did not get in place in {PATIENCE:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// WebSocket connections upgraded and then left idle, held until the end.
async fn idle_websockets(addr: SocketAddr, attack: Attack) {
    let mut held = Vec::new();
    for _ in 0..ATTACK_CONNECTIONS {
        let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else { continue };
        let request = format!(
            "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        if stream.write_all(request.as_bytes()).await.is_err() {
            continue;
        }
        let mut answer = Vec::new();
        let mut buf = [0u8; 512];
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
        assert!(answer.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&answer));
        attack.ready.fetch_add(1, Ordering::Relaxed);
        held.push(stream);
    }
    while !attack.stopped() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Requests whose body trickles in (`body`) or whose headers do (`!body`), one byte every
/// `every`; each connection, once cut off (deadline or eviction), is opened again after
/// [`RECONNECT_PAUSE`].
fn trickle(addr: SocketAddr, attack: &Attack, body: bool, every: Duration) -> Vec<tokio::task::JoinHandle<()>> {
    (0..ATTACK_CONNECTIONS)
        .map(|_| {
            let attack = attack.clone();
            tokio::spawn(async move {
                let mut first = true;
                while !attack.stopped() {
                    if !first {
                        tokio::time::sleep(RECONNECT_PAUSE).await;
                    }
                    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else { continue };
                    let (head, rest) = if body {
                        (
                            format!(
                                "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: \
                                 1000\r\n\r\n"
                            ),
                            "[".repeat(1000),
                        )
                    } else {
                        ("P".to_owned(), format!("OST / HTTP/1.1\r\nHost: {addr}\r\nX-Slow: {}\r\n", "a".repeat(1000)))
                    };
                    if stream.write_all(head.as_bytes()).await.is_err() {
                        continue;
                    }
                    if first {
                        attack.ready.fetch_add(1, Ordering::Relaxed);
                        first = false;
                    }
                    for byte in rest.bytes() {
                        let wait = tokio::time::sleep(every);
                        tokio::pin!(wait);
                        let mut buf = [0u8; 256];
                        // Cut off (or evicted): the server closes, or answers 408 and closes.
                        tokio::select! {
                            () = &mut wait => {}
                            _ = stream.read(&mut buf) => break,
                        }
                        if attack.stopped() || stream.write_all(&[byte]).await.is_err() {
                            break;
                        }
                    }
                }
            })
        })
        .collect()
}

/// 50 clients each sending, again and again, a batch of 100 block-range calls of 1000 blocks
/// (half LEZ's `getBlockRange`, half `paystreams_getBlockRange`), and 50 more sending single
/// `getBlockRange` calls for every block there is.
fn range_floods(addr: SocketAddr, attack: &Attack) -> Vec<tokio::task::JoinHandle<()>> {
    let batch: Vec<String> = (0..100)
        .map(|i| {
            let method = if i % 2 == 0 { "getBlockRange" } else { "paystreams_getBlockRange" };
            format!(r#"{{"jsonrpc":"2.0","id":{i},"method":"{method}","params":[0,999]}}"#)
        })
        .collect();
    let batch = Arc::new(format!("[{}]", batch.join(",")));
    let single = r#"{"jsonrpc":"2.0","id":1,"method":"getBlockRange","params":[1,HEAD]}"#;
    (0..100)
        .map(|task| {
            let attack = attack.clone();
            let batch = Arc::clone(&batch);
            tokio::spawn(async move {
                while !attack.stopped() {
                    // Single calls ask for every block there is (up to 1000): the most work one
                    // call may ask for.
                    let single =
                        single.replace("HEAD", &attack.head.load(Ordering::Relaxed).clamp(1, 1000).to_string());
                    let body = if task % 2 == 0 { batch.as_str() } else { single.as_str() };
                    let (_, text) = raw(addr, "POST", "/", body.as_bytes()).await;
                    attack.ready.fetch_add(1, Ordering::Relaxed);
                    // -32008: the batch refused before any block is read; -32009: busy.
                    if text.contains("-32008") || text.contains("-32009") {
                        attack.refused.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect()
}

/// WebSocket clients each asking for 40 block subscriptions (more than a connection may hold),
/// until the node's total is reached; held until the end.
async fn subscription_flood(url: String, attack: Attack) {
    let mut held = Vec::new();
    let mut clients = Vec::new();
    for _ in 0..12 {
        let client = WsClientBuilder::default().build(&url).await.expect("ws");
        for _ in 0..40 {
            match client.subscribe_blocks().await {
                Ok(subscription) => {
                    attack.ready.fetch_add(1, Ordering::Relaxed);
                    held.push(subscription);
                }
                Err(_) => {
                    attack.refused.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        clients.push(client);
    }
    while !attack.stopped() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What one attack did to the well-behaved client and to the node.
struct Figures {
    name: &'static str,
    probe: Probe,
    live_during: i64,
    live_after: i64,
    baseline: i64,
    rss_during: u64,
}

/// Runs `attack` (already in place) against the probe, stops it, waits for its connections to
/// close and the heap to come back, and checks the bounds.
async fn measure(
    name: &'static str,
    node: &NodeHandle,
    attack: Attack,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    client: &mut Client,
) -> Figures {
    let baseline = client.baseline;
    let probe = probe(node.local_addr(), &client.from, &client.to, &mut client.nonce, 25).await;
    client.transferred += probe.transfers;
    let live_during = live_bytes();
    let rss_during = rss_bytes();
    let stats = node.front_stats();
    assert!(
        stats.connections <= u64::from(FrontLimits::DEFAULT.max_connections_per_address) + 8,
        "{name}: the node holds {} connections",
        stats.connections
    );
    attack.stop.store(true, Ordering::Relaxed);
    for task in tasks {
        tokio::time::timeout(PATIENCE, task).await.expect("the attack ends").expect("attack task");
    }
    // The connections close (the probe's own are closed after each call); the client's
    // WebSocket stays.
    let started = Instant::now();
    while node.front_stats().connections > 1 {
        assert!(started.elapsed() < PATIENCE, "{name}: connections still held: {:?}", node.front_stats());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The heap comes back to its baseline (polled: the last tasks wind down asynchronously).
    let started = Instant::now();
    let mut live_after = live_bytes();
    while live_after > baseline + MEMORY_SLACK && started.elapsed() < PATIENCE {
        tokio::time::sleep(Duration::from_millis(50)).await;
        live_after = live_bytes();
    }
    let figures = Figures { name, probe, live_during, live_after, baseline, rss_during };
    report(&figures, node);
    assert!(
        figures.probe.p99() <= P99_BOUND,
        "{name}: the well-behaved client's p99 latency {:?} is over {P99_BOUND:?}",
        figures.probe.p99()
    );
    assert!(
        live_after <= baseline + MEMORY_SLACK,
        "{name}: the node's heap stayed at {:.1} MiB, {:.1} MiB over its baseline",
        mib(live_after),
        mib(live_after - baseline)
    );
    figures
}

fn report(f: &Figures, node: &NodeHandle) {
    let max = f.probe.latencies.iter().max().copied().unwrap_or_default();
    eprintln!(
        "{:<22} calls {:>4}  p99 {:>6.1} ms  max {:>6.1} ms  blocks {:>3} in {:>4.1} s  heap before {:>5.1} MiB  \
         during {:>5.1} MiB  after {:>5.1} MiB  rss during {:>5.1} MiB  evicted so far {}",
        f.name,
        f.probe.latencies.len(),
        f.probe.p99().as_secs_f64() * 1000.0,
        max.as_secs_f64() * 1000.0,
        f.probe.height_after - f.probe.height_before,
        f.probe.elapsed.as_secs_f64(),
        mib(f.baseline),
        mib(f.live_during),
        mib(f.live_after),
        mib(i64::try_from(f.rss_during).unwrap_or(i64::MAX)),
        node.front_stats().evicted,
    );
}

/// The well-behaved client's keys and what it has sent.
struct Client {
    from: SecretKey,
    to: SecretKey,
    nonce: u128,
    transferred: u128,
    baseline: i64,
}

#[test]
fn a_well_behaved_client_is_served_through_each_attack() {
    let node_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .on_thread_start(|| NODE_THREAD.with(|t| t.set(true)))
        .build()
        .expect("node runtime");
    let config = NodeConfig {
        rpc_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        block_time: Duration::from_millis(200),
        // Short deadlines keep the trickling attacks' cycle short; the attacker reconnects.
        read_deadlines: ReadDeadlines { headers: Duration::from_secs(2), body: Duration::from_secs(2) },
        limits: FrontLimits { max_subscriptions: SUBSCRIPTIONS_MAX, ..FrontLimits::DEFAULT },
        ..NodeConfig::new(None)
    };
    let node = node_runtime.block_on(start(config)).expect("start");
    let client_runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("client runtime");
    let (from, to) = (node.dev_keys()[0].clone(), node.dev_keys()[1].clone());
    let chain = Arc::clone(node.chain());
    let (from_start, to_start) = (chain.account(&from.account_id()).balance, chain.account(&to.account_id()).balance);
    let supply = chain.native_supply();

    let client = client_runtime.block_on(async {
        let mut client = Client { from, to, nonce: 0, transferred: 0, baseline: 0 };
        // Warm up (the first calls allocate what the node keeps), then the baseline.
        let warm = probe(node.local_addr(), &client.from, &client.to, &mut client.nonce, 20).await;
        client.transferred += warm.transfers;
        // The client also follows blocks over a WebSocket, as a dashboard does, through every
        // attack: a connection that keeps receiving is not among the quietest.
        let ws = WsClientBuilder::default().build(node.ws_url()).await.expect("ws");
        let mut blocks = ws.subscribe_blocks().await.expect("subscribe");
        // A connection is spared as one that keeps talking once it has lived a second: six
        // blocks of 200 ms.
        for _ in 0..6 {
            tokio::time::timeout(PATIENCE, blocks.next()).await.expect("a block").expect("item").expect("block");
        }
        while node.front_stats().connections > 1 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        client.baseline = live_bytes();
        let addr = node.local_addr();

        // 300 idle WebSockets: the node keeps at most its per-address share, closing the quietest.
        let attack = Attack::default();
        let tasks = vec![tokio::spawn(idle_websockets(addr, attack.clone()))];
        attack.in_place(ATTACK_CONNECTIONS as u64).await;
        assert!(node.front_stats().evicted >= (ATTACK_CONNECTIONS as u64) - 128, "{:?}", node.front_stats());
        measure("idle WebSockets", &node, attack, tasks, &mut client).await;
        assert!(ws.is_connected(), "idle WebSockets: the client's WebSocket was closed");

        // 300 slow bodies, a byte every 5 s.
        let attack = Attack::default();
        let tasks = trickle(addr, &attack, true, Duration::from_secs(5));
        attack.in_place(ATTACK_CONNECTIONS as u64).await;
        measure("slow bodies", &node, attack, tasks, &mut client).await;
        assert!(ws.is_connected(), "slow bodies: the client's WebSocket was closed");

        // 300 slow headers, a byte every second.
        let attack = Attack::default();
        let tasks = trickle(addr, &attack, false, Duration::from_secs(1));
        attack.in_place(ATTACK_CONNECTIONS as u64).await;
        measure("slow headers", &node, attack, tasks, &mut client).await;
        assert!(ws.is_connected(), "slow headers: the client's WebSocket was closed");

        // Range floods: refused before any block is read, or bounded in concurrency.
        let attack = Attack::default();
        attack.head.store(node.chain().head_height(), Ordering::Relaxed);
        let tasks = range_floods(addr, &attack);
        attack.in_place(200).await;
        let figures = measure("block-range batches", &node, attack.clone(), tasks, &mut client).await;
        assert!(ws.is_connected(), "block-range batches: the client's WebSocket was closed");
        assert!(attack.refused.load(Ordering::Relaxed) > 0, "no range flood was refused");
        drop(figures);

        // Subscription flood: 12 connections asking 40 each, against 32 per connection and 256 in all.
        let attack = Attack::default();
        let tasks = vec![tokio::spawn(subscription_flood(node.ws_url(), attack.clone()))];
        let started = Instant::now();
        while attack.ready.load(Ordering::Relaxed) + attack.refused.load(Ordering::Relaxed) < 12 * 40 {
            assert!(started.elapsed() < PATIENCE, "the subscription flood did not finish asking");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The client's own subscription holds one place.
        let held = u64::from(SUBSCRIPTIONS_MAX) - 1;
        assert_eq!(attack.ready.load(Ordering::Relaxed), held, "subscriptions held in all");
        assert_eq!(attack.refused.load(Ordering::Relaxed), 12 * 40 - held);
        measure("subscriptions", &node, attack, tasks, &mut client).await;
        // The client's WebSocket was never closed to make room, and still receives blocks.
        assert!(ws.is_connected(), "the client's WebSocket was closed");
        let height = node.chain().head_height();
        loop {
            let block = tokio::time::timeout(PATIENCE, blocks.next()).await.expect("a block").expect("item");
            if block.expect("block").header.height > height {
                break;
            }
        }
        client
    });

    // Every unit the client sent is where it should be.
    assert_eq!(chain.account(&client.from.account_id()).balance, from_start - client.transferred);
    assert_eq!(chain.account(&client.to.account_id()).balance, to_start + client.transferred);
    assert_eq!(chain.native_supply(), supply);
    drop(chain);
    node_runtime.block_on(node.shutdown());
}

/// The header deadline holds for every request of a kept-alive connection, not only the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_request_trickling_its_headers_is_cut_off() {
    let deadline = Duration::from_millis(500);
    let config = NodeConfig {
        read_deadlines: ReadDeadlines { headers: deadline, body: deadline },
        ..NodeConfig::ephemeral_dev()
    };
    let node = start(config).await.expect("start");
    let addr = node.local_addr();
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"getLastBlockId"}"#;
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    // The deadline runs from the moment the answer is written, which is after this instant.
    let started = Instant::now();
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&answer).contains(r#""result""#) {
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut buf)).await.expect("answer in time").expect("read");
        assert!(n > 0, "closed before the first answer");
        answer.extend_from_slice(&buf[..n]);
    }
    // The connection is kept alive; the next request's headers trickle, a byte every 100 ms.
    let closed = tokio::time::timeout(PATIENCE, async {
        for byte in request.bytes().cycle() {
            if stream.write_all(&[byte]).await.is_err() {
                return;
            }
            let wait = tokio::time::sleep(Duration::from_millis(100));
            tokio::pin!(wait);
            tokio::select! {
                () = &mut wait => {}
                read = stream.read(&mut buf) => if matches!(read, Ok(0) | Err(_)) { return },
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "a later request's trickled headers were not cut off");
    assert!(started.elapsed() >= deadline, "cut off before the deadline: {:?}", started.elapsed());
    node.shutdown().await;
}
