//! Helpers shared by the node's integration tests.

use std::net::SocketAddr;

use base64::Engine as _;
use jsonrpsee::{
    core::ClientError,
    http_client::{HttpClient, HttpClientBuilder},
    types::ErrorObjectOwned,
};
use paystreams_lez_core::{AccountId, crypto::SecretKey, transfer::authenticated_transfer_program_id};
use paystreams_program::{
    client::{self, Call, VaultRef},
    instruction::ExtensionSettings,
    payment_streams_program_id,
    state::VaultPrivacyTier,
};
use paystreams_rpc::{LezApiClient as _, PaystreamsApiClient as _, ReceiptInfo};
use paystreams_runtime::{Message, Transaction};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

pub fn http(url: &str) -> HttpClient {
    HttpClientBuilder::default().build(url).expect("http client")
}

pub fn sign(call: &Call, keys: &[&SecretKey], nonces: Vec<u128>) -> Transaction {
    let message = Message {
        program_id: call.program_id,
        account_ids: call.account_ids.clone(),
        nonces,
        instruction_data: call.instruction_data(),
    };
    Transaction::sign(message, keys)
}

pub fn b64(tx: &Transaction) -> String {
    base64::engine::general_purpose::STANDARD.encode(tx.envelope_bytes())
}

pub fn vault(owner: &SecretKey, vault_id: u64) -> VaultRef {
    VaultRef::native(payment_streams_program_id(), owner.account_id(), vault_id)
}

pub fn init_vault(owner: &SecretKey, vault_id: u64, nonce: u128) -> Transaction {
    sign(&client::initialize_vault(&vault(owner, vault_id), VaultPrivacyTier::Public), &[owner], vec![nonce])
}

pub fn deposit(owner: &SecretKey, vault_id: u64, amount: u128, nonce: u128) -> Transaction {
    sign(
        &client::deposit(&vault(owner, vault_id), amount, authenticated_transfer_program_id(), None),
        &[owner],
        vec![nonce],
    )
}

pub fn create_stream(
    owner: &SecretKey,
    vault_id: u64,
    stream_id: u64,
    provider: AccountId,
    rate: u64,
    allocation: u128,
    nonce: u128,
) -> Transaction {
    let call = client::create_stream(
        &vault(owner, vault_id),
        stream_id,
        provider,
        rate,
        allocation,
        ExtensionSettings::default(),
    );
    sign(&call, &[owner], vec![nonce])
}

pub fn pause(owner: &SecretKey, vault_id: u64, stream_id: u64, nonce: u128) -> Transaction {
    sign(&client::pause_stream(&vault(owner, vault_id), stream_id), &[owner], vec![nonce])
}

pub fn transfer(from: &SecretKey, to: AccountId, amount: u128, nonce: u128) -> Transaction {
    let message = Message {
        program_id: authenticated_transfer_program_id(),
        account_ids: vec![from.account_id(), to],
        nonces: vec![nonce],
        instruction_data: paystreams_lez_core::transfer::transfer_instruction(amount),
    };
    Transaction::sign(message, &[from])
}

/// Sends and returns the receipt (the node in these tests automines, so it is final).
pub async fn send(client: &HttpClient, tx: &Transaction) -> ReceiptInfo {
    let hash = client.send_transaction(b64(tx)).await.expect("send");
    assert_eq!(hash.0, tx.hash());
    client.get_transaction_receipt(hash).await.expect("receipt call").expect("receipt exists")
}

/// The JSON-RPC error of a failed call.
pub fn rpc_error(result: Result<impl std::fmt::Debug, ClientError>) -> ErrorObjectOwned {
    match result {
        Err(ClientError::Call(e)) => e,
        other => panic!("expected a JSON-RPC error, got {other:?}"),
    }
}

/// A raw HTTP/1.1 request; returns the status and the body.
pub async fn raw(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    // The server may answer and close before reading an oversized body; the answer still counts.
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body).await;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

pub async fn rpc_raw(addr: SocketAddr, body: &str) -> Value {
    let (_, body) = raw(addr, "POST", "/", body.as_bytes()).await;
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

pub fn code(response: &Value) -> i64 {
    response["error"]["code"].as_i64().unwrap_or_else(|| panic!("no error in {response}"))
}

/// The text of one JSON-RPC request as jsonrpsee's client writes it: positional parameters, and
/// no `params` member when there are none.
pub fn request_text(id: u64, method: &str, params: &str) -> String {
    if params.is_empty() {
        format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}"}}"#)
    } else {
        format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":{params}}}"#)
    }
}

/// A JSON-RPC response, its result or error kept as raw text (`null` included) so numbers
/// beyond 2^53 are read exactly by whoever decodes them.
#[derive(Debug)]
pub struct RawResponse {
    pub result: Option<Box<serde_json::value::RawValue>>,
    pub error: Option<Box<serde_json::value::RawValue>>,
}

/// Posts one request and returns the response, checking it is JSON-RPC 2.0, echoes the id and
/// has exactly one of `result` and `error` and nothing else.
pub async fn call(addr: SocketAddr, id: u64, method: &str, params: &str) -> RawResponse {
    let (status, body) = raw(addr, "POST", "/", request_text(id, method, params).as_bytes()).await;
    assert_eq!(status, 200, "{method}: {body}");
    let mut members: std::collections::BTreeMap<String, Box<serde_json::value::RawValue>> =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{method}: not a response ({e}): {body}"));
    assert_eq!(members.remove("jsonrpc").map(|v| v.get().to_owned()).as_deref(), Some(r#""2.0""#), "{body}");
    assert_eq!(members.remove("id").map(|v| v.get().to_owned()), Some(id.to_string()), "{body}");
    let response = RawResponse { result: members.remove("result"), error: members.remove("error") };
    assert!(members.is_empty(), "unexpected members in {body}");
    assert!(response.result.is_some() != response.error.is_some(), "exactly one of result and error: {body}");
    response
}

/// The raw result text of a call that must succeed.
pub async fn result_text(addr: SocketAddr, method: &str, params: &str) -> String {
    let response = call(addr, 1, method, params).await;
    match (response.result, response.error) {
        (Some(result), None) => result.get().to_owned(),
        other => panic!("{method}({params}) did not succeed: {other:?}"),
    }
}

/// The error of a call that must fail: its code and message.
pub async fn error_of(addr: SocketAddr, method: &str, params: &str) -> (i64, String) {
    let response = call(addr, 1, method, params).await;
    let Some(error) = response.error else { panic!("{method}({params}) succeeded: {:?}", response.result) };
    let value: serde_json::Value = serde_json::from_str(error.get()).expect("error JSON");
    let code = value["code"].as_i64().unwrap_or_else(|| panic!("no code in {value}"));
    (code, value["message"].as_str().unwrap_or_default().to_owned())
}
