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
//! Connections come from the shared [`PgPool`] (tokio-postgres behind deadpool): a
//! transaction runs on the calling thread, which blocks on the pool's runtime for each
//! statement, so [`Kv::transact`] must be called from a blocking thread (the store's async
//! methods use `spawn_blocking`). Statements are prepared once per connection.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use deadpool_postgres::{Object, Transaction};
use tokio_postgres::{IsolationLevel, Row, error::SqlState, types::ToSql};

use crate::{
    pg::{PgPool, describe},
    store::{Entries, Kv, KvStore, KvTxn, StoreError, Table},
};

/// Tries per transaction before a serialization failure is reported (each retry re-reads; a
/// handful suffices even for a hot key, and bounds the latency of a pathological case).
pub const PG_TRANSACTION_ATTEMPTS_MAX: u32 = 16;
/// Most connections open per process (one per concurrent transaction; more transactions wait
/// for one).
pub const PG_CONNECTIONS_MAX: usize = 16;
/// The schema version this code writes; a database with a newer one is refused. Version 3 is
/// store layout 3 ([`crate::store::LAYOUT_VERSION`]); a version-1 or version-2 database is
/// converted by [`crate::store::migrate`] on connect, and its version raised once that
/// committed (so an older paystreams refuses it from then on).
pub const PG_SCHEMA_VERSION: i32 = 3;
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

const GET: &str = "SELECT v FROM paystreams_sessions_kv WHERE tbl = $1 AND k = $2";
const PUT: &str = "INSERT INTO paystreams_sessions_kv (tbl, k, v) VALUES ($1, $2, $3) ON CONFLICT (tbl, k) DO UPDATE SET v = EXCLUDED.v";
const DELETE: &str = "DELETE FROM paystreams_sessions_kv WHERE tbl = $1 AND k = $2";
const SCAN_RANGE: &str =
    "SELECT k, v FROM paystreams_sessions_kv WHERE tbl = $1 AND k >= $2 AND k < $3 ORDER BY k LIMIT $4";
const SCAN_FROM: &str = "SELECT k, v FROM paystreams_sessions_kv WHERE tbl = $1 AND k >= $2 ORDER BY k LIMIT $3";

/// PostgreSQL session store.
pub type PgStore = KvStore<PgKv>;

impl PgStore {
    /// Connects and creates the schema if needed. Blocks: call it from a blocking thread.
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
#[derive(Debug)]
pub struct PgKv {
    pool: PgPool,
}

fn db_error(e: &tokio_postgres::Error) -> StoreError {
    StoreError::Database(describe(e))
}

fn retryable(e: &tokio_postgres::Error) -> bool {
    matches!(e.code(), Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED)
}

fn jitter(bound: Duration) -> Duration {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let bound_nanos = u32::try_from(bound.as_nanos()).unwrap_or(u32::MAX).max(1);
    Duration::from_nanos(u64::from(nanos.checked_rem(bound_nanos).unwrap_or(0)))
}

struct PgTxn<'a, 'b> {
    pool: &'a PgPool,
    txn: &'a Transaction<'b>,
    /// Set when a statement failed with a retryable error (the transaction is then aborted).
    retry: bool,
}

impl PgTxn<'_, '_> {
    fn fail(&mut self, e: &tokio_postgres::Error) -> StoreError {
        if retryable(e) {
            self.retry = true;
        }
        db_error(e)
    }

    /// Runs one statement (prepared once per connection) and returns its rows.
    fn query(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, StoreError> {
        let txn = self.txn;
        let result = self.pool.block_on(async {
            let statement = txn.prepare_cached(sql).await?;
            txn.query(&statement, params).await
        });
        result.map_err(|e| self.fail(&e))
    }

    fn entries(&mut self, rows: &[Row]) -> Result<Entries, StoreError> {
        rows.iter()
            .map(|r| Ok((r.try_get::<_, Vec<u8>>(0)?, r.try_get::<_, Vec<u8>>(1)?)))
            .collect::<Result<Entries, tokio_postgres::Error>>()
            .map_err(|e| self.fail(&e))
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
        let rows = self.query(GET, &[&table.code(), &key])?;
        rows.first().map(|r| r.try_get::<_, Vec<u8>>(0)).transpose().map_err(|e| self.fail(&e))
    }

    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.query(PUT, &[&table.code(), &key, &value]).map(drop)
    }

    fn delete(&mut self, table: Table, key: &[u8]) -> Result<(), StoreError> {
        self.query(DELETE, &[&table.code(), &key]).map(drop)
    }

    fn scan(&mut self, table: Table, prefix: &[u8], limit: usize) -> Result<Entries, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = match prefix_end(prefix) {
            Some(end) => self.query(SCAN_RANGE, &[&table.code(), &prefix, &end, &limit])?,
            None => self.query(SCAN_FROM, &[&table.code(), &prefix, &limit])?,
        };
        self.entries(&rows)
    }

    fn scan_from(&mut self, table: Table, start: &[u8], limit: usize) -> Result<Entries, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self.query(SCAN_FROM, &[&table.code(), &start, &limit])?;
        self.entries(&rows)
    }
}

/// One attempt's outcome.
enum Attempt<R> {
    Done(Result<R, StoreError>),
    Retry(StoreError),
}

impl PgKv {
    /// Connects and creates the schema if needed (safe when several processes start at once).
    /// Blocks: call it from a blocking thread.
    ///
    /// # Errors
    /// The server is unreachable, refuses the credentials, or holds a newer schema.
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = PgPool::open(url, PG_CONNECTIONS_MAX).map_err(StoreError::Database)?;
        pool.block_on(async {
            let mut client = pool.get().await.map_err(StoreError::Database)?;
            let txn = client.transaction().await.map_err(|e| db_error(&e))?;
            // Serializes first-time schema creation between processes starting together.
            txn.execute("SELECT pg_advisory_xact_lock(7160155002)", &[]).await.map_err(|e| db_error(&e))?;
            txn.batch_execute(SCHEMA).await.map_err(|e| db_error(&e))?;
            let version: Option<i32> = txn
                .query_opt("SELECT max(version) FROM paystreams_sessions_schema", &[])
                .await
                .map_err(|e| db_error(&e))?
                .and_then(|r| r.get::<_, Option<i32>>(0));
            match version {
                None => {
                    txn.execute("INSERT INTO paystreams_sessions_schema (version) VALUES ($1)", &[&PG_SCHEMA_VERSION])
                        .await
                        .map_err(|e| db_error(&e))?;
                }
                Some(v) if v > PG_SCHEMA_VERSION => {
                    return Err(StoreError::Database(format!(
                        "the session database has schema version {v}, newer than this paystreams ({PG_SCHEMA_VERSION}); upgrade paystreams"
                    )));
                }
                Some(_) => {}
            }
            txn.commit().await.map_err(|e| db_error(&e))
        })?;
        Ok(Self { pool })
    }

    /// Records [`PG_SCHEMA_VERSION`] once the data is in its layout.
    fn record_schema_version(&self) -> Result<(), StoreError> {
        self.pool.block_on(async {
            self.pool
                .get()
                .await
                .map_err(StoreError::Database)?
                .execute(
                    "INSERT INTO paystreams_sessions_schema (version) SELECT $1 \
                     WHERE NOT EXISTS (SELECT 1 FROM paystreams_sessions_schema WHERE version >= $1)",
                    &[&PG_SCHEMA_VERSION],
                )
                .await
                .map(drop)
                .map_err(|e| db_error(&e))
        })
    }

    fn attempt<R>(&self, f: &impl Fn(&mut dyn KvTxn) -> Result<R, StoreError>) -> Result<Attempt<R>, StoreError> {
        let pool = &self.pool;
        let mut client: Object = pool.block_on(pool.get()).map_err(StoreError::Database)?;
        let txn = match pool.block_on(client.build_transaction().isolation_level(IsolationLevel::Serializable).start())
        {
            Ok(t) => t,
            Err(e) if retryable(&e) => return Ok(Attempt::Retry(db_error(&e))),
            Err(e) => return Ok(Attempt::Done(Err(db_error(&e)))),
        };
        let mut kv = PgTxn { pool, txn: &txn, retry: false };
        let outcome = f(&mut kv);
        let retry = kv.retry;
        Ok(match outcome {
            Ok(value) => match pool.block_on(txn.commit()) {
                Ok(()) => Attempt::Done(Ok(value)),
                Err(e) if retryable(&e) => Attempt::Retry(db_error(&e)),
                Err(e) => Attempt::Done(Err(db_error(&e))),
            },
            Err(e) => {
                let _ = pool.block_on(txn.rollback());
                if retry { Attempt::Retry(e) } else { Attempt::Done(Err(e)) }
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
}
