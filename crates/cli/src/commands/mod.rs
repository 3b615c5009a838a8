//! Subcommands. Each lives in its own module and returns the process exit code.

pub mod account;
pub mod agent;
pub mod config;
pub mod dashboard;
pub mod demo;
pub mod gate;
pub mod keys;
pub mod node;
pub mod output;
pub mod pda;
pub mod session;
pub mod sim;
pub mod store;
pub mod stream;
pub mod token;
pub mod tx;
pub mod vault;

use std::process::ExitCode;

/// The paystreams command line: local chain, wallet, streams, simulator, demo.
#[derive(Debug, clap::Parser)]
#[command(name = "paystream", version, about, after_help = GLOBAL_HELP)]
pub struct Cli {
    /// Flags every command takes, before or after the subcommand.
    #[command(flatten)]
    pub common: output::CommonArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Run the whole payment-stream lifecycle on an embedded chain, narrated, in one command.
    Demo(demo::DemoArgs),
    /// Run scenario files through the real runtime and print the resulting JSON.
    Sim(sim::SimArgs),
    /// Local keys: new, list, show.
    Keys(keys::KeysArgs),
    /// Native accounts: balance, transfer, init.
    Account(account::AccountArgs),
    /// Fungible tokens: create, mint, transfer, balance.
    Token(token::TokenArgs),
    /// Vaults: init, deposit, withdraw, show, list.
    Vault(vault::VaultArgs),
    /// Payment streams: create, pause, resume, top-up, close, claim, show, list, watch.
    Stream(stream::StreamArgs),
    /// Derive vault-config, vault-holding and stream-config addresses (offline).
    Pda(pda::PdaArgs),
    /// Run the local chain (blocks, storage, JSON-RPC, dev accounts), or --verify a data dir.
    Node(node::NodeArgs),
    /// Serve the live web dashboard: balances, vaults, streams ticking live, charts, provider
    /// view, and confirmed actions (default http://127.0.0.1:8040).
    Dashboard(dashboard::DashboardArgs),
    /// Store v3 history over libp2p, paid by stream: serve, import, query.
    Store(store::StoreArgs),
    /// Paid sessions with providers: list, show, close.
    Session(session::SessionArgs),
    /// The provider side as a local service: a loopback HTTP API any service asks whether a
    /// request is paid (default http://127.0.0.1:8042).
    Gate(gate::GateArgs),
    /// Run the user side as a local service: apps on any stack get the EligibilityProof to
    /// attach to their own requests over a loopback HTTP API (docs/agent.md).
    Agent(agent::AgentArgs),
    /// Transactions: show one by its hash (included, failed, pending, or unknown to the node).
    Tx(tx::TxArgs),
    /// The config file ($PAYSTREAMS_HOME/config.toml): init, show.
    Config(config::ConfigArgs),
}

/// Where settings come from, shown under `paystream --help`.
const GLOBAL_HELP: &str = "The flags above may come before or after the subcommand \
(`paystream --json stream list` = `paystream stream list --json`).

Environment: PAYSTREAMS_RPC (--rpc), PAYSTREAMS_KEYSTORE (--keystore), PAYSTREAMS_CHAIN (--chain),
PAYSTREAMS_HOME (where keys, the chain, sessions, archives and the config file live; default
<user data dir>/paystreams).

Config file: $PAYSTREAMS_HOME/config.toml (rpc, chain, keystore, identity, node_rpc_addr,
dashboard_listen; `paystream config init`, `paystream config show`). Precedence: flags >
environment > config file > defaults.";

/// Dispatches a parsed command line.
#[must_use]
pub fn run(cli: Cli) -> ExitCode {
    let common = &cli.common;
    match cli.command {
        Command::Demo(args) => demo::run(&args),
        Command::Sim(args) => sim::run(&args),
        Command::Keys(args) => keys::run(&args, common),
        Command::Account(args) => account::run(&args, common),
        Command::Token(args) => token::run(&args, common),
        Command::Vault(args) => vault::run(&args, common),
        Command::Stream(args) => stream::run(&args, common),
        Command::Pda(args) => pda::run(&args, common),
        Command::Node(args) => node::run(&args, common),
        Command::Dashboard(args) => dashboard::run(&args, common),
        Command::Store(args) => store::run(&args, common),
        Command::Session(args) => session::run(&args, common),
        Command::Gate(args) => gate::run(&args, common),
        Command::Agent(args) => agent::run(&args, common),
        Command::Tx(args) => tx::run(&args, common),
        Command::Config(args) => config::run(&args, common),
    }
}
