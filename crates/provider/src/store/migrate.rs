//! The layout version and the conversion of older layouts, run when a store is opened.

use borsh::BorshDeserialize;

use super::{
    Kv, KvTxn, StoreError, Table, corrupt, encode_session,
    logic::{get_bound, put_bound},
    record::{BoundEntry, stream_key_from},
};
use crate::session::{AcceptedParams, PinnedPolicy, Session, SessionId, SessionState, VaultKey};

/// The storage layout this code writes (see the module documentation).
pub const LAYOUT_VERSION: u32 = 3;
/// The [`Table::Meta`] key of the layout version (`u32`, big-endian).
const LAYOUT_KEY: &[u8] = b"layout";

/// Layout 1's `Session` value: the borsh `Session` with the provider id, and a pinned policy
/// repeating the token id.
#[derive(BorshDeserialize)]
struct SessionV1 {
    id: SessionId,
    vault: VaultKey,
    owner_public_key: [u8; 32],
    _provider_id: [u8; 32],
    token_id: [u8; 32],
    params: AcceptedParams,
    policy: PinnedPolicyV1,
    session_key: [u8; 32],
    accepted_at: u64,
    predicted_stream_id: u64,
    state: SessionState,
    matching_stream: Option<(u64, u64)>,
    suspended_until: u64,
}

#[derive(BorshDeserialize)]
struct PinnedPolicyV1 {
    max_create_stream_deadline_delay: u64,
    first_response_cap: u64,
    _token_id: [u8; 32],
    min_rate: u64,
    min_allocation: u64,
    deferred_first_proof: bool,
}

fn decode_session_v1(key: &[u8], bytes: &[u8]) -> Result<Session, StoreError> {
    let v1 = SessionV1::try_from_slice(bytes).map_err(|e| corrupt("layout-1 session", e))?;
    if v1.id.0.as_slice() != key {
        return Err(corrupt("layout-1 session", "the record's id differs from its key"));
    }
    let p = v1.policy;
    Ok(Session {
        id: v1.id,
        vault: v1.vault,
        owner_public_key: v1.owner_public_key,
        token_id: v1.token_id,
        params: v1.params,
        policy: PinnedPolicy {
            max_create_stream_deadline_delay: p.max_create_stream_deadline_delay,
            first_response_cap: p.first_response_cap,
            min_rate: p.min_rate,
            min_allocation: p.min_allocation,
            deferred_first_proof: p.deferred_first_proof,
        },
        session_key: v1.session_key,
        accepted_at: v1.accepted_at,
        predicted_stream_id: v1.predicted_stream_id,
        state: v1.state,
        matching_stream: v1.matching_stream,
        suspended_until: v1.suspended_until,
    })
}

/// The layout version recorded in `kv`: `None` for a fresh store, 1 for a store written before
/// versions were recorded.
fn stored_layout(txn: &mut dyn KvTxn) -> Result<Option<u32>, StoreError> {
    if let Some(bytes) = txn.get(Table::Meta, LAYOUT_KEY)? {
        let array: [u8; 4] =
            bytes.as_slice().try_into().map_err(|_| corrupt("layout version", format!("{} bytes", bytes.len())))?;
        return Ok(Some(u32::from_be_bytes(array)));
    }
    for table in Table::ALL {
        if table != Table::Meta && !txn.scan(table, &[], 1)?.is_empty() {
            return Ok(Some(1));
        }
    }
    Ok(None)
}

/// Brings the store to [`LAYOUT_VERSION`] in one transaction (all or nothing; a store opened
/// by several processes at once is converted once). From layout 1 to 2: every session
/// re-encoded, the used marks of proposals that still have a session dropped, every
/// `Claimable` entry moved into the stream's [`Table::Bound`] entry. From layout 2 to 3: the
/// per-stream-id candidate index ([`Table::Index`]) deleted; sessions accepted before have no
/// requester, so their users' StreamProofs are refused with a request to propose again (their
/// streams stay bound and claimable).
///
/// # Errors
/// Storage failures, corrupt layout-1 data (nothing is changed), or a newer layout.
pub fn migrate(kv: &impl Kv) -> Result<(), StoreError> {
    let current = kv.read(stored_layout)?;
    if current == Some(LAYOUT_VERSION) {
        return Ok(());
    }
    kv.transact(|txn| {
        let from = stored_layout(txn)?;
        match from {
            None | Some(2) => {}
            Some(1) => {
                for (key, value) in txn.scan(Table::Sessions, &[], usize::MAX)? {
                    let session = decode_session_v1(&key, &value)?;
                    txn.put(Table::Sessions, &key, &encode_session(&session))?;
                    if txn.get(Table::Used, &key)?.is_some() {
                        txn.delete(Table::Used, &key)?;
                    }
                }
                for (key, token) in txn.scan(Table::Claimable, &[], usize::MAX)? {
                    let stream = stream_key_from(&key)?;
                    let token: [u8; 32] = token.as_slice().try_into().map_err(|_| corrupt("claimable token", format!("{} bytes", token.len())))?;
                    let mut entry = get_bound(txn, &stream)?.unwrap_or(BoundEntry { session: None, claimable: None });
                    entry.claimable = Some(token);
                    put_bound(txn, &stream, entry)?;
                    txn.delete(Table::Claimable, &key)?;
                }
            }
            Some(LAYOUT_VERSION) => return Ok(()),
            Some(v) => {
                return Err(StoreError::Database(format!(
                    "the session store has layout {v}, newer than this paystreams ({LAYOUT_VERSION}); upgrade paystreams"
                )));
            }
        }
        if matches!(from, Some(1 | 2)) {
            for (key, _) in txn.scan(Table::Index, &[], usize::MAX)? {
                txn.delete(Table::Index, &key)?;
            }
        }
        txn.put(Table::Meta, LAYOUT_KEY, &LAYOUT_VERSION.to_be_bytes())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{
        KvStore, MemoryKv,
        suite::{history, layout1_session, write_layout1},
    };

    #[test]
    fn corrupt_layout_1_data_is_refused_and_left_untouched() {
        let kv = MemoryKv::default();
        write_layout1(&kv);
        let [a, ..] = history();
        let mut bytes = layout1_session(&a);
        bytes.truncate(bytes.len() - 3);
        kv.transact(|t| t.put(Table::Sessions, &a.id.0, &bytes)).expect("corrupt");
        let refused = KvStore::with_kv(kv).expect_err("refused");
        assert!(matches!(refused, StoreError::Corrupt { what: "layout-1 session", .. }), "{refused}");

        // Nothing changed: the failed conversion left layout 1 in place.
        let kv = MemoryKv::default();
        write_layout1(&kv);
        kv.transact(|t| t.put(Table::Claimable, &[1; 47], &[0; 32])).expect("corrupt");
        assert!(matches!(migrate(&kv), Err(StoreError::Corrupt { what: "stream key", .. })));
        assert_eq!(kv.len(Table::Used).expect("len"), 4);
        assert_eq!(kv.len(Table::Claimable).expect("len"), 3);
        assert_eq!(kv.len(Table::Meta).expect("len"), 0);
        let stored = kv.transact(|t| t.get(Table::Sessions, &a.id.0)).expect("read").expect("kept");
        assert_eq!(stored, layout1_session(&a));
    }

    #[test]
    fn a_newer_layout_is_refused() {
        let kv = MemoryKv::default();
        kv.transact(|t| t.put(Table::Meta, LAYOUT_KEY, &(LAYOUT_VERSION + 1).to_be_bytes())).expect("write");
        assert!(KvStore::with_kv(kv).expect_err("refused").to_string().contains("newer than this paystreams"));
    }
}
