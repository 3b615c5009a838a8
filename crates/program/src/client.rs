//! Off-chain helpers: the account list each instruction expects, in order, with which accounts
//! must sign. Wallets, the CLI, the simulator and the engines build transactions from these.

use paystreams_lez_core::{AccountId, ProgramId, clock::CLOCK_01_ACCOUNT_ID, lee_transaction::LeeMessage};

use crate::{
    instruction::{ExtensionSettings, Instruction},
    pda,
    receipt::DeliveryReceipt,
    state::{NATIVE_TOKEN_ID, VaultPrivacyTier},
};

/// A vault as a client names it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct VaultRef {
    pub program_id: ProgramId,
    pub owner: AccountId,
    pub vault_id: u64,
    /// All-zero for the native token, else the token definition id.
    pub token_id: [u8; 32],
}

impl VaultRef {
    #[must_use]
    pub const fn native(program_id: ProgramId, owner: AccountId, vault_id: u64) -> Self {
        Self { program_id, owner, vault_id, token_id: NATIVE_TOKEN_ID }
    }

    #[must_use]
    pub fn config(&self) -> AccountId {
        pda::vault_config_id(&self.program_id, &self.owner, self.vault_id)
    }

    #[must_use]
    pub fn holding(&self) -> AccountId {
        pda::vault_holding_id(&self.program_id, &self.config(), &self.token_id)
    }

    #[must_use]
    pub fn stream(&self, stream_id: u64) -> AccountId {
        pda::stream_config_id(&self.program_id, &self.config(), stream_id)
    }

    #[must_use]
    pub fn is_native(&self) -> bool {
        self.token_id == NATIVE_TOKEN_ID
    }
}

/// An instruction ready to wrap in a transaction: program, accounts in order, and the
/// instruction (whose words go into the message).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Call {
    pub program_id: ProgramId,
    pub account_ids: Vec<AccountId>,
    pub instruction: Instruction,
}

impl Call {
    #[must_use]
    pub fn instruction_data(&self) -> Vec<u32> {
        self.instruction.to_words()
    }

    /// The public message carrying this call, with the signers' `nonces` in signing order: what
    /// every signer signs (LEZ's `Message`).
    #[must_use]
    pub fn message(&self, nonces: Vec<u128>) -> LeeMessage {
        LeeMessage {
            program_id: self.program_id,
            account_ids: self.account_ids.clone(),
            nonces,
            instruction_data: self.instruction_data(),
        }
    }
}

fn call(vault: &VaultRef, account_ids: Vec<AccountId>, instruction: Instruction) -> Call {
    Call { program_id: vault.program_id, account_ids, instruction }
}

/// InitializeVault. Signer: owner. Token vaults add the token definition account.
#[must_use]
pub fn initialize_vault(vault: &VaultRef, privacy_tier: VaultPrivacyTier) -> Call {
    let mut ids = vec![vault.config(), vault.holding(), vault.owner];
    if !vault.is_native() {
        ids.push(AccountId(vault.token_id));
    }
    call(vault, ids, Instruction::InitializeVault { vault_id: vault.vault_id, privacy_tier, token_id: vault.token_id })
}

/// Deposit. Signer: owner (and, for token vaults, the owner's token holding `source_holding`).
#[must_use]
pub fn deposit(
    vault: &VaultRef,
    amount: u128,
    authenticated_transfer_program_id: ProgramId,
    source_holding: Option<AccountId>,
) -> Call {
    let mut ids = vec![vault.config(), vault.holding(), vault.owner];
    ids.extend(source_holding);
    call(vault, ids, Instruction::Deposit { vault_id: vault.vault_id, amount, authenticated_transfer_program_id })
}

/// Withdraw unallocated funds. To the owner (native vaults) when `to` is `None` or the owner,
/// else to `to` (for token vaults, a holding of the vault token). Signer: owner.
#[must_use]
pub fn withdraw(vault: &VaultRef, amount: u128, to: Option<AccountId>) -> Call {
    match to {
        Some(to) if to != vault.owner => call(
            vault,
            vec![vault.config(), vault.holding(), vault.owner, to],
            Instruction::Withdraw { vault_id: vault.vault_id, amount },
        ),
        _ => call(
            vault,
            vec![vault.config(), vault.holding(), vault.owner],
            Instruction::WithdrawToOwner { vault_id: vault.vault_id, amount },
        ),
    }
}

/// CreateStream with id `stream_id` (must be the vault's next stream id). Signer: owner.
#[must_use]
pub fn create_stream(
    vault: &VaultRef,
    stream_id: u64,
    provider: AccountId,
    rate: u64,
    allocation: u128,
    extensions: ExtensionSettings,
) -> Call {
    call(
        vault,
        vec![vault.config(), vault.holding(), vault.stream(stream_id), vault.owner, CLOCK_01_ACCOUNT_ID],
        Instruction::CreateStream { vault_id: vault.vault_id, stream_id, provider, rate, allocation, extensions },
    )
}

fn owner_stream_op(vault: &VaultRef, stream_id: u64, instruction: Instruction) -> Call {
    call(
        vault,
        vec![vault.config(), vault.holding(), vault.stream(stream_id), vault.owner, CLOCK_01_ACCOUNT_ID],
        instruction,
    )
}

/// PauseStream. Signer: owner.
#[must_use]
pub fn pause_stream(vault: &VaultRef, stream_id: u64) -> Call {
    owner_stream_op(vault, stream_id, Instruction::PauseStream { vault_id: vault.vault_id, stream_id })
}

/// ResumeStream. Signer: owner.
#[must_use]
pub fn resume_stream(vault: &VaultRef, stream_id: u64) -> Call {
    owner_stream_op(vault, stream_id, Instruction::ResumeStream { vault_id: vault.vault_id, stream_id })
}

/// TopUpStream. Signer: owner.
#[must_use]
pub fn top_up_stream(vault: &VaultRef, stream_id: u64, amount: u128) -> Call {
    owner_stream_op(
        vault,
        stream_id,
        Instruction::TopUpStream { vault_id: vault.vault_id, stream_id, vault_total_allocated_increase: amount },
    )
}

/// CloseStreamByOwner. Signer: owner.
#[must_use]
pub fn close_stream_by_owner(vault: &VaultRef, stream_id: u64) -> Call {
    owner_stream_op(vault, stream_id, Instruction::CloseStreamByOwner { vault_id: vault.vault_id, stream_id })
}

fn provider_accounts(
    vault: &VaultRef,
    stream_id: u64,
    provider: AccountId,
    payout_holding: Option<AccountId>,
) -> Vec<AccountId> {
    let mut ids =
        vec![vault.config(), vault.holding(), vault.stream(stream_id), vault.owner, provider, CLOCK_01_ACCOUNT_ID];
    ids.extend(payout_holding);
    ids
}

/// Claim. Signer: provider (and `payout_holding` if it is a fresh token holding). Token vaults
/// pay into `payout_holding`.
#[must_use]
pub fn claim(
    vault: &VaultRef,
    stream_id: u64,
    provider: AccountId,
    payout_holding: Option<AccountId>,
    receipt: Option<DeliveryReceipt>,
) -> Call {
    call(
        vault,
        provider_accounts(vault, stream_id, provider, payout_holding),
        Instruction::Claim { vault_id: vault.vault_id, stream_id, receipt },
    )
}

/// CloseStreamByProvider. Signer: provider. With auto-claim on a token vault, pass the
/// provider's `payout_holding`.
#[must_use]
pub fn close_stream_by_provider(
    vault: &VaultRef,
    stream_id: u64,
    provider: AccountId,
    payout_holding: Option<AccountId>,
    receipt: Option<DeliveryReceipt>,
) -> Call {
    call(
        vault,
        provider_accounts(vault, stream_id, provider, payout_holding),
        Instruction::CloseStreamByProvider { vault_id: vault.vault_id, stream_id, receipt },
    )
}
