//! The fungible token program's interface: definitions and holdings are accounts whose Borsh data
//! the token program owns; balances live in data, not in the native `balance`.
//!
//! A holding is debited only when the holding account itself is authorised (its key signed, or
//! the calling program authorised it as its PDA), as on LEZ.

use borsh::{BorshDeserialize, BorshSerialize};

use crate::{AccountId, ProgramId};

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

/// Token program instructions (Borsh enum).
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
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
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        borsh::to_vec(self).unwrap_or_default()
    }
}
