//! The embedded paystreams chain, shaped like LEZ's sequencer.
//!
//! [`start`] opens (or creates) the chain, hands back its dev keys, serves the
//! JSON-RPC API ([`paystreams_rpc::PaystreamsApi`]) over HTTP and WebSocket on one port with
//! `/health` and `/metrics` beside it, and produces blocks every `block_time` or, with
//! `automine`, one block per transaction.
//!
//! Every block is a LEZ block (see [`block`]), signed by the node's sequencer key: genesis is block
//! 1, and each block applies its transactions in mempool order on an overlay of the committed
//! state — failed ones change nothing, stay out of LEZ's body and keep their receipts — then the
//! clock invocation as the last transaction, so user transactions in block N read block N−1's
//! time (as on LEZ). The builtins run under the program ids of the chosen LEZ release
//! ([`NodeConfig::lez_release`]). The block, its receipts and its account changes commit in one
//! durable storage transaction. Admitted transactions are durable before their submission is
//! answered (the storage's pending table) and are re-admitted when the node opens again.

pub mod block;
pub mod chain;
pub mod front;
pub mod http;
pub mod index;
pub mod limits;
pub mod metrics;
pub mod root;
pub mod rpc;
pub mod storage;
pub mod verify;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::Context as _;
use jsonrpsee::server::{BatchRequestConfig, Server, ServerConfig, ServerHandle};
use paystreams_lez_core::{crypto::SecretKey, lez_release::LezRelease};
use tokio::{sync::watch, task::JoinHandle};

pub use chain::{Chain, ChainConfig, NodeError};
pub use front::{FrontLimits, FrontStats};
pub use http::ReadDeadlines;
pub use rpc::RpcMethods;
pub use storage::{FORMAT_VERSION, MemStorage, RedbStorage, Storage, StorageError};
pub use verify::{VerifyError, VerifyReport, verify};

/// Default JSON-RPC address (LEZ's sequencer port).
pub const DEFAULT_RPC_ADDR: &str = "127.0.0.1:3040";

/// Largest JSON-RPC request body. A transaction is at most 64 KiB (~88 KiB base64); 1 MiB
/// leaves room for batches of ordinary calls while refusing memory-exhaustion payloads.
pub const MAX_REQUEST_BODY_BYTES: u32 = 1024 * 1024;

/// Largest response body. `getBlockRange` of 1000 full blocks fits; bounds memory per reply.
pub const MAX_RESPONSE_BODY_BYTES: u32 = 16 * 1024 * 1024;

/// Most calls in one JSON-RPC batch, so one request cannot queue unbounded work.
pub const MAX_BATCH_LEN: u32 = 100;

/// Default of [`FrontLimits::max_connections`]: most simultaneous connections (HTTP and
/// WebSocket) in all; a new one beyond it closes the quietest connection of the busiest address.
pub const MAX_CONNECTIONS: u32 = FrontLimits::DEFAULT.max_connections;

/// Default of [`FrontLimits::max_subscriptions_per_connection`].
pub const MAX_SUBSCRIPTIONS_PER_CONNECTION: u32 = FrontLimits::DEFAULT.max_subscriptions_per_connection;

/// jsonrpsee's own connection count, set far above what the front admits (see `start`).
const JSONRPSEE_CONNECTIONS: u32 = 1 << 20;

/// Default balance of each dev account.
pub const DEFAULT_DEV_BALANCE: u128 = 1_000_000_000;

/// Default number of dev accounts.
pub const DEFAULT_DEV_ACCOUNTS: u32 = 10;

/// File name of the redb database inside the data dir.
pub const DB_FILE: &str = "chain.redb";

/// File name of the sequencer's secret key inside the data dir (hex, owner-only permissions).
pub const SEQUENCER_KEY_FILE: &str = "sequencer.key";

/// How the node runs.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Where the chain is stored; `None` keeps it in memory (gone on exit).
    pub data_dir: Option<PathBuf>,
    pub rpc_addr: SocketAddr,
    /// Interval of timed blocks; must be positive unless `automine`.
    pub block_time: Duration,
    /// One block per transaction, mined as it arrives; no timed blocks.
    pub automine: bool,
    /// Enables `devAdvanceTime` and `devMine`.
    pub dev: bool,
    /// Dev accounts created at genesis (first start only). Their keys are
    /// [`NodeHandle::dev_keys`]; saving them is the caller's business (the CLI writes them to its
    /// keystore).
    pub dev_accounts: u32,
    pub dev_balance: u128,
    /// The LEZ release whose builtin program ids the chain runs; fixed when the data dir is
    /// created.
    pub lez_release: LezRelease,
    /// The key that signs blocks. `None`: the data dir's [`SEQUENCER_KEY_FILE`] (created on first
    /// start), or a fresh key for a chain in memory.
    pub sequencer_key: Option<SecretKey>,
    /// LEZ's methods and ours, or LEZ's only.
    pub rpc_methods: RpcMethods,
    /// How long a client may take to send a request's headers and body
    /// ([`ReadDeadlines::DEFAULT`]: 10 s and 15 s).
    pub read_deadlines: ReadDeadlines,
    /// Connection, subscription and range-read limits ([`FrontLimits::DEFAULT`]).
    pub limits: FrontLimits,
}

impl NodeConfig {
    /// A node storing its chain in `data_dir` (`None`: in memory), on [`DEFAULT_RPC_ADDR`], a
    /// block a second, dev methods off, [`DEFAULT_DEV_ACCOUNTS`] accounts of
    /// [`DEFAULT_DEV_BALANCE`].
    #[must_use]
    pub fn new(data_dir: Option<PathBuf>) -> Self {
        Self {
            data_dir,
            rpc_addr: SocketAddr::from(([127, 0, 0, 1], 3040)),
            block_time: Duration::from_secs(1),
            automine: false,
            dev: false,
            dev_accounts: DEFAULT_DEV_ACCOUNTS,
            dev_balance: DEFAULT_DEV_BALANCE,
            lez_release: LezRelease::DEFAULT,
            sequencer_key: None,
            rpc_methods: RpcMethods::All,
            read_deadlines: ReadDeadlines::DEFAULT,
            limits: FrontLimits::DEFAULT,
        }
    }

    /// In memory, on `127.0.0.1:0`, automine, dev methods on, 10 accounts of 1e9: for tests.
    #[must_use]
    pub fn ephemeral_dev() -> Self {
        Self { rpc_addr: SocketAddr::from(([127, 0, 0, 1], 0)), automine: true, dev: true, ..Self::new(None) }
    }

    /// Refuses settings the node cannot run with, naming the flag to change.
    ///
    /// # Errors
    /// A zero block time without automine.
    pub fn check(&self) -> anyhow::Result<()> {
        if !self.automine && self.block_time.is_zero() {
            anyhow::bail!("the block time must be positive; pass e.g. --block-time 1s, or --automine");
        }
        self.limits.check()
    }
}

/// A running node.
pub struct NodeHandle {
    addr: SocketAddr,
    chain: Arc<Chain>,
    server: ServerHandle,
    registry: Arc<front::Registry>,
    stop: watch::Sender<bool>,
    producer: Option<JoinHandle<()>>,
}

impl NodeHandle {
    /// `http://ADDR`.
    #[must_use]
    pub fn rpc_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `ws://ADDR`.
    #[must_use]
    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    #[must_use]
    pub const fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The sequencer's public key (every block is signed by it).
    #[must_use]
    pub fn sequencer_public_key(&self) -> paystreams_lez_core::crypto::PublicKey {
        self.chain.sequencer_public_key()
    }

    /// The funded genesis keys, in order (`dev-0` first).
    #[must_use]
    pub fn dev_keys(&self) -> &[SecretKey] {
        self.chain.dev_keys()
    }

    /// Connections held now and connections closed to make room since the start.
    #[must_use]
    pub fn front_stats(&self) -> FrontStats {
        self.registry.stats()
    }

    /// The chain, for in-process callers (tests, benchmarks).
    #[must_use]
    pub fn chain(&self) -> &Arc<Chain> {
        &self.chain
    }

    /// Stops serving, stops block production and releases the storage. Committed blocks are
    /// already durable.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(producer) = self.producer.take() {
            let _ = producer.await;
        }
        // Every block handed to the committer is written (or discarded) before this returns.
        let chain = Arc::clone(&self.chain);
        let _ = tokio::task::spawn_blocking(move || chain.stop_committer()).await;
        let _ = self.server.stop();
        self.server.clone().stopped().await;
        // Connection tasks hold the chain until they wind down; wait briefly so the database
        // file is closed when this returns and a restart can reopen it.
        for _ in 0..200 {
            if Arc::strong_count(&self.chain) == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Closing the database may write and fsync: off the executor.
        let chain = self.chain;
        let _ = tokio::task::spawn_blocking(move || drop(chain)).await;
    }
}

/// Opens the storage a config asks for, converting a data dir of an older format (see
/// [`FORMAT_VERSION`]). Blocking: async callers run it on a blocking thread, as [`start`] does.
///
/// # Errors
/// The data dir cannot be created, or the database cannot be opened (held by another process,
/// of a newer format, corrupt).
pub fn open_storage(data_dir: Option<&Path>) -> anyhow::Result<Arc<dyn Storage>> {
    let Some(dir) = data_dir else {
        return Ok(Arc::new(MemStorage::new()));
    };
    std::fs::create_dir_all(dir).with_context(|| {
        format!("cannot create data dir {}; pass a writable --data-dir or --ephemeral", dir.display())
    })?;
    let path = dir.join(DB_FILE);
    let storage =
        RedbStorage::open(&path).with_context(|| format!("cannot open the chain database {}", path.display()))?;
    Ok(Arc::new(storage))
}

/// The sequencer key kept in `data_dir`: read from [`SEQUENCER_KEY_FILE`], or created there
/// once (owner-only permissions) when the file does not exist. Blocking.
///
/// # Errors
/// The file cannot be read, written or parsed, naming it.
pub fn load_or_create_sequencer_key(data_dir: &Path) -> anyhow::Result<SecretKey> {
    use std::io::Write as _;
    let path = data_dir.join(SEQUENCER_KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => paystreams_lez_core::crypto::secret_key_from_hex(text.trim()).map_err(|e| {
            anyhow::anyhow!(
                "the sequencer key {} is not a 32-byte hex secret key ({e}); restore it, or move the data dir away to \
                 start a new chain",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(data_dir).with_context(|| {
                format!("cannot create data dir {}; pass a writable --data-dir or --ephemeral", data_dir.display())
            })?;
            let key = SecretKey::generate();
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt as _;
                options.mode(0o600);
            }
            let mut file =
                options.open(&path).with_context(|| format!("cannot create the sequencer key {}", path.display()))?;
            writeln!(file, "{}", hex::encode(key.to_bytes()))
                .and_then(|()| file.sync_all())
                .with_context(|| format!("cannot write the sequencer key {}", path.display()))?;
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read the sequencer key {}", path.display())),
    }
}

/// Starts a node. Opening the storage and the sequencer key and loading the chain run on a
/// blocking thread.
///
/// # Errors
/// Invalid config, storage or listening failures, each naming the flag to change.
pub async fn start(mut config: NodeConfig) -> anyhow::Result<NodeHandle> {
    config.check()?;
    let data_dir = config.data_dir.clone();
    let given = config.sequencer_key.clone();
    let (storage, key) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let storage = open_storage(data_dir.as_deref())?;
        let key = match (given, data_dir) {
            (Some(key), _) => key,
            (None, Some(dir)) => load_or_create_sequencer_key(&dir)?,
            (None, None) => SecretKey::generate(),
        };
        Ok((storage, key))
    })
    .await
    .context("storage open task failed")??;
    config.sequencer_key = Some(key);
    start_with_storage(config, storage).await
}

/// Starts a node over a given storage (`config.data_dir` is ignored; without
/// `config.sequencer_key` a fresh key signs): for embedding and for fault-injection tests.
///
/// # Errors
/// As [`start`].
pub async fn start_with_storage(config: NodeConfig, storage: Arc<dyn Storage>) -> anyhow::Result<NodeHandle> {
    config.check()?;
    let chain = tokio::task::spawn_blocking({
        let chain_config = ChainConfig {
            release: config.lez_release,
            sequencer: config.sequencer_key.clone().unwrap_or_else(SecretKey::generate),
            dev_accounts: config.dev_accounts,
            dev_balance: config.dev_balance,
        };
        let automine = config.automine;
        move || {
            let chain = Chain::open(storage, &chain_config)?;
            // With automine every transaction is mined as it arrives: those restored to the
            // mempool arrived before this start, so they are mined now, one block each.
            while automine && chain.mempool_len() > 0 {
                chain.produce_block(rpc::block_capacity(true), 0)?;
            }
            Ok::<_, NodeError>(chain)
        }
    })
    .await
    .context("chain open task failed")?
    .context("cannot open the chain")?;
    let chain = Arc::new(chain);

    let rpc_limits = Arc::new(limits::RpcLimits::new(&config.limits));
    let module = rpc::RpcServer::new(Arc::clone(&chain), config.automine, config.dev)
        .with_limits(rpc_limits)
        .into_module(config.rpc_methods)?;
    let subscriptions = module
        .method_names()
        .filter(|name| {
            matches!(
                module.method(name),
                Some(
                    jsonrpsee::server::MethodCallback::Subscription(_)
                        | jsonrpsee::server::MethodCallback::Unsubscription(_)
                )
            )
        })
        .map(str::to_owned)
        .collect();
    let server_config = ServerConfig::builder()
        // The HTTP layer enforces MAX_REQUEST_BODY_BYTES on HTTP bodies and forwards a request
        // rewritten with ids of its own, which may be a little longer.
        .max_request_body_size(MAX_REQUEST_BODY_BYTES + http::FORWARD_SLACK_BYTES)
        .max_response_body_size(MAX_RESPONSE_BODY_BYTES)
        // Connections are counted and bounded by the front (`front.rs`), which never refuses a
        // new client; jsonrpsee's own count (requests in flight and WebSockets, answered 429
        // beyond it) must never bind first.
        .max_connections(JSONRPSEE_CONNECTIONS)
        .max_subscriptions_per_connection(config.limits.max_subscriptions_per_connection)
        .set_batch_request_config(BatchRequestConfig::Limit(MAX_BATCH_LEN))
        .build();
    let services = Server::builder()
        .set_config(server_config)
        .set_rpc_middleware(
            jsonrpsee::server::middleware::rpc::RpcServiceBuilder::new()
                .layer(tower::layer::layer_fn({
                    let chain = Arc::clone(&chain);
                    move |service| limits::BatchBound::new(service, Arc::clone(&chain))
                }))
                .layer(tower::layer::layer_fn(rpc::Notifications::new)),
        )
        .set_http_middleware(tower::ServiceBuilder::new().layer(http::HttpLayer::new(
            Arc::clone(&chain),
            subscriptions,
            config.read_deadlines,
        )))
        .to_service_builder();
    let listener = tokio::net::TcpListener::bind(config.rpc_addr).await.with_context(|| {
        format!("cannot listen on {}; is the port in use? pass another --rpc-addr", config.rpc_addr)
    })?;
    let addr = listener.local_addr().context("listening address")?;
    let (stop_handle, server) = jsonrpsee::server::stop_channel();
    let registry = front::Registry::new(config.limits);
    let methods: jsonrpsee::Methods = module.into();
    tokio::spawn(front::serve(
        listener,
        Arc::clone(&registry),
        {
            let stop_handle = stop_handle.clone();
            move || services.clone().build(methods.clone(), stop_handle.clone())
        },
        config.read_deadlines.headers,
        stop_handle,
    ));

    let (stop, mut stopped) = watch::channel(false);
    if !config.automine {
        chain.start_committer();
    }
    let producer = (!config.automine).then(|| {
        let chain = Arc::clone(&chain);
        let block_time = config.block_time;
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(block_time);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            interval.tick().await;
            loop {
                tokio::select! {
                    _ = stopped.changed() => break,
                    _ = interval.tick() => {
                        let chain = Arc::clone(&chain);
                        // Hands the block to the committer: the next one executes while it is written.
                        let produced = tokio::task::spawn_blocking(move || chain.produce_block_pipelined(rpc::block_capacity(false), 0)).await;
                        match produced {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => tracing::error!(error = %e, "block production failed"),
                            Err(e) => tracing::error!(error = %e, "block production task failed"),
                        }
                    }
                }
            }
        })
    });
    tracing::info!(
        %addr,
        height = chain.head_height(),
        lez_release = %chain.lez_release(),
        sequencer = %chain.sequencer_public_key(),
        "paystreams node listening"
    );
    Ok(NodeHandle { addr, chain, server, registry, stop, producer })
}
