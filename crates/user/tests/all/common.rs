//! Both engines over an in-process transport (direct calls) against the in-memory chain: the
//! harness every user-engine test shares.

use paystreams_lez_core::{crypto::SecretKey, sha256, transfer::authenticated_transfer_program_id};
use paystreams_program::{
    client::{self, VaultRef},
    payment_streams_program_id,
    state::VaultPrivacyTier,
};
use paystreams_provider::{ChainClaimer, EngineLimits, MemoryStore, Provider, ProviderPolicy, Verdict};
use paystreams_rpc::chain_view::{ChainView as _, InMemoryChain};
use paystreams_user::{Reaction, Session, Terms, User, UserConfig};
use paystreams_wire::{CanonicalStoreRequest, ProviderAdvert, RequestDigest as _, StatusCode, TokenStreamPolicy};

/// The requester identity the user's requests come from.
pub const PEER: &[u8] = b"user-peer";

pub const SERVICE: &str = "/vac/waku/store-query/3.0.0";

pub fn key(byte: u8) -> SecretKey {
    SecretKey::from_bytes(&[byte; 32]).expect("key")
}

pub type Engine = Provider<InMemoryChain, MemoryStore, ChainClaimer<InMemoryChain>>;

pub struct Net {
    pub chain: InMemoryChain,
    pub provider: Engine,
    pub provider_key: SecretKey,
    pub user: User<InMemoryChain>,
    /// The user's vault 0.
    pub vault: VaultRef,
    cursor: usize,
    requests: u64,
}

/// The user (10,000 in vault 0) and a provider whose native-token policy asks for at least
/// `min_rate` per second and an allocation of 100.
pub fn net(config: UserConfig, min_rate: u64) -> Net {
    net_with(config, min_rate, 100, |_| {})
}

/// As [`net`], with the provider's minimum allocation and any other policy term set by `adjust`.
pub fn net_with(
    config: UserConfig,
    min_rate: u64,
    min_allocation: u64,
    adjust: impl FnOnce(&mut ProviderPolicy),
) -> Net {
    let (alice, provider_key) = (key(1), key(2));
    let chain = InMemoryChain::new(&[(alice.account_id(), 1_000_000), (provider_key.account_id(), 1_000)], 1_000)
        .expect("chain");
    let vault = VaultRef::native(payment_streams_program_id(), alice.account_id(), 0);
    for call in [
        client::initialize_vault(&vault, VaultPrivacyTier::Public),
        client::deposit(&vault, 10_000, authenticated_transfer_program_id(), None),
    ] {
        assert!(chain.submit_now(&call, &[&alice]).expect("submit").is_included());
    }
    let mut policy = ProviderPolicy::new(
        provider_key.account_id().0,
        vec![SERVICE.into()],
        vec![TokenStreamPolicy { token_id: [0; 32], min_rate, min_allocation }],
    );
    adjust(&mut policy);
    let claimer = ChainClaimer::new(chain.clone(), provider_key.clone(), payment_streams_program_id(), None);
    let provider =
        Provider::new(policy, EngineLimits::default(), chain.clone(), MemoryStore::new(), claimer).expect("provider");
    let user = User::new(alice, chain.clone(), config);
    Net { chain, provider, provider_key, user, vault, cursor: 0, requests: 0 }
}

/// Discovery: the provider's advert, encoded and decoded as a discovery record would be.
pub fn advert(n: &Net) -> ProviderAdvert {
    ProviderAdvert::decode(&n.provider.policy().advert().encode()).expect("advert")
}

pub fn terms(rate: u64, allocation: u64) -> Terms {
    Terms { vault_id: 0, token_id: [0; 32], service_id: SERVICE.into(), rate, allocation }
}

impl Net {
    pub fn now_ms(&self) -> u64 {
        self.chain.now_secs().expect("now") * 1000
    }

    pub fn request(&mut self) -> CanonicalStoreRequest {
        self.requests += 1;
        CanonicalStoreRequest { request_id: format!("req-{}", self.requests), ..CanonicalStoreRequest::default() }
    }

    /// The transport: the provider judges, the service answers `response_len` bytes when allowed.
    pub async fn send(&self, request: &CanonicalStoreRequest, proof: &[u8], response_len: u64) -> Verdict {
        let verdict = self.provider.handle(PEER, &request.digest(), Some(proof), self.now_ms()).await;
        if let Some(grant) = verdict.grant
            && let Err(refusal) = self.provider.finish_response(&grant, response_len).await.expect("engine")
        {
            return refusal;
        }
        verdict
    }

    pub async fn sync(&mut self) {
        let events = self.chain.events_since(self.cursor).expect("events");
        self.cursor += events.len();
        for event in events {
            self.provider.on_event(&event).await.expect("on_event");
        }
    }

    pub async fn advance(&mut self, secs: u64) {
        self.chain.advance_by(secs).expect("advance");
        self.sync().await;
    }

    pub fn provider_id(&self) -> [u8; 32] {
        self.provider_key.account_id().0
    }

    /// Proposal, first response, stream creation.
    pub async fn open(&mut self) -> u64 {
        let advert = advert(self);
        let request = self.request();
        let bytes = self.user.propose(&advert, &terms(1, 10)).await.expect("propose");
        let verdict = self.send(&request, &bytes, 1_000).await;
        assert_eq!(verdict.code(), Some(StatusCode::Ok), "{verdict:?}");
        let reaction = self
            .user
            .on_proposal_status(&self.provider_id(), &verdict.status, verdict.termination)
            .await
            .expect("react");
        let Reaction::StreamCreated { stream_id } = reaction else { panic!("{reaction:?}") };
        self.sync().await;
        stream_id
    }

    pub async fn proof_request(&mut self) -> (Verdict, Reaction) {
        let request = self.request();
        let bytes = self.user.proof(&self.provider_id(), &request).await.expect("proof");
        let verdict = self.send(&request, &bytes, 500).await;
        let reaction =
            self.user.on_proof_status(&self.provider_id(), &verdict.status, verdict.termination).await.expect("react");
        (verdict, reaction)
    }

    /// One served request; returns the response's digest (what the receipt chain covers).
    pub async fn served(&mut self) -> [u8; 32] {
        let request = self.request();
        let bytes = self.user.proof(&self.provider_id(), &request).await.expect("proof");
        let verdict = self.send(&request, &bytes, 500).await;
        assert!(verdict.is_granted(), "{verdict:?}");
        sha256(&[b"response to ", request.request_id.as_bytes()])
    }

    /// The user's session with the provider (its receipt book included).
    pub fn session(&self) -> Session {
        self.user.current(&self.provider_id()).expect("state").expect("a session")
    }

    pub fn balance(&self, account: paystreams_lez_core::AccountId) -> u128 {
        self.chain.with_inner(|i| i.chain.state().get(&account).map_or(0, |a| a.balance)).expect("read")
    }

    /// The user's funds: its account plus its vault.
    pub async fn user_funds(&self) -> u128 {
        let vault = self.chain.vault(&self.vault.owner, 0).await.expect("read").expect("vault");
        self.balance(self.vault.owner) + vault.balance.0
    }
}
