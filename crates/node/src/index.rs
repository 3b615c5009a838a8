//! The stream index behind `paystreams_listVaults` / `paystreams_listStreams`: owner → vault ids and provider →
//! (owner, vault id, stream id).
//!
//! It is a function of the state ([`StreamIndex::rebuild`]): every vault config at its own PDA,
//! and every stream of such a vault below its `next_stream_id`. Blocks extend it from their
//! `VaultInitialized` / `StreamCreated` events ([`StreamIndex::record`]), which add exactly those
//! accounts. `RedbStorage` persists it, written in the same transaction as the block that
//! changes it, so a restart loads it instead of rebuilding it.

use std::collections::{BTreeMap, BTreeSet};

use paystreams_lez_core::{AccountId, ProgramId};
use paystreams_program::{
    Event, pda,
    state::{StreamConfig, VAULT_CONFIG_LEN, VaultConfig, decode},
};
use paystreams_runtime::State;

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
}
