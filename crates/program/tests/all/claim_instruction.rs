//! Claim: the reference's main fixture and every error.

use crate::common::*;
use paystreams_program::{StreamError, client, state::StreamState};

#[test]
fn reference_fixture_claim_pays_fifty_after_five_seconds() {
    // Owner 1000, deposit 500, rate 10, allocation 200; 5 s later the claim pays 50.
    let (mut chain, a, vault) = streaming(12_345, 10, 200);
    chain.set_time(12_350);
    let provider = a.provider.account_id();
    chain.ok(client::claim(&vault, 0, provider, None, None), &[&a.provider]);
    assert_eq!(chain.balance(&provider), 50);
    assert_eq!(chain.balance(&vault.holding()), 450);
    assert_eq!(chain.balance(&a.owner.account_id()), 500);
    let stream = chain.stream(&vault, 0);
    assert_eq!(
        (stream.accrued, stream.allocation, stream.state, stream.accrued_as_of),
        (0, 150, StreamState::Active, 12_350)
    );
    let config = chain.vault_config(&vault);
    assert_eq!(config.total_allocated, 150);
    // Claim never frees headroom: unallocated stays 300.
    assert_eq!(chain.balance(&vault.holding()) - config.total_allocated, 300);
    assert_conservation(&chain, &vault);
}

#[test]
fn claim_errors() {
    let (mut chain, a, vault) = streaming(10, 10, 100);
    let provider = a.provider.account_id();
    chain.expect_err(client::claim(&vault, 0, provider, None, None), &[&a.provider], StreamError::ZeroClaimAmount);
    chain.set_time(12);
    let stranger = a.provider_b.account_id();
    chain.expect_err(client::claim(&vault, 0, stranger, None, None), &[&a.provider_b], StreamError::ClaimUnauthorized);
    chain.expect_err(client::claim(&vault, 0, provider, None, None), &[&a.provider_b], StreamError::MissingSignature);
    let mut extra = client::claim(&vault, 0, provider, None, None);
    extra.account_ids.push(a.recipient.account_id());
    chain.expect_err(extra, &[&a.provider], StreamError::WrongAccountCount);
    chain.force_time(5);
    chain.expect_err(client::claim(&vault, 0, provider, None, None), &[&a.provider], StreamError::TimeRegression);
}

#[test]
fn claim_works_in_paused_and_depleted_states() {
    let (mut chain, a, vault) = streaming(0, 1, 80);
    let provider = a.provider.account_id();
    chain.set_time(1000);
    chain.ok(client::claim(&vault, 0, provider, None, None), &[&a.provider]);
    let stream = chain.stream(&vault, 0);
    assert_eq!(
        (stream.accrued, stream.allocation, stream.state, stream.accrued_as_of),
        (0, 0, StreamState::Paused, 80)
    );
    assert_eq!(chain.balance(&provider), 80);
    chain.expect_err(client::claim(&vault, 0, provider, None, None), &[&a.provider], StreamError::ZeroClaimAmount);
    assert_conservation(&chain, &vault);
}
