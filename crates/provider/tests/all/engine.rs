//! Engine rules beyond the attack suite: durability, deferred first proof, monitoring, claims.

use crate::common::*;
use paystreams_provider::{RedbStore, SessionState, SessionStore as _};
use paystreams_rpc::chain_view::ChainView as _;
use paystreams_wire::{
    StatusCode::{ParamsRejected, StreamNotActive},
    TerminationType,
};

#[tokio::test]
async fn restart_loses_no_session_binding_replay_record_or_claimable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sessions.redb");
    let session = key(50);
    let (chain, digest, stream) = {
        let mut w = world_with(|_| {}, RedbStore::open(&path).expect("open"));
        assert_ok(&w.propose(&w.proposal(&session)).await);
        let stream = w.create_stream(10, 1000).await;
        let digest = w.next_digest();
        assert_ok(&w.prove_digest(&session, stream, digest).await);
        (w.chain.clone(), digest, stream)
    };
    // Reopen the file under a fresh engine on the same chain.
    let store = RedbStore::open(&path).expect("reopen");
    let sessions = store.sessions().await.expect("sessions");
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions.first().map(|s| s.state), Some(SessionState::Bound { stream_id: stream }));
    assert_eq!(store.claimables().await.expect("claimables").len(), 1);
    let w = world_on(chain, store);
    // The replay record survived: the same digest is refused, a fresh one served.
    let v = w.prove_digest(&session, stream, digest).await;
    assert_refused(&v, paystreams_wire::StatusCode::ProofInvalid);
    let mut w = w;
    w.requests = 100;
    assert_ok(&w.prove(&session, stream).await);
}

#[tokio::test]
async fn deferred_first_proof_allows_a_late_first_proof_for_a_stream_created_in_time() {
    let mut w = world_with(|p| p.deferred_first_proof = true, paystreams_provider::MemoryStore::new());
    assert!(w.provider.policy().advert().deferred_first_proof);
    let session = key(50);
    assert_ok(&w.propose(&w.proposal(&session)).await);
    let stream = w.create_stream(10, 5000).await;
    w.advance(250).await; // past the deadline (200 s)
    w.provider.tick(w.now_ms()).await.expect("tick");
    assert_ok(&w.prove(&session, stream).await);
}

#[tokio::test]
async fn deferred_sessions_without_a_stream_still_end_at_the_deadline() {
    let mut w = world_with(|p| p.deferred_first_proof = true, paystreams_provider::MemoryStore::new());
    let session = key(50);
    assert_ok(&w.propose(&w.proposal(&session)).await);
    w.advance(201).await;
    let stream = w.create_stream(10, 5000).await; // too late
    let v = w.prove(&session, stream).await;
    assert_refused(&v, ParamsRejected);
}

#[tokio::test]
async fn expired_pending_sessions_are_dropped_by_tick() {
    let mut w = world();
    assert_ok(&w.propose(&w.proposal(&key(50))).await);
    w.advance(201).await;
    w.provider.tick(w.now_ms()).await.expect("tick");
    let sessions = w.provider.store().sessions().await.expect("sessions");
    assert!(matches!(sessions.first().map(|s| s.state), Some(SessionState::Ended { .. })));
    assert_ok(&w.propose(&w.proposal(&key(51))).await);
}

#[tokio::test]
async fn stale_chain_view_fails_closed_with_temporary() {
    let mut w = world();
    let session = key(50);
    assert_ok(&w.propose(&w.proposal(&session)).await);
    let stream = w.create_stream(10, 1000).await;
    let frozen = w.now_ms();
    w.chain.set_observed_at_ms(Some(frozen)).expect("freeze");
    let digest = w.next_digest();
    let proof = paystreams_wire::sign_stream_proof(&session, stream, &digest);
    let bytes = paystreams_wire::EligibilityProof::Proof(proof).encode();
    let v = w.provider.handle(PEER, &digest, Some(&bytes), frozen + 31_000).await;
    assert_refused(&v, StreamNotActive);
    assert_eq!(v.termination.map(|t| t.termination_type), Some(TerminationType::Temporary));
    // Within the bound the same request is served.
    assert_ok(&w.provider.handle(PEER, &digest, Some(&bytes), frozen + 29_000).await);
}

#[tokio::test]
async fn maintenance_and_suspension_are_temporary() {
    let mut w = world();
    let session = key(50);
    let v = w.propose(&w.proposal(&session)).await;
    let id = v.session.expect("session");
    let stream = w.create_stream(10, 1000).await;
    assert_ok(&w.prove(&session, stream).await);
    let resume = w.now() + 30;
    w.provider.suspend_session(id, resume).await.expect("suspend");
    let v = w.prove(&session, stream).await;
    assert_refused(&v, StreamNotActive);
    assert_eq!(v.termination.map(|t| (t.termination_type, t.resume_after)), Some((TerminationType::Temporary, resume)));
    w.advance(31).await;
    assert_ok(&w.prove(&session, stream).await);
    w.provider.set_maintenance(Some(w.now() + 10)).expect("maintenance");
    assert_refused(&w.prove(&session, stream).await, StreamNotActive);
    w.provider.set_maintenance(None).expect("maintenance");
    assert_ok(&w.prove(&session, stream).await);
    assert!(w.provider.terminate_for_abuse(id).await.expect("abuse").is_some());
    let v = w.prove(&session, stream).await;
    assert_refused(&v, ParamsRejected);
    assert_eq!(v.termination.map(|t| t.termination_type), Some(TerminationType::Permanent));
}

#[tokio::test]
async fn claims_on_threshold_on_close_and_claim_all() {
    let mut w = world();
    let session = key(50);
    assert_ok(&w.propose(&w.proposal(&session)).await);
    let stream = w.create_stream(10, 5000).await;
    assert_ok(&w.prove(&session, stream).await);
    let provider_balance = |w: &World| {
        w.chain
            .with_inner(|i| i.chain.state().get(&w.provider_key.account_id()).map_or(0, |a| a.balance))
            .expect("read")
    };
    let before = provider_balance(&w);
    w.advance(50).await; // 500 accrued, under the 1000 threshold
    w.provider.tick(w.now_ms()).await.expect("tick");
    assert_eq!(provider_balance(&w), before);
    w.advance(60).await; // 1100 accrued
    w.provider.tick(w.now_ms()).await.expect("tick");
    assert_eq!(provider_balance(&w), before + 1100);
    w.advance(10).await;
    assert_eq!(w.provider.claim_all().await.expect("claim all"), 1);
    assert_eq!(provider_balance(&w), before + 1200);
    w.advance(10).await;
    w.owner_call(&paystreams_program::client::close_stream_by_owner(&w.vault, stream)).await;
    // Closing triggered a claim of the remaining accrued amount and forgot the stream.
    assert_eq!(provider_balance(&w), before + 1300);
    assert!(w.provider.store().claimables().await.expect("claimables").is_empty());
    let view = w.chain.stream(&w.alice.account_id(), 0, stream).await.expect("read").expect("stream");
    assert_eq!(view.accrued.0, 0);
}
