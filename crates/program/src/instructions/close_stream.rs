//! CloseStreamByOwner and CloseStreamByProvider.

use paystreams_lez_core::{AccountWithMetadata, ProgramId};

use crate::{
    Effects,
    accounts::{load_stream, load_vault, read_clock, require_signer},
    error::StreamError,
    event::{Closer, Event},
    instructions::{OwnerStreamContext, claim::payable, fold_with_events, stream_ref},
    receipt::DeliveryReceipt,
    state::{StreamConfig, StreamState, VaultConfig},
};

/// Closes a folded stream: unaccrued funds return to the vault's unallocated balance, the
/// allocation shrinks to what accrued, and the stream is CLOSED for good. Returns the released
/// amount and the new vault config.
fn close(stream: &mut StreamConfig, vault_config: &VaultConfig) -> Result<(u128, VaultConfig), StreamError> {
    if stream.state == StreamState::Closed {
        return Err(StreamError::StreamClosed);
    }
    let released = stream.unaccrued();
    stream.allocation = stream.accrued;
    stream.state = StreamState::Closed;
    let mut vault_config = vault_config.clone();
    vault_config.total_allocated =
        vault_config.total_allocated.checked_sub(released).ok_or(StreamError::TotalAllocatedUnderflow)?;
    Ok((released, vault_config))
}

pub(crate) fn by_owner(
    program_id: &ProgramId,
    pre_states: Vec<AccountWithMetadata>,
    vault_id: u64,
    stream_id: u64,
) -> Result<Effects, StreamError> {
    let context = OwnerStreamContext::load(program_id, pre_states, vault_id, stream_id)?;
    let mut effects = Effects::default();
    let stream_ref = context.stream_ref();
    let mut stream = fold_with_events(&context.stream, context.now, stream_ref, &mut effects)?;
    let (released, vault_config) = close(&mut stream, &context.vault.config)?;
    effects.events.push(Event::StreamClosed {
        stream: stream_ref,
        by: Closer::Owner,
        released,
        accrued: stream.accrued,
        at: context.now,
    });
    context.finish(Some(&vault_config), &stream, &mut effects);
    Ok(effects)
}

/// Accounts: `[vault_config, vault_holding, stream_config, owner, provider (signer), clock]`, plus
/// the provider's token holding when a token-vault stream pays out on close (auto-claim).
pub(crate) fn by_provider(
    program_id: &ProgramId,
    pre_states: Vec<AccountWithMetadata>,
    vault_id: u64,
    stream_id: u64,
    receipt: Option<DeliveryReceipt>,
) -> Result<Effects, StreamError> {
    let accounts = super::claim::ProviderAccounts::take(pre_states)?;
    require_signer(&accounts.provider)?;
    let vault = load_vault(program_id, &accounts.config, &accounts.holding, &accounts.owner.account_id, vault_id)?;
    let stored = load_stream(program_id, &vault, &accounts.config.account_id, &accounts.stream, stream_id)?;
    if accounts.provider.account_id != stored.provider {
        return Err(StreamError::CloseUnauthorized);
    }
    let auto_claim = stored.extensions_or_default().auto_claim_on_provider_close;
    accounts.require_payout_slot(vault.config.is_native() || !auto_claim)?;
    let now = read_clock(&accounts.clock)?;

    let mut effects = Effects::default();
    let stream_ref = stream_ref(&vault, &accounts.stream, &stored);
    let mut stream = fold_with_events(&stored, now, stream_ref, &mut effects)?;
    let (released, vault_config) = close(&mut stream, &vault.config)?;
    effects.events.push(Event::StreamClosed {
        stream: stream_ref,
        by: Closer::Provider,
        released,
        accrued: stream.accrued,
        at: now,
    });

    // Automatic claim on closure: pay what has accrued (and, with delivery receipts, what the
    // receipt acknowledges) in the same operation. Without a receipt nothing is paid and the
    // accrued funds stay claimable.
    let payout = if auto_claim && (receipt.is_some() || stream.extensions_or_default().receipt_key.is_none()) {
        payable(program_id, &mut stream, &accounts.stream.account_id, receipt.as_ref())?
    } else if receipt.is_some() && !auto_claim {
        return Err(StreamError::ReceiptNotExpected);
    } else {
        0
    };
    accounts.settle(&vault, vault_config, &stream, stream_ref, payout, now, &mut effects)?;
    Ok(effects)
}
