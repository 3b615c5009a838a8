//! Account state: a sorted map from id to account, views over it, and diffs.
//!
//! Only non-default accounts are stored. A lookup of an unknown id returns
//! `Account::default()`, exactly as LEZ's `get_account_by_id` does, so "absent" and
//! "never touched" are the same thing and the state root does not depend on whether a default
//! account was ever written.

use std::collections::BTreeMap;

use borsh::{BorshDeserialize, BorshSerialize};
use paystreams_lez_core::{Account, AccountId, domain_prefix, sha256};
use serde::{Deserialize, Serialize};

/// Read access to accounts. Unknown ids read as `Account::default()`.
///
/// Implemented by [`State`] (committed state) and [`Overlay`] (state plus uncommitted diffs), so
/// a node can execute a block's transactions one after another without committing each.
pub trait StateView {
    /// The account at `id`, or the default account when it was never written.
    fn account(&self, id: &AccountId) -> Account;
}

impl<T: StateView + ?Sized> StateView for &T {
    fn account(&self, id: &AccountId) -> Account {
        (**self).account(id)
    }
}

/// The post values of every account a transaction (or a clock update) changed.
#[derive(Clone, PartialEq, Eq, Debug, Default, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct StateDiff {
    pub accounts: BTreeMap<AccountId, Account>,
}

impl StateDiff {
    /// True when nothing changed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }
}

/// Committed state: every non-default account, sorted by id.
#[derive(Clone, PartialEq, Eq, Debug, Default, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct State {
    accounts: BTreeMap<AccountId, Account>,
}

/// Accounts given to [`State::from_sorted`] out of order.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
#[error(
    "account {id} comes after {previous}, which is not below it: give the accounts sorted by ascending id, each once"
)]
pub struct UnsortedAccounts {
    pub previous: AccountId,
    pub id: AccountId,
}

/// Domain prefix of a state-root leaf hash.
const LEAF_PREFIX: [u8; 32] = domain_prefix("/paystreams/v1/StateRoot/Leaf/");
/// Domain prefix of a state-root inner node hash.
const NODE_PREFIX: [u8; 32] = domain_prefix("/paystreams/v1/StateRoot/Node/");
/// Domain prefix hashed alone for the root of the empty state.
const EMPTY_PREFIX: [u8; 32] = domain_prefix("/paystreams/v1/StateRoot/Empty/");

impl State {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes one account. Writing the default account removes it, so the stored map and the
    /// state root only ever cover non-default accounts.
    pub fn insert(&mut self, id: AccountId, account: Account) {
        if account.is_default() {
            self.accounts.remove(&id);
        } else {
            self.accounts.insert(id, account);
        }
    }

    /// The state holding `accounts`, built in one pass: `accounts` must be sorted by strictly
    /// ascending id (as a storage's key order gives them). Default accounts are skipped, as
    /// [`State::insert`] does. Equals inserting them one by one, without the per-insert
    /// search and node splits: the map's nodes are filled bottom-up from the sorted input,
    /// which is moved once (into the nodes).
    ///
    /// # Errors
    /// [`UnsortedAccounts`] naming the first id that is not above the one before it.
    pub fn from_sorted(mut accounts: Vec<(AccountId, Account)>) -> Result<Self, UnsortedAccounts> {
        // One read pass: the order, and whether any default account must be skipped.
        let mut defaults = false;
        let mut previous: Option<&AccountId> = None;
        for (id, account) in &accounts {
            if let Some(previous) = previous.filter(|previous| *previous >= id) {
                return Err(UnsortedAccounts { previous: *previous, id: *id });
            }
            previous = Some(id);
            defaults = defaults || account.is_default();
        }
        if defaults {
            accounts.retain(|(_, account)| !account.is_default());
        }
        // `BTreeMap`'s `FromIterator` takes the vector's buffer as it is, sorts it (one linear
        // pass of comparisons on sorted input) and fills its nodes bottom-up.
        Ok(Self { accounts: accounts.into_iter().collect() })
    }

    /// Commits a diff (post values replace current values).
    pub fn apply_diff(&mut self, diff: &StateDiff) {
        for (id, account) in &diff.accounts {
            self.insert(*id, account.clone());
        }
    }

    /// The stored account, if it is not default.
    #[must_use]
    pub fn get(&self, id: &AccountId) -> Option<&Account> {
        self.accounts.get(id)
    }

    /// Every non-default account, sorted by id.
    pub fn iter(&self) -> impl Iterator<Item = (&AccountId, &Account)> {
        self.accounts.iter()
    }

    /// Number of non-default accounts.
    #[must_use]
    pub fn len(&self) -> usize {
        self.accounts.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }

    /// A commitment to the whole state: a binary Merkle tree over the non-default accounts in
    /// ascending id order.
    ///
    /// - leaf = `SHA-256(LEAF_PREFIX || id (32 bytes) || borsh(account))`
    /// - node = `SHA-256(NODE_PREFIX || left || right)`; an odd last node is carried up unchanged
    ///   (not duplicated, so two different leaf lists never share a root)
    /// - the empty state's root is `SHA-256(EMPTY_PREFIX)`
    ///
    /// Prefixes are 32-byte NUL-padded ASCII (`/paystreams/v1/StateRoot/{Leaf,Node,Empty}/`), so
    /// a leaf can never be mistaken for a node. The tree shape lets a later version hand out
    /// inclusion proofs without changing the root.
    #[must_use]
    pub fn state_root(&self) -> [u8; 32] {
        let entries: Vec<(&AccountId, &Account)> =
            self.accounts.iter().filter(|(_, account)| !account.is_default()).collect();
        let mut level: Vec<[u8; 32]> = parallel_map(&entries, |(id, account)| leaf_hash(id, account));
        while level.len() > 1 {
            let pairs: Vec<&[[u8; 32]]> = level.chunks(2).collect();
            level = parallel_map(&pairs, |pair| match pair {
                [left, right] => sha256(&[&NODE_PREFIX, left, right]),
                [single] => *single,
                // `chunks(2)` yields one or two items; this arm is never taken.
                _ => [0; 32],
            });
        }
        level.first().copied().unwrap_or_else(|| sha256(&[&EMPTY_PREFIX]))
    }
}

/// Inputs below this many items are hashed on the calling thread (a thread costs more).
const PARALLEL_MIN: usize = 16_384;

/// `items.iter().map(f)`, split across the machine's cores for large inputs; same order.
fn parallel_map<T: Sync, F: Fn(&T) -> [u8; 32] + Sync>(items: &[T], f: F) -> Vec<[u8; 32]> {
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    if threads < 2 || items.len() < PARALLEL_MIN {
        return items.iter().map(f).collect();
    }
    let per_thread = items.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let f = &f;
        let workers: Vec<_> = items
            .chunks(per_thread)
            .map(|part| (part, scope.spawn(move || part.iter().map(f).collect::<Vec<_>>())))
            .collect();
        let mut out = Vec::with_capacity(items.len());
        for (part, worker) in workers {
            // A worker only hashes; should it ever fail, hash its part here instead.
            out.extend(worker.join().unwrap_or_else(|_| part.iter().map(f).collect()));
        }
        out
    })
}

fn leaf_hash(id: &AccountId, account: &Account) -> [u8; 32] {
    // Writing Borsh into a Vec cannot fail.
    let encoded = borsh::to_vec(account).unwrap_or_default();
    sha256(&[&LEAF_PREFIX, &id.0, &encoded])
}

impl StateView for State {
    fn account(&self, id: &AccountId) -> Account {
        self.accounts.get(id).cloned().unwrap_or_default()
    }
}

impl FromIterator<(AccountId, Account)> for State {
    fn from_iter<I: IntoIterator<Item = (AccountId, Account)>>(iter: I) -> Self {
        let mut state = Self::new();
        for (id, account) in iter {
            state.insert(id, account);
        }
        state
    }
}

/// A base view plus uncommitted diffs layered on top, read as one state.
///
/// A block producer applies each accepted transaction's diff to an overlay over the committed
/// state, so later transactions in the block see earlier ones, and commits
/// [`Overlay::into_diff`] (or discards the overlay) at the end.
#[derive(Clone, Debug)]
pub struct Overlay<'a, S: StateView + ?Sized> {
    base: &'a S,
    accounts: BTreeMap<AccountId, Account>,
}

impl<'a, S: StateView + ?Sized> Overlay<'a, S> {
    #[must_use]
    pub const fn new(base: &'a S) -> Self {
        Self { base, accounts: BTreeMap::new() }
    }

    /// Layers a diff on top of everything applied so far.
    pub fn apply_diff(&mut self, diff: &StateDiff) {
        for (id, account) in &diff.accounts {
            self.accounts.insert(*id, account.clone());
        }
    }

    /// The combined diff of everything layered so far, relative to the base.
    #[must_use]
    pub fn diff(&self) -> StateDiff {
        StateDiff { accounts: self.accounts.clone() }
    }

    #[must_use]
    pub fn into_diff(self) -> StateDiff {
        StateDiff { accounts: self.accounts }
    }
}

impl<S: StateView + ?Sized> StateView for Overlay<'_, S> {
    fn account(&self, id: &AccountId) -> Account {
        self.accounts.get(id).cloned().unwrap_or_else(|| self.base.account(id))
    }
}

#[cfg(test)]
mod tests {
    use paystreams_lez_core::ProgramId;

    use super::*;

    fn account(balance: u128) -> Account {
        Account { program_owner: ProgramId([1; 8]), balance, data: vec![], nonce: 0 }
    }

    #[test]
    fn unknown_ids_read_as_default_and_default_writes_are_removed() {
        let mut state = State::new();
        assert_eq!(state.account(&AccountId([1; 32])), Account::default());
        state.insert(AccountId([1; 32]), account(5));
        assert_eq!(state.len(), 1);
        state.insert(AccountId([1; 32]), Account::default());
        assert!(state.is_empty());
    }

    #[test]
    fn state_root_is_order_independent_and_sensitive_to_every_account() {
        let a: State = [(AccountId([1; 32]), account(1)), (AccountId([2; 32]), account(2))].into_iter().collect();
        let b: State = [(AccountId([2; 32]), account(2)), (AccountId([1; 32]), account(1))].into_iter().collect();
        assert_eq!(a.state_root(), b.state_root());
        let mut c = a.clone();
        c.insert(AccountId([3; 32]), account(3));
        assert_ne!(a.state_root(), c.state_root());
        let mut d = a.clone();
        d.insert(AccountId([2; 32]), account(7));
        assert_ne!(a.state_root(), d.state_root());
        // A default write does not change the root.
        let mut e = a.clone();
        e.insert(AccountId([9; 32]), Account::default());
        assert_eq!(a.state_root(), e.state_root());
        assert_ne!(State::new().state_root(), a.state_root());
    }

    #[test]
    fn a_large_state_root_hashed_in_parallel_equals_the_serial_fold() {
        // Above PARALLEL_MIN, with an odd count so a single node is carried up a level.
        let state: State = (0..40_001_u32)
            .map(|i| {
                let mut id = [0_u8; 32];
                id[..4].copy_from_slice(&i.to_be_bytes());
                (AccountId(id), account(u128::from(i) + 1))
            })
            .collect();
        let mut level: Vec<[u8; 32]> = state.iter().map(|(id, a)| leaf_hash(id, a)).collect();
        while level.len() > 1 {
            level = level
                .chunks(2)
                .map(|pair| match pair {
                    [l, r] => sha256(&[&NODE_PREFIX, l, r]),
                    _ => pair.first().copied().expect("one item"),
                })
                .collect();
        }
        assert_eq!(Some(state.state_root()), level.first().copied());
    }

    #[test]
    fn overlay_layers_diffs_over_the_base() {
        let base: State = [(AccountId([1; 32]), account(1))].into_iter().collect();
        let mut overlay = Overlay::new(&base);
        let mut diff = StateDiff::default();
        diff.accounts.insert(AccountId([1; 32]), account(9));
        diff.accounts.insert(AccountId([2; 32]), account(2));
        overlay.apply_diff(&diff);
        assert_eq!(overlay.account(&AccountId([1; 32])).balance, 9);
        assert_eq!(overlay.account(&AccountId([2; 32])).balance, 2);
        assert_eq!(base.account(&AccountId([1; 32])).balance, 1);
        let mut committed = base.clone();
        committed.apply_diff(&overlay.into_diff());
        assert_eq!(committed.account(&AccountId([1; 32])).balance, 9);
    }

    fn arb_account() -> impl proptest::strategy::Strategy<Value = Account> {
        use proptest::prelude::*;
        // A few default accounts among them: the bulk constructor must skip them too.
        (0_u8..4, 0_u128..1_000, proptest::collection::vec(any::<u8>(), 0..40), 0_u128..3).prop_map(
            |(owner, balance, data, nonce)| {
                if owner == 0 && balance < 100 {
                    Account::default()
                } else {
                    Account { program_owner: ProgramId([u32::from(owner); 8]), balance, data, nonce }
                }
            },
        )
    }

    proptest::proptest! {
        /// The bulk constructor builds the same state as inserting the accounts one by one in
        /// any order: equal maps, same root, same lookups (present, default and absent ids).
        #[test]
        fn bulk_constructor_equals_incremental_inserts(
            entries in proptest::collection::btree_map(proptest::prelude::any::<[u8; 32]>(), arb_account(), 0..300),
            probes in proptest::collection::vec(proptest::prelude::any::<[u8; 32]>(), 0..20),
            seed in 0_u64..u64::MAX,
        ) {
            let sorted: Vec<(AccountId, Account)> =
                entries.iter().map(|(id, account)| (AccountId(*id), account.clone())).collect();
            // Incremental: inserted in a shuffled order.
            let mut shuffled = sorted.clone();
            let mut x = seed | 1;
            for i in (1..shuffled.len()).rev() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let j = x.checked_rem(u64::try_from(i).unwrap_or(0).saturating_add(1)).unwrap_or(0);
                shuffled.swap(i, usize::try_from(j).unwrap_or(0));
            }
            let mut incremental = State::new();
            for (id, account) in shuffled {
                incremental.insert(id, account);
            }
            let bulk = State::from_sorted(sorted.clone()).expect("sorted input");
            proptest::prop_assert_eq!(&bulk, &incremental);
            proptest::prop_assert_eq!(bulk.len(), incremental.len());
            proptest::prop_assert_eq!(bulk.state_root(), incremental.state_root());
            proptest::prop_assert!(bulk.iter().eq(incremental.iter()));
            for id in sorted.iter().map(|(id, _)| *id).chain(probes.into_iter().map(AccountId)) {
                proptest::prop_assert_eq!(bulk.get(&id), incremental.get(&id));
                proptest::prop_assert_eq!(bulk.account(&id), incremental.account(&id));
            }
        }
    }

    #[test]
    fn bulk_constructor_refuses_unsorted_or_repeated_ids() {
        let a = (AccountId([1; 32]), account(1));
        let b = (AccountId([2; 32]), account(2));
        let error = State::from_sorted(vec![b.clone(), a.clone()]).expect_err("unsorted");
        assert_eq!(error, UnsortedAccounts { previous: b.0, id: a.0 });
        assert!(error.to_string().contains("sorted by ascending id"), "{error}");
        let error = State::from_sorted(vec![a.clone(), b.clone(), b.clone()]).expect_err("repeated");
        assert_eq!(error, UnsortedAccounts { previous: b.0, id: b.0 });
        assert_eq!(State::from_sorted(vec![]), Ok(State::new()));
        assert_eq!(State::from_sorted(vec![a.clone(), b.clone()]), Ok([a, b].into_iter().collect()));
    }
}
