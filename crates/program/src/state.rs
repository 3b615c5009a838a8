//! Account layouts (Borsh). A stream with no extension is byte-identical to the reference
//! layout: `VaultConfig` 98 bytes, `VaultHolding` 1 byte, `StreamConfig` 90 bytes, version 1.
//! A stream with extensions uses layout version 2: the same 90-byte prefix (with version byte 2)
//! followed by [`StreamExtensions`]; a version-1 reader rejects it on the version byte and on
//! the length.

use borsh::{BorshDeserialize, BorshSerialize};
use paystreams_lez_core::AccountId;
use serde::{Deserialize, Serialize};

use crate::error::StreamError;

/// Layout version of vault config, vault holding and plain streams.
pub const DEFAULT_VERSION: u8 = 1;
/// Layout version of a stream carrying extension settings (same vault family as version 1).
pub const STREAM_VERSION_EXTENDED: u8 = 2;
/// Token id of the chain's native token.
pub const NATIVE_TOKEN_ID: [u8; 32] = [0; 32];
/// Encoded size of [`VaultConfig`].
pub const VAULT_CONFIG_LEN: usize = 98;
/// Encoded size of [`VaultHolding`].
pub const VAULT_HOLDING_LEN: usize = 1;
/// Encoded size of a version-1 [`StreamConfig`].
pub const STREAM_CONFIG_V1_LEN: usize = 90;

/// Vault privacy intent, fixed at initialisation.
#[derive(Clone, Copy, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[borsh(use_discriminant = true)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum VaultPrivacyTier {
    Public = 0,
    PseudonymousFunding = 1,
}

/// Per-vault configuration, stored in the vault-config PDA.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct VaultConfig {
    pub version: u8,
    pub owner: AccountId,
    pub vault_id: u64,
    pub next_stream_id: u64,
    pub total_allocated: u128,
    pub privacy_tier: VaultPrivacyTier,
    pub token_id: [u8; 32],
}

impl VaultConfig {
    /// True when the vault holds the chain's native token.
    #[must_use]
    pub fn is_native(&self) -> bool {
        self.token_id == NATIVE_TOKEN_ID
    }
}

/// Data of a native vault's holding PDA: only a version byte; funds are its native balance.
#[derive(Clone, Copy, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct VaultHolding {
    pub version: u8,
}

/// Stream lifecycle state.
#[derive(Clone, Copy, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[borsh(use_discriminant = true)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum StreamState {
    Active = 0,
    Paused = 1,
    Closed = 2,
}

/// Extension settings chosen at stream creation, plus the bookkeeping they need.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, BorshSerialize, BorshDeserialize)]
pub struct StreamExtensions {
    /// Auto-pause: seconds of ACTIVE time after creation, resume or top-up before the stream
    /// pauses itself at fold time. 0 = off.
    pub auto_pause_after: u64,
    /// When the auto-pause duration last (re)started.
    pub auto_pause_anchor: u64,
    /// Activation fee charged (moved from unaccrued to accrued) by every operation that makes the
    /// stream ACTIVE. 0 = off.
    pub activation_fee: u128,
    /// Provider close pays all accrued funds to the provider in the same operation.
    pub auto_claim_on_provider_close: bool,
    /// Delivery receipts: claims must carry a receipt signed by this x-only key.
    pub receipt_key: Option<[u8; 32]>,
    /// Cumulative amount already paid under receipts.
    pub receipt_paid: u128,
}

impl StreamExtensions {
    /// True when no extension is enabled (such a stream is stored as version 1).
    #[must_use]
    pub fn is_plain(&self) -> bool {
        self.auto_pause_after == 0
            && self.activation_fee == 0
            && !self.auto_claim_on_provider_close
            && self.receipt_key.is_none()
    }
}

/// Per-stream state, stored in the stream-config PDA.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct StreamConfig {
    pub version: u8,
    pub stream_id: u64,
    pub provider: AccountId,
    pub rate: u64,
    pub allocation: u128,
    pub accrued: u128,
    pub state: StreamState,
    pub accrued_as_of: u64,
    /// Present exactly when `version == STREAM_VERSION_EXTENDED`.
    pub extensions: Option<StreamExtensions>,
}

impl StreamConfig {
    /// `allocation - accrued` (0 for corrupt state where accrued exceeds allocation).
    #[must_use]
    pub const fn unaccrued(&self) -> u128 {
        self.allocation.saturating_sub(self.accrued)
    }

    /// The extension settings, all off for a version-1 stream.
    #[must_use]
    pub fn extensions_or_default(&self) -> StreamExtensions {
        self.extensions.unwrap_or_default()
    }

    /// Checks the stored invariants every operation relies on (reference order).
    ///
    /// # Errors
    /// 6014 when accrued exceeds allocation or is non-zero on an empty allocation; 6008 for an
    /// active stream without allocation; 6007 for a funded stream with rate zero.
    pub fn validate_invariants(&self) -> Result<(), StreamError> {
        if self.accrued > self.allocation {
            return Err(StreamError::StreamExceedsAllocation);
        }
        if self.allocation == 0 {
            if self.accrued != 0 {
                return Err(StreamError::StreamExceedsAllocation);
            }
            if self.state == StreamState::Active {
                return Err(StreamError::ZeroStreamAllocation);
            }
            return Ok(());
        }
        if self.rate == 0 {
            return Err(StreamError::ZeroStreamRate);
        }
        Ok(())
    }
}

impl BorshSerialize for StreamConfig {
    fn serialize<W: std::io::Write>(&self, writer: &mut W) -> std::io::Result<()> {
        self.version.serialize(writer)?;
        self.stream_id.serialize(writer)?;
        self.provider.serialize(writer)?;
        self.rate.serialize(writer)?;
        self.allocation.serialize(writer)?;
        self.accrued.serialize(writer)?;
        self.state.serialize(writer)?;
        self.accrued_as_of.serialize(writer)?;
        match (self.version, &self.extensions) {
            (DEFAULT_VERSION, None) => Ok(()),
            (STREAM_VERSION_EXTENDED, Some(extensions)) => extensions.serialize(writer),
            _ => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "stream version and extension presence disagree",
            )),
        }
    }
}

impl BorshDeserialize for StreamConfig {
    fn deserialize_reader<R: std::io::Read>(reader: &mut R) -> std::io::Result<Self> {
        let version = u8::deserialize_reader(reader)?;
        if version != DEFAULT_VERSION && version != STREAM_VERSION_EXTENDED {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("unknown stream layout version {version}"),
            ));
        }
        let stream_id = u64::deserialize_reader(reader)?;
        let provider = AccountId::deserialize_reader(reader)?;
        let rate = u64::deserialize_reader(reader)?;
        let allocation = u128::deserialize_reader(reader)?;
        let accrued = u128::deserialize_reader(reader)?;
        let state = StreamState::deserialize_reader(reader)?;
        let accrued_as_of = u64::deserialize_reader(reader)?;
        let extensions = if version == STREAM_VERSION_EXTENDED {
            Some(StreamExtensions::deserialize_reader(reader)?)
        } else {
            None
        };
        Ok(Self { version, stream_id, provider, rate, allocation, accrued, state, accrued_as_of, extensions })
    }
}

/// Encodes any account layout.
#[must_use]
pub fn encode<T: BorshSerialize>(value: &T) -> Vec<u8> {
    borsh::to_vec(value).unwrap_or_default()
}

/// Decodes an account layout, requiring every byte to be consumed.
///
/// # Errors
/// [`StreamError::InvalidAccountData`] on any malformed or trailing byte.
pub fn decode<T: BorshDeserialize>(bytes: &[u8]) -> Result<T, StreamError> {
    T::try_from_slice(bytes).map_err(|_| StreamError::InvalidAccountData)
}
