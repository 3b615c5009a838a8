//! PostgreSQL backend for the session store, shared by every provider process serving one
//! `provider_id`.
//!
//! One table `paystreams_sessions_kv(tbl, k, v)` holds the [`Table`]s. Every
//! [`Kv::transact`] is one SERIALIZABLE transaction, so the store's check-and-write methods
//! (accept, bind, record a request digest, count attempts) are atomic across processes: two
//! processes racing on the same key cannot both succeed. A transaction that loses a race
//! (SQLSTATE 40001, or a deadlock 40P01) is re-run from the start, at most
//! [`PG_TRANSACTION_ATTEMPTS_MAX`] times, after a short jittered backoff.
//!
//! The synchronous `postgres` client runs its own runtime and must not be driven from inside
//! an async runtime, so each transaction runs on a scoped thread; connections are pooled.

use std::{
    fmt,
    sync::Mutex,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use postgres::{IsolationLevel, error::SqlState};

use crate::store::{Entries, Kv, KvStore, KvTxn, StoreError, Table};

/// Tries per transaction before a serialization failure is reported (each retry re-reads; a
/// handful suffices even for a hot key, and bounds the latency of a pathological case).
pub const PG_TRANSACTION_ATTEMPTS_MAX: u32 = 16;
/// Most idle connections kept per process (one per concurrent transaction; more open and close).
pub const PG_IDLE_CONNECTIONS_MAX: usize = 16;
/// The schema version this code writes; a database with a newer one is refused. Version 2 is
/// store layout 2 ([`crate::store::LAYOUT_VERSION`]); a version-1 database is converted by
/// [`crate::store::migrate`] on connect, and its version raised once that committed (so an older
/// paystreams refuses it from then on).
pub const PG_SCHEMA_VERSION: i32 = 2;
/// First retry backoff; doubled per attempt up to [`PG_BACKOFF_MAX`], plus jitter.
const PG_BACKOFF_MIN: Duration = Duration::from_millis(1);
const PG_BACKOFF_MAX: Duration = Duration::from_millis(50);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS paystreams_sessions_kv (
    tbl SMALLINT NOT NULL,
    k BYTEA NOT NULL,
    v BYTEA NOT NULL,
    PRIMARY KEY (tbl, k)
);
CREATE TABLE IF NOT EXISTS paystreams_sessions_schema (version INTEGER NOT NULL);
";

/// PostgreSQL session store.
pub type PgStore = KvStore<PgKv>;

impl PgStore {
    /// Connects and creates the schema if needed.
    ///
    /// # Errors
    /// The server is unreachable, refuses the credentials, or holds a newer schema.
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        let store = Self::with_kv(PgKv::connect(url)?)?;
        store.kv().record_schema_version()?;
        Ok(store)
    }
}

/// The PostgreSQL [`Kv`].
pub struct PgKv {
    url: String,
    idle: Mutex<Vec<postgres::Client>>,
}

impl fmt::Debug for PgKv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgKv").field("url", &redact(&self.url)).finish_non_exhaustive()
    }
}

/// The URL without its password.
fn redact(url: &str) -> String {
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

fn db_error(e: &postgres::Error) -> StoreError {
    StoreError::Database(match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => e.to_string(),
    })
}

fn retryable(e: &postgres::Error) -> bool {
    matches!(e.code(), Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED)
}

/// Closes connections on a thread outside any async runtime (closing one blocks on the
/// client's own runtime, which panics inside another).
fn drop_off_runtime(clients: Vec<postgres::Client>) {
    if !clients.is_empty() {
        std::thread::scope(|s| {
            s.spawn(move || drop(clients));
        });
    }
}

impl Drop for PgKv {
    fn drop(&mut self) {
        let clients = self.idle.get_mut().map(std::mem::take).unwrap_or_default();
        drop_off_runtime(clients);
    }
}

/// Runs `f` on a thread outside any async runtime.
fn off_runtime<R: Send>(f: impl FnOnce() -> R + Send) -> Result<R, StoreError> {
    std::thread::scope(|s| s.spawn(f).join())
        .map_err(|_| StoreError::Database("session store worker thread panicked".into()))
}

fn jitter(bound: Duration) -> Duration {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let bound_nanos = u32::try_from(bound.as_nanos()).unwrap_or(u32::MAX).max(1);
    Duration::from_nanos(u64::from(nanos.checked_rem(bound_nanos).unwrap_or(0)))
}

struct PgTxn<'a, 'b> {
    txn: &'a mut postgres::Transaction<'b>,
    /// Set when a statement failed with a retryable error (the transaction is then aborted).
    retry: bool,
}

impl PgTxn<'_, '_> {
    fn fail(&mut self, e: &postgres::Error) -> StoreError {
        if retryable(e) {
            self.retry = true;
        }
        db_error(e)
    }
}

/// The smallest byte string greater than every string starting with `prefix`, if any.
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last.saturating_add(1));
            return Some(end);
        }
    }
    None
}

impl KvTxn for PgTxn<'_, '_> {
    fn get(&mut self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self
            .txn
            .query_opt("SELECT v FROM paystreams_sessions_kv WHERE tbl = $1 AND k = $2", &[&table.code(), &key])
        {
            Ok(row) => row.map(|r| r.try_get::<_, Vec<u8>>(0)).transpose().map_err(|e| self.fail(&e)),
            Err(e) => Err(self.fail(&e)),
        }
    }

    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.txn
            .execute(
                "INSERT INTO paystreams_sessions_kv (tbl, k, v) VALUES ($1, $2, $3) ON CONFLICT (tbl, k) DO UPDATE SET v = EXCLUDED.v",
                &[&table.code(), &key, &value],
            )
            .map(|_| ())
            .map_err(|e| self.fail(&e))
    }

    fn delete(&mut self, table: Table, key: &[u8]) -> Result<(), StoreError> {
        self.txn
            .execute("DELETE FROM paystreams_sessions_kv WHERE tbl = $1 AND k = $2", &[&table.code(), &key])
            .map(|_| ())
            .map_err(|e| self.fail(&e))
    }

    fn scan(&mut self, table: Table, prefix: &[u8], limit: usize) -> Result<Entries, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = match prefix_end(prefix) {
            Some(end) => self.txn.query(
                "SELECT k, v FROM paystreams_sessions_kv WHERE tbl = $1 AND k >= $2 AND k < $3 ORDER BY k LIMIT $4",
                &[&table.code(), &prefix, &end, &limit],
            ),
            None => self.txn.query(
                "SELECT k, v FROM paystreams_sessions_kv WHERE tbl = $1 AND k >= $2 ORDER BY k LIMIT $3",
                &[&table.code(), &prefix, &limit],
            ),
        };
        let rows = rows.map_err(|e| self.fail(&e))?;
        self.entries(&rows)
    }

    fn scan_from(&mut self, table: Table, start: &[u8], limit: usize) -> Result<Entries, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .txn
            .query(
                "SELECT k, v FROM paystreams_sessions_kv WHERE tbl = $1 AND k >= $2 ORDER BY k LIMIT $3",
                &[&table.code(), &start, &limit],
            )
            .map_err(|e| self.fail(&e))?;
        self.entries(&rows)
    }
}

impl PgTxn<'_, '_> {
    fn entries(&mut self, rows: &[postgres::Row]) -> Result<Entries, StoreError> {
        rows.iter()
            .map(|r| Ok((r.try_get::<_, Vec<u8>>(0)?, r.try_get::<_, Vec<u8>>(1)?)))
            .collect::<Result<Entries, postgres::Error>>()
            .map_err(|e| self.fail(&e))
    }
}

/// One attempt's outcome.
enum Attempt<R> {
    Done(Result<R, StoreError>),
    Retry(StoreError),
}

impl PgKv {
    /// Connects and creates the schema if needed (safe when several processes start at once).
    ///
    /// # Errors
    /// The server is unreachable, refuses the credentials, or holds a newer schema.
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        let kv = Self { url: url.to_owned(), idle: Mutex::new(Vec::new()) };
        kv.with_client(|client| {
            let mut txn = client.transaction().map_err(|e| db_error(&e))?;
            // Serializes first-time schema creation between processes starting together.
            txn.execute("SELECT pg_advisory_xact_lock(7160155002)", &[]).map_err(|e| db_error(&e))?;
            txn.batch_execute(SCHEMA).map_err(|e| db_error(&e))?;
            let version: Option<i32> = txn
                .query_opt("SELECT max(version) FROM paystreams_sessions_schema", &[])
                .map_err(|e| db_error(&e))?
                .and_then(|r| r.get::<_, Option<i32>>(0));
            match version {
                None => {
                    txn.execute("INSERT INTO paystreams_sessions_schema (version) VALUES ($1)", &[&PG_SCHEMA_VERSION])
                        .map_err(|e| db_error(&e))?;
                }
                Some(v) if v > PG_SCHEMA_VERSION => {
                    return Err(StoreError::Database(format!(
                        "the session database has schema version {v}, newer than this paystreams ({PG_SCHEMA_VERSION}); upgrade paystreams"
                    )));
                }
                Some(_) => {}
            }
            txn.commit().map_err(|e| db_error(&e))
        })??;
        Ok(kv)
    }

    /// Records [`PG_SCHEMA_VERSION`] once the data is in its layout.
    fn record_schema_version(&self) -> Result<(), StoreError> {
        self.with_client(|client| {
            client
                .execute(
                    "INSERT INTO paystreams_sessions_schema (version) SELECT $1 \
                     WHERE NOT EXISTS (SELECT 1 FROM paystreams_sessions_schema WHERE version >= $1)",
                    &[&PG_SCHEMA_VERSION],
                )
                .map(|_| ())
                .map_err(|e| db_error(&e))
        })?
    }

    fn checkout(&self) -> Option<postgres::Client> {
        self.idle.lock().ok().and_then(|mut idle| idle.pop()).filter(|c| !c.is_closed())
    }

    fn checkin(&self, client: postgres::Client) {
        if !client.is_closed()
            && let Ok(mut idle) = self.idle.lock()
            && idle.len() < PG_IDLE_CONNECTIONS_MAX
        {
            idle.push(client);
            return;
        }
        drop_off_runtime(vec![client]);
    }

    fn open(url: &str) -> Result<postgres::Client, StoreError> {
        postgres::Client::connect(url, postgres::NoTls).map_err(|e| {
            StoreError::Database(format!(
                "cannot connect to PostgreSQL at {}: {e} (is the server running? check the URL)",
                redact(url)
            ))
        })
    }

    /// Runs `f` with a pooled connection on a thread outside any async runtime.
    fn with_client<R: Send>(&self, f: impl FnOnce(&mut postgres::Client) -> R + Send) -> Result<R, StoreError> {
        let pooled = self.checkout();
        let url = self.url.as_str();
        let (result, client) = off_runtime(move || {
            let mut client = match pooled {
                Some(c) => c,
                None => match Self::open(url) {
                    Ok(c) => c,
                    Err(e) => return (Err(e), None),
                },
            };
            let result = f(&mut client);
            (Ok(result), Some(client))
        })?;
        if let Some(client) = client {
            self.checkin(client);
        }
        result
    }

    fn attempt<R: Send>(
        &self,
        f: &(impl Fn(&mut dyn KvTxn) -> Result<R, StoreError> + Sync),
    ) -> Result<Attempt<R>, StoreError> {
        self.with_client(|client| {
            let mut txn = match client.build_transaction().isolation_level(IsolationLevel::Serializable).start() {
                Ok(t) => t,
                Err(e) if retryable(&e) => return Attempt::Retry(db_error(&e)),
                Err(e) => return Attempt::Done(Err(db_error(&e))),
            };
            let mut kv = PgTxn { txn: &mut txn, retry: false };
            let outcome = f(&mut kv);
            let retry = kv.retry;
            match outcome {
                Ok(value) => match txn.commit() {
                    Ok(()) => Attempt::Done(Ok(value)),
                    Err(e) if retryable(&e) => Attempt::Retry(db_error(&e)),
                    Err(e) => Attempt::Done(Err(db_error(&e))),
                },
                Err(e) => {
                    let _ = txn.rollback();
                    if retry { Attempt::Retry(e) } else { Attempt::Done(Err(e)) }
                }
            }
        })
    }
}

impl Kv for PgKv {
    fn transact<R: Send>(&self, f: impl Fn(&mut dyn KvTxn) -> Result<R, StoreError> + Sync) -> Result<R, StoreError> {
        let mut backoff = PG_BACKOFF_MIN;
        let mut last = StoreError::Database("no attempt made".into());
        for _ in 0..PG_TRANSACTION_ATTEMPTS_MAX {
            match self.attempt(&f)? {
                Attempt::Done(result) => return result,
                Attempt::Retry(e) => {
                    last = e;
                    std::thread::sleep(backoff.saturating_add(jitter(backoff)));
                    backoff = backoff.saturating_mul(2).min(PG_BACKOFF_MAX);
                }
            }
        }
        Err(StoreError::Database(format!(
            "transaction kept conflicting after {PG_TRANSACTION_ATTEMPTS_MAX} attempts: {last}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_upper_bounds() {
        assert_eq!(prefix_end(&[1, 2]), Some(vec![1, 3]));
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
        assert_eq!(prefix_end(&[]), None);
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("postgres://u:secret@h:5432/d"), "postgres://u@h:5432/d");
        assert_eq!(redact("postgres://h/d"), "postgres://h/d");
    }
}
