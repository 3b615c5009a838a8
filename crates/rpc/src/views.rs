//! Decoded views of vaults and streams, read from any [`StateView`] and folded at a given time.
//! The node serves them; the CLI and engines can compute the same views from their own state.

use paystreams_lez_core::{AccountId, ProgramId, token::TokenHolding};
use paystreams_program::{
    fold::{fold, planned_stop},
    pda,
    state::{StreamConfig, VaultConfig, decode},
};
use paystreams_runtime::StateView;

use crate::types::{Amount, ExtensionsView, StreamView, VaultView};

pub use paystreams_program::state::token_label;

/// Reads and decodes a vault config; `None` if absent or not a vault.
pub fn read_vault_config(
    state: &impl StateView,
    program_id: &ProgramId,
    owner: &AccountId,
    vault_id: u64,
) -> Option<VaultConfig> {
    let account = state.account(&pda::vault_config_id(program_id, owner, vault_id));
    if account.program_owner != *program_id {
        return None;
    }
    decode(&account.data).ok()
}

/// The vault's funds: native balance of its holding, or the token holding's balance.
pub fn vault_balance(
    state: &impl StateView,
    program_id: &ProgramId,
    config_id: &AccountId,
    config: &VaultConfig,
) -> u128 {
    let holding = state.account(&pda::vault_holding_id(program_id, config_id, &config.token_id));
    if config.is_native() { holding.balance } else { decode::<TokenHolding>(&holding.data).map_or(0, |h| h.balance()) }
}

/// The vault view, or `None` when no such vault exists.
pub fn vault_view(
    state: &impl StateView,
    program_id: &ProgramId,
    owner: &AccountId,
    vault_id: u64,
) -> Option<VaultView> {
    let config = read_vault_config(state, program_id, owner, vault_id)?;
    let config_id = pda::vault_config_id(program_id, owner, vault_id);
    let balance = vault_balance(state, program_id, &config_id, &config);
    Some(VaultView {
        owner: *owner,
        vault_id,
        vault_config: config_id,
        vault_holding: pda::vault_holding_id(program_id, &config_id, &config.token_id),
        token_id: token_label(&config.token_id),
        privacy_tier: config.privacy_tier,
        balance: Amount(balance),
        total_allocated: Amount(config.total_allocated),
        unallocated: Amount(balance.saturating_sub(config.total_allocated)),
        next_stream_id: config.next_stream_id,
    })
}

/// Builds a stream view from a decoded stream, folded at `now_secs` (never earlier than its
/// last fold).
#[must_use]
pub fn stream_view_from(
    owner: AccountId,
    vault: &VaultConfig,
    stream_config: AccountId,
    stored: &StreamConfig,
    now_secs: u64,
) -> StreamView {
    let as_of = now_secs.max(stored.accrued_as_of);
    let effective = fold(stored, as_of).map_or_else(|_| stored.clone(), |f| f.stream);
    StreamView {
        owner,
        vault_id: vault.vault_id,
        stream_id: stored.stream_id,
        stream_config,
        provider: stored.provider,
        token_id: token_label(&vault.token_id),
        rate: stored.rate,
        state: effective.state,
        allocation: Amount(effective.allocation),
        accrued: Amount(effective.accrued),
        unaccrued: Amount(effective.unaccrued()),
        accrued_as_of: effective.accrued_as_of,
        as_of,
        planned_stop: planned_stop(&effective),
        stored_state: stored.state,
        stored_accrued: Amount(stored.accrued),
        stored_accrued_as_of: stored.accrued_as_of,
        extensions: stored.extensions.map(|e| ExtensionsView {
            auto_pause_after: e.auto_pause_after,
            auto_pause_anchor: e.auto_pause_anchor,
            activation_fee: Amount(e.activation_fee),
            auto_claim_on_provider_close: e.auto_claim_on_provider_close,
            receipt_key: e.receipt_key.map(hex::encode),
            receipt_paid: Amount(e.receipt_paid),
        }),
    }
}

/// The stream view, or `None` when no such stream exists.
pub fn stream_view(
    state: &impl StateView,
    program_id: &ProgramId,
    owner: &AccountId,
    vault_id: u64,
    stream_id: u64,
    now_secs: u64,
) -> Option<StreamView> {
    let vault = read_vault_config(state, program_id, owner, vault_id)?;
    let config_id = pda::vault_config_id(program_id, owner, vault_id);
    let stream_id_account = pda::stream_config_id(program_id, &config_id, stream_id);
    let account = state.account(&stream_id_account);
    if account.program_owner != *program_id {
        return None;
    }
    let stored: StreamConfig = decode(&account.data).ok()?;
    Some(stream_view_from(*owner, &vault, stream_id_account, &stored, now_secs))
}
