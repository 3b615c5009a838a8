//! `paystream agent`: the user side as a local service (docs/agent.md). One owner key, its
//! durable user store and a loopback HTTP API through which apps on any stack get the
//! `EligibilityProof` to attach to their own requests.
//!
//! The agent holds the owner's user store for as long as it runs (the store allows one
//! process per owner): `paystream store query` and `paystream session` for that owner then
//! wait, and name the agent as the holder; go through the agent's API instead, or stop it.

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use paystreams_agent::{Agent, AgentConfig, Ledger, http};
use paystreams_client::keystore::default_home;
use paystreams_rpc::remote::RpcChain;
use paystreams_store::provider::{AdminGuard, fresh_token, write_token};
use paystreams_user::{AutoTopUp, UserConfig, UserStore, store::OPEN_WAIT};
use serde_json::json;

use super::output::{CliError, CmdResult, CommonArgs, Ctx, amount_arg};

/// Default API address.
pub const DEFAULT_AGENT_LISTEN: &str = "127.0.0.1:8060";

/// Run the user side as a local service: a loopback HTTP API that gives apps (a js-waku app,
/// any program) the EligibilityProof to attach to their own requests to a provider, and
/// creates, tops up and closes the streams behind them.
#[derive(Debug, clap::Args)]
#[command(after_help = "How an app uses it (docs/agent.md, docs/agent.openapi.json):
  1. GET  /v1/identity?provider=ADDR   the libp2p key to dial the provider with (one per provider)
  2. POST /v1/proof {provider, store_request | request_digest}  -> eligibility_proof (base64)
     put it in the request (Store: field 30), send the request yourself
  3. POST /v1/outcome {session, eligibility}  the provider's field 30, base64 (or status/termination)
     after an accepted proposal the agent creates the stream; later proofs are stream proofs
  GET /v1/sessions, /v1/spending, /v1/warnings; POST /v1/sessions/ID/close

Every call but /health needs `Authorization: Bearer <token>`; the token is written at start
to --token-file (mode 0600). The API listens on loopback only.

While the agent runs it holds the owner's user state: `paystream store query` and
`paystream session` for the same --from wait for it and then say it is busy; use the API
(or stop the agent) instead.

Examples:
  paystream agent --from dev-0
  paystream agent --from dev-0 --allocation 5000 --top-up 5000 --spending-cap 50000
  TOKEN=$(cat ~/.local/share/paystreams/agent/<owner>.token)
  curl -H \"Authorization: Bearer $TOKEN\" http://127.0.0.1:8060/v1/spending")]
pub struct AgentArgs {
    /// Key that owns the paying vault.
    #[arg(long)]
    pub from: String,
    /// Address of the API (loopback only; port 0 picks a free one); config file key
    /// `agent_listen` (`paystream config --help`).
    #[arg(long, value_name = "ADDR", env = super::config::AGENT_LISTEN_ENV, default_value = DEFAULT_AGENT_LISTEN)]
    pub listen: SocketAddr,
    /// Where to write the API's bearer token (mode 0600) [default: <home>/agent/<owner>.token].
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// The paying vault (native token).
    #[arg(long, default_value_t = 0)]
    pub vault_id: u64,
    /// Rate per second to offer in new sessions [default: the provider's minimum].
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Allocation to offer in new sessions [default: the provider's minimum].
    #[arg(long, default_value_t = 0)]
    pub allocation: u64,
    /// When a session's stream is spent or has at most --top-up-when-secs left, add AMOUNT to it
    /// instead of opening a new session.
    #[arg(long, value_name = "AMOUNT", value_parser = amount_arg)]
    pub top_up: Option<u128>,
    /// See --top-up.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub top_up_when_secs: u64,
    /// Most the agent allocates in total (new streams and top-ups, as its spending ledger counts
    /// them); past it, proofs that need more money are refused with 409.
    #[arg(long, value_name = "AMOUNT", value_parser = amount_arg)]
    pub spending_cap: Option<u128>,
    /// Warn when a stream has at most this long left.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub warn_before_secs: u64,
    /// Seconds between monitoring passes (top-ups, warnings).
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    pub monitor_secs: u64,
}

pub fn run(args: &AgentArgs, common: &CommonArgs) -> std::process::ExitCode {
    super::dashboard::init_tracing();
    let ctx = Ctx::new(common.clone());
    let result = ctx.block_on(serve(&ctx, args));
    ctx.finish(result)
}

async fn serve(ctx: &Ctx, args: &AgentArgs) -> CmdResult {
    http::check_loopback(args.listen).map_err(CliError::Usage)?;
    if args.monitor_secs == 0 {
        return Err(CliError::Usage("--monitor-secs must be at least 1".into()));
    }
    let owner = ctx.key(&args.from)?;
    let client = ctx.client()?;
    client.require_vault(owner.account_id(), args.vault_id).await?;
    let home = default_home();
    let owner_text = owner.account_id().to_string();
    let store_path = UserStore::default_path(&home, &owner_text);
    let ledger_path = Ledger::default_path(&home, &owner_text);
    let failed = |e: &dyn std::fmt::Display| CliError::Failed(e.to_string());
    let (store, ledger) = tokio::task::spawn_blocking({
        let owner = owner.account_id();
        move || -> Result<_, String> {
            let store = UserStore::open(&store_path, OPEN_WAIT).map_err(|e| e.to_string())?;
            let ledger = Ledger::open(owner, &ledger_path).map_err(|e| e.to_string())?;
            Ok((store, ledger))
        }
    })
    .await
    .map_err(|e| failed(&e))?
    .map_err(CliError::Failed)?;
    let config = AgentConfig {
        vault_id: args.vault_id,
        token_id: [0; 32],
        rate: args.rate,
        allocation: args.allocation,
        top_up: args.top_up.map(|amount| AutoTopUp { when_remaining_secs: args.top_up_when_secs, amount }),
        spending_cap: args.spending_cap,
        user: UserConfig { warn_before_secs: args.warn_before_secs, ..UserConfig::default() },
    };
    let agent = Arc::new(
        Agent::open(owner.key.clone(), RpcChain::new(client.clone()), config, store, ledger)
            .await
            .map_err(|e| failed(&e))?,
    );
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| CliError::Failed(format!("cannot listen on {}: {e}; pick another --listen", args.listen)))?;
    let bound = listener.local_addr().map_err(|e| failed(&e))?;
    let token_path = args.token_file.clone().unwrap_or_else(|| home.join("agent").join(format!("{owner_text}.token")));
    let token = fresh_token();
    write_token(&token_path, &token)
        .map_err(|e| CliError::Failed(format!("cannot write the token to {}: {e}", token_path.display())))?;
    let guard = AdminGuard::new(bound, token)
        .with_token_hint(format!("`paystream agent` wrote the token to {}", token_path.display()));
    let router = http::router(Arc::clone(&agent), Arc::new(guard));
    let monitor = agent.spawn_monitor(Duration::from_secs(args.monitor_secs));
    ctx.emit(
        &json!({
            "listening": format!("http://{bound}"),
            "token_file": token_path.display().to_string(),
            "owner": owner_text,
            "vault_id": args.vault_id,
        }),
        || {
            format!(
                "agent listening on http://{bound}\ntoken in {} (send `Authorization: Bearer <token>`)\nowner {} ({owner_text}), vault {}; Ctrl-C stops (sessions stay open and are picked up on the next start)",
                token_path.display(),
                owner.name,
                args.vault_id
            )
        },
    );
    let serve = axum::serve(listener, router).with_graceful_shutdown(super::dashboard::wait_for_signal());
    let result = serve.await.map_err(|e| CliError::Failed(format!("the API stopped: {e}")));
    monitor.abort();
    result
}
