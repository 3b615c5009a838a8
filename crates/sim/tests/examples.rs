//! Runs every scenario in `examples/sim/` and checks its output, plus the contract's general
//! promises: failed steps leave the reported state exactly as before, and output is
//! deterministic.

use std::path::PathBuf;

use serde_json::Value;

fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/sim")
}

fn run(name: &str) -> Value {
    let text = std::fs::read_to_string(examples_dir().join(name)).expect("example exists");
    let output = paystreams_sim::run_scenario(&text).expect("example is a valid scenario");
    serde_json::to_value(&output).expect("serialises")
}

fn steps(output: &Value) -> &Vec<Value> {
    output["steps"].as_array().expect("steps array")
}

fn codes(output: &Value) -> Vec<Option<u64>> {
    steps(output).iter().map(|s| s["error"]["code"].as_u64()).collect()
}

fn last_state(output: &Value) -> &Value {
    &steps(output).last().expect("has steps")["state"]
}

/// A failed transaction step reports exactly the state of the step before it.
fn assert_failures_change_nothing(output: &Value) {
    let steps = steps(output);
    for pair in steps.windows(2) {
        let (previous, step) = (&pair[0], &pair[1]);
        if step["ok"] == Value::Bool(false) && previous["op"] != "observe" {
            assert_eq!(step["state"], previous["state"], "failed step {} changed state", step["index"]);
        }
        if step["ok"] == Value::Bool(false) {
            assert!(step["error"]["code"].is_u64() && step["error"]["name"].is_string());
        } else {
            assert!(step["error"].is_null());
        }
    }
}

#[test]
fn every_example_runs_deterministically_and_failures_change_nothing() {
    let mut names: Vec<String> = std::fs::read_dir(examples_dir())
        .expect("examples dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    assert!(names.len() >= 5, "expected at least five examples, found {names:?}");
    for name in names {
        let output = run(&name);
        assert_failures_change_nothing(&output);
        assert_eq!(run(&name), output, "{name} is not deterministic");
    }
}

#[test]
fn basic_reproduces_the_reference_fixture() {
    let output = run("basic.json");
    assert_eq!(codes(&output), vec![None; 5]);
    let observed = &steps(&output)[3]["state"]["streams"][0];
    assert_eq!(observed["accrued"], "50");
    assert_eq!(observed["unaccrued"], "150");
    assert_eq!(observed["state"], "active");
    let state = last_state(&output);
    assert_eq!(state["balances"]["bob"], "50");
    assert_eq!(state["balances"]["alice"], "500");
    assert_eq!(state["vaults"][0]["balance"], "450");
    assert_eq!(state["vaults"][0]["total_allocated"], "150");
    assert_eq!(state["vaults"][0]["unallocated"], "300");
    assert_eq!(state["vaults"][0]["token_id"], "native");
    assert_eq!(state["streams"][0]["allocation"], "150");
    assert_eq!(state["streams"][0]["accrued"], "0");
    assert_eq!(state["streams"][0]["provider"], "bob");
    assert_eq!(state["streams"][0]["owner"], "alice");
    assert!(state.get("token_balances").is_none());
}

#[test]
fn depletion_auto_pauses_refuses_resume_and_top_up_reactivates() {
    let output = run("depletion.json");
    assert_eq!(codes(&output), vec![None, None, None, None, None, Some(6018), None, None, None, None, None]);
    let depleted = &steps(&output)[4]["state"]["streams"][0];
    assert_eq!(depleted["state"], "paused");
    assert_eq!(depleted["accrued"], "100");
    assert_eq!(depleted["accrued_as_of"], 10);
    let topped_up = &steps(&output)[6]["state"]["streams"][0];
    assert_eq!(topped_up["state"], "active");
    assert_eq!(topped_up["allocation"], "200");
    assert_eq!(topped_up["accrued_as_of"], 60);
    let state = last_state(&output);
    assert_eq!(state["balances"]["bob"], "200");
    assert_eq!(state["balances"]["alice"], "800");
    assert_eq!(state["vaults"][0]["balance"], "0");
    assert_eq!(state["streams"][0]["state"], "closed");
}

#[test]
fn extensions_behave_as_documented() {
    let output = run("extensions.json");
    let c = codes(&output);
    assert_eq!(&c[..11], &[None; 11]);
    assert_eq!(&c[11..], &[Some(6037), Some(6039), None, Some(6041), None]);
    let s = steps(&output);
    // Auto-pause after 10 s at rate 2: 20 accrued, paused at t = 10.
    let auto_paused = &s[3]["state"]["streams"][0];
    assert_eq!((auto_paused["state"].as_str(), auto_paused["accrued"].as_str()), (Some("paused"), Some("20")));
    assert_eq!(auto_paused["accrued_as_of"], 10);
    // Activation fee 10 charged at creation and again at resume: 10 + 5 + 10.
    assert_eq!(s[7]["state"]["streams"][1]["accrued"], "25");
    // Provider close with auto-claim pays bob 10 s * 5 = 50 at once.
    assert_eq!(s[9]["state"]["balances"]["bob"], "50");
    assert_eq!(s[9]["state"]["streams"][2]["state"], "closed");
    // Receipts: 20 acknowledged of 30 accrued, then the remaining 10.
    assert_eq!(s[13]["state"]["balances"]["carol"], "20");
    assert_eq!(s[15]["state"]["balances"]["carol"], "30");
}

#[test]
fn errors_cover_the_common_failures() {
    let output = run("errors.json");
    let c = codes(&output);
    assert!(c[4].is_some(), "an overdrawn deposit fails in the native transfer");
    let mut expected: Vec<Option<u64>> = vec![
        Some(6034),
        None,
        Some(6033),
        Some(6001),
        c[4],
        None,
        Some(6006),
        Some(6004),
        Some(6007),
        Some(6008),
        Some(6027),
        Some(6011),
        Some(6035),
        None,
        Some(6023),
        Some(6024),
        Some(6038),
        Some(6009),
        Some(6017),
        None,
        Some(6016),
        Some(6034),
        Some(6020),
        Some(6011),
        Some(6022),
        None,
        Some(6019),
        Some(6019),
        Some(6017),
        Some(6016),
        None,
        Some(6023),
    ];
    expected.truncate(c.len());
    assert_eq!(c, expected);
    assert_eq!(last_state(&output)["balances"]["bob"], "2");
}

#[test]
fn token_vault_moves_tokens_not_native_balance() {
    let output = run("token.json");
    assert_eq!(codes(&output), vec![None; 10]);
    let state = last_state(&output);
    let tokens = &state["token_balances"]["USDX"];
    assert_eq!(tokens["bob"], "310");
    assert_eq!(state["vaults"][0]["token_id"], "USDX");
    let vault_balance: u128 = state["vaults"][0]["balance"].as_str().expect("string").parse().expect("amount");
    let alice: u128 = tokens["alice"].as_str().expect("string").parse().expect("amount");
    assert_eq!(alice + 310 + vault_balance, 1_000_000, "token supply conserved");
    assert_eq!(state["balances"]["alice"], "0");
    assert_eq!(state["balances"]["bob"], "0");
}

#[test]
fn bad_scenarios_name_step_and_field() {
    let error = paystreams_sim::run_scenario(
        r#"{"accounts": {"alice": 1}, "steps": [{"t": 0, "op": "observe"}, {"t": 1, "op": "deposit", "signer": "alice", "vault_id": 0, "amount": -5}]}"#,
    )
    .expect_err("negative amount");
    assert!(error.to_string().starts_with("step 1 (deposit): field \"amount\""), "{error}");
}
