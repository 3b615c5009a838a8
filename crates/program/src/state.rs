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

/// How events and views name a token: "native" or the token definition id in base58.
#[must_use]
pub fn token_label(token_id: &[u8; 32]) -> String {
    if *token_id == NATIVE_TOKEN_ID {
        "native".to_owned()
    } else {
        paystreams_lez_core::AccountId(*token_id).to_string()
    }
}
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
        BorshSerialize::serialize(&self.version, writer)?;
        BorshSerialize::serialize(&self.stream_id, writer)?;
        BorshSerialize::serialize(&self.provider, writer)?;
        BorshSerialize::serialize(&self.rate, writer)?;
        BorshSerialize::serialize(&self.allocation, writer)?;
        BorshSerialize::serialize(&self.accrued, writer)?;
        BorshSerialize::serialize(&self.state, writer)?;
        BorshSerialize::serialize(&self.accrued_as_of, writer)?;
        match (self.version, &self.extensions) {
            (DEFAULT_VERSION, None) => Ok(()),
            (STREAM_VERSION_EXTENDED, Some(extensions)) => BorshSerialize::serialize(extensions, writer),
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
        let extensions =
            if version == STREAM_VERSION_EXTENDED { Some(StreamExtensions::deserialize_reader(reader)?) } else { None };
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

#[cfg(test)]
mod tests {
    use super::*;

    fn vault_config() -> VaultConfig {
        VaultConfig {
            version: DEFAULT_VERSION,
            owner: AccountId([43; 32]),
            vault_id: 34,
            next_stream_id: 2,
            total_allocated: 300,
            privacy_tier: VaultPrivacyTier::Public,
            token_id: NATIVE_TOKEN_ID,
        }
    }

    fn stream(extensions: Option<StreamExtensions>) -> StreamConfig {
        StreamConfig {
            version: if extensions.is_some() { STREAM_VERSION_EXTENDED } else { DEFAULT_VERSION },
            stream_id: 7,
            provider: AccountId([5; 32]),
            rate: 10,
            allocation: 200,
            accrued: 0,
            state: StreamState::Active,
            accrued_as_of: 12_345,
            extensions,
        }
    }

    #[test]
    fn reference_sizes_are_exact() {
        assert_eq!(encode(&vault_config()).len(), VAULT_CONFIG_LEN);
        assert_eq!(encode(&VaultHolding { version: 1 }).len(), VAULT_HOLDING_LEN);
        assert_eq!(encode(&stream(None)).len(), STREAM_CONFIG_V1_LEN);
    }

    #[test]
    fn reference_offsets_hold() {
        let bytes = encode(&stream(None));
        // state byte at offset 81, accrued_as_of at 82 (reference layout).
        assert_eq!(bytes.get(81), Some(&0));
        assert_eq!(bytes.get(82..90), Some(&12_345_u64.to_le_bytes()[..]));
        let vault = encode(&vault_config());
        assert_eq!(vault.get(49..65), Some(&300_u128.to_le_bytes()[..]));
        assert_eq!(vault.get(65), Some(&0));
    }

    #[test]
    fn snapshots_of_every_layout() {
        insta::assert_snapshot!("vault_config", hex::encode(encode(&vault_config())));
        let mut token_vault = vault_config();
        token_vault.token_id = [9; 32];
        token_vault.privacy_tier = VaultPrivacyTier::PseudonymousFunding;
        insta::assert_snapshot!("vault_config_token_pf", hex::encode(encode(&token_vault)));
        insta::assert_snapshot!("vault_holding", hex::encode(encode(&VaultHolding { version: 1 })));
        insta::assert_snapshot!("stream_config_v1", hex::encode(encode(&stream(None))));
        let extensions = StreamExtensions {
            auto_pause_after: 3600,
            auto_pause_anchor: 12_345,
            activation_fee: 25,
            auto_claim_on_provider_close: true,
            receipt_key: Some([3; 32]),
            receipt_paid: 40,
        };
        insta::assert_snapshot!("stream_config_v2", hex::encode(encode(&stream(Some(extensions)))));
    }

    #[test]
    fn decoding_is_exact() {
        for bytes in [encode(&vault_config()), encode(&stream(None))] {
            let short = bytes.get(..bytes.len() - 1).unwrap_or_default();
            let mut long = bytes.clone();
            long.push(0);
            assert!(decode::<VaultConfig>(short).is_err() && decode::<StreamConfig>(short).is_err());
            assert!(decode::<VaultConfig>(&long).is_err() && decode::<StreamConfig>(&long).is_err());
        }
        let mut bad_state = encode(&stream(None));
        if let Some(byte) = bad_state.get_mut(81) {
            *byte = 3;
        }
        assert_eq!(decode::<StreamConfig>(&bad_state), Err(crate::StreamError::InvalidAccountData));
    }

    /// A reader of the version-1 layout (fixed 90 bytes, version byte 1) refuses an extended
    /// stream: the version byte is 2 and the length is longer.
    #[test]
    fn version_one_reader_rejects_extended_streams() {
        let extended = encode(&stream(Some(StreamExtensions { auto_pause_after: 1, ..StreamExtensions::default() })));
        assert_eq!(extended.first(), Some(&STREAM_VERSION_EXTENDED));
        assert!(extended.len() > STREAM_CONFIG_V1_LEN);
        let mut as_v1 = extended.clone();
        as_v1.truncate(STREAM_CONFIG_V1_LEN);
        // Even cut to 90 bytes, version 2 without its extension block does not decode.
        assert!(decode::<StreamConfig>(&as_v1).is_err());
        let round = decode::<StreamConfig>(&extended).expect("decodes");
        assert_eq!(round.extensions.map(|e| e.auto_pause_after), Some(1));
    }

    #[test]
    fn version_and_extension_presence_must_agree_to_encode() {
        let mut inconsistent = stream(None);
        inconsistent.version = STREAM_VERSION_EXTENDED;
        assert!(borsh::to_vec(&inconsistent).is_err());
    }
}
