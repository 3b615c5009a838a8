//! InitializeVault: create an empty vault recording its token.

use paystreams_lez_core::{
    AccountPostState, AccountWithMetadata, Claim, ProgramId, program::ChainedCall, token::TokenInstruction,
};

use crate::{
    Effects,
    accounts::{exact, require_address, require_signer, token_definition},
    error::StreamError,
    event::Event,
    pda,
    state::{DEFAULT_VERSION, NATIVE_TOKEN_ID, VaultConfig, VaultHolding, VaultPrivacyTier, encode, token_label},
};

pub(crate) fn process(
    program_id: &ProgramId,
    pre_states: Vec<AccountWithMetadata>,
    vault_id: u64,
    privacy_tier: VaultPrivacyTier,
    token_id: [u8; 32],
) -> Result<Effects, StreamError> {
    let native = token_id == NATIVE_TOKEN_ID;
    let (config, holding, owner, definition) = if native {
        let [config, holding, owner] = exact::<3>(pre_states)?;
        (config, holding, owner, None)
    } else {
        let [config, holding, owner, definition] = exact::<4>(pre_states)?;
        (config, holding, owner, Some(definition))
    };
    require_signer(&owner)?;
    // A pseudonymous-funding vault promises funding through private accounts; without them the
    // promise would be false, so the tier is refused rather than recorded.
    if privacy_tier != VaultPrivacyTier::Public {
        return Err(StreamError::PrivacyTierUnavailable);
    }
    let config_seed = pda::vault_config_seed(&owner.account_id, vault_id);
    require_address(&config, &paystreams_lez_core::AccountId::for_public_pda(program_id, &config_seed))?;
    let holding_seed = pda::vault_holding_seed(&config.account_id, &token_id);
    require_address(&holding, &paystreams_lez_core::AccountId::for_public_pda(program_id, &holding_seed))?;
    if !config.account.is_default() || !holding.account.is_default() {
        return Err(StreamError::AccountAlreadyInitialized);
    }
    if let Some(definition) = &definition {
        if definition.account_id.0 != token_id {
            return Err(StreamError::UnsupportedTokenId);
        }
        token_definition(&definition.account)?;
    }

    let vault_config = VaultConfig {
        version: DEFAULT_VERSION,
        owner: owner.account_id,
        vault_id,
        next_stream_id: 0,
        total_allocated: 0,
        privacy_tier,
        token_id,
    };
    let mut config_post = config.account.clone();
    config_post.data = encode(&vault_config);

    let mut effects = Effects::default();
    effects.post_states.push(AccountPostState::new_claimed(config_post, Claim::Pda(config_seed)));
    match definition {
        None => {
            let mut holding_post = holding.account.clone();
            holding_post.data = encode(&VaultHolding { version: DEFAULT_VERSION });
            effects.post_states.push(AccountPostState::new_claimed(holding_post, Claim::Pda(holding_seed)));
            effects.post_states.push(AccountPostState::new(owner.account.clone()));
        }
        Some(definition) => {
            // The token program creates and owns the holding; this program stays its authority
            // through the PDA seed (LEZ's associated-token pattern).
            effects.post_states.push(AccountPostState::new(holding.account.clone()));
            effects.post_states.push(AccountPostState::new(owner.account.clone()));
            effects.post_states.push(AccountPostState::new(definition.account.clone()));
            effects.chained_calls.push(ChainedCall {
                program_id: definition.account.program_owner,
                pre_states: vec![definition, AccountWithMetadata { is_authorized: true, ..holding }],
                instruction_data: TokenInstruction::InitializeAccount.to_words(),
                pda_seeds: vec![holding_seed],
            });
        }
    }
    effects.events.push(Event::VaultInitialized {
        owner: owner.account_id,
        vault_id,
        vault_config: config.account_id,
        token_id: token_label(&token_id),
    });
    Ok(effects)
}
