//! A minimal HTTP/1.1 client (hyper) with bounded bodies, for both sides of the example.

use std::time::Duration;

use http_body_util::{BodyExt as _, Full, Limited};
use hyper::{Method, Request, body::Bytes};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};

/// Largest answer body read.
pub const RESPONSE_MAX: usize = 4 * 1024 * 1024;
/// How long one exchange may take.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// One answer: status, headers, body.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as JSON (`null` when it is not JSON).
    #[must_use]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// A header's value as text.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// An HTTP client.
#[derive(Clone, Debug)]
pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Default for Http {
    fn default() -> Self {
        Self { client: Client::builder(TokioExecutor::new()).build_http() }
    }
}

impl Http {
    /// Sends `method url` with `headers` and `body`.
    ///
    /// # Errors
    /// A bad URL or header, no connection, a timeout, or a body over [`RESPONSE_MAX`].
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Result<Answer, String> {
        let mut request = Request::builder().method(method).uri(url);
        for (name, value) in headers {
            request = request.header(*name, value.as_str());
        }
        let request = request.body(Full::new(Bytes::from(body))).map_err(|e| format!("{url}: {e}"))?;
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| format!("{url}: {e}"))?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, RESPONSE_MAX)
                .collect()
                .await
                .map_err(|e| format!("{url}: reading the answer: {e}"))?
                .to_bytes()
                .to_vec();
            Ok(Answer { status: parts.status.as_u16(), headers: parts.headers, body })
        };
        tokio::time::timeout(TIMEOUT, exchange).await.map_err(|_| format!("{url}: no answer within {TIMEOUT:?}"))?
    }

    /// `POST url` with a JSON body and a bearer token.
    ///
    /// # Errors
    /// As [`Http::send`].
    pub async fn post_json(&self, url: &str, token: &str, body: &serde_json::Value) -> Result<Answer, String> {
        let headers = [("content-type", "application/json".to_owned()), ("authorization", format!("Bearer {token}"))];
        self.send(Method::POST, url, &headers, body.to_string().into_bytes()).await
    }

    /// `GET url` with a bearer token.
    ///
    /// # Errors
    /// As [`Http::send`].
    pub async fn get_authorized(&self, url: &str, token: &str) -> Result<Answer, String> {
        self.send(Method::GET, url, &[("authorization", format!("Bearer {token}"))], Vec::new()).await
    }
}
