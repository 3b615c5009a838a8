//! What keeps other web pages from using the dashboard's keys: a `Host` allow-list (against DNS
//! rebinding), an `Origin` check and an anti-forgery token on every form post, and headers that
//! forbid framing, sniffing and any script, style or connection not served by the dashboard.

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::{HeaderValue, Method, header},
    middleware::Next,
    response::{IntoResponse as _, Response},
};
use rand_core::RngCore as _;

use crate::{app::AppState, error::PageError};

/// Content-Security-Policy of every response: nothing from other origins.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
     connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// A fresh random anti-forgery token (128 bits, hex).
#[must_use]
pub fn new_token() -> String {
    let mut bytes = [0_u8; 16];
    rand_core::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Constant-time comparison of the submitted token with ours.
#[must_use]
pub fn token_matches(expected: &str, given: &str) -> bool {
    expected.len() == given.len() && expected.bytes().zip(given.bytes()).fold(0_u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// `Host` values a loopback listener answers to.
#[must_use]
pub fn loopback_hosts(addr: std::net::SocketAddr) -> Vec<String> {
    let port = addr.port();
    let mut hosts = vec![addr.to_string(), format!("localhost:{port}")];
    if addr.ip().is_ipv4() {
        hosts.push(format!("127.0.0.1:{port}"));
    } else {
        hosts.push(format!("[::1]:{port}"));
    }
    hosts.dedup();
    hosts
}

/// Middleware: refuses unknown hosts and cross-origin posts; adds the security headers.
pub async fn guard(State(app): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("").to_owned();
    if let Some(allowed) = &app.allowed_hosts
        && !allowed.iter().any(|a| a.eq_ignore_ascii_case(&host))
    {
        let first = allowed.first().cloned().unwrap_or_default();
        return PageError::Forbidden(format!(
            "this dashboard answers only to {}; open it at http://{first}/ (other Host names are refused so that no other \
             web site can reach it through DNS rebinding)",
            allowed.join(", ")
        ))
        .into_response();
    }
    if request.method() == Method::POST
        && let Some(origin) = request.headers().get(header::ORIGIN).and_then(|o| o.to_str().ok())
        && origin != format!("http://{host}")
    {
        return PageError::Forbidden(format!(
            "a form from {origin} tried to post to this dashboard; only its own pages may submit actions"
        ))
        .into_response();
    }
    let mut response = next.run(request).await;
    // `same-origin`, not `no-referrer`: with no referrer at all, browsers send `Origin: null`
    // on the dashboard's own form posts, which the check above refuses.
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    response
}
