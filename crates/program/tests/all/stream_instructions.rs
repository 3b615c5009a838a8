//! CreateStream, PauseStream, ResumeStream, TopUpStream, CloseStreamByOwner and
//! CloseStreamByProvider: happy paths and every error, with the reference's worked numbers.

use crate::common::*;
use paystreams_lez_core::{AccountId, clock::CLOCK_01_ACCOUNT_ID};
use paystreams_program::{
    StreamError, client,
    state::{StreamConfig, StreamState},
};

fn state_of(stream: &StreamConfig) -> (u128, u128, StreamState, u64) {
    (stream.accrued, stream.allocation, stream.state, stream.accrued_as_of)
}

#[test]
fn create_stream_writes_the_stream_and_allocates() {
    let (mut chain, a, vault) = deposited(12_345);
    chain.ok(create(&vault, 0, &a.provider, 10, 200), &[&a.owner]);
    let config = chain.vault_config(&vault);
    assert_eq!((config.next_stream_id, config.total_allocated), (1, 200));
    let stream = chain.stream(&vault, 0);
    assert_eq!((stream.version, stream.stream_id, stream.provider, stream.rate), (1, 0, a.provider.account_id(), 10));
    assert_eq!(state_of(&stream), (0, 200, StreamState::Active, 12_345));
    assert_eq!(chain.account(&vault.stream(0)).data.len(), 90);
    assert_eq!(chain.balance(&vault.holding()), 500);
}

#[test]
fn create_stream_errors() {
    let (mut chain, a, vault) = deposited(1);
    chain.expect_err(create(&vault, 0, &a.owner, 1, 100), &[&a.owner], StreamError::ProviderEqualsOwner);
    chain.expect_err(create(&vault, 0, &a.provider, 1, 501), &[&a.owner], StreamError::AllocationExceedsUnallocated);
    chain.expect_err(create(&vault, 0, &a.provider, 0, 1), &[&a.owner], StreamError::ZeroStreamRate);
    chain.expect_err(create(&vault, 0, &a.provider, 1, 0), &[&a.owner], StreamError::ZeroStreamAllocation);
    chain.expect_err(create(&vault, 1, &a.provider, 1, 1), &[&a.owner], StreamError::StreamIdMismatch);
    chain.expect_err(create(&vault, 0, &a.provider, 1, 1), &[&a.alt], StreamError::MissingSignature);
    let mut wrong_pda = create(&vault, 0, &a.provider, 1, 1);
    wrong_pda.account_ids[2] = vault.stream(1);
    chain.expect_err(wrong_pda, &[&a.owner], StreamError::PdaMismatch);
    let mut decoy_clock = create(&vault, 0, &a.provider, 1, 1);
    decoy_clock.account_ids[4] = a.alt.account_id();
    chain.expect_err(decoy_clock, &[&a.owner], StreamError::InvalidClockAccount);
    let mut short = create(&vault, 0, &a.provider, 1, 1);
    short.account_ids.pop();
    chain.expect_err(short, &[&a.owner], StreamError::WrongAccountCount);
    // BIP-340 test vector 5: this x coordinate is not on the curve.
    let not_on_curve: [u8; 32] = hex::decode("EEFDEA4CDB677750A420FEE807EACF21EB9898AE79B9768766E4FAA04A2D4A34")
        .expect("hex")
        .try_into()
        .expect("32");
    let bad_key = paystreams_program::ExtensionSettings { receipt_key: Some(not_on_curve), ..Default::default() };
    let call = client::create_stream(&vault, 0, a.provider.account_id(), 1, 10, bad_key);
    chain.expect_err(call, &[&a.owner], StreamError::InvalidReceiptKey);

    chain.patch_vault(&vault, |c| c.vault_id = 999);
    chain.expect_err(create(&vault, 0, &a.provider, 1, 1), &[&a.owner], StreamError::VaultIdMismatch);
    chain.patch_vault(&vault, |c| c.vault_id = VAULT_ID);
    chain.patch_vault(&vault, |c| c.owner = a.alt.account_id());
    chain.expect_err(create(&vault, 0, &a.provider, 1, 1), &[&a.owner], StreamError::VaultOwnerMismatch);
    chain.patch_vault(&vault, |c| c.owner = a.owner.account_id());
    chain.patch_vault(&vault, |c| c.next_stream_id = u64::MAX);
    chain.expect_err(create(&vault, u64::MAX, &a.provider, 1, 1), &[&a.owner], StreamError::NextStreamIdOverflow);
}

#[test]
fn create_stream_refuses_an_already_initialised_stream_account() {
    let (mut chain, a, vault) = streaming(1, 1, 10);
    chain.patch_vault(&vault, |c| c.next_stream_id = 0);
    chain.expect_err(create(&vault, 0, &a.provider, 1, 1), &[&a.owner], StreamError::AccountAlreadyInitialized);
}

#[test]
fn allocation_equal_to_unallocated_is_allowed_and_second_stream_follows() {
    let (mut chain, a, vault) = deposited(7);
    chain.ok(create(&vault, 0, &a.provider, 2, 200), &[&a.owner]);
    chain.ok(create(&vault, 1, &a.provider_b, 3, 300), &[&a.owner]);
    let config = chain.vault_config(&vault);
    assert_eq!((config.next_stream_id, config.total_allocated), (2, 500));
    assert_eq!(chain.stream(&vault, 1).provider, a.provider_b.account_id());
    chain.expect_err(create(&vault, 2, &a.provider, 1, 1), &[&a.owner], StreamError::AllocationExceedsUnallocated);
    assert_conservation(&chain, &vault);
}

#[test]
fn pause_folds_then_pauses() {
    let (mut chain, a, vault) = streaming(12_345, 10, 200);
    chain.ok(client::pause_stream(&vault, 0), &[&a.owner]);
    assert_eq!(state_of(&chain.stream(&vault, 0)), (0, 200, StreamState::Paused, 12_345));
    chain.expect_err(client::pause_stream(&vault, 0), &[&a.owner], StreamError::StreamNotActive);
}

#[test]
fn pause_errors() {
    // Depleted by the fold itself (rate 10, allocation 100, at t=100: depleted at 10).
    let (mut chain, a, vault) = streaming(1, 10, 100);
    chain.set_time(200);
    chain.expect_err(client::pause_stream(&vault, 0), &[&a.owner], StreamError::StreamNotActive);
    chain.expect_err(client::pause_stream(&vault, 0), &[&a.alt], StreamError::MissingSignature);
    chain.expect_err(client::pause_stream(&vault, 1), &[&a.owner], StreamError::StreamIdMismatch);

    let (mut chain, a, vault) = streaming(100, 1, 400);
    chain.force_time(50);
    chain.expect_err(client::pause_stream(&vault, 0), &[&a.owner], StreamError::TimeRegression);
    chain.force_time(100);
    chain.patch_vault(&vault, |c| c.vault_id = 999);
    chain.expect_err(client::pause_stream(&vault, 0), &[&a.owner], StreamError::VaultIdMismatch);
    chain.patch_vault(&vault, |c| c.vault_id = VAULT_ID);
    chain.patch_vault(&vault, |c| c.owner = a.alt.account_id());
    chain.expect_err(client::pause_stream(&vault, 0), &[&a.owner], StreamError::VaultOwnerMismatch);
    chain.patch_vault(&vault, |c| c.owner = a.owner.account_id());
    chain.patch_stream(&vault, 0, |s| s.state = StreamState::Closed);
    chain.expect_err(client::pause_stream(&vault, 0), &[&a.owner], StreamError::StreamNotActive);
    chain.patch_stream(&vault, 0, |s| {
        s.state = StreamState::Active;
        s.accrued = 500;
    });
    chain.expect_err(client::pause_stream(&vault, 0), &[&a.owner], StreamError::StreamExceedsAllocation);
    // Version 3 is not a layout this program knows: the stream does not decode.
    let mut account = chain.account(&vault.stream(0));
    if let Some(first) = account.data.first_mut() {
        *first = 3;
    }
    chain.put(vault.stream(0), account);
    chain.expect_err(client::pause_stream(&vault, 0), &[&a.owner], StreamError::InvalidAccountData);
}

#[test]
fn resume_restarts_accrual_without_accruing_the_paused_gap() {
    let (mut chain, a, vault) = streaming(100, 10, 500);
    chain.set_time(105);
    chain.ok(client::pause_stream(&vault, 0), &[&a.owner]);
    assert_eq!(chain.stream(&vault, 0).accrued, 50);
    chain.set_time(200);
    chain.ok(client::resume_stream(&vault, 0), &[&a.owner]);
    assert_eq!(state_of(&chain.stream(&vault, 0)), (50, 500, StreamState::Active, 200));
    chain.expect_err(client::resume_stream(&vault, 0), &[&a.owner], StreamError::StreamNotPaused);
    chain.set_time(210);
    chain.ok(client::pause_stream(&vault, 0), &[&a.owner]);
    assert_eq!(chain.stream(&vault, 0).accrued, 150);
}

#[test]
fn resume_errors() {
    let (mut chain, a, vault) = streaming(0, 10, 100);
    chain.set_time(100);
    chain.expect_err(client::resume_stream(&vault, 0), &[&a.owner], StreamError::ResumeZeroUnaccrued);
    let (mut chain, a, vault) = streaming(50, 1, 400);
    chain.expect_err(client::resume_stream(&vault, 0), &[&a.owner], StreamError::StreamNotPaused);
    chain.ok(client::close_stream_by_owner(&vault, 0), &[&a.owner]);
    chain.expect_err(client::resume_stream(&vault, 0), &[&a.owner], StreamError::StreamNotPaused);
    // Time going backwards is refused on a paused stream too.
    let (mut chain, a, vault) = streaming(100, 1, 400);
    chain.set_time(150);
    chain.ok(client::pause_stream(&vault, 0), &[&a.owner]);
    chain.force_time(120);
    chain.expect_err(client::resume_stream(&vault, 0), &[&a.owner], StreamError::TimeRegression);
}

#[test]
fn top_up_reactivates_a_depleted_stream() {
    let (mut chain, a, vault) = streaming(0, 10, 100);
    chain.ok(deposit(&vault, 200), &[&a.owner]);
    chain.set_time(250);
    chain.ok(client::top_up_stream(&vault, 0, 200), &[&a.owner]);
    assert_eq!(state_of(&chain.stream(&vault, 0)), (100, 300, StreamState::Active, 250));
    assert_eq!(chain.vault_config(&vault).total_allocated, 300);
    assert_conservation(&chain, &vault);
}

#[test]
fn top_up_of_a_manually_paused_stream_makes_it_active() {
    let (mut chain, a, vault) = streaming(10, 1, 100);
    chain.ok(client::pause_stream(&vault, 0), &[&a.owner]);
    chain.set_time(20);
    chain.ok(client::top_up_stream(&vault, 0, 5), &[&a.owner]);
    assert_eq!(state_of(&chain.stream(&vault, 0)), (0, 105, StreamState::Active, 20));
}

#[test]
fn top_up_errors() {
    let (mut chain, a, vault) = streaming(1, 1, 100);
    chain.expect_err(client::top_up_stream(&vault, 0, 0), &[&a.owner], StreamError::ZeroTopUpAmount);
    chain.expect_err(client::top_up_stream(&vault, 0, 401), &[&a.owner], StreamError::AllocationExceedsUnallocated);
    chain.ok(client::close_stream_by_owner(&vault, 0), &[&a.owner]);
    // Closed is reported before the zero amount.
    chain.expect_err(client::top_up_stream(&vault, 0, 0), &[&a.owner], StreamError::StreamClosed);
    let (mut chain, a, vault) = streaming(100, 1, 100);
    chain.set_time(110);
    chain.ok(client::pause_stream(&vault, 0), &[&a.owner]);
    chain.force_time(105);
    chain.expect_err(client::top_up_stream(&vault, 0, 1), &[&a.owner], StreamError::TimeRegression);
}

#[test]
fn close_by_owner_releases_unaccrued_and_is_final() {
    let (mut chain, a, vault) = streaming(0, 10, 100);
    chain.set_time(5);
    chain.ok(client::close_stream_by_owner(&vault, 0), &[&a.owner]);
    assert_eq!(state_of(&chain.stream(&vault, 0)), (50, 50, StreamState::Closed, 5));
    assert_eq!(chain.vault_config(&vault).total_allocated, 50);
    chain.expect_err(client::close_stream_by_owner(&vault, 0), &[&a.owner], StreamError::StreamClosed);
    chain.expect_err(client::pause_stream(&vault, 0), &[&a.owner], StreamError::StreamNotActive);
    let provider = a.provider.account_id();
    chain.expect_err(
        client::close_stream_by_provider(&vault, 0, provider, None, None),
        &[&a.provider],
        StreamError::StreamClosed,
    );
    // Accrued funds stay claimable after close.
    chain.set_time(1000);
    chain.ok(client::claim(&vault, 0, provider, None, None), &[&a.provider]);
    assert_eq!(chain.balance(&provider), 50);
    assert_eq!(state_of(&chain.stream(&vault, 0)), (0, 0, StreamState::Closed, 5));
    assert_conservation(&chain, &vault);
}

#[test]
fn close_by_provider_requires_the_stream_provider() {
    let (mut chain, a, vault) = streaming(0, 10, 100);
    chain.set_time(3);
    let stranger = a.provider_b.account_id();
    chain.expect_err(
        client::close_stream_by_provider(&vault, 0, stranger, None, None),
        &[&a.provider_b],
        StreamError::CloseUnauthorized,
    );
    let provider = a.provider.account_id();
    chain.expect_err(
        client::close_stream_by_provider(&vault, 0, provider, None, None),
        &[&a.provider_b],
        StreamError::MissingSignature,
    );
    chain.ok(client::close_stream_by_provider(&vault, 0, provider, None, None), &[&a.provider]);
    assert_eq!(state_of(&chain.stream(&vault, 0)), (30, 30, StreamState::Closed, 3));
    // Base close does not pay.
    assert_eq!(chain.balance(&provider), 0);
    chain.patch_vault(&vault, |c| c.owner = a.alt.account_id());
    chain.expect_err(client::claim(&vault, 0, provider, None, None), &[&a.provider], StreamError::VaultOwnerMismatch);
}

#[test]
fn owner_operations_refuse_a_non_clock_account_in_the_clock_slot() {
    let (mut chain, a, vault) = streaming(1, 1, 100);
    let mut call = client::pause_stream(&vault, 0);
    assert_eq!(call.account_ids[4], CLOCK_01_ACCOUNT_ID);
    call.account_ids[4] = AccountId([1; 32]);
    chain.expect_err(call, &[&a.owner], StreamError::InvalidClockAccount);
}
