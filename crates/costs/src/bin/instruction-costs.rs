//! Runs payment-streams instructions for callgrind to count.
//!
//! ```text
//! instruction-costs --list     names of every scenario, one per line
//! instruction-costs NAME...    runs the named scenarios, each once
//! instruction-costs            runs every scenario once
//! ```
//!
//! Measure one with
//! `valgrind --tool=callgrind --collect-atstart=no --toggle-collect='paystreams_costs::measure_NAME' instruction-costs NAME`.

use std::process::ExitCode;

use paystreams_costs::{Scenario, scenarios};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let all = scenarios();
    if args.iter().any(|a| a == "--list") {
        for scenario in &all {
            println!("{}", scenario.name);
        }
        return ExitCode::SUCCESS;
    }
    let selected: Vec<&Scenario> = if args.is_empty() {
        all.iter().collect()
    } else {
        let mut selected = Vec::new();
        for name in &args {
            match all.iter().find(|s| s.name == name) {
                Some(scenario) => selected.push(scenario),
                None => {
                    eprintln!("unknown scenario {name:?}; see --list");
                    return ExitCode::FAILURE;
                }
            }
        }
        selected
    };
    for scenario in selected {
        if let Err(error) = run_isolated(scenario) {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
        println!("{} ok", scenario.name);
    }
    ExitCode::SUCCESS
}

/// Runs the scenario on a fresh thread with a fixed stack size. Its stack and its heap arena
/// then start at page-aligned addresses of their own, so the measured region sees the same
/// alignments whatever the process's arguments and environment (the main thread's stack
/// shifts with their size, and that alone moves counts by a few instructions).
fn run_isolated(scenario: &Scenario) -> Result<(), String> {
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("scenario".to_owned())
            .stack_size(STACK_SIZE)
            .spawn_scoped(scope, || scenario.run())
            .map_err(|e| format!("{}: cannot start a thread: {e}", scenario.name))?;
        worker.join().map_err(|_| format!("{}: the scenario panicked", scenario.name))?
    })
}

/// Stack of the scenario thread (set explicitly so `RUST_MIN_STACK` is never read).
const STACK_SIZE: usize = 8 << 20;
