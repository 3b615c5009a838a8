//! Scale of the node: a chain holding N payment streams. Resident memory of the opened chain,
//! restart time (`Chain::open` on the data dir), stream lookup latency (`Chain::stream`, which
//! folds the stream at chain time), the state-root computation and the time of one block
//! produced on top of the big state.
//!
//! `cargo bench -p paystreams-node --bench scale [-- N [STREAMS_PER_VAULT]]` (default 1,000,000
//! streams, 4 per vault). `SCALE_DATA_DIR=DIR` keeps (and reuses) the data dir;
//! `SCALE_RESTARTS=K` adds K restarts alone (`Chain::open` + first lookup, each in a fresh
//! process, with its CPU time and the load average); `scale child-restart DIR` runs one on a
//! kept data dir (to alternate two builds of the bench on the same data).
//!
//! Building the state: eight template owners are funded, open a native vault, deposit and
//! create their streams with signed transactions applied by the real runtime (with the clock
//! update of each block); the templates differ in rates, allocations, extensions and later
//! operations (pause, top-up, close). Every further owner has its own key and is a replica of
//! one template: the owner account, the vault config (its `owner` set to the new owner), the
//! holding and the stream configs are copied to the PDAs derived for the new owner, each
//! stream paying one of 1,000 provider keys, and the funding is taken from the treasury as a
//! transfer would (balance and nonce). Before committing, the bench checks the whole state:
//! native supply equals the genesis supply, and every vault's `total_allocated` equals the
//! sum of its streams' allocations and is covered by its holding. The state is committed with
//! the storage's own API (`init` for the genesis, `commit_block` for the setup block) into a
//! redb file in a temporary directory. The measurements run in child processes on that data
//! dir, so their resident memory starts clean; the block on top of it carries real claims
//! (signed by providers) and top-ups (signed by owners) on replicated streams, and every one
//! must succeed.

#![allow(clippy::unwrap_used, reason = "a benchmark binary: fail loudly")]
#![allow(clippy::print_stdout, reason = "a benchmark binary reports on stdout")]

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use borsh::BorshDeserialize as _;
use paystreams_lez_core::{
    Account, AccountId,
    clock::{CLOCK_01_ACCOUNT_ID, ClockAccountData},
    crypto::SecretKey,
    lez_release::LezRelease,
    sha256,
    transfer::{authenticated_transfer_program_id, initialize_instruction, transfer_instruction},
};
use paystreams_node::{
    Chain, ChainConfig, RedbStorage, Storage,
    block::{BlockParts, GenesisAccount, GenesisSpec, StoredBlock},
    chain::{MAX_TXS_PER_BLOCK, genesis_parts, genesis_state},
    index::StreamIndex,
};
use paystreams_program::{
    client::{self, Call, VaultRef},
    instruction::ExtensionSettings,
    payment_streams_program_id, pda,
    state::{NATIVE_TOKEN_ID, StreamConfig, StreamState, VAULT_CONFIG_LEN, VaultConfig, VaultPrivacyTier, decode},
};
use paystreams_rpc::{TxStatus, clock::wall_clock_ms};
use paystreams_runtime::{BlockContext, Message, Overlay, Runtime, State, StateDiff, StateView as _, Transaction};

/// Provider keys the streams pay.
const PROVIDERS: u64 = 1_000;
/// Template vault shapes built by the runtime.
const TEMPLATES: u64 = 8;
/// Random stream lookups timed.
const LOOKUPS: usize = 100_000;
/// Claims (and as many top-ups) in the measured block.
const BLOCK_CLAIMS: usize = 500;
/// Genesis supply of the treasury.
const SUPPLY: u128 = 1_000_000_000_000_000_000;
/// Restart target.
const TARGET_RESTART_S: f64 = 1.0;

// --- helpers ---------------------------------------------------------------------------------

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    let i = (sorted.len() * p / 100).min(sorted.len().saturating_sub(1));
    sorted[i]
}

/// The median of `values` (NaN when there are none).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// The sequencer key of the bench chain (every open must present the same one).
fn sequencer_key() -> SecretKey {
    SecretKey::from_bytes(&[0x5e; 32]).unwrap()
}

fn chain_config() -> ChainConfig {
    ChainConfig { sequencer: sequencer_key(), ..ChainConfig::dev(0, 0) }
}

fn treasury_key() -> SecretKey {
    SecretKey::from_bytes(&sha256(&[b"treasury"])).unwrap()
}

fn owner_key(i: u64) -> SecretKey {
    SecretKey::from_bytes(&sha256(&[b"owner", &i.to_le_bytes()])).unwrap()
}

fn provider_key(p: u64) -> SecretKey {
    SecretKey::from_bytes(&sha256(&[b"provider", &p.to_le_bytes()])).unwrap()
}

/// Which provider stream `s` of owner `i` pays.
const fn provider_of(i: u64, s: u64, per_vault: u64) -> u64 {
    (i * per_vault + s) % PROVIDERS
}

fn sign(call: &Call, keys: &[&SecretKey], nonces: Vec<u128>) -> Transaction {
    let message = Message {
        program_id: call.program_id,
        account_ids: call.account_ids.clone(),
        nonces,
        instruction_data: call.instruction_data(),
    };
    Transaction::sign(message, keys)
}

/// Figures printed by a child as `RESULT key=value` lines for the parent.
#[derive(Default)]
struct Figures(Vec<(String, f64)>);

impl Figures {
    fn put(&mut self, key: &str, value: f64) {
        println!("RESULT {key}={value}");
        eprintln!("    {key} = {value:.4}");
        self.0.push((key.to_owned(), value));
    }

    fn get(&self, key: &str) -> f64 {
        self.0.iter().find(|(k, _)| k == key).map_or(f64::NAN, |(_, v)| *v)
    }
}

// --- building the state ----------------------------------------------------------------------

/// Applies one block of transactions with the clock update; every transaction must succeed.
fn apply_block(runtime: &Runtime, state: &mut State, txs: &[Transaction], timestamp_ms: u64, block: &mut u64) {
    *block += 1;
    let ctx = BlockContext { block_id: *block, timestamp_ms };
    let diff = {
        let mut overlay = Overlay::new(&*state);
        for tx in txs {
            match runtime.apply(&overlay, tx, &ctx) {
                Ok(applied) => overlay.apply_diff(&applied.diff),
                Err(e) => panic!("template transaction failed: {e}"),
            }
        }
        let clock = runtime.clock_update(&overlay, &ctx).unwrap();
        overlay.apply_diff(&clock);
        overlay.into_diff()
    };
    state.apply_diff(&diff);
}

/// Funding, deposit, allocation and extension of template `k`'s stream `s`.
struct Shape {
    funding: u128,
    deposit: u128,
}

fn shape(k: u64) -> Shape {
    Shape { funding: 50_000_000 + u128::from(k) * 1_000_000, deposit: 20_000_000 + u128::from(k) * 500_000 }
}

fn stream_terms(k: u64, s: u64) -> (u64, u128, ExtensionSettings) {
    let rate = 1 + k + s;
    // Lasting from 30 minutes to 4 hours: some are depleted by the time the bench runs.
    let allocation = u128::from(rate) * u128::from(1_800 * (1 + (k + s) % 8));
    let extensions = if k == 5 && s == 0 {
        ExtensionSettings { auto_pause_after: 1_200, ..ExtensionSettings::default() }
    } else {
        ExtensionSettings::default()
    };
    (rate, allocation, extensions)
}

/// Builds the templates with the runtime on top of `genesis`.
fn build_templates(
    runtime: &Runtime,
    genesis: &GenesisSpec,
    t0_ms: u64,
    per_vault: u64,
    owners: &[AccountId],
) -> State {
    let program = payment_streams_program_id();
    let treasury = treasury_key();
    let mut state = genesis_state(genesis, runtime).unwrap();
    let mut block = 0;
    let mut time = t0_ms;
    let keys: Vec<SecretKey> = (0..TEMPLATES).map(owner_key).collect();
    let vaults: Vec<VaultRef> = (0..TEMPLATES).map(|k| VaultRef::native(program, owners[k as usize], 0)).collect();
    let mut nonces = vec![0_u128; TEMPLATES as usize];

    // Funding from the treasury (a default recipient co-signs).
    let mut txs = vec![];
    for (k, key) in keys.iter().enumerate() {
        let message = Message {
            program_id: authenticated_transfer_program_id(),
            account_ids: vec![treasury.account_id(), key.account_id()],
            nonces: vec![k as u128, 0],
            instruction_data: transfer_instruction(shape(k as u64).funding),
        };
        txs.push(Transaction::sign(message, &[&treasury, key]));
        nonces[k] = 1;
    }
    // Every provider initialises its account, so claims can pay into it.
    for p in 0..PROVIDERS {
        let key = provider_key(p);
        let message = Message {
            program_id: authenticated_transfer_program_id(),
            account_ids: vec![key.account_id()],
            nonces: vec![0],
            instruction_data: initialize_instruction(),
        };
        txs.push(Transaction::sign(message, &[&key]));
    }
    time += 10_000;
    apply_block(runtime, &mut state, &txs, time, &mut block);

    let mut txs = vec![];
    for (k, key) in keys.iter().enumerate() {
        let v = &vaults[k];
        txs.push(sign(&client::initialize_vault(v, VaultPrivacyTier::Public), &[key], vec![nonces[k]]));
        txs.push(sign(
            &client::deposit(v, shape(k as u64).deposit, authenticated_transfer_program_id(), None),
            &[key],
            vec![nonces[k] + 1],
        ));
        nonces[k] += 2;
    }
    time += 10_000;
    apply_block(runtime, &mut state, &txs, time, &mut block);

    let mut txs = vec![];
    for (k, key) in keys.iter().enumerate() {
        for s in 0..per_vault {
            let (rate, allocation, extensions) = stream_terms(k as u64, s);
            let provider = provider_key(provider_of(k as u64, s, per_vault)).account_id();
            let call = client::create_stream(&vaults[k], s, provider, rate, allocation, extensions);
            txs.push(sign(&call, &[key], vec![nonces[k]]));
            nonces[k] += 1;
        }
    }
    time += 10_000;
    apply_block(runtime, &mut state, &txs, time, &mut block);

    // Later life: pause, top-up, close.
    let mut txs = vec![];
    for (k, key) in keys.iter().enumerate() {
        let last = per_vault - 1;
        let call = match k % 4 {
            1 => Some(client::pause_stream(&vaults[k], last.min(1))),
            2 => Some(client::top_up_stream(&vaults[k], 0, 5_000)),
            3 => Some(client::close_stream_by_owner(&vaults[k], last)),
            _ => None,
        };
        if let Some(call) = call {
            txs.push(sign(&call, &[key], vec![nonces[k]]));
            nonces[k] += 1;
        }
    }
    time += 60_000;
    apply_block(runtime, &mut state, &txs, time, &mut block);
    // Blocks kept coming until now: the head's time is the present, as on a live node.
    apply_block(runtime, &mut state, &[], wall_clock_ms().saturating_sub(1_000).max(time), &mut block);
    state
}

/// Copies template `i % TEMPLATES` to owner `i`.
fn replicate(
    template: &State,
    state: &mut BTreeMap<AccountId, Account>,
    owners: &[AccountId],
    providers: &[AccountId],
    i: u64,
    per_vault: u64,
) {
    let program = payment_streams_program_id();
    let k = i % TEMPLATES;
    let (from, to) = (owners[k as usize], owners[i as usize]);
    let (from_config, to_config) = (pda::vault_config_id(&program, &from, 0), pda::vault_config_id(&program, &to, 0));
    state.insert(to, template.account(&from));
    let mut config_account = template.account(&from_config);
    let mut config: VaultConfig = decode(&config_account.data).unwrap();
    config.owner = to;
    config_account.data = borsh::to_vec(&config).unwrap();
    state.insert(to_config, config_account);
    let (from_holding, to_holding) = (
        pda::vault_holding_id(&program, &from_config, &NATIVE_TOKEN_ID),
        pda::vault_holding_id(&program, &to_config, &NATIVE_TOKEN_ID),
    );
    state.insert(to_holding, template.account(&from_holding));
    for s in 0..per_vault {
        let mut stream_account = template.account(&pda::stream_config_id(&program, &from_config, s));
        let mut stream: StreamConfig = decode(&stream_account.data).unwrap();
        stream.provider = providers[provider_of(i, s, per_vault) as usize];
        stream_account.data = borsh::to_vec(&stream).unwrap();
        state.insert(pda::stream_config_id(&program, &to_config, s), stream_account);
    }
}

/// Supply and per-vault allocation invariants over the whole state.
fn check(state: &State) -> (u64, u64) {
    let program = payment_streams_program_id();
    let mut supply = 0_u128;
    let (mut vaults, mut streams) = (0_u64, 0_u64);
    for (id, account) in state.iter() {
        supply = supply.checked_add(account.balance).unwrap();
        if account.program_owner != program || account.data.len() != VAULT_CONFIG_LEN {
            continue;
        }
        let config: VaultConfig = decode(&account.data).unwrap();
        assert_eq!(pda::vault_config_id(&program, &config.owner, config.vault_id), *id);
        let mut allocated = 0_u128;
        for s in 0..config.next_stream_id {
            let stream: StreamConfig = decode(&state.account(&pda::stream_config_id(&program, id, s)).data).unwrap();
            allocated = allocated.checked_add(stream.allocation).unwrap();
            streams += 1;
        }
        assert_eq!(config.total_allocated, allocated, "total_allocated equals the sum of allocations");
        let holding = state.account(&pda::vault_holding_id(&program, id, &config.token_id));
        assert!(holding.balance >= config.total_allocated, "vault is solvent");
        vaults += 1;
    }
    assert_eq!(supply, SUPPLY, "native supply is conserved");
    (vaults, streams)
}

fn owner_ids(count: u64) -> Vec<AccountId> {
    (0..count).map(|i| owner_key(i).account_id()).collect()
}

fn build(dir: &Path, owners_count: u64, per_vault: u64) {
    let mut f = Figures::default();
    let started = Instant::now();
    let owners = owner_ids(owners_count);
    f.put("keys_s", started.elapsed().as_secs_f64());
    std::fs::write(dir.join("owners.bin"), owners.iter().flat_map(|o| o.0).collect::<Vec<u8>>()).unwrap();

    let runtime = Runtime::new();
    // The setup happened two hours before the bench: streams have been accruing since.
    let t0_ms = wall_clock_ms() - 2 * 3_600_000;
    let genesis = GenesisSpec {
        release: LezRelease::DEFAULT,
        sequencer: sequencer_key().public_key(),
        accounts: vec![GenesisAccount { secret_key: treasury_key().to_bytes(), balance: SUPPLY }],
    };
    let template = build_templates(&runtime, &genesis, t0_ms, per_vault, &owners);

    let started = Instant::now();
    let mut accounts: BTreeMap<AccountId, Account> = template.iter().map(|(id, a)| (*id, a.clone())).collect();
    let treasury = treasury_key().account_id();
    let mut treasury_account = template.account(&treasury);
    let providers: Vec<AccountId> = (0..PROVIDERS).map(|p| provider_key(p).account_id()).collect();
    for i in TEMPLATES..owners_count {
        replicate(&template, &mut accounts, &owners, &providers, i, per_vault);
        treasury_account.balance = treasury_account.balance.checked_sub(shape(i % TEMPLATES).funding).unwrap();
        treasury_account.nonce = treasury_account.nonce.checked_add(1).unwrap();
    }
    accounts.insert(treasury, treasury_account);
    let state: State = accounts.iter().map(|(id, a)| (*id, a.clone())).collect();
    f.put("replicate_s", started.elapsed().as_secs_f64());
    let started = Instant::now();
    let (vaults, streams) = check(&state);
    f.put("check_s", started.elapsed().as_secs_f64());
    f.put("vaults", vaults as f64);
    f.put("streams", streams as f64);
    f.put("accounts", state.len() as f64);

    // Commit: genesis (block 1), then the setup as block 2.
    let started = Instant::now();
    let storage = RedbStorage::open(&dir.join("chain.redb")).unwrap();
    let genesis_st = genesis_state(&genesis, &runtime).unwrap();
    let clock_id = runtime.builtin_ids().clock;
    let block1 = StoredBlock::seal(genesis_parts(&genesis_st), &sequencer_key(), clock_id);
    storage.init(&genesis, &block1, &genesis_st).unwrap();
    let clock = ClockAccountData::try_from_slice(&state.account(&CLOCK_01_ACCOUNT_ID).data).unwrap();
    let parts = BlockParts {
        block_id: 2,
        prev_block_hash: block1.hash(),
        timestamp_ms: clock.timestamp_ms,
        transactions: vec![],
        failed: vec![],
        state_root: state.state_root(),
        time_offset_ms: 0,
    };
    let block = StoredBlock::seal(parts, &sequencer_key(), clock_id);
    storage.commit_block(&block, &[], &[], &StateDiff { accounts }, &StreamIndex::default()).unwrap();
    f.put("commit_s", started.elapsed().as_secs_f64());
    drop(storage);
    let size = std::fs::metadata(dir.join("chain.redb")).unwrap().len();
    f.put("file_bytes", size as f64);
}

fn read_owners(dir: &Path) -> Vec<AccountId> {
    let bytes = std::fs::read(dir.join("owners.bin")).unwrap();
    bytes.chunks_exact(32).map(|c| AccountId(c.try_into().unwrap())).collect()
}

// --- measurements ----------------------------------------------------------------------------

/// Where a restart's time goes: the storage's load, then the state root `Chain::open` checks.
fn child_breakdown(dir: &Path) {
    let mut f = Figures::default();
    let rss0 = rss_bytes();
    let started = Instant::now();
    let storage = RedbStorage::open(&dir.join("chain.redb")).unwrap();
    let state = storage.load_state().unwrap();
    f.put("load_state_s", started.elapsed().as_secs_f64());
    f.put("state_rss_bytes", rss_bytes().saturating_sub(rss0) as f64);
    // What `Chain::open` runs: the accounts loaded and leaf-hashed from their stored bytes on
    // every core, then the state built while the root's inner nodes are hashed.
    let started = Instant::now();
    let (loaded, leaves, root) = storage.load_state_with_leaves().unwrap();
    f.put("load_with_root_s", started.elapsed().as_secs_f64());
    assert_eq!(paystreams_node::root::merkle_root(leaves), Some(root));
    assert_eq!(root, state.state_root());
    assert_eq!(loaded.len(), state.len());
    drop(loaded);
    // The state built from the same accounts, in id order, one insert at a time against the
    // bulk constructor the loader uses, side by side.
    let accounts: Vec<(AccountId, Account)> = state.iter().map(|(id, a)| (*id, a.clone())).collect();
    let copy = accounts.clone();
    let started = Instant::now();
    let mut incremental = State::new();
    for (id, account) in copy {
        incremental.insert(id, account);
    }
    f.put("state_inserts_s", started.elapsed().as_secs_f64());
    let started = Instant::now();
    let bulk = State::from_sorted(accounts).unwrap();
    f.put("state_from_sorted_s", started.elapsed().as_secs_f64());
    assert!(bulk == incremental && bulk == state, "the bulk constructor builds the same state");
    drop((bulk, incremental));
    let started = Instant::now();
    let _root = state.state_root();
    f.put("state_root_cold_s", started.elapsed().as_secs_f64());
    // The leaf half of the state root alone: SHA-256 of prefix, id and Borsh account, per
    // account (the rest is one SHA-256 per inner node).
    let leaf_prefix = paystreams_lez_core::domain_prefix("/paystreams/v1/StateRoot/Leaf/");
    let started = Instant::now();
    let mut leaves = 0_u64;
    for (id, account) in state.iter() {
        let leaf = sha256(&[&leaf_prefix, &id.0, &borsh::to_vec(account).unwrap()]);
        leaves += u64::from(leaf[0] & 1);
    }
    f.put("leaf_hashes_s", started.elapsed().as_secs_f64());
    eprintln!("    ({leaves} odd leaves)");
    // The index rebuild `Chain::open` runs when the data dir has no current stored index (on
    // every core, as there), and the read of the stored index it runs otherwise.
    let program = payment_streams_program_id();
    let started = Instant::now();
    let index = StreamIndex::rebuild(&state, &program);
    f.put("index_rebuild_s", started.elapsed().as_secs_f64());
    let head = storage.block(storage.load_head().unwrap().unwrap()).unwrap().unwrap();
    let started = Instant::now();
    let stored = storage.stream_index(&head).unwrap();
    f.put("index_read_s", started.elapsed().as_secs_f64());
    assert_eq!(stored.as_ref(), Some(&index), "the stored index equals a rebuild");
    f.put("index_streams", index.stream_entries().count() as f64);
}

/// The one-minute load average.
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg").unwrap().split_whitespace().next().unwrap().parse().unwrap()
}

/// A restart alone: `Chain::open` on the data dir and the first lookup, its wall and CPU time
/// and the load average when it started.
fn child_restart(dir: &Path) {
    let mut f = Figures::default();
    let owners = read_owners(dir);
    f.put("load_average", load_average());
    let cpu0 = paystreams_testkit::cpu::process_cpu().unwrap();
    let started = Instant::now();
    let storage = RedbStorage::open(&dir.join("chain.redb")).unwrap();
    let chain = Chain::open(Arc::new(storage), &chain_config()).unwrap();
    let first = chain.stream(&owners[0], 0, 0);
    f.put("restart_s", started.elapsed().as_secs_f64());
    f.put("restart_cpu_s", (paystreams_testkit::cpu::process_cpu().unwrap() - cpu0).as_secs_f64());
    assert!(first.is_some());
    // Dropped (not timed): a database left open would need a repair at the next open.
    drop(chain);
}

/// The first open of a data dir written without the stream index (as by an older node): the
/// index is rebuilt and stored.
fn child_first_open(dir: &Path) {
    let mut f = Figures::default();
    let owners = read_owners(dir);
    let started = Instant::now();
    let storage = Arc::new(RedbStorage::open(&dir.join("chain.redb")).unwrap());
    let head = storage.block(storage.load_head().unwrap().unwrap()).unwrap().unwrap();
    let had_index = storage.stream_index(&head).unwrap().is_some();
    let chain = Chain::open(Arc::clone(&storage) as Arc<dyn Storage>, &chain_config()).unwrap();
    let first = chain.stream(&owners[0], 0, 0);
    f.put("first_open_s", started.elapsed().as_secs_f64());
    f.put("first_open_had_index", f64::from(u8::from(had_index)));
    assert!(first.is_some());
    assert!(storage.stream_index(&head).unwrap().is_some(), "the index is stored after the first open");
}

fn child_open(dir: &Path, per_vault: u64) {
    let mut f = Figures::default();
    let owners = read_owners(dir);
    let mut rng = Rng(3);
    let rss0 = rss_bytes();
    let started = Instant::now();
    let storage = RedbStorage::open(&dir.join("chain.redb")).unwrap();
    let chain = Chain::open(Arc::new(storage), &chain_config()).unwrap();
    let first = chain.stream(&owners[0], 0, 0);
    f.put("restart_s", started.elapsed().as_secs_f64());
    assert!(first.is_some());
    let rss1 = rss_bytes().saturating_sub(rss0);
    f.put("rss_bytes", rss1 as f64);

    // Lookups: owner, vault 0, a random stream id, folded at chain time.
    let mut times = Vec::with_capacity(LOOKUPS);
    let mut states = BTreeMap::<String, u64>::new();
    for _ in 0..LOOKUPS {
        let i = rng.below(owners.len() as u64);
        let s = rng.below(per_vault);
        let started = Instant::now();
        let view = chain.stream(&owners[i as usize], 0, s);
        times.push(started.elapsed());
        let view = view.unwrap();
        let label = if view.state != StreamState::Closed && view.unaccrued.0 == 0 {
            "depleted".to_owned()
        } else {
            format!("{:?}", view.state)
        };
        *states.entry(label).or_default() += 1;
    }
    times.sort_unstable();
    f.put("lookup_p50_us", secs(percentile(&times, 50)) * 1e6);
    f.put("lookup_p99_us", secs(percentile(&times, 99)) * 1e6);
    f.put("lookup_max_us", secs(percentile(&times, 100)) * 1e6);
    for (label, count) in &states {
        f.put(&format!("lookup_state_{label}"), *count as f64);
    }
    f.put("rss_after_lookups_bytes", rss_bytes().saturating_sub(rss0) as f64);

    // The state root alone, as every block computes it.
    let mut roots = vec![];
    for _ in 0..3 {
        let started = Instant::now();
        let _root = chain.state_root();
        roots.push(started.elapsed());
    }
    roots.sort_unstable();
    f.put("state_root_s", secs(roots[1]));

    // An empty block (clock update only) on top of the big state.
    let mut empty = vec![];
    for _ in 0..3 {
        let started = Instant::now();
        chain.produce_block(MAX_TXS_PER_BLOCK, 0).unwrap();
        empty.push(started.elapsed());
    }
    empty.sort_unstable();
    f.put("empty_block_s", secs(empty[1]));

    // A block of real transactions on replicated streams: provider claims and owner top-ups.
    let mut hashes = vec![];
    let (mut providers_used, mut owners_used) = (BTreeSet::new(), BTreeSet::new());
    let program = payment_streams_program_id();
    while providers_used.len() < BLOCK_CLAIMS || owners_used.len() < BLOCK_CLAIMS {
        let i = rng.below(owners.len() as u64);
        let s = rng.below(per_vault);
        let owner = owners[i as usize];
        let Some(view) = chain.stream(&owner, 0, s) else { continue };
        if view.state != StreamState::Active || view.unaccrued.0 == 0 || owners_used.contains(&i) {
            continue;
        }
        let vault = VaultRef::native(program, owner, 0);
        let p = provider_of(i, s, per_vault);
        if providers_used.len() < BLOCK_CLAIMS && view.accrued.0 > 0 && !providers_used.contains(&p) {
            let key = provider_key(p);
            let nonce = chain.account(&key.account_id()).nonce;
            let tx = sign(&client::claim(&vault, s, key.account_id(), None, None), &[&key], vec![nonce]);
            hashes.push(chain.submit(tx).unwrap());
            providers_used.insert(p);
            owners_used.insert(i);
        } else if owners_used.len() < BLOCK_CLAIMS {
            let key = owner_key(i);
            let nonce = chain.account(&owner).nonce;
            let tx = sign(&client::top_up_stream(&vault, s, 1_000), &[&key], vec![nonce]);
            hashes.push(chain.submit(tx).unwrap());
            owners_used.insert(i);
        }
    }
    let started = Instant::now();
    let committed = chain.produce_block(MAX_TXS_PER_BLOCK, 0).unwrap();
    f.put("tx_block_s", started.elapsed().as_secs_f64());
    f.put("tx_block_txs", committed.info.transactions.len() as f64);
    let mut included = 0;
    for hash in &hashes {
        let receipt = chain.receipt(hash).unwrap().unwrap();
        if receipt.status == TxStatus::Included {
            included += 1;
        } else {
            eprintln!("failed: {:?}", receipt.error);
        }
    }
    f.put("tx_block_included", included as f64);
    assert_eq!(included, hashes.len(), "every transaction on a replicated stream succeeds");
    assert_eq!(chain.native_supply(), SUPPLY, "native supply is conserved");
}

// --- driver ----------------------------------------------------------------------------------

fn run_child(args: &[String]) -> Figures {
    let exe = std::env::current_exe().unwrap();
    let child = Command::new(exe).args(args).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "child {args:?} failed:\n{stdout}");
    let mut figures = Figures::default();
    for line in stdout.lines() {
        if let Some((key, value)) = line.strip_prefix("RESULT ").and_then(|l| l.split_once('=')) {
            figures.0.push((key.to_owned(), value.parse().unwrap()));
        }
    }
    figures
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    if let [mode, dir, rest @ ..] = args.as_slice()
        && mode.starts_with("child-")
    {
        let dir = Path::new(dir);
        let numbers: Vec<u64> = rest.iter().map(|a| a.parse().unwrap()).collect();
        match mode.as_str() {
            "child-build" => build(dir, numbers[0], numbers[1]),
            "child-breakdown" => child_breakdown(dir),
            "child-first-open" => child_first_open(dir),
            "child-open" => child_open(dir, numbers[0]),
            "child-restart" => child_restart(dir),
            other => panic!("unknown mode {other}"),
        }
        return;
    }
    let numbers: Vec<u64> = args.iter().filter_map(|a| a.replace('_', "").parse().ok()).collect();
    let n = numbers.first().copied().unwrap_or(1_000_000);
    let per_vault = numbers.get(1).copied().unwrap_or(4).max(2);
    let owners = n.div_ceil(per_vault).max(TEMPLATES);
    // SCALE_DATA_DIR keeps the data dir (and reuses one already built) for repeated runs; its
    // "first open" is then an ordinary restart.
    let kept = std::env::var_os("SCALE_DATA_DIR").map(std::path::PathBuf::from);
    let temp = tempfile::tempdir().unwrap();
    let dir = kept.clone().unwrap_or_else(|| temp.path().to_path_buf());
    std::fs::create_dir_all(&dir).unwrap();
    let dir_arg = dir.display().to_string();
    println!(
        "node: {} streams ({owners} owners x {per_vault} streams per vault), data dir {dir_arg}",
        owners * per_vault
    );

    let built = if kept.is_some() && dir.join("chain.redb").exists() {
        println!("[1/4] reusing the data dir built before ...");
        let mut figures = Figures::default();
        for (key, value) in
            std::fs::read_to_string(dir.join("built.txt")).unwrap().lines().filter_map(|l| l.split_once('='))
        {
            figures.0.push((key.to_owned(), value.parse().unwrap()));
        }
        figures
    } else {
        println!("[1/4] building the state and committing it ...");
        let built = run_child(&["child-build".into(), dir_arg.clone(), owners.to_string(), per_vault.to_string()]);
        let text: String = built.0.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        std::fs::write(dir.join("built.txt"), text).unwrap();
        built
    };
    println!("[2/4] first open (rebuilds and stores the stream index) ...");
    let first = run_child(&["child-first-open".into(), dir_arg.clone()]);
    println!("[3/4] restart breakdown ...");
    let breakdown = run_child(&["child-breakdown".into(), dir_arg.clone()]);
    println!("[4/4] Chain::open, lookups, blocks ...");
    let open = run_child(&["child-open".into(), dir_arg.clone(), per_vault.to_string()]);
    // SCALE_RESTARTS=K: K more restarts, each alone in a fresh process.
    let repeats: usize = std::env::var("SCALE_RESTARTS").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    let restarts: Vec<Figures> = (0..repeats).map(|_| run_child(&["child-restart".into(), dir_arg.clone()])).collect();

    let streams = built.get("streams");
    let mib = |b: f64| b / (1024.0 * 1024.0);
    let restart = open.get("restart_s");
    println!();
    println!("================ node at {streams:.0} streams ================");
    println!(
        "state: {:.0} accounts ({:.0} vaults, {:.0} streams), supply and allocations checked; redb file {:.0} MiB = {:.0} B/stream",
        built.get("accounts"),
        built.get("vaults"),
        streams,
        mib(built.get("file_bytes")),
        built.get("file_bytes") / streams
    );
    println!(
        "resident memory of the opened Chain  {:>8.0} MiB = {:.0} B/stream ({:.0} B/account)",
        mib(open.get("rss_bytes")),
        open.get("rss_bytes") / streams,
        open.get("rss_bytes") / built.get("accounts")
    );
    println!(
        "restart (Chain::open + first lookup) {:>8.2} s   (target < {TARGET_RESTART_S} s: {})",
        restart,
        if restart < TARGET_RESTART_S { "meets" } else { "MISSES" }
    );
    for (i, r) in restarts.iter().enumerate() {
        println!(
            "restart {} alone                      {:>8.2} s   (CPU {:.2} s, load average {:.2})",
            i + 1,
            r.get("restart_s"),
            r.get("restart_cpu_s"),
            r.get("load_average")
        );
    }
    println!(
        "first open of the data dir           {:>8.2} s   ({})",
        first.get("first_open_s"),
        if first.get("first_open_had_index") > 0.0 {
            "index already stored: an ordinary restart"
        } else {
            "no stored index: rebuilt and stored"
        }
    );
    println!("  parts, each timed alone in another process on the same data dir:");
    println!(
        "    accounts loaded + state root (load_state_with_leaves, as Chain::open) {:.2} s",
        breakdown.get("load_with_root_s")
    );
    println!(
        "    state built from its sorted accounts: one insert at a time {:.2} s, bulk (State::from_sorted, as the loader) {:.2} s",
        breakdown.get("state_inserts_s"),
        breakdown.get("state_from_sorted_s")
    );
    println!("    for comparison, serial: storage load_state {:.2} s, then:", breakdown.get("load_state_s"));
    println!(
        "    state-root check (State::state_root) {:>6.2} s, of which leaf hashing {:.2} s (one core)",
        breakdown.get("state_root_cold_s"),
        breakdown.get("leaf_hashes_s")
    );
    println!(
        "    stored stream index read           {:>8.2} s   (restart: beside load_state)",
        breakdown.get("index_read_s")
    );
    println!(
        "    stream index rebuild (all cores)   {:>8.2} s   (first open only, then stored; {:.0} streams)",
        breakdown.get("index_rebuild_s"),
        breakdown.get("index_streams")
    );
    println!(
        "stream lookup (Chain::stream, fold)  p50 {:.2} us   p99 {:.2} us   max {:.2} us   over {LOOKUPS} random streams",
        open.get("lookup_p50_us"),
        open.get("lookup_p99_us"),
        open.get("lookup_max_us")
    );
    let kinds: Vec<String> = open
        .0
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("lookup_state_").map(|label| format!("{label} {v:.0}")))
        .collect();
    println!("  streams seen: {}", kinds.join(", "));
    println!("state root (State::state_root)       {:>8.3} s per block", open.get("state_root_s"));
    println!("empty block (clock update only)      {:>8.3} s", open.get("empty_block_s"));
    println!(
        "block of {:.0} transactions            {:>8.3} s ({:.0} included: claims and top-ups on replicated streams)",
        open.get("tx_block_txs"),
        open.get("tx_block_s"),
        open.get("tx_block_included")
    );
    println!(
        "build (not measured above): keys {:.1} s, replicate {:.1} s, check {:.1} s, commit {:.1} s",
        built.get("keys_s"),
        built.get("replicate_s"),
        built.get("check_s"),
        built.get("commit_s")
    );
    println!("=========================================================");
    // Machine-readable figures for `scripts/bench-all`.
    for (key, value) in [
        ("streams", streams),
        ("restart_s", restart),
        ("first_open_s", first.get("first_open_s")),
        ("load_with_root_s", breakdown.get("load_with_root_s")),
        ("state_inserts_s", breakdown.get("state_inserts_s")),
        ("state_from_sorted_s", breakdown.get("state_from_sorted_s")),
        ("index_read_s", breakdown.get("index_read_s")),
        ("rss_bytes_per_stream", open.get("rss_bytes") / streams),
        ("lookup_p50_us", open.get("lookup_p50_us")),
        ("empty_block_s", open.get("empty_block_s")),
        ("tx_block_s", open.get("tx_block_s")),
    ] {
        println!("FIGURE node_scale.{key}={value}");
    }
    if !restarts.is_empty() {
        let median_of = |key: &str| median(restarts.iter().map(|r| r.get(key)).collect());
        println!("FIGURE node_scale.restart_alone_median_s={}", median_of("restart_s"));
        println!("FIGURE node_scale.restart_alone_cpu_median_s={}", median_of("restart_cpu_s"));
    }
}
