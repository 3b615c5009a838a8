//! Client errors. Every variant's text names the cause and, where there is one, the fix.

use std::fmt;

use paystreams_rpc::{HexHash, remote::RpcError};

/// A transaction that failed (in a receipt) or that a pre-flight check refused before sending.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TxFailure {
    /// Runtime (1xxx), builtin (2xxx/3xxx) or program (6xxx) code.
    pub code: u32,
    pub name: String,
    /// The runtime's message, the same for a failed receipt and a pre-flight refusal.
    pub message: String,
    /// Cause and fix, from the chain state at the time of failure.
    pub explanation: String,
    /// The transaction hash; `None` when refused before sending.
    pub hash: Option<HexHash>,
    pub block_id: Option<u64>,
}

impl TxFailure {
    /// True when the client refused the transaction before sending it.
    #[must_use]
    pub const fn is_preflight(&self) -> bool {
        self.hash.is_none()
    }
}

impl fmt::Display for TxFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (error {} {}", self.explanation, self.code, self.name)?;
        match (&self.hash, self.block_id) {
            (Some(hash), Some(block)) => write!(f, ", transaction {hash} failed in block {block})"),
            (Some(hash), None) => write!(f, ", transaction {hash})"),
            (None, _) => f.write_str(", checked before sending; nothing was submitted)"),
        }
    }
}

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The node could not be reached, refused a call, or did not include a transaction in time.
    #[error(transparent)]
    Node(#[from] RpcError),
    #[error("{0}")]
    Transaction(Box<TxFailure>),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    /// LEZ mode: the transaction was included, but what it moved cannot be derived exactly (LEZ
    /// keeps no receipts; `reason` says why the derivation was not possible).
    #[error(
        "transaction {hash} was included in block {block_id}, but its effects cannot be derived exactly ({reason}; a \
         LEZ sequencer keeps no receipts). Read the accounts (`paystream account balance`, `vault show`, \
         `stream show`) to see the result"
    )]
    EffectsUnknown { hash: HexHash, block_id: u64, reason: String },
    /// The node accepted the transaction, then could not be asked whether it was included (it
    /// stopped answering, or refused the question): the hash is what finds it later.
    #[error(
        "transaction {hash} was sent, but whether it was included is unknown: {source}. It may still be included: \
         look it up later with `paystream tx show {hash}` (on LEZ, JSON-RPC getTransaction), and read the accounts \
         it touches before sending it again"
    )]
    Unconfirmed { hash: HexHash, source: RpcError },
}

impl ClientError {
    /// This error met while waiting for the inclusion of `hash`, which the node accepted:
    /// failures to reach or query the node become [`ClientError::Unconfirmed`] (naming the
    /// hash); errors that already name it, and outcomes, stay as they are.
    #[must_use]
    pub fn after_sending(self, hash: HexHash) -> Self {
        match self {
            Self::Node(source @ (RpcError::Connection { .. } | RpcError::Rpc { .. })) => {
                Self::Unconfirmed { hash, source }
            }
            other => other,
        }
    }

    /// The hash of the transaction this error is about, when it was sent.
    #[must_use]
    pub fn tx_hash(&self) -> Option<HexHash> {
        match self {
            Self::Transaction(failure) => failure.hash,
            Self::Unconfirmed { hash, .. }
            | Self::EffectsUnknown { hash, .. }
            | Self::Node(RpcError::Timeout { hash, .. } | RpcError::Dropped { hash, .. }) => Some(*hash),
            _ => None,
        }
    }

    /// True when the node could not be reached (before or after sending).
    #[must_use]
    pub const fn is_unreachable(&self) -> bool {
        matches!(
            self,
            Self::Node(RpcError::Connection { .. }) | Self::Unconfirmed { source: RpcError::Connection { .. }, .. }
        )
    }

    /// The failed transaction, if this is one.
    #[must_use]
    pub fn tx_failure(&self) -> Option<&TxFailure> {
        match self {
            Self::Transaction(failure) => Some(failure),
            _ => None,
        }
    }

    /// The failure code of a failed or refused transaction.
    #[must_use]
    pub fn code(&self) -> Option<u32> {
        self.tx_failure().map(|f| f.code)
    }
}

/// Result of client calls.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;
