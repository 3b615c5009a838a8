//! Subcommands. Each lives in its own module and returns the process exit code.

pub mod sim;

use std::process::ExitCode;

/// The paystreams command line: local chain, wallet, streams, simulator, demo.
#[derive(Debug, clap::Parser)]
#[command(name = "paystream", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Run scenario files through the real runtime and print the resulting JSON.
    Sim(sim::SimArgs),
}

/// Dispatches a parsed command line.
#[must_use]
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Sim(args) => sim::run(&args),
    }
}
