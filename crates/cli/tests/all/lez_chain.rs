//! `--chain lez` end to end: the `paystream` binary, the provider process (`store serve`) and the
//! user engine (`store query`) against our node serving LEZ's methods only (`RpcMethods::Lez`),
//! producing timed blocks as a LEZ sequencer does. Nothing here may use a method LEZ lacks: the
//! node answers any other with "method not found". Every flow ends with an exact balance check.

use std::{path::Path, process::Output, time::Duration};

use paystreams_client::{Client, ClientError, Keystore};
use paystreams_lez_core::{AccountId, crypto::SecretKey, lez_release::LezRelease};
use paystreams_node::{NodeConfig, NodeHandle, RpcMethods};
use paystreams_program::state::StreamState;
use paystreams_rpc::remote::{Dialect, RpcError};
use serde_json::Value;

use crate::common::{paystream, serve, wait_for};

/// A LEZ-like block interval: short, so tests are quick, and timed (no block per transaction).
const BLOCK_TIME: Duration = Duration::from_millis(100);

/// Our node in LEZ-methods-only mode (in memory, port 0, timed blocks), its dev keys saved in
/// `keystore`, and a LEZ-dialect client to it.
async fn lez_node(keystore: &Path) -> (NodeHandle, Client) {
    node_of(keystore, RpcMethods::Lez, LezRelease::DEFAULT).await
}

/// As [`lez_node`], serving `methods`, with `release`'s builtin ids.
async fn node_of(keystore: &Path, methods: RpcMethods, release: LezRelease) -> (NodeHandle, Client) {
    let config = NodeConfig {
        rpc_addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        block_time: BLOCK_TIME,
        automine: false,
        dev: true,
        rpc_methods: methods,
        lez_release: release,
        ..NodeConfig::new(None)
    };
    let node = paystreams_node::start(config).await.expect("node starts");
    Keystore::open(keystore).expect("keystore").save_dev_keys(node.dev_keys()).expect("dev keys");
    let client = Client::connect_with(&node.rpc_url(), Dialect::Lez).expect("client");
    (node, client)
}

/// Runs `paystream ARGS --json --chain lez` against `rpc` with `keystore` and `home`.
async fn run(rpc: &str, keystore: &Path, home: &Path, args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    let (rpc, keystore, home) = (rpc.to_owned(), keystore.to_owned(), home.to_owned());
    tokio::task::spawn_blocking(move || {
        paystream()
            .args(&args)
            .arg("--json")
            .env("PAYSTREAMS_RPC", rpc)
            .env("PAYSTREAMS_KEYSTORE", keystore)
            .env("PAYSTREAMS_HOME", home)
            .env("PAYSTREAMS_CHAIN", "lez")
            .output()
            .expect("runs")
    })
    .await
    .expect("join")
}

/// As [`run`]; the command must succeed; its JSON documents (one, or JSON lines).
async fn json(rpc: &str, keystore: &Path, home: &Path, args: &[&str]) -> Vec<Value> {
    let out = run(rpc, keystore, home, args).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{args:?}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::Deserializer::from_str(&stdout).into_iter::<Value>().map(|v| v.expect("JSON")).collect()
}

fn amount(value: &Value) -> u128 {
    value.as_str().unwrap_or_else(|| panic!("an amount string, got {value}")).parse().expect("decimal amount")
}

/// The one event of `kind` in a transaction's JSON output.
fn event<'a>(output: &'a Value, kind: &str) -> &'a Value {
    output["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| &e["event"])
        .find(|e| e["type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} event in {output}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_lifecycle_twice_with_lez_methods_only() {
    let work = tempfile::tempdir().expect("tempdir");
    let keystore = work.path().join("keystore");
    let (node, client) = lez_node(&keystore).await;
    let rpc = node.rpc_url();
    let home = work.path();
    let [owner, provider, friend]: [AccountId; 3] = [0, 1, 2].map(|i| node.dev_keys()[i].account_id());
    let balances = async |ids: &[AccountId]| {
        let mut out = Vec::new();
        for id in ids {
            out.push(client.balance(*id).await.expect("balance"));
        }
        out
    };
    let before = balances(&[owner, provider, friend]).await;

    // The node serves LEZ's methods only: the paystreams dialect is refused by name.
    let refused = tokio::task::spawn_blocking({
        let (rpc, keystore) = (rpc.clone(), keystore.clone());
        move || {
            paystream()
                .args(["vault", "show", "--owner", "dev-0", "--vault-id", "0", "--chain", "paystreams"])
                .env("PAYSTREAMS_RPC", rpc)
                .env("PAYSTREAMS_KEYSTORE", keystore)
                .output()
                .expect("runs")
        }
    })
    .await
    .expect("join");
    assert!(!refused.status.success(), "paystreams_getVault must not be served in LEZ-only mode");

    let transfer =
        json(&rpc, &keystore, home, &["account", "transfer", "--from", "dev-0", "--to", "dev-2", "--amount", "100"])
            .await;
    assert_eq!(transfer[0]["status"], "included");

    let (mut deposited, mut withdrawn, mut claimed) = (0_u128, 0_u128, 0_u128);
    for vault_id in ["0", "1"] {
        let vault = |more: &[&'static str]| {
            let mut args = vec!["--owner", "dev-0", "--vault-id", vault_id];
            args.extend_from_slice(more);
            args
        };
        json(&rpc, &keystore, home, &[&["vault", "init"][..], &vault(&[])].concat()).await;
        let out =
            json(&rpc, &keystore, home, &[&["vault", "deposit"][..], &vault(&["--amount", "10000"])].concat()).await;
        assert_eq!(amount(&event(&out[0], "deposited")["amount"]), 10_000);
        deposited += 10_000;
        let out =
            json(&rpc, &keystore, home, &[&["vault", "withdraw"][..], &vault(&["--amount", "1000"])].concat()).await;
        assert_eq!(amount(&event(&out[0], "withdrawn")["amount"]), 1_000);
        withdrawn += 1_000;

        let stream = |more: &[&'static str]| {
            let mut args = vault(&["--stream-id", "0"]);
            args.extend_from_slice(more);
            args
        };
        let out = json(
            &rpc,
            &keystore,
            home,
            &[&["stream", "create"][..], &vault(&["--provider", "dev-1", "--rate", "100", "--allocation", "5000"])]
                .concat(),
        )
        .await;
        assert_eq!(out[0]["stream_id"], 0);
        assert_eq!(amount(&event(&out[0], "stream_created")["allocation"]), 5_000);
        json(&rpc, &keystore, home, &[&["stream", "pause"][..], &stream(&[])].concat()).await;
        json(&rpc, &keystore, home, &[&["stream", "resume"][..], &stream(&[])].concat()).await;
        let out =
            json(&rpc, &keystore, home, &[&["stream", "top-up"][..], &stream(&["--amount", "500"])].concat()).await;
        assert_eq!(amount(&event(&out[0], "stream_topped_up")["amount"]), 500);

        // Accrual follows the blocks' time: wait until something is claimable.
        let vault_n: u64 = vault_id.parse().expect("id");
        let accrual = async || {
            wait_for("accrual", async || {
                let view = client.require_stream(owner, vault_n, 0).await.expect("stream");
                (view.accrued.0 > 0).then_some(())
            })
            .await;
        };
        accrual().await;
        let out = json(
            &rpc,
            &keystore,
            home,
            &["stream", "claim", "--provider", "dev-1", "--owner", "dev-0", "--vault-id", vault_id, "--stream-id", "0"],
        )
        .await;
        let first = amount(&out[0]["amount"]);
        assert!(first > 0, "a claim after accrual pays something: {}", out[0]);
        assert_eq!(first, amount(&event(&out[0], "claimed")["amount"]));
        accrual().await;
        let out = json(&rpc, &keystore, home, &[&["stream", "close"][..], &stream(&[])].concat()).await;
        let closed = event(&out[0], "stream_closed");
        let accrued_at_close = amount(&closed["accrued"]);
        assert_eq!(amount(&closed["released"]) + accrued_at_close + first, 5_500, "allocation + top-up, to the unit");
        let out = json(
            &rpc,
            &keystore,
            home,
            &["stream", "claim", "--provider", "dev-1", "--owner", "dev-0", "--vault-id", vault_id, "--stream-id", "0"],
        )
        .await;
        assert_eq!(amount(&out[0]["amount"]), accrued_at_close, "the second claim takes what accrued by the close");
        claimed += first + accrued_at_close;

        let view = client.require_stream(owner, vault_n, 0).await.expect("stream");
        assert_eq!((view.state, view.accrued.0, view.allocation.0), (StreamState::Closed, 0, 0));
        let vault_view = client.vault(owner, vault_n).await.expect("read").expect("vault");
        assert_eq!(vault_view.total_allocated.0, 0);
    }

    // Listing scans the recent blocks (LEZ has no listing method): both vaults, both streams.
    let vaults = json(&rpc, &keystore, home, &["vault", "list", "--owner", "dev-0"]).await;
    let vault_ids: Vec<u64> =
        vaults[0].as_array().expect("vaults").iter().filter_map(|v| v["vault_id"].as_u64()).collect();
    assert_eq!(vault_ids, vec![0, 1]);
    let streams = json(&rpc, &keystore, home, &["stream", "list", "--provider", "dev-1"]).await;
    let listed: Vec<(u64, u64)> = streams[0]
        .as_array()
        .expect("streams")
        .iter()
        .filter_map(|s| Some((s["vault_id"].as_u64()?, s["stream_id"].as_u64()?)))
        .collect();
    assert_eq!(listed, vec![(0, 0), (1, 0)]);

    // Exact balances: what left the owner is what the friend, the provider and the vaults hold.
    let after = balances(&[owner, provider, friend]).await;
    let mut in_vaults = 0;
    for vault_id in 0..2 {
        in_vaults += client.vault(owner, vault_id).await.expect("read").expect("vault").balance.0;
    }
    assert_eq!(after[2] - before[2], 100, "the friend got the transfer");
    assert_eq!(after[1] - before[1], claimed, "the provider earned exactly what the claims reported");
    assert_eq!(in_vaults, deposited - withdrawn - claimed, "the vaults hold what was not withdrawn or paid");
    assert_eq!(before[0] - after[0], 100 + deposited - withdrawn, "the owner paid the transfer and the net deposits");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_transaction_is_reported_dropped_and_explained() {
    let work = tempfile::tempdir().expect("tempdir");
    let (node, client) = lez_node(&work.path().join("keystore")).await;
    let owner = node.dev_keys()[0].clone();
    client.init_vault(&owner, 0, None).await.expect("vault");

    // Pre-flight refuses locally, before sending.
    let refused = client.withdraw(&owner, 0, 5, None).await.expect_err("nothing to withdraw");
    let failure = refused.tx_failure().expect("a transaction failure");
    assert!(failure.is_preflight(), "{failure}");

    // Without pre-flight the sequencer drops it: getTransaction never answers, the signer's
    // nonce does not move, and after the configured blocks the client says so and explains it
    // by checking the call again on the chain as it is.
    let before = client.account(owner.account_id()).await.expect("account");
    let mut unchecked = client.clone();
    unchecked.set_preflight(false);
    let dropped = unchecked.withdraw(&owner, 0, 5, None).await.expect_err("dropped");
    let failure = dropped.tx_failure().unwrap_or_else(|| panic!("an explained failure, got {dropped:?}"));
    assert!(failure.hash.is_some() && failure.block_id.is_none(), "sent, never included: {failure:?}");
    assert_eq!(failure.name, "InsufficientFunds");
    assert!(failure.message.starts_with("dropped by the sequencer"), "{}", failure.message);
    assert!(failure.explanation.contains("withdraw at most 0"), "{}", failure.explanation);

    // A call the client cannot explain (no operation named) is reported dropped as such.
    let vault = client.vault_ref(owner.account_id(), 0, [0; 32]);
    let call = paystreams_program::client::withdraw(&vault, 5, None);
    match unchecked.submit(&call, &[&owner]).await {
        Err(ClientError::Node(RpcError::Dropped { reason, .. })) => {
            assert!(reason.contains("blocks were produced without it"), "{reason}");
        }
        other => panic!("expected a dropped transaction, got {other:?}"),
    }
    let after = client.account(owner.account_id()).await.expect("account");
    assert_eq!((after.balance, after.nonce), (before.balance, before.nonce), "dropped transactions changed nothing");
    node.shutdown().await;
}

/// A paid Store query session: `store serve --chain lez` follows the chain by polling blocks,
/// `store query --chain lez` opens the session and creates the stream, `session close` closes
/// it, the provider learns of the close from the blocks and claims; the vault lost exactly what
/// the provider earned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paid_store_query_with_lez_methods_only() {
    let work = tempfile::tempdir().expect("tempdir");
    let keystore = work.path().join("keystore");
    let (node, client) = lez_node(&keystore).await;
    let rpc = node.rpc_url();
    let user: SecretKey = node.dev_keys()[0].clone();
    let provider_account = node.dev_keys()[1].account_id();
    client.init_vault(&user, 0, None).await.expect("vault");
    client.deposit(&user, 0, 50_000).await.expect("deposit");

    let archive = work.path().join("archive.sqlite").display().to_string();
    let messages = work.path().join("messages.jsonl");
    crate::store_cli::write_messages(&messages, 12);
    let imported = crate::common::import(&rpc, &keystore, &messages, &archive);
    assert!(imported.status.success(), "{}", String::from_utf8_lossy(&imported.stderr));

    let provider_home = work.path().join("provider");
    let provider = serve(
        &rpc,
        &keystore,
        &provider_home,
        &["--archive", &archive, "--min-allocation", "500", "--chain", "lez", "--lez-poll-ms", "50"],
    );
    let provider_before = client.balance(provider_account).await.expect("balance");
    let vault_before = client.vault(user.account_id(), 0).await.expect("read").expect("vault").balance.0;

    let user_home = work.path().join("user");
    let lines = json(
        &rpc,
        &keystore,
        &user_home,
        &[
            "store",
            "query",
            "--provider",
            &provider.address,
            "--from",
            "dev-0",
            "--content-topic",
            crate::store_cli::TOPIC,
            "--page-size",
            "5",
        ],
    )
    .await;
    let texts: Vec<&str> = lines.iter().filter_map(|l| l["text"].as_str()).collect();
    assert_eq!(texts, (0..12).map(|i| format!("line {i:02}")).collect::<Vec<_>>());
    let summary = &lines.last().expect("summary")["summary"];
    assert_eq!(summary["closed_now"], false);
    let stream_id = summary["stream_id"].as_u64().expect("stream id");

    // Chain time follows the blocks: let the stream accrue, then close the session.
    wait_for("accrual", async || {
        (client.require_stream(user.account_id(), 0, stream_id).await.expect("stream").accrued.0 > 0).then_some(())
    })
    .await;
    let closed = json(&rpc, &keystore, &user_home, &["session", "close", "--all", "--from", "dev-0"]).await;
    assert_eq!(closed[0]["closed"][0]["stream_id"], stream_id);

    // The provider learns of the close from the blocks it polls and claims what accrued.
    wait_for("the provider's claim after the close", async || {
        let view = client.require_stream(user.account_id(), 0, stream_id).await.expect("stream");
        (view.state == StreamState::Closed && view.accrued.0 == 0).then_some(())
    })
    .await;
    let earned = client.balance(provider_account).await.expect("balance") - provider_before;
    assert!(earned > 0, "the provider was paid");
    let vault_after = client.vault(user.account_id(), 0).await.expect("read").expect("vault");
    assert_eq!(vault_before - vault_after.balance.0, earned, "the vault paid exactly what the provider earned");
    assert_eq!(vault_after.total_allocated.0, 0, "nothing is left allocated");
    drop(provider);
    node.shutdown().await;
}

/// The provider's event source over a LEZ-only node polls blocks; followed live (as the provider
/// process follows it), the events it delivers are the program's own, to the unit: a stream's
/// creation, a top-up, its close by the owner and a claim, each equal to the event of the
/// submitter's derived receipt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_polled_events_equal_the_programs_events() {
    use paystreams_program::ExtensionSettings;
    use paystreams_rpc::{
        events::{EventSource as _, EventSubscription as _},
        remote::{WsEvents, lez::LezSettings},
        stream_events,
    };

    let work = tempfile::tempdir().expect("tempdir");
    let (node, client) = lez_node(&work.path().join("keystore")).await;
    let (owner, provider) = (node.dev_keys()[0].clone(), node.dev_keys()[1].clone());
    client.init_vault(&owner, 0, None).await.expect("vault");
    client.deposit(&owner, 0, 10_000).await.expect("deposit");
    let mut polling = client.clone();
    polling.set_lez_settings(LezSettings { poll_interval: Duration::from_millis(20), ..LezSettings::default() });
    let mut subscription =
        WsEvents::for_provider(polling.node(), provider.account_id()).subscribe().await.expect("subscribes");
    let (events, mut received) = tokio::sync::mpsc::unbounded_channel();
    let follower = tokio::spawn(async move {
        while let Some(notification) = subscription.next_event().await {
            if events.send(notification.event).is_err() {
                break;
            }
        }
    });

    let mut expected = Vec::new();
    let (stream_id, created) = client
        .create_stream(&owner, 0, provider.account_id(), 10, 1_000, ExtensionSettings::default())
        .await
        .expect("created");
    expected.extend(stream_events(&created).cloned());
    let accrued = async || {
        wait_for("accrual", async || {
            (client.require_stream(owner.account_id(), 0, stream_id).await.expect("stream").accrued.0 > 0).then_some(())
        })
        .await;
    };
    accrued().await;
    expected.extend(stream_events(&client.top_up(&owner, 0, stream_id, 100).await.expect("top-up")).cloned());
    accrued().await;
    expected.extend(stream_events(&client.close_by_owner(&owner, 0, stream_id).await.expect("closed")).cloned());
    let claim = client.claim(&provider, owner.account_id(), 0, stream_id, None).await.expect("claimed");
    expected.extend(stream_events(&claim).cloned());
    assert_eq!(expected.len(), 4, "one event per call: {expected:?}");

    let mut seen = Vec::new();
    while seen.len() < expected.len() {
        let next = tokio::time::timeout(Duration::from_secs(10), received.recv())
            .await
            .unwrap_or_else(|_| panic!("no event within 10 s; had {seen:?}"))
            .expect("the subscription stays open");
        seen.push(next);
    }
    assert_eq!(seen, expected, "the follower's events are the program's, amounts included");
    follower.abort();
    node.shutdown().await;
}

/// The user agent with `--chain lez`: an app reads every page through it from `store serve
/// --chain lez`, the agent creates the stream on chain, closes the session, and the provider
/// claims. Exact: the agent's ledger counts what the provider earned, and the vault holds the
/// deposit minus that, to the unit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_pays_through_the_agent_with_lez_methods_only() {
    use crate::agent_api::{app, expected_texts, read_all, start_agent_with};

    let work = tempfile::tempdir().expect("tempdir");
    let keystore = work.path().join("keystore");
    let (node, client) = lez_node(&keystore).await;
    let rpc = node.rpc_url();
    let owner = node.dev_keys()[0].clone();
    let provider_account = node.dev_keys()[1].account_id();
    client.init_vault(&owner, 0, None).await.expect("vault");
    client.deposit(&owner, 0, 50_000).await.expect("deposit");
    let archive = work.path().join("archive.sqlite").display().to_string();
    let messages = work.path().join("messages.jsonl");
    crate::store_cli::write_messages(&messages, 12);
    let imported = crate::common::import(&rpc, &keystore, &messages, &archive);
    assert!(imported.status.success(), "{}", String::from_utf8_lossy(&imported.stderr));
    let provider = serve(
        &rpc,
        &keystore,
        &work.path().join("provider"),
        &["--archive", &archive, "--min-allocation", "500", "--chain", "lez", "--lez-poll-ms", "50"],
    );
    let provider_before = client.balance(provider_account).await.expect("balance");
    let agent = start_agent_with(&rpc, &keystore, work.path(), &work.path().join("agent.token"), &["--chain", "lez"]);

    let app_client = app(&agent, &provider.address).await;
    assert_eq!(read_all(&agent, &app_client, &provider.address, "proposal").await, expected_texts());
    let listed = agent.ok("GET", "/v1/sessions", None).await;
    let session = listed["sessions"][0]["id"].as_str().expect("a session").to_owned();
    let streaming = listed["sessions"][0]["stream_id"].as_u64().expect("the session's stream");
    // Chain time follows the blocks: let the stream accrue before closing it.
    wait_for("accrual", async || {
        (client.require_stream(owner.account_id(), 0, streaming).await.expect("stream").accrued.0 > 0).then_some(())
    })
    .await;
    let closed = agent.ok("POST", &format!("/v1/sessions/{session}/close"), None).await;
    let stream_id = closed["closed_stream"].as_u64().expect("closed a stream");
    assert_eq!(stream_id, streaming);
    wait_for("the provider's claim after the close", async || {
        let view = client.require_stream(owner.account_id(), 0, stream_id).await.expect("stream");
        (view.state == StreamState::Closed && view.accrued.0 == 0).then_some(())
    })
    .await;

    let spending = agent.ok("GET", "/v1/spending", None).await;
    let total = &spending["total"];
    assert_eq!(total["streams"], 1);
    assert_eq!(amount(&total["allocated"]), amount(&total["spent"]) + amount(&total["refunded"]));
    let earned = client.balance(provider_account).await.expect("balance") - provider_before;
    assert!(earned > 0, "the provider was paid");
    assert_eq!(amount(&total["spent"]), earned, "the ledger counts what the provider earned");
    let vault = client.vault(owner.account_id(), 0).await.expect("read").expect("vault");
    assert_eq!(vault.balance.0 + earned, 50_000, "deposit = vault + provider's earnings, to the unit");
    assert_eq!(vault.total_allocated.0, 0, "no stream holds anything");
    drop(agent);
    drop(provider);
    node.shutdown().await;
}

/// Deposits call the chain's own authenticated-transfer program, learnt from `getProgramIds`:
/// against a node of LEZ v0.2.0 (another id than the default release's) the CLI's deposit goes
/// through, with either dialect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deposits_use_the_chains_authenticated_transfer_id() {
    let v0_2_0 = LezRelease::V0_2_0.builtin_ids().authenticated_transfer;
    assert_ne!(v0_2_0, LezRelease::DEFAULT.builtin_ids().authenticated_transfer);
    for (methods, chain) in [(RpcMethods::All, "paystreams"), (RpcMethods::Lez, "lez")] {
        let work = tempfile::tempdir().expect("tempdir");
        let keystore = work.path().join("keystore");
        let (node, client) = node_of(&keystore, methods, LezRelease::V0_2_0).await;
        let rpc = node.rpc_url();
        assert_eq!(client.authenticated_transfer_id().await.expect("learnt"), v0_2_0);
        let vault = ["--owner", "dev-0", "--vault-id", "0", "--chain", chain];
        json(&rpc, &keystore, work.path(), &[&["vault", "init"][..], &vault].concat()).await;
        let out =
            json(&rpc, &keystore, work.path(), &[&["vault", "deposit"][..], &vault, &["--amount", "1000"]].concat())
                .await;
        assert_eq!(amount(&event(&out[0], "deposited")["amount"]), 1_000, "{chain}");
        let view = client.vault(node.dev_keys()[0].account_id(), 0).await.expect("read").expect("vault");
        assert_eq!(view.balance.0, 1_000, "{chain}");
        node.shutdown().await;
    }
}
