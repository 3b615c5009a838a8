//! The authenticated-transfer program's interface (native token).
//!
//! Instruction: a Borsh `u128` amount. With one account and amount 0 it initialises (claims) an
//! authorised default account; with two accounts `[sender (authorised), recipient]` it moves
//! native balance, claiming a default recipient (which then must be authorised too).

use crate::ProgramId;

/// The authenticated-transfer program's id: LEZ's, of the default release
/// ([`crate::lez_release::LezRelease::DEFAULT`], the live testnet's). A node started for another
/// release runs it under that release's id ([`crate::lez_release::BuiltinIds`]).
#[must_use]
pub fn authenticated_transfer_program_id() -> ProgramId {
    crate::lez_release::LezRelease::DEFAULT.builtin_ids().authenticated_transfer
}

/// Encodes a transfer (or, with amount 0 and one account, an initialisation).
#[must_use]
pub fn transfer_instruction(amount: u128) -> Vec<u8> {
    amount.to_le_bytes().to_vec()
}
