//! Service sessions: the provider's record of one accepted proposal.

use std::fmt;

use borsh::{BorshDeserialize, BorshSerialize};
use paystreams_lez_core::AccountId;

/// A session's id: the vault-owner authorization digest of the accepted proposal. Two proposals
/// with the same content share it, so it also identifies "an already used proposal".
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize)]
pub struct SessionId(pub [u8; 32]);

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let head = self.0.get(..6).unwrap_or_default();
        write!(f, "SessionId({}…)", hex::encode(head))
    }
}

/// A vault: its owner account and id.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, BorshSerialize, BorshDeserialize)]
pub struct VaultKey {
    pub owner: [u8; 32],
    pub vault_id: u64,
}

impl VaultKey {
    #[must_use]
    pub const fn owner_id(&self) -> AccountId {
        AccountId(self.owner)
    }

    /// Storage key: owner, then vault id big-endian (sorted by vault).
    #[must_use]
    pub fn to_key(&self) -> Vec<u8> {
        let mut key = self.owner.to_vec();
        key.extend(self.vault_id.to_be_bytes());
        key
    }
}

/// A stream: its vault and id.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, BorshSerialize, BorshDeserialize)]
pub struct StreamKey {
    pub vault: VaultKey,
    pub stream_id: u64,
}

impl StreamKey {
    #[must_use]
    pub fn to_key(&self) -> Vec<u8> {
        let mut key = self.vault.to_key();
        key.extend(self.stream_id.to_be_bytes());
        key
    }
}

/// The accepted `StreamParams`.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct AcceptedParams {
    pub service_id: String,
    pub rate: u64,
    pub allocation: u64,
    pub create_stream_deadline: u64,
}

/// The policy in force at acceptance, as it applies to this session's token (the session's
/// `token_id`). Later checks use this, never the provider's current policy.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct PinnedPolicy {
    pub max_create_stream_deadline_delay: u64,
    pub first_response_cap: u64,
    pub min_rate: u64,
    pub min_allocation: u64,
    pub deferred_first_proof: bool,
}

/// Why a session ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub enum EndReason {
    /// `create_stream_deadline` passed without a first proof (or, deferred, without a matching
    /// stream). The spec ends the session silently.
    DeadlineMissed,
    /// Vault `unallocated` fell below the accepted allocation while pending (PERMANENT).
    VaultDrained,
    /// The bound stream was closed (PERMANENT).
    StreamClosed,
    /// The first response would exceed the first-response cap; the session was released.
    FirstResponseTooLarge,
    /// The provider ended it for abuse (PERMANENT).
    Abuse,
}

impl EndReason {
    /// Whether the user is owed a PERMANENT `ServiceTermination`: every end but a missed
    /// deadline (which the spec ends silently).
    #[must_use]
    pub const fn is_termination(self) -> bool {
        matches!(self, Self::VaultDrained | Self::StreamClosed | Self::FirstResponseTooLarge | Self::Abuse)
    }

    #[must_use]
    pub const fn describe(self) -> &'static str {
        match self {
            Self::DeadlineMissed => "create_stream_deadline passed without a matching stream proof",
            Self::VaultDrained => "vault unallocated fell below the accepted allocation while the proposal was pending",
            Self::StreamClosed => "the session's stream was closed",
            Self::FirstResponseTooLarge => "the first response would exceed the first-response cap",
            Self::Abuse => "the provider ended the session for abuse",
        }
    }
}

/// Where a session stands.
#[derive(Clone, Copy, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub enum SessionState {
    /// Accepted; no stream bound yet.
    Pending,
    /// The first valid proof bound this stream.
    Bound { stream_id: u64 },
    /// Over (kept for a while to answer precisely, then purged).
    Ended { reason: EndReason, at: u64 },
}

/// One accepted proposal, everything the spec requires to be recorded plus bookkeeping. The
/// provider id is not kept: a proposal naming another provider is never accepted.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct Session {
    pub id: SessionId,
    pub vault: VaultKey,
    pub owner_public_key: [u8; 32],
    /// The vault's token (the pinned policy is this token's).
    pub token_id: [u8; 32],
    pub params: AcceptedParams,
    pub policy: PinnedPolicy,
    /// The session key (`StreamProposal.public_key`).
    pub session_key: [u8; 32],
    /// Chain time of acceptance.
    pub accepted_at: u64,
    /// The vault's `next_stream_id` at acceptance: where the matching stream most likely lands.
    pub predicted_stream_id: u64,
    pub state: SessionState,
    /// A stream for us in this vault seen created (id, chain time) while pending, matching the
    /// accepted params. Used by the deferred extension and to stop the unallocated re-check.
    pub matching_stream: Option<(u64, u64)>,
    /// Chain time until which service is paused by a TEMPORARY termination (0 = not paused).
    pub suspended_until: u64,
}

impl Session {
    #[must_use]
    pub const fn is_pending(&self) -> bool {
        matches!(self.state, SessionState::Pending)
    }

    #[must_use]
    pub const fn bound_stream(&self) -> Option<u64> {
        match self.state {
            SessionState::Bound { stream_id } => Some(stream_id),
            _ => None,
        }
    }

    #[must_use]
    pub const fn ended(&self) -> Option<EndReason> {
        match self.state {
            SessionState::Ended { reason, .. } => Some(reason),
            _ => None,
        }
    }

    /// A matching stream was created by the deadline (as observed from chain events).
    #[must_use]
    pub fn created_in_time(&self) -> bool {
        self.matching_stream.is_some_and(|(_, at)| at <= self.params.create_stream_deadline)
    }

    /// Whether a pending session has run out of time at chain time `now`: past the deadline,
    /// unless the deferred extension applies and a matching stream was created in time.
    #[must_use]
    pub fn pending_expired(&self, now: u64) -> bool {
        self.is_pending()
            && now > self.params.create_stream_deadline
            && !(self.policy.deferred_first_proof && self.created_in_time())
    }

    /// The stream key of a bound session.
    #[must_use]
    pub fn stream_key(&self) -> Option<StreamKey> {
        self.bound_stream().map(|stream_id| StreamKey { vault: self.vault, stream_id })
    }
}
