//! The instruction enum of the reference payment-streams program
//! (`lez_payment_streams_core::Instruction`, logos-co/lez-payment-streams @`ad08ab63`,
//! `program/core/src/instruction.rs`), restated with its RISC Zero serde word encoding.
//!
//! The wire discriminant is the enum's declaration order (0–10), not the IDL's order. Fields are
//! encoded in declaration order: `u64` as two words, `u128` as four, `[u8; 32]` as 32 words (one
//! per byte), `[u32; 8]` as eight, `VaultPrivacyTier` as one word (`serde(into = "u8")`), and
//! `AccountId` as its base58 string (12 words). A transaction carrying these words is what the
//! reference's own client builds for the same instruction.

use crate::{
    AccountId, ProgramId,
    risc0_words::{FromWords, ToWords, WordReader, WordWriter, WordsError},
};

/// The reference's `VaultPrivacyTier`, one word on the wire (any other value is refused).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RefPrivacyTier {
    Public = 0,
    PseudonymousFunding = 1,
}

impl ToWords for RefPrivacyTier {
    fn write_words(&self, w: &mut WordWriter) {
        (*self as u8).write_words(w);
    }
}

impl FromWords for RefPrivacyTier {
    const MIN_WORDS: usize = 1;

    fn read_words(r: &mut WordReader<'_>) -> Result<Self, WordsError> {
        let at = r.position();
        match r.word("privacy tier")? {
            0 => Ok(Self::Public),
            1 => Ok(Self::PseudonymousFunding),
            value => Err(WordsError::OutOfRange { what: "privacy tier (0 Public, 1 PseudonymousFunding)", at, value }),
        }
    }
}

/// `lez_payment_streams_core::Instruction`, variants and fields in the reference's order.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum RefInstruction {
    /// 0
    InitializeVault { vault_id: u64, privacy_tier: RefPrivacyTier, token_id: [u8; 32] },
    /// 1
    Deposit { vault_id: u64, amount: u128, authenticated_transfer_program_id: ProgramId },
    /// 2
    Withdraw { vault_id: u64, amount: u128 },
    /// 3
    CreateStream { vault_id: u64, stream_id: u64, provider: AccountId, rate: u64, allocation: u128 },
    /// 4
    PauseStream { vault_id: u64, stream_id: u64 },
    /// 5
    ResumeStream { vault_id: u64, stream_id: u64 },
    /// 6
    TopUpStream { vault_id: u64, stream_id: u64, vault_total_allocated_increase: u128 },
    /// 7
    CloseStreamByOwner { vault_id: u64, stream_id: u64 },
    /// 8
    Claim { vault_id: u64, stream_id: u64 },
    /// 9
    CloseStreamByProvider { vault_id: u64, stream_id: u64 },
    /// 10
    WithdrawToOwner { vault_id: u64, amount: u128 },
}

impl RefInstruction {
    /// Number of variants.
    pub const VARIANTS: u32 = 11;

    /// The wire discriminant (word 0).
    #[must_use]
    pub const fn discriminant(&self) -> u32 {
        match self {
            Self::InitializeVault { .. } => 0,
            Self::Deposit { .. } => 1,
            Self::Withdraw { .. } => 2,
            Self::CreateStream { .. } => 3,
            Self::PauseStream { .. } => 4,
            Self::ResumeStream { .. } => 5,
            Self::TopUpStream { .. } => 6,
            Self::CloseStreamByOwner { .. } => 7,
            Self::Claim { .. } => 8,
            Self::CloseStreamByProvider { .. } => 9,
            Self::WithdrawToOwner { .. } => 10,
        }
    }
}

impl ToWords for RefInstruction {
    fn write_words(&self, w: &mut WordWriter) {
        w.variant(self.discriminant());
        match self {
            Self::InitializeVault { vault_id, privacy_tier, token_id } => {
                crate::write_words!(w, vault_id, privacy_tier, token_id);
            }
            Self::Deposit { vault_id, amount, authenticated_transfer_program_id } => {
                crate::write_words!(w, vault_id, amount, authenticated_transfer_program_id);
            }
            Self::Withdraw { vault_id, amount } | Self::WithdrawToOwner { vault_id, amount } => {
                crate::write_words!(w, vault_id, amount);
            }
            Self::CreateStream { vault_id, stream_id, provider, rate, allocation } => {
                crate::write_words!(w, vault_id, stream_id, provider, rate, allocation);
            }
            Self::PauseStream { vault_id, stream_id }
            | Self::ResumeStream { vault_id, stream_id }
            | Self::CloseStreamByOwner { vault_id, stream_id }
            | Self::Claim { vault_id, stream_id }
            | Self::CloseStreamByProvider { vault_id, stream_id } => crate::write_words!(w, vault_id, stream_id),
            Self::TopUpStream { vault_id, stream_id, vault_total_allocated_increase } => {
                crate::write_words!(w, vault_id, stream_id, vault_total_allocated_increase);
            }
        }
    }
}

impl FromWords for RefInstruction {
    const MIN_WORDS: usize = 5;

    fn read_words(r: &mut WordReader<'_>) -> Result<Self, WordsError> {
        let variant = r.variant("lez_payment_streams_core::Instruction", Self::VARIANTS)?;
        Ok(match variant {
            0 => Self::InitializeVault {
                vault_id: u64::read_words(r)?,
                privacy_tier: RefPrivacyTier::read_words(r)?,
                token_id: <[u8; 32]>::read_words(r)?,
            },
            1 => Self::Deposit {
                vault_id: u64::read_words(r)?,
                amount: u128::read_words(r)?,
                authenticated_transfer_program_id: ProgramId::read_words(r)?,
            },
            2 => Self::Withdraw { vault_id: u64::read_words(r)?, amount: u128::read_words(r)? },
            3 => Self::CreateStream {
                vault_id: u64::read_words(r)?,
                stream_id: u64::read_words(r)?,
                provider: AccountId::read_words(r)?,
                rate: u64::read_words(r)?,
                allocation: u128::read_words(r)?,
            },
            4 => Self::PauseStream { vault_id: u64::read_words(r)?, stream_id: u64::read_words(r)? },
            5 => Self::ResumeStream { vault_id: u64::read_words(r)?, stream_id: u64::read_words(r)? },
            6 => Self::TopUpStream {
                vault_id: u64::read_words(r)?,
                stream_id: u64::read_words(r)?,
                vault_total_allocated_increase: u128::read_words(r)?,
            },
            7 => Self::CloseStreamByOwner { vault_id: u64::read_words(r)?, stream_id: u64::read_words(r)? },
            8 => Self::Claim { vault_id: u64::read_words(r)?, stream_id: u64::read_words(r)? },
            9 => Self::CloseStreamByProvider { vault_id: u64::read_words(r)?, stream_id: u64::read_words(r)? },
            _ => Self::WithdrawToOwner { vault_id: u64::read_words(r)?, amount: u128::read_words(r)? },
        })
    }
}
