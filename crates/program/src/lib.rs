//! The LIP-155 payment-streams program.
//!
//! Pure logic in LEZ's program shape: [`PaymentStreamsProgram::execute`] takes pre-states and
//! instruction words (RISC Zero serde, see `instruction`) and returns post-states, claims, chained calls and typed events, or a
//! numbered [`StreamError`]. No I/O, no clock reads: time comes from the clock account the caller
//! passes. Every instruction validates everything before it computes its outputs, and returns an
//! error instead of partial output, so a failed instruction leaves state untouched.

#![deny(clippy::arithmetic_side_effects, clippy::indexing_slicing)]

pub mod accounts;
pub mod client;
pub mod error;
pub mod event;
pub mod fold;
pub mod instruction;
mod instructions;
pub mod pda;
pub mod receipt;
pub mod state;

use paystreams_lez_core::{
    AccountPostState, ChainedCall, ProgramError, ProgramId, ProgramInput, ProgramOutput, program::Program,
};

pub use error::StreamError;
pub use event::Event;
pub use instruction::{ExtensionSettings, INSTRUCTION_MAX_WORDS, Instruction, NotInReference};

/// The payment-streams program's id on this implementation's chain. On LEZ proper it is the
/// deployed guest's image id; every address helper takes the id as an argument.
#[must_use]
pub fn payment_streams_program_id() -> ProgramId {
    ProgramId::from_name("payment_streams")
}

/// The program, with the id it runs under.
#[derive(Clone, Copy, Debug)]
pub struct PaymentStreamsProgram {
    id: ProgramId,
}

impl PaymentStreamsProgram {
    #[must_use]
    pub const fn new(id: ProgramId) -> Self {
        Self { id }
    }
}

impl Default for PaymentStreamsProgram {
    fn default() -> Self {
        Self::new(payment_streams_program_id())
    }
}

/// What an instruction handler produces.
#[derive(Default)]
pub(crate) struct Effects {
    pub post_states: Vec<AccountPostState>,
    pub chained_calls: Vec<ChainedCall>,
    pub events: Vec<Event>,
}

impl PaymentStreamsProgram {
    /// Runs one instruction and returns typed effects.
    ///
    /// # Errors
    /// Any [`StreamError`]; nothing is produced then.
    pub fn process(&self, input: ProgramInput<'_>) -> Result<ProgramOutput, StreamError> {
        if input.instruction_data.len() > INSTRUCTION_MAX_WORDS {
            return Err(StreamError::InvalidInstruction);
        }
        let instruction =
            Instruction::from_words(input.instruction_data).map_err(|_| StreamError::InvalidInstruction)?;
        let effects = instructions::dispatch(&self.id, instruction, input.pre_states)?;
        Ok(ProgramOutput {
            post_states: effects.post_states,
            chained_calls: effects.chained_calls,
            events: effects.events.iter().map(|e| borsh::to_vec(e).unwrap_or_default()).collect(),
        })
    }
}

impl Program for PaymentStreamsProgram {
    fn id(&self) -> ProgramId {
        self.id
    }

    fn name(&self) -> &'static str {
        "payment_streams"
    }

    fn execute(&self, input: ProgramInput<'_>) -> Result<ProgramOutput, ProgramError> {
        self.process(input).map_err(ProgramError::from)
    }
}
