//! Rendering tests: every page and fragment of the dashboard against an in-process dev node,
//! actions through their confirmation step, explained failures, live events over SSE, the
//! security checks, and both session sources.

use std::{sync::Arc, time::Duration};

use crate::common::{csrf, get, post_form, request, world};
use http_body_util::BodyExt as _;
use paystreams_dashboard::{HttpSessions, SessionSource, StoreSessions, chart};
use paystreams_provider::{MemoryStore, ProviderReport, SessionReport};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_and_fragments_render() {
    let store = StoreSessions::new([0; 32], MemoryStore::new(), "in-process store");
    let w = world(false, Some(Arc::new(store))).await;
    let (o, p) = (w.owner_id(), w.provider_id());

    // Overview: head, identities with balances, vaults and streams with live-ticking inputs.
    let page = get(&w.url("/")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.content_type.starts_with("text/html"));
    for needle in [
        "<h1>Overview</h1>",
        "data-live=\"height\"",
        "data-chain-time=",
        "dev-0",
        "dev-1",
        "dev-3",
        &o.to_string(),
        "Balance",
        "Vaults of dev-0",
        "1,000,000",
        "500,000",
        "Streams of dev-0",
        &format!("data-refresh-key=\"stream:{o}:0:0\""),
        "data-stream-live",
        "data-rate=\"7\"",
        "data-allocation=\"500000\"",
        "data-state=\"active\"",
        "Create stream",
        "No vaults yet",
        "/static/app.js",
        "/static/app.css",
    ] {
        assert!(page.body.contains(needle), "overview lacks {needle:?}");
    }
    assert!(!page.body.contains("http://") || !page.body.contains("<script src=\"http"), "no external scripts");

    // Fragments used by live refresh.
    let fragments = [
        format!("/fragments/identity/{o}"),
        format!("/fragments/vaults/{o}"),
        format!("/fragments/streams/{o}"),
        format!("/fragments/stream/{o}/0/0"),
        format!("/fragments/earning/{o}/0/0"),
        format!("/fragments/summary/{o}/0/0"),
        format!("/fragments/chart/{o}/0/0"),
        format!("/fragments/history/{o}/0/0"),
        format!("/fragments/provider/{p}"),
        "/fragments/sessions".to_owned(),
        "/fragments/providers".to_owned(),
    ];
    for path in &fragments {
        let reply = get(&w.url(path)).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        assert!(reply.body.trim_start().starts_with('<'), "{path} is HTML");
        assert!(reply.body.contains("data-refresh-key="), "{path} names its refresh key");
        assert!(reply.body.contains(&format!("data-fragment=\"{path}\"")), "{path} names its own URL");
        assert!(!reply.body.contains("<html"), "{path} is a fragment, not a page");
    }

    // Stream page: numbers, chart (inline SVG), history read back from blocks.
    let page = get(&w.url(&format!("/streams/{o}/0/0"))).await;
    assert_eq!(page.status, 200, "{}", page.body);
    for needle in [
        "Stream 0 of vault 0",
        "<svg",
        "role=\"img\"",
        "polyline",
        "History",
        "created",
        "Pause",
        "Top up",
        "Close",
        "Claim",
    ] {
        assert!(page.body.contains(needle), "stream page lacks {needle:?}");
    }

    // Provider view: on-chain earnings of dev-1, claim all, sessions from the in-process store.
    let page = get(&w.url("/provider")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    for needle in [
        "Earnings of dev-1",
        "Claim all",
        "Claimable now",
        "in-process store",
        "pending",
        "bound",
        "terminated",
        "No sessions yet",
    ] {
        assert!(page.body.contains(needle), "provider page lacks {needle:?}");
    }
    assert!(page.body.contains(&format!("data-live-sum=\"provider:{p}\"")));

    // Static assets are served locally with their types.
    for (path, kind) in [
        ("/static/app.js", "text/javascript"),
        ("/static/app.css", "text/css"),
        ("/static/favicon.svg", "image/svg+xml"),
    ] {
        let reply = get(&w.url(path)).await;
        assert_eq!(reply.status, 200);
        assert!(reply.content_type.starts_with(kind), "{path}: {}", reply.content_type);
    }
    assert!(get(&w.url("/static/app.js")).await.body.contains("BigInt"), "live ticking uses BigInt");

    // Bad addresses get pages that say what is wrong.
    let reply = get(&w.url("/streams/not-an-id/0/0")).await;
    assert_eq!(reply.status, 400);
    assert!(reply.body.contains("not a vault owner account id"), "{}", reply.body);
    let reply = get(&w.url(&format!("/streams/{o}/zero/0"))).await;
    assert_eq!(reply.status, 400);
    assert!(reply.body.contains("not a vault id"), "{}", reply.body);
    let reply = get(&w.url(&format!("/streams/{o}/0/99"))).await;
    assert_eq!(reply.status, 404);
    assert!(reply.body.contains("there is no stream 99"), "{}", reply.body);
    let reply = get(&w.url("/nowhere")).await;
    assert_eq!(reply.status, 404);
    let reply = get(&w.url("/actions/explode")).await;
    assert_eq!(reply.status, 404);
    assert!(reply.body.contains("the actions are"), "{}", reply.body);

    // Other Host names are refused (DNS rebinding); security headers are set.
    let port = w.dashboard.local_addr().port();
    let reply = request("GET", &w.url("/"), &[("host", "evil.example:80")], None).await;
    assert_eq!(reply.status, 403);
    assert!(reply.body.contains("answers only to"), "{}", reply.body);
    let reply = request("GET", &w.url("/"), &[("host", &format!("localhost:{port}"))], None).await;
    assert_eq!(reply.status, 200);

    // The chart replays the chain exactly: its last point is the chain's accrued.
    let view = w.client.stream(o, 0, 0).await.expect("rpc").expect("stream");
    let curve = chart::replay(&view, &w.dashboard.state().hub.stream_events(o, 0, 0));
    assert!(curve.complete);
    assert_eq!(curve.points.last().map(|p| p.1), Some(view.accrued.0));
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_confirm_then_submit_and_explain_failures() {
    let w = world(false, None).await;
    let (o, p) = (w.owner_id(), w.provider_id());

    // The form, prefilled from the query, with labels and help.
    let form = get(&w.url(&format!("/actions/stream-create?owner={o}&vault_id=0"))).await;
    assert_eq!(form.status, 200, "{}", form.body);
    for needle in
        ["Create a stream", "<label for=\"f-provider\">", "<label for=\"f-rate\">", "aria-describedby", "Review"]
    {
        assert!(form.body.contains(needle), "form lacks {needle:?}");
    }
    assert!(form.body.contains("selected>dev-0"), "the owner is preselected");
    let token = csrf(&form.body);
    let url = w.url("/actions/stream-create");

    // Invalid fields: each gets a message saying what to enter; nothing is submitted.
    let reply = post_form(
        &url,
        &[
            ("csrf", &token),
            ("step", "review"),
            ("owner", "dev-0"),
            ("vault_id", "x"),
            ("provider", "nobody"),
            ("rate", "1.5"),
            ("allocation", "-3"),
        ],
    )
    .await;
    assert_eq!(reply.status, 422, "{}", reply.body);
    for needle in [
        "is not a vault id",
        "neither a keystore name nor a base58 account id",
        "is not a rate",
        "not a whole number",
        "Please correct 4 field(s)",
    ] {
        assert!(reply.body.contains(needle), "validation lacks {needle:?}: {}", reply.body);
    }

    // A rate or an allocation of 0 is refused at review, saying what to enter instead.
    let reply = post_form(
        &url,
        &[
            ("csrf", &token),
            ("step", "review"),
            ("owner", "dev-0"),
            ("vault_id", "0"),
            ("provider", "dev-2"),
            ("rate", "0"),
            ("allocation", "0"),
        ],
    )
    .await;
    assert_eq!(reply.status, 422, "{}", reply.body);
    for needle in ["A rate of 0 pays nothing", "at least 1 (e.g. 10)", "Allocation of 0 does nothing"] {
        assert!(reply.body.contains(needle), "validation lacks {needle:?}: {}", reply.body);
    }

    // A refusal explained for the web names what to change on the form, never a command-line flag.
    let reply = post_form(
        &url,
        &[
            ("csrf", &token),
            ("step", "confirm"),
            ("owner", "dev-0"),
            ("vault_id", "0"),
            ("provider", "dev-2"),
            ("rate", "5"),
            ("allocation", "999999999999"),
        ],
    )
    .await;
    assert_eq!(reply.status, 422, "{}", reply.body);
    let explanation = explanation_text(&reply.body);
    assert!(explanation.contains("lower the allocation"), "{explanation}");
    assert!(!explanation.contains("--") && !explanation.contains('`'), "{explanation}");

    // Without the anti-forgery token, or from another origin, nothing happens.
    let fields =
        [("owner", "dev-0"), ("vault_id", "0"), ("provider", "dev-2"), ("rate", "5"), ("allocation", "10_000")];
    let mut with_step: Vec<(&str, &str)> = vec![("step", "confirm"), ("csrf", "wrong")];
    with_step.extend(fields);
    let reply = post_form(&url, &with_step).await;
    assert_eq!(reply.status, 403);
    assert!(reply.body.contains("anti-forgery token"), "{}", reply.body);
    let reply = request(
        "POST",
        &url,
        &[("content-type", "application/x-www-form-urlencoded"), ("origin", "http://evil.example")],
        Some(format!("csrf={token}&step=confirm")),
    )
    .await;
    assert_eq!(reply.status, 403);
    assert_eq!(w.client.vault(o, 0).await.expect("rpc").expect("vault").next_stream_id, 1, "nothing was created");

    // Review: what will be signed, with hidden normalised values and a confirm button.
    let mut review: Vec<(&str, &str)> = vec![("step", "review"), ("csrf", &token)];
    review.extend(fields);
    let reply = post_form(&url, &review).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    for needle in [
        "Confirm: Create a stream",
        "to dev-2",
        "5 per second",
        "10,000",
        "runs for 33m 20s",
        "value=\"confirm\"",
        "value=\"10000\"",
    ] {
        assert!(reply.body.contains(needle), "review lacks {needle:?}: {}", reply.body);
    }

    // Confirm: the stream exists.
    let mut confirm: Vec<(&str, &str)> = vec![("step", "confirm"), ("csrf", &token)];
    confirm.extend(fields);
    let reply = post_form(&url, &confirm).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.body.contains("Stream 1 of vault 0 created"), "{}", reply.body);
    assert!(reply.body.contains(&format!("/streams/{o}/0/1")));
    let created = w.client.stream(o, 0, 1).await.expect("rpc").expect("stream 1");
    assert_eq!((created.rate, created.allocation.0), (5, 10_000));

    // Pause, then pausing again fails with the program's error explained in words.
    let stream_fields = [("owner", "dev-0"), ("vault_id", "0"), ("stream_id", "1")];
    let mut pause: Vec<(&str, &str)> = vec![("step", "confirm"), ("csrf", &token)];
    pause.extend(stream_fields);
    let reply = post_form(&w.url("/actions/pause"), &pause).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.body.contains("paused"), "{}", reply.body);
    let reply = post_form(&w.url("/actions/pause"), &pause).await;
    assert_eq!(reply.status, 422, "{}", reply.body);
    assert!(reply.body.contains("did not happen"), "{}", reply.body);
    assert!(reply.body.contains("class=\"explanation\""), "{}", reply.body);
    assert!(reply.body.contains("(error 60"), "the code is shown beside the words: {}", reply.body);

    // Resume, top up, deposit, withdraw, and a withdrawal too large explained.
    for (slug, extra) in [("resume", None), ("top-up", Some(("amount", "1000")))] {
        let mut fields: Vec<(&str, &str)> = vec![("step", "confirm"), ("csrf", &token)];
        fields.extend(stream_fields);
        fields.extend(extra);
        let reply = post_form(&w.url(&format!("/actions/{slug}")), &fields).await;
        assert_eq!(reply.status, 200, "{slug}: {}", reply.body);
    }
    let reply = post_form(
        &w.url("/actions/deposit"),
        &[("step", "confirm"), ("csrf", &token), ("owner", "dev-0"), ("vault_id", "0"), ("amount", "5000")],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.body.contains("Deposited 5,000 into vault 0"));
    let reply = post_form(
        &w.url("/actions/withdraw"),
        &[("step", "confirm"), ("csrf", &token), ("owner", "dev-0"), ("vault_id", "0"), ("amount", "999999999")],
    )
    .await;
    assert_eq!(reply.status, 422, "{}", reply.body);
    assert!(reply.body.contains("unallocated"), "the explanation names the cause: {}", reply.body);

    // Claim all as the provider, then close the stream.
    w.client.advance_time(5).await.expect("time");
    let reply =
        post_form(&w.url("/actions/claim-all"), &[("step", "review"), ("csrf", &token), ("provider", "dev-1")]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.body.contains("stream 0 of vault 0 of dev-0"), "{}", reply.body);
    let before = w.client.balance(p).await.expect("balance");
    let reply =
        post_form(&w.url("/actions/claim-all"), &[("step", "confirm"), ("csrf", &token), ("provider", "dev-1")]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.body.contains("Claimed"), "{}", reply.body);
    assert!(w.client.balance(p).await.expect("balance") > before, "the provider was paid");
    let mut close: Vec<(&str, &str)> = vec![("step", "confirm"), ("csrf", &token)];
    close.extend(stream_fields);
    let reply = post_form(&w.url("/actions/close"), &close).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        w.client.stream(o, 0, 1).await.expect("rpc").expect("stream").state,
        paystreams_program::state::StreamState::Closed
    );

    // The stream page now shows the whole life on the chart.
    let page = get(&w.url(&format!("/streams/{o}/0/1"))).await;
    for mark in ["mark pause", "mark resume", "mark topup", "mark close"] {
        assert!(page.body.contains(mark), "chart lacks {mark:?}");
    }
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_events_are_pushed_to_browsers() {
    let w = world(false, None).await;
    let o = w.owner_id();
    let request =
        hyper::Request::get(w.url("/events")).body(http_body_util::Empty::<hyper::body::Bytes>::new()).expect("req");
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let response = client.request(request).await.expect("sse");
    assert_eq!(response.status(), 200);
    assert!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .starts_with("text/event-stream")
    );
    let mut body = response.into_body();
    w.client.pause(&w.owner, 0, 0).await.expect("pause");
    let mut seen = String::new();
    let key = format!("stream:{o}:0:0");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !(seen.contains("event: touch") && seen.contains(&key) && seen.contains("paused")) {
        let frame = tokio::time::timeout_at(deadline, body.frame())
            .await
            .expect("an event in time")
            .expect("open")
            .expect("frame");
        if let Some(data) = frame.data_ref() {
            seen.push_str(&String::from_utf8_lossy(data));
        }
    }
    assert!(seen.contains("event: status"), "{seen}");
    assert!(seen.contains("event: head"), "{seen}");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_come_from_http_or_a_store() {
    // A stand-in admin endpoint serving a canned report.
    let report = ProviderReport {
        provider_id: "11111111111111111111111111111111".to_owned(),
        pending: 1,
        bound: 1,
        ended: 1,
        claimable: vec![("11111111111111111111111111111111".to_owned(), 0, 3)],
        sessions: ["pending", "bound", "ended"]
            .iter()
            .enumerate()
            .map(|(i, state)| SessionReport {
                id: format!("{i:02}").repeat(32),
                state: (*state).to_owned(),
                end_reason: (*state == "ended").then(|| "the stream was closed".to_owned()),
                ended_at: (*state == "ended").then_some(1_800_000_000),
                vault_owner: "11111111111111111111111111111111".to_owned(),
                vault_id: 0,
                stream_id: (*state == "bound").then_some(3),
                token_id: "00".repeat(32),
                service_id: "store-v3".to_owned(),
                rate: "12".to_owned(),
                allocation: "36000".to_owned(),
                accepted_at: 1_800_000_000,
                create_stream_deadline: 1_800_000_060,
                suspended_until: 0,
            })
            .collect(),
    };
    let json = serde_json::to_string(&report).expect("json");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let admin = format!("http://{}", listener.local_addr().expect("addr"));
    let app = axum::Router::new().route("/sessions", axum::routing::get(move || async move { json }));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let source = HttpSessions::new(&admin).expect("url");
    assert_eq!(source.describe(), format!("{admin}/sessions"));
    assert_eq!(source.report().await.expect("report"), report);

    let w = world(false, Some(Arc::new(source))).await;
    let page = get(&w.url("/provider")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    for needle in [
        "store-v3",
        "terminated",
        "the stream was closed",
        "36,000",
        "stream 3 of vault 0",
        "session-bound",
        "session-pending",
    ] {
        assert!(page.body.contains(needle), "sessions lack {needle:?}");
    }
    w.stop().await;
    server.abort();

    // Bad and unreachable admin addresses are explained.
    let err = HttpSessions::new("ftp://x").expect_err("refused");
    assert!(err.to_string().contains("only plain http://"), "{err}");
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let dead = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let err = HttpSessions::new(&dead).expect("url").report().await.expect_err("unreachable");
    assert!(err.to_string().contains("Is the Store provider running"), "{err}");

    // The in-process store of the provider engine.
    let store = StoreSessions::new([7; 32], MemoryStore::new(), "memory");
    let report = store.report().await.expect("report");
    assert_eq!((report.pending, report.bound, report.ended, report.sessions.len()), (0, 0, 0, 0));
}

/// The text of the first failure explanation on a page.
fn explanation_text(body: &str) -> String {
    let start = body.find("class=\"explanation\"").unwrap_or_else(|| panic!("no explanation: {body}"));
    let rest = &body[start..];
    let open = rest.find('>').map_or(0, |i| i + 1);
    rest[open..].split('<').next().unwrap_or_default().to_owned()
}
