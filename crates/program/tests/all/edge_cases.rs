//! Errors only corrupt state or unusual account lists can reach, and malformed instructions.

use crate::common::*;
use paystreams_lez_core::AccountId;
use paystreams_program::{StreamError, client, payment_streams_program_id};

fn expect_code(result: Result<(), paystreams_runtime::TxError>, expected: StreamError) {
    match result {
        Err(error) => assert_eq!(error.code(), expected.code(), "expected {expected}, got {error}"),
        Ok(()) => panic!("expected {expected}, but it succeeded"),
    }
}

#[test]
fn garbage_instruction_words_are_refused() {
    let (mut chain, a, vault) = deposited(1);
    let ids = vec![vault.config(), vault.holding(), a.owner.account_id()];
    // A plain CreateStream re-tagged as the extended variant with every extension at its
    // default: not the instruction's one encoding.
    let mut empty_extension =
        client::create_stream(&vault, 0, a.provider.account_id(), 1, 10, Default::default()).instruction_data();
    empty_extension[0] = 11;
    empty_extension.extend([0; 8]);
    let mut trailing = client::withdraw(&vault, 1, None).instruction_data();
    trailing.push(0);
    for words in [vec![], vec![11], vec![14, 1, 0, 2, 0], vec![0xff; 600], vec![3, 1, 2], trailing, empty_extension] {
        let result = chain.exec_raw(payment_streams_program_id(), ids.clone(), words, &[&a.owner]);
        expect_code(result, StreamError::InvalidInstruction);
    }
}

#[test]
fn wrong_account_counts_are_refused_everywhere() {
    let (mut chain, a, vault) = streaming(1, 1, 10);
    let mut deposit_call = deposit(&vault, 5);
    deposit_call.account_ids.push(a.alt.account_id());
    chain.expect_err(deposit_call, &[&a.owner], StreamError::WrongAccountCount);
    let mut withdraw_call = client::withdraw(&vault, 5, Some(a.recipient.account_id()));
    withdraw_call.account_ids.pop();
    // Three accounts is WithdrawToOwner's shape, but the instruction is Withdraw.
    chain.expect_err(withdraw_call, &[&a.owner], StreamError::WrongAccountCount);
    let mut close = client::close_stream_by_provider(&vault, 0, a.provider.account_id(), None, None);
    close.account_ids.push(a.recipient.account_id());
    chain.expect_err(close, &[&a.provider], StreamError::WrongAccountCount);
}

#[test]
fn corrupt_vault_data_is_refused() {
    let (mut chain, a, vault) = deposited(1);
    let mut config = chain.account(&vault.config());
    config.data.truncate(10);
    chain.put(vault.config(), config);
    chain.expect_err(deposit(&vault, 5), &[&a.owner], StreamError::InvalidAccountData);
}

#[test]
fn releasing_more_than_total_allocated_is_refused() {
    let (mut chain, a, vault) = streaming(0, 1, 100);
    chain.patch_vault(&vault, |c| c.total_allocated = 10);
    chain.expect_err(client::close_stream_by_owner(&vault, 0), &[&a.owner], StreamError::TotalAllocatedUnderflow);
}

#[test]
fn claims_never_pay_into_an_uninitialised_account() {
    let (mut chain, a, vault) = deposited(0);
    let fresh = key("fresh-provider");
    chain.ok(client::create_stream(&vault, 0, fresh.account_id(), 1, 100, Default::default()), &[&a.owner]);
    chain.set_time(10);
    chain.expect_err(
        client::claim(&vault, 0, fresh.account_id(), None, None),
        &[&fresh],
        StreamError::DestinationUninitialized,
    );
    // Once initialised with authenticated transfer, the same claim pays.
    let init = paystreams_lez_core::transfer::initialize_instruction();
    chain
        .exec_raw(
            paystreams_lez_core::transfer::authenticated_transfer_program_id(),
            vec![fresh.account_id()],
            init,
            &[&fresh],
        )
        .expect("initialised");
    chain.ok(client::claim(&vault, 0, fresh.account_id(), None, None), &[&fresh]);
    assert_eq!(chain.balance(&fresh.account_id()), 10);
}

#[test]
fn receipts_on_a_provider_close_without_auto_claim_are_refused() {
    let (mut chain, a, vault) = streaming(0, 1, 100);
    let receipt = paystreams_program::receipt::DeliveryReceipt {
        body: paystreams_program::receipt::ReceiptBody {
            program_id: payment_streams_program_id(),
            stream_config: vault.stream(0),
            stream_id: 0,
            acknowledged_total: 1,
            deliveries_digest: [0; 32],
        },
        signature: [0; 64],
    };
    let call = client::close_stream_by_provider(&vault, 0, a.provider.account_id(), None, Some(receipt));
    chain.expect_err(call, &[&a.provider], StreamError::ReceiptNotExpected);
}

#[test]
fn a_stream_in_another_vault_cannot_be_named() {
    let (mut chain, a, vault) = streaming(0, 1, 100);
    let mut call = client::pause_stream(&vault, 0);
    // The stream account of vault 1 of another owner sits at a different PDA.
    call.account_ids[2] = AccountId([3; 32]);
    chain.expect_err(call, &[&a.owner], StreamError::PdaMismatch);
}
