//! `paystream account`: native balances and transfers.

use clap::Subcommand;
use paystreams_client::display;
use paystreams_lez_core::{Account, ProgramId, token::token_program_id, transfer::authenticated_transfer_program_id};
use paystreams_program::state::{NATIVE_TOKEN_ID, token_label};
use serde_json::json;

use super::output::{CliError, CmdResult, CommonArgs, Ctx, amount_arg, fields};

/// Native-token accounts: balances, transfers, initialisation.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  paystream account balance dev-0
  paystream account transfer --from dev-0 --to 9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin --amount 1000
  # a never-used recipient must co-sign the transfer that creates it:
  paystream keys new bob
  paystream account transfer --from dev-0 --to bob --to-key bob --amount 1000
  # or be initialised on its own (needed before it can receive stream payouts):
  paystream account init bob")]
pub struct AccountArgs {
    #[command(subcommand)]
    pub command: AccountCommand,
}

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Show an account's native balance, nonce and owner program.
    Balance {
        /// Key name or base58 account id.
        account: String,
    },
    /// Move native balance from a key to an account.
    Transfer {
        /// Sending key (name or account id of a keystore key).
        #[arg(long)]
        from: String,
        /// Recipient: base58 account id or key name.
        #[arg(long)]
        to: String,
        /// Amount, a whole number.
        #[arg(long, value_parser = amount_arg)]
        amount: u128,
        /// Co-sign with the recipient's key: required when the recipient has never been used.
        #[arg(long, value_name = "NAME")]
        to_key: Option<String>,
    },
    /// Initialise a never-used account so it can receive payouts (the key signs).
    Init {
        /// Key name.
        key: String,
    },
}

pub fn run(args: &AccountArgs, common: &CommonArgs) -> std::process::ExitCode {
    let ctx = Ctx::new(common.clone());
    let result = ctx.block_on(run_inner(&ctx, &args.command));
    ctx.finish(result)
}

/// The unit of native balances in human output.
fn native_unit() -> String {
    token_label(&NATIVE_TOKEN_ID)
}

/// The owner program's name; `authenticated_transfer` is the chain's id for it (nodes of
/// different LEZ releases run it under different ids).
fn owner_label(account: &Account, authenticated_transfer: ProgramId) -> String {
    if account.is_default() {
        "none (never used)".to_owned()
    } else if account.program_owner == authenticated_transfer {
        "authenticated_transfer (native account)".to_owned()
    } else if account.program_owner == token_program_id() {
        "token".to_owned()
    } else if account.program_owner == paystreams_program::payment_streams_program_id() {
        "payment_streams".to_owned()
    } else {
        account.program_owner.to_string()
    }
}

async fn run_inner(ctx: &Ctx, command: &AccountCommand) -> CmdResult {
    let client = ctx.client()?;
    match command {
        AccountCommand::Balance { account } => {
            let id = ctx.account_id(account)?;
            let state = client.account(id).await?;
            // Only the human label needs it; a chain that does not name it shows the default.
            let authenticated_transfer =
                client.authenticated_transfer_id().await.unwrap_or_else(|_| authenticated_transfer_program_id());
            let value = json!({
                "account_id": id.to_string(),
                "balance": state.balance.to_string(),
                "nonce": state.nonce.to_string(),
                "program_owner": state.program_owner.to_string(),
                "initialized": !state.is_default(),
            });
            ctx.emit(&value, || {
                fields(&[
                    ("account", id.to_string()),
                    ("balance", display::amount_in(state.balance, &native_unit())),
                    ("nonce", state.nonce.to_string()),
                    ("owner", owner_label(&state, authenticated_transfer)),
                ])
            });
        }
        AccountCommand::Transfer { from, to, amount, to_key } => {
            let from = ctx.key(from)?;
            let to_id = ctx.account_id(to)?;
            let to_key = to_key.as_deref().map(|k| ctx.key(k)).transpose()?;
            if let Some(key) = &to_key
                && key.account_id() != to_id
            {
                return Err(CliError::Usage(format!(
                    "--to-key {} is account {}, but --to is {to_id}; they must be the same account",
                    key.name,
                    key.account_id()
                )));
            }
            let receipt = client.transfer(&from.key, to_id, *amount, to_key.as_ref().map(|k| &k.key)).await?;
            ctx.tx_done(
                &format!("transferred {} from {} to {to_id}", display::amount_in(*amount, &native_unit()), from.name),
                &receipt,
                json!({ "from": from.account_id().to_string(), "to": to_id.to_string(), "amount": amount.to_string() }),
            );
        }
        AccountCommand::Init { key } => {
            let key = ctx.key(key)?;
            let receipt = client.init_account(&key.key).await?;
            ctx.tx_done(
                &format!("initialised {} ({})", key.name, key.account_id()),
                &receipt,
                json!({ "account_id": key.account_id().to_string() }),
            );
        }
    }
    Ok(())
}
