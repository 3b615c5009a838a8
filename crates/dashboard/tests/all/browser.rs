//! The dashboard in a real browser: headless Chromium driven over WebDriver (chromedriver +
//! fantoccini) against an in-process dev node with timed blocks.
//!
//! Loads the overview, sees accrued tick within two seconds, creates a stream and pauses it
//! through the UI (form, review, confirm), sees the state change, sees a pause made elsewhere
//! arrive without a reload (server-sent events), checks that every resource came from the
//! dashboard itself, and saves screenshots (desktop and phone-sized) under
//! `$CARGO_TARGET_TMPDIR/dashboard-browser/`.
//!
//! Needs Chromium and ChromeDriver (`PAYSTREAMS_CHROMIUM`/`PAYSTREAMS_CHROMEDRIVER`, or
//! `chromium`/`chromedriver` on `PATH`): without them the test is compiled ignored and `cargo
//! test` lists it as such; `PAYSTREAMS_REQUIRE_BROWSER=1` makes their absence a build error (CI
//! sets it).

#![cfg(unix)]

use std::{
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use std::os::unix::process::CommandExt as _;

use fantoccini::{Client as Browser, ClientBuilder, Locator};
use serde_json::json;

use crate::common;

/// What ChromeDriver prints once it listens; the port it chose follows.
const DRIVER_READY: &str = "ChromeDriver was started successfully on port ";
/// How long ChromeDriver may take to start listening.
const DRIVER_START_DEADLINE: Duration = Duration::from_secs(30);
/// The page's chain clock.
const CHAIN_TIME: &str = "[data-live=\"chain-time\"]";

/// Kills chromedriver and the browser it started however the test ends: chromedriver runs in a
/// process group of its own, and the whole group is killed.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).stderr(Stdio::null()).status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts chromedriver on a port it picks itself (`--port=0`, so no other process can take the
/// port between choosing and binding it) and returns its URL once it says it listens.
fn start_driver(chromedriver: &Path) -> (Driver, String) {
    let mut child = Command::new(chromedriver)
        .arg("--port=0")
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let stdout = child.stdout.take().expect("chromedriver's stdout");
    let driver = Driver(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Read to the end, so chromedriver never blocks on a full pipe.
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(port) = line.strip_prefix(DRIVER_READY) {
                let _ = tx.send(port.trim_end_matches('.').trim().to_owned());
            }
        }
    });
    let port = rx
        .recv_timeout(DRIVER_START_DEADLINE)
        .unwrap_or_else(|e| panic!("chromedriver did not say {DRIVER_READY:?} within {DRIVER_START_DEADLINE:?}: {e}"));
    let port: u16 = port.parse().unwrap_or_else(|e| panic!("chromedriver's port {port:?}: {e}"));
    (driver, format!("http://127.0.0.1:{port}"))
}

async fn open_browser(driver_url: &str, chromium: &Path, profile: &Path) -> Browser {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".to_owned(),
        json!({
            "binary": chromium.display().to_string(),
            "args": [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--disable-crash-reporter",
                "--disable-breakpad",
                "--window-size=1280,1000",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    ClientBuilder::native().capabilities(caps).connect(driver_url).await.expect("a browser session")
}

/// Finds `css`, waiting up to five seconds (pages load after clicks); panics with the page.
async fn find(browser: &Browser, css: &str) -> fantoccini::elements::Element {
    let start = Instant::now();
    loop {
        match browser.find(Locator::Css(css)).await {
            Ok(el) => return el,
            Err(e) if start.elapsed() > Duration::from_secs(5) => {
                let url = browser.current_url().await.map(|u| u.to_string()).unwrap_or_default();
                let page = browser.source().await.unwrap_or_default();
                panic!("{css} not found on {url}: {e}\n{page}");
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

async fn text(browser: &Browser, css: &str) -> String {
    find(browser, css).await.text().await.expect("text")
}

/// Polls `css`'s text until `ok` holds or `within` passes; returns the last text.
async fn wait_text(browser: &Browser, css: &str, within: Duration, ok: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let current = match browser.find(Locator::Css(css)).await {
            Ok(el) => el.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if ok(&current) || start.elapsed() > within {
            return current;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn click(browser: &Browser, css: &str) {
    find(browser, css).await.click().await.expect("click");
}

async fn fill(browser: &Browser, css: &str, value: &str) {
    let field = find(browser, css).await;
    field.clear().await.expect("clear");
    field.send_keys(value).await.expect("type");
}

async fn screenshot(browser: &Browser, dir: &Path, name: &str) -> PathBuf {
    let png = browser.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let path = dir.join(name);
    std::fs::write(&path, png).expect("save screenshot");
    eprintln!("screenshot saved: {}", path.display());
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(has_chromium), ignore = "needs Chromium and ChromeDriver: apt-get install chromium chromium-driver")]
async fn overview_ticks_and_streams_are_created_and_paused_in_the_browser() {
    let (chromium, chromedriver) = paystreams_testkit::probe::chromium().expect(
        "Chromium and ChromeDriver were found when the test was built but are gone now: \
         apt-get install chromium chromium-driver, or set PAYSTREAMS_CHROMIUM and PAYSTREAMS_CHROMEDRIVER",
    );
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-browser");
    std::fs::create_dir_all(&out).expect("output dir");
    let profile = tempfile::tempdir().expect("profile dir");

    let w = common::world(true, None).await;
    let o = w.owner_id();
    let (_driver, driver_url) = start_driver(&chromedriver);
    let browser = open_browser(&driver_url, &chromium, profile.path()).await;

    // The overview: stream 0 accrues, and the browser shows it ticking within two seconds.
    browser.goto(&w.url("/")).await.expect("open overview");
    let row0 = format!("tr[data-refresh-key=\"stream:{o}:0:0\"]");
    let accrued0 = format!("{row0} [data-live=\"accrued\"]");
    let first = text(&browser, &accrued0).await;
    let changed = wait_text(&browser, &accrued0, Duration::from_secs(2), |t| t != first).await;
    assert_ne!(changed, first, "accrued did not change within two seconds");
    let as_number = |t: &str| t.replace(',', "").parse::<u128>().expect("an amount");
    assert!(as_number(&changed) > as_number(&first), "accrued grows: {first} → {changed}");
    assert_eq!(text(&browser, "[data-live=\"status\"]").await, "live");

    // Create stream 1 through the UI: form, review, confirm.
    click(&browser, &format!("a[href=\"/actions/stream-create?owner={o}&vault_id=0\"]")).await;
    fill(&browser, "#f-provider", "dev-2").await;
    fill(&browser, "#f-rate", "3").await;
    fill(&browser, "#f-allocation", "90000").await;
    click(&browser, "form.action-form button[type=\"submit\"]").await;
    let review = text(&browser, "section.review").await;
    assert!(review.contains("3 per second") && review.contains("90,000"), "{review}");
    click(&browser, "button[value=\"confirm\"]").await;
    let done = wait_text(&browser, "h1", Duration::from_secs(10), |t| t == "Done").await;
    assert_eq!(done, "Done", "{}", browser.source().await.unwrap_or_default());
    click(&browser, &format!("a[href=\"/streams/{o}/0/1\"]")).await;
    assert_eq!(text(&browser, "h1").await, "Stream 1 of vault 0");
    assert_eq!(text(&browser, "section.summary [data-live=\"state\"]").await, "active");
    assert!(browser.find(Locator::Css("svg.chart polyline")).await.is_ok(), "the chart is drawn");

    // Pause it through the UI and see the state change.
    click(&browser, "nav.stream-actions a[href^=\"/actions/pause\"]").await;
    click(&browser, "form.action-form button[type=\"submit\"]").await;
    click(&browser, "button[value=\"confirm\"]").await;
    assert_eq!(wait_text(&browser, "h1", Duration::from_secs(10), |t| t == "Done").await, "Done");
    click(&browser, &format!("a[href=\"/streams/{o}/0/1\"]")).await;
    assert_eq!(text(&browser, "section.summary [data-live=\"state\"]").await, "paused");
    assert!(text(&browser, "section.history").await.contains("paused"), "the history lists the pause");
    screenshot(&browser, &out, "stream.png").await;

    // On the overview, a pause made elsewhere shows without a reload (server-sent events).
    browser.goto(&w.url("/")).await.expect("open overview");
    assert_eq!(
        text(&browser, &format!("tr[data-refresh-key=\"stream:{o}:0:1\"] [data-live=\"state\"]")).await,
        "paused"
    );
    browser.execute("window.__same_page = true;", vec![]).await.expect("mark the page");
    w.client.pause(&w.owner, 0, 0).await.expect("pause stream 0 from outside");
    let state =
        wait_text(&browser, &format!("{row0} [data-live=\"state\"]"), Duration::from_secs(3), |t| t == "paused").await;
    if state != "paused" {
        let page = browser
            .execute(
                "return [document.querySelector('[data-live=\"status\"]').textContent, document.querySelector('[data-live=\"announce\"]').textContent];",
                vec![],
            )
            .await
            .unwrap_or_default();
        let open = w.dashboard.state().sse_clients.load(std::sync::atomic::Ordering::SeqCst);
        panic!(
            "the pause did not arrive live: state {state:?}; live status and last announcement {page}; {open} open event streams"
        );
    }
    let same_page = browser.execute("return window.__same_page === true;", vec![]).await.expect("script");
    assert_eq!(same_page, json!(true), "the page was not reloaded");
    // The page's clock moves on two chain seconds (each step re-computes every stream at the
    // new time) and the paused stream's accrued stays where it was.
    let frozen = text(&browser, &accrued0).await;
    let mut clock = text(&browser, CHAIN_TIME).await;
    for _ in 0..2 {
        let next = wait_text(&browser, CHAIN_TIME, Duration::from_secs(10), |t| t != clock).await;
        assert_ne!(next, clock, "the page's chain clock stopped");
        clock = next;
    }
    assert_eq!(text(&browser, &accrued0).await, frozen, "a paused stream does not tick");

    // Nothing was loaded from anywhere but the dashboard.
    let resources = browser
        .execute("return performance.getEntriesByType('resource').map(function (r) { return r.name; });", vec![])
        .await
        .expect("script");
    for url in resources.as_array().expect("a list") {
        let url = url.as_str().unwrap_or_default();
        assert!(url.starts_with(&w.dashboard.url()), "external request: {url}");
    }

    let path = screenshot(&browser, &out, "overview.png").await;
    browser.goto(&w.url("/provider")).await.expect("open provider view");
    assert!(text(&browser, "main").await.contains("Earnings of dev-1"));
    screenshot(&browser, &out, "provider.png").await;
    assert!(std::fs::metadata(&path).expect("file").len() > 1000);
    browser.set_window_size(390, 844).await.expect("phone size");
    browser.goto(&w.url("/")).await.expect("open overview");
    let width = browser.execute("return document.documentElement.scrollWidth;", vec![]).await.expect("script");
    assert!(width.as_u64().unwrap_or(9999) <= 400, "no sideways scrolling on a phone: {width}");
    screenshot(&browser, &out, "overview-phone.png").await;

    browser.close().await.expect("close the browser");
    w.stop().await;
}
