//! The attempt cap counts refused proposals only (parameter-adjustment attempts), over a
//! sliding window; accepted proposals never count.

use crate::common::*;
use paystreams_program::client;
use paystreams_wire::StatusCode::ParamsRejected;

#[tokio::test]
async fn twenty_sequential_accepted_sessions_within_a_minute_all_pass() {
    let mut w = world();
    let start = w.now();
    for i in 0..20_u8 {
        // A user closing its stream between queries, as `store query --close` does.
        let verdict = w.propose(&w.proposal(&key(100 + i))).await;
        assert_ok(&verdict);
        let stream = w.create_stream(10, 1_000).await;
        w.advance(2).await;
        w.owner_call(&client::close_stream_by_owner(&w.vault, stream)).await;
    }
    assert!(w.now() - start < 60, "all within a minute");
}

#[tokio::test]
async fn refused_proposals_hit_the_cap_and_the_window_slides() {
    let mut w = world();
    let first = w.now();
    // Five refusals for a parameter reason (rate under the minimum of 5), one second apart.
    for i in 0..5_u8 {
        let low = w.sign(&w.alice, 0, w.provider_id(), w.params(1, 1_000), &key(60 + i));
        let v = w.propose(&low).await;
        assert_refused(&v, ParamsRejected);
        assert!(v.status.status_desc.contains("below the minimum"), "{v:?}");
        w.advance(1).await;
    }
    // The sixth, valid, is refused for the cap; that refusal is not one more attempt.
    for i in 0..3_u8 {
        let v = w.propose(&w.proposal(&key(70 + i))).await;
        assert_refused(&v, ParamsRejected);
        assert!(v.status.status_desc.contains("refused parameter attempts"), "{v:?}");
    }
    // One second before the first refusal leaves the window: still capped.
    w.chain.advance_to(first + 599).expect("advance");
    assert_refused(&w.propose(&w.proposal(&key(80))).await, ParamsRejected);
    // Once it left, four remain: a valid proposal is accepted.
    w.chain.advance_to(first + 600).expect("advance");
    assert_ok(&w.propose(&w.proposal(&key(81))).await);
}

#[tokio::test]
async fn a_forged_proposal_is_not_an_attempt() {
    let mut w = world();
    for i in 0..10_u8 {
        let mut forged = w.proposal(&key(60 + i));
        forged.vault_proof.owner_signature[5] ^= 1;
        assert_refused(&w.propose(&forged).await, paystreams_wire::StatusCode::ProofInvalid);
    }
    assert_ok(&w.propose(&w.proposal(&key(90))).await);
}
