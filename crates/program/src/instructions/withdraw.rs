//! Withdraw and WithdrawToOwner: move unallocated funds out of the vault.

use paystreams_lez_core::{AccountPostState, AccountWithMetadata, ProgramId};

use crate::{
    Effects,
    accounts::{exact, load_vault, require_signer},
    error::StreamError,
    event::Event,
    instructions::{pay_out, vault_is_native},
};

pub(crate) fn process(
    program_id: &ProgramId,
    pre_states: Vec<AccountWithMetadata>,
    vault_id: u64,
    amount: u128,
    to_owner: bool,
) -> Result<Effects, StreamError> {
    let native = vault_is_native(&pre_states);
    let (config, holding, owner, to) = if to_owner {
        let [config, holding, owner] = exact::<3>(pre_states)?;
        (config, holding, owner, None)
    } else {
        let [config, holding, owner, to] = exact::<4>(pre_states)?;
        (config, holding, owner, Some(to))
    };
    require_signer(&owner)?;
    let vault = load_vault(program_id, &config, &holding, &owner.account_id, vault_id)?;
    if to_owner && !native {
        return Err(StreamError::WithdrawToOwnerNotNative);
    }
    if amount == 0 {
        return Err(StreamError::ZeroWithdrawAmount);
    }
    if amount > vault.unallocated() {
        return Err(StreamError::InsufficientFunds);
    }

    let mut effects = Effects::default();
    effects.post_states.push(AccountPostState::new(config.account.clone()));
    let destination_id = to.as_ref().map_or(owner.account_id, |to| to.account_id);
    match to {
        None => {
            let (holding_post, owner_post) = pay_out(&vault, &config, holding, owner.clone(), amount, &mut effects)?;
            effects.post_states.push(holding_post);
            effects.post_states.push(owner_post);
        }
        Some(to) => {
            let (holding_post, to_post) = pay_out(&vault, &config, holding, to, amount, &mut effects)?;
            effects.post_states.push(holding_post);
            effects.post_states.push(AccountPostState::new(owner.account.clone()));
            effects.post_states.push(to_post);
        }
    }
    effects.events.push(Event::Withdrawn { owner: owner.account_id, vault_id, to: destination_id, amount });
    Ok(effects)
}
