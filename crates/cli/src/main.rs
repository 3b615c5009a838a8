//! `paystream`: the paystreams command line.

mod commands;

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = commands::Cli::parse();
    commands::run(cli)
}
