//! `paystream stream`: payment streams from a vault to a provider.

use std::{
    collections::BTreeMap,
    io::{IsTerminal as _, Write as _},
    time::Duration,
};

use borsh::BorshDeserialize as _;
use clap::{Subcommand, ValueEnum};
use paystreams_client::{
    Client, ClientError, claimed_amount,
    display::{self, ChainClock, StopReason, StreamStory},
};
use paystreams_lez_core::{AccountId, crypto::PublicKey};
use paystreams_program::{ExtensionSettings, receipt::DeliveryReceipt, state::StreamState};
use paystreams_rpc::{EventNotification, StreamFilter, StreamView, clock::wall_clock_secs};
use serde_json::json;

use super::output::{CliError, CmdResult, CommonArgs, Ctx, amount_arg, fields, table};

/// Payment streams: the owner allocates vault funds to a provider at a rate per second; the
/// provider claims what has accrued.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  paystream stream create --owner dev-0 --vault-id 0 --provider dev-1 --rate 10 --allocation 3600
  paystream stream show --owner dev-0 --vault-id 0 --stream-id 0
  paystream stream history --owner dev-0 --vault-id 0 --stream-id 0
  paystream stream watch --owner dev-0 --vault-id 0 --stream-id 0
  paystream stream pause  --owner dev-0 --vault-id 0 --stream-id 0
  paystream stream resume --owner dev-0 --vault-id 0 --stream-id 0
  paystream stream top-up --owner dev-0 --vault-id 0 --stream-id 0 --amount 1000
  paystream stream claim  --provider dev-1 --owner dev-0 --vault-id 0 --stream-id 0
  paystream stream close  --owner dev-0 --vault-id 0 --stream-id 0               # as the owner
  paystream stream close  --owner dev-0 --vault-id 0 --stream-id 0 --key dev-1   # as the provider
  paystream stream list --provider dev-1

Extensions (chosen at creation): --auto-pause-after S, --activation-fee F,
--auto-claim-on-provider-close, --receipt-key KEY (claims then need receipts: see `stream receipt`).")]
pub struct StreamArgs {
    #[command(subcommand)]
    pub command: StreamCommand,
}

/// Names one stream.
#[derive(Debug, Clone, clap::Args)]
pub struct StreamRefArgs {
    /// Vault owner: key name (required when the owner signs) or base58 account id.
    #[arg(long)]
    pub owner: String,
    /// Vault id (per owner).
    #[arg(long)]
    pub vault_id: u64,
    /// Stream id (0, 1, ... within the vault).
    #[arg(long)]
    pub stream_id: u64,
}

/// Which party closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Closer {
    Owner,
    Provider,
}

#[derive(Debug, Subcommand)]
pub enum StreamCommand {
    /// Create a stream; its id is the vault's next stream id.
    Create {
        /// Owner key.
        #[arg(long)]
        owner: String,
        /// Vault id (per owner).
        #[arg(long)]
        vault_id: u64,
        /// Provider: key name or base58 account id (not the owner).
        #[arg(long)]
        provider: String,
        /// Amount per second (whole number).
        #[arg(long)]
        rate: u64,
        /// Funds reserved for the stream, from the vault's unallocated balance.
        #[arg(long, value_parser = amount_arg)]
        allocation: u128,
        /// Pause automatically after this many seconds of running (0 = never).
        #[arg(long, default_value_t = 0, value_name = "S")]
        auto_pause_after: u64,
        /// Paid to the provider (moved from unaccrued to accrued) each time the stream starts or resumes.
        #[arg(long, value_parser = amount_arg, default_value = "0", value_name = "F")]
        activation_fee: u128,
        /// When the provider closes, pay out what accrued in the same transaction.
        #[arg(long)]
        auto_claim_on_provider_close: bool,
        /// Require delivery receipts signed by this key: 64-hex x-only public key or a key name.
        #[arg(long, value_name = "HEX")]
        receipt_key: Option<String>,
    },
    /// Stop accrual (owner).
    Pause {
        #[command(flatten)]
        stream: StreamRefArgs,
    },
    /// Restart accrual of a paused stream (owner).
    Resume {
        #[command(flatten)]
        stream: StreamRefArgs,
    },
    /// Add unallocated vault funds to a stream; it runs afterwards (owner).
    TopUp {
        #[command(flatten)]
        stream: StreamRefArgs,
        #[arg(long, value_parser = amount_arg)]
        amount: u128,
    },
    /// Close a stream for good: by the owner (unaccrued funds return to the vault) or by the
    /// provider.
    Close {
        #[command(flatten)]
        stream: StreamRefArgs,
        /// Signing key [default: --owner]. Its account decides the role unless --as is given.
        #[arg(long)]
        key: Option<String>,
        /// Close as the owner or as the provider.
        #[arg(long = "as", value_enum)]
        role: Option<Closer>,
        /// Delivery receipt (hex, from `stream receipt`) for an auto-claim close.
        #[arg(long)]
        receipt: Option<String>,
    },
    /// The provider takes what has accrued.
    Claim {
        #[command(flatten)]
        stream: StreamRefArgs,
        /// Provider key.
        #[arg(long)]
        provider: String,
        /// Delivery receipt (hex, from `stream receipt`) when the stream requires receipts.
        #[arg(long)]
        receipt: Option<String>,
    },
    /// Sign a delivery receipt (the user, with the receipt key) acknowledging a cumulative
    /// amount delivered; prints it as hex for the provider's `claim --receipt`.
    Receipt {
        #[command(flatten)]
        stream: StreamRefArgs,
        /// The receipt key (keystore name) committed at creation.
        #[arg(long)]
        key: String,
        /// Cumulative amount acknowledged as delivered on this stream.
        #[arg(long, value_parser = amount_arg)]
        acknowledged: u128,
        /// 32-byte hex digest of the deliveries covered [default: zeros].
        #[arg(long)]
        digest: Option<String>,
    },
    /// Show a stream, folded at the latest block time.
    Show {
        #[command(flatten)]
        stream: StreamRefArgs,
    },
    /// Every event of a stream, oldest first: date, block, transaction, what happened (from the
    /// node's event index).
    History {
        #[command(flatten)]
        stream: StreamRefArgs,
    },
    /// List streams by owner and/or provider.
    List {
        /// Owner key name or base58 account id.
        #[arg(long)]
        owner: Option<String>,
        /// Provider key name or base58 account id.
        #[arg(long)]
        provider: Option<String>,
    },
    /// Redraw live accrual every second until Ctrl-C (with --json: one line per second).
    Watch {
        #[command(flatten)]
        stream: StreamRefArgs,
        /// Stop after this many updates.
        #[arg(long)]
        count: Option<u64>,
    },
}

pub fn run(args: &StreamArgs, common: &CommonArgs) -> std::process::ExitCode {
    let ctx = Ctx::new(common.clone());
    let result = ctx.block_on(run_inner(&ctx, &args.command));
    ctx.finish(result)
}

fn state_name(state: StreamState) -> &'static str {
    match state {
        StreamState::Active => "active",
        StreamState::Paused => "paused",
        StreamState::Closed => "closed",
    }
}

fn parse_receipt(text: &str) -> CmdResult<DeliveryReceipt> {
    let bytes = hex::decode(text.trim()).map_err(|e| CliError::Usage(format!("--receipt is not hex: {e}")))?;
    DeliveryReceipt::try_from_slice(&bytes).map_err(|e| {
        CliError::Usage(format!(
            "--receipt does not decode as a delivery receipt ({e}); produce one with `paystream stream receipt`"
        ))
    })
}

fn parse_receipt_key(ctx: &Ctx, text: &str) -> CmdResult<[u8; 32]> {
    if let Ok(key) = text.parse::<PublicKey>() {
        return Ok(key.to_bytes());
    }
    match ctx.key(text) {
        Ok(key) => Ok(key.key.public_key().to_bytes()),
        Err(_) => Err(CliError::Usage(format!(
            "--receipt-key {text:?} is neither a 64-hex x-only public key nor a key name; see `paystream keys show NAME`"
        ))),
    }
}

fn stream_json(view: &StreamView) -> serde_json::Value {
    serde_json::to_value(view).unwrap_or_default()
}

/// The view's JSON plus what people need and machines may use: the story (`created_allocation`,
/// `top_ups`, `funded`, `claimed`, `released`, `stopped`, …), dates and the chain's offset. The
/// view's own fields are unchanged.
fn stream_show_json(view: &StreamView, story: &StreamStory, clock: &ChainClock) -> serde_json::Value {
    let mut value = stream_json(view);
    if let (Some(object), Ok(serde_json::Value::Object(more))) = (value.as_object_mut(), serde_json::to_value(story)) {
        object.extend(more);
        object.insert("as_of_date".to_owned(), json!(display::time(view.as_of)));
        object.insert("planned_stop_date".to_owned(), json!(view.planned_stop.map(display::time)));
        object.insert("chain_offset_secs".to_owned(), json!(clock.offset_secs()));
        object.insert("stopped_reason".to_owned(), json!(story.stopped.map(StopReason::describe)));
    }
    value
}

fn stream_fields(
    v: &StreamView,
    story: &StreamStory,
    clock: &ChainClock,
    unit: &str,
    names: &BTreeMap<AccountId, String>,
) -> String {
    let who = |id: &AccountId| names.get(id).map_or_else(|| id.to_string(), |name| format!("{name} ({id})"));
    let money = |value: u128| display::amount_in(value, unit);
    let state = match story.stopped {
        None => state_name(v.state).to_owned(),
        Some(reason) => format!(
            "{}{}",
            reason.describe(),
            story.stopped_at.map_or_else(String::new, |at| format!(", since {}", clock.date_relative(at)))
        ),
    };
    let mut rows = vec![
        ("stream", format!("{} (vault {} of {})", v.stream_id, v.vault_id, who(&v.owner))),
        ("provider", who(&v.provider)),
        ("token", format!("{unit} (amounts are whole base units)")),
        ("state", state),
        ("rate", display::rate_in(v.rate, unit)),
    ];
    if story.from_events {
        if let Some(created) = story.created_allocation {
            rows.push((
                "allocated at creation",
                format!(
                    "{}{}",
                    money(created),
                    story.created_at.map_or_else(String::new, |at| format!(" on {}", display::time(at)))
                ),
            ));
        }
        for top_up in &story.top_ups {
            rows.push(("topped up", format!("{} on {}", money(top_up.amount), display::time(top_up.at))));
        }
        if let Some(funded) = story.funded.filter(|_| !story.top_ups.is_empty()) {
            rows.push(("funded in total", money(funded)));
        }
        rows.push((
            "claimed so far",
            format!(
                "{} ({} claim{}; paid out of the allocation)",
                money(story.claimed),
                story.claims,
                plural(story.claims)
            ),
        ));
        if story.released > 0 {
            rows.push(("released to the vault at close", money(story.released)));
        }
    } else {
        rows.push(("claimed so far", "unknown (the node's event index cannot be read)".to_owned()));
    }
    rows.extend([
        ("allocation (still held)", money(v.allocation.0)),
        ("accrued (claimable)", money(v.accrued.0)),
        ("unaccrued", money(v.unaccrued.0)),
        ("as of", clock.date_with_offset(v.as_of)),
        ("stops at", v.planned_stop.map_or_else(|| "-".to_owned(), |t| clock.date_relative(t))),
        ("stream config", v.stream_config.to_string()),
    ]);
    if let Some(e) = &v.extensions {
        rows.push((
            "auto-pause after",
            if e.auto_pause_after == 0 { "off".to_owned() } else { display::duration(e.auto_pause_after) },
        ));
        rows.push(("activation fee", money(e.activation_fee.0)));
        rows.push(("auto-claim on provider close", e.auto_claim_on_provider_close.to_string()));
        rows.push(("receipt key", e.receipt_key.clone().unwrap_or_else(|| "-".to_owned())));
        rows.push(("paid under receipts", money(e.receipt_paid.0)));
    }
    fields(&rows)
}

/// The stream's events, oldest first, from the node's event index.
async fn history(
    client: &Client,
    owner: AccountId,
    vault_id: u64,
    stream_id: u64,
) -> Result<Vec<EventNotification>, ClientError> {
    Ok(client.stream_history(owner, vault_id, stream_id).await?.into_iter().map(|e| e.notification).collect())
}

fn history_text(
    view: &StreamView,
    events: &[EventNotification],
    story: &StreamStory,
    clock: &ChainClock,
    unit: &str,
    names: &BTreeMap<AccountId, String>,
) -> String {
    let mut text = if events.is_empty() {
        format!("no events recorded for stream {} of vault {}", view.stream_id, view.vault_id)
    } else {
        table(
            &["date (UTC)", "block", "transaction", "what happened"],
            events
                .iter()
                .map(|n| {
                    let hash = n.tx_hash.to_string();
                    vec![
                        display::time(n.timestamp_ms / 1000).trim_end_matches(" UTC").to_owned(),
                        n.block_id.to_string(),
                        hash.get(..16).map_or_else(|| hash.clone(), |h| format!("{h}…")),
                        display::describe_event(&n.event, unit, names),
                    ]
                })
                .collect(),
        )
    };
    let money = |value: u128| display::amount_in(value, unit);
    text.push_str(&format!(
        "\nclaimed so far {}; allocation still held {} (accrued {}, unaccrued {}){}",
        money(story.claimed),
        money(view.allocation.0),
        display::amount(view.accrued.0),
        display::amount(view.unaccrued.0),
        story.funded.map_or_else(String::new, |f| format!("; funded {}", money(f)))
    ));
    if story.released > 0 {
        text.push_str(&format!("; released to the vault {}", money(story.released)));
    }
    text.push_str(&format!(
        "\nstate: {}; as of {}",
        story.stopped.map_or("active", StopReason::describe),
        clock.date_with_offset(view.as_of)
    ));
    text
}

const fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Accrual projected to chain time `now` from the view's rate and `accrued_as_of`.
fn projected_accrued(view: &StreamView, now: u64) -> u128 {
    if view.state != StreamState::Active {
        return view.accrued.0;
    }
    let until = view.planned_stop.map_or(now, |stop| stop.min(now));
    let elapsed = until.saturating_sub(view.accrued_as_of);
    let gain = u128::from(view.rate).saturating_mul(u128::from(elapsed));
    view.accrued.0.saturating_add(gain).min(view.allocation.0)
}

async fn watch(
    ctx: &Ctx,
    client: &Client,
    owner: AccountId,
    vault_id: u64,
    stream_id: u64,
    count: Option<u64>,
) -> CmdResult {
    let tty = std::io::stdout().is_terminal() && !ctx.common.json;
    // Chain time runs at least as fast as the wall clock; dev time jumps move it ahead.
    let mut offset: i128 = 0;
    let mut updates = 0_u64;
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    let mut unit = String::new();
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = tokio::signal::ctrl_c() => break,
        }
        let view = client.require_stream(owner, vault_id, stream_id).await?;
        if unit.is_empty() {
            unit = ctx.unit(&view.token_id);
        }
        let wall = wall_clock_secs();
        offset = offset.max(i128::from(view.as_of) - i128::from(wall));
        let estimated = u64::try_from(i128::from(wall).saturating_add(offset)).unwrap_or(view.as_of).max(view.as_of);
        let accrued = projected_accrued(&view, estimated);
        let remaining = view.allocation.0.saturating_sub(accrued);
        if ctx.common.json {
            let line = json!({
                "stream_id": stream_id,
                "state": view.state,
                "chain_time": estimated,
                "chain_time_date": display::time(estimated),
                "chain_offset_secs": ChainClock::new(estimated, wall).offset_secs(),
                "accrued": accrued.to_string(),
                "unaccrued": remaining.to_string(),
                "allocation": view.allocation.0.to_string(),
                "rate": view.rate,
                "planned_stop": view.planned_stop,
            });
            outln!("{line}");
        } else {
            let clock = ChainClock::new(estimated, wall);
            let state =
                StreamStory::new(&view, None::<&[EventNotification]>).stopped.map_or("active", StopReason::short);
            let text = format!(
                "stream {stream_id} {state:<8} accrued {} / {} (+{})  unaccrued {}  at {}{}",
                display::amount_in(accrued, &unit),
                display::amount(view.allocation.0),
                display::rate_in(if view.state == StreamState::Active { view.rate } else { 0 }, &unit),
                display::amount(remaining),
                clock.date_with_offset(estimated),
                view.planned_stop.map_or_else(String::new, |s| format!("  stops {}", clock.date_relative(s)))
            );
            if tty {
                out!("\r\x1b[2K{text}");
            } else {
                outln!("{text}");
            }
        }
        let _ = std::io::stdout().flush();
        updates = updates.saturating_add(1);
        if count.is_some_and(|c| updates >= c) {
            break;
        }
    }
    if tty {
        outln!();
    }
    Ok(())
}

#[expect(clippy::too_many_lines, reason = "one arm per subcommand")]
async fn run_inner(ctx: &Ctx, command: &StreamCommand) -> CmdResult {
    let client = ctx.client()?;
    match command {
        StreamCommand::Create {
            owner,
            vault_id,
            provider,
            rate,
            allocation,
            auto_pause_after,
            activation_fee,
            auto_claim_on_provider_close,
            receipt_key,
        } => {
            let owner = ctx.key(owner)?;
            let provider = ctx.account_id(provider)?;
            let extensions = ExtensionSettings {
                auto_pause_after: *auto_pause_after,
                activation_fee: *activation_fee,
                auto_claim_on_provider_close: *auto_claim_on_provider_close,
                receipt_key: receipt_key.as_deref().map(|k| parse_receipt_key(ctx, k)).transpose()?,
            };
            let (stream_id, receipt) =
                client.create_stream(&owner.key, *vault_id, provider, *rate, *allocation, extensions).await?;
            let view = client.stream(owner.account_id(), *vault_id, stream_id).await?;
            let unit = ctx.unit(view.as_ref().map_or("native", |v| v.token_id.as_str()));
            ctx.tx_done(
                &format!(
                    "created stream {stream_id} in vault {vault_id}: {} to {provider}, allocation {}",
                    display::rate_in(*rate, &unit),
                    display::amount_in(*allocation, &unit)
                ),
                &receipt,
                json!({ "stream_id": stream_id, "vault_id": vault_id, "stream": view.as_ref().map(stream_json) }),
            );
        }
        StreamCommand::Pause { stream } | StreamCommand::Resume { stream } => {
            let owner = ctx.key(&stream.owner)?;
            let pause = matches!(command, StreamCommand::Pause { .. });
            let receipt = if pause {
                client.pause(&owner.key, stream.vault_id, stream.stream_id).await?
            } else {
                client.resume(&owner.key, stream.vault_id, stream.stream_id).await?
            };
            let view = client.stream(owner.account_id(), stream.vault_id, stream.stream_id).await?;
            ctx.tx_done(
                &format!("{} stream {}", if pause { "paused" } else { "resumed" }, stream.stream_id),
                &receipt,
                json!({ "stream": view.as_ref().map(stream_json) }),
            );
        }
        StreamCommand::TopUp { stream, amount } => {
            let owner = ctx.key(&stream.owner)?;
            let receipt = client.top_up(&owner.key, stream.vault_id, stream.stream_id, *amount).await?;
            let view = client.stream(owner.account_id(), stream.vault_id, stream.stream_id).await?;
            let unit = ctx.unit(view.as_ref().map_or("native", |v| v.token_id.as_str()));
            ctx.tx_done(
                &format!(
                    "topped up stream {} by {}{}",
                    stream.stream_id,
                    display::amount_in(*amount, &unit),
                    view.as_ref().map_or_else(String::new, |v| format!(
                        " (allocation now {})",
                        display::amount_in(v.allocation.0, &unit)
                    ))
                ),
                &receipt,
                json!({ "amount": amount.to_string(), "stream": view.as_ref().map(stream_json) }),
            );
        }
        StreamCommand::Close { stream, key, role, receipt } => {
            let owner_id = ctx.account_id(&stream.owner)?;
            let signer = ctx.key(key.as_deref().unwrap_or(&stream.owner))?;
            let view = client.require_stream(owner_id, stream.vault_id, stream.stream_id).await?;
            let role = match role {
                Some(role) => *role,
                None if signer.account_id() == owner_id => Closer::Owner,
                None if signer.account_id() == view.provider => Closer::Provider,
                None => {
                    return Err(CliError::Usage(format!(
                        "key {} ({}) is neither the owner {owner_id} nor the provider {} of stream {}: pass the right --key",
                        signer.name,
                        signer.account_id(),
                        view.provider,
                        stream.stream_id
                    )));
                }
            };
            let receipt = receipt.as_deref().map(parse_receipt).transpose()?;
            let tx = match role {
                Closer::Owner => client.close_by_owner(&signer.key, stream.vault_id, stream.stream_id).await?,
                Closer::Provider => {
                    client.close_by_provider(&signer.key, owner_id, stream.vault_id, stream.stream_id, receipt).await?
                }
            };
            let paid = claimed_amount(&tx);
            let after = client.stream(owner_id, stream.vault_id, stream.stream_id).await?;
            let unit = ctx.unit(&view.token_id);
            ctx.tx_done(
                &format!(
                    "closed stream {} as {}{}",
                    stream.stream_id,
                    if role == Closer::Owner { "owner" } else { "provider" },
                    if paid > 0 {
                        format!(", paid {} to the provider", display::amount_in(paid, &unit))
                    } else {
                        String::new()
                    }
                ),
                &tx,
                json!({ "paid": paid.to_string(), "stream": after.as_ref().map(stream_json) }),
            );
        }
        StreamCommand::Claim { stream, provider, receipt } => {
            let owner_id = ctx.account_id(&stream.owner)?;
            let provider = ctx.key(provider)?;
            let receipt = receipt.as_deref().map(parse_receipt).transpose()?;
            let tx = client.claim(&provider.key, owner_id, stream.vault_id, stream.stream_id, receipt).await?;
            let paid = claimed_amount(&tx);
            let after = client.stream(owner_id, stream.vault_id, stream.stream_id).await?;
            let unit = ctx.unit(after.as_ref().map_or("native", |v| v.token_id.as_str()));
            ctx.tx_done(
                &format!(
                    "claimed {} from stream {}{}",
                    display::amount_in(paid, &unit),
                    stream.stream_id,
                    after.as_ref().map_or_else(String::new, |v| format!(
                        " (paid out of its allocation, now {}; see `paystream stream show`)",
                        display::amount_in(v.allocation.0, &unit)
                    ))
                ),
                &tx,
                json!({ "amount": paid.to_string() }),
            );
        }
        StreamCommand::Receipt { stream, key, acknowledged, digest } => {
            let owner_id = ctx.account_id(&stream.owner)?;
            let key = ctx.key(key)?;
            let (_, vault) = client.require_vault(owner_id, stream.vault_id).await?;
            let digest = match digest {
                Some(text) => {
                    let bytes =
                        hex::decode(text.trim()).map_err(|e| CliError::Usage(format!("--digest is not hex: {e}")))?;
                    <[u8; 32]>::try_from(bytes.as_slice())
                        .map_err(|_| CliError::Usage("--digest must be 32 bytes".to_owned()))?
                }
                None => [0; 32],
            };
            let receipt = DeliveryReceipt::sign(&key.key, &vault, stream.stream_id, *acknowledged, digest);
            let encoded = hex::encode(borsh::to_vec(&receipt).unwrap_or_default());
            ctx.emit(&json!({ "receipt": encoded, "acknowledged_total": acknowledged.to_string() }), || {
                encoded.clone()
            });
        }
        StreamCommand::Show { stream } => {
            let owner_id = ctx.account_id(&stream.owner)?;
            let view = client.require_stream(owner_id, stream.vault_id, stream.stream_id).await?;
            let events = history(&client, owner_id, stream.vault_id, stream.stream_id).await;
            let story = StreamStory::new(&view, events.as_ref().ok());
            if let Err(e) = &events {
                eprintln!("warning: the stream's events cannot be read ({e}); claims and top-ups are not shown");
            }
            let clock = Ctx::clock(view.as_of);
            let names = ctx.names();
            let unit = display::token_unit(&view.token_id, &names);
            ctx.emit(&stream_show_json(&view, &story, &clock), || stream_fields(&view, &story, &clock, &unit, &names));
        }
        StreamCommand::History { stream } => {
            let owner_id = ctx.account_id(&stream.owner)?;
            let view = client.require_stream(owner_id, stream.vault_id, stream.stream_id).await?;
            let events = history(&client, owner_id, stream.vault_id, stream.stream_id).await?;
            let story = StreamStory::new(&view, Some(&events));
            let names = ctx.names();
            let unit = display::token_unit(&view.token_id, &names);
            let rows: Vec<serde_json::Value> = events
                .iter()
                .map(|n| {
                    json!({
                        "block_id": n.block_id,
                        "timestamp_ms": n.timestamp_ms,
                        "date": display::time(n.timestamp_ms / 1000),
                        "tx_hash": n.tx_hash.to_string(),
                        "kind": n.event.kind(),
                        "description": display::describe_event(&n.event, &unit, &names),
                        "event": n.event,
                    })
                })
                .collect();
            let clock = Ctx::clock(view.as_of);
            let value = json!({
                "owner": owner_id.to_string(),
                "vault_id": stream.vault_id,
                "stream_id": stream.stream_id,
                "token_id": view.token_id,
                "events": rows,
                "summary": stream_show_json(&view, &story, &clock),
            });
            ctx.emit(&value, || history_text(&view, &events, &story, &clock, &unit, &names));
        }
        StreamCommand::List { owner, provider } => {
            if owner.is_none() && provider.is_none() {
                return Err(CliError::Usage("pass --owner, --provider, or both".to_owned()));
            }
            let filter = StreamFilter {
                owner: owner.as_deref().map(|o| ctx.account_id(o)).transpose()?,
                provider: provider.as_deref().map(|p| ctx.account_id(p)).transpose()?,
            };
            let streams = client.list_streams(filter).await?;
            let value = serde_json::Value::Array(streams.iter().map(stream_json).collect());
            ctx.emit(&value, || {
                if streams.is_empty() {
                    return "no streams match".to_owned();
                }
                let names = ctx.names();
                table(
                    &["owner", "vault", "stream", "provider", "state", "rate", "allocation", "accrued"],
                    streams
                        .iter()
                        .map(|s| {
                            vec![
                                s.owner.to_string(),
                                s.vault_id.to_string(),
                                s.stream_id.to_string(),
                                s.provider.to_string(),
                                StreamStory::new(s, None::<&[EventNotification]>)
                                    .stopped
                                    .map_or("active", StopReason::short)
                                    .to_owned(),
                                display::rate_in(s.rate, &display::token_unit(&s.token_id, &names)),
                                display::amount_in(s.allocation.0, &display::token_unit(&s.token_id, &names)),
                                display::amount(s.accrued.0),
                            ]
                        })
                        .collect(),
                )
            });
        }
        StreamCommand::Watch { stream, count } => {
            let owner_id = ctx.account_id(&stream.owner)?;
            watch(ctx, &client, owner_id, stream.vault_id, stream.stream_id, *count).await?;
        }
    }
    Ok(())
}
