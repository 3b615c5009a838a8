//! Submitting claims: the engine decides when, a [`ClaimSubmitter`] does it.

use std::future::Future;

use paystreams_lez_core::{AccountId, ProgramId, crypto::SecretKey};
use paystreams_program::{
    client::{self, VaultRef},
    receipt::DeliveryReceipt,
};
use paystreams_rpc::chain_view::{ChainError, ChainWriter, SubmitOutcome};
use tracing::warn;

use crate::session::StreamKey;

/// Submits a provider claim for one stream.
pub trait ClaimSubmitter: Send + Sync {
    /// `true` when the claim was included. `receipt`: the latest delivery receipt kept for a
    /// stream with the delivery-receipts extension (`SessionStore::latest_receipt`).
    fn claim(
        &self,
        stream: StreamKey,
        token_id: [u8; 32],
        receipt: Option<DeliveryReceipt>,
    ) -> impl Future<Output = Result<bool, ChainError>> + Send;
}

/// Claims through a [`ChainWriter`], signed by the provider key.
#[derive(Debug)]
pub struct ChainClaimer<W> {
    writer: W,
    key: SecretKey,
    program_id: ProgramId,
    /// Token vaults pay into this holding of the provider (native vaults pay the provider).
    payout_holding: Option<AccountId>,
}

impl<W: ChainWriter> ChainClaimer<W> {
    #[must_use]
    pub const fn new(writer: W, key: SecretKey, program_id: ProgramId, payout_holding: Option<AccountId>) -> Self {
        Self { writer, key, program_id, payout_holding }
    }
}

impl<W: ChainWriter> ClaimSubmitter for ChainClaimer<W> {
    async fn claim(
        &self,
        stream: StreamKey,
        token_id: [u8; 32],
        receipt: Option<DeliveryReceipt>,
    ) -> Result<bool, ChainError> {
        let vault = VaultRef {
            program_id: self.program_id,
            owner: stream.vault.owner_id(),
            vault_id: stream.vault.vault_id,
            token_id,
        };
        let payout = if vault.is_native() { None } else { self.payout_holding };
        let call = client::claim(&vault, stream.stream_id, self.key.account_id(), payout, receipt);
        match self.writer.submit(&call, &[&self.key]).await? {
            SubmitOutcome::Included { .. } => Ok(true),
            SubmitOutcome::Failed { code, name } => {
                warn!(?stream, code, name, "claim refused");
                Ok(false)
            }
        }
    }
}

/// A submitter that never claims (for providers that claim out of band).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoClaims;

impl ClaimSubmitter for NoClaims {
    async fn claim(
        &self,
        _stream: StreamKey,
        _token_id: [u8; 32],
        _receipt: Option<DeliveryReceipt>,
    ) -> Result<bool, ChainError> {
        Ok(false)
    }
}
