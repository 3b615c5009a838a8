//! The four on-chain extensions: auto-pause, activation fee, automatic claim on provider close,
//! delivery receipts.

use crate::common::*;
use paystreams_lez_core::crypto::SecretKey;
use paystreams_program::{
    ExtensionSettings, StreamError,
    client::{self, VaultRef},
    payment_streams_program_id,
    receipt::{DeliveryReceipt, ReceiptBody},
    state::StreamState,
};

fn create_with(
    chain: &mut Chain,
    a: &Actors,
    vault: &VaultRef,
    rate: u64,
    allocation: u128,
    settings: ExtensionSettings,
) {
    chain.ok(client::create_stream(vault, 0, a.provider.account_id(), rate, allocation, settings), &[&a.owner]);
}

#[test]
fn auto_pause_pauses_after_the_duration_and_resume_restarts_it() {
    let (mut chain, a, vault) = deposited(100);
    create_with(&mut chain, &a, &vault, 1, 400, ExtensionSettings { auto_pause_after: 60, ..Default::default() });
    assert_eq!(chain.stream(&vault, 0).version, 2);
    chain.set_time(1000);
    // Pause finds it already auto-paused at 160 with 60 accrued.
    chain.expect_err(client::pause_stream(&vault, 0), &[&a.owner], StreamError::StreamNotActive);
    chain.ok(client::resume_stream(&vault, 0), &[&a.owner]);
    let stream = chain.stream(&vault, 0);
    assert_eq!((stream.accrued, stream.state, stream.accrued_as_of), (60, StreamState::Active, 1000));
    chain.set_time(1030);
    // A top-up of a running stream restarts the duration too.
    chain.ok(client::top_up_stream(&vault, 0, 10), &[&a.owner]);
    chain.set_time(1089);
    chain.ok(client::pause_stream(&vault, 0), &[&a.owner]);
    assert_eq!(chain.stream(&vault, 0).accrued, 60 + 30 + 59);
    chain.ok(client::resume_stream(&vault, 0), &[&a.owner]);
    chain.set_time(5000);
    chain.ok(client::claim(&vault, 0, a.provider.account_id(), None, None), &[&a.provider]);
    assert_eq!(chain.balance(&a.provider.account_id()), 60 + 30 + 59 + 60);
    assert_conservation(&chain, &vault);
}

#[test]
fn activation_fee_is_charged_by_every_activation_and_nothing_else() {
    let (mut chain, a, vault) = deposited(0);
    create_with(&mut chain, &a, &vault, 1, 100, ExtensionSettings { activation_fee: 10, ..Default::default() });
    assert_eq!(chain.stream(&vault, 0).accrued, 10);
    chain.set_time(5);
    chain.ok(client::pause_stream(&vault, 0), &[&a.owner]);
    assert_eq!(chain.stream(&vault, 0).accrued, 15);
    chain.set_time(50);
    chain.ok(client::resume_stream(&vault, 0), &[&a.owner]);
    assert_eq!(chain.stream(&vault, 0).accrued, 25);
    // Top-up of an ACTIVE stream does not charge.
    chain.ok(client::top_up_stream(&vault, 0, 5), &[&a.owner]);
    assert_eq!(chain.stream(&vault, 0).accrued, 25);
    chain.ok(client::pause_stream(&vault, 0), &[&a.owner]);
    // Top-up of a PAUSED stream activates it and charges.
    chain.ok(client::top_up_stream(&vault, 0, 5), &[&a.owner]);
    assert_eq!(chain.stream(&vault, 0).accrued, 35);
    assert_conservation(&chain, &vault);
}

#[test]
fn activation_fee_above_unaccrued_fails() {
    let (mut chain, a, vault) = deposited(0);
    let settings = ExtensionSettings { activation_fee: 101, ..Default::default() };
    chain.expect_err(
        client::create_stream(&vault, 0, a.provider.account_id(), 1, 100, settings),
        &[&a.owner],
        StreamError::ActivationFeeExceedsUnaccrued,
    );
    create_with(&mut chain, &a, &vault, 1, 100, ExtensionSettings { activation_fee: 50, ..Default::default() });
    chain.set_time(30);
    chain.ok(client::pause_stream(&vault, 0), &[&a.owner]);
    // 80 accrued, 20 unaccrued < fee 50.
    chain.expect_err(client::resume_stream(&vault, 0), &[&a.owner], StreamError::ActivationFeeExceedsUnaccrued);
}

#[test]
fn automatic_claim_pays_the_provider_on_provider_close_only() {
    let (mut chain, a, vault) = deposited(0);
    let provider = a.provider.account_id();
    create_with(
        &mut chain,
        &a,
        &vault,
        2,
        100,
        ExtensionSettings { auto_claim_on_provider_close: true, ..Default::default() },
    );
    chain.set_time(10);
    chain.ok(client::close_stream_by_provider(&vault, 0, provider, None, None), &[&a.provider]);
    assert_eq!(chain.balance(&provider), 20);
    let stream = chain.stream(&vault, 0);
    assert_eq!((stream.accrued, stream.allocation, stream.state), (0, 0, StreamState::Closed));
    assert_eq!(chain.vault_config(&vault).total_allocated, 0);
    assert_eq!(chain.balance(&vault.holding()), 480);

    // Owner close keeps base semantics: nothing is paid.
    chain.ok(
        client::create_stream(
            &vault,
            1,
            provider,
            2,
            100,
            ExtensionSettings { auto_claim_on_provider_close: true, ..Default::default() },
        ),
        &[&a.owner],
    );
    chain.set_time(20);
    chain.ok(client::close_stream_by_owner(&vault, 1), &[&a.owner]);
    assert_eq!(chain.balance(&provider), 20);
    assert_eq!(chain.stream(&vault, 1).accrued, 20);
    assert_conservation(&chain, &vault);
}

fn receipt(key: &SecretKey, vault: &VaultRef, stream_id: u64, acknowledged_total: u128) -> DeliveryReceipt {
    let body = ReceiptBody {
        program_id: payment_streams_program_id(),
        stream_config: vault.stream(stream_id),
        stream_id,
        acknowledged_total,
        deliveries_digest: [4; 32],
    };
    DeliveryReceipt { body, signature: key.sign(&body.digest()).0 }
}

#[test]
fn delivery_receipts_limit_claims_to_what_the_user_acknowledged() {
    let (mut chain, a, vault) = deposited(0);
    let provider = a.provider.account_id();
    let user_key = key("receipt-key");
    let settings = ExtensionSettings { receipt_key: Some(user_key.public_key().to_bytes()), ..Default::default() };
    create_with(&mut chain, &a, &vault, 10, 200, settings);
    chain.set_time(10);
    chain.expect_err(client::claim(&vault, 0, provider, None, None), &[&a.provider], StreamError::ReceiptRequired);
    let forged = receipt(&a.provider, &vault, 0, 100);
    chain.expect_err(
        client::claim(&vault, 0, provider, None, Some(forged)),
        &[&a.provider],
        StreamError::InvalidReceiptSignature,
    );
    let other_stream = receipt(&user_key, &vault, 1, 100);
    chain.expect_err(
        client::claim(&vault, 0, provider, None, Some(other_stream)),
        &[&a.provider],
        StreamError::ReceiptStreamMismatch,
    );
    let mut tampered = receipt(&user_key, &vault, 0, 30);
    tampered.body.acknowledged_total = 100;
    chain.expect_err(
        client::claim(&vault, 0, provider, None, Some(tampered)),
        &[&a.provider],
        StreamError::InvalidReceiptSignature,
    );

    // 100 accrued, 30 acknowledged: pays 30, leaves 70 accrued.
    chain.ok(client::claim(&vault, 0, provider, None, Some(receipt(&user_key, &vault, 0, 30))), &[&a.provider]);
    assert_eq!(chain.balance(&provider), 30);
    let stream = chain.stream(&vault, 0);
    assert_eq!((stream.accrued, stream.allocation), (70, 170));
    chain.expect_err(
        client::claim(&vault, 0, provider, None, Some(receipt(&user_key, &vault, 0, 30))),
        &[&a.provider],
        StreamError::ReceiptAcknowledgesNothing,
    );
    // Cumulative: acknowledging 500 pays the remaining 70 accrued only.
    chain.ok(client::claim(&vault, 0, provider, None, Some(receipt(&user_key, &vault, 0, 500))), &[&a.provider]);
    assert_eq!(chain.balance(&provider), 100);
    assert_conservation(&chain, &vault);
}

#[test]
fn receipts_are_refused_on_streams_without_the_extension() {
    let (mut chain, a, vault) = streaming(0, 10, 200);
    chain.set_time(5);
    let provider = a.provider.account_id();
    let r = receipt(&a.owner, &vault, 0, 10);
    chain.expect_err(
        client::claim(&vault, 0, provider, None, Some(r)),
        &[&a.provider],
        StreamError::ReceiptNotExpected,
    );
}

#[test]
fn all_extensions_together() {
    let (mut chain, a, vault) = deposited(0);
    let provider = a.provider.account_id();
    let user_key = key("receipt-key");
    let settings = ExtensionSettings {
        auto_pause_after: 100,
        activation_fee: 5,
        auto_claim_on_provider_close: true,
        receipt_key: Some(user_key.public_key().to_bytes()),
    };
    create_with(&mut chain, &a, &vault, 1, 300, settings);
    chain.set_time(1000);
    // Auto-paused at 100 with 5 + 100 accrued; provider closes with a receipt for 50.
    chain.ok(
        client::close_stream_by_provider(&vault, 0, provider, None, Some(receipt(&user_key, &vault, 0, 50))),
        &[&a.provider],
    );
    assert_eq!(chain.balance(&provider), 50);
    let stream = chain.stream(&vault, 0);
    assert_eq!((stream.accrued, stream.allocation, stream.state), (55, 55, StreamState::Closed));
    assert_conservation(&chain, &vault);
}
