//! BIP-340 Schnorr verification and signing over 32-byte prehashes with libsecp256k1, for the
//! work that runs outside the program: the node's transaction signatures, the provider's stream
//! proofs and proposals, and the user's per-request stream-proof signatures ([`Signer`]).
//!
//! The program core verifies with k256 (pure Rust, portable to a zkVM guest) through
//! `paystreams_lez_core::crypto::verify_bip340`. This crate has the same signature and the same
//! answers — `tests/differential.rs` checks both on the BIP-340 test vectors and on random, edge
//! and malformed inputs — and is several times faster (`cargo bench -p paystreams-sigcheck`), so
//! off-chain verification uses it. [`Signer`] produces byte-for-byte the signatures the program
//! core's k256 signer produces for the same key, message and auxiliary randomness (checked on the
//! BIP-340 signing vectors and random inputs), several times faster, and keeps the derived key
//! pair so repeated signing with one session key skips the key derivation.

use std::{
    collections::HashMap,
    fmt,
    sync::{Mutex, PoisonError},
};

use secp256k1::{Keypair, XOnlyPublicKey, schnorr};

/// Verifies a BIP-340 signature over a 32-byte prehash with raw key bytes. Returns false for an
/// invalid key or signature encoding as well as for a wrong signature, like the program core's
/// verifier.
#[must_use]
pub fn verify_bip340(x_only_public_key: &[u8; 32], prehash: &[u8; 32], signature: &[u8; 64]) -> bool {
    let Ok(key) = XOnlyPublicKey::from_byte_array(*x_only_public_key) else { return false };
    let signature = schnorr::Signature::from_byte_array(*signature);
    schnorr::verify(&signature, prehash, &key).is_ok()
}

/// An x-only public key parsed once (parsing lifts the x coordinate to a curve point with a
/// square root), for a verifier that checks many signatures under one key: a provider verifying
/// every request of a session. [`VerifyingKey::verify`] answers exactly as [`verify_bip340`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct VerifyingKey(XOnlyPublicKey);

impl VerifyingKey {
    /// `None` when the bytes are not the x coordinate of a curve point.
    #[must_use]
    pub fn from_bytes(x_only_public_key: &[u8; 32]) -> Option<Self> {
        XOnlyPublicKey::from_byte_array(*x_only_public_key).ok().map(Self)
    }

    /// Verifies a BIP-340 signature over a 32-byte prehash under this key.
    #[must_use]
    pub fn verify(&self, prehash: &[u8; 32], signature: &[u8; 64]) -> bool {
        schnorr::verify(&schnorr::Signature::from_byte_array(*signature), prehash, &self.0).is_ok()
    }
}

/// Keys parsed once and kept, for a verifier that sees the same signers' keys over and over (a
/// node admitting each user's transactions): parsing a key lifts its x coordinate with a field
/// square root, ~10% of a verification. Bounded: at most [`KeyCache::SHARDS`] × the capacity
/// per shard keys, an arbitrary one of a full shard making room for the next; keys that do not
/// parse are not kept. Shards keep two verifying threads off each other's lock. Answers exactly
/// as [`VerifyingKey::from_bytes`].
#[derive(Debug)]
pub struct KeyCache {
    shards: Vec<Mutex<HashMap<[u8; 32], VerifyingKey>>>,
    per_shard: usize,
}

impl KeyCache {
    /// How many shards the keys are spread over (by their first byte).
    pub const SHARDS: usize = 16;

    /// A cache of at most about `capacity` keys (rounded up to a multiple of [`Self::SHARDS`]).
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        let per_shard = capacity.div_ceil(Self::SHARDS).max(1);
        Self { shards: (0..Self::SHARDS).map(|_| Mutex::new(HashMap::new())).collect(), per_shard }
    }

    /// The parsed key, from the cache or parsed now (and kept); `None` when the bytes are not
    /// the x coordinate of a curve point.
    #[must_use]
    pub fn parse(&self, x_only_public_key: &[u8; 32]) -> Option<VerifyingKey> {
        let shard = self.shards.get(usize::from(x_only_public_key[0]) % Self::SHARDS)?;
        if let Some(key) = shard.lock().unwrap_or_else(PoisonError::into_inner).get(x_only_public_key) {
            return Some(*key);
        }
        // Parsed outside the lock: the other thread may parse the same key meanwhile.
        let key = VerifyingKey::from_bytes(x_only_public_key)?;
        let mut keys = shard.lock().unwrap_or_else(PoisonError::into_inner);
        if keys.len() >= self.per_shard
            && let Some(evicted) = keys.keys().next().copied()
        {
            keys.remove(&evicted);
        }
        keys.insert(*x_only_public_key, key);
        Some(key)
    }

    /// How many keys are kept.
    #[must_use]
    pub fn len(&self) -> usize {
        self.shards.iter().map(|shard| shard.lock().unwrap_or_else(PoisonError::into_inner).len()).sum()
    }

    /// Whether no key is kept.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// True when the 32 bytes are the x coordinate of a curve point (a valid x-only public key).
#[must_use]
pub fn is_valid_public_key(x_only_public_key: &[u8; 32]) -> bool {
    XOnlyPublicKey::from_byte_array(*x_only_public_key).is_ok()
}

/// A BIP-340 signing key held as a derived libsecp256k1 key pair. Its `Debug` never prints the
/// secret, and the key pair is overwritten when it is dropped.
pub struct Signer {
    keypair: Keypair,
    public_key: [u8; 32],
}

impl Signer {
    /// Derives the key pair (one scalar multiplication). `None` when the bytes are zero or not
    /// below the curve order, exactly the keys the program core rejects.
    #[must_use]
    pub fn from_secret_bytes(secret: &[u8; 32]) -> Option<Self> {
        let keypair = Keypair::from_secret_bytes(*secret).ok()?;
        let public_key = keypair.x_only_public_key().0.to_byte_array();
        Some(Self { keypair, public_key })
    }

    /// The x-only public key.
    #[must_use]
    pub const fn public_key(&self) -> [u8; 32] {
        self.public_key
    }

    /// Signs a 32-byte prehash with BIP-340 and the given auxiliary randomness.
    #[must_use]
    pub fn sign_bip340(&self, prehash: &[u8; 32], aux_rand: &[u8; 32]) -> [u8; 64] {
        schnorr::sign_with_aux_rand(prehash, &self.keypair, aux_rand).to_byte_array()
    }
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signer(public ")?;
        for byte in self.public_key {
            write!(f, "{byte:02x}")?;
        }
        write!(f, ")")
    }
}

impl Drop for Signer {
    fn drop(&mut self) {
        self.keypair.non_secure_erase();
    }
}
