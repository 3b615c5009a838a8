//! Where the provider view gets the provider engine's sessions: a [`SessionSource`], either the
//! Store provider's admin endpoint over HTTP ([`HttpSessions`], `GET {admin}/sessions`) or any
//! [`SessionStore`] in this process ([`StoreSessions`], for embedding and tests).

use std::{future::Future, pin::Pin, time::Duration};

use http_body_util::{BodyExt as _, Empty, Limited};
use hyper::{Uri, body::Bytes};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use paystreams_provider::{ProviderReport, SessionStore};

/// Largest `/sessions` response read (1,000 sessions are about 600 KB).
pub const SESSIONS_RESPONSE_MAX: usize = 4 * 1024 * 1024;

/// How long a `/sessions` request may take.
pub const SESSIONS_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest `--provider-admin` URL accepted.
pub const ADMIN_URL_LEN_MAX: usize = 512;

/// A boxed, sendable future (the trait is used as `dyn SessionSource`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why sessions could not be read; every message says what to check.
#[derive(Debug, thiserror::Error)]
pub enum SessionSourceError {
    #[error(
        "--provider-admin {url:?} is not usable: {detail}. Give the provider's admin address, e.g. http://127.0.0.1:8041"
    )]
    BadUrl { url: String, detail: String },
    #[error(
        "cannot reach the provider admin endpoint {url}: {detail}. Is the Store provider running with its admin \
         address there? Check --provider-admin"
    )]
    Unreachable { url: String, detail: String },
    #[error("the provider admin endpoint {url} answered HTTP {status}: {body}")]
    Status { url: String, status: u16, body: String },
    #[error("the provider admin endpoint {url} sent something that is not a sessions report: {detail}")]
    Invalid { url: String, detail: String },
    #[error("reading the provider's session store failed: {0}")]
    Store(String),
}

/// A source of the provider engine's session report.
pub trait SessionSource: Send + Sync {
    /// Where the sessions come from, for the page ("http://127.0.0.1:8041/sessions").
    fn describe(&self) -> String;

    /// The current report.
    fn report(&self) -> BoxFuture<'_, Result<ProviderReport, SessionSourceError>>;
}

/// The Store provider's admin endpoint: `GET {admin}/sessions` returns a [`ProviderReport`].
#[derive(Clone, Debug)]
pub struct HttpSessions {
    url: String,
    uri: Uri,
    client: Client<HttpConnector, Empty<Bytes>>,
    /// The admin endpoint's bearer token.
    token: Option<String>,
}

impl HttpSessions {
    /// Sessions from the admin endpoint at `admin_url` (`http://HOST:PORT`, optionally with a
    /// path prefix; `/sessions` is appended).
    ///
    /// # Errors
    /// A URL that is too long, not `http://`, or unparsable.
    pub fn new(admin_url: &str) -> Result<Self, SessionSourceError> {
        let bad = |detail: &str| SessionSourceError::BadUrl { url: admin_url.to_owned(), detail: detail.to_owned() };
        let trimmed = admin_url.trim();
        if trimmed.len() > ADMIN_URL_LEN_MAX {
            return Err(bad(&format!("it is longer than {ADMIN_URL_LEN_MAX} characters")));
        }
        if !trimmed.starts_with("http://") {
            return Err(bad(
                "only plain http:// admin addresses are supported (the admin endpoint is meant for loopback)",
            ));
        }
        let url = format!("{}/sessions", trimmed.trim_end_matches('/'));
        let uri: Uri = url.parse().map_err(|e: hyper::http::uri::InvalidUri| bad(&e.to_string()))?;
        if uri.host().is_none_or(str::is_empty) {
            return Err(bad("it has no host"));
        }
        let client = Client::builder(TokioExecutor::new()).build_http();
        Ok(Self { url, uri, client, token: None })
    }

    /// Sends `Authorization: Bearer <token>` (the provider's admin token).
    #[must_use]
    pub fn with_token(mut self, token: String) -> Self {
        self.token = Some(token);
        self
    }

    async fn fetch(&self) -> Result<ProviderReport, SessionSourceError> {
        let body = match get_bytes(&self.client, &self.uri, self.token.as_deref(), SESSIONS_RESPONSE_MAX).await {
            Ok(body) => body,
            Err(GetError::Unreachable(detail)) => {
                return Err(SessionSourceError::Unreachable { url: self.url.clone(), detail });
            }
            Err(GetError::TooLarge(detail)) => {
                return Err(SessionSourceError::Invalid { url: self.url.clone(), detail });
            }
            Err(GetError::Status(status, body)) => {
                return Err(SessionSourceError::Status { url: self.url.clone(), status, body });
            }
        };
        serde_json::from_slice(&body)
            .map_err(|e| SessionSourceError::Invalid { url: self.url.clone(), detail: e.to_string() })
    }
}

/// Why a local API's `GET` failed.
#[derive(Debug)]
pub(crate) enum GetError {
    Unreachable(String),
    TooLarge(String),
    /// A non-success status and the start of the body.
    Status(u16, String),
}

/// `GET uri` (with the bearer `token`), within [`SESSIONS_TIMEOUT`] for the answer and again
/// for the body, reading at most `max` bytes: the one HTTP fetch the dashboard makes to the
/// local APIs it shows (the provider's admin endpoint, the user's agent).
pub(crate) async fn get_bytes(
    client: &Client<HttpConnector, Empty<Bytes>>,
    uri: &Uri,
    token: Option<&str>,
    max: usize,
) -> Result<Bytes, GetError> {
    let mut request = hyper::Request::get(uri.clone()).header(hyper::header::ACCEPT, "application/json");
    if let Some(token) = token {
        request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = request.body(Empty::new()).map_err(|e| GetError::Unreachable(e.to_string()))?;
    let response = tokio::time::timeout(SESSIONS_TIMEOUT, client.request(request))
        .await
        .map_err(|_| GetError::Unreachable(format!("no answer within {} s", SESSIONS_TIMEOUT.as_secs())))?
        .map_err(|e| GetError::Unreachable(e.to_string()))?;
    let status = response.status();
    let body = tokio::time::timeout(SESSIONS_TIMEOUT, Limited::new(response.into_body(), max).collect())
        .await
        .map_err(|_| GetError::Unreachable(format!("the body did not arrive within {} s", SESSIONS_TIMEOUT.as_secs())))?
        .map_err(|e| GetError::TooLarge(format!("{e} (at most {max} bytes are read)")))?
        .to_bytes();
    if !status.is_success() {
        let text: String = String::from_utf8_lossy(&body).chars().take(300).collect();
        return Err(GetError::Status(status.as_u16(), text));
    }
    Ok(body)
}

impl SessionSource for HttpSessions {
    fn describe(&self) -> String {
        self.url.clone()
    }

    fn report(&self) -> BoxFuture<'_, Result<ProviderReport, SessionSourceError>> {
        Box::pin(self.fetch())
    }
}

/// Any [`SessionStore`] in this process, reported for one provider.
#[derive(Debug)]
pub struct StoreSessions<S> {
    provider_id: [u8; 32],
    store: S,
    label: String,
}

impl<S: SessionStore> StoreSessions<S> {
    /// Sessions of `provider_id` kept in `store`.
    #[must_use]
    pub fn new(provider_id: [u8; 32], store: S, label: impl Into<String>) -> Self {
        Self { provider_id, store, label: label.into() }
    }

    /// The store.
    #[must_use]
    pub const fn store(&self) -> &S {
        &self.store
    }
}

impl<S: SessionStore + 'static> SessionSource for StoreSessions<S> {
    fn describe(&self) -> String {
        self.label.clone()
    }

    fn report(&self) -> BoxFuture<'_, Result<ProviderReport, SessionSourceError>> {
        Box::pin(async move {
            ProviderReport::collect(self.provider_id, &self.store)
                .await
                .map_err(|e| SessionSourceError::Store(e.to_string()))
        })
    }
}
