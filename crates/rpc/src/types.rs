//! JSON wire types of the API.

use std::{fmt, str::FromStr};

use paystreams_lez_core::{Account, AccountId};
use paystreams_program::state::{StreamState, VaultPrivacyTier};
use paystreams_runtime::{ReceiptEvent, TxError};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Most blocks `getBlockRange` returns at once.
pub const BLOCK_RANGE_MAX: u64 = 1000;

/// Most transactions one `sendTransactions` call may carry.
pub const SEND_BATCH_MAX: u64 = 1000;

/// One entry of the answer to `sendTransactions`, in the order sent: the hash of an admitted
/// transaction, or the JSON-RPC error `sendTransaction` would have returned for it.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubmitOutcome {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<HexHash>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<SubmitError>,
}

/// Why one transaction of a batch was refused.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct SubmitError {
    /// The JSON-RPC error code (`codes::*`).
    pub code: i32,
    pub message: String,
}

/// A 32-byte hash, hex in JSON.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct HexHash(pub [u8; 32]);

impl fmt::Display for HexHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for HexHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HexHash({self})")
    }
}

impl FromStr for HexHash {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let s = s.strip_prefix("0x").unwrap_or(s);
        let bytes = hex::decode(s).map_err(|e| format!("not a hex hash: {e}"))?;
        let len = bytes.len();
        let array: [u8; 32] = bytes.try_into().map_err(|_| format!("a hash is 32 bytes, got {len}"))?;
        Ok(Self(array))
    }
}

impl Serialize for HexHash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HexHash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <String as Deserialize>::deserialize(deserializer)?.parse().map_err(serde::de::Error::custom)
    }
}

/// A `u128` as a decimal string.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug)]
pub struct Amount(pub u128);

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        paystreams_lez_core::account::decimal_u128::deserialize(deserializer).map(Self)
    }
}

/// A block header. `hash = SHA-256(borsh(header without hash))`.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct BlockHeader {
    pub height: u64,
    pub parent_hash: HexHash,
    pub timestamp_ms: u64,
    pub state_root: HexHash,
    pub transactions_root: HexHash,
    pub hash: HexHash,
}

/// A block: header plus the hashes of the transactions it includes (successful and failed).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct BlockInfo {
    pub header: BlockHeader,
    pub transactions: Vec<HexHash>,
}

/// A transaction and where it was included.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct TransactionInfo {
    pub hash: HexHash,
    /// Base64 of the Borsh transaction.
    pub transaction: String,
    pub block_id: Option<u64>,
}

/// Where a transaction stands.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxStatus {
    Pending,
    Included,
    Failed,
}

/// Why a transaction failed: the runtime's or program's code, name and message.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, borsh::BorshSerialize, borsh::BorshDeserialize)]
pub struct TxErrorInfo {
    pub code: u32,
    pub name: String,
    pub message: String,
}

impl From<&TxError> for TxErrorInfo {
    /// The code, the name (for a program outside the known ones, the name it gave) and the
    /// runtime's message: what a failed receipt carries, and what a pre-flight refusal reports.
    fn from(error: &TxError) -> Self {
        let name = match error {
            TxError::Program { name, .. } if error.name() == "ProgramError" => name.clone(),
            _ => error.name().to_owned(),
        };
        Self { code: error.code(), name, message: error.to_string() }
    }
}

/// A transaction receipt.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ReceiptInfo {
    pub hash: HexHash,
    pub status: TxStatus,
    pub block_id: Option<u64>,
    pub error: Option<TxErrorInfo>,
    pub events: Vec<ReceiptEvent>,
}

/// The payment-streams events of a receipt.
pub fn stream_events(receipt: &ReceiptInfo) -> impl Iterator<Item = &paystreams_program::Event> {
    receipt.events.iter().filter_map(|e| match e {
        ReceiptEvent::PaymentStreams { event } => Some(event),
        _ => None,
    })
}

/// An account in JSON (LEZ's four fields; data hex).
pub type AccountInfo = Account;

/// A vault, decoded.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct VaultView {
    pub owner: AccountId,
    pub vault_id: u64,
    pub vault_config: AccountId,
    pub vault_holding: AccountId,
    /// "native", or the token definition id (base58).
    pub token_id: String,
    pub privacy_tier: VaultPrivacyTier,
    pub balance: Amount,
    pub total_allocated: Amount,
    pub unallocated: Amount,
    pub next_stream_id: u64,
}

/// A stream, decoded: stored fields and effective state at `as_of` (the latest block time).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct StreamView {
    pub owner: AccountId,
    pub vault_id: u64,
    pub stream_id: u64,
    pub stream_config: AccountId,
    pub provider: AccountId,
    pub token_id: String,
    pub rate: u64,
    /// Effective state at `as_of`.
    pub state: StreamState,
    pub allocation: Amount,
    pub accrued: Amount,
    pub unaccrued: Amount,
    pub accrued_as_of: u64,
    /// Chain time (seconds) the effective values are folded to.
    pub as_of: u64,
    /// When an ACTIVE stream stops accruing (depletion or auto-pause), seconds.
    pub planned_stop: Option<u64>,
    pub stored_state: StreamState,
    pub stored_accrued: Amount,
    pub stored_accrued_as_of: u64,
    pub extensions: Option<ExtensionsView>,
}

/// Extension settings of a stream.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ExtensionsView {
    pub auto_pause_after: u64,
    pub auto_pause_anchor: u64,
    pub activation_fee: Amount,
    pub auto_claim_on_provider_close: bool,
    pub receipt_key: Option<String>,
    pub receipt_paid: Amount,
}

/// `listStreams` filter: by owner, by provider, or both.
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamFilter {
    pub owner: Option<AccountId>,
    pub provider: Option<AccountId>,
}

/// `subscribeEvents` filter: every given field must match; none given = all events.
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventFilter {
    pub owner: Option<AccountId>,
    pub vault_id: Option<u64>,
    pub stream_id: Option<u64>,
    pub provider: Option<AccountId>,
}

impl EventFilter {
    /// True when `event` matches every field given.
    #[must_use]
    pub fn matches(&self, event: &paystreams_program::Event) -> bool {
        let (owner, vault_id) = event.vault();
        let stream = event.stream();
        self.owner.is_none_or(|o| o == owner)
            && self.vault_id.is_none_or(|v| v == vault_id)
            && self.stream_id.is_none_or(|s| stream.is_some_and(|r| r.stream_id == s))
            && self.provider.is_none_or(|p| stream.is_some_and(|r| r.provider == p))
    }
}

/// One payment-streams event of a committed block.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct EventNotification {
    pub block_id: u64,
    pub timestamp_ms: u64,
    pub tx_hash: HexHash,
    pub event: paystreams_program::Event,
}

/// Most events one `paystreams_getEvents` page holds (also the default page size).
pub const EVENTS_PAGE_MAX: u32 = 1000;

/// A position in the chain's event sequence: block id, then the event's ordinal in that block.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventCursor {
    pub block_id: u64,
    pub index: u32,
}

/// One page of `paystreams_getEvents`, oldest first.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct EventPage {
    pub events: Vec<IndexedEvent>,
    /// Pass as `after` to read on; null when no more events exist up to `through_block`.
    pub next: Option<EventCursor>,
    /// The last committed block the page reflects.
    pub through_block: u64,
}

/// One event of the node's event index, with its position in the chain's event sequence.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct IndexedEvent {
    pub cursor: EventCursor,
    #[serde(flatten)]
    pub notification: EventNotification,
}
