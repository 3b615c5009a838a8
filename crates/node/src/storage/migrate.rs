//! The format version of the redb file.
//!
//! | version | `meta["format"]` | what changed |
//! |---|---|---|
//! | 1 | absent | JSON receipts |
//! | 2 | `borsh(2u32)` | Borsh receipts |
//! | 3 | `borsh(3u32)` | LEZ blocks (genesis at block 1, signed by the sequencer key, clock invocation last), the LEZ release and sequencer key in the genesis |
//!
//! A file of an older version is refused, untouched, with a message naming both versions: the
//! blocks of a dev chain are not worth converting (their hashes, signatures and genesis all
//! change), so the way forward is a fresh data dir. A newer version is refused the same way.

use redb::ReadableDatabase as _;

use super::{StorageError, decode, redb::META};
use crate::block::encode;

/// The format this node writes and reads. Bump it whenever a stored encoding changes: the
/// snapshot tests of `block.rs` show when one did.
pub const FORMAT_VERSION: u32 = 3;

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

/// Marks a new file (`version` `None`) with [`FORMAT_VERSION`] inside `txn`, which the caller
/// commits. Files of any other version are refused before this is called.
pub(super) fn upgrade(txn: &redb::WriteTransaction, version: Option<u32>) -> Result<(), StorageError> {
    match version {
        Some(FORMAT_VERSION) => Ok(()),
        None => {
            txn.open_table(META)?.insert(FORMAT_KEY, encode(&FORMAT_VERSION).as_slice())?;
            Ok(())
        }
        Some(other) => Err(StorageError::corrupt("format version", format!("unexpected version {other}"))),
    }
}
