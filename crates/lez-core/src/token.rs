//! The fungible token program's interface: definitions and holdings are accounts whose Borsh data
//! the token program owns; balances live in data, not in the native `balance`.
//!
//! A holding is debited only when the holding account itself is authorised (its key signed, or
//! the calling program authorised it as its PDA), as on LEZ.

use borsh::{BorshDeserialize, BorshSerialize};

use crate::{
    AccountId, ProgramId,
    risc0_words::{FromWords, ToWords, WordReader, WordWriter, WordsError, to_words},
};

/// Longest token name, in bytes.
pub const TOKEN_NAME_MAX_LEN: usize = 32;

/// The token program's id in this implementation.
#[must_use]
pub fn token_program_id() -> ProgramId {
    ProgramId::from_name("token")
}

/// Data of a definition account.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub enum TokenDefinition {
    Fungible { name: String, total_supply: u128 },
}

/// Data of a holding account.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub enum TokenHolding {
    Fungible { definition_id: AccountId, balance: u128 },
}

impl TokenHolding {
    #[must_use]
    pub const fn definition_id(&self) -> AccountId {
        match self {
            Self::Fungible { definition_id, .. } => *definition_id,
        }
    }

    #[must_use]
    pub const fn balance(&self) -> u128 {
        match self {
            Self::Fungible { balance, .. } => *balance,
        }
    }
}

/// Token program instructions, as RISC Zero serde words (this implementation's own encoding of
/// its own enum, not LEZ's token program): word 0 is the variant index in declaration order, then
/// the fields (`String` as a byte length and packed bytes, `u128` as four words).
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum TokenInstruction {
    /// Accounts: `[definition (authorised, default), supply holding (authorised, default)]`.
    /// Creates the definition and a holding with the whole supply.
    NewFungibleDefinition { name: String, total_supply: u128 },
    /// Accounts: `[definition, holding (authorised, default)]`. Creates an empty holding.
    InitializeAccount,
    /// Accounts: `[from holding (authorised), to holding]`. A default `to` is created and must be
    /// authorised.
    Transfer { amount: u128 },
    /// Accounts: `[definition (authorised), holding]`. Raises supply and the holding's balance.
    Mint { amount: u128 },
}

impl TokenInstruction {
    /// The instruction words.
    #[must_use]
    pub fn to_words(&self) -> Vec<u32> {
        to_words(self)
    }
}

impl ToWords for TokenInstruction {
    fn write_words(&self, w: &mut WordWriter) {
        match self {
            Self::NewFungibleDefinition { name, total_supply } => {
                w.variant(0);
                crate::write_words!(w, name, total_supply);
            }
            Self::InitializeAccount => w.variant(1),
            Self::Transfer { amount } => {
                w.variant(2);
                amount.write_words(w);
            }
            Self::Mint { amount } => {
                w.variant(3);
                amount.write_words(w);
            }
        }
    }
}

impl FromWords for TokenInstruction {
    const MIN_WORDS: usize = 1;

    fn read_words(r: &mut WordReader<'_>) -> Result<Self, WordsError> {
        Ok(match r.variant("token instruction", 4)? {
            0 => Self::NewFungibleDefinition { name: String::read_words(r)?, total_supply: u128::read_words(r)? },
            1 => Self::InitializeAccount,
            2 => Self::Transfer { amount: u128::read_words(r)? },
            _ => Self::Mint { amount: u128::read_words(r)? },
        })
    }
}
