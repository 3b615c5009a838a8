//! The output document. Field order and spelling are the contract in `docs/sim.md`; amounts are
//! decimal strings because JSON numbers above 2^53 do not survive JavaScript, ids and times are
//! numbers.

use std::collections::BTreeMap;

use serde::Serialize;

/// Everything a scenario run produced, one entry per step.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct SimOutput {
    pub steps: Vec<StepOutput>,
}

/// One step's outcome and the state after it.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct StepOutput {
    /// Zero-based position in the scenario's `steps`.
    pub index: usize,
    pub t: u64,
    pub op: String,
    pub ok: bool,
    pub error: Option<ErrorOutput>,
    pub state: StateOutput,
}

/// A refused transaction: the runtime's or the program's stable code and name.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct ErrorOutput {
    pub code: u32,
    pub name: String,
}

/// Reported state: stored after a transaction step, folded to `t` after `observe`.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct StateOutput {
    /// Native balance of every named account.
    pub balances: BTreeMap<String, String>,
    pub vaults: Vec<VaultOutput>,
    pub streams: Vec<StreamOutput>,
    /// Extension: token name -> named account -> holding balance; only once a token exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_balances: Option<BTreeMap<String, BTreeMap<String, String>>>,
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct VaultOutput {
    pub owner: String,
    pub vault_id: u64,
    /// `native`, a token name from `create_token`, or 64 hex digits.
    pub token_id: String,
    pub balance: String,
    pub total_allocated: String,
    pub unallocated: String,
    pub next_stream_id: u64,
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct StreamOutput {
    pub owner: String,
    pub vault_id: u64,
    pub stream_id: u64,
    pub provider: String,
    /// `active`, `paused` or `closed`.
    pub state: String,
    pub rate: String,
    pub allocation: String,
    pub accrued: String,
    pub unaccrued: String,
    pub accrued_as_of: u64,
}
