//! The user's durable state: sessions (with their session keys), the promise ledger, the
//! attempt history and the transport identity per provider, in one redb file per owner key.
//!
//! The whole state is small (a handful of sessions per owner), so it is written as one
//! snapshot per change, in one redb write transaction committed with immediate durability:
//! a change is either entirely on disk or not at all, whatever point a process is killed at.
//! The engine builds the new snapshot, commits it, and only then replaces its in-memory copy,
//! so a failed commit leaves both untouched.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use borsh::{BorshDeserialize, BorshSerialize};
use paystreams_program::ExtensionSettings;

use crate::receipts::ReceiptBook;
use redb::{ReadableDatabase as _, TableDefinition};

/// The one table: `"state"` → the borsh snapshot.
const STATE: TableDefinition<'static, &'static str, &'static [u8]> = TableDefinition::new("user_state");
const STATE_KEY: &str = "state";
/// Snapshot layout version; a file written by a newer layout is refused, never misread.
pub const SNAPSHOT_VERSION: u8 = 1;

/// How long [`UserStore::open`] waits for another process to release the file by default.
pub const OPEN_WAIT: Duration = Duration::from_secs(10);

/// A user-store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the user state {path} is in use by another paystream process for this owner ({holder}); wait for it to finish or stop it, then retry"
    )]
    Busy { path: String, holder: String },
    #[error("user state {path}: {detail}")]
    Database { path: String, detail: String },
    #[error(
        "user state {path} is corrupt or from a newer paystream ({detail}); move it aside to start afresh (open streams stay on chain: close them with `paystream stream close`)"
    )]
    Corrupt { path: String, detail: String },
    #[error("the user-state writer task failed: {0}")]
    Task(String),
}

/// Where a session stands.
#[derive(Clone, Copy, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub enum Phase {
    /// The proposal was built (and maybe sent); its promise holds until `deadline`.
    Proposed,
    /// The provider accepted; the create-stream transaction for `stream_id` is (about to be)
    /// submitted. Reconciled against the chain on open.
    Creating { stream_id: u64 },
    /// The stream exists and backs requests.
    Streaming { stream_id: u64 },
    /// A TEMPORARY termination: no requests before `until`.
    Paused { stream_id: u64, until: u64, paused_on_chain: bool },
}

impl Phase {
    /// The stream, once the create-stream transaction is known to be included.
    #[must_use]
    pub const fn stream_id(self) -> Option<u64> {
        match self {
            Self::Streaming { stream_id } | Self::Paused { stream_id, .. } => Some(stream_id),
            Self::Proposed | Self::Creating { .. } => None,
        }
    }

    /// Whether the session still holds a promise on its vault.
    #[must_use]
    pub const fn holds_promise(self) -> bool {
        matches!(self, Self::Proposed | Self::Creating { .. })
    }
}

/// One session, as stored.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct SessionRecord {
    pub provider: [u8; 32],
    pub vault_id: u64,
    pub token_id: [u8; 32],
    pub service_id: String,
    /// Accepted (proposed) rate and allocation.
    pub rate: u64,
    pub allocation: u64,
    /// The proposal's VaultOwnerAuth digest: the provider's session id.
    pub session_id: [u8; 32],
    /// The session key (secp256k1 secret) that signs stream proofs.
    pub session_key: [u8; 32],
    /// The proposal's `create_stream_deadline` (chain seconds).
    pub deadline: u64,
    pub phase: Phase,
    /// Order of last use: higher is more recent (the provider's "current" session).
    pub last_used: u64,
    /// The stream extensions chosen from the provider's advert (receipt key: the session key).
    pub extensions: ExtensionSettings,
    /// What this session has acknowledged in delivery receipts so far.
    pub receipts: ReceiptBook,
}

impl SessionRecord {
    /// The session's id in hex (its label in listings and `session show`).
    #[must_use]
    pub fn label(&self) -> String {
        hex::encode(self.session_id)
    }
}

/// Attempt history key: (vault id, provider).
pub type AttemptKey = (u64, [u8; 32]);

/// Everything the user engine keeps.
#[derive(Clone, PartialEq, Eq, Debug, Default, BorshSerialize, BorshDeserialize)]
pub struct Snapshot {
    pub sessions: Vec<SessionRecord>,
    /// Refused-proposal times per (vault id, provider), chain seconds.
    pub attempts: Vec<(AttemptKey, Vec<u64>)>,
    /// The libp2p ed25519 secret per provider (never shared across providers).
    pub identities: Vec<([u8; 32], [u8; 32])>,
    /// Monotonic counter behind [`SessionRecord::last_used`].
    pub clock: u64,
}

#[derive(BorshSerialize, BorshDeserialize)]
struct Envelope {
    version: u8,
    snapshot: Snapshot,
}

/// The advisory note naming the process holding the store at `path`.
fn holder_path(path: &Path) -> PathBuf {
    path.with_extension("holder")
}

/// The durable store (or an in-memory one for tests and one-shot engines).
#[derive(Clone)]
pub struct UserStore {
    inner: Option<(Arc<redb::Database>, PathBuf)>,
}

impl std::fmt::Debug for UserStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            Some((_, path)) => write!(f, "UserStore({})", path.display()),
            None => f.write_str("UserStore(memory)"),
        }
    }
}

impl UserStore {
    /// A store that keeps nothing across processes.
    #[must_use]
    pub const fn memory() -> Self {
        Self { inner: None }
    }

    /// The file of `owner` (account id text) under `home`: `<home>/user/<owner>.redb`.
    #[must_use]
    pub fn default_path(home: &Path, owner: &str) -> PathBuf {
        home.join("user").join(format!("{owner}.redb"))
    }

    /// Opens (creating if needed, directory mode 0700, file mode 0600: it holds session keys)
    /// the store at `path`. When another process holds it, retries for up to `wait`, then fails
    /// with [`StoreError::Busy`]. Blocking: call it off the async workers.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn open(path: &Path, wait: Duration) -> Result<Self, StoreError> {
        let db_err = |detail: String| StoreError::Database { path: path.display().to_string(), detail };
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| db_err(format!("cannot create {}: {e}", dir.display())))?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt as _;
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                    .map_err(|e| db_err(format!("cannot restrict {}: {e}", dir.display())))?;
            }
        }
        let started = Instant::now();
        let db = loop {
            match redb::Database::create(path) {
                Ok(db) => break db,
                Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                    if started.elapsed() >= wait {
                        let holder = std::fs::read_to_string(holder_path(path))
                            .ok()
                            .map(|t| t.trim().chars().take(200).collect::<String>())
                            .filter(|t| !t.is_empty())
                            .unwrap_or_else(|| "a running `store query` or `session` command".to_owned());
                        return Err(StoreError::Busy { path: path.display().to_string(), holder });
                    }
                    // Waiting for another process to let go of the file lock; no outcome
                    // depends on this pause, only how soon the next try comes.
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => return Err(db_err(e.to_string())),
            }
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| db_err(format!("cannot restrict the file: {e}")))?;
        }
        // Who holds the file, for the message a second process prints (advisory only).
        let command: Vec<String> = std::env::args().take(3).collect();
        let _ignored = std::fs::write(holder_path(path), format!("pid {}: {}", std::process::id(), command.join(" ")));
        Ok(Self { inner: Some((Arc::new(db), path.to_owned())) })
    }

    /// The file, if durable.
    #[must_use]
    pub fn path(&self) -> Option<&Path> {
        self.inner.as_ref().map(|(_, p)| p.as_path())
    }

    /// Reads the stored snapshot (empty for a new store). Blocking.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn load(&self) -> Result<Snapshot, StoreError> {
        let Some((db, path)) = &self.inner else { return Ok(Snapshot::default()) };
        let shown = path.display().to_string();
        let db_err = |e: &dyn std::fmt::Display| StoreError::Database { path: shown.clone(), detail: e.to_string() };
        let txn = db.begin_read().map_err(|e| db_err(&e))?;
        let table = match txn.open_table(STATE) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Snapshot::default()),
            Err(e) => return Err(db_err(&e)),
        };
        let Some(value) = table.get(STATE_KEY).map_err(|e| db_err(&e))? else { return Ok(Snapshot::default()) };
        let envelope = Envelope::try_from_slice(value.value())
            .map_err(|e| StoreError::Corrupt { path: shown.clone(), detail: e.to_string() })?;
        if envelope.version != SNAPSHOT_VERSION {
            return Err(StoreError::Corrupt {
                path: shown,
                detail: format!("layout {} (this build reads {SNAPSHOT_VERSION})", envelope.version),
            });
        }
        Ok(envelope.snapshot)
    }

    /// Commits `snapshot` in one durable transaction. Blocking.
    ///
    /// # Errors
    /// [`StoreError`]; nothing changed on disk then.
    pub fn save(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        let Some((db, path)) = &self.inner else { return Ok(()) };
        let db_err = |e: &dyn std::fmt::Display| StoreError::Database {
            path: path.display().to_string(),
            detail: e.to_string(),
        };
        let bytes = borsh::to_vec(&Envelope { version: SNAPSHOT_VERSION, snapshot: snapshot.clone() })
            .map_err(|e| db_err(&e))?;
        let txn = db.begin_write().map_err(|e| db_err(&e))?;
        {
            let mut table = txn.open_table(STATE).map_err(|e| db_err(&e))?;
            table.insert(STATE_KEY, bytes.as_slice()).map_err(|e| db_err(&e))?;
        }
        txn.commit().map_err(|e| db_err(&e))
    }

    /// [`UserStore::save`] on the blocking pool (inside a tokio runtime), inline otherwise.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn save_async(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        if self.inner.is_none() {
            return Ok(());
        }
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.save(&snapshot)).await.map_err(|e| StoreError::Task(e.to_string()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_round_trips_and_a_second_open_is_refused_with_advice() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = UserStore::default_path(dir.path(), "owner");
        let store = UserStore::open(&path, Duration::ZERO).expect("open");
        assert_eq!(store.load().expect("load"), Snapshot::default());
        let snapshot = Snapshot { identities: vec![([1; 32], [2; 32])], clock: 7, ..Snapshot::default() };
        store.save(&snapshot).expect("save");
        let busy = UserStore::open(&path, Duration::from_millis(250)).expect_err("held");
        assert!(matches!(busy, StoreError::Busy { .. }), "{busy}");
        assert!(busy.to_string().contains("wait for it to finish"), "{busy}");
        assert!(busy.to_string().contains(&format!("pid {}", std::process::id())), "{busy}");
        drop(store);
        let reopened = UserStore::open(&path, Duration::ZERO).expect("reopen");
        assert_eq!(reopened.load().expect("load"), snapshot);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
