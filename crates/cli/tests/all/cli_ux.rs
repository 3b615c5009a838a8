//! What a new user meets first: transaction hashes that never vanish, output that ends quietly
//! when its reader goes away, pre-flight refusals before anything is sent, flags accepted
//! before or after the subcommand.

use std::{
    io::{BufRead as _, BufReader},
    path::Path,
    process::{Output, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use paystreams_client::Client;
use paystreams_node::NodeConfig;
use serde_json::Value;

use crate::common::{dev_node, paystream};

/// How long a command under test may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(60);

/// `paystream args` with `keystore` and `rpc` from the environment; no home or config file
/// from the machine running the tests.
fn command(rpc: &str, keystore: &Path, home: &Path, args: &[&str]) -> std::process::Command {
    let mut command = paystream();
    command
        .args(args)
        .env("PAYSTREAMS_RPC", rpc)
        .env("PAYSTREAMS_KEYSTORE", keystore)
        .env("PAYSTREAMS_HOME", home)
        .env_remove("PAYSTREAMS_CHAIN");
    command
}

/// Runs [`command`] to its end.
async fn run(rpc: &str, keystore: &Path, home: &Path, args: &[&str]) -> Output {
    let mut command = command(rpc, keystore, home, args);
    tokio::task::spawn_blocking(move || command.output().expect("run paystream")).await.expect("join")
}

/// Starts [`command`] with stdout and stderr piped.
fn spawn_piped(rpc: &str, keystore: &Path, home: &Path, args: &[&str]) -> std::process::Child {
    command(rpc, keystore, home, args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", text(&out.stdout), text(&out.stderr)))
}

/// The hash in a `sent transaction HASH; waiting for inclusion` line.
fn sent_hash(stderr: &str) -> Option<String> {
    stderr.lines().find_map(|line| {
        line.strip_prefix("sent transaction ").and_then(|rest| rest.split(';').next()).map(str::to_owned)
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn the_hash_is_printed_before_waiting_and_named_when_the_node_dies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keystore = dir.path().join("keystore");
    let (node, client) = dev_node(Some(&keystore)).await;
    let rpc = node.rpc_url();

    // Human output: the hash on stderr before waiting, the same hash in the result.
    let out =
        run(&rpc, &keystore, dir.path(), &["account", "transfer", "--from", "dev-0", "--to", "dev-1", "--amount", "5"])
            .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let hash = sent_hash(&text(&out.stderr)).unwrap_or_else(|| panic!("no hash on stderr: {}", text(&out.stderr)));
    assert!(text(&out.stdout).contains(&hash), "{}", text(&out.stdout));
    let receipt = client.receipt(hash.parse().expect("hash")).await.expect("receipt call").expect("included");
    assert_eq!(receipt.hash.to_string(), hash);
    // `tx show` finds it, and says when the node does not know a hash.
    let out = run(&rpc, &keystore, dir.path(), &["--json", "tx", "show", &hash]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = json_of(&out);
    assert_eq!((shown["status"].as_str(), shown["block_id"].as_u64()), (Some("included"), receipt.block_id), "{shown}");
    let unknown = "ab".repeat(32);
    let out = run(&rpc, &keystore, dir.path(), &["tx", "show", &unknown]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("not known to the node"), "{}", text(&out.stderr));

    // --json: the result carries the hash too.
    let out = run(
        &rpc,
        &keystore,
        dir.path(),
        &["--json", "account", "transfer", "--from", "dev-0", "--to", "dev-1", "--amount", "5"],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(json_of(&out)["tx_hash"].as_str(), sent_hash(&text(&out.stderr)).as_deref());
    node.shutdown().await;

    // A node that accepts the transaction and then dies before a block includes it.
    let slow = NodeConfig { block_time: Duration::from_secs(3600), automine: false, ..NodeConfig::ephemeral_dev() };
    let node = paystreams_node::start(slow).await.expect("node starts");
    let rpc = node.rpc_url();
    let keystore = dir.path().join("slow-keystore");
    paystreams_client::Keystore::open(&keystore).expect("keystore").save_dev_keys(node.dev_keys()).expect("dev keys");
    // Pre-flight refuses a transfer that would fail here too (no block is coming to fail it).
    let out = run(&rpc, &keystore, dir.path(), &["keys", "new", "carol"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out =
        run(&rpc, &keystore, dir.path(), &["account", "transfer", "--from", "dev-0", "--to", "carol", "--amount", "3"])
            .await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("--to-key") && sent_hash(&text(&out.stderr)).is_none(), "{}", text(&out.stderr));
    let mut child = spawn_piped(
        &rpc,
        &keystore,
        dir.path(),
        &["--json", "account", "transfer", "--from", "dev-0", "--to", "dev-1", "--amount", "7"],
    );
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let first = tokio::task::spawn_blocking(move || {
        let line = rx.recv_timeout(DEADLINE).expect("a line on stderr");
        (line, rx)
    })
    .await
    .expect("join");
    let (line, rx) = first;
    let hash = sent_hash(&line).unwrap_or_else(|| panic!("first stderr line names no hash: {line}"));
    node.shutdown().await;
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().expect("wait")).await.expect("join");
    let rest: Vec<String> = rx.try_iter().collect();
    assert_eq!(out.status.code(), Some(3), "{rest:?}");
    let error = json_of(&out);
    assert_eq!(error["error"]["tx_hash"].as_str(), Some(hash.as_str()), "{error}");
    let message = error["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(&format!("paystream tx show {hash}")), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_closed_stdout_ends_output_quietly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keystore = dir.path().join("keystore");
    let (node, _client) = dev_node(Some(&keystore)).await;
    let rpc = node.rpc_url();
    for args in [
        vec!["vault", "init", "--owner", "dev-0", "--vault-id", "0"],
        vec!["vault", "deposit", "--owner", "dev-0", "--vault-id", "0", "--amount", "1000"],
        vec![
            "stream",
            "create",
            "--owner",
            "dev-0",
            "--vault-id",
            "0",
            "--provider",
            "dev-1",
            "--rate",
            "1",
            "--allocation",
            "500",
        ],
    ] {
        let out = run(&rpc, &keystore, dir.path(), &args).await;
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    }

    // `paystream stream --json watch … | head -1`: the reader takes one line and goes away.
    let mut child = spawn_piped(
        &rpc,
        &keystore,
        dir.path(),
        &["stream", "--json", "watch", "--owner", "dev-0", "--vault-id", "0", "--stream-id", "0"],
    );
    let out = tokio::task::spawn_blocking(move || {
        let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
        let mut first = String::new();
        reader.read_line(&mut first).expect("first line");
        drop(reader);
        let deadline = Instant::now() + DEADLINE;
        while child.try_wait().expect("try_wait").is_none() {
            assert!(Instant::now() < deadline, "watch kept running after its reader left");
            std::thread::sleep(Duration::from_millis(50));
        }
        (first, child.wait_with_output().expect("output"))
    })
    .await
    .expect("join");
    let (first, out) = out;
    let line: Value = serde_json::from_str(&first).expect("a JSON line");
    assert_eq!(line["allocation"], "500");
    assert_eq!(out.status.code(), Some(141), "{}", text(&out.stderr));
    assert!(!text(&out.stderr).contains("panicked"), "{}", text(&out.stderr));
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_transfer_that_would_create_an_unsigned_account_is_refused_before_sending() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keystore = dir.path().join("keystore");
    let (node, client): (_, Client) = dev_node(Some(&keystore)).await;
    let rpc = node.rpc_url();
    let out = run(&rpc, &keystore, dir.path(), &["keys", "new", "bob"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let sender = client.account(crate::common::key_id(&keystore, "dev-0")).await.expect("account");

    let out = run(
        &rpc,
        &keystore,
        dir.path(),
        &["--json", "account", "transfer", "--from", "dev-0", "--to", "bob", "--amount", "10"],
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let error = json_of(&out);
    assert_eq!(error["error"]["preflight"], true, "{error}");
    assert_eq!(error["error"]["tx_hash"], Value::Null, "{error}");
    let message = error["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("--to-key") && message.contains("never been used"), "{message}");
    assert!(sent_hash(&text(&out.stderr)).is_none(), "{}", text(&out.stderr));
    // Nothing was sent: the sender's nonce and balance are as they were.
    let after = client.account(crate::common::key_id(&keystore, "dev-0")).await.expect("account");
    assert_eq!((after.nonce, after.balance), (sender.nonce, sender.balance));

    // With the recipient's key, the same transfer goes through, exactly.
    let out = run(
        &rpc,
        &keystore,
        dir.path(),
        &["account", "transfer", "--from", "dev-0", "--to", "bob", "--to-key", "bob", "--amount", "10"],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let bob = client.account(crate::common::key_id(&keystore, "bob")).await.expect("account");
    assert_eq!(bob.balance, 10);
    let after = client.account(crate::common::key_id(&keystore, "dev-0")).await.expect("account");
    assert_eq!(after.balance, sender.balance - 10);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stray_file_in_the_keystore_is_skipped_with_a_warning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keystore = dir.path().join("keystore");
    let (node, _client) = dev_node(Some(&keystore)).await;
    std::fs::write(keystore.join("notes.json"), b"{\"todo\": \"buy milk\"}").expect("write");
    let out = run(&node.rpc_url(), &keystore, dir.path(), &["keys", "list", "--json"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let keys = json_of(&out);
    assert!(keys.as_array().is_some_and(|k| k.len() == 10 && k.iter().all(|k| k["name"] != "notes")), "{keys}");
    assert!(text(&out.stderr).contains("notes.json is not a key"), "{}", text(&out.stderr));
    // Commands that resolve names still work.
    let out = run(&node.rpc_url(), &keystore, dir.path(), &["account", "balance", "dev-0"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    node.shutdown().await;
}

/// The example file the README imports.
fn example_messages() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/messages.jsonl")
}

#[tokio::test(flavor = "multi_thread")]
async fn store_import_takes_the_example_and_refuses_timestamps_not_in_nanoseconds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keystore = dir.path().join("keystore");
    let archive = dir.path().join("archive.sqlite").display().to_string();
    let example = example_messages();
    let lines = std::fs::read_to_string(&example).expect("examples/messages.jsonl").lines().count();
    let out = run(
        "http://127.0.0.1:9",
        &keystore,
        dir.path(),
        &["--json", "store", "import", &example.display().to_string(), "--archive", &archive],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(json_of(&out)["imported"], lines);

    let good = "{\"pubsub_topic\":\"/waku/2/rs/0/0\",\"content_topic\":\"/c/1/x/proto\",\"text\":\"ok\",\"timestamp\":1765090800000000000}";
    for (bad, says) in [
        ("1765090800", "looks like seconds"),
        ("1765090800000", "looks like milliseconds"),
        ("-1", "is not a time"),
        ("0", "is not a time"),
        ("9000000000000000000", "in the future"),
    ] {
        let file = dir.path().join("bad.jsonl");
        std::fs::write(&file, format!("{good}\n{}\n", good.replace("1765090800000000000", bad))).expect("write");
        let out = run(
            "http://127.0.0.1:9",
            &keystore,
            dir.path(),
            &["store", "import", &file.display().to_string(), "--archive", &archive],
        )
        .await;
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {stderr}");
        assert!(
            stderr.contains("line 2") && stderr.contains(says) && stderr.contains("nothing was imported"),
            "{stderr}"
        );
    }
    // Nothing of the refused files was written: the archive holds the example only.
    let out = run(
        "http://127.0.0.1:9",
        &keystore,
        dir.path(),
        &["--json", "store", "import", &example.display().to_string(), "--archive", &archive],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(json_of(&out)["archive_total"], lines);
    assert_eq!(json_of(&out)["already_stored"], lines);
}

#[tokio::test(flavor = "multi_thread")]
async fn common_flags_go_before_or_after_the_subcommand() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keystore = dir.path().join("keystore");
    let (node, _client) = dev_node(Some(&keystore)).await;
    let rpc = node.rpc_url();
    let ks = keystore.display().to_string();
    // The environment points elsewhere: only the flags can make these work.
    let nowhere = dir.path().join("empty-keystore");
    for args in [
        vec!["--json", "--rpc", rpc.as_str(), "--keystore", ks.as_str(), "stream", "list", "--owner", "dev-0"],
        vec!["stream", "--json", "--rpc", rpc.as_str(), "list", "--keystore", ks.as_str(), "--owner", "dev-0"],
        vec!["stream", "list", "--owner", "dev-0", "--json", "--rpc", rpc.as_str(), "--keystore", ks.as_str()],
        vec!["--keystore", ks.as_str(), "--json", "account", "--rpc", rpc.as_str(), "balance", "dev-0"],
        vec!["--json", "--keystore", ks.as_str(), "keys", "list"],
    ] {
        let out = run("http://127.0.0.1:9", &nowhere, dir.path(), &args).await;
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        let value = json_of(&out);
        assert!(value.is_array() || value.get("balance").is_some(), "{args:?}: {value}");
    }
    // --chain before the subcommand is parsed too (a LEZ-only endpoint cannot list streams).
    let out = run(&rpc, &keystore, dir.path(), &["--chain", "paystreams", "--json", "keys", "list"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));

    // Every subcommand still parses and documents the flags and the environment.
    let out = run(&rpc, &keystore, dir.path(), &["--help"]).await;
    let help = text(&out.stdout);
    assert!(out.status.success());
    for word in ["PAYSTREAMS_RPC", "PAYSTREAMS_KEYSTORE", "PAYSTREAMS_HOME", "PAYSTREAMS_CHAIN", "before or after"] {
        assert!(help.contains(word), "--help lacks {word}:\n{help}");
    }
    for sub in ["node", "dashboard", "demo", "sim", "store", "stream", "keys"] {
        let out = run(&rpc, &keystore, dir.path(), &[sub, "--help"]).await;
        assert!(out.status.success() && text(&out.stdout).contains("--rpc"), "{sub} --help: {}", text(&out.stderr));
    }
    node.shutdown().await;
}

/// Runs `paystream args` with only `PAYSTREAMS_HOME` (and `env`) set: the config file decides.
async fn run_home(home: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut command = paystream();
    command
        .args(args)
        .env("PAYSTREAMS_HOME", home)
        .env_remove("PAYSTREAMS_RPC")
        .env_remove("PAYSTREAMS_KEYSTORE")
        .env_remove("PAYSTREAMS_CHAIN");
    for (key, value) in env {
        command.env(key, value);
    }
    tokio::task::spawn_blocking(move || command.output().expect("run paystream")).await.expect("join")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_config_file_sits_between_the_environment_and_the_defaults() {
    let home = tempfile::tempdir().expect("tempdir");
    let keystore = home.path().join("my-keys");
    let (node, client) = dev_node(Some(&keystore)).await;
    let rpc = node.rpc_url();
    let ks = keystore.display().to_string();

    let shown = json_of(&run_home(home.path(), &[], &["config", "show", "--json"]).await);
    assert_eq!(shown["rpc"]["source"], "default", "{shown}");
    assert_eq!(shown["config file"]["source"], "absent", "{shown}");

    // Written once from flags, then no flag is needed: not the node's URL, not the keystore, not --owner.
    let out =
        run_home(home.path(), &[], &["config", "init", "--rpc", &rpc, "--keystore", &ks, "--identity", "dev-0"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let written = std::fs::read_to_string(home.path().join("config.toml")).expect("config.toml");
    assert!(written.contains(&rpc) && written.contains("dev-0"), "{written}");
    let out = run_home(home.path(), &[], &["config", "init"]).await;
    assert_eq!(out.status.code(), Some(2), "init must not overwrite: {}", text(&out.stderr));
    for args in
        [vec!["vault", "init", "--vault-id", "0"], vec!["vault", "deposit", "--vault-id", "0", "--amount", "700"]]
    {
        let out = run_home(home.path(), &[], &args).await;
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    }
    let dev0 = crate::common::key_id(&keystore, "dev-0");
    let vault = client.vault(dev0, 0).await.expect("vault call").expect("vault 0 of dev-0");
    assert_eq!(vault.unallocated.0, 700);

    // Where each value came from: file, then environment over file, then flag over both.
    let shown = json_of(&run_home(home.path(), &[], &["config", "show", "--json"]).await);
    assert_eq!(
        (shown["rpc"]["value"].as_str(), shown["rpc"]["source"].as_str()),
        (Some(rpc.as_str()), Some("config file"))
    );
    assert_eq!(shown["keystore"]["source"], "config file");
    assert_eq!(shown["identity"]["value"], "dev-0");
    let shown = json_of(
        &run_home(home.path(), &[("PAYSTREAMS_RPC", "http://127.0.0.1:9")], &["config", "show", "--json"]).await,
    );
    assert_eq!(shown["rpc"]["value"], "http://127.0.0.1:9");
    assert_eq!(shown["rpc"]["source"], "environment (PAYSTREAMS_RPC)");
    let shown = json_of(
        &run_home(
            home.path(),
            &[("PAYSTREAMS_RPC", "http://127.0.0.1:9")],
            &["--rpc", "http://127.0.0.1:8", "config", "show", "--json"],
        )
        .await,
    );
    assert_eq!(
        (shown["rpc"]["value"].as_str(), shown["rpc"]["source"].as_str()),
        (Some("http://127.0.0.1:8"), Some("flag"))
    );
    // The environment really wins over the file: the command goes to the dead address.
    let out =
        run_home(home.path(), &[("PAYSTREAMS_RPC", "http://127.0.0.1:9")], &["account", "balance", "dev-0"]).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));

    // A malformed file stops every command, naming the line.
    std::fs::write(home.path().join("config.toml"), format!("rpc = \"{rpc}\"\nchain = lez\n")).expect("write");
    let out = run_home(home.path(), &[], &["keys", "list"]).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("config.toml") && stderr.contains("line 2"), "{stderr}");
    node.shutdown().await;
}
