//! `paystream store push` through the real binary against `store serve`: the first push opens a
//! Lightpush session (proposal, stream created), the same message again is paid but not stored
//! twice, a payload from a file; a paid `store query` reads the pushed messages back; at the end
//! the provider earned exactly what left the user's vault.

use std::path::Path;

use paystreams_program::state::StreamState;

use crate::common::{chain, paystream, serve_archive, wait_for};

const TOPIC: &str = "/push/1/cli/proto";

fn push(rpc: &str, keystore: &Path, home: &Path, address: &str, extra: &[&str]) -> serde_json::Value {
    let out = paystream()
        .args(["store", "--rpc", rpc, "--keystore"])
        .arg(keystore)
        .args(["--json", "push", "--provider", address, "--from", "dev-0", "--content-topic", TOPIC])
        .args(extra)
        .env("PAYSTREAMS_HOME", home)
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.trim()).expect("one JSON object")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_then_query_through_the_binary() {
    let chain = chain().await;
    let rpc = chain.node.rpc_url();
    let work = tempfile::tempdir().expect("tempdir");
    let archive = work.path().join("archive.sqlite").display().to_string();
    let provider = serve_archive(&chain, work.path(), &archive, &["--min-allocation", "500"]);
    let provider_account = chain.node.dev_keys()[1].account_id();
    let user = chain.node.dev_keys()[0].account_id();
    let provider_before = chain.client.balance(provider_account).await.expect("balance");
    let vault_before = chain.client.vault(user, 0).await.expect("vault").expect("exists").balance.0;

    let (rpc2, keystore, home, address) =
        (rpc.clone(), chain.keystore.clone(), work.path().to_owned(), provider.address.clone());
    let file = work.path().join("payload.bin");
    std::fs::write(&file, [0_u8, 1, 2, 255]).expect("write payload");
    let (first, again) = tokio::task::spawn_blocking({
        let (rpc, keystore, home, address) = (rpc2.clone(), keystore.clone(), home.clone(), address.clone());
        move || {
            let first = push(&rpc, &keystore, &home, &address, &["--payload", "hello", "--timestamp", "1700000000s"]);
            let again = push(&rpc, &keystore, &home, &address, &["--payload", "hello", "--timestamp", "1700000000s"]);
            (first, again)
        }
    })
    .await
    .expect("pushes");
    // The Lightpush stream accrues for a while before it is closed.
    chain.client.advance_time(5).await.expect("time moves");
    let (from_file, query) = tokio::task::spawn_blocking(move || {
        let at_file = format!("@{}", file.display());
        let from_file =
            push(&rpc2, &keystore, &home, &address, &["--payload", &at_file, "--timestamp", "1700000001s", "--close"]);
        let query = paystream()
            .args(["store", "--rpc", &rpc2, "--keystore"])
            .arg(&keystore)
            .args(["--json", "query", "--provider", &address, "--from", "dev-0", "--content-topic", TOPIC, "--close"])
            .env("PAYSTREAMS_HOME", &home)
            .output()
            .expect("runs");
        (from_file, query)
    })
    .await
    .expect("push and query");

    let stream_id = first["stream_created"].as_u64().expect("the first push created the stream");
    assert_eq!(first["stored"], true);
    assert_eq!((again["stored"].clone(), again["hash"].clone()), (false.into(), first["hash"].clone()));
    assert_eq!(again["stream_created"], serde_json::Value::Null, "the same session paid for it");
    assert_eq!((from_file["stored"].clone(), from_file["closed_now"].clone()), (true.into(), true.into()));
    assert_eq!(from_file["stream_id"].as_u64(), Some(stream_id));

    let stdout = String::from_utf8_lossy(&query.stdout);
    assert!(query.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&query.stderr));
    let lines: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).expect("JSON lines")).collect();
    let payloads: Vec<&str> = lines.iter().filter_map(|l| l["payload"].as_str()).collect();
    assert_eq!(payloads, ["aGVsbG8=", "AAEC/w=="], "both pushed messages, in time order, once each");
    let store_stream = lines.last().expect("summary")["summary"]["stream_id"].as_u64().expect("store stream");
    assert_ne!(store_stream, stream_id, "Store and Lightpush sessions have their own streams");

    // Both streams closed and claimed: the provider earned exactly what left the vault.
    for id in [stream_id, store_stream] {
        wait_for("the provider's claim after the close", async || {
            let view = chain.client.require_stream(user, 0, id).await.expect("stream");
            (view.state == StreamState::Closed && view.accrued.0 == 0).then_some(())
        })
        .await;
    }
    let earned = chain.client.balance(provider_account).await.expect("balance") - provider_before;
    let vault = chain.client.vault(user, 0).await.expect("vault").expect("exists");
    assert_eq!(vault.total_allocated.0, 0);
    assert!(earned >= 5, "five seconds of the Lightpush stream at least: {earned}");
    assert_eq!(vault.balance.0 + earned, vault_before, "earned {earned}, vault holds {}", vault.balance.0);
    drop(provider);
}
