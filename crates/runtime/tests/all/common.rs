//! Shared test harness: the testkit chain plus a set of small (mostly malicious)
//! programs, each a plain function of its input.

use std::sync::Arc;

use paystreams_lez_core::{
    Account, AccountId, AccountPostState, ProgramError, ProgramId, ProgramInput, ProgramOutput, crypto::SecretKey,
    program::Program, transfer::authenticated_transfer_program_id,
};
use paystreams_runtime::{Applied, Runtime, Transaction, TxError, testkit::LocalChain};

pub type ProgramFn = fn(&ProgramInput<'_>) -> Result<ProgramOutput, ProgramError>;

/// A test program: an id derived from its name and a function.
pub struct TestProgram {
    pub id: ProgramId,
    pub f: ProgramFn,
}

impl Program for TestProgram {
    fn id(&self) -> ProgramId {
        self.id
    }

    fn name(&self) -> &'static str {
        "test"
    }

    fn execute(&self, input: ProgramInput<'_>) -> Result<ProgramOutput, ProgramError> {
        (self.f)(&input)
    }
}

/// The id of the test program called `name`.
pub fn pid(name: &str) -> ProgramId {
    ProgramId::from_name(&format!("test/{name}"))
}

pub fn key(n: u8) -> SecretKey {
    SecretKey::from_bytes(&[n; 32]).expect("valid secret key")
}

/// Every pre-state unchanged, without claims.
pub fn unchanged(input: &ProgramInput<'_>) -> Vec<AccountPostState> {
    input.pre_states.iter().map(|a| AccountPostState::new(a.account.clone())).collect()
}

pub fn output(post_states: Vec<AccountPostState>) -> ProgramOutput {
    ProgramOutput { post_states, chained_calls: vec![], events: vec![] }
}

/// The testkit chain with the test programs installed, plus assertions on refusals.
pub struct Harness {
    pub chain: LocalChain,
}

impl Harness {
    /// Genesis at 1 s with `funded` native balances and the given test programs installed.
    pub fn new(funded: &[(AccountId, u128)], programs: &[(&str, ProgramFn)]) -> Self {
        let mut runtime = Runtime::new();
        for (name, f) in programs {
            runtime = runtime.with_program(Arc::new(TestProgram { id: pid(name), f: *f }));
        }
        Self { chain: LocalChain::new(funded, 1).expect("genesis time fits").with_runtime(runtime) }
    }

    pub fn account(&self, id: &AccountId) -> Account {
        self.chain.account(id)
    }

    /// A transaction signed by `signers` with their current nonces.
    pub fn tx(
        &self,
        program_id: ProgramId,
        account_ids: Vec<AccountId>,
        data: Vec<u32>,
        signers: &[&SecretKey],
    ) -> Transaction {
        self.chain.transaction(program_id, account_ids, data, signers)
    }

    /// Applies `tx`; commits on success. On failure checks that the state is untouched.
    pub fn submit(&mut self, tx: &Transaction) -> Result<Applied, TxError> {
        let root = self.chain.state().state_root();
        let result = self.chain.apply(tx);
        if result.is_err() {
            assert_eq!(self.chain.state().state_root(), root, "a refused transaction changed state");
        }
        result
    }

    pub fn call(
        &mut self,
        program_id: ProgramId,
        account_ids: Vec<AccountId>,
        data: Vec<u32>,
        signers: &[&SecretKey],
    ) -> Result<Applied, TxError> {
        let tx = self.tx(program_id, account_ids, data, signers);
        self.submit(&tx)
    }

    /// Asserts the call is refused with `code` and changes nothing.
    pub fn reject(
        &mut self,
        program_id: ProgramId,
        account_ids: Vec<AccountId>,
        data: Vec<u32>,
        signers: &[&SecretKey],
        code: u32,
    ) -> TxError {
        let before = self.chain.state().clone();
        let error = self.call(program_id, account_ids, data, signers).expect_err("transaction should be refused");
        assert_eq!(error.code(), code, "unexpected error: {error}");
        assert_eq!(self.chain.state(), &before);
        error
    }

    /// An account owned by `owner` with `balance`, written straight into state.
    pub fn put(&mut self, id: AccountId, owner: ProgramId, balance: u128) {
        self.chain.put(id, Account { program_owner: owner, balance, data: vec![], nonce: 0 });
    }
}

pub fn native() -> ProgramId {
    authenticated_transfer_program_id()
}
