//! Typed events the program emits (Borsh-encoded in `ProgramOutput::events`). Every stream event
//! names owner, vault, stream and provider so observers can filter without reading accounts.

use borsh::{BorshDeserialize, BorshSerialize};
use paystreams_lez_core::AccountId;
use serde::{Deserialize, Serialize};

use crate::state::StreamState;

/// Which party closed a stream.
#[derive(Clone, Copy, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Closer {
    Owner,
    Provider,
}

/// Identifies a stream in events.
#[derive(Clone, Copy, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct StreamRef {
    pub owner: AccountId,
    pub vault_id: u64,
    pub stream_id: u64,
    pub provider: AccountId,
    pub stream_config: AccountId,
}

/// One program event.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    VaultInitialized {
        owner: AccountId,
        vault_id: u64,
        vault_config: AccountId,
        token_id: String,
    },
    Deposited {
        owner: AccountId,
        vault_id: u64,
        #[serde(with = "paystreams_lez_core::account::decimal_u128")]
        amount: u128,
    },
    Withdrawn {
        owner: AccountId,
        vault_id: u64,
        to: AccountId,
        #[serde(with = "paystreams_lez_core::account::decimal_u128")]
        amount: u128,
    },
    StreamCreated {
        stream: StreamRef,
        rate: u64,
        #[serde(with = "paystreams_lez_core::account::decimal_u128")]
        allocation: u128,
        at: u64,
    },
    /// A fold found the stream depleted or past its auto-pause time and paused it.
    StreamAutoPaused {
        stream: StreamRef,
        at: u64,
        depleted: bool,
    },
    StreamPaused {
        stream: StreamRef,
        at: u64,
    },
    StreamResumed {
        stream: StreamRef,
        at: u64,
    },
    StreamToppedUp {
        stream: StreamRef,
        #[serde(with = "paystreams_lez_core::account::decimal_u128")]
        amount: u128,
        #[serde(with = "paystreams_lez_core::account::decimal_u128")]
        allocation: u128,
        at: u64,
    },
    ActivationFeeCharged {
        stream: StreamRef,
        #[serde(with = "paystreams_lez_core::account::decimal_u128")]
        fee: u128,
        at: u64,
    },
    StreamClosed {
        stream: StreamRef,
        by: Closer,
        #[serde(with = "paystreams_lez_core::account::decimal_u128")]
        released: u128,
        #[serde(with = "paystreams_lez_core::account::decimal_u128")]
        accrued: u128,
        at: u64,
    },
    Claimed {
        stream: StreamRef,
        #[serde(with = "paystreams_lez_core::account::decimal_u128")]
        amount: u128,
        /// Where the payout went (the provider, or the provider's token holding).
        to: AccountId,
        state: StreamState,
        at: u64,
    },
}

impl Event {
    /// The snake-case name of the event's variant (`stream_created`, `claimed`, …), as JSON
    /// output and cost tables name it.
    #[must_use]
    pub const fn kind(&self) -> &'static str {
        match self {
            Self::VaultInitialized { .. } => "vault_initialized",
            Self::Deposited { .. } => "deposited",
            Self::Withdrawn { .. } => "withdrawn",
            Self::StreamCreated { .. } => "stream_created",
            Self::StreamAutoPaused { .. } => "stream_auto_paused",
            Self::StreamPaused { .. } => "stream_paused",
            Self::StreamResumed { .. } => "stream_resumed",
            Self::StreamToppedUp { .. } => "stream_topped_up",
            Self::ActivationFeeCharged { .. } => "activation_fee_charged",
            Self::StreamClosed { .. } => "stream_closed",
            Self::Claimed { .. } => "claimed",
        }
    }

    /// The stream this event concerns, if any.
    #[must_use]
    pub const fn stream(&self) -> Option<&StreamRef> {
        match self {
            Self::VaultInitialized { .. } | Self::Deposited { .. } | Self::Withdrawn { .. } => None,
            Self::StreamCreated { stream, .. }
            | Self::StreamAutoPaused { stream, .. }
            | Self::StreamPaused { stream, .. }
            | Self::StreamResumed { stream, .. }
            | Self::StreamToppedUp { stream, .. }
            | Self::ActivationFeeCharged { stream, .. }
            | Self::StreamClosed { stream, .. }
            | Self::Claimed { stream, .. } => Some(stream),
        }
    }

    /// The vault owner and vault id this event concerns.
    #[must_use]
    pub const fn vault(&self) -> (AccountId, u64) {
        match self {
            Self::VaultInitialized { owner, vault_id, .. }
            | Self::Deposited { owner, vault_id, .. }
            | Self::Withdrawn { owner, vault_id, .. } => (*owner, *vault_id),
            Self::StreamCreated { stream, .. }
            | Self::StreamAutoPaused { stream, .. }
            | Self::StreamPaused { stream, .. }
            | Self::StreamResumed { stream, .. }
            | Self::StreamToppedUp { stream, .. }
            | Self::ActivationFeeCharged { stream, .. }
            | Self::StreamClosed { stream, .. }
            | Self::Claimed { stream, .. } => (stream.owner, stream.vault_id),
        }
    }
}
