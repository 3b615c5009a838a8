//! A whole Store provider process: the provider engine on the chain (RPC reads, WebSocket
//! events, claims), its session store, the archive, the libp2p service and the admin HTTP
//! endpoint (`/health`, `/metrics`, `/sessions`, `POST /sessions/{id}/terminate`).

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use libp2p::{Multiaddr, PeerId, identity::Keypair};
use paystreams_client::Client;
use paystreams_lez_core::{AccountId, crypto::SecretKey};
use paystreams_provider::{
    ChainClaimer, EngineLimits, FollowerConfig, FollowerStats, MemoryStore, PgStore, Provider, ProviderPolicy,
    ProviderReport, RedbStore, SessionId, SessionStore, run_follower,
};
use paystreams_rpc::{
    events::{EventSource, Liveness},
    remote::{RpcChain, WsEvents, WsSubscription},
};
use sha2::{Digest as _, Sha256};
use tokio::{
    sync::{oneshot, watch},
    task::JoinHandle,
};
use tracing::{info, warn};

use crate::{
    archive::Archive,
    net::{NetError, P2p},
    service::{Metrics, StoreService},
};

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
    stop: oneshot::Sender<()>,
    follower: JoinHandle<FollowerStats>,
    admin_task: Option<JoinHandle<()>>,
    metrics: Arc<Metrics>,
    /// Block id of the last event the engine handled.
    handled: watch::Receiver<u64>,
}

impl ProviderHandle {
    #[must_use]
    pub const fn peer_id(&self) -> PeerId {
        self.p2p.peer_id()
    }

    /// Dialable addresses, each ending in `/p2p/<peer id>`.
    #[must_use]
    pub fn addrs(&self) -> &[Multiaddr] {
        self.p2p.listen_addrs()
    }

    #[must_use]
    pub const fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin
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
    /// returns its statistics.
    pub async fn shutdown(self) -> FollowerStats {
        self.p2p.shutdown().await;
        if let Some(task) = self.admin_task {
            task.abort();
            let _ = task.await;
        }
        let _ = self.stop.send(());
        self.follower.await.unwrap_or_default()
    }
}

type Engine<S> = Provider<RpcChain, S, ChainClaimer<RpcChain>>;

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
    match config.sessions.clone() {
        SessionBackend::Memory => start_with(config, archive, MemoryStore::new()).await,
        SessionBackend::Redb(path) => {
            // Opening reads the file and commits: on the blocking pool, as every store call.
            let shown = path.display().to_string();
            let store = tokio::task::spawn_blocking(move || RedbStore::open(&path))
                .await
                .map_err(|e| StartError::Sessions(e.to_string()))?
                .map_err(|e| StartError::Sessions(format!("{shown}: {e}")))?;
            start_with(config, archive, store).await
        }
        SessionBackend::Postgres(url) => {
            let store = tokio::task::spawn_blocking(move || PgStore::connect(&url))
                .await
                .map_err(|e| StartError::Sessions(e.to_string()))?
                .map_err(|e| StartError::Sessions(e.to_string()))?;
            start_with(config, archive, store).await
        }
    }
}

async fn start_with<S: SessionStore + 'static>(
    config: ProviderConfig,
    archive: Arc<dyn Archive>,
    store: S,
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
    let service = Arc::new(StoreService::new(Arc::clone(&provider), archive, Arc::clone(&metrics)));
    let p2p = P2p::start(node_keypair(&config.provider_key), Some(config.listen.clone()), Some(service)).await?;
    for addr in p2p.listen_addrs() {
        info!(%addr, "Store service listening");
    }

    let (admin, admin_task) = match config.admin {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| StartError::Admin { addr, reason: e.to_string() })?;
            let bound = listener.local_addr().map_err(|e| StartError::Admin { addr, reason: e.to_string() })?;
            let router = admin_router(AdminState { provider: Arc::clone(&provider), metrics: Arc::clone(&metrics) });
            let task = tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, router).await {
                    warn!(error = %e, "admin endpoint stopped");
                }
            });
            (Some(bound), Some(task))
        }
        None => (None, None),
    };
    Ok(ProviderHandle { p2p, admin, stop, follower, admin_task, metrics, handled })
}

struct AdminState<S> {
    provider: Arc<Engine<S>>,
    metrics: Arc<Metrics>,
}

impl<S> Clone for AdminState<S> {
    fn clone(&self) -> Self {
        Self { provider: Arc::clone(&self.provider), metrics: Arc::clone(&self.metrics) }
    }
}

fn admin_router<S: SessionStore + 'static>(state: AdminState<S>) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics_handler::<S>))
        .route("/sessions", get(sessions_handler::<S>))
        .route("/sessions/{id}/terminate", post(terminate_handler::<S>))
        .with_state(state)
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
