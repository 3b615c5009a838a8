//! `paystream demo`: one command, nothing else to start. Runs the embedded chain in-process and
//! walks a user and a provider through a stream's whole on-chain lifecycle, narrating each step
//! and checking that the final balances add up exactly.
//!
//! The Store service and the off-chain eligibility flow join this demo as they land; today it
//! covers funded accounts, vault deposit, stream creation, live accrual, pause and resume, a
//! claim, a provider close, the final claim and withdrawal.

use std::{path::PathBuf, process::ExitCode};

use anyhow::{bail, Context as _};
use paystreams_lez_core::{crypto::SecretKey, transfer::authenticated_transfer_program_id, AccountId};
use paystreams_program::{
    client::{self as calls, Call, VaultRef},
    payment_streams_program_id,
    state::VaultPrivacyTier,
    ExtensionSettings,
};
use paystreams_client::Client;
use paystreams_rpc::{ReceiptInfo, StreamView, VaultView};

const DEPOSIT: u128 = 10_000;
const RATE: u64 = 5;
const ALLOCATION: u128 = 3_000;

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Keep the chain running after the walkthrough (for the CLI and dashboard) until Ctrl-C.
    #[arg(long)]
    pub keep_running: bool,
    /// Where the demo chain is stored (default: a new directory under the paystreams home).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// RPC address of the demo chain; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR")]
    pub rpc_addr: std::net::SocketAddr,
}

#[must_use]
pub fn run(args: &DemoArgs) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
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

struct Demo {
    client: Client,
}

impl Demo {
    async fn send(&self, call: Call, signers: &[&SecretKey]) -> anyhow::Result<ReceiptInfo> {
        Ok(self.client.submit(&call, signers).await?)
    }

    async fn balance(&self, id: AccountId) -> anyhow::Result<u128> {
        Ok(self.client.balance(id).await?)
    }

    async fn vault(&self, vault: &VaultRef) -> anyhow::Result<VaultView> {
        self.client.vault(vault.owner, vault.vault_id).await?.context("the demo vault is missing")
    }

    async fn stream(&self, vault: &VaultRef) -> anyhow::Result<StreamView> {
        self.client.stream(vault.owner, vault.vault_id, 0).await?.context("the demo stream is missing")
    }

    async fn advance(&self, seconds: u64) -> anyhow::Result<()> {
        self.client.advance_time(seconds).await?;
        Ok(())
    }
}

fn step(n: u32, text: &str) {
    println!("\n[{n}] {text}");
}

fn show_stream(stream: &StreamView) {
    println!(
        "    stream 0: {:?}, rate {}/s, allocation {}, accrued {}, unaccrued {}{}",
        stream.state,
        stream.rate,
        stream.allocation.0,
        stream.accrued.0,
        stream.unaccrued.0,
        stream.planned_stop.map(|t| format!(", stops accruing in {} s", t.saturating_sub(stream.as_of))).unwrap_or_default()
    );
}

async fn demo(args: &DemoArgs) -> anyhow::Result<()> {
    let data_dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => {
            let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
            paystreams_client::keystore::default_home().join("demo").join(format!("run-{stamp}"))
        }
    };
    println!("paystreams demo: a payment stream from a user to a provider, on an embedded chain.");
    println!("Chain data: {}", data_dir.display());
    let config = paystreams_node::NodeConfig {
        data_dir: Some(data_dir.join("chain")),
        rpc_addr: args.rpc_addr,
        automine: true,
        dev: true,
        dev_accounts: 2,
        keystore_dir: Some(data_dir.join("keystore")),
        ..paystreams_node::NodeConfig::default()
    };
    let node = paystreams_node::start(config).await.context("starting the embedded chain")?;
    let demo = Demo { client: Client::connect(&node.rpc_url()).context("connecting to the chain")? };
    let keys = node.dev_keys();
    let (Some(user), Some(provider)) = (keys.first().cloned(), keys.get(1).cloned()) else {
        bail!("the demo chain has no dev accounts (was {} started before with --dev-accounts 0?)", data_dir.display());
    };
    let program = payment_streams_program_id();
    let vault = VaultRef::native(program, user.account_id(), next_vault_id(&demo, &user).await?);

    step(1, "Funded accounts");
    let user_start = demo.balance(user.account_id()).await?;
    let provider_start = demo.balance(provider.account_id()).await?;
    println!("    user     {}  balance {user_start}", user.account_id());
    println!("    provider {}  balance {provider_start}", provider.account_id());
    println!("    chain RPC {}", node.rpc_url());

    step(2, &format!("The user opens vault {} and deposits {DEPOSIT}", vault.vault_id));
    demo.send(calls::initialize_vault(&vault, VaultPrivacyTier::Public), &[&user]).await?;
    demo.send(calls::deposit(&vault, DEPOSIT, authenticated_transfer_program_id(), None), &[&user]).await?;
    let view = demo.vault(&vault).await?;
    println!("    vault balance {}, unallocated {}", view.balance.0, view.unallocated.0);

    step(3, &format!("The user streams to the provider: {RATE} per second, allocation {ALLOCATION}"));
    demo.send(calls::create_stream(&vault, 0, provider.account_id(), RATE, ALLOCATION, ExtensionSettings::default()), &[&user]).await?;
    show_stream(&demo.stream(&vault).await?);

    step(4, "Sixty seconds of service pass: the stream accrues, lazily, at chain time");
    demo.advance(60).await?;
    let stream = demo.stream(&vault).await?;
    show_stream(&stream);

    step(5, "The provider claims what has accrued so far");
    let receipt = demo.send(calls::claim(&vault, 0, provider.account_id(), None, None), &[&provider]).await?;
    println!("    included in block {}; provider balance {}", receipt.block_id.unwrap_or_default(), demo.balance(provider.account_id()).await?);

    step(6, "The user pauses the stream; a hundred seconds pass without accrual; the user resumes");
    demo.send(calls::pause_stream(&vault, 0), &[&user]).await?;
    let before = demo.stream(&vault).await?.accrued.0;
    demo.advance(100).await?;
    let after = demo.stream(&vault).await?.accrued.0;
    println!("    accrued while paused: {} -> {}", before, after);
    if before != after {
        bail!("a paused stream accrued");
    }
    demo.send(calls::resume_stream(&vault, 0), &[&user]).await?;
    demo.advance(30).await?;
    show_stream(&demo.stream(&vault).await?);

    step(7, "The provider stops serving and closes the stream: unaccrued funds return to the vault");
    demo.send(calls::close_stream_by_provider(&vault, 0, provider.account_id(), None, None), &[&provider]).await?;
    show_stream(&demo.stream(&vault).await?);

    step(8, "The provider claims the rest; the user withdraws everything left in the vault");
    demo.send(calls::claim(&vault, 0, provider.account_id(), None, None), &[&provider]).await?;
    let view = demo.vault(&vault).await?;
    demo.send(calls::withdraw(&vault, view.unallocated.0, None), &[&user]).await?;

    step(9, "Final balances");
    let user_end = demo.balance(user.account_id()).await?;
    let provider_end = demo.balance(provider.account_id()).await?;
    let vault_end = demo.vault(&vault).await?.balance.0;
    let paid = provider_end.checked_sub(provider_start).context("provider balance went down")?;
    let spent = user_start.checked_sub(user_end).context("user balance went up")?;
    println!("    user     {user_end} (spent {spent})");
    println!("    provider {provider_end} (earned {paid}: {} s of service at {RATE}/s)", paid / u128::from(RATE));
    println!("    vault    {vault_end}");
    if spent != paid || vault_end != 0 || paid == 0 {
        bail!("balances do not add up: user spent {spent}, provider earned {paid}, vault holds {vault_end}");
    }
    println!("    user spent exactly what the provider earned; nothing was created or lost.");

    if args.keep_running {
        println!("\nThe chain keeps running at {} (data in {}). Press Ctrl-C to stop.", node.rpc_url(), data_dir.display());
        println!("Try: paystream --rpc {} stream list --owner {}", node.rpc_url(), user.account_id());
        tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
    }
    node.shutdown().await;
    println!("\nDemo complete. Chain data left for inspection in {}", data_dir.display());
    Ok(())
}

/// The first vault id the user does not have yet, so the demo can run again on the same data.
async fn next_vault_id(demo: &Demo, user: &SecretKey) -> anyhow::Result<u64> {
    let vaults = demo.client.list_vaults(user.account_id()).await?;
    Ok(vaults.iter().map(|v| v.vault_id).max().map_or(0, |m| m.saturating_add(1)))
}
