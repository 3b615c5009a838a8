//! The `paystream` wallet commands, run as the real binary against an in-process node with a
//! temporary keystore (holding the node's dev keys `dev-0`...).

use std::process::Output;

use paystreams_client::Client;
use paystreams_node::NodeHandle;
use serde_json::Value;

use crate::common::{dev_node, paystream};

struct Env {
    node: NodeHandle,
    client: Client,
    keystore: tempfile::TempDir,
}

async fn env() -> Env {
    let keystore = tempfile::tempdir().expect("tempdir");
    let (node, client) = dev_node(Some(keystore.path())).await;
    Env { node, client, keystore }
}

impl Env {
    async fn run(&self, args: &[&str]) -> Output {
        run_with(Some(self.node.rpc_url()), self.keystore.path().display().to_string(), args).await
    }

    async fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.run(&all).await;
        assert!(out.status.success(), "{args:?} failed: {}\n{}", stderr(&out), stdout(&out));
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {}", stdout(&out)))
    }
}

async fn run_with(rpc: Option<String>, keystore: String, args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let mut command = paystream();
        command.args(&args).env("PAYSTREAMS_KEYSTORE", keystore).env_remove("PAYSTREAMS_HOME");
        match rpc {
            Some(rpc) => command.env("PAYSTREAMS_RPC", rpc),
            None => command.env("PAYSTREAMS_RPC", "http://127.0.0.1:9"),
        };
        command.output().expect("run paystream")
    })
    .await
    .expect("join")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_vault_stream_and_explained_errors() {
    let env = env().await;

    // keys new / list / show.
    let created = env.json(&["keys", "new", "carol"]).await;
    assert_eq!(created["name"], "carol");
    let carol = created["account_id"].as_str().expect("id").to_owned();
    let list = env.json(&["keys", "list"]).await;
    let names: Vec<&str> = list.as_array().expect("array").iter().filter_map(|k| k["name"].as_str()).collect();
    assert!(names.contains(&"carol") && names.contains(&"dev-0") && names.contains(&"dev-9"), "{names:?}");
    let shown = env.json(&["keys", "show", "carol"]).await;
    assert_eq!(shown["account_id"], carol.as_str());
    assert!(shown.get("secret_key").is_none());
    let secret = env.json(&["keys", "show", "carol", "--secret"]).await;
    assert_eq!(secret["secret_key"].as_str().map(str::len), Some(64));
    let human = env.run(&["keys", "list"]).await;
    assert!(stdout(&human).contains("carol") && stdout(&human).contains(&carol));

    // vault init / deposit / show.
    env.json(&["vault", "init", "--owner", "dev-0", "--vault-id", "0"]).await;
    let deposited = env.json(&["vault", "deposit", "--owner", "dev-0", "--vault-id", "0", "--amount", "1000"]).await;
    assert_eq!(deposited["vault"]["balance"], "1000");
    let vault = env.json(&["vault", "show", "--owner", "dev-0", "--vault-id", "0"]).await;
    assert_eq!(vault["unallocated"], "1000");

    // The allocation-too-big message names the numbers and the fix; exit code 1.
    let out = env
        .run(&[
            "stream",
            "create",
            "--owner",
            "dev-0",
            "--vault-id",
            "0",
            "--provider",
            "dev-1",
            "--rate",
            "5",
            "--allocation",
            "5000",
        ])
        .await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out)
            .contains("vault 0 has 1000 unallocated, stream needs 5000: deposit 4000 more or lower --allocation"),
        "{}",
        stderr(&out)
    );
    let out = env
        .run(&[
            "stream",
            "create",
            "--owner",
            "dev-0",
            "--vault-id",
            "0",
            "--provider",
            "dev-1",
            "--rate",
            "5",
            "--allocation",
            "5000",
            "--json",
        ])
        .await;
    assert_eq!(out.status.code(), Some(1));
    let error: Value = serde_json::from_slice(&out.stdout).expect("json error");
    assert_eq!(error["error"]["code"], 6011);
    assert_eq!(error["error"]["name"], "AllocationExceedsUnallocated");

    // stream create / show --json.
    let created = env
        .json(&[
            "stream",
            "create",
            "--owner",
            "dev-0",
            "--vault-id",
            "0",
            "--provider",
            "dev-1",
            "--rate",
            "5",
            "--allocation",
            "600",
            "--activation-fee",
            "3",
        ])
        .await;
    assert_eq!(created["stream_id"], 0);
    let shown = env.json(&["stream", "show", "--owner", "dev-0", "--vault-id", "0", "--stream-id", "0"]).await;
    assert_eq!(shown["allocation"], "600");
    assert_eq!(shown["rate"], 5);
    assert_eq!(shown["extensions"]["activation_fee"], "3");
    assert!(shown["accrued"].is_string());
    let listed = env.json(&["stream", "list", "--provider", "dev-1"]).await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1));

    // watch --json --count 2: one line per second.
    let out = env
        .run(&["stream", "watch", "--owner", "dev-0", "--vault-id", "0", "--stream-id", "0", "--json", "--count", "2"])
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<Value> = stdout(&out).lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["allocation"], "600");

    // pause / resume / top-up / claim / close through the CLI.
    env.json(&["stream", "pause", "--owner", "dev-0", "--vault-id", "0", "--stream-id", "0"]).await;
    let out = env.run(&["stream", "pause", "--owner", "dev-0", "--vault-id", "0", "--stream-id", "0"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("already paused"), "{}", stderr(&out));
    env.json(&["stream", "resume", "--owner", "dev-0", "--vault-id", "0", "--stream-id", "0"]).await;
    env.json(&["stream", "top-up", "--owner", "dev-0", "--vault-id", "0", "--stream-id", "0", "--amount", "100"]).await;
    let out = env
        .run(&["stream", "claim", "--provider", "dev-2", "--owner", "dev-0", "--vault-id", "0", "--stream-id", "0"])
        .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("only the provider dev-1"), "{}", stderr(&out));
    let claimed = env
        .json(&["stream", "claim", "--provider", "dev-1", "--owner", "dev-0", "--vault-id", "0", "--stream-id", "0"])
        .await;
    assert!(claimed["amount"].as_str().and_then(|a| a.parse::<u128>().ok()).is_some_and(|a| a >= 6));
    let closed = env
        .json(&["stream", "close", "--owner", "dev-0", "--vault-id", "0", "--stream-id", "0", "--key", "dev-1"])
        .await;
    assert_eq!(closed["stream"]["state"], "closed");

    // Amounts are whole numbers: a clear refusal, exit code 2.
    let out = env.run(&["vault", "deposit", "--owner", "dev-0", "--vault-id", "0", "--amount", "1.5"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("is not a whole number"), "{}", stderr(&out));

    // Tokens and a token vault.
    let token = env.json(&["token", "create", "--key", "dev-0", "--supply", "5000", "--name", "USDX"]).await;
    assert_eq!(token["definition_key"], "token-USDX");
    env.json(&["vault", "init", "--owner", "dev-0", "--vault-id", "1", "--token", "USDX"]).await;
    env.json(&["vault", "deposit", "--owner", "dev-0", "--vault-id", "1", "--amount", "2000"]).await;
    let balance = env.json(&["token", "balance", "--token", "USDX", "dev-0"]).await;
    assert_eq!(balance["balance"], "3000");
    env.json(&["token", "transfer", "--token", "USDX", "--from", "dev-0", "--to", "carol", "--amount", "10"]).await;
    assert_eq!(env.json(&["token", "balance", "--token", "USDX", "carol"]).await["balance"], "10");
    // Delivery receipts: the user signs, the provider claims with the receipt.
    let created = env
        .json(&[
            "stream",
            "create",
            "--owner",
            "dev-0",
            "--vault-id",
            "0",
            "--provider",
            "dev-1",
            "--rate",
            "5",
            "--allocation",
            "100",
            "--receipt-key",
            "dev-3",
        ])
        .await;
    let sid = created["stream_id"].to_string();
    env.client.advance_time(10).await.expect("advance");
    let out = env
        .run(&["stream", "claim", "--provider", "dev-1", "--owner", "dev-0", "--vault-id", "0", "--stream-id", &sid])
        .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("delivery receipts"), "{}", stderr(&out));
    let receipt = env
        .json(&[
            "stream",
            "receipt",
            "--key",
            "dev-3",
            "--owner",
            "dev-0",
            "--vault-id",
            "0",
            "--stream-id",
            &sid,
            "--acknowledged",
            "12",
        ])
        .await;
    let hex = receipt["receipt"].as_str().expect("hex").to_owned();
    let claimed = env
        .json(&[
            "stream",
            "claim",
            "--provider",
            "dev-1",
            "--owner",
            "dev-0",
            "--vault-id",
            "0",
            "--stream-id",
            &sid,
            "--receipt",
            &hex,
        ])
        .await;
    assert_eq!(claimed["amount"], "12");

    let account = env.json(&["account", "balance", "dev-3"]).await;
    assert_eq!(account["balance"], "1000000000");

    env.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pda_reproduces_the_lez_testnet_vector_and_unreachable_nodes_are_named() {
    let keystore = tempfile::tempdir().expect("tempdir");
    let ks = keystore.path().display().to_string();
    let out = run_with(
        None,
        ks.clone(),
        &[
            "pda",
            "--program-id",
            "9d88f2e7498ae25caa3a5d829a3d1ed39f08673ba90987333074b965a81b90f8",
            "--owner",
            "DkT97NZPog2attaFURoMUFU5m996QtDnsS53PSnx41oG",
            "--vault-id",
            "0",
            "--stream-id",
            "0",
            "--json",
        ],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let value: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(value["vault_config"]["base58"], "DxUKrcahxjZ8UCfjD7Jxh8To1y5CA9rHKDdgCsyazyxq");
    assert_eq!(value["vault_config"]["hex"], "c082158dea85704657292b84eabbd3e8a99266eae5f6349ac885c8f53b55c47e");
    assert_eq!(value["vault_holding"]["base58"], "DmjxLquthgKBVJ81D85nWf6hwkiMQUaCkMkodXkiAXbH");
    assert_eq!(value["stream_config"]["base58"], "2vEEaqY3b9KDze8aPcFew5BFJRKReWFhSfKidAJbUbSK");

    let out = run_with(None, ks, &["account", "balance", "DkT97NZPog2attaFURoMUFU5m996QtDnsS53PSnx41oG"]).await;
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("cannot reach the node"), "{}", stderr(&out));
}
