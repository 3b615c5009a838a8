//! The simulator's chain: the runtime's testkit chain ([`LocalChain`]) with one block per step,
//! the clock advanced before each transaction, transactions signed by deterministic keys, and
//! decoded reads of vaults and streams.
//!
//! This is the only module of the simulator that talks to `paystreams-runtime`, so the simulator
//! and the state-machine test share exactly one way of building and applying transactions.

use paystreams_lez_core::{
    Account, AccountId, ProgramId,
    crypto::{PublicKey, SecretKey},
    sha256,
};
use paystreams_program::{
    client::{Call, VaultRef},
    state::{StreamConfig, VaultConfig, decode},
};
use paystreams_runtime::{
    BlockContext, Runtime,
    testkit::{LocalChain, LocalChainError, Signer},
};

/// How transactions are authorised (the runtime testkit's).
pub use paystreams_runtime::testkit::Signing;

/// A deterministic key: secret = SHA-256(`paystreams-sim/` + label). Labels are scenario names
/// (`alice`) or derived labels (`alice/USDX` for a token holding).
#[derive(Clone, Debug)]
pub struct Key {
    pub label: String,
    pub secret: SecretKey,
    pub public: PublicKey,
    pub id: AccountId,
}

/// Prefix hashed in front of every scenario name to derive its secret key.
pub const KEY_PREFIX: &str = "paystreams-sim/";

impl Key {
    /// Derives the key for `label`.
    ///
    /// # Errors
    /// When the digest is not a valid secp256k1 scalar (probability about 2^-128).
    pub fn derive(label: &str) -> Result<Self, KeyDerivationError> {
        let digest = sha256(&[KEY_PREFIX.as_bytes(), label.as_bytes()]);
        let secret = SecretKey::from_bytes(&digest)
            .map_err(|e| KeyDerivationError { label: label.to_owned(), reason: e.to_string() })?;
        let public = secret.public_key();
        Ok(Self { label: label.to_owned(), id: public.account_id(), secret, public })
    }
}

impl Signer for Key {
    fn secret_key(&self) -> &SecretKey {
        &self.secret
    }

    fn public_key(&self) -> PublicKey {
        self.public
    }

    fn account_id(&self) -> AccountId {
        self.id
    }
}

/// A transaction the runtime refused: its stable code and name.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TxFailure {
    pub code: u32,
    pub name: String,
}

/// A scenario name whose derived key is unusable.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[error("internal simulator error: key for {label:?} is unusable: {reason}")]
pub struct KeyDerivationError {
    pub label: String,
    pub reason: String,
}

/// The chain: the testkit's local chain starting at time 0, one block per step.
pub struct Chain {
    chain: LocalChain,
}

impl Chain {
    /// Genesis with the given native balances (accounts owned by authenticated transfer). The
    /// simulator signs for real ([`Signing::Real`]); property tests may trust signatures
    /// ([`Signing::Trusted`]), whose checking is tested elsewhere and dominates their cost.
    #[must_use]
    pub fn new(balances: &[(AccountId, u128)], signing: Signing) -> Self {
        let genesis = paystreams_runtime::genesis(balances, 0);
        Self { chain: LocalChain::from_state(Runtime::new(), genesis, BlockContext::default()).with_signing(signing) }
    }

    /// Opens the next block at `t` seconds: the clock accounts then read `t`.
    ///
    /// # Errors
    /// When `t` goes backwards, overflows milliseconds, or the runtime refuses the clock update.
    pub fn advance_to(&mut self, t: u64) -> Result<(), LocalChainError> {
        self.chain.advance_to(t)
    }

    /// Current chain time in seconds.
    #[must_use]
    pub const fn now(&self) -> u64 {
        self.chain.now_secs()
    }

    /// Submits a program call signed by `signers` in the current block.
    ///
    /// # Errors
    /// The runtime's refusal (program errors keep the program's code); state is then untouched.
    pub fn submit(&mut self, call: &Call, signers: &[&Key]) -> Result<(), TxFailure> {
        self.submit_raw(call.program_id, call.account_ids.clone(), call.instruction_data(), signers)
    }

    /// Submits any instruction words to any program.
    ///
    /// # Errors
    /// As [`Chain::submit`].
    pub fn submit_raw(
        &mut self,
        program_id: ProgramId,
        account_ids: Vec<AccountId>,
        instruction_data: Vec<u32>,
        signers: &[&Key],
    ) -> Result<(), TxFailure> {
        match self.chain.submit_raw(program_id, account_ids, instruction_data, signers) {
            Ok(_) => Ok(()),
            Err(e) => Err(TxFailure { code: e.code(), name: e.name().to_owned() }),
        }
    }

    /// The account at `id` (the default account when it was never touched).
    #[must_use]
    pub fn account(&self, id: &AccountId) -> Account {
        self.chain.account(id)
    }

    /// The vault config at the vault's PDA, if it holds one.
    #[must_use]
    pub fn vault(&self, vault: &VaultRef) -> Option<VaultConfig> {
        self.vault_at(&vault.program_id, &vault.config())
    }

    /// The vault config stored at `config` (an already derived address: PDA derivation is
    /// SHA-256 work that callers in hot loops cache).
    #[must_use]
    pub fn vault_at(&self, program_id: &ProgramId, config: &AccountId) -> Option<VaultConfig> {
        let account = self.account(config);
        if account.program_owner != *program_id {
            return None;
        }
        decode(&account.data).ok()
    }

    /// The stream config stored at `stream` (an already derived address).
    #[must_use]
    pub fn stream_at(&self, program_id: &ProgramId, stream: &AccountId) -> Option<StreamConfig> {
        let account = self.account(stream);
        if account.program_owner != *program_id {
            return None;
        }
        decode(&account.data).ok()
    }

    /// The stream config of `stream_id` in `vault`, if it exists.
    #[must_use]
    pub fn stream(&self, vault: &VaultRef, stream_id: u64) -> Option<StreamConfig> {
        self.stream_at(&vault.program_id, &vault.stream(stream_id))
    }
}
