//! Receipts: what a successful transaction did, as typed events in execution order.
//!
//! LEZ has no receipts (clients poll for the transaction and read accounts); this runtime keeps
//! them because the programs already emit typed events and the node can serve them cheaply.

use borsh::BorshDeserialize as _;
use paystreams_lez_core::{AccountId, ProgramId, account::decimal_u128, lez_release::BuiltinIds};
use serde::{Deserialize, Serialize};

use crate::builtins::{token::TokenEvent, transfer::NativeEvent};

/// The outcome of one applied transaction.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Receipt {
    /// `Transaction::hash` (hex in JSON).
    #[serde(with = "hex32")]
    pub tx_hash: [u8; 32],
    pub events: Vec<ReceiptEvent>,
}

/// One event, decoded from the emitting program's Borsh event when the program is known. Borsh is
/// how the node stores it (its receipt snapshot pins those bytes).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, borsh::BorshSerialize, borsh::BorshDeserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ReceiptEvent {
    /// A default account was initialised under authenticated transfer.
    NativeAccountInitialized {
        account: AccountId,
    },
    NativeTransfer {
        from: AccountId,
        to: AccountId,
        #[serde(with = "decimal_u128")]
        amount: u128,
    },
    TokenDefinitionCreated {
        definition_id: AccountId,
        supply_holding: AccountId,
        name: String,
        #[serde(with = "decimal_u128")]
        total_supply: u128,
    },
    TokenAccountInitialized {
        definition_id: AccountId,
        holding: AccountId,
    },
    TokenTransfer {
        definition_id: AccountId,
        from: AccountId,
        to: AccountId,
        #[serde(with = "decimal_u128")]
        amount: u128,
    },
    TokenMinted {
        definition_id: AccountId,
        to: AccountId,
        #[serde(with = "decimal_u128")]
        amount: u128,
    },
    /// An event of the payment-streams program.
    PaymentStreams {
        event: paystreams_program::Event,
    },
    /// An event of a program this runtime cannot decode (hex of its bytes in JSON).
    Raw {
        program_id: ProgramId,
        #[serde(with = "hex_vec")]
        data: Vec<u8>,
    },
}

impl ReceiptEvent {
    /// Decodes one event emitted by `program_id`; anything unknown or undecodable stays raw so
    /// no event is ever lost.
    #[must_use]
    pub fn decode(program_id: &ProgramId, data: &[u8]) -> Self {
        Self::decode_with(&BuiltinIds::default(), program_id, data)
    }

    /// As [`ReceiptEvent::decode`], for builtins running under `builtins`' ids.
    #[must_use]
    pub fn decode_with(builtins: &BuiltinIds, program_id: &ProgramId, data: &[u8]) -> Self {
        let decoded = if *program_id == paystreams_program::payment_streams_program_id() {
            paystreams_program::Event::try_from_slice(data).ok().map(|event| Self::PaymentStreams { event })
        } else if *program_id == builtins.authenticated_transfer {
            NativeEvent::try_from_slice(data).ok().map(Self::from)
        } else if *program_id == builtins.token {
            TokenEvent::try_from_slice(data).ok().map(Self::from)
        } else {
            None
        };
        decoded.unwrap_or_else(|| Self::Raw { program_id: *program_id, data: data.to_vec() })
    }
}

impl From<NativeEvent> for ReceiptEvent {
    fn from(event: NativeEvent) -> Self {
        match event {
            NativeEvent::Initialized { account } => Self::NativeAccountInitialized { account },
            NativeEvent::Transferred { from, to, amount } => Self::NativeTransfer { from, to, amount },
        }
    }
}

impl From<TokenEvent> for ReceiptEvent {
    fn from(event: TokenEvent) -> Self {
        match event {
            TokenEvent::DefinitionCreated { definition_id, supply_holding, name, total_supply } => {
                Self::TokenDefinitionCreated { definition_id, supply_holding, name, total_supply }
            }
            TokenEvent::AccountInitialized { definition_id, holding } => {
                Self::TokenAccountInitialized { definition_id, holding }
            }
            TokenEvent::Transferred { definition_id, from, to, amount } => {
                Self::TokenTransfer { definition_id, from, to, amount }
            }
            TokenEvent::Minted { definition_id, to, amount } => Self::TokenMinted { definition_id, to, amount },
        }
    }
}

/// Serde for a 32-byte value as 64 lowercase hex digits: `#[serde(with = "hex32")]`.
pub mod hex32 {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes the bytes as lowercase hex.
    ///
    /// # Errors
    /// The serializer's.
    pub fn serialize<S: Serializer>(value: &[u8; 32], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(value))
    }

    /// Reads exactly 32 bytes of hex (either case).
    ///
    /// # Errors
    /// Text that is not hex or not 32 bytes long.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<[u8; 32], D::Error> {
        let text = <String as Deserialize>::deserialize(deserializer)?;
        let bytes = hex::decode(&text).map_err(serde::de::Error::custom)?;
        bytes.try_into().map_err(|_| serde::de::Error::custom("expected 32 hex bytes"))
    }
}

mod hex_vec {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(value: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(value))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = <String as Deserialize>::deserialize(deserializer)?;
        hex::decode(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_serialize_amounts_as_decimal_strings_and_round_trip() {
        let receipt = Receipt {
            tx_hash: [7; 32],
            events: vec![
                ReceiptEvent::NativeTransfer { from: AccountId([1; 32]), to: AccountId([2; 32]), amount: u128::MAX },
                ReceiptEvent::Raw { program_id: ProgramId([3; 8]), data: vec![1, 2] },
            ],
        };
        let json = serde_json::to_string(&receipt).expect("json");
        assert!(json.contains(&format!("\"amount\":\"{}\"", u128::MAX)));
        assert!(json.contains("\"type\":\"native_transfer\""));
        assert!(json.contains("\"data\":\"0102\""));
        assert_eq!(serde_json::from_str::<Receipt>(&json).expect("parses"), receipt);
    }

    #[test]
    fn unknown_and_undecodable_events_stay_raw() {
        let program = ProgramId([9; 8]);
        assert_eq!(ReceiptEvent::decode(&program, &[1]), ReceiptEvent::Raw { program_id: program, data: vec![1] });
        let token = paystreams_lez_core::token::token_program_id();
        assert!(matches!(ReceiptEvent::decode(&token, &[200]), ReceiptEvent::Raw { .. }));
    }
}
