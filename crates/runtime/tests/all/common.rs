//! Shared test harness: a chain over the real runtime plus a set of small (mostly malicious)
//! programs, each a plain function of its input.

use std::sync::Arc;

use paystreams_lez_core::{
    Account, AccountId, AccountPostState, ProgramError, ProgramId, ProgramInput, ProgramOutput, crypto::SecretKey,
    program::Program, transfer::authenticated_transfer_program_id,
};
use paystreams_runtime::{
    Applied, BlockContext, Message, Runtime, State, StateView as _, Transaction, TxError, genesis,
};

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

pub struct Harness {
    pub runtime: Runtime,
    pub state: State,
    pub ctx: BlockContext,
}

impl Harness {
    /// Genesis with `funded` native balances and the given test programs installed.
    pub fn new(funded: &[(AccountId, u128)], programs: &[(&str, ProgramFn)]) -> Self {
        let mut runtime = Runtime::new();
        for (name, f) in programs {
            runtime = runtime.with_program(Arc::new(TestProgram { id: pid(name), f: *f }));
        }
        Self { runtime, state: genesis(funded, 1_000), ctx: BlockContext { block_id: 1, timestamp_ms: 1_000 } }
    }

    pub fn account(&self, id: &AccountId) -> Account {
        self.state.account(id)
    }

    /// A transaction signed by `signers` with their current nonces.
    pub fn tx(
        &self,
        program_id: ProgramId,
        account_ids: Vec<AccountId>,
        data: Vec<u8>,
        signers: &[&SecretKey],
    ) -> Transaction {
        let nonces = signers.iter().map(|k| self.account(&k.account_id()).nonce).collect();
        Transaction::sign(Message { program_id, account_ids, nonces, instruction_data: data }, signers)
    }

    /// Applies `tx`; commits on success. On failure checks that the state is untouched.
    pub fn submit(&mut self, tx: &Transaction) -> Result<Applied, TxError> {
        let root = self.state.state_root();
        match self.runtime.apply(&self.state, tx, &self.ctx) {
            Ok(applied) => {
                self.state.apply_diff(&applied.diff);
                Ok(applied)
            }
            Err(e) => {
                assert_eq!(self.state.state_root(), root, "a refused transaction changed state");
                Err(e)
            }
        }
    }

    pub fn call(
        &mut self,
        program_id: ProgramId,
        account_ids: Vec<AccountId>,
        data: Vec<u8>,
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
        data: Vec<u8>,
        signers: &[&SecretKey],
        code: u32,
    ) -> TxError {
        let before = self.state.clone();
        let error = self.call(program_id, account_ids, data, signers).expect_err("transaction should be refused");
        assert_eq!(error.code(), code, "unexpected error: {error}");
        assert_eq!(self.state, before);
        error
    }

    /// An account owned by `owner` with `balance`, written straight into state.
    pub fn put(&mut self, id: AccountId, owner: ProgramId, balance: u128) {
        self.state.insert(id, Account { program_owner: owner, balance, data: vec![], nonce: 0 });
    }
}

pub fn native() -> ProgramId {
    authenticated_transfer_program_id()
}
