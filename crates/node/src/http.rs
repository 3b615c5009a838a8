//! A tower layer in front of jsonrpsee that answers `GET /health` (JSON with the height) and
//! `GET /metrics` (Prometheus text) and forwards every other request to the JSON-RPC service.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use jsonrpsee::{
    core::BoxError,
    server::{HttpBody, HttpRequest, HttpResponse},
};

use crate::chain::Chain;

/// Adds `/health` and `/metrics`.
#[derive(Clone)]
pub struct HealthLayer {
    chain: Arc<Chain>,
}

impl HealthLayer {
    pub const fn new(chain: Arc<Chain>) -> Self {
        Self { chain }
    }
}

impl<S> tower::Layer<S> for HealthLayer {
    type Service = HealthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HealthService { inner, chain: Arc::clone(&self.chain) }
    }
}

/// The service [`HealthLayer`] wraps around jsonrpsee.
#[derive(Clone)]
pub struct HealthService<S> {
    inner: S,
    chain: Arc<Chain>,
}

fn respond(content_type: &'static str, body: String) -> HttpResponse {
    let mut response = HttpResponse::new(HttpBody::from(body));
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(content_type));
    response
}

impl<S, B> tower::Service<HttpRequest<B>> for HealthService<S>
where
    S: tower::Service<HttpRequest<B>, Response = HttpResponse, Error = BoxError>,
    S::Future: Send + 'static,
{
    type Response = HttpResponse;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: HttpRequest<B>) -> Self::Future {
        if request.method() == http::Method::GET {
            match request.uri().path() {
                "/health" => {
                    let body = serde_json::json!({
                        "status": "ok",
                        "height": self.chain.metrics.height(),
                        "mempool": self.chain.mempool_len(),
                    })
                    .to_string();
                    return Box::pin(async move { Ok(respond("application/json", body)) });
                }
                "/metrics" => {
                    let body = self.chain.metrics.render();
                    return Box::pin(async move { Ok(respond("text/plain; version=0.0.4", body)) });
                }
                _ => {}
            }
        }
        Box::pin(self.inner.call(request))
    }
}
