//! Session keys parsed once. Checking a stream proof parses the session's x-only public key (a
//! field square root) before the signature check; a session signs many requests, so the engine
//! keeps the parsed keys of recently active sessions and verifies with them.

use std::{
    collections::HashMap,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use paystreams_sigcheck::VerifyingKey;
use paystreams_wire::{StreamProof, StreamProposal, WireError, verify_proposal, verify_stream_proof};

/// At most this many parsed keys are held (~100 B each). When full the cache starts over, so a
/// provider with more active sessions than this parses some keys again and nothing else changes.
pub const PARSED_KEYS_MAX: usize = 16_384;

/// Parsed session keys, bounded by [`PARSED_KEYS_MAX`].
#[derive(Debug, Default)]
pub struct KeyCache {
    keys: Mutex<HashMap<[u8; 32], VerifyingKey>>,
    /// Signature checks made (stream proofs and proposals), for measurements and tests.
    checks: AtomicU64,
}

impl KeyCache {
    /// Whether `proof` is the session key's signature over `digest`: the same answer as
    /// [`verify_stream_proof`], which it falls back to if the cache's lock is poisoned.
    pub fn verify(&self, session_key: &[u8; 32], digest: &[u8; 32], proof: &StreamProof) -> bool {
        self.checks.fetch_add(1, Ordering::Relaxed);
        let Ok(mut keys) = self.keys.lock() else {
            return verify_stream_proof(session_key, digest, proof);
        };
        let key = match keys.get(session_key) {
            Some(key) => *key,
            None => {
                // An unparseable key verifies nothing; it is not cached.
                let Some(key) = VerifyingKey::from_bytes(session_key) else { return false };
                if keys.len() >= PARSED_KEYS_MAX {
                    keys.clear();
                }
                keys.insert(*session_key, key);
                key
            }
        };
        drop(keys);
        key.verify(digest, &proof.signature)
    }

    /// Checks a proposal's owner signature ([`verify_proposal`]), counted with the proof checks.
    ///
    /// # Errors
    /// As [`verify_proposal`].
    pub fn verify_proposal(&self, proposal: &StreamProposal) -> Result<(), WireError> {
        self.checks.fetch_add(1, Ordering::Relaxed);
        verify_proposal(proposal)
    }

    /// Signature checks made so far.
    pub fn checks(&self) -> u64 {
        self.checks.load(Ordering::Relaxed)
    }

    /// Parsed keys held now.
    pub fn len(&self) -> usize {
        self.keys.lock().map_or(0, |keys| keys.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use paystreams_lez_core::crypto::SecretKey;
    use paystreams_wire::sign_stream_proof;

    use super::*;

    #[test]
    fn answers_as_the_one_shot_verifier_and_stays_bounded() {
        let cache = KeyCache::default();
        let session = SecretKey::from_bytes(&[5; 32]).expect("key");
        let key = session.public_key().to_bytes();
        let digest = [1; 32];
        let proof = sign_stream_proof(&session, 3, &digest);
        // Twice: the first parses and caches, the second uses the cached key.
        for _ in 0..2 {
            assert!(cache.verify(&key, &digest, &proof));
            assert!(!cache.verify(&key, &[2; 32], &proof));
        }
        assert_eq!(cache.len(), 1);
        let mut forged = proof;
        forged.signature[10] ^= 1;
        assert_eq!(cache.verify(&key, &digest, &forged), verify_stream_proof(&key, &digest, &forged));
        assert!(!cache.verify(&key, &digest, &forged));
        // A key that is not a curve point verifies nothing and is not cached.
        let not_a_point = [0xff; 32];
        assert!(!cache.verify(&not_a_point, &digest, &proof));
        assert_eq!(cache.len(), 1);

        for i in 0..PARSED_KEYS_MAX {
            let mut bytes = [0_u8; 32];
            bytes[..8].copy_from_slice(&(i as u64 + 100).to_be_bytes());
            bytes[31] = 1;
            let other = SecretKey::from_bytes(&bytes).expect("key").public_key().to_bytes();
            let _ = cache.verify(&other, &digest, &proof);
            assert!(cache.len() <= PARSED_KEYS_MAX);
        }
        // The original key still verifies after the cache started over.
        assert!(cache.verify(&key, &digest, &proof));
        assert!(cache.len() <= PARSED_KEYS_MAX);
    }
}
