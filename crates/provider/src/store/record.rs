//! The byte encodings of stored values and keys: the session record, the stream binding, the
//! attempt times and the composite keys.

use borsh::BorshDeserialize;
use paystreams_wire::varint;

use super::{StoreError, corrupt};
use crate::session::{AcceptedParams, EndReason, PinnedPolicy, Session, SessionId, SessionState, StreamKey, VaultKey};

/// First byte of a layout-2 session value.
const SESSION_RECORD_V2: u8 = 2;

/// A session's [`Table::Sessions`](super::Table::Sessions) value: [`SESSION_RECORD_V2`], then
/// the fields of [`Session`] after its id (the key), in declaration order: byte arrays as they
/// are, integers as LEB128 varints ([`varint`]; most are small: rates, stream ids, times), the
/// service id as a varint length and UTF-8, `bool` and enum tags as one byte, an `Option` as a
/// 0/1 byte then the value.
#[must_use]
pub fn encode_session(session: &Session) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(224));
    w.0.push(SESSION_RECORD_V2);
    w.bytes(&session.vault.owner);
    w.varint(session.vault.vault_id);
    w.bytes(&session.owner_public_key);
    w.bytes(&session.token_id);
    let params = &session.params;
    w.varint(u64::try_from(params.service_id.len()).unwrap_or(u64::MAX));
    w.bytes(params.service_id.as_bytes());
    for v in [params.rate, params.allocation, params.create_stream_deadline] {
        w.varint(v);
    }
    let policy = &session.policy;
    for v in
        [policy.max_create_stream_deadline_delay, policy.first_response_cap, policy.min_rate, policy.min_allocation]
    {
        w.varint(v);
    }
    w.0.push(u8::from(policy.deferred_first_proof));
    w.bytes(&session.session_key);
    w.varint(session.accepted_at);
    w.varint(session.predicted_stream_id);
    match session.state {
        SessionState::Pending => w.0.push(0),
        SessionState::Bound { stream_id } => {
            w.0.push(1);
            w.varint(stream_id);
        }
        SessionState::Ended { reason, at } => {
            w.0.push(2);
            w.0.push(match reason {
                EndReason::DeadlineMissed => 0,
                EndReason::VaultDrained => 1,
                EndReason::StreamClosed => 2,
                EndReason::FirstResponseTooLarge => 3,
                EndReason::Abuse => 4,
            });
            w.varint(at);
        }
    }
    match session.matching_stream {
        None => w.0.push(0),
        Some((stream_id, at)) => {
            w.0.push(1);
            w.varint(stream_id);
            w.varint(at);
        }
    }
    w.varint(session.suspended_until);
    w.0
}

/// Decodes a [`Table::Sessions`](super::Table::Sessions) value stored under `id` ([`encode_session`]); every byte
/// must be used and every varint be in its shortest form.
///
/// # Errors
/// [`StoreError::Corrupt`] for an unknown version, a malformed field or trailing bytes.
pub fn decode_session(id: SessionId, bytes: &[u8]) -> Result<Session, StoreError> {
    let mut r = Reader(bytes);
    let version = r.byte()?;
    if version != SESSION_RECORD_V2 {
        return Err(corrupt("session", format!("record version {version}, expected {SESSION_RECORD_V2}")));
    }
    let vault = VaultKey { owner: r.array()?, vault_id: r.varint()? };
    let owner_public_key = r.array()?;
    let token_id = r.array()?;
    let service_id = r.string()?;
    let params =
        AcceptedParams { service_id, rate: r.varint()?, allocation: r.varint()?, create_stream_deadline: r.varint()? };
    let policy = PinnedPolicy {
        max_create_stream_deadline_delay: r.varint()?,
        first_response_cap: r.varint()?,
        min_rate: r.varint()?,
        min_allocation: r.varint()?,
        deferred_first_proof: r.bool()?,
    };
    let session_key = r.array()?;
    let accepted_at = r.varint()?;
    let predicted_stream_id = r.varint()?;
    let state = match r.byte()? {
        0 => SessionState::Pending,
        1 => SessionState::Bound { stream_id: r.varint()? },
        2 => {
            let reason = match r.byte()? {
                0 => EndReason::DeadlineMissed,
                1 => EndReason::VaultDrained,
                2 => EndReason::StreamClosed,
                3 => EndReason::FirstResponseTooLarge,
                4 => EndReason::Abuse,
                other => return Err(corrupt("session", format!("end reason {other}"))),
            };
            SessionState::Ended { reason, at: r.varint()? }
        }
        other => return Err(corrupt("session", format!("state tag {other}"))),
    };
    let matching_stream = match r.byte()? {
        0 => None,
        1 => Some((r.varint()?, r.varint()?)),
        other => return Err(corrupt("session", format!("option tag {other}"))),
    };
    let suspended_until = r.varint()?;
    if !r.0.is_empty() {
        return Err(corrupt("session", format!("{} trailing bytes", r.0.len())));
    }
    Ok(Session {
        id,
        vault,
        owner_public_key,
        token_id,
        params,
        policy,
        session_key,
        accepted_at,
        predicted_stream_id,
        state,
        matching_stream,
        suspended_until,
    })
}

struct Writer(Vec<u8>);

impl Writer {
    fn bytes(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }

    fn varint(&mut self, value: u64) {
        varint::encode(value, &mut self.0);
    }
}

/// Reads a session record; every error is [`StoreError::Corrupt`].
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], StoreError> {
        if n > self.0.len() {
            return Err(corrupt("session", format!("truncated: {n} bytes wanted, {} left", self.0.len())));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, StoreError> {
        Ok(self.take(1)?.first().copied().unwrap_or_default())
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], StoreError> {
        let bytes = self.take(N)?;
        bytes.try_into().map_err(|_| corrupt("session", "array"))
    }

    fn bool(&mut self) -> Result<bool, StoreError> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(corrupt("session", format!("bool byte {other}"))),
        }
    }

    /// A varint in its shortest form.
    fn varint(&mut self) -> Result<u64, StoreError> {
        let (value, rest) = varint::decode_canonical(self.0).map_err(|e| corrupt("session", e))?;
        self.0 = rest;
        Ok(value)
    }

    fn string(&mut self) -> Result<String, StoreError> {
        let len = usize::try_from(self.varint()?).map_err(|_| corrupt("session", "string length"))?;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|e| corrupt("session", e))
    }
}

/// A [`Table::Bound`](super::Table::Bound) value: the session bound to the stream and the token
/// of funds that may be unclaimed. Stored as the id (32 bytes; layout 1's value), the id and the
/// token (64), or a zero byte and the token (33: the session was purged, the stream may still
/// owe funds).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) struct BoundEntry {
    pub(super) session: Option<SessionId>,
    pub(super) claimable: Option<[u8; 32]>,
}

impl BoundEntry {
    pub(super) fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let array = |b: Option<&[u8]>| b.and_then(|b| <[u8; 32]>::try_from(b).ok());
        let entry = match bytes.len() {
            32 => Self { session: array(Some(bytes)).map(SessionId), claimable: None },
            64 => Self { session: array(bytes.get(..32)).map(SessionId), claimable: array(bytes.get(32..)) },
            33 if bytes.first() == Some(&0) => Self { session: None, claimable: array(bytes.get(1..)) },
            n => return Err(corrupt("stream binding", format!("{n} bytes"))),
        };
        Ok(entry)
    }

    /// The bytes, or `None` when nothing is left to keep.
    pub(super) fn encode(self) -> Option<Vec<u8>> {
        match (self.session, self.claimable) {
            (Some(id), None) => Some(id.0.to_vec()),
            (Some(id), Some(token)) => Some([id.0, token].concat()),
            (None, Some(token)) => Some([&[0_u8][..], &token].concat()),
            (None, None) => None,
        }
    }
}

pub(super) fn id_from(bytes: &[u8]) -> Result<SessionId, StoreError> {
    let array: [u8; 32] = bytes.try_into().map_err(|_| corrupt("session id", format!("{} bytes", bytes.len())))?;
    Ok(SessionId(array))
}

/// Layout 2's [`Table::Index`](super::Table::Index) key (tests write old layouts with it).
#[cfg(test)]
pub(super) fn index_key(stream_id: u64, id: SessionId) -> Vec<u8> {
    let mut key = stream_id.to_be_bytes().to_vec();
    key.extend(id.0);
    key
}

/// A [`Table::Requesters`](super::Table::Requesters) value: session ids, 32 bytes each.
pub(super) fn decode_ids(bytes: &[u8]) -> Result<Vec<SessionId>, StoreError> {
    if !bytes.len().is_multiple_of(32) {
        return Err(corrupt("requester sessions", format!("{} bytes", bytes.len())));
    }
    bytes.chunks_exact(32).map(id_from).collect()
}

pub(super) fn replay_key(id: SessionId, digest: &[u8; 32]) -> Vec<u8> {
    let mut key = id.0.to_vec();
    key.extend(digest);
    key
}

pub(super) fn decode_attempts(bytes: &[u8]) -> Result<Vec<u64>, StoreError> {
    Vec::<u64>::try_from_slice(bytes).map_err(|e| corrupt("attempts", e))
}

pub(super) fn stream_key_from(bytes: &[u8]) -> Result<StreamKey, StoreError> {
    let corrupt = || corrupt("stream key", format!("{} bytes", bytes.len()));
    if bytes.len() != 48 {
        return Err(corrupt());
    }
    let owner: [u8; 32] = bytes.get(..32).and_then(|b| b.try_into().ok()).ok_or_else(corrupt)?;
    let vault_id = bytes.get(32..40).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes).ok_or_else(corrupt)?;
    let stream_id = bytes.get(40..48).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes).ok_or_else(corrupt)?;
    Ok(StreamKey { vault: VaultKey { owner, vault_id }, stream_id })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::suite::session;

    #[test]
    fn session_records_round_trip_at_the_extremes() {
        let reasons = [
            EndReason::DeadlineMissed,
            EndReason::VaultDrained,
            EndReason::StreamClosed,
            EndReason::FirstResponseTooLarge,
            EndReason::Abuse,
        ];
        let states = [SessionState::Pending, SessionState::Bound { stream_id: u64::MAX }]
            .into_iter()
            .chain(reasons.map(|reason| SessionState::Ended { reason, at: 1 << 63 }));
        for (i, state) in states.enumerate() {
            let mut s = session(u8::try_from(i).expect("small"), u64::MAX, u64::MAX);
            s.state = state;
            s.params.service_id = "/vac/waku/store-query/3.0.0 é".repeat(i);
            s.params.rate = 127;
            s.params.allocation = 128;
            s.policy.first_response_cap = u64::MAX - 1;
            s.policy.deferred_first_proof = i % 2 == 0;
            s.accepted_at = 1_800_000_000;
            s.matching_stream = (i % 2 == 1).then_some((0, u64::MAX));
            s.suspended_until = 16_384;
            assert_eq!(decode_session(s.id, &encode_session(&s)).expect("decode"), s);
        }
    }

    #[test]
    fn corrupt_records_give_errors() {
        let s = session(10, 0, 100);
        let good = encode_session(&s);
        assert_eq!(decode_session(s.id, &good).expect("decode"), s);
        let mut trailing = good.clone();
        trailing.push(0);
        let mut version = good.clone();
        *version.first_mut().expect("version") = 1;
        let mut state = good.clone();
        // The state's tag: after the version, the vault (owner, id 0), the two keys, the token,
        // the params ("s", 1, 10, 100), the policy (300, 10, 1, 1, false), the session key and
        // two times (0, 0).
        let tag = 1 + 33 + 32 + 32 + (2 + 3) + (2 + 1 + 1 + 1 + 1) + 32 + 2;
        assert_eq!(state.get(tag), Some(&0), "the pending state's tag");
        *state.get_mut(tag).expect("state tag") = 9;
        // A varint in a longer form than needed (suspended_until, the last field: 0 as 0x80 0x00).
        let mut overlong = good.clone();
        overlong.pop();
        overlong.extend([0x80, 0x00]);
        // Invalid UTF-8 in the service id.
        let mut utf8 = good.clone();
        *utf8.get_mut(1 + 33 + 32 + 32 + 1).expect("service id") = 0xff;
        let truncated = good.split_last().expect("bytes").1;
        for bad in [&[][..], truncated, &trailing, &version, &state, &overlong, &utf8] {
            assert!(matches!(decode_session(s.id, bad), Err(StoreError::Corrupt { what: "session", .. })), "{bad:?}");
        }
        for len in [0, 31, 33, 63, 65] {
            assert!(BoundEntry::decode(&vec![1; len]).is_err(), "{len}");
        }
        let entry = BoundEntry { session: Some(s.id), claimable: Some([5; 32]) };
        assert_eq!(entry.encode().map(|b| BoundEntry::decode(&b).expect("decode")), Some(entry));
        let purged = BoundEntry { session: None, claimable: Some([5; 32]) };
        assert_eq!(purged.encode().map(|b| BoundEntry::decode(&b).expect("decode")), Some(purged));
    }
}
