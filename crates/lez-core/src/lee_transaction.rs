//! LEZ's transaction envelope, byte for byte (LEZ v0.2.0–v0.2.4; the public-transaction codec is
//! unchanged across those releases).
//!
//! - `LeeTransaction` is a Borsh enum: tag 0 `Public`, 1 `PrivacyPreserving`, 2
//!   `ProgramDeployment`. This codec carries `Public` only; decoding the other two gives
//!   [`LeeTxError::Unsupported`] naming the kind.
//! - `PublicTransaction { message, witness_set }`; `Message { program_id: [u32; 8], account_ids:
//!   Vec<AccountId>, nonces: Vec<u128>, instruction_data: Vec<u32> }`, where the instruction
//!   words are RISC Zero serde words (see [`crate::risc0_words`]), each a u32 little-endian in
//!   Borsh after a u32 count; `WitnessSet { signatures_and_public_keys: Vec<([u8; 64], [u8; 32])> }`
//!   with BIP-340 signatures over the message hash and x-only keys (validated on decode).
//! - Message hash: `SHA-256("/LEE/v0.3/Message/Public/" NUL-padded to 32 || borsh(message))`.
//! - Transaction hash (`sendTransaction`'s answer, `getTransaction`'s key):
//!   `SHA-256(borsh(PublicTransaction))`, without the envelope's tag byte, signatures included.
//!
//! This is the one transaction format of the tree: the runtime re-exports these types as
//! `Message`, `WitnessSet` and `Transaction` (adding its limit and signature checks), the node
//! decodes submissions with [`LeePublicTransaction::from_envelope`], and every client encodes
//! them with [`LeePublicTransaction::envelope_bytes`].

use borsh::{BorshDeserialize, BorshSerialize};

use crate::{
    AccountId, ProgramId,
    crypto::{PublicKey, SecretKey, Signature},
    domain_prefix,
    risc0_words::{ToWords, to_words},
    sha256,
};

/// Domain prefix of LEZ's public message hash (v0.2.x still signs with the `v0.3` string).
pub const PUBLIC_MESSAGE_PREFIX: [u8; 32] = domain_prefix("/LEE/v0.3/Message/Public/");

/// Largest envelope this codec decodes, in bytes, checked before decoding. LEZ bounds a
/// transaction by its block size less 200 bytes; 64 KiB is this implementation's own bound.
pub const MAX_LEE_TRANSACTION_BYTES: usize = 64 * 1024;

/// Borsh tag of each `LeeTransaction` variant.
pub const TAG_PUBLIC: u8 = 0;
pub const TAG_PRIVACY_PRESERVING: u8 = 1;
pub const TAG_PROGRAM_DEPLOYMENT: u8 = 2;

/// A transaction kind this codec does not carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsupportedKind {
    /// Tag 1: needs LEZ's private accounts, commitments and a RISC Zero proof of the privacy
    /// circuit.
    PrivacyPreserving,
    /// Tag 2: needs a RISC Zero guest ELF and its image id.
    ProgramDeployment,
}

impl std::fmt::Display for UnsupportedKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::PrivacyPreserving => {
                "PrivacyPreserving transaction (envelope tag 1): private accounts and shielded execution are not \
                 implemented here; send a Public transaction (tag 0)"
            }
            Self::ProgramDeployment => {
                "ProgramDeployment transaction (envelope tag 2): deploying RISC Zero guest programs is not \
                 implemented here; programs are builtins"
            }
        })
    }
}

/// Why an envelope was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeeTxError {
    #[error("unsupported: {0}")]
    Unsupported(UnsupportedKind),
    #[error("unknown transaction envelope tag {0} (LEZ has 0 Public, 1 PrivacyPreserving, 2 ProgramDeployment)")]
    UnknownTag(u8),
    #[error("empty input: a LEZ transaction starts with its envelope tag byte")]
    Empty,
    #[error("transaction of {size} bytes exceeds the {max}-byte limit")]
    TooLarge { size: usize, max: usize },
    #[error("malformed public transaction: {0}")]
    Malformed(String),
    #[error("{0} trailing byte(s) after the transaction")]
    Trailing(usize),
}

/// What the signers sign: LEZ's public message, instruction as RISC Zero serde words.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct LeeMessage {
    pub program_id: ProgramId,
    pub account_ids: Vec<AccountId>,
    /// One per signature, in witness-set order (LEZ's `Nonce(u128)`).
    pub nonces: Vec<u128>,
    pub instruction_data: Vec<u32>,
}

impl LeeMessage {
    /// A message whose instruction is encoded with RISC Zero serde words (LEZ's
    /// `Message::try_new`).
    #[must_use]
    pub fn new<I: ToWords + ?Sized>(
        program_id: ProgramId,
        account_ids: Vec<AccountId>,
        nonces: Vec<u128>,
        instruction: &I,
    ) -> Self {
        Self { program_id, account_ids, nonces, instruction_data: to_words(instruction) }
    }

    /// The Borsh encoding.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        // Writing Borsh into a Vec cannot fail.
        borsh::to_vec(self).unwrap_or_default()
    }

    /// `SHA-256(PUBLIC_MESSAGE_PREFIX || borsh(message))`: the prehash every signer signs.
    #[must_use]
    pub fn hash(&self) -> [u8; 32] {
        sha256(&[&PUBLIC_MESSAGE_PREFIX, &self.to_bytes()])
    }
}

/// BIP-340 signatures over [`LeeMessage::hash`] with the x-only keys that made them.
#[derive(Clone, PartialEq, Eq, Debug, Default, BorshSerialize, BorshDeserialize)]
pub struct LeeWitnessSet {
    pub signatures_and_public_keys: Vec<(Signature, PublicKey)>,
}

/// LEZ's `PublicTransaction`.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct LeePublicTransaction {
    pub message: LeeMessage,
    pub witness_set: LeeWitnessSet,
}

impl LeePublicTransaction {
    /// Signs `message` with each key, in order (the message's nonces follow the same order).
    #[must_use]
    pub fn sign(message: LeeMessage, keys: &[&SecretKey]) -> Self {
        let hash = message.hash();
        let signatures_and_public_keys = keys.iter().map(|key| (key.sign(&hash), key.public_key())).collect();
        Self { message, witness_set: LeeWitnessSet { signatures_and_public_keys } }
    }

    /// A transaction with no signatures (LEZ's clock and genesis transactions).
    #[must_use]
    pub fn unsigned(message: LeeMessage) -> Self {
        Self { message, witness_set: LeeWitnessSet::default() }
    }

    /// The Borsh encoding, without the envelope tag (what LEZ hashes).
    #[must_use]
    pub fn borsh_bytes(&self) -> Vec<u8> {
        // Writing Borsh into a Vec cannot fail.
        borsh::to_vec(self).unwrap_or_default()
    }

    /// The submission bytes: the `LeeTransaction::Public` envelope (tag 0, then
    /// [`Self::borsh_bytes`]). This is what `sendTransaction` carries in base64.
    #[must_use]
    pub fn envelope_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + borsh::object_length(self).unwrap_or(0));
        out.push(TAG_PUBLIC);
        // Writing Borsh into a Vec cannot fail.
        let _ = borsh::to_writer(&mut out, self);
        out
    }

    /// Decodes submission bytes: a `LeeTransaction` envelope that must be `Public`.
    ///
    /// # Errors
    /// As [`LeeTransaction::decode`]; the other kinds are refused by name.
    pub fn from_envelope(bytes: &[u8]) -> Result<Self, LeeTxError> {
        LeeTransaction::decode(bytes).map(|LeeTransaction::Public(tx)| tx)
    }

    /// [`Self::from_envelope`] with each public key checked by `parse_key` instead of k256:
    /// for a verifier that lifts the keys to curve points anyway (libsecp256k1), so each key is
    /// lifted once. `parse_key` must return `None` exactly for bytes that are not the x
    /// coordinate of a curve point; the parsed keys come back in witness-set order. Refuses
    /// what [`Self::from_envelope`] refuses, with the same error for a key that is not on the
    /// curve (when the input has several faults, the one reported may differ).
    ///
    /// # Errors
    /// As [`Self::from_envelope`].
    pub fn from_envelope_with_keys<K>(
        bytes: &[u8],
        mut parse_key: impl FnMut(&[u8; 32]) -> Option<K>,
    ) -> Result<(Self, Vec<K>), LeeTxError> {
        let tx = crate::crypto::with_key_checks_by_caller(|| Self::from_envelope(bytes))?;
        let keys = tx
            .witness_set
            .signatures_and_public_keys
            .iter()
            .map(|(_, key)| parse_key(&key.to_bytes()))
            .collect::<Option<Vec<K>>>()
            .ok_or_else(|| LeeTxError::Malformed(crate::crypto::KeyError::InvalidPublicKey.to_string()))?;
        Ok((tx, keys))
    }

    /// `SHA-256(borsh(PublicTransaction))`: no prefix, no envelope tag, signatures included.
    #[must_use]
    pub fn hash(&self) -> [u8; 32] {
        sha256(&[&self.borsh_bytes()])
    }

    /// The account ids of the signers, in witness-set order.
    #[must_use]
    pub fn signer_ids(&self) -> Vec<AccountId> {
        self.witness_set.signatures_and_public_keys.iter().map(|(_, key)| key.account_id()).collect()
    }

    /// Whether every signature verifies over the message hash and the signature and nonce counts
    /// agree.
    #[must_use]
    pub fn signatures_valid(&self) -> bool {
        let hash = self.message.hash();
        let pairs = &self.witness_set.signatures_and_public_keys;
        pairs.len() == self.message.nonces.len() && pairs.iter().all(|(signature, key)| key.verify(&hash, signature))
    }
}

/// LEZ's `LeeTransaction` envelope, restricted to what this codec carries.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum LeeTransaction {
    Public(LeePublicTransaction),
}

impl LeeTransaction {
    /// The envelope bytes: the tag byte, then the inner transaction's Borsh.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Self::Public(tx) => tx.envelope_bytes(),
        }
    }

    /// LEZ's `LeeTransaction::hash`: the inner transaction's hash (no tag byte).
    #[must_use]
    pub fn hash(&self) -> [u8; 32] {
        match self {
            Self::Public(tx) => tx.hash(),
        }
    }

    /// Decodes an envelope: bounded before decoding, trailing bytes refused after it, public
    /// keys validated; other kinds refused by name.
    ///
    /// # Errors
    /// [`LeeTxError`] saying what is wrong or unsupported.
    pub fn decode(bytes: &[u8]) -> Result<Self, LeeTxError> {
        if bytes.len() > MAX_LEE_TRANSACTION_BYTES {
            return Err(LeeTxError::TooLarge { size: bytes.len(), max: MAX_LEE_TRANSACTION_BYTES });
        }
        let (&tag, mut rest) = bytes.split_first().ok_or(LeeTxError::Empty)?;
        match tag {
            TAG_PUBLIC => {
                let tx =
                    LeePublicTransaction::deserialize(&mut rest).map_err(|e| LeeTxError::Malformed(e.to_string()))?;
                if !rest.is_empty() {
                    return Err(LeeTxError::Trailing(rest.len()));
                }
                Ok(Self::Public(tx))
            }
            TAG_PRIVACY_PRESERVING => Err(LeeTxError::Unsupported(UnsupportedKind::PrivacyPreserving)),
            TAG_PROGRAM_DEPLOYMENT => Err(LeeTxError::Unsupported(UnsupportedKind::ProgramDeployment)),
            other => Err(LeeTxError::UnknownTag(other)),
        }
    }
}
