//! Bounded maintenance: a tick touches at most `tick_sessions_max` sessions and claimable
//! streams, resumes where the last one stopped, and visits every session within
//! `ceil(sessions / max)` ticks.

use crate::common::*;
use paystreams_provider::{
    AcceptOutcome, BindOutcome, EndReason, EngineLimits, MemoryStore, NoClaims, Provider, Session, SessionId,
    SessionState, SessionStore as _, VaultKey,
    session::{AcceptedParams, PinnedPolicy},
    store::Table,
};

const SESSIONS: u32 = 10_000;

fn session(i: u32) -> Session {
    let mut owner = [0_u8; 32];
    owner[..4].copy_from_slice(&i.to_be_bytes());
    let mut id = [0xa5_u8; 32];
    id[..4].copy_from_slice(&i.wrapping_mul(2_654_435_761).to_be_bytes());
    Session {
        id: SessionId(id),
        vault: VaultKey { owner, vault_id: 0 },
        owner_public_key: [2; 32],
        token_id: [0; 32],
        params: AcceptedParams {
            service_id: SERVICE.into(),
            rate: 10,
            allocation: 1_000,
            create_stream_deadline: START + 200,
        },
        policy: PinnedPolicy {
            max_create_stream_deadline_delay: 300,
            first_response_cap: 65_536,
            min_rate: 5,
            min_allocation: 100,
            deferred_first_proof: false,
        },
        session_key: [4; 32],
        accepted_at: START,
        predicted_stream_id: 0,
        state: SessionState::Pending,
        matching_stream: None,
        suspended_until: 0,
    }
}

#[tokio::test]
async fn a_tick_touches_at_most_the_bound_and_every_session_is_visited_in_time() {
    let (chain, _) = chain_with_vault(&key(1), &key(2));
    let chain = CountingChain::new(chain);
    let limits = EngineLimits { ended_retention_secs: 0, ..EngineLimits::default() };
    let max = limits.tick_sessions_max;
    let store = MemoryStore::new();
    // Idle bound sessions, each on stream 0 of its own vault; every tenth one ended long ago
    // (to be purged when visited: the proof that it was visited).
    for i in 0..SESSIONS {
        let s = session(i);
        let peer = format!("peer-{i}");
        assert_eq!(store.accept(&s, peer.as_bytes(), START).await.expect("accept"), AcceptOutcome::Accepted);
        assert_eq!(store.bind_stream(s.id, 0).await.expect("bind"), BindOutcome::Bound);
        if i % 10 == 0 {
            let mut ended = store.session(s.id).await.expect("read").expect("kept");
            ended.state = SessionState::Ended { reason: EndReason::StreamClosed, at: 0 };
            store.update(&ended).await.expect("update");
        }
    }
    let provider = Provider::new(policy(&key(2)), limits, chain.clone(), store, NoClaims).expect("provider");
    let now_ms = START * 1000;
    let ticks = usize::try_from(SESSIONS).expect("small").div_ceil(max);
    for tick in 1..=ticks {
        let reads = chain.reads();
        let stats = provider.tick(now_ms).await.expect("tick");
        let reads = chain.reads() - reads;
        assert!(stats.sessions <= max && stats.streams <= max && stats.rechecks <= max, "tick {tick}: {stats:?}");
        assert!(reads <= 1 + u64::try_from(max).expect("small"), "tick {tick}: {reads} chain reads");
        assert!(stats.sessions > 0, "tick {tick} visited nothing");
    }
    // Every ended session was visited (and purged) within ceil(n / max) ticks.
    let left = provider.store().kv().len(Table::Sessions).expect("len");
    assert_eq!(left, usize::try_from(SESSIONS - SESSIONS / 10).expect("small"));
    for i in (0..SESSIONS).step_by(10) {
        assert!(provider.store().session(session(i).id).await.expect("read").is_none(), "session {i} not visited");
    }
}
