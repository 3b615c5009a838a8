//! The user view: sessions, spending and warnings of a running `paystream agent`, read from its
//! API (`GET /v1/sessions`, `/v1/spending`, `/v1/warnings`, with its bearer token) by the same
//! HTTP fetch as the provider's admin endpoint ([`crate::sessions`]).

use http_body_util::Empty;
use hyper::{Uri, body::Bytes};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use serde_json::Value;

use crate::sessions::{ADMIN_URL_LEN_MAX, GetError, get_bytes};

/// Largest answer read from the agent.
pub const AGENT_RESPONSE_MAX: usize = 4 * 1024 * 1024;

/// A running agent's API.
#[derive(Clone, Debug)]
pub struct HttpAgent {
    url: String,
    client: Client<HttpConnector, Empty<Bytes>>,
    token: Option<String>,
}

/// What the agent reports, as its API answers it.
#[derive(Clone, Debug)]
pub struct AgentReport {
    pub sessions: Value,
    pub spending: Value,
    pub warnings: Value,
}

impl HttpAgent {
    /// The agent at `url` (`http://127.0.0.1:PORT`, as `paystream agent` prints it).
    ///
    /// # Errors
    /// A URL that is too long, not `http://`, or unparsable, with what to give instead.
    pub fn new(url: &str) -> Result<Self, String> {
        let bad = |detail: &str| {
            format!(
                "--agent {url:?} is not usable: {detail}. Give the address `paystream agent` printed, e.g. http://127.0.0.1:8060"
            )
        };
        let trimmed = url.trim().trim_end_matches('/');
        if trimmed.len() > ADMIN_URL_LEN_MAX {
            return Err(bad(&format!("it is longer than {ADMIN_URL_LEN_MAX} characters")));
        }
        if !trimmed.starts_with("http://") {
            return Err(bad("only plain http:// addresses are supported (the agent listens on loopback)"));
        }
        let uri: Uri =
            format!("{trimmed}/v1/sessions").parse().map_err(|e: hyper::http::uri::InvalidUri| bad(&e.to_string()))?;
        if uri.host().is_none_or(str::is_empty) {
            return Err(bad("it has no host"));
        }
        Ok(Self { url: trimmed.to_owned(), client: Client::builder(TokioExecutor::new()).build_http(), token: None })
    }

    /// Sends `Authorization: Bearer <token>` (the file `paystream agent` wrote).
    #[must_use]
    pub fn with_token(mut self, token: String) -> Self {
        self.token = Some(token);
        self
    }

    /// The agent's address.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    async fn get(&self, path: &str) -> Result<Value, String> {
        let url = format!("{}{path}", self.url);
        let uri: Uri = url.parse().map_err(|e: hyper::http::uri::InvalidUri| e.to_string())?;
        let body =
            get_bytes(&self.client, &uri, self.token.as_deref(), AGENT_RESPONSE_MAX).await.map_err(|e| match e {
                GetError::Unreachable(detail) => format!(
                    "cannot reach the agent at {url}: {detail}. Is `paystream agent` running there? Check --agent"
                ),
                GetError::TooLarge(detail) => format!("the agent's answer at {url} is too large: {detail}"),
                GetError::Status(401, _) => format!(
                    "the agent at {url} refused the token: give --agent-token-file, the file `paystream agent` printed"
                ),
                GetError::Status(status, body) => format!("the agent at {url} answered HTTP {status}: {body}"),
            })?;
        serde_json::from_slice(&body).map_err(|e| format!("the agent at {url} sent something that is not JSON: {e}"))
    }

    /// Sessions, spending and warnings.
    ///
    /// # Errors
    /// The agent cannot be reached, refuses the token, or answers something unexpected.
    pub async fn report(&self) -> Result<AgentReport, String> {
        Ok(AgentReport {
            sessions: self.get("/v1/sessions").await?,
            spending: self.get("/v1/spending").await?,
            warnings: self.get("/v1/warnings").await?,
        })
    }
}
