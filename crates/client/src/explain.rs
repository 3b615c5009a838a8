//! Turning failure codes into sentences that name the cause and the fix, using chain state.
//!
//! [`explain`] maps a code (runtime 1xxx, authenticated transfer 2xxx, token 3xxx, payment
//! streams 6xxx) plus the attempted [`Operation`] and the [`Facts`] read from the chain into one
//! sentence such as "vault 3 has 120 unallocated, stream needs 200: deposit 80 more or lower
//! --allocation". The code comes from a failed receipt or from the pre-flight run of the same
//! transaction through the runtime ([`crate::preflight::preflight`]), so a refused command and a
//! failed receipt read the same.

use std::collections::BTreeMap;

use paystreams_lez_core::{Account, AccountId, ProgramId, token::TokenHolding, token::token_program_id};
use paystreams_program::{ExtensionSettings, StreamError, client::VaultRef, state::StreamState};
use paystreams_rpc::{StreamView, VaultView};
use paystreams_runtime::{
    TxError,
    builtins::{token::TokenError, transfer::TransferError},
};

/// What a transaction tried to do, in the caller's terms.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Operation {
    /// Authenticated-transfer initialisation of a fresh account.
    InitAccount {
        account: AccountId,
    },
    NativeTransfer {
        from: AccountId,
        to: AccountId,
        amount: u128,
    },
    TokenCreate {
        definition: AccountId,
        holding: AccountId,
        supply: u128,
    },
    TokenMint {
        definition: AccountId,
        to: AccountId,
        amount: u128,
    },
    TokenTransfer {
        from: AccountId,
        to: AccountId,
        amount: u128,
    },
    InitVault {
        vault: VaultRef,
    },
    /// `source` is the owner (native vaults) or the owner's token holding.
    Deposit {
        vault: VaultRef,
        amount: u128,
        source: AccountId,
    },
    Withdraw {
        vault: VaultRef,
        amount: u128,
        to: AccountId,
    },
    CreateStream {
        vault: VaultRef,
        stream_id: u64,
        provider: AccountId,
        rate: u64,
        allocation: u128,
        extensions: ExtensionSettings,
    },
    Pause {
        vault: VaultRef,
        stream_id: u64,
    },
    Resume {
        vault: VaultRef,
        stream_id: u64,
    },
    TopUp {
        vault: VaultRef,
        stream_id: u64,
        amount: u128,
    },
    CloseByOwner {
        vault: VaultRef,
        stream_id: u64,
    },
    CloseByProvider {
        vault: VaultRef,
        stream_id: u64,
        signer: AccountId,
        destination: AccountId,
    },
    Claim {
        vault: VaultRef,
        stream_id: u64,
        signer: AccountId,
        destination: AccountId,
        with_receipt: bool,
    },
    /// Anything else (raw calls).
    Other,
}

impl Operation {
    /// The vault the operation concerns.
    #[must_use]
    pub const fn vault(&self) -> Option<&VaultRef> {
        match self {
            Self::InitVault { vault }
            | Self::Deposit { vault, .. }
            | Self::Withdraw { vault, .. }
            | Self::CreateStream { vault, .. }
            | Self::Pause { vault, .. }
            | Self::Resume { vault, .. }
            | Self::TopUp { vault, .. }
            | Self::CloseByOwner { vault, .. }
            | Self::CloseByProvider { vault, .. }
            | Self::Claim { vault, .. } => Some(vault),
            _ => None,
        }
    }

    /// The stream the operation concerns (for create: the id it will get).
    #[must_use]
    pub const fn stream_id(&self) -> Option<u64> {
        match self {
            Self::CreateStream { stream_id, .. }
            | Self::Pause { stream_id, .. }
            | Self::Resume { stream_id, .. }
            | Self::TopUp { stream_id, .. }
            | Self::CloseByOwner { stream_id, .. }
            | Self::CloseByProvider { stream_id, .. }
            | Self::Claim { stream_id, .. } => Some(*stream_id),
            _ => None,
        }
    }

    /// Plain accounts whose state helps explain a failure.
    #[must_use]
    pub fn accounts(&self) -> Vec<AccountId> {
        match self {
            Self::InitAccount { account } => vec![*account],
            Self::NativeTransfer { from, to, .. } | Self::TokenTransfer { from, to, .. } => vec![*from, *to],
            Self::TokenCreate { definition, holding, .. } => vec![*definition, *holding],
            Self::TokenMint { definition, to, .. } => vec![*definition, *to],
            Self::InitVault { vault } => vec![vault.owner],
            Self::Deposit { vault, source, .. } => vec![vault.owner, *source],
            Self::Withdraw { to, .. } => vec![*to],
            Self::CreateStream { provider, .. } => vec![*provider],
            Self::CloseByProvider { signer, destination, .. } | Self::Claim { signer, destination, .. } => {
                vec![*signer, *destination]
            }
            _ => vec![],
        }
    }
}

/// Who reads an explanation, which decides how a fix is worded: flags and commands at the
/// command line, fields and actions in a web form (the dashboard), where a flag means nothing.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum Audience {
    #[default]
    CommandLine,
    WebForm,
}

impl Audience {
    /// The wording for this audience: `cli` at the command line, `form` in a web form.
    #[must_use]
    pub const fn say<'a>(self, cli: &'a str, form: &'a str) -> &'a str {
        match self {
            Self::CommandLine => cli,
            Self::WebForm => form,
        }
    }
}

/// Chain state read to explain a failed operation.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    pub vault: Option<VaultView>,
    pub stream: Option<StreamView>,
    pub accounts: BTreeMap<AccountId, Account>,
    /// Local names (keystore) for accounts, used in messages.
    pub names: BTreeMap<AccountId, String>,
    /// Who reads the explanation.
    pub audience: Audience,
}

impl Facts {
    fn account(&self, id: &AccountId) -> Account {
        self.accounts.get(id).cloned().unwrap_or_default()
    }

    fn label(&self, id: &AccountId) -> String {
        match self.names.get(id) {
            Some(name) => format!("{name} ({id})"),
            None => id.to_string(),
        }
    }

    fn token_balance(&self, id: &AccountId) -> Option<u128> {
        token_balance(&self.account(id))
    }
}

/// The token balance of a holding account, `None` when it is not a token holding.
#[must_use]
pub fn token_balance(account: &Account) -> Option<u128> {
    if account.program_owner != token_program_id() {
        return None;
    }
    borsh::from_slice::<TokenHolding>(&account.data).ok().map(|h| h.balance())
}

fn state_name(state: StreamState) -> &'static str {
    match state {
        StreamState::Active => "active",
        StreamState::Paused => "paused",
        StreamState::Closed => "closed",
    }
}

fn vault_missing(vault: &VaultRef, facts: &Facts) -> String {
    let how = match facts.audience {
        Audience::CommandLine => format!("with `paystream vault init --owner KEY --vault-id {}`", vault.vault_id),
        Audience::WebForm => format!("with \"Create a vault\" (vault id {})", vault.vault_id),
    };
    format!("vault {} of {} does not exist: create it {how}", vault.vault_id, facts.label(&vault.owner))
}

fn stream_missing(vault: &VaultRef, stream_id: u64, facts: &Facts) -> String {
    match &facts.vault {
        Some(v) => format!(
            "vault {} has no stream {stream_id} (its streams are 0..{}): {}",
            vault.vault_id,
            v.next_stream_id,
            match facts.audience {
                Audience::CommandLine => format!("list them with `paystream stream list --owner {}`", vault.owner),
                Audience::WebForm => "the overview lists them".to_owned(),
            }
        ),
        None => vault_missing(vault, facts),
    }
}

/// A more telling cause than failure `code`, for pre-flight refusals: the program refuses to
/// pause or resume a closed stream with the state check that failed (6016 not active, 6017 not
/// paused), where the cause to name is that the stream is closed for good (6019).
#[must_use]
pub fn root_cause(code: u32, facts: &Facts) -> Option<StreamError> {
    let closed = facts.stream.as_ref().is_some_and(|s| s.state == StreamState::Closed);
    match StreamError::from_code(code) {
        Some(StreamError::StreamNotActive | StreamError::StreamNotPaused) if closed => Some(StreamError::StreamClosed),
        _ => None,
    }
}

/// One sentence naming the cause of failure `code` and the fix, from what was attempted and the
/// chain state now. `message` is the node's own text, used when nothing better is known.
#[must_use]
#[expect(clippy::too_many_lines, reason = "one arm per failure code keeps the table readable")]
pub fn explain(op: &Operation, code: u32, message: &str, facts: &Facts) -> String {
    let a = facts.audience;
    let vault_label = op.vault().map_or_else(String::new, |v| format!("vault {}", v.vault_id));
    let stream_label = op.stream_id().map_or_else(String::new, |s| format!("stream {s}"));
    let unallocated = facts.vault.as_ref().map(|v| v.unallocated.0);
    match (StreamError::from_code(code), op) {
        (Some(StreamError::AllocationExceedsUnallocated), Operation::CreateStream { allocation, .. }) => {
            let have = unallocated.unwrap_or(0);
            format!(
                "{vault_label} has {have} unallocated, stream needs {allocation}: deposit {} more or lower {}",
                allocation.saturating_sub(have),
                a.say("--allocation", "the allocation")
            )
        }
        (Some(StreamError::AllocationExceedsUnallocated), Operation::TopUp { amount, .. }) => {
            let have = unallocated.unwrap_or(0);
            format!(
                "{vault_label} has {have} unallocated, the top-up needs {amount}: deposit {} more or lower {}",
                amount.saturating_sub(have),
                a.say("--amount", "the amount")
            )
        }
        (Some(StreamError::InsufficientFunds), Operation::Withdraw { vault, amount, .. }) => match &facts.vault {
            Some(v) => format!(
                "{vault_label} has {} unallocated (balance {}, {} allocated to streams), withdrawal asks for {amount}: \
                 withdraw at most {} or close streams to release their unaccrued funds",
                v.unallocated.0, v.balance.0, v.total_allocated.0, v.unallocated.0
            ),
            None => vault_missing(vault, facts),
        },
        (Some(StreamError::InsufficientFunds), _) => {
            format!("{vault_label} does not hold enough funds for this payout ({message}); the vault state may be corrupt")
        }
        (Some(StreamError::ZeroClaimAmount), _) => match &facts.stream {
            Some(s) if s.state == StreamState::Active && s.rate > 0 => {
                let next = s.accrued_as_of.saturating_add(1);
                format!(
                    "{stream_label} has nothing accrued yet: it accrues {} per second since {}; the first funds accrue at \
                     chain time {next} (in about {} s), claim after that",
                    s.rate,
                    s.accrued_as_of,
                    next.saturating_sub(s.as_of).max(1)
                )
            }
            Some(s) if s.state == StreamState::Paused && s.unaccrued.0 > 0 => format!(
                "{stream_label} is paused with nothing accrued: nothing accrues until the owner resumes it ({})",
                a.say("`paystream stream resume`", "\"Resume a stream\"")
            ),
            Some(s) => format!(
                "{stream_label} is {} with nothing accrued and nothing left to accrue: there is nothing to claim",
                state_name(s.state)
            ),
            None => format!("{stream_label} has nothing accrued to claim yet"),
        },
        (Some(err @ (StreamError::ClaimUnauthorized | StreamError::CloseUnauthorized)), op) => {
            let verb = if err == StreamError::ClaimUnauthorized { "claim from" } else { "close" };
            let signer = match op {
                Operation::Claim { signer, .. } | Operation::CloseByProvider { signer, .. } => Some(*signer),
                _ => None,
            };
            match (&facts.stream, signer) {
                (Some(s), Some(signer)) => format!(
                    "only the provider {} may {verb} {stream_label}, but {} signed: pass the provider's key",
                    facts.label(&s.provider),
                    facts.label(&signer)
                ),
                (Some(s), None) => {
                    format!("only the provider {} may {verb} {stream_label}: sign with the provider's key", facts.label(&s.provider))
                }
                _ => format!("only the stream's provider may {verb} {stream_label}: sign with the provider's key"),
            }
        }
        (Some(StreamError::ProviderEqualsOwner), _) => {
            let owner = op.vault().map(|v| facts.label(&v.owner)).unwrap_or_default();
            format!(
                "the provider is the vault owner {owner}: a stream pays someone else, {}",
                a.say("pass another --provider", "enter another provider")
            )
        }
        (Some(StreamError::ResumeZeroUnaccrued), _) => {
            let allocation = facts.stream.as_ref().map_or(0, |s| s.allocation.0);
            format!(
                "{stream_label} is depleted (all {allocation} of its allocation accrued), so resuming cannot restart it: \
                 top it up instead ({}), which adds funds and resumes it",
                a.say("`paystream stream top-up --amount N`", "\"Top up a stream\"")
            )
        }
        (Some(StreamError::StreamNotPaused), _) => {
            let state = facts.stream.as_ref().map_or("not paused", |s| state_name(s.state));
            if state == "active" {
                format!("{stream_label} is already active: only a paused stream can be resumed")
            } else {
                format!("{stream_label} is {state}: only a paused stream can be resumed")
            }
        }
        (Some(StreamError::StreamNotActive), _) => match &facts.stream {
            Some(s) if s.state == StreamState::Paused && s.unaccrued.0 == 0 => format!(
                "{stream_label} is already paused: it depleted (all {} accrued); top it up to restart it",
                s.allocation.0
            ),
            Some(s) if s.state == StreamState::Paused => {
                format!("{stream_label} is already paused (since chain time {}): resume it instead", s.accrued_as_of)
            }
            Some(s) => format!("{stream_label} is {}: only an active stream can be paused", state_name(s.state)),
            None => format!("{stream_label} is not active: only an active stream can be paused"),
        },
        (Some(StreamError::StreamClosed), _) => format!(
            "{stream_label} is closed for good; only claiming what already accrued is still possible: \
             create a new stream ({}) to pay this provider again",
            a.say("`paystream stream create`", "\"Create a stream\"")
        ),
        (Some(StreamError::DestinationUninitialized), op) => {
            let destination = match op {
                Operation::Withdraw { to, .. } => Some(*to),
                Operation::Claim { destination, .. } | Operation::CloseByProvider { destination, .. } => Some(*destination),
                _ => None,
            };
            let who = destination.map_or_else(|| "the destination".to_owned(), |d| format!("the destination {}", facts.label(&d)));
            format!(
                "{who} has never been used on chain and a payout cannot create it: initialise the destination first \
                 ({})",
                a.say(
                    "`paystream account init KEY`, or send it funds with `paystream account transfer --to-key KEY`",
                    "its owner initialises it, or sends it funds signed by its own key, with the paystream command line"
                )
            )
        }
        (Some(StreamError::ZeroDepositAmount | StreamError::ZeroWithdrawAmount | StreamError::ZeroTopUpAmount), _) => {
            format!("the amount is zero: {} above 0", a.say("pass --amount", "enter an amount"))
        }
        (Some(StreamError::ZeroStreamRate), _) => {
            format!("the rate is zero: {} of at least 1 per second", a.say("pass --rate", "enter a rate"))
        }
        (Some(StreamError::ZeroStreamAllocation), _) => {
            format!("the allocation is zero: {} above 0", a.say("pass --allocation", "enter an allocation"))
        }
        (Some(StreamError::ActivationFeeExceedsUnaccrued), op) => {
            let fee = match op {
                Operation::CreateStream { extensions, .. } => extensions.activation_fee,
                _ => facts.stream.as_ref().and_then(|s| s.extensions.as_ref()).map_or(0, |e| e.activation_fee.0),
            };
            let unaccrued = match op {
                Operation::CreateStream { allocation, .. } => *allocation,
                _ => facts.stream.as_ref().map_or(0, |s| s.unaccrued.0),
            };
            format!(
                "the activation fee {fee} exceeds the {unaccrued} the stream has left to accrue: raise the allocation \
                 (or top up) by at least {}, or lower {}",
                fee.saturating_sub(unaccrued),
                a.say("--activation-fee", "the activation fee")
            )
        }
        (Some(StreamError::AccountAlreadyInitialized), Operation::InitVault { vault }) => format!(
            "{} already has a vault {}: {}",
            facts.label(&vault.owner),
            vault.vault_id,
            match a {
                Audience::CommandLine =>
                    format!("pick another --vault-id (see `paystream vault list --owner {}`)", vault.owner),
                Audience::WebForm => "enter another vault id (the overview lists the owner's vaults)".to_owned(),
            }
        ),
        (Some(StreamError::AccountAlreadyInitialized), Operation::CreateStream { .. }) => format!(
            "{stream_label} already exists: the next stream id is {}; retry so the client reads it again",
            facts.vault.as_ref().map_or(0, |v| v.next_stream_id)
        ),
        (Some(StreamError::StreamIdMismatch), Operation::CreateStream { stream_id, .. }) => format!(
            "stream id {stream_id} is not the vault's next stream id ({}): another stream was created meanwhile; retry",
            facts.vault.as_ref().map_or(0, |v| v.next_stream_id)
        ),
        (Some(StreamError::StreamIdMismatch), op) => {
            op.vault().map_or_else(|| message.to_owned(), |v| stream_missing(v, op.stream_id().unwrap_or(0), facts))
        }
        (Some(StreamError::PdaMismatch | StreamError::InvalidAccountData), op) if facts.vault.is_none() => {
            op.vault().map_or_else(|| message.to_owned(), |v| vault_missing(v, facts))
        }
        (Some(StreamError::VaultOwnerMismatch), op) => format!(
            "{vault_label} belongs to another owner than {}: sign with the vault owner's key",
            op.vault().map(|v| facts.label(&v.owner)).unwrap_or_default()
        ),
        (Some(StreamError::MissingSignature), _) => {
            "a required signer did not sign: the owner signs vault and stream operations, the provider signs claims and \
             provider closes, and a token holding being debited signs too"
                .to_owned()
        }
        (Some(StreamError::UnsupportedTokenId), _) => {
            a.say(
                "the --token is not a token definition on this chain: create one with `paystream token create` and pass its id",
                "the vault's token is not a token definition on this chain",
            )
            .to_owned()
        }
        (Some(StreamError::TokenHoldingMismatch), _) => {
            "the token holding is for another token than the vault's: pass a holding of the vault's token".to_owned()
        }
        (Some(StreamError::WithdrawToOwnerNotNative), _) => {
            a.say(
                "this is a token vault: withdraw to a token holding (`--to HOLDING_ID`, default: your own holding)",
                "this is a token vault: withdraw to a token holding (the owner's own holding by default)",
            )
            .to_owned()
        }
        (Some(StreamError::ReceiptRequired), _) => {
            let key = facts.stream.as_ref().and_then(|s| s.extensions.as_ref()).and_then(|e| e.receipt_key.clone());
            format!(
                "{stream_label} pays only against delivery receipts signed by key {}: ask the user for a receipt {}",
                key.unwrap_or_else(|| "(unknown)".to_owned()),
                a.say(
                    "(`paystream stream receipt`) and pass it with --receipt",
                    "and claim with it from the paystream command line (the dashboard cannot attach receipts)"
                )
            )
        }
        (Some(StreamError::ReceiptNotExpected), _) => {
            format!(
                "{stream_label} does not use delivery receipts (or this close does not pay out): {}",
                a.say("drop --receipt", "send it without a receipt")
            )
        }
        (Some(StreamError::InvalidReceiptSignature), _) => {
            format!("the receipt's signature does not verify under {stream_label}'s receipt key: have the user sign it with the key committed at creation")
        }
        (Some(StreamError::ReceiptStreamMismatch), _) => {
            format!("the receipt names another stream or program than {stream_label}: get a receipt for this stream")
        }
        (Some(StreamError::ReceiptAcknowledgesNothing), _) => {
            let paid = facts.stream.as_ref().and_then(|s| s.extensions.as_ref()).map_or(0, |e| e.receipt_paid.0);
            format!(
                "the receipt acknowledges nothing beyond the {paid} already paid under receipts: ask the user for a receipt \
                 with an acknowledged total above {paid}"
            )
        }
        (Some(StreamError::InvalidReceiptKey), _) => {
            a.say(
                "--receipt-key is not a valid x-only public key: pass the 32-byte hex public key shown by `paystream keys show`",
                "the receipt key is not a valid x-only public key: use the 32-byte hex public key of the key that signs receipts",
            )
            .to_owned()
        }
        (Some(err), _) => format!("{}: {}", err.name(), err.description()),
        (None, op) => explain_non_program(op, code, message, facts),
    }
}

// The builtin and runtime failures explained by [`explain_non_program`], by the codes their enums
// give them.
const NATIVE_NOT_AUTHORIZED: u32 = TransferError::NotAuthorized.code();
const NATIVE_ACCOUNT_NOT_DEFAULT: u32 = TransferError::AccountNotDefault.code();
const NATIVE_SENDER_NOT_OWNED: u32 = TransferError::SenderNotOwned.code();
const NATIVE_INSUFFICIENT_BALANCE: u32 = TransferError::InsufficientBalance.code();
const TOKEN_NOT_AUTHORIZED: u32 = TokenError::NotAuthorized.code();
const TOKEN_ACCOUNT_NOT_DEFAULT: u32 = TokenError::AccountNotDefault.code();
const TOKEN_NOT_A_HOLDING: u32 = TokenError::NotAHolding.code();
const TOKEN_INSUFFICIENT_BALANCE: u32 = TokenError::InsufficientBalance.code();
/// Any account or program id: the runtime's codes do not depend on the ids a refusal names.
const ANY_ACCOUNT: AccountId = AccountId([0; 32]);
const ANY_PROGRAM: ProgramId = ProgramId([0; 8]);
const INVALID_SIGNATURE: u32 = TxError::InvalidSignature { index: 0, signer: ANY_ACCOUNT }.code();
const NONCE_MISMATCH: u32 = TxError::NonceMismatch { signer: ANY_ACCOUNT, expected: 0, given: 0 }.code();
const UNAUTHORIZED_CLAIM: u32 = TxError::UnauthorizedClaim { program_id: ANY_PROGRAM, account_id: ANY_ACCOUNT }.code();
const UNCLAIMED_DEFAULT_ACCOUNT: u32 = TxError::DefaultAccountModifiedWithoutClaim { account_id: ANY_ACCOUNT }.code();

fn explain_non_program(op: &Operation, code: u32, message: &str, facts: &Facts) -> String {
    let a = facts.audience;
    match (code, op) {
        (NATIVE_INSUFFICIENT_BALANCE, Operation::Deposit { vault, amount, .. }) => {
            let have = facts.account(&vault.owner).balance;
            format!(
                "{} has {have} native balance, the deposit needs {amount}: lower {} or fund the owner with {} more{}",
                facts.label(&vault.owner),
                a.say("--amount", "the amount"),
                amount.saturating_sub(have),
                a.say(" (`paystream account transfer`)", "")
            )
        }
        (NATIVE_INSUFFICIENT_BALANCE, Operation::NativeTransfer { from, amount, .. }) => {
            let have = facts.account(from).balance;
            format!(
                "{} has {have} native balance, the transfer needs {amount}: lower {} or fund it with {} more",
                facts.label(from),
                a.say("--amount", "the amount"),
                amount.saturating_sub(have)
            )
        }
        (NATIVE_SENDER_NOT_OWNED, Operation::NativeTransfer { from, .. } | Operation::Deposit { source: from, .. }) => {
            format!(
                "{} is not a native account (never funded or owned by a program): fund it first{}",
                facts.label(from),
                a.say(" with `paystream account transfer`", " (a transfer of native funds to it)")
            )
        }
        (NATIVE_ACCOUNT_NOT_DEFAULT, Operation::InitAccount { account }) => {
            format!("{} is already initialised: nothing to do", facts.label(account))
        }
        (
            UNAUTHORIZED_CLAIM | UNCLAIMED_DEFAULT_ACCOUNT | NATIVE_NOT_AUTHORIZED,
            Operation::NativeTransfer { to, .. },
        ) if facts.account(to).is_default() => format!(
            "the recipient {} has never been used on chain: a transfer that creates it must be signed by the recipient too \
             ({}) or the recipient must be initialised first{}",
            facts.label(to),
            a.say("pass --to-key NAME", "with the recipient's key"),
            a.say(" (`paystream account init NAME`)", "")
        ),
        (
            UNAUTHORIZED_CLAIM | UNCLAIMED_DEFAULT_ACCOUNT | TOKEN_NOT_AUTHORIZED,
            Operation::TokenTransfer { to, .. } | Operation::TokenMint { to, .. },
        ) if facts.account(to).is_default() => {
            format!(
                "the receiving token holding {} does not exist yet: it must sign the transaction that creates it \
                 (name the recipient's key so the wallet can sign for its holding)",
                facts.label(to)
            )
        }
        (
            TOKEN_INSUFFICIENT_BALANCE,
            Operation::TokenTransfer { from, amount, .. } | Operation::Deposit { source: from, amount, .. },
        ) => {
            let have = facts.token_balance(from).unwrap_or(0);
            format!(
                "the token holding {} has {have}, this needs {amount}: lower {} or receive {} more tokens first",
                facts.label(from),
                a.say("--amount", "the amount"),
                amount.saturating_sub(have)
            )
        }
        (TOKEN_NOT_A_HOLDING, Operation::Deposit { source, .. } | Operation::TokenTransfer { from: source, .. }) => {
            format!(
                "the token holding {} does not exist (it has never received this token): mint or transfer tokens to it first",
                facts.label(source)
            )
        }
        (TOKEN_ACCOUNT_NOT_DEFAULT, Operation::TokenCreate { definition, .. }) => {
            format!(
                "the token definition {} already exists: {}",
                facts.label(definition),
                a.say("pick another --name", "pick another name")
            )
        }
        (NONCE_MISMATCH, _) => format!(
            "{message}. Another transaction from the same key was included first; run the command again (the wallet \
             fetches fresh nonces)"
        ),
        (INVALID_SIGNATURE, _) => {
            format!("{message}. The key that signed is not the key of the account; check the keystore file")
        }
        _ => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use paystreams_program::state::VaultPrivacyTier;
    use paystreams_rpc::Amount;

    use super::*;

    fn vault_view(balance: u128, allocated: u128) -> VaultView {
        VaultView {
            owner: AccountId([1; 32]),
            vault_id: 3,
            vault_config: AccountId([2; 32]),
            vault_holding: AccountId([3; 32]),
            token_id: "native".into(),
            privacy_tier: VaultPrivacyTier::Public,
            balance: Amount(balance),
            total_allocated: Amount(allocated),
            unallocated: Amount(balance - allocated),
            next_stream_id: 0,
        }
    }

    #[test]
    fn allocation_too_big_names_numbers_and_fix() {
        let vault = VaultRef::native(ProgramId([1; 8]), AccountId([1; 32]), 3);
        let op = Operation::CreateStream {
            vault,
            stream_id: 0,
            provider: AccountId([9; 32]),
            rate: 1,
            allocation: 200,
            extensions: ExtensionSettings::default(),
        };
        let facts = Facts { vault: Some(vault_view(120, 0)), ..Facts::default() };
        assert_eq!(
            explain(&op, 6011, "", &facts),
            "vault 3 has 120 unallocated, stream needs 200: deposit 80 more or lower --allocation"
        );
    }

    fn stream_view(state: StreamState) -> StreamView {
        StreamView {
            owner: AccountId([1; 32]),
            vault_id: 3,
            stream_id: 0,
            stream_config: AccountId([4; 32]),
            provider: AccountId([9; 32]),
            token_id: "native".into(),
            rate: 1,
            state,
            allocation: Amount(100),
            accrued: Amount(10),
            unaccrued: Amount(90),
            accrued_as_of: 10,
            as_of: 10,
            planned_stop: None,
            stored_state: state,
            stored_accrued: Amount(10),
            stored_accrued_as_of: 10,
            extensions: None,
        }
    }

    #[test]
    fn pausing_or_resuming_a_closed_stream_is_told_as_closed() {
        let closed = Facts { stream: Some(stream_view(StreamState::Closed)), ..Facts::default() };
        let active = Facts { stream: Some(stream_view(StreamState::Active)), ..Facts::default() };
        for error in [StreamError::StreamNotActive, StreamError::StreamNotPaused] {
            assert_eq!(root_cause(error.code(), &closed), Some(StreamError::StreamClosed));
            assert_eq!(root_cause(error.code(), &active), None);
        }
        assert_eq!(root_cause(StreamError::AllocationExceedsUnallocated.code(), &closed), None);
    }

    #[test]
    fn every_stream_error_has_a_sentence() {
        let op = Operation::Other;
        for error in StreamError::ALL {
            assert!(!explain(&op, error.code(), "raw", &Facts::default()).is_empty());
        }
        assert_eq!(explain(&op, 99, "raw", &Facts::default()), "raw");
    }

    #[test]
    fn explanations_for_a_web_form_name_no_flags_or_commands() {
        let vault = VaultRef::native(ProgramId([1; 8]), AccountId([1; 32]), 3);
        let (a, b) = (AccountId([4; 32]), AccountId([5; 32]));
        let ops = [
            Operation::InitAccount { account: a },
            Operation::NativeTransfer { from: a, to: b, amount: 5 },
            Operation::TokenCreate { definition: a, holding: b, supply: 5 },
            Operation::TokenMint { definition: a, to: b, amount: 5 },
            Operation::TokenTransfer { from: a, to: b, amount: 5 },
            Operation::InitVault { vault },
            Operation::Deposit { vault, amount: 5, source: a },
            Operation::Withdraw { vault, amount: 5, to: a },
            Operation::CreateStream {
                vault,
                stream_id: 0,
                provider: b,
                rate: 1,
                allocation: 5,
                extensions: ExtensionSettings::default(),
            },
            Operation::Pause { vault, stream_id: 0 },
            Operation::Resume { vault, stream_id: 0 },
            Operation::TopUp { vault, stream_id: 0, amount: 5 },
            Operation::CloseByOwner { vault, stream_id: 0 },
            Operation::CloseByProvider { vault, stream_id: 0, signer: b, destination: b },
            Operation::Claim { vault, stream_id: 0, signer: b, destination: b, with_receipt: false },
        ];
        let runtime_codes = [
            NATIVE_NOT_AUTHORIZED,
            NATIVE_ACCOUNT_NOT_DEFAULT,
            NATIVE_SENDER_NOT_OWNED,
            NATIVE_INSUFFICIENT_BALANCE,
            TOKEN_NOT_AUTHORIZED,
            TOKEN_ACCOUNT_NOT_DEFAULT,
            TOKEN_NOT_A_HOLDING,
            TOKEN_INSUFFICIENT_BALANCE,
            UNAUTHORIZED_CLAIM,
            UNCLAIMED_DEFAULT_ACCOUNT,
        ];
        let codes = StreamError::ALL.iter().map(|e| e.code()).chain(runtime_codes);
        let mut paused = stream_view(StreamState::Paused);
        paused.unaccrued = Amount(5);
        let facts = [
            Facts::default(),
            Facts { vault: Some(vault_view(120, 0)), stream: Some(paused), ..Facts::default() },
            Facts {
                vault: Some(vault_view(120, 0)),
                stream: Some(stream_view(StreamState::Closed)),
                ..Facts::default()
            },
        ];
        for code in codes {
            for op in &ops {
                for facts in &facts {
                    let web = Facts { audience: Audience::WebForm, ..facts.clone() };
                    let text = explain(op, code, "raw", &web);
                    assert!(!text.contains("--") && !text.contains('`'), "{code} {op:?}: {text}");
                }
            }
        }
    }
}
