//! Which outside programs the tests can use on this machine.
//!
//! This file is also compiled into the build scripts of the crates whose tests need such a
//! program (`#[path = "../testkit/src/probe.rs"] mod probe;` then `probe::emit_cfgs()`), so it
//! uses `std` only. The build script sets one `cfg` per program found:
//!
//! | cfg | set when | install with |
//! |---|---|---|
//! | `has_postgres` | `PAYSTREAMS_TEST_POSTGRES` names a server, or `initdb` and `pg_ctl` exist under `/usr/lib/postgresql/*/bin` | `apt-get install postgresql` |
//! | `has_chromium` | Chromium and ChromeDriver are found (`PAYSTREAMS_CHROMIUM`/`PAYSTREAMS_CHROMEDRIVER` or `PATH`) | `apt-get install chromium chromium-driver` |
//! | `has_valgrind` | `valgrind` is on `PATH` | `apt-get install valgrind` |
//! | `has_node` | `node` is on `PATH` and the repo root's `node_modules/@waku/sdk` is installed | `apt-get install nodejs npm && npm ci` (at the repo root) |
//!
//! A test that needs one is marked `#[cfg_attr(not(has_postgres), ignore = "...")]`. Setting
//! `PAYSTREAMS_REQUIRE_POSTGRES=1` (or `_BROWSER`, `_VALGRIND`, `_NODE`) turns a missing program into a
//! build error, so CI cannot pass without running those tests. The build script runs again
//! when these variables or `PATH` change, and when Debian's package database changes (an
//! `apt-get install` of the program), and for `has_node` when `npm ci` changes `node_modules`
//! (before the first `npm ci`, on every build).

use std::{
    env,
    path::{Path, PathBuf},
};

/// Where Debian's package manager records what is installed; its change reruns the probes.
const DPKG_STATUS: &str = "/var/lib/dpkg/status";
/// Where Debian installs PostgreSQL's server binaries, one directory per major version.
const POSTGRES_LIB_DIR: &str = "/usr/lib/postgresql";

/// One outside program the tests may need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tool {
    /// PostgreSQL: a server URL, or server binaries to start a throw-away cluster.
    Postgres,
    /// Chromium and ChromeDriver for browser tests.
    Chromium,
    /// valgrind for instruction counts.
    Valgrind,
    /// Node.js with the repo's npm project installed (js-waku tests).
    Node,
}

impl Tool {
    /// Every tool, in a fixed order.
    pub const ALL: [Self; 4] = [Self::Postgres, Self::Chromium, Self::Valgrind, Self::Node];

    /// The `cfg` name set when the tool is present.
    #[must_use]
    pub const fn cfg(self) -> &'static str {
        match self {
            Self::Postgres => "has_postgres",
            Self::Chromium => "has_chromium",
            Self::Valgrind => "has_valgrind",
            Self::Node => "has_node",
        }
    }

    /// The variable that makes a missing tool a build error.
    #[must_use]
    pub const fn require_var(self) -> &'static str {
        match self {
            Self::Postgres => "PAYSTREAMS_REQUIRE_POSTGRES",
            Self::Chromium => "PAYSTREAMS_REQUIRE_BROWSER",
            Self::Valgrind => "PAYSTREAMS_REQUIRE_VALGRIND",
            Self::Node => "PAYSTREAMS_REQUIRE_NODE",
        }
    }

    /// What to install to get it.
    #[must_use]
    pub const fn install_hint(self) -> &'static str {
        match self {
            Self::Postgres => {
                "apt-get install postgresql (or set PAYSTREAMS_TEST_POSTGRES=postgres://USER@HOST:PORT/DB)"
            }
            Self::Chromium => "apt-get install chromium chromium-driver",
            Self::Valgrind => "apt-get install valgrind",
            Self::Node => "apt-get install nodejs npm && npm ci (at the repository root)",
        }
    }

    /// Whether this machine has it.
    #[must_use]
    pub fn present(self) -> bool {
        match self {
            Self::Postgres => postgres_url().is_some() || postgres_bin_dir().is_some(),
            Self::Chromium => chromium().is_some(),
            Self::Valgrind => on_path("valgrind").is_some(),
            Self::Node => node().is_some(),
        }
    }
}

/// The repository root: the nearest ancestor of the package this file is compiled into
/// holding both `Cargo.lock` and `package.json`.
#[must_use]
pub fn repo_root() -> Option<PathBuf> {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .find(|dir| dir.join("Cargo.lock").is_file() && dir.join("package.json").is_file())
        .map(Path::to_path_buf)
}

/// `node` on `PATH` and the repo root (whose `node_modules` has `@waku/sdk` installed), when
/// both are there.
#[must_use]
pub fn node() -> Option<(PathBuf, PathBuf)> {
    let node = on_path("node")?;
    let root = repo_root()?;
    root.join("node_modules/@waku/sdk/package.json").is_file().then_some((node, root))
}

/// The server named by `PAYSTREAMS_TEST_POSTGRES`, if set and not empty.
#[must_use]
pub fn postgres_url() -> Option<String> {
    env::var("PAYSTREAMS_TEST_POSTGRES").ok().filter(|url| !url.trim().is_empty())
}

/// The newest `/usr/lib/postgresql/VERSION/bin` holding `initdb`, `pg_ctl` and `postgres`.
#[must_use]
pub fn postgres_bin_dir() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir(POSTGRES_LIB_DIR)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            ["initdb", "pg_ctl", "postgres"].iter().all(|name| bin.join(name).is_file()).then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

/// Chromium and ChromeDriver: `PAYSTREAMS_CHROMIUM` and `PAYSTREAMS_CHROMEDRIVER` when set,
/// otherwise `chromium` and `chromedriver` on `PATH`.
#[must_use]
pub fn chromium() -> Option<(PathBuf, PathBuf)> {
    let browser = env::var_os("PAYSTREAMS_CHROMIUM").map(PathBuf::from).or_else(|| on_path("chromium"))?;
    let driver = env::var_os("PAYSTREAMS_CHROMEDRIVER").map(PathBuf::from).or_else(|| on_path("chromedriver"))?;
    (browser.is_file() && driver.is_file()).then_some((browser, driver))
}

/// The first `name` on `PATH` that is a file.
#[must_use]
pub fn on_path(name: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| candidate.is_file())
}

/// For a build script: declares the `cfg`s, sets those whose tool is present, and fails
/// the build when a `PAYSTREAMS_REQUIRE_*` variable asks for a missing tool.
pub fn emit_cfgs() {
    for var in ["PATH", "PAYSTREAMS_TEST_POSTGRES", "PAYSTREAMS_CHROMIUM", "PAYSTREAMS_CHROMEDRIVER"] {
        println!("cargo::rerun-if-env-changed={var}");
    }
    if Path::new(DPKG_STATUS).is_file() {
        println!("cargo::rerun-if-changed={DPKG_STATUS}");
    }
    // This file is compiled into build scripts of other packages: watch it explicitly.
    let probe = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|dir| dir.join("crates/testkit/src/probe.rs"))
        .find(|p| p.is_file());
    if let Some(probe) = probe {
        println!("cargo::rerun-if-changed={}", probe.display());
    }
    if let Some(root) = repo_root() {
        // npm writes this file on every install. Before the first one it does not exist, and
        // cargo then reruns the probe on every build, so a later `npm ci` is seen.
        println!("cargo::rerun-if-changed={}", root.join("node_modules/.package-lock.json").display());
    }
    for tool in Tool::ALL {
        println!("cargo::rustc-check-cfg=cfg({})", tool.cfg());
        println!("cargo::rerun-if-env-changed={}", tool.require_var());
        if tool.present() {
            println!("cargo::rustc-cfg={}", tool.cfg());
        } else if env::var(tool.require_var()).as_deref() == Ok("1") {
            println!("cargo::error={}=1 but this machine lacks it: {}", tool.require_var(), tool.install_hint());
        }
    }
}
