//! Disk full, simulated through the storage trait: while block commits fail the node refuses
//! to include transactions (the sender gets a storage error, state does not move, nothing is
//! half-written), and when space returns it recovers: the refused transaction is included from
//! the mempool, new ones follow, and supply is conserved.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use paystreams_client::Client;
use paystreams_lez_core::{Account, AccountId};
use paystreams_node::{
    MemStorage, NodeConfig, Storage, StorageError,
    block::{FailedTransaction, GenesisSpec, StoredBlock, StoredReceipt},
    index::StreamIndex,
};
use paystreams_runtime::{State, StateDiff};

/// Delegates to memory storage; block commits fail with ENOSPC while `full` is set.
struct FillableDisk {
    inner: MemStorage,
    full: AtomicBool,
    refused: std::sync::atomic::AtomicU32,
}

impl Storage for FillableDisk {
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
        if self.full.load(Ordering::SeqCst) {
            self.refused.fetch_add(1, Ordering::SeqCst);
            let io = std::io::Error::new(std::io::ErrorKind::StorageFull, "No space left on device");
            return Err(StorageError::Database(redb::Error::Io(io)));
        }
        self.inner.commit_block(block, receipts, failed, diff, added)
    }

    fn block(&self, height: u64) -> Result<Option<StoredBlock>, StorageError> {
        self.inner.block(height)
    }

    fn failed_transaction(&self, block_id: u64, index: u32) -> Result<Option<FailedTransaction>, StorageError> {
        self.inner.failed_transaction(block_id, index)
    }

    fn failed_len(&self) -> Result<u64, StorageError> {
        self.inner.failed_len()
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_refuses_writes_while_the_disk_is_full_and_recovers() {
    let disk = Arc::new(FillableDisk { inner: MemStorage::new(), full: AtomicBool::new(false), refused: 0.into() });
    let node = paystreams_node::start_with_storage(NodeConfig::ephemeral_dev(), Arc::clone(&disk) as Arc<dyn Storage>)
        .await
        .expect("node");
    let client = Client::connect(&node.rpc_url()).expect("client");
    let (a, b) = (node.dev_keys()[0].clone(), node.dev_keys()[1].clone());
    let supply =
        client.balance(a.account_id()).await.expect("balance") + client.balance(b.account_id()).await.expect("balance");
    client.transfer(&a, b.account_id(), 100, None).await.expect("transfer while healthy");
    let height = client.last_block_id().await.expect("height");

    disk.full.store(true, Ordering::SeqCst);
    let refused = client.transfer(&a, b.account_id(), 7, None).await;
    let message = refused.expect_err("no block can be committed").to_string();
    assert!(message.to_lowercase().contains("space") || message.contains("storage"), "{message}");
    assert!(disk.refused.load(Ordering::SeqCst) > 0);
    // Nothing moved: the head, and both balances.
    assert_eq!(client.last_block_id().await.expect("height"), height);
    let b_before = client.balance(b.account_id()).await.expect("balance");
    assert_eq!(client.balance(a.account_id()).await.expect("balance") + b_before, supply);

    disk.full.store(false, Ordering::SeqCst);
    // The refused transfer was kept in the mempool: the next block includes it.
    client.mine(Some(1)).await.expect("mine after recovery");
    assert_eq!(
        client.balance(b.account_id()).await.expect("balance"),
        b_before + 7,
        "the refused transfer is included"
    );
    client.transfer(&a, b.account_id(), 5, None).await.expect("transfer after recovery");
    let b_after = client.balance(b.account_id()).await.expect("balance");
    assert_eq!(b_after, b_before + 7 + 5);
    assert!(client.last_block_id().await.expect("height") >= height + 2);
    assert_eq!(client.balance(a.account_id()).await.expect("balance") + b_after, supply);
    node.shutdown().await;
}
