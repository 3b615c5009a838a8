//! `paystream gate` through the real binary: it refuses a non-loopback API address, writes its
//! token (mode 0600), serves the policy behind the token, and stops on a signal.

use std::{
    io::{Read as _, Write as _},
    path::Path,
    process::Child,
    time::Duration,
};

use crate::common::{dev_node, paystream, spawn_and_read};

const SERVICE: &str = "/paystreams/example/paid-http/1";

/// Kills the child when dropped (a failed assertion must not leave the gate running).
struct Gate(Child);

impl Drop for Gate {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A plain HTTP/1.1 GET, the answer's status line and body.
fn get(addr: &str, path: &str, token: &str) -> (String, String) {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n")
        .expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    (head.lines().next().unwrap_or_default().to_owned(), body.to_owned())
}

fn gate(rpc: &str, keystore: &Path, home: &Path, listen: &str) -> std::process::Command {
    let mut command = paystream();
    command
        .args(["gate", "--rpc", rpc, "--keystore"])
        .arg(keystore)
        .args(["--provider", "dev-1", "--service-id", SERVICE, "--listen", listen])
        .env("PAYSTREAMS_HOME", home);
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_serves_its_api_on_loopback_behind_a_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keystore = dir.path().join("keystore");
    let home = dir.path().join("home");
    let (node, _client) = dev_node(Some(&keystore)).await;
    let rpc = node.rpc_url();

    let refused = gate(&rpc, &keystore, &home, "0.0.0.0:0").output().expect("runs");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("not a loopback address"), "{stderr}");

    let (child, lines) =
        spawn_and_read(&mut gate(&rpc, &keystore, &home, "127.0.0.1:0"), "gate http://", Duration::from_secs(60));
    let gate_process = Gate(child);
    let rest = &lines[0];
    let addr = rest.split_whitespace().next().expect("address").to_owned();
    let token_path = rest.split("token in ").nth(1).and_then(|r| r.split(';').next()).expect("token path").to_owned();
    let token = std::fs::read_to_string(&token_path).expect("token file").trim().to_owned();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&token_path).expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the token file is the owner's only");
    }

    let (status, body) = get(&addr, "/v1/policy", &token);
    assert!(status.contains(" 200 "), "{status}");
    let policy: serde_json::Value = serde_json::from_str(&body).expect("policy json");
    assert_eq!(policy["service_ids"], serde_json::json!([SERVICE]));
    assert!(policy["advert"].as_str().is_some_and(|a| !a.is_empty()));
    let (status, _) = get(&addr, "/v1/policy", "not-the-token");
    assert!(status.contains(" 401 "), "{status}");
    let (status, body) = get(&addr, "/health", "");
    assert!(status.contains(" 200 ") && body.contains("ok"), "{status} {body}");
    drop(gate_process);
    node.shutdown().await;
}
