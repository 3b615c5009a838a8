//! The full on-chain lifecycle through the typed client against an in-process node (in memory,
//! port 0, automine, dev methods): every instruction, every extension, a token vault, and failed
//! transactions with their codes and explanations.
//!
//! Block times follow the wall clock (plus dev time jumps), so expectations are computed from
//! the times the program reports in its events; every balance is then checked exactly.

use paystreams_client::{ClientError, TxFailure, claimed_amount, stream_events};
use paystreams_lez_core::crypto::SecretKey;
use paystreams_program::{Event, ExtensionSettings, receipt::DeliveryReceipt};
use paystreams_rpc::{ReceiptInfo, TxStatus};

use crate::common::dev_node;

fn failure(result: Result<impl std::fmt::Debug, ClientError>) -> TxFailure {
    match result {
        Err(ClientError::Transaction(failure)) => *failure,
        other => panic!("expected a transaction failure, got {other:?}"),
    }
}

fn event_at(receipt: &ReceiptInfo, pick: impl Fn(&Event) -> Option<u64>) -> u64 {
    stream_events(receipt).find_map(pick).expect("event present")
}

fn created_at(receipt: &ReceiptInfo) -> u64 {
    event_at(receipt, |e| match e {
        Event::StreamCreated { at, .. } => Some(*at),
        _ => None,
    })
}

fn paused_at(receipt: &ReceiptInfo) -> u64 {
    event_at(receipt, |e| match e {
        Event::StreamPaused { at, .. } => Some(*at),
        _ => None,
    })
}

fn resumed_at(receipt: &ReceiptInfo) -> u64 {
    event_at(receipt, |e| match e {
        Event::StreamResumed { at, .. } => Some(*at),
        _ => None,
    })
}

fn claim_at(receipt: &ReceiptInfo) -> u64 {
    event_at(receipt, |e| match e {
        Event::Claimed { at, .. } => Some(*at),
        _ => None,
    })
}

fn released(receipt: &ReceiptInfo) -> u128 {
    stream_events(receipt)
        .find_map(|e| match e {
            Event::StreamClosed { released, .. } => Some(*released),
            _ => None,
        })
        .expect("close event")
}

fn elapsed(from: u64, to: u64) -> u128 {
    u128::from(to.checked_sub(from).expect("time moves forward"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_vault_lifecycle_with_failures_explained() {
    let (node, client) = dev_node(None).await;
    let owner = node.dev_keys()[0].clone();
    let provider = node.dev_keys()[1].clone();
    let (o, p) = (owner.account_id(), provider.account_id());
    let start_balance = client.balance(o).await.expect("balance");

    // Vault and deposit.
    let r = client.init_vault(&owner, 0, None).await.expect("init vault");
    assert_eq!(r.status, TxStatus::Included);
    let again = failure(client.init_vault(&owner, 0, None).await);
    assert_eq!(again.code, 6033);
    assert!(again.explanation.contains("already has a vault 0"), "{}", again.explanation);
    client.deposit(&owner, 0, 10_000).await.expect("deposit");
    assert_eq!(client.balance(o).await.expect("balance"), start_balance - 10_000);
    let vault = client.vault(o, 0).await.expect("rpc").expect("vault");
    assert_eq!((vault.balance.0, vault.unallocated.0, vault.next_stream_id), (10_000, 10_000, 0));

    // Allocation too big: refused before sending, and the same sentence from a failed receipt.
    let refused = failure(client.create_stream(&owner, 0, p, 10, 12_000, ExtensionSettings::default()).await);
    assert_eq!(refused.code, 6011);
    assert!(refused.is_preflight());
    assert_eq!(
        refused.explanation,
        "vault 0 has 10000 unallocated, stream needs 12000: deposit 2000 more or lower --allocation"
    );
    let mut unchecked = client.clone();
    unchecked.set_preflight(false);
    let failed = failure(unchecked.create_stream(&owner, 0, p, 10, 12_000, ExtensionSettings::default()).await);
    assert_eq!((failed.code, failed.name.as_str()), (6011, "AllocationExceedsUnallocated"));
    assert!(failed.hash.is_some() && failed.block_id.is_some());
    assert_eq!(failed.explanation, refused.explanation);
    let receipt = client.receipt(failed.hash.expect("hash")).await.expect("rpc").expect("receipt");
    assert_eq!(receipt.status, TxStatus::Failed);
    assert_eq!(receipt.error.as_ref().map(|e| e.code), Some(6011));

    // Provider equal to owner.
    let same = failure(client.create_stream(&owner, 0, o, 10, 100, ExtensionSettings::default()).await);
    assert_eq!(same.code, 6027);
    assert!(same.explanation.contains("pass another --provider"));

    // Create stream 0: 10/s, 1000.
    let (sid, r) = client.create_stream(&owner, 0, p, 10, 1_000, ExtensionSettings::default()).await.expect("create");
    assert_eq!(sid, 0);
    let t0 = created_at(&r);
    assert_eq!(client.vault(o, 0).await.expect("rpc").expect("vault").unallocated.0, 9_000);

    client.advance_time(20).await.expect("advance");
    let r = client.pause(&owner, 0, sid).await.expect("pause");
    let t1 = paused_at(&r);
    let accrued_at_pause = (10 * elapsed(t0, t1)).min(1_000);
    let view = client.stream(o, 0, sid).await.expect("rpc").expect("stream");
    assert_eq!(view.accrued.0, accrued_at_pause);
    assert!(accrued_at_pause >= 200);

    // Pausing a paused stream; resuming an active one.
    let twice = failure(client.pause(&owner, 0, sid).await);
    assert_eq!(twice.code, 6016);
    assert!(twice.explanation.contains("already paused"), "{}", twice.explanation);

    let r = client.resume(&owner, 0, sid).await.expect("resume");
    let t2 = resumed_at(&r);
    let active = failure(client.resume(&owner, 0, sid).await);
    assert_eq!(active.code, 6017);
    assert!(active.hash.is_some(), "6017 comes from the chain");
    assert!(active.explanation.contains("already active"), "{}", active.explanation);

    client.top_up(&owner, 0, sid, 500).await.expect("top up");
    let vault = client.vault(o, 0).await.expect("rpc").expect("vault");
    assert_eq!(vault.total_allocated.0, 1_500);
    let too_much = failure(client.top_up(&owner, 0, sid, 9_000).await);
    assert_eq!(too_much.code, 6011);
    assert_eq!(
        too_much.explanation,
        "vault 0 has 8500 unallocated, the top-up needs 9000: deposit 500 more or lower --amount"
    );

    // Only the provider claims.
    let stranger = node.dev_keys()[2].clone();
    let wrong = failure(client.claim(&stranger, o, 0, sid, None).await);
    assert_eq!(wrong.code, 6024);
    assert!(
        wrong.explanation.contains(&p.to_string()) && wrong.explanation.contains(&stranger.account_id().to_string())
    );

    client.advance_time(10).await.expect("advance");
    let provider_before = client.balance(p).await.expect("balance");
    let r = client.claim(&provider, o, 0, sid, None).await.expect("claim");
    let t3 = claim_at(&r);
    let claimed = claimed_amount(&r);
    assert_eq!(claimed, (accrued_at_pause + 10 * elapsed(t2, t3)).min(1_500));
    assert_eq!(client.balance(p).await.expect("balance"), provider_before + claimed);
    let vault = client.vault(o, 0).await.expect("rpc").expect("vault");
    assert_eq!(vault.balance.0, 10_000 - claimed);
    assert_eq!(vault.total_allocated.0, 1_500 - claimed);

    // Owner closes stream 0: what has not accrued returns to the vault.
    let r = client.close_by_owner(&owner, 0, sid).await.expect("close");
    let back = released(&r);
    let after = client.stream(o, 0, sid).await.expect("rpc").expect("stream");
    assert_eq!(after.allocation.0 + back, 1_500 - claimed);
    let vault = client.vault(o, 0).await.expect("rpc").expect("vault");
    assert_eq!(vault.total_allocated.0, after.allocation.0);
    let closed = failure(client.resume(&owner, 0, sid).await);
    assert_eq!(closed.code, 6019);
    assert!(closed.explanation.contains("closed for good"));
    // What accrued before the close is still claimable.
    if after.accrued.0 > 0 {
        let r = client.claim(&provider, o, 0, sid, None).await.expect("claim after close");
        assert_eq!(claimed_amount(&r), after.accrued.0);
    }

    // Stream 1, closed by the provider (no auto-claim: accrued stays claimable).
    let (sid1, _) = client.create_stream(&owner, 0, p, 1, 100, ExtensionSettings::default()).await.expect("create 1");
    assert_eq!(sid1, 1);
    let wrong_closer = failure(client.close_by_provider(&stranger, o, 0, sid1, None).await);
    assert_eq!(wrong_closer.code, 6022);
    client.advance_time(10).await.expect("advance");
    let r = client.close_by_provider(&provider, o, 0, sid1, None).await.expect("provider close");
    assert_eq!(claimed_amount(&r), 0);
    let s1 = client.stream(o, 0, sid1).await.expect("rpc").expect("stream");
    assert_eq!(s1.allocation.0, s1.accrued.0);
    assert_eq!(released(&r), 100 - s1.accrued.0);
    let before = client.balance(p).await.expect("balance");
    let r = client.claim(&provider, o, 0, sid1, None).await.expect("claim");
    assert_eq!(claimed_amount(&r), s1.accrued.0);
    assert_eq!(client.balance(p).await.expect("balance"), before + s1.accrued.0);
    let nothing = failure(client.claim(&provider, o, 0, sid1, None).await);
    assert_eq!(nothing.code, 6023);

    // Withdraw: too much, then everything unallocated.
    let vault = client.vault(o, 0).await.expect("rpc").expect("vault");
    assert_eq!(vault.total_allocated.0, 0);
    let over = failure(client.withdraw(&owner, 0, vault.unallocated.0 + 1, None).await);
    assert_eq!(over.code, 6004);
    assert!(over.explanation.contains(&format!("withdraw at most {}", vault.unallocated.0)), "{}", over.explanation);
    let owner_before = client.balance(o).await.expect("balance");
    client.withdraw(&owner, 0, vault.unallocated.0, None).await.expect("withdraw");
    assert_eq!(client.balance(o).await.expect("balance"), owner_before + vault.unallocated.0);
    let vault = client.vault(o, 0).await.expect("rpc").expect("vault");
    assert_eq!(vault.balance.0, 0);
    // Conservation: everything the owner put in went to the provider or came back.
    let total_claimed = client.balance(p).await.expect("balance") - provider_before;
    assert_eq!(client.balance(o).await.expect("balance") + total_claimed, start_balance);

    // Depleted stream: resume refuses and points to top-up.
    client.deposit(&owner, 0, 100).await.expect("deposit");
    let (sid2, _) = client.create_stream(&owner, 0, p, 100, 100, ExtensionSettings::default()).await.expect("create 2");
    client.advance_time(5).await.expect("advance");
    let depleted = failure(client.resume(&owner, 0, sid2).await);
    assert_eq!(depleted.code, 6018);
    assert!(depleted.explanation.contains("top it up instead"), "{}", depleted.explanation);

    // Native deposits beyond the balance (the authenticated-transfer builtin's code).
    let poor = SecretKey::generate();
    client.transfer(&owner, poor.account_id(), 50, Some(&poor)).await.expect("fund fresh key");
    client.init_vault(&poor, 0, None).await.expect("vault");
    let short = failure(client.deposit(&poor, 0, 80).await);
    assert_eq!(short.code, 2006);
    assert!(short.explanation.contains("has 50 native balance, the deposit needs 80"), "{}", short.explanation);
    let short_chain = failure(unchecked.deposit(&poor, 0, 80).await);
    assert_eq!(short_chain.code, 2006);
    assert!(short_chain.hash.is_some());

    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_accounts_need_a_signature_or_initialisation() {
    let (node, client) = dev_node(None).await;
    let owner = node.dev_keys()[0].clone();
    let fresh = SecretKey::generate();
    let mut unchecked = client.clone();
    unchecked.set_preflight(false);

    // A transfer that would create the recipient without its signature fails with a hint.
    let refused = failure(unchecked.transfer(&owner, fresh.account_id(), 10, None).await);
    assert!(refused.explanation.contains("--to-key"), "{} {}", refused.code, refused.explanation);

    // A fresh provider cannot receive a native payout until initialised.
    client.init_vault(&owner, 7, None).await.expect("vault");
    client.deposit(&owner, 7, 1_000).await.expect("deposit");
    let (sid, _) = client
        .create_stream(&owner, 7, fresh.account_id(), 5, 500, ExtensionSettings::default())
        .await
        .expect("create");
    client.advance_time(4).await.expect("advance");
    let refused = failure(client.claim(&fresh, owner.account_id(), 7, sid, None).await);
    assert_eq!(refused.code, 6044);
    assert!(refused.explanation.contains("initialise the destination first"), "{}", refused.explanation);
    let failed = failure(unchecked.claim(&fresh, owner.account_id(), 7, sid, None).await);
    assert_eq!(failed.code, 6044);
    client.init_account(&fresh).await.expect("init");
    let r = client.claim(&fresh, owner.account_id(), 7, sid, None).await.expect("claim");
    assert_eq!(client.balance(fresh.account_id()).await.expect("balance"), claimed_amount(&r));

    // With the recipient's signature the transfer creates it.
    let other = SecretKey::generate();
    client.transfer(&owner, other.account_id(), 10, Some(&other)).await.expect("transfer");
    assert_eq!(client.balance(other.account_id()).await.expect("balance"), 10);

    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_extension() {
    let (node, client) = dev_node(None).await;
    let owner = node.dev_keys()[0].clone();
    let provider = node.dev_keys()[1].clone();
    let receipt_key = node.dev_keys()[2].clone();
    let (o, p) = (owner.account_id(), provider.account_id());
    client.init_vault(&owner, 1, None).await.expect("vault");
    client.deposit(&owner, 1, 100_000).await.expect("deposit");

    // Auto-pause after 5 s of running: accrues exactly 5 * rate, then pauses itself.
    let ext = ExtensionSettings { auto_pause_after: 5, ..ExtensionSettings::default() };
    let (auto, _) = client.create_stream(&owner, 1, p, 3, 1_000, ext).await.expect("create");
    client.advance_time(30).await.expect("advance");
    let view = client.stream(o, 1, auto).await.expect("rpc").expect("stream");
    assert_eq!(view.state, paystreams_program::state::StreamState::Paused);
    assert_eq!(view.accrued.0, 15);
    let again = client.resume(&owner, 1, auto).await.expect("resume");
    let at = resumed_at(&again);
    let view = client.stream(o, 1, auto).await.expect("rpc").expect("stream");
    assert_eq!(view.planned_stop, Some(at + 5));

    // Activation fee: charged at creation and at every resume.
    let ext = ExtensionSettings { activation_fee: 7, ..ExtensionSettings::default() };
    let (fee, r) = client.create_stream(&owner, 1, p, 1, 100, ext).await.expect("create");
    let fees: Vec<u128> = stream_events(&r)
        .filter_map(|e| match e {
            Event::ActivationFeeCharged { fee, .. } => Some(*fee),
            _ => None,
        })
        .collect();
    assert_eq!(fees, vec![7]);
    let t0 = created_at(&r);
    let r = client.pause(&owner, 1, fee).await.expect("pause");
    let t1 = paused_at(&r);
    client.resume(&owner, 1, fee).await.expect("resume");
    let r = client.pause(&owner, 1, fee).await.expect("pause");
    let view = client.stream(o, 1, fee).await.expect("rpc").expect("stream");
    let t3 = paused_at(&r);
    // Two fees, plus one per second while running (t0..t1 and resume..t3, at most t3 - t0 total).
    assert!(view.accrued.0 >= 14 + elapsed(t0, t1));
    assert!(view.accrued.0 <= 14 + elapsed(t0, t3));
    let too_big = failure(
        client
            .create_stream(&owner, 1, p, 1, 5, ExtensionSettings { activation_fee: 9, ..ExtensionSettings::default() })
            .await,
    );
    assert_eq!(too_big.code, 6035);
    assert!(too_big.explanation.contains("activation fee 9 exceeds the 5"), "{}", too_big.explanation);

    // Auto-claim on provider close: the provider is paid in the same transaction.
    let ext = ExtensionSettings { auto_claim_on_provider_close: true, ..ExtensionSettings::default() };
    let (ac, r) = client.create_stream(&owner, 1, p, 4, 1_000, ext).await.expect("create");
    let t0 = created_at(&r);
    client.advance_time(10).await.expect("advance");
    let before = client.balance(p).await.expect("balance");
    let r = client.close_by_provider(&provider, o, 1, ac, None).await.expect("close");
    let at = event_at(&r, |e| match e {
        Event::StreamClosed { at, .. } => Some(*at),
        _ => None,
    });
    let paid = claimed_amount(&r);
    assert_eq!(paid, 4 * elapsed(t0, at));
    assert_eq!(client.balance(p).await.expect("balance"), before + paid);
    assert_eq!(released(&r), 1_000 - paid);

    // Delivery receipts: claims pay at most what the user acknowledged.
    let ext =
        ExtensionSettings { receipt_key: Some(receipt_key.public_key().to_bytes()), ..ExtensionSettings::default() };
    let (rc, _) = client.create_stream(&owner, 1, p, 2, 1_000, ext).await.expect("create");
    client.advance_time(30).await.expect("advance");
    let missing = failure(client.claim(&provider, o, 1, rc, None).await);
    assert_eq!(missing.code, 6037);
    assert!(missing.explanation.contains(&hex::encode(receipt_key.public_key().to_bytes())), "{}", missing.explanation);
    let vault = client.vault_ref(o, 1, [0; 32]);
    let first = DeliveryReceipt::sign(&receipt_key, &vault, rc, 25, [1; 32]);
    let before = client.balance(p).await.expect("balance");
    let r = client.claim(&provider, o, 1, rc, Some(first)).await.expect("claim with receipt");
    assert_eq!(claimed_amount(&r), 25);
    assert_eq!(client.balance(p).await.expect("balance"), before + 25);
    let mut unchecked = client.clone();
    unchecked.set_preflight(false);
    let stale = failure(unchecked.claim(&provider, o, 1, rc, Some(first)).await);
    assert_eq!(stale.code, 6041);
    assert!(stale.explanation.contains("beyond the 25 already paid"), "{}", stale.explanation);
    let forged = DeliveryReceipt::sign(&provider, &vault, rc, 40, [1; 32]);
    assert_eq!(failure(unchecked.claim(&provider, o, 1, rc, Some(forged)).await).code, 6039);
    let second = DeliveryReceipt::sign(&receipt_key, &vault, rc, 40, [2; 32]);
    let r = client.claim(&provider, o, 1, rc, Some(second)).await.expect("second receipt");
    assert_eq!(claimed_amount(&r), 15);
    let view = client.stream(o, 1, rc).await.expect("rpc").expect("stream");
    assert_eq!(view.extensions.as_ref().map(|e| e.receipt_paid.0), Some(40));

    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_vault_lifecycle() {
    let (node, client) = dev_node(None).await;
    let owner = node.dev_keys()[0].clone();
    let provider = node.dev_keys()[1].clone();
    let (o, p) = (owner.account_id(), provider.account_id());
    let definition = SecretKey::generate();
    let token = definition.account_id();

    let (_, owner_holding) = client.token_create(&definition, &owner, "USDX", 1_000_000).await.expect("token");
    assert_eq!(owner_holding, paystreams_client::holding_id(&owner, &token));
    assert_eq!(client.token_balance(owner_holding).await.expect("balance"), 1_000_000);
    client.token_mint(&definition, paystreams_client::TokenRecipient::User(&owner), 500).await.expect("mint");
    assert_eq!(client.token_balance(owner_holding).await.expect("balance"), 1_000_500);

    client.init_vault(&owner, 2, Some(token)).await.expect("token vault");
    let view = client.vault(o, 2).await.expect("rpc").expect("vault");
    assert_eq!(view.token_id, token.to_string());
    let short = failure(client.deposit(&owner, 2, 2_000_000).await);
    assert_eq!(short.code, 3009);
    client.deposit(&owner, 2, 50_000).await.expect("deposit");
    assert_eq!(client.token_balance(owner_holding).await.expect("balance"), 950_500);
    assert_eq!(client.vault(o, 2).await.expect("rpc").expect("vault").balance.0, 50_000);
    let native_before = client.balance(o).await.expect("balance");

    let (sid, r) = client.create_stream(&owner, 2, p, 100, 10_000, ExtensionSettings::default()).await.expect("create");
    let t0 = created_at(&r);
    client.advance_time(10).await.expect("advance");
    let provider_holding = paystreams_client::holding_id(&provider, &token);
    assert!(client.account(provider_holding).await.expect("account").is_default());
    let r = client.claim(&provider, o, 2, sid, None).await.expect("claim");
    let paid = claimed_amount(&r);
    assert_eq!(paid, (100 * elapsed(t0, claim_at(&r))).min(10_000));
    assert_eq!(client.token_balance(provider_holding).await.expect("balance"), paid);

    // Provider close with auto-claim on a token vault pays into the holding too.
    let ext = ExtensionSettings { auto_claim_on_provider_close: true, ..ExtensionSettings::default() };
    let (ac, _) = client.create_stream(&owner, 2, p, 10, 1_000, ext).await.expect("create");
    client.advance_time(5).await.expect("advance");
    let r = client.close_by_provider(&provider, o, 2, ac, None).await.expect("close");
    let paid2 = claimed_amount(&r);
    assert!(paid2 >= 50);
    assert_eq!(client.token_balance(provider_holding).await.expect("balance"), paid + paid2);

    client.close_by_owner(&owner, 2, sid).await.expect("close");
    let vault = client.vault(o, 2).await.expect("rpc").expect("vault");
    let remaining_allocated = vault.total_allocated.0;
    assert_eq!(vault.balance.0, 50_000 - paid - paid2);
    client.withdraw(&owner, 2, vault.unallocated.0, None).await.expect("withdraw");
    assert_eq!(client.token_balance(owner_holding).await.expect("balance"), 950_500 + vault.unallocated.0);
    assert_eq!(client.vault(o, 2).await.expect("rpc").expect("vault").balance.0, remaining_allocated);
    // Token vaults never touch the owner's native balance.
    assert_eq!(client.balance(o).await.expect("balance"), native_before);

    // Token transfer to a fresh user: its holding co-signs.
    let friend = SecretKey::generate();
    client
        .token_transfer(&owner, token, paystreams_client::TokenRecipient::User(&friend), 123)
        .await
        .expect("transfer");
    assert_eq!(client.token_balance(paystreams_client::holding_id(&friend, &token)).await.expect("balance"), 123);

    node.shutdown().await;
}
