//! The builtin programs: native transfer and initialisation, tokens, the clock.

use paystreams_lez_core::{
    AccountId,
    clock::{CLOCK_01_ACCOUNT_ID, CLOCK_10_ACCOUNT_ID, CLOCK_50_ACCOUNT_ID, ClockAccountData, clock_program_id},
    token::{TokenDefinition, TokenHolding, TokenInstruction, token_program_id},
    transfer::{initialize_instruction, transfer_instruction},
};
use paystreams_runtime::{BlockContext, ReceiptEvent, Runtime, StateView as _, genesis};
use proptest::prelude::*;

use crate::common::{Harness, key, native};

fn harness() -> Harness {
    Harness::new(&[(key(1).account_id(), 1000), (key(2).account_id(), 1000)], &[])
}

#[test]
fn native_transfer_moves_balance_and_emits_an_event() {
    let mut h = harness();
    let (alice, bob) = (key(1).account_id(), key(2).account_id());
    let applied = h.call(native(), vec![alice, bob], transfer_instruction(300), &[&key(1)]).expect("transfer");
    assert_eq!(h.account(&alice).balance, 700);
    assert_eq!(h.account(&bob).balance, 1300);
    assert_eq!(applied.receipt.events, vec![ReceiptEvent::NativeTransfer { from: alice, to: bob, amount: 300 }]);
    // Overdraft and unsigned transfers fail with the program's codes.
    h.reject(native(), vec![alice, bob], transfer_instruction(701), &[&key(1)], 2006);
    h.reject(native(), vec![alice, bob], transfer_instruction(1), &[], 2003);
    h.reject(native(), vec![alice, bob, AccountId([9; 32])], transfer_instruction(1), &[&key(1)], 2002);
    h.reject(native(), vec![alice, bob], vec![1, 2], &[&key(1)], 2001);
}

#[test]
fn initialise_claims_a_fresh_account_which_can_then_receive_without_signing() {
    let mut h = harness();
    let fresh = key(9);
    let applied = h.call(native(), vec![fresh.account_id()], initialize_instruction(), &[&fresh]).expect("init");
    assert_eq!(applied.receipt.events, vec![ReceiptEvent::NativeAccountInitialized { account: fresh.account_id() }]);
    let account = h.account(&fresh.account_id());
    assert_eq!((account.program_owner, account.balance, account.nonce), (native(), 0, 1));
    h.call(native(), vec![key(1).account_id(), fresh.account_id()], transfer_instruction(10), &[&key(1)])
        .expect("credit");
    assert_eq!(h.account(&fresh.account_id()).balance, 10);
    // Initialising twice, or without a signature, fails.
    h.reject(native(), vec![fresh.account_id()], initialize_instruction(), &[&fresh], 2004);
    h.reject(native(), vec![key(8).account_id()], initialize_instruction(), &[], 2003);
}

fn holding(h: &Harness, id: &AccountId) -> TokenHolding {
    borsh::from_slice(&h.account(id).data).expect("a holding")
}

#[test]
fn tokens_create_mint_and_transfer_to_a_fresh_holding() {
    let mut h = harness();
    let (definition, supply, fresh) = (key(20), key(21), key(22));
    let create = TokenInstruction::NewFungibleDefinition { name: "USDX".into(), total_supply: 1_000 }.to_words();
    h.call(token_program_id(), vec![definition.account_id(), supply.account_id()], create, &[&definition, &supply])
        .expect("definition");
    assert_eq!(h.account(&definition.account_id()).program_owner, token_program_id());
    assert_eq!(holding(&h, &supply.account_id()).balance(), 1_000);

    let mint = TokenInstruction::Mint { amount: 500 }.to_words();
    let applied = h
        .call(token_program_id(), vec![definition.account_id(), supply.account_id()], mint.clone(), &[&definition])
        .expect("mint");
    assert!(matches!(applied.receipt.events.as_slice(), [ReceiptEvent::TokenMinted { amount: 500, .. }]));
    assert_eq!(holding(&h, &supply.account_id()).balance(), 1_500);
    let total: TokenDefinition = borsh::from_slice(&h.account(&definition.account_id()).data).expect("definition");
    assert_eq!(total, TokenDefinition::Fungible { name: "USDX".into(), total_supply: 1_500 });
    h.reject(token_program_id(), vec![definition.account_id(), supply.account_id()], mint, &[], 3003);

    let transfer = TokenInstruction::Transfer { amount: 400 }.to_words();
    // A fresh recipient must sign to be claimed...
    h.reject(token_program_id(), vec![supply.account_id(), fresh.account_id()], transfer.clone(), &[&supply], 1043);
    let applied = h
        .call(token_program_id(), vec![supply.account_id(), fresh.account_id()], transfer.clone(), &[&supply, &fresh])
        .expect("transfer to a fresh holding");
    assert_eq!(
        applied.receipt.events,
        vec![ReceiptEvent::TokenTransfer {
            definition_id: definition.account_id(),
            from: supply.account_id(),
            to: fresh.account_id(),
            amount: 400
        }]
    );
    assert_eq!(h.account(&fresh.account_id()).program_owner, token_program_id());
    assert_eq!(
        holding(&h, &fresh.account_id()),
        TokenHolding::Fungible { definition_id: definition.account_id(), balance: 400 }
    );
    assert_eq!(holding(&h, &supply.account_id()).balance(), 1_100);
    // ...and then receives without signing.
    h.call(token_program_id(), vec![supply.account_id(), fresh.account_id()], transfer, &[&supply]).expect("again");
    assert_eq!(holding(&h, &fresh.account_id()).balance(), 800);
    // Overdraft.
    let too_much = TokenInstruction::Transfer { amount: 801 }.to_words();
    h.reject(token_program_id(), vec![fresh.account_id(), supply.account_id()], too_much, &[&fresh], 3009);
}

#[test]
fn token_accounts_initialise_and_refuse_mismatched_definitions() {
    let mut h = harness();
    let (a_def, a_supply, b_def, b_supply, empty) = (key(20), key(21), key(23), key(24), key(25));
    for (def, supply) in [(&a_def, &a_supply), (&b_def, &b_supply)] {
        let create = TokenInstruction::NewFungibleDefinition { name: "T".into(), total_supply: 10 }.to_words();
        h.call(token_program_id(), vec![def.account_id(), supply.account_id()], create, &[def, supply])
            .expect("create");
    }
    let init = TokenInstruction::InitializeAccount.to_words();
    h.call(token_program_id(), vec![a_def.account_id(), empty.account_id()], init.clone(), &[&empty]).expect("init");
    assert_eq!(
        holding(&h, &empty.account_id()),
        TokenHolding::Fungible { definition_id: a_def.account_id(), balance: 0 }
    );
    // Initialising against something that is not a definition fails.
    h.reject(token_program_id(), vec![key(1).account_id(), key(26).account_id()], init, &[&key(26)], 3006);
    let transfer = TokenInstruction::Transfer { amount: 1 }.to_words();
    h.reject(token_program_id(), vec![b_supply.account_id(), empty.account_id()], transfer, &[&b_supply], 3008);
    let long = TokenInstruction::NewFungibleDefinition { name: "x".repeat(33), total_supply: 1 }.to_words();
    h.reject(token_program_id(), vec![key(27).account_id(), key(28).account_id()], long, &[&key(27), &key(28)], 3005);
}

fn clock(state: &impl paystreams_runtime::StateView, id: &AccountId) -> ClockAccountData {
    borsh::from_slice(&state.account(id).data).expect("clock data")
}

#[test]
fn clock_cadence_over_a_hundred_blocks() {
    let runtime = Runtime::new();
    let mut state = genesis(&[], 7);
    for id in [CLOCK_01_ACCOUNT_ID, CLOCK_10_ACCOUNT_ID, CLOCK_50_ACCOUNT_ID] {
        assert_eq!(clock(&state, &id), ClockAccountData { block_id: 0, timestamp_ms: 7 });
        assert_eq!(state.account(&id).program_owner, clock_program_id());
    }
    for block in 1..=100_u64 {
        let ctx = BlockContext { block_id: block, timestamp_ms: 1_000 * block };
        let diff = runtime.clock_update(&state, &ctx).expect("clock update");
        assert_eq!(diff.accounts.len(), 1 + usize::from(block % 10 == 0) + usize::from(block % 50 == 0));
        state.apply_diff(&diff);
        let last = |cadence: u64| {
            let b = block - block % cadence;
            if b == 0 {
                ClockAccountData { block_id: 0, timestamp_ms: 7 }
            } else {
                ClockAccountData { block_id: b, timestamp_ms: 1_000 * b }
            }
        };
        assert_eq!(clock(&state, &CLOCK_01_ACCOUNT_ID), last(1));
        assert_eq!(clock(&state, &CLOCK_10_ACCOUNT_ID), last(10));
        assert_eq!(clock(&state, &CLOCK_50_ACCOUNT_ID), last(50));
    }
    // Time never goes backwards (the same timestamp twice is fine).
    let error =
        runtime.clock_update(&state, &BlockContext { block_id: 101, timestamp_ms: 99_999 }).expect_err("backwards");
    assert_eq!(error.code(), 1051);
    runtime.clock_update(&state, &BlockContext { block_id: 101, timestamp_ms: 100_000 }).expect("same time");
}

#[test]
fn clock_update_needs_the_clock_accounts() {
    let runtime = Runtime::new();
    let error =
        runtime.clock_update(&paystreams_runtime::State::new(), &BlockContext::default()).expect_err("no clock");
    assert_eq!(error.code(), 4002);
    assert_eq!(error.name(), "InvalidAccounts");
}

fn total_native(h: &Harness) -> u128 {
    h.chain.state().iter().map(|(_, a)| a.balance).sum()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Random transfers between five keys (some failing: overdrafts, fresh unsigned
    /// recipients) never change the total native supply, and failed ones change nothing.
    #[test]
    fn random_transfers_conserve_native_supply(
        transfers in proptest::collection::vec((0_u8..6, 0_u8..6, 0_u128..1_500, any::<bool>()), 1..12)
    ) {
        let keys: Vec<_> = (1..=6).map(key).collect();
        let funded: Vec<_> = keys.iter().take(4).map(|k| (k.account_id(), 1_000)).collect();
        let mut h = Harness::new(&funded, &[]);
        let total = total_native(&h);
        for (from, to, amount, recipient_signs) in transfers {
            let (from, to) = (&keys[usize::from(from)], &keys[usize::from(to)]);
            let signers: Vec<_> = if recipient_signs && from.account_id() != to.account_id() { vec![from, to] } else { vec![from] };
            let before = h.chain.state().clone();
            if h.call(native(), vec![from.account_id(), to.account_id()], transfer_instruction(amount), &signers).is_err() {
                prop_assert_eq!(h.chain.state(), &before);
            }
            prop_assert_eq!(total_native(&h), total);
        }
    }
}

/// The clock runs only as LEZ's clock invocation: the clock program on the three clock accounts,
/// unsigned, no nonces, a `u64` timestamp; anything else is refused before it runs, and a valid
/// invocation is what `clock_update` applies.
#[test]
fn only_a_well_formed_clock_invocation_runs_the_clock() {
    use paystreams_lez_core::{
        lee_transaction::LeeTransaction,
        lez_release::{LezRelease, clock_invocation},
    };
    for release in [LezRelease::V0_2_0, LezRelease::V0_2_4] {
        let runtime = paystreams_runtime::Runtime::for_release(release);
        let state = paystreams_runtime::genesis_with(runtime.builtin_ids(), &[], 0);
        let LeeTransaction::Public(tx) = clock_invocation(release.builtin_ids().clock, 5_000);
        let applied = runtime.apply_clock_invocation(&state, &tx).expect("a clock invocation runs");
        let ctx = BlockContext { block_id: 1, timestamp_ms: 5_000 };
        assert_eq!(Some(applied), runtime.clock_update(&state, &ctx).ok());

        let other = if release == LezRelease::V0_2_0 { LezRelease::V0_2_4 } else { LezRelease::V0_2_0 };
        let LeeTransaction::Public(foreign) = clock_invocation(other.builtin_ids().clock, 5_000);
        let mut unsigned_nonce = tx.clone();
        unsigned_nonce.message.nonces = vec![0];
        let mut short = tx.clone();
        short.message.instruction_data.pop();
        let mut accounts = tx.clone();
        accounts.message.account_ids.reverse();
        for bad in [foreign, unsigned_nonce, short, accounts] {
            let error = runtime.apply_clock_invocation(&state, &bad).expect_err("refused");
            assert_eq!(error.code(), 1002, "{release}: {error}");
        }
    }
}
