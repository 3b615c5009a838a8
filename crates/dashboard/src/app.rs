//! Shared state of the web app, the page layout, and errors rendered as pages.

use std::{
    path::PathBuf,
    sync::{Arc, atomic::AtomicUsize},
};

use askama::Template;
use axum::{
    http::StatusCode,
    response::{Html, IntoResponse, Response},
};
use paystreams_client::{Client, Keystore, NamedKey};

use crate::{format, hub::Hub, sessions::SessionSource};

/// Most keystore identities shown.
pub const IDENTITIES_MAX: usize = 100;

/// Everything the handlers share.
pub struct AppState {
    pub client: Client,
    pub keystore_dir: PathBuf,
    pub sessions: Option<Arc<dyn SessionSource>>,
    pub hub: Arc<Hub>,
    /// Anti-forgery token every form carries.
    pub csrf: String,
    /// Accepted `Host` header values; `None` accepts any (remote listening).
    pub allowed_hosts: Option<Vec<String>>,
    /// Open server-sent-event streams.
    pub sse_clients: AtomicUsize,
}

/// A failure shown as a page (or a fragment) with its status code.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Node(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

impl PageError {
    const fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::Node(_) => StatusCode::BAD_GATEWAY,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    const fn heading(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "That request is not valid",
            Self::NotFound(_) => "Not found",
            Self::Forbidden(_) => "Refused",
            Self::Node(_) => "The node cannot be reached",
            Self::Unavailable(_) => "Busy",
            Self::Internal(_) => "Something went wrong",
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    heading: &'a str,
    message: String,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        tracing::debug!(error = %self, "dashboard request failed");
        let page = ErrorPage { heading: self.heading(), message: self.to_string() };
        let body = page.render().unwrap_or_else(|_| self.to_string());
        (self.status(), Html(body)).into_response()
    }
}

/// Renders a template as an HTML response.
///
/// # Errors
/// A template failure (a bug), as a 500 page.
pub fn render(template: &impl Template) -> Result<Response, PageError> {
    template
        .render()
        .map(|body| Html(body).into_response())
        .map_err(|e| PageError::Internal(format!("page rendering failed: {e}")))
}

/// What every full page shows around its content.
#[derive(Clone, Debug)]
pub struct Layout {
    pub title: String,
    pub nav: &'static str,
    pub height: u64,
    pub time: u64,
    pub time_text: String,
    pub rpc_url: String,
    pub keystore: String,
    pub live: bool,
    pub status: String,
    pub csrf: String,
}

impl AppState {
    /// The page frame: chain head (fresh from the node) and live status.
    ///
    /// # Errors
    /// The node is unreachable.
    pub async fn layout(&self, title: impl Into<String>, nav: &'static str) -> Result<Layout, PageError> {
        let height = self.client.last_block_id().await.map_err(|e| PageError::Node(e.to_string()))?;
        let time = match self.client.block(height).await {
            Ok(Some(block)) => block.header.timestamp_ms / 1000,
            Ok(None) => 0,
            Err(e) => return Err(PageError::Node(e.to_string())),
        };
        let (live, status) = self.hub.status();
        Ok(Layout {
            title: title.into(),
            nav,
            height,
            time,
            time_text: format::time(time),
            rpc_url: self.client.url().to_owned(),
            keystore: self.keystore_dir.display().to_string(),
            live,
            status,
            csrf: self.csrf.clone(),
        })
    }

    /// The keystore's identities, sorted by name (at most [`IDENTITIES_MAX`]); none when the
    /// keystore directory does not exist.
    ///
    /// # Errors
    /// A corrupt or unreadable keystore.
    pub fn identities(&self) -> Result<Vec<NamedKey>, PageError> {
        if !self.keystore_dir.is_dir() {
            return Ok(vec![]);
        }
        let store =
            Keystore::open(&self.keystore_dir).map_err(|e| PageError::Internal(format!("{e}; check --keystore")))?;
        let mut keys = store.list().map_err(|e| PageError::Internal(format!("{e}; check --keystore")))?;
        keys.truncate(IDENTITIES_MAX);
        Ok(keys)
    }

    /// A client whose failure explanations use keystore names.
    #[must_use]
    pub fn named_client(&self, keys: &[NamedKey]) -> Client {
        let mut client = self.client.clone();
        client.set_names(crate::view::names_of(keys));
        client
    }
}
