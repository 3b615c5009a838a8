//! What `stream show` and `stream history` tell a new user: the allocation shrinking after a
//! claim reads as money claimed, a depleted stream is not "paused", dates instead of Unix
//! seconds (with the chain's offset from this machine), amounts with their unit.

use std::{path::Path, process::Output};

use paystreams_client::Client;
use serde_json::Value;

use crate::common::{dev_node, key_id, paystream};

async fn run(rpc: &str, keystore: &Path, home: &Path, args: &[&str]) -> Output {
    let mut command = paystream();
    command
        .args(args)
        .env("PAYSTREAMS_RPC", rpc)
        .env("PAYSTREAMS_KEYSTORE", keystore)
        .env("PAYSTREAMS_HOME", home)
        .env_remove("PAYSTREAMS_CHAIN");
    let out = tokio::task::spawn_blocking(move || command.output().expect("run paystream")).await.expect("join");
    assert!(out.status.success(), "paystream {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn amount(value: &Value) -> u128 {
    value.as_str().unwrap_or_else(|| panic!("not a decimal string: {value}")).parse().expect("decimal")
}

const STREAM: [&str; 6] = ["--owner", "dev-0", "--vault-id", "0", "--stream-id", "0"];

fn with_stream<'a>(head: &[&'a str]) -> Vec<&'a str> {
    head.iter().copied().chain(STREAM).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn show_and_history_tell_claims_top_ups_and_why_a_stream_stopped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keystore = dir.path().join("keystore");
    let (node, client): (_, Client) = dev_node(Some(&keystore)).await;
    let rpc = node.rpc_url();
    let home = dir.path();
    let (owner, provider) = (key_id(&keystore, "dev-0"), key_id(&keystore, "dev-1"));
    let provider_before = client.balance(provider).await.expect("balance");

    run(&rpc, &keystore, home, &["vault", "init", "--owner", "dev-0", "--vault-id", "0"]).await;
    let out =
        run(&rpc, &keystore, home, &["vault", "deposit", "--owner", "dev-0", "--vault-id", "0", "--amount", "10000"])
            .await;
    assert!(stdout(&out).contains("deposited 10,000 native into vault 0"), "{}", stdout(&out));
    let out = run(
        &rpc,
        &keystore,
        home,
        &[
            "stream",
            "create",
            "--owner",
            "dev-0",
            "--vault-id",
            "0",
            "--provider",
            "dev-1",
            "--rate",
            "10",
            "--allocation",
            "3000",
        ],
    )
    .await;
    assert!(
        stdout(&out).contains("10 native/s") && stdout(&out).contains("allocation 3,000 native"),
        "{}",
        stdout(&out)
    );

    // Seven seconds of accrual, claimed: the allocation shrinks by the claim, and show says so.
    client.advance_time(7).await.expect("time");
    let claim =
        json_of(&run(&rpc, &keystore, home, &with_stream(&["--json", "stream", "claim", "--provider", "dev-1"])).await);
    let first_claim = amount(&claim["amount"]);
    assert!(first_claim >= 70, "at least 7 s accrued: {claim}");
    let show = json_of(&run(&rpc, &keystore, home, &with_stream(&["--json", "stream", "show"])).await);
    assert_eq!(amount(&show["created_allocation"]), 3000, "{show}");
    assert_eq!(amount(&show["claimed"]), first_claim, "{show}");
    assert_eq!(amount(&show["allocation"]), 3000 - first_claim, "{show}");
    assert_eq!(show["stopped"], Value::Null, "{show}");
    assert!(show["as_of_date"].as_str().is_some_and(|d| d.ends_with(" UTC")), "{show}");
    let text = stdout(&run(&rpc, &keystore, home, &with_stream(&["stream", "show"])).await);
    for needle in ["allocated at creation", "3,000 native", "claimed so far", &display(first_claim), "active"] {
        assert!(text.contains(needle), "show lacks {needle:?}:\n{text}");
    }

    // A top-up, then a pause by the owner: paused, and said to be by the owner.
    run(&rpc, &keystore, home, &with_stream(&["stream", "top-up", "--amount", "500"])).await;
    run(&rpc, &keystore, home, &with_stream(&["stream", "pause"])).await;
    let show = json_of(&run(&rpc, &keystore, home, &with_stream(&["--json", "stream", "show"])).await);
    assert_eq!(show["stopped"], "paused_by_owner", "{show}");
    assert_eq!(amount(&show["top_ups"][0]["amount"]), 500, "{show}");
    assert_eq!(amount(&show["funded"]), 3500, "{show}");

    // Resumed and left to run out (dev time jumps an hour): depleted, not "paused".
    run(&rpc, &keystore, home, &with_stream(&["stream", "resume"])).await;
    client.advance_time(3600).await.expect("time");
    let show = json_of(&run(&rpc, &keystore, home, &with_stream(&["--json", "stream", "show"])).await);
    assert_eq!(show["state"], "paused", "the chain's state: {show}");
    assert_eq!(show["stopped"], "depleted", "{show}");
    assert!(show["chain_offset_secs"].as_i64().is_some_and(|o| o >= 3600), "the chain runs ahead: {show}");
    let text = stdout(&run(&rpc, &keystore, home, &with_stream(&["stream", "show"])).await);
    assert!(text.contains("depleted") && !text.contains("paused by the owner"), "{text}");
    assert!(text.contains("ahead of this machine"), "the chain-time offset is said: {text}");

    // The provider takes the rest; the story adds up to the unit.
    let claim =
        json_of(&run(&rpc, &keystore, home, &with_stream(&["--json", "stream", "claim", "--provider", "dev-1"])).await);
    let second_claim = amount(&claim["amount"]);
    let show = json_of(&run(&rpc, &keystore, home, &with_stream(&["--json", "stream", "show"])).await);
    assert_eq!(amount(&show["claimed"]), first_claim + second_claim, "{show}");
    assert_eq!(amount(&show["claimed"]), 3500, "everything funded was paid: {show}");
    assert_eq!(
        amount(&show["funded"]),
        amount(&show["claimed"]) + amount(&show["allocation"]) + amount(&show["released"]),
        "funded = claimed + still allocated + released: {show}"
    );
    assert_eq!(show["stopped"], "depleted", "{show}");

    // The history lists every event with its date, block and transaction.
    let history = json_of(&run(&rpc, &keystore, home, &with_stream(&["--json", "stream", "history"])).await);
    let kinds: Vec<&str> =
        history["events"].as_array().expect("events").iter().filter_map(|e| e["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        [
            "stream_created",
            "claimed",
            "stream_topped_up",
            "stream_paused",
            "stream_resumed",
            "stream_auto_paused",
            "claimed"
        ],
        "{history}"
    );
    for event in history["events"].as_array().expect("events") {
        assert!(event["date"].as_str().is_some_and(|d| d.ends_with(" UTC")), "{event}");
        assert!(event["block_id"].as_u64().is_some_and(|b| b > 1), "{event}");
        assert_eq!(event["tx_hash"].as_str().map(str::len), Some(64), "{event}");
    }
    let text = stdout(&run(&rpc, &keystore, home, &with_stream(&["stream", "history"])).await);
    for needle in [
        "created: 10 native/s",
        "topped up by 500 native",
        "paused by the owner",
        "depleted",
        "claimed so far 3,500 native",
    ] {
        assert!(text.contains(needle), "history lacks {needle:?}:\n{text}");
    }

    // Exact balances: the provider earned what was claimed; the vault kept the rest.
    let provider_after = client.balance(provider).await.expect("balance");
    assert_eq!(provider_after - provider_before, 3500);
    let vault = client.vault(owner, 0).await.expect("rpc").expect("vault");
    assert_eq!((vault.balance.0, vault.total_allocated.0), (10_000 - 3500, 0));

    // Closed by the owner: said so.
    run(&rpc, &keystore, home, &with_stream(&["stream", "close"])).await;
    let show = json_of(&run(&rpc, &keystore, home, &with_stream(&["--json", "stream", "show"])).await);
    assert_eq!(show["stopped"], "closed_by_owner", "{show}");
    node.shutdown().await;
}

fn display(value: u128) -> String {
    paystreams_client::display::amount_in(value, "native")
}
