//! A whole Store provider process: the shared provider process ([`paystreams_process`]: the
//! engine on the chain, its session store, the admin HTTP endpoint) with the archive, the libp2p
//! service and the delivery of standalone terminations to connected users on top.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use libp2p::{Multiaddr, PeerId, identity::Keypair};
use paystreams_lez_core::crypto::SecretKey;
pub use paystreams_process::{
    ADMIN_STOP_TIMEOUT, ADMIN_TOKEN_MIN_LEN, AdminGuard, AdminToken, HEAD_CACHE_TTL, SUBSCRIBE_WAIT, SessionBackend,
    fresh_token, write_token,
};
use paystreams_process::{
    App, BoxFuture, Notifier, Opened, ProcessConfig, ProcessError, ProcessHandle, TerminationSource, open,
};
use paystreams_provider::{EngineLimits, FollowerStats, ProviderPolicy, SessionId, SessionStore};
use paystreams_wire::{ServiceTermination, SessionTermination};
use sha2::{Digest as _, Sha256};
use tokio::{sync::Semaphore, task::JoinHandle};
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
/// How long stopping waits for connected users to acknowledge the restart notice.
pub const SHUTDOWN_NOTICE_TIMEOUT: Duration = Duration::from_secs(3);

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
    /// How the process speaks to the chain at [`ProviderConfig::rpc_url`].
    pub chain: paystreams_rpc::remote::ChainAccess,
}

impl Default for ServiceOptions {
    fn default() -> Self {
        Self {
            peer_limit: PeerLimit::default(),
            admin_token: AdminToken::Ephemeral,
            restart_pause_secs: 10,
            ws_listen: None,
            network: WakuNetwork::default(),
            chain: paystreams_rpc::remote::ChainAccess::default(),
        }
    }
}

impl ProviderConfig {
    /// The process part's share of the configuration.
    fn process(&self) -> ProcessConfig {
        ProcessConfig {
            rpc_url: self.rpc_url.clone(),
            chain: self.service.chain.clone(),
            provider_key: self.provider_key.clone(),
            policy: self.policy.clone(),
            limits: self.limits,
            sessions: self.sessions.clone(),
            admin: self.admin,
            admin_token: self.service.admin_token.clone(),
            tick_interval: self.tick_interval,
            claim_on_shutdown: self.claim_on_shutdown,
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

impl From<ProcessError> for StartError {
    fn from(e: ProcessError) -> Self {
        match e {
            ProcessError::Chain(s) => Self::Chain(s),
            ProcessError::Sessions(s) => Self::Sessions(s),
            ProcessError::Policy(s) => Self::Policy(s),
            ProcessError::Admin { addr, reason } => Self::Admin { addr, reason },
        }
    }
}

/// A running provider.
#[derive(Debug)]
pub struct ProviderHandle {
    p2p: P2p,
    pusher: Pusher,
    push_task: JoinHandle<()>,
    /// Chain time the restart notice covers.
    restart_pause_secs: u64,
    /// The follower and the admin endpoint.
    process: ProcessHandle,
    metrics: Arc<Metrics>,
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
        self.process.admin_addr()
    }

    /// The admin endpoint's bearer token (send `Authorization: Bearer <token>`).
    #[must_use]
    pub fn admin_token(&self) -> Option<&str> {
        self.process.admin_token()
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
        self.process.wait_for_events_through(block_id, timeout).await
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
        self.process.stop().await
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
}

impl Notifier for Pusher {
    /// The sessions whose users are connected now.
    fn reachable_sessions(&self) -> BoxFuture<'_, Vec<SessionId>> {
        Box::pin(async move {
            let connected = self.p2p.connected().await;
            self.peers
                .sessions()
                .into_iter()
                .filter(|id| self.peers.peers(id).iter().any(|p| connected.contains(p)))
                .collect()
        })
    }

    /// Pushes `termination` to every connected user of an open session in `open`.
    fn notify(&self, open: &[SessionId], termination: ServiceTermination) -> usize {
        open.iter().map(|id| self.push(*id, termination).len()).sum()
    }
}

/// Starts a provider: the shared process part (chain, session store, follower, admin
/// endpoint), then the libp2p service and the termination pusher.
///
/// # Errors
/// A [`StartError`] saying which part failed and why.
pub async fn start(config: ProviderConfig, archive: Arc<dyn Archive>) -> Result<ProviderHandle, StartError> {
    let process = config.process();
    open(process, StoreApp { config, archive }).await
}

/// The Store service on top of the process part.
struct StoreApp {
    config: ProviderConfig,
    archive: Arc<dyn Archive>,
}

impl App for StoreApp {
    type Handle = ProviderHandle;
    type Error = StartError;

    async fn start<S: SessionStore + 'static>(self, opened: Opened<S>) -> Result<ProviderHandle, StartError> {
        let Opened { provider, mut process } = opened;
        let (config, archive) = (self.config, self.archive);
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
                let _ = process.stop().await;
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

        let render = {
            let metrics = Arc::clone(&metrics);
            Arc::new(move || metrics.render())
        };
        process.serve_admin(Arc::clone(&provider), render, Arc::new(pusher.clone()), axum::Router::new());
        Ok(ProviderHandle {
            p2p,
            pusher,
            push_task,
            restart_pause_secs: config.service.restart_pause_secs,
            process,
            metrics,
        })
    }
}
