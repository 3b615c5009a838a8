//! Store v3 wire: bytes assembled by hand with the reference's field numbers (Store v3 plus the
//! eligibility extension at field 30 of both messages) decode to the expected values, re-encode
//! to the same bytes, and the decoded request reproduces the reference's N8 canonical digest.

use paystreams_store::wire::{Eligibility, MessageKeyValue, StoreQueryRequest, StoreQueryResponse, WakuMessage};
use paystreams_wire::{EligibilityStatus, RequestDigest as _, ServiceTermination, StatusCode, TerminationType};
use proptest::prelude::*;

fn h(s: &str) -> Vec<u8> {
    hex::decode(s.replace(' ', "")).expect("hex")
}

fn len_field(tag: &str, body: &[u8]) -> String {
    assert!(body.len() < 128, "single-byte lengths only in this test");
    format!("{tag}{:02x}{}", body.len(), hex::encode(body))
}

/// The reference's N8 request (request_id "req-1", include_data, pubsub "/waku/2/rs/0/1", one
/// content topic, time_start 10, forward, limit 100), with an `EligibilityProof` at field 30.
fn n8_request_bytes(proof: &[u8]) -> Vec<u8> {
    let mut hex_text = String::new();
    hex_text += &len_field("0a", b"req-1"); // 1 request_id
    hex_text += "1001"; // 2 include_data = true
    hex_text += &len_field("52", b"/waku/2/rs/0/1"); // 10 pubsub_topic
    hex_text += &len_field("5a", b"/lez-payment-streams/1/e2e-eligibility/proto"); // 11 content_topics
    hex_text += "6014"; // 12 time_start = sint64 10 (zigzag 20)
    hex_text += &len_field("f201", proof); // 30 eligibility_proof
    hex_text += "a00301"; // 52 pagination_forward = true
    hex_text += "a80364"; // 53 pagination_limit = 100
    h(&hex_text)
}

fn stream_proof_bytes() -> Vec<u8> {
    // EligibilityProof { 3: StreamProof { 1: stream_id (8 bytes LE), 2: signature (64) } }.
    h(&format!("1a4c0a08{}1240{}", "0500000000000000", "ab".repeat(64)))
}

#[test]
fn reference_request_decodes_reencodes_and_reproduces_the_n8_digest() {
    let proof = stream_proof_bytes();
    let bytes = n8_request_bytes(&proof);
    let request = StoreQueryRequest::decode(&bytes).expect("decodes");
    assert_eq!(request.request_id, "req-1");
    assert!(request.include_data);
    assert_eq!(request.pubsub_topic.as_deref(), Some("/waku/2/rs/0/1"));
    assert_eq!(request.content_topics, ["/lez-payment-streams/1/e2e-eligibility/proto"]);
    assert_eq!((request.time_start, request.time_end), (Some(10), None));
    assert!(request.message_hashes.is_empty() && request.pagination_cursor.is_none());
    assert!(request.pagination_forward);
    assert_eq!(request.pagination_limit, Some(100));
    assert_eq!(request.eligibility_proof.as_deref(), Some(proof.as_slice()));
    // What the proof signs is the request without field 30: the reference's N8 digest.
    assert_eq!(
        hex::encode(request.canonical().digest()),
        "41bff129ff66557e802fe742f0da47148383d05674a8fce61e53ed1aa49d8c38"
    );
    // Our encoder writes ascending field numbers, which these bytes already are.
    assert_eq!(request.encode(), bytes);
    assert_eq!(StoreQueryRequest::decode(&request.encode()).expect("decodes"), request);
}

#[test]
fn field_30_anywhere_in_the_request_decodes_the_same() {
    let proof = stream_proof_bytes();
    let ascending = n8_request_bytes(&proof);
    // The same fields with 30 written last, as an encoder that appends the extension would.
    let mut appended =
        h(&ascending.iter().map(|b| format!("{b:02x}")).collect::<String>().replace(&len_field("f201", &proof), ""));
    appended.extend(h(&len_field("f201", &proof)));
    assert_ne!(appended, ascending);
    assert_eq!(
        StoreQueryRequest::decode(&appended).expect("decodes"),
        StoreQueryRequest::decode(&ascending).expect("decodes")
    );
}

fn waku_message_bytes() -> Vec<u8> {
    // WakuMessage { 1 payload "hi", 2 content_topic "/app/1/chat/proto", 10 timestamp sint64 1000 }
    h(&format!("{}{}50d00f", len_field("0a", b"hi"), len_field("12", b"/app/1/chat/proto")))
}

#[test]
fn reference_success_response_round_trips() {
    let hash = [0x11; 32];
    let cursor = [0x22; 32];
    let kv = format!(
        "{}{}{}",
        len_field("0a", &hash),
        len_field("12", &waku_message_bytes()),
        len_field("1a", b"/waku/2/rs/0/1")
    );
    let status = h(&format!("0800{}", len_field("12", b"ok")));
    let bytes = h(&format!(
        "{}50c801{}{}{}{}",
        len_field("0a", b"req-1"),  // 1 request_id
        len_field("5a", b"OK"),     // 11 status_desc (10 status_code = 200 before it)
        len_field("a201", &h(&kv)), // 20 messages
        len_field("f201", &status), // 30 eligibility_status
        len_field("9a03", &cursor)  // 51 pagination_cursor
    ));
    let response = StoreQueryResponse::decode(&bytes).expect("decodes");
    assert_eq!(response.request_id, "req-1");
    assert_eq!((response.status_code, response.status_desc.as_deref()), (Some(200), Some("OK")));
    assert!(response.is_success());
    assert_eq!(response.messages.len(), 1);
    let MessageKeyValue { message_hash, message } = &response.messages[0];
    assert_eq!(*message_hash, hash);
    let (m, pubsub) = message.as_ref().expect("value present");
    assert_eq!(
        (m.payload.as_slice(), m.content_topic.as_str(), m.timestamp, pubsub.as_str()),
        (&b"hi"[..], "/app/1/chat/proto", Some(1000), "/waku/2/rs/0/1")
    );
    let eligibility = response.eligibility.as_ref().expect("field 30");
    assert_eq!(eligibility.status, EligibilityStatus::ok());
    assert!(eligibility.termination.is_none());
    assert_eq!(response.pagination_cursor, Some(cursor));
    assert_eq!(response.encode(), bytes);
}

#[test]
fn reference_refusal_response_round_trips() {
    let status = h(&format!("0802{}", len_field("12", b"proof invalid")));
    let bytes = h(&format!(
        "{}509003{}{}",
        len_field("0a", b"req-2"),
        len_field("5a", b"BAD_REQUEST"),
        len_field("f201", &status)
    ));
    let response = StoreQueryResponse::decode(&bytes).expect("decodes");
    assert_eq!(response.status_code, Some(400));
    assert!(!response.is_success());
    assert!(response.messages.is_empty());
    let eligibility = response.eligibility.as_ref().expect("field 30");
    assert_eq!(eligibility.status.code(), Some(StatusCode::ProofInvalid));
    assert_eq!(eligibility.status.status_desc, "proof invalid");
    assert_eq!(response.encode(), bytes);
}

#[test]
fn termination_extension_is_invisible_to_a_status_only_decoder() {
    let with_termination = Eligibility {
        status: EligibilityStatus::new(StatusCode::StreamNotActive, "paused"),
        termination: Some(ServiceTermination { termination_type: TerminationType::Temporary, resume_after: 1_234 }),
    };
    let bytes = with_termination.encode();
    // A decoder that knows only fields 1 and 2 (the reference's) reads the status unchanged.
    assert_eq!(EligibilityStatus::decode(&bytes).expect("decodes"), with_termination.status);
    assert_eq!(Eligibility::decode(&bytes).expect("decodes"), with_termination);
    // A PERMANENT termination with a resume time is refused.
    let mut bad = EligibilityStatus::ok().encode();
    bad.extend(h(&len_field("1a", &h("08011005"))));
    assert!(Eligibility::decode(&bad).is_err());
}

#[test]
fn wrong_widths_and_limits_are_refused() {
    // A 31-byte cursor, a 33-byte message hash.
    assert!(StoreQueryRequest::decode(&h(&len_field("9a03", &[0; 31]))).is_err());
    assert!(StoreQueryRequest::decode(&h(&len_field("a201", &[0; 33]))).is_err());
    // Eleven content topics.
    let topics: String = (0..11).map(|_| len_field("5a", b"/t")).collect();
    assert!(StoreQueryRequest::decode(&h(&topics)).is_err());
    // include_data = 2 is not a bool.
    assert!(StoreQueryRequest::decode(&h("1002")).is_err());
    // A message value without its pubsub topic.
    let kv = format!("{}{}", len_field("0a", &[1; 32]), len_field("12", &waku_message_bytes()));
    assert!(StoreQueryResponse::decode(&h(&len_field("a201", &h(&kv)))).is_err());
}

fn arb_request() -> impl Strategy<Value = StoreQueryRequest> {
    (
        "[a-z0-9]{1,20}",
        any::<bool>(),
        proptest::option::of("/[a-z]{1,10}"),
        proptest::collection::vec("/[a-z]{1,10}", 0..4),
        proptest::option::of(any::<i64>()),
        proptest::option::of(any::<i64>()),
        proptest::collection::vec(any::<[u8; 32]>(), 0..4),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..200)),
        proptest::option::of(any::<[u8; 32]>()),
        any::<bool>(),
        proptest::option::of(any::<u64>()),
    )
        .prop_map(|(id, data, pubsub, topics, start, end, hashes, proof, cursor, forward, limit)| {
            StoreQueryRequest {
                request_id: id,
                include_data: data,
                pubsub_topic: pubsub,
                content_topics: topics,
                time_start: start,
                time_end: end,
                message_hashes: hashes,
                eligibility_proof: proof,
                pagination_cursor: cursor,
                pagination_forward: forward,
                pagination_limit: limit,
            }
        })
}

proptest! {
    #[test]
    fn requests_round_trip(request in arb_request()) {
        prop_assert_eq!(StoreQueryRequest::decode(&request.encode()).expect("decodes"), request);
    }

    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = StoreQueryRequest::decode(&bytes);
        let _ = StoreQueryResponse::decode(&bytes);
        let _ = WakuMessage::decode(&bytes);
        let _ = Eligibility::decode(&bytes);
    }
}
