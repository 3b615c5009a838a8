//! Lightpush v3 (`/vac/waku/lightpush/3.0.0`), the second Waku service paid by streams: a
//! pushed message is judged by the provider engine like a Store query and, when paid, stored
//! in the archive, where Store queries find it.
//!
//! Wire (19/WAKU2-LIGHTPUSH v3, with the LIP-155 eligibility extension at field 30, as Store):
//!
//! ```protobuf
//! message LightpushRequest {
//!   string request_id = 1;
//!   optional string pubsub_topic = 20;
//!   WakuMessage message = 21;
//!   optional bytes eligibility_proof = 30;   // EligibilityProof
//! }
//! message LightpushResponse {
//!   string request_id = 1;
//!   uint32 status_code = 10;
//!   optional string status_desc = 11;
//!   optional uint32 relay_peer_count = 12;
//!   optional bytes eligibility_status = 30;  // EligibilityStatus (+ termination at its field 3)
//! }
//! ```
//!
//! Decoding follows proto3 (absent scalars read as zero, unknown fields skipped) and is bounded;
//! encoders write every field they hold, in ascending order. A stream proof signs
//! [`CanonicalLightpushRequest`]: the request without field 30, Borsh, under the domain prefix
//! [`LIGHTPUSH_ELIGIBILITY_PREFIX`].
//!
//! The service ([`LightpushService`]) answers, cheapest first: the peer's token bucket (shared
//! with Store) → 429; decode and Lightpush's own rules → 400/413/420 without an eligibility
//! verdict (nothing judged, nothing charged); a proposal for another service → 400 with
//! PARAMS_REJECTED, before the engine sees it; the engine's verdict ([`Provider::handle`] with
//! the peer as requester) → on refusal 400 with the verdict at field 30 and in words in
//! `status_desc`; a stream proof of a session opened for another service → 400 PROOF_INVALID;
//! the message is inserted into the archive (deduplicated by its 14/WAKU2-MESSAGE hash); the
//! response is accounted (`finish_response`) and answered 200 `OK`.

use std::sync::{Arc, atomic::AtomicU64};

use borsh::{BorshDeserialize, BorshSerialize};
use libp2p::PeerId;
use paystreams_lez_core::domain_prefix;
use paystreams_provider::{Admission, ClaimSubmitter, SessionStore, Verdict, refusal_desc};
use paystreams_rpc::chain_view::ChainView;
use paystreams_wire::{
    ELIGIBILITY_PROOF_MAX_LEN, EligibilityStatus, RequestDigest, WireError,
    proto::{Reader, Writer, bytes, uint},
};
use tracing::{debug, warn};

use crate::{
    archive::{Archive, StoredMessage},
    net::{DEFAULT_SHARD_COUNT, WakuNetwork, autoshard_pubsub_topic},
    service::{Metrics, SessionPeers, judge_from},
    wire::{Eligibility, PAYLOAD_MAX_LEN, WakuMessage, check_size, status_desc, string},
};

/// Lightpush v3's protocol id, which is also the `service_id` its sessions are proposed for.
pub const LIGHTPUSH_SERVICE_ID: &str = "/vac/waku/lightpush/3.0.0";
/// Largest request frame: the largest payload plus 64 KiB for the rest (as Logos Delivery).
pub const LIGHTPUSH_REQUEST_MAX_LEN: usize = PAYLOAD_MAX_LEN + 64 * 1024;
/// Largest response frame: a status, its description and an eligibility verdict.
pub const LIGHTPUSH_RESPONSE_MAX_LEN: usize = 8 * 1024;
/// Domain prefix of the Lightpush eligibility (stream proof) digest, beside Store's
/// `/LEZ/v0.1/StoreEligibility/`.
pub const LIGHTPUSH_ELIGIBILITY_PREFIX: [u8; 32] = domain_prefix("/LEZ/v0.1/LightpushEligibility/");

/// Lightpush v3 status codes (the RFC's table and Logos Delivery's additions).
pub mod status {
    pub const SUCCESS: u32 = 200;
    pub const BAD_REQUEST: u32 = 400;
    pub const PAYLOAD_TOO_LARGE: u32 = 413;
    pub const INVALID_MESSAGE: u32 = 420;
    pub const UNSUPPORTED_PUBSUB_TOPIC: u32 = 421;
    pub const TOO_MANY_REQUESTS: u32 = 429;
    pub const INTERNAL_SERVER_ERROR: u32 = 500;
    pub const SERVICE_NOT_AVAILABLE: u32 = 503;

    /// The code's name, as status descriptions start with it.
    #[must_use]
    pub const fn name(code: u32) -> &'static str {
        match code {
            SUCCESS => "SUCCESS",
            BAD_REQUEST => "BAD_REQUEST",
            PAYLOAD_TOO_LARGE => "PAYLOAD_TOO_LARGE",
            INVALID_MESSAGE => "INVALID_MESSAGE",
            UNSUPPORTED_PUBSUB_TOPIC => "UNSUPPORTED_PUBSUB_TOPIC",
            TOO_MANY_REQUESTS => "TOO_MANY_REQUESTS",
            INTERNAL_SERVER_ERROR => "INTERNAL_SERVER_ERROR",
            SERVICE_NOT_AVAILABLE => "SERVICE_NOT_AVAILABLE",
            _ => "ERROR",
        }
    }
}

/// `LightpushRequest` with the eligibility proof at field 30.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct LightpushRequest {
    pub request_id: String,
    pub pubsub_topic: Option<String>,
    pub message: Option<WakuMessage>,
    pub eligibility_proof: Option<Vec<u8>>,
}

impl LightpushRequest {
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.bytes(1, self.request_id.as_bytes());
        if let Some(t) = &self.pubsub_topic {
            w.bytes(20, t.as_bytes());
        }
        if let Some(m) = &self.message {
            w.bytes(21, &m.encode());
        }
        if let Some(p) = &self.eligibility_proof {
            w.bytes(30, p);
        }
        w.finish()
    }

    /// # Errors
    /// Oversized or malformed input (an oversized payload is [`WireError::TooLarge`]).
    pub fn decode(input: &[u8]) -> Result<Self, WireError> {
        check_size(input, LIGHTPUSH_REQUEST_MAX_LEN)?;
        let mut r = Self::default();
        let mut reader = Reader::new(input);
        while let Some((number, value)) = reader.next_field()? {
            match number {
                1 => r.request_id = string(value, "request_id")?,
                20 => r.pubsub_topic = Some(string(value, "pubsub_topic")?),
                21 => r.message = Some(WakuMessage::decode(bytes(value, "message")?)?),
                30 => {
                    let p = bytes(value, "eligibility_proof")?;
                    check_size(p, ELIGIBILITY_PROOF_MAX_LEN)?;
                    r.eligibility_proof = Some(p.to_vec());
                }
                _ => {}
            }
        }
        Ok(r)
    }

    /// What a stream proof signs: the request without its eligibility proof.
    #[must_use]
    pub fn canonical(&self) -> CanonicalLightpushRequest {
        CanonicalLightpushRequest {
            request_id: self.request_id.clone(),
            pubsub_topic: self.pubsub_topic.clone(),
            message: self.message.as_ref().map(CanonicalWakuMessage::from),
        }
    }

    /// Lightpush's own rules, checked before any payment is looked at so that a malformed push
    /// costs nothing, and the message as the archive will store it.
    ///
    /// # Errors
    /// The status code and the text for `status_desc`.
    pub fn validate(&self) -> Result<StoredMessage, (u32, String)> {
        if self.request_id.is_empty() {
            return Err((status::BAD_REQUEST, "request_id must be set".into()));
        }
        let Some(pubsub_topic) = self.pubsub_topic.clone().filter(|t| !t.is_empty()) else {
            return Err((
                status::BAD_REQUEST,
                "pubsub_topic must be set, or the content topic must be /APPLICATION/VERSION/NAME/ENCODING on a shard this node serves (autosharding)"
                    .into(),
            ));
        };
        let Some(message) = self.message.clone() else {
            return Err((status::BAD_REQUEST, "message must be set".into()));
        };
        if message.ephemeral {
            return Err((
                status::INVALID_MESSAGE,
                "ephemeral messages are not accepted: this provider stores what is pushed (it does not relay)".into(),
            ));
        }
        StoredMessage::new(pubsub_topic, message).map_err(|why| (status::INVALID_MESSAGE, why))
    }
}

/// The message as a stream proof signs it (every field of [`WakuMessage`], in its order).
#[derive(Clone, PartialEq, Eq, Debug, Default, BorshSerialize, BorshDeserialize)]
pub struct CanonicalWakuMessage {
    pub payload: Vec<u8>,
    pub content_topic: String,
    pub version: u32,
    pub timestamp: Option<i64>,
    pub meta: Vec<u8>,
    pub ephemeral: bool,
}

impl From<&WakuMessage> for CanonicalWakuMessage {
    fn from(m: &WakuMessage) -> Self {
        Self {
            payload: m.payload.clone(),
            content_topic: m.content_topic.clone(),
            version: m.version,
            timestamp: m.timestamp,
            meta: m.meta.clone(),
            ephemeral: m.ephemeral,
        }
    }
}

/// Lightpush v3's canonical request (the `LightpushRequest` without its eligibility proof),
/// Borsh in the protobuf's field order with presence-byte optionals, as Store's
/// `CanonicalStoreRequest`.
#[derive(Clone, PartialEq, Eq, Debug, Default, BorshSerialize, BorshDeserialize)]
pub struct CanonicalLightpushRequest {
    pub request_id: String,
    pub pubsub_topic: Option<String>,
    pub message: Option<CanonicalWakuMessage>,
}

impl RequestDigest for CanonicalLightpushRequest {
    fn domain_prefix(&self) -> [u8; 32] {
        LIGHTPUSH_ELIGIBILITY_PREFIX
    }

    fn canonical_body(&self) -> Vec<u8> {
        borsh::to_vec(self).unwrap_or_default()
    }
}

/// `LightpushResponse` with the eligibility status at field 30.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct LightpushResponse {
    pub request_id: String,
    pub status_code: u32,
    pub status_desc: Option<String>,
    pub relay_peer_count: Option<u32>,
    pub eligibility: Option<Eligibility>,
}

impl LightpushResponse {
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.bytes(1, self.request_id.as_bytes()).uint(10, u64::from(self.status_code));
        if let Some(desc) = &self.status_desc {
            w.bytes(11, desc.as_bytes());
        }
        if let Some(count) = self.relay_peer_count {
            w.uint(12, u64::from(count));
        }
        if let Some(e) = &self.eligibility {
            w.bytes(30, &e.encode());
        }
        w.finish()
    }

    /// # Errors
    /// Oversized or malformed input.
    pub fn decode(input: &[u8]) -> Result<Self, WireError> {
        check_size(input, LIGHTPUSH_RESPONSE_MAX_LEN)?;
        let mut r = Self::default();
        let mut reader = Reader::new(input);
        let u32_of =
            |v: u64, field: &'static str| u32::try_from(v).map_err(|_| WireError::UnknownEnum { field, value: v });
        while let Some((number, value)) = reader.next_field()? {
            match number {
                1 => r.request_id = string(value, "request_id")?,
                10 => r.status_code = u32_of(uint(value, "status_code")?, "status_code")?,
                11 => r.status_desc = Some(status_desc(value)?),
                12 => r.relay_peer_count = Some(u32_of(uint(value, "relay_peer_count")?, "relay_peer_count")?),
                30 => r.eligibility = Some(Eligibility::decode(bytes(value, "eligibility_status")?)?),
                _ => {}
            }
        }
        Ok(r)
    }

    /// Whether the push was accepted (200).
    #[must_use]
    pub const fn is_success(&self) -> bool {
        self.status_code == status::SUCCESS
    }

    /// An answer without an eligibility verdict: `CODE_NAME: why`.
    #[must_use]
    pub fn plain(request_id: String, code: u32, why: &str) -> Self {
        Self {
            request_id,
            status_code: code,
            status_desc: Some(format!("{}: {why}", status::name(code))),
            ..Self::default()
        }
    }

    /// The refusal for an eligibility verdict: 400, the verdict in words in `status_desc` (for
    /// clients that ignore field 30) and as the spec defines it at field 30.
    #[must_use]
    pub fn refused(request_id: String, verdict: Verdict) -> Self {
        Self {
            request_id,
            status_code: status::BAD_REQUEST,
            status_desc: Some(refusal_desc(&verdict)),
            relay_peer_count: None,
            eligibility: Some(Eligibility { status: verdict.status, termination: verdict.termination }),
        }
    }
}

/// The request id of an encoded request, when it decodes (for 429 answers).
fn request_id_of(body: &[u8]) -> String {
    LightpushRequest::decode(body).map(|r| r.request_id).unwrap_or_default()
}

/// The 429 answer to a push that cannot be taken now; `desc` (`TOO_MANY_REQUESTS: …`, e.g.
/// [`paystreams_provider::admission::RateLimited::desc`]) says when to retry.
#[must_use]
pub fn too_many(body: &[u8], desc: &str) -> Vec<u8> {
    LightpushResponse {
        request_id: request_id_of(body),
        status_code: status::TOO_MANY_REQUESTS,
        status_desc: Some(desc.to_owned()),
        ..LightpushResponse::default()
    }
    .encode()
}

/// The request as it is validated and stored: without a pubsub topic, the one Waku
/// autosharding assigns its content topic in `network`'s cluster (over
/// [`DEFAULT_SHARD_COUNT`] shards, js-waku's default), when `network` serves that shard. A
/// stream proof still signs the request as sent ([`LightpushRequest::canonical`]).
#[must_use]
pub fn with_pubsub_topic(request: &LightpushRequest, network: &WakuNetwork) -> LightpushRequest {
    let mut request = request.clone();
    if request.pubsub_topic.is_none()
        && let Some(message) = &request.message
        && let Ok(topic) = autoshard_pubsub_topic(&message.content_topic, network.cluster_id, DEFAULT_SHARD_COUNT)
        && network.shards.iter().any(|shard| topic.ends_with(&format!("/{shard}")))
    {
        request.pubsub_topic = Some(topic);
    }
    request
}

/// The answer of a node that takes no pushes (503, `why`).
#[must_use]
pub fn not_served(body: &[u8], why: &str) -> Vec<u8> {
    LightpushResponse::plain(request_id_of(body), status::SERVICE_NOT_AVAILABLE, why).encode()
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct LightpushMetrics {
    pub pushes: AtomicU64,
    /// Pushes served and paid.
    pub stored: AtomicU64,
    /// Paid pushes whose message was already in the archive.
    pub duplicates: AtomicU64,
    pub bad_requests: AtomicU64,
    /// Pushes refused by the eligibility verdict (or for the session's service).
    pub refused: AtomicU64,
    pub archive_errors: AtomicU64,
}

impl LightpushMetrics {
    /// Prometheus text exposition.
    #[must_use]
    pub fn render(&self) -> String {
        let get = |c: &AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        [
            ("pushes", &self.pushes),
            ("stored", &self.stored),
            ("duplicates", &self.duplicates),
            ("bad_requests", &self.bad_requests),
            ("refused", &self.refused),
            ("archive_errors", &self.archive_errors),
        ]
        .iter()
        .map(|(name, counter)| {
            format!(
                "# TYPE paystreams_lightpush_{name}_total counter\npaystreams_lightpush_{name}_total {}\n",
                get(counter)
            )
        })
        .collect()
    }
}

/// The paid Lightpush service over one archive (the Store service's), run through the shared
/// engine path ([`Admission`]) the caller passes: the Store service's, so one peer's token
/// bucket covers its queries and its pushes.
#[derive(Debug)]
pub struct LightpushService {
    archive: Arc<dyn Archive>,
    metrics: Arc<Metrics>,
    session_peers: Arc<SessionPeers>,
    /// The node's cluster and shards: where a push without a pubsub topic is stored.
    network: WakuNetwork,
}

impl LightpushService {
    /// A service on js-waku's default network (cluster 1, shards 0 to 7).
    #[must_use]
    pub fn new(archive: Arc<dyn Archive>, metrics: Arc<Metrics>, session_peers: Arc<SessionPeers>) -> Self {
        Self { archive, metrics, session_peers, network: WakuNetwork::default() }
    }

    /// Serves `network`: a push without a pubsub topic is stored under the topic autosharding
    /// gives its content topic in this cluster.
    #[must_use]
    pub fn with_network(mut self, network: WakuNetwork) -> Self {
        self.network = network;
        self
    }

    /// Answers one encoded `LightpushRequest` from `peer` with an encoded `LightpushResponse`
    /// (the peer's rate, step 1 of `admission`, is checked by the caller). Without a peer,
    /// proofs are refused.
    pub async fn push_from<C, S, K>(
        &self,
        admission: &Admission<C, S, K>,
        peer: Option<&PeerId>,
        body: &[u8],
    ) -> Vec<u8>
    where
        C: ChainView + 'static,
        S: SessionStore + 'static,
        K: ClaimSubmitter + 'static,
    {
        let m = &self.metrics.lightpush;
        Metrics::bump(&m.pushes, 1);
        let (response, encoded) = self.push_response(admission, peer, body).await;
        match response.status_code {
            status::SUCCESS => {}
            status::BAD_REQUEST | status::PAYLOAD_TOO_LARGE | status::INVALID_MESSAGE
                if response.eligibility.is_none() =>
            {
                Metrics::bump(&m.bad_requests, 1);
            }
            status::BAD_REQUEST => Metrics::bump(&m.refused, 1),
            _ => {}
        }
        encoded.unwrap_or_else(|| response.encode())
    }

    async fn push_response<C, S, K>(
        &self,
        admission: &Admission<C, S, K>,
        peer: Option<&PeerId>,
        body: &[u8],
    ) -> (LightpushResponse, Option<Vec<u8>>)
    where
        C: ChainView + 'static,
        S: SessionStore + 'static,
        K: ClaimSubmitter + 'static,
    {
        let request = match LightpushRequest::decode(body) {
            Ok(r) => r,
            Err(e @ WireError::TooLarge { .. }) => {
                let why = format!("{e}; payloads are at most {PAYLOAD_MAX_LEN} bytes");
                return (LightpushResponse::plain(String::new(), status::PAYLOAD_TOO_LARGE, &why), None);
            }
            Err(e) => {
                let why = format!("malformed LightpushRequest: {e}");
                return (LightpushResponse::plain(String::new(), status::BAD_REQUEST, &why), None);
            }
        };
        let stored = match with_pubsub_topic(&request, &self.network).validate() {
            Ok(stored) => stored,
            Err((code, why)) => return (LightpushResponse::plain(request.request_id, code, &why), None),
        };
        let digest = request.canonical().digest();
        let proof = request.eligibility_proof.as_deref();
        let verdict = judge_from(admission, &self.session_peers, peer, LIGHTPUSH_SERVICE_ID, &digest, proof).await;
        let Some(grant) = verdict.grant else {
            debug!(code = verdict.status.status_code, desc = %verdict.status.status_desc, "push refused");
            return (LightpushResponse::refused(request.request_id, verdict), None);
        };
        let archive = Arc::clone(&self.archive);
        let new = match tokio::task::spawn_blocking(move || archive.insert(std::slice::from_ref(&stored))).await {
            Ok(Ok(new)) => new,
            Ok(Err(e)) => {
                Metrics::bump(&self.metrics.lightpush.archive_errors, 1);
                warn!(error = %e, "archive insert failed");
                return (unavailable(request.request_id, "the archive is unavailable; retry shortly"), None);
            }
            Err(e) => {
                Metrics::bump(&self.metrics.lightpush.archive_errors, 1);
                warn!(error = %e, "archive task failed");
                return (unavailable(request.request_id, "internal error"), None);
            }
        };
        let response = LightpushResponse {
            request_id: request.request_id.clone(),
            status_code: status::SUCCESS,
            status_desc: Some(if new == 0 { "OK (already stored)".into() } else { "OK".into() }),
            relay_peer_count: None,
            eligibility: Some(Eligibility { status: EligibilityStatus::ok(), termination: verdict.termination }),
        };
        let encoded = response.encode();
        let len = u64::try_from(encoded.len()).unwrap_or(u64::MAX);
        match admission.finish(&grant, len).await {
            Ok(Ok(())) => {
                Metrics::bump(&self.metrics.lightpush.stored, 1);
                if new == 0 {
                    Metrics::bump(&self.metrics.lightpush.duplicates, 1);
                }
                (response, Some(encoded))
            }
            Ok(Err(refused)) => (LightpushResponse::refused(request.request_id, refused), None),
            Err(e) => {
                warn!(error = %e, "engine failed accounting a push");
                (unavailable(request.request_id, "internal error"), None)
            }
        }
    }
}

fn unavailable(request_id: String, why: &str) -> LightpushResponse {
    LightpushResponse::plain(request_id, status::SERVICE_NOT_AVAILABLE, why)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_is_the_domain_padded_with_nuls() {
        let text = b"/LEZ/v0.1/LightpushEligibility/";
        assert_eq!(&LIGHTPUSH_ELIGIBILITY_PREFIX[..text.len()], text);
        assert!(LIGHTPUSH_ELIGIBILITY_PREFIX[text.len()..].iter().all(|b| *b == 0));
    }

    #[test]
    fn a_missing_pubsub_topic_is_derived_by_autosharding_on_served_shards() {
        let message = WakuMessage {
            payload: b"hi".to_vec(),
            content_topic: "/app/1/chat/proto".into(),
            timestamp: Some(1),
            ..WakuMessage::default()
        };
        let request =
            LightpushRequest { request_id: "r".into(), message: Some(message.clone()), ..LightpushRequest::default() };
        let expected = autoshard_pubsub_topic("/app/1/chat/proto", 1, DEFAULT_SHARD_COUNT).expect("topic");
        let derived = with_pubsub_topic(&request, &WakuNetwork::default());
        assert_eq!(derived.pubsub_topic.as_deref(), Some(expected.as_str()));
        assert_eq!(derived.validate().expect("valid").pubsub_topic, expected);
        // The signed request is the one sent: deriving changes what is stored, not the digest.
        assert_eq!(request.canonical().pubsub_topic, None);
        // A node that does not serve the shard derives nothing, and the push is refused.
        let elsewhere = WakuNetwork { cluster_id: 1, shards: vec![] };
        assert_eq!(with_pubsub_topic(&request, &elsewhere).validate().expect_err("refused").0, status::BAD_REQUEST);
        // A topic given is kept; a content topic autosharding cannot read derives nothing.
        let given = LightpushRequest { pubsub_topic: Some("/waku/2/rs/9/9".into()), ..request.clone() };
        assert_eq!(with_pubsub_topic(&given, &WakuNetwork::default()), given);
        let odd = LightpushRequest {
            message: Some(WakuMessage { content_topic: "not-a-topic".into(), ..message }),
            ..request
        };
        assert_eq!(with_pubsub_topic(&odd, &WakuNetwork::default()).pubsub_topic, None);
    }

    #[test]
    fn validation_names_what_is_missing() {
        let message = WakuMessage {
            payload: b"hi".to_vec(),
            content_topic: "/app/1/chat/proto".into(),
            timestamp: Some(1),
            ..WakuMessage::default()
        };
        let mut r = LightpushRequest {
            request_id: "r".into(),
            pubsub_topic: Some("/waku/2/rs/0/0".into()),
            message: Some(message),
            eligibility_proof: None,
        };
        assert!(r.validate().is_ok());
        r.pubsub_topic = None;
        assert_eq!(r.validate().expect_err("refused").0, status::BAD_REQUEST);
        r.pubsub_topic = Some("/waku/2/rs/0/0".into());
        if let Some(m) = r.message.as_mut() {
            m.timestamp = None;
        }
        let (code, why) = r.validate().expect_err("refused");
        assert_eq!(code, status::INVALID_MESSAGE);
        assert!(why.contains("timestamp"), "{why}");
        if let Some(m) = r.message.as_mut() {
            m.timestamp = Some(1);
            m.content_topic.clear();
        }
        assert_eq!(r.validate().expect_err("refused").0, status::INVALID_MESSAGE);
        r.message = None;
        assert_eq!(r.validate().expect_err("refused").0, status::BAD_REQUEST);
    }
}
