//! LEZ's JSON-RPC wire types (the sequencer API of LEZ v0.2.x), restated once: the node serves
//! them under LEZ's method names ([`crate::LezApi`]) and a client that talks to a LEZ sequencer
//! decodes them. The shapes follow LEZ's serde derives (`lee_core::account`, `common`,
//! `sequencer_service_protocol` at v0.2.4, identical at v0.2.0 unless said):
//!
//! | LEZ type | JSON |
//! |---|---|
//! | `Account` | `{"program_owner": [8 numbers], "balance": number, "data": [byte numbers], "nonce": number}` ([`LezAccount`]) |
//! | `AccountId` | base58 string ([`AccountId`]) |
//! | `HashType`, `ChannelId` | 64 lowercase hex characters ([`HexHash`]) |
//! | `Nonce`, `Balance` | number (`u128`) |
//! | `ProgramId` | array of 8 numbers ([`LezProgramId`]) |
//! | `LeeTransaction`, `Block` | base64 (standard, padded) of the Borsh bytes ([`LezTransaction`], [`LezBlockData`]) |
//! | `Commitment`, `CommitmentSetDigest` | array of 32 numbers |
//! | `MembershipProof` | `[index, [[32 numbers], …]]` |
//!
//! `u128` values (balances, nonces) go beyond 2^53 and 2^64: they are written and read as JSON
//! numbers exactly, as long as they are (de)serialised directly (jsonrpsee does: it parses
//! parameters and results from the raw text), never through `serde_json::Value`, which without
//! serde_json's `arbitrary_precision` turns such numbers into floats or refuses them.

use std::collections::BTreeMap;

use base64::Engine as _;
use paystreams_lez_core::{
    Account, DATA_MAX_LENGTH, ProgramId,
    lee_transaction::{LeeTransaction, MAX_LEE_TRANSACTION_BYTES},
    lez_block::{LezBlock, MAX_BLOCK_BYTES},
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use crate::types::HexHash;
pub use paystreams_lez_core::AccountId;

/// LEZ's `ProgramId` in JSON: the 8 words of the image id.
pub type LezProgramId = [u32; 8];

/// `getProgramIds`: program name → id.
pub type LezProgramIds = BTreeMap<String, LezProgramId>;

/// LEZ's `Commitment` (of a private account), an array of 32 numbers.
pub type Commitment = [u8; 32];

/// LEZ's `CommitmentSetDigest`, the root of the commitment set, an array of 32 numbers.
pub type CommitmentSetDigest = [u8; 32];

/// LEZ's `MembershipProof`: the commitment's index in the commitment tree and its
/// authentication path (LEZ's `usize` index; a `u64` here, the same JSON number).
pub type MembershipProof = (u64, Vec<[u8; 32]>);

/// `getProofsAndRoot` (v0.2.1+): a proof (or null) per commitment asked, and the current root.
pub type ProofsAndRoot = (Vec<Option<MembershipProof>>, CommitmentSetDigest);

/// `getTransaction` (v0.2.1+): the transaction and the id of the block that includes it.
pub type TransactionInBlock = (LezTransaction, u64);

/// LEZ's `DUMMY_COMMITMENT`: every LEZ state starts with this one commitment in its commitment
/// set (`V03State::default`), so a chain without private transactions has exactly it.
/// `SHA-256("/LEE/v0.3/Commitment/" NUL-padded to 32 ‖ 32 zero bytes ‖ 32 zero bytes ‖ 16 zero
/// bytes ‖ 16 zero bytes ‖ SHA-256(""))`, as LEZ's doc comment derives it
/// (`lee/state_machine/core/src/commitment.rs`).
pub const DUMMY_COMMITMENT: Commitment = [
    55, 228, 215, 207, 112, 221, 239, 49, 238, 79, 71, 135, 155, 15, 184, 45, 104, 74, 51, 211, 238, 42, 160, 243, 15,
    124, 253, 62, 3, 229, 90, 27,
];

/// LEZ's `DUMMY_COMMITMENT_HASH` = `SHA-256(DUMMY_COMMITMENT)`: the commitment-tree leaf of the
/// dummy commitment, and so the root of a commitment set that holds only it.
pub const DUMMY_COMMITMENT_HASH: CommitmentSetDigest = [
    250, 237, 192, 113, 155, 101, 119, 30, 235, 183, 20, 84, 26, 32, 196, 229, 154, 74, 254, 249, 129, 241, 118, 39,
    41, 253, 141, 171, 184, 71, 8, 41,
];

/// The message LEZ gives with [`crate::codes::NOT_FOUND`] for a missing block of `getBlockRange`.
#[must_use]
pub fn block_not_found_message(block_id: u64) -> String {
    format!("Block with id {block_id} not found")
}

/// LEZ's method names at v0.2.4 (the v0.2.1+ set) plus v0.2.0's `getProofForCommitment`:
/// everything a node in LEZ-only mode serves.
pub const LEZ_METHODS: &[&str] = &[
    "sendTransaction",
    "checkHealth",
    "getBlock",
    "getBlockRange",
    "getLastBlockId",
    "getAccountBalance",
    "getTransaction",
    "getAccountsNonces",
    "getProofForCommitment",
    "getProofsAndRoot",
    "getAccount",
    "getProgramIds",
    "getChannelId",
];

/// LEZ's `Account` as its JSON derive writes it: numbers and arrays, no strings. `data` is at
/// most [`DATA_MAX_LENGTH`] bytes (LEZ's `Data` refuses more when deserialising).
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct LezAccount {
    pub program_owner: LezProgramId,
    pub balance: u128,
    #[serde(deserialize_with = "bounded_data")]
    pub data: Vec<u8>,
    pub nonce: u128,
}

impl From<&Account> for LezAccount {
    fn from(account: &Account) -> Self {
        Self {
            program_owner: account.program_owner.0,
            balance: account.balance,
            data: account.data.clone(),
            nonce: account.nonce,
        }
    }
}

impl From<Account> for LezAccount {
    fn from(account: Account) -> Self {
        Self {
            program_owner: account.program_owner.0,
            balance: account.balance,
            data: account.data,
            nonce: account.nonce,
        }
    }
}

impl From<LezAccount> for Account {
    fn from(account: LezAccount) -> Self {
        Self {
            program_owner: ProgramId(account.program_owner),
            balance: account.balance,
            data: account.data,
            nonce: account.nonce,
        }
    }
}

/// An array of byte numbers, refused past [`DATA_MAX_LENGTH`] elements before reading them all.
fn bounded_data<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    struct Bytes;

    impl<'de> serde::de::Visitor<'de> for Bytes {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "an array of at most {DATA_MAX_LENGTH} byte values (0 to 255)")
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(DATA_MAX_LENGTH));
            while let Some(byte) = seq.next_element::<u8>()? {
                if out.len() == DATA_MAX_LENGTH {
                    return Err(serde::de::Error::custom(format!(
                        "account data exceeds {DATA_MAX_LENGTH} bytes (LEZ's DATA_MAX_LENGTH)"
                    )));
                }
                out.push(byte);
            }
            Ok(out)
        }
    }

    deserializer.deserialize_seq(Bytes)
}

/// A LEZ value carried in JSON as base64 (standard, padded) of its Borsh bytes.
pub trait Base64Wire: Sized {
    /// What the value is, for error messages ("transaction", "block").
    const WHAT: &'static str;
    /// Largest encoding decoded; longer text is refused before decoding.
    const MAX_BYTES: usize;

    /// The Borsh bytes.
    fn wire_bytes(&self) -> Vec<u8>;

    /// Decodes the Borsh bytes, refusing anything malformed or trailing.
    ///
    /// # Errors
    /// Why the bytes are not a valid value.
    fn from_wire_bytes(bytes: &[u8]) -> Result<Self, String>;
}

impl Base64Wire for LeeTransaction {
    const WHAT: &'static str = "transaction";
    const MAX_BYTES: usize = MAX_LEE_TRANSACTION_BYTES;

    fn wire_bytes(&self) -> Vec<u8> {
        self.to_bytes()
    }

    fn from_wire_bytes(bytes: &[u8]) -> Result<Self, String> {
        Self::decode(bytes).map_err(|e| e.to_string())
    }
}

impl Base64Wire for LezBlock {
    const WHAT: &'static str = "block";
    const MAX_BYTES: usize = MAX_BLOCK_BYTES;

    fn wire_bytes(&self) -> Vec<u8> {
        self.to_bytes()
    }

    fn from_wire_bytes(bytes: &[u8]) -> Result<Self, String> {
        Self::decode(bytes).map_err(|e| e.to_string())
    }
}

/// A value as base64 of its Borsh bytes in JSON (LEZ's `borsh_base64`).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Base64Borsh<T>(pub T);

/// LEZ's `LeeTransaction` in JSON.
pub type LezTransaction = Base64Borsh<LeeTransaction>;

/// LEZ's `Block` in JSON.
pub type LezBlockData = Base64Borsh<LezBlock>;

impl<T: Base64Wire> Base64Borsh<T> {
    /// The base64 text.
    #[must_use]
    pub fn encode(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0.wire_bytes())
    }

    /// Decodes base64 text, refusing text longer than [`Base64Wire::MAX_BYTES`] encode to
    /// before decoding it.
    ///
    /// # Errors
    /// Too long, not base64, or not a valid value; the message says which.
    pub fn decode(text: &str) -> Result<Self, String> {
        let max_chars = T::MAX_BYTES.div_ceil(3).saturating_mul(4);
        if text.len() > max_chars {
            return Err(format!(
                "{} of {} base64 characters exceeds the {}-byte limit",
                T::WHAT,
                text.len(),
                T::MAX_BYTES
            ));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| format!("{} is not base64 ({e}); send standard padded base64 of its Borsh bytes", T::WHAT))?;
        T::from_wire_bytes(&bytes).map(Self)
    }
}

impl<T: Base64Wire> Serialize for Base64Borsh<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.encode())
    }
}

impl<'de, T: Base64Wire> Deserialize<'de> for Base64Borsh<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Self::decode(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use paystreams_lez_core::{
        crypto::SecretKey,
        lee_transaction::{LeeMessage, LeePublicTransaction},
        lez_block::{BedrockStatus, HashableBlockData},
    };

    use super::*;

    #[test]
    fn account_json_is_numbers_and_arrays_and_u128_max_round_trips_exactly() {
        let account = LezAccount {
            program_owner: [1, 2, 3, 4, 5, 6, 7, u32::MAX],
            balance: u128::MAX,
            data: vec![0, 7, 255],
            nonce: u128::MAX - 1,
        };
        let json = serde_json::to_string(&account).expect("json");
        assert_eq!(
            json,
            format!(
                r#"{{"program_owner":[1,2,3,4,5,6,7,4294967295],"balance":{},"data":[0,7,255],"nonce":{}}}"#,
                u128::MAX,
                u128::MAX - 1
            )
        );
        assert_eq!(serde_json::from_str::<LezAccount>(&json).expect("parses"), account);
        // Through our own account type and back.
        assert_eq!(LezAccount::from(Account::from(account.clone())), account);
    }

    #[test]
    fn account_refuses_strings_oversized_data_and_out_of_range_bytes() {
        let quoted = r#"{"program_owner":[0,0,0,0,0,0,0,0],"balance":"5","data":[],"nonce":0}"#;
        assert!(serde_json::from_str::<LezAccount>(quoted).is_err());
        let too_big = format!(
            r#"{{"program_owner":[0,0,0,0,0,0,0,0],"balance":0,"data":[{}],"nonce":0}}"#,
            vec!["1"; DATA_MAX_LENGTH + 1].join(",")
        );
        let error = serde_json::from_str::<LezAccount>(&too_big).expect_err("too big").to_string();
        assert!(error.contains("exceeds"), "{error}");
        let at_limit = format!(
            r#"{{"program_owner":[0,0,0,0,0,0,0,0],"balance":0,"data":[{}],"nonce":0}}"#,
            vec!["1"; DATA_MAX_LENGTH].join(",")
        );
        assert_eq!(serde_json::from_str::<LezAccount>(&at_limit).expect("at limit").data.len(), DATA_MAX_LENGTH);
        let not_a_byte = r#"{"program_owner":[0,0,0,0,0,0,0,0],"balance":0,"data":[256],"nonce":0}"#;
        assert!(serde_json::from_str::<LezAccount>(not_a_byte).is_err());
        let balance_too_big =
            format!(r#"{{"program_owner":[0,0,0,0,0,0,0,0],"balance":{}0,"data":[],"nonce":0}}"#, u128::MAX);
        assert!(serde_json::from_str::<LezAccount>(&balance_too_big).is_err());
    }

    fn transaction() -> LeeTransaction {
        let key = SecretKey::from_bytes(&[7; 32]).expect("key");
        let message = LeeMessage::new(ProgramId([1; 8]), vec![key.account_id()], vec![5], &42_u64);
        LeeTransaction::Public(LeePublicTransaction::sign(message, &[&key]))
    }

    #[test]
    fn transaction_and_block_are_base64_of_their_borsh() {
        let tx = transaction();
        let wire = Base64Borsh(tx.clone());
        let json = serde_json::to_string(&wire).expect("json");
        let expected = base64::engine::general_purpose::STANDARD.encode(tx.to_bytes());
        assert_eq!(json, format!("\"{expected}\""));
        assert_eq!(serde_json::from_str::<LezTransaction>(&json).expect("parses").0, tx);

        let block = HashableBlockData { block_id: 1, prev_block_hash: [0; 32], timestamp: 0, transactions: vec![tx] }
            .into_block(&SecretKey::from_bytes(&[9; 32]).expect("key"), BedrockStatus::Pending);
        let json = serde_json::to_string(&Base64Borsh(block.clone())).expect("json");
        assert_eq!(json, format!("\"{}\"", base64::engine::general_purpose::STANDARD.encode(block.to_bytes())));
        assert_eq!(serde_json::from_str::<LezBlockData>(&json).expect("parses").0, block);
    }

    #[test]
    fn transaction_text_is_bounded_and_checked() {
        let long = "A".repeat(MAX_LEE_TRANSACTION_BYTES.div_ceil(3) * 4 + 4);
        let error = LezTransaction::decode(&long).expect_err("too long");
        assert!(error.contains("limit"), "{error}");
        let error = LezTransaction::decode("not base64!").expect_err("not base64");
        assert!(error.contains("not base64"), "{error}");
        // Unpadded base64 is refused, as LEZ's STANDARD engine refuses it.
        let error = LezTransaction::decode("AAE").expect_err("unpadded");
        assert!(error.contains("not base64"), "{error}");
        let mut trailing = transaction().to_bytes();
        trailing.push(0);
        let error =
            LezTransaction::decode(&base64::engine::general_purpose::STANDARD.encode(trailing)).expect_err("trailing");
        assert!(error.contains("trailing"), "{error}");
        let private = base64::engine::general_purpose::STANDARD.encode([1_u8, 0, 0]);
        let error = LezTransaction::decode(&private).expect_err("private");
        assert!(error.to_lowercase().contains("privacy"), "{error}");
    }

    #[test]
    fn program_ids_commitments_and_proofs_are_arrays_of_numbers() {
        let ids: LezProgramIds = [("authenticated_transfer".to_owned(), [u32::MAX, 0, 1, 2, 3, 4, 5, 6])].into();
        assert_eq!(
            serde_json::to_string(&ids).expect("json"),
            r#"{"authenticated_transfer":[4294967295,0,1,2,3,4,5,6]}"#
        );
        let answer: ProofsAndRoot = (vec![None, Some((0, vec![]))], DUMMY_COMMITMENT_HASH);
        let json = serde_json::to_string(&answer).expect("json");
        let root = DUMMY_COMMITMENT_HASH.map(|b| b.to_string()).join(",");
        assert_eq!(json, format!("[[null,[0,[]]],[{root}]]"));
        assert_eq!(serde_json::from_str::<ProofsAndRoot>(&json).expect("parses"), answer);
    }

    #[test]
    fn dummy_commitment_constants_follow_lezs_recipe() {
        use paystreams_lez_core::{domain_prefix, sha256};
        let prefix = domain_prefix("/LEE/v0.3/Commitment/");
        let empty_hash = sha256(&[]);
        assert_eq!(sha256(&[&prefix, &[0; 32], &[0; 32], &[0; 16], &[0; 16], &empty_hash]), DUMMY_COMMITMENT);
        assert_eq!(sha256(&[&DUMMY_COMMITMENT]), DUMMY_COMMITMENT_HASH);
    }
}
