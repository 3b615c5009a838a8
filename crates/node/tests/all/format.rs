//! The redb file's format version: data dirs of older formats (no version; version 2, before
//! blocks became LEZ blocks) and of a newer one are refused untouched, naming both versions and
//! what to do.

use paystreams_node::{FORMAT_VERSION, RedbStorage};
use redb::{ReadableDatabase as _, ReadableTable as _, TableDefinition};

const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");
const BLOCKS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("blocks");

/// Every `meta` entry and every stored block, as raw bytes.
fn raw(path: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let db = redb::Database::open(path).expect("raw open");
    let txn = db.begin_read().expect("read");
    let mut out: Vec<(String, Vec<u8>)> = txn
        .open_table(META)
        .expect("meta")
        .iter()
        .expect("iter")
        .map(|entry| {
            let (key, value) = entry.expect("entry");
            (key.value().to_owned(), value.value().to_vec())
        })
        .collect();
    out.extend(txn.open_table(BLOCKS).expect("blocks").iter().expect("iter").map(|entry| {
        let (key, value) = entry.expect("entry");
        (format!("block {}", key.value()), value.value().to_vec())
    }));
    out
}

/// A file as a node of `version` left it (`None`: the first format, which stored no version):
/// a head, a block 0 and, from version 2, the version.
fn write_old(path: &std::path::Path, version: Option<u32>) {
    let db = redb::Database::create(path).expect("create");
    let txn = db.begin_write().expect("write");
    {
        let mut meta = txn.open_table(META).expect("meta");
        meta.insert("head", borsh::to_vec(&0_u64).expect("encode").as_slice()).expect("head");
        if let Some(version) = version {
            meta.insert("format", borsh::to_vec(&version).expect("encode").as_slice()).expect("format");
        }
        txn.open_table(BLOCKS).expect("blocks").insert(0, [7_u8; 40].as_slice()).expect("block");
    }
    txn.commit().expect("commit");
}

#[test]
fn older_formats_are_refused_untouched_naming_both_versions() {
    assert_eq!(FORMAT_VERSION, 6);
    for (version, named) in [(None, 1), (Some(2), 2), (Some(3), 3)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(paystreams_node::DB_FILE);
        write_old(&path, version);
        let before = raw(&path);
        let error = RedbStorage::open(&path).err().expect("refused");
        let message = error.to_string();
        assert!(message.contains(&format!("format version {named}, older than version {FORMAT_VERSION}")), "{message}");
        assert!(message.contains("start a new chain"), "{message}");
        assert_eq!(raw(&path), before, "left untouched");
        // The node's own open path says the same.
        let error = paystreams_node::open_storage(Some(dir.path())).err().expect("refused");
        assert!(format!("{error:#}").contains("older than version"), "{error:#}");
    }
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
    let before = raw(&path);
    let error = RedbStorage::open(&path).err().expect("refused");
    let message = error.to_string();
    assert!(message.contains(&format!("format version {newer}")), "{message}");
    assert!(message.contains(&format!("version {FORMAT_VERSION} which this node reads")), "{message}");
    assert!(message.contains("run a newer paystream"), "{message}");
    assert_eq!(raw(&path), before, "left untouched");
}

#[test]
fn a_new_file_is_written_in_the_current_format() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(paystreams_node::DB_FILE);
    drop(RedbStorage::open(&path).expect("create"));
    let format = raw(&path).into_iter().find(|(key, _)| key == "format").map(|(_, v)| v);
    assert_eq!(format, Some(borsh::to_vec(&FORMAT_VERSION).expect("encode")));
    drop(RedbStorage::open(&path).expect("reopens"));
}
