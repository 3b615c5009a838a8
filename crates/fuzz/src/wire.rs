//! The off-chain codecs: LIP-155 messages, the provider advert, the Store v3 messages and Waku
//! metadata.
//!
//! What the codecs promise (see `paystreams_wire::proto`): decoders skip unknown fields (of wire
//! types 0, 1, 2 and 5), read an absent scalar as zero (as a standard proto3 encoder leaves zeros
//! out, while our encoders write them) and keep the last occurrence of a repeated scalar, so many
//! inputs decode to one value and input bytes are not canonical: the checks compare values, and
//! bytes only between two encodings of one value. Encoders are canonical: ascending
//! field numbers, minimal varints, one encoding per value. So for every decoded value `v`:
//! `decode(encode(v)) == v`, `encode(decode(encode(v))) == encode(v)`, and an unknown field
//! appended to `encode(v)` changes nothing (unless the message grows past its size limit).

use std::{fmt::Debug, sync::OnceLock};

use borsh::BorshDeserialize as _;
use paystreams_lez_core::{crypto::SecretKey, sha256};
use paystreams_provider::{ProviderAdvert, ProviderPolicy};
use paystreams_store::wire::{
    CONTENT_TOPICS_MAX, Eligibility, MESSAGE_HASHES_MAX, MessageKeyValue, PAYLOAD_MAX_LEN, RESPONSE_MESSAGES_MAX,
    SHARDS_MAX, StoreQueryRequest, StoreQueryResponse, TOPIC_MAX_LEN, WakuMessage, WakuMetadata,
};
use paystreams_wire::{
    ACCEPTED_TOKENS_MAX, CanonicalStoreRequest, DeliveryReceipt, ELIGIBILITY_PROOF_MAX_LEN, EligibilityProof,
    EligibilityStatus, ReceiptAck, ReceiptStatus, RequestDigest as _, SERVICE_ID_MAX_LEN, STATUS_DESC_MAX_LEN,
    ServiceTermination, SessionTermination, StatusCode, StreamParams, StreamProof, StreamProposal,
    StreamProviderPolicy, TerminationType, TokenStreamPolicy, VaultOwnerAuthBody, VaultProof, WireError, sign_proposal,
    sign_stream_proof, verify_proposal, verify_stream_proof,
};

/// The decoders, in selector order (the first input byte picks one, modulo this length).
pub const DECODERS: [&str; 19] = [
    "vault_proof",
    "stream_params",
    "stream_proposal",
    "stream_proof",
    "eligibility_proof",
    "token_stream_policy",
    "stream_provider_policy",
    "service_termination",
    "eligibility_status",
    "provider_advert",
    "waku_message",
    "message_key_value",
    "store_query_request",
    "store_eligibility",
    "store_query_response",
    "delivery_receipt",
    "receipt_ack",
    "session_termination",
    "waku_metadata",
];

/// An unknown varint field (number 2047, value 1): every decoder must skip it.
const UNKNOWN_FIELD: [u8; 3] = [0xf8, 0x7f, 0x01];

/// True when the decoder the first byte selects accepts the remaining bytes.
#[must_use]
pub fn decodes(data: &[u8]) -> bool {
    let Some((&selector, input)) = data.split_first() else { return false };
    match usize::from(selector) % DECODERS.len() {
        0 => VaultProof::decode(input).is_ok(),
        1 => StreamParams::decode(input).is_ok(),
        2 => StreamProposal::decode(input).is_ok(),
        3 => StreamProof::decode(input).is_ok(),
        4 => EligibilityProof::decode(input).is_ok(),
        5 => TokenStreamPolicy::decode(input).is_ok(),
        6 => StreamProviderPolicy::decode(input).is_ok(),
        7 => ServiceTermination::decode(input).is_ok(),
        8 => EligibilityStatus::decode(input).is_ok(),
        9 => ProviderAdvert::decode(input).is_ok(),
        10 => WakuMessage::decode(input).is_ok(),
        11 => MessageKeyValue::decode(input).is_ok(),
        12 => StoreQueryRequest::decode(input).is_ok(),
        13 => Eligibility::decode(input).is_ok(),
        14 => StoreQueryResponse::decode(input).is_ok(),
        15 => DeliveryReceipt::decode(input).is_ok(),
        16 => ReceiptAck::decode(input).is_ok(),
        17 => SessionTermination::decode(input).is_ok(),
        _ => WakuMetadata::decode(input).is_ok(),
    }
}

/// Runs the decoder the first byte selects over the remaining bytes and checks the codec's
/// promises on whatever decodes.
///
/// # Panics
/// When a promise is broken.
pub fn wire(data: &[u8]) {
    let Some((&selector, input)) = data.split_first() else { return };
    match usize::from(selector) % DECODERS.len() {
        0 => drop(round_trip("vault_proof", input, VaultProof::decode, VaultProof::encode)),
        1 => {
            if let Some(params) = round_trip("stream_params", input, StreamParams::decode, StreamParams::encode) {
                assert!(params.service_id.len() <= SERVICE_ID_MAX_LEN, "service_id over the limit decoded");
            }
        }
        2 => {
            if let Some(proposal) = round_trip("stream_proposal", input, StreamProposal::decode, StreamProposal::encode)
            {
                check_proposal(&proposal);
            }
        }
        3 => {
            if let Some(proof) = round_trip("stream_proof", input, StreamProof::decode, StreamProof::encode) {
                check_stream_proof(&proof);
            }
        }
        4 => {
            if let Some(proof) =
                round_trip("eligibility_proof", input, EligibilityProof::decode, EligibilityProof::encode)
            {
                check_eligibility_proof(&proof);
            }
        }
        5 => drop(round_trip("token_stream_policy", input, TokenStreamPolicy::decode, TokenStreamPolicy::encode)),
        6 => {
            if let Some(policy) =
                round_trip("stream_provider_policy", input, StreamProviderPolicy::decode, StreamProviderPolicy::encode)
            {
                check_policy(&policy);
            }
        }
        7 => {
            if let Some(termination) =
                round_trip("service_termination", input, ServiceTermination::decode, ServiceTermination::encode)
            {
                check_termination(&termination);
            }
        }
        8 => {
            if let Some(status) =
                round_trip("eligibility_status", input, EligibilityStatus::decode, EligibilityStatus::encode)
            {
                check_status(&status);
            }
        }
        9 => {
            if let Some(advert) = round_trip("provider_advert", input, ProviderAdvert::decode, ProviderAdvert::encode) {
                check_advert(&advert);
            }
        }
        10 => {
            if let Some(message) = round_trip("waku_message", input, WakuMessage::decode, WakuMessage::encode) {
                check_waku_message(&message);
            }
        }
        11 => {
            if let Some(entry) =
                round_trip("message_key_value", input, MessageKeyValue::decode, MessageKeyValue::encode)
            {
                check_entry(&entry);
            }
        }
        12 => {
            if let Some(request) =
                round_trip("store_query_request", input, StoreQueryRequest::decode, StoreQueryRequest::encode)
            {
                check_store_request(&request);
            }
        }
        13 => {
            if let Some(eligibility) = round_trip("store_eligibility", input, Eligibility::decode, Eligibility::encode)
            {
                check_eligibility(&eligibility);
            }
        }
        14 => {
            if let Some(response) =
                round_trip("store_query_response", input, StoreQueryResponse::decode, StoreQueryResponse::encode)
            {
                check_store_response(&response);
            }
        }
        15 => drop(round_trip("delivery_receipt", input, DeliveryReceipt::decode, DeliveryReceipt::encode)),
        16 => {
            if let Some(ack) = round_trip("receipt_ack", input, ReceiptAck::decode, ReceiptAck::encode) {
                assert!(ack.desc.len() <= STATUS_DESC_MAX_LEN, "receipt_ack: desc over the limit decoded");
            }
        }
        17 => {
            if let Some(pushed) =
                round_trip("session_termination", input, SessionTermination::decode, SessionTermination::encode)
            {
                check_termination(&pushed.termination);
            }
        }
        _ => {
            if let Some(metadata) = round_trip("waku_metadata", input, WakuMetadata::decode, WakuMetadata::encode) {
                assert!(metadata.shards.len() <= SHARDS_MAX, "waku_metadata: more shards than the limit decoded");
            }
        }
    }
}

/// Decodes `input`; on success checks the round trip, the canonical re-encoding and that an
/// unknown field is skipped.
fn round_trip<T: PartialEq + Debug>(
    name: &str,
    input: &[u8],
    decode: impl Fn(&[u8]) -> Result<T, WireError>,
    encode: impl Fn(&T) -> Vec<u8>,
) -> Option<T> {
    let value = decode(input).ok()?;
    let encoded = encode(&value);
    match decode(&encoded) {
        Ok(again) => {
            assert_eq!(again, value, "{name}: decode(encode(v)) differs from v");
            assert_eq!(encode(&again), encoded, "{name}: re-encoding is not canonical");
        }
        Err(error) => panic!("{name}: the encoding of a decoded value does not decode ({error}): {value:?}"),
    }
    let mut extended = encoded;
    extended.extend_from_slice(&UNKNOWN_FIELD);
    match decode(&extended) {
        Ok(again) => assert_eq!(again, value, "{name}: an unknown field changed the decoded value"),
        Err(WireError::TooLarge { .. }) => {}
        Err(error) => panic!("{name}: an unknown field was not skipped ({error})"),
    }
    Some(value)
}

struct Keys {
    owner: SecretKey,
    session: SecretKey,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let key = |name: &str| SecretKey::from_bytes(&sha256(&[b"paystreams-fuzz/wire/", name.as_bytes()]));
        match (key("owner"), key("session")) {
            (Ok(owner), Ok(session)) => Keys { owner, session },
            _ => panic!("fixed fuzz keys are valid secp256k1 scalars"),
        }
    })
}

/// Verifying a decoded proposal returns; re-signed by a known owner it verifies, survives the
/// wire and stops verifying once a signed field changes.
fn check_proposal(proposal: &StreamProposal) {
    assert!(proposal.stream_params.service_id.len() <= SERVICE_ID_MAX_LEN, "service_id over the limit decoded");
    let verdict = verify_proposal(proposal);
    let _ = proposal.session_key();
    let utf8 = proposal.stream_params.service_id_str().is_ok();
    if !utf8 {
        assert_eq!(verdict, Err(WireError::ServiceIdNotUtf8), "a non-UTF-8 service_id must be refused first");
    }
    if verdict.is_ok() {
        assert!(VaultOwnerAuthBody::from_proposal(proposal).is_ok(), "a verified proposal has a signing body");
    }
    let signed = sign_proposal(
        &keys().owner,
        proposal.vault_proof.vault_id,
        proposal.vault_proof.provider_id,
        proposal.vault_proof.token_id,
        proposal.stream_params.clone(),
        proposal.public_key,
        Some(&[7; 32]),
    );
    let signed = match (signed, utf8) {
        (Ok(signed), true) => signed,
        (Err(WireError::ServiceIdNotUtf8), false) => return,
        (other, _) => panic!("sign_proposal disagrees with the service_id's UTF-8 validity: {other:?}"),
    };
    assert_eq!(verify_proposal(&signed), Ok(()), "a freshly signed proposal does not verify");
    let carried = StreamProposal::decode(&signed.encode());
    assert_eq!(carried.as_ref(), Ok(&signed), "a signed proposal does not survive the wire");
    let mut tampered = signed;
    tampered.stream_params.stream_rate ^= 1;
    assert_eq!(verify_proposal(&tampered), Err(WireError::BadSignature), "a changed rate still verifies");
}

/// Verifying a decoded stream proof returns; a proof signed by a known session key over a
/// digest survives the wire and verifies only over that digest.
fn check_stream_proof(proof: &StreamProof) {
    let digest = sha256(&[&proof.signature]);
    let (first_half, _) = proof.signature.split_at(32);
    let mut foreign_key = [0_u8; 32];
    foreign_key.copy_from_slice(first_half);
    let _ = verify_stream_proof(&foreign_key, &digest, proof);
    let session = keys().session.public_key().to_bytes();
    let _ = verify_stream_proof(&session, &digest, proof);
    let fresh = sign_stream_proof(&keys().session, proof.stream_id, &digest);
    let carried = StreamProof::decode(&fresh.encode());
    assert_eq!(carried, Ok(fresh), "a signed stream proof does not survive the wire");
    assert!(verify_stream_proof(&session, &digest, &fresh), "a fresh stream proof does not verify");
    let other_digest = sha256(&[&digest]);
    assert!(!verify_stream_proof(&session, &other_digest, &fresh), "a stream proof verifies over another digest");
}

fn check_eligibility_proof(proof: &EligibilityProof) {
    match proof {
        EligibilityProof::Proposal(proposal) => check_proposal(proposal),
        EligibilityProof::Proof(proof) => check_stream_proof(proof),
    }
}

fn check_policy(policy: &StreamProviderPolicy) {
    let count = policy.accepted_tokens.len();
    assert!((1..=ACCEPTED_TOKENS_MAX).contains(&count), "policy decoded with {count} tokens");
    for (i, token) in policy.accepted_tokens.iter().enumerate() {
        assert_eq!(policy.token(&token.token_id), Some(token), "policy decoded with a duplicate token at {i}");
    }
}

fn check_termination(termination: &ServiceTermination) {
    if termination.termination_type == TerminationType::Permanent {
        assert_eq!(termination.resume_after, 0, "PERMANENT termination decoded with resume_after");
    }
}

fn check_status(status: &EligibilityStatus) {
    assert!(status.status_desc.len() <= STATUS_DESC_MAX_LEN, "status_desc over the limit decoded");
    assert_eq!(status.code(), StatusCode::from_code(status.status_code));
}

/// A decoded advert satisfies every rule a provider's own policy is validated against.
fn check_advert(advert: &ProviderAdvert) {
    check_policy(&advert.policy);
    let ids = advert.service_ids.len();
    assert!((1..=paystreams_wire::SERVICE_IDS_MAX).contains(&ids), "advert decoded with {ids} service ids");
    let policy = ProviderPolicy {
        provider_id: advert.provider_id,
        service_ids: advert.service_ids.clone(),
        accepted_tokens: advert.policy.accepted_tokens.clone(),
        max_create_stream_deadline_delay: advert.policy.max_create_stream_deadline_delay,
        first_response_cap: advert.policy.vault_proof_max_response_bytes,
        load_cap: advert.load_cap,
        deferred_first_proof: advert.deferred_first_proof,
        extensions: advert.extensions.unwrap_or_default(),
    };
    assert_eq!(policy.validate(), Ok(()), "a decoded advert describes an invalid policy");
    // A policy always states its extension terms; an older advert (without them) otherwise agrees.
    let mut expected = advert.clone();
    expected.extensions = Some(policy.extensions);
    assert_eq!(policy.advert(), expected, "policy and advert disagree");
}

fn check_waku_message(message: &WakuMessage) {
    assert!(message.payload.len() <= PAYLOAD_MAX_LEN, "payload over the limit decoded");
    assert!(message.meta.len() <= 64, "meta over the limit decoded");
    assert!(message.content_topic.len() <= TOPIC_MAX_LEN, "content topic over the limit decoded");
    let _ = message.hash("/waku/2/default-waku/proto");
}

fn check_entry(entry: &MessageKeyValue) {
    if let Some((message, topic)) = &entry.message {
        check_waku_message(message);
        assert!(topic.len() <= TOPIC_MAX_LEN, "pubsub topic over the limit decoded");
    }
}

/// Bounds hold, validation returns, the signed canonical form survives Borsh, and a carried
/// eligibility proof is itself checked.
fn check_store_request(request: &StoreQueryRequest) {
    assert!(request.content_topics.len() <= CONTENT_TOPICS_MAX, "too many content topics decoded");
    assert!(request.message_hashes.len() <= MESSAGE_HASHES_MAX, "too many message hashes decoded");
    assert!(request.request_id.len() <= TOPIC_MAX_LEN, "request_id over the limit decoded");
    let _ = request.validate();
    let canonical = request.canonical();
    let body = canonical.canonical_body();
    assert_eq!(CanonicalStoreRequest::try_from_slice(&body).ok().as_ref(), Some(&canonical), "canonical body");
    assert_eq!(canonical.digest(), sha256(&[&canonical.domain_prefix(), &body]));
    if let Some(proof) = &request.eligibility_proof {
        assert!(proof.len() <= ELIGIBILITY_PROOF_MAX_LEN, "eligibility proof over the limit decoded");
        if let Some(proof) = round_trip(
            "store_query_request.eligibility_proof",
            proof,
            EligibilityProof::decode,
            EligibilityProof::encode,
        ) {
            if let EligibilityProof::Proof(proof) = &proof {
                // What a Store provider checks: the proof over the request's canonical digest.
                let _ = verify_stream_proof(&keys().session.public_key().to_bytes(), &canonical.digest(), proof);
            }
            check_eligibility_proof(&proof);
        }
    }
}

fn check_eligibility(eligibility: &Eligibility) {
    check_status(&eligibility.status);
    if let Some(termination) = &eligibility.termination {
        check_termination(termination);
    }
}

fn check_store_response(response: &StoreQueryResponse) {
    assert!(response.messages.len() <= RESPONSE_MESSAGES_MAX, "too many messages decoded");
    assert_eq!(response.is_success(), response.status_code.is_some_and(|c| (200..300).contains(&c)));
    for entry in &response.messages {
        check_entry(entry);
    }
    if let Some(eligibility) = &response.eligibility {
        check_eligibility(eligibility);
    }
}

/// Valid encodings for every decoder, each prefixed with its selector byte: the seed corpus
/// and the starting points of mutation.
#[must_use]
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let vault_proof = VaultProof {
        vault_id: 3,
        provider_id: [5; 32],
        owner_public_key: keys().owner.public_key().to_bytes(),
        owner_signature: [0; 64],
        token_id: [0; 32],
    };
    let params = StreamParams {
        service_id: b"/vac/waku/store-query/3.0.0".to_vec(),
        stream_rate: 5,
        allocation: 3_000,
        create_stream_deadline: 1_700_000_300,
    };
    let signed = sign_proposal(
        &keys().owner,
        3,
        [5; 32],
        [0; 32],
        params.clone(),
        keys().session.public_key().to_bytes(),
        Some(&[1; 32]),
    );
    let proposal = signed.unwrap_or(StreamProposal { vault_proof, stream_params: params.clone(), public_key: [9; 32] });
    let proof = StreamProof { stream_id: 0, signature: keys().session.sign_with_aux(&[3; 32], &[2; 32]).0 };
    let token = TokenStreamPolicy { token_id: [0; 32], min_rate: 1, min_allocation: 100 };
    let policy = StreamProviderPolicy {
        max_create_stream_deadline_delay: 300,
        vault_proof_max_response_bytes: 65_536,
        accepted_tokens: vec![token, TokenStreamPolicy { token_id: [4; 32], min_rate: 2, min_allocation: 50 }],
    };
    let mut provider =
        ProviderPolicy::new([7; 32], vec!["/vac/waku/store-query/3.0.0".into()], policy.accepted_tokens.clone());
    provider.load_cap = Some(paystreams_provider::LoadCap { window_secs: 60, max_requests: 10, max_bytes: 1 << 20 });
    provider.deferred_first_proof = true;
    let termination = ServiceTermination { termination_type: TerminationType::Temporary, resume_after: 1_700_000_600 };
    let status = EligibilityStatus::new(StatusCode::StreamNotActive, "stream not active");
    let message = WakuMessage {
        payload: b"hello".to_vec(),
        content_topic: "/demo/1/chat/proto".into(),
        version: 1,
        timestamp: Some(1_700_000_000_000_000_000),
        meta: vec![1, 2],
        ephemeral: false,
    };
    let entry = MessageKeyValue {
        message_hash: message.hash("/waku/2/rs/0/0"),
        message: Some((message.clone(), "/waku/2/rs/0/0".into())),
    };
    let request = StoreQueryRequest {
        request_id: "r1".into(),
        include_data: true,
        pubsub_topic: Some("/waku/2/rs/0/0".into()),
        content_topics: vec!["/demo/1/chat/proto".into()],
        time_start: Some(1),
        time_end: Some(-1),
        message_hashes: vec![],
        eligibility_proof: Some(EligibilityProof::Proof(proof).encode()),
        pagination_cursor: Some([2; 32]),
        pagination_forward: true,
        pagination_limit: Some(20),
    };
    let eligibility = Eligibility { status: status.clone(), termination: Some(termination) };
    let response = StoreQueryResponse {
        request_id: "r1".into(),
        status_code: Some(200),
        status_desc: Some("OK".into()),
        messages: vec![entry.clone()],
        eligibility: Some(eligibility.clone()),
        pagination_cursor: Some([8; 32]),
    };
    let receipt = DeliveryReceipt {
        program_id: [1; 32],
        stream_config: [2; 32],
        stream_id: 4,
        acknowledged_total: 1_000,
        deliveries_digest: [3; 32],
        signature: [4; 64],
    };
    let ack = ReceiptAck::new(ReceiptStatus::Kept, "receipt kept", 1_000);
    let pushed = SessionTermination { session_id: [6; 32], termination };
    let encodings: [(usize, Vec<u8>); 20] = [
        (0, proposal.vault_proof.encode()),
        (1, params.encode()),
        (2, proposal.encode()),
        (3, proof.encode()),
        (4, EligibilityProof::Proposal(proposal.clone()).encode()),
        (4, EligibilityProof::Proof(proof).encode()),
        (5, token.encode()),
        (6, policy.encode()),
        (7, termination.encode()),
        (8, status.encode()),
        (9, provider.advert().encode()),
        (10, message.encode()),
        (11, entry.encode()),
        (12, request.encode()),
        (13, eligibility.encode()),
        (14, response.encode()),
        (15, receipt.encode()),
        (16, ack.encode()),
        (17, pushed.encode()),
        (18, WakuMetadata { cluster_id: Some(1), shards: (0..8).collect() }.encode()),
    ];
    encodings
        .into_iter()
        .enumerate()
        .map(|(n, (selector, bytes))| {
            let name = DECODERS.get(selector).copied().unwrap_or("unknown");
            let mut input = vec![u8::try_from(selector).unwrap_or(0)];
            input.extend(bytes);
            (format!("{n:02}-{name}"), input)
        })
        .collect()
}
