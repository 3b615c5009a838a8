//! The parallel account loader: the accounts table split by id into key ranges, each read,
//! decoded and leaf-hashed from its stored bytes on its own thread, in one read transaction;
//! the state is then built in one pass from the ranges' sorted accounts
//! ([`State::from_sorted`]).

use paystreams_lez_core::{Account, AccountId};
use paystreams_runtime::State;
use redb::{ReadableDatabase as _, ReadableTableMetadata as _};

use super::{RedbStorage, Storage as _, StorageError, decode, redb::ACCOUNTS};
use crate::root;

/// Most loading threads: ranges split the key space by the first byte of the id, so there are
/// at most 256 of them.
pub const LOAD_THREADS_MAX: usize = 256;

impl RedbStorage {
    /// [`crate::Storage::load_state_with_leaves`] over `threads` key ranges (the result does
    /// not depend on it).
    ///
    /// # Errors
    /// [`StorageError::LoadThreads`] unless `threads` is 1 to [`LOAD_THREADS_MAX`]; storage
    /// failure or corrupt record.
    pub fn load_split(&self, threads: usize) -> Result<(State, Vec<[u8; 32]>), StorageError> {
        if !(1..=LOAD_THREADS_MAX).contains(&threads) {
            return Err(StorageError::LoadThreads { threads });
        }
        let txn = self.db.begin_read()?;
        let table = txn.open_table(ACCOUNTS)?;
        let total = usize::try_from(table.len()?).unwrap_or(0);
        // Ids are hashes, so ranges by first byte hold about as many accounts each.
        let bounds: Vec<[u8; 1]> =
            (1..threads).map(|i| [u8::try_from(i.saturating_mul(256) / threads).unwrap_or(u8::MAX)]).collect();
        let mut ranges = Vec::with_capacity(threads);
        for i in 0..threads {
            let lower = i.checked_sub(1).and_then(|j| bounds.get(j));
            let upper = bounds.get(i);
            let range = match (lower, upper) {
                (None, None) => table.range::<&[u8]>(..)?,
                (None, Some(hi)) => table.range::<&[u8]>(..hi.as_slice())?,
                (Some(lo), None) => table.range::<&[u8]>(lo.as_slice()..)?,
                (Some(lo), Some(hi)) => table.range::<&[u8]>(lo.as_slice()..hi.as_slice())?,
            };
            ranges.push(range);
        }
        // Each range is read, decoded and leaf-hashed on its own thread (the last one on this
        // thread); the ranges come back in id order, so the state is built in one pass from
        // their concatenation, without a per-account search of the map.
        // The first range's vectors have room for every account, so the others are appended to
        // them (room only reserved, not touched, until written); the others get an eighth more
        // than a fair share.
        let share = total / threads + total / threads / 8 + 16;
        let mut ranges = ranges.into_iter();
        let last = ranges.next_back();
        let parts: Vec<std::thread::Result<Result<Loaded, StorageError>>> = std::thread::scope(|scope| {
            let workers: Vec<_> = ranges
                .enumerate()
                .map(|(i, range)| {
                    let capacity = if i == 0 { total.saturating_add(16) } else { share };
                    scope.spawn(move || load_range(range, capacity))
                })
                .collect();
            let capacity = if threads == 1 { total.saturating_add(16) } else { share };
            let mine = last.map(|range| load_range(range, capacity));
            workers.into_iter().map(|worker| worker.join()).chain(mine.map(Ok)).collect()
        });
        let mut accounts = Vec::new();
        let mut leaves = Vec::new();
        for part in parts {
            let Ok(part) = part else {
                // A loading thread failed (not the data): load again on this thread alone.
                drop(accounts);
                let state = self.load_state()?;
                let leaves = root::Leaves::of(&state).into_inner();
                return Ok((state, leaves));
            };
            let (part_accounts, part_leaves) = part?;
            if accounts.is_empty() {
                // Whatever it held (nothing yet, or only an empty range) is replaced.
                accounts = part_accounts;
                leaves = part_leaves;
            } else {
                accounts.extend(part_accounts);
                leaves.extend(part_leaves);
            }
        }
        let state = State::from_sorted(accounts).map_err(|e| StorageError::corrupt("accounts", e))?;
        Ok((state, leaves))
    }
}

/// One key range: its non-default accounts and their state-root leaves, both in id order.
type Loaded = (Vec<(AccountId, Account)>, Vec<[u8; 32]>);

/// Reads and decodes one key range; returns its non-default accounts and their state-root
/// leaves, in id order.
fn load_range(
    range: redb::Range<'static, &'static [u8], &'static [u8]>,
    capacity: usize,
) -> Result<Loaded, StorageError> {
    let mut leaves = Vec::with_capacity(capacity);
    let mut accounts = Vec::with_capacity(capacity);
    for entry in range {
        let (key, value) = entry?;
        let id: [u8; 32] = key.value().try_into().map_err(|_| StorageError::corrupt("account id", "not 32 bytes"))?;
        let bytes = value.value();
        let account: Account = decode("account", bytes)?;
        // The state holds no default account, and its root has no leaf for one.
        if account.is_default() {
            continue;
        }
        // Borsh is canonical: the stored bytes are `borsh(account)`, which the leaf hashes.
        leaves.push(root::leaf(&AccountId(id), bytes));
        accounts.push((AccountId(id), account));
    }
    Ok((accounts, leaves))
}

#[cfg(test)]
mod tests {
    use paystreams_lez_core::{ProgramId, lez_release::LezRelease, sha256};

    use super::*;
    use crate::block::GenesisSpec;

    /// `count` accounts with ids spread over the whole key space and at the split points, of
    /// varied balances, data and nonces.
    fn random_state(count: u64) -> State {
        let mut state = State::new();
        for i in 0..count {
            let mut id = sha256(&[&i.to_le_bytes()]);
            if i < 8 {
                // First bytes at and around the range boundaries.
                id[0] = [0x00, 0x55, 0x56, 0x7f, 0x80, 0xaa, 0xab, 0xff][usize::try_from(i).unwrap_or(0)];
            }
            let data_len = usize::try_from(i % 97).unwrap_or(0);
            state.insert(
                AccountId(id),
                Account {
                    program_owner: ProgramId([u32::try_from(i % 3).unwrap_or(0); 8]),
                    balance: u128::from(i).wrapping_mul(1_000_003),
                    data: vec![u8::try_from(i % 251).unwrap_or(0); data_len],
                    nonce: u128::from(i % 5),
                },
            );
        }
        state
    }

    #[test]
    fn split_load_equals_load_state_and_its_root_for_any_split() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = RedbStorage::open(&dir.path().join("chain.redb")).expect("open");
        let empty = storage.load_split(3).expect("load empty");
        assert_eq!(empty, (State::new(), vec![]));
        let state = random_state(3_000);
        let sequencer = paystreams_lez_core::crypto::SecretKey::from_bytes(&[1; 32]).expect("key");
        let genesis = GenesisSpec { release: LezRelease::DEFAULT, sequencer: sequencer.public_key(), accounts: vec![] };
        let block = crate::block::StoredBlock::seal(
            crate::chain::genesis_parts(&state),
            &sequencer,
            LezRelease::DEFAULT.builtin_ids().clock,
        );
        storage.init(&genesis, &block, &state).expect("init");
        let loaded = storage.load_state().expect("load");
        assert_eq!(loaded, state);
        let leaves = root::Leaves::of(&state).into_inner();
        for threads in [1, 2, 3, 7, 64] {
            let (loaded, loaded_leaves) = storage.load_split(threads).expect("load");
            assert_eq!(loaded, state, "{threads} ranges");
            assert_eq!(loaded_leaves, leaves, "{threads} ranges");
            assert_eq!(root::merkle_root(loaded_leaves), Some(state.state_root()), "{threads} ranges");
        }
    }

    #[test]
    fn a_thread_count_outside_1_to_256_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = RedbStorage::open(&dir.path().join("chain.redb")).expect("open");
        for threads in [0, LOAD_THREADS_MAX + 1] {
            let error = storage.load_split(threads).expect_err("refused");
            assert!(error.to_string().contains("use 1 to 256"), "{error}");
        }
        assert!(storage.load_split(LOAD_THREADS_MAX).is_ok());
    }
}
