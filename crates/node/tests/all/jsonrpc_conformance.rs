//! JSON-RPC 2.0 (https://www.jsonrpc.org/specification), rule by rule, over real HTTP and, where
//! the transport changes the outcome, WebSocket; and the HTTP read bounds (body size, header and
//! body read deadlines).

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    time::{Duration, Instant},
};

use crate::common::*;
use jsonrpsee::{core::client::ClientT as _, rpc_params, ws_client::WsClientBuilder};
use paystreams_node::{NodeConfig, ReadDeadlines, start};
use paystreams_rpc::{HexHash, LezApiClient as _, PaystreamsApiClient as _, TxStatus};
use serde_json::{Value, value::RawValue};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Generous bound on anything awaited here; only a failure takes this long.
const PATIENCE: Duration = Duration::from_secs(30);

/// Checks a rule, naming it.
#[track_caller]
fn rule(name: &str, holds: bool, seen: &str) {
    assert!(holds, "JSON-RPC 2.0 rule broken: {name}\n  seen: {seen}");
}

/// Checks the shape every response object must have and returns its members: `jsonrpc` exactly
/// "2.0", an `id`, exactly one of `result` and `error`, nothing else; an error has an integer
/// `code`, a string `message` and at most an extra `data`.
#[track_caller]
fn response_object(text: &str) -> BTreeMap<String, Box<RawValue>> {
    let members: BTreeMap<String, Box<RawValue>> =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("not a response object ({e}): {text}"));
    rule("a response has jsonrpc exactly \"2.0\"", members.get("jsonrpc").map(|v| v.get()) == Some("\"2.0\""), text);
    rule("a response always has an id", members.contains_key("id"), text);
    rule(
        "a response has either result or error, never both",
        members.contains_key("result") != members.contains_key("error"),
        text,
    );
    rule(
        "a response has no other members",
        members.keys().all(|k| ["jsonrpc", "id", "result", "error"].contains(&k.as_str())),
        text,
    );
    if let Some(error) = members.get("error") {
        let error: BTreeMap<String, Value> = serde_json::from_str(error.get()).expect("error object");
        rule("an error's code is an integer", error.get("code").is_some_and(Value::is_i64), text);
        rule("an error's message is a string", error.get("message").is_some_and(Value::is_string), text);
        rule(
            "an error has only code, message and data",
            error.keys().all(|k| ["code", "message", "data"].contains(&k.as_str())),
            text,
        );
    }
    members
}

fn id_of(members: &BTreeMap<String, Box<RawValue>>) -> &str {
    members["id"].get()
}

fn code_of(members: &BTreeMap<String, Box<RawValue>>) -> Option<i64> {
    let error: Value = serde_json::from_str(members.get("error")?.get()).ok()?;
    error["code"].as_i64()
}

fn message_of(members: &BTreeMap<String, Box<RawValue>>) -> String {
    members
        .get("error")
        .and_then(|e| serde_json::from_str::<Value>(e.get()).ok())
        .and_then(|e| e["message"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Posts `body`; returns the status and the single response object (the status must be 200).
async fn single(addr: SocketAddr, body: &str) -> BTreeMap<String, Box<RawValue>> {
    let (status, text) = raw(addr, "POST", "/", body.as_bytes()).await;
    rule("a request gets HTTP 200 with its response", status == 200, &format!("{status} {text} for {body}"));
    response_object(&text)
}

/// Posts `body` and expects the error `code` with id `id`.
async fn expect_error(addr: SocketAddr, name: &str, body: &str, code: i64, id: &str) {
    let members = single(addr, body).await;
    let seen = format!("{body} -> {members:?}");
    rule(&format!("{name}: error code {code}"), code_of(&members) == Some(code), &seen);
    rule(&format!("{name}: id {id}"), id_of(&members) == id, &seen);
}

/// Reads an HTTP response's head (status and headers) and whatever body follows until the
/// server closes or `PATIENCE` passes; returns the status and the text.
async fn read_response(stream: &mut tokio::net::TcpStream) -> (u16, String) {
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(PATIENCE, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => response.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rule_of_json_rpc_2_over_http() {
    let node = start(NodeConfig::ephemeral_dev()).await.expect("start");
    let addr = node.local_addr();
    let client = http(&node.rpc_url());
    let key = node.dev_keys()[0].clone();
    let other = node.dev_keys()[1].account_id();

    // A call succeeds with a result and echoes its id.
    let ok = single(addr, r#"{"jsonrpc":"2.0","id":1,"method":"getLastBlockId"}"#).await;
    rule("a successful call has a result", ok.contains_key("result"), &format!("{ok:?}"));

    // jsonrpc: required, exactly "2.0".
    expect_error(addr, "jsonrpc missing", r#"{"id":1,"method":"getLastBlockId"}"#, -32600, "1").await;
    expect_error(addr, "jsonrpc \"1.0\"", r#"{"jsonrpc":"1.0","id":1,"method":"getLastBlockId"}"#, -32600, "1").await;
    expect_error(addr, "jsonrpc 2.0 as a number", r#"{"jsonrpc":2.0,"id":1,"method":"getLastBlockId"}"#, -32600, "1")
        .await;

    // method: a string.
    expect_error(addr, "method a number", r#"{"jsonrpc":"2.0","id":2,"method":1}"#, -32600, "2").await;
    expect_error(addr, "method missing", r#"{"jsonrpc":"2.0","id":2}"#, -32600, "2").await;

    // params: an array or an object, or left out.
    expect_error(
        addr,
        "params a number",
        r#"{"jsonrpc":"2.0","id":3,"method":"getLastBlockId","params":1}"#,
        -32600,
        "3",
    )
    .await;
    expect_error(
        addr,
        "params a string",
        r#"{"jsonrpc":"2.0","id":3,"method":"getLastBlockId","params":"x"}"#,
        -32600,
        "3",
    )
    .await;
    for params in ["[]", "{}"] {
        let body = format!(r#"{{"jsonrpc":"2.0","id":3,"method":"getLastBlockId","params":{params}}}"#);
        let members = single(addr, &body).await;
        rule("params as an array or an object is accepted", members.contains_key("result"), &body);
    }
    let by_name = single(addr, r#"{"jsonrpc":"2.0","id":3,"method":"getBlock","params":{"block_id":1}}"#).await;
    rule("params by name work", by_name.contains_key("result"), &format!("{by_name:?}"));

    // Unknown method, invalid params, parse error, invalid request.
    expect_error(addr, "unknown method", r#"{"jsonrpc":"2.0","id":"u","method":"nope"}"#, -32601, r#""u""#).await;
    expect_error(
        addr,
        "invalid params",
        r#"{"jsonrpc":"2.0","id":4,"method":"getBlock","params":["abc"]}"#,
        -32602,
        "4",
    )
    .await;
    expect_error(addr, "parse error", r#"{"jsonrpc":"2.0","id":5,"method":"#, -32700, "null").await;
    expect_error(addr, "parse error (empty body)", "", -32700, "null").await;
    expect_error(addr, "invalid request (a number)", "1", -32600, "null").await;
    expect_error(addr, "invalid request (a string)", r#""getLastBlockId""#, -32600, "null").await;
    expect_error(addr, "invalid request (no jsonrpc, no id)", r#"{"foo":"boo"}"#, -32600, "null").await;

    // ids: a string, a number or null, echoed exactly.
    for id in [r#""abc""#, r#""a\"b\u00e9""#, "0", "7", "-5", "18446744073709551615", "-9223372036854775808", "null"] {
        let body = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"getLastBlockId"}}"#);
        let members = single(addr, &body).await;
        rule("an id is echoed exactly", id_of(&members) == id, &format!("{body} -> {members:?}"));
        rule("a call with a valid id is executed", members.contains_key("result"), &body);
    }
    // Ids of other types (and numbers with fractions or exponents): -32600 with id null.
    for id in ["{}", r#"{"a":1}"#, "[1]", "true", "1e400", "1.5", "1.0", "18446744073709551616"] {
        let body = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"getLastBlockId"}}"#);
        expect_error(addr, &format!("id {id} is invalid"), &body, -32600, "null").await;
    }

    // Notifications: no reply, and methods with effects are executed.
    let (status, text) = raw(addr, "POST", "/", br#"{"jsonrpc":"2.0","method":"getLastBlockId"}"#).await;
    rule(
        "a notification gets no reply (204, empty body)",
        status == 204 && text.is_empty(),
        &format!("{status} {text}"),
    );
    let tx = transfer(&key, other, 5, 0);
    let body = format!(r#"{{"jsonrpc":"2.0","method":"sendTransaction","params":["{}"]}}"#, b64(&tx));
    let (status, text) = raw(addr, "POST", "/", body.as_bytes()).await;
    rule("a sendTransaction notification gets no reply", status == 204 && text.is_empty(), &format!("{status} {text}"));
    let receipt = client.get_transaction_receipt(HexHash(tx.hash())).await.expect("receipt call");
    rule(
        "a sendTransaction notification is executed (findable by hash)",
        receipt.as_ref().is_some_and(|r| r.status == TxStatus::Included),
        &format!("{receipt:?}"),
    );
    let (status, text) =
        raw(addr, "POST", "/", br#"{"jsonrpc":"2.0","method":"sendTransaction","params":["AAEC"]}"#).await;
    rule("a failing notification gets no reply either", status == 204 && text.is_empty(), &format!("{status} {text}"));

    // Subscriptions over HTTP: a clear error pointing at the WebSocket.
    for method in ["paystreams_subscribeBlocks", "paystreams_subscribeEvents"] {
        let body = format!(r#"{{"jsonrpc":"2.0","id":9,"method":"{method}","params":[]}}"#);
        let members = single(addr, &body).await;
        let message = message_of(&members);
        rule(
            "a subscription over HTTP says to use the WebSocket",
            code_of(&members) == Some(-32601)
                && message.contains("WebSocket")
                && message.contains(&format!("ws://{addr}")),
            &format!("{members:?}"),
        );
    }

    // Batches.
    expect_error(addr, "an empty batch is one invalid request", "[]", -32600, "null").await;
    let (_, text) = raw(addr, "POST", "/", b"[1,2,3]").await;
    let entries: Vec<Box<RawValue>> = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    rule("a batch of invalid entries gets one error each", entries.len() == 3, &text);
    for entry in &entries {
        let members = response_object(entry.get());
        rule(
            "each invalid batch entry is -32600 with id null",
            code_of(&members) == Some(-32600) && id_of(&members) == "null",
            &text,
        );
    }
    let tx = transfer(&key, other, 6, 1);
    let mixed = format!(
        r#"[{{"jsonrpc":"2.0","id":1,"method":"getLastBlockId"}},
            {{"jsonrpc":"2.0","method":"sendTransaction","params":["{}"]}},
            {{"foo":"boo"}},
            {{"jsonrpc":"2.0","id":"5","method":"nope"}},
            {{"jsonrpc":"2.0","method":"getLastBlockId"}}]"#,
        b64(&tx)
    );
    let (status, text) = raw(addr, "POST", "/", mixed.as_bytes()).await;
    let entries: Vec<Box<RawValue>> = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{status} {e}: {text}"));
    rule("a mixed batch gets one response per non-notification", entries.len() == 3, &text);
    let members: Vec<_> = entries.iter().map(|e| response_object(e.get())).collect();
    rule(
        "a mixed batch: the call succeeds with its id",
        id_of(&members[0]) == "1" && members[0].contains_key("result"),
        &text,
    );
    rule(
        "a mixed batch: the invalid entry is -32600 id null",
        code_of(&members[1]) == Some(-32600) && id_of(&members[1]) == "null",
        &text,
    );
    rule(
        "a mixed batch: the unknown method is -32601 with its id",
        code_of(&members[2]) == Some(-32601) && id_of(&members[2]) == r#""5""#,
        &text,
    );
    let receipt = client.get_transaction_receipt(HexHash(tx.hash())).await.expect("receipt call");
    rule(
        "a notification in a batch is executed",
        receipt.as_ref().is_some_and(|r| r.status == TxStatus::Included),
        &format!("{receipt:?}"),
    );
    let (t1, t2) = (transfer(&key, other, 7, 2), transfer(&key, other, 8, 3));
    let all_notifications = format!(
        r#"[{{"jsonrpc":"2.0","method":"sendTransaction","params":["{}"]}},{{"jsonrpc":"2.0","method":"sendTransaction","params":["{}"]}}]"#,
        b64(&t1),
        b64(&t2)
    );
    let (status, text) = raw(addr, "POST", "/", all_notifications.as_bytes()).await;
    rule(
        "a batch of only notifications gets no body (204)",
        status == 204 && text.is_empty(),
        &format!("{status} {text}"),
    );
    for tx in [&t1, &t2] {
        let receipt = client.get_transaction_receipt(HexHash(tx.hash())).await.expect("receipt call");
        rule(
            "each notification of a batch is executed",
            receipt.as_ref().is_some_and(|r| r.status == TxStatus::Included),
            &format!("{receipt:?}"),
        );
    }
    let over: Vec<String> = (0..=paystreams_node::MAX_BATCH_LEN)
        .map(|i| format!(r#"{{"jsonrpc":"2.0","id":{i},"method":"getLastBlockId"}}"#))
        .collect();
    let members = single(addr, &format!("[{}]", over.join(","))).await;
    rule(
        "a batch over the limit gets one -32600 error naming the limit",
        code_of(&members) == Some(-32600) && id_of(&members) == "null" && message_of(&members).contains("at most 100"),
        &format!("{members:?}"),
    );

    // The balance moved by the notifications is exact: 5 + 6 + 7 + 8 from dev-0 to dev-1.
    let balance = |a| {
        let client = client.clone();
        async move { client.get_account_balance(a).await.expect("balance") }
    };
    rule(
        "notifications moved exactly what they carried",
        balance(key.account_id()).await == paystreams_node::DEFAULT_DEV_BALANCE - 26
            && balance(other).await == paystreams_node::DEFAULT_DEV_BALANCE + 26,
        "balances",
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_size_is_bounded_before_the_body_is_read() {
    let node = start(NodeConfig::ephemeral_dev()).await.expect("start");
    let addr = node.local_addr();

    // A 4 GiB Content-Length: 413 before any of the body is sent.
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 4294967296\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("write head");
    let (status, text) = read_response(&mut stream).await;
    rule("a Content-Length over the limit gets 413 without reading the body", status == 413, &text);
    rule("the 413 carries a JSON-RPC error", text.contains("-32007"), &text);

    // A chunked body that grows past the limit: 413 as soon as it does.
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("write head");
    let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, "A".repeat(64 * 1024));
    for _ in 0..(2 * paystreams_node::MAX_REQUEST_BODY_BYTES as usize / (64 * 1024)) {
        if stream.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let (status, text) = read_response(&mut stream).await;
    rule("a chunked body past the limit gets 413", status == 413, &text);

    // A chunked body within the limit is answered as any other.
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let call = r#"{"jsonrpc":"2.0","id":"chunked","method":"getLastBlockId"}"#;
    let (first, second) = call.split_at(10);
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{first}\r\n{:x}\r\n{second}\r\n0\r\n\r\n",
        first.len(),
        second.len()
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let (status, text) = read_response(&mut stream).await;
    rule(
        "a chunked body within the limit is answered",
        status == 200 && text.contains(r#""id":"chunked","result""#),
        &text,
    );

    // The node still answers.
    let members = single(addr, r#"{"jsonrpc":"2.0","id":1,"method":"getLastBlockId"}"#).await;
    rule("the node answers after oversize requests", members.contains_key("result"), &format!("{members:?}"));
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_and_slow_bodies_are_cut_off() {
    let deadlines = ReadDeadlines { headers: Duration::from_millis(500), body: Duration::from_millis(500) };
    let node = start(NodeConfig { read_deadlines: deadlines, ..NodeConfig::ephemeral_dev() }).await.expect("start");
    let addr = node.local_addr();

    // Headers one byte at a time, every 100 ms: the connection is closed once the header
    // deadline passes, however the bytes trickle.
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let started = Instant::now();
    let head = format!("POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n");
    let (mut reader, mut writer) = stream.split();
    let trickle = async {
        for byte in head.bytes().cycle() {
            if writer.write_all(&[byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let closed = async {
        let mut buf = [0u8; 256];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    };
    let outcome = tokio::time::timeout(PATIENCE, async {
        tokio::select! {
            () = closed => {},
            () = trickle => {},
        }
    })
    .await;
    let elapsed = started.elapsed();
    rule("a client trickling its headers is cut off", outcome.is_ok(), &format!("{elapsed:?}"));
    rule("not before the header deadline", elapsed >= deadlines.headers, &format!("{elapsed:?}"));

    // A body that never completes: 408 once the body deadline passes.
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{{\"jsonrpc\""
    );
    let started = Instant::now();
    stream.write_all(head.as_bytes()).await.expect("write");
    let (status, text) = read_response(&mut stream).await;
    let elapsed = started.elapsed();
    rule("a body that does not arrive in time gets 408", status == 408, &text);
    rule("the 408 carries a JSON-RPC error saying what to do", text.contains("-32600") && text.contains("body"), &text);
    rule("not before the body deadline", elapsed >= deadlines.body, &format!("{elapsed:?}"));

    // The node still answers.
    let members = single(addr, r#"{"jsonrpc":"2.0","id":1,"method":"getLastBlockId"}"#).await;
    rule("the node answers after slow clients", members.contains_key("result"), &format!("{members:?}"));
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_over_websocket() {
    let node = start(NodeConfig::ephemeral_dev()).await.expect("start");
    let client = http(&node.rpc_url());
    let key = node.dev_keys()[0].clone();
    let other = node.dev_keys()[1].account_id();
    let ws = WsClientBuilder::default().build(node.ws_url()).await.expect("ws");

    // A sendTransaction notification is executed: the transaction is findable by hash.
    let tx = transfer(&key, other, 11, 0);
    ws.notification("sendTransaction", rpc_params![b64(&tx)]).await.expect("notification sent");
    let deadline = Instant::now() + PATIENCE;
    let receipt = loop {
        let receipt = client.get_transaction_receipt(HexHash(tx.hash())).await.expect("receipt call");
        // Pending until automine commits it.
        if receipt.as_ref().is_some_and(|r| r.status != TxStatus::Pending) || Instant::now() > deadline {
            break receipt;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    rule(
        "a sendTransaction notification over WebSocket is executed",
        receipt.as_ref().is_some_and(|r| r.status == TxStatus::Included),
        &format!("{receipt:?}"),
    );
    // The connection keeps working and calls still get their answers.
    let height: u64 = ws.request("getLastBlockId", rpc_params![]).await.expect("call after notifications");
    rule("calls after a notification are answered", height >= 2, &height.to_string());
    let balance = client.get_account_balance(other).await.expect("balance");
    rule("the notification moved exactly its amount", balance == paystreams_node::DEFAULT_DEV_BALANCE + 11, "balance");
    let balance = client.get_account_balance(key.account_id()).await.expect("balance");
    rule("and the sender paid exactly it", balance == paystreams_node::DEFAULT_DEV_BALANCE - 11, "balance");
    node.shutdown().await;
}
