//! The instruction tests' chain: the runtime's testkit chain with genesis accounts, a clock the
//! test sets in seconds, transactions built from `paystreams_program::client` calls, and the
//! assertions the tests share.

use paystreams_lez_core::{
    Account, AccountId, ProgramId,
    crypto::SecretKey,
    sha256,
    token::{TokenHolding, TokenInstruction, token_program_id},
    transfer::authenticated_transfer_program_id,
};
use paystreams_program::{
    ExtensionSettings, StreamError,
    client::{self, Call, VaultRef},
    payment_streams_program_id,
    state::{StreamConfig, VaultConfig, VaultPrivacyTier, decode, encode},
};
use paystreams_runtime::{
    TxError,
    testkit::{LocalChain, secs_to_ms},
};

pub fn key(name: &str) -> SecretKey {
    SecretKey::from_bytes(&sha256(&[b"paystreams-test/", name.as_bytes()])).expect("valid key")
}

/// The runtime's testkit chain, with the program tests' assertions.
pub struct Chain {
    chain: LocalChain,
}

pub const VAULT_ID: u64 = 1;

pub struct Actors {
    pub owner: SecretKey,
    pub alt: SecretKey,
    pub provider: SecretKey,
    pub provider_b: SecretKey,
    pub recipient: SecretKey,
}

pub fn actors() -> Actors {
    Actors {
        owner: key("owner"),
        alt: key("alt"),
        provider: key("provider"),
        provider_b: key("provider-b"),
        recipient: key("recipient"),
    }
}

impl Chain {
    /// Genesis: owner 1000, alt 1000, providers and recipient 0 (initialised, so they can be paid).
    pub fn new(owner_balance: u128) -> (Self, Actors) {
        let a = actors();
        let funded = [
            (a.owner.account_id(), owner_balance),
            (a.alt.account_id(), 1000),
            (a.provider.account_id(), 0),
            (a.provider_b.account_id(), 0),
            (a.recipient.account_id(), 0),
        ];
        (Self { chain: LocalChain::new(&funded, 0).expect("genesis at time 0") }, a)
    }

    pub fn set_time(&mut self, secs: u64) {
        self.chain.advance_to(secs).expect("clock moves");
    }

    /// Forces the clock backwards (the runtime's clock refuses; tests of the program's own
    /// monotonicity check need it).
    pub fn force_time(&mut self, secs: u64) {
        use paystreams_lez_core::clock::{CLOCK_01_ACCOUNT_ID, ClockAccountData};
        let mut clock = self.account(&CLOCK_01_ACCOUNT_ID);
        clock.data = borsh::to_vec(&ClockAccountData {
            block_id: self.chain.height(),
            timestamp_ms: secs_to_ms(secs).expect("ms"),
        })
        .expect("enc");
        self.put(CLOCK_01_ACCOUNT_ID, clock);
    }

    pub fn exec_raw(
        &mut self,
        program_id: ProgramId,
        account_ids: Vec<AccountId>,
        data: Vec<u32>,
        signers: &[&SecretKey],
    ) -> Result<(), TxError> {
        let before = self.chain.state().clone();
        match self.chain.submit_raw(program_id, account_ids, data, signers) {
            Ok(_) => Ok(()),
            Err(error) => {
                assert!(*self.chain.state() == before, "a failed transaction changed state");
                Err(error)
            }
        }
    }

    pub fn exec(&mut self, call: Call, signers: &[&SecretKey]) -> Result<(), TxError> {
        let data = call.instruction_data();
        self.exec_raw(call.program_id, call.account_ids, data, signers)
    }

    /// Runs `call` and asserts it fails with program error `expected`, leaving state untouched.
    pub fn expect_err(&mut self, call: Call, signers: &[&SecretKey], expected: StreamError) {
        let before = self.chain.state().clone();
        let result = self.exec(call, signers);
        match result {
            Err(error) => assert_eq!(error.code(), expected.code(), "expected {expected}, got {error}"),
            Ok(()) => panic!("expected {expected}, but the transaction succeeded"),
        }
        assert!(*self.chain.state() == before, "failed transaction changed state");
    }

    pub fn ok(&mut self, call: Call, signers: &[&SecretKey]) {
        if let Err(error) = self.exec(call, signers) {
            panic!("transaction failed: {error}");
        }
    }

    /// The account at `id` (the default account when it was never touched).
    pub fn account(&self, id: &AccountId) -> Account {
        self.chain.account(id)
    }

    pub fn balance(&self, id: &AccountId) -> u128 {
        self.account(id).balance
    }

    pub fn vault_config(&self, vault: &VaultRef) -> VaultConfig {
        decode(&self.account(&vault.config()).data).expect("vault config")
    }

    pub fn stream(&self, vault: &VaultRef, stream_id: u64) -> StreamConfig {
        decode(&self.account(&vault.stream(stream_id)).data).expect("stream config")
    }

    pub fn put(&mut self, id: AccountId, account: Account) {
        self.chain.put(id, account);
    }

    pub fn patch_vault(&mut self, vault: &VaultRef, f: impl FnOnce(&mut VaultConfig)) {
        let mut account = self.account(&vault.config());
        let mut config: VaultConfig = decode(&account.data).expect("vault");
        f(&mut config);
        account.data = encode(&config);
        self.put(vault.config(), account);
    }

    pub fn patch_stream(&mut self, vault: &VaultRef, stream_id: u64, f: impl FnOnce(&mut StreamConfig)) {
        let mut account = self.account(&vault.stream(stream_id));
        let mut stream: StreamConfig = decode(&account.data).expect("stream");
        f(&mut stream);
        account.data = encode(&stream);
        self.put(vault.stream(stream_id), account);
    }

    pub fn token_balance(&self, holding: &AccountId) -> u128 {
        decode::<TokenHolding>(&self.account(holding).data).map_or(0, |h| h.balance())
    }

    /// Creates a token whose definition key is `definition` with the whole `supply` in `holding`.
    pub fn create_token(&mut self, definition: &SecretKey, holding: &SecretKey, supply: u128) {
        let ix = TokenInstruction::NewFungibleDefinition { name: "TST".to_owned(), total_supply: supply };
        self.exec_raw(
            token_program_id(),
            vec![definition.account_id(), holding.account_id()],
            ix.to_words(),
            &[definition, holding],
        )
        .expect("token created");
    }
}

pub fn native_vault(owner: &SecretKey) -> VaultRef {
    VaultRef::native(payment_streams_program_id(), owner.account_id(), VAULT_ID)
}

pub fn deposit(vault: &VaultRef, amount: u128) -> Call {
    client::deposit(vault, amount, authenticated_transfer_program_id(), None)
}

pub fn create(vault: &VaultRef, stream_id: u64, provider: &SecretKey, rate: u64, allocation: u128) -> Call {
    client::create_stream(vault, stream_id, provider.account_id(), rate, allocation, ExtensionSettings::default())
}

/// The reference's standard fixture: owner 1000, vault 1 initialised and 500 deposited, clock at
/// `t0` seconds.
pub fn deposited(t0: u64) -> (Chain, Actors, VaultRef) {
    let (mut chain, a) = Chain::new(1000);
    let vault = native_vault(&a.owner);
    chain.set_time(t0);
    chain.ok(client::initialize_vault(&vault, VaultPrivacyTier::Public), &[&a.owner]);
    chain.ok(deposit(&vault, 500), &[&a.owner]);
    (chain, a, vault)
}

/// Fixture plus stream 0 to the provider.
pub fn streaming(t0: u64, rate: u64, allocation: u128) -> (Chain, Actors, VaultRef) {
    let (mut chain, a, vault) = deposited(t0);
    chain.ok(create(&vault, 0, &a.provider, rate, allocation), &[&a.owner]);
    (chain, a, vault)
}

/// Asserts `total_allocated == Σ allocation` and solvency for a native vault.
pub fn assert_conservation(chain: &Chain, vault: &VaultRef) {
    let config = chain.vault_config(vault);
    let sum: u128 = (0..config.next_stream_id).map(|id| chain.stream(vault, id).allocation).sum();
    assert_eq!(config.total_allocated, sum, "total_allocated equals the sum of allocations");
    assert!(chain.balance(&vault.holding()) >= config.total_allocated, "vault is solvent");
}
