//! A whole Store provider process: the provider engine on the chain (RPC reads, WebSocket
//! events, claims), its session store, the archive, the libp2p service, the delivery of
//! standalone terminations to connected users, and the admin HTTP endpoint (`/health`,
//! `/metrics`, `/sessions`, `POST /sessions/{id}/terminate`, `POST /maintenance?secs=N`), on
//! loopback only, behind a bearer token and Host/Origin checks.

use std::{
    net::SocketAddr,
    path::{Path as FsPath, PathBuf},
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
use libp2p::{Multiaddr, PeerId, identity::Keypair};
use paystreams_client::Client;
use paystreams_lez_core::{AccountId, crypto::SecretKey};
use paystreams_provider::{
    ChainClaimer, ClaimSubmitter, EngineLimits, FollowerConfig, FollowerStats, MemoryStore, PgStore, Provider,
    ProviderPolicy, ProviderReport, RedbStore, SessionId, SessionStore, run_follower,
};
use paystreams_rpc::chain_view::ChainView;
use paystreams_rpc::{
    events::{EventSource, Liveness},
    remote::{RpcChain, WsEvents, WsSubscription},
};
use paystreams_wire::{ServiceTermination, SessionTermination};
use rand_core::RngCore as _;
use sha2::{Digest as _, Sha256};
use tokio::{
    sync::{Semaphore, oneshot, watch},
    task::JoinHandle,
};
use tracing::{debug, info, warn};

use crate::{
    archive::Archive,
    net::{NetError, NodeOptions, P2p, Proto, WakuNetwork},
    service::{Metrics, PeerLimit, SessionPeers, StoreService},
};

/// How often queued terminations are handed to connected users.
pub const TERMINATION_PUSH_INTERVAL: Duration = Duration::from_millis(100);
/// Most terminations in flight at once (a slow user holds one until its request times out);
/// beyond it the user learns from its next response.
pub const TERMINATION_PUSHES_MAX: usize = 256;
/// How long stopping waits for admin requests in progress.
pub const ADMIN_STOP_TIMEOUT: Duration = Duration::from_secs(2);
/// How long stopping waits for connected users to acknowledge the restart notice.
pub const SHUTDOWN_NOTICE_TIMEOUT: Duration = Duration::from_secs(3);

/// How long the provider reuses a chain head it read (saves two round trips per request; a
/// quarter second is far below a block's worth of accrual and any deadline's granularity).
pub const HEAD_CACHE_TTL: Duration = Duration::from_millis(250);

/// How long start-up waits for the first event subscription before serving anyway (the engine
/// then fails closed once the follower's liveness is older than its staleness bound).
pub const SUBSCRIBE_WAIT: Duration = Duration::from_secs(2);

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

/// Everything a provider process needs.
#[derive(Clone, Debug)]
pub struct ProviderConfig {
    /// The chain's JSON-RPC URL (its WebSocket is the same address with `ws://`).
    pub rpc_url: String,
    /// The provider account's key: streams name it, claims are signed with it.
    pub provider_key: SecretKey,
    /// Where the libp2p service listens (`/ip4/127.0.0.1/tcp/0` picks a port).
    pub listen: Multiaddr,
    pub policy: ProviderPolicy,
    pub limits: EngineLimits,
    pub sessions: SessionBackend,
    /// Admin HTTP endpoint; `None` disables it.
    pub admin: Option<SocketAddr>,
    /// How often the engine's maintenance tick runs.
    pub tick_interval: Duration,
    /// Claim everything claimable when stopping.
    pub claim_on_shutdown: bool,
    /// Per-peer limits, the admin token, the restart notice.
    pub service: ServiceOptions,
}

/// The service's own settings (not the engine's).
#[derive(Clone, Debug)]
pub struct ServiceOptions {
    /// Each peer's request rate, checked before the engine is asked anything.
    pub peer_limit: PeerLimit,
    /// Where the admin endpoint's bearer token comes from.
    pub admin_token: AdminToken,
    /// On stopping, connected users' sessions are paused (TEMPORARY) for this many seconds of
    /// chain time: a restarted process serves them again after that. 0: no pause, no notice.
    pub restart_pause_secs: u64,
    /// A WebSocket listener beside [`ProviderConfig::listen`] (`/ip4/127.0.0.1/tcp/0/ws`), for
    /// js-waku in Node.js and browsers; `None`: TCP only.
    pub ws_listen: Option<Multiaddr>,
    /// The Waku cluster and shards the node announces over `/vac/waku/metadata/1.0.0`.
    pub network: WakuNetwork,
}

impl Default for ServiceOptions {
    fn default() -> Self {
        Self {
            peer_limit: PeerLimit::default(),
            admin_token: AdminToken::Ephemeral,
            restart_pause_secs: 10,
            ws_listen: None,
            network: WakuNetwork::default(),
        }
    }
}

/// The admin endpoint's bearer token.
#[derive(Clone, Debug)]
pub enum AdminToken {
    /// A fresh random token, written (mode 0600) to this file at start, replacing any earlier.
    Generate(PathBuf),
    /// The token in this file (its first line; at least 16 characters).
    File(PathBuf),
    /// A fresh random token kept in memory ([`ProviderHandle::admin_token`]), for in-process
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

/// The libp2p identity a provider key implies: stable across restarts (same peer id, so users'
/// saved addresses keep working) without a second key file. Domain-separated from every other
/// use of the key.
#[must_use]
pub fn node_keypair(provider_key: &SecretKey) -> Keypair {
    let mut seed: [u8; 32] = Sha256::new()
        .chain_update(b"/paystreams/v1/StoreNodeKey/")
        .chain_update(provider_key.to_bytes())
        .finalize()
        .into();
    // Only fails for a seed of the wrong length, which a SHA-256 digest cannot be.
    Keypair::ed25519_from_bytes(&mut seed).unwrap_or_else(|_| Keypair::generate_ed25519())
}

/// Why a provider could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("chain: {0}")]
    Chain(String),
    #[error("session store: {0}")]
    Sessions(String),
    #[error("policy: {0}")]
    Policy(String),
    #[error(transparent)]
    Net(#[from] NetError),
    #[error("admin endpoint {addr}: {reason}")]
    Admin { addr: SocketAddr, reason: String },
}

/// A running provider.
#[derive(Debug)]
pub struct ProviderHandle {
    p2p: P2p,
    admin: Option<SocketAddr>,
    admin_token: Option<String>,
    pusher: Pusher,
    push_task: JoinHandle<()>,
    /// Chain time the restart notice covers.
    restart_pause_secs: u64,

    stop: oneshot::Sender<()>,
    follower: JoinHandle<FollowerStats>,
    /// The admin server and the signal that stops it gracefully.
    admin_task: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
    metrics: Arc<Metrics>,
    /// Block id of the last event the engine handled.
    handled: watch::Receiver<u64>,
}

impl ProviderHandle {
    #[must_use]
    pub const fn peer_id(&self) -> PeerId {
        self.p2p.peer_id()
    }

    /// Dialable addresses, each ending in `/p2p/<peer id>`: TCP first, then WebSocket when
    /// configured.
    #[must_use]
    pub fn addrs(&self) -> &[Multiaddr] {
        self.p2p.listen_addrs()
    }

    /// The WebSocket address (for js-waku), when listening on one.
    #[must_use]
    pub fn ws_addr(&self) -> Option<&Multiaddr> {
        self.addrs().iter().find(|a| a.iter().any(|p| matches!(p, libp2p::multiaddr::Protocol::Ws(_))))
    }

    #[must_use]
    pub const fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin
    }

    /// The admin endpoint's bearer token (send `Authorization: Bearer <token>`).
    #[must_use]
    pub fn admin_token(&self) -> Option<&str> {
        self.admin_token.as_deref()
    }

    #[must_use]
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Waits until the engine has handled an event of block `block_id` or later (the provider's
    /// events arrive in block order), at most `timeout`: after a change on chain that concerns
    /// this provider (a stream paused, resumed, closed), its next answers reflect it. False on
    /// timeout or when the follower has stopped.
    pub async fn wait_for_events_through(&self, block_id: u64, timeout: Duration) -> bool {
        let mut handled = self.handled.clone();
        matches!(tokio::time::timeout(timeout, handled.wait_for(|last| *last >= block_id)).await, Ok(Ok(_)))
    }

    /// Stops serving, stops the follower (claiming what is claimable when configured) and
    /// returns its statistics. First every connected user's open sessions are paused for
    /// [`ServiceOptions::restart_pause_secs`] (durably: a restarted process refuses them with
    /// the same TEMPORARY termination until then) and the notice is pushed to them, waiting
    /// at most [`SHUTDOWN_NOTICE_TIMEOUT`] for their acknowledgements.
    pub async fn shutdown(self) -> FollowerStats {
        self.push_task.abort();
        let _ = self.push_task.await;
        let notice = async {
            let connected = self.p2p.connected().await;
            let ids: Vec<SessionId> = self
                .pusher
                .peers
                .sessions()
                .into_iter()
                .filter(|id| self.pusher.peers.peers(id).iter().any(|p| connected.contains(p)))
                .collect();
            let ids = if self.restart_pause_secs == 0 { Vec::new() } else { ids };
            match self.pusher.source.suspend_for_restart(ids, self.restart_pause_secs).await {
                Ok(suspended) => info!(sessions = suspended, "restart notice sent"),
                Err(e) => warn!(error = %e, "could not pause sessions for the restart"),
            }
            self.pusher.drain_and_wait().await;
        };
        if tokio::time::timeout(SHUTDOWN_NOTICE_TIMEOUT, notice).await.is_err() {
            warn!("restart notice not acknowledged by every user in time; their next response carries it");
        }
        self.p2p.shutdown().await;
        if let Some((stop_admin, mut task)) = self.admin_task {
            // Graceful: requests in progress finish and every connection (each holding the
            // engine) is closed before this returns, so a restart can open the same store.
            let _ = stop_admin.send(());
            if tokio::time::timeout(ADMIN_STOP_TIMEOUT, &mut task).await.is_err() {
                task.abort();
                let _ = task.await;
            }
        }
        let _ = self.stop.send(());
        self.follower.await.unwrap_or_default()
    }
}

type Engine<S> = Provider<RpcChain, S, ChainClaimer<RpcChain>>;

type BoxFuture<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Engine operations the pusher needs, without the engine's type parameters.
trait TerminationSource: Send + Sync {
    /// Terminations queued in the engine.
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

/// Delivers standalone terminations to the connected peers that used each session.
#[derive(Clone)]
struct Pusher {
    p2p: P2p,
    peers: Arc<SessionPeers>,
    metrics: Arc<Metrics>,
    permits: Arc<Semaphore>,
    source: Arc<dyn TerminationSource>,
}

impl std::fmt::Debug for Pusher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pusher").finish_non_exhaustive()
    }
}

impl Pusher {
    /// Starts delivering `termination` for `session` to each peer that used it and is still
    /// connected; returns the tasks started (none when the user is away or too many pushes are
    /// in flight: the session's next response carries the termination anyway).
    fn push(&self, session: SessionId, termination: ServiceTermination) -> Vec<JoinHandle<()>> {
        let body = SessionTermination { session_id: session.0, termination }.encode();
        let mut tasks = Vec::new();
        for peer in self.peers.peers(&session) {
            let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
                debug!(?session, "too many terminations in flight; the next response carries it");
                break;
            };
            let (p2p, metrics, body) = (self.p2p.clone(), Arc::clone(&self.metrics), body.clone());
            tasks.push(tokio::spawn(async move {
                match p2p.push(peer, Proto::Termination, body).await {
                    Ok(_) => {
                        Metrics::bump(&metrics.terminations_pushed, 1);
                        debug!(%peer, ?session, "termination delivered");
                    }
                    Err(e) => {
                        debug!(%peer, ?session, error = %e, "termination not pushed; the next response carries it")
                    }
                }
                drop(permit);
            }));
        }
        tasks
    }

    /// Pushes everything queued in the engine; returns the delivery tasks.
    fn drain(&self) -> Vec<JoinHandle<()>> {
        self.source.take().into_iter().flat_map(|(id, t)| self.push(id, t)).collect()
    }

    async fn drain_and_wait(&self) {
        for task in self.drain() {
            let _ = task.await;
        }
    }

    /// Pushes `termination` to every connected user of an open session in `open`.
    fn push_all(&self, open: &[SessionId], termination: ServiceTermination) -> usize {
        open.iter().map(|id| self.push(*id, termination).len()).sum()
    }
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

/// Starts a provider: checks the chain is reachable, opens the session store, starts the
/// follower, the libp2p service and the admin endpoint.
///
/// # Errors
/// A [`StartError`] saying which part failed and why.
pub async fn start(config: ProviderConfig, archive: Arc<dyn Archive>) -> Result<ProviderHandle, StartError> {
    let token = admin_token(&config).await?;
    match config.sessions.clone() {
        SessionBackend::Memory => start_with(config, archive, MemoryStore::new(), token).await,
        SessionBackend::Redb(path) => {
            // Opening reads the file and commits: on the blocking pool, as every store call.
            let shown = path.display().to_string();
            let store = tokio::task::spawn_blocking(move || RedbStore::open(&path))
                .await
                .map_err(|e| StartError::Sessions(e.to_string()))?
                .map_err(|e| StartError::Sessions(format!("{shown}: {e}")))?;
            start_with(config, archive, store, token).await
        }
        SessionBackend::Postgres(url) => {
            let store = tokio::task::spawn_blocking(move || PgStore::connect(&url))
                .await
                .map_err(|e| StartError::Sessions(e.to_string()))?
                .map_err(|e| StartError::Sessions(e.to_string()))?;
            start_with(config, archive, store, token).await
        }
    }
}

/// The admin endpoint's token, checked before anything opens or listens: the endpoint can end
/// every session, so it must be on loopback and its token must be usable.
async fn admin_token(config: &ProviderConfig) -> Result<Option<String>, StartError> {
    Ok(match config.admin {
        Some(addr) if !addr.ip().is_loopback() => {
            return Err(StartError::Admin {
                addr,
                reason: "the admin endpoint can end sessions, so it listens on loopback only (127.0.0.1 or [::1]); \
                         reach it from elsewhere through an SSH tunnel"
                    .into(),
            });
        }
        Some(addr) => Some(
            tokio::task::spawn_blocking({
                let source = config.service.admin_token.clone();
                move || source.resolve()
            })
            .await
            .map_err(|e| StartError::Admin { addr, reason: e.to_string() })?
            .map_err(|reason| StartError::Admin { addr, reason })?,
        ),
        None => None,
    })
}

async fn start_with<S: SessionStore + 'static>(
    config: ProviderConfig,
    archive: Arc<dyn Archive>,
    store: S,
    admin_token: Option<String>,
) -> Result<ProviderHandle, StartError> {
    let client = Client::connect(&config.rpc_url).map_err(|e| StartError::Chain(e.to_string()))?;
    client.last_block_id().await.map_err(|e| {
        StartError::Chain(format!("{e} (is the chain running at {}? start it with `paystream node`)", config.rpc_url))
    })?;
    let liveness = Liveness::new();
    let chain = RpcChain::new(client.clone()).with_liveness(liveness.clone()).with_head_cache(HEAD_CACHE_TTL);
    // Claims read streams right after changing them, so the claimer reads fresh views; request
    // checks read them through the per-height stream cache.
    let claimer = ChainClaimer::new(chain.clone(), config.provider_key.clone(), client.program_id(), None);
    let chain = chain.with_stream_cache();
    let provider: Arc<Engine<S>> = Arc::new(
        Provider::new(config.policy.clone(), config.limits, chain, store, claimer)
            .map_err(|e| StartError::Policy(e.to_string()))?,
    );

    // The admin port is taken before anything runs, so a taken port leaves nothing behind.
    let admin_listener = match (config.admin, &admin_token) {
        (Some(addr), Some(_)) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| StartError::Admin { addr, reason: e.to_string() })?;
            let bound = listener.local_addr().map_err(|e| StartError::Admin { addr, reason: e.to_string() })?;
            Some((listener, bound))
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

    let metrics = Arc::new(Metrics::default());
    let service = StoreService::new(Arc::clone(&provider), archive, Arc::clone(&metrics))
        .with_peer_limit(config.service.peer_limit)
        .with_network(config.service.network.clone());
    let session_peers = Arc::clone(service.session_peers());
    let options = NodeOptions {
        listen: std::iter::once(config.listen.clone()).chain(config.service.ws_listen.clone()).collect(),
        network: config.service.network.clone(),
    };
    let p2p = match P2p::start_with(node_keypair(&config.provider_key), options, Some(Arc::new(service))).await {
        Ok(p2p) => p2p,
        Err(e) => {
            // Not serving after all: stop the follower (releasing the session store).
            let _ = stop.send(());
            let _ = follower.await;
            return Err(e.into());
        }
    };
    for addr in p2p.listen_addrs() {
        info!(%addr, "Store service listening");
    }
    let pusher = Pusher {
        p2p: p2p.clone(),
        peers: session_peers,
        metrics: Arc::clone(&metrics),
        permits: Arc::new(Semaphore::new(TERMINATION_PUSHES_MAX)),
        source: Arc::clone(&provider) as Arc<dyn TerminationSource>,
    };
    let push_task = {
        let pusher = pusher.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(TERMINATION_PUSH_INTERVAL);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                drop(pusher.drain());
            }
        })
    };

    let (admin, admin_task) = match (admin_listener, admin_token.clone()) {
        (Some((listener, bound)), Some(token)) => {
            let router = admin_router(AdminState {
                provider: Arc::clone(&provider),
                metrics: Arc::clone(&metrics),
                pusher: pusher.clone(),
                guard: Arc::new(AdminGuard::new(bound, token)),
            });
            let (stop_admin, admin_stopped) = oneshot::channel::<()>();
            let task = tokio::spawn(async move {
                let serve = axum::serve(listener, router).with_graceful_shutdown(async {
                    let _ = admin_stopped.await;
                });
                if let Err(e) = serve.await {
                    warn!(error = %e, "admin endpoint stopped");
                }
            });
            (Some(bound), Some((stop_admin, task)))
        }
        _ => (None, None),
    };
    Ok(ProviderHandle {
        p2p,
        admin,
        admin_token,
        pusher,
        push_task,
        restart_pause_secs: config.service.restart_pause_secs,
        stop,
        follower,
        admin_task,
        metrics,
        handled,
    })
}

/// Who may use a local HTTP API (the provider's admin endpoint, the user's agent): requests
/// naming this host, from no foreign origin, with the token. `/health` needs no token.
#[derive(Debug)]
pub struct AdminGuard {
    hosts: Vec<String>,
    origins: Vec<String>,
    token: String,
    token_hint: String,
}

impl AdminGuard {
    /// The guard of an endpoint bound to `bound` (loopback) with bearer `token`.
    #[must_use]
    pub fn new(bound: SocketAddr, token: String) -> Self {
        let port = bound.port();
        let mut hosts = vec![bound.to_string(), format!("localhost:{port}"), format!("127.0.0.1:{port}")];
        hosts.dedup();
        let origins = hosts.iter().map(|h| format!("http://{h}")).collect();
        let token_hint = "`store serve` printed where the token file is".to_owned();
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
                format!("Host {host:?} is not this admin endpoint; use one of {}", self.hosts.join(", ")),
            ));
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            let origin = origin.to_str().unwrap_or_default();
            if !self.origins.iter().any(|o| o.eq_ignore_ascii_case(origin)) {
                return Some(error_response(
                    StatusCode::FORBIDDEN,
                    format!("requests from origin {origin:?} are refused: the admin endpoint is not for web pages"),
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

struct AdminState<S> {
    provider: Arc<Engine<S>>,
    metrics: Arc<Metrics>,
    pusher: Pusher,
    guard: Arc<AdminGuard>,
}

impl<S> Clone for AdminState<S> {
    fn clone(&self) -> Self {
        Self {
            provider: Arc::clone(&self.provider),
            metrics: Arc::clone(&self.metrics),
            pusher: self.pusher.clone(),
            guard: Arc::clone(&self.guard),
        }
    }
}

async fn admin_guard<S: SessionStore + 'static>(
    State(state): State<AdminState<S>>,
    request: Request,
    next: Next,
) -> Response {
    match state.guard.refusal(request.headers(), request.uri().path()) {
        None => next.run(request).await,
        Some(response) => response,
    }
}

fn admin_router<S: SessionStore + 'static>(state: AdminState<S>) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics_handler::<S>))
        .route("/sessions", get(sessions_handler::<S>))
        .route("/sessions/{id}/terminate", post(terminate_handler::<S>))
        .route("/maintenance", post(maintenance_handler::<S>))
        .layer(middleware::from_fn_with_state(state.clone(), admin_guard::<S>))
        .with_state(state)
}

#[derive(Debug, serde::Deserialize)]
struct MaintenanceQuery {
    secs: u64,
}

/// `POST /maintenance?secs=N`: every request gets TEMPORARY until N seconds of chain time from
/// now (0 ends maintenance); connected users of open sessions are told at once.
async fn maintenance_handler<S: SessionStore + 'static>(
    State(state): State<AdminState<S>>,
    Query(query): Query<MaintenanceQuery>,
) -> Response {
    let termination = match state.provider.start_maintenance(query.secs).await {
        Ok(Some(t)) => t,
        Ok(None) => return Json(serde_json::json!({ "maintenance": null })).into_response(),
        Err(e) => return error_response(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    };
    let connected = state.pusher.p2p.connected().await;
    let ids: Vec<SessionId> = state
        .pusher
        .peers
        .sessions()
        .into_iter()
        .filter(|id| state.pusher.peers.peers(id).iter().any(|p| connected.contains(p)))
        .collect();
    let open = match state.provider.open_sessions(&ids).await {
        Ok(open) => open,
        Err(e) => return error_response(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    };
    let notified = state.pusher.push_all(&open, termination);
    Json(serde_json::json!({ "maintenance_until": termination.resume_after, "users_notified": notified }))
        .into_response()
}

async fn metrics_handler<S: SessionStore + 'static>(State(state): State<AdminState<S>>) -> String {
    state.metrics.render()
}

fn error_response(status: StatusCode, message: String) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
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
