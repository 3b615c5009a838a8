//! `paystream pda`: derive the program's account addresses offline.

use paystreams_lez_core::{AccountId, ProgramId};
use paystreams_program::{payment_streams_program_id, pda::derive_addresses};
use serde_json::json;

use super::output::{CliError, CmdResult, CommonArgs, Ctx, fields};

/// Derive vault-config, vault-holding and stream-config addresses (LEZ's PDA derivation, so they
/// name the same accounts on LEZ's own network). Offline: no node needed.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  # the reference deployment on the LEZ testnet
  paystream pda --program-id 9d88f2e7498ae25caa3a5d829a3d1ed39f08673ba90987333074b965a81b90f8 \\
      --owner DkT97NZPog2attaFURoMUFU5m996QtDnsS53PSnx41oG --vault-id 0 --stream-id 0
  # this chain's program, a token vault
  paystream pda --owner alice --vault-id 1 --token-id <64 hex chars>")]
pub struct PdaArgs {
    /// Program id, 64 hex characters [default: this chain's payment-streams program].
    #[arg(long, value_name = "HEX")]
    pub program_id: Option<String>,
    /// Vault owner: base58 account id or a keystore key name.
    #[arg(long, value_name = "BASE58")]
    pub owner: String,
    #[arg(long, value_name = "N")]
    pub vault_id: u64,
    /// Also derive this stream's config address.
    #[arg(long, value_name = "N")]
    pub stream_id: Option<u64>,
    /// Token definition id, 64 hex characters (or base58) [default: native, all zeros].
    #[arg(long, value_name = "HEX")]
    pub token_id: Option<String>,
}

fn parse_token(text: &str) -> CmdResult<[u8; 32]> {
    let trimmed = text.trim().strip_prefix("0x").unwrap_or(text.trim());
    if let Ok(bytes) = hex::decode(trimmed) {
        let len = bytes.len();
        return bytes
            .try_into()
            .map_err(|_| CliError::Usage(format!("--token-id is {len} bytes; it must be 32 (64 hex characters)")));
    }
    trimmed
        .parse::<AccountId>()
        .map(|id| id.0)
        .map_err(|e| CliError::Usage(format!("--token-id {text:?} is neither 64 hex characters nor a base58 id: {e}")))
}

pub fn run(args: &PdaArgs, common: &CommonArgs) -> std::process::ExitCode {
    let ctx = Ctx::new(common.clone());
    let result = run_inner(&ctx, args);
    ctx.finish(result)
}

fn run_inner(ctx: &Ctx, args: &PdaArgs) -> CmdResult {
    let program_id = match &args.program_id {
        Some(text) => text
            .parse::<ProgramId>()
            .map_err(|e| CliError::Usage(format!("--program-id {text:?} is not 64 hex characters: {e}")))?,
        None => payment_streams_program_id(),
    };
    let owner = ctx.account_id(&args.owner)?;
    let token_id = args.token_id.as_deref().map(parse_token).transpose()?.unwrap_or([0; 32]);
    let addresses = derive_addresses(&program_id, &owner, args.vault_id, &token_id, args.stream_id);
    let pair = |id: AccountId| json!({ "base58": id.to_string(), "hex": hex::encode(id.0) });
    let value = json!({
        "program_id": program_id.to_string(),
        "owner": owner.to_string(),
        "vault_id": args.vault_id,
        "token_id": hex::encode(token_id),
        "vault_config": pair(addresses.vault_config),
        "vault_holding": pair(addresses.vault_holding),
        "stream_id": args.stream_id,
        "stream_config": addresses.stream_config.map(pair),
    });
    ctx.emit(&value, || {
        let mut rows = vec![
            ("vault config", addresses.vault_config.to_string()),
            ("  hex", hex::encode(addresses.vault_config.0)),
            ("vault holding", addresses.vault_holding.to_string()),
            ("  hex", hex::encode(addresses.vault_holding.0)),
        ];
        if let Some(stream) = addresses.stream_config {
            rows.push(("stream config", stream.to_string()));
            rows.push(("  hex", hex::encode(stream.0)));
        }
        fields(&rows)
    });
    Ok(())
}
