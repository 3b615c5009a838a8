//! Submitting claims: the engine decides when, a [`ClaimSubmitter`] does it, several at once.

use std::future::Future;

use paystreams_lez_core::{AccountId, ProgramId, crypto::SecretKey};
use paystreams_program::{
    client::{self, VaultRef},
    receipt::DeliveryReceipt,
};
use paystreams_rpc::chain_view::{ChainError, ChainWriter, SubmitOutcome};
use tracing::warn;

use crate::session::StreamKey;

/// One claim: the stream, its vault's token, and the latest delivery receipt when the stream
/// carries the receipt extension.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Claim {
    pub stream: StreamKey,
    pub token_id: [u8; 32],
    pub receipt: Option<DeliveryReceipt>,
}

/// Submits provider claims.
pub trait ClaimSubmitter: Send + Sync {
    /// Submits every claim before waiting for any inclusion; one answer per claim, in order:
    /// `true` when it was included (a claim not sent or refused is `false` and is retried by
    /// a later tick).
    fn claim_batch(&self, claims: &[Claim]) -> impl Future<Output = Result<Vec<bool>, ChainError>> + Send;
}

/// Claims through a [`ChainWriter`], signed by the provider key.
#[derive(Debug)]
pub struct ChainClaimer<W> {
    writer: W,
    key: SecretKey,
    program_id: ProgramId,
    /// Token vaults pay into this holding of the provider (native vaults pay the provider).
    payout_holding: Option<AccountId>,
    /// One batch at a time: every batch signs with the provider key's next nonces, so two
    /// batches sent at once (the follower's claims and a shutdown's, say) would reuse them.
    submitting: tokio::sync::Mutex<()>,
}

impl<W: ChainWriter> ChainClaimer<W> {
    #[must_use]
    pub const fn new(writer: W, key: SecretKey, program_id: ProgramId, payout_holding: Option<AccountId>) -> Self {
        Self { writer, key, program_id, payout_holding, submitting: tokio::sync::Mutex::const_new(()) }
    }

    fn call(&self, claim: &Claim) -> client::Call {
        let vault = VaultRef {
            program_id: self.program_id,
            owner: claim.stream.vault.owner_id(),
            vault_id: claim.stream.vault.vault_id,
            token_id: claim.token_id,
        };
        let payout = if vault.is_native() { None } else { self.payout_holding };
        client::claim(&vault, claim.stream.stream_id, self.key.account_id(), payout, claim.receipt)
    }
}

impl<W: ChainWriter> ClaimSubmitter for ChainClaimer<W> {
    async fn claim_batch(&self, claims: &[Claim]) -> Result<Vec<bool>, ChainError> {
        let calls: Vec<client::Call> = claims.iter().map(|c| self.call(c)).collect();
        let outcomes = {
            let _one_at_a_time = self.submitting.lock().await;
            self.writer.submit_batch(&calls, &[&self.key]).await?
        };
        let mut included = vec![false; claims.len()];
        for ((slot, outcome), claim) in included.iter_mut().zip(&outcomes).zip(claims) {
            match outcome {
                SubmitOutcome::Included { .. } => *slot = true,
                SubmitOutcome::Failed { code, name } => warn!(stream = ?claim.stream, code, name, "claim refused"),
            }
        }
        Ok(included)
    }
}

/// A submitter that never claims (for providers that claim out of band).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoClaims;

impl ClaimSubmitter for NoClaims {
    async fn claim_batch(&self, claims: &[Claim]) -> Result<Vec<bool>, ChainError> {
        Ok(vec![false; claims.len()])
    }
}
