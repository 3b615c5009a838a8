//! The README's walkthrough, run as a new user runs it: every command of the blocks marked
//! `<!-- walkthrough -->` in `README.md`, in order, through `sh` from the repository root with
//! the built `paystream` first on `PATH`, against a fresh home. The test sets only what a user's
//! environment holds (the home, and a free port for the node so tests can run side by side);
//! it substitutes nothing in the commands. A command whose comment says "in another terminal"
//! keeps running in the background, and is ready once it has printed its first line. Every other
//! command must exit 0. The state it leaves is then checked to the unit.

use std::{
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use paystreams_client::{Client, Keystore};
use paystreams_node::DEFAULT_DEV_BALANCE;

use crate::common::free_port;

/// The comment that marks a walkthrough block; the next line opens its ```sh fence.
const MARKER: &str = "<!-- walkthrough -->";
/// A command's comment containing this runs it in the background.
const BACKGROUND: &str = "in another terminal";
/// How long one command (or a background one's first line) may take.
const COMMAND_DEADLINE: Duration = Duration::from_secs(60);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repository root")
}

/// One command line of the walkthrough.
#[derive(Debug, PartialEq, Eq)]
struct Step {
    /// The command as written, without its comment.
    command: String,
    /// Runs in the background ("in another terminal").
    background: bool,
}

/// The commands of the marked blocks, in order. A marker must be followed by a fenced
/// `sh`/`console` block; `$ ` prompts are taken off, blank and comment lines skipped.
fn walkthrough(readme: &str) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    let mut lines = readme.lines().enumerate();
    while let Some((number, line)) = lines.next() {
        if line.trim() != MARKER {
            continue;
        }
        let fence = lines.next().map(|(_, l)| l.trim());
        if !matches!(fence, Some("```sh" | "```console" | "```shell")) {
            return Err(format!("line {}: {MARKER} must be followed by a ```sh block, not {fence:?}", number + 1));
        }
        let mut closed = false;
        for (_, line) in lines.by_ref() {
            let line = line.trim();
            if line == "```" {
                closed = true;
                break;
            }
            let line = line.strip_prefix("$ ").unwrap_or(line);
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            // The comment starts at " #" (commands here carry no quoted '#').
            let (command, comment) = line.split_once(" #").unwrap_or((line, ""));
            steps.push(Step { command: command.trim().to_owned(), background: comment.contains(BACKGROUND) });
        }
        if !closed {
            return Err(format!("line {}: the walkthrough block is not closed", number + 1));
        }
    }
    if steps.is_empty() {
        return Err(format!("README.md marks no walkthrough commands ({MARKER} before a ```sh block)"));
    }
    Ok(steps)
}

/// A background command, killed when the test ends however it ends.
struct Background(Child);

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `sh -c COMMAND` from the repository root with `paystream` first on `PATH` and `env` set.
fn shell(command: &str, env: &[(&str, String)]) -> Command {
    let bin = Path::new(env!("CARGO_BIN_EXE_paystream")).parent().expect("bin dir").to_owned();
    let path = std::env::join_paths(
        std::iter::once(bin)
            .chain(std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect::<Vec<_>>()).unwrap_or_default()),
    )
    .expect("PATH");
    let mut sh = Command::new("sh");
    sh.arg("-c").arg(command).current_dir(repo_root()).env("PATH", path).stdin(Stdio::null());
    for var in ["PAYSTREAMS_RPC", "PAYSTREAMS_KEYSTORE", "PAYSTREAMS_CHAIN", "PAYSTREAMS_NODE_RPC_ADDR"] {
        sh.env_remove(var);
    }
    for (key, value) in env {
        sh.env(key, value);
    }
    sh
}

/// Starts a background command and waits for its first line on stdout.
fn start_background(command: &str, env: &[(&str, String)]) -> (Background, String) {
    let mut child =
        shell(&format!("exec {command}"), env).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
        if let Some(first) = lines.next() {
            let _ = tx.send(first);
        }
        // Keep reading so the process never blocks on a full pipe.
        for _ in lines {}
    });
    let background = Background(child);
    let first = rx
        .recv_timeout(COMMAND_DEADLINE)
        .unwrap_or_else(|_| panic!("`{command}` printed nothing within {COMMAND_DEADLINE:?}"));
    (background, first)
}

#[test]
fn the_readme_marks_a_walkthrough() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    let steps = walkthrough(&readme).expect("walkthrough");
    assert!(steps.iter().any(|s| s.background && s.command.starts_with("paystream node")), "{steps:?}");
    assert_eq!(
        walkthrough("# x\n```sh\npaystream keys list\n```\n").expect_err("no marker"),
        "README.md marks no walkthrough commands (<!-- walkthrough --> before a ```sh block)"
    );
    let parsed = walkthrough("<!-- walkthrough -->\n```sh\n# a comment\n$ paystream a   # in another terminal: x\n\npaystream b --c 1 # d\n```\n")
        .expect("parsed");
    assert_eq!(
        parsed,
        [
            Step { command: "paystream a".into(), background: true },
            Step { command: "paystream b --c 1".into(), background: false }
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_user_follows_the_readme_start_to_finish() {
    let started = Instant::now();
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    let steps = walkthrough(&readme).expect("walkthrough");
    let home = tempfile::tempdir().expect("tempdir");
    let addr = format!("127.0.0.1:{}", free_port());
    // A user's environment: a home of their own, and (so tests may run side by side) the node
    // on a free port, where every command then looks for it.
    let env = [
        ("PAYSTREAMS_HOME", home.path().display().to_string()),
        ("PAYSTREAMS_NODE_RPC_ADDR", addr.clone()),
        ("PAYSTREAMS_RPC", format!("http://{addr}")),
    ];
    let mut running = Vec::new();
    let mut log = String::new();
    for step in &steps {
        if step.background {
            let (process, first) = start_background(&step.command, &env);
            log.push_str(&format!("$ {} &\n{first}\n", step.command));
            running.push(process);
            continue;
        }
        let command = step.command.clone();
        let env = env.clone();
        let output =
            tokio::task::spawn_blocking(move || shell(&command, &env).output().expect("runs")).await.expect("join");
        let (stdout, stderr) = (
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        );
        log.push_str(&format!("$ {}\n{stdout}{stderr}", step.command));
        assert!(
            output.status.success(),
            "`{}` exited with {:?}\n--- the walkthrough so far ---\n{log}",
            step.command,
            output.status.code()
        );
    }

    // What the walkthrough did, to the unit: dev-0 deposited 10000 into vault 0 and streamed
    // 3000 of it to dev-1 at 5/s; dev-1 claimed what had accrued. Every unit is in dev-0's
    // account, the vault, or dev-1's account.
    let client = Client::connect(&format!("http://{addr}")).expect("client");
    let keystore = Keystore::open(home.path().join("keystore")).expect("keystore");
    let (owner, provider) =
        (keystore.get("dev-0").expect("dev-0").account_id(), keystore.get("dev-1").expect("dev-1").account_id());
    let claimed = client.balance(provider).await.expect("balance") - DEFAULT_DEV_BALANCE;
    assert!(claimed > 0, "the claim paid nothing\n{log}");
    assert_eq!(client.balance(owner).await.expect("balance"), DEFAULT_DEV_BALANCE - 10_000, "{log}");
    let vault = client.vault(owner, 0).await.expect("vault call").expect("vault 0 of dev-0");
    assert_eq!(vault.balance.0, 10_000 - claimed, "{log}");
    assert_eq!(vault.total_allocated.0 + vault.unallocated.0, vault.balance.0, "{log}");
    let stream = client.stream(owner, 0, 0).await.expect("stream call").expect("stream 0");
    assert_eq!(stream.provider, provider);
    assert_eq!(stream.allocation.0 + claimed, 3_000, "the allocation shrinks by what was claimed\n{log}");
    assert_eq!(vault.total_allocated.0, stream.allocation.0, "{log}");
    drop(running);
    println!("walkthrough: {} commands in {:.1?}", steps.len(), started.elapsed());
}
