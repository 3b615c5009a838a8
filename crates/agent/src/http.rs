//! The agent's loopback HTTP API (described in `docs/agent.openapi.json`). Every route but
//! `/health` needs `Authorization: Bearer <token>`; Host and Origin are checked by the same
//! [`AdminGuard`] as the Store provider's admin endpoint. Bodies are JSON, at most
//! [`BODY_MAX`] bytes; every refusal is a JSON `{ "error": "..." }` saying what to do.

use std::{net::SocketAddr, sync::Arc};

use axum::{
    Json, Router,
    body::Body,
    extract::{Path, Query, Request, State},
    http::StatusCode as Http,
    middleware::{self, Next},
    response::{IntoResponse as _, Response},
    routing::{get, post},
};
use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use paystreams_rpc::chain_view::{ChainView, ChainWriter};
use paystreams_store::provider::AdminGuard;
use paystreams_wire::{EligibilityStatus, ServiceTermination, TerminationType};
use serde::Deserialize;
use serde_json::json;

use crate::{Agent, AgentError, RequestRef, parse_digest, parse_session_id, status_by_name};

/// Largest request body (a base64 Store request of 64 KiB fits).
pub const BODY_MAX: usize = 128 * 1024;

/// Every route of the API as `(method, path)`, as the router serves them and the OpenAPI
/// document lists them.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/health"),
    ("post", "/v1/proof"),
    ("post", "/v1/outcome"),
    ("get", "/v1/identity"),
    ("get", "/v1/sessions"),
    ("post", "/v1/sessions/{id}/close"),
    ("get", "/v1/spending"),
    ("get", "/v1/warnings"),
];

/// Refuses addresses that are not loopback: the API hands out proofs that spend the owner's
/// money.
///
/// # Errors
/// A non-loopback address, with what to use instead.
pub fn check_loopback(addr: SocketAddr) -> Result<(), String> {
    if addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(format!(
            "the agent only listens on loopback (it hands out proofs that spend your vault); use 127.0.0.1:{} or [::1]:{}",
            addr.port(),
            addr.port()
        ))
    }
}

fn error(status: Http, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

fn agent_error(e: &AgentError) -> Response {
    let status = match e {
        AgentError::BadRequest(_) => Http::BAD_REQUEST,
        AgentError::NotFound(_) => Http::NOT_FOUND,
        AgentError::Conflict(_) => Http::CONFLICT,
        AgentError::RetryLater(_) => Http::TOO_MANY_REQUESTS,
        AgentError::Provider(_) => Http::BAD_GATEWAY,
        AgentError::Unavailable(_) => Http::SERVICE_UNAVAILABLE,
    };
    error(status, e.to_string())
}

struct ApiState<C> {
    agent: Arc<Agent<C>>,
    guard: Arc<AdminGuard>,
}

impl<C> Clone for ApiState<C> {
    fn clone(&self) -> Self {
        Self { agent: Arc::clone(&self.agent), guard: Arc::clone(&self.guard) }
    }
}

/// The router of the API, guarded by `guard` (built for the bound address and the token).
pub fn router<C: ChainView + ChainWriter + Clone + 'static>(agent: Arc<Agent<C>>, guard: Arc<AdminGuard>) -> Router {
    let state = ApiState { agent, guard };
    Router::new()
        .route("/health", get(|| async { "ok\n" }))
        .route("/v1/proof", post(proof_handler::<C>))
        .route("/v1/outcome", post(outcome_handler::<C>))
        .route("/v1/identity", get(identity_handler::<C>))
        .route("/v1/sessions", get(sessions_handler::<C>))
        .route("/v1/sessions/{id}/close", post(close_handler::<C>))
        .route("/v1/spending", get(spending_handler::<C>))
        .route("/v1/warnings", get(warnings_handler::<C>))
        .fallback(|| async { error(Http::NOT_FOUND, "no such route; see docs/agent.openapi.json") })
        .layer(middleware::from_fn_with_state(state.clone(), guard_layer::<C>))
        .with_state(state)
}

async fn guard_layer<C: ChainView + ChainWriter + Clone + 'static>(
    State(state): State<ApiState<C>>,
    request: Request,
    next: Next,
) -> Response {
    match state.guard.refusal(request.headers(), request.uri().path()) {
        None => next.run(request).await,
        Some(response) => response,
    }
}

/// Reads a JSON body of at most [`BODY_MAX`] bytes into `T` (unknown fields refused).
async fn json_body<T: for<'de> Deserialize<'de>>(body: Body) -> Result<T, Response> {
    let bytes = axum::body::to_bytes(body, BODY_MAX)
        .await
        .map_err(|_| error(Http::PAYLOAD_TOO_LARGE, format!("the body is larger than {BODY_MAX} bytes")))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| error(Http::BAD_REQUEST, format!("the body is not the expected JSON: {e}")))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProofBody {
    provider: String,
    #[serde(default)]
    service_id: Option<String>,
    #[serde(default)]
    request_digest: Option<String>,
    #[serde(default)]
    store_request: Option<String>,
}

async fn proof_handler<C: ChainView + ChainWriter + Clone + 'static>(
    State(state): State<ApiState<C>>,
    request: Request,
) -> Response {
    let body: ProofBody = match json_body(request.into_body()).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let request = match (&body.request_digest, &body.store_request) {
        (Some(d), None) => match parse_digest(d) {
            Ok(d) => RequestRef::Digest(d),
            Err(e) => return agent_error(&e),
        },
        (None, Some(b)) => match B64.decode(b.trim()) {
            Ok(bytes) => RequestRef::Store(bytes),
            Err(e) => return error(Http::BAD_REQUEST, format!("store_request is not base64: {e}")),
        },
        _ => {
            return error(
                Http::BAD_REQUEST,
                "give exactly one of request_digest (hex, 32 bytes) or store_request (base64 of the encoded StoreQueryRequest)",
            );
        }
    };
    let service = body.service_id.unwrap_or_else(|| paystreams_store::STORE_SERVICE_ID.to_owned());
    if matches!(request, RequestRef::Store(_)) && service != paystreams_store::STORE_SERVICE_ID {
        return error(
            Http::BAD_REQUEST,
            format!("store_request is for service {}", paystreams_store::STORE_SERVICE_ID),
        );
    }
    match state.agent.proof(&body.provider, &service, &request).await {
        Ok(answer) => Json(json!({
            "eligibility_proof": B64.encode(&answer.proof),
            "kind": answer.kind.name(),
            "session": hex::encode(answer.session),
            "stream_id": answer.stream_id,
            "provider": paystreams_lez_core::AccountId(answer.provider.advert.provider_id).to_string(),
            "provider_peer_id": answer.provider.peer_id.to_string(),
            "requester_peer_id": answer.requester.to_string(),
        }))
        .into_response(),
        Err(e) => agent_error(&e),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TerminationBody {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    resume_after: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutcomeBody {
    session: String,
    #[serde(default)]
    eligibility: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    status_code: Option<u32>,
    #[serde(default)]
    status_desc: Option<String>,
    #[serde(default)]
    termination: Option<TerminationBody>,
}

fn outcome_of(body: &OutcomeBody) -> Result<(EligibilityStatus, Option<ServiceTermination>), String> {
    if let Some(encoded) = &body.eligibility {
        if body.status.is_some() || body.status_code.is_some() || body.termination.is_some() {
            return Err(
                "give either eligibility (base64 of field 30) or status/status_code with termination, not both".into(),
            );
        }
        let bytes = B64.decode(encoded.trim()).map_err(|e| format!("eligibility is not base64: {e}"))?;
        let decoded = paystreams_store::wire::Eligibility::decode(&bytes)
            .map_err(|e| format!("eligibility is not an encoded EligibilityStatus (field 30): {e}"))?;
        return Ok((decoded.status, decoded.termination));
    }
    let code = match (&body.status, body.status_code) {
        (Some(name), None) => status_by_name(name).ok_or_else(|| {
            format!("status {name:?} is not one of OK, PARAMS_REJECTED, PROOF_INVALID, STREAM_NOT_ACTIVE")
        })?,
        (None, Some(code)) => paystreams_wire::StatusCode::from_code(code)
            .ok_or_else(|| format!("status_code {code} is not 0 (OK), 1, 2 or 3"))?,
        _ => return Err(
            "give the provider's answer: eligibility (base64 of field 30), or status (name) or status_code (number)"
                .into(),
        ),
    };
    let desc = body.status_desc.clone().unwrap_or_else(|| code.default_desc().to_owned());
    if desc.len() > 512 {
        return Err("status_desc is longer than 512 bytes".into());
    }
    let termination = match &body.termination {
        None => None,
        Some(t) => {
            let termination_type = match t.kind.to_ascii_uppercase().as_str() {
                "TEMPORARY" => TerminationType::Temporary,
                "PERMANENT" => TerminationType::Permanent,
                other => return Err(format!("termination type {other:?} is not TEMPORARY or PERMANENT")),
            };
            if termination_type == TerminationType::Permanent && t.resume_after != 0 {
                return Err("a PERMANENT termination has resume_after 0".into());
            }
            Some(ServiceTermination { termination_type, resume_after: t.resume_after })
        }
    };
    Ok((EligibilityStatus { status_code: code as u32, status_desc: desc }, termination))
}

async fn outcome_handler<C: ChainView + ChainWriter + Clone + 'static>(
    State(state): State<ApiState<C>>,
    request: Request,
) -> Response {
    let body: OutcomeBody = match json_body(request.into_body()).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let session = match parse_session_id(&body.session) {
        Ok(s) => s,
        Err(e) => return agent_error(&e),
    };
    let (status, termination) = match outcome_of(&body) {
        Ok(o) => o,
        Err(e) => return error(Http::BAD_REQUEST, e),
    };
    match state.agent.outcome(&session, &status, termination).await {
        Ok(answer) => Json(answer).into_response(),
        Err(e) => agent_error(&e),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentityQuery {
    provider: String,
}

async fn identity_handler<C: ChainView + ChainWriter + Clone + 'static>(
    State(state): State<ApiState<C>>,
    query: Result<Query<IdentityQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return error(Http::BAD_REQUEST, "give ?provider=<the provider's multiaddr, ending in /p2p/PEER_ID>");
    };
    let info = match state.agent.provider(&query.provider).await {
        Ok(i) => i,
        Err(e) => return agent_error(&e),
    };
    let keypair = match state.agent.identity(&info).await {
        Ok(k) => k,
        Err(e) => return agent_error(&e),
    };
    let Ok(encoded) = keypair.to_protobuf_encoding() else {
        return error(Http::SERVICE_UNAVAILABLE, "the transport identity cannot be encoded");
    };
    Json(json!({
        "provider": paystreams_lez_core::AccountId(info.advert.provider_id).to_string(),
        "provider_peer_id": info.peer_id.to_string(),
        "requester_peer_id": keypair.public().to_peer_id().to_string(),
        "key_type": "ed25519",
        "private_key": B64.encode(encoded),
        "encoding": "libp2p PrivateKey protobuf, base64",
    }))
    .into_response()
}

async fn sessions_handler<C: ChainView + ChainWriter + Clone + 'static>(State(state): State<ApiState<C>>) -> Response {
    match state.agent.sessions().await {
        Ok(v) => Json(v).into_response(),
        Err(e) => agent_error(&e),
    }
}

async fn close_handler<C: ChainView + ChainWriter + Clone + 'static>(
    State(state): State<ApiState<C>>,
    Path(id): Path<String>,
) -> Response {
    let session = match parse_session_id(&id) {
        Ok(s) => s,
        Err(e) => return agent_error(&e),
    };
    match state.agent.close(&session).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => agent_error(&e),
    }
}

async fn spending_handler<C: ChainView + ChainWriter + Clone + 'static>(State(state): State<ApiState<C>>) -> Response {
    match state.agent.spending().await {
        Ok(v) => Json(v).into_response(),
        Err(e) => agent_error(&e),
    }
}

async fn warnings_handler<C: ChainView + ChainWriter + Clone + 'static>(State(state): State<ApiState<C>>) -> Response {
    Json(json!({ "warnings": state.agent.warnings() })).into_response()
}
