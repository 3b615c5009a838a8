//! Public transactions in LEZ's shape: a message, BIP-340 signatures over its hash, and the limits
//! this implementation puts on them.

use std::collections::BTreeSet;

use borsh::{BorshDeserialize, BorshSerialize};
use paystreams_lez_core::{
    AccountId, ProgramId,
    crypto::{PublicKey, SecretKey, Signature},
    domain_prefix, sha256,
};

use crate::TxError;

/// Most accounts one transaction may name. The payment-streams program needs at most seven and
/// the builtins at most two; 32 leaves room for other programs while bounding the work a
/// transaction can ask for before it pays for it with a signature check.
pub const MAX_ACCOUNTS_PER_TX: usize = 32;

/// Most signatures one transaction may carry. Signature checks dominate validation cost, so the
/// bound is what caps the CPU one transaction can burn before being refused.
pub const MAX_SIGNATURES_PER_TX: usize = 8;

/// Largest instruction, in bytes. The payment-streams program's largest instruction is about
/// 200 bytes and the builtins' under 64; 16 KiB leaves room for other programs.
pub const MAX_INSTRUCTION_BYTES: usize = 16 * 1024;

/// Largest Borsh-encoded transaction, in bytes. Checked before decoding, so a peer cannot make
/// the node allocate for an oversized payload.
pub const MAX_TRANSACTION_BYTES: usize = 64 * 1024;

/// Most chained calls one transaction may trigger in total (LEZ's `MAX_NUMBER_CHAINED_CALLS`):
/// the top-level call plus at most 10 chained calls.
pub const MAX_CHAINED_CALLS: usize = 10;

/// Domain prefix of the public message hash, as LEZ's testnet signs it.
pub const MESSAGE_PREFIX: [u8; 32] = domain_prefix("/LEE/v0.3/Message/Public/");

/// What the signers sign: which program to run on which accounts, and one nonce per signer.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct Message {
    pub program_id: ProgramId,
    pub account_ids: Vec<AccountId>,
    /// One per signature, in witness-set order; each must equal that signer's current nonce.
    pub nonces: Vec<u128>,
    pub instruction_data: Vec<u8>,
}

impl Message {
    /// `SHA-256("/LEE/v0.3/Message/Public/" padded to 32 || borsh(message))`: the 32-byte
    /// prehash every signer signs.
    #[must_use]
    pub fn hash(&self) -> [u8; 32] {
        // Writing Borsh into a Vec cannot fail.
        let encoded = borsh::to_vec(self).unwrap_or_default();
        sha256(&[&MESSAGE_PREFIX, &encoded])
    }
}

/// The signatures over [`Message::hash`] and the x-only keys that made them.
#[derive(Clone, PartialEq, Eq, Debug, Default, BorshSerialize, BorshDeserialize)]
pub struct WitnessSet {
    pub signatures_and_public_keys: Vec<(Signature, PublicKey)>,
}

/// A signed public transaction.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct Transaction {
    pub message: Message,
    pub witness_set: WitnessSet,
}

impl Transaction {
    /// Signs `message` with each key, in order (the nonces in the message must follow the same
    /// order).
    #[must_use]
    pub fn sign(message: Message, keys: &[&SecretKey]) -> Self {
        let hash = message.hash();
        let signatures_and_public_keys = keys.iter().map(|key| (key.sign(&hash), key.public_key())).collect();
        Self { message, witness_set: WitnessSet { signatures_and_public_keys } }
    }

    /// `SHA-256(borsh(tx))`, signatures included (as LEZ): the same message signed twice has
    /// two hashes, because BIP-340 signing uses fresh auxiliary randomness.
    #[must_use]
    pub fn hash(&self) -> [u8; 32] {
        sha256(&[&self.to_bytes()])
    }

    /// The Borsh encoding.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        // Writing Borsh into a Vec cannot fail.
        borsh::to_vec(self).unwrap_or_default()
    }

    /// Decodes a transaction, refusing oversized input before decoding and trailing bytes after.
    ///
    /// # Errors
    /// [`TxError::TransactionTooLarge`], [`TxError::MalformedTransaction`], or any limit of
    /// [`Transaction::check_limits`].
    pub fn decode(bytes: &[u8]) -> Result<Self, TxError> {
        if bytes.len() > MAX_TRANSACTION_BYTES {
            return Err(TxError::TransactionTooLarge { size: bytes.len(), max: MAX_TRANSACTION_BYTES });
        }
        let mut rest = bytes;
        let tx = Self::deserialize(&mut rest).map_err(|e| TxError::MalformedTransaction { detail: e.to_string() })?;
        if !rest.is_empty() {
            return Err(TxError::MalformedTransaction { detail: format!("{} trailing bytes", rest.len()) });
        }
        tx.check_limits()?;
        Ok(tx)
    }

    /// The account ids of the signers, in witness-set order.
    #[must_use]
    pub fn signer_ids(&self) -> Vec<AccountId> {
        self.witness_set.signatures_and_public_keys.iter().map(|(_, key)| key.account_id()).collect()
    }

    /// Checks the named limits (sizes and counts). Cheap; runs before any signature check.
    ///
    /// # Errors
    /// The first limit exceeded.
    pub fn check_limits(&self) -> Result<(), TxError> {
        let accounts = self.message.account_ids.len();
        if accounts > MAX_ACCOUNTS_PER_TX {
            return Err(TxError::TooManyAccounts { count: accounts, max: MAX_ACCOUNTS_PER_TX });
        }
        let signatures = self.witness_set.signatures_and_public_keys.len();
        if signatures > MAX_SIGNATURES_PER_TX {
            return Err(TxError::TooManySignatures { count: signatures, max: MAX_SIGNATURES_PER_TX });
        }
        let instruction = self.message.instruction_data.len();
        if instruction > MAX_INSTRUCTION_BYTES {
            return Err(TxError::InstructionTooLarge { size: instruction, max: MAX_INSTRUCTION_BYTES });
        }
        // Only in-memory transactions can get here oversized: `decode` refuses large input first.
        let size = borsh::object_length(self).unwrap_or(usize::MAX);
        if size > MAX_TRANSACTION_BYTES {
            return Err(TxError::TransactionTooLarge { size, max: MAX_TRANSACTION_BYTES });
        }
        Ok(())
    }

    /// The stateless checks in LEZ's order, before signatures: limits, distinct account ids,
    /// one nonce per signature, and (a deliberate addition) distinct signers, so no nonce is
    /// bumped twice.
    ///
    /// # Errors
    /// The first check that fails.
    pub fn check_structure(&self) -> Result<(), TxError> {
        self.check_limits()?;
        let mut seen = BTreeSet::new();
        for id in &self.message.account_ids {
            if !seen.insert(*id) {
                return Err(TxError::DuplicateAccountIds { account_id: *id });
            }
        }
        let signatures = self.witness_set.signatures_and_public_keys.len();
        if self.message.nonces.len() != signatures {
            return Err(TxError::NonceCountMismatch { nonces: self.message.nonces.len(), signatures });
        }
        let mut signers = BTreeSet::new();
        for signer in self.signer_ids() {
            if !signers.insert(signer) {
                return Err(TxError::DuplicateSigner { signer });
            }
        }
        Ok(())
    }

    /// Verifies every signature over the message hash.
    ///
    /// # Errors
    /// [`TxError::TooManySignatures`] before any check, else the first
    /// [`TxError::InvalidSignature`].
    pub fn verify_signatures(&self) -> Result<(), TxError> {
        let count = self.witness_set.signatures_and_public_keys.len();
        if count > MAX_SIGNATURES_PER_TX {
            return Err(TxError::TooManySignatures { count, max: MAX_SIGNATURES_PER_TX });
        }
        let hash = self.message.hash();
        for (index, (signature, key)) in self.witness_set.signatures_and_public_keys.iter().enumerate() {
            // libsecp256k1 off-chain; the program core keeps k256 (same answers, tested).
            if !paystreams_sigcheck::verify_bip340(&key.to_bytes(), &hash, &signature.0) {
                return Err(TxError::InvalidSignature { index, signer: key.account_id() });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> SecretKey {
        SecretKey::from_bytes(&[byte; 32]).expect("valid key")
    }

    fn message() -> Message {
        Message {
            program_id: ProgramId([1; 8]),
            account_ids: vec![AccountId([2; 32])],
            nonces: vec![0],
            instruction_data: vec![1, 2, 3],
        }
    }

    #[test]
    fn signed_transactions_verify_and_round_trip() {
        let tx = Transaction::sign(message(), &[&key(7)]);
        tx.verify_signatures().expect("valid");
        assert_eq!(tx.signer_ids(), vec![key(7).account_id()]);
        let decoded = Transaction::decode(&tx.to_bytes()).expect("decodes");
        assert_eq!(decoded, tx);
        assert_eq!(decoded.hash(), tx.hash());
    }

    #[test]
    fn message_hash_is_domain_separated_borsh() {
        let m = message();
        let mut expected = MESSAGE_PREFIX.to_vec();
        expected.extend(borsh::to_vec(&m).expect("encodes"));
        assert_eq!(m.hash(), sha256(&[&expected]));
    }

    #[test]
    fn decode_refuses_trailing_bytes_and_oversized_input() {
        let tx = Transaction::sign(message(), &[&key(7)]);
        let mut bytes = tx.to_bytes();
        bytes.push(0);
        assert_eq!(Transaction::decode(&bytes).map_err(|e| e.code()), Err(1002));
        let huge = vec![0_u8; MAX_TRANSACTION_BYTES + 1];
        assert_eq!(Transaction::decode(&huge).map_err(|e| e.code()), Err(1001));
        assert_eq!(Transaction::decode(&[1, 2, 3]).map_err(|e| e.code()), Err(1002));
    }

    #[test]
    fn limits_are_enforced() {
        let mut m = message();
        m.account_ids = (0..=MAX_ACCOUNTS_PER_TX).map(|i| AccountId([u8::try_from(i).expect("small"); 32])).collect();
        let tx = Transaction { message: m, witness_set: WitnessSet::default() };
        assert_eq!(tx.check_limits().map_err(|e| e.code()), Err(1003));
        let mut m = message();
        m.instruction_data = vec![0; MAX_INSTRUCTION_BYTES + 1];
        let tx = Transaction { message: m, witness_set: WitnessSet::default() };
        assert_eq!(tx.check_limits().map_err(|e| e.code()), Err(1005));
        let keys: Vec<SecretKey> = (1..=9).map(key).collect();
        let refs: Vec<&SecretKey> = keys.iter().collect();
        let tx = Transaction::sign(message(), &refs);
        assert_eq!(tx.verify_signatures().map_err(|e| e.code()), Err(1004));
    }
}
