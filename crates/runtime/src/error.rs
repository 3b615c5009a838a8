//! Why the runtime refused a transaction.
//!
//! Runtime refusals have codes 1001-1999, so they can never collide with program codes
//! (builtins use 2xxx-4xxx, the payment-streams program 6xxx). A program's own failure is
//! carried unchanged in [`TxError::Program`], whose [`TxError::code`] is the program's code.

use paystreams_lez_core::{AccountId, ProgramError, ProgramId};

use crate::builtins::{clock::ClockError, token::TokenError, transfer::TransferError};

/// A refused transaction. Nothing it did is applied.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum TxError {
    // --- Encoding and limits (10xx) ---
    #[error("transaction is {size} bytes, more than the {max}-byte limit; split it into smaller transactions")]
    TransactionTooLarge { size: usize, max: usize },
    #[error(
        "transaction bytes do not decode: {detail}; encode it as LEZ's transaction envelope (tag 0 Public, then the Borsh public transaction)"
    )]
    MalformedTransaction { detail: String },
    #[error("transaction names {count} accounts, more than the limit of {max}")]
    TooManyAccounts { count: usize, max: usize },
    #[error("transaction carries {count} signatures, more than the limit of {max}")]
    TooManySignatures { count: usize, max: usize },
    #[error("instruction data is {words} words, more than the {max}-word limit")]
    InstructionTooLarge { words: usize, max: usize },
    #[error("unsupported transaction: {detail}")]
    UnsupportedTransaction { detail: String },

    // --- Message and signature checks (101x) ---
    #[error("account {account_id} is listed twice; list every account once")]
    DuplicateAccountIds { account_id: AccountId },
    #[error("{nonces} nonces for {signatures} signatures; give exactly one nonce per signer, in signer order")]
    NonceCountMismatch { nonces: usize, signatures: usize },
    #[error("signature {index} (signer {signer}) does not verify; re-sign the message hash with that key")]
    InvalidSignature { index: usize, signer: AccountId },
    #[error("signer {signer} used nonce {given} but its current nonce is {expected}; fetch the nonce and re-sign")]
    NonceMismatch { signer: AccountId, expected: u128, given: u128 },
    #[error("signer {signer} signed twice; sign once per key")]
    DuplicateSigner { signer: AccountId },
    #[error("signer {signer}'s nonce is exhausted")]
    NonceOverflow { signer: AccountId },

    // --- Program dispatch (102x) ---
    #[error("no program {program_id} is installed; check the program id")]
    UnknownProgram { program_id: ProgramId },
    #[error("the clock program runs only in the block's clock update; user transactions cannot call it")]
    ClockProgramNotCallable,
    #[error("more than {max} chained calls; restructure the call into several transactions")]
    ChainedCallDepthExceeded { max: usize },

    // --- Program output rules, LEZ `validate_execution` (103x) ---
    #[error("program {program_id} returned {got} post-states for {expected} pre-states")]
    PostStateCountMismatch { program_id: ProgramId, expected: usize, got: usize },
    #[error("program {program_id} changed the nonce of {account_id}; only signatures bump nonces")]
    NonceChanged { program_id: ProgramId, account_id: AccountId },
    #[error(
        "program {program_id} changed the owner of {account_id}; ownership moves only by claiming a default account"
    )]
    OwnerChanged { program_id: ProgramId, account_id: AccountId },
    #[error("program {program_id} decreased the balance of {account_id}, which it does not own")]
    UnauthorizedBalanceDecrease { program_id: ProgramId, account_id: AccountId },
    #[error("program {program_id} changed the data of {account_id}, which it does not own and which is not default")]
    UnauthorizedDataChange { program_id: ProgramId, account_id: AccountId },
    #[error(
        "program {program_id} left {account_id} with the default owner although it was not a default account; \
         initialise the account (authenticated-transfer init) before using it"
    )]
    NonDefaultAccountWithDefaultOwner { program_id: ProgramId, account_id: AccountId },
    #[error("program {program_id} wrote {size} bytes of data to {account_id}, more than {max}")]
    DataTooLarge { program_id: ProgramId, account_id: AccountId, size: usize, max: usize },
    #[error("program {program_id} did not conserve the total native balance of its accounts")]
    BalanceNotConserved { program_id: ProgramId },

    // --- Chained calls and claims (104x) ---
    #[error("a call to {program_id} declared a pre-state of {account_id} that differs from the current state")]
    InconsistentPreState { program_id: ProgramId, account_id: AccountId },
    #[error(
        "a call to {program_id} marked {account_id} as authorised={given}, but it is authorised={expected} \
         (signers and the caller's PDA seeds decide)"
    )]
    InconsistentAuthorization { program_id: ProgramId, account_id: AccountId, expected: bool, given: bool },
    #[error("program {program_id} claimed {account_id}, which already has an owner")]
    ClaimOfOwnedAccount { program_id: ProgramId, account_id: AccountId },
    #[error("program {program_id} claimed {account_id} as authorised, but it is not; have that account's key sign")]
    UnauthorizedClaim { program_id: ProgramId, account_id: AccountId },
    #[error("program {program_id} claimed {account_id} as its PDA, but the seed derives a different address")]
    InvalidPdaClaim { program_id: ProgramId, account_id: AccountId },
    #[error(
        "default account {account_id} was modified but never claimed; have it sign (so it can be claimed) \
         or initialise it first"
    )]
    DefaultAccountModifiedWithoutClaim { account_id: AccountId },

    // --- Clock (105x) ---
    #[error("user transactions may not modify clock account {account_id}")]
    ClockAccountModified { account_id: AccountId },
    #[error("block timestamp {given} ms is earlier than the clock's {previous} ms; clocks never go backwards")]
    ClockTimestampRegression { previous: u64, given: u64 },

    // --- Program failure (the program's own code) ---
    #[error("program {program_id} failed with {code} {name}: {message}")]
    Program { program_id: ProgramId, code: u32, name: String, message: String },
}

impl TxError {
    /// Wraps a program's own failure.
    #[must_use]
    pub fn program(program_id: ProgramId, error: ProgramError) -> Self {
        Self::Program { program_id, code: error.code, name: error.name, message: error.message }
    }

    /// The stable numeric code: 1xxx for runtime refusals, the program's code for
    /// [`TxError::Program`].
    #[must_use]
    pub const fn code(&self) -> u32 {
        match self {
            Self::TransactionTooLarge { .. } => 1001,
            Self::MalformedTransaction { .. } => 1002,
            Self::TooManyAccounts { .. } => 1003,
            Self::TooManySignatures { .. } => 1004,
            Self::InstructionTooLarge { .. } => 1005,
            Self::UnsupportedTransaction { .. } => 1006,
            Self::DuplicateAccountIds { .. } => 1010,
            Self::NonceCountMismatch { .. } => 1011,
            Self::InvalidSignature { .. } => 1012,
            Self::NonceMismatch { .. } => 1013,
            Self::DuplicateSigner { .. } => 1014,
            Self::NonceOverflow { .. } => 1015,
            Self::UnknownProgram { .. } => 1020,
            Self::ClockProgramNotCallable => 1021,
            Self::ChainedCallDepthExceeded { .. } => 1022,
            Self::PostStateCountMismatch { .. } => 1030,
            Self::NonceChanged { .. } => 1031,
            Self::OwnerChanged { .. } => 1032,
            Self::UnauthorizedBalanceDecrease { .. } => 1033,
            Self::UnauthorizedDataChange { .. } => 1034,
            Self::NonDefaultAccountWithDefaultOwner { .. } => 1035,
            Self::DataTooLarge { .. } => 1036,
            Self::BalanceNotConserved { .. } => 1037,
            Self::InconsistentPreState { .. } => 1040,
            Self::InconsistentAuthorization { .. } => 1041,
            Self::ClaimOfOwnedAccount { .. } => 1042,
            Self::UnauthorizedClaim { .. } => 1043,
            Self::InvalidPdaClaim { .. } => 1044,
            Self::DefaultAccountModifiedWithoutClaim { .. } => 1045,
            Self::ClockAccountModified { .. } => 1050,
            Self::ClockTimestampRegression { .. } => 1051,
            Self::Program { code, .. } => *code,
        }
    }

    /// The stable variant name. For [`TxError::Program`] it is the program's error name when the
    /// program is a builtin or the payment-streams program, else `"ProgramError"` (the program's
    /// own name is then in the `name` field).
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::TransactionTooLarge { .. } => "TransactionTooLarge",
            Self::MalformedTransaction { .. } => "MalformedTransaction",
            Self::TooManyAccounts { .. } => "TooManyAccounts",
            Self::TooManySignatures { .. } => "TooManySignatures",
            Self::InstructionTooLarge { .. } => "InstructionTooLarge",
            Self::UnsupportedTransaction { .. } => "UnsupportedTransaction",
            Self::DuplicateAccountIds { .. } => "DuplicateAccountIds",
            Self::NonceCountMismatch { .. } => "NonceCountMismatch",
            Self::InvalidSignature { .. } => "InvalidSignature",
            Self::NonceMismatch { .. } => "NonceMismatch",
            Self::DuplicateSigner { .. } => "DuplicateSigner",
            Self::NonceOverflow { .. } => "NonceOverflow",
            Self::UnknownProgram { .. } => "UnknownProgram",
            Self::ClockProgramNotCallable => "ClockProgramNotCallable",
            Self::ChainedCallDepthExceeded { .. } => "ChainedCallDepthExceeded",
            Self::PostStateCountMismatch { .. } => "PostStateCountMismatch",
            Self::NonceChanged { .. } => "NonceChanged",
            Self::OwnerChanged { .. } => "OwnerChanged",
            Self::UnauthorizedBalanceDecrease { .. } => "UnauthorizedBalanceDecrease",
            Self::UnauthorizedDataChange { .. } => "UnauthorizedDataChange",
            Self::NonDefaultAccountWithDefaultOwner { .. } => "NonDefaultAccountWithDefaultOwner",
            Self::DataTooLarge { .. } => "DataTooLarge",
            Self::BalanceNotConserved { .. } => "BalanceNotConserved",
            Self::InconsistentPreState { .. } => "InconsistentPreState",
            Self::InconsistentAuthorization { .. } => "InconsistentAuthorization",
            Self::ClaimOfOwnedAccount { .. } => "ClaimOfOwnedAccount",
            Self::UnauthorizedClaim { .. } => "UnauthorizedClaim",
            Self::InvalidPdaClaim { .. } => "InvalidPdaClaim",
            Self::DefaultAccountModifiedWithoutClaim { .. } => "DefaultAccountModifiedWithoutClaim",
            Self::ClockAccountModified { .. } => "ClockAccountModified",
            Self::ClockTimestampRegression { .. } => "ClockTimestampRegression",
            Self::Program { program_id, code, .. } => known_program_error_name(program_id, *code),
        }
    }
}

/// The static name of a known program's error code.
fn known_program_error_name(program_id: &ProgramId, code: u32) -> &'static str {
    let name = if *program_id == paystreams_program::payment_streams_program_id() {
        paystreams_program::StreamError::from_code(code).map(paystreams_program::StreamError::name)
    } else if *program_id == paystreams_lez_core::transfer::authenticated_transfer_program_id() {
        TransferError::from_code(code).map(TransferError::name)
    } else if *program_id == paystreams_lez_core::token::token_program_id() {
        TokenError::from_code(code).map(TokenError::name)
    } else if *program_id == paystreams_lez_core::clock::clock_program_id() {
        ClockError::from_code(code).map(ClockError::name)
    } else {
        None
    };
    name.unwrap_or("ProgramError")
}
