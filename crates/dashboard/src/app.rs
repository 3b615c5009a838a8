//! Shared state of the web app and the page layout.

use std::{
    path::PathBuf,
    sync::{Arc, atomic::AtomicUsize},
};

use askama::Template;
use axum::response::{Html, IntoResponse, Response};
use paystreams_client::{Client, Keystore, NamedKey};

use crate::{agent::HttpAgent, error::PageError, format, hub::Hub, sessions::SessionSource, view};

/// Most keystore identities shown.
pub const IDENTITIES_MAX: usize = 100;

/// Everything the handlers share.
pub struct AppState {
    pub client: Client,
    pub keystore_dir: PathBuf,
    pub sessions: Option<Arc<dyn SessionSource>>,
    /// The user's agent, for the user view.
    pub agent: Option<Arc<HttpAgent>>,
    pub hub: Arc<Hub>,
    /// Anti-forgery token every form carries.
    pub csrf: String,
    /// Accepted `Host` header values; `None` accepts any (remote listening).
    pub allowed_hosts: Option<Vec<String>>,
    /// Open server-sent-event streams.
    pub sse_clients: AtomicUsize,
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
        client.set_names(view::names_of(keys));
        client
    }
}
