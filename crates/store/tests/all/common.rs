//! What the end-to-end and fault tests share: the archive's contents, the query, a provider
//! configuration on a local chain, and a chain with funded users.

use std::time::Duration;

use paystreams_client::Client;
use paystreams_lez_core::{AccountId, crypto::SecretKey};
use paystreams_node::{NodeConfig, NodeHandle};
use paystreams_provider::{EngineLimits, ProviderPolicy};
use paystreams_store::{
    STORE_SERVICE_ID,
    archive::StoredMessage,
    client::new_request_id,
    provider::{ProviderConfig, ServiceOptions, SessionBackend},
    wire::{StoreQueryRequest, WakuMessage},
};
use paystreams_wire::TokenStreamPolicy;

pub const PUBSUB: &str = "/waku/2/default-waku/proto";
pub const TOPIC: &str = "/test/1/chat/proto";
/// The provider's lowest accepted rate.
pub const MIN_RATE: u64 = 2;
/// The provider's lowest accepted allocation.
pub const MIN_ALLOCATION: u64 = 1_000;
/// The most bytes the provider serves against a proposal.
pub const FIRST_CAP: u64 = 350;

/// `n` messages on [`TOPIC`]: payload `message 000`, `message 001`..., one second apart.
pub fn messages(n: u32) -> Vec<StoredMessage> {
    (0..n)
        .map(|i| {
            let m = WakuMessage {
                payload: format!("message {i:03}").into_bytes(),
                content_topic: TOPIC.into(),
                timestamp: Some(1_000_000_000 + i64::from(i) * 1_000),
                ..WakuMessage::default()
            };
            StoredMessage::new(PUBSUB.into(), m).expect("valid")
        })
        .collect()
}

/// A forward query of [`TOPIC`] with data, five messages a page, under a fresh request id.
pub fn query() -> StoreQueryRequest {
    StoreQueryRequest {
        request_id: new_request_id(),
        include_data: true,
        pubsub_topic: Some(PUBSUB.into()),
        content_topics: vec![TOPIC.into()],
        pagination_forward: true,
        pagination_limit: Some(5),
        ..StoreQueryRequest::default()
    }
}

/// A provider for `key` on the node at `rpc_url`, listening on `listen`: native token at
/// [`MIN_RATE`]/[`MIN_ALLOCATION`], first responses capped at [`FIRST_CAP`], a 5 s staleness
/// bound, sessions in memory, no admin endpoint, a follower tick of 200 ms.
pub fn provider_config(rpc_url: String, key: SecretKey, listen: &str) -> ProviderConfig {
    let mut policy = ProviderPolicy::new(
        key.account_id().0,
        vec![STORE_SERVICE_ID.into()],
        vec![TokenStreamPolicy { token_id: [0; 32], min_rate: MIN_RATE, min_allocation: MIN_ALLOCATION }],
    );
    policy.first_response_cap = FIRST_CAP;
    ProviderConfig {
        rpc_url,
        provider_key: key,
        listen: listen.parse().expect("multiaddr"),
        policy,
        limits: EngineLimits { staleness_bound_ms: 5_000, recheck_lead_secs: 5, ..EngineLimits::default() },
        sessions: SessionBackend::Memory,
        admin: None,
        tick_interval: Duration::from_millis(200),
        claim_on_shutdown: false,
        service: ServiceOptions::default(),
    }
}

/// An in-process dev node whose first dev key is the provider and the next `users` are users,
/// each with vault 0 holding `deposit`.
pub struct FundedChain {
    pub node: NodeHandle,
    pub client: Client,
    pub provider_key: SecretKey,
    pub provider_account: AccountId,
    /// The provider's balance before anything was paid.
    pub provider_before: u128,
    pub users: Vec<SecretKey>,
}

pub async fn funded_chain(users: usize, deposit: u128) -> FundedChain {
    let accounts = u32::try_from(users + 1).expect("a few users");
    let node = paystreams_node::start(NodeConfig { dev_accounts: accounts, ..NodeConfig::ephemeral_dev() })
        .await
        .expect("node");
    let client = Client::connect(&node.rpc_url()).expect("client");
    let provider_key = node.dev_keys()[0].clone();
    let user_keys: Vec<SecretKey> = node.dev_keys()[1..=users].to_vec();
    let provider_account = provider_key.account_id();
    let provider_before = client.balance(provider_account).await.expect("balance");
    for user in &user_keys {
        client.init_vault(user, 0, None).await.expect("vault");
        client.deposit(user, 0, deposit).await.expect("deposit");
    }
    FundedChain { node, client, provider_key, provider_account, provider_before, users: user_keys }
}

/// The block of `provider`'s latest payment-streams event on the chain (0 when it has none),
/// read from the node's event index. Once the provider's follower has handled that block it has
/// seen every close, and made every claim a close calls for; the chain head itself may be a
/// block without any event of the provider (a time advance), which no follower ever sees.
pub async fn last_event_block(client: &Client, provider: AccountId) -> u64 {
    let filter = paystreams_rpc::EventFilter { provider: Some(provider), ..paystreams_rpc::EventFilter::default() };
    let (mut after, mut last) = (None, 0);
    loop {
        let page = client.events(filter.clone(), after, None).await.expect("the node's event index");
        if let Some(event) = page.events.last() {
            last = event.cursor.block_id;
        }
        match page.next {
            Some(next) => after = Some(next),
            None => return last,
        }
    }
}
