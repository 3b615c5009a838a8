//! Offline verification: replays every stored block from genesis through the runtime and checks
//! headers (LEZ's hash and the sequencer's signature), receipts, state roots, the stored state
//! and native-supply conservation.
//!
//! A block holds only the transactions that succeeded (failed ones changed nothing and are kept,
//! for a bounded time, outside the blocks), so each stored transaction must replay successfully
//! with the events its receipt records; the failed ones are counted from the blocks' records.

use paystreams_lez_core::{lee_transaction::LeeTransaction, lez_block::GENESIS_BLOCK_ID};
use paystreams_runtime::{BlockContext, Overlay, Runtime, State, StateView as _};
use serde::Serialize;

use crate::{
    block::transactions_root,
    chain::{genesis_parts, genesis_state},
    storage::{Storage, StorageError},
};

/// What a replay found.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error("the data dir holds no chain")]
    Empty,
    #[error("block {height}: {detail}")]
    Mismatch { height: u64, detail: String },
}

/// A successful replay.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct VerifyReport {
    pub height: u64,
    pub state_root: String,
    pub transactions: u64,
    pub failed_transactions: u64,
    #[serde(with = "paystreams_lez_core::account::decimal_u128")]
    pub genesis_supply: u128,
    #[serde(with = "paystreams_lez_core::account::decimal_u128")]
    pub supply: u128,
}

fn supply(state: &State) -> u128 {
    state.iter().fold(0_u128, |sum, (_, a)| sum.saturating_add(a.balance))
}

/// Replays the chain in `storage`.
///
/// # Errors
/// The first mismatch, or a storage failure.
pub fn verify(storage: &dyn Storage) -> Result<VerifyReport, VerifyError> {
    let genesis = storage.genesis()?.ok_or(VerifyError::Empty)?;
    let head = storage.load_head()?.ok_or(VerifyError::Empty)?;
    let runtime = Runtime::for_release(genesis.release);
    let clock = runtime.builtin_ids().clock;
    let mismatch = |height: u64, detail: String| VerifyError::Mismatch { height, detail };
    let mut state = genesis_state(&genesis, &runtime).map_err(|e| mismatch(GENESIS_BLOCK_ID, e.to_string()))?;
    let genesis_supply = supply(&state);
    let expected = genesis_parts(&state);
    let stored_genesis =
        storage.block(GENESIS_BLOCK_ID)?.ok_or_else(|| mismatch(GENESIS_BLOCK_ID, "missing".into()))?;
    let g = &stored_genesis;
    if g.height() != expected.block_id
        || g.parent_hash() != expected.prev_block_hash
        || g.timestamp_ms() != expected.timestamp_ms
        || !g.transactions.is_empty()
        || g.state_root != expected.state_root
        || !g.lez_block(clock).is_signed_by(&genesis.sequencer)
    {
        return Err(mismatch(GENESIS_BLOCK_ID, "genesis block does not match the genesis spec".into()));
    }
    let mut parent = stored_genesis;
    let (mut transactions, mut failed) = (0_u64, 0_u64);
    for height in GENESIS_BLOCK_ID.saturating_add(1)..=head {
        let block = storage.block(height)?.ok_or_else(|| mismatch(height, "missing".into()))?;
        if block.height() != height || block.parent_hash() != parent.hash() {
            return Err(mismatch(height, "header does not chain to its parent".into()));
        }
        let lez = block.lez_block(clock);
        if !lez.is_signed_by(&genesis.sequencer) {
            return Err(mismatch(height, "LEZ hash or sequencer signature does not verify".into()));
        }
        let Some(LeeTransaction::Public(clock_invocation)) = lez.body.transactions.last() else {
            return Err(mismatch(height, "no clock invocation at the end of the body".into()));
        };
        if block.timestamp_ms() < parent.timestamp_ms() {
            return Err(mismatch(height, "timestamp before the parent's".into()));
        }
        let ctx = BlockContext { block_id: height, timestamp_ms: block.timestamp_ms() };
        let mut hashes = Vec::with_capacity(block.transactions.len());
        let diff = {
            let mut overlay = Overlay::new(&state);
            for (index, tx) in block.transactions.iter().enumerate() {
                let hash = tx.hash();
                hashes.push(hash);
                let receipt =
                    storage.receipt(&hash)?.ok_or_else(|| mismatch(height, format!("no receipt for tx {index}")))?;
                if receipt.block_id != height || usize::try_from(receipt.index).ok() != Some(index) {
                    return Err(mismatch(height, format!("tx {index}'s receipt points elsewhere")));
                }
                match runtime.apply(&overlay, tx, &ctx) {
                    Ok(applied) if receipt.error.is_none() => {
                        if applied.receipt.events != receipt.events {
                            return Err(mismatch(height, format!("tx {index}'s events differ on replay")));
                        }
                        overlay.apply_diff(&applied.diff);
                    }
                    outcome => {
                        return Err(mismatch(
                            height,
                            format!(
                                "tx {index} replays as {:?} but its receipt says {:?}",
                                outcome.err(),
                                receipt.error
                            ),
                        ));
                    }
                }
                transactions = transactions.saturating_add(1);
            }
            let clock = runtime
                .apply_clock_invocation(&overlay, clock_invocation)
                .map_err(|e| mismatch(height, format!("clock invocation: {e}")))?;
            overlay.apply_diff(&clock);
            overlay.into_diff()
        };
        state.apply_diff(&diff);
        if transactions_root(&hashes) != block.transactions_root {
            return Err(mismatch(height, "transactions root differs".into()));
        }
        failed = failed.saturating_add(u64::from(block.failed_count));
        if state.state_root() != block.state_root {
            return Err(mismatch(height, "state root differs from the replay".into()));
        }
        parent = block;
    }
    let stored = storage.load_state()?;
    if stored.state_root() != state.state_root() {
        let differing = state.iter().filter(|(id, a)| stored.account(id) != **a).count();
        return Err(mismatch(head, format!("stored accounts differ from the replay ({differing} accounts)")));
    }
    let supply = supply(&state);
    if supply != genesis_supply {
        return Err(mismatch(head, format!("native supply {supply} differs from genesis supply {genesis_supply}")));
    }
    Ok(VerifyReport {
        height: head,
        state_root: hex::encode(state.state_root()),
        transactions,
        failed_transactions: failed,
        genesis_supply,
        supply,
    })
}
