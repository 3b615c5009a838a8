//! The clock program (LEZ `clock`): rewrites the three clock accounts once per block.
//!
//! Instruction: LEZ's `Timestamp = u64`, the block timestamp in Unix milliseconds as two RISC
//! Zero serde words (low, then high). Accounts: exactly
//! [`CLOCK_ACCOUNT_IDS`] in order, all owned by this program. With
//! `current = CLOCK_01.block_id + 1` it writes `{current, timestamp}` into CLOCK_01 always,
//! CLOCK_10 when `current % 10 == 0` and CLOCK_50 when `current % 50 == 0`, so programs can read
//! recent time at three granularities. Only the runtime's clock update runs it; the runtime
//! refuses user transactions that call it, and the program itself refuses chained calls.

use borsh::BorshDeserialize;
use paystreams_lez_core::{
    Account, AccountPostState, ProgramError, ProgramId, ProgramInput, ProgramOutput,
    clock::{CLOCK_ACCOUNT_IDS, CLOCK_CADENCES, ClockAccountData, clock_program_id},
    program::Program,
    risc0_words::from_words,
};

use super::program_errors;

program_errors! {
    /// Clock program failures (4xxx).
    pub enum ClockError {
        /// The instruction is not a Borsh u64 timestamp.
        InvalidInstruction = 4001,
        /// Expected exactly the three clock accounts, in order, owned by the clock program.
        InvalidAccounts = 4002,
        /// A clock account's data is not a 16-byte clock record.
        InvalidClockData = 4003,
        /// The timestamp is earlier than the clock's current timestamp.
        TimestampRegression = 4004,
        /// The block counter would overflow.
        BlockIdOverflow = 4005,
        /// Only the runtime may run the clock program; it cannot be a chained call.
        CalledByProgram = 4006,
    }
}

/// The program.
#[derive(Clone, Copy, Debug)]
pub struct ClockProgram {
    id: ProgramId,
}

impl ClockProgram {
    /// The program under `id` (a LEZ release's id for it).
    #[must_use]
    pub const fn with_id(id: ProgramId) -> Self {
        Self { id }
    }
}

impl Default for ClockProgram {
    fn default() -> Self {
        Self { id: clock_program_id() }
    }
}

impl Program for ClockProgram {
    fn id(&self) -> ProgramId {
        self.id
    }

    fn name(&self) -> &'static str {
        "clock"
    }

    fn execute(&self, input: ProgramInput<'_>) -> Result<ProgramOutput, ProgramError> {
        if let Some(caller) = input.caller_program_id {
            return Err(ClockError::CalledByProgram.with(caller));
        }
        let timestamp_ms = from_words::<u64>(input.instruction_data).map_err(|_| ClockError::InvalidInstruction)?;
        let ids: Vec<_> = input.pre_states.iter().map(|a| a.account_id).collect();
        if ids != CLOCK_ACCOUNT_IDS || input.pre_states.iter().any(|a| a.account.program_owner != self.id) {
            return Err(ClockError::InvalidAccounts.into());
        }
        let mut records = Vec::with_capacity(CLOCK_ACCOUNT_IDS.len());
        for account in &input.pre_states {
            let record = ClockAccountData::try_from_slice(&account.account.data)
                .map_err(|_| ClockError::InvalidClockData.with(account.account_id))?;
            records.push(record);
        }
        let previous = records.first().copied().unwrap_or_default();
        if timestamp_ms < previous.timestamp_ms {
            return Err(
                ClockError::TimestampRegression.with(format_args!("{timestamp_ms} ms < {} ms", previous.timestamp_ms))
            );
        }
        let current = previous.block_id.checked_add(1).ok_or(ClockError::BlockIdOverflow)?;
        let update = borsh::to_vec(&ClockAccountData { block_id: current, timestamp_ms }).unwrap_or_default();
        let post_states = input
            .pre_states
            .into_iter()
            .zip(CLOCK_CADENCES)
            .map(|(pre, cadence)| {
                let due = current.checked_rem(cadence) == Some(0);
                let account = if due { Account { data: update.clone(), ..pre.account } } else { pre.account };
                AccountPostState::new(account)
            })
            .collect();
        Ok(ProgramOutput { post_states, chained_calls: vec![], events: vec![] })
    }
}
