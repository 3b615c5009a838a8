//! CreateStream: allocate unallocated funds to a new ACTIVE stream.

use paystreams_lez_core::{AccountId, AccountPostState, AccountWithMetadata, Claim, ProgramId, crypto::PublicKey};

use crate::{
    Effects,
    accounts::{exact, load_vault, read_clock, require_address, require_signer},
    error::StreamError,
    event::Event,
    fold::activate,
    instruction::ExtensionSettings,
    instructions::stream_ref,
    pda,
    state::{DEFAULT_VERSION, STREAM_VERSION_EXTENDED, StreamConfig, StreamExtensions, StreamState, encode},
};

#[expect(clippy::too_many_arguments, reason = "mirrors the instruction's fields one to one")]
pub(crate) fn process(
    program_id: &ProgramId,
    pre_states: Vec<AccountWithMetadata>,
    vault_id: u64,
    stream_id: u64,
    provider: AccountId,
    rate: u64,
    allocation: u128,
    settings: ExtensionSettings,
) -> Result<Effects, StreamError> {
    let [config, holding, stream_account, owner, clock] = exact::<5>(pre_states)?;
    require_signer(&owner)?;
    let stream_seed = pda::stream_config_seed(&config.account_id, stream_id);
    require_address(&stream_account, &AccountId::for_public_pda(program_id, &stream_seed))?;
    if !stream_account.account.is_default() {
        return Err(StreamError::AccountAlreadyInitialized);
    }
    if rate == 0 {
        return Err(StreamError::ZeroStreamRate);
    }
    if allocation == 0 {
        return Err(StreamError::ZeroStreamAllocation);
    }
    let vault = load_vault(program_id, &config, &holding, &owner.account_id, vault_id)?;
    if provider == owner.account_id {
        return Err(StreamError::ProviderEqualsOwner);
    }
    if stream_id != vault.config.next_stream_id {
        return Err(StreamError::StreamIdMismatch);
    }
    if allocation > vault.unallocated() {
        return Err(StreamError::AllocationExceedsUnallocated);
    }
    let total_allocated =
        vault.config.total_allocated.checked_add(allocation).ok_or(StreamError::TotalAllocatedOverflow)?;
    if let Some(key) = settings.receipt_key {
        PublicKey::from_bytes(key).map_err(|_| StreamError::InvalidReceiptKey)?;
    }
    let now = read_clock(&clock)?;
    let next_stream_id = stream_id.checked_add(1).ok_or(StreamError::NextStreamIdOverflow)?;

    let extensions = StreamExtensions {
        auto_pause_after: settings.auto_pause_after,
        auto_pause_anchor: now,
        activation_fee: settings.activation_fee,
        auto_claim_on_provider_close: settings.auto_claim_on_provider_close,
        receipt_key: settings.receipt_key,
        receipt_paid: 0,
    };
    let plain = extensions.is_plain();
    let mut stream = StreamConfig {
        version: if plain { DEFAULT_VERSION } else { STREAM_VERSION_EXTENDED },
        stream_id,
        provider,
        rate,
        allocation,
        accrued: 0,
        state: StreamState::Active,
        accrued_as_of: now,
        extensions: (!plain).then_some(extensions),
    };
    let fee = activate(&mut stream, now)?;

    let mut vault_config = vault.config.clone();
    vault_config.next_stream_id = next_stream_id;
    vault_config.total_allocated = total_allocated;

    let stream_ref = stream_ref(&vault, &stream_account, &stream);
    let mut effects = Effects::default();
    effects.events.push(Event::StreamCreated { stream: stream_ref, rate, allocation, at: now });
    if fee > 0 {
        effects.events.push(Event::ActivationFeeCharged { stream: stream_ref, fee, at: now });
    }
    if stream.state == StreamState::Paused {
        effects.events.push(Event::StreamAutoPaused { stream: stream_ref, at: now, depleted: true });
    }

    let mut config_post = config.account;
    config_post.data = encode(&vault_config);
    let mut stream_post = stream_account.account;
    stream_post.data = encode(&stream);
    effects.post_states.extend([
        AccountPostState::new(config_post),
        AccountPostState::new(holding.account),
        AccountPostState::new_claimed(stream_post, Claim::Pda(stream_seed)),
        AccountPostState::new(owner.account),
        AccountPostState::new(clock.account),
    ]);
    Ok(effects)
}
