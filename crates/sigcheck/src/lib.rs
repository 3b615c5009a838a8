//! BIP-340 Schnorr verification over 32-byte prehashes with libsecp256k1, for the checks that run
//! outside the program: the node's transaction signatures and the provider's stream proofs and
//! proposals.
//!
//! The program core verifies with k256 (pure Rust, portable to a zkVM guest) through
//! `paystreams_lez_core::crypto::verify_bip340`. This crate has the same signature and the same
//! answers — `tests/differential.rs` checks both on the BIP-340 test vectors and on random, edge
//! and malformed inputs — and is several times faster (`cargo bench -p paystreams-sigcheck`), so
//! off-chain verification uses it.

use secp256k1::{XOnlyPublicKey, schnorr};

/// Verifies a BIP-340 signature over a 32-byte prehash with raw key bytes. Returns false for an
/// invalid key or signature encoding as well as for a wrong signature, like the program core's
/// verifier.
#[must_use]
pub fn verify_bip340(x_only_public_key: &[u8; 32], prehash: &[u8; 32], signature: &[u8; 64]) -> bool {
    let Ok(key) = XOnlyPublicKey::from_byte_array(*x_only_public_key) else { return false };
    let signature = schnorr::Signature::from_byte_array(*signature);
    schnorr::verify(&signature, prehash, &key).is_ok()
}

/// True when the 32 bytes are the x coordinate of a curve point (a valid x-only public key).
#[must_use]
pub fn is_valid_public_key(x_only_public_key: &[u8; 32]) -> bool {
    XOnlyPublicKey::from_byte_array(*x_only_public_key).is_ok()
}
