//! Instruction counts (callgrind's Ir) of every payment-streams instruction, against
//! `crates/costs/baseline.json`.
//!
//! Each scenario of `instruction-costs` runs in its own `valgrind --tool=callgrind` process that
//! collects only inside `paystreams_costs::measure_<scenario>`. The test fails when a count grows
//! more than 10% over the baseline, or when a scenario is missing from the baseline or the
//! baseline names one that no longer exists.
//!
//! - `PAYSTREAMS_UPDATE_COST_BASELINE=1` rewrites `baseline.json` with the measured counts.
//! - That every scenario runs natively and that the baseline names exactly the scenarios is a
//!   test of its own, run everywhere. The counts need valgrind on `PATH`: without it their test
//!   is compiled ignored and `cargo test` lists it as such; `PAYSTREAMS_REQUIRE_VALGRIND=1` makes
//!   a missing valgrind a build error (CI sets it).
//!
//! Valgrind runs with an empty environment, from a scratch directory, on a copy of the binary
//! named `./instruction-costs`, so nothing about the caller's shell reaches the measured process.

use std::{
    collections::BTreeMap,
    env, fs,
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::Mutex,
};

const BINARY: &str = env!("CARGO_BIN_EXE_instruction-costs");
/// Growth over the baseline that fails the test, in percent.
const TOLERANCE_PERCENT: u128 = 10;

type Counts = BTreeMap<String, u64>;

fn baseline_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("baseline.json")
}

fn flag(name: &str) -> bool {
    env::var(name).is_ok_and(|value| value == "1")
}

fn stdout_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn describe(output: &Output) -> String {
    format!("{}\nstdout:\n{}\nstderr:\n{}", output.status, stdout_of(output), String::from_utf8_lossy(&output.stderr))
}

/// The scenario names, in the binary's order.
fn scenario_names() -> Vec<String> {
    let output = Command::new(BINARY).arg("--list").output().expect("instruction-costs runs");
    assert!(output.status.success(), "instruction-costs --list failed: {}", describe(&output));
    let names: Vec<String> = stdout_of(&output).lines().map(str::to_owned).collect();
    assert!(!names.is_empty(), "instruction-costs lists no scenario");
    names
}

fn read_baseline() -> Counts {
    let text = fs::read_to_string(baseline_path()).expect("crates/costs/baseline.json is readable");
    serde_json::from_str(&text).expect("baseline.json maps scenario names to counts")
}

/// The total Ir of a callgrind output file (`summary:`, or `totals:` in older formats).
fn parse_total(text: &str) -> Option<u64> {
    if !text.lines().any(|line| line.trim() == "events: Ir") {
        return None;
    }
    let total = |prefix: &str| text.lines().find_map(|line| line.strip_prefix(prefix)).map(str::trim);
    total("summary:").or_else(|| total("totals:"))?.split_whitespace().next()?.parse().ok()
}

/// Runs one scenario under callgrind, collecting only inside its measured function.
fn measure(valgrind: &Path, workdir: &Path, name: &str, environment: &[(&str, &str)]) -> u64 {
    let out_file = workdir.join(format!("callgrind.{name}.{}.out", environment.len()));
    let output = Command::new(valgrind)
        .env_clear()
        .envs(environment.iter().copied())
        .current_dir(workdir)
        .arg("--tool=callgrind")
        .arg("--collect-atstart=no")
        .arg(format!("--toggle-collect=paystreams_costs::measure_{name}"))
        .arg("--compress-strings=no")
        .arg(format!("--callgrind-out-file={}", out_file.display()))
        .arg("./instruction-costs")
        .arg(name)
        .output()
        .expect("valgrind runs");
    assert!(output.status.success(), "{name} under callgrind failed: {}", describe(&output));
    let text = fs::read_to_string(&out_file).expect("callgrind wrote its output file");
    assert!(
        text.contains(&format!("paystreams_costs::measure_{name}")),
        "{name}: callgrind never entered paystreams_costs::measure_{name}"
    );
    let total = parse_total(&text).unwrap_or_else(|| panic!("{name}: no Ir total in {}", out_file.display()));
    assert!(total > 0, "{name}: nothing was measured");
    total
}

/// Measures every scenario, two at a time.
fn measure_all(valgrind: &Path, workdir: &Path, names: &[String]) -> Counts {
    let queue = Mutex::new(names.iter());
    let counts = Mutex::new(Counts::new());
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(2));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let Some(name) = queue.lock().expect("queue").next() else { break };
                    let count = measure(valgrind, workdir, name, &[]);
                    counts.lock().expect("counts").insert(name.clone(), count);
                }
            });
        }
    });
    counts.into_inner().expect("counts")
}

/// `measured` against `baseline`: the table, and every failure.
fn compare(baseline: &Counts, measured: &Counts) -> (String, Vec<String>) {
    let mut table = format!("{:<42} {:>12} {:>12} {:>9}\n", "instruction", "baseline", "measured", "change");
    let mut failures = Vec::new();
    for (name, &count) in measured {
        let Some(&base) = baseline.get(name) else {
            table.push_str(&format!("{name:<42} {:>12} {count:>12} {:>9}\n", "-", "new"));
            failures.push(format!("{name} is missing from baseline.json"));
            continue;
        };
        let change = if base == 0 {
            "n/a".to_owned()
        } else {
            let delta = i128::from(count) - i128::from(base);
            format!("{:+.2}%", delta as f64 * 100.0 / base as f64)
        };
        table.push_str(&format!("{name:<42} {base:>12} {count:>12} {change:>9}\n"));
        if u128::from(count) * 100 > u128::from(base) * (100 + TOLERANCE_PERCENT) {
            failures.push(format!(
                "{name}: {count} instructions, more than {TOLERANCE_PERCENT}% over the baseline's {base}"
            ));
        }
    }
    for name in baseline.keys().filter(|name| !measured.contains_key(*name)) {
        table.push_str(&format!("{name:<42} {:>12} {:>12} {:>9}\n", baseline[name], "-", "gone"));
        failures.push(format!("{name} is in baseline.json but is no longer measured"));
    }
    (table, failures)
}

#[test]
fn every_scenario_runs_and_the_baseline_names_exactly_the_scenarios() {
    let names = scenario_names();
    let native = Command::new(BINARY).output().expect("instruction-costs runs");
    assert!(native.status.success(), "a scenario failed: {}", describe(&native));
    if flag("PAYSTREAMS_UPDATE_COST_BASELINE") {
        // The counting test is rewriting baseline.json from the scenarios right now.
        assert!(
            paystreams_testkit::probe::on_path("valgrind").is_some(),
            "PAYSTREAMS_UPDATE_COST_BASELINE=1 needs valgrind: apt-get install valgrind"
        );
        return;
    }
    let baseline = read_baseline();
    let listed: Vec<&String> = baseline.keys().collect();
    let mut expected: Vec<&String> = names.iter().collect();
    expected.sort();
    assert_eq!(listed, expected, "baseline.json must name exactly the scenarios");
}

#[test]
#[cfg_attr(not(has_valgrind), ignore = "needs valgrind: apt-get install valgrind")]
fn instruction_counts_stay_within_the_baseline() {
    let names = scenario_names();
    // Resolved here because the measured process gets an empty environment.
    let valgrind = paystreams_testkit::probe::on_path("valgrind")
        .expect("valgrind was on PATH when the test was built but is gone now: apt-get install valgrind");

    let workdir = tempfile::tempdir().expect("scratch directory");
    fs::copy(BINARY, workdir.path().join("instruction-costs")).expect("binary copied");
    let measured = measure_all(&valgrind, workdir.path(), &names);

    // The environment must not reach the measured region: a padded one gives the same count.
    let probe = "claim";
    let padded =
        measure(&valgrind, workdir.path(), probe, &[("PAYSTREAMS_COSTS_PADDING", "0123456789abcdefghijklmnopq")]);
    assert_eq!(Some(&padded), measured.get(probe), "{probe}: the count depends on the environment");

    if flag("PAYSTREAMS_UPDATE_COST_BASELINE") {
        let json = serde_json::to_string_pretty(&measured).expect("counts serialise");
        fs::write(baseline_path(), format!("{json}\n")).expect("baseline.json written");
        eprintln!("baseline.json rewritten with {} counts", measured.len());
        return;
    }
    let (table, failures) = compare(&read_baseline(), &measured);
    println!("{table}");
    assert!(failures.is_empty(), "instruction counts regressed:\n{}\n\n{table}", failures.join("\n"));
}

#[test]
fn parses_a_callgrind_total() {
    let text = "# callgrind format\nversion: 1\nevents: Ir\nfn=(1) main\n3 7\nsummary: 52003\n\n\ntotals: 52003\n";
    assert_eq!(parse_total(text), Some(52003));
    assert_eq!(parse_total("events: Ir\ntotals: 17\n"), Some(17));
    assert_eq!(parse_total("events: Dr\nsummary: 5\n"), None);
    assert_eq!(parse_total("events: Ir\n"), None);
}

#[test]
fn growth_beyond_the_tolerance_fails() {
    let counts = |pairs: &[(&str, u64)]| pairs.iter().map(|(n, c)| ((*n).to_owned(), *c)).collect::<Counts>();
    let baseline = counts(&[("claim", 1000), ("deposit", 1000)]);
    assert!(compare(&baseline, &counts(&[("claim", 1100), ("deposit", 500)])).1.is_empty());
    let (_, failures) = compare(&baseline, &counts(&[("claim", 1101), ("deposit", 1000)]));
    assert_eq!(failures.len(), 1, "{failures:?}");
    let (_, failures) = compare(&baseline, &counts(&[("claim", 1000), ("withdraw", 10)]));
    assert_eq!(failures.len(), 2, "a new and a vanished scenario: {failures:?}");
}
