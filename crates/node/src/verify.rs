//! Offline verification: replays every stored block from genesis through the runtime and checks
//! headers, receipts, state roots, the stored state and native-supply conservation.

use paystreams_runtime::{BlockContext, Overlay, Runtime, State, StateView as _};
use serde::Serialize;

use crate::{
    block::transactions_root,
    chain::{genesis_block, genesis_state},
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
    let runtime = Runtime::new();
    let mut state = genesis_state(&genesis);
    let genesis_supply = supply(&state);
    let expected_genesis = genesis_block(&genesis, &state);
    let mismatch = |height: u64, detail: String| VerifyError::Mismatch { height, detail };
    let stored_genesis = storage.block(0)?.ok_or_else(|| mismatch(0, "missing".into()))?;
    if stored_genesis.header != expected_genesis.header {
        return Err(mismatch(0, "genesis header does not match the genesis spec".into()));
    }
    let mut parent = stored_genesis;
    let (mut transactions, mut failed) = (0_u64, 0_u64);
    for height in 1..=head {
        let block = storage.block(height)?.ok_or_else(|| mismatch(height, "missing".into()))?;
        let header = &block.header;
        if header.height != height || header.parent_hash != parent.hash || block.hash != header.hash() {
            return Err(mismatch(height, "header does not chain to its parent or hash is wrong".into()));
        }
        if header.timestamp_ms < parent.header.timestamp_ms {
            return Err(mismatch(height, "timestamp before the parent's".into()));
        }
        let ctx = BlockContext { block_id: height, timestamp_ms: header.timestamp_ms };
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
                    Err(e) if receipt.error.as_ref().is_some_and(|r| r.code == e.code()) => {
                        failed = failed.saturating_add(1);
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
            let clock =
                runtime.clock_update(&overlay, &ctx).map_err(|e| mismatch(height, format!("clock update: {e}")))?;
            overlay.apply_diff(&clock);
            overlay.into_diff()
        };
        state.apply_diff(&diff);
        if transactions_root(&hashes) != header.transactions_root {
            return Err(mismatch(height, "transactions root differs".into()));
        }
        if state.state_root() != header.state_root {
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
