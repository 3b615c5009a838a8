//! The durable mempool: every admitted transaction is written to the `pending_by_seq` table of
//! its own redb file (`chain.mempool.redb` beside `chain.redb`) before its submission is
//! answered, and leaves it once the block that includes (or fails) it is committed, so a node
//! killed between the two finds it again when it reopens.
//!
//! **Its own file, so admission never waits for a block's write.** redb runs one write
//! transaction at a time per file; in the chain's file an admission's write waited for the
//! block being committed (tens of ms for a block of thousands of transactions) and the
//! submitters with it. With two files the two writes run side by side.
//!
//! Keyed by admission number (big-endian u64, so records are appended at the end and a block
//! removes a run at the start); each value is the transaction's hash, then the Borsh
//! [`PendingTransaction`]. Blocks take transactions in admission order (the mempool is first
//! in, first out, and a discarded batch returns to its front), so once a block is committed
//! every transaction numbered below its last one plus one is in it or an earlier block. The
//! block's own write records that end (`pending_below` in the chain file's `meta`), atomically
//! with the block; then the records below it are removed from this file (without an fsync of
//! their own: the next admission's write makes the removal durable). Records below
//! `pending_below` are never read again, so a crash between the two, or a record written after
//! its block (a write that found no receipt just before the block was committed), leaves
//! nothing that comes back: the next block's removal, or the next open, drops them. A reopened
//! chain numbers new admissions from `pending_below`.
//!
//! Format-4 data dirs kept the records keyed by hash (`pending`), format-5 ones keyed by number
//! in the chain file; opening either moves them here, then records format 6 (`migrate.rs`).

use borsh::{BorshDeserialize, BorshSerialize};
use paystreams_runtime::Transaction;
use redb::{ReadableDatabase as _, ReadableTable as _, TableDefinition};

use super::{
    StorageError, decode,
    redb::{META, RECEIPTS},
};
use crate::block::encode;

/// Format 4, in the chain file: tx hash → borsh [`PendingTransaction`]. Read only to move its
/// records (see [`take_from_chain_file`]).
const PENDING_BY_HASH: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("pending");

/// admission number → tx hash ‖ borsh [`PendingTransaction`]: admitted, not yet in a block.
/// In the mempool file from format 6 (in the chain file in format 5).
pub(super) const PENDING: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("pending_by_seq");

/// The chain file's `meta` key: every transaction numbered below it is in a committed block
/// (borsh u64).
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

/// Writes `entries` in the mempool file's `txn`, skipping those already in a block (a receipt
/// in the chain file's `chain` read).
pub(super) fn add(
    txn: &redb::WriteTransaction,
    chain: &redb::ReadTransaction,
    entries: &[([u8; 32], PendingTransaction)],
) -> Result<(), StorageError> {
    let receipts = chain.open_table(RECEIPTS)?;
    let mut table = txn.open_table(PENDING)?;
    for (hash, entry) in entries {
        if receipts.get(hash.as_slice())?.is_none() {
            table.insert(entry.seq, record(hash, entry).as_slice())?;
        }
    }
    Ok(())
}

/// The highest admission number among the records of `hashes` in the mempool file (for a
/// block committed without its admission numbers), by a scan.
pub(super) fn highest_of<'a>(
    pool: &redb::Database,
    hashes: impl Iterator<Item = &'a [u8; 32]>,
) -> Result<Option<u64>, StorageError> {
    let hashes: std::collections::HashSet<&[u8; 32]> = hashes.collect();
    if hashes.is_empty() {
        return Ok(None);
    }
    let txn = pool.begin_read()?;
    let table = txn.open_table(PENDING)?;
    let mut highest = None;
    for entry in table.iter()? {
        let (seq, value) = entry?;
        if names_one_of(value.value(), &hashes) {
            highest = highest.max(Some(seq.value()));
        }
    }
    Ok(highest)
}

/// Removes every record numbered below `end` from the mempool file (a committed block's
/// transactions and those of the blocks before it).
pub(super) fn remove_below(txn: &redb::WriteTransaction, end: u64) -> Result<(), StorageError> {
    txn.open_table(PENDING)?.retain_in(..end, |_, _| false)?;
    Ok(())
}

/// Records in the chain file's `txn` that every transaction numbered below `end` is in a
/// committed block (never lowers it).
pub(super) fn raise_below(txn: &redb::WriteTransaction, end: u64) -> Result<(), StorageError> {
    let current = below(txn)?;
    if end > current {
        txn.open_table(META)?.insert(PENDING_BELOW, encode(&end).as_slice())?;
    }
    Ok(())
}

/// Takes the records an older data dir kept in the chain file (format 4: keyed by hash,
/// `pending`; format 5: keyed by number, `pending_by_seq`) out of it, in the chain file's
/// `txn`, for the caller to write to the mempool file before it commits `txn`.
pub(super) fn take_from_chain_file(
    txn: &redb::WriteTransaction,
) -> Result<Vec<([u8; 32], PendingTransaction)>, StorageError> {
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
        let by_seq = txn.open_table(PENDING)?;
        for entry in by_seq.iter()? {
            let (_, value) = entry?;
            moved.push(parse(value.value())?);
        }
    }
    txn.delete_table(PENDING_BY_HASH)?;
    txn.delete_table(PENDING)?;
    Ok(moved)
}

/// Writes records moved from the chain file (see [`take_from_chain_file`]).
pub(super) fn put(
    txn: &redb::WriteTransaction,
    entries: &[([u8; 32], PendingTransaction)],
) -> Result<(), StorageError> {
    let mut table = txn.open_table(PENDING)?;
    for (hash, entry) in entries {
        table.insert(entry.seq, record(hash, entry).as_slice())?;
    }
    Ok(())
}

/// Removes every record (a mempool file left beside a new chain file belongs to no chain).
pub(super) fn clear(txn: &redb::WriteTransaction) -> Result<(), StorageError> {
    txn.open_table(PENDING)?.retain(|_, _| false)?;
    Ok(())
}

/// Whether a record (hash, then transaction) is of one of `hashes`.
fn names_one_of(record: &[u8], hashes: &std::collections::HashSet<&[u8; 32]>) -> bool {
    record.first_chunk::<32>().is_some_and(|hash| hashes.contains(hash))
}

/// A record's hash and transaction.
fn parse(bytes: &[u8]) -> Result<([u8; 32], PendingTransaction), StorageError> {
    let (hash, body) = bytes
        .split_first_chunk::<32>()
        .ok_or_else(|| StorageError::corrupt("pending transaction", "shorter than a hash"))?;
    Ok((*hash, decode::<PendingTransaction>("pending transaction", body)?))
}

/// The end of the last committed block's admission numbers (0 when none was recorded).
pub(super) fn floor(db: &redb::Database) -> Result<u64, StorageError> {
    let txn = db.begin_read()?;
    let meta = txn.open_table(META)?;
    let value = meta.get(PENDING_BELOW)?;
    value.map_or(Ok(0), |v| decode("pending_below", v.value()))
}

/// Every record of the mempool file numbered from `floor` on, in admission order (those below
/// are in committed blocks).
pub(super) fn read_all(pool: &redb::Database, floor: u64) -> Result<Vec<PendingTransaction>, StorageError> {
    let txn = pool.begin_read()?;
    let table = match txn.open_table(PENDING) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(vec![]),
        Err(e) => return Err(e.into()),
    };
    let mut entries = Vec::new();
    for entry in table.range(floor..)? {
        let (_, value) = entry?;
        entries.push(parse(value.value())?.1);
    }
    Ok(entries)
}

/// Removes the records of `hashes` from the mempool file (absent ones are fine), by a scan.
pub(super) fn remove<'a>(
    txn: &redb::WriteTransaction,
    hashes: impl Iterator<Item = &'a [u8; 32]>,
) -> Result<(), StorageError> {
    let hashes: std::collections::HashSet<&[u8; 32]> = hashes.collect();
    if hashes.is_empty() {
        return Ok(());
    }
    txn.open_table(PENDING)?.retain(|_, value| !names_one_of(value, &hashes))?;
    Ok(())
}
