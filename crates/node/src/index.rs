//! The node's indexes: the stream index and the event index.
//!
//! The stream index behind `paystreams_listVaults` / `paystreams_listStreams`: owner → vault ids and provider →
//! (owner, vault id, stream id).
//!
//! It is a function of the state ([`StreamIndex::rebuild`]): every vault config at its own PDA,
//! and every stream of such a vault below its `next_stream_id`. Blocks extend it from their
//! `VaultInitialized` / `StreamCreated` events ([`StreamIndex::record`]), which add exactly those
//! accounts. `RedbStorage` persists it, written in the same transaction as the block that
//! changes it, so a restart loads it instead of rebuilding it.
//!
//! The event index behind `paystreams_getEvents`: every payment-streams event of every committed
//! block at its [`EventCursor`] (block id, ordinal among the block's events), and the same
//! cursors by owner, by vault, by stream and by provider. [`block_events`] says what a block adds
//! (from its receipts, so a rebuild from stored blocks and receipts gives the same entries);
//! [`event_keys`] is the key layout both storages use, and [`read_page`] the one paging rule
//! over it. Storages write a block's entries in the block's own commit.

use std::collections::{BTreeMap, BTreeSet};

use paystreams_lez_core::{AccountId, ProgramId};
use paystreams_program::{
    Event, pda,
    state::{StreamConfig, VAULT_CONFIG_LEN, VaultConfig, decode},
};
use paystreams_rpc::{EventCursor, EventFilter, EventNotification, EventPage, HexHash, IndexedEvent};
use paystreams_runtime::{ReceiptEvent, State};

use crate::block::StoredReceipt;

/// (owner, vault id, stream id) of one stream.
pub type StreamKey = (AccountId, u64, u64);

/// owner → vault ids, provider → streams.
#[derive(Clone, Default, Debug, PartialEq, Eq)]
pub struct StreamIndex {
    pub vaults: BTreeMap<AccountId, BTreeSet<u64>>,
    pub provider_streams: BTreeMap<AccountId, BTreeSet<StreamKey>>,
}

/// Below this many vaults the rebuild runs on the calling thread (a thread costs more).
const PARALLEL_MIN_VAULTS: usize = 4_096;

impl StreamIndex {
    /// Adds what a committed event adds.
    pub fn record(&mut self, event: &Event) {
        match event {
            Event::VaultInitialized { owner, vault_id, .. } => {
                self.vaults.entry(*owner).or_default().insert(*vault_id);
            }
            Event::StreamCreated { stream, .. } => {
                self.provider_streams.entry(stream.provider).or_default().insert((
                    stream.owner,
                    stream.vault_id,
                    stream.stream_id,
                ));
            }
            _ => {}
        }
    }

    /// Adds every entry of `other`.
    pub fn extend(&mut self, other: &Self) {
        for (owner, ids) in &other.vaults {
            self.vaults.entry(*owner).or_default().extend(ids);
        }
        for (provider, streams) in &other.provider_streams {
            self.provider_streams.entry(*provider).or_default().extend(streams);
        }
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.vaults.is_empty() && self.provider_streams.is_empty()
    }

    /// Every (owner, vault id), in order.
    pub fn vault_entries(&self) -> impl Iterator<Item = (&AccountId, u64)> {
        self.vaults.iter().flat_map(|(owner, ids)| ids.iter().map(move |id| (owner, *id)))
    }

    /// Every (provider, stream), in order.
    pub fn stream_entries(&self) -> impl Iterator<Item = (&AccountId, &StreamKey)> {
        self.provider_streams.iter().flat_map(|(provider, keys)| keys.iter().map(move |key| (provider, key)))
    }

    /// Builds the index from state, on every core for large states.
    #[must_use]
    pub fn rebuild(state: &State, program_id: &ProgramId) -> Self {
        let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        Self::rebuild_on(state, program_id, threads)
    }

    /// [`StreamIndex::rebuild`] on at most `threads` threads (the result does not depend on it).
    #[must_use]
    pub fn rebuild_on(state: &State, program_id: &ProgramId, threads: usize) -> Self {
        Self::rebuild_split(state, program_id, threads, PARALLEL_MIN_VAULTS)
    }

    fn rebuild_split(state: &State, program_id: &ProgramId, threads: usize, parallel_min: usize) -> Self {
        // Candidates by owner and size alone (no decoding, no hashing): cheap and serial.
        let candidates: Vec<(&AccountId, &[u8])> = state
            .iter()
            .filter(|(_, account)| account.program_owner == *program_id && account.data.len() == VAULT_CONFIG_LEN)
            .map(|(id, account)| (id, account.data.as_slice()))
            .collect();
        let scan = |part: &[(&AccountId, &[u8])]| scan_vaults(state, program_id, part);
        let parts: Vec<Scanned> = if threads < 2 || candidates.len() < parallel_min.max(1) {
            vec![scan(&candidates)]
        } else {
            let per_thread = candidates.len().div_ceil(threads);
            std::thread::scope(|scope| {
                let scan = &scan;
                let workers: Vec<_> =
                    candidates.chunks(per_thread).map(|part| (part, scope.spawn(move || scan(part)))).collect();
                workers
                    .into_iter()
                    // A worker only reads; should it ever fail, scan its part here instead.
                    .map(|(part, worker)| worker.join().unwrap_or_else(|_| scan(part)))
                    .collect()
            })
        };
        let mut index = Self::default();
        let mut streams: Vec<(AccountId, StreamKey)> = Vec::with_capacity(parts.iter().map(|p| p.streams.len()).sum());
        for part in parts {
            for (owner, vault_id) in part.vaults {
                index.vaults.entry(owner).or_default().insert(vault_id);
            }
            streams.extend(part.streams);
        }
        index.provider_streams = group_sorted(streams);
        index
    }
}

/// What one thread of the rebuild found.
#[derive(Default)]
struct Scanned {
    vaults: Vec<(AccountId, u64)>,
    streams: Vec<(AccountId, StreamKey)>,
}

/// Vault configs at their own PDA among `candidates`, and their streams.
fn scan_vaults(state: &State, program_id: &ProgramId, candidates: &[(&AccountId, &[u8])]) -> Scanned {
    let mut out = Scanned::default();
    for (id, data) in candidates {
        let Ok(config) = decode::<VaultConfig>(data) else {
            continue;
        };
        if pda::vault_config_id(program_id, &config.owner, config.vault_id) != **id {
            continue;
        }
        out.vaults.push((config.owner, config.vault_id));
        for stream_id in 0..config.next_stream_id {
            let Some(stream_account) = state.get(&pda::stream_config_id(program_id, id, stream_id)) else {
                continue;
            };
            if let Ok(stream) = decode::<StreamConfig>(&stream_account.data) {
                out.streams.push((stream.provider, (config.owner, config.vault_id, stream_id)));
            }
        }
    }
    out
}

/// provider → set, from (provider, key) pairs in any order.
fn group_sorted(mut pairs: Vec<(AccountId, StreamKey)>) -> BTreeMap<AccountId, BTreeSet<StreamKey>> {
    pairs.sort_unstable();
    pairs.dedup();
    let mut out = BTreeMap::new();
    let mut rest = pairs.as_slice();
    while let Some((provider, _)) = rest.first() {
        let len = rest.partition_point(|(p, _)| p == provider);
        let (group, tail) = rest.split_at(len);
        // Sorted input: the set is built in one pass.
        out.insert(*provider, group.iter().map(|(_, key)| *key).collect());
        rest = tail;
    }
    out
}

/// Most index entries one `paystreams_getEvents` call reads (matching or not): a filter that
/// matches few of the entries its lookup visits still answers in bounded time, with a `next`
/// cursor to read on from.
pub const EVENTS_SCAN_MAX: u32 = 10_000;

/// The payment-streams events a block adds to the event index, in order: its receipts in block
/// order (failed ones carry no events), each receipt's events in emission order.
#[must_use]
pub fn block_events(block_id: u64, timestamp_ms: u64, receipts: &[StoredReceipt]) -> Vec<IndexedEvent> {
    let events = receipts.iter().flat_map(|receipt| {
        receipt.events.iter().filter_map(move |event| match event {
            ReceiptEvent::PaymentStreams { event } => Some((receipt.tx_hash, event)),
            _ => None,
        })
    });
    events
        .zip(0_u32..)
        .map(|((tx_hash, event), index)| IndexedEvent {
            cursor: EventCursor { block_id, index },
            notification: EventNotification { block_id, timestamp_ms, tx_hash: HexHash(tx_hash), event: event.clone() },
        })
        .collect()
}

/// One event as the event index stores it (its block id is in its cursor).
#[derive(Clone, PartialEq, Eq, Debug, borsh::BorshSerialize, borsh::BorshDeserialize)]
pub struct StoredEvent {
    pub tx_hash: [u8; 32],
    pub timestamp_ms: u64,
    pub event: Event,
}

impl StoredEvent {
    #[must_use]
    pub fn of(indexed: &IndexedEvent) -> Self {
        let n = &indexed.notification;
        Self { tx_hash: n.tx_hash.0, timestamp_ms: n.timestamp_ms, event: n.event.clone() }
    }

    #[must_use]
    pub fn at(self, cursor: EventCursor) -> IndexedEvent {
        IndexedEvent {
            cursor,
            notification: EventNotification {
                block_id: cursor.block_id,
                timestamp_ms: self.timestamp_ms,
                tx_hash: HexHash(self.tx_hash),
                event: self.event,
            },
        }
    }
}

/// The lookups of the event index. Every entry's key is the lookup's prefix followed by the
/// event's [`cursor_key`], so each lookup iterates in chain order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum EventLookup {
    /// Every event (the key is the cursor alone).
    All,
    /// Owner (32 bytes).
    Owner,
    /// Owner ‖ vault id (u64 big-endian).
    Vault,
    /// Owner ‖ vault id ‖ stream id (u64 big-endian each).
    Stream,
    /// Provider (32 bytes).
    Provider,
}

impl EventLookup {
    /// The lookups an event is entered under, besides [`EventLookup::All`].
    pub const SECONDARY: [Self; 4] = [Self::Owner, Self::Vault, Self::Stream, Self::Provider];
}

/// `block id ‖ index`, both big-endian, so keys sort in chain order.
#[must_use]
pub fn cursor_key(cursor: EventCursor) -> [u8; 12] {
    crate::storage::failed_key(cursor.block_id, cursor.index)
}

/// The cursor at the end of an index key.
#[must_use]
pub fn cursor_of_key(key: &[u8]) -> Option<EventCursor> {
    let (_, tail) = key.split_last_chunk::<12>()?;
    let (block, index) = tail.split_first_chunk::<8>()?;
    Some(EventCursor { block_id: u64::from_be_bytes(*block), index: u32::from_be_bytes(index.try_into().ok()?) })
}

/// The secondary entries (lookup, key) of one event.
#[must_use]
pub fn event_keys(cursor: EventCursor, event: &Event) -> Vec<(EventLookup, Vec<u8>)> {
    let (owner, vault_id) = event.vault();
    let tail = cursor_key(cursor);
    let key = |parts: &[&[u8]]| -> Vec<u8> { parts.iter().copied().flatten().chain(&tail).copied().collect() };
    let vault = vault_id.to_be_bytes();
    let mut keys = vec![(EventLookup::Owner, key(&[&owner.0])), (EventLookup::Vault, key(&[&owner.0, &vault]))];
    if let Some(stream) = event.stream() {
        keys.push((EventLookup::Stream, key(&[&owner.0, &vault, &stream.stream_id.to_be_bytes()])));
        keys.push((EventLookup::Provider, key(&[&stream.provider.0])));
    }
    keys
}

/// The lookup a filter reads, and the key prefix it reads under: the narrowest one the filter
/// names (stream, vault, owner, then provider); the filter's other fields are checked on each
/// event read.
#[must_use]
pub fn plan(filter: &EventFilter) -> (EventLookup, Vec<u8>) {
    match (filter.owner, filter.vault_id, filter.stream_id, filter.provider) {
        (Some(owner), Some(vault), Some(stream), _) => {
            (EventLookup::Stream, [owner.0.as_slice(), &vault.to_be_bytes(), &stream.to_be_bytes()].concat())
        }
        (Some(owner), Some(vault), None, _) => {
            (EventLookup::Vault, [owner.0.as_slice(), &vault.to_be_bytes()].concat())
        }
        (Some(owner), None, _, _) => (EventLookup::Owner, owner.0.to_vec()),
        (None, _, _, Some(provider)) => (EventLookup::Provider, provider.0.to_vec()),
        (None, _, _, None) => (EventLookup::All, Vec::new()),
    }
}

/// The first cursor strictly after `cursor`, `None` past the last one.
#[must_use]
pub fn cursor_after(cursor: EventCursor) -> Option<EventCursor> {
    match cursor.index.checked_add(1) {
        Some(index) => Some(EventCursor { block_id: cursor.block_id, index }),
        None => cursor.block_id.checked_add(1).map(|block_id| EventCursor { block_id, index: 0 }),
    }
}

/// What a storage's event index offers [`read_page`], all within one consistent view.
pub trait EventSource {
    type Error;

    /// Keys of `lookup` from `start` (inclusive) on, in order, while they begin with `prefix`,
    /// passed to `visit` until it returns false.
    ///
    /// # Errors
    /// Storage failure.
    fn keys(
        &self,
        lookup: EventLookup,
        prefix: &[u8],
        start: &[u8],
        visit: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<(), Self::Error>;

    /// The event at `cursor`.
    ///
    /// # Errors
    /// Storage failure or a corrupt record.
    fn event(&self, cursor: EventCursor) -> Result<Option<StoredEvent>, Self::Error>;
}

/// One page of events matching `filter` strictly after `after`, at most `limit` of them, reading
/// at most [`EVENTS_SCAN_MAX`] entries; `through_block` is the head the source's view is at.
///
/// # Errors
/// The source's.
pub fn read_page<S: EventSource>(
    source: &S,
    filter: &EventFilter,
    after: Option<EventCursor>,
    limit: u32,
    through_block: u64,
) -> Result<EventPage, S::Error> {
    let mut page = EventPage { events: Vec::new(), next: None, through_block };
    let start = match after {
        None => EventCursor::default(),
        Some(after) => match cursor_after(after) {
            Some(start) => start,
            None => return Ok(page),
        },
    };
    let (lookup, prefix) = plan(filter);
    let start_key = [prefix.as_slice(), &cursor_key(start)].concat();
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut scanned = 0_u32;
    let mut stopped_at: Option<EventCursor> = None;
    let mut failure = None;
    source.keys(lookup, &prefix, &start_key, &mut |key| {
        let Some(cursor) = cursor_of_key(key) else { return true };
        match source.event(cursor) {
            Ok(Some(stored)) if filter.matches(&stored.event) => {
                if page.events.len() >= limit {
                    // One more exists: the page ends at its last event.
                    stopped_at = page.events.last().map(|e| e.cursor);
                    return false;
                }
                page.events.push(stored.at(cursor));
            }
            Ok(_) => {}
            Err(e) => {
                failure = Some(e);
                return false;
            }
        }
        scanned = scanned.saturating_add(1);
        if scanned >= EVENTS_SCAN_MAX {
            stopped_at = Some(cursor);
            return false;
        }
        true
    })?;
    if let Some(e) = failure {
        return Err(e);
    }
    page.next = stopped_at;
    Ok(page)
}

#[cfg(test)]
mod tests {
    use paystreams_lez_core::Account;
    use paystreams_program::{
        payment_streams_program_id,
        state::{DEFAULT_VERSION, NATIVE_TOKEN_ID, StreamState, VaultPrivacyTier},
    };

    use super::*;

    fn id(tag: u64) -> AccountId {
        paystreams_lez_core::AccountId(paystreams_lez_core::sha256(&[&tag.to_le_bytes()]))
    }

    fn program_account(program_id: &ProgramId, data: Vec<u8>) -> Account {
        Account { program_owner: *program_id, balance: 0, data, nonce: 0 }
    }

    fn vault(owner: AccountId, vault_id: u64, next_stream_id: u64) -> Vec<u8> {
        borsh::to_vec(&VaultConfig {
            version: DEFAULT_VERSION,
            owner,
            vault_id,
            next_stream_id,
            total_allocated: 0,
            privacy_tier: VaultPrivacyTier::Public,
            token_id: NATIVE_TOKEN_ID,
        })
        .expect("encode")
    }

    fn stream(stream_id: u64, provider: AccountId) -> Vec<u8> {
        borsh::to_vec(&StreamConfig {
            version: DEFAULT_VERSION,
            stream_id,
            provider,
            rate: 1,
            allocation: 10,
            accrued: 0,
            state: StreamState::Active,
            accrued_as_of: 0,
            extensions: None,
        })
        .expect("encode")
    }

    /// Vaults with 0..4 streams (one stream missing, one stored beyond `next_stream_id`), and a
    /// vault config at an address that is not its PDA.
    fn state(program_id: &ProgramId) -> (State, StreamIndex) {
        let mut state = State::new();
        let mut expected = StreamIndex::default();
        for i in 0..300_u64 {
            let owner = id(i);
            let vault_id = i % 3;
            let next = i % 5;
            let config_id = pda::vault_config_id(program_id, &owner, vault_id);
            state.insert(config_id, program_account(program_id, vault(owner, vault_id, next)));
            expected.vaults.entry(owner).or_default().insert(vault_id);
            for s in 0..=next {
                if s == 2 {
                    continue;
                }
                let provider = id(1_000 + (i + s) % 7);
                let stream_id = pda::stream_config_id(program_id, &config_id, s);
                state.insert(stream_id, program_account(program_id, stream(s, provider)));
                if s < next {
                    expected.provider_streams.entry(provider).or_default().insert((owner, vault_id, s));
                }
            }
        }
        state.insert(id(5_000), program_account(program_id, vault(id(5_001), 0, 1)));
        (state, expected)
    }

    #[test]
    fn rebuild_finds_vaults_at_their_pda_and_their_streams_below_next_stream_id() {
        let program_id = payment_streams_program_id();
        let (state, expected) = state(&program_id);
        assert_eq!(StreamIndex::rebuild_split(&state, &program_id, 1, 1), expected);
        for threads in [2, 3, 8] {
            assert_eq!(StreamIndex::rebuild_split(&state, &program_id, threads, 1), expected, "{threads} threads");
        }
    }

    #[test]
    fn extend_and_entries_cover_every_entry_once() {
        let program_id = payment_streams_program_id();
        let (_, expected) = state(&program_id);
        let mut index = StreamIndex::default();
        index.extend(&expected);
        index.extend(&expected);
        assert_eq!(index, expected);
        let vaults: usize = expected.vaults.values().map(BTreeSet::len).sum();
        let streams: usize = expected.provider_streams.values().map(BTreeSet::len).sum();
        assert_eq!(index.vault_entries().count(), vaults);
        assert_eq!(index.stream_entries().count(), streams);
        assert!(streams > 300);
    }

    /// Events in memory keyed as the storages key them: every lookup as a sorted key list.
    struct Keyed {
        events: BTreeMap<EventCursor, StoredEvent>,
        keys: BTreeMap<EventLookup, BTreeSet<Vec<u8>>>,
    }

    impl Keyed {
        fn new(events: &[(EventCursor, Event)]) -> Self {
            let mut keyed = Self { events: BTreeMap::new(), keys: BTreeMap::new() };
            for (cursor, event) in events {
                for (lookup, key) in event_keys(*cursor, event) {
                    keyed.keys.entry(lookup).or_default().insert(key);
                }
                keyed.keys.entry(EventLookup::All).or_default().insert(cursor_key(*cursor).to_vec());
                keyed.events.insert(*cursor, StoredEvent { tx_hash: [0; 32], timestamp_ms: 0, event: event.clone() });
            }
            keyed
        }
    }

    impl EventSource for Keyed {
        type Error = std::convert::Infallible;

        fn keys(
            &self,
            lookup: EventLookup,
            prefix: &[u8],
            start: &[u8],
            visit: &mut dyn FnMut(&[u8]) -> bool,
        ) -> Result<(), Self::Error> {
            for key in self.keys.get(&lookup).into_iter().flat_map(|keys| keys.range(start.to_vec()..)) {
                if !key.starts_with(prefix) || !visit(key) {
                    break;
                }
            }
            Ok(())
        }

        fn event(&self, cursor: EventCursor) -> Result<Option<StoredEvent>, Self::Error> {
            Ok(self.events.get(&cursor).cloned())
        }
    }

    fn paused(owner: AccountId, stream_id: u64, provider: AccountId) -> Event {
        let stream_ref = paystreams_program::event::StreamRef {
            owner,
            vault_id: 0,
            stream_id,
            provider,
            stream_config: AccountId([0; 32]),
        };
        Event::StreamPaused { stream: stream_ref, at: 0 }
    }

    #[test]
    fn cursors_order_and_step_across_blocks() {
        let c = |block_id, index| EventCursor { block_id, index };
        assert!(c(1, u32::MAX) < c(2, 0));
        assert!(cursor_key(c(1, u32::MAX)) < cursor_key(c(2, 0)));
        assert_eq!(cursor_after(c(1, 5)), Some(c(1, 6)));
        assert_eq!(cursor_after(c(1, u32::MAX)), Some(c(2, 0)));
        assert_eq!(cursor_after(c(u64::MAX, u32::MAX)), None);
        let key = [b"prefix".as_slice(), &cursor_key(c(7, 9))].concat();
        assert_eq!(cursor_of_key(&key), Some(c(7, 9)));
        assert_eq!(cursor_of_key(&[0; 11]), None);
    }

    #[test]
    fn a_page_reads_at_most_the_scan_bound_and_says_where_to_read_on() {
        let (owner, provider, other) = (id(1), id(2), id(3));
        // Every event is the owner's; only the last three are served by `provider`.
        let total = u64::from(EVENTS_SCAN_MAX) * 2 + 3;
        let events: Vec<(EventCursor, Event)> = (0..total)
            .map(|i| {
                let cursor = EventCursor { block_id: 10 + i / 4, index: u32::try_from(i % 4).expect("small") };
                (cursor, paused(owner, i, if i + 3 >= total { provider } else { other }))
            })
            .collect();
        let keyed = Keyed::new(&events);
        let filter = EventFilter { owner: Some(owner), provider: Some(provider), ..EventFilter::default() };
        assert_eq!(plan(&filter).0, EventLookup::Owner, "the owner's lookup, the provider checked per event");
        let mut after = None;
        let mut found = Vec::new();
        let mut calls = 0;
        loop {
            let page = read_page(&keyed, &filter, after, 2, 99).expect("page");
            calls += 1;
            assert_eq!(page.through_block, 99);
            found.extend(page.events.iter().map(|e| e.cursor));
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        let expected: Vec<EventCursor> = events[events.len() - 3..].iter().map(|(c, _)| *c).collect();
        assert_eq!(found, expected);
        // Two calls stop at the scan bound with nothing found; then pages of 2 and 1.
        assert_eq!(calls, 4);

        // Without the provider, the owner's lookup serves every event in order, pages full.
        let all = EventFilter { owner: Some(owner), ..EventFilter::default() };
        let page = read_page(&keyed, &all, Some(events[4].0), 1_000, 99).expect("page");
        assert_eq!(page.events.len(), 1_000);
        assert_eq!(page.events[0].cursor, events[5].0);
        assert_eq!(page.next, Some(events[1_004].0));
        let stream = EventFilter { owner: Some(owner), vault_id: Some(0), stream_id: Some(7), provider: None };
        let page = read_page(&keyed, &stream, None, 1_000, 99).expect("page");
        assert_eq!(page.events.iter().map(|e| e.cursor).collect::<Vec<_>>(), [events[7].0]);
        assert_eq!(page.next, None);
        let past_the_end = EventCursor { block_id: u64::MAX, index: u32::MAX };
        assert!(
            read_page(&keyed, &EventFilter::default(), Some(past_the_end), 10, 99).expect("page").events.is_empty()
        );
    }
}
