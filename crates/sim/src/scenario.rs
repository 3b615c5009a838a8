//! Scenario parsing and validation. Everything a scenario can get wrong is reported here, before
//! the chain runs, with the step index and field, so a bad file never produces partial output.

use std::collections::{BTreeMap, BTreeSet};

use paystreams_lez_core::AccountId;
use serde_json::{Map, Value};

/// Longest token name (the token program's limit).
pub const TOKEN_NAME_MAX_LEN: usize = paystreams_lez_core::token::TOKEN_NAME_MAX_LEN;

/// Why a scenario was refused. The CLI exits 2 on any of these.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("not valid JSON: {0}")]
    Json(String),
    #[error("field \"{field}\": {message}")]
    Top { field: String, message: String },
    #[error("step {index}{}: field \"{field}\": {message}", op.as_ref().map(|op| format!(" ({op})")).unwrap_or_default())]
    Step { index: usize, op: Option<String>, field: String, message: String },
    #[error("{0}")]
    Internal(String),
}

/// A party named in a step: a scenario name or a raw base58 account id.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Party {
    Named(String),
    Raw(AccountId),
}

/// A token named in a step: a token created by `create_token`, or a raw 32-byte id.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum TokenRef {
    Named(String),
    Hex([u8; 32]),
}

/// A receipt key: a scenario name's public key, or raw x-only key bytes.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum KeyRef {
    Named(String),
    Hex([u8; 32]),
}

/// A delivery receipt the simulator builds and signs.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ReceiptSpec {
    pub signer: String,
    pub acknowledged_total: u128,
    pub deliveries_digest: [u8; 32],
}

/// One operation.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Op {
    CreateToken {
        token: String,
        supply: u128,
    },
    InitializeVault {
        vault_id: u64,
        token: Option<TokenRef>,
    },
    Deposit {
        vault_id: u64,
        amount: u128,
    },
    Withdraw {
        vault_id: u64,
        amount: u128,
        to: Option<Party>,
    },
    CreateStream {
        vault_id: u64,
        provider: Party,
        rate: u64,
        allocation: u128,
        auto_pause_after: u64,
        activation_fee: u128,
        auto_claim_on_provider_close: bool,
        receipt_key: Option<KeyRef>,
    },
    PauseStream {
        vault_id: u64,
        stream_id: u64,
    },
    ResumeStream {
        vault_id: u64,
        stream_id: u64,
    },
    TopUpStream {
        vault_id: u64,
        stream_id: u64,
        amount: u128,
    },
    CloseStream {
        owner: Party,
        vault_id: u64,
        stream_id: u64,
        receipt: Option<ReceiptSpec>,
    },
    Claim {
        owner: Party,
        vault_id: u64,
        stream_id: u64,
        receipt: Option<ReceiptSpec>,
    },
    Observe,
}

/// Every op name, for error messages.
pub const OPS: [&str; 11] = [
    "initialize_vault",
    "deposit",
    "withdraw",
    "create_stream",
    "pause_stream",
    "resume_stream",
    "top_up_stream",
    "close_stream",
    "claim",
    "observe",
    "create_token",
];

/// One step: time, signer, operation.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Step {
    pub t: u64,
    pub op_name: String,
    /// Absent only for `observe`.
    pub signer: Option<String>,
    pub op: Op,
}

/// A validated scenario.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Scenario {
    /// Named accounts and their genesis balances, in file order.
    pub accounts: Vec<(String, u128)>,
    pub steps: Vec<Step>,
}

/// Parses and validates a scenario.
///
/// # Errors
/// [`ScenarioError`] naming the step and field of the first problem.
pub fn parse(json: &str) -> Result<Scenario, ScenarioError> {
    let root: Value = serde_json::from_str(json).map_err(|e| ScenarioError::Json(e.to_string()))?;
    let Value::Object(root) = root else {
        return Err(ScenarioError::Top { field: "(root)".into(), message: "expected a JSON object".into() });
    };
    for key in root.keys() {
        if key != "accounts" && key != "steps" {
            return Err(ScenarioError::Top { field: key.clone(), message: "unknown field".into() });
        }
    }
    let top = |field: &str, message: String| ScenarioError::Top { field: field.into(), message };
    let Some(Value::Object(accounts_json)) = root.get("accounts") else {
        return Err(top("accounts", "expected an object of name -> balance".into()));
    };
    let mut accounts = Vec::new();
    for (name, value) in accounts_json {
        check_name(name).map_err(|m| top("accounts", m))?;
        let balance = amount(value).map_err(|m| top(&format!("accounts.{name}"), m))?;
        accounts.push((name.clone(), balance));
    }
    let mut total: u128 = 0;
    for (_, balance) in &accounts {
        total = total.checked_add(*balance).ok_or_else(|| top("accounts", "total balance exceeds 2^128 - 1".into()))?;
    }
    let Some(Value::Array(steps_json)) = root.get("steps") else {
        return Err(top("steps", "expected an array of steps".into()));
    };
    let names: BTreeSet<String> = accounts.iter().map(|(n, _)| n.clone()).collect();
    let mut parser = StepParser { names, tokens: BTreeSet::new(), last_t: 0 };
    let steps =
        steps_json.iter().enumerate().map(|(index, value)| parser.step(index, value)).collect::<Result<Vec<_>, _>>()?;
    Ok(Scenario { accounts, steps })
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err(format!("account name {name:?} must be 1 to 64 characters"));
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.') {
        return Err(format!("account name {name:?} may contain only ASCII letters, digits, '_', '-' and '.'"));
    }
    Ok(())
}

/// A u128 amount: a non-negative JSON integer or a decimal string.
fn amount(value: &Value) -> Result<u128, String> {
    match value {
        Value::Number(n) => {
            if let Some(v) = n.as_u64() {
                return Ok(u128::from(v));
            }
            // Negative, fractional, or beyond u64 (serde_json keeps those as floats).
            Err(format!(
                "expected a non-negative integer (JSON numbers up to 2^64 - 1; write larger amounts as decimal strings), got {n}"
            ))
        }
        Value::String(s) => {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("expected a non-negative decimal integer string, got {s:?}"));
            }
            s.parse::<u128>().map_err(|_| format!("{s} exceeds the largest amount (2^128 - 1)"))
        }
        other => Err(format!("expected a non-negative integer or decimal string, got {}", kind(other))),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Exactly 64 hex digits, as 32 bytes.
fn hex32(text: &str) -> Option<[u8; 32]> {
    <[u8; 32] as hex::FromHex>::from_hex(text).ok()
}

struct StepParser {
    names: BTreeSet<String>,
    /// Tokens declared by earlier `create_token` steps.
    tokens: BTreeSet<String>,
    last_t: u64,
}

/// The fields of one step, consumed as they are read so leftovers are reported as unknown.
struct Fields<'a> {
    index: usize,
    op: Option<String>,
    map: BTreeMap<&'a str, &'a Value>,
}

impl<'a> Fields<'a> {
    fn err(&self, field: &str, message: impl Into<String>) -> ScenarioError {
        ScenarioError::Step { index: self.index, op: self.op.clone(), field: field.into(), message: message.into() }
    }

    fn take(&mut self, field: &str) -> Option<&'a Value> {
        self.map.remove(field)
    }

    fn required(&mut self, field: &str) -> Result<&'a Value, ScenarioError> {
        self.take(field).ok_or_else(|| self.err(field, "missing"))
    }

    fn amount(&mut self, field: &str) -> Result<u128, ScenarioError> {
        let value = self.required(field)?;
        amount(value).map_err(|m| self.err(field, m))
    }

    fn optional_amount(&mut self, field: &str) -> Result<u128, ScenarioError> {
        match self.take(field) {
            None => Ok(0),
            Some(value) => amount(value).map_err(|m| self.err(field, m)),
        }
    }

    fn u64_of(&self, field: &str, value: &Value) -> Result<u64, ScenarioError> {
        let v = amount(value).map_err(|m| self.err(field, m))?;
        u64::try_from(v).map_err(|_| self.err(field, format!("{v} exceeds the largest allowed value ({})", u64::MAX)))
    }

    fn u64(&mut self, field: &str) -> Result<u64, ScenarioError> {
        let value = self.required(field)?;
        self.u64_of(field, value)
    }

    fn optional_u64(&mut self, field: &str) -> Result<u64, ScenarioError> {
        match self.take(field) {
            None => Ok(0),
            Some(value) => self.u64_of(field, value),
        }
    }

    fn string(&mut self, field: &str) -> Result<&'a str, ScenarioError> {
        let value = self.required(field)?;
        value.as_str().ok_or_else(|| self.err(field, format!("expected a string, got {}", kind(value))))
    }

    fn finish(self) -> Result<(), ScenarioError> {
        match self.map.keys().next() {
            Some(field) => Err(self.err(field, "unknown field for this op")),
            None => Ok(()),
        }
    }
}

impl StepParser {
    fn step(&mut self, index: usize, value: &Value) -> Result<Step, ScenarioError> {
        let Value::Object(map) = value else {
            return Err(ScenarioError::Step {
                index,
                op: None,
                field: "(step)".into(),
                message: format!("expected an object, got {}", kind(value)),
            });
        };
        let mut fields = Fields { index, op: None, map: map_fields(map) };
        let op_name = fields.string("op")?.to_owned();
        if !OPS.contains(&op_name.as_str()) {
            return Err(fields.err("op", format!("unknown op {op_name:?} (expected one of {})", OPS.join(", "))));
        }
        fields.op = Some(op_name.clone());
        let t = fields.u64("t")?;
        if t.checked_mul(1000).is_none() {
            return Err(fields.err("t", "too large: t * 1000 must fit in 64 bits"));
        }
        if t < self.last_t {
            return Err(fields.err("t", format!("{t} is earlier than the previous step's t = {}", self.last_t)));
        }
        self.last_t = t;
        let signer = match fields.take("signer") {
            None if op_name == "observe" => None,
            None => return Err(fields.err("signer", "missing")),
            Some(value) => {
                let name = value
                    .as_str()
                    .ok_or_else(|| fields.err("signer", format!("expected a name, got {}", kind(value))))?;
                if !self.names.contains(name) {
                    return Err(fields.err("signer", format!("unknown account name {name:?} (not in \"accounts\")")));
                }
                Some(name.to_owned())
            }
        };
        let op = match op_name.as_str() {
            "create_token" => {
                let token = fields.string("token")?.to_owned();
                if token.is_empty() || token.len() > TOKEN_NAME_MAX_LEN || hex32(&token).is_some() {
                    return Err(fields.err(
                        "token",
                        format!("token name must be 1 to {TOKEN_NAME_MAX_LEN} bytes and not 64 hex digits"),
                    ));
                }
                if !token.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                    return Err(fields.err("token", "token name may contain only ASCII letters, digits, '_' and '-'"));
                }
                self.tokens.insert(token.clone());
                Op::CreateToken { token, supply: fields.amount("supply")? }
            }
            "initialize_vault" => {
                let vault_id = fields.u64("vault_id")?;
                let token = match fields.take("token_id") {
                    None => None,
                    Some(value) => Some(self.token_ref(&fields, value)?),
                };
                Op::InitializeVault { vault_id, token }
            }
            "deposit" => Op::Deposit { vault_id: fields.u64("vault_id")?, amount: fields.amount("amount")? },
            "withdraw" => {
                let vault_id = fields.u64("vault_id")?;
                let amount = fields.amount("amount")?;
                let to = match fields.take("to") {
                    None => None,
                    Some(value) => Some(self.party(&fields, "to", value)?),
                };
                Op::Withdraw { vault_id, amount, to }
            }
            "create_stream" => {
                let vault_id = fields.u64("vault_id")?;
                let provider_value = fields.required("provider")?;
                let provider = self.party(&fields, "provider", provider_value)?;
                let rate = fields.u64("rate")?;
                let allocation = fields.amount("allocation")?;
                let auto_pause_after = fields.optional_u64("auto_pause_after")?;
                let activation_fee = fields.optional_amount("activation_fee")?;
                let auto_claim_on_provider_close = match fields.take("auto_claim_on_provider_close") {
                    None => false,
                    Some(Value::Bool(b)) => *b,
                    Some(other) => {
                        return Err(fields.err(
                            "auto_claim_on_provider_close",
                            format!("expected true or false, got {}", kind(other)),
                        ));
                    }
                };
                let receipt_key = match fields.take("receipt_key") {
                    None => None,
                    Some(value) => {
                        let text = value.as_str().ok_or_else(|| {
                            fields.err("receipt_key", format!("expected a name or 64 hex digits, got {}", kind(value)))
                        })?;
                        if self.names.contains(text) {
                            Some(KeyRef::Named(text.to_owned()))
                        } else if let Some(bytes) = hex32(text) {
                            Some(KeyRef::Hex(bytes))
                        } else {
                            return Err(fields
                                .err("receipt_key", format!("{text:?} is neither an account name nor 64 hex digits")));
                        }
                    }
                };
                Op::CreateStream {
                    vault_id,
                    provider,
                    rate,
                    allocation,
                    auto_pause_after,
                    activation_fee,
                    auto_claim_on_provider_close,
                    receipt_key,
                }
            }
            "pause_stream" => {
                Op::PauseStream { vault_id: fields.u64("vault_id")?, stream_id: fields.u64("stream_id")? }
            }
            "resume_stream" => {
                Op::ResumeStream { vault_id: fields.u64("vault_id")?, stream_id: fields.u64("stream_id")? }
            }
            "top_up_stream" => Op::TopUpStream {
                vault_id: fields.u64("vault_id")?,
                stream_id: fields.u64("stream_id")?,
                amount: fields.amount("amount")?,
            },
            "close_stream" | "claim" => {
                let owner_value = fields.required("owner")?;
                let owner = self.party(&fields, "owner", owner_value)?;
                let vault_id = fields.u64("vault_id")?;
                let stream_id = fields.u64("stream_id")?;
                let receipt = match fields.take("receipt") {
                    None => None,
                    Some(value) => Some(self.receipt(&fields, value)?),
                };
                if op_name == "claim" {
                    Op::Claim { owner, vault_id, stream_id, receipt }
                } else {
                    Op::CloseStream { owner, vault_id, stream_id, receipt }
                }
            }
            _ => Op::Observe,
        };
        fields.finish()?;
        Ok(Step { t, op_name, signer, op })
    }

    fn party(&self, fields: &Fields<'_>, field: &str, value: &Value) -> Result<Party, ScenarioError> {
        let text = value
            .as_str()
            .ok_or_else(|| fields.err(field, format!("expected an account name or base58 id, got {}", kind(value))))?;
        if self.names.contains(text) {
            return Ok(Party::Named(text.to_owned()));
        }
        text.parse::<AccountId>().map(Party::Raw).map_err(|_| {
            fields
                .err(field, format!("unknown account name {text:?} (not in \"accounts\" and not a base58 account id)"))
        })
    }

    fn token_ref(&self, fields: &Fields<'_>, value: &Value) -> Result<TokenRef, ScenarioError> {
        let text = value.as_str().ok_or_else(|| {
            fields.err("token_id", format!("expected a token name or 64 hex digits, got {}", kind(value)))
        })?;
        if text == "native" {
            return Ok(TokenRef::Hex([0; 32]));
        }
        if let Some(bytes) = hex32(text) {
            return Ok(TokenRef::Hex(bytes));
        }
        if self.tokens.contains(text) {
            return Ok(TokenRef::Named(text.to_owned()));
        }
        Err(fields.err(
            "token_id",
            format!("unknown token {text:?} (create it with an earlier create_token step, or give 64 hex digits)"),
        ))
    }

    fn receipt(&self, fields: &Fields<'_>, value: &Value) -> Result<ReceiptSpec, ScenarioError> {
        let Value::Object(map) = value else {
            return Err(fields.err(
                "receipt",
                format!("expected an object {{\"signer\", \"acknowledged_total\"}}, got {}", kind(value)),
            ));
        };
        let sub = |name: &str, message: String| fields.err(&format!("receipt.{name}"), message);
        for key in map.keys() {
            if !["signer", "acknowledged_total", "deliveries_digest"].contains(&key.as_str()) {
                return Err(sub(key, "unknown field".into()));
            }
        }
        let signer = match map.get("signer") {
            Some(Value::String(s)) if self.names.contains(s) => s.clone(),
            Some(Value::String(s)) => return Err(sub("signer", format!("unknown account name {s:?}"))),
            Some(other) => return Err(sub("signer", format!("expected a name, got {}", kind(other)))),
            None => return Err(sub("signer", "missing".into())),
        };
        let acknowledged_total = match map.get("acknowledged_total") {
            Some(v) => amount(v).map_err(|m| sub("acknowledged_total", m))?,
            None => return Err(sub("acknowledged_total", "missing".into())),
        };
        let deliveries_digest = match map.get("deliveries_digest") {
            None => [0; 32],
            Some(Value::String(s)) => {
                hex32(s).ok_or_else(|| sub("deliveries_digest", "expected 64 hex digits".into()))?
            }
            Some(other) => {
                return Err(sub("deliveries_digest", format!("expected 64 hex digits, got {}", kind(other))));
            }
        };
        Ok(ReceiptSpec { signer, acknowledged_total, deliveries_digest })
    }
}

fn map_fields(map: &Map<String, Value>) -> BTreeMap<&str, &Value> {
    map.iter().map(|(k, v)| (k.as_str(), v)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(json: &str) -> String {
        parse(json).expect_err("should be refused").to_string()
    }

    #[test]
    fn amounts_accept_numbers_and_strings_and_refuse_the_rest() {
        assert_eq!(amount(&serde_json::json!(5)), Ok(5));
        assert_eq!(amount(&serde_json::json!("340282366920938463463374607431768211455")), Ok(u128::MAX));
        assert!(amount(&serde_json::json!("340282366920938463463374607431768211456")).is_err());
        assert!(amount(&serde_json::json!(-1)).is_err());
        assert!(amount(&serde_json::json!(1.5)).is_err());
        assert!(amount(&serde_json::json!("1.5")).is_err());
        assert!(amount(&serde_json::json!("-1")).is_err());
        assert!(amount(&serde_json::json!(" 1")).is_err());
        assert!(amount(&serde_json::json!(null)).is_err());
        assert!(amount(&serde_json::json!(1e30)).is_err());
    }

    #[test]
    fn errors_name_step_and_field() {
        let base = r#"{"accounts": {"alice": "1000", "bob": 0}, "steps": [STEP]}"#;
        let with = |step: &str| base.replace("STEP", step);
        assert_eq!(
            err(&with(
                r#"{"t": 0, "op": "create_stream", "signer": "alice", "vault_id": 0, "provider": "bob", "rate": -1, "allocation": 1}"#
            )),
            "step 0 (create_stream): field \"rate\": expected a non-negative integer (JSON numbers up to 2^64 - 1; write larger amounts as decimal strings), got -1"
        );
        assert_eq!(
            err(&with(r#"{"t": 0, "op": "fly", "signer": "alice"}"#)).split(" (expected").next(),
            Some("step 0: field \"op\": unknown op \"fly\"")
        );
        assert_eq!(
            err(&with(r#"{"t": 0, "op": "deposit", "signer": "mallory", "vault_id": 0, "amount": 1}"#)),
            "step 0 (deposit): field \"signer\": unknown account name \"mallory\" (not in \"accounts\")"
        );
        assert_eq!(
            err(&with(r#"{"t": 0, "op": "deposit", "signer": "alice", "vault_id": 0, "amount": 1, "colour": "red"}"#)),
            "step 0 (deposit): field \"colour\": unknown field for this op"
        );
        assert_eq!(
            err(&with(r#"{"t": 5, "op": "observe"}, {"t": 4, "op": "observe"}"#)),
            "step 1 (observe): field \"t\": 4 is earlier than the previous step's t = 5"
        );
        assert_eq!(
            err(&with(r#"{"t": 0, "op": "deposit", "signer": "alice", "vault_id": 0, "amount": "1.5"}"#)),
            "step 0 (deposit): field \"amount\": expected a non-negative decimal integer string, got \"1.5\""
        );
        assert_eq!(
            err(&with(r#"{"t": 0, "op": "deposit", "signer": "alice", "vault_id": 0}"#)),
            "step 0 (deposit): field \"amount\": missing"
        );
        assert!(err(r#"{"accounts": {"alice": 1}, "steps": [], "extra": 1}"#).contains("field \"extra\""));
        assert!(err("{").starts_with("not valid JSON"));
        assert!(
            err(r#"{"accounts": {"a": "340282366920938463463374607431768211455", "b": 1}, "steps": []}"#)
                .contains("2^128")
        );
    }
}
