//! The durable mempool: every admitted transaction is written to the `pending_by_seq` table
//! before its submission is answered, and leaves it in the write transaction of the block that
//! includes (or fails) it, so a node killed between the two finds it again when it reopens.
//!
//! Keyed by admission number (big-endian u64, so records are appended at the end and a block
//! removes a run at the start); each value is the transaction's hash, then the Borsh
//! [`PendingTransaction`]. Blocks take transactions in admission order (the mempool is first
//! in, first out, and a discarded batch returns to its front), so once a block is committed
//! every transaction numbered below its last one plus one is in it or an earlier block: the
//! block's write removes that range and records its end (`pending_below` in `meta`; a reopened
//! chain numbers new admissions from there). A write skips transactions with a stored receipt:
//! redb runs one write transaction at a time, so either the block came first (the record is
//! not written) or the record did (the block's write removes it), and no record outlives its
//! block.
//!
//! Format-4 data dirs kept the records keyed by hash (`pending`); opening one moves them and
//! records format 5 in the same write (`migrate.rs`).

use borsh::{BorshDeserialize, BorshSerialize};
use paystreams_runtime::Transaction;
use redb::{ReadableDatabase as _, ReadableTable as _, TableDefinition};

use super::{
    StorageError, decode,
    redb::{META, RECEIPTS},
};
use crate::block::{StoredReceipt, encode};

/// Before: tx hash → borsh [`PendingTransaction`]. Read only to move its records (see
/// [`move_keyed_by_hash`]).
const PENDING_BY_HASH: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("pending");

/// admission number → tx hash ‖ borsh [`PendingTransaction`]: admitted, not yet in a block.
/// Format 5 (a version-4 file's records are moved here when it is opened).
pub(super) const PENDING: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("pending_by_seq");

/// `meta` key: every transaction numbered below it is in a committed block (borsh u64).
const PENDING_BELOW: &str = "pending_below";

/// An admitted transaction as the durable mempool keeps it.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct PendingTransaction {
    /// Admission order: a lower number was admitted first (across restarts too).
    pub seq: u64,
    pub transaction: Transaction,
}

fn below(txn: &redb::WriteTransaction) -> Result<u64, StorageError> {
    let meta = txn.open_table(META)?;
    let value = meta.get(PENDING_BELOW)?;
    value.map_or(Ok(0), |v| decode("pending_below", v.value()))
}

fn record(hash: &[u8; 32], entry: &PendingTransaction) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(32 + borsh::object_length(entry).unwrap_or(0));
    bytes.extend_from_slice(hash);
    // Writing Borsh into a Vec cannot fail.
    let _ = borsh::to_writer(&mut bytes, entry);
    bytes
}

/// Writes `entries`, skipping those already in a block (with a stored receipt).
pub(super) fn add(
    txn: &redb::WriteTransaction,
    entries: &[([u8; 32], PendingTransaction)],
) -> Result<(), StorageError> {
    let receipts = txn.open_table(RECEIPTS)?;
    let mut table = txn.open_table(PENDING)?;
    for (hash, entry) in entries {
        if receipts.get(hash.as_slice())?.is_none() {
            table.insert(entry.seq, record(hash, entry).as_slice())?;
        }
    }
    Ok(())
}

/// Removes the records of `hashes` (absent ones are fine), by a scan of the table: for records
/// dropped at a restart and blocks committed without their admission numbers. Returns the
/// highest number removed.
pub(super) fn remove<'a>(
    txn: &redb::WriteTransaction,
    hashes: impl Iterator<Item = &'a [u8; 32]>,
) -> Result<Option<u64>, StorageError> {
    let hashes: std::collections::HashSet<&[u8; 32]> = hashes.collect();
    if hashes.is_empty() {
        return Ok(None);
    }
    let mut table = txn.open_table(PENDING)?;
    let mut highest = None;
    table.retain(|seq, value| {
        let hit = value.get(..32).is_some_and(|hash| hashes.iter().any(|h| h.as_slice() == hash));
        if hit {
            highest = highest.max(Some(seq));
        }
        !hit
    })?;
    Ok(highest)
}

/// Removes the records of the transactions a block includes or fails (one receipt each), found
/// by hash.
pub(super) fn remove_committed(txn: &redb::WriteTransaction, receipts: &[StoredReceipt]) -> Result<(), StorageError> {
    if let Some(highest) = remove(txn, receipts.iter().map(|r| &r.tx_hash))? {
        raise_below(txn, highest.saturating_add(1))?;
    }
    Ok(())
}

/// Removes every record numbered below `end` (a committed block's transactions and those of
/// the blocks before it) and records `end`.
pub(super) fn remove_below(txn: &redb::WriteTransaction, end: u64) -> Result<(), StorageError> {
    txn.open_table(PENDING)?.retain_in(..end, |_, _| false)?;
    raise_below(txn, end)
}

fn raise_below(txn: &redb::WriteTransaction, end: u64) -> Result<(), StorageError> {
    let current = below(txn)?;
    if end > current {
        txn.open_table(META)?.insert(PENDING_BELOW, encode(&end).as_slice())?;
    }
    Ok(())
}

/// Moves the records of a data dir that kept them keyed by hash into the table keyed by
/// admission number, and drops the old table.
pub(super) fn move_keyed_by_hash(txn: &redb::WriteTransaction) -> Result<(), StorageError> {
    let mut moved = Vec::new();
    {
        let old = txn.open_table(PENDING_BY_HASH)?;
        for entry in old.iter()? {
            let (key, value) = entry?;
            let hash: [u8; 32] = key
                .value()
                .try_into()
                .map_err(|_| StorageError::corrupt("pending transaction", "hash not 32 bytes"))?;
            moved.push((hash, decode::<PendingTransaction>("pending transaction", value.value())?));
        }
    }
    txn.delete_table(PENDING_BY_HASH)?;
    if !moved.is_empty() {
        let mut table = txn.open_table(PENDING)?;
        for (hash, entry) in &moved {
            table.insert(entry.seq, record(hash, entry).as_slice())?;
        }
    }
    Ok(())
}

/// The end of the last committed block's admission numbers (0 when none was recorded).
pub(super) fn floor(db: &redb::Database) -> Result<u64, StorageError> {
    let txn = db.begin_read()?;
    let meta = txn.open_table(META)?;
    let value = meta.get(PENDING_BELOW)?;
    value.map_or(Ok(0), |v| decode("pending_below", v.value()))
}

/// Every record, in admission order.
pub(super) fn read_all(db: &redb::Database) -> Result<Vec<PendingTransaction>, StorageError> {
    let txn = db.begin_read()?;
    let table = match txn.open_table(PENDING) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(vec![]),
        Err(e) => return Err(e.into()),
    };
    let mut entries = Vec::new();
    for entry in table.iter()? {
        let (_, value) = entry?;
        let bytes = value.value();
        let body =
            bytes.get(32..).ok_or_else(|| StorageError::corrupt("pending transaction", "shorter than a hash"))?;
        entries.push(decode::<PendingTransaction>("pending transaction", body)?);
    }
    Ok(entries)
}
