//! `paystream node --lez-release`: the release's builtin ids are the ones the node runs and
//! prints; an unknown release is refused listing the supported ones.

use std::time::Duration;

use paystreams_lez_core::lez_release::LezRelease;

use crate::common::{paystream, spawn_and_read};

#[test]
fn the_node_runs_the_chosen_release_and_refuses_unknown_ones() {
    let home = tempfile::tempdir().expect("tempdir");
    for release in [LezRelease::V0_2_0, LezRelease::V0_2_4] {
        let mut command = paystream();
        command
            .args(["node", "--ephemeral", "--automine", "--rpc-addr", "127.0.0.1:0", "--dev-accounts", "1"])
            .args(["--lez-release", release.name(), "--keystore"])
            .arg(home.path().join("keystore"))
            .env("PAYSTREAMS_HOME", home.path());
        let (mut child, lines) = spawn_and_read(&mut command, "  LEZ release: ", Duration::from_secs(30));
        let _ = child.kill();
        let _ = child.wait();
        let ids = release.builtin_ids();
        assert_eq!(
            lines,
            [format!("{release} (authenticated transfer {}, clock {})", ids.authenticated_transfer, ids.clock)]
        );
    }

    let output = paystream().args(["node", "--ephemeral", "--lez-release", "v0.3.0"]).output().expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("unknown LEZ release \"v0.3.0\"; supported: v0.2.0, v0.2.1, v0.2.2, v0.2.3, v0.2.4"),
        "{stderr}"
    );

    let help = paystream().args(["node", "--help"]).output().expect("runs");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("--lez-release <RELEASE>") && help.contains("[default: v0.2.4]"), "{help}");
}
