//! Store v3 wire against a standard proto3 encoder (prost, with structs that mirror the
//! reference's `.proto`): its bytes, including all-zero and absent values, decode to the same
//! values; our bytes decode with prost to the same values; unknown fields of wire types 0, 1, 2
//! and 5 are skipped; a field number above 2^29 - 1 is refused.

#[path = "../../../wire/tests/support/proto3_check.rs"]
pub(crate) mod proto3_check;

use paystreams_store::wire::{Eligibility, MessageKeyValue, StoreQueryRequest, StoreQueryResponse, WakuMessage};
use paystreams_wire::{EligibilityStatus, ServiceTermination, StatusCode, TerminationType, WireError};
use prost::Message;
use proto3_check::check;

#[derive(Clone, PartialEq, Message)]
pub(crate) struct PWakuMessage {
    #[prost(bytes = "vec", tag = "1")]
    payload: Vec<u8>,
    #[prost(string, tag = "2")]
    content_topic: String,
    #[prost(uint32, tag = "3")]
    version: u32,
    #[prost(sint64, optional, tag = "10")]
    timestamp: Option<i64>,
    #[prost(bytes = "vec", tag = "11")]
    meta: Vec<u8>,
    #[prost(bool, tag = "31")]
    ephemeral: bool,
}

#[derive(Clone, PartialEq, Message)]
struct PMessageKeyValue {
    #[prost(bytes = "vec", optional, tag = "1")]
    message_hash: Option<Vec<u8>>,
    #[prost(message, optional, tag = "2")]
    message: Option<PWakuMessage>,
    #[prost(string, optional, tag = "3")]
    pubsub_topic: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
pub(crate) struct PServiceTermination {
    #[prost(int32, tag = "1")]
    termination_type: i32,
    #[prost(uint64, tag = "2")]
    resume_after: u64,
}

#[derive(Clone, PartialEq, Message)]
pub(crate) struct PEligibility {
    #[prost(uint32, optional, tag = "1")]
    status_code: Option<u32>,
    #[prost(string, optional, tag = "2")]
    status_desc: Option<String>,
    #[prost(message, optional, tag = "3")]
    service_termination: Option<PServiceTermination>,
}

#[derive(Clone, PartialEq, Message)]
struct PStoreQueryRequest {
    #[prost(string, tag = "1")]
    request_id: String,
    #[prost(bool, tag = "2")]
    include_data: bool,
    #[prost(string, optional, tag = "10")]
    pubsub_topic: Option<String>,
    #[prost(string, repeated, tag = "11")]
    content_topics: Vec<String>,
    #[prost(sint64, optional, tag = "12")]
    time_start: Option<i64>,
    #[prost(sint64, optional, tag = "13")]
    time_end: Option<i64>,
    #[prost(bytes = "vec", repeated, tag = "20")]
    message_hashes: Vec<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "30")]
    eligibility_proof: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "51")]
    pagination_cursor: Option<Vec<u8>>,
    #[prost(bool, tag = "52")]
    pagination_forward: bool,
    #[prost(uint64, optional, tag = "53")]
    pagination_limit: Option<u64>,
}

#[derive(Clone, PartialEq, Message)]
struct PStoreQueryResponse {
    #[prost(string, tag = "1")]
    request_id: String,
    #[prost(uint32, optional, tag = "10")]
    status_code: Option<u32>,
    #[prost(string, optional, tag = "11")]
    status_desc: Option<String>,
    #[prost(message, repeated, tag = "20")]
    messages: Vec<PMessageKeyValue>,
    #[prost(message, optional, tag = "30")]
    eligibility_status: Option<PEligibility>,
    #[prost(bytes = "vec", optional, tag = "51")]
    pagination_cursor: Option<Vec<u8>>,
}

pub(crate) fn p_waku(v: &WakuMessage) -> PWakuMessage {
    PWakuMessage {
        payload: v.payload.clone(),
        content_topic: v.content_topic.clone(),
        version: v.version,
        timestamp: v.timestamp,
        meta: v.meta.clone(),
        ephemeral: v.ephemeral,
    }
}

fn p_entry(v: &MessageKeyValue) -> PMessageKeyValue {
    PMessageKeyValue {
        message_hash: Some(v.message_hash.to_vec()),
        message: v.message.as_ref().map(|(m, _)| p_waku(m)),
        pubsub_topic: v.message.as_ref().map(|(_, t)| t.clone()),
    }
}

pub(crate) fn p_eligibility(v: &Eligibility) -> PEligibility {
    PEligibility {
        status_code: Some(v.status.status_code),
        status_desc: Some(v.status.status_desc.clone()),
        service_termination: v
            .termination
            .map(|t| PServiceTermination { termination_type: t.termination_type as i32, resume_after: t.resume_after }),
    }
}

fn p_request(v: &StoreQueryRequest) -> PStoreQueryRequest {
    PStoreQueryRequest {
        request_id: v.request_id.clone(),
        include_data: v.include_data,
        pubsub_topic: v.pubsub_topic.clone(),
        content_topics: v.content_topics.clone(),
        time_start: v.time_start,
        time_end: v.time_end,
        message_hashes: v.message_hashes.iter().map(|h| h.to_vec()).collect(),
        eligibility_proof: v.eligibility_proof.clone(),
        pagination_cursor: v.pagination_cursor.map(|c| c.to_vec()),
        pagination_forward: v.pagination_forward,
        pagination_limit: v.pagination_limit,
    }
}

fn p_response(v: &StoreQueryResponse) -> PStoreQueryResponse {
    PStoreQueryResponse {
        request_id: v.request_id.clone(),
        status_code: v.status_code,
        status_desc: v.status_desc.clone(),
        messages: v.messages.iter().map(p_entry).collect(),
        eligibility_status: v.eligibility.as_ref().map(p_eligibility),
        pagination_cursor: v.pagination_cursor.map(|c| c.to_vec()),
    }
}

pub(crate) fn waku_messages() -> [WakuMessage; 2] {
    [
        WakuMessage::default(),
        WakuMessage {
            payload: b"hello".to_vec(),
            content_topic: "/app/1/chat/proto".into(),
            version: 1,
            timestamp: Some(-1_700_000_000_000_000_000),
            meta: vec![1, 2, 3],
            ephemeral: true,
        },
    ]
}

pub(crate) fn eligibilities() -> Vec<Eligibility> {
    vec![
        Eligibility { status: EligibilityStatus::new(StatusCode::Ok, ""), termination: None },
        Eligibility {
            status: EligibilityStatus::ok(),
            termination: Some(ServiceTermination { termination_type: TerminationType::Temporary, resume_after: 0 }),
        },
        Eligibility {
            status: EligibilityStatus::new(StatusCode::StreamNotActive, "paused"),
            termination: Some(ServiceTermination { termination_type: TerminationType::Permanent, resume_after: 0 }),
        },
    ]
}

#[test]
fn waku_messages_and_entries_decode_standard_bytes() {
    for message in waku_messages() {
        check(&message, &p_waku(&message), WakuMessage::decode, WakuMessage::encode);
        for entry in [
            MessageKeyValue { message_hash: [0; 32], message: None },
            MessageKeyValue { message_hash: [4; 32], message: Some((message.clone(), String::new())) },
            MessageKeyValue { message_hash: [5; 32], message: Some((message.clone(), "/waku/2/rs/0/1".into())) },
        ] {
            check(&entry, &p_entry(&entry), MessageKeyValue::decode, MessageKeyValue::encode);
        }
    }
    // The hash is a 32-byte field: presence required.
    let no_hash = PMessageKeyValue { message_hash: None, message: None, pubsub_topic: None }.encode_to_vec();
    assert_eq!(MessageKeyValue::decode(&no_hash), Err(WireError::MissingField("messages.message_hash")));
}

#[test]
fn requests_decode_standard_bytes() {
    let requests = [
        StoreQueryRequest::default(),
        StoreQueryRequest {
            request_id: "req-1".into(),
            include_data: true,
            pubsub_topic: Some(String::new()),
            content_topics: vec![String::new(), "/app/1/chat/proto".into()],
            time_start: Some(0),
            time_end: Some(i64::MAX),
            message_hashes: vec![],
            eligibility_proof: Some(Vec::new()),
            pagination_cursor: Some([0; 32]),
            pagination_forward: true,
            pagination_limit: Some(0),
        },
        StoreQueryRequest {
            request_id: "req-2".into(),
            message_hashes: vec![[1; 32], [2; 32]],
            eligibility_proof: Some(vec![0x1a, 0x00]),
            pagination_limit: Some(100),
            ..StoreQueryRequest::default()
        },
    ];
    for request in requests {
        check(&request, &p_request(&request), StoreQueryRequest::decode, StoreQueryRequest::encode);
    }
}

#[test]
fn responses_and_eligibility_decode_standard_bytes() {
    for eligibility in eligibilities() {
        check(&eligibility, &p_eligibility(&eligibility), Eligibility::decode, Eligibility::encode);
    }
    // The status keeps presence (`optional` in the reference): an absent code is refused.
    let no_code = PEligibility { status_code: None, status_desc: Some("ok".into()), service_termination: None };
    assert_eq!(
        Eligibility::decode(&no_code.encode_to_vec()),
        Err(WireError::MissingField("eligibility_status.status_code"))
    );
    let [empty, full] = waku_messages();
    let responses = [
        StoreQueryResponse::default(),
        StoreQueryResponse {
            request_id: "req-1".into(),
            status_code: Some(0),
            status_desc: Some(String::new()),
            messages: vec![
                MessageKeyValue { message_hash: [1; 32], message: None },
                MessageKeyValue { message_hash: [2; 32], message: Some((empty, String::new())) },
                MessageKeyValue { message_hash: [3; 32], message: Some((full, "/waku/2/rs/0/1".into())) },
            ],
            eligibility: eligibilities().pop(),
            pagination_cursor: Some([9; 32]),
        },
        StoreQueryResponse {
            request_id: "req-2".into(),
            status_code: Some(200),
            eligibility: eligibilities().first().cloned(),
            ..StoreQueryResponse::default()
        },
    ];
    for response in responses {
        check(&response, &p_response(&response), StoreQueryResponse::decode, StoreQueryResponse::encode);
    }
}
