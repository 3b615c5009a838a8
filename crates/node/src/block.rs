//! The block format: what the node signs and stores for each block, each included transaction
//! and the genesis. Every type is Borsh, which is also its stored encoding (the snapshot tests at
//! the end pin the bytes, so changing the format is a reviewed diff and a new
//! [`crate::storage::FORMAT_VERSION`]).
//!
//! Every block is a LEZ block ([`paystreams_lez_core::lez_block`]): LEZ's header (id, previous
//! hash, LEZ's hash over `HashableBlockData`, Unix-millisecond timestamp, the sequencer's BIP-340
//! signature) over a body holding the transactions that succeeded, in order, then the clock
//! invocation with the block's timestamp as the last transaction. Beside it the stored record
//! keeps what LEZ's block does not carry: how many transactions failed, the state root, the root
//! over the body's transactions and the dev time offset.
//!
//! Failed transactions are not stored in blocks (LEZ drops them too): each is kept as a
//! [`FailedTransaction`] (its receipt and its bytes) in a bounded table that drops the oldest
//! first (see `storage` and docs/node.md "Failed transactions"), so spam that fails in execution
//! cannot grow the stored chain without bound.

use borsh::{BorshDeserialize, BorshSerialize};
use paystreams_lez_core::{
    ProgramId,
    crypto::{PublicKey, SecretKey},
    lee_transaction::LeeTransaction,
    lez_block::{BedrockStatus, HashableBlockData, LezBlock, LezBlockBody, LezBlockHeader},
    lez_release::{LezRelease, clock_invocation},
    sha256,
};
use paystreams_rpc::TxErrorInfo;
use paystreams_runtime::{ReceiptEvent, Transaction};

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

/// A user transaction as it appears in a LEZ block body: in LEZ's envelope.
#[must_use]
pub fn envelope(tx: &Transaction) -> LeeTransaction {
    LeeTransaction::Public(tx.clone())
}

/// A committed block: LEZ's header, the user transactions that succeeded, and what LEZ's block
/// does not carry. [`StoredBlock::lez_block`] rebuilds LEZ's block from it.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct StoredBlock {
    /// LEZ's header: id, previous hash, hash, timestamp (Unix ms), sequencer signature.
    pub header: LezBlockHeader,
    /// The user transactions that succeeded, in order: LEZ's body before the clock invocation.
    pub transactions: Vec<Transaction>,
    /// How many transactions failed in execution in this block (they are not stored here).
    pub failed_count: u32,
    /// The state root after the block (this implementation's, not LEZ's).
    pub state_root: [u8; 32],
    /// [`transactions_root`] over the hashes of `transactions`.
    pub transactions_root: [u8; 32],
    /// The dev time offset in force (node-local) so a restart keeps it.
    pub time_offset_ms: u64,
}

/// What a block is made of before it is hashed and signed.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct BlockParts {
    pub block_id: u64,
    pub prev_block_hash: [u8; 32],
    pub timestamp_ms: u64,
    /// Every user transaction executed, in order, the failed ones included.
    pub transactions: Vec<Transaction>,
    /// Positions in `transactions` of the failed ones, ascending: they are left out of the block.
    pub failed: Vec<u32>,
    pub state_root: [u8; 32],
    pub time_offset_ms: u64,
}

/// LEZ's body of a block: the transactions that succeeded, in order, then the clock invocation
/// with the block's timestamp under `clock_program_id`.
fn lez_body(succeeded: &[Transaction], clock_program_id: ProgramId, timestamp_ms: u64) -> Vec<LeeTransaction> {
    let mut body: Vec<LeeTransaction> = succeeded.iter().map(envelope).collect();
    body.push(clock_invocation(clock_program_id, timestamp_ms));
    body
}

impl StoredBlock {
    /// Hashes the parts as LEZ does (over `HashableBlockData`) and signs the hash with the
    /// sequencer's key.
    #[must_use]
    pub fn seal(parts: BlockParts, sequencer: &SecretKey, clock_program_id: ProgramId) -> Self {
        let hashes = parts.transactions.iter().map(Transaction::hash).collect();
        Self::seal_hashed(parts, hashes, sequencer, clock_program_id)
    }

    /// [`StoredBlock::seal`] with the hash of each of `parts.transactions`, in order, known to
    /// the caller (admission computed them), so they are not encoded and hashed again.
    #[must_use]
    pub fn seal_hashed(
        parts: BlockParts,
        hashes: Vec<[u8; 32]>,
        sequencer: &SecretKey,
        clock_program_id: ProgramId,
    ) -> Self {
        debug_assert_eq!(hashes, parts.transactions.iter().map(Transaction::hash).collect::<Vec<_>>());
        let failed_count = u32::try_from(parts.failed.len()).unwrap_or(u32::MAX);
        let kept = |index: usize| u32::try_from(index).is_ok_and(|i| parts.failed.binary_search(&i).is_err());
        let hashes: Vec<[u8; 32]> =
            hashes.into_iter().enumerate().filter(|(index, _)| kept(*index)).map(|(_, hash)| hash).collect();
        let succeeded: Vec<Transaction> =
            parts.transactions.into_iter().enumerate().filter(|(index, _)| kept(*index)).map(|(_, tx)| tx).collect();
        let data = HashableBlockData {
            block_id: parts.block_id,
            prev_block_hash: parts.prev_block_hash,
            timestamp: parts.timestamp_ms,
            transactions: lez_body(&succeeded, clock_program_id, parts.timestamp_ms),
        };
        let hash = data.hash();
        let header = LezBlockHeader {
            block_id: parts.block_id,
            prev_block_hash: parts.prev_block_hash,
            hash,
            timestamp: parts.timestamp_ms,
            signature: sequencer.sign(&hash),
        };
        Self {
            header,
            transactions: succeeded,
            failed_count,
            state_root: parts.state_root,
            transactions_root: transactions_root(&hashes),
            time_offset_ms: parts.time_offset_ms,
        }
    }

    #[must_use]
    pub const fn height(&self) -> u64 {
        self.header.block_id
    }

    /// LEZ's block hash.
    #[must_use]
    pub const fn hash(&self) -> [u8; 32] {
        self.header.hash
    }

    #[must_use]
    pub const fn parent_hash(&self) -> [u8; 32] {
        self.header.prev_block_hash
    }

    /// Unix milliseconds.
    #[must_use]
    pub const fn timestamp_ms(&self) -> u64 {
        self.header.timestamp
    }

    /// LEZ's block: this header over the succeeded transactions and the clock invocation
    /// (under `clock_program_id`, the chain's release's clock id). A standalone chain settles on
    /// no base layer, so its status is always [`BedrockStatus::Pending`].
    #[must_use]
    pub fn lez_block(&self, clock_program_id: ProgramId) -> LezBlock {
        LezBlock {
            header: self.header.clone(),
            body: LezBlockBody { transactions: lez_body(&self.transactions, clock_program_id, self.header.timestamp) },
            bedrock_status: BedrockStatus::Pending,
        }
    }
}

/// The outcome of one executed transaction.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct StoredReceipt {
    pub tx_hash: [u8; 32],
    pub block_id: u64,
    /// Position in the block's `transactions` when it succeeded; position among the block's
    /// failed transactions when it failed.
    pub index: u32,
    /// `None` when the transaction succeeded.
    pub error: Option<TxErrorInfo>,
    pub events: Vec<ReceiptEvent>,
}

/// A transaction that failed in execution, as kept in the bounded table of failed transactions:
/// its receipt (first, so pruning reads only that) and the transaction.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct FailedTransaction {
    pub receipt: StoredReceipt,
    pub transaction: Transaction,
}

/// The genesis: the LEZ release the chain runs, the sequencer's public key, and the dev keys
/// with their balances. Stored so that restarts and replays rebuild the same chain (and a data
/// dir is never reopened under another release or sequencer key).
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct GenesisSpec {
    pub release: LezRelease,
    pub sequencer: PublicKey,
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

    fn stored_block() -> StoredBlock {
        // Signing draws fresh randomness: a fixed signature keeps the bytes fixed.
        StoredBlock {
            header: LezBlockHeader {
                block_id: 7,
                prev_block_hash: [0x11; 32],
                hash: [0x12; 32],
                timestamp: 1_700_000_000_123,
                signature: paystreams_lez_core::crypto::Signature([0x13; 64]),
            },
            transactions: vec![transaction(), transaction()],
            failed_count: 1,
            state_root: [0x22; 32],
            transactions_root: transactions_root(&[[0x33; 32], [0x44; 32]]),
            time_offset_ms: 20_000,
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
    fn stored_block_bytes_are_pinned_and_round_trip() {
        let block = stored_block();
        let bytes = encode(&block);
        insta::assert_snapshot!("stored_block_bytes", hex::encode(&bytes));
        assert_eq!(StoredBlock::try_from_slice(&bytes).expect("decodes"), block);
    }

    /// A sealed block is LEZ's block: its body is the succeeded transactions then the clock
    /// invocation with the block's timestamp, its hash covers exactly that, and the sequencer's
    /// signature verifies once decoded from LEZ's bytes.
    #[test]
    fn a_sealed_block_is_a_signed_lez_block_without_its_failed_transactions() {
        let sequencer = SecretKey::from_bytes(&[5; 32]).expect("key");
        let clock = LezRelease::V0_2_4.builtin_ids().clock;
        let (ok, bad) = (transaction(), Transaction { witness_set: WitnessSet::default(), ..transaction() });
        let mut bad = bad;
        bad.message.nonces = vec![4];
        let parts = BlockParts {
            block_id: 9,
            prev_block_hash: [0x21; 32],
            timestamp_ms: 1_754_550_000_123,
            transactions: vec![bad.clone(), ok.clone()],
            failed: vec![0],
            state_root: [0x22; 32],
            time_offset_ms: 0,
        };
        let block = StoredBlock::seal(parts, &sequencer, clock);
        assert_eq!(block.transactions_root, transactions_root(&[ok.hash()]));
        assert_eq!(
            (block.transactions.clone(), block.failed_count),
            (vec![ok.clone()], 1),
            "the failed one is not kept"
        );
        let lez = LezBlock::decode(&block.lez_block(clock).to_bytes()).expect("decodes as LEZ's block");
        assert!(lez.is_signed_by(&sequencer.public_key()));
        assert!(!lez.is_signed_by(&SecretKey::from_bytes(&[6; 32]).expect("key").public_key()));
        assert_eq!(lez.header.block_id, 9);
        assert_eq!(lez.body.transactions, vec![envelope(&ok), clock_invocation(clock, 1_754_550_000_123)]);
    }

    /// With no genesis transactions, a v0.2.0 genesis block (id 1, zero parent, timestamp 0,
    /// `clock_invocation(0)` alone) has the hash LEZ's `HashableBlockData` gives.
    #[test]
    fn an_empty_genesis_hashes_as_lez_does() {
        let sequencer = SecretKey::from_bytes(&[5; 32]).expect("key");
        let parts = BlockParts {
            block_id: paystreams_lez_core::lez_block::GENESIS_BLOCK_ID,
            prev_block_hash: [0; 32],
            timestamp_ms: 0,
            transactions: vec![],
            failed: vec![],
            state_root: [0; 32],
            time_offset_ms: 0,
        };
        let block = StoredBlock::seal(parts, &sequencer, LezRelease::V0_2_0.builtin_ids().clock);
        assert_eq!(hex::encode(block.hash()), "1818aa7a25f1657904f6d0d06043448ccfc419557c1f85a9c1dc25208cf315f3");
    }

    #[test]
    fn receipt_bytes_are_pinned_and_round_trip() {
        let receipt = receipt();
        let bytes = encode(&receipt);
        insta::assert_snapshot!("receipt_bytes", hex::encode(&bytes));
        assert_eq!(StoredReceipt::try_from_slice(&bytes).expect("decodes"), receipt);
    }

    #[test]
    fn failed_transaction_bytes_are_pinned_and_round_trip() {
        let failed = FailedTransaction { receipt: receipt(), transaction: transaction() };
        let bytes = encode(&failed);
        insta::assert_snapshot!("failed_transaction_bytes", hex::encode(&bytes));
        assert_eq!(FailedTransaction::try_from_slice(&bytes).expect("decodes"), failed);
        // Pruning decodes the receipt alone from the front of the record.
        assert_eq!(StoredReceipt::deserialize(&mut bytes.as_slice()).expect("prefix"), receipt());
    }

    #[test]
    fn genesis_bytes_are_pinned() {
        let genesis = GenesisSpec {
            release: LezRelease::V0_2_4,
            sequencer: SecretKey::from_bytes(&[0x78; 32]).expect("key").public_key(),
            accounts: vec![GenesisAccount { secret_key: [0x77; 32], balance: 1_000_000_000 }],
        };
        insta::assert_snapshot!("genesis_bytes", hex::encode(encode(&genesis)));
    }
}
