//! The attack suite: each case asserts the exact status and that no service is granted.

use crate::common::*;
use paystreams_program::client;
use paystreams_provider::{GrantKind, LoadCap};
use paystreams_wire::{
    EligibilityProof,
    StatusCode::{ParamsRejected, ProofInvalid, StreamNotActive},
    TerminationType,
};

/// Accepts alice's default proposal and binds a matching stream; returns (session key, stream id).
async fn bound(w: &mut World) -> (paystreams_lez_core::crypto::SecretKey, u64) {
    let session = key(50);
    assert_ok(&w.propose(&w.proposal(&session)).await);
    let stream = w.create_stream(10, 1000).await;
    assert_ok(&w.prove(&session, stream).await);
    (session, stream)
}

#[tokio::test]
async fn forged_and_wrong_key_signatures() {
    let mut w = world();
    let session = key(50);
    let mut forged = w.proposal(&session);
    forged.vault_proof.owner_signature[5] ^= 1;
    assert_refused(&w.propose(&forged).await, ProofInvalid);
    // Signed by mallory while naming alice's key.
    let mut wrong_key = w.sign(&key(9), 0, w.provider_id(), w.params(10, 1000), &session);
    wrong_key.vault_proof.owner_public_key = w.alice.public_key().to_bytes();
    assert_refused(&w.propose(&wrong_key).await, ProofInvalid);
    // Changing a signed field after signing.
    let mut tampered = w.proposal(&session);
    tampered.stream_params.allocation = 100;
    assert_refused(&w.propose(&tampered).await, ProofInvalid);
    // A stream proof signed with a key that is not the session key.
    let (_, stream) = bound(&mut w).await;
    assert_refused(&w.prove(&key(51), stream).await, ProofInvalid);
}

#[tokio::test]
async fn vault_proof_for_another_provider() {
    let mut w = world();
    let p = w.sign(&w.alice.clone(), 0, key(3).account_id().0, w.params(10, 1000), &key(50));
    assert_refused(&w.propose(&p).await, ProofInvalid);
}

#[tokio::test]
async fn wrong_token() {
    let mut w = world();
    let p = paystreams_wire::sign_proposal(
        &w.alice,
        0,
        w.provider_id(),
        [7; 32],
        w.params(10, 1000),
        key(50).public_key().to_bytes(),
        None,
    )
    .expect("sign");
    assert_refused(&w.propose(&p).await, ProofInvalid);
}

#[tokio::test]
async fn unknown_vault() {
    let mut w = world();
    let p = w.sign(&w.alice.clone(), 9, w.provider_id(), w.params(10, 1000), &key(50));
    assert_refused(&w.propose(&p).await, ProofInvalid);
}

#[tokio::test]
async fn owner_key_not_matching_the_vault() {
    let mut w = world();
    // Mallory signs correctly with her own key for vault 0, which is alice's id, not hers.
    let p = w.sign(&key(9), 0, w.provider_id(), w.params(10, 1000), &key(50));
    assert_refused(&w.propose(&p).await, ProofInvalid);
}

#[tokio::test]
async fn deadline_in_the_past_or_beyond_the_band() {
    let mut w = world();
    let mut past = w.params(10, 1000);
    past.create_stream_deadline = w.now() - 1;
    let v = w.propose(&w.sign(&w.alice.clone(), 0, w.provider_id(), past, &key(50))).await;
    assert_refused(&v, ParamsRejected);
    let mut far = w.params(10, 1000);
    far.create_stream_deadline = w.now() + 301;
    assert_refused(&w.propose(&w.sign(&w.alice.clone(), 0, w.provider_id(), far, &key(50))).await, ParamsRejected);
    // Both ends of the band are inclusive.
    let mut edge = w.params(10, 1000);
    edge.create_stream_deadline = w.now() + 300;
    assert_ok(&w.propose(&w.sign(&w.alice.clone(), 0, w.provider_id(), edge, &key(50))).await);
}

#[tokio::test]
async fn policy_minimums_and_unallocated() {
    let mut w = world();
    let alice = w.alice.clone();
    let v = w.propose(&w.sign(&alice, 0, w.provider_id(), w.params(4, 1000), &key(50))).await;
    assert_refused(&v, ParamsRejected);
    assert!(v.status.status_desc.contains("at least 5"), "{}", v.status.status_desc);
    assert_refused(&w.propose(&w.sign(&alice, 0, w.provider_id(), w.params(10, 99), &key(50))).await, ParamsRejected);
    let v = w.propose(&w.sign(&alice, 0, w.provider_id(), w.params(10, 10_001), &key(50))).await;
    assert_refused(&v, ParamsRejected);
    assert!(v.status.status_desc.contains("unallocated"));
    let mut other_service = w.params(10, 1000);
    other_service.service_id = b"/other/1".to_vec();
    assert_refused(&w.propose(&w.sign(&alice, 0, w.provider_id(), other_service, &key(50))).await, ParamsRejected);
}

#[tokio::test]
async fn second_proposal_while_pending_and_reused_proposal() {
    let mut w = world();
    let first = w.proposal(&key(50));
    assert_ok(&w.propose(&first).await);
    assert_refused(&w.propose(&w.proposal(&key(51))).await, ParamsRejected);
    assert_refused(&w.propose(&first).await, ParamsRejected);
    // After binding, the same proposal again is refused as used.
    let stream = w.create_stream(10, 1000).await;
    assert_ok(&w.prove(&key(50), stream).await);
    let v = w.propose(&first).await;
    assert_refused(&v, ParamsRejected);
    assert!(v.status.status_desc.contains("already accepted"), "{}", v.status.status_desc);
}

#[tokio::test]
async fn sixth_attempt_in_600_seconds() {
    let mut w = world();
    let alice = w.alice.clone();
    for _ in 0..5 {
        assert_refused(
            &w.propose(&w.sign(&alice, 0, w.provider_id(), w.params(1, 1000), &key(50))).await,
            ParamsRejected,
        );
    }
    let v = w.propose(&w.proposal(&key(50))).await;
    assert_refused(&v, ParamsRejected);
    assert!(v.status.status_desc.contains("attempts"), "{}", v.status.status_desc);
    w.advance(600).await;
    assert_ok(&w.propose(&w.proposal(&key(50))).await);
}

#[tokio::test]
async fn replayed_stream_proof() {
    let mut w = world();
    let (session, stream) = bound(&mut w).await;
    let digest = w.next_digest();
    assert_ok(&w.prove_digest(&session, stream, digest).await);
    let v = w.prove_digest(&session, stream, digest).await;
    assert_refused(&v, ProofInvalid);
    assert!(v.status.status_desc.contains("replay"));
}

#[tokio::test]
async fn proof_naming_another_stream_after_binding() {
    let mut w = world();
    let (session, _stream) = bound(&mut w).await;
    let other = w.create_stream(10, 1000).await;
    assert_refused(&w.prove(&session, other).await, ProofInvalid);
}

#[tokio::test]
async fn proof_for_a_paused_stream() {
    let mut w = world();
    let (session, stream) = bound(&mut w).await;
    w.owner_call(&client::pause_stream(&w.vault, stream)).await;
    let v = w.prove(&session, stream).await;
    assert_refused(&v, StreamNotActive);
    assert!(v.termination.is_none());
    // The session survives pause and resume.
    w.owner_call(&client::resume_stream(&w.vault, stream)).await;
    assert_ok(&w.prove(&session, stream).await);
}

#[tokio::test]
async fn proof_for_a_depleted_stream() {
    let mut w = world();
    let (session, stream) = bound(&mut w).await;
    w.advance(150).await; // 1000 at rate 10 lasts 100 s
    let v = w.prove(&session, stream).await;
    assert_refused(&v, StreamNotActive);
    assert!(v.status.status_desc.contains("depleted"));
}

#[tokio::test]
async fn proof_for_a_closed_stream() {
    let mut w = world();
    let (session, stream) = bound(&mut w).await;
    w.advance(10).await;
    w.owner_call(&client::close_stream_by_owner(&w.vault, stream)).await;
    let terminations = w.provider.take_terminations().expect("outbox");
    assert_eq!(terminations.len(), 1);
    let v = w.prove(&session, stream).await;
    assert_refused(&v, StreamNotActive);
    assert_eq!(v.termination.map(|t| t.termination_type), Some(TerminationType::Permanent));
}

#[tokio::test]
async fn stream_with_lower_rate_or_allocation() {
    let mut w = world();
    let session = key(50);
    assert_ok(&w.propose(&w.proposal(&session)).await);
    let low_rate = w.create_stream(9, 1000).await;
    assert_refused(&w.prove(&session, low_rate).await, ParamsRejected);
    let low_alloc = w.create_stream(10, 999).await;
    assert_refused(&w.prove(&session, low_alloc).await, ParamsRejected);
    let other_provider = w.create_stream_to(key(3).account_id(), 10, 1000).await;
    let v = w.prove(&session, other_provider).await;
    assert_refused(&v, ParamsRejected);
    assert!(v.status.status_desc.contains("another provider"), "{v:?}");
}

#[tokio::test]
async fn first_proof_after_the_deadline() {
    let mut w = world();
    let session = key(50);
    assert_ok(&w.propose(&w.proposal(&session)).await);
    // Created after the deadline: never bound.
    w.advance(201).await;
    let stream = w.create_stream(10, 5000).await;
    let v = w.prove(&session, stream).await;
    assert_refused(&v, ParamsRejected);
    assert!(v.status.status_desc.contains("create_stream_deadline"), "{v:?}");
    // The session ended: a new proposal is accepted.
    assert_ok(&w.propose(&w.proposal(&key(52))).await);
}

#[tokio::test]
async fn vault_drained_while_pending() {
    let mut w = world();
    let session = key(50);
    assert_ok(&w.propose(&w.proposal(&session)).await);
    w.owner_call(&client::withdraw(&w.vault, 9_500, None)).await;
    let terminations = w.provider.take_terminations().expect("outbox");
    assert_eq!(terminations.len(), 1);
    assert_eq!(terminations.first().map(|(_, t)| t.termination_type), Some(TerminationType::Permanent));
    let stream = w.create_stream(10, 100).await;
    let v = w.prove(&session, stream).await;
    assert_refused(&v, ParamsRejected);
    assert_eq!(v.termination.map(|t| t.termination_type), Some(TerminationType::Permanent));
}

#[tokio::test]
async fn oversized_first_response() {
    let mut w = world();
    let v = w.propose(&w.proposal(&key(50))).await;
    let grant = v.grant.expect("granted");
    assert_eq!(grant.kind, GrantKind::First { max_response_bytes: 65_536 });
    let refused = w.provider.finish_response(&grant, 65_537).await.expect("engine").expect_err("over cap");
    assert_refused(&refused, ParamsRejected);
    // The refusal carries the PERMANENT termination; it is not queued again.
    assert_eq!(
        refused.termination.map(|t| (t.termination_type, t.resume_after)),
        Some((TerminationType::Permanent, 0))
    );
    assert!(w.provider.take_terminations().expect("outbox").is_empty());
    // The session was released: a new proposal is accepted; its response at the cap is fine.
    let v = w.propose(&w.proposal(&key(51))).await;
    let grant = v.grant.expect("granted");
    assert!(w.provider.finish_response(&grant, 65_536).await.expect("engine").is_ok());
}

#[tokio::test]
async fn load_cap_exceeded() {
    let mut w = world_with(
        |p| p.load_cap = Some(LoadCap { window_secs: 60, max_requests: 3, max_bytes: 1_000 }),
        paystreams_provider::MemoryStore::new(),
    );
    let (session, stream) = bound(&mut w).await; // 1 request
    for _ in 0..2 {
        assert_ok(&w.prove(&session, stream).await);
    }
    let v = w.prove(&session, stream).await;
    assert_refused(&v, StreamNotActive);
    assert_eq!(v.termination.map(|t| t.termination_type), Some(TerminationType::Temporary));
    w.advance(60).await;
    let v = w.prove(&session, stream).await;
    let grant = v.grant.expect("new window");
    let refused = w.provider.finish_response(&grant, 1_001).await.expect("engine").expect_err("bytes over cap");
    assert_refused(&refused, StreamNotActive);
}

#[tokio::test]
async fn truncated_and_garbage_bytes_for_every_message() {
    let mut w = world();
    let (session, stream) = bound(&mut w).await;
    let digest = w.next_digest();
    let proof = paystreams_wire::sign_stream_proof(&session, stream, &digest);
    let messages = [EligibilityProof::Proposal(w.proposal(&key(60))).encode(), EligibilityProof::Proof(proof).encode()];
    for bytes in &messages {
        for cut in 0..bytes.len() {
            let v = w.provider.handle(PEER, &digest, Some(bytes.get(..cut).expect("prefix")), w.now_ms()).await;
            assert_refused(&v, ProofInvalid);
        }
    }
    let inner = [w.proposal(&key(60)).encode(), proof.encode()];
    for (field, inner) in [2_u8, 3].into_iter().zip(inner) {
        for cut in 0..inner.len().min(128) {
            let mut wrapped = vec![(field << 3) | 2, u8::try_from(cut).expect("small")];
            wrapped.extend(inner.get(..cut).expect("prefix"));
            let v = w.provider.handle(PEER, &digest, Some(&wrapped), w.now_ms()).await;
            assert_refused(&v, ProofInvalid);
        }
    }
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for len in [1_usize, 7, 33, 100, 257, 1024, 1025, 4096] {
        let garbage: Vec<u8> = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state.to_le_bytes()[0]
            })
            .collect();
        assert_refused(&w.provider.handle(PEER, &digest, Some(&garbage), w.now_ms()).await, ProofInvalid);
    }
    assert_refused(&w.provider.handle(PEER, &digest, None, w.now_ms()).await, ProofInvalid);
    assert_refused(&w.provider.handle(PEER, &digest, Some(&[]), w.now_ms()).await, ProofInvalid);
}

/// Creates a stream to the provider at the vault's next id with `extensions`; returns its id.
async fn create_stream_with(w: &mut World, extensions: paystreams_program::ExtensionSettings) -> u64 {
    use paystreams_rpc::chain_view::ChainView as _;
    let next = w.chain.vault(&w.alice.account_id(), 0).await.expect("read").expect("vault").next_stream_id;
    let call = client::create_stream(&w.vault, next, w.provider_key.account_id(), 10, 1000, extensions);
    w.owner_call(&call).await;
    next
}

#[tokio::test]
async fn stream_with_a_receipt_key_of_the_users_own_is_refused_at_binding() {
    use paystreams_provider::{SessionStore as _, StreamKey, VaultKey};
    let mut w = world();
    let session = key(50);
    assert_ok(&w.propose(&w.proposal(&session)).await);
    // Matching rate and allocation, but with a receipt key: every claim would need the user's
    // receipts, which this provider (receipts refused by default) never gets.
    let receipts = paystreams_program::ExtensionSettings {
        receipt_key: Some(key(60).public_key().to_bytes()),
        ..paystreams_program::ExtensionSettings::default()
    };
    let stream = create_stream_with(&mut w, receipts).await;
    for _ in 0..3 {
        let verdict = w.prove(&session, stream).await;
        assert_refused(&verdict, ParamsRejected);
        let desc = &verdict.status.status_desc;
        assert!(desc.contains("does not match the accepted terms"), "{desc}");
        assert!(desc.contains("delivery-receipt key") && desc.contains("refuses delivery receipts"), "{desc}");
    }
    let key = StreamKey { vault: VaultKey { owner: w.alice.account_id().0, vault_id: 0 }, stream_id: stream };
    assert_eq!(w.provider.store().bound_session(key).await.expect("read"), None, "never bound");
    // Accrual under it is never served: time passes, still refused.
    w.advance(20).await;
    assert_refused(&w.prove(&session, stream).await, ParamsRejected);
}

#[tokio::test]
async fn stream_extensions_outside_the_policy_are_refused_and_inside_it_served() {
    use paystreams_program::ExtensionSettings;
    let cases: [(ExtensionSettings, &str); 3] = [
        // Each case pays the provider's minimum activation fee (50) unless the fee is the point.
        (
            ExtensionSettings { auto_pause_after: 5, activation_fee: 50, ..ExtensionSettings::default() },
            "auto-pause of at least 60 s",
        ),
        (ExtensionSettings { activation_fee: 3, ..ExtensionSettings::default() }, "activation fee of at least 50"),
        (
            ExtensionSettings {
                auto_claim_on_provider_close: true,
                activation_fee: 50,
                ..ExtensionSettings::default()
            },
            "no automatic claim",
        ),
    ];
    for (extensions, expected) in cases {
        let mut w = world_with(
            |p| {
                p.extensions.activation_fee_min = 50;
                p.extensions.auto_claim_on_close_accepted = !extensions.auto_claim_on_provider_close;
            },
            paystreams_provider::MemoryStore::new(),
        );
        let session = key(50);
        assert_ok(&w.propose(&w.proposal(&session)).await);
        let stream = create_stream_with(&mut w, extensions).await;
        let verdict = w.prove(&session, stream).await;
        assert_refused(&verdict, ParamsRejected);
        assert!(verdict.status.status_desc.contains(expected), "{expected}: {verdict:?}");
    }
    // Within the terms: a fee at the minimum and a long auto-pause are served.
    let mut w = world_with(|p| p.extensions.activation_fee_min = 50, paystreams_provider::MemoryStore::new());
    let session = key(50);
    assert_ok(&w.propose(&w.proposal(&session)).await);
    let ok = ExtensionSettings { activation_fee: 50, auto_pause_after: 600, ..ExtensionSettings::default() };
    let stream = create_stream_with(&mut w, ok).await;
    assert_ok(&w.prove(&session, stream).await);
}
