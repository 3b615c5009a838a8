//! Many sessions behind one stream id: every vault's first stream is id 0, so a StreamProof
//! alone does not say whose session it is. The engine checks a proof only against the sessions
//! of the requester (transport identity) that sent it; these tests hold it to finding the
//! right session, never another user's, and to keeping forged proofs cheap.

use crate::common::{DEPOSIT, SERVICE, START, assert_ok, assert_refused, included, key, policy};
use paystreams_lez_core::{crypto::SecretKey, transfer::authenticated_transfer_program_id};
use paystreams_program::{
    ExtensionSettings,
    client::{self, VaultRef},
    payment_streams_program_id,
    state::VaultPrivacyTier,
};
use paystreams_provider::{ChainClaimer, EngineLimits, MemoryStore, Provider};
use paystreams_rpc::chain_view::InMemoryChain;
use paystreams_wire::{
    CanonicalStoreRequest, EligibilityProof, RequestDigest as _, StatusCode, StreamParams, sign_proposal,
    sign_stream_proof,
};

/// Many sessions on stream id 0.
const USERS: u8 = 40;

struct User {
    owner: SecretKey,
    session: SecretKey,
    requester: Vec<u8>,
}

fn digest(label: &str) -> [u8; 32] {
    CanonicalStoreRequest { request_id: label.to_owned(), ..CanonicalStoreRequest::default() }.digest()
}

async fn prove(
    provider: &Provider<InMemoryChain, MemoryStore, ChainClaimer<InMemoryChain>>,
    requester: &[u8],
    session: &SecretKey,
    label: &str,
    now_ms: u64,
) -> paystreams_provider::Verdict {
    let d = digest(label);
    let proof = EligibilityProof::Proof(sign_stream_proof(session, 0, &d)).encode();
    provider.handle(requester, &d, Some(&proof), now_ms).await
}

#[tokio::test]
async fn each_requester_finds_its_own_session_among_many_on_stream_zero() {
    let provider_key = key(200);
    let users: Vec<User> = (1..=USERS)
        .map(|i| User { owner: key(i), session: key(i.wrapping_add(100)), requester: format!("peer-{i}").into_bytes() })
        .collect();
    let mut funded: Vec<_> = users.iter().map(|u| (u.owner.account_id(), 1_000_000)).collect();
    funded.push((provider_key.account_id(), 1_000));
    let chain = InMemoryChain::new(&funded, START).expect("chain");
    let claimer = ChainClaimer::new(chain.clone(), provider_key.clone(), payment_streams_program_id(), None);
    let provider =
        Provider::new(policy(&provider_key), EngineLimits::default(), chain.clone(), MemoryStore::new(), claimer)
            .expect("provider");
    let now_ms = START * 1000;

    for u in &users {
        let vault = VaultRef::native(payment_streams_program_id(), u.owner.account_id(), 0);
        included(
            chain.submit_now(&client::initialize_vault(&vault, VaultPrivacyTier::Public), &[&u.owner]).expect("submit"),
        );
        included(
            chain
                .submit_now(&client::deposit(&vault, DEPOSIT, authenticated_transfer_program_id(), None), &[&u.owner])
                .expect("submit"),
        );
        let params = StreamParams {
            service_id: SERVICE.as_bytes().to_vec(),
            stream_rate: 10,
            allocation: 1_000,
            create_stream_deadline: START + 200,
        };
        let proposal = sign_proposal(
            &u.owner,
            0,
            provider_key.account_id().0,
            [0; 32],
            params,
            u.session.public_key().to_bytes(),
            None,
        )
        .expect("sign");
        let d = digest(&format!("proposal-{}", u.owner.account_id()));
        let verdict =
            provider.handle(&u.requester, &d, Some(&EligibilityProof::Proposal(proposal).encode()), now_ms).await;
        assert_ok(&verdict);
        let create =
            client::create_stream(&vault, 0, provider_key.account_id(), 10, 1_000, ExtensionSettings::default());
        included(chain.submit_now(&create, &[&u.owner]).expect("submit"));
    }

    // Every user is served on stream 0 through its own connection, binding its own session,
    // for one signature check each.
    let mut bound = std::collections::BTreeSet::new();
    for (i, u) in users.iter().enumerate() {
        let checks = provider.signature_checks();
        let verdict = prove(&provider, &u.requester, &u.session, &format!("first-{i}"), now_ms).await;
        assert_ok(&verdict);
        assert_eq!(provider.signature_checks() - checks, 1, "one signature check per proof");
        assert!(bound.insert(verdict.session.expect("session named")), "two users bound to one session");
    }
    assert_eq!(bound.len(), usize::from(USERS));

    // A user under an identity the provider knows no session for is told to use the proposing
    // peer or propose again, without any signature check.
    let last = users.last().expect("users");
    let checks = provider.signature_checks();
    for requester in [&b"a-new-connection"[..], &[], &[7; 65]] {
        let v = prove(&provider, requester, &last.session, "reconnected", now_ms).await;
        assert_refused(&v, StatusCode::ProofInvalid);
        assert!(v.status.status_desc.contains("propose again"), "{v:?}");
    }
    assert_eq!(provider.signature_checks(), checks, "unknown requesters cost no signature check");

    // A forged proof from a known requester costs one check; from an unknown one, none.
    let forger = key(250);
    let checks = provider.signature_checks();
    assert_refused(
        &prove(&provider, &users[0].requester, &forger, "forged-known", now_ms).await,
        StatusCode::ProofInvalid,
    );
    assert_eq!(provider.signature_checks() - checks, 1);
    assert_refused(&prove(&provider, b"stranger", &forger, "forged-unknown", now_ms).await, StatusCode::ProofInvalid);
    assert_eq!(provider.signature_checks() - checks, 1);

    // Another user's valid proof carried by a requester is never attributed to anyone.
    let (a, b) = (&users[0], &users[1]);
    assert_refused(&prove(&provider, &a.requester, &b.session, "relayed", now_ms).await, StatusCode::ProofInvalid);
    assert_ok(&prove(&provider, &b.requester, &b.session, "direct", now_ms).await);
    // A replayed request is refused.
    let d = digest("once");
    let proof = EligibilityProof::Proof(sign_stream_proof(&a.session, 0, &d)).encode();
    assert_ok(&provider.handle(&a.requester, &d, Some(&proof), now_ms).await);
    assert_refused(&provider.handle(&a.requester, &d, Some(&proof), now_ms).await, StatusCode::ProofInvalid);
}
