//! A provider paid through delivery receipts: both engines over direct calls against the
//! in-memory chain; the user signs a cumulative receipt after every response, the provider
//! keeps the latest and claims with it.

use paystreams_program::client;
use paystreams_rpc::chain_view::ChainView as _;
use paystreams_user::UserConfig;
use paystreams_wire::{DeliveryReceipt, ReceiptAck, ReceiptStatus, ReceiptTerms};

use crate::common::{Net, PEER, key, net_with};

/// A provider asking at least 7 per second and 1,000 allocated, with `receipts` as its receipt
/// terms; the user prefers receipts where they are optional when `prefer_receipts`.
fn receipt_net(receipts: ReceiptTerms, prefer_receipts: bool) -> Net {
    net_with(UserConfig { prefer_receipts, ..UserConfig::default() }, 7, 1_000, |policy| {
        policy.extensions.receipts = receipts;
    })
}

#[tokio::test]
async fn a_provider_is_paid_exactly_what_the_receipts_acknowledge() {
    let mut n = receipt_net(ReceiptTerms::Required, false);
    let (user_before, provider_before) = (n.user_funds().await, n.balance(n.provider_key.account_id()));
    let stream_id = n.open().await;
    let owner = n.vault.owner;
    let view = n.chain.stream(&owner, 0, stream_id).await.expect("read").expect("stream");
    assert!(view.extensions.as_ref().and_then(|e| e.receipt_key.as_ref()).is_some(), "receipt key set: {view:?}");

    let mut session = n.session();
    let mut last = None;
    for i in 1..=4_u64 {
        n.chain.advance_by(3 * i).expect("advance");
        n.sync().await;
        let response = n.served().await;
        let bytes = n.user.receipt(&mut session, &response).await.expect("sign").expect("a receipt");
        let ack = n.provider.on_receipt(Some(PEER), &bytes).await;
        assert_eq!(ack.code(), Some(ReceiptStatus::Kept), "{ack:?}");
        assert_eq!(ack.kept_total, session.receipts.acknowledged_total);
        // What the user acknowledges is what it saw accrue, never more.
        let view = n.chain.stream(&owner, 0, stream_id).await.expect("read").expect("stream");
        assert_eq!(session.receipts.acknowledged_total, view.accrued.0);
        last = Some(bytes);
    }
    let last = last.expect("signed");
    assert_eq!(session.receipts.deliveries, 4);
    // Activation happens at creation; 3+6+9+12 s at rate 7.
    assert_eq!(session.receipts.acknowledged_total, 7 * 30);

    // Replayed, from another peer, or tampered: nothing changes.
    let ack = |a: &ReceiptAck| a.code();
    assert_eq!(ack(&n.provider.on_receipt(Some(PEER), &last).await), Some(ReceiptStatus::NotNewer));
    assert_eq!(ack(&n.provider.on_receipt(Some(b"mallory"), &last).await), Some(ReceiptStatus::UnknownStream));
    assert_eq!(ack(&n.provider.on_receipt(None, &last).await), Some(ReceiptStatus::UnknownStream));
    let mut forged = DeliveryReceipt::decode(&last).expect("decode");
    forged.acknowledged_total += 1_000;
    assert_eq!(ack(&n.provider.on_receipt(Some(PEER), &forged.encode()).await), Some(ReceiptStatus::Invalid));
    let mut elsewhere = DeliveryReceipt::decode(&last).expect("decode");
    elsewhere.stream_config = [9; 32];
    assert_eq!(ack(&n.provider.on_receipt(Some(PEER), &elsewhere.encode()).await), Some(ReceiptStatus::Invalid));
    assert_eq!(ack(&n.provider.on_receipt(Some(PEER), &last[..40]).await), Some(ReceiptStatus::Malformed));

    // The user stops here and closes; the provider claims with the latest receipt.
    let close = client::close_stream_by_owner(&n.vault, stream_id);
    assert!(n.chain.submit_now(&close, &[&key(1)]).expect("submit").is_included());
    n.sync().await;
    n.provider.claim_all().await.expect("claim");
    let view = n.chain.stream(&owner, 0, stream_id).await.expect("read").expect("stream");
    let paid = view.extensions.as_ref().map(|e| e.receipt_paid.0).expect("extensions");
    assert_eq!(paid, session.receipts.acknowledged_total, "payout equals the acknowledged total");
    assert_eq!(view.accrued.0, 0, "nothing accrued left unacknowledged");
    let earned = n.balance(n.provider_key.account_id()) - provider_before;
    let spent = user_before - n.user_funds().await;
    assert_eq!((earned, spent), (session.receipts.acknowledged_total, session.receipts.acknowledged_total));
}

#[tokio::test]
async fn streams_carry_a_receipt_key_only_where_the_provider_takes_receipts() {
    for (terms, prefer, expected) in [
        (ReceiptTerms::Refused, true, false),
        (ReceiptTerms::Accepted, false, false),
        (ReceiptTerms::Accepted, true, true),
        (ReceiptTerms::Required, false, true),
    ] {
        let mut n = receipt_net(terms, prefer);
        let stream_id = n.open().await;
        let view = n.chain.stream(&n.vault.owner, 0, stream_id).await.expect("read").expect("stream");
        let has_key = view.extensions.as_ref().is_some_and(|e| e.receipt_key.is_some());
        assert_eq!(has_key, expected, "{terms:?}, prefer {prefer}");
        // Bound and served either way (the stream matches the provider's terms).
        n.served().await;
        let mut session = n.session();
        let receipt = n.user.receipt(&mut session, &[0; 32]).await.expect("receipt");
        assert_eq!(receipt.is_some(), expected);
    }
}

#[tokio::test]
async fn a_final_receipt_after_the_user_closed_the_stream_is_still_paid() {
    let mut n = receipt_net(ReceiptTerms::Required, false);
    let (user_before, provider_before) = (n.user_funds().await, n.balance(n.provider_key.account_id()));
    let stream_id = n.open().await;
    let mut session = n.session();
    n.chain.advance_by(10).expect("advance");
    n.sync().await;
    let response = n.served().await;
    let first = n.user.receipt(&mut session, &response).await.expect("sign").expect("receipt");
    assert_eq!(n.provider.on_receipt(Some(PEER), &first).await.code(), Some(ReceiptStatus::Kept));
    let first_total = session.receipts.acknowledged_total;
    // More accrues, the user closes: the provider's close-time claim pays only the first receipt.
    n.chain.advance_by(5).expect("advance");
    let close = client::close_stream_by_owner(&n.vault, stream_id);
    assert!(n.chain.submit_now(&close, &[&key(1)]).expect("submit").is_included());
    n.sync().await;
    let view = n.chain.stream(&n.vault.owner, 0, stream_id).await.expect("read").expect("stream");
    assert_eq!(view.extensions.as_ref().map(|e| e.receipt_paid.0), Some(first_total));
    assert_eq!(view.accrued.0, 7 * 5, "the last five seconds are not acknowledged yet");
    // The user acknowledges the rest; the provider keeps it and claims it.
    let last = n.user.receipt(&mut session, &[1; 32]).await.expect("sign").expect("receipt");
    assert_eq!(session.receipts.acknowledged_total, 7 * 15);
    assert_eq!(n.provider.on_receipt(Some(PEER), &last).await.code(), Some(ReceiptStatus::Kept));
    assert_eq!(n.provider.claim_all().await.expect("claim"), 1);
    let view = n.chain.stream(&n.vault.owner, 0, stream_id).await.expect("read").expect("stream");
    assert_eq!(view.accrued.0, 0);
    // Replaying a receipt already paid on chain changes nothing.
    assert_eq!(n.provider.on_receipt(Some(PEER), &first).await.code(), Some(ReceiptStatus::NotNewer));
    assert_eq!(n.provider.on_receipt(Some(PEER), &last).await.code(), Some(ReceiptStatus::NotNewer));
    assert_eq!(n.provider.claim_all().await.expect("claim"), 0);
    let earned = n.balance(n.provider_key.account_id()) - provider_before;
    let spent = user_before - n.user_funds().await;
    assert_eq!((earned, spent), (7 * 15, 7 * 15));
}
