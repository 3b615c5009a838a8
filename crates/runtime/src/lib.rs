//! LEZ-shaped state transition for the payment-streams chain.
//!
//! Pure and synchronous: [`Runtime::apply`] checks a signed [`Transaction`] against a
//! [`StateView`], runs the program and its chained calls, enforces every rule LEZ's runtime
//! enforces on program output (nonces, owners, balance debits, data writes, conservation,
//! claims, chained-call authorisation and depth, clock accounts), and returns the
//! [`StateDiff`] and a typed [`Receipt`] — or a [`TxError`] with a stable code, in which case
//! nothing changes. The node decides when to commit ([`State::apply_diff`]).
//!
//! Builtins ([`builtins`]) mirror LEZ's authenticated-transfer, token and clock programs; the
//! payment-streams program is installed alongside them.

#![deny(clippy::arithmetic_side_effects, clippy::indexing_slicing)]

pub mod builtins;
mod error;
pub mod receipt;
mod runtime;
pub mod state;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod transaction;

use paystreams_lez_core::{
    Account, AccountId,
    clock::{CLOCK_ACCOUNT_IDS, ClockAccountData},
    lez_release::BuiltinIds,
};

pub use error::TxError;
/// Parsed signer keys kept for their next transactions (admission's
/// [`TransactionChecks::decode_and_verify`]).
pub use paystreams_sigcheck::KeyCache;
pub use receipt::{Receipt, ReceiptEvent};
pub use runtime::{Applied, BlockContext, Runtime};
pub use state::{Overlay, State, StateDiff, StateView, UnsortedAccounts};
pub use transaction::{
    MAX_ACCOUNTS_PER_TX, MAX_CHAINED_CALLS, MAX_INSTRUCTION_WORDS, MAX_SIGNATURES_PER_TX, MAX_TRANSACTION_BYTES,
    Message, Transaction, TransactionChecks, WitnessSet,
};

/// The genesis state, as LEZ's `new_with_genesis_accounts` builds it, under the default LEZ
/// release's builtin ids: see [`genesis_with`].
#[must_use]
pub fn genesis(funded: &[(AccountId, u128)], timestamp_ms: u64) -> State {
    genesis_with(&BuiltinIds::default(), funded, timestamp_ms)
}

/// The genesis state, as LEZ's `new_with_genesis_accounts` builds it: each funded account owned
/// by authenticated transfer (under `builtins`' id) with its balance (so it can send at once),
/// and the three clock accounts owned by the clock program reading `{block_id: 0, timestamp_ms}`.
///
/// A later entry for the same id replaces an earlier one; clock ids cannot be funded.
#[must_use]
pub fn genesis_with(builtins: &BuiltinIds, funded: &[(AccountId, u128)], timestamp_ms: u64) -> State {
    let mut state = State::new();
    let owner = builtins.authenticated_transfer;
    for (id, balance) in funded {
        state.insert(*id, Account { program_owner: owner, balance: *balance, data: vec![], nonce: 0 });
    }
    // Writing Borsh into a Vec cannot fail.
    let clock_data = borsh::to_vec(&ClockAccountData { block_id: 0, timestamp_ms }).unwrap_or_default();
    for id in CLOCK_ACCOUNT_IDS {
        state.insert(id, Account { program_owner: builtins.clock, balance: 0, data: clock_data.clone(), nonce: 0 });
    }
    state
}
