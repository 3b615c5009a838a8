//! The redb file's format version: data dirs of the older formats (1: no version, JSON receipts,
//! built here byte for byte as the nodes of that format wrote it; 2: versioned), whose
//! transactions predate LEZ's encoding, are refused untouched; a newer format is refused
//! untouched too.

use std::{path::Path, sync::Arc};

use paystreams_node::{
    Chain, FORMAT_VERSION, MemStorage, RedbStorage, Storage,
    block::{GenesisSpec, StoredBlock, StoredReceipt},
};
use paystreams_rpc::TxErrorInfo;
use paystreams_runtime::{ReceiptEvent, State};
use redb::{ReadableDatabase as _, ReadableTable as _, TableDefinition};
use serde::Serialize;

use crate::common::{create_stream, deposit, init_vault, transfer};

const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");
const BLOCKS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("blocks");
const RECEIPTS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("receipts");
const ACCOUNTS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("accounts");
const INDEX_VAULTS: TableDefinition<'_, &[u8], ()> = TableDefinition::new("index_vaults");
const INDEX_STREAMS: TableDefinition<'_, &[u8], ()> = TableDefinition::new("index_streams");

/// A receipt as the first format stored it: `serde_json::to_vec` of this shape, fields in this
/// order, the hash as lower-case hex.
#[derive(Serialize)]
struct ReceiptV1<'a> {
    tx_hash: String,
    block_id: u64,
    index: u32,
    error: &'a Option<TxErrorInfo>,
    events: &'a [ReceiptEvent],
}

fn receipt_v1(receipt: &StoredReceipt) -> Vec<u8> {
    serde_json::to_vec(&ReceiptV1 {
        tx_hash: hex::encode(receipt.tx_hash),
        block_id: receipt.block_id,
        index: receipt.index,
        error: &receipt.error,
        events: &receipt.events,
    })
    .expect("json")
}

/// What a chain holds, read through the storage trait.
struct Contents {
    genesis: GenesisSpec,
    blocks: Vec<StoredBlock>,
    receipts: Vec<StoredReceipt>,
    state: State,
}

/// A few blocks of real transactions, one of them failing, on a chain in memory.
fn chain_contents() -> Contents {
    let storage = Arc::new(MemStorage::new());
    let chain = Chain::open(Arc::clone(&storage) as Arc<dyn Storage>, 3, 1_000_000_000).expect("open chain");
    let (owner, provider) = (chain.dev_keys()[0].clone(), chain.dev_keys()[1].clone());
    chain.submit(init_vault(&owner, 1, 0)).expect("admitted");
    chain.submit(deposit(&owner, 1, 1_000, 1)).expect("admitted");
    chain.produce_block(10, 0).expect("block");
    // Over-allocation: a failed receipt.
    chain.submit(create_stream(&owner, 1, 0, provider.account_id(), 10, 2_000, 2)).expect("admitted");
    chain.submit(create_stream(&owner, 1, 0, provider.account_id(), 10, 500, 2)).expect("admitted");
    chain.produce_block(10, 0).expect("block");
    chain.submit(transfer(&provider, owner.account_id(), 5, 0)).expect("admitted");
    chain.produce_block(10, 5_000).expect("block");
    let head = storage.load_head().expect("head").expect("a head");
    let blocks: Vec<StoredBlock> =
        (0..=head).map(|height| storage.block(height).expect("read").expect("stored")).collect();
    let receipts = blocks
        .iter()
        .flat_map(|block| &block.transactions)
        .map(|tx| storage.receipt(&tx.hash()).expect("read").expect("stored"))
        .collect();
    Contents {
        genesis: storage.genesis().expect("read").expect("genesis"),
        blocks,
        receipts,
        state: storage.load_state().expect("state"),
    }
}

/// Writes `contents` into a new redb file at `path` exactly as a node of the first format did:
/// the six tables, `meta` with `genesis` and `head` only, Borsh blocks and accounts, JSON
/// receipts.
fn write_v1(path: &Path, contents: &Contents, extra_receipts: &[([u8; 32], Vec<u8>)]) {
    let db = redb::Database::create(path).expect("create");
    let txn = db.begin_write().expect("write");
    {
        let mut meta = txn.open_table(META).expect("meta");
        meta.insert("genesis", borsh::to_vec(&contents.genesis).expect("encode").as_slice()).expect("genesis");
        let head = contents.blocks.last().expect("blocks").header.height;
        meta.insert("head", borsh::to_vec(&head).expect("encode").as_slice()).expect("head");
        let mut blocks = txn.open_table(BLOCKS).expect("blocks");
        for block in &contents.blocks {
            blocks.insert(block.header.height, borsh::to_vec(block).expect("encode").as_slice()).expect("block");
        }
        let mut receipts = txn.open_table(RECEIPTS).expect("receipts");
        for receipt in &contents.receipts {
            receipts.insert(receipt.tx_hash.as_slice(), receipt_v1(receipt).as_slice()).expect("receipt");
        }
        for (key, bytes) in extra_receipts {
            receipts.insert(key.as_slice(), bytes.as_slice()).expect("receipt");
        }
        let mut accounts = txn.open_table(ACCOUNTS).expect("accounts");
        for (id, account) in contents.state.iter() {
            accounts.insert(id.0.as_slice(), borsh::to_vec(account).expect("encode").as_slice()).expect("account");
        }
        txn.open_table(INDEX_VAULTS).expect("index_vaults");
        txn.open_table(INDEX_STREAMS).expect("index_streams");
    }
    txn.commit().expect("commit");
}

/// `meta["format"]` and every receipt's stored bytes, read raw.
#[derive(Debug, PartialEq, Eq)]
struct Raw {
    format: Option<Vec<u8>>,
    receipts: Vec<(Vec<u8>, Vec<u8>)>,
}

fn raw(path: &Path) -> Raw {
    let db = redb::Database::open(path).expect("raw open");
    let txn = db.begin_read().expect("read");
    let format = txn.open_table(META).expect("meta").get("format").expect("get").map(|v| v.value().to_vec());
    let receipts = txn
        .open_table(RECEIPTS)
        .expect("receipts")
        .iter()
        .expect("iter")
        .map(|entry| {
            let (key, value) = entry.expect("entry");
            (key.value().to_vec(), value.value().to_vec())
        })
        .collect();
    Raw { format, receipts }
}

#[test]
fn older_formats_are_refused_untouched_with_both_versions_named() {
    let contents = chain_contents();
    assert_eq!(contents.receipts.len(), 5);
    for older in [1_u32, 2] {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(paystreams_node::DB_FILE);
        write_v1(&path, &contents, &[]);
        if older == 2 {
            let db = redb::Database::open(&path).expect("raw open");
            let txn = db.begin_write().expect("write");
            txn.open_table(META)
                .expect("meta")
                .insert("format", borsh::to_vec(&older).expect("encode").as_slice())
                .expect("insert");
            txn.commit().expect("commit");
        }
        let before = raw(&path);
        let error = RedbStorage::open(&path).err().expect("refused");
        let message = error.to_string();
        assert!(message.contains(&format!("format version {older}, older than version {FORMAT_VERSION}")), "{message}");
        assert!(message.contains("start a new chain"), "{message}");
        assert_eq!(raw(&path), before, "format {older}: the file is left untouched");
        assert!(paystreams_node::open_storage(Some(dir.path())).is_err(), "format {older} opened");
    }
    assert_eq!(FORMAT_VERSION, 3);
}

#[test]
fn a_newer_format_is_refused_untouched() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(paystreams_node::DB_FILE);
    drop(RedbStorage::open(&path).expect("create"));
    let newer = FORMAT_VERSION + 1;
    {
        let db = redb::Database::open(&path).expect("raw open");
        let txn = db.begin_write().expect("write");
        txn.open_table(META)
            .expect("meta")
            .insert("format", borsh::to_vec(&newer).expect("encode").as_slice())
            .expect("insert");
        txn.commit().expect("commit");
    }
    let error = RedbStorage::open(&path).err().expect("refused");
    let message = error.to_string();
    assert!(message.contains(&format!("format version {newer}")), "{message}");
    assert!(message.contains(&format!("version {FORMAT_VERSION} which this node reads")), "{message}");
    assert!(message.contains("run a newer paystream"), "{message}");
    assert_eq!(raw(&path).format, Some(borsh::to_vec(&newer).expect("encode")), "left untouched");
}
