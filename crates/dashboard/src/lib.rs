//! Live web dashboard for paystreams users and providers (`paystream dashboard`).
//!
//! A server-rendered web app (axum + askama, one small local script, no build step) over a
//! node's JSON-RPC and a keystore:
//!
//! - **Overview**: chain height and time, every keystore identity with its balance, its vaults
//!   and its streams. Accrued and unaccrued tick every second in the browser (integer math on
//!   the decimal strings, from `rate` and `accrued_as_of`, in chain seconds), and server-sent
//!   events from the node's `paystreams_subscribeEvents` refresh exactly the rows an event touched.
//! - **Stream page**: the stream's numbers, a chart of accrued versus time replayed from its
//!   events with the program's own fold, and its event history.
//! - **Provider view**: streams paying a keystore identity, claimable totals, "claim all", and
//!   the provider engine's sessions from a [`SessionSource`].
//! - **User sessions**: the sessions, spending and warnings of a running `paystream agent`
//!   ([`HttpAgent`]).
//! - **Actions** with a confirmation step: vault create, deposit, withdraw, stream create,
//!   pause, resume, top-up, close, claim, claim all; failures explained with the fix.
//!
//! See `docs/dashboard.md`.

pub mod actions;
pub mod agent;
pub mod app;
pub mod chart;
pub mod error;
pub mod format;
pub mod hub;
pub mod pages;
pub mod security;
pub mod sessions;
pub mod view;

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, atomic::AtomicUsize},
    time::Duration,
};

use anyhow::Context as _;
use axum::{
    Extension, Router,
    extract::DefaultBodyLimit,
    routing::{get, post},
};
use paystreams_client::Client;
use tokio::{sync::watch, task::JoinHandle};

pub use agent::{AgentReport, HttpAgent};
pub use app::AppState;
pub use hub::{HISTORY_BLOCKS_DEFAULT, Hub};
pub use sessions::{HttpSessions, SessionSource, SessionSourceError, StoreSessions};

/// Default listening address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8040";

/// How long shutdown waits for open connections before closing them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// How the dashboard runs.
#[derive(Clone, Debug)]
pub struct DashboardConfig {
    /// Where to listen (port 0 picks a free port).
    pub listen: SocketAddr,
    /// The node's JSON-RPC URL (its WebSocket is on the same port).
    pub rpc_url: String,
    /// The keystore whose identities are shown and may sign actions.
    pub keystore_dir: PathBuf,
    /// Answer to any `Host` (needed to listen beyond loopback). Anyone who can reach the port
    /// can then act with the keystore's keys.
    pub allow_remote: bool,
    /// Blocks read back at start for stream histories and charts.
    pub history_blocks: u64,
    /// A running `paystream agent` whose sessions, spending and warnings the user view shows.
    pub agent: Option<HttpAgent>,
}

impl DashboardConfig {
    /// Loopback on port 8040, history of [`HISTORY_BLOCKS_DEFAULT`] blocks.
    #[must_use]
    pub fn new(rpc_url: impl Into<String>, keystore_dir: impl Into<PathBuf>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8040)),
            rpc_url: rpc_url.into(),
            keystore_dir: keystore_dir.into(),
            allow_remote: false,
            history_blocks: HISTORY_BLOCKS_DEFAULT,
            agent: None,
        }
    }
}

/// Builds the router over a prepared state (`stop` ends live-update streams on shutdown).
pub fn router(state: Arc<AppState>, stop: watch::Receiver<bool>) -> Router {
    Router::new()
        .route("/", get(pages::overview))
        .route("/provider", get(pages::provider))
        .route("/streams/{owner}/{vault}/{stream}", get(pages::stream))
        .route("/actions/{kind}", get(pages::action_form).merge(post(pages::action_post)))
        .route("/events", get(pages::events))
        .route("/fragments/identity/{account}", get(pages::frag_identity))
        .route("/fragments/vaults/{owner}", get(pages::frag_vaults))
        .route("/fragments/streams/{owner}", get(pages::frag_streams))
        .route("/fragments/stream/{owner}/{vault}/{stream}", get(pages::frag_stream_row))
        .route("/fragments/earning/{owner}/{vault}/{stream}", get(pages::frag_earning_row))
        .route("/fragments/summary/{owner}/{vault}/{stream}", get(pages::frag_summary))
        .route("/fragments/chart/{owner}/{vault}/{stream}", get(pages::frag_chart))
        .route("/fragments/history/{owner}/{vault}/{stream}", get(pages::frag_history))
        .route("/fragments/provider/{provider}", get(pages::frag_provider))
        .route("/fragments/providers", get(pages::frag_providers))
        .route("/fragments/sessions", get(pages::frag_sessions))
        .route("/user", get(pages::user))
        .route("/fragments/agent", get(pages::frag_agent))
        .route("/static/{file}", get(pages::static_file))
        .route("/health", get(|| async { "ok" }))
        .fallback(pages::not_found)
        .layer(DefaultBodyLimit::max(actions::FORM_BODY_MAX))
        .layer(Extension(stop))
        .layer(axum::middleware::from_fn_with_state(Arc::clone(&state), security::guard))
        .with_state(state)
}

/// A running dashboard.
pub struct DashboardHandle {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
    follower: JoinHandle<()>,
    state: Arc<AppState>,
}

impl DashboardHandle {
    /// `http://ADDR`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    #[must_use]
    pub const fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The shared state (live hub, client).
    #[must_use]
    pub const fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Resolves when the server stops on its own (it normally does not).
    ///
    /// # Errors
    /// The server failed.
    pub async fn stopped(&mut self) -> anyhow::Result<()> {
        (&mut self.server).await.context("dashboard server task failed")?.context("dashboard server failed")
    }

    /// Stops serving and following the node; open connections get [`SHUTDOWN_GRACE`].
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if !self.server.is_finished() && tokio::time::timeout(SHUTDOWN_GRACE, &mut self.server).await.is_err() {
            self.server.abort();
        }
        if !self.follower.is_finished() && tokio::time::timeout(SHUTDOWN_GRACE, &mut self.follower).await.is_err() {
            self.follower.abort();
        }
    }
}

/// Starts the dashboard: binds, starts following the node, serves.
///
/// # Errors
/// The RPC URL is unusable, or the address cannot be bound.
pub async fn start(
    config: DashboardConfig,
    sessions: Option<Arc<dyn SessionSource>>,
) -> anyhow::Result<DashboardHandle> {
    let client = Client::connect(&config.rpc_url).with_context(|| format!("--rpc {} is not usable", config.rpc_url))?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}; is the port in use? pass another --listen", config.listen))?;
    let addr = listener.local_addr().context("listening address")?;
    let allowed_hosts = (!config.allow_remote).then(|| security::loopback_hosts(addr));
    let hub = Arc::new(Hub::new());
    let state = Arc::new(AppState {
        client: client.clone(),
        keystore_dir: config.keystore_dir.clone(),
        sessions,
        agent: config.agent.clone().map(Arc::new),
        hub: Arc::clone(&hub),
        csrf: security::new_token(),
        allowed_hosts,
        sse_clients: AtomicUsize::new(0),
    });
    let (stop, stop_rx) = watch::channel(false);
    let follower = tokio::spawn(hub::follow(hub, client, config.history_blocks.max(1), stop_rx.clone()));
    let app = router(Arc::clone(&state), stop_rx.clone());
    let mut shutdown = stop_rx;
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = shutdown.wait_for(|stop| *stop).await;
            })
            .await
    });
    tracing::info!(%addr, rpc = %config.rpc_url, keystore = %config.keystore_dir.display(), "paystreams dashboard listening");
    Ok(DashboardHandle { addr, stop, server, follower, state })
}
