//! `paystream tx show HASH`: what became of a transaction sent earlier (the hash every
//! transaction command prints before waiting).

use clap::Subcommand;
use paystreams_rpc::{HexHash, TxStatus};
use serde_json::json;

use super::output::{CliError, CmdResult, CommonArgs, Ctx, fields};

/// Transactions: show one by its hash.
#[derive(Debug, clap::Args)]
#[command(after_help = "Every transaction command prints `sent transaction HASH; waiting for inclusion` before it
waits; if the command was interrupted or the node stopped answering, look the hash up here.

Examples:
  paystream tx show 6f1c…e2a9")]
pub struct TxArgs {
    #[command(subcommand)]
    pub command: TxCommand,
}

#[derive(Debug, Subcommand)]
pub enum TxCommand {
    /// Whether the transaction was included or failed, in which block, and why it failed; or
    /// that the node does not know it.
    Show {
        /// Transaction hash (64 hex characters).
        hash: String,
    },
}

#[must_use]
pub fn run(args: &TxArgs, common: &CommonArgs) -> std::process::ExitCode {
    let ctx = Ctx::new(common.clone());
    let result = ctx.block_on(async {
        match &args.command {
            TxCommand::Show { hash } => show(&ctx, hash).await,
        }
    });
    ctx.finish(result)
}

async fn show(ctx: &Ctx, text: &str) -> CmdResult {
    let hash: HexHash = text.trim_start_matches("0x").parse().map_err(|_| {
        CliError::Usage(format!("{text:?} is not a transaction hash: give the 64 hex characters the command printed"))
    })?;
    let client = ctx.client()?;
    let Some(receipt) = client.receipt(hash).await? else {
        return Err(CliError::Failed(format!(
            "transaction {hash} is not known to the node at {}: it never reached it, or was lost before a block \
             included it (check the sender's balance and nonce with `paystream account balance` before sending again)",
            ctx.common.rpc
        )));
    };
    let status = match receipt.status {
        TxStatus::Pending => "pending (accepted, not yet in a block)",
        TxStatus::Included => "included",
        TxStatus::Failed => "failed",
    };
    let error = receipt.error.as_ref();
    ctx.emit(
        &json!({
            "tx_hash": receipt.hash.to_string(),
            "status": receipt.status,
            "block_id": receipt.block_id,
            "error": error.map(|e| json!({ "code": e.code, "name": e.name, "message": e.message })),
            "events": receipt.events,
        }),
        || {
            let mut rows = vec![
                ("transaction", receipt.hash.to_string()),
                ("status", status.to_owned()),
                ("block", receipt.block_id.map_or_else(|| "-".to_owned(), |b| b.to_string())),
                ("events", receipt.events.len().to_string()),
            ];
            if let Some(e) = error {
                rows.push(("error", format!("{} {}: {}", e.code, e.name, e.message)));
            }
            fields(&rows)
        },
    );
    Ok(())
}
