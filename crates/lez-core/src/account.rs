//! The LEZ account: `{program_owner, balance, data, nonce}`.

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

use crate::{AccountId, ProgramId};

/// Largest `data` an account may hold (LEZ's `DATA_MAX_LENGTH`, 100 KiB).
pub const DATA_MAX_LENGTH: usize = 100 * 1024;

/// One account. `Account::default()` (default owner, zero balance, empty data, nonce 0) is what
/// "uninitialised" means everywhere: state lookups of unknown ids return it.
#[derive(Clone, PartialEq, Eq, Default, Debug, BorshSerialize, Serialize, Deserialize)]
pub struct Account {
    pub program_owner: ProgramId,
    #[serde(with = "crate::account::decimal_u128")]
    pub balance: u128,
    #[serde(with = "hex_bytes")]
    pub data: Vec<u8>,
    #[serde(with = "crate::account::decimal_u128")]
    pub nonce: u128,
}

impl BorshDeserialize for Account {
    fn deserialize_reader<R: std::io::Read>(reader: &mut R) -> std::io::Result<Self> {
        let program_owner = ProgramId::deserialize_reader(reader)?;
        let balance = u128::deserialize_reader(reader)?;
        let data_len = u32::deserialize_reader(reader)?;
        let data_len = usize::try_from(data_len).unwrap_or(usize::MAX);
        if data_len > DATA_MAX_LENGTH {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("account data of {data_len} bytes exceeds {DATA_MAX_LENGTH}"),
            ));
        }
        let mut data = vec![0_u8; data_len];
        reader.read_exact(&mut data)?;
        let nonce = u128::deserialize_reader(reader)?;
        Ok(Self { program_owner, balance, data, nonce })
    }
}

impl Account {
    /// True for the never-touched account.
    #[must_use]
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// An account as a program sees it: its id, its state, and whether the transaction (or the
/// calling program, through PDA seeds) authorised it.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct AccountWithMetadata {
    pub account_id: AccountId,
    pub account: Account,
    pub is_authorized: bool,
}

impl AccountWithMetadata {
    #[must_use]
    pub const fn new(account_id: AccountId, account: Account, is_authorized: bool) -> Self {
        Self { account_id, account, is_authorized }
    }
}

/// `u128` as a decimal string in JSON: numbers above 2^53 do not survive JavaScript.
pub mod decimal_u128 {
    use serde::{Deserialize, Deserializer, Serializer};

    /// # Errors
    /// Never fails for a valid serializer.
    pub fn serialize<S: Serializer>(value: &u128, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(value)
    }

    /// Accepts a decimal string or a JSON integer.
    ///
    /// # Errors
    /// When the value is not a non-negative integer that fits in `u128`.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u128, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Text(String),
            Number(u64),
        }
        match Either::deserialize(deserializer)? {
            Either::Text(text) => text
                .trim()
                .parse::<u128>()
                .map_err(|_| serde::de::Error::custom(format!("expected a non-negative decimal amount, got {text:?}"))),
            Either::Number(n) => Ok(u128::from(n)),
        }
    }
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(value: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(value))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = <String as Deserialize>::deserialize(deserializer)?;
        let bytes = hex::decode(&text).map_err(serde::de::Error::custom)?;
        if bytes.len() > super::DATA_MAX_LENGTH {
            return Err(serde::de::Error::custom("account data exceeds 100 KiB"));
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borsh_rejects_oversized_data_length_without_allocating_it() {
        let mut bytes = borsh::to_vec(&Account::default()).expect("encodes");
        // Patch the u32 length (after 32 owner bytes and 16 balance bytes) to 200 KiB.
        bytes[48..52].copy_from_slice(&(200_u32 * 1024).to_le_bytes());
        assert!(Account::try_from_slice(&bytes).is_err());
    }

    #[test]
    fn account_round_trips() {
        let account = Account { program_owner: ProgramId([1; 8]), balance: 5, data: vec![1, 2], nonce: 3 };
        let bytes = borsh::to_vec(&account).expect("encodes");
        assert_eq!(Account::try_from_slice(&bytes).expect("decodes"), account);
        let json = serde_json::to_string(&account).expect("json");
        assert!(json.contains("\"balance\":\"5\""));
        assert_eq!(serde_json::from_str::<Account>(&json).expect("parses"), account);
    }
}
