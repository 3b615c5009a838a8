//! BIP-340 verification throughput: k256 (the program core's verifier) against libsecp256k1
//! (this crate), side by side on the same signatures in one run; then signing with one held key
//! (what a user does per request), k256's `SecretKey` against this crate's `Signer`; then the
//! public-key check every decoded transaction runs (`PublicKey::from_bytes`), k256 against
//! libsecp256k1.
//!
//! `cargo bench -p paystreams-sigcheck --bench verify [-- SIGNATURES ROUNDS]`

use std::{hint::black_box, time::Instant};

use paystreams_lez_core::crypto::{PublicKey, SecretKey, verify_bip340 as k256_verify};
use paystreams_sigcheck::{Signer, is_valid_public_key, verify_bip340 as libsecp_verify};

type Verifier = fn(&[u8; 32], &[u8; 32], &[u8; 64]) -> bool;
type Sign<'a> = &'a dyn Fn(&[u8; 32], &[u8; 32]) -> [u8; 64];

fn rate(name: &str, verify: Verifier, set: &[([u8; 32], [u8; 32], [u8; 64])], rounds: u32) -> f64 {
    let start = Instant::now();
    let mut accepted: u64 = 0;
    for _ in 0..rounds {
        for (key, message, signature) in set {
            if verify(black_box(key), black_box(message), black_box(signature)) {
                accepted += 1;
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let total = u64::from(rounds) * set.len() as u64;
    assert_eq!(accepted, total, "{name} rejected a valid signature");
    let per_second = total as f64 / elapsed;
    println!("{name:<14} {per_second:>10.0} verifications/s  ({:.1} µs each)", 1e6 / per_second);
    per_second
}

fn main() {
    let args: Vec<u32> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let signatures = args.first().copied().unwrap_or(500);
    let rounds = args.get(1).copied().unwrap_or(4);
    let set: Vec<([u8; 32], [u8; 32], [u8; 64])> = (0..signatures)
        .map(|i| {
            let signer = SecretKey::generate();
            let mut message = [0_u8; 32];
            message[..4].copy_from_slice(&i.to_be_bytes());
            (signer.public_key().to_bytes(), message, signer.sign(&message).0)
        })
        .collect();
    println!("BIP-340 verification, {signatures} distinct signatures x {rounds} rounds, one thread");
    // Warm both up once so neither pays first-use costs inside its timing.
    rate("warm-up k256", k256_verify, &set[..set.len().min(20)], 1);
    rate("warm-up libsecp", libsecp_verify, &set[..set.len().min(20)], 1);
    let k256 = rate("k256", k256_verify, &set, rounds);
    let libsecp = rate("libsecp256k1", libsecp_verify, &set, rounds);
    println!("libsecp256k1 / k256 throughput: {:.2}x", libsecp / k256);

    let total = signatures.saturating_mul(rounds);
    println!("BIP-340 signing with one held key, {total} messages, one thread");
    let secret = SecretKey::generate();
    let signer = Signer::from_secret_bytes(&secret.to_bytes()).expect("a valid key");
    let sign_rate = |name: &str, sign: Sign<'_>| {
        let start = Instant::now();
        let mut check = 0_u8;
        for i in 0..total {
            let mut message = [0_u8; 32];
            message[..4].copy_from_slice(&i.to_be_bytes());
            check ^= sign(black_box(&message), black_box(&[7; 32]))[0];
        }
        black_box(check);
        let per_second = f64::from(total) / start.elapsed().as_secs_f64();
        println!("{name:<14} {per_second:>10.0} signatures/s     ({:.1} µs each)", 1e6 / per_second);
        per_second
    };
    let k256_sign = sign_rate("k256", &|m, aux| secret.sign_with_aux(m, aux).0);
    let libsecp_sign = sign_rate("libsecp256k1", &|m, aux| signer.sign_bip340(m, aux));
    println!("libsecp256k1 / k256 signing throughput: {:.2}x", libsecp_sign / k256_sign);

    println!("x-only public-key check, {signatures} keys x {rounds} rounds, one thread");
    let keys: Vec<[u8; 32]> = set.iter().map(|(key, _, _)| *key).collect();
    let check_rate = |name: &str, check: fn(&[u8; 32]) -> bool| {
        let start = Instant::now();
        let mut valid = 0_u64;
        for _ in 0..rounds {
            for key in &keys {
                valid += u64::from(check(black_box(key)));
            }
        }
        let total = u64::from(rounds) * keys.len() as u64;
        assert_eq!(valid, total, "{name} refused a valid key");
        let per_second = total as f64 / start.elapsed().as_secs_f64();
        println!("{name:<14} {per_second:>10.0} checks/s         ({:.2} µs each)", 1e6 / per_second);
        per_second
    };
    let k256_check = check_rate("k256", |key| PublicKey::from_bytes(*key).is_ok());
    let libsecp_check = check_rate("libsecp256k1", is_valid_public_key);
    println!("libsecp256k1 / k256 key-check throughput: {:.2}x", libsecp_check / k256_check);
}
