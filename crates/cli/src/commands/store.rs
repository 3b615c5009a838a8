//! `paystream store`: the Store v3 history service over libp2p, paid by payment streams, and
//! Lightpush v3 pushes into its archive, paid the same way.

use std::{path::PathBuf, sync::Arc, time::Duration};

use base64::Engine as _;
use clap::Subcommand;
use paystreams_client::{display, keystore::default_home};
use paystreams_provider::{EngineLimits, ProviderPolicy};
use paystreams_store::{
    Archive, LIGHTPUSH_SERVICE_ID, QueryError, STORE_SERVICE_ID,
    archive::{INSERT_BATCH_MAX, is_postgres_url, open_archive, parse_import},
    client::{PaidLightpush, PaidStore},
    provider::{AdminToken, ProviderConfig, ServiceOptions, SessionBackend, start},
    wire::{PAYLOAD_MAX_LEN, StoreQueryRequest, WakuMessage},
};
use paystreams_user::{AutoTopUp, Terms, UserConfig};
use paystreams_wire::{ExtensionTerms, ReceiptTerms, TokenStreamPolicy};
use serde_json::json;

use super::output::{CliError, CmdResult, CommonArgs, Ctx, table};

/// The pubsub topic queries use when `--content-topic` is given without `--pubsub-topic`.
pub const DEFAULT_PUBSUB_TOPIC: &str = "/waku/2/default-waku/proto";

/// Store v3 history queries over libp2p, paid by stream: serve, import, query; and Lightpush
/// v3 pushes into the archive, paid the same way: push.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples (with `paystream node --dev` running):
  paystream store import examples/messages.jsonl
  paystream store serve --provider dev-1 --listen /ip4/127.0.0.1/tcp/60010
      # prints: listening on /ip4/127.0.0.1/tcp/60010/p2p/12D3Koo…
  paystream vault init --owner dev-0 --vault-id 0 && paystream vault deposit --owner dev-0 --vault-id 0 --amount 10000
  paystream store query --provider /ip4/127.0.0.1/tcp/60010/p2p/12D3Koo… --from dev-0 --content-topic /demo/1/chat/proto
  paystream store push --provider /ip4/127.0.0.1/tcp/60010/p2p/12D3Koo… --from dev-0 --content-topic /demo/1/chat/proto --payload 'hello'

The first query to a provider carries a signed proposal; when the provider accepts, the user
creates the stream on chain and every later page carries a proof signed with a session key.
The session and its stream are kept (in <home>/user/<owner>.redb) and serve later queries to
the same provider from the same vault: no new proposal, no new stream. An open stream keeps
accruing at its rate until its allocation is spent or it is closed: pass --close to close it
after a query, or `paystream session close` any time (`paystream session list` shows them).

Several `store serve` processes can serve one provider id from one PostgreSQL database:
  paystream store serve --provider dev-1 --archive postgres://postgres@127.0.0.1/store")]
pub struct StoreArgs {
    #[command(subcommand)]
    pub command: StoreCommand,
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Serve Store queries as a provider until Ctrl-C (then claim what accrued).
    Serve(ServeArgs),
    /// Load messages (JSON lines) into the archive; all or nothing.
    Import(ImportArgs),
    /// Query a provider, paying by stream; prints messages and what they cost.
    Query(QueryArgs),
    /// Push one message to a provider over Lightpush v3, paying by stream; the provider stores
    /// it in its archive, where Store queries find it.
    Push(PushArgs),
}

/// `store serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub shared: ProviderArgs,
    /// libp2p listen address; tcp/0 picks a free port.
    #[arg(long, default_value = "/ip4/127.0.0.1/tcp/0", value_name = "MULTIADDR")]
    pub listen: String,
    /// WebSocket listen address beside --listen, for js-waku (which dials /ws addresses; plain
    /// ws is fine on loopback, put a TLS proxy in front for browsers elsewhere); tcp/0 picks a
    /// free port; "off" disables it.
    #[arg(long, default_value = "/ip4/127.0.0.1/tcp/0/ws", value_name = "MULTIADDR|off")]
    pub ws_listen: String,
    /// Waku cluster announced over /vac/waku/metadata/1.0.0 (js-waku's default is 1, The Waku
    /// Network); a js-waku app uses this node only for pubsub topics /waku/2/rs/<cluster>/<shard>
    /// of its own cluster.
    #[arg(long, default_value_t = paystreams_store::net::DEFAULT_CLUSTER_ID, value_name = "ID", value_parser = clap::value_parser!(u32).range(0..=65_535))]
    pub cluster_id: u32,
    /// A shard this node serves, repeatable [default: 0 to 7, every shard js-waku's
    /// autosharding maps content topics to in its default network config].
    #[arg(long = "shard", value_name = "INDEX", value_parser = clap::value_parser!(u32).range(0..=1_023))]
    pub shards: Vec<u32>,
    /// Message archive: a SQLite file path, or postgres://… (then sessions live there too).
    #[arg(long, value_name = "PATH|URL")]
    pub archive: Option<String>,
    /// Admin HTTP endpoint on loopback (/health, /metrics, /sessions,
    /// POST /sessions/ID/terminate, POST /maintenance?secs=N); "off" disables it. Every path
    /// but /health needs `Authorization: Bearer <token>`; the token is written (mode 0600) to
    /// <home>/store/admin-token-<provider account> at start unless --admin-token-file is given.
    #[arg(long, default_value = "127.0.0.1:8041", value_name = "ADDR|off")]
    pub admin: String,
    /// On Ctrl-C, connected users' sessions are paused (TEMPORARY termination) for this many
    /// seconds of chain time, so a restart within it loses nobody's session (0: no notice).
    #[arg(long, default_value_t = ServiceOptions::default().restart_pause_secs, value_name = "SECS")]
    pub restart_pause_secs: u64,
}

/// What every provider process takes (`store serve`, `gate`): the key, the policy, the session
/// store, per-requester limits, the token file.
#[derive(Debug, clap::Args)]
pub struct ProviderArgs {
    /// Provider key (streams must name its account; claims are signed with it).
    #[arg(long)]
    pub provider: String,
    /// Session store: a redb file path or postgres://… (several processes serving one provider
    /// share a PostgreSQL store) [default: PostgreSQL when `store serve --archive` is, else
    /// <home>/<store|gate>/sessions-<provider>.redb].
    #[arg(long, value_name = "PATH|URL")]
    pub sessions: Option<String>,
    /// Smallest rate per second accepted.
    #[arg(long, default_value_t = 1)]
    pub min_rate: u64,
    /// Smallest allocation accepted.
    #[arg(long, default_value_t = 100)]
    pub min_allocation: u64,
    /// Largest first (proposal-backed) response in bytes (Store trims larger pages; the gate
    /// refuses a larger reported response and ends the session).
    #[arg(long, default_value_t = paystreams_wire::recommended::VAULT_PROOF_MAX_RESPONSE_BYTES)]
    pub first_response_cap: u64,
    /// Read the admin/API token from this file (its first line, at least 16 characters) instead
    /// of generating one.
    #[arg(long, value_name = "PATH")]
    pub admin_token_file: Option<PathBuf>,
    /// Requests per second each peer (requester) may send (sustained); above it the answer is
    /// 429 with when to retry, before any signature is checked.
    #[arg(long, default_value_t = paystreams_store::service::PeerLimit::default().per_sec, value_name = "N")]
    pub peer_rate: u32,
    /// Requests a peer (requester) may send at once after a quiet spell.
    #[arg(long, default_value_t = paystreams_store::service::PeerLimit::default().burst, value_name = "N")]
    pub peer_burst: u32,
    /// Fail closed when no chain event or block was seen for this long.
    #[arg(long, default_value_t = 30_000, value_name = "MS")]
    pub staleness_ms: u64,
    /// Streams with delivery receipts: "refused" (a stream with a receipt key is not served),
    /// "accepted", or "required" (only streams with a receipt key). A receipt stream pays only
    /// what the user's signed receipts acknowledge: the provider keeps the latest receipt each
    /// user sends and claims with it.
    #[arg(long, default_value = "refused", value_name = "refused|accepted|required", value_parser = parse_receipts)]
    pub receipts: ReceiptTerms,
    /// Smallest activation fee a stream must carry (0: streams without a fee are served).
    #[arg(long, default_value_t = 0, value_name = "AMOUNT")]
    pub min_activation_fee: u128,
    /// Refuse streams that charge an activation fee.
    #[arg(long, conflicts_with = "min_activation_fee")]
    pub no_activation_fee: bool,
    /// Shortest auto-pause duration served, in seconds of ACTIVE time (streams without
    /// auto-pause are always served).
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    pub min_auto_pause: u64,
    /// Refuse streams with auto-pause.
    #[arg(long, conflicts_with = "min_auto_pause")]
    pub no_auto_pause: bool,
    /// Refuse streams with automatic claim on provider close.
    #[arg(long)]
    pub no_auto_claim_on_close: bool,
}

impl ProviderArgs {
    /// The per-requester limit.
    ///
    /// # Errors
    /// A zero rate or burst.
    pub fn peer_limit(&self) -> CmdResult<paystreams_store::service::PeerLimit> {
        if self.peer_rate == 0 || self.peer_burst == 0 {
            return Err(CliError::Usage("--peer-rate and --peer-burst must be at least 1".into()));
        }
        Ok(paystreams_store::service::PeerLimit { per_sec: self.peer_rate, burst: self.peer_burst })
    }

    /// The token's source: the given file, or a fresh token written to `generated`.
    #[must_use]
    pub fn admin_token(&self, generated: &std::path::Path) -> (AdminToken, PathBuf) {
        match &self.admin_token_file {
            Some(path) => (AdminToken::File(path.clone()), path.clone()),
            None => (AdminToken::Generate(generated.to_path_buf()), generated.to_path_buf()),
        }
    }

    /// The session store: `--sessions`, else `fallback` (PostgreSQL at that URL, or a redb file
    /// `sessions-<account>.redb` under `<home>/<dir>`).
    ///
    /// # Errors
    /// The default directory cannot be created.
    pub fn session_backend(&self, account: &str, dir: &str, postgres: Option<&str>) -> CmdResult<SessionBackend> {
        Ok(match (&self.sessions, postgres) {
            (Some(s), _) if is_postgres_url(s) => SessionBackend::Postgres(s.clone()),
            (Some(path), _) => SessionBackend::Redb(PathBuf::from(path)),
            (None, Some(url)) => SessionBackend::Postgres(url.to_owned()),
            (None, None) => {
                let dir = default_home().join(dir);
                std::fs::create_dir_all(&dir)
                    .map_err(|e| CliError::Failed(format!("cannot create {}: {e}", dir.display())))?;
                SessionBackend::Redb(dir.join(format!("sessions-{account}.redb")))
            }
        })
    }

    /// The policy for `provider_id` serving `service_ids`.
    #[must_use]
    pub fn policy(&self, provider_id: [u8; 32], service_ids: Vec<String>) -> ProviderPolicy {
        let mut policy = ProviderPolicy::new(
            provider_id,
            service_ids,
            vec![TokenStreamPolicy { token_id: [0; 32], min_rate: self.min_rate, min_allocation: self.min_allocation }],
        );
        policy.first_response_cap = self.first_response_cap;
        policy.extensions = ExtensionTerms {
            activation_fee_accepted: !self.no_activation_fee,
            activation_fee_min: self.min_activation_fee,
            auto_pause_accepted: !self.no_auto_pause,
            auto_pause_min_secs: self.min_auto_pause,
            auto_claim_on_close_accepted: !self.no_auto_claim_on_close,
            receipts: self.receipts,
        };
        policy
    }

    /// The engine's limits.
    #[must_use]
    pub fn limits(&self) -> EngineLimits {
        EngineLimits { staleness_bound_ms: self.staleness_ms, ..EngineLimits::default() }
    }
}

/// Where a session store is, for printing (a PostgreSQL URL without its password).
#[must_use]
pub fn sessions_text(sessions: &SessionBackend) -> String {
    match sessions {
        SessionBackend::Memory => "memory".to_owned(),
        SessionBackend::Redb(p) => p.display().to_string(),
        SessionBackend::Postgres(url) => paystreams_store::archive::redact_url(url),
    }
}

fn parse_receipts(value: &str) -> Result<ReceiptTerms, String> {
    [ReceiptTerms::Refused, ReceiptTerms::Accepted, ReceiptTerms::Required]
        .into_iter()
        .find(|t| t.name() == value)
        .ok_or_else(|| "use refused, accepted or required".to_owned())
}

/// `store import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// JSON lines: {"pubsub_topic","content_topic","text" or "payload" (base64),"timestamp"[,"meta","version"]}
    /// (see examples/messages.jsonl). "timestamp" is nanoseconds since the Unix epoch (19 digits,
    /// e.g. 1765090800000000000); seconds, milliseconds, zero, negative or future times are
    /// refused, naming the line, and then nothing is imported.
    pub file: PathBuf,
    /// Message archive: a SQLite file path or postgres://… [default: <home>/store/archive.sqlite].
    #[arg(long, value_name = "PATH|URL")]
    pub archive: Option<String>,
}

/// Who pays and on what terms a new session is proposed: shared by every paid command
/// (`store query`, `store push`).
#[derive(Debug, clap::Args)]
pub struct PayerArgs {
    /// The provider's address as it printed it: /ip4/HOST/tcp/PORT/p2p/PEER_ID.
    #[arg(long, value_name = "MULTIADDR")]
    pub provider: String,
    /// Key that owns the paying vault.
    #[arg(long)]
    pub from: String,
    /// The paying vault (native token).
    #[arg(long, default_value_t = 0)]
    pub vault_id: u64,
    /// Rate per second to offer when a new session is opened [default: the provider's minimum].
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Allocation to offer when a new session is opened [default: the provider's minimum].
    #[arg(long, default_value_t = 0)]
    pub allocation: u64,
}

impl PayerArgs {
    /// The terms a new session for `service_id` is proposed on.
    fn terms(&self, service_id: &str) -> Terms {
        Terms {
            vault_id: self.vault_id,
            token_id: [0; 32],
            service_id: service_id.into(),
            rate: self.rate,
            allocation: self.allocation,
        }
    }
}

/// `store query`.
#[derive(Debug, clap::Args)]
pub struct QueryArgs {
    #[command(flatten)]
    pub payer: PayerArgs,
    /// Content topic to match (repeatable, at most 10).
    #[arg(long = "content-topic", value_name = "TOPIC")]
    pub content_topics: Vec<String>,
    /// Pubsub topic [default with --content-topic: /waku/2/default-waku/proto].
    #[arg(long, value_name = "TOPIC")]
    pub pubsub_topic: Option<String>,
    /// Oldest message time, inclusive: Unix nanoseconds, or seconds with an `s` suffix.
    #[arg(long, value_parser = parse_time)]
    pub start: Option<i64>,
    /// Newest message time, exclusive: Unix nanoseconds, or seconds with an `s` suffix.
    #[arg(long, value_parser = parse_time)]
    pub end: Option<i64>,
    /// Look up these message hashes (hex) instead of filtering (repeatable).
    #[arg(long = "hash", value_name = "HEX", value_parser = parse_hash)]
    pub hashes: Vec<[u8; 32]>,
    /// Messages per page (the provider caps it at 100).
    #[arg(long, default_value_t = 20)]
    pub page_size: u64,
    /// Stop after this many pages.
    #[arg(long, default_value_t = 50)]
    pub max_pages: u32,
    /// Newest first (Store's backward pagination).
    #[arg(long)]
    pub backward: bool,
    /// Hashes only (Store's include_data = false).
    #[arg(long)]
    pub hashes_only: bool,
    /// Close the session's stream after this query (the unaccrued rest returns to the vault).
    /// Without it the session stays open for later queries and its stream keeps accruing at its
    /// rate until its allocation is spent or it is closed (`paystream session close`).
    #[arg(long)]
    pub close: bool,
    /// When the session's stream is spent or has less than a minute left, add AMOUNT to its
    /// allocation (and resume it) instead of opening a new session.
    #[arg(long, value_name = "AMOUNT", value_parser = super::output::amount_arg)]
    pub top_up: Option<u128>,
}

/// `store push`.
#[derive(Debug, clap::Args)]
#[command(after_help = "The push is paid like a query, on its own session: the first push to a provider \
carries a signed proposal for the Lightpush service (/vac/waku/lightpush/3.0.0); when the provider \
accepts, the stream is created on chain and later pushes carry a stream proof. The session stays \
open for later pushes (`paystream session list`, `paystream session close`); --close closes it.

The provider stores the message (deduplicated by its message hash) under the pubsub topic, so a \
Store query for the content topic finds it:
  paystream store push  --provider ADDR --from dev-0 --content-topic /demo/1/chat/proto --payload 'hello'
  paystream store push  --provider ADDR --from dev-0 --content-topic /demo/1/chat/proto --payload @photo.jpg
  paystream store query --provider ADDR --from dev-0 --content-topic /demo/1/chat/proto")]
pub struct PushArgs {
    #[command(flatten)]
    pub payer: PayerArgs,
    /// The message's content topic (e.g. /app/1/chat/proto).
    #[arg(long, value_name = "TOPIC")]
    pub content_topic: String,
    /// Pubsub topic the message is pushed on and stored under.
    #[arg(long, default_value = DEFAULT_PUBSUB_TOPIC, value_name = "TOPIC")]
    pub pubsub_topic: String,
    /// The payload: text as given, or @FILE for a file's bytes (at most 153600 bytes).
    #[arg(long, value_name = "TEXT|@FILE")]
    pub payload: String,
    /// The message's time: Unix nanoseconds, or seconds with an `s` suffix [default: now].
    #[arg(long, value_parser = parse_time)]
    pub timestamp: Option<i64>,
    /// Close the session's stream after this push (the unaccrued rest returns to the vault).
    #[arg(long)]
    pub close: bool,
}

/// `--top-up` applies when the stream has at most this long left.
pub const TOP_UP_WHEN_REMAINING_SECS: u64 = 60;

fn parse_time(text: &str) -> Result<i64, String> {
    let (digits, scale) = match text.strip_suffix('s') {
        Some(secs) => (secs, 1_000_000_000i64),
        None => (text, 1),
    };
    let value: i64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a time: give Unix nanoseconds, or seconds with an `s` suffix"))?;
    value.checked_mul(scale).ok_or_else(|| format!("{text:?} is out of range"))
}

fn parse_hash(text: &str) -> Result<[u8; 32], String> {
    let bytes = hex::decode(text.trim_start_matches("0x")).map_err(|_| format!("{text:?} is not hex"))?;
    bytes.try_into().map_err(|_| "a message hash is 32 bytes (64 hex characters)".to_owned())
}

/// The default archive file.
#[must_use]
pub fn default_archive() -> String {
    default_home().join("store").join("archive.sqlite").display().to_string()
}

fn open_archive_at(spec: &str) -> CmdResult<Arc<dyn Archive>> {
    if !is_postgres_url(spec)
        && let Some(parent) = std::path::Path::new(spec).parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)
            .map_err(|e| CliError::Failed(format!("cannot create {}: {e}", parent.display())))?;
    }
    open_archive(spec).map(Arc::from).map_err(|e| CliError::Failed(e.to_string()))
}

pub fn run(args: &StoreArgs, common: &CommonArgs) -> std::process::ExitCode {
    let ctx = Ctx::new(common.clone());
    let result = match &args.command {
        StoreCommand::Import(a) => import(&ctx, a),
        StoreCommand::Serve(a) => serve_runtime(&ctx, a),
        StoreCommand::Query(a) => ctx.block_on(query(&ctx, a)),
        StoreCommand::Push(a) => ctx.block_on(push(&ctx, a)),
    };
    ctx.finish(result)
}

fn import(ctx: &Ctx, args: &ImportArgs) -> CmdResult {
    let text = std::fs::read_to_string(&args.file)
        .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", args.file.display())))?;
    let messages = parse_import(&text)
        .map_err(|e| CliError::Usage(format!("{}: {e}; nothing was imported", args.file.display())))?;
    let spec = args.archive.clone().unwrap_or_else(default_archive);
    let archive = open_archive_at(&spec)?;
    let mut inserted = 0u64;
    for chunk in messages.chunks(INSERT_BATCH_MAX) {
        inserted = inserted.saturating_add(archive.insert(chunk).map_err(|e| CliError::Failed(e.to_string()))?);
    }
    let total = archive.count().map_err(|e| CliError::Failed(e.to_string()))?;
    let skipped = u64::try_from(messages.len()).unwrap_or(u64::MAX).saturating_sub(inserted);
    ctx.emit(
        &json!({ "imported": inserted, "already_stored": skipped, "archive_total": total, "archive": spec }),
        || format!("✓ imported {inserted} messages ({skipped} already stored); the archive at {spec} holds {total}"),
    );
    Ok(())
}

fn serve_runtime(ctx: &Ctx, args: &ServeArgs) -> CmdResult {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Failed(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(serve(ctx, args))
}

async fn serve(ctx: &Ctx, args: &ServeArgs) -> CmdResult {
    let shared = &args.shared;
    let provider = ctx.key(&shared.provider)?;
    let listen = args
        .listen
        .parse()
        .map_err(|e| CliError::Usage(format!("--listen {:?} is not a multiaddr: {e}", args.listen)))?;
    let ws_listen = match args.ws_listen.as_str() {
        "off" => None,
        addr => Some(addr.parse().map_err(|e| {
            CliError::Usage(format!(
                "--ws-listen {addr:?} is not a multiaddr ({e}); use e.g. /ip4/127.0.0.1/tcp/8000/ws, or \"off\""
            ))
        })?),
    };
    let network = {
        let mut shards = args.shards.clone();
        shards.sort_unstable();
        shards.dedup();
        if shards.is_empty() {
            paystreams_store::WakuNetwork { cluster_id: args.cluster_id, ..paystreams_store::WakuNetwork::default() }
        } else {
            paystreams_store::WakuNetwork { cluster_id: args.cluster_id, shards }
        }
    };
    let admin: Option<std::net::SocketAddr> = match args.admin.as_str() {
        "off" => None,
        addr => {
            Some(addr.parse().map_err(|_| CliError::Usage(format!("--admin {addr:?} is not HOST:PORT or \"off\"")))?)
        }
    };
    if let Some(addr) = admin
        && !addr.ip().is_loopback()
    {
        return Err(CliError::Usage(format!(
            "--admin {addr} is not a loopback address: the admin endpoint can end every session, so it listens on \
             127.0.0.1 or [::1] only (reach it from elsewhere through an SSH tunnel)"
        )));
    }
    let peer_limit = shared.peer_limit()?;
    let (admin_token, admin_token_path) =
        shared.admin_token(&default_home().join("store").join(format!("admin-token-{}", provider.account_id())));
    let archive_spec = args.archive.clone().unwrap_or_else(default_archive);
    let sessions = shared.session_backend(
        &provider.account_id().to_string(),
        "store",
        is_postgres_url(&archive_spec).then_some(archive_spec.as_str()),
    )?;
    let archive_for_open = archive_spec.clone();
    let archive = tokio::task::spawn_blocking(move || open_archive_at(&archive_for_open))
        .await
        .map_err(|e| CliError::Failed(e.to_string()))??;
    let count = {
        let archive = Arc::clone(&archive);
        tokio::task::spawn_blocking(move || archive.count())
            .await
            .map_err(|e| CliError::Failed(e.to_string()))?
            .map_err(|e| CliError::Failed(e.to_string()))?
    };
    let policy =
        shared.policy(provider.account_id().0, vec![STORE_SERVICE_ID.to_owned(), LIGHTPUSH_SERVICE_ID.to_owned()]);
    let config = ProviderConfig {
        rpc_url: ctx.common.rpc.clone(),
        provider_key: provider.key.clone(),
        listen,
        policy,
        limits: shared.limits(),
        sessions: sessions.clone(),
        admin,
        tick_interval: Duration::from_secs(2),
        claim_on_shutdown: true,
        service: ServiceOptions {
            peer_limit,
            admin_token,
            restart_pause_secs: args.restart_pause_secs,
            ws_listen,
            network: network.clone(),
            chain: ctx.common.chain_access(),
        },
    };
    let handle = start(config, archive).await.map_err(|e| CliError::Failed(e.to_string()))?;
    let addrs: Vec<String> = handle.addrs().iter().map(ToString::to_string).collect();
    let sessions_text = sessions_text(&sessions);
    ctx.emit(
        &json!({
            "event": "listening",
            "addrs": addrs,
            "peer_id": handle.peer_id().to_string(),
            "ws_addr": handle.ws_addr().map(ToString::to_string),
            "cluster_id": network.cluster_id,
            "shards": network.shards,
            "provider": provider.account_id().to_string(),
            "admin": handle.admin_addr().map(|a| format!("http://{a}")),
            "admin_token_file": handle.admin_addr().map(|_| admin_token_path.display().to_string()),
            "archive_messages": count,
        }),
        || {
            let mut text = String::new();
            for addr in &addrs {
                text.push_str(&format!("listening on {addr}\n"));
            }
            text.push_str(&format!(
                "Waku cluster {} shards {:?} (js-waku pubsub topics /waku/2/rs/{}/<shard>)\n",
                network.cluster_id, network.shards, network.cluster_id
            ));
            text.push_str(&format!(
                "provider {} ({}), archive {} ({count} messages), sessions {sessions_text}\n",
                provider.name,
                provider.account_id(),
                paystreams_store::archive::redact_url(&archive_spec)
            ));
            if let Some(admin) = handle.admin_addr() {
                text.push_str(&format!(
                    "admin http://{admin}/sessions  /metrics  /health (token in {}; send `Authorization: Bearer <token>`)\n",
                    admin_token_path.display()
                ));
            }
            text.push_str("Ctrl-C tells connected users to come back shortly (TEMPORARY), stops serving and claims what accrued.");
            text
        },
    );
    tokio::signal::ctrl_c().await.map_err(|e| CliError::Failed(format!("waiting for Ctrl-C: {e}")))?;
    let stats = handle.shutdown().await;
    eprintln!("stopped; {} claims on shutdown", stats.shutdown_claims);
    Ok(())
}

fn message_row(entry: &paystreams_store::wire::MessageKeyValue) -> Vec<String> {
    let hash = hex::encode(entry.message_hash);
    match &entry.message {
        Some((m, _)) => {
            let text = match std::str::from_utf8(&m.payload) {
                Ok(s) if !s.chars().any(char::is_control) => s.to_owned(),
                _ => format!("base64:{}", base64::engine::general_purpose::STANDARD.encode(&m.payload)),
            };
            vec![
                m.timestamp.map_or_else(|| "-".to_owned(), display::time_ns),
                m.content_topic.clone(),
                text,
                hash.get(..16).unwrap_or_default().to_owned(),
            ]
        }
        None => vec![String::new(), String::new(), String::new(), hash],
    }
}

fn message_json(entry: &paystreams_store::wire::MessageKeyValue) -> serde_json::Value {
    match &entry.message {
        Some((m, pubsub)) => json!({
            "hash": hex::encode(entry.message_hash),
            "pubsub_topic": pubsub,
            "content_topic": m.content_topic,
            "timestamp": m.timestamp.unwrap_or(0).to_string(),
            "date": m.timestamp.map(display::time_ns),
            "payload": base64::engine::general_purpose::STANDARD.encode(&m.payload),
            "text": std::str::from_utf8(&m.payload).ok(),
        }),
        None => json!({ "hash": hex::encode(entry.message_hash) }),
    }
}

async fn query(ctx: &Ctx, args: &QueryArgs) -> CmdResult {
    if args.content_topics.len() > paystreams_store::wire::CONTENT_TOPICS_MAX {
        return Err(CliError::Usage("at most 10 --content-topic".into()));
    }
    if !args.hashes.is_empty() && (!args.content_topics.is_empty() || args.start.is_some() || args.end.is_some()) {
        return Err(CliError::Usage("--hash lookups cannot be combined with --content-topic, --start or --end".into()));
    }
    if args.page_size == 0 {
        return Err(CliError::Usage("--page-size must be at least 1".into()));
    }
    let owner = ctx.key(&args.payer.from)?;
    let client = ctx.client()?;
    let (vault, _) = client.require_vault(owner.account_id(), args.payer.vault_id).await?;
    let config = UserConfig {
        auto_top_up: args.top_up.map(|amount| AutoTopUp { when_remaining_secs: TOP_UP_WHEN_REMAINING_SECS, amount }),
        ..UserConfig::default()
    };
    let user = Arc::new(super::session::open_user(&client, &owner, config).await?);
    let terms = args.payer.terms(STORE_SERVICE_ID);
    let paid = PaidStore::connect(&args.payer.provider, Arc::clone(&user), terms).await.map_err(query_error)?;
    let provider_account = paid.advert().provider_id;
    // What the reused stream had left unaccrued before this query: the query's cost is what
    // left it (claims by the provider do not change it).
    let reused = paid.stream_id().map_err(query_error)?;
    let unaccrued_before = match reused {
        Some(stream_id) => {
            client.stream(owner.account_id(), args.payer.vault_id, stream_id).await?.map(|v| v.unaccrued.0)
        }
        None => None,
    };
    let provider_id = paystreams_lez_core::AccountId(paid.advert().provider_id);
    if !ctx.common.json {
        let token = paid.advert().policy.accepted_tokens.first();
        eprintln!(
            "provider {provider_id}: min rate {}/s, min allocation {}; paying from vault {} (unallocated {})",
            token.map_or(0, |t| t.min_rate),
            token.map_or(0, |t| t.min_allocation),
            args.payer.vault_id,
            vault.unallocated.0
        );
        if let Some(stream_id) = reused {
            eprintln!("reusing the open session on stream {stream_id}");
        }
    }
    let pubsub_topic = match (&args.pubsub_topic, args.content_topics.is_empty()) {
        (Some(t), _) => Some(t.clone()),
        (None, false) => Some(DEFAULT_PUBSUB_TOPIC.to_owned()),
        (None, true) => None,
    };
    let mut request = StoreQueryRequest {
        include_data: !args.hashes_only,
        pubsub_topic,
        content_topics: args.content_topics.clone(),
        time_start: args.start,
        time_end: args.end,
        message_hashes: args.hashes.clone(),
        pagination_forward: !args.backward,
        pagination_limit: Some(args.page_size),
        ..StoreQueryRequest::default()
    };
    let mut rows = Vec::new();
    let mut pages = 0u32;
    let mut outcome: Result<(), QueryError> = Ok(());
    while pages < args.max_pages {
        match paid.page(&request).await {
            Ok(page) => {
                pages = pages.saturating_add(1);
                if let Some(stream_id) = page.stream_created
                    && !ctx.common.json
                {
                    eprintln!("provider accepted the proposal; created stream {stream_id} on chain");
                }
                for entry in &page.response.messages {
                    if ctx.common.json {
                        outln!("{}", message_json(entry));
                    } else {
                        rows.push(message_row(entry));
                    }
                }
                match page.response.pagination_cursor {
                    Some(cursor) => request.pagination_cursor = Some(cursor),
                    None => break,
                }
            }
            Err(e) => {
                outcome = Err(e);
                break;
            }
        }
    }
    if !ctx.common.json {
        outln!("{}", table(&["time (UTC)", "content topic", "payload", "hash"], rows));
    }
    // What it cost: the stream's accrual during this query; close it only when asked.
    let stream_id = paid.stream_id().map_err(query_error)?.or(match &outcome {
        Err(QueryError::Terminated { stream }) => *stream,
        _ => None,
    });
    if let Some(stream_id) = stream_id {
        let session = user.current(&provider_account).map_err(|e| CliError::Failed(e.to_string()))?;
        let ours = session.as_ref().filter(|s| s.phase.stream_id() == Some(stream_id));
        // A new stream started with its whole allocation unaccrued.
        let start = if reused == Some(stream_id) { unaccrued_before } else { ours.map(|s| u128::from(s.allocation)) };
        let mut closed = false;
        let mut returned = None;
        if args.close && ours.is_some() {
            let before = client.vault(owner.account_id(), args.payer.vault_id).await?.map_or(0, |v| v.unallocated.0);
            closed = paid.close().await.map_err(query_error)?.is_some();
            let after = client.vault(owner.account_id(), args.payer.vault_id).await?.map_or(0, |v| v.unallocated.0);
            returned = closed.then(|| after.saturating_sub(before));
        }
        let view = client.require_stream(owner.account_id(), args.payer.vault_id, stream_id).await?;
        // Spent during this query: what left the unaccrued part (on a close, what did not come
        // back to the vault).
        // Unknown when the stream was closed by someone else (what came back is not ours to see).
        let left = match returned {
            Some(r) => Some(r),
            None if view.state == paystreams_program::state::StreamState::Closed => None,
            None => Some(view.unaccrued.0),
        };
        let cost = start.zip(left).map(|(start, left)| start.saturating_sub(left));
        let open = view.state != paystreams_program::state::StreamState::Closed;
        let label = session.as_ref().map(paystreams_user::SessionRecord::label);
        let summary = json!({
            "summary": {
                "pages": pages,
                "stream_id": stream_id,
                "session_id": label,
                "reused": reused == Some(stream_id),
                "rate": view.rate.to_string(),
                "cost": cost.map(|c| c.to_string()),
                "accrued_total": view.accrued.0.to_string(),
                "stream_state": format!("{:?}", view.state),
                "closed_now": closed,
                "returned_to_vault": returned.map(|r| r.to_string()),
            }
        });
        if ctx.common.json {
            outln!("{summary}");
        } else {
            let unit = ctx.unit(&view.token_id);
            let rate = display::rate_in(view.rate, &unit);
            let tail = if closed {
                "; stream closed, the rest of its allocation is back in the vault".to_owned()
            } else if open {
                format!(
                    "; the session stays open for later queries and its stream keeps accruing at {rate} until its \
                     allocation is spent or you close it (`paystream session close {}`)",
                    label.as_deref().and_then(|l| l.get(..16)).unwrap_or("--all")
                )
            } else {
                "; the stream is closed".to_owned()
            };
            let cost = cost.map_or_else(
                || "unknown (the stream was closed elsewhere)".to_owned(),
                |c| display::amount_in(c, &unit),
            );
            eprintln!("{pages} page(s); cost {cost} (stream {stream_id} at {rate}){tail}");
        }
    }
    outcome.map_err(query_error)
}

/// The payload of `--payload`: the text, or the bytes of the file after `@`.
fn read_payload(arg: &str) -> CmdResult<Vec<u8>> {
    let bytes = match arg.strip_prefix('@') {
        Some(path) => {
            let len = std::fs::metadata(path).map_err(|e| CliError::Usage(format!("--payload @{path}: {e}")))?.len();
            if len > u64::try_from(PAYLOAD_MAX_LEN).unwrap_or(u64::MAX) {
                return Err(CliError::Usage(format!(
                    "--payload @{path} is {len} bytes; a Waku message payload is at most {PAYLOAD_MAX_LEN}"
                )));
            }
            std::fs::read(path).map_err(|e| CliError::Usage(format!("--payload @{path}: {e}")))?
        }
        None => arg.as_bytes().to_vec(),
    };
    if bytes.len() > PAYLOAD_MAX_LEN {
        return Err(CliError::Usage(format!(
            "--payload is {} bytes; a Waku message payload is at most {PAYLOAD_MAX_LEN}",
            bytes.len()
        )));
    }
    Ok(bytes)
}

async fn push(ctx: &Ctx, args: &PushArgs) -> CmdResult {
    if args.content_topic.is_empty() || args.pubsub_topic.is_empty() {
        return Err(CliError::Usage("--content-topic and --pubsub-topic must not be empty".into()));
    }
    let payload = read_payload(&args.payload)?;
    let timestamp = match args.timestamp {
        Some(t) => t,
        None => i64::try_from(paystreams_rpc::clock::wall_clock_ms())
            .ok()
            .and_then(|ms| ms.checked_mul(1_000_000))
            .ok_or_else(|| CliError::Failed("the system clock is out of range; pass --timestamp".into()))?,
    };
    let owner = ctx.key(&args.payer.from)?;
    let client = ctx.client()?;
    client.require_vault(owner.account_id(), args.payer.vault_id).await?;
    let user = Arc::new(super::session::open_user(&client, &owner, UserConfig::default()).await?);
    let terms = args.payer.terms(LIGHTPUSH_SERVICE_ID);
    let paid = PaidLightpush::connect(&args.payer.provider, Arc::clone(&user), terms).await.map_err(query_error)?;
    let message = WakuMessage {
        payload,
        content_topic: args.content_topic.clone(),
        timestamp: Some(timestamp),
        ..WakuMessage::default()
    };
    let outcome = paid.push(&args.pubsub_topic, message).await.map_err(query_error)?;
    let stream_id = paid.paid().stream_id().map_err(query_error)?;
    let closed = if args.close { paid.close().await.map_err(query_error)? } else { None };
    let hash = hex::encode(outcome.message_hash);
    ctx.emit(
        &json!({
            "hash": hash,
            "pubsub_topic": args.pubsub_topic,
            "content_topic": args.content_topic,
            "timestamp": timestamp.to_string(),
            "date": display::time_ns(timestamp),
            "stored": !outcome.duplicate(),
            "status_desc": outcome.response.status_desc,
            "stream_id": stream_id,
            "stream_created": outcome.stream_created,
            "closed_now": closed.is_some(),
        }),
        || {
            let mut text = String::new();
            if let Some(stream_id) = outcome.stream_created {
                text.push_str(&format!("provider accepted the proposal; created stream {stream_id} on chain\n"));
            }
            let what = if outcome.duplicate() { "already stored" } else { "stored" };
            text.push_str(&format!("✓ pushed message {hash} ({what}) on {}", args.pubsub_topic));
            match (closed, stream_id) {
                (Some(s), _) => text.push_str(&format!("; stream {s} closed, the rest of its allocation is back in the vault")),
                (None, Some(s)) => text.push_str(&format!(
                    "; the Lightpush session stays open on stream {s} for later pushes (`paystream session close` ends it)"
                )),
                (None, None) => {}
            }
            text
        },
    );
    Ok(())
}

fn query_error(e: QueryError) -> CliError {
    match e {
        QueryError::Net(n @ paystreams_store::net::NetError::BadAddress(_)) => CliError::Usage(n.to_string()),
        QueryError::Net(n) => CliError::Failed(format!("{n} (is the provider running at that address?)")),
        other => CliError::Failed(other.to_string()),
    }
}
