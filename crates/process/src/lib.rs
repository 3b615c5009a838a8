//! A provider process, shared by every paid service (`store serve`, `gate`): the provider
//! engine on the chain (RPC reads with a head cache, events through the follower: the node's
//! WebSocket subscription, or polled blocks when the chain is a LEZ sequencer, claims), its session store (memory, redb or PostgreSQL), and the loopback admin endpoint
//! (`/health`, `/metrics`, `/sessions`, `POST /sessions/{id}/terminate`,
//! `POST /maintenance?secs=N`, plus the service's own routes) behind a bearer token and
//! Host/Origin checks ([`AdminGuard`]).
//!
//! A service starts it with [`open`], handing an [`App`] whose `start` receives the running
//! engine ([`Opened`]) with its session store's concrete type, builds its transport on it,
//! serves the admin endpoint ([`ProcessHandle::serve_admin`]) and returns its own handle.
//! Stopping is [`ProcessHandle::stop`] (after the service stopped its transport).

use std::{
    net::SocketAddr,
    path::{Path as FsPath, PathBuf},
    pin::Pin,
    sync::Arc,
    time::Duration,
};

use axum::{
    Json, Router,
    extract::{Path, Query, Request, State},
    http::{HeaderMap, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use paystreams_client::Client;
use paystreams_lez_core::{AccountId, crypto::SecretKey};
use paystreams_provider::{
    ChainClaimer, ClaimSubmitter, EngineLimits, FollowerConfig, FollowerStats, MemoryStore, PgStore, Provider,
    ProviderPolicy, ProviderReport, RedbStore, SessionId, SessionStore, run_follower,
};
use paystreams_rpc::{
    chain_view::ChainView,
    events::{EventSource, Liveness},
    remote::{ChainAccess, RpcChain, WsEvents, WsSubscription},
};
use paystreams_wire::ServiceTermination;
use rand_core::RngCore as _;
use tokio::{
    sync::{oneshot, watch},
    task::JoinHandle,
};
use tracing::{info, warn};

/// How long stopping waits for admin requests in progress.
pub const ADMIN_STOP_TIMEOUT: Duration = Duration::from_secs(2);

/// How long the provider reuses a chain head it read (saves two round trips per request; a
/// quarter second is far below a block's worth of accrual and any deadline's granularity).
pub const HEAD_CACHE_TTL: Duration = Duration::from_millis(250);

/// How long start-up waits for the first event subscription before serving anyway (the engine
/// then fails closed once the follower's liveness is older than its staleness bound).
pub const SUBSCRIBE_WAIT: Duration = Duration::from_secs(2);

/// Largest request body the admin endpoint reads (its own routes take none; a service's routes
/// may set a smaller limit).
pub const ADMIN_BODY_MAX: usize = 64 * 1024;

/// The engine every provider process runs: chain reads and claims over RPC.
pub type Engine<S> = Provider<RpcChain, S, ChainClaimer<RpcChain>>;

/// A boxed future, for the object-safe traits here.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where the engine keeps its sessions.
#[derive(Clone, Debug)]
pub enum SessionBackend {
    /// In memory (tests; lost on exit).
    Memory,
    /// A redb file (one provider process).
    Redb(PathBuf),
    /// A PostgreSQL database shared by every process serving one `provider_id`.
    Postgres(String),
}

/// The admin endpoint's bearer token.
#[derive(Clone, Debug)]
pub enum AdminToken {
    /// A fresh random token, written (mode 0600) to this file at start, replacing any earlier.
    Generate(PathBuf),
    /// The token in this file (its first line; at least 16 characters).
    File(PathBuf),
    /// A fresh random token kept in memory ([`ProcessHandle::admin_token`]), for in-process
    /// callers.
    Ephemeral,
}

/// Shortest admin token accepted from a file.
pub const ADMIN_TOKEN_MIN_LEN: usize = 16;

/// A fresh random bearer token (32 random bytes, hex).
#[must_use]
pub fn fresh_token() -> String {
    let mut bytes = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Writes `token` to `path`, readable and writable by the owner only.
///
/// # Errors
/// The file cannot be created, restricted or written.
pub fn write_token(path: &FsPath, token: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        options.mode(0o600);
        let file = options.open(path)?;
        // An existing file keeps its mode on open: tighten it.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        let mut file = file;
        file.write_all(format!("{token}\n").as_bytes())?;
        file.sync_all()
    }
    #[cfg(not(unix))]
    {
        let mut file = options.open(path)?;
        file.write_all(format!("{token}\n").as_bytes())?;
        file.sync_all()
    }
}

impl AdminToken {
    /// The token, written or read as configured.
    ///
    /// # Errors
    /// The file cannot be written or read, or holds too short a token.
    pub fn resolve(&self) -> Result<String, String> {
        match self {
            Self::Ephemeral => Ok(fresh_token()),
            Self::Generate(path) => {
                let token = fresh_token();
                write_token(path, &token)
                    .map_err(|e| format!("cannot write the admin token to {}: {e}", path.display()))?;
                Ok(token)
            }
            Self::File(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read the admin token file {}: {e}", path.display()))?;
                let token = text.lines().next().unwrap_or_default().trim().to_owned();
                if token.len() < ADMIN_TOKEN_MIN_LEN {
                    return Err(format!(
                        "the admin token in {} is shorter than {ADMIN_TOKEN_MIN_LEN} characters; put a long random string there (e.g. `openssl rand -hex 32`)",
                        path.display()
                    ));
                }
                Ok(token)
            }
        }
    }
}

/// What the process part needs to run an engine.
#[derive(Clone, Debug)]
pub struct ProcessConfig {
    /// The chain's JSON-RPC URL (its WebSocket is the same address with `ws://`).
    pub rpc_url: String,
    /// How to speak to it: a paystreams node (events over its WebSocket) or a LEZ sequencer
    /// (LEZ's methods only; events from polled blocks).
    pub chain: ChainAccess,
    /// The provider account's key: streams name it, claims are signed with it.
    pub provider_key: SecretKey,
    pub policy: ProviderPolicy,
    pub limits: EngineLimits,
    pub sessions: SessionBackend,
    /// Admin HTTP endpoint (loopback only); `None` disables it.
    pub admin: Option<SocketAddr>,
    /// Where the admin endpoint's bearer token comes from.
    pub admin_token: AdminToken,
    /// How often the engine's maintenance tick runs.
    pub tick_interval: Duration,
    /// Claim everything claimable when stopping.
    pub claim_on_shutdown: bool,
}

/// Why a provider process could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("chain: {0}")]
    Chain(String),
    #[error("session store: {0}")]
    Sessions(String),
    #[error("policy: {0}")]
    Policy(String),
    #[error("admin endpoint {addr}: {reason}")]
    Admin { addr: SocketAddr, reason: String },
}

/// A service built on the process part. `start` gets the running engine with its session
/// store's type; it builds the transport, calls [`ProcessHandle::serve_admin`] and returns the
/// service's handle. When it fails it must call [`ProcessHandle::stop`] itself (releasing the
/// session store).
pub trait App: Send {
    type Handle: Send;
    type Error: From<ProcessError> + Send;

    fn start<S: SessionStore + 'static>(
        self,
        opened: Opened<S>,
    ) -> impl Future<Output = Result<Self::Handle, Self::Error>> + Send;
}

/// A running engine and the process around it, before the service's transport starts.
pub struct Opened<S> {
    pub provider: Arc<Engine<S>>,
    pub process: ProcessHandle,
}

/// Opens the session store named by `config.sessions` and runs `app` on it ([`start_engine`]).
///
/// # Errors
/// A [`ProcessError`] (converted to the app's error) saying which part failed and why, or the
/// app's own error.
pub async fn open<A: App>(config: ProcessConfig, app: A) -> Result<A::Handle, A::Error> {
    let token = admin_token(&config).await?;
    match config.sessions.clone() {
        SessionBackend::Memory => {
            let opened = start_engine(&config, MemoryStore::new(), token).await?;
            app.start(opened).await
        }
        SessionBackend::Redb(path) => {
            // Opening reads the file and commits: on the blocking pool, as every store call.
            let shown = path.display().to_string();
            let store = tokio::task::spawn_blocking(move || RedbStore::open(&path))
                .await
                .map_err(|e| ProcessError::Sessions(e.to_string()))?
                .map_err(|e| ProcessError::Sessions(format!("{shown}: {e}")))?;
            let opened = start_engine(&config, store, token).await?;
            app.start(opened).await
        }
        SessionBackend::Postgres(url) => {
            let store = tokio::task::spawn_blocking(move || PgStore::connect(&url))
                .await
                .map_err(|e| ProcessError::Sessions(e.to_string()))?
                .map_err(|e| ProcessError::Sessions(e.to_string()))?;
            let opened = start_engine(&config, store, token).await?;
            app.start(opened).await
        }
    }
}

/// The admin endpoint's token, checked before anything opens or listens: the endpoint can end
/// every session, so it must be on loopback and its token must be usable.
async fn admin_token(config: &ProcessConfig) -> Result<Option<String>, ProcessError> {
    Ok(match config.admin {
        Some(addr) if !addr.ip().is_loopback() => {
            return Err(ProcessError::Admin {
                addr,
                reason: "the admin endpoint can end sessions, so it listens on loopback only (127.0.0.1 or [::1]); \
                         reach it from elsewhere through an SSH tunnel"
                    .into(),
            });
        }
        Some(addr) => Some(
            tokio::task::spawn_blocking({
                let source = config.admin_token.clone();
                move || source.resolve()
            })
            .await
            .map_err(|e| ProcessError::Admin { addr, reason: e.to_string() })?
            .map_err(|reason| ProcessError::Admin { addr, reason })?,
        ),
        None => None,
    })
}

/// The node's event subscription for the provider, reporting each subscription it opens so
/// start-up can wait for the first.
struct ReportingEvents {
    source: WsEvents,
    subscribed: watch::Sender<bool>,
}

impl EventSource for ReportingEvents {
    type Subscription = WsSubscription;

    async fn subscribe(&self) -> Result<WsSubscription, String> {
        let subscription = self.source.subscribe().await?;
        self.subscribed.send_replace(true);
        Ok(subscription)
    }
}

/// Checks the chain is reachable, builds the engine over `store`, takes the admin port and
/// starts the follower; returns once the event subscription is up (or after
/// [`SUBSCRIBE_WAIT`]).
///
/// # Errors
/// A [`ProcessError`] saying which part failed and why; nothing is left running.
pub async fn start_engine<S: SessionStore + 'static>(
    config: &ProcessConfig,
    store: S,
    admin_token: Option<String>,
) -> Result<Opened<S>, ProcessError> {
    let client = Client::connect_via(&config.rpc_url, &config.chain).map_err(|e| ProcessError::Chain(e.to_string()))?;
    client.last_block_id().await.map_err(|e| {
        ProcessError::Chain(format!("{e} (is the chain running at {}? start it with `paystream node`)", config.rpc_url))
    })?;
    let liveness = Liveness::new();
    let chain = RpcChain::new(client.clone()).with_liveness(liveness.clone()).with_head_cache(HEAD_CACHE_TTL);
    // Claims read streams right after changing them, so the claimer reads fresh views; request
    // checks read them through the per-height stream cache.
    let claimer = ChainClaimer::new(chain.clone(), config.provider_key.clone(), client.program_id(), None);
    let chain = chain.with_stream_cache();
    let provider: Arc<Engine<S>> = Arc::new(
        Provider::new(config.policy.clone(), config.limits, chain, store, claimer)
            .map_err(|e| ProcessError::Policy(e.to_string()))?,
    );

    // The admin port is taken before anything runs, so a taken port leaves nothing behind.
    let admin_listener = match (config.admin, &admin_token) {
        (Some(addr), Some(token)) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| ProcessError::Admin { addr, reason: e.to_string() })?;
            let bound = listener.local_addr().map_err(|e| ProcessError::Admin { addr, reason: e.to_string() })?;
            Some((listener, bound, token.clone()))
        }
        _ => None,
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let (subscribed, mut subscription_up) = watch::channel(false);
    let (handled_tx, handled) = watch::channel(0_u64);
    let follower = {
        let provider = Arc::clone(&provider);
        let follow = FollowerConfig {
            tick_interval: config.tick_interval,
            liveness: Some(liveness.clone()),
            claim_on_shutdown: config.claim_on_shutdown,
            handled: Some(handled_tx),
            ..FollowerConfig::default()
        };
        let events = ReportingEvents {
            source: WsEvents::for_provider(client.node(), AccountId(provider.policy().provider_id)),
            subscribed,
        };
        tokio::spawn(async move {
            run_follower(&provider, &events, follow, async {
                let _ = stopped.await;
            })
            .await
        })
    };
    // Serve once the event subscription is up, so the engine follows the chain from its first
    // request; a node slow to accept it delays start-up by at most `SUBSCRIBE_WAIT`.
    match tokio::time::timeout(SUBSCRIBE_WAIT, subscription_up.wait_for(|up| *up)).await {
        Ok(Ok(_)) => info!("event subscription up"),
        Ok(Err(_)) => warn!("the event follower stopped before subscribing"),
        Err(_) => warn!(
            waited_ms = SUBSCRIBE_WAIT.as_millis(),
            "event subscription not up yet; serving anyway (requests fail closed if it stays down)"
        ),
    }
    let admin = admin_listener.as_ref().map(|(_, bound, _)| *bound);
    Ok(Opened {
        provider,
        process: ProcessHandle { admin, admin_token, admin_listener, admin_task: None, stop, follower, handled },
    })
}

/// The process part of a running provider: the follower, the admin endpoint.
#[derive(Debug)]
pub struct ProcessHandle {
    admin: Option<SocketAddr>,
    admin_token: Option<String>,
    /// Taken at start, served by [`ProcessHandle::serve_admin`].
    admin_listener: Option<(tokio::net::TcpListener, SocketAddr, String)>,
    /// The admin server and the signal that stops it gracefully.
    admin_task: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
    stop: oneshot::Sender<()>,
    follower: JoinHandle<FollowerStats>,
    /// Block id of the last event the engine handled.
    handled: watch::Receiver<u64>,
}

impl ProcessHandle {
    #[must_use]
    pub const fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin
    }

    /// The admin endpoint's bearer token (send `Authorization: Bearer <token>`).
    #[must_use]
    pub fn admin_token(&self) -> Option<&str> {
        self.admin_token.as_deref()
    }

    /// Waits until the engine has handled an event of block `block_id` or later (the provider's
    /// events arrive in block order), at most `timeout`. False on timeout or when the follower
    /// has stopped.
    pub async fn wait_for_events_through(&self, block_id: u64, timeout: Duration) -> bool {
        let mut handled = self.handled.clone();
        matches!(tokio::time::timeout(timeout, handled.wait_for(|last| *last >= block_id)).await, Ok(Ok(_)))
    }

    /// Serves the admin endpoint (when configured): the shared admin routes over `provider`,
    /// `/metrics` from `metrics`, maintenance notices through `notifier`, and the service's own
    /// `routes`, all behind one [`AdminGuard`] and a [`ADMIN_BODY_MAX`] body limit.
    pub fn serve_admin<S: SessionStore + 'static>(
        &mut self,
        provider: Arc<Engine<S>>,
        metrics: Arc<dyn Fn() -> String + Send + Sync>,
        notifier: Arc<dyn Notifier>,
        routes: Router,
    ) {
        let Some((listener, bound, token)) = self.admin_listener.take() else { return };
        let state = AdminState { provider, metrics, notifier };
        let guard = Arc::new(AdminGuard::new(bound, token));
        let router = admin_routes(state)
            .merge(routes)
            .layer(axum::extract::DefaultBodyLimit::max(ADMIN_BODY_MAX))
            .layer(middleware::from_fn_with_state(guard, admin_guard));
        let (stop_admin, admin_stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, router).with_graceful_shutdown(async {
                let _ = admin_stopped.await;
            });
            if let Err(e) = serve.await {
                warn!(error = %e, "admin endpoint stopped");
            }
        });
        self.admin_task = Some((stop_admin, task));
    }

    /// Stops the admin endpoint gracefully (requests in progress finish and every connection,
    /// each holding the engine, is closed, so a restart can open the same store), then the
    /// follower (claiming what is claimable when configured); returns its statistics.
    pub async fn stop(self) -> FollowerStats {
        if let Some((stop_admin, mut task)) = self.admin_task {
            let _ = stop_admin.send(());
            if tokio::time::timeout(ADMIN_STOP_TIMEOUT, &mut task).await.is_err() {
                task.abort();
                let _ = task.await;
            }
        }
        drop(self.admin_listener);
        let _ = self.stop.send(());
        self.follower.await.unwrap_or_default()
    }
}

/// Engine operations a termination queue needs, without the engine's type parameters.
pub trait TerminationSource: Send + Sync {
    /// Terminations queued in the engine ([`Provider::take_terminations`]).
    fn take(&self) -> Vec<(SessionId, ServiceTermination)>;
    /// Pauses `ids` for a restart of `secs` (queuing their terminations); how many.
    fn suspend_for_restart(&self, ids: Vec<SessionId>, secs: u64) -> BoxFuture<'_, Result<usize, String>>;
}

impl<C, S, K> TerminationSource for Provider<C, S, K>
where
    C: ChainView + 'static,
    S: SessionStore + 'static,
    K: ClaimSubmitter + 'static,
{
    fn take(&self) -> Vec<(SessionId, ServiceTermination)> {
        self.take_terminations().unwrap_or_else(|e| {
            warn!(error = %e, "cannot read queued terminations");
            Vec::new()
        })
    }

    fn suspend_for_restart(&self, ids: Vec<SessionId>, secs: u64) -> BoxFuture<'_, Result<usize, String>> {
        Box::pin(async move {
            Self::suspend_for_restart(self, &ids, secs).await.map(|s| s.len()).map_err(|e| e.to_string())
        })
    }
}

/// How a service reaches its users with a termination the admin endpoint decided (maintenance).
pub trait Notifier: Send + Sync {
    /// Sessions whose users the service can reach now.
    fn reachable_sessions(&self) -> BoxFuture<'_, Vec<SessionId>>;
    /// Delivers `termination` to the users of each session in `open`; how many were notified.
    fn notify(&self, open: &[SessionId], termination: ServiceTermination) -> usize;
}

/// Who may use a local HTTP API (a provider's admin endpoint and the gate's API, the user's
/// agent): requests naming this host, from no foreign origin, with the token (`/health` needs
/// no token).
#[derive(Debug)]
pub struct AdminGuard {
    hosts: Vec<String>,
    origins: Vec<String>,
    token: String,
    token_hint: String,
}

impl AdminGuard {
    /// The guard for an endpoint bound to `bound`, with bearer `token`.
    #[must_use]
    pub fn new(bound: SocketAddr, token: String) -> Self {
        let port = bound.port();
        let mut hosts = vec![bound.to_string(), format!("localhost:{port}"), format!("127.0.0.1:{port}")];
        hosts.dedup();
        let origins = hosts.iter().map(|h| format!("http://{h}")).collect();
        let token_hint = "the process printed where its token file is at start".to_owned();
        Self { hosts, origins, token, token_hint }
    }

    /// Replaces the "where is the token" part of the 401 answer.
    #[must_use]
    pub fn with_token_hint(mut self, hint: impl Into<String>) -> Self {
        self.token_hint = hint.into();
        self
    }

    /// The response to send instead, when the request may not go on.
    #[must_use]
    pub fn refusal(&self, headers: &HeaderMap, path: &str) -> Option<Response> {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
        if !self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host)) {
            return Some(error_response(
                StatusCode::FORBIDDEN,
                format!("Host {host:?} is not this endpoint; use one of {}", self.hosts.join(", ")),
            ));
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            let origin = origin.to_str().unwrap_or_default();
            if !self.origins.iter().any(|o| o.eq_ignore_ascii_case(origin)) {
                return Some(error_response(
                    StatusCode::FORBIDDEN,
                    format!("requests from origin {origin:?} are refused: this endpoint is not for web pages"),
                ));
            }
        }
        if path == "/health" {
            return None;
        }
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .unwrap_or_default()
            .trim();
        if !constant_time_eq(given.as_bytes(), self.token.as_bytes()) {
            let mut response = error_response(
                StatusCode::UNAUTHORIZED,
                format!("send `Authorization: Bearer <token>`; {}", self.token_hint),
            );
            response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
            return Some(response);
        }
        None
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A JSON error: `{"error": message}` with `status`.
#[must_use]
pub fn error_response(status: StatusCode, message: String) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

async fn admin_guard(State(guard): State<Arc<AdminGuard>>, request: Request, next: Next) -> Response {
    match guard.refusal(request.headers(), request.uri().path()) {
        None => next.run(request).await,
        Some(response) => response,
    }
}

struct AdminState<S> {
    provider: Arc<Engine<S>>,
    metrics: Arc<dyn Fn() -> String + Send + Sync>,
    notifier: Arc<dyn Notifier>,
}

impl<S> Clone for AdminState<S> {
    fn clone(&self) -> Self {
        Self {
            provider: Arc::clone(&self.provider),
            metrics: Arc::clone(&self.metrics),
            notifier: Arc::clone(&self.notifier),
        }
    }
}

/// The admin routes every provider process serves.
pub const ADMIN_ROUTES: [(&str, &str); 5] = [
    ("GET", "/health"),
    ("GET", "/metrics"),
    ("GET", "/sessions"),
    ("POST", "/sessions/{id}/terminate"),
    ("POST", "/maintenance"),
];

fn admin_routes<S: SessionStore + 'static>(state: AdminState<S>) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics_handler::<S>))
        .route("/sessions", get(sessions_handler::<S>))
        .route("/sessions/{id}/terminate", post(terminate_handler::<S>))
        .route("/maintenance", post(maintenance_handler::<S>))
        .with_state(state)
}

#[derive(Debug, serde::Deserialize)]
struct MaintenanceQuery {
    secs: u64,
}

/// `POST /maintenance?secs=N`: every request gets TEMPORARY until N seconds of chain time from
/// now (0 ends maintenance); reachable users of open sessions are told at once.
async fn maintenance_handler<S: SessionStore + 'static>(
    State(state): State<AdminState<S>>,
    Query(query): Query<MaintenanceQuery>,
) -> Response {
    let termination = match state.provider.start_maintenance(query.secs).await {
        Ok(Some(t)) => t,
        Ok(None) => return Json(serde_json::json!({ "maintenance": null })).into_response(),
        Err(e) => return error_response(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    };
    let ids = state.notifier.reachable_sessions().await;
    let open = match state.provider.open_sessions(&ids).await {
        Ok(open) => open,
        Err(e) => return error_response(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    };
    let notified = state.notifier.notify(&open, termination);
    Json(serde_json::json!({ "maintenance_until": termination.resume_after, "users_notified": notified }))
        .into_response()
}

async fn metrics_handler<S: SessionStore + 'static>(State(state): State<AdminState<S>>) -> String {
    (state.metrics)()
}

async fn sessions_handler<S: SessionStore + 'static>(State(state): State<AdminState<S>>) -> Response {
    match ProviderReport::collect(state.provider.policy().provider_id, state.provider.store()).await {
        Ok(report) => Json(report).into_response(),
        Err(e) => error_response(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

async fn terminate_handler<S: SessionStore + 'static>(
    State(state): State<AdminState<S>>,
    Path(id): Path<String>,
) -> Response {
    let Ok(bytes) = hex::decode(&id) else {
        return error_response(StatusCode::BAD_REQUEST, "session id must be 64 hex characters".into());
    };
    let Ok(array) = <[u8; 32]>::try_from(bytes.as_slice()) else {
        return error_response(StatusCode::BAD_REQUEST, "session id must be 64 hex characters".into());
    };
    match state.provider.terminate_for_abuse(SessionId(array)).await {
        Ok(Some(_)) => Json(serde_json::json!({ "terminated": id, "termination": "PERMANENT" })).into_response(),
        Ok(None) => error_response(StatusCode::NOT_FOUND, format!("no session {id}")),
        Err(e) => error_response(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}
