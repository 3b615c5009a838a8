//! The stream index stored in redb: written with each block, equal to a rebuild from state,
//! loaded on restart, and rebuilt (then stored) when a data dir has none or a stale one.

use std::{path::Path, sync::Arc};

use crate::common::{create_stream, deposit, init_vault};
use paystreams_lez_core::{AccountId, crypto::SecretKey, lez_release::LezRelease};
use paystreams_node::{
    Chain, ChainConfig, RedbStorage, Storage,
    block::{BlockParts, StoredBlock},
    index::StreamIndex,
};
use paystreams_program::{
    payment_streams_program_id, pda,
    state::{StreamConfig, VaultConfig, decode},
};
use paystreams_rpc::StreamView;
use paystreams_runtime::{StateDiff, StateView as _};
use redb::{ReadableDatabase as _, ReadableTable as _, TableDefinition, TableHandle as _};

const KEYS: u32 = 6;

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n
    }
}

/// The same sequencer key on every open, so reopening is allowed.
fn config(balance: u128) -> ChainConfig {
    ChainConfig { sequencer: sequencer(), ..ChainConfig::dev(KEYS, balance) }
}

fn sequencer() -> SecretKey {
    SecretKey::from_bytes(&[0x5e; 32]).expect("key")
}

fn open(path: &Path) -> (Arc<RedbStorage>, Chain) {
    let storage = Arc::new(RedbStorage::open(path).expect("open storage"));
    let chain = Chain::open(Arc::clone(&storage) as Arc<dyn Storage>, &config(1_000_000_000_000)).expect("open chain");
    (storage, chain)
}

fn head(chain: &Chain) -> StoredBlock {
    chain.block(chain.head_height()).expect("read").expect("head block")
}

fn rebuilt(storage: &RedbStorage) -> StreamIndex {
    StreamIndex::rebuild(&storage.load_state().expect("load state"), &payment_streams_program_id())
}

/// Everything the index serves: each key's vaults and its streams as owner and as provider.
fn listings(chain: &Chain) -> Vec<(Vec<u64>, Vec<StreamView>, Vec<StreamView>)> {
    chain
        .dev_keys()
        .iter()
        .map(|key| {
            let id = key.account_id();
            (
                chain.vaults(&id).iter().map(|v| v.vault_id).collect(),
                chain.streams(Some(&id), None).expect("by owner"),
                chain.streams(None, Some(&id)).expect("by provider"),
            )
        })
        .collect()
}

/// One random transaction per dev key per block: open a vault, fund one, create a stream
/// (sometimes in a vault that does not exist, or beyond the funds: a failed receipt that must
/// not reach the index).
fn random_blocks(chain: &Chain, rng: &mut Rng, blocks: u32) {
    let keys: Vec<SecretKey> = chain.dev_keys().to_vec();
    for _ in 0..blocks {
        for key in &keys {
            let nonce = chain.account(&key.account_id()).nonce;
            let vaults = chain.vaults(&key.account_id());
            let provider = keys[usize::try_from(rng.below(u64::from(KEYS))).expect("small")].account_id();
            let allocation = 100 + u128::from(rng.below(5_000));
            let rate = 1 + rng.below(5);
            let pick = rng.below(10);
            let tx = if vaults.is_empty() || pick == 0 {
                // Sometimes a vault id already open: a failed receipt.
                init_vault(key, rng.below(4), nonce)
            } else if pick == 1 {
                // A vault that does not exist: a failed receipt.
                create_stream(key, 99, 0, provider, rate, allocation, nonce)
            } else {
                let vault = &vaults[usize::try_from(rng.below(vaults.len() as u64)).expect("small")];
                if pick <= 3 {
                    deposit(key, vault.vault_id, 20_000 + u128::from(rng.below(100_000)), nonce)
                } else {
                    // Beyond the vault's funds this fails too.
                    create_stream(key, vault.vault_id, vault.next_stream_id, provider, rate, allocation, nonce)
                }
            };
            chain.submit(tx).expect("admitted");
        }
        chain.produce_block(1_000, 0).expect("block");
    }
}

#[test]
fn stored_index_equals_a_rebuild_after_random_blocks_and_is_loaded_on_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("chain.redb");
    let (storage, chain) = open(&path);
    let mut rng = Rng(7);
    for _ in 0..6 {
        random_blocks(&chain, &mut rng, 5);
        let stored =
            storage.stream_index(&head(&chain)).expect("read").expect("the stored index is current at every block");
        assert_eq!(stored, rebuilt(&storage));
    }
    let stored = storage.stream_index(&head(&chain)).expect("read").expect("current");
    let streams = stored.stream_entries().count();
    assert!(
        stored.vault_entries().count() >= 6 && streams >= 20,
        "the random blocks opened vaults and streams: {streams}"
    );
    let before = listings(&chain);
    drop(chain);
    drop(storage);

    let (storage, chain) = open(&path);
    assert_eq!(listings(&chain), before, "the loaded index serves the same lists");
    assert_eq!(storage.stream_index(&head(&chain)).expect("read"), Some(stored));
    random_blocks(&chain, &mut rng, 3);
    assert_eq!(storage.stream_index(&head(&chain)).expect("read"), Some(rebuilt(&storage)));
}

#[test]
fn a_data_dir_without_the_index_rebuilds_it_once_and_stores_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("chain.redb");
    let (storage, chain) = open(&path);
    random_blocks(&chain, &mut Rng(11), 8);
    let before = listings(&chain);
    let head_block = head(&chain);
    drop(chain);
    drop(storage);

    // What a node from before the stored index leaves: no marker, no index tables.
    {
        let db = redb::Database::open(&path).expect("raw open");
        let txn = db.begin_write().expect("write");
        txn.open_table(TableDefinition::<&str, &[u8]>::new("meta"))
            .expect("meta")
            .remove("stream_index")
            .expect("remove marker")
            .expect("a marker was stored");
        assert!(txn.delete_table(TableDefinition::<&[u8], ()>::new("index_vaults")).expect("delete"));
        assert!(txn.delete_table(TableDefinition::<&[u8], ()>::new("index_streams")).expect("delete"));
        txn.commit().expect("commit");
        let read = db.begin_read().expect("read");
        assert!(read.list_tables().expect("tables").all(|t| !t.name().starts_with("index_")));
    }
    let storage = Arc::new(RedbStorage::open(&path).expect("open storage"));
    assert_eq!(storage.stream_index(&head_block).expect("read"), None, "no index stored");
    let chain = Chain::open(Arc::clone(&storage) as Arc<dyn Storage>, &config(0)).expect("open chain");
    assert_eq!(listings(&chain), before, "the rebuilt index serves the same lists");
    assert_eq!(
        storage.stream_index(&head_block).expect("read"),
        Some(rebuilt(&storage)),
        "the rebuilt index was stored"
    );
    random_blocks(&chain, &mut Rng(12), 3);
    assert_eq!(
        storage.stream_index(&head(&chain)).expect("read"),
        Some(rebuilt(&storage)),
        "and is kept current by later blocks"
    );
}

/// Writes `block` the way a node without the stored index does: the block, its account changes
/// and the head in one transaction.
fn commit_without_index(path: &Path, block: &StoredBlock, diff: &StateDiff) {
    let db = redb::Database::open(path).expect("raw open");
    let txn = db.begin_write().expect("write");
    {
        txn.open_table(TableDefinition::<u64, &[u8]>::new("blocks"))
            .expect("blocks")
            .insert(block.height(), borsh::to_vec(block).expect("encode").as_slice())
            .expect("insert block");
        let mut accounts = txn.open_table(TableDefinition::<&[u8], &[u8]>::new("accounts")).expect("accounts");
        for (id, account) in &diff.accounts {
            accounts.insert(id.0.as_slice(), borsh::to_vec(account).expect("encode").as_slice()).expect("insert");
        }
        txn.open_table(TableDefinition::<&str, &[u8]>::new("meta"))
            .expect("meta")
            .insert("head", borsh::to_vec(&block.height()).expect("encode").as_slice())
            .expect("insert head");
    }
    txn.commit().expect("commit");
}

#[test]
fn blocks_committed_without_the_index_make_it_stale_and_it_is_rebuilt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("chain.redb");
    let (storage, chain) = open(&path);
    random_blocks(&chain, &mut Rng(5), 8);
    let parent = head(&chain);
    let program = payment_streams_program_id();
    // A vault with at least one stream, copied (config and streams) to a new owner.
    let (owner, vault_id) = chain
        .dev_keys()
        .iter()
        .find_map(|key| {
            let id = key.account_id();
            chain.vaults(&id).into_iter().find(|v| v.next_stream_id > 0).map(|v| (id, v.vault_id))
        })
        .expect("the random blocks created a stream");
    drop(chain);

    let new_owner = SecretKey::generate().account_id();
    let mut state = storage.load_state().expect("state");
    let from = pda::vault_config_id(&program, &owner, vault_id);
    let to = pda::vault_config_id(&program, &new_owner, vault_id);
    let mut config_account = state.account(&from);
    let mut config: VaultConfig = decode(&config_account.data).expect("vault config");
    config.owner = new_owner;
    config_account.data = borsh::to_vec(&config).expect("encode");
    let mut diff = StateDiff::default();
    diff.accounts.insert(to, config_account);
    let mut providers: Vec<AccountId> = vec![];
    for s in 0..config.next_stream_id {
        let stream = state.account(&pda::stream_config_id(&program, &from, s));
        if let Ok(decoded) = decode::<StreamConfig>(&stream.data) {
            providers.push(decoded.provider);
        }
        diff.accounts.insert(pda::stream_config_id(&program, &to, s), stream);
    }
    assert!(!providers.is_empty());
    state.apply_diff(&diff);
    // Committed as an older node (or any writer without the index) would: block, accounts and
    // head, no index entries and no marker.
    let parts = BlockParts {
        block_id: parent.height() + 1,
        prev_block_hash: parent.hash(),
        timestamp_ms: parent.timestamp_ms(),
        transactions: vec![],
        failed: vec![],
        state_root: state.state_root(),
        time_offset_ms: parent.time_offset_ms,
    };
    let block = StoredBlock::seal(parts, &sequencer(), LezRelease::DEFAULT.builtin_ids().clock);
    drop(storage);
    commit_without_index(&path, &block, &diff);
    let storage = RedbStorage::open(&path).expect("open storage");
    assert_eq!(storage.stream_index(&block).expect("read"), None, "stale after the commit");
    drop(storage);

    let (storage, chain) = open(&path);
    assert_eq!(chain.head_height(), block.height());
    assert_eq!(
        chain.vaults(&new_owner).iter().map(|v| v.vault_id).collect::<Vec<_>>(),
        [vault_id],
        "the rebuilt index has the vault the stale one lacked"
    );
    let listed = chain.streams(Some(&new_owner), None).expect("by owner");
    assert_eq!(listed.len(), providers.len());
    for provider in &providers {
        assert!(
            chain.streams(None, Some(provider)).expect("by provider").iter().any(|s| s.owner == new_owner),
            "the provider lists the copied stream"
        );
    }
    assert_eq!(storage.stream_index(&block).expect("read"), Some(rebuilt(&storage)));
}

#[test]
fn accounts_that_do_not_match_the_head_state_root_are_refused_at_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("chain.redb");
    let (storage, chain) = open(&path);
    random_blocks(&chain, &mut Rng(3), 2);
    let victim = chain.dev_keys()[0].account_id();
    drop(chain);
    drop(storage);
    {
        // One balance changed behind the chain's back.
        let db = redb::Database::open(&path).expect("raw open");
        let txn = db.begin_write().expect("write");
        {
            let mut accounts = txn.open_table(TableDefinition::<&[u8], &[u8]>::new("accounts")).expect("accounts");
            let mut account: paystreams_lez_core::Account =
                borsh::from_slice(accounts.get(victim.0.as_slice()).expect("get").expect("stored").value())
                    .expect("decode");
            account.balance += 1;
            accounts.insert(victim.0.as_slice(), borsh::to_vec(&account).expect("encode").as_slice()).expect("insert");
        }
        txn.commit().expect("commit");
    }
    let storage = Arc::new(RedbStorage::open(&path).expect("open storage"));
    let error = Chain::open(storage as Arc<dyn Storage>, &config(0)).err().expect("refused");
    assert!(error.to_string().contains("state root does not match"), "{error}");
}
