//! LEZ-shaped primitives shared by the payment-streams program, the runtime that executes it,
//! and every off-chain component that names on-chain accounts.
//!
//! The shapes follow the Logos Execution Zone (LEZ) program model: an account is
//! `{program_owner, balance, data, nonce}`, programs receive explicit pre-states and return one
//! post-state per pre-state, ownership moves only through claims, and time comes from clock
//! accounts. Identifier derivations (public account ids, PDAs, clock ids) reproduce LEZ's bytes
//! exactly so addresses computed here name the same accounts on LEZ's own network.

pub mod account;
pub mod clock;
pub mod crypto;
pub mod ids;
pub mod lee_transaction;
pub mod lez_block;
pub mod lez_release;
pub mod pda;
pub mod program;
pub mod reference_instruction;
pub mod risc0_words;
pub mod token;
pub mod transfer;

pub use account::{Account, AccountWithMetadata, DATA_MAX_LENGTH};
pub use ids::{AccountId, IdParseError, ProgramId};
pub use pda::PdaSeed;
pub use program::{AccountPostState, ChainedCall, Claim, ProgramError, ProgramInput, ProgramOutput};

/// Pads an ASCII domain string with NUL bytes to the 32-byte prefix LEZ hashes in front of
/// every domain-separated digest.
///
/// # Panics
/// At compile time (all callers are `const`) when the string is longer than 32 bytes.
#[must_use]
pub const fn domain_prefix(domain: &str) -> [u8; 32] {
    let bytes = domain.as_bytes();
    assert!(bytes.len() <= 32, "domain prefix longer than 32 bytes");
    let mut out = [0_u8; 32];
    let mut i = 0;
    while i < bytes.len() {
        out[i] = bytes[i];
        i += 1;
    }
    out
}

/// SHA-256 over the concatenation of `parts`.
#[must_use]
pub fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    use sha2::Digest as _;
    let mut hasher = sha2::Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}
