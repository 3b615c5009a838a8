//! What a program receives and returns, in LEZ's shape.
//!
//! A program is a pure function of its input: it gets one pre-state per account the caller
//! listed, returns exactly one post-state per pre-state (same order), may claim default accounts,
//! and may ask the runtime to run further programs (chained calls) after it. It fails by
//! returning a [`ProgramError`] (an LEZ guest panics; the numeric code survives in the message).

use borsh::{BorshDeserialize, BorshSerialize};

use crate::{Account, AccountWithMetadata, PdaSeed, ProgramId};

/// How a program takes ownership of a default account it modified.
#[derive(Clone, Copy, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub enum Claim {
    /// The account was authorised in this call (signature, or a caller's PDA seeds).
    Authorized,
    /// The account is this program's PDA for the seed; no signature needed.
    Pda(PdaSeed),
}

/// One output account.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct AccountPostState {
    pub account: Account,
    pub claim: Option<Claim>,
}

impl AccountPostState {
    #[must_use]
    pub const fn new(account: Account) -> Self {
        Self { account, claim: None }
    }

    #[must_use]
    pub const fn new_claimed(account: Account, claim: Claim) -> Self {
        Self { account, claim: Some(claim) }
    }

    /// Claims only when the account is still unowned (LEZ `new_claimed_if_default`).
    #[must_use]
    pub fn new_claimed_if_default(account: Account, claim: Claim) -> Self {
        let claim = (account.program_owner == ProgramId::DEFAULT).then_some(claim);
        Self { account, claim }
    }
}

/// A call the runtime runs after the current program, depth first and in order.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct ChainedCall {
    pub program_id: ProgramId,
    /// The callee's pre-states as the caller predicts them (checked against the running diff).
    pub pre_states: Vec<AccountWithMetadata>,
    /// The callee's instruction as RISC Zero serde words (LEZ's `InstructionData`).
    pub instruction_data: Vec<u32>,
    /// PDAs of the caller that count as authorised in the callee.
    pub pda_seeds: Vec<PdaSeed>,
}

/// Everything a program execution produced.
#[derive(Clone, PartialEq, Eq, Debug, Default, BorshSerialize, BorshDeserialize)]
pub struct ProgramOutput {
    pub post_states: Vec<AccountPostState>,
    pub chained_calls: Vec<ChainedCall>,
    /// Borsh-encoded events of the executing program, in emission order. The runtime decodes the
    /// ones it knows into typed receipt events.
    pub events: Vec<Vec<u8>>,
}

/// A program's input.
#[derive(Clone, Debug)]
pub struct ProgramInput<'a> {
    pub self_program_id: ProgramId,
    pub caller_program_id: Option<ProgramId>,
    pub pre_states: Vec<AccountWithMetadata>,
    /// The instruction as RISC Zero serde words (LEZ's `InstructionData`).
    pub instruction_data: &'a [u32],
}

/// A program failure: a numeric code (stable, documented per program) and a human message.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize, thiserror::Error)]
#[error("program error {code} ({name}): {message}")]
pub struct ProgramError {
    pub code: u32,
    pub name: String,
    pub message: String,
}

impl ProgramError {
    #[must_use]
    pub fn new(code: u32, name: impl Into<String>, message: impl Into<String>) -> Self {
        Self { code, name: name.into(), message: message.into() }
    }
}

/// A program the runtime can execute.
pub trait Program: Send + Sync {
    /// The id accounts name as `program_owner`.
    fn id(&self) -> ProgramId;

    /// A short lowercase name for logs and receipts.
    fn name(&self) -> &'static str;

    /// Runs one instruction.
    ///
    /// # Errors
    /// Any [`ProgramError`]; the runtime then discards every effect of the transaction.
    fn execute(&self, input: ProgramInput<'_>) -> Result<ProgramOutput, ProgramError>;
}
