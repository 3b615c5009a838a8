//! Cheap refusals: a forged or unauthorised request costs at most one signature check and no
//! chain read (signature first, chain second), and writes nothing.

use crate::common::*;
use paystreams_provider::{EngineLimits, MemoryStore, NoClaims, Provider, SessionStore as _, VaultKey, store::Table};
use paystreams_wire::{
    CanonicalStoreRequest, EligibilityProof, RequestDigest as _, StatusCode, StreamParams, sign_proposal,
    sign_stream_proof,
};

type Counted = Provider<CountingChain, MemoryStore, NoClaims>;

struct Setup {
    chain: CountingChain,
    provider: Counted,
    now_ms: u64,
    provider_id: [u8; 32],
}

fn setup() -> Setup {
    let (alice, provider_key) = (key(1), key(2));
    let (chain, _) = chain_with_vault(&alice, &provider_key);
    let now_ms = chain.now_secs().expect("now") * 1000;
    let chain = CountingChain::new(chain);
    let provider =
        Provider::new(policy(&provider_key), EngineLimits::default(), chain.clone(), MemoryStore::new(), NoClaims)
            .expect("provider");
    Setup { chain, provider, now_ms, provider_id: provider_key.account_id().0 }
}

fn digest(label: &str) -> [u8; 32] {
    CanonicalStoreRequest { request_id: label.to_owned(), ..CanonicalStoreRequest::default() }.digest()
}

fn proposal_bytes(s: &Setup, session: &paystreams_lez_core::crypto::SecretKey, forge: bool) -> Vec<u8> {
    let params = StreamParams {
        service_id: SERVICE.as_bytes().to_vec(),
        stream_rate: 10,
        allocation: 1_000,
        create_stream_deadline: s.now_ms / 1000 + 200,
    };
    let mut proposal =
        sign_proposal(&key(1), 0, s.provider_id, [0; 32], params, session.public_key().to_bytes(), None).expect("sign");
    if forge {
        proposal.vault_proof.owner_signature[9] ^= 1;
    }
    EligibilityProof::Proposal(proposal).encode()
}

/// Runs one request and returns (verdict, signature checks, chain reads) it cost.
async fn cost(s: &Setup, requester: &[u8], label: &str, bytes: &[u8]) -> (paystreams_provider::Verdict, u64, u64) {
    let (checks, reads) = (s.provider.signature_checks(), s.chain.reads());
    let v = s.provider.handle(requester, &digest(label), Some(bytes), s.now_ms).await;
    (v, s.provider.signature_checks() - checks, s.chain.reads() - reads)
}

fn proof_bytes(session: &paystreams_lez_core::crypto::SecretKey, label: &str) -> Vec<u8> {
    EligibilityProof::Proof(sign_stream_proof(session, 0, &digest(label))).encode()
}

#[tokio::test]
async fn forged_and_unauthorised_requests_cost_one_signature_check_and_no_chain_read() {
    let s = setup();
    let session = key(50);
    let vault = VaultKey { owner: key(1).account_id().0, vault_id: 0 };

    // A proposal with a bad owner signature: one check, no chain read, nothing recorded.
    let (v, checks, reads) = cost(&s, PEER, "forged-proposal", &proposal_bytes(&s, &session, true)).await;
    assert_refused(&v, StatusCode::ProofInvalid);
    assert_eq!((checks, reads), (1, 0));
    assert_eq!(s.provider.store().attempts(vault, s.now_ms / 1000, 600).await.expect("attempts"), 0);
    assert_eq!(s.provider.store().kv().len(Table::Sessions).expect("len"), 0);

    // A proof from a requester the provider knows no session for: no check, no chain read.
    let (v, checks, reads) = cost(&s, b"stranger", "unknown", &proof_bytes(&session, "unknown")).await;
    assert_refused(&v, StatusCode::ProofInvalid);
    assert_eq!((checks, reads), (0, 0));

    // The real user's proposal is accepted (one check, then the chain).
    let (v, checks, reads) = cost(&s, PEER, "proposal", &proposal_bytes(&s, &session, false)).await;
    assert_ok(&v);
    assert_eq!(checks, 1);
    assert!(reads > 0);

    // A forged proof from the known requester: one check, no chain read, nothing recorded.
    let (v, checks, reads) = cost(&s, PEER, "forged-proof", &proof_bytes(&key(99), "forged-proof")).await;
    assert_refused(&v, StatusCode::ProofInvalid);
    assert_eq!((checks, reads), (1, 0));
    assert_eq!(s.provider.store().kv().len(Table::Replay).expect("len"), 0);

    // The user's own proof from another peer is refused unchecked (it must come from the peer
    // that proposed).
    let (v, checks, reads) = cost(&s, b"other-peer", "moved", &proof_bytes(&session, "moved")).await;
    assert_refused(&v, StatusCode::ProofInvalid);
    assert_eq!((checks, reads), (0, 0));
}
