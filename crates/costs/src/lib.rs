//! Instruction costs of the payment-streams program, as deterministic instruction counts.
//!
//! Every [`Scenario`] prepares a realistic chain state through the real runtime (genesis,
//! clock, signed transactions), then hands one instruction's pre-states and bytes to the program
//! core's [`PaymentStreamsProgram::process`] inside its own `#[inline(never)]` function
//! `measure_<scenario>`. Only that call is measured: callgrind's
//! `--toggle-collect=paystreams_costs::measure_<scenario>` counts the instructions it executes
//! (Ir). Each measured call must succeed and emit the scenario's events, and afterwards the same
//! transaction must pass the runtime, so a failing or half-valid instruction is never measured.
//!
//! The binary `instruction-costs` runs one scenario per invocation (`instruction-costs NAME`),
//! lists them (`--list`) or runs them all once (no argument). The test `tests/callgrind.rs`
//! runs each scenario under `valgrind --tool=callgrind` and compares the counts with
//! `baseline.json`; it fails when a count grows more than 10%.
//!
//! Counts are exact and repeatable for one build on one machine: nothing in the measured region
//! reads time, randomness, hash seeds or the environment (receipts are signed with fixed
//! auxiliary randomness, all keys derive from fixed names, all maps are ordered). They do depend
//! on the toolchain, the build profile (the baseline is for the dev/test profile that
//! `cargo test --workspace` uses, where the program crates build at `opt-level = 2`), the
//! dependency versions and, slightly, on the C library's CPU-specific routines. After a
//! deliberate change, refresh the baseline with
//! `PAYSTREAMS_UPDATE_COST_BASELINE=1 cargo test -p paystreams-costs --test callgrind`
//! and commit `crates/costs/baseline.json` with the change.

use std::{collections::BTreeSet, hint::black_box};

use borsh::BorshDeserialize as _;
use paystreams_lez_core::{
    AccountId, AccountWithMetadata, ProgramId, ProgramInput, ProgramOutput,
    crypto::SecretKey,
    sha256,
    token::{TokenInstruction, token_program_id},
    transfer::authenticated_transfer_program_id,
};
use paystreams_program::{
    Event, ExtensionSettings, PaymentStreamsProgram, StreamError,
    client::{self, Call, VaultRef},
    payment_streams_program_id,
    receipt::{DeliveryReceipt, ReceiptBody},
    state::VaultPrivacyTier,
};
use paystreams_runtime::testkit::{LocalChain, Signing};

/// The measured call: the program core processing one instruction.
pub type Measure = fn(&PaymentStreamsProgram, ProgramInput<'_>) -> Result<ProgramOutput, StreamError>;

/// Generates one never-inlined measured function per scenario, so each has its own symbol.
macro_rules! measured {
    ($($name:ident),* $(,)?) => {$(
        /// Runs the program core on `input`; the whole body is the measured region.
        #[inline(never)]
        pub fn $name(program: &PaymentStreamsProgram, input: ProgramInput<'_>) -> Result<ProgramOutput, StreamError> {
            black_box(black_box(program).process(black_box(input)))
        }
    )*};
}

measured!(
    measure_initialize_vault,
    measure_initialize_vault_token,
    measure_deposit,
    measure_deposit_token,
    measure_withdraw,
    measure_withdraw_to_owner,
    measure_create_stream,
    measure_create_stream_with_extensions,
    measure_pause_stream,
    measure_resume_stream,
    measure_resume_stream_with_activation_fee,
    measure_top_up_stream,
    measure_close_stream_by_owner,
    measure_claim,
    measure_claim_with_auto_pause,
    measure_claim_with_receipt,
    measure_claim_token,
    measure_close_stream_by_provider,
    measure_close_stream_by_provider_with_auto_claim,
);

/// One measured instruction: how to reach its pre-state, the measured function, and the events
/// a successful run emits, in order.
pub struct Scenario {
    pub name: &'static str,
    prepare: fn() -> Result<Setup, String>,
    pub measure: Measure,
    pub events: &'static [&'static str],
}

/// The chain state just before the measured instruction, and the instruction with its signers.
pub struct Setup {
    chain: Chain,
    pub call: Call,
    signers: Vec<SecretKey>,
}

/// Every scenario, in a fixed order: each instruction once, plus the extension and token-vault
/// paths that cost notably more or less.
#[must_use]
pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "initialize_vault",
            prepare: initialize_vault,
            measure: measure_initialize_vault,
            events: &["vault_initialized"],
        },
        Scenario {
            name: "initialize_vault_token",
            prepare: initialize_vault_token,
            measure: measure_initialize_vault_token,
            events: &["vault_initialized"],
        },
        Scenario { name: "deposit", prepare: deposit, measure: measure_deposit, events: &["deposited"] },
        Scenario {
            name: "deposit_token",
            prepare: deposit_token,
            measure: measure_deposit_token,
            events: &["deposited"],
        },
        Scenario { name: "withdraw", prepare: withdraw, measure: measure_withdraw, events: &["withdrawn"] },
        Scenario {
            name: "withdraw_to_owner",
            prepare: withdraw_to_owner,
            measure: measure_withdraw_to_owner,
            events: &["withdrawn"],
        },
        Scenario {
            name: "create_stream",
            prepare: create_stream,
            measure: measure_create_stream,
            events: &["stream_created"],
        },
        Scenario {
            name: "create_stream_with_extensions",
            prepare: create_stream_with_extensions,
            measure: measure_create_stream_with_extensions,
            events: &["stream_created", "activation_fee_charged"],
        },
        Scenario {
            name: "pause_stream",
            prepare: pause_stream,
            measure: measure_pause_stream,
            events: &["stream_paused"],
        },
        Scenario {
            name: "resume_stream",
            prepare: resume_stream,
            measure: measure_resume_stream,
            events: &["stream_resumed"],
        },
        Scenario {
            name: "resume_stream_with_activation_fee",
            prepare: resume_stream_with_activation_fee,
            measure: measure_resume_stream_with_activation_fee,
            events: &["stream_resumed", "activation_fee_charged"],
        },
        Scenario {
            name: "top_up_stream",
            prepare: top_up_stream,
            measure: measure_top_up_stream,
            events: &["stream_topped_up"],
        },
        Scenario {
            name: "close_stream_by_owner",
            prepare: close_stream_by_owner,
            measure: measure_close_stream_by_owner,
            events: &["stream_closed"],
        },
        Scenario { name: "claim", prepare: claim, measure: measure_claim, events: &["claimed"] },
        Scenario {
            name: "claim_with_auto_pause",
            prepare: claim_with_auto_pause,
            measure: measure_claim_with_auto_pause,
            events: &["stream_auto_paused", "claimed"],
        },
        Scenario {
            name: "claim_with_receipt",
            prepare: claim_with_receipt,
            measure: measure_claim_with_receipt,
            events: &["claimed"],
        },
        Scenario { name: "claim_token", prepare: claim_token, measure: measure_claim_token, events: &["claimed"] },
        Scenario {
            name: "close_stream_by_provider",
            prepare: close_stream_by_provider,
            measure: measure_close_stream_by_provider,
            events: &["stream_closed"],
        },
        Scenario {
            name: "close_stream_by_provider_with_auto_claim",
            prepare: close_stream_by_provider_with_auto_claim,
            measure: measure_close_stream_by_provider_with_auto_claim,
            events: &["stream_closed", "claimed"],
        },
    ]
}

impl Scenario {
    /// Builds the chain state and the instruction, outside any measured region.
    ///
    /// # Errors
    /// When a preparatory transaction fails.
    pub fn prepare(&self) -> Result<Setup, String> {
        (self.prepare)().map_err(|e| format!("{}: preparation failed: {e}", self.name))
    }

    /// Prepares, runs the measured call once, and checks the result: success, one post-state per
    /// pre-state, the expected events, and acceptance of the same transaction by the runtime.
    ///
    /// # Errors
    /// Whatever went wrong, named.
    pub fn run(&self) -> Result<(), String> {
        let mut setup = self.prepare()?;
        let program_id = setup.call.program_id;
        let pre_states = setup.chain.pre_states(&setup.call, &setup.signers);
        let accounts = pre_states.len();
        let data = setup.call.instruction_data();
        let program = PaymentStreamsProgram::new(program_id);
        let input =
            ProgramInput { self_program_id: program_id, caller_program_id: None, pre_states, instruction_data: &data };

        let output =
            (self.measure)(&program, input).map_err(|e| format!("{}: the instruction failed: {e}", self.name))?;

        if output.post_states.len() != accounts {
            return Err(format!("{}: {} post-states for {accounts} accounts", self.name, output.post_states.len()));
        }
        let events = output
            .events
            .iter()
            .map(|bytes| Event::try_from_slice(bytes).map(|event| event.kind()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{}: undecodable event: {e}", self.name))?;
        if events != self.events {
            return Err(format!("{}: events {events:?}, expected {:?}", self.name, self.events));
        }
        let signers: Vec<&SecretKey> = setup.signers.iter().collect();
        setup
            .chain
            .submit(&setup.call, &signers)
            .map_err(|e| format!("{}: the runtime refused the transaction: {e}", self.name))
    }
}

/// Fixed BIP-340 auxiliary randomness: signatures, and so every state, are reproducible.
const AUX_RAND: [u8; 32] = [0x5a; 32];

/// The testkit chain with a clock set in seconds. Transactions are signed with fixed auxiliary
/// randomness, so every byte of every state is the same on every run.
struct Chain(LocalChain);

impl Chain {
    fn new(funded: &[(AccountId, u128)]) -> Result<Self, String> {
        let chain = LocalChain::new(funded, 0).map_err(|e| e.to_string())?;
        Ok(Self(chain.with_signing(Signing::Fixed(AUX_RAND))))
    }

    fn set_time(&mut self, secs: u64) -> Result<(), String> {
        self.0.advance_to(secs).map_err(|e| e.to_string())
    }

    /// The pre-states the runtime hands the program: each listed account, authorised when it
    /// signed.
    fn pre_states(&self, call: &Call, signers: &[SecretKey]) -> Vec<AccountWithMetadata> {
        let authorized: BTreeSet<AccountId> = signers.iter().map(SecretKey::account_id).collect();
        call.account_ids
            .iter()
            .map(|id| AccountWithMetadata::new(*id, self.0.account(id), authorized.contains(id)))
            .collect()
    }

    fn submit(&mut self, call: &Call, signers: &[&SecretKey]) -> Result<(), String> {
        self.0.submit(call, signers).map(drop).map_err(|e| e.to_string())
    }

    /// Signs and applies one transaction; its diff is committed when it succeeds.
    fn submit_raw(
        &mut self,
        program_id: ProgramId,
        account_ids: &[AccountId],
        instruction_data: Vec<u32>,
        signers: &[&SecretKey],
    ) -> Result<(), String> {
        self.0
            .submit_raw(program_id, account_ids.to_vec(), instruction_data, signers)
            .map(drop)
            .map_err(|e| e.to_string())
    }

    fn setup(self, call: Call, signers: &[&SecretKey]) -> Setup {
        Setup { chain: self, call, signers: signers.iter().map(|key| (*key).clone()).collect() }
    }
}

/// A key derived from a fixed name.
fn key(name: &str) -> Result<SecretKey, String> {
    SecretKey::from_bytes(&sha256(&[b"paystreams-costs/", name.as_bytes()])).map_err(|e| e.to_string())
}

struct Actors {
    owner: SecretKey,
    provider: SecretKey,
    recipient: SecretKey,
}

/// A plausible chain time: seconds since the Unix epoch in mid-2025.
const T0: u64 = 1_750_000_000;
const VAULT_ID: u64 = 7;
const DEPOSIT: u128 = 1_000_000;
/// Stream parameters: 10 units a second, ten hours' worth allocated.
const RATE: u64 = 10;
const ALLOCATION: u128 = 360_000;
/// Time between stream creation and the measured stream operation: ten minutes.
const ELAPSED: u64 = 600;

/// Genesis with a funded owner and initialised (zero-balance) provider and recipient, clock at
/// [`T0`].
fn genesis() -> Result<(Chain, Actors), String> {
    let actors = Actors { owner: key("owner")?, provider: key("provider")?, recipient: key("recipient")? };
    let mut chain = Chain::new(&[
        (actors.owner.account_id(), 10_000_000),
        (actors.provider.account_id(), 0),
        (actors.recipient.account_id(), 0),
    ])?;
    chain.set_time(T0)?;
    Ok((chain, actors))
}

fn native_vault(actors: &Actors) -> VaultRef {
    VaultRef::native(payment_streams_program_id(), actors.owner.account_id(), VAULT_ID)
}

/// A native vault, initialised and holding [`DEPOSIT`].
fn funded_vault() -> Result<(Chain, Actors, VaultRef), String> {
    let (mut chain, actors) = genesis()?;
    let vault = native_vault(&actors);
    chain.submit(&client::initialize_vault(&vault, VaultPrivacyTier::Public), &[&actors.owner])?;
    chain.submit(&client::deposit(&vault, DEPOSIT, authenticated_transfer_program_id(), None), &[&actors.owner])?;
    Ok((chain, actors, vault))
}

/// A funded native vault with stream 0 to the provider, created at [`T0`] with `extensions`;
/// the clock then moves [`ELAPSED`] seconds on.
fn streaming(extensions: ExtensionSettings) -> Result<(Chain, Actors, VaultRef), String> {
    let (mut chain, actors, vault) = funded_vault()?;
    let create = client::create_stream(&vault, 0, actors.provider.account_id(), RATE, ALLOCATION, extensions);
    chain.submit(&create, &[&actors.owner])?;
    chain.set_time(T0 + ELAPSED)?;
    Ok((chain, actors, vault))
}

/// Every extension at once: auto-pause after a day, an activation fee, automatic claim on
/// provider close and delivery receipts.
fn all_extensions() -> Result<ExtensionSettings, String> {
    Ok(ExtensionSettings {
        auto_pause_after: 86_400,
        activation_fee: 100,
        auto_claim_on_provider_close: true,
        receipt_key: Some(key("receipt")?.public_key().to_bytes()),
    })
}

/// Token keys: the definition, the owner's holding with the whole supply, and the provider's
/// holding (created by the first payout).
struct Token {
    definition: SecretKey,
    owner_holding: SecretKey,
    provider_holding: SecretKey,
}

/// A token whose whole supply sits in the owner's holding, and a vault of it (not initialised).
fn token_chain() -> Result<(Chain, Actors, Token, VaultRef), String> {
    let (mut chain, actors) = genesis()?;
    let token = Token {
        definition: key("token")?,
        owner_holding: key("owner-holding")?,
        provider_holding: key("provider-holding")?,
    };
    let create = TokenInstruction::NewFungibleDefinition { name: "USDX".to_owned(), total_supply: 1_000_000_000 };
    let holders = [&token.definition, &token.owner_holding];
    let accounts = [token.definition.account_id(), token.owner_holding.account_id()];
    chain.submit_raw(token_program_id(), &accounts, create.to_words(), &holders)?;
    let vault = VaultRef {
        program_id: payment_streams_program_id(),
        owner: actors.owner.account_id(),
        vault_id: VAULT_ID,
        token_id: token.definition.account_id().0,
    };
    Ok((chain, actors, token, vault))
}

/// A token vault, initialised and holding [`DEPOSIT`] tokens.
fn funded_token_vault() -> Result<(Chain, Actors, Token, VaultRef), String> {
    let (mut chain, actors, token, vault) = token_chain()?;
    chain.submit(&client::initialize_vault(&vault, VaultPrivacyTier::Public), &[&actors.owner])?;
    let deposit =
        client::deposit(&vault, DEPOSIT, authenticated_transfer_program_id(), Some(token.owner_holding.account_id()));
    chain.submit(&deposit, &[&actors.owner, &token.owner_holding])?;
    Ok((chain, actors, token, vault))
}

fn initialize_vault() -> Result<Setup, String> {
    let (chain, actors) = genesis()?;
    let call = client::initialize_vault(&native_vault(&actors), VaultPrivacyTier::Public);
    Ok(chain.setup(call, &[&actors.owner]))
}

fn initialize_vault_token() -> Result<Setup, String> {
    let (chain, actors, _token, vault) = token_chain()?;
    let call = client::initialize_vault(&vault, VaultPrivacyTier::Public);
    Ok(chain.setup(call, &[&actors.owner]))
}

fn deposit() -> Result<Setup, String> {
    let (chain, actors, vault) = funded_vault()?;
    let call = client::deposit(&vault, 5_000, authenticated_transfer_program_id(), None);
    Ok(chain.setup(call, &[&actors.owner]))
}

fn deposit_token() -> Result<Setup, String> {
    let (chain, actors, token, vault) = funded_token_vault()?;
    let call =
        client::deposit(&vault, 5_000, authenticated_transfer_program_id(), Some(token.owner_holding.account_id()));
    Ok(chain.setup(call, &[&actors.owner, &token.owner_holding]))
}

fn withdraw() -> Result<Setup, String> {
    let (chain, actors, vault) = funded_vault()?;
    let call = client::withdraw(&vault, 2_500, Some(actors.recipient.account_id()));
    Ok(chain.setup(call, &[&actors.owner]))
}

fn withdraw_to_owner() -> Result<Setup, String> {
    let (chain, actors, vault) = funded_vault()?;
    let call = client::withdraw(&vault, 2_500, None);
    Ok(chain.setup(call, &[&actors.owner]))
}

fn create_stream() -> Result<Setup, String> {
    let (chain, actors, vault) = funded_vault()?;
    let call =
        client::create_stream(&vault, 0, actors.provider.account_id(), RATE, ALLOCATION, ExtensionSettings::default());
    Ok(chain.setup(call, &[&actors.owner]))
}

fn create_stream_with_extensions() -> Result<Setup, String> {
    let (chain, actors, vault) = funded_vault()?;
    let call = client::create_stream(&vault, 0, actors.provider.account_id(), RATE, ALLOCATION, all_extensions()?);
    Ok(chain.setup(call, &[&actors.owner]))
}

fn pause_stream() -> Result<Setup, String> {
    let (chain, actors, vault) = streaming(ExtensionSettings::default())?;
    Ok(chain.setup(client::pause_stream(&vault, 0), &[&actors.owner]))
}

/// A stream paused after [`ELAPSED`] seconds, with the clock another [`ELAPSED`] on.
fn paused(extensions: ExtensionSettings) -> Result<(Chain, Actors, VaultRef), String> {
    let (mut chain, actors, vault) = streaming(extensions)?;
    chain.submit(&client::pause_stream(&vault, 0), &[&actors.owner])?;
    chain.set_time(T0 + 2 * ELAPSED)?;
    Ok((chain, actors, vault))
}

fn resume_stream() -> Result<Setup, String> {
    let (chain, actors, vault) = paused(ExtensionSettings::default())?;
    Ok(chain.setup(client::resume_stream(&vault, 0), &[&actors.owner]))
}

fn resume_stream_with_activation_fee() -> Result<Setup, String> {
    let (chain, actors, vault) = paused(ExtensionSettings { activation_fee: 100, ..ExtensionSettings::default() })?;
    Ok(chain.setup(client::resume_stream(&vault, 0), &[&actors.owner]))
}

fn top_up_stream() -> Result<Setup, String> {
    let (chain, actors, vault) = streaming(ExtensionSettings::default())?;
    Ok(chain.setup(client::top_up_stream(&vault, 0, 36_000), &[&actors.owner]))
}

fn close_stream_by_owner() -> Result<Setup, String> {
    let (chain, actors, vault) = streaming(ExtensionSettings::default())?;
    Ok(chain.setup(client::close_stream_by_owner(&vault, 0), &[&actors.owner]))
}

fn claim() -> Result<Setup, String> {
    let (chain, actors, vault) = streaming(ExtensionSettings::default())?;
    let call = client::claim(&vault, 0, actors.provider.account_id(), None, None);
    Ok(chain.setup(call, &[&actors.provider]))
}

fn claim_with_auto_pause() -> Result<Setup, String> {
    let auto_pause = ExtensionSettings { auto_pause_after: ELAPSED / 2, ..ExtensionSettings::default() };
    let (chain, actors, vault) = streaming(auto_pause)?;
    let call = client::claim(&vault, 0, actors.provider.account_id(), None, None);
    Ok(chain.setup(call, &[&actors.provider]))
}

fn claim_with_receipt() -> Result<Setup, String> {
    let receipt_key = key("receipt")?;
    let extensions =
        ExtensionSettings { receipt_key: Some(receipt_key.public_key().to_bytes()), ..ExtensionSettings::default() };
    let (chain, actors, vault) = streaming(extensions)?;
    let body = ReceiptBody {
        program_id: vault.program_id,
        stream_config: vault.stream(0),
        stream_id: 0,
        acknowledged_total: 5_000,
        deliveries_digest: sha256(&[b"deliveries"]),
    };
    let receipt = DeliveryReceipt { body, signature: receipt_key.sign_with_aux(&body.digest(), &AUX_RAND).0 };
    let call = client::claim(&vault, 0, actors.provider.account_id(), None, Some(receipt));
    Ok(chain.setup(call, &[&actors.provider]))
}

fn claim_token() -> Result<Setup, String> {
    let (mut chain, actors, token, vault) = funded_token_vault()?;
    let create =
        client::create_stream(&vault, 0, actors.provider.account_id(), RATE, ALLOCATION, ExtensionSettings::default());
    chain.submit(&create, &[&actors.owner])?;
    chain.set_time(T0 + ELAPSED)?;
    let call = client::claim(&vault, 0, actors.provider.account_id(), Some(token.provider_holding.account_id()), None);
    Ok(chain.setup(call, &[&actors.provider, &token.provider_holding]))
}

fn close_stream_by_provider() -> Result<Setup, String> {
    let (chain, actors, vault) = streaming(ExtensionSettings::default())?;
    let call = client::close_stream_by_provider(&vault, 0, actors.provider.account_id(), None, None);
    Ok(chain.setup(call, &[&actors.provider]))
}

fn close_stream_by_provider_with_auto_claim() -> Result<Setup, String> {
    let auto_claim = ExtensionSettings { auto_claim_on_provider_close: true, ..ExtensionSettings::default() };
    let (chain, actors, vault) = streaming(auto_claim)?;
    let call = client::close_stream_by_provider(&vault, 0, actors.provider.account_id(), None, None);
    Ok(chain.setup(call, &[&actors.provider]))
}

#[cfg(test)]
mod tests {
    use paystreams_program::Instruction;

    use super::*;

    /// The instruction's discriminant; exhaustive, so a new instruction must be measured too.
    const fn discriminant(instruction: &Instruction) -> usize {
        match instruction {
            Instruction::InitializeVault { .. } => 0,
            Instruction::Deposit { .. } => 1,
            Instruction::Withdraw { .. } => 2,
            Instruction::CreateStream { .. } => 3,
            Instruction::PauseStream { .. } => 4,
            Instruction::ResumeStream { .. } => 5,
            Instruction::TopUpStream { .. } => 6,
            Instruction::CloseStreamByOwner { .. } => 7,
            Instruction::Claim { .. } => 8,
            Instruction::CloseStreamByProvider { .. } => 9,
            Instruction::WithdrawToOwner { .. } => 10,
        }
    }

    #[test]
    fn every_instruction_is_measured() {
        let mut covered = BTreeSet::new();
        for scenario in scenarios() {
            let setup = scenario.prepare().unwrap_or_else(|e| panic!("{e}"));
            covered.insert(discriminant(&setup.call.instruction));
        }
        assert_eq!(covered, (0..=10).collect::<BTreeSet<_>>());
    }

    #[test]
    fn scenario_names_are_unique() {
        let names: BTreeSet<_> = scenarios().iter().map(|s| s.name).collect();
        assert_eq!(names.len(), scenarios().len());
    }

    #[test]
    fn every_scenario_succeeds() {
        for scenario in scenarios() {
            scenario.run().unwrap_or_else(|e| panic!("{e}"));
        }
    }

    #[test]
    fn a_failing_instruction_is_reported() {
        let scenario = Scenario {
            name: "claim_before_accrual",
            prepare: || {
                let (chain, actors, vault) = funded_vault()?;
                let call = client::claim(&vault, 0, actors.provider.account_id(), None, None);
                Ok(chain.setup(call, &[&actors.provider]))
            },
            measure: measure_claim,
            events: &["claimed"],
        };
        let error = scenario.run().err().unwrap_or_default();
        assert!(error.contains("the instruction failed"), "{error}");
    }
}
