//! `paystream token`: fungible tokens (definitions and holdings).

use clap::Subcommand;
use paystreams_client::{TokenRecipient, display, holding_id};
use paystreams_lez_core::AccountId;
use serde_json::json;

use super::output::{CliError, CmdResult, CommonArgs, Ctx, amount_arg, fields};

/// Fungible tokens. A user's holding of a token is its own account, derived from the user's key
/// and the token id (see docs/cli.md), so `--to alice` means alice's holding of that token.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  paystream token create --key dev-0 --supply 1000000 --name USDX   # definition key saved as token-USDX
  paystream token balance --token USDX dev-0
  paystream token transfer --token USDX --from dev-0 --to dev-1 --amount 500
  paystream token mint --token USDX --to dev-1 --amount 100
  paystream vault init --owner dev-0 --vault-id 1 --token USDX")]
pub struct TokenArgs {
    #[command(subcommand)]
    pub command: TokenCommand,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; the whole supply goes to KEY's holding. The new definition's key is
    /// stored as `token-NAME` (it signs mints).
    Create {
        /// Key that receives the supply.
        #[arg(long)]
        key: String,
        /// Initial supply, a whole number.
        #[arg(long, value_parser = amount_arg)]
        supply: u128,
        /// Token name (at most 32 bytes).
        #[arg(long, default_value = "TKN")]
        name: String,
    },
    /// Mint new tokens to a key's holding (signed by the definition key `token-NAME`).
    Mint {
        /// Token: NAME (for key token-NAME), a key name, or base58 definition id in the keystore.
        #[arg(long)]
        token: String,
        /// Recipient key name (its holding is derived), or an existing holding's base58 id.
        #[arg(long)]
        to: String,
        /// Amount, a whole number.
        #[arg(long, value_parser = amount_arg)]
        amount: u128,
    },
    /// Transfer tokens from a key's holding.
    Transfer {
        /// Token: NAME, key name, or base58 definition id.
        #[arg(long)]
        token: String,
        /// Sending key.
        #[arg(long)]
        from: String,
        /// Recipient key name (its holding is derived and co-signs when new), or an existing
        /// holding's base58 id.
        #[arg(long)]
        to: String,
        /// Amount, a whole number.
        #[arg(long, value_parser = amount_arg)]
        amount: u128,
    },
    /// A key's (or holding's) balance of a token.
    Balance {
        /// Token: NAME, key name, or base58 definition id.
        #[arg(long)]
        token: String,
        /// Key name (its holding is derived) or a holding's base58 id.
        holder: String,
    },
}

pub fn run(args: &TokenArgs, common: &CommonArgs) -> std::process::ExitCode {
    let ctx = Ctx::new(common.clone());
    let result = ctx.block_on(run_inner(&ctx, &args.command));
    ctx.finish(result)
}

async fn run_inner(ctx: &Ctx, command: &TokenCommand) -> CmdResult {
    let client = ctx.client()?;
    match command {
        TokenCommand::Create { key, supply, name } => {
            let holder = ctx.key(key)?;
            let store = ctx.keystore()?;
            let definition_name = format!("token-{name}");
            if store.get(&definition_name).is_ok() {
                return Err(CliError::Usage(format!(
                    "a token named {name} already exists in this keystore (key {definition_name}); pick another --name"
                )));
            }
            let definition = store.generate(&definition_name)?;
            let (receipt, holding) = client.token_create(&definition.key, &holder.key, name, *supply).await?;
            ctx.tx_done(
                &format!(
                    "created token {name}: {} {name} to {}'s holding {holding}",
                    display::amount(*supply),
                    holder.name
                ),
                &receipt,
                json!({
                    "token_id": definition.account_id().to_string(),
                    "token_id_hex": hex::encode(definition.account_id().0),
                    "definition_key": definition_name,
                    "holding": holding.to_string(),
                    "supply": supply.to_string(),
                }),
            );
            if !ctx.common.json {
                outln!("  token id {} (hex {})", definition.account_id(), hex::encode(definition.account_id().0));
            }
        }
        TokenCommand::Mint { token, to, amount } => {
            let definition_id = ctx.token_id(token)?;
            let definition = ctx.keystore()?.resolve(&definition_id.to_string()).map_err(|_| {
                CliError::Usage(format!(
                    "the definition key of token {definition_id} is not in the keystore; only its creator can mint"
                ))
            })?;
            let (receipt, holding) = match ctx.key(to) {
                Ok(user) => {
                    let holding = holding_id(&user.key, &definition_id);
                    (client.token_mint(&definition.key, TokenRecipient::User(&user.key), *amount).await?, holding)
                }
                Err(_) => {
                    let id = to.parse::<AccountId>().map_err(|_| {
                        CliError::Usage(format!("--to {to:?} is neither a key nor a base58 holding id"))
                    })?;
                    (client.token_mint(&definition.key, TokenRecipient::Holding(id), *amount).await?, id)
                }
            };
            let unit = ctx.unit(&definition_id.to_string());
            ctx.tx_done(
                &format!("minted {} to holding {holding}", display::amount_in(*amount, &unit)),
                &receipt,
                json!({ "token_id": definition_id.to_string(), "holding": holding.to_string(), "amount": amount.to_string() }),
            );
        }
        TokenCommand::Transfer { token, from, to, amount } => {
            let definition_id = ctx.token_id(token)?;
            let from = ctx.key(from)?;
            let (recipient, holding) = match ctx.key(to) {
                Ok(user) => (Some(user.key.clone()), holding_id(&user.key, &definition_id)),
                Err(_) => {
                    let id = to.parse::<AccountId>().map_err(|_| {
                        CliError::Usage(format!("--to {to:?} is neither a key nor a base58 holding id"))
                    })?;
                    (None, id)
                }
            };
            let target = recipient.as_ref().map_or(TokenRecipient::Holding(holding), TokenRecipient::User);
            let receipt = client.token_transfer(&from.key, definition_id, target, *amount).await?;
            let unit = ctx.unit(&definition_id.to_string());
            ctx.tx_done(
                &format!(
                    "transferred {} from {}'s holding to {holding}",
                    display::amount_in(*amount, &unit),
                    from.name
                ),
                &receipt,
                json!({
                    "token_id": definition_id.to_string(),
                    "from": holding_id(&from.key, &definition_id).to_string(),
                    "to": holding.to_string(),
                    "amount": amount.to_string(),
                }),
            );
        }
        TokenCommand::Balance { token, holder } => {
            let definition_id = ctx.token_id(token)?;
            let holding = match ctx.key(holder) {
                Ok(user) => holding_id(&user.key, &definition_id),
                Err(_) => holder
                    .parse::<AccountId>()
                    .map_err(|_| CliError::Usage(format!("{holder:?} is neither a key nor a base58 holding id")))?,
            };
            let balance = client.token_balance(holding).await?;
            let value = json!({ "token_id": definition_id.to_string(), "holding": holding.to_string(), "balance": balance.to_string() });
            ctx.emit(&value, || {
                let unit = ctx.unit(&definition_id.to_string());
                fields(&[
                    ("token", format!("{unit} ({definition_id}; amounts are whole base units)")),
                    ("holding", holding.to_string()),
                    ("balance", display::amount_in(balance, &unit)),
                ])
            });
        }
    }
    Ok(())
}
