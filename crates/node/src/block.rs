//! The block format: what the node hashes and stores for each block, each included transaction
//! and the genesis. Every type is Borsh, which is also its stored encoding (the snapshot tests at
//! the end pin the bytes, so changing the format is a reviewed diff and a new
//! [`crate::storage::FORMAT_VERSION`]).

use borsh::{BorshDeserialize, BorshSerialize};
use paystreams_lez_core::sha256;
use paystreams_rpc::TxErrorInfo;
use paystreams_runtime::{ReceiptEvent, Transaction};

/// The block header, as hashed: `hash = SHA-256(borsh(header))`.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct Header {
    pub height: u64,
    pub parent_hash: [u8; 32],
    pub timestamp_ms: u64,
    pub state_root: [u8; 32],
    pub transactions_root: [u8; 32],
}

impl Header {
    /// `SHA-256(borsh(header))`.
    #[must_use]
    pub fn hash(&self) -> [u8; 32] {
        sha256(&[&encode(self)])
    }
}

/// Domain prefix of the transactions root.
const TX_ROOT_PREFIX: [u8; 32] = paystreams_lez_core::domain_prefix("/paystreams/v1/TxRoot/");

/// `SHA-256(prefix || hash_1 || ... || hash_n)` over the block's transaction hashes in order.
#[must_use]
pub fn transactions_root(hashes: &[[u8; 32]]) -> [u8; 32] {
    let mut parts: Vec<&[u8]> = Vec::with_capacity(hashes.len().saturating_add(1));
    parts.push(&TX_ROOT_PREFIX);
    parts.extend(hashes.iter().map(<[u8; 32]>::as_slice));
    sha256(&parts)
}

/// A committed block: header, its hash, the transactions in execution order (successful and
/// failed), and the dev time offset in force (node-local, not hashed) so a restart keeps it.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct StoredBlock {
    pub header: Header,
    pub hash: [u8; 32],
    pub transactions: Vec<Transaction>,
    pub time_offset_ms: u64,
}

/// The outcome of one included transaction.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct StoredReceipt {
    pub tx_hash: [u8; 32],
    pub block_id: u64,
    /// Position in the block.
    pub index: u32,
    /// `None` when the transaction succeeded.
    pub error: Option<TxErrorInfo>,
    pub events: Vec<ReceiptEvent>,
}

/// The genesis: dev keys, their balances and the genesis time. Stored so that restarts and
/// replays rebuild the same chain.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct GenesisSpec {
    pub timestamp_ms: u64,
    pub accounts: Vec<GenesisAccount>,
}

/// One funded dev account (the secret key is kept: these are dev keys, printed at startup).
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct GenesisAccount {
    pub secret_key: [u8; 32],
    pub balance: u128,
}

/// The Borsh bytes of a value: its stored encoding.
pub(crate) fn encode<T: BorshSerialize>(value: &T) -> Vec<u8> {
    // Writing Borsh into a Vec cannot fail.
    borsh::to_vec(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use paystreams_lez_core::{AccountId, ProgramId};
    use paystreams_program::Event;
    use paystreams_runtime::{Message, WitnessSet};

    use super::*;

    fn header() -> Header {
        Header {
            height: 7,
            parent_hash: [0x11; 32],
            timestamp_ms: 1_700_000_000_123,
            state_root: [0x22; 32],
            transactions_root: transactions_root(&[[0x33; 32], [0x44; 32]]),
        }
    }

    fn transaction() -> Transaction {
        // Signing draws fresh randomness: an unsigned transaction keeps the bytes fixed.
        Transaction {
            message: Message {
                program_id: ProgramId([1, 2, 3, 4, 5, 6, 7, 8]),
                account_ids: vec![AccountId([0x55; 32])],
                nonces: vec![3],
                instruction_data: vec![9, 8, 0x0102_0304],
            },
            witness_set: WitnessSet::default(),
        }
    }

    fn receipt() -> StoredReceipt {
        StoredReceipt {
            tx_hash: [0x66; 32],
            block_id: 7,
            index: 1,
            error: Some(TxErrorInfo {
                code: 6011,
                name: "AllocationExceedsUnallocated".into(),
                message: "allocation exceeds unallocated".into(),
            }),
            events: vec![
                ReceiptEvent::NativeTransfer { from: AccountId([1; 32]), to: AccountId([2; 32]), amount: 500 },
                ReceiptEvent::PaymentStreams {
                    event: Event::VaultInitialized {
                        owner: AccountId([3; 32]),
                        vault_id: 4,
                        vault_config: AccountId([4; 32]),
                        token_id: "native".into(),
                    },
                },
                ReceiptEvent::Raw { program_id: ProgramId([9; 8]), data: vec![0xde, 0xad] },
            ],
        }
    }

    #[test]
    fn header_bytes_and_hash_are_pinned() {
        let header = header();
        insta::assert_snapshot!("header_bytes", hex::encode(encode(&header)));
        insta::assert_snapshot!("header_hash", hex::encode(header.hash()));
    }

    #[test]
    fn stored_block_bytes_are_pinned_and_round_trip() {
        let header = header();
        let block =
            StoredBlock { hash: header.hash(), header, transactions: vec![transaction()], time_offset_ms: 20_000 };
        let bytes = encode(&block);
        insta::assert_snapshot!("stored_block_bytes", hex::encode(&bytes));
        assert_eq!(StoredBlock::try_from_slice(&bytes).expect("decodes"), block);
    }

    #[test]
    fn receipt_bytes_are_pinned_and_round_trip() {
        let receipt = receipt();
        let bytes = encode(&receipt);
        insta::assert_snapshot!("receipt_bytes", hex::encode(&bytes));
        assert_eq!(StoredReceipt::try_from_slice(&bytes).expect("decodes"), receipt);
    }

    #[test]
    fn genesis_bytes_are_pinned() {
        let genesis = GenesisSpec {
            timestamp_ms: 1_700_000_000_000,
            accounts: vec![GenesisAccount { secret_key: [0x77; 32], balance: 1_000_000_000 }],
        };
        insta::assert_snapshot!("genesis_bytes", hex::encode(encode(&genesis)));
    }
}
