//! The paid JSON API: `GET /v1/quotes?n=N` (N quotes, 1 to 1000) for paid requests only, and
//! `GET /policy` (the gate's advert, public) so users can build their proposal.
//!
//! Per paid request: read the proof, requester and request id headers → compute the canonical
//! digest → `POST /v1/check` to the gate → not paid: 402 with the readable reason (JSON and
//! headers) → paid: build the answer, `POST /v1/served` with its size → refused (over the
//! first-response cap): 402 with that refusal instead → else 200 with the data.

use std::sync::Arc;

use axum::{
    Json, Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, HeaderValue, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
    routing::get,
};
use paystreams_wire::RequestDigest as _;
use serde_json::json;

use crate::{
    PROOF_HEADER, REQUEST_ID_HEADER, REQUESTER_HEADER, STATUS_HEADER, TERMINATION_HEADER,
    canonical::{CanonicalHttpRequest, FIELD_MAX_LEN},
    http::Http,
};

/// Largest request body read.
pub const BODY_MAX: usize = 64 * 1024;
/// Most quotes one request may ask for.
pub const QUOTES_MAX: u32 = 1_000;

/// Where the gate is and its token.
#[derive(Clone, Debug)]
pub struct GateClient {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub token: String,
    pub http: Http,
}

impl GateClient {
    #[must_use]
    pub fn new(base: &str, token: &str) -> Self {
        Self { base: base.trim_end_matches('/').to_owned(), token: token.to_owned(), http: Http::default() }
    }
}

/// The service's router.
pub fn router(gate: GateClient) -> Router {
    Router::new()
        .route("/policy", get(policy))
        .route("/v1/quotes", get(paid))
        .layer(axum::extract::DefaultBodyLimit::max(BODY_MAX))
        .with_state(Arc::new(gate))
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

async fn policy(State(gate): State<Arc<GateClient>>) -> Response {
    match gate.http.get_authorized(&format!("{}/v1/policy", gate.base), &gate.token).await {
        Ok(answer) if answer.status == 200 => Json(answer.json()).into_response(),
        Ok(answer) => error(StatusCode::BAD_GATEWAY, format!("the gate answered {}", answer.status)),
        Err(e) => error(StatusCode::BAD_GATEWAY, format!("the gate is unreachable: {e}")),
    }
}

/// The data: `n` quotes.
fn quotes(uri: &Uri) -> Result<Vec<u8>, String> {
    let n = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .find_map(|kv| kv.strip_prefix("n="))
        .map_or(Ok(1), str::parse::<u32>)
        .ok()
        .filter(|n| (1..=QUOTES_MAX).contains(n))
        .ok_or_else(|| format!("n must be 1 to {QUOTES_MAX}"))?;
    let list: Vec<serde_json::Value> = (0..n)
        .map(|i| json!({ "id": i, "text": format!("quote {i:04}: paid data is served to paid requests") }))
        .collect();
    Ok(json!({ "quotes": list }).to_string().into_bytes())
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A 402 carrying the gate's verdict: JSON `{error, status, termination}` and the headers.
fn not_paid(answer: &serde_json::Value) -> Response {
    let status = &answer["status"];
    let desc = status["desc"].as_str().unwrap_or("not paid").to_owned();
    let mut response = (
        StatusCode::PAYMENT_REQUIRED,
        Json(json!({ "error": desc, "status": status, "termination": answer["termination"] })),
    )
        .into_response();
    set_verdict_headers(&mut response, answer);
    response
}

fn set_verdict_headers(response: &mut Response, answer: &serde_json::Value) {
    let status = &answer["status"];
    let value = format!("{} {}", status["code"].as_u64().unwrap_or(0), status["name"].as_str().unwrap_or("OK"));
    if let Ok(v) = HeaderValue::from_str(&value) {
        response.headers_mut().insert(STATUS_HEADER, v);
    }
    if let Some(t) = answer["termination"].as_object() {
        let value =
            format!("{} {}", t["type"].as_str().unwrap_or_default(), t["resume_after"].as_str().unwrap_or_default());
        if let Ok(v) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(TERMINATION_HEADER, v);
        }
    }
}

async fn paid(
    State(gate): State<Arc<GateClient>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(requester) = header_text(&headers, REQUESTER_HEADER) else {
        return error(StatusCode::BAD_REQUEST, format!("send your requester id in {REQUESTER_HEADER}"));
    };
    let request_id = header_text(&headers, REQUEST_ID_HEADER).unwrap_or_default();
    if request_id.is_empty() || request_id.len() > 64 {
        return error(
            StatusCode::BAD_REQUEST,
            format!("send a fresh request id (1 to 64 characters) in {REQUEST_ID_HEADER}"),
        );
    }
    let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str());
    if path_and_query.len() > FIELD_MAX_LEN {
        return error(StatusCode::URI_TOO_LONG, format!("path and query over {FIELD_MAX_LEN} bytes"));
    }
    let digest = CanonicalHttpRequest::new(method.as_str(), path_and_query, request_id, &body).digest();
    let data = match quotes(&uri) {
        Ok(data) => data,
        Err(why) => return error(StatusCode::BAD_REQUEST, why),
    };
    let mut check = json!({ "requester": requester, "request_digest": hex::encode(digest) });
    if let Some(proof) = header_text(&headers, PROOF_HEADER) {
        check["eligibility_proof"] = json!(proof);
    }
    let answer = match gate.http.post_json(&format!("{}/v1/check", gate.base), &gate.token, &check).await {
        Ok(a) if a.status == 200 => a.json(),
        Ok(a) if (400..500).contains(&a.status) => {
            // The gate's own 4xx (a bad proof encoding, a requester over its rate) is the caller's.
            let status = StatusCode::from_u16(a.status).unwrap_or(StatusCode::BAD_REQUEST);
            return (status, Json(a.json())).into_response();
        }
        Ok(a) => {
            return error(StatusCode::SERVICE_UNAVAILABLE, format!("the gate answered {}; retry shortly", a.status));
        }
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, format!("the gate is unreachable: {e}")),
    };
    if answer["paid"] != json!(true) {
        return not_paid(&answer);
    }
    let served = json!({ "ticket": answer["grant"]["ticket"], "bytes": data.len() });
    let report = match gate.http.post_json(&format!("{}/v1/served", gate.base), &gate.token, &served).await {
        Ok(a) if a.status == 200 => a.json(),
        Ok(a) => {
            return error(StatusCode::SERVICE_UNAVAILABLE, format!("the gate answered {}; retry shortly", a.status));
        }
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, format!("the gate is unreachable: {e}")),
    };
    if report["ok"] != json!(true) {
        return not_paid(&report);
    }
    let mut response = (StatusCode::OK, [("content-type", "application/json")], data).into_response();
    set_verdict_headers(&mut response, &answer);
    response
}
