//! The stored event index, in its own redb file (`chain.events.redb` beside `chain.redb`): one
//! table of events by cursor, one key-only table per secondary lookup (owner, vault, stream,
//! provider; see [`crate::index::event_keys`]), and a marker in its `meta` naming the last block
//! indexed (height and hash).
//!
//! **Written behind the block, by its own thread.** The index is derived from the stored blocks
//! and their receipts, so a block's write does not wait for it: once the block is durable, its
//! events go to the indexer thread, which writes every block waiting for it in one transaction
//! when the index is current at the first one's parent. A reader asks for the chain file's head
//! and waits (at most [`READ_WAIT`]) until the index has reached it, so a page read after a
//! block holds that block's events, as when the index was written in the block's own
//! transaction. After a crash, a data dir of an older layout (the tables in the chain file,
//! dropped at open), a missing file, or a marker that names no stored block, [`catch_up`]
//! brings the index up to the head from the stored blocks and their receipts; the chain runs it
//! at open, and the indexer runs it whenever a block arrives that does not follow its marker.
//!
//! **The hand-off is bounded.** Blocks wait for the indexer with their events in memory, at
//! most [`QUEUED_EVENTS`] events in all. A block that would go beyond that empties the queue
//! and asks for a catch-up instead: the indexer then reads what it missed from the chain file,
//! so a slow index file costs the index time, never the node memory or the block its commit.

use std::{
    collections::VecDeque,
    path::Path,
    sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, mpsc},
    time::{Duration, Instant},
};

use borsh::{BorshDeserialize, BorshSerialize};
use paystreams_lez_core::lez_block::GENESIS_BLOCK_ID;
use paystreams_rpc::{EventCursor, EventFilter, EventPage, IndexedEvent};
use redb::{ReadableDatabase as _, TableDefinition};

use super::{
    StorageError, decode,
    redb::{BLOCKS, META, RECEIPTS, begin_write, read_head},
};
use crate::{
    block::{StoredBlock, StoredReceipt, encode},
    index::{self, EventLookup, EventSource, StoredEvent},
};

/// Cursor (block id ‖ index, big-endian) → borsh [`StoredEvent`].
pub(super) const EVENTS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("events");
/// Owner ‖ cursor → nothing.
pub(super) const EVENTS_BY_OWNER: TableDefinition<'_, &[u8], ()> = TableDefinition::new("events_by_owner");
/// Owner ‖ vault id ‖ cursor → nothing.
pub(super) const EVENTS_BY_VAULT: TableDefinition<'_, &[u8], ()> = TableDefinition::new("events_by_vault");
/// Owner ‖ vault id ‖ stream id ‖ cursor → nothing.
pub(super) const EVENTS_BY_STREAM: TableDefinition<'_, &[u8], ()> = TableDefinition::new("events_by_stream");
/// Provider ‖ cursor → nothing.
pub(super) const EVENTS_BY_PROVIDER: TableDefinition<'_, &[u8], ()> = TableDefinition::new("events_by_provider");

/// The index file's `"event_index"` → the [`EventMarker`]. Older layouts kept the marker (and
/// the tables) in the chain file's `meta`.
const INDEX_META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");

/// Key of the [`EventMarker`].
const MARKER_KEY: &str = "event_index";

/// Longest a read waits for the index to reach the head it was asked at; then it answers with
/// what the index holds (the page names the last block it covers).
pub(super) const READ_WAIT: Duration = Duration::from_secs(5);

/// The index file's page cache: the index is written in order and read by key ranges.
const INDEX_CACHE_BYTES: usize = 64 * 1024 * 1024;
/// Format of the stored event index; a marker of another version is stale (rebuilt).
const EVENT_INDEX_VERSION: u32 = 1;
/// Blocks indexed per write transaction while catching up.
const CATCH_UP_BLOCKS: u64 = 1_000;
/// Most events waiting in memory for the indexer (a few hundred bytes each); beyond it, the
/// waiting blocks are dropped and the indexer catches up from the chain file.
const QUEUED_EVENTS: usize = 100_000;

/// The last block the stored event index holds.
#[derive(Clone, Copy, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
struct EventMarker {
    version: u32,
    height: u64,
    block_hash: [u8; 32],
}

impl EventMarker {
    fn of(block: &StoredBlock) -> Self {
        Self { version: EVENT_INDEX_VERSION, height: block.height(), block_hash: block.hash() }
    }
}

fn secondary(lookup: EventLookup) -> Option<TableDefinition<'static, &'static [u8], ()>> {
    match lookup {
        EventLookup::All => None,
        EventLookup::Owner => Some(EVENTS_BY_OWNER),
        EventLookup::Vault => Some(EVENTS_BY_VAULT),
        EventLookup::Stream => Some(EVENTS_BY_STREAM),
        EventLookup::Provider => Some(EVENTS_BY_PROVIDER),
    }
}

/// Creates the index file's tables.
fn create_tables(txn: &redb::WriteTransaction) -> Result<(), StorageError> {
    txn.open_table(INDEX_META)?;
    txn.open_table(EVENTS)?;
    for lookup in EventLookup::SECONDARY {
        if let Some(table) = secondary(lookup) {
            txn.open_table(table)?;
        }
    }
    Ok(())
}

fn read_marker(
    meta: &impl redb::ReadableTable<&'static str, &'static [u8]>,
) -> Result<Option<EventMarker>, StorageError> {
    // An undecodable marker (another version) is a stale index, not a corrupt database.
    Ok(meta
        .get(MARKER_KEY)?
        .and_then(|v| EventMarker::try_from_slice(v.value()).ok())
        .filter(|m| m.version == EVENT_INDEX_VERSION))
}

/// Drops an index an older layout kept in the chain file (its tables and its marker), in the
/// chain file's `txn`: the index file is rebuilt from the blocks instead.
pub(super) fn drop_from_chain_file(txn: &redb::WriteTransaction) -> Result<(), StorageError> {
    txn.delete_table(EVENTS)?;
    for lookup in EventLookup::SECONDARY {
        if let Some(table) = secondary(lookup) {
            txn.delete_table(table)?;
        }
    }
    txn.open_table(META)?.remove(MARKER_KEY)?;
    Ok(())
}

/// The index file beside the chain file `path` (`chain.events.redb` beside `chain.redb`).
#[must_use]
pub(super) fn index_path(path: &Path) -> std::path::PathBuf {
    path.with_extension("events.redb")
}

/// A durable block's events, on their way to the indexer.
struct BlockEvents {
    height: u64,
    hash: [u8; 32],
    parent_hash: [u8; 32],
    events: Vec<IndexedEvent>,
}

/// A reply to [`EventIndex::catch_up`]: the count of blocks indexed.
type CatchUpReply = mpsc::Sender<Result<u64, StorageError>>;

/// What waits for the indexer: blocks with their events (at most `limit` events in all), whether
/// a catch-up is asked for, and who waits for its answer.
struct Queue {
    blocks: VecDeque<BlockEvents>,
    events: usize,
    limit: usize,
    catch_up: bool,
    replies: Vec<CatchUpReply>,
    /// No more work is taken: the index is being closed, or its writer has ended.
    closed: bool,
}

/// One turn of the indexer's work, taken from the [`Queue`] at once.
struct Work {
    blocks: Vec<BlockEvents>,
    catch_up: bool,
    replies: Vec<CatchUpReply>,
}

impl Queue {
    fn new(limit: usize) -> Self {
        Self { blocks: VecDeque::new(), events: 0, limit, catch_up: false, replies: Vec::new(), closed: false }
    }

    /// Queues a block; one that would take the queue beyond its limit empties it and asks for a
    /// catch-up instead (the blocks dropped are read back from the chain file). `false` once
    /// closed.
    fn push(&mut self, block: BlockEvents) -> bool {
        if self.closed {
            return false;
        }
        let events = self.events.saturating_add(block.events.len());
        if events > self.limit {
            if !self.catch_up {
                tracing::warn!(
                    blocks = self.blocks.len().saturating_add(1),
                    "the event index is behind; it catches up from the chain file"
                );
            }
            self.blocks.clear();
            self.events = 0;
            self.catch_up = true;
        } else {
            self.blocks.push_back(block);
            self.events = events;
        }
        true
    }

    /// Asks for a catch-up, answered on `reply` when given; `false` once closed.
    fn ask_catch_up(&mut self, reply: Option<CatchUpReply>) -> bool {
        if self.closed {
            return false;
        }
        self.catch_up = true;
        self.replies.extend(reply);
        true
    }

    fn is_idle(&self) -> bool {
        self.blocks.is_empty() && !self.catch_up
    }

    /// Everything waiting, leaving the queue empty.
    fn take(&mut self) -> Work {
        self.events = 0;
        Work {
            blocks: std::mem::take(&mut self.blocks).into(),
            catch_up: std::mem::take(&mut self.catch_up),
            replies: std::mem::take(&mut self.replies),
        }
    }

    /// Takes no more work and drops the waiting replies, so their callers stop waiting.
    fn close(&mut self) {
        self.closed = true;
        self.replies.clear();
    }
}

/// How far the index is, for readers waiting on it.
#[derive(Default)]
struct Progress {
    /// The last block the index holds.
    through: Option<u64>,
    /// The indexer's last write failed: readers answer from what is there instead of waiting.
    failed: bool,
}

/// The index file and what the indexer and the readers share.
struct Shared {
    db: redb::Database,
    chain: Arc<redb::Database>,
    queue: Mutex<Queue>,
    /// Signalled when work is queued or the queue is closed.
    queued: Condvar,
    progress: Mutex<Progress>,
    moved: Condvar,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The event index of a chain file: its own file and the thread that writes it.
pub(super) struct EventIndex {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Closes the queue when the indexer ends, however it ends, so no caller waits on it.
struct ClosesQueue<'a>(&'a Shared);

impl Drop for ClosesQueue<'_> {
    fn drop(&mut self) {
        lock(&self.0.queue).close();
    }
}

impl EventIndex {
    /// Opens (creating if needed) the index file beside the chain file `path` and starts its
    /// writer.
    ///
    /// # Errors
    /// Storage failure, or [`StorageError::AlreadyOpen`].
    pub(super) fn open(path: &Path, chain: Arc<redb::Database>) -> Result<Self, StorageError> {
        let db = super::redb::open_file(&index_path(path), INDEX_CACHE_BYTES)?;
        let txn = begin_write(&db)?;
        create_tables(&txn)?;
        txn.commit()?;
        let shared = Arc::new(Shared {
            db,
            chain,
            queue: Mutex::new(Queue::new(QUEUED_EVENTS)),
            queued: Condvar::new(),
            progress: Mutex::default(),
            moved: Condvar::new(),
        });
        lock(&shared.progress).through = shared.indexed_through()?;
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("event-indexer".into())
                .spawn(move || shared.run())
                .map_err(|e| StorageError::Database(redb::Error::Io(e)))?
        };
        Ok(Self { shared, thread: Some(thread) })
    }

    /// Hands a durable block's events to the indexer.
    pub(super) fn block_written(&self, block: &StoredBlock, receipts: &[StoredReceipt]) {
        let events = index::block_events(block.height(), block.timestamp_ms(), receipts);
        let block =
            BlockEvents { height: block.height(), hash: block.hash(), parent_hash: block.parent_hash(), events };
        self.queued(|queue| queue.push(block));
    }

    /// Lets at most `events` events wait for the indexer.
    pub(super) fn set_queue_limit(&self, events: usize) {
        lock(&self.shared.queue).limit = events;
    }

    /// Asks the indexer to catch up with the head, without waiting.
    pub(super) fn catch_up_later(&self) {
        self.queued(|queue| queue.ask_catch_up(None));
    }

    fn queued(&self, add: impl FnOnce(&mut Queue) -> bool) {
        if add(&mut lock(&self.shared.queue)) {
            self.shared.queued.notify_one();
        } else {
            // Without a writer (it ended), the next open catches the index up.
            tracing::warn!("the event indexer has stopped; the index is caught up at the next start");
        }
    }

    /// Brings the index up to the head (on the indexer's thread) and returns how many blocks it
    /// indexed.
    ///
    /// # Errors
    /// Storage failure.
    pub(super) fn catch_up(&self) -> Result<u64, StorageError> {
        let (reply, answer) = mpsc::channel();
        self.queued(|queue| queue.ask_catch_up(Some(reply)));
        // A closed queue drops the reply: the catch-up runs here instead.
        answer.recv().unwrap_or_else(|_| self.shared.catch_up())
    }

    /// The block the stored index is current at, if its marker names a stored block.
    ///
    /// # Errors
    /// Storage failure or corrupt record.
    pub(super) fn indexed_through(&self) -> Result<Option<u64>, StorageError> {
        self.shared.indexed_through()
    }

    /// One page of the index, once it has reached the chain file's head (or [`READ_WAIT`]
    /// passed, or the indexer's last write failed).
    ///
    /// # Errors
    /// Storage failure, or [`StorageError::NoEventIndex`] while no index is stored.
    pub(super) fn page(
        &self,
        filter: &EventFilter,
        after: Option<EventCursor>,
        limit: u32,
    ) -> Result<EventPage, StorageError> {
        if let Some(head) = read_head(&self.shared.chain.begin_read()?)? {
            let deadline = Instant::now() + READ_WAIT;
            let mut progress = lock(&self.shared.progress);
            while progress.through < Some(head) && !progress.failed {
                let Some(left) = deadline.checked_duration_since(Instant::now()) else { break };
                progress = self.shared.moved.wait_timeout(progress, left).unwrap_or_else(PoisonError::into_inner).0;
            }
        }
        let txn = self.shared.db.begin_read()?;
        let through = read_marker(&txn.open_table(INDEX_META)?)?.ok_or(StorageError::NoEventIndex)?.height;
        let view = ReadView { events: txn.open_table(EVENTS)?, txn: &txn };
        index::read_page(&view, filter, after, limit, through)
    }
}

impl Drop for EventIndex {
    /// Lets the indexer write what it was handed, then closes the file (the data dir can be
    /// opened again as soon as the storage is dropped).
    fn drop(&mut self) {
        lock(&self.shared.queue).closed = true;
        self.shared.queued.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Shared {
    /// The indexer: everything waiting is taken together; the blocks that follow the marker are
    /// written in one transaction; a block that does not, or a catch-up asked for, runs the
    /// catch-up from the stored blocks. Once closed, it writes what is left and ends.
    fn run(&self) {
        let _closes = ClosesQueue(self);
        loop {
            let Work { blocks, catch_up, replies } = {
                let mut queue = lock(&self.queue);
                while queue.is_idle() && !queue.closed {
                    queue = self.queued.wait(queue).unwrap_or_else(PoisonError::into_inner);
                }
                if queue.is_idle() {
                    return;
                }
                queue.take()
            };
            let outcome = self.write_blocks(&blocks).and_then(|followed| {
                let mut indexed = 0;
                if catch_up || !followed {
                    indexed = self.catch_up()?;
                }
                Ok(indexed)
            });
            {
                let mut progress = lock(&self.progress);
                progress.failed = outcome.is_err();
                if let Ok(Some(marker)) = self
                    .db
                    .begin_read()
                    .map_err(StorageError::from)
                    .and_then(|txn| read_marker(&txn.open_table(INDEX_META)?))
                {
                    progress.through = Some(marker.height);
                }
            }
            self.moved.notify_all();
            match outcome {
                Ok(indexed) => {
                    for reply in replies {
                        let _ = reply.send(Ok(indexed));
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "event index not written; it is caught up with the next block");
                    for reply in replies {
                        let _ = reply.send(Err(StorageError::Database(redb::Error::Io(std::io::Error::other(
                            format!("event index not written: {e}"),
                        )))));
                    }
                }
            }
        }
    }

    /// Writes the blocks that follow the marker, in one transaction, up to the first that does
    /// not; `false` when one did not.
    fn write_blocks(&self, blocks: &[BlockEvents]) -> Result<bool, StorageError> {
        if blocks.is_empty() {
            return Ok(true);
        }
        let txn = begin_write(&self.db)?;
        let mut marker = read_marker(&txn.open_table(INDEX_META)?)?;
        let mut followed = true;
        for block in blocks {
            // Anything else (no marker yet, a gap, a block a catch-up already indexed, a marker
            // of another chain) is the catch-up's to sort out against the stored blocks.
            let at = marker.map(|m| (m.height, m.block_hash));
            if at != block.height.checked_sub(1).map(|parent| (parent, block.parent_hash)) {
                followed = false;
                break;
            }
            write_events(&txn, &block.events)?;
            marker = Some(EventMarker { version: EVENT_INDEX_VERSION, height: block.height, block_hash: block.hash });
        }
        if let Some(marker) = marker {
            txn.open_table(INDEX_META)?.insert(MARKER_KEY, encode(&marker).as_slice())?;
        }
        txn.commit()?;
        Ok(followed)
    }

    /// The block the stored index is current at, if its marker names a stored block.
    fn indexed_through(&self) -> Result<Option<u64>, StorageError> {
        let Some(marker) = read_marker(&self.db.begin_read()?.open_table(INDEX_META)?)? else { return Ok(None) };
        let chain = self.chain.begin_read()?;
        let blocks = chain.open_table(BLOCKS)?;
        let Some(stored) = blocks.get(marker.height)? else { return Ok(None) };
        let block: StoredBlock = decode(&format!("block {}", marker.height), stored.value())?;
        Ok((block.hash() == marker.block_hash).then_some(marker.height))
    }

    /// Brings the index up to the chain file's head from the stored blocks and their receipts
    /// (from the start when it has no valid marker), [`CATCH_UP_BLOCKS`] blocks per
    /// transaction. Returns how many blocks it indexed.
    fn catch_up(&self) -> Result<u64, StorageError> {
        let chain = self.chain.begin_read()?;
        let Some(head) = read_head(&chain)? else { return Ok(0) };
        let mut next = match self.indexed_through()? {
            Some(height) => height.saturating_add(1),
            None => {
                let txn = begin_write(&self.db)?;
                clear(&txn)?;
                txn.commit()?;
                GENESIS_BLOCK_ID
            }
        };
        let blocks = chain.open_table(BLOCKS)?;
        let receipts = chain.open_table(RECEIPTS)?;
        let mut indexed = 0_u64;
        while next <= head {
            let last = next.saturating_add(CATCH_UP_BLOCKS - 1).min(head);
            let txn = begin_write(&self.db)?;
            let mut marker = None;
            for height in next..=last {
                let block: StoredBlock = {
                    let stored = blocks.get(height)?.ok_or_else(|| {
                        StorageError::corrupt(format!("block {height}"), "missing below the head while indexing events")
                    })?;
                    decode(&format!("block {height}"), stored.value())?
                };
                let block_receipts = block
                    .transactions
                    .iter()
                    .map(|tx| {
                        let hash = tx.hash();
                        let stored = receipts.get(hash.as_slice())?.ok_or_else(|| {
                            StorageError::corrupt(format!("receipts of block {height}"), "a transaction has no receipt")
                        })?;
                        decode::<StoredReceipt>("receipt", stored.value())
                    })
                    .collect::<Result<Vec<_>, StorageError>>()?;
                write_events(&txn, &index::block_events(height, block.timestamp_ms(), &block_receipts))?;
                marker = Some(EventMarker::of(&block));
            }
            if let Some(marker) = marker {
                txn.open_table(INDEX_META)?.insert(MARKER_KEY, encode(&marker).as_slice())?;
            }
            txn.commit()?;
            indexed = indexed.saturating_add(last - next + 1);
            next = last.saturating_add(1);
        }
        Ok(indexed)
    }
}

/// Writes a block's events (the caller moves the marker).
fn write_events(txn: &redb::WriteTransaction, events: &[IndexedEvent]) -> Result<(), StorageError> {
    if events.is_empty() {
        return Ok(());
    }
    let mut table = txn.open_table(EVENTS)?;
    let mut owner = txn.open_table(EVENTS_BY_OWNER)?;
    let mut vault = txn.open_table(EVENTS_BY_VAULT)?;
    let mut stream = txn.open_table(EVENTS_BY_STREAM)?;
    let mut provider = txn.open_table(EVENTS_BY_PROVIDER)?;
    for event in events {
        table.insert(index::cursor_key(event.cursor).as_slice(), encode(&StoredEvent::of(event)).as_slice())?;
        for (lookup, key) in index::event_keys(event.cursor, &event.notification.event) {
            let target = match lookup {
                EventLookup::All => continue,
                EventLookup::Owner => &mut owner,
                EventLookup::Vault => &mut vault,
                EventLookup::Stream => &mut stream,
                EventLookup::Provider => &mut provider,
            };
            target.insert(key.as_slice(), ())?;
        }
    }
    Ok(())
}

/// Empties the index and drops its marker.
fn clear(txn: &redb::WriteTransaction) -> Result<(), StorageError> {
    txn.delete_table(EVENTS)?;
    for lookup in EventLookup::SECONDARY {
        if let Some(table) = secondary(lookup) {
            txn.delete_table(table)?;
        }
    }
    create_tables(txn)?;
    txn.open_table(INDEX_META)?.remove(MARKER_KEY)?;
    Ok(())
}

/// The index as one read transaction sees it.
struct ReadView<'a> {
    txn: &'a redb::ReadTransaction,
    events: redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
}

impl EventSource for ReadView<'_> {
    type Error = StorageError;

    fn keys(
        &self,
        lookup: EventLookup,
        prefix: &[u8],
        start: &[u8],
        visit: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<(), StorageError> {
        match secondary(lookup) {
            None => {
                for entry in self.events.range(start..)? {
                    let (key, _) = entry?;
                    if !key.value().starts_with(prefix) || !visit(key.value()) {
                        break;
                    }
                }
            }
            Some(table) => {
                let table = self.txn.open_table(table)?;
                for entry in table.range(start..)? {
                    let (key, _) = entry?;
                    if !key.value().starts_with(prefix) || !visit(key.value()) {
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    fn event(&self, cursor: EventCursor) -> Result<Option<StoredEvent>, StorageError> {
        self.events.get(index::cursor_key(cursor).as_slice())?.map(|v| decode("event", v.value())).transpose()
    }
}

#[cfg(test)]
mod tests {
    use paystreams_lez_core::AccountId;
    use paystreams_program::Event;
    use paystreams_rpc::{EventNotification, HexHash};

    use super::*;

    /// Block `height` with `events` deposits.
    fn block(height: u64, events: u32) -> BlockEvents {
        let events = (0..events)
            .map(|index| IndexedEvent {
                cursor: EventCursor { block_id: height, index },
                notification: EventNotification {
                    block_id: height,
                    timestamp_ms: height,
                    tx_hash: HexHash([0; 32]),
                    event: Event::Deposited { owner: AccountId([7; 32]), vault_id: 0, amount: 1 },
                },
            })
            .collect();
        BlockEvents { height, hash: [height as u8; 32], parent_hash: [0; 32], events }
    }

    fn heights(work: &Work) -> Vec<u64> {
        work.blocks.iter().map(|b| b.height).collect()
    }

    #[test]
    fn blocks_within_the_limit_wait_in_order_and_are_taken_together() {
        let mut queue = Queue::new(10);
        assert!(queue.is_idle());
        for height in 1..=3 {
            assert!(queue.push(block(height, 3)));
        }
        assert_eq!(queue.events, 9);
        let work = queue.take();
        assert_eq!(heights(&work), [1, 2, 3]);
        assert!(!work.catch_up);
        assert!(queue.is_idle());
        assert_eq!(queue.events, 0);
    }

    #[test]
    fn a_block_beyond_the_limit_drops_the_waiting_blocks_for_a_catch_up() {
        let mut queue = Queue::new(10);
        assert!(queue.push(block(1, 6)));
        assert!(queue.push(block(2, 5)), "the queue takes it, as a catch-up");
        assert_eq!(queue.events, 0, "nothing held in memory");
        assert!(queue.blocks.is_empty());
        // Later blocks queue again, beside the catch-up asked for (the indexer writes those
        // that follow its marker; the catch-up reads the rest back from the chain file).
        assert!(queue.push(block(3, 4)));
        let work = queue.take();
        assert!(work.catch_up);
        assert_eq!(heights(&work), [3]);
        // A block alone beyond the limit is never held either.
        assert!(queue.push(block(4, 11)));
        let work = queue.take();
        assert!(work.catch_up);
        assert!(work.blocks.is_empty());
    }

    #[test]
    fn a_closed_queue_takes_nothing_and_lets_go_of_its_waiting_callers() {
        let mut queue = Queue::new(10);
        let (reply, answer) = mpsc::channel();
        assert!(queue.ask_catch_up(Some(reply)));
        queue.close();
        assert!(answer.recv().is_err(), "a caller waiting for the catch-up's answer is let go");
        assert!(!queue.push(block(1, 1)));
        assert!(!queue.ask_catch_up(None));
    }

    #[test]
    fn an_asked_catch_up_answers_every_caller() {
        let mut queue = Queue::new(10);
        let (first, first_answer) = mpsc::channel();
        let (second, second_answer) = mpsc::channel();
        assert!(queue.ask_catch_up(Some(first)));
        assert!(queue.ask_catch_up(None));
        assert!(queue.ask_catch_up(Some(second)));
        let work = queue.take();
        assert!(work.catch_up);
        assert_eq!(work.replies.len(), 2);
        for reply in work.replies {
            reply.send(Ok(4)).expect("the caller waits");
        }
        assert_eq!(first_answer.recv().expect("answered").expect("ok"), 4);
        assert_eq!(second_answer.recv().expect("answered").expect("ok"), 4);
    }
}
