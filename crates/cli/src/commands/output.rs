//! Shared pieces of the wallet commands: common flags, output (tables or JSON), the spinner,
//! name resolution, and errors mapped to exit codes.

use std::{
    collections::BTreeMap, future::Future, io::IsTerminal as _, path::PathBuf, process::ExitCode, sync::Arc,
    time::Duration,
};

use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use indicatif::{ProgressBar, ProgressStyle};
use paystreams_client::{
    Client, ClientError, DEFAULT_RPC_URL, Keystore, KeystoreError, NamedKey, Progress, ProgressFn,
    default_keystore_dir,
    display::{self, ChainClock},
    parse_amount,
};
use paystreams_lez_core::AccountId;
use paystreams_rpc::{
    ReceiptInfo,
    clock::wall_clock_secs,
    remote::{
        ChainAccess, Dialect,
        lez::{DEFAULT_DROP_AFTER_BLOCKS, DEFAULT_POLL_INTERVAL, DEFAULT_SCAN_BLOCKS, LezSettings},
    },
};
use serde_json::{Value, json};

/// Exit code when the operation failed: a transaction failed or was refused, or something
/// named does not exist.
pub const EXIT_FAILED: u8 = 1;
/// Exit code for arguments that parse but make no sense (clap's own usage errors also exit 2).
pub const EXIT_USAGE: u8 = 2;
/// Exit code when the node cannot be reached.
pub const EXIT_UNREACHABLE: u8 = 3;
/// Exit code when stdout was closed by its reader (`paystream … | head -1`): the output ends
/// quietly, with the code a shell reports for a program ended by SIGPIPE (128 + 13).
pub const EXIT_BROKEN_PIPE: u8 = 141;

/// Writes command output to stdout (see the `outln!` macro). A reader that closed the pipe
/// ends the process quietly with [`EXIT_BROKEN_PIPE`]; any other write failure is reported on
/// stderr and exits with [`EXIT_FAILED`].
pub fn write_stdout(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    let written = stdout.write_fmt(args).and_then(|()| stdout.flush());
    if let Err(e) = written {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(i32::from(EXIT_BROKEN_PIPE));
        }
        eprintln!("error: cannot write to stdout: {e}");
        std::process::exit(i32::from(EXIT_FAILED));
    }
}

/// Flags every wallet command takes (also after the subcommand).
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// The node's JSON-RPC URL.
    #[arg(long, global = true, env = "PAYSTREAMS_RPC", default_value = DEFAULT_RPC_URL, value_name = "URL")]
    pub rpc: String,
    /// Keystore directory [default: $PAYSTREAMS_HOME/keystore, else <user data dir>/paystreams/keystore].
    #[arg(long, global = true, env = "PAYSTREAMS_KEYSTORE", value_name = "DIR")]
    pub keystore: Option<PathBuf>,
    /// Print JSON on stdout instead of tables (u128 amounts as decimal strings); no spinner.
    #[arg(long, global = true)]
    pub json: bool,
    /// What answers at --rpc.
    #[arg(long, global = true, env = "PAYSTREAMS_CHAIN", value_enum, default_value_t = ChainArg::Paystreams)]
    pub chain: ChainArg,
    /// With --chain lez: report a transaction dropped when this many blocks were produced after
    /// it was sent without including it (a LEZ sequencer keeps no record of failed
    /// transactions).
    #[arg(long, global = true, env = "PAYSTREAMS_LEZ_DROP_AFTER_BLOCKS", value_name = "BLOCKS",
          default_value_t = DEFAULT_DROP_AFTER_BLOCKS, value_parser = clap::value_parser!(u64).range(1..))]
    pub lez_drop_after_blocks: u64,
    /// With --chain lez: how often long-running commands (store serve, gate) poll for new blocks
    /// to follow the chain, in milliseconds.
    #[arg(long, global = true, env = "PAYSTREAMS_LEZ_POLL_MS", value_name = "MS",
          default_value_t = u64::try_from(DEFAULT_POLL_INTERVAL.as_millis()).unwrap_or(500),
          value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub lez_poll_ms: u64,
    /// With --chain lez: how many recent blocks `vault list` and `stream list` scan (LEZ has no
    /// listing method; vaults and streams created earlier are not listed).
    #[arg(long, global = true, env = "PAYSTREAMS_LEZ_SCAN_BLOCKS", value_name = "BLOCKS",
          default_value_t = DEFAULT_SCAN_BLOCKS, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub lez_scan_blocks: u64,
    /// Where each effective setting came from (filled by `config::parse_command_line`).
    #[arg(skip)]
    pub sources: super::config::Sources,
}

/// The two kinds of chain endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ChainArg {
    /// A paystreams node (`paystream node`): receipts, decoded vault and stream views, event
    /// subscriptions, dev methods.
    Paystreams,
    /// A LEZ sequencer, or `paystream node --rpc-methods lez`: LEZ's methods only. Views are
    /// folded locally from getAccount, inclusion is polled with getTransaction (a failed
    /// transaction is reported dropped), events come from polled blocks, listing scans the last
    /// --lez-scan-blocks blocks. Dev time control is refused.
    Lez,
}

impl CommonArgs {
    /// How to speak to the chain at `--rpc`.
    #[must_use]
    pub fn chain_access(&self) -> ChainAccess {
        ChainAccess {
            dialect: match self.chain {
                ChainArg::Paystreams => Dialect::Paystreams,
                ChainArg::Lez => Dialect::Lez,
            },
            lez: LezSettings {
                drop_after_blocks: self.lez_drop_after_blocks,
                poll_interval: Duration::from_millis(self.lez_poll_ms),
                scan_blocks: self.lez_scan_blocks,
                ..LezSettings::default()
            },
        }
    }
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Keystore(#[from] KeystoreError),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Failed(String),
}

impl CliError {
    fn exit_code(&self) -> u8 {
        match self {
            Self::Client(error) if error.is_unreachable() => EXIT_UNREACHABLE,
            Self::Usage(_) | Self::Keystore(KeystoreError::InvalidName(_) | KeystoreError::NotFound { .. }) => {
                EXIT_USAGE
            }
            _ => EXIT_FAILED,
        }
    }

    fn to_json(&self) -> Value {
        match self {
            Self::Client(ClientError::Transaction(failure)) => json!({ "error": {
                "code": failure.code,
                "name": failure.name,
                "message": failure.explanation,
                "detail": failure.message,
                "tx_hash": failure.hash.map(|h| h.to_string()),
                "block_id": failure.block_id,
                "preflight": failure.is_preflight(),
            }}),
            Self::Client(error) => match error.tx_hash() {
                Some(hash) => json!({ "error": { "message": error.to_string(), "tx_hash": hash.to_string() } }),
                None => json!({ "error": { "message": error.to_string() } }),
            },
            other => json!({ "error": { "message": other.to_string() } }),
        }
    }
}

/// Result of a command.
pub type CmdResult<T = ()> = Result<T, CliError>;

/// Parses an amount argument (for clap's `value_parser`).
///
/// # Errors
/// The amount parser's message.
pub fn amount_arg(text: &str) -> Result<u128, String> {
    parse_amount(text).map_err(|e| e.to_string())
}

/// Everything a command needs: flags, keystore, client, spinner, output.
pub struct Ctx {
    pub common: CommonArgs,
    spinner: Option<ProgressBar>,
}

impl Ctx {
    #[must_use]
    pub fn new(common: CommonArgs) -> Self {
        let spinner = (!common.json && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::hidden();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg}").unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar
        });
        Self { common, spinner }
    }

    pub fn keystore(&self) -> CmdResult<Keystore> {
        let dir = self.common.keystore.clone().unwrap_or_else(default_keystore_dir);
        Ok(Keystore::open(dir)?)
    }

    pub fn key(&self, name_or_id: &str) -> CmdResult<NamedKey> {
        Ok(self.keystore()?.resolve(name_or_id)?)
    }

    /// A base58 account id, or the account of a keystore key.
    pub fn account_id(&self, name_or_id: &str) -> CmdResult<AccountId> {
        if let Ok(id) = name_or_id.parse::<AccountId>() {
            return Ok(id);
        }
        Ok(self.key(name_or_id)?.account_id())
    }

    /// A token definition: base58 id, a keystore key, or `NAME` for the key `token-NAME`.
    pub fn token_id(&self, text: &str) -> CmdResult<AccountId> {
        if let Ok(id) = text.parse::<AccountId>() {
            return Ok(id);
        }
        let store = self.keystore()?;
        match store.get(text) {
            Ok(key) => Ok(key.account_id()),
            Err(KeystoreError::NotFound { .. }) => match store.get(&format!("token-{text}")) {
                Ok(key) => Ok(key.account_id()),
                Err(_) => Err(CliError::Usage(format!(
                    "{text:?} is neither a base58 token id nor a key in {} (tried {text:?} and \"token-{text}\"); \
                     create a token with `paystream token create`",
                    store.dir().display()
                ))),
            },
            Err(e) => Err(e.into()),
        }
    }

    /// Keystore names by account (empty when the keystore cannot be read): how accounts and
    /// tokens are named in human output.
    #[must_use]
    pub fn names(&self) -> BTreeMap<AccountId, String> {
        self.keystore()
            .and_then(|store| Ok(store.list()?))
            .map(|keys| keys.into_iter().map(|k| (k.account_id(), k.name)).collect())
            .unwrap_or_default()
    }

    /// The unit amounts of `token` (a view's token label) are counted in, for human output.
    #[must_use]
    pub fn unit(&self, token: &str) -> String {
        display::token_unit(token, &self.names())
    }

    /// The chain's clock next to this machine's, from a chain time just read.
    #[must_use]
    pub fn clock(chain_secs: u64) -> ChainClock {
        ChainClock::new(chain_secs, wall_clock_secs())
    }

    /// The client, with keystore names for explanations and the spinner wired to progress. The
    /// hash of every transaction sent is printed on stderr before waiting for its inclusion, so
    /// it is known even if the node dies while the command waits.
    pub fn client(&self) -> CmdResult<Client> {
        let mut client = Client::connect_via(&self.common.rpc, &self.common.chain_access())?;
        if let Ok(store) = self.keystore()
            && let Ok(keys) = store.list()
        {
            client.set_names(keys.into_iter().map(|k| (k.account_id(), k.name)).collect::<BTreeMap<_, _>>());
        }
        let spinner = self.spinner.clone();
        let callback: ProgressFn = Arc::new(move |progress| {
            if matches!(progress, Progress::Sent { .. }) {
                let line = || eprintln!("{progress}");
                match &spinner {
                    Some(bar) if !bar.is_hidden() => bar.suspend(line),
                    _ => line(),
                }
            }
            if let Some(bar) = &spinner {
                if bar.is_hidden() {
                    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                    bar.enable_steady_tick(Duration::from_millis(100));
                }
                bar.set_message(progress.to_string());
            }
        });
        client.set_progress(Some(callback));
        Ok(client)
    }

    fn clear_spinner(&self) {
        if let Some(bar) = &self.spinner {
            bar.finish_and_clear();
        }
    }

    /// Prints `json` with --json, else the human text.
    pub fn emit(&self, json: &Value, human: impl FnOnce() -> String) {
        self.clear_spinner();
        if self.common.json {
            outln!("{}", serde_json::to_string_pretty(json).unwrap_or_default());
        } else {
            outln!("{}", human());
        }
    }

    /// Prints the outcome of a transaction: `what` happened, plus `extra` fields.
    pub fn tx_done(&self, what: &str, receipt: &ReceiptInfo, extra: Value) {
        let mut object = json!({
            "tx_hash": receipt.hash.to_string(),
            "block_id": receipt.block_id,
            "status": receipt.status,
            "events": receipt.events,
        });
        if let (Some(target), Value::Object(more)) = (object.as_object_mut(), extra) {
            target.extend(more);
        }
        self.emit(&object, || {
            format!(
                "✓ {what}\n  tx {} in block {}",
                receipt.hash,
                receipt.block_id.map_or_else(|| "?".to_owned(), |b| b.to_string())
            )
        });
    }

    /// Runs an async command body on a fresh runtime.
    pub fn block_on<T>(&self, future: impl Future<Output = CmdResult<T>>) -> CmdResult<T> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| CliError::Failed(format!("cannot start the async runtime: {e}")))?;
        runtime.block_on(future)
    }

    /// Reports the result as an exit code (errors on stderr, and as JSON on stdout with --json).
    #[must_use]
    pub fn finish(&self, result: CmdResult) -> ExitCode {
        self.clear_spinner();
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                if self.common.json {
                    outln!("{}", serde_json::to_string_pretty(&error.to_json()).unwrap_or_default());
                }
                eprintln!("error: {error}");
                ExitCode::from(error.exit_code())
            }
        }
    }
}

/// A two-column table of fields.
#[must_use]
pub fn fields(rows: &[(&str, String)]) -> String {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Dynamic);
    for (name, value) in rows {
        table.add_row(vec![(*name).to_owned(), value.clone()]);
    }
    table.to_string()
}

/// A table with a header row.
#[must_use]
pub fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.to_vec());
    for row in rows {
        table.add_row(row);
    }
    table.to_string()
}
