//! `paystream sim FILE...`: run scenarios (format in `docs/sim.md`).
//!
//! Exit codes: 0 when every scenario ran (failed transactions are data in the output), 2 when a
//! file cannot be read or is not a valid scenario, 1 for an internal failure.

use std::{path::PathBuf, process::ExitCode};

use paystreams_sim::ScenarioError;

/// Exit code for an unreadable or invalid scenario file.
pub const EXIT_BAD_SCENARIO: u8 = 2;

#[derive(Debug, clap::Args)]
pub struct SimArgs {
    /// Scenario files; with several, one JSON document per file is printed, in order.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// Runs every file; stops at the first bad one.
#[must_use]
pub fn run(args: &SimArgs) -> ExitCode {
    for path in &args.files {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) => {
                eprintln!("paystream sim: cannot read {}: {e}", path.display());
                return ExitCode::from(EXIT_BAD_SCENARIO);
            }
        };
        let output = match paystreams_sim::run_scenario(&text) {
            Ok(output) => output,
            Err(e @ ScenarioError::Internal(_)) => {
                eprintln!("paystream sim: {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!("paystream sim: {}: {e}", path.display());
                return ExitCode::from(EXIT_BAD_SCENARIO);
            }
        };
        let rendered = match serde_json::to_string_pretty(&output) {
            Ok(rendered) => rendered,
            Err(e) => {
                eprintln!("paystream sim: cannot render output: {e}");
                return ExitCode::FAILURE;
            }
        };
        outln!("{rendered}");
    }
    ExitCode::SUCCESS
}
