//! Provider StreamProof verification against a bare BIP-340 verification of the same digests,
//! side by side in one run.
//!
//! `cargo bench -p paystreams-provider --bench proof_verify [-- REQUESTS ROUNDS]`
//!
//! The engine side is the whole per-request path of [`Provider::handle`] for a bound
//! session: decode the `EligibilityProof`, find the session among the requester's own, verify
//! the signature, check replay, read the stream folded at chain time from the chain view, and
//! record the request. The chain view is the in-process one (a state read and a fold, as a
//! stream-view cache answers) and sessions are in memory, so the figure is the engine's own
//! cost. The bare side verifies the same signatures over the same digests with libsecp256k1
//! (what the engine uses, parsing the key each time as a one-off check must) and with k256 (what
//! the program core uses). The engine keeps a session's parsed key (`keys::KeyCache`), as any
//! verifier of many requests under one key would.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a benchmark binary: fail loudly")]

#[path = "../tests/all/common.rs"]
#[expect(dead_code, reason = "the benchmark drives one world; the tests use the rest of the harness")]
mod common;

use std::{
    hint::black_box,
    time::{Duration, Instant},
};

use common::{PEER, World, assert_ok, key, world};
use paystreams_lez_core::crypto::verify_bip340 as k256_verify;
use paystreams_sigcheck::verify_bip340 as libsecp_verify;
use paystreams_wire::{CanonicalStoreRequest, EligibilityProof, RequestDigest as _, sign_stream_proof};

/// Requests per alternation between the engine and the bare verifiers.
const CHUNK: usize = 50;

fn per_second(count: usize, seconds: f64) -> f64 {
    count as f64 / seconds
}

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let requests = args.first().copied().unwrap_or(2_000);
    let rounds = args.get(1).copied().unwrap_or(3);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let requester = PEER;

    let session = key(9);
    let mut w: World = world();
    // Propose, create the stream, bind it with a first proof.
    runtime.block_on(async {
        let proposal = w.proposal(&session);
        let digest = w.next_digest();
        let verdict = w
            .provider
            .handle(requester, &digest, Some(&EligibilityProof::Proposal(proposal).encode()), w.now_ms())
            .await;
        assert_ok(&verdict);
        let stream_id = w.create_stream(10, 1_000).await;
        assert_ok(&w.prove(&session, stream_id).await);
    });
    let public_key = session.public_key().to_bytes();
    let now_ms = w.now_ms();

    println!("StreamProof verification, {requests} distinct requests x {rounds} rounds, one thread");
    let (mut engine_best, mut libsecp_best, mut k256_best) = (0.0_f64, 0.0_f64, 0.0_f64);
    let mut ratios = Vec::new();
    for round in 0..rounds {
        // Fresh digests each round: a repeated one would be refused as a replay.
        let signed: Vec<([u8; 32], Vec<u8>, [u8; 64])> = (0..requests)
            .map(|i| {
                let digest =
                    CanonicalStoreRequest { request_id: format!("r{round}-{i}"), ..CanonicalStoreRequest::default() }
                        .digest();
                let proof = sign_stream_proof(&session, 0, &digest);
                let signature = proof.signature;
                (digest, EligibilityProof::Proof(proof).encode(), signature)
            })
            .collect();

        // Engine and bare verification alternate in chunks of the same requests, so both see the
        // same machine conditions (a shared machine's load shifts within a round).
        let (mut engine_time, mut libsecp_time, mut k256_time) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
        for chunk in signed.chunks(CHUNK) {
            let started = Instant::now();
            runtime.block_on(async {
                for (digest, proof, _) in chunk {
                    let verdict = w.provider.handle(requester, black_box(digest), Some(proof), now_ms).await;
                    assert!(verdict.is_granted(), "{verdict:?}");
                }
            });
            engine_time += started.elapsed();

            let started = Instant::now();
            for (digest, _, signature) in chunk {
                assert!(libsecp_verify(black_box(&public_key), black_box(digest), black_box(signature)));
            }
            libsecp_time += started.elapsed();

            let started = Instant::now();
            for (digest, _, signature) in chunk {
                assert!(k256_verify(black_box(&public_key), black_box(digest), black_box(signature)));
            }
            k256_time += started.elapsed();
        }
        let engine = per_second(requests, engine_time.as_secs_f64());
        let libsecp = per_second(requests, libsecp_time.as_secs_f64());
        let k256 = per_second(requests, k256_time.as_secs_f64());
        println!(
            "round {round}: engine {engine:>8.0}/s  bare libsecp256k1 {libsecp:>8.0}/s  bare k256 {k256:>8.0}/s  engine/bare {:.3}",
            engine / libsecp
        );
        ratios.push(engine / libsecp);
        engine_best = engine_best.max(engine);
        libsecp_best = libsecp_best.max(libsecp);
        k256_best = k256_best.max(k256);
    }
    println!(
        "best: engine {engine_best:.0}/s ({:.1} µs), bare libsecp256k1 {libsecp_best:.0}/s ({:.1} µs), bare k256 {k256_best:.0}/s ({:.1} µs)",
        1e6 / engine_best,
        1e6 / libsecp_best,
        1e6 / k256_best
    );
    ratios.sort_by(f64::total_cmp);
    let median = ratios.get(ratios.len() / 2).copied().unwrap_or_default();
    println!(
        "engine / bare signature verification: median of rounds {median:.3}, best of each {:.3} (target 0.9)",
        engine_best / libsecp_best
    );
}
