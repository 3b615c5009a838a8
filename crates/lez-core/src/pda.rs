//! Program-derived addresses, exactly as LEZ derives public PDAs:
//! `SHA-256("/LEE/v0.2/AccountId/PDA/" padded to 32 || program_id (32 LE bytes) || seed)`,
//! where a multi-part seed is `SHA-256(part1 || part2 || ...)` of 32-byte parts.

use borsh::{BorshDeserialize, BorshSerialize};

use crate::{AccountId, ProgramId, domain_prefix, sha256};

/// Domain prefix of public PDAs on LEZ's testnet (the older `/NSSA/...` prefix is not what runs).
pub const PDA_PREFIX: [u8; 32] = domain_prefix("/LEE/v0.2/AccountId/PDA/");

/// A 32-byte PDA seed.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, BorshSerialize, BorshDeserialize)]
pub struct PdaSeed(pub [u8; 32]);

impl PdaSeed {
    /// Combines 32-byte seed parts the way SPEL's `compute_pda` does: SHA-256 of their
    /// concatenation.
    #[must_use]
    pub fn from_parts(parts: &[[u8; 32]]) -> Self {
        let slices: Vec<&[u8]> = parts.iter().map(<[u8; 32]>::as_slice).collect();
        Self(sha256(&slices))
    }
}

/// A string literal seed part: ASCII bytes NUL-padded to 32.
///
/// # Panics
/// At compile time when the literal is longer than 32 bytes.
#[must_use]
pub const fn seed_literal(literal: &str) -> [u8; 32] {
    domain_prefix(literal)
}

/// A `u64` seed part: 8 little-endian bytes NUL-padded to 32.
#[must_use]
pub fn seed_u64(value: u64) -> [u8; 32] {
    let mut out = [0_u8; 32];
    out[..8].copy_from_slice(&value.to_le_bytes());
    out
}

impl AccountId {
    /// The public PDA of `program_id` for `seed` (LEZ `AccountId::for_public_pda`).
    #[must_use]
    pub fn for_public_pda(program_id: &ProgramId, seed: &PdaSeed) -> Self {
        Self(sha256(&[&PDA_PREFIX, &program_id.to_bytes(), &seed.0]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_and_integer_seed_parts_are_nul_padded() {
        let literal = seed_literal("vault_config");
        assert_eq!(&literal[..12], b"vault_config");
        assert!(literal[12..].iter().all(|b| *b == 0));
        assert_eq!(seed_literal("\0"), [0; 32]);
        let int = seed_u64(0x0102);
        assert_eq!(&int[..3], &[2, 1, 0]);
        assert!(int[8..].iter().all(|b| *b == 0));
    }
}
