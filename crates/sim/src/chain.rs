//! A one-writer local chain over the real runtime: genesis, one block per step, the clock
//! advanced before each transaction, transactions signed by deterministic keys.
//!
//! This is the only module that talks to `paystreams-runtime`, so the simulator and the
//! state-machine test share exactly one way of building and applying transactions.

use paystreams_lez_core::{
    Account, AccountId, ProgramId,
    crypto::{PublicKey, SecretKey, Signature},
    sha256,
};
use paystreams_program::{
    client::{Call, VaultRef},
    state::{StreamConfig, VaultConfig, decode},
};
use paystreams_runtime::{BlockContext, Message, Runtime, State, StateView as _, Transaction, WitnessSet};

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
    pub fn derive(label: &str) -> Result<Self, ChainError> {
        let digest = sha256(&[KEY_PREFIX.as_bytes(), label.as_bytes()]);
        let secret = SecretKey::from_bytes(&digest)
            .map_err(|e| ChainError::Internal(format!("key for {label:?} is unusable: {e}")))?;
        let public = secret.public_key();
        Ok(Self { label: label.to_owned(), id: public.account_id(), secret, public })
    }
}

/// A transaction the runtime refused: its stable code and name.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TxFailure {
    pub code: u32,
    pub name: String,
}

/// Failures that are not a transaction's own outcome.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum ChainError {
    #[error("internal simulator error: {0}")]
    Internal(String),
}

/// How transactions are authorised.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Signing {
    /// Real BIP-340 signatures, verified by the runtime (the simulator).
    Real,
    /// Placeholder signatures with `apply_verified`: signature checking is tested elsewhere and
    /// dominates the cost of a property test.
    Skip,
}

/// The chain: runtime, state, and the current block.
pub struct Chain {
    runtime: Runtime,
    state: State,
    block_id: u64,
    timestamp_ms: u64,
    signing: Signing,
}

impl Chain {
    /// Genesis with the given native balances (accounts owned by authenticated transfer).
    #[must_use]
    pub fn new(balances: &[(AccountId, u128)], signing: Signing) -> Self {
        Self {
            runtime: Runtime::new(),
            state: paystreams_runtime::genesis(balances, 0),
            block_id: 0,
            timestamp_ms: 0,
            signing,
        }
    }

    /// Opens the next block at `t` seconds: the clock accounts then read `t`.
    ///
    /// # Errors
    /// When `t` goes backwards, overflows milliseconds, or the runtime refuses the clock update.
    pub fn advance_to(&mut self, t: u64) -> Result<(), ChainError> {
        let timestamp_ms =
            t.checked_mul(1000).ok_or_else(|| ChainError::Internal(format!("t = {t} s overflows milliseconds")))?;
        if timestamp_ms < self.timestamp_ms {
            return Err(ChainError::Internal(format!("time went backwards to {t} s")));
        }
        self.block_id = self.block_id.checked_add(1).ok_or_else(|| ChainError::Internal("block id overflow".into()))?;
        self.timestamp_ms = timestamp_ms;
        let diff = self
            .runtime
            .clock_update(&self.state, &self.context())
            .map_err(|e| ChainError::Internal(format!("clock update refused: {} {}", e.code(), e.name())))?;
        self.state.apply_diff(&diff);
        Ok(())
    }

    fn context(&self) -> BlockContext {
        BlockContext { block_id: self.block_id, timestamp_ms: self.timestamp_ms }
    }

    /// Current chain time in seconds.
    #[must_use]
    pub const fn now(&self) -> u64 {
        self.timestamp_ms / 1000
    }

    /// Submits a program call signed by `signers` in the current block.
    ///
    /// # Errors
    /// The runtime's refusal (program errors keep the program's code); state is then untouched.
    pub fn submit(&mut self, call: &Call, signers: &[&Key]) -> Result<(), TxFailure> {
        self.submit_raw(call.program_id, call.account_ids.clone(), call.instruction_data(), signers)
    }

    /// Submits any instruction bytes to any program.
    ///
    /// # Errors
    /// As [`Chain::submit`].
    pub fn submit_raw(
        &mut self,
        program_id: ProgramId,
        account_ids: Vec<AccountId>,
        instruction_data: Vec<u8>,
        signers: &[&Key],
    ) -> Result<(), TxFailure> {
        let nonces = signers.iter().map(|k| self.account(&k.id).nonce).collect();
        let message = Message { program_id, account_ids, nonces, instruction_data };
        let result = match self.signing {
            Signing::Real => {
                let secrets: Vec<&SecretKey> = signers.iter().map(|k| &k.secret).collect();
                let tx = Transaction::sign(message, &secrets);
                self.runtime.apply(&self.state, &tx, &self.context())
            }
            Signing::Skip => {
                let witness_set = WitnessSet {
                    signatures_and_public_keys: signers.iter().map(|k| (Signature([0; 64]), k.public)).collect(),
                };
                let tx = Transaction { message, witness_set };
                self.runtime.apply_verified(&self.state, &tx, &self.context())
            }
        };
        match result {
            Ok(applied) => {
                self.state.apply_diff(&applied.diff);
                Ok(())
            }
            Err(e) => Err(TxFailure { code: e.code(), name: e.name().to_owned() }),
        }
    }

    /// The account at `id` (the default account when it was never touched).
    #[must_use]
    pub fn account(&self, id: &AccountId) -> Account {
        self.state.account(id)
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
