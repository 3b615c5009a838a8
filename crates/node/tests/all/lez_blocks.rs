//! Blocks as LEZ encodes them: genesis at block 1 with the clock invocation alone, every block
//! signed by the sequencer key with the clock invocation last, failed transactions out of the
//! body but with their receipts, the key and the hash chain across a restart, and the builtin
//! ids of the chosen LEZ release.

use std::sync::Arc;

use borsh::BorshDeserialize as _;
use paystreams_lez_core::{
    Account, AccountId,
    clock::{CLOCK_01_ACCOUNT_ID, CLOCK_10_ACCOUNT_ID, CLOCK_50_ACCOUNT_ID, ClockAccountData},
    crypto::SecretKey,
    lee_transaction::LeeTransaction,
    lez_block::{GENESIS_BLOCK_ID, LezBlock},
    lez_release::{LezRelease, clock_invocation},
    risc0_words::from_words,
};
use paystreams_node::{
    Chain, ChainConfig, MemStorage, NodeConfig, NodeError, RedbStorage, Storage, block::envelope, chain::genesis_state,
};
use paystreams_rpc::TxStatus;
use paystreams_runtime::{Runtime, Transaction};

use crate::common::{create_stream, deposit, init_vault, transfer};

fn chain(release: LezRelease) -> Chain {
    let config = ChainConfig { release, ..ChainConfig::dev(3, 1_000_000_000) };
    Chain::open(Arc::new(MemStorage::new()) as Arc<dyn Storage>, &config).expect("open chain")
}

fn clock_data(account: &Account) -> ClockAccountData {
    ClockAccountData::try_from_slice(&account.data).expect("clock data")
}

/// The block's timestamp as its clock invocation carries it (LEZ's `u64` instruction: low word,
/// then high word).
fn clock_words_timestamp(tx: &LeeTransaction) -> u64 {
    let LeeTransaction::Public(tx) = tx;
    from_words::<u64>(&tx.message.instruction_data).expect("a u64 instruction")
}

/// Decodes every block from LEZ's bytes and checks what LEZ's wallet would: the sequencer's
/// signature over the recomputed hash, the chain of hashes, and the clock invocation last with
/// the block's own timestamp. Returns the decoded blocks.
fn check_blocks(chain: &Chain) -> Vec<LezBlock> {
    let sequencer = chain.sequencer_public_key();
    let clock = chain.runtime().builtin_ids().clock;
    let mut previous = [0_u8; 32];
    let mut blocks = vec![];
    for id in GENESIS_BLOCK_ID..=chain.head_height() {
        let block = chain.lez_block(id).expect("read").expect("stored");
        let block = LezBlock::decode(&block.to_bytes()).expect("LEZ's bytes decode");
        assert!(block.is_signed_by(&sequencer), "block {id} is signed by the sequencer key");
        assert_eq!(block.header.block_id, id);
        assert_eq!(block.header.prev_block_hash, previous, "block {id} chains to its parent");
        let last = block.body.transactions.last().expect("a clock invocation");
        assert_eq!(*last, clock_invocation(clock, block.header.timestamp), "block {id} ends with the clock");
        assert_eq!(clock_words_timestamp(last), block.header.timestamp);
        previous = block.header.hash;
        blocks.push(block);
    }
    assert_eq!(chain.lez_block_range(GENESIS_BLOCK_ID, chain.head_height()).expect("range"), blocks);
    blocks
}

#[test]
fn genesis_is_block_1_with_the_clock_invocation_alone_and_clock_01_reads_1_0() {
    let chain = chain(LezRelease::V0_2_4);
    let clock = LezRelease::V0_2_4.builtin_ids().clock;
    let genesis = chain.lez_block(GENESIS_BLOCK_ID).expect("read").expect("genesis");
    assert_eq!(genesis.header.block_id, 1);
    assert_eq!(genesis.header.prev_block_hash, [0; 32]);
    assert_eq!(genesis.header.timestamp, 0);
    assert_eq!(genesis.body.transactions, vec![clock_invocation(clock, 0)]);
    assert_eq!(
        hex::encode(genesis.body.transactions[0].hash()),
        "98d54a5257ad1716872303f90726f80aaf564d208b68adabe6a37d1087d44847",
        "LEZ's v0.2.4 genesis clock transaction"
    );
    assert!(chain.lez_block(0).expect("read").is_none(), "LEZ has no block 0");

    // The genesis state: the clock invocation at timestamp 0 leaves CLOCK_01 = {1, 0}.
    let runtime = Runtime::for_release(LezRelease::V0_2_4);
    let state = genesis_state(chain.genesis(), &runtime).expect("genesis state");
    use paystreams_runtime::StateView as _;
    assert_eq!(clock_data(&state.account(&CLOCK_01_ACCOUNT_ID)), ClockAccountData { block_id: 1, timestamp_ms: 0 });
    for id in [CLOCK_10_ACCOUNT_ID, CLOCK_50_ACCOUNT_ID] {
        assert_eq!(clock_data(&state.account(&id)), ClockAccountData { block_id: 0, timestamp_ms: 0 });
    }

    // Block 2 follows at once, at the wall time, so no user transaction runs at time 0; the head
    // block's timestamp is what CLOCK_01 shows.
    assert_eq!(chain.head_height(), GENESIS_BLOCK_ID + 1);
    let head = chain.lez_block(chain.head_height()).expect("read").expect("head");
    assert!(head.header.timestamp > 1_700_000_000_000);
    let clock_01 = clock_data(&chain.account(&CLOCK_01_ACCOUNT_ID));
    assert_eq!(clock_01, ClockAccountData { block_id: 2, timestamp_ms: head.header.timestamp });
    check_blocks(&chain);
}

/// LEZ's genesis hash reproduced end to end: a v0.2.0 chain's block 1 is LEZ's empty-genesis
/// block (id 1, zero parent, timestamp 0, `clock_invocation(0)` alone), whatever accounts the
/// genesis state funds, so its hash is the one LEZ's `HashableBlockData` gives.
#[test]
fn a_v0_2_0_chain_starts_with_lez_s_empty_genesis_block() {
    for accounts in [0, 3] {
        let config = ChainConfig { release: LezRelease::V0_2_0, ..ChainConfig::dev(accounts, 1_000) };
        let chain = Chain::open(Arc::new(MemStorage::new()) as Arc<dyn Storage>, &config).expect("open chain");
        let genesis = chain.lez_block(GENESIS_BLOCK_ID).expect("read").expect("genesis");
        assert_eq!(
            hex::encode(genesis.header.hash),
            "1818aa7a25f1657904f6d0d06043448ccfc419557c1f85a9c1dc25208cf315f3"
        );
        assert!(genesis.is_signed_by(&config.sequencer.public_key()));
    }
}

#[test]
fn every_block_is_signed_with_the_clock_last_and_failed_transactions_keep_only_their_receipts() {
    let chain = chain(LezRelease::V0_2_4);
    let owner = chain.dev_keys()[0].clone();
    let provider = chain.dev_keys()[1].account_id();
    let init = init_vault(&owner, 1, 0);
    let funded = deposit(&owner, 1, 1_000, 1);
    // Allocates more than the vault holds: fails, changes nothing.
    let over = create_stream(&owner, 1, 0, provider, 10, 5_000, 2);
    for tx in [&init, &funded, &over] {
        chain.submit(tx.clone()).expect("admitted");
    }
    chain.produce_block(10, 0).expect("block");
    let ok = create_stream(&owner, 1, 0, provider, 10, 500, 2);
    chain.submit(ok.clone()).expect("admitted");
    chain.produce_block(10, 1_000).expect("block");

    let blocks = check_blocks(&chain);
    let with_txs = &blocks[2];
    assert_eq!(
        with_txs.body.transactions,
        vec![
            envelope(&init),
            envelope(&funded),
            clock_invocation(chain.runtime().builtin_ids().clock, with_txs.header.timestamp)
        ],
        "the failed transaction is not in LEZ's body"
    );
    assert_eq!(blocks[3].body.transactions.first(), Some(&envelope(&ok)));

    let receipt = chain.receipt(&over.hash()).expect("read").expect("kept");
    assert_eq!(receipt.status, TxStatus::Failed);
    assert_eq!(receipt.block_id, Some(with_txs.header.block_id));
    assert_eq!(chain.lez_transaction(&over.hash()).expect("read"), None, "LEZ answers null for a dropped transaction");
    assert_eq!(chain.lez_transaction(&ok.hash()).expect("read"), Some((envelope(&ok), blocks[3].header.block_id)),);
    let clock_01 = clock_data(&chain.account(&CLOCK_01_ACCOUNT_ID));
    assert_eq!(clock_01, ClockAccountData { block_id: chain.head_height(), timestamp_ms: blocks[3].header.timestamp });

    // Ranges are bounded and name a missing block as LEZ does.
    let head = chain.head_height();
    assert!(matches!(chain.lez_block_range(1, head + 1), Err(NodeError::BlockNotFound(id)) if id == head + 1));
    assert!(matches!(chain.lez_block_range(3, 2), Err(NodeError::InvalidArgument(_))));
    assert!(matches!(chain.lez_block_range(1, 5_000), Err(NodeError::InvalidArgument(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_the_sequencer_key_and_the_hash_chain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("chain");
    let config = NodeConfig { data_dir: Some(data_dir.clone()), dev_accounts: 2, ..NodeConfig::ephemeral_dev() };
    let node = paystreams_node::start(config.clone()).await.expect("start");
    let sequencer = node.sequencer_public_key();
    let from = node.dev_keys()[0].clone();
    let to = node.dev_keys()[1].account_id();
    node.chain().submit(transfer(&from, to, 5, 0)).expect("admitted");
    tokio::task::block_in_place(|| node.chain().produce_block(10, 0)).expect("block");
    let before = check_blocks(node.chain());
    node.shutdown().await;

    let key_file = data_dir.join(paystreams_node::SEQUENCER_KEY_FILE);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key_file).expect("key file").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the sequencer key is the owner's only");
    }

    let node = paystreams_node::start(config.clone()).await.expect("restart");
    assert_eq!(node.sequencer_public_key(), sequencer, "the same key signs after a restart");
    node.chain().submit(transfer(&from, to, 5, 1)).expect("admitted");
    tokio::task::block_in_place(|| node.chain().produce_block(10, 0)).expect("block");
    let after = check_blocks(node.chain());
    assert_eq!(after[..before.len()], before[..], "the stored blocks are unchanged");
    assert_eq!(after.len(), before.len() + 1);
    node.shutdown().await;

    let storage = paystreams_node::open_storage(Some(&data_dir)).expect("open");
    let report = paystreams_node::verify(storage.as_ref()).expect("the chain replays and every signature verifies");
    assert_eq!(report.height, after.len() as u64);
    drop(storage);

    // Another key for the same data dir is refused, saying what to do.
    let other = NodeConfig { sequencer_key: Some(SecretKey::generate()), ..config };
    let error = paystreams_node::start(other).await.err().expect("refused");
    let message = format!("{error:#}");
    assert!(message.contains("sequencer.key"), "{message}");
}

#[test]
fn a_data_dir_keeps_its_release() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(paystreams_node::DB_FILE);
    let sequencer = SecretKey::generate();
    let config = |release| ChainConfig { release, sequencer: sequencer.clone(), ..ChainConfig::dev(1, 10) };
    {
        let storage = Arc::new(RedbStorage::open(&path).expect("open"));
        let chain = Chain::open(storage as Arc<dyn Storage>, &config(LezRelease::V0_2_0)).expect("create");
        assert_eq!(chain.lez_release(), LezRelease::V0_2_0);
    }
    let storage = Arc::new(RedbStorage::open(&path).expect("open"));
    let error =
        Chain::open(Arc::clone(&storage) as Arc<dyn Storage>, &config(LezRelease::V0_2_4)).err().expect("refused");
    let message = error.to_string();
    assert!(message.contains("created for LEZ release v0.2.0"), "{message}");
    assert!(message.contains("pass --lez-release v0.2.0"), "{message}");
    assert!(message.contains("start a new chain"), "{message}");
    let chain = Chain::open(storage as Arc<dyn Storage>, &config(LezRelease::V0_2_0)).expect("same release reopens");
    assert_eq!(chain.runtime().builtin_ids().clock, LezRelease::V0_2_0.builtin_ids().clock);
}

/// The same native transfer under the release's authenticated-transfer id and under another
/// release's.
fn transfer_under(
    program_id: paystreams_lez_core::ProgramId,
    from: &SecretKey,
    to: AccountId,
    nonce: u128,
) -> Transaction {
    let mut message = transfer(from, to, 3, nonce).message;
    message.program_id = program_id;
    Transaction::sign(message, &[from])
}

#[test]
fn builtins_run_under_the_release_ids_and_addresses_follow_them() {
    for (release, other) in [(LezRelease::V0_2_0, LezRelease::V0_2_4), (LezRelease::V0_2_4, LezRelease::V0_2_0)] {
        let chain = chain(release);
        let ids = chain.runtime().builtin_ids();
        assert_eq!(Some(ids.authenticated_transfer), release.program_id("authenticated_transfer"));
        assert_eq!(Some(ids.clock), release.program_id("clock"));
        assert_ne!(ids.authenticated_transfer, other.builtin_ids().authenticated_transfer);
        for id in [CLOCK_01_ACCOUNT_ID, CLOCK_10_ACCOUNT_ID, CLOCK_50_ACCOUNT_ID] {
            assert_eq!(chain.account(&id).program_owner, ids.clock, "{release}: clock accounts are the clock's");
        }
        let from = chain.dev_keys()[0].clone();
        let to = chain.dev_keys()[1].account_id();
        assert_eq!(chain.account(&from.account_id()).program_owner, ids.authenticated_transfer);

        let good = transfer_under(ids.authenticated_transfer, &from, to, 0);
        let foreign = transfer_under(other.builtin_ids().authenticated_transfer, &from, to, 1);
        chain.submit(good.clone()).expect("admitted");
        chain.submit(foreign.clone()).expect("admitted");
        chain.produce_block(10, 0).expect("block");
        assert_eq!(chain.receipt(&good.hash()).expect("read").expect("receipt").status, TxStatus::Included);
        let refused = chain.receipt(&foreign.hash()).expect("read").expect("receipt");
        assert_eq!(refused.status, TxStatus::Failed, "{release}: {other}'s id names no program here");
        assert_eq!(refused.error.map(|e| e.name), Some("UnknownProgram".to_owned()));
        assert!(
            refused.events.is_empty() && chain.receipt(&good.hash()).expect("read").expect("receipt").events.len() == 1,
            "{release}: the transfer's event is decoded under the release's id"
        );
        check_blocks(&chain);
    }
}
