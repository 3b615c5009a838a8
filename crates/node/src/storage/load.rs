//! The parallel account loader: the accounts table split by id into key ranges ("pieces"),
//! which the loading threads take one after another from a shared queue, each piece read,
//! decoded and leaf-hashed from its stored bytes, all in one read transaction. A thread slowed
//! down (by the stream-index read `Chain::open` runs beside the load, or by another process)
//! takes fewer pieces, so the threads finish together. The calling thread also moves the
//! pieces read, in id order, into one vector as they come in, and hands their emptied vectors
//! back for the next pieces (memory already mapped, instead of fresh pages). The state is then
//! built in one pass from that vector ([`State::from_sorted`]) while another thread hashes the
//! inner nodes of the state root over the leaves.

use std::sync::{Condvar, Mutex, PoisonError};

use paystreams_lez_core::{Account, AccountId};
use paystreams_runtime::State;
use redb::{ReadableDatabase as _, ReadableTableMetadata as _};

use super::{LoadedState, RedbStorage, Storage, StorageError, decode, redb::ACCOUNTS};
use crate::root;

/// Most loading threads: pieces split the key space by the first byte of the id, so there are
/// at most 256 of them.
pub const LOAD_THREADS_MAX: usize = 256;

/// Pieces per loading thread: enough that the threads finish close together when one of them
/// is slowed down, few enough that each piece's vectors stay large.
const PIECES_PER_THREAD: usize = 8;

/// One key range of the accounts table.
type Piece = redb::Range<'static, &'static [u8], &'static [u8]>;

impl RedbStorage {
    /// [`crate::Storage::load_state_with_leaves`] on `threads` threads (the result does not
    /// depend on it).
    ///
    /// # Errors
    /// [`StorageError::LoadThreads`] unless `threads` is 1 to [`LOAD_THREADS_MAX`]; storage
    /// failure or corrupt record (the first in id order of those read, when several are).
    pub fn load_split(&self, threads: usize) -> Result<LoadedState, StorageError> {
        if !(1..=LOAD_THREADS_MAX).contains(&threads) {
            return Err(StorageError::LoadThreads { threads });
        }
        let txn = self.db.begin_read()?;
        let table = txn.open_table(ACCOUNTS)?;
        let total = usize::try_from(table.len()?).unwrap_or(0);
        let pieces = if threads == 1 { 1 } else { threads.saturating_mul(PIECES_PER_THREAD).min(256) };
        // Ids are hashes, so pieces by first byte hold about as many accounts each.
        let bounds: Vec<[u8; 1]> =
            (1..pieces).map(|i| [u8::try_from(i.saturating_mul(256) / pieces).unwrap_or(u8::MAX)]).collect();
        let mut queue: Vec<(usize, Piece)> = Vec::with_capacity(pieces);
        for i in 0..pieces {
            let lower = i.checked_sub(1).and_then(|j| bounds.get(j));
            let upper = bounds.get(i);
            let range = match (lower, upper) {
                (None, None) => table.range::<&[u8]>(..)?,
                (None, Some(hi)) => table.range::<&[u8]>(..hi.as_slice())?,
                (Some(lo), None) => table.range::<&[u8]>(lo.as_slice()..)?,
                (Some(lo), Some(hi)) => table.range::<&[u8]>(lo.as_slice()..hi.as_slice())?,
            };
            queue.push((i, range));
        }
        // Room for a fair share and an eighth more (room is only reserved, not touched, until
        // written); a piece that holds more grows its vectors.
        let share = total / pieces + total / pieces / 8 + 16;
        let loading = Loading {
            queue: Mutex::new(queue.into_iter()),
            board: Mutex::new(Board { pieces: (0..pieces).map(|_| None).collect(), running: 0, failed: false }),
            changed: Condvar::new(),
            spare: Mutex::new(Vec::new()),
            share,
        };
        let collected = std::thread::scope(|scope| {
            let helpers: Vec<_> = (1..threads)
                .map(|_| {
                    loading.board().running += 1;
                    scope.spawn(|| {
                        // Counted out even if it panics, so the collector stops waiting for it.
                        let _running = Running(&loading);
                        while loading.load_next() {}
                    })
                })
                .collect();
            // This thread loads too, and moves the pieces, in order, into one vector as they
            // come in.
            let collected = loading.collect(total, pieces);
            let joined = helpers.into_iter().all(|helper| helper.join().is_ok());
            collected.filter(|_| joined)
        });
        // The spare vectors go now, before the state's memory is allocated.
        drop(loading);
        let (accounts, leaves) = match collected {
            Some(Ok(collected)) => collected,
            // The first failed piece in id order (of those read) names the error.
            Some(Err(e)) => return Err(e),
            // A loading thread failed (not the data): load again on this thread alone.
            None => return self.load_serial(),
        };
        // The state is built on this thread while another hashes the root's inner nodes.
        let (state, root) = std::thread::scope(|scope| {
            let root = scope.spawn(|| root::merkle_root(leaves.clone()));
            let state = State::from_sorted(accounts);
            (state, root.join())
        });
        let state = state.map_err(|e| StorageError::corrupt("accounts", e))?;
        let root = root.ok().flatten().unwrap_or_else(|| state.state_root());
        Ok((state, leaves, root))
    }

    /// The accounts read on this thread alone, then hashed.
    fn load_serial(&self) -> Result<LoadedState, StorageError> {
        Ok(with_leaves_and_root(self.load_state()?))
    }
}

/// `state` with its state-root leaves in id order and the root over them, hashed from the
/// accounts (on every core for large states).
pub(super) fn with_leaves_and_root(state: State) -> LoadedState {
    let leaves = root::Leaves::of(&state).into_inner();
    let root = root::merkle_root(leaves.clone()).unwrap_or_else(|| state.state_root());
    (state, leaves, root)
}

/// The loading threads' shared work: pieces still to read, pieces read, vectors to reuse.
struct Loading {
    queue: Mutex<std::vec::IntoIter<(usize, Piece)>>,
    board: Mutex<Board>,
    /// Signalled when a piece is read or a loading thread stops.
    changed: Condvar,
    /// Vectors of pieces already moved out, emptied, their memory ready to be written again
    /// (instead of fresh pages for every piece).
    spare: Mutex<Vec<Loaded>>,
    /// Room to reserve for a piece.
    share: usize,
}

/// Pieces read (by index; taken out as they are collected), loading threads still running,
/// whether a piece failed.
struct Board {
    pieces: Vec<Option<Result<Loaded, StorageError>>>,
    running: usize,
    failed: bool,
}

/// Counts a loading thread out when it stops, however it stops.
struct Running<'a>(&'a Loading);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let mut board = self.0.board();
        board.running = board.running.saturating_sub(1);
        self.0.changed.notify_all();
    }
}

impl Loading {
    fn board(&self) -> std::sync::MutexGuard<'_, Board> {
        self.board.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads the next piece, if any is left and none failed; false when there was none.
    fn load_next(&self) -> bool {
        if self.board().failed {
            return false;
        }
        let Some((i, piece)) = self.queue.lock().unwrap_or_else(PoisonError::into_inner).next() else {
            return false;
        };
        let vectors = self.spare.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let loaded = load_piece(piece, vectors, self.share);
        let mut board = self.board();
        board.failed = board.failed || loaded.is_err();
        if let Some(slot) = board.pieces.get_mut(i) {
            *slot = Some(loaded);
        }
        self.changed.notify_all();
        true
    }

    /// Moves the pieces, in id order, into one vector of accounts and one of leaves, reading
    /// pieces on this thread while the next one to move is not read yet. `None` when a
    /// loading thread stopped before reading a piece it took (a bug, not the data).
    fn collect(&self, total: usize, pieces: usize) -> Option<Result<Loaded, StorageError>> {
        let mut accounts = Vec::with_capacity(total);
        let mut leaves = Vec::with_capacity(total);
        let mut next = 0;
        while next < pieces {
            let taken = self.board().pieces.get_mut(next).and_then(Option::take);
            match taken {
                Some(Ok((mut piece_accounts, mut piece_leaves))) => {
                    accounts.append(&mut piece_accounts);
                    leaves.append(&mut piece_leaves);
                    self.spare.lock().unwrap_or_else(PoisonError::into_inner).push((piece_accounts, piece_leaves));
                    next += 1;
                }
                Some(Err(e)) => {
                    self.board().failed = true;
                    return Some(Err(e));
                }
                None => {
                    if self.load_next() {
                        continue;
                    }
                    // Nothing left to read here: wait for the piece a helper is reading.
                    let board = self.board();
                    let board = self
                        .changed
                        .wait_while(board, |board| {
                            board.pieces.get(next).is_some_and(Option::is_none) && board.running > 0
                        })
                        .unwrap_or_else(PoisonError::into_inner);
                    if board.pieces.get(next).is_some_and(Option::is_none) {
                        // Every helper stopped and this piece was not read: after a failed
                        // piece (whose error comes first) or a helper that panicked.
                        let first_error = board.failed;
                        drop(board);
                        return if first_error { self.first_error(next) } else { None };
                    }
                }
            }
        }
        Some(Ok((accounts, leaves)))
    }

    /// The error of the first failed piece after `from`, once the loading threads stopped.
    fn first_error(&self, from: usize) -> Option<Result<Loaded, StorageError>> {
        let mut board = self.board();
        board.pieces.iter_mut().skip(from).find_map(|slot| match slot.take() {
            Some(Err(e)) => Some(Err(e)),
            _ => None,
        })
    }
}

/// One piece: its non-default accounts and their state-root leaves, both in id order.
type Loaded = (Vec<(AccountId, Account)>, Vec<[u8; 32]>);

/// Reads and decodes one piece into `vectors` (emptied ones to reuse) or new ones with room
/// for `capacity`; returns its non-default accounts and their state-root leaves, in id order.
fn load_piece(piece: Piece, vectors: Option<Loaded>, capacity: usize) -> Result<Loaded, StorageError> {
    let (mut accounts, mut leaves) =
        vectors.unwrap_or_else(|| (Vec::with_capacity(capacity), Vec::with_capacity(capacity)));
    for entry in piece {
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

    /// `count` accounts with ids spread over the whole key space (drawn from `seed`) and, for
    /// the first ones, at and around piece boundaries, of varied balances, data and nonces.
    fn random_state(count: u64, seed: u64) -> State {
        let mut state = State::new();
        for i in 0..count {
            let mut id = sha256(&[&seed.to_le_bytes(), &i.to_le_bytes()]);
            if let Some(first) = [0x00, 0x01, 0x0f, 0x10, 0x55, 0x56, 0x7f, 0x80, 0xaa, 0xab, 0xf0, 0xff]
                .get(usize::try_from(i).unwrap_or(usize::MAX))
            {
                id[0] = *first;
            }
            let data_len = usize::try_from(i.wrapping_add(seed) % 97).unwrap_or(0);
            state.insert(
                AccountId(id),
                Account {
                    program_owner: ProgramId([u32::try_from(i % 3).unwrap_or(0); 8]),
                    balance: u128::from(i ^ seed).wrapping_mul(1_000_003),
                    data: vec![u8::try_from(i % 251).unwrap_or(0); data_len],
                    nonce: u128::from(i % 5),
                },
            );
        }
        state
    }

    /// A redb storage in `dir` holding `state` as its genesis accounts.
    fn stored(dir: &std::path::Path, state: &State) -> RedbStorage {
        let storage = RedbStorage::open(&dir.join("chain.redb")).expect("open");
        init(&storage, state);
        storage
    }

    /// `state` stored as the genesis accounts of `storage`.
    fn init(storage: &dyn crate::Storage, state: &State) {
        let sequencer = paystreams_lez_core::crypto::SecretKey::from_bytes(&[1; 32]).expect("key");
        let genesis = GenesisSpec { release: LezRelease::DEFAULT, sequencer: sequencer.public_key(), accounts: vec![] };
        let block = crate::block::StoredBlock::seal(
            crate::chain::genesis_parts(state),
            &sequencer,
            LezRelease::DEFAULT.builtin_ids().clock,
        );
        storage.init(&genesis, &block, state).expect("init");
    }

    /// The parallel load builds the same state, leaves and root as the serial path (one
    /// thread reading, `State::state_root` over the result) on random states of several sizes,
    /// whatever the number of threads and pieces.
    #[test]
    fn parallel_load_equals_the_serial_load_and_its_root() {
        for (count, seed) in [(0, 1), (1, 2), (2, 3), (13, 4), (300, 5), (3_000, 6)] {
            let dir = tempfile::tempdir().expect("tempdir");
            let state = random_state(count, seed);
            let storage = stored(dir.path(), &state);
            let serial = storage.load_state().expect("serial load");
            assert_eq!(serial, state, "{count} accounts");
            let root = serial.state_root();
            let leaves = root::Leaves::of(&serial).into_inner();
            // The storage's default (load, then hash) agrees too.
            let memory = crate::storage::MemStorage::new();
            init(&memory, &state);
            let by_default = memory.load_state_with_leaves().expect("default load");
            assert_eq!(by_default, (serial.clone(), leaves.clone(), root), "{count} accounts");
            for threads in [1, 2, 3, 7, 64, LOAD_THREADS_MAX] {
                let (loaded, loaded_leaves, loaded_root) = storage.load_split(threads).expect("load");
                assert_eq!(loaded, serial, "{count} accounts, {threads} threads");
                assert!(loaded.iter().eq(serial.iter()), "{count} accounts, {threads} threads");
                assert_eq!(loaded_leaves, leaves, "{count} accounts, {threads} threads");
                assert_eq!(loaded_root, root, "{count} accounts, {threads} threads");
            }
        }
    }

    /// A stored row that does not decode, or whose key is not an id, fails the load with the
    /// storage's "corrupt record" error naming what is wrong, whichever piece holds it.
    #[test]
    fn a_corrupt_account_row_is_refused_with_a_clear_error() {
        let state = random_state(2_000, 7);
        let ids: Vec<AccountId> = state.iter().map(|(id, _)| *id).collect();
        // A row in the first piece, one in the middle, one in the last.
        for victim in [ids.first(), ids.get(ids.len() / 2), ids.last()].into_iter().flatten() {
            for (key, value, expected) in [
                // Cut short: the nonce is missing.
                (victim.0.to_vec(), vec![1_u8; 40], "corrupt database record account:"),
                // Data longer than an account may hold.
                (victim.0.to_vec(), [vec![1_u8; 48], u32::MAX.to_le_bytes().to_vec()].concat(), "exceeds"),
                // A key of 31 bytes beside the victim.
                (victim.0[..31].to_vec(), vec![0_u8; 68], "corrupt database record account id: not 32 bytes"),
            ] {
                let dir = tempfile::tempdir().expect("tempdir");
                let storage = stored(dir.path(), &state);
                {
                    let txn = storage.db.begin_write().expect("write");
                    txn.open_table(ACCOUNTS)
                        .expect("accounts")
                        .insert(key.as_slice(), value.as_slice())
                        .expect("insert");
                    txn.commit().expect("commit");
                }
                for threads in [1, 2, 5, 64] {
                    let error = storage.load_split(threads).expect_err("a corrupt row is refused");
                    let message = error.to_string();
                    assert!(message.contains(expected), "{threads} threads: {message}");
                    assert!(message.contains("move the data dir away"), "says what to do: {message}");
                }
            }
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
        let empty_root = State::new().state_root();
        assert_eq!(storage.load_split(LOAD_THREADS_MAX).expect("empty"), (State::new(), vec![], empty_root));
    }
}
