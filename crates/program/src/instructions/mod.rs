//! One module per instruction.

mod claim;
mod close_stream;
mod create_stream;
mod deposit;
mod initialize_vault;
mod stream_ops;
mod withdraw;

use paystreams_lez_core::{AccountWithMetadata, ProgramId};

use crate::{error::StreamError, instruction::Instruction, Effects};

pub(crate) fn dispatch(
    program_id: &ProgramId,
    instruction: Instruction,
    pre_states: Vec<AccountWithMetadata>,
) -> Result<Effects, StreamError> {
    match instruction {
        Instruction::InitializeVault { vault_id, privacy_tier, token_id } => {
            initialize_vault::process(program_id, pre_states, vault_id, privacy_tier, token_id)
        }
        Instruction::Deposit { vault_id, amount, authenticated_transfer_program_id } => {
            deposit::process(program_id, pre_states, vault_id, amount, authenticated_transfer_program_id)
        }
        Instruction::Withdraw { vault_id, amount } => withdraw::process(program_id, pre_states, vault_id, amount, false),
        Instruction::WithdrawToOwner { vault_id, amount } => {
            withdraw::process(program_id, pre_states, vault_id, amount, true)
        }
        Instruction::CreateStream { vault_id, stream_id, provider, rate, allocation, extensions } => {
            create_stream::process(program_id, pre_states, vault_id, stream_id, provider, rate, allocation, extensions)
        }
        Instruction::PauseStream { vault_id, stream_id } => stream_ops::pause(program_id, pre_states, vault_id, stream_id),
        Instruction::ResumeStream { vault_id, stream_id } => {
            stream_ops::resume(program_id, pre_states, vault_id, stream_id)
        }
        Instruction::TopUpStream { vault_id, stream_id, vault_total_allocated_increase } => {
            stream_ops::top_up(program_id, pre_states, vault_id, stream_id, vault_total_allocated_increase)
        }
        Instruction::CloseStreamByOwner { vault_id, stream_id } => {
            close_stream::by_owner(program_id, pre_states, vault_id, stream_id)
        }
        Instruction::CloseStreamByProvider { vault_id, stream_id, receipt } => {
            close_stream::by_provider(program_id, pre_states, vault_id, stream_id, receipt)
        }
        Instruction::Claim { vault_id, stream_id, receipt } => {
            claim::process(program_id, pre_states, vault_id, stream_id, receipt)
        }
    }
}
