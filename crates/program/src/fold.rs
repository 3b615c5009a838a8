//! Lazy accrual: folding a stream to a chain time, and the transitions that build on it.
//!
//! All functions are pure: they take a stream and a time in seconds and return a new stream (or
//! an error, leaving the input untouched).

use crate::{
    error::StreamError,
    state::{StreamConfig, StreamState},
};

/// Why a fold paused an ACTIVE stream.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct AutoPause {
    /// The instant the stream stopped accruing (may be earlier than the fold time).
    pub at: u64,
    /// True for depletion, false for the auto-pause extension's duration running out.
    pub depleted: bool,
}

/// A folded stream and what the fold did.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Folded {
    pub stream: StreamConfig,
    pub auto_paused: Option<AutoPause>,
}

/// Folds `stream` to `now` (seconds).
///
/// Checks the stored invariants first, then rejects any `now` earlier than `accrued_as_of` in
/// every state. A non-ACTIVE stream is returned unchanged. An ACTIVE stream accrues
/// `rate * Δt` capped at its allocation; on depletion it pauses with `accrued_as_of` at the first
/// whole second at which accrued reached allocation; with the auto-pause extension it pauses at
/// `anchor + auto_pause_after` when that comes first.
///
/// # Errors
/// 6014/6008/6007 for corrupt stored state, 6013 when time went backwards, 6005 when the
/// depletion instant does not fit in `u64`.
pub fn fold(stream: &StreamConfig, now: u64) -> Result<Folded, StreamError> {
    stream.validate_invariants()?;
    if now < stream.accrued_as_of {
        return Err(StreamError::TimeRegression);
    }
    let mut next = stream.clone();
    if stream.state != StreamState::Active || now == stream.accrued_as_of {
        // An ACTIVE stream whose auto-pause instant is exactly now is paused below only when time
        // has advanced; at Δt = 0 nothing can have elapsed since the last fold.
        return Ok(Folded { stream: next, auto_paused: None });
    }

    let extensions = stream.extensions_or_default();
    let auto_pause_at = (extensions.auto_pause_after > 0)
        .then(|| extensions.auto_pause_anchor.checked_add(extensions.auto_pause_after))
        .flatten()
        .filter(|at| *at <= now)
        .map(|at| at.max(stream.accrued_as_of));
    let end = auto_pause_at.unwrap_or(now);

    let elapsed = end.checked_sub(stream.accrued_as_of).ok_or(StreamError::TimeRegression)?;
    let unaccrued = stream.unaccrued();
    // rate and elapsed are both u64, so their product always fits in u128.
    let gain = u128::from(stream.rate).checked_mul(u128::from(elapsed)).ok_or(StreamError::ArithmeticOverflow)?;

    if gain >= unaccrued {
        // Depleted: accrued reaches allocation at as_of + ceil(unaccrued / rate).
        let rate = u128::from(stream.rate);
        let seconds = unaccrued.div_ceil(rate);
        let seconds = u64::try_from(seconds).map_err(|_| StreamError::ArithmeticOverflow)?;
        let at = stream.accrued_as_of.checked_add(seconds).ok_or(StreamError::ArithmeticOverflow)?;
        next.accrued = stream.allocation;
        next.state = StreamState::Paused;
        next.accrued_as_of = at;
        return Ok(Folded { stream: next, auto_paused: Some(AutoPause { at, depleted: true }) });
    }

    next.accrued = stream.accrued.checked_add(gain).ok_or(StreamError::ArithmeticOverflow)?;
    next.accrued_as_of = end;
    let auto_paused = auto_pause_at.map(|at| {
        next.state = StreamState::Paused;
        AutoPause { at, depleted: false }
    });
    Ok(Folded { stream: next, auto_paused })
}

/// Makes a (folded, PAUSED or freshly created) stream ACTIVE at `now`: restarts the auto-pause
/// duration and charges the activation fee, moving it from unaccrued to accrued. A stream the fee
/// depletes is paused again at `now`. Returns the fee charged.
///
/// # Errors
/// 6035 when unaccrued is below the activation fee.
pub fn activate(stream: &mut StreamConfig, now: u64) -> Result<u128, StreamError> {
    let mut extensions = stream.extensions;
    let fee = extensions.map_or(0, |e| e.activation_fee);
    let unaccrued = stream.unaccrued();
    if unaccrued < fee {
        return Err(StreamError::ActivationFeeExceedsUnaccrued);
    }
    if let Some(extensions) = extensions.as_mut() {
        extensions.auto_pause_anchor = now;
    }
    stream.extensions = extensions;
    stream.accrued = stream.accrued.checked_add(fee).ok_or(StreamError::ArithmeticOverflow)?;
    stream.accrued_as_of = now;
    stream.state = if stream.unaccrued() == 0 { StreamState::Paused } else { StreamState::Active };
    Ok(fee)
}

/// Restarts the auto-pause duration of an ACTIVE stream (top-up of a running stream).
pub fn restart_auto_pause(stream: &mut StreamConfig, now: u64) {
    if let Some(extensions) = stream.extensions.as_mut() {
        extensions.auto_pause_anchor = now;
    }
}

/// The instant a folded ACTIVE stream will stop accruing if nothing else happens: depletion or
/// auto-pause, whichever is first. `None` for non-ACTIVE streams or when it does not fit in u64.
#[must_use]
pub fn planned_stop(stream: &StreamConfig) -> Option<u64> {
    if stream.state != StreamState::Active || stream.rate == 0 {
        return None;
    }
    let seconds = u64::try_from(stream.unaccrued().div_ceil(u128::from(stream.rate))).ok()?;
    let depletion = stream.accrued_as_of.checked_add(seconds)?;
    let extensions = stream.extensions_or_default();
    let auto_pause = (extensions.auto_pause_after > 0)
        .then(|| extensions.auto_pause_anchor.checked_add(extensions.auto_pause_after))
        .flatten();
    Some(auto_pause.map_or(depletion, |at| at.min(depletion)))
}

#[cfg(test)]
mod tests {
    use paystreams_lez_core::AccountId;

    use super::*;
    use crate::state::{DEFAULT_VERSION, STREAM_VERSION_EXTENDED, StreamExtensions};

    fn stream(accrued: u128, allocation: u128, rate: u64, as_of: u64, state: StreamState) -> StreamConfig {
        StreamConfig {
            version: DEFAULT_VERSION,
            stream_id: 0,
            provider: AccountId([1; 32]),
            rate,
            allocation,
            accrued,
            state,
            accrued_as_of: as_of,
            extensions: None,
        }
    }

    fn active(accrued: u128, allocation: u128, rate: u64, as_of: u64) -> StreamConfig {
        stream(accrued, allocation, rate, as_of, StreamState::Active)
    }

    #[test]
    fn reference_fold_vectors() {
        assert_eq!(fold(&active(0, 1000, 10, 100), 99).err(), Some(StreamError::TimeRegression));
        assert_eq!(fold(&active(500, 100, 10, 100), 100).err(), Some(StreamError::StreamExceedsAllocation));
        assert_eq!(fold(&active(0, 100, 0, 0), 0).err(), Some(StreamError::ZeroStreamRate));
        assert_eq!(fold(&active(0, 0, 10, 0), 0).err(), Some(StreamError::ZeroStreamAllocation));
        let paused = stream(0, 0, 10, 100, StreamState::Paused);
        assert_eq!(fold(&paused, 200).expect("ok").stream, paused);
        let unchanged = active(50, 1000, 10, 100);
        assert_eq!(fold(&unchanged, 100).expect("ok").stream, unchanged);
        let folded = fold(&active(0, 1000, 10, 100), 105).expect("ok");
        assert_eq!(
            (folded.stream.accrued, folded.stream.accrued_as_of, folded.stream.state),
            (50, 105, StreamState::Active)
        );
        let paused = stream(100, 1000, 10, 100, StreamState::Paused);
        assert_eq!(fold(&paused, 200).expect("ok").stream.accrued, 100);
        for t in [50, 100] {
            let folded = fold(&active(0, 100, 10, 0), t).expect("ok");
            assert_eq!(
                (folded.stream.accrued, folded.stream.state, folded.stream.accrued_as_of),
                (100, StreamState::Paused, 10)
            );
            assert_eq!(folded.auto_paused, Some(AutoPause { at: 10, depleted: true }));
        }
    }

    #[test]
    fn depletion_instant_rounds_up() {
        // 95 left at rate 10: accrued reaches allocation during second 10 -> instant 10.
        let folded = fold(&active(5, 100, 10, 0), 1000).expect("ok");
        assert_eq!(folded.stream.accrued_as_of, 10);
        assert_eq!(folded.stream.accrued, 100);
    }

    #[test]
    fn time_regression_is_rejected_in_every_state() {
        for state in [StreamState::Active, StreamState::Paused, StreamState::Closed] {
            assert_eq!(fold(&stream(0, 100, 1, 50, state), 49).err(), Some(StreamError::TimeRegression));
        }
    }

    #[test]
    fn huge_values_do_not_overflow() {
        let folded = fold(&active(0, u128::MAX, u64::MAX, 0), u64::MAX).expect("ok");
        assert_eq!(folded.stream.accrued, u128::from(u64::MAX) * u128::from(u64::MAX));
        assert_eq!(folded.stream.state, StreamState::Active);
    }

    fn extended(extensions: StreamExtensions) -> StreamConfig {
        let mut s = active(0, 1000, 1, 0);
        s.version = STREAM_VERSION_EXTENDED;
        s.extensions = Some(extensions);
        s
    }

    #[test]
    fn auto_pause_stops_accrual_at_the_duration() {
        let s = extended(StreamExtensions { auto_pause_after: 60, ..StreamExtensions::default() });
        let folded = fold(&s, 30).expect("ok");
        assert_eq!((folded.stream.state, folded.stream.accrued), (StreamState::Active, 30));
        let folded = fold(&folded.stream, 500).expect("ok");
        assert_eq!(
            (folded.stream.state, folded.stream.accrued, folded.stream.accrued_as_of),
            (StreamState::Paused, 60, 60)
        );
        assert_eq!(folded.auto_paused, Some(AutoPause { at: 60, depleted: false }));
        // Exactly at the instant it pauses too.
        assert_eq!(fold(&s, 60).expect("ok").stream.state, StreamState::Paused);
    }

    #[test]
    fn depletion_before_auto_pause_wins() {
        let mut s = extended(StreamExtensions { auto_pause_after: 600, ..StreamExtensions::default() });
        s.allocation = 100;
        let folded = fold(&s, 1000).expect("ok");
        assert_eq!(folded.auto_paused, Some(AutoPause { at: 100, depleted: true }));
    }

    #[test]
    fn activation_charges_the_fee_and_restarts_auto_pause() {
        let mut s =
            extended(StreamExtensions { auto_pause_after: 60, activation_fee: 40, ..StreamExtensions::default() });
        s.state = StreamState::Paused;
        assert_eq!(activate(&mut s, 500), Ok(40));
        assert_eq!((s.accrued, s.state, s.accrued_as_of), (40, StreamState::Active, 500));
        assert_eq!(s.extensions.map(|e| e.auto_pause_anchor), Some(500));
        let mut poor = extended(StreamExtensions { activation_fee: 2000, ..StreamExtensions::default() });
        assert_eq!(activate(&mut poor, 0), Err(StreamError::ActivationFeeExceedsUnaccrued));
        let mut exact = extended(StreamExtensions { activation_fee: 1000, ..StreamExtensions::default() });
        assert_eq!(activate(&mut exact, 7), Ok(1000));
        assert_eq!(exact.state, StreamState::Paused);
    }

    #[test]
    fn planned_stop_is_the_earlier_of_depletion_and_auto_pause() {
        assert_eq!(planned_stop(&active(0, 100, 10, 5)), Some(15));
        let s =
            extended(StreamExtensions { auto_pause_after: 60, auto_pause_anchor: 0, ..StreamExtensions::default() });
        assert_eq!(planned_stop(&s), Some(60));
        assert_eq!(planned_stop(&stream(0, 100, 10, 5, StreamState::Paused)), None);
    }
}
