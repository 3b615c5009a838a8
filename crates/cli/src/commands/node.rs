//! `paystream node`: run the local chain (docs/node.md), or `--verify` a data dir offline.
//!
//! Exit codes: 0 after a clean stop (Ctrl-C / SIGTERM) or a successful `--verify`; 1 when the
//! node cannot start (port in use, unwritable data dir, corrupt database) or verification
//! finds a mismatch.

use std::{io::Write as _, net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

use super::output::CommonArgs;
use anyhow::Context as _;
use paystreams_client::Keystore;
use paystreams_lez_core::{crypto::SecretKey, lez_release::LezRelease};
use paystreams_node::{
    DEFAULT_DEV_ACCOUNTS, DEFAULT_DEV_BALANCE, DEFAULT_RPC_ADDR, FrontLimits, NodeConfig, RpcMethods,
};

#[derive(Debug, clap::Args)]
pub struct NodeArgs {
    /// Chain data directory [default: <user data dir>/paystreams/chain, or $PAYSTREAMS_HOME/chain].
    #[arg(long, value_name = "DIR", conflicts_with = "ephemeral")]
    pub data_dir: Option<PathBuf>,
    /// Keep the chain in memory only (nothing is written; the chain is gone on exit).
    #[arg(long)]
    pub ephemeral: bool,
    /// JSON-RPC address (HTTP and WebSocket on one port; `/health` and `/metrics` too). Set it
    /// once in the config file (`node_rpc_addr = "127.0.0.1:3050"`, see `paystream config
    /// --help`): the other commands then reach the node there too.
    #[arg(long, value_name = "ADDR", env = super::config::NODE_RPC_ADDR_ENV, default_value = DEFAULT_RPC_ADDR)]
    pub rpc_addr: SocketAddr,
    /// Block interval, e.g. `1s`, `500ms`, `2m` (ignored with --automine).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub block_time: Duration,
    /// Mine one block per transaction as it arrives, and no timed blocks.
    #[arg(long)]
    pub automine: bool,
    /// Enable the dev-only methods `paystreams_devAdvanceTime` and `paystreams_devMine`.
    #[arg(long)]
    pub dev: bool,
    /// Which JSON-RPC methods to serve. `all`: LEZ's sequencer methods under LEZ's names and
    /// shapes (sendTransaction, getTransaction, getAccount, getBlock, ...) plus our own
    /// `paystreams_*` methods (receipts, vault and stream views, subscriptions, dev methods).
    /// `lez`: LEZ's methods only, as a LEZ sequencer answers them; every `paystreams_*` call
    /// gets error -32601 saying the node runs in LEZ-only mode. Use `lez` to check that a client
    /// (e.g. one run with `--chain lez`) needs nothing a LEZ sequencer lacks.
    #[arg(long, value_name = "all|lez", default_value_t = RpcMethods::All)]
    pub rpc_methods: RpcMethods,
    /// Funded dev accounts created at genesis (first start of a data dir only).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_DEV_ACCOUNTS)]
    pub dev_accounts: u32,
    /// Native balance of each dev account.
    #[arg(long, value_name = "AMOUNT", default_value_t = DEFAULT_DEV_BALANCE)]
    pub dev_balance: u128,
    /// LEZ release whose builtin program ids the chain runs: v0.2.0, v0.2.1, v0.2.2, v0.2.3 or
    /// v0.2.4 (the live testnet's; v0.2.2 to v0.2.4 share ids). Authenticated transfer and clock
    /// run under that release's ids (RISC Zero image ids of its released programs), so their ids
    /// and the addresses derived from them equal that network's. The token program keeps an id
    /// of its own (it does not implement LEZ's token instructions), and so does the
    /// payment-streams program (it is not the reference's guest). Fixed when a data dir is
    /// created: reopening it under another release is refused.
    #[arg(long, value_name = "RELEASE", default_value = "v0.2.4", value_parser = parse_release)]
    pub lez_release: LezRelease,
    /// Replay every stored block from genesis, check state roots, receipts and supply, print a
    /// JSON report and exit (0 = consistent).
    #[arg(long, conflicts_with = "ephemeral")]
    pub verify: bool,
    /// Most connections (HTTP and WebSocket) the node holds in all. A new connection is always
    /// admitted: beyond this, the quietest connection of the busiest client address is closed
    /// (docs/node.md, "Limits under load").
    #[arg(long, value_name = "N", default_value_t = FrontLimits::DEFAULT.max_connections)]
    pub max_connections: u32,
    /// Most connections one client address holds; beyond it a new connection from that address
    /// closes its quietest one. At most --max-connections.
    #[arg(long, value_name = "N", default_value_t = FrontLimits::DEFAULT.max_connections_per_address)]
    pub max_connections_per_address: u32,
}

/// Parses a release name (`v0.2.4` or `0.2.4`), listing the supported ones when it is unknown.
fn parse_release(text: &str) -> Result<LezRelease, String> {
    text.parse().map_err(|e: paystreams_lez_core::lez_release::UnknownRelease| e.to_string())
}

/// Parses `1s`, `500ms`, `2m`, `1h` or a bare number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| format!("{text:?} is not a duration; use e.g. 1s or 500ms"))?;
    let duration = match unit.trim() {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        other => return Err(format!("unknown unit {other:?}; use ms, s, m or h")),
    };
    if duration.is_zero() {
        return Err("the block time must be positive".into());
    }
    Ok(duration)
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Another subscriber already installed is fine.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs the node until Ctrl-C / SIGTERM, or verifies a data dir.
#[must_use]
pub fn run(args: &NodeArgs, common: &CommonArgs) -> ExitCode {
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("paystream node: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let data_dir = if args.ephemeral {
        None
    } else {
        Some(args.data_dir.clone().unwrap_or_else(|| paystreams_client::keystore::default_home().join("chain")))
    };
    if args.verify {
        return verify(data_dir);
    }
    let config = NodeConfig {
        rpc_addr: args.rpc_addr,
        block_time: args.block_time,
        automine: args.automine,
        dev: args.dev,
        dev_accounts: args.dev_accounts,
        dev_balance: args.dev_balance,
        lez_release: args.lez_release,
        rpc_methods: args.rpc_methods,
        limits: FrontLimits {
            max_connections: args.max_connections,
            max_connections_per_address: args.max_connections_per_address,
            ..FrontLimits::DEFAULT
        },
        ..NodeConfig::new(data_dir)
    };
    let keystore = common.keystore.clone().unwrap_or_else(paystreams_client::keystore::default_keystore_dir);
    match runtime.block_on(serve(config, keystore)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("paystream node: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn verify(data_dir: Option<PathBuf>) -> ExitCode {
    let storage = match paystreams_node::open_storage(data_dir.as_deref()) {
        Ok(storage) => storage,
        Err(e) => {
            eprintln!("paystream node --verify: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    match paystreams_node::verify(storage.as_ref()) {
        Ok(report) => {
            let json = serde_json::to_string_pretty(&report).unwrap_or_default();
            let _ = writeln!(std::io::stdout().lock(), "{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("paystream node --verify: chain is inconsistent: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Saves the node's dev keys into the keystore at `dir` (see [`Keystore::save_dev_keys`]) on a
/// blocking thread (each key file is fsynced); returns their names in order.
///
/// # Errors
/// The keystore cannot be opened or written.
pub async fn save_dev_keys(dir: PathBuf, keys: Vec<SecretKey>) -> anyhow::Result<Vec<String>> {
    tokio::task::spawn_blocking(move || {
        let keystore = Keystore::open(&dir).with_context(|| format!("cannot open keystore {}", dir.display()))?;
        keystore.save_dev_keys(&keys).with_context(|| format!("cannot save the dev keys in {}", dir.display()))
    })
    .await
    .context("keystore task failed")?
}

async fn serve(config: NodeConfig, keystore: PathBuf) -> anyhow::Result<()> {
    let data_dir = config.data_dir.clone();
    let (automine, block_time, dev) = (config.automine, config.block_time, config.dev);
    let node = paystreams_node::start(config).await?;
    let names = save_dev_keys(keystore.clone(), node.dev_keys().to_vec()).await?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "paystream node listening on {} (WebSocket {})", node.rpc_url(), node.ws_url())?;
        writeln!(out, "  health:  {}/health   metrics: {}/metrics", node.rpc_url(), node.rpc_url())?;
        match &data_dir {
            Some(dir) => writeln!(out, "  data dir: {}", dir.display())?,
            None => writeln!(out, "  data dir: none (--ephemeral: the chain is gone on exit)")?,
        }
        let mode = if automine {
            "automine (one block per transaction)".to_owned()
        } else {
            format!("a block every {block_time:?}")
        };
        writeln!(
            out,
            "  blocks:  {mode}; height {}; dev methods {}",
            node.chain().head_height(),
            if dev { "on" } else { "off" }
        )?;
        let ids = node.chain().runtime().builtin_ids();
        writeln!(
            out,
            "  LEZ release: {} (authenticated transfer {}, clock {})",
            node.chain().lez_release(),
            ids.authenticated_transfer,
            ids.clock
        )?;
        writeln!(out, "  sequencer key: {} (signs every block)", node.sequencer_public_key())?;
        writeln!(out, "  keystore: {}", keystore.display())?;
        writeln!(out, "\nDev accounts (test keys: never use them on a real network):")?;
        for (i, key) in node.dev_keys().iter().enumerate() {
            let name = names.get(i).map_or("-", String::as_str);
            let id = key.account_id();
            writeln!(out, "  ({i}) {name:<10} {id}  balance {}", node.chain().account(&id).balance)?;
            writeln!(out, "      secret key {}", hex::encode(key.to_bytes()))?;
        }
        writeln!(out)?;
        out.flush()?;
    }
    wait_for_stop().await;
    tracing::info!("stopping");
    node.shutdown().await;
    Ok(())
}

async fn wait_for_stop() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
