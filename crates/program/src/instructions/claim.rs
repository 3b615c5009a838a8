//! Claim: the provider takes all accrued funds (or, with delivery receipts, what the receipts
//! acknowledge).

use paystreams_lez_core::{AccountId, AccountPostState, AccountWithMetadata, ProgramId};

use crate::{
    Effects,
    accounts::{Vault, load_stream, load_vault, read_clock, require_signer},
    error::StreamError,
    event::{Event, StreamRef},
    instructions::{fold_with_events, pay_out, stream_ref},
    receipt::DeliveryReceipt,
    state::{StreamConfig, VaultConfig, encode},
};

/// `[vault_config, vault_holding, stream_config, owner, provider (signer), clock]` plus, for
/// token vaults, the provider's token holding that receives the payout.
pub(crate) struct ProviderAccounts {
    pub config: AccountWithMetadata,
    pub holding: AccountWithMetadata,
    pub stream: AccountWithMetadata,
    pub owner: AccountWithMetadata,
    pub provider: AccountWithMetadata,
    pub clock: AccountWithMetadata,
    pub payout_holding: Option<AccountWithMetadata>,
}

impl ProviderAccounts {
    pub(crate) fn take(pre_states: Vec<AccountWithMetadata>) -> Result<Self, StreamError> {
        let mut iter = pre_states.into_iter();
        let (Some(config), Some(holding), Some(stream), Some(owner), Some(provider), Some(clock)) =
            (iter.next(), iter.next(), iter.next(), iter.next(), iter.next(), iter.next())
        else {
            return Err(StreamError::WrongAccountCount);
        };
        let payout_holding = iter.next();
        if iter.next().is_some() {
            return Err(StreamError::WrongAccountCount);
        }
        Ok(Self { config, holding, stream, owner, provider, clock, payout_holding })
    }

    /// Requires the payout-holding slot to be absent when `native_payout` (payouts go to the
    /// provider account) and present otherwise.
    pub(crate) const fn require_payout_slot(&self, native_payout: bool) -> Result<(), StreamError> {
        if self.payout_holding.is_some() == native_payout {
            return Err(StreamError::WrongAccountCount);
        }
        Ok(())
    }
}

/// How much a claim pays from the folded `stream`, applying the delivery-receipt rule, and the
/// stream after paying it (accrued and allocation lowered; receipt bookkeeping advanced).
///
/// # Errors
/// 6038 when a receipt is given for a stream without receipts; 6037 when one is required and
/// missing; 6040 when it names another stream; 6039 for a bad signature; 6041 when it
/// acknowledges nothing new.
pub(crate) fn payable(
    program_id: &ProgramId,
    stream: &mut StreamConfig,
    stream_config: &AccountId,
    receipt: Option<&DeliveryReceipt>,
) -> Result<u128, StreamError> {
    let payout = match (stream.extensions.as_mut().and_then(|e| e.receipt_key.map(|k| (k, e))), receipt) {
        (None, Some(_)) => return Err(StreamError::ReceiptNotExpected),
        (None, None) => stream.accrued,
        (Some(_), None) => return Err(StreamError::ReceiptRequired),
        (Some((key, extensions)), Some(receipt)) => {
            let body = &receipt.body;
            if body.program_id != *program_id
                || body.stream_config != *stream_config
                || body.stream_id != stream.stream_id
            {
                return Err(StreamError::ReceiptStreamMismatch);
            }
            if !receipt.verify(&key) {
                return Err(StreamError::InvalidReceiptSignature);
            }
            let acknowledged = body.acknowledged_total.saturating_sub(extensions.receipt_paid);
            if acknowledged == 0 {
                return Err(StreamError::ReceiptAcknowledgesNothing);
            }
            let payout = stream.accrued.min(acknowledged);
            extensions.receipt_paid =
                extensions.receipt_paid.checked_add(payout).ok_or(StreamError::ArithmeticOverflow)?;
            payout
        }
    };
    stream.accrued = stream.accrued.checked_sub(payout).ok_or(StreamError::ArithmeticOverflow)?;
    stream.allocation = stream.allocation.checked_sub(payout).ok_or(StreamError::ArithmeticOverflow)?;
    Ok(payout)
}

impl ProviderAccounts {
    /// Pays `payout` (if any) from the holding to the provider (or its token holding), lowers
    /// `total_allocated` by it, records the claim event, and writes every post-state in slot
    /// order.
    #[expect(clippy::too_many_arguments, reason = "the settlement needs the whole folded context")]
    pub(crate) fn settle(
        self,
        vault: &Vault,
        mut vault_config: VaultConfig,
        stream: &StreamConfig,
        stream_ref: StreamRef,
        payout: u128,
        now: u64,
        effects: &mut Effects,
    ) -> Result<(), StreamError> {
        let Self { config, holding, stream: stream_account, owner, provider, clock, payout_holding } = self;
        let has_payout_holding = payout_holding.is_some();
        let destination = payout_holding.unwrap_or_else(|| provider.clone());
        let destination_id = destination.account_id;
        let (holding_post, destination_post) = if payout > 0 {
            vault_config.total_allocated =
                vault_config.total_allocated.checked_sub(payout).ok_or(StreamError::TotalAllocatedUnderflow)?;
            let posts = pay_out(vault, &config, holding, destination, payout, effects)?;
            effects.events.push(Event::Claimed {
                stream: stream_ref,
                amount: payout,
                to: destination_id,
                state: stream.state,
                at: now,
            });
            posts
        } else {
            (AccountPostState::new(holding.account), AccountPostState::new(destination.account))
        };
        let mut config_post = config.account;
        config_post.data = encode(&vault_config);
        let mut stream_post = stream_account.account;
        stream_post.data = encode(stream);
        effects.post_states.extend([
            AccountPostState::new(config_post),
            holding_post,
            AccountPostState::new(stream_post),
            AccountPostState::new(owner.account),
        ]);
        if has_payout_holding {
            effects.post_states.push(AccountPostState::new(provider.account));
            effects.post_states.push(AccountPostState::new(clock.account));
            effects.post_states.push(destination_post);
        } else {
            effects.post_states.push(destination_post);
            effects.post_states.push(AccountPostState::new(clock.account));
        }
        Ok(())
    }
}

pub(crate) fn process(
    program_id: &ProgramId,
    pre_states: Vec<AccountWithMetadata>,
    vault_id: u64,
    stream_id: u64,
    receipt: Option<DeliveryReceipt>,
) -> Result<Effects, StreamError> {
    let accounts = ProviderAccounts::take(pre_states)?;
    require_signer(&accounts.provider)?;
    let vault = load_vault(program_id, &accounts.config, &accounts.holding, &accounts.owner.account_id, vault_id)?;
    accounts.require_payout_slot(vault.config.is_native())?;
    let stored = load_stream(program_id, &vault, &accounts.config.account_id, &accounts.stream, stream_id)?;
    if accounts.provider.account_id != stored.provider {
        return Err(StreamError::ClaimUnauthorized);
    }
    let now = read_clock(&accounts.clock)?;

    let mut effects = Effects::default();
    let stream_ref = stream_ref(&vault, &accounts.stream, &stored);
    let mut stream = fold_with_events(&stored, now, stream_ref, &mut effects)?;
    if stream.accrued == 0 {
        return Err(StreamError::ZeroClaimAmount);
    }
    let payout = payable(program_id, &mut stream, &accounts.stream.account_id, receipt.as_ref())?;
    accounts.settle(&vault, vault.config.clone(), &stream, stream_ref, payout, now, &mut effects)?;
    Ok(effects)
}
