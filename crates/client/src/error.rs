//! Client errors. Every variant's text names the cause and, where there is one, the fix.

use std::{fmt, time::Duration};

use paystreams_rpc::HexHash;

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
    #[error("cannot reach the node at {url}: {detail}. Is `paystream node` running there? Set --rpc or PAYSTREAMS_RPC")]
    Connection { url: String, detail: String },
    #[error("the node refused {method}: {message} (JSON-RPC error {code})")]
    Rpc { method: &'static str, code: i32, message: String },
    #[error("{0}")]
    Transaction(Box<TxFailure>),
    #[error(
        "transaction {hash} was not included within {} s; it may still be pending (query getTransactionReceipt), \
         or the node is not producing blocks",
        waited.as_secs()
    )]
    Timeout { hash: HexHash, waited: Duration },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
}

impl ClientError {
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

    pub(crate) fn from_rpc(url: &str, method: &'static str, error: jsonrpsee::core::ClientError) -> Self {
        use jsonrpsee::core::ClientError as E;
        match error {
            E::Call(object) => {
                let mut message = object.message().to_owned();
                if let Some(data) = object.data() {
                    message.push_str(": ");
                    message.push_str(data.get());
                }
                Self::Rpc { method, code: object.code(), message }
            }
            E::Transport(e) => Self::Connection { url: url.to_owned(), detail: e.to_string() },
            E::RestartNeeded(e) => Self::Connection { url: url.to_owned(), detail: e.to_string() },
            E::RequestTimeout => Self::Connection { url: url.to_owned(), detail: "the request timed out".to_owned() },
            other => Self::Rpc { method, code: 0, message: other.to_string() },
        }
    }
}

/// Result of client calls.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;
