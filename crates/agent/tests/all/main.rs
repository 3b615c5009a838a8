//! Integration tests of the agent crate, in one binary. The agent against a real node, a
//! real provider and an app is tested through the `paystream` binary
//! (`crates/cli/tests/all/agent_api.rs`).

mod routes;
