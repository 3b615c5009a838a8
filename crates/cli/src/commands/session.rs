//! `paystream session`: the paid sessions a user holds with providers (kept in
//! `<home>/user/<owner account>.redb`), shown with their streams' state on chain, and closed
//! when the user decides.

use std::sync::Arc;

use clap::Subcommand;
use paystreams_client::{Client, display, keystore::default_home};
use paystreams_rpc::remote::RpcChain;
use paystreams_user::{Phase, Session, User, UserConfig, UserStore, store::OPEN_WAIT};
use serde_json::{Value, json};

use super::output::{CliError, CmdResult, CommonArgs, Ctx, fields, table};

/// Paid sessions with providers: list, show, close.
#[derive(Debug, clap::Args)]
#[command(after_help = "A session starts with the first `paystream store query` to a provider (a signed proposal,
then the matching stream created on chain) and serves every later query to that provider from
the same vault, until you close it. An open stream keeps accruing at its rate until its
allocation is spent or it is closed; closing returns the unaccrued rest to the vault (what
accrued stays claimable by the provider).

Examples:
  paystream session list --from dev-0
  paystream session show 3f1a9c0b --from dev-0
  paystream session close 3f1a9c0b --from dev-0
  paystream session close --all --from dev-0")]
pub struct SessionArgs {
    #[command(subcommand)]
    pub command: SessionCommand,
}

#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// Every session of the owner, with its stream's state on chain.
    List(OwnerArgs),
    /// One session in full.
    Show(ShowArgs),
    /// Close the session's stream on chain and forget the session.
    Close(CloseArgs),
}

/// The owner whose sessions to read.
#[derive(Debug, clap::Args)]
pub struct OwnerArgs {
    /// Key that owns the paying vault(s).
    #[arg(long)]
    pub from: String,
}

/// `session show`.
#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// Session id (hex, as `session list` prints it; a unique prefix of 8+ characters is enough).
    pub id: String,
    #[command(flatten)]
    pub owner: OwnerArgs,
}

/// `session close`.
#[derive(Debug, clap::Args)]
pub struct CloseArgs {
    /// Session id (hex; a unique prefix of 8+ characters is enough).
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub id: Option<String>,
    /// Close every session of the owner.
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub owner: OwnerArgs,
}

pub fn run(args: &SessionArgs, common: &CommonArgs) -> std::process::ExitCode {
    let ctx = Ctx::new(common.clone());
    let result = ctx.block_on(async {
        match &args.command {
            SessionCommand::List(a) => list(&ctx, a).await,
            SessionCommand::Show(a) => show(&ctx, a).await,
            SessionCommand::Close(a) => close(&ctx, a).await,
        }
    });
    ctx.finish(result)
}

/// Opens the user engine of `owner` over its durable store (waiting a bounded time for another
/// process holding it), reconciled against the chain.
///
/// # Errors
/// A store held too long by another process, a corrupt store, or chain failures.
pub async fn open_user(
    client: &Client,
    owner: &paystreams_client::keystore::NamedKey,
    config: UserConfig,
) -> CmdResult<User<RpcChain>> {
    let path = UserStore::default_path(&default_home(), &owner.account_id().to_string());
    let store = tokio::task::spawn_blocking(move || UserStore::open(&path, OPEN_WAIT))
        .await
        .map_err(|e| CliError::Failed(e.to_string()))?
        .map_err(|e| CliError::Failed(e.to_string()))?;
    User::open(owner.key.clone(), RpcChain::new(client.clone()), config, store)
        .await
        .map_err(|e| CliError::Failed(e.to_string()))
}

fn find(sessions: &[Session], id: &str) -> CmdResult<Session> {
    let id = id.trim_start_matches("0x").to_ascii_lowercase();
    if id.len() < 8 {
        return Err(CliError::Usage(format!("session id {id:?} is too short: give 8 or more hex characters")));
    }
    let matching: Vec<&Session> = sessions.iter().filter(|s| s.label().starts_with(&id)).collect();
    match matching.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(CliError::Usage(format!("no session {id}; `paystream session list` shows them"))),
        _ => Err(CliError::Usage(format!("{id} matches {} sessions; give more characters", matching.len()))),
    }
}

fn phase_text(phase: Phase) -> String {
    match phase {
        Phase::Proposed => "proposed".into(),
        Phase::Creating { stream_id } => format!("creating stream {stream_id}"),
        Phase::Streaming { .. } => "streaming".into(),
        Phase::Paused { until, .. } => format!("paused by the provider until {}", display::time(until)),
    }
}

async fn describe(client: &Client, owner: paystreams_lez_core::AccountId, s: &Session) -> CmdResult<Value> {
    let view = match s.phase.stream_id() {
        Some(stream_id) => client.stream(owner, s.vault_id, stream_id).await?,
        None => None,
    };
    Ok(json!({
        "id": s.label(),
        "provider": paystreams_lez_core::AccountId(s.provider).to_string(),
        "vault_id": s.vault_id,
        "service_id": s.service_id,
        "phase": phase_text(s.phase),
        "create_stream_deadline": s.deadline,
        "stream_id": s.phase.stream_id(),
        "state": view.as_ref().map(|v| format!("{:?}", v.state).to_lowercase()),
        "rate": view.as_ref().map_or(s.rate, |v| v.rate).to_string(),
        "allocation": view.as_ref().map_or(u128::from(s.allocation), |v| v.allocation.0).to_string(),
        "accrued": view.as_ref().map(|v| v.accrued.0.to_string()),
        "unaccrued": view.as_ref().map(|v| v.unaccrued.0.to_string()),
        "planned_stop": view.as_ref().and_then(|v| v.planned_stop),
        "create_stream_deadline_date": display::time(s.deadline),
        "planned_stop_date": view.as_ref().and_then(|v| v.planned_stop).map(display::time),
        "unit": view.as_ref().map(|v| v.token_id.clone()),
    }))
}

fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".into(),
        Some(other) => other.to_string(),
    }
}

async fn list(ctx: &Ctx, args: &OwnerArgs) -> CmdResult {
    let owner = ctx.key(&args.from)?;
    let client = ctx.client()?;
    let user = open_user(&client, &owner, UserConfig::default()).await?;
    let mut rows = Vec::new();
    for s in user.sessions().map_err(|e| CliError::Failed(e.to_string()))? {
        rows.push(describe(&client, owner.account_id(), &s).await?);
    }
    ctx.emit(&json!({ "sessions": rows }), || {
        if rows.is_empty() {
            return "no sessions (the first `paystream store query` to a provider opens one)".into();
        }
        let cells = rows
            .iter()
            .map(|r| {
                let id = text(r, "id");
                let provider = text(r, "provider");
                vec![
                    id.get(..16).unwrap_or_default().to_owned(),
                    provider.get(..12).unwrap_or_default().to_owned(),
                    text(r, "vault_id"),
                    text(r, "service_id"),
                    text(r, "stream_id"),
                    match text(r, "state").as_str() {
                        "-" => text(r, "phase"),
                        state => state.to_owned(),
                    },
                    text(r, "rate"),
                    text(r, "accrued"),
                    text(r, "unaccrued"),
                    text(r, "planned_stop_date"),
                ]
            })
            .collect();
        table(
            &[
                "id",
                "provider",
                "vault",
                "service",
                "stream",
                "state",
                "rate (units/s)",
                "accrued",
                "unaccrued",
                "planned stop",
            ],
            cells,
        )
    });
    Ok(())
}

async fn show(ctx: &Ctx, args: &ShowArgs) -> CmdResult {
    let owner = ctx.key(&args.owner.from)?;
    let client = ctx.client()?;
    let user = open_user(&client, &owner, UserConfig::default()).await?;
    let session = find(&user.sessions().map_err(|e| CliError::Failed(e.to_string()))?, &args.id)?;
    let v = describe(&client, owner.account_id(), &session).await?;
    ctx.emit(&v, || {
        let keys = [
            "id",
            "provider",
            "vault_id",
            "service_id",
            "phase",
            "create_stream_deadline_date",
            "stream_id",
            "state",
            "rate",
            "allocation",
            "accrued",
            "unaccrued",
            "unit",
            "planned_stop_date",
        ];
        fields(&keys.iter().map(|k| (*k, text(&v, k))).collect::<Vec<_>>())
    });
    Ok(())
}

async fn close(ctx: &Ctx, args: &CloseArgs) -> CmdResult {
    let owner = ctx.key(&args.owner.from)?;
    let client = ctx.client()?;
    let user = Arc::new(open_user(&client, &owner, UserConfig::default()).await?);
    let sessions = user.sessions().map_err(|e| CliError::Failed(e.to_string()))?;
    let targets = match &args.id {
        Some(id) if !args.all => vec![find(&sessions, id)?],
        _ => sessions,
    };
    let mut closed = Vec::new();
    for s in targets {
        let before = client.vault(owner.account_id(), s.vault_id).await?.map_or(0, |v| v.unallocated.0);
        let stream = user.close_session(&s.session_id).await.map_err(|e| CliError::Failed(e.to_string()))?;
        let after = client.vault(owner.account_id(), s.vault_id).await?.map_or(0, |v| v.unallocated.0);
        closed.push(json!({
            "id": s.label(),
            "vault_id": s.vault_id,
            "stream_id": stream,
            "returned_to_vault": after.saturating_sub(before).to_string(),
        }));
    }
    ctx.emit(&json!({ "closed": closed }), || {
        if closed.is_empty() {
            return "no sessions to close".into();
        }
        closed
            .iter()
            .map(|c| match c.get("stream_id").and_then(Value::as_u64) {
                Some(stream) => format!(
                    "✓ closed session {} (stream {stream}); {} returned to vault {}",
                    text(c, "id").get(..16).unwrap_or_default(),
                    text(c, "returned_to_vault"),
                    text(c, "vault_id")
                ),
                None => {
                    format!("✓ forgot session {} (it had no open stream)", text(c, "id").get(..16).unwrap_or_default())
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(())
}
