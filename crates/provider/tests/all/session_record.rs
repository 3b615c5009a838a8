//! The stored session record (store layout 2) is a canonical encoding: any session round-trips,
//! arbitrary or corrupted bytes give an error and never a panic, and whatever decodes
//! re-encodes to exactly the bytes it came from (so one session has one stored form).

use paystreams_provider::{
    EndReason, Session, SessionId, SessionState, VaultKey,
    session::{AcceptedParams, PinnedPolicy},
    store::{decode_session, encode_session},
};
use proptest::prelude::*;

fn state() -> impl Strategy<Value = SessionState> {
    let reason = prop_oneof![
        Just(EndReason::DeadlineMissed),
        Just(EndReason::VaultDrained),
        Just(EndReason::StreamClosed),
        Just(EndReason::FirstResponseTooLarge),
        Just(EndReason::Abuse),
    ];
    prop_oneof![
        Just(SessionState::Pending),
        any::<u64>().prop_map(|stream_id| SessionState::Bound { stream_id }),
        (reason, any::<u64>()).prop_map(|(reason, at)| SessionState::Ended { reason, at }),
    ]
}

fn session() -> impl Strategy<Value = Session> {
    (
        (any::<[u8; 32]>(), any::<[u8; 32]>(), any::<u64>(), any::<[u8; 32]>(), any::<[u8; 32]>()),
        ("[a-z/0-9.]{0,40}", any::<u64>(), any::<u64>(), any::<u64>()),
        (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>(), any::<bool>()),
        (any::<[u8; 32]>(), any::<u64>(), any::<u64>(), state(), any::<Option<(u64, u64)>>(), any::<u64>()),
    )
        .prop_map(|(ids, params, policy, rest)| Session {
            id: SessionId(ids.0),
            vault: VaultKey { owner: ids.1, vault_id: ids.2 },
            owner_public_key: ids.3,
            token_id: ids.4,
            params: AcceptedParams {
                service_id: params.0,
                rate: params.1,
                allocation: params.2,
                create_stream_deadline: params.3,
            },
            policy: PinnedPolicy {
                max_create_stream_deadline_delay: policy.0,
                first_response_cap: policy.1,
                min_rate: policy.2,
                min_allocation: policy.3,
                deferred_first_proof: policy.4,
            },
            session_key: rest.0,
            accepted_at: rest.1,
            predicted_stream_id: rest.2,
            state: rest.3,
            matching_stream: rest.4,
            suspended_until: rest.5,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_session_round_trips(s in session()) {
        let bytes = encode_session(&s);
        prop_assert_eq!(decode_session(s.id, &bytes).expect("a record just encoded"), s);
    }

    #[test]
    fn arbitrary_bytes_decode_canonically_or_fail(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(decoded) = decode_session(SessionId([7; 32]), &bytes) {
            prop_assert_eq!(encode_session(&decoded), bytes);
        }
    }

    #[test]
    fn corrupted_records_decode_canonically_or_fail(
        s in session(),
        at in any::<prop::sample::Index>(),
        flip in 1_u8..=255,
        cut in any::<prop::sample::Index>(),
        extra in any::<u8>(),
    ) {
        let bytes = encode_session(&s);
        let mut flipped = bytes.clone();
        flipped[at.index(bytes.len())] ^= flip;
        let truncated = bytes[..cut.index(bytes.len())].to_vec();
        let mut longer = bytes.clone();
        longer.push(extra);
        prop_assert!(decode_session(s.id, &truncated).is_err(), "a truncated record must not decode");
        prop_assert!(decode_session(s.id, &longer).is_err(), "trailing bytes must not decode");
        if let Ok(decoded) = decode_session(s.id, &flipped) {
            prop_assert_eq!(encode_session(&decoded), flipped);
        }
    }
}
