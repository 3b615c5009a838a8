//! Authenticated transfer: the native-token program (LEZ `authenticated_transfer`).
//!
//! Instruction: LEZ's enum as RISC Zero serde words
//! ([`paystreams_lez_core::transfer::TransferInstruction`]).
//! - `Initialize` (`[1]`) on `[account]`: the account must be default and authorised, and is
//!   claimed with [`Claim::Authorized`]. This is how a fresh key becomes able to receive without
//!   signing (`wallet auth-transfer init`).
//! - `Transfer { amount }` (`[0, amount as 4 words]`) on `[sender, recipient]`: the sender must be authorised and owned by this program
//!   (only the owner may debit). A default recipient is claimed with [`Claim::Authorized`], which
//!   the runtime accepts only when the recipient authorised the transaction too.

use borsh::{BorshDeserialize, BorshSerialize};
use paystreams_lez_core::{
    AccountId, AccountPostState, AccountWithMetadata, Claim, ProgramError, ProgramId, ProgramInput, ProgramOutput,
    program::Program,
    risc0_words::from_words,
    transfer::{TransferInstruction, authenticated_transfer_program_id},
};

use super::program_errors;

program_errors! {
    /// Authenticated-transfer failures (2xxx).
    pub enum TransferError {
        /// The instruction is not LEZ's `Transfer { amount }` or `Initialize` words.
        InvalidInstruction = 2001,
        /// Expected [account] (Initialize) or [sender, recipient] (Transfer).
        InvalidAccounts = 2002,
        /// The account to initialise, or the sender, did not authorise the transaction.
        NotAuthorized = 2003,
        /// Only a default (never used) account can be initialised.
        AccountNotDefault = 2004,
        /// The sender is not owned by the authenticated-transfer program; initialise it first.
        SenderNotOwned = 2005,
        /// The sender's balance is smaller than the amount.
        InsufficientBalance = 2006,
        /// The recipient's balance would overflow.
        BalanceOverflow = 2007,
    }
}

/// What the program emits (Borsh); the runtime turns it into receipt events.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub enum NativeEvent {
    Initialized { account: AccountId },
    Transferred { from: AccountId, to: AccountId, amount: u128 },
}

/// The program.
#[derive(Clone, Copy, Debug)]
pub struct AuthenticatedTransferProgram {
    id: ProgramId,
}

impl AuthenticatedTransferProgram {
    /// The program under `id` (a LEZ release's id for it).
    #[must_use]
    pub const fn with_id(id: ProgramId) -> Self {
        Self { id }
    }
}

impl Default for AuthenticatedTransferProgram {
    fn default() -> Self {
        Self { id: authenticated_transfer_program_id() }
    }
}

impl AuthenticatedTransferProgram {
    fn initialize(account: AccountWithMetadata) -> Result<ProgramOutput, ProgramError> {
        if !account.is_authorized {
            return Err(TransferError::NotAuthorized.with(account.account_id));
        }
        if !account.account.is_default() {
            return Err(TransferError::AccountNotDefault.with(account.account_id));
        }
        Ok(ProgramOutput {
            post_states: vec![AccountPostState::new_claimed(account.account, Claim::Authorized)],
            chained_calls: vec![],
            events: vec![encode(&NativeEvent::Initialized { account: account.account_id })],
        })
    }

    fn transfer(
        &self,
        sender: AccountWithMetadata,
        recipient: AccountWithMetadata,
        amount: u128,
    ) -> Result<ProgramOutput, ProgramError> {
        if !sender.is_authorized {
            return Err(TransferError::NotAuthorized.with(sender.account_id));
        }
        if sender.account.program_owner != self.id {
            return Err(TransferError::SenderNotOwned.with(sender.account_id));
        }
        let mut from = sender.account;
        from.balance = from.balance.checked_sub(amount).ok_or_else(|| {
            TransferError::InsufficientBalance.with(format_args!("balance {}, amount {amount}", from.balance))
        })?;
        let mut to = recipient.account;
        to.balance =
            to.balance.checked_add(amount).ok_or_else(|| TransferError::BalanceOverflow.with(recipient.account_id))?;
        Ok(ProgramOutput {
            post_states: vec![
                AccountPostState::new(from),
                AccountPostState::new_claimed_if_default(to, Claim::Authorized),
            ],
            chained_calls: vec![],
            events: vec![encode(&NativeEvent::Transferred {
                from: sender.account_id,
                to: recipient.account_id,
                amount,
            })],
        })
    }
}

fn encode(event: &NativeEvent) -> Vec<u8> {
    // Writing Borsh into a Vec cannot fail.
    borsh::to_vec(event).unwrap_or_default()
}

impl Program for AuthenticatedTransferProgram {
    fn id(&self) -> ProgramId {
        self.id
    }

    fn name(&self) -> &'static str {
        "authenticated_transfer"
    }

    fn execute(&self, input: ProgramInput<'_>) -> Result<ProgramOutput, ProgramError> {
        let instruction =
            from_words::<TransferInstruction>(input.instruction_data).map_err(|_| TransferError::InvalidInstruction)?;
        let mut accounts = input.pre_states.into_iter();
        match (instruction, accounts.next(), accounts.next(), accounts.next()) {
            (TransferInstruction::Initialize, Some(account), None, None) => Self::initialize(account),
            (TransferInstruction::Transfer { amount }, Some(sender), Some(recipient), None) => {
                self.transfer(sender, recipient, amount)
            }
            _ => Err(TransferError::InvalidAccounts.into()),
        }
    }
}
