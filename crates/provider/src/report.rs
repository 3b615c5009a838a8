//! A JSON-friendly snapshot of the provider's sessions, for operators: the Store provider's
//! admin endpoint serves it and the dashboard renders it. Amounts are decimal strings and ids
//! are base58 (accounts) or hex (session ids, tokens), as everywhere else in paystreams.

use serde::{Deserialize, Serialize};

use crate::{
    session::{Session, SessionState},
    store::{SessionStore, StoreError},
};

/// Most sessions one report lists (newest acceptance first); the counts cover all of them.
pub const REPORT_SESSIONS_MAX: usize = 1_000;

/// One session as an operator sees it.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct SessionReport {
    /// Hex of the session id (the accepted proposal's authorization digest).
    pub id: String,
    /// `pending`, `bound` or `ended`.
    pub state: String,
    /// Why it ended, in words (ended sessions only).
    pub end_reason: Option<String>,
    /// Chain time it ended (ended sessions only).
    pub ended_at: Option<u64>,
    /// Vault owner account, base58.
    pub vault_owner: String,
    pub vault_id: u64,
    /// The bound stream (bound sessions only).
    pub stream_id: Option<u64>,
    /// Hex token id (all zeros for the native token).
    pub token_id: String,
    pub service_id: String,
    /// Accepted rate per second, decimal string.
    pub rate: String,
    /// Accepted allocation, decimal string.
    pub allocation: String,
    /// Chain time of acceptance.
    pub accepted_at: u64,
    /// Chain time by which the stream had to be created and first used.
    pub create_stream_deadline: u64,
    /// Chain time until which service is paused by a TEMPORARY termination (0 = not paused).
    pub suspended_until: u64,
}

impl SessionReport {
    #[must_use]
    pub fn from_session(session: &Session) -> Self {
        let (state, end_reason, ended_at, stream_id) = match session.state {
            SessionState::Pending => ("pending", None, None, None),
            SessionState::Bound { stream_id } => ("bound", None, None, Some(stream_id)),
            SessionState::Ended { reason, at } => ("ended", Some(reason.describe().to_owned()), Some(at), None),
        };
        Self {
            id: hex::encode(session.id.0),
            state: state.to_owned(),
            end_reason,
            ended_at,
            vault_owner: session.vault.owner_id().to_string(),
            vault_id: session.vault.vault_id,
            stream_id,
            token_id: hex::encode(session.token_id),
            service_id: session.params.service_id.clone(),
            rate: session.params.rate.to_string(),
            allocation: session.params.allocation.to_string(),
            accepted_at: session.accepted_at,
            create_stream_deadline: session.params.create_stream_deadline,
            suspended_until: session.suspended_until,
        }
    }
}

/// Every session the provider holds, with counts by state.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ProviderReport {
    /// The provider account, base58.
    pub provider_id: String,
    pub pending: u64,
    pub bound: u64,
    pub ended: u64,
    /// Streams the provider may still have funds to claim from: `[owner base58, vault id, stream id]`.
    pub claimable: Vec<(String, u64, u64)>,
    /// At most [`REPORT_SESSIONS_MAX`], newest acceptance first.
    pub sessions: Vec<SessionReport>,
}

impl ProviderReport {
    /// Reads the store.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn collect<S: SessionStore>(provider_id: [u8; 32], store: &S) -> Result<Self, StoreError> {
        let mut sessions = store.sessions().await?;
        sessions.sort_by(|a, b| b.accepted_at.cmp(&a.accepted_at).then(a.id.cmp(&b.id)));
        let (mut pending, mut bound, mut ended) = (0u64, 0u64, 0u64);
        for s in &sessions {
            let counter = match s.state {
                SessionState::Pending => &mut pending,
                SessionState::Bound { .. } => &mut bound,
                SessionState::Ended { .. } => &mut ended,
            };
            *counter = counter.saturating_add(1);
        }
        let claimable = store
            .claimables()
            .await?
            .into_iter()
            .map(|(key, _)| (key.vault.owner_id().to_string(), key.vault.vault_id, key.stream_id))
            .collect();
        Ok(Self {
            provider_id: paystreams_lez_core::AccountId(provider_id).to_string(),
            pending,
            bound,
            ended,
            claimable,
            sessions: sessions.iter().take(REPORT_SESSIONS_MAX).map(SessionReport::from_session).collect(),
        })
    }
}
