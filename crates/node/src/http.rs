//! The HTTP front of the node: a tower layer in front of jsonrpsee that answers `GET /health`
//! (JSON with the height) and `GET /metrics` (Prometheus text), and enforces JSON-RPC 2.0 by the
//! letter on every `POST` before jsonrpsee sees it:
//!
//! - the body is bounded before it is read (a `Content-Length` over the limit gets 413 at once; a
//!   chunked body that grows past it gets 413 as soon as it does) and must arrive within the body
//!   read deadline (408 otherwise);
//! - each request object is checked against the specification (`jsonrpc` exactly `"2.0"`,
//!   `method` a string, `params` an array or object, `id` a string, an integer or null): what
//!   fails gets -32600 Invalid Request (with `id: null` when the id itself is at fault);
//! - ids are echoed byte for byte (jsonrpsee sees a small integer id of ours instead, so ids it
//!   cannot represent, such as negative integers, still work);
//! - notifications (no `id`) of a method with effects are executed, and their outcome is logged;
//!   notifications of a method whose only effect is its answer are refused and logged; neither
//!   gets a reply, and a request made only of notifications gets `204 No Content`;
//! - subscriptions over HTTP get a -32601 error saying to use the WebSocket at the same address.
//!
//! The per-method notification policy is [`crate::rpc::METHODS_WITH_EFFECTS`]; the figures are in
//! `docs/node.md` ("JSON-RPC by the letter").

use std::{
    collections::HashSet,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use http_body_util::{BodyExt as _, Limited};
use jsonrpsee::{
    core::BoxError,
    server::{HttpBody, HttpRequest, HttpResponse},
    types::{
        ErrorObjectOwned,
        error::{INVALID_REQUEST_CODE, METHOD_NOT_FOUND_CODE, PARSE_ERROR_CODE},
    },
};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::{
    MAX_BATCH_LEN, MAX_REQUEST_BODY_BYTES,
    chain::Chain,
    rpc::{METHODS_WITH_EFFECTS, Outcome, REFUSED_NO_EFFECT, log_notification},
};

/// What jsonrpsee's own request limit must allow beyond [`MAX_REQUEST_BODY_BYTES`]: the request
/// this layer forwards carries ids of its own (at most 3 digits each, in a batch of at most
/// [`MAX_BATCH_LEN`]), so it can be slightly longer than the body it was made from.
pub const FORWARD_SLACK_BYTES: u32 = 16 * 1024;

/// How long a client may take to send each request's headers (and so how long a connection may
/// stay idle between requests) and its body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadDeadlines {
    /// From the moment a connection waits for a request (its accept, or the previous answer on a
    /// kept-alive connection) to the end of that request's headers; past it, the connection is
    /// closed (hyper's header timer, set by [`crate::front`]).
    pub headers: Duration,
    /// From the end of the headers to the end of the body; past it, the request gets 408.
    pub body: Duration,
}

impl ReadDeadlines {
    /// 10 s for the headers, 15 s for a body of up to 1 MiB (about 70 KB/s, far below any link a
    /// node is used over).
    pub const DEFAULT: Self = Self { headers: Duration::from_secs(10), body: Duration::from_secs(15) };
}

impl Default for ReadDeadlines {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Adds `/health` and `/metrics`, and the JSON-RPC checks of this module.
#[derive(Clone)]
pub struct HttpLayer {
    chain: Arc<Chain>,
    shared: Arc<Shared>,
}

struct Shared {
    /// Subscription (and unsubscription) method names: served over WebSocket only.
    subscriptions: HashSet<String>,
    body_deadline: Duration,
}

impl HttpLayer {
    pub fn new(chain: Arc<Chain>, subscriptions: HashSet<String>, deadlines: ReadDeadlines) -> Self {
        Self { chain, shared: Arc::new(Shared { subscriptions, body_deadline: deadlines.body }) }
    }
}

impl<S> tower::Layer<S> for HttpLayer {
    type Service = HttpService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpService { inner, chain: Arc::clone(&self.chain), shared: Arc::clone(&self.shared) }
    }
}

/// The service [`HttpLayer`] wraps around jsonrpsee.
#[derive(Clone)]
pub struct HttpService<S> {
    inner: S,
    chain: Arc<Chain>,
    shared: Arc<Shared>,
}

fn respond(status: http::StatusCode, content_type: &'static str, body: String) -> HttpResponse {
    let mut response = HttpResponse::new(HttpBody::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(content_type));
    response
}

const JSON: &str = "application/json; charset=utf-8";

/// A response with one JSON-RPC error object and `id: null`.
fn error_response(status: http::StatusCode, error: &ErrorObjectOwned) -> HttpResponse {
    respond(status, JSON, error_text("null", error))
}

fn error_text(id: &str, error: &ErrorObjectOwned) -> String {
    let error = serde_json::to_string(error).unwrap_or_else(|_| r#"{"code":-32603,"message":"Internal error"}"#.into());
    format!(r#"{{"jsonrpc":"2.0","id":{id},"error":{error}}}"#)
}

fn invalid_request(what: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(INVALID_REQUEST_CODE, format!("Invalid Request: {}", what.into()), None::<()>)
}

fn too_large() -> ErrorObjectOwned {
    ErrorObjectOwned::owned(
        jsonrpsee::types::error::OVERSIZED_REQUEST_CODE,
        format!(
            "Request is too big: the body may be at most {MAX_REQUEST_BODY_BYTES} bytes; send fewer calls per batch \
             or a smaller transaction"
        ),
        Some(serde_json::json!({ "limit": MAX_REQUEST_BODY_BYTES })),
    )
}

impl<S> tower::Service<HttpRequest> for HttpService<S>
where
    S: tower::Service<HttpRequest, Response = HttpResponse, Error = BoxError> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = HttpResponse;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: HttpRequest) -> Self::Future {
        if request.method() == http::Method::GET {
            match request.uri().path() {
                "/health" => {
                    let body = serde_json::json!({
                        "status": "ok",
                        "height": self.chain.metrics.height(),
                        "mempool": self.chain.mempool_len(),
                    })
                    .to_string();
                    return Box::pin(async move { Ok(respond(http::StatusCode::OK, "application/json", body)) });
                }
                "/metrics" => {
                    let body = self.chain.metrics.render();
                    return Box::pin(
                        async move { Ok(respond(http::StatusCode::OK, "text/plain; version=0.0.4", body)) },
                    );
                }
                _ => {}
            }
        }
        if request.method() != http::Method::POST || !jsonrpsee::server::http::content_type_is_json(&request) {
            // WebSocket upgrades, and the 405/415 answers of jsonrpsee.
            return Box::pin(self.inner.call(request));
        }
        // The clone is ready (tower's rule: the one polled ready is the one called).
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let shared = Arc::clone(&self.shared);
        Box::pin(json_rpc_post(inner, shared, request))
    }
}

/// Reads the body within its bounds, checks and rewrites the JSON-RPC request, calls jsonrpsee,
/// and restores the ids in its answer.
async fn json_rpc_post<S>(mut inner: S, shared: Arc<Shared>, request: HttpRequest) -> Result<HttpResponse, BoxError>
where
    S: tower::Service<HttpRequest, Response = HttpResponse, Error = BoxError>,
{
    let (mut parts, body) = request.into_parts();
    if let Some(length) = parts.headers.get(http::header::CONTENT_LENGTH) {
        let length = length.to_str().ok().and_then(|l| l.parse::<u64>().ok());
        if length.is_none_or(|l| l > u64::from(MAX_REQUEST_BODY_BYTES)) {
            return Ok(error_response(http::StatusCode::PAYLOAD_TOO_LARGE, &too_large()));
        }
    }
    let limited = Limited::new(body, MAX_REQUEST_BODY_BYTES as usize);
    let bytes = match tokio::time::timeout(shared.body_deadline, limited.collect()).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return Ok(error_response(http::StatusCode::PAYLOAD_TOO_LARGE, &too_large()));
        }
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "request body unreadable");
            let error = invalid_request(format!("the request body could not be read ({e})"));
            return Ok(error_response(http::StatusCode::BAD_REQUEST, &error));
        }
        Err(_) => {
            let error = ErrorObjectOwned::owned(
                INVALID_REQUEST_CODE,
                format!(
                    "Request timeout: the body did not arrive within {} s; send the whole body at once",
                    shared.body_deadline.as_secs_f64()
                ),
                None::<()>,
            );
            return Ok(error_response(http::StatusCode::REQUEST_TIMEOUT, &error));
        }
    };
    let host = parts.headers.get(http::header::HOST).and_then(|h| h.to_str().ok()).map(str::to_owned);
    let plan = match plan(&bytes, &shared.subscriptions, host.as_deref()) {
        Ok(plan) => plan,
        Err(error) => return Ok(error_response(http::StatusCode::OK, &error)),
    };
    let Some(forward) = plan.forward_text() else {
        return Ok(plan.respond(&[]));
    };
    parts.headers.remove(http::header::TRANSFER_ENCODING);
    parts.headers.insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(forward.len()));
    let response = inner.call(HttpRequest::from_parts(parts, HttpBody::from(forward))).await?;
    if response.status() != http::StatusCode::OK {
        return Ok(response);
    }
    let (_, body) = response.into_parts();
    let body = body.collect().await.map_err(|e| -> BoxError { format!("reading the response: {e}").into() })?;
    let body = body.to_bytes();
    let answers = match answers(&body, plan.forwarded.len()) {
        Ok(answers) => answers,
        // An answer not per entry (e.g. the whole batch's response was too large): as it is.
        Err(()) => return Ok(respond(http::StatusCode::OK, JSON, String::from_utf8_lossy(&body).into_owned())),
    };
    Ok(plan.respond(&answers))
}

/// A member that is present, `null` included (serde gives `None` for `null` otherwise).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// A request object's members, unparsed.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default, borrow, deserialize_with = "present")]
    jsonrpc: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    method: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    params: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    id: Option<&'a RawValue>,
}

/// A response object from jsonrpsee, unparsed.
#[derive(Deserialize)]
struct Answer<'a> {
    id: u64,
    #[serde(default, borrow, deserialize_with = "present")]
    result: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    error: Option<&'a RawValue>,
}

/// One entry of the client's request, decided.
enum Entry {
    /// A call to forward: its index in [`Plan::forwarded`]; `id` is the client's id as written,
    /// `None` for a notification.
    Forward { slot: usize, id: Option<String>, method: String },
    /// Answered here with an error: `id` as written (or `null`).
    Answer { id: String, error: ErrorObjectOwned },
    /// A notification refused here: no answer.
    Silent,
}

struct Plan {
    batch: bool,
    entries: Vec<Entry>,
    /// The request objects to send to jsonrpsee, each with its slot as id.
    forwarded: Vec<String>,
}

/// Checks an id against the specification: a string, null, or a number; numbers must be integers
/// written without fraction or exponent, within −2^63..2^64−1 (what clients can represent).
fn valid_id(raw: &RawValue) -> bool {
    let text = raw.get();
    match text.as_bytes().first() {
        Some(b'"') => true,
        Some(b'n') => text == "null",
        Some(b'-' | b'0'..=b'9') => {
            let digits = text.strip_prefix('-').unwrap_or(text);
            !digits.is_empty()
                && digits.bytes().all(|b| b.is_ascii_digit())
                && text.parse::<i128>().is_ok_and(|n| (i128::from(i64::MIN)..=i128::from(u64::MAX)).contains(&n))
        }
        _ => false,
    }
}

/// Decides what to do with each request object of `body`, or refuses the whole body.
fn plan(body: &[u8], subscriptions: &HashSet<String>, host: Option<&str>) -> Result<Plan, ErrorObjectOwned> {
    let parse_error = || ErrorObjectOwned::owned(PARSE_ERROR_CODE, "Parse error: the body is not JSON", None::<()>);
    let whole: &RawValue = serde_json::from_slice(body).map_err(|_| parse_error())?;
    let text = whole.get();
    let (batch, objects): (bool, Vec<&RawValue>) = if text.starts_with('[') {
        let objects: Vec<&RawValue> = serde_json::from_str(text).map_err(|_| parse_error())?;
        if objects.is_empty() {
            return Err(invalid_request("an empty batch; send at least one request object"));
        }
        if objects.len() > MAX_BATCH_LEN as usize {
            return Err(ErrorObjectOwned::owned(
                INVALID_REQUEST_CODE,
                format!("Invalid Request: a batch may hold at most {MAX_BATCH_LEN} requests; split it"),
                Some(serde_json::json!({ "limit": MAX_BATCH_LEN })),
            ));
        }
        (true, objects)
    } else {
        (false, vec![whole])
    };
    let mut plan = Plan { batch, entries: Vec::with_capacity(objects.len()), forwarded: Vec::new() };
    for object in objects {
        let entry = entry(object, plan.forwarded.len(), subscriptions, host);
        if let Entry::Forward { slot, method, .. } = &entry {
            let params = serde_json::from_str::<Envelope<'_>>(object.get()).ok().and_then(|e| e.params);
            let method = serde_json::to_string(method).unwrap_or_default();
            plan.forwarded.push(match params {
                Some(params) => {
                    format!(r#"{{"jsonrpc":"2.0","id":{slot},"method":{method},"params":{}}}"#, params.get())
                }
                None => format!(r#"{{"jsonrpc":"2.0","id":{slot},"method":{method}}}"#),
            });
        }
        plan.entries.push(entry);
    }
    Ok(plan)
}

/// Checks one request object.
fn entry(object: &RawValue, slot: usize, subscriptions: &HashSet<String>, host: Option<&str>) -> Entry {
    let null = || "null".to_owned();
    if !object.get().starts_with('{') {
        return Entry::Answer { id: null(), error: invalid_request("each request must be a JSON object") };
    }
    let Ok(envelope) = serde_json::from_str::<Envelope<'_>>(object.get()) else {
        return Entry::Answer { id: null(), error: invalid_request("the request object could not be read") };
    };
    let id = match envelope.id {
        None => None,
        Some(raw) if valid_id(raw) => Some(raw.get().to_owned()),
        Some(_) => {
            return Entry::Answer {
                id: null(),
                error: invalid_request(
                    "`id` must be a string, null, or an integer in -2^63..2^64-1 written without fraction or exponent",
                ),
            };
        }
    };
    let answer_id = || id.clone().unwrap_or_else(null);
    if envelope.jsonrpc.and_then(|v| serde_json::from_str::<String>(v.get()).ok()).as_deref() != Some("2.0") {
        return Entry::Answer { id: answer_id(), error: invalid_request(r#"`jsonrpc` must be exactly "2.0""#) };
    }
    let Some(method) = envelope.method.and_then(|m| serde_json::from_str::<String>(m.get()).ok()) else {
        return Entry::Answer { id: answer_id(), error: invalid_request("`method` must be a string") };
    };
    if let Some(params) = envelope.params
        && !(params.get().starts_with('[') || params.get().starts_with('{'))
    {
        return Entry::Answer {
            id: answer_id(),
            error: invalid_request("`params` must be an array or an object, or be left out"),
        };
    }
    if subscriptions.contains(&method) {
        let url = host.map_or_else(|| "ws:// at this same address".to_owned(), |h| format!("ws://{h}"));
        let error = ErrorObjectOwned::owned(
            METHOD_NOT_FOUND_CODE,
            format!("{method} is a subscription and needs a WebSocket connection: connect to {url} and call it there"),
            Some(serde_json::json!({ "transport": "websocket" })),
        );
        return match id {
            Some(id) => Entry::Answer { id, error },
            None => {
                log_notification(&method, &Outcome::Refused("a subscription needs a WebSocket connection"));
                Entry::Silent
            }
        };
    }
    if id.is_none() && !METHODS_WITH_EFFECTS.contains(&method.as_str()) {
        log_notification(&method, &Outcome::Refused(REFUSED_NO_EFFECT));
        return Entry::Silent;
    }
    Entry::Forward { slot, id, method }
}

impl Plan {
    /// The request for jsonrpsee, or `None` when nothing is to be forwarded.
    fn forward_text(&self) -> Option<String> {
        match self.forwarded.as_slice() {
            [] => None,
            [one] if !self.batch => Some(one.clone()),
            many => Some(format!("[{}]", many.join(","))),
        }
    }

    /// The client's answer: every entry's answer in request order with the client's ids, without
    /// the notifications; `204 No Content` when nothing is to be answered.
    fn respond(&self, answers: &[(Option<String>, Option<String>)]) -> HttpResponse {
        let mut out = Vec::with_capacity(self.entries.len());
        for entry in &self.entries {
            match entry {
                Entry::Answer { id, error } => out.push(error_text(id, error)),
                Entry::Silent => {}
                Entry::Forward { slot, id, method } => {
                    let (result, error) = answers.get(*slot).cloned().unwrap_or((None, None));
                    match id {
                        Some(id) => out.push(match (result, error) {
                            (_, Some(error)) => format!(r#"{{"jsonrpc":"2.0","id":{id},"error":{error}}}"#),
                            (Some(result), None) => format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#),
                            (None, None) => error_text(
                                id,
                                &ErrorObjectOwned::owned(-32603, "Internal error: no answer", None::<()>),
                            ),
                        }),
                        None => match error {
                            Some(error) => log_notification(method, &Outcome::Failed(error)),
                            None => log_notification(method, &Outcome::Executed),
                        },
                    }
                }
            }
        }
        match (self.batch, out.as_slice()) {
            (_, []) => {
                let mut response = HttpResponse::new(HttpBody::empty());
                *response.status_mut() = http::StatusCode::NO_CONTENT;
                response
            }
            (false, [one]) => respond(http::StatusCode::OK, JSON, one.clone()),
            _ => respond(http::StatusCode::OK, JSON, format!("[{}]", out.join(","))),
        }
    }
}

type Answers = Vec<(Option<String>, Option<String>)>;

/// jsonrpsee's answer per slot: `(result, error)` as raw JSON text.
fn answers(body: &[u8], count: usize) -> Result<Answers, ()> {
    let whole: &RawValue = serde_json::from_slice(body).map_err(|_| ())?;
    let objects: Vec<&RawValue> =
        if whole.get().starts_with('[') { serde_json::from_str(whole.get()).map_err(|_| ())? } else { vec![whole] };
    let mut out = vec![(None, None); count];
    for object in objects {
        let answer: Answer<'_> = serde_json::from_str(object.get()).map_err(|_| ())?;
        let slot = out.get_mut(usize::try_from(answer.id).map_err(|_| ())?).ok_or(())?;
        *slot = (answer.result.map(|r| r.get().to_owned()), answer.error.map(|e| e.get().to_owned()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).expect("valid JSON")
    }

    #[test]
    fn ids_per_the_specification() {
        for ok in ["\"a\"", "null", "0", "-1", "18446744073709551615", "-9223372036854775808"] {
            assert!(valid_id(&raw(ok)), "{ok}");
        }
        for bad in ["{}", "[]", "true", "1.5", "1e400", "1.0", "18446744073709551616", "-9223372036854775809"] {
            assert!(!valid_id(&raw(bad)), "{bad}");
        }
    }
}
