//! Program execution over arbitrary account states.
//!
//! The input builds a small state (clock accounts, funded actors, a token with holdings, native
//! and token vaults with streams at their real addresses — mostly well-formed, sometimes
//! corrupt — and arbitrary accounts) and one transaction (a structurally generated
//! payment-streams instruction through the client's account lists, a builtin call or arbitrary
//! bytes, optionally mutated). It runs through [`Runtime::apply_verified`] and, for
//! payment-streams calls, through the pure program on the same pre-states, and checks:
//!
//! - success conserves the native supply (exact sums over every account), bumps each signer's
//!   nonce by one and no other nonce, changes owners only by claiming default accounts, touches
//!   only listed accounts and signers, never touches a clock account, keeps a solvent vault
//!   solvent and every written stream within its invariants, and (for payment-streams calls)
//!   conserves every token's supply;
//! - failure leaves the state unchanged;
//! - the pure program agrees with the runtime: a program error is the transaction's error, and a
//!   successful program output obeys every rule the runtime enforces on it;
//! - with real signatures, [`Runtime::apply`] agrees with [`Runtime::apply_verified`].

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::OnceLock,
};

use paystreams_lez_core::{
    Account, AccountId, AccountPostState, AccountWithMetadata, DATA_MAX_LENGTH, ProgramId, ProgramInput,
    clock::{CLOCK_ACCOUNT_IDS, ClockAccountData, clock_program_id},
    crypto::SecretKey,
    sha256,
    token::{TokenDefinition, TokenHolding, TokenInstruction, token_program_id},
    transfer::{authenticated_transfer_program_id, transfer_instruction},
};
use paystreams_program::{
    ExtensionSettings, Instruction, PaymentStreamsProgram,
    client::{self, Call, VaultRef},
    payment_streams_program_id,
    receipt::{DeliveryReceipt, ReceiptBody},
    state::{
        DEFAULT_VERSION, NATIVE_TOKEN_ID, STREAM_VERSION_EXTENDED, StreamConfig, StreamExtensions, StreamState,
        VaultConfig, VaultHolding, VaultPrivacyTier, decode, encode,
    },
};
use paystreams_runtime::{
    Applied, BlockContext, Message, Runtime, State, StateView as _, Transaction, TransactionChecks as _, TxError,
    testkit::{LocalChain, Signing},
};

use crate::source::Source;

/// Actors that own vaults, provide, pay and receive.
const ACTORS: usize = 4;
/// Vault slots one input may fill.
const VAULTS_MAX: usize = 3;
/// Streams per vault the state may hold.
const STREAMS_MAX: u64 = 4;

struct Fixture {
    runtime: Runtime,
    program: PaymentStreamsProgram,
    ps: ProgramId,
    actors: Vec<SecretKey>,
    /// One token holding key per actor (holdings sign token transfers).
    holdings: Vec<SecretKey>,
    token_definition: SecretKey,
    receipt_key: SecretKey,
}

impl Fixture {
    fn token_id(&self) -> [u8; 32] {
        self.token_definition.account_id().0
    }

    fn actor(&self, index: usize) -> &SecretKey {
        self.actors.get(index % ACTORS).unwrap_or(&self.token_definition)
    }

    fn holding(&self, index: usize) -> &SecretKey {
        self.holdings.get(index % ACTORS).unwrap_or(&self.token_definition)
    }

    fn all_keys(&self) -> impl Iterator<Item = &SecretKey> {
        self.actors.iter().chain(&self.holdings).chain([&self.token_definition, &self.receipt_key])
    }
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let key = |name: String| match SecretKey::from_bytes(&sha256(&[b"paystreams-fuzz/program/", name.as_bytes()])) {
            Ok(key) => key,
            Err(_) => panic!("fixed fuzz key {name} is a valid secp256k1 scalar"),
        };
        Fixture {
            runtime: Runtime::new(),
            program: PaymentStreamsProgram::default(),
            ps: payment_streams_program_id(),
            actors: (0..ACTORS).map(|i| key(format!("actor-{i}"))).collect(),
            holdings: (0..ACTORS).map(|i| key(format!("holding-{i}"))).collect(),
            token_definition: key("token-definition".into()),
            receipt_key: key("receipt".into()),
        }
    })
}

/// A vault the input placed in the state (or names in its instruction).
#[derive(Clone, Copy)]
struct VaultSlot {
    vault: VaultRef,
    owner: usize,
    next_stream_id: u64,
}

/// Builds a state and a transaction from `data`, runs it and checks the invariants above.
///
/// # Panics
/// When an invariant is broken.
pub fn program(data: &[u8]) {
    let f = fixture();
    let mut s = Source::new(data);
    let flags = s.byte();
    let (chain, slots, now_secs) = build_chain(f, &mut s);
    let state = chain.state();
    let (message, signers) = build_message(f, &mut s, state, &slots, now_secs);
    let tx = chain.signing().sign(message, &signers);

    let before = state.clone();
    let result = chain.execute(&tx);
    assert!(*chain.state() == before, "executing a transaction changed the state it read");

    if tx.message.program_id == f.ps {
        check_pure_program(f, state, &tx, &result);
    }
    match &result {
        Ok(applied) => check_success(f, state, &tx, applied, &slots),
        Err(error) => assert!(error.code() != 0, "error without a code: {error}"),
    }
    if flags.is_multiple_of(16) {
        // With real signatures the full check agrees with the trusted-signature path.
        let signed = Signing::Fixed([0x33; 32]).sign(tx.message.clone(), &signers);
        let verified = chain.runtime().apply_verified(state, &signed, &chain.block());
        let full = chain.runtime().apply(state, &signed, &chain.block());
        assert_eq!(full, verified, "apply and apply_verified disagree on a correctly signed transaction");
        assert_eq!(full.as_ref().map(|a| &a.diff), result.as_ref().map(|a| &a.diff), "signatures changed the outcome");
    }
}

/// The input's state as a chain at its clock time (in seconds, returned too), executing with
/// trusted signatures.
fn build_chain(f: &Fixture, s: &mut Source<'_>) -> (LocalChain, Vec<VaultSlot>, u64) {
    let (state, slots, now_secs) = build_state(f, s);
    let block = BlockContext { block_id: 1, timestamp_ms: now_secs.saturating_mul(1000) };
    (LocalChain::from_state(f.runtime.clone(), state, block).with_signing(Signing::Trusted), slots, now_secs)
}

fn amount(s: &mut Source<'_>) -> u128 {
    if s.one_in(4) { s.interesting_u128() } else { u128::from(s.u16()) }
}

fn build_state(f: &Fixture, s: &mut Source<'_>) -> (State, Vec<VaultSlot>, u64) {
    let mut state = State::new();
    let now_secs =
        if s.one_in(8) { s.interesting_u64() / 1000 } else { 1_700_000_000_u64.saturating_add(u64::from(s.u16())) };
    let clock = ClockAccountData { block_id: u64::from(s.byte()), timestamp_ms: now_secs.saturating_mul(1000) };
    let clock_data = if s.one_in(32) { s.vec(24) } else { encode(&clock) };
    for id in CLOCK_ACCOUNT_IDS {
        state.insert(id, Account { program_owner: clock_program_id(), balance: 0, data: clock_data.clone(), nonce: 0 });
    }
    for actor in &f.actors {
        if !s.one_in(8) {
            let account = Account {
                program_owner: authenticated_transfer_program_id(),
                balance: amount(s),
                data: vec![],
                nonce: u128::from(s.byte() % 4),
            };
            state.insert(actor.account_id(), account);
        }
    }
    if !s.one_in(4) {
        let definition = TokenDefinition::Fungible { name: "TST".into(), total_supply: amount(s) };
        state.insert(f.token_definition.account_id(), token_account(&definition));
        for holding in &f.holdings {
            if s.bool() {
                let definition_id = if s.one_in(16) { AccountId(s.array()) } else { f.token_definition.account_id() };
                let data = TokenHolding::Fungible { definition_id, balance: amount(s) };
                state.insert(holding.account_id(), token_account(&data));
            }
        }
    }
    let mut slots = Vec::new();
    for _ in 0..s.below(VAULTS_MAX.saturating_add(1)) {
        let owner = s.below(ACTORS);
        let token_id = if s.one_in(3) { f.token_id() } else { NATIVE_TOKEN_ID };
        let vault = VaultRef {
            program_id: f.ps,
            owner: f.actor(owner).account_id(),
            vault_id: u64::from(s.byte() % 2),
            token_id,
        };
        let next_stream_id = u64::try_from(s.below(5)).unwrap_or(0).min(STREAMS_MAX);
        let slot = VaultSlot { vault, owner, next_stream_id };
        put_vault(f, s, &mut state, slot, now_secs);
        slots.push(slot);
    }
    for _ in 0..s.below(3) {
        let id = match s.byte() % 3 {
            0 => AccountId(s.array()),
            _ => known_id(f, s, &slots),
        };
        let owner = match s.byte() % 6 {
            0 => ProgramId::DEFAULT,
            1 => f.ps,
            2 => authenticated_transfer_program_id(),
            3 => token_program_id(),
            4 => clock_program_id(),
            _ => ProgramId([s.u32(); 8]),
        };
        let account =
            Account { program_owner: owner, balance: amount(s), data: s.vec(180), nonce: u128::from(s.byte() % 3) };
        state.insert(id, account);
    }
    (state, slots, now_secs)
}

fn token_account<T: borsh::BorshSerialize>(data: &T) -> Account {
    Account { program_owner: token_program_id(), balance: 0, data: encode(data), nonce: 0 }
}

/// Writes a vault config, its holding and its streams, mostly consistent with each other.
fn put_vault(f: &Fixture, s: &mut Source<'_>, state: &mut State, slot: VaultSlot, now_secs: u64) {
    let VaultSlot { vault, owner, next_stream_id } = slot;
    let mut allocated: u128 = 0;
    for stream_id in 0..next_stream_id {
        if s.one_in(8) {
            continue;
        }
        let allocation = amount(s);
        let accrued = if s.one_in(16) { amount(s) } else { allocation / 256 * u128::from(s.byte()) };
        let extensions = s.one_in(3).then(|| StreamExtensions {
            auto_pause_after: u64::from(s.byte()),
            auto_pause_anchor: now_secs.saturating_sub(u64::from(s.byte())),
            activation_fee: if s.bool() { 0 } else { amount(s) },
            auto_claim_on_provider_close: s.bool(),
            receipt_key: s.bool().then(|| f.receipt_key.public_key().to_bytes()),
            receipt_paid: if s.bool() { 0 } else { amount(s) },
        });
        let stream = StreamConfig {
            version: if extensions.is_some() { STREAM_VERSION_EXTENDED } else { DEFAULT_VERSION },
            stream_id: if s.one_in(32) { u64::from(s.byte()) } else { stream_id },
            provider: f.actor(s.below(ACTORS)).account_id(),
            rate: if s.one_in(4) { s.interesting_u64() } else { u64::from(s.byte()) },
            allocation,
            accrued,
            state: match s.byte() % 3 {
                0 => StreamState::Active,
                1 => StreamState::Paused,
                _ => StreamState::Closed,
            },
            accrued_as_of: if s.one_in(8) { s.interesting_u64() } else { now_secs.saturating_sub(u64::from(s.u16())) },
            extensions,
        };
        allocated = allocated.saturating_add(allocation);
        let data = if s.one_in(32) { s.vec(100) } else { encode(&stream) };
        state.insert(vault.stream(stream_id), Account { program_owner: f.ps, balance: 0, data, nonce: 0 });
    }
    let total_allocated = if s.one_in(8) { amount(s) } else { allocated };
    let config = VaultConfig {
        version: if s.one_in(32) { s.byte() } else { DEFAULT_VERSION },
        owner: if s.one_in(32) { f.actor(owner.saturating_add(1)).account_id() } else { vault.owner },
        vault_id: if s.one_in(32) { s.u64() } else { vault.vault_id },
        next_stream_id,
        total_allocated,
        privacy_tier: if s.bool() { VaultPrivacyTier::Public } else { VaultPrivacyTier::PseudonymousFunding },
        token_id: vault.token_id,
    };
    let config_data = if s.one_in(32) { s.vec(120) } else { encode(&config) };
    state.insert(vault.config(), Account { program_owner: f.ps, balance: 0, data: config_data, nonce: 0 });
    let funds = total_allocated.saturating_add(amount(s));
    let holding = if vault.is_native() {
        Account {
            program_owner: if s.one_in(32) { authenticated_transfer_program_id() } else { f.ps },
            balance: funds,
            data: encode(&VaultHolding { version: if s.one_in(32) { s.byte() } else { DEFAULT_VERSION } }),
            nonce: 0,
        }
    } else {
        token_account(&TokenHolding::Fungible { definition_id: AccountId(vault.token_id), balance: funds })
    };
    state.insert(vault.holding(), holding);
}

/// An id the state or the transaction is likely to name.
fn known_id(f: &Fixture, s: &mut Source<'_>, slots: &[VaultSlot]) -> AccountId {
    match s.byte() % 6 {
        0 => f.actor(s.below(ACTORS)).account_id(),
        1 => f.holding(s.below(ACTORS)).account_id(),
        2 => f.token_definition.account_id(),
        3 => CLOCK_ACCOUNT_IDS.get(s.below(3)).copied().unwrap_or_default(),
        _ => match slots.get(s.below(slots.len())) {
            Some(slot) => match s.byte() % 3 {
                0 => slot.vault.config(),
                1 => slot.vault.holding(),
                _ => slot.vault.stream(u64::from(s.byte()) % (STREAMS_MAX.saturating_add(1))),
            },
            None => f.actor(0).account_id(),
        },
    }
}

fn build_message<'f>(
    f: &'f Fixture,
    s: &mut Source<'_>,
    state: &State,
    slots: &[VaultSlot],
    now_secs: u64,
) -> (Message, Vec<&'f SecretKey>) {
    let (program_id, mut account_ids, mut instruction_data, mut signers) = match s.byte() % 16 {
        0..=11 => {
            let (call, signers) = payment_streams_call(f, s, state, slots, now_secs);
            let data = call.instruction_data();
            (call.program_id, call.account_ids, data, signers)
        }
        12 => {
            let from = s.below(ACTORS);
            let to = s.below(ACTORS);
            let mut ids = vec![f.actor(from).account_id()];
            if !s.one_in(4) {
                ids.push(if s.bool() { f.actor(to).account_id() } else { known_id(f, s, slots) });
            }
            (authenticated_transfer_program_id(), ids, transfer_instruction(amount(s)), vec![f.actor(from)])
        }
        13 => {
            let from = s.below(ACTORS);
            let (ids, instruction, signers) = match s.byte() % 4 {
                0 => (
                    vec![f.token_definition.account_id(), f.holding(from).account_id()],
                    TokenInstruction::NewFungibleDefinition { name: "TST".into(), total_supply: amount(s) },
                    vec![&f.token_definition, f.holding(from)],
                ),
                1 => (
                    vec![f.token_definition.account_id(), f.holding(from).account_id()],
                    TokenInstruction::InitializeAccount,
                    vec![f.holding(from)],
                ),
                2 => (
                    vec![f.holding(from).account_id(), f.holding(s.below(ACTORS)).account_id()],
                    TokenInstruction::Transfer { amount: amount(s) },
                    vec![f.holding(from)],
                ),
                _ => (
                    vec![f.token_definition.account_id(), f.holding(from).account_id()],
                    TokenInstruction::Mint { amount: amount(s) },
                    vec![&f.token_definition],
                ),
            };
            (token_program_id(), ids, instruction.to_words(), signers)
        }
        14 => (clock_program_id(), CLOCK_ACCOUNT_IDS.to_vec(), s.words(4), vec![]),
        _ => {
            let ids = (0..s.below(4)).map(|_| known_id(f, s, slots)).collect();
            (f.ps, ids, s.words(16), vec![f.actor(s.below(ACTORS))])
        }
    };
    if s.one_in(8) {
        s.mutate_words(&mut instruction_data, 4);
    }
    if s.one_in(8) {
        match s.byte() % 4 {
            0 => {
                let at = s.below(account_ids.len());
                if let Some(id) = account_ids.get_mut(at) {
                    *id = known_id(f, s, slots);
                }
            }
            1 => {
                let (a, b) = (s.below(account_ids.len()), s.below(account_ids.len()));
                if a < account_ids.len() && b < account_ids.len() {
                    account_ids.swap(a, b);
                }
            }
            2 => {
                let at = s.below(account_ids.len());
                if at < account_ids.len() {
                    account_ids.remove(at);
                }
            }
            _ => account_ids.push(known_id(f, s, slots)),
        }
    }
    if s.one_in(8) {
        let keys: Vec<&SecretKey> = f.all_keys().collect();
        signers = (0..s.below(4)).filter_map(|_| keys.get(s.below(keys.len())).copied()).collect();
    }
    let mut nonces: Vec<u128> = signers.iter().map(|k| state.account(&k.account_id()).nonce).collect();
    if s.one_in(16)
        && let Some(nonce) = nonces.first_mut()
    {
        *nonce = nonce.wrapping_add(1);
    }
    (Message { program_id, account_ids, nonces, instruction_data }, signers)
}

/// A payment-streams instruction with the account list the client builds for it, and the keys
/// that should sign it.
fn payment_streams_call<'f>(
    f: &'f Fixture,
    s: &mut Source<'_>,
    state: &State,
    slots: &[VaultSlot],
    now_secs: u64,
) -> (Call, Vec<&'f SecretKey>) {
    let slot = match slots.get(s.below(slots.len().saturating_add(1))) {
        Some(slot) => *slot,
        None => {
            let owner = s.below(ACTORS);
            let token_id = if s.one_in(3) { f.token_id() } else { NATIVE_TOKEN_ID };
            let vault = VaultRef {
                program_id: f.ps,
                owner: f.actor(owner).account_id(),
                vault_id: u64::from(s.byte() % 2),
                token_id,
            };
            VaultSlot { vault, owner, next_stream_id: 0 }
        }
    };
    let vault = slot.vault;
    let owner = f.actor(slot.owner);
    let stream_id =
        if s.one_in(8) { u64::from(s.byte()) } else { u64::from(s.byte()) % slot.next_stream_id.saturating_add(1) };
    let stream = decode::<StreamConfig>(&state.account(&vault.stream(stream_id)).data).ok();
    let provider_index = stream
        .as_ref()
        .and_then(|st| f.actors.iter().position(|k| k.account_id() == st.provider))
        .unwrap_or_else(|| s.below(ACTORS));
    let provider = f.actor(provider_index);
    let token = !vault.is_native();
    let mut signers = vec![owner];
    let call = match s.byte() % 11 {
        0 => {
            let tier = if s.bool() { VaultPrivacyTier::Public } else { VaultPrivacyTier::PseudonymousFunding };
            client::initialize_vault(&vault, tier)
        }
        1 => {
            let transfer = if s.one_in(16) { ProgramId([s.u32(); 8]) } else { authenticated_transfer_program_id() };
            let source = token.then(|| f.holding(slot.owner).account_id());
            if token {
                signers.push(f.holding(slot.owner));
            }
            client::deposit(&vault, amount(s), transfer, source)
        }
        2 | 10 => {
            let to = match s.byte() % 4 {
                0 => None,
                1 => Some(f.holding(s.below(ACTORS)).account_id()),
                2 => Some(f.actor(s.below(ACTORS)).account_id()),
                _ => Some(known_id(f, s, slots)),
            };
            client::withdraw(&vault, amount(s), to)
        }
        3 => {
            let extensions = if s.bool() {
                ExtensionSettings::default()
            } else {
                ExtensionSettings {
                    auto_pause_after: u64::from(s.byte()),
                    activation_fee: if s.bool() { 0 } else { amount(s) },
                    auto_claim_on_provider_close: s.bool(),
                    receipt_key: match s.byte() % 3 {
                        0 => None,
                        1 => Some(f.receipt_key.public_key().to_bytes()),
                        _ => Some(s.array()),
                    },
                }
            };
            let rate = if s.one_in(4) { s.interesting_u64() } else { u64::from(s.byte()) };
            let id = if s.one_in(8) { stream_id } else { slot.next_stream_id };
            client::create_stream(&vault, id, f.actor(s.below(ACTORS)).account_id(), rate, amount(s), extensions)
        }
        4 => client::pause_stream(&vault, stream_id),
        5 => client::resume_stream(&vault, stream_id),
        6 => client::top_up_stream(&vault, stream_id, amount(s)),
        7 => client::close_stream_by_owner(&vault, stream_id),
        choice => {
            signers = vec![provider];
            let payout = token.then(|| f.holding(provider_index).account_id());
            if token && s.bool() {
                signers.push(f.holding(provider_index));
            }
            let receipt = receipt(f, s, &vault, stream_id, now_secs);
            if choice == 8 {
                client::claim(&vault, stream_id, provider.account_id(), payout, receipt)
            } else {
                client::close_stream_by_provider(&vault, stream_id, provider.account_id(), payout, receipt)
            }
        }
    };
    (call, signers)
}

/// None, a receipt signed by the stream's receipt key, or a forged one.
fn receipt(
    f: &Fixture,
    s: &mut Source<'_>,
    vault: &VaultRef,
    stream_id: u64,
    now_secs: u64,
) -> Option<DeliveryReceipt> {
    let choice = s.byte() % 4;
    if choice == 0 {
        return None;
    }
    let body = ReceiptBody {
        program_id: if s.one_in(16) { ProgramId([s.u32(); 8]) } else { vault.program_id },
        stream_config: if s.one_in(16) { AccountId(s.array()) } else { vault.stream(stream_id) },
        stream_id,
        acknowledged_total: amount(s),
        deliveries_digest: sha256(&[&now_secs.to_le_bytes()]),
    };
    let signature = if choice == 1 { s.array() } else { f.receipt_key.sign_with_aux(&body.digest(), &[0x11; 32]).0 };
    Some(DeliveryReceipt { body, signature })
}

/// An exact 256-bit sum (high limb, low limb) of `u128` values, built with checked additions.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, PartialOrd, Ord)]
struct Total {
    high: u128,
    low: u128,
}

impl Total {
    fn add(mut self, value: u128) -> Self {
        match self.low.checked_add(value) {
            Some(low) => self.low = low,
            None => {
                self.low = self.low.wrapping_add(value);
                self.high = self.high.checked_add(1).unwrap_or_else(|| panic!("256-bit total overflowed"));
            }
        }
        self
    }
}

fn native_total(state: &State) -> Total {
    state.iter().fold(Total::default(), |total, (_, account)| total.add(account.balance))
}

/// Per token definition, the sum of every holding's balance.
fn token_totals(state: &State) -> BTreeMap<AccountId, Total> {
    let mut totals: BTreeMap<AccountId, Total> = BTreeMap::new();
    for (_, account) in state.iter() {
        if account.program_owner != token_program_id() {
            continue;
        }
        if let Ok(holding) = decode::<TokenHolding>(&account.data) {
            let total = totals.entry(holding.definition_id()).or_default();
            *total = total.add(holding.balance());
        }
    }
    // A new empty holding adds no supply.
    totals.retain(|_, total| *total != Total::default());
    totals
}

/// The vault's funds and `total_allocated`, when its config and holding decode.
fn vault_funds(state: &State, ps: &ProgramId, vault: &VaultRef) -> Option<(u128, u128)> {
    let config_account = state.account(&vault.config());
    if config_account.program_owner != *ps {
        return None;
    }
    let config: VaultConfig = decode(&config_account.data).ok()?;
    let holding = state.account(&vault.holding());
    let funds = if config.is_native() {
        (holding.program_owner == *ps).then_some(holding.balance)?
    } else {
        decode::<TokenHolding>(&holding.data).ok()?.balance()
    };
    Some((funds, config.total_allocated))
}

fn check_success(f: &Fixture, state: &State, tx: &Transaction, applied: &Applied, slots: &[VaultSlot]) {
    let mut after = state.clone();
    after.apply_diff(&applied.diff);
    assert_eq!(native_total(state), native_total(&after), "native supply not conserved by {tx:?}");

    let signers: BTreeSet<AccountId> = tx.signer_ids().into_iter().collect();
    let listed: BTreeSet<AccountId> = tx.message.account_ids.iter().copied().collect();
    for (id, post) in &applied.diff.accounts {
        let pre = state.account(id);
        assert!(listed.contains(id) || signers.contains(id), "{id} changed although the transaction does not name it");
        assert!(!CLOCK_ACCOUNT_IDS.contains(id), "a user transaction changed clock account {id}");
        let expected_nonce = if signers.contains(id) { pre.nonce.checked_add(1) } else { Some(pre.nonce) };
        assert_eq!(Some(post.nonce), expected_nonce, "nonce of {id} moved wrongly");
        assert!(
            post.program_owner == pre.program_owner || pre.program_owner == ProgramId::DEFAULT,
            "owner of {id} changed from {:?} to {:?}",
            pre.program_owner,
            post.program_owner
        );
        assert!(post.data.len() <= DATA_MAX_LENGTH);
        if post.program_owner == f.ps
            && post.data != pre.data
            && let Ok(stream) = decode::<StreamConfig>(&post.data)
        {
            assert_eq!(stream.validate_invariants(), Ok(()), "a written stream breaks its invariants: {stream:?}");
        }
    }
    for signer in &signers {
        let expected = state.account(signer).nonce.checked_add(1);
        assert_eq!(Some(after.account(signer).nonce), expected, "signer {signer}'s nonce not bumped once");
    }
    if tx.message.program_id == f.ps {
        assert_eq!(token_totals(state), token_totals(&after), "token supply not conserved by {tx:?}");
    }
    let mut vaults: Vec<VaultRef> = slots.iter().map(|slot| slot.vault).collect();
    if let Ok(Instruction::InitializeVault { vault_id, token_id, .. }) =
        Instruction::from_words(&tx.message.instruction_data)
    {
        for owner in &f.actors {
            vaults.push(VaultRef { program_id: f.ps, owner: owner.account_id(), vault_id, token_id });
        }
    }
    for vault in &vaults {
        if let (Some((funds, allocated)), Some((funds_after, allocated_after))) =
            (vault_funds(state, &f.ps, vault), vault_funds(&after, &f.ps, vault))
            && funds >= allocated
        {
            assert!(
                funds_after >= allocated_after,
                "a solvent vault became insolvent: {funds_after} < {allocated_after}"
            );
        }
    }
}

/// The pure program on the runtime's pre-states: its errors are the transaction's errors, and
/// its successful output obeys the runtime's rules.
fn check_pure_program(f: &Fixture, state: &State, tx: &Transaction, result: &Result<Applied, TxError>) {
    if tx.check_structure().is_err() {
        return;
    }
    let signers: BTreeSet<AccountId> = tx.signer_ids().into_iter().collect();
    let nonces_match = signers.len() == tx.message.nonces.len()
        && tx.signer_ids().iter().zip(&tx.message.nonces).all(|(id, nonce)| state.account(id).nonce == *nonce);
    if !nonces_match {
        return;
    }
    let pre_states: Vec<AccountWithMetadata> = tx
        .message
        .account_ids
        .iter()
        .map(|id| AccountWithMetadata::new(*id, state.account(id), signers.contains(id)))
        .collect();
    let input = ProgramInput {
        self_program_id: f.ps,
        caller_program_id: None,
        pre_states: pre_states.clone(),
        instruction_data: &tx.message.instruction_data,
    };
    match f.program.process(input) {
        Err(error) => match result {
            Err(tx_error) => assert_eq!(tx_error.code(), error.code(), "runtime and program disagree on the error"),
            Ok(_) => panic!("the program failed with {error} but the transaction succeeded"),
        },
        Ok(output) => {
            assert_eq!(output.post_states.len(), pre_states.len(), "one post-state per pre-state");
            let mut sum_pre = Total::default();
            let mut sum_post = Total::default();
            for (pre, post) in pre_states.iter().zip(&output.post_states) {
                check_post_state(f, pre, post);
                sum_pre = sum_pre.add(pre.account.balance);
                sum_post = sum_post.add(post.account.balance);
            }
            assert_eq!(sum_pre, sum_post, "program output does not conserve balances");
        }
    }
}

/// The rules the runtime enforces on a program's output (LEZ `validate_execution`); a program
/// that validated its input never produces output that breaks them.
fn check_post_state(f: &Fixture, pre: &AccountWithMetadata, post: &AccountPostState) {
    let (before, after, id) = (&pre.account, &post.account, pre.account_id);
    assert_eq!(after.nonce, before.nonce, "program changed the nonce of {id}");
    assert_eq!(after.program_owner, before.program_owner, "program changed the owner of {id}");
    assert!(
        after.balance >= before.balance || before.program_owner == f.ps,
        "program debited {id}, which it does not own"
    );
    assert!(
        after.data == before.data || before.program_owner == f.ps || before.is_default(),
        "program rewrote the data of {id}, which it does not own"
    );
    assert!(after.data.len() <= DATA_MAX_LENGTH, "program wrote oversized data to {id}");
}

/// Inputs whose transaction applies, one per kind of call (instruction variant or builtin),
/// found by a deterministic search over pseudo-random inputs.
#[must_use]
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut seeds: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for attempt in 0_u64..20_000 {
        let input = crate::pseudo_random_bytes(attempt, 200);
        if let Some(kind) = applied_kind(&input) {
            seeds.entry(kind).or_insert(input);
        }
    }
    seeds.into_iter().collect()
}

/// The kind of call the input's transaction makes, when it applies.
#[must_use]
pub fn applied_kind(data: &[u8]) -> Option<String> {
    let f = fixture();
    let mut s = Source::new(data);
    let _flags = s.byte();
    let (chain, slots, now_secs) = build_chain(f, &mut s);
    let (message, signers) = build_message(f, &mut s, chain.state(), &slots, now_secs);
    let tx = chain.signing().sign(message, &signers);
    chain.execute(&tx).ok()?;
    let program = &tx.message.program_id;
    Some(if *program == f.ps {
        Instruction::from_words(&tx.message.instruction_data)
            .map_or_else(|_| "payment-streams".to_owned(), |i| i.name().replace('_', "-"))
    } else if *program == token_program_id() {
        "token".to_owned()
    } else {
        "transfer".to_owned()
    })
}
