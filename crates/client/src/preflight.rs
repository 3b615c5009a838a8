//! Pre-flight: the transaction about to be sent, run by the real runtime on the chain's accounts.
//!
//! [`preflight`] hands a signed transaction to [`Runtime::apply`], exactly as a block producer
//! does: the payment-streams program, its chained calls into the builtins, and every rule the
//! runtime enforces on their output. The state it runs on is a [`Snapshot`] of the accounts the
//! runtime reads (the listed accounts, the signers and the clock accounts), fetched at one block
//! height. The clock accounts there hold the chain's current time: the time the next block's
//! transactions read.
//!
//! A failure is reported only when it does not depend on when the transaction is included: the
//! call must fail with the same code at the chain's current time and at the latest time the
//! clock can show. Time changes a call's outcome only through accrual, which grows with time,
//! and through a stream stopping, which happens at most once, so a failure at both ends is a
//! failure at every inclusion time in between. Anything else, and every run that would not be
//! faithful (an account the runtime reads was not fetched, the chain moved on while the snapshot
//! was read, a program the local runtime does not have), is left to the chain: pre-flight never
//! refuses a transaction the chain would accept.

use std::{
    cell::RefCell,
    collections::{BTreeMap, BTreeSet},
};

use paystreams_lez_core::{Account, AccountId, clock::CLOCK_ACCOUNT_IDS};
use paystreams_runtime::{BlockContext, Overlay, Runtime, StateView, Transaction, TransactionChecks as _, TxError};

/// The accounts a transaction reads, as the chain held them at one block height. Accounts that
/// were never written are held too (as the default account): fetched and empty is not unknown.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    accounts: BTreeMap<AccountId, Account>,
}

impl Snapshot {
    /// The accounts the runtime reads to execute a transaction naming `account_ids`, signed by
    /// `signers`: those accounts, the signers (their nonces) and the clock accounts (the time,
    /// and the clock update to a later time).
    #[must_use]
    pub fn ids_read(account_ids: &[AccountId], signers: &[AccountId]) -> BTreeSet<AccountId> {
        account_ids.iter().chain(signers).chain(&CLOCK_ACCOUNT_IDS).copied().collect()
    }

    /// The accounts `ids` as `state` holds them.
    #[must_use]
    pub fn read(state: &impl StateView, ids: &BTreeSet<AccountId>) -> Self {
        ids.iter().map(|id| (*id, state.account(id))).collect()
    }

    /// The fetched account, `None` when it is not part of the snapshot.
    #[must_use]
    pub fn account(&self, id: &AccountId) -> Option<&Account> {
        self.accounts.get(id)
    }

    /// The nonces a transaction signed by `signers` carries on this state, `None` when a signer
    /// is not part of the snapshot.
    #[must_use]
    pub fn nonces(&self, signers: &[AccountId]) -> Option<Vec<u128>> {
        signers.iter().map(|id| self.account(id).map(|account| account.nonce)).collect()
    }
}

impl FromIterator<(AccountId, Account)> for Snapshot {
    fn from_iter<I: IntoIterator<Item = (AccountId, Account)>>(iter: I) -> Self {
        Self { accounts: iter.into_iter().collect() }
    }
}

/// The snapshot as the runtime's state, noting every account read that the snapshot lacks (the
/// run is then not faithful: the chain would have read the real account).
struct SnapshotView<'a> {
    snapshot: &'a Snapshot,
    unfetched: RefCell<BTreeSet<AccountId>>,
}

impl<'a> SnapshotView<'a> {
    const fn new(snapshot: &'a Snapshot) -> Self {
        Self { snapshot, unfetched: RefCell::new(BTreeSet::new()) }
    }

    fn first_unfetched(&self) -> Option<AccountId> {
        self.unfetched.borrow().first().copied()
    }
}

impl StateView for SnapshotView<'_> {
    fn account(&self, id: &AccountId) -> Account {
        self.snapshot.account(id).cloned().unwrap_or_else(|| {
            self.unfetched.borrow_mut().insert(*id);
            Account::default()
        })
    }
}

/// What the pre-flight run concluded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The chain refuses the transaction whenever it is included, with this error.
    Refused(TxError),
    /// The transaction succeeds at the chain's current time.
    Passes,
    /// Not known: the outcome depends on the inclusion time, or the run was not faithful (why).
    Undecided(String),
}

/// The runtime a node runs, with the payment-streams program installed (also what the LEZ
/// dialect derives receipts with).
pub use paystreams_rpc::remote::lez::runtime_for;

/// Runs `tx` through `runtime` on `snapshot` at the snapshot's time and, if it fails there, at
/// the latest time the clock can show; see the module documentation for when it refuses.
#[must_use]
pub fn preflight(runtime: &Runtime, snapshot: &Snapshot, tx: &Transaction) -> Verdict {
    if let Err(e) = tx.check_structure() {
        return Verdict::Undecided(format!("the node judges the transaction's form on admission ({e})"));
    }

    // Programs do not see the block context: the time they read is the clock accounts'.
    let ctx = BlockContext::default();
    let now = SnapshotView::new(snapshot);
    let outcome = runtime.apply(&now, tx, &ctx);
    if let Some(id) = now.first_unfetched() {
        return unfetched(id);
    }
    let error = match outcome {
        Ok(_) => return Verdict::Passes,
        Err(e @ (TxError::NonceMismatch { .. } | TxError::UnknownProgram { .. })) => {
            return Verdict::Undecided(format!("the local run is not the chain's ({e})"));
        }
        Err(e) => e,
    };

    // The clock update ignores the block id; only the time matters.
    let latest = BlockContext { block_id: 0, timestamp_ms: u64::MAX };
    let clock = match runtime.clock_update(&now, &latest) {
        Ok(clock) => clock,
        Err(e) => return Verdict::Undecided(format!("the clock cannot be moved to a later time ({e})")),
    };
    let mut later = Overlay::new(&now);
    later.apply_diff(&clock);
    let outcome = runtime.apply(&later, tx, &ctx);
    if let Some(id) = now.first_unfetched() {
        return unfetched(id);
    }
    match outcome {
        Err(e) if e.code() == error.code() => Verdict::Refused(error),
        Err(e) => Verdict::Undecided(format!("fails now with {}, later with {}", error.code(), e.code())),
        Ok(_) => Verdict::Undecided(format!("fails now with {}, passes later", error.code())),
    }
}

fn unfetched(id: AccountId) -> Verdict {
    Verdict::Undecided(format!("the runtime read account {id}, which was not fetched"))
}

#[cfg(test)]
mod tests {
    use paystreams_lez_core::crypto::SecretKey;
    use paystreams_lez_core::transfer::authenticated_transfer_program_id;
    use paystreams_program::{
        ExtensionSettings, StreamError,
        client::{self as builders, Call, VaultRef},
        payment_streams_program_id,
        state::VaultPrivacyTier,
    };
    use paystreams_runtime::{builtins::transfer::TransferError, testkit::LocalChain};

    use super::*;

    /// A chain built by the runtime itself (the shared test chain): genesis, clock updates and
    /// applied calls, with the client's program id installed.
    struct Ledger {
        chain: LocalChain,
        owner: SecretKey,
        provider: SecretKey,
        vault: VaultRef,
    }

    impl Ledger {
        /// Vault 3 of a funded owner holding `deposit`, at chain time 100 s.
        fn with_vault(deposit: u128) -> Self {
            let owner = SecretKey::from_bytes(&[1; 32]).expect("key");
            let provider = SecretKey::from_bytes(&[2; 32]).expect("key");
            let funded = [(owner.account_id(), 1_000), (provider.account_id(), 1)];
            let vault = VaultRef::native(payment_streams_program_id(), owner.account_id(), 3);
            let chain =
                LocalChain::new(&funded, 0).expect("genesis").with_runtime(runtime_for(payment_streams_program_id()));
            let mut ledger = Self { chain, owner, provider, vault };
            ledger.set_time(100);
            let owner = ledger.owner.clone();
            ledger.apply(&builders::initialize_vault(&vault, VaultPrivacyTier::Public), &[&owner]);
            ledger.apply(&builders::deposit(&vault, deposit, authenticated_transfer_program_id(), None), &[&owner]);
            ledger
        }

        fn set_time(&mut self, secs: u64) {
            self.chain.advance_to(secs).expect("clock update");
        }

        fn sign(&self, call: &Call, signers: &[&SecretKey]) -> Transaction {
            self.chain.transaction(call.program_id, call.account_ids.clone(), call.instruction_data(), signers)
        }

        fn apply(&mut self, call: &Call, signers: &[&SecretKey]) {
            self.chain.submit(call, signers).expect("applies");
        }

        /// The pre-flight verdict on the accounts the client fetches.
        fn check(&self, call: &Call, signers: &[&SecretKey]) -> Verdict {
            let signer_ids: Vec<AccountId> = signers.iter().map(|key| key.account_id()).collect();
            let snapshot = Snapshot::read(self.chain.state(), &Snapshot::ids_read(&call.account_ids, &signer_ids));
            preflight(self.chain.runtime(), &snapshot, &self.sign(call, signers))
        }

        fn create(&self, stream_id: u64, rate: u64, allocation: u128) -> Call {
            let provider = self.provider.account_id();
            builders::create_stream(&self.vault, stream_id, provider, rate, allocation, ExtensionSettings::default())
        }
    }

    fn refused_code(verdict: &Verdict) -> Option<u32> {
        match verdict {
            Verdict::Refused(error) => Some(error.code()),
            _ => None,
        }
    }

    #[test]
    fn allocation_beyond_the_unallocated_funds_is_refused() {
        let ledger = Ledger::with_vault(120);
        let owner = ledger.owner.clone();
        assert_eq!(refused_code(&ledger.check(&ledger.create(0, 1, 200), &[&owner])), Some(6011));
        assert_eq!(ledger.check(&ledger.create(0, 1, 120), &[&owner]), Verdict::Passes);
    }

    #[test]
    fn a_chained_builtin_refusal_carries_the_builtin_code() {
        let ledger = Ledger::with_vault(120);
        let owner = ledger.owner.clone();
        let deposit = builders::deposit(&ledger.vault, 5_000, authenticated_transfer_program_id(), None);
        let verdict = ledger.check(&deposit, &[&owner]);
        assert_eq!(refused_code(&verdict), Some(TransferError::InsufficientBalance.code()));
    }

    #[test]
    fn failures_at_every_inclusion_time_are_refused() {
        let mut ledger = Ledger::with_vault(1_000);
        let (owner, provider) = (ledger.owner.clone(), ledger.provider.clone());
        ledger.apply(&ledger.create(0, 10, 100), &[&owner]);
        ledger.set_time(105);
        ledger.apply(&builders::pause_stream(&ledger.vault, 0), &[&owner]);
        let pause_again = builders::pause_stream(&ledger.vault, 0);
        assert_eq!(refused_code(&ledger.check(&pause_again, &[&owner])), Some(StreamError::StreamNotActive.code()));
        // A claim signed by someone else than the provider.
        let stranger = SecretKey::from_bytes(&[3; 32]).expect("key");
        let stranger_claim = builders::claim(&ledger.vault, 0, stranger.account_id(), None, None);
        assert_eq!(
            refused_code(&ledger.check(&stranger_claim, &[&stranger])),
            Some(StreamError::ClaimUnauthorized.code())
        );
        let claim = builders::claim(&ledger.vault, 0, provider.account_id(), None, None);
        assert_eq!(ledger.check(&claim, &[&provider]), Verdict::Passes);
    }

    #[test]
    fn failures_that_a_later_block_would_not_have_are_left_to_the_chain() {
        let mut ledger = Ledger::with_vault(1_000);
        let (owner, provider) = (ledger.owner.clone(), ledger.provider.clone());
        ledger.apply(&ledger.create(0, 10, 100), &[&owner]);
        // Nothing has accrued at the creation time, but a claim in a later block pays.
        let claim = builders::claim(&ledger.vault, 0, provider.account_id(), None, None);
        assert!(matches!(ledger.check(&claim, &[&provider]), Verdict::Undecided(_)));
        // The stream is active now (resume refused), but depleted later (refused differently).
        let resume = builders::resume_stream(&ledger.vault, 0);
        assert!(matches!(ledger.check(&resume, &[&owner]), Verdict::Undecided(_)));
        // Once the chain time has passed, the claim passes.
        ledger.set_time(105);
        assert_eq!(ledger.check(&claim, &[&provider]), Verdict::Passes);
    }

    #[test]
    fn a_transfer_creating_an_account_it_cannot_sign_for_is_refused() {
        let ledger = Ledger::with_vault(120);
        let owner = ledger.owner.clone();
        let fresh = SecretKey::from_bytes(&[9; 32]).expect("key");
        let ids = vec![owner.account_id(), fresh.account_id()];
        let check = |signers: &[&SecretKey]| {
            let signer_ids: Vec<AccountId> = signers.iter().map(|key| key.account_id()).collect();
            let snapshot = Snapshot::read(ledger.chain.state(), &Snapshot::ids_read(&ids, &signer_ids));
            let words = paystreams_lez_core::transfer::transfer_instruction(10);
            let tx = ledger.chain.transaction(authenticated_transfer_program_id(), ids.clone(), words, signers);
            preflight(ledger.chain.runtime(), &snapshot, &tx)
        };
        let unsigned = check(&[&owner]);
        assert_eq!(refused_code(&unsigned), Some(1043), "{unsigned:?}");
        assert_eq!(check(&[&owner, &fresh]), Verdict::Passes);
    }

    #[test]
    fn an_account_that_was_not_fetched_leaves_the_call_to_the_chain() {
        let ledger = Ledger::with_vault(120);
        let owner = ledger.owner.clone();
        let call = ledger.create(0, 1, 200);
        let mut ids = Snapshot::ids_read(&call.account_ids, &[owner.account_id()]);
        ids.remove(&ledger.vault.holding());
        let snapshot = Snapshot::read(ledger.chain.state(), &ids);
        let verdict = preflight(ledger.chain.runtime(), &snapshot, &ledger.sign(&call, &[&owner]));
        assert!(matches!(&verdict, Verdict::Undecided(why) if why.contains(&ledger.vault.holding().to_string())));
    }

    #[test]
    fn the_nonces_come_from_the_snapshot() {
        let ledger = Ledger::with_vault(120);
        let owner = ledger.owner.account_id();
        let snapshot = Snapshot::read(ledger.chain.state(), &Snapshot::ids_read(&[], &[owner]));
        assert_eq!(snapshot.nonces(&[owner]), Some(vec![2]));
        assert_eq!(snapshot.nonces(&[ledger.vault.config()]), None);
    }
}
