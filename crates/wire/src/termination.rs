//! `SessionTermination`: a provider's standalone `ServiceTermination` for one session, pushed to
//! a connected user without waiting for its next request (libp2p protocol
//! `/paystreams/termination/1.0.0`, provider → user; the answer is an empty acknowledgement).
//!
//! ```protobuf
//! message SessionTermination {
//!   bytes session_id = 1;               // 32 bytes: the VaultOwnerAuth digest of the accepted proposal
//!   ServiceTermination termination = 2;
//! }
//! ```
//!
//! The same termination also rides in the session's next response (`EligibilityStatus`), so a
//! user that was not connected when it was sent still learns of it.

use crate::{
    SMALL_MESSAGE_MAX_LEN, ServiceTermination, WireError,
    proto::{Reader, Writer, bytes, fixed},
};

/// Largest encoded `SessionTermination` (a 32-byte id and a small termination).
pub const SESSION_TERMINATION_MAX_LEN: usize = 64 + SMALL_MESSAGE_MAX_LEN;

/// One session's termination, sent standalone.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SessionTermination {
    /// The session: the digest of the accepted proposal's vault-owner authorization.
    pub session_id: [u8; 32],
    pub termination: ServiceTermination,
}

impl SessionTermination {
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        Writer::new().bytes(1, &self.session_id).bytes(2, &self.termination.encode()).finish()
    }

    /// # Errors
    /// Too large, malformed, a missing field, a session id that is not 32 bytes, or an invalid
    /// termination (see [`ServiceTermination::decode`]).
    pub fn decode(input: &[u8]) -> Result<Self, WireError> {
        if input.len() > SESSION_TERMINATION_MAX_LEN {
            return Err(WireError::TooLarge { size: input.len(), max: SESSION_TERMINATION_MAX_LEN });
        }
        let (mut session_id, mut termination) = (None, None);
        let mut reader = Reader::new(input);
        while let Some((number, value)) = reader.next_field()? {
            match number {
                1 => session_id = Some(fixed::<32>(value, "session_termination.session_id")?),
                2 => {
                    termination = Some(ServiceTermination::decode(bytes(value, "session_termination.termination")?)?);
                }
                _ => {}
            }
        }
        Ok(Self {
            session_id: session_id.ok_or(WireError::MissingField("session_termination.session_id"))?,
            termination: termination.ok_or(WireError::MissingField("session_termination.termination"))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TerminationType;

    #[test]
    fn round_trips_and_refuses_bad_input() {
        let message = SessionTermination {
            session_id: [7; 32],
            termination: ServiceTermination { termination_type: TerminationType::Temporary, resume_after: 1_234 },
        };
        let bytes = message.encode();
        assert_eq!(SessionTermination::decode(&bytes), Ok(message));
        // Every truncation fails cleanly.
        for len in 0..bytes.len() {
            assert!(SessionTermination::decode(bytes.get(..len).unwrap_or_default()).is_err(), "prefix {len}");
        }
        // A short session id, a PERMANENT with a resume time, and an oversized input are refused.
        let short = Writer::new().bytes(1, &[1; 31]).bytes(2, &message.termination.encode()).finish();
        assert!(matches!(SessionTermination::decode(&short), Err(WireError::WrongLength { .. })));
        let bad = Writer::new().bytes(1, &[1; 32]).bytes(2, &Writer::new().uint(1, 1).uint(2, 5).finish()).finish();
        assert!(SessionTermination::decode(&bad).is_err());
        let huge = vec![0; SESSION_TERMINATION_MAX_LEN + 1];
        assert!(matches!(SessionTermination::decode(&huge), Err(WireError::TooLarge { .. })));
    }
}
