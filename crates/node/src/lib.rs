//! The embedded paystreams chain, shaped like LEZ's sequencer.
//!
//! [`start`] opens (or creates) the chain, hands back its dev keys, serves the
//! JSON-RPC API ([`paystreams_rpc::PaystreamsApi`]) over HTTP and WebSocket on one port with
//! `/health` and `/metrics` beside it, and produces blocks every `block_time` or, with
//! `automine`, one block per transaction.
//!
//! Each block applies its transactions in mempool order on an overlay of the committed state —
//! failed ones are included with their error and change nothing — then the clock update as the
//! last step, so user transactions in block N read block N−1's time (as on LEZ). The block, its
//! receipts and its account changes commit in one durable storage transaction.

pub mod block;
pub mod chain;
mod http;
pub mod index;
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
use paystreams_lez_core::crypto::SecretKey;
use tokio::{sync::watch, task::JoinHandle};

pub use chain::{Chain, NodeError};
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

/// Most simultaneous connections (HTTP and WebSocket): a local dev chain serves a handful of
/// wallets and engines; this bounds file descriptors and memory.
pub const MAX_CONNECTIONS: u32 = 256;

/// Most subscriptions one WebSocket connection may hold.
pub const MAX_SUBSCRIPTIONS_PER_CONNECTION: u32 = 32;

/// Default balance of each dev account.
pub const DEFAULT_DEV_BALANCE: u128 = 1_000_000_000;

/// Default number of dev accounts.
pub const DEFAULT_DEV_ACCOUNTS: u32 = 10;

/// File name of the redb database inside the data dir.
pub const DB_FILE: &str = "chain.redb";

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
    /// LEZ's methods and ours, or LEZ's only.
    pub rpc_methods: RpcMethods,
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
            rpc_methods: RpcMethods::All,
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
        Ok(())
    }
}

/// A running node.
pub struct NodeHandle {
    addr: SocketAddr,
    chain: Arc<Chain>,
    server: ServerHandle,
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

    /// The funded genesis keys, in order (`dev-0` first).
    #[must_use]
    pub fn dev_keys(&self) -> &[SecretKey] {
        self.chain.dev_keys()
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

/// Starts a node. Opening the storage (which may convert an older data dir) and loading the
/// chain run on a blocking thread.
///
/// # Errors
/// Invalid config, storage or listening failures, each naming the flag to change.
pub async fn start(config: NodeConfig) -> anyhow::Result<NodeHandle> {
    config.check()?;
    let data_dir = config.data_dir.clone();
    let storage = tokio::task::spawn_blocking(move || open_storage(data_dir.as_deref()))
        .await
        .context("storage open task failed")??;
    start_with_storage(config, storage).await
}

/// Starts a node over a given storage (`config.data_dir` is ignored): for embedding and for
/// fault-injection tests.
///
/// # Errors
/// As [`start`].
pub async fn start_with_storage(config: NodeConfig, storage: Arc<dyn Storage>) -> anyhow::Result<NodeHandle> {
    config.check()?;
    let chain = tokio::task::spawn_blocking({
        let (accounts, balance) = (config.dev_accounts, config.dev_balance);
        move || Chain::open(storage, accounts, balance)
    })
    .await
    .context("chain open task failed")?
    .context("cannot open the chain")?;
    let chain = Arc::new(chain);

    let server_config = ServerConfig::builder()
        .max_request_body_size(MAX_REQUEST_BODY_BYTES)
        .max_response_body_size(MAX_RESPONSE_BODY_BYTES)
        .max_connections(MAX_CONNECTIONS)
        .max_subscriptions_per_connection(MAX_SUBSCRIPTIONS_PER_CONNECTION)
        .set_batch_request_config(BatchRequestConfig::Limit(MAX_BATCH_LEN))
        .build();
    let server = Server::builder()
        .set_config(server_config)
        .set_http_middleware(tower::ServiceBuilder::new().layer(http::HealthLayer::new(Arc::clone(&chain))))
        .build(config.rpc_addr)
        .await
        .with_context(|| {
            format!("cannot listen on {}; is the port in use? pass another --rpc-addr", config.rpc_addr)
        })?;
    let addr = server.local_addr().context("listening address")?;
    let module =
        rpc::RpcServer::new(Arc::clone(&chain), config.automine, config.dev).into_module(config.rpc_methods)?;
    let server = server.start(module);

    let (stop, mut stopped) = watch::channel(false);
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
                        let produced = tokio::task::spawn_blocking(move || chain.produce_block(rpc::block_capacity(false), 0)).await;
                        match produced {
                            Ok(Ok(_)) => {}
                            Ok(Err(e)) => tracing::error!(error = %e, "block production failed"),
                            Err(e) => tracing::error!(error = %e, "block production task failed"),
                        }
                    }
                }
            }
        })
    });
    tracing::info!(%addr, height = chain.head_height(), "paystreams node listening");
    Ok(NodeHandle { addr, chain, server, stop, producer })
}
