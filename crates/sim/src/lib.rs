//! Scenario simulator: runs a JSON scenario through the real runtime and payment-streams program
//! and reports the state after every step as JSON (`paystream sim`).
//!
//! The input and output formats are a contract documented in `docs/sim.md`. Parsing and
//! validation happen before anything runs ([`scenario::parse`]), so a bad file is refused as a
//! whole with a message naming the step and field; failing transactions are not errors of the
//! simulator but data in its output.

pub mod chain;
pub mod output;
mod run;
pub mod scenario;

pub use chain::{Chain, Key, KeyDerivationError, Signing, TxFailure};
pub use output::{SimOutput, StepOutput};
pub use paystreams_runtime::testkit::LocalChainError;
pub use scenario::ScenarioError;

/// Parses, validates and runs a scenario.
///
/// # Errors
/// [`ScenarioError`] for a malformed scenario (nothing is run then).
pub fn run_scenario(json: &str) -> Result<SimOutput, ScenarioError> {
    let scenario = scenario::parse(json)?;
    run::run(&scenario)
}
