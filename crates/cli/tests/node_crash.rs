//! Crash test: the real `paystream node` binary, SIGKILLed at random moments while transactions
//! stream in, restarted each time. Checks that every transaction a receipt reported as included
//! is still included in the same block, that a replay of all blocks reproduces the state root
//! (`paystream node --verify`), and that native supply is conserved. And a transaction the
//! node accepted (the CLI printed its hash) but had not yet put in a block when it was killed is
//! pending again after the restart and included by the next block.

use std::{
    io::{BufRead as _, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use base64::Engine as _;
use jsonrpsee::http_client::{HttpClient, HttpClientBuilder};
use paystreams_client::keystore::Keystore;
use paystreams_lez_core::{AccountId, crypto::SecretKey, transfer::authenticated_transfer_program_id};
use paystreams_rpc::{HexHash, LezApiClient as _, PaystreamsApiClient as _, TxStatus};
use paystreams_runtime::{Message, Transaction};
use paystreams_testkit::rng::Rng;

const BIN: &str = env!("CARGO_BIN_EXE_paystream");
/// Kills per run: 12 in the normal test run; the fault suite runs 50
/// (`PAYSTREAMS_CRASH_KILLS=50 cargo test --release -p paystream --test node_crash`).
fn kills() -> usize {
    std::env::var("PAYSTREAMS_CRASH_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(12)
}
const ACCOUNTS: usize = 4;
/// Transactions each round sees included before its kill.
const INCLUDED_PER_ROUND: usize = 2;
/// How long a round may take to see them.
const ROUND_DEADLINE: Duration = Duration::from_secs(30);

/// `paystream node NODE_ARGS --rpc-addr 127.0.0.1:0` on `data` and `keystore`; the child and its
/// URL once it listens (its stdout is drained afterwards, so it never blocks on a full pipe).
fn spawn_node(node_args: &[&str], data: &Path, keystore: &Path) -> (Child, String) {
    let mut child = Command::new(BIN)
        .arg("node")
        .args(node_args)
        .args(["--rpc-addr", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .arg("--keystore")
        .arg(keystore)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn paystream node");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let url = loop {
        let line = lines.next().expect("node printed its address").expect("read stdout");
        if let Some(rest) = line.strip_prefix("paystream node listening on ") {
            break rest.split_whitespace().next().expect("url").to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, url)
}

/// An automining dev node with [`ACCOUNTS`] funded keys.
fn start_node(data: &Path, keystore: &Path) -> (Child, String) {
    spawn_node(&["--automine", "--dev", "--dev-accounts", &ACCOUNTS.to_string()], data, keystore)
}

fn client(url: &str) -> HttpClient {
    HttpClientBuilder::default().request_timeout(Duration::from_secs(5)).build(url).expect("client")
}

fn transfer(from: &SecretKey, to: AccountId, nonce: u128) -> String {
    let message = Message {
        program_id: authenticated_transfer_program_id(),
        account_ids: vec![from.account_id(), to],
        nonces: vec![nonce],
        instruction_data: paystreams_lez_core::transfer::transfer_instruction(1),
    };
    base64::engine::general_purpose::STANDARD.encode(Transaction::sign(message, &[from]).envelope_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_moments_loses_nothing_included() {
    let kills = kills();
    let mut rng = Rng::from_env_or_clock("node crash");
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("chain");
    let keystore_dir = dir.path().join("keystore");
    let included: Arc<Mutex<Vec<(HexHash, u64)>>> = Arc::default();
    let mut keys: Vec<SecretKey> = vec![];

    for round in 0..=kills {
        let (mut child, url) = start_node(&data, &keystore_dir);
        let rpc = client(&url);
        if keys.is_empty() {
            let store = Keystore::open(&keystore_dir).expect("keystore");
            keys = (0..ACCOUNTS).map(|i| store.get(&format!("dev-{i}")).expect("dev key").key).collect();
        }
        // Everything reported included before a kill is still there, in the same block.
        let recorded = included.lock().expect("lock").clone();
        for (hash, block) in &recorded {
            let receipt =
                rpc.get_transaction_receipt(*hash).await.expect("receipt call").expect("receipt survives restart");
            assert_eq!(receipt.block_id, Some(*block), "round {round}: {hash} moved");
            assert_eq!(receipt.status, TxStatus::Included);
        }
        if round == kills {
            child.kill().expect("kill");
            child.wait().expect("wait");
            break;
        }

        let ids: Vec<AccountId> = keys.iter().map(SecretKey::account_id).collect();
        let nonces = rpc.get_accounts_nonces(ids.clone()).await.expect("nonces");
        let sender = {
            let (keys, included) = (keys.clone(), Arc::clone(&included));
            let mut nonces: Vec<u128> = nonces.clone();
            tokio::spawn(async move {
                for i in 0.. {
                    let from = i % ACCOUNTS;
                    let to = ids[(i + 1) % ACCOUNTS];
                    let Ok(hash) = rpc.send_transaction(transfer(&keys[from], to, nonces[from])).await else {
                        return;
                    };
                    nonces[from] += 1;
                    // Automine answers after the block is durably committed.
                    let Ok(Some(receipt)) = rpc.get_transaction_receipt(hash).await else {
                        return;
                    };
                    assert_eq!(receipt.status, TxStatus::Included, "{receipt:?}");
                    included.lock().expect("lock").push((hash, receipt.block_id.expect("block")));
                }
            })
        };
        // Kill at a random moment once this round has seen transactions included, so every
        // round adds to what the next restart must keep however slow the machine is.
        let deadline = Instant::now() + ROUND_DEADLINE;
        while included.lock().expect("lock").len() < recorded.len() + INCLUDED_PER_ROUND
            && !sender.is_finished()
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.next() % 400)).await;
        child.kill().expect("SIGKILL");
        child.wait().expect("wait");
        // The sender stops at its first failed call; a failed assertion in it fails the test.
        if let Ok(Err(error)) = tokio::time::timeout(Duration::from_secs(10), sender).await
            && error.is_panic()
        {
            std::panic::resume_unwind(error.into_panic());
        }
        let added = included.lock().expect("lock").len() - recorded.len();
        assert!(
            added >= INCLUDED_PER_ROUND,
            "round {round}: {added} transactions included before the kill (waited up to {ROUND_DEADLINE:?})"
        );
    }

    let count = included.lock().expect("lock").len();
    assert!(count > kills, "only {count} transactions got through");
    let output = Command::new(BIN).args(["node", "--verify", "--data-dir"]).arg(&data).output().expect("verify");
    assert!(output.status.success(), "verify failed: {}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("report json");
    assert_eq!(report["supply"], report["genesis_supply"], "{report}");
    assert!(report["transactions"].as_u64().expect("transactions") >= count as u64, "{report}");
    println!("{count} included transactions over {kills} kills; replay: {report}");
}

/// `paystream node` with hour-long blocks (nothing is included until the test says so) and the
/// dev methods, on `data` and `keystore`; the child and its URL once it listens.
fn start_held_node(data: &Path, keystore: &Path) -> (Child, String) {
    spawn_node(&["--dev", "--block-time", "1h", "--dev-accounts", "2"], data, keystore)
}

/// `paystream ARGS --rpc URL --keystore DIR --json`, to its end: (exit code, stdout, stderr).
fn cli(url: &str, keystore: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::new(BIN)
        .args(args)
        .args(["--rpc", url, "--json", "--keystore"])
        .arg(keystore)
        .env_remove("PAYSTREAMS_HOME")
        .output()
        .expect("run paystream");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The `status` `paystream tx show HASH --json` prints.
fn tx_status(url: &str, keystore: &Path, hash: &str) -> String {
    let (code, stdout, stderr) = cli(url, keystore, &["tx", "show", hash]);
    assert_eq!(code, Some(0), "tx show: {stderr}");
    let shown: serde_json::Value = serde_json::from_str(&stdout).expect("tx show --json");
    shown["status"].as_str().expect("status").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_accepted_before_a_kill_9_is_included_after_the_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, keystore) = (dir.path().join("chain"), dir.path().join("keystore"));
    let (mut node, url) = start_held_node(&data, &keystore);
    let store = Keystore::open(&keystore).expect("keystore");
    let (from, to) = (store.get("dev-0").expect("dev-0").account_id(), store.get("dev-1").expect("dev-1").account_id());
    let rpc = client(&url);
    let balances = |rpc: HttpClient| async move {
        let from = rpc.get_account_balance(from).await.expect("balance");
        (from, rpc.get_account_balance(to).await.expect("balance"))
    };
    let (from_start, to_start) = balances(rpc.clone()).await;

    // The CLI prints the hash once the node has accepted the transfer, then waits for a block
    // that will not come before the kill.
    let mut transfer = Command::new(BIN)
        .args(["account", "transfer", "--from", "dev-0", "--to", "dev-1", "--amount", "1234", "--rpc", &url])
        .arg("--keystore")
        .arg(&keystore)
        .env_remove("PAYSTREAMS_HOME")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn transfer");
    let stderr = transfer.stderr.take().expect("stderr");
    let hash = BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
        .find_map(|line| line.strip_prefix("sent transaction ").and_then(|r| r.split(';').next()).map(str::to_owned))
        .expect("the CLI printed the hash it sent");
    assert_eq!(tx_status(&url, &keystore, &hash), "pending");
    node.kill().expect("SIGKILL");
    node.wait().expect("wait");
    let _ = transfer.kill();
    let _ = transfer.wait();

    // Restarted on the same data dir: the transaction is pending again, and the next block
    // includes it.
    let (mut node, url) = start_held_node(&data, &keystore);
    assert_eq!(tx_status(&url, &keystore, &hash), "pending", "the accepted transaction survived the kill");
    let rpc = client(&url);
    rpc.dev_mine(Some(1)).await.expect("mine");
    assert_eq!(tx_status(&url, &keystore, &hash), "included");
    assert_eq!(balances(rpc).await, (from_start - 1234, to_start + 1234));
    node.kill().expect("kill");
    node.wait().expect("wait");
}
