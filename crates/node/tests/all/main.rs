//! Integration tests of the node (one binary, to keep link time down).

mod client_share;
mod common;
mod disk_full;
mod event_index;
mod format;
mod hostile_load;
mod jsonrpc_conformance;
mod lez_blocks;
mod lez_rpc;
mod lez_wallet;
mod mempool;
mod node;
mod pipeline;
mod rpc_robustness;
mod spam;
mod stream_index;
