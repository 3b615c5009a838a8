//! `paystream demo` runs the whole lifecycle on an embedded chain and exits 0 with balances that
//! add up.
//!
//! A binary of its own, so the demo runs alone, as a user runs the README's first command,
//! rather than beside the other CLI tests.

use std::process::Command;

fn paystream() -> Command {
    Command::new(env!("CARGO_BIN_EXE_paystream"))
}

#[test]
fn demo_runs_end_to_end_and_leaves_its_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("demo");
    let output =
        paystream().args(["demo", "--data-dir"]).arg(&data).env("PAYSTREAMS_HOME", dir.path()).output().expect("runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "demo failed: {stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("user spent exactly what the provider earned"), "{stdout}");
    assert!(data.join("chain").exists(), "chain data left for inspection");

    // A second run on the same data dir uses a new vault and still adds up.
    let again =
        paystream().args(["demo", "--data-dir"]).arg(&data).env("PAYSTREAMS_HOME", dir.path()).output().expect("runs");
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(again.status.success(), "second demo failed: {stdout}\n{}", String::from_utf8_lossy(&again.stderr));
    assert!(stdout.contains("vault 1"), "{stdout}");
}
