//! Actions with a confirmation step: a form (`GET /actions/{kind}`), a review of exactly what
//! will be signed (`POST` with `step=review`), and the submission (`POST` with `step=confirm`)
//! through the same client calls the CLI uses. Every field is validated with a message that
//! says what to enter; failures from the program come back explained, with the fix.

use std::collections::BTreeMap;

use paystreams_client::{Audience, ClientError, NamedKey, claimed_amount, parse_amount};
use paystreams_lez_core::AccountId;
use paystreams_program::{ExtensionSettings, state::StreamState};
use paystreams_rpc::{ReceiptInfo, StreamFilter};

use crate::{app::AppState, format};

/// Longest value accepted in any form field.
pub const FIELD_LEN_MAX: usize = 128;

/// Largest form body accepted.
pub const FORM_BODY_MAX: usize = 16 * 1024;

/// Most streams one "claim all" submits claims for.
pub const CLAIM_ALL_MAX: usize = 100;

/// An action the dashboard can submit.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    VaultInit,
    Deposit,
    Withdraw,
    StreamCreate,
    Pause,
    Resume,
    TopUp,
    Close,
    Claim,
    ClaimAll,
}

/// What a form field holds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Input {
    /// A keystore identity that signs.
    Signer,
    /// Any account: keystore name or base58 id.
    Account,
    /// A u64 id.
    Id,
    /// A u128 amount.
    Amount,
    /// A u64 rate.
    Rate,
}

/// One field of an action's form.
#[derive(Clone, Copy, Debug)]
pub struct FieldSpec {
    pub name: &'static str,
    pub label: &'static str,
    pub help: &'static str,
    pub input: Input,
}

const OWNER_SIGNER: FieldSpec = FieldSpec {
    name: "owner",
    label: "Owner (signs)",
    help: "The keystore identity that owns the vault; it signs this transaction.",
    input: Input::Signer,
};
const OWNER_ACCOUNT: FieldSpec = FieldSpec {
    name: "owner",
    label: "Vault owner",
    help: "Who owns the vault the stream is in: a keystore name or a base58 account id.",
    input: Input::Account,
};
const PROVIDER_SIGNER: FieldSpec = FieldSpec {
    name: "provider",
    label: "Provider (signs)",
    help: "The keystore identity the stream pays; it signs the claim and receives the funds.",
    input: Input::Signer,
};
const PROVIDER_ACCOUNT: FieldSpec = FieldSpec {
    name: "provider",
    label: "Provider (paid)",
    help: "Who the stream pays: a keystore name or a base58 account id (not the owner).",
    input: Input::Account,
};
const VAULT_ID: FieldSpec =
    FieldSpec { name: "vault_id", label: "Vault id", help: "The owner's vault number: 0, 1, 2, …", input: Input::Id };
const STREAM_ID: FieldSpec = FieldSpec {
    name: "stream_id",
    label: "Stream id",
    help: "The stream's number within the vault: 0, 1, 2, …",
    input: Input::Id,
};
const AMOUNT: FieldSpec = FieldSpec {
    name: "amount",
    label: "Amount",
    help: "Whole units, digits only (e.g. 1000 or 1_000); no decimal point.",
    input: Input::Amount,
};
const RATE: FieldSpec = FieldSpec {
    name: "rate",
    label: "Rate per second",
    help: "What the stream pays each second while it runs, in whole units (e.g. 10).",
    input: Input::Rate,
};
const ALLOCATION: FieldSpec = FieldSpec {
    name: "allocation",
    label: "Allocation",
    help: "Funds reserved for the stream from the vault's unallocated balance, whole units (e.g. 3600).",
    input: Input::Amount,
};

impl Kind {
    pub const ALL: [Self; 10] = [
        Self::VaultInit,
        Self::Deposit,
        Self::Withdraw,
        Self::StreamCreate,
        Self::Pause,
        Self::Resume,
        Self::TopUp,
        Self::Close,
        Self::Claim,
        Self::ClaimAll,
    ];

    /// The URL segment.
    #[must_use]
    pub const fn slug(self) -> &'static str {
        match self {
            Self::VaultInit => "vault-init",
            Self::Deposit => "deposit",
            Self::Withdraw => "withdraw",
            Self::StreamCreate => "stream-create",
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::TopUp => "top-up",
            Self::Close => "close",
            Self::Claim => "claim",
            Self::ClaimAll => "claim-all",
        }
    }

    #[must_use]
    pub fn from_slug(slug: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.slug() == slug)
    }

    /// Page heading.
    #[must_use]
    pub const fn title(self) -> &'static str {
        match self {
            Self::VaultInit => "Create a vault",
            Self::Deposit => "Deposit into a vault",
            Self::Withdraw => "Withdraw from a vault",
            Self::StreamCreate => "Create a stream",
            Self::Pause => "Pause a stream",
            Self::Resume => "Resume a stream",
            Self::TopUp => "Top up a stream",
            Self::Close => "Close a stream",
            Self::Claim => "Claim from a stream",
            Self::ClaimAll => "Claim everything accrued",
        }
    }

    /// The confirm button's words.
    #[must_use]
    pub const fn verb(self) -> &'static str {
        match self {
            Self::VaultInit => "Create vault",
            Self::Deposit => "Deposit",
            Self::Withdraw => "Withdraw",
            Self::StreamCreate => "Create stream",
            Self::Pause => "Pause stream",
            Self::Resume => "Resume stream",
            Self::TopUp => "Top up stream",
            Self::Close => "Close stream",
            Self::Claim => "Claim",
            Self::ClaimAll => "Claim all",
        }
    }

    /// The form's fields, in order.
    #[must_use]
    pub const fn fields(self) -> &'static [FieldSpec] {
        match self {
            Self::VaultInit => &[OWNER_SIGNER, VAULT_ID],
            Self::Deposit | Self::Withdraw => &[OWNER_SIGNER, VAULT_ID, AMOUNT],
            Self::StreamCreate => &[OWNER_SIGNER, VAULT_ID, PROVIDER_ACCOUNT, RATE, ALLOCATION],
            Self::Pause | Self::Resume | Self::Close => &[OWNER_SIGNER, VAULT_ID, STREAM_ID],
            Self::TopUp => &[OWNER_SIGNER, VAULT_ID, STREAM_ID, AMOUNT],
            Self::Claim => &[PROVIDER_SIGNER, OWNER_ACCOUNT, VAULT_ID, STREAM_ID],
            Self::ClaimAll => &[PROVIDER_SIGNER],
        }
    }

    /// Where "Cancel" and "Back" go.
    #[must_use]
    pub const fn home(self) -> &'static str {
        match self {
            Self::Claim | Self::ClaimAll => "/provider",
            _ => "/",
        }
    }
}

/// A validated action.
#[derive(Clone, Debug)]
pub struct Validated {
    pub kind: Kind,
    pub signer: NamedKey,
    /// The provider (create) or the vault owner (claim).
    pub account: Option<AccountId>,
    pub vault_id: u64,
    pub stream_id: u64,
    pub amount: u128,
    pub rate: u64,
    /// The submitted values, normalised, for the review's hidden fields.
    pub values: Vec<(&'static str, String)>,
}

fn resolve_account(text: &str, keys: &[NamedKey]) -> Option<AccountId> {
    keys.iter().find(|k| k.name == text).map(NamedKey::account_id).or_else(|| text.parse::<AccountId>().ok())
}

fn resolve_signer(text: &str, keys: &[NamedKey]) -> Option<NamedKey> {
    keys.iter()
        .find(|k| k.name == text)
        .or_else(|| text.parse::<AccountId>().ok().and_then(|id| keys.iter().find(|k| k.account_id() == id)))
        .cloned()
}

fn names_list(keys: &[NamedKey]) -> String {
    let names: Vec<&str> = keys.iter().take(5).map(|k| k.name.as_str()).collect();
    let more = if keys.len() > 5 { ", …" } else { "" };
    format!("{}{more}", names.join(", "))
}

/// Checks every field; returns the action or a message per field.
///
/// # Errors
/// Field name → what is wrong and what to enter.
pub fn validate(
    kind: Kind,
    form: &BTreeMap<String, String>,
    keys: &[NamedKey],
) -> Result<Validated, BTreeMap<&'static str, String>> {
    let mut errors = BTreeMap::new();
    let mut signer: Option<NamedKey> = None;
    let mut validated = Parsed::default();
    for field in kind.fields() {
        let raw = form.get(field.name).map_or("", |v| v.trim());
        let label = field.label.to_lowercase();
        if raw.is_empty() {
            errors.insert(field.name, format!("{} is required.", field.label));
            continue;
        }
        if raw.len() > FIELD_LEN_MAX {
            errors.insert(field.name, format!("{} is too long: at most {FIELD_LEN_MAX} characters.", field.label));
            continue;
        }
        match field.input {
            Input::Signer => match resolve_signer(raw, keys) {
                Some(key) => {
                    validated.values.push((field.name, key.name.clone()));
                    signer = Some(key);
                }
                None if keys.is_empty() => {
                    errors.insert(
                        field.name,
                        "The keystore has no identities yet: create one (paystream keys new NAME on the command line), \
                         or start the dashboard on the keystore a dev node saves its funded dev keys to."
                            .to_owned(),
                    );
                }
                None => {
                    errors.insert(
                        field.name,
                        format!("{raw:?} is not an identity in the keystore; choose one of: {}.", names_list(keys)),
                    );
                }
            },
            Input::Account => match resolve_account(raw, keys) {
                Some(id) => {
                    validated.values.push((field.name, id.to_string()));
                    validated.account = Some(id);
                }
                None => {
                    errors.insert(
                        field.name,
                        format!(
                            "{raw:?} is neither a keystore name nor a base58 account id (32 bytes, e.g. the ids shown on \
                             the overview); enter one of: {} or an account id.",
                            names_list(keys)
                        ),
                    );
                }
            },
            Input::Id => match raw.parse::<u64>() {
                Ok(n) => {
                    validated.values.push((field.name, n.to_string()));
                    if field.name == "stream_id" {
                        validated.stream_id = n;
                    } else {
                        validated.vault_id = n;
                    }
                }
                Err(_) => {
                    errors.insert(field.name, format!("{raw:?} is not a {label}: use a whole number such as 0 or 1."));
                }
            },
            Input::Rate => match raw.replace('_', "").parse::<u64>() {
                Ok(0) => {
                    errors.insert(
                        field.name,
                        "A rate of 0 pays nothing: enter what the stream pays each second, at least 1 (e.g. 10)."
                            .to_owned(),
                    );
                }
                Ok(n) => {
                    validated.values.push((field.name, n.to_string()));
                    validated.rate = n;
                }
                Err(_) => {
                    errors.insert(
                        field.name,
                        format!(
                            "{raw:?} is not a rate: enter a whole number per second from 1 to {} (e.g. 10).",
                            u64::MAX
                        ),
                    );
                }
            },
            Input::Amount => match parse_amount(raw) {
                Ok(0) => {
                    errors.insert(
                        field.name,
                        format!("{} of 0 does nothing: enter a whole number of at least 1 (e.g. 1000).", field.label),
                    );
                }
                Ok(n) => {
                    validated.values.push((field.name, n.to_string()));
                    validated.amount = n;
                }
                Err(e) => {
                    errors.insert(field.name, format!("{}: {e}.", field.label));
                }
            },
        }
    }
    match signer {
        Some(signer) if errors.is_empty() => Ok(Validated {
            kind,
            signer,
            account: validated.account,
            vault_id: validated.vault_id,
            stream_id: validated.stream_id,
            amount: validated.amount,
            rate: validated.rate,
            values: validated.values,
        }),
        _ => Err(errors),
    }
}

#[derive(Default)]
struct Parsed {
    account: Option<AccountId>,
    vault_id: u64,
    stream_id: u64,
    amount: u128,
    rate: u64,
    values: Vec<(&'static str, String)>,
}

fn who(key: &NamedKey) -> String {
    format!("{} ({})", key.name, format::short_id(&key.account_id()))
}

fn account_text(id: &AccountId, keys: &[NamedKey]) -> String {
    keys.iter().find(|k| k.account_id() == *id).map_or_else(|| id.to_string(), who)
}

/// The review's sentences: exactly what will be signed and what it does.
pub async fn review_lines(app: &AppState, action: &Validated, keys: &[NamedKey]) -> Vec<String> {
    let v = action;
    let signer = who(&v.signer);
    let stream = format!("stream {} of vault {}", v.stream_id, v.vault_id);
    match v.kind {
        Kind::VaultInit => vec![
            format!("Create vault {} for {signer}, holding the native token.", v.vault_id),
            "Deposit into it afterwards, then create streams from it. (Vaults of other tokens are created from the \
             command line.)"
                .to_owned(),
        ],
        Kind::Deposit => vec![
            format!("Move {} from {signer} into vault {}.", format::amount(v.amount), v.vault_id),
            "The vault's unallocated balance grows by that much; it can be withdrawn while no stream holds it.".to_owned(),
        ],
        Kind::Withdraw => vec![
            format!("Withdraw {} of unallocated funds from vault {} to {signer}.", format::amount(v.amount), v.vault_id),
            "Funds allocated to streams cannot be withdrawn; close or let streams finish first.".to_owned(),
        ],
        Kind::StreamCreate => {
            let provider = v.account.map_or_else(String::new, |p| account_text(&p, keys));
            let runs = if v.rate > 0 {
                let secs = v.amount.div_ceil(u128::from(v.rate));
                u64::try_from(secs).map_or_else(|_| "a very long time".to_owned(), format::duration)
            } else {
                "—".to_owned()
            };
            vec![
                format!("Create a stream from vault {} of {signer} to {provider}.", v.vault_id),
                format!(
                    "It pays {} per second from an allocation of {}: it runs for {runs} unless paused, topped up or closed.",
                    format::amount(u128::from(v.rate)),
                    format::amount(v.amount)
                ),
                "The allocation is reserved from the vault's unallocated balance now.".to_owned(),
            ]
        }
        Kind::Pause => vec![
            format!("Pause {stream} of {signer}."),
            "Accrual stops now; what has accrued stays claimable by the provider. Resume it any time.".to_owned(),
        ],
        Kind::Resume => vec![
            format!("Resume {stream} of {signer}."),
            "Accrual restarts at the stream's rate (an activation fee, if the stream has one, is charged).".to_owned(),
        ],
        Kind::TopUp => vec![
            format!("Add {} to {stream} of {signer}, from the vault's unallocated balance.", format::amount(v.amount)),
            "The stream runs afterwards, also if it was paused.".to_owned(),
        ],
        Kind::Close => vec![
            format!("Close {stream} of {signer} for good."),
            "Unaccrued funds return to the vault's unallocated balance; what has accrued stays claimable by the provider. \
             This cannot be undone."
                .to_owned(),
        ],
        Kind::Claim => {
            let owner = v.account.map_or_else(String::new, |o| account_text(&o, keys));
            vec![
                format!("Claim what has accrued on {stream} of {owner}, signed by {signer}."),
                "The accrued amount is paid to the provider; the stream keeps running.".to_owned(),
            ]
        }
        Kind::ClaimAll => {
            let mut lines = vec![format!("Claim from every stream paying {signer} that has something accrued:")];
            match claim_all_targets(app, &v.signer).await {
                Ok(targets) if targets.is_empty() => lines.push("No stream paying this identity has anything to claim.".to_owned()),
                Ok(targets) => lines.extend(targets.iter().map(|t| {
                    format!(
                        "stream {} of vault {} of {} ({}, {} accrued at the last block)",
                        t.stream_id,
                        t.vault_id,
                        account_text(&t.owner, keys),
                        crate::view::state_name(t.state),
                        format::amount(t.accrued)
                    )
                })),
                Err(e) => lines.push(format!("The streams cannot be listed right now: {e}")),
            }
            lines.push("One claim transaction is submitted per stream, signed by the provider.".to_owned());
            lines
        }
    }
}

/// A stream "claim all" claims from.
#[derive(Clone, Debug)]
pub struct ClaimTarget {
    pub owner: AccountId,
    pub vault_id: u64,
    pub stream_id: u64,
    pub accrued: u128,
    pub state: StreamState,
}

/// Streams paying `provider` with something accrued (or accruing), at most [`CLAIM_ALL_MAX`].
///
/// # Errors
/// The node is unreachable.
pub async fn claim_all_targets(app: &AppState, provider: &NamedKey) -> Result<Vec<ClaimTarget>, ClientError> {
    let streams = app.client.list_streams(StreamFilter { owner: None, provider: Some(provider.account_id()) }).await?;
    Ok(streams
        .into_iter()
        .filter(|s| s.accrued.0 > 0 || s.state == StreamState::Active)
        .take(CLAIM_ALL_MAX)
        .map(|s| ClaimTarget {
            owner: s.owner,
            vault_id: s.vault_id,
            stream_id: s.stream_id,
            accrued: s.accrued.0,
            state: s.state,
        })
        .collect())
}

/// What a submission did.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub ok: bool,
    pub heading: String,
    pub lines: Vec<String>,
    /// Explained failures: (what, explanation with the fix, code and name).
    pub failures: Vec<(String, String, String)>,
    pub transactions: Vec<(String, String)>,
    pub next_href: String,
    pub next_text: String,
}

fn tx_line(receipt: &ReceiptInfo) -> (String, String) {
    (receipt.hash.to_string(), receipt.block_id.map_or_else(|| "?".to_owned(), |b| b.to_string()))
}

/// Splits a client error into (explanation with the fix, "error CODE NAME" or empty).
#[must_use]
pub fn explain_error(error: &ClientError) -> (String, String) {
    match error.tx_failure() {
        Some(f) => {
            let nothing_sent = if f.is_preflight() { "; checked before sending, nothing was submitted" } else { "" };
            (f.explanation.clone(), format!("error {} {}{nothing_sent}", f.code, f.name))
        }
        None => (error.to_string(), String::new()),
    }
}

/// Submits a validated action.
pub async fn execute(app: &AppState, action: &Validated, keys: &[NamedKey]) -> Outcome {
    let mut client = app.named_client(keys);
    client.set_audience(Audience::WebForm);
    let v = action;
    let key = &v.signer.key;
    let stream_href = |owner: AccountId, stream_id: u64| format!("/streams/{owner}/{}/{stream_id}", v.vault_id);
    let owner = v.signer.account_id();
    let mut outcome =
        Outcome { next_href: v.kind.home().to_owned(), next_text: "Back".to_owned(), ..Outcome::default() };
    let single = match v.kind {
        Kind::VaultInit => {
            client.init_vault(key, v.vault_id, None).await.map(|r| (r, format!("Vault {} created.", v.vault_id)))
        }
        Kind::Deposit => client
            .deposit(key, v.vault_id, v.amount)
            .await
            .map(|r| (r, format!("Deposited {} into vault {}.", format::amount(v.amount), v.vault_id))),
        Kind::Withdraw => client
            .withdraw(key, v.vault_id, v.amount, None)
            .await
            .map(|r| (r, format!("Withdrew {} from vault {}.", format::amount(v.amount), v.vault_id))),
        Kind::StreamCreate => {
            let provider = v.account.unwrap_or(owner);
            match client.create_stream(key, v.vault_id, provider, v.rate, v.amount, ExtensionSettings::default()).await
            {
                Ok((stream_id, receipt)) => {
                    outcome.next_href = stream_href(owner, stream_id);
                    outcome.next_text = format!("Open stream {stream_id}");
                    Ok((receipt, format!("Stream {stream_id} of vault {} created; it is running.", v.vault_id)))
                }
                Err(e) => Err(e),
            }
        }
        Kind::Pause | Kind::Resume | Kind::TopUp | Kind::Close => {
            outcome.next_href = stream_href(owner, v.stream_id);
            outcome.next_text = format!("Open stream {}", v.stream_id);
            let name = format!("Stream {} of vault {}", v.stream_id, v.vault_id);
            match v.kind {
                Kind::Pause => client.pause(key, v.vault_id, v.stream_id).await.map(|r| (r, format!("{name} paused."))),
                Kind::Resume => {
                    client.resume(key, v.vault_id, v.stream_id).await.map(|r| (r, format!("{name} resumed.")))
                }
                Kind::TopUp => client
                    .top_up(key, v.vault_id, v.stream_id, v.amount)
                    .await
                    .map(|r| (r, format!("{name} topped up by {}.", format::amount(v.amount)))),
                _ => client.close_by_owner(key, v.vault_id, v.stream_id).await.map(|r| (r, format!("{name} closed."))),
            }
        }
        Kind::Claim => {
            let vault_owner = v.account.unwrap_or(owner);
            outcome.next_href = stream_href(vault_owner, v.stream_id);
            outcome.next_text = format!("Open stream {}", v.stream_id);
            client.claim(key, vault_owner, v.vault_id, v.stream_id, None).await.map(|r| {
                let amount = claimed_amount(&r);
                (r, format!("Claimed {} from stream {} of vault {}.", format::amount(amount), v.stream_id, v.vault_id))
            })
        }
        Kind::ClaimAll => {
            claim_all(&client, app, &v.signer, keys, &mut outcome).await;
            return outcome;
        }
    };
    match single {
        Ok((receipt, line)) => {
            outcome.ok = true;
            outcome.heading = "Done".to_owned();
            outcome.lines.push(line);
            outcome.transactions.push(tx_line(&receipt));
        }
        Err(e) => {
            outcome.heading = format!("{} did not happen", v.kind.verb());
            let (explanation, code) = explain_error(&e);
            outcome.failures.push((v.kind.title().to_owned(), explanation, code));
        }
    }
    outcome
}

async fn claim_all(
    client: &paystreams_client::Client,
    app: &AppState,
    provider: &NamedKey,
    keys: &[NamedKey],
    outcome: &mut Outcome,
) {
    outcome.next_href = "/provider".to_owned();
    outcome.next_text = "Back to the provider view".to_owned();
    let targets = match claim_all_targets(app, provider).await {
        Ok(t) => t,
        Err(e) => {
            outcome.heading = "Nothing was claimed".to_owned();
            let (explanation, code) = explain_error(&e);
            outcome.failures.push(("Listing the streams".to_owned(), explanation, code));
            return;
        }
    };
    if targets.is_empty() {
        outcome.ok = true;
        outcome.heading = "Nothing to claim".to_owned();
        outcome.lines.push(format!("No stream paying {} has anything accrued.", who(provider)));
        return;
    }
    let mut total: u128 = 0;
    for t in &targets {
        let what = format!("stream {} of vault {} of {}", t.stream_id, t.vault_id, account_text(&t.owner, keys));
        match client.claim(&provider.key, t.owner, t.vault_id, t.stream_id, None).await {
            Ok(receipt) => {
                let amount = claimed_amount(&receipt);
                total = total.saturating_add(amount);
                outcome.lines.push(format!("Claimed {} from {what}.", format::amount(amount)));
                outcome.transactions.push(tx_line(&receipt));
            }
            Err(e) => {
                let (explanation, code) = explain_error(&e);
                outcome.failures.push((what, explanation, code));
            }
        }
    }
    outcome.ok = outcome.failures.is_empty();
    outcome.heading = if outcome.ok {
        format!("Claimed {} in total", format::amount(total))
    } else {
        format!("Claimed {} in total; some claims failed", format::amount(total))
    };
}
