//! libsecp256k1 and the program core's k256 verifier must accept and reject exactly the same
//! inputs: the BIP-340 test vectors, valid signatures from random keys, every single-bit
//! corruption of them, encodings at and around the field size and the curve order, and random
//! bytes. The libsecp256k1 [`Signer`] must produce the k256 signer's exact bytes and reject the
//! same secret keys.

use paystreams_lez_core::crypto::{SecretKey, verify_bip340 as k256_verify};
use paystreams_sigcheck::{KeyCache, Signer, VerifyingKey, is_valid_public_key, verify_bip340 as libsecp_verify};
use proptest::prelude::*;

const VECTORS: &str = include_str!("data/bip340-vectors.csv");

/// The field size p and the curve order n, big-endian.
const FIELD_SIZE: &str = "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC2F";
const CURVE_ORDER: &str = "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141";

fn h<const N: usize>(text: &str) -> [u8; N] {
    let bytes = hex::decode(text).expect("hex in test data");
    bytes.try_into().expect("length in test data")
}

/// Both verifiers, asserted to agree; returns their common answer.
fn both(key: &[u8; 32], message: &[u8; 32], signature: &[u8; 64]) -> bool {
    let fast = libsecp_verify(key, message, signature);
    let reference = k256_verify(key, message, signature);
    // The parsed-once key answers as the one-shot verifier (and refuses to parse exactly the keys
    // the one-shot verifier rejects for their encoding).
    let parsed = VerifyingKey::from_bytes(key);
    assert_eq!(parsed.is_some(), is_valid_public_key(key));
    // A cache of parsed keys answers the same when it parses the key and when it keeps it (a
    // small cache, so the property runs also evict).
    static CACHE: std::sync::LazyLock<KeyCache> = std::sync::LazyLock::new(|| KeyCache::new(32));
    assert_eq!(CACHE.parse(key), parsed, "the cache parsed another key: {}", hex::encode(key));
    assert_eq!(CACHE.parse(key), parsed, "the cache kept another key: {}", hex::encode(key));
    assert!(CACHE.len() <= 32);
    assert_eq!(
        parsed.is_some_and(|k| k.verify(message, signature)),
        fast,
        "parsed key disagrees: key {}",
        hex::encode(key)
    );
    assert_eq!(
        fast,
        reference,
        "verifiers disagree: key {} message {} signature {}",
        hex::encode(key),
        hex::encode(message),
        hex::encode(signature)
    );
    fast
}

fn add_one(mut value: [u8; 32]) -> [u8; 32] {
    for byte in value.iter_mut().rev() {
        let (next, carry) = byte.overflowing_add(1);
        *byte = next;
        if !carry {
            break;
        }
    }
    value
}

fn sub_one(mut value: [u8; 32]) -> [u8; 32] {
    for byte in value.iter_mut().rev() {
        let (next, borrow) = byte.overflowing_sub(1);
        *byte = next;
        if !borrow {
            break;
        }
    }
    value
}

#[test]
fn bip340_vectors_give_the_expected_answer_on_both() {
    let mut checked = 0;
    for line in VECTORS.lines().skip(1) {
        let fields: Vec<&str> = line.split(',').collect();
        let (index, secret, public, aux, message, signature, expected) =
            (fields[0], fields[1], fields[2], fields[3], fields[4], fields[5], fields[6]);
        let key: [u8; 32] = h(public);
        let message: [u8; 32] = h(message);
        let signature: [u8; 64] = h(signature);
        let expected = expected == "TRUE";
        assert_eq!(both(&key, &message, &signature), expected, "vector {index}");
        if !secret.is_empty() {
            let signer = SecretKey::from_bytes(&h(secret)).expect("vector secret key");
            assert_eq!(signer.public_key().to_bytes(), key, "vector {index} public key");
            assert_eq!(signer.sign_with_aux(&message, &h(aux)).0, signature, "vector {index} signature");
            let fast = Signer::from_secret_bytes(&h(secret)).expect("vector secret key");
            assert_eq!(fast.public_key(), key, "vector {index} public key (libsecp256k1)");
            assert_eq!(fast.sign_bip340(&message, &h(aux)), signature, "vector {index} signature (libsecp256k1)");
        }
        assert_eq!(is_valid_public_key(&key), paystreams_lez_core::crypto::PublicKey::from_bytes(key).is_ok());
        checked += 1;
    }
    assert_eq!(checked, 15, "vectors 0 to 14 are all read");
}

#[test]
fn every_single_bit_flip_of_a_valid_signature_is_rejected_by_both() {
    let signer = SecretKey::from_bytes(&[7; 32]).expect("valid key");
    let key = signer.public_key().to_bytes();
    let message = [0x5a; 32];
    let signature = signer.sign_with_aux(&message, &[1; 32]).0;
    assert!(both(&key, &message, &signature));
    for bit in 0..512 {
        let mut bad = signature;
        bad[bit / 8] ^= 1 << (bit % 8);
        assert!(!both(&key, &message, &bad), "signature bit {bit}");
    }
    for bit in 0..256 {
        let mut bad = message;
        bad[bit / 8] ^= 1 << (bit % 8);
        assert!(!both(&key, &bad, &signature), "message bit {bit}");
        let mut bad_key = key;
        bad_key[bit / 8] ^= 1 << (bit % 8);
        assert!(!both(&bad_key, &message, &signature), "key bit {bit}");
    }
}

#[test]
fn encodings_around_the_field_size_and_curve_order_agree() {
    let field: [u8; 32] = h(FIELD_SIZE);
    let order: [u8; 32] = h(CURVE_ORDER);
    let signer = SecretKey::from_bytes(&[9; 32]).expect("valid key");
    let valid_key = signer.public_key().to_bytes();
    let message = [3; 32];
    let valid = signer.sign_with_aux(&message, &[0; 32]).0;
    let mut r_valid = [0; 32];
    r_valid.copy_from_slice(&valid[..32]);
    let mut s_valid = [0; 32];
    s_valid.copy_from_slice(&valid[32..]);

    let keys = [valid_key, [0; 32], add_one([0; 32]), sub_one(field), field, add_one(field), [0xff; 32]];
    let rs = [r_valid, [0; 32], add_one([0; 32]), sub_one(field), field, add_one(field), [0xff; 32]];
    let ss = [s_valid, [0; 32], add_one([0; 32]), sub_one(order), order, add_one(order), [0xff; 32]];
    let mut accepted = 0;
    for key in &keys {
        assert_eq!(is_valid_public_key(key), paystreams_lez_core::crypto::PublicKey::from_bytes(*key).is_ok());
        for r in &rs {
            for s in &ss {
                let mut signature = [0; 64];
                signature[..32].copy_from_slice(r);
                signature[32..].copy_from_slice(s);
                if both(key, &message, &signature) {
                    accepted += 1;
                }
            }
        }
    }
    assert_eq!(accepted, 1, "only the genuine signature verifies");
}

/// Both signers, asserted to accept the same secret keys and to sign identically.
fn both_sign(secret: &[u8; 32], message: &[u8; 32], aux: &[u8; 32]) -> Option<[u8; 64]> {
    let reference = SecretKey::from_bytes(secret).ok();
    let fast = Signer::from_secret_bytes(secret);
    assert_eq!(fast.is_some(), reference.is_some(), "signers disagree on secret key {}", hex::encode(secret));
    let (reference, fast) = (reference?, fast?);
    assert_eq!(fast.public_key(), reference.public_key().to_bytes());
    let signature = fast.sign_bip340(message, aux);
    assert_eq!(signature, reference.sign_with_aux(message, aux).0, "signatures differ for key {}", hex::encode(secret));
    Some(signature)
}

#[test]
fn signers_reject_the_same_secret_keys_at_the_edges() {
    let order: [u8; 32] = h(CURVE_ORDER);
    // The field size p is above the curve order n, so it is not a key either.
    let rejected = [[0; 32], order, add_one(order), h(FIELD_SIZE), [0xff; 32]];
    for secret in rejected {
        assert!(both_sign(&secret, &[1; 32], &[2; 32]).is_none(), "{} is not a key", hex::encode(secret));
    }
    let accepted = [add_one([0; 32]), sub_one(order), sub_one(sub_one(order)), [0x7f; 32]];
    for secret in accepted {
        let signature = both_sign(&secret, &[1; 32], &[2; 32]).expect("a key");
        let key = Signer::from_secret_bytes(&secret).expect("a key").public_key();
        assert!(both(&key, &[1; 32], &signature));
    }
}

#[test]
fn key_cache_stays_within_its_bound_and_keeps_answering() {
    let cache = KeyCache::new(64);
    assert!(cache.is_empty());
    let keys: Vec<[u8; 32]> = (1..=1_000_u32)
        .filter_map(|n| {
            let mut secret = [0; 32];
            secret[28..].copy_from_slice(&n.to_be_bytes());
            Signer::from_secret_bytes(&secret).map(|signer| signer.public_key())
        })
        .collect();
    assert_eq!(keys.len(), 1_000);
    for round in 0..2 {
        for key in &keys {
            assert_eq!(cache.parse(key), VerifyingKey::from_bytes(key), "round {round}");
            assert!(cache.len() <= 64, "{} keys kept", cache.len());
        }
    }
    // Keys that do not parse are refused and not kept.
    let len = cache.len();
    let mut off_curve = [0; 32];
    off_curve[31] = 5;
    assert_eq!(cache.parse(&off_curve), None);
    assert_eq!(cache.len(), len);
}

#[test]
fn signer_debug_does_not_print_the_secret() {
    let secret = [0x42; 32];
    let signer = Signer::from_secret_bytes(&secret).expect("a key");
    let text = format!("{signer:?}");
    assert!(text.contains(&hex::encode(signer.public_key())));
    assert!(!text.contains(&hex::encode(secret)));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_keys_sign_and_both_accept(secret in any::<[u8; 32]>(), message in any::<[u8; 32]>(), aux in any::<[u8; 32]>()) {
        // Zero and out-of-range scalars are not keys; both sides only see valid ones here.
        if let Ok(signer) = SecretKey::from_bytes(&secret) {
            let key = signer.public_key().to_bytes();
            let signature = signer.sign_with_aux(&message, &aux).0;
            prop_assert!(both(&key, &message, &signature));
            let mut other = message;
            other[0] ^= 0x80;
            prop_assert!(!both(&key, &other, &signature));
        }
    }

    #[test]
    fn random_keys_sign_identically_on_both(secret in any::<[u8; 32]>(), message in any::<[u8; 32]>(), aux in any::<[u8; 32]>()) {
        if let Some(signature) = both_sign(&secret, &message, &aux) {
            let key = Signer::from_secret_bytes(&secret).map(|s| s.public_key()).unwrap_or_default();
            prop_assert!(both(&key, &message, &signature));
        }
    }

    #[test]
    fn random_bytes_agree(key in any::<[u8; 32]>(), message in any::<[u8; 32]>(), r in any::<[u8; 32]>(), s in any::<[u8; 32]>()) {
        let mut signature = [0; 64];
        signature[..32].copy_from_slice(&r);
        signature[32..].copy_from_slice(&s);
        both(&key, &message, &signature);
        prop_assert_eq!(is_valid_public_key(&key), paystreams_lez_core::crypto::PublicKey::from_bytes(key).is_ok());
    }

    #[test]
    fn a_valid_signature_under_another_key_agrees(a in any::<[u8; 32]>(), b in any::<[u8; 32]>(), message in any::<[u8; 32]>()) {
        if let (Ok(signer), Ok(other)) = (SecretKey::from_bytes(&a), SecretKey::from_bytes(&b)) {
            let signature = signer.sign_with_aux(&message, &[0; 32]).0;
            let expected = signer.public_key() == other.public_key();
            prop_assert_eq!(both(&other.public_key().to_bytes(), &message, &signature), expected);
        }
    }
}
