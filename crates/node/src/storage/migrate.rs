//! The format version of the redb file.
//!
//! | version | `meta["format"]` | receipts | transactions in blocks |
//! |---|---|---|---|
//! | 1 | absent | JSON text of the receipt (`tx_hash` hex) | Borsh, instruction as Borsh bytes |
//! | 2 | `borsh(2u32)` | `borsh(StoredReceipt)` | Borsh, instruction as Borsh bytes |
//! | 3 | `borsh(3u32)` | `borsh(StoredReceipt)` | LEZ's public transaction, instruction as RISC Zero serde words (hashes changed too); blocks are LEZ blocks (genesis at block 1, signed by the sequencer key), the genesis holds the LEZ release and the sequencer key |
//! | 4 | `borsh(4u32)` | `borsh(StoredReceipt)`; a failed one's index is its position among its block's failed transactions | as 3, but a block holds only its succeeded transactions and a count of failed ones; failed transactions live in the bounded `failed` table |
//! | 5 | `borsh(5u32)` | as 4 | as 4; the durable mempool is keyed by admission number (`pending_by_seq`, see `mempool.rs`) instead of by hash (`pending`) |
//! | 6 | `borsh(6u32)` | as 4 | as 4; the durable mempool lives in its own file (`chain.mempool.redb`), the chain file keeps only `pending_below` |
//!
//! A version-4 or version-5 file is upgraded in place when it is opened: its pending
//! transactions are written to the mempool file first, then taken out of the chain file in the
//! write transaction that records version 6. A crash between the two leaves them in both and
//! the file at its old version, and the next open moves them again; a node that reads only an
//! older version refuses a version-6 file instead of missing its pending transactions. Older versions are refused untouched: their transactions (and so their hashes, block hashes
//! and the receipts keyed by them) are in an encoding this node no longer speaks, and a dev chain
//! is cheaper to start again than to convert. A newer version is refused untouched too.

use redb::ReadableDatabase as _;

use super::{StorageError, decode, redb::META};
use crate::block::encode;

/// The format this node writes and reads. Bump it whenever a stored encoding changes: the
/// snapshot tests of `block.rs` show when one did.
pub const FORMAT_VERSION: u32 = 6;

/// The older formats a node opens, upgrading them in place ([`upgrade`]).
pub(super) const UPGRADES_FROM: std::ops::RangeInclusive<u32> = 4..=5;

/// `meta` key of the format version.
pub(super) const FORMAT_KEY: &str = "format";

/// The first version, which stored no version.
const FORMAT_UNVERSIONED: u32 = 1;

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

/// Records [`FORMAT_VERSION`] inside `txn`, which the caller commits, in a new file or in one
/// of [`UPGRADES_FROM`] whose records the caller has moved in the same transaction. Other
/// versions are refused before this is called.
pub(super) fn upgrade(txn: &redb::WriteTransaction, version: Option<u32>) -> Result<(), StorageError> {
    match version {
        Some(FORMAT_VERSION) => return Ok(()),
        None => {}
        Some(old) if UPGRADES_FROM.contains(&old) => {}
        Some(other) => {
            return Err(StorageError::corrupt("format version", format!("unknown version {other}")));
        }
    }
    txn.open_table(META)?.insert(FORMAT_KEY, encode(&FORMAT_VERSION).as_slice())?;
    Ok(())
}
