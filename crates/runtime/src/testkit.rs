//! A single-writer chain in memory over the real runtime, for tests, the simulator and the
//! harnesses (feature `testkit`).
//!
//! [`LocalChain`] holds the installed programs, the state and the current block: genesis with
//! native balances at a chain time in seconds, [`LocalChain::advance_to`] opening the next block
//! (the clock program runs, as the sequencer does), transactions built from the signers' current
//! nonces and signed as [`Signing`] says, and [`LocalChain::apply`] committing a transaction's
//! diff when the runtime accepts it. A refused transaction changes nothing.
//!
//! The fields stay private; tests that need a state no transaction can reach write it with
//! [`LocalChain::put`] or [`LocalChain::state_mut`].

use paystreams_lez_core::{
    Account, AccountId, ProgramId,
    crypto::{PublicKey, SecretKey, Signature},
};
use paystreams_program::client::Call;

use crate::{Applied, BlockContext, Message, Runtime, State, StateView as _, Transaction, TxError, WitnessSet};

/// Why the chain could not open a block (a transaction's own refusal is a [`TxError`]).
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum LocalChainError {
    #[error("chain time {secs} s overflows milliseconds")]
    TimeOverflow { secs: u64 },
    #[error("chain time would go backwards from {now_secs} s to {secs} s; blocks only move forward")]
    TimeBackwards { now_secs: u64, secs: u64 },
    #[error("block height overflows 64 bits")]
    HeightOverflow,
    #[error("clock update refused: {} {}", .0.code(), .0.name())]
    ClockRefused(TxError),
}

/// How [`LocalChain`] authorises the transactions it builds.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum Signing {
    /// Real BIP-340 signatures with fresh auxiliary randomness, verified by [`Runtime::apply`].
    #[default]
    Real,
    /// Real BIP-340 signatures with this fixed auxiliary randomness, so every transaction (and
    /// its hash) is the same on every run; verified by [`Runtime::apply`].
    Fixed([u8; 32]),
    /// Placeholder signatures, executed with [`Runtime::apply_verified`]: for property tests,
    /// where signature checking (tested elsewhere) would dominate the cost.
    Trusted,
}

impl Signing {
    /// Signs `message` with each signer, in order (the message's nonces follow the same order).
    #[must_use]
    pub fn sign<S: Signer + ?Sized>(self, message: Message, signers: &[&S]) -> Transaction {
        let signatures_and_public_keys = match self {
            Self::Real => {
                let hash = message.hash();
                signers.iter().map(|k| (k.secret_key().sign(&hash), k.public_key())).collect()
            }
            Self::Fixed(aux) => {
                let hash = message.hash();
                signers.iter().map(|k| (k.secret_key().sign_with_aux(&hash, &aux), k.public_key())).collect()
            }
            Self::Trusted => signers.iter().map(|k| (Signature([0; 64]), k.public_key())).collect(),
        };
        Transaction { message, witness_set: WitnessSet { signatures_and_public_keys } }
    }
}

/// A transaction signer. Implementations that cache the public key and account id spare the
/// elliptic-curve work on every transaction.
pub trait Signer {
    /// The secret key (used by [`Signing::Real`] and [`Signing::Fixed`]).
    fn secret_key(&self) -> &SecretKey;

    /// The public key.
    fn public_key(&self) -> PublicKey {
        self.secret_key().public_key()
    }

    /// The signer's account, whose nonce the transaction carries.
    fn account_id(&self) -> AccountId {
        self.public_key().account_id()
    }
}

impl Signer for SecretKey {
    fn secret_key(&self) -> &SecretKey {
        self
    }
}

/// The chain: installed programs, state, and the current block.
#[derive(Clone, Debug)]
pub struct LocalChain {
    runtime: Runtime,
    state: State,
    block_id: u64,
    timestamp_ms: u64,
    signing: Signing,
}

impl LocalChain {
    /// Genesis ([`crate::genesis`]) with `funded` native balances at chain time `time_secs`,
    /// block 0, the standard programs, [`Signing::Real`].
    ///
    /// # Errors
    /// [`LocalChainError::TimeOverflow`] when `time_secs` does not fit in milliseconds.
    pub fn new(funded: &[(AccountId, u128)], time_secs: u64) -> Result<Self, LocalChainError> {
        let timestamp_ms = secs_to_ms(time_secs)?;
        Ok(Self::from_state(
            Runtime::new(),
            crate::genesis(funded, timestamp_ms),
            BlockContext { block_id: 0, timestamp_ms },
        ))
    }

    /// A chain over any state (for harnesses that build states no genesis reaches), at `block`.
    #[must_use]
    pub const fn from_state(runtime: Runtime, state: State, block: BlockContext) -> Self {
        Self { runtime, state, block_id: block.block_id, timestamp_ms: block.timestamp_ms, signing: Signing::Real }
    }

    /// The same chain with other installed programs.
    #[must_use]
    pub fn with_runtime(mut self, runtime: Runtime) -> Self {
        self.runtime = runtime;
        self
    }

    /// The same chain signing as `signing` says.
    #[must_use]
    pub const fn with_signing(mut self, signing: Signing) -> Self {
        self.signing = signing;
        self
    }

    /// From now on signs as `signing` says.
    pub const fn set_signing(&mut self, signing: Signing) {
        self.signing = signing;
    }

    /// How this chain signs.
    #[must_use]
    pub const fn signing(&self) -> Signing {
        self.signing
    }

    /// Opens the next block at `time_secs` (never earlier than now): the clock program runs and
    /// the clock accounts then read `time_secs`.
    ///
    /// # Errors
    /// Time going backwards or overflowing, the height overflowing, or the clock update being
    /// refused; the chain is then unchanged.
    pub fn advance_to(&mut self, time_secs: u64) -> Result<(), LocalChainError> {
        let timestamp_ms = secs_to_ms(time_secs)?;
        if timestamp_ms < self.timestamp_ms {
            return Err(LocalChainError::TimeBackwards { now_secs: self.now_secs(), secs: time_secs });
        }
        let block_id = self.block_id.checked_add(1).ok_or(LocalChainError::HeightOverflow)?;
        let block = BlockContext { block_id, timestamp_ms };
        let diff = self.runtime.clock_update(&self.state, &block).map_err(LocalChainError::ClockRefused)?;
        self.state.apply_diff(&diff);
        self.block_id = block_id;
        self.timestamp_ms = timestamp_ms;
        Ok(())
    }

    /// Opens the next block `seconds` later.
    ///
    /// # Errors
    /// As [`LocalChain::advance_to`].
    pub fn advance_by(&mut self, seconds: u64) -> Result<(), LocalChainError> {
        // A saturated target overflows milliseconds too, and is refused as such.
        self.advance_to(self.now_secs().saturating_add(seconds))
    }

    /// The current block.
    #[must_use]
    pub const fn block(&self) -> BlockContext {
        BlockContext { block_id: self.block_id, timestamp_ms: self.timestamp_ms }
    }

    /// Height of the current block (0 at genesis).
    #[must_use]
    pub const fn height(&self) -> u64 {
        self.block_id
    }

    /// Chain time of the current block in Unix milliseconds.
    #[must_use]
    pub const fn timestamp_ms(&self) -> u64 {
        self.timestamp_ms
    }

    /// Chain time of the current block in seconds.
    #[must_use]
    pub const fn now_secs(&self) -> u64 {
        self.timestamp_ms / 1000
    }

    /// The installed programs.
    #[must_use]
    pub const fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The committed state.
    #[must_use]
    pub const fn state(&self) -> &State {
        &self.state
    }

    /// The committed state, writable: for tests that need a state no transaction reaches.
    pub const fn state_mut(&mut self) -> &mut State {
        &mut self.state
    }

    /// The account at `id` (the default account when it was never touched).
    #[must_use]
    pub fn account(&self, id: &AccountId) -> Account {
        self.state.account(id)
    }

    /// Writes `account` at `id` directly, bypassing the runtime.
    pub fn put(&mut self, id: AccountId, account: Account) {
        self.state.insert(id, account);
    }

    /// A transaction calling `program_id`, carrying the signers' current nonces and signed as
    /// this chain's [`Signing`] says.
    #[must_use]
    pub fn transaction<S: Signer + ?Sized>(
        &self,
        program_id: ProgramId,
        account_ids: Vec<AccountId>,
        instruction_data: Vec<u32>,
        signers: &[&S],
    ) -> Transaction {
        let nonces = signers.iter().map(|k| self.state.account(&k.account_id()).nonce).collect();
        self.signing.sign(Message { program_id, account_ids, nonces, instruction_data }, signers)
    }

    /// Runs `tx` in the current block without committing it: [`Runtime::apply`], or
    /// [`Runtime::apply_verified`] under [`Signing::Trusted`].
    ///
    /// # Errors
    /// The runtime's refusal.
    pub fn execute(&self, tx: &Transaction) -> Result<Applied, TxError> {
        let block = self.block();
        match self.signing {
            Signing::Real | Signing::Fixed(_) => self.runtime.apply(&self.state, tx, &block),
            Signing::Trusted => self.runtime.apply_verified(&self.state, tx, &block),
        }
    }

    /// Runs `tx` in the current block and commits its diff.
    ///
    /// # Errors
    /// The runtime's refusal; the state is then unchanged.
    pub fn apply(&mut self, tx: &Transaction) -> Result<Applied, TxError> {
        let applied = self.execute(tx)?;
        self.state.apply_diff(&applied.diff);
        Ok(applied)
    }

    /// Builds, signs, runs and commits a call to any program with any instruction words.
    ///
    /// # Errors
    /// As [`LocalChain::apply`].
    pub fn submit_raw<S: Signer + ?Sized>(
        &mut self,
        program_id: ProgramId,
        account_ids: Vec<AccountId>,
        instruction_data: Vec<u32>,
        signers: &[&S],
    ) -> Result<Applied, TxError> {
        let tx = self.transaction(program_id, account_ids, instruction_data, signers);
        self.apply(&tx)
    }

    /// Builds, signs, runs and commits a program call.
    ///
    /// # Errors
    /// As [`LocalChain::apply`].
    pub fn submit<S: Signer + ?Sized>(&mut self, call: &Call, signers: &[&S]) -> Result<Applied, TxError> {
        self.submit_raw(call.program_id, call.account_ids.clone(), call.instruction_data(), signers)
    }
}

/// Seconds to milliseconds, refusing overflow.
///
/// # Errors
/// [`LocalChainError::TimeOverflow`].
pub fn secs_to_ms(secs: u64) -> Result<u64, LocalChainError> {
    secs.checked_mul(1000).ok_or(LocalChainError::TimeOverflow { secs })
}

#[cfg(test)]
mod tests {
    use paystreams_lez_core::{clock::CLOCK_01_ACCOUNT_ID, transfer::authenticated_transfer_program_id};

    use super::*;

    fn key(n: u8) -> SecretKey {
        SecretKey::from_bytes(&[n; 32]).expect("valid key")
    }

    #[test]
    fn blocks_move_forward_and_the_clock_follows() {
        let mut chain = LocalChain::new(&[], 5).expect("genesis");
        assert_eq!((chain.height(), chain.now_secs()), (0, 5));
        chain.advance_to(7).expect("forward");
        chain.advance_by(3).expect("forward");
        assert_eq!(chain.block(), BlockContext { block_id: 2, timestamp_ms: 10_000 });
        let clock: paystreams_lez_core::clock::ClockAccountData =
            borsh::from_slice(&chain.account(&CLOCK_01_ACCOUNT_ID).data).expect("clock");
        assert_eq!(clock.timestamp_ms, 10_000);
        assert_eq!(chain.advance_to(9), Err(LocalChainError::TimeBackwards { now_secs: 10, secs: 9 }));
        assert_eq!(chain.advance_to(u64::MAX), Err(LocalChainError::TimeOverflow { secs: u64::MAX }));
        assert_eq!(chain.height(), 2);
        assert!(matches!(LocalChain::new(&[], u64::MAX / 999), Err(LocalChainError::TimeOverflow { .. })));
    }

    #[test]
    fn transactions_carry_nonces_and_commit_only_on_success() {
        let (alice, bob) = (key(1), key(2));
        for signing in [Signing::Real, Signing::Fixed([7; 32]), Signing::Trusted] {
            let mut chain = LocalChain::new(&[(alice.account_id(), 100), (bob.account_id(), 0)], 1).expect("genesis");
            chain = chain.with_signing(signing);
            let pay = |amount: u128| paystreams_lez_core::transfer::transfer_instruction(amount);
            let ids = vec![alice.account_id(), bob.account_id()];
            chain.submit_raw(authenticated_transfer_program_id(), ids.clone(), pay(60), &[&alice]).expect("paid");
            let before = chain.state().clone();
            let refused = chain.submit_raw(authenticated_transfer_program_id(), ids.clone(), pay(60), &[&alice]);
            assert!(refused.is_err(), "{signing:?}: overdraft accepted");
            assert_eq!(chain.state(), &before, "{signing:?}: a refused transaction changed state");
            chain.submit_raw(authenticated_transfer_program_id(), ids, pay(40), &[&alice]).expect("second nonce");
            assert_eq!(chain.account(&alice.account_id()).nonce, 2);
            assert_eq!(chain.account(&bob.account_id()).balance, 100);
        }
        let fixed = LocalChain::new(&[], 0).expect("genesis").with_signing(Signing::Fixed([7; 32]));
        let tx = |chain: &LocalChain| chain.transaction(ProgramId::DEFAULT, vec![], vec![1], &[&alice]);
        assert_eq!(tx(&fixed), tx(&fixed), "fixed signing is reproducible");
    }
}
