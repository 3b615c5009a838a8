//! A provider over the in-memory chain, with a funded user vault.

use paystreams_lez_core::{AccountId, crypto::SecretKey, transfer::authenticated_transfer_program_id};
use paystreams_program::{
    ExtensionSettings,
    client::{self, VaultRef},
    payment_streams_program_id,
    state::VaultPrivacyTier,
};
use paystreams_provider::{ChainClaimer, EngineLimits, MemoryStore, Provider, ProviderPolicy, SessionStore, Verdict};
use paystreams_rpc::chain_view::{InMemoryChain, SubmitOutcome};
use paystreams_wire::{
    CanonicalStoreRequest, EligibilityProof, RequestDigest as _, StreamParams, StreamProposal, TokenStreamPolicy,
    sign_proposal, sign_stream_proof,
};

pub const SERVICE: &str = "/vac/waku/store-query/3.0.0";
pub const START: u64 = 1_000;
pub const DEPOSIT: u128 = 10_000;
/// The transport identity alice's requests come from.
pub const PEER: &[u8] = b"alice-peer";

pub fn key(byte: u8) -> SecretKey {
    SecretKey::from_bytes(&[byte; 32]).expect("valid key")
}

pub type Engine<S> = Provider<InMemoryChain, S, ChainClaimer<InMemoryChain>>;

pub struct World<S = MemoryStore> {
    pub chain: InMemoryChain,
    pub alice: SecretKey,
    pub provider_key: SecretKey,
    pub vault: VaultRef,
    pub provider: Engine<S>,
    pub cursor: usize,
    pub requests: u64,
}

pub fn policy(provider_key: &SecretKey) -> ProviderPolicy {
    ProviderPolicy::new(
        provider_key.account_id().0,
        vec![SERVICE.into()],
        vec![TokenStreamPolicy { token_id: [0; 32], min_rate: 5, min_allocation: 100 }],
    )
}

pub fn chain_with_vault(alice: &SecretKey, provider_key: &SecretKey) -> (InMemoryChain, VaultRef) {
    let chain = InMemoryChain::new(&[(alice.account_id(), 1_000_000), (provider_key.account_id(), 1_000)], START)
        .expect("chain");
    let vault = VaultRef::native(payment_streams_program_id(), alice.account_id(), 0);
    included(chain.submit_now(&client::initialize_vault(&vault, VaultPrivacyTier::Public), &[alice]).expect("submit"));
    included(
        chain
            .submit_now(&client::deposit(&vault, DEPOSIT, authenticated_transfer_program_id(), None), &[alice])
            .expect("submit"),
    );
    (chain, vault)
}

pub fn included(outcome: SubmitOutcome) {
    assert!(outcome.is_included(), "transaction refused: {outcome:?}");
}

pub fn world() -> World {
    world_with(|_| {}, MemoryStore::new())
}

pub fn world_with<S: SessionStore>(tweak: impl FnOnce(&mut ProviderPolicy), store: S) -> World<S> {
    let (chain, _) = chain_with_vault(&key(1), &key(2));
    world_full(chain, tweak, store)
}

/// A fresh engine over an existing chain (as after a restart).
pub fn world_on<S: SessionStore>(chain: InMemoryChain, store: S) -> World<S> {
    world_full(chain, |_| {}, store)
}

fn world_full<S: SessionStore>(chain: InMemoryChain, tweak: impl FnOnce(&mut ProviderPolicy), store: S) -> World<S> {
    let (alice, provider_key) = (key(1), key(2));
    let vault = VaultRef::native(payment_streams_program_id(), alice.account_id(), 0);
    let cursor = chain.events_since(0).expect("events").len();
    let mut p = policy(&provider_key);
    tweak(&mut p);
    let claimer = ChainClaimer::new(chain.clone(), provider_key.clone(), payment_streams_program_id(), None);
    let provider = Provider::new(p, EngineLimits::default(), chain.clone(), store, claimer).expect("provider");
    World { chain, alice, provider_key, vault, provider, cursor, requests: 0 }
}

impl<S: SessionStore> World<S> {
    pub fn now(&self) -> u64 {
        self.chain.now_secs().expect("now")
    }

    pub fn now_ms(&self) -> u64 {
        self.now().checked_mul(1000).expect("ms")
    }

    pub fn provider_id(&self) -> [u8; 32] {
        self.provider_key.account_id().0
    }

    pub fn params(&self, rate: u64, allocation: u64) -> StreamParams {
        StreamParams {
            service_id: SERVICE.as_bytes().to_vec(),
            stream_rate: rate,
            allocation,
            create_stream_deadline: self.now() + 200,
        }
    }

    pub fn sign(
        &self,
        owner: &SecretKey,
        vault_id: u64,
        provider_id: [u8; 32],
        params: StreamParams,
        session: &SecretKey,
    ) -> StreamProposal {
        sign_proposal(owner, vault_id, provider_id, [0; 32], params, session.public_key().to_bytes(), None)
            .expect("sign")
    }

    /// A valid proposal from alice with the default terms (rate 10, allocation 1000).
    pub fn proposal(&self, session: &SecretKey) -> StreamProposal {
        self.sign(&self.alice, 0, self.provider_id(), self.params(10, 1000), session)
    }

    pub fn next_digest(&mut self) -> [u8; 32] {
        self.requests += 1;
        CanonicalStoreRequest { request_id: format!("req-{}", self.requests), ..CanonicalStoreRequest::default() }
            .digest()
    }

    pub async fn propose(&mut self, proposal: &StreamProposal) -> Verdict {
        let digest = self.next_digest();
        self.provider
            .handle(PEER, &digest, Some(&EligibilityProof::Proposal(proposal.clone()).encode()), self.now_ms())
            .await
    }

    pub async fn prove_digest(&self, session: &SecretKey, stream_id: u64, digest: [u8; 32]) -> Verdict {
        let proof = sign_stream_proof(session, stream_id, &digest);
        self.provider.handle(PEER, &digest, Some(&EligibilityProof::Proof(proof).encode()), self.now_ms()).await
    }

    pub async fn prove(&mut self, session: &SecretKey, stream_id: u64) -> Verdict {
        let digest = self.next_digest();
        self.prove_digest(session, stream_id, digest).await
    }

    /// Creates a stream to this provider at the vault's next id; returns the id.
    pub async fn create_stream(&mut self, rate: u64, allocation: u128) -> u64 {
        self.create_stream_to(self.provider_key.account_id(), rate, allocation).await
    }

    pub async fn create_stream_to(&mut self, provider: AccountId, rate: u64, allocation: u128) -> u64 {
        use paystreams_rpc::chain_view::ChainView as _;
        let next = self.chain.vault(&self.alice.account_id(), 0).await.expect("read").expect("vault").next_stream_id;
        let call = client::create_stream(&self.vault, next, provider, rate, allocation, ExtensionSettings::default());
        included(self.chain.submit_now(&call, &[&self.alice]).expect("submit"));
        self.sync().await;
        next
    }

    pub async fn owner_call(&mut self, call: &client::Call) {
        included(self.chain.submit_now(call, &[&self.alice]).expect("submit"));
        self.sync().await;
    }

    /// Feeds new chain events to the provider.
    pub async fn sync(&mut self) {
        let events = self.chain.events_since(self.cursor).expect("events");
        self.cursor += events.len();
        for event in events {
            self.provider.on_event(&event).await.expect("on_event");
        }
    }

    pub async fn advance(&mut self, seconds: u64) {
        self.chain.advance_by(seconds).expect("advance");
        self.sync().await;
    }
}

pub fn assert_refused(verdict: &Verdict, code: paystreams_wire::StatusCode) {
    assert_eq!(verdict.code(), Some(code), "{verdict:?}");
    assert!(!verdict.is_granted(), "service granted: {verdict:?}");
    assert!(verdict.grant.is_none());
}

pub fn assert_ok(verdict: &Verdict) {
    assert_eq!(verdict.code(), Some(paystreams_wire::StatusCode::Ok), "{verdict:?}");
    assert!(verdict.is_granted());
}

/// A chain view that counts its reads (requests must not cost chain reads before their
/// signature is checked; a tick reads at most a bounded number of streams).
#[derive(Clone, Debug)]
pub struct CountingChain {
    pub inner: InMemoryChain,
    pub reads: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl CountingChain {
    pub fn new(inner: InMemoryChain) -> Self {
        Self { inner, reads: std::sync::Arc::default() }
    }

    pub fn reads(&self) -> u64 {
        self.reads.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn count(&self) {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl paystreams_rpc::chain_view::ChainView for CountingChain {
    async fn head(&self) -> Result<paystreams_rpc::chain_view::ChainHead, paystreams_rpc::chain_view::ChainError> {
        self.count();
        self.inner.head().await
    }

    async fn vault(
        &self,
        owner: &AccountId,
        vault_id: u64,
    ) -> Result<Option<paystreams_rpc::VaultView>, paystreams_rpc::chain_view::ChainError> {
        self.count();
        self.inner.vault(owner, vault_id).await
    }

    async fn stream(
        &self,
        owner: &AccountId,
        vault_id: u64,
        stream_id: u64,
    ) -> Result<Option<paystreams_rpc::StreamView>, paystreams_rpc::chain_view::ChainError> {
        self.count();
        self.inner.stream(owner, vault_id, stream_id).await
    }
}
