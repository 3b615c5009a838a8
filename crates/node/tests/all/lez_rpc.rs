//! LEZ's methods answer with LEZ's JSON shapes, byte for byte where the shape is fixed; our own
//! methods are all `paystreams_*`; a node in LEZ-only mode answers only LEZ's.

use std::sync::Arc;

use crate::common::*;
use paystreams_lez_core::{AccountId, crypto::SecretKey};
use paystreams_node::{NodeConfig, RpcMethods, rpc::RpcServer, start};
use paystreams_rpc::{
    LezApiClient as _, PAYSTREAMS_METHOD_PREFIX, PaystreamsApiClient as _, TxStatus, codes,
    lez::{DUMMY_COMMITMENT, DUMMY_COMMITMENT_HASH, LEZ_METHODS, LezAccount},
};

fn numbers(bytes: &[u8]) -> String {
    format!("[{}]", bytes.iter().map(u8::to_string).collect::<Vec<_>>().join(","))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lez_methods_answer_lezs_json_shapes_with_exact_u128_numbers() {
    let config = NodeConfig { dev_accounts: 2, dev_balance: u128::MAX / 2, ..NodeConfig::ephemeral_dev() };
    let node = start(config).await.expect("start");
    let addr = node.local_addr();
    let rich = node.dev_keys()[0].clone();
    let id = rich.account_id();
    let big = u128::MAX / 2;

    assert_eq!(result_text(addr, "checkHealth", "").await, "null");
    assert_eq!(result_text(addr, "getLastBlockId", "").await, node.chain().head_height().to_string());

    // Balances and nonces are JSON numbers, exact beyond 2^64.
    assert_eq!(result_text(addr, "getAccountBalance", &format!(r#"["{id}"]"#)).await, big.to_string());
    let account = result_text(addr, "getAccount", &format!(r#"["{id}"]"#)).await;
    let owner = node.chain().account(&id).program_owner.0.map(|w| w.to_string()).join(",");
    assert_eq!(account, format!(r#"{{"program_owner":[{owner}],"balance":{big},"data":[],"nonce":0}}"#));
    let typed: LezAccount = serde_json::from_str(&account).expect("LEZ account");
    assert_eq!(typed.balance, big);
    // The generated client reads the same numbers exactly.
    let client = http(&node.rpc_url());
    assert_eq!(client.get_account_balance(id).await.expect("balance"), big);
    assert_eq!(client.get_account(id).await.expect("account"), typed);

    // An unknown account is the default account, never null.
    let nobody = AccountId([9; 32]);
    assert_eq!(
        result_text(addr, "getAccount", &format!(r#"["{nobody}"]"#)).await,
        r#"{"program_owner":[0,0,0,0,0,0,0,0],"balance":0,"data":[],"nonce":0}"#
    );
    assert_eq!(result_text(addr, "getAccountBalance", &format!(r#"["{nobody}"]"#)).await, "0");

    // Parameters by position, or by name in snake_case or lowerCamelCase.
    for params in [format!(r#"[["{id}","{nobody}"]]"#), format!(r#"{{"account_ids":["{id}","{nobody}"]}}"#)] {
        assert_eq!(result_text(addr, "getAccountsNonces", &params).await, "[0,0]");
    }
    assert_eq!(result_text(addr, "getAccountsNonces", &format!(r#"{{"accountIds":["{id}"]}}"#)).await, "[0]");
    assert_eq!(result_text(addr, "getAccountBalance", &format!(r#"{{"accountId":"{id}"}}"#)).await, big.to_string());
    let (code, _) = error_of(addr, "getAccountBalance", r#"["not-base58-0OIl"]"#).await;
    assert_eq!(code, -32602);

    // A transfer moves the nonce; the answer is a number.
    let to = node.dev_keys()[1].account_id();
    let receipt = send(&client, &transfer(&rich, to, 5, 0)).await;
    assert_eq!(receipt.status, TxStatus::Included, "{receipt:?}");
    assert_eq!(result_text(addr, "getAccountsNonces", &format!(r#"[["{id}"]]"#)).await, "[1]");
    assert_eq!(result_text(addr, "getAccountBalance", &format!(r#"["{to}"]"#)).await, (big + 5).to_string());

    // Program ids: arrays of 8 numbers, LEZ's program under LEZ's name, no clock, and our
    // token (not LEZ's token program) under a name of our own.
    let ids: std::collections::BTreeMap<String, [u32; 8]> =
        serde_json::from_str(&result_text(addr, "getProgramIds", "").await).expect("program ids");
    let runtime = node.chain().runtime();
    let by_name: std::collections::BTreeMap<&str, [u32; 8]> =
        runtime.program_ids().filter_map(|p| runtime.program(p).map(|program| (program.name(), p.0))).collect();
    assert_eq!(ids.get("authenticated_transfer"), by_name.get("authenticated_transfer"));
    assert_eq!(ids.get("payment_streams"), by_name.get("payment_streams"));
    assert_eq!(ids.get("paystreams_token"), by_name.get("token"));
    assert!(!ids.contains_key("clock") && !ids.contains_key("token"), "{ids:?}");
    assert_eq!(ids.len(), by_name.len() - 1, "every program but the clock: {ids:?}");
    // Ours still lists every program, the clock too, in hex.
    let hex = client.get_program_ids_hex().await.expect("paystreams_getProgramIds");
    assert_eq!(hex.len(), by_name.len());

    // No private state: LEZ's dummy commitment alone, at index 0 of a one-leaf tree.
    let dummy = numbers(&DUMMY_COMMITMENT);
    let other = numbers(&[1; 32]);
    assert_eq!(
        result_text(addr, "getProofsAndRoot", &format!("[[{dummy},{other}]]")).await,
        format!("[[[0,[]],null],{}]", numbers(&DUMMY_COMMITMENT_HASH))
    );
    assert_eq!(result_text(addr, "getProofForCommitment", &format!("[{other}]")).await, "null");
    assert_eq!(result_text(addr, "getProofForCommitment", &format!("[{dummy}]")).await, "[0,[]]");

    // The channel id: 64 lowercase hex characters, fixed for this chain.
    let channel = result_text(addr, "getChannelId", "").await;
    assert_eq!(channel.len(), 66, "{channel}");
    assert!(channel.trim_matches('"').chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)), "{channel}");
    assert_eq!(result_text(addr, "getChannelId", "").await, channel);
    let second = start(NodeConfig::ephemeral_dev()).await.expect("second node");
    assert_ne!(result_text(second.local_addr(), "getChannelId", "").await, channel, "another chain, another id");
    second.shutdown().await;

    // getTransaction: null for an unknown hash, and null for a failed transaction, which our
    // receipt still reports.
    assert_eq!(result_text(addr, "getTransaction", &format!(r#"["{}"]"#, "ab".repeat(32))).await, "null");
    let stranger = paystreams_lez_core::crypto::SecretKey::generate().account_id();
    let nonce = node.chain().account(&rich.account_id()).nonce;
    let failed = send(&client, &transfer(&rich, stranger, 1, nonce)).await;
    assert_eq!(failed.status, TxStatus::Failed, "{failed:?}");
    assert_eq!(result_text(addr, "getTransaction", &format!(r#"["{}"]"#, failed.hash)).await, "null");
    assert_eq!(result_text(addr, "getTransaction", &format!(r#"{{"txHash":"{}"}}"#, failed.hash)).await, "null");

    // Blocks: from 1 (LEZ's genesis id), base64; a missing one in a range is LEZ's error.
    assert_eq!(result_text(addr, "getBlock", "[0]").await, "null");
    let head = node.chain().head_height();
    let block = result_text(addr, "getBlock", &format!("[{head}]")).await;
    let decoded: paystreams_rpc::lez::LezBlockData = serde_json::from_str(&block).expect("base64 block");
    assert_eq!(decoded.0.header.block_id, head);
    assert_eq!(result_text(addr, "getBlockRange", &format!("[{head},{head}]")).await, format!("[{block}]"));
    let (code, message) = error_of(addr, "getBlockRange", &format!("[1,{}]", head + 1)).await;
    assert_eq!((code, message), (-31999, format!("Block with id {} not found", head + 1)));

    // Block ranges: bounded and ordered.
    let (code, _) = error_of(addr, "getBlockRange", "[5,4]").await;
    assert_eq!(code, -32602);
    let (code, message) = error_of(addr, "getBlockRange", "[0,5000]").await;
    assert_eq!(code, -32602, "{message}");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_transactions_get_lezs_invalid_params_code() {
    let node = start(NodeConfig::ephemeral_dev()).await.expect("start");
    let addr = node.local_addr();
    let (code, message) = error_of(addr, "sendTransaction", r#"["!!!"]"#).await;
    assert_eq!(code, -32602, "{message}");
    assert_eq!(i64::from(codes::TRANSACTION_REJECTED), -32602);
    let (code, _) = error_of(addr, "sendTransaction", r#"{"tx":"AAECAwQ="}"#).await;
    assert_eq!(code, -32602);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_method_is_lezs_or_ours_by_prefix() {
    let node = start(NodeConfig::ephemeral_dev()).await.expect("start");
    let names = |methods| {
        let module = RpcServer::new(Arc::clone(node.chain()), true, true).into_module(methods).expect("module");
        let mut names: Vec<&'static str> = module.method_names().collect();
        names.sort_unstable();
        names
    };
    let all = names(RpcMethods::All);
    let mut lez: Vec<&str> = LEZ_METHODS.to_vec();
    lez.sort_unstable();
    let (ours, theirs): (Vec<&str>, Vec<&str>) =
        all.iter().partition(|name| name.starts_with(PAYSTREAMS_METHOD_PREFIX));
    assert_eq!(theirs, lez, "the unprefixed methods are exactly LEZ's");
    assert!(ours.len() >= 15, "{ours:?}");
    // LEZ-only mode registers the same names (ours answer an error), so nothing is silently
    // missing from either mode.
    assert_eq!(names(RpcMethods::Lez), all);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lez_only_mode_answers_lezs_methods_and_refuses_ours() {
    let config = NodeConfig { rpc_methods: RpcMethods::Lez, ..NodeConfig::ephemeral_dev() };
    let node = start(config).await.expect("start");
    let addr = node.local_addr();
    let key: SecretKey = node.dev_keys()[0].clone();
    let id = key.account_id();

    // LEZ's methods work, including submission.
    assert_eq!(result_text(addr, "checkHealth", "").await, "null");
    let client = http(&node.rpc_url());
    let to = node.dev_keys()[1].account_id();
    let before = client.get_account_balance(to).await.expect("balance");
    client.send_transaction(b64(&transfer(&key, to, 3, 0))).await.expect("send");
    assert_eq!(client.get_account_balance(to).await.expect("balance"), before + 3, "automine included it");
    assert_eq!(result_text(addr, "getAccountsNonces", &format!(r#"[["{id}"]]"#)).await, "[1]");

    // Ours are refused with "method not found", naming the mode and the way out.
    for (method, params) in [
        ("paystreams_getVault", format!(r#"["{id}",0]"#)),
        ("paystreams_getTransactionReceipt", format!(r#"["{}"]"#, "00".repeat(32))),
        ("paystreams_subscribeEvents", "[{}]".to_owned()),
        ("paystreams_devMine", String::new()),
    ] {
        let (code, message) = error_of(addr, method, &params).await;
        assert_eq!(code, i64::from(codes::METHOD_NOT_FOUND), "{method}: {message}");
        assert!(message.contains("LEZ-only") && message.contains("--rpc-methods all"), "{method}: {message}");
    }
    let e = rpc_error(client.list_vaults(id).await);
    assert_eq!(e.code(), codes::METHOD_NOT_FOUND);
    // An unknown method is still plain "method not found".
    let (code, message) = error_of(addr, "nope", "").await;
    assert_eq!(code, -32601);
    assert!(!message.contains("LEZ-only"), "{message}");
    node.shutdown().await;
}
