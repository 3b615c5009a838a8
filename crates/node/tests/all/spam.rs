//! Spam cannot grow the chain for free: admission refuses what cannot succeed (stale nonces,
//! nonces already pending or beyond the pending ones, too many pending per signer, transfers the
//! sender cannot cover), and transactions that still fail in execution are kept, with their
//! receipts, in a bounded table outside the blocks.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use paystreams_lez_core::{AccountId, crypto::SecretKey};
use paystreams_node::{
    Chain, ChainConfig, NodeConfig, RedbStorage, Storage as _,
    chain::{MAX_TXS_PER_BLOCK, PENDING_PER_SIGNER_MAX},
    start, verify,
};
use paystreams_rpc::{HexHash, LezApiClient as _, PaystreamsApiClient as _, TxStatus, codes};

use crate::common::*;

/// A node with dev methods whose timed blocks are an hour apart: transactions stay pending until
/// the test produces a block.
fn held_node_config() -> NodeConfig {
    NodeConfig {
        rpc_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        block_time: Duration::from_secs(3600),
        dev: true,
        ..NodeConfig::new(None)
    }
}

/// The refusal's message and its `{code, name}` data.
fn refusal(result: Result<HexHash, jsonrpsee::core::ClientError>) -> (String, String) {
    let e = rpc_error(result);
    assert_eq!(e.code(), codes::TRANSACTION_REJECTED, "{}", e.message());
    (e.message().to_owned(), e.data().map(|d| d.get().to_owned()).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_refusal_says_what_to_do_and_admitted_transfers_settle_exactly() {
    let node = start(held_node_config()).await.expect("start");
    let client = http(&node.rpc_url());
    let chain = Arc::clone(node.chain());
    let (alice, bob) = (node.dev_keys()[0].clone(), node.dev_keys()[1].clone());
    let supply = chain.native_supply();
    let start_balance = chain.account(&alice.account_id()).balance;
    let bob_start = chain.account(&bob.account_id()).balance;
    let send_raw = |tx: &paystreams_runtime::Transaction| client.send_transaction(b64(tx));

    send_raw(&transfer(&alice, bob.account_id(), 10, 0)).await.expect("nonce 0 admitted");
    chain.produce_block(MAX_TXS_PER_BLOCK, 0).expect("block");
    assert_eq!(chain.account(&alice.account_id()).nonce, 1);

    // Stale: below the committed nonce.
    let (message, data) = refusal(send_raw(&transfer(&alice, bob.account_id(), 11, 0)).await);
    assert_eq!(data, r#"{"code":1101,"name":"StaleNonce"}"#);
    assert!(
        message.contains(&format!(
            "nonce 0 of signer {} is stale: the account's next nonce is 1; re-sign with current nonces",
            alice.account_id()
        )),
        "{message}"
    );
    // A gap: beyond the committed nonce plus the pending ones.
    let (message, data) = refusal(send_raw(&transfer(&alice, bob.account_id(), 11, 3)).await);
    assert_eq!(data, r#"{"code":1103,"name":"NonceGap"}"#);
    assert!(message.contains("nonce 3 of signer") && message.contains("leaves a gap"), "{message}");
    assert!(message.contains("next nonce is 1") && message.contains("send the missing nonces first"), "{message}");
    // A transfer the sender cannot cover.
    let left = start_balance - 10;
    let (message, data) = refusal(send_raw(&transfer(&alice, bob.account_id(), left + 1, 1)).await);
    assert_eq!(data, r#"{"code":1105,"name":"InsufficientBalance"}"#);
    assert!(
        message.contains(&format!("cannot cover a transfer of {}: its balance is {left}, of which 0", left + 1)),
        "{message}"
    );

    // Pending transactions count: their nonces are taken, their transfers already spent.
    send_raw(&transfer(&alice, bob.account_id(), 100, 1)).await.expect("nonce 1 admitted");
    let (message, data) = refusal(send_raw(&transfer(&alice, bob.account_id(), 101, 1)).await);
    assert_eq!(data, r#"{"code":1102,"name":"NoncePending"}"#);
    assert!(message.contains("already used by a pending transaction: the account's next nonce is 2"), "{message}");
    send_raw(&transfer(&alice, bob.account_id(), 5, 2)).await.expect("nonce 2 admitted");
    let rest = left - 105;
    let (message, data) = refusal(send_raw(&transfer(&alice, bob.account_id(), rest + 1, 3)).await);
    assert_eq!(data, r#"{"code":1105,"name":"InsufficientBalance"}"#);
    assert!(message.contains(&format!("its balance is {left}, of which 105 is already moved")), "{message}");
    send_raw(&transfer(&alice, bob.account_id(), rest, 3)).await.expect("the exact rest is admitted");

    // Too many pending for one signer: the bound, then one more.
    let carol = node.dev_keys()[2].clone();
    let many: Vec<String> =
        (0..PENDING_PER_SIGNER_MAX).map(|n| b64(&transfer(&carol, bob.account_id(), 0, n as u128))).collect();
    let outcomes = client.send_transactions(many).await.expect("batch");
    assert!(outcomes.iter().all(|o| o.hash.is_some()), "{:?}", outcomes.iter().find(|o| o.error.is_some()));
    let next = PENDING_PER_SIGNER_MAX as u128;
    let (message, data) = refusal(send_raw(&transfer(&carol, bob.account_id(), 0, next)).await);
    assert_eq!(data, r#"{"code":1104,"name":"TooManyPending"}"#);
    assert!(message.contains(&format!("already has {PENDING_PER_SIGNER_MAX} transactions pending")), "{message}");

    // Everything admitted succeeds; the balances settle to the unit.
    chain.produce_block(MAX_TXS_PER_BLOCK, 0).expect("block");
    assert_eq!(chain.mempool_len(), 0);
    assert_eq!(chain.account(&alice.account_id()).balance, 0);
    assert_eq!(chain.account(&alice.account_id()).nonce, 4);
    assert_eq!(chain.account(&carol.account_id()).nonce, next);
    assert_eq!(chain.account(&bob.account_id()).balance, bob_start + start_balance);
    assert_eq!(chain.native_supply(), supply);
    // Once included, the bound frees up.
    send_raw(&transfer(&carol, bob.account_id(), 0, next)).await.expect("admitted after the block");

    // What still fails in execution leaves a receipt users can read; LEZ's getTransaction stays
    // null for it, ours returns it.
    let stranger = SecretKey::generate().account_id();
    let tx = transfer(&alice, stranger, 0, 4);
    let hash = send_raw(&tx).await.expect("admitted: it can only fail in execution");
    chain.produce_block(MAX_TXS_PER_BLOCK, 0).expect("block");
    let receipt = client.get_transaction_receipt(hash).await.expect("call").expect("receipt kept");
    assert_eq!(receipt.status, TxStatus::Failed, "{receipt:?}");
    assert!(client.get_transaction(hash).await.expect("call").is_none(), "LEZ's getTransaction: null");
    let info = client.get_transaction_info(hash).await.expect("call").expect("kept");
    assert_eq!(info.transaction, b64(&tx));
    assert_eq!(info.block_id, receipt.block_id);
    let block = chain.block(receipt.block_id.expect("block id")).expect("read").expect("block");
    assert_eq!(block.failed_count, 1);
    assert!(block.transactions.iter().all(|t| t.hash() != tx.hash()), "not stored in the block");
    assert_eq!(chain.account(&stranger).balance, 0);
    assert_eq!(chain.native_supply(), supply);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_mixing_good_and_refused_admits_the_good_ones_in_order() {
    let node = start(held_node_config()).await.expect("start");
    let client = http(&node.rpc_url());
    let chain = Arc::clone(node.chain());
    let (dave, erin) = (node.dev_keys()[3].clone(), node.dev_keys()[4].clone());
    let (dave_start, erin_start) =
        (chain.account(&dave.account_id()).balance, chain.account(&erin.account_id()).balance);
    let to = erin.account_id();
    let batch = [
        transfer(&dave, to, 1, 0),
        transfer(&dave, to, 2, 0),
        transfer(&dave, to, 3, 5),
        transfer(&dave, to, 4, 1),
        transfer(&dave, to, dave_start, 2),
        transfer(&dave, to, 6, 2),
    ];
    let outcomes = client.send_transactions(batch.iter().map(b64).collect()).await.expect("batch");
    let admitted: Vec<bool> = outcomes.iter().map(|o| o.hash.is_some()).collect();
    assert_eq!(admitted, [true, false, false, true, false, true], "{outcomes:?}");
    let messages: Vec<String> = outcomes.iter().filter_map(|o| o.error.as_ref().map(|e| e.message.clone())).collect();
    assert!(messages[0].contains("already used by a pending transaction"), "{messages:?}");
    assert!(messages[1].contains("leaves a gap: the account's next nonce is 1"), "{messages:?}");
    assert!(messages[2].contains("cannot cover a transfer"), "{messages:?}");
    assert!(outcomes.iter().filter_map(|o| o.error.as_ref()).all(|e| e.code == codes::TRANSACTION_REJECTED));
    chain.produce_block(MAX_TXS_PER_BLOCK, 0).expect("block");
    for (outcome, tx) in outcomes.iter().zip(&batch) {
        if let Some(hash) = outcome.hash {
            assert_eq!(hash.0, tx.hash());
            let receipt = client.get_transaction_receipt(hash).await.expect("call").expect("receipt");
            assert_eq!(receipt.status, TxStatus::Included, "{receipt:?}");
        }
    }
    assert_eq!(chain.account(&dave.account_id()).balance, dave_start - 11);
    assert_eq!(chain.account(&erin.account_id()).balance, erin_start + 11);
    node.shutdown().await;
}

/// Transfers from fresh keys (nonce 0, nothing to send) to an unclaimed account: each is
/// admissible and fails in execution.
fn failing(count: usize, to: AccountId) -> Vec<paystreams_runtime::Transaction> {
    (0..count).map(|_| transfer(&SecretKey::generate(), to, 0, 0)).collect()
}

#[test]
fn a_flood_of_failing_transactions_is_kept_bounded_outside_the_blocks() {
    const RETAINED: u64 = 40;
    const PER_BLOCK: usize = 30;
    const ROUNDS: u64 = 5;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(paystreams_node::DB_FILE);
    let storage = Arc::new(RedbStorage::open(&path).expect("open").with_failed_retained(RETAINED));
    let config = ChainConfig::dev(2, 1_000_000);
    let chain = Chain::open(Arc::clone(&storage) as Arc<dyn paystreams_node::Storage>, &config).expect("chain");
    let (payer, payee) = (chain.dev_keys()[0].clone(), chain.dev_keys()[1].account_id());
    let supply = chain.native_supply();
    let sink = SecretKey::generate().account_id();

    // A quiet block: one good transfer.
    chain.submit(transfer(&payer, payee, 1, 0)).expect("admitted");
    let quiet = chain.produce_block(MAX_TXS_PER_BLOCK, 0).expect("block").info.header.height;
    let quiet_bytes = borsh::to_vec(&chain.block(quiet).expect("read").expect("block")).expect("encode").len();

    // Flood blocks: the same good transfer plus PER_BLOCK failing ones.
    let mut hashes = Vec::new();
    let mut flood_blocks = Vec::new();
    for round in 0..ROUNDS {
        chain.submit(transfer(&payer, payee, 1, u128::from(round) + 1)).expect("admitted");
        for tx in failing(PER_BLOCK, sink) {
            hashes.push(chain.submit(tx).expect("admitted"));
        }
        flood_blocks.push(chain.produce_block(MAX_TXS_PER_BLOCK, 0).expect("block").info.header.height);
    }

    // Stored blocks hold only what succeeded: a flood block is the size of the quiet one.
    for height in &flood_blocks {
        let block = chain.block(*height).expect("read").expect("block");
        assert_eq!((block.transactions.len(), block.failed_count), (1, PER_BLOCK as u32));
        assert_eq!(borsh::to_vec(&block).expect("encode").len(), quiet_bytes, "block {height}");
    }
    // The failed ones beyond the bound are gone, oldest first; the recent ones are readable.
    assert_eq!(storage.failed_len().expect("count"), RETAINED);
    let kept = hashes.len() - RETAINED as usize;
    for (i, hash) in hashes.iter().enumerate() {
        let receipt = chain.receipt(hash).expect("read");
        let transaction = chain.transaction(hash).expect("read");
        if i < kept {
            assert!(receipt.is_none() && transaction.is_none(), "failure {i} should be pruned");
        } else {
            let receipt = receipt.unwrap_or_else(|| panic!("failure {i} should be kept"));
            assert_eq!(receipt.status, TxStatus::Failed);
            assert!(receipt.error.is_some());
            assert_eq!(transaction.expect("kept").block_id, receipt.block_id);
        }
    }
    // Balances settle to the unit and the chain replays.
    assert_eq!(chain.account(&payer.account_id()).balance, 1_000_000 - 1 - ROUNDS as u128);
    assert_eq!(chain.account(&payee).balance, 1_000_000 + 1 + ROUNDS as u128);
    assert_eq!(chain.native_supply(), supply);
    let head = chain.head_height();
    drop(chain);
    let report = verify(storage.as_ref()).expect("replays");
    assert_eq!(report.height, head);
    assert_eq!(report.transactions, 1 + ROUNDS);
    assert_eq!(report.failed_transactions, ROUNDS * PER_BLOCK as u64);

    // Reopened, the same retention holds.
    drop(storage);
    let storage = Arc::new(RedbStorage::open(&path).expect("reopen").with_failed_retained(RETAINED));
    let chain = Chain::open(Arc::clone(&storage) as Arc<dyn paystreams_node::Storage>, &config).expect("reopened");
    assert!(chain.receipt(&hashes[kept]).expect("read").is_some());
    assert!(chain.receipt(&hashes[kept - 1]).expect("read").is_none());
    for tx in failing(PER_BLOCK, sink) {
        chain.submit(tx).expect("admitted");
    }
    chain.produce_block(MAX_TXS_PER_BLOCK, 0).expect("block");
    assert_eq!(storage.failed_len().expect("count"), RETAINED);
    assert!(chain.receipt(&hashes[kept]).expect("read").is_none(), "pushed out by newer failures");
}
