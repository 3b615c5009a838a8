//! Public transactions: LEZ's own types (`paystreams_lez_core::lee_transaction`), re-exported
//! under the names the tree uses, and the limits and checks this implementation puts on them.
//!
//! Submission bytes are LEZ's `LeeTransaction` envelope (tag 0 `Public`, then the Borsh public
//! transaction); the message carries the instruction as RISC Zero serde words; the hash is LEZ's
//! (`SHA-256` of the public transaction's Borsh, no tag). Envelopes of other kinds (1
//! `PrivacyPreserving`, 2 `ProgramDeployment`) are refused by name.

use std::collections::BTreeSet;

pub use paystreams_lez_core::lee_transaction::{
    LeeMessage as Message, LeePublicTransaction as Transaction, LeeWitnessSet as WitnessSet,
    MAX_LEE_TRANSACTION_BYTES as MAX_TRANSACTION_BYTES, PUBLIC_MESSAGE_PREFIX as MESSAGE_PREFIX,
};
use paystreams_lez_core::{
    crypto::{PublicKey, Signature},
    lee_transaction::LeeTxError,
};

use paystreams_sigcheck::KeyCache;

use crate::TxError;

/// Most accounts one transaction may name. The payment-streams program needs at most seven and
/// the builtins at most two; 32 leaves room for other programs while bounding the work a
/// transaction can ask for before it pays for it with a signature check.
pub const MAX_ACCOUNTS_PER_TX: usize = 32;

/// Most signatures one transaction may carry. Signature checks dominate validation cost, so the
/// bound is what caps the CPU one transaction can burn before being refused.
pub const MAX_SIGNATURES_PER_TX: usize = 8;

/// Largest instruction, in RISC Zero serde words (4 bytes each). The payment-streams program's
/// largest instruction (a claim with a delivery receipt) is under 200 words and the builtins'
/// under 20; 4096 words (16 KiB) leaves room for other programs.
pub const MAX_INSTRUCTION_WORDS: usize = 4096;

/// Most chained calls one transaction may trigger in total (LEZ's `MAX_NUMBER_CHAINED_CALLS`):
/// the top-level call plus at most 10 chained calls.
pub const MAX_CHAINED_CALLS: usize = 10;

/// The runtime's checks on a public transaction, before and around execution.
pub trait TransactionChecks: Sized {
    /// Decodes submission bytes (a `LeeTransaction` envelope), refusing oversized input before
    /// decoding, trailing bytes after it, other envelope kinds by name, and any limit of
    /// [`TransactionChecks::check_limits`].
    ///
    /// # Errors
    /// [`TxError::TransactionTooLarge`], [`TxError::UnsupportedTransaction`],
    /// [`TxError::MalformedTransaction`], or a limit.
    fn decode(bytes: &[u8]) -> Result<Self, TxError>;

    /// Checks the named limits (sizes and counts). Cheap; runs before any signature check.
    ///
    /// # Errors
    /// The first limit exceeded.
    fn check_limits(&self) -> Result<(), TxError>;

    /// The stateless checks in LEZ's order, before signatures: limits, distinct account ids,
    /// one nonce per signature, and (a deliberate addition) distinct signers, so no nonce is
    /// bumped twice.
    ///
    /// # Errors
    /// The first check that fails.
    fn check_structure(&self) -> Result<(), TxError>;

    /// Verifies every signature over the message hash.
    ///
    /// # Errors
    /// [`TxError::TooManySignatures`] before any check, else the first
    /// [`TxError::InvalidSignature`].
    fn verify_signatures(&self) -> Result<(), TxError>;

    /// [`TransactionChecks::decode`], [`TransactionChecks::check_structure`] and
    /// [`TransactionChecks::verify_signatures`] in one, as a node runs them at admission, with
    /// each public key lifted to a curve point once (libsecp256k1, through `keys`, which keeps
    /// the keys it parsed for the signers' next transactions) where the three apart lift it
    /// twice (k256 while decoding, libsecp256k1 to verify). Accepts exactly what the three
    /// accept; when a transaction has several faults, the one reported may differ.
    ///
    /// # Errors
    /// As the three.
    fn decode_and_verify(bytes: &[u8], keys: &KeyCache) -> Result<Self, TxError>;
}

impl From<LeeTxError> for TxError {
    fn from(error: LeeTxError) -> Self {
        match error {
            LeeTxError::TooLarge { size, max } => Self::TransactionTooLarge { size, max },
            LeeTxError::Unsupported(kind) => Self::UnsupportedTransaction { detail: kind.to_string() },
            other => Self::MalformedTransaction { detail: other.to_string() },
        }
    }
}

impl TransactionChecks for Transaction {
    fn decode(bytes: &[u8]) -> Result<Self, TxError> {
        let tx = Self::from_envelope(bytes)?;
        tx.check_limits()?;
        Ok(tx)
    }

    fn check_limits(&self) -> Result<(), TxError> {
        let accounts = self.message.account_ids.len();
        if accounts > MAX_ACCOUNTS_PER_TX {
            return Err(TxError::TooManyAccounts { count: accounts, max: MAX_ACCOUNTS_PER_TX });
        }
        let signatures = self.witness_set.signatures_and_public_keys.len();
        if signatures > MAX_SIGNATURES_PER_TX {
            return Err(TxError::TooManySignatures { count: signatures, max: MAX_SIGNATURES_PER_TX });
        }
        let instruction = self.message.instruction_data.len();
        if instruction > MAX_INSTRUCTION_WORDS {
            return Err(TxError::InstructionTooLarge { words: instruction, max: MAX_INSTRUCTION_WORDS });
        }
        // Only in-memory transactions can get here oversized: `decode` refuses large input first.
        // The envelope adds one tag byte to the Borsh length.
        let size = borsh::object_length(self).map_or(usize::MAX, |n| n.saturating_add(1));
        if size > MAX_TRANSACTION_BYTES {
            return Err(TxError::TransactionTooLarge { size, max: MAX_TRANSACTION_BYTES });
        }
        Ok(())
    }

    fn check_structure(&self) -> Result<(), TxError> {
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

    fn verify_signatures(&self) -> Result<(), TxError> {
        // libsecp256k1 off-chain; the program core keeps k256 (same answers, tested).
        first_invalid_signature(self, |_, key, hash, signature| {
            paystreams_sigcheck::verify_bip340(&key.to_bytes(), hash, &signature.0)
        })
    }

    fn decode_and_verify(bytes: &[u8], keys: &KeyCache) -> Result<Self, TxError> {
        let (tx, keys) = Self::from_envelope_with_keys(bytes, |key| keys.parse(key))?;
        tx.check_structure()?;
        first_invalid_signature(&tx, |index, _, hash, signature| {
            keys.get(index).is_some_and(|key| key.verify(hash, &signature.0))
        })?;
        Ok(tx)
    }
}

/// [`TxError::TooManySignatures`] before any check, else the first signature (by witness-set
/// index) that `valid` refuses over the message hash.
fn first_invalid_signature(
    tx: &Transaction,
    mut valid: impl FnMut(usize, &PublicKey, &[u8; 32], &Signature) -> bool,
) -> Result<(), TxError> {
    let count = tx.witness_set.signatures_and_public_keys.len();
    if count > MAX_SIGNATURES_PER_TX {
        return Err(TxError::TooManySignatures { count, max: MAX_SIGNATURES_PER_TX });
    }
    let hash = tx.message.hash();
    for (index, (signature, key)) in tx.witness_set.signatures_and_public_keys.iter().enumerate() {
        if !valid(index, key, &hash, signature) {
            return Err(TxError::InvalidSignature { index, signer: key.account_id() });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use paystreams_lez_core::{AccountId, ProgramId, crypto::SecretKey, sha256};

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
        let decoded = Transaction::decode(&tx.envelope_bytes()).expect("decodes");
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
        let mut bytes = tx.envelope_bytes();
        bytes.push(0);
        assert_eq!(Transaction::decode(&bytes).map_err(|e| e.code()), Err(1002));
        let huge = vec![0_u8; MAX_TRANSACTION_BYTES + 1];
        assert_eq!(Transaction::decode(&huge).map_err(|e| e.code()), Err(1001));
        assert_eq!(Transaction::decode(&[0, 2, 3]).map_err(|e| e.code()), Err(1002));
        assert_eq!(Transaction::decode(&[1, 2, 3]).map_err(|e| e.code()), Err(1006));
        assert_eq!(Transaction::decode(&[2, 2, 3]).map_err(|e| e.code()), Err(1006));
        // Without the envelope tag, a bare public transaction is refused.
        assert!(Transaction::decode(&tx.borsh_bytes()).is_err());
    }

    /// An x coordinate with no curve point (x = 5: x³ + 7 = 132 is not a square mod p).
    const OFF_CURVE: [u8; 32] = {
        let mut x = [0; 32];
        x[31] = 5;
        x
    };

    /// Admission's one pass and the checks apart give the same answer, in the same words, for a
    /// valid transaction, a wrong signature and a key off the curve; and the one pass leaves
    /// Borsh decoding's own key check in force.
    #[test]
    fn decode_and_verify_answers_as_the_checks_apart() {
        let apart = |bytes: &[u8]| {
            Transaction::decode(bytes).and_then(|tx| {
                tx.check_structure()?;
                tx.verify_signatures()?;
                Ok(tx)
            })
        };
        let keys = KeyCache::new(8);
        let mut two = message();
        two.nonces.push(0);
        let valid = Transaction::sign(two, &[&key(7), &key(8)]);
        assert_eq!(Transaction::decode_and_verify(&valid.envelope_bytes(), &keys), Ok(valid.clone()));

        let mut wrong = valid.clone();
        let first = valid.witness_set.signatures_and_public_keys.first().expect("two signatures").0;
        wrong.witness_set.signatures_and_public_keys.get_mut(1).expect("two signatures").0 = first;
        let wrong = wrong.envelope_bytes();
        let refused = Transaction::decode_and_verify(&wrong, &keys);
        assert_eq!(refused, apart(&wrong));
        assert_eq!(
            refused.map_err(|e| e.code()),
            Err(TxError::InvalidSignature { index: 1, signer: key(8).account_id() }.code())
        );

        let mut off_curve = valid.envelope_bytes();
        let key_bytes = key(8).public_key().to_bytes();
        let at = off_curve.windows(32).rposition(|w| w == key_bytes).expect("the second key is in the bytes");
        off_curve.get_mut(at..at + 32).expect("inside").copy_from_slice(&OFF_CURVE);
        let refused = Transaction::decode_and_verify(&off_curve, &keys);
        assert_eq!(refused, apart(&off_curve));
        assert!(
            refused.as_ref().is_err_and(|e| e.to_string().contains("not a valid x-only public key")),
            "{refused:?}"
        );
        // Decoding on this thread checks keys again after the one pass.
        assert_eq!(Transaction::decode(&off_curve), refused);
        assert!(Transaction::decode_and_verify(&valid.envelope_bytes(), &keys).is_ok());
    }

    #[test]
    fn limits_are_enforced() {
        let mut m = message();
        m.account_ids = (0..=MAX_ACCOUNTS_PER_TX).map(|i| AccountId([u8::try_from(i).expect("small"); 32])).collect();
        let tx = Transaction { message: m, witness_set: WitnessSet::default() };
        assert_eq!(tx.check_limits().map_err(|e| e.code()), Err(1003));
        let mut m = message();
        m.instruction_data = vec![0; MAX_INSTRUCTION_WORDS + 1];
        let tx = Transaction { message: m, witness_set: WitnessSet::default() };
        assert_eq!(tx.check_limits().map_err(|e| e.code()), Err(1005));
        let keys: Vec<SecretKey> = (1..=9).map(key).collect();
        let refs: Vec<&SecretKey> = keys.iter().collect();
        let tx = Transaction::sign(message(), &refs);
        assert_eq!(tx.verify_signatures().map_err(|e| e.code()), Err(1004));
    }
}
