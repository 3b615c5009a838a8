//! The provider's Store service: every query goes through the provider engine before the
//! archive is read.
//!
//! Order of work per query (cheapest first, and nothing charged for a malformed query), on the
//! engine path every paid service shares ([`Admission`]; steps 1 and 3 are Store's own):
//! 0. the requesting peer's token bucket ([`Admission::rate`]) → 429 `TOO_MANY_REQUESTS` saying
//!    when to retry, before the request is checked or the engine asked;
//! 1. decode (bounded) and check Store's own rules → 400 without an eligibility verdict;
//! 2. the engine judges the `EligibilityProof` against the canonical request digest
//!    ([`Admission::judge`]) → on
//!    refusal 400 `BAD_REQUEST`, no messages, the verdict at field 30 (with a termination if any);
//! 3. the archive page is read; a proposal-backed first response is trimmed to the
//!    first-response cap (fewer messages, with a cursor to continue) rather than refused. For a
//!    requester in good standing ([`Admission::in_good_standing`]: its last proof for Store was
//!    granted) the read starts as soon as the request is decoded and runs beside step 2, on the
//!    blocking pool while the engine verifies; the page is still released only on a grant, and a
//!    refused request's read is discarded unseen (counted in
//!    `paystreams_store_speculative_reads_discarded_total`);
//! 4. the engine accounts the response size ([`Admission::finish`]); then 200 with `{0, "ok"}`.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use libp2p::PeerId;
use paystreams_provider::{
    Admission, ClaimSubmitter, Provider, SessionId, SessionStore, Verdict, refusal_desc, response_budget,
};
use paystreams_rpc::{chain_view::ChainView, clock::wall_clock_ms};
use paystreams_wire::{EligibilityStatus, ReceiptAck, ReceiptStatus, RequestDigest as _};
use tracing::{debug, warn};

use crate::{
    archive::{Archive, ArchiveError, ArchivePage, ArchiveQuery},
    lightpush::{self, LightpushMetrics, LightpushService},
    net::{Inbound, Proto},
    wire::{Eligibility, MessageKeyValue, StoreQueryRequest, StoreQueryResponse, status},
};

/// Page size when the request sets none (Logos Delivery's default).
pub const PAGE_SIZE_DEFAULT: u32 = 20;
/// Largest page served, whatever the request asks (Logos Delivery's maximum).
pub const PAGE_SIZE_MAX: u32 = 100;

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    pub queries: AtomicU64,
    pub served: AtomicU64,
    pub bad_requests: AtomicU64,
    /// Refusals by eligibility code: params rejected, proof invalid, stream not active.
    pub refused: [AtomicU64; 3],
    pub messages_served: AtomicU64,
    pub bytes_served: AtomicU64,
    pub first_responses_trimmed: AtomicU64,
    pub archive_errors: AtomicU64,
    pub policy_requests: AtomicU64,
    /// Queries answered 429 because the provider was at capacity.
    pub busy: AtomicU64,
    /// Requests answered 429 because their peer exceeded its rate.
    pub rate_limited: AtomicU64,
    /// Standalone terminations delivered to a connected user.
    pub terminations_pushed: AtomicU64,
    /// Archive reads started beside the verdict (requesters in good standing).
    pub speculative_reads: AtomicU64,
    /// Of those, reads whose request was refused: the page was dropped unseen.
    pub speculative_reads_discarded: AtomicU64,
    /// Time answering queries spent in each [`Stage`], in nanoseconds, summed over queries.
    pub stage_nanos: [AtomicU64; Stage::ALL.len()],
    /// The Lightpush service's counters.
    pub lightpush: LightpushMetrics,
}

/// Where a Store query's answer spends its time (each query adds to [`Metrics::stage_nanos`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Stage {
    /// Decoding and checking the request, and its canonical digest.
    Decode = 0,
    /// Waiting for the engine's verdict (nothing on a free service).
    Judge = 1,
    /// Waiting for the archive page after the verdict (the whole read when it started only
    /// then; what is left of it when it ran beside the verdict).
    Archive = 2,
    /// Building, encoding and accounting the response.
    Respond = 3,
}

impl Stage {
    pub const ALL: [Self; 4] = [Self::Decode, Self::Judge, Self::Archive, Self::Respond];

    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Decode => "decode",
            Self::Judge => "judge",
            Self::Archive => "archive",
            Self::Respond => "respond",
        }
    }
}

/// Times consecutive stages of one answer into [`Metrics::stage_nanos`].
struct StageClock<'a> {
    metrics: &'a Metrics,
    last: Instant,
}

impl<'a> StageClock<'a> {
    fn start(metrics: &'a Metrics) -> Self {
        Self { metrics, last: Instant::now() }
    }

    /// Ends `stage` now (the next stage starts).
    fn lap(&mut self, stage: Stage) {
        let now = Instant::now();
        let nanos = u64::try_from(now.saturating_duration_since(self.last).as_nanos()).unwrap_or(u64::MAX);
        if let Some(counter) = self.metrics.stage_nanos.get(stage as usize) {
            Metrics::bump(counter, nanos);
        }
        self.last = now;
    }
}

impl Metrics {
    pub(crate) fn bump(counter: &AtomicU64, by: u64) {
        counter.fetch_add(by, Ordering::Relaxed);
    }

    /// Seconds spent in `stage` so far, over all queries.
    #[must_use]
    pub fn stage_seconds(&self, stage: Stage) -> f64 {
        self.stage_nanos
            .get(stage as usize)
            .map_or(0.0, |c| Duration::from_nanos(c.load(Ordering::Relaxed)).as_secs_f64())
    }

    /// Prometheus text exposition.
    #[must_use]
    pub fn render(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let [params, proof, inactive] = &self.refused;
        let mut text = format!(
            "# TYPE paystreams_store_queries_total counter\npaystreams_store_queries_total {}\n\
             # TYPE paystreams_store_served_total counter\npaystreams_store_served_total {}\n\
             # TYPE paystreams_store_bad_requests_total counter\npaystreams_store_bad_requests_total {}\n\
             # TYPE paystreams_store_refused_total counter\n\
             paystreams_store_refused_total{{status=\"params_rejected\"}} {}\n\
             paystreams_store_refused_total{{status=\"proof_invalid\"}} {}\n\
             paystreams_store_refused_total{{status=\"stream_not_active\"}} {}\n\
             # TYPE paystreams_store_messages_served_total counter\npaystreams_store_messages_served_total {}\n\
             # TYPE paystreams_store_bytes_served_total counter\npaystreams_store_bytes_served_total {}\n\
             # TYPE paystreams_store_first_responses_trimmed_total counter\npaystreams_store_first_responses_trimmed_total {}\n\
             # TYPE paystreams_store_archive_errors_total counter\npaystreams_store_archive_errors_total {}\n\
             # TYPE paystreams_store_policy_requests_total counter\npaystreams_store_policy_requests_total {}\n\
             # TYPE paystreams_store_busy_total counter\npaystreams_store_busy_total {}\n\
             # TYPE paystreams_store_rate_limited_total counter\npaystreams_store_rate_limited_total {}\n\
             # TYPE paystreams_store_terminations_pushed_total counter\npaystreams_store_terminations_pushed_total {}\n\
             # TYPE paystreams_store_speculative_reads_total counter\npaystreams_store_speculative_reads_total {}\n\
             # TYPE paystreams_store_speculative_reads_discarded_total counter\npaystreams_store_speculative_reads_discarded_total {}\n\
             # TYPE paystreams_store_query_stage_seconds_total counter\n",
            get(&self.queries),
            get(&self.served),
            get(&self.bad_requests),
            get(params),
            get(proof),
            get(inactive),
            get(&self.messages_served),
            get(&self.bytes_served),
            get(&self.first_responses_trimmed),
            get(&self.archive_errors),
            get(&self.policy_requests),
            get(&self.busy),
            get(&self.rate_limited),
            get(&self.terminations_pushed),
            get(&self.speculative_reads),
            get(&self.speculative_reads_discarded),
        );
        for stage in Stage::ALL {
            text.push_str(&format!(
                "paystreams_store_query_stage_seconds_total{{stage=\"{}\"}} {:.9}\n",
                stage.name(),
                self.stage_seconds(stage)
            ));
        }
        text.push_str(&self.lightpush.render());
        text
    }
}

/// Per-peer limits are the engine path's ([`paystreams_provider::admission`]), keyed by the
/// peer id's bytes.
pub use paystreams_provider::admission::{LIMITED_PEERS_MAX, PeerLimit, PeerLimiter};

/// Sessions remembered by [`SessionPeers`]; beyond it the oldest are forgotten (their users
/// still get terminations in their next response).
pub const SESSION_PEERS_MAX: usize = 100_000;
/// Peers remembered per session (a user may reconnect from a new identity).
pub const PEERS_PER_SESSION: usize = 4;

/// Which peers used each session, newest last: where a standalone termination is pushed.
#[derive(Debug, Default)]
pub struct SessionPeers {
    inner: Mutex<SessionPeersInner>,
}

#[derive(Debug, Default)]
struct SessionPeersInner {
    peers: HashMap<SessionId, Vec<PeerId>>,
    order: VecDeque<SessionId>,
}

impl SessionPeers {
    /// Records that `peer` sent a request judged for `session`.
    pub fn record(&self, session: SessionId, peer: PeerId) {
        let Ok(mut inner) = self.inner.lock() else { return };
        let inner = &mut *inner;
        if let Some(peers) = inner.peers.get_mut(&session) {
            if peers.last() != Some(&peer) {
                peers.retain(|p| *p != peer);
                if peers.len() >= PEERS_PER_SESSION {
                    peers.remove(0);
                }
                peers.push(peer);
            }
            return;
        }
        while inner.peers.len() >= SESSION_PEERS_MAX {
            let Some(oldest) = inner.order.pop_front() else { break };
            inner.peers.remove(&oldest);
        }
        inner.peers.insert(session, vec![peer]);
        inner.order.push_back(session);
    }

    /// The peers that used `session`, newest last.
    #[must_use]
    pub fn peers(&self, session: &SessionId) -> Vec<PeerId> {
        self.inner.lock().ok().and_then(|i| i.peers.get(session).cloned()).unwrap_or_default()
    }

    /// Every session with a known peer.
    #[must_use]
    pub fn sessions(&self) -> Vec<SessionId> {
        self.inner.lock().map(|i| i.order.iter().copied().collect()).unwrap_or_default()
    }
}

/// The engine's verdict (step 3 of `admission`) on a request from `peer`, whose peer id is the
/// requester (without a peer, proofs are refused), recording which peer used the session the
/// verdict names (where terminations are pushed). `service_id`: the service the request is
/// for; only a session proposed for it pays.
pub(crate) async fn judge_from<C, S, K>(
    admission: &Admission<C, S, K>,
    session_peers: &SessionPeers,
    peer: Option<&PeerId>,
    service_id: &str,
    digest: &[u8; 32],
    proof: Option<&[u8]>,
) -> Verdict
where
    C: ChainView + 'static,
    S: SessionStore + 'static,
    K: ClaimSubmitter + 'static,
{
    let requester = peer.map(|p| p.to_bytes());
    let requester = requester.as_deref().unwrap_or_default();
    let verdict = admission.judge(requester, service_id.as_bytes(), digest, proof, wall_clock_ms()).await;
    if let (Some(peer), Some(session)) = (peer, verdict.session) {
        session_peers.record(session, *peer);
    }
    verdict
}

/// A refused receipt (`ReceiptAck` with `status`), encoded.
fn receipt_refused(status: ReceiptStatus, desc: &str) -> Vec<u8> {
    ReceiptAck::new(status, desc, 0).encode()
}

/// The Store service over one provider engine and one archive.
pub struct StoreService<C, S, K> {
    /// The engine path: per-peer limit, verdict, response accounting.
    admission: Admission<C, S, K>,
    archive: Arc<dyn Archive>,
    advert: Vec<u8>,
    metrics: Arc<Metrics>,
    session_peers: Arc<SessionPeers>,
    lightpush: LightpushService,
}

impl<C, S, K> std::fmt::Debug for StoreService<C, S, K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreService").field("archive", &self.archive).finish_non_exhaustive()
    }
}

fn bad_request(request_id: String, why: &str) -> StoreQueryResponse {
    StoreQueryResponse {
        request_id,
        status_code: Some(status::BAD_REQUEST),
        status_desc: Some(format!("BAD_REQUEST: {why}")),
        ..StoreQueryResponse::default()
    }
}

fn refusal(request_id: String, verdict: Verdict) -> StoreQueryResponse {
    StoreQueryResponse {
        request_id,
        status_code: Some(status::BAD_REQUEST),
        // Store's `status_desc` carries the verdict in words for clients that read only Store's
        // own fields; field 30 carries the same verdict as the spec defines it.
        status_desc: Some(refusal_desc(&verdict)),
        eligibility: Some(Eligibility { status: verdict.status, termination: verdict.termination }),
        ..StoreQueryResponse::default()
    }
}

/// Decodes a request and checks Store's own rules; the error is the response to send.
fn decode_valid(body: &[u8], metrics: &Metrics) -> Result<StoreQueryRequest, Box<StoreQueryResponse>> {
    let request = StoreQueryRequest::decode(body).map_err(|e| {
        Metrics::bump(&metrics.bad_requests, 1);
        Box::new(bad_request(String::new(), &format!("malformed StoreQueryRequest: {e}")))
    })?;
    if let Err(why) = request.validate() {
        Metrics::bump(&metrics.bad_requests, 1);
        return Err(Box::new(bad_request(request.request_id, &why)));
    }
    Ok(request)
}

fn unavailable(request_id: String, desc: &str) -> StoreQueryResponse {
    StoreQueryResponse {
        request_id,
        status_code: Some(status::SERVICE_UNAVAILABLE),
        status_desc: Some(format!("SERVICE_UNAVAILABLE: {desc}")),
        ..StoreQueryResponse::default()
    }
}

/// A read of an archive page on the blocking pool (see [`page_of`] for its answer).
type PageRead = tokio::task::JoinHandle<Result<ArchivePage, ArchiveError>>;

/// Starts reading the request's page off the async runtime. Dropping the handle discards the
/// page (the read itself runs to its end).
fn spawn_read(archive: &Arc<dyn Archive>, request: &StoreQueryRequest) -> PageRead {
    let query = ArchiveQuery {
        pubsub_topic: request.pubsub_topic.clone(),
        content_topics: request.content_topics.clone(),
        time_start: request.time_start,
        time_end: request.time_end,
        message_hashes: request.message_hashes.clone(),
        cursor: request.pagination_cursor,
        forward: request.pagination_forward,
        limit: request
            .pagination_limit
            .map_or(PAGE_SIZE_DEFAULT, |l| u32::try_from(l).unwrap_or(u32::MAX))
            .clamp(1, PAGE_SIZE_MAX),
    };
    let archive = Arc::clone(archive);
    tokio::task::spawn_blocking(move || archive.query(&query))
}

/// Reads the request's page off the async runtime; the error is the response to send.
async fn read_page(
    archive: &Arc<dyn Archive>,
    request: &StoreQueryRequest,
    metrics: &Metrics,
) -> Result<ArchivePage, Box<StoreQueryResponse>> {
    page_of(spawn_read(archive, request), request, metrics).await
}

/// The page `read` finds, or the response to send instead (counted in `metrics`). Only a
/// request being answered with its page gets here: a discarded read counts nowhere else.
async fn page_of(
    read: PageRead,
    request: &StoreQueryRequest,
    metrics: &Metrics,
) -> Result<ArchivePage, Box<StoreQueryResponse>> {
    match read.await {
        Ok(Ok(page)) => Ok(page),
        Ok(Err(ArchiveError::CursorNotFound)) => {
            Metrics::bump(&metrics.bad_requests, 1);
            Err(Box::new(bad_request(request.request_id.clone(), "pagination_cursor does not name a stored message")))
        }
        Ok(Err(e)) => {
            Metrics::bump(&metrics.archive_errors, 1);
            warn!(error = %e, "archive query failed");
            Err(Box::new(unavailable(request.request_id.clone(), "the archive is unavailable; retry shortly")))
        }
        Err(e) => {
            Metrics::bump(&metrics.archive_errors, 1);
            warn!(error = %e, "archive task failed");
            Err(Box::new(unavailable(request.request_id.clone(), "internal error")))
        }
    }
}

/// A plain Store v3 service without payment: every well-formed query is served and responses
/// carry no eligibility status. The baseline the paid service is measured against, and a
/// Store node for archives that are free to read.
#[derive(Debug)]
pub struct FreeStoreService {
    archive: Arc<dyn Archive>,
    metrics: Arc<Metrics>,
}

impl FreeStoreService {
    #[must_use]
    pub fn new(archive: Arc<dyn Archive>, metrics: Arc<Metrics>) -> Self {
        Self { archive, metrics }
    }

    /// Answers one encoded `StoreQueryRequest`.
    pub async fn query(&self, body: &[u8]) -> Vec<u8> {
        Metrics::bump(&self.metrics.queries, 1);
        let mut clock = StageClock::start(&self.metrics);
        let decoded = decode_valid(body, &self.metrics);
        clock.lap(Stage::Decode);
        let response = match decoded {
            Err(response) => *response,
            Ok(request) => {
                let page = read_page(&self.archive, &request, &self.metrics).await;
                clock.lap(Stage::Archive);
                match page {
                    Err(response) => *response,
                    Ok(page) => {
                        let (mut response, _) = page_response(&request, page, None, None);
                        response.eligibility = None;
                        Metrics::bump(&self.metrics.served, 1);
                        Metrics::bump(
                            &self.metrics.messages_served,
                            u64::try_from(response.messages.len()).unwrap_or(0),
                        );
                        response
                    }
                }
            }
        };
        let bytes = response.encode();
        clock.lap(Stage::Respond);
        bytes
    }
}

impl Inbound for FreeStoreService {
    async fn answer(&self, proto: Proto, _peer: PeerId, request: Vec<u8>) -> Vec<u8> {
        match proto {
            // A free node advertises no payment policy, takes no receipts, is sent no terminations.
            Proto::Policy | Proto::Termination => Vec::new(),
            Proto::Receipt => {
                receipt_refused(ReceiptStatus::Unsupported, "receipts not supported: this Store node is free to read")
            }
            Proto::Store => self.query(&request).await,
            Proto::Lightpush => lightpush::not_served(&request, "this Store node is free to read and takes no pushes"),
        }
    }

    fn busy(&self, proto: Proto, request: &[u8]) -> Vec<u8> {
        if proto == Proto::Lightpush {
            return lightpush::too_many(request, "TOO_MANY_REQUESTS: at capacity; retry shortly");
        }
        Metrics::bump(&self.metrics.busy, 1);
        StoreQueryResponse {
            request_id: StoreQueryRequest::decode(request).map(|r| r.request_id).unwrap_or_default(),
            status_code: Some(status::TOO_MANY_REQUESTS),
            status_desc: Some("TOO_MANY_REQUESTS: at capacity; retry shortly".into()),
            ..StoreQueryResponse::default()
        }
        .encode()
    }
}

/// Builds the success response for a page; `trim_to` trims it to at most that many encoded bytes
/// (dropping entries from the end the next page continues from).
fn page_response(
    request: &StoreQueryRequest,
    page: ArchivePage,
    eligibility: Option<Eligibility>,
    trim_to: Option<u64>,
) -> (StoreQueryResponse, bool) {
    let entries: Vec<MessageKeyValue> = page
        .messages
        .into_iter()
        .map(|m| MessageKeyValue {
            message_hash: m.hash,
            message: request.include_data.then_some((m.message, m.pubsub_topic)),
        })
        .collect();
    let mut response = StoreQueryResponse {
        request_id: request.request_id.clone(),
        status_code: Some(status::OK),
        status_desc: Some("OK".into()),
        messages: entries,
        eligibility,
        pagination_cursor: None,
    };
    let mut has_more = page.has_more;
    let set_cursor = |response: &mut StoreQueryResponse, has_more: bool| {
        response.pagination_cursor = if has_more {
            let edge = if request.pagination_forward { response.messages.last() } else { response.messages.first() };
            edge.map(|m| m.message_hash).or(request.pagination_cursor)
        } else {
            None
        };
    };
    set_cursor(&mut response, has_more);
    let mut trimmed = false;
    if let Some(cap) = trim_to {
        let mut size = u64::try_from(response.encode().len()).unwrap_or(u64::MAX);
        while size > cap && response.messages.len() > 1 {
            // Forward pages continue after their last entry, backward pages before their first:
            // drop from the side the next page will fetch again.
            if request.pagination_forward {
                response.messages.pop();
            } else {
                response.messages.remove(0);
            }
            has_more = true;
            trimmed = true;
            set_cursor(&mut response, has_more);
            size = u64::try_from(response.encode().len()).unwrap_or(u64::MAX);
        }
    }
    (response, trimmed)
}

impl<C, S, K> StoreService<C, S, K>
where
    C: ChainView + 'static,
    S: SessionStore + 'static,
    K: ClaimSubmitter + 'static,
{
    #[must_use]
    pub fn new(provider: Arc<Provider<C, S, K>>, archive: Arc<dyn Archive>, metrics: Arc<Metrics>) -> Self {
        let advert = provider.policy().advert().encode();
        let session_peers = Arc::new(SessionPeers::default());
        let lightpush = LightpushService::new(Arc::clone(&archive), Arc::clone(&metrics), Arc::clone(&session_peers));
        Self {
            admission: Admission::new(provider, PeerLimit::default()),
            archive,
            advert,
            metrics,
            session_peers,
            lightpush,
        }
    }

    /// Limits each peer to `limit`.
    #[must_use]
    pub fn with_peer_limit(mut self, limit: PeerLimit) -> Self {
        self.admission = Admission::new(Arc::clone(self.admission.provider()), limit);
        self
    }

    /// Serves `network`'s cluster and shards (where Lightpush stores a push without a pubsub
    /// topic).
    #[must_use]
    pub fn with_network(mut self, network: crate::net::WakuNetwork) -> Self {
        self.lightpush = self.lightpush.with_network(network);
        self
    }

    /// Which peers used which session (updated from every verdict naming a session).
    #[must_use]
    pub const fn session_peers(&self) -> &Arc<SessionPeers> {
        &self.session_peers
    }

    /// The 429 answer for a peer over its rate, or `None` when the request may go on.
    fn rate_limited(&self, proto: Proto, peer: &PeerId, request: &[u8]) -> Option<Vec<u8>> {
        let limited = self.admission.rate(&peer.to_bytes(), wall_clock_ms()).err()?;
        Metrics::bump(&self.metrics.rate_limited, 1);
        let desc = limited.desc();
        Some(match proto {
            Proto::Store => StoreQueryResponse {
                request_id: StoreQueryRequest::decode(request).map(|r| r.request_id).unwrap_or_default(),
                status_code: Some(status::TOO_MANY_REQUESTS),
                status_desc: Some(desc),
                ..StoreQueryResponse::default()
            }
            .encode(),
            Proto::Lightpush => lightpush::too_many(request, &desc),
            _ => receipt_refused(ReceiptStatus::Unavailable, &desc),
        })
    }

    /// A delivery receipt goes to the engine, which keeps it for the stream's claims when it
    /// verifies (see [`Provider::on_receipt`]).
    async fn answer_receipt(&self, peer: PeerId, request: Vec<u8>) -> Vec<u8> {
        self.admission.provider().on_receipt(Some(&peer.to_bytes()), &request).await.encode()
    }

    #[must_use]
    pub const fn provider(&self) -> &Arc<Provider<C, S, K>> {
        self.admission.provider()
    }

    /// Answers one encoded `StoreQueryRequest` with an encoded `StoreQueryResponse`.
    pub async fn query(&self, body: &[u8]) -> Vec<u8> {
        self.query_from(None, body).await
    }

    /// As [`StoreService::query`] for a request from `peer`: the engine checks its proof against
    /// that peer's sessions only ([`Provider::handle`]); without a peer, proofs are refused.
    pub async fn query_from(&self, peer: Option<&PeerId>, body: &[u8]) -> Vec<u8> {
        Metrics::bump(&self.metrics.queries, 1);
        let (response, encoded) = self.query_response(peer, body).await;
        if response.is_success() {
            Metrics::bump(&self.metrics.served, 1);
            Metrics::bump(&self.metrics.messages_served, u64::try_from(response.messages.len()).unwrap_or(0));
        }
        let bytes = encoded.unwrap_or_else(|| response.encode());
        if response.is_success() {
            Metrics::bump(&self.metrics.bytes_served, u64::try_from(bytes.len()).unwrap_or(0));
        }
        bytes
    }

    /// The response, with its encoding when it was already made (a granted response is encoded
    /// once, to account its size, and those bytes are sent).
    ///
    /// For a requester in good standing the page is read beside the verdict (see the module
    /// documentation); it is used only on a grant.
    async fn query_response(&self, peer: Option<&PeerId>, body: &[u8]) -> (StoreQueryResponse, Option<Vec<u8>>) {
        let mut clock = StageClock::start(&self.metrics);
        let request = match decode_valid(body, &self.metrics) {
            Ok(r) => r,
            Err(response) => return (*response, None),
        };
        let digest = request.canonical().digest();
        let proof = request.eligibility_proof.as_deref();
        clock.lap(Stage::Decode);
        let early = (proof.is_some()
            && peer
                .is_some_and(|p| self.admission.in_good_standing(&p.to_bytes(), crate::STORE_SERVICE_ID.as_bytes())))
        .then(|| {
            Metrics::bump(&self.metrics.speculative_reads, 1);
            spawn_read(&self.archive, &request)
        });
        let verdict =
            judge_from(&self.admission, &self.session_peers, peer, crate::STORE_SERVICE_ID, &digest, proof).await;
        clock.lap(Stage::Judge);
        let Some(grant) = verdict.grant else {
            if early.is_some() {
                // The page read beside the verdict is dropped unseen.
                Metrics::bump(&self.metrics.speculative_reads_discarded, 1);
            }
            self.count_refusal(&verdict);
            return (refusal(request.request_id, verdict), None);
        };
        let page = match early {
            Some(read) => page_of(read, &request, &self.metrics).await,
            None => read_page(&self.archive, &request, &self.metrics).await,
        };
        clock.lap(Stage::Archive);
        let page = match page {
            Ok(page) => page,
            Err(response) => return (*response, None),
        };
        let trim_to = response_budget(&grant);
        let eligibility = Eligibility { status: EligibilityStatus::ok(), termination: verdict.termination };
        let (response, trimmed) = page_response(&request, page, Some(eligibility), trim_to);
        if trimmed {
            Metrics::bump(&self.metrics.first_responses_trimmed, 1);
        }
        let encoded = response.encode();
        let len = u64::try_from(encoded.len()).unwrap_or(u64::MAX);
        let finished = self.admission.finish(&grant, len).await;
        clock.lap(Stage::Respond);
        match finished {
            Ok(Ok(())) => (response, Some(encoded)),
            Ok(Err(refused)) => {
                self.count_refusal(&refused);
                (refusal(request.request_id, refused), None)
            }
            Err(e) => {
                warn!(error = %e, "engine failed accounting a response");
                let response = StoreQueryResponse {
                    request_id: request.request_id,
                    status_code: Some(status::SERVICE_UNAVAILABLE),
                    status_desc: Some("SERVICE_UNAVAILABLE: internal error".into()),
                    ..StoreQueryResponse::default()
                };
                (response, None)
            }
        }
    }

    fn count_refusal(&self, verdict: &Verdict) {
        let index = match verdict.status.status_code {
            1 => 0,
            2 => 1,
            _ => 2,
        };
        if let Some(counter) = self.metrics.refused.get(index) {
            Metrics::bump(counter, 1);
        }
        debug!(code = verdict.status.status_code, desc = %verdict.status.status_desc, "query refused");
    }
}

impl<C, S, K> Inbound for StoreService<C, S, K>
where
    C: ChainView + 'static,
    S: SessionStore + 'static,
    K: ClaimSubmitter + 'static,
{
    async fn answer(&self, proto: Proto, peer: PeerId, request: Vec<u8>) -> Vec<u8> {
        match proto {
            Proto::Policy => {
                Metrics::bump(&self.metrics.policy_requests, 1);
                self.advert.clone()
            }
            Proto::Store => match self.rate_limited(proto, &peer, &request) {
                Some(refused) => refused,
                None => self.query_from(Some(&peer), &request).await,
            },
            Proto::Receipt => match self.rate_limited(proto, &peer, &request) {
                Some(refused) => refused,
                None => self.answer_receipt(peer, request).await,
            },
            Proto::Lightpush => match self.rate_limited(proto, &peer, &request) {
                Some(refused) => refused,
                None => self.lightpush.push_from(&self.admission, Some(&peer), &request).await,
            },
            // Users answer terminations; a provider is never sent one.
            Proto::Termination => Vec::new(),
        }
    }

    fn busy(&self, proto: Proto, request: &[u8]) -> Vec<u8> {
        match proto {
            Proto::Policy => self.advert.clone(),
            Proto::Receipt => receipt_refused(ReceiptStatus::Unavailable, "the provider is at capacity; retry shortly"),
            Proto::Termination => Vec::new(),
            Proto::Lightpush => {
                lightpush::too_many(request, "TOO_MANY_REQUESTS: the provider is at capacity; retry shortly")
            }
            Proto::Store => {
                Metrics::bump(&self.metrics.busy, 1);
                let request_id = StoreQueryRequest::decode(request).map(|r| r.request_id).unwrap_or_default();
                StoreQueryResponse {
                    request_id,
                    status_code: Some(status::TOO_MANY_REQUESTS),
                    status_desc: Some("TOO_MANY_REQUESTS: the provider is at capacity; retry shortly".into()),
                    ..StoreQueryResponse::default()
                }
                .encode()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_peers_keep_the_newest_and_stay_bounded() {
        let peers = SessionPeers::default();
        let session = SessionId([1; 32]);
        let all: Vec<PeerId> = (0..6).map(|_| PeerId::random()).collect();
        for peer in &all {
            peers.record(session, *peer);
        }
        peers.record(session, all[5]);
        assert_eq!(peers.peers(&session), all[2..].to_vec());
        for i in 0..SESSION_PEERS_MAX {
            let mut id = [0u8; 32];
            id[..8].copy_from_slice(&u64::try_from(i).unwrap_or(u64::MAX).to_be_bytes());
            peers.record(SessionId(id), all[0]);
        }
        assert!(peers.sessions().len() <= SESSION_PEERS_MAX);
        assert!(peers.peers(&session).is_empty(), "the oldest session was forgotten");
    }
}
