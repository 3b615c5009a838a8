//! Every created stream gets bound and claimed, whether or not a StreamProof ever comes, and
//! whether the provider saw the stream's creation event or only finds the stream on chain.

use crate::common::*;
use paystreams_program::client;
use paystreams_provider::{EndReason, SessionState, SessionStore as _};
use paystreams_rpc::chain_view::ChainView as _;
use paystreams_wire::{TerminationType, sign_stream_proof};

fn balance(w: &World, account: paystreams_lez_core::AccountId) -> u128 {
    w.chain.with_inner(|i| i.chain.state().get(&account).map_or(0, |a| a.balance)).expect("read")
}

async fn unallocated(w: &World) -> u128 {
    w.chain.vault(&w.alice.account_id(), 0).await.expect("read").expect("vault").unallocated.0
}

/// Submits an owner call without delivering its events to the provider (as while the
/// provider was restarting or its subscription was down).
fn owner_call_unseen(w: &mut World, call: &client::Call) {
    included(w.chain.submit_now(call, &[&w.alice]).expect("submit"));
    w.cursor = w.chain.events_since(0).expect("events").len();
}

#[tokio::test]
async fn a_stream_never_proved_is_bound_and_claimed_to_the_unit_when_closed() {
    let mut w = world();
    let session_key = key(50);
    let verdict = w.propose(&w.proposal(&session_key)).await;
    assert_ok(&verdict);
    let id = verdict.session.expect("session");
    // The whole answer fitted the first response: the user creates the stream and never sends
    // a StreamProof. The creation event binds it.
    let stream = w.create_stream(10, 1_000).await;
    let session = w.provider.store().session(id).await.expect("read").expect("kept");
    assert_eq!(session.state, SessionState::Bound { stream_id: stream });
    let provider_before = balance(&w, w.provider_key.account_id());
    let unallocated_before = unallocated(&w).await;
    w.advance(37).await;
    w.owner_call(&client::close_stream_by_owner(&w.vault, stream)).await;
    // The provider claimed exactly what accrued; the user got the rest back into the vault.
    assert_eq!(balance(&w, w.provider_key.account_id()), provider_before + 370);
    assert_eq!(unallocated(&w).await, unallocated_before + 1_000 - 370);
    assert!(w.provider.store().claimables().await.expect("claimables").is_empty());
    let ended = w.provider.store().session(id).await.expect("read").expect("kept");
    assert!(matches!(ended.state, SessionState::Ended { reason: EndReason::StreamClosed, .. }));
    // A later proof on the closed stream is told the session ended, with PERMANENT.
    let v = w.prove(&session_key, stream).await;
    assert_eq!(v.termination.map(|t| t.termination_type), Some(TerminationType::Permanent), "{v:?}");
}

#[tokio::test]
async fn a_provider_that_missed_the_events_binds_and_claims_from_the_tick() {
    let mut w = world();
    let verdict = w.propose(&w.proposal(&key(50))).await;
    assert_ok(&verdict);
    let id = verdict.session.expect("session");
    let create = client::create_stream(
        &w.vault,
        0,
        w.provider_key.account_id(),
        10,
        1_000,
        paystreams_program::ExtensionSettings::default(),
    );
    owner_call_unseen(&mut w, &create);
    assert!(w.provider.store().session(id).await.expect("read").expect("kept").is_pending());
    let stats = w.provider.tick(w.now_ms()).await.expect("tick");
    assert_eq!(stats.sessions, 1);
    let session = w.provider.store().session(id).await.expect("read").expect("kept");
    assert_eq!(session.state, SessionState::Bound { stream_id: 0 });
    assert_eq!(w.provider.store().claimables().await.expect("claimables").len(), 1);

    let provider_before = balance(&w, w.provider_key.account_id());
    w.chain.advance_by(20).expect("advance");
    let close = client::close_stream_by_owner(&w.vault, 0);
    owner_call_unseen(&mut w, &close);
    let stats = w.provider.tick(w.now_ms()).await.expect("tick");
    assert_eq!(stats.claims, 1);
    assert_eq!(balance(&w, w.provider_key.account_id()), provider_before + 200);
    assert!(w.provider.store().claimables().await.expect("claimables").is_empty());
    let ended = w.provider.store().session(id).await.expect("read").expect("kept");
    assert!(matches!(ended.state, SessionState::Ended { reason: EndReason::StreamClosed, .. }));
}

#[tokio::test]
async fn a_stream_created_after_the_deadline_is_not_bound_and_the_session_ends_silently() {
    for seen in [true, false] {
        let mut w = world();
        let session_key = key(50);
        let verdict = w.propose(&w.proposal(&session_key)).await;
        assert_ok(&verdict);
        let id = verdict.session.expect("session");
        w.chain.advance_by(201).expect("advance");
        if seen {
            w.create_stream(10, 1_000).await;
        } else {
            let create = client::create_stream(
                &w.vault,
                0,
                w.provider_key.account_id(),
                10,
                1_000,
                paystreams_program::ExtensionSettings::default(),
            );
            owner_call_unseen(&mut w, &create);
        }
        w.provider.tick(w.now_ms()).await.expect("tick");
        let session = w.provider.store().session(id).await.expect("read").expect("kept");
        assert!(
            matches!(session.state, SessionState::Ended { reason: EndReason::DeadlineMissed, .. }),
            "seen {seen}: {session:?}"
        );
        assert!(w.provider.store().claimables().await.expect("claimables").is_empty());
        assert!(w.provider.take_terminations().expect("outbox").is_empty(), "the spec ends it silently");
        // The stream never serves that session.
        let digest = w.next_digest();
        let proof = paystreams_wire::EligibilityProof::Proof(sign_stream_proof(&session_key, 0, &digest)).encode();
        assert!(!w.provider.handle(PEER, &digest, Some(&proof), w.now_ms()).await.is_granted());
    }
}
