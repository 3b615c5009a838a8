//! System clock accounts: LEZ's clock program rewrites them in the last transaction of a block.

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

use crate::{AccountId, ProgramId};

/// Updated every block.
pub const CLOCK_01_ACCOUNT_ID: AccountId = AccountId(*b"/LEZ/ClockProgramAccount/0000001");
/// Updated every 10th block.
pub const CLOCK_10_ACCOUNT_ID: AccountId = AccountId(*b"/LEZ/ClockProgramAccount/0000010");
/// Updated every 50th block.
pub const CLOCK_50_ACCOUNT_ID: AccountId = AccountId(*b"/LEZ/ClockProgramAccount/0000050");

/// The three clock accounts, in the order the clock program takes them.
pub const CLOCK_ACCOUNT_IDS: [AccountId; 3] = [CLOCK_01_ACCOUNT_ID, CLOCK_10_ACCOUNT_ID, CLOCK_50_ACCOUNT_ID];

/// Cadence (in blocks) of each clock account, same order as [`CLOCK_ACCOUNT_IDS`].
pub const CLOCK_CADENCES: [u64; 3] = [1, 10, 50];

/// Clock account data: Borsh `{block_id: u64, timestamp: u64}` (16 bytes), timestamp in Unix
/// milliseconds.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct ClockAccountData {
    pub block_id: u64,
    pub timestamp_ms: u64,
}

/// The clock program's id: LEZ's, of the default release
/// ([`crate::lez_release::LezRelease::DEFAULT`], the live testnet's). A node started for another
/// release runs it under that release's id ([`crate::lez_release::BuiltinIds`]).
#[must_use]
pub fn clock_program_id() -> ProgramId {
    crate::lez_release::LezRelease::DEFAULT.clock_id()
}

/// The clock program's instruction (LEZ's `clock_core::Instruction = Timestamp = u64`): the
/// block's Unix-millisecond timestamp as RISC Zero serde words (low word, then high word).
#[must_use]
pub fn clock_instruction(timestamp_ms: u64) -> Vec<u32> {
    crate::risc0_words::to_words(&timestamp_ms)
}

/// True when `id` is one of the three system clock accounts.
#[must_use]
pub fn is_clock_account(id: &AccountId) -> bool {
    CLOCK_ACCOUNT_IDS.contains(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_ids_have_the_documented_base58_names() {
        assert_eq!(CLOCK_01_ACCOUNT_ID.to_string(), "4BdcjoXkq786TMWcBGGHqcxeLYMZmn17rL4eM9ZyRWNU");
        assert_eq!(CLOCK_10_ACCOUNT_ID.to_string(), "4BdcjoXkq786TMWcBGGHqcxeLYMZmn17rL4eM9ZyRWSs");
        assert_eq!(CLOCK_50_ACCOUNT_ID.to_string(), "4BdcjoXkq786TMWcBGGHqcxeLYMZmn17rL4eM9ZyRWkX");
    }

    #[test]
    fn clock_data_is_sixteen_bytes() {
        let data = ClockAccountData { block_id: 1, timestamp_ms: 2 };
        assert_eq!(borsh::to_vec(&data).expect("encodes").len(), 16);
    }
}
