//! Instructions as RISC Zero serde words, LEZ's `instruction_data`.
//!
//! Discriminants 0-10 are exactly the reference program's enum (`RefInstruction`): an
//! instruction that uses no extension is encoded as the reference variant, so its words (and the
//! transaction around them) equal what the reference's client builds. This implementation's
//! extensions take discriminants of their own, emitted only when the extension is in use:
//!
//! | disc | variant | fields, in order |
//! |---|---|---|
//! | 11 | CreateStream with extensions | vault_id u64, stream_id u64, provider AccountId (base58 string), rate u64, allocation u128, auto_pause_after u64, activation_fee u128, auto_claim_on_provider_close bool, receipt_key Option<[u8; 32]> |
//! | 12 | Claim with a receipt | vault_id u64, stream_id u64, receipt |
//! | 13 | CloseStreamByProvider with a receipt | vault_id u64, stream_id u64, receipt |
//!
//! A receipt is its body (program_id [u32; 8], stream_config AccountId (base58 string),
//! stream_id u64, acknowledged_total u128, deliveries_digest [u8; 32]) then its signature
//! ([u8; 64]). Decoding refuses discriminant 11 with all extension settings at their defaults
//! (that instruction's one encoding is discriminant 3), unknown discriminants and trailing words.
//!
//! Required accounts per instruction (W writable, S signer). Token vaults (non-native
//! `token_id`) add the listed extra account.
//!
//! | instruction | accounts | token vaults add |
//! |---|---|---|
//! | InitializeVault | vault_config, vault_holding, owner S | token definition |
//! | Deposit | vault_config, vault_holding, owner S | owner's token holding S |
//! | Withdraw | vault_config, vault_holding, owner S, to | (`to` is a token holding) |
//! | CreateStream | vault_config, vault_holding, stream_config, owner S, clock | |
//! | Pause/Resume/TopUp/CloseStreamByOwner | vault_config, vault_holding, stream_config, owner S, clock | |
//! | Claim | vault_config, vault_holding, stream_config, owner, provider S, clock | provider's token holding |
//! | CloseStreamByProvider | vault_config, vault_holding, stream_config, owner, provider S, clock | provider's token holding (auto-claim only) |
//! | WithdrawToOwner | vault_config, vault_holding, owner S | (refused: 6044) |

use borsh::{BorshDeserialize, BorshSerialize};
use paystreams_lez_core::{
    AccountId, ProgramId,
    reference_instruction::{RefInstruction, RefPrivacyTier},
    risc0_words::{FromWords, ToWords, WordReader, WordWriter, WordsError, from_words, to_words},
};

use crate::{
    receipt::{DeliveryReceipt, ReceiptBody},
    state::VaultPrivacyTier,
};

/// Discriminant of `CreateStream` with extension settings.
pub const DISC_CREATE_STREAM_EXTENDED: u32 = 11;
/// Discriminant of `Claim` with a delivery receipt.
pub const DISC_CLAIM_WITH_RECEIPT: u32 = 12;
/// Discriminant of `CloseStreamByProvider` with a delivery receipt.
pub const DISC_CLOSE_BY_PROVIDER_WITH_RECEIPT: u32 = 13;
/// Number of discriminants (reference 0-10, extensions 11-13).
pub const INSTRUCTION_VARIANTS: u32 = 14;

/// Largest instruction the program accepts, in words (a claim with a receipt, the largest, takes
/// 127).
pub const INSTRUCTION_MAX_WORDS: usize = 256;

/// Extension settings requested at stream creation. All defaults = a plain (version 1) stream.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, BorshSerialize, BorshDeserialize)]
pub struct ExtensionSettings {
    /// Auto-pause after this many seconds of ACTIVE time (0 = off).
    pub auto_pause_after: u64,
    /// Activation fee (0 = off).
    pub activation_fee: u128,
    /// Provider close also pays out all accrued funds.
    pub auto_claim_on_provider_close: bool,
    /// Delivery receipts signed by this x-only key are required to claim.
    pub receipt_key: Option<[u8; 32]>,
}

impl ToWords for ExtensionSettings {
    fn write_words(&self, w: &mut WordWriter) {
        paystreams_lez_core::write_words!(
            w,
            &self.auto_pause_after,
            &self.activation_fee,
            &self.auto_claim_on_provider_close,
            &self.receipt_key
        );
    }
}

impl FromWords for ExtensionSettings {
    const MIN_WORDS: usize = 8;

    fn read_words(r: &mut WordReader<'_>) -> Result<Self, WordsError> {
        Ok(Self {
            auto_pause_after: u64::read_words(r)?,
            activation_fee: u128::read_words(r)?,
            auto_claim_on_provider_close: bool::read_words(r)?,
            receipt_key: Option::<[u8; 32]>::read_words(r)?,
        })
    }
}

impl ToWords for DeliveryReceipt {
    fn write_words(&self, w: &mut WordWriter) {
        let body = &self.body;
        paystreams_lez_core::write_words!(
            w,
            &body.program_id,
            &body.stream_config,
            &body.stream_id,
            &body.acknowledged_total,
            &body.deliveries_digest,
            &self.signature
        );
    }
}

impl FromWords for DeliveryReceipt {
    const MIN_WORDS: usize = 8 + 12 + 2 + 4 + 32 + 64;

    fn read_words(r: &mut WordReader<'_>) -> Result<Self, WordsError> {
        Ok(Self {
            body: ReceiptBody {
                program_id: ProgramId::read_words(r)?,
                stream_config: AccountId::read_words(r)?,
                stream_id: u64::read_words(r)?,
                acknowledged_total: u128::read_words(r)?,
                deliveries_digest: <[u8; 32]>::read_words(r)?,
            },
            signature: <[u8; 64]>::read_words(r)?,
        })
    }
}

/// A payment-streams instruction.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Instruction {
    /// 0. Create an empty vault recording its token.
    InitializeVault { vault_id: u64, privacy_tier: VaultPrivacyTier, token_id: [u8; 32] },
    /// 1. Move funds from the owner into the vault holding.
    Deposit { vault_id: u64, amount: u128, authenticated_transfer_program_id: ProgramId },
    /// 2. Withdraw unallocated funds to an explicit `to` account (not the owner).
    Withdraw { vault_id: u64, amount: u128 },
    /// 3. Allocate unallocated funds to a new stream to `provider`.
    CreateStream {
        vault_id: u64,
        stream_id: u64,
        provider: AccountId,
        rate: u64,
        allocation: u128,
        extensions: ExtensionSettings,
    },
    /// 4. Stop accrual on an ACTIVE stream.
    PauseStream { vault_id: u64, stream_id: u64 },
    /// 5. Restart accrual on a non-depleted PAUSED stream.
    ResumeStream { vault_id: u64, stream_id: u64 },
    /// 6. Raise a stream's allocation from unallocated funds; leaves it ACTIVE.
    TopUpStream { vault_id: u64, stream_id: u64, vault_total_allocated_increase: u128 },
    /// 7. The owner closes a stream: unaccrued funds return to unallocated.
    CloseStreamByOwner { vault_id: u64, stream_id: u64 },
    /// 8. The provider takes all accrued funds.
    Claim { vault_id: u64, stream_id: u64, receipt: Option<DeliveryReceipt> },
    /// 9. The provider closes a stream (and, with auto-claim, is paid in the same operation).
    CloseStreamByProvider { vault_id: u64, stream_id: u64, receipt: Option<DeliveryReceipt> },
    /// 10. Withdraw unallocated funds to the owner.
    WithdrawToOwner { vault_id: u64, amount: u128 },
}

impl Instruction {
    /// The instruction words: the reference's variant when no extension is in use, else this
    /// implementation's extended variant (see the module docs).
    #[must_use]
    pub fn to_words(&self) -> Vec<u32> {
        let mut w = WordWriter::new();
        match (self.to_reference(), self) {
            (Ok(reference), _) => reference.write_words(&mut w),
            (Err(_), Self::CreateStream { vault_id, stream_id, provider, rate, allocation, extensions }) => {
                w.variant(DISC_CREATE_STREAM_EXTENDED);
                paystreams_lez_core::write_words!(&mut w, vault_id, stream_id, provider, rate, allocation, extensions);
            }
            (Err(_), Self::Claim { vault_id, stream_id, receipt: Some(receipt) }) => {
                w.variant(DISC_CLAIM_WITH_RECEIPT);
                paystreams_lez_core::write_words!(&mut w, vault_id, stream_id, receipt);
            }
            (Err(_), Self::CloseStreamByProvider { vault_id, stream_id, receipt: Some(receipt) }) => {
                w.variant(DISC_CLOSE_BY_PROVIDER_WITH_RECEIPT);
                paystreams_lez_core::write_words!(&mut w, vault_id, stream_id, receipt);
            }
            // `to_reference` refuses only the three extended forms above.
            (Err(_), _) => {}
        }
        w.into_words()
    }

    /// Decodes instruction words, strictly: one encoding per instruction, nothing after it.
    ///
    /// # Errors
    /// [`WordsError`] naming what is wrong: an unknown discriminant, truncated or trailing
    /// words, a malformed field, or an extended variant whose extension is empty.
    pub fn from_words(words: &[u32]) -> Result<Self, WordsError> {
        let mut r = WordReader::new(words);
        let discriminant =
            r.variant("payment-streams instruction (0-10 reference, 11-13 extensions)", INSTRUCTION_VARIANTS)?;
        if discriminant < RefInstruction::VARIANTS {
            return from_words::<RefInstruction>(words).map(Self::from_reference);
        }
        let instruction = match discriminant {
            DISC_CREATE_STREAM_EXTENDED => {
                let instruction = Self::CreateStream {
                    vault_id: u64::read_words(&mut r)?,
                    stream_id: u64::read_words(&mut r)?,
                    provider: AccountId::read_words(&mut r)?,
                    rate: u64::read_words(&mut r)?,
                    allocation: u128::read_words(&mut r)?,
                    extensions: ExtensionSettings::read_words(&mut r)?,
                };
                if let Self::CreateStream { extensions, .. } = &instruction
                    && *extensions == ExtensionSettings::default()
                {
                    return Err(WordsError::Invalid {
                        what: "CreateStream with extensions",
                        at: 0,
                        detail: "every extension setting is at its default; encode a plain stream as the \
                                 reference's CreateStream (discriminant 3)"
                            .into(),
                    });
                }
                instruction
            }
            DISC_CLAIM_WITH_RECEIPT => Self::Claim {
                vault_id: u64::read_words(&mut r)?,
                stream_id: u64::read_words(&mut r)?,
                receipt: Some(DeliveryReceipt::read_words(&mut r)?),
            },
            _ => Self::CloseStreamByProvider {
                vault_id: u64::read_words(&mut r)?,
                stream_id: u64::read_words(&mut r)?,
                receipt: Some(DeliveryReceipt::read_words(&mut r)?),
            },
        };
        r.finish()?;
        Ok(instruction)
    }

    /// The instruction the reference's enum value stands for (no extension in use).
    #[must_use]
    pub const fn from_reference(reference: RefInstruction) -> Self {
        match reference {
            RefInstruction::InitializeVault { vault_id, privacy_tier, token_id } => Self::InitializeVault {
                vault_id,
                privacy_tier: match privacy_tier {
                    RefPrivacyTier::Public => VaultPrivacyTier::Public,
                    RefPrivacyTier::PseudonymousFunding => VaultPrivacyTier::PseudonymousFunding,
                },
                token_id,
            },
            RefInstruction::Deposit { vault_id, amount, authenticated_transfer_program_id } => {
                Self::Deposit { vault_id, amount, authenticated_transfer_program_id }
            }
            RefInstruction::Withdraw { vault_id, amount } => Self::Withdraw { vault_id, amount },
            RefInstruction::CreateStream { vault_id, stream_id, provider, rate, allocation } => Self::CreateStream {
                vault_id,
                stream_id,
                provider,
                rate,
                allocation,
                extensions: ExtensionSettings {
                    auto_pause_after: 0,
                    activation_fee: 0,
                    auto_claim_on_provider_close: false,
                    receipt_key: None,
                },
            },
            RefInstruction::PauseStream { vault_id, stream_id } => Self::PauseStream { vault_id, stream_id },
            RefInstruction::ResumeStream { vault_id, stream_id } => Self::ResumeStream { vault_id, stream_id },
            RefInstruction::TopUpStream { vault_id, stream_id, vault_total_allocated_increase } => {
                Self::TopUpStream { vault_id, stream_id, vault_total_allocated_increase }
            }
            RefInstruction::CloseStreamByOwner { vault_id, stream_id } => {
                Self::CloseStreamByOwner { vault_id, stream_id }
            }
            RefInstruction::Claim { vault_id, stream_id } => Self::Claim { vault_id, stream_id, receipt: None },
            RefInstruction::CloseStreamByProvider { vault_id, stream_id } => {
                Self::CloseStreamByProvider { vault_id, stream_id, receipt: None }
            }
            RefInstruction::WithdrawToOwner { vault_id, amount } => Self::WithdrawToOwner { vault_id, amount },
        }
    }

    /// The variant name in snake case, for logs and receipts.
    #[must_use]
    pub const fn name(&self) -> &'static str {
        match self {
            Self::InitializeVault { .. } => "initialize_vault",
            Self::Deposit { .. } => "deposit",
            Self::Withdraw { .. } => "withdraw",
            Self::CreateStream { .. } => "create_stream",
            Self::PauseStream { .. } => "pause_stream",
            Self::ResumeStream { .. } => "resume_stream",
            Self::TopUpStream { .. } => "top_up_stream",
            Self::CloseStreamByOwner { .. } => "close_stream_by_owner",
            Self::Claim { .. } => "claim",
            Self::CloseStreamByProvider { .. } => "close_stream_by_provider",
            Self::WithdrawToOwner { .. } => "withdraw_to_owner",
        }
    }
}

/// Why an instruction has no form in the reference program's enum: it uses one of this
/// implementation's extensions, which `lez_payment_streams_core::Instruction` cannot express.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum NotInReference {
    /// `CreateStream` with any [`ExtensionSettings`] field set (auto-pause, activation fee,
    /// auto-claim on provider close, receipt key).
    StreamExtensions,
    /// `Claim` or `CloseStreamByProvider` carrying a delivery receipt.
    DeliveryReceipt,
}

impl std::fmt::Display for NotInReference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::StreamExtensions => {
                "CreateStream with extension settings has no form in the reference program's instruction enum; \
                 create a plain stream (all extension settings at their defaults) to stay byte-compatible"
            }
            Self::DeliveryReceipt => {
                "a claim or provider close with a delivery receipt has no form in the reference program's \
                 instruction enum; receipts are an extension of this implementation"
            }
        })
    }
}

impl Instruction {
    /// The same instruction as the reference program's enum, when it uses no extension: a
    /// transaction carrying [`Self::to_reference_words`] is what the reference's client builds.
    ///
    /// # Errors
    /// [`NotInReference`] naming the extension in use.
    pub fn to_reference(&self) -> Result<RefInstruction, NotInReference> {
        Ok(match *self {
            Self::InitializeVault { vault_id, privacy_tier, token_id } => RefInstruction::InitializeVault {
                vault_id,
                privacy_tier: match privacy_tier {
                    VaultPrivacyTier::Public => RefPrivacyTier::Public,
                    VaultPrivacyTier::PseudonymousFunding => RefPrivacyTier::PseudonymousFunding,
                },
                token_id,
            },
            Self::Deposit { vault_id, amount, authenticated_transfer_program_id } => {
                RefInstruction::Deposit { vault_id, amount, authenticated_transfer_program_id }
            }
            Self::Withdraw { vault_id, amount } => RefInstruction::Withdraw { vault_id, amount },
            Self::CreateStream { vault_id, stream_id, provider, rate, allocation, extensions } => {
                if extensions != ExtensionSettings::default() {
                    return Err(NotInReference::StreamExtensions);
                }
                RefInstruction::CreateStream { vault_id, stream_id, provider, rate, allocation }
            }
            Self::PauseStream { vault_id, stream_id } => RefInstruction::PauseStream { vault_id, stream_id },
            Self::ResumeStream { vault_id, stream_id } => RefInstruction::ResumeStream { vault_id, stream_id },
            Self::TopUpStream { vault_id, stream_id, vault_total_allocated_increase } => {
                RefInstruction::TopUpStream { vault_id, stream_id, vault_total_allocated_increase }
            }
            Self::CloseStreamByOwner { vault_id, stream_id } => {
                RefInstruction::CloseStreamByOwner { vault_id, stream_id }
            }
            Self::Claim { vault_id, stream_id, receipt } => {
                if receipt.is_some() {
                    return Err(NotInReference::DeliveryReceipt);
                }
                RefInstruction::Claim { vault_id, stream_id }
            }
            Self::CloseStreamByProvider { vault_id, stream_id, receipt } => {
                if receipt.is_some() {
                    return Err(NotInReference::DeliveryReceipt);
                }
                RefInstruction::CloseStreamByProvider { vault_id, stream_id }
            }
            Self::WithdrawToOwner { vault_id, amount } => RefInstruction::WithdrawToOwner { vault_id, amount },
        })
    }

    /// The reference program's RISC Zero serde words for this instruction (see
    /// [`Self::to_reference`]).
    ///
    /// # Errors
    /// [`NotInReference`] naming the extension in use.
    pub fn to_reference_words(&self) -> Result<Vec<u32>, NotInReference> {
        self.to_reference().map(|instruction| to_words(&instruction))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receipt::ReceiptBody;

    /// Every instruction's words (as little-endian bytes, LEZ's "instruction hex"), so a wire
    /// change is a reviewed diff. Word 0 is the discriminant: the reference's 0-10, then our
    /// extended variants 11-13. Each decodes back to itself.
    #[test]
    fn snapshots_of_every_instruction() {
        let provider = AccountId([5; 32]);
        let receipt = DeliveryReceipt {
            body: ReceiptBody {
                program_id: ProgramId([1; 8]),
                stream_config: AccountId([2; 32]),
                stream_id: 0,
                acknowledged_total: 30,
                deliveries_digest: [4; 32],
            },
            signature: [6; 64],
        };
        let create = |extensions| Instruction::CreateStream {
            vault_id: 1,
            stream_id: 0,
            provider,
            rate: 10,
            allocation: 200,
            extensions,
        };
        let all = [
            Instruction::InitializeVault { vault_id: 1, privacy_tier: VaultPrivacyTier::Public, token_id: [0; 32] },
            Instruction::Deposit { vault_id: 1, amount: 500, authenticated_transfer_program_id: ProgramId([7; 8]) },
            Instruction::Withdraw { vault_id: 1, amount: 5 },
            create(ExtensionSettings::default()),
            Instruction::PauseStream { vault_id: 1, stream_id: 0 },
            Instruction::ResumeStream { vault_id: 1, stream_id: 0 },
            Instruction::TopUpStream { vault_id: 1, stream_id: 0, vault_total_allocated_increase: 9 },
            Instruction::CloseStreamByOwner { vault_id: 1, stream_id: 0 },
            Instruction::Claim { vault_id: 1, stream_id: 0, receipt: None },
            Instruction::CloseStreamByProvider { vault_id: 1, stream_id: 0, receipt: None },
            Instruction::WithdrawToOwner { vault_id: 1, amount: 5 },
            create(ExtensionSettings {
                auto_pause_after: 60,
                activation_fee: 3,
                auto_claim_on_provider_close: true,
                receipt_key: Some([9; 32]),
            }),
            Instruction::Claim { vault_id: 1, stream_id: 0, receipt: Some(receipt) },
            Instruction::CloseStreamByProvider { vault_id: 1, stream_id: 0, receipt: Some(receipt) },
        ];
        let mut lines = String::new();
        for (discriminant, instruction) in all.iter().enumerate() {
            let words = instruction.to_words();
            assert_eq!(words.first().map(|w| *w as usize), Some(discriminant));
            assert!(words.len() <= INSTRUCTION_MAX_WORDS, "{}: {} words", instruction.name(), words.len());
            assert_eq!(Instruction::from_words(&words).as_ref(), Ok(instruction));
            let bytes = paystreams_lez_core::risc0_words::words_to_le_bytes(&words);
            lines.push_str(&format!("{} ({discriminant}): {}\n", instruction.name(), hex::encode(&bytes)));
        }
        insta::assert_snapshot!("instructions", lines);
    }

    /// Without extensions, each of our instructions maps to the reference's instruction of the
    /// same discriminant, with the words pinned in `paystreams-lez-core`'s
    /// `tests/all/reference_instruction.rs` (those vectors are [computed], see there). With an
    /// extension in use there is no reference form, and the error says which extension.
    #[test]
    fn instructions_without_extensions_map_to_the_reference_words() {
        let provider = AccountId([11; 32]);
        let plain = [
            (
                Instruction::InitializeVault { vault_id: 7, privacy_tier: VaultPrivacyTier::Public, token_id: [0; 32] },
                [vec![0, 7, 0, 0], vec![0; 32]].concat(),
            ),
            (
                Instruction::Deposit { vault_id: 1, amount: 42, authenticated_transfer_program_id: ProgramId([3; 8]) },
                vec![1, 1, 0, 42, 0, 0, 0, 3, 3, 3, 3, 3, 3, 3, 3],
            ),
            (Instruction::Withdraw { vault_id: 1, amount: 2 }, vec![2, 1, 0, 2, 0, 0, 0]),
            (
                Instruction::CreateStream {
                    vault_id: 3,
                    stream_id: 4,
                    provider,
                    rate: 10,
                    allocation: 200,
                    extensions: ExtensionSettings::default(),
                },
                vec![
                    3,
                    3,
                    0,
                    4,
                    0,
                    43,
                    1_631_991_659,
                    1_463_236_683,
                    1_482_049_352,
                    1_868_655_482,
                    1_127_703_112,
                    1_733_318_244,
                    1_363_430_251,
                    959_601_256,
                    1_698_974_806,
                    1_147_295_298,
                    7_231_846,
                    10,
                    0,
                    200,
                    0,
                    0,
                    0,
                ],
            ),
            (Instruction::PauseStream { vault_id: 5, stream_id: 6 }, vec![4, 5, 0, 6, 0]),
            (Instruction::ResumeStream { vault_id: 5, stream_id: 6 }, vec![5, 5, 0, 6, 0]),
            (
                Instruction::TopUpStream {
                    vault_id: 0x1_0000_0002,
                    stream_id: 3,
                    vault_total_allocated_increase: (1 << 64) + 5,
                },
                vec![6, 2, 1, 3, 0, 5, 0, 1, 0],
            ),
            (Instruction::CloseStreamByOwner { vault_id: 1, stream_id: 2 }, vec![7, 1, 0, 2, 0]),
            (Instruction::Claim { vault_id: 1, stream_id: 2, receipt: None }, vec![8, 1, 0, 2, 0]),
            (Instruction::CloseStreamByProvider { vault_id: 1, stream_id: 2, receipt: None }, vec![9, 1, 0, 2, 0]),
            (
                Instruction::WithdrawToOwner { vault_id: 9, amount: u128::MAX },
                vec![10, 9, 0, u32::MAX, u32::MAX, u32::MAX, u32::MAX],
            ),
        ];
        for (discriminant, (instruction, words)) in plain.iter().enumerate() {
            assert_eq!(instruction.to_reference_words().as_ref(), Ok(words), "{}", instruction.name());
            assert_eq!(words.first().map(|w| *w as usize), Some(discriminant));
        }
        let tier = Instruction::InitializeVault {
            vault_id: 7,
            privacy_tier: VaultPrivacyTier::PseudonymousFunding,
            token_id: [0; 32],
        };
        assert_eq!(tier.to_reference_words().ok().and_then(|w| w.get(3).copied()), Some(1));

        let receipt = DeliveryReceipt {
            body: ReceiptBody {
                program_id: ProgramId([1; 8]),
                stream_config: AccountId([2; 32]),
                stream_id: 2,
                acknowledged_total: 30,
                deliveries_digest: [4; 32],
            },
            signature: [6; 64],
        };
        let with_extensions = [
            (ExtensionSettings { auto_pause_after: 60, ..ExtensionSettings::default() }, "auto-pause"),
            (ExtensionSettings { activation_fee: 1, ..ExtensionSettings::default() }, "activation fee"),
            (ExtensionSettings { auto_claim_on_provider_close: true, ..ExtensionSettings::default() }, "auto-claim"),
            (ExtensionSettings { receipt_key: Some([9; 32]), ..ExtensionSettings::default() }, "receipt key"),
        ];
        for (extensions, which) in with_extensions {
            let create = Instruction::CreateStream {
                vault_id: 3,
                stream_id: 4,
                provider,
                rate: 10,
                allocation: 200,
                extensions,
            };
            assert_eq!(create.to_reference(), Err(NotInReference::StreamExtensions), "{which}");
        }
        assert_eq!(
            Instruction::Claim { vault_id: 1, stream_id: 2, receipt: Some(receipt) }.to_reference(),
            Err(NotInReference::DeliveryReceipt)
        );
        let close = Instruction::CloseStreamByProvider { vault_id: 1, stream_id: 2, receipt: Some(receipt) };
        let err = close.to_reference().expect_err("a receipt is an extension");
        assert!(err.to_string().contains("delivery receipt"), "{err}");
    }
}
