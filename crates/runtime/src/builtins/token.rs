//! The fungible token program (LEZ `token`): definitions and holdings are accounts it owns, with
//! Borsh [`TokenDefinition`] / [`TokenHolding`] data; balances live in data, not in the native
//! `balance`.
//!
//! Instructions ([`TokenInstruction`]):
//! - `NewFungibleDefinition` `[definition, supply holding]`: both default and authorised; the
//!   holding receives the whole supply; both are claimed.
//! - `InitializeAccount` `[definition, holding]`: the holding is default and authorised and
//!   becomes an empty holding of the definition. Unlike LEZ (TODO #212) the definition must be a
//!   definition owned by this program, so a holding can never name a bogus definition.
//! - `Transfer` `[from, to]`: `from` is an authorised holding; `to` is a holding of the same
//!   definition, or default (it then becomes one, claimed with `Claim::Authorized`, so it must
//!   be authorised too).
//! - `Mint` `[definition, holding]`: the definition is authorised; raises total supply and the
//!   holding's balance (a default holding is created and claimed as in `Transfer`).

use borsh::{BorshDeserialize, BorshSerialize};
use paystreams_lez_core::{
    Account, AccountId, AccountPostState, AccountWithMetadata, Claim, ProgramError, ProgramId, ProgramInput,
    ProgramOutput,
    program::Program,
    risc0_words::from_words,
    token::{TOKEN_NAME_MAX_LEN, TokenDefinition, TokenHolding, TokenInstruction, token_program_id},
};

use super::program_errors;

program_errors! {
    /// Token program failures (3xxx).
    pub enum TokenError {
        /// The instruction is not a token instruction's words.
        InvalidInstruction = 3001,
        /// Wrong number of accounts for this instruction.
        InvalidAccounts = 3002,
        /// An account that must authorise the transaction did not.
        NotAuthorized = 3003,
        /// The account must be default (never used) to be created here.
        AccountNotDefault = 3004,
        /// The token name is longer than 32 bytes.
        NameTooLong = 3005,
        /// The account is not a token definition owned by the token program.
        NotADefinition = 3006,
        /// The account is not a token holding owned by the token program.
        NotAHolding = 3007,
        /// The holdings belong to different token definitions.
        DefinitionMismatch = 3008,
        /// The holding's token balance is smaller than the amount.
        InsufficientBalance = 3009,
        /// A balance or the total supply would overflow.
        SupplyOverflow = 3010,
    }
}

/// What the program emits (Borsh); the runtime turns it into receipt events.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub enum TokenEvent {
    DefinitionCreated { definition_id: AccountId, supply_holding: AccountId, name: String, total_supply: u128 },
    AccountInitialized { definition_id: AccountId, holding: AccountId },
    Transferred { definition_id: AccountId, from: AccountId, to: AccountId, amount: u128 },
    Minted { definition_id: AccountId, to: AccountId, amount: u128 },
}

/// The program.
#[derive(Clone, Copy, Debug)]
pub struct TokenProgram {
    id: ProgramId,
}

impl Default for TokenProgram {
    fn default() -> Self {
        Self { id: token_program_id() }
    }
}

fn encode<T: BorshSerialize>(value: &T) -> Vec<u8> {
    // Writing Borsh into a Vec cannot fail.
    borsh::to_vec(value).unwrap_or_default()
}

fn output(post_states: Vec<AccountPostState>, event: &TokenEvent) -> ProgramOutput {
    ProgramOutput { post_states, chained_calls: vec![], events: vec![encode(event)] }
}

fn require_authorized(account: &AccountWithMetadata) -> Result<(), ProgramError> {
    if account.is_authorized { Ok(()) } else { Err(TokenError::NotAuthorized.with(account.account_id)) }
}

fn require_default(account: &AccountWithMetadata) -> Result<(), ProgramError> {
    if account.account.is_default() { Ok(()) } else { Err(TokenError::AccountNotDefault.with(account.account_id)) }
}

fn accounts<const N: usize>(pre_states: Vec<AccountWithMetadata>) -> Result<[AccountWithMetadata; N], ProgramError> {
    let count = pre_states.len();
    pre_states.try_into().map_err(|_| TokenError::InvalidAccounts.with(format_args!("expected {N}, got {count}")))
}

impl TokenProgram {
    fn definition(&self, account: &AccountWithMetadata) -> Result<(String, u128), ProgramError> {
        if account.account.program_owner != self.id {
            return Err(TokenError::NotADefinition.with(account.account_id));
        }
        match TokenDefinition::try_from_slice(&account.account.data) {
            Ok(TokenDefinition::Fungible { name, total_supply }) => Ok((name, total_supply)),
            Err(_) => Err(TokenError::NotADefinition.with(account.account_id)),
        }
    }

    /// A holding's `(definition, balance)`; a default account reads as `None` (to be created).
    fn holding(&self, account: &AccountWithMetadata) -> Result<Option<(AccountId, u128)>, ProgramError> {
        if account.account.is_default() {
            return Ok(None);
        }
        if account.account.program_owner != self.id {
            return Err(TokenError::NotAHolding.with(account.account_id));
        }
        let holding = TokenHolding::try_from_slice(&account.account.data)
            .map_err(|_| TokenError::NotAHolding.with(account.account_id))?;
        Ok(Some((holding.definition_id(), holding.balance())))
    }

    fn new_definition(
        pre_states: Vec<AccountWithMetadata>,
        name: String,
        total_supply: u128,
    ) -> Result<ProgramOutput, ProgramError> {
        let [definition, holding] = accounts::<2>(pre_states)?;
        if name.len() > TOKEN_NAME_MAX_LEN {
            return Err(TokenError::NameTooLong.with(format_args!("{} bytes", name.len())));
        }
        for account in [&definition, &holding] {
            require_authorized(account)?;
            require_default(account)?;
        }
        let definition_account = Account {
            data: encode(&TokenDefinition::Fungible { name: name.clone(), total_supply }),
            ..definition.account
        };
        let holding_account = Account {
            data: encode(&TokenHolding::Fungible { definition_id: definition.account_id, balance: total_supply }),
            ..holding.account
        };
        Ok(output(
            vec![
                AccountPostState::new_claimed(definition_account, Claim::Authorized),
                AccountPostState::new_claimed(holding_account, Claim::Authorized),
            ],
            &TokenEvent::DefinitionCreated {
                definition_id: definition.account_id,
                supply_holding: holding.account_id,
                name,
                total_supply,
            },
        ))
    }

    fn initialize_account(&self, pre_states: Vec<AccountWithMetadata>) -> Result<ProgramOutput, ProgramError> {
        let [definition, holding] = accounts::<2>(pre_states)?;
        self.definition(&definition)?;
        require_authorized(&holding)?;
        require_default(&holding)?;
        let holding_account = Account {
            data: encode(&TokenHolding::Fungible { definition_id: definition.account_id, balance: 0 }),
            ..holding.account
        };
        Ok(output(
            vec![
                AccountPostState::new(definition.account),
                AccountPostState::new_claimed(holding_account, Claim::Authorized),
            ],
            &TokenEvent::AccountInitialized { definition_id: definition.account_id, holding: holding.account_id },
        ))
    }

    fn transfer(&self, pre_states: Vec<AccountWithMetadata>, amount: u128) -> Result<ProgramOutput, ProgramError> {
        let [from, to] = accounts::<2>(pre_states)?;
        require_authorized(&from)?;
        let (definition_id, from_balance) =
            self.holding(&from)?.ok_or_else(|| TokenError::NotAHolding.with(from.account_id))?;
        let to_balance = match self.holding(&to)? {
            Some((to_definition, balance)) if to_definition == definition_id => balance,
            Some(_) => return Err(TokenError::DefinitionMismatch.with(to.account_id)),
            None => 0,
        };
        let from_balance = from_balance.checked_sub(amount).ok_or_else(|| {
            TokenError::InsufficientBalance.with(format_args!("balance {from_balance}, amount {amount}"))
        })?;
        let to_balance =
            to_balance.checked_add(amount).ok_or_else(|| TokenError::SupplyOverflow.with(to.account_id))?;
        let from_account =
            Account { data: encode(&TokenHolding::Fungible { definition_id, balance: from_balance }), ..from.account };
        let to_account =
            Account { data: encode(&TokenHolding::Fungible { definition_id, balance: to_balance }), ..to.account };
        Ok(output(
            vec![
                AccountPostState::new(from_account),
                AccountPostState::new_claimed_if_default(to_account, Claim::Authorized),
            ],
            &TokenEvent::Transferred { definition_id, from: from.account_id, to: to.account_id, amount },
        ))
    }

    fn mint(&self, pre_states: Vec<AccountWithMetadata>, amount: u128) -> Result<ProgramOutput, ProgramError> {
        let [definition, holding] = accounts::<2>(pre_states)?;
        require_authorized(&definition)?;
        let (name, total_supply) = self.definition(&definition)?;
        let balance = match self.holding(&holding)? {
            Some((holding_definition, balance)) if holding_definition == definition.account_id => balance,
            Some(_) => return Err(TokenError::DefinitionMismatch.with(holding.account_id)),
            None => 0,
        };
        let total_supply =
            total_supply.checked_add(amount).ok_or_else(|| TokenError::SupplyOverflow.with("total supply"))?;
        let balance = balance.checked_add(amount).ok_or_else(|| TokenError::SupplyOverflow.with(holding.account_id))?;
        let definition_account =
            Account { data: encode(&TokenDefinition::Fungible { name, total_supply }), ..definition.account };
        let holding_account = Account {
            data: encode(&TokenHolding::Fungible { definition_id: definition.account_id, balance }),
            ..holding.account
        };
        Ok(output(
            vec![
                AccountPostState::new(definition_account),
                AccountPostState::new_claimed_if_default(holding_account, Claim::Authorized),
            ],
            &TokenEvent::Minted { definition_id: definition.account_id, to: holding.account_id, amount },
        ))
    }
}

impl Program for TokenProgram {
    fn id(&self) -> ProgramId {
        self.id
    }

    fn name(&self) -> &'static str {
        "token"
    }

    fn execute(&self, input: ProgramInput<'_>) -> Result<ProgramOutput, ProgramError> {
        let instruction =
            from_words::<TokenInstruction>(input.instruction_data).map_err(|_| TokenError::InvalidInstruction)?;
        match instruction {
            TokenInstruction::NewFungibleDefinition { name, total_supply } => {
                Self::new_definition(input.pre_states, name, total_supply)
            }
            TokenInstruction::InitializeAccount => self.initialize_account(input.pre_states),
            TokenInstruction::Transfer { amount } => self.transfer(input.pre_states, amount),
            TokenInstruction::Mint { amount } => self.mint(input.pre_states, amount),
        }
    }
}
