//! Account and program identifiers with LEZ's text encodings (base58 ids, hex program ids).

use std::{fmt, str::FromStr};

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{domain_prefix, sha256};

/// Domain prefix of public (key-derived) account ids, as LEZ's testnet runs it.
pub const PUBLIC_ACCOUNT_ID_PREFIX: [u8; 32] = domain_prefix("/LEE/v0.3/AccountId/Public/");

/// A 32-byte account identifier. Base58 in text, raw bytes in Borsh.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, BorshSerialize, BorshDeserialize)]
pub struct AccountId(pub [u8; 32]);

impl AccountId {
    /// The public account id of an x-only BIP-340 public key:
    /// `SHA-256("/LEE/v0.3/AccountId/Public/" padded to 32 || pk)`.
    #[must_use]
    pub fn from_public_key(x_only_public_key: &[u8; 32]) -> Self {
        Self(sha256(&[&PUBLIC_ACCOUNT_ID_PREFIX, x_only_public_key]))
    }

    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&bs58::encode(self.0).into_string())
    }
}

impl fmt::Debug for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccountId({self})")
    }
}

/// Why a textual identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdParseError {
    #[error("not valid base58: {0}")]
    Base58(String),
    #[error("not valid hex: {0}")]
    Hex(String),
    #[error("expected 32 bytes, got {0}")]
    Length(usize),
}

impl FromStr for AccountId {
    type Err = IdParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = bs58::decode(s.trim()).into_vec().map_err(|e| IdParseError::Base58(e.to_string()))?;
        let len = bytes.len();
        let array: [u8; 32] = bytes.try_into().map_err(|_| IdParseError::Length(len))?;
        Ok(Self(array))
    }
}

impl Serialize for AccountId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for AccountId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <String as Deserialize>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A program identifier: the RISC Zero image id `[u32; 8]`. Its canonical bytes are the words in
/// little-endian order, which is also its hex text form.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, BorshSerialize, BorshDeserialize)]
pub struct ProgramId(pub [u32; 8]);

impl ProgramId {
    /// The default (unclaimed) owner.
    pub const DEFAULT: Self = Self([0; 8]);

    /// The 32 little-endian bytes used in PDA derivation and in hex text.
    #[must_use]
    pub fn to_bytes(&self) -> [u8; 32] {
        let mut out = [0_u8; 32];
        for (chunk, word) in out.chunks_exact_mut(4).zip(self.0) {
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        out
    }

    #[must_use]
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        let mut words = [0_u32; 8];
        for (word, chunk) in words.iter_mut().zip(bytes.chunks_exact(4)) {
            let mut four = [0_u8; 4];
            four.copy_from_slice(chunk);
            *word = u32::from_le_bytes(four);
        }
        Self(words)
    }

    /// The id this implementation assigns to a builtin or locally deployed program:
    /// `SHA-256("/paystreams/v1/ProgramId/" padded to 32 || name)`. On LEZ proper the id is the
    /// guest's image id; every function that derives addresses takes the id as an argument.
    #[must_use]
    pub fn from_name(name: &str) -> Self {
        const PREFIX: [u8; 32] = domain_prefix("/paystreams/v1/ProgramId/");
        Self::from_bytes(&sha256(&[&PREFIX, name.as_bytes()]))
    }
}

impl fmt::Display for ProgramId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.to_bytes()))
    }
}

impl fmt::Debug for ProgramId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProgramId({self})")
    }
}

impl FromStr for ProgramId {
    type Err = IdParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let s = s.strip_prefix("0x").unwrap_or(s);
        let bytes = hex::decode(s).map_err(|e| IdParseError::Hex(e.to_string()))?;
        let len = bytes.len();
        let array: [u8; 32] = bytes.try_into().map_err(|_| IdParseError::Length(len))?;
        Ok(Self::from_bytes(&array))
    }
}

impl Serialize for ProgramId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ProgramId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <String as Deserialize>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_id_hex_round_trips_through_little_endian_words() {
        let text = "9d88f2e7498ae25caa3a5d829a3d1ed39f08673ba90987333074b965a81b90f8";
        let id: ProgramId = text.parse().expect("valid hex");
        assert_eq!(id.0[0], 0xe7f2_889d);
        assert_eq!(id.to_string(), text);
    }

    #[test]
    fn account_id_base58_round_trips_and_rejects_bad_lengths() {
        let id: AccountId = "DkT97NZPog2attaFURoMUFU5m996QtDnsS53PSnx41oG".parse().expect("valid");
        assert_eq!(id.to_string(), "DkT97NZPog2attaFURoMUFU5m996QtDnsS53PSnx41oG");
        assert_eq!("3mJr7AoUXx2Wqd".parse::<AccountId>(), Err(IdParseError::Length(10)));
        assert!(matches!("0OIl".parse::<AccountId>(), Err(IdParseError::Base58(_))));
    }

    /// The public account id of the secp256k1 generator's x-only key (secret key 1), with LEZ's
    /// v0.3 prefix.
    #[test]
    fn public_account_id_vector() {
        let pk = hex::decode("79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798").expect("hex");
        let pk: [u8; 32] = pk.try_into().expect("32 bytes");
        assert_eq!(
            hex::encode(AccountId::from_public_key(&pk).0),
            "af31cf2514f1ffb48b310d21703897d0accb8fb77ca0c98742f901881165a26e"
        );
        let mut prefix = [0_u8; 32];
        prefix[..27].copy_from_slice(b"/LEE/v0.3/AccountId/Public/");
        assert_eq!(PUBLIC_ACCOUNT_ID_PREFIX, prefix);
    }

    #[test]
    fn ids_serialize_as_text_in_json() {
        let id = AccountId([7; 32]);
        let json = serde_json::to_string(&id).expect("serializes");
        assert_eq!(json, format!("\"{id}\""));
        let back: AccountId = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, id);
    }
}
