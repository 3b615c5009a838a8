//! The user engine against the provider engine: the whole flow, promises, the attempt cap,
//! terminations, monitoring, durable state across restarts and crashes.

use paystreams_program::{
    client::{self, VaultRef},
    payment_streams_program_id,
    state::StreamState,
};
use paystreams_rpc::chain_view::{ChainView as _, InMemoryChain};
use paystreams_user::{AutoTopUp, Notice, Phase, Reaction, User, UserConfig, UserError, UserStore};
use paystreams_wire::StatusCode;

use crate::common::{Net, advert, key, net, terms};

#[tokio::test]
async fn full_flow_then_permanent_termination_recovers_funds() {
    let mut n = net(UserConfig::default(), 5);
    let stream_id = n.open().await;
    let view = n.chain.stream(&key(1).account_id(), 0, stream_id).await.expect("read").expect("stream");
    // Raised to the provider's minimums.
    assert_eq!((view.rate, view.allocation.0, view.state), (5, 100, StreamState::Active));
    for _ in 0..3 {
        let (verdict, reaction) = n.proof_request().await;
        assert!(verdict.is_granted());
        assert_eq!(reaction, Reaction::Served);
        n.advance(2).await;
    }
    let id = {
        let request = n.request();
        let bytes = n.user.proof(&n.provider_id(), &request).await.expect("proof");
        n.send(&request, &bytes, 10).await.session.expect("session")
    };
    n.provider.terminate_for_abuse(id).await.expect("terminate");
    let (verdict, reaction) = n.proof_request().await;
    assert!(!verdict.is_granted());
    assert_eq!(reaction, Reaction::Closed { stream_id: Some(stream_id) });
    let view = n.chain.stream(&key(1).account_id(), 0, stream_id).await.expect("read").expect("stream");
    assert_eq!(view.state, StreamState::Closed);
    let vault = n.chain.vault(&key(1).account_id(), 0).await.expect("read").expect("vault");
    // Only what accrued (6 s at rate 5) stays allocated for the provider to claim.
    assert_eq!(vault.total_allocated.0, view.accrued.0);
    assert_eq!(n.provider.claim_all().await.expect("claims"), 1);
}

#[tokio::test]
async fn the_promise_ledger_never_double_promises_a_vault() {
    let n = net(UserConfig::default(), 5);
    let a = advert(&n);
    n.user.propose(&a, &terms(5, 6_000)).await.expect("first");
    let mut b = a.clone();
    b.provider_id = key(3).account_id().0;
    assert!(matches!(n.user.propose(&b, &terms(5, 6_000)).await, Err(UserError::Overpromise(_))));
    assert!(matches!(n.user.propose(&a, &terms(5, 100)).await, Err(UserError::ProposalPending(_))));
    n.user.propose(&b, &terms(5, 4_000)).await.expect("fits beside the first");
}

#[tokio::test]
async fn params_rejected_adjusts_within_the_retry_cap() {
    // The advert the user holds is stale: the provider now wants rate 50.
    let mut n = net(UserConfig::default(), 50);
    let mut stale = advert(&n);
    if let Some(t) = stale.policy.accepted_tokens.first_mut() {
        t.min_rate = 5;
    }
    for _ in 0..5 {
        let request = n.request();
        let bytes = n.user.propose(&stale, &terms(5, 100)).await.expect("propose");
        let verdict = n.send(&request, &bytes, 10).await;
        assert_eq!(verdict.code(), Some(StatusCode::ParamsRejected));
        let reaction =
            n.user.on_proposal_status(&n.provider_id(), &verdict.status, verdict.termination).await.expect("react");
        assert!(matches!(reaction, Reaction::Adjust { .. }), "{reaction:?}");
    }
    assert!(matches!(n.user.propose(&advert(&n), &terms(5, 100)).await, Err(UserError::RetryCap(_))));
    n.advance(600).await;
    n.open().await;
}

#[tokio::test]
async fn temporary_termination_pauses_until_resume_after() {
    let mut n = net(UserConfig::default(), 5);
    let stream_id = n.open().await;
    let (verdict, _) = n.proof_request().await;
    let id = verdict.session.expect("session");
    let resume = n.chain.now_secs().expect("now") + 20;
    n.provider.suspend_session(id, resume).await.expect("suspend");
    let (verdict, reaction) = n.proof_request().await;
    assert_eq!(verdict.code(), Some(StatusCode::StreamNotActive));
    assert_eq!(reaction, Reaction::WaitUntil { resume_after: resume });
    let view = n.chain.stream(&key(1).account_id(), 0, stream_id).await.expect("read").expect("stream");
    assert_eq!(view.state, StreamState::Paused);
    let request = n.request();
    assert!(matches!(n.user.proof(&n.provider_id(), &request).await, Err(UserError::Paused(_))));
    n.advance(21).await;
    let (verdict, reaction) = n.proof_request().await;
    assert!(verdict.is_granted(), "{verdict:?}");
    assert_eq!(reaction, Reaction::Served);
}

#[tokio::test]
async fn monitoring_warns_tops_up_and_reports_depletion() {
    let config = UserConfig { warn_before_secs: 30, ..UserConfig::default() };
    let mut n = net(config, 5);
    n.open().await; // 100 at rate 5: 20 s
    let notices = n.user.monitor().await.expect("monitor");
    assert!(matches!(notices.as_slice(), [Notice::DepletionSoon { .. }]), "{notices:?}");
    n.advance(25).await;
    let (verdict, reaction) = n.proof_request().await;
    assert_eq!(verdict.code(), Some(StatusCode::StreamNotActive));
    assert!(matches!(reaction, Reaction::StreamInactive { state: Some(StreamState::Paused), .. }), "{reaction:?}");

    let config =
        UserConfig { auto_top_up: Some(AutoTopUp { when_remaining_secs: 30, amount: 500 }), ..UserConfig::default() };
    let mut n = net(config, 5);
    let stream_id = n.open().await;
    let notices = n.user.monitor().await.expect("monitor");
    assert_eq!(notices, vec![Notice::ToppedUp { provider: n.provider_id(), stream_id, amount: 500 }]);
    n.advance(25).await;
    assert!(n.proof_request().await.0.is_granted());

    let config = UserConfig { auto_close_depleted: true, ..UserConfig::default() };
    let mut n = net(config, 5);
    let stream_id = n.open().await;
    n.advance(25).await;
    let notices = n.user.monitor().await.expect("monitor");
    assert_eq!(notices, vec![Notice::Closed { provider: n.provider_id(), stream_id }]);
}

#[tokio::test]
async fn replayed_request_asks_for_a_fresh_one() {
    let mut n = net(UserConfig::default(), 5);
    n.open().await;
    let request = n.request();
    let bytes = n.user.proof(&n.provider_id(), &request).await.expect("proof");
    assert!(n.send(&request, &bytes, 10).await.is_granted());
    let verdict = n.send(&request, &bytes, 10).await;
    assert_eq!(verdict.code(), Some(StatusCode::ProofInvalid));
    let reaction = n.user.on_proof_status(&n.provider_id(), &verdict.status, verdict.termination).await.expect("react");
    assert!(matches!(reaction, Reaction::ResendFresh { .. }), "{reaction:?}");
    assert!(n.proof_request().await.0.is_granted());
}

/// The engine of `n`'s user, opened over the store at `path` (as a new process would).
async fn reopen(n: &Net, path: &std::path::Path) -> User<InMemoryChain> {
    let store = UserStore::open(path, std::time::Duration::from_secs(5)).expect("store");
    User::open(key(1), n.chain.clone(), UserConfig::default(), store).await.expect("open")
}

fn ok() -> paystreams_wire::EligibilityStatus {
    paystreams_wire::EligibilityStatus::new(StatusCode::Ok, "")
}

#[tokio::test]
async fn a_restarted_engine_continues_its_session_on_the_same_stream() {
    let mut n = net(UserConfig::default(), 5);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = UserStore::default_path(dir.path(), "alice");
    n.user = reopen(&n, &path).await;
    let stream_id = n.open().await;
    assert!(n.proof_request().await.0.is_granted());
    let identity = n.user.transport_identity(&n.provider_id()).await.expect("identity");
    n.user = User::new(key(9), n.chain.clone(), UserConfig::default()); // releases the file
    n.user = reopen(&n, &path).await;
    assert_eq!(n.user.stream_of(&n.provider_id()).expect("stream"), Some(stream_id));
    assert_eq!(n.user.transport_identity(&n.provider_id()).await.expect("identity"), identity);
    assert_ne!(n.user.transport_identity(&key(3).account_id().0).await.expect("other"), identity);
    let (verdict, reaction) = n.proof_request().await;
    assert!(verdict.is_granted(), "{verdict:?}");
    assert_eq!(reaction, Reaction::Served);
    // Proposing again for the same vault and service is refused while the stream is open.
    assert!(
        matches!(n.user.propose(&advert(&n), &terms(5, 100)).await, Err(UserError::SessionOpen(s)) if s == stream_id)
    );
}

#[tokio::test]
async fn a_crash_after_proposing_keeps_the_promise_until_the_deadline() {
    let n = net(UserConfig::default(), 5);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = UserStore::default_path(dir.path(), "alice");
    let user = reopen(&n, &path).await;
    user.propose(&advert(&n), &terms(5, 6_000)).await.expect("propose");
    drop(user); // killed before the response came
    let user = reopen(&n, &path).await;
    assert!(matches!(user.propose(&advert(&n), &terms(5, 100)).await, Err(UserError::ProposalPending(_))));
    let mut other = advert(&n);
    other.provider_id = key(3).account_id().0;
    assert!(matches!(user.propose(&other, &terms(5, 6_000)).await, Err(UserError::Overpromise(_))));
    drop(user);
    n.chain.advance_by(121).expect("advance");
    let user = reopen(&n, &path).await;
    assert!(user.sessions().expect("sessions").is_empty(), "the lapsed proposal is dropped on open");
    user.propose(&other, &terms(5, 6_000)).await.expect("the promise was released");
}

#[tokio::test]
async fn a_crash_while_creating_the_stream_settles_against_the_chain() {
    let alice = key(1).account_id();
    for case in ["not_submitted", "included", "deadline_passed"] {
        let n = net(UserConfig::default(), 5);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = UserStore::default_path(dir.path(), "alice");
        let user = reopen(&n, &path).await;
        user.propose(&advert(&n), &terms(5, 100)).await.expect("propose");
        drop(user);
        // The state as a process killed between recording "creating stream 0" and (or after)
        // submitting the transaction leaves it.
        let store = UserStore::open(&path, std::time::Duration::ZERO).expect("store");
        let mut snapshot = store.load().expect("load");
        let session = snapshot.sessions.first_mut().expect("session");
        session.phase = Phase::Creating { stream_id: 0 };
        let created = client::create_stream(
            &VaultRef::native(payment_streams_program_id(), alice, 0),
            0,
            n.provider_key.account_id(),
            session.rate,
            u128::from(session.allocation),
            paystreams_program::ExtensionSettings::default(),
        );
        store.save(&snapshot).expect("save");
        drop(store);
        match case {
            "included" => assert!(n.chain.submit_now(&created, &[&key(1)]).expect("submit").is_included()),
            "deadline_passed" => n.chain.advance_by(121).expect("advance"),
            _ => {}
        }
        let user = reopen(&n, &path).await;
        let vault = n.chain.vault(&alice, 0).await.expect("read").expect("vault");
        let sessions = user.sessions().expect("sessions");
        if case == "deadline_passed" {
            assert!(sessions.is_empty(), "{case}: dropped");
            assert_eq!(vault.next_stream_id, 0, "{case}: no stream");
            assert_eq!(vault.total_allocated.0, 0);
        } else {
            assert_eq!(sessions.len(), 1, "{case}");
            assert_eq!(sessions.first().map(|s| s.phase), Some(Phase::Streaming { stream_id: 0 }), "{case}");
            assert_eq!(vault.next_stream_id, 1, "{case}: exactly one stream, never two");
            assert_eq!(vault.total_allocated.0, 100, "{case}");
        }
    }
}

#[tokio::test]
async fn accepted_proposals_never_count_towards_the_attempt_cap() {
    let n = net(UserConfig::default(), 5);
    for round in 0..8 {
        n.user.propose(&advert(&n), &terms(5, 100)).await.expect("propose");
        let reaction = n.user.on_proposal_status(&n.provider_id(), &ok(), None).await.expect("react");
        assert_eq!(reaction, Reaction::StreamCreated { stream_id: round });
        assert_eq!(n.user.close(&n.provider_id()).await.expect("close"), Some(round));
    }
}

#[tokio::test]
async fn pushed_terminations_close_pause_or_are_ignored() {
    use paystreams_wire::{ServiceTermination, TerminationType};
    let alice = key(1).account_id();
    let mut n = net(UserConfig::default(), 5);
    let stream_id = n.open().await;
    let session = n.user.current(&n.provider_id()).expect("read").expect("session");
    let temporary = |resume_after| ServiceTermination { termination_type: TerminationType::Temporary, resume_after };
    let permanent = ServiceTermination { termination_type: TerminationType::Permanent, resume_after: 0 };
    // Unknown session, or a known one named by another provider: ignored.
    assert_eq!(n.user.on_termination(&n.provider_id(), &[9; 32], permanent).await.expect("react"), Reaction::Ignored);
    assert_eq!(
        n.user.on_termination(&key(3).account_id().0, &session.session_id, permanent).await.expect("react"),
        Reaction::Ignored
    );
    assert!(n.proof_request().await.0.is_granted());
    // TEMPORARY: paused on chain until resume_after, then the next request resumes.
    let resume = n.chain.now_secs().expect("now") + 30;
    let reaction =
        n.user.on_termination(&n.provider_id(), &session.session_id, temporary(resume)).await.expect("react");
    assert_eq!(reaction, Reaction::WaitUntil { resume_after: resume });
    let view = n.chain.stream(&alice, 0, stream_id).await.expect("read").expect("stream");
    assert_eq!(view.state, StreamState::Paused);
    let request = n.request();
    assert!(matches!(n.user.proof(&n.provider_id(), &request).await, Err(UserError::Paused(t)) if t == resume));
    n.advance(31).await;
    let (verdict, reaction) = n.proof_request().await;
    assert!(verdict.is_granted(), "{verdict:?}");
    assert_eq!(reaction, Reaction::Served);
    assert_eq!(n.chain.stream(&alice, 0, stream_id).await.expect("read").expect("stream").state, StreamState::Active);
    // PERMANENT: the stream is closed and the session forgotten.
    let reaction = n.user.on_termination(&n.provider_id(), &session.session_id, permanent).await.expect("react");
    assert_eq!(reaction, Reaction::Closed { stream_id: Some(stream_id) });
    assert_eq!(n.chain.stream(&alice, 0, stream_id).await.expect("read").expect("stream").state, StreamState::Closed);
    assert!(n.user.sessions().expect("sessions").is_empty());
    assert_eq!(
        n.user.on_termination(&n.provider_id(), &session.session_id, permanent).await.expect("again"),
        Reaction::Ignored
    );
}

#[tokio::test]
async fn a_spent_stream_is_topped_up_when_configured_else_closed_for_a_new_session() {
    let alice = key(1).account_id();
    // No top-up rule: the spent stream is closed and forgotten; the next proposal is allowed.
    let mut n = net(UserConfig::default(), 5);
    let stream_id = n.open().await; // 100 at rate 5: spent after 20 s
    assert!(n.user.usable(&n.provider_id()).await.expect("usable"));
    n.advance(25).await;
    assert!(!n.user.usable(&n.provider_id()).await.expect("usable"));
    assert_eq!(n.chain.stream(&alice, 0, stream_id).await.expect("read").expect("stream").state, StreamState::Closed);
    assert!(n.user.sessions().expect("sessions").is_empty());
    n.user.propose(&advert(&n), &terms(5, 100)).await.expect("a new session may be proposed");

    // With a top-up rule: topped up, resumed, and still the same session.
    let config =
        UserConfig { auto_top_up: Some(AutoTopUp { when_remaining_secs: 5, amount: 500 }), ..UserConfig::default() };
    let mut n = net(config, 5);
    let stream_id = n.open().await;
    n.advance(25).await;
    assert!(n.user.usable(&n.provider_id()).await.expect("usable"));
    let view = n.chain.stream(&alice, 0, stream_id).await.expect("read").expect("stream");
    assert_eq!((view.state, view.unaccrued.0), (StreamState::Active, 500));
    n.sync().await;
    assert!(n.proof_request().await.0.is_granted());

    // Closed on chain by someone else: forgotten.
    let mut n = net(UserConfig::default(), 5);
    let stream_id = n.open().await;
    let close = client::close_stream_by_owner(&VaultRef::native(payment_streams_program_id(), alice, 0), stream_id);
    assert!(n.chain.submit_now(&close, &[&key(1)]).expect("submit").is_included());
    assert!(!n.user.usable(&n.provider_id()).await.expect("usable"));
    assert!(n.user.sessions().expect("sessions").is_empty());
}
