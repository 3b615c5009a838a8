//! PauseStream, ResumeStream and TopUpStream: owner-signed stream operations.

use paystreams_lez_core::{AccountWithMetadata, ProgramId};

use crate::{
    Effects,
    error::StreamError,
    event::Event,
    fold::{activate, restart_auto_pause},
    instructions::{OwnerStreamContext, fold_with_events},
    state::StreamState,
};

/// PauseStream: stop accrual on a stream that is ACTIVE after folding.
pub(crate) fn pause(
    program_id: &ProgramId,
    pre_states: Vec<AccountWithMetadata>,
    vault_id: u64,
    stream_id: u64,
) -> Result<Effects, StreamError> {
    let context = OwnerStreamContext::load(program_id, pre_states, vault_id, stream_id)?;
    let mut effects = Effects::default();
    let stream_ref = context.stream_ref();
    let mut stream = fold_with_events(&context.stream, context.now, stream_ref, &mut effects)?;
    if stream.state != StreamState::Active {
        return Err(StreamError::StreamNotActive);
    }
    stream.state = StreamState::Paused;
    effects.events.push(Event::StreamPaused { stream: stream_ref, at: context.now });
    context.finish(None, &stream, &mut effects);
    Ok(effects)
}

/// ResumeStream: restart accrual on a non-depleted PAUSED stream (charging the activation fee).
pub(crate) fn resume(
    program_id: &ProgramId,
    pre_states: Vec<AccountWithMetadata>,
    vault_id: u64,
    stream_id: u64,
) -> Result<Effects, StreamError> {
    let context = OwnerStreamContext::load(program_id, pre_states, vault_id, stream_id)?;
    let mut effects = Effects::default();
    let stream_ref = context.stream_ref();
    let mut stream = fold_with_events(&context.stream, context.now, stream_ref, &mut effects)?;
    if stream.state != StreamState::Paused {
        return Err(StreamError::StreamNotPaused);
    }
    if stream.unaccrued() == 0 {
        return Err(StreamError::ResumeZeroUnaccrued);
    }
    let fee = activate(&mut stream, context.now)?;
    effects.events.push(Event::StreamResumed { stream: stream_ref, at: context.now });
    if fee > 0 {
        effects.events.push(Event::ActivationFeeCharged { stream: stream_ref, fee, at: context.now });
    }
    if stream.state == StreamState::Paused {
        effects.events.push(Event::StreamAutoPaused { stream: stream_ref, at: context.now, depleted: true });
    }
    context.finish(None, &stream, &mut effects);
    Ok(effects)
}

/// TopUpStream: raise the allocation from unallocated funds and leave the stream ACTIVE.
pub(crate) fn top_up(
    program_id: &ProgramId,
    pre_states: Vec<AccountWithMetadata>,
    vault_id: u64,
    stream_id: u64,
    amount: u128,
) -> Result<Effects, StreamError> {
    let context = OwnerStreamContext::load(program_id, pre_states, vault_id, stream_id)?;
    let mut effects = Effects::default();
    let stream_ref = context.stream_ref();
    let mut stream = fold_with_events(&context.stream, context.now, stream_ref, &mut effects)?;
    if stream.state == StreamState::Closed {
        return Err(StreamError::StreamClosed);
    }
    if amount == 0 {
        return Err(StreamError::ZeroTopUpAmount);
    }
    if amount > context.vault.unallocated() {
        return Err(StreamError::AllocationExceedsUnallocated);
    }
    let mut vault_config = context.vault.config.clone();
    vault_config.total_allocated =
        vault_config.total_allocated.checked_add(amount).ok_or(StreamError::TotalAllocatedOverflow)?;
    stream.allocation = stream.allocation.checked_add(amount).ok_or(StreamError::ArithmeticOverflow)?;
    let fee = if stream.state == StreamState::Paused {
        activate(&mut stream, context.now)?
    } else {
        restart_auto_pause(&mut stream, context.now);
        0
    };
    effects.events.push(Event::StreamToppedUp {
        stream: stream_ref,
        amount,
        allocation: stream.allocation,
        at: context.now,
    });
    if fee > 0 {
        effects.events.push(Event::ActivationFeeCharged { stream: stream_ref, fee, at: context.now });
    }
    context.finish(Some(&vault_config), &stream, &mut effects);
    Ok(effects)
}
