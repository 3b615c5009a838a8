//! Delivery receipts (LIP-155 "Delivery receipts" extension).
//!
//! A receipt is signed by the user's receipt key, committed in the stream at creation. It
//! acknowledges a cumulative amount of delivered service for one stream; a claim pays at most
//! `acknowledged_total - already_paid_under_receipts` (and at most what has accrued).
//!
//! Signed bytes: `SHA-256(RECEIPT_DOMAIN || Borsh(ReceiptBody))` where `RECEIPT_DOMAIN` is
//! `"/paystreams/v1/DeliveryReceipt/"` NUL-padded to 32 bytes. See `docs/delivery-receipts.md`.

use borsh::{BorshDeserialize, BorshSerialize};
use paystreams_lez_core::{
    AccountId, ProgramId,
    crypto::{SecretKey, verify_bip340},
    domain_prefix, sha256,
};

use crate::client::VaultRef;

/// Domain prefix of the receipt digest.
pub const RECEIPT_DOMAIN: [u8; 32] = domain_prefix("/paystreams/v1/DeliveryReceipt/");

/// The fields a receipt signs.
#[derive(Clone, Copy, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct ReceiptBody {
    /// The payment-streams program the stream lives in.
    pub program_id: ProgramId,
    /// The stream-config account (binds vault and stream id).
    pub stream_config: AccountId,
    /// The stream id, as assigned at creation.
    pub stream_id: u64,
    /// Cumulative amount of the vault token the user acknowledges as delivered on this stream.
    pub acknowledged_total: u128,
    /// A digest of the service deliveries covered (e.g. a hash chain of responses); opaque to
    /// the program, signed so the receipt names what it covers.
    pub deliveries_digest: [u8; 32],
}

impl ReceiptBody {
    /// The 32-byte digest the receipt key signs.
    #[must_use]
    pub fn digest(&self) -> [u8; 32] {
        let body = borsh::to_vec(self).unwrap_or_default();
        sha256(&[&RECEIPT_DOMAIN, &body])
    }
}

/// A signed receipt as carried in Claim and CloseStreamByProvider.
#[derive(Clone, Copy, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct DeliveryReceipt {
    pub body: ReceiptBody,
    pub signature: [u8; 64],
}

impl DeliveryReceipt {
    /// The receipt `receipt_key` signs for `stream_id` of `vault`: the user acknowledges
    /// `acknowledged_total` delivered over the stream's life, covering the deliveries whose
    /// digest is `deliveries_digest`.
    #[must_use]
    pub fn sign(
        receipt_key: &SecretKey,
        vault: &VaultRef,
        stream_id: u64,
        acknowledged_total: u128,
        deliveries_digest: [u8; 32],
    ) -> Self {
        let body = ReceiptBody {
            program_id: vault.program_id,
            stream_config: vault.stream(stream_id),
            stream_id,
            acknowledged_total,
            deliveries_digest,
        };
        let signature = receipt_key.sign(&body.digest()).0;
        Self { body, signature }
    }

    /// True when the signature verifies under `receipt_key`.
    #[must_use]
    pub fn verify(&self, receipt_key: &[u8; 32]) -> bool {
        verify_bip340(receipt_key, &self.body.digest(), &self.signature)
    }
}
