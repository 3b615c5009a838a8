//! The node in process on port 0: transactions, receipts, views, subscriptions, restart.

use std::time::Duration;

use crate::common::*;
use jsonrpsee::ws_client::WsClientBuilder;
use paystreams_client::Keystore;
use paystreams_lez_core::lez_block::GENESIS_BLOCK_ID;
use paystreams_node::{NodeConfig, NodeHandle, start};
use paystreams_program::{Event, state::StreamState};
use paystreams_rpc::{EventFilter, LezApiClient as _, PaystreamsApiClient as _, StreamFilter, TxStatus, codes};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_receipts_views_and_subscriptions() {
    let node = start(NodeConfig::ephemeral_dev()).await.expect("start");
    let client = http(&node.rpc_url());
    let owner = node.dev_keys()[0].clone();
    let provider = node.dev_keys()[1].clone();
    assert_eq!(node.dev_keys().len(), 10);
    assert_eq!(client.get_account(owner.account_id()).await.expect("account").balance, 1_000_000_000);
    // Genesis is block 1; block 2 follows at once, so no transaction runs at the genesis time.
    assert_eq!(client.get_last_block_id().await.expect("height"), GENESIS_BLOCK_ID + 1);

    let init = init_vault(&owner, 1, 0);
    let receipt = send(&client, &init).await;
    assert_eq!(receipt.status, TxStatus::Included, "{receipt:?}");
    assert_eq!(receipt.block_id, Some(GENESIS_BLOCK_ID + 2));
    assert_eq!(send(&client, &deposit(&owner, 1, 1_000, 1)).await.status, TxStatus::Included);

    // Over-allocation: included as failed with the program's code; nothing changes.
    let failed = send(&client, &create_stream(&owner, 1, 0, provider.account_id(), 10, 2_000, 2)).await;
    assert_eq!(failed.status, TxStatus::Failed);
    let error = failed.error.expect("error");
    assert_eq!((error.code, error.name.as_str()), (6011, "AllocationExceedsUnallocated"));
    assert!(failed.block_id.is_some());
    let nonces = client.get_accounts_nonces(vec![owner.account_id()]).await.expect("nonces");
    assert_eq!(nonces[0], 2, "a failed transaction bumps no nonce");

    // Re-submitting the same bytes is refused.
    let again = client.send_transaction(b64(&create_stream(&owner, 1, 0, provider.account_id(), 10, 2_000, 2))).await;
    assert!(again.is_ok(), "a re-signed transaction has a new hash");
    let dup = rpc_error(client.send_transaction(b64(&init)).await);
    assert_eq!(dup.code(), codes::DUPLICATE_TRANSACTION);

    let created = send(&client, &create_stream(&owner, 1, 0, provider.account_id(), 10, 500, 2)).await;
    assert_eq!(created.status, TxStatus::Included, "{created:?}");

    let vault = client.get_vault(owner.account_id(), 1).await.expect("vault call").expect("vault");
    assert_eq!((vault.balance.0, vault.total_allocated.0, vault.unallocated.0), (1_000, 500, 500));
    assert_eq!(client.list_vaults(owner.account_id()).await.expect("vaults").len(), 1);

    // Time moves only by paystreams_devAdvanceTime here (automine makes no timed blocks).
    let before = client.get_stream(owner.account_id(), 1, 0).await.expect("call").expect("stream");
    assert_eq!(before.state, StreamState::Active);
    let block = client.dev_advance_time(20).await.expect("advance");
    let after = client.get_stream(owner.account_id(), 1, 0).await.expect("call").expect("stream");
    assert_eq!(after.as_of, block.header.timestamp_ms / 1000);
    let elapsed = after.as_of - before.as_of;
    assert!(elapsed >= 20, "{elapsed}");
    assert_eq!(after.accrued.0, u128::from(10 * (after.as_of - after.stored_accrued_as_of)).min(500));
    assert!(after.accrued.0 >= 200, "{after:?}");
    assert_eq!(after.planned_stop, Some(after.stored_accrued_as_of + 50));

    let by_provider = client
        .list_streams(StreamFilter { owner: None, provider: Some(provider.account_id()) })
        .await
        .expect("by provider");
    assert_eq!(by_provider.len(), 1);
    let by_owner =
        client.list_streams(StreamFilter { owner: Some(owner.account_id()), provider: None }).await.expect("by owner");
    assert_eq!(by_owner, by_provider);
    let none = rpc_error(client.list_streams(StreamFilter::default()).await);
    assert_eq!(none.code(), -32602);

    // Subscriptions over WebSocket: blocks, and events filtered by provider.
    let ws = WsClientBuilder::default().build(node.ws_url()).await.expect("ws");
    let mut blocks = ws.subscribe_blocks().await.expect("subscribe blocks");
    let filter = EventFilter { provider: Some(provider.account_id()), ..EventFilter::default() };
    let mut events = ws.subscribe_events(filter).await.expect("subscribe events");
    // A deposit (no stream: filtered out), then a pause (matches).
    assert_eq!(send(&client, &deposit(&owner, 1, 5, 3)).await.status, TxStatus::Included);
    let paused = send(&client, &pause(&owner, 1, 0, 4)).await;
    assert_eq!(paused.status, TxStatus::Included, "{paused:?}");
    let wait = Duration::from_secs(5);
    let first_block = tokio::time::timeout(wait, blocks.next()).await.expect("in time").expect("item").expect("block");
    assert_eq!(first_block.transactions.len(), 1);
    let event = tokio::time::timeout(wait, events.next()).await.expect("in time").expect("item").expect("event");
    assert!(matches!(event.event, Event::StreamPaused { .. }), "{event:?}");
    assert_eq!(event.tx_hash, paused.hash);
    assert_eq!(Some(event.block_id), paused.block_id);

    // Transaction and block lookups.
    let info = client.get_transaction_info(paused.hash).await.expect("call").expect("tx");
    assert_eq!(info.block_id, paused.block_id);
    let height = client.get_last_block_id().await.expect("height");
    let range = client.get_block_range_info(1, height).await.expect("range");
    assert_eq!(range.len() as u64, height);
    for pair in range.windows(2) {
        assert_eq!(pair[1].header.parent_hash, pair[0].header.hash);
        assert!(pair[1].header.timestamp_ms >= pair[0].header.timestamp_ms);
    }
    let missing = rpc_error(client.get_block_range_info(1, height + 1).await);
    assert_eq!(missing.code(), codes::NOT_FOUND);
    assert!(client.get_block_info(height + 1).await.expect("call").is_none());
    assert!(client.get_program_ids().await.expect("ids").contains_key("payment_streams"));
    blocks.unsubscribe().await.expect("unsubscribe");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_methods_are_refused_without_dev() {
    let config = NodeConfig { dev: false, ..NodeConfig::ephemeral_dev() };
    let node = start(config).await.expect("start");
    let client = http(&node.rpc_url());
    assert_eq!(rpc_error(client.dev_mine(None).await).code(), codes::DEV_METHOD_DISABLED);
    assert_eq!(rpc_error(client.dev_advance_time(5).await).code(), codes::DEV_METHOD_DISABLED);
    node.shutdown().await;
}

/// Waits for the first committed block that `wanted` accepts. The deadline only bounds a hung
/// node; a timed block comes every 100 ms.
async fn next_block(
    blocks: &mut tokio::sync::broadcast::Receiver<std::sync::Arc<paystreams_node::chain::CommittedBlock>>,
    wanted: impl Fn(&paystreams_rpc::BlockInfo) -> bool,
) {
    let wait = async {
        loop {
            match blocks.recv().await {
                Ok(block) if wanted(&block.info) => return,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => panic!("the node stopped producing blocks"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), wait).await.expect("a timed block within a minute");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timed_blocks_include_submitted_transactions() {
    let config = NodeConfig { automine: false, block_time: Duration::from_millis(100), ..NodeConfig::ephemeral_dev() };
    let node = start(config).await.expect("start");
    let client = http(&node.rpc_url());
    let from = node.dev_keys()[0].clone();
    let to = node.dev_keys()[1].account_id();
    let mut blocks = node.chain().subscribe();
    let tx = transfer(&from, to, 7, 0);
    let hash = client.send_transaction(b64(&tx)).await.expect("send");
    // No automine: the transaction waits for the next timed block.
    next_block(&mut blocks, |block| block.transactions.contains(&hash)).await;
    let status = Some(client.get_transaction_receipt(hash).await.expect("call").expect("known").status);
    assert_eq!(status, Some(TxStatus::Included));
    assert_eq!(client.get_account(to).await.expect("account").balance, 1_000_000_007);
    // Empty blocks keep coming.
    let height = client.get_last_block_id().await.expect("height");
    next_block(&mut blocks, |block| block.header.height > height).await;
    assert!(client.get_last_block_id().await.expect("height") > height);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_from_the_data_dir_keeps_everything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keystore = dir.path().join("keystore");
    let config =
        NodeConfig { data_dir: Some(dir.path().join("chain")), dev_accounts: 3, ..NodeConfig::ephemeral_dev() };
    let save_keys = |node: &NodeHandle| {
        Keystore::open(&keystore).expect("keystore").save_dev_keys(node.dev_keys()).expect("save dev keys")
    };
    let node = start(config.clone()).await.expect("start");
    assert_eq!(save_keys(&node), ["dev-0", "dev-1", "dev-2"]);
    let client = http(&node.rpc_url());
    let owner = node.dev_keys()[0].clone();
    let provider = node.dev_keys()[1].account_id();
    let mut receipts = vec![];
    receipts.push(send(&client, &init_vault(&owner, 7, 0)).await);
    receipts.push(send(&client, &deposit(&owner, 7, 900, 1)).await);
    receipts.push(send(&client, &create_stream(&owner, 7, 0, provider, 3, 300, 2)).await);
    receipts.push(send(&client, &create_stream(&owner, 7, 1, provider, 3, 3_000, 3)).await);
    client.dev_advance_time(10).await.expect("advance");
    let head = client.get_last_block_id().await.expect("height");
    let head_block = client.get_block_info(head).await.expect("call").expect("block");
    let stream = client.get_stream(owner.account_id(), 7, 0).await.expect("call");
    let keys: Vec<[u8; 32]> = node.dev_keys().iter().map(|k| k.to_bytes()).collect();
    node.shutdown().await;

    let node = start(config.clone()).await.expect("restart");
    let client = http(&node.rpc_url());
    let restarted_keys: Vec<[u8; 32]> = node.dev_keys().iter().map(|k| k.to_bytes()).collect();
    assert_eq!(restarted_keys, keys, "the genesis keys are reused");
    assert_eq!(save_keys(&node), ["dev-0", "dev-1", "dev-2"], "same keys, same names, no duplicates");
    assert_eq!(client.get_last_block_id().await.expect("height"), head);
    assert_eq!(client.get_block_info(head).await.expect("call").expect("block"), head_block);
    for receipt in &receipts {
        assert_eq!(client.get_transaction_receipt(receipt.hash).await.expect("call").as_ref(), Some(receipt));
    }
    assert_eq!(receipts[3].error.as_ref().map(|e| e.code), Some(6011));
    assert_eq!(client.get_stream(owner.account_id(), 7, 0).await.expect("call"), stream);
    let listed = client.list_streams(StreamFilter { owner: None, provider: Some(provider) }).await.expect("list");
    assert_eq!(listed.len(), 1, "the provider index is rebuilt on start");
    // The dev clock offset survives: the next block is not earlier than the last.
    let next = client.dev_mine(None).await.expect("mine");
    assert!(next.header.timestamp_ms >= head_block.header.timestamp_ms);
    assert_eq!(next.header.parent_hash, head_block.header.hash);
    node.shutdown().await;

    let storage = paystreams_node::open_storage(Some(&dir.path().join("chain"))).expect("open");
    let report = paystreams_node::verify(storage.as_ref()).expect("replay matches");
    assert_eq!(report.height, head + 1);
    assert_eq!(report.failed_transactions, 1);
    assert_eq!(report.supply, report.genesis_supply);
    drop(storage);

    // A different key already named dev-0 is never overwritten.
    let other = tempfile::tempdir().expect("tempdir");
    let config =
        NodeConfig { data_dir: Some(other.path().join("chain")), dev_accounts: 1, ..NodeConfig::ephemeral_dev() };
    let node = start(config).await.expect("start second chain");
    let name = &save_keys(&node)[0];
    assert!(name.starts_with("dev-0-"), "{name}");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_transactions_admits_a_batch_in_order_and_refuses_entries_one_by_one() {
    let node = start(NodeConfig::ephemeral_dev()).await.expect("start");
    let client = http(&node.rpc_url());
    let owner = node.dev_keys()[0].clone();
    let other = node.dev_keys()[2].clone();

    // One signer's transactions in nonce order, a bad signature, a duplicate and garbage.
    let init = init_vault(&owner, 1, 0);
    let deposit_tx = deposit(&owner, 1, 500, 1);
    let mut forged = transfer(&other, owner.account_id(), 5, 0);
    forged.witness_set.signatures_and_public_keys[0].0.0[0] ^= 1;
    let batch = vec![b64(&init), b64(&deposit_tx), b64(&forged), b64(&init), "!!!".to_owned()];
    let outcomes = client.send_transactions(batch).await.expect("batch");
    assert_eq!(outcomes.len(), 5);
    assert_eq!(outcomes[0].hash.map(|h| h.0), Some(init.hash()));
    assert_eq!(outcomes[1].hash.map(|h| h.0), Some(deposit_tx.hash()));
    let refused: Vec<i32> = outcomes[2..].iter().map(|o| o.error.as_ref().expect("refused").code).collect();
    assert_eq!(refused, vec![codes::TRANSACTION_REJECTED, codes::DUPLICATE_TRANSACTION, codes::TRANSACTION_REJECTED]);
    assert!(outcomes[2..].iter().all(|o| o.hash.is_none()));

    // Automine: both admitted transactions are committed, in order, when the call returns.
    for tx in [&init, &deposit_tx] {
        let receipt =
            client.get_transaction_receipt(paystreams_rpc::HexHash(tx.hash())).await.expect("call").expect("known");
        assert_eq!(receipt.status, TxStatus::Included, "{receipt:?}");
    }
    let vault = client.get_vault(owner.account_id(), 1).await.expect("call").expect("vault");
    assert_eq!(vault.balance.0, 500);

    // Too many at once is refused as a whole, before anything is checked.
    let too_many = vec![b64(&init); usize::try_from(paystreams_rpc::SEND_BATCH_MAX).expect("small") + 1];
    let e = rpc_error(client.send_transactions(too_many).await);
    assert!(e.message().contains("at most 1000"), "{e:?}");
    assert!(client.send_transactions(vec![]).await.expect("empty batch").is_empty());
    node.shutdown().await;
}
