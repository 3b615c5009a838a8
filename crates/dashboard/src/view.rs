//! What the pages show, read from the chain and the keystore and turned into display strings.
//! Raw decimal strings ride along in `data-` attributes for the browser's live ticking.

use std::collections::BTreeMap;

use paystreams_client::{Client, NamedKey};
use paystreams_lez_core::AccountId;
use paystreams_program::state::StreamState;
use paystreams_rpc::{StreamFilter, StreamView, VaultView};

use crate::{error::PageError, format};

/// Most streams listed per identity and table.
pub const STREAMS_PER_TABLE_MAX: usize = 500;

/// An account as shown: keystore name when known, else a short id; full id as tooltip.
#[derive(Clone, Debug)]
pub struct Label {
    pub text: String,
    pub id: String,
    pub ours: bool,
}

impl Label {
    #[must_use]
    pub fn of(id: &AccountId, names: &BTreeMap<AccountId, String>) -> Self {
        names.get(id).map_or_else(
            || Self { text: format::short_id(id), id: id.to_string(), ours: false },
            |name| Self { text: name.clone(), id: id.to_string(), ours: true },
        )
    }
}

/// Keystore names by account.
#[must_use]
pub fn names_of(keys: &[NamedKey]) -> BTreeMap<AccountId, String> {
    keys.iter().map(|k| (k.account_id(), k.name.clone())).collect()
}

/// An identity of the keystore with its native balance.
#[derive(Clone, Debug)]
pub struct IdentityRow {
    pub name: String,
    pub id: String,
    pub balance: String,
    pub key: String,
    pub fragment: String,
}

/// A vault.
#[derive(Clone, Debug)]
pub struct VaultRow {
    pub owner: String,
    pub owner_name: String,
    pub vault_id: u64,
    pub token: String,
    pub balance: String,
    pub allocated: String,
    pub unallocated: String,
    pub streams: u64,
}

/// A stream, with live-ticking inputs.
#[derive(Clone, Debug)]
pub struct StreamRow {
    pub owner: Label,
    pub provider: Label,
    pub vault_id: u64,
    pub stream_id: u64,
    pub token: String,
    pub state: &'static str,
    pub rate: String,
    pub rate_raw: String,
    pub allocation: String,
    pub allocation_raw: String,
    pub accrued: String,
    pub accrued_raw: String,
    pub unaccrued: String,
    pub accrued_as_of: u64,
    pub as_of: u64,
    /// Planned stop in chain seconds, empty when none.
    pub stop_raw: String,
    pub planned_stop: String,
    pub is_active: bool,
    pub is_paused: bool,
    pub is_closed: bool,
    pub has_accrued: bool,
    pub extensions: String,
    /// `OWNER/VAULT/STREAM`.
    pub path: String,
    /// `stream:OWNER:VAULT:STREAM`.
    pub key: String,
}

impl StreamRow {
    #[must_use]
    pub fn from_view(view: &StreamView, names: &BTreeMap<AccountId, String>) -> Self {
        let planned_stop = match (view.state, view.planned_stop) {
            (StreamState::Active, Some(stop)) => {
                format!("{} (in {})", format::time(stop), format::duration(stop.saturating_sub(view.as_of)))
            }
            (StreamState::Active, None) => "never".to_owned(),
            (StreamState::Paused, _) => "— (paused)".to_owned(),
            (StreamState::Closed, _) => "— (closed)".to_owned(),
        };
        let extensions = view.extensions.as_ref().map_or_else(String::new, |e| {
            let mut parts = Vec::new();
            if e.auto_pause_after > 0 {
                parts.push(format!("auto-pause after {}", format::duration(e.auto_pause_after)));
            }
            if e.activation_fee.0 > 0 {
                parts.push(format!("activation fee {}", format::amount(e.activation_fee.0)));
            }
            if e.auto_claim_on_provider_close {
                parts.push("auto-claim on provider close".to_owned());
            }
            if e.receipt_key.is_some() {
                parts.push("delivery receipts required to claim".to_owned());
            }
            parts.join(", ")
        });
        Self {
            owner: Label::of(&view.owner, names),
            provider: Label::of(&view.provider, names),
            vault_id: view.vault_id,
            stream_id: view.stream_id,
            token: view.token_id.clone(),
            state: state_name(view.state),
            rate: format::amount(u128::from(view.rate)),
            rate_raw: view.rate.to_string(),
            allocation: format::amount(view.allocation.0),
            allocation_raw: view.allocation.0.to_string(),
            accrued: format::amount(view.accrued.0),
            accrued_raw: view.accrued.0.to_string(),
            unaccrued: format::amount(view.unaccrued.0),
            accrued_as_of: view.accrued_as_of,
            as_of: view.as_of,
            stop_raw: match view.state {
                StreamState::Active => view.planned_stop.map_or_else(String::new, |s| s.to_string()),
                _ => String::new(),
            },
            planned_stop,
            is_active: view.state == StreamState::Active,
            is_paused: view.state == StreamState::Paused,
            is_closed: view.state == StreamState::Closed,
            has_accrued: view.accrued.0 > 0 || view.state == StreamState::Active,
            extensions,
            path: format!("{}/{}/{}", view.owner, view.vault_id, view.stream_id),
            key: format!("stream:{}:{}:{}", view.owner, view.vault_id, view.stream_id),
        }
    }
}

/// `active`, `paused` or `closed`.
#[must_use]
pub const fn state_name(state: StreamState) -> &'static str {
    match state {
        StreamState::Active => "active",
        StreamState::Paused => "paused",
        StreamState::Closed => "closed",
    }
}

fn node_err(e: &paystreams_client::ClientError) -> PageError {
    PageError::Node(e.to_string())
}

/// The identity row of `key`.
///
/// # Errors
/// The node is unreachable.
pub async fn identity(client: &Client, key: &NamedKey) -> Result<IdentityRow, PageError> {
    let id = key.account_id();
    let balance = client.balance(id).await.map_err(|e| node_err(&e))?;
    Ok(IdentityRow {
        name: key.name.clone(),
        id: id.to_string(),
        balance: format::amount(balance),
        key: format!("account:{id}"),
        fragment: format!("/fragments/identity/{id}"),
    })
}

fn vault_row(view: &VaultView, names: &BTreeMap<AccountId, String>) -> VaultRow {
    VaultRow {
        owner: view.owner.to_string(),
        owner_name: names.get(&view.owner).cloned().unwrap_or_else(|| format::short_id(&view.owner)),
        vault_id: view.vault_id,
        token: view.token_id.clone(),
        balance: format::amount(view.balance.0),
        allocated: format::amount(view.total_allocated.0),
        unallocated: format::amount(view.unallocated.0),
        streams: view.next_stream_id,
    }
}

/// The vaults of `owner`.
///
/// # Errors
/// The node is unreachable.
pub async fn vaults(
    client: &Client,
    owner: AccountId,
    names: &BTreeMap<AccountId, String>,
) -> Result<Vec<VaultRow>, PageError> {
    let mut views = client.list_vaults(owner).await.map_err(|e| node_err(&e))?;
    views.sort_by_key(|v| v.vault_id);
    Ok(views.iter().map(|v| vault_row(v, names)).collect())
}

/// Streams by owner or by provider, sorted by vault and stream id.
///
/// # Errors
/// The node is unreachable.
pub async fn streams(
    client: &Client,
    filter: StreamFilter,
    names: &BTreeMap<AccountId, String>,
) -> Result<Vec<StreamRow>, PageError> {
    let mut views = client.list_streams(filter).await.map_err(|e| node_err(&e))?;
    views.sort_by_key(|v| (v.owner, v.vault_id, v.stream_id));
    Ok(views.iter().take(STREAMS_PER_TABLE_MAX).map(|v| StreamRow::from_view(v, names)).collect())
}

/// One stream's view, or a "not found" page naming what exists.
///
/// # Errors
/// Unknown stream or unreachable node.
pub async fn stream_view(
    client: &Client,
    owner: AccountId,
    vault_id: u64,
    stream_id: u64,
) -> Result<StreamView, PageError> {
    match client.stream(owner, vault_id, stream_id).await {
        Ok(Some(view)) => Ok(view),
        Ok(None) => Err(PageError::NotFound(format!(
            "there is no stream {stream_id} in vault {vault_id} of {owner}; the overview lists the streams that exist"
        ))),
        Err(e) => Err(node_err(&e)),
    }
}
