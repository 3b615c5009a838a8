//! Malformed and hostile requests get JSON-RPC errors (or failed receipts, for runtime-level
//! failures like a wrong nonce), and the node keeps answering.

use crate::common::*;
use paystreams_lez_core::crypto::Signature;
use paystreams_node::{NodeConfig, start};
use paystreams_rpc::{LezApiClient as _, TxStatus, codes};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_errors_and_the_node_stays_up() {
    let node = start(NodeConfig::ephemeral_dev()).await.expect("start");
    let addr = node.local_addr();
    let client = http(&node.rpc_url());
    let key = node.dev_keys()[0].clone();
    let other = node.dev_keys()[1].account_id();

    // Malformed JSON: parse error.
    assert_eq!(code(&rpc_raw(addr, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":").await), -32700);
    // Unknown method.
    assert_eq!(code(&rpc_raw(addr, r#"{"jsonrpc":"2.0","id":1,"method":"nope","params":[]}"#).await), -32601);
    // Wrong parameter types.
    assert_eq!(code(&rpc_raw(addr, r#"{"jsonrpc":"2.0","id":1,"method":"getBlock","params":["abc"]}"#).await), -32602);
    assert_eq!(
        code(&rpc_raw(addr, r#"{"jsonrpc":"2.0","id":1,"method":"getAccount","params":["not-base58-0OIl"]}"#).await),
        -32602
    );
    assert_eq!(
        code(
            &rpc_raw(
                addr,
                r#"{"jsonrpc":"2.0","id":1,"method":"paystreams_listStreams","params":[{"owner":1,"x":2}]}"#
            )
            .await
        ),
        -32602
    );
    // Oversized body (over the 1 MiB limit): refused before parsing.
    let huge = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"sendTransaction","params":["{}"]}}"#,
        "A".repeat(2 * 1024 * 1024)
    );
    let (status, body) = raw(addr, "POST", "/", huge.as_bytes()).await;
    assert!(status == 413 || body.contains("-32007") || body.contains("too big"), "{status} {body}");
    // A batch over the limit.
    let batch: Vec<String> = (0..=paystreams_node::MAX_BATCH_LEN)
        .map(|i| format!(r#"{{"jsonrpc":"2.0","id":{i},"method":"getLastBlockId"}}"#))
        .collect();
    let response = rpc_raw(addr, &format!("[{}]", batch.join(","))).await;
    assert!(response.get("error").is_some(), "{response}");

    // Garbage base64, and base64 of garbage.
    let e = rpc_error(client.send_transaction("!!!not base64!!!".into()).await);
    assert_eq!(e.code(), codes::TRANSACTION_REJECTED);
    assert!(e.message().contains("base64"), "{}", e.message());
    let e = rpc_error(client.send_transaction("AAECAwQ=".into()).await);
    assert_eq!(e.code(), codes::TRANSACTION_REJECTED);
    assert_eq!(e.data().map(|d| d.get()), Some(r#"{"code":1002,"name":"MalformedTransaction"}"#));
    // LEZ envelopes of the kinds this chain does not carry: refused by name.
    for (envelope, kind) in [("AQAAAAA=", "PrivacyPreserving"), ("AgMAAAB/RUw=", "ProgramDeployment")] {
        let e = rpc_error(client.send_transaction(envelope.into()).await);
        assert_eq!(e.code(), codes::TRANSACTION_REJECTED);
        assert!(e.message().contains(kind), "{}", e.message());
        assert_eq!(
            e.data().map(|d| d.get()),
            Some(r#"{"code":1006,"name":"UnsupportedTransaction"}"#),
            "{}",
            e.message()
        );
    }
    // A public transaction without its envelope tag is not a LEZ transaction.
    let untagged = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(transfer(&key, other, 1, 0).borsh_bytes())
    };
    assert_eq!(rpc_error(client.send_transaction(untagged).await).code(), codes::TRANSACTION_REJECTED);

    // Bad signature: refused at submission, naming the signer.
    let mut tx = transfer(&key, other, 1, 0);
    tx.witness_set.signatures_and_public_keys[0].0 = Signature([7; 64]);
    let e = rpc_error(client.send_transaction(b64(&tx)).await);
    assert_eq!(e.code(), codes::TRANSACTION_REJECTED);
    assert!(e.message().contains("does not verify"), "{}", e.message());

    // Duplicate account ids: refused at submission.
    let mut tx = transfer(&key, key.account_id(), 1, 0);
    tx = sign_message(tx, &key);
    let e = rpc_error(client.send_transaction(b64(&tx)).await);
    assert_eq!(e.code(), codes::TRANSACTION_REJECTED);
    assert!(e.message().contains("listed twice"), "{}", e.message());

    // Wrong nonce: refused at admission against the account's nonce, saying which is next.
    let e = rpc_error(client.send_transaction(b64(&transfer(&key, other, 1, 5))).await);
    assert_eq!(e.code(), codes::TRANSACTION_REJECTED);
    assert_eq!(e.data().map(|d| d.get()), Some(r#"{"code":1103,"name":"NonceGap"}"#));
    assert!(e.message().contains("next nonce is 0"), "{}", e.message());
    // A transfer to an unclaimed account that did not sign: known only in execution, so it is
    // included as a failed transaction with code 1043.
    let stranger = paystreams_lez_core::crypto::SecretKey::generate().account_id();
    let receipt = send(&client, &transfer(&key, stranger, 1, 0)).await;
    assert_eq!(receipt.status, TxStatus::Failed);
    assert_eq!(receipt.error.as_ref().map(|e| (e.code, e.name.as_str())), Some((1043, "UnauthorizedClaim")));

    // Still answering, and the good path still works.
    let receipt = send(&client, &transfer(&key, other, 1, 0)).await;
    assert_eq!(receipt.status, TxStatus::Included);
    let (status, body) = raw(addr, "GET", "/health", b"").await;
    assert_eq!(status, 200);
    let health: Value = serde_json::from_str(&body).expect("health json");
    // Genesis (1), the block after it (2), then one block per transaction sent.
    assert_eq!(health["height"].as_u64(), Some(4));
    let (status, body) = raw(addr, "GET", "/metrics", b"").await;
    assert_eq!(status, 200);
    assert!(body.contains("paystreams_block_height 4"), "{body}");
    assert!(body.contains("paystreams_transactions_total 2"), "{body}");
    assert!(body.contains("paystreams_transaction_failures_total{code=\"1043\"} 1"), "{body}");
    assert!(body.contains("paystreams_mempool_size 0"), "{body}");
    assert!(body.contains("paystreams_tx_per_second"), "{body}");
    node.shutdown().await;
}

/// Re-signs a transaction's (possibly edited) message.
fn sign_message(
    tx: paystreams_runtime::Transaction,
    key: &paystreams_lez_core::crypto::SecretKey,
) -> paystreams_runtime::Transaction {
    paystreams_runtime::Transaction::sign(tx.message, &[key])
}
