//! `paystream keys`: the local keystore.

use clap::Subcommand;
use serde_json::json;

use super::output::{CmdResult, CommonArgs, Ctx, fields, table};

/// Manage local keys (one JSON file per key, mode 0600).
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  paystream keys new alice
  paystream keys list
  paystream keys show alice --secret

The node's dev accounts (dev-0, dev-1, ...) are written to the same keystore on first start.")]
pub struct KeysArgs {
    #[command(subcommand)]
    pub command: KeysCommand,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Generate a new key and store it under NAME.
    New {
        /// 1-64 letters, digits, '-', '_' or '.'.
        name: String,
    },
    /// List every key: name and account id.
    List,
    /// Show a key's account id and public key (and the secret key with --secret).
    Show {
        /// Key name or base58 account id.
        name: String,
        /// Also print the secret key (hex). Anyone with it controls the account.
        #[arg(long)]
        secret: bool,
    },
}

pub fn run(args: &KeysArgs, common: &CommonArgs) -> std::process::ExitCode {
    let ctx = Ctx::new(common.clone());
    let result = run_inner(&ctx, &args.command);
    ctx.finish(result)
}

fn run_inner(ctx: &Ctx, command: &KeysCommand) -> CmdResult {
    let store = ctx.keystore()?;
    match command {
        KeysCommand::New { name } => {
            let key = store.generate(name)?;
            let value = json!({
                "name": key.name,
                "account_id": key.account_id().to_string(),
                "public_key": key.key.public_key().to_string(),
                "file": store.dir().join(format!("{name}.json")).display().to_string(),
            });
            ctx.emit(&value, || {
                format!(
                    "created key {name}\n{}",
                    fields(&[
                        ("account id", key.account_id().to_string()),
                        ("public key", key.key.public_key().to_string()),
                        ("file", store.dir().join(format!("{name}.json")).display().to_string()),
                    ])
                )
            });
        }
        KeysCommand::List => {
            let scan = store.scan()?;
            for skipped in &scan.skipped {
                eprintln!("warning: {skipped}");
            }
            let keys = scan.keys;
            let value = json!(
                keys.iter()
                    .map(|k| json!({ "name": k.name, "account_id": k.account_id().to_string() }))
                    .collect::<Vec<_>>()
            );
            ctx.emit(&value, || {
                if keys.is_empty() {
                    return format!("no keys in {}; create one with `paystream keys new NAME`", store.dir().display());
                }
                table(
                    &["name", "account id"],
                    keys.iter().map(|k| vec![k.name.clone(), k.account_id().to_string()]).collect(),
                )
            });
        }
        KeysCommand::Show { name, secret } => {
            let key = store.resolve(name)?;
            let mut value = json!({
                "name": key.name,
                "account_id": key.account_id().to_string(),
                "account_id_hex": hex::encode(key.account_id().0),
                "public_key": key.key.public_key().to_string(),
            });
            if *secret && let Some(object) = value.as_object_mut() {
                object.insert("secret_key".into(), json!(hex::encode(key.key.to_bytes())));
            }
            ctx.emit(&value, || {
                let mut rows = vec![
                    ("name", key.name.clone()),
                    ("account id", key.account_id().to_string()),
                    ("account id (hex)", hex::encode(key.account_id().0)),
                    ("public key", key.key.public_key().to_string()),
                ];
                if *secret {
                    rows.push(("secret key", hex::encode(key.key.to_bytes())));
                }
                fields(&rows)
            });
        }
    }
    Ok(())
}
