//! The state transition: LEZ's `ValidatedStateDiff::from_public_transaction` plus the
//! sequencer's clock rules, over pure Rust programs.

use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    fmt,
    sync::Arc,
};

use borsh::BorshDeserialize as _;
use paystreams_lez_core::{
    Account, AccountId, AccountPostState, AccountWithMetadata, Claim, DATA_MAX_LENGTH, PdaSeed, ProgramId,
    ProgramInput,
    clock::{CLOCK_01_ACCOUNT_ID, CLOCK_ACCOUNT_IDS, ClockAccountData},
    lee_transaction::LeeTransaction,
    lez_release::{BuiltinIds, LezRelease, clock_invocation},
    program::Program,
    risc0_words::from_words,
};

use crate::{
    TxError,
    builtins::{clock::ClockProgram, token::TokenProgram, transfer::AuthenticatedTransferProgram},
    receipt::{Receipt, ReceiptEvent},
    state::{StateDiff, StateView},
    transaction::{MAX_CHAINED_CALLS, Transaction, TransactionChecks as _},
};

/// The block a transaction executes in.
///
/// Programs do not see it (LEZ programs read time from clock accounts); the runtime takes it so
/// block-scoped rules (the clock update, and later validity windows) need no API change.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct BlockContext {
    pub block_id: u64,
    /// Unix milliseconds.
    pub timestamp_ms: u64,
}

/// A transaction that passed every check: its effects, to be committed by the caller.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Applied {
    pub diff: StateDiff,
    pub receipt: Receipt,
}

/// The installed programs and the rules they run under.
#[derive(Clone)]
pub struct Runtime {
    programs: BTreeMap<ProgramId, Arc<dyn Program>>,
    /// The ids the builtins run under.
    builtins: BuiltinIds,
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.programs.iter().map(|(id, program)| (id, program.name()))).finish()
    }
}

impl Default for Runtime {
    fn default() -> Self {
        Self::new()
    }
}

/// One call waiting in the worklist.
struct PendingCall {
    program_id: ProgramId,
    pre_states: Vec<AccountWithMetadata>,
    instruction_data: Vec<u32>,
    /// `None` for the top-level call.
    caller: Option<ProgramId>,
    pda_seeds: Vec<PdaSeed>,
}

/// Everything a run of calls produced.
struct Execution {
    /// Running post-state of every account any call touched.
    touched: BTreeMap<AccountId, Account>,
    events: Vec<ReceiptEvent>,
}

impl Runtime {
    /// The builtins (authenticated transfer, token, clock) under the default LEZ release's ids,
    /// and the payment-streams program.
    #[must_use]
    pub fn new() -> Self {
        Self::with_builtin_ids(BuiltinIds::default())
    }

    /// The builtins under `release`'s ids (authenticated transfer and clock take LEZ's ids;
    /// token keeps its own), and the payment-streams program.
    #[must_use]
    pub fn for_release(release: LezRelease) -> Self {
        Self::with_builtin_ids(release.builtin_ids())
    }

    /// The builtins under `ids`, and the payment-streams program.
    #[must_use]
    pub fn with_builtin_ids(ids: BuiltinIds) -> Self {
        Self { programs: BTreeMap::new(), builtins: ids }
            .with_program(Arc::new(AuthenticatedTransferProgram::with_id(ids.authenticated_transfer)))
            .with_program(Arc::new(TokenProgram::default()))
            .with_program(Arc::new(ClockProgram::with_id(ids.clock)))
            .with_program(Arc::new(paystreams_program::PaymentStreamsProgram::default()))
    }

    /// The ids the builtins run under.
    #[must_use]
    pub const fn builtin_ids(&self) -> &BuiltinIds {
        &self.builtins
    }

    /// Installs (or replaces) a program under its own id.
    #[must_use]
    pub fn with_program(mut self, program: Arc<dyn Program>) -> Self {
        self.programs.insert(program.id(), program);
        self
    }

    /// The installed program with this id.
    #[must_use]
    pub fn program(&self, id: &ProgramId) -> Option<&Arc<dyn Program>> {
        self.programs.get(id)
    }

    /// Ids of every installed program, sorted.
    pub fn program_ids(&self) -> impl Iterator<Item = &ProgramId> {
        self.programs.keys()
    }

    /// Checks and executes a signed transaction against `state`. Returns its diff and receipt;
    /// on any error nothing is changed (the caller commits the diff).
    ///
    /// # Errors
    /// The first rule the transaction breaks, in LEZ's order.
    pub fn apply(&self, state: &impl StateView, tx: &Transaction, ctx: &BlockContext) -> Result<Applied, TxError> {
        tx.check_structure()?;
        tx.verify_signatures()?;
        self.apply_verified(state, tx, ctx)
    }

    /// As [`Runtime::apply`] but trusts the signatures: for callers that verified them earlier
    /// (for example in parallel, on admission to the mempool). Every other check still runs.
    ///
    /// # Errors
    /// As [`Runtime::apply`], except [`TxError::InvalidSignature`].
    pub fn apply_verified(
        &self,
        state: &impl StateView,
        tx: &Transaction,
        _ctx: &BlockContext,
    ) -> Result<Applied, TxError> {
        tx.check_structure()?;
        let signers = tx.signer_ids();
        for (signer, given) in signers.iter().zip(&tx.message.nonces) {
            let expected = state.account(signer).nonce;
            if *given != expected {
                return Err(TxError::NonceMismatch { signer: *signer, expected, given: *given });
            }
        }
        if tx.message.program_id == self.builtins.clock {
            return Err(TxError::ClockProgramNotCallable);
        }
        let authorized: BTreeSet<AccountId> = signers.iter().copied().collect();
        let pre_states = tx
            .message
            .account_ids
            .iter()
            .map(|id| AccountWithMetadata::new(*id, state.account(id), authorized.contains(id)))
            .collect();
        let top = PendingCall {
            program_id: tx.message.program_id,
            pre_states,
            instruction_data: tx.message.instruction_data.clone(),
            caller: None,
            pda_seeds: vec![],
        };
        let mut execution = self.execute(state, top, &authorized, false)?;

        // The sequencer drops any user transaction that changes a clock account, however it did.
        for id in CLOCK_ACCOUNT_IDS {
            if let Some(post) = execution.touched.get(&id)
                && *post != state.account(&id)
            {
                return Err(TxError::ClockAccountModified { account_id: id });
            }
        }

        // Every signer's nonce goes up by one, whether or not the signer was listed.
        for signer in &signers {
            let mut account = execution.touched.get(signer).cloned().unwrap_or_else(|| state.account(signer));
            account.nonce = account.nonce.checked_add(1).ok_or(TxError::NonceOverflow { signer: *signer })?;
            execution.touched.insert(*signer, account);
        }

        Ok(Applied {
            diff: changed(state, execution.touched),
            receipt: Receipt { tx_hash: tx.hash(), events: execution.events },
        })
    }

    /// Runs the clock program as LEZ's sequencer does in the last transaction of a block:
    /// [`Runtime::apply_clock_invocation`] of LEZ's `clock_invocation(ctx.timestamp_ms)` under
    /// this runtime's clock id.
    ///
    /// `ctx.block_id` is not used for the count: as on LEZ, the clock counts its own invocations
    /// from 0 at genesis, whatever the block numbering.
    ///
    /// # Errors
    /// As [`Runtime::apply_clock_invocation`].
    pub fn clock_update(&self, state: &impl StateView, ctx: &BlockContext) -> Result<StateDiff, TxError> {
        let LeeTransaction::Public(tx) = clock_invocation(self.builtins.clock, ctx.timestamp_ms);
        self.apply_clock_invocation(state, &tx)
    }

    /// Applies a clock invocation, the unsigned transaction LEZ's sequencer appends last to every
    /// block (`clock_invocation(timestamp)`): the clock program on the three clock accounts, no
    /// nonces, no signatures, the block's Unix-millisecond timestamp as its instruction. With
    /// `current = CLOCK_01.block_id + 1` it writes `{current, timestamp}` into CLOCK_01, and into
    /// CLOCK_10 / CLOCK_50 when `current` is a multiple of 10 / 50. Only the block producer runs
    /// it; user transactions calling the clock program are refused ([`Runtime::apply`]).
    ///
    /// # Errors
    /// [`TxError::MalformedTransaction`] when `tx` is not a clock invocation under this runtime's
    /// clock id; [`TxError::ClockTimestampRegression`] when its timestamp is earlier than
    /// CLOCK_01's; [`TxError::Program`] when the clock accounts are missing or malformed.
    pub fn apply_clock_invocation(&self, state: &impl StateView, tx: &Transaction) -> Result<StateDiff, TxError> {
        let message = &tx.message;
        if message.program_id != self.builtins.clock
            || message.account_ids != CLOCK_ACCOUNT_IDS
            || !message.nonces.is_empty()
            || !tx.witness_set.signatures_and_public_keys.is_empty()
        {
            return Err(TxError::MalformedTransaction {
                detail: format!(
                    "not a clock invocation: expected the clock program {} on the three clock accounts, unsigned",
                    self.builtins.clock
                ),
            });
        }
        let timestamp_ms = from_words::<u64>(&message.instruction_data).map_err(|e| TxError::MalformedTransaction {
            detail: format!("clock invocation instruction is not a u64 timestamp: {e}"),
        })?;
        if let Ok(previous) = ClockAccountData::try_from_slice(&state.account(&CLOCK_01_ACCOUNT_ID).data)
            && timestamp_ms < previous.timestamp_ms
        {
            return Err(TxError::ClockTimestampRegression { previous: previous.timestamp_ms, given: timestamp_ms });
        }
        let call = PendingCall {
            program_id: self.builtins.clock,
            pre_states: CLOCK_ACCOUNT_IDS
                .iter()
                .map(|id| AccountWithMetadata::new(*id, state.account(id), false))
                .collect(),
            instruction_data: message.instruction_data.clone(),
            caller: None,
            pda_seeds: vec![],
        };
        let execution = self.execute(state, call, &BTreeSet::new(), true)?;
        Ok(changed(state, execution.touched))
    }

    /// The worklist: runs the call and, depth first and in order, every chained call, checking
    /// each program's output against LEZ's rules and applying claims.
    fn execute(
        &self,
        state: &impl StateView,
        top: PendingCall,
        signers: &BTreeSet<AccountId>,
        allow_clock: bool,
    ) -> Result<Execution, TxError> {
        let mut touched: BTreeMap<AccountId, Account> = BTreeMap::new();
        let mut events = Vec::new();
        let mut queue = VecDeque::from([top]);
        let mut chained_calls: usize = 0;

        while let Some(call) = queue.pop_front() {
            if call.caller.is_some() {
                chained_calls = chained_calls.saturating_add(1);
                if chained_calls > MAX_CHAINED_CALLS {
                    return Err(TxError::ChainedCallDepthExceeded { max: MAX_CHAINED_CALLS });
                }
            }
            let program_id = call.program_id;
            if program_id == self.builtins.clock && !allow_clock {
                return Err(TxError::ClockProgramNotCallable);
            }
            let program = self.programs.get(&program_id).ok_or(TxError::UnknownProgram { program_id })?;

            // Pre-state ids are unique (validate_execution rule 1).
            let mut seen = BTreeSet::new();
            for pre in &call.pre_states {
                if !seen.insert(pre.account_id) {
                    return Err(TxError::DuplicateAccountIds { account_id: pre.account_id });
                }
            }
            // A chained call's declared pre-states must be the current accounts, and its
            // authorisation flags exactly signers ∪ the caller's PDAs (forged and dropped flags
            // are both refused). The top-level pre-states are built here, so hold by construction.
            if let Some(caller) = call.caller {
                let caller_pdas: BTreeSet<AccountId> =
                    call.pda_seeds.iter().map(|seed| AccountId::for_public_pda(&caller, seed)).collect();
                for pre in &call.pre_states {
                    let current =
                        touched.get(&pre.account_id).cloned().unwrap_or_else(|| state.account(&pre.account_id));
                    if pre.account != current {
                        return Err(TxError::InconsistentPreState { program_id, account_id: pre.account_id });
                    }
                    let expected = signers.contains(&pre.account_id) || caller_pdas.contains(&pre.account_id);
                    if pre.is_authorized != expected {
                        return Err(TxError::InconsistentAuthorization {
                            program_id,
                            account_id: pre.account_id,
                            expected,
                            given: pre.is_authorized,
                        });
                    }
                }
            }

            let output = program
                .execute(ProgramInput {
                    self_program_id: program_id,
                    caller_program_id: call.caller,
                    pre_states: call.pre_states.clone(),
                    instruction_data: &call.instruction_data,
                })
                .map_err(|e| TxError::program(program_id, e))?;

            validate_execution(&program_id, &call.pre_states, &output.post_states)?;
            for (pre, post) in call.pre_states.iter().zip(output.post_states) {
                let account = apply_claim(&program_id, pre, post)?;
                touched.insert(pre.account_id, account);
            }
            events
                .extend(output.events.iter().map(|data| ReceiptEvent::decode_with(&self.builtins, &program_id, data)));
            for chained in output.chained_calls.into_iter().rev() {
                queue.push_front(PendingCall {
                    program_id: chained.program_id,
                    pre_states: chained.pre_states,
                    instruction_data: chained.instruction_data,
                    caller: Some(program_id),
                    pda_seeds: chained.pda_seeds,
                });
            }
        }

        // Every account that was default before the transaction and was modified must have been
        // claimed by now.
        for (id, post) in &touched {
            let before = state.account(id);
            if before.is_default() && *post != before && post.program_owner == ProgramId::DEFAULT {
                return Err(TxError::DefaultAccountModifiedWithoutClaim { account_id: *id });
            }
        }
        Ok(Execution { touched, events })
    }
}

/// LEZ's `validate_execution` on one program's output (rules 2-8; rule 1 is checked before the
/// program runs).
fn validate_execution(
    program_id: &ProgramId,
    pre_states: &[AccountWithMetadata],
    post_states: &[AccountPostState],
) -> Result<(), TxError> {
    let program_id = *program_id;
    if pre_states.len() != post_states.len() {
        return Err(TxError::PostStateCountMismatch { program_id, expected: pre_states.len(), got: post_states.len() });
    }
    let mut sum_pre = WideSum::default();
    let mut sum_post = WideSum::default();
    for (pre, post) in pre_states.iter().zip(post_states) {
        let account_id = pre.account_id;
        let (before, after) = (&pre.account, &post.account);
        if after.nonce != before.nonce {
            return Err(TxError::NonceChanged { program_id, account_id });
        }
        if after.program_owner != before.program_owner {
            return Err(TxError::OwnerChanged { program_id, account_id });
        }
        if after.balance < before.balance && before.program_owner != program_id {
            return Err(TxError::UnauthorizedBalanceDecrease { program_id, account_id });
        }
        if after.data != before.data && before.program_owner != program_id && !before.is_default() {
            return Err(TxError::UnauthorizedDataChange { program_id, account_id });
        }
        if after.program_owner == ProgramId::DEFAULT && !before.is_default() {
            return Err(TxError::NonDefaultAccountWithDefaultOwner { program_id, account_id });
        }
        if after.data.len() > DATA_MAX_LENGTH {
            return Err(TxError::DataTooLarge { program_id, account_id, size: after.data.len(), max: DATA_MAX_LENGTH });
        }
        sum_pre.add(before.balance);
        sum_post.add(after.balance);
    }
    if sum_pre != sum_post {
        return Err(TxError::BalanceNotConserved { program_id });
    }
    Ok(())
}

/// Checks a post-state's claim and applies it (sets the owner to the executing program).
fn apply_claim(program_id: &ProgramId, pre: &AccountWithMetadata, post: AccountPostState) -> Result<Account, TxError> {
    let mut account = post.account;
    let Some(claim) = post.claim else { return Ok(account) };
    let (program_id, account_id) = (*program_id, pre.account_id);
    if account.program_owner != ProgramId::DEFAULT {
        return Err(TxError::ClaimOfOwnedAccount { program_id, account_id });
    }
    match claim {
        Claim::Authorized if !pre.is_authorized => return Err(TxError::UnauthorizedClaim { program_id, account_id }),
        Claim::Pda(seed) if AccountId::for_public_pda(&program_id, &seed) != account_id => {
            return Err(TxError::InvalidPdaClaim { program_id, account_id });
        }
        Claim::Authorized | Claim::Pda(_) => {}
    }
    account.program_owner = program_id;
    Ok(account)
}

/// A 256-bit sum of `u128`s, so conservation is checked without overflow (LEZ's
/// `WrappedBalanceSum`).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
struct WideSum {
    high: u128,
    low: u128,
}

impl WideSum {
    fn add(&mut self, value: u128) {
        let (low, carry) = self.low.overflowing_add(value);
        self.low = low;
        if carry {
            // At most one carry per account, and accounts per call are bounded far below 2^128.
            self.high = self.high.saturating_add(1);
        }
    }
}

/// The touched accounts whose value differs from `state`.
fn changed(state: &impl StateView, touched: BTreeMap<AccountId, Account>) -> StateDiff {
    StateDiff { accounts: touched.into_iter().filter(|(id, account)| *account != state.account(id)).collect() }
}
