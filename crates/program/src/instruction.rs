//! Instructions, Borsh-encoded, variants in the reference's discriminant order (0-10).
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
use paystreams_lez_core::{AccountId, ProgramId};

use crate::{receipt::DeliveryReceipt, state::VaultPrivacyTier};

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

/// A payment-streams instruction.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
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
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        borsh::to_vec(self).unwrap_or_default()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receipt::ReceiptBody;

    /// Every instruction's Borsh bytes, so a wire change is a reviewed diff. The first byte is
    /// the reference's discriminant (0-10).
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
        let all = [
            Instruction::InitializeVault { vault_id: 1, privacy_tier: VaultPrivacyTier::Public, token_id: [0; 32] },
            Instruction::Deposit { vault_id: 1, amount: 500, authenticated_transfer_program_id: ProgramId([7; 8]) },
            Instruction::Withdraw { vault_id: 1, amount: 5 },
            Instruction::CreateStream {
                vault_id: 1,
                stream_id: 0,
                provider,
                rate: 10,
                allocation: 200,
                extensions: ExtensionSettings::default(),
            },
            Instruction::PauseStream { vault_id: 1, stream_id: 0 },
            Instruction::ResumeStream { vault_id: 1, stream_id: 0 },
            Instruction::TopUpStream { vault_id: 1, stream_id: 0, vault_total_allocated_increase: 9 },
            Instruction::CloseStreamByOwner { vault_id: 1, stream_id: 0 },
            Instruction::Claim { vault_id: 1, stream_id: 0, receipt: Some(receipt) },
            Instruction::CloseStreamByProvider { vault_id: 1, stream_id: 0, receipt: None },
            Instruction::WithdrawToOwner { vault_id: 1, amount: 5 },
        ];
        let mut lines = String::new();
        for (discriminant, instruction) in all.iter().enumerate() {
            let bytes = instruction.to_bytes();
            assert_eq!(bytes.first().map(|b| usize::from(*b)), Some(discriminant));
            assert_eq!(Instruction::try_from_slice(&bytes).ok().as_ref(), Some(instruction));
            lines.push_str(&format!("{}: {}\n", instruction.name(), hex::encode(&bytes)));
        }
        insta::assert_snapshot!("instructions", lines);
    }
}
