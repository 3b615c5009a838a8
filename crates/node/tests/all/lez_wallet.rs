//! LEZ's wallet against this node: the requests LEZ's wallet (`lez/wallet`, v0.2.4) sends
//! through its jsonrpsee client, replayed over HTTP, every answer decoded into LEZ's own result
//! types. Those types are restated here from LEZ's sources (`lee_core::account`,
//! `common::{HashType, transaction, block}`, `sequencer_service_protocol`), independently of this
//! repository's types, with their serde and Borsh shapes; decoding is strict (unknown fields
//! refused, numbers must be JSON numbers).

use std::{
    net::SocketAddr,
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use crate::common::*;
use paystreams_lez_core::crypto::SecretKey;
use paystreams_node::{NodeConfig, start};
use paystreams_rpc::{PaystreamsApiClient as _, TxStatus};
use serde::de::DeserializeOwned;

/// LEZ's client-side types, restated.
mod lez {
    use std::{fmt, str::FromStr};

    use base64::Engine as _;
    use borsh::{BorshDeserialize, BorshSerialize};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// `lee_core::account::AccountId`: 32 bytes; JSON is base58 (`SerializeDisplay`,
    /// `DeserializeFromStr`); Borsh is the 32 bytes.
    #[derive(Clone, Copy, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
    pub struct AccountId {
        pub value: [u8; 32],
    }

    impl fmt::Display for AccountId {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(&bs58::encode(self.value).into_string())
        }
    }

    impl FromStr for AccountId {
        type Err = String;

        fn from_str(s: &str) -> Result<Self, String> {
            let bytes = bs58::decode(s).into_vec().map_err(|e| format!("invalid base58: {e}"))?;
            let value: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| format!("invalid length {}", b.len()))?;
            Ok(Self { value })
        }
    }

    impl Serialize for AccountId {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_str(self)
        }
    }

    impl<'de> Deserialize<'de> for AccountId {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            <String as Deserialize>::deserialize(d)?.parse().map_err(serde::de::Error::custom)
        }
    }

    /// `common::HashType`: 32 bytes, JSON lowercase hex (`hex::encode` / `decode_to_slice`).
    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    pub struct HashType(pub [u8; 32]);

    impl fmt::Display for HashType {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(&hex::encode(self.0))
        }
    }

    impl<'de> Deserialize<'de> for HashType {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let text = <String as Deserialize>::deserialize(d)?;
            let mut bytes = [0_u8; 32];
            hex::decode_to_slice(&text, &mut bytes).map_err(serde::de::Error::custom)?;
            Ok(Self(bytes))
        }
    }

    /// `lee_core::account::Nonce(u128)`: JSON and Borsh as the u128.
    #[derive(Clone, Copy, PartialEq, Eq, Debug, Deserialize, BorshSerialize, BorshDeserialize)]
    #[serde(transparent)]
    pub struct Nonce(pub u128);

    /// `lee_core::account::Data(Vec<u8>)`: a JSON array of byte numbers.
    #[derive(Clone, PartialEq, Eq, Debug, Deserialize)]
    pub struct Data(pub Vec<u8>);

    /// `lee_core::account::Account`, derived serde: numbers and arrays.
    #[derive(Clone, PartialEq, Eq, Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Account {
        pub program_owner: [u32; 8],
        pub balance: u128,
        pub data: Data,
        pub nonce: Nonce,
    }

    /// `lee::public_transaction::Message`.
    #[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
    pub struct Message {
        pub program_id: [u32; 8],
        pub account_ids: Vec<AccountId>,
        pub nonces: Vec<Nonce>,
        pub instruction_data: Vec<u32>,
    }

    /// `PREFIX` of `Message::hash`: `/LEE/v0.3/Message/Public/` NUL-padded to 32 bytes.
    pub const MESSAGE_PREFIX: [u8; 32] = *b"/LEE/v0.3/Message/Public/\0\0\0\0\0\0\0";

    impl Message {
        pub fn hash(&self) -> [u8; 32] {
            paystreams_lez_core::sha256(&[&MESSAGE_PREFIX, &borsh::to_vec(self).expect("borsh")])
        }
    }

    /// `lee::public_transaction::WitnessSet`: (`Signature { value: [u8; 64] }`,
    /// `PublicKey([u8; 32])`) pairs.
    #[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
    pub struct WitnessSet {
        pub signatures_and_public_keys: Vec<([u8; 64], [u8; 32])>,
    }

    #[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
    pub struct PublicTransaction {
        pub message: Message,
        pub witness_set: WitnessSet,
    }

    impl PublicTransaction {
        /// `PublicTransaction::hash`: SHA-256 of its Borsh.
        pub fn hash(&self) -> [u8; 32] {
            paystreams_lez_core::sha256(&[&borsh::to_vec(self).expect("borsh")])
        }
    }

    /// `common::transaction::LeeTransaction` (tag 0 `Public`; the node runs no other kind).
    /// JSON: base64 (standard, padded) of the Borsh.
    #[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
    pub enum LeeTransaction {
        Public(PublicTransaction),
    }

    impl LeeTransaction {
        pub fn to_base64(&self) -> String {
            base64::engine::general_purpose::STANDARD.encode(borsh::to_vec(self).expect("borsh"))
        }
    }

    impl<'de> Deserialize<'de> for LeeTransaction {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let text = <String as Deserialize>::deserialize(d)?;
            let bytes = base64::engine::general_purpose::STANDARD.decode(text).map_err(serde::de::Error::custom)?;
            borsh::from_slice(&bytes).map_err(serde::de::Error::custom)
        }
    }

    /// `common::block::BlockHeader`.
    #[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
    pub struct BlockHeader {
        pub block_id: u64,
        pub prev_block_hash: [u8; 32],
        pub hash: [u8; 32],
        pub timestamp: u64,
        pub signature: [u8; 64],
    }

    /// `common::block::BlockBody`.
    #[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
    pub struct BlockBody {
        pub transactions: Vec<LeeTransaction>,
    }

    /// `common::block::BedrockStatus`.
    #[derive(Clone, Copy, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
    pub enum BedrockStatus {
        Pending,
        Safe,
        Finalized,
    }

    /// `common::block::Block`; JSON: base64 (standard, padded) of the Borsh.
    #[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
    pub struct Block {
        pub header: BlockHeader,
        pub body: BlockBody,
        pub bedrock_status: BedrockStatus,
    }

    impl<'de> Deserialize<'de> for Block {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let text = <String as Deserialize>::deserialize(d)?;
            let bytes = base64::engine::general_purpose::STANDARD.decode(text).map_err(serde::de::Error::custom)?;
            borsh::from_slice(&bytes).map_err(serde::de::Error::custom)
        }
    }

    /// `common::block::HashableBlockData`, what a block's hash covers.
    #[derive(BorshSerialize)]
    pub struct HashableBlockData<'a> {
        pub block_id: u64,
        pub prev_block_hash: [u8; 32],
        pub timestamp: u64,
        pub transactions: &'a Vec<LeeTransaction>,
    }

    /// The block hash's prefix: `/LEE/v0.3/Message/Block/` NUL-padded to 32 bytes.
    pub const BLOCK_PREFIX: [u8; 32] = *b"/LEE/v0.3/Message/Block/\0\0\0\0\0\0\0\0";

    impl Block {
        /// `compute_hash`: SHA-256 of the prefix and the Borsh of `HashableBlockData`.
        pub fn recompute_hash(&self) -> [u8; 32] {
            let data = HashableBlockData {
                block_id: self.header.block_id,
                prev_block_hash: self.header.prev_block_hash,
                timestamp: self.header.timestamp,
                transactions: &self.body.transactions,
            };
            paystreams_lez_core::sha256(&[&BLOCK_PREFIX, &borsh::to_vec(&data).expect("borsh")])
        }
    }

    /// `lee_core::Commitment([u8; 32])`: derived serde, an array of 32 numbers.
    #[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
    pub struct Commitment(pub [u8; 32]);

    /// `lee_core::MembershipProof = (usize, Vec<[u8; 32]>)`.
    pub type MembershipProof = (usize, Vec<[u8; 32]>);

    /// `authenticated_transfer_core::Instruction::Transfer { amount: u128 }` as RISC Zero serde
    /// words: variant 0, then the u128's 16 little-endian bytes as four words, low first.
    pub fn transfer_words(amount: u128) -> Vec<u32> {
        let bytes = amount.to_le_bytes();
        let mut words = vec![0];
        words.extend(bytes.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])));
        words
    }
}

/// A jsonrpsee-style client: ids counting from 0, positional parameters.
struct Wallet {
    addr: SocketAddr,
    next_id: AtomicU64,
}

impl Wallet {
    /// Calls `method` and decodes its result strictly into `T` (LEZ's result type).
    async fn call<T: DeserializeOwned>(&self, method: &str, params: &str) -> T {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let response = call(self.addr, id, method, params).await;
        let Some(result) = response.result else { panic!("{method}({params}) failed: {:?}", response.error) };
        serde_json::from_str(result.get())
            .unwrap_or_else(|e| panic!("{method}: {} is not LEZ's result type ({e})", result.get()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lezs_wallet_requests_decode_into_lezs_types() {
    // Timed blocks: sendTransaction answers before execution, as on LEZ.
    let config = NodeConfig { automine: false, block_time: Duration::from_millis(100), ..NodeConfig::ephemeral_dev() };
    let node = start(config).await.expect("start");
    let wallet = Wallet { addr: node.local_addr(), next_id: AtomicU64::new(0) };
    let key: SecretKey = node.dev_keys()[0].clone();
    let sender: lez::AccountId = key.account_id().to_string().parse().expect("base58");
    let recipient: lez::AccountId = node.dev_keys()[1].account_id().to_string().parse().expect("base58");

    // What the wallet reads before a transfer.
    let ids: std::collections::BTreeMap<String, [u32; 8]> = wallet.call("getProgramIds", "").await;
    let at = *ids.get("authenticated_transfer").expect("authenticated_transfer id");
    let first_block: u64 = wallet.call("getLastBlockId", "").await;
    let nonces: Vec<lez::Nonce> = wallet.call("getAccountsNonces", &format!(r#"[["{sender}"]]"#)).await;
    let before: lez::Account = wallet.call("getAccount", &format!(r#"["{recipient}"]"#)).await;
    let balance: u128 = wallet.call("getAccountBalance", &format!(r#"["{recipient}"]"#)).await;
    assert_eq!(balance, before.balance);
    assert_eq!(before.program_owner, at, "dev accounts are owned by the authenticated-transfer program");

    // A native transfer built from LEZ's types, signed over LEZ's message hash.
    let amount = 12_345_u128;
    let message = lez::Message {
        program_id: at,
        account_ids: vec![sender, recipient],
        nonces: vec![nonces[0]],
        instruction_data: lez::transfer_words(amount),
    };
    let signature = key.sign(&message.hash());
    let tx = lez::LeeTransaction::Public(lez::PublicTransaction {
        message,
        witness_set: lez::WitnessSet { signatures_and_public_keys: vec![(signature.0, key.public_key().to_bytes())] },
    });
    let lez::LeeTransaction::Public(public) = &tx;
    let hash: lez::HashType = wallet.call("sendTransaction", &format!(r#"["{}"]"#, tx.to_base64())).await;
    assert_eq!(hash.0, public.hash(), "the answer is LEZ's transaction hash");

    // The wallet's poller: getTransaction until it is included.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (included, block_id) = loop {
        let found: Option<(lez::LeeTransaction, u64)> = wallet.call("getTransaction", &format!(r#"["{hash}"]"#)).await;
        if let Some(found) = found {
            break found;
        }
        assert!(Instant::now() < deadline, "the transfer was not included within a minute");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(included, tx, "the node answers the transaction as sent");
    let last: u64 = wallet.call("getLastBlockId", "").await;
    assert!(first_block < block_id && block_id <= last, "{first_block} < {block_id} <= {last}");

    let after: lez::Account = wallet.call("getAccount", &format!(r#"["{recipient}"]"#)).await;
    assert_eq!(after.balance, before.balance + amount);
    assert_eq!((after.program_owner, &after.data, after.nonce), (before.program_owner, &before.data, before.nonce));
    let nonces: Vec<lez::Nonce> = wallet.call("getAccountsNonces", &format!(r#"[["{sender}","{recipient}"]]"#)).await;
    assert_eq!(nonces, vec![lez::Nonce(1), after.nonce]);

    // A transaction that fails when executed (a transfer to an unclaimed account that did not
    // sign): accepted, then dropped, so getTransaction stays null; our receipt (the oracle) says
    // it failed. (A nonce from the future is refused at admission.)
    let stranger: lez::AccountId =
        paystreams_lez_core::crypto::SecretKey::generate().account_id().to_string().parse().expect("base58");
    let message = lez::Message {
        program_id: at,
        account_ids: vec![sender, stranger],
        nonces: vec![lez::Nonce(1)],
        instruction_data: lez::transfer_words(1),
    };
    let signature = key.sign(&message.hash());
    let failing = lez::LeeTransaction::Public(lez::PublicTransaction {
        message,
        witness_set: lez::WitnessSet { signatures_and_public_keys: vec![(signature.0, key.public_key().to_bytes())] },
    });
    let failed_hash: lez::HashType = wallet.call("sendTransaction", &format!(r#"["{}"]"#, failing.to_base64())).await;
    let client = http(&node.rpc_url());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let receipt = client
            .get_transaction_receipt(paystreams_rpc::HexHash(failed_hash.0))
            .await
            .expect("receipt call")
            .expect("known");
        if receipt.status == TxStatus::Failed {
            break;
        }
        assert_eq!(receipt.status, TxStatus::Pending, "{receipt:?}");
        assert!(Instant::now() < deadline, "the failing transaction was not executed within a minute");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let dropped: Option<(lez::LeeTransaction, u64)> =
        wallet.call("getTransaction", &format!(r#"["{failed_hash}"]"#)).await;
    assert_eq!(dropped, None, "a failed transaction is never returned");
    let unchanged: lez::Account = wallet.call("getAccount", &format!(r#"["{recipient}"]"#)).await;
    assert_eq!(unchanged, after);

    // The wallet's block reads: getBlock and the poller's getBlockRange from genesis (1).
    let last: u64 = wallet.call("getLastBlockId", "").await;
    let blocks: Vec<lez::Block> = wallet.call("getBlockRange", &format!("[1,{last}]")).await;
    assert_eq!(blocks.len() as u64, last);
    let sequencer = node.chain().sequencer_public_key();
    let mut parent = [0_u8; 32];
    for (id, block) in (1..).zip(&blocks) {
        assert_eq!(block.header.block_id, id);
        assert_eq!(block.header.prev_block_hash, parent, "block {id} chains to its parent");
        assert_eq!(block.recompute_hash(), block.header.hash, "block {id}'s hash is LEZ's");
        let signature = paystreams_lez_core::crypto::Signature(block.header.signature);
        assert!(sequencer.verify(&block.header.hash, &signature), "block {id} is signed by the sequencer");
        assert!(!block.body.transactions.contains(&failing), "a failed transaction is in no block");
        parent = block.header.hash;
    }
    let single: Option<lez::Block> = wallet.call("getBlock", &format!("[{block_id}]")).await;
    let single = single.expect("the transfer's block");
    assert_eq!(Some(&single), blocks.get(usize::try_from(block_id - 1).expect("small")));
    assert!(single.body.transactions.contains(&tx), "the transfer is in its block");
    let beyond: Option<lez::Block> = wallet.call("getBlock", &format!("[{}]", last + 1_000)).await;
    assert_eq!(beyond, None);

    // Private-state queries of the wallet's account manager.
    let commitment = lez::Commitment([3; 32]);
    let (proofs, _root): (Vec<Option<lez::MembershipProof>>, [u8; 32]) = wallet
        .call("getProofsAndRoot", &format!("[{}]", serde_json::to_string(&vec![commitment]).expect("json")))
        .await;
    assert_eq!(proofs, vec![None]);

    // Every number came back as a JSON number: a quoted amount would not have decoded into
    // LEZ's types above. Decoding refuses the shapes LEZ's derives refuse.
    assert!(
        serde_json::from_str::<lez::Account>(
            r#"{"program_owner":[0,0,0,0,0,0,0,0],"balance":"1","data":[],"nonce":0}"#
        )
        .is_err()
    );
    assert!(serde_json::from_str::<lez::Nonce>(r#""1""#).is_err());
    node.shutdown().await;
}
