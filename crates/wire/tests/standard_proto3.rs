//! Standard protobuf semantics: what a standard proto3 encoder (prost, with structs that mirror
//! the spec's `.proto`) writes for every message decodes to the same values with our decoders,
//! including all-zero values (which prost leaves out); our encoders' bytes decode with prost to
//! the same values; unknown fields of wire types 0, 1, 2 and 5 are skipped; field numbers above
//! 2^29 - 1 are refused; fixed-length bytes fields stay presence required.

#[path = "support/proto3_check.rs"]
mod proto3_check;

use std::fmt::Debug;

use paystreams_wire::{
    DeliveryReceipt, EligibilityProof, EligibilityStatus, ExtensionTerms, LoadCap, ProviderAdvert, ReceiptAck,
    ReceiptTerms, ServiceTermination, SessionTermination, StreamParams, StreamProof, StreamProposal,
    StreamProviderPolicy, TerminationType, TokenStreamPolicy, VaultProof, WireError,
};
use prost::Message;
use proto3_check::check;

// ---- The spec's .proto, as a standard encoder sees it. ----

#[derive(Clone, PartialEq, Message)]
struct PVaultProof {
    #[prost(bytes = "vec", tag = "1")]
    vault_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    provider_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    owner_public_key: Vec<u8>,
    #[prost(bytes = "vec", tag = "4")]
    owner_signature: Vec<u8>,
    #[prost(bytes = "vec", tag = "5")]
    token_id: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
struct PStreamParams {
    #[prost(bytes = "vec", tag = "1")]
    service_id: Vec<u8>,
    #[prost(uint64, tag = "2")]
    stream_rate: u64,
    #[prost(uint64, tag = "3")]
    allocation: u64,
    #[prost(uint64, tag = "4")]
    create_stream_deadline: u64,
}

#[derive(Clone, PartialEq, Message)]
struct PStreamProposal {
    #[prost(message, optional, tag = "1")]
    vault_proof: Option<PVaultProof>,
    #[prost(message, optional, tag = "2")]
    stream_params: Option<PStreamParams>,
    #[prost(bytes = "vec", tag = "3")]
    public_key: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
struct PStreamProof {
    #[prost(bytes = "vec", tag = "1")]
    stream_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    signature: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
struct PEligibilityProof {
    #[prost(bytes = "vec", optional, tag = "1")]
    proof_of_payment: Option<Vec<u8>>,
    /// `bytes` in the spec, holding an encoded `StreamProposal`: the same wire bytes.
    #[prost(message, optional, tag = "2")]
    stream_proposal: Option<PStreamProposal>,
    #[prost(message, optional, tag = "3")]
    stream_proof: Option<PStreamProof>,
}

#[derive(Clone, PartialEq, Message)]
struct PTokenStreamPolicy {
    #[prost(bytes = "vec", tag = "1")]
    token_id: Vec<u8>,
    #[prost(uint64, tag = "2")]
    min_rate: u64,
    #[prost(uint64, tag = "3")]
    min_allocation: u64,
}

#[derive(Clone, PartialEq, Message)]
struct PStreamProviderPolicy {
    #[prost(uint64, tag = "1")]
    max_create_stream_deadline_delay: u64,
    #[prost(uint64, tag = "2")]
    vault_proof_max_response_bytes: u64,
    #[prost(message, repeated, tag = "3")]
    accepted_tokens: Vec<PTokenStreamPolicy>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, prost::Enumeration)]
#[repr(i32)]
enum PTerminationType {
    Temporary = 0,
    Permanent = 1,
}

#[derive(Clone, PartialEq, Message)]
struct PServiceTermination {
    #[prost(enumeration = "PTerminationType", tag = "1")]
    termination_type: i32,
    #[prost(uint64, tag = "2")]
    resume_after: u64,
}

/// The reference's `EligibilityStatus` tracks presence (`optional` fields): both stay required.
#[derive(Clone, PartialEq, Message)]
struct PEligibilityStatus {
    #[prost(uint32, optional, tag = "1")]
    status_code: Option<u32>,
    #[prost(string, optional, tag = "2")]
    status_desc: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
struct PSessionTermination {
    #[prost(bytes = "vec", tag = "1")]
    session_id: Vec<u8>,
    #[prost(message, optional, tag = "2")]
    termination: Option<PServiceTermination>,
}

#[derive(Clone, PartialEq, Message)]
struct PLoadCap {
    #[prost(uint64, tag = "1")]
    window_secs: u64,
    #[prost(uint64, tag = "2")]
    max_requests: u64,
    #[prost(uint64, tag = "3")]
    max_bytes: u64,
}

#[derive(Clone, PartialEq, Message)]
struct PExtensionTerms {
    #[prost(bool, tag = "1")]
    activation_fee_accepted: bool,
    #[prost(bytes = "vec", tag = "2")]
    activation_fee_min: Vec<u8>,
    #[prost(bool, tag = "3")]
    auto_pause_accepted: bool,
    #[prost(uint64, tag = "4")]
    auto_pause_min_secs: u64,
    #[prost(bool, tag = "5")]
    auto_claim_on_close_accepted: bool,
    #[prost(uint64, tag = "6")]
    receipts: u64,
}

#[derive(Clone, PartialEq, Message)]
struct PProviderAdvert {
    #[prost(message, optional, tag = "1")]
    policy: Option<PStreamProviderPolicy>,
    #[prost(bytes = "vec", tag = "2")]
    provider_id: Vec<u8>,
    #[prost(string, repeated, tag = "3")]
    service_ids: Vec<String>,
    #[prost(bool, tag = "4")]
    deferred_first_proof: bool,
    #[prost(message, optional, tag = "5")]
    load_cap: Option<PLoadCap>,
    #[prost(message, optional, tag = "6")]
    extensions: Option<PExtensionTerms>,
}

#[derive(Clone, PartialEq, Message)]
struct PDeliveryReceipt {
    #[prost(bytes = "vec", tag = "1")]
    program_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    stream_config: Vec<u8>,
    #[prost(uint64, tag = "3")]
    stream_id: u64,
    #[prost(bytes = "vec", tag = "4")]
    acknowledged_total: Vec<u8>,
    #[prost(bytes = "vec", tag = "5")]
    deliveries_digest: Vec<u8>,
    #[prost(bytes = "vec", tag = "6")]
    signature: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
struct PReceiptAck {
    #[prost(uint32, tag = "1")]
    status: u32,
    #[prost(string, tag = "2")]
    desc: String,
    #[prost(bytes = "vec", tag = "3")]
    kept_total: Vec<u8>,
}

// ---- Mapping between our values and the standard ones. ----

fn p_vault_proof(v: &VaultProof) -> PVaultProof {
    PVaultProof {
        vault_id: v.vault_id.to_le_bytes().to_vec(),
        provider_id: v.provider_id.to_vec(),
        owner_public_key: v.owner_public_key.to_vec(),
        owner_signature: v.owner_signature.to_vec(),
        token_id: v.token_id.to_vec(),
    }
}

fn p_params(v: &StreamParams) -> PStreamParams {
    PStreamParams {
        service_id: v.service_id.clone(),
        stream_rate: v.stream_rate,
        allocation: v.allocation,
        create_stream_deadline: v.create_stream_deadline,
    }
}

fn p_proposal(v: &StreamProposal) -> PStreamProposal {
    PStreamProposal {
        vault_proof: Some(p_vault_proof(&v.vault_proof)),
        stream_params: Some(p_params(&v.stream_params)),
        public_key: v.public_key.to_vec(),
    }
}

fn p_proof(v: &StreamProof) -> PStreamProof {
    PStreamProof { stream_id: v.stream_id.to_le_bytes().to_vec(), signature: v.signature.to_vec() }
}

fn p_eligibility_proof(v: &EligibilityProof) -> PEligibilityProof {
    match v {
        EligibilityProof::Proposal(p) => {
            PEligibilityProof { stream_proposal: Some(p_proposal(p)), ..PEligibilityProof::default() }
        }
        EligibilityProof::Proof(p) => {
            PEligibilityProof { stream_proof: Some(p_proof(p)), ..PEligibilityProof::default() }
        }
    }
}

fn p_token(v: &TokenStreamPolicy) -> PTokenStreamPolicy {
    PTokenStreamPolicy { token_id: v.token_id.to_vec(), min_rate: v.min_rate, min_allocation: v.min_allocation }
}

fn p_policy(v: &StreamProviderPolicy) -> PStreamProviderPolicy {
    PStreamProviderPolicy {
        max_create_stream_deadline_delay: v.max_create_stream_deadline_delay,
        vault_proof_max_response_bytes: v.vault_proof_max_response_bytes,
        accepted_tokens: v.accepted_tokens.iter().map(p_token).collect(),
    }
}

fn p_termination(v: &ServiceTermination) -> PServiceTermination {
    let kind = match v.termination_type {
        TerminationType::Temporary => PTerminationType::Temporary,
        TerminationType::Permanent => PTerminationType::Permanent,
    };
    PServiceTermination { termination_type: kind as i32, resume_after: v.resume_after }
}

fn p_status(v: &EligibilityStatus) -> PEligibilityStatus {
    PEligibilityStatus { status_code: Some(v.status_code), status_desc: Some(v.status_desc.clone()) }
}

fn p_session_termination(v: &SessionTermination) -> PSessionTermination {
    PSessionTermination { session_id: v.session_id.to_vec(), termination: Some(p_termination(&v.termination)) }
}

fn p_terms(v: &ExtensionTerms) -> PExtensionTerms {
    let receipts = match v.receipts {
        ReceiptTerms::Refused => 0,
        ReceiptTerms::Accepted => 1,
        ReceiptTerms::Required => 2,
    };
    PExtensionTerms {
        activation_fee_accepted: v.activation_fee_accepted,
        activation_fee_min: v.activation_fee_min.to_be_bytes().to_vec(),
        auto_pause_accepted: v.auto_pause_accepted,
        auto_pause_min_secs: v.auto_pause_min_secs,
        auto_claim_on_close_accepted: v.auto_claim_on_close_accepted,
        receipts,
    }
}

fn p_advert(v: &ProviderAdvert) -> PProviderAdvert {
    PProviderAdvert {
        policy: Some(p_policy(&v.policy)),
        provider_id: v.provider_id.to_vec(),
        service_ids: v.service_ids.clone(),
        deferred_first_proof: v.deferred_first_proof,
        load_cap: v.load_cap.map(|c| PLoadCap {
            window_secs: c.window_secs,
            max_requests: c.max_requests,
            max_bytes: c.max_bytes,
        }),
        extensions: v.extensions.as_ref().map(p_terms),
    }
}

fn p_receipt(v: &DeliveryReceipt) -> PDeliveryReceipt {
    PDeliveryReceipt {
        program_id: v.program_id.to_vec(),
        stream_config: v.stream_config.to_vec(),
        stream_id: v.stream_id,
        acknowledged_total: v.acknowledged_total.to_be_bytes().to_vec(),
        deliveries_digest: v.deliveries_digest.to_vec(),
        signature: v.signature.to_vec(),
    }
}

fn p_ack(v: &ReceiptAck) -> PReceiptAck {
    PReceiptAck { status: v.status, desc: v.desc.clone(), kept_total: v.kept_total.to_be_bytes().to_vec() }
}

fn vault_proofs() -> [VaultProof; 2] {
    [
        VaultProof {
            vault_id: 0,
            provider_id: [0; 32],
            owner_public_key: [0; 32],
            owner_signature: [0; 64],
            token_id: [0; 32],
        },
        VaultProof {
            vault_id: u64::MAX,
            provider_id: [1; 32],
            owner_public_key: [2; 32],
            owner_signature: [3; 64],
            token_id: [4; 32],
        },
    ]
}

fn params() -> [StreamParams; 2] {
    [
        StreamParams { service_id: Vec::new(), stream_rate: 0, allocation: 0, create_stream_deadline: 0 },
        StreamParams {
            service_id: b"/vac/waku/store-query/3.0.0".to_vec(),
            stream_rate: u64::MAX,
            allocation: 1_000_000,
            create_stream_deadline: 1_700_000_000,
        },
    ]
}

fn proposals() -> Vec<StreamProposal> {
    let mut out = Vec::new();
    for vault_proof in vault_proofs() {
        for stream_params in params() {
            for public_key in [[0; 32], [7; 32]] {
                out.push(StreamProposal { vault_proof, stream_params: stream_params.clone(), public_key });
            }
        }
    }
    out
}

fn proofs() -> [StreamProof; 2] {
    [StreamProof { stream_id: 0, signature: [0; 64] }, StreamProof { stream_id: u64::MAX, signature: [9; 64] }]
}

fn policies() -> Vec<StreamProviderPolicy> {
    let zero = TokenStreamPolicy { token_id: [0; 32], min_rate: 0, min_allocation: 0 };
    let full = TokenStreamPolicy { token_id: [5; 32], min_rate: 3, min_allocation: u64::MAX };
    vec![
        StreamProviderPolicy {
            max_create_stream_deadline_delay: 0,
            vault_proof_max_response_bytes: 0,
            accepted_tokens: vec![zero],
        },
        StreamProviderPolicy {
            max_create_stream_deadline_delay: 300,
            vault_proof_max_response_bytes: 65_536,
            accepted_tokens: vec![zero, full],
        },
    ]
}

fn terminations() -> [ServiceTermination; 3] {
    [
        ServiceTermination { termination_type: TerminationType::Temporary, resume_after: 0 },
        ServiceTermination { termination_type: TerminationType::Temporary, resume_after: 1_700_000_123 },
        ServiceTermination { termination_type: TerminationType::Permanent, resume_after: 0 },
    ]
}

#[test]
fn vault_proof_and_stream_params_decode_standard_bytes() {
    for v in vault_proofs() {
        check(&v, &p_vault_proof(&v), VaultProof::decode, VaultProof::encode);
    }
    for v in params() {
        check(&v, &p_params(&v), StreamParams::decode, StreamParams::encode);
    }
    // All-zero params are written by prost as nothing at all.
    assert!(p_params(&params()[0]).encode_to_vec().is_empty());
}

#[test]
fn proposals_proofs_and_eligibility_proofs_decode_standard_bytes() {
    for v in proposals() {
        check(&v, &p_proposal(&v), StreamProposal::decode, StreamProposal::encode);
        let wrapped = EligibilityProof::Proposal(v);
        check(&wrapped, &p_eligibility_proof(&wrapped), EligibilityProof::decode, EligibilityProof::encode);
    }
    for v in proofs() {
        check(&v, &p_proof(&v), StreamProof::decode, StreamProof::encode);
        let wrapped = EligibilityProof::Proof(v);
        check(&wrapped, &p_eligibility_proof(&wrapped), EligibilityProof::decode, EligibilityProof::encode);
    }
}

#[test]
fn policies_decode_standard_bytes() {
    for v in policies() {
        for token in &v.accepted_tokens {
            check(token, &p_token(token), TokenStreamPolicy::decode, TokenStreamPolicy::encode);
        }
        check(&v, &p_policy(&v), StreamProviderPolicy::decode, StreamProviderPolicy::encode);
    }
}

#[test]
fn terminations_decode_standard_bytes() {
    for v in terminations() {
        check(&v, &p_termination(&v), ServiceTermination::decode, ServiceTermination::encode);
        for session_id in [[0; 32], [8; 32]] {
            let pushed = SessionTermination { session_id, termination: v };
            check(&pushed, &p_session_termination(&pushed), SessionTermination::decode, SessionTermination::encode);
        }
    }
    // TEMPORARY with resume_after 0 is the empty message; PERMANENT is its type alone.
    assert_eq!(ServiceTermination::decode(&[]).map(|t| t.termination_type), Ok(TerminationType::Temporary));
    assert_eq!(
        ServiceTermination::decode(&[0x08, 0x01]),
        Ok(ServiceTermination { termination_type: TerminationType::Permanent, resume_after: 0 })
    );
}

#[test]
fn eligibility_status_keeps_presence() {
    for v in [EligibilityStatus::ok(), EligibilityStatus { status_code: 0, status_desc: String::new() }] {
        check(&v, &p_status(&v), EligibilityStatus::decode, EligibilityStatus::encode);
    }
    // `optional` in the reference: an absent field is still refused.
    let no_desc = PEligibilityStatus { status_code: Some(0), status_desc: None }.encode_to_vec();
    assert_eq!(EligibilityStatus::decode(&no_desc), Err(WireError::MissingField("eligibility_status.status_desc")));
    let no_code = PEligibilityStatus { status_code: None, status_desc: Some("ok".into()) }.encode_to_vec();
    assert_eq!(EligibilityStatus::decode(&no_code), Err(WireError::MissingField("eligibility_status.status_code")));
}

#[test]
fn adverts_decode_standard_bytes() {
    let zero_terms = ExtensionTerms {
        activation_fee_accepted: false,
        activation_fee_min: 0,
        auto_pause_accepted: false,
        auto_pause_min_secs: 0,
        auto_claim_on_close_accepted: false,
        receipts: ReceiptTerms::Refused,
    };
    let full_terms = ExtensionTerms {
        activation_fee_accepted: true,
        activation_fee_min: u128::MAX,
        auto_pause_accepted: true,
        auto_pause_min_secs: 60,
        auto_claim_on_close_accepted: true,
        receipts: ReceiptTerms::Required,
    };
    for policy in policies() {
        for (deferred_first_proof, load_cap, extensions) in [
            (false, None, None),
            (false, Some(LoadCap { window_secs: 1, max_requests: 0, max_bytes: 0 }), Some(zero_terms)),
            (true, Some(LoadCap { window_secs: 60, max_requests: 10, max_bytes: 1 << 20 }), Some(full_terms)),
        ] {
            let v = ProviderAdvert {
                policy: policy.clone(),
                provider_id: [6; 32],
                service_ids: vec![String::new(), "/vac/waku/store-query/3.0.0".into()],
                deferred_first_proof,
                load_cap,
                extensions,
            };
            check(&v, &p_advert(&v), ProviderAdvert::decode, ProviderAdvert::encode);
        }
    }
}

#[test]
fn receipts_and_acks_decode_standard_bytes() {
    for v in [
        DeliveryReceipt {
            program_id: [0; 32],
            stream_config: [0; 32],
            stream_id: 0,
            acknowledged_total: 0,
            deliveries_digest: [0; 32],
            signature: [0; 64],
        },
        DeliveryReceipt {
            program_id: [1; 32],
            stream_config: [2; 32],
            stream_id: u64::MAX,
            acknowledged_total: u128::MAX,
            deliveries_digest: [3; 32],
            signature: [4; 64],
        },
    ] {
        check(&v, &p_receipt(&v), DeliveryReceipt::decode, DeliveryReceipt::encode);
    }
    for v in [
        ReceiptAck { status: 0, desc: String::new(), kept_total: 0 },
        ReceiptAck { status: 5, desc: "retry later".into(), kept_total: 77 },
    ] {
        check(&v, &p_ack(&v), ReceiptAck::decode, ReceiptAck::encode);
    }
}

/// Fixed-length bytes fields stay presence required: prost leaves an empty one out, and the
/// decoder names it.
#[test]
fn fixed_length_fields_stay_required() {
    let no_vault_id = PVaultProof { vault_id: Vec::new(), ..p_vault_proof(&vault_proofs()[1]) }.encode_to_vec();
    assert_eq!(VaultProof::decode(&no_vault_id), Err(WireError::MissingField("vault_proof.vault_id")));
    let full_proof = p_proof(&proofs()[1]);
    let no_stream_id = PStreamProof { stream_id: Vec::new(), ..full_proof }.encode_to_vec();
    assert_eq!(StreamProof::decode(&no_stream_id), Err(WireError::MissingField("stream_proof.stream_id")));
    let no_token = PTokenStreamPolicy { token_id: Vec::new(), min_rate: 1, min_allocation: 1 }.encode_to_vec();
    assert_eq!(TokenStreamPolicy::decode(&no_token), Err(WireError::MissingField("token_stream_policy.token_id")));
    let no_session = PSessionTermination { session_id: Vec::new(), termination: Some(PServiceTermination::default()) }
        .encode_to_vec();
    assert_eq!(SessionTermination::decode(&no_session), Err(WireError::MissingField("session_termination.session_id")));
    let no_program = PDeliveryReceipt {
        program_id: Vec::new(),
        ..p_receipt(&DeliveryReceipt {
            program_id: [1; 32],
            stream_config: [2; 32],
            stream_id: 3,
            acknowledged_total: 4,
            deliveries_digest: [5; 32],
            signature: [6; 64],
        })
    }
    .encode_to_vec();
    assert_eq!(DeliveryReceipt::decode(&no_program), Err(WireError::MissingField("delivery_receipt.program_id")));
    let no_key = PStreamProposal { public_key: Vec::new(), ..p_proposal(&proposals()[0]) }.encode_to_vec();
    assert_eq!(StreamProposal::decode(&no_key), Err(WireError::MissingField("stream_proposal.public_key")));
    // A known field written with wire type 1 or 5 is the wrong type, not skipped.
    let fixed_rate = [0x11, 1, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(StreamParams::decode(&fixed_rate), Err(WireError::WrongType("stream_params.stream_rate")));
    let fixed32_rate = [0x15, 1, 0, 0, 0];
    assert_eq!(StreamParams::decode(&fixed32_rate), Err(WireError::WrongType("stream_params.stream_rate")));
    // Truncated 64-bit and 32-bit fields are refused.
    assert_eq!(StreamParams::decode(&[0x49, 1, 2, 3]), Err(WireError::UnexpectedEof));
    assert_eq!(StreamParams::decode(&[0x4d, 1, 2, 3]), Err(WireError::UnexpectedEof));
}
