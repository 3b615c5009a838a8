//! Delivery receipts, user side: which stream extensions to ask for from a provider's advert,
//! and the cumulative receipts the user signs as responses arrive (see
//! `docs/delivery-receipts.md`).
//!
//! The receipt key is the session key: it is fresh per session (a receipt links to nothing
//! but its stream), the engine already holds it to sign every request, so receipts need neither
//! the owner key nor a new key to store and back up, and the provider already knows it from the
//! proposal.

use borsh::{BorshDeserialize, BorshSerialize};
use paystreams_lez_core::{AccountId, crypto::SecretKey, domain_prefix, sha256};
use paystreams_program::{ExtensionSettings, client::VaultRef, receipt::DeliveryReceipt};
use paystreams_rpc::chain_view::ChainView;
use paystreams_wire::{DeliveryReceipt as WireReceipt, ProviderAdvert, ReceiptTerms};

use crate::UserError;

/// Domain prefix of the deliveries hash chain.
pub const DELIVERIES_DOMAIN: [u8; 32] = domain_prefix("/paystreams/v1/Deliveries/");

/// The extensions to create a stream with for `advert`'s provider: a receipt key (the session
/// key) when the provider requires receipts, or accepts them and `prefer_receipts`; the
/// provider's minimum activation fee when it requires one; no auto-pause and no automatic
/// claim on close (the user engine pauses and closes itself). An advert that states no terms
/// (an older provider) gets a stream without extensions.
#[must_use]
pub fn extensions_for(advert: &ProviderAdvert, session_key: &[u8; 32], prefer_receipts: bool) -> ExtensionSettings {
    let Some(terms) = advert.extensions else { return ExtensionSettings::default() };
    let receipts = match terms.receipts {
        ReceiptTerms::Required => true,
        ReceiptTerms::Accepted => prefer_receipts,
        ReceiptTerms::Refused => false,
    };
    ExtensionSettings {
        auto_pause_after: 0,
        activation_fee: if terms.activation_fee_accepted { terms.activation_fee_min } else { 0 },
        auto_claim_on_provider_close: false,
        receipt_key: receipts.then_some(*session_key),
    }
}

/// What the user has acknowledged on one stream so far: persist it with the session, so a
/// restarted user continues the same chain and never signs a lower total.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, BorshSerialize, BorshDeserialize)]
pub struct ReceiptBook {
    /// The acknowledged total of the last receipt signed.
    pub acknowledged_total: u128,
    /// Head of the deliveries hash chain (all zero before the first response).
    pub deliveries_digest: [u8; 32],
    /// Responses covered.
    pub deliveries: u64,
}

impl ReceiptBook {
    /// The chain head after one more response whose digest is `response_digest`:
    /// `SHA-256(DELIVERIES_DOMAIN || previous head || response_digest)`.
    #[must_use]
    pub fn next_digest(&self, response_digest: &[u8; 32]) -> [u8; 32] {
        sha256(&[&DELIVERIES_DOMAIN, &self.deliveries_digest, response_digest])
    }
}

/// Signs the receipt for one more response on `stream_id` of `vault`, and advances `book`.
///
/// `acknowledged_total` is what the chain shows the stream has earned the provider so far, as
/// read now: `accrued + receipt_paid` (the stream's accrual over its life, less nothing: on a
/// receipt stream every payout goes through a receipt). It is never more than the user observed
/// and never lower than the book's last total. `None` when the stream has no receipt key or its
/// key is not `receipt_key` (nothing to sign), and `book` is then unchanged.
///
/// # Errors
/// Chain failures; `book` is then unchanged.
pub async fn sign_receipt(
    chain: &impl ChainView,
    vault: &VaultRef,
    stream_id: u64,
    receipt_key: &SecretKey,
    book: &mut ReceiptBook,
    response_digest: &[u8; 32],
) -> Result<Option<WireReceipt>, UserError> {
    let Some(view) = chain.stream_fresh(&vault.owner, vault.vault_id, stream_id).await? else {
        return Ok(None);
    };
    let Some(ext) = view.extensions.as_ref() else { return Ok(None) };
    let ours = hex::encode(receipt_key.public_key().to_bytes());
    if ext.receipt_key.as_deref() != Some(ours.as_str()) {
        return Ok(None);
    }
    // Both are parts of the stream's allocation, so the sum cannot reach u128::MAX.
    let observed = view.accrued.0.saturating_add(ext.receipt_paid.0);
    let acknowledged_total = observed.max(book.acknowledged_total);
    let deliveries_digest = book.next_digest(response_digest);
    let receipt = DeliveryReceipt::sign(receipt_key, vault, stream_id, acknowledged_total, deliveries_digest);
    *book = ReceiptBook { acknowledged_total, deliveries_digest, deliveries: book.deliveries.saturating_add(1) };
    Ok(Some(to_wire(&receipt)))
}

/// The on-chain receipt as the wire message.
#[must_use]
pub fn to_wire(receipt: &DeliveryReceipt) -> WireReceipt {
    let AccountId(stream_config) = receipt.body.stream_config;
    WireReceipt {
        program_id: receipt.body.program_id.to_bytes(),
        stream_config,
        stream_id: receipt.body.stream_id,
        acknowledged_total: receipt.body.acknowledged_total,
        deliveries_digest: receipt.body.deliveries_digest,
        signature: receipt.signature,
    }
}
