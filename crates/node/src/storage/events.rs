//! The stored event index: one table of events by cursor, one key-only table per secondary
//! lookup (owner, vault, stream, provider; see [`crate::index::event_keys`]), and a marker in
//! `meta` naming the last block indexed. A block's entries are written in the block's own
//! transaction when the index was current at its parent; a data dir without the tables (or with
//! a stale marker) is brought up to its head from the stored blocks and their receipts by
//! [`catch_up`], which the chain runs at open.

use borsh::{BorshDeserialize, BorshSerialize};
use paystreams_lez_core::lez_block::GENESIS_BLOCK_ID;
use paystreams_rpc::{EventCursor, EventFilter, EventPage};
use redb::{ReadableDatabase as _, ReadableTable as _, TableDefinition};

use super::{
    StorageError, decode,
    redb::{BLOCKS, META, RECEIPTS, begin_write},
};
use crate::{
    block::{StoredBlock, StoredReceipt, encode},
    index::{self, EventLookup, EventSource, StoredEvent},
};

/// Cursor (block id ‖ index, big-endian) → borsh [`StoredEvent`].
pub(super) const EVENTS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("events");
/// Owner ‖ cursor → nothing.
pub(super) const EVENTS_BY_OWNER: TableDefinition<'_, &[u8], ()> = TableDefinition::new("events_by_owner");
/// Owner ‖ vault id ‖ cursor → nothing.
pub(super) const EVENTS_BY_VAULT: TableDefinition<'_, &[u8], ()> = TableDefinition::new("events_by_vault");
/// Owner ‖ vault id ‖ stream id ‖ cursor → nothing.
pub(super) const EVENTS_BY_STREAM: TableDefinition<'_, &[u8], ()> = TableDefinition::new("events_by_stream");
/// Provider ‖ cursor → nothing.
pub(super) const EVENTS_BY_PROVIDER: TableDefinition<'_, &[u8], ()> = TableDefinition::new("events_by_provider");

/// `meta` key of the [`EventMarker`].
const MARKER_KEY: &str = "event_index";
/// Format of the stored event index; a marker of another version is stale (rebuilt).
const EVENT_INDEX_VERSION: u32 = 1;
/// Blocks indexed per write transaction while catching up.
const CATCH_UP_BLOCKS: u64 = 1_000;

/// The last block the stored event index holds.
#[derive(Clone, Copy, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
struct EventMarker {
    version: u32,
    height: u64,
    block_hash: [u8; 32],
}

impl EventMarker {
    fn of(block: &StoredBlock) -> Self {
        Self { version: EVENT_INDEX_VERSION, height: block.height(), block_hash: block.hash() }
    }
}

fn secondary(lookup: EventLookup) -> Option<TableDefinition<'static, &'static [u8], ()>> {
    match lookup {
        EventLookup::All => None,
        EventLookup::Owner => Some(EVENTS_BY_OWNER),
        EventLookup::Vault => Some(EVENTS_BY_VAULT),
        EventLookup::Stream => Some(EVENTS_BY_STREAM),
        EventLookup::Provider => Some(EVENTS_BY_PROVIDER),
    }
}

/// Creates the tables (opening a data dir of this format written before the event index).
pub(super) fn create_tables(txn: &redb::WriteTransaction) -> Result<(), StorageError> {
    txn.open_table(EVENTS)?;
    for lookup in EventLookup::SECONDARY {
        if let Some(table) = secondary(lookup) {
            txn.open_table(table)?;
        }
    }
    Ok(())
}

fn read_marker(
    meta: &impl redb::ReadableTable<&'static str, &'static [u8]>,
) -> Result<Option<EventMarker>, StorageError> {
    // An undecodable marker (another version) is a stale index, not a corrupt database.
    Ok(meta
        .get(MARKER_KEY)?
        .and_then(|v| EventMarker::try_from_slice(v.value()).ok())
        .filter(|m| m.version == EVENT_INDEX_VERSION))
}

/// Writes the entries of `block` and moves the marker to it.
fn write_block_events(
    txn: &redb::WriteTransaction,
    block: &StoredBlock,
    receipts: &[StoredReceipt],
) -> Result<(), StorageError> {
    let events = index::block_events(block.height(), block.timestamp_ms(), receipts);
    if !events.is_empty() {
        let mut table = txn.open_table(EVENTS)?;
        let mut owner = txn.open_table(EVENTS_BY_OWNER)?;
        let mut vault = txn.open_table(EVENTS_BY_VAULT)?;
        let mut stream = txn.open_table(EVENTS_BY_STREAM)?;
        let mut provider = txn.open_table(EVENTS_BY_PROVIDER)?;
        for event in &events {
            table.insert(index::cursor_key(event.cursor).as_slice(), encode(&StoredEvent::of(event)).as_slice())?;
            for (lookup, key) in index::event_keys(event.cursor, &event.notification.event) {
                let target = match lookup {
                    EventLookup::All => continue,
                    EventLookup::Owner => &mut owner,
                    EventLookup::Vault => &mut vault,
                    EventLookup::Stream => &mut stream,
                    EventLookup::Provider => &mut provider,
                };
                target.insert(key.as_slice(), ())?;
            }
        }
    }
    txn.open_table(META)?.insert(MARKER_KEY, encode(&EventMarker::of(block)).as_slice())?;
    Ok(())
}

/// In the transaction committing `block`: adds its events when the index was current at its
/// parent; otherwise leaves the (stale) index for [`catch_up`].
pub(super) fn index_block(
    txn: &redb::WriteTransaction,
    block: &StoredBlock,
    receipts: &[StoredReceipt],
) -> Result<(), StorageError> {
    let marker = read_marker(&txn.open_table(META)?)?;
    let current_at_parent = block
        .height()
        .checked_sub(1)
        .is_some_and(|parent| marker.is_some_and(|m| m.height == parent && m.block_hash == block.parent_hash()));
    if current_at_parent {
        write_block_events(txn, block, receipts)?;
    }
    Ok(())
}

/// In the transaction writing the genesis block (which has no transactions): the empty index is
/// current at it.
pub(super) fn index_genesis(txn: &redb::WriteTransaction, block: &StoredBlock) -> Result<(), StorageError> {
    write_block_events(txn, block, &[])
}

/// The block the stored index is current at, if its marker names a stored block.
pub(super) fn indexed_through(db: &redb::Database) -> Result<Option<u64>, StorageError> {
    let txn = db.begin_read()?;
    let Some(marker) = read_marker(&txn.open_table(META)?)? else { return Ok(None) };
    let blocks = txn.open_table(BLOCKS)?;
    let Some(stored) = blocks.get(marker.height)? else { return Ok(None) };
    let block: StoredBlock = decode(&format!("block {}", marker.height), stored.value())?;
    Ok((block.hash() == marker.block_hash).then_some(marker.height))
}

/// Brings the stored index up to the head from the stored blocks and their receipts (from the
/// start when it has no valid marker), [`CATCH_UP_BLOCKS`] blocks per transaction. Returns how
/// many blocks it indexed.
pub(super) fn catch_up(db: &redb::Database) -> Result<u64, StorageError> {
    let begin_write = || begin_write(db);
    let head: Option<u64> =
        db.begin_read()?.open_table(META)?.get("head")?.map(|v| decode("head", v.value())).transpose()?;
    let Some(head) = head else { return Ok(0) };
    let mut next = match indexed_through(db)? {
        Some(height) => height.saturating_add(1),
        None => {
            let txn = begin_write()?;
            clear(&txn)?;
            txn.commit()?;
            GENESIS_BLOCK_ID
        }
    };
    let mut indexed = 0_u64;
    while next <= head {
        let last = next.saturating_add(CATCH_UP_BLOCKS - 1).min(head);
        let txn = begin_write()?;
        for height in next..=last {
            let block: StoredBlock = {
                let blocks = txn.open_table(BLOCKS)?;
                let stored = blocks.get(height)?.ok_or_else(|| {
                    StorageError::corrupt(format!("block {height}"), "missing below the head while indexing events")
                })?;
                decode(&format!("block {height}"), stored.value())?
            };
            let receipts = {
                let table = txn.open_table(RECEIPTS)?;
                block
                    .transactions
                    .iter()
                    .map(|tx| {
                        let hash = tx.hash();
                        let stored = table.get(hash.as_slice())?.ok_or_else(|| {
                            StorageError::corrupt(format!("receipts of block {height}"), "a transaction has no receipt")
                        })?;
                        decode::<StoredReceipt>("receipt", stored.value())
                    })
                    .collect::<Result<Vec<_>, StorageError>>()?
            };
            write_block_events(&txn, &block, &receipts)?;
        }
        txn.commit()?;
        indexed = indexed.saturating_add(last - next + 1);
        next = last.saturating_add(1);
    }
    Ok(indexed)
}

/// Empties the index and drops its marker.
fn clear(txn: &redb::WriteTransaction) -> Result<(), StorageError> {
    txn.delete_table(EVENTS)?;
    for lookup in EventLookup::SECONDARY {
        if let Some(table) = secondary(lookup) {
            txn.delete_table(table)?;
        }
    }
    create_tables(txn)?;
    txn.open_table(META)?.remove(MARKER_KEY)?;
    Ok(())
}

/// The index as one read transaction sees it.
struct ReadView<'a> {
    txn: &'a redb::ReadTransaction,
    events: redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
}

impl EventSource for ReadView<'_> {
    type Error = StorageError;

    fn keys(
        &self,
        lookup: EventLookup,
        prefix: &[u8],
        start: &[u8],
        visit: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<(), StorageError> {
        match secondary(lookup) {
            None => {
                for entry in self.events.range(start..)? {
                    let (key, _) = entry?;
                    if !key.value().starts_with(prefix) || !visit(key.value()) {
                        break;
                    }
                }
            }
            Some(table) => {
                let table = self.txn.open_table(table)?;
                for entry in table.range(start..)? {
                    let (key, _) = entry?;
                    if !key.value().starts_with(prefix) || !visit(key.value()) {
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    fn event(&self, cursor: EventCursor) -> Result<Option<StoredEvent>, StorageError> {
        self.events.get(index::cursor_key(cursor).as_slice())?.map(|v| decode("event", v.value())).transpose()
    }
}

/// One page of the index as one read transaction sees it, through the last block it holds.
pub(super) fn page(
    db: &redb::Database,
    filter: &EventFilter,
    after: Option<EventCursor>,
    limit: u32,
) -> Result<EventPage, StorageError> {
    let txn = db.begin_read()?;
    let through = read_marker(&txn.open_table(META)?)?.ok_or(StorageError::NoEventIndex)?.height;
    let view = ReadView { events: txn.open_table(EVENTS)?, txn: &txn };
    index::read_page(&view, filter, after, limit, through)
}
