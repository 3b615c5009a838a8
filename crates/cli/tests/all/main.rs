//! Integration tests of the CLI and of the engines against a real node, in one binary (one link
//! of the whole CLI instead of one per file).
//!
//! The SIGKILL crash test stays a binary of its own (`tests/node_crash.rs`): it is the fault
//! suite's entry point, run alone with its own kill count
//! (`PAYSTREAMS_CRASH_KILLS=50 cargo test --release -p paystream --test node_crash`).

mod common;
mod demo;
mod eligibility_flow;
mod lifecycle;
mod store_cli;
mod wallet_cli;
