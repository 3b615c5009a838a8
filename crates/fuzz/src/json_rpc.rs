//! The node's JSON-RPC module, driven in process over an in-memory chain.
//!
//! The module is the one the node serves (automine on, dev methods off, so a request cannot
//! mine blocks on its own). The chain is created once, from a fixed genesis of four funded
//! keys, and recreated when it has grown past [`CHAIN_HEIGHT_MAX`] blocks. The first input
//! byte picks arbitrary text, a structured request (a real method name, LEZ's or a
//! `paystreams_*` one, with parameters built from the input) or a `sendTransaction` of a signed
//! transaction built from the input.
//!
//! Checks: every request that parses gets one well-formed JSON-RPC 2.0 response echoing its id,
//! with a result or an error whose code is one this API documents; the state root and the head
//! do not move unless a transaction was admitted, and an admitted transaction passed decoding,
//! the stateless checks and its signatures, and is committed under the hash returned. Whether a
//! transaction that passes those checks is admitted or refused (and with which code) is
//! predicted by [`Admission`], an independent model of the node's admission rules.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, OnceLock},
};

use base64::Engine as _;
use jsonrpsee::RpcModule;
use paystreams_lez_core::{
    AccountId,
    crypto::SecretKey,
    lez_release::LezRelease,
    risc0_words::from_words,
    sha256,
    transfer::{TransferInstruction, authenticated_transfer_program_id},
};
use paystreams_node::{
    Chain, ChainConfig, MemStorage, RpcMethods, Storage as _,
    block::{GenesisAccount, GenesisSpec, StoredBlock},
    chain::{genesis_parts, genesis_state},
    rpc::RpcServer,
};
use paystreams_program::{client, payment_streams_program_id, state::VaultPrivacyTier};
use paystreams_rpc::codes;
use paystreams_runtime::{MAX_TRANSACTION_BYTES, Message, Transaction, TransactionChecks as _};
use serde_json::{Map, Value, json};

use crate::{source::Source, transaction::sign};

/// Blocks after which the chain is recreated, bounding memory over long fuzzing runs.
pub const CHAIN_HEIGHT_MAX: u64 = 2_048;
/// Dev accounts at genesis.
const KEYS: usize = 4;
/// Subscription notifications buffered per call (none are read).
const SUBSCRIPTION_BUFFER: usize = 16;

/// The error codes a response may carry: jsonrpsee's request errors and this API's own
/// (`paystreams_rpc::codes`). Internal (-32603) and storage (-32010) errors mean a bug here.
const KNOWN_ERROR_CODES: [i64; 8] = [
    -32600, // invalid request
    -32601, // method not found
    -32602, // invalid params
    codes::TRANSACTION_REJECTED as i64,
    codes::MEMPOOL_FULL as i64,
    codes::DEV_METHOD_DISABLED as i64,
    codes::DUPLICATE_TRANSACTION as i64,
    codes::NOT_FOUND as i64,
];

struct Fixture {
    runtime: tokio::runtime::Runtime,
    chain: Arc<Chain>,
    module: RpcModule<()>,
    methods: Vec<&'static str>,
    keys: Vec<SecretKey>,
}

fn dev_key(index: usize) -> SecretKey {
    match SecretKey::from_bytes(&sha256(&[b"paystreams-fuzz/json-rpc/", &index.to_le_bytes()])) {
        Ok(key) => key,
        Err(_) => panic!("fixed fuzz key {index} is a valid secp256k1 scalar"),
    }
}

fn build() -> Fixture {
    let keys: Vec<SecretKey> = (0..KEYS).map(dev_key).collect();
    let release = LezRelease::DEFAULT;
    let sequencer = dev_key(KEYS);
    let spec = GenesisSpec {
        release,
        sequencer: sequencer.public_key(),
        accounts: keys.iter().map(|k| GenesisAccount { secret_key: k.to_bytes(), balance: 1_000_000_000 }).collect(),
    };
    let runtime = paystreams_runtime::Runtime::for_release(release);
    let state = match genesis_state(&spec, &runtime) {
        Ok(state) => state,
        Err(error) => panic!("in-memory genesis failed: {error}"),
    };
    let head = StoredBlock::seal(genesis_parts(&state), &sequencer, runtime.builtin_ids().clock);
    let storage = Arc::new(MemStorage::new());
    if let Err(error) = storage.init(&spec, &head, &state) {
        panic!("in-memory genesis failed: {error}");
    }
    let config = ChainConfig { release, sequencer, dev_accounts: 0, dev_balance: 0 };
    let chain = match Chain::open(storage, &config) {
        Ok(chain) => Arc::new(chain),
        Err(error) => panic!("in-memory chain failed to open: {error}"),
    };
    let module = match RpcServer::new(Arc::clone(&chain), true, false).into_module(RpcMethods::All) {
        Ok(module) => module,
        Err(error) => panic!("the node's RPC module failed to build: {error}"),
    };
    let mut methods: Vec<&'static str> = module.method_names().collect();
    methods.sort_unstable();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => panic!("tokio runtime failed to start: {error}"),
    };
    Fixture { runtime, chain, module, methods, keys }
}

fn fixture() -> &'static Mutex<Option<Fixture>> {
    static FIXTURE: OnceLock<Mutex<Option<Fixture>>> = OnceLock::new();
    FIXTURE.get_or_init(|| Mutex::new(None))
}

/// Sends one request built from `data` to the node's RPC module and checks the response.
///
/// # Panics
/// When a response is malformed or the chain moved without an admitted transaction.
pub fn json_rpc(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    let mut guard = fixture().lock().unwrap_or_else(|poisoned| {
        // A previous call panicked mid-request: start again from a fresh chain.
        let mut guard = poisoned.into_inner();
        *guard = None;
        guard
    });
    if guard.as_ref().is_some_and(|f| f.chain.head_height() > CHAIN_HEIGHT_MAX) {
        *guard = None;
    }
    let fx = guard.get_or_insert_with(build);
    let mut s = Source::new(rest);
    let request = match mode % 4 {
        0 => String::from_utf8_lossy(rest).into_owned(),
        1 | 2 => structured_request(fx, &mut s),
        _ => send_transaction_request(fx, &mut s),
    };
    check_call(fx, &request);
}

/// What the node's admission decides for one transaction sent, predicted before the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Predicted {
    /// Fails decoding, the stateless checks or a signature, or is a duplicate: refused, by
    /// rules this harness checks otherwise.
    Other,
    Admitted,
    /// Refused against the state and the mempool, with this `data.code`.
    Refused(u32),
}

/// The node's admission rules against the committed state and the mempool (docs/node.md
/// "Refusals"), modelled from the rules, not the node's code, for the transactions of one
/// request: the mempool is empty before each request (automine commits what a request admitted
/// before it answers), so each signer's next nonce is its committed one, then one more per
/// transaction of the request already admitted, and an authenticated transfer's sender must cover
/// it with what the request's earlier admitted transfers left. (A request carries at most 1,000
/// transactions, the per-signer pending bound, so `TooManyPending` cannot occur here.)
#[derive(Default)]
struct Admission {
    next: HashMap<AccountId, u128>,
    spent: HashMap<AccountId, u128>,
    seen: HashSet<[u8; 32]>,
}

impl Admission {
    fn predict(&mut self, fx: &Fixture, text: &str) -> Predicted {
        let Ok(tx) = offline_checks(text) else { return Predicted::Other };
        let hash = tx.hash();
        if !self.seen.insert(hash) || !matches!(fx.chain.receipt(&hash), Ok(None)) {
            return Predicted::Other;
        }
        let signers: Vec<(AccountId, u128)> = tx.signer_ids().into_iter().zip(tx.message.nonces.clone()).collect();
        for (signer, given) in &signers {
            let committed = fx.chain.account(signer).nonce;
            let next = self.next.get(signer).copied().unwrap_or(committed);
            if *given < committed {
                return Predicted::Refused(1101);
            }
            if *given > next {
                return Predicted::Refused(1103);
            }
            if *given < next {
                return Predicted::Refused(1102);
            }
        }
        let transfer = (tx.message.program_id == authenticated_transfer_program_id())
            .then(|| from_words::<TransferInstruction>(&tx.message.instruction_data).ok())
            .flatten()
            .and_then(|instruction| match (instruction, tx.message.account_ids.as_slice()) {
                (TransferInstruction::Transfer { amount }, [sender, _]) => Some((*sender, amount)),
                _ => None,
            });
        if let Some((sender, amount)) = transfer {
            let left = fx.chain.account(&sender).balance.saturating_sub(self.spent.get(&sender).copied().unwrap_or(0));
            if left < amount {
                return Predicted::Refused(1105);
            }
            let spent = self.spent.entry(sender).or_default();
            *spent = spent.saturating_add(amount);
        }
        for (signer, given) in signers {
            self.next.insert(signer, given.saturating_add(1));
        }
        Predicted::Admitted
    }
}

/// A fragment of the message of each admission refusal (batch entries carry no `data`).
fn refusal_fragment(code: u32) -> &'static str {
    match code {
        1101 => "is stale: the account's next nonce is",
        1102 => "is already used by a pending transaction",
        1103 => "leaves a gap",
        1105 => "cannot cover a transfer",
        _ => "transaction rejected",
    }
}

/// The transactions a `paystreams_sendTransactions` request carries, when it is a list.
fn batch_param(parsed: &jsonrpsee::types::Request<'_>) -> Option<Vec<Value>> {
    let params: Value = serde_json::from_str(parsed.params.as_deref()?.get()).ok()?;
    match params {
        Value::Array(items) => items.into_iter().next()?.as_array().cloned(),
        Value::Object(mut fields) => fields.remove("transactions")?.as_array().cloned(),
        _ => None,
    }
}

fn check_call(fx: &Fixture, request: &str) {
    let root = fx.chain.state_root();
    let height = fx.chain.head_height();
    // Admission predicted on the state before the call.
    let predicted: Vec<Predicted> = match serde_json::from_str::<jsonrpsee::types::Request<'_>>(request) {
        Ok(parsed) if parsed.method == "sendTransaction" => {
            let text = transaction_param(parsed.params.as_deref().map(serde_json::value::RawValue::get));
            text.map(|t| vec![Admission::default().predict(fx, &t)]).unwrap_or_default()
        }
        Ok(parsed) if parsed.method == "paystreams_sendTransactions" => {
            let mut model = Admission::default();
            batch_param(&parsed)
                .filter(|items| items.len() <= 1_000)
                .map(|items| {
                    items.iter().map(|v| v.as_str().map_or(Predicted::Other, |t| model.predict(fx, t))).collect()
                })
                .unwrap_or_default()
        }
        _ => vec![],
    };
    let outcome = fx.runtime.block_on(fx.module.raw_json_request(request, SUBSCRIPTION_BUFFER));
    let Ok((response, subscription)) = outcome else {
        // Not a JSON-RPC request: the server answers a parse error, nothing runs.
        assert_eq!(fx.chain.state_root(), root, "an unparsable request changed the state");
        assert_eq!(fx.chain.head_height(), height, "an unparsable request produced a block");
        return;
    };
    drop(subscription);
    let parsed: jsonrpsee::types::Request<'_> = match serde_json::from_str(request) {
        Ok(parsed) => parsed,
        Err(error) => panic!("the module answered a request that does not parse ({error}): {request}"),
    };
    let response: Value = match serde_json::from_str(response.get()) {
        Ok(value) => value,
        Err(error) => panic!("response is not JSON ({error}): {}", response.get()),
    };
    let Some(object) = response.as_object() else { panic!("response is not an object: {response}") };
    assert_eq!(object.get("jsonrpc"), Some(&json!("2.0")), "response without jsonrpc 2.0: {response}");
    let id = serde_json::to_value(&parsed.id).unwrap_or(Value::Null);
    assert_eq!(object.get("id"), Some(&id), "response does not echo the request id: {response}");
    let success = match (object.get("result"), object.get("error")) {
        (Some(_), None) => true,
        (None, Some(error)) => {
            let code = error.get("code").and_then(Value::as_i64);
            let message = error.get("message").and_then(Value::as_str);
            assert!(message.is_some(), "error without a message: {response}");
            assert!(
                code.is_some_and(|c| KNOWN_ERROR_CODES.contains(&c)),
                "error code outside the API's codes for {request}: {response}"
            );
            false
        }
        _ => panic!("response needs exactly one of result and error: {response}"),
    };
    let method: &str = &parsed.method;
    let transaction_param = transaction_param(parsed.params.as_deref().map(serde_json::value::RawValue::get));
    if method == "sendTransaction" && predicted.first() == Some(&Predicted::Admitted) {
        assert!(success, "the node refused a transaction its admission rules accept: {request}: {response}");
    }
    if method == "sendTransaction"
        && let Some(Predicted::Refused(code)) = predicted.first()
    {
        assert_eq!(
            object.get("error").and_then(|e| e.pointer("/data/code")).and_then(Value::as_u64),
            Some(u64::from(*code)),
            "the node did not refuse with admission code {code}: {request}: {response}"
        );
    }
    if method == "sendTransaction" && success {
        let Some(text) = transaction_param else {
            panic!("sendTransaction succeeded without a transaction: {request}")
        };
        let tx = match offline_checks(&text) {
            Ok(tx) => tx,
            Err(why) => panic!("the node admitted a transaction that fails {why}: {request}"),
        };
        let hash = tx.hash();
        assert_eq!(object.get("result"), Some(&json!(hex::encode(hash))), "returned hash is not the transaction's");
        match fx.chain.receipt(&hash) {
            Ok(Some(_)) => {}
            other => panic!("admitted transaction not committed under automine: {other:?}"),
        }
        assert!(fx.chain.head_height() > height, "automine did not produce a block");
    } else if method == "paystreams_sendTransactions"
        && success
        && batch_admitted(fx, &parsed, object.get("result"), &predicted, request)
    {
        // At least one transaction of the batch was admitted (each checked above): the chain
        // moves by exactly what was admitted.
        assert!(fx.chain.head_height() > height, "automine did not produce a block for an admitted batch: {request}");
    } else {
        if method == "sendTransaction"
            && object.get("error").and_then(|e| e.get("code")).and_then(Value::as_i64)
                == Some(i64::from(codes::TRANSACTION_REJECTED))
            && let Some(text) = &transaction_param
            && text.len() <= MAX_TRANSACTION_BYTES
            // Refusals against the state and the mempool (a stale nonce, ...) pass the offline checks.
            && !object
                .get("error")
                .and_then(|e| e.pointer("/data/code"))
                .and_then(Value::as_u64)
                .is_some_and(|c| u32::try_from(c).is_ok_and(|c| paystreams_node::chain::Refusal::CODES.contains(&c)))
        {
            assert!(
                offline_checks(text).is_err(),
                "the node rejected a transaction that passes every check: {request}"
            );
        }
        assert_eq!(fx.chain.state_root(), root, "state changed without an admitted transaction: {request}");
        assert_eq!(fx.chain.head_height(), height, "a block was produced without an admitted transaction: {request}");
    }
}

/// Checks a successful `paystreams_sendTransactions` answer against its request: one outcome per
/// transaction sent, in order; each admitted one (a hash) passes every offline check, is
/// answered with its own hash and is committed; each refused one (an error) carries an API
/// error code. Whether any transaction was admitted.
fn batch_admitted(
    fx: &Fixture,
    parsed: &jsonrpsee::types::Request<'_>,
    result: Option<&Value>,
    predicted: &[Predicted],
    request: &str,
) -> bool {
    let params: Option<Value> = parsed.params.as_deref().and_then(|p| serde_json::from_str(p.get()).ok());
    let sent = match &params {
        Some(Value::Array(items)) => items.first(),
        Some(Value::Object(fields)) => fields.get("transactions"),
        _ => None,
    };
    let Some(Value::Array(sent)) = sent else {
        panic!("paystreams_sendTransactions succeeded without a list: {request}")
    };
    let Some(Value::Array(outcomes)) = result else {
        panic!("paystreams_sendTransactions answered no list: {request}")
    };
    assert_eq!(outcomes.len(), sent.len(), "one outcome per transaction sent: {request}");
    assert_eq!(predicted.len(), sent.len(), "every entry predicted: {request}");
    let mut admitted = false;
    for ((text, outcome), predicted) in sent.iter().zip(outcomes).zip(predicted) {
        match predicted {
            Predicted::Admitted => {
                assert!(
                    outcome.get("hash").is_some(),
                    "refused an entry the admission rules accept: {outcome}: {request}"
                );
            }
            Predicted::Refused(code) => {
                let message = outcome.pointer("/error/message").and_then(Value::as_str).unwrap_or_default();
                assert!(
                    outcome.pointer("/error/code").and_then(Value::as_i64)
                        == Some(i64::from(codes::TRANSACTION_REJECTED))
                        && message.contains(refusal_fragment(*code)),
                    "entry not refused as admission code {code}: {outcome}: {request}"
                );
            }
            Predicted::Other => {}
        }
        match (outcome.get("hash"), outcome.get("error")) {
            (Some(hash), None) => {
                let text = text.as_str().unwrap_or_else(|| panic!("an admitted entry is not a string: {request}"));
                let tx = offline_checks(text)
                    .unwrap_or_else(|why| panic!("the node admitted a transaction that fails {why}: {request}"));
                assert_eq!(hash, &json!(hex::encode(tx.hash())), "returned hash is not the transaction's");
                match fx.chain.receipt(&tx.hash()) {
                    Ok(Some(_)) => {}
                    other => panic!("admitted transaction not committed under automine: {other:?}"),
                }
                admitted = true;
            }
            (None, Some(error)) => {
                let code = error.get("code").and_then(Value::as_i64);
                assert!(
                    code.is_some_and(|c| KNOWN_ERROR_CODES.contains(&c)),
                    "batch entry error code outside the API's codes for {request}: {outcome}"
                );
            }
            _ => panic!("a batch outcome needs exactly one of hash and error: {outcome}"),
        }
    }
    admitted
}

/// `sendTransaction`'s `tx` parameter, positional or named, when it is a string.
fn transaction_param(params: Option<&str>) -> Option<String> {
    let params: Value = serde_json::from_str(params?).ok()?;
    let value = match &params {
        Value::Array(items) => items.first()?,
        Value::Object(fields) => fields.get("tx")?,
        _ => return None,
    };
    value.as_str().map(str::to_owned)
}

/// What admission requires: base64 of a transaction that decodes, passes the stateless checks
/// and carries valid signatures.
fn offline_checks(text: &str) -> Result<Transaction, String> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(text.trim()).map_err(|e| format!("base64: {e}"))?;
    let tx = Transaction::decode(&bytes).map_err(|e| format!("decoding: {e}"))?;
    tx.check_structure().map_err(|e| format!("structure: {e}"))?;
    tx.verify_signatures().map_err(|e| format!("signatures: {e}"))?;
    Ok(tx)
}

/// A request for a real method (sometimes an unknown one) with parameters built from the input.
fn structured_request(fx: &Fixture, s: &mut Source<'_>) -> String {
    let method = if s.one_in(16) {
        Value::String(String::from_utf8_lossy(s.bytes(12)).into_owned())
    } else {
        Value::String(fx.methods.get(s.below(fx.methods.len())).copied().unwrap_or("getLastBlockId").to_owned())
    };
    let id = match s.byte() % 6 {
        0 => Value::Null,
        1 => Value::String(String::from_utf8_lossy(s.bytes(8)).into_owned()),
        2 => json!(-1),
        3 => json!(1.5),
        _ => json!(s.u64()),
    };
    let mut request = Map::new();
    request.insert("jsonrpc".into(), if s.one_in(32) { json!("1.0") } else { json!("2.0") });
    if !s.one_in(32) {
        request.insert("id".into(), id);
    }
    request.insert("method".into(), method);
    match s.byte() % 8 {
        0 => {}
        1 => {
            request.insert("params".into(), value(fx, s, 2));
        }
        2 => {
            let mut fields = Map::new();
            for _ in 0..s.below(4) {
                fields.insert(key_name(s), value(fx, s, 2));
            }
            request.insert("params".into(), Value::Object(fields));
        }
        _ => {
            let params = (0..s.below(4)).map(|_| value(fx, s, 2)).collect();
            request.insert("params".into(), Value::Array(params));
        }
    }
    let mut text = Value::Object(request).to_string().into_bytes();
    if s.one_in(8) {
        s.mutate(&mut text, 3);
    }
    String::from_utf8_lossy(&text).into_owned()
}

fn key_name(s: &mut Source<'_>) -> String {
    const NAMES: [&str; 17] = [
        "tx",
        "tx_hash",
        "txHash",
        "commitments",
        "accountId",
        "owner",
        "provider",
        "vault_id",
        "stream_id",
        "account_id",
        "account_ids",
        "hash",
        "transaction",
        "block_id",
        "start_block_id",
        "end_block_id",
        "seconds",
    ];
    if s.one_in(8) {
        String::from_utf8_lossy(s.bytes(6)).into_owned()
    } else {
        NAMES.get(s.below(NAMES.len())).copied().unwrap_or("owner").to_owned()
    }
}

/// A JSON value, mostly of the shapes the API's parameters take (account ids, hashes, block
/// numbers, filters), nested at most `depth` levels.
fn value(fx: &Fixture, s: &mut Source<'_>, depth: u8) -> Value {
    match s.byte() % 14 {
        0 => Value::Null,
        1 => Value::Bool(s.bool()),
        2 => json!(s.interesting_u64()),
        3 => json!(i64::from(s.u32()).wrapping_neg()),
        4 => serde_json::Number::from_f64(f64::from(s.u32()) / 7.0).map_or(Value::Null, Value::Number),
        5 => json!(u64::from(s.byte() % 8)),
        6 => Value::String(account_id(fx, s).to_string()),
        7 => Value::String(hex::encode(s.array::<32>())),
        8 => Value::String(s.interesting_u128().to_string()),
        9 => {
            let len = usize::from(s.byte() % 48);
            Value::String(String::from_utf8_lossy(s.bytes(len)).into_owned())
        }
        10 => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(signed_transaction(fx, s).envelope_bytes()))
        }
        11 if depth > 0 => Value::Array((0..s.below(4)).map(|_| value(fx, s, depth.saturating_sub(1))).collect()),
        12 if depth > 0 => {
            let mut fields = Map::new();
            for _ in 0..s.below(4) {
                fields.insert(key_name(s), value(fx, s, depth.saturating_sub(1)));
            }
            Value::Object(fields)
        }
        _ => json!(s.u32()),
    }
}

fn account_id(fx: &Fixture, s: &mut Source<'_>) -> AccountId {
    match s.byte() % 4 {
        0 => AccountId(s.array()),
        _ => fx.keys.get(s.below(KEYS)).map_or(AccountId([0; 32]), SecretKey::account_id),
    }
}

/// A transaction from a dev key: mostly a valid transfer or vault initialisation at the
/// signer's current nonce, sometimes a stale nonce or arbitrary instruction words.
fn signed_transaction(fx: &Fixture, s: &mut Source<'_>) -> Transaction {
    let Some(key) = fx.keys.get(s.below(KEYS)) else { return sign(empty_message(), &[]) };
    let mut nonce = fx.chain.account(&key.account_id()).nonce;
    if s.one_in(8) {
        nonce = nonce.wrapping_sub(1);
    }
    let message = match s.byte() % 4 {
        0 | 1 => Message {
            program_id: authenticated_transfer_program_id(),
            account_ids: vec![key.account_id(), account_id(fx, s)],
            nonces: vec![nonce],
            instruction_data: paystreams_lez_core::transfer::transfer_instruction(u128::from(s.u16())),
        },
        2 => {
            let vault = client::VaultRef::native(payment_streams_program_id(), key.account_id(), u64::from(s.byte()));
            client::initialize_vault(&vault, VaultPrivacyTier::Public).message(vec![nonce])
        }
        _ => Message {
            program_id: payment_streams_program_id(),
            account_ids: (0..s.below(4)).map(|_| account_id(fx, s)).collect(),
            nonces: vec![nonce],
            instruction_data: s.words(12),
        },
    };
    let hash = message.hash();
    let aux = s.array::<32>();
    let signature = key.sign_with_aux(&hash, &aux);
    Transaction {
        message,
        witness_set: paystreams_runtime::WitnessSet { signatures_and_public_keys: vec![(signature, key.public_key())] },
    }
}

fn empty_message() -> Message {
    Message { program_id: payment_streams_program_id(), account_ids: vec![], nonces: vec![], instruction_data: vec![] }
}

/// `sendTransaction` of a transaction built from the input, its bytes or its text sometimes
/// mutated, with positional or named parameters.
fn send_transaction_request(fx: &Fixture, s: &mut Source<'_>) -> String {
    let mut bytes = signed_transaction(fx, s).envelope_bytes();
    if s.one_in(4) {
        s.mutate(&mut bytes, 3);
    }
    let mut text = base64::engine::general_purpose::STANDARD.encode(&bytes);
    if s.one_in(8) {
        let mut raw = text.into_bytes();
        s.mutate(&mut raw, 2);
        text = String::from_utf8_lossy(&raw).into_owned();
    }
    // One in four goes as a batch of one (`paystreams_sendTransactions`), positional or named.
    let (method, params) = match (s.one_in(4), s.bool()) {
        (false, true) => ("sendTransaction", json!([text])),
        (false, false) => ("sendTransaction", json!({ "tx": text })),
        (true, true) => ("paystreams_sendTransactions", json!([[text]])),
        (true, false) => ("paystreams_sendTransactions", json!({ "transactions": [text] })),
    };
    json!({ "jsonrpc": "2.0", "id": s.u32(), "method": method, "params": params }).to_string()
}

/// Requests for a few methods as text (mode byte 0), and structured and transaction inputs.
#[must_use]
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let dev = dev_key(0).account_id().to_string();
    let other = dev_key(1);
    let transfer = sign(
        Message {
            program_id: authenticated_transfer_program_id(),
            account_ids: vec![dev_key(0).account_id(), other.account_id()],
            nonces: vec![0],
            instruction_data: paystreams_lez_core::transfer::transfer_instruction(10),
        },
        &[&dev_key(0)],
    );
    let texts = [
        ("get-last-block-id", json!({"jsonrpc": "2.0", "id": 1, "method": "getLastBlockId"})),
        ("get-account", json!({"jsonrpc": "2.0", "id": 2, "method": "getAccount", "params": [dev]})),
        (
            "get-block-range",
            json!({"jsonrpc": "2.0", "id": "r", "method": "paystreams_getBlockRange", "params": [0, 0]}),
        ),
        (
            "list-streams",
            json!({"jsonrpc": "2.0", "id": 3, "method": "paystreams_listStreams", "params": [{"owner": dev}]}),
        ),
        (
            "get-vault",
            json!({"jsonrpc": "2.0", "id": 4, "method": "paystreams_getVault",
                   "params": {"owner": dev, "vault_id": 0}}),
        ),
        (
            "get-accounts-nonces",
            json!({"jsonrpc": "2.0", "id": 7, "method": "getAccountsNonces", "params": {"accountIds": [dev]}}),
        ),
        (
            "send-transaction",
            json!({"jsonrpc": "2.0", "id": 5, "method": "sendTransaction",
                   "params": [base64::engine::general_purpose::STANDARD.encode(transfer.envelope_bytes())]}),
        ),
        ("subscribe-blocks", json!({"jsonrpc": "2.0", "id": 6, "method": "paystreams_subscribeBlocks"})),
    ];
    let mut seeds: Vec<(String, Vec<u8>)> = texts
        .into_iter()
        .map(|(name, request)| {
            let mut input = vec![0];
            input.extend(request.to_string().into_bytes());
            (format!("text-{name}"), input)
        })
        .collect();
    for (n, mode) in [1_u8, 3].into_iter().enumerate() {
        let mut input = vec![mode];
        input.extend(crate::pseudo_random_bytes(u64::try_from(n).unwrap_or(0), 96));
        seeds.push((format!("built-{mode}"), input));
    }
    seeds
}
