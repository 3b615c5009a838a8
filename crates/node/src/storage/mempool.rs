//! The durable mempool: every admitted transaction is written to the `pending` table before its
//! submission is answered, and leaves it in the write transaction of the block that includes
//! (or fails) it, so a node killed between the two finds it again when it reopens.
//!
//! One table, keyed by transaction hash; each record holds the admission sequence number, so
//! the transactions are re-admitted in the order they were admitted. A write skips a
//! transaction whose receipt is already stored: redb runs one write transaction at a time, so
//! either the block came first (the record is not written) or the record did (the block's write
//! removes it), and no record outlives its block.

use borsh::{BorshDeserialize, BorshSerialize};
use paystreams_runtime::Transaction;
use redb::{ReadableDatabase as _, ReadableTable as _, TableDefinition};

use super::{StorageError, decode, redb::RECEIPTS};
use crate::block::{StoredReceipt, encode};

/// tx hash → borsh [`PendingTransaction`]: admitted, not yet in a block. Added to format 4
/// without a version change: a data dir without it has no pending transactions, and one written
/// by a node that did not keep it loses only records whose receipts exist (dropped on reopen).
pub(super) const PENDING: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("pending");

/// An admitted transaction as the durable mempool keeps it.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct PendingTransaction {
    /// Admission order: a lower number was admitted first (across restarts too).
    pub seq: u64,
    pub transaction: Transaction,
}

/// Writes `entries` (keyed by their hashes), skipping those whose receipt is stored.
pub(super) fn add(
    txn: &redb::WriteTransaction,
    entries: &[([u8; 32], PendingTransaction)],
) -> Result<(), StorageError> {
    let receipts = txn.open_table(RECEIPTS)?;
    let mut table = txn.open_table(PENDING)?;
    for (hash, entry) in entries {
        if receipts.get(hash.as_slice())?.is_none() {
            table.insert(hash.as_slice(), encode(entry).as_slice())?;
        }
    }
    Ok(())
}

/// Removes the records of `hashes` (absent ones are fine).
pub(super) fn remove<'a>(
    txn: &redb::WriteTransaction,
    hashes: impl Iterator<Item = &'a [u8; 32]>,
) -> Result<(), StorageError> {
    let mut table = txn.open_table(PENDING)?;
    for hash in hashes {
        table.remove(hash.as_slice())?;
    }
    Ok(())
}

/// Removes the records of the transactions a block includes or fails (one receipt each).
pub(super) fn remove_committed(txn: &redb::WriteTransaction, receipts: &[StoredReceipt]) -> Result<(), StorageError> {
    remove(txn, receipts.iter().map(|r| &r.tx_hash))
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
        entries.push(decode::<PendingTransaction>("pending transaction", value.value())?);
    }
    entries.sort_by_key(|entry| entry.seq);
    Ok(entries)
}
