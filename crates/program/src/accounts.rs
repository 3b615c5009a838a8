//! Shared account loading and validation. Structural checks (account count, PDAs, signers)
//! come first, then the reference's order: vault decode, token, versions, vault id, owner.

use paystreams_lez_core::{
    Account, AccountId, AccountWithMetadata, ProgramId,
    clock::{ClockAccountData, is_clock_account},
    token::{TokenDefinition, TokenHolding},
};

use crate::{
    error::StreamError,
    pda,
    state::{DEFAULT_VERSION, STREAM_VERSION_EXTENDED, StreamConfig, VaultConfig, VaultHolding, decode},
};

/// Takes exactly `N` accounts.
///
/// # Errors
/// 6030 on any other count.
pub(crate) fn exact<const N: usize>(
    pre_states: Vec<AccountWithMetadata>,
) -> Result<[AccountWithMetadata; N], StreamError> {
    pre_states.try_into().map_err(|_| StreamError::WrongAccountCount)
}

/// Requires the account to have authorised the transaction.
pub(crate) const fn require_signer(account: &AccountWithMetadata) -> Result<(), StreamError> {
    if account.is_authorized { Ok(()) } else { Err(StreamError::MissingSignature) }
}

/// Requires `account` to sit at `expected`.
pub(crate) fn require_address(account: &AccountWithMetadata, expected: &AccountId) -> Result<(), StreamError> {
    if account.account_id == *expected { Ok(()) } else { Err(StreamError::PdaMismatch) }
}

/// Reads a system clock account; returns the chain time in whole seconds.
pub(crate) fn read_clock(account: &AccountWithMetadata) -> Result<u64, StreamError> {
    if !is_clock_account(&account.account_id) {
        return Err(StreamError::InvalidClockAccount);
    }
    let data: ClockAccountData = decode(&account.account.data).map_err(|_| StreamError::InvalidClockAccount)?;
    Ok(data.timestamp_ms / 1000)
}

/// A validated vault: config, holding and the funds the holding has.
#[derive(Clone, Debug)]
pub(crate) struct Vault {
    pub config: VaultConfig,
    /// Funds in the holding: native balance, or the token holding's balance.
    pub balance: u128,
}

impl Vault {
    /// `balance - total_allocated` (0 if the vault were ever insolvent).
    pub const fn unallocated(&self) -> u128 {
        self.balance.saturating_sub(self.config.total_allocated)
    }
}

/// Loads the vault behind `config` and `holding` for `owner` and `vault_id`.
pub(crate) fn load_vault(
    program_id: &ProgramId,
    config: &AccountWithMetadata,
    holding: &AccountWithMetadata,
    owner: &AccountId,
    vault_id: u64,
) -> Result<Vault, StreamError> {
    require_address(config, &pda::vault_config_id(program_id, owner, vault_id))?;
    if config.account.program_owner != *program_id {
        return Err(StreamError::InvalidAccountData);
    }
    let vault_config: VaultConfig = decode(&config.account.data)?;
    require_address(holding, &pda::vault_holding_id(program_id, &config.account_id, &vault_config.token_id))?;
    let balance = if vault_config.is_native() {
        if holding.account.program_owner != *program_id {
            return Err(StreamError::InvalidAccountData);
        }
        let holding_data: VaultHolding = decode(&holding.account.data)?;
        if vault_config.version != DEFAULT_VERSION || holding_data.version != vault_config.version {
            return Err(StreamError::VersionMismatch);
        }
        holding.account.balance
    } else {
        let token = token_holding(&holding.account)?;
        if token.definition_id().0 != vault_config.token_id {
            return Err(StreamError::UnsupportedTokenId);
        }
        if vault_config.version != DEFAULT_VERSION {
            return Err(StreamError::VersionMismatch);
        }
        token.balance()
    };
    if vault_config.vault_id != vault_id {
        return Err(StreamError::VaultIdMismatch);
    }
    if vault_config.owner != *owner {
        return Err(StreamError::VaultOwnerMismatch);
    }
    Ok(Vault { config: vault_config, balance })
}

/// Decodes a token holding.
pub(crate) fn token_holding(account: &Account) -> Result<TokenHolding, StreamError> {
    decode(&account.data).map_err(|_| StreamError::TokenHoldingMismatch)
}

/// Decodes a token definition.
pub(crate) fn token_definition(account: &Account) -> Result<TokenDefinition, StreamError> {
    decode(&account.data).map_err(|_| StreamError::UnsupportedTokenId)
}

/// Requires `account` to be a holding of the vault's token (or a fresh account that signed, which
/// the token program will create).
pub(crate) fn require_token_destination(account: &AccountWithMetadata, token_id: &[u8; 32]) -> Result<(), StreamError> {
    if account.account.is_default() {
        return if account.is_authorized { Ok(()) } else { Err(StreamError::DestinationUninitialized) };
    }
    let holding = token_holding(&account.account)?;
    if holding.definition_id().0 == *token_id { Ok(()) } else { Err(StreamError::TokenHoldingMismatch) }
}

/// Loads a stream of a validated vault.
pub(crate) fn load_stream(
    program_id: &ProgramId,
    vault: &Vault,
    config_id: &AccountId,
    stream: &AccountWithMetadata,
    stream_id: u64,
) -> Result<StreamConfig, StreamError> {
    require_address(stream, &pda::stream_config_id(program_id, config_id, stream_id))?;
    if stream_id >= vault.config.next_stream_id {
        return Err(StreamError::StreamIdMismatch);
    }
    if stream.account.program_owner != *program_id {
        return Err(StreamError::InvalidAccountData);
    }
    let config: StreamConfig = decode(&stream.account.data)?;
    if vault.config.version != DEFAULT_VERSION
        || (config.version != DEFAULT_VERSION && config.version != STREAM_VERSION_EXTENDED)
    {
        return Err(StreamError::VersionMismatch);
    }
    if config.stream_id != stream_id {
        return Err(StreamError::StreamIdMismatch);
    }
    Ok(config)
}
