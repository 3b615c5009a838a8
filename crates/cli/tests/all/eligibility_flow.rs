//! LIP-155 end to end against a real in-process node (in memory, port 0, automine, dev
//! methods): both engines read and write the chain through `RpcChain` (JSON-RPC over HTTP), the
//! provider's follower receives events over the node's WebSocket subscription, and the
//! transport between user and provider is in-process (direct calls).
//!
//! advert → proposal → first response (over the cap: refused; within it: OK) → stream created by
//! the user → stream-proof-backed requests served → a replayed request refused → the stream
//! drains, the provider claims and closes it → PERMANENT termination → the user closes out and
//! withdraws; a disconnected follower makes the provider fail closed (the provider is asked at a
//! time past its staleness bound instead of the test sleeping that long). Balances conserve
//! supply.

use std::{sync::Arc, time::Duration};

use paystreams_lez_core::crypto::SecretKey;
use paystreams_program::{Event, state::StreamState};
use paystreams_provider::{
    ChainClaimer, EngineLimits, FollowerConfig, GrantKind, MemoryStore, Provider, ProviderPolicy, SessionStore as _,
    StreamKey, VaultKey, Verdict, run_follower,
};
use paystreams_rpc::{
    chain_view::{ChainView as _, ChainWriter as _, SubmitOutcome},
    clock::wall_clock_ms,
    events::Liveness,
    remote::{RpcChain, WsEvents},
};
use paystreams_user::{Reaction, Terms, User, UserConfig};
use paystreams_wire::{
    CanonicalStoreRequest, ProviderAdvert, RequestDigest as _, StatusCode, TerminationType, TokenStreamPolicy,
};

use crate::common::{dev_node, wait_for};

const SERVICE: &str = "/vac/waku/store-query/3.0.0";
const FIRST_RESPONSE_CAP: u64 = 4_096;
const RATE: u64 = 5;
const ALLOCATION: u64 = 100;
const DEPOSIT: u128 = 10_000;
/// How old the provider's chain view may be before it fails closed.
const STALENESS_BOUND_MS: u64 = 3_000;

type Engine = Provider<RpcChain, MemoryStore, ChainClaimer<RpcChain>>;

struct Transport {
    provider: Arc<Engine>,
    requests: u64,
}

impl Transport {
    fn request(&mut self) -> CanonicalStoreRequest {
        self.requests += 1;
        CanonicalStoreRequest { request_id: format!("req-{}", self.requests), ..CanonicalStoreRequest::default() }
    }

    /// The provider judges now; the service answers `response_len` bytes when allowed.
    async fn send(&self, request: &CanonicalStoreRequest, proof: &[u8], response_len: u64) -> Verdict {
        self.send_at(request, proof, response_len, wall_clock_ms()).await
    }

    /// The provider judges at wall-clock time `now_ms`; the service answers `response_len`
    /// bytes when allowed.
    async fn send_at(&self, request: &CanonicalStoreRequest, proof: &[u8], response_len: u64, now_ms: u64) -> Verdict {
        let verdict = self.provider.handle(b"user-peer", &request.digest(), Some(proof), now_ms).await;
        if let Some(grant) = verdict.grant
            && let Err(refusal) = self.provider.finish_response(&grant, response_len).await.expect("engine")
        {
            return refusal;
        }
        verdict
    }
}

fn advert(provider: &Engine) -> ProviderAdvert {
    ProviderAdvert::decode(&provider.policy().advert().encode()).expect("advert decodes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[expect(clippy::too_many_lines, reason = "one flow, step by step")]
async fn eligibility_flow_against_a_real_node() {
    let (node, client) = dev_node(None).await;
    let (user_key, provider_key): (SecretKey, SecretKey) = (node.dev_keys()[0].clone(), node.dev_keys()[1].clone());
    let (u, p) = (user_key.account_id(), provider_key.account_id());
    let supply = client.balance(u).await.expect("balance") + client.balance(p).await.expect("balance");
    let user_start = client.balance(u).await.expect("balance");
    let provider_start = client.balance(p).await.expect("balance");

    // The user's vault, funded through the same writer the engine uses.
    client.init_vault(&user_key, 0, None).await.expect("vault");
    client.deposit(&user_key, 0, DEPOSIT).await.expect("deposit");
    let user_chain = RpcChain::new(client.clone());
    let refused = user_chain
        .submit(
            &paystreams_program::client::withdraw(&client.vault_ref(u, 0, [0; 32]), DEPOSIT + 1, None),
            &[&user_key],
        )
        .await
        .expect("submit");
    assert!(
        matches!(refused, SubmitOutcome::Failed { code, ref name } if code != 0 && !name.is_empty()),
        "{refused:?}"
    );

    // Provider: RPC chain view capped by the follower's liveness, RPC claimer, follower over WS.
    let liveness = Liveness::new();
    let provider_chain = RpcChain::new(client.clone()).with_liveness(liveness.clone());
    let mut policy = ProviderPolicy::new(
        p.0,
        vec![SERVICE.into()],
        vec![TokenStreamPolicy { token_id: [0; 32], min_rate: RATE, min_allocation: ALLOCATION }],
    );
    policy.first_response_cap = FIRST_RESPONSE_CAP;
    let limits =
        EngineLimits { staleness_bound_ms: STALENESS_BOUND_MS, recheck_lead_secs: 5, ..EngineLimits::default() };
    let claimer = ChainClaimer::new(provider_chain.clone(), provider_key.clone(), client.program_id(), None);
    let provider =
        Arc::new(Provider::new(policy, limits, provider_chain, MemoryStore::new(), claimer).expect("provider"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let follower = {
        let provider = Arc::clone(&provider);
        let events = WsEvents::for_provider(client.node(), p);
        let config = FollowerConfig {
            tick_interval: Duration::from_millis(200),
            min_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(1),
            liveness: Some(liveness.clone()),
            claim_on_shutdown: true,
            handled: None,
        };
        tokio::spawn(async move {
            run_follower(&provider, &events, config, async {
                let _ = stopped.await;
            })
            .await
        })
    };
    let user = User::new(user_key.clone(), user_chain.clone(), UserConfig::default());
    let mut net = Transport { provider: Arc::clone(&provider), requests: 0 };
    let advert = advert(&provider);
    let terms = Terms { vault_id: 0, token_id: [0; 32], service_id: SERVICE.into(), rate: 1, allocation: 10 };

    // A first response over the first-response cap is refused, the session ended with a
    // PERMANENT termination in that refusal (not queued again for a standalone push).
    let request = net.request();
    let bytes = user.propose(&advert, &terms).await.expect("propose");
    let verdict = net.send(&request, &bytes, FIRST_RESPONSE_CAP + 1).await;
    assert_eq!(verdict.code(), Some(StatusCode::ParamsRejected), "{verdict:?}");
    assert!(verdict.grant.is_none());
    assert_eq!(
        verdict.termination.map(|t| (t.termination_type, t.resume_after)),
        Some((TerminationType::Permanent, 0))
    );
    assert!(provider.take_terminations().expect("outbox").is_empty());
    let reaction = user.on_proposal_status(&p.0, &verdict.status, verdict.termination).await.expect("react");
    assert!(matches!(reaction, Reaction::Adjust { .. }), "{reaction:?}");

    // Proposal accepted: the first response, within the cap, is served.
    let request = net.request();
    let bytes = user.propose(&advert, &terms).await.expect("propose");
    let verdict = net.send(&request, &bytes, FIRST_RESPONSE_CAP).await;
    assert_eq!(verdict.code(), Some(StatusCode::Ok), "{verdict:?}");
    let grant = verdict.grant.expect("granted");
    assert_eq!(grant.kind, GrantKind::First { max_response_bytes: FIRST_RESPONSE_CAP });
    let session = verdict.session.expect("session");

    // The user creates the matching stream on chain through the writer.
    let reaction = user.on_proposal_status(&p.0, &verdict.status, verdict.termination).await.expect("react");
    let Reaction::StreamCreated { stream_id } = reaction else { panic!("{reaction:?}") };
    assert_eq!(stream_id, 0);
    let view = client.stream(u, 0, stream_id).await.expect("read").expect("stream");
    assert_eq!(
        (view.provider, view.rate, view.allocation.0, view.state),
        (p, RATE, u128::from(ALLOCATION), StreamState::Active)
    );
    // The follower sees StreamCreated over WebSocket and binds the session to the stream.
    wait_for("the StreamCreated event", async || {
        let s = provider.store().session(session).await.expect("store")?;
        (s.bound_stream() == Some(stream_id)).then_some(())
    })
    .await;

    // Stream-proof-backed requests are served.
    let stream_key = StreamKey { vault: VaultKey { owner: u.0, vault_id: 0 }, stream_id };
    for _ in 0..3 {
        let request = net.request();
        let bytes = user.proof(&p.0, &request).await.expect("proof");
        let verdict = net.send(&request, &bytes, 500).await;
        assert_eq!(verdict.code(), Some(StatusCode::Ok), "{verdict:?}");
        assert_eq!(verdict.grant.map(|g| g.kind), Some(GrantKind::Stream { stream: stream_key }));
        let reaction = user.on_proof_status(&p.0, &verdict.status, verdict.termination).await.expect("react");
        assert_eq!(reaction, Reaction::Served);
    }

    // A replayed request is refused; the user is told to resend a fresh one.
    let request = net.request();
    let bytes = user.proof(&p.0, &request).await.expect("proof");
    assert!(net.send(&request, &bytes, 10).await.is_granted());
    let replay = net.send(&request, &bytes, 10).await;
    assert_eq!(replay.code(), Some(StatusCode::ProofInvalid), "{replay:?}");
    assert!(replay.grant.is_none() && replay.termination.is_none());
    let reaction = user.on_proof_status(&p.0, &replay.status, replay.termination).await.expect("react");
    assert!(matches!(reaction, Reaction::ResendFresh { .. }), "{reaction:?}");

    // The stream drains: past its planned stop it is depleted and no longer backs requests.
    client.advance_time(25).await.expect("advance time");
    let view = client.stream(u, 0, stream_id).await.expect("read").expect("stream");
    assert_eq!(view.state, StreamState::Paused);
    assert_eq!(view.unaccrued.0, 0);
    let request = net.request();
    let bytes = user.proof(&p.0, &request).await.expect("proof");
    let verdict = net.send(&request, &bytes, 10).await;
    assert_eq!(verdict.code(), Some(StatusCode::StreamNotActive), "{verdict:?}");
    assert!(verdict.grant.is_none());
    let reaction = user.on_proof_status(&p.0, &verdict.status, verdict.termination).await.expect("react");
    assert!(matches!(reaction, Reaction::StreamInactive { state: Some(StreamState::Paused), .. }), "{reaction:?}");

    // The follower's tick re-checks the depleted stream and claims the whole allocation.
    wait_for("the depletion claim", async || {
        (client.balance(p).await.expect("balance") == provider_start + u128::from(ALLOCATION)).then_some(())
    })
    .await;

    // The provider closes the stream; the follower ends the session on StreamClosed.
    let receipt = client.close_by_provider(&provider_key, u, 0, stream_id, None).await.expect("close");
    assert!(paystreams_client::stream_events(&receipt).any(|e| matches!(e, Event::StreamClosed { .. })));
    let terminations = wait_for("the termination", async || {
        let t = provider.take_terminations().expect("outbox");
        (!t.is_empty()).then_some(t)
    })
    .await;
    assert_eq!(terminations.len(), 1);
    assert_eq!(terminations[0].0, session);
    assert_eq!(terminations[0].1.termination_type, TerminationType::Permanent);

    // The next request gets STREAM_NOT_ACTIVE + PERMANENT; the user closes out (the provider
    // already closed the stream, so nothing is left to close).
    let request = net.request();
    let bytes = user.proof(&p.0, &request).await.expect("proof");
    let verdict = net.send(&request, &bytes, 10).await;
    assert_eq!(verdict.code(), Some(StatusCode::StreamNotActive), "{verdict:?}");
    assert_eq!(verdict.termination.map(|t| t.termination_type), Some(TerminationType::Permanent));
    assert!(verdict.grant.is_none());
    let reaction = user.on_proof_status(&p.0, &verdict.status, verdict.termination).await.expect("react");
    assert_eq!(reaction, Reaction::Closed { stream_id: None });

    // With the follower stopped, the view goes stale and the provider fails closed.
    stop.send(()).expect("follower running");
    let stats = follower.await.expect("follower");
    assert!(stats.connections >= 1, "{stats:?}");
    assert!(stats.events >= 3, "StreamCreated, Claimed, StreamClosed at least: {stats:?}");
    assert_eq!((stats.event_errors, stats.shutdown_claims), (0, 0), "{stats:?}");
    // The provider judges the next request half a second past the bound: the view the follower
    // last refreshed is too old by then.
    let request = net.request();
    let bytes = user.propose(&advert, &terms).await.expect("propose");
    let verdict = net.send_at(&request, &bytes, 10, wall_clock_ms() + STALENESS_BOUND_MS + 500).await;
    assert_eq!(verdict.code(), Some(StatusCode::ParamsRejected), "{verdict:?}");
    assert_eq!(verdict.termination.map(|t| t.termination_type), Some(TerminationType::Temporary));
    assert!(verdict.grant.is_none());
    let reaction = user.on_proposal_status(&p.0, &verdict.status, verdict.termination).await.expect("react");
    assert!(matches!(reaction, Reaction::WaitUntil { .. }), "{reaction:?}");

    // The user recovers the rest of the vault.
    let vault = user_chain.vault(&u, 0).await.expect("read").expect("vault");
    assert_eq!(
        (vault.balance.0, vault.total_allocated.0, vault.unallocated.0),
        (DEPOSIT - u128::from(ALLOCATION), 0, DEPOSIT - u128::from(ALLOCATION))
    );
    client.withdraw(&user_key, 0, vault.unallocated.0, None).await.expect("withdraw");
    let vault = user_chain.vault(&u, 0).await.expect("read").expect("vault");
    assert_eq!(vault.balance.0, 0);
    let (user_end, provider_end) =
        (client.balance(u).await.expect("balance"), client.balance(p).await.expect("balance"));
    assert_eq!(user_end, user_start - u128::from(ALLOCATION));
    assert_eq!(provider_end, provider_start + u128::from(ALLOCATION));
    assert_eq!(user_end + provider_end, supply);
    node.shutdown().await;
}
