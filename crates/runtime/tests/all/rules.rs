//! Every runtime rule, each broken by a small misbehaving program: the transaction is refused
//! with the rule's code and the state is untouched.

use paystreams_lez_core::{
    AccountId, AccountPostState, AccountWithMetadata, ChainedCall, Claim, DATA_MAX_LENGTH, PdaSeed, ProgramError,
    ProgramInput, ProgramOutput,
    clock::{CLOCK_01_ACCOUNT_ID, clock_instruction, clock_program_id},
    transfer::{initialize_instruction, transfer_instruction},
};

use crate::common::{Harness, ProgramFn, key, native, output, pid, unchanged};

type R = Result<ProgramOutput, ProgramError>;

fn nonce_changer(input: &ProgramInput<'_>) -> R {
    let mut posts = unchanged(input);
    if let Some(first) = posts.first_mut() {
        first.account.nonce += 1;
    }
    Ok(output(posts))
}

fn owner_changer(input: &ProgramInput<'_>) -> R {
    let mut posts = unchanged(input);
    if let Some(first) = posts.first_mut() {
        first.account.program_owner = input.self_program_id;
    }
    Ok(output(posts))
}

/// Moves 1 from the first account to the second, whoever owns them.
fn mover(input: &ProgramInput<'_>) -> R {
    let mut posts = unchanged(input);
    if let [from, to] = posts.as_mut_slice() {
        from.account.balance -= 1;
        to.account.balance += 1;
    }
    Ok(output(posts))
}

fn data_writer(input: &ProgramInput<'_>) -> R {
    let mut posts = unchanged(input);
    if let Some(first) = posts.first_mut() {
        first.account.data = vec![1, 2, 3];
    }
    Ok(output(posts))
}

fn printer(input: &ProgramInput<'_>) -> R {
    let mut posts = unchanged(input);
    if let Some(first) = posts.first_mut() {
        first.account.balance += 1;
    }
    Ok(output(posts))
}

fn claimer(input: &ProgramInput<'_>) -> R {
    Ok(output(
        input.pre_states.iter().map(|a| AccountPostState::new_claimed(a.account.clone(), Claim::Authorized)).collect(),
    ))
}

const SEED: PdaSeed = PdaSeed([5; 32]);

fn pda_claimer(input: &ProgramInput<'_>) -> R {
    Ok(output(
        input.pre_states.iter().map(|a| AccountPostState::new_claimed(a.account.clone(), Claim::Pda(SEED))).collect(),
    ))
}

fn wrong_count(_input: &ProgramInput<'_>) -> R {
    Ok(output(vec![]))
}

fn big_data(input: &ProgramInput<'_>) -> R {
    let mut posts = unchanged(input);
    if let Some(first) = posts.first_mut() {
        first.account.data = vec![0; DATA_MAX_LENGTH + 1];
        first.claim = Some(Claim::Authorized);
    }
    Ok(output(posts))
}

/// Chain-calls authenticated transfer of 10 from the first account to the second, declaring the
/// sender authorised regardless (a forgery when the sender did not sign).
fn forger(input: &ProgramInput<'_>) -> R {
    chain_transfer(input, |from| AccountWithMetadata { is_authorized: true, ..from })
}

/// Chain-calls the same transfer but drops the signer's authorisation.
fn dropper(input: &ProgramInput<'_>) -> R {
    chain_transfer(input, |from| AccountWithMetadata { is_authorized: false, ..from })
}

/// Chain-calls the transfer with a stale (wrong) balance for the sender.
fn staler(input: &ProgramInput<'_>) -> R {
    chain_transfer(input, |mut from| {
        from.account.balance += 5;
        from
    })
}

/// Honest chaining: passes the pre-states through unchanged.
fn chainer(input: &ProgramInput<'_>) -> R {
    chain_transfer(input, |from| from)
}

fn chain_transfer(input: &ProgramInput<'_>, edit: fn(AccountWithMetadata) -> AccountWithMetadata) -> R {
    let mut pre = input.pre_states.clone().into_iter();
    let (Some(from), Some(to)) = (pre.next(), pre.next()) else { return Err(ProgramError::new(1, "Accounts", "two")) };
    Ok(ProgramOutput {
        post_states: unchanged(input),
        chained_calls: vec![ChainedCall {
            program_id: native(),
            pre_states: vec![edit(from), to],
            instruction_data: transfer_instruction(10),
            pda_seeds: vec![],
        }],
        events: vec![],
    })
}

/// Instruction `n`: chain-calls itself with `n - 1` until 0.
fn recurser(input: &ProgramInput<'_>) -> R {
    let n = input.instruction_data.first().copied().unwrap_or(0);
    let chained_calls = if n == 0 {
        vec![]
    } else {
        vec![ChainedCall {
            program_id: input.self_program_id,
            pre_states: vec![],
            instruction_data: vec![n - 1],
            pda_seeds: vec![],
        }]
    };
    Ok(ProgramOutput { post_states: vec![], chained_calls, events: vec![] })
}

/// The authority of its PDA for `SEED`: instruction 0 initialises the PDA under authenticated
/// transfer; instruction 1 sends 10 from the PDA to the second account. Both through chained
/// calls that authorise the PDA with the seed.
fn pda_authority(input: &ProgramInput<'_>) -> R {
    let mut pre = input.pre_states.clone();
    if let Some(pda) = pre.first_mut() {
        pda.is_authorized = true;
    }
    let instruction_data =
        if input.instruction_data.first() == Some(&0) { initialize_instruction() } else { transfer_instruction(10) };
    Ok(ProgramOutput {
        post_states: unchanged(input),
        chained_calls: vec![ChainedCall {
            program_id: native(),
            pre_states: pre,
            instruction_data,
            pda_seeds: vec![SEED],
        }],
        events: vec![],
    })
}

/// Chain-calls authenticated transfer naming its first account twice.
fn duplicator(input: &ProgramInput<'_>) -> R {
    let Some(first) = input.pre_states.first().cloned() else { return Err(ProgramError::new(1, "Accounts", "one")) };
    Ok(ProgramOutput {
        post_states: unchanged(input),
        chained_calls: vec![ChainedCall {
            program_id: native(),
            pre_states: vec![first.clone(), first],
            instruction_data: transfer_instruction(1),
            pda_seeds: vec![],
        }],
        events: vec![],
    })
}

fn clock_caller(input: &ProgramInput<'_>) -> R {
    Ok(ProgramOutput {
        post_states: unchanged(input),
        chained_calls: vec![ChainedCall {
            program_id: clock_program_id(),
            pre_states: vec![],
            instruction_data: clock_instruction(u64::MAX),
            pda_seeds: vec![],
        }],
        events: vec![],
    })
}

fn passthrough(input: &ProgramInput<'_>) -> R {
    Ok(output(unchanged(input)))
}

fn failing(_input: &ProgramInput<'_>) -> R {
    Err(ProgramError::new(6011, "AllocationExceedsUnallocated", "nope"))
}

const PROGRAMS: &[(&str, ProgramFn)] = &[
    ("nonce_changer", nonce_changer),
    ("owner_changer", owner_changer),
    ("mover", mover),
    ("data_writer", data_writer),
    ("printer", printer),
    ("claimer", claimer),
    ("pda_claimer", pda_claimer),
    ("wrong_count", wrong_count),
    ("big_data", big_data),
    ("forger", forger),
    ("dropper", dropper),
    ("staler", staler),
    ("chainer", chainer),
    ("recurser", recurser),
    ("pda_authority", pda_authority),
    ("clock_caller", clock_caller),
    ("duplicator", duplicator),
    ("passthrough", passthrough),
    ("failing", failing),
];

/// Alice (key 1) and Bob (key 2) with 1000 each.
fn harness() -> (Harness, AccountId, AccountId) {
    let (alice, bob) = (key(1).account_id(), key(2).account_id());
    (Harness::new(&[(alice, 1000), (bob, 1000)], PROGRAMS), alice, bob)
}

#[test]
fn nonce_change_is_refused() {
    let (mut h, alice, _) = harness();
    h.reject(pid("nonce_changer"), vec![alice], vec![], &[&key(1)], 1031);
}

#[test]
fn owner_change_is_refused() {
    let (mut h, alice, _) = harness();
    h.reject(pid("owner_changer"), vec![alice], vec![], &[&key(1)], 1032);
}

#[test]
fn debiting_a_foreign_account_is_refused_even_when_signed() {
    let (mut h, alice, bob) = harness();
    h.reject(pid("mover"), vec![alice, bob], vec![], &[&key(1)], 1033);
}

#[test]
fn the_owning_program_may_debit() {
    let (mut h, _, bob) = harness();
    let own = AccountId([42; 32]);
    h.put(own, pid("mover"), 5);
    h.call(pid("mover"), vec![own, bob], vec![], &[]).expect("owner debits");
    assert_eq!(h.account(&own).balance, 4);
    assert_eq!(h.account(&bob).balance, 1001);
}

#[test]
fn writing_a_foreign_accounts_data_is_refused() {
    let (mut h, alice, _) = harness();
    h.reject(pid("data_writer"), vec![alice], vec![], &[&key(1)], 1034);
}

#[test]
fn breaking_conservation_is_refused() {
    let (mut h, _, _) = harness();
    let own = AccountId([42; 32]);
    h.put(own, pid("printer"), 5);
    h.reject(pid("printer"), vec![own], vec![], &[], 1037);
}

#[test]
fn wrong_post_state_count_is_refused() {
    let (mut h, alice, _) = harness();
    h.reject(pid("wrong_count"), vec![alice], vec![], &[], 1030);
}

#[test]
fn oversized_data_is_refused() {
    let (mut h, _, _) = harness();
    let fresh = key(9);
    h.reject(pid("big_data"), vec![fresh.account_id()], vec![], &[&fresh], 1036);
}

#[test]
fn claiming_an_owned_account_is_refused() {
    let (mut h, alice, _) = harness();
    h.reject(pid("claimer"), vec![alice], vec![], &[&key(1)], 1042);
}

#[test]
fn claiming_an_unauthorised_default_account_is_refused_and_a_signed_one_succeeds() {
    let (mut h, _, _) = harness();
    let fresh = key(9);
    h.reject(pid("claimer"), vec![fresh.account_id()], vec![], &[], 1043);
    h.call(pid("claimer"), vec![fresh.account_id()], vec![], &[&fresh]).expect("authorised claim");
    let account = h.account(&fresh.account_id());
    assert_eq!(account.program_owner, pid("claimer"));
    assert_eq!(account.nonce, 1);
}

#[test]
fn claiming_another_programs_pda_is_refused_and_its_own_succeeds() {
    let (mut h, _, _) = harness();
    let foreign = AccountId::for_public_pda(&pid("mover"), &SEED);
    h.reject(pid("pda_claimer"), vec![foreign], vec![], &[], 1044);
    let own = AccountId::for_public_pda(&pid("pda_claimer"), &SEED);
    h.call(pid("pda_claimer"), vec![own], vec![], &[]).expect("own PDA");
    assert_eq!(h.account(&own).program_owner, pid("pda_claimer"));
}

#[test]
fn forged_authorisation_in_a_chained_call_is_refused() {
    let (mut h, alice, bob) = harness();
    // Bob signs nothing: the program claims Alice authorised the transfer.
    let error = h.reject(pid("forger"), vec![alice, bob], vec![], &[&key(2)], 1041);
    assert!(matches!(
        error,
        paystreams_runtime::TxError::InconsistentAuthorization { expected: false, given: true, .. }
    ));
}

#[test]
fn dropped_authorisation_in_a_chained_call_is_refused() {
    let (mut h, alice, bob) = harness();
    let error = h.reject(pid("dropper"), vec![alice, bob], vec![], &[&key(1)], 1041);
    assert!(matches!(
        error,
        paystreams_runtime::TxError::InconsistentAuthorization { expected: true, given: false, .. }
    ));
}

#[test]
fn stale_pre_states_in_a_chained_call_are_refused() {
    let (mut h, alice, bob) = harness();
    h.reject(pid("staler"), vec![alice, bob], vec![], &[&key(1)], 1040);
}

#[test]
fn honest_chained_calls_run_with_the_signers_authority() {
    let (mut h, alice, bob) = harness();
    let applied = h.call(pid("chainer"), vec![alice, bob], vec![], &[&key(1)]).expect("chained transfer");
    assert_eq!(h.account(&alice).balance, 990);
    assert_eq!(h.account(&bob).balance, 1010);
    assert_eq!(applied.receipt.events.len(), 1);
}

#[test]
fn pda_seeds_authorise_the_callers_pda_in_chained_calls() {
    let (mut h, _, bob) = harness();
    let pda = AccountId::for_public_pda(&pid("pda_authority"), &SEED);
    h.call(pid("pda_authority"), vec![pda], vec![0], &[]).expect("initialises the PDA under authenticated transfer");
    assert_eq!(h.account(&pda).program_owner, native());
    // Fund it, then the authority spends from it without any signature.
    h.call(native(), vec![bob, pda], transfer_instruction(50), &[&key(2)]).expect("funds");
    h.call(pid("pda_authority"), vec![pda, bob], vec![1], &[]).expect("spends as authority");
    assert_eq!(h.account(&pda).balance, 40);
    // Another program's seeds do not authorise it.
    h.reject(pid("forger"), vec![pda, bob], vec![], &[], 1041);
}

#[test]
fn ten_chained_calls_are_allowed_and_eleven_are_refused() {
    let (mut h, _, _) = harness();
    h.call(pid("recurser"), vec![], vec![10], &[]).expect("ten chained calls");
    h.reject(pid("recurser"), vec![], vec![11], &[], 1022);
}

#[test]
fn a_modified_default_account_must_be_claimed() {
    let (mut h, _, _) = harness();
    let own = AccountId([42; 32]);
    h.put(own, pid("mover"), 5);
    h.reject(pid("mover"), vec![own, AccountId([43; 32])], vec![], &[], 1045);
}

#[test]
fn crediting_a_fresh_account_needs_its_signature() {
    let (mut h, alice, _) = harness();
    let fresh = key(9);
    h.reject(native(), vec![alice, fresh.account_id()], transfer_instruction(5), &[&key(1)], 1043);
    h.call(native(), vec![alice, fresh.account_id()], transfer_instruction(5), &[&key(1), &fresh]).expect("both sign");
    assert_eq!(h.account(&fresh.account_id()).program_owner, native());
    assert_eq!(h.account(&fresh.account_id()).balance, 5);
}

#[test]
fn a_default_owned_account_with_a_bumped_nonce_is_stuck() {
    // LEZ "Symptom D": a key that signed before being initialised keeps the default owner with
    // nonce 1, and no program may output it with the default owner again.
    let (mut h, _, _) = harness();
    let fresh = key(9);
    h.call(pid("passthrough"), vec![], vec![], &[&fresh]).expect("signs without being listed");
    assert_eq!(h.account(&fresh.account_id()).nonce, 1);
    h.reject(pid("passthrough"), vec![fresh.account_id()], vec![], &[], 1035);
}

#[test]
fn clock_accounts_and_the_clock_program_are_off_limits() {
    let (mut h, _, _) = harness();
    h.reject(clock_program_id(), vec![], clock_instruction(5_000), &[], 1021);
    h.reject(pid("clock_caller"), vec![], vec![], &[], 1021);
    let own = AccountId([42; 32]);
    h.put(own, pid("mover"), 5);
    h.reject(pid("mover"), vec![own, CLOCK_01_ACCOUNT_ID], vec![], &[], 1050);
}

#[test]
fn unknown_programs_are_refused() {
    let (mut h, alice, _) = harness();
    h.reject(pid("nobody"), vec![alice], vec![], &[&key(1)], 1020);
}

#[test]
fn program_errors_keep_the_programs_code() {
    let (mut h, alice, _) = harness();
    let error = h.reject(pid("failing"), vec![alice], vec![], &[&key(1)], 6011);
    assert!(matches!(error, paystreams_runtime::TxError::Program { code: 6011, .. }));
}

#[test]
fn duplicate_pre_states_in_a_chained_call_are_refused() {
    let (mut h, alice, _) = harness();
    h.reject(pid("duplicator"), vec![alice], vec![], &[&key(1)], 1010);
}
