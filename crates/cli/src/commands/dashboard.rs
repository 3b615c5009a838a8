//! `paystream dashboard`: the live web dashboard (docs/dashboard.md).
//!
//! Exit codes: 0 after a clean stop (Ctrl-C / SIGTERM); 1 when it cannot start (port in use,
//! unusable URL); 2 for arguments that make no sense (a non-loopback --listen without
//! --allow-remote, a bad --provider-admin).

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, sync::Arc};

use paystreams_client::default_keystore_dir;

use super::output::{ChainArg, CommonArgs};
use paystreams_dashboard::{
    DEFAULT_LISTEN, DashboardConfig, HISTORY_BLOCKS_DEFAULT, HttpAgent, HttpSessions, SessionSource,
};

/// Serve the live web dashboard: balances, vaults and streams of your keystore identities with
/// accrual ticking every second, stream charts and histories, a provider view, and actions
/// (deposit, withdraw, create/pause/resume/top-up/close a stream, claim) each confirmed before
/// it is signed.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  paystream node --dev &                                     # a local chain; saves dev-0.. keys
  paystream dashboard                                        # then open http://127.0.0.1:8040
  paystream dashboard --rpc http://127.0.0.1:3040 --keystore ~/.local/share/paystreams/keystore
  paystream dashboard --provider-admin http://127.0.0.1:8041 # also show the Store provider's sessions
  paystream dashboard --agent http://127.0.0.1:8060 --agent-token-file ~/.local/share/paystreams/agent/<owner>.token

The dashboard signs with the keys in --keystore, so it listens on loopback only and refuses
requests whose Host is not that address; other web sites cannot post to it (anti-forgery
token and Origin check). It loads nothing from the internet.")]
pub struct DashboardArgs {
    /// Address to serve the dashboard on (loopback unless --allow-remote); config file key
    /// `dashboard_listen` (`paystream config --help`).
    #[arg(long, value_name = "ADDR", env = super::config::DASHBOARD_LISTEN_ENV, default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Admin address of a running Store provider (its `GET /sessions` lists the provider
    /// engine's sessions: pending, bound, terminated). Without it the provider view shows
    /// on-chain earnings only.
    #[arg(long, value_name = "URL")]
    pub provider_admin: Option<String>,
    /// File holding the provider's admin token (`store serve` prints where it wrote it:
    /// <home>/store/admin-token-<provider account>).
    #[arg(long, value_name = "PATH", requires = "provider_admin")]
    pub provider_admin_token_file: Option<PathBuf>,
    /// Address of a running `paystream agent` (as it printed it): the "User sessions" page
    /// shows its sessions, spending and warnings.
    #[arg(long, value_name = "URL")]
    pub agent: Option<String>,
    /// File holding the agent's token (`paystream agent` prints where it wrote it:
    /// <home>/agent/<owner account>.token by default).
    #[arg(long, value_name = "PATH", requires = "agent")]
    pub agent_token_file: Option<PathBuf>,
    /// Allow a non-loopback --listen address. Anyone who can reach it can then act with every
    /// key in the keystore: only on a network you trust.
    #[arg(long)]
    pub allow_remote: bool,
    /// Blocks read back at start for stream histories and charts.
    #[arg(long, value_name = "N", default_value_t = HISTORY_BLOCKS_DEFAULT)]
    pub history_blocks: u64,
}

/// Logs to stderr, filtered by `RUST_LOG` (default info).
pub(super) fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Another subscriber already installed is fine.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

/// Waits for Ctrl-C or SIGTERM.
pub(super) async fn wait_for_signal() {
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

/// Runs the dashboard until Ctrl-C / SIGTERM.
#[must_use]
pub fn run(args: &DashboardArgs, common: &CommonArgs) -> ExitCode {
    init_tracing();
    if common.chain == ChainArg::Lez {
        eprintln!(
            "error: the dashboard needs a paystreams node at --rpc: it lists an owner's vaults and a provider's \
             streams (paystreams_listVaults, paystreams_listStreams), reads their history from the node's event index \
             (paystreams_getEvents) and follows blocks as JSON, which a LEZ sequencer (or a node serving LEZ's methods \
             only) does not offer. Use the wallet commands with --chain lez (`paystream vault show`, \
             `paystream stream show`, `stream list`), or run the dashboard against `paystream node`"
        );
        return ExitCode::from(2);
    }
    if !args.listen.ip().is_loopback() && !args.allow_remote {
        eprintln!(
            "error: --listen {} is not a loopback address; the dashboard signs with your keystore's keys, so it listens on \
             127.0.0.1 unless you add --allow-remote (only on a network you trust)",
            args.listen
        );
        return ExitCode::from(2);
    }
    let token = match &args.provider_admin_token_file {
        None => None,
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => Some(text.lines().next().unwrap_or_default().trim().to_owned()),
            Err(e) => {
                eprintln!("error: cannot read --provider-admin-token-file {}: {e}", path.display());
                return ExitCode::from(2);
            }
        },
    };
    let sessions: Option<Arc<dyn SessionSource>> = match args.provider_admin.as_deref().map(HttpSessions::new) {
        None => None,
        Some(Ok(source)) => Some(Arc::new(match token {
            Some(token) => source.with_token(token),
            None => source,
        })),
        Some(Err(e)) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let agent = match args.agent.as_deref().map(HttpAgent::new) {
        None => None,
        Some(Err(e)) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
        Some(Ok(agent)) => match &args.agent_token_file {
            None => Some(agent),
            Some(path) => match std::fs::read_to_string(path) {
                Ok(text) => Some(agent.with_token(text.lines().next().unwrap_or_default().trim().to_owned())),
                Err(e) => {
                    eprintln!("error: cannot read --agent-token-file {}: {e}", path.display());
                    return ExitCode::from(2);
                }
            },
        },
    };
    let keystore_dir = common.keystore.clone().unwrap_or_else(default_keystore_dir);
    let config = DashboardConfig {
        listen: args.listen,
        rpc_url: common.rpc.clone(),
        keystore_dir,
        allow_remote: args.allow_remote,
        history_blocks: args.history_blocks,
        agent,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let mut handle = match paystreams_dashboard::start(config, sessions).await {
            Ok(handle) => handle,
            Err(e) => {
                eprintln!("error: {e:#}");
                return ExitCode::FAILURE;
            }
        };
        eprintln!("paystreams dashboard at {}/ (Ctrl-C to stop)", handle.url());
        let result = tokio::select! {
            () = wait_for_signal() => Ok(()),
            result = handle.stopped() => result,
        };
        handle.shutdown().await;
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        }
    })
}
