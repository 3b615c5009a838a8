//! InitializeVault, Deposit, Withdraw and WithdrawToOwner: happy paths and every error.

use crate::common::*;
use paystreams_lez_core::{AccountId, transfer::authenticated_transfer_program_id};
use paystreams_program::{
    StreamError, client,
    state::{VaultHolding, VaultPrivacyTier, decode},
};

#[test]
fn initialize_vault_writes_the_reference_layout_and_refuses_a_second_init() {
    let (mut chain, a) = Chain::new(1000);
    let vault = native_vault(&a.owner);
    chain.ok(client::initialize_vault(&vault, VaultPrivacyTier::Public), &[&a.owner]);
    let config = chain.vault_config(&vault);
    assert_eq!((config.version, config.owner, config.vault_id), (1, a.owner.account_id(), VAULT_ID));
    assert_eq!((config.next_stream_id, config.total_allocated, config.token_id), (0, 0, [0; 32]));
    let holding: VaultHolding = decode(&chain.account(&vault.holding()).data).expect("holding");
    assert_eq!(holding.version, 1);
    assert_eq!(chain.account(&vault.config()).data.len(), 98);
    chain.expect_err(
        client::initialize_vault(&vault, VaultPrivacyTier::Public),
        &[&a.owner],
        StreamError::AccountAlreadyInitialized,
    );
}

#[test]
fn initialize_vault_refuses_pseudonymous_funding_and_writes_nothing() {
    let (mut chain, a) = Chain::new(1000);
    let vault = native_vault(&a.owner);
    chain.expect_err(
        client::initialize_vault(&vault, VaultPrivacyTier::PseudonymousFunding),
        &[&a.owner],
        StreamError::PrivacyTierUnavailable,
    );
    assert!(chain.account(&vault.config()).is_default(), "no vault was created");
    assert!(StreamError::PrivacyTierUnavailable.description().contains("private accounts"));
    // The same vault id is still free for a Public vault.
    chain.ok(client::initialize_vault(&vault, VaultPrivacyTier::Public), &[&a.owner]);
    assert_eq!(chain.vault_config(&vault).privacy_tier, VaultPrivacyTier::Public);
}

#[test]
fn initialize_vault_requires_the_owner_signature() {
    let (mut chain, a) = Chain::new(1000);
    let vault = native_vault(&a.owner);
    chain.expect_err(
        client::initialize_vault(&vault, VaultPrivacyTier::Public),
        &[&a.alt],
        StreamError::MissingSignature,
    );
}

#[test]
fn initialize_vault_refuses_addresses_that_are_not_its_pdas() {
    let (mut chain, a) = Chain::new(1000);
    let vault = native_vault(&a.owner);
    let mut call = client::initialize_vault(&vault, VaultPrivacyTier::Public);
    call.account_ids[0] = native_vault(&a.alt).config();
    chain.expect_err(call, &[&a.owner], StreamError::PdaMismatch);
    let mut call = client::initialize_vault(&vault, VaultPrivacyTier::Public);
    call.account_ids[1] = AccountId([7; 32]);
    chain.expect_err(call, &[&a.owner], StreamError::PdaMismatch);
}

#[test]
fn initialize_vault_checks_account_count_and_token() {
    let (mut chain, a) = Chain::new(1000);
    let vault = native_vault(&a.owner);
    let mut call = client::initialize_vault(&vault, VaultPrivacyTier::Public);
    call.account_ids.push(a.alt.account_id());
    chain.expect_err(call, &[&a.owner], StreamError::WrongAccountCount);
    // A token id naming an account that is not a token definition.
    let mut token_vault = vault;
    token_vault.token_id = a.alt.account_id().0;
    chain.expect_err(
        client::initialize_vault(&token_vault, VaultPrivacyTier::Public),
        &[&a.owner],
        StreamError::UnsupportedTokenId,
    );
}

#[test]
fn deposit_moves_native_funds_into_the_holding() {
    let (mut chain, a) = Chain::new(1000);
    let vault = native_vault(&a.owner);
    chain.ok(client::initialize_vault(&vault, VaultPrivacyTier::Public), &[&a.owner]);
    chain.ok(deposit(&vault, 300), &[&a.owner]);
    assert_eq!(chain.balance(&a.owner.account_id()), 700);
    assert_eq!(chain.balance(&vault.holding()), 300);
    let config = chain.vault_config(&vault);
    assert_eq!((config.total_allocated, config.next_stream_id), (0, 0));
}

#[test]
fn deposit_after_create_stream_leaves_allocations_alone() {
    let (mut chain, a, vault) = streaming(1, 10, 200);
    let stream_before = chain.account(&vault.stream(0));
    chain.ok(deposit(&vault, 50), &[&a.owner]);
    assert_eq!(chain.balance(&a.owner.account_id()), 450);
    assert_eq!(chain.balance(&vault.holding()), 550);
    assert_eq!(chain.vault_config(&vault).total_allocated, 200);
    assert_eq!(chain.account(&vault.stream(0)), stream_before);
}

#[test]
fn deposit_errors() {
    let (mut chain, a, vault) = deposited(1);
    chain.expect_err(deposit(&vault, 0), &[&a.owner], StreamError::ZeroDepositAmount);
    chain.expect_err(deposit(&vault, 10), &[&a.alt], StreamError::MissingSignature);
    // More than the owner has: the authenticated-transfer program refuses; nothing moves.
    assert!(chain.exec(deposit(&vault, 10_000), &[&a.owner]).is_err());
    // A program id that is not authenticated transfer cannot debit the owner.
    let bogus = client::deposit(&vault, 10, paystreams_program::payment_streams_program_id(), None);
    assert!(chain.exec(bogus, &[&a.owner]).is_err());
    assert_eq!(chain.balance(&vault.holding()), 500);

    chain.patch_vault(&vault, |c| c.vault_id = 999);
    chain.expect_err(deposit(&vault, 10), &[&a.owner], StreamError::VaultIdMismatch);
    chain.patch_vault(&vault, |c| c.vault_id = VAULT_ID);
    chain.patch_vault(&vault, |c| c.owner = a.alt.account_id());
    chain.expect_err(deposit(&vault, 10), &[&a.owner], StreamError::VaultOwnerMismatch);
    chain.patch_vault(&vault, |c| c.owner = a.owner.account_id());
    let mut holding = chain.account(&vault.holding());
    holding.data = vec![2];
    chain.put(vault.holding(), holding);
    chain.expect_err(deposit(&vault, 10), &[&a.owner], StreamError::VersionMismatch);
}

#[test]
fn withdraw_pays_unallocated_funds_to_an_explicit_destination() {
    let (mut chain, a, vault) = streaming(1, 10, 200);
    chain.ok(client::withdraw(&vault, 300, Some(a.recipient.account_id())), &[&a.owner]);
    assert_eq!(chain.balance(&a.recipient.account_id()), 300);
    assert_eq!(chain.balance(&vault.holding()), 200);
    assert_conservation(&chain, &vault);
}

#[test]
fn withdraw_to_owner_pays_the_owner() {
    let (mut chain, a, vault) = deposited(1);
    chain.ok(client::withdraw(&vault, 120, None), &[&a.owner]);
    assert_eq!(chain.balance(&a.owner.account_id()), 620);
    assert_eq!(chain.balance(&vault.holding()), 380);
}

#[test]
fn withdraw_errors() {
    let (mut chain, a, vault) = streaming(1, 10, 200);
    chain.expect_err(client::withdraw(&vault, 0, None), &[&a.owner], StreamError::ZeroWithdrawAmount);
    chain.expect_err(client::withdraw(&vault, 301, None), &[&a.owner], StreamError::InsufficientFunds);
    chain.expect_err(
        client::withdraw(&vault, 301, Some(a.recipient.account_id())),
        &[&a.owner],
        StreamError::InsufficientFunds,
    );
    chain.expect_err(client::withdraw(&vault, 1, None), &[&a.alt], StreamError::MissingSignature);
    // A never-initialised destination would receive funds nobody could move again.
    chain.expect_err(
        client::withdraw(&vault, 1, Some(AccountId([9; 32]))),
        &[&a.owner],
        StreamError::DestinationUninitialized,
    );
    chain.patch_vault(&vault, |c| c.owner = a.alt.account_id());
    // The owner check comes before the amount checks.
    chain.expect_err(client::withdraw(&vault, 0, None), &[&a.owner], StreamError::VaultOwnerMismatch);
}

#[test]
fn deposit_uses_the_authenticated_transfer_program() {
    let (mut chain, a) = Chain::new(1000);
    let vault = native_vault(&a.owner);
    chain.ok(client::initialize_vault(&vault, VaultPrivacyTier::Public), &[&a.owner]);
    chain.ok(client::deposit(&vault, 1, authenticated_transfer_program_id(), None), &[&a.owner]);
    assert_eq!(chain.balance(&vault.holding()), 1);
}
