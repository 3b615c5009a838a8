//! `paystream gate`: the provider side as a local service, for any existing service to ask
//! "is this request paid?" over a loopback HTTP API. See `docs/gate.md`.

use std::{net::SocketAddr, time::Duration};

use paystreams_client::keystore::default_home;
use paystreams_gate::{GateConfig, start};
use paystreams_process::ProcessConfig;
use serde_json::json;

use super::{
    output::{CliError, CmdResult, CommonArgs, Ctx},
    store::{ProviderArgs, sessions_text},
};

/// Default API address.
pub const DEFAULT_GATE_LISTEN: &str = "127.0.0.1:8042";

/// Run the provider engine behind a loopback HTTP API (token-protected) that any service asks
/// whether a request is paid.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example (with `paystream node --dev` running):
  paystream gate --provider dev-1 --service-id /paystreams/example/paid-http/1
      # prints: gate http://127.0.0.1:8042 (token in <home>/gate/token-<account>)
  curl -H \"Authorization: Bearer $(cat <token file>)\" http://127.0.0.1:8042/v1/policy

A service sends each request's EligibilityProof (base64), its caller's requester id and the
request's canonical digest to POST /v1/check; on \"paid\": true it serves at most the grant's
max_response_bytes, reports the size to POST /v1/served and sends the response only when that
answers ok. GET /v1/terminations?since=N lists sessions the provider ended or paused, for the
service to tell its users. The API, the admin routes (/health, /metrics, /sessions,
POST /sessions/ID/terminate, POST /maintenance?secs=N) and docs: docs/gate.md.")]
pub struct GateArgs {
    #[command(flatten)]
    pub shared: ProviderArgs,
    /// A service id the gate accepts in proposals (repeatable; at least one), e.g.
    /// /paystreams/example/paid-http/1.
    #[arg(long = "service-id", value_name = "ID", required = true)]
    pub service_ids: Vec<String>,
    /// The API's address: loopback only (the API hands out service and ends sessions); config
    /// file key `gate_listen` (`paystream config --help`).
    #[arg(long, default_value = DEFAULT_GATE_LISTEN, env = super::config::GATE_LISTEN_ENV, value_name = "ADDR")]
    pub listen: SocketAddr,
}

pub fn run(args: &GateArgs, common: &CommonArgs) -> std::process::ExitCode {
    let ctx = Ctx::new(common.clone());
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Failed(format!("cannot start the async runtime: {e}")))
        .and_then(|runtime| runtime.block_on(serve(&ctx, args)));
    ctx.finish(result)
}

async fn serve(ctx: &Ctx, args: &GateArgs) -> CmdResult {
    let shared = &args.shared;
    let provider = ctx.key(&shared.provider)?;
    if !args.listen.ip().is_loopback() {
        return Err(CliError::Usage(format!(
            "--listen {} is not a loopback address: the gate's API decides who is served and can end sessions, so it \
             listens on 127.0.0.1 or [::1] only; put the service that asks it on the same machine",
            args.listen
        )));
    }
    if let Some(bad) = args.service_ids.iter().find(|id| id.is_empty() || id.len() > 256) {
        return Err(CliError::Usage(format!("--service-id {bad:?} must be 1 to 256 characters")));
    }
    let peer_limit = shared.peer_limit()?;
    let account = provider.account_id().to_string();
    let (admin_token, token_path) = shared.admin_token(&default_home().join("gate").join(format!("token-{account}")));
    let sessions = shared.session_backend(&account, "gate", None)?;
    let config = GateConfig {
        process: ProcessConfig {
            rpc_url: ctx.common.rpc.clone(),
            chain: ctx.common.chain_access(),
            provider_key: provider.key.clone(),
            policy: shared.policy(provider.account_id().0, args.service_ids.clone()),
            limits: shared.limits(),
            sessions: sessions.clone(),
            admin: Some(args.listen),
            admin_token,
            tick_interval: Duration::from_secs(2),
            claim_on_shutdown: true,
        },
        peer_limit,
    };
    let handle = start(config).await.map_err(|e| CliError::Failed(e.to_string()))?;
    let url = format!("http://{}", handle.addr());
    ctx.emit(
        &json!({
            "event": "listening",
            "url": url,
            "token_file": token_path.display().to_string(),
            "provider": account,
            "service_ids": args.service_ids,
            "sessions": sessions_text(&sessions),
        }),
        || {
            format!(
                "gate {url} (token in {}; send `Authorization: Bearer <token>`)\nprovider {} ({account}), services {}, sessions {}\nCtrl-C stops serving and claims what accrued.",
                token_path.display(),
                provider.name,
                args.service_ids.join(", "),
                sessions_text(&sessions)
            )
        },
    );
    tokio::signal::ctrl_c().await.map_err(|e| CliError::Failed(format!("waiting for Ctrl-C: {e}")))?;
    let stats = handle.shutdown().await;
    eprintln!("stopped; {} claims on shutdown", stats.shutdown_claims);
    Ok(())
}
