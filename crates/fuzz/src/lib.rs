//! Fuzzing entry points for paystreams. Each takes arbitrary bytes, is deterministic, never
//! panics on any input, and asserts the invariants of the code it drives: a panic is a bug.
//!
//! - [`wire()`]: every off-chain decoder (LIP-155 messages, the provider advert, Store v3).
//! - [`transaction()`]: signed-transaction decoding, stateless checks and signatures.
//! - [`program()`]: program execution over arbitrary account states, through the runtime and
//!   the pure program.
//! - [`json_rpc()`]: the node's JSON-RPC module over an in-memory chain.
//!
//! `fuzz/` at the repository root runs them under libFuzzer; `tests/feeds.rs` feeds them from
//! proptest and from the seed corpus on stable.

pub mod json_rpc;
pub mod program;
pub mod source;
pub mod transaction;
pub mod wire;

pub use json_rpc::json_rpc;
pub use program::program;
pub use transaction::transaction;
pub use wire::wire;

/// A fuzz entry point.
pub type Entry = fn(&[u8]);

/// The fuzz targets, by name, as `fuzz/fuzz_targets/` names them.
pub const TARGETS: [(&str, Entry); 4] =
    [("wire", wire), ("transaction", transaction), ("program", program), ("json_rpc", json_rpc)];

/// The seed corpus of a target: a few valid inputs, built with the crates' own encoders.
#[must_use]
pub fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    match target {
        "wire" => wire::seeds(),
        "transaction" => transaction::seeds(),
        "program" => program::seeds(),
        "json_rpc" => json_rpc::seeds(),
        _ => vec![],
    }
}

/// `len` bytes determined by `seed` (SHA-256 in counter mode): reproducible pseudo-random input.
#[must_use]
pub fn pseudo_random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut counter = 0_u64;
    while out.len() < len {
        out.extend(paystreams_lez_core::sha256(&[&seed.to_le_bytes(), &counter.to_le_bytes()]));
        counter = counter.wrapping_add(1);
    }
    out.truncate(len);
    out
}
