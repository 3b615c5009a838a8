//! `paystream demo`: one command, nothing else to start. Runs the embedded chain, a Store
//! provider (libp2p, with a seeded SQLite archive) and a user in one process, and narrates the
//! whole lifecycle of a paid service: funded accounts, vault deposit, policy discovery, the
//! proposal and first response, stream creation, paid pages, live accrual, a pause and resume,
//! an unpaid query refused, the provider ending service, the claim, and final balances that
//! add up exactly.

use std::{path::PathBuf, process::ExitCode, sync::Arc, time::Duration};

use anyhow::{Context as _, bail};
use paystreams_client::Client;
use paystreams_lez_core::{AccountId, crypto::SecretKey};
use paystreams_provider::{EngineLimits, ProviderPolicy};
use paystreams_rpc::{StreamView, remote::RpcChain};
use paystreams_store::{
    Archive as _, QueryError, STORE_SERVICE_ID,
    archive::{SqliteArchive, StoredMessage},
    client::{PaidStore, StoreClient},
    provider::{AdminToken, ProviderConfig, ServiceOptions, SessionBackend, start},
    wire::{StoreQueryRequest, WakuMessage},
};
use paystreams_user::{Terms, User, UserConfig};
use paystreams_wire::{StatusCode, TokenStreamPolicy};

const DEPOSIT: u128 = 10_000;
const MIN_RATE: u64 = 5;
const MIN_ALLOCATION: u64 = 3_000;
/// Small enough that the first page is visibly trimmed to it.
const FIRST_RESPONSE_CAP: u64 = 1_024;
const PAGE_SIZE: u64 = 8;
const PUBSUB_TOPIC: &str = "/waku/2/default-waku/proto";
const CHAT_TOPIC: &str = "/demo/1/chat/proto";
const NEWS_TOPIC: &str = "/demo/1/news/proto";
/// Messages seeded into the provider's archive.
const SEEDED_MESSAGES: u32 = 48;

#[derive(Debug, clap::Args)]
#[command(after_help = "The demo leaves its data (chain, archive, sessions, keys) in the printed directory.
With --keep-running the chain and the Store provider stay up until Ctrl-C, for the CLI
(`paystream stream list --rpc URL --owner dev-0`, `paystream store query ...`) and the
dashboard (`paystream dashboard --rpc URL --provider-admin http://ADMIN --provider-admin-token-file DIR/admin-token`).")]
pub struct DemoArgs {
    /// Keep the chain and the provider running after the walkthrough until Ctrl-C.
    #[arg(long)]
    pub keep_running: bool,
    /// Where the demo stores its data (default: a new directory under the paystreams home).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// RPC address of the demo chain; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR")]
    pub rpc_addr: std::net::SocketAddr,
    /// Admin HTTP address of the demo provider (sessions for the dashboard); port 0 picks one.
    #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR")]
    pub admin_addr: std::net::SocketAddr,
}

#[must_use]
pub fn run(args: &DemoArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("paystream demo: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(demo(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("paystream demo failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn step(n: u32, text: &str) {
    outln!("\n[{n}] {text}");
}

fn show_stream(stream: &StreamView) {
    outln!(
        "    stream {}: {:?}, rate {}/s, allocation {}, accrued {}, unaccrued {}{}",
        stream.stream_id,
        stream.state,
        stream.rate,
        stream.allocation.0,
        stream.accrued.0,
        stream.unaccrued.0,
        stream
            .planned_stop
            .map(|t| format!(", stops accruing in {} s", t.saturating_sub(stream.as_of)))
            .unwrap_or_default()
    );
}

fn show_page(response: &paystreams_store::StoreQueryResponse) {
    for entry in &response.messages {
        if let Some((m, _)) = &entry.message {
            outln!("      {}  {}", m.content_topic, String::from_utf8_lossy(&m.payload));
        }
    }
}

/// The archive the demo provider serves: chat and news messages a minute apart.
fn seed_messages() -> anyhow::Result<Vec<StoredMessage>> {
    const BASE_NS: i64 = 1_700_000_000_000_000_000;
    (0..SEEDED_MESSAGES)
        .map(|i| {
            let (topic, text) = if i % 3 == 2 {
                (NEWS_TOPIC, format!("news #{i}: block production steady"))
            } else {
                (CHAT_TOPIC, format!("chat #{i}: hello from the archive"))
            };
            let message = WakuMessage {
                payload: text.into_bytes(),
                content_topic: topic.to_owned(),
                timestamp: Some(BASE_NS.saturating_add(i64::from(i).saturating_mul(60_000_000_000))),
                ..WakuMessage::default()
            };
            StoredMessage::new(PUBSUB_TOPIC.to_owned(), message).map_err(anyhow::Error::msg)
        })
        .collect()
}

#[expect(clippy::too_many_lines, reason = "one narrated walkthrough, step by step")]
async fn demo(args: &DemoArgs) -> anyhow::Result<()> {
    let data_dir = match &args.data_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            dir.clone()
        }
        None => new_run_dir(&paystreams_client::keystore::default_home().join("demo"))?,
    };
    outln!("paystreams demo: a user pays a Store provider by the second for message history.");
    outln!("Everything runs here: an embedded chain, a Store provider on libp2p, and a user.");
    outln!("Data: {}", data_dir.display());
    let config = paystreams_node::NodeConfig {
        rpc_addr: args.rpc_addr,
        automine: true,
        dev: true,
        dev_accounts: 2,
        ..paystreams_node::NodeConfig::new(Some(data_dir.join("chain")))
    };
    let node = paystreams_node::start(config).await.context("starting the embedded chain")?;
    super::node::save_dev_keys(data_dir.join("keystore"), node.dev_keys().to_vec()).await?;
    let client = Client::connect(&node.rpc_url()).context("connecting to the chain")?;
    let keys = node.dev_keys();
    let (Some(user_key), Some(provider_key)) = (keys.first().cloned(), keys.get(1).cloned()) else {
        bail!("the demo chain has no dev accounts (was {} started before with --dev-accounts 0?)", data_dir.display());
    };
    let (user, provider) = (user_key.account_id(), provider_key.account_id());
    let vault_id = next_vault_id(&client, &user_key).await?;

    step(1, "Funded accounts");
    let user_start = client.balance(user).await?;
    let provider_start = client.balance(provider).await?;
    outln!("    user     {user}  balance {user_start}");
    outln!("    provider {provider}  balance {provider_start}");
    outln!("    chain JSON-RPC {}", node.rpc_url());

    step(2, &format!("The user opens vault {vault_id} and deposits {DEPOSIT}"));
    client.init_vault(&user_key, vault_id, None).await?;
    client.deposit(&user_key, vault_id, DEPOSIT).await?;
    let view = client.vault(user, vault_id).await?.context("the demo vault is missing")?;
    outln!("    vault balance {}, unallocated {}", view.balance.0, view.unallocated.0);

    step(3, "The provider starts its Store service on libp2p with a seeded message archive");
    let archive = Arc::new(SqliteArchive::open(&data_dir.join("archive.sqlite")).context("opening the archive")?);
    let seeded = seed_messages()?;
    let added = archive.insert(&seeded).context("seeding the archive")?;
    outln!(
        "    archive {} holds {} messages ({added} added now)",
        data_dir.join("archive.sqlite").display(),
        archive.count()?
    );
    let mut policy = ProviderPolicy::new(
        provider.0,
        vec![STORE_SERVICE_ID.to_owned()],
        vec![TokenStreamPolicy { token_id: [0; 32], min_rate: MIN_RATE, min_allocation: MIN_ALLOCATION }],
    );
    policy.first_response_cap = FIRST_RESPONSE_CAP;
    let provider_config = ProviderConfig {
        rpc_url: node.rpc_url(),
        provider_key: provider_key.clone(),
        listen: "/ip4/127.0.0.1/tcp/0".parse().context("listen address")?,
        policy,
        limits: EngineLimits { recheck_lead_secs: 5, ..EngineLimits::default() },
        sessions: SessionBackend::Redb(data_dir.join("sessions.redb")),
        admin: Some(args.admin_addr),
        tick_interval: Duration::from_millis(500),
        claim_on_shutdown: true,
        service: ServiceOptions {
            admin_token: AdminToken::Generate(data_dir.join("admin-token")),
            ..ServiceOptions::default()
        },
    };
    let service = start(provider_config, archive).await.context("starting the Store provider")?;
    let address = service.addrs().first().context("the provider has no listen address")?.to_string();
    outln!("    listening on {address}");
    if let Some(admin) = service.admin_addr() {
        outln!("    admin endpoint http://{admin}/sessions");
    }

    step(4, "Discovery: the user asks the provider for its policy (/paystreams/policy/1.0.0)");
    let store = StoreClient::connect(&address).await?;
    let owner_chain = RpcChain::new(client.clone());
    let engine = Arc::new(User::new(user_key.clone(), owner_chain, UserConfig::default()));
    let terms = Terms { vault_id, token_id: [0; 32], service_id: STORE_SERVICE_ID.into(), rate: 0, allocation: 0 };
    let paid = PaidStore::new(store.clone(), Arc::clone(&engine), terms).await?;
    let token = paid.advert().policy.accepted_tokens.first().context("the policy lists no token")?;
    outln!(
        "    provider {}: serves {:?}, native token at least {}/s and allocation {}, first response at most {} bytes",
        AccountId(paid.advert().provider_id),
        paid.advert().service_ids,
        token.min_rate,
        token.min_allocation,
        paid.advert().policy.vault_proof_max_response_bytes
    );

    step(5, "First query: a signed StreamProposal rides on the request; the provider accepts and answers");
    let mut request = StoreQueryRequest {
        include_data: true,
        pubsub_topic: Some(PUBSUB_TOPIC.to_owned()),
        content_topics: vec![CHAT_TOPIC.to_owned()],
        pagination_forward: true,
        pagination_limit: Some(PAGE_SIZE),
        ..StoreQueryRequest::default()
    };
    let first = paid.page(&request).await?;
    let first_len = first.response.encode().len();
    outln!(
        "    status {} with eligibility {:?}; {} messages in {first_len} bytes (asked for {PAGE_SIZE}: trimmed to the {FIRST_RESPONSE_CAP}-byte first-response cap, with a cursor to continue)",
        first.response.status_code.unwrap_or_default(),
        first.response.eligibility.as_ref().map(|e| e.status.status_desc.clone()).unwrap_or_default(),
        first.response.messages.len(),
    );
    show_page(&first.response);

    step(6, "The user creates the matching stream on chain, before the proposal's deadline");
    let stream_id = first.stream_created.context("the first page did not create a stream")?;
    let stream = client.require_stream(user, vault_id, stream_id).await?;
    show_stream(&stream);
    request.pagination_cursor = first.response.pagination_cursor;

    step(7, "Paid pages: each request carries a StreamProof signed with the session key");
    let mut pages = 1u32;
    let mut received = first.response.messages.len();
    while let Some(cursor) = request.pagination_cursor {
        let _ = cursor;
        let page = paid.page(&request).await?;
        pages = pages.saturating_add(1);
        received = received.saturating_add(page.response.messages.len());
        outln!("    page {pages}: {} messages", page.response.messages.len());
        request.pagination_cursor = page.response.pagination_cursor;
    }
    outln!("    {received} chat messages in {pages} pages; the archive had no more");

    step(8, "Live accrual: a minute of service passes; the stream accrues lazily, at chain time");
    client.advance_time(60).await?;
    show_stream(&client.require_stream(user, vault_id, stream_id).await?);

    step(9, "The user pauses the stream: the provider stops serving; the user resumes: service is back");
    let paused = client.pause(&user_key, vault_id, stream_id).await?;
    provider_sees(&service, &paused, "the pause").await?;
    let news =
        StoreQueryRequest { content_topics: vec![NEWS_TOPIC.to_owned()], pagination_cursor: None, ..request.clone() };
    match paid.page(&news).await {
        Err(QueryError::StreamInactive(desc)) => outln!("    while paused: refused, STREAM_NOT_ACTIVE ({desc})"),
        other => bail!("a paused stream was served: {other:?}"),
    }
    let before = client.require_stream(user, vault_id, stream_id).await?.accrued.0;
    client.advance_time(100).await?;
    let after = client.require_stream(user, vault_id, stream_id).await?.accrued.0;
    if before != after {
        bail!("a paused stream accrued");
    }
    outln!("    a hundred seconds paused: accrued stays {after}");
    let resumed = client.resume(&user_key, vault_id, stream_id).await?;
    provider_sees(&service, &resumed, "the resume").await?;
    let page = paid.page(&news).await?;
    outln!("    resumed: {} news messages served", page.response.messages.len());
    show_page(&page.response);

    step(10, "A query without payment is refused: Store status 400, PROOF_INVALID, no messages");
    let unpaid = store.send(&StoreQueryRequest { request_id: "unpaid-1".into(), ..news.clone() }).await?;
    let verdict = unpaid.eligibility.as_ref().map(|e| (e.status.code(), e.status.status_desc.clone()));
    let (code, desc) = verdict.clone().unwrap_or((None, String::new()));
    outln!(
        "    Store status {}, eligibility {:?} (\"{desc}\"), {} messages",
        unpaid.status_code.unwrap_or_default(),
        code.map_or_else(|| "none".to_owned(), |c| format!("{c:?}")),
        unpaid.messages.len()
    );
    if unpaid.status_code != Some(400) || !unpaid.messages.is_empty() || code != Some(StatusCode::ProofInvalid) {
        bail!("an unpaid query was not refused as expected");
    }

    step(11, "Thirty seconds later the provider ends service: it closes the stream on chain");
    client.advance_time(30).await?;
    let closed = client.close_by_provider(&provider_key, user, vault_id, stream_id, None).await?;
    show_stream(&client.require_stream(user, vault_id, stream_id).await?);
    // The provider's follower sees the close and ends the session; its PERMANENT
    // ServiceTermination reaches the user pushed (the user is connected) or with the next
    // request, whichever comes first, and the engine closes out.
    provider_sees(&service, &closed, "the close").await?;
    match paid.page(&news).await {
        Err(QueryError::Terminated { stream }) => {
            let outcome = stream.map_or_else(
                || "the stream was already closed, so there was nothing left to close".to_owned(),
                |id| format!("it closed stream {id}"),
            );
            outln!(
                "    a PERMANENT ServiceTermination reaches the user (pushed, or with the next request); the user's engine closes out: {outcome}"
            );
        }
        Ok(_) => bail!("the provider served a request on a stream it had closed"),
        Err(e) => bail!("unexpected answer after the provider closed: {e}"),
    }

    step(12, "The provider claims what accrued; the user withdraws what is left in the vault");
    let accrued = client.require_stream(user, vault_id, stream_id).await?.accrued.0;
    if accrued > 0 {
        // The provider's follower claims on the close event; claim here if it has not yet.
        let mut claimed = false;
        for _ in 0..50 {
            if client.require_stream(user, vault_id, stream_id).await?.accrued.0 == 0 {
                claimed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if !claimed {
            client.claim(&provider_key, user, vault_id, stream_id, None).await?;
        }
    }
    outln!("    provider balance {}", client.balance(provider).await?);
    let view = client.vault(user, vault_id).await?.context("the demo vault is missing")?;
    client.withdraw(&user_key, vault_id, view.unallocated.0, None).await?;

    step(13, "Final balances");
    let user_end = client.balance(user).await?;
    let provider_end = client.balance(provider).await?;
    let vault_end = client.vault(user, vault_id).await?.context("the demo vault is missing")?.balance.0;
    let paid_out = provider_end.checked_sub(provider_start).context("provider balance went down")?;
    let spent = user_start.checked_sub(user_end).context("user balance went up")?;
    outln!("    user     {user_end} (spent {spent})");
    outln!(
        "    provider {provider_end} (earned {paid_out}: {} s of service at {MIN_RATE}/s)",
        paid_out / u128::from(MIN_RATE)
    );
    outln!("    vault    {vault_end}");
    if spent != paid_out || vault_end != 0 || paid_out == 0 {
        bail!("balances do not add up: user spent {spent}, provider earned {paid_out}, vault holds {vault_end}");
    }
    outln!("    user spent exactly what the provider earned; nothing was created or lost.");

    if args.keep_running {
        outln!("\nThe chain and the Store provider keep running. Press Ctrl-C to stop.");
        outln!("  chain     {}", node.rpc_url());
        outln!("  provider  {address}");
        if let Some(admin) = service.admin_addr() {
            outln!("  admin     http://{admin}/sessions");
            outln!(
                "Try: paystream dashboard --rpc {} --keystore {} --provider-admin http://{admin} --provider-admin-token-file {}",
                node.rpc_url(),
                data_dir.join("keystore").display(),
                data_dir.join("admin-token").display()
            );
        }
        outln!(
            "     paystream store query --rpc {} --keystore {} --provider {address} --from dev-0 --vault-id {vault_id} --content-topic {CHAT_TOPIC}",
            node.rpc_url(),
            data_dir.join("keystore").display()
        );
        tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
    }
    service.shutdown().await;
    node.shutdown().await;
    outln!("\nDemo complete. Data left for inspection in {}", data_dir.display());
    Ok(())
}

/// The first vault id the user does not have yet, so the demo can run again on the same data.
async fn next_vault_id(client: &Client, user: &SecretKey) -> anyhow::Result<u64> {
    let vaults = client.list_vaults(user.account_id()).await?;
    Ok(vaults.iter().map(|v| v.vault_id).max().map_or(0, |m| m.saturating_add(1)))
}

/// How long the demo waits for the provider to see a change the user made on chain.
const PROVIDER_SEES_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Waits until the provider's event follower has handled the block that included `receipt`, so
/// the provider's next answer reflects the change (it learns of pauses and resumes from its
/// event subscription, a moment after the block).
async fn provider_sees(
    service: &paystreams_store::provider::ProviderHandle,
    receipt: &paystreams_rpc::ReceiptInfo,
    what: &str,
) -> anyhow::Result<()> {
    let block_id = receipt.block_id.with_context(|| format!("{what} was not included in a block"))?;
    if service.wait_for_events_through(block_id, PROVIDER_SEES_WAIT).await {
        Ok(())
    } else {
        bail!("the provider did not see {what} (block {block_id}) within {PROVIDER_SEES_WAIT:?}")
    }
}

/// Most names tried for a new run directory before giving up (each demo started in the same
/// second by the same process id takes the next suffix).
const RUN_DIR_ATTEMPTS_MAX: u32 = 1_000;

/// A directory of its own under `root` for one demo run, `run-<unix seconds>-<pid>[-<n>]`,
/// created atomically, so demos started at the same moment never share one.
fn new_run_dir(root: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
    std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
    let base = format!("run-{}-{}", paystreams_rpc::clock::wall_clock_secs(), std::process::id());
    for attempt in 0..RUN_DIR_ATTEMPTS_MAX {
        let name = if attempt == 0 { base.clone() } else { format!("{base}-{attempt}") };
        let dir = root.join(name);
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
        }
    }
    bail!("no free run directory under {} after {RUN_DIR_ATTEMPTS_MAX} names; pass --data-dir", root.display())
}

#[cfg(test)]
mod tests {
    use super::new_run_dir;

    #[test]
    fn runs_started_together_get_their_own_directories() {
        let root = tempfile::tempdir().expect("tempdir");
        let dirs: Vec<_> = (0..5).map(|_| new_run_dir(root.path()).expect("run dir")).collect();
        for (i, dir) in dirs.iter().enumerate() {
            assert!(dir.is_dir() && dir.starts_with(root.path()));
            assert!(dirs.iter().skip(i + 1).all(|other| other != dir), "{dir:?} given twice");
        }
    }
}
