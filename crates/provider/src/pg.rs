//! The one PostgreSQL access path, shared by the session store ([`crate::store::PgKv`]) and the
//! Store service's message archive: a [deadpool](deadpool_postgres) pool of
//! [tokio-postgres](tokio_postgres) connections (no TLS), reached from synchronous code.
//!
//! Storage backends are synchronous; async services call them through `spawn_blocking` at the
//! service edge. A [`PgPool`] is the async client inside such a backend: its caller, on a
//! blocking thread (or any thread outside a runtime), waits with [`PgPool::block_on`] on the
//! tokio runtime captured when the pool was opened. That is the multi-threaded runtime the pool
//! was opened in, whose workers then drive the connections; opened outside one, or inside a
//! single-threaded one (whose handle cannot drive I/O from another thread), the pool runs a
//! one-worker runtime of its own. No call creates a runtime or a thread. Calling a pool on a
//! runtime worker thread breaks the rule and panics (tokio: "Cannot start a runtime from within
//! a runtime").

use std::{fmt, future::Future, time::Duration};

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod};
use tokio::runtime::{Handle, Runtime, RuntimeFlavor};
use tokio_postgres::NoTls;

/// Longest wait for a free connection when all are busy; then the call fails (bounded, so a
/// stuck database cannot pile up blocked callers without end).
pub const PG_WAIT_MAX: Duration = Duration::from_secs(30);
/// Longest wait for a new connection to be established.
pub const PG_CONNECT_MAX: Duration = Duration::from_secs(10);

/// A bounded pool of PostgreSQL connections for synchronous callers.
pub struct PgPool {
    pool: Pool,
    handle: Handle,
    /// The runtime of its own when opened outside a multi-threaded one; shut down on drop.
    owned: Option<Runtime>,
    /// The URL without its password, for messages.
    url: String,
}

impl fmt::Debug for PgPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgPool")
            .field("url", &self.url)
            .field("max_connections", &self.pool.status().max_size)
            .field("own_runtime", &self.owned.is_some())
            .finish_non_exhaustive()
    }
}

impl PgPool {
    /// A pool of at most `max_connections` connections to `url`; a call finding all of them
    /// busy waits for one, at most [`PG_WAIT_MAX`]. Connects lazily: the first [`PgPool::get`] reports an unreachable
    /// server.
    ///
    /// # Errors
    /// `url` is not a PostgreSQL URL, or the runtime of its own cannot start.
    pub fn open(url: &str, max_connections: usize) -> Result<Self, String> {
        let redacted = redact_url(url);
        let config: tokio_postgres::Config = url.parse().map_err(|e| connect_error(&redacted, &e))?;
        let (owned, handle) = match Handle::try_current() {
            Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => (None, handle),
            _ => {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name("paystreams-pg")
                    .enable_all()
                    .build()
                    .map_err(|e| format!("cannot start the PostgreSQL client's runtime: {e}"))?;
                let handle = runtime.handle().clone();
                (Some(runtime), handle)
            }
        };
        let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(max_connections.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(PG_WAIT_MAX))
            .create_timeout(Some(PG_CONNECT_MAX))
            .build()
            .map_err(|e| format!("cannot build the PostgreSQL connection pool: {e}"))?;
        Ok(Self { pool, handle, owned, url: redacted })
    }

    /// Runs `future` to completion on the pool's runtime, blocking this thread.
    ///
    /// # Panics
    /// On a runtime worker thread (use `spawn_blocking`).
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.handle.block_on(future)
    }

    /// A connection from the pool: an idle one, a new one while fewer than the maximum are
    /// open, otherwise the next one returned. Await it inside [`PgPool::block_on`].
    ///
    /// # Errors
    /// The server is unreachable or refuses the credentials (the message says so and names the
    /// URL without its password).
    pub async fn get(&self) -> Result<Object, String> {
        self.pool.get().await.map_err(|e| match e {
            PoolError::Backend(e) => connect_error(&self.url, &e),
            other => format!("cannot get a PostgreSQL connection to {}: {other}", self.url),
        })
    }
}

impl Drop for PgPool {
    fn drop(&mut self) {
        self.pool.close();
        // Without waiting: a pool may be dropped on a runtime thread, where waiting is refused.
        if let Some(runtime) = self.owned.take() {
            runtime.shutdown_background();
        }
    }
}

fn connect_error(redacted_url: &str, e: &impl fmt::Display) -> String {
    format!("cannot connect to PostgreSQL at {redacted_url}: {e} (is the server running? check the URL)")
}

/// A PostgreSQL error in words: the server's message and SQLSTATE, or the client's error.
#[must_use]
pub fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

/// A PostgreSQL URL without its password, for messages.
#[must_use]
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let start = scheme.saturating_add(3);
            let creds = url.get(start..at).unwrap_or_default();
            let user = creds.split(':').next().unwrap_or_default();
            format!("{}{user}{}", url.get(..start).unwrap_or_default(), url.get(at..).unwrap_or_default())
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact_url("postgres://u:secret@h:5432/d"), "postgres://u@h:5432/d");
        assert_eq!(redact_url("postgres://alice:secret@db:5432/x"), "postgres://alice@db:5432/x");
        assert_eq!(redact_url("postgres://h/d"), "postgres://h/d");
    }

    #[test]
    fn an_unreachable_server_is_named_without_its_password() {
        let pool = PgPool::open("postgres://nobody:hunter2@127.0.0.1:1/none", 2).expect("a pool");
        let e = pool.block_on(pool.get()).expect_err("nothing listens on port 1");
        assert!(e.contains("is the server running"), "{e}");
        assert!(e.contains("postgres://nobody@127.0.0.1:1/none") && !e.contains("hunter2"), "{e}");
        assert!(PgPool::open("postgres://h:notaport/d", 1).expect_err("bad URL").contains("check the URL"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_pool_opened_on_a_multi_threaded_runtime_uses_it() {
        let pool = PgPool::open("postgres://127.0.0.1:1/none", 1).expect("a pool");
        assert!(pool.owned.is_none());
        let pool = tokio::task::spawn_blocking(move || {
            assert!(pool.block_on(pool.get()).is_err());
            pool
        })
        .await
        .expect("blocking task");
        // Dropped on a worker thread: nothing waits.
        drop(pool);
    }

    #[tokio::test]
    async fn a_pool_opened_on_a_single_threaded_runtime_runs_its_own() {
        let pool = PgPool::open("postgres://127.0.0.1:1/none", 1).expect("a pool");
        assert!(pool.owned.is_some());
        drop(pool);
    }
}
