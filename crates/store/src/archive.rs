//! The message archive: Waku messages keyed by their deterministic hash, sorted by
//! `(timestamp, hash)` as Store v3 requires, behind one trait with two backends: SQLite (the
//! default, one file in the data dir) and PostgreSQL (shared by several provider processes).
//!
//! Both backends build their SQL from one description of the query ([`select_sql`]) so they
//! answer identically; the differential test in `tests/archive.rs` holds them to that.

use std::{
    fmt,
    path::Path,
    sync::{Mutex, PoisonError},
};

pub use paystreams_provider::pg::redact_url;
use paystreams_provider::pg::{PgPool, describe};
use serde::{Deserialize, Serialize};

use tokio_postgres::types::ToSql;

use crate::wire::{CONTENT_TOPICS_MAX, MESSAGE_HASHES_MAX, PAYLOAD_MAX_LEN, TOPIC_MAX_LEN, WakuMessage};

/// Most messages one insert call writes (one transaction); imports are chunked to this.
pub const INSERT_BATCH_MAX: usize = 10_000;
/// Most PostgreSQL connections open per process (calls beyond this wait for one).
pub const PG_CONNECTIONS_MAX: usize = 8;

/// A message in the archive.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct StoredMessage {
    pub hash: [u8; 32],
    pub pubsub_topic: String,
    pub message: WakuMessage,
    /// The message's timestamp (required for storage), nanoseconds.
    pub timestamp: i64,
}

impl StoredMessage {
    /// Validates a message for storage (Store's eligibility rules) and computes its hash.
    ///
    /// # Errors
    /// An ephemeral message, a missing timestamp, an empty or oversized topic, an oversized
    /// payload.
    pub fn new(pubsub_topic: String, message: WakuMessage) -> Result<Self, String> {
        if message.ephemeral {
            return Err("ephemeral messages are not stored".into());
        }
        let timestamp = message.timestamp.ok_or("a stored message needs a timestamp (Unix nanoseconds)")?;
        for (name, topic) in [("pubsub_topic", &pubsub_topic), ("content_topic", &message.content_topic)] {
            if topic.is_empty() || topic.len() > TOPIC_MAX_LEN {
                return Err(format!("{name} must be 1 to {TOPIC_MAX_LEN} bytes"));
            }
        }
        if message.payload.len() > PAYLOAD_MAX_LEN {
            return Err(format!("payload is {} bytes; at most {PAYLOAD_MAX_LEN} are stored", message.payload.len()));
        }
        if message.meta.len() > 64 {
            return Err("meta is at most 64 bytes".into());
        }
        let hash = message.hash(&pubsub_topic);
        Ok(Self { hash, pubsub_topic, message, timestamp })
    }
}

/// What to fetch: a content-filtered or a hash-lookup query, one page.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct ArchiveQuery {
    pub pubsub_topic: Option<String>,
    pub content_topics: Vec<String>,
    /// Inclusive, nanoseconds.
    pub time_start: Option<i64>,
    /// Exclusive, nanoseconds.
    pub time_end: Option<i64>,
    pub message_hashes: Vec<[u8; 32]>,
    /// Exclusive position to continue from.
    pub cursor: Option<[u8; 32]>,
    pub forward: bool,
    /// Page size (at least 1).
    pub limit: u32,
}

/// One page, always in forward order, and whether more entries match beyond it.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct ArchivePage {
    pub messages: Vec<StoredMessage>,
    pub has_more: bool,
}

/// An archive failure.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("pagination cursor does not name a stored message")]
    CursorNotFound,
    #[error("archive database: {0}")]
    Database(String),
    #[error("corrupt archive row: {0}")]
    Corrupt(String),
    #[error("archive lock poisoned")]
    Poisoned,
}

impl<T> From<PoisonError<T>> for ArchiveError {
    fn from(_: PoisonError<T>) -> Self {
        Self::Poisoned
    }
}

impl From<rusqlite::Error> for ArchiveError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Database(e.to_string())
    }
}

impl From<tokio_postgres::Error> for ArchiveError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Database(describe(&e))
    }
}

/// A message archive. Calls block; async callers use `spawn_blocking`.
pub trait Archive: Send + Sync + fmt::Debug {
    /// Stores messages in one transaction; a message already stored (same hash) is skipped.
    /// Returns how many were new.
    ///
    /// # Errors
    /// Database failures (nothing is written).
    fn insert(&self, messages: &[StoredMessage]) -> Result<u64, ArchiveError>;

    /// One page of matching messages.
    ///
    /// # Errors
    /// An unknown cursor or a database failure.
    fn query(&self, query: &ArchiveQuery) -> Result<ArchivePage, ArchiveError>;

    /// How many messages are stored.
    ///
    /// # Errors
    /// Database failures.
    fn count(&self) -> Result<u64, ArchiveError>;
}

/// A bound SQL parameter.
#[derive(Clone, Debug)]
enum Param {
    Text(String),
    Blob(Vec<u8>),
    Int(i64),
}

/// SQL for one page: the parameters are in `params`, placeholders from `placeholder(n)`.
/// `cursor_timestamp` is the cursor message's timestamp (looked up by the caller).
fn select_sql(
    query: &ArchiveQuery,
    cursor_timestamp: Option<i64>,
    placeholder: impl Fn(usize) -> String,
) -> (String, Vec<Param>) {
    let mut params = Vec::new();
    let next = |p: Param, params: &mut Vec<Param>| {
        params.push(p);
        placeholder(params.len())
    };
    let mut clauses = Vec::new();
    if let Some(topic) = &query.pubsub_topic {
        clauses.push(format!("pubsub_topic = {}", next(Param::Text(topic.clone()), &mut params)));
    }
    if !query.content_topics.is_empty() {
        let list: Vec<String> =
            query.content_topics.iter().map(|t| next(Param::Text(t.clone()), &mut params)).collect();
        clauses.push(format!("content_topic IN ({})", list.join(", ")));
    }
    if let Some(start) = query.time_start {
        clauses.push(format!("timestamp >= {}", next(Param::Int(start), &mut params)));
    }
    if let Some(end) = query.time_end {
        clauses.push(format!("timestamp < {}", next(Param::Int(end), &mut params)));
    }
    if !query.message_hashes.is_empty() {
        let list: Vec<String> =
            query.message_hashes.iter().map(|h| next(Param::Blob(h.to_vec()), &mut params)).collect();
        clauses.push(format!("hash IN ({})", list.join(", ")));
    }
    if let (Some(cursor), Some(ts)) = (query.cursor, cursor_timestamp) {
        let op = if query.forward { ">" } else { "<" };
        let t = next(Param::Int(ts), &mut params);
        let h = next(Param::Blob(cursor.to_vec()), &mut params);
        clauses.push(format!("(timestamp, hash) {op} ({t}, {h})"));
    }
    let filter = if clauses.is_empty() { String::new() } else { format!(" WHERE {}", clauses.join(" AND ")) };
    let order = if query.forward { "ASC" } else { "DESC" };
    let limit = next(Param::Int(i64::from(query.limit.max(1)).saturating_add(1)), &mut params);
    (
        format!(
            "SELECT hash, pubsub_topic, content_topic, timestamp, payload, meta, version FROM store_messages{filter} ORDER BY timestamp {order}, hash {order} LIMIT {limit}"
        ),
        params,
    )
}

fn check_query(query: &ArchiveQuery) -> Result<(), ArchiveError> {
    if query.content_topics.len() > CONTENT_TOPICS_MAX || query.message_hashes.len() > MESSAGE_HASHES_MAX {
        return Err(ArchiveError::Database("query names too many topics or hashes".into()));
    }
    Ok(())
}

/// Raw columns of one row, decoded the same way for both backends.
struct Row {
    hash: Vec<u8>,
    pubsub_topic: String,
    content_topic: String,
    timestamp: i64,
    payload: Vec<u8>,
    meta: Vec<u8>,
    version: i64,
}

impl Row {
    fn into_message(self) -> Result<StoredMessage, ArchiveError> {
        let hash: [u8; 32] = self
            .hash
            .as_slice()
            .try_into()
            .map_err(|_| ArchiveError::Corrupt(format!("hash of {} bytes", self.hash.len())))?;
        let version =
            u32::try_from(self.version).map_err(|_| ArchiveError::Corrupt(format!("version {}", self.version)))?;
        Ok(StoredMessage {
            hash,
            pubsub_topic: self.pubsub_topic,
            timestamp: self.timestamp,
            message: WakuMessage {
                payload: self.payload,
                content_topic: self.content_topic,
                version,
                timestamp: Some(self.timestamp),
                meta: self.meta,
                ephemeral: false,
            },
        })
    }
}

fn finish_page(rows: Vec<Row>, query: &ArchiveQuery) -> Result<ArchivePage, ArchiveError> {
    let limit = usize::try_from(query.limit.max(1)).unwrap_or(usize::MAX);
    let has_more = rows.len() > limit;
    let mut messages = rows.into_iter().take(limit).map(Row::into_message).collect::<Result<Vec<_>, _>>()?;
    if !query.forward {
        messages.reverse();
    }
    Ok(ArchivePage { messages, has_more })
}

// ---------------------------------------------------------------------------------------------
// SQLite

/// SQLite archive: one file, WAL journal, `synchronous = FULL` (a committed import survives a
/// power cut).
pub struct SqliteArchive {
    conn: Mutex<rusqlite::Connection>,
}

impl fmt::Debug for SqliteArchive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SqliteArchive")
    }
}

const SQLITE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS store_messages (
    hash BLOB NOT NULL PRIMARY KEY,
    pubsub_topic TEXT NOT NULL,
    content_topic TEXT NOT NULL,
    timestamp INTEGER NOT NULL,
    payload BLOB NOT NULL,
    meta BLOB NOT NULL,
    version INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS store_messages_time ON store_messages (timestamp, hash);
CREATE INDEX IF NOT EXISTS store_messages_topic ON store_messages (content_topic, timestamp, hash);
";

impl SqliteArchive {
    /// Opens or creates the archive file.
    ///
    /// # Errors
    /// The file cannot be opened or is not an archive.
    pub fn open(path: &Path) -> Result<Self, ArchiveError> {
        let conn = rusqlite::Connection::open(path)
            .map_err(|e| ArchiveError::Database(format!("cannot open archive {}: {e}", path.display())))?;
        Self::init(conn)
    }

    /// An in-memory archive (tests, benchmarks).
    ///
    /// # Errors
    /// SQLite failures.
    pub fn in_memory() -> Result<Self, ArchiveError> {
        Self::init(rusqlite::Connection::open_in_memory()?)
    }

    fn init(conn: rusqlite::Connection) -> Result<Self, ArchiveError> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SQLITE_SCHEMA)?;
        Ok(Self { conn: Mutex::new(conn) })
    }
}

impl Archive for SqliteArchive {
    fn insert(&self, messages: &[StoredMessage]) -> Result<u64, ArchiveError> {
        let mut conn = self.conn.lock()?;
        let txn = conn.transaction()?;
        let mut inserted = 0u64;
        {
            let mut stmt = txn.prepare_cached(
                "INSERT INTO store_messages (hash, pubsub_topic, content_topic, timestamp, payload, meta, version) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (hash) DO NOTHING",
            )?;
            for m in messages {
                let n = stmt.execute(rusqlite::params![
                    m.hash.as_slice(),
                    m.pubsub_topic,
                    m.message.content_topic,
                    m.timestamp,
                    m.message.payload,
                    m.message.meta,
                    i64::from(m.message.version)
                ])?;
                inserted = inserted.saturating_add(u64::try_from(n).unwrap_or(0));
            }
        }
        txn.commit()?;
        Ok(inserted)
    }

    fn query(&self, query: &ArchiveQuery) -> Result<ArchivePage, ArchiveError> {
        check_query(query)?;
        let conn = self.conn.lock()?;
        let cursor_timestamp = match query.cursor {
            Some(cursor) => Some(
                conn.query_row("SELECT timestamp FROM store_messages WHERE hash = ?1", [cursor.as_slice()], |r| {
                    r.get::<_, i64>(0)
                })
                .map_err(|e| match e {
                    rusqlite::Error::QueryReturnedNoRows => ArchiveError::CursorNotFound,
                    other => other.into(),
                })?,
            ),
            None => None,
        };
        let (sql, params) = select_sql(query, cursor_timestamp, |n| format!("?{n}"));
        let values: Vec<rusqlite::types::Value> = params
            .into_iter()
            .map(|p| match p {
                Param::Text(t) => rusqlite::types::Value::Text(t),
                Param::Blob(b) => rusqlite::types::Value::Blob(b),
                Param::Int(i) => rusqlite::types::Value::Integer(i),
            })
            .collect();
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(values), |r| {
                Ok(Row {
                    hash: r.get(0)?,
                    pubsub_topic: r.get(1)?,
                    content_topic: r.get(2)?,
                    timestamp: r.get(3)?,
                    payload: r.get(4)?,
                    meta: r.get(5)?,
                    version: r.get(6)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        finish_page(rows, query)
    }

    fn count(&self) -> Result<u64, ArchiveError> {
        let n: i64 = self.conn.lock()?.query_row("SELECT COUNT(*) FROM store_messages", [], |r| r.get(0))?;
        u64::try_from(n).map_err(|_| ArchiveError::Corrupt("negative count".into()))
    }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

/// PostgreSQL archive, shared by every provider process pointed at the same database.
///
/// Connections come from the shared [`PgPool`] (at most [`PG_CONNECTIONS_MAX`]); each call
/// blocks its thread on the pool's runtime, so async callers use `spawn_blocking`.
pub struct PostgresArchive {
    pool: PgPool,
}

impl fmt::Debug for PostgresArchive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PostgresArchive")
    }
}

const PG_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS store_messages (
    hash BYTEA NOT NULL PRIMARY KEY,
    pubsub_topic TEXT NOT NULL,
    content_topic TEXT NOT NULL,
    timestamp BIGINT NOT NULL,
    payload BYTEA NOT NULL,
    meta BYTEA NOT NULL,
    version BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS store_messages_time ON store_messages (timestamp, hash);
CREATE INDEX IF NOT EXISTS store_messages_topic ON store_messages (content_topic, timestamp, hash);
";

impl PostgresArchive {
    /// Connects and creates the schema if needed (safe when several processes start at once).
    ///
    /// # Errors
    /// The server is unreachable or refuses the credentials.
    pub fn connect(url: &str) -> Result<Self, ArchiveError> {
        let archive = Self { pool: PgPool::open(url, PG_CONNECTIONS_MAX).map_err(ArchiveError::Database)? };
        archive.pool.block_on(async {
            let mut client = archive.pool.get().await.map_err(ArchiveError::Database)?;
            let txn = client.transaction().await?;
            txn.execute("SELECT pg_advisory_xact_lock(7160155001)", &[]).await?;
            txn.batch_execute(PG_SCHEMA).await?;
            txn.commit().await?;
            Ok::<_, ArchiveError>(())
        })?;
        Ok(archive)
    }
}

impl Archive for PostgresArchive {
    fn insert(&self, messages: &[StoredMessage]) -> Result<u64, ArchiveError> {
        self.pool.block_on(async {
            let mut client = self.pool.get().await.map_err(ArchiveError::Database)?;
            let txn = client.transaction().await?;
            let stmt = txn
                .prepare_cached(
                    "INSERT INTO store_messages (hash, pubsub_topic, content_topic, timestamp, payload, meta, version) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (hash) DO NOTHING",
                )
                .await?;
            let mut inserted = 0u64;
            for m in messages {
                let n = txn
                    .execute(
                        &stmt,
                        &[
                            &m.hash.as_slice(),
                            &m.pubsub_topic,
                            &m.message.content_topic,
                            &m.timestamp,
                            &m.message.payload,
                            &m.message.meta,
                            &i64::from(m.message.version),
                        ],
                    )
                    .await?;
                inserted = inserted.saturating_add(n);
            }
            txn.commit().await?;
            Ok(inserted)
        })
    }

    fn query(&self, query: &ArchiveQuery) -> Result<ArchivePage, ArchiveError> {
        check_query(query)?;
        self.pool.block_on(async {
            let client = self.pool.get().await.map_err(ArchiveError::Database)?;
            let cursor_timestamp = match query.cursor {
                Some(cursor) => Some(
                    client
                        .query_opt("SELECT timestamp FROM store_messages WHERE hash = $1", &[&cursor.as_slice()])
                        .await?
                        .ok_or(ArchiveError::CursorNotFound)?
                        .try_get::<_, i64>(0)?,
                ),
                None => None,
            };
            let (sql, params) = select_sql(query, cursor_timestamp, |n| format!("${n}"));
            let boxed: Vec<Box<dyn ToSql + Sync + Send>> = params
                .into_iter()
                .map(|p| -> Box<dyn ToSql + Sync + Send> {
                    match p {
                        Param::Text(t) => Box::new(t),
                        Param::Blob(b) => Box::new(b),
                        Param::Int(i) => Box::new(i),
                    }
                })
                .collect();
            let refs: Vec<&(dyn ToSql + Sync)> = boxed.iter().map(|p| -> &(dyn ToSql + Sync) { p.as_ref() }).collect();
            let rows = client
                .query(&sql, &refs)
                .await?
                .into_iter()
                .map(|r| {
                    Ok(Row {
                        hash: r.try_get(0)?,
                        pubsub_topic: r.try_get(1)?,
                        content_topic: r.try_get(2)?,
                        timestamp: r.try_get(3)?,
                        payload: r.try_get(4)?,
                        meta: r.try_get(5)?,
                        version: r.try_get(6)?,
                    })
                })
                .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
            finish_page(rows, query)
        })
    }

    fn count(&self) -> Result<u64, ArchiveError> {
        self.pool.block_on(async {
            let client = self.pool.get().await.map_err(ArchiveError::Database)?;
            let n: i64 = client.query_one("SELECT COUNT(*) FROM store_messages", &[]).await?.try_get(0)?;
            u64::try_from(n).map_err(|_| ArchiveError::Corrupt("negative count".into()))
        })
    }
}

/// Opens the archive a `--archive` value names: `postgres://…` or `postgresql://…` for
/// PostgreSQL, anything else is a SQLite file path.
///
/// # Errors
/// As the backend's open or connect.
pub fn open_archive(spec: &str) -> Result<Box<dyn Archive>, ArchiveError> {
    if is_postgres_url(spec) {
        Ok(Box::new(PostgresArchive::connect(spec)?))
    } else {
        Ok(Box::new(SqliteArchive::open(Path::new(spec))?))
    }
}

/// Whether an `--archive` value is a PostgreSQL URL.
#[must_use]
pub fn is_postgres_url(spec: &str) -> bool {
    spec.starts_with("postgres://") || spec.starts_with("postgresql://")
}

// ---------------------------------------------------------------------------------------------
// Import format

/// One line of an import file (JSON lines). Exactly one of `payload` (base64) and `text`
/// (UTF-8) is given; `timestamp` is Unix nanoseconds as a number or a decimal string.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ImportLine {
    pub pubsub_topic: String,
    pub content_topic: String,
    #[serde(default)]
    pub payload: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
    pub timestamp: serde_json::Value,
    #[serde(default)]
    pub meta: Option<String>,
    #[serde(default)]
    pub version: u32,
    #[serde(default)]
    pub ephemeral: bool,
}

/// Earliest timestamp an import accepts: 2001-09-09, the first instant whose Unix nanoseconds
/// have 19 digits. Anything smaller is seconds, milliseconds or microseconds (or not a time).
pub const IMPORT_TIMESTAMP_MIN_NS: i64 = 1_000_000_000_000_000_000;
/// How far past the wall clock an imported timestamp may be (clock skew between machines).
pub const IMPORT_TIMESTAMP_MAX_AHEAD_NS: i64 = 24 * 3600 * 1_000_000_000;

/// Refuses a timestamp that is not Unix nanoseconds of a plausible message time: zero,
/// negative, in seconds/milliseconds/microseconds (named, with the factor that fixes it), or
/// more than a day after `now_ns`.
///
/// # Errors
/// What is wrong, in words.
pub fn check_import_timestamp(timestamp: i64, now_ns: i64) -> Result<i64, String> {
    let unit = |name: &str, factor: &str| {
        format!(
            "timestamp {timestamp} is not nanoseconds since the Unix epoch (it looks like {name}: multiply by {factor}); \
             e.g. 1700000000000000000 is 2023-11-14"
        )
    };
    match timestamp {
        ..=0 => Err(format!(
            "timestamp {timestamp} is not a time: give nanoseconds since the Unix epoch, e.g. 1700000000000000000 \
             (2023-11-14)"
        )),
        1..100_000_000_000 => Err(unit("seconds", "1000000000")),
        100_000_000_000..100_000_000_000_000 => Err(unit("milliseconds", "1000000")),
        100_000_000_000_000..IMPORT_TIMESTAMP_MIN_NS => Err(unit("microseconds", "1000")),
        t if t > now_ns.saturating_add(IMPORT_TIMESTAMP_MAX_AHEAD_NS) => Err(format!(
            "timestamp {timestamp} is more than a day in the future (now is {now_ns} ns since the Unix epoch); give \
             the message's real time in nanoseconds"
        )),
        t => Ok(t),
    }
}

/// The wall clock in Unix nanoseconds (saturating).
fn now_unix_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

fn base64_decode(field: &str, value: &str) -> Result<Vec<u8>, String> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(value).map_err(|e| format!("{field} is not base64: {e}"))
}

impl ImportLine {
    /// Validates the line into a storable message; its timestamp must be Unix nanoseconds no
    /// later than a day after `now_ns` (see [`check_import_timestamp`]).
    ///
    /// # Errors
    /// What is wrong with the line, in words.
    pub fn into_stored(self, now_ns: i64) -> Result<StoredMessage, String> {
        let payload = match (self.payload, self.text) {
            (Some(b64), None) => base64_decode("payload", &b64)?,
            (None, Some(text)) => text.into_bytes(),
            (Some(_), Some(_)) => return Err("give either payload (base64) or text, not both".into()),
            (None, None) => return Err("give payload (base64) or text".into()),
        };
        let timestamp = match &self.timestamp {
            serde_json::Value::Number(n) => n.as_i64().ok_or("timestamp must be an integer number of nanoseconds")?,
            serde_json::Value::String(s) => {
                s.parse::<i64>().map_err(|_| "timestamp must be an integer number of nanoseconds")?
            }
            _ => return Err("timestamp must be an integer number of nanoseconds".into()),
        };
        let timestamp = check_import_timestamp(timestamp, now_ns)?;
        let meta = match self.meta {
            Some(m) => base64_decode("meta", &m)?,
            None => Vec::new(),
        };
        let message = WakuMessage {
            payload,
            content_topic: self.content_topic,
            version: self.version,
            timestamp: Some(timestamp),
            meta,
            ephemeral: self.ephemeral,
        };
        StoredMessage::new(self.pubsub_topic, message)
    }
}

/// Parses a whole JSON-lines import; any bad line fails the import (naming the line) before
/// anything is written. Blank lines are skipped.
///
/// # Errors
/// `line N: what is wrong`.
pub fn parse_import(text: &str) -> Result<Vec<StoredMessage>, String> {
    let now_ns = now_unix_ns();
    let mut out = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index.saturating_add(1);
        if line.trim().is_empty() {
            continue;
        }
        let parsed: ImportLine = serde_json::from_str(line).map_err(|e| format!("line {number}: {e}"))?;
        out.push(parsed.into_stored(now_ns).map_err(|e| format!("line {number}: {e}"))?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_import_lines_name_the_line() {
        let text = "{\"pubsub_topic\":\"/p\",\"content_topic\":\"/c\",\"text\":\"hi\",\"timestamp\":1700000000000000000}\n\n{\"pubsub_topic\":\"/p\",\"content_topic\":\"/c\",\"timestamp\":1700000000000000000}\n";
        assert_eq!(parse_import(text).expect_err("refused"), "line 3: give payload (base64) or text");
        let eph = "{\"pubsub_topic\":\"/p\",\"content_topic\":\"/c\",\"text\":\"hi\",\"timestamp\":1700000000000000000,\"ephemeral\":true}";
        assert!(parse_import(eph).expect_err("refused").contains("ephemeral"));
        let unknown = "{\"pubsub_topic\":\"/p\",\"content_topic\":\"/c\",\"text\":\"hi\",\"timestamp\":1700000000000000000,\"colour\":1}";
        assert!(parse_import(unknown).expect_err("refused").starts_with("line 1: unknown field"));
    }

    #[test]
    fn timestamps_must_be_nanoseconds_of_a_plausible_time() {
        let now = 1_765_000_000_000_000_000;
        let line = |ts: &str| {
            format!("{{\"pubsub_topic\":\"/p\",\"content_topic\":\"/c\",\"text\":\"hi\",\"timestamp\":{ts}}}")
        };
        for (ts, says) in [
            ("0", "is not a time"),
            ("-5", "is not a time"),
            ("1700000000", "looks like seconds"),
            ("\"1700000000000\"", "looks like milliseconds"),
            ("1700000000000000", "looks like microseconds"),
            ("1865000000000000000", "in the future"),
        ] {
            let parsed: ImportLine = serde_json::from_str(&line(ts)).expect("json");
            let error = parsed.into_stored(now).expect_err(ts);
            assert!(error.contains(says) && error.contains("nanoseconds"), "{ts}: {error}");
        }
        let ok: ImportLine = serde_json::from_str(&line("1700000000123456789")).expect("json");
        assert_eq!(ok.into_stored(now).expect("valid").message.timestamp, Some(1_700_000_000_123_456_789));
        // A whole file with one bad line is refused, naming the line.
        let file = format!("{}\n{}\n", line("1700000000000000000"), line("1700000000"));
        assert!(parse_import(&file).expect_err("refused").starts_with("line 2: timestamp 1700000000 "));
    }
}
