//! Runs a validated scenario: one block per step, clock first, then the step's transaction.

use std::collections::{BTreeMap, BTreeSet};

use paystreams_lez_core::{
    AccountId,
    token::{TokenDefinition, TokenHolding, TokenInstruction, token_program_id},
    transfer::authenticated_transfer_program_id,
};
use paystreams_program::{
    ExtensionSettings,
    client::{self, Call, VaultRef},
    fold::fold,
    payment_streams_program_id,
    receipt::{DeliveryReceipt, ReceiptBody},
    state::{NATIVE_TOKEN_ID, StreamState, VaultPrivacyTier, decode},
};

use crate::{
    chain::{Chain, Key, Signing, TxFailure},
    output::{ErrorOutput, SimOutput, StateOutput, StepOutput, StreamOutput, VaultOutput},
    scenario::{KeyRef, Op, Party, ReceiptSpec, Scenario, ScenarioError, Step, TokenRef},
};

/// Key label of a token's definition account (names cannot contain `/`, so no clash).
fn token_definition_label(token: &str) -> String {
    format!("token/{token}")
}

/// Key label of `holder`'s holding of `token`.
fn holding_label(holder: &str, token: &str) -> String {
    format!("{holder}/{token}")
}

struct Runner {
    chain: Chain,
    program_id: paystreams_lez_core::ProgramId,
    keys: BTreeMap<String, Key>,
    names_by_id: BTreeMap<AccountId, String>,
    /// Token name -> definition id, for every `create_token` in the scenario.
    tokens: BTreeMap<String, [u8; 32]>,
    /// Every (owner, vault id) an `initialize_vault` step named; reported once it exists.
    vault_candidates: BTreeSet<(AccountId, u64)>,
}

fn internal(e: impl std::fmt::Display) -> ScenarioError {
    ScenarioError::Internal(e.to_string())
}

pub(crate) fn run(scenario: &Scenario) -> Result<SimOutput, ScenarioError> {
    let mut keys = BTreeMap::new();
    let mut balances = Vec::new();
    for (name, balance) in &scenario.accounts {
        let key = Key::derive(name).map_err(internal)?;
        balances.push((key.id, *balance));
        keys.insert(name.clone(), key);
    }
    let names_by_id = keys.iter().map(|(name, key)| (key.id, name.clone())).collect();
    let mut tokens = BTreeMap::new();
    for step in &scenario.steps {
        if let Op::CreateToken { token, .. } = &step.op {
            tokens.insert(token.clone(), Key::derive(&token_definition_label(token)).map_err(internal)?.id.0);
        }
    }
    let mut runner = Runner {
        chain: Chain::new(&balances, Signing::Real),
        program_id: payment_streams_program_id(),
        keys,
        names_by_id,
        tokens,
        vault_candidates: BTreeSet::new(),
    };
    let mut steps = Vec::with_capacity(scenario.steps.len());
    for (index, step) in scenario.steps.iter().enumerate() {
        runner.chain.advance_to(step.t).map_err(internal)?;
        let outcome = match &step.op {
            Op::Observe => Ok(()),
            _ => runner.execute(step)?,
        };
        let observe_at = matches!(step.op, Op::Observe).then_some(step.t);
        steps.push(StepOutput {
            index,
            t: step.t,
            op: step.op_name.clone(),
            ok: outcome.is_ok(),
            error: outcome.err().map(|f| ErrorOutput { code: f.code, name: f.name }),
            state: runner.snapshot(observe_at),
        });
    }
    Ok(SimOutput { steps })
}

impl Runner {
    fn key(&self, name: &str) -> Result<&Key, ScenarioError> {
        self.keys.get(name).ok_or_else(|| internal(format!("no key for {name:?}")))
    }

    fn party_id(&self, party: &Party) -> Result<AccountId, ScenarioError> {
        match party {
            Party::Named(name) => Ok(self.key(name)?.id),
            Party::Raw(id) => Ok(*id),
        }
    }

    fn display(&self, id: &AccountId) -> String {
        self.names_by_id.get(id).cloned().unwrap_or_else(|| id.to_string())
    }

    /// The vault as clients name it, with its recorded token (native when it does not exist, so
    /// the program reports the missing vault itself).
    fn vault_ref(&self, owner: AccountId, vault_id: u64) -> VaultRef {
        let mut vault = VaultRef::native(self.program_id, owner, vault_id);
        if let Some(config) = self.chain.vault(&vault) {
            vault.token_id = config.token_id;
        }
        vault
    }

    /// Label of a token id for key derivation and output: its scenario name, or hex.
    fn token_label(&self, token_id: &[u8; 32]) -> String {
        self.tokens
            .iter()
            .find(|(_, id)| *id == token_id)
            .map_or_else(|| hex::encode(token_id), |(name, _)| name.clone())
    }

    fn holding_key(&self, holder: &str, token_id: &[u8; 32]) -> Result<Key, ScenarioError> {
        Key::derive(&holding_label(holder, &self.token_label(token_id))).map_err(internal)
    }

    /// The holding `party` receives `token_id` payouts in, and its key when the sim controls it.
    fn payout_holding(&self, party: &Party, token_id: &[u8; 32]) -> Result<(AccountId, Option<Key>), ScenarioError> {
        match party {
            Party::Named(name) => {
                let key = self.holding_key(name, token_id)?;
                Ok((key.id, Some(key)))
            }
            Party::Raw(id) => Ok((*id, None)),
        }
    }

    /// A fresh holding is created by the token program and must sign; an existing one need not.
    fn sign_if_fresh(&self, key: Option<Key>) -> Option<Key> {
        key.filter(|k| self.chain.account(&k.id).is_default())
    }

    fn receipt(&self, vault: &VaultRef, stream_id: u64, spec: &ReceiptSpec) -> Result<DeliveryReceipt, ScenarioError> {
        let body = ReceiptBody {
            program_id: self.program_id,
            stream_config: vault.stream(stream_id),
            stream_id,
            acknowledged_total: spec.acknowledged_total,
            deliveries_digest: spec.deliveries_digest,
        };
        // Fixed auxiliary randomness keeps the output byte-for-byte reproducible.
        let signature = self.key(&spec.signer)?.secret.sign_with_aux(&body.digest(), &[0; 32]);
        Ok(DeliveryReceipt { body, signature: signature.0 })
    }

    fn submit(&mut self, call: &Call, signer: &Key, extra: Option<Key>) -> Result<(), TxFailure> {
        let mut signers = vec![signer];
        if let Some(extra) = &extra {
            signers.push(extra);
        }
        self.chain.submit(call, &signers)
    }

    /// Runs one transaction step. The outer error is a simulator failure, the inner one the
    /// transaction's refusal (data, not an error).
    fn execute(&mut self, step: &Step) -> Result<Result<(), TxFailure>, ScenarioError> {
        let signer_name = step.signer.clone().ok_or_else(|| internal("transaction step without signer"))?;
        let signer = self.key(&signer_name)?.clone();
        let outcome = match &step.op {
            Op::Observe => Ok(()),
            Op::CreateToken { token, supply } => {
                let definition = Key::derive(&token_definition_label(token)).map_err(internal)?;
                let holding = Key::derive(&holding_label(&signer_name, token)).map_err(internal)?;
                let data =
                    TokenInstruction::NewFungibleDefinition { name: token.clone(), total_supply: *supply }.to_words();
                self.chain.submit_raw(
                    token_program_id(),
                    vec![definition.id, holding.id],
                    data,
                    &[&definition, &holding],
                )
            }
            Op::InitializeVault { vault_id, token } => {
                let token_id = match token {
                    None => NATIVE_TOKEN_ID,
                    Some(TokenRef::Hex(bytes)) => *bytes,
                    Some(TokenRef::Named(name)) => {
                        *self.tokens.get(name).ok_or_else(|| internal(format!("token {name:?} not declared")))?
                    }
                };
                self.vault_candidates.insert((signer.id, *vault_id));
                let vault = VaultRef { program_id: self.program_id, owner: signer.id, vault_id: *vault_id, token_id };
                self.submit(&client::initialize_vault(&vault, VaultPrivacyTier::Public), &signer, None)
            }
            Op::Deposit { vault_id, amount } => {
                let vault = self.vault_ref(signer.id, *vault_id);
                let source =
                    if vault.is_native() { None } else { Some(self.holding_key(&signer_name, &vault.token_id)?) };
                let call = client::deposit(
                    &vault,
                    *amount,
                    authenticated_transfer_program_id(),
                    source.as_ref().map(|k| k.id),
                );
                self.submit(&call, &signer, source)
            }
            Op::Withdraw { vault_id, amount, to } => {
                let vault = self.vault_ref(signer.id, *vault_id);
                if vault.is_native() {
                    let to = to.as_ref().map(|p| self.party_id(p)).transpose()?;
                    self.submit(&client::withdraw(&vault, *amount, to), &signer, None)
                } else {
                    let party = to.clone().unwrap_or_else(|| Party::Named(signer_name.clone()));
                    let (destination, key) = self.payout_holding(&party, &vault.token_id)?;
                    // Only the signer's own fresh holding can co-sign; others must exist already.
                    let key = self.sign_if_fresh(key.filter(|_| party == Party::Named(signer_name.clone())));
                    self.submit(&client::withdraw(&vault, *amount, Some(destination)), &signer, key)
                }
            }
            Op::CreateStream {
                vault_id,
                provider,
                rate,
                allocation,
                auto_pause_after,
                activation_fee,
                auto_claim_on_provider_close,
                receipt_key,
            } => {
                let vault = self.vault_ref(signer.id, *vault_id);
                let stream_id = self.chain.vault(&vault).map_or(0, |c| c.next_stream_id);
                let receipt_key = match receipt_key {
                    None => None,
                    Some(KeyRef::Named(name)) => Some(self.key(name)?.public.to_bytes()),
                    Some(KeyRef::Hex(bytes)) => Some(*bytes),
                };
                let extensions = ExtensionSettings {
                    auto_pause_after: *auto_pause_after,
                    activation_fee: *activation_fee,
                    auto_claim_on_provider_close: *auto_claim_on_provider_close,
                    receipt_key,
                };
                let provider = self.party_id(provider)?;
                let call = client::create_stream(&vault, stream_id, provider, *rate, *allocation, extensions);
                self.submit(&call, &signer, None)
            }
            Op::PauseStream { vault_id, stream_id } => {
                let vault = self.vault_ref(signer.id, *vault_id);
                self.submit(&client::pause_stream(&vault, *stream_id), &signer, None)
            }
            Op::ResumeStream { vault_id, stream_id } => {
                let vault = self.vault_ref(signer.id, *vault_id);
                self.submit(&client::resume_stream(&vault, *stream_id), &signer, None)
            }
            Op::TopUpStream { vault_id, stream_id, amount } => {
                let vault = self.vault_ref(signer.id, *vault_id);
                self.submit(&client::top_up_stream(&vault, *stream_id, *amount), &signer, None)
            }
            Op::CloseStream { owner, vault_id, stream_id, receipt } => {
                let owner = self.party_id(owner)?;
                let vault = self.vault_ref(owner, *vault_id);
                if owner == signer.id {
                    self.submit(&client::close_stream_by_owner(&vault, *stream_id), &signer, None)
                } else {
                    let receipt = receipt.as_ref().map(|r| self.receipt(&vault, *stream_id, r)).transpose()?;
                    let auto_claim = self
                        .chain
                        .stream(&vault, *stream_id)
                        .is_some_and(|s| s.extensions_or_default().auto_claim_on_provider_close);
                    let (payout, key) = if vault.is_native() || !auto_claim {
                        (None, None)
                    } else {
                        let (id, key) = self.payout_holding(&Party::Named(signer_name.clone()), &vault.token_id)?;
                        (Some(id), self.sign_if_fresh(key))
                    };
                    let call = client::close_stream_by_provider(&vault, *stream_id, signer.id, payout, receipt);
                    self.submit(&call, &signer, key)
                }
            }
            Op::Claim { owner, vault_id, stream_id, receipt } => {
                let owner = self.party_id(owner)?;
                let vault = self.vault_ref(owner, *vault_id);
                let receipt = receipt.as_ref().map(|r| self.receipt(&vault, *stream_id, r)).transpose()?;
                let (payout, key) = if vault.is_native() {
                    (None, None)
                } else {
                    let (id, key) = self.payout_holding(&Party::Named(signer_name.clone()), &vault.token_id)?;
                    (Some(id), self.sign_if_fresh(key))
                };
                let call = client::claim(&vault, *stream_id, signer.id, payout, receipt);
                self.submit(&call, &signer, key)
            }
        };
        Ok(outcome)
    }

    fn token_balance(&self, id: &AccountId) -> u128 {
        decode::<TokenHolding>(&self.chain.account(id).data).map_or(0, |h| h.balance())
    }

    /// The reported state; with `observe_at`, streams are folded to that time.
    fn snapshot(&self, observe_at: Option<u64>) -> StateOutput {
        let balances = self
            .keys
            .iter()
            .map(|(name, key)| (name.clone(), self.chain.account(&key.id).balance.to_string()))
            .collect();

        let mut vaults = Vec::new();
        let mut streams = Vec::new();
        let mut candidates: Vec<(String, AccountId, u64)> =
            self.vault_candidates.iter().map(|(owner, id)| (self.display(owner), *owner, *id)).collect();
        candidates.sort();
        for (owner_name, owner, vault_id) in candidates {
            let vault = self.vault_ref(owner, vault_id);
            let Some(config) = self.chain.vault(&vault) else { continue };
            let balance = if vault.is_native() {
                self.chain.account(&vault.holding()).balance
            } else {
                self.token_balance(&vault.holding())
            };
            vaults.push(VaultOutput {
                owner: owner_name.clone(),
                vault_id,
                token_id: if vault.is_native() { "native".to_owned() } else { self.token_label(&vault.token_id) },
                balance: balance.to_string(),
                total_allocated: config.total_allocated.to_string(),
                unallocated: balance.saturating_sub(config.total_allocated).to_string(),
                next_stream_id: config.next_stream_id,
            });
            for stream_id in 0..config.next_stream_id {
                let Some(stored) = self.chain.stream(&vault, stream_id) else { continue };
                // Folding never fails on state the program stored; fall back to stored if it did.
                let stream = match observe_at {
                    Some(t) => fold(&stored, t).map_or(stored, |f| f.stream),
                    None => stored,
                };
                streams.push(StreamOutput {
                    owner: owner_name.clone(),
                    vault_id,
                    stream_id,
                    provider: self.display(&stream.provider),
                    state: match stream.state {
                        StreamState::Active => "active",
                        StreamState::Paused => "paused",
                        StreamState::Closed => "closed",
                    }
                    .to_owned(),
                    rate: stream.rate.to_string(),
                    allocation: stream.allocation.to_string(),
                    accrued: stream.accrued.to_string(),
                    unaccrued: stream.unaccrued().to_string(),
                    accrued_as_of: stream.accrued_as_of,
                });
            }
        }

        let existing_tokens: Vec<(&String, &[u8; 32])> = self
            .tokens
            .iter()
            .filter(|(_, id)| decode::<TokenDefinition>(&self.chain.account(&AccountId(**id)).data).is_ok())
            .collect();
        let token_balances = (!existing_tokens.is_empty()).then(|| {
            existing_tokens
                .iter()
                .map(|(token, _)| {
                    let per_name = self
                        .keys
                        .keys()
                        .map(|name| {
                            let amount =
                                Key::derive(&holding_label(name, token)).map_or(0, |k| self.token_balance(&k.id));
                            (name.clone(), amount.to_string())
                        })
                        .collect();
                    ((*token).clone(), per_name)
                })
                .collect()
        });
        StateOutput { balances, vaults, streams, token_balances }
    }
}
