//! Lightpush v3 wire: hand-assembled bytes with the RFC's field numbers (and field 30 on both
//! messages) decode and re-encode byte for byte; a standard proto3 encoder's bytes (prost)
//! decode to the same values and ours decode with prost; the canonical request digest is pinned
//! by a vector whose Borsh body is assembled by hand here; sizes are bounded.

use paystreams_store::{
    lightpush::{
        CanonicalLightpushRequest, LIGHTPUSH_ELIGIBILITY_PREFIX, LIGHTPUSH_REQUEST_MAX_LEN, LightpushRequest,
        LightpushResponse,
    },
    wire::{PAYLOAD_MAX_LEN, WakuMessage},
};
use paystreams_wire::{RequestDigest as _, WireError, proto::Writer};
use prost::Message;
use sha2::{Digest as _, Sha256};

use crate::wire_standard::{
    PEligibility, PWakuMessage, eligibilities, p_eligibility, p_waku, proto3_check::check, waku_messages,
};

#[derive(Clone, PartialEq, Message)]
struct PLightpushRequest {
    #[prost(string, tag = "1")]
    request_id: String,
    #[prost(string, optional, tag = "20")]
    pubsub_topic: Option<String>,
    #[prost(message, optional, tag = "21")]
    message: Option<PWakuMessage>,
    #[prost(bytes = "vec", optional, tag = "30")]
    eligibility_proof: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, Message)]
struct PLightpushResponse {
    #[prost(string, tag = "1")]
    request_id: String,
    #[prost(uint32, tag = "10")]
    status_code: u32,
    #[prost(string, optional, tag = "11")]
    status_desc: Option<String>,
    #[prost(uint32, optional, tag = "12")]
    relay_peer_count: Option<u32>,
    #[prost(message, optional, tag = "30")]
    eligibility_status: Option<PEligibility>,
}

fn p_request(v: &LightpushRequest) -> PLightpushRequest {
    PLightpushRequest {
        request_id: v.request_id.clone(),
        pubsub_topic: v.pubsub_topic.clone(),
        message: v.message.as_ref().map(p_waku),
        eligibility_proof: v.eligibility_proof.clone(),
    }
}

fn p_response(v: &LightpushResponse) -> PLightpushResponse {
    PLightpushResponse {
        request_id: v.request_id.clone(),
        status_code: v.status_code,
        status_desc: v.status_desc.clone(),
        relay_peer_count: v.relay_peer_count,
        eligibility_status: v.eligibility.as_ref().map(p_eligibility),
    }
}

fn vector_request() -> LightpushRequest {
    LightpushRequest {
        request_id: "req-1".into(),
        pubsub_topic: Some("/waku/2/rs/0/0".into()),
        message: Some(WakuMessage {
            payload: b"hi".to_vec(),
            content_topic: "/app/1/chat/proto".into(),
            version: 0,
            timestamp: Some(1_700_000_000_000_000_000),
            meta: Vec::new(),
            ephemeral: false,
        }),
        eligibility_proof: Some(vec![0x1a, 0x00]),
    }
}

#[test]
fn hand_assembled_bytes_decode_and_reencode_byte_for_byte() {
    let request = vector_request();
    let message = request.message.clone().expect("message");
    let mut w = Writer::new();
    w.bytes(1, b"req-1").bytes(20, b"/waku/2/rs/0/0").bytes(21, &message.encode()).bytes(30, &[0x1a, 0x00]);
    let bytes = w.finish();
    assert_eq!(LightpushRequest::decode(&bytes), Ok(request.clone()));
    assert_eq!(request.encode(), bytes);

    let eligibility = eligibilities().pop().expect("one");
    let mut w = Writer::new();
    w.bytes(1, b"req-1").uint(10, 400).bytes(11, b"PROOF_INVALID: why").uint(12, 0).bytes(30, &eligibility.encode());
    let bytes = w.finish();
    let response = LightpushResponse {
        request_id: "req-1".into(),
        status_code: 400,
        status_desc: Some("PROOF_INVALID: why".into()),
        relay_peer_count: Some(0),
        eligibility: Some(eligibility),
    };
    assert_eq!(LightpushResponse::decode(&bytes), Ok(response.clone()));
    assert_eq!(response.encode(), bytes);
}

#[test]
fn standard_proto3_bytes_decode_both_ways() {
    let [empty, full] = waku_messages();
    let requests = [
        LightpushRequest::default(),
        LightpushRequest {
            request_id: "r".into(),
            pubsub_topic: Some(String::new()),
            message: Some(empty),
            eligibility_proof: Some(Vec::new()),
        },
        LightpushRequest { message: Some(full), ..vector_request() },
    ];
    for request in requests {
        check(&request, &p_request(&request), LightpushRequest::decode, LightpushRequest::encode);
    }
    let mut responses = vec![
        LightpushResponse::default(),
        LightpushResponse {
            request_id: "r".into(),
            status_code: 200,
            status_desc: Some("OK".into()),
            ..Default::default()
        },
    ];
    for (i, eligibility) in eligibilities().into_iter().enumerate() {
        responses.push(LightpushResponse {
            request_id: format!("r{i}"),
            status_code: 400,
            status_desc: Some(String::new()),
            relay_peer_count: Some(u32::try_from(i).expect("small")),
            eligibility: Some(eligibility),
        });
    }
    for response in responses {
        check(&response, &p_response(&response), LightpushResponse::decode, LightpushResponse::encode);
    }
}

/// Borsh by hand: strings and byte vectors are a u32 little-endian length and the bytes, an
/// option a presence byte, integers little-endian, a bool one byte.
fn borsh_bytes(out: &mut Vec<u8>, value: &[u8]) {
    out.extend(u32::try_from(value.len()).expect("small").to_le_bytes());
    out.extend(value);
}

#[test]
fn canonical_digest_vector() {
    let request = vector_request();
    let mut body = Vec::new();
    borsh_bytes(&mut body, b"req-1");
    body.push(1);
    borsh_bytes(&mut body, b"/waku/2/rs/0/0");
    body.push(1);
    borsh_bytes(&mut body, b"hi");
    borsh_bytes(&mut body, b"/app/1/chat/proto");
    body.extend(0_u32.to_le_bytes());
    body.push(1);
    body.extend(1_700_000_000_000_000_000_i64.to_le_bytes());
    borsh_bytes(&mut body, b"");
    body.push(0);
    let canonical = request.canonical();
    assert_eq!(canonical.canonical_body(), body);
    let digest: [u8; 32] =
        Sha256::new().chain_update(LIGHTPUSH_ELIGIBILITY_PREFIX).chain_update(&body).finalize().into();
    assert_eq!(canonical.digest(), digest);
    // The vector documented in docs/lightpush.md.
    assert_eq!(hex::encode(digest), "1929cd09cf6104e140bdb98302c202c475e6afd33a10e656fd610bcf8c6f132f");
    // Field 30 is not part of what is signed; every other field is.
    let mut without = request.clone();
    without.eligibility_proof = None;
    assert_eq!(without.canonical().digest(), digest);
    let mut other = request;
    other.request_id = "req-2".into();
    assert_ne!(other.canonical().digest(), digest);
    assert_ne!(CanonicalLightpushRequest::default().digest(), digest);
}

#[test]
fn sizes_are_bounded() {
    let mut request = vector_request();
    if let Some(m) = request.message.as_mut() {
        m.payload = vec![0; PAYLOAD_MAX_LEN + 1];
    }
    assert!(matches!(LightpushRequest::decode(&request.encode()), Err(WireError::TooLarge { .. })));
    if let Some(m) = request.message.as_mut() {
        m.payload = vec![0; PAYLOAD_MAX_LEN];
    }
    assert!(LightpushRequest::decode(&request.encode()).is_ok());
    let oversized = Writer::new().bytes(99, &vec![0; LIGHTPUSH_REQUEST_MAX_LEN]).finish();
    assert!(matches!(LightpushRequest::decode(&oversized), Err(WireError::TooLarge { .. })));
    let proof_too_long = Writer::new().bytes(30, &[0; 1025]).finish();
    assert!(matches!(LightpushRequest::decode(&proof_too_long), Err(WireError::TooLarge { .. })));
    let desc_too_long = Writer::new().bytes(11, &[b'a'; 4097]).finish();
    assert!(matches!(LightpushResponse::decode(&desc_too_long), Err(WireError::TooLarge { .. })));
}
