//! Helpers shared by the node's integration tests.

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
use paystreams_rpc::{PaystreamsApiClient as _, ReceiptInfo};
use paystreams_runtime::{Message, Transaction};

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
