//! Signature and nonce checks, in LEZ's order.

use paystreams_lez_core::{crypto::Signature, transfer::transfer_instruction};
use paystreams_runtime::{Message, Transaction, WitnessSet};

use crate::common::{Harness, ProgramFn, key, native, pid};

fn passthrough(
    input: &paystreams_lez_core::ProgramInput<'_>,
) -> Result<paystreams_lez_core::ProgramOutput, paystreams_lez_core::ProgramError> {
    Ok(crate::common::output(crate::common::unchanged(input)))
}

const PROGRAMS: &[(&str, ProgramFn)] = &[("passthrough", passthrough)];

fn harness() -> Harness {
    Harness::new(&[(key(1).account_id(), 1000), (key(2).account_id(), 1000)], PROGRAMS)
}

#[test]
fn a_bad_signature_is_refused() {
    let mut h = harness();
    let mut tx = h.tx(native(), vec![key(1).account_id(), key(2).account_id()], transfer_instruction(5), &[&key(1)]);
    tx.message.instruction_data = transfer_instruction(500);
    let before = h.chain.state().clone();
    assert_eq!(h.submit(&tx).map_err(|e| e.code()).err(), Some(1012));
    assert_eq!(h.chain.state(), &before);
    // A zero signature as well.
    let witness_set = WitnessSet { signatures_and_public_keys: vec![(Signature([0; 64]), key(1).public_key())] };
    let tx = Transaction { message: tx.message, witness_set };
    assert_eq!(h.submit(&tx).map_err(|e| e.code()).err(), Some(1012));
}

#[test]
fn apply_verified_skips_only_the_signature_check() {
    let h = harness();
    let message = Message {
        program_id: native(),
        account_ids: vec![key(1).account_id(), key(2).account_id()],
        nonces: vec![0],
        instruction_data: transfer_instruction(5),
    };
    let witness_set = WitnessSet { signatures_and_public_keys: vec![(Signature([0; 64]), key(1).public_key())] };
    let tx = Transaction { message, witness_set };
    let applied = h.chain.runtime().apply_verified(h.chain.state(), &tx, &h.chain.block()).expect("signatures trusted");
    assert_eq!(applied.diff.accounts.len(), 2);
    let mut wrong_nonce = tx;
    wrong_nonce.message.nonces = vec![3];
    assert_eq!(
        h.chain.runtime().apply_verified(h.chain.state(), &wrong_nonce, &h.chain.block()).map_err(|e| e.code()).err(),
        Some(1013)
    );
}

#[test]
fn a_wrong_nonce_is_refused() {
    let mut h = harness();
    let message = Message {
        program_id: native(),
        account_ids: vec![key(1).account_id(), key(2).account_id()],
        nonces: vec![1],
        instruction_data: transfer_instruction(5),
    };
    let tx = Transaction::sign(message, &[&key(1)]);
    assert_eq!(h.submit(&tx).map_err(|e| e.code()).err(), Some(1013));
}

#[test]
fn replaying_a_transaction_is_refused_by_its_nonce() {
    let mut h = harness();
    let tx = h.tx(native(), vec![key(1).account_id(), key(2).account_id()], transfer_instruction(5), &[&key(1)]);
    h.submit(&tx).expect("first time");
    assert_eq!(h.submit(&tx).map_err(|e| e.code()).err(), Some(1013));
}

#[test]
fn duplicate_account_ids_are_refused() {
    let mut h = harness();
    let alice = key(1).account_id();
    h.reject(native(), vec![alice, alice], transfer_instruction(5), &[&key(1)], 1010);
}

#[test]
fn nonce_and_signature_counts_must_match() {
    let mut h = harness();
    let message = Message {
        program_id: native(),
        account_ids: vec![key(1).account_id(), key(2).account_id()],
        nonces: vec![0, 0],
        instruction_data: transfer_instruction(5),
    };
    let tx = Transaction::sign(message, &[&key(1)]);
    assert_eq!(h.submit(&tx).map_err(|e| e.code()).err(), Some(1011));
}

#[test]
fn a_key_may_sign_only_once() {
    let mut h = harness();
    let message =
        Message { program_id: pid("passthrough"), account_ids: vec![], nonces: vec![0, 0], instruction_data: vec![] };
    let tx = Transaction::sign(message, &[&key(1), &key(1)]);
    assert_eq!(h.submit(&tx).map_err(|e| e.code()).err(), Some(1014));
}

#[test]
fn every_signer_nonce_is_bumped_listed_or_not() {
    let mut h = harness();
    let (alice, bob, carol) = (key(1), key(2), key(3));
    let applied =
        h.call(pid("passthrough"), vec![alice.account_id()], vec![], &[&alice, &bob, &carol]).expect("three signers");
    for k in [&alice, &bob, &carol] {
        assert_eq!(h.account(&k.account_id()).nonce, 1);
        assert!(applied.diff.accounts.contains_key(&k.account_id()));
    }
    assert_eq!(h.account(&alice.account_id()).balance, 1000);
    h.call(pid("passthrough"), vec![], vec![], &[&bob]).expect("second");
    assert_eq!(h.account(&bob.account_id()).nonce, 2);
}

#[test]
fn receipts_carry_the_transaction_hash() {
    let mut h = harness();
    let tx = h.tx(native(), vec![key(1).account_id(), key(2).account_id()], transfer_instruction(5), &[&key(1)]);
    let applied = h.submit(&tx).expect("applies");
    assert_eq!(applied.receipt.tx_hash, tx.hash());
}

#[test]
fn an_overlay_lets_later_transactions_see_earlier_uncommitted_ones() {
    let h = harness();
    let (alice, bob) = (key(1), key(2));
    let mut overlay = paystreams_runtime::Overlay::new(h.chain.state());
    let first = h.tx(native(), vec![alice.account_id(), bob.account_id()], transfer_instruction(1000), &[&alice]);
    let applied = h.chain.runtime().apply(&overlay, &first, &h.chain.block()).expect("first");
    overlay.apply_diff(&applied.diff);
    // Bob now holds 2000 in the overlay and can spend more than his committed balance.
    let second = Transaction::sign(
        Message {
            program_id: native(),
            account_ids: vec![bob.account_id(), alice.account_id()],
            nonces: vec![0],
            instruction_data: transfer_instruction(1500),
        },
        &[&bob],
    );
    assert_eq!(
        h.chain.runtime().apply(h.chain.state(), &second, &h.chain.block()).map_err(|e| e.code()).err(),
        Some(2006)
    );
    let applied = h.chain.runtime().apply(&overlay, &second, &h.chain.block()).expect("second sees the first");
    overlay.apply_diff(&applied.diff);
    let mut state = h.chain.state().clone();
    state.apply_diff(&overlay.into_diff());
    use paystreams_runtime::StateView as _;
    assert_eq!(state.account(&alice.account_id()).balance, 1500);
    assert_eq!(state.account(&bob.account_id()).balance, 500);
}
