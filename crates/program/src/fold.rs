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
    let gain = u128::from(stream.rate)
        .checked_mul(u128::from(elapsed))
        .ok_or(StreamError::ArithmeticOverflow)?;

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
