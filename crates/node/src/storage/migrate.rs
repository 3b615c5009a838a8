//! The format version of the redb file and the conversion of older files.
//!
//! | version | `meta["format"]` | receipts |
//! |---|---|---|
//! | 1 | absent | JSON text of the receipt (`tx_hash` hex) |
//! | 2 | `borsh(2u32)` | `borsh(StoredReceipt)` |
//!
//! Blocks, accounts, genesis, head and the stream index are the same in both. Opening a file of
//! an older version converts it in one write transaction (so a crash mid-way leaves the old
//! version whole); a newer version is refused, untouched.

use std::ops::Bound;

use paystreams_rpc::{HexHash, TxErrorInfo};
use paystreams_runtime::ReceiptEvent;
use redb::{ReadableDatabase as _, ReadableTable as _};
use serde::Deserialize;

use super::{
    StorageError, decode,
    redb::{META, RECEIPTS},
};
use crate::block::{StoredReceipt, encode};

/// The format this node writes and reads. Bump it (and add a conversion here) whenever a stored
/// encoding changes: the snapshot tests of `block.rs` show when one did.
pub const FORMAT_VERSION: u32 = 2;

/// `meta` key of the format version.
pub(super) const FORMAT_KEY: &str = "format";

/// The first version, which stored no version.
const FORMAT_UNVERSIONED: u32 = 1;

/// Receipts converted per read-then-write step, bounding the memory a conversion holds.
const CONVERT_BATCH: usize = 4_096;

/// A version-1 receipt: JSON text.
#[derive(Deserialize)]
struct ReceiptV1 {
    tx_hash: HexHash,
    block_id: u64,
    index: u32,
    error: Option<TxErrorInfo>,
    events: Vec<ReceiptEvent>,
}

/// The version of the file, read before anything is written: `None` for a new file (no tables
/// yet), [`FORMAT_UNVERSIONED`] for a file without a version.
pub(super) fn stored_version(db: &redb::Database) -> Result<Option<u32>, StorageError> {
    let txn = db.begin_read()?;
    let meta = match txn.open_table(META) {
        Ok(meta) => meta,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    match meta.get(FORMAT_KEY)? {
        Some(bytes) => Ok(Some(decode("format version", bytes.value())?)),
        None => Ok(Some(FORMAT_UNVERSIONED)),
    }
}

/// Brings a file of `version` (`None`: new) to [`FORMAT_VERSION`] inside `txn`, which the caller
/// commits. Versions newer than [`FORMAT_VERSION`] are refused before this is called.
pub(super) fn upgrade(txn: &redb::WriteTransaction, version: Option<u32>) -> Result<(), StorageError> {
    match version {
        Some(FORMAT_VERSION) => return Ok(()),
        None => {}
        Some(FORMAT_UNVERSIONED) => convert_receipts_from_json(txn)?,
        Some(other) => {
            return Err(StorageError::corrupt("format version", format!("unknown version {other}")));
        }
    }
    txn.open_table(META)?.insert(FORMAT_KEY, encode(&FORMAT_VERSION).as_slice())?;
    Ok(())
}

/// Rewrites every JSON receipt as Borsh, in key order, a batch at a time.
fn convert_receipts_from_json(txn: &redb::WriteTransaction) -> Result<(), StorageError> {
    let mut table = txn.open_table(RECEIPTS)?;
    let mut after: Option<[u8; 32]> = None;
    loop {
        let lower = after.as_ref().map_or(Bound::Unbounded, |key| Bound::Excluded(key.as_slice()));
        let mut batch: Vec<([u8; 32], Vec<u8>)> = Vec::with_capacity(CONVERT_BATCH);
        for entry in table.range::<&[u8]>((lower, Bound::Unbounded))?.take(CONVERT_BATCH) {
            let (key, value) = entry?;
            let receipt = decode_v1(key.value(), value.value())?;
            batch.push((receipt.tx_hash, encode(&receipt)));
        }
        let Some((last, _)) = batch.last() else {
            return Ok(());
        };
        after = Some(*last);
        for (key, bytes) in &batch {
            table.insert(key.as_slice(), bytes.as_slice())?;
        }
    }
}

fn decode_v1(key: &[u8], bytes: &[u8]) -> Result<StoredReceipt, StorageError> {
    let what = || format!("receipt {} (format {FORMAT_UNVERSIONED})", hex::encode(key));
    let v1: ReceiptV1 = serde_json::from_slice(bytes).map_err(|e| StorageError::corrupt(what(), e))?;
    if v1.tx_hash.0.as_slice() != key {
        return Err(StorageError::corrupt(what(), "stored under another transaction hash"));
    }
    Ok(StoredReceipt {
        tx_hash: v1.tx_hash.0,
        block_id: v1.block_id,
        index: v1.index,
        error: v1.error,
        events: v1.events,
    })
}
