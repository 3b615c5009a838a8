//! A PostgreSQL server for tests, and a fresh database per test.
//!
//! [`TestDatabase::create`] makes a database with a unique name and drops it when the value is
//! dropped. The server is, in this order:
//!
//! 1. the one `PAYSTREAMS_TEST_POSTGRES` names (`postgres://USER@HOST:PORT/DB`, a user allowed
//!    to create databases), or
//! 2. a throw-away cluster this test process starts once from Debian's server binaries
//!    ([`probe::postgres_bin_dir`]): `initdb` with trust authentication into a temporary
//!    directory, the server on a free loopback port with its socket in that directory. As root
//!    it runs as the `postgres` system user (PostgreSQL refuses root), which is created when
//!    missing. A watchdog process stops the server and removes the directory once this process
//!    has exited, however it exits.
//!
//! Without either, [`TestDatabase::create`] returns an error naming what to install; the tests
//! that need PostgreSQL are compiled as ignored on such a machine (the `has_postgres` cfg, see
//! [`probe`]).

use std::{
    fs,
    future::Future,
    os::unix::{fs::MetadataExt as _, process::CommandExt as _},
    path::{Path, PathBuf},
    process::{ChildStdin, Command, Stdio},
    sync::{
        OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use tokio_postgres::{NoTls, Row};

use crate::probe;

/// How long the throw-away server may take to accept connections after `pg_ctl start`.
const STARTUP_DEADLINE: Duration = Duration::from_secs(60);
/// Pause between connection attempts while waiting for the server.
const READY_POLL: Duration = Duration::from_millis(20);
/// Ports tried when another process takes the free port between the probe and the server's bind.
const PORT_ATTEMPTS: u32 = 5;
/// Connections the throw-away server accepts (parallel tests, each with its own pools).
const MAX_CONNECTIONS: u32 = 300;

/// A database of its own for one test, dropped (with any open connections) when this is dropped.
#[derive(Debug)]
pub struct TestDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl TestDatabase {
    /// Creates a fresh database on the test server, starting the throw-away cluster first if
    /// this process has not yet.
    ///
    /// # Errors
    /// No server is configured and no server binaries are installed, or the server could not
    /// be started or refused to create the database; the message says what to do.
    pub fn create() -> Result<Self, String> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let admin_url = server_url()?;
        let stamp = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let name = format!("paystreams_test_{}_{}_{stamp:x}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        batch_execute(&admin_url, &format!("CREATE DATABASE {name}"))
            .map_err(|e| format!("cannot create test database {name}: {e}"))?;
        let url = database_url(&admin_url, &name);
        Ok(Self { admin_url, name, url })
    }

    /// The database's URL (no password beyond what `PAYSTREAMS_TEST_POSTGRES` holds).
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs SQL statements (separated by `;`) on this database over a connection of its own.
    ///
    /// # Errors
    /// The connection or a statement failed.
    pub fn batch_execute(&self, sql: &str) -> Result<(), String> {
        batch_execute(&self.url, sql)
    }

    /// Runs one query without parameters on this database over a connection of its own.
    ///
    /// # Errors
    /// The connection or the query failed.
    pub fn query(&self, sql: &str) -> Result<Vec<Row>, String> {
        let (url, sql) = (self.url.clone(), sql.to_owned());
        on_own_thread(async move { connect(&url).await?.query(&sql, &[]).await.map_err(|e| describe(&e)) })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Err(e) = batch_execute(&self.admin_url, &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)) {
            eprintln!("warning: could not drop test database {}: {e}", self.name);
        }
    }
}

/// The URL of a database on the test server with rights to create databases: the one
/// `PAYSTREAMS_TEST_POSTGRES` names, otherwise this process's throw-away cluster (started on
/// the first call).
///
/// # Errors
/// As [`TestDatabase::create`].
pub fn server_url() -> Result<String, String> {
    if let Some(url) = probe::postgres_url() {
        return Ok(url);
    }
    static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
    CLUSTER.get_or_init(Cluster::start).as_ref().map(|cluster| cluster.url.clone()).map_err(Clone::clone)
}

/// `admin_url` with its database replaced by `name` (and any `?parameters` dropped).
fn database_url(admin_url: &str, name: &str) -> String {
    let base = admin_url.split('?').next().unwrap_or(admin_url);
    match base.rfind('/') {
        Some(i) if i > "postgres://".len() => format!("{}/{name}", base.get(..i).unwrap_or_default()),
        _ => format!("{base}/{name}"),
    }
}

fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

async fn connect(url: &str) -> Result<tokio_postgres::Client, String> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|e| format!("cannot connect to the test server at {url}: {}", describe(&e)))?;
    tokio::spawn(connection);
    Ok(client)
}

fn batch_execute(url: &str, sql: &str) -> Result<(), String> {
    let (url, sql) = (url.to_owned(), sql.to_owned());
    on_own_thread(async move { connect(&url).await?.batch_execute(&sql).await.map_err(|e| describe(&e)) })
}

/// Runs `work` to completion on a thread of its own, so the helpers work the same from plain
/// tests and from inside a test's async runtime.
fn on_own_thread<R: Send>(work: impl Future<Output = Result<R, String>> + Send) -> Result<R, String> {
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start a runtime for the test database: {e}"))?
                .block_on(work)
        })
        .join()
        .map_err(|_| "the test database thread panicked".to_owned())?
    })
}

/// This process's throw-away cluster. Never dropped: the watchdog stops it after the process.
struct Cluster {
    url: String,
    /// The watchdog reads this pipe; it sees end-of-file when this process is gone.
    _lifeline: ChildStdin,
}

impl Cluster {
    fn start() -> Result<Self, String> {
        let bin = probe::postgres_bin_dir().ok_or_else(|| {
            format!(
                "the PostgreSQL tests need a server: {} (no initdb/pg_ctl/postgres under /usr/lib/postgresql/*/bin)",
                probe::Tool::Postgres.install_hint()
            )
        })?;
        let as_root = fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false);
        if as_root {
            ensure_postgres_user()?;
        }
        let dir = std::env::temp_dir().join(format!(
            "paystreams-test-pg-{}-{:x}",
            std::process::id(),
            SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos())
        ));
        fs::create_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        // From here on the watchdog removes the directory whatever happens next.
        let lifeline = spawn_watchdog(&bin, &dir, as_root)?;
        if as_root {
            run(Command::new("chown").arg("postgres").arg(&dir), &dir, "chown")?;
        }
        let data = dir.join("data");
        run(
            as_postgres(as_root, &bin.join("initdb")).arg("-D").arg(&data).args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
            ]),
            &dir,
            "initdb",
        )?;
        let mut last = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port()?;
            let options = format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections={MAX_CONNECTIONS} -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
                dir.display()
            );
            let started = run(
                as_postgres(as_root, &bin.join("pg_ctl"))
                    .arg("-D")
                    .arg(&data)
                    .arg("-l")
                    .arg(dir.join("server.log"))
                    .args(["-w", "-t", &STARTUP_DEADLINE.as_secs().to_string(), "-o", &options, "start"]),
                &dir,
                "pg_ctl start",
            );
            match started {
                Ok(()) => {
                    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
                    wait_until_ready(&url)?;
                    return Ok(Self { url, _lifeline: lifeline });
                }
                Err(e) if e.contains("Address already in use") => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(format!("no free port for the test server after {PORT_ATTEMPTS} tries: {last}"))
    }
}

/// A `Command` for a server binary, run as the `postgres` user when this process is root.
fn as_postgres(as_root: bool, program: &Path) -> Command {
    if as_root {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn ensure_postgres_user() -> Result<(), String> {
    let known = Command::new("id").arg("postgres").stdout(Stdio::null()).stderr(Stdio::null()).status();
    if matches!(known, Ok(status) if status.success()) {
        return Ok(());
    }
    let output = Command::new("useradd")
        .args(["--system", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", "postgres"])
        .output()
        .map_err(|e| format!("cannot run useradd to create the postgres user: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "PostgreSQL refuses to run as root and creating the postgres user failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Starts the watchdog: it waits for end-of-file on its standard input (the pipe whose writing
/// end only this process holds, so the kernel closes it when this process exits, even when
/// killed), then stops the server and removes `dir`.
fn spawn_watchdog(bin: &Path, dir: &Path, as_root: bool) -> Result<ChildStdin, String> {
    const SCRIPT: &str = r#"cat >/dev/null
if [ "$3" = root ]; then
  runuser -u postgres -- "$1/pg_ctl" -D "$2/data" -m immediate -w stop >/dev/null 2>&1
else
  "$1/pg_ctl" -D "$2/data" -m immediate -w stop >/dev/null 2>&1
fi
rm -rf "$2""#;
    let mut child = Command::new("sh")
        .args(["-c", SCRIPT, "paystreams-test-pg-watchdog"])
        .arg(bin)
        .arg(dir)
        .arg(if as_root { "root" } else { "user" })
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group: a Ctrl-C to the test run does not stop the cleanup.
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start the test server's watchdog (sh): {e}"))?;
    let stdin = child.stdin.take().ok_or("the watchdog has no standard input")?;
    // The watchdog outlives this process by design; init reaps it.
    drop(child);
    Ok(stdin)
}

/// Runs a setup command with its output in a log file under `dir`; a failure returns the log.
fn run(command: &mut Command, dir: &Path, what: &str) -> Result<(), String> {
    let log_path: PathBuf = dir.join(format!("{}.log", what.replace(' ', "-")));
    let log = fs::File::create(&log_path).map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
    let err = log.try_clone().map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
    // Files, not pipes: the server `pg_ctl` starts keeps running after it returns. The working
    // directory is one the postgres user can enter (the test's own may be private to root).
    let status = command
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .status()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    if status.success() {
        return Ok(());
    }
    let mut text = fs::read_to_string(&log_path).unwrap_or_default();
    text.push_str(&fs::read_to_string(dir.join("server.log")).unwrap_or_default());
    Err(format!("{what} failed ({status}) for the test server in {}:\n{text}", dir.display()))
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| format!("cannot find a free loopback port: {e}"))
}

/// Connects until the server answers or [`STARTUP_DEADLINE`] passes (`pg_ctl -w` has already
/// waited for the server to report ready; this confirms the TCP listener takes connections).
fn wait_until_ready(url: &str) -> Result<(), String> {
    let deadline = Instant::now() + STARTUP_DEADLINE;
    loop {
        match batch_execute(url, "SELECT 1") {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() >= deadline => {
                return Err(format!("the test server at {url} did not answer within {STARTUP_DEADLINE:?}: {e}"));
            }
            // The poll interval only paces the retries; the deadline decides.
            Err(_) => std::thread::sleep(READY_POLL),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_replace_the_database() {
        assert_eq!(database_url("postgres://u@h:5432/postgres", "t"), "postgres://u@h:5432/t");
        assert_eq!(database_url("postgres://u@h:5432/postgres?sslmode=disable", "t"), "postgres://u@h:5432/t");
        assert_eq!(database_url("postgres://u@h:5432", "t"), "postgres://u@h:5432/t");
    }

    #[test]
    #[cfg_attr(not(has_postgres), ignore = "needs PostgreSQL: apt-get install postgresql")]
    fn each_test_database_is_fresh_and_dropped() {
        let first = TestDatabase::create().expect("a test database");
        let second = TestDatabase::create().expect("another test database");
        assert_ne!(first.name(), second.name());
        first.batch_execute("CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (7)").expect("write");
        let rows = first.query("SELECT v FROM t").expect("read");
        assert_eq!(rows.iter().map(|r| r.get::<_, i32>(0)).collect::<Vec<_>>(), vec![7]);
        assert!(second.query("SELECT v FROM t").expect_err("not in the other database").contains("does not exist"));
        let name = first.name().to_owned();
        drop(first);
        let admin = server_url().expect("server");
        let left = on_own_thread(async move {
            connect(&admin)
                .await?
                .query("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
                .await
                .map_err(|e| describe(&e))
        })
        .expect("list databases");
        assert!(left.is_empty(), "the dropped database is gone");
    }
}
