//! Deposit: move funds from the owner into the vault holding by composing with the platform
//! program for the vault token (authenticated transfer for native, the token program otherwise).

use paystreams_lez_core::{
    AccountPostState, AccountWithMetadata, ProgramId, program::ChainedCall, token::TokenInstruction,
    transfer::transfer_instruction,
};

use crate::{
    Effects,
    accounts::{exact, load_vault, require_signer, token_holding},
    error::StreamError,
    event::Event,
    instructions::vault_is_native,
};

pub(crate) fn process(
    program_id: &ProgramId,
    pre_states: Vec<AccountWithMetadata>,
    vault_id: u64,
    amount: u128,
    authenticated_transfer_program_id: ProgramId,
) -> Result<Effects, StreamError> {
    let native = vault_is_native(&pre_states);
    let (config, holding, owner, source) = if native {
        let [config, holding, owner] = exact::<3>(pre_states)?;
        (config, holding, owner, None)
    } else {
        let [config, holding, owner, source] = exact::<4>(pre_states)?;
        (config, holding, owner, Some(source))
    };
    require_signer(&owner)?;
    if let Some(source) = &source {
        require_signer(source)?;
    }
    if amount == 0 {
        return Err(StreamError::ZeroDepositAmount);
    }
    let vault = load_vault(program_id, &config, &holding, &owner.account_id, vault_id)?;

    let mut effects = Effects::default();
    effects.post_states.push(AccountPostState::new(config.account.clone()));
    effects.post_states.push(AccountPostState::new(holding.account.clone()));
    effects.post_states.push(AccountPostState::new(owner.account.clone()));
    match source {
        None => effects.chained_calls.push(ChainedCall {
            program_id: authenticated_transfer_program_id,
            pre_states: vec![owner.clone(), holding],
            instruction_data: transfer_instruction(amount),
            pda_seeds: vec![],
        }),
        Some(source) => {
            if token_holding(&source.account)?.definition_id().0 != vault.config.token_id {
                return Err(StreamError::TokenHoldingMismatch);
            }
            effects.post_states.push(AccountPostState::new(source.account.clone()));
            effects.chained_calls.push(ChainedCall {
                program_id: holding.account.program_owner,
                pre_states: vec![source, holding],
                instruction_data: TokenInstruction::Transfer { amount }.to_words(),
                pda_seeds: vec![],
            });
        }
    }
    effects.events.push(Event::Deposited { owner: owner.account_id, vault_id, amount });
    Ok(effects)
}
