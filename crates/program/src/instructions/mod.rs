//! One module per instruction.

mod claim;
mod close_stream;
mod create_stream;
mod deposit;
mod initialize_vault;
mod stream_ops;
mod withdraw;

use paystreams_lez_core::{AccountWithMetadata, ProgramId};

use crate::{Effects, error::StreamError, instruction::Instruction};

pub(crate) fn dispatch(
    program_id: &ProgramId,
    instruction: Instruction,
    pre_states: Vec<AccountWithMetadata>,
) -> Result<Effects, StreamError> {
    match instruction {
        Instruction::InitializeVault { vault_id, privacy_tier, token_id } => {
            initialize_vault::process(program_id, pre_states, vault_id, privacy_tier, token_id)
        }
        Instruction::Deposit { vault_id, amount, authenticated_transfer_program_id } => {
            deposit::process(program_id, pre_states, vault_id, amount, authenticated_transfer_program_id)
        }
        Instruction::Withdraw { vault_id, amount } => {
            withdraw::process(program_id, pre_states, vault_id, amount, false)
        }
        Instruction::WithdrawToOwner { vault_id, amount } => {
            withdraw::process(program_id, pre_states, vault_id, amount, true)
        }
        Instruction::CreateStream { vault_id, stream_id, provider, rate, allocation, extensions } => {
            create_stream::process(program_id, pre_states, vault_id, stream_id, provider, rate, allocation, extensions)
        }
        Instruction::PauseStream { vault_id, stream_id } => {
            stream_ops::pause(program_id, pre_states, vault_id, stream_id)
        }
        Instruction::ResumeStream { vault_id, stream_id } => {
            stream_ops::resume(program_id, pre_states, vault_id, stream_id)
        }
        Instruction::TopUpStream { vault_id, stream_id, vault_total_allocated_increase } => {
            stream_ops::top_up(program_id, pre_states, vault_id, stream_id, vault_total_allocated_increase)
        }
        Instruction::CloseStreamByOwner { vault_id, stream_id } => {
            close_stream::by_owner(program_id, pre_states, vault_id, stream_id)
        }
        Instruction::CloseStreamByProvider { vault_id, stream_id, receipt } => {
            close_stream::by_provider(program_id, pre_states, vault_id, stream_id, receipt)
        }
        Instruction::Claim { vault_id, stream_id, receipt } => {
            claim::process(program_id, pre_states, vault_id, stream_id, receipt)
        }
    }
}

use paystreams_lez_core::{AccountPostState, program::ChainedCall, token::TokenInstruction};

use crate::{
    accounts::{Vault, require_token_destination},
    pda,
    state::{VaultConfig, decode},
};

/// Whether the vault named by the first account holds the native token. Used only to pick the
/// expected account count; the vault is fully validated afterwards.
pub(crate) fn vault_is_native(pre_states: &[AccountWithMetadata]) -> bool {
    pre_states
        .first()
        .and_then(|config| decode::<VaultConfig>(&config.account.data).ok())
        .is_none_or(|config| config.is_native())
}

/// Pays `amount` from the vault holding to `destination` and returns their post-states.
///
/// Native vaults debit the holding and credit the destination here, in this program (the spec
/// forbids composing with authenticated transfer for payouts); the destination must already be
/// initialised, so a payout can never leave funds in an account nobody can spend from. Token
/// vaults call the token program with the holding authorised through its PDA seed.
pub(crate) fn pay_out(
    vault: &Vault,
    config: &AccountWithMetadata,
    holding: AccountWithMetadata,
    destination: AccountWithMetadata,
    amount: u128,
    effects: &mut Effects,
) -> Result<(AccountPostState, AccountPostState), StreamError> {
    if vault.config.is_native() {
        if destination.account.is_default() {
            return Err(StreamError::DestinationUninitialized);
        }
        let mut holding_post = holding.account;
        holding_post.balance = holding_post.balance.checked_sub(amount).ok_or(StreamError::InsufficientFunds)?;
        let mut destination_post = destination.account;
        destination_post.balance =
            destination_post.balance.checked_add(amount).ok_or(StreamError::ArithmeticOverflow)?;
        return Ok((AccountPostState::new(holding_post), AccountPostState::new(destination_post)));
    }
    require_token_destination(&destination, &vault.config.token_id)?;
    if vault.balance < amount {
        return Err(StreamError::InsufficientFunds);
    }
    let posts = (AccountPostState::new(holding.account.clone()), AccountPostState::new(destination.account.clone()));
    if amount > 0 {
        effects.chained_calls.push(ChainedCall {
            program_id: holding.account.program_owner,
            pre_states: vec![AccountWithMetadata { is_authorized: true, ..holding }, destination],
            instruction_data: TokenInstruction::Transfer { amount }.to_words(),
            pda_seeds: vec![pda::vault_holding_seed(&config.account_id, &vault.config.token_id)],
        });
    }
    Ok(posts)
}

use crate::{
    accounts::{exact as take_exact, load_stream, load_vault, read_clock, require_signer},
    event::{Event, StreamRef},
    fold::{AutoPause, fold},
    state::{StreamConfig, encode},
};

/// The five accounts of an owner-signed stream operation, loaded and validated.
pub(crate) struct OwnerStreamContext {
    pub config: AccountWithMetadata,
    pub holding: AccountWithMetadata,
    pub stream_account: AccountWithMetadata,
    pub owner: AccountWithMetadata,
    pub clock: AccountWithMetadata,
    pub vault: Vault,
    pub stream: StreamConfig,
    pub now: u64,
}

impl OwnerStreamContext {
    /// Loads `[vault_config, vault_holding, stream_config, owner (signer), clock]`.
    pub(crate) fn load(
        program_id: &ProgramId,
        pre_states: Vec<AccountWithMetadata>,
        vault_id: u64,
        stream_id: u64,
    ) -> Result<Self, StreamError> {
        let [config, holding, stream_account, owner, clock] = take_exact::<5>(pre_states)?;
        require_signer(&owner)?;
        let vault = load_vault(program_id, &config, &holding, &owner.account_id, vault_id)?;
        let stream = load_stream(program_id, &vault, &config.account_id, &stream_account, stream_id)?;
        let now = read_clock(&clock)?;
        Ok(Self { config, holding, stream_account, owner, clock, vault, stream, now })
    }

    pub(crate) fn stream_ref(&self) -> StreamRef {
        stream_ref(&self.vault, &self.stream_account, &self.stream)
    }

    /// Post-states with new vault config and stream data; other accounts unchanged.
    pub(crate) fn finish(self, vault_config: Option<&VaultConfig>, stream: &StreamConfig, effects: &mut Effects) {
        let mut config = self.config.account;
        if let Some(vault_config) = vault_config {
            config.data = encode(vault_config);
        }
        let mut stream_account = self.stream_account.account;
        stream_account.data = encode(stream);
        effects.post_states.extend([
            AccountPostState::new(config),
            AccountPostState::new(self.holding.account),
            AccountPostState::new(stream_account),
            AccountPostState::new(self.owner.account),
            AccountPostState::new(self.clock.account),
        ]);
    }
}

pub(crate) fn stream_ref(vault: &Vault, stream_account: &AccountWithMetadata, stream: &StreamConfig) -> StreamRef {
    StreamRef {
        owner: vault.config.owner,
        vault_id: vault.config.vault_id,
        stream_id: stream.stream_id,
        provider: stream.provider,
        stream_config: stream_account.account_id,
    }
}

/// Folds and records an auto-pause event if the fold paused the stream.
pub(crate) fn fold_with_events(
    stream: &StreamConfig,
    now: u64,
    stream_ref: StreamRef,
    effects: &mut Effects,
) -> Result<StreamConfig, StreamError> {
    let folded = fold(stream, now)?;
    if let Some(AutoPause { at, depleted }) = folded.auto_paused {
        effects.events.push(Event::StreamAutoPaused { stream: stream_ref, at, depleted });
    }
    Ok(folded.stream)
}
