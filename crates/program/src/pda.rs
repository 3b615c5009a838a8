//! The program's account addresses (reference seeds, LEZ derivation).
//!
//! | account | seeds |
//! |---|---|
//! | vault config | `"vault_config"`, owner id, vault id (u64 LE) |
//! | vault holding | `"vault_holding"`, vault config id, token id (32 raw bytes) |
//! | stream config | `"stream_config"`, vault config id, stream id (u64 LE) |

use paystreams_lez_core::{
    AccountId, PdaSeed, ProgramId,
    pda::{seed_literal, seed_u64},
};

#[must_use]
pub fn vault_config_seed(owner: &AccountId, vault_id: u64) -> PdaSeed {
    PdaSeed::from_parts(&[seed_literal("vault_config"), owner.0, seed_u64(vault_id)])
}

#[must_use]
pub fn vault_holding_seed(vault_config: &AccountId, token_id: &[u8; 32]) -> PdaSeed {
    PdaSeed::from_parts(&[seed_literal("vault_holding"), vault_config.0, *token_id])
}

#[must_use]
pub fn stream_config_seed(vault_config: &AccountId, stream_id: u64) -> PdaSeed {
    PdaSeed::from_parts(&[seed_literal("stream_config"), vault_config.0, seed_u64(stream_id)])
}

#[must_use]
pub fn vault_config_id(program_id: &ProgramId, owner: &AccountId, vault_id: u64) -> AccountId {
    AccountId::for_public_pda(program_id, &vault_config_seed(owner, vault_id))
}

#[must_use]
pub fn vault_holding_id(program_id: &ProgramId, vault_config: &AccountId, token_id: &[u8; 32]) -> AccountId {
    AccountId::for_public_pda(program_id, &vault_holding_seed(vault_config, token_id))
}

#[must_use]
pub fn stream_config_id(program_id: &ProgramId, vault_config: &AccountId, stream_id: u64) -> AccountId {
    AccountId::for_public_pda(program_id, &stream_config_seed(vault_config, stream_id))
}

/// All three addresses of one vault (and optionally one stream).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct VaultAddresses {
    pub vault_config: AccountId,
    pub vault_holding: AccountId,
    pub stream_config: Option<AccountId>,
}

#[must_use]
pub fn derive_addresses(
    program_id: &ProgramId,
    owner: &AccountId,
    vault_id: u64,
    token_id: &[u8; 32],
    stream_id: Option<u64>,
) -> VaultAddresses {
    let vault_config = vault_config_id(program_id, owner, vault_id);
    VaultAddresses {
        vault_config,
        vault_holding: vault_holding_id(program_id, &vault_config, token_id),
        stream_config: stream_id.map(|id| stream_config_id(program_id, &vault_config, id)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The deployed reference guest and a testnet owner: the vault-config and native-holding
    /// addresses match the reference's committed testnet fixture.
    #[test]
    fn reproduces_the_testnet_fixture() {
        let program_id: ProgramId =
            "9d88f2e7498ae25caa3a5d829a3d1ed39f08673ba90987333074b965a81b90f8".parse().expect("hex");
        let owner: AccountId = "DkT97NZPog2attaFURoMUFU5m996QtDnsS53PSnx41oG".parse().expect("b58");
        let addresses = derive_addresses(&program_id, &owner, 0, &[0; 32], Some(0));
        assert_eq!(addresses.vault_config.to_string(), "DxUKrcahxjZ8UCfjD7Jxh8To1y5CA9rHKDdgCsyazyxq");
        assert_eq!(
            hex::encode(addresses.vault_config.0),
            "c082158dea85704657292b84eabbd3e8a99266eae5f6349ac885c8f53b55c47e"
        );
        assert_eq!(addresses.vault_holding.to_string(), "DmjxLquthgKBVJ81D85nWf6hwkiMQUaCkMkodXkiAXbH");
        assert_eq!(
            addresses.stream_config.map(|s| s.to_string()).as_deref(),
            Some("2vEEaqY3b9KDze8aPcFew5BFJRKReWFhSfKidAJbUbSK")
        );
        assert_eq!(
            stream_config_id(&program_id, &addresses.vault_config, 1).to_string(),
            "CPeC9zCaqxZK7qsQ38ZeQS4KCy1sa3JMX9jgVisxkTyT"
        );
    }

    #[test]
    fn token_vault_holding_differs_from_native() {
        let program_id = ProgramId([1; 8]);
        let config = AccountId([2; 32]);
        assert_ne!(vault_holding_id(&program_id, &config, &[0; 32]), vault_holding_id(&program_id, &config, &[1; 32]));
    }
}
