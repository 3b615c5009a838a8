//! The event index behind `paystreams_getEvents`: equal to a recomputation from the stored
//! blocks and their receipts after random flows (in memory and in redb), read page by page under
//! every filter; kept across restarts; caught up from the blocks for a data dir without it (or
//! with an older layout's index in the chain file); written behind the blocks, yet read at the
//! head (every page reflects the head block); caught up at open after a kill; and served over
//! JSON-RPC with its parameter rules.

use std::{
    io::{BufRead as _, BufReader},
    path::Path,
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use crate::common::{create_stream, deposit, http, init_vault, pause, rpc_error, sign, vault};
use paystreams_lez_core::crypto::SecretKey;
use paystreams_node::{Chain, ChainConfig, MemStorage, NodeConfig, RedbStorage, RpcMethods, Storage};
use paystreams_program::client as calls;
use paystreams_rpc::{EVENTS_PAGE_MAX, EventCursor, EventFilter, IndexedEvent, PaystreamsApiClient as _};
use paystreams_runtime::ReceiptEvent;
use paystreams_testkit::rng::Rng;
use redb::{ReadableDatabase as _, TableDefinition, TableHandle as _};

const KEYS: u32 = 5;

/// One of `items`, at random (`None` when empty).
fn pick<'a, T>(rng: &mut Rng, items: &'a [T]) -> Option<&'a T> {
    if items.is_empty() {
        return None;
    }
    items.get(usize::try_from(rng.below(items.len() as u64)).expect("small"))
}

fn sequencer() -> SecretKey {
    SecretKey::from_bytes(&[0x4e; 32]).expect("key")
}

/// The same sequencer key on every open, so reopening is allowed.
fn config() -> ChainConfig {
    ChainConfig { sequencer: sequencer(), ..ChainConfig::dev(KEYS, 1_000_000_000_000) }
}

fn open_redb(path: &Path) -> (Arc<RedbStorage>, Chain) {
    let storage = Arc::new(RedbStorage::open(path).expect("open storage"));
    let chain = Chain::open(Arc::clone(&storage) as Arc<dyn Storage>, &config()).expect("open chain");
    (storage, chain)
}

/// One random transaction per dev key per block, the clock moving 3 s a block: vaults opened and
/// funded, streams created, paused, resumed, topped up, claimed by their provider and closed by
/// their owner; some fail (a vault that does not exist, a stream beyond the funds, a pause of a
/// paused stream), and failures must not reach the index.
fn random_blocks(chain: &Chain, rng: &mut Rng, blocks: u32) {
    let keys: Vec<SecretKey> = chain.dev_keys().to_vec();
    for _ in 0..blocks {
        for key in &keys {
            let id = key.account_id();
            let nonce = chain.account(&id).nonce;
            let vaults = chain.vaults(&id);
            let own = chain.streams(Some(&id), None).expect("own streams");
            let serving = chain.streams(None, Some(&id)).expect("served streams");
            let provider = pick(rng, &keys).expect("keys").account_id();
            let tx = match rng.below(12) {
                _ if vaults.is_empty() => init_vault(key, rng.below(3), nonce),
                0 => init_vault(key, rng.below(3), nonce),
                1 => create_stream(key, 77, 0, provider, 1, 100, nonce),
                2 | 3 => {
                    let v = pick(rng, &vaults).expect("vaults");
                    deposit(key, v.vault_id, 10_000 + u128::from(rng.below(50_000)), nonce)
                }
                4 | 5 => {
                    let v = pick(rng, &vaults).expect("vaults");
                    let allocation = 200 + u128::from(rng.below(20_000));
                    create_stream(key, v.vault_id, v.next_stream_id, provider, 1 + rng.below(40), allocation, nonce)
                }
                6 if !own.is_empty() => {
                    let s = pick(rng, &own).expect("own");
                    pause(key, s.vault_id, s.stream_id, nonce)
                }
                7 if !own.is_empty() => {
                    let s = pick(rng, &own).expect("own");
                    sign(&calls::resume_stream(&vault(key, s.vault_id), s.stream_id), &[key], vec![nonce])
                }
                8 if !own.is_empty() => {
                    let s = pick(rng, &own).expect("own");
                    let amount = 100 + u128::from(rng.below(5_000));
                    sign(&calls::top_up_stream(&vault(key, s.vault_id), s.stream_id, amount), &[key], vec![nonce])
                }
                9 if !own.is_empty() => {
                    let s = pick(rng, &own).expect("own");
                    sign(&calls::close_stream_by_owner(&vault(key, s.vault_id), s.stream_id), &[key], vec![nonce])
                }
                10 | 11 if !serving.is_empty() => {
                    let s = pick(rng, &serving).expect("serving");
                    let owner = keys.iter().find(|k| k.account_id() == s.owner).expect("a dev key owns it");
                    let call = calls::claim(&vault(owner, s.vault_id), s.stream_id, id, None, None);
                    sign(&call, &[key], vec![nonce])
                }
                _ => deposit(key, vaults[0].vault_id, 1_000, nonce),
            };
            chain.submit(tx).expect("admitted");
        }
        chain.produce_block(1_000, 3_000).expect("block");
    }
}

/// Every payment-streams event, recomputed from the stored blocks and the receipts of their
/// transactions, with its position (block id, ordinal in the block).
fn recomputed(chain: &Chain, storage: &dyn Storage) -> Vec<IndexedEvent> {
    let mut out = Vec::new();
    for height in 1..=chain.head_height() {
        let block = storage.block(height).expect("read").expect("block");
        let mut ordinal = 0_u32;
        for tx in &block.transactions {
            let receipt = storage.receipt(&tx.hash()).expect("read").expect("an included transaction has a receipt");
            assert!(receipt.error.is_none(), "blocks hold succeeded transactions only");
            for event in receipt.events {
                if let ReceiptEvent::PaymentStreams { event } = event {
                    out.push(IndexedEvent {
                        cursor: EventCursor { block_id: height, index: ordinal },
                        notification: paystreams_rpc::EventNotification {
                            block_id: height,
                            timestamp_ms: block.timestamp_ms(),
                            tx_hash: paystreams_rpc::HexHash(tx.hash()),
                            event,
                        },
                    });
                    ordinal += 1;
                }
            }
        }
    }
    out
}

/// All events matching `filter`, page by page of `limit`, checking each page's bounds.
fn read_all(chain: &Chain, filter: &EventFilter, limit: u32) -> Vec<IndexedEvent> {
    let mut out: Vec<IndexedEvent> = Vec::new();
    let mut after = None;
    loop {
        let page = chain.events(filter, after, limit).expect("page");
        assert!(page.events.len() <= limit as usize, "a page holds at most its limit");
        assert_eq!(page.through_block, chain.head_height(), "the page reflects the head");
        assert!(page.events.iter().all(|e| after.is_none_or(|a| e.cursor > a)), "strictly after the cursor");
        out.extend(page.events);
        match page.next {
            Some(next) => {
                assert!(after.is_none_or(|a| next > a), "pages move forward");
                after = Some(next);
            }
            None => return out,
        }
    }
}

/// The filters worth checking for this chain: none, each key as owner and as provider, each
/// vault and stream, and combinations.
fn filters(events: &[IndexedEvent]) -> Vec<EventFilter> {
    let mut out = vec![EventFilter::default()];
    for e in events {
        let (owner, vault_id) = e.notification.event.vault();
        out.push(EventFilter { owner: Some(owner), ..EventFilter::default() });
        out.push(EventFilter { owner: Some(owner), vault_id: Some(vault_id), ..EventFilter::default() });
        if let Some(stream) = e.notification.event.stream() {
            let s = Some(stream.stream_id);
            out.push(EventFilter { provider: Some(stream.provider), ..EventFilter::default() });
            out.push(EventFilter { owner: Some(owner), vault_id: Some(vault_id), stream_id: s, provider: None });
            out.push(EventFilter { owner: Some(owner), stream_id: s, ..EventFilter::default() });
            out.push(EventFilter { owner: Some(owner), provider: Some(stream.provider), ..EventFilter::default() });
        }
    }
    out.sort_by_key(|f| format!("{f:?}"));
    out.dedup();
    out
}

/// The index equals the recomputation under every filter, read in pages of several sizes.
fn check_index(chain: &Chain, storage: &dyn Storage) -> usize {
    let expected = recomputed(chain, storage);
    assert_eq!(read_all(chain, &EventFilter::default(), EVENTS_PAGE_MAX), expected, "all events");
    for (i, filter) in filters(&expected).iter().enumerate() {
        let matching: Vec<IndexedEvent> =
            expected.iter().filter(|e| filter.matches(&e.notification.event)).cloned().collect();
        let limit = [1, 3, 17, EVENTS_PAGE_MAX][i % 4];
        assert_eq!(read_all(chain, filter, limit), matching, "filter {filter:?}, pages of {limit}");
    }
    expected.len()
}

#[test]
fn index_equals_a_recomputation_from_the_blocks_in_memory_and_in_redb() {
    let memory: Arc<dyn Storage> = Arc::new(MemStorage::new());
    let chain = Chain::open(Arc::clone(&memory), &config()).expect("open");
    random_blocks(&chain, &mut Rng::from_env_or_clock("event index, memory"), 30);
    let count = check_index(&chain, memory.as_ref());
    let kinds: std::collections::BTreeSet<String> = read_all(&chain, &EventFilter::default(), EVENTS_PAGE_MAX)
        .iter()
        .map(|e| serde_json::to_value(&e.notification.event).expect("json")["type"].to_string())
        .collect();
    assert!(count > 30 && kinds.len() >= 5, "the flows produced varied events: {count} of {kinds:?}");

    let dir = tempfile::tempdir().expect("tempdir");
    let (storage, chain) = open_redb(&dir.path().join("chain.redb"));
    random_blocks(&chain, &mut Rng::from_env_or_clock("event index, redb"), 30);
    assert!(check_index(&chain, storage.as_ref()) > 30);
    assert_eq!(storage.events_indexed_through().expect("marker"), Some(chain.head_height()));
}

#[test]
fn blocks_beyond_the_indexers_queue_are_read_back_from_the_chain_file() {
    // No room for any event: every block with events is let go on its way to the indexer, which
    // catches up from the chain file instead; blocks without events still queue.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("chain.redb");
    let storage = Arc::new(RedbStorage::open(&path).expect("open storage").with_event_queue(0));
    let chain = Chain::open(Arc::clone(&storage) as Arc<dyn Storage>, &config()).expect("open chain");
    random_blocks(&chain, &mut Rng::from_env_or_clock("event index, no queue"), 20);
    let count = check_index(&chain, storage.as_ref());
    assert!(count > 20);
    chain.produce_block(1_000, 3_000).expect("an empty block");
    assert_eq!(check_index(&chain, storage.as_ref()), count);
    assert_eq!(storage.events_indexed_through().expect("marker"), Some(chain.head_height()));
}

#[test]
fn index_survives_a_restart_and_is_caught_up_for_a_data_dir_without_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("chain.redb");
    let (storage, chain) = open_redb(&path);
    let mut rng = Rng::from_env_or_clock("event index across restarts");
    random_blocks(&chain, &mut rng, 12);
    let before = read_all(&chain, &EventFilter::default(), 50);
    assert!(!before.is_empty());
    drop(chain);
    drop(storage);

    let (storage, chain) = open_redb(&path);
    assert_eq!(read_all(&chain, &EventFilter::default(), 50), before, "the same index after a restart");
    random_blocks(&chain, &mut rng, 4);
    check_index(&chain, storage.as_ref());
    let head = chain.head_height();
    let after_more = read_all(&chain, &EventFilter::default(), EVENTS_PAGE_MAX);
    drop(chain);
    drop(storage);

    // A data dir without the index file (copied without it, or written when the index's tables
    // and marker were in the chain file, as this builds): rebuilt from the blocks at open, and
    // the chain file's copy is dropped.
    std::fs::remove_file(RedbStorage::events_path(&path)).expect("remove the index file");
    let old_tables = ["events", "events_by_owner", "events_by_vault", "events_by_stream", "events_by_provider"];
    {
        let db = redb::Database::open(&path).expect("raw open");
        let txn = db.begin_write().expect("write");
        txn.open_table(TableDefinition::<&str, &[u8]>::new("meta"))
            .expect("meta")
            .insert("event_index", [9_u8; 44].as_slice())
            .expect("an old marker");
        for table in old_tables {
            if table == "events" {
                let mut events = txn.open_table(TableDefinition::<&[u8], &[u8]>::new(table)).expect("events");
                events.insert([0_u8; 12].as_slice(), [1_u8; 3].as_slice()).expect("an old entry");
            } else {
                txn.open_table(TableDefinition::<&[u8], ()>::new(table)).expect("table");
            }
        }
        txn.commit().expect("commit");
    }
    let storage = Arc::new(RedbStorage::open(&path).expect("open storage"));
    assert_eq!(storage.events_indexed_through().expect("marker"), None, "no index stored");
    let chain = Chain::open(Arc::clone(&storage) as Arc<dyn Storage>, &config()).expect("open chain");
    assert_eq!(storage.events_indexed_through().expect("marker"), Some(head), "caught up at open");
    assert_eq!(read_all(&chain, &EventFilter::default(), EVENTS_PAGE_MAX), after_more, "rebuilt from the blocks");
    random_blocks(&chain, &mut rng, 3);
    check_index(&chain, storage.as_ref());
    drop(chain);
    drop(storage);
    let db = redb::Database::open(&path).expect("raw open");
    let read = db.begin_read().expect("read");
    assert!(read.list_tables().expect("tables").all(|t| !t.name().starts_with("events")), "no index in the chain file");
    let meta = read.open_table(TableDefinition::<&str, &[u8]>::new("meta")).expect("meta");
    assert!(meta.get("event_index").expect("read").is_none(), "no index marker in the chain file");
}

/// Environment variable naming the data dir the child of the kill test writes to.
const KILL_CHILD_DIR: &str = "PAYSTREAMS_EVENT_INDEX_KILL_CHILD";

/// The writer the kill test kills: blocks with events, forever, reporting each committed
/// height on stdout. Runs in the child process the kill test starts (the same test, with
/// [`KILL_CHILD_DIR`] set).
fn write_blocks_until_killed(dir: &Path) -> ! {
    let (_storage, chain) = open_redb(&dir.join("chain.redb"));
    // What the previous writer had admitted when it was killed is durable and admitted again
    // at open: include it first, so the writer's transactions carry the next nonces.
    chain.produce_block(1_000, 3_000).expect("block of what was pending");
    let mut rng = Rng::new(chain.head_height());
    loop {
        random_blocks(&chain, &mut rng, 1);
        println!("committed {}", chain.head_height());
    }
}

#[test]
fn a_killed_node_finds_its_event_index_caught_up_at_open() {
    if let Some(dir) = std::env::var_os(KILL_CHILD_DIR) {
        write_blocks_until_killed(Path::new(&dir));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("chain.redb");
    for round in 0..3_u64 {
        let mut child = Command::new(std::env::current_exe().expect("test binary"))
            .args(["event_index::a_killed_node_finds_its_event_index_caught_up_at_open", "--exact", "--nocapture"])
            .env(KILL_CHILD_DIR, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the writer");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        // Kill it mid-stream, after a few more blocks each round.
        let wanted = 3 + round * 2;
        let mut seen = 0;
        let deadline = Instant::now() + Duration::from_secs(120);
        while seen < wanted {
            let line = lines.next().expect("the writer reports blocks").expect("line");
            if line.contains("committed ") {
                seen += 1;
            }
            assert!(Instant::now() < deadline, "the writer did not commit {wanted} blocks in time");
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");

        // The index is written behind the blocks: it may stop short of the head, never past
        // it, and the catch-up the chain runs at open fills the rest from the stored blocks.
        let storage = Arc::new(RedbStorage::open(&path).expect("reopen after the kill"));
        let head = storage.load_head().expect("head").expect("a head");
        let through = storage.events_indexed_through().expect("marker");
        assert!(through <= Some(head), "round {round}: the index names a stored block at most");
        let missing = head - through.unwrap_or(0);
        assert_eq!(storage.index_missing_events().expect("catch up"), missing, "round {round}: the gap is filled");
        assert_eq!(storage.events_indexed_through().expect("marker"), Some(head), "round {round}");
        let chain = Chain::open(Arc::clone(&storage) as Arc<dyn Storage>, &config()).expect("open chain");
        check_index(&chain, storage.as_ref());
    }
}

#[tokio::test]
async fn get_events_over_json_rpc_pages_and_refuses_what_it_cannot_answer() {
    let node = paystreams_node::start(NodeConfig::ephemeral_dev()).await.expect("node");
    let rpc = http(&node.rpc_url());
    let keys = node.dev_keys().to_vec();
    let (owner, provider) = (&keys[0], &keys[1]);
    let client = paystreams_client::Client::connect(&node.rpc_url()).expect("client");
    client.init_vault(owner, 0, None).await.expect("vault");
    client.deposit(owner, 0, 1_000_000).await.expect("deposit");
    for _ in 0..3 {
        let settings = paystreams_program::ExtensionSettings::default();
        client.create_stream(owner, 0, provider.account_id(), 5, 10_000, settings).await.expect("stream");
    }
    for _ in 0..4 {
        client.pause(owner, 0, 1).await.expect("pause");
        client.resume(owner, 0, 1).await.expect("resume");
    }

    let all = rpc.get_events(EventFilter::default(), None, None).await.expect("all");
    assert!(all.next.is_none(), "one page holds them all");
    assert_eq!(all.through_block, node.chain().head_height());
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = rpc.get_events(EventFilter::default(), after, Some(2)).await.expect("page");
        assert!(page.events.len() <= 2);
        paged.extend(page.events);
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(paged, all.events, "pages of 2 add up to the whole");
    let beyond = rpc.get_events(EventFilter::default(), None, Some(u32::MAX)).await.expect("clamped");
    assert_eq!(beyond.events, all.events, "a limit beyond the maximum reads the maximum");

    let history = client.stream_history(owner.account_id(), 0, 1).await.expect("history");
    let expected: Vec<IndexedEvent> = all
        .events
        .iter()
        .filter(|e| e.notification.event.stream().is_some_and(|s| s.vault_id == 0 && s.stream_id == 1))
        .cloned()
        .collect();
    assert_eq!(history, expected);
    assert!(history.len() >= 9, "created, then paused and resumed 4 times: {}", history.len());

    let no_owner = EventFilter { stream_id: Some(1), ..EventFilter::default() };
    let refused = rpc_error(rpc.get_events(no_owner, None, None).await);
    assert_eq!(refused.code(), -32602);
    assert!(refused.message().contains("owner"), "{}", refused.message());
    let no_owner = EventFilter { vault_id: Some(0), ..EventFilter::default() };
    assert_eq!(rpc_error(rpc.get_events(no_owner, None, None).await).code(), -32602);
    assert_eq!(rpc_error(rpc.get_events(EventFilter::default(), None, Some(0)).await).code(), -32602);
    node.shutdown().await;

    let lez_only = NodeConfig { rpc_methods: RpcMethods::Lez, ..NodeConfig::ephemeral_dev() };
    let node = paystreams_node::start(lez_only).await.expect("node");
    let refused = rpc_error(http(&node.rpc_url()).get_events(EventFilter::default(), None, None).await);
    assert_eq!(refused.code(), -32601, "ours, not served in LEZ-only mode");
    node.shutdown().await;
}
