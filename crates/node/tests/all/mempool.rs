//! Nothing vanishes: a transaction the node accepted is on disk before the submission is
//! answered, survives the node stopping before its block (reopened, it is pending again, in its
//! order, and the next block includes it), leaves the durable mempool with its block, and what a
//! restart finds stale is dropped. Memory storage keeps the same contract; a batch is one write.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use paystreams_lez_core::{Account, AccountId, crypto::SecretKey};
use paystreams_node::{
    Chain, ChainConfig, MemStorage, NodeConfig, RedbStorage, Storage, StorageError,
    block::{FailedTransaction, GenesisSpec, StoredBlock, StoredReceipt},
    chain::MAX_TXS_PER_BLOCK,
    index::StreamIndex,
    start, start_with_storage,
    storage::PendingTransaction,
};
use paystreams_rpc::{LezApiClient as _, PaystreamsApiClient as _, TxStatus};
use paystreams_runtime::{State, StateDiff, Transaction};

use crate::common::*;

const BALANCE: u128 = 1_000_000;

/// Opens the chain on `storage` (the same sequencer key every time, as a data dir keeps it).
fn open(storage: Arc<dyn Storage>, config: &ChainConfig) -> Chain {
    Chain::open(storage, config).expect("chain opens")
}

fn status(chain: &Chain, hash: &[u8; 32]) -> Option<TxStatus> {
    chain.receipt(hash).expect("read").map(|r| r.status)
}

/// Three transfers of one signer (consecutive nonces) and one of another, admitted, then the
/// chain is dropped before any block (nothing is written when a chain is dropped, as when the
/// process is killed); reopened on `reopen()`, they are pending again and the next block
/// includes all four in order, to the unit; reopened again, the mempool is empty.
fn survives_a_restart(reopen: &dyn Fn() -> Arc<dyn Storage>) {
    let config = ChainConfig::dev(3, BALANCE);
    let chain = open(reopen(), &config);
    let keys = chain.dev_keys().to_vec();
    let (a, b, c) = (&keys[0], &keys[1], &keys[2]);
    let txs = [
        transfer(a, b.account_id(), 10, 0),
        transfer(a, b.account_id(), 20, 1),
        transfer(b, c.account_id(), 5, 0),
        transfer(a, b.account_id(), 30, 2),
    ];
    let hashes: Vec<[u8; 32]> = txs.iter().map(|tx| chain.submit(tx.clone()).expect("admitted")).collect();
    assert!(hashes.iter().all(|h| status(&chain, h) == Some(TxStatus::Pending)));
    let height = chain.head_height();
    drop(chain);

    let chain = open(reopen(), &config);
    assert_eq!(chain.head_height(), height, "no block was produced meanwhile");
    assert_eq!(chain.mempool_len(), 4, "every admitted transaction is pending again");
    assert!(hashes.iter().all(|h| status(&chain, h) == Some(TxStatus::Pending)));
    // Re-admitted in their order: a's nonces 0, 1, 2 in any other order would leave gaps.
    let block = chain.produce_block(MAX_TXS_PER_BLOCK, 0).expect("block");
    assert_eq!(block.info.transactions.iter().map(|h| h.0).collect::<Vec<_>>(), hashes);
    assert!(hashes.iter().all(|h| status(&chain, h) == Some(TxStatus::Included)));
    assert_eq!(chain.account(&a.account_id()).balance, BALANCE - 60);
    assert_eq!(chain.account(&b.account_id()).balance, BALANCE + 60 - 5);
    assert_eq!(chain.account(&c.account_id()).balance, BALANCE + 5);
    assert_eq!(chain.native_supply(), 3 * BALANCE);
    drop(chain);

    // The block took them out of the durable mempool in its own write.
    let chain = open(reopen(), &config);
    assert_eq!(chain.mempool_len(), 0);
    assert!(hashes.iter().all(|h| status(&chain, h) == Some(TxStatus::Included)));
    assert_eq!(chain.account(&a.account_id()).nonce, 3);
}

#[test]
fn admitted_transactions_survive_a_restart_before_their_block_on_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(paystreams_node::DB_FILE);
    survives_a_restart(&|| Arc::new(RedbStorage::open(&path).expect("open")) as Arc<dyn Storage>);
}

#[test]
fn memory_storage_keeps_the_same_contract() {
    let storage: Arc<dyn Storage> = Arc::new(MemStorage::new());
    survives_a_restart(&|| Arc::clone(&storage));
}

#[test]
fn a_restart_drops_what_is_now_stale_and_readmits_the_rest_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(paystreams_node::DB_FILE);
    let config = ChainConfig::dev(2, BALANCE);
    let storage = Arc::new(RedbStorage::open(&path).expect("open"));
    let chain = open(Arc::clone(&storage) as Arc<dyn Storage>, &config);
    let (a, b) = (chain.dev_keys()[0].clone(), chain.dev_keys()[1].account_id());
    let included = transfer(&a, b, 1, 0);
    let included_hash = chain.submit(included.clone()).expect("admitted");
    chain.produce_block(MAX_TXS_PER_BLOCK, 0).expect("block");
    drop(chain);

    // Records as a node that did not keep the durable mempool in step could have left them
    // (a data dir written by an older node): the included transaction again (skipped: its
    // receipt is stored), another one with its spent nonce (stale), then nonces 1 and 2 in
    // admission order, then a gap.
    let stale = transfer(&a, b, 2, 0);
    let next = [transfer(&a, b, 3, 1), transfer(&a, b, 4, 2)];
    let gapped = transfer(&a, b, 5, 9);
    let records = [(100, &included), (101, &stale), (102, &next[0]), (103, &next[1]), (104, &gapped)];
    let entries: Vec<([u8; 32], PendingTransaction)> = records
        .iter()
        .map(|(seq, tx)| (tx.hash(), PendingTransaction { seq: *seq, transaction: (*tx).clone() }))
        .collect();
    storage.add_pending(&entries).expect("write");
    let stored: Vec<u64> = storage.pending_transactions().expect("read").iter().map(|p| p.seq).collect();
    assert_eq!(stored, [101, 102, 103, 104], "a transaction with a receipt is not written");

    let chain = open(Arc::clone(&storage) as Arc<dyn Storage>, &config);
    assert_eq!(chain.mempool_len(), 2, "nonces 1 and 2 pending again, the stale one and the gap dropped");
    assert_eq!(status(&chain, &included_hash), Some(TxStatus::Included));
    assert_eq!(status(&chain, &stale.hash()), None);
    assert_eq!(status(&chain, &gapped.hash()), None);
    let kept: Vec<u64> = storage.pending_transactions().expect("read").iter().map(|p| p.seq).collect();
    assert_eq!(kept, [102, 103], "dropped records are removed from disk");
    // New admissions continue after the restored ones.
    chain.submit(transfer(&a, b, 6, 3)).expect("admitted after the restored ones");
    let seqs: Vec<u64> = storage.pending_transactions().expect("read").iter().map(|p| p.seq).collect();
    assert_eq!(seqs, [102, 103, 105], "numbering resumes after the highest stored number");
    chain.produce_block(MAX_TXS_PER_BLOCK, 0).expect("block");
    assert_eq!(chain.account(&a.account_id()).balance, BALANCE - 1 - 3 - 4 - 6);
    assert_eq!(chain.account(&b).balance, BALANCE + 14);
    assert!(storage.pending_transactions().expect("read").is_empty());
}

/// Memory storage that counts the durable mempool's writes; a test can hold the next write
/// until it lets it go, and make writes fail.
#[derive(Default)]
struct CountingStorage {
    inner: MemStorage,
    writes: AtomicUsize,
    written: Mutex<Vec<usize>>,
    /// While set, a mempool write waits (after counting itself) until it is cleared.
    hold: Mutex<bool>,
    released: std::sync::Condvar,
    /// Mempool writes fail with a full disk while set.
    fail: std::sync::atomic::AtomicBool,
}

impl CountingStorage {
    fn hold_writes(&self, hold: bool) {
        *self.hold.lock().expect("lock") = hold;
        self.released.notify_all();
    }
}

impl Storage for CountingStorage {
    fn genesis(&self) -> Result<Option<GenesisSpec>, StorageError> {
        self.inner.genesis()
    }

    fn load_head(&self) -> Result<Option<u64>, StorageError> {
        self.inner.load_head()
    }

    fn init(&self, genesis: &GenesisSpec, block: &StoredBlock, state: &State) -> Result<(), StorageError> {
        self.inner.init(genesis, block, state)
    }

    fn commit_block(
        &self,
        block: &StoredBlock,
        receipts: &[StoredReceipt],
        failed: &[FailedTransaction],
        diff: &StateDiff,
        added: &StreamIndex,
    ) -> Result<(), StorageError> {
        self.inner.commit_block(block, receipts, failed, diff, added)
    }

    fn failed_transaction(&self, block_id: u64, index: u32) -> Result<Option<FailedTransaction>, StorageError> {
        self.inner.failed_transaction(block_id, index)
    }

    fn failed_len(&self) -> Result<u64, StorageError> {
        self.inner.failed_len()
    }

    fn block(&self, height: u64) -> Result<Option<StoredBlock>, StorageError> {
        self.inner.block(height)
    }

    fn receipt(&self, tx_hash: &[u8; 32]) -> Result<Option<StoredReceipt>, StorageError> {
        self.inner.receipt(tx_hash)
    }

    fn account(&self, id: &AccountId) -> Result<Option<Account>, StorageError> {
        self.inner.account(id)
    }

    fn load_state(&self) -> Result<State, StorageError> {
        self.inner.load_state()
    }

    fn add_pending(&self, entries: &[([u8; 32], PendingTransaction)]) -> Result<(), StorageError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.written.lock().expect("lock").push(entries.len());
        let held = self.hold.lock().expect("lock");
        drop(self.released.wait_while(held, |held| *held).expect("lock"));
        if self.fail.load(Ordering::SeqCst) {
            let io = std::io::Error::new(std::io::ErrorKind::StorageFull, "No space left on device");
            return Err(StorageError::Database(redb::Error::Io(io)));
        }
        self.inner.add_pending(entries)
    }

    fn remove_pending(&self, hashes: &[[u8; 32]]) -> Result<(), StorageError> {
        self.inner.remove_pending(hashes)
    }

    fn pending_transactions(&self) -> Result<Vec<PendingTransaction>, StorageError> {
        self.inner.pending_transactions()
    }
}

/// A node whose timed blocks are an hour apart: transactions stay pending.
fn held(data_dir: Option<std::path::PathBuf>) -> NodeConfig {
    NodeConfig {
        rpc_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        block_time: Duration::from_secs(3600),
        dev: true,
        ..NodeConfig::new(data_dir)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_made_durable_in_one_write_before_it_is_answered() {
    let storage = Arc::new(CountingStorage::default());
    let node = start_with_storage(held(None), Arc::clone(&storage) as Arc<dyn Storage>).await.expect("start");
    let client = http(&node.rpc_url());
    let (a, b) = (node.dev_keys()[0].clone(), node.dev_keys()[1].account_id());
    let batch: Vec<Transaction> = (0..40).map(|n| transfer(&a, b, 1, n)).collect();
    let outcomes = client.send_transactions(batch.iter().map(b64).collect()).await.expect("batch");
    assert!(outcomes.iter().all(|o| o.hash.is_some()), "{outcomes:?}");
    // Answered, hence on disk: one write of all forty.
    assert_eq!(*storage.written.lock().expect("lock"), [40]);
    assert_eq!(storage.pending_transactions().expect("read").len(), 40);
    // One at a time: one write each (nothing else was waiting to be written with them).
    for n in 40..43 {
        client.send_transaction(b64(&transfer(&a, b, 1, n))).await.expect("admitted");
    }
    assert_eq!(storage.writes.load(Ordering::SeqCst), 4);
    assert_eq!(storage.pending_transactions().expect("read").len(), 43);
    client.dev_mine(Some(1)).await.expect("mine");
    assert!(storage.pending_transactions().expect("read").is_empty(), "the block removed them");
    assert_eq!(node.chain().account(&a.account_id()).balance, paystreams_node::DEFAULT_DEV_BALANCE - 43);
    node.shutdown().await;
}

/// Waits (without sleeping) until `done` holds.
async fn until(done: impl Fn() -> bool) {
    while !done() {
        tokio::task::yield_now().await;
    }
}

/// Sends one transfer from each of `keys` at nonce `nonce`, concurrently; the calls' results.
fn send_all(
    url: &str,
    keys: &[SecretKey],
    to: AccountId,
    nonce: u128,
) -> Vec<tokio::task::JoinHandle<Result<paystreams_rpc::HexHash, jsonrpsee::core::ClientError>>> {
    keys.iter()
        .map(|key| {
            let (client, tx) = (http(url), b64(&transfer(key, to, 1, nonce)));
            tokio::spawn(async move { client.send_transaction(tx).await })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_senders_share_one_write_and_each_learns_its_outcome() {
    let storage = Arc::new(CountingStorage::default());
    let node = start_with_storage(held(None), Arc::clone(&storage) as Arc<dyn Storage>).await.expect("start");
    let url = node.rpc_url();
    let keys = node.dev_keys()[..9].to_vec();
    let to = node.dev_keys()[9].account_id();
    let chain = node.chain();

    // One sender's write is under way (held on the disk); eight others are admitted meanwhile.
    storage.hold_writes(true);
    let first = send_all(&url, &keys[..1], to, 0);
    until(|| storage.writes.load(Ordering::SeqCst) == 1).await;
    let others = send_all(&url, &keys[1..], to, 0);
    until(|| chain.mempool_len() == 9).await;
    assert!(others.iter().chain(&first).all(|call| !call.is_finished()), "no answer before its write");
    storage.hold_writes(false);
    for call in first.into_iter().chain(others) {
        call.await.expect("task").expect("admitted");
    }
    // The first write carried the first sender's alone; the next carried all eight others.
    assert_eq!(*storage.written.lock().expect("lock"), [1, 8]);
    assert_eq!(storage.pending_transactions().expect("read").len(), 9);

    // The same with a full disk: every sender that write carried gets the error, and nothing
    // of theirs stays pending.
    storage.fail.store(true, Ordering::SeqCst);
    storage.hold_writes(true);
    let first = send_all(&url, &keys[..1], to, 1);
    until(|| storage.writes.load(Ordering::SeqCst) == 3).await;
    let others = send_all(&url, &keys[1..], to, 1);
    until(|| chain.mempool_len() == 18).await;
    storage.hold_writes(false);
    for call in first.into_iter().chain(others) {
        let message = call.await.expect("task").expect_err("the write failed").to_string();
        assert!(message.contains("could not be written to disk"), "{message}");
    }
    assert_eq!(*storage.written.lock().expect("lock"), [1, 8, 1, 8]);
    assert_eq!(chain.mempool_len(), 9, "the refused transactions are not pending");

    // Space again: the same transactions are accepted, and the block includes all eighteen.
    storage.fail.store(false, Ordering::SeqCst);
    for call in send_all(&url, &keys, to, 1) {
        call.await.expect("task").expect("admitted");
    }
    http(&url).dev_mine(Some(1)).await.expect("mine");
    assert_eq!(chain.mempool_len(), 0);
    assert_eq!(chain.account(&to).balance, paystreams_node::DEFAULT_DEV_BALANCE + 18);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_with_automine_mines_what_it_had_accepted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("chain");
    let node = start(held(Some(data.clone()))).await.expect("start");
    let client = http(&node.rpc_url());
    let (a, b) = (node.dev_keys()[0].clone(), node.dev_keys()[1].account_id());
    let (a_start, b_start) = (node.chain().account(&a.account_id()).balance, node.chain().account(&b).balance);
    let hash = client.send_transaction(b64(&transfer(&a, b, 7, 0))).await.expect("admitted");
    let receipt = client.get_transaction_receipt(hash).await.expect("call").expect("known");
    assert_eq!(receipt.status, TxStatus::Pending);
    // Stopping serves nothing more and produces no block.
    node.shutdown().await;

    let node = start(NodeConfig { automine: true, ..held(Some(data)) }).await.expect("restart");
    let client = http(&node.rpc_url());
    let receipt = client.get_transaction_receipt(hash).await.expect("call").expect("known after the restart");
    assert_eq!(receipt.status, TxStatus::Included, "{receipt:?}");
    assert_eq!(node.chain().account(&a.account_id()).balance, a_start - 7);
    assert_eq!(node.chain().account(&b).balance, b_start + 7);
    assert_eq!(node.chain().mempool_len(), 0);
    node.shutdown().await;
}

#[test]
fn a_record_that_does_not_verify_is_never_restored() {
    // A record whose signature does not verify (a damaged or forged file) is dropped on reopen.
    let storage = Arc::new(MemStorage::new());
    let config = ChainConfig::dev(2, BALANCE);
    let chain = open(Arc::clone(&storage) as Arc<dyn Storage>, &config);
    let (a, b) = (chain.dev_keys()[0].clone(), chain.dev_keys()[1].account_id());
    drop(chain);
    let mut forged = transfer(&a, b, 1, 0);
    let other = transfer(&SecretKey::generate(), b, 1, 0);
    forged.witness_set = other.witness_set;
    storage.add_pending(&[(forged.hash(), PendingTransaction { seq: 0, transaction: forged.clone() })]).expect("write");
    let chain = open(Arc::clone(&storage) as Arc<dyn Storage>, &config);
    assert_eq!(chain.mempool_len(), 0);
    assert!(storage.pending_transactions().expect("read").is_empty());
    assert_eq!(chain.account(&a.account_id()).balance, BALANCE);
}

/// A data dir as a format-4 node (`keyed_by_hash`: records keyed by hash in the chain file) or
/// a format-5 one (keyed by admission number in the chain file) left it, holding three accepted
/// transactions: opened by this node, every one is pending again, in order, and is included.
fn an_older_data_dir_is_upgraded_keeping_its_accepted_transactions(version: u32) {
    use redb::{ReadableDatabase as _, ReadableTable as _, TableDefinition};
    const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");
    const BY_SEQ: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("pending_by_seq");
    const BY_HASH: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("pending");

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(paystreams_node::DB_FILE);
    let pool = RedbStorage::mempool_path(&path);
    let config = ChainConfig::dev(2, BALANCE);
    let chain = open(Arc::new(RedbStorage::open(&path).expect("open")), &config);
    let (a, b) = (chain.dev_keys()[0].clone(), chain.dev_keys()[1].account_id());
    let txs = [transfer(&a, b, 7, 0), transfer(&a, b, 11, 1), transfer(&a, b, 13, 2)];
    let hashes: Vec<[u8; 32]> = txs.iter().map(|tx| chain.submit(tx.clone()).expect("admitted")).collect();
    drop(chain);

    // Take the records out of the mempool file and rewrite the chain file as the older format
    // kept them.
    let records: Vec<(u64, Vec<u8>)> = {
        let db = redb::Database::open(&pool).expect("raw open");
        let txn = db.begin_read().expect("read");
        let table = txn.open_table(BY_SEQ).expect("by seq");
        table
            .iter()
            .expect("iter")
            .map(|entry| entry.map(|(k, v)| (k.value(), v.value().to_vec())).expect("entry"))
            .collect()
    };
    assert_eq!(records.len(), 3, "the three accepted transactions are on disk");
    std::fs::remove_file(&pool).expect("no mempool file in older formats");
    {
        let db = redb::Database::open(&path).expect("raw open");
        let txn = db.begin_write().expect("write");
        {
            let mut meta = txn.open_table(META).expect("meta");
            meta.insert("format", borsh::to_vec(&version).expect("encode").as_slice()).expect("format");
            if version == 4 {
                meta.remove("pending_below").expect("remove");
                let mut by_hash = txn.open_table(BY_HASH).expect("by hash");
                for (_, record) in &records {
                    let (hash, pending) = record.split_at(32);
                    by_hash.insert(hash, pending).expect("insert");
                }
            } else {
                let mut by_seq = txn.open_table(BY_SEQ).expect("by seq");
                for (seq, record) in &records {
                    by_seq.insert(*seq, record.as_slice()).expect("insert");
                }
            }
        }
        txn.commit().expect("commit");
    }

    let storage = Arc::new(RedbStorage::open(&path).expect("an older data dir opens"));
    let seqs: Vec<u64> = storage.pending_transactions().expect("read").iter().map(|p| p.seq).collect();
    assert_eq!(seqs.len(), 3);
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "admission order kept: {seqs:?}");
    let chain = open(Arc::clone(&storage) as Arc<dyn Storage>, &config);
    assert_eq!(chain.mempool_len(), 3, "every accepted transaction is pending again");
    assert!(hashes.iter().all(|h| status(&chain, h) == Some(TxStatus::Pending)));
    chain.produce_block(MAX_TXS_PER_BLOCK, 0).expect("block");
    assert!(hashes.iter().all(|h| status(&chain, h) == Some(TxStatus::Included)));
    assert_eq!(chain.account(&a.account_id()).balance, BALANCE - 31);
    assert_eq!(chain.account(&b).balance, BALANCE + 31);
    assert!(storage.pending_transactions().expect("read").is_empty(), "the block took them");
    drop(chain);
    drop(storage);

    let db = redb::Database::open(&path).expect("raw open");
    let txn = db.begin_read().expect("read");
    let format = txn.open_table(META).expect("meta").get("format").expect("get").map(|v| v.value().to_vec());
    assert_eq!(format, Some(borsh::to_vec(&paystreams_node::FORMAT_VERSION).expect("encode")), "recorded as current");
    assert!(txn.open_table(BY_HASH).is_err(), "the format-4 table is gone");
    assert!(txn.open_table(BY_SEQ).is_err(), "the format-5 table is gone from the chain file");
}

#[test]
fn a_format_4_data_dir_is_upgraded_keeping_its_accepted_transactions() {
    an_older_data_dir_is_upgraded_keeping_its_accepted_transactions(4);
}

#[test]
fn a_format_5_data_dir_is_upgraded_keeping_its_accepted_transactions() {
    an_older_data_dir_is_upgraded_keeping_its_accepted_transactions(5);
}

/// A mempool file left beside a new chain file (its chain deleted) is not replayed on the new
/// chain.
#[test]
fn a_mempool_file_without_its_chain_is_not_replayed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(paystreams_node::DB_FILE);
    let config = ChainConfig::dev(2, BALANCE);
    let chain = open(Arc::new(RedbStorage::open(&path).expect("open")), &config);
    let (a, b) = (chain.dev_keys()[0].clone(), chain.dev_keys()[1].account_id());
    chain.submit(transfer(&a, b, 7, 0)).expect("admitted");
    drop(chain);
    std::fs::remove_file(&path).expect("the chain file deleted");
    let storage = RedbStorage::open(&path).expect("a new chain");
    assert!(storage.pending_transactions().expect("read").is_empty());
}
