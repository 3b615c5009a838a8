//! Helpers the CLI's integration tests share.

use std::{
    io::{BufRead as _, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use paystreams_client::{Client, Keystore};
use paystreams_node::{NodeConfig, NodeHandle};

/// How long [`wait_for`] waits before it fails the test.
const WAIT_FOR_DEADLINE: Duration = Duration::from_secs(10);
/// How often [`wait_for`] asks again.
const WAIT_FOR_POLL: Duration = Duration::from_millis(50);

/// The `paystream` binary under test.
pub fn paystream() -> Command {
    Command::new(env!("CARGO_BIN_EXE_paystream"))
}

/// An in-process dev node (in memory, port 0, automine, dev methods) and a client to it. With
/// `keystore`, its dev keys are saved there (`dev-0`, `dev-1`, ...), as `paystream node --dev`
/// does.
pub async fn dev_node(keystore: Option<&Path>) -> (NodeHandle, Client) {
    let node = paystreams_node::start(NodeConfig::ephemeral_dev()).await.expect("node starts");
    if let Some(dir) = keystore {
        Keystore::open(dir).expect("keystore").save_dev_keys(node.dev_keys()).expect("dev keys");
    }
    let client = Client::connect(&node.rpc_url()).expect("client");
    (node, client)
}

/// Asks `probe` until it answers `Some`; fails the test, naming `what`, after ten seconds.
pub async fn wait_for<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT_FOR_DEADLINE;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {WAIT_FOR_DEADLINE:?} waiting for {what}");
        tokio::time::sleep(WAIT_FOR_POLL).await;
    }
}

/// A `paystream store serve` process, killed when dropped (a failed assertion must not leave
/// providers running).
pub struct Provider {
    pub child: Child,
    /// Its TCP address, ending in `/p2p/<peer id>`.
    pub address: String,
    /// Its WebSocket address (js-waku dials it), when it listens on one.
    pub ws_address: Option<String>,
    pub peer_id: String,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How long a provider may take to start before the test fails.
const SERVE_DEADLINE: Duration = Duration::from_secs(60);

/// Writes `n` messages as `store import` reads them (JSON lines): on `content_topic` under
/// `pubsub_topic`, text `line 00`, `line 01`..., one second apart.
pub fn write_messages(path: &Path, pubsub_topic: &str, content_topic: &str, n: u32) {
    let lines: Vec<String> = (0..n)
        .map(|i| {
            serde_json::json!({
                "pubsub_topic": pubsub_topic,
                "content_topic": content_topic,
                "text": format!("line {i:02}"),
                "timestamp": 1_700_000_000_000_000_000i64 + i64::from(i) * 1_000_000_000,
            })
            .to_string()
        })
        .collect();
    std::fs::write(path, lines.join("\n") + "\n").expect("write import file");
}

/// Spawns `command` (stdout piped, stderr shown) and returns it with the lines it printed on
/// stdout that start with `prefix` (the prefix taken off), once it has printed them all (the
/// first line after them that does not start with `prefix` ends the list); fails the test after
/// `deadline`. Long-running processes print their addresses this way when they are ready.
pub fn spawn_and_read(command: &mut Command, prefix: &'static str, deadline: Duration) -> (Child, Vec<String>) {
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("spawns");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut found = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix(prefix) {
                found.push(rest.trim().to_owned());
            } else if !found.is_empty() {
                let _ = tx.send(std::mem::take(&mut found));
            }
        }
        // The process ended (or closed stdout) right after the lines.
        if !found.is_empty() {
            let _ = tx.send(found);
        }
    });
    let found = rx.recv_timeout(deadline).unwrap_or_else(|_| panic!("no {prefix:?} line within {deadline:?}"));
    (child, found)
}

/// Starts `paystream store serve` as provider `dev-1` (admin endpoint off) with `extra` flags
/// and waits for the addresses it prints (`listening on …`, TCP first, then WebSocket).
pub fn serve(rpc: &str, keystore: &Path, home: &Path, extra: &[&str]) -> Provider {
    let mut command = paystream();
    command
        .args(["store", "--rpc", rpc, "--keystore"])
        .arg(keystore)
        .args(["serve", "--provider", "dev-1", "--admin", "off", "--first-response-cap", "100000"])
        .args(extra)
        .env("PAYSTREAMS_HOME", home);
    let (child, addrs) = spawn_and_read(&mut command, "listening on ", SERVE_DEADLINE);
    let address = addrs[0].clone();
    let ws_address = addrs.iter().find(|a| a.contains("/ws/")).cloned();
    let peer_id = address.rsplit("/p2p/").next().expect("a /p2p/ address").to_owned();
    Provider { child, address, ws_address, peer_id }
}

/// Starts `paystream store serve` (see [`serve`]) on `archive` with its sessions in
/// `dir/sessions.redb` (so a restart on the same `dir` continues them), and `extra` flags.
pub fn serve_archive(chain: &Chain, dir: &Path, archive: &str, extra: &[&str]) -> Provider {
    let sessions = dir.join("sessions.redb").display().to_string();
    let mut flags = vec!["--archive", archive, "--sessions", sessions.as_str()];
    flags.extend_from_slice(extra);
    serve(&chain.node.rpc_url(), &chain.keystore, dir, &flags)
}

/// What a JavaScript script printed and how it ended.
#[derive(Debug)]
pub struct JsRun {
    pub status: Option<i32>,
    /// Each stdout line that parses as JSON, in order.
    pub lines: Vec<serde_json::Value>,
    pub stdout: String,
    pub stderr: String,
}

impl JsRun {
    /// The last JSON line, which the scripts under `js/test/` make their verdict; fails the
    /// test, showing everything printed, when the script failed or printed none.
    pub fn verdict(&self) -> &serde_json::Value {
        assert_eq!(self.status, Some(0), "the script failed\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self.lines
            .last()
            .unwrap_or_else(|| panic!("no JSON output\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr))
    }
}

/// Runs `node js/<script>` from the repository root (so it resolves the root's `node_modules`)
/// with `env` added, and fails the test if it has not ended after `timeout`.
pub async fn run_js(script: &str, env: &[(&str, &str)], timeout: Duration) -> JsRun {
    let (node, root) = paystreams_testkit::probe::node().unwrap_or_else(|| {
        panic!("Node.js and the npm project are needed: {}", paystreams_testkit::probe::Tool::Node.install_hint())
    });
    let mut command = tokio::process::Command::new(node);
    command
        .arg(root.join("js").join(script))
        .current_dir(&root)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = command.spawn().expect("node starts");
    let output = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("js/{script} did not finish within {timeout:?}"))
        .expect("node ran");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let lines = stdout.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    JsRun { status: output.status.code(), lines, stdout, stderr: String::from_utf8_lossy(&output.stderr).into_owned() }
}

/// `paystream store import FILE --archive ARCHIVE`.
pub fn import(rpc: &str, keystore: &Path, file: &Path, archive: &str) -> std::process::Output {
    paystream()
        .args(["store", "--rpc", rpc, "--keystore"])
        .arg(keystore)
        .args(["import"])
        .arg(file)
        .args(["--archive", archive])
        .output()
        .expect("runs")
}

/// A dev node whose `dev-0` has a vault (0) holding 50 000 units, and its keystore.
pub struct Chain {
    pub node: paystreams_node::NodeHandle,
    pub client: Client,
    _dir: tempfile::TempDir,
    pub keystore: std::path::PathBuf,
}

impl Chain {
    /// An archive at `dir/archive.sqlite` holding `n` messages of the CLI tests' topic
    /// ([`crate::store_cli::TOPIC`]), filled through `paystream store import`; its path.
    pub fn seeded_archive(&self, dir: &Path, n: u32) -> String {
        let archive = dir.join("archive.sqlite").display().to_string();
        let file = dir.join("messages.jsonl");
        crate::store_cli::write_messages(&file, n);
        let out = import(&self.node.rpc_url(), &self.keystore, &file, &archive);
        assert!(out.status.success(), "import failed: {}", String::from_utf8_lossy(&out.stderr));
        archive
    }
}

pub async fn chain() -> Chain {
    let dir = tempfile::tempdir().expect("tempdir");
    let keystore = dir.path().join("keystore");
    let (node, client) = dev_node(Some(&keystore)).await;
    let user = node.dev_keys()[0].clone();
    client.init_vault(&user, 0, None).await.expect("vault");
    client.deposit(&user, 0, 50_000).await.expect("deposit");
    Chain { node, client, _dir: dir, keystore }
}

/// The account of the keystore key `name`.
pub fn key_id(keystore: &Path, name: &str) -> paystreams_lez_core::AccountId {
    Keystore::open(keystore).expect("keystore").get(name).expect("key").account_id()
}

/// A loopback port for a process under test to listen on, never the same twice in this test
/// process. Taken below the kernel's ephemeral range (32768 and up on Linux), so no outgoing
/// connection can take it between this check and the process binding it.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = std::process::id().wrapping_mul(7_919) % SPAN;
    for _ in 0..SPAN {
        let step = NEXT.fetch_add(1, Ordering::SeqCst);
        let port = u16::try_from(FIRST + (start + step) % SPAN).expect("below 65536");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port between {FIRST} and {}", FIRST + SPAN);
}
