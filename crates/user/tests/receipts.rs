//! A provider paid through delivery receipts: both engines over direct calls against the
//! in-memory chain; the user signs a cumulative receipt after every response, the provider
//! keeps the latest and claims with it.

use paystreams_lez_core::{crypto::SecretKey, sha256, transfer::authenticated_transfer_program_id};
use paystreams_program::{
    client::{self, VaultRef},
    payment_streams_program_id,
    state::VaultPrivacyTier,
};
use paystreams_provider::{ChainClaimer, EngineLimits, MemoryStore, Provider, ProviderPolicy, Verdict};
use paystreams_rpc::chain_view::{ChainView as _, InMemoryChain};
use paystreams_user::{Reaction, Session, Terms, User, UserConfig};
use paystreams_wire::{
    CanonicalStoreRequest, DeliveryReceipt, ProviderAdvert, ReceiptAck, ReceiptStatus, ReceiptTerms,
    RequestDigest as _, StatusCode, TokenStreamPolicy,
};

const SERVICE: &str = "/vac/waku/store-query/3.0.0";
const PEER: &[u8] = b"alice's peer id";

fn key(byte: u8) -> SecretKey {
    SecretKey::from_bytes(&[byte; 32]).expect("key")
}

type Engine = Provider<InMemoryChain, MemoryStore, ChainClaimer<InMemoryChain>>;

struct Net {
    chain: InMemoryChain,
    provider: Engine,
    provider_key: SecretKey,
    user: User<InMemoryChain>,
    vault: VaultRef,
    cursor: usize,
    requests: u64,
}

fn net(receipts: ReceiptTerms, prefer_receipts: bool) -> Net {
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
        vec![TokenStreamPolicy { token_id: [0; 32], min_rate: 7, min_allocation: 1_000 }],
    );
    policy.extensions.receipts = receipts;
    let claimer = ChainClaimer::new(chain.clone(), provider_key.clone(), payment_streams_program_id(), None);
    let provider =
        Provider::new(policy, EngineLimits::default(), chain.clone(), MemoryStore::new(), claimer).expect("provider");
    let config = UserConfig { prefer_receipts, ..UserConfig::default() };
    let user = User::new(alice, chain.clone(), config);
    Net { chain, provider, provider_key, user, vault, cursor: 0, requests: 0 }
}

impl Net {
    fn now_ms(&self) -> u64 {
        self.chain.now_secs().expect("now") * 1000
    }

    fn provider_id(&self) -> [u8; 32] {
        self.provider_key.account_id().0
    }

    /// The user's session with the provider (its receipt book included).
    fn session(&self) -> Session {
        self.user.current(&self.provider_id()).expect("state").expect("a session")
    }

    fn request(&mut self) -> CanonicalStoreRequest {
        self.requests += 1;
        CanonicalStoreRequest { request_id: format!("req-{}", self.requests), ..CanonicalStoreRequest::default() }
    }

    async fn send(&self, request: &CanonicalStoreRequest, proof: &[u8]) -> Verdict {
        let verdict = self.provider.handle(PEER, &request.digest(), Some(proof), self.now_ms()).await;
        if let Some(grant) = verdict.grant {
            assert_eq!(self.provider.finish_response(&grant, 500).await.expect("engine"), Ok(()));
        }
        verdict
    }

    async fn sync(&mut self) {
        let events = self.chain.events_since(self.cursor).expect("events");
        self.cursor += events.len();
        for event in events {
            self.provider.on_event(&event).await.expect("on_event");
        }
    }

    async fn open(&mut self) -> u64 {
        let advert = ProviderAdvert::decode(&self.provider.policy().advert().encode()).expect("advert");
        let terms = Terms { vault_id: 0, token_id: [0; 32], service_id: SERVICE.into(), rate: 1, allocation: 10 };
        let request = self.request();
        let bytes = self.user.propose(&advert, &terms).await.expect("propose");
        let verdict = self.send(&request, &bytes).await;
        assert_eq!(verdict.code(), Some(StatusCode::Ok), "{verdict:?}");
        let reaction = self.user.on_proposal_status(&self.provider_id(), &verdict.status, None).await.expect("react");
        let Reaction::StreamCreated { stream_id } = reaction else { panic!("{reaction:?}") };
        self.sync().await;
        stream_id
    }

    /// One served request; returns the response's digest (what the receipt chain covers).
    async fn served(&mut self) -> [u8; 32] {
        let request = self.request();
        let bytes = self.user.proof(&self.provider_id(), &request).await.expect("proof");
        let verdict = self.send(&request, &bytes).await;
        assert!(verdict.is_granted(), "{verdict:?}");
        sha256(&[b"response to ", request.request_id.as_bytes()])
    }

    fn balance(&self, account: paystreams_lez_core::AccountId) -> u128 {
        self.chain.with_inner(|i| i.chain.state().get(&account).map_or(0, |a| a.balance)).expect("read")
    }

    /// The user's funds: its account plus its vault.
    async fn user_funds(&self) -> u128 {
        let vault = self.chain.vault(&self.vault.owner, 0).await.expect("read").expect("vault");
        self.balance(self.vault.owner) + vault.balance.0
    }
}

#[tokio::test]
async fn a_provider_is_paid_exactly_what_the_receipts_acknowledge() {
    let mut n = net(ReceiptTerms::Required, false);
    let (user_before, provider_before) = (n.user_funds().await, n.balance(n.provider_key.account_id()));
    let stream_id = n.open().await;
    let owner = n.vault.owner;
    let view = n.chain.stream(&owner, 0, stream_id).await.expect("read").expect("stream");
    assert!(view.extensions.as_ref().and_then(|e| e.receipt_key.as_ref()).is_some(), "receipt key set: {view:?}");

    let mut session = n.session();
    let mut last = None;
    for i in 1..=4_u64 {
        n.chain.advance_by(3 * i).expect("advance");
        n.sync().await;
        let response = n.served().await;
        let bytes = n.user.receipt(&mut session, &response).await.expect("sign").expect("a receipt");
        let ack = n.provider.on_receipt(Some(PEER), &bytes).await;
        assert_eq!(ack.code(), Some(ReceiptStatus::Kept), "{ack:?}");
        assert_eq!(ack.kept_total, session.receipts.acknowledged_total);
        // What the user acknowledges is what it saw accrue, never more.
        let view = n.chain.stream(&owner, 0, stream_id).await.expect("read").expect("stream");
        assert_eq!(session.receipts.acknowledged_total, view.accrued.0);
        last = Some(bytes);
    }
    let last = last.expect("signed");
    assert_eq!(session.receipts.deliveries, 4);
    // Activation happens at creation; 3+6+9+12 s at rate 7.
    assert_eq!(session.receipts.acknowledged_total, 7 * 30);

    // Replayed, from another peer, or tampered: nothing changes.
    let ack = |a: &ReceiptAck| a.code();
    assert_eq!(ack(&n.provider.on_receipt(Some(PEER), &last).await), Some(ReceiptStatus::NotNewer));
    assert_eq!(ack(&n.provider.on_receipt(Some(b"mallory"), &last).await), Some(ReceiptStatus::UnknownStream));
    assert_eq!(ack(&n.provider.on_receipt(None, &last).await), Some(ReceiptStatus::UnknownStream));
    let mut forged = DeliveryReceipt::decode(&last).expect("decode");
    forged.acknowledged_total += 1_000;
    assert_eq!(ack(&n.provider.on_receipt(Some(PEER), &forged.encode()).await), Some(ReceiptStatus::Invalid));
    let mut elsewhere = DeliveryReceipt::decode(&last).expect("decode");
    elsewhere.stream_config = [9; 32];
    assert_eq!(ack(&n.provider.on_receipt(Some(PEER), &elsewhere.encode()).await), Some(ReceiptStatus::Invalid));
    assert_eq!(ack(&n.provider.on_receipt(Some(PEER), &last[..40]).await), Some(ReceiptStatus::Malformed));

    // The user stops here and closes; the provider claims with the latest receipt.
    let close = client::close_stream_by_owner(&n.vault, stream_id);
    assert!(n.chain.submit_now(&close, &[&key(1)]).expect("submit").is_included());
    n.sync().await;
    n.provider.claim_all().await.expect("claim");
    let view = n.chain.stream(&owner, 0, stream_id).await.expect("read").expect("stream");
    let paid = view.extensions.as_ref().map(|e| e.receipt_paid.0).expect("extensions");
    assert_eq!(paid, session.receipts.acknowledged_total, "payout equals the acknowledged total");
    assert_eq!(view.accrued.0, 0, "nothing accrued left unacknowledged");
    let earned = n.balance(n.provider_key.account_id()) - provider_before;
    let spent = user_before - n.user_funds().await;
    assert_eq!((earned, spent), (session.receipts.acknowledged_total, session.receipts.acknowledged_total));
}

#[tokio::test]
async fn streams_carry_a_receipt_key_only_where_the_provider_takes_receipts() {
    for (terms, prefer, expected) in [
        (ReceiptTerms::Refused, true, false),
        (ReceiptTerms::Accepted, false, false),
        (ReceiptTerms::Accepted, true, true),
        (ReceiptTerms::Required, false, true),
    ] {
        let mut n = net(terms, prefer);
        let stream_id = n.open().await;
        let view = n.chain.stream(&n.vault.owner, 0, stream_id).await.expect("read").expect("stream");
        let has_key = view.extensions.as_ref().is_some_and(|e| e.receipt_key.is_some());
        assert_eq!(has_key, expected, "{terms:?}, prefer {prefer}");
        // Bound and served either way (the stream matches the provider's terms).
        n.served().await;
        let mut session = n.session();
        let receipt = n.user.receipt(&mut session, &[0; 32]).await.expect("receipt");
        assert_eq!(receipt.is_some(), expected);
    }
}

#[tokio::test]
async fn a_final_receipt_after_the_user_closed_the_stream_is_still_paid() {
    let mut n = net(ReceiptTerms::Required, false);
    let (user_before, provider_before) = (n.user_funds().await, n.balance(n.provider_key.account_id()));
    let stream_id = n.open().await;
    let mut session = n.session();
    n.chain.advance_by(10).expect("advance");
    n.sync().await;
    let response = n.served().await;
    let first = n.user.receipt(&mut session, &response).await.expect("sign").expect("receipt");
    assert_eq!(n.provider.on_receipt(Some(PEER), &first).await.code(), Some(ReceiptStatus::Kept));
    let first_total = session.receipts.acknowledged_total;
    // More accrues, the user closes: the provider's close-time claim pays only the first receipt.
    n.chain.advance_by(5).expect("advance");
    let close = client::close_stream_by_owner(&n.vault, stream_id);
    assert!(n.chain.submit_now(&close, &[&key(1)]).expect("submit").is_included());
    n.sync().await;
    let view = n.chain.stream(&n.vault.owner, 0, stream_id).await.expect("read").expect("stream");
    assert_eq!(view.extensions.as_ref().map(|e| e.receipt_paid.0), Some(first_total));
    assert_eq!(view.accrued.0, 7 * 5, "the last five seconds are not acknowledged yet");
    // The user acknowledges the rest; the provider keeps it and claims it.
    let last = n.user.receipt(&mut session, &[1; 32]).await.expect("sign").expect("receipt");
    assert_eq!(session.receipts.acknowledged_total, 7 * 15);
    assert_eq!(n.provider.on_receipt(Some(PEER), &last).await.code(), Some(ReceiptStatus::Kept));
    assert_eq!(n.provider.claim_all().await.expect("claim"), 1);
    let view = n.chain.stream(&n.vault.owner, 0, stream_id).await.expect("read").expect("stream");
    assert_eq!(view.accrued.0, 0);
    // Replaying a receipt already paid on chain changes nothing.
    assert_eq!(n.provider.on_receipt(Some(PEER), &first).await.code(), Some(ReceiptStatus::NotNewer));
    assert_eq!(n.provider.on_receipt(Some(PEER), &last).await.code(), Some(ReceiptStatus::NotNewer));
    assert_eq!(n.provider.claim_all().await.expect("claim"), 0);
    let earned = n.balance(n.provider_key.account_id()) - provider_before;
    let spent = user_before - n.user_funds().await;
    assert_eq!((earned, spent), (7 * 15, 7 * 15));
}
