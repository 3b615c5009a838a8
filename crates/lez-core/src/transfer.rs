//! The authenticated-transfer program's interface (native token), LEZ's instruction enum.
//!
//! `Instruction` (LEZ v0.2.0–v0.2.4, `authenticated_transfer_core`) as RISC Zero serde words:
//! `Transfer { amount: u128 }` = 0 (`[0, a0, a1, a2, a3]`), with accounts `[sender (authorised),
//! recipient]`, moving native balance and claiming a default recipient (which then must be
//! authorised too); `Initialize` = 1 (`[1]`), with one authorised default account, which it
//! claims.

use crate::{
    ProgramId,
    risc0_words::{FromWords, ToWords, WordReader, WordWriter, WordsError, to_words},
};

/// The authenticated-transfer program's id: LEZ's, of the default release
/// ([`crate::lez_release::LezRelease::DEFAULT`], the live testnet's). A node started for another
/// release runs it under that release's id ([`crate::lez_release::BuiltinIds`]).
#[must_use]
pub fn authenticated_transfer_program_id() -> ProgramId {
    crate::lez_release::LezRelease::DEFAULT.authenticated_transfer_id()
}

/// LEZ's `authenticated_transfer_core::Instruction`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TransferInstruction {
    /// 0: `[sender, recipient]`.
    Transfer { amount: u128 },
    /// 1: `[account_to_initialize]`.
    Initialize,
}

impl ToWords for TransferInstruction {
    fn write_words(&self, w: &mut WordWriter) {
        match self {
            Self::Transfer { amount } => {
                w.variant(0);
                amount.write_words(w);
            }
            Self::Initialize => w.variant(1),
        }
    }
}

impl FromWords for TransferInstruction {
    const MIN_WORDS: usize = 1;

    fn read_words(r: &mut WordReader<'_>) -> Result<Self, WordsError> {
        match r.variant("authenticated_transfer_core::Instruction", 2)? {
            0 => Ok(Self::Transfer { amount: u128::read_words(r)? }),
            _ => Ok(Self::Initialize),
        }
    }
}

/// The words of `Transfer { amount }`.
#[must_use]
pub fn transfer_instruction(amount: u128) -> Vec<u32> {
    to_words(&TransferInstruction::Transfer { amount })
}

/// The words of `Initialize`.
#[must_use]
pub fn initialize_instruction() -> Vec<u32> {
    to_words(&TransferInstruction::Initialize)
}
