//! Money is exact over real sockets with several users at once: each user runs a few rounds of
//! paid Store queries (a one-page query whose whole answer fits in the first response, or a
//! multi-page query that follows the cursor to the end), each round as a fresh process would
//! (the user engine reopened from its durable store, a new connection under the user's stable
//! identity), and closes its session at random points. Chain time moves between rounds.
//!
//! Afterwards: every stream is closed; the provider, while still running, has claimed every
//! stream it served, including those whose user never sent a stream proof; and for every unit
//! the users deposited, it is either in the provider's account or still in the users' vaults.

use std::{sync::Arc, time::Duration};

use paystreams_client::Client;
use paystreams_lez_core::crypto::SecretKey;
use paystreams_program::state::StreamState;
use paystreams_rpc::{StreamFilter, remote::RpcChain};
use paystreams_store::{
    Archive, STORE_SERVICE_ID,
    archive::SqliteArchive,
    client::PaidStore,
    provider::{ProviderConfig, SessionBackend, start},
};
use paystreams_testkit::rng::Rng;
use paystreams_user::{Terms, User, UserConfig, UserStore};

use crate::common::{FundedChain, funded_chain, last_event_block, messages, provider_config, query};

/// Users querying at once.
const USERS: usize = 6;
/// Rounds each user runs.
const ROUNDS: usize = 5;
/// Each user's deposit.
const DEPOSIT: u128 = 20_000;
/// Messages in the archive: five pages of five, the last one short.
const MESSAGES: u32 = 23;

/// What one user does in one round.
#[derive(Clone, Copy, Debug)]
struct Round {
    /// Follow the cursor to the end (else: one page only).
    all_pages: bool,
    /// Close the session after the query.
    close: bool,
}

/// One round of one user, as a fresh `store query` process would run it: open the user's
/// durable state, connect under its identity for this provider, query, maybe close.
async fn run_round(rpc: &str, owner: &SecretKey, state: &std::path::Path, provider: &str, round: Round) -> u64 {
    let client = Client::connect(rpc).expect("client");
    let store = UserStore::open(state, Duration::from_secs(30)).expect("user state");
    let user =
        Arc::new(User::open(owner.clone(), RpcChain::new(client), UserConfig::default(), store).await.expect("opens"));
    let terms = Terms { vault_id: 0, token_id: [0; 32], service_id: STORE_SERVICE_ID.into(), rate: 0, allocation: 0 };
    let paid = PaidStore::connect(provider, Arc::clone(&user), terms).await.expect("connects");
    let mut request = query();
    let mut messages = 0_u64;
    loop {
        let page = paid.page(&request).await.unwrap_or_else(|e| panic!("{round:?}: page refused: {e}"));
        messages += page.response.messages.len() as u64;
        match page.response.pagination_cursor {
            Some(cursor) if round.all_pages => request.pagination_cursor = Some(cursor),
            _ => break,
        }
    }
    if round.close {
        let provider_id = paid.advert().provider_id;
        user.close(&provider_id).await.expect("close");
    }
    paid.client().disconnect().await;
    messages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_unit_deposited_is_earned_or_still_in_the_vaults() {
    let mut rng = Rng::from_env_or_clock("exactness");
    let FundedChain { node, client, provider_key, provider_account, provider_before, users } =
        funded_chain(USERS, DEPOSIT).await;

    let dir = tempfile::tempdir().expect("tempdir");
    let archive: Arc<dyn Archive> = Arc::new(SqliteArchive::open(&dir.path().join("archive.sqlite")).expect("archive"));
    archive.insert(&messages(MESSAGES)).expect("seed");
    let config = ProviderConfig {
        sessions: SessionBackend::Redb(dir.path().join("sessions.redb")),
        // Claims happen while running (on close, on depletion), never only at shutdown.
        claim_on_shutdown: false,
        ..provider_config(node.rpc_url(), provider_key.clone(), "/ip4/127.0.0.1/tcp/0")
    };
    let provider = start(config, Arc::clone(&archive)).await.expect("provider");
    let address = provider.addrs()[0].to_string();
    let rpc = node.rpc_url();

    let mut served = 0_u64;
    for round in 0..ROUNDS {
        let plans: Vec<Round> =
            (0..USERS).map(|_| Round { all_pages: rng.chance(50), close: rng.chance(40) }).collect();
        let tasks: Vec<_> = users
            .iter()
            .zip(plans)
            .enumerate()
            .map(|(i, (owner, plan))| {
                let (rpc, owner, address) = (rpc.clone(), owner.clone(), address.clone());
                let state = UserStore::default_path(dir.path(), &format!("user-{i}"));
                tokio::spawn(async move { run_round(&rpc, &owner, &state, &address, plan).await })
            })
            .collect();
        for task in tasks {
            served += task.await.unwrap_or_else(|e| panic!("round {round}: a user failed: {e}"));
        }
        client.advance_time(1 + rng.below(20)).await.expect("time moves");
    }
    assert!(served >= (USERS * ROUNDS) as u64, "every query got messages: {served}");

    // Every user closes what it still holds, as `paystream session close --all` does.
    for (i, owner) in users.iter().enumerate() {
        let state = UserStore::default_path(dir.path(), &format!("user-{i}"));
        let store = UserStore::open(&state, Duration::from_secs(30)).expect("user state");
        let user = User::open(owner.clone(), RpcChain::new(client.clone()), UserConfig::default(), store)
            .await
            .expect("opens");
        for session in user.sessions().expect("sessions") {
            user.close_session(&session.session_id).await.expect("close");
        }
        assert!(user.sessions().expect("sessions").is_empty(), "user {i} holds nothing");
    }

    // The running provider handles every close (and claims) before it sees the next event.
    let last = last_event_block(&client, provider_account).await;
    assert!(provider.wait_for_events_through(last, Duration::from_secs(60)).await, "provider caught up");
    let streams =
        client.list_streams(StreamFilter { provider: Some(provider_account), owner: None }).await.expect("list");
    assert!(!streams.is_empty());
    let mut allocated = 0_u128;
    for s in &streams {
        assert_eq!(s.state, StreamState::Closed, "stream {} of {} is closed", s.stream_id, s.owner);
        assert_eq!(s.accrued.0, 0, "stream {} of {}: the provider claimed what accrued", s.stream_id, s.owner);
        allocated += s.allocation.0;
    }
    assert_eq!(allocated, 0, "closed, claimed streams hold nothing");
    let earned = client.balance(provider_account).await.expect("balance") - provider_before;
    let mut left = 0_u128;
    for owner in &users {
        let vault = client.vault(owner.account_id(), 0).await.expect("read").expect("vault");
        assert_eq!(vault.total_allocated.0, 0);
        left += vault.balance.0;
    }
    let deposited = DEPOSIT * USERS as u128;
    assert!(earned > 0 && earned < deposited, "the provider earned something, not everything: {earned}");
    assert!(streams.len() >= USERS, "every user opened at least one stream: {}", streams.len());
    assert_eq!(earned + left, deposited, "provider earned {earned}, vaults hold {left}, users deposited {deposited}");
    eprintln!(
        "exactness: {USERS} users x {ROUNDS} rounds, {} streams, {served} messages; provider earned {earned}, vaults hold {left}, deposits {deposited}",
        streams.len()
    );
    provider.shutdown().await;
    node.shutdown().await;
}
