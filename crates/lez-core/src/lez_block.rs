//! LEZ's block, byte for byte (LEZ v0.2.0–v0.2.4; the block fields are the same across those
//! releases).
//!
//! - `Block { header, body, bedrock_status }`, all Borsh. `BlockHeader { block_id: u64,
//!   prev_block_hash: [u8; 32], hash: [u8; 32], timestamp: u64 (Unix ms), signature: [u8; 64] }`;
//!   `BlockBody { transactions: Vec<LeeTransaction> }` (each with its envelope tag);
//!   `BedrockStatus` is a one-byte enum `Pending = 0, Safe = 1, Finalized = 2`.
//! - What is hashed and signed is `HashableBlockData { block_id, prev_block_hash, timestamp,
//!   transactions }`: `hash = SHA-256("/LEE/v0.3/Message/Block/" NUL-padded to 32 ||
//!   borsh(data))`, and the signature is BIP-340 by the sequencer's key over that hash.
//! - The genesis block has id [`GENESIS_BLOCK_ID`] (1) and a zero `prev_block_hash`.
//!
//! `getBlock` and `getBlockRange` carry a block as base64 (standard, padded) of these bytes.

use borsh::{BorshDeserialize, BorshSerialize};

use crate::{
    crypto::{PublicKey, SecretKey, Signature},
    domain_prefix,
    lee_transaction::{LeeTransaction, LeeTxError},
    sha256,
};

/// LEZ's first block id.
pub const GENESIS_BLOCK_ID: u64 = 1;

/// Domain prefix of LEZ's block hash.
pub const BLOCK_HASH_PREFIX: [u8; 32] = domain_prefix("/LEE/v0.3/Message/Block/");

/// Largest encoded block this codec decodes, checked before decoding. LEZ bounds a block by its
/// configured `max_block_size`; this is this implementation's own bound (a block of the node's
/// largest size fits).
pub const MAX_BLOCK_BYTES: usize = 64 * 1024 * 1024;

/// LEZ's `BlockHeader`.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct LezBlockHeader {
    pub block_id: u64,
    pub prev_block_hash: [u8; 32],
    pub hash: [u8; 32],
    /// Unix milliseconds.
    pub timestamp: u64,
    pub signature: Signature,
}

/// LEZ's `BlockBody`.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct LezBlockBody {
    pub transactions: Vec<LeeTransaction>,
}

/// LEZ's `BedrockStatus`: how far the block has settled on the base layer.
#[derive(Clone, Copy, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
#[borsh(use_discriminant = true)]
#[repr(u8)]
pub enum BedrockStatus {
    Pending = 0,
    Safe = 1,
    Finalized = 2,
}

/// LEZ's `Block`.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct LezBlock {
    pub header: LezBlockHeader,
    pub body: LezBlockBody,
    pub bedrock_status: BedrockStatus,
}

/// LEZ's `HashableBlockData`: what a block's hash covers.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize)]
pub struct HashableBlockData {
    pub block_id: u64,
    pub prev_block_hash: [u8; 32],
    pub timestamp: u64,
    pub transactions: Vec<LeeTransaction>,
}

impl HashableBlockData {
    /// `SHA-256(BLOCK_HASH_PREFIX || borsh(self))`.
    #[must_use]
    pub fn hash(&self) -> [u8; 32] {
        // Writing Borsh into a Vec cannot fail.
        let bytes = borsh::to_vec(self).unwrap_or_default();
        sha256(&[&BLOCK_HASH_PREFIX, &bytes])
    }

    /// The block: hashed, and signed with the sequencer's key.
    #[must_use]
    pub fn into_block(self, sequencer: &SecretKey, bedrock_status: BedrockStatus) -> LezBlock {
        let hash = self.hash();
        let header = LezBlockHeader {
            block_id: self.block_id,
            prev_block_hash: self.prev_block_hash,
            hash,
            timestamp: self.timestamp,
            signature: sequencer.sign(&hash),
        };
        LezBlock { header, body: LezBlockBody { transactions: self.transactions }, bedrock_status }
    }
}

/// Why block bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LezBlockError {
    #[error("block of {size} bytes exceeds the {max}-byte limit")]
    TooLarge { size: usize, max: usize },
    #[error("malformed block: {0}")]
    Malformed(String),
    #[error("{0} trailing byte(s) after the block")]
    Trailing(usize),
}

impl LezBlock {
    /// The Borsh encoding (what `getBlock` carries in base64).
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        // Writing Borsh into a Vec cannot fail.
        borsh::to_vec(self).unwrap_or_default()
    }

    /// Decodes a block: bounded before decoding, trailing bytes refused. A transaction kind this
    /// implementation does not carry (private, deployment) makes the block undecodable, named.
    ///
    /// # Errors
    /// [`LezBlockError`] saying what is wrong.
    pub fn decode(bytes: &[u8]) -> Result<Self, LezBlockError> {
        if bytes.len() > MAX_BLOCK_BYTES {
            return Err(LezBlockError::TooLarge { size: bytes.len(), max: MAX_BLOCK_BYTES });
        }
        let mut rest = bytes;
        let block = Self::deserialize(&mut rest).map_err(|e| LezBlockError::Malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(LezBlockError::Trailing(rest.len()));
        }
        Ok(block)
    }

    /// What the header's hash should be, recomputed from the block's contents.
    #[must_use]
    pub fn recompute_hash(&self) -> [u8; 32] {
        HashableBlockData {
            block_id: self.header.block_id,
            prev_block_hash: self.header.prev_block_hash,
            timestamp: self.header.timestamp,
            transactions: self.body.transactions.clone(),
        }
        .hash()
    }

    /// Whether the header's hash matches the contents and `sequencer` signed it.
    #[must_use]
    pub fn is_signed_by(&self, sequencer: &PublicKey) -> bool {
        self.recompute_hash() == self.header.hash && sequencer.verify(&self.header.hash, &self.header.signature)
    }
}

/// A `LeeTransaction` inside a block is its envelope: the tag byte, then the inner transaction.
impl BorshSerialize for LeeTransaction {
    fn serialize<W: std::io::Write>(&self, writer: &mut W) -> std::io::Result<()> {
        writer.write_all(&self.to_bytes())
    }
}

impl BorshDeserialize for LeeTransaction {
    fn deserialize_reader<R: std::io::Read>(reader: &mut R) -> std::io::Result<Self> {
        use crate::lee_transaction::{
            LeePublicTransaction, TAG_PRIVACY_PRESERVING, TAG_PROGRAM_DEPLOYMENT, TAG_PUBLIC,
        };
        let invalid = |e: LeeTxError| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string());
        match u8::deserialize_reader(reader)? {
            TAG_PUBLIC => Ok(Self::Public(LeePublicTransaction::deserialize_reader(reader)?)),
            TAG_PRIVACY_PRESERVING => {
                Err(invalid(LeeTxError::Unsupported(crate::lee_transaction::UnsupportedKind::PrivacyPreserving)))
            }
            TAG_PROGRAM_DEPLOYMENT => {
                Err(invalid(LeeTxError::Unsupported(crate::lee_transaction::UnsupportedKind::ProgramDeployment)))
            }
            other => Err(invalid(LeeTxError::UnknownTag(other))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        ProgramId,
        clock::CLOCK_ACCOUNT_IDS,
        lee_transaction::{LeeMessage, LeePublicTransaction},
    };

    /// LEZ v0.2.0's clock program id (lez-facts: image id of `artifacts/lez/programs/clock.bin`).
    const CLOCK_V0_2_0: ProgramId = ProgramId([
        979_979_912,
        3_730_255_152,
        96_781_338,
        501_898_186,
        3_738_241_015,
        2_113_460_497,
        2_222_463_973,
        1_670_293_850,
    ]);

    fn clock_tx(timestamp: u64) -> LeeTransaction {
        let message = LeeMessage::new(CLOCK_V0_2_0, CLOCK_ACCOUNT_IDS.to_vec(), vec![], &timestamp);
        LeeTransaction::Public(LeePublicTransaction::unsigned(message))
    }

    /// The genesis of a v0.2.0 sequencer with no genesis actions: block 1, zero parent,
    /// timestamp 0, and `clock_invocation(0)` as its only transaction. The bytes follow LEZ's
    /// `HashableBlockData` layout; the hash is SHA-256 over the block prefix and those bytes.
    #[test]
    fn empty_genesis_of_v0_2_0_hashes_as_lez_does() {
        let data = HashableBlockData {
            block_id: GENESIS_BLOCK_ID,
            prev_block_hash: [0; 32],
            timestamp: 0,
            transactions: vec![clock_tx(0)],
        };
        let bytes = borsh::to_vec(&data).expect("encodes");
        assert_eq!(bytes.len(), 205);
        assert_eq!(&bytes[..8], &1_u64.to_le_bytes());
        assert_eq!(&bytes[48..52], &1_u32.to_le_bytes(), "one transaction");
        assert_eq!(bytes[52], 0, "public envelope tag");
        assert_eq!(hex::encode(data.hash()), "1818aa7a25f1657904f6d0d06043448ccfc419557c1f85a9c1dc25208cf315f3");
    }

    #[test]
    fn a_signed_block_round_trips_and_verifies() {
        let key = SecretKey::from_bytes(&[7; 32]).expect("key");
        let other = SecretKey::from_bytes(&[8; 32]).expect("key");
        let data = HashableBlockData {
            block_id: 5,
            prev_block_hash: [3; 32],
            timestamp: 1_754_550_000_123,
            transactions: vec![clock_tx(1_754_550_000_123)],
        };
        let block = data.into_block(&key, BedrockStatus::Pending);
        let bytes = block.to_bytes();
        assert_eq!(*bytes.last().expect("status byte"), 0);
        let decoded = LezBlock::decode(&bytes).expect("decodes");
        assert_eq!(decoded, block);
        assert!(decoded.is_signed_by(&key.public_key()));
        assert!(!decoded.is_signed_by(&other.public_key()));

        let mut tampered = decoded;
        tampered.header.timestamp += 1;
        assert!(!tampered.is_signed_by(&key.public_key()), "hash no longer matches the contents");

        let mut trailing = bytes.clone();
        trailing.push(0);
        assert_eq!(LezBlock::decode(&trailing), Err(LezBlockError::Trailing(1)));
        assert!(matches!(LezBlock::decode(&bytes[..bytes.len() - 1]), Err(LezBlockError::Malformed(_))));
    }

    #[test]
    fn a_block_holding_a_private_transaction_is_refused_by_name() {
        let key = SecretKey::from_bytes(&[7; 32]).expect("key");
        let block = HashableBlockData { block_id: 2, prev_block_hash: [0; 32], timestamp: 1, transactions: vec![] }
            .into_block(&key, BedrockStatus::Safe);
        let mut bytes = block.to_bytes();
        // Rewrite the empty transaction list as one entry starting with tag 1.
        let count_at = 8 + 32 + 32 + 8 + 64;
        bytes[count_at..count_at + 4].copy_from_slice(&1_u32.to_le_bytes());
        bytes.insert(count_at + 4, 1);
        let error = LezBlock::decode(&bytes).expect_err("refused");
        assert!(error.to_string().contains("PrivacyPreserving"), "{error}");
    }
}
