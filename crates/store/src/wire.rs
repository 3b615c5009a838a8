//! Store v3 (`/vac/waku/store-query/3.0.0`) messages with the LIP-155 eligibility extension:
//! `StoreQueryRequest` field 30 carries the serialized `EligibilityProof`, `StoreQueryResponse`
//! field 30 carries `EligibilityStatus`. Our own extension, flagged for upstream: inside that
//! status, field 3 carries a serialized `ServiceTermination`, because Store is pure
//! request-response and has no other way to deliver one.
//!
//! Decoders are bounded and strict about what they read (hash and cursor widths, UTF-8, counts)
//! and skip unknown varint and length-delimited fields, as proto3 readers do. Encoders write
//! ascending field numbers and always write `include_data` (2) and `pagination_forward` (52), as
//! Logos Delivery does.

use paystreams_wire::{
    CanonicalStoreRequest, EligibilityStatus, ServiceTermination, WireError,
    proto::{Reader, Value, Writer, bytes, fixed, uint},
};
use sha2::{Digest as _, Sha256};

/// Largest request frame accepted (a lookup of [`MESSAGE_HASHES_MAX`] hashes is about 3.5 KiB).
pub const REQUEST_MAX_LEN: usize = 64 * 1024;
/// Largest response frame accepted: Logos Delivery's RPC size limit.
pub const RESPONSE_MAX_LEN: usize = 10 * 1024 * 1024;
/// Largest `WakuMessage` payload the archive stores and a client accepts.
pub const PAYLOAD_MAX_LEN: usize = 150 * 1024;
/// Most content topics one query may name.
pub const CONTENT_TOPICS_MAX: usize = 10;
/// Most message hashes one lookup query may name.
pub const MESSAGE_HASHES_MAX: usize = 100;
/// Longest topic or request id, bytes.
pub const TOPIC_MAX_LEN: usize = 512;
/// Most messages one response may carry.
pub const RESPONSE_MESSAGES_MAX: usize = 1_000;

/// Store status codes used here.
pub mod status {
    pub const OK: u32 = 200;
    pub const BAD_REQUEST: u32 = 400;
    pub const TOO_MANY_REQUESTS: u32 = 429;
    pub const SERVICE_UNAVAILABLE: u32 = 503;
}

/// A Waku message (14/WAKU2-MESSAGE).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct WakuMessage {
    pub payload: Vec<u8>,
    pub content_topic: String,
    pub version: u32,
    /// Unix time, nanoseconds.
    pub timestamp: Option<i64>,
    pub meta: Vec<u8>,
    pub ephemeral: bool,
}

fn zigzag(value: i64) -> u64 {
    u64::from_ne_bytes(((value << 1) ^ (value >> 63)).to_ne_bytes())
}

fn unzigzag(value: u64) -> i64 {
    let half = i64::from_ne_bytes((value >> 1).to_ne_bytes());
    let sign = i64::from_ne_bytes((value & 1).to_ne_bytes());
    half ^ sign.wrapping_neg()
}

fn string(value: Value<'_>, field: &'static str) -> Result<String, WireError> {
    let raw = bytes(value, field)?;
    if raw.len() > TOPIC_MAX_LEN {
        return Err(WireError::TooLarge { size: raw.len(), max: TOPIC_MAX_LEN });
    }
    String::from_utf8(raw.to_vec()).map_err(|_| WireError::InvalidFrame(field))
}

fn boolean(value: Value<'_>, field: &'static str) -> Result<bool, WireError> {
    match uint(value, field)? {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(WireError::UnknownEnum { field, value: other }),
    }
}

fn check_size(input: &[u8], max: usize) -> Result<(), WireError> {
    if input.len() > max { Err(WireError::TooLarge { size: input.len(), max }) } else { Ok(()) }
}

impl WakuMessage {
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.bytes(1, &self.payload).bytes(2, self.content_topic.as_bytes());
        if self.version != 0 {
            w.uint(3, u64::from(self.version));
        }
        if let Some(ts) = self.timestamp {
            w.uint(10, zigzag(ts));
        }
        if !self.meta.is_empty() {
            w.bytes(11, &self.meta);
        }
        if self.ephemeral {
            w.uint(31, 1);
        }
        w.finish()
    }

    /// # Errors
    /// Malformed fields, an oversized payload or meta, a non-UTF-8 topic.
    pub fn decode(input: &[u8]) -> Result<Self, WireError> {
        let mut m = Self::default();
        let mut reader = Reader::new(input);
        while let Some((number, value)) = reader.next_field()? {
            match number {
                1 => {
                    let p = bytes(value, "message.payload")?;
                    check_size(p, PAYLOAD_MAX_LEN)?;
                    p.clone_into(&mut m.payload);
                }
                2 => m.content_topic = string(value, "message.content_topic")?,
                3 => {
                    let v = uint(value, "message.version")?;
                    m.version =
                        u32::try_from(v).map_err(|_| WireError::UnknownEnum { field: "message.version", value: v })?;
                }
                10 => m.timestamp = Some(unzigzag(uint(value, "message.timestamp")?)),
                11 => {
                    let meta = bytes(value, "message.meta")?;
                    // 14/WAKU2-MESSAGE caps meta at 64 bytes.
                    check_size(meta, 64)?;
                    meta.clone_into(&mut m.meta);
                }
                31 => m.ephemeral = boolean(value, "message.ephemeral")?,
                _ => {}
            }
        }
        Ok(m)
    }

    /// The deterministic message hash of 14/WAKU2-MESSAGE: SHA-256 over the pubsub topic, the
    /// payload, the content topic, the meta and the timestamp as 8 big-endian bytes (an absent
    /// attribute is left out).
    #[must_use]
    pub fn hash(&self, pubsub_topic: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(pubsub_topic.as_bytes());
        h.update(&self.payload);
        h.update(self.content_topic.as_bytes());
        h.update(&self.meta);
        if let Some(ts) = self.timestamp {
            h.update(ts.to_be_bytes());
        }
        h.finalize().into()
    }
}

/// One entry of a response: the hash, and with `include_data` the message and its pubsub topic.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct MessageKeyValue {
    pub message_hash: [u8; 32],
    pub message: Option<(WakuMessage, String)>,
}

impl MessageKeyValue {
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.bytes(1, &self.message_hash);
        if let Some((message, pubsub_topic)) = &self.message {
            w.bytes(2, &message.encode()).bytes(3, pubsub_topic.as_bytes());
        }
        w.finish()
    }

    /// # Errors
    /// A missing or wrong-width hash, a message without its pubsub topic or the reverse.
    pub fn decode(input: &[u8]) -> Result<Self, WireError> {
        let (mut hash, mut message, mut topic) = (None, None, None);
        let mut reader = Reader::new(input);
        while let Some((number, value)) = reader.next_field()? {
            match number {
                1 => hash = Some(fixed::<32>(value, "messages.message_hash")?),
                2 => message = Some(WakuMessage::decode(bytes(value, "messages.message")?)?),
                3 => topic = Some(string(value, "messages.pubsub_topic")?),
                _ => {}
            }
        }
        let message = match (message, topic) {
            (Some(m), Some(t)) => Some((m, t)),
            (None, None) => None,
            _ => return Err(WireError::InvalidFrame("message and pubsub_topic must both be set or both unset")),
        };
        Ok(Self { message_hash: hash.ok_or(WireError::MissingField("messages.message_hash"))?, message })
    }
}

/// `StoreQueryRequest` with the eligibility proof at field 30.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct StoreQueryRequest {
    pub request_id: String,
    pub include_data: bool,
    pub pubsub_topic: Option<String>,
    pub content_topics: Vec<String>,
    /// Nanoseconds, inclusive.
    pub time_start: Option<i64>,
    /// Nanoseconds, exclusive.
    pub time_end: Option<i64>,
    pub message_hashes: Vec<[u8; 32]>,
    pub eligibility_proof: Option<Vec<u8>>,
    pub pagination_cursor: Option<[u8; 32]>,
    pub pagination_forward: bool,
    pub pagination_limit: Option<u64>,
}

impl StoreQueryRequest {
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.bytes(1, self.request_id.as_bytes()).uint(2, u64::from(self.include_data));
        if let Some(t) = &self.pubsub_topic {
            w.bytes(10, t.as_bytes());
        }
        for t in &self.content_topics {
            w.bytes(11, t.as_bytes());
        }
        if let Some(t) = self.time_start {
            w.uint(12, zigzag(t));
        }
        if let Some(t) = self.time_end {
            w.uint(13, zigzag(t));
        }
        for h in &self.message_hashes {
            w.bytes(20, h);
        }
        if let Some(p) = &self.eligibility_proof {
            w.bytes(30, p);
        }
        if let Some(c) = &self.pagination_cursor {
            w.bytes(51, c);
        }
        w.uint(52, u64::from(self.pagination_forward));
        if let Some(l) = self.pagination_limit {
            w.uint(53, l);
        }
        w.finish()
    }

    /// # Errors
    /// Oversized or malformed input, too many topics or hashes, wrong-width hashes or cursor.
    pub fn decode(input: &[u8]) -> Result<Self, WireError> {
        check_size(input, REQUEST_MAX_LEN)?;
        let mut r = Self::default();
        let mut reader = Reader::new(input);
        while let Some((number, value)) = reader.next_field()? {
            match number {
                1 => r.request_id = string(value, "request_id")?,
                2 => r.include_data = boolean(value, "include_data")?,
                10 => r.pubsub_topic = Some(string(value, "pubsub_topic")?),
                11 => {
                    if r.content_topics.len() >= CONTENT_TOPICS_MAX {
                        return Err(WireError::InvalidFrame("more than 10 content topics"));
                    }
                    r.content_topics.push(string(value, "content_topics")?);
                }
                12 => r.time_start = Some(unzigzag(uint(value, "time_start")?)),
                13 => r.time_end = Some(unzigzag(uint(value, "time_end")?)),
                20 => {
                    if r.message_hashes.len() >= MESSAGE_HASHES_MAX {
                        return Err(WireError::InvalidFrame("more than 100 message hashes"));
                    }
                    r.message_hashes.push(fixed::<32>(value, "message_hashes")?);
                }
                30 => {
                    let p = bytes(value, "eligibility_proof")?;
                    check_size(p, paystreams_wire::ELIGIBILITY_PROOF_MAX_LEN)?;
                    r.eligibility_proof = Some(p.to_vec());
                }
                51 => r.pagination_cursor = Some(fixed::<32>(value, "pagination_cursor")?),
                52 => r.pagination_forward = boolean(value, "pagination_forward")?,
                53 => r.pagination_limit = Some(uint(value, "pagination_limit")?),
                _ => {}
            }
        }
        Ok(r)
    }

    /// What a stream proof signs: the request without its eligibility proof.
    #[must_use]
    pub fn canonical(&self) -> CanonicalStoreRequest {
        CanonicalStoreRequest {
            request_id: self.request_id.clone(),
            include_data: self.include_data,
            pubsub_topic: self.pubsub_topic.clone(),
            content_topics: self.content_topics.clone(),
            time_start: self.time_start,
            time_end: self.time_end,
            message_hashes: self.message_hashes.clone(),
            pagination_cursor: self.pagination_cursor,
            pagination_forward: self.pagination_forward,
            pagination_limit: self.pagination_limit,
        }
    }

    /// The Store rules a well-formed query follows, checked before any payment is looked at so
    /// that a malformed query costs the user nothing.
    ///
    /// # Errors
    /// Text for `status_desc` saying what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.request_id.is_empty() {
            return Err("request_id must be set".into());
        }
        if self.pubsub_topic.is_some() == self.content_topics.is_empty() {
            return Err("pubsub_topic and content_topics must both be set or both unset".into());
        }
        let content_filter = self.pubsub_topic.is_some()
            || !self.content_topics.is_empty()
            || self.time_start.is_some()
            || self.time_end.is_some();
        if content_filter && !self.message_hashes.is_empty() {
            return Err("a query takes either content filters or message hashes, not both".into());
        }
        if let (Some(start), Some(end)) = (self.time_start, self.time_end)
            && start > end
        {
            return Err(format!("time_start {start} is after time_end {end}"));
        }
        Ok(())
    }
}

/// `EligibilityStatus` plus our termination extension (status field 3).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Eligibility {
    pub status: EligibilityStatus,
    pub termination: Option<ServiceTermination>,
}

impl Eligibility {
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.status.encode();
        if let Some(t) = &self.termination {
            out.extend(Writer::new().bytes(3, &t.encode()).finish());
        }
        out
    }

    /// # Errors
    /// A malformed status or termination.
    pub fn decode(input: &[u8]) -> Result<Self, WireError> {
        let status = EligibilityStatus::decode(input)?;
        let mut termination = None;
        let mut reader = Reader::new(input);
        while let Some((number, value)) = reader.next_field()? {
            if number == 3 {
                termination =
                    Some(ServiceTermination::decode(bytes(value, "eligibility_status.service_termination")?)?);
            }
        }
        Ok(Self { status, termination })
    }
}

/// `StoreQueryResponse` with the eligibility status at field 30.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct StoreQueryResponse {
    pub request_id: String,
    pub status_code: Option<u32>,
    pub status_desc: Option<String>,
    pub messages: Vec<MessageKeyValue>,
    pub eligibility: Option<Eligibility>,
    pub pagination_cursor: Option<[u8; 32]>,
}

impl StoreQueryResponse {
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.bytes(1, self.request_id.as_bytes());
        if let Some(code) = self.status_code {
            w.uint(10, u64::from(code));
        }
        if let Some(desc) = &self.status_desc {
            w.bytes(11, desc.as_bytes());
        }
        for m in &self.messages {
            w.bytes(20, &m.encode());
        }
        if let Some(e) = &self.eligibility {
            w.bytes(30, &e.encode());
        }
        if let Some(c) = &self.pagination_cursor {
            w.bytes(51, c);
        }
        w.finish()
    }

    /// # Errors
    /// Oversized or malformed input.
    pub fn decode(input: &[u8]) -> Result<Self, WireError> {
        check_size(input, RESPONSE_MAX_LEN)?;
        let mut r = Self::default();
        let mut reader = Reader::new(input);
        while let Some((number, value)) = reader.next_field()? {
            match number {
                1 => r.request_id = string(value, "request_id")?,
                10 => {
                    let v = uint(value, "status_code")?;
                    r.status_code =
                        Some(u32::try_from(v).map_err(|_| WireError::UnknownEnum { field: "status_code", value: v })?);
                }
                11 => {
                    let d = bytes(value, "status_desc")?;
                    check_size(d, 4096)?;
                    r.status_desc = Some(
                        String::from_utf8(d.to_vec())
                            .map_err(|_| WireError::InvalidFrame("status_desc is not UTF-8"))?,
                    );
                }
                20 => {
                    if r.messages.len() >= RESPONSE_MESSAGES_MAX {
                        return Err(WireError::InvalidFrame("more than 1000 messages in one response"));
                    }
                    r.messages.push(MessageKeyValue::decode(bytes(value, "messages")?)?);
                }
                30 => r.eligibility = Some(Eligibility::decode(bytes(value, "eligibility_status")?)?),
                51 => r.pagination_cursor = Some(fixed::<32>(value, "pagination_cursor")?),
                _ => {}
            }
        }
        Ok(r)
    }

    /// Whether the status code is in the 2xx range.
    #[must_use]
    pub fn is_success(&self) -> bool {
        self.status_code.is_some_and(|c| (200..300).contains(&c))
    }
}

/// Largest Waku metadata frame accepted, either way ([`SHARDS_MAX`] shards with room to spare).
pub const METADATA_MAX_LEN: usize = 8 * 1024;
/// Most shards one metadata message may list (Waku shard indices are below 1024).
pub const SHARDS_MAX: usize = 1_024;

/// `/vac/waku/metadata/1.0.0`'s request and response (`WakuMetadataRequest` and
/// `WakuMetadataResponse` have the same two fields): the sender's cluster and the shards it
/// serves.
///
/// Decoding follows proto3: `cluster_id` (1, `optional uint32`) absent reads as `None`; shards
/// (2, `repeated uint32`) are read packed or unpacked, at most [`SHARDS_MAX`]. Encoding writes
/// the cluster id when set and the shards unpacked, one field each, as js-waku and nwaku write
/// them (js-waku 0.0.36's reader does not understand the packed form).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct WakuMetadata {
    pub cluster_id: Option<u32>,
    pub shards: Vec<u32>,
}

fn uint32(value: u64, field: &'static str) -> Result<u32, WireError> {
    u32::try_from(value).map_err(|_| WireError::UnknownEnum { field, value })
}

impl WakuMetadata {
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        if let Some(cluster) = self.cluster_id {
            w.uint(1, u64::from(cluster));
        }
        for shard in &self.shards {
            w.uint(2, u64::from(*shard));
        }
        w.finish()
    }

    /// # Errors
    /// An oversized message, malformed fields, values past `u32`, more than [`SHARDS_MAX`]
    /// shards.
    pub fn decode(input: &[u8]) -> Result<Self, WireError> {
        check_size(input, METADATA_MAX_LEN)?;
        let mut m = Self::default();
        let push = |shards: &mut Vec<u32>, value: u64| {
            if shards.len() >= SHARDS_MAX {
                return Err(WireError::TooLarge { size: shards.len() + 1, max: SHARDS_MAX });
            }
            shards.push(uint32(value, "metadata.shards")?);
            Ok(())
        };
        let mut reader = Reader::new(input);
        while let Some((number, value)) = reader.next_field()? {
            match number {
                1 => m.cluster_id = Some(uint32(uint(value, "metadata.cluster_id")?, "metadata.cluster_id")?),
                2 => match value {
                    Value::Bytes(packed) => {
                        let mut rest = packed;
                        while !rest.is_empty() {
                            let (v, tail) = paystreams_wire::varint::decode(rest)
                                .map_err(|_| WireError::InvalidFrame("metadata.shards: bad packed varint"))?;
                            push(&mut m.shards, v)?;
                            rest = tail;
                        }
                    }
                    other => push(&mut m.shards, uint(other, "metadata.shards")?)?,
                },
                _ => {}
            }
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zigzag_round_trips_extremes() {
        for v in [0, 1, -1, 2, -2, i64::MAX, i64::MIN, 1_700_000_000_000_000_000] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
        assert_eq!(zigzag(-1), 1);
        assert_eq!(zigzag(1), 2);
    }

    fn vector(payload: &str, meta: &str) -> [u8; 32] {
        let message = WakuMessage {
            payload: hex::decode(payload).expect("hex"),
            content_topic: "/waku/2/default-content/proto".into(),
            meta: hex::decode(meta).expect("hex"),
            timestamp: Some(0x1757_89bf_a23f_8400),
            ..WakuMessage::default()
        };
        message.hash("/waku/2/default-waku/proto")
    }

    /// The four vectors of 14/WAKU2-MESSAGE "Deterministic message hashing".
    #[test]
    fn message_hash_matches_the_spec_vectors() {
        let meta64: String = (0u8..64).map(|b| format!("{b:02x}")).collect();
        let cases = [
            (
                "010203045445535405060708",
                "73757065722d736563726574",
                "64cce733fed134e83da02b02c6f689814872b1a0ac97ea56b76095c3c72bfe05",
            ),
            (
                "010203045445535405060708",
                meta64.as_str(),
                "7158b6498753313368b9af8f6e0a0a05104f68f972981da42a43bc53fb0c1b27",
            ),
            ("010203045445535405060708", "", "a2554498b31f5bcdfcbf7fa58ad1c2d45f0254f3f8110a85588ec3cf10720fd8"),
            ("", "73757065722d736563726574", "483ea950cb63f9b9d6926b262bb36194d3f40a0463ce8446228350bd44e96de4"),
        ];
        for (payload, meta, expected) in cases {
            assert_eq!(hex::encode(vector(payload, meta)), expected);
        }
    }

    #[test]
    fn mixed_filters_are_refused() {
        let mut r = StoreQueryRequest { request_id: "a".into(), ..Default::default() };
        assert!(r.validate().is_ok());
        r.content_topics.push("/t".into());
        assert!(r.validate().expect_err("refused").contains("both be set"));
        r.pubsub_topic = Some("/p".into());
        assert!(r.validate().is_ok());
        r.message_hashes.push([1; 32]);
        assert!(r.validate().expect_err("refused").contains("not both"));
    }
}
