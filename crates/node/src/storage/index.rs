//! The stored stream index: two key-only tables and a marker in `meta` naming the block it is
//! current at. Written with each block in the block's transaction (when it was current at the
//! parent), read back at start, and replaced whole after a rebuild.
//!
//! Keys are fixed-width: account ids are 32 bytes, vault and stream ids u64 big-endian, so each
//! table iterates in (owner, vault) or (provider, owner, vault, stream) order.

use borsh::{BorshDeserialize, BorshSerialize};
use paystreams_lez_core::AccountId;
use redb::{ReadableTable as _, TableDefinition};

use super::{StorageError, redb::META};
use crate::{
    block::{StoredBlock, encode},
    index::{StreamIndex, StreamKey},
};

/// Stream index, owner (32 bytes) ‖ vault id (u64 BE) → nothing.
pub(super) const INDEX_VAULTS: TableDefinition<'_, &[u8], ()> = TableDefinition::new("index_vaults");
/// Stream index, provider ‖ owner (32 bytes each) ‖ vault id ‖ stream id (u64 BE) → nothing.
pub(super) const INDEX_STREAMS: TableDefinition<'_, &[u8], ()> = TableDefinition::new("index_streams");

/// `meta` key of the [`IndexMarker`].
const INDEX_MARKER_KEY: &str = "stream_index";
/// Format of the stored stream index; a marker of another version is stale.
const INDEX_VERSION: u32 = 1;

/// Width of an account id in a key.
const ID_LEN: usize = 32;
/// Width of a vault or stream id (u64 big-endian) in a key.
const U64_LEN: usize = 8;
/// `owner ‖ vault id`.
const VAULT_KEY_LEN: usize = ID_LEN + U64_LEN;
/// `provider ‖ owner ‖ vault id ‖ stream id`.
const STREAM_KEY_LEN: usize = ID_LEN + ID_LEN + U64_LEN + U64_LEN;

/// Which block the stored stream index is current at. Written with the index tables in one
/// transaction; a data dir without it (older nodes) or with an older block has a stale index.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
struct IndexMarker {
    version: u32,
    height: u64,
    block_hash: [u8; 32],
}

impl IndexMarker {
    const fn at(height: u64, block_hash: [u8; 32]) -> Self {
        Self { version: INDEX_VERSION, height, block_hash }
    }

    fn of(block: &StoredBlock) -> Self {
        Self::at(block.height(), block.hash())
    }
}

fn vault_key(owner: &AccountId, vault_id: u64) -> [u8; VAULT_KEY_LEN] {
    let mut key = [0; VAULT_KEY_LEN];
    let (id, vault) = key.split_at_mut(ID_LEN);
    id.copy_from_slice(&owner.0);
    vault.copy_from_slice(&vault_id.to_be_bytes());
    key
}

fn stream_key(provider: &AccountId, (owner, vault_id, stream_id): &StreamKey) -> [u8; STREAM_KEY_LEN] {
    let mut key = [0; STREAM_KEY_LEN];
    let (provider_part, rest) = key.split_at_mut(ID_LEN);
    let (owner_part, rest) = rest.split_at_mut(ID_LEN);
    let (vault_part, stream_part) = rest.split_at_mut(U64_LEN);
    provider_part.copy_from_slice(&provider.0);
    owner_part.copy_from_slice(&owner.0);
    vault_part.copy_from_slice(&vault_id.to_be_bytes());
    stream_part.copy_from_slice(&stream_id.to_be_bytes());
    key
}

fn split_id(bytes: &[u8]) -> Option<(AccountId, &[u8])> {
    let (id, rest) = bytes.split_first_chunk::<ID_LEN>()?;
    Some((AccountId(*id), rest))
}

fn split_u64(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let (n, rest) = bytes.split_first_chunk::<U64_LEN>()?;
    Some((u64::from_be_bytes(*n), rest))
}

fn parse_vault_key(bytes: &[u8]) -> Option<(AccountId, u64)> {
    let (owner, rest) = split_id(bytes)?;
    let (vault_id, rest) = split_u64(rest)?;
    rest.is_empty().then_some((owner, vault_id))
}

fn parse_stream_key(bytes: &[u8]) -> Option<(AccountId, StreamKey)> {
    let (provider, rest) = split_id(bytes)?;
    let (owner, rest) = split_id(rest)?;
    let (vault_id, rest) = split_u64(rest)?;
    let (stream_id, rest) = split_u64(rest)?;
    rest.is_empty().then_some((provider, (owner, vault_id, stream_id)))
}

/// Inserts the entries of `index` into the index tables.
fn write_index(txn: &redb::WriteTransaction, index: &StreamIndex) -> Result<(), StorageError> {
    let mut vaults = txn.open_table(INDEX_VAULTS)?;
    for (owner, vault_id) in index.vault_entries() {
        vaults.insert(vault_key(owner, vault_id).as_slice(), ())?;
    }
    let mut streams = txn.open_table(INDEX_STREAMS)?;
    for (provider, key) in index.stream_entries() {
        streams.insert(stream_key(provider, key).as_slice(), ())?;
    }
    Ok(())
}

fn read_marker(
    table: &impl redb::ReadableTable<&'static str, &'static [u8]>,
) -> Result<Option<IndexMarker>, StorageError> {
    // An undecodable marker (another format) is a stale index, not a corrupt database.
    Ok(table.get(INDEX_MARKER_KEY)?.and_then(|v| IndexMarker::try_from_slice(v.value()).ok()))
}

/// In the transaction committing `block`: adds `added` and moves the marker to `block` when the
/// stored index was current at its parent; otherwise leaves the (stale) index alone.
pub(super) fn extend_for_block(
    txn: &redb::WriteTransaction,
    block: &StoredBlock,
    added: &StreamIndex,
) -> Result<(), StorageError> {
    let mut meta = txn.open_table(META)?;
    let marker = read_marker(&meta)?;
    let current_at_parent = block
        .height()
        .checked_sub(1)
        .is_some_and(|parent| marker == Some(IndexMarker::at(parent, block.parent_hash())));
    if current_at_parent {
        write_index(txn, added)?;
        meta.insert(INDEX_MARKER_KEY, encode(&IndexMarker::of(block)).as_slice())?;
    }
    Ok(())
}

/// Replaces the stored index with `index`, current at `head`.
pub(super) fn replace(
    txn: &redb::WriteTransaction,
    head: &StoredBlock,
    index: &StreamIndex,
) -> Result<(), StorageError> {
    txn.delete_table(INDEX_VAULTS)?;
    txn.delete_table(INDEX_STREAMS)?;
    write_index(txn, index)?;
    txn.open_table(META)?.insert(INDEX_MARKER_KEY, encode(&IndexMarker::of(head)).as_slice())?;
    Ok(())
}

/// The stored index if it is current at `head`.
pub(super) fn read(txn: &redb::ReadTransaction, head: &StoredBlock) -> Result<Option<StreamIndex>, StorageError> {
    if read_marker(&txn.open_table(META)?)? != Some(IndexMarker::of(head)) {
        return Ok(None);
    }
    let mut index = StreamIndex::default();
    for entry in txn.open_table(INDEX_VAULTS)?.iter()? {
        let (key, _) = entry?;
        let (owner, vault_id) = parse_vault_key(key.value())
            .ok_or_else(|| StorageError::corrupt("stream index", "vault key of wrong length"))?;
        index.vaults.entry(owner).or_default().insert(vault_id);
    }
    // Keys are sorted by provider, then by stream: each provider's set is built in one pass.
    let mut group: Vec<StreamKey> = Vec::new();
    let mut current: Option<AccountId> = None;
    for entry in txn.open_table(INDEX_STREAMS)?.iter()? {
        let (key, _) = entry?;
        let (provider, stream) = parse_stream_key(key.value())
            .ok_or_else(|| StorageError::corrupt("stream index", "stream key of wrong length"))?;
        if current != Some(provider)
            && let Some(done) = current.replace(provider)
        {
            index.provider_streams.insert(done, group.drain(..).collect());
        }
        group.push(stream);
    }
    if let Some(done) = current {
        index.provider_streams.insert(done, group.into_iter().collect());
    }
    Ok(Some(index))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_refuse_other_lengths() {
        let (owner, provider) = (AccountId([1; 32]), AccountId([2; 32]));
        assert_eq!(parse_vault_key(&vault_key(&owner, 7)), Some((owner, 7)));
        let stream = (owner, 7, u64::MAX);
        assert_eq!(parse_stream_key(&stream_key(&provider, &stream)), Some((provider, stream)));
        assert_eq!(parse_vault_key(&[0; VAULT_KEY_LEN + 1]), None);
        assert_eq!(parse_stream_key(&[0; STREAM_KEY_LEN - 1]), None);
    }
}
