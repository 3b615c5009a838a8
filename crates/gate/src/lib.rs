//! `paystream gate`: the provider side as a local service. Any existing service (an HTTP API,
//! a Waku node) asks "is this request paid?" over a loopback HTTP API; the gate runs the
//! provider engine on the same engine path as the Store service
//! ([`paystreams_provider::Admission`]) in the same provider process
//! ([`paystreams_process`]: chain, sessions, claims, admin routes).
//!
//! Routes (all behind the process's [`paystreams_process::AdminGuard`]: loopback, bearer
//! token, Host and Origin checks):
//! - `POST /v1/check`: the verdict on one request's `EligibilityProof` and digest; on a grant, a
//!   ticket and the response budget;
//! - `POST /v1/served`: the ticket and the response's size, before the response is sent;
//! - `GET /v1/policy`: the advert a user needs to build a proposal;
//! - `GET /v1/terminations?since=N`: terminations the engine decided, for the service to push;
//! - the shared admin routes (`/health`, `/metrics`, `/sessions`, terminate, maintenance).
//!
//! See `docs/gate.md` and `docs/gate.openapi.json`.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{
    Json, Router,
    extract::{Query, State, rejection::JsonRejection},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use base64::Engine as _;
use paystreams_process::{
    App, BoxFuture, Notifier, Opened, ProcessConfig, ProcessError, ProcessHandle, TerminationSource, error_response,
    open,
};
use paystreams_provider::{
    Admission, ChainClaimer, Described, FollowerStats, Grant, PeerLimit, SessionId, SessionStore, Verdict,
    response_budget,
};
use paystreams_rpc::{clock::wall_clock_ms, remote::RpcChain};
use paystreams_wire::{ProviderAdvert, ServiceTermination};
use rand_core::RngCore as _;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

pub use paystreams_provider::admission::termination_name;

/// Largest `/v1` request body.
pub const API_BODY_MAX: usize = 16 * 1024;
/// Longest `requester`, in bytes (the engine's requester index bound).
pub const REQUESTER_MAX_LEN: usize = 64;
/// Largest `EligibilityProof` accepted, in bytes (decoded).
pub const PROOF_MAX_LEN: usize = 8 * 1024;
/// Granted responses awaiting their `/v1/served` report at once; beyond it `/v1/check`
/// answers 503 before asking the engine.
pub const TICKETS_MAX: usize = 16_384;
/// How long a ticket stays good.
pub const TICKET_TTL: Duration = Duration::from_secs(120);
/// Terminations kept for `GET /v1/terminations` (the oldest are dropped first).
pub const TERMINATIONS_KEPT: usize = 4_096;
/// Most terminations one `GET /v1/terminations` returns.
pub const TERMINATIONS_PAGE_MAX: usize = 1_000;
/// Sessions remembered as recently served (those a maintenance notice concerns).
pub const RECENT_SESSIONS_MAX: usize = 100_000;
/// How often the engine's queued terminations are moved to the log.
pub const TERMINATION_DRAIN_INTERVAL: Duration = Duration::from_millis(100);

/// The gate's routes besides the shared admin routes: (method, path).
pub const API_ROUTES: [(&str, &str); 5] = [
    ("POST", "/v1/check"),
    ("POST", "/v1/served"),
    ("POST", "/v1/receipt"),
    ("GET", "/v1/policy"),
    ("GET", "/v1/terminations"),
];

/// Everything a gate needs.
#[derive(Clone, Debug)]
pub struct GateConfig {
    /// Chain, key, policy (its `service_ids` are the services the gate accepts), sessions, and
    /// the API address (`admin`, loopback only, required) with its token.
    pub process: ProcessConfig,
    /// Each requester's request rate, checked before the engine is asked anything.
    pub peer_limit: PeerLimit,
}

/// Why a gate could not start.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error("the gate needs an API address on loopback (e.g. 127.0.0.1:8042)")]
    NoAddress,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct GateMetrics {
    pub checks: AtomicU64,
    pub paid: AtomicU64,
    pub refused: AtomicU64,
    pub rate_limited: AtomicU64,
    pub bad_requests: AtomicU64,
    pub served_reports: AtomicU64,
    pub served_bytes: AtomicU64,
    pub served_refused: AtomicU64,
    pub terminations: AtomicU64,
}

impl GateMetrics {
    fn bump(counter: &AtomicU64, by: u64) {
        counter.fetch_add(by, Ordering::Relaxed);
    }

    /// Prometheus text exposition.
    #[must_use]
    pub fn render(&self) -> String {
        let rows = [
            ("checks", &self.checks),
            ("paid", &self.paid),
            ("refused", &self.refused),
            ("rate_limited", &self.rate_limited),
            ("bad_requests", &self.bad_requests),
            ("served_reports", &self.served_reports),
            ("served_bytes", &self.served_bytes),
            ("served_refused", &self.served_refused),
            ("terminations", &self.terminations),
        ];
        rows.iter()
            .map(|(name, c)| {
                format!(
                    "# TYPE paystreams_gate_{name}_total counter\npaystreams_gate_{name}_total {}\n",
                    c.load(Ordering::Relaxed)
                )
            })
            .collect()
    }
}

/// A running gate.
#[derive(Debug)]
pub struct GateHandle {
    process: ProcessHandle,
    drain_task: JoinHandle<()>,
    metrics: Arc<GateMetrics>,
}

impl GateHandle {
    /// The API's address.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.process.admin_addr().unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// The API's bearer token.
    #[must_use]
    pub fn token(&self) -> &str {
        self.process.admin_token().unwrap_or_default()
    }

    #[must_use]
    pub fn metrics(&self) -> &GateMetrics {
        &self.metrics
    }

    /// See [`ProcessHandle::wait_for_events_through`].
    pub async fn wait_for_events_through(&self, block_id: u64, timeout: Duration) -> bool {
        self.process.wait_for_events_through(block_id, timeout).await
    }

    /// Stops the API, then the follower (claiming what is claimable when configured).
    pub async fn shutdown(self) -> FollowerStats {
        self.drain_task.abort();
        let _ = self.drain_task.await;
        self.process.stop().await
    }
}

/// Starts a gate: the shared provider process, then the API on its admin address.
///
/// # Errors
/// A [`GateError`] saying which part failed and why.
pub async fn start(config: GateConfig) -> Result<GateHandle, GateError> {
    if config.process.admin.is_none() {
        return Err(GateError::NoAddress);
    }
    let process = config.process.clone();
    open(process, GateApp { config }).await
}

struct GateApp {
    config: GateConfig,
}

impl App for GateApp {
    type Handle = GateHandle;
    type Error = GateError;

    async fn start<S: SessionStore + 'static>(self, opened: Opened<S>) -> Result<GateHandle, GateError> {
        let Opened { provider, mut process } = opened;
        let advert = provider.policy().advert();
        let metrics = Arc::new(GateMetrics::default());
        let log = Arc::new(TerminationLog::default());
        let state = Arc::new(GateState {
            admission: Admission::new(Arc::clone(&provider), self.config.peer_limit),
            tickets: Mutex::new(HashMap::new()),
            policy: policy_json(&advert),
            advert,
            log: Arc::clone(&log),
            metrics: Arc::clone(&metrics),
        });
        let drain_task = {
            let (source, log, metrics) =
                (Arc::clone(&provider) as Arc<dyn TerminationSource>, Arc::clone(&log), Arc::clone(&metrics));
            tokio::spawn(async move {
                let mut every = tokio::time::interval(TERMINATION_DRAIN_INTERVAL);
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    every.tick().await;
                    for (session, termination) in source.take() {
                        GateMetrics::bump(&metrics.terminations, 1);
                        log.push(session, termination);
                    }
                }
            })
        };
        let render = {
            let metrics = Arc::clone(&metrics);
            Arc::new(move || metrics.render())
        };
        process.serve_admin(provider, render, log, api_router(state));
        Ok(GateHandle { process, drain_task, metrics })
    }
}

/// One granted response awaiting its size.
#[derive(Clone, Copy, Debug)]
struct Ticket {
    grant: Grant,
    issued_ms: u64,
}

struct GateState<S> {
    admission: Admission<RpcChain, S, ChainClaimer<RpcChain>>,
    tickets: Mutex<HashMap<String, Ticket>>,
    advert: ProviderAdvert,
    policy: serde_json::Value,
    log: Arc<TerminationLog>,
    metrics: Arc<GateMetrics>,
}

/// Terminations for services to deliver: a bounded, numbered log, and the latest one per
/// session not yet returned by `/v1/check`.
#[derive(Debug, Default)]
struct TerminationLog {
    inner: Mutex<LogInner>,
}

#[derive(Debug, Default)]
struct LogInner {
    next_seq: u64,
    entries: VecDeque<(u64, SessionId, ServiceTermination)>,
    pending: HashMap<SessionId, ServiceTermination>,
    recent: VecDeque<SessionId>,
    recent_set: HashSet<SessionId>,
}

impl TerminationLog {
    fn push(&self, session: SessionId, termination: ServiceTermination) {
        let Ok(mut inner) = self.inner.lock() else { return };
        inner.next_seq = inner.next_seq.saturating_add(1);
        let seq = inner.next_seq;
        if inner.entries.len() >= TERMINATIONS_KEPT
            && let Some((_, old, _)) = inner.entries.pop_front()
            // A termination no longer listed is no longer waiting either.
            && inner.entries.iter().all(|(_, s, _)| *s != old)
        {
            inner.pending.remove(&old);
        }
        inner.entries.push_back((seq, session, termination));
        inner.pending.insert(session, termination);
    }

    /// Takes the termination waiting for `session`, if any.
    fn take_pending(&self, session: &SessionId) -> Option<ServiceTermination> {
        self.inner.lock().ok()?.pending.remove(session)
    }

    /// Records that `session` was judged (a maintenance notice concerns it).
    fn seen(&self, session: SessionId) {
        let Ok(mut inner) = self.inner.lock() else { return };
        if inner.recent_set.insert(session) {
            inner.recent.push_back(session);
            while inner.recent.len() > RECENT_SESSIONS_MAX {
                if let Some(old) = inner.recent.pop_front() {
                    inner.recent_set.remove(&old);
                }
            }
        }
    }

    /// Entries after `since`, at most `limit`; whether older entries after `since` were dropped.
    fn since(&self, since: u64, limit: usize) -> (Vec<(u64, SessionId, ServiceTermination)>, bool, u64) {
        let Ok(inner) = self.inner.lock() else { return (Vec::new(), false, since) };
        // A number past the last one issued comes from before a restart: start over.
        let restarted = since > inner.next_seq;
        let since = if restarted { 0 } else { since };
        let missed = restarted || inner.entries.front().is_some_and(|(first, _, _)| first.saturating_sub(1) > since);
        let list: Vec<_> = inner.entries.iter().filter(|(seq, _, _)| *seq > since).take(limit).copied().collect();
        let next = list.last().map_or(since, |(seq, _, _)| *seq);
        (list, missed, next)
    }
}

impl Notifier for TerminationLog {
    /// Every recently judged session: the gate cannot tell which users are reachable; the
    /// service can, through `GET /v1/terminations`.
    fn reachable_sessions(&self) -> BoxFuture<'_, Vec<SessionId>> {
        Box::pin(async move { self.inner.lock().map(|i| i.recent.iter().copied().collect()).unwrap_or_default() })
    }

    fn notify(&self, open: &[SessionId], termination: ServiceTermination) -> usize {
        for session in open {
            self.push(*session, termination);
        }
        open.len()
    }
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// The advert as JSON (amounts as decimal strings) with its encoded bytes.
fn policy_json(advert: &ProviderAdvert) -> serde_json::Value {
    let tokens: Vec<serde_json::Value> = advert
        .policy
        .accepted_tokens
        .iter()
        .map(|t| {
            serde_json::json!({
                "token_id": hex::encode(t.token_id),
                "min_rate": t.min_rate.to_string(),
                "min_allocation": t.min_allocation.to_string(),
            })
        })
        .collect();
    serde_json::json!({
        "provider_id": hex::encode(advert.provider_id),
        "provider_account": bs58::encode(advert.provider_id).into_string(),
        "service_ids": advert.service_ids,
        "accepted_tokens": tokens,
        "max_create_stream_deadline_delay": advert.policy.max_create_stream_deadline_delay.to_string(),
        "first_response_max_bytes": advert.policy.vault_proof_max_response_bytes.to_string(),
        "deferred_first_proof": advert.deferred_first_proof,
        "load_cap": advert.load_cap.map(|c| serde_json::json!({
            "window_secs": c.window_secs.to_string(),
            "max_requests": c.max_requests.to_string(),
            "max_bytes": c.max_bytes.to_string(),
        })),
        "advert": b64().encode(advert.encode()),
    })
}

fn api_router<S: SessionStore + 'static>(state: Arc<GateState<S>>) -> Router {
    Router::new()
        .route("/v1/check", post(check_handler::<S>))
        .route("/v1/served", post(served_handler::<S>))
        .route("/v1/receipt", post(receipt_handler::<S>))
        .route("/v1/policy", get(policy_handler::<S>))
        .route("/v1/terminations", get(terminations_handler::<S>))
        .layer(axum::extract::DefaultBodyLimit::max(API_BODY_MAX))
        .with_state(state)
}

fn bad_request(metrics: &GateMetrics, message: String) -> Response {
    GateMetrics::bump(&metrics.bad_requests, 1);
    error_response(StatusCode::BAD_REQUEST, message)
}

fn json_rejection(metrics: &GateMetrics, rejection: &JsonRejection) -> Response {
    bad_request(
        metrics,
        format!(
            "the body must be JSON as docs/gate.openapi.json describes ({rejection}); send Content-Type: application/json"
        ),
    )
}

/// `POST /v1/check` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// The caller's identity: UTF-8 text, or `0x` and hex for bytes; 1 to 64 bytes.
    pub requester: String,
    /// The service the request is for (one of the gate's `--service-id`s), when it names one.
    #[serde(default)]
    pub service_id: Option<String>,
    /// Base64 of the `EligibilityProof` bytes; absent when the request carried none.
    #[serde(default)]
    pub eligibility_proof: Option<String>,
    /// The request's canonical digest: 64 hex characters.
    pub request_digest: String,
}

/// `POST /v1/served` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServedRequest {
    pub ticket: String,
    /// The response's size in bytes, as the service will send it.
    pub bytes: u64,
}

/// The status object of `/v1/check` and `/v1/served` answers.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct StatusJson {
    pub code: u32,
    pub name: String,
    /// One readable sentence: name, reason and termination.
    pub desc: String,
    /// The engine's reason alone (the `EligibilityStatus.status_desc` on the wire).
    pub reason: String,
}

/// A termination in JSON.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct TerminationJson {
    #[serde(rename = "type")]
    pub kind: String,
    /// Chain time (seconds) after which a TEMPORARY termination ends (0 for PERMANENT), as a
    /// decimal string.
    pub resume_after: String,
}

impl TerminationJson {
    #[must_use]
    pub fn new(termination: &ServiceTermination) -> Self {
        Self { kind: termination_name(termination).to_owned(), resume_after: termination.resume_after.to_string() }
    }
}

/// Parses `requester`: `0x` and hex for bytes, else the text's UTF-8 bytes.
///
/// # Errors
/// Bad hex, or not 1 to 64 bytes.
pub fn parse_requester(requester: &str) -> Result<Vec<u8>, String> {
    let bytes = match requester.strip_prefix("0x") {
        Some(h) => hex::decode(h).map_err(|e| format!("requester {requester:?}: bad hex after 0x ({e})"))?,
        None => requester.as_bytes().to_vec(),
    };
    if bytes.is_empty() || bytes.len() > REQUESTER_MAX_LEN {
        return Err(format!(
            "requester must be 1 to {REQUESTER_MAX_LEN} bytes (it is {}); send the caller's stable id",
            bytes.len()
        ));
    }
    Ok(bytes)
}

fn status_json(verdict: &Verdict) -> StatusJson {
    let d = Described::new(verdict);
    let desc = if verdict.is_granted() { "OK".to_owned() } else { d.desc };
    StatusJson { code: d.code, name: d.name.to_owned(), desc, reason: d.reason }
}

fn new_ticket() -> String {
    let mut bytes = [0u8; 16];
    rand_core::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

async fn check_handler<S: SessionStore + 'static>(
    State(state): State<Arc<GateState<S>>>,
    body: Result<Json<CheckRequest>, JsonRejection>,
) -> Response {
    let metrics = &state.metrics;
    GateMetrics::bump(&metrics.checks, 1);
    let request = match body {
        Ok(Json(request)) => request,
        Err(rejection) => return json_rejection(metrics, &rejection),
    };
    let requester = match parse_requester(&request.requester) {
        Ok(r) => r,
        Err(e) => return bad_request(metrics, e),
    };
    // The service the request is for: a session pays only for the service it was proposed for.
    let service = match (&request.service_id, state.advert.service_ids.as_slice()) {
        (Some(service), served) if served.contains(service) => service.clone(),
        (Some(service), served) => {
            return bad_request(
                metrics,
                format!("service_id {service:?} is not served by this gate; it serves {served:?}"),
            );
        }
        (None, [only]) => only.clone(),
        (None, served) => {
            return bad_request(
                metrics,
                format!("this gate serves several services ({served:?}); name the request's service_id"),
            );
        }
    };
    let digest: [u8; 32] = match hex::decode(&request.request_digest).ok().and_then(|b| b.try_into().ok()) {
        Some(d) => d,
        None => return bad_request(metrics, "request_digest must be 64 hex characters (a SHA-256 digest)".into()),
    };
    let proof = match &request.eligibility_proof {
        None => None,
        Some(text) => match b64().decode(text) {
            Ok(bytes) if bytes.len() <= PROOF_MAX_LEN => Some(bytes),
            Ok(bytes) => {
                return bad_request(
                    metrics,
                    format!("eligibility_proof is {} bytes; the most accepted is {PROOF_MAX_LEN}", bytes.len()),
                );
            }
            Err(e) => return bad_request(metrics, format!("eligibility_proof must be standard base64 ({e})")),
        },
    };
    let now = wall_clock_ms();
    if let Err(limited) = state.admission.rate(&requester, now) {
        GateMetrics::bump(&metrics.rate_limited, 1);
        let secs = limited.retry_in_ms.div_ceil(1_000).max(1);
        let mut response = error_response(StatusCode::TOO_MANY_REQUESTS, limited.desc());
        if let Ok(value) = header::HeaderValue::from_str(&secs.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return response;
    }
    // Room for the ticket is checked before the engine is asked (a grant starts a session).
    let full = state.tickets.lock().map_or(true, |mut tickets| {
        if tickets.len() >= TICKETS_MAX {
            let ttl = u64::try_from(TICKET_TTL.as_millis()).unwrap_or(u64::MAX);
            tickets.retain(|_, t| now.saturating_sub(t.issued_ms) < ttl);
        }
        tickets.len() >= TICKETS_MAX
    });
    if full {
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "{TICKETS_MAX} granted responses await their POST /v1/served report; report them, or retry in a few seconds"
            ),
        );
    }
    let mut verdict = state.admission.judge(&requester, service.as_bytes(), &digest, proof.as_deref(), now).await;
    if let Some(session) = verdict.session {
        state.log.seen(session);
        let waiting = state.log.take_pending(&session);
        if verdict.termination.is_none() {
            verdict.termination = waiting;
        }
    }
    let status = status_json(&verdict);
    let termination = verdict.termination.as_ref().map(TerminationJson::new);
    let session = verdict.session.map(|s| hex::encode(s.0));
    let Some(grant) = verdict.grant else {
        GateMetrics::bump(&metrics.refused, 1);
        return Json(serde_json::json!({
            "paid": false, "status": status, "termination": termination, "session": session,
        }))
        .into_response();
    };
    GateMetrics::bump(&metrics.paid, 1);
    let ticket = new_ticket();
    if let Ok(mut tickets) = state.tickets.lock() {
        tickets.insert(ticket.clone(), Ticket { grant, issued_ms: now });
    }
    Json(serde_json::json!({
        "paid": true,
        "status": status,
        "termination": termination,
        "session": session,
        "grant": {
            "ticket": ticket,
            "max_response_bytes": response_budget(&grant).map(|b| b.to_string()),
            "session": hex::encode(grant.session.0),
        },
    }))
    .into_response()
}

async fn served_handler<S: SessionStore + 'static>(
    State(state): State<Arc<GateState<S>>>,
    body: Result<Json<ServedRequest>, JsonRejection>,
) -> Response {
    let metrics = &state.metrics;
    let request = match body {
        Ok(Json(request)) => request,
        Err(rejection) => return json_rejection(metrics, &rejection),
    };
    let ttl = u64::try_from(TICKET_TTL.as_millis()).unwrap_or(u64::MAX);
    let now = wall_clock_ms();
    let ticket = state.tickets.lock().ok().and_then(|mut t| t.remove(&request.ticket));
    let Some(ticket) = ticket.filter(|t| now.saturating_sub(t.issued_ms) < ttl) else {
        return error_response(
            StatusCode::NOT_FOUND,
            format!(
                "unknown or expired ticket: a ticket is good for one report within {} s of its /v1/check; check the request again",
                TICKET_TTL.as_secs()
            ),
        );
    };
    GateMetrics::bump(&metrics.served_reports, 1);
    match state.admission.finish(&ticket.grant, request.bytes).await {
        Ok(Ok(())) => {
            GateMetrics::bump(&metrics.served_bytes, request.bytes);
            Json(serde_json::json!({ "ok": true })).into_response()
        }
        Ok(Err(refused)) => {
            GateMetrics::bump(&metrics.served_refused, 1);
            Json(serde_json::json!({
                "ok": false,
                "status": status_json(&refused),
                "termination": refused.termination.as_ref().map(TerminationJson::new),
            }))
            .into_response()
        }
        Err(e) => error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the engine could not account the response ({e}); do not serve it, retry the request shortly"),
        ),
    }
}

/// `POST /v1/receipt` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptRequest {
    /// The same requester id as in the session's `/v1/check` calls.
    pub requester: String,
    /// Base64 of the `DeliveryReceipt` bytes the user sent.
    pub receipt: String,
}

fn receipt_name(code: u32) -> &'static str {
    use paystreams_wire::ReceiptStatus as R;
    match R::from_code(code) {
        Some(R::Kept) => "KEPT",
        Some(R::NotNewer) => "NOT_NEWER",
        Some(R::Invalid) => "INVALID",
        Some(R::UnknownStream) => "UNKNOWN_STREAM",
        Some(R::Malformed) => "MALFORMED",
        Some(R::Unavailable) => "UNAVAILABLE",
        Some(R::Unsupported) | None => "UNSUPPORTED",
    }
}

/// A delivery receipt a user sent for its stream, kept for the stream's claims when it verifies
/// (see `Provider::on_receipt`); the answer is the `ReceiptAck` as JSON and as base64 bytes, for
/// the service to return to the user.
async fn receipt_handler<S: SessionStore + 'static>(
    State(state): State<Arc<GateState<S>>>,
    body: Result<Json<ReceiptRequest>, JsonRejection>,
) -> Response {
    let metrics = &state.metrics;
    let request = match body {
        Ok(Json(request)) => request,
        Err(rejection) => return json_rejection(metrics, &rejection),
    };
    let requester = match parse_requester(&request.requester) {
        Ok(r) => r,
        Err(e) => return bad_request(metrics, e),
    };
    let bytes = match b64().decode(&request.receipt) {
        Ok(bytes) if bytes.len() <= PROOF_MAX_LEN => bytes,
        Ok(_) => return bad_request(metrics, format!("receipt over {PROOF_MAX_LEN} bytes")),
        Err(e) => return bad_request(metrics, format!("receipt must be standard base64 ({e})")),
    };
    if let Err(limited) = state.admission.rate(&requester, wall_clock_ms()) {
        GateMetrics::bump(&metrics.rate_limited, 1);
        return error_response(StatusCode::TOO_MANY_REQUESTS, limited.desc());
    }
    let ack = state.admission.provider().on_receipt(Some(&requester), &bytes).await;
    Json(serde_json::json!({
        "status": { "code": ack.status, "name": receipt_name(ack.status), "desc": ack.desc },
        "kept_total": ack.kept_total.to_string(),
        "ack": b64().encode(ack.encode()),
    }))
    .into_response()
}

async fn policy_handler<S: SessionStore + 'static>(State(state): State<Arc<GateState<S>>>) -> Response {
    Json(state.policy.clone()).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TerminationsQuery {
    #[serde(default)]
    since: u64,
    #[serde(default)]
    limit: Option<usize>,
}

async fn terminations_handler<S: SessionStore + 'static>(
    State(state): State<Arc<GateState<S>>>,
    query: Result<Query<TerminationsQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return bad_request(
            &state.metrics,
            "query: since=N (a sequence number, default 0), limit=M (1 to 1000)".into(),
        );
    };
    let limit = query.limit.unwrap_or(100).clamp(1, TERMINATIONS_PAGE_MAX);
    let (entries, missed, next) = state.log.since(query.since, limit);
    let list: Vec<serde_json::Value> = entries
        .iter()
        .map(|(seq, session, t)| {
            serde_json::json!({
                "seq": seq,
                "session": hex::encode(session.0),
                "termination": TerminationJson::new(t),
            })
        })
        .collect();
    Json(serde_json::json!({ "terminations": list, "next": next, "missed": missed })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every route the gate serves is in the OpenAPI document, and nothing else is.
    #[test]
    fn openapi_lists_exactly_the_routes() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/gate.openapi.json");
        let text = std::fs::read_to_string(&path).expect("docs/gate.openapi.json");
        let doc: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        let mut documented: Vec<(String, String)> = doc["paths"]
            .as_object()
            .expect("paths")
            .iter()
            .flat_map(|(path, ops)| {
                ops.as_object().expect("operations").keys().map(move |m| (m.to_uppercase(), path.clone()))
            })
            .collect();
        let mut served: Vec<(String, String)> = API_ROUTES
            .iter()
            .chain(paystreams_process::ADMIN_ROUTES.iter())
            .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
            .collect();
        documented.sort();
        served.sort();
        assert_eq!(documented, served);
    }

    #[test]
    fn requesters_are_text_or_hex_and_bounded() {
        assert_eq!(parse_requester("alice"), Ok(b"alice".to_vec()));
        assert_eq!(parse_requester("0x00ff"), Ok(vec![0, 255]));
        assert!(parse_requester("0xzz").is_err());
        assert!(parse_requester("").is_err());
        assert!(parse_requester(&"a".repeat(65)).is_err());
        assert!(parse_requester(&"a".repeat(64)).is_ok());
    }

    #[test]
    fn termination_log_is_numbered_bounded_and_survives_a_stale_cursor() {
        let log = TerminationLog::default();
        let t = ServiceTermination { termination_type: paystreams_wire::TerminationType::Temporary, resume_after: 9 };
        for i in 0..(TERMINATIONS_KEPT + 5) {
            let mut id = [0u8; 32];
            id[..8].copy_from_slice(&u64::try_from(i).unwrap_or(u64::MAX).to_be_bytes());
            log.push(SessionId(id), t);
        }
        let (first, missed, next) = log.since(0, 10);
        assert!(missed, "the oldest five were dropped");
        assert_eq!(first.first().map(|e| e.0), Some(6));
        assert_eq!(next, 15);
        let (rest, missed, _) = log.since(next, TERMINATIONS_PAGE_MAX);
        assert!(!missed);
        assert_eq!(rest.first().map(|e| e.0), Some(16));
        // A cursor from before a restart starts over.
        let (again, missed, _) = log.since(u64::MAX, 3);
        assert!(missed);
        assert_eq!(again.len(), 3);
    }
}
