//! A long chain built fast, for the dashboard's history test and bench: the node's library API
//! directly (no HTTP), full blocks, transactions signed on every core.

use paystreams_lez_core::{crypto::SecretKey, transfer::authenticated_transfer_program_id};
use paystreams_node::{Chain, chain::MAX_TXS_PER_BLOCK, chain::PENDING_PER_SIGNER_MAX};
use paystreams_program::{
    client::{self, Call, VaultRef},
    instruction::ExtensionSettings,
    payment_streams_program_id,
    state::VaultPrivacyTier,
};
use paystreams_runtime::{Message, Transaction};

fn sign(call: &Call, key: &SecretKey, nonce: u128) -> Transaction {
    let message = Message {
        program_id: call.program_id,
        account_ids: call.account_ids.clone(),
        nonces: vec![nonce],
        instruction_data: call.instruction_data(),
    };
    Transaction::sign(message, &[key])
}

/// Submits `txs` (in order) and mines full blocks until they are all included.
fn include(chain: &Chain, txs: Vec<Transaction>) {
    for tx in txs {
        chain.submit(tx).expect("admitted");
    }
    while chain.mempool_len() > 0 {
        chain.produce_block(MAX_TXS_PER_BLOCK, 1_000).expect("block");
    }
}

/// What [`build`] made.
pub struct Built {
    /// Transactions included.
    pub transactions: u64,
    /// Payment-streams events they emitted.
    pub events: u64,
}

/// Gives every dev key a funded vault 0 with stream 0 to the next key, then fills the chain with
/// small deposits (one event each) and plain transfers (none) until `transactions` transactions
/// are included.
pub fn build(chain: &Chain, transactions: u64) -> Built {
    let keys: Vec<SecretKey> = chain.dev_keys().to_vec();
    let vault = |key: &SecretKey| VaultRef::native(payment_streams_program_id(), key.account_id(), 0);
    let setup: Vec<Transaction> = keys
        .iter()
        .enumerate()
        .flat_map(|(i, key)| {
            let provider = keys[(i + 1) % keys.len()].account_id();
            let v = vault(key);
            [
                sign(&client::initialize_vault(&v, VaultPrivacyTier::Public), key, 0),
                sign(&client::deposit(&v, 1_000_000, authenticated_transfer_program_id(), None), key, 1),
                sign(&client::create_stream(&v, 0, provider, 1, 10_000, ExtensionSettings::default()), key, 2),
            ]
        })
        .collect();
    // Vault initialised, deposited, stream created (three events, the stream's at once).
    let mut built = Built { transactions: setup.len() as u64, events: setup.len() as u64 };
    include(chain, setup);
    let mut nonce = 3_u128;
    // Per round each key sends as many as one block holds for all keys (and its pending limit).
    let per_key = (MAX_TXS_PER_BLOCK / keys.len()).min(PENDING_PER_SIGNER_MAX) as u64;
    while built.transactions < transactions {
        let round = per_key.min((transactions - built.transactions).div_ceil(keys.len() as u64));
        let work: Vec<(usize, u64)> = (0..keys.len()).flat_map(|k| (0..round).map(move |j| (k, j))).collect();
        let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let signed: Vec<Vec<(Transaction, bool)>> = std::thread::scope(|scope| {
            let handles: Vec<_> = work
                .chunks(work.len().div_ceil(threads).max(1))
                .map(|part| {
                    let keys = &keys;
                    scope.spawn(move || {
                        part.iter()
                            .map(|&(k, j)| {
                                let key = &keys[k];
                                let nonce = nonce + u128::from(j);
                                // Every fourth a transfer: transactions without events cost the
                                // history nothing.
                                if j % 4 == 3 {
                                    let to = keys[(k + 1) % keys.len()].account_id();
                                    let message = Message {
                                        program_id: authenticated_transfer_program_id(),
                                        account_ids: vec![key.account_id(), to],
                                        nonces: vec![nonce],
                                        instruction_data: paystreams_lez_core::transfer::transfer_instruction(1),
                                    };
                                    (Transaction::sign(message, &[key]), false)
                                } else {
                                    let call =
                                        client::deposit(&vault(key), 1, authenticated_transfer_program_id(), None);
                                    (sign(&call, key, nonce), true)
                                }
                            })
                            .collect()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("signer thread")).collect()
        });
        let signed: Vec<(Transaction, bool)> = signed.into_iter().flatten().collect();
        built.transactions += signed.len() as u64;
        built.events += signed.iter().filter(|(_, has_event)| *has_event).count() as u64;
        include(chain, signed.into_iter().map(|(tx, _)| tx).collect());
        nonce += u128::from(round);
    }
    built
}
