//! Decoders refuse everything the reference refuses, and never panic on garbage.

use paystreams_wire::*;
use proptest::prelude::*;

fn proposal() -> StreamProposal {
    StreamProposal {
        vault_proof: VaultProof {
            vault_id: 1,
            provider_id: [9; 32],
            owner_public_key: [8; 32],
            owner_signature: [7; 64],
            token_id: [0; 32],
        },
        stream_params: StreamParams {
            service_id: b"/svc".to_vec(),
            stream_rate: 1,
            allocation: 2,
            create_stream_deadline: 3,
        },
        public_key: [3; 32],
    }
}

fn policy() -> StreamProviderPolicy {
    StreamProviderPolicy {
        max_create_stream_deadline_delay: 300,
        vault_proof_max_response_bytes: 65_536,
        accepted_tokens: vec![TokenStreamPolicy { token_id: [0; 32], min_rate: 1, min_allocation: 10 }],
    }
}

#[test]
fn every_truncation_of_every_message_is_refused() {
    type Decodes = fn(&[u8]) -> bool;
    let messages: Vec<(&str, Vec<u8>, Decodes)> = vec![
        ("proposal", EligibilityProof::Proposal(proposal()).encode(), |b| EligibilityProof::decode(b).is_ok()),
        ("proof", EligibilityProof::Proof(StreamProof { stream_id: 4, signature: [1; 64] }).encode(), |b| {
            EligibilityProof::decode(b).is_ok()
        }),
        ("policy", policy().encode(), |b| StreamProviderPolicy::decode(b).is_ok()),
        ("status", EligibilityStatus::ok().encode(), |b| EligibilityStatus::decode(b).is_ok()),
    ];
    for (name, bytes, decodes) in messages {
        assert!(decodes(&bytes), "{name} decodes whole");
        for cut in 0..bytes.len() {
            assert!(!decodes(bytes.get(..cut).unwrap_or_default()), "{name} truncated to {cut} bytes must be refused");
        }
    }
    // A termination's fields are scalars that read as zero when absent: a cut between fields
    // decodes to the fields before it, a cut inside a field is refused.
    let termination = ServiceTermination { termination_type: TerminationType::Permanent, resume_after: 0 };
    let bytes = termination.encode();
    assert_eq!(bytes, [0x08, 0x01, 0x10, 0x00]);
    for cut in 0..bytes.len() {
        let decoded = ServiceTermination::decode(bytes.get(..cut).unwrap_or_default());
        match cut {
            0 => assert_eq!(decoded.map(|t| t.termination_type), Ok(TerminationType::Temporary)),
            2 => assert_eq!(decoded, Ok(termination)),
            _ => assert_eq!(decoded, Err(WireError::UnexpectedEof), "cut at {cut}"),
        }
    }
}

#[test]
fn fixed_widths_are_exact() {
    let mut p = proposal();
    let good = p.vault_proof.encode();
    // vault_id of 7 bytes.
    let mut bad = good.clone();
    bad.splice(0..10, [0x0a, 0x07, 1, 0, 0, 0, 0, 0, 0]);
    assert_eq!(
        VaultProof::decode(&bad),
        Err(WireError::WrongLength { field: "vault_proof.vault_id", expected: 8, got: 7 })
    );
    p.stream_params.service_id = vec![b'a'; 129];
    assert_eq!(StreamParams::decode(&p.stream_params.encode()), Err(WireError::ServiceIdTooLong(129)));
    p.stream_params.service_id = vec![b'a'; 128];
    assert!(StreamParams::decode(&p.stream_params.encode()).is_ok());
}

#[test]
fn eligibility_proof_needs_exactly_one_arm_and_no_proof_of_payment() {
    let proof = StreamProof { stream_id: 1, signature: [2; 64] }.encode();
    let mut both = proto::Writer::new();
    both.bytes(2, &proposal().encode()).bytes(3, &proof);
    assert_eq!(EligibilityProof::decode(&both.finish()), Err(WireError::BothProposalAndProof));
    assert!(matches!(EligibilityProof::decode(&[]), Err(WireError::MissingField(_))));
    let mut pop = proto::Writer::new();
    pop.bytes(1, b"paid").bytes(3, &proof);
    assert_eq!(EligibilityProof::decode(&pop.finish()), Err(WireError::ProofOfPaymentNotAllowed));
    assert!(matches!(
        EligibilityProof::decode(&vec![0; ELIGIBILITY_PROOF_MAX_LEN + 1]),
        Err(WireError::TooLarge { .. })
    ));
}

#[test]
fn unknown_fields_are_skipped_and_bad_wire_types_refused() {
    let mut with_unknown = proto::Writer::new();
    with_unknown.uint(9, 5).bytes(1, &1_u64.to_le_bytes()).bytes(2, &[1; 64]).bytes(10, b"x");
    assert_eq!(StreamProof::decode(&with_unknown.finish()).map(|p| p.stream_id), Ok(1));
    // Field 1 with wire type 5 (fixed32): read, and the wrong type for `stream_id`.
    assert_eq!(StreamProof::decode(&[0x0d, 0, 0, 0, 0]), Err(WireError::WrongType("stream_proof.stream_id")));
    // Groups (wire types 3 and 4) and wire types 6 and 7 are refused.
    for tag in [0x0b, 0x0c, 0x0e, 0x0f] {
        assert!(matches!(StreamProof::decode(&[tag, 0]), Err(WireError::InvalidFrame(_))), "tag {tag:#x}");
    }
    // Field number 0.
    assert!(matches!(StreamProof::decode(&[0x00, 0]), Err(WireError::InvalidFrame(_))));
    // 11-byte varint.
    assert_eq!(
        StreamParams::decode(&[0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]),
        Err(WireError::VarintOverflow)
    );
}

#[test]
fn policy_rules() {
    let mut p = policy();
    assert_eq!(StreamProviderPolicy::decode(&p.encode()), Ok(p.clone()));
    p.accepted_tokens.push(p.accepted_tokens[0]);
    assert_eq!(StreamProviderPolicy::decode(&p.encode()), Err(WireError::DuplicateToken));
    p.accepted_tokens.clear();
    assert!(matches!(StreamProviderPolicy::decode(&p.encode()), Err(WireError::MissingField(_))));
    p.accepted_tokens =
        (0..17_u8).map(|i| TokenStreamPolicy { token_id: [i; 32], min_rate: 1, min_allocation: 1 }).collect();
    assert_eq!(StreamProviderPolicy::decode(&p.encode()), Err(WireError::TooManyTokens(16)));
}

#[test]
fn termination_and_status_rules() {
    let permanent = ServiceTermination { termination_type: TerminationType::Permanent, resume_after: 0 };
    assert_eq!(ServiceTermination::decode(&permanent.encode()), Ok(permanent));
    let bad = ServiceTermination { termination_type: TerminationType::Permanent, resume_after: 5 };
    assert!(ServiceTermination::decode(&bad.encode()).is_err());
    assert!(matches!(ServiceTermination::decode(&[0x08, 2, 0x10, 0]), Err(WireError::UnknownEnum { .. })));
    // OK is written with its zero code: 08 00 12 02 "ok".
    assert_eq!(hex::encode(EligibilityStatus::ok().encode()), "080012026f6b");
    assert_eq!(
        EligibilityStatus::decode(&[0x12, 0x02, b'o', b'k']),
        Err(WireError::MissingField("eligibility_status.status_code"))
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = EligibilityProof::decode(&bytes);
        let _ = StreamProposal::decode(&bytes);
        let _ = StreamProviderPolicy::decode(&bytes);
        let _ = ServiceTermination::decode(&bytes);
        let _ = EligibilityStatus::decode(&bytes);
    }

    #[test]
    fn params_round_trip(service in proptest::collection::vec(any::<u8>(), 0..=128), rate: u64, allocation: u64, deadline: u64, stream_id: u64) {
        let params = StreamParams { service_id: service, stream_rate: rate, allocation, create_stream_deadline: deadline };
        prop_assert_eq!(StreamParams::decode(&params.encode()), Ok(params));
        let proof = StreamProof { stream_id, signature: [5; 64] };
        prop_assert_eq!(EligibilityProof::decode(&EligibilityProof::Proof(proof).encode()), Ok(EligibilityProof::Proof(proof)));
    }
}
