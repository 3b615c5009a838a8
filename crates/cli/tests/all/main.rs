//! Integration tests of the CLI and of the engines against a real node, in one binary (one link
//! of the whole CLI instead of one per file).
//!
//! Two binaries stay on their own: the SIGKILL crash test (`tests/node_crash.rs`), the fault
//! suite's entry point, run alone with its own kill count
//! (`PAYSTREAMS_CRASH_KILLS=50 cargo test --release -p paystream --test node_crash`), and the
//! demo (`tests/demo.rs`), the README's first command, which runs alone as a user runs it.

mod agent_api;
mod agent_js;
mod batch_claims;
mod cli_ux;
mod common;
mod config_ports;
mod eligibility_flow;
mod gate_cli;
mod js_waku;
mod lez_chain;
mod lifecycle;
mod lightpush_js;
mod node_cli;
mod push_cli;
mod readme_walkthrough;
mod store_cli;
mod stream_story;
mod wallet_cli;
