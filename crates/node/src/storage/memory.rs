//! Storage in memory: gone when the node stops. Keeps no stream index (the chain rebuilds it).

use std::{
    collections::BTreeMap,
    sync::{Mutex, MutexGuard, PoisonError},
};

use paystreams_lez_core::{Account, AccountId};
use paystreams_runtime::{State, StateDiff};

use super::{Storage, StorageError};
use crate::{
    block::{GenesisSpec, StoredBlock, StoredReceipt},
    index::StreamIndex,
};

#[derive(Default)]
struct MemInner {
    genesis: Option<GenesisSpec>,
    head: Option<u64>,
    blocks: BTreeMap<u64, StoredBlock>,
    receipts: BTreeMap<[u8; 32], StoredReceipt>,
    state: State,
}

/// Storage in memory: gone when the node stops.
#[derive(Default)]
pub struct MemStorage {
    inner: Mutex<MemInner>,
}

impl MemStorage {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, MemInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Storage for MemStorage {
    fn genesis(&self) -> Result<Option<GenesisSpec>, StorageError> {
        Ok(self.lock().genesis.clone())
    }

    fn load_head(&self) -> Result<Option<u64>, StorageError> {
        Ok(self.lock().head)
    }

    fn init(&self, genesis: &GenesisSpec, block: &StoredBlock, state: &State) -> Result<(), StorageError> {
        let mut inner = self.lock();
        inner.genesis = Some(genesis.clone());
        inner.blocks.insert(block.height(), block.clone());
        inner.head = Some(block.height());
        inner.state = state.clone();
        Ok(())
    }

    fn commit_block(
        &self,
        block: &StoredBlock,
        receipts: &[StoredReceipt],
        diff: &StateDiff,
        _added: &StreamIndex,
    ) -> Result<(), StorageError> {
        let mut inner = self.lock();
        inner.blocks.insert(block.height(), block.clone());
        for receipt in receipts {
            inner.receipts.insert(receipt.tx_hash, receipt.clone());
        }
        inner.state.apply_diff(diff);
        inner.head = Some(block.height());
        Ok(())
    }

    fn block(&self, height: u64) -> Result<Option<StoredBlock>, StorageError> {
        Ok(self.lock().blocks.get(&height).cloned())
    }

    fn receipt(&self, tx_hash: &[u8; 32]) -> Result<Option<StoredReceipt>, StorageError> {
        Ok(self.lock().receipts.get(tx_hash).cloned())
    }

    fn account(&self, id: &AccountId) -> Result<Option<Account>, StorageError> {
        Ok(self.lock().state.get(id).cloned())
    }

    fn load_state(&self) -> Result<State, StorageError> {
        Ok(self.lock().state.clone())
    }
}
