//! Storage in memory: gone when the node stops. Keeps no stream index (the chain rebuilds it);
//! keeps the durable mempool's contract (pending transactions until their block), so a chain
//! reopened on the same `MemStorage` finds them; keeps the event index, in the layout of
//! [`crate::index::event_keys`].

use std::{
    collections::BTreeMap,
    sync::{Mutex, MutexGuard, PoisonError},
};

use paystreams_lez_core::{Account, AccountId};
use paystreams_rpc::{EventCursor, EventFilter, EventPage};
use paystreams_runtime::{State, StateDiff};

use super::{FAILED_RETAINED, PendingTransaction, Storage, StorageError};
use crate::{
    block::{FailedTransaction, GenesisSpec, StoredBlock, StoredReceipt},
    index::{self, EventLookup, EventSource, StoredEvent, StreamIndex},
};

#[derive(Default)]
struct MemInner {
    genesis: Option<GenesisSpec>,
    head: Option<u64>,
    blocks: BTreeMap<u64, StoredBlock>,
    receipts: BTreeMap<[u8; 32], StoredReceipt>,
    failed: BTreeMap<(u64, u32), FailedTransaction>,
    state: State,
    pending: BTreeMap<[u8; 32], PendingTransaction>,
    events: MemEvents,
}

/// The event index in memory: events by cursor, and each secondary lookup's keys.
#[derive(Default)]
struct MemEvents {
    events: BTreeMap<EventCursor, StoredEvent>,
    keys: BTreeMap<EventLookup, std::collections::BTreeSet<Vec<u8>>>,
    /// The last block indexed.
    through: u64,
}

impl MemEvents {
    fn add_block(&mut self, block: &StoredBlock, receipts: &[StoredReceipt]) {
        for event in index::block_events(block.height(), block.timestamp_ms(), receipts) {
            for (lookup, key) in index::event_keys(event.cursor, &event.notification.event) {
                self.keys.entry(lookup).or_default().insert(key);
            }
            self.events.insert(event.cursor, StoredEvent::of(&event));
        }
        self.through = block.height();
    }
}

impl EventSource for MemEvents {
    type Error = StorageError;

    fn keys(
        &self,
        lookup: EventLookup,
        prefix: &[u8],
        start: &[u8],
        visit: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<(), StorageError> {
        if lookup == EventLookup::All {
            let Some(start) = index::cursor_of_key(start) else { return Ok(()) };
            for cursor in self.events.range(start..).map(|(cursor, _)| cursor) {
                if !visit(&index::cursor_key(*cursor)) {
                    break;
                }
            }
        } else if let Some(keys) = self.keys.get(&lookup) {
            for key in keys.range(start.to_vec()..) {
                if !key.starts_with(prefix) || !visit(key) {
                    break;
                }
            }
        }
        Ok(())
    }

    fn event(&self, cursor: EventCursor) -> Result<Option<StoredEvent>, StorageError> {
        Ok(self.events.get(&cursor).cloned())
    }
}

/// Storage in memory: gone when the node stops.
pub struct MemStorage {
    inner: Mutex<MemInner>,
    failed_retained: u64,
}

impl Default for MemStorage {
    fn default() -> Self {
        Self { inner: Mutex::default(), failed_retained: FAILED_RETAINED }
    }
}

impl MemStorage {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps at most `bound` failed transactions instead of [`FAILED_RETAINED`].
    #[must_use]
    pub fn with_failed_retained(mut self, bound: u64) -> Self {
        self.failed_retained = bound;
        self
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
        inner.events.add_block(block, &[]);
        Ok(())
    }

    fn commit_block(
        &self,
        block: &StoredBlock,
        receipts: &[StoredReceipt],
        failed: &[FailedTransaction],
        diff: &StateDiff,
        _added: &StreamIndex,
    ) -> Result<(), StorageError> {
        let mut inner = self.lock();
        inner.blocks.insert(block.height(), block.clone());
        for receipt in receipts {
            inner.receipts.insert(receipt.tx_hash, receipt.clone());
            inner.pending.remove(&receipt.tx_hash);
        }
        for entry in failed {
            inner.failed.insert((entry.receipt.block_id, entry.receipt.index), entry.clone());
        }
        while u64::try_from(inner.failed.len()).unwrap_or(u64::MAX) > self.failed_retained {
            let Some((_, oldest)) = inner.failed.pop_first() else { break };
            inner.receipts.remove(&oldest.receipt.tx_hash);
        }
        inner.state.apply_diff(diff);
        inner.head = Some(block.height());
        inner.events.add_block(block, receipts);
        Ok(())
    }

    fn add_pending(&self, entries: &[([u8; 32], PendingTransaction)]) -> Result<(), StorageError> {
        let mut inner = self.lock();
        for (hash, entry) in entries {
            if !inner.receipts.contains_key(hash) {
                inner.pending.insert(*hash, entry.clone());
            }
        }
        Ok(())
    }

    fn remove_pending(&self, hashes: &[[u8; 32]]) -> Result<(), StorageError> {
        let mut inner = self.lock();
        for hash in hashes {
            inner.pending.remove(hash);
        }
        Ok(())
    }

    fn pending_transactions(&self) -> Result<Vec<PendingTransaction>, StorageError> {
        let mut entries: Vec<PendingTransaction> = self.lock().pending.values().cloned().collect();
        entries.sort_by_key(|entry| entry.seq);
        Ok(entries)
    }

    fn events(&self, filter: &EventFilter, after: Option<EventCursor>, limit: u32) -> Result<EventPage, StorageError> {
        let inner = self.lock();
        index::read_page(&inner.events, filter, after, limit, inner.events.through)
    }

    fn events_indexed_through(&self) -> Result<Option<u64>, StorageError> {
        let inner = self.lock();
        Ok(inner.head.map(|_| inner.events.through))
    }

    fn block(&self, height: u64) -> Result<Option<StoredBlock>, StorageError> {
        Ok(self.lock().blocks.get(&height).cloned())
    }

    fn receipt(&self, tx_hash: &[u8; 32]) -> Result<Option<StoredReceipt>, StorageError> {
        Ok(self.lock().receipts.get(tx_hash).cloned())
    }

    fn failed_transaction(&self, block_id: u64, index: u32) -> Result<Option<FailedTransaction>, StorageError> {
        Ok(self.lock().failed.get(&(block_id, index)).cloned())
    }

    fn failed_len(&self) -> Result<u64, StorageError> {
        Ok(u64::try_from(self.lock().failed.len()).unwrap_or(u64::MAX))
    }

    fn account(&self, id: &AccountId) -> Result<Option<Account>, StorageError> {
        Ok(self.lock().state.get(id).cloned())
    }

    fn load_state(&self) -> Result<State, StorageError> {
        Ok(self.lock().state.clone())
    }
}
