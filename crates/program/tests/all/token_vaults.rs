//! Vaults of a non-native token: deposit, withdraw and claim move the token through the token
//! program.

use crate::common::*;
use paystreams_program::{
    ExtensionSettings, StreamError,
    client::{self, VaultRef},
    payment_streams_program_id,
    state::VaultPrivacyTier,
};

#[test]
fn token_vault_lifecycle() {
    let (mut chain, a) = Chain::new(1000);
    let definition = key("token-definition");
    let owner_holding = key("owner-holding");
    let provider_holding = key("provider-holding");
    chain.create_token(&definition, &owner_holding, 1_000_000);
    let vault = VaultRef {
        program_id: payment_streams_program_id(),
        owner: a.owner.account_id(),
        vault_id: 3,
        token_id: definition.account_id().0,
    };
    chain.set_time(100);
    chain.ok(client::initialize_vault(&vault, VaultPrivacyTier::Public), &[&a.owner]);
    assert_eq!(chain.vault_config(&vault).token_id, definition.account_id().0);

    let deposit = client::deposit(
        &vault,
        5000,
        paystreams_lez_core::transfer::authenticated_transfer_program_id(),
        Some(owner_holding.account_id()),
    );
    chain.expect_err(deposit.clone(), &[&a.owner], StreamError::MissingSignature);
    chain.ok(deposit, &[&a.owner, &owner_holding]);
    assert_eq!(chain.token_balance(&vault.holding()), 5000);
    assert_eq!(chain.token_balance(&owner_holding.account_id()), 995_000);
    // Native balances did not move.
    assert_eq!(chain.balance(&a.owner.account_id()), 1000);

    let provider = a.provider.account_id();
    chain.ok(client::create_stream(&vault, 0, provider, 7, 700, ExtensionSettings::default()), &[&a.owner]);
    chain.set_time(110);
    // Claims to a token vault need the provider's holding.
    chain.expect_err(client::claim(&vault, 0, provider, None, None), &[&a.provider], StreamError::WrongAccountCount);
    chain.ok(
        client::claim(&vault, 0, provider, Some(provider_holding.account_id()), None),
        &[&a.provider, &provider_holding],
    );
    assert_eq!(chain.token_balance(&provider_holding.account_id()), 70);
    assert_eq!(chain.token_balance(&vault.holding()), 4930);

    chain.expect_err(client::withdraw(&vault, 10, None), &[&a.owner], StreamError::WithdrawToOwnerNotNative);
    chain.expect_err(
        client::withdraw(&vault, 4301, Some(owner_holding.account_id())),
        &[&a.owner],
        StreamError::InsufficientFunds,
    );
    chain.ok(client::withdraw(&vault, 4300, Some(owner_holding.account_id())), &[&a.owner]);
    assert_eq!(chain.token_balance(&owner_holding.account_id()), 999_300);
    assert_eq!(chain.token_balance(&vault.holding()), 630);
    assert_eq!(chain.vault_config(&vault).total_allocated, 630);
}

#[test]
fn token_vault_refuses_a_holding_of_another_token() {
    let (mut chain, a) = Chain::new(1000);
    let definition = key("token-a");
    let other = key("token-b");
    let holding_a = key("holding-a");
    let holding_b = key("holding-b");
    chain.create_token(&definition, &holding_a, 100);
    chain.create_token(&other, &holding_b, 100);
    let vault = VaultRef {
        program_id: payment_streams_program_id(),
        owner: a.owner.account_id(),
        vault_id: 0,
        token_id: definition.account_id().0,
    };
    chain.ok(client::initialize_vault(&vault, VaultPrivacyTier::Public), &[&a.owner]);
    let auth = paystreams_lez_core::transfer::authenticated_transfer_program_id();
    chain.expect_err(
        client::deposit(&vault, 10, auth, Some(holding_b.account_id())),
        &[&a.owner, &holding_b],
        StreamError::TokenHoldingMismatch,
    );
    chain.ok(client::deposit(&vault, 10, auth, Some(holding_a.account_id())), &[&a.owner, &holding_a]);
    chain.expect_err(
        client::withdraw(&vault, 5, Some(holding_b.account_id())),
        &[&a.owner],
        StreamError::TokenHoldingMismatch,
    );
}
