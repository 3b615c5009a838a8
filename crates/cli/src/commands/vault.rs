//! `paystream vault`: vaults hold the owner's funds that streams draw from.

use clap::Subcommand;
use paystreams_client::display;
use paystreams_lez_core::AccountId;
use paystreams_rpc::VaultView;
use serde_json::json;

use super::output::{CmdResult, CommonArgs, Ctx, amount_arg, fields, table};

/// Vaults: init, deposit, withdraw, show, list.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  paystream vault init --owner dev-0 --vault-id 0
  paystream vault deposit --owner dev-0 --vault-id 0 --amount 10000
  paystream vault show --owner dev-0 --vault-id 0
  paystream vault withdraw --owner dev-0 --vault-id 0 --amount 500
  paystream vault init --owner dev-0 --vault-id 1 --token USDX     # a token vault
  paystream vault list --owner dev-0

Only unallocated funds (balance minus what streams hold) can be withdrawn.")]
pub struct VaultArgs {
    #[command(subcommand)]
    pub command: VaultCommand,
}

#[derive(Debug, Subcommand)]
pub enum VaultCommand {
    /// Create a vault (native token, or --token).
    Init {
        /// Owner key.
        #[arg(long)]
        owner: String,
        /// Any number; one owner can have many vaults.
        #[arg(long)]
        vault_id: u64,
        /// Token: NAME (key token-NAME), key name or base58 definition id [default: native].
        #[arg(long)]
        token: Option<String>,
    },
    /// Move funds from the owner (or the owner's token holding) into the vault.
    Deposit {
        /// Owner key.
        #[arg(long)]
        owner: String,
        /// Vault id (per owner).
        #[arg(long)]
        vault_id: u64,
        /// Amount, a whole number.
        #[arg(long, value_parser = amount_arg)]
        amount: u128,
    },
    /// Take unallocated funds out (to the owner, the owner's token holding, or --to).
    Withdraw {
        /// Owner key.
        #[arg(long)]
        owner: String,
        /// Vault id (per owner).
        #[arg(long)]
        vault_id: u64,
        /// Amount, a whole number.
        #[arg(long, value_parser = amount_arg)]
        amount: u128,
        /// Destination account id or key name (token vaults: a holding id) [default: the owner].
        #[arg(long)]
        to: Option<String>,
    },
    /// Show a vault's balance, allocation and next stream id.
    Show {
        /// Owner key name or base58 account id.
        #[arg(long)]
        owner: String,
        /// Vault id (per owner).
        #[arg(long)]
        vault_id: u64,
    },
    /// List an owner's vaults.
    List {
        /// Owner key name or base58 account id.
        #[arg(long)]
        owner: String,
    },
}

pub fn run(args: &VaultArgs, common: &CommonArgs) -> std::process::ExitCode {
    let ctx = Ctx::new(common.clone());
    let result = ctx.block_on(run_inner(&ctx, &args.command));
    ctx.finish(result)
}

pub fn vault_json(v: &VaultView) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or_default()
}

fn vault_fields(v: &VaultView, unit: &str) -> String {
    fields(&[
        ("owner", v.owner.to_string()),
        ("vault id", v.vault_id.to_string()),
        ("token", format!("{unit} (amounts are whole base units)")),
        ("balance", display::amount_in(v.balance.0, unit)),
        ("allocated to streams", display::amount_in(v.total_allocated.0, unit)),
        ("unallocated", display::amount_in(v.unallocated.0, unit)),
        ("next stream id", v.next_stream_id.to_string()),
        ("vault config", v.vault_config.to_string()),
        ("vault holding", v.vault_holding.to_string()),
    ])
}

async fn run_inner(ctx: &Ctx, command: &VaultCommand) -> CmdResult {
    let client = ctx.client()?;
    match command {
        VaultCommand::Init { owner, vault_id, token } => {
            let owner = ctx.key(owner)?;
            let token_id = token.as_deref().map(|t| ctx.token_id(t)).transpose()?;
            let receipt = client.init_vault(&owner.key, *vault_id, token_id).await?;
            let label = token_id.map_or_else(|| "native".to_owned(), |t| t.to_string());
            ctx.tx_done(
                &format!("created vault {vault_id} of {} ({label})", owner.name),
                &receipt,
                json!({ "owner": owner.account_id().to_string(), "vault_id": vault_id, "token_id": label }),
            );
        }
        VaultCommand::Deposit { owner, vault_id, amount } => {
            let owner = ctx.key(owner)?;
            let receipt = client.deposit(&owner.key, *vault_id, *amount).await?;
            let view = client.vault(owner.account_id(), *vault_id).await?;
            let unit = ctx.unit(view.as_ref().map_or("native", |v| v.token_id.as_str()));
            ctx.tx_done(
                &format!(
                    "deposited {} into vault {vault_id}{}",
                    display::amount_in(*amount, &unit),
                    view.as_ref().map_or_else(String::new, |v| format!(
                        " (balance {}, unallocated {})",
                        display::amount(v.balance.0),
                        display::amount(v.unallocated.0)
                    ))
                ),
                &receipt,
                json!({ "amount": amount.to_string(), "vault": view.as_ref().map(vault_json) }),
            );
        }
        VaultCommand::Withdraw { owner, vault_id, amount, to } => {
            let owner = ctx.key(owner)?;
            let to: Option<AccountId> = to.as_deref().map(|t| ctx.account_id(t)).transpose()?;
            let receipt = client.withdraw(&owner.key, *vault_id, *amount, to).await?;
            let view = client.vault(owner.account_id(), *vault_id).await?;
            let unit = ctx.unit(view.as_ref().map_or("native", |v| v.token_id.as_str()));
            ctx.tx_done(
                &format!("withdrew {} from vault {vault_id}", display::amount_in(*amount, &unit)),
                &receipt,
                json!({ "amount": amount.to_string(), "vault": view.as_ref().map(vault_json) }),
            );
        }
        VaultCommand::Show { owner, vault_id } => {
            let owner = ctx.account_id(owner)?;
            let (view, _) = client.require_vault(owner, *vault_id).await?;
            let unit = ctx.unit(&view.token_id);
            ctx.emit(&vault_json(&view), || vault_fields(&view, &unit));
        }
        VaultCommand::List { owner } => {
            let owner_id = ctx.account_id(owner)?;
            let vaults = client.list_vaults(owner_id).await?;
            let value = serde_json::Value::Array(vaults.iter().map(vault_json).collect());
            ctx.emit(&value, || {
                if vaults.is_empty() {
                    return format!(
                        "{owner} has no vaults; create one with `paystream vault init --owner {owner} --vault-id 0`"
                    );
                }
                let names = ctx.names();
                table(
                    &["vault", "token", "balance", "allocated", "unallocated", "streams"],
                    vaults
                        .iter()
                        .map(|v| {
                            vec![
                                v.vault_id.to_string(),
                                display::token_unit(&v.token_id, &names),
                                display::amount(v.balance.0),
                                display::amount(v.total_allocated.0),
                                display::amount(v.unallocated.0),
                                v.next_stream_id.to_string(),
                            ]
                        })
                        .collect(),
                )
            });
        }
    }
    Ok(())
}
