//! Byte-exact vectors from the reference implementation and its research notes.

use paystreams_lez_core::crypto::SecretKey;
use paystreams_wire::*;

fn h(s: &str) -> Vec<u8> {
    hex::decode(s.replace(' ', "")).expect("hex")
}

fn n8_request() -> CanonicalStoreRequest {
    CanonicalStoreRequest {
        request_id: "req-1".into(),
        include_data: true,
        pubsub_topic: Some("/waku/2/rs/0/1".into()),
        content_topics: vec!["/lez-payment-streams/1/e2e-eligibility/proto".into()],
        time_start: Some(10),
        time_end: None,
        message_hashes: vec![],
        pagination_cursor: None,
        pagination_forward: true,
        pagination_limit: Some(100),
    }
}

#[test]
fn n8_store_request_reproduces_the_reference_payload_and_digest() {
    let request = n8_request();
    let payload = request.canonical_payload();
    assert_eq!(payload.len(), 138);
    assert_eq!(
        hex::encode(&payload),
        "2f4c455a2f76302e312f53746f7265456c69676962696c6974792f0000000000050000007265712d3101010e0000002f77616b752f322f72732f302f31010000002c0000002f6c657a2d7061796d656e742d73747265616d732f312f6532652d656c69676962696c6974792f70726f746f010a0000000000000000000000000001016400000000000000"
    );
    assert_eq!(hex::encode(request.digest()), "41bff129ff66557e802fe742f0da47148383d05674a8fce61e53ed1aa49d8c38");
}

#[test]
fn nim_store_vector_with_message_hashes() {
    let request = CanonicalStoreRequest {
        request_id: "req-1".into(),
        include_data: true,
        pubsub_topic: Some("/waku/2/topic".into()),
        content_topics: vec!["/my-app/1/chat/proto".into()],
        time_start: Some(10),
        time_end: None,
        message_hashes: vec![[1; 32], [2; 32]],
        pagination_cursor: None,
        pagination_forward: true,
        pagination_limit: Some(100),
    };
    assert_eq!(request.canonical_payload().len(), 177);
    assert_eq!(hex::encode(request.digest()), "35ee1ab6530a848cf1d0ec37590d39cafb772cac63a170fa7225b195e685e9a6");
}

fn key(byte: u8) -> SecretKey {
    let mut bytes = [0; 32];
    bytes[31] = byte;
    SecretKey::from_bytes(&bytes).expect("valid")
}

#[test]
fn end_to_end_proposal_vector() {
    let owner = key(1);
    let session = key(2);
    assert_eq!(
        hex::encode(owner.public_key().to_bytes()),
        "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
    );
    assert_eq!(
        hex::encode(session.public_key().to_bytes()),
        "c6047f9441ed7d6d3045406e95c07cd85c778e4b8cef3ca7abac09b95c709ee5"
    );
    let params = StreamParams {
        service_id: b"/vac/waku/store-query/3.0.0".to_vec(),
        stream_rate: 10,
        allocation: 500,
        create_stream_deadline: 1200,
    };
    let proposal = sign_proposal(&owner, 7, [5; 32], [0; 32], params, session.public_key().to_bytes(), Some(&[0; 32]))
        .expect("signs");
    let body = VaultOwnerAuthBody::from_proposal(&proposal).expect("utf8");
    assert_eq!(body.to_bytes().len(), 199);
    assert_eq!(hex::encode(body.digest()), "417804436554263623ce7ff924b6b9638fc8573dbb10a514443b6d911e65f9af");
    assert_eq!(
        hex::encode(proposal.vault_proof.owner_signature),
        "331daab5ef348176e5a7ec4adbf5969cf95867a101dfa19cdb1ca95c0e43e14e344a676a20be394ceee07d07651958a668ba285b34b734079051fc5ccef5d3e3"
    );
    verify_proposal(&proposal).expect("verifies");
    let wrapped = EligibilityProof::Proposal(proposal.clone()).encode();
    assert_eq!(wrapped.len(), 257);
    let expected = format!(
        "12fe010ab2010a0807000000000000001220{}1a20{}2240{}2a20{}12250a1b2f7661632f77616b752f73746f72652d71756572792f332e302e30100a18f40320b0091a20{}",
        "05".repeat(32),
        "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798",
        hex::encode(proposal.vault_proof.owner_signature),
        "00".repeat(32),
        "c6047f9441ed7d6d3045406e95c07cd85c778e4b8cef3ca7abac09b95c709ee5",
    );
    assert_eq!(hex::encode(&wrapped), expected);
    assert_eq!(EligibilityProof::decode(&wrapped), Ok(EligibilityProof::Proposal(proposal)));

    // StreamProof over the N8 digest, stream 0, session key 2, aux 0.
    let digest = n8_request().digest();
    let signature = session.sign_with_aux(&digest, &[0; 32]);
    assert_eq!(
        hex::encode(signature.0),
        "ab955f66b12d0a69d768fee7c0ec1e41bb57db7e4b3ec870c54f0629e7e1626c70e55fa780844fb3b0e043b3334f061f71e29a4439868a42f4bbd1184efec6a4"
    );
    let proof = StreamProof { stream_id: 0, signature: signature.0 };
    let wrapped = EligibilityProof::Proof(proof).encode();
    assert_eq!(wrapped.len(), 78);
    assert_eq!(hex::encode(&wrapped), format!("1a4c0a0800000000000000001240{}", hex::encode(signature.0)));
    assert!(verify_stream_proof(&session.public_key().to_bytes(), &digest, &proof));
}

#[test]
fn round_trip_proposal_frame_from_the_reference_tests() {
    let proposal = StreamProposal {
        vault_proof: VaultProof {
            vault_id: 42,
            provider_id: [9; 32],
            owner_public_key: [8; 32],
            owner_signature: [7; 64],
            token_id: [0; 32],
        },
        stream_params: StreamParams {
            service_id: b"/demo/service".to_vec(),
            stream_rate: 15,
            allocation: 200,
            create_stream_deadline: 999,
        },
        public_key: [3; 32],
    };
    let bytes = proposal.encode();
    assert_eq!(bytes.len(), 240);
    let expected = h(&format!(
        "0ab2010a082a00000000000000 1220{} 1a20{} 2240{} 2a20{} 12170a0d2f64656d6f2f73657276696365100f18c80120e707 1a20{}",
        "09".repeat(32),
        "08".repeat(32),
        "07".repeat(64),
        "00".repeat(32),
        "03".repeat(32)
    ));
    assert_eq!(bytes, expected);
    assert_eq!(StreamProposal::decode(&bytes), Ok(proposal));
}
