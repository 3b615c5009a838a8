//! The state root of `State::state_root`, computed from leaves the chain keeps: every account's
//! leaf hash is kept in id order, so a block hashes only the accounts it changed and then the
//! inner nodes. Same root as `State::state_root` (tested against it), which stays the definition:
//!
//! - leaf = `SHA-256(LEAF_PREFIX || id || borsh(account))`, for non-default accounts in id order;
//! - node = `SHA-256(NODE_PREFIX || left || right)`, an odd last node carried up unchanged;
//! - the empty state's root is `SHA-256(EMPTY_PREFIX)`.

use paystreams_lez_core::{Account, AccountId, domain_prefix, sha256};
use paystreams_runtime::{State, StateDiff};

const LEAF_PREFIX: [u8; 32] = domain_prefix("/paystreams/v1/StateRoot/Leaf/");
const NODE_PREFIX: [u8; 32] = domain_prefix("/paystreams/v1/StateRoot/Node/");
const EMPTY_PREFIX: [u8; 32] = domain_prefix("/paystreams/v1/StateRoot/Empty/");

/// Below this many nodes a level is hashed on the calling thread (a thread costs more).
const PARALLEL_MIN: usize = 16_384;

fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// The leaf of an account from its Borsh bytes.
#[must_use]
pub fn leaf(id: &AccountId, encoded: &[u8]) -> [u8; 32] {
    sha256(&[&LEAF_PREFIX, &id.0, encoded])
}

fn account_leaf(id: &AccountId, account: &Account) -> [u8; 32] {
    // Writing Borsh into a Vec cannot fail.
    leaf(id, &borsh::to_vec(account).unwrap_or_default())
}

/// The root over `level` (the leaves in id order). Each level is computed in place (no
/// allocation), large ones split across the machine's cores. `None` when a hashing thread
/// failed.
#[must_use]
pub fn merkle_root(mut level: Vec<[u8; 32]>) -> Option<[u8; 32]> {
    let threads = threads();
    // Writes the parents of `part`'s pairs into its first half; returns how many.
    let halve = |part: &mut [[u8; 32]]| -> usize {
        let parents = part.len().div_ceil(2);
        for i in 0..parents {
            let left = i.saturating_mul(2);
            let parent = match part.get(left..left.saturating_add(2)) {
                Some([l, r]) => sha256(&[&NODE_PREFIX, l, r]),
                _ => part.get(left).copied().unwrap_or_default(),
            };
            // Writes land below every pair still to be read.
            if let Some(slot) = part.get_mut(i) {
                *slot = parent;
            }
        }
        parents
    };
    while level.len() > 1 {
        let len = level.len();
        let next = if threads < 2 || len < PARALLEL_MIN {
            halve(&mut level)
        } else {
            // Each thread takes an even number of nodes, so no pair straddles two threads.
            let per_thread = len.div_ceil(threads).next_multiple_of(2);
            let counts: Vec<std::thread::Result<usize>> = std::thread::scope(|scope| {
                let halve = &halve;
                let workers: Vec<_> =
                    level.chunks_mut(per_thread).map(|part| scope.spawn(move || halve(part))).collect();
                workers.into_iter().map(|worker| worker.join()).collect()
            });
            let mut to = 0;
            for (k, count) in counts.into_iter().enumerate() {
                let count = count.ok()?;
                let from = k.saturating_mul(per_thread);
                level.copy_within(from..from.saturating_add(count), to);
                to = to.saturating_add(count);
            }
            to
        };
        level.truncate(next);
    }
    Some(level.first().copied().unwrap_or_else(|| sha256(&[&EMPTY_PREFIX])))
}

/// The leaves of a state, in id order.
#[derive(Clone, Default, Debug, PartialEq, Eq)]
pub struct Leaves(Vec<[u8; 32]>);

impl Leaves {
    /// Hashes every account of `state`, on every core for large states.
    #[must_use]
    pub fn of(state: &State) -> Self {
        let entries: Vec<(&AccountId, &Account)> = state.iter().collect();
        let threads = threads();
        if threads < 2 || entries.len() < PARALLEL_MIN {
            return Self(entries.iter().map(|(id, a)| account_leaf(id, a)).collect());
        }
        let per_thread = entries.len().div_ceil(threads);
        let hash = |part: &[(&AccountId, &Account)]| -> Vec<[u8; 32]> {
            part.iter().map(|(id, a)| account_leaf(id, a)).collect()
        };
        std::thread::scope(|scope| {
            let hash = &hash;
            let workers: Vec<_> =
                entries.chunks(per_thread).map(|part| (part, scope.spawn(move || hash(part)))).collect();
            let mut out = Vec::with_capacity(entries.len());
            for (part, worker) in workers {
                // A worker only hashes; should it ever fail, hash its part here instead.
                out.extend(worker.join().unwrap_or_else(|_| hash(part)));
            }
            Self(out)
        })
    }

    /// Leaves loaded with `state` (`Storage::load_state_with_leaves`); rehashed when their
    /// count does not match.
    #[must_use]
    pub fn loaded(state: &State, leaves: Vec<[u8; 32]>) -> Self {
        if leaves.len() == state.len() { Self(leaves) } else { Self::of(state) }
    }

    #[must_use]
    pub fn into_inner(self) -> Vec<[u8; 32]> {
        self.0
    }

    /// The leaves of `state` once `diff` is applied, where `self` are the leaves of `state`:
    /// unchanged accounts keep their leaf, changed ones are hashed, default ones dropped.
    #[must_use]
    pub fn updated(&self, state: &State, diff: &StateDiff) -> Self {
        if self.0.len() != state.len() {
            return Self::of(state).updated(state, diff);
        }
        let mut out = Vec::with_capacity(self.0.len().saturating_add(diff.accounts.len()));
        let mut changes = diff.accounts.iter().peekable();
        let push = |out: &mut Vec<[u8; 32]>, id: &AccountId, account: &Account| {
            if !account.is_default() {
                out.push(account_leaf(id, account));
            }
        };
        for ((id, _), old) in state.iter().zip(&self.0) {
            while let Some((new_id, account)) = changes.next_if(|(new_id, _)| *new_id < id) {
                push(&mut out, new_id, account);
            }
            if let Some((_, account)) = changes.next_if(|(new_id, _)| *new_id == id) {
                push(&mut out, id, account);
            } else {
                out.push(*old);
            }
        }
        for (new_id, account) in changes {
            push(&mut out, new_id, account);
        }
        Self(out)
    }

    /// The state root over these leaves (`None` when a hashing thread failed).
    #[must_use]
    pub fn root(&self) -> Option<[u8; 32]> {
        merkle_root(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use paystreams_lez_core::ProgramId;

    use super::*;

    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            (z ^ (z >> 31)) % n.max(1)
        }
    }

    fn id(n: u64) -> AccountId {
        AccountId(sha256(&[&n.to_le_bytes()]))
    }

    fn account(rng: &mut Rng) -> Account {
        Account {
            program_owner: ProgramId([u32::try_from(rng.below(3)).unwrap_or(0); 8]),
            balance: u128::from(rng.below(1_000_000)),
            data: vec![7; usize::try_from(rng.below(40)).unwrap_or(0)],
            nonce: u128::from(rng.below(4)),
        }
    }

    #[test]
    fn merkle_root_equals_the_state_root_at_every_size() {
        let mut rng = Rng(1);
        assert_eq!(merkle_root(vec![]), Some(State::new().state_root()));
        // Sizes around the parallel threshold and odd levels.
        for count in [1_u64, 2, 3, 5, 1_000, 16_383, 16_384, 40_001] {
            let state: State = (0..count).map(|n| (id(n), account(&mut rng))).collect();
            let leaves = Leaves::of(&state);
            assert_eq!(leaves.0.len(), state.len());
            assert_eq!(leaves.root(), Some(state.state_root()), "{count} accounts");
        }
    }

    /// Random diffs (new accounts, changed ones, ones written back to default) on states of
    /// both sizes: the updated leaves equal the leaves of the new state, and so do the roots.
    #[test]
    fn updated_leaves_equal_the_leaves_of_the_new_state() {
        let mut rng = Rng(2);
        for size in [0_u64, 1, 50, 20_000] {
            let mut state: State = (0..size).map(|n| (id(n), account(&mut rng))).collect();
            let mut leaves = Leaves::of(&state);
            for _ in 0..6 {
                let mut diff = StateDiff::default();
                for _ in 0..rng.below(200) {
                    // Ids both already present and new, before, between and after the others.
                    let n = rng.below(size.saturating_mul(2).saturating_add(10));
                    let post = if rng.below(4) == 0 { Account::default() } else { account(&mut rng) };
                    diff.accounts.insert(id(n), post);
                }
                let next = leaves.updated(&state, &diff);
                state.apply_diff(&diff);
                assert_eq!(next, Leaves::of(&state), "{size} accounts");
                assert_eq!(next.root(), Some(state.state_root()));
                leaves = next;
            }
            // Leaves that do not match the state are not trusted.
            let stale = Leaves(vec![[1; 32]; 3]);
            assert_eq!(stale.updated(&state, &StateDiff::default()), Leaves::of(&state));
        }
    }
}
