//! Ports in the config file: a non-default node address is written once (`node_rpc_addr`), the
//! node listens there and every other command finds it there; the environment overrides the
//! file and a flag overrides both; the agent's and the gate's addresses come from the file too;
//! `--help` says where each can be set.

use std::{
    path::Path,
    process::{Command, Output},
    time::Duration,
};

use serde_json::Value;

use crate::common::{free_port, paystream, spawn_and_read};

/// How long a listening process may take to print its address.
const START_DEADLINE: Duration = Duration::from_secs(60);

/// `paystream args` with only `PAYSTREAMS_HOME` and `env` set: the config file decides the rest.
fn command(home: &Path, env: &[(&str, &str)], args: &[&str]) -> Command {
    let mut command = paystream();
    command.args(args).env("PAYSTREAMS_HOME", home);
    for var in [
        "PAYSTREAMS_RPC",
        "PAYSTREAMS_KEYSTORE",
        "PAYSTREAMS_CHAIN",
        "PAYSTREAMS_NODE_RPC_ADDR",
        "PAYSTREAMS_DASHBOARD_LISTEN",
        "PAYSTREAMS_GATE_LISTEN",
        "PAYSTREAMS_AGENT_LISTEN",
    ] {
        command.env_remove(var);
    }
    for (key, value) in env {
        command.env(key, value);
    }
    command
}

async fn run(home: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut command = command(home, env, args);
    tokio::task::spawn_blocking(move || command.output().expect("run paystream")).await.expect("join")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn shown(home: &Path, env: &[(&str, &str)]) -> Value {
    let out = run(home, env, &["config", "show", "--json"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("config show --json")
}

/// A long-running command, killed when the test ends however it ends.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_written_once_in_the_config_file_moves_the_node_and_every_command_finds_it() {
    let home = tempfile::tempdir().expect("tempdir");
    let (node_port, agent_port, gate_port) = (free_port(), free_port(), free_port());
    let node_addr = format!("127.0.0.1:{node_port}");
    std::fs::write(
        home.path().join("config.toml"),
        format!(
            "node_rpc_addr = \"{node_addr}\"\nagent_listen = \"127.0.0.1:{agent_port}\"\ngate_listen = \
             \"127.0.0.1:{gate_port}\"\n"
        ),
    )
    .expect("write config");

    // The node takes its address from the file...
    let (node, lines) = spawn_and_read(
        &mut command(home.path(), &[], &["node", "--dev", "--automine", "--ephemeral"]),
        "paystream node listening on ",
        START_DEADLINE,
    );
    let _node = Running(node);
    assert!(lines[0].starts_with(&format!("http://{node_addr} ")), "{lines:?}");
    // ... and every other command reaches it there, with no --rpc and no PAYSTREAMS_RPC.
    for args in [vec!["vault", "init", "--owner", "dev-0", "--vault-id", "0"], vec!["account", "balance", "dev-0"]] {
        let out = run(home.path(), &[], &args).await;
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    }
    let settings = shown(home.path(), &[]).await;
    assert_eq!(settings["rpc"]["value"], format!("http://{node_addr}"), "{settings}");
    assert_eq!(settings["rpc"]["source"], "config file (node_rpc_addr)");
    assert_eq!(settings["node_rpc_addr"]["value"], node_addr.as_str());
    assert_eq!(settings["node_rpc_addr"]["source"], "config file");
    for (key, port) in [("agent_listen", agent_port), ("gate_listen", gate_port)] {
        assert_eq!(settings[key]["value"], format!("127.0.0.1:{port}"), "{settings}");
        assert_eq!(settings[key]["source"], "config file");
    }
    assert_eq!(settings["dashboard_listen"]["source"], "default");

    // The agent listens where the file says.
    let (agent, lines) = spawn_and_read(
        &mut command(home.path(), &[], &["agent", "--from", "dev-0"]),
        "agent listening on ",
        START_DEADLINE,
    );
    let _agent = Running(agent);
    assert_eq!(lines, [format!("http://127.0.0.1:{agent_port}")]);

    // The environment overrides the file, a flag overrides both.
    let other = format!("127.0.0.1:{}", free_port());
    let settings =
        shown(home.path(), &[("PAYSTREAMS_NODE_RPC_ADDR", &other), ("PAYSTREAMS_GATE_LISTEN", &other)]).await;
    assert_eq!(settings["node_rpc_addr"]["value"], other.as_str());
    assert_eq!(settings["node_rpc_addr"]["source"], "environment (PAYSTREAMS_NODE_RPC_ADDR)");
    assert_eq!(settings["gate_listen"]["source"], "environment (PAYSTREAMS_GATE_LISTEN)");
    let (second, lines) = spawn_and_read(
        &mut command(
            home.path(),
            &[("PAYSTREAMS_NODE_RPC_ADDR", &other)],
            &["node", "--dev", "--automine", "--ephemeral", "--rpc-addr", "127.0.0.1:0"],
        ),
        "paystream node listening on ",
        START_DEADLINE,
    );
    let _second = Running(second);
    assert!(
        !lines[0].starts_with(&format!("http://{other} ")) && !lines[0].starts_with(&format!("http://{node_addr} ")),
        "{lines:?}"
    );
    let (third, lines) = spawn_and_read(
        &mut command(
            home.path(),
            &[("PAYSTREAMS_NODE_RPC_ADDR", &other)],
            &["node", "--dev", "--automine", "--ephemeral"],
        ),
        "paystream node listening on ",
        START_DEADLINE,
    );
    let _third = Running(third);
    assert!(lines[0].starts_with(&format!("http://{other} ")), "{lines:?}");

    // --help says where each address can be set.
    for (sub, key, env) in [
        ("node", "node_rpc_addr", "PAYSTREAMS_NODE_RPC_ADDR"),
        ("dashboard", "dashboard_listen", "PAYSTREAMS_DASHBOARD_LISTEN"),
        ("gate", "gate_listen", "PAYSTREAMS_GATE_LISTEN"),
        ("agent", "agent_listen", "PAYSTREAMS_AGENT_LISTEN"),
    ] {
        let out = run(home.path(), &[], &[sub, "--help"]).await;
        let help = text(&out.stdout).split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(help.contains(key) && help.contains(&format!("env: {env}")), "{sub} --help: {help}");
    }
    let out = run(home.path(), &[], &["config", "--help"]).await;
    let help = text(&out.stdout);
    for key in ["node_rpc_addr", "dashboard_listen", "gate_listen", "agent_listen", "PAYSTREAMS_GATE_LISTEN"] {
        assert!(help.contains(key), "config --help lacks {key}: {help}");
    }

    // A value that is not an address names its line.
    std::fs::write(home.path().join("config.toml"), "agent_listen = \"127.0.0.1:8060\"\ngate_listen = \"8042\"\n")
        .expect("write config");
    let out = run(home.path(), &[], &["keys", "list"]).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("line 2: gate_listen = \"8042\" is not an address"), "{stderr}");
}
